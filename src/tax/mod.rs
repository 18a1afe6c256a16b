//! Customs and tax per destination: versioned rule packs (`config/rules/*.toml`), the engine
//! that quotes an order under a pack, and the job that quotes every cross-border order from the
//! event stream and holds those it cannot quote (`tax_pending`).

pub mod engine;
pub mod pack;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::fx::book::RateBook;
use crate::fx::store::FxStore;
use crate::model::{ChangeEvent, CurrencyCode, Money, Order, Record, RecordKind};
use crate::store::{ListingQuery, Store, StoreError};
use crate::tax::store::TaxStore;
pub use pack::{Pack, Packs};

/// Who collects a tax line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    /// The seller, at the point of sale (IOSS, UK ≤ GBP 135, AU/NZ/SG/NO registrations).
    Seller,
    /// The marketplace as deemed supplier.
    Marketplace,
    /// The carrier or broker, from the buyer, when the goods are imported.
    CarrierAtImport,
}

/// One tax or duty line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaxLine {
    /// `vat`, `gst`, `hst`, `pst`, `qst`, `consumption_tax`, `duty`.
    pub kind: String,
    /// `DE`, `EU`, `CA-ON`, …
    pub jurisdiction: String,
    /// `line[0]`, `shipping` or `order`.
    pub applies_to: String,
    pub base: Money,
    /// Percent; absent for a fixed amount (the EU flat duty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    #[schemars(with = "Option<Decimal>")]
    pub rate: Option<Decimal>,
    pub amount: Money,
    pub collector: Collector,
    /// Where the rule comes from (source ids of the reference).
    pub source: String,
}

/// One rule evaluated, with its inputs and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    pub rule: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<String>,
    pub outcome: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    Quoted,
    /// A rule is missing: the order is held, never taxed at zero.
    TaxPending,
}

/// The taxes of one order under one pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quote {
    pub order_id: String,
    pub pack_version: String,
    pub destination: Option<String>,
    /// `EU_IOSS`, `UK_LOW_VALUE`, `US_FORMAL`, `CN_CBEC`, `AU_LVIG`, … or `DOMESTIC`.
    pub regime: Option<String>,
    pub status: QuoteStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    pub currency: CurrencyCode,
    pub lines: Vec<TaxLine>,
    /// Every tax and duty line added up; absent while the quote is held (`missing` says why):
    /// a held quote has no total, not a zero one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_total: Option<Money>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub totals_by_kind: BTreeMap<String, Money>,
    /// Goods and shipping without tax, plus every tax and duty line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed_total: Option<Money>,
    /// The tax the channel reported.
    pub channel_tax: Money,
    /// Channel tax minus the computed tax collected at sale, when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_difference: Option<Money>,
    /// What this order adds to the buyer's China CBEC annual total (CNY).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    #[schemars(with = "Option<Decimal>")]
    pub annual_cny_addition: Option<Decimal>,
    pub explanation: Vec<Step>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipMode {
    #[default]
    Courier,
    Postal,
}

/// Facts about an order that are not in the order.
#[derive(Debug, Clone, Default)]
pub struct QuoteContext {
    /// Where the merchant ships from (orders to it are domestic, not quoted).
    pub seller_country: Option<String>,
    /// The buyer's China CBEC purchases this calendar year so far (CNY).
    pub annual_cny_before: Decimal,
    /// Country the parcel is shipped from (Canada's thresholds depend on it).
    pub ship_from: Option<String>,
    pub mode: ShipMode,
    /// What the listings say about lines that do not say it themselves, by line index.
    pub listings: LineListings,
}

/// What a listing says about the goods of an order line (its tax class and HS code), by line
/// index; `Err` when the line's listings contradict each other (the quote then holds).
pub type LineListings = BTreeMap<usize, Result<ListingFacts, String>>;

/// A listing's tax facts, for an order line of its SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingFacts {
    /// The listing's gateway id (named in the explanation).
    pub listing: String,
    pub tax_class: Option<String>,
    pub hs_code: Option<String>,
}

/// Tax settings (`[tax]` in the gateway config).
#[derive(Debug, Clone)]
pub struct TaxSettings {
    pub packs: Packs,
    /// `[tax]`: where the merchant sells and ships from, for instances without their own.
    pub seller: SellerSettings,
    /// Per instance (`tax = {...}` on an `[[instance]]`), already defaulted from `seller`.
    pub instances: BTreeMap<String, SellerSettings>,
}

