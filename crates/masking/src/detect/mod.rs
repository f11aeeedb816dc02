//! Detection: which entities a body holds, and where.
//!
//! One forward pass. A prefilter ([`prefilter`]) finds trigger substrings (`AKIA`, `ghp_`, `eyJ`,
//! `-----BEGIN `, …) and `memchr` finds `@`; each candidate is confirmed by the shape checks of
//! its type ([`secrets`], [`email`]). Bodies without a trigger cost only the two vectorised scans.
//!
//! Bodies are usually JSON, so values sit inside JSON strings: a JSON escape (`\n`, `\/`,
//! `\u00e9`) counts as a word boundary, and a PEM block may be written with `\n` escapes.
//!
//! Matches are reported in order and never overlap; nothing before the end of a match is read
//! again, which keeps the pass linear however adversarial the body.

mod email;
mod prefilter;
mod secrets;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;

use prefilter::Trigger;

/// An entity type the detector knows, named as in `shared/pii-eval`.
///
/// Variants are declared in the byte order of their names, so sorting entities sorts names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// An email address (`local@domain.tld`).
    Email,
    /// An Anthropic API key (`sk-ant-…`).
    SecretAnthropicKey,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    SecretAwsAccessKey,
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
}

impl Entity {
    /// Every entity type, sorted by name.
    pub const ALL: [Entity; 9] = [
        Entity::Email,
        Entity::SecretAnthropicKey,
        Entity::SecretAwsAccessKey,
        Entity::SecretGithubToken,
        Entity::SecretGitlabToken,
        Entity::SecretJwt,
        Entity::SecretOpenaiKey,
        Entity::SecretPrivateKey,
        Entity::SecretSlackToken,
    ];

    /// The type's name, as policy rules and masking profiles spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Entity::Email => "EMAIL",
            Entity::SecretAnthropicKey => "SECRET_ANTHROPIC_KEY",
            Entity::SecretAwsAccessKey => "SECRET_AWS_ACCESS_KEY",
            Entity::SecretGithubToken => "SECRET_GITHUB_TOKEN",
            Entity::SecretGitlabToken => "SECRET_GITLAB_TOKEN",
            Entity::SecretJwt => "SECRET_JWT",
            Entity::SecretOpenaiKey => "SECRET_OPENAI_KEY",
            Entity::SecretPrivateKey => "SECRET_PRIVATE_KEY",
            Entity::SecretSlackToken => "SECRET_SLACK_TOKEN",
        }
    }

    /// The entity type with this name, if the detector knows it.
    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
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

/// The set of entity types found in a body: names only, never values.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Detected {
    bits: u16,
    len: u8,
    names: [&'static str; Entity::ALL.len()],
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
        self.bits & entity.bit() != 0
    }

    /// The entity types found, sorted by name.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        Entity::ALL.into_iter().filter(|e| self.has(*e))
    }

    fn from_bits(bits: u16) -> Detected {
        let mut d = Detected { bits, ..Detected::default() };
        for e in Entity::ALL {
            if bits & e.bit() != 0
                && let Some(slot) = d.names.get_mut(usize::from(d.len))
            {
                *slot = e.name();
                d.len += 1;
            }
        }
        d
    }
}

impl FromIterator<Entity> for Detected {
    fn from_iter<I: IntoIterator<Item = Entity>>(iter: I) -> Detected {
        Detected::from_bits(iter.into_iter().fold(0, |bits, e| bits | e.bit()))
    }
}

impl fmt::Debug for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Entity types found in a request body, by name (names of `shared/pii-eval`).
pub fn detect(body: &[u8]) -> Detected {
    let mut bits = 0;
    scan(body, |found| bits |= found.entity.bit());
    Detected::from_bits(bits)
}

/// Calls `on_found` for every value detected in `body`, in order; matches never overlap.
pub fn scan(body: &[u8], mut on_found: impl FnMut(Found)) {
    let triggers = prefilter::get();
    // Nothing before `pos` is looked at again: it is the end of the last match.
    let mut pos = 0;
    let mut at = memchr::memchr(b'@', body);
    let mut trigger = triggers.find(body, 0);
    loop {
        let first_trigger = trigger.filter(|&(start, _)| at.is_none_or(|a| start < a));
        let found = if let Some((start, t)) = first_trigger {
            let found = confirm(body, start, t);
            if found.is_none() {
                trigger = triggers.find(body, start + 1);
            }
            found
        } else if let Some(a) = at {
            let found = email::confirm(body, pos, a);
            if found.is_none() {
                at = memchr_from(body, a + 1);
            }
            found
        } else {
            return;
        };
        if let Some(found) = found {
            on_found(found);
            pos = found.end;
            if trigger.is_some_and(|(start, _)| start < pos) {
                trigger = triggers.find(body, pos);
            }
            if at.is_some_and(|a| a < pos) {
                at = memchr_from(body, pos);
            }
        }
    }
}

fn confirm(body: &[u8], start: usize, trigger: Trigger) -> Option<Found> {
    let (entity, end) = match trigger {
        Trigger::Aws => (Entity::SecretAwsAccessKey, secrets::aws_access_key(body, start)?),
        Trigger::GithubClassic => (Entity::SecretGithubToken, secrets::github_classic(body, start)?),
        Trigger::GithubFineGrained => (Entity::SecretGithubToken, secrets::github_fine_grained(body, start)?),
        Trigger::Gitlab => (Entity::SecretGitlabToken, secrets::gitlab(body, start)?),
        Trigger::Slack => (Entity::SecretSlackToken, secrets::slack(body, start)?),
        Trigger::SkKey => secrets::sk_key(body, start)?,
        Trigger::Jwt => (Entity::SecretJwt, secrets::jwt(body, start)?),
        Trigger::PemBegin => (Entity::SecretPrivateKey, secrets::private_key(body, start)?),
    };
    Some(Found { entity, start, end })
}

fn memchr_from(body: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'@', body.get(from..)?).map(|i| i + from)
}
