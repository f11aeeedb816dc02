//! The data path of modelgate: listener, routing, upstream pool and the streaming relay.
//!
//! Entry points: [`Gateway::build`] turns a validated [`config::Config`] into the shared state,
//! [`server::serve`] runs the listener, and [`Gateway::handle`] serves one request through the
//! pipeline described in [`pipeline`].

pub mod error;
mod excerpt;
pub mod headers;
pub mod metrics;
mod models;
pub mod pipeline;
pub mod record;
pub mod relay;
pub mod route;
pub mod server;
pub mod upload;
pub mod upstream;

pub use error::{Blame, GatewayError};
pub use metrics::Metrics;
pub use pipeline::{BuildError, Gateway, Limits, ResponseBody};
pub use server::{ServeOptions, TlsError, serve, tls_acceptor};
