//! A validating JSON walker that finds the strings masking applies to, without building a tree,
//! and the string decoding and encoding that masking needs.
//!
//! [`parse`] checks the whole document (RFC 8259 grammar, no raw control bytes in strings, at most
//! [`MAX_DEPTH`] levels) and records, in document order, the string values to mask ([`Site`]),
//! the token-level subtrees a masked response drops ([`Blank`]), the containers ([`Node`], for the
//! stream channel keys) and the objects that carry an end marker. Which strings are sites is the
//! rule documented on [`crate::mask`].

/// Deepest nesting accepted; a deeper document is refused (fail closed) rather than recursed into.
pub(super) const MAX_DEPTH: usize = 128;

/// Why a document was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JsonError {
    /// Not JSON.
    Syntax,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// How a string value is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// Text, masked as a whole.
    Text,
    /// Tool-call arguments: a JSON document in a string, masked JSON-aware inside when it parses,
    /// as text otherwise.
    Arguments,
    /// In a stream, an increment of a text that continues across events (`delta.content`,
    /// `token.text`, …): masked over the concatenation, with hold-back. As a whole otherwise
    /// (as [`Class::Arguments`] when `args`: streamed tool-call arguments).
    Delta {
        /// Whether these are tool-call arguments.
        args: bool,
    },
}

/// A string value to mask.
#[derive(Clone, Copy, Debug)]
pub(super) struct Site {
    /// Offset of the opening quote.
    pub start: usize,
    /// Offset just past the closing quote.
    pub end: usize,
    /// Whether the string holds a backslash escape (so its text must be decoded).
    pub escaped: bool,
    /// How it is masked.
    pub class: Class,
    /// The container holding it.
    pub node: u32,
    /// Its member key, raw, without quotes (empty for an array element).
    pub key: (usize, usize),
    /// Not a string but tool-call arguments given as an object or array (Ollama, Anthropic
    /// `tool_use.input`): its JSON is masked as arguments in a string are, and stays JSON.
    pub json: bool,
}

impl Site {
    /// Tool-call arguments given as JSON, spanning `span`, in the container `node` under `key`.
    fn json_arguments(span: (usize, usize), node: u32, key: (usize, usize)) -> Site {
        Site { start: span.0, end: span.1, escaped: false, class: Class::Arguments, node, key, json: true }
    }

    /// The raw bytes between the quotes (the whole JSON of a [`Site::json`] site).
    pub fn raw<'a>(&self, doc: &'a [u8]) -> &'a [u8] {
        if self.json {
            return doc.get(self.start..self.end).unwrap_or(&[]);
        }
        doc.get(self.start + 1..self.end - 1).unwrap_or(&[])
    }
}

/// What a token-level subtree becomes in a masked response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BlankKind {
    /// `null` (`logprobs`).
    Null,
    /// `[]` (TGI `details.tokens`, `prefill`, `top_tokens`; Ollama `context`).
    EmptyArray,
}

/// A token-level subtree: token texts or ids that spell the answer piece by piece, so masking
/// cannot see a value across them; a masked response drops them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Blank {
    /// The value's span.
    pub start: usize,
    /// End of the value's span.
    pub end: usize,
    /// Its replacement.
    pub kind: BlankKind,
}

/// A container (object or array), for the channel keys of stream sites.
#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    /// The parent container; `u32::MAX` for the root.
    pub parent: u32,
    /// The member key it sits under (raw), or empty for an array element.
    pub key: (usize, usize),
    /// Its position, when an array element.
    pub pos: u32,
    /// Whether it is an array element.
    pub in_array: bool,
    /// Raw spans of its identifying members: `index`, `output_index`, `content_index`, `item_id`.
    pub ids: [Option<(usize, usize)>; 4],
}

/// What [`parse`] records. Reused across documents: `parse` clears it.
#[derive(Debug, Default)]
pub(super) struct Doc {
    /// Containers, parents first.
    pub nodes: Vec<Node>,
    /// String values to mask, in document order.
    pub sites: Vec<Site>,
    /// Token-level subtrees, in document order (only when parsing a response).
    pub blanks: Vec<Blank>,
    /// Containers that carry an end marker (`finish_reason`, `done: true`, …).
    pub ends: Vec<u32>,
    /// The span of the root object's `type` value.
    root_type: Option<(usize, usize)>,
}

