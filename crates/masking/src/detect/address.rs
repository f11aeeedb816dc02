//! Street addresses, by the conventions of each language, with a house number or a street type
//! as the anchor:
//! - English: `216 Williams Ramp`, `819 Harrington Estate Apt. 724`, `Flat 72e\nLucy Valleys`
//!   (house number, capitalised name, a USPS / Royal Mail street suffix, an optional unit);
//! - French: `41, rue Thomas`, `chemin de Sanchez` (a street type, lowercase or not);
//! - Italian and Spanish: `Via Cossiga, 3`, `Pasaje Ileana Arrieta 89 Piso 1` (a street type
//!   first, a house number required, an optional floor or door);
//! - German and Dutch: `Weißstraße 9`, `Hans-Gerd-Schmiedecke-Platz 9/5`, `Jaysonstraat 181`
//!   (a compound ending in a street word, a house number required).

use super::dict::is_english;
use super::names::{Word, next_word, read_word, word_str};
use super::scanner::Out;
use super::{Entity, Found};

/// English street suffixes (USPS Publication 28 and Royal Mail), lowercase, without a dot.
const EN_SUFFIXES: &[&str] = &[
    "alley",
    "aly",
    "anex",
    "annex",
    "arcade",
    "ave",
    "avenue",
    "bayou",
    "beach",
    "bend",
    "bluff",
    "bluffs",
    "bottom",
    "boulevard",
    "blvd",
    "branch",
    "bridge",
    "brook",
    "brooks",
    "burg",
    "burgs",
    "bypass",
    "camp",
    "canyon",
    "cape",
    "causeway",
    "center",
    "centre",
    "circle",
    "cir",
    "circles",
    "cliff",
    "cliffs",
    "close",
    "club",
    "common",
    "commons",
    "corner",
    "corners",
    "course",
    "court",
    "ct",
    "courts",
    "cove",
    "coves",
    "creek",
    "crescent",
    "cres",
    "crest",
    "crossing",
    "crossroad",
    "curve",
    "dale",
    "dam",
    "divide",
    "drive",
    "dr",
    "drives",
    "estate",
    "estates",
    "expressway",
    "extension",
    "extensions",
    "falls",
    "ferry",
    "field",
    "fields",
    "flat",
    "flats",
    "ford",
    "fords",
    "forest",
    "forge",
    "forges",
    "fork",
    "forks",
    "fort",
    "freeway",
    "garden",
    "gardens",
    "gateway",
    "glen",
    "glens",
    "green",
    "greens",
    "grove",
    "groves",
    "harbor",
    "harbors",
    "harbour",
    "haven",
    "heights",
    "highway",
    "hwy",
    "hill",
    "hills",
    "hollow",
    "inlet",
    "island",
    "islands",
    "isle",
    "junction",
    "junctions",
    "key",
    "keys",
    "knoll",
    "knolls",
    "lake",
    "lakes",
    "landing",
    "lane",
    "ln",
    "light",
    "lights",
    "loaf",
    "lock",
    "locks",
    "lodge",
    "loop",
    "mall",
    "manor",
    "manors",
    "meadow",
    "meadows",
    "mews",
    "mill",
    "mills",
    "mission",
    "motorway",
    "mount",
    "mountain",
    "mountains",
    "neck",
    "orchard",
    "oval",
    "overpass",
    "park",
    "parks",
    "parkway",
    "pkwy",
    "parkways",
    "pass",
    "passage",
    "path",
    "pike",
    "pine",
    "pines",
    "place",
    "pl",
    "plain",
    "plains",
    "plaza",
    "point",
    "points",
    "port",
    "ports",
    "prairie",
    "radial",
    "ramp",
    "ranch",
    "rapid",
    "rapids",
    "rest",
    "ridge",
    "ridges",
    "river",
    "road",
    "rd",
    "roads",
    "route",
    "row",
    "rue",
    "run",
    "shoal",
    "shoals",
    "shore",
    "shores",
    "skyway",
    "spring",
    "springs",
    "spur",
    "spurs",
    "square",
    "sq",
    "squares",
    "station",
    "stravenue",
    "stream",
    "street",
    "st",
    "streets",
    "summit",
    "terrace",
    "ter",
    "throughway",
    "trace",
    "track",
    "trafficway",
    "trail",
    "trl",
    "trailer",
    "tunnel",
    "turnpike",
    "underpass",
    "union",
    "unions",
    "valley",
    "valleys",
    "via",
    "viaduct",
    "view",
    "views",
    "village",
    "villages",
    "ville",
    "vista",
    "walk",
    "walks",
    "wall",
    "way",
    "ways",
    "well",
    "wells",
    "wharf",
    "wynd",
];

