//! The text-level masking engine: which types a plan masks, the replacement of each mode, the
//! exchange's tokenize mapping, placeholder restoration and the counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Count, Counts, Mode, Plan};
use crate::detect::{Detector, Entity, Found};

/// Longest placeholder restored (`<` + type name + `_` + number + `>`).
pub(super) const MAX_PLACEHOLDER: usize = 96;

/// Which way the text flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dir {
    /// Caller to model.
    Request,
    /// Model to caller.
    Response,
}

/// What the live output ("A": forwarded upstream, or returned to the caller) is, beside the
/// recorded output ("B", always the masked form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// A is B: the direction is masked live and nothing is restored.
    Same,
    /// A is the input: the direction is not masked live and nothing is restored.
    Raw,
    /// A differs from B: tokenize placeholders of this exchange are restored in it; values are
    /// masked in it when `mask` (the direction is masked live).
    Restore {
        /// Whether the direction is masked live.
        mask: bool,
    },
}

/// Whether a pass changed each output.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Changed {
    /// The live output.
    pub a: bool,
    /// The recorded output.
    pub b: bool,
}

impl std::ops::BitOrAssign for Changed {
    fn bitor_assign(&mut self, o: Changed) {
        self.a |= o.a;
        self.b |= o.b;
    }
}

/// The values of one type seen in the exchange, numbered from 1.
struct Tokens {
    entity: Entity,
    by_value: HashMap<Vec<u8>, u32>,
    /// Value, and whether the caller sent it (only those are restored).
    values: Vec<(Vec<u8>, bool)>,
}

/// Per-exchange masking state.
pub(super) struct Engine {
    pub mode: Mode,
    globs: Vec<String>,
    enabled: Vec<(Entity, bool)>,
    key: Arc<[u8; 32]>,
    /// The keyed HMAC state, built on the first pseudonym.
    mac: Option<Hmac<Sha256>>,
    tokens: Vec<Tokens>,
    counts: [Vec<(Entity, Count)>; 2],
    rep: Vec<u8>,
    pub detector: Detector,
}

impl Engine {
    pub fn new(plan: &Plan, key: Arc<[u8; 32]>, detector: Detector) -> Engine {
        Engine {
            mode: plan.mode,
            globs: plan.entities.clone(),
            enabled: Vec::new(),
            key,
            mac: None,
            tokens: Vec::new(),
            counts: [Vec::new(), Vec::new()],
            rep: Vec::new(),
            detector,
        }
    }

    /// Whether the plan masks this type (cached per type).
    fn enabled(&mut self, e: Entity) -> bool {
        if let Some(&(_, on)) = self.enabled.iter().find(|(x, _)| *x == e) {
            return on;
        }
        let on = self.globs.iter().any(|g| protocols::glob::matches(g, e.name()));
        self.enabled.push((e, on));
        on
    }

