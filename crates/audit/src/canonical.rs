//! RFC 8785 (JCS) canonical JSON and the chain hash of SPEC section 5.
//!
//! The writer does not go through [`to_jcs`]: events serialise canonically by construction (see
//! [`crate::event`]). This generic form checks that claim in tests, and lets `audit verify` and
//! outside tools re-derive canonical bytes from any JSON.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The chain's domain prefix (the `schema` of every event).
pub const CHAIN_PREFIX: &[u8] = b"modelgate.audit.v1";

/// `prev_hash` of the first event: 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// `hash_n = SHA-256("modelgate.audit.v1" || hash_{n-1} || canonical_bytes(event_n))`, with
/// `hash_{n-1}` as its 32 raw bytes.
pub fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHAIN_PREFIX);
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses 64 hex digits into 32 bytes.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let d = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = (d(pair[0])? << 4) | d(pair[1])?;
    }
    Some(out)
}

/// A value JCS cannot express the way modelgate hashes it.
#[derive(Debug, thiserror::Error)]
#[error("number {0} is not an integer; audit events hold integers only")]
pub struct NonCanonical(String);

/// RFC 8785's order of object member names: by their UTF-16 code units.
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// RFC 8785 bytes of a JSON value: object members sorted by their UTF-16 code units, no
/// whitespace, strings escaped minimally. Numbers must be integers (all modelgate events are).
pub fn to_jcs(v: &Value) -> Result<Vec<u8>, NonCanonical> {
    let mut out = Vec::with_capacity(512);
    write(v, &mut out)?;
    Ok(out)
}

fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), NonCanonical> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                        out.extend_from_slice((f as i64).to_string().as_bytes())
                    }
                    _ => return Err(NonCanonical(n.to_string())),
                }
            }
        }
        Value::String(s) => string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(x, out)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| key_order(a, b));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                if let Some(x) = m.get(k) {
                    write(x, out)?;
                }
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A JSON value that serializes with its object keys in RFC 8785 order (UTF-16 code units),
/// whatever order `serde_json`'s map keeps (a dependency may turn on `preserve_order`, which
/// makes maps keep insertion order): free-form event fields stay canonical by construction.
pub struct Sorted<'a>(pub &'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by(|a, b| key_order(a, b));
                let mut map = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    if let Some(v) = m.get(k) {
                        map.serialize_entry(k, &Sorted(v))?;
                    }
                }
                map.end()
            }
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(&Sorted(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// `serialize_with` for optional free-form fields: see [`Sorted`].
pub fn serialize_sorted<S: serde::Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&Sorted(v)),
        None => s.serialize_none(),
    }
}

/// Checks that `bytes` are RFC 8785 canonical JSON as events are written: no insignificant
/// whitespace, object keys unique and sorted by UTF-16 code units, strings with only JCS's
/// escapes (`\"`, `\\`, the short control escapes, `\u00xx` in lowercase for other control
/// characters), integers without leading zeros, signs or exponents. One pass; the error names
/// the byte offset. Hashed bytes that are not canonical cannot be re-derived by an auditor's own
/// canonicaliser, so `audit verify` reports them as modified.
pub fn check_canonical(bytes: &[u8]) -> Result<(), String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut p = Canon { b: bytes, i: 0 };
    p.value(0)?;
    if p.i != bytes.len() {
        return Err(format!("trailing bytes at offset {}", p.i));
    }
    Ok(())
}

struct Canon<'a> {
    b: &'a [u8],
    i: usize,
}

