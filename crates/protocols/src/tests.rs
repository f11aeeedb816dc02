//! Table-driven tests over the endpoint table and classification.

use http::Method;

use crate::*;

use Flavor::{LlamaCpp as L, Ollama as O, OpenAi as A, Tgi as T, Triton as K, Vllm as V};

const OAI: &[Flavor] = &[A, V, O, L, T];
const OPENAI: &[Flavor] = &[A, V];
const ALL: &[Flavor] = &[A, V, O, L, T, K];
const M: ModelAt = ModelAt::Body(&["model"]);
const MN: ModelAt = ModelAt::Body(&["model", "name"]);
const NOM: ModelAt = ModelAt::None;
const P2: ModelAt = ModelAt::PathSegment(2);
const NEVER: StreamRule = StreamRule::Never;
const ALWAYS: StreamRule = StreamRule::Always;
const OFF: StreamRule = StreamRule::Field { default: false };
const ON: StreamRule = StreamRule::Field { default: true };

type Row = (&'static str, &'static str, Action, &'static [Flavor], ModelAt, BodyUse, StreamRule, Framing, UsageShape);

#[rustfmt::skip]
const ROWS: &[Row] = {
    use Action::*;
    use BodyUse::{Json, None as NoBody, Stream};
    use Framing::{Ndjson, None as NoFr, Sse};
    use UsageShape::{LlamaCpp as ULlama, None as NoU, Ollama as UOllama, OpenAi as UOai, Tgi as UTgi};
    &[
    // OpenAI-compatible
    ("POST", "/v1/chat/completions", InferenceChat, OAI, M, Json, OFF, Sse, UOai),
    ("POST", "/v1/completions", InferenceCompletion, OAI, M, Json, OFF, Sse, UOai),
    ("POST", "/v1/embeddings", InferenceEmbedding, &[A, V, O, L], M, Json, NEVER, NoFr, UOai),
    ("POST", "/v1/responses", InferenceChat, &[A, V, O], M, Json, OFF, Sse, UOai),
    ("POST", "/v1/rerank", InferenceRerank, &[V, L], M, Json, NEVER, NoFr, UOai),
    ("POST", "/rerank", InferenceRerank, &[V, L, T], M, Json, NEVER, NoFr, UOai),
    ("POST", "/v1/score", InferenceRerank, &[V], M, Json, NEVER, NoFr, UOai),
    ("POST", "/score", InferenceRerank, &[V], M, Json, NEVER, NoFr, UOai),
    ("POST", "/v1/moderations", InferenceOther, OPENAI, M, Json, NEVER, NoFr, NoU),
    ("POST", "/v1/images/generations", InferenceOther, OPENAI, M, Json, NEVER, NoFr, UOai),
    ("POST", "/v1/audio/transcriptions", InferenceOther, OPENAI, NOM, Stream, NEVER, NoFr, NoU),
    ("POST", "/v1/audio/translations", InferenceOther, OPENAI, NOM, Stream, NEVER, NoFr, NoU),
    ("POST", "/v1/audio/speech", InferenceOther, OPENAI, M, Json, NEVER, NoFr, NoU),
    ("POST", "/v1/files", DataUpload, OPENAI, NOM, Stream, NEVER, NoFr, NoU),
    ("GET", "/v1/files", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/files/file-abc123", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/files/file-abc123/content", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("DELETE", "/v1/files/file-abc123", DataDelete, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/v1/batches", DataBatch, OPENAI, NOM, Json, NEVER, NoFr, NoU),
    ("POST", "/v1/batches/batch_abc/cancel", DataBatch, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/batches", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/batches/batch_abc", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/v1/fine_tuning/jobs", DataFinetune, OPENAI, M, Json, NEVER, NoFr, NoU),
    ("POST", "/v1/fine_tuning/jobs/ftjob-1/cancel", DataFinetune, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/fine_tuning/jobs", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/fine_tuning/jobs/ftjob-1", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/fine_tuning/jobs/ftjob-1/events", ReadOther, OPENAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/models", ReadModels, OAI, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v1/models/gpt-4o", ReadModels, &[A, V, O], P2, NoBody, NEVER, NoFr, NoU),
    ("DELETE", "/v1/models/ft:gpt-4o:acme:1", ModelDelete, OPENAI, P2, NoBody, NEVER, NoFr, NoU),
    // vLLM
    ("POST", "/v1/load_lora_adapter", AdapterLoad, &[V], ModelAt::Body(&["lora_name"]), Json, NEVER, NoFr, NoU),
    ("POST", "/v1/unload_lora_adapter", AdapterUnload, &[V], ModelAt::Body(&["lora_name"]), Json, NEVER, NoFr, NoU),
    ("POST", "/sleep", ServerConfig, &[V], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/wake_up", ServerConfig, &[V], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/reset_prefix_cache", ServerConfig, &[V], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/is_sleeping", ReadOther, &[V], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/tokenize", InferenceOther, &[V, L, T], M, Json, NEVER, NoFr, NoU),
    ("POST", "/detokenize", InferenceOther, &[V, L], M, Json, NEVER, NoFr, NoU),
    ("POST", "/pooling", InferenceOther, &[V], M, Json, NEVER, NoFr, UOai),
    ("POST", "/classify", InferenceOther, &[V], M, Json, NEVER, NoFr, UOai),
    ("POST", "/v1/classify", InferenceOther, &[V], M, Json, NEVER, NoFr, UOai),
    ("GET", "/health", ReadOther, ALL, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/metrics", ReadOther, ALL, NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/ping", ReadOther, &[V], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/version", ReadOther, &[V], NOM, NoBody, NEVER, NoFr, NoU),
    // Ollama
    ("POST", "/api/chat", InferenceChat, &[O], M, Json, ON, Ndjson, UOllama),
    ("POST", "/api/generate", InferenceCompletion, &[O], M, Json, ON, Ndjson, UOllama),
    ("POST", "/api/embed", InferenceEmbedding, &[O], M, Json, NEVER, NoFr, UOllama),
    ("POST", "/api/embeddings", InferenceEmbedding, &[O], M, Json, NEVER, NoFr, NoU),
    ("POST", "/api/pull", ModelPull, &[O], MN, Json, ON, Ndjson, NoU),
    ("POST", "/api/push", ModelPush, &[O], MN, Json, ON, Ndjson, NoU),
    ("POST", "/api/create", ModelCreate, &[O], MN, Json, ON, Ndjson, NoU),
    ("POST", "/api/copy", ModelCopy, &[O], ModelAt::Body(&["source"]), Json, NEVER, NoFr, NoU),
    ("DELETE", "/api/delete", ModelDelete, &[O], MN, Json, NEVER, NoFr, NoU),
    ("POST", "/api/show", ReadModels, &[O], MN, Json, NEVER, NoFr, NoU),
    ("GET", "/api/tags", ReadModels, &[O], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/api/ps", ReadModels, &[O], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/api/version", ReadOther, &[O], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/api/blobs/sha256:29fdb92e57cf0827ded04ae6461b5931d01fa595843f55d36f5b275a52087dd2", DataUpload, &[O], NOM, Stream, NEVER, NoFr, NoU),
    ("HEAD", "/api/blobs/sha256:29fdb92e57cf", ReadOther, &[O], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/", ReadOther, &[O, L], NOM, NoBody, NEVER, NoFr, NoU),
    // llama.cpp
    ("POST", "/completion", InferenceCompletion, &[L], M, Json, OFF, Sse, ULlama),
    ("POST", "/completions", InferenceCompletion, &[L], M, Json, OFF, Sse, ULlama),
    ("POST", "/infill", InferenceCompletion, &[L], M, Json, OFF, Sse, ULlama),
    ("POST", "/embedding", InferenceEmbedding, &[L], M, Json, NEVER, NoFr, NoU),
    ("POST", "/embeddings", InferenceEmbedding, &[L], M, Json, NEVER, NoFr, NoU),
    ("POST", "/reranking", InferenceRerank, &[L], M, Json, NEVER, NoFr, UOai),
    ("POST", "/apply-template", InferenceOther, &[L], M, Json, NEVER, NoFr, NoU),
    ("GET", "/slots", ReadOther, &[L], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/slots/0", ServerConfig, &[L], NOM, Json, NEVER, NoFr, NoU),
    ("GET", "/props", ReadOther, &[L], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/props", ServerConfig, &[L], NOM, Json, NEVER, NoFr, NoU),
    ("GET", "/lora-adapters", ReadOther, &[L], NOM, NoBody, NEVER, NoFr, NoU),
    ("POST", "/lora-adapters", AdapterLoad, &[L], NOM, Json, NEVER, NoFr, NoU),
    ("GET", "/models", ReadModels, &[L], NOM, NoBody, NEVER, NoFr, NoU),
    // TGI
    ("POST", "/generate", InferenceCompletion, &[T], NOM, Json, NEVER, NoFr, UTgi),
    ("POST", "/generate_stream", InferenceCompletion, &[T], NOM, Json, ALWAYS, Sse, UTgi),
    ("POST", "/", InferenceCompletion, &[T], NOM, Json, OFF, Sse, UTgi),
    ("POST", "/invocations", InferenceCompletion, &[T], NOM, Json, OFF, Sse, UTgi),
    ("GET", "/info", ReadModels, &[T], NOM, NoBody, NEVER, NoFr, NoU),
    // Triton / KServe v2
    ("POST", "/v2/models/resnet50/infer", InferenceOther, &[K], P2, Stream, NEVER, NoFr, NoU),
    ("POST", "/v2/models/resnet50/versions/3/infer", InferenceOther, &[K], P2, Stream, NEVER, NoFr, NoU),
    ("POST", "/v2/models/ensemble/generate", InferenceCompletion, &[K], P2, Json, NEVER, NoFr, NoU),
    ("POST", "/v2/models/ensemble/generate_stream", InferenceCompletion, &[K], P2, Json, ALWAYS, Sse, NoU),
    ("POST", "/v2/repository/models/resnet50/load", ModelLoad, &[K], ModelAt::PathSegment(3), Json, NEVER, NoFr, NoU),
    ("POST", "/v2/repository/models/resnet50/unload", ModelUnload, &[K], ModelAt::PathSegment(3), Json, NEVER, NoFr, NoU),
    ("POST", "/v2/repository/index", ReadModels, &[K], NOM, Json, NEVER, NoFr, NoU),
    ("GET", "/v2/models/resnet50", ReadModels, &[K], P2, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/models/resnet50/config", ReadModels, &[K], P2, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/models/resnet50/ready", ReadModels, &[K], P2, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/models/resnet50/stats", ReadModels, &[K], P2, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/models/resnet50/versions/1", ReadModels, &[K], P2, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/models/resnet50/versions/1/ready", ReadModels, &[K], P2, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2", ReadOther, &[K], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/health/live", ReadOther, &[K], NOM, NoBody, NEVER, NoFr, NoU),
    ("GET", "/v2/health/ready", ReadOther, &[K], NOM, NoBody, NEVER, NoFr, NoU),
    ]
};

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

#[test]
fn every_row_looks_up_exactly() {
    for &(m, path, action, flavors, model, body, stream, framing, usage) in ROWS {
        let ep = lookup(&method(m), path).unwrap_or_else(|| panic!("{m} {path}: no endpoint"));
        assert_eq!(ep.action, action, "{m} {path}");
        assert_eq!(ep.flavors, FlavorSet::of(flavors), "{m} {path}");
        assert_eq!(ep.model, model, "{m} {path}");
        assert_eq!(ep.body, body, "{m} {path}");
        assert_eq!(ep.stream, stream, "{m} {path}");
        assert_eq!(ep.framing, framing, "{m} {path}");
        assert_eq!(ep.usage, usage, "{m} {path}");
        // Trailing slash tolerated.
        if path != "/" {
            let slashed = format!("{path}/");
            let ep2 = lookup(&method(m), &slashed).unwrap_or_else(|| panic!("{m} {slashed}"));
            assert!(std::ptr::eq(ep, ep2), "{m} {slashed}");
        }
    }
}

#[test]
fn method_mismatch_is_unknown() {
    for &(m, path, ..) in ROWS {
        for other in ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"] {
            // Same pattern, other method, listed in ROWS under another example path.
            let same_pattern = [
                ("DELETE", "/v1/models/gpt-4o"),
                ("GET", "/v1/models/ft:gpt-4o:acme:1"),
                ("POST", "/ping"),
                ("POST", "/api/blobs/sha256:29fdb92e57cf"),
            ];
            if other == m || ROWS.iter().any(|r| r.0 == other && r.1 == path) || same_pattern.contains(&(other, path)) {
                continue;
            }
            assert!(lookup(&method(other), path).is_none(), "{other} {path} should be unknown");
        }
    }
}

#[test]
fn head_falls_back_to_get_rows_only() {
    let ep = lookup(&Method::HEAD, "/v1/models").unwrap();
    assert_eq!(ep.action, Action::ReadModels);
    assert_eq!(lookup(&Method::HEAD, "/api/blobs/sha256:1").unwrap().action, Action::ReadOther);
    assert!(lookup(&Method::HEAD, "/v1/chat/completions").is_none());
    assert!(lookup(&Method::HEAD, "/api/pull").is_none());
}

#[test]
fn unknown_and_hostile_paths() {
    let post = Method::POST;
    for p in [
        "",
        "*",
        "v1/chat/completions",
        "/v1/chat/completions/extra",
        "/v1/chat//completions",
        "//v1/chat/completions",
        "/v1/chat/completions//",
        "/V1/chat/completions",
        "/v1/chat/./completions",
        "/v1/files/../chat/completions",
        "/v1/chat/completion",
        "/api/blobs/",
        "/api/blobs/a/b",
        "/v2/models//infer",
        "/v2/models/%2e%2e/infer",
        "/nothing/here",
    ] {
        assert!(lookup(&post, p).is_none(), "POST {p:?} should be unknown");
    }
    assert!(lookup(&Method::GET, "/v1/models/..").is_none());
    assert!(lookup(&Method::GET, "/v1/models/a/../b").is_none());
    let deep = format!("/v1/models{}", "/x".repeat(20));
    assert!(lookup(&Method::GET, &deep).is_none());
}

#[test]
fn percent_escapes_are_decoded_like_the_servers_do() {
    let ep = lookup(&Method::POST, "/v1/chat%2Fcompletions").unwrap();
    assert_eq!(ep.action, Action::InferenceChat);
    let ep = lookup(&Method::POST, "/api/%63hat").unwrap();
    assert_eq!(ep.action, Action::InferenceChat);
    // An invalid escape stays literal and matches nothing.
    assert!(lookup(&Method::POST, "/v1/chat/completions%").is_none());
    assert!(lookup(&Method::POST, "/v1/chat/completions%zz").is_none());
}

fn c(m: &str, path: &str, query: Option<&str>, body: Option<&str>) -> Classification {
    let ep = lookup(&method(m), path);
    classify(ep, path, query, body.map(str::as_bytes)).unwrap()
}

type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Action,
    Option<&'static str>,
    bool,
    Framing,
    Option<u64>,
    bool,
);

#[test]
fn classification_table() {
    // (method, path, query, body, action, model, stream, framing, max_tokens, caller_wants_usage)
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("POST", "/v1/chat/completions", None,
         Some(r#"{"messages":[{"role":"user","content":"hi \"model\": \"evil\""}],"model":"llama-3-70b","max_tokens":256}"#),
         Action::InferenceChat, Some("llama-3-70b"), false, Framing::None, Some(256), false),
        ("POST", "/v1/chat/completions", None,
         Some(r#"{"model":"qwen2.5","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":99,"max_tokens":5}"#),
         Action::InferenceChat, Some("qwen2.5"), true, Framing::Sse, Some(99), true),
        ("POST", "/v1/completions", None, Some(r#"{"model":"m","prompt":"x","stream":false}"#),
         Action::InferenceCompletion, Some("m"), false, Framing::None, None, false),
        ("POST", "/v1/embeddings", None, Some(r#"{"model":"bge-m3","input":["a","b"],"stream":true}"#),
         Action::InferenceEmbedding, Some("bge-m3"), false, Framing::None, None, false),
        ("POST", "/v1/responses", None, Some(r#"{"model":"gpt-4.1","input":"hi","stream":true,"max_output_tokens":64}"#),
         Action::InferenceChat, Some("gpt-4.1"), true, Framing::Sse, Some(64), false),
        ("POST", "/api/chat", None, Some(r#"{"model":"llama3.2","messages":[{"role":"user","content":"why"}],"options":{"temperature":0.1,"num_predict":128}}"#),
         Action::InferenceChat, Some("llama3.2"), true, Framing::Ndjson, Some(128), false),
        ("POST", "/api/generate", None, Some(r#"{"model":"llama3.2","prompt":"why","stream":false}"#),
         Action::InferenceCompletion, Some("llama3.2"), false, Framing::None, None, false),
        ("POST", "/api/pull", None, Some(r#"{"name":"llama3.2:1b"}"#),
         Action::ModelPull, Some("llama3.2:1b"), true, Framing::Ndjson, None, false),
        ("POST", "/api/pull", None, Some(r#"{"name":"old","model":"new","stream":false}"#),
         Action::ModelPull, Some("new"), false, Framing::None, None, false),
        ("POST", "/api/pull", None, Some(r#"{"model":"","name":"fallback"}"#),
         Action::ModelPull, Some("fallback"), true, Framing::Ndjson, None, false),
        ("POST", "/api/copy", None, Some(r#"{"source":"llama3.2","destination":"llama3.2-backup"}"#),
         Action::ModelCopy, Some("llama3.2"), false, Framing::None, None, false),
        ("DELETE", "/api/delete", None, Some(r#"{"model":"llama3.2"}"#),
         Action::ModelDelete, Some("llama3.2"), false, Framing::None, None, false),
        ("POST", "/v1/load_lora_adapter", None, Some(r#"{"lora_name":"sql-lora","lora_path":"/adapters/sql"}"#),
         Action::AdapterLoad, Some("sql-lora"), false, Framing::None, None, false),
        ("POST", "/completion", None, Some(r#"{"prompt":"Paris is","n_predict":64,"stream":true}"#),
         Action::InferenceCompletion, None, true, Framing::Sse, Some(64), false),
        ("POST", "/completion", None, Some(r#"{"prompt":"x","n_predict":-1}"#),
         Action::InferenceCompletion, None, false, Framing::None, None, false),
        ("POST", "/generate", None, Some(r#"{"inputs":"What is","parameters":{"max_new_tokens":20,"details":true},"stream":true}"#),
         Action::InferenceCompletion, None, false, Framing::None, Some(20), false),
        ("POST", "/generate_stream", None, Some(r#"{"inputs":"What is","parameters":{"max_new_tokens":20}}"#),
         Action::InferenceCompletion, None, true, Framing::Sse, Some(20), false),
        ("POST", "/", None, Some(r#"{"inputs":"x","stream":true}"#),
         Action::InferenceCompletion, None, true, Framing::Sse, None, false),
        ("POST", "/v2/models/resnet50/versions/2/infer", None, None,
         Action::InferenceOther, Some("resnet50"), false, Framing::None, None, false),
        ("POST", "/v2/models/ensemble/generate_stream", None, Some(r#"{"text_input":"hi","max_tokens":8}"#),
         Action::InferenceCompletion, Some("ensemble"), true, Framing::Sse, Some(8), false),
        ("POST", "/v2/repository/models/bert%20large/load", None, Some("{}"),
         Action::ModelLoad, Some("bert large"), false, Framing::None, None, false),
        ("GET", "/v1/models/hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", None, None,
         Action::ReadModels, Some("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"), false, Framing::None, None, false),
        ("GET", "/v1/models/meta-llama%2FLlama-3.1-8B/", None, None,
         Action::ReadModels, Some("meta-llama/Llama-3.1-8B"), false, Framing::None, None, false),
        ("DELETE", "/v1/models/ft:gpt-4o-mini:acme::abc", None, None,
         Action::ModelDelete, Some("ft:gpt-4o-mini:acme::abc"), false, Framing::None, None, false),
        ("POST", "/slots/0", Some("action=save"), Some(r#"{"filename":"slot0.bin"}"#),
         Action::ServerConfig, None, false, Framing::None, None, false),
        ("GET", "/v1/models", None, None, Action::ReadModels, None, false, Framing::None, None, false),
        ("POST", "/v1/chat/completions", None, None, Action::InferenceChat, None, false, Framing::None, None, false),
        ("POST", "/v1/chat/completions", None, Some(""), Action::InferenceChat, None, false, Framing::None, None, false),
    ];
    for &(m, path, query, body, action, model, stream, framing, max, wants) in cases {
        let got = c(m, path, query, body);
        let ep = lookup(&method(m), path).unwrap();
        let expected = Classification {
            action,
            model: model.map(str::to_owned),
            stream,
            max_tokens: max,
            framing,
            usage: ep.usage,
            flavors: ep.flavors,
            caller_wants_usage: wants,
        };
        assert_eq!(got, expected, "{m} {path} {body:?}");
    }
}

#[test]
fn every_row_classifies() {
    for &(m, path, action, flavors, model_at, body_use, ..) in ROWS {
        let body =
            (body_use == BodyUse::Json).then_some(r#"{"model":"mdl","name":"nm","source":"src","lora_name":"lr"}"#);
        let got = c(m, path, None, body);
        assert_eq!(got.action, action, "{m} {path}");
        assert_eq!(got.flavors, FlavorSet::of(flavors), "{m} {path}");
        let expected_model = match model_at {
            ModelAt::None => None,
            ModelAt::Body(f) => Some(match f[0] {
                "model" => "mdl",
                "source" => "src",
                "lora_name" => "lr",
                other => panic!("unexpected field {other}"),
            }),
            ModelAt::PathSegment(i) => Some(path.trim_start_matches('/').split('/').nth(i).unwrap()),
            ModelAt::Query(_) => panic!("no query rows"),
        };
        assert_eq!(got.model.as_deref(), expected_model, "{m} {path}");
    }
}

#[test]
fn unknown_endpoint_classification() {
    let got = classify(None, "/v3/whatever", None, Some(br#"{"model":"x","stream":true}"#)).unwrap();
    assert_eq!(got.action, Action::Unknown);
    assert_eq!(got.flavors, FlavorSet::ALL);
    assert_eq!(got.model.as_deref(), Some("x"));
    assert!(got.stream);
    assert_eq!(got.framing, Framing::None);
    assert_eq!(got.usage, UsageShape::None);
    // Non-JSON bodies on unknown paths do not error.
    let got = classify(None, "/upload", None, Some(b"\x00\x01binary")).unwrap();
    assert_eq!(got.model, None);
    assert!(!got.stream);
    let got = classify(None, "/x", None, None).unwrap();
    assert_eq!(got.model, None);
}

#[test]
fn malformed_bodies_error_on_json_endpoints() {
    let ep = lookup(&Method::POST, "/v1/chat/completions");
    for body in [
        &b"[1,2]"[..],
        b"\"model\"",
        b"{\"model\":\"a\"",
        b"{\"model\":\"a\"} trailing",
        b"{\"model\":42}",
        b"{\"model\":\"a\",\"model\":\"b\"}",
        b"{\"model\":\"a\",\"Model\":\"b\"}",
        b"{\"MODEL\":\"b\"}",
        b"{\"stream\":true,\"\xc5\xbftream\":false}",
        b"not json",
    ] {
        let err = classify(ep, "/v1/chat/completions", None, Some(body)).unwrap_err();
        assert!(!err.message.is_empty());
        assert!(err.to_string().contains("malformed"), "{err}");
    }
    // A Stream-body endpoint ignores any body it is handed.
    let ep = lookup(&Method::POST, "/v1/files");
    assert!(classify(ep, "/v1/files", None, Some(b"--boundary\r\n")).is_ok());
}

#[test]
fn query_model() {
    static EP: Endpoint = Endpoint {
        action: Action::ReadOther,
        flavors: FlavorSet::ALL,
        model: ModelAt::Query("model"),
        body: BodyUse::None,
        stream: StreamRule::Never,
        framing: Framing::None,
        usage: UsageShape::None,
    };
    let q = |query: Option<&str>| classify(Some(&EP), "/props", query, None).unwrap().model;
    assert_eq!(q(Some("model=org%2Fname+v2&x=1")).as_deref(), Some("org/name v2"));
    assert_eq!(q(Some("x=1&model=a&model=a")).as_deref(), Some("a"));
    assert_eq!(q(Some("model=a&model=b")), None);
    assert_eq!(q(Some("model=")), None);
    assert_eq!(q(Some("models=a")), None);
    assert_eq!(q(None), None);
}

#[test]
fn stream_options_injection_paths() {
    assert!(accepts_stream_options("/v1/chat/completions"));
    assert!(accepts_stream_options("/v1/completions/"));
    assert!(!accepts_stream_options("/v1/responses"));
    assert!(!accepts_stream_options("/api/chat"));
}
