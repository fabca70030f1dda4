//! End-to-end tests of the `caldicott` binary: init, synth, import, serve, key rotation and
//! the errors a person sees when something is wrong.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// Strings that must never appear in clear in storage: NHS numbers (both forms), family
/// names and postcodes of every synthetic patient.
fn identifiers(ndjson: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in std::fs::read_to_string(ndjson).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["resourceType"] != "Patient" {
            continue;
        }
        for id in v["identifier"].as_array().unwrap() {
            let n = id["value"].as_str().unwrap().to_owned();
            out.insert(format!("{} {} {}", &n[..3], &n[3..6], &n[6..]));
            out.insert(n);
        }
        for name in v["name"].as_array().unwrap() {
            let family = name["family"].as_str().unwrap();
            // Names of 4+ letters: shorter ones occur by chance in megabytes of ciphertext.
            if family.len() >= 4 {
                out.insert(family.to_owned());
            }
        }
        for a in v["address"].as_array().unwrap() {
            out.insert(a["postalCode"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        out.len() > 300,
        "expected many identifiers, got {}",
        out.len()
    );
    out
}

fn assert_absent(haystack: &[u8], needles: &BTreeSet<String>, what: &str) {
    let ac = aho_corasick::AhoCorasick::new(needles).unwrap();
    // A positive control: the same search finds the identifiers in a clear copy.
    let control = needles.iter().last().unwrap();
    assert!(ac.find(format!("..{control}..").as_bytes()).is_some());
    if let Some(m) = ac.find(haystack) {
        panic!(
            "{what} contains a patient identifier in clear at byte {}",
            m.start()
        );
    }
}

/// A fresh data directory with `patients` synthetic patients imported: (temp dir, data
/// directory, the NDJSON file imported).
fn loaded(patients: u32) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let ndjson = t.path().join("p.ndjson");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args(["synth", "--patients", &patients.to_string(), "--out"])
        .arg(&ndjson));
    ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));
    (t, data, ndjson)
}

/// Record versions still under an old data key, summed from `keys status` output.
fn stale_records(status: &str) -> u64 {
    status
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn sqlite_files_hold_no_identifier_in_clear() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let ndjson = t.path().join("p.ndjson");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args(["synth", "--patients", "150", "--seed", "7", "--out"])
        .arg(&ndjson));
    let out = ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));
    assert!(out.contains("created"), "{out}");
    let needles = identifiers(&ndjson);
    let mut seen = 0;
    for f in ["vault.db", "vault.db-wal", "vault.db-shm"] {
        if let Ok(bytes) = std::fs::read(data.join(f)) {
            assert_absent(&bytes, &needles, f);
            seen += 1;
        }
    }
    assert!(seen >= 1);
    // The search index still finds a patient by NHS number: protected, not lost.
    let some_nhs = needles
        .iter()
        .find(|s| s.len() == 10 && s.starts_with("999"))
        .unwrap();
    let found = common::search_sqlite(&data, "Patient", some_nhs);
    assert_eq!(found.len(), 1);
}

#[test]
fn the_wal_holds_no_identifier_in_clear_after_a_crash() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let ndjson = t.path().join("p.ndjson");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args(["synth", "--patients", "3000", "--seed", "8", "--out"])
        .arg(&ndjson));
    let mut child = caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it mid-import, while the WAL has content that was never checkpointed.
    let wal = data.join("vault.db-wal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 2 << 20
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let bytes = std::fs::read(&wal).expect("a WAL file after kill -9");
    assert!(bytes.len() > 1 << 20, "WAL has {} bytes", bytes.len());
    assert_absent(&bytes, &identifiers(&ndjson), "vault.db-wal");
}

#[test]
fn postgres_dump_holds_no_identifier_in_clear() {
    let Some(schema) = caldicott_vault::testing::PgSchema::create() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let ndjson = t.path().join("p.ndjson");
    ok(caldicott()
        .args(["init", "--data"])
        .arg(&data)
        .args(["--database", &schema.url]));
    ok(caldicott()
        .args(["synth", "--patients", "150", "--seed", "9", "--out"])
        .arg(&ndjson));
    ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));
    let dump = pg_dump(&schema);
    assert!(
        dump.len() > 100_000,
        "dump of {} bytes is too small to hold the import",
        dump.len()
    );
    assert!(String::from_utf8_lossy(&dump).contains("COPY"));
    assert_absent(&dump, &identifiers(&ndjson), "pg_dump output");
}

#[test]
fn import_is_resumable_and_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let ndjson = t.path().join("p.ndjson");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args(["synth", "--patients", "40", "--out"])
        .arg(&ndjson));
    let total = std::fs::read_to_string(&ndjson).unwrap().lines().count();
    // An import that stopped part-way: only the first half was loaded.
    let half = t.path().join("half.ndjson");
    let text = std::fs::read_to_string(&ndjson).unwrap();
    let first: Vec<&str> = text.lines().take(total / 2).collect();
    std::fs::write(&half, first.join("\n")).unwrap();
    ok(caldicott().args(["import", "--data"]).arg(&data).arg(&half));
    let out = ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));
    assert!(
        out.contains(&format!(
            "{} created, 0 updated, {} unchanged",
            total - total / 2,
            total / 2
        )),
        "{out}"
    );
}

