//! The adapter definition file format (`adapters/<name>.toml`), as Rust types.
//!
//! These types are the single source of truth: the strict TOML parser uses them (unknown keys are
//! errors) and `schemas/adapter.schema.json` is generated from them. Paths and expressions are
//! checked while the file is read, so a bad path is reported with its line and column.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::path::Path;
use crate::model::ChannelKind;

mod expr;
mod mapping;
mod outbound;

pub use expr::*;
pub use mapping::*;
pub use outbound::*;

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
    /// How stock levels reported apart from listings are mapped.
    #[serde(default)]
    pub stock: Option<StockMapping>,
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
    /// Pushing stock, price, listing status and shipments back to the channel.
    #[serde(default)]
    pub outbound: Option<OutboundSpec>,
    /// The instance settings this adapter reads (`[settings.<name>]`): `check-config`
    /// refuses others, missing required ones and values of the wrong kind.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
}

/// One instance setting an adapter reads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    pub kind: SettingKind,
    /// `always`, or `when_polled` (needed only by an instance with `poll = true`); optional
    /// when absent.
    #[serde(default)]
    pub required: Option<SettingRequired>,
    /// What it is, for people writing the gateway config.
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingKind {
    Text,
    /// An http(s) base URL (the channel API's).
    Url,
    /// An IANA time zone, e.g. `Europe/Berlin`.
    TimeZone,
    /// An ISO 4217 currency code.
    Currency,
    /// The id of another `[[instance]]` of the gateway config.
    Instance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingRequired {
    Always,
    WhenPolled,
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
    /// HTTP Basic with the secret as user name and, when `password` names a second secret,
    /// that as the password (WooCommerce: consumer key and consumer secret); else an empty
    /// password (PrestaShop webservice key).
    Basic {
        secret: String,
        #[serde(default)]
        password: Option<String>,
    },
    /// The secret as a query parameter (WeChat: `?access_token=`); never logged.
    Query { param: String, secret: String },
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
    /// Every secret the credential is made of.
    pub fn secret_names(&self) -> Vec<&str> {
        match self {
            AuthSpec::Basic {
                secret,
                password: Some(p),
            } => vec![secret, p],
            other => vec![other.secret_name()],
        }
    }

    pub fn secret_name(&self) -> &str {
        match self {
            AuthSpec::Header { secret, .. }
            | AuthSpec::Bearer { secret }
            | AuthSpec::Basic { secret, .. }
            | AuthSpec::Query { secret, .. }
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
    /// A JSON body to POST (WeChat reads its parameters from one), with `{id}` replaced by the
    /// record id as a JSON string; without it the request is a GET.
    #[serde(default)]
    pub post_json: Option<String>,
}

/// The body a poll request POSTs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostBodySpec {
    /// e.g. `text/xml`.
    pub content_type: String,
    /// The body, with `{since:FMT}`, `{until:FMT}`, `{page}`, `{offset}` and `{setting:NAME}`.
    pub template: String,
}

/// Polling a list endpoint page by page. Query values may use `{since}` (the watermark,
/// RFC 3339 UTC) and `{until}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A body to POST instead of a GET, rendered with the same placeholders as the query
    /// (eBay's Trading API takes GetOrders as an XML request).
    #[serde(default)]
    pub post_body: Option<PostBodySpec>,
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
    /// The subscription check a sender makes with a GET before it delivers, answered with its
    /// challenge when it proves knowledge of the instance's secret named here.
    #[serde(default)]
    pub subscription_check: Option<SubscriptionCheckSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionCheckSpec {
    pub scheme: SubscriptionScheme,
    /// The instance secret the check proves knowledge of.
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionScheme {
    /// Meta's Graph API webhooks: `hub.mode=subscribe`, `hub.verify_token` equal to the secret,
    /// `hub.challenge` echoed.
    MetaHub,
    /// WeChat message push: `signature` = hex SHA-1 of the sorted secret (the token),
    /// `timestamp` and `nonce`; `echostr` echoed.
    WechatEchostr,
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
    /// Of several named body paths, the one present, as `<name>:<value>` (the first by name
    /// when several are): one endpoint receiving two kinds of document, e.g. WeChat Pay's
    /// payment (`xml.result_code`) and refund (`xml.req_info.refund_status`) notifications.
    FirstOf(#[schemars(with = "BTreeMap<String, String>")] BTreeMap<String, Path>),
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
    /// A stock level (the `[stock]` mapping).
    Stock,
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
    /// WeChat message push in safe mode (the WeChat shop, 微信小店): the URL's `msg_signature`
    /// is hex SHA-1 of the sorted token, `timestamp`, `nonce` and the body's `Encrypt`; the
    /// body decrypts under the EncodingAESKey (the secret `aes_key`) and must name the app id
    /// (the setting `app_id`).
    WechatMessage {
        #[serde(default = "default_wechat_token")]
        secret: String,
        #[serde(default = "default_wechat_aes_key")]
        aes_key: String,
        #[serde(default = "default_tolerance")]
        tolerance_secs: u64,
    },
}

fn default_wechat_token() -> String {
    "token".into()
}

fn default_wechat_aes_key() -> String {
    "encoding_aes_key".into()
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
            | SignatureSpec::WechatPayV2 { secret }
            | SignatureSpec::WechatMessage { secret, .. } => secret,
        }
    }

    /// Every instance secret the scheme reads.
    pub fn secret_names(&self) -> Vec<&str> {
        match self {
            SignatureSpec::TiktokShop {
                app_key, secret, ..
            } => vec![secret, app_key],
            SignatureSpec::WechatMessage {
                secret, aes_key, ..
            } => vec![secret, aes_key],
            other => vec![other.secret_name()],
        }
    }
}
