//! Webhook signature schemes. Every check runs on the raw body bytes, before any parsing, and
//! compares in constant time after a length check. Several secrets (key rotation) and several
//! signatures in one header are supported; any match passes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Headers;
use super::error::SignatureError;
use super::spec::{Encoding, SignatureSpec};

type HmacSha256 = Hmac<Sha256>;

/// Upper bound on signature header length; longer headers are refused before any work.
const MAX_SIGNATURE_HEADER: usize = 8 * 1024;

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// True when `given` equals one of `candidates`, comparing each in constant time and every
/// one of them (a match does not end the loop early). For texts: shared secrets, verify
/// tokens, hex signatures.
pub fn is_one_of<S: AsRef<str>>(candidates: &[S], given: &str) -> bool {
    candidates.iter().fold(false, |acc, c| {
        let c = c.as_ref();
        acc | (c.len() == given.len() && bool::from(c.as_bytes().ct_eq(given.as_bytes())))
    })
}

/// True when `candidate` equals one of `expected`, in constant time per comparison.
fn any_matches(expected: &[[u8; 32]], candidate: &[u8]) -> bool {
    if candidate.len() != 32 {
        return false;
    }
    let mut hit = subtle::Choice::from(0);
    for e in expected {
        hit |= e.as_slice().ct_eq(candidate);
    }
    hit.into()
}

fn header<'h>(headers: &'h Headers, name: &str) -> Result<&'h str, SignatureError> {
    let value = headers
        .unique(name)
        .map_err(|_| SignatureError::Malformed)?
        .ok_or(SignatureError::MissingHeader)?;
    if value.len() > MAX_SIGNATURE_HEADER {
        return Err(SignatureError::Malformed);
    }
    Ok(value)
}

/// Parses a unix timestamp written as plain digits and checks it is within `tolerance` of `now`
/// in both directions.
fn check_timestamp(text: &str, now: i64, tolerance: u64) -> Result<(), SignatureError> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    let ts: i64 = text.parse().map_err(|_| SignatureError::Malformed)?;
    if now.abs_diff(ts) > tolerance {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// WeChat safe-mode message push: `msg_signature`, `timestamp` and `nonce` come in the URL's
/// query (passed as the `?`-named entries of the headers), the ciphertext in the body.
fn wechat_message(
    headers: &Headers,
    body: &[u8],
    tokens: &[&str],
    now: i64,
    tolerance: u64,
) -> Result<bool, SignatureError> {
    let given = header(headers, "?msg_signature")?
        .trim()
        .to_ascii_lowercase();
    let timestamp = header(headers, "?timestamp")?;
    check_timestamp(timestamp, now, tolerance)?;
    let nonce = header(headers, "?nonce")?;
    let encrypt = super::wechat_message::ciphertext(body).ok_or(SignatureError::Malformed)?;
    let expected: Vec<String> = tokens
        .iter()
        .map(|token| super::wechat_message::signature(token, timestamp, nonce, &encrypt))
        .collect();
    Ok(is_one_of(&expected, &given))
}

/// Decodes a Standard Webhooks secret (`whsec_<base64>`) into key bytes.
pub fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
        .filter(|k| !k.is_empty())
}

/// The WeChat Pay v2 string to sign: non-empty parameters except `sign`, sorted by name,
/// `k=v` joined by `&`, then `&key=<API key>`.
pub fn wechat_v2_string(params: &[(String, String)], api_key: &str) -> String {
    let mut items: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && !v.is_empty())
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = items
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    s.push_str("&key=");
    s.push_str(api_key);
    s
}

/// What a WeChat Pay v2 body may use before its signature is checked. Real notifications are a
/// flat `<xml>` of a few dozen parameters in a few KiB (coupon fields `coupon_*_$n` add three per
/// coupon); these caps leave ample room and bound the work an unsigned body can cause.
pub const WECHAT_V2_CAPS: super::xml::XmlCaps = super::xml::XmlCaps {
    max_bytes: 64 * 1024,
    max_elements: 512,
    max_depth: 2,
};