/// Unit designators after an English street, or before it on its own line (UK).
const UNITS: &[&str] = &[
    "apt",
    "apartment",
    "suite",
    "ste",
    "unit",
    "flat",
    "floor",
    "fl",
    "room",
    "rm",
    "studio",
    "bldg",
    "building",
    "piano",
    "appartamento",
    "interno",
    "int",
    "scala",
    "piso",
    "puerta",
    "apto",
    "escalera",
    "esc",
    "bus",
    "etage",
    "étage",
    "app",
];

/// Street types written before the name (Romance languages), lowercase, without a dot.
const PREFIX_TYPES: &[&str] = &[
    "via",
    "viale",
    "piazza",
    "piazzale",
    "corso",
    "largo",
    "vicolo",
    "contrada",
    "borgo",
    "strada",
    "rotonda",
    "incrocio",
    "canale",
    "stretto",
    "lungomare",
    "calle",
    "c",
    "avenida",
    "avda",
    "av",
    "paseo",
    "pasaje",
    "plaza",
    "callejón",
    "camino",
    "carrer",
    "carretera",
    "cuesta",
    "glorieta",
    "pasadizo",
    "rambla",
    "ronda",
    "acceso",
    "alameda",
    "vial",
    "urbanización",
    "travesía",
    "senda",
    "rua",
    "praça",
    "travessa",
    "rue",
    "avenue",
    "boulevard",
    "bd",
    "chemin",
    "allée",
    "impasse",
    "place",
    "quai",
    "cours",
    "passage",
    "square",
    "route",
];

/// Lowercase street types that open an address without a house number (French).
pub(super) const LOWER_TYPES: &[&str] = &["rue", "boulevard", "chemin", "avenue", "allée", "impasse", "quai"];

/// German and Dutch street words, at the end of a compound (`Weißstraße`) or on their own.
const COMPOUND_SUFFIXES: &[&str] = &[
    "straße",
    "strasse",
    "str",
    "weg",
    "allee",
    "platz",
    "gasse",
    "ring",
    "damm",
    "ufer",
    "chaussee",
    "steig",
    "pfad",
    "markt",
    "straat",
    "laan",
    "plein",
    "gracht",
    "singel",
    "kade",
    "dijk",
    "dreef",
    "hof",
    "pad",
    "steeg",
    "baan",
    "plantsoen",
    "wal",
    "park",
    "kamp",
    "hoven",
    "erf",
];

/// Particles inside street names (`chemin de Roux`, `Ronda de Valentina Tamayo`).
const PARTICLES: &[&str] = &[
    "de", "du", "des", "del", "della", "delle", "dei", "degli", "di", "da", "la", "le", "les", "los", "las", "d'",
    "l'", "y", "e",
];

/// The word after `end` past an optional comma and one or two spaces.
fn next_word_after_comma(body: &[u8], end: usize) -> Option<Word> {
    next_word(body, if body.get(end) == Some(&b',') { end + 1 } else { end })
}

/// A house number at `i`: digits (up to 6), an optional letter, an optional range (`4-8`,
/// `88/85`); its end.
fn house_number(body: &[u8], i: usize) -> Option<usize> {
    let n = body.get(i..)?.iter().take(7).take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 6 {
        return None;
    }
    let mut e = i + n;
    if body.get(e).is_some_and(u8::is_ascii_alphabetic) && !body.get(e + 1).is_some_and(u8::is_ascii_alphanumeric) {
        e += 1;
    }
    if matches!(body.get(e), Some(b'-' | b'/')) {
        let m = body.get(e + 1..)?.iter().take(5).take_while(|b| b.is_ascii_digit()).count();
        if (1..=4).contains(&m) {
            e += 1 + m;
        }
    }
    if body.get(e).is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80) {
        return None;
    }
    Some(e)
}

/// After `end`: `[,] number [unit id]` when `want_number`, else just an optional unit; the end.
fn number_and_unit(body: &[u8], end: usize) -> Option<usize> {
    let mut i = end;
    if body.get(i) == Some(&b',') {
        i += 1;
    }
    if body.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let e = house_number(body, i)?;
    Some(unit(body, e).unwrap_or(e))
}

