//! Streamed responses: frames stay valid, held text is released in the right place, frames
//! without text pass in order.

use masking::{Masker, Mode, StreamMasker};
use protocols::Framing;
use serde_json::{Value, json as j};

use super::{AWS, EMAIL, GITHUB, PEM, assert_no_value, json, masker, s};

/// Runs `chunks` through a stream masker; returns (caller, record).
pub fn run(sm: &mut StreamMasker, chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let (mut caller, mut record) = (Vec::new(), Vec::new());
    for c in chunks {
        let out = sm.push(c).unwrap();
        caller.extend_from_slice(&out.caller);
        record.extend_from_slice(&out.record);
    }
    let out = sm.finish().unwrap();
    caller.extend_from_slice(&out.caller);
    record.extend_from_slice(&out.record);
    (caller, record)
}

/// SSE text of these events (each a JSON value, or a raw data string such as `[DONE]`).
pub fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| match e {
            Value::String(raw) => format!("data: {raw}\n\n"),
            e => format!("data: {e}\n\n"),
        })
        .collect()
}

/// The data of each SSE event in `out` (multi-line data joined), checking the framing.
pub fn sse_data(out: &[u8]) -> Vec<String> {
    let text = s(out);
    assert!(text.is_empty() || text.ends_with("\n\n"), "unterminated SSE: {text:?}");
    text.split_terminator("\n\n")
        .map(|ev| {
            ev.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// The concatenated `choices[i].delta.content` of an SSE chat stream, per choice index.
pub fn chat_text(out: &[u8], choice: u64) -> String {
    let mut text = String::new();
    for d in sse_data(out) {
        if d == "[DONE]" || d.is_empty() {
            continue;
        }
        let v = json(d.as_bytes());
        for c in v["choices"].as_array().into_iter().flatten() {
            if c["index"] == choice
                && let Some(t) = c["delta"]["content"].as_str()
            {
                text.push_str(t);
            }
        }
    }
    text
}

fn delta(i: u64, content: &str) -> Value {
    j!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": i, "delta": {"content": content}, "finish_reason": null}]})
}

fn finish(i: u64) -> Value {
    j!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
}

#[test]
fn openai_chat_stream() {
    let role = j!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
    let usage = j!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}});
    let input = sse(&[
        role.clone(),
        delta(0, "Mail zq."),
        delta(0, "k9x@exa"),
        delta(0, "mple.com now"),
        delta(0, ", key AKIAZ7VQ3X4"),
        delta(0, "LRTM2PQ5N"),
        finish(0),
        usage.clone(),
        j!("[DONE]"),
    ]);
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (caller, record) = run(&mut sm, &[input.as_bytes()]);
    assert_eq!(caller, record);
    assert_no_value(&record);
    assert_eq!(chat_text(&record, 0), "Mail [EMAIL] now, key [SECRET_AWS_ACCESS_KEY]");
    let data = sse_data(&record);
    // Frames in order: the role chunk first, the finish chunk, usage and [DONE] last, each intact.
    assert_eq!(json(data[0].as_bytes())["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(data[data.len() - 1], "[DONE]");
    assert_eq!(json(data[data.len() - 2].as_bytes()), usage);
    assert_eq!(json(data[data.len() - 3].as_bytes()), finish(0));
    // The key, held at the end of its last delta, went out in a synthetic frame before the finish.
    let synthetic = json(data[data.len() - 4].as_bytes());
    assert_eq!(synthetic, delta(0, "[SECRET_AWS_ACCESS_KEY]"));
    let counts = sm.counts();
    assert_eq!(counts.response["EMAIL"].masked, 1);
    assert_eq!(counts.response["SECRET_AWS_ACCESS_KEY"].masked, 1);
}

#[test]
fn choices_are_separate_texts() {
    // Two choices interleaved: a value split in one must not mix with the other's text.
    let input = sse(&[
        delta(0, "a zq.k9x"),
        delta(1, "b "),
        delta(0, "@example.com x"),
        delta(1, "AKIAZ7VQ3X4LRTM2PQ5N y"),
        finish(1),
        delta(0, " tail"),
        finish(0),
        j!("[DONE]"),
    ]);
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (_, record) = run(&mut sm, &[input.as_bytes()]);
    assert_no_value(&record);
    assert_eq!(chat_text(&record, 0), "a [EMAIL] x tail");
    assert_eq!(chat_text(&record, 1), "b [SECRET_AWS_ACCESS_KEY] y");
}

#[test]
fn tool_call_arguments_stream() {
    let tc = |args: &str| j!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args}}]}, "finish_reason": null}]});
    let first = j!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "send", "arguments": ""}}]}}]});
    let input = sse(&[
        first,
        tc("{\"to\": \"zq.k9"),
        tc("x@example.com\", \"k\": \"ghp_R8fK2mQ9xV4tL7wZ"),
        tc("1nB6cJ3hY5pD0sG2aE8uW\"}"),
        j!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        j!("[DONE]"),
    ]);
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (_, record) = run(&mut sm, &[input.as_bytes()]);
    assert_no_value(&record);
    let mut args = String::new();
    for d in sse_data(&record) {
        if d == "[DONE]" {
            continue;
        }
        let v = json(d.as_bytes());
        if let Some(a) = v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str() {
            args.push_str(a);
        }
    }
    assert_eq!(args, "{\"to\": \"[EMAIL]\", \"k\": \"[SECRET_GITHUB_TOKEN]\"}");
}

