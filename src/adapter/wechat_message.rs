//! WeChat message push in safe mode (安全模式), as the WeChat shop for merchants (微信小店)
//! sends its order events: the body is `{"ToUserName": …, "Encrypt": "<base64>"}`, and the URL
//! carries `timestamp`, `nonce` and `msg_signature` = hex SHA-1 of the sorted concatenation of
//! the token, the timestamp, the nonce and the ciphertext.
//!
//! The ciphertext is AES-256-CBC under `base64(EncodingAESKey + "=")` (32 bytes) with the key's
//! first 16 bytes as IV, padded PKCS#7 to a multiple of 32 bytes; the plaintext is 16 random
//! bytes, the message length (4 bytes, big-endian), the message, and the app id, which must be
//! the instance's. Decrypting gives the document the mapping reads.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::Digest as _;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// WeChat pads to multiples of 32 bytes, not the AES block.
const PAD_BLOCK: usize = 32;

/// `msg_signature`: hex SHA-1 over the sorted parts, concatenated.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()))
}

/// The `signature` of the subscription check (`GET ?signature=&timestamp=&nonce=&echostr=`):
/// hex SHA-1 over the sorted token, timestamp and nonce.
pub fn check_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()))
}

/// The `Encrypt` field of a safe-mode body (JSON, or the XML form `<xml><Encrypt>…`).
pub fn ciphertext(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(body) {
        return m.get("Encrypt")?.as_str().map(str::to_string);
    }
    let doc = super::xml::parse_xml_capped(body, super::signature::WECHAT_V2_CAPS).ok()?;
    doc.get("xml")?
        .get("Encrypt")?
        .scalar_text()
        .map(str::to_string)
}

/// The message inside a ciphertext, when it decrypts under `encoding_aes_key` (43 characters)
/// and names `app_id`.
pub fn decrypt(encrypt: &str, encoding_aes_key: &str, app_id: &str) -> Option<Vec<u8>> {
    // An EncodingAESKey is 43 characters picked freely from [A-Za-z0-9]: its last character
    // usually leaves non-zero bits past the 32 bytes, which WeChat's own libraries ignore.
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key = LENIENT
        .decode(format!("{}=", encoding_aes_key.trim()))
        .ok()?;
    if key.len() != 32 {
        return None;
    }
    let mut data = BASE64.decode(encrypt.trim()).ok()?;
    if data.is_empty() || data.len() % PAD_BLOCK != 0 {
        return None;
    }
    let plain = Aes256CbcDec::new_from_slices(&key, &key[..16])
        .ok()?
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .ok()?;
    let pad = usize::from(*plain.last()?);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return None;
    }
    let (plain, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) || plain.len() < 20 {
        return None;
    }
    let len = u32::from_be_bytes(plain[16..20].try_into().ok()?) as usize;
    let rest = &plain[20..];
    if len > rest.len() || &rest[len..] != app_id.as_bytes() {
        return None;
    }
    Some(rest[..len].to_vec())
}

/// The decrypted message of a safe-mode body under the first key that opens it.
pub fn message_document(body: &[u8], aes_keys: &[&str], app_id: &str) -> Option<Vec<u8>> {
    let encrypt = ciphertext(body)?;
    aes_keys.iter().find_map(|k| decrypt(&encrypt, k, app_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed test vector (tests/fixtures/wechat_shop/README.md says how it was made).
    fn vector() -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wechat_shop/order-new-push-vector.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn the_vector_decrypts_and_its_signature_holds() {
        let v = vector();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        let body = s("body");
        let encrypt = ciphertext(body.as_bytes()).unwrap();
        assert_eq!(
            signature(&s("token"), &s("timestamp"), &s("nonce"), &encrypt),
            s("msg_signature")
        );
        let plain = decrypt(&encrypt, &s("encoding_aes_key"), &s("app_id")).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), s("plaintext"));
        // Another app id, another key, a tampered ciphertext: nothing.
        assert!(decrypt(&encrypt, &s("encoding_aes_key"), "wx0000000000000000").is_none());
        let other = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        assert!(decrypt(&encrypt, other, &s("app_id")).is_none());
        // CBC has no integrity of its own: msg_signature, which covers the ciphertext, is what
        // refuses a changed one; a change in the last blocks also breaks the app id or padding.
        let mut bytes = BASE64.decode(&encrypt).unwrap();
        bytes[40] ^= 1;
        let tampered = BASE64.encode(&bytes);
        assert_ne!(
            signature(&s("token"), &s("timestamp"), &s("nonce"), &tampered),
            s("msg_signature")
        );
        let n = bytes.len();
        bytes[n - 17] ^= 1; // flips the last padding byte
        assert!(decrypt(&BASE64.encode(&bytes), &s("encoding_aes_key"), &s("app_id")).is_none());
    }

    #[test]
    fn the_subscription_check_signature_is_sha1_of_the_sorted_parts() {
        // sorted: "1409304348", "jwt", "xxxxxx" (digits sort before letters).
        let expected = hex::encode(sha1::Sha1::digest(b"1409304348jwtxxxxxx"));
        assert_eq!(check_signature("jwt", "1409304348", "xxxxxx"), expected);
    }
}
