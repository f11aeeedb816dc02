//! Numbers: phone numbers, payment cards, US SSNs and IPv4 addresses, told apart by their
//! grouping and validated (Luhn and issuer prefixes, SSN ranges, octets, digit counts), with
//! dates, times, versions, order numbers and identifiers left alone. A short number followed by
//! a street name is handed to the address detector.

use super::scanner::Out;
use super::text::{is_word, word_before};
use super::{Entity, Found, address, ip};

/// Most digit groups read.
const MAX_GROUPS: usize = 10;
/// Most digits read; a longer run is no phone number or card.
const MAX_DIGITS: usize = 24;

/// A run of digit groups: `+33 1 56 75 79 38`, `(415) 555-0100`, `4252 4829 4880 2928`.
#[derive(Default, Clone, Copy)]
struct Run {
    plus: bool,
    /// Digit groups (start, end); a parenthesised group's bounds exclude the parentheses.
    groups: [(usize, usize); MAX_GROUPS],
    /// The separator before each group (`0` for none, `(` for a parenthesised group).
    seps: [u8; MAX_GROUPS],
    n: usize,
    digits: usize,
    /// End of the run (after a closing parenthesis, before any extension).
    end: usize,
    /// End of an extension (`x123`, ` ext. 123`), if any.
    ext_end: Option<usize>,
}

impl Run {
    fn group(&self, i: usize) -> (usize, usize) {
        self.groups.get(i).copied().unwrap_or((0, 0))
    }

    fn len(&self, i: usize) -> usize {
        let (s, e) = self.group(i);
        e - s
    }

    fn sep(&self, i: usize) -> u8 {
        self.seps.get(i).copied().unwrap_or(0)
    }

    fn lens(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).map(|i| self.len(i))
    }

    /// Whether every separator between groups is `sep`.
    fn all_seps(&self, sep: u8) -> bool {
        (1..self.n).all(|i| self.sep(i) == sep)
    }

    fn has_paren(&self) -> bool {
        (0..self.n).any(|i| self.sep(i) == b'(')
    }

    /// The digits, concatenated.
    fn digits_of(&self, body: &[u8]) -> ([u8; MAX_DIGITS], usize) {
        let mut out = [0u8; MAX_DIGITS];
        let mut n = 0;
        for i in 0..self.n {
            let (s, e) = self.group(i);
            for &d in body.get(s..e).unwrap_or(&[]) {
                if let Some(slot) = out.get_mut(n) {
                    *slot = d - b'0';
                    n += 1;
                }
            }
        }
        (out, n)
    }

    fn value(&self, body: &[u8], i: usize) -> u32 {
        let (s, e) = self.group(i);
        body.get(s..e)
            .unwrap_or(&[])
            .iter()
            .fold(0u32, |v, &d| v.saturating_mul(10).saturating_add(u32::from(d - b'0')))
    }
}

