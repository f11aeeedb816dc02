//! The audit trail: the event model, the durable group-commit writer, the hash chain, signed
//! checkpoints, the content store and verification (SPEC sections 4 and 5; DURABILITY.md).
//!
//! Producers build an [`Event`] and hand it to the process's [`Audit`] writer in one of three
//! ways that match the durability modes; the writer thread chains, stores and signs.

pub mod canonical;
pub mod checkpoint;
pub mod content;
pub mod event;
pub mod export;
pub mod index;
pub mod metrics;
pub mod search;
pub mod store;
pub mod verify;
pub mod writer;

pub use content::Recording;
pub use event::{Actor, Change, Content, Event, EventType, Family, GenAi, Outcome, Policy, Resource};
pub use writer::{Audit, CutOff, Entry, Opened, Ticket, Unavailable, WriterConfig, append_local};

pub use config::{Durability, Recording as RecordingLevel};

#[cfg(test)]
mod tests;
