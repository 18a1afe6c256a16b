//! The console's pages. Each reads what `/v1` answers, through its handlers.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use maud::{Markup, html};
use serde::Deserialize;

use super::view::{self, Frame};
use super::{Session, csrf_refusal, keys};
use crate::backend::Stores;
use crate::ingress::answers::DeadLetterDetail;
use crate::ingress::http::{App, Q, fx, records, tax};
use crate::ingress::problem::Problem;
use crate::model::{Order, OrderId};

/// What an action's redirect says on the page it lands on (fixed texts: nothing from the
/// request is reflected).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    pub(super) done: Option<String>,
}

impl Done {
    pub(super) fn notice(&self) -> Option<&'static str> {
        match self.done.as_deref()? {
            "resolved" => Some("Replayed: the delivery normalized and its records are stored."),
            "fetch_queued" => Some("Replayed: the record will be fetched from the channel again."),
            "still_failing" => {
                Some("Replayed: the delivery still does not normalize (see the errors below).")
            }
            "cannot_replay" => Some("This dead letter cannot be replayed."),
            "discarded" => Some("Discarded: the dead letter no longer waits."),
            "reloaded" => Some("Reloaded: the files below are in use."),
            "reload_refused" => Some(
                "Not reloaded: the new files have problems (below); the running configuration stays.",
            ),
            "discard_refused" => Some("Not discarded: give a reason of 1 to 500 characters."),
            _ => None,
        }
    }
}

pub(super) fn render<S>(
    app: &App<S>,
    session: &str,
    title: &str,
    notice: Option<&str>,
    body: Markup,
) -> Response {
    let keys = keys(app);
    let frame = Frame {
        title,
        csrf: &keys.csrf(session),
        login: keys.login,
        read_only: super::auth::Scope::of(session) == super::auth::Scope::Read,
        notice,
    };
    Html(view::page(&frame, body).into_string()).into_response()
}

/// A problem from the `/v1` handler a page relies on, shown as a page.
pub(super) fn problem_page<S>(app: &App<S>, session: &str, p: &Problem) -> Response {
    let body = html! {
        p role="alert" class="error" { (p.title) @if let Some(d) = &p.detail { ": " (d) } }
    };
    let mut resp = render(app, session, "Not available", None, body);
    *resp.status_mut() = p.status;
    resp
}

/// `/console`: per instance, what ops look at first.
pub(super) async fn overview<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
) -> Response {
    let config = app.config();
    let waiting = match app.store.dead_letters_waiting().await {
        Ok(w) => w,
        Err(e) => return problem_page(&app, &session, &e.into()),
    };
    let digests: std::collections::BTreeMap<String, String> =
        match crate::ingress::http::admin::status(State(app.clone())).await {
            Ok(Json(s)) => s.adapters.into_iter().map(|a| (a.name, a.digest)).collect(),
            Err(p) => return problem_page(&app, &session, &p),
        };
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for (id, inst) in &config.instances {
        let spec = inst.adapter.spec();
        let backlog = app.store.outbox_depth(id).await.ok();
        let watermark = app
            .store
            .get_cursor(id, "poll")
            .await
            .ok()
            .flatten()
            .and_then(|c| serde_json::from_str::<crate::channel::poll::PollState>(&c).ok())
            .and_then(|p| p.watermark);
        let history = crate::telemetry::history::delivery_summary(id, now);
        let health = crate::telemetry::history::health(id, now);
        rows.push(overview_row(&OverviewRow {
            health: &health,
            id,
            adapter: &spec.name,
            digest: digests.get(&spec.name).map(String::as_str),
            waiting: waiting.get(id).copied().unwrap_or(0),
            backlog,
            watermark,
            history: &history,
            now,
        }));
    }
    let body = html! {
        div class="table-wrap" {
            table {
                caption { "Channel instances (deliveries as this replica received them)" }
                thead { tr {
                    th scope="col" { "Instance" } th scope="col" { "Adapter" }
                    th scope="col" { "Last delivery" } th scope="col" { "Last hour" }
                    th scope="col" { "Last 24 hours" }
                    th scope="col" class="num" { "Dead letters waiting" }
                    th scope="col" class="num" { "Outbound backlog" } th scope="col" { "Polled up to" }
                    th scope="col" { "Last poll" } th scope="col" class="num" { "Fetch backlog" }
                    th scope="col" class="num" { "Rate-budget waits (1 h)" }
                    th scope="col" { "Reconciliation gaps" }
                } }
                tbody { @for r in &rows { (r) } }
            }
        }
    };
    render(&app, &session, "Overview", None, body)
}

