//! Money: an exact decimal amount in an ISO 4217 currency.
//!
//! In JSON a money value is `{"amount": "<decimal string>", "currency": "<ISO 4217>"}`.
//! The amount is never a JSON number and never passes through `f64`. An amount with more
//! decimal places than the currency has minor units is rejected (JPY has 0, KWD 3, CLF 4);
//! trailing zeros do not count, so `"1500.00"` is a valid JPY amount and is stored as `"1500"`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount or a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The code is kept for callers that may show it (config); the message never quotes it,
    /// because in a payload it is the sender's text.
    #[error("is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("is a fund, metal or test code, not a currency with minor units")]
    NotMoney(&'static str),
    #[error("amount is not a decimal number")]
    InvalidAmount,
    #[error("amount is out of range (more than 28 significant digits)")]
    OutOfRange,
    #[error("amount has {scale} decimal places but {currency} has {minor_units}")]
    TooPrecise {
        scale: u32,
        currency: &'static str,
        minor_units: u32,
    },
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(&'static str, &'static str),
    #[error("arithmetic overflow")]
    Overflow,
}

/// An ISO 4217 currency that has minor units (so it can carry money).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode(iso_currency::Currency);

impl CurrencyCode {
    /// Parses an upper-case ISO 4217 alphabetic code. `"usd"`, `"US$"` and `"XXX"` are refused.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let currency = iso_currency::Currency::from_code(code)
            .filter(|c| c.code() == code)
            .ok_or_else(|| MoneyError::UnknownCurrency(truncate_for_error(code)))?;
        if currency.exponent().is_none() {
            return Err(MoneyError::NotMoney(currency.code()));
        }
        Ok(Self(currency))
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// Number of decimal places of the currency's minor unit (ISO 4217 exponent).
    pub fn minor_units(&self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }

    pub fn iso(&self) -> iso_currency::Currency {
        self.0
    }
}

/// Keeps a refused code short where a caller shows it (at most 12 characters).
fn truncate_for_error(s: &str) -> String {
    let mut out: String = s.chars().take(12).collect();
    if s.chars().count() > 12 {
        out.push('…');
    }
    out
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for CurrencyCode {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CurrencyCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CurrencyCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CurrencyCode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 alphabetic currency code with minor units (e.g. EUR, JPY, KWD)"
        })
    }
}

/// An exact amount of money. The amount always has exactly the currency's minor-unit scale.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: CurrencyCode,
}

impl Money {
    /// Builds a money value, refusing amounts more precise than the currency's minor unit.
    pub fn new(amount: Decimal, currency: CurrencyCode) -> Result<Self, MoneyError> {
        let minor_units = currency.minor_units();
        let significant_scale = amount.normalize().scale();
        if significant_scale > minor_units {
            return Err(MoneyError::TooPrecise {
                scale: significant_scale,
                currency: currency.code(),
                minor_units,
            });
        }
        let mut amount = amount;
        amount.rescale(minor_units);
        Ok(Self { amount, currency })
    }

    /// Parses a decimal string such as `"199.00"` or `"-3.5"`. Exponents are not accepted.
    pub fn parse(amount: &str, currency: CurrencyCode) -> Result<Self, MoneyError> {
        Self::new(parse_decimal(amount)?, currency)
    }

    /// Builds a money value from an integer count of minor units (cents, fen, …).
    pub fn from_minor_units(units: i64, currency: CurrencyCode) -> Result<Self, MoneyError> {
        let amount = Decimal::try_from_i128_with_scale(i128::from(units), currency.minor_units())
            .map_err(|_| MoneyError::OutOfRange)?;
        Self::new(amount, currency)
    }

    pub fn zero(currency: CurrencyCode) -> Self {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_units());
        Self { amount, currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> CurrencyCode {
        self.currency
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(sum, self.currency)
    }

    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let diff = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(diff, self.currency)
    }

    /// Multiplies by an integer quantity (exact).
    pub fn checked_mul_qty(&self, qty: u32) -> Result<Money, MoneyError> {
        let product = self
            .amount
            .checked_mul(Decimal::from(qty))
            .ok_or(MoneyError::Overflow)?;
        Money::new(product, self.currency)
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(
                self.currency.code(),
                other.currency.code(),
            ));
        }
        Ok(())
    }
}