/// Where a merchant sells and ships from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellerSettings {
    /// The merchant's country: orders shipped there are domestic.
    pub seller_country: Option<String>,
    pub ship_from: Option<String>,
    pub mode: ShipMode,
}

impl TaxSettings {
    /// The seller settings for an instance's orders: its own, else `[tax]`'s.
    pub fn seller_for(&self, instance: &str) -> &SellerSettings {
        self.instances.get(instance).unwrap_or(&self.seller)
    }
}

/// Quotes with the active pack (or a given version).
pub fn quote_order(
    order: &Order,
    settings: &TaxSettings,
    version: Option<&str>,
    book: &RateBook,
    annual_cny_before: Decimal,
    listings: LineListings,
) -> Result<Quote, String> {
    let pack = match version {
        Some(v) => settings
            .packs
            .get(v)
            .ok_or_else(|| format!("no rule pack version {v}"))?,
        None => match settings.packs.active() {
            Some(p) => p,
            None => return Ok(pending_without_pack(order)),
        },
    };
    let seller = settings.seller_for(&order.instance);
    let ctx = QuoteContext {
        seller_country: seller.seller_country.clone(),
        annual_cny_before,
        ship_from: seller.ship_from.clone(),
        mode: seller.mode,
        listings,
    };
    Ok(engine::quote(order, &pack, book, &ctx))
}

/// An order's contribution to a buyer's China CBEC annual total (`None` removes it, e.g. when
/// a revision moved the order out of the CBEC regime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnualEntry {
    pub customer_key: String,
    pub year: i32,
    pub amount: Option<Decimal>,
}

/// The quote of an order when no rule pack is loaded: held.
fn pending_without_pack(order: &Order) -> Quote {
    Quote {
        order_id: order.id.as_str().to_string(),
        pack_version: String::new(),
        destination: order
            .shipping_address
            .as_ref()
            .map(|a| a.country.as_str().to_string()),
        regime: None,
        status: QuoteStatus::TaxPending,
        missing: vec!["no rule pack is loaded (tax.rules_dir)".into()],
        currency: order.currency,
        lines: Vec::new(),
        tax_total: None,
        totals_by_kind: BTreeMap::new(),
        landed_total: None,
        channel_tax: order.totals.tax,
        channel_difference: None,
        annual_cny_addition: None,
        explanation: Vec::new(),
    }
}

/// The consumer group of the tax job.
pub const TAX_GROUP: &str = "tax";

/// The calendar year a CBEC purchase counts in.
pub fn cbec_year(order: &Order) -> i32 {
    use chrono::Datelike;
    order.placed_at.year()
}

/// Quotes every cross-border order revision from the event stream and stores the quote (and
/// the buyer's China CBEC annual total).
pub struct TaxJob {
    pub settings: Arc<TaxSettings>,
    fx_max_age: i64,
}

impl TaxJob {
    pub fn new(settings: Arc<TaxSettings>, fx_max_age: i64) -> Self {
        Self {
            settings,
            fx_max_age,
        }
    }

    /// Quotes one order with the active pack and stores the result.
    pub async fn quote<S: Store + TaxStore>(
        &self,
        store: &S,
        order: &Order,
        book: &RateBook,
    ) -> Result<Quote, StoreError> {
        let (q, annual) = self
            .prepare(store, order, book, &mut ListingCache::new())
            .await?;
        store.tax_commit(vec![(q.clone(), annual)]).await?;
        count_quote(q.status);
        Ok(q)
    }

    /// An order's quote and its CBEC annual entry, not yet stored (the buyer's total before
    /// it is the stored one: see [`Batch::touches`]).
    async fn prepare<S: Store + TaxStore>(
        &self,
        store: &S,
        order: &Order,
        book: &RateBook,
        cache: &mut ListingCache,
    ) -> Result<(Quote, Option<AnnualEntry>), StoreError> {
        let key = order.customer.as_ref().and_then(|c| c.key.clone());
        let year = cbec_year(order);
        let before = match &key {
            Some(k) => store.tax_annual(k, year, order.id.as_str()).await?,
            None => Decimal::ZERO,
        };
        let listings = listing_facts(store, order, cache).await?;
        let q = quote_order(order, &self.settings, None, book, before, listings)
            .map_err(StoreError::Invalid)?;
        let annual = key.map(|k| AnnualEntry {
            customer_key: k,
            year,
            amount: q.annual_cny_addition,
        });
        Ok((q, annual))
    }