#[test]
fn import_loads_bundles_as_the_api_would_and_resumes() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    // A pretty-printed transaction Bundle file: entries identified by urn:uuid only.
    let pid = "5fbe4e5a-9e47-4a55-9c2b-0d4c2a1b7e01";
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            { "fullUrl": format!("urn:uuid:{pid}"),
              "resource": { "resourceType": "Patient",
                "identifier": [{ "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919" }],
                "birthDate": "1970-04-01" },
              "request": { "method": "POST", "url": "Patient" } },
            { "fullUrl": "urn:uuid:0a8c9d55-1a11-4c1f-8f54-3c3d3f6e9a02",
              "resource": { "resourceType": "Observation", "status": "final",
                "code": { "coding": [{ "system": "http://loinc.org", "code": "29463-7" }] },
                "subject": { "reference": format!("urn:uuid:{pid}") },
                "valueQuantity": { "value": 72.5, "unit": "kg" } },
              "request": { "method": "POST", "url": "Observation" } }
        ]
    });
    let file = t.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
    // And a batch Bundle as one NDJSON line, beside a plain resource.
    let batch = serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": [
        { "resource": { "resourceType": "Condition", "id": "c1", "subject": { "reference": format!("Patient/{pid}") },
          "code": { "coding": [{ "system": "http://snomed.info/sct", "code": "44054006" }] } },
          "request": { "method": "PUT", "url": "Condition/c1" } }
    ]});
    let nd = t.path().join("mixed.ndjson");
    std::fs::write(
        &nd,
        format!(
            "{batch}\n{{\"resourceType\":\"Organization\",\"id\":\"o1\",\"name\":\"Practice\"}}\n"
        ),
    )
    .unwrap();
    let out = ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&file)
        .arg(&nd));
    assert!(out.contains("4 created, 0 updated, 0 unchanged"), "{out}");
    let again = ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&file)
        .arg(&nd));
    assert!(
        again.contains("0 created, 0 updated, 4 unchanged"),
        "{again}"
    );
    // The API finds the observation by its (rewritten) patient reference, and the
    // patient by NHS number: import indexed them as the API does.
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let token = common::gp_token(&data);
    let get = |path: &str| https_get_as(&server.url, &cert, path, Some(&token));
    // Without a token the API answers 401.
    let (status, _) = https_get(&server.url, &cert, "/fhir/Patient");
    assert_eq!(status, 401);
    let (status, body) = get(&format!("/fhir/Observation?patient=Patient/{pid}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"total\":1"), "{body}");
    let (_, body) = get("/fhir/Patient?identifier=9434765919");
    assert!(body.contains(pid), "{body}");
    let (_, body) = get(&format!("/fhir/Condition?subject={pid}"));
    assert!(body.contains("\"total\":1"), "{body}");
}

#[test]
fn an_index_made_under_another_scheme_is_rebuilt_at_start() {
    let (_t, data, ndjson) = loaded(100);
    let nhs = identifiers(&ndjson)
        .into_iter()
        .find(|s| s.len() == 10 && s.starts_with("999"))
        .unwrap();
    assert_eq!(common::search_sqlite(&data, "Patient", &nhs).len(), 1);
    // A database indexed by an older build: other terms, another scheme name.
    let c = rusqlite::Connection::open(data.join("vault.db")).unwrap();
    c.execute_batch(
        "DELETE FROM index_entries; UPDATE meta SET value = CAST('old' AS BLOB) WHERE key = 'fhir.index_scheme';",
    )
    .unwrap();
    drop(c);
    assert!(common::search_sqlite(&data, "Patient", &nhs).is_empty());
    let empty = data.join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&empty));
    assert_eq!(common::search_sqlite(&data, "Patient", &nhs).len(), 1);
}

#[test]
fn import_reports_the_bad_line_precisely() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let f = t.path().join("bad.ndjson");
    std::fs::write(
        &f,
        "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\
         {\"resourceType\":\"Patient\",\"id\":\"b\",\"identifier\":[{\"system\":\"https://fhir.nhs.uk/Id/nhs-number\",\"value\":\"9434765918\"}]}\n",
    )
    .unwrap();
    let err = fails(caldicott().args(["import", "--data"]).arg(&data).arg(&f));
    assert!(
        err.contains("bad.ndjson line 2") && err.contains("check digit"),
        "{err}"
    );
    assert!(
        !err.contains("9434765918"),
        "the error must not echo the identifier"
    );
}

