//! Generic credentials, the way gitleaks finds them: a key-like word (`password`, `api_key`,
//! `client_secret`, `Authorization`, …) then an assignment (`=`, `:`, `:=`, `=>`, `"…": "`),
//! then a value long enough and random enough (Shannon entropy) to be a credential rather than a
//! word, a placeholder or a reference to one (`${API_KEY}`, `os.environ[…]`).

use super::prefilter::Triggers;
use super::scanner::secret_at;
use super::text::{entropy, looks_random};
use super::{Entity, Found};

/// Longest key read back from the operator.
const MAX_KEY: usize = 64;
/// Shortest and longest value.
const MIN_VALUE: usize = 10;
const MAX_VALUE: usize = 200;
/// Least entropy of a value, in bits per byte.
const MIN_ENTROPY: f64 = 3.0;

/// The key ending before `end` (its operator): back over up to four closing quotes, spaces and
/// brackets, then over at most [`MAX_KEY`] key bytes; `(start, end)` of the key.
pub(super) fn key_before(body: &[u8], end: usize) -> (usize, usize) {
    let mut k = end;
    let mut skipped = 0;
    while k > 0
        && skipped < 4
        && body.get(k - 1).is_some_and(|&b| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'\\' | b']'))
    {
        k -= 1;
        skipped += 1;
    }
    let key_end = k;
    while k > 0 && key_end - k < MAX_KEY && body.get(k - 1).is_some_and(|&b| is_key_byte(b)) {
        k -= 1;
    }
    (k, key_end)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Whether a key names a credential: one of its parts (split at `_`, `-`, `.` and camelCase) is
/// a credential word, and none names metadata about it (`token_type`, `key_id`, `max_tokens`).
pub(super) fn credential_key(key: &[u8]) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "pass",
        "pw",
        "secret",
        "secrets",
        "token",
        "apikey",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "creds",
        "key",
        "accesskey",
        "secretkey",
        "privatekey",
        "apitoken",
        "authtoken",
        "bearer",
        "passwort",
        "contraseña",
        "motdepasse",
        "mdp",
        "clave",
    ];
    const NOT: &[&str] = &[
        "id",
        "ids",
        "name",
        "names",
        "type",
        "url",
        "uri",
        "path",
        "file",
        "count",
        "length",
        "len",
        "size",
        "limit",
        "max",
        "min",
        "expiry",
        "expires",
        "expiration",
        "ttl",
        "timeout",
        "format",
        "version",
        "hint",
        "policy",
        "field",
        "header",
        "prefix",
        "endpoint",
        "method",
        "mode",
        "scope",
        "scopes",
        "enabled",
        "required",
        "usage",
        "index",
        "public",
        "publishable",
        "author",
        "authors",
        "pub",
        "tokens",
        "keys",
        "label",
        "alias",
        "algorithm",
        "alg",
        "kind",
        "env",
        "var",
        "location",
        "provider",
        "rotation",
        "created",
        "updated",
    ];
    // Keys that are not UTF-8 never name a credential.
    if std::str::from_utf8(key).is_err() {
        return false;
    }
    let is = |part: &[u8], list: &[&str]| list.iter().any(|w| part.eq_ignore_ascii_case(w.as_bytes()));
    if key_parts(key).any(|p| is(p, NOT)) {
        return false;
    }
    key_parts(key).any(|p| is(p, WORDS))
        || [
            "apikey",
            "accesskey",
            "secretkey",
            "privatekey",
            "clientsecret",
            "authtoken",
            "password",
            "passwd",
            "secret",
            "credential",
        ]
        .iter()
        .any(|w| contains_joined(key, w.as_bytes()))
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.')
}

/// The parts of a key: split at `_`, `-`, `.` and before an uppercase letter that follows a
/// lowercase letter or a digit (`apiKey` → `api`, `Key`). Never empty.
fn key_parts(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while key.get(i).is_some_and(|&b| is_separator(b)) {
            i += 1;
        }
        let start = i;
        let mut prev_lower = false;
        while let Some(&b) = key.get(i) {
            if is_separator(b) || (b.is_ascii_uppercase() && prev_lower) {
                break;
            }
            prev_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
            i += 1;
        }
        key.get(start..i).filter(|p| !p.is_empty())
    })
}

