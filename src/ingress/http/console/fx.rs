//! The FX review for finance: the log's conversions for a period (grand totals), per-pair
//! totals of exactly those rows, the rates used plotted against the ECB series, the log's
//! verification and its latest signed checkpoint, and the same rows as CSV.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDate;
use maud::{Markup, html};
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

use super::pages::{problem_page, render};
use super::{Session, chart};
use crate::backend::Stores;
use crate::fx::book::RateBook;
use crate::fx::log::PairReport;
use crate::fx::review::Row;
use crate::ingress::answers::FxReviewAnswer;
use crate::ingress::http::fx::{
    FxLogParams, FxReviewParams, fx_checkpoints, fx_log, fx_review, fx_verify, rate_book,
};
use crate::ingress::http::{App, Q};
use crate::ingress::problem::Problem;

/// Rows shown on the page; the totals and the CSV cover every matching row.
const SHOWN: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub(super) struct FxFilter {
    from: Option<String>,
    to: Option<String>,
    currency: Option<String>,
    order: Option<String>,
    channel: Option<String>,
}

impl FxFilter {
    /// The `/v1/fx/log` parameters of this filter (grand totals), the period defaulting to the
    /// 30 days up to `latest`.
    fn params(&self, latest: NaiveDate, format: Option<&str>) -> FxLogParams {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        FxLogParams {
            from: some(&self.from).or_else(|| Some((latest - chrono::Days::new(30)).to_string())),
            to: some(&self.to).or_else(|| Some(latest.to_string())),
            currency: some(&self.currency),
            order: some(&self.order),
            channel: some(&self.channel),
            format: format.map(str::to_string),
            ..FxLogParams::default()
        }
    }
}

fn latest(book: &RateBook) -> NaiveDate {
    book.latest_ecb_day()
        .unwrap_or_else(|| chrono::Utc::now().date_naive())
}

/// `/console/fx`.
pub(super) async fn review<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Query(f): Query<FxFilter>,
) -> Response {
    review_page(&app, &session, &f, None).await
}

/// Verifies the whole log, then shows the page with the result.
pub(super) async fn verify<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Query(f): Query<FxFilter>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = super::csrf_refusal_for_reading(&app, &session, &body) {
        return refused;
    }
    let verification = match fx_verify(State(app.clone())).await {
        Ok(Json(v)) => v,
        Err(p) => return problem_page(&app, &session, &p),
    };
    review_page(&app, &session, &f, Some(verification)).await
}

async fn review_page<S: Stores>(
    app: &App<S>,
    session: &str,
    f: &FxFilter,
    verification: Option<crate::fx::Verification>,
) -> Response {
    let csrf = super::keys(app).csrf(session);
    match review_body(app, f, &csrf, verification).await {
        Ok(body) => render(app, session, "FX review", None, body),
        Err(p) => problem_page(app, session, &p),
    }
}

/// The page; with the log's verification when the viewer asked for it (it reads and
/// recomputes the whole log, so it is not run on every view). Totals, chart and rows are what
/// `GET /v1/fx/review` answers from the review index, so the page costs the same on a log of
/// any size.
async fn review_body<S: Stores>(
    app: &App<S>,
    f: &FxFilter,
    csrf: &str,
    verification: Option<crate::fx::Verification>,
) -> Result<Markup, Problem> {
    let book = rate_book(app).await?;
    let params = f.params(latest(&book), None);
    let request = FxReviewParams {
        from: params.from.clone().unwrap_or_default(),
        to: params.to.clone().unwrap_or_default(),
        currency: params.currency.clone(),
        channel: params.channel.clone(),
        order: params.order.clone(),
        limit: Some(SHOWN),
    };
    let Json(review) = fx_review(State(app.clone()), Q(request)).await?;
    let Json(checkpoints) = fx_checkpoints(State(app.clone())).await?;
    let query = filter_query(&params);
    let csv = format!("/console/fx/export.csv?{query}");
    Ok(html! {
        (filter_form(&params))
        @if review.indexed_upto < review.log_head {
            p role="status" class="error" {
                "The review covers the log up to entry " (review.indexed_upto) " of " (review.log_head)
                "; the daemon is still indexing the rest. The CSV covers every entry."
            }
        }
        p { a href=(csv) download="fx-log.csv" { "Download these rows as CSV" } }
        h2 { "Totals per currency pair" }
        (pair_table(&review.pairs))
        h2 { "Rates used against the ECB reference rates" }
        @for p in review.pairs.iter().filter(|p| p.from != p.to).take(4) {
            (rate_chart(p, &review, &book))
        }
        h2 { "The log" }
        (verification_status(verification))
        p {
            @match checkpoints.checkpoints.last() {
                Some(c) => { "Latest signed checkpoint: entry " (c.seq) " at " (c.at.format("%Y-%m-%d %H:%M UTC")) " (key " (c.key_id) ")." }
                None => "No signed checkpoint yet.",
            }
        }
        form method="post" action={ "/console/fx/verify?" (query) } class="actions" {
            (super::view::csrf_field(csrf))
            button type="submit" { "Verify the whole log now" }
        }
        (entry_table(&review.rows, review.rows_total))
    })
}

