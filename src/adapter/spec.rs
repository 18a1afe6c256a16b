//! The adapter definition file format (`adapters/<name>.toml`), as Rust types.
//!
//! These types are the single source of truth: the strict TOML parser uses them (unknown keys are
//! errors) and `schemas/adapter.schema.json` is generated from them. Paths and expressions are
//! checked while the file is read, so a bad path is reported with its line and column.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::path::Path;
use crate::model::ChannelKind;

/// One channel's adapter: how its payloads are authenticated and mapped to canonical records.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    /// Adapter name; must equal the file name without `.toml`.
    pub name: String,
    /// What the channel is, for people reading the file.
    #[serde(default)]
    pub description: String,
    pub channel_kind: ChannelKind,
    /// How payload bytes are read.
    pub format: Format,
    /// CSV options (`format = "csv"`).
    #[serde(default)]
    pub csv: Option<CsvSpec>,
    /// Text values that mean "no value" for this channel (Lazada sends "null", PrestaShop
    /// "0000-00-00 00:00:00"); compared after trimming.
    #[serde(default)]
    pub absent_values: Vec<String>,
    /// How pushed deliveries are authenticated, deduplicated and routed.
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
    /// How an order is mapped.
    #[serde(default)]
    pub order: Option<OrderMapping>,
    /// How listings are mapped.
    #[serde(default)]
    pub listing: Option<ListingMapping>,
    /// Lifecycle facts (payments, shipments, refunds, cancellations) by name; a webhook route
    /// with `record = "fact"` names the one its topic uses.
    #[serde(default)]
    pub facts: BTreeMap<String, FactMapping>,
    /// The channel's API, for thin-webhook fetches and polling.
    #[serde(default)]
    pub api: Option<ApiSpec>,
    /// Thin webhooks: the payload names a record that is fetched before mapping.
    #[serde(default)]
    pub fetch: Option<FetchSpec>,
    /// Polling the channel's list endpoint.
    #[serde(default)]
    pub poll: Option<PollSpec>,
}

/// How to call the channel's API. Requests only ever go to the host of the instance's base
/// URL; redirects are not followed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// The instance setting holding the base URL (e.g. "https://shop.myshopify.com").
    #[serde(default = "default_base_url_setting")]
    pub base_url_setting: String,
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// The channel's request rate limit (token bucket).
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    /// Per-request timeout.
    #[serde(default = "default_api_timeout")]
    pub timeout_secs: u64,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_base_url_setting() -> String {
    "api_base".into()
}

fn default_api_timeout() -> u64 {
    30
}

/// How requests authenticate; `secret` names an instance secret.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// The secret in a header (X-Shopify-Access-Token, X-Auth-Token).
    Header { header: String, secret: String },
    /// `Authorization: Bearer <secret>`.
    Bearer { secret: String },
    /// HTTP Basic with the secret as user name and an empty password (PrestaShop webservice
    /// key).
    Basic { secret: String },
    /// TikTok Shop Open API: `x-tts-access-token` header (secret `secret`), plus `app_key`,
    /// `timestamp` and `sign` query parameters; sign = hex HMAC-SHA256 keyed by the app secret
    /// over app_secret + path + sorted {key}{value} query (without sign and access_token) +
    /// app_secret.
    TiktokShop {
        secret: String,
        #[serde(default = "default_app_key")]
        app_key: String,
        #[serde(default = "default_app_secret")]
        app_secret: String,
    },
}

fn default_app_secret() -> String {
    "webhook".into()
}

impl AuthSpec {
    pub fn secret_name(&self) -> &str {
        match self {
            AuthSpec::Header { secret, .. }
            | AuthSpec::Bearer { secret }
            | AuthSpec::Basic { secret }
            | AuthSpec::TiktokShop { secret, .. } => secret,
        }
    }
}

/// A token bucket: `per_second` requests on average, bursts of up to `burst`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Requests per second (may be below 1: Amazon getOrders is 0.0167).
    pub per_second: f64,
    pub burst: u32,
}

