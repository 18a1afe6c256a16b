//! Replays every input saved under `fuzz/regressions/<target>/` (crashes the fuzzers found, once
//! fixed) through the same target bodies the fuzzers run, without instrumentation, so a fixed
//! crash stays fixed in an ordinary `cargo test`. See `scripts/fuzz.sh`.

use std::path::Path;

#[test]
fn every_saved_fuzz_input_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in crossgate::fuzz_targets::TARGETS {
        let dir = root.join(name);
        assert!(dir.is_dir(), "fuzz/regressions/{name} is missing");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".keep") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            target(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} saved fuzz input(s)");
}

#[test]
fn every_target_accepts_the_shared_fixtures() {
    // The seeds the fuzzers start from must themselves pass every target's checks.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    let mut seen = 0;
    for dir in std::fs::read_dir(&shared).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(f.unwrap().path()).unwrap();
            for (_, target) in crossgate::fuzz_targets::TARGETS {
                for pick in 0..20u8 {
                    let mut input = vec![pick];
                    input.extend_from_slice(&data);
                    target(&input);
                }
                target(&data);
            }
            seen += 1;
        }
    }
    assert!(seen > 50, "only {seen} fixtures found");
}
