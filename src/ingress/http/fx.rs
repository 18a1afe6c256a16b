//! FX for finance: an order's conversion, the log (JSON pages or CSV), its verification, the
//! daily report, and rate documents in.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use super::openapi::DocOperation;
use super::records::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{Answer, App, Body, Q};
use crate::backend::Stores;
use crate::fx::book::RateBook;
use crate::fx::{FxView, LogFilter, Verification};
use crate::ingress::answers::{
    FxCheckpoints, FxLogItem, FxLogPage, FxReportAnswer, FxReviewAnswer, RateUsed, RatesStored,
};
use crate::ingress::problem::Problem;
use crate::model::OrderId;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/orders/{id}/fx",
            get_with(order_fx::<S>, |op| {
                op.about(
                    "fx",
                    "An order's amounts in the reporting currencies, or why it waits",
                )
                .problem(404, "No such order, or not converted yet")
            }),
        )
        .api_route(
            "/v1/fx/log",
            get_with(fx_log::<S>, |op| {
                op.about(
                    "fx",
                    "The FX log: JSON pages, or all of it as CSV or JSON lines",
                )
                .answers::<FxLogPage>(200, "A page (format=json)")
                .or_text(200, &["text/csv", "application/x-ndjson"])
            }),
        )
        .api_route(
            "/v1/fx/verify",
            get_with(fx_verify::<S>, |op| {
                op.about("fx", "Checks the FX log's hash chain and checkpoints")
            }),
        )
        .api_route(
            "/v1/fx/checkpoints",
            get_with(fx_checkpoints::<S>, |op| {
                op.about("fx", "The signed checkpoints of the FX log")
            }),
        )
        .api_route(
            "/v1/fx/review",
            get_with(fx_review::<S>, |op| {
                op.about(
                    "fx",
                    "A period's grand totals per currency pair, the rates used and the first \
                     rows, from the FX review index (as fast on a log of any size)",
                )
            }),
        )
        .api_route(
            "/v1/fx/report",
            get_with(fx_report::<S>, |op| {
                op.about("fx", "Totals per currency pair for a day or a range")
            }),
        )
        .api_route(
            "/v1/fx/rates",
            post_with(fx_rates::<S>, |op| {
                op.about(
                    "fx",
                    "Stores a rate document: the ECB's XML, CSV or zip (source=ecb), or manual \
                     rates (source=manual)",
                )
                .raw_body(&[
                    "application/xml",
                    "text/xml",
                    "text/csv",
                    "application/zip",
                    "application/toml",
                ])
            }),
        )
}

/// The rate book the active FX settings read (tax quotes and the console's FX review).
pub(super) async fn rate_book<S: Stores>(app: &App<S>) -> Result<RateBook, Problem> {
    let docs = app.store.fx_docs().await?;
    Ok(RateBook::new(docs, app.config().fx.max_age_days))
}

