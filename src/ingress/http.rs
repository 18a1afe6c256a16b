//! The HTTP surface: webhooks in, the `/v1` API, health and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::problem::Problem;
use crate::adapter::Headers;
use crate::backend::Stores;
use crate::config::Config;
use crate::model::{ListingId, OrderId, validate_instance_id};
use crate::pipeline::{self, IngestError, IngestReport, Ingested, ReplayError};
use crate::store::{Cursor, DeadLetterQuery, IngestOutcome, OrderQuery, RecordResult, StoreError};
use crate::telemetry::{self, names};

/// Shared state of the HTTP handlers.
pub struct App<S> {
    pub store: S,
    pub config: Arc<Config>,
    in_flight: Arc<Semaphore>,
}

impl<S: Clone> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            config: self.config.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

impl<S: Stores> App<S> {
    pub fn new(store: S, config: Arc<Config>) -> Self {
        // Install the recorder before the first delivery is counted.
        let _ = telemetry::metrics();
        let permits = config.server.max_in_flight;
        Self {
            store,
            config,
            in_flight: Arc::new(Semaphore::new(permits)),
        }
    }
}

/// Builds the router.
pub fn router<S: Stores>(app: App<S>) -> Router {
    let body_limit = app.config.server.body_limit;
    let api = Router::new()
        .route("/v1/orders", get(list_orders::<S>))
        .route("/v1/orders/{id}", get(get_order::<S>))
        .route("/v1/listings/{id}", get(get_listing::<S>))
        .route("/v1/dead-letters", get(list_dead_letters::<S>))
        .route("/v1/dead-letters/{id}", get(get_dead_letter::<S>))
        .route(
            "/v1/dead-letters/{id}/replay",
            post(replay_dead_letter::<S>),
        )
        .route(
            "/v1/instances/{instance}/orders",
            post(submit_canonical::<S>),
        )
        .route("/v1/instances/{instance}/imports", post(submit_import::<S>))
        .route(
            "/v1/instances/{instance}/listings",
            post(submit_listing::<S>),
        )
        .route(
            "/v1/recommendations/{customer_key}",
            get(recommendations::<S>),
        )
        .route("/v1/rankings", get(rankings::<S>))
        .route(
            "/v1/instances/{instance}/reconciliation",
            get(reconciliation::<S>),
        )
        .route("/v1/orders/{id}/fx", get(order_fx::<S>))
        .route("/v1/fx/log", get(fx_log::<S>))
        .route("/v1/fx/verify", get(fx_verify::<S>))
        .route("/v1/fx/report", get(fx_report::<S>))
        .route("/v1/fx/rates", post(fx_rates::<S>))
        .route("/v1/quote", post(quote::<S>))
        .route("/v1/orders/{id}/tax", get(order_tax::<S>))
        .route("/v1/orders/{id}/quote", post(requote::<S>))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            require_token::<S>,
        ));
    Router::new()
        .route("/webhooks/{instance}", post(webhook::<S>))
        .merge(api)
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics))
        .fallback(|| async { Problem::not_found("route") })
        .layer(middleware::from_fn_with_state(app.clone(), admission::<S>))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

/// Sheds load beyond `max_in_flight` and bounds each request's time; both answer 503 with
/// Retry-After so senders retry later. A request that timed out may still have been stored;
/// the retry is then recognised as a duplicate.
async fn admission<S: Stores>(State(app): State<App<S>>, req: Request, next: Next) -> Response {
    if let Some(refusal) =
        super::transport::refuse_from_head(req.headers(), app.config.server.body_limit)
    {
        tracing::info!(
            status = refusal.status.as_u16(),
            slug = refusal.slug,
            "request refused from its headers"
        );
        return refusal.into_response();
    }
    let Ok(_permit) = app.in_flight.clone().try_acquire_owned() else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Too many requests in flight; retry",
        )
        .retry_after(1)
        .into_response();
    };
    match tokio::time::timeout(app.config.server.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Problem::unavailable("the request took too long").into_response(),
    }
}

