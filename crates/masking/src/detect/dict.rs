//! The word lists compiled into the crate (see `data/gen_names.py` for their sources): first
//! names, surnames and common English words, lowercase. Built into hash sets on first use.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

/// FNV-1a: short keys, no need for DoS resistance (the sets are fixed).
#[derive(Default)]
pub(super) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Set = HashSet<&'static str, BuildHasherDefault<Fnv>>;

fn set(list: &'static str) -> Set {
    list.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

static FIRST: LazyLock<Set> = LazyLock::new(|| set(include_str!("data/first_names.txt")));
static LAST: LazyLock<Set> = LazyLock::new(|| set(include_str!("data/last_names.txt")));
static ENGLISH: LazyLock<Set> = LazyLock::new(|| set(include_str!("data/english_words.txt")));

/// A word lowercased into a stack buffer (ASCII) or a string (other scripts).
pub(super) enum Lower<'a> {
    Ascii([u8; 32], usize),
    Other(String),
    Borrowed(&'a str),
}

impl Lower<'_> {
    /// The lowercase word.
    pub(super) fn as_str(&self) -> &str {
        match self {
            Lower::Ascii(buf, n) => buf.get(..*n).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or(""),
            Lower::Other(s) => s,
            Lower::Borrowed(s) => s,
        }
    }
}

impl std::ops::Deref for Lower<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// `word` in lowercase; empty when it is not UTF-8.
pub(super) fn lower(word: &[u8]) -> Lower<'_> {
    if word.len() <= 32 && word.is_ascii() {
        let mut buf = [0u8; 32];
        for (d, s) in buf.iter_mut().zip(word) {
            *d = s.to_ascii_lowercase();
        }
        return Lower::Ascii(buf, word.len());
    }
    match std::str::from_utf8(word) {
        Ok(s) if s.chars().all(|c| !c.is_uppercase()) => Lower::Borrowed(s),
        Ok(s) => Lower::Other(s.to_lowercase()),
        Err(_) => Lower::Borrowed(""),
    }
}

/// Whether the lowercase word is a known first name.
pub(super) fn is_first(lower: &str) -> bool {
    FIRST.contains(lower)
}

/// Whether the lowercase word is a known surname.
pub(super) fn is_last(lower: &str) -> bool {
    LAST.contains(lower)
}

/// Whether the lowercase word is a common English word.
pub(super) fn is_english(lower: &str) -> bool {
    ENGLISH.contains(lower)
}

/// Builds the sets now rather than on the first body that needs them.
pub(super) fn warm() {
    LazyLock::force(&FIRST);
    LazyLock::force(&LAST);
    LazyLock::force(&ENGLISH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_load_and_lowercase() {
        assert!(is_first("john") && is_first("holger") && is_first("aimé") && is_first("giuseppina"));
        assert!(is_last("smith") && is_last("lopez"));
        assert!(is_english("application") && !is_english("neuschäfer"));
        assert_eq!(lower(b"JoHn").as_str(), "john");
        assert_eq!(lower("Aimé".as_bytes()).as_str(), "aimé");
        assert_eq!(lower("ÉDOUARD".as_bytes()).as_str(), "édouard");
    }
}
