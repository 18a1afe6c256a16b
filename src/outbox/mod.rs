//! The outbound direction: commands the API accepts (stock, price, listing status, shipment
//! confirmations) kept in a durable outbox, and the worker that delivers them to the channels
//! through the adapter's `[outbound]` operations.
//!
//! - `command`: the command, its states and attempts (pure values);
//! - `queue`: the ordering and coalescing rules every backend applies (pure);
//! - `store`: the `OutboxStore` trait the backends implement;
//! - `request`: an adapter operation and a command into an HTTP request, and the channel's
//!   answer into an attempt (pure);
//! - `worker`: the delivery loop, one per instance that declares `[outbound]`.

pub mod command;
pub mod queue;
pub mod request;
pub mod store;
pub mod worker;

pub use crate::model::CommandField as Field;
pub use command::{
    Action, Attempt, AttemptOutcome, Command, CommandState, IdempotencyRecord, ListingChange,
    SetStatus, ShipmentConfirmation, ShipmentLine, Target,
};