/// `/v1` needs `Authorization: Bearer <api_token>` when a token is configured.
async fn require_token<S: Stores>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &app.config.server.api_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok = given.len() == token.expose().len()
            && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()));
        if !ok {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "API token required",
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn to_headers(map: &HeaderMap) -> Headers {
    let mut h = Headers::default();
    for (k, v) in map {
        if let Ok(text) = v.to_str() {
            h.push(k.as_str(), text);
        }
    }
    h
}

fn records_json(records: &[RecordResult]) -> Value {
    json!(records)
}

async fn webhook<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let known =
        validate_instance_id(&instance).is_ok() && app.config.instances.contains_key(&instance);
    // Metric labels only ever carry configured instance ids.
    let label = if known {
        instance.clone()
    } else {
        "(unknown)".to_string()
    };
    let (outcome, response) = webhook_inner(&app, &instance, known, &headers, body).await;
    metrics::counter!(names::DELIVERIES, "instance" => label.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::INGEST_DURATION, "instance" => label)
        .record(started.elapsed().as_secs_f64());
    // A sender that needs a particular acknowledgement gets it, and only once stored.
    let ack = app
        .config
        .instances
        .get(&instance)
        .and_then(|i| i.adapter.spec().webhook.as_ref())
        .and_then(|w| w.ack.as_ref());
    match ack {
        Some(ack) if response.status().is_success() => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, ack.content_type.clone())],
            ack.body.clone(),
        )
            .into_response(),
        _ => response,
    }
}

#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
async fn webhook_inner<S: Stores>(
    app: &App<S>,
    instance: &str,
    known: bool,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (&'static str, Response) {
    if !known {
        return (
            "unknown_instance",
            Problem::not_found("channel instance").into_response(),
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::info!(
                instance,
                limit = app.config.server.body_limit,
                "delivery over the body limit"
            );
            return (
                "too_large",
                Problem::too_large(app.config.server.body_limit).into_response(),
            );
        }
        Err(_) => {
            return (
                "bad_request",
                Problem::bad_request("the request body could not be read").into_response(),
            );
        }
    };
    let h = to_headers(headers);
    match pipeline::ingest(
        &app.store,
        &app.config,
        instance,
        &h,
        Vec::from(body),
        Utc::now(),
    )
    .await
    {
        Ok(Ingested::Ping) => {
            tracing::info!(
                instance,
                "unsigned activation ping answered; nothing stored"
            );
            (
                "ping",
                axum::Json(json!({"status": "ping"})).into_response(),
            )
        }
        Ok(Ingested::Delivery(IngestReport {
            fetch_pending: true,
            outcome: IngestOutcome::Stored { delivery_id, .. },
            ..
        })) => {
            tracing::debug!(instance, %delivery_id, "thin webhook stored; its record will be fetched");
            (
                "fetch_pending",
                axum::Json(
                    json!({"status": "stored", "delivery_id": delivery_id, "fetch": "pending"}),
                )
                .into_response(),
            )
        }
        Ok(Ingested::Delivery(report)) => match report.outcome {
            IngestOutcome::Duplicate {
                original_delivery_id,
            } => {
                tracing::debug!(instance, delivery_id = %original_delivery_id, "duplicate delivery");
                (
                    "duplicate",
                    (
                        StatusCode::OK,
                        axum::Json(
                            json!({"status": "duplicate", "delivery_id": original_delivery_id}),
                        ),
                    )
                        .into_response(),
                )
            }
            IngestOutcome::Stored {
                delivery_id,
                dead_letters,
                records,
                ..
            } if !dead_letters.is_empty() => {
                metrics::counter!(names::DEAD_LETTERS, "instance" => instance.to_string())
                    .increment(dead_letters.len() as u64);
                let whole = matches!(report.errors.as_slice(), [(None, _)]);
                let mut items = Vec::new();
                for ((item, e), dl_id) in report.errors.iter().zip(&dead_letters) {
                    let fields = e.field_paths().join(",");
                    tracing::warn!(instance, %delivery_id, item, kind = e.kind(), fields = %fields, "delivery dead-lettered");
                    items.push(json!({
                        "dead_letter_id": dl_id,
                        "item": item,
                        "reason": e.kind(),
                        "detail": e.to_string(),
                        "errors": e.fields(),
                    }));
                }
                let body = if whole {
                    let mut one = items.remove(0);
                    let obj = one.as_object_mut().expect("object literal");
                    obj.insert("status".into(), "dead_lettered".into());
                    obj.insert("delivery_id".into(), delivery_id.into());
                    obj.remove("item");
                    one
                } else {
                    json!({
                        "status": "partially_dead_lettered",
                        "delivery_id": delivery_id,
                        "records": records_json(&records),
                        "dead_letters": items,
                    })
                };
                (
                    "dead_lettered",
                    (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
                )
            }
            IngestOutcome::Stored {
                delivery_id,
                ignored: true,
                ..
            } => {
                tracing::debug!(instance, %delivery_id, "delivery of an unmapped topic stored and ignored");
                (
                    "ignored",
                    axum::Json(json!({"status": "ignored", "delivery_id": delivery_id}))
                        .into_response(),
                )
            }
            IngestOutcome::Stored {
                delivery_id,
                records,
                ..
            } => {
                for r in &records {
                    metrics::counter!(names::RECORDS, "kind" => r.kind.as_str(), "change" => r.change.as_str())
                        .increment(1);
                }
                tracing::debug!(instance, %delivery_id, records = records.len(), "delivery stored");
                (
                    "stored",
                    axum::Json(json!({
                        "status": "stored",
                        "delivery_id": delivery_id,
                        "records": records_json(&records),
                    }))
                    .into_response(),
                )
            }
        },
        Err(IngestError::Unauthorized(reason)) => {
            tracing::info!(
                instance,
                reason = reason.kind(),
                "delivery refused: not authentic"
            );
            (
                "unauthorized",
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "signature",
                    "Signature verification failed",
                )
                .into_response(),
            )
        }
        Err(IngestError::UnknownInstance(_)) => (
            "unknown_instance",
            Problem::not_found("channel instance").into_response(),
        ),
        Err(IngestError::NoWebhook(_)) => (
            "no_webhook",
            Problem::new(
                StatusCode::NOT_FOUND,
                "no-webhook",
                "This instance takes no webhooks",
            )
            .into_response(),
        ),
        Err(IngestError::Store(e)) => {
            tracing::error!(instance, error = %e, "store write failed; answering 503");
            ("unavailable", store_problem(&e).into_response())
        }
    }
}

fn store_problem(e: &StoreError) -> Problem {
    match e {
        StoreError::NotFound => Problem::not_found("record"),
        StoreError::Invalid(m) => Problem::bad_request(m.clone()),
        StoreError::Unavailable(_) | StoreError::Corrupt(_) => {
            Problem::unavailable("the store did not confirm the operation")
        }
    }
}

fn store_err(e: StoreError) -> Response {
    if !matches!(e, StoreError::NotFound | StoreError::Invalid(_)) {
        tracing::error!(error = %e, "store read failed");
    }
    store_problem(&e).into_response()
}

async fn get_order<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let Ok(id) = OrderId::parse(&id) else {
        return Problem::not_found("order").into_response();
    };
    match app.store.get_order(&id).await {
        Ok(Some(mut o)) => {
            // An order waiting for an exchange rate says so.
            if let Ok(Some(v)) = app.store.fx_view(id.as_str()).await
                && v.status == crate::fx::FxStatus::FxPending
            {
                o.holds
                    .push(crate::model::Hold::new("fx_pending", v.missing.join("; ")));
            }
            // So does one whose taxes cannot be computed.
            if let Ok(Some(q)) = app.store.tax_quote(id.as_str()).await
                && q.status == crate::tax::QuoteStatus::TaxPending
            {
                o.holds
                    .push(crate::model::Hold::new("tax_pending", q.missing.join("; ")));
            }
            axum::Json(o).into_response()
        }
        Ok(None) => Problem::not_found("order").into_response(),
        Err(e) => store_err(e),
    }
}

