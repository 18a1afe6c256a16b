//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{Answer, App};
use crate::backend::Stores;
use crate::ingress::answers::Status;
use crate::ingress::problem::Problem;
use crate::telemetry;

/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> axum::Json<Status> {
    axum::Json(Status::new("ok"))
}

/// `GET /readyz`: the store answers.
pub(super) async fn readyz<S: Stores>(State(app): State<App<S>>) -> Answer<Status> {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => Ok(axum::Json(Status::new("ready"))),
        Ok(Err(e)) => Err(Problem::unavailable(format!("store: {e}"))),
        Err(_) => Err(Problem::unavailable("store: ping timed out")),
    }
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics() -> Response {
    let body = telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
