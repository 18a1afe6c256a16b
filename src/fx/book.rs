//! The rate book (every stored rate document, indexed by day) and conversion.
//!
//! Which rate: the last ECB publication on or before the order's date in ECB time (Frankfurt),
//! no older than `max_age_days` (weekends and TARGET holidays have no publication). A currency
//! the ECB does not publish (or no longer does, like RUB) uses finance's manual table for that
//! date. Cross rates go through EUR. Nothing found: [`FxError::Missing`] — never a zero.
//!
//! Arithmetic: `amount × units_per_eur(to) ÷ units_per_eur(from)` in `Decimal` (the
//! multiplication is exact; one division), then one rounding to the target currency's ISO 4217
//! minor units with the configured mode. Mathematically that is `amount / rate_from × rate_to`;
//! multiplying first keeps a value that sits exactly on a half (x.xx5) exactly there.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::FxError;
use super::rates::{ManualRate, RateDoc, RateSource};
use crate::model::{CurrencyCode, Money};

/// How an amount is rounded to the target currency's minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Half away from zero (commercial rounding; the default).
    HalfUp,
    /// Half to even (banker's).
    HalfEven,
    /// Toward zero.
    Down,
    /// Away from zero.
    Up,
}

impl RoundingMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            RoundingMode::HalfUp => "half_up",
            RoundingMode::HalfEven => "half_even",
            RoundingMode::Down => "down",
            RoundingMode::Up => "up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "half_up" => RoundingMode::HalfUp,
            "half_even" => RoundingMode::HalfEven,
            "down" => RoundingMode::Down,
            "up" => RoundingMode::Up,
            _ => return None,
        })
    }

    fn strategy(&self) -> RoundingStrategy {
        match self {
            RoundingMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            RoundingMode::HalfEven => RoundingStrategy::MidpointNearestEven,
            RoundingMode::Down => RoundingStrategy::ToZero,
            RoundingMode::Up => RoundingStrategy::AwayFromZero,
        }
    }

    /// Rounds to `dp` decimal places.
    pub fn round(&self, v: Decimal, dp: u32) -> Decimal {
        v.round_dp_with_strategy(dp, self.strategy())
    }
}

/// The rounding rule of each target currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rounding {
    pub default: RoundingMode,
    pub overrides: BTreeMap<String, RoundingMode>,
}

impl Default for Rounding {
    fn default() -> Self {
        Self {
            default: RoundingMode::HalfUp,
            overrides: BTreeMap::new(),
        }
    }
}

impl Rounding {
    pub fn mode(&self, c: CurrencyCode) -> RoundingMode {
        self.overrides
            .get(c.code())
            .copied()
            .unwrap_or(self.default)
    }

    /// The rule as recorded in the FX log, e.g. `half_up:2`.
    pub fn rule(&self, c: CurrencyCode) -> String {
        format!("{}:{}", self.mode(c).as_str(), c.minor_units())
    }
}

/// One side of a conversion: units of `currency` per EUR, and where that came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Leg {
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub per_eur: Decimal,
    /// The publication day (ECB) or the day the manual rate was applied to.
    pub date: NaiveDate,
    /// `ecb`, `manual`, or `fixed` (EUR itself).
    pub source: String,
    /// SHA-256 of the rate document, or empty for EUR.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub doc_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<DateTime<Utc>>,
    /// A manual rate against another currency: that currency's ECB leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Box<Leg>>,
}

impl Leg {
    /// Units of `to`'s currency per unit of this leg's, as the FX log records it (10
    /// decimal places).
    pub fn rate_to(&self, to: &Leg) -> Decimal {
        (to.per_eur / self.per_eur).round_dp(10)
    }
}

/// A converted amount with everything needed to recompute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub to: Money,
    pub from_leg: Leg,
    pub to_leg: Leg,
    pub rule: String,
}

impl Converted {
    /// Units of the target per unit of the source (for people; the legs are authoritative).
    pub fn rate(&self) -> Decimal {
        self.from_leg.rate_to(&self.to_leg)
    }