async fn get_listing<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let Ok(id) = ListingId::parse(&id) else {
        return Problem::not_found("listing").into_response();
    };
    match app.store.get_listing(&id).await {
        Ok(Some(l)) => axum::Json(l).into_response(),
        Ok(None) => Problem::not_found("listing").into_response(),
        Err(e) => store_err(e),
    }
}

/// `GET /v1/orders/{id}/fx`: the order's amounts in the reporting currencies, or why it waits.
async fn order_fx<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    if OrderId::parse(&id).is_err() {
        return Problem::not_found("order").into_response();
    }
    match app.store.fx_view(&id).await {
        Ok(Some(v)) => axum::Json(v).into_response(),
        Ok(None) => {
            Problem::not_found("FX state of this order (not converted yet)").into_response()
        }
        Err(e) => store_err(e),
    }
}

#[derive(Debug, Deserialize)]
struct FxLogParams {
    from: Option<String>,
    to: Option<String>,
    currency: Option<String>,
    order: Option<String>,
    /// `json` (default, paginated) or `csv` (every matching entry, streamed).
    format: Option<String>,
    cursor: Option<u64>,
    limit: Option<usize>,
}

fn fx_filter(p: &FxLogParams) -> Result<crate::fx::LogFilter, Problem> {
    let date = |s: &Option<String>, name: &str| -> Result<Option<NaiveDate>, Problem> {
        s.as_deref()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| Problem::bad_request(format!("{name} must be YYYY-MM-DD")))
            })
            .transpose()
    };
    Ok(crate::fx::LogFilter {
        from: date(&p.from, "from")?,
        to: date(&p.to, "to")?,
        currency: p.currency.clone(),
        order: p.order.clone(),
    })
}