/// `GET /v1/orders/{id}/fx`: the order's amounts in the reporting currencies, or why it waits.
pub(super) async fn order_fx<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<FxView> {
    OrderId::parse(&id).map_err(|_| Problem::not_found("order"))?;
    app.store
        .fx_view(&id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found("FX state of this order (not converted yet)"))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct FxLogParams {
    #[schemars(extend("format" = "date"))]
    pub(super) from: Option<String>,
    #[schemars(extend("format" = "date"))]
    pub(super) to: Option<String>,
    pub(super) currency: Option<String>,
    /// The gateway's order id, or the channel's order number.
    pub(super) order: Option<String>,
    pub(super) channel: Option<String>,
    pub(super) instance: Option<String>,
    /// `grand_total` (default) or `all`.
    pub(super) parts: Option<String>,
    /// `json` (default, paginated), or every matching entry streamed from one snapshot:
    /// `csv`, or `jsonl` (one JSON object per line, with `superseded_by`).
    pub(super) format: Option<String>,
    pub(super) cursor: Option<u64>,
    #[schemars(range(min = 1, max = 500))]
    pub(super) limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FxReviewParams {
    /// First rate date, YYYY-MM-DD.
    #[schemars(extend("format" = "date"))]
    pub(super) from: String,
    /// Last rate date, YYYY-MM-DD.
    #[schemars(extend("format" = "date"))]
    pub(super) to: String,
    /// Either side of the conversion.
    pub(super) currency: Option<String>,
    pub(super) channel: Option<String>,
    /// The gateway's order id, or the channel's order number (with or without `#`).
    pub(super) order: Option<String>,
    /// Rows answered (1 to 500; default 100).
    #[schemars(range(min = 1, max = 500))]
    pub(super) limit: Option<usize>,
}

/// Log batches a request applies to the review index itself when the daemon's FX loop has not
/// yet (the answer stays fast; `indexed_upto` says how far the index covers).
const REVIEW_BATCHES: usize = 1;
/// Rows answered by default.
const REVIEW_ROWS: usize = 100;

/// `GET /v1/fx/review?from=&to=&currency=&channel=&order=&limit=`.
pub(super) async fn fx_review<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<FxReviewParams>,
) -> Answer<FxReviewAnswer> {
    use crate::fx::review;
    let day = |s: &str, name| date_param(Some(s), name).map(Option::unwrap_or_default);
    let (from, to) = (day(&p.from, "from")?, day(&p.to, "to")?);
    if from > to {
        return Err(Problem::bad_request("from must not be after to"));
    }
    let limit = p.limit.unwrap_or(REVIEW_ROWS);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let some = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let sel = review::Selection {
        from,
        to,
        currency: some(p.currency),
        channel: some(p.channel),
        order: some(p.order),
    };
    let coverage = review::catch_up(&app.store, REVIEW_BATCHES).await?;
    let totals = review::totals(&app.store, &sel).await?;
    let rows = review::scan_rows(&app.store, &sel, limit).await?;
    let rates_used = totals
        .used
        .iter()
        .flat_map(|((from, to), days)| {
            days.iter().flat_map(move |(date, rates)| {
                rates.iter().map(move |(rate, count)| RateUsed {
                    from: from.clone(),
                    to: to.clone(),
                    date: *date,
                    rate: *rate,
                    count: *count,
                })
            })
        })
        .collect();
    Ok(axum::Json(FxReviewAnswer {
        from,
        to,
        indexed_upto: coverage.upto,
        log_head: coverage.head,
        pairs: totals.pairs,
        rows_total: totals.rows,
        rows,
        rates_used,
    }))
}

fn date_param(s: Option<&str>, name: &str) -> Result<Option<NaiveDate>, Problem> {
    s.map(|d| {
        NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| Problem::bad_request(format!("{name} must be YYYY-MM-DD")))
    })
    .transpose()
}

pub(super) fn fx_filter(p: &FxLogParams) -> Result<LogFilter, Problem> {
    Ok(LogFilter {
        from: date_param(p.from.as_deref(), "from")?,
        to: date_param(p.to.as_deref(), "to")?,
        currency: p.currency.clone(),
        order: p.order.clone(),
        channel: p.channel.clone(),
        instance: p.instance.clone(),
        parts: p
            .parts
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(Problem::bad_request)?
            .unwrap_or_default(),
    })
}