impl Canon<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at offset {}", self.i))
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected '{}'", c as char))
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth > 256 {
            return self.err("nesting too deep");
        }
        match self.b.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string(None),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expected a value"),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), String> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err("bad literal")
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if self.i - start == 2 {
                    return self.err("negative zero");
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return self.err("bad number"),
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return self.err("a non-integer number");
        }
        Ok(())
    }

    /// A string, validated; decoded into `out` when given (keys, to compare them).
    fn string(&mut self, mut out: Option<&mut String>) -> Result<(), String> {
        self.eat(b'"')?;
        loop {
            let start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            if let Some(out) = out.as_deref_mut() {
                out.push_str(std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?);
            }
            let decoded = match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    let esc = self.b.get(self.i + 1).copied();
                    self.i += 2;
                    match esc {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hex = self.b.get(self.i..self.i + 4).unwrap_or_default();
                            let lower = hex.len() == 4 && hex.iter().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f'));
                            let v = std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok());
                            match v {
                                Some(v) if lower && v < 0x20 && !matches!(v, 0x8 | 0x9 | 0xa | 0xc | 0xd) => {
                                    self.i += 4;
                                    char::from_u32(v).unwrap_or_default()
                                }
                                _ => return self.err("a \\u escape JCS does not write"),
                            }
                        }
                        _ => return self.err("an escape JCS does not write"),
                    }
                }
                Some(_) => return self.err("a raw control character in a string"),
                None => return self.err("an unterminated string"),
            };
            if let Some(out) = out.as_deref_mut() {
                out.push(decoded);
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), String> {
        self.eat(b'{')?;
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut prev: Option<String> = None;
        loop {
            let mut key = String::new();
            self.string(Some(&mut key))?;
            if let Some(p) = &prev
                && key_order(p, &key) != std::cmp::Ordering::Less
            {
                return self.err(&format!("key \"{key}\" out of order or repeated"));
            }
            self.eat(b':')?;
            self.value(depth + 1)?;
            prev = Some(key);
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), String> {
        self.eat(b'[')?;
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or ']'"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8785_examples() {
        // Key order by UTF-16 code units (RFC 8785 section 3.2.3's example, integers only).
        let v: Value =
            serde_json::from_str(r#"{"\u20ac":1,"\r":2,"\ud83d\ude00":3,"1":4,"\u0080":5,"\u00f6":6}"#).unwrap();
        let s = String::from_utf8(to_jcs(&v).unwrap()).unwrap();
        assert_eq!(s, "{\"\\r\":2,\"1\":4,\"\u{80}\":5,\"ö\":6,\"€\":1,\"😀\":3}");
        let v: Value = serde_json::from_str(r#"{"b":[1,"\u001f",true,null],"a":{"d":-0,"c":1.0}}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_jcs(&v).unwrap()).unwrap(),
            r#"{"a":{"c":1,"d":0},"b":[1,"\u001f",true,null]}"#
        );
        assert!(to_jcs(&serde_json::json!({"x": 1.5})).is_err());
    }

    #[test]
    fn chain_hash_changes_with_every_input() {
        let a = chain_hash(&GENESIS, b"{}");
        assert_ne!(a, chain_hash(&GENESIS, b"{ }"));
        assert_ne!(a, chain_hash(&a, b"{}"));
        assert_eq!(unhex32(&hex(&a)), Some(a));
        assert_eq!(unhex32("zz"), None);
    }

    #[test]
    fn canonical_check_accepts_jcs_and_rejects_what_jcs_never_writes() {
        let v = serde_json::json!({"b": [1, -2, "x\ny\u{1f}é/"], "a": {"z": null, "aa": true}, "": 0});
        let jcs = super::to_jcs(&v).unwrap();
        super::check_canonical(&jcs).unwrap();
        for bad in [
            &br#"{"b":1,"a":2}"#[..],
            br#"{"a":1,"a":2}"#,
            br#"{"a": 1}"#,
            br#"{"a":"\/"}"#,
            br#"{"a":"\u001F"}"#,
            br#"{"a":"\u0041"}"#,
            br#"{"a":"\u000a"}"#,
            b"{\"a\":\"\x01\"}",
            br#"{"a":1.5}"#,
            br#"{"a":01}"#,
            br#"{"a":-0}"#,
            br#"{"a":1} "#,
        ] {
            assert!(super::check_canonical(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        super::check_canonical(br#"{"a":"\u001f","b":"\n"}"#).unwrap();
    }
}
