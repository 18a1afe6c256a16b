//! Deliveries in: signed webhooks, and submissions by an API-token holder (canonical orders and
//! listings, import files). Both answer with a [`DeliveryAnswer`].

use std::time::Instant;

use aide::axum::ApiRouter;
use aide::axum::routing::post_with;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::openapi::DocOperation;
use super::{App, Body, instance};
use crate::adapter::{Headers, NormalizeError};
use crate::backend::Stores;
use crate::config::Config;
use crate::ingress::answers::{DeadLetterAnswer, DeliveryAnswer, DeliveryStatus};
use crate::ingress::problem::Problem;
use crate::model::validate_instance_id;
use crate::pipeline::{self, IngestError, IngestReport, Ingested, Submission};
use crate::store::IngestOutcome;
use crate::telemetry::names;

/// `/webhooks/{instance}`: what channels push.
pub(super) fn webhook_routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new().api_route(
        "/webhooks/{instance}",
        post_with(webhook::<S>, |op| {
            op.about("deliveries", "A channel's signed delivery")
                .raw_body(CHANNEL_MEDIA_TYPES)
                .answers::<DeliveryAnswer>(200, "Stored, a duplicate, ignored, or a ping")
                .or_text(200, &["text/plain", "application/xml", "text/xml"])
                .answers::<DeliveryAnswer>(202, "Stored, and dead-lettered in whole or part")
                .problem(401, "The signature does not verify")
                .problem(404, "No such channel instance")
        })
        .get_with(subscription_check::<S>, |op| {
            op.about(
                "deliveries",
                "A sender's subscription check (Meta's hub.challenge, WeChat's echostr)",
            )
            .text_answer(200, &["text/plain"], "The challenge, echoed")
            .problem(403, "The check does not prove the instance's secret")
            .problem(404, "No such instance, or its channel makes no such check")
        }),
    )
}

/// What channels send: JSON, XML, forms and CSV files.
const CHANNEL_MEDIA_TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "text/xml",
    "application/x-www-form-urlencoded",
    "text/csv",
];

pub(super) fn submission_routes<S: Stores>() -> ApiRouter<App<S>> {
    ApiRouter::new()
        .api_route(
            "/v1/instances/{instance}/orders",
            post_with(submit_order::<S>, |op| {
                op.about(
                    "deliveries",
                    "One canonical order (a phone or app instance)",
                )
                .json_body::<crate::model::AppOrder>()
                .submission()
            }),
        )
        .api_route(
            "/v1/instances/{instance}/listings",
            post_with(submit_listing::<S>, |op| {
                op.about("deliveries", "One canonical listing")
                    .json_body::<crate::model::Listing>()
                    .submission()
            }),
        )
        .api_route(
            "/v1/instances/{instance}/imports",
            post_with(submit_import::<S>, |op| {
                op.about("deliveries", "A file in the instance adapter's format")
                    .raw_body(CHANNEL_MEDIA_TYPES)
                    .submission()
            }),
        )
}

/// What every submission answers.
trait SubmissionDoc {
    fn submission(self) -> Self;
}

impl SubmissionDoc for aide::transform::TransformOperation<'_> {
    fn submission(self) -> Self {
        self.header(
            "Idempotency-Key",
            "A retry with the same key is a duplicate",
        )
        .answers::<DeliveryAnswer>(200, "Stored, or a duplicate")
        .answers::<DeliveryAnswer>(202, "Stored, and dead-lettered in whole or part")
        .problem(404, "No such channel instance")
        .problem(422, "The records do not validate")
    }
}

/// A delivery's answer with its HTTP status (202 when something was dead-lettered).
type Delivered = (StatusCode, axum::Json<DeliveryAnswer>);

fn delivered(code: StatusCode, answer: DeliveryAnswer) -> Delivered {
    (code, axum::Json(answer))
}

