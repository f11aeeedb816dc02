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
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
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
                keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
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
}
