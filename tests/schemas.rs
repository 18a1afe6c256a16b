//! The committed JSON Schemas match the Rust types. `UPDATE_GOLDEN=1 cargo test --test schemas`
//! rewrites them.

use std::path::Path;

#[test]
fn committed_schemas_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, schema) in crossgate::schemas::all() {
        let path = dir.join(name);
        let want = crossgate::schemas::render(&schema);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            _ => stale.push(name),
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas {stale:?}: run `UPDATE_GOLDEN=1 cargo test --test schemas` and commit"
    );
}

#[test]
fn app_schema_leaves_out_gateway_fields() {
    let (_, schema) = crossgate::schemas::all()
        .into_iter()
        .find(|(n, _)| *n == "app-order.schema.json")
        .unwrap();
    let props = schema.get("properties").unwrap().as_object().unwrap();
    assert!(props.contains_key("external_id"));
    assert!(!props.contains_key("id") && !props.contains_key("instance"));
}
