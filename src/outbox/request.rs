//! An adapter's outbound operation and a command into the request the channel documents, and
//! the channel's answer into an attempt. Pure: no IO, the clock passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};

use super::command::{Action, AttemptOutcome, Command, Target};
use crate::adapter::spec::{OperationSpec, placeholders};
use crate::model::CommandField;

/// What a value placed in a path segment is escaped from: RFC 3986's reserved and unsafe
/// characters (letters, digits and `-._~` stay).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The key of a body object that names the value it needs to be sent.
pub const WHEN: &str = "$when";

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What a placeholder can read: the command, the fields this operation sends now, the
/// instance settings and the lookups made so far.
pub struct Values<'a> {
    pub cmd: &'a Command,
    pub op: &'a OperationSpec,
    /// The fields this request carries (the operation's, not yet confirmed).
    pub sending: &'a [CommandField],
    pub settings: &'a BTreeMap<String, String>,
    pub lookups: &'a BTreeMap<String, String>,
    pub now: DateTime<Utc>,
}

impl Values<'_> {
    /// The value a placeholder names; `None` when the command has none (the body key is left
    /// out). Errors only for names the adapter check lets through but the data lacks.
    fn get(&self, name: &str) -> Result<Option<Value>, String> {
        if let Some(key) = name.strip_prefix("setting:") {
            return Ok(self.settings.get(key).cloned().map(Value::String));
        }
        if let Some(key) = name.strip_prefix("lookup.") {
            return Ok(self.lookups.get(key).cloned().map(Value::String));
        }
        let text = |s: &str| Some(Value::String(s.to_string()));
        let opt = |s: &Option<String>| s.as_deref().and_then(text);
        let sends = |f: CommandField| self.sending.contains(&f);
        Ok(match (name, &self.cmd.target, &self.cmd.action) {
            ("command.id", _, _) => text(&self.cmd.id),
            // A positive number unique to the command (Amazon's numeric packageReferenceId).
            ("command.number", _, _) => Some(Value::String(
                self.cmd.created_at.timestamp_millis().to_string(),
            )),
            ("now", _, _) => text(&self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ("now_ms", _, _) => text(
                &self
                    .now
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            ("listing.id", Target::Listing { listing_id, .. }, _) => text(listing_id),
            ("listing.external_id", Target::Listing { external_id, .. }, _) => text(external_id),
            ("listing.product_id", Target::Listing { product_id, .. }, _) => opt(product_id),
            ("listing.sku", Target::Listing { sku, .. }, _) => opt(sku),
            ("listing.stock_ref", Target::Listing { stock_ref, .. }, _) => opt(stock_ref),
            ("order.id", Target::Order { order_id, .. }, _) => text(order_id),
            ("order.external_id", Target::Order { external_id, .. }, _) => text(external_id),
            ("stock", _, Action::Listing(c)) if sends(CommandField::Stock) => {
                c.stock.map(|n| Value::Number(n.into()))
            }
            ("price.amount", _, Action::Listing(c)) if sends(CommandField::Price) => c
                .price
                .as_ref()
                .map(|m| Value::String(m.amount().to_string())),
            ("price.currency", _, Action::Listing(c)) if sends(CommandField::Price) => c
                .price
                .as_ref()
                .map(|m| Value::String(m.currency().code().into())),
            ("status", _, Action::Listing(c)) if sends(CommandField::Status) => match c.status {
                None => None,
                Some(s) => Some(Value::String(
                    self.op
                        .status_values
                        .get(s.as_str())
                        .cloned()
                        .ok_or_else(|| format!("status_values has no word for '{}'", s.as_str()))?,
                )),
            },
            ("shipment.carrier", _, Action::Shipment(s)) => text(&s.carrier),
            ("shipment.tracking_number", _, Action::Shipment(s)) => text(&s.tracking_number),
            ("shipment.tracking_url", _, Action::Shipment(s)) => opt(&s.tracking_url),
            ("shipment.lines", _, Action::Shipment(s)) => Some(self.lines(s)),
            _ => None,
        })
    }

    fn lines(&self, s: &super::ShipmentConfirmation) -> Value {
        let key = |k: &str| {
            self.op
                .line_keys
                .get(k)
                .cloned()
                .unwrap_or_else(|| k.to_string())
        };
        Value::Array(
            s.lines
                .iter()
                .map(|l| {
                    let mut m = Map::new();
                    m.insert(key("line_id"), Value::String(l.line_id.clone()));
                    m.insert(key("quantity"), Value::Number(l.quantity.into()));
                    Value::Object(m)
                })
                .collect(),
        )
    }

    /// A path or query text with every placeholder filled in; each must have a value.
    pub fn text(&self, template: &str, in_path: bool) -> Result<String, String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        for ph in placeholders(template)? {
            let open = rest.find('{').expect("placeholders found it");
            let close = rest[open..].find('}').expect("placeholders found it") + open;
            out.push_str(&rest[..open]);
            // In a path every value must be there; in other text an optional value the
            // command lacks (a tracking URL) is left empty, a setting or lookup never.
            let required =
                in_path || ph.name.starts_with("setting:") || ph.name.starts_with("lookup.");
            let s = match self.get(ph.name)? {
                Some(Value::String(s)) => s,
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return Err(format!("{{{}}} is not a single value", ph.name)),
                None if required => {
                    return Err(format!("{{{}}} has no value for this command", ph.name));
                }
                None => String::new(),
            };
            if in_path {
                // One path segment: a SKU with a slash stays one segment (Amazon's listings
                // path takes the SKU URL-encoded).
                out.extend(percent_encoding::utf8_percent_encode(&s, PATH_SEGMENT));
            } else {
                out.push_str(&s);
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The JSON body: TOML values as JSON, placeholders filled in, absent values left out.
    pub fn body(&self, v: &toml::Value) -> Result<Option<Value>, String> {
        Ok(match v {
            toml::Value::String(s) => return self.string(s),
            toml::Value::Integer(i) => Some(Value::Number((*i).into())),
            toml::Value::Boolean(b) => Some(Value::Bool(*b)),
            toml::Value::Float(_) => {
                return Err("a body number with a fraction must be written as a string".into());
            }
            toml::Value::Datetime(d) => Some(Value::String(d.to_string())),
            toml::Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for x in a {
                    out.extend(self.body(x)?);
                }
                Some(Value::Array(out))
            }
            toml::Value::Table(t) => {
                // `"$when" = "stock"`: this object only when the command sends a stock level
                // (one patch of Amazon's list per field).
                if let Some(toml::Value::String(name)) = t.get(WHEN)
                    && self.get(name)?.is_none()
                {
                    return Ok(None);
                }
                let mut m = Map::new();
                for (k, x) in t.iter().filter(|(k, _)| k.as_str() != WHEN) {
                    if let Some(v) = self.body(x)? {
                        m.insert(k.clone(), v);
                    }
                }
                Some(Value::Object(m))
            }
        })
    }

    fn string(&self, s: &str) -> Result<Option<Value>, String> {
        let list = placeholders(s)?;
        let whole = list.len() == 1 && s.starts_with('{') && s.ends_with('}');
        if !whole {
            return self.text(s, false).map(|t| Some(Value::String(t)));
        }
        let ph = list[0];
        let Some(v) = self.get(ph.name)? else {
            // A field the command does not set is left out; a setting or lookup must be there.
            if ph.name.starts_with("setting:") || ph.name.starts_with("lookup.") {
                return Err(format!(
                    "{{{}}} has no value (is the setting set?)",
                    ph.name
                ));
            }
            return Ok(None);
        };
        if !ph.as_number {
            return Ok(Some(v));
        }
        let text = match &v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(format!("{{{}|number}} is not a number", ph.name)),
        };
        // Exact text (serde_json keeps a number's digits): an id or amount is never rounded.
        let n: Number = text
            .parse()
            .map_err(|_| format!("{{{}|number}} is not a number", ph.name))?;
        Ok(Some(Value::Number(n)))
    }
}

/// The request of an operation for a command.
pub fn build(v: &Values<'_>) -> Result<Built, String> {
    let path = v.text(&v.op.path, true)?;
    let query =
        v.op.query
            .iter()
            .map(|(k, t)| Ok((k.clone(), v.text(t, false)?)))
            .collect::<Result<Vec<_>, String>>()?;
    let body = match &v.op.body {
        Some(b) => Some(
            serde_json::to_vec(&v.body(b)?.unwrap_or(Value::Null)).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    Ok(Built { path, query, body })
}

/// What the channel answered, as the worker needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: AttemptOutcome,
    pub message: Option<String>,
    /// The channel's id of what it made (`reference`).
    pub reference: Option<String>,
    /// How long the channel asked to wait (429).
    pub retry_after: Option<Duration>,
}

/// The longest channel error text kept with an attempt.
const MESSAGE_MAX: usize = 300;

/// Reads a channel's answer to an operation.
pub fn judge(
    op: &OperationSpec,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Verdict {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let at = |p: &str| json.as_ref().and_then(|j| j.pointer(p));
    let message = || {
        let found = op.error.iter().find_map(|p| at(p)).map(as_text);
        Some(bounded(found.unwrap_or_else(|| format!("HTTP {status}"))))
    };
    let verdict = |outcome, message| Verdict {
        outcome,
        message,
        reference: None,
        retry_after: None,
    };
    match status {
        200..=299 => {
            if let Some(a) = &op.accept
                && at(&a.pointer).and_then(scalar).as_deref() != Some(a.equals.as_str())
            {
                return verdict(AttemptOutcome::Refused, message());
            }
            let reference = op.reference.as_deref().and_then(at).map(as_text);
            Verdict {
                reference,
                ..verdict(AttemptOutcome::Confirmed, None)
            }
        }
        429 => Verdict {
            retry_after,
            ..verdict(
                AttemptOutcome::Throttled,
                Some("429 Too Many Requests".into()),
            )
        },
        408 | 500..=599 => verdict(AttemptOutcome::Retryable, message()),
        _ => verdict(AttemptOutcome::Refused, message()),
    }
}

/// A string, number or boolean of a channel's answer as text (what `accept`, `where` and a
/// lookup compare and keep).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Any value of a channel's answer as text: a string as it is, anything else as JSON (an
/// error list, a numeric id).
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value a lookup's answer gives: at `pick`, or with `among`, at `pick` in the first
/// element of that list that matches `where`.
pub fn pick(body: &[u8], lookup: &crate::adapter::spec::LookupSpec) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let Some(list) = &lookup.among else {
        return json.pointer(&lookup.pick).and_then(scalar);
    };
    json.pointer(list)?.as_array()?.iter().find_map(|el| {
        let matches = lookup.matching.as_ref().is_none_or(|w| {
            el.pointer(&w.pointer).and_then(scalar).as_deref() == Some(w.equals.as_str())
        });
        if matches {
            el.pointer(&lookup.pick).and_then(scalar)
        } else {
            None
        }
    })
}

fn bounded(mut s: String) -> String {
    if s.len() > MESSAGE_MAX {
        let mut cut = MESSAGE_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
