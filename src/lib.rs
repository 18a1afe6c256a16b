//! crossgate: a cross-border channel integration gateway.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view, the code map and the invariants.

pub mod adapter;
pub mod backend;
pub mod channel;
pub mod config;
pub mod daemon;
/// Fuzz-target bodies (see `fuzz/`), shared with the regression replay in `cargo test`.
#[doc(hidden)]
pub mod fuzz_targets;
pub mod fx;
pub mod import;
pub mod ingress;
pub mod model;
pub mod outbound;
pub mod outbox;
pub mod payments;
pub mod pipeline;
pub mod reco;
pub mod replica;
pub mod schemas;
pub mod secret;
pub mod stdout;
pub mod store;
pub mod tax;
pub mod telemetry;
