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

/// `GET /readyz`: the store takes a durable write (a probe), within 2 s.
pub(super) async fn readyz<S: Stores>(State(app): State<App<S>>) -> Answer<Status> {
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
pub(super) async fn metrics() -> Response {
    let body = telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