/// Thin webhooks: fetch the named record, then map the assembled document
/// `{"webhook": <payload>, "<key>": <response>, ...}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchSpec {
    /// Where the record id is in the webhook payload.
    #[schemars(with = "String")]
    pub id: Path,
    /// Topics whose deliveries need a fetch.
    pub topics: Vec<String>,
    pub requests: Vec<RequestSpec>,
}

/// One API request. `{id}` in the path is replaced by the record id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Key of the response in the assembled document.
    pub key: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// Polling a list endpoint page by page. Query values may use `{since}` (the watermark,
/// RFC 3339 UTC) and `{until}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Updated-after watermark: the next window starts `overlap_secs` before the newest
    /// `updated_at` seen, so late-visible updates are not skipped (upserts are idempotent).
    #[serde(default)]
    pub watermark: Option<WatermarkSpec>,
    /// Next-page token in the response (Amazon NextToken, Shopee next_cursor).
    #[serde(default)]
    pub next_token: Option<NextTokenSpec>,
    /// Follow `Link: <…>; rel="next"` (Shopify).
    #[serde(default)]
    pub link_header: bool,
    /// Offset or page-number paging: another page is fetched while a page is full. Query values
    /// use `{offset}` (items skipped) or `{page}` (page number from `start_page`).
    #[serde(default)]
    pub offset: Option<OffsetSpec>,
    /// Per-record follow-up requests whose responses are attached to the record before mapping
    /// (Amazon getOrderItems).
    #[serde(default)]
    pub details: Vec<DetailSpec>,
    /// Seconds between polls once caught up.
    #[serde(default = "default_poll_interval")]
    pub interval_secs: u64,
}

fn default_poll_interval() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetSpec {
    /// Records per page (the size the query asks for).
    pub page_size: u32,
    /// The first page's number for `{page}` (Magento counts from 1).
    #[serde(default)]
    pub start_page: u64,
    /// Where the response states the total number of records; paging stops there (Magento
    /// answers a page past the end with the last page again).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub total: Option<Path>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSpec {
    /// Query parameter that takes the watermark (the `{since}` value).
    pub param: String,
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// Where to start when there is no watermark yet (RFC 3339); backfill sets it too.
    #[serde(default)]
    pub initial: Option<String>,
    /// Longest time range one request may ask for (Shopee: 15 days); longer spans are polled
    /// window by window.
    #[serde(default)]
    pub window_secs: Option<u64>,
}