#[test]
fn tool_call_arguments_that_are_not_json_stream_as_text() {
    let tc = |args: &str| j!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args}}]}, "finish_reason": null}]});
    // Valid at first (`{"to": "x"`), then not JSON: the rest is masked with the text hold-back.
    let input = sse(&[
        tc("{\"to\": \"x\", oops zq.k9"),
        tc("x@example.com and 4111 1111"),
        tc(" 1111 1111 end"),
        j!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ]);
    let bytes = input.as_bytes();
    for size in [1, 7, bytes.len()] {
        let mut sm = masker(Mode::Redact).stream(Framing::Sse);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        let (_, record) = run(&mut sm, &chunks);
        assert_no_value(&record);
        let mut args = String::new();
        for d in sse_data(&record) {
            if let Some(a) =
                json(d.as_bytes())["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            {
                args.push_str(a);
            }
        }
        // Outside the document's strings, a replacement is a string of its own.
        assert_eq!(args, "{\"to\": \"x\", oops \"[EMAIL]\" and \"[CREDIT_CARD]\" end", "chunks of {size}");
    }
}

#[test]
fn ollama_ndjson() {
    let line = |c: &str, done: bool| {
        j!({"model": "llama3", "created_at": "t", "message": {"role": "assistant", "content": c}, "done": done})
            .to_string()
            + "\n"
    };
    let input = [line("write to zq", false), line(".k9x@example", false), line(".com", false), line("", true)].concat();
    let mut sm = masker(Mode::Redact).stream(Framing::Ndjson);
    let (_, record) = run(&mut sm, &[input.as_bytes()]);
    assert_no_value(&record);
    let lines: Vec<Value> = s(&record).lines().map(|l| json(l.as_bytes())).collect();
    assert_eq!(lines.len(), 4, "one line out per line in");
    let text: String = lines.iter().map(|v| v["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "write to [EMAIL]");
    // The held address went out in the final (done) line, which carries a content field.
    assert_eq!(lines[3]["message"]["content"], "[EMAIL]");
    assert_eq!(lines[3]["done"], true);
    // Generate: `response` fields.
    let gen_line = |r: &str, done: bool| j!({"model": "m", "response": r, "done": done}).to_string() + "\n";
    let input = [gen_line("key AKIAZ7VQ", false), gen_line("3X4LRTM2PQ5N", false), gen_line("", true)].concat();
    let (_, record) = run(&mut masker(Mode::Redact).stream(Framing::Ndjson), &[input.as_bytes()]);
    let text: String =
        s(&record).lines().map(|l| json(l.as_bytes())["response"].as_str().unwrap().to_owned()).collect();
    assert_eq!(text, "key [SECRET_AWS_ACCESS_KEY]");
}

#[test]
fn tgi_stream() {
    let tok = |t: &str, last: Option<&str>| j!({"index": 1, "token": {"id": 5, "text": t, "logprob": -0.5, "special": false}, "generated_text": last, "details": null});
    let input = sse(&[tok("mail ", None), tok("zq.k9x@", None), tok("example.com", Some(&format!("mail {EMAIL}")))]);
    let (_, record) = run(&mut masker(Mode::Redact).stream(Framing::Sse), &[input.as_bytes()]);
    assert_no_value(&record);
    let events: Vec<Value> = sse_data(&record).iter().map(|d| json(d.as_bytes())).collect();
    let text: String = events.iter().map(|e| e["token"]["text"].as_str().unwrap()).collect();
    assert_eq!(text, "mail [EMAIL]");
    assert_eq!(events[2]["generated_text"], "mail [EMAIL]");
}

#[test]
fn tokenize_stream_restores_split_placeholders() {
    let mut m = masker(Mode::Tokenize);
    let req = m
        .request(format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{EMAIL} and {AWS}\"}}]}}").as_bytes())
        .unwrap();
    assert_eq!(s(&req), r#"{"messages":[{"role":"user","content":"<EMAIL_1> and <SECRET_AWS_ACCESS_KEY_1>"}]}"#);
    let input = sse(&[
        delta(0, "To <EMA"),
        delta(0, "IL_1"),
        delta(0, "> with <SECRET_AWS_ACCESS_KEY_"),
        delta(0, "1>, cc new@example.net"),
        finish(0),
        j!("[DONE]"),
    ]);
    let mut sm = m.stream(Framing::Sse);
    let (caller, record) = run(&mut sm, &[input.as_bytes()]);
    assert_eq!(chat_text(&caller, 0), format!("To {EMAIL} with {AWS}, cc <EMAIL_2>"));
    assert_eq!(chat_text(&record, 0), "To <EMAIL_1> with <SECRET_AWS_ACCESS_KEY_1>, cc <EMAIL_2>");
    assert_no_value(&record);
    // No fragment of a restorable placeholder reached the caller.
    for d in sse_data(&caller) {
        for frag in ["<EMAIL_1", "IL_1>", "<SECRET_AWS", "KEY_1>", "<EMA\"", "IL_\""] {
            assert!(!d.contains(frag), "{frag:?} in {d}");
        }
    }
    let m = sm.into_masker();
    assert_eq!(m.counts().request["EMAIL"].found, 1);
}

#[test]
fn raw_and_unframed_streams() {
    let mut sm = masker(Mode::Redact).stream(Framing::None);
    let (caller, record) = run(&mut sm, &[b"plain zq.k9x@ex", b"ample.com and ", PEM.as_bytes(), b" end"]);
    assert_eq!(s(&record), "plain [EMAIL] and [SECRET_PRIVATE_KEY] end");
    assert_eq!(caller, record);
    // An unframed JSON body is masked as one JSON body at the end.
    let mut sm = masker(Mode::Redact).stream(Framing::None);
    let body = format!("  {{\"choices\":[{{\"message\":{{\"content\":\"{GITHUB}\"}}}}]}}");
    let (mid, half) = body.as_bytes().split_at(20);
    let (_, record) = run(&mut sm, &[mid, half]);
    assert_eq!(json(&record)["choices"][0]["message"]["content"], "[SECRET_GITHUB_TOKEN]");
}

#[test]
fn sse_details() {
    // Comments, event and id lines, CRLF line ends, multi-line data, non-JSON data.
    let input = format!(
        ": keep-alive\r\n\r\nevent: message\r\nid: 7\r\ndata: {{\"choices\":[{{\"index\":0,\r\ndata: \"delta\":{{\"content\":\"hi {EMAIL} \"}}}}]}}\r\n\r\ndata: plain {AWS} text\n\ndata: [DONE]\n\n"
    );
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (_, record) = run(&mut sm, &[input.as_bytes()]);
    assert_no_value(&record);
    let text = s(&record);
    // The comment frame passes as it is; the JSON event keeps its field lines and CRLFs.
    assert!(text.starts_with(": keep-alive\r\n\r\nevent: message\r\nid: 7\r\ndata: {"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Held text went out in copies of its frames, before [DONE]; the texts read whole.
    let events: Vec<&str> = text.split("\n\n").flat_map(|e| e.split("\r\n\r\n")).collect();
    let mut chat = String::new();
    let mut plain = String::new();
    for ev in &events {
        let data: Vec<&str> = ev.lines().filter_map(|l| l.trim_end_matches('\r').strip_prefix("data: ")).collect();
        let data = data.join("\n");
        if data.starts_with('{') {
            assert!(ev.contains("event: message\r\nid: 7\r\n"), "{ev:?}");
            chat.push_str(json(data.as_bytes())["choices"][0]["delta"]["content"].as_str().unwrap());
        } else if data != "[DONE]" {
            plain.push_str(&data);
        }
    }
    assert_eq!(chat, "hi [EMAIL] ");
    assert_eq!(plain, "plain [SECRET_AWS_ACCESS_KEY] text");
}

#[test]
fn sse_lines_that_are_not_data_are_masked_too() {
    // An error body where events were expected, and a comment: masked as text.
    let input = format!("{{\"error\": {{\"message\": \"bad prompt: {EMAIL}\"}}}}\n: note {AWS}\n");
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (caller, record) = run(&mut sm, &[input.as_bytes()]);
    assert_eq!(s(&record), "{\"error\": {\"message\": \"bad prompt: [EMAIL]\"}}\n: note [SECRET_AWS_ACCESS_KEY]\n");
    assert_eq!(caller, record);
    assert_eq!(sm.counts().response["EMAIL"].masked, 1);
}

#[test]
fn responses_api_stream() {
    let ev = |kind: &str, v: Value| format!("event: {kind}\ndata: {v}\n\n");
    let delta = |d: &str| j!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d});
    let full = format!("mail {EMAIL}");
    let input = [
        ev("response.output_text.delta", delta("mail zq.k9")),
        ev("response.output_text.delta", delta("x@example.com")),
        ev("response.output_text.done", j!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": full})),
        ev("response.completed", j!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": full}]}]}})),
    ]
    .concat();
    let (_, record) = run(&mut masker(Mode::Redact).stream(Framing::Sse), &[input.as_bytes()]);
    assert_no_value(&record);
    let text = s(&record);
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.lines().next().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "event: response.output_text.delta",
            "event: response.output_text.delta",
            "event: response.output_text.delta",
            "event: response.output_text.done",
            "event: response.completed"
        ]
    );
    let deltas: String = events[..3]
        .iter()
        .map(|e| {
            json(e.lines().nth(1).unwrap().strip_prefix("data: ").unwrap().as_bytes())["delta"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(deltas, "mail [EMAIL]");
    let done = json(events[3].lines().nth(1).unwrap().strip_prefix("data: ").unwrap().as_bytes());
    assert_eq!(done["text"], "mail [EMAIL]");
    let completed = json(events[4].lines().nth(1).unwrap().strip_prefix("data: ").unwrap().as_bytes());
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], "mail [EMAIL]");
    assert_eq!(completed["response"]["id"], "resp_1");
}

#[test]
fn maskers_move_across_threads() {
    fn send<T: Send + 'static>() {}
    send::<Masker>();
    send::<StreamMasker>();
}

#[test]
fn bad_frames_fail_closed() {
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    assert!(sm.push(format!("data: {{\"choices\": [{EMAIL}\n\n").as_bytes()).is_err());
    assert!(sm.push(b"data: {}\n\n").is_err(), "a failed stream stays failed");
    let mut sm = masker(Mode::Redact).stream(Framing::Ndjson);
    assert!(sm.push(b"not json\n").is_err());
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    sm.finish().unwrap();
    assert!(sm.push(b"data: {}\n\n").is_err());
}

#[test]
fn inactive_plan_passes_through() {
    let p = masking::Plan { request: false, response: false, recording: false, ..super::plan(Mode::Redact) };
    let mut sm = Masker::new(p, super::key()).stream(Framing::Sse);
    let input = sse(&[delta(0, EMAIL)]);
    let (caller, record) = run(&mut sm, &[input.as_bytes()]);
    assert_eq!(s(&caller), input);
    assert_eq!(s(&record), input);
}

/// Streams tool-call `args` in these pieces (one SSE event each); returns the record's
/// arguments text and the response counts.
fn stream_args(pieces: &[&str]) -> (String, std::collections::BTreeMap<String, masking::Count>) {
    let mut events = vec![j!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]})];
    for p in pieces {
        events.push(
            j!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}}]}),
        );
    }
    events.push(j!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
    events.push(j!("[DONE]"));
    let input = sse(&events);
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (_, record) = run(&mut sm, &[input.as_bytes()]);
    let mut args = String::new();
    for d in sse_data(&record) {
        if d != "[DONE]"
            && let Some(a) =
                json(d.as_bytes())["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
        {
            args.push_str(a);
        }
    }
    (args, sm.counts().response)
}

/// Whole tool-call arguments masked in a whole response: the record's arguments and counts.
fn whole_args(args: &str) -> (String, std::collections::BTreeMap<String, masking::Count>) {
    let whole = j!({"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": args}}]}}]});
    let mut m = masker(Mode::Redact);
    let out = m.response(whole.to_string().as_bytes()).unwrap();
    let a = json(&out.record)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap()
        .to_owned();
    (a, m.counts().response)
}

