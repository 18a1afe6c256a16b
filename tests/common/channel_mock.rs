//! A mock channel API driven by a table of endpoints: each has a method, a path pattern
//! (`{x}` matches one segment), an optional JSON Schema for the body, and the answer the
//! channel documents. Every request must carry the channel's credential header. Requests that
//! break the contract are recorded as violations (and answered 400), so a test can assert
//! there were none.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What an endpoint answers to a valid request: status and JSON body (`Value::Null`: none).
pub type Answer = Box<dyn Fn(&Value) -> (u16, Value) + Send + Sync>;

pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub schema: Option<jsonschema::Validator>,
    pub answer: Answer,
}

/// One request the mock took.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path with the query.
    pub target: String,
    pub body: Value,
}

pub struct ChannelMock {
    endpoints: Vec<Endpoint>,
    /// The header (lower case) and value every request must carry.
    credential: (String, String),
    pub calls: Mutex<Vec<Call>>,
    pub violations: Mutex<Vec<String>>,
}

impl ChannelMock {
    pub fn new(credential: (&str, &str), endpoints: Vec<Endpoint>) -> Arc<Self> {
        Arc::new(Self {
            endpoints,
            credential: (credential.0.to_ascii_lowercase(), credential.1.to_string()),
            calls: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        })
    }

    /// The calls whose method and path start match, in order.
    pub fn calls_to(&self, method: &str, path_start: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method && c.target.starts_with(path_start))
            .cloned()
            .collect()
    }

    fn violation(&self, what: String) -> Response {
        self.violations.lock().unwrap().push(what.clone());
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "mock": what })),
        )
            .into_response()
    }
}

/// A JSON Schema validator of a file under `tests/fixtures/`.
pub fn schema_file(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(super::repo().join("tests/fixtures").join(path)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// A validator of one definition of an OpenAPI 2.0 (Swagger) model: the definition, with the
/// model's `definitions` for its references.
pub fn swagger_definition(model: &Value, name: &str) -> jsonschema::Validator {
    let schema = serde_json::json!({
        "$ref": format!("#/definitions/{name}"),
        "definitions": model["definitions"].clone(),
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .unwrap()
}

fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let a: Vec<&str> = path.split('/').collect();
    p.len() == a.len()
        && p.iter()
            .zip(&a)
            .all(|(p, a)| (p.starts_with('{') && p.ends_with('}') && !a.is_empty()) || p == a)
}

async fn handle(State(mock): State<Arc<ChannelMock>>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let credential = req
        .headers()
        .get(mock.credential.0.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if credential.as_deref() != Some(mock.credential.1.as_str()) {
        return mock.violation(format!("{method} {path}: credential"));
    }
    let Some(ep) = mock
        .endpoints
        .iter()
        .find(|e| e.method == method && matches(e.path, &path))
    else {
        return mock.violation(format!("{method} {path}: no such endpoint"));
    };
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else if !json_type {
        return mock.violation(format!("{method} {path}: body is not application/json"));
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return mock.violation(format!("{method} {path}: body is not JSON")),
        }
    };
    if let Some(s) = &ep.schema {
        let errors: Vec<String> = s.iter_errors(&body).map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            return mock.violation(format!("{method} {path}: {errors:?}"));
        }
    }
    mock.calls.lock().unwrap().push(Call {
        method,
        target,
        body: body.clone(),
    });
    let (status, answer) = (ep.answer)(&body);
    let status = StatusCode::from_u16(status).unwrap();
    if answer.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(answer)).into_response()
    }
}

/// Serves the mock on loopback; its base URL.
pub async fn serve(mock: Arc<ChannelMock>) -> String {
    super::serve_mock(Router::new().fallback(handle).with_state(mock)).await
}
