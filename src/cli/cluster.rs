//! `crossgate cluster status`: the store's nodes and slots, who holds each lease, and what is
//! left of each shared rate budget.

use std::path::Path;

use anyhow::Result;
use clap::{Args, Subcommand};

use crossgate::outln;

use super::reach::Reach;
use super::{ApiArgs, load_config};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Nodes and slots (Redis Cluster), leases (pollers and jobs) and shared rate budgets.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn cluster(config_path: &Path, cmd: ClusterCommand) -> Result<()> {
    let ClusterCommand::Status(args) = cmd;
    let config = load_config(config_path)?;
    let reach = Reach::connect(&config, &args.api).await?;
    let status = reach.cluster_status(&config).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    outln!(
        "store: {} (read through {})",
        status.store,
        reach.describe(&config)
    );
    if !status.slots.is_empty() {
        outln!("\nslots          master                 replicas");
        for r in &status.slots {
            outln!(
                "{:>5}-{:<5}    {:<22} {}",
                r.start,
                r.end,
                r.master,
                if r.replicas.is_empty() {
                    "(none: a failover would lose this range)".to_string()
                } else {
                    r.replicas.join(", ")
                }
            );
        }
    }
    outln!("\nlease                  holder                               token  expires in");
    for l in &status.leases {
        outln!(
            "{:<22} {:<36} {:>5}  {}",
            format!("{}/{}", l.lease.scope, l.lease.name),
            l.holder.as_deref().unwrap_or("(free)"),
            l.token,
            l.expires_in_ms
                .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into())
        );
    }
    if !status.budgets.is_empty() {
        outln!("\nrate budget            rate            available now");
        for b in &status.budgets {
            outln!(
                "{:<22} {:>6}/s burst {:<3} {}",
                format!("{}/{}", b.instance, b.name),
                b.per_second,
                b.burst,
                b.available
            );
        }
    }
    Ok(())
}
