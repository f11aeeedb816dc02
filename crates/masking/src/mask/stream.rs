//! Incremental masking of streamed responses (SSE, NDJSON, raw text).
//!
//! Bytes are cut into frames (SSE events at blank lines, NDJSON lines); a frame is processed
//! once complete, so what is emitted depends only on the frames, never on how the bytes were
//! split. Each streamed text field (a [`Class::Delta`] site) belongs to a *channel*, keyed by
//! its path (array elements by their `index` member, objects also by `output_index`,
//! `content_index` and `item_id`), and each channel masks the concatenation of its fields with
//! a hold-back: the text from the detector's [`hold_from`](crate::detect::hold_from) point on
//! (pulled back to the start of a match that would straddle it, and to the `<` of a tokenize
//! placeholder that the end may still complete) waits for the next field of the channel.
//!
//! Held text is released: in the channel's next field; at an end marker (`finish_reason`,
//! `done: true`, `stop: true`, TGI `generated_text`, a `type` ending in `.done`, `.completed` or
//! `_stop`) whose object encloses the channel, in the marker's frame if that frame carries the
//! channel's field, else in a synthetic frame inserted just before it; at `data: [DONE]` (all
//! channels, synthetic frames before it); at [`StreamMasker::finish`] (synthetic frames at the
//! end). A synthetic frame is a copy of the channel's last frame (its SSE field lines included)
//! with the channel's field set to the released text and every other streamed text field empty.
//! Frames without text (role-only deltas, usage chunks, comments, `[DONE]`) pass in order.

use bytes::Bytes;
use protocols::Framing;

use super::body::{self, Scratch, blank_bytes};
use super::engine::{Changed, Dir, InnerJson, Side, decimal, open_placeholder};
use super::json::{self, Class, Doc};
use super::{MaskError, Masked, Masker};
use crate::detect::Found;

/// Largest frame (SSE event or NDJSON line) accepted.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Largest unframed JSON body buffered before masking.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024 * 1024;

/// Released text a channel keeps before its held text, as the detector's left context.
const CONTEXT: usize = 256;

/// The channel of the text data of non-JSON SSE events.
const RAW_SSE_CHANNEL: &[u8] = b"\0data";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sse,
    Ndjson,
    /// Unframed, not decided yet (only whitespace seen).
    Undecided,
    /// Unframed text.
    Text,
    /// Unframed JSON: buffered, masked whole at the end.
    Json,
}

/// A synthetic frame's template: the frame it copies and its data around the channel's field.
#[derive(Default)]
struct Template {
    frame: Vec<u8>,
    pre_a: Vec<u8>,
    post_a: Vec<u8>,
    pre_b: Vec<u8>,
    post_b: Vec<u8>,
    /// Whether the released text goes in as a JSON string's contents.
    json: bool,
}

/// One streamed text: the held text, some released text before it, and where released text
/// may go.
struct Channel {
    key: Vec<u8>,
    /// Released text kept as left context (`..cut`), then the held text (`cut..`).
    buf: Vec<u8>,
    cut: usize,
    template: Option<Template>,
    /// Cleared by a flush; a flushed channel is dropped at the end of the frame.
    live: bool,
    /// Frame number of the last frame that carried a field of this channel.
    seen: u64,
    /// Whether the text is tool-call arguments, masked as whole ones are
    /// ([`body::mask_arguments`]).
    args: Args,
}

/// What a channel's text is, as far as tool-call arguments go.
#[derive(Clone, Copy, Debug)]
enum Args {
    /// Not arguments.
    No,
    /// Arguments; whether they are a JSON document is decided at their first byte that is not
    /// whitespace.
    Undecided,
    /// Arguments that are not a JSON document: plain text.
    Text,
    /// Arguments that are a JSON document: where the released text stands in it.
    Json(InnerJson),
}

impl Channel {
    /// Whether text is held.
    fn holds(&self) -> bool {
        self.cut < self.buf.len()
    }

    /// Drops released text beyond the detector's left context: keeps the last [`CONTEXT`]
    /// bytes or so, from a whitespace so the first word is whole.
    fn trim(&mut self) {
        if self.cut > 2 * CONTEXT {
            let from = self.cut - CONTEXT;
            let ws = self.buf.get(from..self.cut).and_then(|r| r.iter().position(u8::is_ascii_whitespace));
            let drop = ws.map_or(from, |p| from + p + 1);
            self.buf.drain(..drop);
            self.cut -= drop;
        }
    }
}

/// A frame as each side writes it: the recorded side with its SSE field lines other than `data`
/// masked, the live side with them masked only when the caller's copy is.
#[derive(Clone, Copy)]
struct Fr<'a> {
    a: &'a [u8],
    b: &'a [u8],
}

