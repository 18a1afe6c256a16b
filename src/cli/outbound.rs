//! `crossgate outbound list|show|retry`: the outbox's commands to channels, through the
//! running daemon's API when it answers, else the store.

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crossgate::outbox::{Command, CommandState};

use super::reach::Reach;
use super::{ApiArgs, load_config};

#[derive(Subcommand)]
pub enum OutboundCommand {
    /// List an instance's commands to its channel, newest first.
    List {
        /// The channel instance.
        #[arg(long)]
        instance: String,
        /// Only commands in this state: queued, sent, confirmed, failed, dead, coalesced.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one command with every attempt (as JSON).
    Show {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Send a dead (or failed) command again now.
    Retry {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn outbound(config_path: &Path, cmd: OutboundCommand) -> Result<()> {
    let config = load_config(config_path)?;
    match cmd {
        OutboundCommand::List {
            instance,
            status,
            limit,
            json,
            api,
        } => {
            let state = status
                .as_deref()
                .map(|s| {
                    CommandState::parse(s).with_context(|| {
                        format!(
                            "--status {s}: use queued, sent, confirmed, failed, dead or coalesced"
                        )
                    })
                })
                .transpose()?;
            if !config.instances.contains_key(&instance) {
                bail!(
                    "--instance {instance}: not an instance of {}",
                    config_path.display()
                );
            }
            let reach = Reach::connect(&config, &api).await?;
            let page = reach.outbound_list(&instance, state, limit).await?;
            if json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print_table(&page);
            }
        }
        OutboundCommand::Show { id, api } => {
            let cmd = Reach::connect(&config, &api)
                .await?
                .outbound_get(&id)
                .await?;
            crossgate::outln!("{}", serde_json::to_string_pretty(&cmd)?);
        }
        OutboundCommand::Retry { id, api } => {
            let cmd = Reach::connect(&config, &api)
                .await?
                .outbound_retry(&id)
                .await?;
            crossgate::outln!("{}: {} again", cmd.id, cmd.state.as_str());
        }
    }
    Ok(())
}

fn print_table(commands: &[Command]) {
    crossgate::outln!(
        "{:<48} {:<10} {:<9} {:<20} last",
        "id",
        "state",
        "attempts",
        "accepted"
    );
    for c in commands {
        let last = c
            .reason
            .clone()
            .or_else(|| c.attempts.last().and_then(|a| a.message.clone()))
            .unwrap_or_default();
        crossgate::outln!(
            "{:<48} {:<10} {:<9} {:<20} {last}",
            c.id,
            c.state.as_str(),
            c.attempts.len(),
            c.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if commands.is_empty() {
        crossgate::outln!("(none)");
    }
}
