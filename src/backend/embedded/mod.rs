//! The embedded store: one redb file, no other service.
//!
//! Writes go through one writer thread that groups the operations waiting in its queue into a
//! single redb transaction and commits it with `Durability::Immediate` (fsync) before answering
//! any of them: "group commit". Each caller still gets its own result, and nothing is answered
//! before it is on disk. Reads use redb's MVCC snapshots on the blocking pool.

mod contract;
mod coord;
mod fx;
mod outbox;
mod reco;
mod records;
mod tables;
mod tax;
mod write;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::mpsc;

use crate::store::{StoreError, StoreResult};
use tables::EVENTS;
use writer::{Op, Tx, Writer};

/// The third part of a stored delivery whose body is compressed (see `store::codec`).
const BODY_ZSTD: &[u8] = b"zstd";

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn unframe(mut bytes: &[u8]) -> StoreResult<Vec<&[u8]>> {
    let mut parts = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| StoreError::Corrupt("truncated frame".into()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(StoreError::Corrupt("truncated frame".into()));
        }
        parts.push(&rest[..len]);
        bytes = &rest[len..];
    }
    Ok(parts)
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub dedupe_ttl: Duration,
    pub raw_retention: Duration,
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    tx: mpsc::Sender<Op>,
    leases: Arc<coord::Leases>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file and starts the writer thread.
    pub fn open(path: &Path, options: EmbeddedOptions) -> StoreResult<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let db = Arc::new(db);
        tables::create_all(&db)?;
        records::index_listings_once(&db)?;
        let next_seq = {
            let r = db.begin_read().map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            events
                .last()
                .map_err(unavailable)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1)
        };
        let (tx, rx) = mpsc::channel(4096);
        let writer = Writer::new(db.clone(), options, next_seq);
        std::thread::Builder::new()
            .name("crossgate-redb-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(unavailable)?;
        Ok(Self {
            db,
            tx,
            leases: Arc::default(),
        })
    }

    /// Runs `f` in the writer's next group transaction: every write of this store goes here.
    /// Durable when this returns `Ok`.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (op, answer) = writer::op(f);
        self.tx
            .send(op)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    /// [`Self::write`] for a write that needs only the transaction (FX, tax, jobs).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.write(move |tx| f(tx.txn)).await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(unavailable)?
    }
}