/// An edit of a frame's JSON data.
struct Edit {
    start: usize,
    end: usize,
    what: EditKind,
}

enum EditKind {
    /// A string site: JSON-encoded contents in the arena for each side (`None`: unchanged).
    Str {
        a: Option<(usize, usize)>,
        b: Option<(usize, usize)>,
        channel: Option<usize>,
    },
    Blank(&'static [u8]),
    /// Tool-call arguments given as JSON: their masked JSON in the arena for each side.
    Json {
        a: Option<(usize, usize)>,
        b: Option<(usize, usize)>,
    },
}

/// The incremental masker of one streamed response. Owns the exchange's [`Masker`] (moved in by
/// [`Masker::stream`]), so the relay can hold it across polls; [`StreamMasker::counts`] and
/// [`StreamMasker::into_masker`] give the exchange back.
pub struct StreamMasker {
    masker: Masker,
    kind: Kind,
    side: Side,
    active: bool,
    finished: bool,
    inbuf: Vec<u8>,
    /// Where the current frame starts in `inbuf`.
    frame_start: usize,
    /// Where the current line starts in `inbuf`.
    line_start: usize,
    /// Where the search for the next line end resumes in `inbuf`.
    searched: usize,
    channels: Vec<Channel>,
    frame_no: u64,
    doc: Doc,
    scratch: Scratch,
    found: Vec<Found>,
    data: Vec<u8>,
    dec: Vec<u8>,
    ta: Vec<u8>,
    tb: Vec<u8>,
    arena: Vec<u8>,
    edits: Vec<Edit>,
    keys: Vec<u8>,
    site_keys: Vec<(usize, usize)>,
    scopes: Vec<(usize, usize)>,
    site_channels: Vec<Option<usize>>,
    ended: Vec<bool>,
    render_b: Vec<u8>,
}

impl StreamMasker {
    pub(super) fn new(masker: Masker, framing: Framing) -> StreamMasker {
        let side = masker.response_side();
        let active = masker.plan.is_active();
        let kind = match framing {
            Framing::Sse => Kind::Sse,
            Framing::Ndjson => Kind::Ndjson,
            Framing::None => Kind::Undecided,
        };
        StreamMasker {
            masker,
            kind,
            side,
            active,
            finished: false,
            inbuf: Vec::new(),
            frame_start: 0,
            line_start: 0,
            searched: 0,
            channels: Vec::new(),
            frame_no: 0,
            doc: Doc::default(),
            scratch: Scratch::default(),
            found: Vec::new(),
            data: Vec::new(),
            dec: Vec::new(),
            ta: Vec::new(),
            tb: Vec::new(),
            arena: Vec::new(),
            edits: Vec::new(),
            keys: Vec::new(),
            site_keys: Vec::new(),
            scopes: Vec::new(),
            site_channels: Vec::new(),
            ended: Vec::new(),
            render_b: Vec::new(),
        }
    }

    /// The exchange's counts so far (request and response).
    pub fn counts(&self) -> super::Counts {
        self.masker.counts()
    }

    /// The exchange's masker, with its counts and tokenize mapping.
    pub fn into_masker(self) -> Masker {
        self.masker
    }

    /// Masks the next chunk of the upstream's bytes: returns what may be sent to the caller and
    /// recorded now (possibly nothing; a frame is emitted once complete).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Masked, MaskError> {
        if self.finished {
            return Err(MaskError::Finished);
        }
        if !self.active {
            let b = Bytes::copy_from_slice(chunk);
            return Ok(Masked { caller: b.clone(), record: b });
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let r = match self.kind {
            Kind::Sse | Kind::Ndjson => self.push_framed(chunk, &mut a, &mut b),
            Kind::Undecided | Kind::Text | Kind::Json => self.push_unframed(chunk, &mut a, &mut b),
        };
        if r.is_err() {
            self.finished = true;
        }
        r?;
        Ok(self.outputs(chunk, a, b))
    }

