//! IBANs: country code, two check digits, a BBAN of the country's length, written compact or in
//! groups of four, validated with mod-97 (ISO 13616).

use super::text::is_word;
use super::{Entity, Found};

/// IBAN length per country (SWIFT IBAN registry).
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

fn length_of(cc: &[u8]) -> Option<usize> {
    LENGTHS.iter().find(|(c, _)| c.as_slice() == cc).map(|&(_, n)| n)
}

/// The IBAN starting at `s` (an uppercase letter at a token start), if one does.
pub(super) fn at(body: &[u8], s: usize) -> Option<Found> {
    let head = body.get(s..s + 4)?;
    if !(head.iter().take(2).all(u8::is_ascii_uppercase) && head.iter().skip(2).all(u8::is_ascii_digit)) {
        return None;
    }
    let want = length_of(head.get(..2)?)?;
    // Collect `want` alphanumerics; single spaces are allowed between groups of four.
    let mut chars = [0u8; 34];
    let mut n = 0;
    let mut i = s;
    let mut since_space = 0;
    while n < want {
        match body.get(i).copied() {
            Some(b) if b.is_ascii_digit() || b.is_ascii_uppercase() => {
                *chars.get_mut(n)? = b;
                n += 1;
                since_space += 1;
                i += 1;
            }
            Some(b' ') if since_space == 4 && n < want && body.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) => {
                since_space = 0;
                i += 1;
            }
            _ => return None,
        }
    }
    if body.get(i).is_some_and(|&b| is_word(b) || b >= 0x80) {
        return None;
    }
    let chars = chars.get(..n)?;
    // The BBAN never holds a lowercase letter, and holds digits.
    if !chars.iter().skip(4).any(u8::is_ascii_digit) {
        return None;
    }
    mod97(chars).then_some(Found { entity: Entity::Iban, start: s, end: i })
}

/// ISO 7064 mod 97-10 over the rearranged IBAN.
fn mod97(iban: &[u8]) -> bool {
    let mut r: u32 = 0;
    for &b in iban.iter().skip(4).chain(iban.iter().take(4)) {
        r = match b {
            b'0'..=b'9' => (r * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return false,
        };
    }
    r == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iban(s: &str) -> Option<&str> {
        at(s.as_bytes(), 0).map(|f| &s[f.start..f.end])
    }

    #[test]
    fn ibans() {
        assert_eq!(iban("GB82WEST12345698765432"), Some("GB82WEST12345698765432"));
        assert_eq!(iban("GB82 WEST 1234 5698 7654 32."), Some("GB82 WEST 1234 5698 7654 32"));
        assert_eq!(iban("DE89 3704 0044 0532 0130 00"), Some("DE89 3704 0044 0532 0130 00"));
        assert_eq!(iban("GB83WEST12345698765432"), None);
        assert_eq!(iban("GB82WEST123456987654321"), None);
        assert_eq!(iban("XX82WEST12345698765432"), None);
    }
}
