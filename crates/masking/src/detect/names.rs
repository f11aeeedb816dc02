//! Person names, by dictionaries plus context:
//! - a title (`Mr`, `Dr.`, `Dott.`, `Herr`, `Mme`, …) followed by capitalised words;
//! - a known first name followed by one to three surname-like words (known surnames, or
//!   capitalised words that are not common English words), with particles (`van der`, `de la`)
//!   and suffixes (`Jr.`, `PhD`, `MBA`);
//! - two known surnames (`Palacio Arteaga`) when neither is an English word;
//! - two or more unknown name words after a greeting or a word for a person (`my colleague
//!   Kwame Mensah`) or before a verb of speech (`Siobhán Ní Bhriain reported`); surname-first
//!   order (`Nguyen Thi Lan`); a known first name alone after a greeting or a word for a person
//!   (`Thanks Omar`);
//! - in any case (`jamie fox-lawrence`), the display name of an email address
//!   (`Name <mail@host>`) and the value of a JSON name field (`"name": "…"`) when it starts with
//!   a known first name.
//!
//! A model-based recogniser can be merged into the same pass through [`super::Recognizer`].

use super::dict::{is_english, is_first, is_last, lower};
use super::scanner::Out;
use super::{Entity, Found};

/// Most words in a name after its title.
const MAX_WORDS: usize = 5;

/// A word: letters (any script), inner hyphens and apostrophes (`Schottin-Fliegner`, `O'Brien`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Word {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Whether a `.` follows directly (`Dr.`, `J.`).
    pub(super) dot: bool,
    /// Whether the first letter is uppercase.
    pub(super) cap: bool,
    /// Whether a letter after the first is lowercase.
    pub(super) has_lower: bool,
}