    fn count(&mut self, dir: Dir, e: Entity, masked: bool) {
        let counts = &mut self.counts[dir as usize];
        let i = match counts.iter().position(|(x, _)| *x == e) {
            Some(i) => i,
            None => {
                counts.push((e, Count::default()));
                counts.len() - 1
            }
        };
        if let Some((_, c)) = counts.get_mut(i) {
            c.found += 1;
            c.masked += u64::from(masked);
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let map = |v: &Vec<(Entity, Count)>| -> BTreeMap<String, Count> {
            v.iter().map(|(e, c)| (e.name().to_owned(), *c)).collect()
        };
        Counts { request: map(&self.counts[0]), response: map(&self.counts[1]) }
    }

    /// Scans `text` with the exchange's detector, appending the matches to `out` (cleared first).
    pub fn scan(&self, text: &[u8], out: &mut Vec<Found>) {
        out.clear();
        self.detector.scan(text, |f| out.push(f));
    }

    /// Masks `text`, whose matches are `matches` (offsets relative to `base`, all inside
    /// `text`): appends the recorded form to `b` and, when `side` is [`Side::Restore`], the live
    /// form to `a`. Counts every match.
    ///
    /// With `inner` (the lexical state of a JSON document at the start of `text`, advanced past
    /// it), `text` is a piece of a JSON document such as tool-call arguments: a replacement
    /// outside a string becomes a string (`4111…` → `"[CREDIT_CARD]"`), and restored values are
    /// JSON-escaped, so the document stays JSON.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        dir: Dir,
        side: Side,
        text: &[u8],
        matches: &[Found],
        base: usize,
        mut inner: Option<&mut InnerJson>,
        a: &mut Vec<u8>,
        b: &mut Vec<u8>,
    ) -> Changed {
        let mut changed = Changed::default();
        let restore = matches!(side, Side::Restore { .. });
        let escape = inner.is_some();
        let mut last = 0;
        for m in matches {
            let (mut start, end) = (m.start - base, m.end - base);
            // Inside a JSON document: whether the match starts in one of its strings.
            let in_string = inner.as_deref_mut().map(|st| {
                st.advance(text.get(last..start).unwrap_or(&[]));
                let in_string = st.in_string;
                // A number's sign goes with it into the string (`-4111…` → `"[CREDIT_CARD]"`).
                if !in_string && start > last && text.get(start - 1) == Some(&b'-') {
                    start -= 1;
                }
                st.advance(text.get(start..end).unwrap_or(&[]));
                in_string
            });
            let quote: &[u8] = if in_string == Some(false) { b"\"" } else { b"" };
            let seg = text.get(last..start).unwrap_or(&[]);
            let value = text.get(start..end).unwrap_or(&[]);
            b.extend_from_slice(seg);
            if restore {
                changed.a |= self.restore_into(seg, escape, a);
            }
            let on = self.enabled(m.entity);
            self.count(dir, m.entity, on);
            if on {
                // Inside a string of a JSON document the value is the text it spells: the same
                // placeholder or pseudonym as in plain text, restored unescaped.
                let mut decoded = Vec::new();
                let key = if in_string == Some(true) && value.contains(&b'\\') {
                    super::json::decode(value, &mut decoded);
                    decoded.as_slice()
                } else {
                    value
                };
                let restorable = self.replacement(dir, m.entity, key);
                b.extend_from_slice(quote);
                b.extend_from_slice(&self.rep);
                b.extend_from_slice(quote);
                changed.b = true;
                if let Side::Restore { mask } = side {
                    if mask && !restorable {
                        a.extend_from_slice(quote);
                        a.extend_from_slice(&self.rep);
                        a.extend_from_slice(quote);
                        changed.a = true;
                    } else {
                        a.extend_from_slice(value);
                    }
                }
            } else {
                b.extend_from_slice(value);
                if restore {
                    a.extend_from_slice(value);
                }
            }
            last = end;
        }
        let seg = text.get(last..).unwrap_or(&[]);
        b.extend_from_slice(seg);
        if let Some(st) = inner {
            st.advance(seg);
        }
        if restore {
            changed.a |= self.restore_into(seg, escape, a);
        }
        if side == Side::Same {
            changed.a = changed.b;
        }
        changed
    }

    /// Writes the replacement of `value` to `self.rep`; returns whether it is a tokenize
    /// placeholder the caller may have restored (the value came from the caller).
    fn replacement(&mut self, dir: Dir, e: Entity, value: &[u8]) -> bool {
        self.rep.clear();
        let name = e.name().as_bytes();
        match self.mode {
            Mode::Redact => {
                self.rep.push(b'[');
                self.rep.extend_from_slice(name);
                self.rep.push(b']');
                false
            }
            Mode::Pseudonymize => {
                let key = &self.key;
                let mut mac = self.mac.get_or_insert_with(|| keyed_mac(key)).clone();
                mac.update(name);
                mac.update(&[0]);
                mac.update(value);
                let digest = mac.finalize().into_bytes();
                self.rep.push(b'<');
                self.rep.extend_from_slice(name);
                self.rep.push(b'_');
                for &byte in digest.iter().take(3) {
                    self.rep.push(HEX[usize::from(byte >> 4)]);
                    self.rep.push(HEX[usize::from(byte & 0xf)]);
                }
                self.rep.push(b'>');
                false
            }
            Mode::Tokenize => {
                let i = match self.tokens.iter().position(|t| t.entity == e) {
                    Some(i) => i,
                    None => {
                        self.tokens.push(Tokens { entity: e, by_value: HashMap::new(), values: Vec::new() });
                        self.tokens.len() - 1
                    }
                };
                let (n, restorable) = match self.tokens.get_mut(i) {
                    Some(t) => match t.by_value.get(value) {
                        Some(&n) => {
                            let entry = t.values.get_mut(n as usize - 1);
                            let restorable = entry.is_some_and(|(_, r)| {
                                *r |= dir == Dir::Request;
                                *r
                            });
                            (n, restorable)
                        }
                        None => {
                            t.values.push((value.to_vec(), dir == Dir::Request));
                            let n = u32::try_from(t.values.len()).unwrap_or(u32::MAX);
                            t.by_value.insert(value.to_vec(), n);
                            (n, dir == Dir::Request)
                        }
                    },
                    None => (0, false),
                };
                self.rep.push(b'<');
                self.rep.extend_from_slice(name);
                self.rep.push(b'_');
                let mut digits = [0u8; 20];
                let s = decimal(u64::from(n), &mut digits);
                self.rep.extend_from_slice(s);
                self.rep.push(b'>');
                restorable
            }
        }
    }

