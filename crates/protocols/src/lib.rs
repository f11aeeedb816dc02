//! Model-server wire protocols for modelgate: the endpoint table (method + path -> action,
//! model location, streaming, framing, usage shape), request classification with a cheap JSON
//! peek, the stream-usage request rewrite, and response observation (token usage from JSON,
//! SSE and NDJSON bodies as they are relayed), and the [`glob`] matcher of model and entity names.
//!
//! Plain data and functions; no allocation or parsing beyond what each request needs.

mod action;
mod classify;
mod end;
mod endpoint;
mod flavor;
pub mod glob;
mod peek;
mod usage;

#[cfg(test)]
mod tests;

pub use action::{Action, Family};
pub use classify::{Classification, classify};
pub use end::ends_answer;
pub use endpoint::{BodyUse, Endpoint, Framing, ModelAt, StreamRule, UsageShape, accepts_stream_options, lookup};
pub use flavor::{Flavor, FlavorSet};
pub use peek::{Peek, PeekError, ensure_stream_usage, peek_json};
pub use usage::{ResponseObserver, Usage};