#[test]
fn streamed_tool_call_arguments_equal_whole_ones_however_split() {
    let long =
        format!(r#"{{"text": "{}", "card": 4111111111111111, "password": "Xq7vR2mK9pL4wZ8n"}}"#, "a ".repeat(40_000));
    let cases = [
        // Not JSON: masked as text, whole and streamed.
        r#"{"card": 4111 1111 1111 1111}"#,
        r#"{"phone": 415 555 0100}"#,
        r#"{"password": "Xq7vR2mK9pL4wZ8n"}{"n": 4111111111111111}"#,
        r#"{"n": 4111111111111111} trailing"#,
        // A value known by its key.
        r#"{"password": "Xq7vR2mK9pL4wZ8n"}"#,
        r#"{"name": "john smith", "to": "Jane Doe <jane.doe@example.com>"}"#,
        r#"{"s": "\ud83d\ude00 zq.k9x@example.com", "t": "\ud800"}"#,
        long.as_str(),
    ];
    for a in cases {
        let want = whole_args(a);
        assert_ne!(want.0, a, "nothing masked in {a:.80}");
        let chars: Vec<String> = a.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        let kilo: Vec<&str> = a.as_bytes().chunks(1000).map(|c| std::str::from_utf8(c).unwrap()).collect();
        for pieces in [vec![a], chars, kilo] {
            assert_eq!(stream_args(&pieces), want, "{a:.80} in {} pieces", pieces.len());
        }
    }
    // Masked JSON arguments stay JSON.
    serde_json::from_str::<Value>(&whole_args(&long).0).unwrap();
    assert_eq!(whole_args(r#"{"password": "Xq7vR2mK9pL4wZ8n"}"#).0, r#"{"password": "[SECRET_GENERIC]"}"#);
}

#[test]
fn responses_api_argument_deltas_are_tool_call_arguments() {
    let ev = |kind: &str, v: Value| format!("event: {kind}\ndata: {v}\n\n");
    let args = r#"{"card": 4111111111111111}"#;
    let d = |p: &str| j!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": p});
    let done =
        j!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0, "arguments": args});
    let input = [
        ev("response.function_call_arguments.delta", d(&args[..12])),
        ev("response.function_call_arguments.delta", d(&args[12..])),
        ev("response.function_call_arguments.done", done),
    ]
    .concat();
    let mut sm = masker(Mode::Redact).stream(Framing::Sse);
    let (_, record) = run(&mut sm, &[input.as_bytes()]);
    let mcp = input.replace("function_call_arguments", "mcp_call_arguments");
    let (_, mcp_record) = run(&mut masker(Mode::Redact).stream(Framing::Sse), &[mcp.as_bytes()]);
    assert_eq!(s(&mcp_record), s(&record).replace("function_call_arguments", "mcp_call_arguments"));
    let (mut deltas, mut whole) = (String::new(), String::new());
    for d in sse_data(&record) {
        let v = json(d.as_bytes());
        if let Some(p) = v["delta"].as_str() {
            deltas.push_str(p);
        }
        if let Some(a) = v["arguments"].as_str() {
            whole.push_str(a);
        }
    }
    assert_eq!(deltas, r#"{"card": "[CREDIT_CARD]"}"#);
    assert_eq!(whole, deltas);
}

#[test]
fn tool_calls_keep_their_frames() {
    // A whole tool call in one chunk (header and arguments together) stays one frame.
    let header = j!({"id":"c","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[
        {"index":0,"id":"call_1","type":"function","function":{"name":"send","arguments":"{\"to\": \"zq.k9x@example.com\"}"}}]},"finish_reason":null}]});
    let input =
        sse(&[header, j!({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}), j!("[DONE]")]);
    let (_, record) = run(&mut masker(Mode::Redact).stream(Framing::Sse), &[input.as_bytes()]);
    let frames = sse_data(&record);
    assert_eq!(frames.len(), 3, "{}", s(&record));
    let call = &json(frames[0].as_bytes())["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!((call["id"].as_str(), call["function"]["name"].as_str()), (Some("call_1"), Some("send")));
    assert_eq!(call["function"]["arguments"], "{\"to\": \"[EMAIL]\"}");
    // Parallel calls sent one per chunk at the same position keep their own arguments.
    let call = |id: &str, a: &str| {
        j!({"choices":[{"index":0,"delta":{"tool_calls":[
        {"id":id,"type":"function","function":{"name":"f","arguments":a}}]}}]})
    };
    let input = sse(&[call("call_1", "{\"x\": 1}"), call("call_2", "{\"y\": 2}"), j!("[DONE]")]);
    let (_, record) = run(&mut masker(Mode::Redact).stream(Framing::Sse), &[input.as_bytes()]);
    let args: Vec<String> = sse_data(&record)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            json(d.as_bytes())["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(args, ["{\"x\": 1}", "{\"y\": 2}"]);
}

