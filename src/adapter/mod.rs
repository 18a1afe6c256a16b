//! Adapters: a channel's bytes and headers in, canonical records or a typed error out.
//!
//! Architecture invariant: this module is pure. It does no IO and reads no clock (the current
//! time is passed in where signatures need it). Channels are described by files in `adapters/`
//! and run by the declarative engine in [`engine`]; [`registry`] loads them.

pub mod csv;
pub mod engine;
pub mod error;
pub mod path;
pub mod projection;
pub mod registry;
pub mod signature;
pub mod spec;
pub mod tree;
pub mod wechat_message;
pub mod wechat_refund;
pub mod xml;

use sha2::{Digest, Sha256};

pub use engine::RecordContext;
pub use error::{FieldError, NormalizeError, SignatureError};
pub use registry::Registry;
use spec::{AdapterSpec, Format, RouteTarget, Source};

/// What a delivery is mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'s> {
    Order,
    Listing,
    Stock,
    /// A lifecycle fact, by the name of its `[facts.<name>]` mapping.
    Fact(&'s str),
    /// Authentic but not needed.
    Ignore,
}
use tree::Node;

use crate::model::{GATEWAY_ORDER_FIELDS, Listing, Order, OrderId, Record};

/// HTTP headers as an adapter sees them: names compared case-insensitively, values as text.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn push(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// The first value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header that must appear at most once; `Err` when repeated.
    pub fn unique(&self, name: &str) -> Result<Option<&str>, RepeatedHeader> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(RepeatedHeader);
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A header that must appear once appeared several times (ambiguous, so refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedHeader;

/// Longest idempotency id kept as sent; longer or odd ones are replaced by their hash.
const MAX_PLAIN_DEDUPE_ID: usize = 200;

/// What a delivery turned into.
#[derive(Debug, Clone)]
pub enum Routed {
    /// One item per record root in the document (usually one; list responses and CSV files
    /// have several). Each item is mapped and validated on its own.
    Items(Vec<Item>),
    /// An authentic delivery of a topic this adapter does not map.
    Ignored,
}

/// One mapped item: an order, or the listings of one product.
#[derive(Debug, Clone)]
pub struct Item {
    /// Position of the item in the document.
    pub index: usize,
    pub result: Result<Vec<Record>, NormalizeError>,
}

impl Routed {
    /// All records when every item mapped; otherwise the first item's error (used where a
    /// delivery is all-or-nothing: replay of a single item, the CLI).
    pub fn into_records(self) -> Result<Vec<Record>, NormalizeError> {
        match self {
            Routed::Ignored => Ok(Vec::new()),
            Routed::Items(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(item.result?);
                }
                Ok(out)
            }
        }
    }
}

/// A loaded adapter definition.
#[derive(Debug)]
pub struct Adapter {
    spec: AdapterSpec,
    /// What the mapping reads of a payload (computed once).
    projection: projection::Projection,
    /// The first 12 hex digits of the SHA-256 of the file it was read from (empty when it was
    /// not read from a file): what "the adapter version loaded" means to ops.
    digest: String,
}

impl Adapter {
    pub fn new(spec: AdapterSpec) -> Self {
        let projection = match spec.format {
            Format::Canonical => projection::Projection::everything(),
            Format::Json => projection::Projection::of(&spec),
            // XML and CSV trees are built whole.
            Format::Xml | Format::Csv => projection::Projection::everything(),
        };
        Self {
            spec,
            projection,
            digest: String::new(),
        }
    }

    /// Records the file text the adapter was read from, as its digest.
    pub fn with_source(mut self, text: &str) -> Self {
        use sha2::Digest;
        self.digest = hex::encode(&sha2::Sha256::digest(text.as_bytes())[..6]);
        self
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn spec(&self) -> &AdapterSpec {
        &self.spec
    }

    /// Checks a pushed delivery's signature. An adapter without a `[webhook]` section accepts
    /// no pushed deliveries.
    pub fn verify<'s>(
        &self,
        headers: &Headers,
        body: &[u8],
        secrets: &dyn Fn(&str) -> Vec<&'s str>,
        now: i64,
    ) -> Result<(), SignatureError> {
        let webhook = self.spec.webhook.as_ref().ok_or(SignatureError::NoSecret)?;
        signature::verify(&webhook.signature, headers, body, secrets, now)
    }

