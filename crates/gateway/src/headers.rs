//! Header hygiene between caller and upstream: hop-by-hop headers (RFC 9110 section 7.6.1) and
//! caller credentials never cross the gateway.

use http::{HeaderMap, HeaderName, header};

/// The request id header, sent to the caller and forwarded upstream.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers, removed in both directions.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Caller credentials: never forwarded upstream.
const CREDENTIALS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

/// Prepares caller headers for the upstream: hop-by-hop, credentials, `Host` and the caller's
/// request id go; the body length is recomputed by the client when the body was rewritten.
pub fn to_upstream(h: &mut HeaderMap, body_rewritten: bool) {
    strip_hop_by_hop(h);
    for n in &CREDENTIALS {
        h.remove(n);
    }
    h.remove(header::HOST);
    h.remove(X_REQUEST_ID);
    if body_rewritten {
        h.remove(header::CONTENT_LENGTH);
    }
}

/// Prepares upstream response headers for the caller.
pub fn to_caller(h: &mut HeaderMap, body_rewritten: bool) {
    strip_hop_by_hop(h);
    h.remove(header::SET_COOKIE);
    if body_rewritten {
        h.remove(header::CONTENT_LENGTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn credentials_and_hop_by_hop_never_cross() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer caller-secret"),
            ("proxy-authorization", "Basic x"),
            ("cookie", "a=b"),
            ("x-api-key", "k"),
            ("api-key", "k"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("host", "gateway"),
            ("x-request-id", "client-chosen"),
            ("content-type", "application/json"),
            ("x-mock-tokens", "3"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        to_upstream(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type", "x-mock-tokens"]);
    }
}
