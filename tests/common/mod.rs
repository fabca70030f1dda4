//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

pub fn caldicott() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_caldicott"));
    c.env_remove("CALDICOTT_MASTER_KEY")
        .env_remove("CALDICOTT_DATABASE");
    c
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "command failed: {}", show(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a command that must fail with exit code 1 and exactly one `error:` line on stderr
/// (log lines aside); returns that line.
pub fn fails(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1: {}",
        show(&o)
    );
    let stderr = String::from_utf8(o.stderr.clone()).unwrap();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {}", show(&o));
    assert!(!stderr.contains("panicked"), "{}", show(&o));
    errors[0].to_owned()
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Finds patients by NHS number through the vault's protected index, in every organisation.
pub fn search_sqlite(data: &Path, rtype: &str, nhs: &str) -> Vec<String> {
    let kek = Arc::new(caldicott_vault::LocalKek::from_file(&data.join("master.key")).unwrap());
    let backend =
        Box::new(caldicott_vault::SqliteBackend::open(&data.join("vault.db"), false).unwrap());
    let vault = caldicott_vault::Vault::open(backend, kek).unwrap();
    // The terms the API's search would look up for `identifier=<system>|<nhs>`.
    let pairs = [(
        "identifier".to_string(),
        format!("https://fhir.nhs.uk/Id/nhs-number|{nhs}"),
    )];
    let q = caldicott_fhir::search::query::parse(rtype, &pairs).unwrap();
    let terms: Vec<caldicott_vault::IndexTerm> =
        caldicott_fhir::search::terms::lookup_terms(&q.params[0])
            .unwrap()
            .into_iter()
            .map(|(n, v)| caldicott_vault::IndexTerm::new(n, v))
            .collect();
    let rt = caldicott_core::ResourceType::new(rtype).unwrap();
    vault
        .organisations()
        .iter()
        .flat_map(|o| {
            vault
                .search_any(&caldicott_core::OdsCode::parse(o).unwrap(), &rt, &terms)
                .unwrap()
        })
        .map(|id| id.to_string())
        .collect()
}

/// `pg_dump` of one test schema, with data.
pub fn pg_dump(schema: &caldicott_vault::testing::PgSchema) -> Vec<u8> {
    let bin = std::env::var("CALDICOTT_TEST_PG_BIN")
        .map(|d| Path::new(&d).join("pg_dump"))
        .unwrap_or_else(|_| "pg_dump".into());
    let url = std::env::var("CALDICOTT_TEST_POSTGRES_URL").unwrap();
    let o = Command::new(bin)
        .args(["--no-owner", "--schema", schema.name(), "--dbname", &url])
        .output()
        .expect("run pg_dump");
    assert!(o.status.success(), "pg_dump: {}", show(&o));
    o.stdout
}

/// A running `caldicott serve` (or `demo`), stopped with SIGTERM on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub stdout: String,
}

impl Server {
    pub fn start(c: &mut Command) -> Server {
        c.stderr(Stdio::null());
        Self::spawn(c)
    }

    /// [`Server::start`] with the server's log (standard error) written to `log`.
    pub fn start_logged(c: &mut Command, log: &Path) -> Server {
        c.stderr(std::fs::File::create(log).unwrap());
        Self::spawn(c)
    }

    fn spawn(c: &mut Command) -> Server {
        let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut stdout = String::new();
        let url = loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("server exited before serving; stdout:\n{stdout}");
            }
            stdout.push_str(&line);
            if let Some(u) = line.trim().strip_prefix("Caldicott is serving at ") {
                break u.trim_end_matches('/').to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        Server { child, url, stdout }
    }
}

impl Server {
    /// Kills the server with SIGKILL: no shutdown, no flush, no final checkpoint.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Creates a resource over TLS as the bearer of `token` (201 expected); returns its id.
pub fn create_over_https(
    base: &str,
    cert_pem: &Path,
    token: &str,
    rtype: &str,
    body: &str,
) -> String {
    let auth = format!("Bearer {token}");
    let (status, text) = https_request(
        base,
        cert_pem,
        "POST",
        &format!("/fhir/{rtype}"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/fhir+json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 201, "{text}");
    text.split("\"id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the created resource's id")
        .to_owned()
}

/// A GET over TLS, trusting only the given certificate. Returns the status and the
/// whole response text.
pub fn https_get(base: &str, cert_pem: &Path, path: &str) -> (u16, String) {
    https_get_as(base, cert_pem, path, None)
}

/// [`https_get`] with a bearer token.
pub fn https_get_as(base: &str, cert_pem: &Path, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    https_request(base, cert_pem, "GET", path, &headers, b"")
}

/// One request over TLS, trusting only the given certificate. Returns the status and the
/// whole response text (head and body).
pub fn https_request(
    base: &str,
    cert_pem: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let addr = base.strip_prefix("https://").unwrap();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert_pem).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    // A server that is gone (killed by a test) answers status 0.
    let Ok(sock) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if tls.write_all(head.as_bytes()).is_err() || tls.write_all(body).is_err() {
        return (0, String::new());
    }
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A GP at the deployment's own organisation (LOCAL) and a direct-care token for them,
/// made with the command line.
pub fn gp_token(data: &Path) -> String {
    ok(caldicott()
        .args([
            "user", "add", "--org", "LOCAL", "--role", "gp", "test-gp", "--data",
        ])
        .arg(data));
    ok(caldicott()
        .args([
            "token",
            "issue",
            "--user",
            "test-gp",
            "--scope",
            "user/*.*",
            "--purpose",
            "direct-care",
            "--ttl",
            "1h",
            "--data",
        ])
        .arg(data))
    .trim()
    .to_owned()
}

/// The Python of `cargo xtask test`'s venv (`CALDICOTT_TEST_PYTHON`), for the tests that
/// drive an independent implementation; `None` (the caller then skips, and says so) when it
/// is not set, unless `CALDICOTT_REQUIRE_PYTHON=1`.
pub fn python() -> Option<std::path::PathBuf> {
    match std::env::var_os("CALDICOTT_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            assert!(
                std::env::var("CALDICOTT_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "CALDICOTT_REQUIRE_PYTHON=1 but CALDICOTT_TEST_PYTHON is not set"
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: this check needs CALDICOTT_TEST_PYTHON (cargo xtask test sets it)"
            );
            None
        }
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and returns it with the first stdout line starting with `prefix` (the
/// rest of that line); stdout is drained afterwards so the process never blocks on it.
pub fn spawn_until(c: &mut Command, prefix: &str) -> (Proc, String) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let rest = loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("process exited before printing {prefix:?}");
        }
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            break rest.to_owned();
        }
    };
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = r.read_to_string(&mut sink);
    });
    (Proc(child), rest)
}
