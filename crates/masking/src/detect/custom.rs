//! Custom detectors from configuration (`[masking.custom.NAME]`): regular expressions, compiled
//! together into one multi-pattern regex (regex-automata), and word lists, compiled together into
//! one Aho-Corasick automaton matching whole words. Both run in the detector's single pass.

use std::fmt;
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, meta};

use super::text::is_word;
use super::{Entity, Found, MAX_CUSTOM};

/// One custom detector: its type name and what it matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomSpec {
    /// The type name; reported uppercased (`project_code` → `PROJECT_CODE`).
    pub name: String,
    /// Regular expressions (Rust `regex` syntax); a match is the value.
    pub patterns: Vec<String>,
    /// Words or phrases, matched as whole words.
    pub words: Vec<String>,
    /// Whether patterns and words match case-sensitively (default: not).
    pub case_sensitive: bool,
}

/// Why a detector could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectorError {
    /// A pattern does not compile: the detector's name, the pattern's index and the reason.
    Pattern {
        /// The custom detector's name.
        name: String,
        /// Index of the pattern in its list.
        index: usize,
        /// The compiler's message.
        reason: String,
    },
    /// A custom detector has an empty or duplicate name, or clashes with a built-in type.
    Name(String),
    /// A custom detector has neither patterns nor words, or an empty word.
    Empty(String),
    /// More than [`MAX_CUSTOM`] custom types.
    TooMany(usize),
    /// The compiled patterns or words exceed the automata's limits.
    Build(String),
}

impl fmt::Display for DetectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetectorError::Pattern { name, index, reason } => {
                write!(f, "custom detector {name}: pattern {index} is not a valid regex: {reason}")
            }
            DetectorError::Name(n) => write!(f, "custom detector name {n:?} is empty, duplicate or built in"),
            DetectorError::Empty(n) => write!(f, "custom detector {n} needs at least one pattern or non-empty word"),
            DetectorError::TooMany(n) => write!(f, "{n} custom detectors, at most {MAX_CUSTOM}"),
            DetectorError::Build(m) => write!(f, "custom detectors: {m}"),
        }
    }
}

impl std::error::Error for DetectorError {}

