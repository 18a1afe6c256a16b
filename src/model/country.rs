//! ISO 3166-1 alpha-2 country codes, validated with `celes`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// The refused text is kept for callers that may show it; the message never quotes it.
#[error("is not an ISO 3166-1 alpha-2 country code")]
pub struct CountryError(pub String);

/// A country as its ISO 3166-1 alpha-2 code (upper case), e.g. `DE`, `CN`, `US`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts exactly two ASCII letters naming an assigned ISO 3166-1 country; lower case is
    /// upper-cased (`"de"` → `DE`). Names and alpha-3 codes are refused.
    pub fn parse(code: &str) -> Result<Self, CountryError> {
        let bytes = code.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(CountryError(code.chars().take(8).collect()));
        }
        let upper = [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()];
        let text = std::str::from_utf8(&upper).expect("ascii");
        celes::Country::from_alpha2(text).map_err(|_| CountryError(text.to_string()))?;
        Ok(Self(upper))
    }

    /// Reads a country name or alias ("Singapore", "United States", "Viet Nam") as its code.
    pub fn from_name(name: &str) -> Result<Self, CountryError> {
        let key: String = name
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        let country = celes::Country::from_name(&key)
            .or_else(|_| celes::Country::from_alias(&key))
            .map_err(|_| CountryError(name.chars().take(32).collect()))?;
        Self::parse(country.alpha2)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("validated ascii")
    }

    pub fn celes(&self) -> celes::Country {
        celes::Country::from_alpha2(self.as_str()).expect("validated at construction")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CountryCode {
    type Err = CountryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CountryCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CountryCode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{2}$",
            "description": "ISO 3166-1 alpha-2 country code"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha2_only() {
        assert_eq!(CountryCode::parse("DE").unwrap().as_str(), "DE");
        assert_eq!(CountryCode::parse("us").unwrap().as_str(), "US");
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("DEU").is_err());
        assert!(CountryCode::parse("United States").is_err());
        assert!(CountryCode::parse("").is_err());
        assert_eq!(CountryCode::parse("GB").unwrap().celes().alpha3, "GBR");
        assert_eq!(CountryCode::from_name("Singapore").unwrap().as_str(), "SG");
        assert_eq!(
            CountryCode::from_name("United States").unwrap().as_str(),
            "US"
        );
        assert_eq!(
            CountryCode::from_name("United Kingdom").unwrap().as_str(),
            "GB"
        );
        assert!(CountryCode::from_name("Atlantis").is_err());
    }
}
