//! Response observation: token usage, finish reasons and the response model, read from the
//! body as the relay forwards it (JSON, SSE or NDJSON), without holding the stream back.

use bytes::Bytes;
use memchr::{memchr, memchr_iter, memmem};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::endpoint::{Framing, UsageShape};
use crate::peek::{Count, Str};

/// Token usage and related response facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub input_tokens: Option<u64>,
    /// Generated (output) tokens.
    pub output_tokens: Option<u64>,
    /// Non-null finish reasons, in the order seen.
    pub finish_reasons: Vec<String>,
    /// The model the upstream says answered.
    pub response_model: Option<String>,
}

impl Usage {
    fn set_model(&mut self, m: Option<Str<'_>>) {
        if self.response_model.is_none()
            && let Some(Str(m)) = m
            && !m.is_empty()
        {
            self.response_model = Some(m.into_owned());
        }
    }

    fn set_counts(&mut self, input: Option<u64>, output: Option<u64>, sum: bool) {
        fn put(slot: &mut Option<u64>, v: Option<u64>, sum: bool) {
            if let Some(v) = v {
                *slot = Some(if sum { slot.unwrap_or(0).saturating_add(v) } else { v });
            }
        }
        put(&mut self.input_tokens, input, sum);
        put(&mut self.output_tokens, output, sum);
    }

    fn push_reason(&mut self, r: Option<Str<'_>>) {
        if let Some(Str(r)) = r
            && !r.is_empty()
        {
            self.finish_reasons.push(r.into_owned());
        }
    }
}

// ---- response shapes (borrowed; serde skips everything else) ----

#[derive(Deserialize)]
struct OaiMsg<'a> {
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(borrow, default)]
    object: Option<Str<'a>>,
    #[serde(borrow, default)]
    status: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<OaiUsage>,
    #[serde(borrow, default)]
    choices: Option<Vec<OaiChoice<'a>>>,
    /// Responses API stream events wrap the response object.
    #[serde(borrow, default)]
    response: Option<Box<OaiMsg<'a>>>,
    #[serde(borrow, default)]
    incomplete_details: Option<Reason<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OaiUsage {
    prompt_tokens: Count,
    completion_tokens: Count,
    input_tokens: Count,
    output_tokens: Count,
    total_tokens: Count,
}

#[derive(Deserialize)]
struct OaiChoice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Reason<'a> {
    #[serde(borrow, default)]
    reason: Option<Str<'a>>,
}

/// Applies an OpenAI message; returns whether it is a usage-only chunk (`choices: []` + usage).
fn apply_oai(u: &mut Usage, m: OaiMsg<'_>, sum: bool) -> bool {
    let usage_only = m.usage.is_some() && m.choices.as_ref().is_some_and(Vec::is_empty);
    if let Some(r) = m.response {
        apply_oai(u, *r, sum);
    }
    u.set_model(m.model);
    if let Some(us) = m.usage {
        let output = us.completion_tokens.0.or(us.output_tokens.0);
        let mut input = us.prompt_tokens.0.or(us.input_tokens.0);
        if input.is_none() && output.is_none() {
            input = us.total_tokens.0;
        }
        u.set_counts(input, output, sum);
    }
    for c in m.choices.into_iter().flatten() {
        u.push_reason(c.finish_reason);
    }
    if m.object.as_ref().is_some_and(|o| o.0 == "response") {
        match m.incomplete_details.and_then(|d| d.reason) {
            Some(r) => u.push_reason(Some(r)),
            None => {
                if let Some(s) = m.status.filter(|s| !matches!(&*s.0, "in_progress" | "queued")) {
                    u.push_reason(Some(s));
                }
            }
        }
    }
    usage_only
}

#[derive(Deserialize)]
struct OllamaMsg<'a> {
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(borrow, default)]
    done_reason: Option<Str<'a>>,
    #[serde(default)]
    prompt_eval_count: Count,
    #[serde(default)]
    eval_count: Count,
}

fn apply_ollama(u: &mut Usage, m: OllamaMsg<'_>, sum: bool) {
    u.set_model(m.model);
    u.set_counts(m.prompt_eval_count.0, m.eval_count.0, sum);
    u.push_reason(m.done_reason);
}

#[derive(Deserialize)]
struct TgiMsg<'a> {
    #[serde(borrow, default)]
    details: Option<TgiDetails<'a>>,
}

