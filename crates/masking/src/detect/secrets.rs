//! Shape checks for secret candidates. Each takes the body and the offset of its trigger and
//! returns the end of the value when the candidate is confirmed.
//!
//! Every run is capped, and a candidate that starts inside a run of its own alphabet is rejected
//! before any run is read, so the checks stay linear in the body whatever it holds.

use super::Entity;
use super::text::{is_alnum_dash, is_b64url, is_upper_digit, is_word, looks_random, run, starts_word};

/// Longest token body read; a longer run is not the token.
const MAX_TOKEN: usize = 256;
/// Longest JWT segment read (headers with certificate chains run to a few KiB).
const MAX_JWT_SEGMENT: usize = 64 * 1024;
/// Shortest JWT segment.
const MIN_JWT_SEGMENT: usize = 10;
/// Longest PEM block read after its header.
const MAX_PEM_BLOCK: usize = 64 * 1024;
/// Shortest base64 line fragment that makes a PEM header a key rather than a mention.
const MIN_PEM_BASE64: usize = 16;

/// `AKIA`/`ASIA` + 16 `[A-Z0-9]`, word-bounded, not the documented `…EXAMPLE` placeholder.
pub(super) fn aws_access_key(body: &[u8], start: usize) -> Option<usize> {
    if !starts_word(body, start, is_word) {
        return None;
    }
    let end = start + 20;
    let tail = body.get(start + 4..end)?;
    let bounded = !body.get(end).is_some_and(|&b| is_word(b));
    (bounded && tail.iter().all(|&b| is_upper_digit(b)) && !tail.ends_with(b"EXAMPLE") && looks_random(tail))
        .then_some(end)
}

/// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + at least 36 `[A-Za-z0-9]`.
pub(super) fn github_classic(body: &[u8], start: usize) -> Option<usize> {
    token(body, start, 4, 36, is_word, |b| b.is_ascii_alphanumeric())
}

/// `github_pat_` + at least 82 `[A-Za-z0-9_]`.
pub(super) fn github_fine_grained(body: &[u8], start: usize) -> Option<usize> {
    token(body, start, 11, 82, is_word, is_word)
}

/// `glpat-` + at least 20 `[A-Za-z0-9_-]`.
pub(super) fn gitlab(body: &[u8], start: usize) -> Option<usize> {
    token(body, start, 6, 20, is_b64url, is_b64url)
}

/// `xox[baprs]-` + at least 20 `[A-Za-z0-9-]`, the first dash-separated part numeric.
pub(super) fn slack(body: &[u8], start: usize) -> Option<usize> {
    let end = token(body, start, 5, 20, is_b64url, is_alnum_dash)?;
    let rest = body.get(start + 5..end)?;
    let first = rest.iter().take_while(|&&b| b != b'-').count();
    (first > 0 && rest.iter().take(first).all(u8::is_ascii_digit)).then_some(end)
}

/// `sk-` + at least 20 `[A-Za-z0-9_-]` that look generated: mixed case and digits, or long
/// lowercase hex. `sk-ant-` is Anthropic's; other `sk-` keys are OpenAI-style.
pub(super) fn sk_key(body: &[u8], start: usize) -> Option<(Entity, usize)> {
    let end = token(body, start, 3, 20, is_b64url, is_b64url)?;
    let rest = body.get(start + 3..end)?;
    let has = |f: fn(&u8) -> bool| rest.iter().any(f);
    let mixed = has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit);
    let hex = rest.len() >= 32
        && rest.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && has(u8::is_ascii_digit)
        && has(u8::is_ascii_lowercase);
    if !(mixed || hex) {
        return None;
    }
    let entity = if rest.starts_with(b"ant-") { Entity::SecretAnthropicKey } else { Entity::SecretOpenaiKey };
    Some((entity, end))
}

/// A token: `prefix_len` bytes of trigger, then a run of `class` of at least `min` bytes that is
/// not preceded by a byte of `before`, not followed by a word byte, and not a placeholder.
fn token(
    body: &[u8],
    start: usize,
    prefix_len: usize,
    min: usize,
    before: fn(u8) -> bool,
    class: fn(u8) -> bool,
) -> Option<usize> {
    if !starts_word(body, start, before) {
        return None;
    }
    let from = start + prefix_len;
    let n = run(body, from, MAX_TOKEN, class);
    let end = from + n;
    let rest = body.get(from..end)?;
    let bounded = !body.get(end).is_some_and(|&b| is_word(b));
    (n >= min && n < MAX_TOKEN && bounded && looks_random(rest)).then_some(end)
}

