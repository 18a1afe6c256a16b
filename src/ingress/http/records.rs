//! Stored records: orders, listings, dead letters (read and replay), reconciliation.
//!
//! Query vocabulary, on every route: `instance` is a channel instance id (`shop-eu`),
//! `channel` a channel name (`shopify`).

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::openapi::DocOperation;
use super::{Answer, App, Q, instance};
use crate::backend::Stores;
use crate::ingress::answers::{
    BodyView, DeadLetterDetail, DeliveryView, DiscardAnswer, Page, ReconciliationAnswer,
    ReplayAnswer,
};
use crate::ingress::problem::Problem;
use crate::model::{Listing, ListingId, Order, OrderId};
use crate::pipeline::{self, ReplayError};
use crate::store::{Cursor, DeadLetter, DeadLetterQuery, ListingQuery, OrderQuery, StoreError};
use crate::telemetry::names;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/orders",
            get_with(list_orders::<S>, |op| {
                op.about("records", "Orders, oldest first, a page at a time")
            }),
        )
        .api_route(
            "/v1/orders/{id}",
            get_with(get_order::<S>, |op| {
                op.about("records", "One order, with its FX and tax holds")
                    .problem(404, "No such order")
            }),
        )
        .api_route(
            "/v1/customers/{key}/orders",
            get_with(customer_orders::<S>, |op| {
                op.about(
                    "records",
                    "The orders of a customer key (the salted key the gateway sets), newest \
                     first, up to 100",
                )
            }),
        )
        .api_route(
            "/v1/listings",
            get_with(list_listings::<S>, |op| {
                op.about("records", "Listings by the channel's update time")
            }),
        )
        .api_route(
            "/v1/listings/{id}",
            get_with(get_listing::<S>, |op| {
                op.about("records", "One listing")
                    .problem(404, "No such listing")
            }),
        )
        .api_route(
            "/v1/dead-letters",
            get_with(list_dead_letters::<S>, |op| {
                op.about(
                    "dead letters",
                    "Dead letters, oldest first, a page at a time; by instance, kind and time",
                )
            }),
        )
        .api_route(
            "/v1/dead-letters/{id}",
            get_with(get_dead_letter::<S>, |op| {
                op.about(
                    "dead letters",
                    "A dead letter and the delivery it came from",
                )
                .problem(404, "No such dead letter")
            }),
        )
        .api_route(
            "/v1/dead-letters/{id}/replay",
            post_with(replay_dead_letter::<S>, |op| {
                op.about(
                    "dead letters",
                    "Normalizes the delivery again with the current adapter",
                )
                .answers::<ReplayAnswer>(200, "Resolved: the records stored")
                .answers::<ReplayAnswer>(202, "A thin webhook, queued for another fetch")
                .problem(404, "No such dead letter")
                .problem(409, "The dead letter cannot be replayed")
                .problem(422, "The delivery still cannot be normalized")
            }),
        )
        .api_route(
            "/v1/dead-letters/{id}/discard",
            post_with(discard_dead_letter::<S>, |op| {
                op.about(
                    "dead letters",
                    "Discards a dead letter with a reason: it no longer waits, and its raw body \
                     expires with the usual retention",
                )
                .json_body::<DiscardRequest>()
                .problem(404, "No such dead letter")
            }),
        )
        .api_route(
            "/v1/instances/{instance}/reconciliation",
            get_with(reconciliation::<S>, |op| {
                op.about(
                    "records",
                    "Orders seen by polling but never pushed, and the reverse",
                )
                .problem(404, "No such channel instance")
            }),
        )
}

/// `GET /v1/orders/{id}`: the order, with the holds of the FX and tax jobs (an order waiting
/// for an exchange rate, or whose taxes cannot be computed, says so).
pub(super) async fn get_order<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<Order> {
    let id = OrderId::parse(&id).map_err(|_| Problem::not_found("order"))?;
    let mut o = app
        .store
        .get_order(&id)
        .await?
        .ok_or_else(|| Problem::not_found("order"))?;
    if let Ok(Some(v)) = app.store.fx_view(id.as_str()).await
        && v.status == crate::fx::FxStatus::FxPending
    {
        o.holds
            .push(crate::model::Hold::new("fx_pending", v.missing.join("; ")));
    }
    if let Ok(Some(q)) = app.store.tax_quote(id.as_str()).await
        && q.status == crate::tax::QuoteStatus::TaxPending
    {
        o.holds
            .push(crate::model::Hold::new("tax_pending", q.missing.join("; ")));
    }
    Ok(axum::Json(o))
}

