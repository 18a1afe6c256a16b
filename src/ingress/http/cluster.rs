//! `GET /v1/cluster`: the store's nodes and slots, the leases and the shared rate budgets, as
//! `crossgate cluster status` shows them.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{Answer, App};
use crate::backend::Stores;
use crate::replica::{self, ClusterStatus};

pub(super) fn routes<S: Stores>() -> Router<App<S>> {
    Router::new().route("/v1/cluster", get(status::<S>))
}

async fn status<S: Stores>(State(app): State<App<S>>) -> Answer<ClusterStatus> {
    Ok(axum::Json(
        replica::status(&app.store, &app.config()).await?,
    ))
}