fn verification_status(v: Option<crate::fx::Verification>) -> Markup {
    html! {
        @if let Some(v) = v {
            p role="status" class=(if v.findings.is_empty() { "notice" } else { "error" }) {
                @if v.findings.is_empty() {
                    "Verified: " (v.entries) " entries, the hash chain and every order's \
                     conversion agree."
                } @else {
                    (v.findings.len()) " finding(s) in " (v.entries) " entries: run \
                     crossgate fx verify for the detail."
                }
            }
        }
    }
}

fn filter_form(p: &FxLogParams) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form method="get" action="/console/fx" class="actions" {
            label for="from" { "From" } input id="from" name="from" type="date" value=(v(&p.from));
            label for="to" { "To" } input id="to" name="to" type="date" value=(v(&p.to));
            label for="currency" { "Currency" } input id="currency" name="currency" type="text" size="4" value=(v(&p.currency));
            label for="channel" { "Channel" } input id="channel" name="channel" type="text" size="10" value=(v(&p.channel));
            label for="order" { "Order" } input id="order" name="order" type="text" size="14" value=(v(&p.order));
            button type="submit" { "Show" }
        }
    }
}

/// The filter as a query string (for the CSV link and the verify form).
fn filter_query(p: &FxLogParams) -> String {
    super::view::query([
        ("from", &p.from),
        ("to", &p.to),
        ("currency", &p.currency),
        ("channel", &p.channel),
        ("order", &p.order),
    ])
    .finish()
}

fn pair_table(pairs: &[PairReport]) -> Markup {
    html! {
        @if pairs.is_empty() {
            p { "No conversions in this period." }
        } @else {
            div class="table-wrap" {
                table id="pair-totals" {
                    thead { tr {
                        th scope="col" { "From" } th scope="col" { "To" } th scope="col" class="num" { "Orders" }
                        th scope="col" class="num" { "Sum from" } th scope="col" class="num" { "Sum to" }
                        th scope="col" class="num" { "Lowest rate" } th scope="col" class="num" { "Highest rate" }
                    } }
                    tbody {
                        @for p in pairs {
                            tr {
                                td { (p.from) } td { (p.to) } td class="num" { (p.count) }
                                td class="num" { (p.from_sum) } td class="num" { (p.to_sum) }
                                td class="num" { (p.min_rate) } td class="num" { (p.max_rate) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn entry_table(rows: &[Row], total: u64) -> Markup {
    html! {
        @if total > rows.len() as u64 {
            p { "The first " (rows.len()) " of " (total) " rows; the totals and the CSV cover them all." }
        }
        div class="table-wrap" {
            table {
                caption { "Conversions (grand totals)" }
                thead { tr {
                    th scope="col" { "Rate date" } th scope="col" { "Order" } th scope="col" class="num" { "From" }
                    th scope="col" class="num" { "To" } th scope="col" class="num" { "Rate" } th scope="col" { "Superseded" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.rate_date) }
                            td { (r.number.as_deref().unwrap_or(&r.order_id)) }
                            td class="num" { (r.from) } td class="num" { (r.to) } td class="num" { (r.rate) }
                            td { (if r.superseded { "yes" } else { "" }) }
                        }
                    }
                }
            }
        }
    }
}

/// The ECB series of a pair over the period (one point per published day), and every rate the
/// log used.
fn rate_chart(pair: &PairReport, review: &FxReviewAnswer, book: &RateBook) -> Markup {
    let rate_on = |d: NaiveDate| -> Option<f64> {
        let (a, b) = (book.leg(&pair.from, d).ok()?, book.leg(&pair.to, d).ok()?);
        // Only the day's own publication (a leg from an earlier day repeats it).
        (a.date == d && b.date == d).then(|| a.rate_to(&b).to_f64())?
    };
    let series: Vec<(NaiveDate, f64)> = review
        .from
        .iter_days()
        .take_while(|d| *d <= review.to)
        .filter_map(|d| rate_on(d).map(|r| (d, r)))
        .collect();
    let used: Vec<(NaiveDate, f64)> = review
        .rates_used
        .iter()
        .filter(|u| u.from == pair.from && u.to == pair.to)
        .filter_map(|u| Some((u.date, u.rate.to_f64()?)))
        .collect();
    let title = format!("{} → {}", pair.from, pair.to);
    chart::line_with_points(&title, review.from, review.to, &series, &used)
}

/// `/console/fx/export.csv`: the rows of the page's filter, as `/v1/fx/log?format=csv` gives
/// them.
pub(super) async fn export<S: Stores>(
    State(app): State<App<S>>,
    Query(f): Query<FxFilter>,
) -> Response {
    let latest = match rate_book(&app).await {
        Ok(b) => latest(&b),
        Err(p) => return p.into_response(),
    };
    match fx_log(State(app), Q(f.params(latest, Some("csv")))).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}
