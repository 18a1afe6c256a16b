//! Traces out: the tracing spans of the gateway exported over OTLP/HTTP (JSON) when
//! `[telemetry] otlp_endpoint` is set. A request's (or poll page's) root span is parented on a
//! remote span context carrying the gateway's own trace id, so the exported trace has the id
//! the answer's `X-Trace-Id` names.

use std::sync::OnceLock;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The OpenTelemetry layer exporting to `endpoint` (`http://collector:4318`), or the reason it
/// could not be built.
pub fn layer<S>(
    endpoint: &str,
    service: &str,
) -> Result<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>, String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("crossgate");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends what is buffered (at shutdown, and in tests).
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

/// Parents `span` on a remote context in the trace `start` (on the sender's span when it has
/// one), so the exported trace has the gateway's trace id.
pub fn adopt_trace(span: &tracing::Span, start: &super::TraceStart) {
    let Ok(id) = TraceId::from_hex(&start.trace_id) else {
        return;
    };
    let parent_span = start
        .parent_span_id
        .as_deref()
        .and_then(|s| SpanId::from_hex(s).ok())
        .unwrap_or_else(|| SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes()));
    let parent = SpanContext::new(
        id,
        parent_span,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(parent);
    let _ = span.set_parent(cx);
}