/// `GET /v1/fx/log`: the FX log for finance (JSON pages, or the whole selection as CSV).
pub(super) async fn fx_log<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<FxLogParams>,
) -> Result<Response, Problem> {
    let filter = fx_filter(&p)?;
    match p.format.as_deref() {
        Some("csv") => return fx_log_stream(&app, &filter, true).await,
        Some("jsonl") => return fx_log_stream(&app, &filter, false).await,
        None | Some("json") => {}
        Some(_) => {
            return Err(Problem::bad_request(
                "format must be json, jsonl or csv".to_string(),
            ));
        }
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let (items, next_cursor) =
        crate::fx::export_page(&app.store, &filter, p.cursor.unwrap_or(0), limit).await?;
    let items = items.into_iter().map(FxLogItem::from).collect();
    Ok(axum::Json(FxLogPage { items, next_cursor }).into_response())
}

/// Every selected entry from one consistent snapshot of the log (so `superseded_by` agrees
/// with the rows), read once and sent in chunks of 1,000 rows as they are rendered: CSV, or
/// JSON lines (what `crossgate fx log` reads through the daemon, linear in the log's size).
async fn fx_log_stream<S: Stores>(
    app: &App<S>,
    filter: &LogFilter,
    csv: bool,
) -> Result<Response, Problem> {
    let entries = crate::fx::export_all(&app.store, filter).await?;
    let chunks: Vec<Vec<u8>> = if csv {
        crate::fx::export::csv_chunks(&entries)
            .map_err(|err| Problem::unavailable(format!("FX log CSV: {err}")))?
    } else {
        // The entries are consumed as they are written (no copy of each).
        let mut chunks = Vec::new();
        let mut out = Vec::new();
        for (i, item) in entries.into_iter().enumerate() {
            serde_json::to_writer(&mut out, &FxLogItem::from(item))
                .map_err(|err| Problem::unavailable(format!("FX log entry: {err}")))?;
            out.push(b'\n');
            if i % 1000 == 999 {
                chunks.push(std::mem::take(&mut out));
            }
        }
        if !out.is_empty() {
            chunks.push(out);
        }
        chunks
    };
    let chunks = chunks.into_iter().map(Ok::<_, std::io::Error>);
    let (content_type, disposition) = if csv {
        (
            "text/csv; charset=utf-8",
            "attachment; filename=\"fx-log.csv\"",
        )
    } else {
        ("application/jsonl; charset=utf-8", "inline")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response())
}

/// `GET /v1/fx/verify`: recomputes the log and checks its chain.
pub(super) async fn fx_verify<S: Stores>(State(app): State<App<S>>) -> Answer<Verification> {
    Ok(axum::Json(crate::fx::verify_log(&app.store).await?))
}

/// `GET /v1/fx/checkpoints`: every signed checkpoint of the log, oldest first.
pub(super) async fn fx_checkpoints<S: Stores>(State(app): State<App<S>>) -> Answer<FxCheckpoints> {
    let checkpoints = app.store.fx_checkpoints().await?;
    let key = app.config().fx.checkpoints.as_ref().map(|c| c.key.public());
    Ok(axum::Json(FxCheckpoints {
        key_id: key.as_ref().map(crate::fx::checkpoint::key_id),
        public_key: key.as_ref().map(crate::fx::checkpoint::public_base64),
        checkpoints,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ReportParams {
    /// One day, or `from` and `to` (inclusive).
    #[schemars(extend("format" = "date"))]
    date: Option<String>,
    #[schemars(extend("format" = "date"))]
    from: Option<String>,
    #[schemars(extend("format" = "date"))]
    to: Option<String>,
    /// Revalue at this day's rates (default: the newest stored ECB day).
    #[schemars(extend("format" = "date"))]
    revalue_at: Option<String>,
}

/// `GET /v1/fx/report?date=` or `?from=&to=`: per currency pair, the orders converted at rates
/// of those days.
async fn fx_report<S: Stores>(
    State(app): State<App<S>>,
    p: Result<Q<ReportParams>, Problem>,
) -> Answer<FxReportAnswer> {
    let Q(p) = p?;
    let day = date_param(p.date.as_deref(), "date")?;
    let (from, to) = match (
        day,
        date_param(p.from.as_deref(), "from")?,
        date_param(p.to.as_deref(), "to")?,
    ) {
        (Some(d), None, None) => (d, d),
        (None, Some(f), Some(t)) if f <= t => (f, t),
        (None, Some(_), Some(_)) => return Err(Problem::bad_request("from must not be after to")),
        _ => {
            return Err(Problem::bad_request(
                "give date=YYYY-MM-DD, or from= and to=",
            ));
        }
    };
    let range = crate::fx::log::ReportRange {
        from,
        to,
        revalue_at: date_param(p.revalue_at.as_deref(), "revalue_at")?,
    };
    let pairs = crate::fx::report(&app.store, &range, app.config().fx.max_age_days).await?;
    Ok(axum::Json(FxReportAnswer { from, to, pairs }))
}

#[derive(Debug, Deserialize, JsonSchema)]
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
    p: Result<Q<RatesParams>, Problem>,
    body: Result<Body, Problem>,
) -> Answer<RatesStored> {
    let Ok(Q(p)) = p else {
        return Err(Problem::bad_request(
            "source=ecb or source=manual is required",
        ));
    };
    let source = match p.source.as_str() {
        "ecb" => crate::fx::rates::RateSource::Ecb,
        "manual" => crate::fx::rates::RateSource::Manual,
        _ => return Err(Problem::bad_request("source must be ecb or manual")),
    };
    let Body(body) = body?;
    let origin = p.origin.unwrap_or_else(|| "api".into());
    let doc = crate::fx::document(source, &origin, &body, Utc::now())
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let (days, hash) = (doc.days.len(), doc.hash.clone());
    let (first_day, last_day) = (
        doc.days.first().map(|d| d.date),
        doc.days.last().map(|d| d.date),
    );
    let stored = app.store.fx_put_doc(doc).await?;
    Ok(axum::Json(RatesStored {
        stored,
        hash,
        days,
        first_day,
        last_day,
    }))
}
