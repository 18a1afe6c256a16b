//! `[outbound]`: how the gateway tells the channel about stock, price, listing status and
//! shipments. Each operation is one request the channel's API documents; the outbox runs the
//! operations a command needs, in the file's order.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::model::CommandField;

/// The channel's outbound operations.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundSpec {
    /// `[[outbound.operation]]`, run in this order.
    #[serde(rename = "operation")]
    pub operations: Vec<OperationSpec>,
}

/// The HTTP methods an outbound request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// One request to the channel. Paths, query values and the body's strings may hold
/// placeholders:
/// - the target: `{listing.id}`, `{listing.external_id}`, `{listing.product_id}`,
///   `{listing.sku}`, `{listing.stock_ref}`, `{order.id}`, `{order.external_id}`;
/// - the command: `{command.id}`, `{command.number}` (a positive number unique to it),
///   `{stock}`, `{price.amount}`, `{price.currency}`, `{status}`
///   (through `status_values`), `{shipment.carrier}`, `{shipment.tracking_number}`,
///   `{shipment.tracking_url}`, `{shipment.lines}` (through `line_keys`), `{now}` (RFC 3339, seconds), `{now_ms}`
///   (RFC 3339 with milliseconds);
/// - `{setting:NAME}`, and `{lookup.NAME}` for the value a lookup read.
///
/// A body string that is exactly one placeholder takes the value's JSON type (stock is a
/// number, an amount a string); `{x|number}` makes a numeric text a JSON number. A body key
/// whose placeholder has no value (a command that does not set the price) is left out, and an
/// object with `"$when" = "<value>"` is left out (from its array) when that value is absent.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationSpec {
    /// Shown in the command's attempts (`inventory`, `variant_price`).
    pub name: String,
    /// The command fields this request sends; it runs when the command still has one of them
    /// to send, and a 2xx confirms them all.
    pub sends: Vec<CommandField>,
    pub method: Method,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The JSON body (none for a request without one).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub body: Option<toml::Value>,
    /// The channel's words for `{status}`: `{ active = "active", inactive = "draft" }`.
    #[serde(default)]
    pub status_values: BTreeMap<String, String>,
    /// The keys of one shipped line in `{shipment.lines}`:
    /// `{ line_id = "orderItemId", quantity = "quantity" }`.
    #[serde(default)]
    pub line_keys: BTreeMap<String, String>,
    /// Requests made first, each reading one value (`[[outbound.operation.lookup]]`).
    #[serde(default, rename = "lookup")]
    pub lookups: Vec<LookupSpec>,
    /// A 2xx answer is a success only when the value at `pointer` equals `equals` (Amazon
    /// answers 200 with `"status": "INVALID"`).
    #[serde(default)]
    pub accept: Option<AcceptSpec>,
    /// JSON Pointer of the channel's id of what it made (a fulfillment id), kept with the
    /// command.
    #[serde(default)]
    pub reference: Option<String>,
    /// JSON Pointers of the channel's error text in a refusal, tried in order.
    #[serde(default)]
    pub error: Vec<String>,
    /// The endpoint's own rate, when it is not the API's (`[api] rate_limit`).
    #[serde(default)]
    pub rate_limit: Option<super::RateLimitSpec>,
}

/// A GET whose answer gives a value the operation needs (Shopify's fulfillment order id).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The value's name: `{lookup.<name>}`.
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON Pointer of the value in the answer; with `among`, in the chosen element.
    pub pick: String,
    /// JSON Pointer of a list in the answer: the value is picked from its first element that
    /// matches `where`.
    #[serde(default)]
    pub among: Option<String>,
    /// What the element must hold (`{ pointer = "/status", equals = "open" }`).
    #[serde(default, rename = "where")]
    pub matching: Option<AcceptSpec>,
    /// When the answer has no such value: `fail` (the command is dead) or `done` (there is
    /// nothing left to do at the channel: an order with no open fulfillment order is fulfilled
    /// already, by this command's own earlier request when a crash cut off its answer).
    #[serde(default)]
    pub if_none: IfNone,
}

