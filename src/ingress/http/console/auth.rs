//! Who may use the console: a session cookie signed with the API token (HttpOnly,
//! SameSite=Strict, 12 hours), set by the login form; a CSRF token bound to the session on
//! every form that changes something. A login with the read-only token (`[server]
//! read_token`) gets a session that may read every page but change nothing. Without an API
//! token the console is open, as `/v1` is, and forms still carry a CSRF token (signed with a
//! key of this process).

use std::sync::OnceLock;

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub(super) const COOKIE: &str = "crossgate_console";

/// How long a login lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Everything (a login with the API token, or no token configured).
    Full,
    /// Read the pages; no action (a login with the read-only token).
    Read,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Read => "read",
        }
    }

    /// The scope a session value carries (`expires.scope.signature`; a session without a login
    /// may do everything).
    pub(super) fn of(session: &str) -> Scope {
        match session.split('.').nth(1) {
            Some("read") => Scope::Read,
            _ => Scope::Full,
        }
    }
}

/// What signs sessions and CSRF tokens: the API token, or a random key of this process when
/// none is configured.
pub(super) struct Keys {
    key: Vec<u8>,
    /// The read-only token, when one is configured.
    read: Option<String>,
    /// Whether a login is needed (an API token is configured).
    pub(super) login: bool,
}

impl Keys {
    pub(super) fn new(api_token: Option<&str>, read_token: Option<&str>) -> Self {
        static PROCESS_KEY: OnceLock<[u8; 32]> = OnceLock::new();
        match api_token {
            Some(t) => Self {
                key: t.as_bytes().to_vec(),
                read: read_token.map(str::to_string),
                login: true,
            },
            None => Self {
                key: PROCESS_KEY.get_or_init(rand::random).to_vec(),
                read: None,
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
    pub(super) fn new_session(&self, now: i64, scope: Scope) -> String {
        let expires = now + SESSION_SECS;
        let scope = scope.as_str();
        format!(
            "{expires}.{scope}.{}",
            self.sign(&format!("session:{expires}:{scope}"))
        )
    }

    /// The request's session, when it has a valid, unexpired one (or no login is needed).
    pub(super) fn session(&self, headers: &HeaderMap, now: i64) -> Option<String> {
        let value = cookie(headers, COOKIE);
        if !self.login {
            return Some(value.unwrap_or_default());
        }
        let value = value?;
        let mut parts = value.splitn(3, '.');
        let (expires, scope, sig) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: i64 = expires.parse().ok()?;
        (expires > now && self.verify(&format!("session:{expires}:{scope}"), sig)).then_some(value)
    }

    /// The CSRF token of a session.
    pub(super) fn csrf(&self, session: &str) -> String {
        self.sign(&format!("csrf:{session}"))
    }

    pub(super) fn csrf_ok(&self, session: &str, token: &str) -> bool {
        self.verify(&format!("csrf:{session}"), token)
    }

    /// What a login with `given` may do: the API token everything, the read-only token
    /// reading (compared in constant time); `None` for anything else.
    pub(super) fn token_scope(&self, given: &str) -> Option<Scope> {
        use crate::adapter::signature::is_one_of;
        if !self.login {
            return None;
        }
        if std::str::from_utf8(&self.key).is_ok_and(|k| is_one_of(&[k], given)) {
            return Some(Scope::Full);
        }
        self.read
            .as_deref()
            .is_some_and(|r| is_one_of(&[r], given))
            .then_some(Scope::Read)
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
        let keys = Keys::new(Some("token"), None);
        let s = keys.new_session(1_000, Scope::Full);
        assert_eq!(keys.session(&with_cookie(&s), 1_001), Some(s.clone()));
        assert_eq!(keys.session(&with_cookie(&s), 1_000 + SESSION_SECS), None);
        let forged = s.replacen(|c: char| c.is_ascii_digit(), "9", 1);
        assert_eq!(keys.session(&with_cookie(&forged), 1_001), None);
        assert_eq!(keys.session(&HeaderMap::new(), 1_001), None);
        // Another token's sessions are not this one's.
        assert_eq!(
            Keys::new(Some("other"), None).session(&with_cookie(&s), 1_001),
            None
        );
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let keys = Keys::new(Some("token"), None);
        let (a, b) = (
            keys.new_session(1, Scope::Full),
            keys.new_session(2, Scope::Full),
        );
        assert!(keys.csrf_ok(&a, &keys.csrf(&a)));
        assert!(!keys.csrf_ok(&b, &keys.csrf(&a)));
        assert!(!keys.csrf_ok(&a, "00"));
    }

    #[test]
    fn without_a_token_no_login_is_needed_and_no_token_logs_in() {
        let keys = Keys::new(None, Some("read"));
        assert!(keys.session(&HeaderMap::new(), 0).is_some());
        assert_eq!(keys.token_scope(""), None);
        assert_eq!(
            keys.token_scope("read"),
            None,
            "no read-only login without a token"
        );
    }

    #[test]
    fn the_read_only_token_logs_in_to_a_session_that_may_only_read() {
        let keys = Keys::new(Some("token"), Some("reader"));
        assert_eq!(keys.token_scope("token"), Some(Scope::Full));
        assert_eq!(keys.token_scope("reader"), Some(Scope::Read));
        assert_eq!(keys.token_scope("readers"), None);
        let s = keys.new_session(1_000, Scope::Read);
        assert_eq!(keys.session(&with_cookie(&s), 1_001), Some(s.clone()));
        assert_eq!(Scope::of(&s), Scope::Read);
        // Claiming the full scope breaks the signature.
        let raised = s.replace(".read.", ".full.");
        assert_eq!(keys.session(&with_cookie(&raised), 1_001), None);
        assert_eq!(
            Scope::of(&keys.new_session(1_000, Scope::Full)),
            Scope::Full
        );
    }
}
