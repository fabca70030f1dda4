//! Caldicott's HTTPS server.
//!
//! This crate terminates TLS and HTTP for Caldicott. It binds a socket, performs the TLS
//! handshake with rustls (aws-lc-rs provider, TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`), serves HTTP/1.1 and HTTP/2 with hyper, and wraps every route in the same
//! hardening: security headers, a request body limit, a request timeout, panic isolation,
//! request logging and Prometheus metrics. It owns two endpoints of its own:
//!
//! * `GET /healthz` — `200 {"status":"ok"}`, or `503 {"status":"unavailable","reason":…}`
//!   when the caller's [`HealthCheck`] fails;
//! * `GET /metrics` — the Prometheus text exposition of this process's metrics.
//!
//! Everything else (the FHIR API, the console, the admin API) is added by callers as an
//! [`axum::Router`] in [`ServeConfig::extra_router`]. Unknown routes answer `404` with a JSON
//! body.
//!
//! It is *not* a place for business rules, identity, policy decisions or storage: it knows
//! nothing of patients, SQL or keys other than its own TLS key. It never logs a URL's query
//! string and labels metrics with the matched route pattern only, never the raw path, so that
//! identifiers carried in URLs cannot reach logs or metrics.
//!
//! The TLS configuration uses an explicit aws-lc-rs [`rustls::crypto::CryptoProvider`], so
//! callers do not need to install a process-wide default provider for this crate.

#![forbid(unsafe_code)]

mod app;
mod cert;
mod telemetry;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use app::build_router;
pub use cert::generate_self_signed;
pub use telemetry::{HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, init_metrics};

/// Default request body limit: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default time allowed for a client to complete the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for a handler to produce a response head.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time in-flight requests get to finish once shutdown has begun.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default cap on simultaneously open client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Time allowed for a client to send a complete HTTP/1.1 request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (for example, out of file descriptors) before retrying.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Checked by `/healthz`; the vault implements it later. Returning `Err(reason)` makes
/// `/healthz` answer 503 with the reason.
///
/// `check` runs on a blocking thread (so it may do blocking I/O) and is given 5 seconds.
/// The reason is sent to the client verbatim: it must never contain a patient identifier,
/// a secret or a file's content.
///
/// Any `Fn() -> Result<(), String>` closure is a `HealthCheck`.
pub trait HealthCheck: Send + Sync + 'static {
    /// `Ok(())` when the service can do its work, `Err(reason)` when it cannot.
    fn check(&self) -> Result<(), String>;
}

impl<F> HealthCheck for F
where
    F: Fn() -> Result<(), String> + Send + Sync + 'static,
{
    fn check(&self) -> Result<(), String> {
        self()
    }
}

/// How the server speaks to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    Tls {
        /// Path of the PEM certificate chain.
        cert_pem: PathBuf,
        /// Path of the PEM private key.
        key_pem: PathBuf,
    },
    /// Unencrypted HTTP, allowed only on a loopback address (for a TLS-terminating proxy on
    /// the same host, or local tests). See [`validate`].
    PlainHttp,
}

/// Everything [`serve`] needs to know. Build it with [`ServeConfig::new`] and then adjust the
/// public fields; the struct is `#[non_exhaustive]` so that fields can be added later.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Address to bind; port 0 picks a free port (reported to `on_bound`).
    pub listen: SocketAddr,
    /// TLS or (loopback only) plain HTTP.
    pub transport: Transport,
    /// Largest accepted request body; larger bodies get `413`.
    pub max_body_bytes: usize,
    /// More routes (FHIR API, console, …), merged beside `/healthz` and `/metrics`. It must not
    /// define those two paths. A top-level fallback on it is replaced by the JSON 404; use
    /// `nest` for a fallback under a prefix.
    pub extra_router: Option<Router>,
    /// Time a client has to complete the TLS handshake; a client that takes longer is
    /// disconnected without affecting others.
    pub handshake_timeout: Duration,
    /// Time a handler has to produce a response head (`503` after that); `None` disables it.
    /// It does not bound the streaming of a response body.
    pub request_timeout: Option<Duration>,
    /// Time in-flight requests get to finish after `shutdown` resolves; connections still open
    /// after it are closed.
    pub shutdown_grace: Duration,
    /// Cap on simultaneously open client connections; further clients wait in the kernel's
    /// accept queue.
    pub max_connections: usize,
}

impl ServeConfig {
    /// A configuration with the defaults above and no extra routes.
    pub fn new(listen: SocketAddr, transport: Transport) -> Self {
        Self {
            listen,
            transport,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            extra_router: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls { .. })
    }
}