/// A masker; under tokenize the exchange's request first maps an email, a key and a card.
fn prepared(mode: Mode) -> Masker {
    let mut m = masker(mode);
    if mode == Mode::Tokenize {
        let req =
            j!({"messages": [{"role": "user", "content": format!("mail {EMAIL} key {PEM} card 4111 1111 1111 1111")}]});
        m.request(req.to_string().as_bytes()).unwrap();
    }
    m
}

/// Tool-call arguments masked in a whole answer and streamed in `parts`: (caller, record) each.
fn args_whole_and_streamed(mode: Mode, args: &str, parts: &[&str]) -> ((String, String), (String, String)) {
    let resp = j!({"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": args}}]}}]});
    let out = prepared(mode).response(resp.to_string().as_bytes()).unwrap();
    let get = |b: &[u8]| {
        json(b)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap().to_owned()
    };
    let whole = (get(&out.caller), get(&out.record));
    let tc = |a: &str| j!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}, "finish_reason": null}]});
    let mut ev: Vec<Value> = parts.iter().map(|p| tc(p)).collect();
    ev.push(j!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}));
    ev.push(j!("[DONE]"));
    let input = sse(&ev);
    let (caller, record) = run(&mut prepared(mode).stream(Framing::Sse), &[input.as_bytes()]);
    let get = |b: &[u8]| {
        let mut out = String::new();
        for d in sse_data(b).iter().filter(|d| *d != "[DONE]") {
            if let Some(a) =
                json(d.as_bytes())["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            {
                out.push_str(a);
            }
        }
        out
    };
    (whole, (get(&caller), get(&record)))
}

