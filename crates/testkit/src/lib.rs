//! Test support for modelgate: mock model servers for every upstream flavor, HTTP client helpers
//! (HTTP/1.1 and h2c) with timed body reading, and a runner for the real `modelgate` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod client;
pub mod gateway;
pub mod idp;
pub mod mock;
mod serve;
pub mod webhook;

pub use gateway::{GatewayProcess, TempDir, temp_dir};
pub use idp::{Alg, TestIdp};
pub use mock::{MockOptions, MockServer, SeenRequest};
pub use protocols::Flavor;

use std::time::{Duration, Instant};

/// Polls `cond` (about every 10 ms) until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        gateway::poll_pause();
    }
}

/// Async [`wait_for`]: polls `cond` (about every 10 ms) until it holds; panics after `timeout`.
pub async fn wait_for_async(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
