//! Signed checkpoints: what anchors the FX log outside the store.
//!
//! The hash chain alone shows that entries agree with each other, but anyone who can write to
//! the store can change an entry and recompute every later hash and the head. A checkpoint is
//! the head (sequence and hash) signed with the gateway's Ed25519 key; it is written to the
//! store and appended to a file outside it, and an auditor who holds only the public key can
//! check that the log they were given still ends in every signed head: a rebuilt chain cannot,
//! unless the private key was taken too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Head;
use super::log::{Finding, FxEntry};
use super::store::FxStore;
use crate::store::StoreError;

/// What the signature covers; the version names the message layout.
const MESSAGE_TAG: &str = "crossgate-fx-checkpoint/1";

/// A signed head of the FX log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    /// The sequence number of the newest entry at signing.
    pub seq: u64,
    /// That entry's hash.
    pub head_hash: String,
    /// Entries in the log at signing (entries are numbered from 1 without gaps, so it equals
    /// `seq`; signed separately so a reader never has to rely on that).
    pub count: u64,
    pub at: DateTime<Utc>,
    /// The first 16 hex digits of SHA-256 of the public key: which key signed.
    pub key_id: String,
    /// Ed25519 signature of [`Checkpoint::message`], base64.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an Ed25519 {0} key: give a PEM ({1}) or the base64 of the 32 raw key bytes (as `crossgate fx keygen` prints)"
    )]
    Unreadable(&'static str, &'static str),
}

/// The gateway's signing key (never printed).
#[derive(Clone)]
pub struct SignKey(SigningKey);

impl std::fmt::Debug for SignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SignKey(key id {}, **REDACTED**)",
            key_id(&self.public())
        )
    }
}

impl SignKey {
    /// A PKCS#8 PEM (`openssl genpkey -algorithm ed25519`) or base64 of the 32-byte seed.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN") {
            SigningKey::from_pkcs8_pem(text).ok()
        } else {
            raw32(text).map(|b| SigningKey::from_bytes(&b))
        };
        key.map(SignKey).ok_or(KeyError::Unreadable(
            "private",
            "PKCS#8, `BEGIN PRIVATE KEY`",
        ))
    }

    /// A new random key.
    pub fn generate() -> Self {
        SignKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The private key as base64 of its 32 bytes (for `crossgate fx keygen` only).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Signs the head of a log of `count` entries at `at`.
    pub fn sign(&self, head: &Head, at: DateTime<Utc>) -> Checkpoint {
        let mut cp = Checkpoint {
            seq: head.seq,
            head_hash: head.hash.clone(),
            count: head.seq,
            at,
            key_id: key_id(&self.public()),
            signature: String::new(),
        };
        cp.signature = B64.encode(self.0.sign(&cp.message()).to_bytes());
        cp
    }
}

fn raw32(text: &str) -> Option<[u8; 32]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// A public key: an SPKI PEM (`openssl pkey -pubout`) or base64 of its 32 bytes.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let text = text.trim();
    let key = if text.starts_with("-----BEGIN") {
        VerifyingKey::from_public_key_pem(text).ok()
    } else {
        raw32(text).and_then(|b| VerifyingKey::from_bytes(&b).ok())
    };
    key.ok_or(KeyError::Unreadable("public", "SPKI, `BEGIN PUBLIC KEY`"))
}

/// The public key as base64 of its 32 bytes.
pub fn public_base64(key: &VerifyingKey) -> String {
    B64.encode(key.to_bytes())
}

/// Which key: the first 16 hex digits of SHA-256 of the public key's bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.to_bytes())[..8])
}

impl Checkpoint {
    /// The signed bytes: a tag, then sequence, head hash, count and time, one per line.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "{MESSAGE_TAG}\n{}\n{}\n{}\n{}",
            self.seq,
            self.head_hash,
            self.count,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
        .into_bytes()
    }

    /// True when `key` signed exactly this checkpoint.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let Some(sig) = B64
            .decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
        else {
            return false;
        };
        key.verify(&self.message(), &sig).is_ok()
    }
}

/// Reads a checkpoint file (one JSON checkpoint per line); each unreadable line is a finding.
pub fn read_file(path: &Path) -> std::io::Result<(Vec<Checkpoint>, Vec<Finding>)> {
    let text = std::fs::read_to_string(path)?;
    Ok(json_lines(&text, path, "a checkpoint"))
}

/// Parses JSON lines (blank lines skipped): the items, and a finding naming the file and line
/// of each that is not a `what`.
pub fn json_lines<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    what: &str,
) -> (Vec<T>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(item) => out.push(item),
            Err(e) => bad.push(Finding {
                entry: format!("{}:{}", path.display(), i + 1),
                problem: format!("not {what}: {e}"),
            }),
        }
    }
    (out, bad)
}

