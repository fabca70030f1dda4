//! The audit trail survives `kill -9`: with a server killed in the middle of a stream of
//! writes, every record in the database has exactly its audit entry in the ledger and
//! every audit entry of a write has its record (they commit in one transaction), every
//! acknowledged write is there, and the ledger verifies. On SQLite, and on PostgreSQL
//! when `cargo xtask test` provides it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use caldicott_audit::{AuditEvent, Outcome};
use caldicott_core::{OdsCode, ResourceType};
use caldicott_vault::{Ledger, LocalKek, Vault};
use common::{Server, caldicott, https_request, ok, python};

fn crash_mid_writes(data: &Path, database: Option<&str>) {
    let mut init = caldicott();
    init.args(["init", "--data"]).arg(data);
    if let Some(db) = database {
        init.args(["--database", db]);
    }
    ok(&mut init);
    let token = common::gp_token(data);
    let mut server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data),
    );
    let cert = data.join("tls/cert.pem");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, cert, token, stop) =
                (server.url.clone(), cert.clone(), token.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let auth = format!("Bearer {token}");
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = format!(
                        r#"{{"resourceType":"Patient","name":[{{"family":"W{w}x{i}"}}],"managingOrganization":{{"identifier":{{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"LOCAL"}}}}}}"#
                    );
                    let (status, text) = https_request(
                        &url,
                        &cert,
                        "POST",
                        "/fhir/Patient",
                        &[
                            ("Authorization", auth.as_str()),
                            ("Content-Type", "application/fhir+json"),
                        ],
                        body.as_bytes(),
                    );
                    if status != 201 {
                        break; // the server is gone
                    }
                    let id = text
                        .split("\"id\":\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap()
                        .to_owned();
                    acked.push(id);
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        acked.len() > 20,
        "only {} writes before the kill",
        acked.len()
    );

    // Open what the crash left, as the next start would.
    let kek = Arc::new(LocalKek::from_file(&data.join("master.key")).unwrap());
    let location = match database {
        Some(db) => db.to_owned(),
        None => data.join("vault.db").display().to_string(),
    };
    let vault = Arc::new(
        Vault::open(
            caldicott_vault::open_backend(&location, false).unwrap(),
            kek,
        )
        .unwrap(),
    );
    let ledger = Ledger::open(Arc::clone(&vault), "ignored: the key exists").unwrap();
    let mut records = BTreeSet::new();
    let (org, patient) = (
        OdsCode::parse("LOCAL").unwrap(),
        ResourceType::new("Patient").unwrap(),
    );
    let mut after = None;
    loop {
        let batch = vault.scan(&org, &patient, after.as_ref(), 1000).unwrap();
        let Some(last) = batch.last() else { break };
        after = Some(last.id.clone());
        records.extend(batch.iter().map(|r| r.id.to_string()));
    }
    let head = ledger.head().unwrap();
    let created: BTreeSet<String> = ledger
        .leaves(head.epoch, 0, head.size)
        .unwrap()
        .iter()
        .map(|l| AuditEvent::from_leaf(&l.data).unwrap())
        .filter(|e| e.action == "create" && e.outcome == Outcome::Permit)
        .map(|e| e.id.unwrap())
        .collect();
    assert_eq!(
        records, created,
        "every record has its create event, and no event lacks its record"
    );
    for id in &acked {
        assert!(records.contains(id), "acknowledged write {id} lost");
    }
    let check = |leaf: &[u8]| {
        AuditEvent::from_leaf(leaf)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    ledger.verify(&check, &|_| {}).unwrap().unwrap();
    eprintln!(
        "{} acknowledged, {} stored, {} audit entries",
        acked.len(),
        records.len(),
        head.size
    );
}

#[test]
fn a_crash_never_separates_a_change_from_its_audit_entry_sqlite() {
    let t = tempfile::tempdir().unwrap();
    crash_mid_writes(&t.path().join("data"), None);
}

#[test]
fn a_crash_never_separates_a_change_from_its_audit_entry_postgres() {
    let Some(schema) = caldicott_vault::testing::PgSchema::create() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    crash_mid_writes(&t.path().join("data"), Some(&schema.url));
}

/// A served deployment with some audit entries and checkpoints, stopped cleanly.
fn audited_deployment(data: &Path) {
    ok(caldicott().args(["init", "--data"]).arg(data));
    let token = common::gp_token(data);
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data),
    );
    let cert = data.join("tls/cert.pem");
    for i in 0..6 {
        let body = format!(
            r#"{{"resourceType":"Patient","name":[{{"family":"T{i}"}}],"managingOrganization":{{"identifier":{{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"LOCAL"}}}}}}"#
        );
        common::create_over_https(&server.url, &cert, &token, "Patient", &body);
    }
    drop(server); // SIGTERM: a final checkpoint is signed
}