/// The char at `i` and its UTF-8 length.
pub(super) fn char_at(body: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *body.get(i)?;
    let len = match b {
        0x00..=0x7f => return Some((char::from(b), 1)),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(body.get(i..i + len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

fn is_letter_at(body: &[u8], i: usize) -> bool {
    match body.get(i) {
        Some(b) if b.is_ascii_alphabetic() => true,
        Some(&b) if b >= 0xc2 => char_at(body, i).is_some_and(|(c, _)| c.is_alphabetic()),
        _ => false,
    }
}

/// The word at `i`, if a letter starts there.
pub(super) fn read_word(body: &[u8], i: usize) -> Option<Word> {
    let (c0, l0) = char_at(body, i)?;
    if !c0.is_alphabetic() {
        return None;
    }
    let mut j = i + l0;
    let mut has_lower = false;
    loop {
        match body.get(j) {
            Some(b) if b.is_ascii_alphabetic() => {
                has_lower |= b.is_ascii_lowercase();
                j += 1;
            }
            Some(b'-' | b'\'') if is_letter_at(body, j + 1) => j += 1,
            Some(&b) if b >= 0xc2 => match char_at(body, j) {
                Some((c, l)) if c.is_alphabetic() => {
                    has_lower |= c.is_lowercase();
                    j += l;
                }
                Some(('\u{2019}', l)) if is_letter_at(body, j + l) => j += l,
                _ => break,
            },
            _ => break,
        }
        if j - i > 64 {
            return None;
        }
    }
    Some(Word { start: i, end: j, dot: body.get(j) == Some(&b'.'), cap: c0.is_uppercase(), has_lower })
}

/// Titles and honorifics, lowercase, without their dot.
pub(super) const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "sir",
    "dame",
    "lord",
    "lady",
    "rev",
    "herr",
    "frau",
    "hr",
    "fr",
    "dott",
    "dott.ssa",
    "dr.ssa",
    "sig",
    "sig.ra",
    "sig.na",
    "signor",
    "signora",
    "avv",
    "ing",
    "geom",
    "arch",
    "mme",
    "mlle",
    "monsieur",
    "madame",
    "mademoiselle",
    "sr",
    "sra",
    "srta",
    "señor",
    "señora",
    "don",
    "doña",
    "dña",
    "dhr",
    "mevr",
    "mevrouw",
    "meneer",
    "drs",
    "ir",
    "dipl.-ing",
    "dipl.-kfm",
    "univ.prof",
    "mag",
];

/// Name suffixes, lowercase, without a final dot.
const SUFFIXES: &[&str] = &[
    "jr", "sr", "ii", "iii", "iv", "md", "phd", "mba", "dds", "dvm", "esq", "b.a", "b.sc", "m.sc", "b.eng", "m.eng",
    "m.a", "ba", "bsc", "msc", "llb", "llm", "cpa", "rn", "mphil",
];

/// Lowercase particles inside names (`Arsenio del Gallo`, `Mark van der Berg`).
pub(super) const PARTICLES: &[&str] = &[
    "van", "de", "del", "della", "der", "den", "di", "da", "do", "dos", "das", "du", "von", "zu", "le", "la", "ten",
    "ter", "het", "y", "bin", "ibn", "al", "el", "dei", "degli", "des", "lo", "d'", "l'",
];

/// Capitalised words that never belong to a name, even when a surname list has them.
const STOP: &[&str] = &[
    "i",
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "of",
    "in",
    "on",
    "at",
    "to",
    "for",
    "with",
    "from",
    "by",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "my",
    "your",
    "his",
    "her",
    "our",
    "their",
    "this",
    "that",
    "these",
    "those",
    "it",
    "its",
    "we",
    "you",
    "he",
    "she",
    "they",
    "me",
    "us",
    "him",
    "them",
    "not",
    "no",
    "yes",
    "if",
    "so",
    "as",
    "do",
    "does",
    "did",
    "has",
    "have",
    "had",
    "will",
    "would",
    "can",
    "could",
    "should",
    "may",
    "might",
    "must",
    "shall",
    "what",
    "who",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "some",
    "hi",
    "hello",
    "dear",
    "thanks",
    "thank",
    "please",
    "regards",
    "best",
    "street",
    "road",
    "avenue",
    "lane",
    "drive",
    "inc",
    "ltd",
    "llc",
    "corp",
    "gmbh",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "team",
    "group",
    "company",
    "bank",
    "university",
    "hospital",
    "school",
    "api",
    "ai",
    "ok",
    // Place names that read as given names (`San Francisco`, `Les Misérables`, `Jordan River`).
    "san",
    "santa",
    "saint",
    "los",
    "las",
    "les",
    "el",
    "new",
    "fort",
    "mount",
    "lake",
    "cape",
    "river",
    "ocean",
    "sea",
    "city",
    "county",
    "valley",
    "island",
    "bay",
];

/// A word's text, lowercased.
pub(super) fn word_str(body: &[u8], w: Word) -> super::dict::Lower<'_> {
    lower(body.get(w.start..w.end).unwrap_or(&[]))
}

fn is_title(body: &[u8], w: Word) -> Option<usize> {
    let l = word_str(body, w);
    let s = l.as_str();
    // Dotted compounds first: `Dott.ssa`, `Sig.ra`, `Dipl.-Ing.`.
    if w.dot {
        let next = if body.get(w.end + 1) == Some(&b'-') { w.end + 2 } else { w.end + 1 };
        if let Some(w2) = read_word(body, next) {
            let joined = format!("{s}.{}{}", if next == w.end + 2 { "-" } else { "" }, word_str(body, w2).as_str());
            if TITLES.contains(&joined.as_str()) {
                return Some(if w2.dot { w2.end + 1 } else { w2.end });
            }
        }
    }
    TITLES.contains(&s).then_some(if w.dot { w.end + 1 } else { w.end })
}

/// Whether a lowercase word is a known first name, or a hyphenated pair of them (`océane-diane`).
fn first_name(s: &str) -> bool {
    is_first(s) || (s.contains('-') && s.split('-').all(|p| !p.is_empty() && is_first(p)))
}

fn is_stop(s: &str) -> bool {
    STOP.contains(&s)
}

/// Whether a capitalised word after a first name or title can be a surname or middle name.
fn surname_like(body: &[u8], w: Word) -> bool {
    if !w.cap || !w.has_lower && w.end - w.start > 1 {
        return false;
    }
    let l = word_str(body, w);
    let s = l.as_str();
    if s.chars().count() < 2 || is_stop(s) {
        return false;
    }
    // Hyphenated: each part judged (`Schottin-Fliegner`, `Barre-Hervé`).
    if s.contains('-') {
        return s
            .split('-')
            .all(|p| !p.is_empty() && (is_last(p) || is_first(p) || !is_english(p) || PARTICLES.contains(&p)));
    }
    is_last(s) || is_first(s) || !is_english(s)
}

/// The word after `end` past one or two spaces.
pub(super) fn next_word(body: &[u8], end: usize) -> Option<Word> {
    let mut i = end;
    let mut spaces = 0;
    while body.get(i) == Some(&b' ') && spaces < 2 {
        i += 1;
        spaces += 1;
    }
    if spaces == 0 {
        return None;
    }
    read_word(body, i)
}

/// Whether the byte at `end` ends a name rather than gluing it to an identifier or address.
fn clean_end(body: &[u8], end: usize) -> bool {
    match body.get(end) {
        Some(b'@' | b'_') => false,
        Some(b) if b.is_ascii_digit() => false,
        Some(b'.') => !body.get(end + 1).is_some_and(|b| b.is_ascii_alphanumeric()),
        _ => true,
    }
}

/// Extends a name over surname-like words, particles and a suffix; returns the end and the
/// number of words added.
fn extend(body: &[u8], mut end: usize, max: usize) -> (usize, usize) {
    let mut words = 0;
    let mut at = end;
    while words < max {
        let Some(w) = next_word(body, at) else { break };
        let l = word_str(body, w);
        let s = l.as_str();
        if !w.cap && PARTICLES.contains(&s) {
            // A particle counts only when a surname follows it (`de la Cruz`).
            let mut p = w;
            let mut ok = None;
            for _ in 0..2 {
                match next_word(body, p.end) {
                    Some(n) if n.cap && surname_like(body, n) && clean_end(body, n.end) => {
                        ok = Some(n);
                        break;
                    }
                    Some(n) if !n.cap && PARTICLES.contains(&word_str(body, n).as_str()) => p = n,
                    _ => break,
                }
            }
            match ok {
                Some(n) => {
                    end = n.end;
                    at = n.end;
                    words += 1;
                    continue;
                }
                None => break,
            }
        }
        if surname_like(body, w) && clean_end(body, w.end) {
            end = w.end;
            at = w.end;
            words += 1;
            continue;
        }
        // An initial (`John F. Kennedy`).
        if w.cap
            && w.end - w.start == 1
            && w.dot
            && let Some(n) = next_word(body, w.end + 1)
            && surname_like(body, n)
        {
            end = n.end;
            at = n.end;
            words += 1;
            continue;
        }
        break;
    }
    // A suffix: `Jr.`, `PhD`, `MBA.`, `B.Sc.`.
    if words > 0
        && let Some(w) = next_word(body, end)
    {
        let mut e = w.end;
        let mut s = word_str(body, w).as_str().to_string();
        while body.get(e) == Some(&b'.') && is_letter_at(body, e + 1) {
            if let Some(n) = read_word(body, e + 1) {
                s.push('.');
                s.push_str(word_str(body, n).as_str());
                e = n.end;
            } else {
                break;
            }
        }
        if SUFFIXES.contains(&s.as_str()) {
            end = if body.get(e) == Some(&b'.') { e + 1 } else { e };
        }
    }
    (end, words)
}

/// A name starting at the capitalised token start `s`.
pub(super) fn at_word(body: &[u8], lo: usize, s: usize, out: &mut Out) {
    let Some(w) = read_word(body, s) else { return };
    if !w.cap || s < lo {
        return;
    }
    // A title, then the name.
    if let Some(after) = is_title(body, w) {
        let (end, words) = extend(body, after, MAX_WORDS);
        if words > 0 {
            push_person(body, s, end, out);
        }
        return;
    }
    if w.end - w.start < 2 || !w.has_lower || !clean_end(body, w.end) {
        return;
    }
    let l = word_str(body, w);
    let first = l.as_str();
    if is_stop(first) {
        return;
    }
    if first_name(first) {
        let (end, words) = extend(body, w.end, MAX_WORDS - 1);
        // A first name alone counts after a greeting or a word for a person (`Thanks Omar`),
        // unless it names an assistant (`Hi Claude`).
        let cue = cue_before(body, s);
        if words > 0 || cue.is_some() && !(cue == Some(Cue::Salutation) && ASSISTANTS.contains(&first)) {
            push_person(body, s, end, out);
        }
        return;
    }
    if is_english(first) || first.chars().count() < 3 {
        return;
    }
    // An unknown given name (not an English word) before a known surname that is not one
    // either (`Toribio Palacio`, `Palacio Arteaga`).
    if let Some(w2) = next_word(body, w.end)
        && w2.cap
        && w2.has_lower
        && clean_end(body, w2.end)
    {
        let l2 = word_str(body, w2);
        // Or a surname before a known given name, in the order of East Asian and Vietnamese
        // names (`Nguyen Thi Lan`).
        let l2 = l2.as_str();
        if !is_stop(l2) && (is_last(l2) && !is_english(l2) || is_last(first) && first_name(l2)) {
            let (end, _) = extend(body, w2.end, MAX_WORDS - 2);
            push_person(body, s, end, out);
            return;
        }
    }
    // Unknown names of two or more words in a person's context: after a greeting or a word for
    // a person (`my colleague Kwame Mensah`, `The patient, Keoni Kahananui`), or before a verb of
    // speech (`Siobhán Ní Bhriain reported`). One unknown word alone is too often a product or
    // an assistant (`Hi Kubernetes experts`, `Thanks Docker`); inner capitals mark a brand
    // (`ChatGPT`, `DevOps`).
    let (end, words) = extend(body, w.end, MAX_WORDS - 1);
    let brand = body.get(s..w.end).is_some_and(brand_capitals);
    if words > 0 && !brand && (cue_before(body, s).is_some() || verb_after(body, end)) {
        push_person(body, s, end, out);
    }
}

/// A person's name from `s` to `end`, unless it names an organisation: its last word is a
/// company word (`Acme Corp`, `Lehman Brothers`), or a legal form follows it (`Charles Schwab
/// Corp`).
fn push_person(body: &[u8], s: usize, end: usize, out: &mut Out) {
    let last = body.get(s..end).and_then(|n| n.iter().rposition(|&b| b == b' ')).map_or(s, |p| s + p + 1);
    let is = |w: Option<Word>, list: &[&str]| w.is_some_and(|w| w.cap && list.contains(&word_str(body, w).as_str()));
    let last = read_word(body, last);
    // An ordinary word after a name may begin a job title (`John Smith Systems Engineer`).
    if is(last, LEGAL_FORMS) || is(last, ORG_WORDS) || is(next_word(body, end), LEGAL_FORMS) {
        return;
    }
    out.push(Found { entity: Entity::Person, start: s, end });
}

/// Legal forms of companies, lowercase.
const LEGAL_FORMS: &[&str] =
    &["inc", "corp", "corporation", "ltd", "llc", "llp", "plc", "gmbh", "ag", "sa", "nv", "bv", "bros"];

/// Words that make a capitalised name an organisation's when the name ends with them, lowercase.
const ORG_WORDS: &[&str] = &[
    "group",
    "holdings",
    "brothers",
    "partners",
    "capital",
    "ventures",
    "labs",
    "technologies",
    "systems",
    "foundation",
    "institute",
    "associates",
];

/// Whether a capitalised word has a brand's inner capitals (`ChatGPT`, `LinkedIn`) rather than a
/// name's: one after a two- or three-letter prefix (`DaQuan`, `McKenna`, `LaToya`), or after a
/// hyphen or apostrophe (`Jean-Luc`, `O'Neill`).
fn brand_capitals(word: &[u8]) -> bool {
    let mut inner = (1..word.len())
        .filter(|&i| word.get(i).is_some_and(u8::is_ascii_uppercase))
        .filter(|&i| !matches!(word.get(i - 1), Some(b'-' | b'\'')));
    match (inner.next(), inner.next()) {
        (None, _) => false,
        (Some(i), None) => !(2..=3).contains(&i),
        _ => true,
    }
}

/// Assistants' names: greeting the model (`Hi Claude`, `Thanks Alexa`) is not naming a person.
const ASSISTANTS: &[&str] = &["claude", "alexa", "siri", "cortana", "gemini", "bard", "grok"];

/// Greetings and sign-offs that a name follows, lowercase.
const GREETINGS: &[&str] =
    &["hi", "hey", "hello", "dear", "thanks", "cheers", "regards", "best", "sincerely", "yours", "bye", "cc"];

/// Words for a person that a name follows, lowercase (`my colleague Kwame Mensah`).
const PERSON_WORDS: &[&str] = &[
    "colleague",
    "coworker",
    "co-worker",
    "patient",
    "customer",
    "client",
    "tenant",
    "landlord",
    "applicant",
    "candidate",
    "employee",
    "intern",
    "manager",
    "assignee",
    "reviewer",
    "author",
    "caller",
    "guest",
    "passenger",
    "student",
    "nurse",
    "mother",
    "father",
    "son",
    "daughter",
    "wife",
    "husband",
    "brother",
    "sister",
    "friend",
    "boss",
    "neighbour",
    "neighbor",
    "grandmother",
    "grandfather",
    "aunt",
    "uncle",
    "cousin",
    "fiancé",
    "fiancée",
];

/// Verbs of speech and action that follow a name (`Siobhán Ní Bhriain reported`), lowercase.
const NAME_VERBS: &[&str] = &[
    "said",
    "says",
    "wrote",
    "writes",
    "asked",
    "asks",
    "reported",
    "reports",
    "replied",
    "replies",
    "mentioned",
    "confirmed",
    "approved",
    "joined",
    "called",
    "emailed",
    "told",
    "noted",
    "explained",
    "added",
    "agreed",
    "complained",
    "requested",
    "thinks",
    "argued",
    "suggested",
    "recommended",
    "promised",
    "claimed",
    "insisted",
    "admitted",
    "announced",
    "signed",
    "resigned",
    "phoned",
    "texted",
];

/// What the word just before a name says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cue {
    /// Addressing someone: `Hi`, `Hey`, `Hello`, `Thanks`.
    Salutation,
    /// Another greeting or a sign-off (`Dear`, `Best,` on the line before, `Cc`), or a word for
    /// a person (`my colleague Kwame`, `The patient, Keoni`).
    Other,
}

/// Salutations among [`GREETINGS`], lowercase.
const SALUTATIONS: &[&str] = &["hi", "hey", "hello", "thanks"];

/// The cue word just before `s`, past spaces, tabs, one `,` and line breaks. Line breaks and tabs
/// count raw or JSON-escaped, so detection on a raw JSON body agrees with masking its decoded
/// text. A name goes on the line after a sign-off, but not after a word for a person.
fn cue_before(body: &[u8], s: usize) -> Option<Cue> {
    let mut i = s;
    let mut newline = false;
    while i > 0 && s - i < 8 {
        match body.get(i - 1) {
            Some(b' ' | b'\r' | b'\t') => i -= 1,
            Some(b'\n') => {
                newline = true;
                i -= 1;
            }
            // `\n` in JSON, not `\\n` (an escaped backslash, then the letter).
            Some(b'n' | b'r' | b't')
                if i >= 2 && body.get(i - 2) == Some(&b'\\') && (i < 3 || body.get(i - 3) != Some(&b'\\')) =>
            {
                newline |= body.get(i - 1) == Some(&b'n');
                i -= 2;
            }
            _ => break,
        }
    }
    if i == s {
        return None;
    }
    if i > 0 && body.get(i - 1) == Some(&b',') {
        i -= 1;
    }
    let e = i;
    while i > 0 && e - i < 16 && body.get(i - 1).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'-') {
        i -= 1;
    }
    if i == e || i > 0 && body.get(i - 1).is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80) {
        return None;
    }
    let l = lower(body.get(i..e).unwrap_or(&[]));
    let w = l.as_str();
    if SALUTATIONS.contains(&w) {
        Some(Cue::Salutation)
    } else if GREETINGS.contains(&w) || !newline && PERSON_WORDS.contains(&w) {
        Some(Cue::Other)
    } else {
        None
    }
}