/// Whether a dotted word inside a street name is an abbreviation: a direction or an initial
/// (`W.`, `N.`), or one of the words streets are named with (`St.`, `Mt.`, `Jr.`, `Dr.`,
/// `Pt.`, `Mass.`, `Gen.`). A dot after any other word ends a sentence.
fn abbreviation(body: &[u8], w: Word) -> bool {
    const WORDS: &[&str] = &[
        "st", "mt", "ft", "ne", "nw", "se", "sw", "jr", "sr", "dr", "pt", "ste", "mass", "gen", "pres", "hon", "rev",
        "adm", "capt", "col", "lt", "maj", "sgt", "cmdr", "gov", "sen", "prof",
    ];
    w.end - w.start == 1 || WORDS.contains(&word_str(body, w).as_str())
}

/// A compass direction after a street suffix (`55 Wellington St W`, `Main Street NE`): its end.
fn direction(body: &[u8], end: usize) -> Option<usize> {
    let w = next_word(body, end)?;
    let d = body.get(w.start..w.end)?;
    let compass = matches!(d, b"N" | b"S" | b"E" | b"W" | b"NE" | b"NW" | b"SE" | b"SW");
    // `St W, Toronto` or `St W` at the end: not `St W. Smith`-like initials before a name.
    (compass && !w.dot && !body.get(w.end).is_some_and(|&b| b.is_ascii_alphanumeric())).then_some(w.end)
}

/// An optional unit after `end` (` Apt. 724`, ` Suite 114`, ` Piano 4`, ` Puerta 1`).
fn unit(body: &[u8], end: usize) -> Option<usize> {
    let w = next_word_after_comma(body, end)?;
    let l = word_str(body, w);
    if !UNITS.contains(&l.as_str()) {
        return None;
    }
    let mut i = w.end;
    if body.get(i) == Some(&b'.') {
        i += 1;
    }
    if body.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let n = body.get(i..)?.iter().take(6).take_while(|b| b.is_ascii_alphanumeric()).count();
    (1..=5).contains(&n).then_some(i + n)
}

/// Capitalised name words (with particles between) from the word `w`: the last word, or `None`
/// when `w` is not capitalised.
fn name_words(body: &[u8], w: Word, max: usize) -> Option<Word> {
    if !w.cap {
        return None;
    }
    let mut last = w;
    let mut count = 1;
    while count < max {
        let Some(n) = next_word(body, last.end) else { break };
        if n.cap {
            last = n;
            count += 1;
            continue;
        }
        if PARTICLES.contains(&word_str(body, n).as_str())
            && let Some(m) = next_word(body, n.end)
            && m.cap
        {
            last = m;
            count += 1;
            continue;
        }
        break;
    }
    Some(last)
}

/// After a street type ending at `end`: particles, capitalised words, then `[,] number [unit]`.
/// The end, and whether a number was there.
fn romance_tail(body: &[u8], end: usize) -> Option<(usize, bool)> {
    let mut w = next_word(body, end)?;
    // `de`, `de la`, `d'Artagnan`.
    for _ in 0..2 {
        if !w.cap && PARTICLES.contains(&word_str(body, w).as_str()) {
            w = next_word(body, w.end)?;
        }
    }
    if !w.cap {
        // `d'Alembert` reads as one word starting with `d'`.
        let l = word_str(body, w);
        if !(l.starts_with("d'") || l.starts_with("l'")) {
            return None;
        }
    }
    let last = name_words(body, w, 4).unwrap_or(w);
    match number_and_unit(body, last.end) {
        Some(e) => Some((e, true)),
        None => Some((last.end, false)),
    }
}

/// An address at the lowercase street type trigger at `s` (`rue Poirier`, `41, rue Thomas` is
/// found from its number).
pub(super) fn at_lower_type(body: &[u8], lo: usize, s: usize, out: &mut Out) {
    if s < lo || s > 0 && body.get(s - 1).is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80) {
        return;
    }
    let Some(w) = read_word(body, s) else { return };
    if !LOWER_TYPES.contains(&word_str(body, w).as_str()) {
        return;
    }
    if let Some((end, _)) = romance_tail(body, w.end) {
        out.push(Found { entity: Entity::StreetAddress, start: s, end });
    }
}

/// Whether a street line may begin with this word (lowercase): a street type written first,
/// a unit (`Flat`, `Suite`) or `PO` (Box).
pub(super) fn starts_street(l: &str) -> bool {
    PREFIX_TYPES.contains(&l) || LOWER_TYPES.contains(&l) || UNITS.contains(&l) || l == "po" || l == "p"
}