struct OverviewRow<'a> {
    id: &'a str,
    adapter: &'a str,
    digest: Option<&'a str>,
    waiting: u64,
    backlog: Option<u64>,
    watermark: Option<chrono::DateTime<chrono::Utc>>,
    history: &'a crate::telemetry::history::DeliverySummary,
    health: &'a crate::telemetry::history::Health,
    now: chrono::DateTime<chrono::Utc>,
}

fn ago(now: chrono::DateTime<chrono::Utc>, t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

fn overview_row(r: &OverviewRow<'_>) -> Markup {
    let hour: Vec<String> = r
        .history
        .last_hour
        .iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect();
    let day_total: u64 = r.history.last_day.values().sum();
    let bars_label = format!("{day_total} deliveries in the last 24 hours, per hour");
    html! {
        tr {
            th scope="row" { (r.id) }
            td { (r.adapter) @if let Some(d) = r.digest { br; code { (d) } } }
            td { @match r.history.last { Some(t) => (ago(r.now, t)), None => "—" } }
            td { @if hour.is_empty() { "—" } @else { (hour.join(", ")) } }
            td { (super::chart::bars(&bars_label, &r.history.hourly)) }
            td class="num" {
                a href={ "/console/dead-letters?instance=" (r.id) } { (r.waiting) }
            }
            td class="num" { (r.backlog.map_or_else(|| "—".to_string(), |b| b.to_string())) }
            td {
                @match r.watermark {
                    Some(w) => { (w.format("%Y-%m-%d %H:%M UTC")) " (" (ago(r.now, w)) ")" }
                    None => "—",
                }
            }
            td {
                @match r.health.last_poll {
                    Some(t) => {
                        (ago(r.now, t))
                        @if let Some(lag) = r.health.poll_lag_secs { ", " (format!("{lag:.0}")) " s behind" }
                    }
                    None => "—",
                }
            }
            td class="num" { (r.health.fetch_backlog.map_or_else(|| "—".to_string(), |b| b.to_string())) }
            td class="num" { (r.health.budget_waits_last_hour) }
            td {
                @match r.health.reconciliation {
                    Some((0, 0)) => "none",
                    Some((polled, pushed)) => { (polled) " only polled, " (pushed) " only by webhook" }
                    None => "—",
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeadLetterFilter {
    instance: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
    /// Counts after "replay all" (numbers only: nothing from the request is shown as text).
    resolved: Option<u32>,
    failed: Option<u32>,
}

impl DeadLetterFilter {
    /// From a form's fields (replay all carries the list's filter).
    fn of_form(mut form: std::collections::HashMap<String, String>) -> Self {
        DeadLetterFilter {
            instance: form.remove("instance"),
            kind: form.remove("kind"),
            since: form.remove("since"),
            until: form.remove("until"),
            ..Default::default()
        }
    }

    /// The filter's `/v1/dead-letters` parameters (empty fields are no filter).
    fn params(&self, cursor: Option<String>) -> records::DeadLetterParams {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        records::DeadLetterParams {
            instance: some(&self.instance),
            kind: some(&self.kind),
            since: some(&self.since),
            until: some(&self.until),
            limit: Some(100),
            cursor,
        }
    }

    /// The filter as a query string (paging links and the replay-all redirect).
    fn query(&self) -> url::form_urlencoded::Serializer<'static, String> {
        let p = self.params(None);
        view::query([
            ("instance", &p.instance),
            ("kind", &p.kind),
            ("since", &p.since),
            ("until", &p.until),
        ])
    }
}

/// The dead letters the list shows (and "replay all" replays): a page of 100 matching the
/// filter, as `GET /v1/dead-letters` answers it.
async fn shown_dead_letters<S: Stores>(
    app: &App<S>,
    filter: &DeadLetterFilter,
    cursor: Option<String>,
) -> Result<crate::ingress::answers::Page<crate::store::DeadLetter>, Problem> {
    let Json(page) =
        records::list_dead_letters(State(app.clone()), Q(filter.params(cursor))).await?;
    Ok(page)
}

fn dead_letter_filter_form(f: &DeadLetterFilter, instances: Vec<&String>) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form method="get" action="/console/dead-letters" class="actions" {
            label for="instance" { "Instance" }
            select id="instance" name="instance" {
                option value="" { "every instance" }
                @for id in instances {
                    option value=(id) selected[f.instance.as_deref() == Some(id.as_str())] { (id) }
                }
            }
            label for="kind" { "Kind" }
            select id="kind" name="kind" {
                option value="" { "every kind" }
                @for k in records::DEAD_LETTER_KINDS {
                    option value=(k) selected[f.kind.as_deref() == Some(*k)] { (k) }
                }
            }
            label for="since" { "From" } input id="since" name="since" type="date" value=(v(&f.since));
            label for="until" { "To" } input id="until" name="until" type="date" value=(v(&f.until));
            button type="submit" { "Filter" }
        }
    }
}

/// `/console/dead-letters?instance=&kind=&since=&until=`: what is parked, oldest first as
/// `/v1` lists them.
pub(super) async fn dead_letters<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Query(f): Query<DeadLetterFilter>,
) -> Response {
    let page = match shown_dead_letters(&app, &f, f.cursor.clone()).await {
        Ok(p) => p,
        Err(p) => return problem_page(&app, &session, &p),
    };
    let config = app.config();
    let p = f.params(None);
    let hidden = [
        ("instance", &p.instance),
        ("kind", &p.kind),
        ("since", &p.since),
        ("until", &p.until),
    ];
    let body = html! {
        (dead_letter_filter_form(&f, config.instances.keys().collect()))
        @if !page.items.is_empty() {
            form method="post" action="/console/dead-letters/replay" class="actions" {
                (view::csrf_field(&keys(&app).csrf(&session)))
                @for (name, value) in hidden {
                    input type="hidden" name=(name) value=(value.as_deref().unwrap_or(""));
                }
                button type="submit" {
                    "Replay all " (page.items.len()) " shown with the current adapters"
                }
            }
        }
        @if page.items.is_empty() {
            p { "No dead letters." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "Dead-lettered" } th scope="col" { "Instance" }
                        th scope="col" { "Kind" } th scope="col" { "Reason" }
                    } }
                    tbody {
                        @for dl in &page.items {
                            tr {
                                td { a href={ "/console/dead-letters/" (dl.id) } { (dl.dead_lettered_at.format("%Y-%m-%d %H:%M:%S")) } }
                                td { (dl.instance) }
                                td { (dl.reason.kind) }
                                td { (dl.reason.message) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &page.next_cursor {
            a href={ "/console/dead-letters?" (f.query().append_pair("cursor", next).finish()) } { "More" }
        }
    };
    let notice = match (f.resolved, f.failed) {
        (Some(r), Some(x)) => Some(format!(
            "Replayed: {r} resolved (or queued for a fetch), {x} still failing or not replayable."
        )),
        _ => Done { done: f.done }.notice().map(str::to_string),
    };
    render(&app, &session, "Dead letters", notice.as_deref(), body)
}

/// `/console/dead-letters/{id}`: the reason, every field error, and the raw body masked.
pub(super) async fn dead_letter<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    dead_letter_page(&app, &session, id, done.notice(), false).await
}

async fn dead_letter_page<S: Stores>(
    app: &App<S>,
    session: &str,
    id: String,
    notice: Option<&str>,
    reveal: bool,
) -> Response {
    let detail: DeadLetterDetail =
        match records::get_dead_letter(State(app.clone()), Path(id.clone())).await {
            Ok(Json(d)) => d,
            Err(p) => return problem_page(app, session, &p),
        };
    let dl = &detail.dead_letter;
    let csrf = keys(app).csrf(session);
    let body = html! {
        dl {
            dt { "Instance" } dd { (dl.instance) }
            dt { "Received" } dd { (dl.received_at.to_rfc3339()) }
            dt { "Kind" } dd { (dl.reason.kind) }
            dt { "Reason" } dd { (dl.reason.message) }
            dt { "Failed replays" } dd { (dl.failed_replays) }
            @if let Some(t) = &dl.trace_id { dt { "Trace id" } dd { code { (t) } } }
        }
        @if !dl.reason.errors.is_empty() {
            div class="table-wrap" {
                table {
                    caption { "Field errors" }
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Source" } th scope="col" { "Problem" } } }
                    tbody {
                        @for e in &dl.reason.errors {
                            tr { td { code { (e.field) } } td { (e.source.as_deref().unwrap_or("—")) } td { (e.problem) } }
                        }
                    }
                }
            }
        }
        div class="actions" {
            form method="post" action={ "/console/dead-letters/" (id) "/replay" } {
                (view::csrf_field(&csrf))
                button type="submit" { "Replay with the current adapter" }
            }
            form method="post" action={ "/console/dead-letters/" (id) "/discard" } {
                (view::csrf_field(&csrf))
                label for="discard-reason" { "Reason for discarding" }
                input id="discard-reason" name="reason" type="text" maxlength="500" required;
                button type="submit" { "Discard" }
            }
            @if !reveal && detail.delivery.is_some() {
                form method="post" action={ "/console/dead-letters/" (id) "/reveal" } {
                    (view::csrf_field(&csrf))
                    button type="submit" { "Reveal personal data" }
                }
            }
        }
        @if let Some(d) = &detail.delivery {
            h2 { "Raw body" @if !reveal { " (personal data masked)" } }
            @if reveal {
                pre { (view::revealed_body(&d.body.encoding, &d.body.data)) }
            } @else {
                @match view::masked_body(&d.body.encoding, &d.body.data) {
                    Some(text) => pre { (text) },
                    None => p { "Not shown: " (d.body.data.len()) " characters that cannot be masked field by field. Reveal to see them." },
                }
            }
        } @else {
            p { "The raw body is gone (past its retention)." }
        }
    };
    render(app, session, "Dead letter", notice, body)
}

/// Replays the dead letter with the current adapter, then shows it again (or what it became).
pub(super) async fn replay<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refused) = csrf_refusal(&app, &session, &body) {
        return refused;
    }
    let done = match records::replay_dead_letter(State(app.clone()), Path(id.clone())).await {
        Ok((_, Json(answer))) => answer.status,
        Err(p) if p.status.as_u16() == 422 => "still_failing".to_string(),
        Err(_) => "cannot_replay".to_string(),
    };
    if done == "resolved" {
        return Redirect::to("/console/dead-letters?done=resolved").into_response();
    }
    Redirect::to(&format!("/console/dead-letters/{id}?done={done}")).into_response()
}

/// Replays every dead letter the list shows (the first page of the instance's, or of all),
/// one by one with the current adapters, and says how many resolved.
pub(super) async fn replay_all<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    body: Bytes,
) -> Response {
    if let Some(refused) = csrf_refusal(&app, &session, &body) {
        return refused;
    }
    let filter = DeadLetterFilter::of_form(super::form(&body));
    let page = match shown_dead_letters(&app, &filter, None).await {
        Ok(p) => p,
        Err(p) => return problem_page(&app, &session, &p),
    };
    let (mut resolved, mut failed) = (0u32, 0u32);
    for dl in page.items {
        match records::replay_dead_letter(State(app.clone()), Path(dl.id)).await {
            Ok(_) => resolved += 1,
            Err(_) => failed += 1,
        }
    }
    tracing::info!(resolved, failed, "console: dead letters replayed");
    let mut q = filter.query();
    q.append_pair("resolved", &resolved.to_string())
        .append_pair("failed", &failed.to_string());
    Redirect::to(&format!("/console/dead-letters?{}", q.finish())).into_response()
}

/// Discards the dead letter with the operator's reason.
pub(super) async fn discard<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refused) = csrf_refusal(&app, &session, &body) {
        return refused;
    }
    let reason = super::form(&body).remove("reason").unwrap_or_default();
    let request = serde_json::json!({ "reason": reason }).to_string();
    let body = Ok(crate::ingress::http::Body(request.into()));
    match records::discard_dead_letter(State(app.clone()), Path(id.clone()), body).await {
        Ok(_) => Redirect::to("/console/dead-letters?done=discarded").into_response(),
        Err(p) if p.status.as_u16() == 400 => {
            Redirect::to(&format!("/console/dead-letters/{id}?done=discard_refused"))
                .into_response()
        }
        Err(p) => problem_page(&app, &session, &p),
    }
}