#[test]
fn ledger_verify_names_the_first_bad_entry_after_tampering() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    audited_deployment(&data);
    let key = ok(caldicott().args(["ledger", "key", "--data"]).arg(&data));
    assert!(
        key.trim().starts_with("local.caldicott.invalid/audit+"),
        "{key}"
    );
    let fine = ok(caldicott().args(["ledger", "verify", "--data"]).arg(&data));
    assert!(fine.contains("intact"), "{fine}");
    let db = rusqlite::Connection::open(data.join("vault.db")).unwrap();
    // Change one entry's bytes (a canonical event with another user).
    let leaf: Vec<u8> = db
        .query_row("SELECT data FROM ledger_leaves WHERE idx = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    let forged = String::from_utf8(leaf.clone())
        .unwrap()
        .replace("\"user\":\"test-gp\"", "\"user\":\"someone\"");
    assert_ne!(forged.as_bytes(), leaf.as_slice());
    db.execute(
        "UPDATE ledger_leaves SET data = ?1 WHERE idx = 3",
        [forged.as_bytes()],
    )
    .unwrap();
    let err = common::fails(caldicott().args(["ledger", "verify", "--data"]).arg(&data));
    assert!(
        err.contains("NOT intact") && err.contains("entry 3"),
        "{err}"
    );
    db.execute("UPDATE ledger_leaves SET data = ?1 WHERE idx = 3", [&leaf])
        .unwrap();
    ok(caldicott().args(["ledger", "verify", "--data"]).arg(&data));
    // Delete one.
    db.execute("DELETE FROM ledger_leaves WHERE idx = 5", [])
        .unwrap();
    let err = common::fails(caldicott().args(["ledger", "verify", "--data"]).arg(&data));
    assert!(err.contains("entry 5: missing"), "{err}");
}

#[test]
fn the_patient_access_report_from_the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let token = common::gp_token(&data);
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let body = r#"{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],"name":[{"family":"Quill"}],"managingOrganization":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"LOCAL"}}}"#;
    let id = common::create_over_https(&server.url, &cert, &token, "Patient", body);
    for _ in 0..3 {
        let (s, _) = common::https_get_as(
            &server.url,
            &cert,
            &format!("/fhir/Patient/{id}"),
            Some(&token),
        );
        assert_eq!(s, 200);
    }
    drop(server);
    let html = t.path().join("report.html");
    let json = t.path().join("report.json");
    ok(caldicott()
        .args(["audit", "patient", "--nhs-number", "943 476 5919", "--data"])
        .arg(&data)
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json));
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let events: Vec<&serde_json::Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "AuditEvent")
        .collect();
    // The create, three reads, and the report itself.
    assert_eq!(events.len(), 5, "{bundle}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("test-gp"), "the reader is named");
    assert!(!page.contains("Quill"), "no patient name in the report");
    // The same report as a PDF, read back by an independent reader (pypdf, strict).
    let pdf = t.path().join("report.pdf");
    ok(caldicott()
        .args(["audit", "patient", "--nhs-number", "9434765919", "--data"])
        .arg(&data)
        .arg("--pdf")
        .arg(&pdf));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-1.4"));
    if let Some(py) = python() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/pdf_text.py");
        let out = std::process::Command::new(&py)
            .arg(&script)
            .arg(&pdf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pypdf cannot read the PDF: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let pages: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("PAGES "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!((1..=3).contains(&pages), "{text}");
        assert!(text.contains("page 1"), "numbered pages: {text}");
        assert!(text.contains("Who has looked at your record"), "{text}");
        assert!(text.contains("943 476 5919"), "{text}");
        // The create, three reads, the HTML report's read, and this one's: six entries.
        assert!(
            text.contains("There are 6 entries about your record."),
            "{text}"
        );
        assert_eq!(text.matches("Person: test-gp").count(), 4, "{text}");
        assert!(text.contains("Signed checkpoint"), "{text}");
        assert!(!text.contains("Quill"), "no patient name in the report");
        // Tagged for screen readers, as pypdf reads it: marked catalog, language, displayed
        // title, a structure tree whose marked content matches the pages' text in order.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/pdf_tags.py");
        let out = std::process::Command::new(py)
            .arg(&script)
            .arg(&pdf)
            .output()
            .unwrap();
        let tags = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the PDF's tags: {}{tags}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(tags.lines().any(|l| l == "OK"), "{tags}");
        assert!(
            tags.lines()
                .any(|l| l == "ROLES H1 P P P P H2 L H2 P H3 P H3 P"),
            "title first, then the summary, the entries and how to check: {tags}"
        );
        assert!(
            tags.lines().any(|l| l == "ITEMS 6"),
            "one item per entry: {tags}"
        );
        assert!(
            tags.lines()
                .any(|l| l == "TITLE Who has looked at your record"),
            "{tags}"
        );
    }
    let err = common::fails(
        caldicott()
            .args(["audit", "patient", "--nhs-number", "9434765918", "--data"])
            .arg(&data),
    );
    assert!(err.contains("not a valid NHS number"), "{err}");
    let review = ok(caldicott().args(["audit", "review", "--data"]).arg(&data));
    assert!(!review.is_empty());
}
