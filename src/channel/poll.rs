//! Polling a channel's list endpoint: windows of an updated-after watermark, pages within a
//! window (next token, `Link: rel="next"`, or offset/page number), per-record detail requests,
//! and a cursor that is written in the same atomic store write as the page it follows.
//!
//! Why no page is skipped or stored twice:
//! - the cursor after page *n* is committed together with page *n*'s records; a crash before
//!   the commit repeats page *n* (its upserts are idempotent: `unchanged`), never skips it;
//! - a window's `since` is the previous watermark minus the adapter's overlap, so records the
//!   channel makes visible late are picked up by the next window;
//! - the watermark only moves when a window's last page is committed.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{ApiError, ChannelClient, DeclaredLimits, Limiter};
use crate::adapter::Target;
use crate::adapter::path::{Path, Segment};
use crate::adapter::spec::{DetailSpec, Format, NextTokenSpec, PollSpec};
use crate::config::Instance;
use crate::model::Record;
use crate::pipeline;
use crate::store::{CursorWrite, DeliverySource, Disposition, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("instance '{instance}': {problem}")]
    Config { instance: String, problem: String },
    /// The channel's answer is not what the adapter describes (the page is not stored).
    #[error("instance '{instance}': {url}: {problem}")]
    Response {
        instance: String,
        url: String,
        problem: String,
    },
}

/// Where the next page comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum NextPage {
    Token(String),
    Link(String),
    /// Page number (0-based count of pages already taken in the window).
    Page(u64),
}

/// A window of the watermark being paged through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextPage>,
    /// Newest `updated_at` among the window's records so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<DateTime<Utc>>,
}

/// The poller's cursor (stored as JSON with each page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollState {
    /// A backfill's requested start: a run with another `--since` starts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<DateTime<Utc>>,
    /// Records updated before this (less the overlap) have been taken in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default)]
    pub pages: u64,
    #[serde(default)]
    pub orders: u64,
}

/// Which cursor a run uses and where it stops.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The daemon's continuous poll: cursor `poll`, until caught up with now.
    Live,
    /// `crossgate backfill`: cursor `backfill`, from `since` up to `until` (default: now).
    Backfill {
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
}

impl Mode {
    fn cursor_name(&self) -> &'static str {
        match self {
            Mode::Live => "poll",
            Mode::Backfill { .. } => "backfill",
        }
    }
}

/// What one page did (for progress reporting).
#[derive(Debug, Clone, Default)]
pub struct PageReport {
    pub orders: usize,
    pub failed: usize,
    pub window_since: Option<DateTime<Utc>>,
    pub window_until: Option<DateTime<Utc>>,
    pub done: bool,
}

pub struct Poller {
    inst: std::sync::Arc<Instance>,
    client: ChannelClient,
    spec: PollSpec,
    detail_limiters: Vec<Option<Limiter>>,
}

impl Poller {
    /// The poller of an instance with its own channel client (default retries): what the
    /// daemon's live poll and every backfill use.
    /// With `budget`, every request comes from the rate budget the replicas share.
    pub fn for_instance(
        inst: &std::sync::Arc<Instance>,
        budget: Option<crate::store::SharedBudget>,
    ) -> Result<Self, PollError> {
        let client =
            ChannelClient::new(inst, super::client::RetryPolicy::default())?.with_budget(budget);
        Self::new(inst.clone(), client)
    }