/// Parses a plain decimal string (`"12"`, `"-0.50"`, `"199.00"`); no exponent, no spaces.
pub fn parse_decimal(s: &str) -> Result<Decimal, MoneyError> {
    let plain = !s.is_empty()
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && (b == b'-' || b == b'+')));
    if !plain {
        return Err(MoneyError::InvalidAmount);
    }
    Decimal::from_str_exact(s).map_err(|e| match e {
        rust_decimal::Error::ExceedsMaximumPossibleValue
        | rust_decimal::Error::LessThanMinimumPossibleValue
        | rust_decimal::Error::Underflow
        | rust_decimal::Error::ScaleExceedsMaximumPrecision(_) => MoneyError::OutOfRange,
        _ => {
            // from_str_exact reports too many digits as a generic conversion error.
            let digits = s.bytes().filter(u8::is_ascii_digit).count();
            if digits > 28 {
                MoneyError::OutOfRange
            } else {
                MoneyError::InvalidAmount
            }
        }
    })
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyRepr {
    amount: String,
    currency: String,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MoneyRepr {
            amount: self.amount.to_string(),
            currency: self.currency.code().to_string(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = MoneyRepr::deserialize(d)?;
        let currency = CurrencyCode::parse(&repr.currency).map_err(serde::de::Error::custom)?;
        Money::parse(&repr.amount, currency).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let currency = generator.subschema_for::<CurrencyCode>();
        schemars::json_schema!({
            "type": "object",
            "description": "An exact amount: decimal string amount with at most the currency's minor-unit decimals",
            "properties": {
                "amount": { "type": "string", "pattern": "^[-+]?[0-9]+(\\.[0-9]+)?$" },
                "currency": currency
            },
            "required": ["amount", "currency"],
            "additionalProperties": false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(c: &str) -> CurrencyCode {
        CurrencyCode::parse(c).unwrap()
    }

    #[test]
    fn currency_codes_are_strict() {
        assert_eq!(cur("EUR").minor_units(), 2);
        assert_eq!(cur("JPY").minor_units(), 0);
        assert_eq!(cur("KWD").minor_units(), 3);
        assert_eq!(cur("CLF").minor_units(), 4);
        assert!(matches!(
            CurrencyCode::parse("usd"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            CurrencyCode::parse("US$"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert_eq!(
            CurrencyCode::parse("XXX").unwrap_err(),
            MoneyError::NotMoney("XXX")
        );
        assert_eq!(
            CurrencyCode::parse("XAU").unwrap_err(),
            MoneyError::NotMoney("XAU")
        );
    }

    #[test]
    fn precision_is_checked_against_minor_units() {
        assert_eq!(
            Money::parse("1500", cur("JPY"))
                .unwrap()
                .amount()
                .to_string(),
            "1500"
        );
        assert_eq!(
            Money::parse("1500.00", cur("JPY"))
                .unwrap()
                .amount()
                .to_string(),
            "1500"
        );
        assert_eq!(
            Money::parse("1500.5", cur("JPY")).unwrap_err(),
            MoneyError::TooPrecise {
                scale: 1,
                currency: "JPY",
                minor_units: 0
            }
        );
        assert_eq!(
            Money::parse("1.234", cur("KWD")).unwrap().to_string(),
            "1.234 KWD"
        );
        assert!(Money::parse("1.2345", cur("KWD")).is_err());
        assert_eq!(
            Money::parse("5", cur("USD")).unwrap().to_string(),
            "5.00 USD"
        );
    }

    #[test]
    fn odd_amounts_are_refused() {
        for bad in ["", "1e5", "NaN", " 1", "1,00", "0x10", "--1", "1.2.3"] {
            assert!(Money::parse(bad, cur("USD")).is_err(), "{bad:?}");
        }
        let huge = "9".repeat(400);
        assert_eq!(
            Money::parse(&huge, cur("USD")).unwrap_err(),
            MoneyError::OutOfRange
        );
        assert!(Money::parse("19.999999999999999999", cur("USD")).is_err());
    }

    #[test]
    fn json_shape_is_amount_string_and_currency() {
        let m = Money::parse("199", cur("USD")).unwrap();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"amount":"199.00","currency":"USD"}"#
        );
        let back: Money = serde_json::from_str(r#"{"amount":"0.500","currency":"KWD"}"#).unwrap();
        assert_eq!(back.to_string(), "0.500 KWD");
        assert!(serde_json::from_str::<Money>(r#"{"amount":1.5,"currency":"USD"}"#).is_err());
        assert!(
            serde_json::from_str::<Money>(r#"{"amount":"1.5","currency":"USD","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.555","currency":"USD"}"#).is_err());
    }

    #[test]
    fn minor_units_constructor() {
        assert_eq!(
            Money::from_minor_units(12345, cur("CNY"))
                .unwrap()
                .to_string(),
            "123.45 CNY"
        );
        assert_eq!(
            Money::from_minor_units(500, cur("JPY"))
                .unwrap()
                .to_string(),
            "500 JPY"
        );
    }

    proptest! {
        #[test]
        fn json_round_trip_is_exact(units in -10_000_000_000i64..10_000_000_000i64, idx in 0usize..4) {
            let c = cur(["USD", "JPY", "KWD", "CLF"][idx]);
            let m = Money::from_minor_units(units, c).unwrap();
            let json = serde_json::to_string(&m).unwrap();
            let back: Money = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn addition_is_exact(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let c = cur("EUR");
            let sum = Money::from_minor_units(a, c).unwrap().checked_add(&Money::from_minor_units(b, c).unwrap()).unwrap();
            prop_assert_eq!(sum, Money::from_minor_units(a + b, c).unwrap());
        }
    }
}
