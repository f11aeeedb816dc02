//! Errors on the data path and the one place they become responses (SPEC section 8).
//!
//! Each error says who is to blame and whether a retry may help, so that logs, metrics and (later)
//! audit events can tell a caller's mistake from an upstream's failure from the gateway's own.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

/// Who caused an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The request was malformed, too large or unroutable.
    Caller,
    /// The upstream was unreachable, slow or broke off.
    Upstream,
    /// The gateway itself failed.
    Gateway,
}

/// The OpenAI error `type` for a status: the one mapping for the data path and the admin API.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 413 | 431 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        504 => "timeout_error",
        502 => "upstream_error",
        _ => "server_error",
    }
}

/// A data-path error, mapped to a status and an OpenAI-style error body.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct GatewayError {
    /// HTTP status sent to the caller.
    pub status: StatusCode,
    /// Stable machine-readable code (`upstream_timeout`, ...).
    pub code: &'static str,
    /// Human-readable message; never holds a secret or a body.
    pub message: String,
    /// Who is to blame.
    pub blame: Blame,
    /// Whether the caller may retry the same request.
    pub retryable: bool,
    /// For `approval_required`: the approval request's id and where to approve it.
    pub approval: Option<(String, Option<String>)>,
}

impl GatewayError {
    fn new(status: StatusCode, code: &'static str, blame: Blame, retryable: bool, message: impl Into<String>) -> Self {
        GatewayError { status, code, message: message.into(), blame, retryable, approval: None }
    }

    /// 400: the body is not what the endpoint expects.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", Blame::Caller, false, message)
    }

    /// 401: no valid credential. The precise reason goes to the log, never to the caller.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", Blame::Caller, false, "authentication failed")
    }

    /// 403: policy refuses this call.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", Blame::Caller, false, message)
    }

    /// 403: policy requires a human's approval before this call may go on.
    pub fn approval_required(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "approval_required", Blame::Caller, false, message)
    }

    /// 403 `approval_required` naming the approval request and where to approve it; the caller
    /// retries once it is approved.
    pub fn approval_pending(message: impl Into<String>, id: String, approve_url: Option<String>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, "approval_required", Blame::Caller, true, message);
        e.approval = Some((id, approve_url));
        e
    }

    /// 500: masking could not run where policy requires it; nothing goes on unmasked.
    pub fn masking_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "masking_failed", Blame::Gateway, false, message)
    }

    /// 404: no upstream serves this model or path.
    pub fn no_route(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "no_route", Blame::Caller, false, message)
    }

    /// 413: the request body exceeds the configured limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            Blame::Caller,
            false,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 431: the request head exceeds the configured limit.
    pub fn headers_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            Blame::Caller,
            false,
            format!("request headers exceed the limit of {limit} bytes"),
        )
    }

    /// 502: the upstream could not be reached or broke the exchange.
    pub fn upstream_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", Blame::Upstream, true, message)
    }

    /// 504: the upstream did not answer in time.
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", Blame::Upstream, true, message)
    }

    /// 503: the gateway is shutting down or cannot serve.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "gateway_unavailable", Blame::Gateway, true, message)
    }

    /// 503: the audit store fails closed; nothing proceeds unaudited (SPEC section 5).
    pub fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            Blame::Gateway,
            true,
            "the audit trail cannot record this call right now; retry later",
        )
    }

    /// The OpenAI `type` that SDKs surface.
    pub fn kind(&self) -> &'static str {
        error_type(self.status.as_u16())
    }

    /// The JSON body of SPEC section 8.
    pub fn body(&self, request_id: &str) -> Bytes {
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            r#type: &'a str,
            code: &'a str,
            request_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            approval_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            approve_url: Option<&'a str>,
        }
        let (approval_id, approve_url) = match &self.approval {
            Some((id, url)) => (Some(id.as_str()), url.as_deref()),
            None => (None, None),
        };
        let inner = Inner {
            message: &self.message,
            r#type: self.kind(),
            code: self.code,
            request_id,
            approval_id,
            approve_url,
        };
        let body = Outer { error: inner };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The full response: status, JSON body, `x-request-id`.
    pub fn to_response<B>(&self, request_id: &str, wrap: impl FnOnce(Bytes) -> B) -> Response<B> {
        let mut res = Response::new(wrap(self.body(request_id)));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(crate::headers::X_REQUEST_ID, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"modelgate\""));
        }
        res
    }

    /// A frame to append to a stream that fails after its head was sent, in the stream's framing,
    /// so that clients and SDKs see why the stream ended.
    pub fn stream_frame(&self, framing: protocols::Framing, request_id: &str) -> Option<Bytes> {
        let json = self.body(request_id);
        match framing {
            protocols::Framing::Sse => {
                let mut v = Vec::with_capacity(json.len() + 24);
                v.extend_from_slice(b"event: error\ndata: ");
                v.extend_from_slice(&json);
                v.extend_from_slice(b"\n\n");
                Some(Bytes::from(v))
            }
            protocols::Framing::Ndjson => {
                let mut v = json.to_vec();
                v.push(b'\n');
                Some(Bytes::from(v))
            }
            protocols::Framing::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_spec_shaped() {
        let e = GatewayError::upstream_timeout("upstream \"a\" sent nothing for 5s");
        let v: serde_json::Value = serde_json::from_slice(&e.body("r-1")).unwrap();
        assert_eq!(v["error"]["code"], "upstream_timeout");
        assert_eq!(v["error"]["type"], "timeout_error");
        assert_eq!(v["error"]["request_id"], "r-1");
        assert_eq!(v["error"]["message"], "upstream \"a\" sent nothing for 5s");
        let r: Response<Bytes> = GatewayError::too_large(10).to_response("r-2", |b| b);
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()["x-request-id"], "r-2");
    }

    #[test]
    fn stream_frames_keep_the_framing() {
        let e = GatewayError::upstream_unavailable("reset");
        let sse = e.stream_frame(protocols::Framing::Sse, "r").unwrap();
        assert!(sse.starts_with(b"event: error\ndata: {") && sse.ends_with(b"}\n\n"));
        let nd = e.stream_frame(protocols::Framing::Ndjson, "r").unwrap();
        assert!(nd.ends_with(b"}\n") && !nd[..nd.len() - 1].contains(&b'\n'));
        assert!(e.stream_frame(protocols::Framing::None, "r").is_none());
    }
}
