//! Delivers an instance's commands: claims the due heads of its queues, runs the adapter's
//! operations each command still needs through the channel client (the instance's rate
//! budget, one attempt per request), and stores what came of it. Retries are the outbox's, not
//! the client's: every attempt is stored with the command.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::command::{Attempt, AttemptOutcome, Command, CommandState};
use super::request::{self, Values, Verdict};
use super::store::OutboxStore;
use crate::adapter::spec::{IfNone, OperationSpec};
use crate::channel::client::{ApiError, ChannelClient, DeclaredLimits, Limiter, RetryPolicy};
use crate::config::{Instance, OutboxSettings};
use crate::model::CommandField;
use crate::store::{SharedBudget, StoreResult};

/// Commands claimed per pass: small, so a pass ends well within its claims and its lease.
const BATCH: usize = 8;

/// The outbox worker of one instance.
pub struct Worker {
    inst: Arc<Instance>,
    client: ChannelClient,
    /// The operations' own rates, by operation name.
    limits: BTreeMap<String, Limiter>,
    settings: OutboxSettings,
}

impl Worker {
    /// The worker of an instance whose adapter declares `[outbound]`; `None` for the others.
    pub fn for_instance(
        inst: &Arc<Instance>,
        budget: Option<SharedBudget>,
        settings: OutboxSettings,
    ) -> Result<Option<Self>, ApiError> {
        if inst.adapter.spec().outbound.is_none() {
            return Ok(None);
        }
        let client = ChannelClient::new(inst, RetryPolicy::default())?.with_budget(budget);
        Ok(Some(Self {
            inst: inst.clone(),
            client,
            limits: DeclaredLimits::of(inst.adapter.spec()).outbound,
            settings,
        }))
    }

    /// Claims one batch of due commands and delivers them; how many it delivered.
    pub async fn step<S: OutboxStore>(&self, store: &S) -> StoreResult<usize> {
        let now = Utc::now();
        let until = now + self.settings.claim;
        let claimed = store.outbox_claim(&self.inst.id, now, until, BATCH).await?;
        let n = claimed.len();
        for cmd in claimed {
            let id = cmd.id.clone();
            let trace = crate::telemetry::TraceStart::new();
            let done =
                crate::telemetry::with_trace("outbound_command", trace, self.deliver(cmd)).await;
            tracing::info!(instance = %self.inst.id, command = %id, state = done.state.as_str(), attempts = done.attempts.len(), "outbound command attempted");
            metrics::counter!(crate::telemetry::names::OUTBOUND_COMMANDS, "instance" => self.inst.id.clone(), "state" => done.state.as_str()).increment(1);
            store.outbox_settle(done, Utc::now()).await?;
        }
        Ok(n)
    }

    /// Runs the operations the command still needs, in the adapter's order, and stops at the
    /// first that does not succeed.
    async fn deliver(&self, mut cmd: Command) -> Command {
        let spec = self.inst.adapter.spec();
        let ops = spec
            .outbound
            .as_ref()
            .map(|o| o.operations.as_slice())
            .unwrap_or(&[]);
        let mut last: Option<Verdict> = None;
        for op in ops {
            let pending = cmd.pending_fields();
            let sending: Vec<CommandField> = op
                .sends
                .iter()
                .copied()
                .filter(|f| pending.contains(f))
                .collect();
            if sending.is_empty() || cmd.operations_done.contains(&op.name) {
                continue;
            }
            let ran = self.run(op, &cmd, &sending).await;
            cmd.attempts.push(Attempt {
                at: Utc::now(),
                operation: op.name.clone(),
                outcome: ran.verdict.outcome,
                status: ran.status,
                message: ran.verdict.message.clone(),
            });
            if ran.verdict.outcome != AttemptOutcome::Confirmed {
                last = Some(ran.verdict);
                break;
            }
            cmd.operations_done.push(op.name.clone());
            if let Some(r) = ran.verdict.reference {
                cmd.channel_refs.insert(op.name.clone(), r);
            }
            // A field is confirmed once every operation that sends it is done (WooCommerce
            // completes an order and then adds the tracking note).
            for f in sending {
                let all_done = ops
                    .iter()
                    .filter(|o| o.sends.contains(&f))
                    .all(|o| cmd.operations_done.contains(&o.name));
                if all_done && !cmd.confirmed.contains(&f) {
                    cmd.confirmed.push(f);
                }
            }
        }
        let now = Utc::now();
        cmd.updated_at = now;
        self.next_state(&mut cmd, last, now);
        cmd
    }