/// Whether the lowercase `word` occurs in `key` once its separators are left out, ignoring
/// ASCII case (`client_secret` holds `clientsecret`).
fn contains_joined(key: &[u8], word: &[u8]) -> bool {
    (0..key.len()).any(|s| {
        let joined = key.get(s..).unwrap_or(&[]).iter().filter(|&&b| !is_separator(b)).map(u8::to_ascii_lowercase);
        joined.take(word.len()).eq(word.iter().copied())
    })
}

/// Where a credential value would start after the operator at `op` (`:` or `=`) and its
/// opening quote, when a credential key precedes the operator.
fn value_start(body: &[u8], op: usize) -> Option<(usize, Option<u8>)> {
    let next = body.get(op + 1).copied();
    let prev = op.checked_sub(1).and_then(|i| body.get(i)).copied();
    // Not `==`, `::`, `!=`, `<=`, `>=`.
    if next == Some(body.get(op).copied()?) || matches!(prev, Some(b'=' | b'!' | b'<' | b'>')) {
        return None;
    }
    if body.get(op) == Some(&b':') && prev == Some(b':') {
        return None;
    }
    // The key: back over a closing quote and spaces (`"api_key" :`, `key :=`).
    let mut k = op;
    if body.get(op) == Some(&b'=') && prev == Some(b':') {
        k -= 1;
    }
    let (k, key_end) = key_before(body, k);
    let key = body.get(k..key_end)?;
    if key.len() < 2 || !credential_key(key) {
        return None;
    }

    // The value: past `=`/`>` of `:=`/`=>`, spaces, an opening quote (maybe JSON-escaped).
    let mut v = op + 1;
    if matches!(body.get(v), Some(b'=' | b'>')) {
        v += 1;
    }
    let mut spaces = 0;
    while spaces < 3 && matches!(body.get(v), Some(b' ' | b'\t')) {
        v += 1;
        spaces += 1;
    }
    let mut quote = None;
    if body.get(v) == Some(&b'\\') && matches!(body.get(v + 1), Some(b'"' | b'\'')) {
        quote = body.get(v + 1).copied();
        v += 2;
    } else if matches!(body.get(v), Some(b'"' | b'\'' | b'`')) {
        quote = body.get(v).copied();
        v += 1;
    }
    // `Authorization: Bearer …`, `token: "Basic …"`.
    for scheme in [&b"Bearer "[..], b"Basic ", b"Token ", b"bearer ", b"token "] {
        if body.get(v..).is_some_and(|r| r.starts_with(scheme)) {
            v += scheme.len();
            break;
        }
    }
    Some((v, quote))
}

/// Whether a credential value would start at `v`: a credential key, its operator, then what
/// [`at_operator`] skips (spaces, a quote, a scheme word such as `Bearer `) end right there.
pub(super) fn value_starts_at(body: &[u8], v: usize) -> bool {
    (v.saturating_sub(24)..v)
        .any(|op| matches!(body.get(op), Some(b':' | b'=')) && value_start(body, op).is_some_and(|(s, _)| s == v))
}

/// A credential value after the operator at `op` (`:` or `=`), when a credential key precedes it.
pub(super) fn at_operator(body: &[u8], lo: usize, op: usize, triggers: &Triggers) -> Option<Found> {
    let (v, quote) = value_start(body, op)?;
    if v < lo {
        return None;
    }
    // A provider-specific secret right there is reported as such.
    if let Some((at, t)) = triggers.find(body, v)
        && at == v
        && let Some(f) = secret_at(body, v, t)
    {
        return Some(f);
    }
    let end = value_end(body, v, quote)?;
    let value = body.get(v..end)?;
    credential_value(value).then_some(Found { entity: Entity::SecretGeneric, start: v, end })
}

