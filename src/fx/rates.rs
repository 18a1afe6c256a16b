//! Rate documents: the ECB reference-rate XML (daily, 90 days, full history) and the manual
//! table finance keeps for currencies the ECB does not publish. Pure: bytes in, documents out.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::FxError;
use crate::adapter::tree::Node;

/// Where a rate document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateSource {
    Ecb,
    Manual,
}

impl RateSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            RateSource::Ecb => "ecb",
            RateSource::Manual => "manual",
        }
    }
}

/// One ECB publication day: EUR 1 = `rate` units of each currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateDay {
    pub date: NaiveDate,
    /// Currency code → units per EUR (codes kept as published, e.g. HRK, RUB).
    pub rates: BTreeMap<String, Decimal>,
}

/// A manual rate, valid over a date range: 1 `base` = `rate` units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualRate {
    pub currency: String,
    /// `EUR`, or a currency the ECB publishes (the AED is pegged to the USD).
    #[serde(default = "eur")]
    pub base: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    pub valid_from: NaiveDate,
    /// Inclusive; open-ended when absent.
    #[serde(default)]
    pub valid_to: Option<NaiveDate>,
    /// Where finance took the rate from.
    pub source: String,
}

fn eur() -> String {
    "EUR".into()
}

/// A stored rate document: its content hash, when it was fetched, and its rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateDoc {
    pub source: RateSource,
    /// SHA-256 (hex) of the document bytes as fetched or read.
    pub hash: String,
    pub fetched_at: DateTime<Utc>,
    /// Where it was read from (a URL or a file name), for people.
    pub origin: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<RateDay>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manual: Vec<ManualRate>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses an ECB eurofxref XML file (daily, 90-day or full history). Days come out oldest
