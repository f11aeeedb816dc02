//! The single forward pass: event sources merged in byte order, each event confirmed by the
//! validators of the types it may open.

use super::prefilter::{self, Trigger, Triggers};
use super::text::{after_escape, is_word};
use super::{Entity, Found, address, custom, email, generic, iban, ip, names, numbers, secrets};

/// Byte classes that open a token-start candidate.
const DIGIT: u8 = 1;
const UPPER: u8 = 2;
const PHONE_LEAD: u8 = 4;
const LATIN_LEAD: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'0'..=b'9' => DIGIT,
            b'A'..=b'Z' => UPPER,
            b'+' | b'(' => PHONE_LEAD,
            // UTF-8 lead bytes of Latin-1 Supplement and Latin Extended-A letters (É, Ö, Ł, Š…).
            0xC3..=0xC5 => LATIN_LEAD,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// The next token start at or after `from`: a byte of a candidate class not glued to a word
/// before it (a JSON escape counts as a boundary).
fn next_token_start(body: &[u8], from: usize) -> Option<usize> {
    let rest = body.get(from..)?;
    let mut i = 0;
    while let Some(&b) = rest.get(i) {
        if CLASS[usize::from(b)] != 0 {
            let at = from + i;
            let prev = at.checked_sub(1).and_then(|i| body.get(i)).copied();
            let glued = prev.is_some_and(|p| is_word(p) || p >= 0x80)
                // Inside a path, a base64 run, a dotted or dashed identifier (`a/B`, `x+Y`,
                // `ORD-46`, `john.Smith`): no value starts there.
                || (matches!(prev, Some(b'/' | b'+' | b'.' | b'-'))
                    && at.checked_sub(2).and_then(|i| body.get(i)).is_some_and(|&p| p.is_ascii_alphanumeric()));
            if !glued || after_escape(body, at) {
                return Some(at);
            }
        }
        i += 1;
    }
    None
}

fn next_punct(body: &[u8], from: usize) -> Option<usize> {
    memchr::memchr3(b'@', b':', b'=', body.get(from..)?).map(|i| i + from)
}

/// Up to a few matches found by one event, in order (a display name and its email address).
pub(super) struct Out {
    found: [Option<Found>; 2],
}

impl Out {
    fn new() -> Out {
        Out { found: [None, None] }
    }

    /// Adds a match; a second one must start at or after the first one's end.
    pub(super) fn push(&mut self, f: Found) {
        if let Some(slot) = self.found.iter_mut().find(|s| s.is_none()) {
            *slot = Some(f);
        }
    }

    fn is_empty(&self) -> bool {
        self.found[0].is_none()
    }
}

/// Which source an event came from.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Trigger,
    Token,
    Punct,
    Custom,
    Extra,
}

/// Runs the pass.
pub(super) fn scan(body: &[u8], custom: Option<&custom::Custom>, extra: &[Found], mut on_found: impl FnMut(Found)) {
    let triggers = prefilter::get();
    // Nothing before `pos` is looked at again: it is the end of the last match.
    let mut pos = 0;
    let mut trigger = triggers.find(body, 0);
    let mut token = next_token_start(body, 0);
    let mut punct = next_punct(body, 0);
    let mut cursor = custom.map(|c| c.cursor(body));
    let mut cust = cursor.as_mut().and_then(|c| c.find(0));
    let mut ex = 0;
    loop {
        let mut best: Option<(usize, Source)> = None;
        let mut consider = |at: Option<usize>, s: Source| {
            if let Some(at) = at
                && best.is_none_or(|(b, bs)| (at, s) < (b, bs))
            {
                best = Some((at, s));
            }
        };
        consider(trigger.map(|(s, _)| s), Source::Trigger);
        consider(token, Source::Token);
        consider(punct, Source::Punct);
        consider(cust.map(|f| f.start), Source::Custom);
        consider(extra.get(ex).map(|f| f.start), Source::Extra);
        let Some((at, source)) = best else { return };

        let mut out = Out::new();
        match source {
            Source::Trigger => {
                if let Some((_, t)) = trigger {
                    confirm_trigger(body, pos, at, t, &mut out);
                }
                if out.is_empty() {
                    trigger = triggers.find(body, at + 1);
                }
            }
            Source::Token => {
                on_token(body, pos, at, &mut out);
                if out.is_empty() {
                    token = next_token_start(body, at + 1);
                }
            }
            Source::Punct => {
                on_punct(body, pos, at, triggers, &mut out);
                if out.is_empty() {
                    punct = next_punct(body, at + 1);
                }
            }
            Source::Custom => {
                if let Some(f) = cust {
                    out.push(f);
                }
            }
            Source::Extra => {
                if let Some(&f) = extra.get(ex) {
                    out.push(f);
                }
                ex += 1;
            }
        }
        for f in out.found.into_iter().flatten() {
            if f.start >= pos && f.end > f.start {
                on_found(f);
                pos = f.end;
            }
        }
        if trigger.is_some_and(|(s, _)| s < pos) {
            trigger = triggers.find(body, pos);
        }
        if token.is_some_and(|s| s < pos) {
            token = next_token_start(body, pos);
        }
        if punct.is_some_and(|s| s < pos) {
            punct = next_punct(body, pos);
        }
        if cust.is_some_and(|f| f.start < pos) {
            cust = cursor.as_mut().and_then(|c| c.find(pos));
        }
        while extra.get(ex).is_some_and(|f| f.start < pos) {
            ex += 1;
        }
    }
}