#[test]
fn bad_database_files_give_one_clear_error() {
    let (_t, data, ndjson) = loaded(300);
    let db = data.join("vault.db");
    let original = std::fs::read(&db).unwrap();
    assert!(original.len() > 200_000);

    // Damage inside the file is found when the damaged pages are read: one page in every
    // eight past the first two is damaged, so that record and index pages, which a
    // re-import reads, are among them whatever the layout (the audit ledger's tables, which
    // the import does not read, fill a good part of the file).
    let mut damaged = original.clone();
    let page = 4096;
    let mut at = 2 * page;
    while at + page <= damaged.len() {
        for b in &mut damaged[at..at + page] {
            *b = b.wrapping_mul(7).wrapping_add(13);
        }
        at += 8 * page;
    }
    std::fs::write(&db, &damaged).unwrap();
    let err = fails(
        caldicott()
            .args(["import", "--data"])
            .arg(&data)
            .arg(&ndjson),
    );
    assert!(
        err.contains("is corrupt") && err.contains("malformed"),
        "{err}"
    );

    std::fs::write(&db, &original[..original.len() / 2]).unwrap();
    let err = fails(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(err.contains("truncated"), "{err}");

    std::fs::write(&db, b"this is not a database at all, just some text that is long enough to have a header, more than one hundred bytes of it in total").unwrap();
    let err = fails(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(err.contains("not a SQLite database"), "{err}");

    std::fs::remove_file(&db).unwrap();
    let err = fails(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn bad_keys_give_one_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let key = data.join("master.key");
    let text = std::fs::read_to_string(&key).unwrap();
    set_mode(&key, 0o644);
    let err = fails(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(
        err.contains("permissions 644") && err.contains("chmod 600"),
        "{err}"
    );
    set_mode(&key, 0o600);

    std::fs::write(&key, &text[..text.len() - 10]).unwrap();
    let err = fails(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(
        err.contains("exactly 32 bytes") || err.contains("base64"),
        "{err}"
    );
    assert!(
        !err.contains(&text[20..40]),
        "the error must not show the key"
    );

    std::fs::write(&key, &text).unwrap();
    let other = "caldicott-kek-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let err = fails(
        caldicott()
            .args(["keys", "status", "--data"])
            .arg(&data)
            .env("CALDICOTT_MASTER_KEY", other),
    );
    assert!(
        err.contains("not the one this database was encrypted with"),
        "{err}"
    );

    std::fs::remove_file(&key).unwrap();
    let err = fails(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(err.contains("cannot read master key file"), "{err}");
}

#[test]
fn an_unreachable_postgres_gives_one_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let err = fails(
        caldicott()
            .args(["init", "--data"])
            .arg(t.path().join("d"))
            .args(["--database", "postgres://caldicott@127.0.0.1:1/nothing"]),
    );
    assert!(
        err.contains("cannot open database postgres://caldicott@127.0.0.1:1/nothing"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 20);
}

#[test]
fn init_refuses_to_overwrite_and_validates_its_input() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let out = ok(caldicott()
        .args(["init", "--data"])
        .arg(&data)
        .args(["--ods", "a81001"]));
    assert!(out.contains("password: "), "{out}");
    let err = fails(caldicott().args(["init", "--data"]).arg(&data));
    assert!(err.contains("already a Caldicott data directory"), "{err}");
    let err = fails(
        caldicott()
            .args(["init", "--data"])
            .arg(t.path().join("x"))
            .args(["--ods", "A-1"]),
    );
    assert!(err.contains("ODS code"), "{err}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("tls/key.pem")), 0o600);
}

#[test]
fn master_key_rotation_keeps_data_readable() {
    let (_t, data, ndjson) = loaded(30);
    let before = std::fs::read_to_string(data.join("master.key")).unwrap();
    let out = ok(caldicott().args(["keys", "rotate", "--data"]).arg(&data));
    assert!(out.contains("rewrapped"), "{out}");
    let after = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_ne!(before, after);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert!(!data.join("master.key.new").exists());
    // Everything still reads back byte for byte, and the old key no longer opens it.
    let out = ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));
    assert!(out.contains("0 created, 0 updated"), "{out}");
    let err = fails(
        caldicott()
            .args(["keys", "status", "--data"])
            .arg(&data)
            .env("CALDICOTT_MASTER_KEY", before.trim()),
    );
    assert!(err.contains("not the one"), "{err}");
}

#[test]
fn data_key_rotation_reencrypts_everything() {
    let (_t, data, ndjson) = loaded(30);
    let out = ok(caldicott()
        .args(["keys", "rotate", "--data-keys", "--no-reencrypt", "--data"])
        .arg(&data));
    assert!(out.contains("new data key v2"), "{out}");
    let status = ok(caldicott().args(["keys", "status", "--data"]).arg(&data));
    assert!(stale_records(&status) > 100, "{status}");
    ok(caldicott().args(["keys", "reencrypt", "--data"]).arg(&data));
    let status = ok(caldicott().args(["keys", "status", "--data"]).arg(&data));
    for l in status.lines().skip(2) {
        assert!(
            l.contains(" v2 ") && l.trim_end().ends_with(" 0"),
            "{status}"
        );
    }
    let out = ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));
    assert!(out.contains("0 created, 0 updated"), "{out}");
}

#[test]
fn serve_answers_health_over_tls_and_refuses_public_plain_http() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let (status, body) = https_get(&server.url, &data.join("tls/cert.pem"), "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    let (status, body) = https_get(&server.url, &data.join("tls/cert.pem"), "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("http_requests_total"), "{body}");
    drop(server);

    let err = fails(
        caldicott()
            .args(["serve", "--plain-http", "--listen", "0.0.0.0:0", "--data"])
            .arg(&data),
    );
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn demo_loads_patients_and_serves() {
    let server =
        Server::start(caldicott().args(["demo", "--patients", "20", "--listen", "127.0.0.1:0"]));
    assert!(
        server
            .stdout
            .contains("administrator: `admin`, one-time password"),
        "{}",
        server.stdout
    );
    assert!(
        server.stdout.contains("`demo-gp`, one-time password"),
        "{}",
        server.stdout
    );
    assert!(server.stdout.contains("Patient"), "{}", server.stdout);
    let data = server
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Demo data directory: "))
        .and_then(|l| l.split(" (").next())
        .unwrap()
        .to_owned();
    let cert = Path::new(&data).join("tls/cert.pem");
    let (status, _) = https_get(&server.url, &cert, "/healthz");
    assert_eq!(status, 200);
    // The web console's sign-in page is served at the root.
    let (status, page) = https_get(&server.url, &cert, "/signin");
    assert_eq!(status, 200);
    assert!(
        page.contains("<h1 class=\"nhsuk-heading-l\">Sign in</h1>"),
        "{page}"
    );
    // Through the real server (TLS and its middleware), a console page carries every
    // security header: HSTS, the console's CSP (no script; no framing), no-store, the
    // referrer kept to this site, and no sniffing.
    let head = page
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    for expected in [
        "strict-transport-security: max-age=31536000",
        "content-security-policy: default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "cache-control: no-store",
        "x-frame-options: deny",
        "referrer-policy: same-origin",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(expected), "missing {expected:?} in:\n{head}");
    }
    // The printed token reads the demo practice's patients through the FHIR API.
    let token = server
        .stdout
        .lines()
        .find_map(|l| l.split("Bearer ").nth(1))
        .and_then(|l| l.split('\'').next())
        .unwrap_or_else(|| panic!("no token printed:\n{}", server.stdout))
        .to_owned();
    let (status, body) = https_get_as(
        &server.url,
        &cert,
        "/fhir/Patient?_summary=count",
        Some(&token),
    );
    assert_eq!(status, 200, "{body}");
    let total: u64 = body
        .split("\"total\":")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(total > 0, "{body}");
}

