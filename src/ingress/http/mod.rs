//! The HTTP surface: webhooks in, the `/v1` API, health and metrics.
//!
//! Every handler returns a typed answer: [`Answer<T>`] (a body from [`super::answers`], or a
//! [`Problem`]). Query strings and bodies are read by [`Q`] and [`Body`], so a bad query or an
//! oversized body is answered the same way on every route.

mod admin;
mod backfill;
mod cluster;
mod console;
mod deliveries;
mod fx;
mod health;
mod jobs;
mod openapi;
mod outbound;
mod reco;
mod records;
mod tax;

use std::sync::Arc;

use aide::axum::ApiRouter;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::problem::Problem;
use crate::backend::Stores;
use crate::config::{Config, LiveConfig};
use crate::store::StoreError;
use crate::telemetry;

/// A route's answer: its typed body, or a problem.
pub type Answer<T> = Result<axum::Json<T>, Problem>;

/// Shared state of the HTTP handlers.
pub struct App<S> {
    pub store: S,
    /// The configuration; a handler takes one generation with [`App::config`] and keeps it.
    pub live: Arc<LiveConfig>,
    in_flight: Arc<Semaphore>,
    backfills: backfill::Backfills,
    /// The pollers of this process, by instance, to wake early.
    wakers: PollWakers,
    /// How far the background jobs are behind (deliveries wait while it is too far).
    backlog: Arc<crate::replica::Backlog>,
}

/// A way to wake each polled instance's poller before its interval ends: an authentic push
/// the adapter does not map (Meta's order notifications) means the channel has news.
pub type PollWakers = Arc<std::collections::BTreeMap<String, Arc<tokio::sync::Notify>>>;

impl<S: Clone> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            live: self.live.clone(),
            in_flight: self.in_flight.clone(),
            backfills: self.backfills.clone(),
            wakers: self.wakers.clone(),
            backlog: self.backlog.clone(),
        }
    }
}

impl<S: Stores> App<S> {
    pub fn new(store: S, live: Arc<LiveConfig>) -> Self {
        // Install the recorder before the first delivery is counted.
        let _ = telemetry::metrics();
        let permits = live.get().server.max_in_flight;
        Self {
            store,
            live,
            in_flight: Arc::new(Semaphore::new(permits)),
            backfills: backfill::Backfills::default(),
            wakers: PollWakers::default(),
            backlog: Arc::default(),
        }
    }

    /// The backlog the daemon measures (see `replica::Backlog`).
    pub fn with_backlog(mut self, backlog: Arc<crate::replica::Backlog>) -> Self {
        self.backlog = backlog;
        self
    }

    /// The pollers an unmapped push wakes.
    pub fn with_wakers(mut self, wakers: PollWakers) -> Self {
        self.wakers = wakers;
        self
    }
}

impl<S> App<S> {
    /// The configuration generation in use now.
    pub fn config(&self) -> Arc<Config> {
        self.live.get()
    }

    /// Wakes an instance's poller, when this process polls it.
    fn wake_poller(&self, instance: &str) {
        if let Some(w) = self.wakers.get(instance) {
            w.notify_one();
        }
    }
}

/// Builds the router, and the OpenAPI document of its routes that it serves at
/// `GET /openapi.json`.
pub fn router<S: Stores>(app: App<S>) -> Router {
    let body_limit = app.config().server.body_limit;
    let token = middleware::from_fn_with_state(app.clone(), require_token::<S>);
    let (routes, api) = documented::<S>(|v1| v1.route_layer(token));
    let document: Bytes = serde_json::to_vec(&api)
        .expect("the OpenAPI document serializes")
        .into();
    routes
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document) }),
        )
        .merge(console::routes(app.clone()))
        .fallback(|| async { Problem::not_found("route") })
        .layer(middleware::from_fn_with_state(app.clone(), admission::<S>))
        .layer(middleware::from_fn(trace_request))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

/// The OpenAPI document of every route, as `GET /openapi.json` serves it (the routes do not
/// depend on the store, so any store type gives the same document).
pub fn openapi_document() -> aide::openapi::OpenApi {
    documented::<crate::backend::embedded::EmbeddedStore>(|v1| v1).1
}

/// Every documented route, `/v1` wrapped by `guard_v1` (the API token), with the document.
fn documented<S: Stores>(
    guard_v1: impl FnOnce(ApiRouter<App<S>>) -> ApiRouter<App<S>>,
) -> (Router<App<S>>, aide::openapi::OpenApi) {
    let v1 = ApiRouter::new()
        .merge(records::routes())
        .merge(outbound::routes())
        .merge(deliveries::submission_routes())
        .merge(reco::routes())
        .merge(fx::routes())
        .merge(tax::routes())
        .merge(jobs::routes())
        .merge(backfill::routes())
        .merge(cluster::routes())
        .merge(admin::routes());
    let routes = ApiRouter::new()
        .merge(deliveries::webhook_routes())
        .merge(guard_v1(v1))
        .merge(health::routes());
    let mut api = aide::openapi::OpenApi::default();
    let router = routes.finish_api(&mut api);
    openapi::finish(&mut api);
    (router, api)
}

