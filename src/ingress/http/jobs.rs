//! The recommendation and ranking jobs on demand: what `crossgate jobs run|status` asks of a
//! running daemon (which holds the embedded store).

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::extract::State;

use super::openapi::DocOperation;
use super::{Answer, App, Body};
use crate::backend::Stores;
use crate::ingress::problem::Problem;
use crate::reco::job::{Quiet, RunReport};
use crate::reco::runs::{self, JobsRun, JobsStatus, RunError};

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/jobs",
            get_with(status::<S>, |op| {
                op.about(
                    "jobs",
                    "When the current results were computed, and from what",
                )
            }),
        )
        .api_route(
            "/v1/jobs/run",
            post_with(run::<S>, |op| {
                op.about("jobs", "Runs the recommendation and ranking jobs now")
                    .json_body::<JobsRun>()
                    .problem(409, "The store has no data to run on, or a run failed")
            }),
        )
}

/// `GET /v1/jobs`: when the current results were computed, and from what.
async fn status<S: Stores>(State(app): State<App<S>>) -> Answer<JobsStatus> {
    runs::status(&app.store)
        .await
        .map(axum::Json)
        .map_err(job_problem)
}

/// `POST /v1/jobs/run` with a JSON body (`{"recommend": true, "rank": false, "strategies":
/// [...], "rebuild": false, "batch": 2000}`, every field optional): runs the jobs now and
/// answers their report. One run at a time: a request waits for a run in progress.
async fn run<S: Stores>(
    State(app): State<App<S>>,
    body: Result<Body, Problem>,
) -> Answer<RunReport> {
    let Body(body) = body?;
    let request: JobsRun = if body.iter().all(u8::is_ascii_whitespace) {
        JobsRun::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the run request: {e}")))?
    };
    let config = app.config();
    let report = runs::run_requested(&app.store, &config.jobs, &config.fx, &request, &Quiet).await;
    match report {
        Ok(r) => {
            crate::telemetry::record_job_run(r.total_seconds);
            Ok(axum::Json(r))
        }
        Err(RunError::Job(e)) => Err(job_problem(e)),
        Err(e) => Err(Problem::bad_request(e.to_string())),
    }
}

fn job_problem(e: crate::reco::job::JobError) -> Problem {
    match e {
        crate::reco::job::JobError::Store(e) => e.into(),
        e => {
            tracing::error!(error = %e, "recommendation job failed");
            Problem::unavailable("the job failed; see the daemon's log")
        }
    }
}
