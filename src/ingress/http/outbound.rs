//! Commands to channels: listing updates (one, or many by SKU), shipment confirmations, and
//! the outbox's commands with their attempts. A 202 means the command is durably in the
//! outbox; the worker delivers it. `Idempotency-Key` makes a repeated call answer what the
//! first one did, without a second command.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, patch_with, post_with};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::openapi::DocOperation;
use super::{Answer, App, Body, Problem, Q, request};
use crate::backend::Stores;
use crate::config::Instance;
use crate::ingress::answers::{CommandsAccepted, Page};
use crate::model::{CommandField, Listing, ListingId, Money, Order, OrderId};
use crate::outbox::store::{Enqueued, Idempotency, OutboxQuery, RetryError};
use crate::outbox::{
    Action, Command, CommandState, ListingChange, SetStatus, ShipmentConfirmation, Target,
};
use crate::store::{Cursor, ListingQuery};

/// Updates in one bulk call.
const MAX_UPDATES: usize = 1000;

pub(super) fn routes<S: Stores>() -> ApiRouter<App<S>> {
    let accepted = "The commands, durably in the outbox";
    ApiRouter::new()
        .api_route(
            "/v1/listings/{id}",
            patch_with(update_listing::<S>, move |op| {
                op.about(
                    "outbound",
                    "Sends a listing's stock, price or status to its channel",
                )
                .json_body::<ListingUpdate>()
                .header("Idempotency-Key", IDEMPOTENCY_KEY)
                .answers::<CommandsAccepted>(202, accepted)
                .problem(404, "No such listing")
                .problem(422, NOT_SENDABLE)
            }),
        )
        .api_route(
            "/v1/listings/updates",
            post_with(update_listings::<S>, move |op| {
                op.about(
                    "outbound",
                    "Updates up to 1,000 listings by SKU, all or none",
                )
                .json_body::<BulkUpdate>()
                .header("Idempotency-Key", IDEMPOTENCY_KEY)
                .answers::<CommandsAccepted>(202, accepted)
                .problem(404, "No such channel instance")
                .problem(422, NOT_SENDABLE)
            }),
        )
        .api_route(
            "/v1/orders/{id}/shipments",
            post_with(confirm_shipment::<S>, move |op| {
                op.about("outbound", "Confirms a shipment to the order's channel")
                    .json_body::<ShipmentConfirmation>()
                    .header("Idempotency-Key", IDEMPOTENCY_KEY)
                    .answers::<CommandsAccepted>(202, accepted)
                    .problem(404, "No such order")
                    .problem(422, NOT_SENDABLE)
            }),
        )
        .api_route(
            "/v1/outbound",
            get_with(list_commands::<S>, |op| {
                op.about("outbound", "An instance's commands, newest first")
                    .problem(404, "No such channel instance")
            }),
        )
        .api_route(
            "/v1/outbound/{id}",
            get_with(get_command::<S>, |op| {
                op.about("outbound", "A command with its attempts")
                    .problem(404, "No such command")
            }),
        )
        .api_route(
            "/v1/outbound/{id}/retry",
            post_with(retry_command::<S>, |op| {
                op.about("outbound", "Sends a failed or dead command again now")
                    .problem(404, "No such command")
                    .problem(409, "The command cannot be retried")
            }),
        )
}

const IDEMPOTENCY_KEY: &str = "1 to 255 visible ASCII characters: a repeated call with the same \
     key and request answers the first call's commands and stores nothing";

const NOT_SENDABLE: &str = "The channel cannot take this command, the price is in another \
     currency, the key was used for another request, or a line does not match the order";

type Accepted = Result<(StatusCode, axum::Json<CommandsAccepted>), Problem>;

/// A listing update as the API takes it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListingUpdate {
    #[serde(default)]
    stock: Option<i64>,
    #[serde(default)]
    price: Option<Money>,
    #[serde(default)]
    status: Option<SetStatus>,
}

impl ListingUpdate {
    /// The change, or what is wrong with it (`at` is where the update is in the request).
    fn change(self, at: &str) -> Result<ListingChange, Problem> {
        if let Some(n) = self.stock
            && !(0..=1_000_000_000).contains(&n)
        {
            return Err(field_problem(
                &format!("{at}stock"),
                "must be 0 to 1000000000",
            ));
        }
        if self
            .price
            .as_ref()
            .is_some_and(|p| p.amount().is_sign_negative())
        {
            return Err(field_problem(
                &format!("{at}price.amount"),
                "must not be negative",
            ));
        }
        let change = ListingChange {
            stock: self.stock,
            price: self.price,
            status: self.status,
        };
        if change.fields().is_empty() {
            return Err(Problem::bad_request(format!(
                "{}give at least one of stock, price and status",
                if at.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", at.trim_end_matches('.'))
                }
            )));
        }
        Ok(change)
    }
}

