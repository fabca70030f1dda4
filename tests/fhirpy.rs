//! An independent FHIR client against `caldicott serve`: the Python library fhirpy (from
//! PyPI) creates, reads, updates, searches, pages through and deletes resources over TLS
//! (`tests/python/fhir_client_check.py` does the talking and checks every result).
//!
//! It needs a Python with the packages of `tests/python/requirements.txt`, named by
//! `CALDICOTT_TEST_PYTHON`; `cargo xtask test` makes one (`~/.cache/caldicott-tools/pyenv`) and also sets
//! `CALDICOTT_REQUIRE_PYTHON=1`. Without the variable the test prints a visible SKIPPED line
//! and passes, unless Python is required, when it fails.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The interpreter to run the check with, or `None` (after saying so) to skip.
fn python() -> Option<PathBuf> {
    match std::env::var_os("CALDICOTT_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            assert!(
                std::env::var("CALDICOTT_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "CALDICOTT_REQUIRE_PYTHON=1 but CALDICOTT_TEST_PYTHON is not set"
            );
            // Straight to stderr: libtest captures println!/eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: fhirpy check needs CALDICOTT_TEST_PYTHON (cargo xtask test sets it)"
            );
            None
        }
    }
}

#[test]
fn fhirpy_creates_searches_pages_and_deletes_over_tls() {
    let Some(python) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    // A GP at the deployment's organisation, with a direct-care token.
    let token = gp_token(&data);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/fhir_client_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(format!("{}/fhir", server.url))
        .arg(data.join("tls/cert.pem"))
        // The script names the one certificate to trust; nothing from the environment may
        // widen or replace that.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("CALDICOTT_FHIR_TOKEN", &token)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (CALDICOTT_TEST_PYTHON): {e}",
                python.display()
            )
        });
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the fhirpy check failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("fhirpy check: all checks passed"),
        "the fhirpy check did not finish:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // Shown with --nocapture; and on the record when a later assertion is added.
    print!("{stdout}");
}

/// The audit trail's FHIR output (an `AuditEvent` search and a patient access report)
/// validated by an independent model library, `fhir.resources` (pydantic).
#[test]
fn audit_events_and_access_reports_are_valid_fhir_to_fhir_resources() {
    let Some(python) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let gp = gp_token(&data);
    ok(caldicott()
        .args([
            "user",
            "add",
            "--org",
            "LOCAL",
            "--role",
            "caldicott-guardian",
            "cg",
            "--data",
        ])
        .arg(&data));
    let cg = ok(caldicott()
        .args([
            "token",
            "issue",
            "--user",
            "cg",
            "--scope",
            "user/*.read",
            "--purpose",
            "audit",
            "--data",
        ])
        .arg(&data))
    .trim()
    .to_owned();
    let body = r#"{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],"name":[{"family":"Quill"}],"managingOrganization":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"LOCAL"}}}"#;
    let id = common::create_over_https(&server.url, &cert, &gp, "Patient", body);
    for path in [
        format!("/fhir/Patient/{id}"),
        format!("/fhir/Observation?patient={id}"),
        "/fhir/Patient/not-there".to_owned(),
    ] {
        https_get_as(&server.url, &cert, &path, Some(&gp));
    }
    let mut files = Vec::new();
    for (name, path) in [
        ("search.json", "/fhir/AuditEvent?_count=100".to_owned()),
        ("report.json", format!("/fhir/Patient/{id}/$access-report")),
    ] {
        let (status, text) = https_get_as(&server.url, &cert, &path, Some(&cg));
        assert_eq!(status, 200, "{text}");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap();
        let body = if text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let file = t.path().join(name);
        std::fs::write(&file, body).unwrap();
        files.push(file);
    }
    drop(server);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/audit_event_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(&files)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fhir.resources refused the audit output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all valid"), "{stdout}");
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = b.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        b = rest[n..].trim_start_matches("\r\n");
    }
    out
}