fn default_overlap() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextTokenSpec {
    /// Where the token is in the response.
    #[schemars(with = "String")]
    pub token: Path,
    /// Query parameter that sends it back.
    pub param: String,
    /// Send only the token (and `keep` parameters) with follow-up pages (Amazon).
    #[serde(default)]
    pub token_only: bool,
    /// Parameters still sent with the token when `token_only` is set.
    #[serde(default)]
    pub keep: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailSpec {
    /// The records in the page (a wildcard path).
    #[schemars(with = "String")]
    pub for_each: Path,
    /// The record's id, relative to the record.
    #[schemars(with = "String")]
    pub id: Path,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Key under which the response is attached to the record (or give `replace_with`).
    #[serde(default)]
    pub attach_as: Option<String>,
    /// Page through the detail with the same next-token convention.
    #[serde(default)]
    pub next_token: Option<NextTokenSpec>,
    /// Replace the record with this part of the response instead of attaching it (list
    /// endpoints that return only ids, like Shopee's get_order_list).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub replace_with: Option<Path>,
    /// Rate limit of this request, when it differs from the API's.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A channel-specific JSON document, mapped by `[order]` / `[listing]`.
    Json,
    /// An XML document (see `adapter::xml` for the tree shape).
    Xml,
    /// CSV with a header row (see `adapter::csv`).
    Csv,
    /// crossgate's own canonical order JSON (the merchant's mobile app); no mapping needed.
    Canonical,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// Field delimiter, one character (default ",").
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Column whose equal values group rows into one record (an order with several lines).
    #[serde(default)]
    pub group_by: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub signature: SignatureSpec,
    /// Where the delivery's idempotency id is; the first one present wins. Without one, the
    /// SHA-256 of the body is used, so only byte-identical re-sends are recognised.
    #[serde(default)]
    pub dedupe_id: Vec<Source>,
    /// Where the topic (event type) is, when routes depend on it.
    #[serde(default)]
    pub topic: Option<Source>,
    /// Which topics carry which record. Without routes every delivery is an order.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// An unsigned activation ping to answer 200 without storing anything (WooCommerce sends
    /// `webhook_id=<n>` when a webhook is created). The body must match `<field>=<digits>`.
    #[serde(default)]
    pub unsigned_ping_field: Option<String>,
    /// The exact answer the sender needs to stop retrying, when it is not any 2xx (WeChat Pay
    /// wants `<xml><return_code>SUCCESS</return_code>…</xml>`). Sent with status 200 once the
    /// delivery is durably stored (also for duplicates and dead letters).
    #[serde(default)]
    pub ack: Option<AckSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckSpec {
    pub content_type: String,
    pub body: String,
}

/// Where a value of the delivery is: an HTTP header or a path in the body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    Header(String),
    Body(#[schemars(with = "String")] Path),
    /// Several body values joined with ':' (e.g. WooCommerce's resource id and date_modified:
    /// its delivery id is not unique).
    Fields(#[schemars(with = "Vec<String>")] Vec<Path>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub topics: Vec<String>,
    pub record: RouteTarget,
    /// With `record = "fact"`: which `[facts.<name>]` mapping.
    #[serde(default)]
    pub facts: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    Order,
    Listing,
    /// A lifecycle fact (the route names the mapping in `facts`).
    Fact,
    /// Authentic but not needed: stored raw and acknowledged, not normalized.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Base64,
    Hex,
}

fn default_secret() -> String {
    "webhook".into()
}

fn default_tolerance() -> u64 {
    300
}

/// How a delivery proves it comes from the channel. `secret` names the instance secret to use.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureSpec {
    /// HMAC-SHA256 of the raw body in a header (Shopify, WooCommerce, GitHub style).
    HmacSha256 {
        header: String,
        encoding: Encoding,
        /// Text before the signature in the header, e.g. `sha256=`.
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default = "default_secret")]
        secret: String,
    },
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64>`,
    /// space-separated for key rotation); secrets are `whsec_<base64>`.
    StandardWebhooks {
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
        #[serde(default = "default_secret")]
        secret: String,
    },
    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>]` over `"{t}.{body}"`.
    Stripe {
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
        #[serde(default = "default_secret")]
        secret: String,
    },
    /// TikTok Shop: the `Authorization` header is the lowercase hex HMAC-SHA256 of
    /// `app_key + raw body`, keyed by the app secret. `app_key` names the instance secret that
    /// holds the app key.
    TiktokShop {
        #[serde(default = "default_tiktok_header")]
        header: String,
        #[serde(default = "default_app_key")]
        app_key: String,
        #[serde(default = "default_secret")]
        secret: String,
    },
    /// A shared secret sent verbatim in a header the merchant chose when registering the
    /// webhook (BigCommerce's custom webhook headers). Compared in constant time.
    SharedSecretHeader {
        header: String,
        #[serde(default = "default_secret")]
        secret: String,
    },
    /// WeChat Pay API v2: the `sign` element of the XML body is MD5 (or HMAC-SHA256 when
    /// `sign_type` says so) of the other non-empty parameters sorted by name, `k=v&…&key=<API
    /// key>`, upper-case hex.
    WechatPayV2 {
        #[serde(default = "default_secret")]
        secret: String,
    },
}

/// One minor unit per line: what per-line rounding can explain.
pub const DEFAULT_TOTALS_TOLERANCE: u32 = 1;

fn default_totals_tolerance() -> u32 {
    DEFAULT_TOTALS_TOLERANCE
}

