//! Rule packs: the tax and customs data (`config/rules/*.toml`), each with a version. Parsing
//! is strict; validation reports every problem with the row it is in.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::model::{CountryCode, CurrencyCode};

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

/// A validity window (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

impl Validity {
    pub fn covers(&self, d: NaiveDate) -> bool {
        self.from <= d && self.to.is_none_or(|t| d <= t)
    }

    fn overlaps(&self, o: &Validity) -> bool {
        self.from <= o.to.unwrap_or(NaiveDate::MAX) && o.from <= self.to.unwrap_or(NaiveDate::MAX)
    }
}

#[derive(Debug, Clone)]
pub struct Rate {
    pub jurisdiction: String,
    /// `vat`, `gst`, `consumption_tax`, `hst`, `pst`, `qst`.
    pub kind: String,
    pub class: String,
    /// Percent.
    pub rate: Decimal,
    pub valid: Validity,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Threshold {
    pub id: String,
    pub amount: Decimal,
    pub currency: CurrencyCode,
    pub valid: Validity,
    pub source: String,
}

#[derive(Debug, Clone)]
pub enum DutyRate {
    Percent(Decimal),
    Hold(String),
}

#[derive(Debug, Clone)]
pub struct Duty {
    pub destination: String,
    pub hs_prefix: String,
    /// Countries of origin the row is for (empty: any origin).
    pub origin: Vec<String>,
    pub rate: DutyRate,
    pub valid: Validity,
    pub source: String,
}

/// What [`Pack::duty_for`] found.
#[derive(Debug, Clone, Copy)]
pub enum DutyLookup<'a> {
    Rule(&'a Duty),
    /// Rows differ by origin and the goods' origin is not known.
    OriginNeeded,
    NoRule,
}

/// How tax amounts are rounded in a regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundingLevel {
    /// Each line's tax to the minor unit (half-up).
    PerLine,
    /// Once per tax rate per invoice, then allocated to lines (Japan's qualified invoices).
    PerInvoicePerRate,
}

#[derive(Debug, Clone)]
pub struct Regime {
    pub kind: String,
    pub countries: Vec<String>,
    pub rounding: RoundingLevel,
}

/// A validated rule pack.
#[derive(Debug, Clone)]
pub struct Pack {
    pub version: String,
    pub published: NaiveDate,
    pub description: String,
    pub rates: Vec<Rate>,
    /// Declared goods classes (id → description); `standard` is implicit.
    pub classes: BTreeMap<String, String>,
    /// HS prefix → class.
    pub goods_classes: Vec<(String, String)>,
    pub thresholds: Vec<Threshold>,
    pub duties: Vec<Duty>,
    pub regimes: Vec<Regime>,
}

/// The class of goods without a more specific rule.
pub const STANDARD: &str = "standard";

/// The regime kinds the engine implements.
pub const REGIME_KINDS: &[&str] = &[
    "eu", "uk", "us", "cn_cbec", "au", "nz", "no", "sg", "ch", "jp", "ca",
];

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

