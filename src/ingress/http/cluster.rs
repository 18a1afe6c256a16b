//! `GET /v1/cluster`: the store's nodes and slots, the leases and the shared rate budgets, as
//! `crossgate cluster status` shows them.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::State;

use super::openapi::DocOperation;
use super::{Answer, App};
use crate::backend::Stores;
use crate::replica::{self, ClusterStatus};

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new().api_route(
        "/v1/cluster",
        get_with(status::<S>, |op| {
            op.about(
                "operations",
                "The store's nodes and slots, the leases and the shared rate budgets",
            )
        }),
    )
}

async fn status<S: Stores>(State(app): State<App<S>>) -> Answer<ClusterStatus> {
    Ok(axum::Json(
        replica::status(&app.store, &app.config()).await?,
    ))
}
