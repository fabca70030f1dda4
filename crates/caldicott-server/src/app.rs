//! The router: `/healthz`, `/metrics`, the caller's routes, and the middleware around them.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::Limited;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{HealthCheck, ServeConfig, ServerError, telemetry};

/// Time a [`HealthCheck`] gets before `/healthz` gives up on it.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

const HSTS: &str = "max-age=31536000";
const CSP: &str = "default-src 'none'; frame-ancestors 'none'";

#[derive(Clone)]
struct AppState {
    health: Arc<dyn HealthCheck>,
}

/// Builds the complete router that [`serve`](crate::serve) serves for `cfg`: `/healthz`,
/// `/metrics`, `cfg.extra_router`, the JSON 404 fallback and all middleware (security
/// headers, body limit, request timeout, panic isolation, metrics and access log).
///
/// Useful for testing routes without a socket (`tower::ServiceExt::oneshot`). Installs the
/// metrics recorder (see [`init_metrics`](crate::init_metrics)).
pub fn build_router(
    cfg: &ServeConfig,
    health: Arc<dyn HealthCheck>,
) -> Result<Router, ServerError> {
    let metrics = telemetry::handle();
    let own = Router::new()
        .route("/healthz", get(healthz))
        .with_state(AppState { health })
        .route(
            "/metrics",
            get(move || async move {
                metrics.run_upkeep();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }),
        );
    let merged = match cfg.extra_router.clone() {
        None => own,
        // axum panics on overlapping routes; report that as an error instead.
        Some(extra) => std::panic::catch_unwind(AssertUnwindSafe(|| own.merge(extra)))
            .map_err(|panic| ServerError::Router(panic_message(&*panic)))?,
    };

    let max_body = cfg.max_body_bytes;
    let mut router = merged
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(max_body, limit_body))
        .layer(CatchPanicLayer::custom(panic_response));
    if let Some(timeout) = cfg.request_timeout {
        router = router.layer(middleware::from_fn_with_state(timeout, request_timeout));
    }
    Ok(router
        .layer(middleware::from_fn(telemetry::observe))
        .layer(middleware::from_fn_with_state(
            cfg.is_tls(),
            security_headers,
        )))
}

/// A JSON error body: `{"error": code, "message": message}`.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    let health = Arc::clone(&state.health);
    let checked = tokio::time::timeout(
        HEALTH_CHECK_TIMEOUT,
        tokio::task::spawn_blocking(move || health.check()),
    )
    .await;
    let reason = match checked {
        Ok(Ok(Ok(()))) => {
            return (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response();
        }
        Ok(Ok(Err(reason))) => reason,
        Ok(Err(_)) => "health check failed unexpectedly".to_owned(),
        Err(_) => "health check timed out".to_owned(),
    };
    tracing::warn!(%reason, "health check failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "status": "unavailable", "reason": reason })),
    )
        .into_response()
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no resource at this address",
    )
}

/// Refuses a declared `Content-Length` over the limit at once, and caps bodies of unknown
/// length while they are read (axum's extractors then answer 413 too).
async fn limit_body(State(max): State<usize>, req: Request, next: Next) -> Response {
    let fhir = is_fhir(&req);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return too_large(max, fhir);
    }
    let req = req.map(|body| Body::new(Limited::new(body, max)));
    let response = next.run(req).await;
    // axum's extractors answer an over-long body of undeclared length with plain text;
    // give every 413 the same JSON shape.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json")
                || v.as_bytes().starts_with(b"application/fhir+json")
        });
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return too_large(max, fhir);
    }
    response
}

/// Whether a request is for the FHIR API, whose clients expect every error as a FHIR
/// `OperationOutcome`.
fn is_fhir(req: &Request) -> bool {
    let p = req.uri().path();
    p == "/fhir" || p.starts_with("/fhir/")
}

/// An error as a FHIR `OperationOutcome`.
fn fhir_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "diagnostics": message }]
        })
        .to_string(),
    )
        .into_response()
}

fn too_large(max: usize, fhir: bool) -> Response {
    let message = format!("request body exceeds {max} bytes");
    if fhir {
        return fhir_error(StatusCode::PAYLOAD_TOO_LARGE, "too-long", &message);
    }
    json_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &message)
}

async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let fhir = is_fhir(&req);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) if fhir => fhir_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        ),
        Err(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        ),
    }
}

/// `500` for a panicking handler. The panic message is not sent or logged here: it may quote
/// data (the panic hook still prints it to standard error).
fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal server error",
    )
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "extra_router conflicts with the server's routes".to_owned())
}

/// Adds the security headers to every response. `Content-Security-Policy`, `Cache-Control`
/// and `Referrer-Policy` are set only when the handler did not set its own (a console page
/// needs `same-origin`: with `no-referrer` browsers send `Origin: null` on the page's own
/// form posts, which the CSRF check must refuse); the others always.
async fn security_headers(State(tls): State<bool>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set_default(headers, header::REFERRER_POLICY, "no-referrer");
    set_default(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set_default(headers, header::CACHE_CONTROL, "no-store");
    response
}

fn set_default(headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str) {
    headers
        .entry(name)
        .or_insert_with(|| HeaderValue::from_static(value));
}
