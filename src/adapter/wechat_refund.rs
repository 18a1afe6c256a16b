//! WeChat Pay v2 refund notifications (退款结果通知). Unlike payment notifications they carry no
//! `sign`: the refund's fields are in `req_info`, AES-256-ECB encrypted (PKCS#7) under the
//! lower-case hex MD5 of the merchant's API key, and only the key's holder can have made it.
//! So decrypting is both the authentication ([`super::signature`]) and what the mapping reads:
//! [`refund_document`] is the notification with `req_info` replaced by its decrypted fields.

use aes::cipher::{BlockDecryptMut, KeyInit, block_padding::Pkcs7};
use base64::Engine;
use md5::Digest as _;

use super::tree::Node;

type Aes256EcbDec = ecb::Decryptor<aes::Aes256>;

/// The plaintext of `req_info` under one API key; `None` when it does not decrypt (wrong key,
/// bad padding, not base64).
pub fn decrypt_req_info(req_info: &str, api_key: &str) -> Option<Vec<u8>> {
    let cipher = base64::engine::general_purpose::STANDARD
        .decode(req_info.trim())
        .ok()?;
    let key = hex::encode(md5::Md5::digest(api_key.as_bytes()));
    Aes256EcbDec::new_from_slice(key.as_bytes())
        .ok()?
        .decrypt_padded_vec_mut::<Pkcs7>(&cipher)
        .ok()
}

/// The flat `<root>` fields of a decrypted `req_info`; `None` unless it is one.
fn root_fields(plain: &[u8]) -> Option<Vec<(String, String)>> {
    let doc = super::xml::parse_xml_capped(plain, super::signature::WECHAT_V2_CAPS).ok()?;
    let Some(Node::Object(entries)) = doc.get("root") else {
        return None;
    };
    entries
        .iter()
        .map(|(k, v)| v.scalar_text().map(|t| (k.to_string(), t.to_string())))
        .collect()
}

/// The refund fields of a notification under the first key that opens its `req_info`.
pub fn open(params: &[(String, String)], api_keys: &[&str]) -> Option<Vec<(String, String)>> {
    let req_info = params.iter().find(|(k, _)| k == "req_info")?;
    api_keys
        .iter()
        .find_map(|key| decrypt_req_info(&req_info.1, key).and_then(|p| root_fields(&p)))
}

/// The document a refund notification is mapped from: its outer parameters, with `req_info`
/// holding the decrypted fields. `None` for a notification that is not a refund (has no
/// `req_info`) or that no key opens.
pub fn refund_document(body: &[u8], api_keys: &[&str]) -> Option<Vec<u8>> {
    let params = super::signature::wechat_v2_params(body).ok()?;
    let fields = open(&params, api_keys)?;
    let mut xml = String::from("<xml>");
    for (k, v) in params.iter().filter(|(k, _)| k != "req_info") {
        element(&mut xml, k, v);
    }
    xml.push_str("<req_info>");
    for (k, v) in &fields {
        element(&mut xml, k, v);
    }
    xml.push_str("</req_info></xml>");
    Some(xml.into_bytes())
}

fn element(xml: &mut String, name: &str, value: &str) {
    let text = value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    xml.push_str(&format!("<{name}>{text}</{name}>"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/wechatpay/v2-refund-notify.xml"),
        )
        .unwrap()
    }

    /// The vector made with Python's `cryptography` (make_refund_notify.py beside it).
    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    #[test]
    fn a_notification_encrypted_by_a_standard_aes_opens_with_the_key_only() {
        let params = super::super::signature::wechat_v2_params(&notification()).unwrap();
        let fields = open(&params, &[KEY]).unwrap();
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.as_str();
        assert_eq!(get("out_trade_no"), "1409811653");
        assert_eq!(get("refund_fee"), "1");
        assert_eq!(get("refund_status"), "SUCCESS");
        assert_eq!(get("success_time"), "2014-09-04 10:00:05");
        assert_eq!(get("refund_recv_accout"), "支付用户零钱");
        assert!(open(&params, &["another-api-key"]).is_none());
        // A rotated key list opens it with whichever key fits.
        assert!(open(&params, &["old-key", KEY]).is_some());
    }

    #[test]
    fn the_mapped_document_holds_the_decrypted_fields() {
        let doc = refund_document(&notification(), &[KEY]).unwrap();
        let text = String::from_utf8(doc).unwrap();
        assert!(
            text.starts_with("<xml><return_code>SUCCESS</return_code>"),
            "{text}"
        );
        assert!(text.contains("<req_info><out_refund_no>R-1409811653-1</out_refund_no>"));
        assert!(refund_document(&notification(), &["wrong"]).is_none());
        // A payment notification (no req_info) is not a refund document.
        assert!(refund_document(b"<xml><sign>AB</sign></xml>", &[KEY]).is_none());
    }
}
