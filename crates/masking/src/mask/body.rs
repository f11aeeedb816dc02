//! Masking a whole body: JSON-aware for JSON bodies, as raw text otherwise.

use bytes::Bytes;

use super::MaskError;
use super::engine::{Changed, Dir, Engine, InnerJson, Side};
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
        let parsed = json::parse(body, dir == Dir::Response, &mut doc);
        let out = parsed.map_err(|e| json_error(e, dir)).map(|()| mask_doc(eng, dir, side, body, &doc, s));
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
    mask_text_in(eng, dir, side, text, None, found, ta, tb)
}

/// [`mask_text`] of a piece of a JSON document read from the state `inner` (advanced past it),
/// when given: see [`Engine::apply`].
#[allow(clippy::too_many_arguments)]
pub(super) fn mask_text_in(
    eng: &mut Engine,
    dir: Dir,
    side: Side,
    text: &[u8],
    inner: Option<&mut InnerJson>,
    found: &mut Vec<Found>,
    ta: &mut Vec<u8>,
    tb: &mut Vec<u8>,
) -> Changed {
    eng.scan(text, found);
    let restore = matches!(side, Side::Restore { .. }) && eng.restores();
    if found.is_empty() && !(restore && memchr::memchr(b'<', text).is_some()) {
        return Changed::default();
    }
    ta.clear();
    tb.clear();
    eng.apply(dir, side, text, found, 0, inner, ta, tb)
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

/// Masks a parsed document; returns the changed outputs (`None`: unchanged).
fn mask_doc(
    eng: &mut Engine,
    dir: Dir,
    side: Side,
    body: &[u8],
    doc: &Doc,
    s: &mut Scratch,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
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
        let ch = if args {
            mask_arguments(eng, dir, side, text_ref, s)
        } else {
            mask_text(eng, dir, side, text_ref, &mut s.found, &mut s.ta, &mut s.tb)
        };
        // Arguments given as JSON (not in a string) come back as JSON.
        let put = |sp: &mut Splice, out: &[u8]| {
            if site.json {
                sp.raw(body, site.start, site.end, out);
            } else {
                sp.string(body, site.start, site.end, out);
            }
        };
        if ch.b {
            put(&mut sb, &s.tb);
        }
        if a_live && ch.a {
            put(&mut sa, &s.ta);
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

/// Tool-call arguments: a JSON document in a string, masked as text over its JSON, so that a
/// value is found with its key (`"password": "…"`) as in any text, and a stream of arguments
/// masks exactly the same way ([`super::StreamMasker`]). A replacement outside a string of the
/// document becomes a string (`{"card": 4111…}` → `{"card": "[CREDIT_CARD]"}`) and restored
/// values are escaped, so JSON arguments stay JSON. Outputs in `s.ta`/`s.tb` as for [`mask_text`].
pub(super) fn mask_arguments(eng: &mut Engine, dir: Dir, side: Side, text: &[u8], s: &mut Scratch) -> Changed {
    let mut inner = InnerJson::default();
    let inner = (json::starts_json_value(text) == Some(true)).then_some(&mut inner);
    mask_text_in(eng, dir, side, text, inner, &mut s.found, &mut s.ta, &mut s.tb)
}
