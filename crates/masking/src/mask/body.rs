//! Masking a whole body: JSON-aware for JSON bodies, as raw text otherwise.

use bytes::Bytes;

use super::MaskError;
use super::engine::{Changed, Dir, Engine, Side};
use super::json::{self, BlankKind, Class, Doc, JsonError};
use crate::detect::Found;

/// Buffers reused across bodies of one exchange.
#[derive(Default)]
pub(super) struct Scratch {
    doc: Doc,
    found: Vec<Found>,
    dec: Vec<u8>,
    /// The live output of the last [`mask_arguments`].
    pub ta: Vec<u8>,
    /// The recorded output of the last [`mask_arguments`].
    pub tb: Vec<u8>,
}

/// Both outputs of a body.
pub(super) struct Out {
    /// The live output (forwarded, or returned to the caller).
    pub a: Bytes,
    /// The recorded output.
    pub b: Bytes,
}

fn json_error(e: JsonError, dir: Dir) -> MaskError {
    let which = match dir {
        Dir::Request => "request",
        Dir::Response => "response",
    };
    match e {
        JsonError::Syntax => MaskError::NotJson(which),
        JsonError::TooDeep => MaskError::TooDeep(which),
    }
}

/// Masks a body. A body whose first non-whitespace byte is `{` or `[` must be valid JSON.
pub(super) fn mask(eng: &mut Engine, dir: Dir, side: Side, body: &[u8], s: &mut Scratch) -> Result<Out, MaskError> {
    if json::looks_like_json(body) {
        let mut doc = std::mem::take(&mut s.doc);
        let parsed = json::parse(body, false, dir == Dir::Response, &mut doc);
        let out = parsed.map_err(|e| json_error(e, dir)).map(|()| mask_doc(eng, dir, side, body, &doc, false, s));
        s.doc = doc;
        let (a, b) = out?;
        Ok(finish(side, body, a, b))
    } else {
        let ch = mask_text(eng, dir, side, body, &mut s.found, &mut s.ta, &mut s.tb);
        let b = ch.b.then(|| std::mem::take(&mut s.tb));
        let a = (ch.a && matches!(side, Side::Restore { .. })).then(|| std::mem::take(&mut s.ta));
        Ok(finish(side, body, a, b))
    }
}

/// Turns the changed outputs (`None`: unchanged) into bytes.
fn finish(side: Side, body: &[u8], a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Out {
    let b_changed = b.is_some();
    let b = b.map_or_else(|| Bytes::copy_from_slice(body), Bytes::from);
    let a = match (side, a) {
        (Side::Same, _) => b.clone(),
        (_, Some(a)) => Bytes::from(a),
        (_, None) if !b_changed => b.clone(),
        (_, None) => Bytes::copy_from_slice(body),
    };
    Out { a, b }
}

/// Masks one text; the outputs are in `ta`/`tb` where [`Changed`] says so.
pub(super) fn mask_text(
    eng: &mut Engine,
    dir: Dir,
    side: Side,
    text: &[u8],
    found: &mut Vec<Found>,
    ta: &mut Vec<u8>,
    tb: &mut Vec<u8>,
) -> Changed {
    mask_text_with(eng, dir, side, text, &[], found, ta, tb)
}

/// [`mask_text`], with `extra` matches (found by reading around the text) added where they
/// overlap none of the text's own.
#[allow(clippy::too_many_arguments)]
fn mask_text_with(
    eng: &mut Engine,
    dir: Dir,
    side: Side,
    text: &[u8],
    extra: &[Found],
    found: &mut Vec<Found>,
    ta: &mut Vec<u8>,
    tb: &mut Vec<u8>,
) -> Changed {
    eng.scan(text, found);
    let own = found.len();
    for f in extra {
        let overlaps = found.get(..own).unwrap_or(&[]).iter().any(|g| g.start < f.end && f.start < g.end);
        if !overlaps && f.end <= text.len() {
            found.push(*f);
        }
    }
    if found.len() > own {
        found.sort_by_key(|f| f.start);
    }
    let restore = matches!(side, Side::Restore { .. }) && eng.restores();
    if found.is_empty() && !(restore && memchr::memchr(b'<', text).is_some()) {
        return Changed::default();
    }
    ta.clear();
    tb.clear();
    eng.apply(dir, side, text, found, 0, ta, tb)
}

/// Writes edits into a copy of a source, copying what lies between them.
struct Splice {
    out: Vec<u8>,
    copied: usize,
    dirty: bool,
}

impl Splice {
    fn new() -> Splice {
        Splice { out: Vec::new(), copied: 0, dirty: false }
    }

    fn gap(&mut self, src: &[u8], start: usize) {
        if !self.dirty {
            self.out.reserve(src.len() + 64);
            self.dirty = true;
        }
        self.out.extend_from_slice(src.get(self.copied..start).unwrap_or(&[]));
    }

    /// Replaces `start..end` of `src` by a JSON string of `text`.
    fn string(&mut self, src: &[u8], start: usize, end: usize, text: &[u8]) {
        self.gap(src, start);
        self.out.push(b'"');
        json::encode(text, &mut self.out);
        self.out.push(b'"');
        self.copied = end;
    }

    /// Replaces `start..end` of `src` by `bytes`.
    fn raw(&mut self, src: &[u8], start: usize, end: usize, bytes: &[u8]) {
        self.gap(src, start);
        self.out.extend_from_slice(bytes);
        self.copied = end;
    }

    fn finish(mut self, src: &[u8]) -> Option<Vec<u8>> {
        if !self.dirty {
            return None;
        }
        self.out.extend_from_slice(src.get(self.copied..).unwrap_or(&[]));
        Some(self.out)
    }
}

/// The replacement of a blanked subtree.
pub(super) fn blank_bytes(kind: BlankKind) -> &'static [u8] {
    match kind {
        BlankKind::Null => b"null",
        BlankKind::EmptyArray => b"[]",
    }
}

