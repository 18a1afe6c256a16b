//! `crossgate bench cluster`: ingest throughput and latency of 1, 2 and 3 crossgate replicas on
//! one Redis Cluster (3 masters, 3 replicas, AOF `appendfsync always`, as production runs it),
//! with the same load tool and payload as `bench ingest`, the requests spread evenly over the
//! replicas. Reports the CPU each configuration used per acknowledged delivery (crossgate and
//! Redis separately), and the coordination commands (leases, budgets) Redis ran per delivery.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::{LoadArgs, LoadReport, cpu_secs, load, print_reports, repo_adapters, wait_healthy};

#[derive(Args)]
pub struct ClusterArgs {
    /// Replica counts to measure, in order.
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    replicas: Vec<usize>,
    /// Seconds of closed-loop load per configuration.
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Rate of the open-loop phase (orders/s); 0 skips it.
    #[arg(long, default_value_t = 500)]
    steady_rate: u64,
    #[arg(long, default_value_t = 15)]
    steady_secs: u64,
    /// `replica_acks` of the replicas (1: a 2xx waits for a Redis replica, production mode).
    #[arg(long, default_value_t = 1)]
    replica_acks: u32,
    #[arg(long, default_value = super::DEFAULT_PAYLOAD)]
    payload: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// The redis-server processes of the cluster; killed when dropped.
struct Cluster {
    nodes: Vec<(u16, tokio::process::Child)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let mut taken = HashSet::new();
        let mut nodes = Vec::new();
        for i in 0..6 {
            let port = bus_safe_port(&mut taken)?;
            let data = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&data)?;
            let child = tokio::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .args([
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                ])
                .arg("--dir")
                .arg(&data)
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting redis-server (apt-get install redis-server)")?;
            nodes.push((port, child));
        }
        for (port, _) in &nodes {
            wait_redis(*port).await?;
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let out = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .context("redis-cli --cluster create")?;
        if !out.status.success() {
            bail!("cluster create: {}", String::from_utf8_lossy(&out.stdout));
        }
        let cluster = Cluster { nodes, _dir: dir };
        for _ in 0..600 {
            if cluster.ready().await {
                return Ok(cluster);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the cluster did not become ready")
    }

    /// The cluster state is ok and every replica has finished its initial sync (measuring
    /// before that would measure the sync).
    async fn ready(&self) -> bool {
        if !self
            .cli(0, "CLUSTER", "INFO")
            .await
            .contains("cluster_state:ok")
        {
            return false;
        }
        let mut in_sync = 0;
        for i in 0..self.nodes.len() {
            let r = self.cli(i, "INFO", "replication").await;
            if r.contains("role:slave") && r.contains("master_link_status:up") {
                in_sync += 1;
            }
        }
        in_sync == 3
    }

    fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The output of `redis-cli COMMAND ARG` on one node (empty when it does not answer).
    async fn cli(&self, node: usize, a: &str, b: &str) -> String {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &self.nodes[node].0.to_string(), a, b])
            .output()
            .await;
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// CPU seconds all redis-server processes used so far.
    fn cpu(&self) -> f64 {
        self.nodes
            .iter()
            .filter_map(|(_, c)| c.id().and_then(cpu_secs))
            .sum()
    }

    /// Calls of `command` on every node so far (commands that scripts run count too; PEXPIRE
    /// is run only by the lease script, once per grant or renewal).
    async fn calls(&self, command: &str) -> u64 {
        let key = format!("cmdstat_{command}:calls=");
        let mut total = 0;
        for node in 0..self.nodes.len() {
            total += self
                .cli(node, "INFO", "commandstats")
                .await
                .lines()
                .find_map(|l| l.strip_prefix(&key))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        total
    }
}

/// A free port whose cluster bus port (+10000) is free too, below 55000.
fn bus_safe_port(taken: &mut HashSet<u16>) -> Result<u16> {
    for _ in 0..1000 {
        let p: u16 = 20_000 + rand::random::<u16>() % 24_000;
        if !taken.contains(&p)
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            taken.insert(p);
            return Ok(p);
        }
    }
    bail!("no free port pair for a cluster node")
}

async fn wait_redis(port: u16) -> Result<()> {
    for _ in 0..200 {
        let ok = tokio::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "PING"])
            .output()
            .await
            .is_ok_and(|o| o.stdout.starts_with(b"PONG"));
        if ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("redis-server on {port} did not start")
}

