//! Reading a pack file: the rows as written (strict: unknown keys are errors), then every
//! section checked, each problem reported with its row (`rate[3] (DE vat reduced): ...`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{
    Duty, DutyRate, Pack, REGIME_KINDS, Rate, Regime, RoundingLevel, STANDARD, Threshold, Validity,
};
use crate::model::{CountryCode, CurrencyCode};

/// Parses and validates a pack.
pub(super) fn pack(text: &str) -> Result<Pack, Vec<String>> {
    let f: PackFile =
        toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
    let mut c = Check::default();
    if f.version.trim().is_empty() {
        c.push("version: must not be empty".into());
    }
    let published = toml_date(&f.published);
    if published.is_none() {
        c.push("published: must be a date".into());
    }
    let classes = classes(&f.class, &mut c);
    let known = |class: &str| class == STANDARD || classes.contains_key(class);
    let rates = rates(&f.rate, &known, &mut c);
    let thresholds = thresholds(&f.threshold, &mut c);
    let duties = duties(&f.duty, &mut c);
    let regimes = regimes(&f.regime, &mut c);
    let electronic: BTreeSet<String> = f
        .class
        .iter()
        .filter(|r| r.supply == Supply::Electronic)
        .map(|r| r.id.clone())
        .collect();
    let goods_classes = goods_classes(&f.goods_class, &known, &mut c);
    for (i, (prefix, class)) in goods_classes.iter().enumerate() {
        if electronic.contains(class) {
            c.push(format!(
                "goods_class[{i}] ({prefix:?}): class '{class}' is supplied electronically; HS codes are for goods"
            ));
        }
    }
    if !c.0.is_empty() {
        return Err(c.0);
    }
    Ok(Pack {
        version: f.version,
        published: published.expect("checked"),
        description: f.description,
        rates,
        classes,
        electronic,
        goods_classes,
        thresholds,
        duties,
        regimes,
        index: Default::default(),
    })
}

/// The problems found so far, in the order of the file's sections.
#[derive(Default)]
struct Check(Vec<String>);

impl Check {
    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// A row's validity window.
    fn validity(
        &mut self,
        at: &str,
        from: &toml::value::Datetime,
        to: &Option<toml::value::Datetime>,
    ) -> Option<Validity> {
        let from = toml_date(from).or_else(|| {
            self.push(format!("{at}: effective_from must be a date (YYYY-MM-DD)"));
            None
        })?;
        let to = match to {
            Some(t) => Some(toml_date(t).or_else(|| {
                self.push(format!("{at}: effective_to must be a date (YYYY-MM-DD)"));
                None
            })?),
            None => None,
        };
        if to.is_some_and(|t| t < from) {
            self.push(format!("{at}: effective_to is before effective_from"));
            return None;
        }
        Some(Validity { from, to })
    }

    fn decimal(&mut self, at: &str, field: &str, s: &str) -> Option<Decimal> {
        crate::model::money::parse_decimal(s.trim())
            .ok()
            .or_else(|| {
                self.push(format!("{at}: {field} '{s}' is not a decimal"));
                None
            })
    }
}