    /// Ends the stream: releases everything held. Call once, after the last chunk.
    pub fn finish(&mut self) -> Result<Masked, MaskError> {
        if self.finished {
            return Err(MaskError::Finished);
        }
        self.finished = true;
        if !self.active {
            return Ok(Masked { caller: Bytes::new(), record: Bytes::new() });
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        match self.kind {
            Kind::Sse | Kind::Ndjson => {
                let inbuf = std::mem::take(&mut self.inbuf);
                let tail = inbuf.get(self.frame_start..).unwrap_or(&[]);
                if tail.is_empty() {
                    self.flush_scoped(&[], true, &mut a, &mut b)?;
                } else {
                    self.frame(tail, true, &mut a, &mut b)?;
                }
            }
            Kind::Undecided => {
                b.extend_from_slice(&self.inbuf);
                a.extend_from_slice(&self.inbuf);
            }
            Kind::Text => self.raw_text(&[], true, &mut a, &mut b)?,
            Kind::Json => {
                let out = self.masker.response(&std::mem::take(&mut self.inbuf))?;
                // A raw caller side already had every byte as it came.
                let caller = if self.side == Side::Raw { Bytes::new() } else { out.caller };
                return Ok(Masked { caller, record: out.record });
            }
        }
        // A raw caller side already had every byte as it came.
        Ok(self.outputs(&[], a, b))
    }

    fn outputs(&self, chunk: &[u8], a: Vec<u8>, b: Vec<u8>) -> Masked {
        let record = Bytes::from(b);
        let caller = match self.side {
            Side::Same => record.clone(),
            Side::Raw => Bytes::copy_from_slice(chunk),
            Side::Restore { .. } => Bytes::from(a),
        };
        Masked { caller, record }
    }

    fn two(&self) -> bool {
        matches!(self.side, Side::Restore { .. })
    }

    // ----- unframed bodies -----

    fn push_unframed(&mut self, chunk: &[u8], a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        if self.kind == Kind::Undecided {
            self.inbuf.extend_from_slice(chunk);
            match self.inbuf.iter().find(|b| !b.is_ascii_whitespace()) {
                None => return Ok(()),
                Some(b'{' | b'[') => self.kind = Kind::Json,
                Some(_) => {
                    self.kind = Kind::Text;
                    let held = std::mem::take(&mut self.inbuf);
                    return self.raw_text(&held, false, a, b);
                }
            }
            return self.check_buffered();
        }
        match self.kind {
            Kind::Json => {
                self.inbuf.extend_from_slice(chunk);
                self.check_buffered()
            }
            _ => self.raw_text(chunk, false, a, b),
        }
    }

    fn check_buffered(&self) -> Result<(), MaskError> {
        if self.inbuf.len() > MAX_BUFFERED_BODY { Err(MaskError::BodyTooLarge(MAX_BUFFERED_BODY)) } else { Ok(()) }
    }

    /// Unframed text: one channel, emitted raw.
    fn raw_text(&mut self, text: &[u8], flush: bool, a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        let i = self.channel(b"\0text");
        self.push_channel(i, text, flush, false)?;
        b.extend_from_slice(&self.tb);
        if self.two() {
            a.extend_from_slice(&self.ta);
        }
        Ok(())
    }

    // ----- framed bodies -----

    fn push_framed(&mut self, chunk: &[u8], a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        self.inbuf.extend_from_slice(chunk);
        let inbuf = std::mem::take(&mut self.inbuf);
        let r = self.split_frames(&inbuf, a, b);
        self.inbuf = inbuf;
        r?;
        if self.frame_start > 0 {
            self.inbuf.drain(..self.frame_start);
            self.line_start -= self.frame_start;
            self.searched -= self.frame_start;
            self.frame_start = 0;
        }
        if self.inbuf.len() > MAX_FRAME {
            return Err(MaskError::FrameTooLarge(MAX_FRAME));
        }
        Ok(())
    }

    fn split_frames(&mut self, inbuf: &[u8], a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        while let Some(n) = inbuf.get(self.searched..).and_then(|r| memchr::memchr(b'\n', r)) {
            let nl = self.searched + n;
            let line = inbuf.get(self.line_start..nl).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let complete = match self.kind {
                Kind::Sse => line.is_empty(),
                _ => true,
            };
            self.line_start = nl + 1;
            self.searched = nl + 1;
            if complete {
                let frame = inbuf.get(self.frame_start..=nl).unwrap_or(&[]);
                self.frame_start = nl + 1;
                self.frame(frame, false, a, b)?;
            }
        }
        self.searched = inbuf.len();
        Ok(())
    }

    /// One complete frame (or, when `last`, the unterminated tail at the end of the stream).
    fn frame(&mut self, frame: &[u8], last: bool, a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        self.frame_no += 1;
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        let has_data = match self.kind {
            Kind::Sse => sse_data(frame, &mut data),
            _ => {
                let line = trim_line(frame);
                data.extend_from_slice(line);
                !line.iter().all(u8::is_ascii_whitespace)
            }
        };
        let masked = if self.kind == Kind::Sse { self.mask_field_lines(frame) } else { None };
        let fb = masked.as_deref().unwrap_or(frame);
        let fa = if matches!(self.side, Side::Restore { mask: true }) { fb } else { frame };
        let r = self.frame_data(Fr { a: fa, b: fb }, &data, has_data, last, a, b);
        self.data = data;
        r
    }

    /// Masks, as whole texts, an SSE frame's lines other than `data` ones (comments, `event`,
    /// `id`, and lines that are no SSE field, such as a JSON error body sent where events were
    /// expected). Returns the frame with them masked, if any changed.
    fn mask_field_lines(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let (mut copied, mut at) = (0, 0);
        for line in Lines(frame) {
            let content = trim_line(line);
            if !content.is_empty() && !is_data_line(content) {
                let eng = &mut self.masker.engine;
                let ch = body::mask_text(
                    eng,
                    Dir::Response,
                    Side::Same,
                    content,
                    &mut self.found,
                    &mut self.ta,
                    &mut self.tb,
                );
                if ch.b {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(frame.len()));
                    o.extend_from_slice(frame.get(copied..at).unwrap_or(&[]));
                    o.extend_from_slice(&self.tb);
                    copied = at + content.len();
                }
            }
            at += line.len();
        }
        out.map(|mut o| {
            o.extend_from_slice(frame.get(copied..).unwrap_or(&[]));
            o
        })
    }

