//! HTTP: the axum router, its layers, and the handlers (one module per area of the spec).

pub mod admin;
pub mod client;
pub mod error;
pub mod federation;
pub mod health;
pub mod json_limits;
mod limits;
pub mod metrics;
pub mod route_table;
pub mod ruma;

use std::{sync::Arc, time::Duration};

use axum::{Router, response::IntoResponse};
use http::{HeaderName, Method, header};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use self::error::ApiError;
use crate::service::Services;

/// The whole HTTP application.
pub fn app(services: Arc<Services>) -> Router {
    let timeout = Duration::from_secs(services.config.limits.request_timeout_secs);
    let metrics = Arc::new(metrics::Metrics::default());
    client::routes()
        .merge(admin::routes())
        .merge(federation::routes())
        .merge(health::routes())
        .merge(metrics::routes(metrics.clone()))
        .fallback(|| async { ApiError::Unrecognized })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(services)
        .layer(TimeoutLayer::with_status_code(http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(cors())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        // The span names the path only: a query string may carry an `access_token`.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &http::Request<axum::body::Body>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
}

/// Browsers' clients (Element Web) need CORS on every response, errors included, and answered
/// preflights.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-requested-with"),
        ])
        .max_age(Duration::from_secs(86_400))
}
