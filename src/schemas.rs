//! JSON Schemas generated from the Rust types, committed under `schemas/`.
//! `tests/schemas.rs` fails when a committed file is stale; `UPDATE_GOLDEN=1` rewrites them.

use schemars::{Schema, schema_for};

use crate::adapter::spec::AdapterSpec;
use crate::config::raw::RawConfig;
use crate::model::{AppOrder, Listing, Order};

/// Every schema file: (file name, schema).
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("order.schema.json", schema_for!(Order)),
        ("app-order.schema.json", schema_for!(AppOrder)),
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

/// Checks adapter definition files (TOML) against the adapter JSON Schema (the committed
/// `schemas/adapter.schema.json`). Returns `<file>: <path in the file>: <problem>` lines; the
/// strict parse that follows reports anything the schema cannot express.
pub fn check_adapter_files(
    schema: &serde_json::Value,
    dir: &std::path::Path,
) -> Result<Vec<String>, String> {
    // TOML has no null: `Option<T>` fields ("anyOf": [T, null]) are checked as T, so a problem
    // inside them is reported at its own path rather than as "no anyOf branch matched".
    let mut schema = schema.clone();
    drop_null_branches(&mut schema);
    let validator =
        jsonschema::validator_for(&schema).map_err(|e| format!("the adapter schema: {e}"))?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let value: serde_json::Value = match toml::from_str::<toml::Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {}", file.display(), e.trim_end()));
                continue;
            }
        };
        for err in validator.iter_errors(&value) {
            let at = err.instance_path.to_string();
            let mut message = err.to_string();
            if message.len() > 200 {
                let cut = message.floor_char_boundary(200);
                message.truncate(cut);
                message.push('…');
            }
            problems.push(format!(
                "{}: {}: {}",
                file.display(),
                if at.is_empty() { "(top level)" } else { &at },
                message
            ));
        }
    }
    Ok(problems)
}

fn drop_null_branches(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let replacement = match map.get("anyOf").and_then(|a| a.as_array()) {
                Some(branches) if branches.len() == 2 => {
                    let is_null = |b: &serde_json::Value| b.get("type") == Some(&"null".into());
                    match (is_null(&branches[0]), is_null(&branches[1])) {
                        (true, false) => Some(branches[1].clone()),
                        (false, true) => Some(branches[0].clone()),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(serde_json::Value::Object(branch)) = replacement {
                map.remove("anyOf");
                for (k, val) in branch {
                    map.entry(k).or_insert(val);
                }
            }
            for val in map.values_mut() {
                drop_null_branches(val);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_branches),
        _ => {}
    }
}
