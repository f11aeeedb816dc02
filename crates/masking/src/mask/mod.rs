//! Masking transforms: what the model, the caller and the audit recording see of the values the
//! detector finds.
//!
//! A [`Masker`] serves one exchange. It masks the request body ([`Masker::request`]), a whole
//! response ([`Masker::response`]) or a streamed one ([`Masker::stream`]), and counts per
//! direction what it found and masked ([`Masker::counts`], names and numbers only).
//!
//! # Modes
//! - Redact ([`Mode::Redact`]) writes `[EMAIL]`.
//! - Pseudonymize ([`Mode::Pseudonymize`]) writes `<EMAIL_7f3a1c>`, the first 6 hex digits of
//!   HMAC-SHA256(key, type ‖ 0x00 ‖ value): the same value gives the same token under one key.
//! - Tokenize ([`Mode::Tokenize`]) writes `<EMAIL_1>`, numbered per type and exchange, the same value giving the
//!   same placeholder. The model sees placeholders; the caller gets them restored (streams too);
//!   the recording keeps them. Only values the caller sent are restored: a value that first
//!   appears in the response gets a placeholder that is never restored when the response
//!   direction is masked. The mapping lives in the `Masker` and dies with it.
//!
//! # Directions
//! The recording is masked whenever the plan is active (any of `request`, `response`,
//! `recording`). `request` masks what is forwarded; `response` masks what the caller gets.
//! Types not matched by `plan.entities` (names or globs such as `SECRET_*`) are counted as found
//! and left as they are.
//!
//! # The JSON rule
//! A body whose first non-whitespace byte is `{` or `[` must be valid JSON (else
//! [`MaskError::NotJson`]: the gateway refuses it); any other body is masked as raw text. In
//! JSON, the decoded text of string values is masked and re-encoded; everything else (numbers,
//! literals, keys, layout, untouched strings) passes through byte for byte, and a body with
//! nothing to mask comes out identical. Which strings:
//! 1. Under a *structural* key the string is kept: `model`, `id`, `object`, `role`, `type`,
//!    `name`, `status`, `created`, `created_at`, `system_fingerprint`, `service_tier`,
//!    `finish_reason`, `stop_reason`, `done_reason`, `encoding_format`, `format`, `datatype`,
//!    `model_name`, `model_version`, `tool_choice`, and every key ending in `_id`.
//! 2. Under an *opaque* key the whole value is skipped (binary or vectors, where a match could
//!    only be spurious): `embedding`, `embeddings`, `image_url`, `images`, `image`,
//!    `input_audio`, `audio`, `b64_json`, `file_data`.
//! 3. In a masked response, *token-level* data is dropped, since it spells the answer token by
//!    token where no value can be seen whole: `logprobs` becomes `null`; `tokens`, `prefill`,
//!    `top_tokens` (TGI) and `context` (Ollama token ids) become `[]`.
//! 4. Tool-call arguments (`arguments` as a JSON document in a string, or as an object; Anthropic
//!    `tool_use.input`) are data whatever their keys: they are masked as text over their JSON, so a
//!    value is also found by its key (`"password": "…"`). When they are a JSON document, a
//!    replacement outside its strings becomes a string (`4111…` → `"[CREDIT_CARD]"`) and restored
//!    values are escaped, so they stay JSON. Streamed arguments are one text channel masked the
//!    same way, so they come out as whole ones do.
//! 5. Every other string is masked as text, whatever its key: message `content` (string or
//!    parts), `prompt`, `input`/`inputs`, `system`, `suffix`, `text_input`/`text_output`, Ollama
//!    `message.content`/`response`, TGI `generated_text`, KServe `data`, and keys no flavor
//!    defines yet, so an unknown shape fails towards masking.
//!
//! Keys are compared after decoding their escapes. Documents nest at most 128 levels
//! ([`MaskError::TooDeep`]).
//!
//! # Streams
//! See [`StreamMasker`]: frames stay valid, the streamed text fields are masked over their
//! concatenation with a hold-back, and the output depends only on the upstream's frames, not
//! on how its bytes were split.

mod body;
mod engine;
mod json;
mod stream;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::detect::Detector;
use body::Scratch;
use engine::{Dir, Engine, Side};

pub use stream::{MAX_BUFFERED_BODY, MAX_FRAME, StreamMasker};

/// How values are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A typed label: `[EMAIL]`.
    Redact,
    /// A keyed, stable token: `<EMAIL_7f3a1c>`.
    Pseudonymize,
    /// A reversible placeholder, restored for the caller: `<EMAIL_1>`.
    Tokenize,
}

/// What a masking profile asks of one exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Entity type names or globs (`"EMAIL"`, `"SECRET_*"`, `"*"`).
    pub entities: Vec<String>,
    /// How values are replaced.
    pub mode: Mode,
    /// Mask what is forwarded to the model.
    pub request: bool,
    /// Mask what the caller receives.
    pub response: bool,
    /// Mask the recording (it is also masked whenever `request` or `response` is).
    pub recording: bool,
}

impl Plan {
    /// Whether masking applies at all (some direction is masked).
    pub fn is_active(&self) -> bool {
        self.request || self.response || self.recording
    }
}

