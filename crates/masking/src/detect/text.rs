//! Byte classes, boundaries and the placeholder filter shared by the detectors.

/// `[A-Za-z0-9_]`: what a regex `\b` treats as a word byte.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[A-Za-z0-9_-]`: the base64url alphabet, also the body of most API tokens.
pub(super) fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `[A-Z0-9]`.
pub(super) fn is_upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// `[A-Za-z0-9-]`.
pub(super) fn is_alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Whether the byte at `pos` directly follows a complete backslash escape (`\n`, `\/`, `\u00e9`):
/// inside a JSON string the escape ends the word before it.
pub(super) fn after_escape(body: &[u8], pos: usize) -> bool {
    if pos >= 2 && body.get(pos - 2) == Some(&b'\\') && odd_backslashes(body, pos - 2) {
        return true;
    }
    pos >= 6
        && body.get(pos - 6..pos - 4) == Some(b"\\u")
        && body.get(pos - 4..pos).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        && odd_backslashes(body, pos - 6)
}

/// Whether the run of backslashes ending at `last` (inclusive) is odd, i.e. its last one escapes.
fn odd_backslashes(body: &[u8], last: usize) -> bool {
    body.get(..=last).is_some_and(|s| s.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1)
}

/// Whether a value whose bytes are of `class` may start at `start`: the byte before is not of
/// `class`, or ends a JSON escape.
pub(super) fn starts_word(body: &[u8], start: usize, class: fn(u8) -> bool) -> bool {
    match start.checked_sub(1).and_then(|i| body.get(i)) {
        None => true,
        Some(&b) => !class(b) || after_escape(body, start),
    }
}

/// Length of the run of `class` bytes at `from`, looking at no more than `max` bytes.
pub(super) fn run(body: &[u8], from: usize, max: usize, class: fn(u8) -> bool) -> usize {
    body.get(from..).map_or(0, |s| s.iter().take(max).take_while(|&&b| class(b)).count())
}

/// Whether a token body looks machine-generated rather than a placeholder: enough distinct bytes,
/// and no six-long run of one byte (`xxxxxx`) or of ascending bytes (`123456`, `abcdef`).
pub(super) fn looks_random(s: &[u8]) -> bool {
    let mut seen = 0u128;
    let (mut same, mut ascending) = (0u32, 0u32);
    let mut prev = None;
    for &b in s {
        seen |= 1u128 << (b & 0x7f);
        same = if prev == Some(b) { same + 1 } else { 1 };
        ascending = if prev.is_some_and(|p: u8| p.wrapping_add(1) == b) { ascending + 1 } else { 1 };
        if same >= 6 || ascending >= 6 {
            return false;
        }
        prev = Some(b);
    }
    seen.count_ones() as usize >= (s.len() / 3).clamp(3, 10)
}

/// The nearest word (`[A-Za-z0-9#_]` and UTF-8 letters) ending at or before `end`, skipping
/// other bytes, not reaching back before `lo`: its (start, end).
pub(super) fn word_before(body: &[u8], lo: usize, end: usize) -> Option<(usize, usize)> {
    let is_w = |b: u8| b.is_ascii_alphanumeric() || b == b'#' || b == b'_' || b >= 0x80;
    let mut we = end;
    while we > lo && body.get(we - 1).is_some_and(|&b| !is_w(b)) {
        we -= 1;
    }
    let mut ws = we;
    while ws > lo && body.get(ws - 1).is_some_and(|&b| is_w(b)) {
        ws -= 1;
    }
    (ws < we).then_some((ws, we))
}

/// Shannon entropy of `s`, in bits per byte.
pub(super) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = s.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_escape_is_a_boundary() {
        assert!(after_escape(br"\nAKIA", 2));
        assert!(!after_escape(br"\\nAKIA", 3));
        assert!(after_escape(br"\\\nAKIA", 4));
        assert!(after_escape(br"\u00e9AKIA", 6));
        assert!(!after_escape(br"\\u00e9AKIA", 7));
    }
}
