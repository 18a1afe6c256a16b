//! The queue rules, the same for every backend: commands for one listing or order go out in
//! the order they were accepted, one at a time; a listing update accepted while an earlier one
//! waits unsent replaces it (coalescing); a command never overwrites a newer one.
//!
//! A backend reads a target's [`TargetQueue`] and the commands it names, asks one of these
//! functions what to write, and writes it atomically (the embedded store in its one write
//! transaction, Redis with a version check).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::{Action, Command, CommandState};

/// The open commands of one target, oldest first (the head is the one being sent or due
/// next), and the newest command ever accepted for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetQueue {
    pub open: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
}

/// What to write for one target: these commands, the queue, and when the target is due next
/// (`None`: nothing left to send, the target leaves the due index).
#[derive(Debug, Clone, PartialEq)]
pub struct Writes {
    pub commands: Vec<Command>,
    pub queue: TargetQueue,
    pub due: Option<DateTime<Utc>>,
}

/// When the head of a queue is due: a sent head when its claim runs out, any other at its
/// `due_at`.
fn head_due(queue: &TargetQueue, open: &[Command], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let head = queue.open.first()?;
    let cmd = open.iter().find(|c| &c.id == head)?;
    Some(cmd.due_at.unwrap_or(now))
}

/// Accepts `new` behind the target's `open` commands (in queue order). A listing update
/// replaces the last open one when that one is not with the channel now: the fields it had
/// not got confirmed and `new` does not set are carried over.
pub fn enqueue(
    mut queue: TargetQueue,
    mut open: Vec<Command>,
    mut new: Command,
    now: DateTime<Utc>,
) -> Writes {
    let mut commands = Vec::new();
    let tail = open
        .last_mut()
        .filter(|t| t.state != CommandState::Sent && !t.state.is_final());
    if let (Some(tail), Action::Listing(later)) = (tail, &new.action)
        && let Action::Listing(earlier) = &tail.action
    {
        let carried = earlier.without(&tail.confirmed).then(later);
        new.action = Action::Listing(carried);
        // A failed tail waits out its backoff (a channel's Retry-After); its replacement too.
        if let (Some(wait), Some(due)) = (tail.due_at, new.due_at)
            && wait > due
        {
            new.due_at = Some(wait);
        }
        new.replaces = tail.replaces.clone();
        new.replaces.push(tail.id.clone());
        tail.state = CommandState::Coalesced;
        tail.coalesced_into = Some(new.id.clone());
        tail.due_at = None;
        tail.updated_at = now;
        queue.open.retain(|id| id != &tail.id);
        commands.push(tail.clone());
        open.pop();
    }
    queue.open.push(new.id.clone());
    queue.latest = Some(new.id.clone());
    open.push(new.clone());
    commands.push(new);
    let due = head_due(&queue, &open, now);
    Writes {
        commands,
        queue,
        due,
    }
}

/// The head of a due target taken by a worker until `until`: `sent`, due again (to another
/// worker) only if no answer is settled by then.
pub fn claim(queue: TargetQueue, mut head: Command, until: DateTime<Utc>) -> Writes {
    head.state = CommandState::Sent;
    head.due_at = Some(until);
    Writes {
        commands: vec![head],
        queue,
        due: Some(until),
    }
}

/// Stores what an attempt made of `cmd` (its state set by the worker): a final command leaves
/// the queue and the next one is due at once; a failed one is due at its `due_at`.
pub fn settle(
    mut queue: TargetQueue,
    mut open: Vec<Command>,
    cmd: Command,
    now: DateTime<Utc>,
) -> Writes {
    if !queue.open.contains(&cmd.id) {
        // Settled already (a worker whose claim ran out while it waited, after another took
        // the command): what is stored stands.
        let due = head_due(&queue, &open, now);
        return Writes {
            commands: Vec::new(),
            queue,
            due,
        };
    }
    if cmd.state.is_final() {
        queue.open.retain(|id| id != &cmd.id);
        // The next command has waited for this one; its `due_at` has passed, so it goes now.
        open.retain(|c| c.id != cmd.id);
    } else if let Some(c) = open.iter_mut().find(|c| c.id == cmd.id) {
        *c = cmd.clone();
    }
    let due = head_due(&queue, &open, now);
    Writes {
        commands: vec![cmd],
        queue,
        due,
    }
}

/// Why a command cannot be retried by hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefusal {
    #[error("command is {0}; only a dead or failed command can be retried")]
    NotRetryable(&'static str),
    #[error("a newer command for the same listing exists ({0}); retrying would overwrite it")]
    Newer(String),
}

