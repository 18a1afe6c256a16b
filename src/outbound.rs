//! Where the gateway may call out to: the one policy for every configured base URL (channel
//! APIs, rate sources), used by config validation and the clients alike.

use url::Url;

/// Only https, or http to a loopback address (tests and local mocks).
pub fn check_base_url(text: &str) -> Result<Url, String> {
    let u = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https:// URL".into()),
    }
    if u.host_str().is_none() || !u.username().is_empty() || u.password().is_some() {
        return Err("must name a host and carry no credentials".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert!(check_base_url("https://sellingpartnerapi-eu.amazon.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:9000/api").is_ok());
        assert!(check_base_url("http://example.com").is_err());
        assert!(check_base_url("https://user:pw@example.com").is_err());
        assert!(check_base_url("ftp://example.com").is_err());
    }
}
