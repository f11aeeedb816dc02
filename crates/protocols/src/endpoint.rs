//! The endpoint table: method + path -> what the request is and how to read it.

use std::borrow::Cow;

use crate::action::Action;
use crate::flavor::{Flavor, FlavorSet};

/// How a streamed response is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Not framed: one body.
    None,
    /// Server-sent events (`data: ...` lines, blank-line separated events).
    Sse,
    /// Newline-delimited JSON.
    Ndjson,
}

/// Which response shape carries token usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageShape {
    /// No usage in the response.
    None,
    /// OpenAI `usage` (`prompt_tokens`/`completion_tokens` or `input_tokens`/`output_tokens`).
    OpenAi,
    /// Ollama `prompt_eval_count`/`eval_count` on the final (`done: true`) object.
    Ollama,
    /// TGI `details` (`generated_tokens`, `finish_reason`, `prefill`/`input_length`).
    Tgi,
    /// llama.cpp `tokens_evaluated`/`tokens_predicted` on the final (`stop: true`) object.
    LlamaCpp,
}

/// What the gateway must do with the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyUse {
    /// No body expected; relay whatever comes as-is.
    None,
    /// Small JSON the gateway buffers (bounded) and peeks.
    Json,
    /// Uploads (multipart, blobs, tensors) relayed without buffering.
    Stream,
}

/// Where the model name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAt {
    /// The request names no model.
    None,
    /// The first present (non-empty) top-level string field of the JSON body, in this order.
    Body(&'static [&'static str]),
    /// 0-based index in the '/'-split path without the leading empty segment.
    PathSegment(usize),
    /// A query-string parameter.
    Query(&'static str),
}

/// Whether the request streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRule {
    /// Never streams.
    Never,
    /// The body's `stream` bool, with this default when absent.
    Field {
        /// Value when the body has no `stream` field.
        default: bool,
    },
    /// Always streams.
    Always,
}

/// One row of the endpoint table.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// The classified action.
    pub action: Action,
    /// The flavors that serve this endpoint.
    pub flavors: FlavorSet,
    /// Where the model name is.
    pub model: ModelAt,
    /// What to do with the request body.
    pub body: BodyUse,
    /// Whether the request streams.
    pub stream: StreamRule,
    /// Response framing when streaming.
    pub framing: Framing,
    /// Which response shape carries token usage.
    pub usage: UsageShape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meth {
    Get,
    Post,
    Delete,
    Head,
}

impl Meth {
    fn from_http(m: &http::Method) -> Option<Meth> {
        Some(match *m {
            http::Method::GET => Meth::Get,
            http::Method::POST => Meth::Post,
            http::Method::DELETE => Meth::Delete,
            http::Method::HEAD => Meth::Head,
            _ => return None,
        })
    }
}

/// Most segments a known path can have (longer paths are unknown).
const MAX_SEGS: usize = 16;

/// Percent-decodes `s` (`+` stays `+` unless `plus_space`); borrows when nothing to decode.
pub(crate) fn percent_decode(s: &str, plus_space: bool) -> Cow<'_, str> {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'%' || (plus_space && c == b'+')) {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits a (decoded) path into segments. None when the path is not origin-form, has an empty
/// interior segment, a `.`/`..` segment, or too many segments. One trailing slash is tolerated.
pub(crate) fn split_segments<'a>(path: &'a str, out: &mut [&'a str; MAX_SEGS]) -> Option<usize> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    for seg in rest.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || n == MAX_SEGS {
            return None;
        }
        out[n] = seg;
        n += 1;
    }
    Some(n)
}

/// Finds the endpoint for a method and path (no query string). None = unknown path (action
/// Unknown, routed by prefix/default). Percent-escapes are decoded before matching (as the
/// Python and Go servers do); HEAD also matches GET rows.
pub fn lookup(method: &http::Method, path: &str) -> Option<&'static Endpoint> {
    let m = Meth::from_http(method)?;
    let decoded = percent_decode(path, false);
    let mut segs = [""; MAX_SEGS];
    let n = split_segments(&decoded, &mut segs)?;
    let s = &segs[..n];
    route(m, s).or_else(|| if m == Meth::Head { route(Meth::Get, s) } else { None })
}

/// Whether `endpoint` takes its model from the whole path tail starting at its segment (model
/// names with `/`, e.g. `GET /v1/models/hf.co/org/name:tag`).
pub(crate) fn model_is_path_tail(endpoint: &Endpoint) -> bool {
    std::ptr::eq(endpoint, &V1_MODEL_GET) || std::ptr::eq(endpoint, &V1_MODEL_DELETE)
}

/// Whether OpenAI `stream_options.include_usage` may be injected for this path (OpenAI-style
/// chat/completions; the Responses API always reports usage).
pub fn accepts_stream_options(path: &str) -> bool {
    let p = path.strip_suffix('/').unwrap_or(path);
    p == "/v1/chat/completions" || p == "/v1/completions"
}