/// `GET /v1/fx/log`: the FX log for finance (JSON pages, or the whole selection as CSV).
async fn fx_log<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<FxLogParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are not valid").into_response();
    };
    let filter = match fx_filter(&p) {
        Ok(f) => f,
        Err(problem) => return problem.into_response(),
    };
    if p.format.as_deref() == Some("csv") {
        // One consistent snapshot of the log (so `superseded_by` agrees with the rows), sent
        // in chunks of 1,000 rows as they are rendered.
        let entries = match crate::fx::read_log(&app.store).await {
            Ok(e) => e,
            Err(e) => return store_err(e),
        };
        let superseded = crate::fx::log::superseded_by(&entries);
        let rows: Vec<crate::fx::log::FxEntry> =
            entries.into_iter().filter(|e| filter.matches(e)).collect();
        let mut chunks: Vec<Result<String, std::io::Error>> = Vec::new();
        let mut chunk = format!("{}\n", crate::fx::log::CSV_HEADER);
        for (i, e) in rows.iter().enumerate() {
            chunk.push_str(&crate::fx::log::csv_row(
                e,
                superseded.get(&e.id).map(String::as_str),
            ));
            chunk.push('\n');
            if i % 1000 == 999 {
                chunks.push(Ok(std::mem::take(&mut chunk)));
            }
        }
        if !chunk.is_empty() {
            chunks.push(Ok(chunk));
        }
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"fx-log.csv\"",
                ),
            ],
            axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
        )
            .into_response();
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    match crate::fx::export_page(&app.store, &filter, p.cursor.unwrap_or(0), limit).await {
        Ok((items, next)) => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|(e, by)| {
                    let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
                    v["superseded_by"] = json!(by);
                    v
                })
                .collect();
            axum::Json(json!({"items": items, "next_cursor": next})).into_response()
        }
        Err(e) => store_err(e),
    }
}

/// `GET /v1/fx/verify`: recomputes the log and checks its chain.
async fn fx_verify<S: Stores>(State(app): State<App<S>>) -> Response {
    match crate::fx::verify_log(&app.store).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Debug, Deserialize)]
struct DateParam {
    date: String,
}

/// `GET /v1/fx/report?date=`: per currency pair, the day's conversions.
async fn fx_report<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<DateParam>, QueryRejection>,
) -> Response {
    let Some(date) = params
        .ok()
        .and_then(|Query(p)| NaiveDate::parse_from_str(&p.date, "%Y-%m-%d").ok())
    else {
        return Problem::bad_request("date must be YYYY-MM-DD").into_response();
    };
    match crate::fx::report(&app.store, date, app.config.fx.max_age_days).await {
        Ok(r) => axum::Json(json!({"date": date, "pairs": r})).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Debug, Deserialize)]
struct QuoteParams {
    /// A rule pack version (default: the active one).
    pack: Option<String>,
    /// The buyer's China CBEC purchases this year so far (CNY).
    annual_cny: Option<String>,
}

/// `POST /v1/quote`: landed cost and explanation for an order JSON (nothing is stored).
async fn quote<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<QuoteParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are not valid").into_response();
    };
    let Ok(body) = body else {
        return Problem::bad_request("the body could not be read").into_response();
    };
    let order = match crate::tax::order_from_json(&body) {
        Ok(o) => o,
        Err(e) => return Problem::bad_request(e).into_response(),
    };
    let annual = match p
        .annual_cny
        .as_deref()
        .map(str::parse::<rust_decimal::Decimal>)
    {
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            return Problem::bad_request("annual_cny must be a decimal").into_response();
        }
        None => rust_decimal::Decimal::ZERO,
    };
    let docs = match app.store.fx_docs().await {
        Ok(d) => d,
        Err(e) => return store_err(e),
    };
    let book = crate::fx::book::RateBook::new(docs, app.config.fx.max_age_days);
    match crate::tax::quote_order(&order, &app.config.tax, p.pack.as_deref(), &book, annual) {
        Ok(q) => axum::Json(q).into_response(),
        Err(e) => Problem::bad_request(e).into_response(),
    }
}

