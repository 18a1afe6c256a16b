//! Identifiers. Gateway ids are deterministic (the same channel record always gets the same id,
//! on every store) and self-locating: the channel instance is part of the id, so a store can find
//! the record's partition from the id alone.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "instance id must be 1-63 characters of lower-case letters, digits and '-', starting with a letter"
    )]
    InvalidInstance,
    #[error("not a valid {0} id")]
    Malformed(&'static str),
}

/// Checks a channel instance id: `^[a-z][a-z0-9-]{0,62}$`.
pub fn validate_instance_id(id: &str) -> Result<(), IdError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.as_bytes()[0].is_ascii_lowercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdError::InvalidInstance)
    }
}

fn record_hash(instance: &str, external_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(instance.as_bytes());
    h.update([0u8]);
    h.update(external_id.as_bytes());
    hex::encode(&h.finalize()[..8])
}

macro_rules! record_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("Gateway id of a ", $what, ": `", $prefix, ".<instance>.<16 hex>`.")]
        #[derive(
            Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn derive(instance: &str, external_id: &str) -> Self {
                Self(format!(
                    concat!($prefix, ".{}.{}"),
                    instance,
                    record_hash(instance, external_id)
                ))
            }

            pub fn parse(s: &str) -> Result<Self, IdError> {
                let rest = s
                    .strip_prefix(concat!($prefix, "."))
                    .ok_or(IdError::Malformed($what))?;
                let (instance, hash) = rest.rsplit_once('.').ok_or(IdError::Malformed($what))?;
                validate_instance_id(instance).map_err(|_| IdError::Malformed($what))?;
                if hash.len() != 16
                    || !hash
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(IdError::Malformed($what));
                }
                Ok(Self(s.to_string()))
            }

            /// The channel instance this record belongs to.
            pub fn instance(&self) -> &str {
                let rest = &self.0[$prefix.len() + 1..];
                rest.rsplit_once('.').map(|(i, _)| i).unwrap_or(rest)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

record_id!(OrderId, "o", "order");
record_id!(ListingId, "l", "listing");
record_id!(StockId, "s", "stock level");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_self_locating() {
        let a = OrderId::derive("shopify-main", "450789469");
        let b = OrderId::derive("shopify-main", "450789469");
        assert_eq!(a, b);
        assert_ne!(a, OrderId::derive("shopify-eu", "450789469"));
        assert_eq!(a.instance(), "shopify-main");
        assert_eq!(OrderId::parse(a.as_str()).unwrap(), a);
        assert!(OrderId::parse("o.shopify-main.zz").is_err());
        assert!(OrderId::parse("l.shopify-main.0123456789abcdef").is_err());
        assert!(ListingId::parse("l.shopify-main.0123456789abcdef").is_ok());
    }

    #[test]
    fn instance_ids() {
        assert!(validate_instance_id("shopify-main").is_ok());
        assert!(validate_instance_id("app").is_ok());
        for bad in [
            "",
            "Shop",
            "1shop",
            "shop.main",
            "shop_main",
            &"a".repeat(64),
        ] {
            assert!(validate_instance_id(bad).is_err(), "{bad}");
        }
    }
}