use Flavor::{LlamaCpp as L, Ollama as O, OpenAi as A, Tgi as T, Triton as K, Vllm as V};

const OAI: FlavorSet = FlavorSet::of(&[A, V, O, L, T]);
const OAI_EMBED: FlavorSet = FlavorSet::of(&[A, V, O, L]);
const OPENAI: FlavorSet = FlavorSet::of(&[A, V]);
const ALLF: FlavorSet = FlavorSet::ALL;
const VLLM: FlavorSet = FlavorSet::of(&[V]);
const OLLAMA: FlavorSet = FlavorSet::of(&[O]);
const LLAMA: FlavorSet = FlavorSet::of(&[L]);
const TGI: FlavorSet = FlavorSet::of(&[T]);
const TRITON: FlavorSet = FlavorSet::of(&[K]);

const MODEL: ModelAt = ModelAt::Body(&["model"]);
const MODEL_OR_NAME: ModelAt = ModelAt::Body(&["model", "name"]);
const LORA: ModelAt = ModelAt::Body(&["lora_name"]);
const NOM: ModelAt = ModelAt::None;
const NEVER: StreamRule = StreamRule::Never;
const ALWAYS: StreamRule = StreamRule::Always;
const OFF: StreamRule = StreamRule::Field { default: false };
const ON: StreamRule = StreamRule::Field { default: true };

macro_rules! ep {
    ($action:ident, $flavors:expr, $model:expr, $body:ident, $stream:expr, $framing:ident, $usage:ident) => {{
        static E: Endpoint = ep_const!($action, $flavors, $model, $body, $stream, $framing, $usage);
        Some(&E)
    }};
}

macro_rules! ep_const {
    ($action:ident, $flavors:expr, $model:expr, $body:ident, $stream:expr, $framing:ident, $usage:ident) => {
        Endpoint {
            action: Action::$action,
            flavors: $flavors,
            model: $model,
            body: BodyUse::$body,
            stream: $stream,
            framing: Framing::$framing,
            usage: UsageShape::$usage,
        }
    };
}

/// `GET /v1/models/{id...}` (the id may contain `/`).
static V1_MODEL_GET: Endpoint =
    ep_const!(ReadModels, FlavorSet::of(&[A, V, O]), ModelAt::PathSegment(2), None, NEVER, None, None);
/// `DELETE /v1/models/{id...}`.
static V1_MODEL_DELETE: Endpoint = ep_const!(ModelDelete, OPENAI, ModelAt::PathSegment(2), None, NEVER, None, None);