/// `GET /v1/orders/{id}/tax`: the stored quote of an order.
async fn order_tax<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    match app.store.tax_quote(&id).await {
        Ok(Some(q)) => axum::Json(q).into_response(),
        Ok(None) => Problem::not_found("tax quote of this order").into_response(),
        Err(e) => store_err(e),
    }
}

/// `POST /v1/orders/{id}/quote`: quotes a stored order again with the active pack (after a
/// pack fix or new rates) and stores the result.
async fn requote<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let Ok(oid) = OrderId::parse(&id) else {
        return Problem::not_found("order").into_response();
    };
    let order = match app.store.get_order(&oid).await {
        Ok(Some(o)) => o,
        Ok(None) => return Problem::not_found("order").into_response(),
        Err(e) => return store_err(e),
    };
    let docs = match app.store.fx_docs().await {
        Ok(d) => d,
        Err(e) => return store_err(e),
    };
    let book = crate::fx::book::RateBook::new(docs, app.config.fx.max_age_days);
    let job = crate::tax::TaxJob::new(app.config.tax.clone(), app.config.fx.max_age_days);
    match job.quote(&app.store, &order, &book).await {
        Ok(q) => axum::Json(q).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Debug, Deserialize)]
struct RatesParams {
    /// `ecb` (eurofxref XML) or `manual` (the TOML table).
    source: String,
    /// Where the document came from, for people.
    origin: Option<String>,
}

/// `POST /v1/fx/rates?source=ecb|manual`: stores a rate document (what `crossgate fx sync`
/// sends); waiting orders are converted on the FX job's next look.
async fn fx_rates<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<RatesParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return Problem::bad_request("source=ecb or source=manual is required").into_response();
    };
    let source = match p.source.as_str() {
        "ecb" => crate::fx::rates::RateSource::Ecb,
        "manual" => crate::fx::rates::RateSource::Manual,
        _ => return Problem::bad_request("source must be ecb or manual").into_response(),
    };
    let Ok(body) = body else {
        return Problem::bad_request("the body could not be read (too large?)").into_response();
    };
    let origin = p.origin.unwrap_or_else(|| "api".into());
    let doc = match crate::fx::document(source, &origin, &body, Utc::now()) {
        Ok(d) => d,
        Err(e) => return Problem::bad_request(e.to_string()).into_response(),
    };
    let (days, hash) = (doc.days.len(), doc.hash.clone());
    let (first, last) = (
        doc.days.first().map(|d| d.date),
        doc.days.last().map(|d| d.date),
    );
    match app.store.fx_put_doc(doc).await {
        Ok(new) => axum::Json(json!({"stored": new, "hash": hash, "days": days, "first_day": first, "last_day": last})).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Debug, Deserialize)]
struct SinceParam {
    since: Option<String>,
}

/// `GET /v1/instances/{instance}/reconciliation?since=`: orders seen by polling but never
/// pushed, and the reverse.
async fn reconciliation<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    params: Result<Query<SinceParam>, QueryRejection>,
) -> Response {
    if !app.config.instances.contains_key(&instance) {
        return Problem::not_found("channel instance").into_response();
    }
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are not valid").into_response();
    };
    let since = match p.since.as_deref().map(parse_since) {
        Some(None) => {
            return Problem::bad_request("since must be an RFC 3339 time or YYYY-MM-DD")
                .into_response();
        }
        Some(s) => s,
        None => None,
    };
    match app.store.reconcile(&instance, since).await {
        Ok(r) => {
            if since.is_none() {
                crate::telemetry::set_reconciliation_gauges(
                    &instance,
                    r.polled_not_pushed.len(),
                    r.pushed_not_polled.len(),
                );
            }
            axum::Json(json!({"instance": instance, "result": r})).into_response()
        }
        Err(e) => store_err(e),
    }
}

