//! The process-wide Prometheus recorder and the per-request metrics and access log.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter of HTTP requests served, labelled `method`, `route` and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Histogram of request latency in seconds (until the response head), labelled `method`,
/// `route` and `status`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// The `route` label of requests that matched no route.
const UNMATCHED_ROUTE: &str = "unmatched";
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs Caldicott's Prometheus recorder as the global `metrics` recorder, once per
/// process; later calls (and later servers) reuse it, so calling it again never fails.
///
/// [`serve`](crate::serve) calls it; call it earlier yourself if other code records metrics
/// before the server starts, since values recorded before a recorder exists are lost. If some
/// other global recorder was installed first, a warning is logged and `/metrics` shows only
/// what reaches this recorder (nothing).
pub fn init_metrics() {
    handle();
}

pub(crate) fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_owned()),
            LATENCY_BUCKETS,
        ) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set latency buckets; exporting a summary");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => {
                metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests served.");
                metrics::describe_histogram!(
                    HTTP_REQUEST_DURATION_SECONDS,
                    metrics::Unit::Seconds,
                    "Time from receiving an HTTP request to sending its response head."
                );
            }
            Err(_) => tracing::warn!(
                "another global metrics recorder is already installed; /metrics will not show \
                 this process's metrics"
            ),
        }
        handle
    })
}

/// Drains histogram samples periodically so memory stays bounded between scrapes.
pub(crate) async fn upkeep_loop() {
    let handle = handle();
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// Records the metrics and the access-log line of one request. Runs after routing, so the
/// route is the matched pattern (`/fhir/Patient/{id}`), never the raw path; the query string
/// is never looked at.
pub(crate) async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let version = req.version();
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.clone()),
        ("status", status.as_str().to_owned()),
    ];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(
            target: "caldicott_server::access",
            method, route, status = status.as_u16(), latency_ms, ?version,
            "request"
        );
    } else {
        tracing::info!(
            target: "caldicott_server::access",
            method, route, status = status.as_u16(), latency_ms, ?version,
            "request"
        );
    }
    response
}

/// The standard methods by name, anything else as `OTHER` (bounded label cardinality).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}
