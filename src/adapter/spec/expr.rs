//! Expressions: how a field's value is found (paths, literals, coalesce, sum, join, when,
//! settings, differences), money specs and `each` paths, checked while the file is read.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::super::path::Path;

/// How a field's value is found. Written either as a path string (`"customer.email"`) or as a
/// table with exactly one of `path`, `value`, `coalesce`, `sum`, `join`, `when`, plus optional
/// `map`, `default` and `date`.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    /// Value translation (e.g. channel status → canonical status). A value not in the map is
    /// treated as absent.
    pub map: Option<BTreeMap<String, String>>,
    /// Used when the value is absent (missing, null or blank).
    pub default: Option<String>,
    /// How to read a date-time.
    pub date: Option<DateFormat>,
    /// Values that mean "absent" for this field only (e.g. a guest's customer id 0).
    pub absent_if: Vec<String>,
    /// A conversion applied to the value.
    pub lookup: Option<Lookup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// A country name ("Singapore") to its ISO 3166-1 alpha-2 code.
    CountryName,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Path(Path),
    Value(String),
    /// The first alternative that gives a value.
    Coalesce(Vec<Expr>),
    /// Sum of every number a wildcard path matches (0 when none).
    Sum(Path),
    /// The present parts joined by `sep`.
    Join {
        parts: Vec<Expr>,
        sep: String,
    },
    /// `then` when the path holds a value other than `false`.
    When {
        path: Path,
        then: String,
    },
    /// A value of the channel instance's `settings` in the gateway config (e.g. the shop's
    /// currency for a channel whose products do not state it).
    Setting(String),
    /// The first number minus the second (e.g. a line's subtotal minus its discounted total).
    Difference(Box<Expr>, Box<Expr>),
}

/// A scalar written in an adapter file (`value = "paid"`, `value = 0`, `default = false`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl Literal {
    fn into_text(self) -> String {
        match self {
            Literal::Text(s) => s,
            Literal::Integer(i) => i.to_string(),
            Literal::Bool(b) => b.to_string(),
        }
    }
}

/// Date-time formats.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DateFormat {
    Named(NamedDateFormat),
    /// A `strftime` pattern read in an IANA zone, e.g.
    /// `{ pattern = "%Y-%m-%d %H:%M:%S", zone = "Asia/Shanghai" }`.
    Pattern(DatePattern),
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedDateFormat {
    Rfc3339,
    Rfc2822,
    /// Seconds since the Unix epoch (number or string), read as UTC.
    Unix,
    /// Milliseconds since the Unix epoch, read as UTC.
    UnixMs,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatePattern {
    pub pattern: String,
    pub zone: String,
}

/// The table form of an expression, as written in TOML (used for reading and the schema).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExprTable {
    path: Option<String>,
    value: Option<Literal>,
    coalesce: Option<Vec<Expr>>,
    sum: Option<String>,
    join: Option<Vec<Expr>>,
    /// Separator for `join` (default one space).
    sep: Option<String>,
    when: Option<String>,
    then: Option<Literal>,
    setting: Option<String>,
    /// Two expressions: the first minus the second.
    difference: Option<Vec<Expr>>,
    map: Option<BTreeMap<String, Literal>>,
    absent_if: Option<Vec<Literal>>,
    lookup: Option<Lookup>,
    default: Option<Literal>,
    date: Option<DateFormat>,
}

/// Schema-only mirror of [`Expr`]'s two written forms.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ExprRepr {
    Path(String),
    Table(Box<ExprTable>),
}

fn path_no_wildcard(text: &str) -> Result<Path, String> {
    let p = Path::parse(text).map_err(|e| e.to_string())?;
    if p.segments()
        .contains(&super::super::path::Segment::Wildcard)
    {
        return Err(format!(
            "path '{text}' has [*]: use `sum` for totals or `each` for arrays"
        ));
    }
    Ok(p)
}

impl TryFrom<ExprTable> for Expr {
    type Error = String;

