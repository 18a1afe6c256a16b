//! Tax: a quote for an order JSON (nothing stored), an order's stored quote, a requote.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::extract::{Path, State};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Deserialize;

use super::openapi::DocOperation;
use super::{Answer, App, Body, Q};
use crate::backend::Stores;
use crate::ingress::problem::Problem;
use crate::model::OrderId;
use crate::tax::Quote;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/quote",
            post_with(quote::<S>, |op| {
                op.about(
                    "tax",
                    "Landed cost and its explanation for an order (nothing stored)",
                )
                .json_body::<crate::model::AppOrder>()
            }),
        )
        .api_route(
            "/v1/orders/{id}/tax",
            get_with(order_tax::<S>, |op| {
                op.about("tax", "An order's stored tax quote")
                    .problem(404, "No such order, or not quoted yet")
            }),
        )
        .api_route(
            "/v1/orders/{id}/quote",
            post_with(requote::<S>, |op| {
                op.about("tax", "Quotes a stored order again with the active pack")
                    .problem(404, "No such order")
            }),
        )
}

#[derive(Debug, Deserialize, JsonSchema)]
struct QuoteParams {
    /// A rule pack version (default: the active one).
    pack: Option<String>,
    /// The buyer's China CBEC purchases this year so far (CNY).
    annual_cny: Option<String>,
}

/// `POST /v1/quote`: landed cost and explanation for an order JSON (nothing is stored).
async fn quote<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<QuoteParams>,
    body: Result<Body, Problem>,
) -> Answer<Quote> {
    let Body(body) = body?;
    let order = crate::tax::order_from_json(&body).map_err(Problem::bad_request)?;
    let annual = match p.annual_cny.as_deref().map(str::parse::<Decimal>) {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Err(Problem::bad_request("annual_cny must be a decimal")),
        None => Decimal::ZERO,
    };
    let book = super::fx::rate_book(&app).await?;
    crate::tax::quote_order(
        &order,
        &app.config().tax,
        p.pack.as_deref(),
        &book,
        annual,
        Default::default(),
    )
    .map(axum::Json)
    .map_err(Problem::bad_request)
}

/// `GET /v1/orders/{id}/tax`: the stored quote of an order.
pub(super) async fn order_tax<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<Quote> {
    app.store
        .tax_quote(&id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found("tax quote of this order"))
}

/// `POST /v1/orders/{id}/quote`: quotes a stored order again with the active pack (after a
/// pack fix or new rates) and stores the result.
async fn requote<S: Stores>(State(app): State<App<S>>, Path(id): Path<String>) -> Answer<Quote> {
    let oid = OrderId::parse(&id).map_err(|_| Problem::not_found("order"))?;
    let order = app
        .store
        .get_order(&oid)
        .await?
        .ok_or_else(|| Problem::not_found("order"))?;
    let book = super::fx::rate_book(&app).await?;
    let config = app.config();
    let job = crate::tax::TaxJob::new(config.tax.clone(), config.fx.max_age_days);
    Ok(axum::Json(job.quote(&app.store, &order, &book).await?))
}