    fn frame_data(
        &mut self,
        frame: Fr<'_>,
        data: &[u8],
        has_data: bool,
        last: bool,
        a: &mut Vec<u8>,
        b: &mut Vec<u8>,
    ) -> Result<(), MaskError> {
        let verbatim = |a: &mut Vec<u8>, b: &mut Vec<u8>, two: bool| {
            b.extend_from_slice(frame.b);
            if two {
                a.extend_from_slice(frame.a);
            }
        };
        let two = self.two();
        if !has_data {
            if last {
                self.flush_scoped(&[], true, a, b)?;
            }
            verbatim(a, b, two);
            return Ok(());
        }
        if self.kind == Kind::Sse && data.trim_ascii() == b"[DONE]" {
            self.flush_scoped(&[], true, a, b)?;
            verbatim(a, b, two);
            return Ok(());
        }
        if json::looks_like_json(data) {
            return self.json_frame(frame, data, last, a, b);
        }
        if self.kind == Kind::Ndjson {
            return Err(MaskError::BadFrame);
        }
        // SSE data that is not JSON: a text stream of its own.
        if last {
            self.flush_except(RAW_SSE_CHANNEL, a, b)?;
        }
        let i = self.channel(RAW_SSE_CHANNEL);
        self.push_channel(i, data, last, false)?;
        self.wrap(frame.b, &[&self.tb], b);
        if two {
            self.wrap(frame.a, &[&self.ta], a);
        }
        self.store_raw_template(i, frame.b);
        self.drop_flushed();
        Ok(())
    }

    /// A frame whose data is JSON.
    fn json_frame(
        &mut self,
        frame: Fr<'_>,
        data: &[u8],
        last: bool,
        a: &mut Vec<u8>,
        b: &mut Vec<u8>,
    ) -> Result<(), MaskError> {
        let mut doc = std::mem::take(&mut self.doc);
        let r = json::parse(data, true, &mut doc).map_err(|_| MaskError::BadFrame);
        let r = r.and_then(|()| self.json_doc(frame, data, &doc, last, a, b));
        self.doc = doc;
        r
    }

