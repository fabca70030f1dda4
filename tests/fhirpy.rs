//! An independent FHIR client against `caldicott serve`: the Python library fhirpy (from
//! PyPI) creates, reads, updates, searches, pages through and deletes resources over TLS
//! (`tests/python/fhir_client_check.py` does the talking and checks every result).
//!
//! It needs a Python with the packages of `tests/python/requirements.txt`, named by
//! `CALDICOTT_TEST_PYTHON`; `cargo xtask test` makes one (`target/pyenv`) and also sets
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
