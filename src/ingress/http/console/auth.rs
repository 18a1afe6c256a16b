//! Who may use the console: a session cookie signed with the API token (HttpOnly,
//! SameSite=Strict, 12 hours), set by the login form; a CSRF token bound to the session on
//! every form that changes something. Without an API token the console is open, as `/v1` is,
//! and forms still carry a CSRF token (signed with a key of this process).

use std::sync::OnceLock;

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub(super) const COOKIE: &str = "crossgate_console";

/// How long a login lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// What signs sessions and CSRF tokens: the API token, or a random key of this process when
/// none is configured.
pub(super) struct Keys {
    key: Vec<u8>,
    /// Whether a login is needed (an API token is configured).
    pub(super) login: bool,
}

impl Keys {
    pub(super) fn new(api_token: Option<&str>) -> Self {
        static PROCESS_KEY: OnceLock<[u8; 32]> = OnceLock::new();
        match api_token {
            Some(t) => Self {
                key: t.as_bytes().to_vec(),
                login: true,
            },
            None => Self {
                key: PROCESS_KEY.get_or_init(rand::random).to_vec(),
                login: false,
            },
        }
    }

    fn sign(&self, what: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(what.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, what: &str, signature: &str) -> bool {
        let Ok(sig) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(what.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// A new session cookie's value, valid from `now` (unix seconds).
    pub(super) fn new_session(&self, now: i64) -> String {
        let expires = now + SESSION_SECS;
        format!("{expires}.{}", self.sign(&format!("session:{expires}")))
    }

    /// The request's session, when it has a valid, unexpired one (or no login is needed).
    pub(super) fn session(&self, headers: &HeaderMap, now: i64) -> Option<String> {
        let value = cookie(headers, COOKIE);
        if !self.login {
            return Some(value.unwrap_or_default());
        }
        let value = value?;
        let (expires, sig) = value.split_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        (expires > now && self.verify(&format!("session:{expires}"), sig)).then_some(value)
    }

    /// The CSRF token of a session.
    pub(super) fn csrf(&self, session: &str) -> String {
        self.sign(&format!("csrf:{session}"))
    }

    pub(super) fn csrf_ok(&self, session: &str, token: &str) -> bool {
        self.verify(&format!("csrf:{session}"), token)
    }

    /// Whether `given` is the API token (constant time).
    pub(super) fn is_token(&self, given: &str) -> bool {
        self.login
            && std::str::from_utf8(&self.key)
                .is_ok_and(|k| crate::adapter::signature::is_one_of(&[k], given))
    }
}

/// A cookie of the request, by name.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value of a session (`None`: the logout that clears it).
pub(super) fn set_cookie(value: Option<&str>) -> String {
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}"
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={v}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_with_its_signature() {
        let keys = Keys::new(Some("token"));
        let s = keys.new_session(1_000);
        assert_eq!(keys.session(&with_cookie(&s), 1_001), Some(s.clone()));
        assert_eq!(keys.session(&with_cookie(&s), 1_000 + SESSION_SECS), None);
        let forged = s.replacen(|c: char| c.is_ascii_digit(), "9", 1);
        assert_eq!(keys.session(&with_cookie(&forged), 1_001), None);
        assert_eq!(keys.session(&HeaderMap::new(), 1_001), None);
        // Another token's sessions are not this one's.
        assert_eq!(
            Keys::new(Some("other")).session(&with_cookie(&s), 1_001),
            None
        );
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let keys = Keys::new(Some("token"));
        let (a, b) = (keys.new_session(1), keys.new_session(2));
        assert!(keys.csrf_ok(&a, &keys.csrf(&a)));
        assert!(!keys.csrf_ok(&b, &keys.csrf(&a)));
        assert!(!keys.csrf_ok(&a, "00"));
    }

    #[test]
    fn without_a_token_no_login_is_needed_and_no_token_logs_in() {
        let keys = Keys::new(None);
        assert!(keys.session(&HeaderMap::new(), 0).is_some());
        assert!(!keys.is_token(""));
    }
}
