//! Packaging (issue 17, item 5): the version names the commit and the build date, shell
//! completions and the man page come from the same CLI definition, the systemd unit verifies,
//! and a rediss:// store URL is refused with what to do instead (item 6).

mod common;

use std::process::Command;

use common::*;

fn crossgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_version_names_the_commit_and_the_build_date() {
    let out = crossgate(&["--version"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!("crossgate {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let expected_commit = if commit.is_empty() {
        "unknown".to_string()
    } else {
        commit
    };
    assert!(
        text.contains(&format!("commit {expected_commit}")),
        "{text}"
    );
    let date = text
        .split("built ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')');
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{text}"
    );
}

#[test]
fn completions_and_the_man_page_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = crossgate(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = stdout(&out);
        for word in ["check-config", "dead-letters", "backfill"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
    }
    let man = crossgate(&["man-page"]);
    assert!(man.status.success());
    let text = stdout(&man);
    assert!(
        text.contains(".TH crossgate 1"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(
        text.contains("check\\-config"),
        "the subcommands are listed"
    );
    let bad = crossgate(&["completions", "tcsh"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

/// `systemd-analyze verify` (present on the Debian machines CI runs on) on the shipped unit,
/// pointed at the built binary.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(v) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here; the unit was not verified");
        return;
    };
    assert!(v.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("deploy/crossgate.service"))
        .unwrap()
        .replace("/usr/local/bin/crossgate", env!("CARGO_BIN_EXE_crossgate"));
    let file = dir.path().join("crossgate.service");
    std::fs::write(&file, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn a_rediss_url_is_refused_with_what_to_do_instead() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        "[store]\nbackend = \"redis\"\nredis_url = \"rediss://redis.example.net:6380\"\n",
    )
    .unwrap();
    let out = crossgate(&["--config", file.to_str().unwrap(), "check-config"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.redis_url"), "{err}");
    assert!(
        err.contains("rediss:// (TLS to Redis) is not supported"),
        "{err}"
    );
    assert!(err.contains("stunnel"), "{err}");
}
