//! Detection: which entities a body holds, and where.
//!
//! One forward pass ([`scanner`]) merges a few vectorised event sources, in byte order:
//! - an Aho-Corasick automaton ([`prefilter`]) for trigger substrings (`AKIA`, `ghp_`, `eyJ`,
//!   `-----BEGIN `, …) and the lowercase street types (`rue`, `boulevard`, …);
//! - `memchr3` for `@` (email), `:` and `=` (IPv6, key-value secrets, JSON name fields);
//! - a byte-class scan for token starts: a digit, `+` or `(` (phone numbers, cards, SSNs, IPv4,
//!   house numbers) or a capital letter (IBANs, names, street names);
//! - the custom patterns and words of the [`Detector`], and an optional [`Recognizer`].
//!
//! Each candidate is confirmed by the validator of its type ([`secrets`], [`email`],
//! [`numbers`] with Luhn and the SSN ranges, [`iban`] with mod-97, [`ip`], [`generic`] with
//! keyword and entropy, [`names`] and [`address`] with dictionaries and context). Bodies without
//! a candidate cost only the vectorised scans.
//!
//! Bodies are usually JSON, so values sit inside JSON strings: a JSON escape (`\n`, `\/`,
//! `\u00e9`) counts as a word boundary, and a PEM block may be written with `\n` escapes.
//!
//! Matches are reported in order and never overlap; nothing before the end of a match is read
//! again, which keeps the pass linear however adversarial the body.

mod address;
mod custom;
mod dict;
mod email;
mod generic;
mod hold;
mod iban;
mod ip;
mod names;
mod numbers;
mod prefilter;
mod scanner;
mod secrets;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, LazyLock};

pub use custom::{CustomSpec, DetectorError, validate_pattern};

/// An entity type the detector knows, named as in `shared/pii-eval`.
///
/// Built-in variants are declared in the byte order of their names, so sorting built-in entities
/// sorts names; custom types (from `[masking.custom.NAME]`) sort after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A payment card number (13 to 19 digits, Luhn-valid, a known issuer prefix).
    CreditCard,
    /// An email address (`local@domain.tld`).
    Email,
    /// An IBAN (country, check digits, BBAN of the country's length, mod-97).
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A person's name.
    Person,
    /// A phone number, international or national.
    Phone,
    /// An Anthropic API key (`sk-ant-…`).
    SecretAnthropicKey,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    SecretAwsAccessKey,
    /// A high-entropy credential after a key-like word (`password=`, `"api_key": "…"`).
    SecretGeneric,
    /// A GitHub token (`ghp_…`, `gho_…`, `ghu_…`, `ghs_…`, `ghr_…`, `github_pat_…`).
    SecretGithubToken,
    /// A GitLab personal access token (`glpat-…`).
    SecretGitlabToken,
    /// A JSON Web Token (three base64url segments, a header with `alg`).
    SecretJwt,
    /// An OpenAI-style API key (`sk-…`, `sk-proj-…`).
    SecretOpenaiKey,
    /// A PEM private key block (`-----BEGIN … PRIVATE KEY-----`).
    SecretPrivateKey,
    /// A Slack token (`xoxb-…`, `xoxp-…`, `xoxa-…`, `xoxr-…`, `xoxs-…`).
    SecretSlackToken,
    /// A street address (house number, street name and type, unit).
    StreetAddress,
    /// A US social security number (`AAA-GG-SSSS`, valid ranges).
    UsSsn,
    /// A custom type from configuration, by its uppercased name.
    Custom(&'static str),
}

impl Entity {
    /// Every built-in entity type, sorted by name.
    pub const ALL: [Entity; 17] = [
        Entity::CreditCard,
        Entity::Email,
        Entity::Iban,
        Entity::IpAddress,
        Entity::Person,
        Entity::Phone,
        Entity::SecretAnthropicKey,
        Entity::SecretAwsAccessKey,
        Entity::SecretGeneric,
        Entity::SecretGithubToken,
        Entity::SecretGitlabToken,
        Entity::SecretJwt,
        Entity::SecretOpenaiKey,
        Entity::SecretPrivateKey,
        Entity::SecretSlackToken,
        Entity::StreetAddress,
        Entity::UsSsn,
    ];