/// `POST /webhooks/{instance}`: a channel's signed delivery. Counted by outcome; a sender that
/// needs a particular acknowledgement body gets it, and only once stored.
async fn webhook<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Response {
    let started = Instant::now();
    // One configuration generation for the whole delivery, even across a reload.
    let config = app.config();
    let known = validate_instance_id(&instance).is_ok() && config.instances.contains_key(&instance);
    // Metric labels only ever carry configured instance ids.
    let label = if known {
        instance.clone()
    } else {
        "(unknown)".to_string()
    };
    let (outcome, answer) = match (known, body) {
        (false, _) => (
            "unknown_instance",
            Err(Problem::not_found("channel instance")),
        ),
        (true, Err(p)) => {
            let outcome = if p.status == StatusCode::PAYLOAD_TOO_LARGE {
                tracing::info!(instance, "delivery over the body limit");
                "too_large"
            } else {
                "bad_request"
            };
            (outcome, Err(p))
        }
        (true, Ok(Body(body))) => {
            let h = to_headers(&headers, query.as_deref());
            receive(&app, &config, &instance, &h, body.into()).await
        }
    };
    metrics::counter!(names::DELIVERIES, "instance" => label.clone(), "outcome" => outcome)
        .increment(1);
    if known {
        crate::telemetry::history::record_delivery(&instance, outcome, Utc::now());
    }
    if outcome == "ignored" {
        // An authentic notification the adapter does not map: the channel has news; poll now.
        app.wake_poller(&instance);
    }
    metrics::histogram!(names::INGEST_DURATION, "instance" => label)
        .record(started.elapsed().as_secs_f64());
    let ack = config
        .instances
        .get(&instance)
        .and_then(|i| i.adapter.spec().webhook.as_ref())
        .and_then(|w| w.ack.as_ref());
    match (ack, answer) {
        (Some(ack), Ok((code, _))) if code.is_success() => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, ack.content_type.clone())],
            ack.body.clone(),
        )
            .into_response(),
        (_, answer) => answer.into_response(),
    }
}

/// `GET /webhooks/{instance}`: a sender's subscription check before it delivers (Meta's
/// `hub.challenge`, WeChat's `echostr`). 200 with the challenge as plain text when the request
/// proves the instance's secret; 403 when not; 404 for a channel that makes no such check.
async fn subscription_check<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    super::Q(query): super::Q<std::collections::BTreeMap<String, String>>,
) -> Response {
    let config = app.config();
    let Some(inst) = config
        .instances
        .get(&instance)
        .filter(|i| i.adapter.subscription_secret().is_some())
    else {
        return Problem::not_found("subscription check for this instance").into_response();
    };
    let secrets = inst.secret(inst.adapter.subscription_secret().unwrap_or_default());
    match inst.adapter.subscription_challenge(&query, &secrets) {
        Some(challenge) => {
            tracing::info!(instance, "webhook subscription check answered");
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                challenge.to_string(),
            )
                .into_response()
        }
        None => {
            tracing::warn!(instance, "webhook subscription check refused");
            Problem::new(
                StatusCode::FORBIDDEN,
                "subscription-check-failed",
                "The subscription check failed",
            )
            .detail("the check must prove the instance's secret and carry a plain-text challenge")
            .into_response()
        }
    }
}

/// Ingests one webhook delivery: the metric outcome and the answer.
async fn receive<S: Stores>(
    app: &App<S>,
    config: &Config,
    instance: &str,
    h: &Headers,
    body: Vec<u8>,
) -> (&'static str, Result<Delivered, Problem>) {
    match pipeline::ingest(&app.store, config, instance, h, body, Utc::now()).await {
        Ok(Ingested::Ping) => {
            tracing::info!(
                instance,
                "unsigned activation ping answered; nothing stored"
            );
            let answer = DeliveryAnswer::status(DeliveryStatus::Ping, None);
            ("ping", Ok(delivered(StatusCode::OK, answer)))
        }
        Ok(Ingested::Delivery(report)) => {
            let (outcome, code, answer) = webhook_answer(instance, report);
            (outcome, Ok(delivered(code, answer)))
        }
        Err(e) => refused(instance, e),
    }
}

fn refused(instance: &str, e: IngestError) -> (&'static str, Result<Delivered, Problem>) {
    match e {
        IngestError::Unauthorized(reason) => {
            tracing::info!(
                instance,
                reason = reason.kind(),
                "delivery refused: not authentic"
            );
            let p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "signature",
                "Signature verification failed",
            );
            ("unauthorized", Err(p))
        }
        IngestError::UnknownInstance(_) => (
            "unknown_instance",
            Err(Problem::not_found("channel instance")),
        ),
        IngestError::NoWebhook(_) => (
            "no_webhook",
            Err(Problem::new(
                StatusCode::NOT_FOUND,
                "no-webhook",
                "This instance takes no webhooks",
            )),
        ),
        IngestError::Store(e) => {
            tracing::error!(instance, error = %e, "store write failed; answering 503");
            ("unavailable", Err(super::store_problem(&e)))
        }
    }
}

