//! Rankings per (destination country, channel) segment, `*` meaning all: by decayed sales and
//! revenue in the reporting currency, by price (lowest current listing price, else the latest
//! order unit price) and by rating (Bayesian average, Wilson lower bound). Deterministic: the
//! same data gives the same rankings, ties broken by item.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::data::ItemInfo;
use super::job::{JobSettings, Snapshot, ranks_ascending};
use super::rank;
use crate::fx::FxSettings;
use crate::fx::book::{RateBook, Rounding};
use crate::model::{CurrencyCode, Money};

/// Counts of what a ranking run could not use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RankStats {
    /// Order lines whose amount has no rate into the reporting currency (left out of revenue;
    /// they count in units).
    pub lines_without_rate: u64,
    /// Listing prices without a rate (left out of the price ranking).
    pub prices_without_rate: u64,
}

#[derive(Default)]
struct Acc {
    units: u64,
    units_decayed: f64,
    revenue: Decimal,
    revenue_decayed: Decimal,
    /// Latest order unit price in the reporting currency: (time, order id, price).
    last_price: Option<(DateTime<Utc>, String, Decimal)>,
}

/// One ranking's entries: (item, score, detail JSON), in rank order.
pub type RankingSet = (String, Vec<(String, f64, String)>);

/// A segment: (country, channel), `*` for all.
type Segment = (String, String);

/// One entry of a ranking: (item, score, detail JSON).
type Entry = (String, f64, String);

/// Entries of one ranking before sorting.
type Entries = Vec<Entry>;

/// What the rankings read besides the data: rates into the reporting currency.
struct Conversion<'a> {
    to: CurrencyCode,
    book: &'a RateBook,
    rounding: &'a Rounding,
}

impl Conversion<'_> {
    fn to_reporting(
        &self,
        amount: Decimal,
        currency: &str,
        at: DateTime<FixedOffset>,
    ) -> Option<Decimal> {
        if currency == self.to.code() {
            return Some(amount);
        }
        let from = CurrencyCode::parse(currency).ok()?;
        let money = Money::new(amount.round_dp(from.minor_units()), from).ok()?;
        self.book
            .convert(money, self.to, at, self.rounding)
            .ok()
            .map(|c| c.to.amount())
    }

    fn money(&self, v: Decimal) -> serde_json::Value {
        json!({"amount": v.round_dp(self.to.minor_units()).to_string(), "currency": self.to.code()})
    }
}

/// Builds every ranking for every (country, channel) segment, `*` meaning all.
pub fn rankings(
    snap: &Snapshot,
    book: &RateBook,
    fx: &FxSettings,
    settings: &JobSettings,
) -> (Vec<RankingSet>, RankStats, Option<DateTime<Utc>>) {
    let conv = Conversion {
        to: fx.reporting[0],
        book,
        rounding: &fx.rounding,
    };
    let mut stats = RankStats::default();
    let as_of = snap.orders.iter().map(|o| o.placed_at.to_utc()).max();
    let sales = sales_by_segment(snap, as_of, &conv, settings, &mut stats);
    let listed = listings_by_segment(snap);
    let prior = rating_prior(snap, settings);
    // Listing prices are converted at the newest order's date, or today.
    let price_at = as_of
        .unwrap_or_else(Utc::now)
        .with_timezone(&FixedOffset::east_opt(0).expect("UTC"));
    let mut segments: BTreeSet<Segment> = sales.keys().cloned().collect();
    segments.extend(listed.keys().cloned());
    let mut out: Vec<RankingSet> = Vec::new();
    for seg in segments {
        let view = SegmentView {
            seg: &seg,
            sales: sales.get(&seg),
            listings: listed.get(&seg),
            listed: &listed,
        };
        let sets = view.rankings(&conv, price_at, prior, &mut stats);
        for (by, mut entries) in sets {
            // The order Redis gives for equal scores: by item, descending when the ranking is.
            if ranks_ascending(by) {
                entries.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            } else {
                entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
            }
            entries.truncate(settings.ranking_size);
            out.push((format!("{by}|{}|{}", seg.0, seg.1), entries));
        }
    }
    (out, stats, as_of)
}