    /// The type's name, as policy rules and masking profiles spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Entity::CreditCard => "CREDIT_CARD",
            Entity::Email => "EMAIL",
            Entity::Iban => "IBAN",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::Person => "PERSON",
            Entity::Phone => "PHONE",
            Entity::SecretAnthropicKey => "SECRET_ANTHROPIC_KEY",
            Entity::SecretAwsAccessKey => "SECRET_AWS_ACCESS_KEY",
            Entity::SecretGeneric => "SECRET_GENERIC",
            Entity::SecretGithubToken => "SECRET_GITHUB_TOKEN",
            Entity::SecretGitlabToken => "SECRET_GITLAB_TOKEN",
            Entity::SecretJwt => "SECRET_JWT",
            Entity::SecretOpenaiKey => "SECRET_OPENAI_KEY",
            Entity::SecretPrivateKey => "SECRET_PRIVATE_KEY",
            Entity::SecretSlackToken => "SECRET_SLACK_TOKEN",
            Entity::StreetAddress => "STREET_ADDRESS",
            Entity::UsSsn => "US_SSN",
            Entity::Custom(name) => name,
        }
    }

    /// The built-in entity type with this name, if the detector knows it.
    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether this is a secret type (`SECRET_*`).
    pub fn is_secret(self) -> bool {
        self.name().starts_with("SECRET_")
    }

    /// The bit of a built-in type; custom types have none.
    const fn bit(self) -> u32 {
        match self {
            Entity::Custom(_) => 0,
            e => 1 << e.index(),
        }
    }

    /// Position of a built-in type in [`Entity::ALL`].
    const fn index(self) -> u32 {
        match self {
            Entity::CreditCard => 0,
            Entity::Email => 1,
            Entity::Iban => 2,
            Entity::IpAddress => 3,
            Entity::Person => 4,
            Entity::Phone => 5,
            Entity::SecretAnthropicKey => 6,
            Entity::SecretAwsAccessKey => 7,
            Entity::SecretGeneric => 8,
            Entity::SecretGithubToken => 9,
            Entity::SecretGitlabToken => 10,
            Entity::SecretJwt => 11,
            Entity::SecretOpenaiKey => 12,
            Entity::SecretPrivateKey => 13,
            Entity::SecretSlackToken => 14,
            Entity::StreetAddress => 15,
            Entity::UsSsn => 16,
            Entity::Custom(_) => 31,
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One detected value: its type and its byte range in the body. The value itself is not copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// What was found.
    pub entity: Entity,
    /// Byte offset of the first byte of the value.
    pub start: usize,
    /// Byte offset just past the value.
    pub end: usize,
}

/// Most custom type names a [`Detected`] keeps (a detector has at most this many custom types).
pub const MAX_CUSTOM: usize = 32;

/// The set of entity types found in a body: names only, never values.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Detected {
    bits: u32,
    len: u8,
    names: [&'static str; Entity::ALL.len() + MAX_CUSTOM],
}

impl Default for Detected {
    fn default() -> Detected {
        Detected { bits: 0, len: 0, names: [""; Entity::ALL.len() + MAX_CUSTOM] }
    }
}

impl Detected {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The names of the types found, sorted and unique.
    pub fn names(&self) -> &[&'static str] {
        self.names.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Whether a type of this name was found.
    pub fn contains(&self, name: &str) -> bool {
        self.names().contains(&name)
    }

    /// Whether this entity type was found.
    pub fn has(&self, entity: Entity) -> bool {
        match entity {
            Entity::Custom(name) => self.contains(name),
            e => self.bits & e.bit() != 0,
        }
    }

    /// The entity types found: built-in ones sorted by name, then custom ones.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        let custom = self.names().iter().filter(|n| Entity::from_name(n).is_none()).map(|n| Entity::Custom(n));
        Entity::ALL.into_iter().filter(|e| self.bits & e.bit() != 0).chain(custom)
    }

    fn insert(&mut self, entity: Entity) {
        let bit = entity.bit();
        if bit != 0 {
            if self.bits & bit != 0 {
                return;
            }
            self.bits |= bit;
        } else if self.contains(entity.name()) {
            return;
        }
        let len = usize::from(self.len);
        let name = entity.name();
        let at = self.names().partition_point(|n| *n < name);
        if len < self.names.len() {
            self.names.copy_within(at..len, at + 1);
            if let Some(slot) = self.names.get_mut(at) {
                *slot = name;
            }
            self.len += 1;
        }
    }
}

impl FromIterator<Entity> for Detected {
    fn from_iter<I: IntoIterator<Item = Entity>>(iter: I) -> Detected {
        let mut d = Detected::default();
        for e in iter {
            d.insert(e);
        }
        d
    }
}

impl fmt::Debug for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// An extension point for another recogniser run in the same pass, such as a model-based
/// detector of names and addresses: its matches are merged with the built-in ones (a built-in
/// match that starts first wins an overlap).
pub trait Recognizer: Send + Sync {
    /// Calls `on_found` for every value recognised in `text`, in order, without overlaps.
    fn recognize(&self, text: &[u8], on_found: &mut dyn FnMut(Found));

    /// The streaming hold-back point of this recogniser (see [`hold_from`]); `text.len()` when it
    /// keeps nothing open.
    fn hold_from(&self, text: &[u8]) -> usize {
        text.len()
    }
}

/// A detector: the built-in detectors plus custom ones from configuration, and optionally an
/// extra [`Recognizer`]. Cheap to share (`Arc` inside); build it once per configuration.
#[derive(Clone)]
pub struct Detector {
    inner: Arc<Inner>,
}

struct Inner {
    custom: Option<custom::Custom>,
    recognizer: Option<Box<dyn Recognizer>>,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("custom", &self.inner.custom.as_ref().map(custom::Custom::names))
            .field("recognizer", &self.inner.recognizer.is_some())
            .finish()
    }
}