/// What a lookup that finds nothing means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfNone {
    #[default]
    Fail,
    Done,
}

/// What a successful answer says.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptSpec {
    pub pointer: String,
    pub equals: String,
}

/// The values a placeholder may name (besides `setting:NAME` and `lookup.NAME`).
pub const OUTBOUND_VALUES: &[&str] = &[
    "listing.id",
    "listing.external_id",
    "listing.product_id",
    "listing.sku",
    "listing.stock_ref",
    "order.id",
    "order.external_id",
    "command.id",
    "command.number",
    "stock",
    "price.amount",
    "price.currency",
    "status",
    "shipment.carrier",
    "shipment.tracking_number",
    "shipment.tracking_url",
    "shipment.lines",
    "now",
    "now_ms",
];

/// A placeholder's parts: `{name}` or `{name|number}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub name: &'a str,
    pub as_number: bool,
}

/// The placeholders of a text, in order, with the text between them; `Err` names a malformed
/// one.
pub fn placeholders(text: &str) -> Result<Vec<Placeholder<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| c + open)
            .ok_or_else(|| format!("'{text}': unclosed '{{'"))?;
        let inner = &rest[open + 1..close];
        let (name, filter) = match inner.split_once('|') {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        let as_number = match filter {
            None => false,
            Some("number") => true,
            Some(other) => {
                return Err(format!("'{text}': unknown filter '|{other}' (use |number)"));
            }
        };
        out.push(Placeholder { name, as_number });
        rest = &rest[close + 1..];
    }
    Ok(out)
}

impl OperationSpec {
    /// Does any of the request's texts (path, query, body) use the placeholder `name`?
    pub fn uses(&self, name: &str) -> bool {
        let mut texts: Vec<(String, &str)> = vec![(String::new(), self.path.as_str())];
        texts.extend(self.query.values().map(|v| (String::new(), v.as_str())));
        if let Some(b) = &self.body {
            strings_of(b, "", &mut texts);
        }
        texts
            .iter()
            .any(|(_, t)| placeholders(t).is_ok_and(|list| list.iter().any(|p| p.name == name)))
    }
}