#[derive(Deserialize)]
struct TgiDetails<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
    #[serde(default)]
    generated_tokens: Count,
    /// Present on streamed details (TGI >= 2).
    #[serde(default)]
    input_length: Count,
    /// Prompt tokens, when the caller asked for `decoder_input_details`.
    #[serde(default)]
    prefill: Option<Vec<IgnoredAny>>,
}

fn apply_tgi(u: &mut Usage, m: TgiMsg<'_>, sum: bool) {
    if let Some(d) = m.details {
        let prefill = d.prefill.map(|p| p.len() as u64).filter(|n| *n > 0);
        u.set_counts(d.input_length.0.or(prefill), d.generated_tokens.0, sum);
        u.push_reason(d.finish_reason);
    }
}

#[derive(Deserialize)]
struct LlamaMsg<'a> {
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(default)]
    tokens_evaluated: Count,
    #[serde(default)]
    tokens_predicted: Count,
    #[serde(borrow, default)]
    stop_type: Option<Str<'a>>,
    #[serde(default)]
    stopped_eos: Option<bool>,
    #[serde(default)]
    stopped_word: Option<bool>,
    #[serde(default)]
    stopped_limit: Option<bool>,
    #[serde(default)]
    timings: Option<LlamaTimings>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LlamaTimings {
    prompt_n: Count,
    predicted_n: Count,
}

fn apply_llama(u: &mut Usage, m: LlamaMsg<'_>, sum: bool) {
    u.set_model(m.model);
    let t = m.timings.unwrap_or_default();
    u.set_counts(m.tokens_evaluated.0.or(t.prompt_n.0), m.tokens_predicted.0.or(t.predicted_n.0), sum);
    match m.stop_type {
        Some(s) if &*s.0 != "none" => u.push_reason(Some(s)),
        _ => {
            let r = if m.stopped_eos == Some(true) {
                "eos"
            } else if m.stopped_word == Some(true) {
                "word"
            } else if m.stopped_limit == Some(true) {
                "limit"
            } else {
                return;
            };
            u.finish_reasons.push(r.to_owned());
        }
    }
}

// ---- lazy line inspection ----

/// Whether `key` (with quotes) occurs as a key whose value does not start with `null` (or, with
/// `want_true`, starts with `true`).
fn key_value_is(json: &[u8], key: &[u8], want_true: bool) -> bool {
    for pos in memmem::find_iter(json, key) {
        let mut i = pos + key.len();
        while json.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if json.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while json.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let v = json.get(i..).unwrap_or_default();
        if if want_true { v.starts_with(b"true") } else { !v.is_empty() && !v.starts_with(b"null") } {
            return true;
        }
    }
    false
}

/// Inspects one complete line (without its `\n`); returns whether it is an SSE data line carrying
/// a usage-only OpenAI chunk.
fn observe_line(u: &mut Usage, shape: UsageShape, framing: Framing, line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let payload = if framing == Framing::Sse {
        match line.strip_prefix(b"data:") {
            Some(d) => d,
            None => return false,
        }
    } else {
        line
    };
    let payload = payload.trim_ascii();
    if payload.first() != Some(&b'{') {
        return false;
    }
    match shape {
        UsageShape::None => false,
        UsageShape::OpenAi => {
            let interesting = key_value_is(payload, b"\"usage\"", false)
                || key_value_is(payload, b"\"finish_reason\"", false)
                || (u.response_model.is_none() && memmem::find(payload, b"\"model\"").is_some());
            match interesting.then(|| serde_json::from_slice::<OaiMsg<'_>>(payload).ok()).flatten() {
                Some(m) => apply_oai(u, m, false),
                None => false,
            }
        }
        UsageShape::Ollama => {
            if key_value_is(payload, b"\"done\"", true)
                && let Ok(m) = serde_json::from_slice::<OllamaMsg<'_>>(payload)
            {
                apply_ollama(u, m, false);
            }
            false
        }
        UsageShape::Tgi => {
            if key_value_is(payload, b"\"details\"", false)
                && let Ok(m) = serde_json::from_slice::<TgiMsg<'_>>(payload)
            {
                apply_tgi(u, m, false);
            }
            false
        }
        UsageShape::LlamaCpp => {
            if key_value_is(payload, b"\"stop\"", true)
                && let Ok(m) = serde_json::from_slice::<LlamaMsg<'_>>(payload)
            {
                apply_llama(u, m, false);
            }
            false
        }
    }
}

