//! The streaming hold-back point: how much of the end of a text may still become (part of) a
//! match, with the context a detector reads before it.
//!
//! Looks back from the end, never more than a few hundred bytes (a PEM block excepted):
//! 1. the trailing token (no whitespace or delimiter in it) is unfinished, so held;
//! 2. before it, the pieces a multi-word value is made of are held while they chain: numbers
//!    and digit groups (phones, cards, IBANs, house numbers), capitalised words (names,
//!    streets), known first names in any case with the surnames after them, street types and
//!    particles (`rue`, `de la`), joined by spaces, one line break, `,`, `<` or `(`;
//! 3. the context of a held value is held with it: `password=`, `"api_key": "`, `"name": "`;
//! 4. an open PEM block is held from its `-----BEGIN`.

use memchr::memmem;

use super::dict::{is_english, is_first, is_last, lower};
use super::generic::{credential_key, key_before};
use super::names::is_name_key;

/// Longest tail looked at for an open multi-word candidate.
const MAX_RUN: usize = 256;
/// Most pieces a multi-word candidate spans.
const MAX_PIECES: usize = 12;
/// Longest trailing token held, and longest PEM block looked back over.
const MAX_TOKEN: usize = 64 * 1024;

/// Bytes that end a token whatever the detector: whitespace and delimiters no value contains.
fn is_break(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'<' | b'>' | b'[' | b']' | b'{' | b'}')
}

/// What a piece before the trailing token is to a multi-word value.
#[derive(PartialEq, Eq)]
enum Piece {
    /// Can start or continue a value: hold from it.
    Value,
    /// A surname in lowercase: part of a name only if a first name comes before it.
    Surname,
    /// Continues a value but does not start one (`de`, `x`, `ext.`).
    Connector,
    /// Ends the chain.
    Other,
}

/// Words that continue a multi-word value but do not start one: every particle a name may hold
/// (`Khalid bin Walid` split after `bin` must not release `Khalid bin`), street particles and
/// phone extensions.
pub(super) const CONNECTORS: &[&str] = &[
    "al", "bin", "d'", "da", "das", "de", "degli", "dei", "del", "della", "delle", "den", "der", "des", "di", "do",
    "dos", "du", "e", "el", "ext", "ext.", "het", "ibn", "l'", "la", "las", "le", "les", "lo", "los", "te", "ten",
    "ter", "van", "von", "x", "y", "zu",
];

fn classify(tok: &[u8]) -> Piece {
    let Some(&b) = tok.first() else { return Piece::Other };
    if b == b'+' || b == b'(' || tok.iter().any(u8::is_ascii_digit) {
        return Piece::Value;
    }
    if b.is_ascii_uppercase() {
        return if opens_nothing(tok) { Piece::Connector } else { Piece::Value };
    }
    if b >= 0x80 {
        return Piece::Value;
    }
    let t: &[u8] = tok.strip_suffix(b",").unwrap_or(tok);
    if super::address::LOWER_TYPES.iter().any(|s| s.as_bytes() == t) {
        return Piece::Value;
    }
    let connector = CONNECTORS.iter().any(|c| c.as_bytes() == t);
    if t.iter().all(|&c| c.is_ascii_lowercase() || c == b'-' || c == b'\'' || c >= 0x80) {
        let l = lower(t);
        let s = l.as_str();
        let parts = || s.split('-').filter(|p| !p.is_empty());
        // A first name in lowercase may open a name (`jamie fox`, `al smith`: a connector too);
        // short English words that are also names somewhere (`so`, `ok`) do not.
        if parts().next().is_some_and(|p| is_first(p) && !(p.len() <= 3 && is_english(p))) {
            return Piece::Value;
        }
        if connector {
            return Piece::Connector;
        }
        if parts().all(|p| is_last(p) || is_first(p)) && !s.is_empty() {
            return Piece::Surname;
        }
    }
    if connector { Piece::Connector } else { Piece::Other }
}