/// Appends a checkpoint to the file (created if absent) and syncs it to disk.
pub fn append_file(path: &Path, cp: &Checkpoint) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(cp).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// `[fx.checkpoints]` as validated.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    pub key: SignKey,
    /// The append-only file outside the store.
    pub file: Option<PathBuf>,
    pub every_entries: u64,
    pub every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("appending to the checkpoint file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Signs the log's head every `every_entries` new entries, and at least every `every` while
/// entries are written. Run by the FX job's lease holder, so one replica signs at a time.
pub struct Checkpointer {
    settings: CheckpointSettings,
    last: Option<Checkpoint>,
}

impl Checkpointer {
    pub fn new(settings: CheckpointSettings) -> Self {
        Checkpointer {
            settings,
            last: None,
        }
    }

    /// Signs a checkpoint if one is due: appended to the file first (the anchor outside the
    /// store), then stored. `Ok(None)` when none is due.
    pub async fn tick<S: FxStore>(
        &mut self,
        store: &S,
        now: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        if self.last.is_none() {
            self.last = store.fx_checkpoints().await?.pop();
        }
        let head = store.fx_head().await?;
        let last_seq = self.last.as_ref().map_or(0, |c| c.seq);
        if head.seq <= last_seq {
            return Ok(None);
        }
        let due = match &self.last {
            None => true,
            Some(last) => {
                head.seq - last.seq >= self.settings.every_entries
                    || (now - last.at).to_std().unwrap_or_default() >= self.settings.every
            }
        };
        if !due {
            return Ok(None);
        }
        let cp = self.settings.key.sign(&head, now);
        if let Some(path) = &self.settings.file {
            let (path, line) = (path.clone(), cp.clone());
            tokio::task::spawn_blocking(move || {
                append_file(&path, &line).map_err(|source| CheckpointError::File { path, source })
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("checkpoint writer: {e}")))??;
        }
        store.fx_put_checkpoint(cp.clone()).await?;
        self.last = Some(cp.clone());
        Ok(Some(cp))
    }
}

/// What checking the log against signed checkpoints found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchoring {
    /// Checkpoints whose signature holds under the key.
    pub signed: usize,
    /// The newest entry a good checkpoint covers (0: none).
    pub anchored_seq: u64,
    pub findings: Vec<Finding>,
}

/// Checks every checkpoint's signature under `key` and that the log still has, at each signed
/// sequence number, the signed hash. A checkpoint from another key is refused (a finding);
/// when none verifies, nothing is anchored.
pub fn check_anchors(
    entries: &[FxEntry],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> Anchoring {
    let mut out = Anchoring::default();
    let expected = key_id(key);
    let mut last_good = 0u64;
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|c| c.seq);
    for cp in sorted {
        let name = format!("checkpoint fx.{} ({})", cp.seq, cp.at.to_rfc3339());
        if !cp.signed_by(key) {
            out.findings.push(Finding {
                entry: name,
                problem: if cp.key_id == expected {
                    "the signature does not match its contents (the checkpoint was altered)".into()
                } else {
                    format!(
                        "not signed by this key (signed by key {}, this key is {expected}): refused",
                        cp.key_id
                    )
                },
            });
            continue;
        }
        out.signed += 1;
        let at = cp.seq.checked_sub(1).and_then(|i| entries.get(i as usize));
        match at {
            _ if cp.count != cp.seq => out.findings.push(Finding {
                entry: name,
                problem: format!("signs {} entries but sequence fx.{}", cp.count, cp.seq),
            }),
            Some(e) if e.seq == cp.seq && e.hash == cp.head_hash => {
                last_good = last_good.max(cp.seq);
            }
            Some(_) => out.findings.push(Finding {
                entry: format!("fx.{}", cp.seq),
                problem: format!(
                    "does not end in the head signed at {}: the log up to here was rewritten (an entry after fx.{last_good} and up to fx.{} was changed, and the chain rebuilt)",
                    cp.at.to_rfc3339(),
                    cp.seq
                ),
            }),
            None => out.findings.push(Finding {
                entry: format!("fx.{}", cp.seq),
                problem: format!(
                    "signed at {} but missing: the log was cut short after fx.{}",
                    cp.at.to_rfc3339(),
                    entries.len()
                ),
            }),
        }
    }
    out.anchored_seq = last_good;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64, hash: &str) -> Head {
        Head {
            seq,
            hash: hash.into(),
        }
    }

    #[test]
    fn a_checkpoint_verifies_only_under_its_key_and_unaltered() {
        let key = SignKey::generate();
        let other = SignKey::generate();
        let cp = key.sign(&head(7, "abc"), Utc::now());
        assert!(cp.signed_by(&key.public()));
        assert!(!cp.signed_by(&other.public()));
        let mut altered = cp.clone();
        altered.head_hash = "abd".into();
        assert!(!altered.signed_by(&key.public()));
        let round: Checkpoint = serde_json::from_str(&serde_json::to_string(&cp).unwrap()).unwrap();
        assert!(round.signed_by(&key.public()));
    }

    #[test]
    fn keys_parse_from_base64_and_pem_and_never_print() {
        let key = SignKey::generate();
        let again = SignKey::parse(&key.to_base64()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = parse_public_key(&public_base64(&key.public())).unwrap();
        assert_eq!(public, key.public());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
        // The RFC 8410 §10.3 example private key and its public key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let spki = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            SignKey::parse(pem).unwrap().public(),
            parse_public_key(spki).unwrap()
        );
        assert!(SignKey::parse("not a key").is_err());
        assert!(parse_public_key(&B64.encode([1u8; 31])).is_err());
    }
}