#[test]
fn serve_reencrypts_in_the_background_after_a_data_key_rotation() {
    let (_t, data, _) = loaded(60);
    ok(caldicott()
        .args(["keys", "rotate", "--data-keys", "--no-reencrypt", "--data"])
        .arg(&data));
    assert!(
        stale_records(&ok(caldicott()
            .args(["keys", "status", "--data"])
            .arg(&data)))
            > 100
    );
    let _server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = ok(caldicott().args(["keys", "status", "--data"]).arg(&data));
        if stale_records(&status) == 0 {
            assert!(
                status.lines().skip(2).all(|l| l.contains(" v2 ")),
                "{status}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still stale after 60 s:\n{status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn anonymise_adult_to_five_anonymity() {
    let adult = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/adult");
    if !adult.join("adult.csv").exists() {
        eprintln!("SKIPPED: ../shared/data/adult not found");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (out, report) = (t.path().join("out.csv"), t.path().join("report.json"));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/anonymise/adult-k5.toml");
    let said = ok(caldicott()
        .args(["anonymise", "--input"])
        .arg(adult.join("adult.csv"))
        .arg("--config")
        .arg(&policy)
        .arg("--hierarchies")
        .arg(&adult)
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .arg(&report));
    // ARX's optimum for this configuration.
    assert!(
        said.contains("sex=1/1 age=2/4 race=1/1 marital-status=1/2 education=3/3 native-country=2/2 workclass=2/2 occupation=1/2 salary-class=1/1"),
        "{said}"
    );
    // Regroup the output independently: every combination of values occurs at least 5 times.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "sex;age;race;marital-status;education;native-country;workclass;occupation;salary-class"
    );
    let mut classes = std::collections::HashMap::<&str, usize>::new();
    for l in lines {
        *classes.entry(l).or_default() += 1;
    }
    assert_eq!(classes.values().sum::<usize>(), 30_162);
    assert!(classes.values().all(|n| *n >= 5));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["min_class_size"], 5);
}

#[test]
fn anonymise_refuses_bad_input_and_leaves_no_output() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("in.csv");
    std::fs::write(&input, "age;town\n34;Leeds\n35\n").unwrap();
    let policy = t.path().join("p.toml");
    std::fs::write(
        &policy,
        "metric = \"loss\"\nsuppression_limit = 0.0\n[privacy]\nmodel = \"k-anonymity\"\nk = 2\n\
         [[attribute]]\nname = \"age\"\nkind = \"quasi-identifier\"\nhierarchy = { intervals = [10] }\n\
         [[attribute]]\nname = \"town\"\nkind = \"insensitive\"\n",
    )
    .unwrap();
    let out = t.path().join("out.csv");
    let err = fails(
        caldicott()
            .args(["anonymise", "--input"])
            .arg(&input)
            .arg("--config")
            .arg(&policy)
            .arg("--out")
            .arg(&out)
            .arg("--report")
            .arg(t.path().join("r.json")),
    );
    assert!(err.contains("row") || err.contains("line"), "{err}");
    assert!(!out.exists(), "no partial output");
    assert_eq!(
        std::fs::read_dir(t.path()).unwrap().count(),
        2,
        "no temporary files left"
    );
}