#[test]
fn tool_call_arguments_stay_json_and_equal_whole_at_every_split() {
    let pem = serde_json::to_string(PEM).unwrap();
    let cases = [
        r#"{"card": -4111111111111111}"#.to_owned(),
        format!(r#"{{"note":"hi\n{EMAIL}\t\u00e9{EMAIL}\\{EMAIL}"}}"#),
        format!(r#"{{"pem":{pem},"n":4111111111111111}}"#),
        r#"{"to": "<EMAIL_1>", "key": "<SECRET_PRIVATE_KEY_1>", "card": "<CREDIT_CARD_1>", "x": ["<EMAIL_1>"]}"#
            .to_owned(),
        format!(r#"["{EMAIL}", 4111111111111111, {{"password": "Xk9mP2vL7qR4wZ8sT3"}}, {{"name": "john smith"}}]"#),
        // Arguments that are a JSON scalar.
        "4111111111111111".to_owned(),
        r#""<SECRET_PRIVATE_KEY_1>""#.to_owned(),
    ];
    for args in &cases {
        let valid = serde_json::from_str::<Value>(args).is_ok();
        assert!(valid, "{args}");
        for mode in [Mode::Redact, Mode::Tokenize] {
            let (whole, _) = args_whole_and_streamed(mode, args, &[args]);
            for out in [&whole.0, &whole.1] {
                assert!(serde_json::from_str::<Value>(out).is_ok(), "{mode:?}: {args} -> invalid JSON {out}");
            }
            assert!(!whole.1.contains("4111111111111111") && !whole.1.contains(EMAIL), "{mode:?}: {}", whole.1);
            let splits = args.char_indices().skip(1).map(|(i, _)| vec![&args[..i], &args[i..]]);
            let ones: Vec<String> = args.chars().map(String::from).collect();
            let ones: Vec<&str> = ones.iter().map(String::as_str).collect();
            for parts in splits.chain([ones]) {
                let (w, streamed) = args_whole_and_streamed(mode, args, &parts);
                assert_eq!(streamed, w, "{mode:?} in {} parts: {args}", parts.len());
            }
        }
    }
}

#[test]
fn values_from_arguments_restore_unescaped() {
    // A value the caller sent inside tool-call arguments (JSON-escaped there) is the same value
    // as in plain text: one placeholder, restored as text in content and escaped in arguments.
    let mut m = masker(Mode::Tokenize);
    let args = j!({"key": PEM}).to_string();
    let req = j!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
        "function": {"name": "f", "arguments": args}}]}, {"role": "user", "content": "again"}]});
    m.request(req.to_string().as_bytes()).unwrap();
    let resp = j!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "<SECRET_PRIVATE_KEY_1>",
        "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{\"key\": \"<SECRET_PRIVATE_KEY_1>\"}"}}]}}]});
    let v = json(&m.response(resp.to_string().as_bytes()).unwrap().caller);
    let a = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap().to_owned();
    assert_eq!(v["choices"][0]["message"]["content"], PEM);
    assert_eq!(json(a.as_bytes())["key"], PEM);
}

#[test]
fn name_fields_in_streamed_arguments_are_held_to_their_closing_quote() {
    for args in [
        r#"{"name": "mr smith"}"#,
        r#"{"name": "bob smith"}"#,
        r#"{"name": "john deere tractor model"}"#,
        r#"{"name": "dr. jane doe", "n": 1}"#,
    ] {
        let ones: Vec<String> = args.chars().map(String::from).collect();
        let ones: Vec<&str> = ones.iter().map(String::as_str).collect();
        let (whole, streamed) = args_whole_and_streamed(Mode::Redact, args, &ones);
        assert!(whole.1.contains("[PERSON]"), "{args}: {}", whole.1);
        assert_eq!(streamed, whole, "{args}");
    }
}
