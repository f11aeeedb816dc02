//! Wire formats of each flavor: routing and the JSON / SSE / NDJSON shapes real servers send.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::body::Chunk;
use super::{Shared, lock};
use crate::Flavor;

/// Words the mock generates, one token each, repeated.
pub(crate) const WORDS: [&str; 12] =
    ["Hello", " from", " the", " mock", " model", ".", " It", " says", " the", " same", " thing", " again"];

/// Default number of generated tokens.
pub(crate) const DEFAULT_TOKENS: usize = 8;

/// What a route answers; turned into a response by `body::respond`.
pub(crate) enum Reply {
    /// JSON body with extra headers.
    Json(StatusCode, Value, Vec<(&'static str, String)>),
    /// Plain text body.
    Text(StatusCode, String),
    /// No body.
    Empty(StatusCode),
    /// Exact bytes with an optional content-type.
    Raw(StatusCode, Option<String>, Bytes),
    /// Streamed body (content-type, chunks).
    Stream(&'static str, Vec<Chunk>),
}

fn ok(v: Value) -> Reply {
    Reply::Json(StatusCode::OK, v, Vec::new())
}

/// Request context handed to the routes.
pub(crate) struct Ctx<'a> {
    shared: &'a Shared,
    method: &'a Method,
    path: &'a str,
    query: Option<&'a str>,
    json: Value,
    tokens: Option<usize>,
    force_whole: bool,
    id: u64,
    created: u64,
    /// `x-mock-say`: the answer's text, streamed in 3-character tokens, or cut at each `|` when it
    /// has one (so that values are split across events), instead of the canned words.
    say: Option<String>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
        body: &Bytes,
        tokens: Option<usize>,
        force_whole: bool,
    ) -> Ctx<'a> {
        let json = serde_json::from_slice(body).unwrap_or(Value::Null);
        let id = shared.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ctx { shared, method, path, query, json, tokens, force_whole, id, created, say: None }
    }

    /// Answers with this text (see the `say` field).
    pub(crate) fn with_say(mut self, say: Option<String>) -> Self {
        self.say = say;
        self
    }

    fn flavor(&self) -> Flavor {
        self.shared.opts.flavor
    }

    fn first_model(&self) -> String {
        self.shared.opts.models.first().cloned().unwrap_or_else(|| "mock-model".to_owned())
    }

    /// The request's model (body `model`, or Ollama's legacy `name`), else the first configured one.
    fn model(&self) -> String {
        self.json
            .get("model")
            .or_else(|| self.json.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.first_model())
    }

    fn stream_flag(&self, default: bool) -> bool {
        if self.force_whole {
            return false;
        }
        self.json.get("stream").and_then(Value::as_bool).unwrap_or(default)
    }

    fn is(&self, method: &Method, path: &str) -> bool {
        self.method == method && self.path == path
    }

    /// Generated tokens, limited by the request's max-token setting found at `max_ptrs`.
    fn generate(&self, max_ptrs: &[&str]) -> Gen {
        let wanted = self.tokens.unwrap_or(DEFAULT_TOKENS);
        let max = max_ptrs.iter().find_map(|p| self.json.pointer(p).and_then(Value::as_u64));
        let (n, length) = match max {
            Some(m) if (m as usize) < wanted => (m as usize, true),
            _ => (wanted, false),
        };
        if let Some(say) = &self.say {
            // `|` marks the token boundaries exactly (`Hello, |how |are you`).
            let toks = if say.contains('|') {
                say.split('|').map(|t| std::borrow::Cow::Owned(t.to_owned())).collect()
            } else {
                let chars: Vec<char> = say.chars().collect();
                chars.chunks(3).map(|c| std::borrow::Cow::Owned(c.iter().collect::<String>())).collect()
            };
            return Gen { toks, length: false, prompt: prompt_tokens(&self.json) };
        }
        let toks = (0..n).map(|i| std::borrow::Cow::Borrowed(WORDS[i % WORDS.len()])).collect();
        Gen { toks, length, prompt: prompt_tokens(&self.json) }
    }

    fn hex_id(&self, prefix: &str) -> String {
        format!("{prefix}{:032x}", 0x6d6f_636b_0000_0000_u64.wrapping_add(self.id))
    }
}

struct Gen {
    toks: Vec<std::borrow::Cow<'static, str>>,
    length: bool,
    prompt: u64,
}

impl Gen {
    fn text(&self) -> String {
        self.toks.concat()
    }
    fn count(&self) -> u64 {
        self.toks.len() as u64
    }
    fn usage(&self) -> Value {
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.count(), "total_tokens": self.prompt + self.count()})
    }
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push(' ');
            out.push_str(s);
        }
        Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        Value::Object(o) => {
            if let Some(t) = o.get("text") {
                collect_text(t, out);
            } else if let Some(c) = o.get("content") {
                collect_text(c, out);
            }
        }
        _ => {}
    }
}