    pub fn new(inst: std::sync::Arc<Instance>, client: ChannelClient) -> Result<Self, PollError> {
        let spec = inst
            .adapter
            .spec()
            .poll
            .clone()
            .ok_or_else(|| PollError::Config {
                instance: inst.id.clone(),
                problem: format!("adapter '{}' has no [poll] section", inst.adapter.name()),
            })?;
        let detail_limiters = DeclaredLimits::of(inst.adapter.spec()).details;
        Ok(Self {
            inst,
            client,
            spec,
            detail_limiters,
        })
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.spec.interval_secs.max(1))
    }

    /// Polls page by page until caught up (live) or past the end (backfill). `on_page` sees
    /// every committed page.
    pub async fn run<S: Store>(
        &self,
        store: &S,
        mode: &Mode,
        mut on_page: impl FnMut(&PageReport),
    ) -> Result<PollState, PollError> {
        loop {
            let (state, report) = self.step(store, mode).await?;
            on_page(&report);
            if report.done {
                return Ok(state);
            }
        }
    }

    /// One page: fetch, attach details, normalize and store it with the new cursor.
    pub async fn step<S: Store>(
        &self,
        store: &S,
        mode: &Mode,
    ) -> Result<(PollState, PageReport), PollError> {
        self.step_fenced(store, mode, None).await
    }

    /// [`Poller::step`] under a lease: the page and its cursor are written only while `fence`
    /// is the lease's current token (a replica whose lease expired cannot commit an old page).
    pub async fn step_fenced<S: Store>(
        &self,
        store: &S,
        mode: &Mode,
        fence: Option<crate::store::Fence>,
    ) -> Result<(PollState, PageReport), PollError> {
        let now = Utc::now();
        let mut state = self.load(store, mode).await?;
        let stop = match mode {
            Mode::Live => now,
            Mode::Backfill { until, .. } => until.unwrap_or(now).min(now),
        };
        if state.window.is_none() {
            let since = match (state.watermark, mode) {
                (Some(w), _) => w - self.overlap(),
                (None, Mode::Backfill { since, .. }) => *since,
                (None, Mode::Live) => self.initial_since(now)?,
            };
            if matches!(mode, Mode::Backfill { .. }) && state.watermark.is_some_and(|w| w >= stop) {
                return Ok((
                    state,
                    PageReport {
                        done: true,
                        ..Default::default()
                    },
                ));
            }
            let until = match self.spec.watermark.as_ref().and_then(|w| w.window_secs) {
                Some(secs) => (since + ChronoDuration::seconds(secs as i64)).min(stop),
                None => stop,
            };
            state.window = Some(Window {
                since,
                until,
                next: None,
                max_seen: None,
            });
        }
        let window = state.window.clone().expect("set above");

        // The page.
        let (path, query) = self.page_request(&window)?;
        let page = match self.page_body(&window)? {
            Some(body) => self.client.post(&path, &query, body, None).await?,
            None => self.client.get(&path, &query, None).await?,
        };
        let mut body = page.body;
        if !self.spec.details.is_empty() {
            body = self.attach_details(&page.url, &body).await?;
        }

        // Normalize it (pure) as orders.
        let (routed, next_token, total) = {
            let doc = self
                .inst
                .adapter
                .parse(&body)
                .map_err(|e| PollError::Response {
                    instance: self.inst.id.clone(),
                    url: page.url.clone(),
                    problem: e.to_string(),
                })?;
            let token = self
                .spec
                .next_token
                .as_ref()
                .and_then(|t| t.token.get(crate::adapter::path::Scope::new(&doc)))
                .and_then(|n| n.scalar_text().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty());
            let total = self
                .spec
                .offset
                .as_ref()
                .and_then(|o| o.total.as_ref())
                .and_then(|p| p.get(crate::adapter::path::Scope::new(&doc)))
                .and_then(|n| n.scalar_text().and_then(|t| t.trim().parse::<u64>().ok()));
            let routed =
                self.inst
                    .adapter
                    .map(&doc, Target::Order, &pipeline::record_context(&self.inst));
            (routed, token, total)
        };
        let sorted = pipeline::sort(routed);
        let (items, failed) = match &sorted {
            pipeline::Sorted::Items {
                count, failures, ..
            } => (*count, failures.len()),
            pipeline::Sorted::Refused(_) => (0, 1),
            pipeline::Sorted::Ignored => (0, 0),
        };
        let (disposition, _) = sorted.disposition(&self.inst, pipeline::Scope::Page);
        let max_seen = latest_update(&disposition).max(window.max_seen);

        // Where the next page is.
        let next = if let Some(t) = next_token {
            Some(NextPage::Token(t))
        } else if self.spec.link_header {
            page.next_link.map(NextPage::Link)
        } else if let Some(o) = &self.spec.offset {
            let taken = match &window.next {
                Some(NextPage::Page(n)) => *n,
                _ => 0,
            };
            let seen = (taken + 1) * o.page_size as u64;
            let more = items as u64 >= o.page_size as u64 && total.is_none_or(|t| seen < t);
            more.then_some(NextPage::Page(taken + 1))
        } else {
            None
        };
        let done_window = next.is_none();
        state.pages += 1;
        state.orders += (items - failed) as u64;
        if done_window {
            let w = window.until.max(max_seen.unwrap_or(window.until));
            state.watermark = Some(state.watermark.map_or(w, |old| old.max(w)));
            state.window = None;
        } else {
            state.window = Some(Window {
                next,
                max_seen,
                ..window.clone()
            });
        }
        if let Mode::Backfill { since, .. } = mode {
            state.origin = Some(*since);
        }
        let cursor = CursorWrite {
            name: mode.cursor_name().to_string(),
            value: serde_json::to_string(&state).expect("state serializes"),
            fence,
        };
        // Every fetched page is its own delivery; upserts make repeats harmless.
        let arrival = pipeline::Arrival::new(
            DeliverySource::Poll,
            format!("poll:{}", uuid::Uuid::now_v7().simple()),
            Some("crossgate/poll-page".into()),
        );
        pipeline::store_delivery(
            store,
            arrival.delivery(&self.inst.id, body, now),
            disposition,
            Some(cursor),
        )
        .await?;
        metrics::counter!(crate::telemetry::names::POLL_PAGES, "instance" => self.inst.id.clone())
            .increment(1);
        // Caught up: the last window ended less than one poll interval ago.
        let slack = ChronoDuration::from_std(self.interval()).unwrap_or(ChronoDuration::zero());
        let caught_up = done_window && window.until + slack >= stop;
        Ok((
            state,
            PageReport {
                orders: items - failed,
                failed,
                window_since: Some(window.since),
                window_until: Some(window.until),
                done: caught_up,
            },
        ))
    }

    async fn load<S: Store>(&self, store: &S, mode: &Mode) -> Result<PollState, PollError> {
        let raw = store.get_cursor(&self.inst.id, mode.cursor_name()).await?;
        let state: PollState = match raw {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!("poll cursor of {}: {e}", self.inst.id))
            })?,
            None => PollState::default(),
        };
        Ok(match mode {
            // Another --since: start over.
            Mode::Backfill { since, .. } if state.origin != Some(*since) => PollState::default(),
            _ => state,
        })
    }

    fn overlap(&self) -> ChronoDuration {
        ChronoDuration::seconds(
            self.spec
                .watermark
                .as_ref()
                .map(|w| w.overlap_secs as i64)
                .unwrap_or(0),
        )
    }

    fn initial_since(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, PollError> {
        match self
            .spec
            .watermark
            .as_ref()
            .and_then(|w| w.initial.as_ref())
        {
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map(|d| d.to_utc())
                .map_err(|e| PollError::Config {
                    instance: self.inst.id.clone(),
                    problem: format!("poll.watermark.initial: {e}"),
                }),
            // Without a configured start, a new instance takes in the last day; older orders
            // come with `crossgate backfill`.
            None => Ok(now - ChronoDuration::days(1)),
        }
    }

    /// The path and query of the window's next page.
    /// The placeholders of a window's current page.
    fn page_vars(&self, w: &Window) -> Vars {
        let page = match &w.next {
            Some(NextPage::Page(n)) => *n,
            _ => 0,
        };
        Vars {
            since: Some(w.since),
            until: Some(w.until),
            page: Some(page),
            offset: self.spec.offset.as_ref().map(|o| page * o.page_size as u64),
            start_page: self.spec.offset.as_ref().map(|o| o.start_page).unwrap_or(0),
            id: None,
        }
    }

    /// The body of a POSTed page, when the adapter polls with one.
    fn page_body(&self, w: &Window) -> Result<Option<(Vec<u8>, &str)>, PollError> {
        let Some(spec) = &self.spec.post_body else {
            return Ok(None);
        };
        let body =
            render(&spec.template, &self.page_vars(w), &self.inst.settings).map_err(|problem| {
                PollError::Config {
                    instance: self.inst.id.clone(),
                    problem: format!("poll.post_body: {problem}"),
                }
            })?;
        Ok(Some((body.into_bytes(), spec.content_type.as_str())))
    }

    fn page_request(&self, w: &Window) -> Result<(String, Vec<(String, String)>), PollError> {
        let vars = self.page_vars(w);
        let render = |t: &str| {
            render(t, &vars, &self.inst.settings).map_err(|problem| PollError::Config {
                instance: self.inst.id.clone(),
                problem: format!("poll: {problem}"),
            })
        };
        match &w.next {
            Some(NextPage::Link(url)) => Ok((url.clone(), Vec::new())),
            Some(NextPage::Token(token)) => {
                let t: &NextTokenSpec = self.spec.next_token.as_ref().expect("token implies spec");
                let mut q = Vec::new();
                for (k, v) in &self.spec.query {
                    if !t.token_only || t.keep.contains(k) {
                        q.push((k.clone(), render(v)?));
                    }
                }
                q.push((t.param.clone(), token.clone()));
                Ok((render(&self.spec.path)?, q))
            }
            _ => {
                let mut q = Vec::new();
                for (k, v) in &self.spec.query {
                    q.push((k.clone(), render(v)?));
                }
                Ok((render(&self.spec.path)?, q))
            }
        }
    }

    /// Runs the detail requests of every record in a JSON page and attaches (or substitutes)
    /// their responses.
    async fn attach_details(&self, url: &str, body: &[u8]) -> Result<Vec<u8>, PollError> {
        if self.inst.adapter.spec().format != Format::Json {
            return Ok(body.to_vec());
        }
        let bad = |problem: String| PollError::Response {
            instance: self.inst.id.clone(),
            url: url.to_string(),
            problem,
        };
        let mut page: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
        for (d, lim) in self.spec.details.iter().zip(&self.detail_limiters) {
            for record in select_mut(&mut page, d.for_each.segments()) {
                let Some(id) = select(record, d.id.segments())
                    .first()
                    .and_then(|v| scalar_text(v))
                else {
                    continue; // the mapping reports the record's missing id
                };
                let detail = self.fetch_detail(d, &id, lim.as_ref()).await?;
                match (&d.attach_as, &d.replace_with) {
                    (Some(key), _) => {
                        if let Value::Object(m) = record {
                            m.insert(key.clone(), detail);
                        }
                    }
                    (None, Some(path)) => {
                        if let Some(v) = select(&detail, path.segments()).first() {
                            *record = (*v).clone();
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        serde_json::to_vec(&page).map_err(|e| bad(e.to_string()))
    }

    /// One detail (all of its pages, merged).
    async fn fetch_detail(
        &self,
        d: &DetailSpec,
        id: &str,
        lim: Option<&Limiter>,
    ) -> Result<Value, PollError> {
        let cfg = |problem: String| PollError::Config {
            instance: self.inst.id.clone(),
            problem: format!("poll.details: {problem}"),
        };
        // In the path the id is one percent-encoded segment; the query encodes it itself.
        let path_vars = Vars {
            id: Some(encode_segment(id)),
            ..Vars::default()
        };
        let vars = Vars {
            id: Some(id.to_string()),
            ..Vars::default()
        };
        let path = render(&d.path, &path_vars, &self.inst.settings).map_err(cfg)?;
        let mut query = Vec::new();
        for (k, v) in &d.query {
            query.push((
                k.clone(),
                render(v, &vars, &self.inst.settings).map_err(cfg)?,
            ));
        }
        let mut merged: Option<Value> = None;
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut q = match (&token, &d.next_token) {
                (Some(_), Some(t)) if t.token_only => query
                    .iter()
                    .filter(|(k, _)| t.keep.contains(k))
                    .cloned()
                    .collect(),
                _ => query.clone(),
            };
            if let (Some(tok), Some(t)) = (&token, &d.next_token) {
                q.push((t.param.clone(), tok.clone()));
            }
            let resp = self.client.get(&path, &q, lim).await?;
            let v: Value = serde_json::from_slice(&resp.body).map_err(|e| PollError::Response {
                instance: self.inst.id.clone(),
                url: resp.url.clone(),
                problem: format!("not JSON: {e}"),
            })?;
            token = d.next_token.as_ref().and_then(|t| {
                select(&v, t.token.segments())
                    .first()
                    .and_then(|x| scalar_text(x))
                    .filter(|s| !s.is_empty())
            });
            merged = Some(match merged {
                None => v,
                Some(mut m) => {
                    deep_merge(&mut m, v);
                    m
                }
            });
            if token.is_none() {
                break;
            }
        }
        Ok(merged.unwrap_or(Value::Null))
    }
}

/// Values a request template can use.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page: Option<u64>,
    pub offset: Option<u64>,
    pub start_page: u64,
    pub id: Option<String>,
}

/// Fills `{since}`, `{since_unix}`, `{since:FMT}`, `{since_tz:FMT}` (the instance's `timezone`
/// setting), the same for `until`, `{page}`, `{offset}`, `{id}` and `{setting:NAME}`.
pub fn render(
    template: &str,
    vars: &Vars,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| c + open)
            .ok_or_else(|| format!("'{template}': unclosed '{{'"))?;
        let name = &rest[open + 1..close];
        // Braces around a list are the channel's own syntax, not a placeholder: Graph's field
        // expansion `items{id,quantity}` in Meta's `fields=`.
        if !is_placeholder(name) {
            out.push('{');
            rest = &rest[open + 1..];
            continue;
        }
        out.push_str(&value_of(name, vars, settings).map_err(|p| format!("'{template}': {p}"))?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `{since}`, `{until_tz:%Y-%m-%d %H:%M:%S}`, `{setting:cms_id}`: a name, then an optional
/// `:` argument without commas or braces.
fn is_placeholder(text: &str) -> bool {
    let (name, arg) = text.split_once(':').unwrap_or((text, ""));
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !arg.contains([',', '{'])
}

fn value_of(
    name: &str,
    vars: &Vars,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let need = |v: Option<DateTime<Utc>>, what: &str| {
        v.ok_or_else(|| format!("{{{what}}} has no value here"))
    };
    let (base, fmt) = match name.split_once(':') {
        Some((b, f)) => (b, Some(f)),
        None => (name, None),
    };
    match (base, fmt) {
        ("setting", Some(key)) => settings
            .get(key)
            .cloned()
            .ok_or_else(|| format!("settings.{key} is not set")),
        ("id", None) => vars
            .id
            .clone()
            .ok_or_else(|| "{id} has no value here".into()),
        ("page", None) => Ok((vars.start_page + vars.page.unwrap_or(0)).to_string()),
        ("offset", None) => Ok(vars.offset.unwrap_or(0).to_string()),
        ("since" | "until", None) => {
            Ok(need(pick(base, vars), base)?.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        ("since_unix" | "until_unix", None) => {
            Ok(need(pick(base, vars), base)?.timestamp().to_string())
        }
        ("since" | "until", Some(f)) => Ok(need(pick(base, vars), base)?.format(f).to_string()),
        ("since_tz" | "until_tz", Some(f)) => {
            let tz: chrono_tz::Tz = settings
                .get("timezone")
                .ok_or("settings.timezone is not set")?
                .parse()
                .map_err(|_| "settings.timezone is not an IANA zone".to_string())?;
            Ok(need(pick(base, vars), base)?
                .with_timezone(&tz)
                .format(f)
                .to_string())
        }
        _ => Err(format!("unknown placeholder {{{name}}}")),
    }
}

fn pick(base: &str, vars: &Vars) -> Option<DateTime<Utc>> {
    if base.starts_with("since") {
        vars.since
    } else {
        vars.until
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so an id cannot add path
/// segments or a query).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The values a path (relative, no anchors) selects in a JSON value.
fn select<'v>(v: &'v Value, segs: &[Segment]) -> Vec<&'v Value> {
    let Some((first, rest)) = segs.split_first() else {
        return if v.is_null() { Vec::new() } else { vec![v] };
    };
    match (first, v) {
        (Segment::Key(k), Value::Object(m)) => {
            m.get(k).map(|c| select(c, rest)).unwrap_or_default()
        }
        (Segment::Index(i), Value::Array(a)) => {
            a.get(*i).map(|c| select(c, rest)).unwrap_or_default()
        }
        (Segment::Index(0), other) => select(other, rest),
        (Segment::Wildcard, Value::Array(a)) => a.iter().flat_map(|c| select(c, rest)).collect(),
        (Segment::Wildcard, other) => select(other, rest),
        (Segment::Filter { key, value }, Value::Array(a)) => a
            .iter()
            .filter(|c| c.get(key).and_then(scalar_text).as_deref() == Some(value))
            .flat_map(|c| select(c, rest))
            .collect(),
        _ => Vec::new(),
    }
}

fn select_mut<'v>(v: &'v mut Value, segs: &[Segment]) -> Vec<&'v mut Value> {
    let Some((first, rest)) = segs.split_first() else {
        return vec![v];
    };
    match first {
        Segment::Key(k) => match v {
            Value::Object(m) => m
                .get_mut(k)
                .map(|c| select_mut(c, rest))
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        Segment::Index(i) => match v {
            Value::Array(a) => a
                .get_mut(*i)
                .map(|c| select_mut(c, rest))
                .unwrap_or_default(),
            other if *i == 0 => select_mut(other, rest),
            _ => Vec::new(),
        },
        Segment::Wildcard => match v {
            Value::Array(a) => a.iter_mut().flat_map(|c| select_mut(c, rest)).collect(),
            other => select_mut(other, rest),
        },
        Segment::Filter { key, value } => match v {
            Value::Array(a) => a
                .iter_mut()
                .filter(|c| {
                    c.get(key.as_str()).and_then(scalar_text).as_deref() == Some(value.as_str())
                })
                .flat_map(|c| select_mut(c, rest))
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// Later pages of a detail: arrays are concatenated, objects merged, scalars replaced.
fn deep_merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.extend(y),
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        x.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A path from an adapter file, for `select` (anchors are ignored: paths are relative).
pub fn segments(p: &Path) -> &[Segment] {
    p.segments()
}

/// The latest update time of the orders a page stores (the watermark moves up to it).
fn latest_update(disposition: &Disposition) -> Option<DateTime<Utc>> {
    let records = match disposition {
        Disposition::Apply(records) | Disposition::Partial { records, .. } => records.as_slice(),
        Disposition::DeadLetter(_) | Disposition::Ignore => &[],
    };
    records
        .iter()
        .filter_map(|r| match r {
            Record::Order(o) => Some(o.revision.updated_at.to_utc()),
            _ => None,
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let mut settings = std::collections::BTreeMap::new();
        settings.insert("marketplace_id".to_string(), "A1PA6795UKMFR9".to_string());
        settings.insert("timezone".to_string(), "Europe/Paris".to_string());
        // Graph's field expansion is the channel's syntax, kept as written.
        let fields = "id,items{id,price_per_unit},shipping_address";
        assert_eq!(render(fields, &Vars::default(), &settings).unwrap(), fields);
        assert_eq!(
            render("/{setting:timezone}/x{y,z}", &Vars::default(), &settings).unwrap(),
            "/Europe/Paris/x{y,z}"
        );
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let vars = Vars {
            since: Some(t),
            until: Some(t + ChronoDuration::hours(1)),
            page: Some(2),
            offset: Some(200),
            start_page: 1,
            id: Some("123-45".into()),
        };
        let r = |s: &str| render(s, &vars, &settings);
        assert_eq!(r("{since}").unwrap(), "2024-05-01T10:00:00Z");
        assert_eq!(r("{until_unix}").unwrap(), "1714561200");
        assert_eq!(
            r("{since:%Y-%m-%d %H:%M:%S}").unwrap(),
            "2024-05-01 10:00:00"
        );
        assert_eq!(
            r("[{since_tz:%Y-%m-%d %H:%M:%S},{until_tz:%H:%M}]").unwrap(),
            "[2024-05-01 12:00:00,13:00]"
        );
        assert_eq!(r("/orders/{id}/items").unwrap(), "/orders/123-45/items");
        assert_eq!(r("{setting:marketplace_id}").unwrap(), "A1PA6795UKMFR9");
        assert_eq!(r("{offset},100 p{page}").unwrap(), "200,100 p3");
        assert!(r("{nope}").unwrap_err().contains("unknown placeholder"));
        assert!(
            r("{setting:missing}")
                .unwrap_err()
                .contains("settings.missing")
        );
    }

    #[test]
    fn detail_pages_merge() {
        let mut a = serde_json::json!({"payload": {"OrderItems": [1, 2], "NextToken": "t1"}});
        deep_merge(&mut a, serde_json::json!({"payload": {"OrderItems": [3]}}));
        assert_eq!(
            a,
            serde_json::json!({"payload": {"OrderItems": [1, 2, 3], "NextToken": "t1"}})
        );
    }

    #[test]
    fn json_selection() {
        let p = Path::parse("payload.Orders[*]").unwrap();
        let mut v = serde_json::json!({"payload": {"Orders": [{"id": 1}, {"id": 2}]}});
        assert_eq!(select(&v, p.segments()).len(), 2);
        for o in select_mut(&mut v, p.segments()) {
            o["x"] = serde_json::json!(true);
        }
        assert_eq!(v["payload"]["Orders"][1]["x"], true);
    }
}
