//! `GET /v1/models` and `GET /api/tags`, answered by the gateway: the union of the upstreams'
//! lists, each model listed only under the upstream a request for it would be routed to.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full};
use protocols::{Action, Flavor};
use serde_json::{Value, json};

use crate::error::GatewayError;
use crate::headers::X_REQUEST_ID;
use crate::pipeline::{Gateway, ResponseBody, Runtime};
use crate::upstream::{Upstream, UpstreamBody};

/// Longest wait for one upstream's list.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest list body read from an upstream.
const LIST_CAP: usize = 8 << 20;

/// Answers a model listing in the dialect of `path` (`/v1/models` or `/api/tags`).
pub(crate) async fn answer(
    gw: &Gateway,
    rt: &Runtime,
    caller: &identity::Identity,
    path: &str,
    request_id: &Arc<str>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let ollama = path == "/api/tags";
    let (method, probe) = if ollama { (Method::POST, "/api/chat") } else { (Method::POST, "/v1/chat/completions") };
    let endpoint = protocols::lookup(&method, probe);
    let candidates: Vec<Arc<Upstream>> = rt
        .router
        .upstreams()
        .iter()
        .filter(|u| u.prefix.is_none() && endpoint.is_some_and(|e| e.flavors.contains(u.flavor)))
        .cloned()
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, u) in candidates.iter().enumerate() {
        let client = gw.client.clone();
        let u = u.clone();
        let rid = request_id.clone();
        let timeout = LIST_TIMEOUT.min(rt.limits.first_byte);
        tasks.spawn(async move { (i, tokio::time::timeout(timeout, fetch(&client, &u, &rid)).await) });
    }
    let mut lists: Vec<Option<Vec<Value>>> = vec![None; candidates.len()];
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, result)) = joined else { continue };
        match result {
            Ok(Ok(models)) => lists[i] = Some(models),
            Ok(Err(e)) => tracing::warn!(upstream = &*candidates[i].name, "listing models failed: {e}"),
            Err(_) => tracing::warn!(upstream = &*candidates[i].name, "listing models timed out"),
        }
    }
    if !candidates.is_empty() && lists.iter().all(Option::is_none) {
        return Err(GatewayError::upstream_unavailable("no upstream answered its model list"));
    }
    let mut out = Vec::new();
    for (u, list) in candidates.iter().zip(lists) {
        for entry in list.unwrap_or_default() {
            let name = entry_name(u.flavor, &entry, ollama);
            let Some(name) = name else { continue };
            let routed = rt.router.by_model(Some(&name), endpoint);
            if !routed.is_some_and(|r| Arc::ptr_eq(r, u)) || !usable(rt, caller, &name, &u.name) {
                continue;
            }
            out.push(if ollama { entry } else { openai_entry(u, &name, entry) });
        }
    }
    let body = if ollama { json!({ "models": out }) } else { json!({ "object": "list", "data": out }) };
    let mut res = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    Ok(res)
}

/// Inference actions, any of which makes a model worth listing.
const INFERENCE: [Action; 5] = [
    Action::InferenceChat,
    Action::InferenceCompletion,
    Action::InferenceEmbedding,
    Action::InferenceRerank,
    Action::InferenceOther,
];

/// Whether policy lets the caller use the model for some inference action, possibly after an
/// approval (SPEC section 3: the list is filtered to what the caller's policy allows).
fn usable(rt: &Runtime, caller: &identity::Identity, model: &str, upstream: &str) -> bool {
    INFERENCE.iter().any(|&action| {
        let q = crate::pipeline::policy_query(caller, action, Some(model), Some(upstream), &[]);
        rt.policy.decide(&q).effect != policy::Effect::Deny
    })
}

/// The model name of one listing entry.
fn entry_name(flavor: Flavor, entry: &Value, ollama: bool) -> Option<String> {
    let key = if ollama || flavor == Flavor::Ollama { "name" } else { "id" };
    entry.get(key).or_else(|| entry.get("model")).and_then(Value::as_str).map(str::to_string)
}

/// An OpenAI-shaped entry: passed through from OpenAI-style upstreams, made up for others.
fn openai_entry(u: &Upstream, name: &str, entry: Value) -> Value {
    match u.flavor {
        Flavor::OpenAi | Flavor::Vllm | Flavor::LlamaCpp => entry,
        _ => json!({ "id": name, "object": "model", "created": 0, "owned_by": &*u.name }),
    }
}

/// Fetches one upstream's list in its native form, as a list of entries.
async fn fetch(client: &crate::upstream::UpstreamClient, u: &Upstream, rid: &str) -> Result<Vec<Value>, String> {
    let (method, path) = match u.flavor {
        Flavor::Ollama => (Method::GET, "/api/tags"),
        Flavor::Tgi => (Method::GET, "/info"),
        Flavor::Triton => (Method::POST, "/v2/repository/index"),
        Flavor::OpenAi | Flavor::Vllm | Flavor::LlamaCpp => (Method::GET, "/v1/models"),
    };
    let uri = u.uri(path, None).map_err(|e| e.to_string())?;
    let body: UpstreamBody = Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync();
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    if let Ok(v) = HeaderValue::from_str(rid) {
        req.headers_mut().insert(X_REQUEST_ID, v);
    }
    if let Some(auth) = &u.auth {
        req.headers_mut().insert(header::AUTHORIZATION, auth.clone());
    }
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("status {}", res.status()));
    }
    let body = http_body_util::Limited::new(res.into_body(), LIST_CAP).collect().await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&body.to_bytes()).map_err(|e| e.to_string())?;
    let list = match u.flavor {
        Flavor::Ollama => v.get("models").cloned(),
        Flavor::Tgi => v.get("model_id").map(|id| json!([{ "id": id }])),
        Flavor::Triton => Some(v.clone()),
        _ => v.get("data").cloned(),
    };
    match list {
        Some(Value::Array(a)) => Ok(a),
        _ => Err("unexpected model list shape".into()),
    }
}
