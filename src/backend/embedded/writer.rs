//! The writer thread: the one way anything is written to the embedded store.
//!
//! Every write is an [`Op`]: a closure run inside the batch's transaction, which answers its
//! caller only once the batch's fate is known (committed, or rolled back with the reason). A
//! storage error in any op rolls the whole batch back, and every caller of the batch is told.

use std::sync::Arc;

use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::EmbeddedOptions;
use crate::store::{StoreError, StoreResult};

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 512;

/// What a write runs with: the batch's transaction and the writer's event sequence.
pub(super) struct Tx<'a> {
    pub txn: &'a WriteTransaction,
    pub next_seq: &'a mut u64,
    pub options: &'a EmbeddedOptions,
}

/// One write. Called with the transaction, or with `None` when its batch failed before it
/// ran.
pub(super) type Op = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> Ran + Send>;

/// A write that ran: whether it hit a storage error (which aborts the batch), and how to
/// answer its caller once the batch is committed (`None`) or failed (`Some(reason)`).
pub(super) struct Ran {
    fatal: Option<String>,
    answer: Answer,
}

/// Tells a write's caller how its batch ended: `None` committed, `Some(reason)` failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// Wraps a write into an [`Op`] and the receiver its caller awaits.
pub(super) fn op<T: Send + 'static>(
    f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send + 'static,
) -> (Op, oneshot::Receiver<StoreResult<T>>) {
    let (reply, answer) = oneshot::channel();
    let op: Op = Box::new(move |tx| {
        let result = match tx {
            Some(tx) => f(tx),
            None => down("batch aborted"),
        };
        // A business error (invalid, not found) fails only this write; a storage error fails
        // the batch.
        let fatal = match &result {
            Err(e @ (StoreError::Unavailable(_) | StoreError::Corrupt(_))) => Some(e.to_string()),
            _ => None,
        };
        Ran {
            fatal,
            answer: Box::new(move |failure| {
                // A caller that went away (request timed out) simply does not get its answer.
                let _ = reply.send(match failure {
                    None => result,
                    Some(reason) => down(reason),
                });
            }),
        }
    });
    (op, answer)
}

fn down<T>(message: &str) -> StoreResult<T> {
    Err(StoreError::Unavailable(message.to_string()))
}

pub(super) struct Writer {
    db: Arc<Database>,
    options: EmbeddedOptions,
    next_seq: u64,
}

impl Writer {
    pub(super) fn new(db: Arc<Database>, options: EmbeddedOptions, next_seq: u64) -> Self {
        Self {
            db,
            options,
            next_seq,
        }
    }

    /// Takes every op waiting (up to [`MAX_BATCH`]) into one transaction: group commit.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<Op>) {
        let seq_before = self.next_seq;
        let txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("cannot begin a write: {e}");
                for op in batch {
                    (op(None).answer)(Some(&reason));
                }
                return;
            }
        };
        let mut answers = Vec::with_capacity(batch.len());
        let mut fatal: Option<String> = None;
        for op in batch {
            let ran = if fatal.is_some() {
                op(None)
            } else {
                let mut tx = Tx {
                    txn: &txn,
                    next_seq: &mut self.next_seq,
                    options: &self.options,
                };
                let ran = op(Some(&mut tx));
                fatal = ran.fatal.clone();
                ran
            };
            answers.push(ran.answer);
        }
        let failure = match fatal {
            // A storage error mid-batch: nothing of the batch is committed.
            Some(reason) => {
                drop(txn);
                Some(reason)
            }
            None => txn.commit().err().map(|e| format!("commit failed: {e}")),
        };
        if failure.is_some() {
            self.next_seq = seq_before;
        }
        for answer in answers {
            answer(failure.as_deref());
        }
    }
}