/// The answer to a stored webhook delivery, its metric outcome and status code.
fn webhook_answer(
    instance: &str,
    report: IngestReport,
) -> (&'static str, StatusCode, DeliveryAnswer) {
    let (delivery_id, records, dead_letters, ignored) = match report.outcome {
        IngestOutcome::Duplicate {
            original_delivery_id,
        } => {
            tracing::debug!(instance, delivery_id = %original_delivery_id, "duplicate delivery");
            let id = Some(original_delivery_id);
            let answer = DeliveryAnswer::status(DeliveryStatus::Duplicate, id);
            return ("duplicate", StatusCode::OK, answer);
        }
        IngestOutcome::Stored {
            delivery_id,
            records,
            dead_letters,
            ignored,
        } => (delivery_id, records, dead_letters, ignored),
    };
    let mut answer = DeliveryAnswer::status(DeliveryStatus::Stored, Some(delivery_id.clone()));
    if report.fetch_pending {
        tracing::debug!(instance, %delivery_id, "thin webhook stored; its record will be fetched");
        answer.fetch = Some("pending".into());
        return ("fetch_pending", StatusCode::OK, answer);
    }
    if !dead_letters.is_empty() {
        metrics::counter!(names::DEAD_LETTERS, "instance" => instance.to_string())
            .increment(dead_letters.len() as u64);
        let mut items = dead_letter_answers(&report.errors, &dead_letters);
        for (item, e) in &report.errors {
            let fields = e.field_paths().join(",");
            tracing::warn!(instance, %delivery_id, item, kind = e.kind(), fields = %fields, "delivery dead-lettered");
        }
        if matches!(report.errors.as_slice(), [(None, _)]) {
            answer.status = DeliveryStatus::DeadLettered;
            answer.dead_letter = items.pop();
        } else {
            answer.status = DeliveryStatus::PartiallyDeadLettered;
            answer.records = Some(records);
            answer.dead_letters = Some(items);
        }
        return ("dead_lettered", StatusCode::ACCEPTED, answer);
    }
    if ignored {
        tracing::debug!(instance, %delivery_id, "delivery of an unmapped topic stored and ignored");
        answer.status = DeliveryStatus::Ignored;
        return ("ignored", StatusCode::OK, answer);
    }
    for r in &records {
        metrics::counter!(names::RECORDS, "kind" => r.kind.as_str(), "change" => r.change.as_str())
            .increment(1);
    }
    tracing::debug!(instance, %delivery_id, records = records.len(), "delivery stored");
    answer.records = Some(records);
    ("stored", StatusCode::OK, answer)
}

/// One answer per dead letter a delivery's problems created, in order.
fn dead_letter_answers(
    errors: &[(Option<usize>, NormalizeError)],
    dead_letters: &[String],
) -> Vec<DeadLetterAnswer> {
    errors
        .iter()
        .zip(dead_letters)
        .map(|((item, e), id)| DeadLetterAnswer::new(id, *item, e))
        .collect()
}

/// The request's headers as an adapter reads them, with the URL's query parameters as
/// `?<name>` entries (WeChat signs in the query).
fn to_headers(map: &HeaderMap, query: Option<&str>) -> Headers {
    let mut h = Headers::default();
    for (k, v) in map {
        if let Ok(text) = v.to_str() {
            h.push(k.as_str(), text);
        }
    }
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        h.push(&format!("?{k}"), &v);
    }
    h
}

/// `POST /v1/instances/{instance}/orders`: one canonical order JSON (a call-centre tool).
async fn submit_order<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Result<Delivered, Problem> {
    submit(app, &instance, &headers, body, Submission::CanonicalOrder).await
}

/// `POST /v1/instances/{instance}/listings`: one canonical listing JSON (a catalogue import).
async fn submit_listing<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Result<Delivered, Problem> {
    submit(app, &instance, &headers, body, Submission::CanonicalListing).await
}

