//! The Lua scripts, kept as `.lua` files next to this one so they read and diff as Lua.
//!
//! `apply.lua` defines the functions `fact` and `apply`; the ingest, resolve and fact scripts
//! are appended to it, so each runs as one script (and so in one slot, atomically).

use std::sync::Arc;

use redis::Script;

const APPLY: &str = include_str!("lua/apply.lua");
const BUDGET: &str = include_str!("lua/budget.lua");
const FACT: &str = include_str!("lua/fact.lua");
const FX_COMMIT: &str = include_str!("lua/fx_commit.lua");
const FX_REVIEW: &str = include_str!("lua/fx_review.lua");
const INGEST: &str = include_str!("lua/ingest.lua");
const OUTBOX_COMMIT: &str = include_str!("lua/outbox_commit.lua");
const LEASE: &str = include_str!("lua/lease.lua");
const RELEASE: &str = include_str!("lua/release.lua");
const RESOLVE: &str = include_str!("lua/resolve.lua");

/// The scripts of one store, built once at connect.
pub(super) struct Scripts {
    /// The ingest script's text and SHA-1: it runs as EVALSHA inside MULTI/EXEC, and is loaded
    /// by text when the server has lost its script cache.
    pub(super) ingest: Arc<str>,
    pub(super) ingest_sha: Arc<str>,
    /// The outbox commit, run like the ingest script (EVALSHA in MULTI/EXEC, then `WAIT`).
    pub(super) outbox: Arc<str>,
    pub(super) outbox_sha: Arc<str>,
    pub(super) resolve: Script,
    pub(super) fact: Script,
    pub(super) fx_commit: Script,
    pub(super) fx_review: Script,
    pub(super) lease: Script,
    pub(super) release: Script,
    pub(super) budget: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let ingest = format!("{APPLY}\n{INGEST}");
        Self {
            ingest_sha: Script::new(&ingest).get_hash().into(),
            ingest: ingest.into(),
            outbox_sha: Script::new(OUTBOX_COMMIT).get_hash().into(),
            outbox: OUTBOX_COMMIT.into(),
            resolve: Script::new(&format!("{APPLY}\n{RESOLVE}")),
            fact: Script::new(&format!("{APPLY}\n{FACT}")),
            fx_commit: Script::new(FX_COMMIT),
            fx_review: Script::new(FX_REVIEW),
            lease: Script::new(LEASE),
            release: Script::new(RELEASE),
            budget: Script::new(BUDGET),
        }
    }
}