/// A dead (or failed) command sent again. A dead listing update is refused when a newer
/// command for the listing was accepted since: it would overwrite it.
pub fn retry(
    mut queue: TargetQueue,
    open: Vec<Command>,
    mut cmd: Command,
    now: DateTime<Utc>,
) -> Result<Writes, RetryRefusal> {
    match cmd.state {
        CommandState::Dead => {
            if matches!(cmd.action, Action::Listing(_))
                && let Some(latest) = &queue.latest
                && latest != &cmd.id
            {
                return Err(RetryRefusal::Newer(latest.clone()));
            }
        }
        CommandState::Failed => {}
        other => return Err(RetryRefusal::NotRetryable(other.as_str())),
    }
    let was_dead = cmd.state == CommandState::Dead;
    cmd.state = CommandState::Queued;
    cmd.reason = None;
    cmd.updated_at = now;
    cmd.due_at = Some(now);
    let mut open = open;
    if was_dead {
        // Shipments are independent: a retried one goes behind what is open.
        queue.open.push(cmd.id.clone());
        open.push(cmd.clone());
    } else if let Some(c) = open.iter_mut().find(|c| c.id == cmd.id) {
        *c = cmd.clone();
    }
    let due = head_due(&queue, &open, now);
    Ok(Writes {
        commands: vec![cmd],
        queue,
        due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CommandField as Field;
    use crate::outbox::command::{ListingChange, Target};

    fn target() -> Target {
        Target::Listing {
            listing_id: "l1".into(),
            external_id: "v1".into(),
            product_id: None,
            sku: None,
            stock_ref: None,
        }
    }

    fn stock(n: i64, now: DateTime<Utc>) -> Command {
        Command::new(
            "shop",
            target(),
            Action::Listing(ListingChange {
                stock: Some(n),
                ..Default::default()
            }),
            now,
        )
    }

    #[test]
    fn a_later_stock_level_replaces_an_unsent_one_and_keeps_its_other_fields() {
        let now = Utc::now();
        let mut first = stock(5, now);
        first.action = Action::Listing(ListingChange {
            stock: Some(5),
            status: Some(crate::outbox::command::SetStatus::Inactive),
            ..Default::default()
        });
        let w = enqueue(TargetQueue::default(), vec![], first.clone(), now);
        assert_eq!(w.queue.open, vec![first.id.clone()]);
        let second = stock(7, now);
        let w = enqueue(w.queue, vec![first.clone()], second.clone(), now);
        assert_eq!(w.queue.open, vec![second.id.clone()]);
        assert_eq!(w.commands[0].state, CommandState::Coalesced);
        assert_eq!(w.commands[0].coalesced_into.as_deref(), Some(&*second.id));
        let Action::Listing(c) = &w.commands[1].action else {
            panic!("listing change")
        };
        assert_eq!(c.stock, Some(7));
        assert_eq!(c.status, Some(crate::outbox::command::SetStatus::Inactive));
        assert_eq!(w.commands[1].replaces, vec![first.id]);
    }

    #[test]
    fn a_command_with_the_channel_is_not_replaced_and_confirmed_fields_are_not_resent() {
        let now = Utc::now();
        let mut sent = stock(5, now);
        let w = enqueue(TargetQueue::default(), vec![], sent.clone(), now);
        let w = claim(w.queue, sent.clone(), now + chrono::Duration::seconds(30));
        sent = w.commands[0].clone();
        let next = stock(6, now);
        let w = enqueue(w.queue, vec![sent.clone()], next.clone(), now);
        assert_eq!(w.queue.open, vec![sent.id.clone(), next.id.clone()]);
        // The head is with the channel: due when its claim runs out.
        assert_eq!(w.due, Some(now + chrono::Duration::seconds(30)));

        // A failed update whose stock was confirmed but price was not: a later status update
        // carries the price, not the stock.
        let mut failed = stock(1, now);
        failed.action = Action::Listing(ListingChange {
            stock: Some(1),
            price: Some(
                crate::model::Money::parse(
                    "9.99",
                    crate::model::CurrencyCode::parse("EUR").unwrap(),
                )
                .unwrap(),
            ),
            status: None,
        });
        failed.state = CommandState::Failed;
        failed.confirmed = vec![Field::Stock];
        let q = TargetQueue {
            open: vec![failed.id.clone()],
            latest: Some(failed.id.clone()),
        };
        let mut later = stock(0, now);
        later.action = Action::Listing(ListingChange {
            status: Some(crate::outbox::command::SetStatus::Active),
            ..Default::default()
        });
        let w = enqueue(q, vec![failed], later, now);
        let Action::Listing(c) = &w.commands[1].action else {
            panic!("listing change")
        };
        assert_eq!(c.stock, None);
        assert!(c.price.is_some());
    }

    #[test]
    fn a_replacement_waits_out_the_backoff_and_a_late_settle_changes_nothing() {
        let now = Utc::now();
        let mut failed = stock(1, now);
        failed.state = CommandState::Failed;
        failed.due_at = Some(now + chrono::Duration::seconds(60));
        let q = TargetQueue {
            open: vec![failed.id.clone()],
            latest: Some(failed.id.clone()),
        };
        let w = enqueue(q, vec![failed.clone()], stock(2, now), now);
        assert_eq!(
            w.commands[1].due_at,
            Some(now + chrono::Duration::seconds(60))
        );
        assert_eq!(w.due, Some(now + chrono::Duration::seconds(60)));
        // The first command is no longer open: a worker settling it late writes nothing.
        let mut late = failed;
        late.state = CommandState::Confirmed;
        let after = settle(w.queue.clone(), vec![w.commands[1].clone()], late, now);
        assert!(after.commands.is_empty());
        assert_eq!(after.queue, w.queue);
    }

    #[test]
    fn settling_moves_the_queue_on_and_retry_never_overwrites_a_newer_command() {
        let now = Utc::now();
        let a = stock(1, now);
        let w = enqueue(TargetQueue::default(), vec![], a.clone(), now);
        let w = claim(w.queue, a.clone(), now + chrono::Duration::seconds(30));
        let sent = w.commands[0].clone();
        let b = stock(2, now);
        let w = enqueue(w.queue, vec![sent.clone()], b.clone(), now);
        let mut dead = sent.clone();
        dead.state = CommandState::Dead;
        let later = now + chrono::Duration::seconds(1);
        let w = settle(w.queue, vec![sent, b.clone()], dead.clone(), later);
        assert_eq!(w.queue.open, vec![b.id.clone()]);
        // The next one has waited since it was accepted: due at once.
        assert_eq!(w.due, Some(now));
        assert_eq!(
            retry(w.queue, vec![b.clone()], dead, later),
            Err(RetryRefusal::Newer(b.id))
        );
    }
}