/// `POST /v1/instances/{instance}/imports`: a file in the instance adapter's format (a CSV of
/// phone orders); what `crossgate import` sends to a running daemon.
async fn submit_import<S: Stores>(
    State(app): State<App<S>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Result<Delivered, Problem> {
    submit(app, &instance, &headers, body, Submission::AdapterFormat).await
}

/// A submission by an API-token holder: orders for phone and app instances only (a channel's
/// orders come from the channel, signed or fetched); canonical listings for any instance (a
/// catalogue import, e.g. the Amazon offers the gateway sends stock and prices to).
/// `Idempotency-Key` makes a retry a duplicate.
async fn submit<S: Stores>(
    app: App<S>,
    instance_id: &str,
    headers: &HeaderMap,
    body: Result<Body, Problem>,
    how: Submission,
) -> Result<Delivered, Problem> {
    let inst = instance(&app, instance_id)?;
    let own_records = matches!(
        inst.adapter.spec().channel_kind,
        crate::model::ChannelKind::Phone | crate::model::ChannelKind::MobileApp
    );
    if !own_records && how != Submission::CanonicalListing {
        return Err(Problem::bad_request(
            "only phone and app instances accept submitted orders; channels push webhooks or \
             are polled (canonical listings are accepted for any instance)",
        ));
    }
    let Body(body) = body?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200);
    let report = match pipeline::submit(&app.store, &inst, how, key, body.into(), Utc::now()).await
    {
        Ok(report) => report,
        Err(pipeline::SubmitError::Invalid(e)) => return Err(invalid_submission(&e)),
        Err(pipeline::SubmitError::Store(e)) => {
            // Counted where the write failed (pipeline::store_delivery).
            tracing::error!(error = %e, "store operation failed");
            return Err(super::store_problem(&e));
        }
    };
    count_submission(&inst.id, &report.outcome);
    Ok(submission_answer(report))
}

/// The records an import or submission stored or parked (a duplicate counts once).
fn count_submission(instance: &str, outcome: &IngestOutcome) {
    let counts = match outcome {
        IngestOutcome::Duplicate { .. } => vec![("duplicate", 1)],
        IngestOutcome::Stored {
            records,
            dead_letters,
            ..
        } => vec![
            ("stored", records.len() as u64),
            ("dead_lettered", dead_letters.len() as u64),
        ],
    };
    for (outcome, n) in counts {
        metrics::counter!(names::IMPORTS, "instance" => instance.to_string(), "outcome" => outcome)
            .increment(n);
    }
}

fn submission_answer(report: IngestReport) -> Delivered {
    let (delivery_id, records, dead_letters) = match report.outcome {
        IngestOutcome::Duplicate {
            original_delivery_id,
        } => {
            let answer =
                DeliveryAnswer::status(DeliveryStatus::Duplicate, Some(original_delivery_id));
            return delivered(StatusCode::OK, answer);
        }
        IngestOutcome::Stored {
            delivery_id,
            records,
            dead_letters,
            ..
        } => (delivery_id, records, dead_letters),
    };
    let failures = dead_letter_answers(&report.errors, &dead_letters);
    let (status, code) = match (records.is_empty(), failures.is_empty()) {
        (_, true) => (DeliveryStatus::Stored, StatusCode::OK),
        (true, false) => (DeliveryStatus::DeadLettered, StatusCode::ACCEPTED),
        (false, false) => (DeliveryStatus::PartiallyDeadLettered, StatusCode::ACCEPTED),
    };
    let mut answer = DeliveryAnswer::status(status, Some(delivery_id));
    answer.records = Some(records);
    answer.dead_letters = Some(failures);
    delivered(code, answer)
}

/// A canonical submission that does not map: every problem, by field (`$` for the whole
/// body); nothing was stored.
fn invalid_submission(e: &NormalizeError) -> Problem {
    let errors = if e.fields().is_empty() {
        json!([{"field": "$", "problem": e.to_string()}])
    } else {
        json!(e.fields())
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-submission",
        "The submission is not valid; nothing was stored",
    )
    .detail(e.to_string())
    .with("reason", e.kind().into())
    .with("errors", errors)
}