/// Checks one pattern as [`Detector::new`](super::Detector::new) would compile it (for config
/// validation): `Err` carries the compiler's message.
pub fn validate_pattern(pattern: &str, case_sensitive: bool) -> Result<(), String> {
    meta::Regex::builder()
        .syntax(syntax::Config::new().case_insensitive(!case_sensitive))
        .build(pattern)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Interned custom type names: each distinct name is leaked once, however often configuration
/// is reloaded, so [`Entity::Custom`] can hold a `&'static str`.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

type CachePool = Pool<Cache, Box<dyn Fn() -> Cache + Send + Sync + std::panic::RefUnwindSafe + std::panic::UnwindSafe>>;

/// The compiled custom detectors.
#[derive(Clone)]
pub(super) struct Custom {
    names: Vec<&'static str>,
    regex: Option<Regex>,
    words: Option<Words>,
}

#[derive(Clone)]
struct Regex {
    meta: meta::Regex,
    /// The type of each pattern.
    entity: Vec<&'static str>,
    /// A lazy DFA over the same patterns, to tell whether a match can still grow (`hold_from`).
    dfa: Option<Arc<(DFA, CachePool)>>,
}

#[derive(Clone)]
struct Words {
    ac: AhoCorasick,
    entity: Vec<&'static str>,
    /// The words (lowercased unless case-sensitive), sorted, for prefix look-ups.
    sorted: Vec<Vec<u8>>,
    /// Each word as written, when its detector is case-sensitive (checked after a folded match).
    exact: Vec<Option<Vec<u8>>>,
    longest: usize,
    case_sensitive: bool,
}

/// How far back `hold_from` looks for an open custom match.
const HOLD_WINDOW: usize = 256;

impl Custom {
    pub(super) fn new(specs: &[CustomSpec]) -> Result<Custom, DetectorError> {
        if specs.len() > MAX_CUSTOM {
            return Err(DetectorError::TooMany(specs.len()));
        }
        let mut names = Vec::new();
        let (mut patterns, mut pattern_entity) = (Vec::new(), Vec::new());
        let (mut words, mut word_entity) = (Vec::new(), Vec::new());
        // Case sensitivity is per detector; patterns carry it inline, words by lowercasing.
        let mut words_ci = None;
        for spec in specs {
            let upper = spec.name.to_ascii_uppercase();
            let valid = !upper.is_empty()
                && upper.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && Entity::from_name(&upper).is_none()
                && !names.contains(&upper.as_str());
            if !valid {
                return Err(DetectorError::Name(spec.name.clone()));
            }
            let name = intern(&upper);
            names.push(name);
            if spec.patterns.is_empty() && spec.words.iter().all(|w| w.trim().is_empty()) {
                return Err(DetectorError::Empty(spec.name.clone()));
            }
            for (index, p) in spec.patterns.iter().enumerate() {
                validate_pattern(p, spec.case_sensitive).map_err(|reason| DetectorError::Pattern {
                    name: spec.name.clone(),
                    index,
                    reason,
                })?;
                let flag = if spec.case_sensitive { "" } else { "(?i)" };
                patterns.push(format!("{flag}(?:{p})"));
                pattern_entity.push(name);
            }
            for w in &spec.words {
                let w = w.trim();
                if w.is_empty() {
                    return Err(DetectorError::Empty(spec.name.clone()));
                }
                // One automaton: mixed sensitivity lowers everything and rechecks the case.
                words_ci = Some(words_ci.unwrap_or(!spec.case_sensitive) || !spec.case_sensitive);
                words.push((w.to_string(), spec.case_sensitive));
                word_entity.push(name);
            }
        }
        let regex = if patterns.is_empty() {
            None
        } else {
            let meta = meta::Regex::new_many(&patterns).map_err(|e| DetectorError::Build(e.to_string()))?;
            let dfa = DFA::new_many(&patterns).ok().map(|dfa| {
                let d = dfa.clone();
                let create: Box<dyn Fn() -> Cache + Send + Sync + std::panic::RefUnwindSafe + std::panic::UnwindSafe> =
                    Box::new(move || d.create_cache());
                Arc::new((dfa, Pool::new(create)))
            });
            Some(Regex { meta, entity: pattern_entity, dfa })
        };
        let words = if words.is_empty() {
            None
        } else {
            let ci = words_ci.unwrap_or(false);
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(ci)
                .kind(Some(AhoCorasickKind::DFA))
                .build(words.iter().map(|(w, _)| w.as_bytes()))
                .or_else(|_| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostLongest)
                        .ascii_case_insensitive(ci)
                        .build(words.iter().map(|(w, _)| w.as_bytes()))
                })
                .map_err(|e| DetectorError::Build(e.to_string()))?;
            let fold = |w: &str| if ci { w.to_ascii_lowercase().into_bytes() } else { w.as_bytes().to_vec() };
            let mut sorted: Vec<Vec<u8>> = words.iter().map(|(w, _)| fold(w)).collect();
            sorted.sort();
            let longest = sorted.iter().map(Vec::len).max().unwrap_or(0);
            let exact = words.iter().map(|(w, cs)| (*cs && ci).then(|| w.as_bytes().to_vec())).collect();
            Some(Words { ac, entity: word_entity, sorted, exact, longest, case_sensitive: !ci })
        };
        Ok(Custom { names, regex, words })
    }

    /// The type names, uppercased.
    pub(super) fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// A search for the custom matches of `body`, in order (see [`Cursor::find`]).
    pub(super) fn cursor<'a>(&'a self, body: &'a [u8]) -> Cursor<'a> {
        Cursor { custom: self, body, regex: None, words: None }
    }

    /// The earliest offset from which a custom match could still start or grow.
    pub(super) fn hold_from(&self, text: &[u8]) -> usize {
        let mut hold = text.len();
        if let Some(w) = &self.words {
            let lo = text.len().saturating_sub(w.longest);
            for i in lo..text.len() {
                if i > 0 && text.get(i - 1).is_some_and(|&b| is_word(b)) {
                    continue;
                }
                let tail = text.get(i..).unwrap_or(&[]);
                let tail: Vec<u8> = if w.case_sensitive { tail.to_vec() } else { tail.to_ascii_lowercase() };
                let k = w.sorted.partition_point(|x| x.as_slice() < tail.as_slice());
                if w.sorted.get(k).is_some_and(|x| x.starts_with(&tail)) {
                    hold = i;
                    break;
                }
            }
        }
        if let Some(r) = &self.regex {
            let lo = text.len().saturating_sub(HOLD_WINDOW);
            match &r.dfa {
                Some(d) => {
                    let (dfa, pool) = &**d;
                    let mut cache = pool.get();
                    for i in lo..hold.min(text.len()) {
                        if alive_to_end(dfa, &mut cache, text, i) {
                            hold = hold.min(i);
                            break;
                        }
                    }
                }
                // Without the DFA, hold the whole window: conservative.
                None => hold = hold.min(lo),
            }
        }
        hold
    }
}

