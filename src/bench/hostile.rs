//! `crossgate bench hostile`: signed deliveries while hostile senders push unsigned bodies that
//! are costly to parse (issue 10, item 1). WeChat Pay signs inside its XML body, so the gateway
//! must read a body before it knows the body is authentic; this measures what that costs
//! everyone else.
//!
//! One gateway process (this binary, or `--gateway-bin` for an older build) with a Shopify and a
//! WeChat Pay instance. `--hostile-clients` clients post, in a closed loop, an unsigned XML body of
//! `--elements` distinct empty elements (100,000 make 889 kB) to the WeChat Pay webhook, while
//! the load tool sends signed Shopify orders open-loop at `--rate`. Pass: Shopify p99 under
//! 50 ms, and every hostile request refused in under 50 ms.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use super::{DEFAULT_PAYLOAD, HttpClient, LoadArgs, free_port, load, print_reports, wait_healthy};

#[derive(Args)]
pub struct HostileArgs {
    /// The crossgate binary to measure (default: this one). An older build gives the "before".
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Store backend of the measured gateway: embedded or redis.
    #[arg(long, default_value = "embedded")]
    backend: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Clients posting unsigned XML bodies in a closed loop.
    #[arg(long, default_value_t = 4)]
    hostile_clients: usize,
    /// Distinct empty elements in each hostile body.
    #[arg(long, default_value_t = 100_000)]
    elements: usize,
    /// Signed Shopify deliveries per second (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    #[arg(long, default_value = DEFAULT_PAYLOAD)]
    payload: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// Latencies of the hostile requests.
#[derive(Debug, Default, Serialize)]
pub struct HostileReport {
    pub requests: usize,
    /// Status code → count (0: transport error or no answer).
    pub statuses: std::collections::BTreeMap<u16, usize>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub body_bytes: usize,
}

/// `<xml><e0/><e1/>…</xml>`: every sibling has a new name.
pub fn hostile_body(elements: usize) -> Vec<u8> {
    let mut body = String::with_capacity(elements * 9 + 16);
    body.push_str("<xml>");
    for i in 0..elements {
        body.push_str(&format!("<e{i}/>"));
    }
    body.push_str("</xml>");
    body.into_bytes()
}

/// The second instance: WeChat Pay, whose signature is inside the body. The jobs stay out of
/// the measurement.
const WECHAT_INSTANCE: &str = r#"[jobs]
every_secs = 86400
[[instance]]
id = "wechat"
adapter = "wechatpay"
account = "1900000109"
secrets = { webhook = "${BENCH_SECRET}" }
settings = { orders_instance = "bench" }
"#;

/// One hostile client: posts the body until `deadline`, recording each answer's latency.
async fn hostile_client(
    client: HttpClient,
    url: hyper::Uri,
    body: Bytes,
    deadline: Instant,
) -> Vec<(u16, u32)> {
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let req = hyper::Request::post(url.clone())
            .header("content-type", "text/xml")
            .body(Full::new(body.clone()))
            .expect("a valid request");
        let status = match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await
        {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let _ = resp.into_body().collect().await;
                status
            }
            _ => 0,
        };
        let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        seen.push((status, micros));
    }
    seen
}

fn summarize(mut seen: Vec<(u16, u32)>, body_bytes: usize) -> HostileReport {
    let mut report = HostileReport {
        requests: seen.len(),
        body_bytes,
        ..HostileReport::default()
    };
    for (status, _) in &seen {
        *report.statuses.entry(*status).or_default() += 1;
    }
    seen.sort_unstable_by_key(|(_, us)| *us);
    let pct = |p: f64| {
        if seen.is_empty() {
            return 0.0;
        }
        let idx = ((seen.len() as f64 - 1.0) * p).round() as usize;
        f64::from(seen[idx].1) / 1000.0
    };
    report.p50_ms = pct(0.50);
    report.p99_ms = pct(0.99);
    report.max_ms = pct(1.0);
    report
}

pub async fn run(config_path: &Path, args: HostileArgs) -> Result<()> {
    let exe = match &args.gateway_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let adapters = super::repo_adapters(config_path)?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let secret = format!("bench-secret-{}", std::process::id());
    let prefix = format!("hostile{}", std::process::id());
    let cfg = super::gateway_config(
        dir.path(),
        &adapters,
        port,
        &args.backend,
        &super::redis_url(&args.redis_url),
        &prefix,
        WECHAT_INSTANCE,
    )?;
    let mut child = super::spawn_daemon(&exe, &cfg, &secret)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await?;

    let body = Bytes::from(hostile_body(args.elements));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let hostile_url: hyper::Uri = format!("{base}/webhooks/wechat").parse()?;
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let hostile: Vec<_> = (0..args.hostile_clients)
        .map(|_| {
            tokio::spawn(hostile_client(
                client.clone(),
                hostile_url.clone(),
                body.clone(),
                deadline,
            ))
        })
        .collect();
    let signed = load(
        &LoadArgs {
            url: vec![format!("{base}/webhooks/bench")],
            secret: secret.clone(),
            payload: args.payload.clone(),
            duration_secs: args.duration_secs,
            concurrency: 64,
            rate: Some(args.rate),
            verify: false,
            id_base: 3_000_000_000,
        },
        if args.hostile_clients == 0 {
            "signed shopify (no hostile senders)"
        } else {
            "signed shopify (with hostile senders)"
        },
    )
    .await?;
    let mut seen = Vec::new();
    for h in hostile {
        seen.extend(h.await?);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    let report = summarize(seen, body.len());
    print_reports(std::slice::from_ref(&signed));
    crossgate::outln!();
    crossgate::outln!(
        "hostile: {} unsigned {} B XML bodies from {} clients: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; statuses {:?}",
        report.requests,
        report.body_bytes,
        args.hostile_clients,
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        report.statuses
    );
    let pass = signed.p99_ms < 50.0 && report.max_ms < 50.0 && report.requests > 0;
    crossgate::outln!(
        "targets: signed p99 < 50 ms ({:.2}), every hostile refusal < 50 ms ({:.2}): {}",
        signed.p99_ms,
        report.max_ms,
        if pass { "met" } else { "NOT met" }
    );
    if let Some(path) = &args.json_out {
        let all = serde_json::json!({"signed": signed, "hostile": report});
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_hostile_body_is_the_reported_size() {
        // The issue measured 889 kB for 100,000 distinct elements.
        let n = super::hostile_body(100_000).len();
        assert!((880_000..=900_000).contains(&n), "{n}");
    }
}