fn digit_run(body: &[u8], from: usize) -> usize {
    body.get(from..).map_or(0, |r| r.iter().take(MAX_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count())
}

fn is_digit_at(body: &[u8], i: usize) -> bool {
    body.get(i).is_some_and(u8::is_ascii_digit)
}

/// Reads the run of groups at `s`. `None` when it is glued to a word on its right (`2bbac26d`,
/// `2016-06-01T16`), too long, or otherwise not a standalone number.
fn read_run(body: &[u8], s: usize) -> Option<Run> {
    let mut r = Run::default();
    let mut i = s;
    if body.get(i) == Some(&b'+') {
        r.plus = true;
        i += 1;
        if !(is_digit_at(body, i) || (body.get(i) == Some(&b'(') && is_digit_at(body, i + 1))) {
            return None;
        }
    }
    let mut sep = 0u8;
    loop {
        if r.n >= MAX_GROUPS {
            return None;
        }
        let (gs, ge, next) = if body.get(i) == Some(&b'(') {
            let n = digit_run(body, i + 1);
            if n == 0 || n > 5 || body.get(i + 1 + n) != Some(&b')') {
                return None;
            }
            sep = b'(';
            (i + 1, i + 1 + n, i + 2 + n)
        } else {
            let n = digit_run(body, i);
            if n == 0 {
                return None;
            }
            (i, i + n, i + n)
        };
        if let (Some(g), Some(sp)) = (r.groups.get_mut(r.n), r.seps.get_mut(r.n)) {
            *g = (gs, ge);
            *sp = sep;
        }
        r.n += 1;
        r.digits += ge - gs;
        if r.digits > MAX_DIGITS {
            return None;
        }
        i = next;
        r.end = i;
        // A separator continues the run when a digit or a parenthesised group follows it. After
        // a parenthesised group, a digit may follow directly (`(0808)1570334`, `(0)1`).
        let b = body.get(i).copied();
        if sep == b'(' && (is_digit_at(body, i) || body.get(i) == Some(&b'(')) {
            sep = 0;
            continue;
        }
        match b {
            // `+49(0)1283 577535`: a parenthesised trunk right after the country code.
            Some(b'(') if r.n == 1 && r.plus && is_digit_at(body, i + 1) => {}
            Some(c @ (b' ' | b'-' | b'.' | b'/')) if is_digit_at(body, i + 1) || body.get(i + 1) == Some(&b'(') => {
                sep = c;
                i += 1;
            }
            _ => break,
        }
    }
    // An extension: `x123`, ` x123`, ` ext. 123`, `ext 123`.
    let mut j = r.end;
    if body.get(j) == Some(&b' ') {
        j += 1;
    }
    let rest = body.get(j..).unwrap_or(&[]);
    let ext = if rest.first() == Some(&b'x') && is_digit_at(body, j + 1) {
        Some(j + 1)
    } else if rest.len() > 4 && rest.get(..3).is_some_and(|w| w.eq_ignore_ascii_case(b"ext")) {
        let mut k = j + 3;
        if body.get(k) == Some(&b'.') {
            k += 1;
        }
        if body.get(k) == Some(&b' ') {
            k += 1;
        }
        is_digit_at(body, k).then_some(k)
    } else {
        None
    };
    if let Some(k) = ext {
        let n = digit_run(body, k);
        if (1..=6).contains(&n) {
            r.ext_end = Some(k + n);
        }
    }
    let after = r.ext_end.unwrap_or(r.end);
    // Glued on the right: a word byte, or `.`/`-`/`/`/`,` + a word byte (`3.14`, `06-01T`).
    match body.get(after).copied() {
        Some(b) if is_word(b) || b >= 0x80 => return None,
        Some(b'.' | b'-' | b'/' | b',') if body.get(after + 1).is_some_and(|&b| b.is_ascii_digit()) => return None,
        Some(b'.' | b'-' | b'/' | b'_') if body.get(after + 1).is_some_and(|&b| is_word(b)) => return None,
        _ => {}
    }
    Some(r)
}

/// Whether the byte before `s` continues an identifier, path, version or time (`ORD-4613`,
/// `v3.12`, `a/12`, `20:23`).
fn glued_left(body: &[u8], s: usize) -> bool {
    let Some(&p) = s.checked_sub(1).and_then(|i| body.get(i)) else { return false };
    let pp = s.checked_sub(2).and_then(|i| body.get(i)).copied();
    match p {
        b'-' | b'.' | b'/' | b'_' | b'\\' | b'#' | b'$' | b'%' | b'&' => {
            pp.is_some_and(|b| is_word(b) || b >= 0x80) && !(p == b'\\' && super::text::after_escape(body, s))
        }
        b':' => pp.is_some_and(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// Whether one of the last `max_words` words before `s` on the same line, within `window`
/// bytes, is one of `words` (case-insensitive; keys of four letters or more also match as a
/// prefix: `phone_number`, `telephone` does not).
fn context_has(body: &[u8], s: usize, window: usize, words: &[&[u8]]) -> bool {
    context_within(body, s, window, 6, words)
}

fn context_within(body: &[u8], s: usize, window: usize, max_words: usize, words: &[&[u8]]) -> bool {
    let lo = s.saturating_sub(window);
    let mut end = s;
    for _ in 0..max_words {
        let Some((ws, we)) = word_before(body, lo, end) else { return false };
        if body.get(we..end).is_some_and(|gap| gap.contains(&b'\n')) {
            return false;
        }
        let w = body.get(ws..we).unwrap_or(&[]);
        let hit = |k: &&[u8]| {
            w.eq_ignore_ascii_case(k)
                || (k.len() >= 4 && w.len() > k.len() && w.get(..k.len()).is_some_and(|p| p.eq_ignore_ascii_case(k)))
        };
        if words.iter().any(hit) {
            return true;
        }
        end = ws;
    }
    false
}

const PHONE_WORDS: &[&[u8]] = &[
    b"phone",
    b"tel",
    b"call",
    b"mobile",
    b"cell",
    b"fax",
    b"whatsapp",
    b"sms",
    b"text",
    b"contact",
    b"reach",
    b"dial",
    b"ring",
    b"mob",
    b"ph",
    b"number",
    b"telefon",
    b"handy",
    b"portable",
    b"gsm",
    b"movil",
    b"cellulare",
    b"numero",
    b"hotline",
    b"helpline",
];
const CARD_WORDS: &[&[u8]] = &[
    b"card",
    b"visa",
    b"mastercard",
    b"amex",
    b"credit",
    b"debit",
    b"cc",
    b"pan",
    b"carte",
    b"tarjeta",
    b"carta",
    b"karte",
];
const SSN_WORDS: &[&[u8]] = &[b"ssn", b"social", b"ss#", b"tin", b"taxpayer"];
const VERSION_WORDS: &[&[u8]] = &[b"version", b"ver", b"v", b"release", b"build", b"rev", b"firmware"];

/// Numbers at a token start `s` (a digit, `+` or `(`), not reaching back before `lo`.
pub(super) fn at(body: &[u8], lo: usize, s: usize, out: &mut Out) {
    if glued_left(body, s) {
        return;
    }
    if let Some(f) = ip::at_hex(body, s) {
        return out.push(f);
    }
    let Some(run) = read_run(body, s) else {
        // `221B Baker Street`: a house number with a letter is no standalone number.
        if body.get(s).is_some_and(u8::is_ascii_digit) {
            address::at_number(body, lo, s, out);
        }
        return;
    };
    // IPv4: four octets, not a version; a port or prefix length may follow.
    if let Some(f) = ipv4(body, s, &run) {
        return out.push(f);
    }
    let stop = body.get(run.ext_end.unwrap_or(run.end)).copied();
    if stop == Some(b':') && is_digit_at(body, run.ext_end.unwrap_or(run.end) + 1) {
        return; // a time or a ratio
    }
    if is_date(body, &run) {
        return;
    }
    if let Some(entity) = classify(body, s, &run) {
        let end = if entity == Entity::Phone { run.ext_end.unwrap_or(run.end) } else { run.end };
        return out.push(Found { entity, start: s, end });
    }
    // A house number: `33 Brian Grove`, `41, rue Thomas`, `12a Main St`.
    if !run.plus && run.n == 1 && run.len(0) <= 6 && body.get(s) != Some(&b'(') {
        address::at_number(body, lo, s, out);
    }
}

fn ipv4(body: &[u8], s: usize, run: &Run) -> Option<Found> {
    if run.plus || run.n < 4 || !(1..4).all(|i| run.sep(i) == b'.') || run.has_paren() {
        return None;
    }
    // A fifth group is only allowed as a prefix length (`10.0.0.0/8`).
    if run.n > 5 || (run.n == 5 && (run.sep(4) != b'/' || run.len(4) > 2)) {
        return None;
    }
    for i in 0..4 {
        let (gs, _) = run.group(i);
        let len = run.len(i);
        if len > 3 || run.value(body, i) > 255 || (len > 1 && body.get(gs) == Some(&b'0')) {
            return None;
        }
    }
    if context_within(body, s, 24, 2, VERSION_WORDS) {
        return None;
    }
    let (_, end) = run.group(3);
    Some(Found { entity: Entity::IpAddress, start: s, end })
}

/// `2016-06-01`, `01.06.2016`, `6/1/16`: three groups, one separator, a plausible date.
fn is_date(body: &[u8], run: &Run) -> bool {
    if run.plus || run.n != 3 || run.has_paren() {
        return false;
    }
    let sep = run.sep(1);
    if !matches!(sep, b'-' | b'.' | b'/') || run.sep(2) != sep {
        return false;
    }
    let (a, b, c) = (run.value(body, 0), run.value(body, 1), run.value(body, 2));
    let (la, lb, lc) = (run.len(0), run.len(1), run.len(2));
    let ymd = la == 4 && lb <= 2 && lc <= 2 && (1..=12).contains(&b) && (1..=31).contains(&c);
    let dmy = la <= 2
        && lb <= 2
        && (lc == 4 || lc == 2)
        && (1..=31).contains(&a)
        && (1..=31).contains(&b)
        && (a <= 12 || b <= 12);
    ymd || dmy
}

/// The type of a standalone run of digit groups, if any.
fn classify(body: &[u8], s: usize, run: &Run) -> Option<Entity> {
    let lens: [usize; MAX_GROUPS] = {
        let mut l = [0; MAX_GROUPS];
        for (slot, v) in l.iter_mut().zip(run.lens()) {
            *slot = v;
        }
        l
    };
    let lens = lens.get(..run.n).unwrap_or(&[]);
    let (digits, n) = run.digits_of(body);
    let digits = digits.get(..n).unwrap_or(&[]);

    // US SSN: `AAA-GG-SSSS` (dashes or spaces), or nine digits after an SSN keyword.
    let ssn_shape = (lens == [3, 2, 4] && !run.plus && !run.has_paren() && (run.all_seps(b'-') || run.all_seps(b' ')))
        || (lens == [9] && run.ext_end.is_none() && context_has(body, s, 32, SSN_WORDS));
    if ssn_shape {
        return valid_ssn(digits).then_some(Entity::UsSsn);
    }

    // Payment cards: 12 to 19 digits, one group or evenly grouped, Luhn, a known issuer.
    if !run.plus && !run.has_paren() && run.ext_end.is_none() && (12..=19).contains(&n) {
        let grouped = run.n == 1
            || ((run.all_seps(b' ') || run.all_seps(b'-'))
                && (lens.iter().take(lens.len() - 1).all(|&l| l == 4) || lens == [4, 6, 5] || lens == [4, 6, 4]));
        if grouped {
            let card_context = context_has(body, s, 32, CARD_WORDS);
            if luhn(digits) && (card_context || (n >= 13 && known_issuer(digits))) {
                return Some(Entity::CreditCard);
            }
            if n >= 16 && run.n == 1 {
                return None; // a long Luhn-invalid run: an id, not a phone number
            }
        }
    }

    phone(body, s, run, lens, digits).then_some(Entity::Phone)
}

fn phone(body: &[u8], s: usize, run: &Run, lens: &[usize], digits: &[u8]) -> bool {
    let n = digits.len();
    let first = digits.first().copied().unwrap_or(0);
    let seps_ok = (1..run.n).all(|i| matches!(run.sep(i), b' ' | b'-' | b'.' | b'(' | 0));
    let slash = (1..run.n).any(|i| run.sep(i) == b'/');
    if !seps_ok || slash {
        return false;
    }
    let context = || context_has(body, s, 40, PHONE_WORDS);
    // International: `+CC …`, 8 to 15 digits (a trunk `(0)` may add one).
    if run.plus {
        return (8..=16).contains(&n) && first != 0;
    }
    // International with the `00` prefix: `0044 20 …`, `001-428-970-5685`.
    if digits.starts_with(&[0, 0]) {
        return (10..=17).contains(&n) && (run.n >= 2 || context());
    }
    // North American: `(415) 555-0100`, `415-555-0100`, `415.555.0100`, `1-800-555-0100`.
    let nanp = |l: &[usize], d: &[u8]| {
        l.len() >= 2
            && l.iter().rev().take(2).eq([4, 3].iter())
            && l.iter().rev().nth(2).is_none_or(|&x| x == 3)
            && d.len() >= 10
            && d.get(d.len() - 10).is_some_and(|&a| a >= 2)
            && d.get(d.len() - 7).is_some_and(|&e| e >= 2)
    };
    let nanp_shape = match lens {
        [3, 3, 4] | [1, 3, 3, 4] | [3, 7] => nanp(if lens == [3, 7] { &[3, 3, 4] } else { lens }, digits),
        _ => false,
    };
    if nanp_shape && (lens.len() != 4 || digits.first() == Some(&1)) && (lens != [3, 7] || run.has_paren() || context())
    {
        return true;
    }
    // National with a trunk `0`, grouped: `03 73 80 39 27`, `049 3520233`, `(0808)1570334`.
    if first == 0
        && (9..=12).contains(&n)
        && run.n >= 2
        && lens.iter().all(|&l| l >= 1)
        && lens.iter().skip(1).all(|&l| l >= 2)
    {
        return true;
    }
    // Anything else needs a phone keyword before it: bare digits, unusual groupings.
    (7..=15).contains(&n) && run.n <= 6 && context() && !(run.n == 1 && n < 9)
}

/// Luhn checksum.
pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether the number starts with a known issuer prefix and has one of its lengths.
fn known_issuer(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| d.iter().take(k).fold(0u32, |v, &x| v * 10 + u32::from(x));
    let (p1, p2, p3, p4, p6) = (p(1), p(2), p(3), p(4), p(6));
    match p1 {
        // Visa.
        4 => matches!(n, 13 | 16 | 19),
        // Mastercard, Maestro, Dankort.
        5 => ((51..=55).contains(&p2) && n == 16) || (p2 == 50 || (56..=59).contains(&p2)) && (12..=19).contains(&n),
        // Mastercard 2-series, Mir, JCB 2131.
        2 => {
            ((2221..=2720).contains(&p4) && n == 16)
                || ((2200..=2204).contains(&p4) && (16..=19).contains(&n))
                || (p4 == 2131 && n == 15)
        }
        // Amex, Diners, JCB.
        3 => {
            ((p2 == 34 || p2 == 37) && n == 15)
                || (((300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&n))
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&n))
        }
        // Discover, UnionPay, Maestro, RuPay, InstaPayment, Laser.
        6 => {
            (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622_126..=622_925).contains(&p6))
                && (16..=19).contains(&n)
                || p2 == 62 && (16..=19).contains(&n)
                || (p2 == 60 || p2 == 63 || p2 == 67 || p2 == 66 || p2 == 68 || p2 == 69 || p2 == 61 || p2 == 64)
                    && (12..=19).contains(&n)
        }
        // JCB 1800, UATP.
        1 => n == 15,
        _ => false,
    }
}

/// US SSN ranges: area not 000, 666 or 9xx; group not 00; serial not 0000.
fn valid_ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let v = |r: std::ops::Range<usize>| d.get(r).unwrap_or(&[]).iter().fold(0u32, |v, &x| v * 10 + u32::from(x));
    let (area, group, serial) = (v(0..3), v(3..5), v(5..9));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_ranges() {
        assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
        assert!(valid_ssn(&[3, 4, 2, 2, 4, 4, 3, 6, 4]));
        assert!(!valid_ssn(&[6, 6, 6, 2, 4, 4, 3, 6, 4]));
        assert!(!valid_ssn(&[9, 4, 2, 2, 4, 4, 3, 6, 4]));
        assert!(!valid_ssn(&[3, 4, 2, 0, 0, 4, 3, 6, 4]));
        assert!(!valid_ssn(&[3, 4, 2, 2, 4, 0, 0, 0, 0]));
    }
}