impl Pack {
    /// Parses and validates a pack; every problem is reported with its row.
    #[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
    pub fn parse(text: &str) -> Result<Pack, Vec<String>> {
        let f: PackFile =
            toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
        let mut p = Vec::new();
        let validity = |at: &str,
                        from: &toml::value::Datetime,
                        to: &Option<toml::value::Datetime>,
                        p: &mut Vec<String>|
         -> Option<Validity> {
            let from = toml_date(from).or_else(|| {
                p.push(format!("{at}: effective_from must be a date (YYYY-MM-DD)"));
                None
            })?;
            let to = match to {
                Some(t) => Some(toml_date(t).or_else(|| {
                    p.push(format!("{at}: effective_to must be a date (YYYY-MM-DD)"));
                    None
                })?),
                None => None,
            };
            if to.is_some_and(|t| t < from) {
                p.push(format!("{at}: effective_to is before effective_from"));
                return None;
            }
            Some(Validity { from, to })
        };
        let dec = |at: &str, field: &str, s: &str, p: &mut Vec<String>| {
            crate::model::money::parse_decimal(s.trim())
                .ok()
                .or_else(|| {
                    p.push(format!("{at}: {field} '{s}' is not a decimal"));
                    None
                })
        };
        if f.version.trim().is_empty() {
            p.push("version: must not be empty".into());
        }
        let published = toml_date(&f.published);
        if published.is_none() {
            p.push("published: must be a date".into());
        }

        let mut classes = BTreeMap::new();
        for (i, c) in f.class.iter().enumerate() {
            let ok = !c.id.is_empty()
                && c.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok || c.id == STANDARD {
                p.push(format!(
                    "class[{i}] ({}): id must be lowercase letters, digits and _ (and not standard)",
                    c.id
                ));
            }
            if c.description.trim().is_empty() {
                p.push(format!("class[{i}] ({}): a description is required", c.id));
            }
            if classes
                .insert(c.id.clone(), c.description.clone())
                .is_some()
            {
                p.push(format!("class[{i}] ({}): declared twice", c.id));
            }
        }
        let known = |c: &str| c == STANDARD || classes.contains_key(c);

        let mut rates = Vec::new();
        for (i, r) in f.rate.iter().enumerate() {
            let at = format!("rate[{i}] ({} {} {})", r.jurisdiction, r.kind, r.class);
            if !valid_jurisdiction(&r.jurisdiction) {
                p.push(format!("{at}: unknown jurisdiction '{}'", r.jurisdiction));
            }
            if !["vat", "gst", "consumption_tax", "hst", "pst", "qst"].contains(&r.kind.as_str()) {
                p.push(format!(
                    "{at}: kind must be vat, gst, consumption_tax, hst, pst or qst"
                ));
            }
            if r.source.trim().is_empty() {
                p.push(format!("{at}: a source is required"));
            }
            if !known(&r.class) {
                p.push(format!(
                    "{at}: class '{}' is not declared (add a [[class]] row)",
                    r.class
                ));
            }
            let rate = dec(&at, "rate", &r.rate, &mut p);
            if let Some(v) = rate
                && !(Decimal::ZERO..=Decimal::from(100)).contains(&v)
            {
                p.push(format!("{at}: rate {v} is out of range (0-100 percent)"));
            }
            if let (Some(rate), Some(valid)) = (
                rate,
                validity(&at, &r.effective_from, &r.effective_to, &mut p),
            ) {
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
        for (i, a) in rates.iter().enumerate() {
            for (j, b) in rates.iter().enumerate().skip(i + 1) {
                if a.jurisdiction == b.jurisdiction
                    && a.kind == b.kind
                    && a.class == b.class
                    && a.valid.overlaps(&b.valid)
                {
                    p.push(format!(
                        "rate {} {} {}: the entries from {} and from {} overlap",
                        a.jurisdiction, a.kind, a.class, a.valid.from, b.valid.from
                    ));
                    let _ = j;
                }
            }
        }

        let mut thresholds = Vec::new();
        for (i, t) in f.threshold.iter().enumerate() {
            let at = format!("threshold[{i}] ({})", t.id);
            let currency = CurrencyCode::parse(&t.currency)
                .map_err(|e| p.push(format!("{at}: {e}")))
                .ok();
            let amount = dec(&at, "amount", &t.amount, &mut p);
            if amount.is_some_and(|a| a < Decimal::ZERO) {
                p.push(format!("{at}: amount must not be negative"));
            }
            if t.source.trim().is_empty() {
                p.push(format!("{at}: a source is required"));
            }
            if let (Some(currency), Some(amount), Some(valid)) = (
                currency,
                amount,
                validity(&at, &t.effective_from, &t.effective_to, &mut p),
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
        for (i, a) in thresholds.iter().enumerate() {
            for b in thresholds.iter().skip(i + 1) {
                if a.id == b.id && a.valid.overlaps(&b.valid) {
                    p.push(format!(
                        "threshold {}: the entries from {} and from {} overlap",
                        a.id, a.valid.from, b.valid.from
                    ));
                }
            }
        }

        let mut duties = Vec::new();
        for (i, d) in f.duty.iter().enumerate() {
            let at = format!("duty[{i}] ({} {:?})", d.destination, d.hs_prefix);
            if !valid_jurisdiction(&d.destination) {
                p.push(format!("{at}: unknown destination '{}'", d.destination));
            }
            if !d.hs_prefix.bytes().all(|b| b.is_ascii_digit()) || d.hs_prefix.len() > 10 {
                p.push(format!("{at}: hs_prefix must be up to 10 digits"));
            }
            for o in &d.origin {
                if CountryCode::parse(o).is_err() {
                    p.push(format!(
                        "{at}: origin '{o}' is not an ISO 3166-1 country code"
                    ));
                }
            }
            if d.origin
                .iter()
                .enumerate()
                .any(|(k, o)| d.origin[..k].contains(o))
            {
                p.push(format!("{at}: an origin is listed twice"));
            }
            let rate = match (&d.rate, &d.hold) {
                (Some(r), None) => {
                    let v = dec(&at, "rate", r, &mut p);
                    if let Some(v) = v
                        && !(Decimal::ZERO..=Decimal::from(1000)).contains(&v)
                    {
                        p.push(format!("{at}: rate {v} is out of range"));
                    }
                    v.map(DutyRate::Percent)
                }
                (None, Some(h)) => Some(DutyRate::Hold(h.clone())),
                _ => {
                    p.push(format!("{at}: give exactly one of rate and hold"));
                    None
                }
            };
            if let (Some(rate), Some(valid)) = (
                rate,
                validity(&at, &d.effective_from, &d.effective_to, &mut p),
            ) {
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
        for (i, a) in duties.iter().enumerate() {
            for b in duties.iter().skip(i + 1) {
                // Rows for the same goods overlap when both are for any origin, or when their
                // origin lists share a country.
                let same_origins = (a.origin.is_empty() && b.origin.is_empty())
                    || a.origin.iter().any(|o| b.origin.contains(o));
                if a.destination == b.destination
                    && a.hs_prefix == b.hs_prefix
                    && same_origins
                    && a.valid.overlaps(&b.valid)
                {
                    p.push(format!(
                        "duty {} {:?}: the entries from {} and from {} overlap",
                        a.destination, a.hs_prefix, a.valid.from, b.valid.from
                    ));
                }
            }
        }

        let mut regimes = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (i, r) in f.regime.iter().enumerate() {
            let at = format!("regime[{i}] ({})", r.kind);
            if !REGIME_KINDS.contains(&r.kind.as_str()) {
                p.push(format!(
                    "{at}: unknown kind (known: {})",
                    REGIME_KINDS.join(", ")
                ));
            }
            for c in &r.countries {
                if CountryCode::parse(c).is_err() {
                    p.push(format!("{at}: unknown country '{c}'"));
                }
                if let Some(other) = seen.insert(c.clone(), r.kind.clone()) {
                    p.push(format!("{at}: {c} is already in regime {other}"));
                }
            }
            let rounding = match r.rounding.as_deref() {
                None | Some("per_line") => RoundingLevel::PerLine,
                Some("per_invoice_per_rate") => RoundingLevel::PerInvoicePerRate,
                Some(o) => {
                    p.push(format!(
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
        let mut goods_classes: Vec<(String, String)> = Vec::new();
        for (i, g) in f.goods_class.iter().enumerate() {
            let at = format!("goods_class[{i}] ({:?})", g.hs_prefix);
            if g.hs_prefix.is_empty()
                || g.hs_prefix.len() > 10
                || !g.hs_prefix.bytes().all(|b| b.is_ascii_digit())
            {
                p.push(format!("{at}: hs_prefix must be 1 to 10 digits"));
                continue;
            }
            if !known(&g.class) || g.class == STANDARD {
                p.push(format!(
                    "{at}: class '{}' is not declared (add a [[class]] row)",
                    g.class
                ));
            }
            if goods_classes.iter().any(|(q, _)| q == &g.hs_prefix) {
                p.push(format!("{at}: this prefix is mapped twice"));
            }
            goods_classes.push((g.hs_prefix.clone(), g.class.clone()));
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(Pack {
            version: f.version,
            published: published.expect("checked"),
            description: f.description,
            rates,
            classes,
            goods_classes,
            thresholds,
            duties,
            regimes,
        })
    }

    /// The goods class of an HS code (longest prefix; `standard` otherwise).
    pub fn goods_class(&self, hs: Option<&str>) -> String {
        self.hs_class(hs)
            .map(|(_, c)| c.to_string())
            .unwrap_or_else(|| STANDARD.into())
    }

    /// The longest HS prefix rule that matches, and its class.
    fn hs_class(&self, hs: Option<&str>) -> Option<(&str, &str)> {
        let hs = hs?;
        self.goods_classes
            .iter()
            .filter(|(p, _)| hs.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(p, c)| (p.as_str(), c.as_str()))
    }

    /// The class of an order line and why: the class the line names (it must be declared),
    /// else the longest HS prefix rule, else `standard`. `Err` says why it cannot be decided.
    pub fn line_class(
        &self,
        hs: Option<&str>,
        named: Option<&str>,
    ) -> Result<(String, String), String> {
        if let Some(c) = named {
            return if c == STANDARD || self.classes.contains_key(c) {
                Ok((c.to_string(), "named by the line".into()))
            } else {
                Err(format!(
                    "the line names tax class '{c}', which pack {} does not declare",
                    self.version
                ))
            };
        }
        Ok(match self.hs_class(hs) {
            Some((prefix, class)) => (class.to_string(), format!("HS prefix {prefix}")),
            None if hs.is_some() => (STANDARD.into(), "no HS prefix rule".into()),
            None => (STANDARD.into(), "no HS code".into()),
        })
    }

    pub fn rate(&self, jurisdiction: &str, kind: &str, class: &str, d: NaiveDate) -> Option<&Rate> {
        self.rates.iter().find(|r| {
            r.jurisdiction == jurisdiction
                && r.kind == kind
                && r.class == class
                && r.valid.covers(d)
        })
    }

    /// Any tax kind of a jurisdiction for a class.
    pub fn rates_of(&self, jurisdiction: &str, class: &str, d: NaiveDate) -> Vec<&Rate> {
        self.rates
            .iter()
            .filter(|r| r.jurisdiction == jurisdiction && r.class == class && r.valid.covers(d))
            .collect()
    }

    pub fn threshold(&self, id: &str, d: NaiveDate) -> Option<&Threshold> {
        self.thresholds
            .iter()
            .find(|t| t.id == id && t.valid.covers(d))
    }

    /// The duty rule for an HS code in a destination, for any origin (longest prefix, `""`
    /// the default).
    pub fn duty(&self, destination: &str, hs: &str, d: NaiveDate) -> Option<&Duty> {
        match self.duty_for(destination, hs, None, d) {
            DutyLookup::Rule(r) => Some(r),
            _ => None,
        }
    }

    /// The duty rule for goods of an origin: the most specific row wins (longest prefix, then
    /// a row for the origin over one for any origin). Without an origin, no preference can be
    /// claimed, so a lower rate for some origin does not matter; but when a row for some origin
    /// is as specific as the rule found and could cost more (a higher rate, or a hold: an
    /// additional duty), the duty depends on what is not known: [`DutyLookup::OriginNeeded`].
    pub fn duty_for(
        &self,
        destination: &str,
        hs: &str,
        origin: Option<&str>,
        d: NaiveDate,
    ) -> DutyLookup<'_> {
        let rows = || {
            self.duties.iter().filter(move |r| {
                r.destination == destination
                    && hs.starts_with(r.hs_prefix.as_str())
                    && r.valid.covers(d)
            })
        };
        let applies = |r: &&Duty| {
            r.origin.is_empty() || origin.is_some_and(|o| r.origin.iter().any(|x| x == o))
        };
        let best = rows()
            .filter(applies)
            .max_by_key(|r| (r.hs_prefix.len(), !r.origin.is_empty()));
        let floor = best.map_or(0, |r| r.hs_prefix.len());
        let costs_more = |r: &Duty| match (&r.rate, best.map(|b| &b.rate)) {
            (DutyRate::Percent(x), Some(DutyRate::Percent(y))) => x > y,
            _ => true,
        };
        if origin.is_none()
            && rows().any(|r| !r.origin.is_empty() && r.hs_prefix.len() >= floor && costs_more(r))
        {
            return DutyLookup::OriginNeeded;
        }
        best.map_or(DutyLookup::NoRule, DutyLookup::Rule)
    }

    pub fn regime_of(&self, country: &str) -> Option<&Regime> {
        self.regimes
            .iter()
            .find(|r| r.countries.iter().any(|c| c == country))
    }
}

/// Every pack in `config/rules/`, by version; the newest (by publication date) is active.
#[derive(Debug, Clone, Default)]
pub struct Packs {
    by_version: BTreeMap<String, Arc<Pack>>,
    active: Option<String>,
}

impl Packs {
    /// Loads every `*.toml` of a directory; every problem of every file is reported.
    pub fn load_dir(dir: &std::path::Path) -> Result<Packs, Vec<String>> {
        let mut problems = Vec::new();
        let mut packs = Packs::default();
        let entries =
            std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", f.display()));
                    continue;
                }
            };
            match Pack::parse(&text) {
                Ok(p) => {
                    if packs.by_version.contains_key(&p.version) {
                        problems.push(format!(
                            "{}: version {} is defined twice",
                            f.display(),
                            p.version
                        ));
                    }
                    packs.by_version.insert(p.version.clone(), Arc::new(p));
                }
                Err(ps) => problems.extend(ps.into_iter().map(|m| format!("{}: {m}", f.display()))),
            }
        }
        if packs.by_version.is_empty() && problems.is_empty() {
            problems.push(format!("{}: no rule pack", dir.display()));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        packs.active = packs
            .by_version
            .values()
            .max_by_key(|p| (p.published, p.version.clone()))
            .map(|p| p.version.clone());
        Ok(packs)
    }

    pub fn from_packs(list: Vec<Pack>) -> Packs {
        let mut packs = Packs::default();
        for p in list {
            packs.by_version.insert(p.version.clone(), Arc::new(p));
        }
        packs.active = packs
            .by_version
            .values()
            .max_by_key(|p| (p.published, p.version.clone()))
            .map(|p| p.version.clone());
        packs
    }

    pub fn active(&self) -> Option<Arc<Pack>> {
        self.active
            .as_ref()
            .and_then(|v| self.by_version.get(v).cloned())
    }

    pub fn get(&self, version: &str) -> Option<Arc<Pack>> {
        self.by_version.get(version).cloned()
    }

    pub fn versions(&self) -> impl Iterator<Item = &String> {
        self.by_version.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Pack {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules/2026.11.toml"),
        )
        .unwrap();
        Pack::parse(&text).unwrap_or_else(|e| panic!("{}", e.join("\n")))
    }

    #[test]
    fn the_shipped_pack_is_valid() {
        let p = shipped();
        // Every EU member state has a standard rate today.
        let eu = p.regime_of("DE").unwrap().countries.clone();
        assert_eq!(eu.len(), 27);
        let d = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        for c in eu {
            assert!(p.rate(&c, "vat", "standard", d).is_some(), "{c}");
        }
        assert_eq!(p.goods_class(Some("0902100000")), "food");
        assert_eq!(p.goods_class(Some("6109100010")), "standard");
        assert_eq!(
            p.duty("EU", "6109100010", d).map(|x| x.hs_prefix.as_str()),
            Some("610910")
        );
    }

    #[test]
    fn problems_are_reported_with_their_row() {
        let text = r#"
version = "x"
published = 2026-01-01
[[rate]]
jurisdiction = "ZZ"
kind = "vat"
class = "standard"
rate = "120"
effective_from = 2024-01-01
source = "s"
[[rate]]
jurisdiction = "DE"
kind = "vat"
class = "standard"
rate = "19"
effective_from = 2021-01-01
source = "s"
[[rate]]
jurisdiction = "DE"
kind = "vat"
class = "standard"
rate = "16"
effective_from = 2020-07-01
effective_to = 2021-06-30
source = "s"
[[threshold]]
id = "T"
amount = "1"
currency = "EURO"
effective_from = 2024-01-01
source = "s"
[[duty]]
destination = "EU"
hs_prefix = "61"
effective_from = 2024-01-01
source = "s"
"#;
        let e = Pack::parse(text).unwrap_err().join("\n");
        assert!(
            e.contains("rate[0] (ZZ vat standard): unknown jurisdiction 'ZZ'"),
            "{e}"
        );
        assert!(e.contains("out of range"), "{e}");
        assert!(
            e.contains(
                "rate DE vat standard: the entries from 2021-01-01 and from 2020-07-01 overlap"
            ),
            "{e}"
        );
        assert!(e.contains("threshold[0] (T)"), "{e}");
        assert!(e.contains("give exactly one of rate and hold"), "{e}");
    }

    #[test]
    fn classes_must_be_declared_and_prefixes_unique() {
        let text = r#"
version = "x"
published = 2026-01-01
[[class]]
id = "books"
description = "printed books"
[[class]]
id = "Bad Id"
description = ""
[[rate]]
jurisdiction = "DE"
kind = "vat"
class = "magazines"
rate = "7"
effective_from = 2021-01-01
source = "s"
[[goods_class]]
hs_prefix = "4901"
class = "books"
[[goods_class]]
hs_prefix = "4901"
class = "books"
[[goods_class]]
hs_prefix = "4902"
class = "newspapers"
"#;
        let e = Pack::parse(text).unwrap_err().join("\n");
        for want in [
            "class[1] (Bad Id): id must be lowercase letters, digits and _ (and not standard)",
            "class[1] (Bad Id): a description is required",
            "rate[0] (DE vat magazines): class 'magazines' is not declared",
            "goods_class[1] (\"4901\"): this prefix is mapped twice",
            "goods_class[2] (\"4902\"): class 'newspapers' is not declared",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn a_named_class_wins_over_the_hs_code_and_must_exist() {
        let p = shipped();
        let named = p.line_class(Some("4901990000"), Some("standard")).unwrap();
        assert_eq!(
            named,
            ("standard".to_string(), "named by the line".to_string())
        );
        assert_eq!(p.line_class(Some("4901990000"), None).unwrap().0, "books");
        assert_eq!(
            p.line_class(Some("8517130000"), None).unwrap().0,
            "standard"
        );
        assert!(
            p.line_class(None, Some("nope"))
                .unwrap_err()
                .contains("'nope'")
        );
    }

    #[test]
    fn duty_origins_must_be_countries_and_not_overlap() {
        let text = r#"
version = "x"
published = 2026-01-01
[[duty]]
destination = "EU"
hs_prefix = "6109"
origin = ["JP", "XX", "JP"]
rate = "0"
effective_from = 2024-01-01
source = "s"
[[duty]]
destination = "EU"
hs_prefix = "6109"
origin = ["JP"]
rate = "1"
effective_from = 2025-01-01
source = "s"
[[duty]]
destination = "EU"
hs_prefix = "6109"
origin = ["KR"]
rate = "2"
effective_from = 2025-01-01
source = "s"
"#;
        let e = Pack::parse(text).unwrap_err().join("\n");
        assert!(
            e.contains("origin 'XX' is not an ISO 3166-1 country code"),
            "{e}"
        );
        assert!(e.contains("an origin is listed twice"), "{e}");
        assert!(
            e.contains("duty EU \"6109\": the entries from 2024-01-01 and from 2025-01-01 overlap"),
            "{e}"
        );
        // KR shares the prefix and dates with the JP rows, but not an origin: no overlap.
        assert_eq!(e.matches("overlap").count(), 1, "{e}");
    }
}