impl Doc {
    fn clear(&mut self) {
        self.nodes.clear();
        self.sites.clear();
        self.blanks.clear();
        self.ends.clear();
        self.root_type = None;
    }
}

/// Known member keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    Other,
    /// Its string value is kept verbatim.
    Structural,
    /// Its whole value is opaque (base64, vectors): not looked into.
    Skip,
    /// Token-level data, blanked in masked responses.
    TokenLevel(BlankKind),
    Content,
    Text,
    Arguments,
    Reasoning,
    PartialJson,
    Response,
    TextOutput,
    DeltaKey,
    Message,
    Function,
    FunctionCall,
    Token,
    Choices,
    Details,
    FinishReason,
    Done,
    Stop,
    Type,
    GeneratedText,
    Index,
    OutputIndex,
    ContentIndex,
    ItemId,
}

fn classify_key(k: &[u8]) -> K {
    match k {
        b"content" => K::Content,
        b"text" => K::Text,
        b"arguments" => K::Arguments,
        b"reasoning_content" | b"reasoning" | b"thinking" => K::Reasoning,
        b"partial_json" => K::PartialJson,
        b"response" => K::Response,
        b"text_output" => K::TextOutput,
        b"delta" => K::DeltaKey,
        b"message" => K::Message,
        b"function" => K::Function,
        b"function_call" => K::FunctionCall,
        b"token" => K::Token,
        b"choices" => K::Choices,
        b"details" => K::Details,
        b"finish_reason" | b"stop_reason" | b"done_reason" => K::FinishReason,
        b"done" => K::Done,
        b"stop" => K::Stop,
        b"type" => K::Type,
        b"generated_text" => K::GeneratedText,
        b"index" => K::Index,
        b"output_index" => K::OutputIndex,
        b"content_index" => K::ContentIndex,
        b"item_id" => K::ItemId,
        b"logprobs" => K::TokenLevel(BlankKind::Null),
        b"context" | b"tokens" | b"prefill" | b"top_tokens" => K::TokenLevel(BlankKind::EmptyArray),
        b"embedding" | b"embeddings" | b"image_url" | b"images" | b"image" | b"input_audio" | b"audio"
        | b"b64_json" | b"file_data" => K::Skip,
        b"model"
        | b"id"
        | b"object"
        | b"role"
        | b"status"
        | b"created"
        | b"created_at"
        | b"system_fingerprint"
        | b"service_tier"
        | b"name"
        | b"encoding_format"
        | b"datatype"
        | b"model_name"
        | b"model_version"
        | b"tool_choice"
        | b"format" => K::Structural,
        k if k.ends_with(b"_id") => K::Structural,
        _ => K::Other,
    }
}

/// Where a value sits, as far as classification needs.
#[derive(Clone, Copy)]
struct Ctx {
    /// Its container.
    node: u32,
    /// Its member key (for an array element: the array's key).
    key: K,
    key_span: (usize, usize),
    /// The key of its container (for an element of an array: the array's key).
    parent: K,
    /// Whether its container is the root object.
    at_root: bool,
    /// Whether its container is an element of `choices`.
    in_choice: bool,
    /// Whether this document is a response (token-level subtrees are blanked).
    response: bool,
}