fn default_tiktok_header() -> String {
    "Authorization".into()
}

fn default_app_key() -> String {
    "app_key".into()
}

impl SignatureSpec {
    pub fn secret_name(&self) -> &str {
        match self {
            SignatureSpec::HmacSha256 { secret, .. }
            | SignatureSpec::StandardWebhooks { secret, .. }
            | SignatureSpec::Stripe { secret, .. }
            | SignatureSpec::TiktokShop { secret, .. }
            | SignatureSpec::SharedSecretHeader { secret, .. }
            | SignatureSpec::WechatPayV2 { secret } => secret,
        }
    }

    /// Every instance secret the scheme reads.
    pub fn secret_names(&self) -> Vec<&str> {
        match self {
            SignatureSpec::TiktokShop {
                app_key, secret, ..
            } => vec![secret, app_key],
            other => vec![other.secret_name()],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------------

/// How a field's value is found. Written either as a path string (`"customer.email"`) or as a
/// table with exactly one of `path`, `value`, `coalesce`, `sum`, `join`, `when`, plus optional
/// `map`, `default` and `date`.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    /// Value translation (e.g. channel status → canonical status). A value not in the map is
    /// treated as absent.
    pub map: Option<BTreeMap<String, String>>,
    /// Used when the value is absent (missing, null or blank).
    pub default: Option<String>,
    /// How to read a date-time.
    pub date: Option<DateFormat>,
    /// Values that mean "absent" for this field only (e.g. a guest's customer id 0).
    pub absent_if: Vec<String>,
    /// A conversion applied to the value.
    pub lookup: Option<Lookup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// A country name ("Singapore") to its ISO 3166-1 alpha-2 code.
    CountryName,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Path(Path),
    Value(String),
    /// The first alternative that gives a value.
    Coalesce(Vec<Expr>),
    /// Sum of every number a wildcard path matches (0 when none).
    Sum(Path),
    /// The present parts joined by `sep`.
    Join {
        parts: Vec<Expr>,
        sep: String,
    },
    /// `then` when the path holds a value other than `false`.
    When {
        path: Path,
        then: String,
    },
    /// A value of the channel instance's `settings` in the gateway config (e.g. the shop's
    /// currency for a channel whose products do not state it).
    Setting(String),
    /// The first number minus the second (e.g. a line's subtotal minus its discounted total).
    Difference(Box<Expr>, Box<Expr>),
}

/// A scalar written in an adapter file (`value = "paid"`, `value = 0`, `default = false`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl Literal {
    fn into_text(self) -> String {
        match self {
            Literal::Text(s) => s,
            Literal::Integer(i) => i.to_string(),
            Literal::Bool(b) => b.to_string(),
        }
    }
}

/// Date-time formats.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DateFormat {
    Named(NamedDateFormat),
    /// A `strftime` pattern read in an IANA zone, e.g.
    /// `{ pattern = "%Y-%m-%d %H:%M:%S", zone = "Asia/Shanghai" }`.
    Pattern(DatePattern),
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedDateFormat {
    Rfc3339,
    Rfc2822,
    /// Seconds since the Unix epoch (number or string), read as UTC.
    Unix,
    /// Milliseconds since the Unix epoch, read as UTC.
    UnixMs,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatePattern {
    pub pattern: String,
    pub zone: String,
}

/// The table form of an expression, as written in TOML (used for reading and the schema).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExprTable {
    path: Option<String>,
    value: Option<Literal>,
    coalesce: Option<Vec<Expr>>,
    sum: Option<String>,
    join: Option<Vec<Expr>>,
    /// Separator for `join` (default one space).
    sep: Option<String>,
    when: Option<String>,
    then: Option<Literal>,
    setting: Option<String>,
    /// Two expressions: the first minus the second.
    difference: Option<Vec<Expr>>,
    map: Option<BTreeMap<String, Literal>>,
    absent_if: Option<Vec<Literal>>,
    lookup: Option<Lookup>,
    default: Option<Literal>,
    date: Option<DateFormat>,
}

/// Schema-only mirror of [`Expr`]'s two written forms.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ExprRepr {
    Path(String),
    Table(Box<ExprTable>),
}