/// Masks a parsed document; returns the changed outputs (`None`: unchanged). With `keyed` (tool-call
/// arguments), a value is also masked where the detector, reading the whole document, finds a
/// value by its key (`"password": "…"`, `"name": "john smith"`), which the value alone does not show.
fn mask_doc(
    eng: &mut Engine,
    dir: Dir,
    side: Side,
    body: &[u8],
    doc: &Doc,
    keyed: bool,
    s: &mut Scratch,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut by_key = Vec::new();
    if keyed {
        eng.scan(body, &mut by_key);
    }
    let (mut sa, mut sb) = (Splice::new(), Splice::new());
    let a_live = matches!(side, Side::Restore { .. });
    let a_blanks = matches!(side, Side::Restore { mask: true });
    let mut blanks = doc.blanks.iter().peekable();
    for site in &doc.sites {
        while let Some(bl) = blanks.next_if(|bl| bl.start < site.start) {
            sb.raw(body, bl.start, bl.end, blank_bytes(bl.kind));
            if a_blanks {
                sa.raw(body, bl.start, bl.end, blank_bytes(bl.kind));
            }
        }
        let raw = site.raw(body);
        let text = if site.escaped {
            s.dec.clear();
            json::decode(raw, &mut s.dec);
            std::mem::take(&mut s.dec)
        } else {
            Vec::new()
        };
        let text_ref: &[u8] = if site.escaped { &text } else { raw };
        let args = matches!(site.class, Class::Arguments | Class::Delta { args: true });
        // Matches of the whole document inside this value (same offsets when it has no escapes).
        let inside = |f: &&Found| !site.escaped && !site.number && f.start > site.start && f.end < site.end;
        let extra: Vec<Found> = by_key
            .iter()
            .filter(inside)
            .map(|f| Found { entity: f.entity, start: f.start - site.start - 1, end: f.end - site.start - 1 })
            .collect();
        let ch = if args {
            mask_arguments(eng, dir, side, text_ref, s)
        } else {
            mask_text_with(eng, dir, side, text_ref, &extra, &mut s.found, &mut s.ta, &mut s.tb)
        };
        if ch.b {
            sb.string(body, site.start, site.end, &s.tb);
        }
        // A number the caller gets back as it was stays a number.
        if a_live && ch.a && !(site.number && s.ta == raw) {
            sa.string(body, site.start, site.end, &s.ta);
        }
        if site.escaped {
            s.dec = text;
        }
    }
    for bl in blanks {
        sb.raw(body, bl.start, bl.end, blank_bytes(bl.kind));
        if a_blanks {
            sa.raw(body, bl.start, bl.end, blank_bytes(bl.kind));
        }
    }
    (sa.finish(body), sb.finish(body))
}

/// Tool-call arguments: a JSON document in a string, masked JSON-aware (every string value is
/// text) when it parses, as text otherwise. Outputs in `s.ta`/`s.tb` as for [`mask_text`].
pub(super) fn mask_arguments(eng: &mut Engine, dir: Dir, side: Side, text: &[u8], s: &mut Scratch) -> Changed {
    if json::looks_like_json(text) {
        let mut inner = Doc::default();
        if json::parse(text, true, false, &mut inner).is_ok() {
            let mut inner_scratch = Scratch::default();
            let (a, b) = mask_doc(eng, dir, side, text, &inner, true, &mut inner_scratch);
            let ch = Changed { a: a.is_some(), b: b.is_some() };
            if let Some(b) = b {
                s.tb = b;
            }
            if let Some(a) = a {
                s.ta = a;
            }
            let mut ch = ch;
            if side == Side::Same {
                ch.a = ch.b;
            }
            return ch;
        }
    }
    mask_text(eng, dir, side, text, &mut s.found, &mut s.ta, &mut s.tb)
}