/// Whether a capitalised word cannot start a value, though one may run through it (`12 Park`):
/// a common English word (`Hello,`, `The`, `Sure!`) that is no first name, title or street
/// type. The name detector starts no name at such a word (even one a surname list has, such as
/// `The`), nor does any street form, so an answer's first word need not wait for the next token.
fn opens_nothing(tok: &[u8]) -> bool {
    let t = tok.strip_suffix(b",").unwrap_or(tok);
    let t = t.strip_suffix(b"!").or_else(|| t.strip_suffix(b"?")).or_else(|| t.strip_suffix(b":")).unwrap_or(t);
    if !t.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let l = lower(t);
    let s = l.as_str();
    // `Hamburger Straße 5`: a German street may start with an adjective in -er.
    is_english(s)
        && !s.ends_with("er")
        && !is_first(s)
        && !super::names::TITLES.contains(&s)
        && !super::address::starts_street(s)
}

/// See [`super::hold_from`].
pub(super) fn hold_from(text: &[u8]) -> usize {
    let len = text.len();
    let mut hold = len;
    // 1. The trailing token.
    let mut i = len;
    while i > 0 && len - i < MAX_TOKEN && text.get(i - 1).is_some_and(|&b| !is_break(b)) {
        i -= 1;
    }
    // A word and its comma, `!` or `?` (`Hello,`, `Sure!`) is finished: no value has one after
    // letters (an email's local part has none), unless it is a credential's value after its key
    // (`password="Hello,…`, `Authorization: Bearer Hello!…`) or a name's after a name key.
    let tok = text.get(i..len).unwrap_or(&[]);
    if let Some(word) = tok.strip_suffix(b",").or_else(|| tok.strip_suffix(b"!")).or_else(|| tok.strip_suffix(b"?"))
        && !word.is_empty()
        && word.iter().all(u8::is_ascii_alphabetic)
        && context_start(text, i) == i
        && !super::generic::value_starts_at(text, i)
    {
        i = len;
    }
    if i < len {
        hold = i;
    }
    // 2. Earlier pieces of a multi-word value the end could still continue.
    let floor = len.saturating_sub(MAX_RUN).min(i);
    let mut end = i;
    for _ in 0..MAX_PIECES {
        // The gap: spaces, tabs, `,`, `<`, `(`, at most one line break; at most four bytes.
        let mut gap = end;
        let mut newlines = 0;
        while gap > floor && end - gap < 4 {
            match text.get(gap - 1) {
                Some(b' ' | b'\t' | b',' | b'<' | b'(') => gap -= 1,
                Some(b'\n') if newlines == 0 => {
                    newlines += 1;
                    gap -= 1;
                    if gap > floor && text.get(gap - 1) == Some(&b'\r') {
                        gap -= 1;
                    }
                }
                _ => break,
            }
        }
        if gap == end && end != len {
            break;
        }
        let mut start = gap;
        while start > floor && text.get(start - 1).is_some_and(|&b| !is_break(b)) {
            start -= 1;
        }
        let Some(tok) = text.get(start..gap) else { break };
        match classify(tok) {
            Piece::Value => hold = hold.min(start),
            Piece::Surname | Piece::Connector => {}
            Piece::Other => break,
        }
        if tok.is_empty() {
            break;
        }
        end = start;
    }
    // 3. The key of a value being held, or of a value still to come. A name field's value
    // (`"name": "mr smith`) is matched whole, any words after a title or first name, up to its
    // closing quote within 128 bytes: an open string after such a key is held from the key.
    let from = len.saturating_sub(128);
    if let Some(q) = text.get(from..).and_then(|w| memchr::memrchr(b'"', w)).map(|q| from + q)
        && text.get(..q).is_some_and(|t| t.ends_with(b": ") || t.ends_with(b":"))
    {
        let k = context_start(text, q + 1);
        if k <= q {
            hold = hold.min(k);
        }
    }
    hold = context_start(text, hold);
    // 4. An open PEM block.
    hold.min(open_pem(text).unwrap_or(len))
}

/// When the text before `h` ends with a credential or name key and its operator
/// (`password=`, `"api_key": "`, `"name": "`), the start of that key; else `h`.
fn context_start(text: &[u8], h: usize) -> usize {
    let mut i = h;
    let mut n = 0;
    while i > 0 && n < 4 && text.get(i - 1).is_some_and(|&b| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'`' | b'\\')) {
        i -= 1;
        n += 1;
    }
    // `=`, `:`, `:=`, `=>`.
    let op_end = i;
    while i > 0 && op_end - i < 2 && text.get(i - 1).is_some_and(|&b| matches!(b, b'=' | b':' | b'>')) {
        i -= 1;
    }
    if i == op_end {
        return h;
    }
    let (mut k, key_end) = key_before(text, i);
    let Some(key) = text.get(k..key_end) else { return h };
    if key.is_empty() || !(credential_key(key) || is_name_key(key)) {
        return h;
    }
    // Include an opening quote of the key.
    if k > 0 && matches!(text.get(k - 1), Some(b'"' | b'\'')) {
        k -= 1;
    }
    k.min(h)
}