impl Regex {
    /// The first non-empty match starting at or after `at`.
    fn next(&self, body: &[u8], mut at: usize) -> Option<Found> {
        while at < body.len() {
            let m = self.meta.search(&Input::new(body).range(at..))?;
            if m.end() > m.start() {
                let name = self.entity.get(m.pattern().as_usize())?;
                return Some(Found { entity: Entity::Custom(name), start: m.start(), end: m.end() });
            }
            at = m.start() + 1;
        }
        None
    }
}

impl Words {
    /// The first whole-word match (of the right case) starting at or after `at`.
    fn next(&self, body: &[u8], mut at: usize) -> Option<Found> {
        while at < body.len() {
            let m = self.ac.find(aho_corasick::Input::new(body).range(at..))?;
            let bounded = (m.start() == 0 || !body.get(m.start() - 1).is_some_and(|&b| is_word(b)))
                && !body.get(m.end()).is_some_and(|&b| is_word(b));
            let case_ok = match self.exact.get(m.pattern().as_usize()) {
                Some(Some(exact)) => body.get(m.start()..m.end()) == Some(exact.as_slice()),
                _ => true,
            };
            if bounded && case_ok {
                let name = self.entity.get(m.pattern().as_usize())?;
                return Some(Found { entity: Entity::Custom(name), start: m.start(), end: m.end() });
            }
            at = m.start() + 1;
        }
        None
    }
}

/// One search's last answer: its first match at or after `from` (`None`: there is none).
#[derive(Clone, Copy)]
struct Cached {
    from: usize,
    found: Option<Found>,
}

/// The custom matches of one body, found in order. Each search (regexes, words) keeps its next
/// match and runs again only once the scan has moved past it, so a scan is linear in the body
/// however many matches it holds. Both searches give, for a start offset, the first match at
/// or after it, which depends only on the body: a match found from an earlier offset is still
/// the answer from any later offset up to its start.
pub(super) struct Cursor<'a> {
    custom: &'a Custom,
    body: &'a [u8],
    regex: Option<Cached>,
    words: Option<Cached>,
}

impl Cursor<'_> {
    /// The first custom match starting at or after `from` (the longest at equal starts).
    /// Cached answers serve while `from` grows, as the scan's position does.
    pub(super) fn find(&mut self, from: usize) -> Option<Found> {
        let body = self.body;
        if from >= body.len() {
            return None;
        }
        let r = self.custom.regex.as_ref().and_then(|r| next(&mut self.regex, from, |at| r.next(body, at)));
        let w = self.custom.words.as_ref().and_then(|w| next(&mut self.words, from, |at| w.next(body, at)));
        match (r, w) {
            (Some(a), Some(b)) => {
                Some(if (b.start, usize::MAX - b.end) < (a.start, usize::MAX - a.end) { b } else { a })
            }
            (a, b) => a.or(b),
        }
    }
}

/// The first match at or after `from`: the cached one while it is still ahead (or there is
/// none after an earlier offset), else `search(from)`, cached.
fn next(cache: &mut Option<Cached>, from: usize, search: impl FnOnce(usize) -> Option<Found>) -> Option<Found> {
    if let Some(c) = *cache
        && c.from <= from
        && c.found.is_none_or(|f| f.start >= from)
    {
        return c.found;
    }
    let found = search(from);
    *cache = Some(Cached { from, found });
    found
}

