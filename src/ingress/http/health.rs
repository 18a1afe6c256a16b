//! Liveness, readiness and metrics.

use std::time::Duration;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::openapi::DocOperation;
use super::{Answer, App};
use crate::backend::Stores;
use crate::ingress::answers::Status;
use crate::ingress::problem::Problem;
use crate::telemetry;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/healthz",
            get_with(healthz, |op| op.about("operations", "The process answers")),
        )
        .api_route(
            "/readyz",
            get_with(readyz::<S>, |op| {
                op.about("operations", "The store takes a durable write, within 2 s")
            }),
        )
        .api_route(
            "/metrics",
            get_with(metrics, |op| {
                op.about("operations", "Prometheus metrics").text_answer(
                    200,
                    &["text/plain"],
                    "The Prometheus text format (0.0.4)",
                )
            }),
        )
}

/// `GET /healthz`: the process answers.
async fn healthz() -> axum::Json<Status> {
    axum::Json(Status::new("ok"))
}

/// `GET /readyz`: the store takes a durable write (a probe), within 2 s.
async fn readyz<S: Stores>(State(app): State<App<S>>) -> Answer<Status> {
    let probe = app.store.ready(chrono::Utc::now());
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(())) => Ok(axum::Json(Status::new("ready"))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store refused the probe write");
            Err(Problem::unavailable("store: a write did not succeed"))
        }
        Err(_) => Err(Problem::unavailable("store: the probe write timed out")),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics() -> Response {
    let body = telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