impl Default for Detector {
    fn default() -> Detector {
        Detector::builtin()
    }
}

static BUILTIN: LazyLock<Detector> = LazyLock::new(|| {
    dict::warm();
    Detector { inner: Arc::new(Inner { custom: None, recognizer: None }) }
});

impl Detector {
    /// The detector with every built-in detector and nothing else.
    pub fn builtin() -> Detector {
        BUILTIN.clone()
    }

    /// The built-in detectors plus these custom ones (`[masking.custom.NAME]`). Fails on an
    /// invalid pattern, an empty or duplicate name, or more than [`MAX_CUSTOM`] types.
    pub fn new(custom: &[CustomSpec]) -> Result<Detector, DetectorError> {
        let custom = if custom.is_empty() { None } else { Some(custom::Custom::new(custom)?) };
        dict::warm();
        Ok(Detector { inner: Arc::new(Inner { custom, recognizer: None }) })
    }

    /// This detector with an extra recogniser merged into its pass.
    pub fn with_recognizer(self, recognizer: Box<dyn Recognizer>) -> Detector {
        let custom = self.inner.custom.clone();
        Detector { inner: Arc::new(Inner { custom, recognizer: Some(recognizer) }) }
    }

    /// Calls `on_found` for every value detected in `body`, in order; matches never overlap.
    pub fn scan(&self, body: &[u8], on_found: impl FnMut(Found)) {
        let mut extra = Vec::new();
        if let Some(r) = &self.inner.recognizer {
            r.recognize(body, &mut |f| extra.push(f));
        }
        scanner::scan(body, self.inner.custom.as_ref(), &extra, on_found);
    }

    /// Entity types found in `body`, by name.
    pub fn detect(&self, body: &[u8]) -> Detected {
        let mut d = Detected::default();
        self.scan(body, |found| d.insert(found.entity));
        d
    }

    /// The streaming hold-back point of `text` for this detector; see [`hold_from`].
    pub fn hold_from(&self, text: &[u8]) -> usize {
        let mut h = hold::hold_from(text);
        if let Some(c) = &self.inner.custom {
            h = h.min(c.hold_from(text));
        }
        if let Some(r) = &self.inner.recognizer {
            h = h.min(r.hold_from(text));
        }
        h
    }
}

/// Entity types found in a request body by the built-in detectors, by name (names of
/// `shared/pii-eval`).
pub fn detect(body: &[u8]) -> Detected {
    let mut d = Detected::default();
    scan(body, |found| d.insert(found.entity));
    d
}

/// Calls `on_found` for every value the built-in detectors find in `body`, in order; matches
/// never overlap.
pub fn scan(body: &[u8], on_found: impl FnMut(Found)) {
    scanner::scan(body, None, &[], on_found);
}

/// The earliest byte offset in `text` from which a match could still start or continue as more
/// text arrives (an incomplete candidate touching the end). Text before it will never be part of
/// a match that is not already reported by `scan(&text[..])`; `text.len()` when nothing is open.
///
/// Matches that `scan(text)` reports at or after this offset may still change as text arrives;
/// matches that end before it are final. The context a detector reads before a value (a key such
/// as `password=`, a title, `"name": "`) is held with it, so rescanning from the hold point finds
/// what scanning the whole text would. Plain lowercase prose holds at most its last word. Cost: a
/// backward look over the last few hundred bytes, plus a vectorised search for an open PEM block.
pub fn hold_from(text: &[u8]) -> usize {
    hold::hold_from(text)
}
