//! The parts of an order mapping: customer, lines, discounts, channel tax lines, charges, the
//! settlement view, payments and shipments. Each reads its part and records every problem in
//! the collector; `map_order` assembles them.

use rust_decimal::Decimal;

use super::super::path::Scope;
use super::super::spec::{
    CustomerMapping, DiscountsMapping, LinesMapping, PaymentsMapping, SettlementMapping,
    ShipmentsMapping, TaxLinesMapping, TotalsMapping,
};
use super::*;
use crate::model::{
    ChannelTaxLine, CurrencyCode, Customer, Discount, Money, OrderLine, Payment, SettlementView,
    Shipment, Totals,
};

/// The customer, when the payload names one by any of id, email, phone or name.
pub(super) fn customer(ev: &mut Eval, c: &CustomerMapping, scope: Scope<'_>) -> Option<Customer> {
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
}

/// Every line (an order without lines is a field error); lines matching `skip_when` are left
/// out.
pub(super) fn lines(
    ev: &mut Eval,
    l: &LinesMapping,
    scope: Scope<'_>,
    currency: CurrencyCode,
) -> Vec<OrderLine> {
    let nodes = l.each.0.elements(scope);
    if nodes.is_empty() {
        ev.fail("lines", None, format!("no lines found at '{}'", l.each.0));
    }
    let mut lines = Vec::new();
    for (i, node) in nodes.into_iter().enumerate() {
        let s = scope.with_current(node);
        if let Some(skip) = &l.skip_when
            && matches!(eval(skip, s), Ok(Some(_)))
        {
            continue;
        }
        if let Some(line) = line(ev, l, s, i, currency) {
            lines.push(line);
        }
    }
    lines
}

/// Line `i`, or `None` when a required field is missing (recorded in the collector).
fn line(
    ev: &mut Eval,
    l: &LinesMapping,
    s: Scope<'_>,
    i: usize,
    currency: CurrencyCode,
) -> Option<OrderLine> {
    let f = |name: &str| format!("lines[{i}].{name}");
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
    Some(OrderLine {
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
    })
}

pub(super) fn discounts(
    ev: &mut Eval,
    d: &DiscountsMapping,
    scope: Scope<'_>,
    currency: CurrencyCode,
) -> Vec<Discount> {
    let mut discounts = Vec::new();
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
    discounts
}

/// The taxes the channel itself lists.
pub(super) fn tax_lines(
    ev: &mut Eval,
    t: &TaxLinesMapping,
    scope: Scope<'_>,
    currency: CurrencyCode,
) -> Vec<ChannelTaxLine> {
    let mut tax_lines = Vec::new();
    for (i, node) in t.each.0.elements(scope).into_iter().enumerate() {
        let s = scope.with_current(node);
        let f = |name: &str| format!("tax_lines[{i}].{name}");
        let title = ev.req(&f("title"), &t.title, s, val_text);
        let rate = ev.opt(&f("rate"), t.rate.as_ref(), s, val_decimal);
        let amount = ev.money(&f("amount"), &t.amount, s, Some(currency));
        let channel_liable = ev.opt(&f("channel_liable"), t.channel_liable.as_ref(), s, val_bool);
        if let (Some(title), Some(amount)) = (title, amount) {
            tax_lines.push(ChannelTaxLine {
                title,
                rate,
                amount,
                channel_liable,
            });
        }
    }
    tax_lines
}

/// The sum of the adapter's declared charges that the payload states (they are part of the
/// grand total besides subtotal, shipping, discount and tax).
pub(super) fn charges(
    ev: &mut Eval,
    totals: &TotalsMapping,
    scope: Scope<'_>,
    currency: CurrencyCode,
) -> Decimal {
    let mut charges = Decimal::ZERO;
    for (i, spec) in totals.charges.iter().enumerate() {
        if is_stated(spec, scope)
            && let Some(c) = ev.money(&format!("totals.charges[{i}]"), spec, scope, Some(currency))
        {
            charges += c.amount();
        }
    }
    charges
}

/// A settlement view exists only when the payload carries its currency (older payload shapes
/// have a single currency).
pub(super) fn settlement(
    ev: &mut Eval,
    st: &SettlementMapping,
    scope: Scope<'_>,
) -> Option<SettlementView> {
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
}

pub(super) fn payments(
    ev: &mut Eval,
    p: &PaymentsMapping,
    scope: Scope<'_>,
    currency: CurrencyCode,
) -> Vec<Payment> {
    let parts = PaymentParts {
        id: p.id.as_ref(),
        gateway: p.gateway.as_ref(),
        status: &p.status,
        amount: &p.amount,
        refunded: None,
        processed_at: p.processed_at.as_ref(),
    };
    let mut payments = Vec::new();
    for (i, node) in p.each.0.elements(scope).into_iter().enumerate() {
        let s = scope.with_current(node);
        if let Some(payment) = ev.payment(&format!("payments[{i}]"), parts, s, Some(currency)) {
            payments.push(payment);
        }
    }
    payments
}

pub(super) fn shipments(ev: &mut Eval, sh: &ShipmentsMapping, scope: Scope<'_>) -> Vec<Shipment> {
    let parts = ShipmentParts {
        id: sh.id.as_ref(),
        carrier: sh.carrier.as_ref(),
        tracking_numbers: sh.tracking_numbers.as_ref(),
        status: &sh.status,
        shipped_at: sh.shipped_at.as_ref(),
    };
    let mut shipments = Vec::new();
    for (i, node) in sh.each.0.elements(scope).into_iter().enumerate() {
        let s = scope.with_current(node);
        if let Some(shipment) = ev.shipment(&format!("shipments[{i}]"), parts, s) {
            shipments.push(shipment);
        }
    }
    shipments
}
