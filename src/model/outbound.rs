//! What an outbound command can set on a channel. The adapter's `[outbound]` operations name
//! these fields, and the outbox records which of them the channel has confirmed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The parts of a command, each confirmed on its own.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CommandField {
    Stock,
    Price,
    Status,
    Shipment,
}

impl CommandField {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandField::Stock => "stock",
            CommandField::Price => "price",
            CommandField::Status => "status",
            CommandField::Shipment => "shipment",
        }
    }
}
