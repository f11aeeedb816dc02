//! Whole bodies: each flavor's request and response shapes, the modes and the directions.

use masking::{Count, MaskError, Masker, Mode, Plan};
use serde_json::{Value, json as j};

use super::{AWS, EMAIL, GITHUB, JWT, PEM, VALUES, assert_no_value, json, key, masker, plan, s};

fn req(m: &mut Masker, v: &Value) -> Value {
    json(&m.request(v.to_string().as_bytes()).unwrap())
}

#[test]
fn openai_chat_request() {
    let body = j!({
        "model": "gpt-4o", "temperature": 0.2, "stream": true, "user": "u-1",
        "messages": [
            {"role": "system", "content": format!("Operator key {AWS}.")},
            {"role": "user", "content": [
                {"type": "text", "text": format!("Mail {EMAIL} please")},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AKIAZ7VQ3X4LRTM2PQ5N"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "send_mail", "arguments": format!("{{\"to\":\"{EMAIL}\",\"token\":\"{GITHUB}\"}}")}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": format!("sent with {JWT}")}
        ],
        "tools": [{"type": "function", "function": {"name": "send_mail", "parameters": {"type": "object"}}}]
    });
    let out = req(&mut masker(Mode::Redact), &body);
    let mut expected = body.clone();
    expected["messages"][0]["content"] = j!("Operator key [SECRET_AWS_ACCESS_KEY].");
    expected["messages"][1]["content"][0]["text"] = j!("Mail [EMAIL] please");
    expected["messages"][2]["tool_calls"][0]["function"]["arguments"] =
        j!("{\"to\":\"[EMAIL]\",\"token\":\"[SECRET_GITHUB_TOKEN]\"}");
    expected["messages"][3]["content"] = j!("sent with [SECRET_JWT]");
    // The image data is opaque: left as it is.
    assert_eq!(out, expected);
}

#[test]
fn untouched_bodies_are_byte_identical() {
    let body = b"{ \"model\" : \"m\",\n  \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\/ ok\"}], \"n\": 1.50e3 }";
    let mut m = masker(Mode::Redact);
    assert_eq!(&m.request(body).unwrap()[..], body);
    let out = m.response(body).unwrap();
    assert_eq!(&out.caller[..], body);
    assert_eq!(&out.record[..], body);
    // Only the changed string is re-encoded; the rest keeps its layout.
    let body = format!("{{ \"model\" : \"m\",\n \"prompt\" : \"a {EMAIL} \\u00e9\", \"x\":\"caf\\u00e9\" }}");
    let out = m.request(body.as_bytes()).unwrap();
    assert_eq!(s(&out), "{ \"model\" : \"m\",\n \"prompt\" : \"a [EMAIL] é\", \"x\":\"caf\\u00e9\" }");
}

#[test]
fn completions_and_embeddings() {
    let mut m = masker(Mode::Redact);
    let out = req(&mut m, &j!({"model": "m", "prompt": [format!("a {EMAIL}"), "b"], "suffix": AWS, "max_tokens": 3}));
    assert_eq!(
        out,
        j!({"model": "m", "prompt": ["a [EMAIL]", "b"], "suffix": "[SECRET_AWS_ACCESS_KEY]", "max_tokens": 3})
    );
    let out = req(&mut m, &j!({"model": "e", "input": [format!("x {EMAIL}"), "y"], "encoding_format": "float"}));
    assert_eq!(out["input"], j!(["x [EMAIL]", "y"]));
    // Token-id inputs are numbers: untouched.
    let body = br#"{"model":"e","input":[[1,2,3]]}"#;
    assert_eq!(&m.request(body).unwrap()[..], body);
    // Embedding responses: vectors and base64 vectors pass as they are.
    let resp = br#"{"object":"list","data":[{"object":"embedding","embedding":[0.1,-2e-3],"index":0},{"object":"embedding","embedding":"QUtJQVo3VlEzWDRMUlRNMlBRNU4AKIAZ7VQ3X4LRTM2PQ5N","index":1}],"model":"e","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
    let out = m.response(resp).unwrap();
    assert_eq!(&out.record[..], resp);
    assert_eq!(&out.caller[..], resp);
}

#[test]
fn openai_chat_response() {
    let body = j!({
        "id": "chatcmpl-AKIAZ7VQ3X4LRTM2PQ5N", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": {"content": [{"token": "zq", "logprob": -0.1, "bytes": [122, 113]}]},
            "message": {"role": "assistant", "content": format!("Write to {EMAIL}."),
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": format!("{{\"k\":\"{AWS}\"}}")}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    });
    let out = masker(Mode::Redact).response(body.to_string().as_bytes()).unwrap();
    assert_eq!(out.caller, out.record);
    let mut expected = body.clone();
    expected["choices"][0]["message"]["content"] = j!("Write to [EMAIL].");
    expected["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] =
        j!("{\"k\":\"[SECRET_AWS_ACCESS_KEY]\"}");
    expected["choices"][0]["logprobs"] = Value::Null;
    assert_eq!(json(&out.record), expected);
    // The id is structural: kept even though it looks like a key.
    assert!(s(&out.record).contains("chatcmpl-AKIAZ7VQ3X4LRTM2PQ5N"));
}

#[test]
fn ollama_chat_and_generate() {
    let mut m = masker(Mode::Redact);
    let out = req(
        &mut m,
        &j!({"model": "llama3", "messages": [{"role": "user", "content": format!("hi {EMAIL}"), "images": ["QUtJQQ=="]}], "options": {"temperature": 0}}),
    );
    assert_eq!(out["messages"][0]["content"], j!("hi [EMAIL]"));
    assert_eq!(out["messages"][0]["images"], j!(["QUtJQQ=="]));
    let out = req(
        &mut m,
        &j!({"model": "llama3", "prompt": format!("key {AWS}"), "system": format!("sys {EMAIL}"), "context": [1, 2]}),
    );
    assert_eq!(out["prompt"], j!("key [SECRET_AWS_ACCESS_KEY]"));
    assert_eq!(out["system"], j!("sys [EMAIL]"));
    assert_eq!(out["context"], j!([1, 2]), "request context is left alone");
    let resp = j!({"model": "llama3", "created_at": "2024-01-01T00:00:00Z", "message": {"role": "assistant", "content": format!("it is {EMAIL}")}, "done": true, "done_reason": "stop", "eval_count": 3});
    let out = m.response(resp.to_string().as_bytes()).unwrap();
    assert_eq!(json(&out.caller)["message"]["content"], j!("it is [EMAIL]"));
    let resp = j!({"model": "llama3", "response": format!("{GITHUB}"), "done": true, "context": [5, 6, 7]});
    let out = json(&m.response(resp.to_string().as_bytes()).unwrap().record);
    assert_eq!(out["response"], j!("[SECRET_GITHUB_TOKEN]"));
    assert_eq!(out["context"], j!([]), "response token ids are dropped");
}

#[test]
fn tgi_and_triton() {
    let mut m = masker(Mode::Redact);
    let out =
        req(&mut m, &j!({"inputs": format!("who is {EMAIL}?"), "parameters": {"max_new_tokens": 20, "stop": ["\n"]}}));
    assert_eq!(out, j!({"inputs": "who is [EMAIL]?", "parameters": {"max_new_tokens": 20, "stop": ["\n"]}}));
    let resp = j!([{"generated_text": format!("it is {EMAIL}"), "details": {"finish_reason": "length", "generated_tokens": 2, "tokens": [{"id": 1, "text": "zq", "logprob": -1.0}], "prefill": []}}]);
    let out = json(&m.response(resp.to_string().as_bytes()).unwrap().caller);
    assert_eq!(out[0]["generated_text"], j!("it is [EMAIL]"));
    assert_eq!(out[0]["details"]["tokens"], j!([]));
    assert_eq!(out[0]["details"]["generated_tokens"], j!(2));
    // Triton generate and KServe v2 infer.
    let out = req(&mut m, &j!({"text_input": format!("t {AWS}"), "parameters": {"stream": false, "temperature": 0.1}}));
    assert_eq!(out["text_input"], j!("t [SECRET_AWS_ACCESS_KEY]"));
    let resp = j!({"model_name": "ensemble", "model_version": "1", "text_output": format!("o {EMAIL}")});
    let out = json(&m.response(resp.to_string().as_bytes()).unwrap().caller);
    assert_eq!(out, j!({"model_name": "ensemble", "model_version": "1", "text_output": "o [EMAIL]"}));
    let out = req(
        &mut m,
        &j!({"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": [format!("d {EMAIL}")]}]}),
    );
    assert_eq!(out["inputs"][0]["data"], j!(["d [EMAIL]"]));
    assert_eq!(out["inputs"][0]["name"], j!("text_input"));
}

#[test]
fn escapes_inside_values() {
    let mut m = masker(Mode::Redact);
    // "@" written as \u0040, and a PEM key with \n escapes: both decoded before detection.
    let pem = PEM.replace('\n', "\\n");
    let body = format!(r#"{{"prompt":"a zq.k9x\u0040example.com b","input":"{pem}"}}"#);
    let out = req(&mut m, &serde_json::from_str(&body).unwrap());
    assert_eq!(out, j!({"prompt": "a [EMAIL] b", "input": "[SECRET_PRIVATE_KEY]"}));
    let out = m.request(body.as_bytes()).unwrap();
    assert_eq!(json(&out), j!({"prompt": "a [EMAIL] b", "input": "[SECRET_PRIVATE_KEY]"}));
}

#[test]
fn raw_text_bodies() {
    let mut m = masker(Mode::Redact);
    let body = format!("plain {EMAIL} and {AWS}\n");
    assert_eq!(s(&m.request(body.as_bytes()).unwrap()), "plain [EMAIL] and [SECRET_AWS_ACCESS_KEY]\n");
    let out = m.response(format!("said {EMAIL}").as_bytes()).unwrap();
    assert_eq!(s(&out.caller), "said [EMAIL]");
}

#[test]
fn invalid_json_fails_closed() {
    let mut m = masker(Mode::Redact);
    let bad = format!("{{\"prompt\": \"{EMAIL}\"");
    assert_eq!(m.request(bad.as_bytes()), Err(MaskError::NotJson("request")));
    assert_eq!(m.response(bad.as_bytes()).unwrap_err().to_string(), "the response body is not valid JSON");
    let deep = "[".repeat(500) + &"]".repeat(500);
    assert_eq!(m.request(deep.as_bytes()), Err(MaskError::TooDeep("request")));
}

#[test]
fn pseudonyms_are_keyed_and_stable() {
    let body = j!({"prompt": format!("{EMAIL} {EMAIL} other@example.org")});
    let out = req(&mut masker(Mode::Pseudonymize), &body);
    let text = out["prompt"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = text.split(' ').collect();
    assert_eq!(parts[0], parts[1]);
    assert_ne!(parts[0], parts[2]);
    // First 6 hex of HMAC-SHA256(key, "EMAIL" 0 value).
    let expected = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).unwrap();
        mac.update(b"EMAIL\0");
        mac.update(EMAIL.as_bytes());
        let d = mac.finalize().into_bytes();
        format!("<EMAIL_{:02x}{:02x}{:02x}>", d[0], d[1], d[2])
    };
    assert_eq!(parts[0], expected);
    // Stable across exchanges under one key; different under another.
    assert_eq!(req(&mut masker(Mode::Pseudonymize), &body), out);
    let mut other = Masker::new(plan(Mode::Pseudonymize), std::sync::Arc::new([8u8; 32]));
    assert_ne!(req(&mut other, &body), out);
}

#[test]
fn tokenize_round_trip() {
    let mut m = masker(Mode::Tokenize);
    let all: Vec<&str> = VALUES.iter().map(|(v, _)| *v).collect();
    let body = j!({"model": "m", "messages": [{"role": "user", "content": format!("{} | {} | {} | {} | {} | {}", all[0], all[1], all[2], all[3], all[4], all[0])}]});
    let out = m.request(body.to_string().as_bytes()).unwrap();
    assert_no_value(&out);
    let content = json(&out)["messages"][0]["content"].as_str().unwrap().to_owned();
    assert_eq!(
        content,
        "<EMAIL_1> | <SECRET_AWS_ACCESS_KEY_1> | <SECRET_GITHUB_TOKEN_1> | <SECRET_JWT_1> | <SECRET_PRIVATE_KEY_1> | <EMAIL_1>"
    );
    // The model answers with the placeholders, plus a value of its own.
    let answer = format!("Done: {content}; also new@example.net and <EMAIL_9> and <EMAIL_1");
    let resp = j!({"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]});
    let out = m.response(resp.to_string().as_bytes()).unwrap();
    let caller = json(&out.caller)["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let record = json(&out.record)["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let restored = format!(
        "Done: {} | {} | {} | {} | {} | {}; also <EMAIL_2> and <EMAIL_9> and <EMAIL_1",
        all[0], all[1], all[2], all[3], all[4], all[0]
    );
    assert_eq!(caller, restored);
    assert_eq!(record, format!("Done: {content}; also <EMAIL_2> and <EMAIL_9> and <EMAIL_1"));
    assert_no_value(&out.record);
    // A PEM key (with its newlines) is restored inside the JSON string, still valid JSON.
    assert!(s(&out.caller).contains("-----BEGIN RSA PRIVATE KEY-----\\nMII"));
}

#[test]
fn tokenize_in_another_exchange_restores_nothing() {
    let mut a = masker(Mode::Tokenize);
    a.request(format!("{{\"prompt\":\"{EMAIL}\"}}").as_bytes()).unwrap();
    let mut b = masker(Mode::Tokenize);
    let out = b.response(br#"{"response":"<EMAIL_1>"}"#).unwrap();
    assert_eq!(s(&out.caller), r#"{"response":"<EMAIL_1>"}"#);
}

#[test]
fn entity_filter_counts_unmasked_types() {
    let p = Plan { entities: vec!["SECRET_*".into()], ..plan(Mode::Redact) };
    let mut m = Masker::new(p, key());
    let out = req(&mut m, &j!({"prompt": format!("{EMAIL} {AWS} {AWS}")}));
    assert_eq!(out["prompt"], j!(format!("{EMAIL} [SECRET_AWS_ACCESS_KEY] [SECRET_AWS_ACCESS_KEY]")));
    m.response(format!("{{\"response\":\"{EMAIL}\"}}").as_bytes()).unwrap();
    let counts = m.counts();
    assert_eq!(counts.request["EMAIL"], Count { found: 1, masked: 0 });
    assert_eq!(counts.request["SECRET_AWS_ACCESS_KEY"], Count { found: 2, masked: 2 });
    assert_eq!(counts.response["EMAIL"], Count { found: 1, masked: 0 });
    assert_eq!(
        serde_json::to_value(&counts).unwrap(),
        j!({"request": {"EMAIL": {"found": 1, "masked": 0}, "SECRET_AWS_ACCESS_KEY": {"found": 2, "masked": 2}},
            "response": {"EMAIL": {"found": 1, "masked": 0}}})
    );
    let text = serde_json::to_string(&counts).unwrap();
    assert!(!text.contains(EMAIL) && !text.contains(AWS));
}

#[test]
fn directions() {
    let body = format!("{{\"prompt\":\"{EMAIL}\"}}");
    let resp = format!("{{\"response\":\"{AWS}\"}}");
    // Recording only: forwarded and returned as they are, recorded masked.
    let only_rec = Plan { request: false, response: false, recording: true, ..plan(Mode::Redact) };
    let mut m = Masker::new(only_rec, key());
    let out = m.request_parts(body.as_bytes()).unwrap();
    assert_eq!(s(&out.upstream), body);
    assert_eq!(s(&out.record), r#"{"prompt":"[EMAIL]"}"#);
    let out = m.response(resp.as_bytes()).unwrap();
    assert_eq!(s(&out.caller), resp);
    assert_eq!(s(&out.record), r#"{"response":"[SECRET_AWS_ACCESS_KEY]"}"#);
    assert_eq!(m.counts().request["EMAIL"], Count { found: 1, masked: 1 });
    // Request only: the response to the caller is raw, its recording masked.
    let req_only = Plan { request: true, response: false, recording: false, ..plan(Mode::Redact) };
    let mut m = Masker::new(req_only, key());
    assert_eq!(s(&m.request(body.as_bytes()).unwrap()), r#"{"prompt":"[EMAIL]"}"#);
    let out = m.response(resp.as_bytes()).unwrap();
    assert_eq!(s(&out.caller), resp);
    assert_eq!(s(&out.record), r#"{"response":"[SECRET_AWS_ACCESS_KEY]"}"#);
    // Nothing: everything passes, nothing is counted.
    let none = Plan { request: false, response: false, recording: false, ..plan(Mode::Redact) };
    let mut m = Masker::new(none, key());
    assert_eq!(s(&m.request(body.as_bytes()).unwrap()), body);
    assert!(m.counts().is_empty());
    // Tokenize with the response direction off: placeholders restored, new values kept.
    let tok = Plan { response: false, ..plan(Mode::Tokenize) };
    let mut m = Masker::new(tok, key());
    assert_eq!(s(&m.request(body.as_bytes()).unwrap()), r#"{"prompt":"<EMAIL_1>"}"#);
    let out = m.response(format!("{{\"response\":\"<EMAIL_1> {AWS}\"}}").as_bytes()).unwrap();
    assert_eq!(s(&out.caller), format!("{{\"response\":\"{EMAIL} {AWS}\"}}"));
    assert_eq!(s(&out.record), r#"{"response":"<EMAIL_1> <SECRET_AWS_ACCESS_KEY_1>"}"#);
}

#[test]
fn numbers_in_tool_call_arguments_are_masked_as_strings() {
    const CARD: u64 = 4_111_111_111_111_111;
    let args = format!(r#"{{"card": {CARD}, "qty": 3, "to": "{EMAIL}", "{EMAIL}": 12.5}}"#);
    let resp = j!({"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "pay", "arguments": args}}]}}]});
    let out = masker(Mode::Redact).response(resp.to_string().as_bytes()).unwrap();
    let record = json(&out.record)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap()
        .to_owned();
    // A masked number becomes a string; a key that is a value is masked like any value.
    assert_eq!(record, r#"{"card": "[CREDIT_CARD]", "qty": 3, "to": "[EMAIL]", "[EMAIL]": 12.5}"#);

    // Under tokenize, the caller gets the number back as a number.
    let mut m = masker(Mode::Tokenize);
    let request = j!({"messages": [{"role": "user", "content": format!("pay with {CARD}")}]});
    let sent = req(&mut m, &request);
    assert_eq!(sent["messages"][0]["content"], "pay with <CREDIT_CARD_1>");
    let out = m.response(resp.to_string().as_bytes()).unwrap();
    let args_of = |b: &[u8]| {
        let a = json(b)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap().to_owned();
        json(a.as_bytes())
    };
    assert_eq!(args_of(&out.record)["card"], "<CREDIT_CARD_1>");
    assert_eq!(args_of(&out.caller)["card"], CARD);
    // Outside tool-call arguments, numbers are parameters and pass untouched.
    let body = j!({"model": "m", "seed": CARD, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(masker(Mode::Redact).request(body.to_string().as_bytes()).unwrap(), body.to_string().as_bytes());
}

#[test]
fn tool_call_arguments_given_as_json_objects() {
    // Anthropic `tool_use.input` and Ollama `function.arguments` are objects, not strings: every
    // value in them is data (`user_id` and `name` are no structural fields there), found by its
    // key as in a string of arguments, and the arguments stay an object.
    let input = j!({"user_id": EMAIL, "name": "john smith", "card": 4_111_111_111_111_111_u64, "n": 3});
    let anthropic = j!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "send", "input": input}]});
    let out = masker(Mode::Redact).response(anthropic.to_string().as_bytes()).unwrap();
    let rec = json(&out.record);
    let block = &rec["content"][0];
    assert_eq!((block["id"].as_str(), block["name"].as_str()), (Some("toolu_1"), Some("send")));
    assert_eq!(block["input"], j!({"user_id": "[EMAIL]", "name": "[PERSON]", "card": "[CREDIT_CARD]", "n": 3}));
    let ollama = j!({"model": "llama3", "message": {"role": "assistant", "content": "",
        "tool_calls": [{"function": {"name": "send", "arguments": input}}]}, "done": true});
    let out = masker(Mode::Redact).response(ollama.to_string().as_bytes()).unwrap();
    let rec = json(&out.record);
    let call = &rec["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "send");
    assert_eq!(call["arguments"], j!({"user_id": "[EMAIL]", "name": "[PERSON]", "card": "[CREDIT_CARD]", "n": 3}));
    // Anthropic's server and MCP tools, and Bedrock's `toolUse` (no `type`), alike.
    for ty in ["server_tool_use", "mcp_tool_use"] {
        let resp = j!({"role": "assistant", "content": [{"type": ty, "id": "t1", "name": "send", "server_name": "s", "input": input}]});
        let rec = json(&masker(Mode::Redact).response(resp.to_string().as_bytes()).unwrap().record);
        assert_eq!(rec["content"][0]["input"]["name"], "[PERSON]", "{ty}");
        assert_eq!(rec["content"][0]["name"], "send", "{ty}");
    }
    let bedrock = j!({"output": {"message": {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "send", "input": input}}]}}});
    let rec = json(&masker(Mode::Redact).response(bedrock.to_string().as_bytes()).unwrap().record);
    assert_eq!(rec["output"]["message"]["content"][0]["toolUse"]["input"]["card"], "[CREDIT_CARD]");
    // The same in an NDJSON stream.
    let line = format!("{ollama}\n");
    let (_, record) =
        super::streams::run(&mut masker(Mode::Redact).stream(protocols::Framing::Ndjson), &[line.as_bytes()]);
    assert_eq!(json(s(&record).trim().as_bytes())["message"]["tool_calls"][0]["function"], *call);
}