    fn json_doc(
        &mut self,
        frame: Fr<'_>,
        data: &[u8],
        doc: &Doc,
        last: bool,
        a: &mut Vec<u8>,
        b: &mut Vec<u8>,
    ) -> Result<(), MaskError> {
        // Channel keys of the streamed fields, and the scopes this frame ends.
        self.keys.clear();
        self.site_keys.clear();
        self.scopes.clear();
        for site in &doc.sites {
            let from = self.keys.len();
            if matches!(site.class, Class::Delta { .. }) {
                node_key(doc, data, site.node, &mut self.keys);
                push_seg(&mut self.keys, b'.', data.get(site.key.0..site.key.1).unwrap_or(&[]));
            }
            self.site_keys.push((from, self.keys.len()));
        }
        if last {
            self.scopes.push((0, 0));
        } else {
            for &node in &doc.ends {
                let from = self.keys.len();
                node_key(doc, data, node, &mut self.keys);
                self.scopes.push((from, self.keys.len()));
            }
        }
        // Channels this frame ends that it carries no field of: synthetic frames first.
        let keys = std::mem::take(&mut self.keys);
        let site_keys = std::mem::take(&mut self.site_keys);
        let scopes = std::mem::take(&mut self.scopes);
        let mut site_channels = std::mem::take(&mut self.site_channels);
        site_channels.clear();
        for (site, &(from, to)) in doc.sites.iter().zip(&site_keys) {
            let ch = match site.class {
                Class::Delta { args } => {
                    let i = channel_of(&mut self.channels, keys.get(from..to).unwrap_or(&[]));
                    if let Some(c) = self.channels.get_mut(i) {
                        c.seen = self.frame_no;
                        if args && matches!(c.args, Args::No) {
                            c.args = Args::Undecided;
                        }
                    }
                    Some(i)
                }
                _ => None,
            };
            site_channels.push(ch);
        }
        let mut ended = std::mem::take(&mut self.ended);
        ended.clear();
        ended.extend(
            self.channels.iter().map(|c| scopes.iter().any(|&(f, t)| in_scope(&c.key, keys.get(f..t).unwrap_or(&[])))),
        );
        self.keys = keys;
        self.site_keys = site_keys;
        self.scopes = scopes;
        for (i, &end) in ended.iter().enumerate() {
            let carried = self.channels.get(i).is_some_and(|c| c.seen == self.frame_no);
            if end && !carried {
                self.synthetic(i, a, b)?;
            }
        }

        // The frame's edits, in document order.
        let two = self.two();
        let side = self.side;
        self.arena.clear();
        self.edits.clear();
        let mut blanks = doc.blanks.iter().peekable();
        let mut dec = std::mem::take(&mut self.dec);
        for (site, ch) in doc.sites.iter().zip(&site_channels) {
            while let Some(bl) = blanks.next_if(|bl| bl.start < site.start) {
                self.edits.push(Edit { start: bl.start, end: bl.end, what: EditKind::Blank(blank_bytes(bl.kind)) });
            }
            let raw = site.raw(data);
            dec.clear();
            let text: &[u8] = if site.escaped {
                json::decode(raw, &mut dec);
                &dec
            } else {
                raw
            };
            let (changed, channel) = match *ch {
                Some(i) => {
                    let flush = ended.get(i).copied().unwrap_or(false);
                    if let Err(e) = self.push_channel(i, text, flush, true) {
                        self.dec = dec;
                        return Err(e);
                    }
                    // A streamed field always takes what is released now.
                    (Changed { a: two, b: true }, Some(i))
                }
                None if site.class == Class::Arguments => {
                    let eng = &mut self.masker.engine;
                    let ch = body::mask_arguments(eng, Dir::Response, side, text, &mut self.scratch);
                    std::mem::swap(&mut self.ta, &mut self.scratch.ta);
                    std::mem::swap(&mut self.tb, &mut self.scratch.tb);
                    (ch, None)
                }
                None => {
                    let eng = &mut self.masker.engine;
                    (body::mask_text(eng, Dir::Response, side, text, &mut self.found, &mut self.ta, &mut self.tb), None)
                }
            };
            let put = |arena: &mut Vec<u8>, out: &[u8]| {
                if site.json { push_into(arena, out) } else { encode_into(arena, out) }
            };
            let b_span = changed.b.then(|| put(&mut self.arena, &self.tb));
            let a_span = (two && changed.a).then(|| put(&mut self.arena, &self.ta));
            let what = if site.json {
                EditKind::Json { a: a_span, b: b_span }
            } else {
                EditKind::Str { a: a_span, b: b_span, channel }
            };
            self.edits.push(Edit { start: site.start, end: site.end, what });
        }
        self.dec = dec;
        for bl in blanks {
            self.edits.push(Edit { start: bl.start, end: bl.end, what: EditKind::Blank(blank_bytes(bl.kind)) });
        }

        // The frame itself.
        let a_blanks = matches!(side, Side::Restore { mask: true });
        let mut render = std::mem::take(&mut self.render_b);
        render.clear();
        let changed_b = self.render(data, false, a_blanks, None, &mut render, &mut Vec::new());
        if changed_b {
            self.wrap(frame.b, &[&render], b)
        } else {
            b.extend_from_slice(frame.b)
        }
        if two {
            render.clear();
            let changed_a = self.render(data, true, a_blanks, None, &mut render, &mut Vec::new());
            if changed_a { self.wrap(frame.a, &[&render], a) } else { a.extend_from_slice(frame.a) }
        }
        self.render_b = render;

        // Templates for the channels that still hold text.
        for (site_no, ch) in site_channels.iter().enumerate() {
            let Some(i) = *ch else { continue };
            let last_site = site_channels.iter().rposition(|c| *c == Some(i)) == Some(site_no);
            let holds = self.channels.get(i).is_some_and(|c| c.live && c.holds());
            if !last_site || !holds {
                continue;
            }
            let mut t = self.channels.get_mut(i).and_then(|c| c.template.take()).unwrap_or_default();
            t.frame.clear();
            t.frame.extend_from_slice(frame.b);
            t.json = true;
            let (mut pre, mut post) = (std::mem::take(&mut t.pre_b), std::mem::take(&mut t.post_b));
            pre.clear();
            post.clear();
            self.render(data, false, a_blanks, Some(site_no), &mut pre, &mut post);
            (t.pre_b, t.post_b) = (pre, post);
            if two {
                let (mut pre, mut post) = (std::mem::take(&mut t.pre_a), std::mem::take(&mut t.post_a));
                pre.clear();
                post.clear();
                self.render(data, true, a_blanks, Some(site_no), &mut pre, &mut post);
                (t.pre_a, t.post_a) = (pre, post);
            }
            if let Some(c) = self.channels.get_mut(i) {
                c.template = Some(t);
            }
        }
        self.site_channels = site_channels;
        self.ended = ended;
        self.drop_flushed();
        Ok(())
    }

