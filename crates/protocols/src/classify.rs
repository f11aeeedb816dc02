//! Request classification: endpoint + path + query + body -> plain data for later layers.

use crate::action::Action;
use crate::endpoint::{
    BodyUse, Endpoint, Framing, ModelAt, StreamRule, UsageShape, model_is_path_tail, percent_decode, split_segments,
};
use crate::flavor::FlavorSet;
use crate::peek::{Peek, PeekError, peek_json};

/// The classification handed to later layers as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// The classified action.
    pub action: Action,
    /// The requested model, when the request names one.
    pub model: Option<String>,
    /// Whether the response will stream.
    pub stream: bool,
    /// The requested maximum of generated tokens.
    pub max_tokens: Option<u64>,
    /// Response framing; `Framing::None` when not streaming.
    pub framing: Framing,
    /// Which response shape carries token usage.
    pub usage: UsageShape,
    /// The flavors that serve this endpoint.
    pub flavors: FlavorSet,
    /// Whether the caller asked for usage itself (`stream_options.include_usage == true`).
    pub caller_wants_usage: bool,
}

/// Classifies a request. `endpoint` is [`lookup`](crate::lookup)'s answer; `body` is the buffered
/// JSON body when `endpoint.body == Json` (None otherwise; a body given for other endpoints is
/// ignored). Unknown endpoint => action Unknown, flavors ALL, model (and stream flag) from the body
/// if it is Some and peeks (an unknown path's body need not be JSON, so it never errors).
pub fn classify(
    endpoint: Option<&Endpoint>,
    path: &str,
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Classification, PeekError> {
    let Some(ep) = endpoint else {
        let peek = body.and_then(|b| peek_json(b, &["model"]).ok()).unwrap_or_default();
        return Ok(Classification {
            action: Action::Unknown,
            model: peek.model,
            stream: peek.stream.unwrap_or(false),
            max_tokens: peek.max_tokens,
            framing: Framing::None,
            usage: UsageShape::None,
            flavors: FlavorSet::ALL,
            caller_wants_usage: peek.include_usage == Some(true),
        });
    };
    let fields: &[&str] = match ep.model {
        ModelAt::Body(f) => f,
        _ => &[],
    };
    let peek = match body {
        Some(b) if ep.body == BodyUse::Json => peek_json(b, fields)?,
        _ => Peek::default(),
    };
    let model = match ep.model {
        ModelAt::None => None,
        ModelAt::Body(_) => peek.model,
        ModelAt::PathSegment(i) => path_model(path, i, model_is_path_tail(ep)),
        ModelAt::Query(name) => query.and_then(|q| query_param(q, name)),
    };
    let stream = match ep.stream {
        StreamRule::Never => false,
        StreamRule::Always => true,
        StreamRule::Field { default } => peek.stream.unwrap_or(default),
    };
    Ok(Classification {
        action: ep.action,
        model,
        stream,
        max_tokens: peek.max_tokens,
        framing: if stream { ep.framing } else { Framing::None },
        usage: ep.usage,
        flavors: ep.flavors,
        caller_wants_usage: peek.include_usage == Some(true),
    })
}

/// Segment `i` of the decoded path (or the rest of the path from it when `tail`).
fn path_model(path: &str, i: usize, tail: bool) -> Option<String> {
    let decoded = percent_decode(path, false);
    let mut segs = [""; 16];
    let n = split_segments(&decoded, &mut segs)?;
    if i >= n {
        return None;
    }
    Some(if tail { segs[i..n].join("/") } else { segs[i].to_owned() }).filter(|s| !s.is_empty())
}

/// The value of query parameter `name` (form-decoded). None when absent, empty, or given more than
/// once with different values (servers disagree on which one wins).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k, true) != name {
            continue;
        }
        let v = percent_decode(v, true);
        match &found {
            Some(f) if f.as_str() != v => return None,
            Some(_) => {}
            None => found = Some(v.into_owned()),
        }
    }
    found.filter(|v| !v.is_empty())
}
