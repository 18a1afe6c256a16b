//! Backfills run by the daemon (`crossgate backfill` beside a daemon that holds the embedded
//! store): one run per instance at a time, in the background; its progress is read back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aide::axum::ApiRouter;
use aide::axum::routing::post_with;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::openapi::DocOperation;
use super::records::parse_since;
use super::{App, Body, instance};
use crate::backend::Stores;
use crate::channel::poll::{Mode, Poller};
use crate::ingress::answers::BackfillStatus;
use crate::ingress::problem::Problem;

/// The backfills this daemon runs or ran, by instance.
pub type Backfills = Arc<Mutex<HashMap<String, BackfillStatus>>>;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new().api_route(
        "/v1/instances/{instance}/backfill",
        post_with(start::<S>, |op| {
            op.about(
                "backfill",
                "Starts taking in the orders a channel updated in a period",
            )
            .json_body::<BackfillRequest>()
            .answers::<BackfillStatus>(202, "Started")
            .problem(404, "No such channel instance")
            .problem(409, "A backfill of this instance is running")
        })
        .get_with(status::<S>, |op| {
            op.about("backfill", "How far the instance's backfill has got")
                .problem(404, "No such channel instance, or no backfill yet")
        }),
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct BackfillRequest {
    /// RFC 3339 time or YYYY-MM-DD (midnight UTC).
    since: String,
    /// The end (default: now).
    until: Option<String>,
}

/// `POST /v1/instances/{instance}/backfill` with `{"since": ..., "until": ...}`: starts taking
/// in the instance's orders updated in that period (202); 409 while one runs.
async fn start<S: Stores>(
    State(app): State<App<S>>,
    Path(instance_id): Path<String>,
    body: Result<Body, Problem>,
) -> Result<(StatusCode, axum::Json<BackfillStatus>), Problem> {
    let inst = instance(&app, &instance_id)?;
    let Body(body) = body?;
    let req: BackfillRequest = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("the backfill request: {e}")))?;
    let time = |field: &str, s: &str| {
        parse_since(s).ok_or_else(|| {
            Problem::bad_request(format!("{field} must be an RFC 3339 time or YYYY-MM-DD"))
        })
    };
    let since = time("since", &req.since)?;
    let until = req.until.as_deref().map(|u| time("until", u)).transpose()?;
    let poller = Poller::for_instance(&inst, app.store.shared_budget())
        .map_err(|e| Problem::bad_request(format!("cannot backfill: {e}")))?;
    let status = BackfillStatus::started(&instance_id, since, until);
    {
        let mut runs = app.backfills.lock().expect("backfills lock");
        if runs.get(&instance_id).is_some_and(|s| s.running) {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "backfill-running",
                "A backfill of this instance is running",
            ));
        }
        runs.insert(instance_id.clone(), status.clone());
    }
    tracing::info!(instance = %instance_id, since = %since, "backfill started");
    tokio::spawn(run(
        app,
        instance_id,
        poller,
        Mode::Backfill { since, until },
    ));
    Ok((StatusCode::ACCEPTED, axum::Json(status)))
}

/// Runs the backfill to its end, recording progress after each page.
async fn run<S: Stores>(app: App<S>, instance: String, poller: Poller, mode: Mode) {
    let update = |f: &dyn Fn(&mut BackfillStatus)| {
        if let Some(s) = app
            .backfills
            .lock()
            .expect("backfills lock")
            .get_mut(&instance)
        {
            f(s);
        }
    };
    let result = poller
        .run(&app.store, &mode, |p| {
            update(&|s: &mut BackfillStatus| s.page(p))
        })
        .await;
    match &result {
        Ok(state) => {
            tracing::info!(instance = %instance, pages = state.pages, orders = state.orders, "backfill done")
        }
        Err(e) => tracing::warn!(instance = %instance, error = %e, "backfill stopped"),
    }
    update(&|s: &mut BackfillStatus| match &result {
        Ok(state) => s.finished(state),
        Err(e) => {
            s.running = false;
            s.error = Some(e.to_string());
        }
    });
}

/// `GET /v1/instances/{instance}/backfill`: the last backfill this daemon ran, or runs.
async fn status<S: Stores>(
    State(app): State<App<S>>,
    Path(instance_id): Path<String>,
) -> Result<axum::Json<BackfillStatus>, Problem> {
    instance(&app, &instance_id)?;
    let runs = app.backfills.lock().expect("backfills lock");
    runs.get(&instance_id)
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found("backfill of this instance since the daemon started"))
}
