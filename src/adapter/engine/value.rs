//! Values: evaluating an expression over the document, and reading its result as a decimal,
//! a quantity, a currency, a country or a date.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use rust_decimal::Decimal;

use super::super::path::Scope;
use super::super::spec::{DateFormat, Expr, ExprKind, Lookup, NamedDateFormat};
use super::super::tree::Node;
use crate::model::money::parse_decimal;
use crate::model::{CountryCode, CurrencyCode};

/// An evaluated expression.
#[derive(Debug, Clone)]
pub(super) enum Val<'a> {
    Node(&'a Node<'a>),
    Text(Cow<'a, str>),
    Decimal(Decimal),
}

impl Val<'_> {
    pub(super) fn text(&self) -> Result<Cow<'_, str>, String> {
        match self {
            Val::Node(n) => n
                .scalar_text()
                .map(Cow::Borrowed)
                .ok_or_else(|| format!("expected a text value, found {}", n.type_name())),
            Val::Text(t) => Ok(Cow::Borrowed(t.as_ref())),
            Val::Decimal(d) => Ok(Cow::Owned(d.to_string())),
        }
    }
}

pub(super) fn is_blank_val(v: &Val<'_>, absent: &[String]) -> bool {
    match v {
        Val::Node(n) => is_absent_node(n, absent),
        Val::Text(t) => t.trim().is_empty(),
        Val::Decimal(_) => false,
    }
}

/// Missing-like: null, blank, or one of the channel's "no value" texts.
pub(super) fn is_absent_node(n: &Node<'_>, absent: &[String]) -> bool {
    n.is_blank()
        || (!absent.is_empty()
            && n.scalar_text()
                .is_some_and(|t| absent.iter().any(|a| a == t.trim())))
}

/// Evaluates an expression; `Ok(None)` when the value is absent (missing, null or blank).
pub(super) fn eval<'a>(e: &'a Expr, scope: Scope<'a>) -> Result<Option<Val<'a>>, String> {
    let base = match &e.kind {
        ExprKind::Path(p) => p.get(scope).map(Val::Node),
        ExprKind::Value(v) => Some(Val::Text(Cow::Borrowed(v.as_str()))),
        ExprKind::Coalesce(items) => {
            let mut found = None;
            for item in items {
                if let Some(v) = eval(item, scope)? {
                    found = Some(v);
                    break;
                }
            }
            found
        }
        ExprKind::Sum(p) => {
            let mut total = Decimal::ZERO;
            for node in p
                .get_all(scope)
                .into_iter()
                .filter(|n| !is_absent_node(n, scope.absent))
            {
                let d = node_decimal(node)?;
                total = total
                    .checked_add(d)
                    .ok_or_else(|| "sum is out of range".to_string())?;
            }
            Some(Val::Decimal(total))
        }
        ExprKind::Join { parts, sep } => {
            let mut texts = Vec::new();
            for part in parts {
                if let Some(v) = eval(part, scope)? {
                    texts.push(v.text()?.trim().to_string());
                }
            }
            (!texts.is_empty()).then(|| Val::Text(Cow::Owned(texts.join(sep))))
        }
        ExprKind::Difference(a, b) => match (eval(a, scope)?, eval(b, scope)?) {
            (Some(x), Some(y)) => Some(Val::Decimal(
                val_decimal(&x)?
                    .checked_sub(val_decimal(&y)?)
                    .ok_or_else(|| "difference is out of range".to_string())?,
            )),
            _ => None,
        },
        ExprKind::Setting(name) => scope
            .settings
            .get(name)
            .map(|v| Val::Text(Cow::Borrowed(v.as_str()))),
        ExprKind::When { path, then } => {
            let hit = match path.get(scope) {
                None => false,
                Some(Node::Bool(b)) => *b,
                Some(n) => !is_absent_node(n, scope.absent) && n.scalar_text() != Some("false"),
            };
            hit.then_some(Val::Text(Cow::Borrowed(then.as_str())))
        }
    };
    let base = base.filter(|v| {
        !is_blank_val(v, scope.absent)
            && (e.absent_if.is_empty()
                || !v
                    .text()
                    .is_ok_and(|t| e.absent_if.iter().any(|a| a == t.trim())))
    });
    let base = match (e.lookup, base) {
        (Some(Lookup::CountryName), Some(v)) => {
            let text = v.text()?.trim().to_string();
            // A value that is already a code, or no known name, is left for validation to judge.
            match CountryCode::from_name(&text) {
                Ok(c) if text.len() > 2 => Some(Val::Text(Cow::Owned(c.as_str().to_string()))),
                _ => Some(v),
            }
        }
        (_, v) => v,
    };
    let mapped = match (&e.map, base) {
        (Some(map), Some(v)) => {
            let key = v.text()?;
            map.get(key.trim())
                .map(|m| Val::Text(Cow::Borrowed(m.as_str())))
        }
        (_, v) => v,
    };
    Ok(mapped.or_else(|| {
        e.default
            .as_ref()
            .map(|d| Val::Text(Cow::Borrowed(d.as_str())))
    }))
}