/// The end of the value at `v`: up to its closing quote, or the end of an unquoted token.
fn value_end(body: &[u8], v: usize, quote: Option<u8>) -> Option<usize> {
    let rest = body.get(v..)?;
    match quote {
        Some(q) => {
            let n = rest.iter().take(MAX_VALUE + 1).position(|&b| b == q || b == b'\\' || b.is_ascii_whitespace())?;
            // The closing quote (possibly escaped in raw JSON) must be there.
            let close = rest.get(n)?;
            (*close == q || (*close == b'\\' && rest.get(n + 1) == Some(&q))).then_some(v + n)
        }
        None => {
            let n = rest
                .iter()
                .take(MAX_VALUE + 1)
                .take_while(|&&b| b.is_ascii_alphanumeric() || b"_-.+/=~!@#$%^*".contains(&b))
                .count();
            let mut e = v + n;
            while e > v && matches!(body.get(e - 1), Some(b'.' | b',' | b'!')) {
                e -= 1;
            }
            // Not a call, an index or a template (`get_token()`, `env["KEY"]`).
            match body.get(v + n) {
                Some(b'(' | b'[' | b'{' | b'<') => None,
                _ => Some(e),
            }
        }
    }
}

/// Whether a value looks like a credential: long, random, not a placeholder or a reference.
fn credential_value(value: &[u8]) -> bool {
    if !(MIN_VALUE..=MAX_VALUE).contains(&value.len()) {
        return false;
    }
    if value
        .iter()
        .any(|&b| matches!(b, b'{' | b'}' | b'<' | b'>' | b'(' | b')' | b'[' | b']' | b'"' | b'\'') || b >= 0x80)
    {
        return false;
    }
    let lower: Vec<u8> = value.iter().map(u8::to_ascii_lowercase).collect();
    const PLACEHOLDERS: &[&[u8]] = &[
        b"example",
        b"placeholder",
        b"changeme",
        b"change_me",
        b"your_",
        b"your-",
        b"yourapi",
        b"redacted",
        b"xxxxx",
        b"*****",
        b"${",
        b"%(",
        b"process.env",
        b"environ",
        b"getenv",
        b"secretsmanager",
        b"vault:",
        b"dummy",
        b"sample",
        b"insert",
        b"replace",
        b"todo",
        b"fixme",
        b"here",
        b"null",
        b"undefined",
        b"none",
    ];
    if PLACEHOLDERS.iter().any(|p| lower.windows(p.len()).any(|w| w == *p)) {
        return false;
    }
    // An email address or URL is not a credential of its own.
    if value.contains(&b'@') && value.iter().skip_while(|&&b| b != b'@').any(|&b| b == b'.') {
        return false;
    }
    if lower.starts_with(b"http") || lower.starts_with(b"/") || lower.starts_with(b"./") {
        return false;
    }
    let has = |f: fn(&u8) -> bool| value.iter().any(f);
    let classes = [
        has(u8::is_ascii_lowercase),
        has(u8::is_ascii_uppercase),
        has(u8::is_ascii_digit),
        has(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    // All digits is a number (`timeout=1234567890`); one letter class alone is a word.
    if classes < 2 || !has(u8::is_ascii_alphabetic) {
        return false;
    }
    // A dotted identifier (`self.config.token_value`) is code.
    if value.contains(&b'.')
        && value.split(|&b| b == b'.').all(|p| p.iter().all(|b| b.is_ascii_lowercase() || *b == b'_'))
    {
        return false;
    }
    entropy(value) >= MIN_ENTROPY && looks_random(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for k in [
            "password",
            "DB_PASSWORD",
            "api_key",
            "apiKey",
            "client_secret",
            "Authorization",
            "x-api-key",
            "AUTH_TOKEN",
            "secret",
            "access_key",
            "passwd",
            "token",
        ] {
            assert!(credential_key(k.as_bytes()), "{k}");
        }
        for k in [
            "max_tokens",
            "token_type",
            "key_id",
            "author",
            "public_key",
            "monkey",
            "keyboard",
            "name",
            "password_length",
            "tokenizer",
        ] {
            assert!(!credential_key(k.as_bytes()), "{k}");
        }
    }

    #[test]
    fn values() {
        assert!(credential_value(b"q_oDxsonGHixeRGS6Ab2z_JEj"));
        assert!(credential_value(b"9f86d081884c7d659a2feaa0c55ad015"));
        assert!(!credential_value(b"your_api_key_here"));
        assert!(!credential_value(b"${API_KEY}"));
        assert!(!credential_value(b"1234567890123"));
        assert!(!credential_value(b"supersecret"));
        assert!(!credential_value(b"self.config.token"));
    }
}