/// Parses a whole non-streamed body: one JSON value, concatenated values (NDJSON), an array of
/// values (counts summed), or (when the request streamed after all) SSE lines.
fn observe_body(u: &mut Usage, shape: UsageShape, body: &[u8]) {
    fn docs<'a, T: Deserialize<'a>>(body: &'a [u8], mut f: impl FnMut(T, bool)) {
        let t = body.trim_ascii_start();
        if t.starts_with(b"[") {
            if let Ok(v) = serde_json::from_slice::<Vec<T>>(t) {
                v.into_iter().for_each(|m| f(m, true));
            }
        } else {
            for m in serde_json::Deserializer::from_slice(t).into_iter::<T>() {
                match m {
                    Ok(m) => f(m, false),
                    Err(_) => break,
                }
            }
        }
    }
    let t = body.trim_ascii_start();
    if !t.is_empty() && !t.starts_with(b"{") && !t.starts_with(b"[") {
        for line in t.split(|b| *b == b'\n') {
            observe_line(u, shape, Framing::Sse, line);
        }
        return;
    }
    match shape {
        UsageShape::None => {}
        UsageShape::OpenAi => docs(body, |m, sum| {
            apply_oai(u, m, sum);
        }),
        UsageShape::Ollama => docs(body, |m, sum| apply_ollama(u, m, sum)),
        UsageShape::Tgi => docs(body, |m, sum| apply_tgi(u, m, sum)),
        UsageShape::LlamaCpp => docs(body, |m, sum| apply_llama(u, m, sum)),
    }
}

/// Observes a response body chunk by chunk as the relay forwards it.
#[derive(Debug)]
pub struct ResponseObserver {
    shape: UsageShape,
    framing: Framing,
    /// Dropping usage-only SSE events (event-holding mode).
    dropping: bool,
    cap: usize,
    usage: Usage,
    /// Framing::None: the body copy (cleared on overflow).
    body: Vec<u8>,
    body_overflow: bool,
    /// Line mode: the incomplete last line (cleared on overflow).
    partial: Vec<u8>,
    partial_overflow: bool,
    /// Dropping mode: bytes of the current incomplete event, from its start.
    held: Vec<u8>,
    /// Dropping mode: offset in `held` of the first line not yet inspected.
    scanned: usize,
    /// Dropping mode: whether the current event is to be dropped.
    event_drop: bool,
    /// Dropping mode: scratch list of byte ranges to forward.
    ranges: Vec<(usize, usize)>,
}

impl ResponseObserver {
    /// `framing`: `Framing::None` => non-streamed body: keep a copy up to `cap` bytes and parse at
    /// finish. `drop_usage_chunks` (SSE + OpenAI shape only): remove SSE events whose data is an
    /// OpenAI chunk with empty `choices` and a non-null `usage` (usage still recorded); partial
    /// events are then held back until complete (an event longer than `cap` is forwarded and
    /// dropping stops). Otherwise chunks pass through unchanged (the same `Bytes`) and only
    /// partial lines (up to `cap` bytes) are copied internally for parsing.
    pub fn new(shape: UsageShape, framing: Framing, drop_usage_chunks: bool, cap: usize) -> Self {
        ResponseObserver {
            shape,
            framing,
            dropping: drop_usage_chunks && framing == Framing::Sse && shape == UsageShape::OpenAi,
            cap,
            usage: Usage::default(),
            body: Vec::new(),
            body_overflow: false,
            partial: Vec::new(),
            partial_overflow: false,
            held: Vec::new(),
            scanned: 0,
            event_drop: false,
            ranges: Vec::new(),
        }
    }

