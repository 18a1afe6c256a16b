//! Thin webhooks (BigCommerce, TikTok Shop): the delivery only names a record. It is stored at
//! once (parked as a dead letter of kind `fetch_pending`, so the sender gets its 2xx and nothing
//! is lost), then this worker fetches the record, maps the assembled document
//! `{"webhook": <payload>, "<key>": <response>, …}` and resolves the parked delivery with the
//! records in one atomic write. A failed fetch stays parked and is retried with backoff; a
//! record that cannot be mapped becomes an ordinary dead letter for people to look at.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{ChannelClient, RetryPolicy};
use super::poll::{Vars, encode_segment, render};
use crate::adapter::{Routed, Target};
use crate::config::{Config, Instance};
use crate::pipeline::{self, FETCH_PENDING};
use crate::store::{DeadLetterQuery, DeadLetterReason, Store, StoreError};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPass {
    pub resolved: usize,
    pub failed: usize,
    pub unmappable: usize,
}

/// Fetches parked thin webhooks. Keeps, per dead letter, when it may be tried again.
pub struct Fetcher {
    clients: HashMap<String, ChannelClient>,
    next_try: HashMap<String, Instant>,
}

impl Fetcher {
    /// Clients for every instance whose adapter fetches; instances whose API settings are
    /// missing are reported once and skipped. With `budget`, requests come from the rate
    /// budget the replicas share.
    pub fn new(
        config: &Config,
        retry: RetryPolicy,
        budget: Option<crate::store::SharedBudget>,
    ) -> Self {
        let mut clients = HashMap::new();
        for inst in config.instances.values() {
            if inst.adapter.spec().fetch.is_none() {
                continue;
            }
            match ChannelClient::new(inst, retry.clone()) {
                Ok(c) => {
                    let c = c.with_budget(budget.clone());
                    clients.insert(inst.id.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(instance = %inst.id, error = %e, "thin webhooks of this instance cannot be fetched")
                }
            }
        }
        Self {
            clients,
            next_try: HashMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// One pass over the parked deliveries that are due.
    pub async fn pass<S: Store>(
        &mut self,
        store: &S,
        config: &Config,
    ) -> Result<FetchPass, StoreError> {
        let mut out = FetchPass::default();
        for (id, client) in &self.clients {
            let Some(inst) = config.instances.get(id) else {
                continue;
            };
            let mut after = None;
            let mut waiting = 0u64;
            loop {
                let page = store
                    .list_dead_letters(DeadLetterQuery {
                        instance: Some(id.clone()),
                        after: after.clone(),
                        limit: 200,
                    })
                    .await?;
                for dl in page.items.iter().filter(|d| d.reason.kind == FETCH_PENDING) {
                    waiting += 1;
                    if self
                        .next_try
                        .get(&dl.id)
                        .is_some_and(|t| *t > Instant::now())
                    {
                        continue;
                    }
                    // The fetch continues the trace of the thin webhook that announced it.
                    let trace = crate::telemetry::TraceStart {
                        trace_id: dl
                            .trace_id
                            .clone()
                            .unwrap_or_else(crate::telemetry::new_trace_id),
                        parent_span_id: None,
                    };
                    let fetched = fetch_one(store, inst, client, &dl.id);
                    match crate::telemetry::with_trace("fetch", trace, fetched).await {
                        Ok(true) => {
                            out.resolved += 1;
                            waiting -= 1;
                            self.next_try.remove(&dl.id);
                            metrics::counter!(crate::telemetry::names::FETCHES, "instance" => id.clone(), "outcome" => "ok").increment(1);
                        }
                        Ok(false) => {
                            out.unmappable += 1;
                            waiting -= 1;
                            self.next_try.remove(&dl.id);
                        }
                        Err(FetchError::Api(e @ super::client::ApiError::Status { .. })) => {
                            // The channel refuses (404: no such record, 401/403: credentials):
                            // retrying will not help; people look at it (a replay re-queues it).
                            out.unmappable += 1;
                            waiting -= 1;
                            self.next_try.remove(&dl.id);
                            metrics::counter!(crate::telemetry::names::FETCHES, "instance" => id.clone(), "outcome" => "refused").increment(1);
                            tracing::warn!(instance = %id, dead_letter_id = %dl.id, error = %e, "thin webhook fetch refused by the channel");
                            store
                                .update_dead_letter(
                                    &dl.id,
                                    DeadLetterReason {
                                        kind: "fetch_refused".into(),
                                        message: e.to_string(),
                                        errors: Vec::new(),
                                    },
                                )
                                .await?;
                        }
                        Err(e) => {
                            out.failed += 1;
                            metrics::counter!(crate::telemetry::names::FETCHES, "instance" => id.clone(), "outcome" => "failed").increment(1);
                            let tries = dl.failed_replays.min(10);
                            let wait =
                                Duration::from_secs(5u64 << tries).min(Duration::from_secs(3600));
                            self.next_try.insert(dl.id.clone(), Instant::now() + wait);
                            tracing::warn!(instance = %id, dead_letter_id = %dl.id, error = %e, retry_in_secs = wait.as_secs(), "thin webhook fetch failed");
                            store
                                .update_dead_letter(
                                    &dl.id,
                                    pipeline::fetch_pending(&format!(
                                        "fetch failed, will retry: {e}"
                                    )),
                                )
                                .await?;
                        }
                    }
                }
                match page.next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            crate::telemetry::history::record_fetch_backlog(id, waiting);
        }
        Ok(out)
    }
}

/// Fetches and resolves one parked delivery. `Ok(false)`: fetched, but the record does not map
/// (now an ordinary dead letter).
async fn fetch_one<S: Store>(
    store: &S,
    inst: &Arc<Instance>,
    client: &ChannelClient,
    dl_id: &str,
) -> Result<bool, FetchError> {
    let raw = store
        .get_delivery(dl_id)
        .await?
        .ok_or_else(|| FetchError::Gone(dl_id.to_string()))?;
    let spec = inst
        .adapter
        .spec()
        .fetch
        .as_ref()
        .ok_or_else(|| FetchError::Gone(dl_id.to_string()))?;
    // Decrypted where the channel encrypts its pushes (WeChat shop safe mode).
    let document = inst.document(&raw.body);
    let webhook: Value = serde_json::from_slice(&document)
        .map_err(|e| FetchError::Payload(format!("the webhook is not JSON: {e}")))?;
    let id = {
        let doc = inst
            .adapter
            .parse(&document)
            .map_err(|e| FetchError::Payload(e.to_string()))?;
        spec.id
            .get(crate::adapter::path::Scope::new(&doc))
            .and_then(|n| n.scalar_text().map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FetchError::Payload(format!("no record id at '{}'", spec.id)))?
    };
    let mut doc = serde_json::Map::new();
    doc.insert("webhook".into(), webhook);
    for r in &spec.requests {
        let path_vars = Vars {
            id: Some(encode_segment(&id)),
            ..Vars::default()
        };
        let vars = Vars {
            id: Some(id.clone()),
            ..Vars::default()
        };
        let path = render(&r.path, &path_vars, &inst.settings).map_err(FetchError::Payload)?;
        let mut query = Vec::new();
        for (k, v) in &r.query {
            query.push((
                k.clone(),
                render(v, &vars, &inst.settings).map_err(FetchError::Payload)?,
            ));
        }
        let resp = match &r.post_json {
            Some(template) => {
                // `{id}` inside a JSON string: the id escaped as JSON string content.
                let quoted = serde_json::to_string(&id).expect("strings serialize");
                let escaped = Vars {
                    id: Some(quoted[1..quoted.len() - 1].to_string()),
                    ..Vars::default()
                };
                let body =
                    render(template, &escaped, &inst.settings).map_err(FetchError::Payload)?;
                client
                    .post_json(&path, &query, body.into_bytes(), None)
                    .await?
            }
            None => client.get(&path, &query, None).await?,
        };
        // An empty list answers 204 or "" (BigCommerce, no shipping addresses).
        let v: Value = if resp.body.iter().all(u8::is_ascii_whitespace) {
            Value::Array(Vec::new())
        } else {
            serde_json::from_slice(&resp.body)
                .map_err(|e| FetchError::Payload(format!("{}: not JSON: {e}", resp.url)))?
        };
        doc.insert(r.key.clone(), v);
    }
    let body = serde_json::to_vec(&Value::Object(doc)).expect("JSON serializes");
    let ctx = pipeline::record_context(inst);
    let mapped = inst
        .adapter
        .parse(&body)
        .and_then(|d| inst.adapter.map(&d, Target::Order, &ctx))
        .and_then(Routed::into_records);
    if let Err(e) = &mapped {
        tracing::warn!(instance = %inst.id, dead_letter_id = %dl_id, kind = e.kind(), fields = %e.field_paths().join(","), "fetched record cannot be mapped");
    }
    let settled =
        pipeline::settle_dead_letter(store, inst, dl_id, mapped, chrono::Utc::now()).await?;
    Ok(settled.is_ok())
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Api(#[from] super::client::ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Payload(String),
    #[error("the raw delivery of {0} is gone")]
    Gone(String),
}
