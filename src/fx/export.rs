//! The FX log as finance exports it: which entries (filters, parts), the row a spreadsheet
//! gets (CSV through the `csv` crate; one row per conversion, joinable to the merchant's books
//! by channel, instance, account and order number), and the one read of the store every
//! export path uses.

use serde::{Deserialize, Serialize};

use super::book::Leg;
use super::log::{self, FxEntry, OrderRef};
use super::store::FxStore;
use crate::store::{Store, StoreError};
use chrono::NaiveDate;

/// Which parts of each order an export carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parts {
    /// The order's grand total only: one row per order and reporting currency (the amount
    /// the books carry; every other part is a piece of it).
    #[default]
    GrandTotal,
    /// Every converted part: subtotal, shipping, discount, tax, grand total and each line.
    All,
}

impl std::str::FromStr for Parts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grand_total" => Ok(Parts::GrandTotal),
            "all" => Ok(Parts::All),
            _ => Err("parts must be grand_total or all".into()),
        }
    }
}

/// Which entries an export wants.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Rate date (the business date of the conversion), inclusive.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Either side of the conversion.
    pub currency: Option<String>,
    /// The gateway's order id, or the channel's order number (with or without its `#`) or
    /// order id.
    pub order: Option<String>,
    pub channel: Option<String>,
    pub instance: Option<String>,
    pub parts: Parts,
}

impl LogFilter {
    /// Every part of every entry (what verification reads).
    pub fn everything() -> Self {
        LogFilter {
            parts: Parts::All,
            ..Default::default()
        }
    }

    pub fn matches(&self, e: &FxEntry) -> bool {
        let order = e.order.as_ref();
        let field = |want: &Option<String>, get: fn(&OrderRef) -> &str| {
            want.as_deref()
                .is_none_or(|w| order.is_some_and(|o| get(o) == w))
        };
        self.from.is_none_or(|f| e.rate_date >= f)
            && self.to.is_none_or(|t| e.rate_date <= t)
            && self
                .currency
                .as_deref()
                .is_none_or(|c| e.from.currency().code() == c || e.to.currency().code() == c)
            && self.order.as_deref().is_none_or(|o| {
                e.order_id == o
                    || order.is_some_and(|r| r.number == o || r.number == format!("#{o}"))
            })
            && field(&self.channel, |o| &o.channel)
            && field(&self.instance, |o| &o.instance)
            && (self.parts == Parts::All || e.part == log::GRAND_TOTAL)
    }
}

/// One exported conversion: the entry and the entry that superseded it, if any.
pub type ExportItem = (FxEntry, Option<String>);

/// True when a conversion is from a currency to itself (EUR→EUR at 1): kept in the log so
/// every order has a row per reporting currency, marked so finance can leave it out.
pub fn is_identity(e: &FxEntry) -> bool {
    e.from.currency() == e.to.currency()
}

/// Every entry the filter selects, with the entry that superseded each, from one read of the
/// log (what the streamed exports and the CLI send).
pub async fn export_all<S: Store + FxStore>(
    store: &S,
    filter: &LogFilter,
) -> Result<Vec<ExportItem>, StoreError> {
    Ok(export_page(store, filter, 0, usize::MAX).await?.0)
}

/// A page of an export: matching entries after the cursor, each with the entry that
/// superseded it (if any). Entries are exported exactly as hashed: one logged before entries
/// carried their order's reference has none (empty columns; the order id still joins it).
pub async fn export_page<S: Store + FxStore>(
    store: &S,
    filter: &LogFilter,
    after: u64,
    limit: usize,
) -> Result<(Vec<ExportItem>, Option<u64>), StoreError> {
    let all = super::read_log(store).await?;
    let superseded = log::superseded_by(&all);
    let mut items: Vec<ExportItem> = Vec::new();
    let mut next = None;
    for e in all
        .into_iter()
        .filter(|e| e.seq > after && filter.matches(e))
    {
        if items.len() == limit {
            next = items.last().map(|(e, _)| e.seq);
            break;
        }
        let by = superseded.get(&e.id).cloned();
        items.push((e, by));
    }
    Ok((items, next))
}

/// One CSV row. The column names are the header; amounts and rates are plain decimals with a
/// dot, dates ISO 8601.
#[derive(Debug, Serialize)]
pub struct CsvRow<'a> {
    seq: u64,
    entry_id: &'a str,
    order_id: &'a str,
    order_number: &'a str,
    channel_order_id: &'a str,
    channel: &'a str,
    instance: &'a str,
    account: &'a str,
    placed_at: String,
    rate_date: NaiveDate,
    part: &'a str,
    from_amount: String,
    from_currency: &'a str,
    to_amount: String,
    to_currency: &'a str,
    identity: bool,
    rate: String,
    from_rate_per_eur: String,
    from_source: &'a str,
    from_rate_date: NaiveDate,
    from_doc_hash: &'a str,
    from_via_currency: &'a str,
    from_via_per_eur: String,
    to_rate_per_eur: String,
    to_source: &'a str,
    to_rate_date: NaiveDate,
    to_doc_hash: &'a str,
    to_via_currency: &'a str,
    to_via_per_eur: String,
    rounding: &'a str,
    revision: &'a str,
    supersedes: &'a str,
    superseded_by: &'a str,
    logged_at: String,
    prev_hash: &'a str,
    hash: &'a str,
}