    /// Feeds one upstream chunk; returns the bytes to forward to the caller now (may be empty).
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        if self.dropping {
            return self.feed_events(chunk);
        }
        if self.shape == UsageShape::None {
            return chunk;
        }
        match self.framing {
            Framing::None => {
                if !self.body_overflow {
                    if self.body.len() + chunk.len() > self.cap {
                        self.body_overflow = true;
                        self.body = Vec::new();
                    } else {
                        self.body.extend_from_slice(&chunk);
                    }
                }
            }
            Framing::Sse | Framing::Ndjson => self.feed_lines(&chunk),
        }
        chunk
    }

    /// End of stream: returns any held-back bytes still to forward.
    pub fn finish(&mut self) -> Bytes {
        if self.dropping {
            let held = std::mem::take(&mut self.held);
            let rest = held.get(self.scanned..).unwrap_or_default();
            if !rest.is_empty() && observe_line(&mut self.usage, self.shape, self.framing, rest) {
                self.event_drop = true;
            }
            let drop = std::mem::replace(&mut self.event_drop, false);
            self.scanned = 0;
            return if drop || held.is_empty() { Bytes::new() } else { Bytes::from(held) };
        }
        match self.framing {
            Framing::None => {
                let body = std::mem::take(&mut self.body);
                if !self.body_overflow {
                    observe_body(&mut self.usage, self.shape, &body);
                }
            }
            Framing::Sse | Framing::Ndjson => {
                let partial = std::mem::take(&mut self.partial);
                if !self.partial_overflow && !partial.is_empty() {
                    observe_line(&mut self.usage, self.shape, self.framing, &partial);
                }
                self.partial_overflow = false;
            }
        }
        Bytes::new()
    }

    /// Usage seen so far (complete after finish).
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Takes the usage out, leaving an empty one.
    pub fn take_usage(&mut self) -> Usage {
        std::mem::take(&mut self.usage)
    }

    fn push_partial(&mut self, b: &[u8]) {
        if self.partial_overflow {
            return;
        }
        if self.partial.len() + b.len() > self.cap {
            self.partial_overflow = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(b);
        }
    }

    fn feed_lines(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if !self.partial.is_empty() || self.partial_overflow {
            let Some(i) = memchr(b'\n', rest) else {
                self.push_partial(rest);
                return;
            };
            self.push_partial(&rest[..i]);
            if !self.partial_overflow {
                observe_line(&mut self.usage, self.shape, self.framing, &self.partial);
            }
            self.partial.clear();
            self.partial_overflow = false;
            rest = &rest[i + 1..];
        }
        let mut start = 0;
        for nl in memchr_iter(b'\n', rest) {
            observe_line(&mut self.usage, self.shape, self.framing, &rest[start..nl]);
            start = nl + 1;
        }
        if start < rest.len() {
            self.push_partial(&rest[start..]);
        }
    }

    /// Scans `buf` (which starts at an event start) from line offset `from`, recording the
    /// ranges of complete kept events; returns (start of the incomplete event, start of the
    /// first uninspected line).
    fn scan_events(&mut self, buf: &[u8], from: usize) -> (usize, usize) {
        self.ranges.clear();
        let mut ev_start = 0;
        let mut line_start = from;
        for nl in memchr_iter(b'\n', &buf[from..]) {
            let nl = from + nl;
            let line = &buf[line_start..nl];
            if line.is_empty() || line == b"\r" {
                if !self.event_drop {
                    match self.ranges.last_mut() {
                        Some(last) if last.1 == ev_start => last.1 = nl + 1,
                        _ => self.ranges.push((ev_start, nl + 1)),
                    }
                }
                self.event_drop = false;
                ev_start = nl + 1;
            } else if observe_line(&mut self.usage, self.shape, self.framing, line) {
                self.event_drop = true;
            }
            line_start = nl + 1;
        }
        (ev_start, line_start)
    }

    fn feed_events(&mut self, chunk: Bytes) -> Bytes {
        let mut out = if self.held.is_empty() {
            let (ev_start, line_start) = self.scan_events(&chunk, 0);
            self.held.extend_from_slice(&chunk[ev_start..]);
            self.scanned = line_start - ev_start;
            match self.ranges.as_slice() {
                [] => Vec::new(),
                [(a, b)] if self.held.len() <= self.cap => return chunk.slice(*a..*b),
                rs => rs.iter().flat_map(|(a, b)| &chunk[*a..*b]).copied().collect(),
            }
        } else {
            self.held.extend_from_slice(&chunk);
            let held = std::mem::take(&mut self.held);
            let (ev_start, line_start) = self.scan_events(&held, self.scanned);
            let out: Vec<u8> = self.ranges.iter().flat_map(|(a, b)| &held[*a..*b]).copied().collect();
            self.held = held;
            self.held.drain(..ev_start);
            self.scanned = line_start - ev_start;
            out
        };
        if self.held.len() > self.cap {
            // An event this large is no usage chunk: forward it and stop dropping.
            self.dropping = false;
            let held = std::mem::take(&mut self.held);
            self.partial.clear();
            self.partial_overflow = false;
            self.push_partial(&held[self.scanned..]);
            out.extend_from_slice(&held);
            self.scanned = 0;
            self.event_drop = false;
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 1 << 20;

    fn run(shape: UsageShape, framing: Framing, drop: bool, cap: usize, parts: &[&[u8]]) -> (Vec<u8>, Usage) {
        let mut o = ResponseObserver::new(shape, framing, drop, cap);
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&o.feed(Bytes::copy_from_slice(p)));
        }
        out.extend_from_slice(&o.finish());
        (out, o.usage().clone())
    }

    /// Feeds `body` whole, split at every offset, split in three at a stride, and byte by byte;
    /// every run must give the same output and usage. Returns the whole-body result.
    fn check(shape: UsageShape, framing: Framing, drop: bool, body: &str) -> (String, Usage) {
        let b = body.as_bytes();
        let whole = run(shape, framing, drop, CAP, &[b]);
        if !drop {
            assert_eq!(whole.0, b, "pass-through output must equal input");
        }
        for i in 0..=b.len() {
            let got = run(shape, framing, drop, CAP, &[&b[..i], &b[i..]]);
            assert_eq!(got, whole, "split at {i}");
        }
        for i in (0..b.len()).step_by(7) {
            for j in (i..b.len()).step_by(13) {
                let got = run(shape, framing, drop, CAP, &[&b[..i], &b[i..j], &b[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(run(shape, framing, drop, CAP, &bytes), whole, "byte by byte");
        (String::from_utf8(whole.0).unwrap(), whole.1)
    }

    fn usage(input: Option<u64>, output: Option<u64>, reasons: &[&str], model: Option<&str>) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            finish_reasons: reasons.iter().map(|s| s.to_string()).collect(),
            response_model: model.map(str::to_owned),
        }
    }

    const VLLM_CHAT_STREAM: &str = concat!(
        "data: {\"id\":\"chatcmpl-b2f1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-b2f1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüße ✓ \\\"usage\\\": {\\\"prompt_tokens\\\": 999} \\\"finish_reason\\\":\\\"x\\\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-b2f1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" 日本\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-b2f1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null}]}\n\n",
    );
    const VLLM_USAGE_EVENT: &str = "data: {\"id\":\"chatcmpl-b2f1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":19,\"completion_tokens\":7}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn vllm_chat_stream_pass_through() {
        let body = format!("{VLLM_CHAT_STREAM}{VLLM_USAGE_EVENT}{DONE}");
        let (_, u) = check(UsageShape::OpenAi, Framing::Sse, false, &body);
        assert_eq!(u, usage(Some(12), Some(7), &["stop"], Some("meta-llama/Llama-3.1-8B-Instruct")));
    }

    #[test]
    fn vllm_chat_stream_drops_injected_usage_chunk() {
        let body = format!("{VLLM_CHAT_STREAM}{VLLM_USAGE_EVENT}{DONE}");
        let (out, u) = check(UsageShape::OpenAi, Framing::Sse, true, &body);
        assert_eq!(out, format!("{VLLM_CHAT_STREAM}{DONE}"));
        assert_eq!(u, usage(Some(12), Some(7), &["stop"], Some("meta-llama/Llama-3.1-8B-Instruct")));
        // CRLF framing, `event:`/`id:` lines, comments, `data:` without a space, no trailing blank line.
        let crlf = concat!(
            ": keep-alive\r\n\r\n",
            "event: message\r\nid: 1\r\ndata:{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\r\n\r\n",
            "data:{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\r\n\r\n",
        );
        let usage_ev = "event: message\r\ndata:{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":16,\"total_tokens\":19}}\r\n\r\n";
        let body = format!("{crlf}{usage_ev}data: [DONE]");
        let (out, u) = check(UsageShape::OpenAi, Framing::Sse, true, &body);
        assert_eq!(out, format!("{crlf}data: [DONE]"));
        assert_eq!(u, usage(Some(3), Some(16), &["length"], Some("gpt-4o-mini")));
        let (out, _) = check(UsageShape::OpenAi, Framing::Sse, false, &body);
        assert_eq!(out, body);
        // A usage-only event at the very end without its blank line is still dropped.
        let body = format!("{VLLM_CHAT_STREAM}{}", VLLM_USAGE_EVENT.trim_end());
        let (out, u) = check(UsageShape::OpenAi, Framing::Sse, true, &body);
        assert_eq!(out, VLLM_CHAT_STREAM);
        assert_eq!(u.input_tokens, Some(12));
    }

    #[test]
    fn vllm_continuous_usage_last_wins_and_is_kept() {
        let body = concat!(
            "data: {\"id\":\"x\",\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":5,\"total_tokens\":6,\"completion_tokens\":1}}\n\n",
            "data: {\"id\":\"x\",\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"total_tokens\":7,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
        );
        let (out, u) = check(UsageShape::OpenAi, Framing::Sse, true, body);
        assert_eq!(out, body, "chunks with choices are never dropped");
        assert_eq!(u, usage(Some(5), Some(2), &["length"], Some("qwen")));
    }

    #[test]
    fn openai_chat_completion_body() {
        let body = r#"{"id":"chatcmpl-123","object":"chat.completion","created":1677652288,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"message":{"role":"assistant","content":"\n\nHello \"usage\": there","refusal":null},"logprobs":null,"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"completion_tokens_details":{"reasoning_tokens":0}}}"#;
        let (_, u) = check(UsageShape::OpenAi, Framing::None, false, body);
        assert_eq!(u, usage(Some(9), Some(12), &["stop", "length"], Some("gpt-4o-2024-08-06")));
        let emb = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093,0.0158]}],"model":"BAAI/bge-m3","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        let (_, u) = check(UsageShape::OpenAi, Framing::None, false, emb);
        assert_eq!(u, usage(Some(8), None, &[], Some("BAAI/bge-m3")));
        let rerank = r#"{"id":"rerank-1","model":"BAAI/bge-reranker-v2-m3","usage":{"total_tokens":56},"results":[{"index":1,"document":{"text":"x"},"relevance_score":0.99}]}"#;
        let (_, u) = check(UsageShape::OpenAi, Framing::None, false, rerank);
        assert_eq!(u, usage(Some(56), None, &[], Some("BAAI/bge-reranker-v2-m3")));
    }

    #[test]
    fn responses_api_stream_and_body() {
        let body = concat!(
            "event: response.created\n",
            "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c9\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null}}\n\n",
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
            "event: response.completed\n",
            "data: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_67c9\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[{\"type\":\"message\",\"id\":\"msg_67c9\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":37,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":11,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":48}}}\n\n",
        );
        let (_, u) = check(UsageShape::OpenAi, Framing::Sse, false, body);
        assert_eq!(u, usage(Some(37), Some(11), &["completed"], Some("gpt-4.1-2025-04-14")));
        let (out, _) = check(UsageShape::OpenAi, Framing::Sse, true, body);
        assert_eq!(out, body, "responses events are never dropped");
        let whole = r#"{"id":"resp_1","object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-4.1","output":[],"usage":{"input_tokens":10,"output_tokens":16,"total_tokens":26}}"#;
        let (_, u) = check(UsageShape::OpenAi, Framing::None, false, whole);
        assert_eq!(u, usage(Some(10), Some(16), &["max_output_tokens"], Some("gpt-4.1")));
    }

    const OLLAMA_CHAT_STREAM: &str = concat!(
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-09-12T21:17:29.110811Z\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-09-12T21:17:29.2Z\",\"message\":{\"role\":\"assistant\",\"content\":\" sky \\\"done\\\": true, \\\"eval_count\\\": 1 ☁\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-09-12T21:17:33.9Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\"eval_count\":282,\"eval_duration\":4535599000}\n",
    );

    #[test]
    fn ollama_chat_ndjson_and_body() {
        let (_, u) = check(UsageShape::Ollama, Framing::Ndjson, false, OLLAMA_CHAT_STREAM);
        assert_eq!(u, usage(Some(26), Some(282), &["stop"], Some("llama3.2")));
        // Drop flag is meaningless for NDJSON: output stays identical.
        let (out, _) = check(UsageShape::Ollama, Framing::Ndjson, true, OLLAMA_CHAT_STREAM);
        assert_eq!(out, OLLAMA_CHAT_STREAM);
        // Last line without its newline.
        let (_, u) = check(UsageShape::Ollama, Framing::Ndjson, false, OLLAMA_CHAT_STREAM.trim_end());
        assert_eq!(u.output_tokens, Some(282));
        let body = r#"{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant","content":"Hello! How are you today?"},"done_reason":"stop","done":true,"total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}"#;
        let (_, u) = check(UsageShape::Ollama, Framing::None, false, body);
        assert_eq!(u, usage(Some(26), Some(298), &["stop"], Some("llama3.2")));
        let embed = r#"{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}"#;
        let (_, u) = check(UsageShape::Ollama, Framing::None, false, embed);
        assert_eq!(u, usage(Some(8), None, &[], Some("all-minilm")));
        // Streamed after all (stream flag misjudged): concatenated objects still parse.
        let (_, u) = check(UsageShape::Ollama, Framing::None, false, OLLAMA_CHAT_STREAM);
        assert_eq!(u.output_tokens, Some(282));
    }

    #[test]
    fn tgi_generate_and_stream() {
        let body = r#"{"generated_text":" Deep learning is a subset of machine learning","details":{"finish_reason":"length","generated_tokens":20,"seed":null,"prefill":[{"id":1,"text":"<s>","logprob":null},{"id":1724,"text":"What","logprob":-9.4},{"id":349,"text":" is","logprob":-1.2}],"tokens":[{"id":17150,"text":" Deep","logprob":-0.5,"special":false}]}}"#;
        let (_, u) = check(UsageShape::Tgi, Framing::None, false, body);
        assert_eq!(u, usage(Some(3), Some(20), &["length"], None));
        let no_prefill = r#"{"generated_text":"x","details":{"finish_reason":"eos_token","generated_tokens":4,"seed":null,"prefill":[],"tokens":[]}}"#;
        let (_, u) = check(UsageShape::Tgi, Framing::None, false, no_prefill);
        assert_eq!(u, usage(None, Some(4), &["eos_token"], None));
        let array = format!("[{no_prefill},{no_prefill}]");
        let (_, u) = check(UsageShape::Tgi, Framing::None, false, &array);
        assert_eq!(u, usage(None, Some(8), &["eos_token", "eos_token"], None));
        let stream = concat!(
            "data:{\"index\":1,\"token\":{\"id\":415,\"text\":\" The\",\"logprob\":-0.56,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
            "data:{\"index\":2,\"token\":{\"id\":4372,\"text\":\" answer \\\"details\\\":{}\",\"logprob\":-0.3,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
            "data:{\"index\":3,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":-0.1,\"special\":true},\"generated_text\":\"The answer\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":3,\"input_length\":7,\"seed\":null}}\n\n",
        );
        let (_, u) = check(UsageShape::Tgi, Framing::Sse, false, stream);
        assert_eq!(u, usage(Some(7), Some(3), &["eos_token"], None));
    }

    #[test]
    fn llamacpp_completion_stream_and_body() {
        let stream = concat!(
            "data: {\"index\":0,\"content\":\" Paris\",\"tokens\":[6342],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":1,\"tokens_evaluated\":9}\n\n",
            "data: {\"index\":0,\"content\":\" \\\"stop\\\": true\",\"tokens\":[13],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":2,\"tokens_evaluated\":9}\n\n",
            "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":\"qwen2.5-0.5b-instruct-q8_0.gguf\",\"tokens_predicted\":12,\"tokens_evaluated\":9,\"generation_settings\":{\"n_predict\":12,\"stop\":[],\"temperature\":0.8},\"prompt\":\"<|im_start|>user\\nCapital of France?\",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"limit\",\"stopping_word\":\"\",\"tokens_cached\":20,\"timings\":{\"prompt_n\":3,\"prompt_ms\":30.2,\"predicted_n\":12,\"predicted_ms\":180.0}}\n\n",
        );
        let (_, u) = check(UsageShape::LlamaCpp, Framing::Sse, false, stream);
        assert_eq!(u, usage(Some(9), Some(12), &["limit"], Some("qwen2.5-0.5b-instruct-q8_0.gguf")));
        let old = r#"{"content":" Paris.","id_slot":0,"stop":true,"model":"/models/llama-2-7b.Q4_K_M.gguf","stopped_eos":true,"stopped_limit":false,"stopped_word":false,"stopping_word":"","timings":{"prompt_n":6,"predicted_n":3,"predicted_ms":40.1},"tokens_cached":8}"#;
        let (_, u) = check(UsageShape::LlamaCpp, Framing::None, false, old);
        assert_eq!(u, usage(Some(6), Some(3), &["eos"], Some("/models/llama-2-7b.Q4_K_M.gguf")));
    }

    #[test]
    fn triton_infer_passes_through_without_usage() {
        let body = r#"{"model_name":"resnet50","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,3],"data":[0.1,0.7,0.2]}]}"#;
        let (_, u) = check(UsageShape::None, Framing::None, false, body);
        assert_eq!(u, Usage::default());
        let gen_stream = "data: {\"model_name\":\"ensemble\",\"model_version\":\"1\",\"text_output\":\"Hi\"}\n\n";
        let (_, u) = check(UsageShape::None, Framing::Sse, false, gen_stream);
        assert_eq!(u, Usage::default());
    }

    #[test]
    fn pass_through_is_zero_copy() {
        let mut o = ResponseObserver::new(UsageShape::OpenAi, Framing::Sse, false, CAP);
        let chunk = Bytes::from(format!("{VLLM_CHAT_STREAM}data: {{\"partial"));
        let out = o.feed(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(out.len(), chunk.len());
        let mut o = ResponseObserver::new(UsageShape::Ollama, Framing::None, false, CAP);
        let chunk = Bytes::from_static(b"{\"model\":\"m\"");
        assert_eq!(o.feed(chunk.clone()).as_ptr(), chunk.as_ptr());
        // Dropping mode forwards whole kept events from the chunk without copying.
        let mut o = ResponseObserver::new(UsageShape::OpenAi, Framing::Sse, true, CAP);
        let chunk = Bytes::from(format!("{VLLM_CHAT_STREAM}data: {{\"partial"));
        let out = o.feed(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(&out[..], VLLM_CHAT_STREAM.as_bytes());
        assert_eq!(&o.finish()[..], b"data: {\"partial");
    }

    #[test]
    fn caps() {
        // Non-streamed body over the cap: forwarded, not parsed.
        let body = r#"{"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let (out, u) = run(UsageShape::OpenAi, Framing::None, false, 16, &[body.as_bytes()]);
        assert_eq!(out, body.as_bytes());
        assert_eq!(u, Usage::default());
        let (_, u) = run(UsageShape::OpenAi, Framing::None, false, body.len(), &[body.as_bytes()]);
        assert_eq!(u.output_tokens, Some(2));
        // A line over the cap is skipped; the next line still parses.
        let long = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}},\"finish_reason\":\"stop\"}}]}}\n\n{VLLM_USAGE_EVENT}",
            "x".repeat(300)
        );
        let parts: Vec<&[u8]> = long.as_bytes().chunks(10).collect();
        let (out, u) = run(UsageShape::OpenAi, Framing::Sse, false, 256, &parts);
        assert_eq!(out, long.as_bytes());
        assert_eq!(u.finish_reasons, Vec::<String>::new());
        assert_eq!(u.output_tokens, Some(7));
        // Dropping mode: an oversized event is forwarded and dropping stops (nothing is lost).
        let (out, u) = run(UsageShape::OpenAi, Framing::Sse, true, 256, &parts);
        assert_eq!(out, long.as_bytes());
        assert_eq!(u.output_tokens, Some(7));
        // ...but with room, the same stream drops the usage chunk.
        let (out, _) = run(UsageShape::OpenAi, Framing::Sse, true, 1024, &parts);
        assert_eq!(out, long.as_bytes()[..long.len() - VLLM_USAGE_EVENT.len()].to_vec());
    }

    #[test]
    fn marker_scan() {
        assert!(key_value_is(br#"{"usage": {"a":1}}"#, b"\"usage\"", false));
        assert!(!key_value_is(br#"{"usage" : null}"#, b"\"usage\"", false));
        assert!(!key_value_is(br#"{"x":"usage"}"#, b"\"usage\"", false));
        assert!(!key_value_is(br#"{"c":"\"usage\": 1"}"#, b"\"usage\"", false));
        assert!(key_value_is(br#"{"done":true}"#, b"\"done\"", true));
        assert!(!key_value_is(br#"{"done":false}"#, b"\"done\"", true));
        assert!(!key_value_is(br#"{"done":"#, b"\"done\"", false));
    }
}
