//! The one way a command reaches the gateway's data: the running daemon's API when one answers
//! (it holds the embedded store's lock, and on Redis it is the process that runs the jobs),
//! else the store itself. Every operation is typed on both paths, so a command is written once.

use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crossgate::backend::AnyStore;
use crossgate::config::Config;
use crossgate::fx::LogFilter;
use crossgate::fx::log::{FxEntry, PairReport};
use crossgate::fx::rates::RateDoc;
use crossgate::fx::store::FxStore;
use crossgate::fx::{Verification, book::RateBook};
use crossgate::ingress::answers::{
    BackfillStatus, DeliveryAnswer, DeliveryStatus, Page, ReplayAnswer,
};
use crossgate::model::Change;
use crossgate::pipeline::{self, ReplayError, Submission};
use crossgate::reco::runs::{JobsRun, JobsStatus};
use crossgate::replica::ClusterStatus;
use crossgate::store::{DeadLetter, DeadLetterQuery, Reconciliation, Store};
use crossgate::tax::Quote;
use crossgate::with_store;

use super::ApiArgs;

/// The running daemon's API, or the store.
pub enum Reach {
    Api(ApiClient),
    Store(AnyStore),
}

impl Reach {
    /// The daemon at `--url` (which must answer), else the one at the config's listen address
    /// when it answers, else the config's store.
    pub async fn connect(config: &Config, api: &ApiArgs) -> Result<Self> {
        let client = ApiClient::with_config(Some(config), api)?;
        if client.is_up().await {
            return Ok(Reach::Api(client));
        }
        if api.url.is_some() {
            bail!("the daemon at {} does not answer", client.base());
        }
        Ok(Reach::Store(open_store(config).await?))
    }

    /// Where the command's reads and writes go, for people.
    pub fn describe(&self, config: &Config) -> String {
        match self {
            Reach::Api(c) => format!("the daemon at {}", c.base()),
            Reach::Store(_) => format!("the {:?} store directly", config.store.backend),
        }
    }

    /// Stores a rate document; `Ok(false)` when it was stored before. The daemon is sent the
    /// document's own bytes (it parses and hashes them itself).
    pub async fn put_rates(&self, doc: RateDoc, bytes: Vec<u8>) -> Result<bool> {
        match self {
            Reach::Store(s) => Ok(with_store!(s, st => st.fx_put_doc(doc).await)?),
            Reach::Api(c) => {
                let query = [("source", doc.source.as_str()), ("origin", &doc.origin)];
                let req = c.request(reqwest::Method::POST, "/v1/fx/rates");
                let stored: crossgate::ingress::answers::RatesStored =
                    c.send(req.query(&query).body(bytes)).await?;
                Ok(stored.stored)
            }
        }
    }

