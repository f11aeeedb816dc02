//! Email addresses, found from their `@`.

use super::text::{after_escape, is_alnum_dash, is_word, run};
use super::{Entity, Found};

/// Longest local part (RFC 5321).
const MAX_LOCAL: usize = 64;
/// Longest domain label and domain (RFC 1035).
const MAX_LABEL: usize = 63;
const MAX_DOMAIN: usize = 253;
/// Longest top-level domain in the root zone is 24 letters.
const MAX_TLD: usize = 24;
/// File extensions that follow an `@` in asset names (`icon@2x.png`), never top-level domains.
const NOT_TLDS: &[&[u8]] = &[b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp", b"tif", b"tiff"];

/// `[A-Za-z0-9._%+-]`.
fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// The address around the `@` at `at`, not reaching back before `lo`.
///
/// The local part is `[A-Za-z0-9._%+-]{1,64}` without leading, trailing or doubled dots; the
/// domain is at least two labels of `[A-Za-z0-9-]` (no leading or trailing dash), the last of
/// two or more letters. The SSH remote `git@host:` is not an address.
pub(super) fn confirm(body: &[u8], lo: usize, at: usize) -> Option<Found> {
    let mut start = at;
    while start > lo && body.get(start - 1).is_some_and(|&b| is_local(b)) && !after_escape(body, start) {
        start -= 1;
        if at - start > MAX_LOCAL {
            return None;
        }
    }
    while start < at && body.get(start).is_some_and(|b| matches!(b, b'.' | b'-' | b'+' | b'%')) {
        start += 1;
    }
    let local = body.get(start..at)?;
    if local.is_empty() || local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
        return None;
    }

    // `from` is where the next label starts, `last` where the last complete one started.
    let (mut from, mut last, mut labels) = (at + 1, at + 1, 0);
    let end = loop {
        let n = run(body, from, MAX_LABEL + 1, is_alnum_dash);
        if n == 0 && labels > 0 {
            // A trailing dot ends the sentence, not the domain.
            break from - 1;
        }
        let label = body.get(from..from + n)?;
        if n == 0 || n > MAX_LABEL || label.starts_with(b"-") || label.ends_with(b"-") {
            return None;
        }
        labels += 1;
        last = from;
        if body.get(from + n) == Some(&b'.') {
            from += n + 1;
        } else {
            break from + n;
        }
    };
    let tld = body.get(last..end)?;
    let valid = labels >= 2
        && end - at - 1 <= MAX_DOMAIN
        && (2..=MAX_TLD).contains(&tld.len())
        && tld.iter().all(u8::is_ascii_alphabetic)
        && !NOT_TLDS.iter().any(|ext| tld.eq_ignore_ascii_case(ext))
        && !body.get(end).is_some_and(|&b| is_word(b))
        && !(local == b"git" && body.get(end) == Some(&b':'));
    valid.then_some(Found { entity: Entity::Email, start, end })
}