/// Prompt tokens: whitespace-separated words of the request's prompt text, at least 1.
pub(crate) fn prompt_tokens(json: &Value) -> u64 {
    let mut text = String::new();
    if let Some(Value::Array(msgs)) = json.get("messages") {
        for m in msgs {
            if let Some(c) = m.get("content") {
                collect_text(c, &mut text);
            }
        }
    }
    for key in ["system", "prompt", "input", "text_input"] {
        if let Some(v) = json.get(key) {
            collect_text(v, &mut text);
        }
    }
    match json.get("inputs") {
        Some(Value::String(s)) => collect_text(&Value::String(s.clone()), &mut text),
        Some(Value::Array(items)) => {
            for item in items {
                if item.get("name").and_then(Value::as_str).is_some_and(|n| n.contains("text") || n == "prompt")
                    && let Some(d) = item.get("data")
                {
                    collect_text(d, &mut text);
                }
            }
        }
        _ => {}
    }
    (text.split_whitespace().count() as u64).max(1)
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn ndjson(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

fn paced(bytes: Bytes) -> Chunk {
    Chunk { bytes, paced: true }
}

fn unpaced(bytes: Bytes) -> Chunk {
    Chunk { bytes, paced: false }
}

const SSE: &str = "text/event-stream";
const NDJSON: &str = "application/x-ndjson";

/// RFC 3339 UTC timestamp with nanoseconds (Ollama style).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// The flavor's error reply for `status`.
pub(crate) fn error(flavor: Flavor, status: StatusCode, message: &str) -> Reply {
    let code = status.as_u16();
    let body = match flavor {
        Flavor::OpenAi => {
            let ty = match code {
                429 => "requests",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            json!({"error": {"message": message, "type": ty, "param": null, "code": null}})
        }
        Flavor::Vllm => {
            let ty = match code {
                404 => "NotFoundError",
                400..=499 => "BadRequestError",
                _ => "InternalServerError",
            };
            json!({"object": "error", "message": message, "type": ty, "param": null, "code": code})
        }
        Flavor::Ollama | Flavor::Triton => json!({"error": message}),
        Flavor::LlamaCpp => {
            let ty = match code {
                401 => "authentication_error",
                404 => "not_found_error",
                501 => "not_supported_error",
                503 => "unavailable_error",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            json!({"error": {"code": code, "message": message, "type": ty}})
        }
        Flavor::Tgi => {
            let ty = match code {
                422 | 400 => "validation",
                429 => "overloaded",
                424 => "generation",
                _ => "incomplete_generation",
            };
            json!({"error": message, "error_type": ty})
        }
    };
    Reply::Json(status, body, Vec::new())
}

fn not_found(ctx: &Ctx) -> Reply {
    let msg = match ctx.flavor() {
        Flavor::OpenAi => format!("Invalid URL ({} {})", ctx.method, ctx.path),
        Flavor::LlamaCpp => "File Not Found".to_owned(),
        _ => "Not Found".to_owned(),
    };
    error(ctx.flavor(), StatusCode::NOT_FOUND, &msg)
}

/// Routes a request to the flavor's handler.
pub(crate) fn route(ctx: &Ctx) -> Reply {
    let r = match ctx.flavor() {
        Flavor::OpenAi | Flavor::Vllm => openai_routes(ctx),
        Flavor::Ollama => ollama_routes(ctx),
        Flavor::LlamaCpp => llamacpp_routes(ctx),
        Flavor::Tgi => tgi_routes(ctx),
        Flavor::Triton => triton_routes(ctx),
    };
    r.unwrap_or_else(|| not_found(ctx))
}

/// Pads a JSON object reply to about `n` bytes (a `mock_padding` field).
pub(crate) fn pad(reply: Reply, n: usize, ctx: &Ctx) -> Reply {
    let (status, mut v, extra) = match reply {
        Reply::Json(s, v @ Value::Object(_), e) => (s, v, e),
        Reply::Json(s, _, _) if !s.is_success() => return reply,
        _ => match oai_chat(ctx) {
            Reply::Json(s, v, e) => (s, v, e),
            other => return other,
        },
    };
    let base = v.to_string().len() + r#","mock_padding":"""#.len();
    if let Value::Object(o) = &mut v {
        o.insert("mock_padding".to_owned(), Value::String("x".repeat(n.saturating_sub(base))));
    }
    Reply::Json(status, v, extra)
}

/// A `~n`-byte OpenAI chat completion JSON (benchmark upstream body).
pub fn fixed_chat_body(n: usize) -> Bytes {
    let text: String = WORDS.iter().take(DEFAULT_TOKENS).copied().collect();
    let mut v = json!({
        "id": "chatcmpl-mockfixed",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "mock-model",
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": DEFAULT_TOKENS, "total_tokens": DEFAULT_TOKENS + 1},
    });
    let base = v.to_string().len() + r#","mock_padding":"""#.len();
    if n > base
        && let Value::Object(o) = &mut v
    {
        o.insert("mock_padding".to_owned(), Value::String("x".repeat(n - base)));
    }
    Bytes::from(v.to_string())
}

// ---------------------------------------------------------------- OpenAI-compatible

const OAI_MAX: [&str; 2] = ["/max_completion_tokens", "/max_tokens"];

/// Header fields of an OpenAI-style object, per flavor.
fn oai_base(ctx: &Ctx, object: &str, id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("object".into(), json!(object));
    m.insert("created".into(), json!(ctx.created));
    m.insert("model".into(), json!(ctx.model()));
    let fp = match ctx.flavor() {
        Flavor::OpenAi => Some("fp_mock0001"),
        Flavor::Ollama => Some("fp_ollama"),
        Flavor::LlamaCpp => Some("b5000-mock"),
        Flavor::Tgi => Some("3.0.1-sha-mock"),
        Flavor::Vllm | Flavor::Triton => None,
    };
    if let Some(fp) = fp {
        m.insert("system_fingerprint".into(), json!(fp));
    }
    m
}

fn oai_id(ctx: &Ctx, prefix: &str) -> String {
    match ctx.flavor() {
        Flavor::Ollama => format!("{prefix}{}", ctx.id),
        _ => ctx.hex_id(prefix),
    }
}

fn with(mut base: Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(e) = extra {
        base.extend(e);
    }
    Value::Object(base)
}

fn finish(g: &Gen) -> &'static str {
    if g.length { "length" } else { "stop" }
}

fn oai_chat(ctx: &Ctx) -> Reply {
    let g = ctx.generate(&OAI_MAX);
    let id = oai_id(ctx, "chatcmpl-");
    if !ctx.stream_flag(false) {
        let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": g.text()},
                                "logprobs": null, "finish_reason": finish(&g)});
        match ctx.flavor() {
            Flavor::OpenAi => choice["message"]["refusal"] = Value::Null,
            Flavor::Vllm => {
                choice["message"]["tool_calls"] = json!([]);
                choice["stop_reason"] = Value::Null;
            }
            _ => {}
        }
        let mut extra = json!({"choices": [choice], "usage": g.usage()});
        if ctx.flavor() == Flavor::Vllm {
            extra["prompt_logprobs"] = Value::Null;
        }
        return ok(with(oai_base(ctx, "chat.completion", &id), extra));
    }
    let include_usage = ctx.json.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let chunk = |delta: Value, finish_reason: Value| {
        let mut v = with(
            oai_base(ctx, "chat.completion.chunk", &id),
            json!({"choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]}),
        );
        if include_usage {
            v["usage"] = Value::Null;
        }
        v
    };
    let mut chunks = Vec::new();
    for (i, t) in g.toks.iter().enumerate() {
        let delta = if i == 0 { json!({"role": "assistant", "content": t}) } else { json!({"content": t}) };
        chunks.push(paced(sse(&chunk(delta, Value::Null))));
    }
    chunks.push(unpaced(sse(&chunk(json!({}), json!(finish(&g))))));
    if include_usage {
        let v = with(oai_base(ctx, "chat.completion.chunk", &id), json!({"choices": [], "usage": g.usage()}));
        chunks.push(unpaced(sse(&v)));
    }
    chunks.push(unpaced(Bytes::from_static(b"data: [DONE]\n\n")));
    Reply::Stream(SSE, chunks)
}

fn oai_completion(ctx: &Ctx) -> Reply {
    let g = ctx.generate(&OAI_MAX);
    let id = oai_id(ctx, "cmpl-");
    if !ctx.stream_flag(false) {
        let choice = json!({"index": 0, "text": g.text(), "logprobs": null, "finish_reason": finish(&g)});
        return ok(with(oai_base(ctx, "text_completion", &id), json!({"choices": [choice], "usage": g.usage()})));
    }
    let include_usage = ctx.json.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let chunk = |text: &str, finish_reason: Value| {
        let mut v = with(
            oai_base(ctx, "text_completion", &id),
            json!({"choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason}]}),
        );
        if include_usage {
            v["usage"] = Value::Null;
        }
        v
    };
    let mut chunks: Vec<Chunk> = g.toks.iter().map(|t| paced(sse(&chunk(t, Value::Null)))).collect();
    chunks.push(unpaced(sse(&chunk("", json!(finish(&g))))));
    if include_usage {
        let v = with(oai_base(ctx, "text_completion", &id), json!({"choices": [], "usage": g.usage()}));
        chunks.push(unpaced(sse(&v)));
    }
    chunks.push(unpaced(Bytes::from_static(b"data: [DONE]\n\n")));
    Reply::Stream(SSE, chunks)
}

fn embedding_vec(i: usize) -> Vec<f64> {
    (0..8).map(|k| ((i * 8 + k) % 17) as f64 / 17.0 - 0.5).collect()
}

fn input_count(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Array(a)) if a.iter().all(Value::is_number) => 1,
        Some(Value::Array(a)) => a.len().max(1),
        _ => 1,
    }
}

fn oai_embeddings(ctx: &Ctx) -> Reply {
    let n = input_count(ctx.json.get("input"));
    let p = prompt_tokens(&ctx.json);
    let data: Vec<Value> =
        (0..n).map(|i| json!({"object": "embedding", "index": i, "embedding": embedding_vec(i)})).collect();
    let mut v = json!({"object": "list", "data": data, "model": ctx.model(),
                       "usage": {"prompt_tokens": p, "total_tokens": p}});
    if ctx.flavor() == Flavor::Vllm {
        v["id"] = json!(ctx.hex_id("embd-"));
        v["created"] = json!(ctx.created);
    }
    ok(v)
}

fn oai_models(ctx: &Ctx) -> Reply {
    let owner = match ctx.flavor() {
        Flavor::Vllm => "vllm",
        Flavor::Ollama => "library",
        Flavor::LlamaCpp => "llamacpp",
        Flavor::Tgi => "tgi",
        _ => "organization-owner",
    };
    let mut data: Vec<Value> = ctx
        .shared
        .opts
        .models
        .iter()
        .map(|m| {
            let mut v = json!({"id": m, "object": "model", "created": ctx.created, "owned_by": owner});
            if ctx.flavor() == Flavor::Vllm {
                v["root"] = json!(m);
                v["parent"] = Value::Null;
                v["max_model_len"] = json!(8192);
            }
            v
        })
        .collect();
    if ctx.flavor() == Flavor::Vllm {
        let parent = ctx.first_model();
        for a in lock(&ctx.shared.adapters).iter() {
            data.push(json!({"id": a, "object": "model", "created": ctx.created, "owned_by": "vllm",
                             "root": format!("/adapters/{a}"), "parent": parent, "max_model_len": null}));
        }
    }
    ok(json!({"object": "list", "data": data}))
}

/// The OpenAI-compatible routes shared by several flavors.
fn oai_common(ctx: &Ctx) -> Option<Reply> {
    let get = Method::GET;
    let post = Method::POST;
    Some(match (ctx.method, ctx.path) {
        (m, "/v1/chat/completions") if *m == post => oai_chat(ctx),
        (m, "/v1/completions") if *m == post => oai_completion(ctx),
        (m, "/v1/embeddings") if *m == post => oai_embeddings(ctx),
        (m, "/v1/models") if *m == get => oai_models(ctx),
        _ => return None,
    })
}

fn openai_routes(ctx: &Ctx) -> Option<Reply> {
    if let Some(r) = oai_common(ctx) {
        return Some(r);
    }
    if ctx.is(&Method::GET, "/health") {
        return Some(Reply::Empty(StatusCode::OK));
    }
    if ctx.flavor() != Flavor::Vllm {
        return None;
    }
    let lora = ctx.json.get("lora_name").and_then(Value::as_str).unwrap_or("adapter").to_owned();
    Some(match (ctx.method.as_str(), ctx.path) {
        ("POST", "/v1/load_lora_adapter") => {
            lock(&ctx.shared.adapters).push(lora.clone());
            Reply::Text(StatusCode::OK, format!("Success: LoRA adapter '{lora}' added successfully."))
        }
        ("POST", "/v1/unload_lora_adapter") => {
            lock(&ctx.shared.adapters).retain(|a| *a != lora);
            Reply::Text(StatusCode::OK, format!("Success: LoRA adapter '{lora}' removed successfully."))
        }
        ("POST", "/sleep") => {
            ctx.shared.sleeping.store(true, Ordering::SeqCst);
            Reply::Empty(StatusCode::OK)
        }
        ("POST", "/wake_up") => {
            ctx.shared.sleeping.store(false, Ordering::SeqCst);
            Reply::Empty(StatusCode::OK)
        }
        ("GET", "/is_sleeping") => ok(json!({"is_sleeping": ctx.shared.sleeping.load(Ordering::SeqCst)})),
        ("POST", "/reset_prefix_cache") => Reply::Empty(StatusCode::OK),
        ("GET", "/version") => ok(json!({"version": "0.9.1"})),
        ("GET", "/ping") | ("POST", "/ping") => Reply::Empty(StatusCode::OK),
        _ => return None,
    })
}

// ---------------------------------------------------------------- Ollama

const OLLAMA_MAX: [&str; 1] = ["/options/num_predict"];

fn ollama_details() -> Value {
    json!({"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
           "parameter_size": "8.0B", "quantization_level": "Q4_K_M"})
}

fn digest_of(name: &str) -> String {
    // Deterministic fake sha256-looking hex digest.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{:016x}{:016x}{:016x}", h.rotate_left(13), h.rotate_left(29), h.rotate_left(47))
}

fn ollama_final(g: &Gen) -> Map<String, Value> {
    let prompt_ns = g.prompt * 1_000_000;
    let eval_ns = g.count() * 10_000_000;
    let load_ns = 2_000_000;
    let v = json!({
        "done_reason": finish(g),
        "done": true,
        "total_duration": prompt_ns + eval_ns + load_ns + 1_000_000,
        "load_duration": load_ns,
        "prompt_eval_count": g.prompt,
        "prompt_eval_duration": prompt_ns,
        "eval_count": g.count(),
        "eval_duration": eval_ns,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn ollama_gen(ctx: &Ctx, chat: bool) -> Reply {
    let g = ctx.generate(&OLLAMA_MAX);
    let model = ctx.model();
    let line = |piece: &str| {
        let mut m = Map::new();
        m.insert("model".into(), json!(model));
        m.insert("created_at".into(), json!(rfc3339(SystemTime::now())));
        if chat {
            m.insert("message".into(), json!({"role": "assistant", "content": piece}));
        } else {
            m.insert("response".into(), json!(piece));
        }
        m
    };
    let last = |piece: &str| {
        let mut m = line(piece);
        m.extend(ollama_final(&g));
        if !chat {
            m.insert("context".into(), json!([128_006, 882, 128_007]));
        }
        Value::Object(m)
    };
    if !ctx.stream_flag(true) {
        return ok(last(&g.text()));
    }
    let mut chunks: Vec<Chunk> = g
        .toks
        .iter()
        .map(|t| {
            let mut m = line(t);
            m.insert("done".into(), json!(false));
            paced(ndjson(&Value::Object(m)))
        })
        .collect();
    chunks.push(unpaced(ndjson(&last(""))));
    Reply::Stream(NDJSON, chunks)
}

fn ollama_status_stream(ctx: &Ctx, statuses: Vec<Value>) -> Reply {
    if !ctx.stream_flag(true) {
        return ok(json!({"status": "success"}));
    }
    Reply::Stream(NDJSON, statuses.iter().map(|s| paced(ndjson(s))).collect())
}

fn ollama_model_entry(name: &str, ctx: &Ctx) -> Value {
    json!({"name": name, "model": name, "modified_at": rfc3339(SystemTime::now()), "size": 4_920_753_328_u64,
           "digest": digest_of(name), "details": ollama_details(), "created": ctx.created})
}

fn ollama_routes(ctx: &Ctx) -> Option<Reply> {
    if let Some(r) = oai_common(ctx) {
        return Some(r);
    }
    let models = &ctx.shared.opts.models;
    let model = ctx.model();
    let digest = format!("sha256:{}", digest_of(&model));
    Some(match (ctx.method.as_str(), ctx.path) {
        ("GET" | "HEAD", "/") => Reply::Text(StatusCode::OK, "Ollama is running".into()),
        ("POST", "/api/chat") => ollama_gen(ctx, true),
        ("POST", "/api/generate") => ollama_gen(ctx, false),
        ("POST", "/api/embed") => {
            let n = input_count(ctx.json.get("input"));
            let embs: Vec<Vec<f64>> = (0..n).map(embedding_vec).collect();
            ok(json!({"model": model, "embeddings": embs, "total_duration": 14_143_917, "load_duration": 1_019_500,
                      "prompt_eval_count": prompt_tokens(&ctx.json)}))
        }
        ("POST", "/api/embeddings") => ok(json!({"embedding": embedding_vec(0)})),
        ("POST", "/api/pull") => {
            let total = 4_920_753_328_u64;
            ollama_status_stream(
                ctx,
                vec![
                    json!({"status": "pulling manifest"}),
                    json!({"status": format!("pulling {}", &digest_of(&model)[..12]), "digest": digest,
                           "total": total, "completed": total / 2}),
                    json!({"status": format!("pulling {}", &digest_of(&model)[..12]), "digest": digest,
                           "total": total, "completed": total}),
                    json!({"status": "verifying sha256 digest"}),
                    json!({"status": "writing manifest"}),
                    json!({"status": "success"}),
                ],
            )
        }
        ("POST", "/api/push") => ollama_status_stream(
            ctx,
            vec![
                json!({"status": "retrieving manifest"}),
                json!({"status": "starting upload", "digest": digest, "total": 1_928_429_856_u64}),
                json!({"status": "pushing manifest"}),
                json!({"status": "success"}),
            ],
        ),
        ("POST", "/api/create") => ollama_status_stream(
            ctx,
            vec![
                json!({"status": "reading model metadata"}),
                json!({"status": "creating system layer"}),
                json!({"status": "writing manifest"}),
                json!({"status": "success"}),
            ],
        ),
        ("POST", "/api/copy") => Reply::Empty(StatusCode::OK),
        ("DELETE", "/api/delete") => Reply::Empty(StatusCode::OK),
        ("GET", "/api/tags") => ok(json!({"models": models.iter().map(|m| {
            let mut e = ollama_model_entry(m, ctx);
            if let Value::Object(o) = &mut e { o.remove("created"); }
            e
        }).collect::<Vec<_>>()})),
        ("GET", "/api/ps") => ok(json!({"models": models.iter().map(|m| json!({
            "name": m, "model": m, "size": 5_137_025_024_u64, "digest": digest_of(m), "details": ollama_details(),
            "expires_at": rfc3339(SystemTime::now() + std::time::Duration::from_secs(300)),
            "size_vram": 5_137_025_024_u64,
        })).collect::<Vec<_>>()})),
        ("GET", "/api/version") => ok(json!({"version": "0.6.8"})),
        ("POST", "/api/show") => ok(json!({
            "modelfile": format!("# Modelfile generated by \"ollama show\"\nFROM {model}\n"),
            "parameters": "stop \"<|eot_id|>\"",
            "template": "{{ .Prompt }}",
            "details": ollama_details(),
            "model_info": {"general.architecture": "llama", "general.parameter_count": 8_030_261_248_u64,
                           "llama.context_length": 131_072},
            "capabilities": ["completion"],
            "modified_at": rfc3339(SystemTime::now()),
        })),
        ("POST", p) if p.starts_with("/api/blobs/") => Reply::Empty(StatusCode::CREATED),
        ("HEAD", p) if p.starts_with("/api/blobs/") => Reply::Empty(StatusCode::OK),
        _ => return None,
    })
}

// ---------------------------------------------------------------- llama.cpp

fn llamacpp_timings(g: &Gen) -> Value {
    let prompt_ms = g.prompt as f64 * 1.5;
    let predicted_ms = g.count() as f64 * 12.5;
    json!({
        "prompt_n": g.prompt, "prompt_ms": prompt_ms, "prompt_per_token_ms": 1.5,
        "prompt_per_second": 1000.0 / 1.5,
        "predicted_n": g.count(), "predicted_ms": predicted_ms, "predicted_per_token_ms": 12.5,
        "predicted_per_second": 80.0,
    })
}

fn llamacpp_completion(ctx: &Ctx) -> Reply {
    let g = ctx.generate(&["/n_predict", "/max_tokens"]);
    let model = ctx.model();
    let last = |content: &str| {
        json!({
            "index": 0, "content": content, "tokens": [], "id_slot": 0, "stop": true, "model": model,
            "tokens_predicted": g.count(), "tokens_evaluated": g.prompt,
            "generation_settings": {"n_predict": -1, "seed": 4_294_967_295_u64, "temperature": 0.8,
                                    "top_k": 40, "top_p": 0.95, "stream": ctx.stream_flag(false)},
            "prompt": ctx.json.get("prompt").cloned().unwrap_or(Value::Null),
            "has_new_line": false, "truncated": false,
            "stop_type": if g.length { "limit" } else { "eos" }, "stopping_word": "",
            "tokens_cached": g.prompt + g.count(), "timings": llamacpp_timings(&g),
        })
    };
    if !ctx.stream_flag(false) {
        return ok(last(&g.text()));
    }
    let mut chunks: Vec<Chunk> = g
        .toks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            paced(sse(&json!({"index": 0, "content": t, "tokens": [1000 + i], "stop": false, "id_slot": -1,
                              "tokens_predicted": i + 1, "tokens_evaluated": g.prompt})))
        })
        .collect();
    chunks.push(unpaced(sse(&last(""))));
    Reply::Stream(SSE, chunks)
}

fn llamacpp_routes(ctx: &Ctx) -> Option<Reply> {
    let aliased = match ctx.path {
        "/chat/completions" | "/v1/chat/completions" => Some("/v1/chat/completions"),
        "/completions" | "/v1/completions" => Some("/v1/completions"),
        "/embeddings" | "/v1/embeddings" => Some("/v1/embeddings"),
        "/models" | "/v1/models" => Some("/v1/models"),
        _ => None,
    };
    if let Some(p) = aliased {
        let c = Ctx { path: p, ..clone_ctx(ctx) };
        if let Some(r) = oai_common(&c) {
            return Some(r);
        }
    }
    let model = ctx.first_model();
    Some(match (ctx.method.as_str(), ctx.path) {
        ("POST", "/completion") => llamacpp_completion(ctx),
        ("POST", "/embedding") => ok(json!([{"index": 0, "embedding": [embedding_vec(0)]}])),
        ("GET", "/health") => ok(json!({"status": "ok"})),
        ("GET", "/slots") => ok(json!([{"id": 0, "id_task": -1, "n_ctx": 4096, "speculative": false,
                                         "is_processing": false, "params": {"n_predict": -1}}])),
        ("POST", p) if p.starts_with("/slots/") => {
            let action =
                ctx.query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("action="))).unwrap_or("save");
            ok(json!({"id_slot": 0, "filename": ctx.json.get("filename").cloned().unwrap_or(json!("slot.bin")),
                      "n_saved": 42, "n_written": 1024, "action": action, "timings": {"save_ms": 1.2}}))
        }
        ("GET", "/props") => ok(json!({
            "default_generation_settings": {"id": 0, "n_ctx": 4096, "params": {"n_predict": -1, "temperature": 0.8}},
            "total_slots": 1, "model_path": format!("/models/{model}.gguf"),
            "chat_template": "{{ messages }}", "modalities": {"vision": false}, "build_info": "b5000-mock",
        })),
        ("GET", "/lora-adapters") => ok(json!([])),
        ("POST", "/lora-adapters") => ok(json!({"success": true})),
        _ => return None,
    })
}

fn clone_ctx<'a>(ctx: &Ctx<'a>) -> Ctx<'a> {
    Ctx {
        shared: ctx.shared,
        method: ctx.method,
        path: ctx.path,
        query: ctx.query,
        json: ctx.json.clone(),
        tokens: ctx.tokens,
        force_whole: ctx.force_whole,
        id: ctx.id,
        created: ctx.created,
        say: ctx.say.clone(),
    }
}

