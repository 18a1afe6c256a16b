//! Errors of the adapter boundary: bytes and headers in, canonical records or one of these out.

use serde::{Deserialize, Serialize};

/// One field that could not be mapped. `field` is the canonical path (`lines[0].quantity`),
/// `source` where it was read from (`line_items[0].quantity`). Problems never quote free-text
/// payload values, so they are safe to return to senders and to keep in dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldError {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(src) => write!(f, "{} (from {}): {}", self.field, src, self.problem),
            None => write!(f, "{}: {}", self.field, self.problem),
        }
    }
}

/// Why a payload could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The bytes are not a document of the adapter's format.
    #[error("payload is not valid {format}: {message}")]
    Parse {
        format: &'static str,
        message: String,
    },
    /// The document was read but fields are missing or wrong.
    #[error("{} field(s) invalid: {}", .0.len(), join_fields(.0))]
    Fields(Vec<FieldError>),
    /// The adapter has no mapping for the record kind the delivery was routed to.
    #[error("adapter '{adapter}' has no [{kind}] mapping")]
    NoMapping { adapter: String, kind: &'static str },
}

fn join_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl NormalizeError {
    /// A short machine-friendly kind, for logs and metrics (never contains payload data).
    pub fn kind(&self) -> &'static str {
        match self {
            NormalizeError::Parse { .. } => "parse",
            NormalizeError::Fields(_) => "fields",
            NormalizeError::NoMapping { .. } => "no_mapping",
        }
    }

    /// The field paths involved, for logs (names only, no values).
    pub fn field_paths(&self) -> Vec<&str> {
        match self {
            NormalizeError::Fields(f) => f.iter().map(|e| e.field.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn fields(&self) -> &[FieldError] {
        match self {
            NormalizeError::Fields(f) => f,
            _ => &[],
        }
    }
}

/// Why a delivery was not accepted as authentic. The HTTP answer never says which check failed;
/// the reason is for logs and metrics only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    MissingHeader,
    #[error("signature header malformed")]
    Malformed,
    #[error("timestamp outside the tolerance window")]
    Expired,
    #[error("no signature matched")]
    Mismatch,
    #[error("no secret configured")]
    NoSecret,
}

impl SignatureError {
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader => "missing_header",
            SignatureError::Malformed => "malformed",
            SignatureError::Expired => "expired",
            SignatureError::Mismatch => "mismatch",
            SignatureError::NoSecret => "no_secret",
        }
    }
}
