//! The cheap look into a JSON request body, and the stream-usage rewrite.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The cheap look into a JSON request body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Peek {
    /// The model name (first non-empty string among the endpoint's model fields).
    pub model: Option<String>,
    /// The `stream` flag, when present.
    pub stream: Option<bool>,
    /// The requested maximum of generated tokens, whatever the flavor calls it.
    pub max_tokens: Option<u64>,
    /// `stream_options.include_usage`, when present.
    pub include_usage: Option<bool>,
    /// Whether the body has a `stream_options` key at all.
    pub has_stream_options: bool,
}

/// Malformed request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeekError {
    /// What is wrong with the body.
    pub message: String,
}

impl PeekError {
    fn new(message: impl Into<String>) -> PeekError {
        PeekError { message: message.into() }
    }
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed JSON request body: {}", self.message)
    }
}

impl std::error::Error for PeekError {}

/// A string that borrows from the input when it has no escapes.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A token count: any non-negative integral number; anything else (null, negative, strings,
/// objects) reads as None instead of failing the whole parse.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Count(pub(crate) Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn f(v: Scalar<'_>) -> Option<u64> {
            match v {
                Scalar::U(n) => Some(n),
                Scalar::I(n) => u64::try_from(n).ok(),
                Scalar::F(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Some(f as u64),
                _ => None,
            }
        }
        d.deserialize_any(Lenient(f)).map(Count)
    }
}

/// A boolean, read the lax way Python servers do (`true`, `"true"`, `1`, ...). Null is None.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LaxBool(pub(crate) Option<bool>);

impl<'de> Deserialize<'de> for LaxBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn f(v: Scalar<'_>) -> Option<bool> {
            match v {
                Scalar::B(b) => Some(b),
                Scalar::U(1) | Scalar::I(1) => Some(true),
                Scalar::U(0) | Scalar::I(0) => Some(false),
                Scalar::S(s) => match s.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
                    "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
                    _ => None,
                },
                _ => None,
            }
        }
        d.deserialize_any(Lenient(f)).map(LaxBool)
    }
}

enum Scalar<'s> {
    B(bool),
    U(u64),
    I(i64),
    F(f64),
    S(&'s str),
    Other,
}

/// A visitor accepting any JSON value, mapping scalars through `F` and skipping the rest.
struct Lenient<F>(F);