    /// The rate date shown: the older of the two legs' dates.
    pub fn rate_date(&self) -> NaiveDate {
        self.from_leg.date.min(self.to_leg.date)
    }
}

struct EcbDay {
    rates: BTreeMap<String, Decimal>,
    hash: String,
    fetched_at: DateTime<Utc>,
}

struct Manual {
    rate: ManualRate,
    hash: String,
    fetched_at: DateTime<Utc>,
}

/// Every stored rate, by day. For a day present in several ECB documents the most recently
/// fetched one wins.
pub struct RateBook {
    ecb: BTreeMap<NaiveDate, EcbDay>,
    manual: Vec<Manual>,
    docs: BTreeMap<String, RateDoc>,
    pub max_age_days: i64,
}

impl RateBook {
    pub fn new(docs: Vec<RateDoc>, max_age_days: i64) -> Self {
        let mut ecb: BTreeMap<NaiveDate, EcbDay> = BTreeMap::new();
        let mut manual_docs: Vec<&RateDoc> = Vec::new();
        let mut sorted: Vec<&RateDoc> = docs.iter().collect();
        sorted.sort_by_key(|d| (d.fetched_at, d.hash.clone()));
        for d in &sorted {
            match d.source {
                RateSource::Ecb => {
                    for day in &d.days {
                        ecb.insert(
                            day.date,
                            EcbDay {
                                rates: day.rates.clone(),
                                hash: d.hash.clone(),
                                fetched_at: d.fetched_at,
                            },
                        );
                    }
                }
                RateSource::Manual => manual_docs.push(d),
            }
        }
        // Only the newest manual table counts (finance replaces it as a whole).
        let manual = manual_docs
            .last()
            .map(|d| {
                d.manual
                    .iter()
                    .map(|r| Manual {
                        rate: r.clone(),
                        hash: d.hash.clone(),
                        fetched_at: d.fetched_at,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            ecb,
            manual,
            docs: docs.into_iter().map(|d| (d.hash.clone(), d)).collect(),
            max_age_days,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ecb.is_empty() && self.manual.is_empty()
    }

    /// The newest ECB publication day.
    pub fn latest_ecb_day(&self) -> Option<NaiveDate> {
        self.ecb.keys().next_back().copied()
    }

    /// A stored document by hash (for `fx verify`).
    pub fn doc(&self, hash: &str) -> Option<&RateDoc> {
        self.docs.get(hash)
    }

    /// Units of `currency` per EUR in force on `date` (ECB time).
    pub fn leg(&self, currency: &str, date: NaiveDate) -> Result<Leg, FxError> {
        if currency == "EUR" {
            return Ok(Leg {
                currency: "EUR".into(),
                per_eur: Decimal::ONE,
                date,
                source: "fixed".into(),
                doc_hash: String::new(),
                fetched_at: None,
                via: None,
            });
        }
        let oldest = date - chrono::Duration::days(self.max_age_days);
        // The last publication on or before the date that has this currency.
        for (day, d) in self.ecb.range(..=date).rev() {
            if *day < oldest {
                break;
            }
            if let Some(r) = d.rates.get(currency) {
                return Ok(Leg {
                    currency: currency.into(),
                    per_eur: *r,
                    date: *day,
                    source: RateSource::Ecb.as_str().into(),
                    doc_hash: d.hash.clone(),
                    fetched_at: Some(d.fetched_at),
                    via: None,
                });
            }
        }
        if let Some(m) = self.manual.iter().find(|m| {
            m.rate.currency == currency
                && m.rate.valid_from <= date
                && m.rate.valid_to.is_none_or(|t| date <= t)
        }) {
            let (per_eur, via) = if m.rate.base == "EUR" {
                (m.rate.rate, None)
            } else {
                let base = self.leg(&m.rate.base, date)?;
                (m.rate.rate * base.per_eur, Some(Box::new(base)))
            };
            return Ok(Leg {
                currency: currency.into(),
                per_eur,
                date,
                source: RateSource::Manual.as_str().into(),
                doc_hash: m.hash.clone(),
                fetched_at: Some(m.fetched_at),
                via,
            });
        }
        Err(FxError::Missing {
            currency: currency.into(),
            date,
            max_age_days: self.max_age_days,
        })
    }

    /// Converts an amount on the date an order was placed.
    pub fn convert(
        &self,
        amount: Money,
        to: CurrencyCode,
        placed_at: DateTime<FixedOffset>,
        rounding: &Rounding,
    ) -> Result<Converted, FxError> {
        let date = ecb_date(placed_at);
        let from_leg = self.leg(amount.currency().code(), date)?;
        let to_leg = self.leg(to.code(), date)?;
        let value = convert_amount(
            amount.amount(),
            from_leg.per_eur,
            to_leg.per_eur,
            rounding.mode(to),
            to.minor_units(),
        )?;
        Ok(Converted {
            to: Money::new(value, to).map_err(|e| FxError::Document(e.to_string()))?,
            from_leg,
            to_leg,
            rule: rounding.rule(to),
        })
    }
}

/// The conversion arithmetic (see the module docs).
pub fn convert_amount(
    amount: Decimal,
    from_per_eur: Decimal,
    to_per_eur: Decimal,
    mode: RoundingMode,
    dp: u32,
) -> Result<Decimal, FxError> {
    let product = amount
        .checked_mul(to_per_eur)
        .ok_or_else(|| FxError::Overflow(amount.to_string()))?;
    let q = product
        .checked_div(from_per_eur)
        .ok_or_else(|| FxError::Overflow(amount.to_string()))?;
    Ok(mode.round(q, dp))
}

/// The date of an instant in ECB time (Frankfurt).
pub fn ecb_date(t: DateTime<FixedOffset>) -> NaiveDate {
    t.with_timezone(&chrono_tz::Europe::Berlin).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::rates::{RateDay, parse_ecb};
    use proptest::prelude::*;

    fn book_from_fixture(max_age: i64) -> RateBook {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/fx-ecb/eurofxref-hist-90d-2017-03-03.xml"),
        )
        .unwrap();
        let doc = RateDoc {
            source: RateSource::Ecb,
            hash: crate::fx::rates::sha256_hex(&bytes),
            fetched_at: DateTime::parse_from_rfc3339("2017-03-03T16:30:00Z")
                .unwrap()
                .to_utc(),
            origin: "fixture".into(),
            days: parse_ecb(&bytes).unwrap(),
            manual: Vec::new(),
        };
        RateBook::new(vec![doc], max_age)
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn money(a: &str, c: &str) -> Money {
        Money::parse(a, CurrencyCode::parse(c).unwrap()).unwrap()
    }

    #[test]
    fn a_saturday_order_uses_fridays_rate() {
        let book = book_from_fixture(4);
        // 2017-03-04 is a Saturday; the last publication is Friday 2017-03-03 (USD 1.0565).
        let c = book
            .convert(
                money("105.65", "USD"),
                CurrencyCode::parse("EUR").unwrap(),
                at("2017-03-04T12:00:00+01:00"),
                &Rounding::default(),
            )
            .unwrap();
        assert_eq!(c.from_leg.date.to_string(), "2017-03-03");
        assert_eq!(c.to.amount().to_string(), "100.00");
        assert_eq!(c.rule, "half_up:2");
    }

    #[test]
    fn ecb_time_decides_the_day() {
        let book = book_from_fixture(4);
        // 23:30 UTC on Thursday 2017-03-02 is already Friday in Frankfurt.
        let c = book
            .convert(
                money("10", "USD"),
                CurrencyCode::parse("JPY").unwrap(),
                at("2017-03-02T23:30:00Z"),
                &Rounding::default(),
            )
            .unwrap();
        assert_eq!(c.to_leg.date.to_string(), "2017-03-03");
        // 10 × 120.83 / 1.0565 = 1143.70... → JPY has no minor unit: 1144.
        assert_eq!(c.to.amount().to_string(), "1144");
    }

    #[test]
    fn too_old_or_unknown_is_missing_never_zero() {
        let book = book_from_fixture(4);
        let eur = CurrencyCode::parse("EUR").unwrap();
        // Five days after the last publication: beyond the four-day maximum age.
        let e = book
            .convert(
                money("1", "USD"),
                eur,
                at("2017-03-08T12:00:00+01:00"),
                &Rounding::default(),
            )
            .unwrap_err();
        assert!(matches!(e, FxError::Missing { .. }), "{e}");
        // Before the file's first day.
        assert!(
            book.convert(
                money("1", "USD"),
                eur,
                at("2016-01-04T12:00:00+01:00"),
                &Rounding::default()
            )
            .is_err()
        );
        // A currency the ECB does not publish, with no manual rate.
        assert!(
            book.convert(
                money("1", "AED"),
                eur,
                at("2017-03-03T12:00:00+01:00"),
                &Rounding::default()
            )
            .is_err()
        );
    }

    #[test]
    fn manual_rates_fill_gaps_and_can_be_pegged() {
        let docs = vec![
            RateDoc {
            source: RateSource::Ecb,
            hash: "e".into(),
            fetched_at: Utc::now(),
            origin: "t".into(),
            days: vec![RateDay {
                date: NaiveDate::from_ymd_opt(2024, 6, 28).unwrap(),
                rates: [("USD".to_string(), Decimal::new(10705, 4))].into(),
            }],
            manual: vec![],
            },
            RateDoc {
            source: RateSource::Manual,
            hash: "m".into(),
            fetched_at: Utc::now(),
            origin: "t".into(),
            days: vec![],
            manual: crate::fx::rates::parse_manual(
                "[[rate]]\ncurrency = \"AED\"\nbase = \"USD\"\nrate = \"3.6725\"\nvalid_from = 1997-11-01\nsource = \"peg\"\n",
            )
            .unwrap(),
            },
        ];
        let book = RateBook::new(docs, 4);
        let leg = book
            .leg("AED", NaiveDate::from_ymd_opt(2024, 6, 29).unwrap())
            .unwrap();
        assert_eq!(leg.source, "manual");
        assert_eq!(leg.per_eur, Decimal::new(36725, 4) * Decimal::new(10705, 4));
        assert_eq!(leg.via.unwrap().date.to_string(), "2024-06-28");
    }

    #[test]
    fn rounding_at_the_half() {
        // 1 unit at a cross rate giving exactly x.xx5.
        let v = convert_amount(
            Decimal::new(2001, 3),
            Decimal::ONE,
            Decimal::new(5, 0),
            RoundingMode::HalfUp,
            2,
        )
        .unwrap();
        assert_eq!(v.to_string(), "10.01"); // 10.005 → 10.01
        let v = convert_amount(
            Decimal::new(2001, 3),
            Decimal::ONE,
            Decimal::new(5, 0),
            RoundingMode::HalfEven,
            2,
        )
        .unwrap();
        assert_eq!(v.to_string(), "10.00");
        let v = convert_amount(
            Decimal::new(-2001, 3),
            Decimal::ONE,
            Decimal::new(5, 0),
            RoundingMode::HalfUp,
            2,
        )
        .unwrap();
        assert_eq!(v.to_string(), "-10.01");
        // KWD has three decimals, CLF four, JPY none; HUF two.
        assert_eq!(
            RoundingMode::HalfUp
                .round(Decimal::new(12345, 4), 3)
                .to_string(),
            "1.235"
        );
        assert_eq!(
            RoundingMode::Down
                .round(Decimal::new(123456, 5), 4)
                .to_string(),
            "1.2345"
        );
    }

    /// Exact reference: the same quantity as a fraction of i128s, rounded by hand.
    fn exact(amount: Decimal, from: Decimal, to: Decimal, mode: RoundingMode, dp: u32) -> Decimal {
        let (a, sa) = (amount.mantissa(), amount.scale());
        let (f, sf) = (from.mantissa(), from.scale());
        let (t, st) = (to.mantissa(), to.scale());
        // value = a·t·10^sf / (f·10^(sa+st)); scaled by 10^dp.
        let mut num = a * t * 10i128.pow(sf) * 10i128.pow(dp);
        let mut den = f * 10i128.pow(sa + st);
        if den < 0 {
            num = -num;
            den = -den;
        }
        let q = num.div_euclid(den);
        let r = num.rem_euclid(den);
        // q = floor(value), r its remainder: the value lies between q and q + 1.
        let neg = num < 0;
        let twice = 2 * r;
        let rounded = if r == 0 {
            q
        } else {
            match mode {
                RoundingMode::Down => {
                    if neg {
                        q + 1
                    } else {
                        q
                    }
                }
                RoundingMode::Up => {
                    if neg {
                        q
                    } else {
                        q + 1
                    }
                }
                // Half away from zero: for a negative value q is the side away from zero.
                RoundingMode::HalfUp => match (neg, twice.cmp(&den)) {
                    (false, std::cmp::Ordering::Less) => q,
                    (false, _) => q + 1,
                    (true, std::cmp::Ordering::Greater) => q + 1,
                    (true, _) => q,
                },
                RoundingMode::HalfEven => match twice.cmp(&den) {
                    std::cmp::Ordering::Less => q,
                    std::cmp::Ordering::Greater => q + 1,
                    std::cmp::Ordering::Equal => {
                        if q % 2 == 0 {
                            q
                        } else {
                            q + 1
                        }
                    }
                },
            }
        };
        Decimal::from_i128_with_scale(rounded, dp)
    }

    static FIXTURE_BOOK: std::sync::LazyLock<RateBook> =
        std::sync::LazyLock::new(|| book_from_fixture(4));

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn conversion_matches_exact_arithmetic(
            units in 0i64..10_000_000_000,
            scale in prop::sample::select(vec![0u32, 2, 3, 4]),
            from in 1i64..100_000_000,
            from_scale in 0u32..7,
            to in 1i64..100_000_000,
            to_scale in 0u32..7,
            dp in prop::sample::select(vec![0u32, 2, 3, 4]),
            mode in prop::sample::select(vec![RoundingMode::HalfUp, RoundingMode::HalfEven, RoundingMode::Down, RoundingMode::Up]),
        ) {
            let amount = Decimal::new(units, scale);
            let (rf, rt) = (Decimal::new(from, from_scale), Decimal::new(to, to_scale));
            let got = convert_amount(amount, rf, rt, mode, dp).unwrap();
            prop_assert_eq!(got, exact(amount, rf, rt, mode, dp));
        }

        #[test]
        fn real_currencies_and_dates(
            cents in 1i64..100_000_000,
            from in prop::sample::select(vec!["USD", "JPY", "GBP", "HUF", "CHF", "CNY", "KRW", "EUR"]),
            to in prop::sample::select(vec!["EUR", "JPY", "HUF", "USD", "KRW", "SEK"]),
            day in 0i64..60,
        ) {
            let book = &*FIXTURE_BOOK;
            let cf = CurrencyCode::parse(from).unwrap();
            let amount = Money::new(Decimal::new(cents, cf.minor_units()), cf).unwrap();
            let date = NaiveDate::from_ymd_opt(2016, 12, 10).unwrap() + chrono::Duration::days(day);
            let t = at(&format!("{date}T12:00:00+01:00"));
            let c = book.convert(amount, CurrencyCode::parse(to).unwrap(), t, &Rounding::default()).unwrap();
            let want = exact(amount.amount(), c.from_leg.per_eur, c.to_leg.per_eur, RoundingMode::HalfUp, c.to.currency().minor_units());
            prop_assert_eq!(c.to.amount(), want);
            prop_assert!(c.from_leg.date <= date && (date - c.from_leg.date).num_days() <= 4);
        }
    }
}
