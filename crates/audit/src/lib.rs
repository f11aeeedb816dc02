//! The audit trail: the event model, the durable group-commit writer, the hash chain, signed
//! checkpoints, the content store and verification (SPEC sections 4 and 5; DURABILITY.md).
//!
//! Producers build an [`Event`] and hand it to the process's [`Audit`] writer in one of three
//! ways that match the durability modes; the writer thread chains, stores and signs.

pub mod canonical;
pub mod checkpoint;
pub mod content;
pub mod event;
pub mod metrics;
pub mod store;
pub mod writer;

pub use content::Recording;
pub use event::{Actor, Change, Content, Event, EventType, Family, GenAi, Outcome, Policy, Resource};
pub use writer::{Audit, CutOff, Entry, Opened, Ticket, Unavailable, WriterConfig, append_local};

/// When a record must be durable relative to the exchange (SPEC section 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Request record durable before forwarding; completion durable before the final byte.
    #[default]
    Strict,
    /// Request record durable before the first response byte; completion by group commit.
    Balanced,
    /// Best effort, bounded queue, drops counted in `audit.gap`.
    Async,
}

impl Durability {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Balanced => "balanced",
            Durability::Async => "async",
        }
    }
}

#[cfg(test)]
mod tests;