#[test]
fn organisations_users_and_tokens_from_the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let cmd = |args: &[&str]| {
        let mut c = caldicott();
        c.args(args).arg("--data").arg(&data);
        c
    };
    ok(&mut cmd(&[
        "org",
        "add",
        "--ods",
        "A81001",
        "--name",
        "Castle Practice",
    ]));
    assert!(ok(&mut cmd(&["org", "list"])).contains("A81001\tCastle Practice"));
    let added = ok(&mut cmd(&[
        "user", "add", "--org", "A81001", "--role", "gp", "ann",
    ]));
    assert!(added.contains("one-time password"), "{added}");
    // The token alone on stdout, for scripts.
    let token = ok(&mut cmd(&[
        "token",
        "issue",
        "--user",
        "ann",
        "--scope",
        "user/*.read",
        "--purpose",
        "direct-care",
        "--ttl",
        "1h",
    ]));
    assert!(
        token.trim().starts_with("cdt_") && token.lines().count() == 1,
        "{token}"
    );
    ok(&mut cmd(&["user", "disable", "ann"]));
    assert!(ok(&mut cmd(&["user", "list"])).contains("ann\tA81001\tgp\tdisabled"));
    // Bad input: one clear line each.
    let e = fails(&mut cmd(&[
        "user", "add", "--org", "A81001", "--role", "doctor", "bob",
    ]));
    assert!(e.contains("gp") && e.contains("care-worker"), "{e}");
    let e = fails(&mut cmd(&[
        "user", "add", "--org", "Z99999", "--role", "gp", "bob",
    ]));
    assert!(e.contains("not known"), "{e}");
    let e = fails(&mut cmd(&[
        "token",
        "issue",
        "--user",
        "ann",
        "--scope",
        "user/*.read",
        "--purpose",
        "direct-care",
    ]));
    assert!(e.contains("disabled"), "{e}");
    ok(&mut cmd(&["user", "enable", "ann"]));
    let e = fails(&mut cmd(&[
        "token",
        "issue",
        "--user",
        "ann",
        "--scope",
        "user/*.read",
        "--purpose",
        "gossip",
    ]));
    assert!(e.contains("direct-care"), "{e}");
    let e = fails(&mut cmd(&[
        "token",
        "issue",
        "--user",
        "ann",
        "--scope",
        "everything",
        "--purpose",
        "direct-care",
    ]));
    assert!(e.contains("--scope"), "{e}");
    // The database holds neither the token nor the password in clear.
    let db = std::fs::read(data.join("vault.db")).unwrap();
    let tok = token.trim().as_bytes();
    assert!(!db.windows(tok.len()).any(|w| w == tok));
}

#[test]
fn opt_out_lists_load_as_keyed_hashes() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let list = t.path().join("optouts.txt");
    std::fs::write(&list, "# national data opt-out\n9434765919\n900 000 0009\n").unwrap();
    let out = ok(caldicott()
        .args(["optout", "import", "--data"])
        .arg(&data)
        .arg(&list));
    assert!(out.contains("loaded 2 National Data opt-outs"), "{out}");
    let db = std::fs::read(data.join("vault.db")).unwrap();
    assert!(!db.windows(10).any(|w| w == b"9434765919"));
    std::fs::write(&list, "9434765919\n9434765918\n").unwrap();
    let e = fails(
        caldicott()
            .args(["optout", "import", "--type1", "--data"])
            .arg(&data)
            .arg(&list),
    );
    assert!(e.contains("line 2") && !e.contains("9434765918"), "{e}");
}

#[test]
fn the_break_glass_queue_from_the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    assert!(
        ok(caldicott()
            .args(["breakglass", "list", "--unreviewed", "--data"])
            .arg(&data))
        .trim()
        .is_empty()
    );
    let e = fails(
        caldicott()
            .args([
                "breakglass",
                "review",
                "--id",
                "x",
                "--by",
                "admin",
                "--outcome",
                "fine",
                "--data",
            ])
            .arg(&data),
    );
    assert!(e.contains("appropriate"), "{e}");
    let e = fails(
        caldicott()
            .args([
                "breakglass",
                "review",
                "--id",
                "x",
                "--by",
                "admin",
                "--outcome",
                "appropriate",
                "--data",
            ])
            .arg(&data),
    );
    assert!(e.contains("not a Caldicott guardian"), "{e}");
}

