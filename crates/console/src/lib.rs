//! The admin listener: `/healthz`, `/readyz` and `/metrics` now; the admin API and web console
//! later. It never shares a socket with the data path.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use gateway::Metrics;
use tokio::net::TcpListener;

/// What the admin listener reports on.
#[derive(Debug)]
pub struct AdminState {
    /// The data path's metrics.
    pub metrics: Arc<Metrics>,
    /// Set once the data listener serves, cleared when shutdown begins.
    pub ready: AtomicBool,
}

impl AdminState {
    /// New state, not ready yet.
    pub fn new(metrics: Arc<Metrics>) -> Arc<AdminState> {
        Arc::new(AdminState { metrics, ready: AtomicBool::new(false) })
    }
}

/// The admin routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the admin listener until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: impl Future<Output = ()> + Send + 'static) {
    if let Err(e) = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await {
        tracing::error!("admin listener failed: {e}");
    }
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"ready"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"not_ready"}"#)
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"message":"no such admin endpoint","type":"invalid_request_error","code":"not_found"}}"#,
    )
}
