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

/// Parses an ECB rate document, whichever the ECB publishes: the eurofxref XML (daily,
/// 90-day or full history), `eurofxref-hist.csv`, or the `eurofxref-hist.zip` holding it.
/// Days come out oldest first.
pub fn parse_ecb(bytes: &[u8]) -> Result<Vec<RateDay>, FxError> {
    use super::ecb_hist;
    if ecb_hist::is_zip(bytes) {
        return ecb_hist::parse_csv(&ecb_hist::unzip_csv(bytes)?);
    }
    let start = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if start.starts_with(b"Date,") {
        return ecb_hist::parse_csv(start);
    }
    parse_ecb_xml(bytes)
}

/// Parses an ECB eurofxref XML file (daily, 90-day or full history). Days come out oldest
/// first, whatever the file's order; single or double quotes, namespaces and whitespace are
/// all accepted. A day twice, a bad date or a non-positive rate is an error naming it.
fn parse_ecb_xml(bytes: &[u8]) -> Result<Vec<RateDay>, FxError> {
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
    rates: Vec<toml::Spanned<ManualRateToml>>,
}

/// One problem of the manual rate table, with the entry it is about: its line in the file,
/// its position among the `[[rate]]` entries (from 0) and its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualProblem {
    pub line: usize,
    pub entry: usize,
    pub currency: String,
    pub problem: String,
}

impl std::fmt::Display for ManualProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, rate[{}] ({}): {}",
            self.line, self.entry, self.currency, self.problem
        )
    }
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

/// The line (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parses and checks finance's manual rate table (`config/fx/manual-rates.toml`); every
/// problem is reported on its own line with the entry's line and currency.
pub fn parse_manual(text: &str) -> Result<Vec<ManualRate>, FxError> {
    check_manual(text).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        FxError::Document(format!("manual rates:\n{}", lines.join("\n")))
    })
}

/// The manual rate table, or every problem in it. A file that is not TOML is one problem
/// (the TOML parser's message carries its line and column).
pub fn check_manual(text: &str) -> Result<Vec<ManualRate>, Vec<ManualProblem>> {
    let file: ManualFile = toml::from_str(text).map_err(|e| {
        vec![ManualProblem {
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            entry: 0,
            currency: String::new(),
            problem: e.message().to_string(),
        }]
    })?;
    let mut problems = Vec::new();
    // (entry, line, rate): entries keep their own position whatever fails before them.
    let mut rates: Vec<(usize, usize, ManualRate)> = Vec::new();
    for (i, spanned) in file.rates.iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let r = spanned.get_ref();
        let mut problem = |problem: String| {
            problems.push(ManualProblem {
                line,
                entry: i,
                currency: r.currency.clone(),
                problem,
            })
        };
        let date = |d: &toml::value::Datetime| {
            d.date
                .and_then(|x| NaiveDate::from_ymd_opt(x.year.into(), x.month.into(), x.day.into()))
                .filter(|_| d.time.is_none())
        };
        let from = date(&r.valid_from);
        let to = r.valid_to.as_ref().map(date);
        if from.is_none() || to.is_some_and(|t| t.is_none()) {
            problem("dates are written YYYY-MM-DD".into());
        }
        let rate = crate::model::money::parse_decimal(r.rate.trim()).ok();
        if rate.is_none() {
            problem("rate is not a decimal".into());
        }
        for code in [&r.currency, &r.base] {
            if crate::model::CurrencyCode::parse(code).is_err() {
                problem(format!("'{code}' is not an ISO 4217 currency"));
            }
        }
        if rate.is_some_and(|x| x <= Decimal::ZERO) {
            problem("rate must be positive".into());
        }
        if r.source.trim().is_empty() {
            problem("source must say where the rate comes from".into());
        }
        if let (Some(from), Some(rate)) = (from, rate) {
            let valid_to = to.flatten();
            if valid_to.is_some_and(|t| t < from) {
                problem("valid_to is before valid_from".into());
            }
            rates.push((
                i,
                line,
                ManualRate {
                    currency: r.currency.clone(),
                    base: r.base.clone(),
                    rate,
                    valid_from: from,
                    valid_to,
                    source: r.source.clone(),
                },
            ));
        }
    }
    // Overlapping validity for the same currency is ambiguous.
    let end = |x: &ManualRate| x.valid_to.unwrap_or(NaiveDate::MAX);
    for (k, (i, line, r)) in rates.iter().enumerate() {
        for (j, other_line, o) in rates.iter().skip(k + 1) {
            if o.currency == r.currency && r.valid_from <= end(o) && o.valid_from <= end(r) {
                problems.push(ManualProblem {
                    line: *line,
                    entry: *i,
                    currency: r.currency.clone(),
                    problem: format!("validity overlaps rate[{j}] (line {other_line})"),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(rates.into_iter().map(|(_, _, r)| r).collect())
    } else {
        problems.sort_by_key(|p| (p.line, p.entry));
        Err(problems)
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

    #[test]
    fn each_manual_problem_names_its_own_entry_and_line() {
        // The first entry fails to parse; the second must still be rate[1], on its own line.
        let text = r#"# finance's table
[[rate]]
currency = "AED"
base = "USD"
rate = "three"
valid_from = 1997-11-01
source = "CBUAE"

[[rate]]
currency = "SAR "
base = "USD"
rate = "3.75"
valid_from = 1986-06-01
source = "SAMA"
"#;
        let problems = check_manual(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 2, rate[0] (AED): rate is not a decimal",
                "line 9, rate[1] (SAR ): 'SAR ' is not an ISO 4217 currency",
            ],
            "{shown:#?}"
        );
        // One problem per line in the error, never joined with "; ".
        let e = parse_manual(text).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 3, "{e}");
        assert!(!e.contains("; "), "{e}");
    }
}
