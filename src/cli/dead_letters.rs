//! `crossgate dead-letters list|replay`.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;

use crossgate::store::DeadLetter;

use super::reach::{Reach, Replayed};
use super::{ApiArgs, load_config};

#[derive(Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters, oldest first.
    List {
        /// Only this channel instance.
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Normalize dead letters again with the current adapters.
    Replay {
        /// Dead letter id (as listed).
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn dead_letters(config_path: &Path, cmd: DeadLetterCommand) -> Result<()> {
    let config = load_config(config_path)?;
    match cmd {
        DeadLetterCommand::List {
            instance,
            limit,
            json: as_json,
            api,
        } => {
            let reach = Reach::connect(&config, &api).await?;
            let page = reach.dead_letters(instance.as_deref(), limit, None).await?;
            if as_json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print_table(&page.items);
                if let Some(next) = &page.next_cursor {
                    crossgate::outln!("(more: use the API with cursor={next})");
                }
            }
        }
        DeadLetterCommand::Replay { id, all, api } => {
            let reach = Reach::connect(&config, &api).await?;
            let ids = match id {
                Some(id) if !all => vec![id],
                _ => every_id(&reach).await?,
            };
            let (mut ok, mut failed) = (0, 0);
            for id in ids {
                match reach.replay(&config, &id).await? {
                    Replayed::Resolved(records) => {
                        ok += 1;
                        crossgate::outln!("{id}: resolved {records}");
                    }
                    Replayed::FetchQueued(why) => {
                        failed += 1;
                        crossgate::outln!("{id}: 202 {why}");
                    }
                    Replayed::Failed(why) => {
                        failed += 1;
                        crossgate::outln!("{id}: {why}");
                    }
                }
            }
            crossgate::outln!("{ok} resolved, {failed} still failing");
            if failed > 0 {
                bail!("{failed} dead letter(s) could not be replayed");
            }
        }
    }
    Ok(())
}

/// The id of every dead letter, oldest first.
async fn every_id(reach: &Reach) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = reach.dead_letters(None, 500, cursor.as_deref()).await?;
        ids.extend(page.items.into_iter().map(|dl| dl.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(ids),
        }
    }
}

fn print_table(items: &[DeadLetter]) {
    if items.is_empty() {
        crossgate::outln!("no dead letters");
        return;
    }
    crossgate::outln!(
        "{:<48} {:<16} {:<25} {:<10} {:>7}  problem",
        "id",
        "instance",
        "received_at",
        "kind",
        "replays"
    );
    for dl in items {
        let problem = match dl.reason.errors.first() {
            Some(f) => format!("{}: {}", f.field, f.problem),
            None => dl.reason.message.clone(),
        };
        crossgate::outln!(
            "{:<48} {:<16} {:<25} {:<10} {:>7}  {}",
            dl.id,
            dl.instance,
            dl.received_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            dl.reason.kind,
            dl.failed_replays,
            problem.chars().take(100).collect::<String>()
        );
    }
}