impl<'de, T, F: for<'s> FnOnce(Scalar<'s>) -> Option<T>> Visitor<'de> for Lenient<F> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::B(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::U(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::I(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::F(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::S(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok((self.0)(Scalar::Other))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok((self.0)(Scalar::Other))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok((self.0)(Scalar::Other))
    }
}

/// Go's encoding/json folding of one char (ToUpper(ToLower(c))), as ASCII lowercase when the
/// result is ASCII.
fn go_fold(c: char) -> Option<u8> {
    match c {
        c if c.is_ascii() => Some((c as u8).to_ascii_lowercase()),
        '\u{017F}' => Some(b's'),              // long s
        '\u{212A}' => Some(b'k'),              // Kelvin sign
        '\u{0131}' | '\u{0130}' => Some(b'i'), // dotless i, dotted capital I
        _ => None,
    }
}

/// How `key` relates to the canonical lowercase ASCII `name`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyMatch {
    No,
    Exact,
    /// Equal only case-insensitively (as Go's encoding/json would match it).
    Folded,
}

fn key_match(key: &str, name: &str) -> KeyMatch {
    if key == name {
        return KeyMatch::Exact;
    }
    let mut want = name.bytes();
    for c in key.chars() {
        match (go_fold(c), want.next()) {
            (Some(a), Some(b)) if a == b => {}
            _ => return KeyMatch::No,
        }
    }
    if want.next().is_none() { KeyMatch::Folded } else { KeyMatch::No }
}

/// Reads one field of a nested object (`options.num_predict`, ...); non-objects read as None.
struct Nested<T> {
    field: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> Nested<T> {
    fn new(field: &'static str) -> Self {
        Nested { field, _t: std::marker::PhantomData }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Nested<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Nested<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut out = None;
        while let Some(k) = map.next_key::<Str<'de>>()? {
            match key_match(&k.0, self.field) {
                KeyMatch::No => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ if out.is_some() => return Err(de::Error::custom(format_args!("duplicate key {:?}", self.field))),
                _ => out = Some(map.next_value::<T>()?),
            }
        }
        Ok(out)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Special top-level keys, by bit in the duplicate mask (model fields use bits from 16 up).
const SPECIAL: [&str; 8] = [
    "stream",
    "max_completion_tokens",
    "max_tokens",
    "max_output_tokens",
    "n_predict",
    "stream_options",
    "options",
    "parameters",
];

struct PeekVisitor<'f> {
    model_fields: &'f [&'f str],
}

impl<'de> Visitor<'de> for PeekVisitor<'_> {
    type Value = Peek;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Peek, A::Error> {
        let mut peek = Peek::default();
        // (priority index, value) of the best model field seen so far.
        let mut model: Option<(usize, Cow<'de, str>)> = None;
        // max-token candidates by priority: max_completion_tokens, max_tokens, max_output_tokens,
        // n_predict, options.num_predict, parameters.max_new_tokens.
        let mut max = [None::<u64>; 6];
        let mut seen: u64 = 0;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let key = key.0;
            let mut hit = None;
            for (i, f) in self.model_fields.iter().enumerate().take(32) {
                match key_match(&key, f) {
                    KeyMatch::No => {}
                    KeyMatch::Folded => {
                        return Err(de::Error::custom(format_args!("ambiguous key {key:?} (did you mean {f:?}?)")));
                    }
                    KeyMatch::Exact => {
                        hit = Some((i, 16 + i));
                        break;
                    }
                }
            }
            let (which, bit) = match hit {
                Some((i, bit)) => (Which::Model(i), bit),
                None => {
                    let mut found = None;
                    for (i, name) in SPECIAL.iter().enumerate() {
                        match key_match(&key, name) {
                            KeyMatch::No => {}
                            KeyMatch::Folded => {
                                return Err(de::Error::custom(format_args!(
                                    "ambiguous key {key:?} (did you mean {name:?}?)"
                                )));
                            }
                            KeyMatch::Exact => {
                                found = Some(i);
                                break;
                            }
                        }
                    }
                    match found {
                        Some(i) => (Which::Special(i), i),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    }
                }
            };
            if seen & (1 << bit) != 0 {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            seen |= 1 << bit;
            match which {
                Which::Model(i) => {
                    let v = map.next_value::<Option<Str<'de>>>()?;
                    if let Some(Str(s)) = v
                        && !s.is_empty()
                        && model.as_ref().is_none_or(|(j, _)| i < *j)
                    {
                        model = Some((i, s));
                    }
                }
                Which::Special(0) => peek.stream = map.next_value::<LaxBool>()?.0,
                Which::Special(i @ 1..=4) => max[i - 1] = map.next_value::<Count>()?.0,
                Which::Special(5) => {
                    peek.has_stream_options = true;
                    peek.include_usage =
                        map.next_value_seed(Nested::<LaxBool>::new("include_usage"))?.and_then(|b| b.0);
                }
                Which::Special(6) => {
                    max[4] = map.next_value_seed(Nested::<Count>::new("num_predict"))?.and_then(|c| c.0)
                }
                Which::Special(_) => {
                    max[5] = map.next_value_seed(Nested::<Count>::new("max_new_tokens"))?.and_then(|c| c.0)
                }
            }
        }
        peek.model = model.map(|(_, s)| s.into_owned());
        peek.max_tokens = max.into_iter().flatten().next();
        Ok(peek)
    }
}

enum Which {
    Model(usize),
    Special(usize),
}

/// Peeks `model` (the endpoint's field names), `stream`, max tokens (OpenAI `max_tokens` or
/// `max_completion_tokens`, Responses `max_output_tokens`, Ollama `options.num_predict`, TGI
/// `parameters.max_new_tokens`, llama.cpp `n_predict`), and `stream_options.include_usage`,
/// without building a JSON tree. An empty body is `Ok(Peek::default())`; non-object or invalid
/// JSON is an error, and so are duplicate peeked keys and keys that only match case-insensitively
/// (`"Model"`), since upstreams disagree on which one wins.
pub fn peek_json(body: &[u8], model_fields: &[&str]) -> Result<Peek, PeekError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Peek::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let peek = (&mut de).deserialize_map(PeekVisitor { model_fields }).map_err(|e| PeekError::new(e.to_string()))?;
    de.end().map_err(|e| PeekError::new(e.to_string()))?;
    Ok(peek)
}

const USAGE_OPTION: &[u8] = br#""stream_options":{"include_usage":true}"#;

/// For streamed OpenAI-style chat/completions: returns a rewritten body that asks the upstream
/// for usage (`"stream_options":{"include_usage":true}`), or None when no change is needed (not
/// streaming, include_usage already true, or the body does not peek). Splices the option in
/// before the final `}` when there is no `stream_options` key, so everything else stays
/// byte-identical; re-serialises only when `stream_options` exists without `include_usage: true`.
pub fn ensure_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let peek = peek_json(body, &[]).ok()?;
    if peek.stream != Some(true) || peek.include_usage == Some(true) {
        return None;
    }
    if !peek.has_stream_options {
        let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
        if body[end] != b'}' {
            return None;
        }
        let before = body[..end].iter().rposition(|b| !b.is_ascii_whitespace())?;
        let empty = body[before] == b'{';
        let mut out = Vec::with_capacity(body.len() + USAGE_OPTION.len() + 1);
        out.extend_from_slice(&body[..end]);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(USAGE_OPTION);
        out.extend_from_slice(&body[end..]);
        return Some(out);
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    let opts = obj.entry("stream_options").or_insert(serde_json::Value::Null);
    match opts.as_object_mut() {
        Some(o) => {
            o.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        }
        None => *opts = serde_json::json!({ "include_usage": true }),
    }
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(body: &str) -> Peek {
        peek_json(body.as_bytes(), &["model"]).unwrap()
    }

    #[test]
    fn peeks_past_nested_values_and_escapes() {
        let body = r#"{
            "messages": [{"role": "system", "content": "say \"model\": \"gpt-evil\" \\ \u00e9 ✓"},
                         {"role": "user", "content": [{"type": "text", "text": "{\"model\":\"x\"}"}]}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                      "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}}}}}],
            "metadata": {"model": "nested-is-ignored", "stream": true, "max_tokens": 1},
            "logit_bias": {"50256": -100}, "temperature": 0.7, "n": 1, "stop": null,
            "model": "llama-3-70b", "stream": true, "max_tokens": 512
        }"#;
        let got = p(body);
        assert_eq!(
            got,
            Peek {
                model: Some("llama-3-70b".into()),
                stream: Some(true),
                max_tokens: Some(512),
                include_usage: None,
                has_stream_options: false
            }
        );
    }

    #[test]
    fn escaped_model_value_and_key() {
        assert_eq!(p(r#"{"model":"qwen\/2.5-\u0037b"}"#).model.as_deref(), Some("qwen/2.5-7b"));
        assert_eq!(p(r#"{"mod\u0065l":"m"}"#).model.as_deref(), Some("m"));
    }

    #[test]
    fn field_priority_and_empty() {
        let f: &[&str] = &["model", "name"];
        let pk = |b: &str| peek_json(b.as_bytes(), f).unwrap().model;
        assert_eq!(pk(r#"{"name":"old","model":"new"}"#).as_deref(), Some("new"));
        assert_eq!(pk(r#"{"model":"new","name":"old"}"#).as_deref(), Some("new"));
        assert_eq!(pk(r#"{"name":"old"}"#).as_deref(), Some("old"));
        assert_eq!(pk(r#"{"model":null,"name":"old"}"#).as_deref(), Some("old"));
        assert_eq!(pk(r#"{"model":"","name":""}"#), None);
        assert_eq!(pk(r#"{}"#), None);
        assert_eq!(peek_json(br#"{"model":"m"}"#, &[]).unwrap().model, None);
    }

    #[test]
    fn max_tokens_sources() {
        let cases = [
            (r#"{"max_tokens":10}"#, Some(10)),
            (r#"{"max_completion_tokens":20,"max_tokens":10}"#, Some(20)),
            (r#"{"max_tokens":10,"max_completion_tokens":20}"#, Some(20)),
            (r#"{"max_output_tokens":30}"#, Some(30)),
            (r#"{"n_predict":40}"#, Some(40)),
            (r#"{"n_predict":-1}"#, None),
            (r#"{"options":{"temperature":0,"num_predict":50}}"#, Some(50)),
            (r#"{"options":null}"#, None),
            (r#"{"parameters":{"do_sample":true,"max_new_tokens":60}}"#, Some(60)),
            (r#"{"parameters":[1,2]}"#, None),
            (r#"{"max_tokens":null}"#, None),
            (r#"{"max_tokens":12.0}"#, Some(12)),
            (r#"{"max_tokens":12.5}"#, None),
            (r#"{"max_tokens":"12"}"#, None),
        ];
        for (body, want) in cases {
            assert_eq!(p(body).max_tokens, want, "{body}");
        }
    }

    #[test]
    fn stream_and_stream_options() {
        let cases = [
            (r#"{"stream":true}"#, Some(true), false, None),
            (r#"{"stream":false}"#, Some(false), false, None),
            (r#"{"stream":null}"#, None, false, None),
            (r#"{"stream":"true"}"#, Some(true), false, None),
            (r#"{"stream":1}"#, Some(true), false, None),
            (r#"{"stream":0}"#, Some(false), false, None),
            (r#"{"stream":{"a":1}}"#, None, false, None),
            (r#"{"stream":true,"stream_options":{"include_usage":true}}"#, Some(true), true, Some(true)),
            (r#"{"stream":true,"stream_options":{"include_usage":false}}"#, Some(true), true, Some(false)),
            (r#"{"stream":true,"stream_options":{"continuous_usage_stats":true}}"#, Some(true), true, None),
            (r#"{"stream":true,"stream_options":null}"#, Some(true), true, None),
        ];
        for (body, stream, has, inc) in cases {
            let got = p(body);
            assert_eq!((got.stream, got.has_stream_options, got.include_usage), (stream, has, inc), "{body}");
        }
    }

    #[test]
    fn empty_and_malformed() {
        assert_eq!(peek_json(b"", &["model"]), Ok(Peek::default()));
        assert_eq!(peek_json(b" \r\n\t", &["model"]), Ok(Peek::default()));
        let bad: &[&[u8]] = &[
            b"null",
            b"[]",
            b"42",
            b"\"s\"",
            b"{",
            b"{\"model\":}",
            b"{\"model\":\"a\",}",
            b"{\"model\":\"a\"}{}",
            b"{\"model\":[\"a\"]}",
            b"{\"model\":\"a\", \"model\":\"b\"}",
            b"{\"stream\":true, \"stream\":false}",
            b"{\"Stream\":true}",
            b"{\"max_tokens\":1, \"max_tokens\":2}",
            b"{\"options\":{\"num_predict\":1,\"num_predict\":2}}",
            b"{\"model\":\"\xff\"}",
            b"\xef\xbb\xbf{}",
        ];
        for b in bad {
            assert!(peek_json(b, &["model"]).is_err(), "{:?}", String::from_utf8_lossy(b));
        }
        // Go's case folding: the Kelvin sign and long s are "k" and "s" to Ollama.
        assert!(peek_json("{\"\u{17f}tream\":true}".as_bytes(), &["model"]).is_err());
        assert!(peek_json("{\"name\":\"a\",\"NAME\":\"b\"}".as_bytes(), &["model", "name"]).is_err());
        // Unrelated keys may repeat and differ in case.
        assert!(peek_json(br#"{"x":1,"x":2,"Temperature":1,"model":"m"}"#, &["model"]).is_ok());
    }

    fn inject(body: &str) -> Option<String> {
        ensure_stream_usage(body.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn ensure_stream_usage_splices() {
        let body =
            "{\n  \"model\": \"m\",\n  \"messages\": [{\"role\":\"user\",\"content\":\"}\"}],\n  \"stream\": true\n}\n";
        let out = inject(body).unwrap();
        assert_eq!(
            out,
            "{\n  \"model\": \"m\",\n  \"messages\": [{\"role\":\"user\",\"content\":\"}\"}],\n  \"stream\": true\n,\"stream_options\":{\"include_usage\":true}}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "}");
        let compact = r#"{"model":"m","stream":true}"#;
        assert_eq!(inject(compact).unwrap(), r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#);
        let p2 = peek_json(inject(compact).unwrap().as_bytes(), &["model"]).unwrap();
        assert_eq!(p2.include_usage, Some(true));
        assert_eq!(p2.model.as_deref(), Some("m"));
    }

    #[test]
    fn ensure_stream_usage_no_change() {
        for body in [
            r#"{"model":"m"}"#,
            r#"{"model":"m","stream":false}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"model":"m","stream":true,"stream":true}"#,
            "not json",
            "",
        ] {
            assert_eq!(inject(body), None, "{body}");
        }
    }

    #[test]
    fn ensure_stream_usage_rewrites_existing_options() {
        let cases = [
            (r#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#, None),
            (r#"{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}"#, Some(true)),
            (r#"{"model":"m","stream":true,"stream_options":null}"#, None),
            (r#"{"model":"m","stream":true,"stream_options":{}}"#, None),
        ];
        for (body, continuous) in cases {
            let out = inject(body).unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["stream_options"]["include_usage"], true, "{body}");
            assert_eq!(v["stream_options"]["continuous_usage_stats"].as_bool(), continuous, "{body}");
            assert_eq!(v["model"], "m");
            assert_eq!(v["stream"], true);
        }
    }
}