/// Parses `body`, recording into `doc` (cleared first). `response` records the token-level
/// subtrees a masked response drops.
pub(super) fn parse(body: &[u8], response: bool, doc: &mut Doc) -> Result<(), JsonError> {
    doc.clear();
    let mut p = Parser { b: body, i: 0, doc };
    p.ws();
    let ctx = Ctx {
        node: u32::MAX,
        key: K::Other,
        key_span: (0, 0),
        parent: K::Other,
        at_root: false,
        in_choice: false,
        response,
    };
    p.value(ctx, 0, None)?;
    p.ws();
    if p.i != body.len() {
        return Err(JsonError::Syntax);
    }
    // The Responses API streams tool-call arguments as a root `delta` of an event of their own
    // (`response.function_call_arguments.delta`, `response.mcp_call_arguments.delta`).
    let root_type = doc.root_type.and_then(|(a, b)| body.get(a..b)).unwrap_or(&[]);
    if root_type.starts_with(b"\"response.") && root_type.ends_with(b"_arguments.delta\"") {
        for site in &mut doc.sites {
            if site.node == 0 && body.get(site.key.0..site.key.1) == Some(b"delta") {
                site.class = Class::Delta { args: true };
            }
        }
    }
    Ok(())
}

/// Whether tool-call arguments are a JSON document: their first non-whitespace byte starts a
/// JSON object, array, string or number (literals hold nothing to mask).
pub(super) fn starts_json_value(text: &[u8]) -> Option<bool> {
    text.iter().find(|b| !b.is_ascii_whitespace()).map(|b| matches!(b, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9'))
}

/// Whether `body` is to be treated as JSON: its first non-whitespace byte opens an object or array.
pub(super) fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    doc: &'a mut Doc,
}

/// A member value and what was recorded inside it.
struct Inside {
    span: (usize, usize),
    sites: std::ops::Range<usize>,
    blanks: std::ops::Range<usize>,
}

/// How a value is placed in its container, for the node it may open.
#[derive(Clone, Copy)]
struct Place {
    key: (usize, usize),
    pos: u32,
    in_array: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), JsonError> {
        if self.b.get(self.i..).is_some_and(|r| r.starts_with(lit)) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    /// One value; `place` is how it sits in its container (`None` for the root).
    fn value(&mut self, ctx: Ctx, depth: usize, place: Option<Place>) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => self.object(ctx, depth, place),
            Some(b'[') => self.array(ctx, depth, place),
            Some(b'"') => {
                let (start, escaped) = (self.i, self.string()?);
                if let Some(class) = site_class(&ctx) {
                    let site =
                        Site { start, end: self.i, escaped, class, node: ctx.node, key: ctx.key_span, json: false };
                    self.doc.sites.push(site);
                }
                Ok(())
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(JsonError::Syntax),
        }
    }

    fn open_node(&mut self, ctx: &Ctx, place: Option<Place>) -> u32 {
        let id = u32::try_from(self.doc.nodes.len()).unwrap_or(u32::MAX - 1);
        let (key, pos, in_array) = place.map_or(((0, 0), 0, false), |p| (p.key, p.pos, p.in_array));
        self.doc.nodes.push(Node { parent: ctx.node, key, pos, in_array, ids: [None; 4] });
        id
    }

    fn object(&mut self, ctx: Ctx, depth: usize, place: Option<Place>) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        let node = self.open_node(&ctx, place);
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let in_choice = place.is_some_and(|p| p.in_array) && ctx.key == K::Choices;
        // An Anthropic `tool_use` block, whose `input` holds the arguments: once the block's
        // `type` is known (it may come after `input`), what was recorded inside `input` becomes one
        // arguments site. Bedrock's `toolUse` has no `type`.
        let mut tool_use = self.b.get(ctx.key_span.0..ctx.key_span.1) == Some(b"toolUse") && place.is_some();
        let mut input: Option<Inside> = None;
        loop {
            self.ws();
            let key_start = self.i + 1;
            let key_escaped = self.string()?;
            let key_span = (key_start, self.i - 1);
            let raw_key = self.b.get(key_span.0..key_span.1).unwrap_or(&[]);
            let key = if key_escaped {
                let mut decoded = Vec::with_capacity(raw_key.len());
                decode(raw_key, &mut decoded);
                classify_key(&decoded)
            } else {
                classify_key(raw_key)
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value_start = self.i;
            let child = Ctx { node, key, key_span, parent: ctx.key, at_root: place.is_none(), in_choice, ..ctx };
            let json_value = matches!(self.peek(), Some(b'{' | b'['));
            let args_object = json_value && key == K::Arguments;
            let (sites0, blanks0) = (self.doc.sites.len(), self.doc.blanks.len());
            match key {
                _ if args_object => {
                    self.skip(depth + 1)?;
                    self.doc.sites.push(Site::json_arguments((value_start, self.i), node, key_span));
                }
                K::Skip => self.skip(depth + 1)?,
                K::TokenLevel(kind) if ctx.response && self.peek() != Some(b'n') => {
                    self.skip(depth + 1)?;
                    self.doc.blanks.push(Blank { start: value_start, end: self.i, kind });
                }
                _ => {
                    let place = Place { key: key_span, pos: 0, in_array: false };
                    self.value(child, depth + 1, Some(place))?;
                    self.member_seen(node, key, value_start);
                    // `tool_use`, `server_tool_use`, `mcp_tool_use`.
                    tool_use |=
                        key == K::Type && self.b.get(value_start..self.i).is_some_and(|v| v.ends_with(b"tool_use\""));
                    if json_value && raw_key == b"input" && !child.at_root {
                        let spans = (self.doc.sites.len(), self.doc.blanks.len());
                        input = Some(Inside {
                            span: (value_start, self.i),
                            sites: sites0..spans.0,
                            blanks: blanks0..spans.1,
                        });
                    }
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    if tool_use && let Some(Inside { span, sites, blanks }) = input {
                        self.doc.sites.splice(sites, [Site::json_arguments(span, node, (0, 0))]);
                        self.doc.blanks.drain(blanks);
                    }
                    return Ok(());
                }
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    /// Notes identifying members and end markers of the object `node`.
    fn member_seen(&mut self, node: u32, key: K, value_start: usize) {
        let value = self.b.get(value_start..self.i).unwrap_or(&[]);
        let slot = match key {
            K::Index => Some(0),
            K::OutputIndex => Some(1),
            K::ContentIndex => Some(2),
            K::ItemId => Some(3),
            _ => None,
        };
        if let Some(slot) = slot
            && let Some(n) = self.doc.nodes.get_mut(node as usize)
            && let Some(s) = n.ids.get_mut(slot)
        {
            *s = Some((value_start, self.i));
        }
        let end = match key {
            K::FinishReason | K::GeneratedText => value.first() == Some(&b'"') && value.len() > 2,
            K::Done | K::Stop => value == b"true",
            K::Type => {
                if node == 0 {
                    self.doc.root_type = Some((value_start, self.i));
                }
                let v = value.strip_suffix(b"\"").unwrap_or(value);
                v.ends_with(b".done") || v.ends_with(b".completed") || v.ends_with(b"_stop")
            }
            _ => false,
        };
        if end {
            self.doc.ends.push(node);
        }
    }

    fn array(&mut self, ctx: Ctx, depth: usize, place: Option<Place>) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        let node = self.open_node(&ctx, place);
        // Elements take the array's key; their container is the array.
        let child = Ctx { node, parent: ctx.key, at_root: false, ..ctx };
        self.elements(|p, pos| p.value(child, depth + 1, Some(Place { key: (0, 0), pos, in_array: true })))
    }

    /// The elements of the array at `self.i` (its `[`), each read by `element` given its
    /// position, through the closing `]`.
    fn elements(&mut self, mut element: impl FnMut(&mut Self, u32) -> Result<(), JsonError>) -> Result<(), JsonError> {
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let mut pos: u32 = 0;
        loop {
            self.ws();
            element(self, pos)?;
            pos = pos.saturating_add(1);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    /// Validates a value without recording anything in it.
    fn skip(&mut self, depth: usize) -> Result<(), JsonError> {
        let ctx = Ctx {
            node: u32::MAX,
            key: K::Structural,
            key_span: (0, 0),
            parent: K::Other,
            at_root: false,
            in_choice: false,
            response: false,
        };
        let (nodes, sites, blanks, ends) =
            (self.doc.nodes.len(), self.doc.sites.len(), self.doc.blanks.len(), self.doc.ends.len());
        let r = self.skip_value(ctx, depth);
        self.doc.nodes.truncate(nodes);
        self.doc.sites.truncate(sites);
        self.doc.blanks.truncate(blanks);
        self.doc.ends.truncate(ends);
        r
    }

    fn skip_value(&mut self, ctx: Ctx, depth: usize) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            // Arrays (embeddings, token lists) without opening nodes for them.
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                self.elements(|p, _| p.skip_value(ctx, depth + 1))
            }
            // Objects inside skipped values are rare; the general walker validates them.
            _ => self.value(ctx, depth, None),
        }
    }

    /// A string at `self.i` (its opening quote); returns whether it holds an escape.
    fn string(&mut self) -> Result<bool, JsonError> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..).ok_or(JsonError::Syntax)?;
            let n = memchr::memchr2(b'"', b'\\', rest).ok_or(JsonError::Syntax)?;
            if rest.get(..n).is_some_and(|run| run.iter().any(|&b| b < 0x20)) {
                return Err(JsonError::Syntax);
            }
            self.i += n;
            if self.peek() == Some(b'"') {
                self.i += 1;
                return Ok(escaped);
            }
            escaped = true;
            match self.b.get(self.i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                Some(b'u') => {
                    let hex = self.b.get(self.i + 2..self.i + 6).ok_or(JsonError::Syntax)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(JsonError::Syntax);
                    }
                    self.i += 6;
                }
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let n = self.b.get(self.i..).map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count());
        self.i += n;
        n
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        Ok(())
    }
}

