//! The declarative engine: evaluates an adapter's mappings over a document tree and builds
//! canonical records. Pure: no IO, no clock. Every field problem is collected (not just the first)
//! with the canonical field path and the source path it was read from.

use std::collections::BTreeMap;

use super::error::FieldError;
use super::path::Scope;
use super::spec::{Expr, ExprKind, OrderMapping};
use super::tree::Node;
use crate::model::{ChannelKind, Order, OrderId, OrderStatus, Revision};

mod collect;
mod fact;
mod listing;
mod order;
mod value;

use collect::*;
pub use fact::map_fact;
pub use listing::{map_listings, map_stock};
use value::*;

/// Who the records belong to; set by the gateway from the channel instance.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    pub instance: &'a str,
    pub channel: &'a str,
    pub channel_kind: ChannelKind,
    pub account: &'a str,
    /// The instance's `settings` from the gateway config.
    pub settings: &'a BTreeMap<String, String>,
    /// When the gateway received the payload: dates far after it are refused.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Finds the record root an optional `root` expression points at (default: the document).
fn record_root<'a>(
    ev: &mut Eval,
    root: Option<&'a Expr>,
    top: Scope<'a>,
    array_ok: bool,
) -> Option<&'a Node<'a>> {
    let Some(e) = root else {
        return Some(top.document);
    };
    if array_ok && let Some(page) = empty_page(e, top) {
        return Some(page);
    }
    match eval(e, top) {
        Ok(Some(Val::Node(n @ Node::Object(_)))) => Some(n),
        // With `each`, the root may be the array itself (`{"orders": [...]}`).
        Ok(Some(Val::Node(n @ Node::Array(_)))) if array_ok => Some(n),
        Ok(Some(_)) => {
            ev.fail("root", Some(e), "expected an object".into());
            None
        }
        Ok(None) => {
            ev.fail("root", Some(e), "is required but missing".into());
            None
        }
        Err(p) => {
            ev.fail("root", Some(e), p);
            None
        }
    }
}

/// With `each`, an empty array at the root is a page of no records (an idle channel's poll),
/// not a missing root: the first path of the root expression that exists, when it is `[]` (or
/// an empty XML element).
/// (Evaluation counts an empty array as absent, which made such pages "required but missing",
/// or, behind a `"$"` fallback, mapped the page object itself as an order.)
fn empty_page<'a>(e: &'a Expr, scope: Scope<'a>) -> Option<&'a Node<'a>> {
    let paths: Vec<&Expr> = match &e.kind {
        ExprKind::Coalesce(items) => items.iter().collect(),
        _ => vec![e],
    };
    for item in paths {
        let ExprKind::Path(p) = &item.kind else {
            return None;
        };
        if let Some(node) = p.get(scope) {
            // An XML list element without children (eBay's `<OrderArray/>`) reads as empty text.
            let empty = match node {
                Node::Array(a) => a.is_empty(),
                Node::String(s) => s.trim().is_empty(),
                _ => false,
            };
            return empty.then_some(node);
        }
    }
    None
}

/// Maps a document to its orders: one, or one per element of `each`. Each result carries every
/// problem of that order, with its field path.
pub fn map_orders<'a>(
    m: &'a OrderMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Vec<Result<Order, Vec<FieldError>>> {
    let mut ev = Eval::default();
    let top = Scope::new(doc)
        .with_absent(absent)
        .with_settings(ctx.settings);
    let Some(root) = record_root(&mut ev, m.root.as_ref(), top, m.each.is_some()) else {
        return vec![Err(ev.errors)];
    };
    let Some(each) = &m.each else {
        return vec![map_order(m, top.with_record(root), ctx)];
    };
    // An array (even an empty page) gives one order per element; when the path is absent
    // the root itself is the one order, so one mapping reads single orders and list pages.
    let scope = top.with_record(root);
    let items = if each.0.has_wildcard() || each.0.get(scope).is_some() {
        each.0.elements(scope)
    } else {
        vec![root]
    };
    items
        .into_iter()
        .map(|item| map_order(m, top.with_record(item), ctx))
        .collect()
}