    /// One pass over new order events: quotes them and stores the quotes in one commit per
    /// batch (one fsync or round trip for many orders). A buyer's CBEC annual total depends on
    /// their earlier orders, so an order of a buyer already in the batch is quoted after the
    /// batch is stored.
    pub async fn pass<S: Store + FxStore + TaxStore>(
        &self,
        store: &S,
        max: usize,
    ) -> Result<(u64, u64), StoreError> {
        let events = store.read_events(TAX_GROUP, "tax-job", max).await?;
        if events.is_empty() {
            return Ok((0, 0));
        }
        let book = RateBook::new(store.fx_docs().await?, self.fx_max_age);
        let mut batch = Batch::default();
        let mut cache = ListingCache::new();
        let mut quoted = 0;
        for e in &events {
            let Some(o) = order_of(&e.event) else {
                continue;
            };
            if batch.touches(o) {
                batch.commit(store).await?;
            }
            let item = self.prepare(store, o, &book, &mut cache).await?;
            batch.push(o, item);
            quoted += 1;
        }
        batch.commit(store).await?;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        store.ack_events(TAX_GROUP, &ids).await?;
        Ok((events.len() as u64, quoted))
    }
}

/// Quotes made in a pass and not yet stored, and the buyers (customer key, year) they count
/// for.
#[derive(Default)]
struct Batch {
    items: Vec<(Quote, Option<AnnualEntry>)>,
    buyers: std::collections::BTreeSet<(String, i32)>,
}

impl Batch {
    /// Whether quoting `order` now would miss an earlier order of its buyer in this batch.
    fn touches(&self, order: &Order) -> bool {
        order
            .customer
            .as_ref()
            .and_then(|c| c.key.clone())
            .is_some_and(|k| self.buyers.contains(&(k, cbec_year(order))))
    }

    fn push(&mut self, order: &Order, item: (Quote, Option<AnnualEntry>)) {
        if let Some(k) = order.customer.as_ref().and_then(|c| c.key.clone()) {
            self.buyers.insert((k, cbec_year(order)));
        }
        self.items.push(item);
    }

    async fn commit<S: TaxStore>(&mut self, store: &S) -> Result<(), StoreError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.items);
        self.buyers.clear();
        let outcomes: Vec<QuoteStatus> = items.iter().map(|(q, _)| q.status).collect();
        store.tax_commit(items).await?;
        outcomes.into_iter().for_each(count_quote);
        Ok(())
    }
}

fn count_quote(status: QuoteStatus) {
    let outcome = match status {
        QuoteStatus::Quoted => "quoted",
        QuoteStatus::TaxPending => "tax_pending",
    };
    metrics::counter!(crate::telemetry::names::TAX_QUOTES, "outcome" => outcome).increment(1);
}

/// Most listings one SKU is expected to have in one instance (variants share none).
const LISTINGS_PER_SKU: usize = 20;

/// What the listings of one (instance, SKU) say, as read once in a pass (orders of a pass
/// often share SKUs; a listing changed during the pass is seen by the next one).
type ListingCache =
    std::collections::HashMap<(String, String), Option<Result<ListingFacts, String>>>;

/// What the instance's listings of each line's SKU say about lines that name no tax class or
/// HS code themselves. Listings that name nothing are ignored; listings that name different
/// classes (or HS codes) make the line's entry an error, so the order is held, not guessed.
async fn listing_facts<S: Store>(
    store: &S,
    order: &Order,
    cache: &mut ListingCache,
) -> Result<LineListings, StoreError> {
    let mut facts = LineListings::new();
    for (i, line) in order.lines.iter().enumerate() {
        if line.tax_class.is_some() && line.hs_code.is_some() {
            continue;
        }
        let Some(sku) = line.sku.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            continue;
        };
        let key = (order.instance.clone(), sku.to_string());
        if !cache.contains_key(&key) {
            let page = store
                .list_listings(ListingQuery {
                    instance: Some(order.instance.clone()),
                    sku: Some(sku.to_string()),
                    since: None,
                    after: None,
                    limit: LISTINGS_PER_SKU,
                })
                .await?;
            cache.insert(key.clone(), agreed_facts(&page.items));
        }
        if let Some(Some(f)) = cache.get(&key) {
            facts.insert(i, f.clone());
        }
    }
    Ok(facts)
}