/// Confirms a trigger substring at `start`.
fn confirm_trigger(body: &[u8], lo: usize, start: usize, trigger: Trigger, out: &mut Out) {
    let found = match trigger {
        Trigger::Street => return address::at_lower_type(body, lo, start, out),
        t => secret_at(body, start, t),
    };
    if let Some(f) = found {
        out.push(f);
    }
}

/// The secret a trigger at `start` opens, if confirmed.
pub(super) fn secret_at(body: &[u8], start: usize, trigger: Trigger) -> Option<Found> {
    let (entity, end) = match trigger {
        Trigger::Aws => (Entity::SecretAwsAccessKey, secrets::aws_access_key(body, start)?),
        Trigger::GithubClassic => (Entity::SecretGithubToken, secrets::github_classic(body, start)?),
        Trigger::GithubFineGrained => (Entity::SecretGithubToken, secrets::github_fine_grained(body, start)?),
        Trigger::Gitlab => (Entity::SecretGitlabToken, secrets::gitlab(body, start)?),
        Trigger::Slack => (Entity::SecretSlackToken, secrets::slack(body, start)?),
        Trigger::SkKey => secrets::sk_key(body, start)?,
        Trigger::Jwt => (Entity::SecretJwt, secrets::jwt(body, start)?),
        Trigger::PemBegin => (Entity::SecretPrivateKey, secrets::private_key(body, start)?),
        Trigger::Street => return None,
    };
    Some(Found { entity, start, end })
}

/// A token start: a number, a capitalised word, a `+`/`(` phone lead.
fn on_token(body: &[u8], lo: usize, s: usize, out: &mut Out) {
    let Some(&b) = body.get(s) else { return };
    match CLASS[usize::from(b)] {
        DIGIT | PHONE_LEAD => numbers::at(body, lo, s, out),
        UPPER => {
            if let Some(f) = iban::at(body, s).or_else(|| ip::at_hex(body, s)) {
                out.push(f);
            } else if !address::at_word(body, lo, s, out) {
                names::at_word(body, lo, s, out);
            }
        }
        LATIN_LEAD if !address::at_word(body, lo, s, out) => names::at_word(body, lo, s, out),
        _ => {}
    }
}

/// `@`, `:` or `=`.
fn on_punct(body: &[u8], lo: usize, at: usize, triggers: &Triggers, out: &mut Out) {
    match body.get(at) {
        Some(b'@') => {
            if let Some(mail) = email::confirm(body, lo, at) {
                if let Some(name) = names::display_name(body, lo, mail.start) {
                    out.push(name);
                }
                out.push(mail);
            }
        }
        Some(b':') => {
            if let Some(f) = ip::at_colon(body, lo, at) {
                out.push(f);
            } else if let Some(f) = generic::at_operator(body, lo, at, triggers) {
                out.push(f);
            } else if let Some(f) = names::json_name(body, lo, at) {
                out.push(f);
            }
        }
        Some(b'=') => {
            if let Some(f) = generic::at_operator(body, lo, at, triggers) {
                out.push(f);
            }
        }
        _ => {}
    }
}