/// The start of a PEM block opened and not yet closed at the end of the text.
fn open_pem(text: &[u8]) -> Option<usize> {
    let from = text.len().saturating_sub(MAX_TOKEN);
    let window = text.get(from..)?;
    let begin = memmem::rfind(window, b"-----BEGIN")?;
    let after = window.get(begin + 10..)?;
    match memmem::find(after, b"-----END") {
        // Closed once the END label has its closing dashes.
        Some(e) => {
            let label = after.get(e + 8..)?;
            let closed = label
                .iter()
                .take(80)
                .position(|&b| b == b'-')
                .is_some_and(|d| label.get(d..).is_some_and(|r| r.starts_with(b"-----")));
            (!closed).then_some(from + begin)
        }
        None => Some(from + begin),
    }
}

#[cfg(test)]
mod tests {
    use super::hold_from;

    fn held(text: &str) -> &str {
        &text[hold_from(text.as_bytes())..]
    }

    #[test]
    fn every_name_particle_connects() {
        for p in super::super::names::PARTICLES {
            assert!(super::CONNECTORS.contains(p), "{p}");
        }
        assert_eq!(held("for Khalid bin "), "Khalid bin ");
        assert_eq!(held("for Khalid ibn "), "Khalid ibn ");
        // A particle that is also a first name still opens a name in lowercase.
        assert_eq!(held("write to al smith "), "al smith ");
        assert_eq!(held("write to el garcia "), "el garcia ");
    }

    #[test]
    fn holds() {
        assert_eq!(held("could you help me rewri"), "rewri");
        assert_eq!(held("could you help me "), "");
        assert_eq!(held("call me at +33 1 56 75 "), "+33 1 56 75 ");
        assert_eq!(held("card 4252 4829"), "4252 4829");
        assert_eq!(held("between Sonia Römer "), "Sonia Römer ");
        assert_eq!(held("and jamie fox-lawrence <jack"), "jamie fox-lawrence <jack");
        assert_eq!(held("98, chemin de "), "98, chemin de ");
        assert_eq!(held("chemin de "), "chemin de ");
        assert_eq!(held("the day "), "");
        // An answer's first word goes out once it is finished, unless a value may start with it.
        for done in
            ["Hello, ", "Sure! ", "The ", "Here ", "Thanks, ", "Great question: ", "Hello,", "Sure!", "Why?", "During "]
        {
            assert_eq!(held(done), "", "{done:?}");
        }
        for open in ["Dr. ", "Mr ", "Maria ", "Via ", "Avenue ", "Smith, ", "12 Park ", "Kwame ", "Maria,", "Hello"] {
            assert_eq!(held(open), open, "{open:?}");
        }
        assert_eq!(held(r#"password="Hello,"#), r#"password="Hello,"#);
        assert_eq!(held("at 4111,"), "4111,");
        // A credential's value after its key, as the generic detector reads it, stays held.
        assert!(held("Authorization: Bearer Hello!").ends_with("Bearer Hello!"));
        assert!(held(r#"password:   \"Hello,"#).ends_with("Hello,"));
        for open in ["Hamburger ", "Frankfurter "] {
            assert_eq!(held(open), open, "{open:?}");
        }
        assert_eq!(held(r#"api_key=""#), r#"api_key=""#);
        assert_eq!(held(r#"{"api_key": "q_oDx"#), r#""api_key": "q_oDx"#);
        assert_eq!(held(r#"{"name": "stephen go"#), r#""name": "stephen go"#);
        // A name field is matched whole after a title or first name: held to its closing quote.
        assert_eq!(held(r#"{"name": "mr smith "#), r#""name": "mr smith "#);
        assert_eq!(held(r#"{"name": "mr smith", "#), "");
        assert_eq!(
            held("x -----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRI"),
            "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRI"
        );
        assert_eq!(held("x -----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY----- done "), "");
    }
}
