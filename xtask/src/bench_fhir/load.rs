//! The load generator: one HTTP/1.1 keep-alive connection over TLS per worker (hyper 1's
//! connection API on tokio-rustls, trusting only the server's own certificate), each worker
//! sending its next request as soon as the previous answer is in (a closed loop), and a
//! tally of what came back during the measured window.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::workload::{Expect, Planned, RequestSource};

/// How long one request may take before it counts as an error (and its connection is
/// replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many distinct error descriptions a scenario keeps to show.
const ERROR_SAMPLES: usize = 5;
/// How much of an error body is shown.
const ERROR_BODY_CHARS: usize = 200;

/// Where the server is and how to reach it.
pub struct Target {
    addr: SocketAddr,
    tls: TlsConnector,
    server_name: ServerName<'static>,
}

impl Target {
    /// A target at `addr` whose certificate must be `cert_pem` (the self-signed one that
    /// `caldicott init` wrote), presented for `localhost`.
    pub fn new(addr: SocketAddr, cert_pem: &Path) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem)
            .with_context(|| format!("cannot read {}", cert_pem.display()))?
        {
            let cert = cert.with_context(|| format!("bad PEM in {}", cert_pem.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("cannot trust the certificate {}", cert_pem.display()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from("localhost")?.to_owned(),
        })
    }

    /// Opens one TLS connection and starts HTTP/1.1 on it.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake failed")?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP/1.1 handshake failed")?;
        tokio::spawn(async move {
            // Ends when the worker drops its sender or the server closes the connection;
            // the worker sees the latter as a closed sender and reconnects.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// One request on a fresh connection: for readiness checks.
    pub async fn request_once(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        let mut sender = self.connect().await?;
        exchange(&mut sender, request).await
    }
}

/// Sends a request and reads the whole answer.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    sender.ready().await.context("connection lost")?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("cannot read the response body")?
        .to_bytes();
    Ok((status, body))
}

/// When a scenario's workers start measuring and stop sending.
#[derive(Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub end: Instant,
}

/// What the workers saw during the measured window: requests sent at or after
/// `measure_from` and before `end` (each waited for, even past `end`).
#[derive(Default)]
pub struct Tally {
    /// Latency of each successful request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Failed requests by kind, e.g. `404`, `200 without "entry"`, `connection`.
    pub failures: BTreeMap<String, u64>,
    /// The first few distinct failures, described.
    pub samples: Vec<String>,
    /// When the last measured request finished.
    pub last_finish: Option<Instant>,
    /// Connections opened, warm-up included (one per worker unless the server closed some).
    pub connections: u64,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn fail(&mut self, kind: String, sample: String) {
        *self.failures.entry(kind).or_default() += 1;
        if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&sample) {
            self.samples.push(sample);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        for sample in other.samples {
            if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&sample) {
                self.samples.push(sample);
            }
        }
        self.last_finish = self.last_finish.max(other.last_finish);
        self.connections += other.connections;
    }
}

/// Runs one worker per source until `window.end` and adds up what they saw.
pub async fn run(
    target: Arc<Target>,
    sources: Vec<RequestSource>,
    window: Window,
) -> Result<Tally> {
    let workers: Vec<_> = sources
        .into_iter()
        .map(|source| tokio::spawn(worker(Arc::clone(&target), source, window)))
        .collect();
    let mut total = Tally::default();
    for w in workers {
        total.merge(w.await.context("a load worker panicked")??);
    }
    Ok(total)
}

/// One connection's closed loop: send, wait for the whole answer, check it, repeat.
async fn worker(target: Arc<Target>, mut source: RequestSource, window: Window) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let started = Instant::now();
        if started >= window.end {
            return Ok(tally);
        }
        let measured = started >= window.measure_from;
        // A connection the server closed (e.g. after `Connection: close`) is replaced
        // without counting an error; a failed connect does count.
        if connection.as_ref().is_none_or(SendRequest::is_closed) {
            match target.connect().await {
                Ok(sender) => {
                    connection = Some(sender);
                    tally.connections += 1;
                }
                Err(err) => {
                    if measured {
                        tally.fail("connection".into(), format!("connect: {err:#}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(sender) = connection.as_mut() else {
            continue;
        };
        let Planned { request, expect } = source.next()?;
        let started = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(sender, request)).await;
        let finished = Instant::now();
        let failure = match outcome {
            Ok(Ok((status, body))) => check(status, &body, expect.as_ref()),
            Ok(Err(err)) => {
                connection = None;
                Some(("transport".into(), format!("request failed: {err:#}")))
            }
            Err(_) => {
                connection = None;
                Some((
                    "timeout".into(),
                    format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                ))
            }
        };
        if measured {
            match failure {
                None => {
                    let us = finished.duration_since(started).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                Some((kind, sample)) => tally.fail(kind, sample),
            }
            tally.last_finish = Some(finished);
        }
    }
}

/// `None` when the answer is a success holding what `expect` asks for; else its kind and a
/// description.
fn check(status: StatusCode, body: &[u8], expect: Option<&Expect>) -> Option<(String, String)> {
    if !status.is_success() {
        return Some((status.as_u16().to_string(), describe(status, body)));
    }
    let expect = expect?;
    if contains(body, expect.needle.as_bytes()) {
        return None;
    }
    Some((
        format!("{} without {}", status.as_u16(), expect.what),
        format!("{} (expected {})", describe(status, body), expect.what),
    ))
}

fn describe(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown: String = text.chars().take(ERROR_BODY_CHARS).collect();
    if text.chars().count() > ERROR_BODY_CHARS {
        shown.push('…');
    }
    format!("HTTP {status}: {shown}")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits until `GET /healthz` answers 200, or fails after `limit` (or as soon as
/// `still_running` says the server has gone).
pub async fn wait_healthy(
    target: &Target,
    request: impl Fn() -> Result<Request<Full<Bytes>>>,
    limit: Duration,
    still_running: impl Fn() -> Result<()>,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        still_running()?;
        match target.request_once(request()?).await {
            Ok((status, _)) if status == StatusCode::OK => return Ok(()),
            Ok((status, body)) => last = describe(status, &body),
            Err(err) => last = format!("{err:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the server did not become healthy within {} s (last: {last})",
        limit.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_status_and_content() {
        let id = Expect {
            needle: "abc".into(),
            what: "the requested id",
        };
        assert!(check(StatusCode::OK, b"{\"id\":\"abc\"}", Some(&id)).is_none());
        assert!(check(StatusCode::CREATED, b"", None).is_none());
        let (kind, sample) = check(StatusCode::NOT_FOUND, b"{\"error\": \"not_found\"}", None)
            .expect("a 404 is a failure");
        assert_eq!(kind, "404");
        assert_eq!(sample, "HTTP 404 Not Found: {\"error\": \"not_found\"}");
        let (kind, sample) = check(StatusCode::OK, b"{}", Some(&id)).unwrap();
        assert_eq!(kind, "200 without the requested id");
        assert_eq!(sample, "HTTP 200 OK: {} (expected the requested id)");
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(500);
        let shown = describe(StatusCode::INTERNAL_SERVER_ERROR, body.as_bytes());
        assert!(shown.ends_with('…'));
        assert!(shown.len() < 300);
    }
}