/// `POST /v1/instances/{instance}/orders`: a call-centre tool (or any trusted internal system)
/// submits one canonical order JSON for a phone instance.
async fn submit_canonical<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    submit_common(
        app,
        instance,
        headers,
        body,
        pipeline::Submission::CanonicalOrder,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoParams {
    k: Option<usize>,
    strategy: Option<String>,
    /// Destination country for a new customer's fallback list.
    country: Option<String>,
}

/// `GET /v1/recommendations/{customer_key}?k=10&strategy=blended&country=DE`: the customer's
/// list from the last job run. A customer the jobs do not know yet gets the most bought items
/// in `country` (when given and known), else overall (`fallback` says which).
async fn recommendations<S: Stores>(
    State(app): State<App<S>>,
    Path(customer): Path<String>,
    params: Result<Query<RecoParams>, QueryRejection>,
) -> Response {
    use crate::reco::{job, models};
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are k, strategy and country")
            .into_response();
    };
    let strategy = p
        .strategy
        .unwrap_or_else(|| models::DEFAULT_STRATEGY.to_string());
    if !models::STRATEGIES.contains(&strategy.as_str()) {
        return Problem::bad_request(format!(
            "strategy: unknown '{strategy}'; one of {}",
            models::STRATEGIES.join(", ")
        ))
        .into_response();
    }
    let k = p.k.unwrap_or(10);
    if !(1..=app.config.jobs.list_len).contains(&k) {
        return Problem::bad_request(format!(
            "k: must be 1 to {} (jobs.list_len)",
            app.config.jobs.list_len
        ))
        .into_response();
    }
    let meta = match job::meta(&app.store, crate::reco::store::RecoPart::Recommendations).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Problem::unavailable(
                "recommendations have not been computed yet (crossgate jobs run recommend)",
            )
            .into_response();
        }
        Err(e) => return store_err(e),
    };
    let mut fallback = None;
    let mut list = match app.store.reco_list(&strategy, &customer).await {
        Ok(l) => l,
        Err(e) => return store_err(e),
    };
    if list.is_none() {
        let country = p
            .country
            .as_deref()
            .map(|c| format!("country:{}", c.to_uppercase()));
        for seg in country.iter().map(String::as_str).chain(["popular"]) {
            match app.store.reco_list(job::FALLBACK, seg).await {
                Ok(Some(l)) => {
                    fallback = Some(seg.split(':').next().unwrap_or(seg).to_string());
                    list = Some(l);
                    break;
                }
                Ok(None) => {}
                Err(e) => return store_err(e),
            }
        }
    }
    let items: Vec<(String, f32)> = match list.as_deref().map(serde_json::from_str) {
        Some(Ok(v)) => v,
        None => Vec::new(),
        Some(Err(e)) => return store_err(StoreError::Corrupt(format!("list: {e}"))),
    };
    let items: Vec<Value> = items
        .into_iter()
        .take(k)
        .map(|(item, score)| json!({"item": item, "score": score}))
        .collect();
    axum::Json(json!({
        "customer_key": customer,
        "strategy": strategy,
        "fallback": fallback,
        "generated_at": meta.get("generated_at"),
        "items": items,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RankParams {
    by: Option<String>,
    country: Option<String>,
    channel: Option<String>,
    k: Option<usize>,
}

/// `GET /v1/rankings?by=sales|revenue|price|rating|rating_wilson&country=DE&channel=shopify&k=10`
async fn rankings<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<RankParams>, QueryRejection>,
) -> Response {
    use crate::reco::job;
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are by, country, channel and k")
            .into_response();
    };
    let by = p.by.unwrap_or_else(|| "sales".into());
    if !job::RANKINGS.contains(&by.as_str()) {
        return Problem::bad_request(format!(
            "by: unknown '{by}'; one of {}",
            job::RANKINGS.join(", ")
        ))
        .into_response();
    }
    let k = p.k.unwrap_or(10);
    if !(1..=app.config.jobs.ranking_size).contains(&k) {
        return Problem::bad_request(format!(
            "k: must be 1 to {} (jobs.ranking_size)",
            app.config.jobs.ranking_size
        ))
        .into_response();
    }
    let country = p
        .country
        .map(|c| c.to_uppercase())
        .unwrap_or_else(|| "*".into());
    let channel = p.channel.unwrap_or_else(|| "*".into());
    let meta = match job::meta(&app.store, crate::reco::store::RecoPart::Rankings).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Problem::unavailable(
                "rankings have not been computed yet (crossgate jobs run rank)",
            )
            .into_response();
        }
        Err(e) => return store_err(e),
    };
    let key = format!("{by}|{country}|{channel}");
    let entries = match app.store.reco_ranking(&key, k).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return Problem::not_found("ranking")
                .detail(format!(
                    "no sales or listings for by={by}, country={country}, channel={channel}"
                ))
                .into_response();
        }
        Err(e) => return store_err(e),
    };
    let items: Vec<Value> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (item, score, detail))| {
            let mut v = json!({"rank": i + 1, "item": item, "score": score});
            if let (Some(o), Ok(Value::Object(d))) =
                (v.as_object_mut(), serde_json::from_str::<Value>(&detail))
            {
                o.extend(d);
            }
            v
        })
        .collect();
    axum::Json(json!({
        "by": by,
        "country": country,
        "channel": channel,
        "currency": meta.get("currency"),
        "as_of": meta.get("as_of"),
        "generated_at": meta.get("generated_at"),
        "items": items,
    }))
    .into_response()
}