/// A price goes to the channel in the listing's own currency (the gateway converts nothing
/// it sends).
fn check_currency(change: &ListingChange, listing: &Listing, field: &str) -> Result<(), Problem> {
    if let (Some(new), Some(old)) = (&change.price, &listing.price)
        && new.currency() != old.currency()
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong-currency",
            "The price is not in the listing's currency",
        )
        .detail(format!(
            "{field}: the listing is priced in {}",
            old.currency().code()
        ))
        .with("field", serde_json::Value::String(field.to_string())));
    }
    Ok(())
}

fn field_problem(field: &str, problem: &str) -> Problem {
    Problem::bad_request(format!("{field}: {problem}"))
        .with("field", serde_json::Value::String(field.to_string()))
}

/// The instance a command goes to, when its adapter can send every field the command sets.
fn sending_instance<S>(
    app: &App<S>,
    instance: &str,
    fields: &[CommandField],
) -> Result<std::sync::Arc<Instance>, Problem> {
    let inst = super::instance(app, instance)?;
    let spec = inst.adapter.spec();
    let Some(out) = &spec.outbound else {
        return Err(unsendable(format!(
            "the {} adapter of instance {instance} declares no [outbound] operations",
            spec.name
        )));
    };
    let missing: Vec<&str> = fields
        .iter()
        .filter(|f| !out.operations.iter().any(|o| o.sends.contains(f)))
        .map(|f| f.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(unsendable(format!(
            "the {} adapter cannot send {} to the channel",
            spec.name,
            missing.join(", ")
        )));
    }
    Ok(inst)
}

fn unsendable(detail: String) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not-sendable",
        "The channel cannot take this command",
    )
    .detail(detail)
}

fn listing_target(l: &Listing) -> Target {
    Target::Listing {
        listing_id: l.id.as_str().to_string(),
        external_id: l.external_id.clone(),
        product_id: l.product_id.clone(),
        sku: l.sku.clone(),
        stock_ref: l.stock_ref.clone(),
    }
}

/// The call's `Idempotency-Key`, with a fingerprint of the request it came with.
fn idempotency<S>(
    app: &App<S>,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
) -> Result<Option<Idempotency>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(body);
    Ok(Some(Idempotency {
        key: key.to_string(),
        fingerprint: hex::encode(h.finalize()),
        ttl: app.config().outbox.idempotency_ttl,
    }))
}

/// Stores the commands and answers 202 with them (or, for a repeated call, what it made).
async fn enqueue<S: Stores>(
    app: &App<S>,
    instance: &str,
    commands: Vec<Command>,
    idem: Option<Idempotency>,
) -> Accepted {
    let outcome = app.store.outbox_enqueue(instance, commands, idem).await?;
    let (commands, repeated) = match outcome {
        Enqueued::Stored(c) => (c, false),
        Enqueued::Repeat(ids) => {
            let mut c = Vec::with_capacity(ids.len());
            for id in ids {
                c.extend(app.store.outbox_get(&id).await?);
            }
            (c, true)
        }
        Enqueued::KeyReused => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "This Idempotency-Key was used for another request",
            ));
        }
    };
    if !repeated {
        tracing::info!(
            instance,
            commands = commands.len(),
            "outbound commands accepted"
        );
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CommandsAccepted { commands, repeated }),
    ))
}

