//! A mock Shopify REST Admin API (2024-04) for the outbound tests. It checks each request the
//! way Shopify would (method, path, the access token header, the body against a JSON Schema
//! written from Shopify's reference in `tests/fixtures/shopify/outbound/`) and answers with
//! Shopify's documented shapes, including 429 with `Retry-After` and 422 errors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get as route_get, post as route_post, put as route_put};
use serde_json::{Value, json};

use super::{repo, serve_mock};

pub const TOKEN: &str = "shpat_test_token";
pub const LOCATION: u64 = 24826418;

/// One request the mock took, as Shopify would see it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
pub struct Shop {
    pub calls: Mutex<Vec<Call>>,
    /// Requests that broke Shopify's contract (wrong token, body not valid).
    pub violations: Mutex<Vec<String>>,
    /// Answer the next N requests 429 with `Retry-After: 1`.
    pub throttle: Mutex<u32>,
    /// Variants whose price update Shopify refuses (422).
    pub refuse_variant: Mutex<Option<u64>>,
    /// (inventory item, available) as set, in order.
    pub levels: Mutex<Vec<(u64, i64)>>,
    /// Fulfillment orders fulfilled (closed) so far.
    pub closed: Mutex<Vec<u64>>,
    /// Time each inventory request takes (to let commands pile up behind one).
    pub inventory_delay: Mutex<Duration>,
}

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join(format!(
        "tests/fixtures/shopify/outbound/{name}.schema.json"
    )))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

impl Shop {
    /// Checks the token and the body; a violation is recorded and answered as Shopify would.
    fn admit(
        &self,
        method: &'static str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        schema_name: Option<&str>,
    ) -> Result<Value, Box<Response>> {
        if headers
            .get("x-shopify-access-token")
            .and_then(|v| v.to_str().ok())
            != Some(TOKEN)
        {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{method} {path}: token"));
            return Err(Box::new((
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})),
            ).into_response()));
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("{method} {path}: not JSON"));
                    return Err(Box::new(
                        (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"errors": "bad json"})),
                        )
                            .into_response(),
                    ));
                }
            }
        };
        if let Some(name) = schema_name {
            if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
            {
                self.violations
                    .lock()
                    .unwrap()
                    .push(format!("{method} {path}: content type"));
            }
            let v = schema(name);
            let errors: Vec<String> = v.iter_errors(&body).map(|e| e.to_string()).collect();
            if !errors.is_empty() {
                self.violations
                    .lock()
                    .unwrap()
                    .push(format!("{method} {path}: {errors:?}"));
                return Err(Box::new(
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"errors": errors})),
                    )
                        .into_response(),
                ));
            }
        }
        self.calls.lock().unwrap().push(Call {
            method,
            path: path.to_string(),
            body: body.clone(),
            at: Instant::now(),
        });
        let mut throttle = self.throttle.lock().unwrap();
        if *throttle > 0 {
            *throttle -= 1;
            return Err(Box::new((
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", "1")],
                axum::Json(json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})),
            ).into_response()));
        }
        Ok(body)
    }
}

type S = State<Arc<Shop>>;

async fn inventory_set(State(shop): S, h: HeaderMap, body: axum::body::Bytes) -> Response {
    let path = "/admin/api/2024-04/inventory_levels/set.json";
    let b = match shop.admit("POST", path, &h, &body, Some("inventory_levels_set")) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let delay = *shop.inventory_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if b["location_id"] != LOCATION {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(
                json!({"errors": ["Inventory item does not have inventory tracking enabled"]}),
            ),
        )
            .into_response();
    }
    shop.levels.lock().unwrap().push((
        b["inventory_item_id"].as_u64().unwrap(),
        b["available"].as_i64().unwrap(),
    ));
    axum::Json(json!({"inventory_level": {
        "inventory_item_id": b["inventory_item_id"], "location_id": b["location_id"],
        "available": b["available"], "updated_at": "2024-04-02T09:41:39-04:00",
        "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{LOCATION}?inventory_item_id={}", b["inventory_item_id"]),
    }}))
    .into_response()
}

