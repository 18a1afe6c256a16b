//! `crossgate demo`: posts the real sample deliveries, signed exactly as each channel signs
//! them, to a running daemon and prints what was stored.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crossgate::adapter::signature;
use crossgate::adapter::spec::Source;
use crossgate::config::{Config, Instance};

use crate::cli::ApiArgs;
use crate::cli::reach::ApiClient;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Directory of the shared real channel payloads (see its SOURCES.md).
    #[arg(long, default_value = "../shared/fixtures")]
    fixtures: PathBuf,
}

/// A delivery as posted: url, body and headers.
type Posted = (String, Vec<u8>, Vec<(String, String)>);

/// A sample delivery: a file and the topic it is sent under.
struct Sample {
    file: PathBuf,
    topic: &'static str,
}

fn samples(inst: &Instance, fixtures: &Path, repo: &Path) -> Vec<Sample> {
    match inst.adapter.name() {
        "shopify" => [
            (
                "shopify/rest-2024-04-order-get-450789469.json",
                "orders/create",
            ),
            (
                "shopify/rest-2024-04-order-create-eur.json",
                "orders/create",
            ),
            ("shopify/rest-order-legacy-450789469.json", "orders/updated"),
        ]
        .into_iter()
        .map(|(f, topic)| Sample {
            file: fixtures.join(f),
            topic,
        })
        .collect(),
        "app" => {
            let dir = repo.join("tests/fixtures/app");
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            files
                .into_iter()
                .filter(|f| f.extension().is_some_and(|e| e == "json"))
                .map(|file| Sample {
                    file,
                    topic: "order",
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The headers a channel would send with `body`: its signature, and the id and topic headers
/// its adapter reads.
pub fn channel_headers(
    inst: &Instance,
    body: &[u8],
    delivery_id: &str,
    topic: &str,
) -> Result<Vec<(String, String)>> {
    let webhook = inst
        .adapter
        .spec()
        .webhook
        .as_ref()
        .context("the adapter takes no webhooks")?;
    let secret = *inst
        .webhook_secrets()
        .first()
        .context("the instance has no webhook secret")?;
    let now = chrono::Utc::now().timestamp();
    let mut headers = signature::sign(&webhook.signature, secret, body, delivery_id, now);
    if let Some(Source::Header(h)) = webhook.dedupe_id.first()
        && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(h))
    {
        headers.push((h.clone(), delivery_id.to_string()));
    }
    if let Some(Source::Header(h)) = &webhook.topic {
        headers.push((h.clone(), topic.to_string()));
    }
    headers.push(("Content-Type".into(), "application/json".into()));
    Ok(headers)
}

pub async fn run(config_path: &Path, args: DemoArgs) -> Result<()> {
    let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = ApiClient::new(config_path, &args.api)?;
    let repo = config
        .file
        .parent()
        .map(|p| p.join(".."))
        .unwrap_or_else(|| PathBuf::from("."));
    if !args.fixtures.is_dir() {
        bail!(
            "the fixtures directory {} does not exist; pass --fixtures DIR",
            args.fixtures.display()
        );
    }
    // The first delivery posted (url, body, headers), sent again to show deduplication.
    let mut first: Option<Posted> = None;
    let mut posted = 0;
    for inst in config.instances.values() {
        for sample in samples(inst, &args.fixtures, &repo) {
            let body = std::fs::read(&sample.file)
                .with_context(|| format!("reading {}", sample.file.display()))?;
            let delivery_id = format!("demo-{}", uuid::Uuid::now_v7().simple());
            let headers = channel_headers(inst, &body, &delivery_id, sample.topic)?;
            let url = format!("{}/webhooks/{}", client.base(), inst.id);
            let (status, reply) = post(&client, &url, &body, &headers).await?;
            posted += 1;
            let name = sample
                .file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            crossgate::outln!(
                "POST /webhooks/{} {name} -> {status} {}",
                inst.id,
                reply["status"].as_str().unwrap_or("")
            );
            for r in reply["records"].as_array().into_iter().flatten() {
                let id = r["id"].as_str().unwrap_or_default();
                let path = format!("/v1/orders/{id}");
                let answer = client
                    .answer::<serde_json::Value>(client.request(reqwest::Method::GET, &path))
                    .await?;
                if let Ok(order) = answer {
                    crossgate::outln!(
                        "    {id} [{}] external {} {} {} {} total, {} line(s), placed {}",
                        r["change"].as_str().unwrap_or(""),
                        order["external_id"].as_str().unwrap_or(""),
                        order["status"].as_str().unwrap_or(""),
                        order["totals"]["grand_total"]["amount"]
                            .as_str()
                            .unwrap_or(""),
                        order["currency"].as_str().unwrap_or(""),
                        order["lines"].as_array().map(Vec::len).unwrap_or(0),
                        order["placed_at"].as_str().unwrap_or(""),
                    );
                }
            }
            for e in reply["errors"].as_array().into_iter().flatten() {
                crossgate::outln!(
                    "    dead-lettered: {}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["problem"].as_str().unwrap_or("")
                );
            }
            if first.is_none() {
                first = Some((url, body, headers));
            }
        }
    }
    if posted == 0 {
        bail!("no configured instance has demo samples (shopify or app adapters)");
    }
    if let Some((url, body, headers)) = first {
        let (status, reply) = post(&client, &url, &body, &headers).await?;
        crossgate::outln!(
            "POST the first delivery again -> {status} {} (same delivery id: no second order)",
            reply["status"].as_str().unwrap_or("")
        );
        let mut tampered = body.clone();
        if let Some(b) = tampered.iter_mut().find(|b| b.is_ascii_digit()) {
            *b = if *b == b'9' { b'8' } else { *b + 1 };
        }
        let (status, _) = post(&client, &url, &tampered, &headers).await?;
        crossgate::outln!(
            "POST it with one digit changed -> {status} (signature no longer matches)"
        );
    }
    Ok(())
}

async fn post(
    client: &ApiClient,
    url: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> Result<(u16, Value)> {
    let mut req = client.http().post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("posting to {url} (is the daemon running?)"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}