/// Maps one order whose root is `scope.record`: its own fields, then each part
/// ([`order`]), then the order with its totals checked.
fn map_order(
    m: &OrderMapping,
    scope: Scope<'_>,
    ctx: &RecordContext<'_>,
) -> Result<Order, Vec<FieldError>> {
    let mut ev = Eval::default();

    let external_id = ev.req("external_id", &m.external_id, scope, val_text);
    let number = ev.text("number", m.number.as_ref(), scope);
    let updated_at = ev.req("revision.updated_at", &m.updated_at, scope, |v| {
        val_datetime(v, m.updated_at.date.as_ref(), scope.settings)
    });
    let sequence = ev.opt("revision.sequence", m.sequence.as_ref(), scope, |v| {
        val_i64(v).and_then(|i| u64::try_from(i).map_err(|_| "must not be negative".into()))
    });
    let placed_at = ev.req("placed_at", &m.placed_at, scope, |v| {
        val_datetime(v, m.placed_at.date.as_ref(), scope.settings)
    });
    let status = ev.req(
        "status",
        &m.status,
        scope,
        parse_enum(
            "order status",
            "created, paid, fulfilled, delivered, cancelled, partially_refunded, refunded",
            OrderStatus::parse,
        ),
    );
    let currency = ev.req("currency", &m.currency, scope, val_currency);
    let taxes_included = ev
        .opt("taxes_included", m.taxes_included.as_ref(), scope, val_bool)
        .unwrap_or(false);

    let customer = m
        .customer
        .as_ref()
        .and_then(|c| order::customer(&mut ev, c, scope));
    let billing_address = ev.address("billing_address", m.billing_address.as_ref(), scope);
    let shipping_address = ev.address("shipping_address", m.shipping_address.as_ref(), scope);

    // Everything below needs the currency; without it, report what we have.
    let Some(currency) = currency else {
        return Err(ev.errors);
    };

    let lines = order::lines(&mut ev, &m.lines, scope, currency);
    let discounts = m
        .discounts
        .as_ref()
        .map_or_else(Vec::new, |d| order::discounts(&mut ev, d, scope, currency));
    let tax_lines = m
        .tax_lines
        .as_ref()
        .map_or_else(Vec::new, |t| order::tax_lines(&mut ev, t, scope, currency));

    let totals = ev.totals(
        &m.totals,
        scope,
        currency,
        &lines,
        &discounts,
        taxes_included,
    );
    let charges = order::charges(&mut ev, &m.totals, scope, currency);
    let settlement = m
        .settlement
        .as_ref()
        .and_then(|st| order::settlement(&mut ev, st, scope));
    let payments = m
        .payments
        .as_ref()
        .map_or_else(Vec::new, |p| order::payments(&mut ev, p, scope, currency));
    let shipments = m
        .shipments
        .as_ref()
        .map_or_else(Vec::new, |sh| order::shipments(&mut ev, sh, scope));

    if !ev.errors.is_empty() {
        return Err(ev.errors);
    }
    let (Some(external_id), Some(updated_at), Some(placed_at), Some(status), Some(totals)) =
        (external_id, updated_at, placed_at, status, totals)
    else {
        // Every None above recorded an error, except arithmetic overflow in derived totals.
        return Err(vec![FieldError {
            field: "totals".into(),
            source: None,
            problem: "derived totals are out of range".into(),
        }]);
    };
    let mut order = Order {
        id: OrderId::derive(ctx.instance, &external_id),
        instance: ctx.instance.to_string(),
        channel: ctx.channel.to_string(),
        channel_kind: ctx.channel_kind,
        account: ctx.account.to_string(),
        external_id,
        number,
        revision: Revision {
            updated_at,
            sequence,
        },
        status,
        placed_at,
        currency,
        taxes_included,
        customer,
        billing_address,
        shipping_address,
        lines,
        discounts,
        tax_lines,
        totals,
        settlement,
        payments,
        shipments,
        holds: Vec::new(),
        payment_reconciliation: None,
    };
    order.holds = order.totals_mismatches(m.totals.tolerance_minor_units_per_line, charges);
    Ok(order)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::adapter::spec::DateFormat;
    use crate::adapter::tree::parse_json;

    fn expr(toml_value: &str) -> Expr {
        #[derive(serde::Deserialize)]
        struct W {
            e: Expr,
        }
        toml::from_str::<W>(&format!("e = {toml_value}")).unwrap().e
    }

    fn eval_text(e: &Expr, doc: &Node) -> Option<String> {
        eval(e, Scope::new(doc))
            .unwrap()
            .map(|v| v.text().unwrap().into_owned())
    }

    #[test]
    fn an_unlisted_value_is_not_called_missing() {
        let doc = parse_json(br#"{"state": "ON_HOLD", "other": "x"}"#).unwrap();
        let e = expr(r#"{ path = "state", map = { PAID = "paid", SHIPPED = "fulfilled" } }"#);
        assert_eq!(eval_text(&e, &doc), None, "unmapped is absent, as before");
        let why = why_missing(&e, Scope::new(&doc));
        assert!(
            why.contains("does not list (it lists: PAID, SHIPPED)"),
            "{why}"
        );
        assert!(
            !why.contains("ON_HOLD"),
            "the payload value is not quoted: {why}"
        );
        let gone = expr(r#"{ path = "nothing", map = { PAID = "paid" } }"#);
        assert_eq!(
            why_missing(&gone, Scope::new(&doc)),
            "is required but missing"
        );
    }

    #[test]
    fn expressions() {
        let doc = parse_json(
            br#"{"a":"x","b":null,"c":"","cancelled_at":"2024-01-01","st":"paid","n":[{"v":"1.10"},{"v":"2.25"}],"f":"Bob","l":"Norman","flag":false}"#,
        )
        .unwrap();
        assert_eq!(eval_text(&expr(r#""a""#), &doc).as_deref(), Some("x"));
        assert_eq!(eval_text(&expr(r#""b""#), &doc), None);
        assert_eq!(eval_text(&expr(r#""c""#), &doc), None, "blank is absent");
        assert_eq!(
            eval_text(&expr(r#"{ coalesce = ["b", "c", "a"] }"#), &doc).as_deref(),
            Some("x")
        );
        assert_eq!(
            eval_text(&expr(r#"{ sum = "n[*].v" }"#), &doc).as_deref(),
            Some("3.35")
        );
        assert_eq!(
            eval_text(&expr(r#"{ sum = "missing[*].v" }"#), &doc).as_deref(),
            Some("0")
        );
        assert_eq!(
            eval_text(&expr(r#"{ join = ["f", "l", "b"] }"#), &doc).as_deref(),
            Some("Bob Norman")
        );
        assert_eq!(
            eval_text(
                &expr(r#"{ when = "cancelled_at", then = "cancelled" }"#),
                &doc
            )
            .as_deref(),
            Some("cancelled")
        );
        assert_eq!(
            eval_text(&expr(r#"{ when = "flag", then = "yes" }"#), &doc),
            None
        );
        assert_eq!(
            eval_text(&expr(r#"{ path = "st", map = { paid = "paid" } }"#), &doc).as_deref(),
            Some("paid")
        );
        assert_eq!(
            eval_text(&expr(r#"{ path = "a", map = { paid = "paid" } }"#), &doc),
            None,
            "unmapped is absent"
        );
        assert_eq!(
            eval_text(&expr(r#"{ path = "b", default = "created" }"#), &doc).as_deref(),
            Some("created")
        );
        assert_eq!(
            eval_text(&expr(r#"{ value = 0 }"#), &doc).as_deref(),
            Some("0")
        );
    }

    #[test]
    fn bad_expressions_are_rejected_when_read() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct W {
            e: Expr,
        }
        for bad in [
            r#"e = { path = "a", value = "b" }"#,
            r#"e = { }"#,
            r#"e = "a..b""#,
            r#"e = "items[*].x""#,
            r#"e = { when = "a" }"#,
            r#"e = { path = "a", sep = "," }"#,
            r#"e = { path = "a", unknown = 1 }"#,
        ] {
            assert!(toml::from_str::<W>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conversions() {
        let q = |s: &str| val_quantity(&Val::Node(&Node::Number(s.into())));
        assert_eq!(q("3"), Ok(3));
        assert_eq!(q("3.0"), Ok(3));
        assert!(q("-1").unwrap_err().contains("negative"));
        assert!(q("0").is_err());
        assert!(q("1.5").is_err());
        assert!(q("99999999999").is_err());
        let dt = |s: &str, f: &str| {
            let fmt: DateFormat = serde_json::from_str(f).unwrap();
            val_datetime(
                &Val::Text(Cow::Owned(s.into())),
                Some(&fmt),
                &BTreeMap::new(),
            )
            .map(|d| d.to_rfc3339())
        };
        assert_eq!(
            dt("2008-01-10T11:00:00-05:00", r#""rfc3339""#).unwrap(),
            "2008-01-10T11:00:00-05:00"
        );
        assert_eq!(
            dt("Tue, 1 Jul 2003 10:52:37 +0200", r#""rfc2822""#).unwrap(),
            "2003-07-01T10:52:37+02:00"
        );
        assert_eq!(
            dt("1695600000", r#""unix""#).unwrap(),
            "2023-09-25T00:00:00+00:00"
        );
        assert_eq!(
            dt(
                "2024-03-05 10:00:00",
                r#"{"pattern":"%Y-%m-%d %H:%M:%S","zone":"Asia/Shanghai"}"#
            )
            .unwrap(),
            "2024-03-05T10:00:00+08:00"
        );
        assert_eq!(
            dt(
                "20240305100000",
                r#"{"pattern":"%Y%m%d%H%M%S","zone":"Asia/Shanghai"}"#
            )
            .unwrap(),
            "2024-03-05T10:00:00+08:00"
        );
        assert!(dt("2024-02-30T00:00:00Z", r#""rfc3339""#).is_err());
        assert!(dt("2024-01-01 00:00:00", r#""rfc3339""#).is_err());
        assert_eq!(
            val_currency(&Val::Text(Cow::Borrowed("usd")))
                .unwrap()
                .code(),
            "USD"
        );
    }
}
