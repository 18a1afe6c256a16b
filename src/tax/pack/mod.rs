//! Rule packs: the tax and customs data (`config/rules/*.toml`), each with a version. Parsing
//! is strict; validation reports every problem with the row it is in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::model::CurrencyCode;

mod parse;

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
    /// The classes supplied electronically (`supply = "electronic"`: e-books): taxed where
    /// the buyer is, without customs or import thresholds.
    pub electronic: BTreeSet<String>,
    /// HS prefix → class.
    pub goods_classes: Vec<(String, String)>,
    pub thresholds: Vec<Threshold>,
    pub duties: Vec<Duty>,
    pub regimes: Vec<Regime>,
    /// Look-ups by key instead of scans over every row (built once, when the pack is parsed;
    /// the rows above are not changed after).
    index: Index,
}

/// Row positions by the keys the engine looks up.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Jurisdiction → its rate rows.
    rates: HashMap<String, Vec<usize>>,
    /// HS prefix → class.
    hs: HashMap<String, String>,
    /// Destination → its duty rows.
    duties: HashMap<String, Vec<usize>>,
    /// Country → its regime.
    regimes: HashMap<String, usize>,
}

impl Index {
    fn of(p: &Pack) -> Index {
        let mut ix = Index::default();
        for (i, r) in p.rates.iter().enumerate() {
            ix.rates.entry(r.jurisdiction.clone()).or_default().push(i);
        }
        ix.hs = p.goods_classes.iter().cloned().collect();
        for (i, d) in p.duties.iter().enumerate() {
            ix.duties.entry(d.destination.clone()).or_default().push(i);
        }
        for (i, r) in p.regimes.iter().enumerate().rev() {
            for c in &r.countries {
                ix.regimes.insert(c.clone(), i);
            }
        }
        ix
    }
}

/// The class of goods without a more specific rule.
pub const STANDARD: &str = "standard";

/// The regime kinds the engine implements.
pub const REGIME_KINDS: &[&str] = &[
    "eu", "uk", "us", "cn_cbec", "au", "nz", "no", "sg", "ch", "jp", "ca",
];

impl Pack {
    /// Parses and validates a pack; every problem is reported with its row.
    pub fn parse(text: &str) -> Result<Pack, Vec<String>> {
        let mut pack = parse::pack(text)?;
        pack.index = Index::of(&pack);
        Ok(pack)
    }

    /// The goods class of an HS code (longest prefix; `standard` otherwise).
    pub fn goods_class(&self, hs: Option<&str>) -> String {
        self.hs_class(hs)
            .map(|(_, c)| c.to_string())
            .unwrap_or_else(|| STANDARD.into())
    }