async fn variant_update(
    State(shop): S,
    AxPath(file): AxPath<String>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/admin/api/2024-04/variants/{file}");
    let b = match shop.admit("PUT", &path, &h, &body, Some("variant_update")) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let id: u64 = file.trim_end_matches(".json").parse().unwrap_or(0);
    if b["variant"]["id"] != id {
        shop.violations
            .lock()
            .unwrap()
            .push(format!("{path}: id differs from the path"));
    }
    if *shop.refuse_variant.lock().unwrap() == Some(id) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"errors": {"base": ["Price change not allowed for this variant"]}})),
        )
            .into_response();
    }
    axum::Json(json!({"variant": {"id": id, "product_id": 632910392, "price": b["variant"]["price"], "updated_at": "2024-04-02T09:41:39-04:00"}}))
        .into_response()
}

async fn product_update(
    State(shop): S,
    AxPath(file): AxPath<String>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/admin/api/2024-04/products/{file}");
    let b = match shop.admit("PUT", &path, &h, &body, Some("product_update")) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    axum::Json(json!({"product": {"id": b["product"]["id"], "status": b["product"]["status"], "title": "IPod Nano - 8GB"}}))
        .into_response()
}

async fn fulfillment_orders(State(shop): S, AxPath(order): AxPath<u64>, h: HeaderMap) -> Response {
    let path = format!("/admin/api/2024-04/orders/{order}/fulfillment_orders.json");
    if let Err(r) = shop.admit("GET", &path, &h, &[], None) {
        return *r;
    }
    let closed = shop.closed.lock().unwrap().contains(&1046000778);
    let status = if closed { "closed" } else { "open" };
    axum::Json(json!({"fulfillment_orders": [{
        "id": 1046000778, "shop_id": 548380009, "order_id": order, "assigned_location_id": LOCATION,
        "request_status": "unsubmitted", "status": status, "supported_actions": ["create_fulfillment"],
    }]}))
    .into_response()
}

async fn fulfillment_create(State(shop): S, h: HeaderMap, body: axum::body::Bytes) -> Response {
    let path = "/admin/api/2024-04/fulfillments.json";
    let b = match shop.admit("POST", path, &h, &body, Some("fulfillment_create")) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let f = &b["fulfillment"];
    let fo = f["line_items_by_fulfillment_order"][0]["fulfillment_order_id"]
        .as_u64()
        .unwrap_or(0);
    {
        let mut closed = shop.closed.lock().unwrap();
        if closed.contains(&fo) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"errors": ["Fulfillment order 1046000778 has an unfulfillable status= closed."]})),
            )
                .into_response();
        }
        closed.push(fo);
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({"fulfillment": {
            "id": 1069019862, "order_id": 450789469, "status": "success",
            "tracking_company": f["tracking_info"]["company"], "tracking_number": f["tracking_info"]["number"],
            "tracking_url": f["tracking_info"]["url"],
        }})),
    )
        .into_response()
}

pub async fn mock_shopify() -> (String, Arc<Shop>) {
    let shop = Arc::new(Shop::default());
    let app = Router::new()
        .route(
            "/admin/api/2024-04/inventory_levels/set.json",
            route_post(inventory_set),
        )
        .route(
            "/admin/api/2024-04/variants/{file}",
            route_put(variant_update),
        )
        .route(
            "/admin/api/2024-04/products/{file}",
            route_put(product_update),
        )
        .route(
            "/admin/api/2024-04/orders/{order}/fulfillment_orders.json",
            route_get(fulfillment_orders),
        )
        .route(
            "/admin/api/2024-04/fulfillments.json",
            route_post(fulfillment_create),
        )
        .with_state(shop.clone());
    (serve_mock(app).await, shop)
}

/// The calls whose path holds `path_part`, in order.
pub fn calls_to(shop: &Shop, path_part: &str) -> Vec<Call> {
    shop.calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.path.contains(path_part))
        .cloned()
        .collect()
}