// ---------------------------------------------------------------- TGI

const TGI_MAX: [&str; 1] = ["/parameters/max_new_tokens"];

fn tgi_token(i: usize, t: &str) -> Value {
    json!({"id": 1000 + (i % WORDS.len()), "text": t, "logprob": -0.25, "special": false})
}

fn tgi_finish(g: &Gen) -> &'static str {
    if g.length { "length" } else { "eos_token" }
}

fn tgi_headers(g: &Gen) -> Vec<(&'static str, String)> {
    vec![
        ("x-prompt-tokens", g.prompt.to_string()),
        ("x-generated-tokens", g.count().to_string()),
        ("x-compute-type", "gpu+optimized".to_owned()),
        ("x-compute-time", "0.120".to_owned()),
    ]
}

fn tgi_generate(ctx: &Ctx) -> Reply {
    let g = ctx.generate(&TGI_MAX);
    let mut v = json!({"generated_text": g.text()});
    if ctx.json.pointer("/parameters/details").and_then(Value::as_bool) == Some(true) {
        let tokens: Vec<Value> = g.toks.iter().enumerate().map(|(i, t)| tgi_token(i, t)).collect();
        v["details"] = json!({"finish_reason": tgi_finish(&g), "generated_tokens": g.count(), "seed": null,
                              "prefill": [], "tokens": tokens});
    }
    Reply::Json(StatusCode::OK, v, tgi_headers(&g))
}