    /// The bytes a pushed delivery is mapped from: the body itself, except where the channel
    /// encrypts its content (a WeChat Pay v2 refund notification's `req_info`, under the API
    /// key; a WeChat shop message in safe mode, under the EncodingAESKey and naming the
    /// `app_id` setting): then the decrypted document. The raw body is what is stored.
    pub fn document_bytes<'b, 's>(
        &self,
        body: &'b [u8],
        secrets: &dyn Fn(&str) -> Vec<&'s str>,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> std::borrow::Cow<'b, [u8]> {
        let opened = match self.spec.webhook.as_ref().map(|w| &w.signature) {
            Some(spec::SignatureSpec::WechatPayV2 { secret }) => {
                wechat_refund::refund_document(body, &secrets(secret))
            }
            Some(spec::SignatureSpec::WechatMessage { aes_key, .. }) => {
                let app_id = settings.get("app_id").map(String::as_str).unwrap_or("");
                wechat_message::message_document(body, &secrets(aes_key), app_id)
            }
            _ => None,
        };
        match opened {
            Some(doc) => std::borrow::Cow::Owned(doc),
            None => std::borrow::Cow::Borrowed(body),
        }
    }

    /// Answers a sender's subscription check: the challenge to echo when the request proves
    /// knowledge of one of `secrets` (Meta: `hub.verify_token` equal to it, compared in
    /// constant time; WeChat: `signature` over it, `timestamp` and `nonce`). `None` when the
    /// adapter has no such check or the request fails it. The challenge is echoed only when it
    /// is short plain text, so the endpoint cannot be made to serve markup.
    pub fn subscription_challenge<'q>(
        &self,
        query: &'q std::collections::BTreeMap<String, String>,
        secrets: &[&str],
    ) -> Option<&'q str> {
        let check = self.spec.webhook.as_ref()?.subscription_check.as_ref()?;
        let q = |k: &str| query.get(k).map(String::as_str);
        let (proven, challenge) = match check.scheme {
            spec::SubscriptionScheme::MetaHub => {
                let token = q("hub.verify_token")?;
                let ok = q("hub.mode") == Some("subscribe") && signature::is_one_of(secrets, token);
                (ok, q("hub.challenge")?)
            }
            spec::SubscriptionScheme::WechatEchostr => {
                let (sig, ts, nonce) = (q("signature")?, q("timestamp")?, q("nonce")?);
                let expected: Vec<String> = secrets
                    .iter()
                    .map(|s| wechat_message::check_signature(s, ts, nonce))
                    .collect();
                let ok = signature::is_one_of(&expected, sig);
                (ok, q("echostr")?)
            }
        };
        let plain = !challenge.is_empty()
            && challenge.len() <= 256
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        (proven && plain).then_some(challenge)
    }

    /// The instance secret a subscription check proves knowledge of.
    pub fn subscription_secret(&self) -> Option<&str> {
        let w = self.spec.webhook.as_ref()?;
        w.subscription_check.as_ref().map(|c| c.secret.as_str())
    }

    /// An unsigned activation ping this adapter answers without storing (WooCommerce's
    /// `webhook_id=<n>`): only when no signature header came and the body is exactly that.
    pub fn is_unsigned_ping(&self, headers: &Headers, body: &[u8]) -> bool {
        let Some(w) = &self.spec.webhook else {
            return false;
        };
        let Some(field) = &w.unsigned_ping_field else {
            return false;
        };
        let signature_header = match &w.signature {
            spec::SignatureSpec::HmacSha256 { header, .. } => header.as_str(),
            _ => return false,
        };
        if headers.get(signature_header).is_some() {
            return false;
        }
        std::str::from_utf8(body)
            .ok()
            .and_then(|b| b.trim().strip_prefix(field.as_str()))
            .and_then(|rest| rest.strip_prefix('='))
            .is_some_and(|n| {
                !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
            })
    }

    /// The headers worth keeping with a raw delivery so it can be normalized again later:
    /// the ones the adapter reads ids and topics from. Signatures are not kept.
    pub fn kept_headers(&self, headers: &Headers) -> Vec<(String, String)> {
        let Some(w) = &self.spec.webhook else {
            return Vec::new();
        };
        let mut names: Vec<&str> = w
            .dedupe_id
            .iter()
            .chain(w.topic.iter())
            .filter_map(|s| match s {
                Source::Header(h) => Some(h.as_str()),
                Source::Body(_) | Source::Fields(_) | Source::FirstOf(_) => None,
            })
            .collect();
        names.push("content-type");
        headers
            .iter()
            .filter(|(k, _)| names.iter().any(|n| n.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.to_string(), v.chars().take(512).collect()))
            .collect()
    }

    /// Reads the payload bytes into a document tree.
    /// The CSV options of a `format = "csv"` adapter.
    pub fn csv_options(&self) -> csv::CsvOptions {
        let spec = self.spec.csv.clone().unwrap_or(spec::CsvSpec {
            delimiter: None,
            group_by: None,
        });
        csv::CsvOptions {
            delimiter: spec
                .delimiter
                .as_deref()
                .and_then(|d| d.bytes().next())
                .unwrap_or(b','),
            group_by: spec.group_by,
        }
    }

    pub fn parse<'b>(&self, body: &'b [u8]) -> Result<Node<'b>, NormalizeError> {
        match self.spec.format {
            Format::Json | Format::Canonical => tree::parse_json_projected(body, &self.projection)
                .map_err(|e| NormalizeError::Parse {
                    format: "JSON",
                    message: e.0,
                }),
            Format::Xml => xml::parse_xml(body).map_err(|e| NormalizeError::Parse {
                format: "XML",
                message: e.0,
            }),
            Format::Csv => {
                csv::parse_csv(body, &self.csv_options()).map_err(|e| NormalizeError::Parse {
                    format: "CSV",
                    message: e.0,
                })
            }
        }
    }

    /// The delivery's idempotency id: the first configured source that is present, else the
    /// SHA-256 of the body. Odd values (too long, control characters) are replaced by a hash so
    /// they are safe as store keys and in logs.
    pub fn dedupe_id(&self, headers: &Headers, doc: Option<&Node>, body: &[u8]) -> String {
        let sources = self
            .spec
            .webhook
            .as_ref()
            .map(|w| w.dedupe_id.as_slice())
            .unwrap_or_default();
        let found = sources
            .iter()
            .find_map(|s| source_value(s, headers, doc).filter(|v| !v.trim().is_empty()));
        match found {
            Some(v) if is_plain_id(&v) => v,
            Some(v) => format!("sha256:{}", hex::encode(Sha256::digest(v.as_bytes()))),
            None => format!("body-sha256:{}", hex::encode(Sha256::digest(body))),
        }
    }

    /// The delivery's topic, when the adapter declares where it is.
    pub fn topic(&self, headers: &Headers, doc: Option<&Node>) -> Option<String> {
        let source = self.spec.webhook.as_ref()?.topic.as_ref()?;
        source_value(source, headers, doc)
    }

    /// Which record a topic carries.
    pub fn route(&self, topic: Option<&str>) -> Target<'_> {
        let routes = self
            .spec
            .webhook
            .as_ref()
            .map(|w| w.routes.as_slice())
            .unwrap_or_default();
        if routes.is_empty() {
            return Target::Order;
        }
        let Some(topic) = topic else {
            return Target::Ignore;
        };
        match routes.iter().find(|r| r.topics.iter().any(|t| t == topic)) {
            None => Target::Ignore,
            Some(r) => match r.record {
                RouteTarget::Order => Target::Order,
                RouteTarget::Listing => Target::Listing,
                RouteTarget::Stock => Target::Stock,
                RouteTarget::Ignore => Target::Ignore,
                RouteTarget::Fact => Target::Fact(r.facts.as_deref().unwrap_or_default()),
            },
        }
    }

    /// Maps an already parsed document to records of the routed kind, item by item.
    pub fn map(
        &self,
        doc: &Node,
        target: Target<'_>,
        ctx: &RecordContext<'_>,
    ) -> Result<Routed, NormalizeError> {
        let no_mapping = |kind| NormalizeError::NoMapping {
            adapter: self.spec.name.clone(),
            kind,
        };
        let absent = self.spec.absent_values.as_slice();
        let results: Vec<Result<Vec<Record>, NormalizeError>> = match (target, self.spec.format) {
            (Target::Ignore, _) => return Ok(Routed::Ignored),
            (Target::Order, Format::Canonical) => {
                vec![canonical_order(doc, ctx).map(|o| vec![Record::Order(Box::new(o))])]
            }
            (Target::Listing, Format::Canonical) => return Err(no_mapping("listing")),
            (Target::Stock, _) => {
                let m = self
                    .spec
                    .stock
                    .as_ref()
                    .ok_or_else(|| no_mapping("stock"))?;
                vec![
                    engine::map_stock(m, doc, ctx, absent)
                        .map(|ls| ls.into_iter().map(|l| Record::Stock(Box::new(l))).collect())
                        .map_err(NormalizeError::Fields),
                ]
            }
            (Target::Fact(name), _) => {
                let m = self
                    .spec
                    .facts
                    .get(name)
                    .ok_or_else(|| no_mapping("fact"))?;
                vec![
                    engine::map_fact(m, doc, ctx, absent)
                        .map(|f| vec![Record::Fact(Box::new(f))])
                        .map_err(NormalizeError::Fields),
                ]
            }
            (Target::Order, _) => {
                let m = self
                    .spec
                    .order
                    .as_ref()
                    .ok_or_else(|| no_mapping("order"))?;
                engine::map_orders(m, doc, ctx, absent)
                    .into_iter()
                    .map(|r| {
                        r.map(|o| vec![Record::Order(Box::new(o))])
                            .map_err(NormalizeError::Fields)
                    })
                    .collect()
            }
            (Target::Listing, _) => {
                let m = self
                    .spec
                    .listing
                    .as_ref()
                    .ok_or_else(|| no_mapping("listing"))?;
                vec![
                    engine::map_listings(m, doc, ctx, absent)
                        .map(|ls| {
                            ls.into_iter()
                                .map(|l| Record::Listing(Box::new(l)))
                                .collect()
                        })
                        .map_err(NormalizeError::Fields),
                ]
            }
        };
        let items = results
            .into_iter()
            .enumerate()
            .map(|(index, result)| Item {
                index,
                result: result.and_then(|r| validated(r, ctx.received_at)),
            })
            .collect();
        Ok(Routed::Items(items))
    }

    /// Reads a canonical order JSON document (the app's and call-centre tools' format) whatever
    /// the adapter's own format.
    pub fn map_canonical(
        &self,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<Routed, NormalizeError> {
        map_canonical_doc(body, ctx, |doc| {
            canonical_order(doc, ctx).map(|o| Record::Order(Box::new(o)))
        })
    }

    /// Maps a canonical listing JSON (a catalogue import) the same way: the gateway's fields
    /// are filled in, and must not be sent.
    pub fn map_canonical_listing(
        &self,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<Routed, NormalizeError> {
        map_canonical_doc(body, ctx, |doc| {
            canonical_listing(doc, ctx).map(|l| Record::Listing(Box::new(l)))
        })
    }

    /// Parses, routes and maps a delivery in one go (used by `replay` and tests).
    pub fn normalize(
        &self,
        headers: &Headers,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<Routed, NormalizeError> {
        let doc = self.parse(body)?;
        let topic = self.topic(headers, Some(&doc));
        let target = self.route(topic.as_deref());
        self.map(&doc, target, ctx)
    }
}

/// A canonical JSON submission as one item: parsed, mapped by `record`, validated.
fn map_canonical_doc(
    body: &[u8],
    ctx: &RecordContext<'_>,
    record: impl FnOnce(&Node) -> Result<Record, NormalizeError>,
) -> Result<Routed, NormalizeError> {
    let doc = tree::parse_json(body).map_err(|e| NormalizeError::Parse {
        format: "JSON",
        message: e.0,
    })?;
    let result = record(&doc)
        .map(|r| vec![r])
        .and_then(|r| validated(r, ctx.received_at));
    Ok(Routed::Items(vec![Item { index: 0, result }]))
}

/// Checks the model invariants of an item's records.
fn validated(
    records: Vec<Record>,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Record>, NormalizeError> {
    let violations: Vec<FieldError> = records
        .iter()
        .flat_map(|r| r.validate_at(received_at))
        .map(|v| FieldError {
            field: v.path,
            source: None,
            problem: v.message,
        })
        .collect();
    if violations.is_empty() {
        Ok(records)
    } else {
        Err(NormalizeError::Fields(violations))
    }
}

fn source_value(source: &Source, headers: &Headers, doc: Option<&Node>) -> Option<String> {
    match source {
        Source::Header(name) => headers.get(name).map(str::to_string),
        Source::FirstOf(named) => {
            let doc = doc?;
            named.iter().find_map(|(name, p)| {
                p.get(path::Scope::new(doc))
                    .and_then(Node::scalar_text)
                    .map(|v| format!("{name}:{v}"))
            })
        }
        Source::Fields(paths) => {
            let doc = doc?;
            let parts: Option<Vec<&str>> = paths
                .iter()
                .map(|p| p.get(path::Scope::new(doc)).and_then(Node::scalar_text))
                .collect();
            parts.map(|p| p.join(":"))
        }
        Source::Body(path) => doc
            .and_then(|d| path.get(path::Scope::new(d)))
            .and_then(Node::scalar_text)
            .map(str::to_string),
    }
}

fn is_plain_id(v: &str) -> bool {
    v.len() <= MAX_PLAIN_DEDUPE_ID && v.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads crossgate's canonical order JSON (the mobile app's format). The gateway fields are set
/// here; a payload that sets them is refused.
fn canonical_listing(doc: &Node, ctx: &RecordContext<'_>) -> Result<Listing, NormalizeError> {
    canonical_record(doc, ctx, |external_id| {
        crate::model::ListingId::derive(ctx.instance, external_id)
            .as_str()
            .to_string()
    })
}

fn canonical_order(doc: &Node, ctx: &RecordContext<'_>) -> Result<Order, NormalizeError> {
    let mut order: Order = canonical_record(doc, ctx, |external_id| {
        OrderId::derive(ctx.instance, external_id)
            .as_str()
            .to_string()
    })?;
    order.holds =
        order.totals_mismatches(spec::DEFAULT_TOTALS_TOLERANCE, rust_decimal::Decimal::ZERO);
    Ok(order)
}

/// A canonical record sent without the gateway's fields (id, instance, channel, channel kind,
/// account): checks they are absent, fills them in and deserializes with field paths.
fn canonical_record<T: serde::de::DeserializeOwned>(
    doc: &Node,
    ctx: &RecordContext<'_>,
    id_of: impl FnOnce(&str) -> String,
) -> Result<T, NormalizeError> {
    let fail = |field: &str, problem: &str| {
        NormalizeError::Fields(vec![FieldError {
            field: field.to_string(),
            source: None,
            problem: problem.to_string(),
        }])
    };
    if !matches!(doc, Node::Object(_)) {
        return Err(fail("$", "expected a JSON object"));
    }
    let set_by_gateway: Vec<FieldError> = GATEWAY_ORDER_FIELDS
        .iter()
        .filter(|f| doc.get(f).is_some())
        .map(|f| FieldError {
            field: (*f).to_string(),
            source: None,
            problem: "is set by the gateway; leave it out".into(),
        })
        .collect();
    if !set_by_gateway.is_empty() {
        return Err(NormalizeError::Fields(set_by_gateway));
    }
    let external_id = doc
        .get("external_id")
        .and_then(Node::scalar_text)
        .unwrap_or_default();
    let mut json = doc.to_json();
    let obj = json.as_object_mut().expect("checked object");
    obj.insert("id".into(), id_of(external_id).into());
    obj.insert("instance".into(), ctx.instance.into());
    obj.insert("channel".into(), ctx.channel.into());
    obj.insert("channel_kind".into(), ctx.channel_kind.as_str().into());
    obj.insert("account".into(), ctx.account.into());
    serde_path_to_error::deserialize::<_, T>(json).map_err(|e| {
        let field = e.path().to_string();
        let problem = sanitize_serde_message(&e.into_inner().to_string());
        fail(if field == "." { "$" } else { &field }, &problem)
    })
}

/// serde quotes offending strings in its messages (`invalid type: string "…", expected u32`);
/// payload text must not travel into responses or dead-letter reasons, so it is cut out.
pub fn sanitize_serde_message(msg: &str) -> String {
    for marker in ["string \"", "value: string \""] {
        if let Some(start) = msg.find(marker) {
            let after = start + marker.len() - 1;
            let end = msg[after..]
                .find("\", ")
                .map(|p| after + p + 1)
                .unwrap_or(msg.len());
            return format!("{}{}", &msg[..after - 1], &msg[end..]);
        }
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_payload_strings() {
        assert_eq!(
            sanitize_serde_message(r#"invalid type: string "Zqxvyl Canarytest", expected u32"#),
            "invalid type: string, expected u32"
        );
        assert_eq!(
            sanitize_serde_message("missing field `lines`"),
            "missing field `lines`"
        );
    }

    #[test]
    fn headers_are_case_insensitive() {
        let mut h = Headers::default();
        h.push("X-Shopify-Topic", "orders/create");
        assert_eq!(h.get("x-shopify-topic"), Some("orders/create"));
        assert_eq!(h.unique("X-SHOPIFY-TOPIC"), Ok(Some("orders/create")));
        h.push("x-shopify-topic", "orders/updated");
        assert!(h.unique("x-shopify-topic").is_err());
    }
}