    /// Renders the frame's JSON data for one side into `pre`. With a `hole` (a site number), the
    /// data is a template: the hole site's string contents are left out (what precedes them goes
    /// to `pre`, what follows to `post`) and every other streamed field is empty. Returns whether
    /// anything differs from `data`.
    fn render(
        &self,
        data: &[u8],
        side_a: bool,
        a_blanks: bool,
        hole: Option<usize>,
        pre: &mut Vec<u8>,
        post: &mut Vec<u8>,
    ) -> bool {
        let mut changed = false;
        let mut copied = 0;
        let mut site_no = 0;
        let mut in_post = false;
        for e in &self.edits {
            let out = if in_post { &mut *post } else { &mut *pre };
            out.extend_from_slice(data.get(copied..e.start).unwrap_or(&[]));
            copied = e.start;
            match &e.what {
                EditKind::Blank(bytes) => {
                    if !side_a || a_blanks {
                        out.extend_from_slice(bytes);
                        copied = e.end;
                        changed = true;
                    }
                }
                EditKind::Json { a, b } => {
                    if let Some((f, t)) = if side_a { *a } else { *b } {
                        out.extend_from_slice(self.arena.get(f..t).unwrap_or(&[]));
                        copied = e.end;
                        changed |= data.get(e.start..e.end) != self.arena.get(f..t);
                    }
                    // A site too: holes are numbered by site.
                    site_no += 1;
                }
                EditKind::Str { a, b, channel } => {
                    let span = if side_a { *a } else { *b };
                    if hole == Some(site_no) {
                        out.push(b'"');
                        in_post = true;
                        post.push(b'"');
                        copied = e.end;
                    } else if hole.is_some() && channel.is_some() {
                        out.extend_from_slice(b"\"\"");
                        copied = e.end;
                    } else if let Some((f, t)) = span {
                        out.push(b'"');
                        out.extend_from_slice(self.arena.get(f..t).unwrap_or(&[]));
                        out.push(b'"');
                        copied = e.end;
                        changed |= data.get(e.start + 1..e.end - 1) != self.arena.get(f..t);
                    }
                    site_no += 1;
                }
            }
        }
        let out = if in_post { post } else { pre };
        out.extend_from_slice(data.get(copied..).unwrap_or(&[]));
        changed
    }

    /// Writes a frame like `frame` whose data is the concatenation of `parts`.
    fn wrap(&self, frame: &[u8], parts: &[&[u8]], out: &mut Vec<u8>) {
        match self.kind {
            Kind::Sse => {
                let mut wrote = false;
                for line in Lines(frame) {
                    let content = trim_line(line);
                    if !is_data_line(content) {
                        out.extend_from_slice(line);
                        continue;
                    }
                    if wrote {
                        continue;
                    }
                    wrote = true;
                    out.extend_from_slice(b"data: ");
                    for part in parts {
                        let mut rest: &[u8] = part;
                        while let Some(n) = memchr::memchr(b'\n', rest) {
                            out.extend_from_slice(rest.get(..n).unwrap_or(&[]));
                            out.extend_from_slice(b"\ndata: ");
                            rest = rest.get(n + 1..).unwrap_or(&[]);
                        }
                        out.extend_from_slice(rest);
                    }
                    out.extend_from_slice(line.get(content.len()..).unwrap_or(&[]));
                }
            }
            _ => {
                for part in parts {
                    out.extend_from_slice(part);
                }
                out.extend_from_slice(frame.get(trim_line(frame).len()..).unwrap_or(&[]));
            }
        }
    }

    fn store_raw_template(&mut self, i: usize, frame: &[u8]) {
        let Some(c) = self.channels.get_mut(i) else { return };
        if !c.live || !c.holds() {
            return;
        }
        let mut t = c.template.take().unwrap_or_default();
        t.frame.clear();
        t.frame.extend_from_slice(frame);
        t.json = false;
        for v in [&mut t.pre_a, &mut t.post_a, &mut t.pre_b, &mut t.post_b] {
            v.clear();
        }
        c.template = Some(t);
    }

    // ----- channels -----