fn tgi_stream(ctx: &Ctx) -> Reply {
    let g = ctx.generate(&TGI_MAX);
    let ev = |v: &Value| Bytes::from(format!("data:{v}\n\n"));
    let n = g.toks.len();
    let mut chunks = Vec::new();
    for (i, t) in g.toks.iter().enumerate() {
        let mut v = json!({"index": i + 1, "token": tgi_token(i, t), "generated_text": null, "details": null,
                           "top_tokens": null});
        if i + 1 == n {
            v["generated_text"] = json!(g.text());
            v["details"] = json!({"finish_reason": tgi_finish(&g), "generated_tokens": g.count(), "seed": null,
                                  "input_length": g.prompt});
        }
        chunks.push(paced(ev(&v)));
    }
    if n == 0 {
        let v = json!({"index": 1, "token": {"id": 2, "text": "", "logprob": 0.0, "special": true},
                       "generated_text": "", "top_tokens": null,
                       "details": {"finish_reason": "length", "generated_tokens": 0, "seed": null,
                                   "input_length": g.prompt}});
        chunks.push(unpaced(ev(&v)));
    }
    Reply::Stream(SSE, chunks)
}

fn tgi_routes(ctx: &Ctx) -> Option<Reply> {
    if let Some(r) = oai_common(ctx) {
        return Some(r);
    }
    Some(match (ctx.method.as_str(), ctx.path) {
        ("POST", "/generate") => tgi_generate(ctx),
        ("POST", "/generate_stream") => tgi_stream(ctx),
        ("POST", "/") => {
            if ctx.stream_flag(false) {
                tgi_stream(ctx)
            } else {
                tgi_generate(ctx)
            }
        }
        ("GET", "/info") => ok(json!({
            "model_id": ctx.first_model(), "model_sha": null, "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128, "max_best_of": 2, "max_stop_sequences": 4,
            "max_input_tokens": 4095, "max_total_tokens": 4096, "validation_workers": 2,
            "max_client_batch_size": 4, "router": "text-generation-router", "version": "3.0.1",
            "sha": "mock", "docker_label": null,
        })),
        ("GET", "/health") => Reply::Empty(StatusCode::OK),
        _ => return None,
    })
}