    fn try_from(t: ExprTable) -> Result<Self, String> {
        let sources = [
            t.path.is_some(),
            t.value.is_some(),
            t.coalesce.is_some(),
            t.sum.is_some(),
            t.join.is_some(),
            t.when.is_some(),
            t.setting.is_some(),
            t.difference.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources != 1 {
            return Err(
                "an expression needs exactly one of `path`, `value`, `coalesce`, `sum`, `join`, `when`, `setting`, `difference`"
                    .into(),
            );
        }
        if t.then.is_some() != t.when.is_some() {
            return Err("`when` and `then` go together".into());
        }
        if t.sep.is_some() && t.join.is_none() {
            return Err("`sep` only applies to `join`".into());
        }
        let kind = if let Some(p) = t.path {
            ExprKind::Path(path_no_wildcard(&p)?)
        } else if let Some(v) = t.value {
            ExprKind::Value(v.into_text())
        } else if let Some(items) = t.coalesce {
            if items.is_empty() {
                return Err("`coalesce` needs at least one alternative".into());
            }
            ExprKind::Coalesce(items)
        } else if let Some(p) = t.sum {
            ExprKind::Sum(Path::parse(&p).map_err(|e| e.to_string())?)
        } else if let Some(parts) = t.join {
            ExprKind::Join {
                parts,
                sep: t.sep.unwrap_or_else(|| " ".into()),
            }
        } else if let Some(name) = t.setting {
            ExprKind::Setting(name)
        } else if let Some(pair) = t.difference {
            let [a, b]: [Expr; 2] = pair
                .try_into()
                .map_err(|_| "`difference` takes exactly two expressions".to_string())?;
            ExprKind::Difference(Box::new(a), Box::new(b))
        } else {
            let when = t.when.expect("counted above");
            ExprKind::When {
                path: path_no_wildcard(&when)?,
                then: t.then.expect("checked above").into_text(),
            }
        };
        Ok(Expr {
            kind,
            map: t.map.map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, v.into_text()))
                    .collect::<BTreeMap<_, _>>()
            }),
            default: t.default.map(Literal::into_text),
            date: t.date,
            absent_if: t
                .absent_if
                .unwrap_or_default()
                .into_iter()
                .map(Literal::into_text)
                .collect(),
            lookup: t.lookup,
        })
    }
}

impl Expr {
    pub fn path(p: Path) -> Self {
        Expr {
            kind: ExprKind::Path(p),
            map: None,
            default: None,
            date: None,
            absent_if: Vec::new(),
            lookup: None,
        }
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Expr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path string or an expression table")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Expr, E> {
                path_no_wildcard(s).map(Expr::path).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Expr, A::Error> {
                let table = ExprTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Expr::try_from(table).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Expr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expr".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ExprRepr::json_schema(generator)
    }
}

/// A money value: an amount and (optionally) its currency. Written as a path string to the
/// amount (the currency is then the order's) or as a table.
#[derive(Debug, Clone)]
pub struct MoneySpec {
    pub amount: Expr,
    /// Where the currency code is; the order currency when omitted.
    pub currency: Option<Expr>,
    /// The amount is an integer count of minor units (cents, fen).
    pub minor_units: bool,
    /// The channel sends a computed value with more decimals than the currency has (a float
    /// unit price); round it half-up to the minor unit instead of refusing it.
    pub round: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MoneyTable {
    amount: Expr,
    #[serde(default)]
    currency: Option<Expr>,
    #[serde(default)]
    minor_units: bool,
    #[serde(default)]
    round: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum MoneyRepr {
    AmountPath(String),
    Table(Box<MoneyTable>),
}

impl<'de> Deserialize<'de> for MoneySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MoneySpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path to the amount or a table with `amount` and `currency`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MoneySpec, E> {
                Ok(MoneySpec {
                    amount: path_no_wildcard(s).map(Expr::path).map_err(E::custom)?,
                    currency: None,
                    minor_units: false,
                    round: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MoneySpec, A::Error> {
                let t = MoneyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MoneySpec {
                    amount: t.amount,
                    currency: t.currency,
                    minor_units: t.minor_units,
                    round: t.round,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for MoneySpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MoneySpec".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        MoneyRepr::json_schema(generator)
    }
}

/// A path to an array (or to one value, which counts as a one-element array); `[*]` allowed.
#[derive(Debug, Clone)]
pub struct Each(pub Path);

impl<'de> Deserialize<'de> for Each {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Path::parse(&s).map(Each).map_err(de::Error::custom)
    }
}

impl JsonSchema for Each {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ArrayPath".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "path to an array; [*] allowed" })
    }
}
