//! CLI edges (issue 10, item 6), on the real binary: a closed stdout ends a command quietly, log
//! files get no colour codes, `replay` reads the config's adapters and says why it ignored a
//! delivery.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn crossgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crossgate"));
    c.current_dir(repo()).envs(test_env());
    c
}

const SHOPIFY_ORDER: &str = "../shared/fixtures/shopify/rest-2024-04-order-get-450789469.json";

/// The tests' gateway config (`common::test_config_in`) in `dir`, with an adapters directory
/// that holds only `names` (copied from adapters/).
fn config_with_adapters(dir: &Path, names: &[&str]) -> std::path::PathBuf {
    let adapters = copy_adapters(dir, "my-adapters", names);
    let prefix = unique_prefix("cli");
    test_config_in(
        dir,
        Backend::Embedded,
        &redis_url(),
        "",
        &adapters,
        &[],
        &prefix,
    );
    dir.join("gateway.toml")
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let mut child = crossgate()
        .args(["replay", "--adapter", "shopify", "--file", SHOPIFY_ORDER])
        .args(["--header", "X-Shopify-Topic: orders/create"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -c 0`: the reader goes away before the command writes.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn replay_reads_the_configured_adapters_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_adapters(dir.path(), &["shopify", "app"]);
    // The config's directory has only shopify and app: woocommerce (in the repo's adapters/) is
    // unknown.
    let out = crossgate()
        .arg("--config")
        .arg(&cfg)
        .args([
            "replay",
            "--adapter",
            "woocommerce",
            "--file",
            SHOPIFY_ORDER,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no adapter 'woocommerce'"), "{stderr}");
    assert!(stderr.contains("known: app, shopify"), "{stderr}");
    // And shopify comes from there.
    let out = crossgate()
        .arg("--config")
        .arg(&cfg)
        .args(["replay", "--adapter", "shopify", "--file", SHOPIFY_ORDER])
        .args(["--header", "X-Shopify-Topic: orders/create"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("450789469"));
}

#[test]
fn replay_without_a_topic_says_which_header_is_missing() {
    let out = crossgate()
        .args(["replay", "--adapter", "shopify", "--file", SHOPIFY_ORDER])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("x-shopify-topic"),
        "{stderr}"
    );
    assert!(stderr.contains("--header"), "{stderr}");
    // A topic the adapter does not route is named as such.
    let out = crossgate()
        .args(["replay", "--adapter", "shopify", "--file", SHOPIFY_ORDER])
        .args(["--header", "X-Shopify-Topic: carts/create"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("orders/create"),
        "lists the routed topics: {stderr}"
    );
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_adapters(dir.path(), &["shopify", "app"]);
    let log = dir.path().join("serve.log");
    let mut child = crossgate()
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env_remove("NO_COLOR")
        // The test config logs at warn; start-up says what it does at info.
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Wait for the start-up lines (bounded), then stop the daemon.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the daemon logged nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );
}