/// The two forms of a response body or stream chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masked {
    /// What the caller gets: masked when the response direction is, tokenize placeholders
    /// restored.
    pub caller: Bytes,
    /// What the audit recording stores: always the masked form.
    pub record: Bytes,
}

/// The two forms of a request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// What is forwarded to the model: masked when the request direction is.
    pub upstream: Bytes,
    /// What the audit recording stores: always the masked form.
    pub record: Bytes,
}

/// Found and masked occurrences of one entity type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Occurrences detected.
    pub found: u64,
    /// Occurrences replaced in the masked form (those of types the plan names).
    pub masked: u64,
}

/// Counts per direction and entity type name. Never values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Found in the request.
    pub request: BTreeMap<String, Count>,
    /// Found in the response.
    pub response: BTreeMap<String, Count>,
}

impl Counts {
    /// Whether nothing was found either way.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// Why a body could not be masked. The gateway must then refuse (fail closed): nothing is ever
/// returned unmasked in its place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaskError {
    /// A body that starts as JSON does not parse.
    #[error("the {0} body is not valid JSON")]
    NotJson(&'static str),
    /// A JSON body nests too deeply.
    #[error("the {0} body nests deeper than 128 levels")]
    TooDeep(&'static str),
    /// A streamed event (SSE data or NDJSON line) is not valid JSON where JSON is expected.
    #[error("a streamed event is not valid JSON")]
    BadFrame,
    /// A streamed frame grew past [`MAX_FRAME`] bytes.
    #[error("a streamed frame exceeds {0} bytes")]
    FrameTooLarge(usize),
    /// An unframed JSON response grew past [`MAX_BUFFERED_BODY`] bytes.
    #[error("the response body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The stream masker was used after it finished or failed.
    #[error("the stream masker has already finished")]
    Finished,
    /// An internal inconsistency: masking cannot vouch for its output.
    #[error("masking failed: {0}")]
    Inconsistent(&'static str),
}

/// The masking state of one exchange: the plan, the tokenize mapping and the counts.
pub struct Masker {
    plan: Plan,
    engine: Engine,
    scratch: Scratch,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("plan", &self.plan).finish_non_exhaustive()
    }
}

impl Masker {
    /// A masker for one exchange, with the built-in detectors. `pseudonym_key` keys
    /// [`Mode::Pseudonymize`].
    pub fn new(plan: Plan, pseudonym_key: Arc<[u8; 32]>) -> Masker {
        Masker::with_detector(plan, pseudonym_key, Detector::builtin())
    }

    /// A masker for one exchange with this detector (built-in plus custom types).
    pub fn with_detector(plan: Plan, pseudonym_key: Arc<[u8; 32]>, detector: Detector) -> Masker {
        let engine = Engine::new(&plan, pseudonym_key, detector);
        Masker { plan, engine, scratch: Scratch::default() }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Masks a request body before it is forwarded: JSON-aware for JSON bodies, raw text
    /// otherwise. Returns what is forwarded (see [`Masker::request_parts`] for the recording's).
    pub fn request(&mut self, body: &[u8]) -> Result<Bytes, MaskError> {
        self.request_parts(body).map(|o| o.upstream)
    }

    /// Masks a request body: what is forwarded and what is recorded.
    pub fn request_parts(&mut self, body: &[u8]) -> Result<Outgoing, MaskError> {
        if !self.plan.is_active() {
            let b = Bytes::copy_from_slice(body);
            return Ok(Outgoing { upstream: b.clone(), record: b });
        }
        let side = if self.plan.request { Side::Same } else { Side::Raw };
        let out = body::mask(&mut self.engine, Dir::Request, side, body, &mut self.scratch)?;
        Ok(Outgoing { upstream: out.a, record: out.b })
    }

    /// Masks a non-streamed response: `caller` is what the caller gets (masked when the
    /// response direction is, tokenize placeholders restored), `record` what is recorded.
    pub fn response(&mut self, body: &[u8]) -> Result<Masked, MaskError> {
        if !self.plan.is_active() {
            let b = Bytes::copy_from_slice(body);
            return Ok(Masked { caller: b.clone(), record: b });
        }
        let side = self.response_side();
        let out = body::mask(&mut self.engine, Dir::Response, side, body, &mut self.scratch)?;
        Ok(Masked { caller: out.a, record: out.b })
    }

    /// An incremental masker for a streamed response in `framing` (SSE or NDJSON; unframed
    /// bodies are masked as raw text, or, when they start with `{` or `[`, buffered and masked
    /// as one JSON body at the end). Takes the masker, which the stream masker owns so the
    /// relay can hold it across polls; [`StreamMasker::into_masker`] gives it back.
    pub fn stream(self, framing: protocols::Framing) -> StreamMasker {
        StreamMasker::new(self, framing)
    }

    /// Per direction: entity type -> found and masked counts. Never values.
    pub fn counts(&self) -> Counts {
        self.engine.counts()
    }

    fn response_side(&self) -> Side {
        match (self.plan.mode, self.plan.response) {
            (Mode::Tokenize, mask) => Side::Restore { mask },
            (_, true) => Side::Same,
            (_, false) => Side::Raw,
        }
    }
}