    fn next_state(&self, cmd: &mut Command, last: Option<Verdict>, now: DateTime<Utc>) {
        let Some(v) = last else {
            if cmd.pending_fields().is_empty() {
                cmd.state = CommandState::Confirmed;
                cmd.due_at = None;
            } else {
                // The adapter has no operation for a field the command sets.
                let missing: Vec<&str> = cmd.pending_fields().iter().map(|f| f.as_str()).collect();
                cmd.state = CommandState::Dead;
                cmd.due_at = None;
                cmd.reason = Some(format!(
                    "the adapter has no outbound operation for {}",
                    missing.join(", ")
                ));
            }
            return;
        };
        match v.outcome {
            AttemptOutcome::Throttled | AttemptOutcome::Retryable
                if cmd.failed_attempts() < self.settings.max_attempts as usize =>
            {
                let wait = v
                    .retry_after
                    .unwrap_or_else(|| self.backoff(cmd.failed_attempts()));
                cmd.state = CommandState::Failed;
                cmd.due_at = Some(now + wait);
            }
            AttemptOutcome::Throttled | AttemptOutcome::Retryable => {
                cmd.state = CommandState::Dead;
                cmd.due_at = None;
                cmd.reason = Some(format!(
                    "gave up after {} attempts: {}",
                    cmd.failed_attempts(),
                    v.message.unwrap_or_default()
                ));
            }
            AttemptOutcome::Refused | AttemptOutcome::Unbuildable | AttemptOutcome::Confirmed => {
                cmd.state = CommandState::Dead;
                cmd.due_at = None;
                cmd.reason = v.message;
            }
        }
    }

    /// Full jitter: up to base·2^(n-1), capped.
    fn backoff(&self, failed: usize) -> Duration {
        let cap = self
            .settings
            .retry_base
            .saturating_mul(1u32 << (failed.saturating_sub(1)).min(16))
            .min(self.settings.retry_max);
        let ms =
            rand::rng().random_range(cap.as_millis() as u64 / 2..=cap.as_millis().max(1) as u64);
        Duration::from_millis(ms)
    }

    /// One operation: its lookups, then its request.
    async fn run(&self, op: &OperationSpec, cmd: &Command, sending: &[CommandField]) -> Ran {
        let mut lookups = BTreeMap::new();
        for l in &op.lookups {
            let values = self.values(op, cmd, sending, &lookups);
            let built = values.text(&l.path, true).and_then(|path| {
                let query = l
                    .query
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), values.text(t, false)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                Ok((path, query))
            });
            let (path, query) = match built {
                Ok(b) => b,
                Err(e) => return Ran::unbuildable(e),
            };
            let answer = match self
                .client
                .call_once("GET", &path, &query, None, self.limits.get(&op.name))
                .await
            {
                Ok(a) => a,
                Err(e) => return Ran::no_answer(&e),
            };
            if !(200..300).contains(&answer.status) {
                let verdict = request::judge(op, answer.status, answer.retry_after, &answer.body);
                return Ran::answered(answer.status, verdict);
            }
            match request::pick(&answer.body, l) {
                Some(v) => lookups.insert(l.name.clone(), v),
                None if l.if_none == IfNone::Done => {
                    return Ran::already_done(format!(
                        "lookup '{}' found nothing left to do at the channel: done there \
                         already (by an earlier attempt whose answer was lost, or by hand)",
                        l.name
                    ));
                }
                None => {
                    return Ran::unbuildable(format!(
                        "lookup '{}': the channel's answer has nothing at {}",
                        l.name, l.pick
                    ));
                }
            };
        }
        let values = self.values(op, cmd, sending, &lookups);
        let built = match request::build(&values) {
            Ok(b) => b,
            Err(e) => return Ran::unbuildable(e),
        };
        match self
            .client
            .call_once(
                op.method.as_str(),
                &built.path,
                &built.query,
                built.body,
                self.limits.get(&op.name),
            )
            .await
        {
            Ok(a) => Ran::answered(
                a.status,
                request::judge(op, a.status, a.retry_after, &a.body),
            ),
            Err(e) => Ran::no_answer(&e),
        }
    }

    fn values<'a>(
        &'a self,
        op: &'a OperationSpec,
        cmd: &'a Command,
        sending: &'a [CommandField],
        lookups: &'a BTreeMap<String, String>,
    ) -> Values<'a> {
        Values {
            cmd,
            op,
            sending,
            settings: &self.inst.settings,
            lookups,
            now: Utc::now(),
        }
    }
}

/// What one operation came to.
struct Ran {
    status: Option<u16>,
    verdict: Verdict,
}

impl Ran {
    fn answered(status: u16, verdict: Verdict) -> Self {
        Self {
            status: Some(status),
            verdict,
        }
    }

    fn no_answer(e: &ApiError) -> Self {
        let outcome = match e {
            ApiError::Transport { .. } => AttemptOutcome::Retryable,
            _ => AttemptOutcome::Unbuildable,
        };
        Self::without_status(outcome, e.to_string())
    }

    /// Nothing to send: the channel already has what the operation would do.
    fn already_done(note: String) -> Self {
        Self::without_status(AttemptOutcome::Confirmed, note)
    }

    fn unbuildable(problem: String) -> Self {
        Self::without_status(AttemptOutcome::Unbuildable, problem)
    }

    fn without_status(outcome: AttemptOutcome, message: String) -> Self {
        Self {
            status: None,
            verdict: Verdict {
                outcome,
                message: Some(message),
                reference: None,
                retry_after: None,
            },
        }
    }
}