fn path_no_wildcard(text: &str) -> Result<Path, String> {
    let p = Path::parse(text).map_err(|e| e.to_string())?;
    if p.segments().contains(&super::path::Segment::Wildcard) {
        return Err(format!(
            "path '{text}' has [*]: use `sum` for totals or `each` for arrays"
        ));
    }
    Ok(p)
}

impl TryFrom<ExprTable> for Expr {
    type Error = String;

    fn try_from(t: ExprTable) -> Result<Self, String> {
        let sources = [
            t.path.is_some(),
            t.value.is_some(),
            t.coalesce.is_some(),
            t.sum.is_some(),
            t.join.is_some(),
            t.when.is_some(),
            t.setting.is_some(),
            t.difference.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources != 1 {
            return Err(
                "an expression needs exactly one of `path`, `value`, `coalesce`, `sum`, `join`, `when`, `setting`, `difference`"
                    .into(),
            );
        }
        if t.then.is_some() != t.when.is_some() {
            return Err("`when` and `then` go together".into());
        }
        if t.sep.is_some() && t.join.is_none() {
            return Err("`sep` only applies to `join`".into());
        }
        let kind = if let Some(p) = t.path {
            ExprKind::Path(path_no_wildcard(&p)?)
        } else if let Some(v) = t.value {
            ExprKind::Value(v.into_text())
        } else if let Some(items) = t.coalesce {
            if items.is_empty() {
                return Err("`coalesce` needs at least one alternative".into());
            }
            ExprKind::Coalesce(items)
        } else if let Some(p) = t.sum {
            ExprKind::Sum(Path::parse(&p).map_err(|e| e.to_string())?)
        } else if let Some(parts) = t.join {
            ExprKind::Join {
                parts,
                sep: t.sep.unwrap_or_else(|| " ".into()),
            }
        } else if let Some(name) = t.setting {
            ExprKind::Setting(name)
        } else if let Some(pair) = t.difference {
            let [a, b]: [Expr; 2] = pair
                .try_into()
                .map_err(|_| "`difference` takes exactly two expressions".to_string())?;
            ExprKind::Difference(Box::new(a), Box::new(b))
        } else {
            let when = t.when.expect("counted above");
            ExprKind::When {
                path: path_no_wildcard(&when)?,
                then: t.then.expect("checked above").into_text(),
            }
        };
        Ok(Expr {
            kind,
            map: t.map.map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, v.into_text()))
                    .collect::<BTreeMap<_, _>>()
            }),
            default: t.default.map(Literal::into_text),
            date: t.date,
            absent_if: t
                .absent_if
                .unwrap_or_default()
                .into_iter()
                .map(Literal::into_text)
                .collect(),
            lookup: t.lookup,
        })
    }
}