impl OutboundSpec {
    /// What the types cannot check: known placeholders, pointers, settings and lookups that
    /// exist, status words for both states.
    pub fn problems(&self, settings: &BTreeMap<String, super::SettingSpec>) -> Vec<String> {
        let mut p = Vec::new();
        if self.operations.is_empty() {
            p.push("outbound: declare at least one [[outbound.operation]]".into());
        }
        for (i, op) in self.operations.iter().enumerate() {
            let at = format!("outbound.operation[{i}] ({})", op.name);
            if op.sends.is_empty() {
                p.push(format!(
                    "{at}.sends: name at least one of stock, price, status, shipment"
                ));
            }
            if op.sends.contains(&CommandField::Shipment) && op.sends.len() > 1 {
                p.push(format!(
                    "{at}.sends: a shipment operation sends nothing else"
                ));
            }
            if op.sends.contains(&CommandField::Status)
                && !(op.status_values.contains_key("active")
                    && op.status_values.contains_key("inactive"))
            {
                p.push(format!(
                    "{at}.status_values: give the channel's words for active and inactive"
                ));
            }
            let lookups: Vec<&str> = op.lookups.iter().map(|l| l.name.as_str()).collect();
            let mut texts: Vec<(String, &str)> = vec![(format!("{at}.path"), op.path.as_str())];
            texts.extend(
                op.query
                    .iter()
                    .map(|(k, v)| (format!("{at}.query.{k}"), v.as_str())),
            );
            if let Some(body) = &op.body {
                strings_of(body, &format!("{at}.body"), &mut texts);
            }
            for (j, l) in op.lookups.iter().enumerate() {
                texts.push((format!("{at}.lookup[{j}].path"), l.path.as_str()));
                texts.extend(
                    l.query
                        .iter()
                        .map(|(k, v)| (format!("{at}.lookup[{j}].query.{k}"), v.as_str())),
                );
                p.extend(pointer_problem(&l.pick, &format!("{at}.lookup[{j}].pick")));
                if let Some(a) = &l.among {
                    p.extend(pointer_problem(a, &format!("{at}.lookup[{j}].among")));
                }
                if let Some(w) = &l.matching {
                    p.extend(pointer_problem(
                        &w.pointer,
                        &format!("{at}.lookup[{j}].where.pointer"),
                    ));
                }
                if l.matching.is_some() && l.among.is_none() {
                    p.push(format!(
                        "{at}.lookup[{j}].where: needs `among`, the list it chooses from"
                    ));
                }
            }
            for (where_, text) in texts {
                match placeholders(text) {
                    Err(e) => p.push(format!("{where_}: {e}")),
                    Ok(list) => {
                        for ph in list {
                            if let Some(problem) = unknown_placeholder(ph.name, settings, &lookups)
                            {
                                p.push(format!("{where_}: {problem}"));
                            }
                        }
                    }
                }
            }
            if let Some(body) = &op.body {
                let mut w = Vec::new();
                whens(body, &format!("{at}.body"), &mut w);
                for (where_, name) in w {
                    if let Some(problem) = unknown_placeholder(&name, settings, &lookups) {
                        p.push(format!("{where_}: {problem}"));
                    }
                }
            }
            if let Some(a) = &op.accept {
                p.extend(pointer_problem(&a.pointer, &format!("{at}.accept.pointer")));
            }
            if let Some(r) = &op.reference {
                p.extend(pointer_problem(r, &format!("{at}.reference")));
            }
            for (j, e) in op.error.iter().enumerate() {
                p.extend(pointer_problem(e, &format!("{at}.error[{j}]")));
            }
        }
        p
    }
}

fn unknown_placeholder(
    name: &str,
    settings: &BTreeMap<String, super::SettingSpec>,
    lookups: &[&str],
) -> Option<String> {
    if let Some(s) = name.strip_prefix("setting:") {
        return (!settings.contains_key(s))
            .then(|| format!("{{{name}}}: declare the setting as [settings.{s}]"));
    }
    if let Some(l) = name.strip_prefix("lookup.") {
        return (!lookups.contains(&l))
            .then(|| format!("{{{name}}}: no [[outbound.operation.lookup]] is named '{l}'"));
    }
    (!OUTBOUND_VALUES.contains(&name)).then(|| {
        format!(
            "{{{name}}} is not a value an outbound request can use ({})",
            OUTBOUND_VALUES.join(", ")
        )
    })
}

fn pointer_problem(pointer: &str, at: &str) -> Option<String> {
    (!pointer.is_empty() && !pointer.starts_with('/'))
        .then(|| format!("{at}: a JSON Pointer starts with '/' (RFC 6901)"))
}

/// Every string in a TOML body, with where it is.
fn strings_of<'a>(v: &'a toml::Value, at: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        toml::Value::String(s) => out.push((at.to_string(), s)),
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings_of(x, &format!("{at}[{i}]"), out);
            }
        }
        toml::Value::Table(t) => {
            // `$when` names a value without braces (checked apart, by `whens`).
            for (k, x) in t.iter().filter(|(k, _)| k.as_str() != "$when") {
                strings_of(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Every `$when` in a TOML body, with where it is.
fn whens(v: &toml::Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                whens(x, &format!("{at}[{i}]"), out);
            }
        }
        toml::Value::Table(t) => {
            for (k, x) in t {
                match (k.as_str(), x) {
                    ("$when", toml::Value::String(name)) => {
                        out.push((format!("{at}.$when"), name.clone()));
                    }
                    ("$when", _) => out.push((format!("{at}.$when"), String::new())),
                    _ => whens(x, &format!("{at}.{k}"), out),
                }
            }
        }
        _ => {}
    }
}
