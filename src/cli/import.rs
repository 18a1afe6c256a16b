//! `crossgate import`: a file of orders (phone / call-centre CSV). Every bad row is reported by
//! line and column, every good order stored; importing the same file again stores nothing new.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use crossgate::adapter::Headers;
use crossgate::config::{Config, Instance};
use crossgate::import::{self, Chunk, ImportReport, RowError};

use super::reach::Reach;
use super::{ApiArgs, load_config};

#[derive(Args)]
pub struct ImportArgs {
    /// Adapter of the file's format (e.g. phone; see its file in adapters/ for the columns).
    #[arg(long)]
    adapter: String,
    /// The file to import.
    #[arg(long)]
    file: PathBuf,
    /// Instance to import into (default: the only configured instance of that adapter).
    #[arg(long)]
    instance: Option<String>,
    /// Send to the running daemon at this URL instead of writing the store directly. Without
    /// it, the daemon at the config's listen address is used when it answers, else the store.
    #[arg(long)]
    url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn import(config_path: &Path, args: ImportArgs) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    let inst = instance_for(&config, config_path, &args)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let plan = import::plan(&inst.adapter, &bytes, import::CHUNK_ORDERS)?;
    // The running daemon when there is one (the embedded store is locked by it), else the store.
    let api = ApiArgs {
        url: args.url.clone(),
    };
    let reach = Reach::connect(&config, &api).await?;
    eprintln!("importing through {}", reach.describe(&config));

    let mut report = ImportReport {
        orders: plan.orders,
        errors: plan.row_errors.clone(),
        ..Default::default()
    };
    let refused_orders: std::collections::HashSet<&str> = plan
        .row_errors
        .iter()
        .filter_map(|e| e.order_id.as_deref())
        .collect();
    report.failed = refused_orders.len();
    let bar = indicatif::ProgressBar::new(plan.orders as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} orders {msg}",
        )
        .expect("valid template"),
    );
    bar.inc(refused_orders.len() as u64);
    for chunk in &plan.chunks {
        let (failed_here, bad) = locate_problems(&inst, chunk, &mut report);
        report.failed += failed_here;
        let Some(chunk) = chunk.without(&bad) else {
            bar.inc(failed_here as u64);
            continue;
        };
        match reach
            .import_chunk(&inst, &chunk.key, chunk.body.clone())
            .await?
        {
            // The same chunk was imported before: nothing new.
            None => report.unchanged += chunk.orders.len(),
            Some(changes) => {
                report.stored += changes.iter().filter(|c| c.wrote()).count();
                report.unchanged += changes.iter().filter(|c| !c.wrote()).count();
            }
        }
        bar.inc((chunk.orders.len() + failed_here) as u64);
    }
    bar.finish_and_clear();
    report.errors.sort_by_key(|e| e.line);
    if args.json {
        crossgate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for e in &report.errors {
            crossgate::outln!("{e}");
        }
        crossgate::outln!(
            "{}: {} orders; {} stored, {} unchanged, {} not imported ({} problem(s))",
            args.file.display(),
            report.orders,
            report.stored,
            report.unchanged,
            report.failed,
            report.errors.len()
        );
    }
    Ok(if report.ok() {
        std::process::ExitCode::SUCCESS
    } else {
        // Some rows were refused (the good orders are stored).
        std::process::ExitCode::from(2)
    })
}

/// The instance to import into: `--instance`, else the only one using the adapter.
fn instance_for(config: &Config, config_path: &Path, args: &ImportArgs) -> Result<Arc<Instance>> {
    let candidates: Vec<&String> = config
        .instances
        .values()
        .filter(|i| i.adapter.name() == args.adapter)
        .map(|i| &i.id)
        .collect();
    let instance_id = match (&args.instance, candidates.as_slice()) {
        (Some(i), _) => i.clone(),
        (None, [one]) => (*one).clone(),
        (None, []) => bail!(
            "no instance uses adapter '{}'; add one to {} (see README, \"Phone orders\")",
            args.adapter,
            config_path.display()
        ),
        (None, many) => bail!(
            "several instances use adapter '{}' ({}); choose one with --instance",
            args.adapter,
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let inst = config
        .instances
        .get(&instance_id)
        .with_context(|| format!("no instance '{instance_id}' in the config"))?
        .clone();
    if inst.adapter.name() != args.adapter {
        bail!(
            "instance '{instance_id}' uses adapter '{}', not '{}'",
            inst.adapter.name(),
            args.adapter
        );
    }
    Ok(inst)
}

/// Maps a chunk locally (the mapping is pure) and records every problem by line and column:
/// the number of orders refused, and their indexes in the chunk.
fn locate_problems(
    inst: &Instance,
    chunk: &Chunk,
    report: &mut ImportReport,
) -> (usize, Vec<usize>) {
    let local = crossgate::pipeline::dispose(inst, &Headers::default(), &chunk.body);
    let mut failed_here = 0;
    for (item, e) in &local.errors {
        let orders: Vec<usize> = match item {
            Some(i) if *i < chunk.orders.len() => vec![*i],
            Some(_) => Vec::new(),
            None => (0..chunk.orders.len()).collect(),
        };
        for i in orders {
            failed_here += 1;
            let order = &chunk.orders[i];
            if e.fields().is_empty() {
                report.errors.push(RowError {
                    line: order.lines.first().copied().unwrap_or(0),
                    column: None,
                    order_id: Some(order.order_id.clone()),
                    value: None,
                    problem: e.to_string(),
                });
            }
            for f in e.fields() {
                report.errors.push(chunk.locate(i, f));
            }
        }
    }
    let bad: Vec<usize> = local
        .errors
        .iter()
        .flat_map(|(item, _)| match item {
            Some(i) => vec![*i],
            None => (0..chunk.orders.len()).collect(),
        })
        .collect();
    (failed_here, bad)
}