    /// The channel of `key`, created if new.
    fn channel(&mut self, key: &[u8]) -> usize {
        channel_of(&mut self.channels, key)
    }

    /// Appends `text` to channel `i` and releases what may go now (everything when `flush`) into
    /// `self.ta`/`self.tb` (cleared first). A JSON channel releases whole UTF-8 characters.
    ///
    /// The detector sees the held text after up to [`CONTEXT`] bytes of released text, so a
    /// value's left context (a word boundary, a key word before a secret) reads as it would in
    /// the whole text. A match that starts in released text and runs into held text means a
    /// fragment of a value went out: the stream fails.
    fn push_channel(&mut self, i: usize, text: &[u8], flush: bool, json: bool) -> Result<(), MaskError> {
        self.ta.clear();
        self.tb.clear();
        let Some(c) = self.channels.get_mut(i) else {
            return Err(MaskError::Inconsistent("a stream channel vanished"));
        };
        c.buf.extend_from_slice(text);
        if flush {
            c.live = false;
        }
        if matches!(c.args, Args::Undecided) {
            // Only whitespace was released before: the document starts in its default state.
            match json::starts_json_value(&c.buf) {
                Some(true) => c.args = Args::Json(InnerJson::default()),
                Some(false) => c.args = Args::Text,
                None => {}
            }
        }
        let (buf, cut, len) = (&c.buf, c.cut, c.buf.len());
        let eng = &mut self.masker.engine;
        let mut e = if flush { len } else { eng.detector.hold_from(buf).clamp(cut, len) };
        if e == cut {
            return Ok(());
        }
        eng.scan(buf, &mut self.found);
        let first = self.found.partition_point(|m| m.end <= cut);
        let found = self.found.get(first..).unwrap_or(&[]);
        if found.first().is_some_and(|m| m.start < cut) {
            return Err(MaskError::Inconsistent("a value began in text already released"));
        }
        if !flush {
            // A match across the hold point waits whole.
            if let Some(m) = found.iter().find(|m| m.start < e && m.end > e) {
                e = m.start;
            }
            // So does a placeholder the text may still complete (or that runs past the point).
            if eng.restores()
                && let Some(p) = open_placeholder(buf.get(cut..e).unwrap_or(&[]))
            {
                e = cut + p;
            }
            if json {
                while e > cut && buf.get(e).is_some_and(|&b| b & 0xc0 == 0x80) {
                    e -= 1;
                }
            }
            // In JSON arguments a sign may still belong to a number masked with it.
            if matches!(c.args, Args::Json(_)) && e > cut && buf.get(e - 1) == Some(&b'-') {
                e -= 1;
            }
        }
        if e == cut {
            return Ok(());
        }
        let n = found.partition_point(|m| m.start < e);
        let matches = found.get(..n).unwrap_or(&[]);
        if matches.iter().any(|m| m.end > e) {
            return Err(MaskError::Inconsistent("a match runs past the released text"));
        }
        let region = buf.get(cut..e).unwrap_or(&[]);
        let inner = match &mut c.args {
            Args::Json(st) => Some(st),
            _ => None,
        };
        eng.apply(Dir::Response, self.side, region, matches, cut, inner, &mut self.ta, &mut self.tb);
        c.cut = e;
        c.trim();
        Ok(())
    }

    /// Releases channel `i` entirely into a synthetic frame.
    fn synthetic(&mut self, i: usize, a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        let holds = self.channels.get(i).is_some_and(Channel::holds);
        if !holds {
            if let Some(c) = self.channels.get_mut(i) {
                c.live = false;
            }
            return Ok(());
        }
        let json = self.channels.get(i).and_then(|c| c.template.as_ref()).map(|t| t.json);
        self.push_channel(i, &[], true, json.unwrap_or(false))?;
        let Some(t) = self.channels.get_mut(i).and_then(|c| c.template.take()) else {
            return Err(MaskError::Inconsistent("held stream text has no frame to go in"));
        };
        let two = self.two();
        let mut text = Vec::new();
        for (side_a, out) in [(false, &mut *b), (true, &mut *a)] {
            if side_a && !two {
                continue;
            }
            text.clear();
            let src = if side_a { &self.ta } else { &self.tb };
            let (pre, post) = if side_a { (&t.pre_a, &t.post_a) } else { (&t.pre_b, &t.post_b) };
            if t.json {
                json::encode(src, &mut text);
            } else {
                text.extend_from_slice(src);
            }
            self.wrap(&t.frame, &[pre, &text, post], out);
        }
        Ok(())
    }

    /// Releases every channel in the scope `key` (all when `all`) into synthetic frames.
    fn flush_scoped(&mut self, key: &[u8], all: bool, a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        for i in 0..self.channels.len() {
            let hit = self.channels.get(i).is_some_and(|c| all || in_scope(&c.key, key));
            if hit {
                self.synthetic(i, a, b)?;
            }
        }
        self.drop_flushed();
        Ok(())
    }

