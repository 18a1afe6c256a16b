//! How stored documents and raw bodies are compressed (zstd): a raw body of 18 KB takes about
//! 3 KB, a record about a quarter of its JSON. Written once per delivery, read rarely (replay,
//! the console, the jobs), so the write path pays a fast compression (level 1) and the readers
//! the (faster) decompression.
//!
//! Documents (records, events, facts) are the store's own JSON, which always starts with `{`,
//! so a stored document that starts with zstd's frame magic is compressed and anything else is
//! JSON as written before compression existed. Raw bodies are a channel's bytes and may start
//! with anything, so the backends keep them under a field or part that says they are
//! compressed ([`pack_body`] / [`unpack_body`]).

use std::borrow::Cow;

use super::{StoreError, StoreResult};

/// zstd's level: 1 compresses the 18 KB Shopify order to 3,220 bytes, level 3 (the default)
/// to 3,201, at about twice the CPU; ingest pays it on every delivery.
const LEVEL: i32 = 1;
/// Documents shorter than this are kept as JSON (a frame's header would eat the gain).
const SMALL_DOC: usize = 256;
/// The frame magic number (RFC 8878, section 3.1.1), little-endian.
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A document as stored: zstd for all but small ones.
pub(crate) fn pack_doc(json: &[u8]) -> Vec<u8> {
    if json.len() < SMALL_DOC {
        return json.to_vec();
    }
    compress(json)
}

/// A stored document's JSON, compressed or not.
pub(crate) fn unpack_doc(stored: &[u8]) -> StoreResult<Cow<'_, [u8]>> {
    if stored.starts_with(&MAGIC) {
        decompress(stored).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(stored))
    }
}

/// A raw body as stored (always compressed; the backend records that it is).
pub(crate) fn pack_body(body: &[u8]) -> Vec<u8> {
    compress(body)
}

/// A raw body stored by [`pack_body`].
pub(crate) fn unpack_body(stored: &[u8]) -> StoreResult<Vec<u8>> {
    decompress(stored)
}

fn compress(bytes: &[u8]) -> Vec<u8> {
    // Compressing an in-memory buffer only fails on allocation failure.
    zstd::bulk::compress(bytes, LEVEL).expect("zstd compresses an in-memory buffer")
}

fn decompress(stored: &[u8]) -> StoreResult<Vec<u8>> {
    zstd::stream::decode_all(stored)
        .map_err(|e| StoreError::Corrupt(format!("a compressed document does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_and_old_json_reads_as_is() {
        let big = format!(
            "{{\"lines\":[{}]}}",
            "{\"sku\":\"A-1\",\"qty\":2},".repeat(40)
        );
        let packed = pack_doc(big.as_bytes());
        assert!(packed.starts_with(&MAGIC) && packed.len() < big.len() / 4);
        assert_eq!(unpack_doc(&packed).unwrap().as_ref(), big.as_bytes());
        let small = br#"{"id":"f.1"}"#;
        assert_eq!(pack_doc(small), small.to_vec());
        assert!(matches!(unpack_doc(small).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn bodies_starting_like_a_frame_survive() {
        // A channel's body may begin with the magic: bodies are never sniffed.
        let body = [&MAGIC[..], b"not a frame at all"].concat();
        assert_eq!(unpack_body(&pack_body(&body)).unwrap(), body);
        assert!(unpack_doc(&[0x28, 0xB5, 0x2F, 0xFD, 0]).is_err());
    }
}