impl Expr {
    pub fn path(p: Path) -> Self {
        Expr {
            kind: ExprKind::Path(p),
            map: None,
            default: None,
            date: None,
            absent_if: Vec::new(),
            lookup: None,
        }
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Expr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path string or an expression table")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Expr, E> {
                path_no_wildcard(s).map(Expr::path).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Expr, A::Error> {
                let table = ExprTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Expr::try_from(table).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Expr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expr".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ExprRepr::json_schema(generator)
    }
}

/// A money value: an amount and (optionally) its currency. Written as a path string to the
/// amount (the currency is then the order's) or as a table.
#[derive(Debug, Clone)]
pub struct MoneySpec {
    pub amount: Expr,
    /// Where the currency code is; the order currency when omitted.
    pub currency: Option<Expr>,
    /// The amount is an integer count of minor units (cents, fen).
    pub minor_units: bool,
    /// The channel sends a computed value with more decimals than the currency has (a float
    /// unit price); round it half-up to the minor unit instead of refusing it.
    pub round: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MoneyTable {
    amount: Expr,
    #[serde(default)]
    currency: Option<Expr>,
    #[serde(default)]
    minor_units: bool,
    #[serde(default)]
    round: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum MoneyRepr {
    AmountPath(String),
    Table(Box<MoneyTable>),
}

impl<'de> Deserialize<'de> for MoneySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MoneySpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path to the amount or a table with `amount` and `currency`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MoneySpec, E> {
                Ok(MoneySpec {
                    amount: path_no_wildcard(s).map(Expr::path).map_err(E::custom)?,
                    currency: None,
                    minor_units: false,
                    round: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MoneySpec, A::Error> {
                let t = MoneyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MoneySpec {
                    amount: t.amount,
                    currency: t.currency,
                    minor_units: t.minor_units,
                    round: t.round,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for MoneySpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MoneySpec".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        MoneyRepr::json_schema(generator)
    }
}

/// A path to an array (or to one value, which counts as a one-element array); `[*]` allowed.
#[derive(Debug, Clone)]
pub struct Each(pub Path);

impl<'de> Deserialize<'de> for Each {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Path::parse(&s).map(Each).map_err(de::Error::custom)
    }
}

impl JsonSchema for Each {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ArrayPath".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "path to an array; [*] allowed" })
    }
}

// ---------------------------------------------------------------------------------------------
// Record mappings
// ---------------------------------------------------------------------------------------------

/// How an order is read. Paths are relative to `root` unless anchored (`$` document, `^` order).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderMapping {
    /// Where the order object is (default: the document root). A `coalesce` handles payloads
    /// that are sometimes wrapped (`{"order": {...}}`) and sometimes not.
    #[serde(default)]
    pub root: Option<Expr>,
    /// For documents holding several orders (list responses, CSV groups): one order per
    /// element of this array, relative to `root`. Each is mapped and validated on its own.
    /// When the path is absent the root itself is the one order, so one mapping reads both a
    /// single order and a list page.
    #[serde(default)]
    pub each: Option<Each>,
    pub external_id: Expr,
    #[serde(default)]
    pub number: Option<Expr>,
    /// The channel's last-modified time; it orders revisions.
    pub updated_at: Expr,
    /// A version counter, when the channel has one.
    #[serde(default)]
    pub sequence: Option<Expr>,
    pub placed_at: Expr,
    /// Must give one of: created, paid, fulfilled, delivered, cancelled, partially_refunded, refunded.
    pub status: Expr,
    /// The currency the buyer paid in (presentment currency).
    pub currency: Expr,
    #[serde(default)]
    pub taxes_included: Option<Expr>,
    #[serde(default)]
    pub customer: Option<CustomerMapping>,
    #[serde(default)]
    pub billing_address: Option<AddressMapping>,
    #[serde(default)]
    pub shipping_address: Option<AddressMapping>,
    pub lines: LinesMapping,
    #[serde(default)]
    pub discounts: Option<DiscountsMapping>,
    #[serde(default)]
    pub tax_lines: Option<TaxLinesMapping>,
    pub totals: TotalsMapping,
    /// The same totals in the merchant's settlement currency (Shopify shop money).
    #[serde(default)]
    pub settlement: Option<SettlementMapping>,
    #[serde(default)]
    pub payments: Option<PaymentsMapping>,
    #[serde(default)]
    pub shipments: Option<ShipmentsMapping>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerMapping {
    #[serde(default)]
    pub external_id: Option<Expr>,
    #[serde(default)]
    pub email: Option<Expr>,
    #[serde(default)]
    pub phone: Option<Expr>,
    #[serde(default)]
    pub name: Option<Expr>,
    /// Age band (a demographic segment for recommendations).
    #[serde(default)]
    pub age_band: Option<Expr>,
    /// Gender (a demographic segment for recommendations).
    #[serde(default)]
    pub gender: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressMapping {
    /// Where the address object is; no address when it is absent.
    pub root: Expr,
    #[serde(default)]
    pub name: Option<Expr>,
    #[serde(default)]
    pub company: Option<Expr>,
    #[serde(default)]
    pub line1: Option<Expr>,
    #[serde(default)]
    pub line2: Option<Expr>,
    #[serde(default)]
    pub city: Option<Expr>,
    #[serde(default)]
    pub region: Option<Expr>,
    #[serde(default)]
    pub postal_code: Option<Expr>,
    /// ISO 3166-1 alpha-2 code.
    pub country: Expr,
    #[serde(default)]
    pub phone: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesMapping {
    pub each: Each,
    /// Skip elements where this holds a value (e.g. Magento's child items of a bundle, whose
    /// price is on the parent).
    #[serde(default)]
    pub skip_when: Option<Expr>,
    #[serde(default)]
    pub line_id: Option<Expr>,
    #[serde(default)]
    pub sku: Option<Expr>,
    #[serde(default)]
    pub product_id: Option<Expr>,
    pub title: Expr,
    pub quantity: Expr,
    /// Price of one unit. Give this or `line_total`.
    #[serde(default)]
    pub unit_price: Option<MoneySpec>,
    /// Amount of the whole line (price × quantity), for channels that state that instead of a
    /// unit price (Amazon ItemPrice); the unit price is then derived.
    #[serde(default)]
    pub line_total: Option<MoneySpec>,
    /// Discount on the whole line; zero when omitted.
    #[serde(default)]
    pub discount: Option<MoneySpec>,
    /// Tax on the whole line; zero when omitted.
    #[serde(default)]
    pub tax: Option<MoneySpec>,
    #[serde(default)]
    pub hs_code: Option<Expr>,
    #[serde(default)]
    pub origin_country: Option<Expr>,
    /// The line's tax class, when the channel names one (a product's tax category); it
    /// overrides the class derived from the HS code. Must be a class the rule pack declares.
    #[serde(default)]
    pub tax_class: Option<Expr>,
    /// The country of the warehouse the line ships from (ISO alpha-2).
    #[serde(default)]
    pub ship_from: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountsMapping {
    pub each: Each,
    #[serde(default)]
    pub code: Option<Expr>,
    pub amount: MoneySpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxLinesMapping {
    pub each: Each,
    pub title: Expr,
    #[serde(default)]
    pub rate: Option<Expr>,
    pub amount: MoneySpec,
    #[serde(default)]
    pub channel_liable: Option<Expr>,
}

/// Order totals. Omitted parts are derived: subtotal = Σ line amounts, shipping = 0,
/// discount = Σ line discounts (else Σ order discounts), tax = Σ line tax, grand total =
/// subtotal − discount + shipping (+ tax unless prices include it). A part whose amount is
/// absent from a particular payload (Amazon states no total for pending orders) is derived the
/// same way.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotalsMapping {
    /// How far the stated totals may be from what their parts add up to, in minor units per
    /// order line (the channel's own rounding). Beyond it the order is stored but held as
    /// `totals_mismatch`: not converted, not quoted, not counted in rankings.
    #[serde(default = "default_totals_tolerance")]
    pub tolerance_minor_units_per_line: u32,
    /// Charges the channel adds into its grand total that the canonical totals do not carry
    /// (tips, duties, fees); each is zero when absent. Read only for the totals check.
    #[serde(default)]
    pub charges: Vec<MoneySpec>,
    #[serde(default)]
    pub subtotal: Option<MoneySpec>,
    #[serde(default)]
    pub shipping: Option<MoneySpec>,
    #[serde(default)]
    pub discount: Option<MoneySpec>,
    #[serde(default)]
    pub tax: Option<MoneySpec>,
    #[serde(default)]
    pub grand_total: Option<MoneySpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementMapping {
    pub currency: Expr,
    pub subtotal: MoneySpec,
    pub shipping: MoneySpec,
    pub discount: MoneySpec,
    pub tax: MoneySpec,
    pub grand_total: MoneySpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentsMapping {
    pub each: Each,
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub gateway: Option<Expr>,
    /// Must give one of: pending, authorized, paid, partially_refunded, refunded, failed, voided.
    pub status: Expr,
    pub amount: MoneySpec,
    #[serde(default)]
    pub processed_at: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentsMapping {
    pub each: Each,
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub carrier: Option<Expr>,
    /// Path (relative to the shipment, `[*]` allowed) to the tracking numbers.
    #[serde(default)]
    pub tracking_numbers: Option<Each>,
    /// Must give one of: pending, shipped, in_transit, delivered, failed, cancelled.
    pub status: Expr,
    #[serde(default)]
    pub shipped_at: Option<Expr>,
}

/// How one lifecycle fact is read from a document. Exactly one of `payment`, `shipment`,
/// `cancellation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FactMapping {
    /// Where the fact's object is (default: the document root); `^` paths start here.
    #[serde(default)]
    pub root: Option<Expr>,
    /// Stable id of the fact on the channel (an event id); a re-delivery has the same id.
    pub id: Expr,
    /// The order's id on its channel (e.g. Stripe `metadata.order_id`, WeChat `out_trade_no`).
    pub order_external_id: Expr,
    /// The instance that owns the order (e.g. `{ setting = "orders_instance" }` for a payment
    /// provider); this instance when omitted.
    #[serde(default)]
    pub order_instance: Option<Expr>,
    /// When it happened.
    pub at: Expr,
    #[serde(default)]
    pub payment: Option<PaymentFactMapping>,
    #[serde(default)]
    pub shipment: Option<ShipmentFactMapping>,
    #[serde(default)]
    pub cancellation: Option<CancellationMapping>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentFactMapping {
    /// The payment's id (e.g. a Stripe payment intent), so later facts update the same payment.
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub gateway: Option<Expr>,
    /// Must give one of: pending, authorized, paid, partially_refunded, refunded, failed, voided.
    pub status: Expr,
    /// The payment's amount; its `currency` is required (a fact has no order currency).
    pub amount: MoneySpec,
    /// The amount refunded so far.
    #[serde(default)]
    pub refunded: Option<MoneySpec>,
    #[serde(default)]
    pub processed_at: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentFactMapping {
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub carrier: Option<Expr>,
    #[serde(default)]
    pub tracking_numbers: Option<Each>,
    /// Must give one of: pending, shipped, in_transit, delivered, failed, cancelled.
    pub status: Expr,
    #[serde(default)]
    pub shipped_at: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationMapping {
    #[serde(default)]
    pub reason: Option<Expr>,
}

/// How listings are read: one listing per element of `each` (e.g. per variant).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingMapping {
    /// Where the product object is (default: the document root); `^` paths start here.
    #[serde(default)]
    pub root: Option<Expr>,
    /// One listing per element (e.g. `variants`); one listing for the root when omitted.
    #[serde(default)]
    pub each: Option<Each>,
    pub external_id: Expr,
    #[serde(default)]
    pub product_id: Option<Expr>,
    pub updated_at: Expr,
    #[serde(default)]
    pub sku: Option<Expr>,
    pub title: Expr,
    #[serde(default)]
    pub description: Option<Expr>,
    #[serde(default)]
    pub category: Option<Expr>,
    #[serde(default)]
    pub brand: Option<Expr>,
    #[serde(default)]
    pub price: Option<MoneySpec>,
    /// The currency of `price` when its spec gives none.
    #[serde(default)]
    pub currency: Option<Expr>,
    #[serde(default)]
    pub stock: Option<Expr>,
    /// Must give one of: active, inactive, draft, deleted.
    pub status: Expr,
    /// Number of customer ratings; with `rating_average`, the listing's rating summary.
    #[serde(default)]
    pub rating_count: Option<Expr>,
    /// Mean rating (on a scale of `rating_scale`, default 5).
    #[serde(default)]
    pub rating_average: Option<Expr>,
    #[serde(default)]
    pub rating_scale: Option<u8>,
    /// Ratings counted as positive (for the Wilson lower bound).
    #[serde(default)]
    pub rating_positive: Option<Expr>,
}