/// Whether a string value in `ctx` is masked, and how.
fn site_class(ctx: &Ctx) -> Option<Class> {
    let in_message = matches!(ctx.parent, K::DeltaKey | K::Message) || ctx.at_root;
    let class = match ctx.key {
        K::Structural | K::Skip | K::TokenLevel(_) | K::FinishReason | K::Type | K::ItemId => return None,
        K::Content | K::Reasoning if in_message => Class::Delta { args: false },
        K::Text if ctx.in_choice || matches!(ctx.parent, K::Token | K::DeltaKey) => Class::Delta { args: false },
        K::PartialJson if ctx.parent == K::DeltaKey => Class::Delta { args: true },
        K::Response | K::TextOutput | K::DeltaKey if ctx.at_root => Class::Delta { args: false },
        K::Arguments if matches!(ctx.parent, K::Function | K::FunctionCall) => Class::Delta { args: true },
        K::Arguments => Class::Arguments,
        _ => Class::Text,
    };
    Some(class)
}

/// Appends the decoded text of a JSON string's raw contents (between the quotes, already
/// validated). A lone surrogate escape becomes U+FFFD.
pub(super) fn decode(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(n) = raw.get(i..).and_then(|r| memchr::memchr(b'\\', r)) {
        out.extend_from_slice(raw.get(i..i + n).unwrap_or(&[]));
        i += n;
        let c = match raw.get(i + 1) {
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let hi = hex4(raw.get(i + 2..i + 6));
                i += 6;
                let lo = if raw.get(i..i + 2) == Some(b"\\u") { hex4(raw.get(i + 2..i + 6)) } else { 0 };
                let cp = if (0xd800..0xdc00).contains(&hi) && (0xdc00..0xe000).contains(&lo) {
                    i += 6;
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                let ch = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            Some(&c) => c,
            None => break,
        };
        out.push(c);
        i += 2;
    }
    out.extend_from_slice(raw.get(i..).unwrap_or(&[]));
}

fn hex4(h: Option<&[u8]>) -> u32 {
    h.map_or(0xfffd, |h| {
        h.iter().fold(0, |acc, &b| {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => 0,
            };
            (acc << 4) | u32::from(d)
        })
    })
}

/// Appends `text` encoded as the contents of a JSON string (no quotes): `"`, `\` and control
/// bytes escaped, everything else (UTF-8 included) as is.
pub(super) fn encode(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut from = 0;
    for (i, &b) in text.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(text.get(from..i).unwrap_or(&[]));
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        from = i + 1;
    }
    out.extend_from_slice(text.get(from..).unwrap_or(&[]));
}