    /// Releases every channel but `keep` into synthetic frames.
    fn flush_except(&mut self, keep: &[u8], a: &mut Vec<u8>, b: &mut Vec<u8>) -> Result<(), MaskError> {
        for i in 0..self.channels.len() {
            if self.channels.get(i).is_some_and(|c| c.key != keep) {
                self.synthetic(i, a, b)?;
            }
        }
        Ok(())
    }

    fn drop_flushed(&mut self) {
        self.channels.retain(|c| c.live);
    }
}

/// The channel of `key` in `channels`, created if new.
fn channel_of(channels: &mut Vec<Channel>, key: &[u8]) -> usize {
    if let Some(i) = channels.iter().position(|c| c.key == key) {
        return i;
    }
    channels.push(Channel {
        key: key.to_vec(),
        buf: Vec::new(),
        cut: 0,
        template: None,
        live: true,
        seen: 0,
        args: Args::No,
    });
    channels.len() - 1
}

/// Appends `bytes` as they are to the arena; returns their span.
fn push_into(arena: &mut Vec<u8>, bytes: &[u8]) -> (usize, usize) {
    let from = arena.len();
    arena.extend_from_slice(bytes);
    (from, arena.len())
}

/// Appends `text` JSON-encoded to the arena; returns its span.
fn encode_into(arena: &mut Vec<u8>, text: &[u8]) -> (usize, usize) {
    let from = arena.len();
    json::encode(text, arena);
    (from, arena.len())
}

/// Whether a channel key lies in the scope of an end marker's object key.
fn in_scope(key: &[u8], scope: &[u8]) -> bool {
    scope.is_empty() || key.starts_with(scope) && matches!(key.get(scope.len()), None | Some(b'.' | b'[' | b'{'))
}

/// Appends a length-prefixed segment (`.7:choices`), so keys never collide by concatenation.
fn push_seg(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    push_num(out, bytes.len());
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends `n` in decimal.
fn push_num(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(n as u64, &mut digits));
}

/// Appends the key of container `node`: its path from the root, array elements by their
/// `index` member (else position), objects also by `output_index`, `content_index`, `item_id`.
fn node_key(doc: &Doc, data: &[u8], node: u32, out: &mut Vec<u8>) {
    let mut chain = [0u32; json::MAX_DEPTH + 1];
    let mut n = 0;
    let mut cur = node;
    while cur != u32::MAX && n < chain.len() {
        if let Some(slot) = chain.get_mut(n) {
            *slot = cur;
        }
        n += 1;
        cur = doc.nodes.get(cur as usize).map_or(u32::MAX, |nd| nd.parent);
    }
    for &id in chain.get(..n).unwrap_or(&[]).iter().rev() {
        let Some(nd) = doc.nodes.get(id as usize) else { continue };
        let span = |s: Option<(usize, usize)>| s.and_then(|(f, t)| data.get(f..t));
        let index = span(nd.ids.first().copied().flatten());
        if nd.in_array {
            match index {
                Some(ix) => push_seg(out, b'[', ix),
                None => {
                    let mut digits = [0u8; 20];
                    push_seg(out, b'[', decimal(u64::from(nd.pos), &mut digits));
                }
            }
        } else if nd.parent != u32::MAX {
            push_seg(out, b'.', data.get(nd.key.0..nd.key.1).unwrap_or(&[]));
        }
        if !nd.in_array
            && let Some(ix) = index
        {
            push_seg(out, b'{', ix);
        }
        for (slot, tag) in [(1, b'o'), (2, b'c'), (3, b'i')] {
            if let Some(v) = span(nd.ids.get(slot).copied().flatten()) {
                out.push(b'{');
                push_seg(out, tag, v);
            }
        }
    }
}

/// Lines of a frame, each with its terminator.
struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', self.0).map_or(self.0.len(), |n| n + 1);
        let (line, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(line)
    }
}

/// A line without its terminator (`\n` or `\r\n`).
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_data_line(content: &[u8]) -> bool {
    content.starts_with(b"data") && matches!(content.get(4), None | Some(b':'))
}

/// Collects an SSE frame's data (its `data` lines joined by `\n`); returns whether it has any.
fn sse_data(frame: &[u8], out: &mut Vec<u8>) -> bool {
    let mut any = false;
    for line in Lines(frame) {
        let content = trim_line(line);
        if !is_data_line(content) {
            continue;
        }
        if any {
            out.push(b'\n');
        }
        any = true;
        let value = content.get(5..).unwrap_or(&[]);
        out.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
    }
    any
}