/// Gives every request a trace id (the sender's W3C `traceparent` one, or a new one): its log
/// lines carry it, a delivery it stores keeps it, and the answer names it in `X-Trace-Id`, so
/// ops can go from a channel's complaint to the delivery and its logs.
async fn trace_request(req: Request, next: Next) -> Response {
    let start = telemetry::TraceStart::of(
        req.headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    let id = start.trace_id.clone();
    let mut resp = telemetry::with_trace("request", start, next.run(req)).await;
    if let Ok(v) = header::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    resp
}

/// Sheds load beyond `max_in_flight` and bounds each request's time; both answer 503 with
/// Retry-After so senders retry later. A request that timed out may still have been stored;
/// the retry is then recognised as a duplicate.
async fn admission<S: Stores>(State(app): State<App<S>>, req: Request, next: Next) -> Response {
    if let Some(refusal) =
        super::transport::refuse_from_head(req.headers(), app.config().server.body_limit)
    {
        tracing::info!(
            status = refusal.status.as_u16(),
            slug = refusal.slug,
            "request refused from its headers"
        );
        return refusal.into_response();
    }
    if let Some(refusal) = backpressure(&app, &req) {
        return refusal;
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
    match tokio::time::timeout(app.config().server.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Problem::unavailable("the request took too long").into_response(),
    }
}

/// Deliveries (webhooks and submissions) wait while the background jobs are more than
/// `[server] max_consumer_lag` events behind: 503 with Retry-After, so senders slow down
/// instead of the backlog growing without bound. Reads, the console and health answer as usual.
fn backpressure<S>(app: &App<S>, req: &Request) -> Option<Response> {
    if req.method() != axum::http::Method::POST || !is_delivery(req.uri().path()) {
        return None;
    }
    let limit = app.config().server.max_consumer_lag;
    let behind = app.backlog.over(limit)?;
    metrics::counter!(telemetry::names::BACKPRESSURE_REFUSALS).increment(1);
    Some(
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backlogged",
            "The gateway is catching up with its background work; retry",
        )
        .detail(format!(
            "the background jobs are {behind} events behind (limit {limit})"
        ))
        .retry_after(5)
        .into_response(),
    )
}

/// The routes that take deliveries in: webhooks, and the orders, listings and imports
/// submitted to `/v1/instances/{instance}/…`.
fn is_delivery(path: &str) -> bool {
    path.starts_with("/webhooks/")
        || (path.starts_with("/v1/instances/")
            && ["/orders", "/listings", "/imports"]
                .iter()
                .any(|s| path.ends_with(s)))
}

/// `/v1` needs `Authorization: Bearer <api_token>` when a token is configured; the read-only
/// token (`[server] read_token`) may `GET` (and `HEAD`) and nothing else.
async fn require_token<S: Stores>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    use crate::adapter::signature::is_one_of;
    let config = app.config();
    if let Some(token) = &config.server.api_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !is_one_of(&[token.expose()], given) {
            let reads = matches!(
                *req.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            let reader = config
                .server
                .read_token
                .as_ref()
                .is_some_and(|r| is_one_of(&[r.expose()], given));
            if reader && !reads {
                return Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .detail("the read-only token may only GET; this needs the API token")
                    .into_response();
            }
            if !reader {
                return Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "API token required",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// The problem a store error is answered with (nothing about the store's internals).
pub(super) fn store_problem(e: &StoreError) -> Problem {
    match e {
        StoreError::NotFound => Problem::not_found("record"),
        StoreError::Invalid(m) => Problem::bad_request(m.clone()),
        StoreError::Unavailable(_) | StoreError::Corrupt(_) | StoreError::LeaseLost(_) => {
            Problem::unavailable("the store did not confirm the operation")
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        if let Some(kind) = e.failure_kind() {
            telemetry::count_store_error(kind);
            tracing::error!(error = %e, "store operation failed");
        }
        store_problem(&e)
    }
}

/// A query string read into `T`; a bad one is a 400 naming the parameter.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Q(v)),
            Err(e) => Err(Problem::bad_request(format!(
                "query parameters: {}",
                e.body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
            ))),
        }
    }
}

/// A request body within the server's limit: 413 over it, 400 when it cannot be read.
pub struct Body(pub Bytes);

impl<S: Stores> FromRequest<App<S>> for Body {
    type Rejection = Problem;

    async fn from_request(req: Request, app: &App<S>) -> Result<Self, Problem> {
        match Bytes::from_request(req, app).await {
            Ok(b) => Ok(Body(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Problem::too_large(app.config().server.body_limit))
            }
            Err(_) => Err(Problem::bad_request("the request body could not be read")),
        }
    }
}

/// A JSON request body read into `T`; a problem names the field (never its value).
pub(super) fn request<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let problem = crate::adapter::sanitize_serde_message(&e.into_inner().to_string());
        Problem::bad_request(format!("{what}: {field}: {problem}"))
            .with("field", serde_json::Value::String(field))
    })
}

/// The instance `id` names, or 404.
fn instance<S>(app: &App<S>, id: &str) -> Result<Arc<crate::config::Instance>, Problem> {
    app.config()
        .instances
        .get(id)
        .cloned()
        .ok_or_else(|| Problem::not_found("channel instance"))
}
