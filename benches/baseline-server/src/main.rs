//! Bare receiver: `POST /webhooks/{instance}` checks X-Shopify-Hmac-Sha256 (constant time) and
//! parses the body as JSON; 200 when both succeed. `GET /healthz` answers ok.
//! Usage: baseline-server --listen 127.0.0.1:9090   (secret in BENCH_SECRET)

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9090".to_string();
    while let Some(a) = args.next() {
        if a == "--listen" {
            listen = args.next().expect("--listen ADDR");
        }
    }
    let secret: Arc<str> = std::env::var("BENCH_SECRET").unwrap_or_else(|_| "bench-secret".into()).into();
    let app = axum::Router::new()
        .route(
            "/webhooks/{instance}",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let secret = secret.clone();
                async move {
                    let given = headers
                        .get("x-shopify-hmac-sha256")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
                    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                    mac.update(&body);
                    let expected = mac.finalize().into_bytes();
                    let ok = given.is_some_and(|g| g.len() == 32 && bool::from(g.as_slice().ct_eq(&expected[..])));
                    if !ok {
                        return StatusCode::UNAUTHORIZED;
                    }
                    match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(_) => StatusCode::OK,
                        Err(_) => StatusCode::BAD_REQUEST,
                    }
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
}