    /// Every FX log entry the filter selects, with the entry that superseded each, from one
    /// snapshot of the log (one read of the store, or one streamed answer of the daemon).
    pub async fn fx_log(&self, filter: &LogFilter) -> Result<Vec<(FxEntry, Option<String>)>> {
        match self {
            Reach::Store(s) => {
                Ok(with_store!(s, st => crossgate::fx::export_all(st, filter).await)?)
            }
            Reach::Api(c) => {
                let resp = fx_log_request(c, filter, "jsonl").await?;
                let text = resp.text().await.context("reading the FX log")?;
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| {
                        serde_json::from_str::<Value>(l)
                            .and_then(entry_of)
                            .context("unexpected FX log entry from the daemon")
                    })
                    .collect()
            }
        }
    }

    /// The FX log export as CSV on stdout: the daemon's streamed answer passed through as it
    /// arrives, or rendered from one read of the store.
    pub async fn fx_log_csv(&self, filter: &LogFilter) -> Result<()> {
        match self {
            Reach::Store(s) => {
                let items = with_store!(s, st => crossgate::fx::export_all(st, filter).await)?;
                for chunk in crossgate::fx::export::csv_chunks(&items)? {
                    crossgate::stdout::write_bytes(&chunk);
                }
            }
            Reach::Api(c) => {
                let mut resp = fx_log_request(c, filter, "csv").await?;
                while let Some(chunk) = resp.chunk().await.context("reading the FX log")? {
                    crossgate::stdout::write_bytes(&chunk);
                }
            }
        }
        Ok(())
    }

    pub async fn fx_verify(&self) -> Result<Verification> {
        match self {
            Reach::Store(s) => Ok(with_store!(s, st => crossgate::fx::verify_log(st).await)?),
            Reach::Api(c) => c.get("/v1/fx/verify").await,
        }
    }

    /// Every signed checkpoint in the store.
    pub async fn fx_checkpoints(&self) -> Result<Vec<crossgate::fx::checkpoint::Checkpoint>> {
        match self {
            Reach::Store(s) => Ok(with_store!(s, st => st.fx_checkpoints().await)?),
            Reach::Api(c) => {
                let answer: crossgate::ingress::answers::FxCheckpoints =
                    c.get("/v1/fx/checkpoints").await?;
                Ok(answer.checkpoints)
            }
        }
    }

    pub async fn fx_report(
        &self,
        range: &crossgate::fx::log::ReportRange,
        max_age_days: i64,
    ) -> Result<Vec<PairReport>> {
        match self {
            Reach::Store(s) => {
                Ok(with_store!(s, st => crossgate::fx::report(st, range, max_age_days).await)?)
            }
            Reach::Api(c) => {
                let mut path = format!("/v1/fx/report?from={}&to={}", range.from, range.to);
                if let Some(d) = range.revalue_at {
                    path.push_str(&format!("&revalue_at={d}"));
                }
                let answer: crossgate::ingress::answers::FxReportAnswer = c.get(&path).await?;
                Ok(answer.pairs)
            }
        }
    }

    /// Quotes an order JSON (nothing stored), with the store's rates.
    pub async fn quote(
        &self,
        config: &Config,
        order_json: &[u8],
        pack: Option<&str>,
        annual_cny: rust_decimal::Decimal,
    ) -> Result<Quote> {
        match self {
            Reach::Store(s) => {
                let order = crossgate::tax::order_from_json(order_json)
                    .map_err(|e| anyhow::anyhow!("the order: {e}"))?;
                let docs = with_store!(s, st => st.fx_docs().await)?;
                let book = RateBook::new(docs, config.fx.max_age_days);
                crossgate::tax::quote_order(
                    &order,
                    &config.tax,
                    pack,
                    &book,
                    annual_cny,
                    Default::default(),
                )
                .map_err(|e| anyhow::anyhow!(e))
            }
            Reach::Api(c) => {
                let mut q = vec![("annual_cny", annual_cny.to_string())];
                q.extend(pack.map(|p| ("pack", p.to_string())));
                let req = c.request(reqwest::Method::POST, "/v1/quote");
                c.send(req.query(&q).body(order_json.to_vec())).await
            }
        }
    }

    /// Orders of an instance seen by only one of polling and webhooks.
    pub async fn reconcile(
        &self,
        instance: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Reconciliation> {
        match self {
            Reach::Store(s) => Ok(with_store!(s, st => st.reconcile(instance, since).await)?),
            Reach::Api(c) => {
                let mut path = format!("/v1/instances/{instance}/reconciliation");
                if let Some(s) = since {
                    let s = s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    path.push_str(&format!("?since={s}"));
                }
                let answer: crossgate::ingress::answers::ReconciliationAnswer =
                    c.get(&path).await?;
                Ok(answer.result)
            }
        }
    }

    /// A page of dead letters, oldest first.
    pub async fn dead_letters(
        &self,
        instance: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>> {
        match self {
            Reach::Store(s) => {
                let query = DeadLetterQuery {
                    instance: instance.map(str::to_string),
                    after: match cursor {
                        Some(c) => Some(
                            crossgate::store::Cursor::decode(c).context("cursor is not valid")?,
                        ),
                        None => None,
                    },
                    limit,
                };
                Ok(with_store!(s, st => st.list_dead_letters(query).await)?.into())
            }
            Reach::Api(c) => {
                let mut q = vec![("limit", limit.to_string())];
                q.extend(instance.map(|i| ("instance", i.to_string())));
                q.extend(cursor.map(|c| ("cursor", c.to_string())));
                let req = c.request(reqwest::Method::GET, "/v1/dead-letters");
                c.send(req.query(&q)).await
            }
        }
    }

    /// An instance's outbound commands, newest first.
    pub async fn outbound_list(
        &self,
        instance: &str,
        state: Option<crossgate::outbox::CommandState>,
        limit: usize,
    ) -> Result<Vec<crossgate::outbox::Command>> {
        use crossgate::outbox::store::{OutboxQuery, OutboxStore};
        match self {
            Reach::Store(s) => {
                let q = OutboxQuery {
                    instance: instance.to_string(),
                    state,
                    after: None,
                    limit,
                };
                Ok(with_store!(s, st => st.outbox_list(q).await)?.items)
            }
            Reach::Api(c) => {
                let mut q = vec![
                    ("instance", instance.to_string()),
                    ("limit", limit.to_string()),
                ];
                q.extend(state.map(|s| ("status", s.as_str().to_string())));
                let req = c.request(reqwest::Method::GET, "/v1/outbound").query(&q);
                let page: Page<crossgate::outbox::Command> = c.send(req).await?;
                Ok(page.items)
            }
        }
    }

    /// One outbound command with its attempts.
    pub async fn outbound_get(&self, id: &str) -> Result<crossgate::outbox::Command> {
        use crossgate::outbox::store::OutboxStore;
        match self {
            Reach::Store(s) => with_store!(s, st => st.outbox_get(id).await)?
                .with_context(|| format!("no outbound command {id}")),
            Reach::Api(c) => c.get(&format!("/v1/outbound/{id}")).await,
        }
    }

    /// Sends a dead (or failed) outbound command again.
    pub async fn outbound_retry(&self, id: &str) -> Result<crossgate::outbox::Command> {
        use crossgate::outbox::store::{OutboxStore, RetryError};
        match self {
            Reach::Store(s) => match with_store!(s, st => st.outbox_retry(id, Utc::now()).await) {
                Ok(c) => Ok(c),
                Err(RetryError::Refused(r)) => bail!("{id}: {r}"),
                Err(RetryError::Store(e)) => bail!("{id}: {e}"),
            },
            Reach::Api(c) => {
                let path = format!("/v1/outbound/{id}/retry");
                c.send(c.request(reqwest::Method::POST, &path)).await
            }
        }
    }

    /// Normalizes a dead letter again with the current adapter.
    pub async fn replay(&self, config: &Config, id: &str) -> Result<Replayed> {
        match self {
            Reach::Store(s) => {
                let r = with_store!(s, st => pipeline::replay_dead_letter(st, config, id, Utc::now()).await);
                Ok(match r {
                    Ok(records) => Replayed::Resolved(serde_json::to_value(records)?),
                    Err(e @ ReplayError::FetchQueued(_)) => Replayed::FetchQueued(e.to_string()),
                    Err(ReplayError::Store(e)) => return Err(e.into()),
                    Err(e) => Replayed::Failed(e.to_string()),
                })
            }
            Reach::Api(c) => {
                let path = format!("/v1/dead-letters/{id}/replay");
                match c
                    .answer::<ReplayAnswer>(c.request(reqwest::Method::POST, &path))
                    .await?
                {
                    Ok(a) if a.status == "resolved" => Ok(Replayed::Resolved(
                        serde_json::to_value(a.records.unwrap_or_default())?,
                    )),
                    Ok(a) => Ok(Replayed::FetchQueued(a.detail.unwrap_or_default())),
                    Err(problem) => Ok(Replayed::Failed(problem)),
                }
            }
        }
    }

    /// Stores one import chunk (a file in the adapter's format) under an idempotency key: the
    /// change of each record, or `None` when the chunk was imported before.
    pub async fn import_chunk(
        &self,
        inst: &std::sync::Arc<crossgate::config::Instance>,
        key: &str,
        body: Vec<u8>,
    ) -> Result<Option<Vec<Change>>> {
        match self {
            Reach::Store(s) => {
                let how = Submission::AdapterFormat;
                let r = with_store!(s, st => pipeline::submit(st, inst, how, Some(key), body, Utc::now()).await)?;
                Ok(match r.outcome {
                    crossgate::store::IngestOutcome::Duplicate { .. } => None,
                    crossgate::store::IngestOutcome::Stored { records, .. } => {
                        Some(records.iter().map(|r| r.change).collect())
                    }
                })
            }
            Reach::Api(c) => {
                let path = format!("/v1/instances/{}/imports", inst.id);
                let req = c
                    .request(reqwest::Method::POST, &path)
                    .header("Content-Type", "text/csv")
                    .header("Idempotency-Key", key)
                    .body(body);
                let answer: DeliveryAnswer = c.send(req).await.context("sending a chunk")?;
                Ok((answer.status != DeliveryStatus::Duplicate).then(|| {
                    let records = answer.records.unwrap_or_default();
                    records.iter().map(|r| r.change).collect()
                }))
            }
        }
    }

    /// Runs the recommendation and ranking jobs (in the daemon when it runs, one run at a time).
    pub async fn run_jobs(
        &self,
        config: &Config,
        run: &JobsRun,
        progress: &dyn crossgate::reco::job::Progress,
    ) -> Result<crossgate::reco::job::RunReport> {
        match self {
            Reach::Store(s) => Ok(with_store!(s, st => crossgate::reco::runs::run_requested(
                st, &config.jobs, &config.fx, run, progress
            ).await)?),
            Reach::Api(c) => {
                progress.stage("running in the daemon", None);
                let req = c.request(reqwest::Method::POST, "/v1/jobs/run").json(run);
                c.send(req).await
            }
        }
    }

    /// Takes in an instance's orders updated from `since` to `until` (default: now) by polling
    /// its API, resumable from the stored cursor; `progress` sees the status after each page
    /// (here) or each look at the daemon's run.
    pub async fn backfill(
        &self,
        inst: &std::sync::Arc<crossgate::config::Instance>,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        mut progress: impl FnMut(&BackfillStatus),
    ) -> Result<BackfillStatus> {
        match self {
            Reach::Store(s) => {
                use crossgate::channel::poll::{Mode, Poller};
                let budget = with_store!(s, st => st.shared_budget());
                let poller = Poller::for_instance(inst, budget)?;
                let mut status = BackfillStatus::started(&inst.id, since, until);
                let mode = Mode::Backfill { since, until };
                let state = with_store!(s, st => poller.run(st, &mode, |p| {
                    status.page(p);
                    progress(&status);
                }).await)?;
                status.finished(&state);
                Ok(status)
            }
            Reach::Api(c) => {
                let path = format!("/v1/instances/{}/backfill", inst.id);
                let body = serde_json::json!({
                    "since": since.to_rfc3339(),
                    "until": until.map(|u| u.to_rfc3339()),
                });
                let req = c.request(reqwest::Method::POST, &path).json(&body);
                let mut status: BackfillStatus = c.send(req).await?;
                while status.running {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    status = c.get(&path).await?;
                    progress(&status);
                }
                match status.error {
                    Some(e) => bail!("the daemon's backfill of {} stopped: {e}", inst.id),
                    None => Ok(status),
                }
            }
        }
    }

    pub async fn cluster_status(&self, config: &Config) -> Result<ClusterStatus> {
        match self {
            Reach::Store(s) => {
                Ok(with_store!(s, st => crossgate::replica::status(st, config).await)?)
            }
            Reach::Api(c) => c.get("/v1/cluster").await,
        }
    }

    pub async fn jobs_status(&self) -> Result<JobsStatus> {
        match self {
            Reach::Store(s) => Ok(with_store!(s, st => crossgate::reco::runs::status(st).await)?),
            Reach::Api(c) => c.get("/v1/jobs").await,
        }
    }
}

/// What a replay did.
pub enum Replayed {
    /// The records stored (as JSON, for people).
    Resolved(Value),
    /// A thin webhook, queued for another fetch.
    FetchQueued(String),
    /// Still failing, or not replayable: why.
    Failed(String),
}

/// An entry of a daemon's FX log page. (Read field by field rather than with a flattened
/// struct: serde_json's exact numbers do not pass through `#[serde(flatten)]`.)
/// `GET /v1/fx/log` with the filter, in `format`; an error unless the daemon answers 2xx.
async fn fx_log_request(
    c: &ApiClient,
    filter: &LogFilter,
    format: &str,
) -> Result<reqwest::Response> {
    let mut q: Vec<(&str, String)> = vec![("format", format.into())];
    q.extend(filter.from.map(|f| ("from", f.to_string())));
    q.extend(filter.to.map(|t| ("to", t.to_string())));
    q.extend(filter.currency.clone().map(|c| ("currency", c)));
    q.extend(filter.order.clone().map(|o| ("order", o)));
    q.extend(filter.channel.clone().map(|c| ("channel", c)));
    q.extend(filter.instance.clone().map(|i| ("instance", i)));
    if filter.parts == crossgate::fx::Parts::All {
        q.push(("parts", "all".into()));
    }
    let resp = c
        .request(reqwest::Method::GET, "/v1/fx/log")
        .query(&q)
        .send()
        .await
        .with_context(|| format!("the daemon at {}", c.base()))?;
    if !resp.status().is_success() {
        bail!(
            "the daemon answered {} to the FX log request",
            resp.status()
        );
    }
    Ok(resp)
}

fn entry_of(mut v: Value) -> Result<(FxEntry, Option<String>), serde_json::Error> {
    let by = v
        .as_object_mut()
        .and_then(|o| o.remove("superseded_by"))
        .and_then(|b| b.as_str().map(str::to_string));
    Ok((serde_json::from_value(v)?, by))
}

/// Opens the config's store for a command (the embedded store only when no daemon holds it).
pub async fn open_store(config: &Config) -> Result<AnyStore> {
    let (s, _) = crossgate::backend::open(&config.store)
        .await
        .with_context(|| {
            format!(
                "opening the {:?} store (the embedded store can be open in one process only: \
                 stop the daemon first, or use Redis)",
                config.store.backend
            )
        })?;
    Ok(s)
}

/// A small client for the daemon's API.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for the daemon that `config_path` configures (the config is only read for its
    /// listen address and API token; a broken one still allows `--url`).
    pub fn new(config_path: &Path, api: &ApiArgs) -> Result<Self> {
        Self::with_config(Config::load(config_path).ok().as_ref(), api)
    }

    /// A client for the daemon of an already loaded config.
    pub fn with_config(cfg: Option<&Config>, api: &ApiArgs) -> Result<Self> {
        let base = match (&api.url, cfg) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(c)) => format!("http://{}", c.server.listen),
            (None, None) => bail!("give --url, or a valid --config to find the daemon"),
        };
        let token = cfg
            .and_then(|c| c.server.api_token.as_ref())
            .map(|t| t.expose().to_string());
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { base, token, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether the daemon answers its liveness probe within 2 s.
    pub async fn is_up(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// A request to `path` with the API token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request and reads the typed answer, or the problem the daemon answered with.
    pub async fn answer<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Result<T, String>> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling the daemon at {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the daemon's answer")?;
        if status.is_success() {
            let answer = serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from the daemon ({status})"))?;
            return Ok(Ok(answer));
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |k: &str| problem[k].as_str().map(str::to_string);
        let why = match (text("title"), text("detail")) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(t), None) => t,
            _ => String::from_utf8_lossy(&bytes).into_owned(),
        };
        Ok(Err(format!("{} {why}", status.as_u16())))
    }

    /// [`ApiClient::answer`], with a problem as an error.
    pub async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        self.answer(req)
            .await?
            .map_err(|why| anyhow::anyhow!("the daemon answered {why}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }
}
