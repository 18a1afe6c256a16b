//! JSON Schemas generated from the Rust types, committed under `schemas/`.
//! `tests/schemas.rs` fails when a committed file is stale; `UPDATE_GOLDEN=1` rewrites them.

use schemars::{Schema, schema_for};

use crate::adapter::spec::AdapterSpec;
use crate::config::raw::RawConfig;
use crate::model::{GATEWAY_ORDER_FIELDS, Listing, Order};

/// The app's order payload: the canonical order without the fields the gateway sets.
fn app_order_schema() -> Schema {
    let mut schema = schema_for!(Order);
    let obj = schema.as_object_mut().expect("object schema");
    obj.insert(
        "title".into(),
        "Order (as posted by the merchant app)".into(),
    );
    if let Some(props) = obj.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for f in GATEWAY_ORDER_FIELDS {
            props.remove(*f);
        }
    }
    if let Some(req) = obj.get_mut("required").and_then(|r| r.as_array_mut()) {
        req.retain(|v| !GATEWAY_ORDER_FIELDS.contains(&v.as_str().unwrap_or_default()));
    }
    schema
}

/// Every schema file: (file name, schema).
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("order.schema.json", schema_for!(Order)),
        ("app-order.schema.json", app_order_schema()),
        ("listing.schema.json", schema_for!(Listing)),
        ("config.schema.json", schema_for!(RawConfig)),
        ("adapter.schema.json", schema_for!(AdapterSpec)),
    ]
}

/// The text a schema file must contain.
pub fn render(schema: &Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("schemas serialize");
    s.push('\n');
    s
}