/// `POST /v1/instances/{instance}/listings`: a catalogue tool submits one canonical listing
/// JSON (without the gateway's fields).
async fn submit_listing<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    submit_common(
        app,
        instance,
        headers,
        body,
        pipeline::Submission::CanonicalListing,
    )
    .await
}

/// `POST /v1/instances/{instance}/imports`: a file in the instance adapter's format (a CSV of
/// phone orders); used by `crossgate import` against a running daemon.
async fn submit_import<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    submit_common(
        app,
        instance,
        headers,
        body,
        pipeline::Submission::AdapterFormat,
    )
    .await
}

async fn submit_common<S: Stores>(
    app: App<S>,
    instance: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    how: pipeline::Submission,
) -> Response {
    let Some(inst) = app.config.instances.get(&instance) else {
        return Problem::not_found("channel instance").into_response();
    };
    if !matches!(
        inst.adapter.spec().channel_kind,
        crate::model::ChannelKind::Phone | crate::model::ChannelKind::MobileApp
    ) {
        return Problem::bad_request(
            "only phone and app instances accept submitted records; channels push webhooks",
        )
        .into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Problem::too_large(app.config.server.body_limit).into_response();
        }
        Err(_) => {
            return Problem::bad_request("the request body could not be read").into_response();
        }
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200);
    match pipeline::submit(&app.store, inst, how, key, Vec::from(body), Utc::now()).await {
        Ok(report) => match report.outcome {
            IngestOutcome::Duplicate {
                original_delivery_id,
            } => axum::Json(json!({"status": "duplicate", "delivery_id": original_delivery_id}))
                .into_response(),
            IngestOutcome::Stored {
                delivery_id,
                records,
                dead_letters,
                ..
            } => {
                let failures: Vec<Value> = report
                    .errors
                    .iter()
                    .zip(&dead_letters)
                    .map(|((item, e), dl)| {
                        json!({
                            "dead_letter_id": dl,
                            "item": item,
                            "reason": e.kind(),
                            "detail": e.to_string(),
                            "errors": e.fields(),
                        })
                    })
                    .collect();
                let status = match (records.is_empty(), failures.is_empty()) {
                    (_, true) => "stored",
                    (true, false) => "dead_lettered",
                    (false, false) => "partially_dead_lettered",
                };
                let code = if failures.is_empty() {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                };
                (
                    code,
                    axum::Json(json!({
                        "status": status,
                        "delivery_id": delivery_id,
                        "records": records_json(&records),
                        "dead_letters": failures,
                    })),
                )
                    .into_response()
            }
        },
        Err(pipeline::SubmitError::Invalid(e)) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-submission",
            "The submission is not valid; nothing was stored",
        )
        .detail(e.to_string())
        .with("reason", e.kind().into())
        .with("errors", problems_of(&e))
        .into_response(),
        Err(pipeline::SubmitError::Store(e)) => store_err(e),
    }
}