async fn get_listing<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<Listing> {
    let id = ListingId::parse(&id).map_err(|_| Problem::not_found("listing"))?;
    let l = app.store.get_listing(&id).await?;
    l.map(axum::Json)
        .ok_or_else(|| Problem::not_found("listing"))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Channel instance id.
    pub(super) instance: Option<String>,
    /// Refused with a pointer to `instance` (it named an instance id here before).
    pub(super) channel: Option<String>,
    /// RFC 3339 instant or a date (YYYY-MM-DD, midnight UTC).
    pub(super) since: Option<String>,
    #[schemars(range(min = 1, max = 500))]
    pub(super) limit: Option<usize>,
    pub(super) cursor: Option<String>,
}

pub(super) const DEFAULT_LIMIT: usize = 50;
pub(super) const MAX_LIMIT: usize = 500;

pub(super) fn parse_since(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

fn since_param(since: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    since
        .map(|s| {
            parse_since(s)
                .ok_or_else(|| Problem::bad_request("since must be an RFC 3339 time or YYYY-MM-DD"))
        })
        .transpose()
}

/// The instance filter, page size and cursor of a listing.
fn parse_page<S>(
    p: &ListParams,
    app: &App<S>,
) -> Result<(Option<String>, usize, Option<Cursor>), Problem> {
    if p.channel.is_some() {
        return Err(Problem::bad_request(
            "channel names a channel (e.g. shopify); filter by instance id with instance=",
        ));
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let cursor = match &p.cursor {
        Some(c) => {
            Some(Cursor::decode(c).ok_or_else(|| Problem::bad_request("cursor is not valid"))?)
        }
        None => None,
    };
    if let Some(i) = &p.instance
        && !app.config().instances.contains_key(i)
    {
        return Err(Problem::bad_request(
            "instance is not a configured instance id",
        ));
    }
    Ok((p.instance.clone(), limit, cursor))
}

/// Orders a customer lookup answers.
pub(super) const CUSTOMER_ORDERS: usize = 100;

/// `GET /v1/customers/{key}/orders`: newest first by the channel's update time.
pub(super) async fn customer_orders<S: Stores>(
    State(app): State<App<S>>,
    Path(key): Path<String>,
) -> Answer<Page<Order>> {
    let mut items = app.store.orders_of_customer(&key, CUSTOMER_ORDERS).await?;
    items.sort_by_key(|o| std::cmp::Reverse(o.revision.updated_at));
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// `GET /v1/orders?instance=&since=&limit=&cursor=`
async fn list_orders<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<ListParams>,
) -> Answer<Page<Order>> {
    let (instance, limit, after) = parse_page(&p, &app)?;
    let since = since_param(p.since.as_deref())?;
    let query = OrderQuery {
        instance,
        since,
        after,
        limit,
    };
    let page = app.store.list_orders(query).await?;
    Ok(axum::Json(page.into()))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListingParams {
    instance: Option<String>,
    channel: Option<String>,
    /// Exactly this SKU.
    sku: Option<String>,
    /// The channel's `updated_at` at or after: RFC 3339 or YYYY-MM-DD.
    updated_since: Option<String>,
    #[schemars(range(min = 1, max = 500))]
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/listings?instance=&sku=&updated_since=&limit=&cursor=`: listings by the channel's
/// update time, oldest first (stock and price as the channel last reported them).
async fn list_listings<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<ListingParams>,
) -> Answer<Page<Listing>> {
    let (instance, limit, after) = parse_page(
        &ListParams {
            instance: p.instance,
            channel: p.channel,
            since: None,
            limit: p.limit,
            cursor: p.cursor,
        },
        &app,
    )?;
    if p.sku
        .as_deref()
        .is_some_and(|s| s.is_empty() || s.len() > 200)
    {
        return Err(Problem::bad_request("sku must be 1 to 200 characters"));
    }
    let since = p
        .updated_since
        .as_deref()
        .map(|s| {
            parse_since(s).ok_or_else(|| {
                Problem::bad_request("updated_since must be an RFC 3339 time or YYYY-MM-DD")
            })
        })
        .transpose()?;
    let query = ListingQuery {
        instance,
        sku: p.sku,
        since,
        after,
        limit,
    };
    let page = app.store.list_listings(query).await?;
    Ok(axum::Json(page.into()))
}

/// `GET /v1/dead-letters?instance=&limit=&cursor=`
pub(super) async fn list_dead_letters<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<DeadLetterParams>,
) -> Answer<Page<DeadLetter>> {
    let list = ListParams {
        instance: p.instance.clone(),
        channel: None,
        since: None,
        limit: p.limit,
        cursor: p.cursor.clone(),
    };
    let (instance, limit, mut after) = parse_page(&list, &app)?;
    let filter = DeadLetterFilter::of(&p)?;
    // The index is in time order: start at `since` unless the cursor is past it.
    if let Some(since) = filter.since {
        let start = Cursor {
            millis: since.timestamp_millis() - 1,
            id: "\u{10FFFF}".into(),
        };
        if after.as_ref().is_none_or(|c| c.millis < start.millis) {
            after = Some(start);
        }
    }
    let mut items = Vec::new();
    let mut scanned = 0;
    loop {
        let page = app
            .store
            .list_dead_letters(DeadLetterQuery {
                instance: instance.clone(),
                after: after.clone(),
                limit: SCAN_PAGE,
            })
            .await?;
        let more = page.next.is_some();
        let n = page.items.len();
        for (i, dl) in page.items.into_iter().enumerate() {
            scanned += 1;
            let at = Cursor {
                millis: dl.dead_lettered_at.timestamp_millis(),
                id: dl.id.clone(),
            };
            if filter.until.is_some_and(|u| dl.dead_lettered_at > u) {
                return Ok(axum::Json(Page::from(crate::store::Page {
                    items,
                    next: None,
                })));
            }
            if filter.kind.as_deref().is_none_or(|k| k == dl.reason.kind) {
                items.push(dl);
            }
            after = Some(at);
            // A full page, or the scan budget spent: the client continues from here.
            if items.len() == limit || scanned == SCAN_BUDGET {
                let rest = more || i + 1 < n;
                let page = crate::store::Page {
                    items,
                    next: after.filter(|_| rest),
                };
                return Ok(axum::Json(page.into()));
            }
        }
        if !more {
            return Ok(axum::Json(Page::from(crate::store::Page {
                items,
                next: None,
            })));
        }
    }
}

/// Dead letters read from the store per step of a filtered listing, and at most per request
/// (a selective filter over a long list answers a shorter page with a cursor to go on).
const SCAN_PAGE: usize = 200;
const SCAN_BUDGET: usize = 10_000;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLetterParams {
    /// Channel instance id.
    pub(crate) instance: Option<String>,
    /// Why it was parked: `parse`, `fields`, `no_mapping`, `fetch_pending` or
    /// `fetch_refused`.
    pub(crate) kind: Option<String>,
    /// Dead-lettered at or after: RFC 3339 instant or a date (YYYY-MM-DD, midnight UTC).
    pub(crate) since: Option<String>,
    /// Dead-lettered at or before: RFC 3339 instant or a date (YYYY-MM-DD: the whole day).
    pub(crate) until: Option<String>,
    #[schemars(range(min = 1, max = 500))]
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

/// The kinds a dead letter's reason has.
pub(crate) const DEAD_LETTER_KINDS: &[&str] = &[
    "parse",
    "fields",
    "no_mapping",
    crate::pipeline::FETCH_PENDING,
    "fetch_refused",
];

struct DeadLetterFilter {
    kind: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl DeadLetterFilter {
    fn of(p: &DeadLetterParams) -> Result<Self, Problem> {
        if let Some(k) = &p.kind
            && !DEAD_LETTER_KINDS.contains(&k.as_str())
        {
            return Err(Problem::bad_request(format!(
                "kind must be one of {}",
                DEAD_LETTER_KINDS.join(", ")
            )));
        }
        let since = since_param(p.since.as_deref())?;
        let until = match p.until.as_deref() {
            None => None,
            Some(u) => Some(match NaiveDate::parse_from_str(u, "%Y-%m-%d") {
                Ok(d) => d
                    .succ_opt()
                    .and_then(|n| n.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc() - chrono::Duration::microseconds(1))
                    .ok_or_else(|| Problem::bad_request("until is out of range"))?,
                Err(_) => parse_since(u).ok_or_else(|| {
                    Problem::bad_request("until must be an RFC 3339 time or YYYY-MM-DD")
                })?,
            }),
        };
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(Problem::bad_request("since must not be after until"));
        }
        Ok(DeadLetterFilter {
            kind: p.kind.clone(),
            since,
            until,
        })
    }
}

/// `GET /v1/dead-letters/{id}`: the dead letter and its raw delivery.
pub(super) async fn get_dead_letter<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<DeadLetterDetail> {
    let dead_letter = match app.store.get_dead_letter(&id).await {
        Ok(Some(dl)) => dl,
        Ok(None) | Err(StoreError::Invalid(_)) => return Err(Problem::not_found("dead letter")),
        Err(e) => return Err(e.into()),
    };
    let raw = app.store.get_delivery(&id).await?;
    let delivery = raw.map(|r| DeliveryView {
        body: BodyView::of(&r.body),
        topic: r.topic,
        headers: r.headers,
        dedupe_id: r.dedupe_id,
    });
    Ok(axum::Json(DeadLetterDetail {
        dead_letter,
        delivery,
    }))
}

/// `POST /v1/dead-letters/{id}/replay`: normalizes the delivery again with the current
/// adapter; 202 when it is a thin webhook queued for another fetch.
pub(super) async fn replay_dead_letter<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<ReplayAnswer>), Problem> {
    match pipeline::replay_dead_letter(&app.store, &app.config(), &id, Utc::now()).await {
        Ok(records) => {
            metrics::counter!(names::DEAD_LETTERS_REPLAYED, "result" => "resolved").increment(1);
            tracing::info!(dead_letter_id = %id, records = records.len(), "dead letter replayed");
            let answer = ReplayAnswer {
                status: "resolved".into(),
                records: Some(records),
                detail: None,
            };
            Ok((StatusCode::OK, axum::Json(answer)))
        }
        Err(e @ ReplayError::FetchQueued(_)) => {
            let answer = ReplayAnswer {
                status: "fetch_queued".into(),
                records: None,
                detail: Some(e.to_string()),
            };
            Ok((StatusCode::ACCEPTED, axum::Json(answer)))
        }
        Err(e) => Err(replay_problem(e)),
    }
}

/// `POST /v1/dead-letters/{id}/discard` with `{"reason": ...}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DiscardRequest {
    /// Why it is discarded (1 to 500 characters): kept in the log of the discard.
    #[schemars(length(min = 1, max = 500))]
    pub(super) reason: String,
}

/// Discards a dead letter: it is resolved with no records (the one way a dead letter leaves),
/// so it no longer waits and its raw body expires like any processed delivery's. The reason
/// is logged with the dead letter's id; it is the operator's text, not the payload's.
pub(super) async fn discard_dead_letter<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    body: Result<super::Body, Problem>,
) -> Answer<DiscardAnswer> {
    let super::Body(body) = body?;
    let req: DiscardRequest = super::request(&body, "the discard")?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::bad_request("reason: must be 1 to 500 characters")
            .with("field", json!("reason")));
    }
    let dl = match app.store.get_dead_letter(&id).await {
        Ok(Some(dl)) => dl,
        Ok(None) | Err(StoreError::Invalid(_)) => return Err(Problem::not_found("dead letter")),
        Err(e) => return Err(e.into()),
    };
    match app
        .store
        .resolve_dead_letter(&id, Vec::new(), Utc::now())
        .await
    {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(Problem::not_found("dead letter")),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(dead_letter_id = %id, instance = %dl.instance, kind = %dl.reason.kind, reason, "dead letter discarded");
    Ok(axum::Json(DiscardAnswer {
        dead_letter_id: id,
        status: "discarded".into(),
    }))
}

fn replay_problem(e: ReplayError) -> Problem {
    match e {
        ReplayError::NotFound(_)
        | ReplayError::Store(StoreError::NotFound | StoreError::Invalid(_)) => {
            Problem::not_found("dead letter")
        }
        ReplayError::StillFailing(dl) => {
            metrics::counter!(names::DEAD_LETTERS_REPLAYED, "result" => "failed").increment(1);
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "still-failing",
                "The delivery still cannot be normalized",
            )
            .detail(dl.reason.message.clone())
            .with("errors", json!(dl.reason.errors))
            .with("failed_replays", json!(dl.failed_replays))
        }
        e @ (ReplayError::RawMissing(_)
        | ReplayError::UnknownInstance { .. }
        | ReplayError::FetchQueued(_)) => Problem::new(
            StatusCode::CONFLICT,
            "cannot-replay",
            "The dead letter cannot be replayed",
        )
        .detail(e.to_string()),
        ReplayError::Store(e) => e.into(),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SinceParam {
    since: Option<String>,
}

/// `GET /v1/instances/{instance}/reconciliation?since=`: orders seen by polling but never
/// pushed, and the reverse.
async fn reconciliation<S: Stores>(
    State(app): State<App<S>>,
    Path(instance_id): Path<String>,
    p: Result<Q<SinceParam>, Problem>,
) -> Answer<ReconciliationAnswer> {
    instance(&app, &instance_id)?;
    let Q(p) = p?;
    let since = since_param(p.since.as_deref())?;
    let result = app.store.reconcile(&instance_id, since).await?;
    if since.is_none() {
        crate::telemetry::set_reconciliation_gauges(
            &instance_id,
            result.polled_not_pushed.len(),
            result.pushed_not_polled.len(),
        );
    }
    Ok(axum::Json(ReconciliationAnswer {
        instance: instance_id,
        result,
    }))
}
