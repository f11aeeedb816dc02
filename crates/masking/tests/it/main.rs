//! Integration tests of the masking crate, through its public API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod corpus;
mod hold;