/// Whether an anchored run of the DFA from `start` is still alive (not dead) at the end of
/// `text`: a match starting there could still complete or grow.
fn alive_to_end(dfa: &DFA, cache: &mut Cache, text: &[u8], start: usize) -> bool {
    let input = Input::new(text).range(start..).anchored(Anchored::Yes);
    let Ok(mut sid) = dfa.start_state_forward(cache, &input) else { return true };
    for &b in text.get(start..).unwrap_or(&[]) {
        match dfa.next_state(cache, sid, b) {
            Ok(next) => sid = next,
            Err(_) => return true,
        }
        if sid.is_dead() {
            return false;
        }
        if sid.is_quit() {
            return true;
        }
    }
    !sid.is_dead()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, patterns: &[&str], words: &[&str]) -> CustomSpec {
        CustomSpec {
            name: name.into(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            words: words.iter().map(|s| s.to_string()).collect(),
            case_sensitive: false,
        }
    }

    #[test]
    fn custom_patterns_and_words() {
        let c = Custom::new(&[
            spec("customer_id", &[r"CUST-\d{6}"], &[]),
            spec("codename", &[], &["Project Falcon", "bluebird"]),
        ])
        .unwrap();
        assert_eq!(c.names(), ["CUSTOMER_ID", "CODENAME"]);
        let text = b"see cust-123456 about project falcon and Bluebirds, then BLUEBIRD.";
        let (mut cursor, mut from) = (c.cursor(text), 0);
        let mut got = Vec::new();
        while let Some(f) = cursor.find(from) {
            got.push((f.entity.name(), std::str::from_utf8(&text[f.start..f.end]).unwrap()));
            from = f.end;
        }
        assert_eq!(got, [("CUSTOMER_ID", "cust-123456"), ("CODENAME", "project falcon"), ("CODENAME", "BLUEBIRD")]);
        assert_eq!(c.hold_from(b"see CUST-12"), 4);
        assert_eq!(c.hold_from(b"see proj"), 4);
        assert_eq!(c.hold_from(b"see project fal"), 4);
        assert_eq!(c.hold_from(b"see nothing "), 12);
    }

    #[test]
    fn many_matches_in_one_text() {
        let c =
            Custom::new(&[spec("codename", &[], &["bluebird", "falcon"]), spec("ticket", &[r"T-\d+"], &[])]).unwrap();
        // 10,000 words, every other one listed, and a ticket number every 100 words: the word
        // search and the regex search each have their next match cached while the other's
        // matches are reported.
        let mut text = String::new();
        let mut want = Vec::new();
        for i in 0..10_000 {
            let word = match i {
                i if i % 100 == 1 => format!("T-{i}"),
                i if i % 2 == 0 => ["bluebird", "Falcon"][i / 2 % 2].to_string(),
                _ => "plain".to_string(),
            };
            if i % 2 == 0 || i % 100 == 1 {
                let name = if i % 2 == 0 { "CODENAME" } else { "TICKET" };
                want.push((name, text.len(), text.len() + word.len()));
            }
            text.push_str(&word);
            text.push(' ');
        }
        // And a listed word glued to others, which must not match.
        text.push_str("bluebirds xfalcon");
        let (mut cursor, mut from) = (c.cursor(text.as_bytes()), 0);
        let mut got = Vec::new();
        while let Some(f) = cursor.find(from) {
            got.push((f.entity.name(), f.start, f.end));
            from = f.end;
        }
        assert_eq!(want.len(), 5_100);
        assert_eq!(got, want);
        // The detector's pass reports the same.
        let detector =
            crate::Detector::new(&[spec("codename", &[], &["bluebird", "falcon"]), spec("ticket", &[r"T-\d+"], &[])])
                .unwrap();
        let mut scanned = Vec::new();
        detector.scan(text.as_bytes(), |f| scanned.push((f.entity.name(), f.start, f.end)));
        assert_eq!(scanned, want);
    }

    #[test]
    fn invalid_specs() {
        assert!(matches!(Custom::new(&[spec("x", &["("], &[])]), Err(DetectorError::Pattern { index: 0, .. })));
        assert!(matches!(Custom::new(&[spec("email", &["x"], &[])]), Err(DetectorError::Name(_))));
        assert!(matches!(Custom::new(&[spec("a", &[], &[])]), Err(DetectorError::Empty(_))));
        assert!(matches!(Custom::new(&[spec("a b", &["x"], &[])]), Err(DetectorError::Name(_))));
    }
}