/// An address starting with the house number at `s`.
pub(super) fn at_number(body: &[u8], lo: usize, s: usize, out: &mut Out) {
    if s < lo {
        return;
    }
    let Some(hn) = house_number(body, s) else { return };
    let Some(w) = next_word_after_comma(body, hn) else { return };
    let l = word_str(body, w);
    // `41, rue Thomas`, `8, avenue de Lucas`.
    if LOWER_TYPES.contains(&l.as_str()) || (w.cap && PREFIX_TYPES.contains(&l.as_str()) && l.len() > 2) {
        if let Some((end, _)) = romance_tail(body, w.end) {
            out.push(Found { entity: Entity::StreetAddress, start: s, end });
        }
        return;
    }
    // `216 Williams Ramp`, `92919 Martin Walks Suite 114`: the name, then a suffix.
    if body.get(hn) == Some(&b',') || !w.cap {
        return;
    }
    let mut cur = w;
    for _ in 0..4 {
        // Past an abbreviation's dot (`2210 W. Olive Ave`, `12 St. Mary Road`); any other dot
        // ends the sentence (`12 Tickets. Park City …` is no address).
        let at = match cur.dot {
            false => cur.end,
            true if abbreviation(body, cur) => cur.end + 1,
            true => return,
        };
        let Some(n) = next_word(body, at) else { return };
        if !n.cap {
            return;
        }
        let nl = word_str(body, n);
        if EN_SUFFIXES.contains(&nl.as_str()) {
            let mut end = if n.dot { n.end + 1 } else { n.end };
            // `Main St.` at a sentence end: the dot ends the sentence, keep it out.
            if n.dot && body.get(n.end + 1).is_none_or(|&b| b != b' ') {
                end = n.end;
            }
            let end = direction(body, end).unwrap_or(end);
            let end = unit(body, end).unwrap_or(end);
            out.push(Found { entity: Entity::StreetAddress, start: s, end });
            return;
        }
        cur = n;
    }
}

/// An address at the capitalised word at `s`: a street type first, a German or Dutch compound,
/// or a unit line before an English street. Returns whether one was found.
pub(super) fn at_word(body: &[u8], lo: usize, s: usize, out: &mut Out) -> bool {
    if s < lo {
        return false;
    }
    let Some(w) = read_word(body, s) else { return false };
    // Every form needs a space (or a dot, then a space) after its first word.
    if !w.cap || !matches!(body.get(w.end), Some(b' ' | b'.')) {
        return false;
    }
    let l = word_str(body, w);
    // `Via Cossiga, 3`, `Pasaje Ileana Arrieta 89 Piso 1`, `C. Jafet Valcárcel 34`.
    if PREFIX_TYPES.contains(&l.as_str()) {
        let type_end = if w.dot { w.end + 1 } else { w.end };
        if (l.len() > 2 || w.dot)
            && let Some((end, number)) = romance_tail(body, type_end)
            && (number || LOWER_TYPES.contains(&l.as_str()))
        {
            out.push(Found { entity: Entity::StreetAddress, start: s, end });
            return true;
        }
        return false;
    }
    // `Weißstraße 9`, `Schäferstr. 4/8`, `Hans-Gerd-Schmiedecke-Platz 9/5`, `Lorenzopad 3`.
    if let Some(end) = compound(body, w, &l) {
        out.push(Found { entity: Entity::StreetAddress, start: s, end });
        return true;
    }
    // `PO Box 4471`, `P.O. Box 12`.
    if let Some(end) = po_box(body, w, &l) {
        out.push(Found { entity: Entity::StreetAddress, start: s, end });
        return true;
    }
    // `Studio 11B\nTomlinson Radial`, `Flat 3, 12 High Street`.
    if UNITS.contains(&l.as_str())
        && let Some(end) = unit_first(body, w)
    {
        out.push(Found { entity: Entity::StreetAddress, start: s, end });
        return true;
    }
    false
}

/// A German or Dutch street: a compound ending in a street word (or such a word after a
/// capitalised one: `Berliner Straße`), then a house number.
fn compound(body: &[u8], w: Word, l: &str) -> Option<usize> {
    let mut end = w.end;
    let mut ok = false;
    for suf in COMPOUND_SUFFIXES {
        // An English word is no street (`During 2023`, `Engineering 101`).
        if l.len() > suf.len() + 1 && l.ends_with(suf) && !is_english(l) {
            // `Str.` only abbreviated with its dot.
            if *suf == "str" {
                if !w.dot {
                    continue;
                }
                end = w.end + 1;
            }
            ok = true;
            break;
        }
    }
    if !ok {
        // `Berliner Straße`, `Hamburger Allee`: a name or an adjective in -er, not any English
        // word (`During Ring 5`).
        if is_english(l) && !l.ends_with("er") {
            return None;
        }
        let n = next_word(body, w.end)?;
        let nl = word_str(body, n);
        if !(n.cap
            && ["straße", "strasse", "str", "weg", "allee", "platz", "gasse", "ring", "damm", "laan", "straat"]
                .contains(&nl.as_str()))
        {
            return None;
        }
        end = if &*nl == "str" && n.dot { n.end + 1 } else { n.end };
    }
    if body.get(end) != Some(&b' ') {
        return None;
    }
    house_number(body, end + 1)
}

