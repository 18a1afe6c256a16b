//! Recommendations and rankings, as the last job run published them.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::openapi::DocOperation;
use super::{Answer, App, Q};
use crate::backend::Stores;
use crate::ingress::answers::{RankedItem, RankingAnswer, RecommendationsAnswer, ScoredItem};
use crate::ingress::problem::Problem;
use crate::reco::store::RecoPart;
use crate::reco::{job, models};

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/recommendations/{customer_key}",
            get_with(recommendations::<S>, |op| {
                op.about("recommendations", "A customer's list from the last job run")
                    .problem(503, "No recommendation run has been published yet")
            }),
        )
        .api_route(
            "/v1/rankings",
            get_with(rankings::<S>, |op| {
                op.about("recommendations", "A ranking from the last job run")
                    .problem(404, "No sales or listings for this country and channel")
                    .problem(503, "No ranking run has been published yet")
            }),
        )
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecoParams {
    k: Option<usize>,
    strategy: Option<String>,
    /// Destination country for a new customer's fallback list.
    country: Option<String>,
}

/// `k`, within 1 and the configured maximum.
fn k_param(k: Option<usize>, max: usize, setting: &str) -> Result<usize, Problem> {
    let k = k.unwrap_or(10);
    if (1..=max).contains(&k) {
        Ok(k)
    } else {
        Err(Problem::bad_request(format!(
            "k: must be 1 to {max} ({setting})"
        )))
    }
}

/// The metadata of the last published run of `part`, or 503 saying which job to run.
async fn published<S: Stores>(
    app: &App<S>,
    part: RecoPart,
    missing: &'static str,
) -> Result<Value, Problem> {
    job::meta(&app.store, part)
        .await?
        .ok_or_else(|| Problem::unavailable(missing))
}

/// `GET /v1/recommendations/{customer_key}?k=10&strategy=blended&country=DE`: the customer's
/// list from the last job run; `fallback` says when it is the country's or overall favourites.
async fn recommendations<S: Stores>(
    State(app): State<App<S>>,
    Path(customer): Path<String>,
    Q(p): Q<RecoParams>,
) -> Answer<RecommendationsAnswer> {
    let strategy = p
        .strategy
        .unwrap_or_else(|| models::DEFAULT_STRATEGY.to_string());
    if !models::STRATEGIES.contains(&strategy.as_str()) {
        return Err(Problem::bad_request(format!(
            "strategy: unknown '{strategy}'; one of {}",
            models::STRATEGIES.join(", ")
        )));
    }
    let k = k_param(p.k, app.config().jobs.list_len, "jobs.list_len")?;
    let meta = published(
        &app,
        RecoPart::Recommendations,
        "recommendations have not been computed yet (crossgate jobs run recommend)",
    )
    .await?;
    let list =
        crate::reco::read::recommendations(&app.store, &strategy, &customer, p.country.as_deref())
            .await?;
    let items = list
        .items
        .into_iter()
        .take(k)
        .map(|(item, score)| ScoredItem { item, score })
        .collect();
    Ok(axum::Json(RecommendationsAnswer {
        customer_key: customer,
        strategy,
        fallback: list.fallback,
        generated_at: meta.get("generated_at").cloned(),
        items,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RankParams {
    by: Option<String>,
    country: Option<String>,
    /// A channel name (`shopify`), or all channels.
    channel: Option<String>,
    k: Option<usize>,
}

/// `GET /v1/rankings?by=sales|revenue|price|rating|rating_wilson&country=DE&channel=shopify&k=10`
async fn rankings<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<RankParams>,
) -> Answer<RankingAnswer> {
    let by = p.by.unwrap_or_else(|| "sales".into());
    if !job::RANKINGS.contains(&by.as_str()) {
        return Err(Problem::bad_request(format!(
            "by: unknown '{by}'; one of {}",
            job::RANKINGS.join(", ")
        )));
    }
    let k = k_param(p.k, app.config().jobs.ranking_size, "jobs.ranking_size")?;
    let country = p
        .country
        .map(|c| c.to_uppercase())
        .unwrap_or_else(|| "*".into());
    let channel = p.channel.unwrap_or_else(|| "*".into());
    let meta = published(
        &app,
        RecoPart::Rankings,
        "rankings have not been computed yet (crossgate jobs run rank)",
    )
    .await?;
    let key = format!("{by}|{country}|{channel}");
    let entries = app.store.reco_ranking(&key, k).await?.ok_or_else(|| {
        Problem::not_found("ranking").detail(format!(
            "no sales or listings for by={by}, country={country}, channel={channel}"
        ))
    })?;
    let items = entries
        .into_iter()
        .enumerate()
        .map(|(i, (item, score, detail))| RankedItem {
            rank: i + 1,
            item,
            score,
            detail: serde_json::from_str(&detail).unwrap_or_default(),
        })
        .collect();
    Ok(axum::Json(RankingAnswer {
        by,
        country,
        channel,
        currency: meta.get("currency").cloned(),
        as_of: meta.get("as_of").cloned(),
        generated_at: meta.get("generated_at").cloned(),
        items,
    }))
}