/// One configuration's figures beside the load report.
#[derive(Debug, serde::Serialize)]
struct ClusterReport {
    replicas: usize,
    #[serde(flatten)]
    load: LoadReport,
    crossgate_cpu_ms_per_delivery: f64,
    redis_cpu_ms_per_delivery: f64,
    lease_renewals_per_delivery: f64,
}

pub async fn run(config_path: &Path, args: ClusterArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let adapters = repo_adapters(config_path)?;
    let dir = tempfile::tempdir()?;
    let secret = format!("bench-secret-{}", std::process::id());
    let cluster = Cluster::start().await?;
    eprintln!("cluster of 6 nodes (3 masters, 3 replicas, AOF always) up");
    let mut out = Vec::new();
    let mut next_id = 3_000_000_000u64;
    for &n in &args.replicas {
        let mut children = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..n {
            let port = super::free_port()?;
            let nodes: Vec<String> = cluster.urls().iter().map(|n| format!("\"{n}\"")).collect();
            let redis = format!(
                "redis_nodes = [{}]\nreplica_acks = {}",
                nodes.join(", "),
                args.replica_acks
            );
            let cfg =
                super::gateway_config(dir.path(), &adapters, port, "redis", &redis, "bench", "")?;
            let child = tokio::process::Command::new(&exe)
                .env("BENCH_SECRET", &secret)
                .arg("--config")
                .arg(&cfg)
                .arg("serve")
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            wait_healthy(&format!("http://127.0.0.1:{port}")).await?;
            urls.push(format!("http://127.0.0.1:{port}/webhooks/bench"));
            children.push(child);
        }
        let phase = |secs, rate, id_base, verify| LoadArgs {
            url: urls.clone(),
            secret: secret.clone(),
            payload: args.payload.clone(),
            duration_secs: secs,
            concurrency: args.concurrency,
            rate,
            verify,
            id_base,
        };
        let warm = load(&phase(3, None, next_id, false), "warm-up").await?;
        if warm.non_2xx + warm.transport_errors > 0 {
            eprintln!(
                "warm-up of {n}: {} of {} not acknowledged (not measured)",
                warm.non_2xx + warm.transport_errors,
                warm.sent
            );
        }
        next_id += 10_000_000;
        let mut phases = vec![(args.duration_secs, None)];
        if args.steady_rate > 0 {
            phases.push((args.steady_secs, Some(args.steady_rate)));
        }
        for (secs, rate) in phases {
            let cg = |cs: &[tokio::process::Child]| -> f64 {
                cs.iter().filter_map(|c| c.id().and_then(cpu_secs)).sum()
            };
            let (cg0, rd0, renew0) = (cg(&children), cluster.cpu(), cluster.calls("pexpire").await);
            let name = format!("{n} replica{}", if n == 1 { "" } else { "s" });
            let report = load(&phase(secs, rate, next_id, true), &name).await?;
            next_id += 100_000_000;
            let ok = report.ok.max(1) as f64;
            let r = ClusterReport {
                replicas: n,
                crossgate_cpu_ms_per_delivery: (cg(&children) - cg0) * 1000.0 / ok,
                redis_cpu_ms_per_delivery: (cluster.cpu() - rd0) * 1000.0 / ok,
                lease_renewals_per_delivery: (cluster.calls("pexpire").await - renew0) as f64 / ok,
                load: report,
            };
            eprintln!(
                "{}: {} -> {:.0}/s, p99 {:.1} ms, crossgate {:.3} ms CPU/delivery, redis {:.3}",
                r.load.target,
                r.load.mode,
                r.load.orders_per_sec,
                r.load.p99_ms,
                r.crossgate_cpu_ms_per_delivery,
                r.redis_cpu_ms_per_delivery
            );
            out.push(r);
        }
        for mut c in children {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
    print_reports(&out.iter().map(|r| r.load.clone()).collect::<Vec<_>>());
    crossgate::outln!(
        "\nreplicas  mode                        crossgate CPU ms/delivery  redis CPU ms/delivery  lease renewals/delivery"
    );
    for r in &out {
        crossgate::outln!(
            "{:<9} {:<27} {:>25.3} {:>22.3} {:>24.4}",
            r.replicas,
            r.load.mode,
            r.crossgate_cpu_ms_per_delivery,
            r.redis_cpu_ms_per_delivery,
            r.lease_renewals_per_delivery
        );
    }
    if let Some(p) = &args.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
    }
    drop(cluster);
    Ok(())
}