/// `PATCH /v1/listings/{id}` with any of `stock`, `price`, `status`.
async fn update_listing<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Accepted {
    let Body(body) = body?;
    let id = ListingId::parse(&id).map_err(|_| Problem::not_found("listing"))?;
    let change = request::<ListingUpdate>(&body, "the listing update")?.change("")?;
    let listing = app
        .store
        .get_listing(&id)
        .await?
        .ok_or_else(|| Problem::not_found("listing"))?;
    check_currency(&change, &listing, "price.currency")?;
    sending_instance(&app, &listing.instance, &change.fields())?;
    let idem = idempotency(
        &app,
        &headers,
        &format!("PATCH /v1/listings/{}", id.as_str()),
        &body,
    )?;
    let cmd = Command::new(
        &listing.instance,
        listing_target(&listing),
        Action::Listing(change),
        chrono::Utc::now(),
    );
    enqueue(&app, &listing.instance.clone(), vec![cmd], idem).await
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BulkUpdate {
    instance: String,
    updates: Vec<SkuUpdate>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SkuUpdate {
    sku: String,
    #[serde(flatten)]
    update: ListingUpdateFields,
}

/// [`ListingUpdate`]'s fields, for the bulk form (`flatten` cannot deny unknown fields; the
/// bulk item lists them itself).
#[derive(Debug, Deserialize, JsonSchema)]
struct ListingUpdateFields {
    #[serde(default)]
    stock: Option<i64>,
    #[serde(default)]
    price: Option<Money>,
    #[serde(default)]
    status: Option<SetStatus>,
}

/// `POST /v1/listings/updates` with `{"instance": ..., "updates": [{"sku": ..., "stock": ...}]}`:
/// one command per listing of each SKU, all stored in one write (all or none).
async fn update_listings<S: Stores>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Accepted {
    let Body(body) = body?;
    let req: BulkUpdate = request(&body, "the updates")?;
    if req.updates.is_empty() || req.updates.len() > MAX_UPDATES {
        return Err(field_problem(
            "updates",
            &format!("give 1 to {MAX_UPDATES} updates"),
        ));
    }
    let mut fields = std::collections::BTreeSet::new();
    let mut changes = Vec::with_capacity(req.updates.len());
    for (i, u) in req.updates.into_iter().enumerate() {
        let f = u.update;
        let change = ListingUpdate {
            stock: f.stock,
            price: f.price,
            status: f.status,
        }
        .change(&format!("updates[{i}]."))?;
        fields.extend(change.fields());
        changes.push((i, u.sku, change));
    }
    let fields: Vec<CommandField> = fields.into_iter().collect();
    sending_instance(&app, &req.instance, &fields)?;
    let now = chrono::Utc::now();
    let mut commands = Vec::new();
    for (i, sku, change) in changes {
        let listings = listings_of_sku(&app, &req.instance, &sku).await?;
        if listings.is_empty() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-sku",
                "No listing of the instance has this SKU",
            )
            .detail(format!(
                "updates[{i}].sku: no listing of {} has it",
                req.instance
            ))
            .with(
                "field",
                serde_json::Value::String(format!("updates[{i}].sku")),
            ));
        }
        for l in listings {
            check_currency(&change, &l, &format!("updates[{i}].price.currency"))?;
            commands.push(Command::new(
                &req.instance,
                listing_target(&l),
                Action::Listing(change.clone()),
                now,
            ));
        }
    }
    let idem = idempotency(&app, &headers, "POST /v1/listings/updates", &body)?;
    enqueue(&app, &req.instance, commands, idem).await
}

async fn listings_of_sku<S: Stores>(
    app: &App<S>,
    instance: &str,
    sku: &str,
) -> Result<Vec<Listing>, Problem> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = app
            .store
            .list_listings(ListingQuery {
                instance: Some(instance.to_string()),
                sku: Some(sku.to_string()),
                since: None,
                after,
                limit: 100,
            })
            .await?;
        out.extend(page.items);
        match page.next {
            Some(c) => after = Some(c),
            None => return Ok(out),
        }
    }
}

/// `POST /v1/orders/{id}/shipments` with carrier, tracking number and URL, and lines.
async fn confirm_shipment<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Body, Problem>,
) -> Accepted {
    let Body(body) = body?;
    let order_id = OrderId::parse(&id).map_err(|_| Problem::not_found("order"))?;
    let mut shipment: ShipmentConfirmation = request(&body, "the shipment")?;
    let order = app
        .store
        .get_order(&order_id)
        .await?
        .ok_or_else(|| Problem::not_found("order"))?;
    check_shipment(&shipment, &order)?;
    let inst = sending_instance(&app, &order.instance, &[CommandField::Shipment])?;
    let sends_lines = inst.adapter.spec().outbound.as_ref().is_some_and(|o| {
        o.operations
            .iter()
            .any(|op| op.sends.contains(&CommandField::Shipment) && op.uses("shipment.lines"))
    });
    if !shipment.lines.is_empty() && !sends_lines {
        return Err(unsendable(format!(
            "the {} adapter confirms whole orders only: leave out lines",
            inst.adapter.spec().name
        )));
    }
    if shipment.lines.is_empty() && sends_lines {
        // The channel wants lines (Amazon, eBay): no lines means every line, in full.
        shipment.lines = all_lines(&order)?;
    }
    let idem = idempotency(
        &app,
        &headers,
        &format!("POST /v1/orders/{id}/shipments"),
        &body,
    )?;
    let cmd = Command::new(
        &order.instance,
        Target::Order {
            order_id: order.id.as_str().to_string(),
            external_id: order.external_id.clone(),
        },
        Action::Shipment(shipment),
        chrono::Utc::now(),
    );
    enqueue(&app, &order.instance.clone(), vec![cmd], idem).await
}

