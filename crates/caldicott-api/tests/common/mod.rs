//! A real server on a loopback port over a real vault (SQLite in a temporary directory,
//! or a throwaway PostgreSQL schema), and a small HTTP/1.1 client to talk to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use caldicott_access::Directory;
use caldicott_api::{ApiConfig, Exports, FhirApi, Store};
use caldicott_core::OdsCode;
use caldicott_policy::{Purpose, Role};
use caldicott_server::{HealthCheck, ServeConfig, Transport};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{Backend, LocalKek, PostgresBackend, SqliteBackend, Vault};
use serde_json::Value;

pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

impl Db {
    pub fn sqlite() -> Self {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A PostgreSQL schema, or `None` (with a visible skip message) when no test server
    /// is configured.
    pub fn postgres() -> Option<Self> {
        PgSchema::create().map(Db::Postgres)
    }

    fn backend(&self) -> Box<dyn Backend> {
        match self {
            Db::Sqlite(d) => {
                Box::new(SqliteBackend::open(&d.path().join("vault.db"), true).unwrap())
            }
            Db::Postgres(s) => Box::new(PostgresBackend::connect(&s.url).unwrap()),
        }
    }
}

struct Healthy;
impl HealthCheck for Healthy {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A running server. Dropping it stops the server.
pub struct Server {
    pub addr: SocketAddr,
    pub vault: Arc<Vault>,
    pub directory: Arc<Directory>,
    /// The audit ledger every access decision goes to.
    pub ledger: Arc<caldicott_vault::Ledger>,
    /// The token requests carry unless told otherwise: a GP at A81001, direct care.
    pub token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _db: Db,
    _exports: tempfile::TempDir,
}

impl Server {
    pub fn start(db: Db) -> Server {
        let backend = db.backend();
        backend.migrate().unwrap();
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let vault = Arc::new(Vault::open(backend, kek).unwrap());
        let exports = tempfile::tempdir().unwrap();
        let directory = Arc::new(Directory::new(Arc::clone(&vault)));
        directory
            .add_org(&OdsCode::parse("A81001").unwrap(), "Castle Practice")
            .unwrap();
        directory
            .add_org(&OdsCode::parse("B82002").unwrap(), "Harbour Care Home")
            .unwrap();
        let token = user_token(&directory, "gp", "A81001", Role::Gp, "user/*.*", None);
        let ledger =
            caldicott_vault::Ledger::open(Arc::clone(&vault), "test.caldicott.invalid/audit")
                .unwrap();
        let audit: Arc<dyn caldicott_api::audit::AuditSink> =
            Arc::new(caldicott_api::audit::LedgerSink(Arc::clone(&ledger)));
        let api = FhirApi {
            store: Arc::new(Store::new(
                Arc::clone(&vault),
                OdsCode::parse("X26").unwrap(),
            )),
            directory: Arc::clone(&directory),
            audit: Arc::clone(&audit),
            ledger: Some(Arc::clone(&ledger)),
            exports: Arc::new(Exports::new(exports.path().join("exports")).unwrap()),
            config: ApiConfig {
                public_base: None,
                scheme: "http",
                max_body_bytes: 1 << 20,
            },
        };
        let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), Transport::PlainHttp);
        cfg.max_body_bytes = 1 << 20;
        cfg.extra_router = Some(caldicott_api::router(Arc::new(api)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(caldicott_server::serve(
                cfg,
                Arc::new(Healthy),
                move |a| addr_tx.send(a).unwrap(),
                async move {
                    let _ = rx.await;
                },
            ))
            .unwrap();
        });
        let addr = addr_rx.recv().unwrap();
        Server {
            addr,
            vault,
            directory,
            ledger,
            token,
            stop: Some(tx),
            thread: Some(thread),
            _db: db,
            _exports: exports,
        }
    }

    /// Every audit event in the ledger so far, in order.
    pub fn events(&self) -> Vec<caldicott_api::audit::AuditEvent> {
        let head = self.ledger.head().unwrap();
        self.ledger
            .leaves(head.epoch, 0, head.size)
            .unwrap()
            .iter()
            .map(|l| caldicott_api::audit::AuditEvent::from_leaf(&l.data).unwrap())
            .collect()
    }

    pub fn base(&self) -> String {
        format!("http://{}/fhir", self.addr)
    }

    /// Sends one request; returns the status, headers (lower-case names) and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let auth = format!("Bearer {}", self.token);
        let mut h: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        self.raw_request(method, path, &h, body)
    }

    /// Sends one request with another token (`None`: no Authorization header).
    pub fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        h.extend_from_slice(headers);
        self.raw_request(method, path, &h, body)
    }

    /// Sends one request with exactly these headers.
    pub fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) and close before reading a large body.
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        parse_reply(&raw)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, v: &Value) -> Reply {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/fhir+json")],
            v.to_string().as_bytes(),
        )
    }

    pub fn put_json(&self, path: &str, v: &Value, extra: &[(&str, &str)]) -> Reply {
        let mut h = vec![("Content-Type", "application/fhir+json")];
        h.extend_from_slice(extra);
        self.request("PUT", path, &h, v.to_string().as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// For an error: asserts it is an OperationOutcome.
    pub fn outcome(&self) -> Value {
        let v = self.json();
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        v
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Adds a user and returns a direct-care token for them with `scopes`.
pub fn user_token(
    directory: &Directory,
    name: &str,
    org: &str,
    role: Role,
    scopes: &str,
    practitioner: Option<&str>,
) -> String {
    directory
        .add_user(
            name,
            &OdsCode::parse(org).unwrap(),
            role,
            practitioner.map(str::to_owned),
        )
        .unwrap();
    directory
        .issue_token(name, &scopes.parse().unwrap(), Purpose::DirectCare, 3600)
        .unwrap()
        .to_string()
}
