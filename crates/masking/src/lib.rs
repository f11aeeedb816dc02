//! PII and secret masking for modelgate.
//!
//! For now this crate holds only the minimal detector the policy layer needs: [`detect`] says
//! which entity types a request body carries (names of `shared/pii-eval`, such as `EMAIL` or
//! `SECRET_AWS_ACCESS_KEY`), in one linear pass driven by a trigger-substring prefilter, each
//! candidate confirmed by shape checks. It never stores a value. The masking engine (more
//! detectors, JSON-aware transforms, streams, modes) grows around the `detect` module.

pub mod detect;
pub mod mask;

pub use detect::{CustomSpec, Detected, Detector, DetectorError, Entity, Found, Recognizer, detect, hold_from, scan};
pub use mask::{Count, Counts, MaskError, Masked, Masker, Mode, Outgoing, Plan, StreamMasker};
