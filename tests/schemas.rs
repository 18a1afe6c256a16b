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

/// `schemas/openapi.json` is the document the daemon serves at `GET /openapi.json`.
#[test]
fn committed_openapi_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
    let doc = crossgate::ingress::http::openapi_document();
    let mut want = serde_json::to_string_pretty(&doc).unwrap();
    want.push('\n');
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "schemas/openapi.json is stale: run `UPDATE_GOLDEN=1 cargo test --test schemas` and commit"
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

fn adapter_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/adapter.schema.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_adapter_file_matches_the_adapter_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters");
    let problems = crossgate::schemas::check_adapter_files(&adapter_schema(), &dir).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_broken_adapter_file_is_reported_with_the_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        r#"name = "broken"
channel_kind = "web_shop"
format = "jsonn"
[api]
rate_limit = { per_second = "fast", burst = 2 }
"#,
    )
    .unwrap();
    let problems = crossgate::schemas::check_adapter_files(&adapter_schema(), dir.path()).unwrap();
    let text = problems.join("\n");
    assert!(text.contains("/format"), "{text}");
    assert!(text.contains("/api/rate_limit/per_second"), "{text}");
}

#[test]
fn check_config_reports_adapter_schema_problems() {
    let dir = tempfile::tempdir().unwrap();
    let adapters = dir.path().join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    std::fs::write(
        adapters.join("shop.toml"),
        "name = \"shop\"\nchannel_kind = \"web_shop\"\nformat = \"json\"\n[listing]\nexternal_id = \"id\"\nupdated_at = \"u\"\ntitle = \"t\"\nstatus = \"s\"\nprice = { amount = \"p\", minor_units = \"yes\" }\n",
    )
    .unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        "adapters_dir = \"adapters\"\n[store]\nbackend = \"embedded\"\npath = \"x.redb\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("shop.toml: /listing/price"), "{stderr}");
}