/// Shows the raw body unmasked; the reveal is logged (who: the console session; what: the
/// dead letter's id, never the content).
pub(super) async fn reveal<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refused) = csrf_refusal(&app, &session, &body) {
        return refused;
    }
    tracing::info!(dead_letter_id = %id, "console: raw body revealed");
    dead_letter_page(&app, &session, id, None, true).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct OrderSearch {
    q: Option<String>,
}

/// `/console/orders?q=`: an order by the gateway's id, or by the channel's order number in
/// any instance.
pub(super) async fn orders<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Query(search): Query<OrderSearch>,
) -> Response {
    let q = search.q.as_deref().map(str::trim).unwrap_or("");
    let mut found: Vec<Order> = Vec::new();
    if !q.is_empty() {
        let mut ids: Vec<OrderId> = OrderId::parse(q).into_iter().collect();
        for instance in app.config().instances.keys() {
            ids.push(OrderId::derive(instance, q));
        }
        for id in ids {
            if let Ok(Json(o)) =
                records::get_order(State(app.clone()), Path(id.as_str().to_string())).await
            {
                found.push(o);
            }
        }
        if let Some(key) = customer_key_of(&app.config(), q) {
            match records::customer_orders(State(app.clone()), Path(key)).await {
                Ok(Json(page)) => found.extend(page.items),
                Err(p) => return problem_page(&app, &session, &p),
            }
        }
        let mut seen = std::collections::HashSet::new();
        found.retain(|o| seen.insert(o.id.clone()));
    }
    let body = html! {
        form method="get" action="/console/orders" class="actions" {
            label for="q" { "Order number or id, or customer email, phone or key" }
            input id="q" name="q" type="search" value=(q) required;
            button type="submit" { "Look up" }
        }
        @if !q.is_empty() && found.is_empty() {
            p { "No order with that number, id or customer." }
        }
        @if !found.is_empty() {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "Order" } th scope="col" { "Instance" } th scope="col" { "Number" }
                        th scope="col" { "Status" } th scope="col" class="num" { "Total" } th scope="col" { "Holds" }
                    } }
                    tbody {
                        @for o in &found {
                            tr {
                                td { a href={ "/console/orders/" (o.id.as_str()) } { (o.id.as_str()) } }
                                td { (o.instance) }
                                td { (o.number.as_deref().unwrap_or(&o.external_id)) }
                                td { (o.status.as_str()) }
                                td class="num" { (o.totals.grand_total) }
                                td { @for h in &o.holds { span class="hold" { (h.kind) } " " } }
                            }
                        }
                    }
                }
            }
        }
    };
    render(&app, &session, "Orders", None, body)
}