/// Units, revenue (both decayed by age) and the latest unit price of every item sold, per
/// segment.
fn sales_by_segment(
    snap: &Snapshot,
    as_of: Option<DateTime<Utc>>,
    conv: &Conversion<'_>,
    settings: &JobSettings,
    stats: &mut RankStats,
) -> BTreeMap<Segment, BTreeMap<String, Acc>> {
    let mut acc: BTreeMap<Segment, BTreeMap<String, Acc>> = BTreeMap::new();
    for o in &snap.orders {
        let at = o.placed_at.to_utc();
        let age = as_of.map_or(0.0, |a| (a - at).num_seconds() as f64 / 86_400.0);
        let w = rank::decay(age, settings.half_life_days);
        let wd = rank::decay_decimal(age, settings.half_life_days);
        let country = o.country.clone().unwrap_or_else(|| "*".into());
        let segments: BTreeSet<Segment> = [
            ("*".to_string(), "*".to_string()),
            (country.clone(), "*".to_string()),
            ("*".to_string(), o.channel.clone()),
            (country, o.channel.clone()),
        ]
        .into_iter()
        .collect();
        let dp = CurrencyCode::parse(&o.currency).map_or(2, |c| c.minor_units());
        for l in &o.lines {
            let amount = conv.to_reporting(l.amount, &o.currency, o.placed_at);
            if amount.is_none() {
                stats.lines_without_rate += 1;
            }
            // The unit price in the order currency (half-up), then converted like any amount.
            let unit = (l.amount / Decimal::from(l.qty.max(1)))
                .round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            let unit = amount.and(conv.to_reporting(unit, &o.currency, o.placed_at));
            for seg in &segments {
                let a = acc
                    .entry(seg.clone())
                    .or_default()
                    .entry(l.item.clone())
                    .or_default();
                a.units += l.qty as u64;
                a.units_decayed += l.qty as f64 * w;
                if let Some(v) = amount {
                    a.revenue += v;
                    a.revenue_decayed += v * wd;
                }
                // The order id is cloned only when this line is the newest price.
                if let Some(unit) = unit
                    && a.last_price
                        .as_ref()
                        .is_none_or(|(t, id, _)| (*t, id.as_str()) < (at, o.order_id.as_str()))
                {
                    a.last_price = Some((at, o.order_id.clone(), unit));
                }
            }
        }
    }
    acc
}

/// Active listings by item, for all channels and per channel.
fn listings_by_segment(snap: &Snapshot) -> BTreeMap<Segment, BTreeMap<String, Vec<&ItemInfo>>> {
    let mut listed: BTreeMap<Segment, BTreeMap<String, Vec<&ItemInfo>>> = BTreeMap::new();
    for info in snap.items.iter().filter(|i| i.active) {
        for seg in [
            ("*".to_string(), "*".to_string()),
            ("*".to_string(), info.channel.clone()),
        ] {
            listed
                .entry(seg)
                .or_default()
                .entry(info.item.clone())
                .or_default()
                .push(info);
        }
    }
    listed
}

/// The rating prior: the mean over every rated listing, weighted by count, and its weight in
/// ratings (configured, else the mean rating count).
fn rating_prior(snap: &Snapshot, settings: &JobSettings) -> (f64, f64) {
    let rated: Vec<&ItemInfo> = snap.items.iter().filter(|i| i.rating.is_some()).collect();
    let (sum, n) = rated.iter().fold((0.0, 0u64), |(s, n), i| {
        let r = i.rating.as_ref().expect("rated");
        let norm = r.average.to_f64().unwrap_or(0.0) / r.scale.max(1) as f64;
        (s + norm * r.count as f64, n + r.count)
    });
    let mean = if n > 0 { sum / n as f64 } else { 0.0 };
    let count = settings
        .rating_prior_count
        .unwrap_or_else(|| n as f64 / rated.len().max(1) as f64);
    (mean, count)
}

/// What one segment's rankings read.
struct SegmentView<'a, 'i> {
    seg: &'a Segment,
    sales: Option<&'a BTreeMap<String, Acc>>,
    listings: Option<&'a BTreeMap<String, Vec<&'i ItemInfo>>>,
    listed: &'a BTreeMap<Segment, BTreeMap<String, Vec<&'i ItemInfo>>>,
}