/// The table. First matching arm wins.
fn route(m: Meth, s: &[&str]) -> Option<&'static Endpoint> {
    use Meth::{Delete, Get, Head, Post};
    match (m, s) {
        // ---- OpenAI-compatible ----
        (Post, ["v1", "chat", "completions"]) => ep!(InferenceChat, OAI, MODEL, Json, OFF, Sse, OpenAi),
        (Post, ["v1", "completions"]) => ep!(InferenceCompletion, OAI, MODEL, Json, OFF, Sse, OpenAi),
        (Post, ["v1", "embeddings"]) => ep!(InferenceEmbedding, OAI_EMBED, MODEL, Json, NEVER, None, OpenAi),
        (Post, ["v1", "responses"]) => ep!(InferenceChat, FlavorSet::of(&[A, V, O]), MODEL, Json, OFF, Sse, OpenAi),
        (Post, ["v1", "rerank"]) => ep!(InferenceRerank, FlavorSet::of(&[V, L]), MODEL, Json, NEVER, None, OpenAi),
        (Post, ["rerank"]) => ep!(InferenceRerank, FlavorSet::of(&[V, L, T]), MODEL, Json, NEVER, None, OpenAi),
        (Post, ["v1", "score"] | ["score"]) => ep!(InferenceRerank, VLLM, MODEL, Json, NEVER, None, OpenAi),
        (Post, ["v1", "moderations"]) => ep!(InferenceOther, OPENAI, MODEL, Json, NEVER, None, None),
        (Post, ["v1", "images", "generations"]) => ep!(InferenceOther, OPENAI, MODEL, Json, NEVER, None, OpenAi),
        (Post, ["v1", "audio", "speech"]) => ep!(InferenceOther, OPENAI, MODEL, Json, NEVER, None, None),
        (Post, ["v1", "audio", _, ..]) => ep!(InferenceOther, OPENAI, NOM, Stream, NEVER, None, None),
        (Post, ["v1", "files"]) => ep!(DataUpload, OPENAI, NOM, Stream, NEVER, None, None),
        (Get, ["v1", "files"] | ["v1", "files", _] | ["v1", "files", _, "content"]) => {
            ep!(ReadOther, OPENAI, NOM, None, NEVER, None, None)
        }
        (Delete, ["v1", "files", _]) => ep!(DataDelete, OPENAI, NOM, None, NEVER, None, None),
        (Post, ["v1", "batches"]) => ep!(DataBatch, OPENAI, NOM, Json, NEVER, None, None),
        (Post, ["v1", "batches", _, "cancel"]) => ep!(DataBatch, OPENAI, NOM, None, NEVER, None, None),
        (Get, ["v1", "batches"] | ["v1", "batches", _]) => ep!(ReadOther, OPENAI, NOM, None, NEVER, None, None),
        (Post, ["v1", "fine_tuning", "jobs"]) => ep!(DataFinetune, OPENAI, MODEL, Json, NEVER, None, None),
        (Post, ["v1", "fine_tuning", "jobs", _, "cancel" | "pause" | "resume"]) => {
            ep!(DataFinetune, OPENAI, NOM, None, NEVER, None, None)
        }
        (
            Get,
            ["v1", "fine_tuning", "jobs"]
            | ["v1", "fine_tuning", "jobs", _]
            | ["v1", "fine_tuning", "jobs", _, "events" | "checkpoints"],
        ) => ep!(ReadOther, OPENAI, NOM, None, NEVER, None, None),
        (Get, ["v1", "models"]) => ep!(ReadModels, OAI, NOM, None, NEVER, None, None),
        (Get, ["v1", "models", _, ..]) => Some(&V1_MODEL_GET),
        (Delete, ["v1", "models", _, ..]) => Some(&V1_MODEL_DELETE),

        // ---- vLLM ----
        (Post, ["v1", "load_lora_adapter"]) => ep!(AdapterLoad, VLLM, LORA, Json, NEVER, None, None),
        (Post, ["v1", "unload_lora_adapter"]) => ep!(AdapterUnload, VLLM, LORA, Json, NEVER, None, None),
        (Post, ["sleep" | "wake_up" | "reset_prefix_cache" | "reset_mm_cache"]) => {
            ep!(ServerConfig, VLLM, NOM, None, NEVER, None, None)
        }
        (Get, ["is_sleeping"]) => ep!(ReadOther, VLLM, NOM, None, NEVER, None, None),
        (Post, ["tokenize"]) => ep!(InferenceOther, FlavorSet::of(&[V, L, T]), MODEL, Json, NEVER, None, None),
        (Post, ["detokenize"]) => ep!(InferenceOther, FlavorSet::of(&[V, L]), MODEL, Json, NEVER, None, None),
        (Post, ["pooling" | "classify"] | ["v1", "classify"]) => {
            ep!(InferenceOther, VLLM, MODEL, Json, NEVER, None, OpenAi)
        }
        (Get, ["health"] | ["metrics"]) => ep!(ReadOther, ALLF, NOM, None, NEVER, None, None),
        (Get | Post, ["ping"]) => ep!(ReadOther, VLLM, NOM, None, NEVER, None, None),
        (Get, ["version"]) => ep!(ReadOther, VLLM, NOM, None, NEVER, None, None),

        // ---- Ollama ----
        (Post, ["api", "chat"]) => ep!(InferenceChat, OLLAMA, MODEL, Json, ON, Ndjson, Ollama),
        (Post, ["api", "generate"]) => ep!(InferenceCompletion, OLLAMA, MODEL, Json, ON, Ndjson, Ollama),
        (Post, ["api", "embed"]) => ep!(InferenceEmbedding, OLLAMA, MODEL, Json, NEVER, None, Ollama),
        (Post, ["api", "embeddings"]) => ep!(InferenceEmbedding, OLLAMA, MODEL, Json, NEVER, None, None),
        (Post, ["api", "pull"]) => ep!(ModelPull, OLLAMA, MODEL_OR_NAME, Json, ON, Ndjson, None),
        (Post, ["api", "push"]) => ep!(ModelPush, OLLAMA, MODEL_OR_NAME, Json, ON, Ndjson, None),
        (Post, ["api", "create"]) => ep!(ModelCreate, OLLAMA, MODEL_OR_NAME, Json, ON, Ndjson, None),
        (Post, ["api", "copy"]) => ep!(ModelCopy, OLLAMA, ModelAt::Body(&["source"]), Json, NEVER, None, None),
        (Delete, ["api", "delete"]) => ep!(ModelDelete, OLLAMA, MODEL_OR_NAME, Json, NEVER, None, None),
        (Post, ["api", "show"]) => ep!(ReadModels, OLLAMA, MODEL_OR_NAME, Json, NEVER, None, None),
        (Get, ["api", "tags" | "ps"]) => ep!(ReadModels, OLLAMA, NOM, None, NEVER, None, None),
        (Get, ["api", "version"]) => ep!(ReadOther, OLLAMA, NOM, None, NEVER, None, None),
        (Post, ["api", "blobs", _]) => ep!(DataUpload, OLLAMA, NOM, Stream, NEVER, None, None),
        (Head, ["api", "blobs", _]) => ep!(ReadOther, OLLAMA, NOM, None, NEVER, None, None),
        (Get, []) => ep!(ReadOther, FlavorSet::of(&[O, L]), NOM, None, NEVER, None, None),

        // ---- llama.cpp server ----
        (Post, ["completion" | "completions" | "infill"]) => {
            ep!(InferenceCompletion, LLAMA, MODEL, Json, OFF, Sse, LlamaCpp)
        }
        (Post, ["embedding" | "embeddings"]) => ep!(InferenceEmbedding, LLAMA, MODEL, Json, NEVER, None, None),
        (Post, ["reranking"]) => ep!(InferenceRerank, LLAMA, MODEL, Json, NEVER, None, OpenAi),
        (Post, ["apply-template"]) => ep!(InferenceOther, LLAMA, MODEL, Json, NEVER, None, None),
        (Get, ["slots"]) => ep!(ReadOther, LLAMA, NOM, None, NEVER, None, None),
        (Post, ["slots", _]) => ep!(ServerConfig, LLAMA, NOM, Json, NEVER, None, None),
        (Get, ["props"]) => ep!(ReadOther, LLAMA, NOM, None, NEVER, None, None),
        (Post, ["props"]) => ep!(ServerConfig, LLAMA, NOM, Json, NEVER, None, None),
        (Get, ["lora-adapters"]) => ep!(ReadOther, LLAMA, NOM, None, NEVER, None, None),
        (Post, ["lora-adapters"]) => ep!(AdapterLoad, LLAMA, NOM, Json, NEVER, None, None),
        (Get, ["models"]) => ep!(ReadModels, LLAMA, NOM, None, NEVER, None, None),

        // ---- TGI ----
        (Post, ["generate"]) => ep!(InferenceCompletion, TGI, NOM, Json, NEVER, None, Tgi),
        (Post, ["generate_stream"]) => ep!(InferenceCompletion, TGI, NOM, Json, ALWAYS, Sse, Tgi),
        (Post, [] | ["invocations"]) => ep!(InferenceCompletion, TGI, NOM, Json, OFF, Sse, Tgi),
        (Get, ["info"]) => ep!(ReadModels, TGI, NOM, None, NEVER, None, None),

        // ---- Triton / KServe v2 ----
        (Post, ["v2", "models", _, "infer"] | ["v2", "models", _, "versions", _, "infer"]) => {
            ep!(InferenceOther, TRITON, ModelAt::PathSegment(2), Stream, NEVER, None, None)
        }
        (Post, ["v2", "models", _, "generate"] | ["v2", "models", _, "versions", _, "generate"]) => {
            ep!(InferenceCompletion, TRITON, ModelAt::PathSegment(2), Json, NEVER, None, None)
        }
        (Post, ["v2", "models", _, "generate_stream"] | ["v2", "models", _, "versions", _, "generate_stream"]) => {
            ep!(InferenceCompletion, TRITON, ModelAt::PathSegment(2), Json, ALWAYS, Sse, None)
        }
        (Post, ["v2", "repository", "models", _, "load"]) => {
            ep!(ModelLoad, TRITON, ModelAt::PathSegment(3), Json, NEVER, None, None)
        }
        (Post, ["v2", "repository", "models", _, "unload"]) => {
            ep!(ModelUnload, TRITON, ModelAt::PathSegment(3), Json, NEVER, None, None)
        }
        (Post, ["v2", "repository", "index"]) => ep!(ReadModels, TRITON, NOM, Json, NEVER, None, None),
        (Get, ["v2", "models", "stats"]) => ep!(ReadModels, TRITON, NOM, None, NEVER, None, None),
        (
            Get,
            ["v2", "models", _]
            | ["v2", "models", _, "config" | "ready" | "stats"]
            | ["v2", "models", _, "versions", _]
            | ["v2", "models", _, "versions", _, "config" | "ready" | "stats"],
        ) => ep!(ReadModels, TRITON, ModelAt::PathSegment(2), None, NEVER, None, None),
        (Get, ["v2"] | ["v2", "health", "live" | "ready"]) => ep!(ReadOther, TRITON, NOM, None, NEVER, None, None),
        (Get, ["v2", "logging"] | ["v2", "trace", "setting"]) => ep!(ReadOther, TRITON, NOM, None, NEVER, None, None),
        (Post, ["v2", "logging"] | ["v2", "trace", "setting"]) => {
            ep!(ServerConfig, TRITON, NOM, Json, NEVER, None, None)
        }
        _ => None,
    }
}