/// Why the server could not be configured, started or run, or a certificate generated.
///
/// No message ever contains key material: file problems name the path and the kind of
/// problem only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Plain HTTP was asked for on an address other than loopback.
    #[error(
        "plain HTTP is only allowed on a loopback address (127.0.0.0/8 or ::1), not {addr}; use TLS"
    )]
    PlainHttpNotLoopback {
        /// The refused listen address.
        addr: SocketAddr,
    },
    /// A configuration value is out of range.
    #[error("invalid server configuration: {0}")]
    InvalidConfig(String),
    /// A certificate or key file is missing or unreadable.
    #[error("cannot read TLS {what} file {path}: {source}")]
    ReadFile {
        /// `"certificate"` or `"private key"`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A certificate or key file is not usable PEM.
    #[error("TLS {what} file {path} is not usable: {reason}")]
    InvalidPem {
        /// `"certificate"` or `"private key"`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, without any of the file's content.
        reason: &'static str,
    },
    /// rustls refused the certificate and key (for example, they do not match).
    #[error("TLS certificate {cert} and key {key} were refused: {source}")]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// The routes could not be assembled (for example, `extra_router` redefines `/healthz`).
    #[error("cannot assemble the HTTP routes: {0}")]
    Router(String),
    /// A self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    CertificateGeneration(String),
    /// A file that [`generate_self_signed`] would write already exists.
    #[error("refusing to overwrite existing file {path}")]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Another I/O failure of the listening socket.
    #[error("server I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Validates the config: PlainHttp is refused ([`ServerError::PlainHttpNotLoopback`]) unless
/// the listen address is loopback (127.0.0.0/8 or ::1, including `::ffff:127.0.0.0/104`).
///
/// It also refuses zero limits and timeouts and, for TLS, reads and checks the certificate
/// and key files, so that a bad file is reported before anything is bound. [`serve`] calls it
/// first.
pub fn validate(cfg: &ServeConfig) -> Result<(), ServerError> {
    validate_settings(cfg)?;
    if let Transport::Tls { cert_pem, key_pem } = &cfg.transport {
        tls::server_config(cert_pem, key_pem)?;
    }
    Ok(())
}

/// The checks of [`validate`] that do no I/O.
fn validate_settings(cfg: &ServeConfig) -> Result<(), ServerError> {
    if cfg.transport == Transport::PlainHttp && !cfg.listen.ip().to_canonical().is_loopback() {
        return Err(ServerError::PlainHttpNotLoopback { addr: cfg.listen });
    }
    if cfg.max_body_bytes == 0 {
        return Err(ServerError::InvalidConfig(
            "max_body_bytes must be greater than 0".into(),
        ));
    }
    if cfg.max_connections == 0 {
        return Err(ServerError::InvalidConfig(
            "max_connections must be greater than 0".into(),
        ));
    }
    if cfg.handshake_timeout.is_zero() {
        return Err(ServerError::InvalidConfig(
            "handshake_timeout must be greater than 0".into(),
        ));
    }
    if cfg.request_timeout.is_some_and(|t| t.is_zero()) {
        return Err(ServerError::InvalidConfig(
            "request_timeout must be greater than 0 (or None)".into(),
        ));
    }
    Ok(())
}

/// Binds, then calls `on_bound(actual_addr)` (so a caller using port 0 can print the URL),
/// then serves until `shutdown` resolves; graceful shutdown.
///
/// On shutdown the listener is closed at once, connections still in their TLS handshake are
/// dropped, HTTP/1.1 connections close after their current response, HTTP/2 connections get
/// a GOAWAY, and in-flight requests get [`ServeConfig::shutdown_grace`] to finish before the
/// remaining connections are closed. It returns `Ok(())` after that.
///
/// A failed or slow TLS handshake, a protocol error or a panicking handler affects only its
/// own connection (a panicking handler gets a `500` response).
pub async fn serve(
    cfg: ServeConfig,
    health: Arc<dyn HealthCheck>,
    on_bound: impl FnOnce(SocketAddr) + Send,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // The same checks as `validate`, reading the TLS files only once.
    validate_settings(&cfg)?;
    let acceptor = match &cfg.transport {
        Transport::Tls { cert_pem, key_pem } => {
            Some(TlsAcceptor::from(tls::server_config(cert_pem, key_pem)?))
        }
        Transport::PlainHttp => None,
    };
    let app = build_router(&cfg, health)?;

    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local = listener.local_addr()?;
    on_bound(local);
    tracing::info!(addr = %local, tls = cfg.is_tls(), "caldicott server listening");

    let _upkeep = AbortOnDrop(tokio::spawn(telemetry::upkeep_loop()));
    let http = http_builder();
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(joined) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!("a connection task panicked");
                }
            }
            accepted = accept(&listener, &limit) => match accepted {
                Ok((stream, peer, permit)) => {
                    conns.spawn(handle_connection(
                        stream,
                        peer,
                        permit,
                        acceptor.clone(),
                        app.clone(),
                        http.clone(),
                        cfg.handshake_timeout,
                        stop_rx.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }

    drop(listener);
    tracing::info!(
        open_connections = conns.len(),
        "caldicott server shutting down"
    );
    // Receivers may all be gone already; that is fine.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(cfg.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open_connections = conns.len(),
            "shutdown grace period over; closing remaining connections"
        );
        conns.shutdown().await;
    }
    tracing::info!("caldicott server stopped");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: a ready-made `shutdown` for [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Aborts a background task when dropped (so `serve`'s helpers end with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Waits for a connection slot, then for a connection. Cancel-safe.
async fn accept(
    listener: &TcpListener,
    limit: &Arc<Semaphore>,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = Arc::clone(limit)
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("connection limiter closed"))?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

/// Resolves once shutdown has begun (or `serve` has gone away).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

#[allow(clippy::too_many_arguments)]
async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    http: auto::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    match acceptor {
        None => serve_connection(stream, peer, app, http, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
            let tls = tokio::select! {
                result = handshake => match result {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                () = stopping(&mut stop) => return,
            };
            serve_connection(tls, peer, app, http, stop).await;
        }
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    http: auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        tower::Service::call(&mut app.clone(), req)
    });
    let conn = http.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
