//! The CLI beside a running daemon on the embedded store (issue 11, item 5): every command that
//! reads or writes the gateway's data goes through the daemon's API when it answers (the daemon
//! holds the store's lock), else through the store. On the real binary, both ways.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn crossgate(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crossgate"));
    c.current_dir(repo())
        .envs(test_env())
        .arg("--config")
        .arg(cfg);
    c
}

fn run(cfg: &Path, args: &[&str]) -> Output {
    crossgate(cfg).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The tests' embedded config in `dir`, served on a fixed loopback port (so the CLI finds the
/// daemon at the config's listen address).
fn config(dir: &Path, port: u16) -> PathBuf {
    test_config_in(
        dir,
        Backend::Embedded,
        &redis_url(),
        "",
        &repo().join("adapters"),
        &[],
        &unique_prefix("clid"),
    );
    let file = dir.join("gateway.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    let toml = toml.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&file, toml).unwrap();
    file
}

struct Daemon(Child);

impl Daemon {
    fn start(cfg: &Path, port: u16) -> Daemon {
        let daemon = Daemon(
            crossgate(cfg)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{port}/healthz");
        while Instant::now() < deadline {
            if answers(&url) {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not answer on {url}");
    }

    fn stop(mut self) {
        // SIGTERM: a graceful stop releases the store's lock.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` to completion on a runtime of its own (these tests drive the binary from plain
/// threads).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Whether a GET answers 2xx.
fn answers(url: &str) -> bool {
    block_on(async {
        http()
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}

fn post_deliveries(port: u16) {
    block_on(async {
        let c = http();
        let base = format!("http://127.0.0.1:{port}");
        // A canonical app order (through the submission API) and an authentic Shopify
        // delivery that is no order: one record for the jobs, one dead letter.
        let order = serde_json::to_vec(&app_order("A-1001", "2026-01-05T10:00:00Z")).unwrap();
        let r = post(&c, &format!("{base}/v1/instances/app/orders"), &order, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let bad = br#"{"foo":"bar"}"#;
        let h = shopify_headers(bad, "w-bad-1", "orders/create");
        let r = post(&c, &format!("{base}/webhooks/shop"), bad, &h).await;
        assert_eq!(r.status, 202, "{}", r.text);
    });
}

#[test]
fn commands_work_beside_a_running_embedded_daemon_and_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);

    // No daemon: the store itself.
    let out = run(&cfg, &["jobs", "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("never run"),
        "{}",
        text(&out.stdout)
    );

    let daemon = Daemon::start(&cfg, port);
    post_deliveries(port);

    // Beside the daemon (it holds the embedded store): through its API.
    let out = run(&cfg, &["jobs", "run", "--json"]);
    assert!(out.status.success(), "jobs run: {}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["events_read"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["orders"], 1, "{report}");
    let out = run(&cfg, &["jobs", "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("generated_at"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&cfg, &["dead-letters", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = page["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    let dead_letter = listed[0]["id"].as_str().unwrap().to_string();
    let out = run(&cfg, &["fx", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the log is intact"));
    daemon.stop();

    // Without it: the same commands on the store, with the same answers.
    let out = run(&cfg, &["jobs", "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("generated_at"));
    let out = run(&cfg, &["dead-letters", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&dead_letter));
    let out = run(&cfg, &["dead-letters", "replay", &dead_letter]);
    assert!(!out.status.success(), "the order still has no lines");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&dead_letter) && stdout.contains("still not normalizable"),
        "{stdout}"
    );
    assert!(stdout.contains("0 resolved, 1 still failing"), "{stdout}");
}

/// `crossgate fx log` through the daemon reads the whole selection in one streamed answer
/// (it used to page 500 entries at a time, each page re-reading the whole log) and prints
/// exactly what the store path prints, past the old page size.
#[test]
fn fx_log_through_the_daemon_matches_the_store_past_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    let daemon = Daemon::start(&cfg, port);
    block_on(async {
        let c = http();
        let base = format!("http://127.0.0.1:{port}");
        let ecb = fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml");
        let r = post(&c, &format!("{base}/v1/fx/rates?source=ecb"), &ecb, &[]).await;
        assert!(r.status < 300, "{}", r.text);
        // 40 JPY orders of February 2017: each converts several parts into EUR and CNY.
        for i in 0..40 {
            let mut o = app_order(&format!("FX-{i}"), "2017-02-01T10:00:00Z");
            o["placed_at"] = "2017-02-01T10:00:00+09:00".into();
            let body = serde_json::to_vec(&o).unwrap();
            let r = post(&c, &format!("{base}/v1/instances/app/orders"), &body, &[]).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    });
    // Wait for the FX job to convert them all.
    let mut through_daemon = String::new();
    for _ in 0..100 {
        let out = run(&cfg, &["fx", "log", "--format", "csv", "--parts", "all"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        through_daemon = text(&out.stdout);
        let orders: std::collections::HashSet<&str> = through_daemon
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(2))
            .collect();
        if orders.len() >= 40 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let rows = through_daemon.lines().count() - 1;
    assert!(rows > 500, "{rows} entries: more than one of the old pages");
    daemon.stop();
    let out = run(&cfg, &["fx", "log", "--format", "csv", "--parts", "all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        through_daemon,
        "the store path prints the same log"
    );
}

/// GET on the daemon's API, as JSON.
fn get_json(url: &str) -> Value {
    block_on(async { get(&http(), url).await.body })
}

/// Waits until the daemon reports a configuration state `ready` accepts.
fn wait_for_config(port: u16, ready: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://127.0.0.1:{port}/v1/admin/config");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(&url);
        if ready(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill -HUP` reloads the running binary's adapter files; a broken file leaves the running
/// generation in use and is reported (issue 14).
#[test]
fn sighup_reloads_adapters_and_a_broken_file_keeps_the_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let adapters = copy_adapters(dir.path(), "adapters", &["shopify", "app"]);
    let port = free_port();
    test_config_in(
        dir.path(),
        Backend::Embedded,
        &redis_url(),
        "",
        &adapters,
        &[],
        &unique_prefix("hup"),
    );
    let cfg = dir.path().join("gateway.toml");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&cfg, port);
    let first = wait_for_config(port, |v| v["generation"] == 1);
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &daemon.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let shopify = adapters.join("shopify.toml");
    let good = std::fs::read_to_string(&shopify).unwrap();
    std::fs::write(&shopify, format!("{good}\n# edited by ops\n")).unwrap();
    hup();
    let second = wait_for_config(port, |v| v["generation"] == 2);
    assert_eq!(second["generation"], 2, "{second}");
    assert_ne!(
        second["adapters"], first["adapters"],
        "the digest follows the file"
    );

    std::fs::write(&shopify, "[[[ not toml").unwrap();
    hup();
    let failed = wait_for_config(port, |v| !v["last_failure"].is_null());
    assert_eq!(failed["generation"], 2, "{failed}");
    assert!(
        failed["last_failure"]["problems"]
            .to_string()
            .contains("shopify.toml"),
        "{failed}"
    );
    assert_eq!(failed["adapters"], second["adapters"]);
    assert!(answers(&format!("http://127.0.0.1:{port}/healthz")));
    daemon.stop();
}
