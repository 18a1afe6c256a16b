//! Refusals decided from the request head alone, before any of the body is read: an announced
//! body over the limit, and codings the gateway does not decode. Answering from the headers
//! means a sender that waits for `100 Continue` gets its 413 at once, and a body that would be
//! misread (gzip bytes taken as JSON) is never stored.

use axum::http::{HeaderMap, StatusCode, header};

use super::problem::Problem;

/// The answer to a request whose head already rules it out, if any.
pub fn refuse_from_head(headers: &HeaderMap, body_limit: usize) -> Option<Problem> {
    if let Some(len) = content_length(headers)
        && len > body_limit as u64
    {
        return Some(Problem::too_large(body_limit));
    }
    // hyper de-chunks; any other transfer coding (`gzip, chunked`) would reach us still encoded.
    if codings(headers, header::TRANSFER_ENCODING).any(|c| c != "chunked") {
        return Some(
            Problem::new(
                StatusCode::NOT_IMPLEMENTED,
                "transfer-coding",
                "Unsupported transfer coding",
            )
            .detail("only the chunked transfer coding is accepted; send the body uncompressed"),
        );
    }
    if codings(headers, header::CONTENT_ENCODING).any(|c| c != "identity") {
        return Some(
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-coding",
                "Unsupported content coding",
            )
            .detail("the body must not be compressed (Content-Encoding: identity)"),
        );
    }
    None
}

/// The announced body length (hyper has already refused a malformed or repeated one).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The lower-cased coding names of a comma-separated header, over all its lines.
fn codings(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn decides_from_the_head() {
        let status = |pairs: &[(&'static str, &'static str)]| {
            refuse_from_head(&head(pairs), 1000).map(|p| p.status.as_u16())
        };
        assert_eq!(status(&[("content-length", "1000")]), None);
        assert_eq!(status(&[("content-length", "1001")]), Some(413));
        assert_eq!(status(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(status(&[("transfer-encoding", "gzip, chunked")]), Some(501));
        assert_eq!(
            status(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ]),
            Some(501)
        );
        assert_eq!(status(&[("content-encoding", "identity")]), None);
        assert_eq!(status(&[("content-encoding", "gzip")]), Some(415));
        assert_eq!(status(&[]), None);
    }
}
