//! Unit tests of the JSON walker and its string codec.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::json::{self, Class, Doc, JsonError};

fn sites(body: &str, response: bool) -> Vec<(String, Class)> {
    let mut doc = Doc::default();
    json::parse(body.as_bytes(), response, &mut doc).unwrap();
    doc.sites
        .iter()
        .map(|s| {
            let mut out = Vec::new();
            json::decode(s.raw(body.as_bytes()), &mut out);
            (String::from_utf8(out).unwrap(), s.class)
        })
        .collect()
}

fn texts(body: &str) -> Vec<String> {
    sites(body, false).into_iter().map(|(t, _)| t).collect()
}

#[test]
fn structural_strings_are_not_sites() {
    let body = r#"{"model":"m","id":"x","object":"chat.completion","created":1,"system_fingerprint":"fp",
        "choices":[{"index":0,"message":{"role":"assistant","content":"hello","tool_calls":[{"id":"call_1",
        "type":"function","function":{"name":"send","arguments":"{\"to\":\"a\"}"}}]},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":1},"tool_call_id":"t","user_id":"u"}"#;
    assert_eq!(texts(body), ["hello", r#"{"to":"a"}"#]);
    let classes: Vec<Class> = sites(body, false).into_iter().map(|(_, c)| c).collect();
    assert_eq!(classes, [Class::Delta { args: false }, Class::Delta { args: true }]);
}

#[test]
fn every_other_string_is_text() {
    let body = r#"{"prompt":"p","input":["a","b"],"inputs":"i","system":"s","suffix":"x","text_input":"t",
        "messages":[{"role":"user","content":[{"type":"text","text":"part"},{"type":"image_url","image_url":{"url":"data:AKIA"}}]}],
        "parameters":{"stop":["\n"],"max_new_tokens":5},"whatever":{"deep":["unknown"]},"arguments":"not json"}"#;
    assert_eq!(texts(body), ["p", "a", "b", "i", "s", "x", "t", "part", "\n", "unknown", "not json"]);
    let last = sites(body, false).pop().unwrap();
    assert_eq!(last.1, Class::Arguments);
}

#[test]
fn opaque_values_are_skipped() {
    let body = r#"{"data":[{"object":"embedding","embedding":"QUtJQVo3VlEzWDRMUlRNMlBRNU4=","index":0}],
        "images":["aGVsbG8="],"input_audio":{"data":"x","format":"wav"}}"#;
    assert!(texts(body).is_empty());
}

#[test]
fn escaped_keys_are_decoded() {
    // "\u0063ontent" is "content", and "\u006dodel" is "model".
    let body = r#"{"\u006dodel":"keep","messages":[{"\u0072ole":"user","\u0063ontent":"mask me"}]}"#;
    assert_eq!(texts(body), ["mask me"]);
}

#[test]
fn token_level_data_is_blanked_in_responses_only() {
    let body =
        r#"{"choices":[{"text":"t","logprobs":{"tokens":["a"]}}],"details":{"tokens":[{"text":"x"}]},"context":[1,2]}"#;
    let mut doc = Doc::default();
    json::parse(body.as_bytes(), true, &mut doc).unwrap();
    let blanks: Vec<&str> = doc.blanks.iter().map(|b| &body[b.start..b.end]).collect();
    assert_eq!(blanks, [r#"{"tokens":["a"]}"#, r#"[{"text":"x"}]"#, "[1,2]"]);
    json::parse(body.as_bytes(), false, &mut doc).unwrap();
    assert!(doc.blanks.is_empty());
    // An already-null logprobs is left alone.
    json::parse(br#"{"logprobs":null}"#, true, &mut doc).unwrap();
    assert!(doc.blanks.is_empty());
}

#[test]
fn stream_classes() {
    let cases = [
        (r#"{"choices":[{"index":0,"delta":{"content":"c"}}]}"#, Class::Delta { args: false }),
        (r#"{"choices":[{"index":0,"text":"c"}]}"#, Class::Delta { args: false }),
        (r#"{"message":{"role":"assistant","content":"c"},"done":false}"#, Class::Delta { args: false }),
        (r#"{"response":"c","done":false}"#, Class::Delta { args: false }),
        (r#"{"token":{"id":1,"text":"c","special":false}}"#, Class::Delta { args: false }),
        (r#"{"text_output":"c"}"#, Class::Delta { args: false }),
        (r#"{"content":"c","stop":false}"#, Class::Delta { args: false }),
        (r#"{"type":"response.output_text.delta","delta":"c"}"#, Class::Delta { args: false }),
        (
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"c"}}]}}]}"#,
            Class::Delta { args: true },
        ),
        (r#"{"generated_text":"c"}"#, Class::Text),
        (r#"{"type":"response.output_text.done","text":"c"}"#, Class::Text),
    ];
    for (body, class) in cases {
        assert_eq!(sites(body, true), [("c".to_owned(), class)], "{body}");
    }
}

#[test]
fn end_markers() {
    let ends = |body: &str| {
        let mut doc = Doc::default();
        json::parse(body.as_bytes(), true, &mut doc).unwrap();
        doc.ends.len()
    };
    assert_eq!(ends(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#), 1);
    assert_eq!(ends(r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#), 0);
    assert_eq!(ends(r#"{"done":true,"message":{"content":""}}"#), 1);
    assert_eq!(ends(r#"{"done":false}"#), 0);
    assert_eq!(ends(r#"{"token":{"text":"x"},"generated_text":"all"}"#), 1);
    assert_eq!(ends(r#"{"token":{"text":"x"},"generated_text":null}"#), 0);
    assert_eq!(ends(r#"{"type":"response.output_text.done"}"#), 1);
    assert_eq!(ends(r#"{"type":"content_block_stop","index":0}"#), 1);
}

#[test]
fn invalid_documents() {
    let mut doc = Doc::default();
    for bad in [
        "{",
        "[1,]",
        r#"{"a":}"#,
        r#"{"a" 1}"#,
        r#"{"a":1}x"#,
        r#"["\x"]"#,
        r#"["\u12"]"#,
        "[01]",
        "[1.]",
        "[-]",
        "[1e]",
        "[tru]",
        "{\"a\":\"line\nbreak\"}",
        r#"{"a":1,}"#,
        "[\"unterminated]",
    ] {
        assert_eq!(json::parse(bad.as_bytes(), false, &mut doc), Err(JsonError::Syntax), "{bad:?}");
    }
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert_eq!(json::parse(deep.as_bytes(), false, &mut doc), Err(JsonError::TooDeep));
    let deep = "{\"a\":".repeat(200) + "1" + &"}".repeat(200);
    assert_eq!(json::parse(deep.as_bytes(), false, &mut doc), Err(JsonError::TooDeep));
    for good in ["[]", "{}", " [1, -0.5e+3, true, false, null, \"\\u00e9\\n\"] ", "\"s\"", "3"] {
        assert_eq!(json::parse(good.as_bytes(), false, &mut doc), Ok(()), "{good:?}");
    }
}

#[test]
fn string_codec_round_trips() {
    let samples = ["plain", "quote \" back \\ slash", "ctl \u{1} \t \n \r", "é ü 😀", "\u{7f}", ""];
    for s in samples {
        let mut enc = Vec::new();
        json::encode(s.as_bytes(), &mut enc);
        let as_json = format!("\"{}\"", String::from_utf8(enc.clone()).unwrap());
        assert_eq!(serde_json::from_str::<String>(&as_json).unwrap(), s);
        let mut dec = Vec::new();
        json::decode(&enc, &mut dec);
        assert_eq!(dec, s.as_bytes());
    }
    let mut dec = Vec::new();
    json::decode(br"\u00e9\ud83d\ude00\/\b\f\ud800x", &mut dec);
    assert_eq!(String::from_utf8(dec).unwrap(), "é😀/\u{8}\u{c}\u{fffd}x");
}
