//! Listings (one per variant) from a listing mapping.

use super::super::error::FieldError;
use super::super::path::Scope;
use super::super::spec::{Each, Expr, ListingMapping, StockMapping};
use super::super::tree::Node;
use crate::model::{Listing, ListingId, ListingStatus, Revision, StockLevel};

use super::*;

/// The record root of a listing or stock mapping and its items: one per element of `each`, or
/// the root itself. `None` (with the problem in `ev`) when the root is not there.
fn items_of<'a>(
    ev: &mut Eval,
    (root, each): (Option<&'a Expr>, Option<&'a Each>),
    doc: &'a Node<'a>,
    settings: &'a std::collections::BTreeMap<String, String>,
    absent: &'a [String],
) -> Option<(Scope<'a>, Vec<&'a Node<'a>>)> {
    let top = Scope::new(doc).with_absent(absent).with_settings(settings);
    let root = record_root(ev, root, top, each.is_some())?;
    let scope = top.with_record(root);
    let items = match each {
        Some(each) => each.0.elements(scope),
        None => vec![root],
    };
    Some((scope, items))
}

/// Maps a document to listings (one per element of `each`, or one for the root).
pub fn map_listings<'a>(
    m: &'a ListingMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Result<Vec<Listing>, Vec<FieldError>> {
    let mut ev = Eval::default();
    let Some((scope, items)) = items_of(
        &mut ev,
        (m.root.as_ref(), m.each.as_ref()),
        doc,
        ctx.settings,
        absent,
    ) else {
        return Err(ev.errors);
    };
    if items.is_empty() {
        ev.fail("listings", None, "no listings found".into());
    }
    let mut listings = Vec::new();
    for (i, node) in items.into_iter().enumerate() {
        let s = scope.with_current(node);
        let f = |name: &str| format!("listings[{i}].{name}");
        let external_id = ev.req(&f("external_id"), &m.external_id, s, val_text);
        let updated_at = ev.req(&f("revision.updated_at"), &m.updated_at, s, |v| {
            val_datetime(v, m.updated_at.date.as_ref(), s.settings)
        });
        let title = ev.req(&f("title"), &m.title, s, val_text);
        let status = ev.req(
            &f("status"),
            &m.status,
            s,
            parse_enum(
                "listing status",
                "active, inactive, draft, deleted",
                ListingStatus::parse,
            ),
        );
        let currency = ev.opt(&f("currency"), m.currency.as_ref(), s, val_currency);
        // A listing may have no price of its own (a variable product's variations do).
        let price = m
            .price
            .as_ref()
            .filter(|p| matches!(eval(&p.amount, s), Ok(Some(_)) | Err(_)))
            .and_then(|p| ev.money(&f("price"), p, s, currency));
        let rating_count = ev.opt(&f("rating_count"), m.rating_count.as_ref(), s, val_i64);
        let rating_average = ev.opt(
            &f("rating_average"),
            m.rating_average.as_ref(),
            s,
            val_decimal,
        );
        let rating_positive = ev.opt(
            &f("rating_positive"),
            m.rating_positive.as_ref(),
            s,
            val_i64,
        );
        let rating = match (rating_count, rating_average) {
            (Some(count), Some(average)) if count > 0 => Some(crate::model::RatingSummary {
                count: count as u64,
                average,
                scale: m.rating_scale.unwrap_or(5),
                positive: rating_positive.map(|p| p.clamp(0, count) as u64),
            }),
            _ => None,
        };
        let listing = Listing {
            id: ListingId::derive(ctx.instance, external_id.as_deref().unwrap_or_default()),
            instance: ctx.instance.to_string(),
            channel: ctx.channel.to_string(),
            channel_kind: ctx.channel_kind,
            account: ctx.account.to_string(),
            product_id: ev.text(&f("product_id"), m.product_id.as_ref(), s),
            sku: ev.text(&f("sku"), m.sku.as_ref(), s),
            description: ev.text(&f("description"), m.description.as_ref(), s),
            category: ev.text(&f("category"), m.category.as_ref(), s),
            brand: ev.text(&f("brand"), m.brand.as_ref(), s),
            stock: ev.opt(&f("stock"), m.stock.as_ref(), s, val_i64),
            stock_ref: ev.text(&f("stock_ref"), m.stock_ref.as_ref(), s),
            stock_levels: Vec::new(),
            price,
            external_id: external_id.unwrap_or_default(),
            revision: Revision {
                updated_at: updated_at.unwrap_or_default(),
                sequence: None,
            },
            title: title.unwrap_or_default(),
            status: status.unwrap_or(ListingStatus::Inactive),
            hs_code: ev
                .text(&f("hs_code"), m.hs_code.as_ref(), s)
                .map(|h| h.replace(['.', ' '], "")),
            tax_class: ev.text(&f("tax_class"), m.tax_class.as_ref(), s),
            rating,
        };
        listings.push(listing);
    }
    if ev.errors.is_empty() {
        Ok(listings)
    } else {
        Err(ev.errors)
    }
}

/// Maps a document to stock levels (one per element of `each`, or one for the root).
pub fn map_stock<'a>(
    m: &'a StockMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Result<Vec<StockLevel>, Vec<FieldError>> {
    let mut ev = Eval::default();
    let Some((scope, items)) = items_of(
        &mut ev,
        (m.root.as_ref(), m.each.as_ref()),
        doc,
        ctx.settings,
        absent,
    ) else {
        return Err(ev.errors);
    };
    let mut levels = Vec::new();
    for (i, node) in items.into_iter().enumerate() {
        let s = scope.with_current(node);
        let f = |name: &str| format!("stock[{i}].{name}");
        let stock_ref = ev.req(&f("stock_ref"), &m.stock_ref, s, val_text);
        let location = ev.text(&f("location"), m.location.as_ref(), s);
        let updated_at = ev.req(&f("revision.updated_at"), &m.updated_at, s, |v| {
            val_datetime(v, m.updated_at.date.as_ref(), s.settings)
        });
        let (stock_ref, location) = (stock_ref.unwrap_or_default(), location.unwrap_or_default());
        levels.push(StockLevel {
            id: StockLevel::id_for(ctx.instance, &stock_ref, &location),
            instance: ctx.instance.to_string(),
            channel: ctx.channel.to_string(),
            account: ctx.account.to_string(),
            available: ev.opt(&f("available"), m.available.as_ref(), s, val_i64),
            stock_ref,
            location,
            revision: Revision {
                updated_at: updated_at.unwrap_or_default(),
                sequence: None,
            },
        });
    }
    if ev.errors.is_empty() {
        Ok(levels)
    } else {
        Err(ev.errors)
    }
}