// ---------------------------------------------------------------- Triton / KServe v2

/// Splits `/v2/models/{m}[/versions/{v}][/rest]` into (model, version, rest).
fn triton_model_path(path: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = path.strip_prefix("/v2/models/")?;
    let (model, rest) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(r) = rest.strip_prefix("versions/") {
        let (v, r) = r.split_once('/').unwrap_or((r, ""));
        return Some((model, Some(v), r));
    }
    Some((model, None, rest))
}

fn triton_routes(ctx: &Ctx) -> Option<Reply> {
    let models = &ctx.shared.opts.models;
    match (ctx.method.as_str(), ctx.path) {
        ("GET", "/v2/health/ready" | "/v2/health/live") => return Some(Reply::Empty(StatusCode::OK)),
        ("GET", "/v2") => {
            return Some(ok(json!({"name": "triton", "version": "2.55.0",
                "extensions": ["classification", "sequence", "model_repository", "model_repository(unload_dependents)",
                               "schedule_policy", "model_configuration", "system_shared_memory",
                               "cuda_shared_memory", "binary_tensor_data", "parameters", "statistics",
                               "trace", "logging"]})));
        }
        ("POST", "/v2/repository/index") => {
            let list: Vec<Value> =
                models.iter().map(|m| json!({"name": m, "version": "1", "state": "READY"})).collect();
            return Some(ok(Value::Array(list)));
        }
        ("POST", p) if p.starts_with("/v2/repository/models/") => {
            let rest = p.trim_start_matches("/v2/repository/models/");
            return match rest.rsplit_once('/') {
                Some((_, "load" | "unload")) => Some(Reply::Empty(StatusCode::OK)),
                _ => None,
            };
        }
        _ => {}
    }
    let (model, version, rest) = triton_model_path(ctx.path)?;
    let version = version.unwrap_or("1");
    let max_ptrs = ["/max_tokens", "/parameters/max_tokens"];
    Some(match (ctx.method.as_str(), rest) {
        ("POST", "infer") => {
            let mut g = ctx.generate(&max_ptrs);
            if let Some(Value::Array(inputs)) = ctx.json.get("inputs")
                && let Some(m) = inputs
                    .iter()
                    .find(|i| i.get("name").and_then(Value::as_str) == Some("max_tokens"))
                    .and_then(|i| i.pointer("/data/0"))
                    .and_then(Value::as_u64)
            {
                g.toks.truncate(m as usize);
            }
            let mut v = json!({"model_name": model, "model_version": version,
                               "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [1],
                                            "data": [g.text()]}]});
            if let Some(id) = ctx.json.get("id") {
                v["id"] = id.clone();
            }
            ok(v)
        }
        ("POST", "generate") => {
            let g = ctx.generate(&max_ptrs);
            ok(json!({"model_name": model, "model_version": version, "text_output": g.text()}))
        }
        ("POST", "generate_stream") => {
            let g = ctx.generate(&max_ptrs);
            let chunks = g
                .toks
                .iter()
                .map(|t| paced(sse(&json!({"model_name": model, "model_version": version, "text_output": t}))))
                .collect();
            Reply::Stream(SSE, chunks)
        }
        ("GET", "ready") => Reply::Empty(StatusCode::OK),
        ("GET", "") => ok(json!({"name": model, "versions": [version], "platform": "python",
            "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}]})),
        ("GET", "config") => ok(json!({"name": model, "platform": "", "backend": "python", "max_batch_size": 0})),
        _ => return None,
    })
}