/// Whether a verb of [`NAME_VERBS`] follows `end` after one space.
fn verb_after(body: &[u8], end: usize) -> bool {
    if body.get(end) != Some(&b' ') {
        return false;
    }
    let from = end + 1;
    let len = body.get(from..).map_or(0, |r| r.iter().take(16).take_while(|b| b.is_ascii_lowercase()).count());
    len > 0
        && !body.get(from + len).is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80)
        && body.get(from..from + len).and_then(|v| std::str::from_utf8(v).ok()).is_some_and(|v| NAME_VERBS.contains(&v))
}

/// Words of a name in any case, from `start`, up to `limit`: (end, word count), when the first
/// is a known first name or a title and the rest are name-shaped.
fn lowercase_name(body: &[u8], start: usize, limit: usize) -> Option<(usize, usize)> {
    let w = read_word(body, start)?;
    let l = word_str(body, w);
    let title = is_title(body, w);
    if title.is_none() && !first_name(l.as_str()) {
        return None;
    }
    let mut end = title.unwrap_or(w.end);
    let mut words = 1;
    while end < limit && words < MAX_WORDS {
        let Some(n) = next_word(body, end) else { break };
        if n.end > limit {
            break;
        }
        end = if n.dot && body.get(n.end + 1).is_none_or(|&b| b == b' ' || b == b'"') { n.end + 1 } else { n.end };
        words += 1;
    }
    Some((end, words))
}