/// The CSV header, in column order.
pub const CSV_COLUMNS: &[&str] = &[
    "seq",
    "entry_id",
    "order_id",
    "order_number",
    "channel_order_id",
    "channel",
    "instance",
    "account",
    "placed_at",
    "rate_date",
    "part",
    "from_amount",
    "from_currency",
    "to_amount",
    "to_currency",
    "identity",
    "rate",
    "from_rate_per_eur",
    "from_source",
    "from_rate_date",
    "from_doc_hash",
    "from_via_currency",
    "from_via_per_eur",
    "to_rate_per_eur",
    "to_source",
    "to_rate_date",
    "to_doc_hash",
    "to_via_currency",
    "to_via_per_eur",
    "rounding",
    "revision",
    "supersedes",
    "superseded_by",
    "logged_at",
    "prev_hash",
    "hash",
];

fn via(leg: &Leg) -> (&str, String) {
    leg.via
        .as_deref()
        .map(|v| (v.currency.as_str(), v.per_eur.to_string()))
        .unwrap_or_default()
}

impl<'a> CsvRow<'a> {
    pub fn of(e: &'a FxEntry, superseded_by: Option<&'a str>) -> Self {
        let o = e.order.as_ref();
        let text = |f: fn(&OrderRef) -> &str| o.map(f).unwrap_or_default();
        let (from_via_currency, from_via_per_eur) = via(&e.from_leg);
        let (to_via_currency, to_via_per_eur) = via(&e.to_leg);
        CsvRow {
            seq: e.seq,
            entry_id: &e.id,
            order_id: &e.order_id,
            order_number: text(|o| &o.number),
            channel_order_id: text(|o| &o.external_id),
            channel: text(|o| &o.channel),
            instance: text(|o| &o.instance),
            account: text(|o| &o.account),
            placed_at: o.map(|o| o.placed_at.to_rfc3339()).unwrap_or_default(),
            rate_date: e.rate_date,
            part: &e.part,
            from_amount: e.from.amount().to_string(),
            from_currency: e.from.currency().code(),
            to_amount: e.to.amount().to_string(),
            to_currency: e.to.currency().code(),
            identity: is_identity(e),
            rate: e.rate.to_string(),
            from_rate_per_eur: e.from_leg.per_eur.to_string(),
            from_source: &e.from_leg.source,
            from_rate_date: e.from_leg.date,
            from_doc_hash: &e.from_leg.doc_hash,
            from_via_currency,
            from_via_per_eur,
            to_rate_per_eur: e.to_leg.per_eur.to_string(),
            to_source: &e.to_leg.source,
            to_rate_date: e.to_leg.date,
            to_doc_hash: &e.to_leg.doc_hash,
            to_via_currency,
            to_via_per_eur,
            rounding: &e.rounding,
            revision: &e.revision,
            supersedes: e.supersedes.as_deref().unwrap_or_default(),
            superseded_by: superseded_by.unwrap_or_default(),
            logged_at: e
                .logged_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            prev_hash: &e.prev_hash,
            hash: &e.hash,
        }
    }
}

/// Renders items as CSV, with the header row when `header` (a streamed export renders its
/// chunks separately and only the first has it).
pub fn csv_chunk(items: &[ExportItem], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(items.len() * 600 + 600));
    if header {
        w.write_record(CSV_COLUMNS)?;
    }
    for (e, by) in items {
        w.serialize(CsvRow::of(e, by.as_deref()))?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Renders items as CSV chunks of up to 1,000 rows, the header in the first (alone when
/// nothing matched): what a streamed export sends.
pub fn csv_chunks(items: &[ExportItem]) -> Result<Vec<Vec<u8>>, csv::Error> {
    if items.is_empty() {
        return Ok(vec![csv_chunk(&[], true)?]);
    }
    items
        .chunks(1000)
        .enumerate()
        .map(|(i, part)| csv_chunk(part, i == 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_every_column_of_a_row() {
        // `serialize` with headers on writes the struct's field names: they must be CSV_COLUMNS.
        let mut w = csv::Writer::from_writer(Vec::new());
        let e: FxEntry = serde_json::from_value(serde_json::json!({
            "seq": 1, "id": "fx.1", "order_id": "o.shop.x", "revision": "r",
            "part": "total.grand_total",
            "from": {"amount": "10.00", "currency": "GBP"},
            "to": {"amount": "11.70", "currency": "EUR"},
            "rate": "1.17", "rate_date": "2017-02-15",
            "from_leg": {"currency": "GBP", "per_eur": "0.85", "date": "2017-02-15", "source": "ecb", "doc_hash": "d"},
            "to_leg": {"currency": "EUR", "per_eur": "1", "date": "2017-02-15", "source": "fixed"},
            "rounding": "half_up:2", "logged_at": "2017-02-15T10:00:00Z",
            "prev_hash": log::GENESIS, "hash": "h"
        }))
        .unwrap();
        w.serialize(CsvRow::of(&e, None)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_COLUMNS.join(","));
        let chunk = String::from_utf8(csv_chunk(&[(e, None)], true).unwrap()).unwrap();
        assert_eq!(chunk, text);
    }

    #[test]
    fn parts_filter_defaults_to_grand_totals() {
        let f = LogFilter::default();
        assert_eq!(f.parts, Parts::GrandTotal);
        assert_eq!("all".parse::<Parts>(), Ok(Parts::All));
        assert!("lines".parse::<Parts>().is_err());
    }
}