/// One set of facts from the listings of one SKU: `None` when none names a class or HS code.
fn agreed_facts(listings: &[crate::model::Listing]) -> Option<Result<ListingFacts, String>> {
    let naming: Vec<_> = listings
        .iter()
        .filter(|l| l.tax_class.is_some() || l.hs_code.is_some())
        .collect();
    let first = naming.first()?;
    let differ = |f: fn(&crate::model::Listing) -> &Option<String>| {
        let named: std::collections::BTreeSet<_> =
            naming.iter().filter_map(|l| f(l).as_ref()).collect();
        named.len() > 1
    };
    if differ(|l| &l.tax_class) {
        return Some(Err(
            "the listings of the line's SKU name different tax classes".into(),
        ));
    }
    if differ(|l| &l.hs_code) {
        return Some(Err(
            "the listings of the line's SKU give different HS codes".into(),
        ));
    }
    Some(Ok(ListingFacts {
        listing: first.id.as_str().to_string(),
        tax_class: naming.iter().find_map(|l| l.tax_class.clone()),
        hs_code: naming.iter().find_map(|l| l.hs_code.clone()),
    }))
}

/// The order of an order event (created or updated snapshot), unless its numbers contradict
/// each other (`totals_mismatch`): such a revision is neither converted nor quoted.
fn order_of(e: &ChangeEvent) -> Option<&Order> {
    match (&e.kind, &e.record) {
        (RecordKind::Order, Record::Order(o))
            if e.change.wrote() && !o.has_hold(crate::model::TOTALS_MISMATCH) =>
        {
            Some(o)
        }
        _ => None,
    }
}

/// Reads an order for a quote: a canonical order, or the app/call-centre form without the
/// gateway's fields (they are filled in as instance `quote`).
pub fn order_from_json(bytes: &[u8]) -> Result<Order, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the order is not JSON: {e}"))?;
    let m = v.as_object_mut().ok_or("the order must be a JSON object")?;
    if !m.contains_key("id") {
        let ext = m
            .get("external_id")
            .and_then(|e| e.as_str())
            .unwrap_or("quote")
            .to_string();
        m.insert(
            "id".into(),
            crate::model::OrderId::derive("quote", &ext).as_str().into(),
        );
        m.entry("instance").or_insert("quote".into());
        m.entry("channel").or_insert("quote".into());
        m.entry("channel_kind").or_insert("web_shop".into());
        m.entry("account").or_insert("quote".into());
    }
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(v, &mut track);
    let o: Order =
        serde::Deserialize::deserialize(de).map_err(|e| format!("{}: {e}", track.path()))?;
    let problems = o.validate();
    if let Some(p) = problems.first() {
        return Err(format!("{}: {}", p.path, p.message));
    }
    Ok(o)
}

/// A quote as a table for people.
pub fn render_table(q: &Quote) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "order {}  destination {}  regime {}  pack {}  status {:?}",
        q.order_id,
        q.destination.as_deref().unwrap_or("?"),
        q.regime.as_deref().unwrap_or("-"),
        q.pack_version,
        q.status
    );
    for m in &q.missing {
        let _ = writeln!(s, "  missing rule: {m}");
    }
    if !q.lines.is_empty() {
        let _ = writeln!(
            s,
            "  {:<16} {:<6} {:<10} {:>14} {:>8} {:>12}  collected by",
            "kind", "where", "on", "base", "rate %", "amount"
        );
        for l in &q.lines {
            let _ = writeln!(
                s,
                "  {:<16} {:<6} {:<10} {:>14} {:>8} {:>12}  {:?}",
                l.kind,
                l.jurisdiction,
                l.applies_to,
                l.base.amount().to_string(),
                l.rate
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "fixed".into()),
                l.amount.amount().to_string(),
                l.collector
            );
        }
    }
    match &q.tax_total {
        Some(t) => {
            let _ = writeln!(s, "  tax and duty: {} {}", t.amount(), q.currency.code());
        }
        None => {
            let _ = writeln!(
                s,
                "  tax and duty: none yet (held: {})",
                q.missing.join("; ")
            );
        }
    }
    if let Some(l) = &q.landed_total {
        let _ = writeln!(s, "  landed total: {} {}", l.amount(), q.currency.code());
    }
    if let Some(d) = &q.channel_difference {
        let _ = writeln!(
            s,
            "  channel reported {} {}; differs from the computed tax at sale by {}",
            q.channel_tax.amount(),
            q.currency.code(),
            d.amount()
        );
    }
    let _ = writeln!(s, "  explanation:");
    for st in &q.explanation {
        let inputs: Vec<String> = st.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "    - {}{}{} -> {}",
            st.rule,
            if inputs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", inputs.join(", "))
            },
            st.comparison
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            st.outcome
        );
    }
    s
}
