//! The declarative engine: evaluates an adapter's mappings over a document tree and builds
//! canonical records. Pure: no IO, no clock. Every field problem is collected (not just the first)
//! with the canonical field path and the source path it was read from.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::error::FieldError;
use super::path::Scope;
use super::spec::{Expr, OrderMapping};
use super::tree::Node;
use crate::model::{
    ChannelKind, ChannelTaxLine, Customer, Discount, Money, Order, OrderId, OrderLine, OrderStatus,
    Revision, SettlementView, Totals,
};

mod collect;
mod fact;
mod listing;
mod value;

use collect::*;
pub use fact::map_fact;
pub use listing::map_listings;
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

/// Maps one order whose root is `scope.record`.
#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
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

    let customer = m.customer.as_ref().and_then(|c| {
        let customer = Customer {
            external_id: ev.text("customer.external_id", c.external_id.as_ref(), scope),
            email: ev.text("customer.email", c.email.as_ref(), scope),
            phone: ev.text("customer.phone", c.phone.as_ref(), scope),
            name: ev.text("customer.name", c.name.as_ref(), scope),
            key: None,
            age_band: ev.text("customer.age_band", c.age_band.as_ref(), scope),
            gender: ev.text("customer.gender", c.gender.as_ref(), scope),
        };
        let any = customer.external_id.is_some()
            || customer.email.is_some()
            || customer.phone.is_some()
            || customer.name.is_some();
        any.then_some(customer)
    });
    let billing_address = ev.address("billing_address", m.billing_address.as_ref(), scope);
    let shipping_address = ev.address("shipping_address", m.shipping_address.as_ref(), scope);

    // Everything below needs the currency; without it, report what we have.
    let Some(currency) = currency else {
        return Err(ev.errors);
    };

    let mut lines = Vec::new();
    let line_nodes = m.lines.each.0.elements(scope);
    if line_nodes.is_empty() {
        ev.fail(
            "lines",
            None,
            format!("no lines found at '{}'", m.lines.each.0),
        );
    }
    for (i, node) in line_nodes.into_iter().enumerate() {
        let s = scope.with_current(node);
        let l = &m.lines;
        if let Some(skip) = &l.skip_when
            && matches!(eval(skip, s), Ok(Some(_)))
        {
            continue;
        }
        let f = |name: &str| format!("lines[{i}].{name}");
        let line = (|| {
            let title = ev.req(&f("title"), &l.title, s, val_text);
            let quantity = ev.req(&f("quantity"), &l.quantity, s, val_quantity);
            let line_total = l
                .line_total
                .as_ref()
                .and_then(|spec| ev.money(&f("line_total"), spec, s, Some(currency)));
            let unit_price = match &l.unit_price {
                Some(spec) => ev.money(&f("unit_price"), spec, s, Some(currency)),
                // Only a line amount: the unit price is that amount over the quantity, rounded
                // half-up to the minor unit when it does not divide evenly.
                None => match (line_total, quantity) {
                    (Some(t), Some(q)) => {
                        let unit = (t.amount() / Decimal::from(q)).round_dp_with_strategy(
                            currency.minor_units(),
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        );
                        Money::new(unit, currency).ok()
                    }
                    _ => None,
                },
            };
            let discount = ev.money_or_zero(&f("discount"), l.discount.as_ref(), s, currency);
            let tax = ev.money_or_zero(&f("tax"), l.tax.as_ref(), s, currency);
            let line = OrderLine {
                line_id: ev.text(&f("line_id"), l.line_id.as_ref(), s),
                sku: ev.text(&f("sku"), l.sku.as_ref(), s),
                product_id: ev.text(&f("product_id"), l.product_id.as_ref(), s),
                // Tariff codes are often written with dots or spaces ("0902.10").
                hs_code: ev
                    .text(&f("hs_code"), l.hs_code.as_ref(), s)
                    .map(|h| h.replace(['.', ' '], "")),
                tax_class: ev.text(&f("tax_class"), l.tax_class.as_ref(), s),
                ship_from: ev.opt(&f("ship_from"), l.ship_from.as_ref(), s, val_country),
                origin_country: ev.opt(
                    &f("origin_country"),
                    l.origin_country.as_ref(),
                    s,
                    val_country,
                ),
                title: title?,
                quantity: quantity?,
                unit_price: unit_price?,
                line_total,
                discount: discount?,
                tax: tax?,
            };
            Some(line)
        })();
        if let Some(line) = line {
            lines.push(line);
        }
    }

    let mut discounts = Vec::new();
    if let Some(d) = &m.discounts {
        for (i, node) in d.each.0.elements(scope).into_iter().enumerate() {
            let s = scope.with_current(node);
            let code = ev.text(&format!("discounts[{i}].code"), d.code.as_ref(), s);
            if let Some(amount) = ev.money(
                &format!("discounts[{i}].amount"),
                &d.amount,
                s,
                Some(currency),
            ) {
                discounts.push(Discount { code, amount });
            }
        }
    }

    let mut tax_lines = Vec::new();
    if let Some(t) = &m.tax_lines {
        for (i, node) in t.each.0.elements(scope).into_iter().enumerate() {
            let s = scope.with_current(node);
            let f = |name: &str| format!("tax_lines[{i}].{name}");
            let title = ev.req(&f("title"), &t.title, s, val_text);
            let rate = ev.opt(&f("rate"), t.rate.as_ref(), s, val_decimal);
            let amount = ev.money(&f("amount"), &t.amount, s, Some(currency));
            let channel_liable =
                ev.opt(&f("channel_liable"), t.channel_liable.as_ref(), s, val_bool);
            if let (Some(title), Some(amount)) = (title, amount) {
                tax_lines.push(ChannelTaxLine {
                    title,
                    rate,
                    amount,
                    channel_liable,
                });
            }
        }
    }

    let totals = ev.totals(
        &m.totals,
        scope,
        currency,
        &lines,
        &discounts,
        taxes_included,
    );
    let mut charges = Decimal::ZERO;
    for (i, spec) in m.totals.charges.iter().enumerate() {
        if is_stated(spec, scope)
            && let Some(c) = ev.money(&format!("totals.charges[{i}]"), spec, scope, Some(currency))
        {
            charges += c.amount();
        }
    }

    // A settlement view exists only when the payload carries its currency (older payload shapes
    // have a single currency).
    let settlement = m.settlement.as_ref().and_then(|st| {
        let cur = ev.opt(
            "settlement.currency",
            Some(&st.currency),
            scope,
            val_currency,
        )?;
        let f = |n: &str| format!("settlement.totals.{n}");
        let subtotal = ev.money(&f("subtotal"), &st.subtotal, scope, Some(cur));
        let shipping = ev.money(&f("shipping"), &st.shipping, scope, Some(cur));
        let discount = ev.money(&f("discount"), &st.discount, scope, Some(cur));
        let tax = ev.money(&f("tax"), &st.tax, scope, Some(cur));
        let grand_total = ev.money(&f("grand_total"), &st.grand_total, scope, Some(cur));
        Some(SettlementView {
            currency: cur,
            totals: Totals {
                subtotal: subtotal?,
                shipping: shipping?,
                discount: discount?,
                tax: tax?,
                grand_total: grand_total?,
            },
        })
    });

    let mut payments = Vec::new();
    if let Some(p) = &m.payments {
        for (i, node) in p.each.0.elements(scope).into_iter().enumerate() {
            let parts = PaymentParts {
                id: p.id.as_ref(),
                gateway: p.gateway.as_ref(),
                status: &p.status,
                amount: &p.amount,
                refunded: None,
                processed_at: p.processed_at.as_ref(),
            };
            let s = scope.with_current(node);
            if let Some(payment) = ev.payment(&format!("payments[{i}]"), parts, s, Some(currency)) {
                payments.push(payment);
            }
        }
    }

    let mut shipments = Vec::new();
    if let Some(sh) = &m.shipments {
        for (i, node) in sh.each.0.elements(scope).into_iter().enumerate() {
            let parts = ShipmentParts {
                id: sh.id.as_ref(),
                carrier: sh.carrier.as_ref(),
                tracking_numbers: sh.tracking_numbers.as_ref(),
                status: &sh.status,
                shipped_at: sh.shipped_at.as_ref(),
            };
            let s = scope.with_current(node);
            if let Some(shipment) = ev.shipment(&format!("shipments[{i}]"), parts, s) {
                shipments.push(shipment);
            }
        }
    }

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