/// Every problem of a refused submission, by field (`$` for the whole body).
fn problems_of(e: &crate::adapter::NormalizeError) -> Value {
    if e.fields().is_empty() {
        json!([{"field": "$", "problem": e.to_string()}])
    } else {
        json!(e.fields())
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    /// Channel instance id.
    channel: Option<String>,
    /// RFC 3339 instant or a date (YYYY-MM-DD, midnight UTC).
    since: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of a listing, items in order; `next_cursor` is absent on the last page.
#[derive(serde::Serialize)]
struct PageBody<T> {
    items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

fn parse_since(s: &str) -> Option<DateTime<Utc>> {
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

fn parse_page(
    p: &ListParams,
    app_instances: &Config,
) -> Result<(Option<String>, usize, Option<Cursor>), Problem> {
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
    if let Some(ch) = &p.channel
        && !app_instances.instances.contains_key(ch)
    {
        return Err(Problem::bad_request(
            "channel is not a configured instance id",
        ));
    }
    Ok((p.channel.clone(), limit, cursor))
}

async fn list_orders<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are not valid").into_response();
    };
    let (instance, limit, after) = match parse_page(&p, &app.config) {
        Ok(v) => v,
        Err(problem) => return problem.into_response(),
    };
    let since = match &p.since {
        Some(s) => match parse_since(s) {
            Some(d) => Some(d),
            None => {
                return Problem::bad_request("since must be an RFC 3339 time or YYYY-MM-DD")
                    .into_response();
            }
        },
        None => None,
    };
    match app
        .store
        .list_orders(OrderQuery {
            instance,
            since,
            after,
            limit,
        })
        .await
    {
        Ok(page) => axum::Json(PageBody {
            items: page.items,
            next_cursor: page.next.map(|c| c.encode()),
        })
        .into_response(),
        Err(e) => store_err(e),
    }
}

async fn list_dead_letters<S: Stores>(
    State(app): State<App<S>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return Problem::bad_request("query parameters are not valid").into_response();
    };
    let (instance, limit, after) = match parse_page(&p, &app.config) {
        Ok(v) => v,
        Err(problem) => return problem.into_response(),
    };
    match app
        .store
        .list_dead_letters(DeadLetterQuery {
            instance,
            after,
            limit,
        })
        .await
    {
        Ok(page) => axum::Json(PageBody {
            items: page.items,
            next_cursor: page.next.map(|c| c.encode()),
        })
        .into_response(),
        Err(e) => store_err(e),
    }
}

async fn get_dead_letter<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let dl = match app.store.get_dead_letter(&id).await {
        Ok(Some(dl)) => dl,
        Ok(None) => return Problem::not_found("dead letter").into_response(),
        Err(StoreError::Invalid(_)) => return Problem::not_found("dead letter").into_response(),
        Err(e) => return store_err(e),
    };
    let raw = match app.store.get_delivery(&id).await {
        Ok(raw) => raw,
        Err(e) => return store_err(e),
    };
    let body = raw.as_ref().map(|r| match std::str::from_utf8(&r.body) {
        Ok(text) => json!({"encoding": "utf-8", "data": text}),
        Err(_) => {
            use base64::Engine;
            json!({"encoding": "base64", "data": base64::engine::general_purpose::STANDARD.encode(&r.body)})
        }
    });
    axum::Json(json!({
        "dead_letter": dl,
        "delivery": raw.as_ref().map(|r| json!({
            "topic": r.topic,
            "headers": r.headers,
            "dedupe_id": r.dedupe_id,
            "body": body,
        })),
    }))
    .into_response()
}

async fn replay_dead_letter<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Response {
    match pipeline::replay_dead_letter(&app.store, &app.config, &id, Utc::now()).await {
        Ok(records) => {
            metrics::counter!(names::DEAD_LETTERS_REPLAYED, "result" => "resolved").increment(1);
            tracing::info!(dead_letter_id = %id, records = records.len(), "dead letter replayed");
            axum::Json(json!({"status": "resolved", "records": records_json(&records)}))
                .into_response()
        }
        Err(ReplayError::NotFound(_)) | Err(ReplayError::Store(StoreError::NotFound)) => {
            Problem::not_found("dead letter").into_response()
        }
        Err(ReplayError::Store(StoreError::Invalid(_))) => {
            Problem::not_found("dead letter").into_response()
        }
        Err(ReplayError::StillFailing(dl)) => {
            metrics::counter!(names::DEAD_LETTERS_REPLAYED, "result" => "failed").increment(1);
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "still-failing",
                "The delivery still cannot be normalized",
            )
            .detail(dl.reason.message.clone())
            .with("errors", json!(dl.reason.errors))
            .with("failed_replays", json!(dl.failed_replays))
            .into_response()
        }
        Err(e @ (ReplayError::RawMissing(_) | ReplayError::UnknownInstance { .. })) => {
            Problem::new(
                StatusCode::CONFLICT,
                "cannot-replay",
                "The dead letter cannot be replayed",
            )
            .detail(e.to_string())
            .into_response()
        }
        Err(e @ ReplayError::FetchQueued(_)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "fetch_queued", "detail": e.to_string()})),
        )
            .into_response(),
        Err(ReplayError::Store(e)) => store_err(e),
    }
}

async fn readyz<S: Stores>(State(app): State<App<S>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => axum::Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => Problem::unavailable(format!("store: {e}")).into_response(),
        Err(_) => Problem::unavailable("store: ping timed out").into_response(),
    }
}

async fn metrics() -> Response {
    let body = telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