#[test]
fn people_sign_in_with_password_and_authenticator_over_https() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let added = ok(caldicott()
        .args([
            "user", "add", "--org", "LOCAL", "--role", "gp", "ann", "--data",
        ])
        .arg(&data));
    let otp = added
        .lines()
        .find_map(|l| l.split("first sign-in): ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let post = |path: &str, body: serde_json::Value| {
        https_request(
            &server.url,
            &cert,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let strong = "a long and unusual passphrase 7";
    let (status, _) = post(
        "/auth/login",
        serde_json::json!({"user": "ann", "password": otp, "code": "000000"}),
    );
    assert_eq!(status, 403, "the one-time password must be changed first");
    let (status, body) = post(
        "/auth/password",
        serde_json::json!({"user": "ann", "password": otp, "new_password": strong}),
    );
    assert_eq!(status, 204, "{body}");
    let (status, _) = post(
        "/auth/login",
        serde_json::json!({"user": "ann", "password": strong, "code": "000000"}),
    );
    assert_eq!(status, 403, "an authenticator must be enrolled first");
    let (status, body) = post(
        "/auth/mfa/enrol",
        serde_json::json!({"user": "ann", "password": strong}),
    );
    assert_eq!(status, 200, "{body}");
    let json_of = |text: &str| -> serde_json::Value {
        serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    };
    let enrolment = json_of(&body);
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let totp = caldicott_identity::Totp::new(
        caldicott_identity::TotpSecret::from_base32(enrolment["secret"].as_str().unwrap()).unwrap(),
    );
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let (status, body) = post(
        "/auth/mfa/confirm",
        serde_json::json!({"user": "ann", "password": strong, "code": totp.code_at(now())}),
    );
    assert_eq!(status, 204, "{body}");
    // The next time step's code signs in (the confirming one was used).
    let (status, body) = post(
        "/auth/login",
        serde_json::json!({"user": "ann", "password": strong, "code": totp.code_at(now() + 30)}),
    );
    assert_eq!(status, 200, "{body}");
    let token = json_of(&body)["access_token"].as_str().unwrap().to_owned();
    let (status, body) = https_get_as(
        &server.url,
        &cert,
        "/fhir/Patient?_summary=count",
        Some(&token),
    );
    assert_eq!(status, 200, "{body}");
    // Wrong passwords: 401, then throttled with 429.
    for _ in 0..5 {
        let (status, _) = post(
            "/auth/login",
            serde_json::json!({"user": "ann", "password": "nope", "code": "000000"}),
        );
        assert_eq!(status, 401);
    }
    let (status, body) = post(
        "/auth/login",
        serde_json::json!({"user": "ann", "password": strong, "code": "000000"}),
    );
    assert_eq!(status, 429, "{body}");
    assert!(body.to_ascii_lowercase().contains("retry-after"), "{body}");
}

/// Signs `user` in over HTTPS from their one-time password: replaces it, enrols an
/// authenticator, logs in. Returns the bearer token.
fn sign_in_fresh(server: &Server, cert: &Path, user: &str, one_time: &str) -> String {
    let post = |path: &str, body: serde_json::Value| {
        https_request(
            &server.url,
            cert,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let json_of = |text: &str| -> serde_json::Value {
        serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    };
    let strong = "another long unusual passphrase 9";
    let (s, b) = post(
        "/auth/password",
        serde_json::json!({"user": user, "password": one_time, "new_password": strong}),
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = post(
        "/auth/mfa/enrol",
        serde_json::json!({"user": user, "password": strong}),
    );
    assert_eq!(s, 200, "{b}");
    let totp = caldicott_identity::Totp::new(
        caldicott_identity::TotpSecret::from_base32(json_of(&b)["secret"].as_str().unwrap())
            .unwrap(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (s, b) = post(
        "/auth/mfa/confirm",
        serde_json::json!({"user": user, "password": strong, "code": totp.code_at(now)}),
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = post(
        "/auth/login",
        serde_json::json!({"user": user, "password": strong, "code": totp.code_at(now + 30)}),
    );
    assert_eq!(s, 200, "{b}");
    json_of(&b)["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn the_administration_api_is_for_sysadmins() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let init = ok(caldicott().args(["init", "--data"]).arg(&data));
    let admin_otp = init
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let token = sign_in_fresh(&server, &cert, "admin", &admin_otp);
    let auth = format!("Bearer {token}");
    let call = |method: &str, path: &str, body: serde_json::Value| {
        https_request(
            &server.url,
            &cert,
            method,
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", auth.as_str()),
            ],
            body.to_string().as_bytes(),
        )
    };
    let (s, b) = call(
        "POST",
        "/admin/orgs",
        serde_json::json!({"ods": "A81001", "name": "Castle Practice"}),
    );
    assert_eq!(s, 201, "{b}");
    let (s, _) = call(
        "POST",
        "/admin/orgs",
        serde_json::json!({"ods": "A81001", "name": "Again"}),
    );
    assert_eq!(s, 409);
    let (s, b) = call(
        "POST",
        "/admin/users",
        serde_json::json!({"name": "nurse1", "org": "A81001", "role": "registered-nurse"}),
    );
    assert_eq!(s, 201, "{b}");
    assert!(b.contains("one_time_password"), "{b}");
    let (s, b) = call(
        "POST",
        "/admin/users",
        serde_json::json!({"name": "x", "org": "A81001", "role": "wizard"}),
    );
    assert_eq!(s, 400, "{b}");
    let (s, b) = call("GET", "/admin/users", serde_json::json!({}));
    assert_eq!(s, 200);
    assert!(b.contains("nurse1") && !b.contains("argon2"), "{b}");
    let (s, _) = call("POST", "/admin/users/nurse1/disable", serde_json::json!({}));
    assert_eq!(s, 204);
    assert!(
        ok(caldicott().args(["user", "list", "--data"]).arg(&data))
            .contains("nurse1\tA81001\tregistered-nurse\tdisabled")
    );
    // Not for anyone else, and not without a token.
    let (s, _) = https_request(&server.url, &cert, "GET", "/admin/users", &[], b"");
    assert_eq!(s, 401);
    let gp = common::gp_token(&data);
    let (s, _) = https_get_as(&server.url, &cert, "/admin/users", Some(&gp));
    assert_eq!(s, 403);
}

#[test]
fn no_secret_or_identifier_reaches_the_log() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let init = ok(caldicott().args(["init", "--data"]).arg(&data));
    let admin_otp = init
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let log = t.path().join("server.log");
    let server = Server::start_logged(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("CALDICOTT_LOG", "debug"),
        &log,
    );
    let cert = data.join("tls/cert.pem");
    // A session that handles every kind of secret and identifier: a one-time password, a
    // new password, a TOTP code and secret, a token, NHS numbers in a body, a search and an
    // error, a break-glass reason.
    let admin_token = sign_in_fresh(&server, &cert, "admin", &admin_otp);
    let gp = common::gp_token(&data);
    let auth = format!("Bearer {gp}");
    let nhs = "9434765919";
    let patient = serde_json::json!({"resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": "Zebedee-Quill"}]});
    let (s, b) = https_request(
        &server.url,
        &cert,
        "POST",
        "/fhir/Patient",
        &[
            ("Content-Type", "application/fhir+json"),
            ("Authorization", &auth),
        ],
        patient.to_string().as_bytes(),
    );
    assert_eq!(s, 201, "{b}");
    let bad = serde_json::json!({"resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}]});
    let (s, _) = https_request(
        &server.url,
        &cert,
        "POST",
        "/fhir/Patient",
        &[
            ("Content-Type", "application/fhir+json"),
            ("Authorization", &auth),
        ],
        bad.to_string().as_bytes(),
    );
    assert_eq!(s, 422);
    let (s, _) = https_get_as(
        &server.url,
        &cert,
        &format!("/fhir/Patient?identifier={nhs}"),
        Some(&gp),
    );
    assert_eq!(s, 200);
    let (s, _) = https_get_as(
        &server.url,
        &cert,
        "/fhir/Patient?family=Zebedee",
        Some("cdt_not-a-real-token"),
    );
    assert_eq!(s, 401);
    let reason = format!("patient {nhs} collapsed");
    let glass = serde_json::json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]});
    let (s, b) = https_request(
        &server.url,
        &cert,
        "POST",
        "/fhir/$break-glass",
        &[
            ("Content-Type", "application/fhir+json"),
            ("Authorization", &auth),
        ],
        glass.to_string().as_bytes(),
    );
    assert_eq!(s, 200, "{b}");
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    // The audit trail (the ledger's leaves) holds the session's events, and no secret or
    // identifier either.
    let leaves: Vec<Vec<u8>> = rusqlite::Connection::open(data.join("vault.db"))
        .unwrap()
        .prepare("SELECT data FROM ledger_leaves")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ledger = String::from_utf8_lossy(&leaves.concat()).into_owned();
    for kind in [
        "\"login\"",
        "\"credentials\"",
        "\"access\"",
        "\"break-glass\"",
    ] {
        assert!(ledger.contains(kind), "no {kind} event in the ledger");
    }
    for (what, secret) in [
        ("the admin's one-time password", admin_otp.as_str()),
        ("the admin's token", admin_token.as_str()),
        ("the GP's token", gp.as_str()),
        ("an NHS number", nhs),
        ("an invalid NHS number", "9434765918"),
        ("a surname", "Zebedee"),
        ("a rejected token", "cdt_not-a-real-token"),
        ("the new password", "another long unusual passphrase 9"),
    ] {
        assert!(!text.contains(secret), "{what} appears in the server log");
        assert!(
            !ledger.contains(secret),
            "{what} appears in the audit ledger"
        );
    }
}

/// The headers and body of a whole HTTP response text.
fn split_response(text: &str) -> (&str, &str) {
    let at = text.find("\r\n\r\n").unwrap();
    (&text[..at], &text[at + 4..])
}

#[test]
fn browsers_use_a_session_cookie_with_a_csrf_token_over_https() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let added = ok(caldicott()
        .args([
            "user", "add", "--org", "LOCAL", "--role", "gp", "bea", "--data",
        ])
        .arg(&data));
    let otp = added
        .lines()
        .find_map(|l| l.split("first sign-in): ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let strong = "another long unusual passphrase 9";
    let post = |path: &str, body: serde_json::Value| {
        https_request(
            &server.url,
            &cert,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let (s, b) = post(
        "/auth/password",
        serde_json::json!({"user": "bea", "password": otp, "new_password": strong}),
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = post(
        "/auth/mfa/enrol",
        serde_json::json!({"user": "bea", "password": strong}),
    );
    assert_eq!(s, 200, "{b}");
    let totp = caldicott_identity::Totp::new(
        caldicott_identity::TotpSecret::from_base32(
            serde_json::from_str::<serde_json::Value>(split_response(&b).1).unwrap()["secret"]
                .as_str()
                .unwrap(),
        )
        .unwrap(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (s, b) = post(
        "/auth/mfa/confirm",
        serde_json::json!({"user": "bea", "password": strong, "code": totp.code_at(now)}),
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = post(
        "/auth/session",
        serde_json::json!({"user": "bea", "password": strong, "code": totp.code_at(now + 30)}),
    );
    assert_eq!(s, 200, "{b}");
    let (head, body) = split_response(&b);
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie: "))
        .map(|l| &l["set-cookie: ".len()..])
        .unwrap_or_else(|| panic!("no Set-Cookie: {head}"));
    let id = cookie
        .strip_prefix("__Host-caldicott-session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    assert!(id.starts_with("cds_"), "{cookie}");
    assert_eq!(
        cookie,
        format!("__Host-caldicott-session={id}; Secure; HttpOnly; SameSite=Strict; Path=/")
    );
    let csrf = serde_json::from_str::<serde_json::Value>(body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie_header = format!("__Host-caldicott-session={id}");
    let with_cookie = |method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]| {
        let mut h = vec![("Cookie", cookie_header.as_str())];
        h.extend_from_slice(extra);
        https_request(&server.url, &cert, method, path, &h, body)
    };
    let (s, b) = with_cookie("GET", "/fhir/Patient?_summary=count", &[], b"");
    assert_eq!(s, 200, "{b}");
    let (s, b) = with_cookie("GET", "/auth/session", &[], b"");
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("\"user\":\"bea\""), "{b}");
    // Writing needs the CSRF token.
    let patient =
        serde_json::json!({"resourceType": "Patient", "name": [{"family": "Quill"}]}).to_string();
    let fhir = ("Content-Type", "application/fhir+json");
    let (s, b) = with_cookie("POST", "/fhir/Patient", &[fhir], patient.as_bytes());
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("CSRF") && b.contains("\"security\""), "{b}");
    let (s, b) = with_cookie(
        "POST",
        "/fhir/Patient",
        &[fhir, ("X-CSRF-Token", "not-the-token")],
        patient.as_bytes(),
    );
    assert_eq!(s, 403, "{b}");
    let (_, b) = with_cookie("GET", "/fhir/Patient?_summary=count", &[], b"");
    assert!(b.contains("\"total\":0"), "nothing written: {b}");
    let (s, b) = with_cookie(
        "POST",
        "/fhir/Patient",
        &[fhir, ("X-CSRF-Token", csrf.as_str())],
        patient.as_bytes(),
    );
    assert_eq!(s, 201, "{b}");
    // Logout ends it.
    let (s, b) = with_cookie(
        "POST",
        "/auth/logout",
        &[("X-CSRF-Token", csrf.as_str())],
        b"",
    );
    assert_eq!(s, 204, "{b}");
    assert!(b.to_ascii_lowercase().contains("max-age=0"), "{b}");
    let (s, b) = with_cookie("GET", "/fhir/Patient?_summary=count", &[], b"");
    assert_eq!(s, 401, "{b}");
}

#[test]
fn systems_get_tokens_with_client_credentials_over_https() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    let added = ok(caldicott()
        .args([
            "user", "add", "--org", "LOCAL", "--role", "system", "lab-feed", "--data",
        ])
        .arg(&data));
    let secret = added
        .lines()
        .find_map(|l| l.split("first sign-in): ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    let server = Server::start(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
    );
    let cert = data.join("tls/cert.pem");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (s, b) = https_request(
        &server.url,
        &cert,
        "POST",
        "/auth/token",
        &[form],
        format!(
            "grant_type=client_credentials&scope=system%2FPatient.read&client_id=lab-feed&client_secret={secret}"
        )
        .as_bytes(),
    );
    assert_eq!(s, 200, "{b}");
    let (head, body) = split_response(&b);
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "system/Patient.read");
    let token = v["access_token"].as_str().unwrap();
    let (s, b) = https_get_as(
        &server.url,
        &cert,
        "/fhir/Patient?_summary=count",
        Some(token),
    );
    assert_eq!(s, 200, "{b}");
    // A wrong secret: RFC 6749's invalid_client, with a Basic challenge.
    let (s, b) = https_request(
        &server.url,
        &cert,
        "POST",
        "/auth/token",
        &[form],
        b"grant_type=client_credentials&scope=system%2FPatient.read&client_id=lab-feed&client_secret=wrong",
    );
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("\"error\":\"invalid_client\""), "{b}");
    assert!(
        b.to_ascii_lowercase().contains("www-authenticate: basic"),
        "{b}"
    );
}