/// `eyJ…` `.` `…` `.` `…`: three base64url segments of at least 10 bytes, the header decoding to
/// JSON with an `"alg"` key and the payload to a JSON object.
pub(super) fn jwt(body: &[u8], start: usize) -> Option<usize> {
    if !starts_word(body, start, is_b64url) {
        return None;
    }
    let header = segment(body, start)?;
    let payload = segment(body, dot_after(body, header.end)?)?;
    let signature = segment(body, dot_after(body, payload.end)?)?;
    let header = body.get(header)?;
    let payload = body.get(payload)?;
    let alg = u64::from_be_bytes(*b"\0\0\0\"alg\"");
    let has_alg = B64UrlBytes::new(header)
        .scan(0u64, |window, b| {
            *window = ((*window << 8) | u64::from(b)) & 0xff_ffff_ffff;
            Some(*window)
        })
        .any(|window| window == alg);
    let object = B64UrlBytes::new(payload).find(|b| !b.is_ascii_whitespace()) == Some(b'{');
    (has_alg && object).then_some(signature.end)
}

/// The base64url run at `from`, when it is a plausible JWT segment.
fn segment(body: &[u8], from: usize) -> Option<std::ops::Range<usize>> {
    let n = run(body, from, MAX_JWT_SEGMENT, is_b64url);
    (MIN_JWT_SEGMENT..MAX_JWT_SEGMENT).contains(&n).then_some(from..from + n)
}

/// The offset after the `.` at `at`.
fn dot_after(body: &[u8], at: usize) -> Option<usize> {
    (body.get(at) == Some(&b'.')).then_some(at + 1)
}

/// Decodes unpadded base64url lazily, without allocating.
struct B64UrlBytes<'a> {
    chars: std::slice::Iter<'a, u8>,
    acc: u32,
    bits: u32,
}

impl<'a> B64UrlBytes<'a> {
    fn new(s: &'a [u8]) -> B64UrlBytes<'a> {
        B64UrlBytes { chars: s.iter(), acc: 0, bits: 0 }
    }
}

impl Iterator for B64UrlBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        while self.bits < 8 {
            let v = match *self.chars.next()? {
                c @ b'A'..=b'Z' => c - b'A',
                c @ b'a'..=b'z' => c - b'a' + 26,
                c @ b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            };
            self.acc = (self.acc << 6) | u32::from(v);
            self.bits += 6;
        }
        self.bits -= 8;
        let byte = (self.acc >> self.bits) as u8;
        self.acc &= (1 << self.bits) - 1;
        Some(byte)
    }
}

/// `-----BEGIN … PRIVATE KEY-----` (or `PRIVATE KEY BLOCK`, PGP) followed by key material: a
/// base64 fragment of at least 16 bytes before the block ends. The value runs to the matching
/// `-----END …-----`, or to the end of the block when the key is truncated. Line breaks may be
/// JSON escapes (`\n`), and `/` may be escaped (`\/`).
pub(super) fn private_key(body: &[u8], start: usize) -> Option<usize> {
    let label_from = start + "-----BEGIN ".len();
    let label = label_at(body, label_from)?;
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return None;
    }
    let block = label_from + label.len() + "-----".len();
    let limit = body.len().min(block + MAX_PEM_BLOCK);
    let (mut i, mut end) = (block, block);
    let (mut fragment, mut longest) = (0, 0);
    while i < limit {
        let Some(&b) = body.get(i) else { break };
        if b == b'-' && body.get(i..).is_some_and(|r| r.starts_with(b"-----")) {
            if body.get(i..).is_some_and(|r| r.starts_with(b"-----END ")) {
                let end_label = i + "-----END ".len();
                end = end_label + label_at(body, end_label).map_or(0, |l| l.len() + "-----".len());
            }
            break;
        }
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {
                fragment += 1;
                end = i + 1;
                i += 1;
            }
            b'\\' if body.get(i + 1) == Some(&b'/') => {
                fragment += 1;
                end = i + 2;
                i += 2;
            }
            // Other escapes (`\n`, `\r`) and header lines (`Proc-Type: 4,ENCRYPTED`).
            b'\\' | b' ' | b'\t' | b'\r' | b'\n' | b':' | b',' | b'-' | b'.' => {
                fragment = 0;
                i += if b == b'\\' { 2 } else { 1 };
            }
            _ => break,
        }
        longest = longest.max(fragment);
    }
    (longest >= MIN_PEM_BASE64).then_some(end)
}

/// The PEM label at `from` (`RSA PRIVATE KEY`), when `-----` closes it.
fn label_at(body: &[u8], from: usize) -> Option<&[u8]> {
    let n = run(body, from, 64, |b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
    let label = body.get(from..from + n)?;
    body.get(from + n..)?.starts_with(b"-----").then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decoding() {
        let decoded: Vec<u8> = B64UrlBytes::new(b"eyJhbGciOiJIUzI1NiJ9").collect();
        assert_eq!(decoded, br#"{"alg":"HS256"}"#);
        let decoded: Vec<u8> = B64UrlBytes::new(b"_-8").collect();
        assert_eq!(decoded, [0xff, 0xef]);
    }
}