/// Every line of the order, with the units ordered.
fn all_lines(order: &Order) -> Result<Vec<crate::outbox::ShipmentLine>, Problem> {
    order
        .lines
        .iter()
        .map(|l| {
            Ok(crate::outbox::ShipmentLine {
                line_id: l.line_id.clone().ok_or_else(|| {
                    unsendable(
                        "the channel confirms shipments by line, and the order's lines carry no \
                         channel line ids"
                            .into(),
                    )
                })?,
                quantity: l.quantity,
            })
        })
        .collect()
}

/// A shipment names real lines of the order, no more units than were ordered, and a web
/// address the channel can show.
fn check_shipment(s: &ShipmentConfirmation, order: &Order) -> Result<(), Problem> {
    let text = |field: &str, v: &str, max: usize| {
        if v.trim().is_empty() || v.len() > max {
            Err(field_problem(
                field,
                &format!("must be 1 to {max} characters"),
            ))
        } else {
            Ok(())
        }
    };
    text("carrier", &s.carrier, 100)?;
    text("tracking_number", &s.tracking_number, 100)?;
    if let Some(u) = &s.tracking_url {
        let ok = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
        if !ok || u.len() > 2000 {
            return Err(field_problem("tracking_url", "must be an http(s) URL"));
        }
    }
    for (i, l) in s.lines.iter().enumerate() {
        let line = order
            .lines
            .iter()
            .find(|ol| ol.line_id.as_deref() == Some(l.line_id.as_str()))
            .ok_or_else(|| {
                field_problem(&format!("lines[{i}].line_id"), "is not a line of the order")
            })?;
        if l.quantity == 0 || l.quantity > line.quantity {
            return Err(field_problem(
                &format!("lines[{i}].quantity"),
                &format!("must be 1 to {} (the units ordered)", line.quantity),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CommandParams {
    /// Required: the channel instance id.
    instance: Option<String>,
    /// `queued`, `sent`, `confirmed`, `failed`, `dead` or `coalesced`.
    status: Option<String>,
    #[schemars(range(min = 1, max = 500))]
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/outbound?instance=&status=&limit=&cursor=`: an instance's commands, newest first.
async fn list_commands<S: Stores>(
    State(app): State<App<S>>,
    Q(p): Q<CommandParams>,
) -> Answer<Page<Command>> {
    let instance = p
        .instance
        .ok_or_else(|| Problem::bad_request("instance is required"))?;
    super::instance(&app, &instance)?;
    let state = p
        .status
        .as_deref()
        .map(|s| {
            CommandState::parse(s).ok_or_else(|| {
                Problem::bad_request(
                    "status must be queued, sent, confirmed, failed, dead or coalesced",
                )
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(Problem::bad_request("limit must be between 1 and 500"));
    }
    let after = p
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c).ok_or_else(|| Problem::bad_request("cursor is not valid")))
        .transpose()?;
    let page = app
        .store
        .outbox_list(OutboxQuery {
            instance,
            state,
            after,
            limit,
        })
        .await?;
    Ok(axum::Json(page.into()))
}

/// `GET /v1/outbound/{id}`: a command with its attempts.
async fn get_command<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<Command> {
    let cmd = app
        .store
        .outbox_get(&id)
        .await?
        .ok_or_else(|| Problem::not_found("outbound command"))?;
    Ok(axum::Json(cmd))
}

/// `POST /v1/outbound/{id}/retry`: a dead (or failed) command goes out again now.
async fn retry_command<S: Stores>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
) -> Answer<Command> {
    match app.store.outbox_retry(&id, chrono::Utc::now()).await {
        Ok(cmd) => {
            tracing::info!(command = %id, "outbound command retried by hand");
            Ok(axum::Json(cmd))
        }
        Err(RetryError::Refused(r)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "not-retryable",
            "The command cannot be retried",
        )
        .detail(r.to_string())),
        Err(RetryError::Store(crate::store::StoreError::NotFound)) => {
            Err(Problem::not_found("outbound command"))
        }
        Err(RetryError::Store(e)) => Err(e.into()),
    }
}
