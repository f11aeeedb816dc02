//! End-to-end tests: the real `modelgate` binary between real HTTP clients and the testkit's mock
//! model servers, over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod approvals;
mod audit;
mod crash;
mod faults;
mod identity;
mod lifecycle;
mod masking;
mod oidc;
mod policy;
mod proxy;
mod search;
mod support;
mod tamper;
mod timeouts;
mod transport;