impl SegmentView<'_, '_> {
    /// The segment's rankings by name, unsorted.
    fn rankings(
        &self,
        conv: &Conversion<'_>,
        price_at: DateTime<FixedOffset>,
        prior: (f64, f64),
        stats: &mut RankStats,
    ) -> BTreeMap<&'static str, Entries> {
        let mut sets: BTreeMap<&'static str, Entries> = BTreeMap::new();
        for (item, a) in self.sales.into_iter().flatten() {
            let detail = json!({
                "units": a.units,
                "units_decayed": (a.units_decayed * 1e4).round() / 1e4,
                "revenue": conv.money(a.revenue),
                "revenue_decayed": conv.money(a.revenue_decayed),
            })
            .to_string();
            sets.entry("sales")
                .or_default()
                .push((item.clone(), a.units_decayed, detail.clone()));
            if a.revenue_decayed > Decimal::ZERO {
                let score = a
                    .revenue_decayed
                    .round_dp(conv.to.minor_units())
                    .to_f64()
                    .unwrap_or(0.0);
                sets.entry("revenue")
                    .or_default()
                    .push((item.clone(), score, detail));
            }
        }
        // Items in the segment: sold there, or listed on its channel.
        let mut present: BTreeSet<&String> =
            self.sales.map(|s| s.keys().collect()).unwrap_or_default();
        if let Some(l) = self.listings {
            present.extend(l.keys());
        }
        for item in present {
            let infos = self.infos(item);
            if let Some(entry) = self.price(item, &infos, conv, price_at, stats) {
                sets.entry("price").or_default().push(entry);
            }
            if let Some((bayes, wilson)) = rating(item, &infos, prior) {
                sets.entry("rating").or_default().push(bayes);
                if let Some(w) = wilson {
                    sets.entry("rating_wilson").or_default().push(w);
                }
            }
        }
        sets
    }

    /// The item's listings in the segment; in a country segment, its listings on the
    /// segment's channel (or any).
    fn infos<'s>(&'s self, item: &str) -> Vec<&'s ItemInfo> {
        self.listings
            .and_then(|l| l.get(item))
            .cloned()
            .or_else(|| {
                self.listed
                    .get(&("*".to_string(), self.seg.1.clone()))
                    .and_then(|l| l.get(item))
                    .cloned()
            })
            .unwrap_or_default()
    }

    /// Price: the lowest current listing price, else the latest order unit price.
    fn price(
        &self,
        item: &str,
        infos: &[&ItemInfo],
        conv: &Conversion<'_>,
        price_at: DateTime<FixedOffset>,
        stats: &mut RankStats,
    ) -> Option<Entry> {
        let mut listing_price: Option<Decimal> = None;
        for info in infos {
            if let Some(p) = &info.price {
                match conv.to_reporting(p.amount(), p.currency().code(), price_at) {
                    Some(v) => listing_price = Some(listing_price.map_or(v, |x| x.min(v))),
                    None => stats.prices_without_rate += 1,
                }
            }
        }
        let (p, source) = listing_price.map(|p| (p, "listing")).or_else(|| {
            self.sales
                .and_then(|s| s.get(item))
                .and_then(|a| a.last_price.as_ref())
                .map(|(_, _, p)| (*p, "order"))
        })?;
        Some((
            item.to_string(),
            p.to_f64().unwrap_or(0.0),
            json!({"price": conv.money(p), "source": source}).to_string(),
        ))
    }
}

/// Rating: from the listing with the most ratings, the Bayesian average entry and, when the
/// channel counts positive ratings, the Wilson lower bound entry.
fn rating(
    item: &str,
    infos: &[&ItemInfo],
    (prior_mean, prior_count): (f64, f64),
) -> Option<(Entry, Option<Entry>)> {
    let r = infos
        .iter()
        .filter_map(|i| i.rating.as_ref())
        .max_by_key(|r| r.count)?;
    let norm = r.average.to_f64().unwrap_or(0.0) / r.scale.max(1) as f64;
    let bayes = rank::bayesian_average(norm, r.count, prior_mean, prior_count);
    let wilson = r
        .positive
        .map(|p| rank::wilson_lower_bound(p, r.count, rank::Z95));
    let detail = json!({
        "average": r.average.to_string(),
        "scale": r.scale,
        "count": r.count,
        "positive": r.positive,
        "bayesian": (bayes * r.scale as f64 * 1e4).round() / 1e4,
        "wilson": wilson.map(|w| (w * 1e4).round() / 1e4),
    })
    .to_string();
    let wilson_entry = wilson.map(|w| (item.to_string(), w, detail.clone()));
    Some(((item.to_string(), bayes, detail), wilson_entry))
}
