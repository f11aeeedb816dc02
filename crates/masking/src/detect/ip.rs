//! IPv6 addresses, full or compressed (`2001:db8::1`), with an embedded IPv4 tail. IPv4 lives in
//! [`super::numbers`], with the other dotted digit groups.

use super::text::is_word;
use super::{Entity, Found};

fn hex_run(body: &[u8], from: usize) -> usize {
    body.get(from..).map_or(0, |r| r.iter().take(5).take_while(|b| b.is_ascii_hexdigit()).count())
}

/// Whether an address may start at `s`: not inside a word, a dotted name or another address.
fn starts_clear(body: &[u8], s: usize) -> bool {
    match s.checked_sub(1).and_then(|i| body.get(i)) {
        None => true,
        Some(&b) => !(is_word(b) || b == b':' || b == b'.' || b >= 0x80) || super::text::after_escape(body, s),
    }
}

/// The end of a dotted-quad IPv4 at `from`, when it is one.
fn ipv4_tail(body: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    for k in 0..4 {
        let n = body.get(i..).map_or(0, |r| r.iter().take(4).take_while(|b| b.is_ascii_digit()).count());
        let v = body.get(i..i + n)?.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
        if n == 0 || n > 3 || v > 255 {
            return None;
        }
        i += n;
        if k < 3 {
            if body.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

/// The IPv6 address starting at `s`, if one does: its end.
fn parse(body: &[u8], s: usize) -> Option<usize> {
    let mut i = s;
    let mut groups = 0;
    let mut double = false;
    let mut digit = false;
    if body.get(i..).is_some_and(|r| r.starts_with(b"::")) {
        double = true;
        i += 2;
    }
    let mut end = i;
    loop {
        let h = hex_run(body, i);
        if h == 0 {
            break;
        }
        if h > 4 {
            return None;
        }
        if body.get(i + h) == Some(&b'.') && groups <= 6 {
            let e = ipv4_tail(body, i)?;
            groups += 2;
            digit = true;
            end = e;
            break;
        }
        digit |= body.get(i..i + h).is_some_and(|g| g.iter().any(u8::is_ascii_digit));
        groups += 1;
        i += h;
        end = i;
        if groups == 8 {
            break;
        }
        match (body.get(i), body.get(i + 1)) {
            (Some(b':'), Some(b':')) if !double => {
                double = true;
                i += 2;
                end = i;
            }
            (Some(b':'), Some(&c)) if c.is_ascii_hexdigit() => i += 1,
            _ => break,
        }
    }
    let valid = if double { (2..=7).contains(&groups) } else { groups == 8 };
    if !valid || !digit || groups > 8 {
        return None;
    }
    // Not glued on the right; a port may follow a full address (`…:24c3:8000`).
    match body.get(end) {
        Some(&b) if is_word(b) || b >= 0x80 => None,
        Some(b'.') if body.get(end + 1).is_some_and(|&b| is_word(b)) => None,
        Some(b':') if groups < 8 => None,
        _ => Some(end),
    }
}

/// An IPv6 address starting at the token start `s` (a hex digit followed by `:`).
pub(super) fn at_hex(body: &[u8], s: usize) -> Option<Found> {
    let h = hex_run(body, s);
    if h == 0 || h > 4 || body.get(s + h) != Some(&b':') || !starts_clear(body, s) {
        return None;
    }
    let end = parse(body, s)?;
    Some(Found { entity: Entity::IpAddress, start: s, end })
}

/// An IPv6 address around the `:` at `c` that starts with a lowercase hex letter or with `::`.
pub(super) fn at_colon(body: &[u8], lo: usize, c: usize) -> Option<Found> {
    let mut s = c;
    while s > lo && c - s < 4 && body.get(s - 1).is_some_and(u8::is_ascii_hexdigit) {
        s -= 1;
    }
    if s == c && body.get(c + 1) != Some(&b':') {
        return None;
    }
    if !starts_clear(body, s) {
        return None;
    }
    let end = parse(body, s)?;
    Some(Found { entity: Entity::IpAddress, start: s, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Option<&str> {
        parse(s.as_bytes(), 0).map(|e| &s[..e])
    }

    #[test]
    fn ipv6_shapes() {
        assert_eq!(v6("2001:db8::1"), Some("2001:db8::1"));
        assert_eq!(v6("fe80::1ff:fe23:4567:890a"), Some("fe80::1ff:fe23:4567:890a"));
        assert_eq!(v6("::ffff:192.168.1.10"), Some("::ffff:192.168.1.10"));
        assert_eq!(v6("8b72:3f2c:f7eb:b520:2422:6d82:d9cc:24c3:8000"), Some("8b72:3f2c:f7eb:b520:2422:6d82:d9cc:24c3"));
        assert_eq!(v6("12:30:45"), None);
        assert_eq!(v6("00:1a:2b:3c:4d:5e"), None);
        assert_eq!(v6("dead::beef"), None);
        assert_eq!(v6("::"), None);
    }
}