    /// Appends `seg` to `out` with this exchange's restorable placeholders replaced by their
    /// values; returns whether any was.
    pub fn restore_into(&self, seg: &[u8], escape: bool, out: &mut Vec<u8>) -> bool {
        if self.tokens.is_empty() {
            out.extend_from_slice(seg);
            return false;
        }
        let mut changed = false;
        let (mut from, mut i) = (0, 0);
        while let Some(n) = seg.get(i..).and_then(|r| memchr::memchr(b'<', r)) {
            let at = i + n;
            match seg.get(at..).and_then(|r| self.lookup(r)) {
                Some((value, len)) => {
                    out.extend_from_slice(seg.get(from..at).unwrap_or(&[]));
                    if escape {
                        super::json::encode(value, out);
                    } else {
                        out.extend_from_slice(value);
                    }
                    changed = true;
                    i = at + len;
                    from = i;
                }
                None => i = at + 1,
            }
        }
        out.extend_from_slice(seg.get(from..).unwrap_or(&[]));
        changed
    }

    /// The restorable value of the placeholder at the start of `s`, and the placeholder's length.
    fn lookup(&self, s: &[u8]) -> Option<(&[u8], usize)> {
        let (name, n, len) = parse_placeholder(s)?;
        let t = self.tokens.iter().find(|t| t.entity.name().as_bytes() == name)?;
        let (value, restorable) = t.values.get((n as usize).checked_sub(1)?)?;
        restorable.then_some((value.as_slice(), len))
    }

    /// Whether restoration applies at all (some value of this exchange may be restored).
    pub fn restores(&self) -> bool {
        self.mode == Mode::Tokenize
    }
}

/// Where a JSON document read piece by piece stands: inside a string or not (and after a
/// backslash in one).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct InnerJson {
    /// Inside a string.
    pub in_string: bool,
    escaped: bool,
}

impl InnerJson {
    /// Moves past `bytes`.
    pub fn advance(&mut self, bytes: &[u8]) {
        for &c in bytes {
            if self.escaped {
                self.escaped = false;
            } else if self.in_string && c == b'\\' {
                self.escaped = true;
            } else if c == b'"' {
                self.in_string = !self.in_string;
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// HMAC-SHA256 keyed with `key`. HMAC zero-pads a key shorter than the hash's block to the
/// block, so this is exactly `new_from_slice(key)` without its (never taken) error path.
fn keyed_mac(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    if let Some(head) = block.get_mut(..key.len()) {
        head.copy_from_slice(key);
    }
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// `n` in decimal, written at the end of `buf`.
pub(super) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

/// `<NAME_N>` at the start of `s`: the name, the number and the placeholder's length.
fn parse_placeholder(s: &[u8]) -> Option<(&[u8], u32, usize)> {
    if s.first() != Some(&b'<') || !s.get(1).is_some_and(u8::is_ascii_uppercase) {
        return None;
    }
    let run = s.iter().skip(1).take(MAX_PLACEHOLDER).take_while(|&&b| is_name_byte(b)).count();
    if s.get(1 + run) != Some(&b'>') {
        return None;
    }
    let body = s.get(1..1 + run)?;
    let us = body.iter().rposition(|&b| b == b'_')?;
    let (name, digits) = (body.get(..us)?, body.get(us + 1..)?);
    if name.is_empty() || digits.is_empty() || digits.first() == Some(&b'0') || digits.len() > 9 {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    Some((name, n, run + 2))
}

/// Where a placeholder that the text's end may still complete starts in `text`, if any: a `<`
/// followed only by placeholder bytes, within the last [`MAX_PLACEHOLDER`] bytes.
pub(super) fn open_placeholder(text: &[u8]) -> Option<usize> {
    let from = text.len().saturating_sub(MAX_PLACEHOLDER + 1);
    let window = text.get(from..)?;
    let lt = memchr::memrchr(b'<', window)?;
    let tail = window.get(lt + 1..)?;
    let shaped = tail.first().is_none_or(u8::is_ascii_uppercase) && tail.iter().all(|&b| is_name_byte(b));
    shaped.then_some(from + lt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(parse_placeholder(b"<EMAIL_12> x"), Some((&b"EMAIL"[..], 12, 10)));
        assert_eq!(parse_placeholder(b"<SECRET_AWS_ACCESS_KEY_1>"), Some((&b"SECRET_AWS_ACCESS_KEY"[..], 1, 25)));
        assert_eq!(parse_placeholder(b"<EMAIL_01>"), None);
        assert_eq!(parse_placeholder(b"<EMAIL_>"), None);
        assert_eq!(parse_placeholder(b"<_1>"), None);
        assert_eq!(parse_placeholder(b"<EMAIL_1"), None);
        assert_eq!(open_placeholder(b"see <EMAIL_"), Some(4));
        assert_eq!(open_placeholder(b"see <"), Some(4));
        assert_eq!(open_placeholder(b"see <EMAIL_1> ok"), None);
        assert_eq!(open_placeholder(b"a < b"), None);
    }

    #[test]
    fn numbers() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(4_294_967_295, &mut buf), b"4294967295");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