/// `/console/orders/{id}`: the order, its holds, its FX conversion and its tax quote.
pub(super) async fn order<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let o = match records::get_order(State(app.clone()), Path(id.clone())).await {
        Ok(Json(o)) => o,
        Err(p) => return problem_page(&app, &session, &p),
    };
    let fx = fx::order_fx(State(app.clone()), Path(id.clone()))
        .await
        .ok()
        .map(|j| j.0);
    let quote = tax::order_tax(State(app.clone()), Path(id))
        .await
        .ok()
        .map(|j| j.0);
    let body = html! {
        dl {
            dt { "Instance" } dd { (o.instance) " (" (o.channel) ")" }
            dt { "Channel's number" } dd { (o.number.as_deref().unwrap_or(&o.external_id)) }
            dt { "Status" } dd { (o.status.as_str()) }
            dt { "Placed" } dd { (o.placed_at.to_rfc3339()) }
            dt { "Total" } dd { (o.totals.grand_total) }
        }
        h2 { "Timeline" }
        p { "From the order's dated facts: the stored order is its latest revision, with every payment and shipment the channel reported." }
        ol class="timeline" {
            @for (at, what) in timeline(&o, fx.as_ref()) {
                li { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) } " " (what) }
            }
        }
        @if !o.holds.is_empty() {
            h2 { "Holds" }
            ul { @for h in &o.holds { li { span class="hold" { (h.kind) } ": " (h.reason) } } }
        }
        h2 { "Lines" }
        div class="table-wrap" {
            table {
                thead { tr {
                    th scope="col" { "SKU" } th scope="col" { "Title" } th scope="col" class="num" { "Quantity" }
                    th scope="col" class="num" { "Unit price" } th scope="col" { "HS code" }
                } }
                tbody {
                    @for l in &o.lines {
                        tr {
                            td { (l.sku.as_deref().unwrap_or("—")) } td { (l.title) }
                            td class="num" { (l.quantity) } td class="num" { (l.unit_price) }
                            td { (l.hs_code.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
        h2 { "FX" }
        @match &fx {
            None => p { "Not converted yet." },
            Some(v) => {
                p { "Status: " (v.status.as_str()) }
                @for m in &v.missing { p class="hold" { (m) } }
                @for (currency, r) in &v.reporting {
                    p { (currency) ": " @if let Some(t) = r.totals.get("grand_total") { (t) } }
                }
            }
        }
        h2 { "Tax" }
        @match &quote {
            None => p { "Not quoted yet." },
            Some(q) => {
                p {
                    "Regime: " (q.regime.as_deref().unwrap_or("—")) ". Tax and duty: "
                    @match &q.tax_total { Some(t) => (t), None => { "none yet (held: " (q.missing.join("; ")) ")" } }
                }
                ol { @for s in &q.explanation { li { code { (s.rule) } ": " (s.outcome) } } }
            }
        }
    };
    render(
        &app,
        &session,
        &format!("Order {}", o.external_id),
        None,
        body,
    )
}

/// What happened to an order, oldest first, from the dates it carries: placed, each payment
/// and refund, each shipment, the channel's latest revision, and the FX conversion.
fn timeline(
    o: &Order,
    fx: Option<&crate::fx::FxView>,
) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default()
    };
    let mut out = vec![(o.placed_at.to_utc(), format!("placed on {}", o.channel))];
    for p in &o.payments {
        if let Some(at) = p.processed_at {
            let mut what = format!(
                "payment {} of {}",
                name(serde_json::to_value(p.status)),
                p.amount
            );
            if let Some(r) = &p.refunded {
                what.push_str(&format!(" ({r} refunded)"));
            }
            out.push((at.to_utc(), what));
        }
    }
    for s in &o.shipments {
        if let Some(at) = s.shipped_at {
            let carrier = s.carrier.as_deref().unwrap_or("an unnamed carrier");
            out.push((
                at.to_utc(),
                format!(
                    "shipment {} with {carrier}",
                    name(serde_json::to_value(s.status))
                ),
            ));
        }
    }
    let seq = o
        .revision
        .sequence
        .map(|s| format!(" (sequence {s})"))
        .unwrap_or_default();
    out.push((
        o.revision.updated_at.to_utc(),
        format!(
            "latest revision from the channel{seq}: {}",
            o.status.as_str()
        ),
    ));
    if let Some(v) = fx {
        out.push((
            v.updated_at,
            format!("FX: {}", v.status.as_str().replace('_', " ")),
        ));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// The customer key a lookup names: a key itself (`c.…`), or an email or phone turned into
/// one with the configured salt (`[customers] key_salt`, the same for every instance), as the
/// gateway keys orders (the address itself is not stored).
fn customer_key_of(config: &crate::config::Config, q: &str) -> Option<String> {
    if q.starts_with("c.") {
        return Some(q.to_string());
    }
    let salt = config
        .instances
        .values()
        .find_map(|i| i.customer_key_salt.as_ref())?;
    let email = q.contains('@');
    let customer = crate::model::Customer {
        email: email.then(|| q.to_string()),
        phone: (!email).then(|| q.to_string()),
        ..Default::default()
    };
    customer.derive_key(salt.expose().as_bytes())
}