/// A post office box (`PO Box 4471`, `P.O. Box 12`) from its first word `w`: its end.
fn po_box(body: &[u8], w: Word, l: &str) -> Option<usize> {
    let after = match l {
        "po" if !w.dot => w.end,
        "p" if w.dot && body.get(w.end + 1..w.end + 4) == Some(b"O. ") => w.end + 3,
        _ => return None,
    };
    let b = next_word(body, after)?;
    if body.get(b.start..b.end) != Some(b"Box") || body.get(b.end) != Some(&b' ') {
        return None;
    }
    let n = body.get(b.end + 1..)?.iter().take(9).take_while(|c| c.is_ascii_digit()).count();
    ((1..=8).contains(&n) && !body.get(b.end + 1 + n).is_some_and(u8::is_ascii_alphanumeric)).then_some(b.end + 1 + n)
}

/// A UK unit line (`Flat 72e`, `Studio 11B`) then, after a line break or comma, a street.
fn unit_first(body: &[u8], w: Word) -> Option<usize> {
    let mut i = w.end;
    if body.get(i) == Some(&b'.') {
        i += 1;
    }
    if body.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let n = body.get(i..)?.iter().take(6).take_while(|b| b.is_ascii_alphanumeric()).count();
    if !(1..=5).contains(&n) || !body.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    i += n;
    // A line break (real or JSON-escaped) or a comma and a space.
    if body.get(i..).is_some_and(|r| r.starts_with(b"\\n") || r.starts_with(b"\r\n")) {
        i += 2;
    } else if matches!(body.get(i), Some(b'\n')) {
        i += 1;
    } else if body.get(i..).is_some_and(|r| r.starts_with(b", ")) {
        i += 2;
    } else {
        return None;
    }
    // An optional house number, then capitalised words and a suffix.
    if let Some(hn) = house_number(body, i)
        && body.get(hn) == Some(&b' ')
    {
        i = hn + 1;
    }
    let first = read_word(body, i)?;
    if !first.cap {
        return None;
    }
    let mut cur = first;
    for _ in 0..4 {
        let n = next_word(body, cur.end)?;
        if !n.cap {
            return None;
        }
        if EN_SUFFIXES.contains(&word_str(body, n).as_str()) {
            return Some(n.end);
        }
        cur = n;
    }
    None
}

#[cfg(test)]
mod tests {
    fn addresses(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        super::super::scan(text.as_bytes(), |f| {
            if f.entity == super::Entity::StreetAddress {
                out.push(&text[f.start..f.end]);
            }
        });
        out
    }

    #[test]
    fn street_addresses() {
        for a in [
            "Via Cossiga, 3",
            "Oliviasingel 16",
            "33 Brian Grove",
            "8, rue François",
            "Incrocio Tiepolo, 13 Piano 4",
            "Ronda de Valentina Tamayo 451",
            "Weißstraße 9",
            "819 Harrington Estate Apt. 724",
            "Schäferstr. 4/8",
            "Hans-Gerd-Schmiedecke-Platz 9/5",
            "C. Jafet Valcárcel 34",
            "boulevard Bernard Delannoy",
            "98, chemin de Roux",
            "Pasaje Ileana Arrieta 89 Piso 1",
            "Studio 11B\nTomlinson Radial",
            "Flat 72e\nLucy Valleys",
            "2210 W. Olive Ave, Apt 5B",
            "55 Wellington St W",
            "PO Box 4471",
            "P.O. Box 12",
            "100 Martin Luther King Jr. Blvd",
            "77 Mass. Ave",
            "12 Dr. King Blvd",
            "500 Pt. Loma Ave",
        ] {
            let text = format!("ship to {a} please");
            assert_eq!(addresses(&text), [a], "{text:?}");
        }
        for text in [
            "I have 3 Apple Pies",
            "Via Email please",
            "page 12 of the Main Road report",
            "PO Boxes are free",
            "PO Box rental",
            "We sold 12 Tickets. Park City hosted the event.",
            "I bought 3 Apples. Then Drive home.",
            "Chapter 4 Summary. Main Street was busy.",
            "Call 911 Now. Square up later.",
        ] {
            assert_eq!(addresses(text), Vec::<&str>::new(), "{text:?}");
        }
    }
}
