//! The access log names the matched route, never the raw path or query string.
//!
//! In its own test binary: a thread-local tracing subscriber can miss events whose callsites
//! another test thread registered first (tracing caches callsite interest process-wide).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use caldicott_server::{ServeConfig, Transport, generate_self_signed, serve};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// Collects formatted log output.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// GET `path` over a fresh TLS 1.3 / HTTP/1.1 connection; returns the status.
async fn get(addr: std::net::SocketAddr, cert: &std::path::Path, path: &str) -> StatusCode {
    let mut roots = RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    sender.send_request(request).await.unwrap().status()
}

#[tokio::test]
async fn access_log_names_route_and_status_never_query_or_path() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    generate_self_signed(&cert, &key, &["localhost".into()]).unwrap();
    let cfg = ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Transport::Tls {
            cert_pem: cert.clone(),
            key_pem: key,
        },
    );
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        cfg,
        Arc::new(|| Ok(())),
        move |addr| {
            let _ = bound_tx.send(addr);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = bound_rx.await.unwrap();

    assert_eq!(
        get(addr, &cert, "/healthz?nhs_number=9434765919").await,
        StatusCode::OK
    );
    assert_eq!(
        get(addr, &cert, "/Patient/9434765919").await,
        StatusCode::NOT_FOUND
    );
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("caldicott_server::access"))
        .collect();
    assert!(
        access.iter().any(|l| l.contains("route=\"/healthz\"")
            && l.contains("status=200")
            && l.contains("method=\"GET\"")
            && l.contains("latency_ms=")),
        "access line for /healthz in:\n{text}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("status=404")),
        "access line for the 404 in:\n{text}"
    );
    assert!(
        !text.contains("9434765919"),
        "identifier leaked into logs:\n{text}"
    );
}