/// first, whatever the file's order; single or double quotes, namespaces and whitespace are
/// all accepted. A day twice, a bad date or a non-positive rate is an error naming it.
pub fn parse_ecb(bytes: &[u8]) -> Result<Vec<RateDay>, FxError> {
    let bad = |m: String| FxError::Document(format!("ECB rates: {m}"));
    let doc = crate::adapter::xml::parse_xml(bytes).map_err(|e| bad(e.0))?;
    let envelope = doc
        .get("Envelope")
        .ok_or_else(|| bad("no gesmes:Envelope root".into()))?;
    let outer = envelope
        .get("Cube")
        .ok_or_else(|| bad("no Cube element".into()))?;
    let days: Vec<&Node> = match outer.get("Cube") {
        Some(Node::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    let mut out: BTreeMap<NaiveDate, RateDay> = BTreeMap::new();
    for day in days {
        let time = day
            .get("@time")
            .and_then(Node::scalar_text)
            .ok_or_else(|| bad("a day Cube without time".into()))?;
        let date = NaiveDate::parse_from_str(time.trim(), "%Y-%m-%d")
            .map_err(|_| bad(format!("time '{time}' is not YYYY-MM-DD")))?;
        let entries: Vec<&Node> = match day.get("Cube") {
            Some(Node::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => Vec::new(),
        };
        let mut rates = BTreeMap::new();
        for e in entries {
            let cur = e
                .get("@currency")
                .and_then(Node::scalar_text)
                .ok_or_else(|| bad(format!("{date}: a rate without currency")))?
                .trim()
                .to_string();
            if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(format!(
                    "{date}: currency '{cur}' is not a 3-letter code"
                )));
            }
            let text = e
                .get("@rate")
                .and_then(Node::scalar_text)
                .ok_or_else(|| bad(format!("{date} {cur}: no rate")))?;
            let rate = crate::model::money::parse_decimal(text.trim())
                .map_err(|_| bad(format!("{date} {cur}: rate '{text}' is not a decimal")))?;
            if rate <= Decimal::ZERO {
                return Err(bad(format!("{date} {cur}: rate must be positive")));
            }
            if rates.insert(cur.clone(), rate).is_some() {
                return Err(bad(format!("{date}: {cur} is given twice")));
            }
        }
        if out.insert(date, RateDay { date, rates }).is_some() {
            return Err(bad(format!("{date} appears twice")));
        }
    }
    if out.is_empty() {
        return Err(bad("no rate days".into()));
    }
    Ok(out.into_values().collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualFile {
    #[serde(default, rename = "rate")]
    rates: Vec<ManualRateToml>,
}

/// A manual rate as written in TOML (dates are TOML dates).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRateToml {
    currency: String,
    #[serde(default = "eur")]
    base: String,
    rate: String,
    valid_from: toml::value::Datetime,
    #[serde(default)]
    valid_to: Option<toml::value::Datetime>,
    source: String,
}

struct ManualFile2 {
    rates: Vec<ManualRate>,
}

/// Parses and checks finance's manual rate table (`config/fx/manual-rates.toml`): every
/// problem, with the entry it is about.
pub fn parse_manual(text: &str) -> Result<Vec<ManualRate>, FxError> {
    let file: ManualFile =
        toml::from_str(text).map_err(|e| FxError::Document(format!("manual rates: {e}")))?;
    let mut problems = Vec::new();
    let date = |d: &toml::value::Datetime, at: &str, problems: &mut Vec<String>| match d
        .date
        .and_then(|x| NaiveDate::from_ymd_opt(x.year.into(), x.month.into(), x.day.into()))
    {
        Some(n) if d.time.is_none() => Some(n),
        _ => {
            problems.push(format!("{at}: dates are written YYYY-MM-DD"));
            None
        }
    };
    let mut rates = Vec::new();
    for (i, r) in file.rates.iter().enumerate() {
        let at = format!("rate[{i}] ({})", r.currency);
        let from = date(&r.valid_from, &at, &mut problems);
        let to = r
            .valid_to
            .as_ref()
            .and_then(|t| date(t, &at, &mut problems));
        let rate = crate::model::money::parse_decimal(r.rate.trim()).ok();
        if rate.is_none() {
            problems.push(format!("{at}: rate '{}' is not a decimal", r.rate));
        }
        if let (Some(from), Some(rate)) = (from, rate) {
            rates.push(ManualRate {
                currency: r.currency.clone(),
                base: r.base.clone(),
                rate,
                valid_from: from,
                valid_to: to,
                source: r.source.clone(),
            });
        }
    }
    let file = ManualFile2 { rates };
    for (i, r) in file.rates.iter().enumerate() {
        let at = format!("rate[{i}] ({})", r.currency);
        for code in [&r.currency, &r.base] {
            if crate::model::CurrencyCode::parse(code).is_err() {
                problems.push(format!("{at}: '{code}' is not an ISO 4217 currency"));
            }
        }
        if r.rate <= Decimal::ZERO {
            problems.push(format!("{at}: rate must be positive"));
        }
        if r.valid_to.is_some_and(|t| t < r.valid_from) {
            problems.push(format!("{at}: valid_to is before valid_from"));
        }
        if r.source.trim().is_empty() {
            problems.push(format!("{at}: source must say where the rate comes from"));
        }
        // Overlapping validity for the same currency is ambiguous.
        for (j, o) in file.rates.iter().enumerate().skip(i + 1) {
            if o.currency == r.currency {
                let end = |x: &ManualRate| x.valid_to.unwrap_or(NaiveDate::MAX);
                if r.valid_from <= end(o) && o.valid_from <= end(r) {
                    problems.push(format!(
                        "{at}: overlaps rate[{j}] for {} (validity dates)",
                        r.currency
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(file.rates)
    } else {
        Err(FxError::Document(format!(
            "manual rates: {}",
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/fx-ecb")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn daily_file_parses() {
        let days = parse_ecb(&fixture("eurofxref-daily-2022-07-08.xml")).unwrap();
        assert_eq!(days.len(), 1);
        let d = &days[0];
        assert_eq!(d.rates["USD"].to_string(), "1.1252");
        assert_eq!(d.rates["GBP"].to_string(), "0.84770");
        assert!(d.rates.len() >= 29);
    }

    #[test]
    fn ninety_day_history_parses_oldest_first() {
        let days = parse_ecb(&fixture("eurofxref-hist-90d-2017-03-03.xml")).unwrap();
        assert_eq!(days.len(), 64);
        assert!(days.windows(2).all(|w| w[0].date < w[1].date));
        let last = days.last().unwrap();
        assert_eq!(last.date.to_string(), "2017-03-03");
        assert_eq!(last.rates["USD"].to_string(), "1.0565");
        assert_eq!(last.rates["HRK"].to_string(), "7.4163");
        // No weekend days are published.
        use chrono::Datelike;
        assert!(
            days.iter()
                .all(|d| d.date.weekday().num_days_from_monday() < 5)
        );
    }

    #[test]
    fn broken_documents_are_refused_with_the_place() {
        let e = parse_ecb(b"<Envelope><Cube><Cube time='2024-13-01'/></Cube></Envelope>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("2024-13-01"), "{e}");
        let e = parse_ecb(b"<Envelope><Cube><Cube time='2024-01-02'><Cube currency='USD' rate='-1'/></Cube></Cube></Envelope>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("USD") && e.contains("positive"), "{e}");
        assert!(parse_ecb(b"<!DOCTYPE x [<!ENTITY a 'b'>]><Envelope/>").is_err());
    }

    #[test]
    fn manual_table_checks() {
        let ok = r#"
[[rate]]
currency = "AED"
base = "USD"
rate = "3.6725"
valid_from = 1997-11-01
source = "CBUAE peg"
"#;
        assert_eq!(parse_manual(ok).unwrap()[0].base, "USD");
        let bad = r#"
[[rate]]
currency = "VND"
rate = "27000"
valid_from = 2024-01-01
valid_to = 2024-12-31
source = "SBV"
[[rate]]
currency = "VND"
rate = "27500"
valid_from = 2024-06-01
source = "SBV"
[[rate]]
currency = "XYZ"
rate = "0"
valid_from = 2024-01-01
source = ""
"#;
        let e = parse_manual(bad).unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
        assert!(e.contains("'XYZ'"), "{e}");
        assert!(e.contains("positive"), "{e}");
    }
}