/// The display name of the email address at `mail_start` (`Jane Doe <jane@…>`), if any.
pub(super) fn display_name(body: &[u8], lo: usize, mail_start: usize) -> Option<Found> {
    let lt = mail_start.checked_sub(1)?;
    if body.get(lt) != Some(&b'<') {
        return None;
    }
    let mut e = lt;
    while e > lo && body.get(e - 1) == Some(&b' ') {
        e -= 1;
    }
    if e == lt {
        return None;
    }
    // Up to five words back, stopping at punctuation or a line start.
    let mut starts = Vec::with_capacity(MAX_WORDS);
    let mut i = e;
    while starts.len() < MAX_WORDS {
        let mut s = i;
        while s > lo
            && body
                .get(s - 1)
                .is_some_and(|&b| b.is_ascii_alphabetic() || b >= 0x80 || matches!(b, b'-' | b'\'' | b'.'))
        {
            s -= 1;
        }
        if s == i {
            break;
        }
        starts.push(s);
        if s == lo || body.get(s - 1) != Some(&b' ') {
            break;
        }
        i = s - 1;
    }
    // The longest run of words that reads as a name.
    for &s in starts.iter().rev() {
        if let Some((end, _)) = lowercase_name(body, s, e)
            && end == e
        {
            return Some(Found { entity: Entity::Person, start: s, end: e });
        }
    }
    None
}