fn toml_date(d: &toml::value::Datetime) -> Option<NaiveDate> {
    if d.time.is_some() {
        return None;
    }
    let x = d.date?;
    NaiveDate::from_ymd_opt(x.year.into(), x.month.into(), x.day.into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    version: String,
    published: toml::value::Datetime,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rate: Vec<RateRow>,
    #[serde(default)]
    class: Vec<ClassRow>,
    #[serde(default)]
    goods_class: Vec<GoodsClassRow>,
    #[serde(default)]
    threshold: Vec<ThresholdRow>,
    #[serde(default)]
    duty: Vec<DutyRow>,
    #[serde(default)]
    regime: Vec<RegimeRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateRow {
    jurisdiction: String,
    kind: String,
    class: String,
    rate: String,
    effective_from: toml::value::Datetime,
    #[serde(default)]
    effective_to: Option<toml::value::Datetime>,
    source: String,
}

/// A goods class the pack knows (`standard` is implicit).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassRow {
    id: String,
    description: String,
    /// How the class is supplied: `goods` (the default) or `electronic` (e-books: taxed
    /// where the buyer is, never imported).
    #[serde(default)]
    supply: Supply,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Supply {
    #[default]
    Goods,
    Electronic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoodsClassRow {
    hs_prefix: String,
    class: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdRow {
    id: String,
    amount: String,
    currency: String,
    effective_from: toml::value::Datetime,
    #[serde(default)]
    effective_to: Option<toml::value::Datetime>,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DutyRow {
    destination: String,
    hs_prefix: String,
    /// Only for goods of these origins (preferential rates, additional duties); a row with
    /// origins wins over one without for the same prefix.
    #[serde(default)]
    origin: Vec<String>,
    #[serde(default)]
    rate: Option<String>,
    /// No rule: orders with these goods are held with this reason.
    #[serde(default)]
    hold: Option<String>,
    effective_from: toml::value::Datetime,
    #[serde(default)]
    effective_to: Option<toml::value::Datetime>,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegimeRow {
    kind: String,
    countries: Vec<String>,
    #[serde(default)]
    rounding: Option<String>,
}

fn valid_jurisdiction(j: &str) -> bool {
    if j == "EU" {
        return true;
    }
    let country = j.split('-').next().unwrap_or(j);
    CountryCode::parse(country).is_ok()
        && j.split('-').nth(1).is_none_or(|s| {
            !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_uppercase())
        })
}

fn classes(rows: &[ClassRow], c: &mut Check) -> BTreeMap<String, String> {
    let mut classes = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let ok = !row.id.is_empty()
            && row
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok || row.id == STANDARD {
            c.push(format!(
                "class[{i}] ({}): id must be lowercase letters, digits and _ (and not standard)",
                row.id
            ));
        }
        if row.description.trim().is_empty() {
            c.push(format!(
                "class[{i}] ({}): a description is required",
                row.id
            ));
        }
        if classes
            .insert(row.id.clone(), row.description.clone())
            .is_some()
        {
            c.push(format!("class[{i}] ({}): declared twice", row.id));
        }
    }
    classes
}

fn rates(rows: &[RateRow], known: &dyn Fn(&str) -> bool, c: &mut Check) -> Vec<Rate> {
    let mut rates = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let at = format!("rate[{i}] ({} {} {})", r.jurisdiction, r.kind, r.class);
        if !valid_jurisdiction(&r.jurisdiction) {
            c.push(format!("{at}: unknown jurisdiction '{}'", r.jurisdiction));
        }
        if !["vat", "gst", "consumption_tax", "hst", "pst", "qst"].contains(&r.kind.as_str()) {
            c.push(format!(
                "{at}: kind must be vat, gst, consumption_tax, hst, pst or qst"
            ));
        }
        if r.source.trim().is_empty() {
            c.push(format!("{at}: a source is required"));
        }
        if !known(&r.class) {
            c.push(format!(
                "{at}: class '{}' is not declared (add a [[class]] row)",
                r.class
            ));
        }
        let rate = c.decimal(&at, "rate", &r.rate);
        if let Some(v) = rate
            && !(Decimal::ZERO..=Decimal::from(100)).contains(&v)
        {
            c.push(format!("{at}: rate {v} is out of range (0-100 percent)"));
        }
        if let (Some(rate), Some(valid)) =
            (rate, c.validity(&at, &r.effective_from, &r.effective_to))
        {
            rates.push(Rate {
                jurisdiction: r.jurisdiction.clone(),
                kind: r.kind.clone(),
                class: r.class.clone(),
                rate,
                valid,
                source: r.source.clone(),
            });
        }
    }
    overlaps(
        &rates,
        |r| r.valid,
        |a, b| a.jurisdiction == b.jurisdiction && a.kind == b.kind && a.class == b.class,
        |r| format!("rate {} {} {}", r.jurisdiction, r.kind, r.class),
        c,
    );
    rates
}

fn thresholds(rows: &[ThresholdRow], c: &mut Check) -> Vec<Threshold> {
    let mut thresholds = Vec::new();
    for (i, t) in rows.iter().enumerate() {
        let at = format!("threshold[{i}] ({})", t.id);
        let currency = CurrencyCode::parse(&t.currency)
            .map_err(|e| c.push(format!("{at}: {e}")))
            .ok();
        let amount = c.decimal(&at, "amount", &t.amount);
        if amount.is_some_and(|a| a < Decimal::ZERO) {
            c.push(format!("{at}: amount must not be negative"));
        }
        if t.source.trim().is_empty() {
            c.push(format!("{at}: a source is required"));
        }
        if let (Some(currency), Some(amount), Some(valid)) = (
            currency,
            amount,
            c.validity(&at, &t.effective_from, &t.effective_to),
        ) {
            thresholds.push(Threshold {
                id: t.id.clone(),
                amount,
                currency,
                valid,
                source: t.source.clone(),
            });
        }
    }
    overlaps(
        &thresholds,
        |t| t.valid,
        |a, b| a.id == b.id,
        |t| format!("threshold {}", t.id),
        c,
    );
    thresholds
}

fn duties(rows: &[DutyRow], c: &mut Check) -> Vec<Duty> {
    let mut duties = Vec::new();
    for (i, d) in rows.iter().enumerate() {
        let at = format!("duty[{i}] ({} {:?})", d.destination, d.hs_prefix);
        if !valid_jurisdiction(&d.destination) {
            c.push(format!("{at}: unknown destination '{}'", d.destination));
        }
        if !d.hs_prefix.bytes().all(|b| b.is_ascii_digit()) || d.hs_prefix.len() > 10 {
            c.push(format!("{at}: hs_prefix must be up to 10 digits"));
        }
        for o in &d.origin {
            if CountryCode::parse(o).is_err() {
                c.push(format!(
                    "{at}: origin '{o}' is not an ISO 3166-1 country code"
                ));
            }
        }
        if d.origin
            .iter()
            .enumerate()
            .any(|(k, o)| d.origin[..k].contains(o))
        {
            c.push(format!("{at}: an origin is listed twice"));
        }
        let rate = duty_rate(&at, d, c);
        if let (Some(rate), Some(valid)) =
            (rate, c.validity(&at, &d.effective_from, &d.effective_to))
        {
            duties.push(Duty {
                destination: d.destination.clone(),
                hs_prefix: d.hs_prefix.clone(),
                origin: d.origin.clone(),
                rate,
                valid,
                source: d.source.clone(),
            });
        }
    }
    overlaps(
        &duties,
        |d| d.valid,
        |a, b| {
            // Rows for the same goods overlap when both are for any origin, or when their
            // origin lists share a country.
            let same_origins = (a.origin.is_empty() && b.origin.is_empty())
                || a.origin.iter().any(|o| b.origin.contains(o));
            a.destination == b.destination && a.hs_prefix == b.hs_prefix && same_origins
        },
        |d| format!("duty {} {:?}", d.destination, d.hs_prefix),
        c,
    );
    duties
}

/// Reports every two entries for the same thing (`same`) whose validity windows overlap.
fn overlaps<T>(
    entries: &[T],
    valid: impl Fn(&T) -> Validity,
    same: impl Fn(&T, &T) -> bool,
    name: impl Fn(&T) -> String,
    c: &mut Check,
) {
    for (i, a) in entries.iter().enumerate() {
        for b in entries.iter().skip(i + 1) {
            if same(a, b) && valid(a).overlaps(&valid(b)) {
                c.push(format!(
                    "{}: the entries from {} and from {} overlap",
                    name(a),
                    valid(a).from,
                    valid(b).from
                ));
            }
        }
    }
}

/// A duty row's rate, or the hold it names: exactly one of the two.
fn duty_rate(at: &str, d: &DutyRow, c: &mut Check) -> Option<DutyRate> {
    match (&d.rate, &d.hold) {
        (Some(r), None) => {
            let v = c.decimal(at, "rate", r);
            if let Some(v) = v
                && !(Decimal::ZERO..=Decimal::from(1000)).contains(&v)
            {
                c.push(format!("{at}: rate {v} is out of range"));
            }
            v.map(DutyRate::Percent)
        }
        (None, Some(h)) => Some(DutyRate::Hold(h.clone())),
        _ => {
            c.push(format!("{at}: give exactly one of rate and hold"));
            None
        }
    }
}

fn regimes(rows: &[RegimeRow], c: &mut Check) -> Vec<Regime> {
    let mut regimes = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let at = format!("regime[{i}] ({})", r.kind);
        if !REGIME_KINDS.contains(&r.kind.as_str()) {
            c.push(format!(
                "{at}: unknown kind (known: {})",
                REGIME_KINDS.join(", ")
            ));
        }
        for country in &r.countries {
            if CountryCode::parse(country).is_err() {
                c.push(format!("{at}: unknown country '{country}'"));
            }
            if let Some(other) = seen.insert(country.clone(), r.kind.clone()) {
                c.push(format!("{at}: {country} is already in regime {other}"));
            }
        }
        let rounding = match r.rounding.as_deref() {
            None | Some("per_line") => RoundingLevel::PerLine,
            Some("per_invoice_per_rate") => RoundingLevel::PerInvoicePerRate,
            Some(o) => {
                c.push(format!(
                    "{at}: rounding '{o}' must be per_line or per_invoice_per_rate"
                ));
                RoundingLevel::PerLine
            }
        };
        regimes.push(Regime {
            kind: r.kind.clone(),
            countries: r.countries.clone(),
            rounding,
        });
    }
    regimes
}

fn goods_classes(
    rows: &[GoodsClassRow],
    known: &dyn Fn(&str) -> bool,
    c: &mut Check,
) -> Vec<(String, String)> {
    let mut goods_classes: Vec<(String, String)> = Vec::new();
    for (i, g) in rows.iter().enumerate() {
        let at = format!("goods_class[{i}] ({:?})", g.hs_prefix);
        if g.hs_prefix.is_empty()
            || g.hs_prefix.len() > 10
            || !g.hs_prefix.bytes().all(|b| b.is_ascii_digit())
        {
            c.push(format!("{at}: hs_prefix must be 1 to 10 digits"));
            continue;
        }
        if !known(&g.class) || g.class == STANDARD {
            c.push(format!(
                "{at}: class '{}' is not declared (add a [[class]] row)",
                g.class
            ));
        }
        if goods_classes.iter().any(|(q, _)| q == &g.hs_prefix) {
            c.push(format!("{at}: this prefix is mapped twice"));
        }
        goods_classes.push((g.hs_prefix.clone(), g.class.clone()));
    }
    goods_classes
}