/// Why a required expression came out absent: "is required but missing", unless a `map` got
/// a value it does not list (then that, with what the map lists; the value itself is payload
/// and is not quoted).
pub(super) fn why_missing(e: &Expr, scope: Scope<'_>) -> String {
    unlisted(e, scope).unwrap_or_else(|| "is required but missing".into())
}

fn unlisted(e: &Expr, scope: Scope<'_>) -> Option<String> {
    if let ExprKind::Coalesce(items) = &e.kind
        && let Some(found) = items.iter().find_map(|i| unlisted(i, scope))
    {
        return Some(found);
    }
    let map = e.map.as_ref()?;
    let mut bare = e.clone();
    bare.map = None;
    bare.default = None;
    matches!(eval(&bare, scope), Ok(Some(_))).then(|| {
        let known: Vec<&str> = map.keys().map(String::as_str).collect();
        format!(
            "has a value that `map` does not list (it lists: {}); add it to `map` or give a `default`",
            known.join(", ")
        )
    })
}

pub(super) fn node_decimal(n: &Node) -> Result<Decimal, String> {
    match n {
        Node::Number(t) | Node::String(t) => parse_decimal(t.trim()).map_err(|e| match e {
            crate::model::MoneyError::OutOfRange => "number is out of range".to_string(),
            _ => "is not a plain decimal number".to_string(),
        }),
        other => Err(format!("expected a number, found {}", other.type_name())),
    }
}

pub(super) fn val_decimal(v: &Val<'_>) -> Result<Decimal, String> {
    match v {
        Val::Decimal(d) => Ok(*d),
        Val::Node(n) => node_decimal(n),
        Val::Text(t) => node_decimal(&Node::String(Cow::Borrowed(t.as_ref()))),
    }
}

pub(super) fn val_text(v: &Val<'_>) -> Result<String, String> {
    v.text().map(|t| t.trim().to_string())
}

pub(super) fn val_quantity(v: &Val<'_>) -> Result<u32, String> {
    let d = val_decimal(v).map_err(|_| "must be a whole number".to_string())?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err("is negative; quantities must be at least 1".into());
    }
    if d.fract() != Decimal::ZERO {
        return Err("is not a whole number".into());
    }
    let q = u32::try_from(d.mantissa() / 10i128.pow(d.scale()))
        .map_err(|_| "is too large".to_string())?;
    if q == 0 {
        return Err("must be at least 1".into());
    }
    Ok(q)
}

pub(super) fn val_i64(v: &Val<'_>) -> Result<i64, String> {
    let d = val_decimal(v)?;
    if d.fract() != Decimal::ZERO {
        return Err("is not a whole number".into());
    }
    i64::try_from(d.trunc()).map_err(|_| "is out of range".to_string())
}