/// The flat parameters of a WeChat Pay v2 XML body (`<xml><k>v</k>…</xml>`). A repeated or
/// nested parameter is refused: the signed set must be unambiguous. The body is not yet known
/// to be authentic, so it is read within [`WECHAT_V2_CAPS`].
pub fn wechat_v2_params(body: &[u8]) -> Result<Vec<(String, String)>, SignatureError> {
    let doc = super::xml::parse_xml_capped(body, WECHAT_V2_CAPS)
        .map_err(|_| SignatureError::Malformed)?;
    let Some(super::tree::Node::Object(entries)) = doc.get("xml") else {
        return Err(SignatureError::Malformed);
    };
    entries
        .iter()
        .map(|(k, v)| match v.scalar_text() {
            Some(t) => Ok((k.to_string(), t.to_string())),
            None => Err(SignatureError::Malformed),
        })
        .collect()
}

/// Verifies a delivery. `secrets` returns the configured values of a named instance secret
/// (several during a key rotation). `now` is the current unix time in seconds (passed in, so
/// tests can pin the clock). Every scheme compares in constant time and tries every secret.
pub fn verify<'s>(
    spec: &SignatureSpec,
    headers: &Headers,
    body: &[u8],
    lookup: &dyn Fn(&str) -> Vec<&'s str>,
    now: i64,
) -> Result<(), SignatureError> {
    let secrets = lookup(spec.secret_name());
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let matched = match spec {
        SignatureSpec::HmacSha256 {
            header: name,
            encoding,
            prefix,
            ..
        } => hmac_header(headers, name, encoding, prefix.as_deref(), body, &secrets)?,
        SignatureSpec::StandardWebhooks { tolerance_secs, .. } => {
            standard_webhooks(headers, body, &secrets, now, *tolerance_secs)?
        }
        SignatureSpec::Stripe { tolerance_secs, .. } => {
            stripe(headers, body, &secrets, now, *tolerance_secs)?
        }
        SignatureSpec::TiktokShop {
            header: name,
            app_key,
            ..
        } => tiktok_shop(headers, name, body, &secrets, &lookup(app_key))?,
        SignatureSpec::SharedSecretHeader { header: name, .. } => {
            is_one_of(&secrets, header(headers, name)?.trim())
        }
        SignatureSpec::WechatPayV2 { .. } => wechat_pay_v2(body, &secrets)?,
        SignatureSpec::WechatMessage { tolerance_secs, .. } => {
            wechat_message(headers, body, &secrets, now, *tolerance_secs)?
        }
    };
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// An HMAC-SHA256 of the body in a header (Shopify, WooCommerce, ...), base64 or hex, after
/// an optional prefix (`sha256=`).
fn hmac_header(
    headers: &Headers,
    name: &str,
    encoding: &Encoding,
    prefix: Option<&str>,
    body: &[u8],
    secrets: &[&str],
) -> Result<bool, SignatureError> {
    let value = header(headers, name)?.trim();
    let value = match prefix {
        Some(p) => value.strip_prefix(p).ok_or(SignatureError::Malformed)?,
        None => value,
    };
    let candidate = match encoding {
        Encoding::Base64 => BASE64.decode(value),
        Encoding::Hex => hex::decode(value).map_err(|_| base64::DecodeError::InvalidLength(0)),
    }
    .map_err(|_| SignatureError::Malformed)?;
    let expected: Vec<[u8; 32]> = secrets
        .iter()
        .map(|s| hmac_sha256(s.as_bytes(), &[body]))
        .collect();
    Ok(any_matches(&expected, &candidate))
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp` (within the tolerance) and any `v1,`
/// signature in `webhook-signature`.
fn standard_webhooks(
    headers: &Headers,
    body: &[u8],
    secrets: &[&str],
    now: i64,
    tolerance_secs: u64,
) -> Result<bool, SignatureError> {
    let id = header(headers, "webhook-id")?;
    let ts = header(headers, "webhook-timestamp")?;
    let sigs = header(headers, "webhook-signature")?;
    check_timestamp(ts, now, tolerance_secs)?;
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| standard_webhooks_key(s))
        .collect();
    if keys.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let expected: Vec<[u8; 32]> = keys
        .iter()
        .map(|k| hmac_sha256(k, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]))
        .collect();
    let mut matched = false;
    for entry in sigs.split(' ').filter(|s| !s.is_empty()) {
        let Some((version, sig)) = entry.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        if let Ok(bytes) = BASE64.decode(sig) {
            matched |= any_matches(&expected, &bytes);
        }
    }
    Ok(matched)
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, the timestamp within the tolerance.
fn stripe(
    headers: &Headers,
    body: &[u8],
    secrets: &[&str],
    now: i64,
    tolerance_secs: u64,
) -> Result<bool, SignatureError> {
    let value = header(headers, "stripe-signature")?;
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let (k, v) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" if timestamp.is_some() => return Err(SignatureError::Malformed),
            "t" => timestamp = Some(v),
            "v1" => v1.push(v),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed);
    }
    check_timestamp(t, now, tolerance_secs)?;
    let expected: Vec<[u8; 32]> = secrets
        .iter()
        .map(|s| hmac_sha256(s.as_bytes(), &[t.as_bytes(), b".", body]))
        .collect();
    Ok(v1
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .fold(false, |acc, bytes| acc | any_matches(&expected, &bytes)))
}

/// TikTok Shop: HMAC-SHA256 over the app key and the body, hex in a header.
fn tiktok_shop(
    headers: &Headers,
    name: &str,
    body: &[u8],
    secrets: &[&str],
    app_keys: &[&str],
) -> Result<bool, SignatureError> {
    let value = header(headers, name)?.trim();
    let candidate = hex::decode(value).map_err(|_| SignatureError::Malformed)?;
    if app_keys.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let expected: Vec<[u8; 32]> = secrets
        .iter()
        .flat_map(|s| {
            app_keys
                .iter()
                .map(move |k| hmac_sha256(s.as_bytes(), &[k.as_bytes(), body]))
        })
        .collect();
    Ok(any_matches(&expected, &candidate))
}

/// WeChat Pay v2: the `sign` field of the XML body over its other fields and the key, MD5 or
/// HMAC-SHA256 by `sign_type`.
fn wechat_pay_v2(body: &[u8], secrets: &[&str]) -> Result<bool, SignatureError> {
    let params = wechat_v2_params(body)?;
    // A refund notification has no `sign`: it is authentic when one of the keys decrypts its
    // `req_info` into the refund's fields.
    if !params.iter().any(|(k, _)| k == "sign") && params.iter().any(|(k, _)| k == "req_info") {
        return Ok(super::wechat_refund::open(&params, secrets).is_some());
    }
    let given = params
        .iter()
        .find(|(k, _)| k == "sign")
        .map(|(_, v)| v.as_str())
        .ok_or(SignatureError::MissingHeader)?;
    let given = hex::decode(given).map_err(|_| SignatureError::Malformed)?;
    let hmac = params
        .iter()
        .any(|(k, v)| k == "sign_type" && v.eq_ignore_ascii_case("HMAC-SHA256"));
    let mut matched = false;
    for key in secrets {
        let text = wechat_v2_string(&params, key);
        let expected: Vec<u8> = if hmac {
            hmac_sha256(key.as_bytes(), &[text.as_bytes()]).to_vec()
        } else {
            use md5::Digest as _;
            md5::Md5::digest(text.as_bytes()).to_vec()
        };
        matched |= expected.len() == given.len() && bool::from(expected.as_slice().ct_eq(&given));
    }
    Ok(matched)
}

/// Signs a body the way a channel would (used by `demo`, the load tool and tests).
pub fn sign(
    spec: &SignatureSpec,
    secret: &str,
    body: &[u8],
    delivery_id: &str,
    now: i64,
) -> Vec<(String, String)> {
    match spec {
        SignatureSpec::HmacSha256 {
            header,
            encoding,
            prefix,
            ..
        } => {
            let tag = hmac_sha256(secret.as_bytes(), &[body]);
            let enc = match encoding {
                Encoding::Base64 => BASE64.encode(tag),
                Encoding::Hex => hex::encode(tag),
            };
            vec![(
                header.clone(),
                format!("{}{enc}", prefix.as_deref().unwrap_or("")),
            )]
        }
        SignatureSpec::StandardWebhooks { .. } => {
            let key = standard_webhooks_key(secret).unwrap_or_default();
            let ts = now.to_string();
            let tag = hmac_sha256(
                &key,
                &[delivery_id.as_bytes(), b".", ts.as_bytes(), b".", body],
            );
            vec![
                ("webhook-id".into(), delivery_id.to_string()),
                ("webhook-timestamp".into(), ts),
                (
                    "webhook-signature".into(),
                    format!("v1,{}", BASE64.encode(tag)),
                ),
            ]
        }
        SignatureSpec::Stripe { .. } => {
            let ts = now.to_string();
            let tag = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
            vec![(
                "Stripe-Signature".into(),
                format!("t={ts},v1={}", hex::encode(tag)),
            )]
        }
        // `secret` is "<app key>:<app secret>" for signing test deliveries.
        SignatureSpec::TiktokShop { header, .. } => {
            let (key, app_secret) = secret.split_once(':').unwrap_or(("", secret));
            let tag = hmac_sha256(app_secret.as_bytes(), &[key.as_bytes(), body]);
            vec![(header.clone(), hex::encode(tag))]
        }
        SignatureSpec::SharedSecretHeader { header, .. } => {
            vec![(header.clone(), secret.to_string())]
        }
        // The sign travels inside the body; see `wechat_v2_sign`.
        SignatureSpec::WechatPayV2 { .. } => Vec::new(),
        // The signature travels in the URL and the body must be encrypted: see
        // `wechat_message` (tests build such deliveries from the committed vector).
        SignatureSpec::WechatMessage { .. } => Vec::new(),
    }
}

/// Signs WeChat Pay v2 parameters (MD5), as the payment gateway does: upper-case hex.
pub fn wechat_v2_sign(params: &[(String, String)], api_key: &str) -> String {
    use md5::Digest as _;
    hex::encode_upper(md5::Md5::digest(
        wechat_v2_string(params, api_key).as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture(path: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures")
            .join(path);
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    }

    fn shopify() -> SignatureSpec {
        SignatureSpec::HmacSha256 {
            header: "X-Shopify-Hmac-Sha256".into(),
            encoding: Encoding::Base64,
            prefix: None,
            secret: "webhook".into(),
        }
    }

    fn sw() -> SignatureSpec {
        SignatureSpec::StandardWebhooks {
            tolerance_secs: 300,
            secret: "webhook".into(),
        }
    }

    fn stripe() -> SignatureSpec {
        SignatureSpec::Stripe {
            tolerance_secs: 300,
            secret: "webhook".into(),
        }
    }

    /// Verifies with one list of secrets for every name.
    fn verify(
        spec: &SignatureSpec,
        headers: &Headers,
        body: &[u8],
        secrets: &[&str],
        now: i64,
    ) -> Result<(), SignatureError> {
        let all = secrets.to_vec();
        super::verify(spec, headers, body, &move |_| all.clone(), now)
    }

    #[test]
    fn tiktok_shop_vector() {
        let v = fixture("tiktokshop/webhook-signature-vector.json");
        let body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/tiktokshop")
                .join(v["body_file"].as_str().unwrap()),
        )
        .unwrap();
        let spec = SignatureSpec::TiktokShop {
            header: "Authorization".into(),
            app_key: "app_key".into(),
            secret: "webhook".into(),
        };
        let app_key = v["app_key"].as_str().unwrap();
        let app_secret = v["app_secret"].as_str().unwrap();
        let lookup = |name: &str| match name {
            "app_key" => vec![app_key],
            _ => vec![app_secret],
        };
        let h = headers(&[(
            "Authorization",
            v["expected_authorization"].as_str().unwrap(),
        )]);
        assert_eq!(super::verify(&spec, &h, &body, &lookup, 0), Ok(()));
        let mut tampered = body.clone();
        tampered[5] ^= 1;
        assert_eq!(
            super::verify(&spec, &h, &tampered, &lookup, 0),
            Err(SignatureError::Mismatch)
        );
        let wrong_key = |name: &str| match name {
            "app_key" => vec!["other_app"],
            _ => vec![app_secret],
        };
        assert_eq!(
            super::verify(&spec, &h, &body, &wrong_key, 0),
            Err(SignatureError::Mismatch)
        );
        let signed = sign(&spec, &format!("{app_key}:{app_secret}"), &body, "", 0);
        assert_eq!(signed[0].1, v["expected_authorization"].as_str().unwrap());
    }

    #[test]
    fn wechat_pay_v2_vector() {
        let v = fixture("wechatpay/v2-sign-test-vector.json");
        let params: Vec<(String, String)> = v["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let key = v["api_key"].as_str().unwrap();
        assert_eq!(
            wechat_v2_string(&params, key),
            v["stringSignTemp"].as_str().unwrap()
        );
        assert_eq!(
            wechat_v2_sign(&params, key),
            v["expected_sign_md5"].as_str().unwrap()
        );
        // The same parameters as a notification body, verified end to end.
        let xml = |sign: &str| {
            let mut x = String::from("<xml>");
            for (k, val) in &params {
                x.push_str(&format!("<{k}><![CDATA[{val}]]></{k}>"));
            }
            x.push_str(&format!("<sign>{sign}</sign></xml>"));
            x.into_bytes()
        };
        let spec = SignatureSpec::WechatPayV2 {
            secret: "webhook".into(),
        };
        let good = xml(v["expected_sign_md5"].as_str().unwrap());
        assert_eq!(verify(&spec, &Headers::default(), &good, &[key], 0), Ok(()));
        assert_eq!(
            verify(&spec, &Headers::default(), &good, &["wrong"], 0),
            Err(SignatureError::Mismatch)
        );
        let bad = xml("9A0A8659F005D6984697E2CA0A9CF3B8");
        assert_eq!(
            verify(&spec, &Headers::default(), &bad, &[key], 0),
            Err(SignatureError::Mismatch)
        );
        // HMAC-SHA256 variant (sign_type=HMAC-SHA256 is part of the signed parameters).
        let mut with_type = params.clone();
        with_type.push(("sign_type".into(), "HMAC-SHA256".into()));
        let text = wechat_v2_string(&with_type, key);
        let hmac_sign = hex::encode_upper(hmac_sha256(key.as_bytes(), &[text.as_bytes()]));
        let mut x = String::from("<xml>");
        for (k, val) in &with_type {
            x.push_str(&format!("<{k}>{val}</{k}>"));
        }
        x.push_str(&format!("<sign>{hmac_sign}</sign></xml>"));
        assert_eq!(
            verify(&spec, &Headers::default(), x.as_bytes(), &[key], 0),
            Ok(())
        );
        // A repeated parameter makes the signed set ambiguous.
        let dup = b"<xml><a>1</a><a>2</a><sign>00</sign></xml>";
        assert_eq!(
            verify(&spec, &Headers::default(), dup, &[key], 0),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn woocommerce_vector() {
        let v = fixture("woocommerce/webhook-signature-test-vector.json");
        let vector = &v["vectors"][0];
        let spec = SignatureSpec::HmacSha256 {
            header: "X-WC-Webhook-Signature".into(),
            encoding: Encoding::Base64,
            prefix: None,
            secret: "webhook".into(),
        };
        let h = headers(&[(
            "X-WC-Webhook-Signature",
            vector["expected_signature"].as_str().unwrap(),
        )]);
        let body = vector["payload"].as_str().unwrap().as_bytes();
        assert_eq!(
            verify(&spec, &h, body, &[vector["secret"].as_str().unwrap()], 0),
            Ok(())
        );
        assert_eq!(
            verify(&spec, &h, body, &["x"], 0),
            Err(SignatureError::Mismatch)
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (k, v) in pairs {
            h.push(k, v);
        }
        h
    }

    #[test]
    fn shopify_vectors() {
        let v = fixture("shopify/webhook-hmac-test-vectors.json");
        for vector in v["vectors"].as_array().unwrap() {
            let secret = vector["secret"].as_str().unwrap();
            let body = vector["body"].as_str().unwrap().as_bytes();
            let sig = vector["expected_hmac"].as_str().unwrap();
            let h = headers(&[("X-Shopify-Hmac-Sha256", sig)]);
            assert_eq!(verify(&shopify(), &h, body, &[secret], 0), Ok(()));
            assert_eq!(
                verify(&shopify(), &h, body, &["wrong", secret], 0),
                Ok(()),
                "rotation: any secret may match"
            );
            let mut tampered = body.to_vec();
            tampered[0] ^= 1;
            assert_eq!(
                verify(&shopify(), &h, &tampered, &[secret], 0),
                Err(SignatureError::Mismatch)
            );
            assert_eq!(
                verify(&shopify(), &h, body, &["wrong"], 0),
                Err(SignatureError::Mismatch)
            );
            assert_eq!(sign(&shopify(), secret, body, "", 0)[0].1, sig);
        }
    }

    #[test]
    fn standard_webhooks_vectors() {
        let v = fixture("standard-webhooks/signature-test-vectors.json");
        for vector in v["vectors"].as_array().unwrap() {
            let secret = vector["secret"].as_str().unwrap();
            let id = vector["msg_id"].as_str().unwrap();
            let ts = vector["timestamp"].as_i64().unwrap();
            let payload = vector["payload"].as_str().unwrap().as_bytes();
            let sig = vector["expected_signature"].as_str().unwrap();
            let ts_s = ts.to_string();
            let h = headers(&[
                ("webhook-id", id),
                ("webhook-timestamp", &ts_s),
                ("webhook-signature", sig),
            ]);
            assert_eq!(verify(&sw(), &h, payload, &[secret], ts), Ok(()));
            assert_eq!(verify(&sw(), &h, payload, &[secret], ts + 299), Ok(()));
            assert_eq!(verify(&sw(), &h, payload, &[secret], ts - 299), Ok(()));
            assert_eq!(
                verify(&sw(), &h, payload, &[secret], ts + 301),
                Err(SignatureError::Expired)
            );
            assert_eq!(
                verify(&sw(), &h, payload, &[secret], ts - 301),
                Err(SignatureError::Expired)
            );
            // Rotation: a bad signature first, the good one second.
            let rotated = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {sig}");
            let h2 = headers(&[
                ("webhook-id", id),
                ("webhook-timestamp", &ts_s),
                ("webhook-signature", &rotated),
            ]);
            assert_eq!(verify(&sw(), &h2, payload, &[secret], ts), Ok(()));
            let signed = sign(&sw(), secret, payload, id, ts);
            assert_eq!(signed[2].1, sig);
        }
        // Negative cases from the vector file.
        let first = &v["vectors"][0];
        let secret = first["secret"].as_str().unwrap();
        let ts = first["timestamp"].as_i64().unwrap().to_string();
        let payload = first["payload"].as_str().unwrap().as_bytes();
        for neg in v["negative_cases"].as_array().unwrap().iter().skip(1) {
            let h = headers(&[
                ("webhook-id", first["msg_id"].as_str().unwrap()),
                ("webhook-timestamp", &ts),
                (
                    "webhook-signature",
                    neg["signature_header"].as_str().unwrap(),
                ),
            ]);
            assert_eq!(
                verify(&sw(), &h, payload, &[secret], ts.parse().unwrap()),
                Err(SignatureError::Mismatch)
            );
        }
        // The Rust library's negative case: the signature is not for this timestamp.
        let neg = &v["negative_cases"][0];
        let h = headers(&[
            ("webhook-id", neg["msg_id"].as_str().unwrap()),
            ("webhook-timestamp", "1649367553"),
            (
                "webhook-signature",
                neg["signature_header"].as_str().unwrap(),
            ),
        ]);
        assert!(
            verify(
                &sw(),
                &h,
                neg["payload"].as_str().unwrap().as_bytes(),
                &[neg["secret"].as_str().unwrap()],
                1649367553
            )
            .is_err()
        );
    }

    #[test]
    fn stripe_vectors() {
        let v = fixture("stripe/webhook-signature-test-vectors.json");
        let vector = &v["vectors"][0];
        let secret = vector["secret"].as_str().unwrap();
        let ts = vector["timestamp"].as_i64().unwrap();
        let body_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/stripe")
            .join(vector["body_file"].as_str().unwrap());
        let body = std::fs::read(body_path).unwrap();
        let header_value = vector["stripe_signature_header"].as_str().unwrap();
        let h = headers(&[("Stripe-Signature", header_value)]);
        assert_eq!(verify(&stripe(), &h, &body, &[secret], ts + 100), Ok(()));
        assert_eq!(
            verify(&stripe(), &h, &body, &[secret], ts + 301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(&stripe(), &h, &body, &[secret], ts - 301),
            Err(SignatureError::Expired),
            "future timestamps beyond the tolerance are refused too"
        );
        // The signature covers the trailing newline.
        let trimmed = &body[..body.len() - 1];
        assert_eq!(
            verify(&stripe(), &h, trimmed, &[secret], ts),
            Err(SignatureError::Mismatch)
        );
        for neg in v["negative_cases"].as_array().unwrap() {
            let h = headers(&[("Stripe-Signature", neg["header"].as_str().unwrap())]);
            assert!(verify(&stripe(), &h, &body, &[secret], ts).is_err());
        }
        // Several v1 entries: any match passes.
        let multi = format!(
            "t={ts},v1={},v1={}",
            "00".repeat(32),
            vector["expected_v1"].as_str().unwrap()
        );
        let h = headers(&[("Stripe-Signature", &multi)]);
        assert_eq!(verify(&stripe(), &h, &body, &[secret], ts), Ok(()));
        let expected_v1 = vector["expected_v1"].as_str().unwrap();
        assert!(
            sign(&stripe(), secret, &body, "", ts)[0]
                .1
                .ends_with(expected_v1)
        );
    }

    #[test]
    fn malformed_headers_never_pass() {
        let body = b"{}";
        let now = 1_700_000_000;
        let good = sign(&stripe(), "s", body, "", now)[0].1.clone();
        let t = now.to_string();
        for bad in [
            String::new(),
            "v1,".into(),
            "t=".into(),
            format!("t={t}"),
            format!("t={t},v1="),
            format!("t=1,{good}"),
            format!("t=-1,v1={}", "00".repeat(32)),
            format!("t=1e3,v1={}", "00".repeat(32)),
            format!("t=99999999999999999999,v1={}", "00".repeat(32)),
            format!("{good},t={t}"),
            "x".repeat(10_000),
        ] {
            let h = headers(&[("Stripe-Signature", &bad)]);
            assert!(verify(&stripe(), &h, body, &["s"], now).is_err(), "{bad:?}");
        }
        let sw_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        for bad in ["v1,", "v1", "v1,,", "v1, ", "v2,abc", "V1,abc", ""] {
            let h = headers(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &t),
                ("webhook-signature", bad),
            ]);
            assert!(
                verify(&sw(), &h, body, &[sw_secret], now).is_err(),
                "{bad:?}"
            );
        }
        for bad in ["", "sha256=", "AAAA", "not base64!!", &"A".repeat(100)] {
            let h = headers(&[("X-Shopify-Hmac-Sha256", bad)]);
            assert!(
                verify(&shopify(), &h, body, &["s"], now).is_err(),
                "{bad:?}"
            );
        }
        // Missing header and repeated header.
        assert_eq!(
            verify(&shopify(), &Headers::default(), body, &["s"], now),
            Err(SignatureError::MissingHeader)
        );
        let sig = sign(&shopify(), "s", body, "", now)[0].1.clone();
        let twice = headers(&[
            ("X-Shopify-Hmac-Sha256", &sig),
            ("x-shopify-hmac-sha256", &sig),
        ]);
        assert_eq!(
            verify(&shopify(), &twice, body, &["s"], now),
            Err(SignatureError::Malformed)
        );
        // Header names are case-insensitive.
        let lower = headers(&[("x-shopify-hmac-sha256", &sig)]);
        assert_eq!(verify(&shopify(), &lower, body, &["s"], now), Ok(()));
        assert_eq!(
            verify(&shopify(), &lower, body, &[], now),
            Err(SignatureError::NoSecret)
        );
    }
}