    /// The longest HS prefix rule that matches, and its class.
    fn hs_class<'h>(&self, hs: Option<&'h str>) -> Option<(&'h str, &str)> {
        let hs = hs?;
        (1..=hs.len()).rev().find_map(|n| {
            let prefix = hs.get(..n)?;
            self.index.hs.get(prefix).map(|c| (prefix, c.as_str()))
        })
    }

    /// The rate rows of a jurisdiction.
    pub fn rates_in(&self, jurisdiction: &str) -> impl Iterator<Item = &Rate> {
        self.index
            .rates
            .get(jurisdiction)
            .into_iter()
            .flatten()
            .map(|&i| &self.rates[i])
    }

    /// The class of an order line and why: a named class (`(class, who named it)`, e.g. the
    /// line or its listing; it must be declared), else the longest HS prefix rule, else
    /// `standard`. `Err` says why it cannot be decided.
    pub fn line_class(
        &self,
        hs: Option<&str>,
        named: Option<(&str, &str)>,
    ) -> Result<(String, String), String> {
        if let Some((c, by)) = named {
            return if c == STANDARD || self.classes.contains_key(c) {
                Ok((c.to_string(), format!("named by {by}")))
            } else {
                Err(format!(
                    "{by} names tax class '{c}', which pack {} does not declare",
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

    /// Whether a class is supplied electronically rather than shipped.
    pub fn is_electronic(&self, class: &str) -> bool {
        self.electronic.contains(class)
    }

    pub fn rate(&self, jurisdiction: &str, kind: &str, class: &str, d: NaiveDate) -> Option<&Rate> {
        self.rates_in(jurisdiction)
            .find(|r| r.kind == kind && r.class == class && r.valid.covers(d))
    }

    /// Any tax kind of a jurisdiction for a class.
    pub fn rates_of(&self, jurisdiction: &str, class: &str, d: NaiveDate) -> Vec<&Rate> {
        self.rates_in(jurisdiction)
            .filter(|r| r.class == class && r.valid.covers(d))
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
        let of_destination = self.index.duties.get(destination);
        let rows = || {
            of_destination
                .into_iter()
                .flatten()
                .map(|&i| &self.duties[i])
                .filter(move |r| hs.starts_with(r.hs_prefix.as_str()) && r.valid.covers(d))
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
        self.index.regimes.get(country).map(|&i| &self.regimes[i])
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

    /// The indexed look-ups answer exactly what a scan over every row answers, for every row
    /// of the shipped pack on the days around its validity.
    #[test]
    fn indexed_look_ups_match_a_scan() {
        let p = shipped();
        for r in &p.rates {
            let ends = [Some(r.valid.from), r.valid.to];
            for d in ends
                .into_iter()
                .flatten()
                .flat_map(|d| [d.pred_opt(), Some(d), d.succ_opt()])
            {
                let d = d.unwrap();
                let scan = p.rates.iter().find(|x| {
                    x.jurisdiction == r.jurisdiction
                        && x.kind == r.kind
                        && x.class == r.class
                        && x.valid.covers(d)
                });
                let got = p.rate(&r.jurisdiction, &r.kind, &r.class, d);
                assert_eq!(
                    got.map(|x| x as *const Rate),
                    scan.map(|x| x as *const Rate)
                );
            }
        }
        for (prefix, _) in &p.goods_classes {
            let hs = format!("{prefix:0<10}");
            let scan = p
                .goods_classes
                .iter()
                .filter(|(q, _)| hs.starts_with(q.as_str()))
                .max_by_key(|(q, _)| q.len())
                .map(|(_, c)| c.clone());
            assert_eq!(
                Some(p.goods_class(Some(&hs))),
                scan.or(Some(STANDARD.into()))
            );
        }
        for r in &p.regimes {
            for c in &r.countries {
                let scan = p.regimes.iter().find(|x| x.countries.contains(c));
                assert_eq!(
                    p.regime_of(c).map(|x| x.kind.clone()),
                    scan.map(|x| x.kind.clone())
                );
            }
        }
        for d in &p.duties {
            let hs = format!("{:0<10}", d.hs_prefix);
            let day = d.valid.from;
            let scan = p
                .duties
                .iter()
                .filter(|x| {
                    x.destination == d.destination
                        && hs.starts_with(x.hs_prefix.as_str())
                        && x.valid.covers(day)
                        && x.origin.is_empty()
                })
                .max_by_key(|x| x.hs_prefix.len())
                .map(|x| x as *const Duty);
            if let DutyLookup::Rule(got) = p.duty_for(&d.destination, &hs, None, day) {
                assert_eq!(Some(got as *const Duty), scan);
            }
        }
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
        let named = p
            .line_class(Some("4901990000"), Some(("standard", "the line")))
            .unwrap();
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
            p.line_class(None, Some(("nope", "the line")))
                .unwrap_err()
                .contains("'nope'")
        );
    }

    #[test]
    fn an_electronic_class_has_no_hs_codes_and_supply_is_checked() {
        let text = r#"
version = "x"
published = 2026-01-01
[[class]]
id = "ebooks"
description = "e-books"
supply = "electronic"
[[goods_class]]
hs_prefix = "4901"
class = "ebooks"
"#;
        let e = Pack::parse(text).unwrap_err().join("\n");
        assert!(
            e.contains("goods_class[0] (\"4901\"): class 'ebooks' is supplied electronically"),
            "{e}"
        );
        let bad = text.replace("\"electronic\"", "\"digital\"");
        let e = Pack::parse(&bad).unwrap_err().join("\n");
        assert!(e.contains("unknown variant `digital`"), "{e}");
        assert!(shipped().is_electronic("ebooks"));
        assert!(!shipped().is_electronic("books"));
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