pub(super) fn val_bool(v: &Val<'_>) -> Result<bool, String> {
    if let Val::Node(Node::Bool(b)) = v {
        return Ok(*b);
    }
    match val_text(v)?.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err("is not a boolean".into()),
    }
}

pub(super) fn val_currency(v: &Val<'_>) -> Result<CurrencyCode, String> {
    // Some channels (Stripe) send lower-case codes; upper-casing is the only leniency.
    let t = val_text(v)?;
    CurrencyCode::parse(&t.to_ascii_uppercase()).map_err(|e| e.to_string())
}

pub(super) fn val_country(v: &Val<'_>) -> Result<CountryCode, String> {
    CountryCode::parse(&val_text(v)?).map_err(|e| e.to_string())
}

pub(super) fn val_datetime(
    v: &Val<'_>,
    format: Option<&DateFormat>,
    settings: &BTreeMap<String, String>,
) -> Result<DateTime<FixedOffset>, String> {
    let format = format.unwrap_or(&DateFormat::Named(NamedDateFormat::Rfc3339));
    match format {
        DateFormat::Named(NamedDateFormat::Rfc3339) => {
            let text = val_text(v)?;
            // RFC 3339, or the ISO 8601 basic offset (`+0000`) the Graph API and others send.
            DateTime::parse_from_rfc3339(&text)
                .or_else(|_| DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z"))
                .map_err(|_| "is not an RFC 3339 / ISO 8601 date-time with offset".into())
        }
        DateFormat::Named(NamedDateFormat::Rfc2822) => DateTime::parse_from_rfc2822(&val_text(v)?)
            .map_err(|_| "is not an RFC 2822 date-time".into()),
        DateFormat::Named(NamedDateFormat::Unix) => {
            let secs = val_i64(v).map_err(|e| format!("unix seconds {e}"))?;
            DateTime::from_timestamp(secs, 0)
                .map(|d| d.fixed_offset())
                .ok_or_else(|| "unix seconds out of range".into())
        }
        DateFormat::Named(NamedDateFormat::UnixMs) => {
            let ms = val_i64(v).map_err(|e| format!("unix milliseconds {e}"))?;
            DateTime::from_timestamp_millis(ms)
                .map(|d| d.fixed_offset())
                .ok_or_else(|| "unix milliseconds out of range".into())
        }
        DateFormat::Pattern(p) => {
            // `zone = "setting:<name>"` reads the zone from the instance settings (a shop's own
            // time zone).
            let zone_name = match p.zone.strip_prefix("setting:") {
                Some(name) => settings
                    .get(name)
                    .ok_or_else(|| {
                        format!("the instance has no '{name}' setting for the time zone")
                    })?
                    .as_str(),
                None => p.zone.as_str(),
            };
            let zone: chrono_tz::Tz = zone_name
                .parse()
                .map_err(|_| format!("unknown time zone '{zone_name}'"))?;
            let naive = NaiveDateTime::parse_from_str(&val_text(v)?, &p.pattern)
                .map_err(|_| format!("does not match the pattern '{}'", p.pattern))?;
            zone.from_local_datetime(&naive)
                .single()
                .map(|d| d.fixed_offset())
                .ok_or_else(|| format!("is not a single instant in {zone_name}"))
        }
    }
}

pub(super) fn describe(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Path(p) => p.as_str().to_string(),
        ExprKind::Value(_) => "value".into(),
        ExprKind::Coalesce(items) => {
            let inner: Vec<String> = items.iter().map(describe).collect();
            format!("coalesce({})", inner.join(", "))
        }
        ExprKind::Sum(p) => format!("sum({p})"),
        ExprKind::Join { parts, .. } => {
            let inner: Vec<String> = parts.iter().map(describe).collect();
            format!("join({})", inner.join(", "))
        }
        ExprKind::When { path, .. } => format!("when({path})"),
        ExprKind::Setting(name) => format!("setting({name})"),
        ExprKind::Difference(a, b) => format!("difference({}, {})", describe(a), describe(b)),
    }
}
