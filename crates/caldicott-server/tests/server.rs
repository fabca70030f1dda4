//! End-to-end tests: a real server on 127.0.0.1:0 with a freshly generated self-signed
//! certificate, and a real rustls client (TLS 1.3 / 1.2, HTTP/1.1 and HTTP/2).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response, StatusCode, Version};
use axum::routing::{get, post};
use caldicott_server::{
    HealthCheck, ServeConfig, ServerError, Transport, generate_self_signed, serve, validate,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

const TEST_TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    cert: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TEST_TIMEOUT, &mut self.task)
            .await
            .expect("serve returned within the timeout")
            .expect("serve task did not panic")
    }
}

fn healthy() -> Arc<dyn HealthCheck> {
    Arc::new(|| Ok(()))
}

fn new_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    generate_self_signed(&cert, &key, &["localhost".into(), "127.0.0.1".into()])
        .expect("certificate generated");
    (cert, key)
}

async fn start_with(health: Arc<dyn HealthCheck>, adjust: impl FnOnce(&mut ServeConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = new_cert(dir.path());
    let mut cfg = ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Transport::Tls {
            cert_pem: cert.clone(),
            key_pem: key,
        },
    );
    adjust(&mut cfg);
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        cfg,
        health,
        move |addr| {
            let _ = bound_tx.send(addr);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = tokio::time::timeout(TEST_TIMEOUT, bound_rx)
        .await
        .expect("bound in time")
        .expect("server bound");
    Server {
        addr,
        cert,
        stop: Some(stop_tx),
        task,
        _dir: dir,
    }
}

async fn start(health: Arc<dyn HealthCheck>) -> Server {
    start_with(health, |_| {}).await
}

/// What the client saw of the TLS session.
#[derive(Debug)]
struct Seen {
    tls_version: Option<ProtocolVersion>,
    alpn: Option<Vec<u8>>,
}

fn client_config(
    cert: &Path,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(cert).unwrap();
    for der in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Sends one request over a fresh TLS connection; HTTP/2 if the server chose `h2`.
async fn send_tls(
    server: &Server,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
    req: Request<Body>,
) -> (Response<Bytes>, Seen) {
    let config = client_config(&server.cert, versions, alpn);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake succeeds");
    let (_, session) = tls.get_ref();
    let seen = Seen {
        tls_version: session.protocol_version(),
        alpn: session.alpn_protocol().map(<[u8]>::to_vec),
    };
    let response = if seen.alpn.as_deref() == Some(b"h2") {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
        .await
        .unwrap();
    (Response::from_parts(parts, bytes), seen)
}

/// TLS 1.3, HTTP/1.1.
async fn send(server: &Server, req: Request<Body>) -> Response<Bytes> {
    let (response, seen) = send_tls(server, &[&rustls::version::TLS13], &[b"http/1.1"], req).await;
    assert_eq!(seen.tls_version, Some(ProtocolVersion::TLSv1_3));
    response
}

async fn get_path(server: &Server, path: &str) -> Response<Bytes> {
    send(server, request(Method::GET, path, Body::empty())).await
}

fn request(method: Method, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(body)
        .unwrap()
}

fn json(response: &Response<Bytes>) -> serde_json::Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "JSON content type"
    );
    serde_json::from_slice(response.body()).expect("JSON body")
}

fn assert_security_headers(response: &Response<Bytes>, tls: bool) {
    let h = response.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    if tls {
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "HSTS on TLS"
        );
    } else {
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS on plain HTTP"
        );
    }
}

