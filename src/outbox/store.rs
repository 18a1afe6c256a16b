//! What the outbox needs from a store. Every backend in `crate::backend` implements it with the
//! rules of [`super::queue`]; the contract suite checks both.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::command::{Command, CommandState, IdempotencyRecord};
use super::queue::RetryRefusal;
use crate::store::{Cursor, Page, StoreResult};

/// A call's `Idempotency-Key`, scoped to the instance its commands are for.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
    pub ttl: Duration,
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// Stored: the commands as accepted (and those they replaced).
    Stored(Vec<Command>),
    /// The same call was made before with this key: its commands, unchanged.
    Repeat(Vec<String>),
    /// The key was used before for another request.
    KeyReused,
}

/// Commands of one instance, newest first.
#[derive(Debug, Clone)]
pub struct OutboxQuery {
    pub instance: String,
    pub state: Option<CommandState>,
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// A retry the queue rules refused, or the store's own failure.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error(transparent)]
    Refused(#[from] RetryRefusal),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub trait OutboxStore: Send + Sync + 'static {
    /// Stores `commands` (all of one instance) atomically, with the key of the call when it
    /// has one: durable when `Ok`.
    fn outbox_enqueue(
        &self,
        instance: &str,
        commands: Vec<Command>,
        idempotency: Option<Idempotency>,
    ) -> impl Future<Output = StoreResult<Enqueued>> + Send;

    fn outbox_get(&self, id: &str) -> impl Future<Output = StoreResult<Option<Command>>> + Send;

    /// Commands of an instance by (created, id), newest first.
    fn outbox_list(
        &self,
        q: OutboxQuery,
    ) -> impl Future<Output = StoreResult<Page<Command>>> + Send;

    /// Takes up to `max` due heads of the instance's queues, each `sent` until `until`.
    fn outbox_claim(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> impl Future<Output = StoreResult<Vec<Command>>> + Send;

    /// Stores what an attempt made of a claimed command.
    fn outbox_settle(
        &self,
        cmd: Command,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Sends a dead or failed command again.
    fn outbox_retry(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Command, RetryError>> + Send;

    /// Open commands (not confirmed, dead or coalesced) of an instance.
    fn outbox_depth(&self, instance: &str) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// Commands stored in one write belong to one instance (on Redis, one slot).
pub fn one_instance(instance: &str, commands: &[Command]) -> StoreResult<()> {
    if commands.iter().any(|c| c.instance != instance) {
        return Err(crate::store::StoreError::Invalid(
            "commands must belong to one instance".into(),
        ));
    }
    Ok(())
}

/// The stored answer of an earlier call with this key, if it is still kept.
pub fn live_record(
    record: Option<IdempotencyRecord>,
    now: DateTime<Utc>,
) -> Option<IdempotencyRecord> {
    record.filter(|r| r.expires_at > now)
}
