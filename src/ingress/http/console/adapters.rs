//! Adapters and rules: what is loaded (adapter file digests, rule packs, warnings), how the
//! last reload went, and a reload button; as `GET /v1/admin/config` and
//! `POST /v1/admin/reload` answer.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use maud::html;

use super::pages::{Done, problem_page, render};
use super::{Session, csrf_refusal, keys, view};
use crate::backend::Stores;
use crate::ingress::http::{App, admin};

/// `/console/adapters`.
pub(super) async fn loaded<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    Query(done): Query<Done>,
) -> Response {
    let status = match admin::status(State(app.clone())).await {
        Ok(Json(s)) => s,
        Err(p) => return problem_page(&app, &session, &p),
    };
    let csrf = keys(&app).csrf(&session);
    let body = html! {
        p { "Generation " (status.generation) ", loaded " (status.loaded_at.format("%Y-%m-%d %H:%M:%S UTC")) "." }
        form method="post" action="/console/adapters/reload" class="actions" {
            (view::csrf_field(&csrf))
            button type="submit" { "Reload adapters, rule packs and manual rates" }
        }
        @if let Some(f) = &status.last_failure {
            div role="alert" class="error" {
                p { "The reload at " (f.at.format("%Y-%m-%d %H:%M:%S UTC")) " was refused; the configuration above stays:" }
                ul { @for p in &f.problems { li { (p) } } }
            }
        }
        div class="table-wrap" {
            table {
                caption { "Adapters" }
                thead { tr { th scope="col" { "Adapter" } th scope="col" { "File digest (SHA-256)" } } }
                tbody { @for a in &status.adapters { tr { td { (a.name) } td { code { (a.digest) } } } } }
            }
        }
        h2 { "Tax rule packs" }
        ul { @for p in &status.rule_packs { li { (p) } } }
        @if !status.warnings.is_empty() {
            h2 { "Warnings" }
            ul { @for w in &status.warnings { li { (w) } } }
        }
    };
    render(&app, &session, "Adapters and rules", done.notice(), body)
}

/// Reloads, then shows the page with the outcome.
pub(super) async fn reload<S: Stores>(
    State(app): State<App<S>>,
    Extension(Session(session)): Extension<Session>,
    body: Bytes,
) -> Response {
    if let Some(refused) = csrf_refusal(&app, &session, &body) {
        return refused;
    }
    let done = match admin::reload(State(app)).await {
        Ok(_) => "reloaded",
        Err(_) => "reload_refused",
    };
    Redirect::to(&format!("/console/adapters?done={done}")).into_response()
}