#[tokio::test]
async fn healthz_ok_over_tls13_http1() {
    let server = start(healthy()).await;
    let (response, seen) = send_tls(
        &server,
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
        request(Method::GET, "/healthz", Body::empty()),
    )
    .await;
    assert_eq!(seen.tls_version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(&response), serde_json::json!({ "status": "ok" }));
    assert_security_headers(&response, true);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn healthz_ok_over_http2() {
    let server = start(healthy()).await;
    let (response, seen) = send_tls(
        &server,
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
        request(Method::GET, "https://localhost/healthz", Body::empty()),
    )
    .await;
    assert_eq!(seen.tls_version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(&response), serde_json::json!({ "status": "ok" }));
    assert_security_headers(&response, true);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tls12_is_accepted() {
    let server = start(healthy()).await;
    let (response, seen) = send_tls(
        &server,
        &[&rustls::version::TLS12],
        &[b"http/1.1"],
        request(Method::GET, "/healthz", Body::empty()),
    )
    .await;
    assert_eq!(seen.tls_version, Some(ProtocolVersion::TLSv1_2));
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn healthz_503_when_check_fails() {
    let failing: Arc<dyn HealthCheck> = Arc::new(|| Err("vault unreachable".to_owned()));
    let server = start(failing).await;
    let response = get_path(&server, "/healthz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(&response),
        serde_json::json!({ "status": "unavailable", "reason": "vault unreachable" })
    );
    assert_security_headers(&response, true);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_never_raw_path() {
    let server = start(healthy()).await;
    let ok = get_path(&server, "/healthz?nhs_number=9434765919").await;
    assert_eq!(ok.status(), StatusCode::OK);
    let missing = get_path(&server, "/Patient/9434765919").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let response = get_path(&server, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = std::str::from_utf8(response.body()).unwrap();
    let counter = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(r#"route="/healthz""#)
                && l.contains(r#"method="GET""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("request counter for /healthz in:\n{text}"));
    let count: f64 = counter.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{counter}");
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="unmatched""#)
            && l.contains(r#"status="404""#)),
        "unmatched 404 counted:\n{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "latency histogram:\n{text}"
    );
    assert!(
        !text.contains("9434765919"),
        "no raw path or query string in metrics"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_route_is_json_404_with_headers() {
    let server = start(healthy()).await;
    let response = get_path(&server, "/no/such/thing").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = json(&response);
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].is_string());
    assert_security_headers(&response, true);

    // A known path with the wrong method: 405, with the security headers too.
    let response = send(&server, request(Method::DELETE, "/healthz", Body::empty())).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_security_headers(&response, true);
    server.stop().await.unwrap();
}

fn echo_router() -> Router {
    Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                "done"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler panic (expected by the test)");
                }
                "unreachable"
            }),
        )
        .route(
            "/own-csp",
            get(|| async { ([("content-security-policy", "default-src 'self'")], "page") }),
        )
}

#[tokio::test]
async fn body_limit_gives_413() {
    let server = start_with(healthy(), |cfg| {
        cfg.max_body_bytes = 1024;
        cfg.extra_router = Some(echo_router());
    })
    .await;
    let small = send(
        &server,
        request(Method::POST, "/echo", Body::from(vec![b'a'; 1000])),
    )
    .await;
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(small.body().len(), 1000);

    let large = send(
        &server,
        request(Method::POST, "/echo", Body::from(vec![b'a'; 2048])),
    )
    .await;
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(&large)["error"], "payload_too_large");
    assert_security_headers(&large, true);

    // Also over HTTP/2.
    let (large, seen) = send_tls(
        &server,
        &[&rustls::version::TLS13],
        &[b"h2"],
        request(
            Method::POST,
            "https://localhost/echo",
            Body::from(vec![b'a'; 4096]),
        ),
    )
    .await;
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn body_limit_applies_to_chunked_bodies_too() {
    let server = start_with(healthy(), |cfg| {
        cfg.max_body_bytes = 1024;
        cfg.extra_router = Some(echo_router());
    })
    .await;
    let config = client_config(&server.cert, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // No Content-Length: 3 chunks of 512 bytes, 1536 in all.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                    Connection: close\r\n\r\n"
        .to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'a'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    tls.write_all(&raw).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(TEST_TIMEOUT, tls.read_to_end(&mut response))
        .await
        .expect("response in time");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn extra_router_is_merged_and_may_set_its_own_csp() {
    let server = start_with(healthy(), |cfg| cfg.extra_router = Some(echo_router())).await;
    let response = get_path(&server, "/own-csp").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'self'"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn panicking_handler_gives_500_and_server_lives_on() {
    let server = start_with(healthy(), |cfg| cfg.extra_router = Some(echo_router())).await;
    let response = get_path(&server, "/panic").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json(&response)["error"], "internal_error");
    assert_security_headers(&response, true);
    assert_eq!(get_path(&server, "/healthz").await.status(), StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn request_timeout_gives_503() {
    let server = start_with(healthy(), |cfg| {
        cfg.extra_router = Some(echo_router());
        cfg.request_timeout = Some(Duration::from_millis(100));
    })
    .await;
    let response = get_path(&server, "/slow").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&response)["error"], "timeout");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn extra_router_redefining_healthz_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = new_cert(dir.path());
    let mut cfg = ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Transport::Tls {
            cert_pem: cert,
            key_pem: key,
        },
    );
    cfg.extra_router = Some(Router::new().route("/healthz", get(|| async { "mine" })));
    let result = serve(cfg, healthy(), |_| panic!("must not bind"), async {}).await;
    assert!(matches!(result, Err(ServerError::Router(_))), "{result:?}");
}

#[tokio::test]
async fn failed_handshakes_do_not_affect_other_clients() {
    let server = start_with(healthy(), |cfg| {
        cfg.handshake_timeout = Duration::from_millis(500);
    })
    .await;

    // A client that never speaks, one that speaks garbage, and one that speaks plain HTTP.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\xff\xffnot a client hello at all")
        .await
        .unwrap();
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();

    // Meanwhile a proper client is served, over both protocols.
    assert_eq!(get_path(&server, "/healthz").await.status(), StatusCode::OK);
    let (h2, _) = send_tls(
        &server,
        &[&rustls::version::TLS13],
        &[b"h2"],
        request(Method::GET, "https://localhost/healthz", Body::empty()),
    )
    .await;
    assert_eq!(h2.status(), StatusCode::OK);

    // The bad ones are disconnected: garbage at once (after a TLS alert at most), silence
    // after the handshake timeout. Plain HTTP never gets an HTTP response.
    for (name, stream) in [
        ("garbage", &mut garbage),
        ("silent", &mut silent),
        ("plain", &mut plain),
    ] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name} client disconnected by the server"));
        if let Ok(n) = read {
            assert!(
                !buf.starts_with(b"HTTP/"),
                "{name}: no plaintext HTTP response ({n} bytes)"
            );
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let server = start_with(healthy(), |cfg| cfg.extra_router = Some(echo_router())).await;
    let in_flight = {
        let config = client_config(&server.cert, &[&rustls::version::TLS13], &[b"http/1.1"]);
        let addr = server.addr;
        tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let tls = TlsConnector::from(config)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let response = sender
                .send_request(request(Method::GET, "/slow", Body::empty()))
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
                .await
                .unwrap();
            (status, body)
        })
    };
    // Let the slow request reach its handler, then shut down.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = server.addr;
    server.stop().await.expect("graceful shutdown returns Ok");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"done");
    // The listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_grace_bounds_the_wait() {
    let server = start_with(healthy(), |cfg| {
        cfg.shutdown_grace = Duration::from_millis(100);
    })
    .await;
    // An idle TLS client that never sends a request still does not hold up shutdown.
    let config = client_config(&server.cert, &[&rustls::version::TLS13], &[b"h2"]);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let _tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    server.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn two_servers_in_one_process() {
    let a = start(healthy()).await;
    let b = start(healthy()).await;
    assert_ne!(a.addr, b.addr);
    assert_eq!(get_path(&a, "/healthz").await.status(), StatusCode::OK);
    assert_eq!(get_path(&b, "/metrics").await.status(), StatusCode::OK);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn plain_http_on_loopback_serves_without_hsts() {
    let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), Transport::PlainHttp);
    cfg.max_body_bytes = 4096;
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        cfg,
        healthy(),
        move |addr| {
            let _ = bound_tx.send(addr);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = bound_rx.await.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(request(Method::GET, "/healthz", Body::empty()))
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(Body::new(body), usize::MAX)
        .await
        .unwrap();
    let response = Response::from_parts(parts, body);
    assert_eq!(response.status(), StatusCode::OK);
    assert_security_headers(&response, false);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(TEST_TIMEOUT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn plain(addr: &str) -> ServeConfig {
    ServeConfig::new(addr.parse().unwrap(), Transport::PlainHttp)
}

#[test]
fn validate_refuses_plain_http_off_loopback() {
    for addr in [
        "0.0.0.0:8080",
        "[::]:8080",
        "192.168.1.10:8080",
        "10.0.0.1:80",
        "[2001:db8::1]:443",
    ] {
        let err = validate(&plain(addr)).unwrap_err();
        assert!(
            matches!(err, ServerError::PlainHttpNotLoopback { .. }),
            "{addr}: {err}"
        );
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}

#[test]
fn validate_accepts_plain_http_on_loopback() {
    for addr in [
        "127.0.0.1:8080",
        "127.1.2.3:0",
        "[::1]:8080",
        "[::ffff:127.0.0.1]:8080",
    ] {
        validate(&plain(addr)).unwrap_or_else(|e| panic!("{addr}: {e}"));
    }
}

#[test]
fn validate_refuses_zero_limits() {
    let mut cfg = plain("127.0.0.1:0");
    cfg.max_body_bytes = 0;
    assert!(matches!(validate(&cfg), Err(ServerError::InvalidConfig(_))));
}

#[test]
fn validate_accepts_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = new_cert(dir.path());
    let cfg = ServeConfig::new(
        "0.0.0.0:8443".parse().unwrap(),
        Transport::Tls {
            cert_pem: cert,
            key_pem: key,
        },
    );
    validate(&cfg).unwrap();
}

fn tls_config(cert: &Path, key: &Path) -> ServeConfig {
    ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Transport::Tls {
            cert_pem: cert.to_path_buf(),
            key_pem: key.to_path_buf(),
        },
    )
}

#[test]
fn malformed_or_missing_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = new_cert(dir.path());

    // Malformed certificate.
    let bad_cert = dir.path().join("bad-cert.pem");
    std::fs::write(&bad_cert, "this is not a certificate\n").unwrap();
    let err = validate(&tls_config(&bad_cert, &key)).unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::InvalidPem {
                what: "certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad-cert.pem"), "{err}");

    // Truncated certificate.
    let truncated = dir.path().join("truncated.pem");
    let text = std::fs::read_to_string(&cert).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let err = validate(&tls_config(&truncated, &key)).unwrap_err();
    assert!(matches!(err, ServerError::InvalidPem { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated.pem"), "{err}");

    // Missing key.
    let missing = dir.path().join("missing-key.pem");
    let err = validate(&tls_config(&cert, &missing)).unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::ReadFile {
                what: "private key",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing-key.pem"), "{err}");

    // A key whose body is not base64: the message must not quote it.
    let bad_key = dir.path().join("bad-key.pem");
    std::fs::write(
        &bad_key,
        "-----BEGIN PRIVATE KEY-----\nSECRET!MATERIAL@@@\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = validate(&tls_config(&cert, &bad_key)).unwrap_err();
    let message = format!("{err} {err:?}");
    assert!(message.contains("bad-key.pem"), "{message}");
    assert!(!message.contains("SECRET"), "{message}");
    assert!(!message.contains("MATERIAL"), "{message}");

    // A real key quoted in a malformed BEGIN line must not be echoed either.
    let real_key = std::fs::read_to_string(&key).unwrap();
    let secret_line = real_key.lines().nth(1).unwrap().to_owned();
    let mangled = dir.path().join("mangled-key.pem");
    std::fs::write(&mangled, format!("-----BEGIN {secret_line}\n")).unwrap();
    let err = validate(&tls_config(&cert, &mangled)).unwrap_err();
    let message = format!("{err} {err:?}");
    assert!(!message.contains(&secret_line[..20]), "{message}");

    // Certificate in the key slot.
    let err = validate(&tls_config(&cert, &cert)).unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::InvalidPem {
                what: "private key",
                ..
            }
        ),
        "{err:?}"
    );

    // A key that does not belong to the certificate.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = new_cert(other.path());
    let err = validate(&tls_config(&cert, &other_key)).unwrap_err();
    assert!(matches!(err, ServerError::Tls { .. }), "{err:?}");
}

#[test]
fn generated_key_is_private_and_files_are_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = new_cert(dir.path());
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key mode {mode:o}");
    }
    let err = generate_self_signed(&cert, &key, &["localhost".into()]).unwrap_err();
    assert!(matches!(err, ServerError::FileExists { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);

    let err = generate_self_signed(&dir.path().join("c2.pem"), &dir.path().join("k2.pem"), &[])
        .unwrap_err();
    assert!(
        matches!(err, ServerError::CertificateGeneration(_)),
        "{err:?}"
    );
    assert!(!dir.path().join("k2.pem").exists());
}

#[test]
fn serve_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cfg = plain("127.0.0.1:0");
    let fut = serve(cfg, healthy(), |_| {}, async {});
    assert_send(&fut);
}
