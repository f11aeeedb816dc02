//! Streamed tool-call arguments: a lexer over their JSON text as it arrives.
//!
//! Whole arguments are masked per value ([`super::body::mask_arguments`]: every string value
//! and number is text, keys and punctuation are kept). A stream delivers the same JSON text in
//! pieces, so its channel reads it token by token with this lexer and holds only an unfinished
//! token: each value is masked whole, exactly as in the whole document, and a masked value
//! never breaks the JSON the caller's tool parser will read. When the text stops being JSON, the
//! rest of the channel is masked as text, as whole arguments that do not parse are.

use super::json::MAX_DEPTH;

/// A value held longer than this stops the lexer (the rest is masked as text, with the text
/// hold-back), so an unterminated string cannot hold the stream without bound.
pub(super) const MAX_HELD_TOKEN: usize = 64 * 1024;

/// The lexer's state between tokens.
#[derive(Debug, Default)]
pub(super) struct ArgsLex {
    /// Open containers, innermost last: `true` for an object.
    stack: Vec<bool>,
    /// In an object, whether the next string is a member key.
    expect_key: bool,
    /// Set once the text is not JSON; never cleared.
    pub failed: bool,
}

/// The next token of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    /// Whitespace, punctuation, a literal or a key, ending at the offset: passed as it is.
    Keep(usize),
    /// A string value (quotes included) or a number, ending at the offset: masked.
    Value {
        /// End offset.
        end: usize,
        /// Whether it is a number.
        number: bool,
    },
    /// Unfinished: wait for more text.
    Open,
    /// Not JSON.
    Bad,
}

impl ArgsLex {
    /// The token of `buf` that starts at `pos` (`pos < buf.len()`); `flush` when no more text
    /// will come, so an unfinished token is [`Tok::Bad`].
    pub(super) fn next(&mut self, buf: &[u8], pos: usize, flush: bool) -> Tok {
        let rest = buf.get(pos..).unwrap_or(&[]);
        let open = if flush { Tok::Bad } else { Tok::Open };
        let Some(&c) = rest.first() else { return open };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                let n = rest.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count();
                Tok::Keep(pos + n)
            }
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Tok::Bad;
                }
                self.stack.push(c == b'{');
                self.expect_key = c == b'{';
                Tok::Keep(pos + 1)
            }
            b'}' | b']' => {
                if self.stack.pop() != Some(c == b'}') {
                    return Tok::Bad;
                }
                self.expect_key = false;
                Tok::Keep(pos + 1)
            }
            b',' => match self.stack.last() {
                Some(&obj) => {
                    self.expect_key = obj;
                    Tok::Keep(pos + 1)
                }
                None => Tok::Bad,
            },
            b':' => {
                if self.stack.last() != Some(&true) {
                    return Tok::Bad;
                }
                self.expect_key = false;
                Tok::Keep(pos + 1)
            }
            b'"' => match string_end(rest) {
                Some(Ok(n)) => {
                    if self.stack.last() == Some(&true) && self.expect_key {
                        self.expect_key = false;
                        Tok::Keep(pos + n)
                    } else {
                        Tok::Value { end: pos + n, number: false }
                    }
                }
                Some(Err(())) => Tok::Bad,
                None => open,
            },
            b'-' | b'0'..=b'9' => {
                let n = rest.iter().take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).count();
                if n == rest.len() && !flush {
                    return Tok::Open;
                }
                if valid_number(rest.get(..n).unwrap_or(&[])) {
                    Tok::Value { end: pos + n, number: true }
                } else {
                    Tok::Bad
                }
            }
            b't' | b'f' | b'n' => {
                let lit: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if rest.starts_with(lit) {
                    Tok::Keep(pos + lit.len())
                } else if lit.starts_with(rest) {
                    open
                } else {
                    Tok::Bad
                }
            }
            _ => Tok::Bad,
        }
    }
}

/// The length of the JSON string at the start of `s` (its opening quote), quotes included;
/// `None` while unterminated, `Err` when it is not a valid string.
fn string_end(s: &[u8]) -> Option<Result<usize, ()>> {
    let mut i = 1;
    loop {
        let n = memchr::memchr2(b'"', b'\\', s.get(i..)?)?;
        if s.get(i..i + n).is_some_and(|run| run.iter().any(|&b| b < 0x20)) {
            return Some(Err(()));
        }
        i += n;
        if s.get(i) == Some(&b'"') {
            return Some(Ok(i + 1));
        }
        match s.get(i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
            b'u' => {
                let hex = s.get(i + 2..i + 6)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Some(Err(()));
                }
                i += 6;
            }
            _ => return Some(Err(())),
        }
    }
}

/// Whether `s` is a JSON number (RFC 8259 grammar).
fn valid_number(s: &[u8]) -> bool {
    let s = s.strip_prefix(b"-").unwrap_or(s);
    let int = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if int == 0 || (int > 1 && s.first() == Some(&b'0')) {
        return false;
    }
    let mut rest = s.get(int..).unwrap_or(&[]);
    if let Some(r) = rest.strip_prefix(b".") {
        let frac = r.iter().take_while(|b| b.is_ascii_digit()).count();
        if frac == 0 {
            return false;
        }
        rest = r.get(frac..).unwrap_or(&[]);
    }
    if let Some(r) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let r = r.strip_prefix(b"+").or_else(|| r.strip_prefix(b"-")).unwrap_or(r);
        let exp = r.iter().take_while(|b| b.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        rest = r.get(exp..).unwrap_or(&[]);
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tokens(text: &str, flush: bool) -> Vec<(String, &'static str)> {
        let (mut lex, b, mut pos, mut out) = (ArgsLex::default(), text.as_bytes(), 0, Vec::new());
        while pos < b.len() {
            let (end, kind) = match lex.next(b, pos, flush) {
                Tok::Keep(e) => (e, "keep"),
                Tok::Value { end, number: false } => (end, "string"),
                Tok::Value { end, number: true } => (end, "number"),
                Tok::Open => (b.len(), "open"),
                Tok::Bad => (b.len(), "bad"),
            };
            out.push((text[pos..end].to_owned(), kind));
            pos = end;
        }
        out
    }

    #[test]
    fn keys_are_kept_and_values_masked() {
        let t = tokens(r#"{"to": "a@b.c", "n": [1, -2.5e3, "x"], "k": {"t": true}}"#, true);
        let values: Vec<&str> = t.iter().filter(|(_, k)| *k != "keep").map(|(s, _)| s.as_str()).collect();
        assert_eq!(values, [r#""a@b.c""#, "1", "-2.5e3", r#""x""#]);
        assert!(t.iter().any(|(s, k)| s == r#""to""# && *k == "keep"));
        assert!(t.iter().any(|(s, k)| s == r#""t""# && *k == "keep"));
    }

    #[test]
    fn unfinished_tokens_wait_and_fail_at_the_end() {
        for text in [r#"{"to": "a@b"#, r#"{"n": 41"#, r#"{"ok": tr"#, r#"{"s": "\u00"#, r#"{"s": "x\"#] {
            assert_eq!(tokens(text, false).last().unwrap().1, "open", "{text}");
            let at_end = if text.ends_with("41") { "number" } else { "bad" };
            assert_eq!(tokens(text, true).last().unwrap().1, at_end, "{text}");
        }
    }

    #[test]
    fn not_json_is_bad() {
        for text in ["{]", "x", "{\"a\":01}", "{\"a\":1.}", "[\"\\x\"]", "{\"a\":tx}", "\"raw\nbreak\""] {
            assert_eq!(tokens(text, true).last().unwrap().1, "bad", "{text:?}");
        }
    }
}