/// Whether a JSON key names a person (`name`, `full_name`, `customerName`, …).
pub(super) fn is_name_key(key: &[u8]) -> bool {
    NAME_KEYS.contains(&key)
}

const NAME_KEYS: &[&[u8]] = &[
    b"name",
    b"full_name",
    b"fullname",
    b"fullName",
    b"customer_name",
    b"customerName",
    b"client_name",
    b"contact_name",
    b"contactName",
    b"first_name",
    b"firstName",
    b"last_name",
    b"lastName",
    b"given_name",
    b"family_name",
    b"surname",
    b"patient_name",
    b"cardholder",
    b"cardholder_name",
    b"account_holder",
    b"holder_name",
    b"display_name",
    b"displayName",
    b"person",
    b"author_name",
    b"sender_name",
    b"recipient_name",
];

/// The value of a JSON name field (`"name": "…"`, `"full_name": "…"`) at the `:` at `colon`.
pub(super) fn json_name(body: &[u8], lo: usize, colon: usize) -> Option<Found> {
    let q = colon.checked_sub(1)?;
    if body.get(q) != Some(&b'"') {
        return None;
    }
    let key_start = body.get(..q)?.iter().rposition(|&b| b == b'"')? + 1;
    let key = body.get(key_start..q)?;
    if !is_name_key(key) {
        return None;
    }
    let mut v = colon + 1;
    while body.get(v) == Some(&b' ') {
        v += 1;
    }
    if body.get(v) != Some(&b'"') {
        return None;
    }
    v += 1;
    let close = v + body.get(v..)?.iter().take(128).position(|&b| b == b'"')?;
    if v < lo || close == v {
        return None;
    }
    let (end, _) = lowercase_name(body, v, close)?;
    // The whole value must be the name.
    (end == close).then_some(Found { entity: Entity::Person, start: v, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        super::super::scan(text.as_bytes(), |f| {
            if f.entity == Entity::Person {
                out.push(&text[f.start..f.end]);
            }
        });
        out
    }

    #[test]
    fn person_names() {
        assert_eq!(
            names("between Aimé Lopez <a@b.com> and Sonia Römer MBA. <a@b.com>."),
            ["Aimé Lopez", "Sonia Römer MBA."]
        );
        assert_eq!(names("Dr Mark Kelly said"), ["Dr Mark Kelly"]);
        assert_eq!(names("ask Dott. Nadia Asprucci"), ["Dott. Nadia Asprucci"]);
        assert_eq!(names("with Arsenio del Gallo today"), ["Arsenio del Gallo"]);
        assert_eq!(names("and jamie fox-lawrence <jack@example.org>"), ["jamie fox-lawrence"]);
        assert_eq!(names(r#"{"name": "eliana tognazzi-dellucci", "x": 1}"#), ["eliana tognazzi-dellucci"]);
        assert_eq!(names("Will you help? May I ask. The Grant Application is due."), Vec::<&str>::new());
        assert_eq!(names(r#"{"name": "get_weather"}"#), Vec::<&str>::new());
    }

    #[test]
    fn unknown_names_in_a_persons_context() {
        assert_eq!(names("a birthday card for my colleague Kwame Mensah, please"), ["Kwame Mensah"]);
        assert_eq!(names("The patient, Keoni Kahananui, 54, presented"), ["Keoni Kahananui"]);
        assert_eq!(names("Summarise: Siobhán Ní Bhriain reported that"), ["Siobhán Ní Bhriain"]);
        assert_eq!(names("Best,\nWanjiru Kamau"), ["Wanjiru Kamau"]);
        assert_eq!(names("Nguyen Thi Lan joined"), ["Nguyen Thi Lan"]);
        // A known first name alone only after a greeting or a word for a person.
        assert_eq!(names("Thanks Omar, I'll send it."), ["Omar"]);
        assert_eq!(names("Omar sent it."), Vec::<&str>::new());
        // No cue, or a cue that is not a word for a person: nothing.
        assert_eq!(names("Kubernetes Ingress reportedly works"), Vec::<&str>::new());
        assert_eq!(names("the colleague\nKwame Mensah"), Vec::<&str>::new());
        assert_eq!(names("integrate with Grafana Loki today"), Vec::<&str>::new());
        // Products, brands and assistants after a cue are not people.
        for text in [
            "Hi Claude, can you help?",
            "Hello ChatGPT",
            "Thanks Docker team",
            "Hi Kubernetes experts",
            "The customer Zendesk requested a refund",
            "Hey Siri",
        ] {
            assert_eq!(names(text), Vec::<&str>::new(), "{text:?}");
        }
        // People before an ordinary word, and assistants' names after a word for a person.
        assert_eq!(names("I met John Smith Systems Engineer"), ["John Smith"]);
        assert_eq!(names("my daughter Alexa called"), ["Alexa"]);
        assert_eq!(names("Dear Alexa, thanks"), ["Alexa"]);
        // Names with a prefix capital are not brands.
        assert_eq!(names("my colleague DaQuan Okoro said"), ["DaQuan Okoro"]);
        // A tab, raw or escaped, is a gap like a space.
        assert_eq!(names("Hi\tKwame Mensah"), ["Kwame Mensah"]);
        assert_eq!(names(r#"{"content": "Hi\tKwame Mensah"}"#), ["Kwame Mensah"]);
        // Organisations named after people.
        for text in
            ["Acme Corp signed.", "Lehman Brothers said no.", "Charles Schwab Corp reported", "Smith Barney LLC"]
        {
            assert_eq!(names(text), Vec::<&str>::new(), "{text:?}");
        }
        // A sign-off on the line before, in raw JSON text (escaped line break) as in plain text.
        assert_eq!(names(r#"{"content": "Best,\nWanjiru Kamau"}"#), ["Wanjiru Kamau"]);
    }
}
