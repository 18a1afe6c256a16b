//! `POST /v1/admin/reload` and `GET /v1/admin/config`: reload adapter files, rule packs and the
//! manual rate table without a restart, and see what is loaded and how the last reload went.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use super::openapi::DocOperation;
use super::{Answer, App};
use crate::backend::Stores;
use crate::config::{ReloadError, ReloadOutcome, ReloadStatus};
use crate::ingress::problem::Problem;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/admin/reload",
            post_with(reload::<S>, |op| {
                op.about(
                    "operations",
                    "Reloads adapter files, rule packs and manual rates",
                )
                .problem(409, "The new files change what needs a restart")
                .problem(422, "The new files have problems (every one is listed)")
            }),
        )
        .api_route(
            "/v1/admin/config",
            get_with(status::<S>, |op| {
                op.about("operations", "What is loaded, and how the last reload went")
            }),
        )
}

/// Reloads this replica's configuration (each replica reads its own file: reload them all).
/// 200 with what changed; 422 with every problem when the new files are not valid, or 409
/// when they change what needs a restart. Either way the running configuration stays.
pub(super) async fn reload<S: Stores>(State(app): State<App<S>>) -> Answer<ReloadOutcome> {
    match app.live.reload_reported("api").await {
        Ok(o) => Ok(axum::Json(o)),
        Err(e) => {
            let (status, slug, title) = match e {
                ReloadError::Invalid(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "reload-invalid",
                    "The configuration was not reloaded: it has problems",
                ),
                ReloadError::NeedsRestart(_) => (
                    StatusCode::CONFLICT,
                    "reload-needs-restart",
                    "The configuration was not reloaded: it changes what needs a restart",
                ),
            };
            let problems = e.problems().into_iter().map(Value::String).collect();
            Err(Problem::new(status, slug, title)
                .detail("the running configuration stays in use")
                .with("problems", Value::Array(problems)))
        }
    }
}

/// The configuration generation in use: adapters with their file digests, rule packs,
/// warnings, and the last refused reload.
pub(super) async fn status<S: Stores>(State(app): State<App<S>>) -> Answer<ReloadStatus> {
    Ok(axum::Json(app.live.status()))
}
