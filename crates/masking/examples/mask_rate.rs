//! Measures the masking transforms on one core:
//! `cargo run --release -p modelgate-masking --example mask_rate [SECONDS]` (default 1 per case).
//!
//! - Request masking (`Masker::request`, redact, every type) in MB/s on chat-completion bodies of
//!   256 B, 4 KiB and 64 KiB: English prose without entities, and PII-dense prose (an email, a
//!   key or a token every ~120 bytes).
//! - Streams: the time `StreamMasker::push` adds per SSE chat chunk (one `delta.content` event
//!   of a few characters per push, as model servers send them), p50 and p99, for clean and
//!   PII-dense answers, in redact and tokenize mode.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use masking::{Masker, Mode, Plan};
use protocols::Framing;

const PROSE: &str = "Could you help me rewrite the onboarding section of our internal wiki? It should explain, \
in plain language, how a new engineer requests access to the staging cluster, which team approves it, and \
what to do when the approval takes longer than two working days. Keep the tone friendly but precise; avoid \
jargon where a simpler word will do, and use short paragraphs with a bulleted checklist at the end. ";

const VALUES: [&str; 4] = [
    "maria.lopez@example.com",
    "AKIAZ7VQ3X4LRTM2PQ5N",
    "ghp_R8fK2mQ9xV4tL7wZ1nB6cJ3hY5pD0sG2aE8uW",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// `len` bytes of text: prose, with a value every ~120 bytes when `dense`.
fn text(len: usize, dense: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    let words: Vec<&str> = PROSE.split(' ').filter(|w| !w.is_empty()).collect();
    // A dense text opens with a value, so even 256 B bodies carry one.
    let mut since = 100;
    while out.len() < len {
        if dense && since >= 100 {
            out.push_str(VALUES[i % VALUES.len()]);
            since = 0;
        } else {
            let w = words[i % words.len()];
            out.push_str(w);
            since += w.len() + 1;
        }
        out.push(' ');
        i += 1;
    }
    let mut cut = len.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}

/// A chat request of about `size` bytes whose user message is the text.
fn chat_body(size: usize, dense: bool) -> Vec<u8> {
    let head = r#"{"model":"llama-3-70b-instruct","messages":[{"role":"system","content":"You are a concise, helpful assistant for an engineering team."},{"role":"user","content":""#;
    let tail = r#""}],"temperature":0.7,"max_tokens":512,"stream":true}"#;
    let body = text(size.saturating_sub(head.len() + tail.len()), dense);
    format!("{head}{body}{tail}").into_bytes()
}

fn plan(mode: Mode) -> Plan {
    Plan { entities: vec!["*".into()], mode, request: true, response: true, recording: true }
}

fn key() -> Arc<[u8; 32]> {
    Arc::new([7; 32])
}

/// Detection alone on the same body, for comparison.
fn detect_rate(name: &str, body: &[u8], budget: Duration) {
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..64 {
            black_box(masking::detect(black_box(body)));
        }
        calls += 64;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (body.len() as u64 * calls) as f64 / 1e6;
    println!("detect  {name:<22} {:>6} B  {:>8.1} MB/s  (detection only, for comparison)", body.len(), mb / secs);
}

fn request_rate(name: &str, body: &[u8], budget: Duration) {
    let mut m = Masker::new(plan(Mode::Redact), key());
    let masked = match m.request(body) {
        Ok(b) => b,
        Err(e) => {
            println!("{name}: error {e}");
            return;
        }
    };
    let found: u64 = m.counts().request.values().map(|c| c.masked).sum();
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..64 {
            let mut m = Masker::new(plan(Mode::Redact), key());
            let _ = black_box(m.request(black_box(body)));
        }
        calls += 64;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (body.len() as u64 * calls) as f64 / 1e6;
    println!(
        "request {name:<22} {:>6} B  {:>8.1} MB/s  {:>8.2} µs/body  masked {found} values ({} -> {} B)",
        body.len(),
        mb / secs,
        secs * 1e6 / calls as f64,
        body.len(),
        masked.len()
    );
}

/// SSE chat chunks carrying `text` in deltas of 3 to 6 bytes, then finish, usage and `[DONE]`.
fn sse_chunks(text: &str) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = text;
    let mut n = 0usize;
    while !rest.is_empty() {
        let mut cut = (3 + n % 4).min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        n += 1;
        let content = serde_json::to_string(piece).unwrap_or_default();
        chunks.push(format!("data: {{\"id\":\"chatcmpl-8\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"llama-3-70b-instruct\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{content}}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n").into_bytes());
    }
    chunks.push(b"data: {\"id\":\"chatcmpl-8\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"llama-3-70b-instruct\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_vec());
    chunks.push(b"data: [DONE]\n\n".to_vec());
    chunks
}

fn stream_latency(name: &str, mode: Mode, active: bool, dense: bool, budget: Duration) {
    let answer = text(2048, dense);
    let chunks = sse_chunks(&answer);
    let mut times: Vec<u64> = Vec::new();
    let start = Instant::now();
    let mut bytes_out = 0usize;
    while start.elapsed() < budget {
        let p =
            if active { plan(mode) } else { Plan { request: false, response: false, recording: false, ..plan(mode) } };
        let mut m = Masker::new(p, key());
        if mode == Mode::Tokenize {
            let _ = m.request(&chat_body(1024, true));
        }
        let mut sm = m.stream(Framing::Sse);
        for c in &chunks {
            let t = Instant::now();
            let out = sm.push(black_box(c));
            times.push(t.elapsed().as_nanos() as u64);
            if let Ok(out) = out {
                bytes_out += out.caller.len();
            }
        }
        let _ = sm.finish();
    }
    black_box(bytes_out);
    times.sort_unstable();
    let pct = |p: f64| times.get(((times.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    println!(
        "stream  {name:<34} per chunk: p50 {:>6.2} µs  p99 {:>6.2} µs  max {:>7.2} µs  ({} chunks)",
        pct(0.50) as f64 / 1e3,
        pct(0.99) as f64 / 1e3,
        times.last().copied().unwrap_or(0) as f64 / 1e3,
        times.len()
    );
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    for size in [256, 4096, 65536] {
        let label = match size {
            256 => "256 B",
            4096 => "4 KiB",
            _ => "64 KiB",
        };
        detect_rate(&format!("{label} clean"), &chat_body(size, false), budget);
        request_rate(&format!("{label} clean"), &chat_body(size, false), budget);
        request_rate(&format!("{label} PII-dense"), &chat_body(size, true), budget);
    }
    stream_latency("SSE chat, masking off (baseline)", Mode::Redact, false, false, budget);
    stream_latency("SSE chat, redact, clean", Mode::Redact, true, false, budget);
    stream_latency("SSE chat, redact, PII-dense", Mode::Redact, true, true, budget);
    stream_latency("SSE chat, tokenize, PII-dense", Mode::Tokenize, true, true, budget);
}
