//! Safe sharing end to end: synthetic patients in the store, an agreement proposed by a
//! researcher and approved by the Caldicott guardian, a release the recipient decrypts with
//! the real `rage` command line and reads; opted-out patients absent, no NHS number in any
//! file, the manifest verifying, the release in the ledger; a second release refused by the
//! frequency, and none after revocation.
//!
//! `rage` comes from `cargo xtask test` (`CALDICOTT_TEST_RAGE`); without it the test says so
//! and skips, unless `CALDICOTT_REQUIRE_RAGE=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{caldicott, fails, ok};
use serde_json::Value;

fn rage() -> Option<PathBuf> {
    match std::env::var_os("CALDICOTT_TEST_RAGE") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("CALDICOTT_REQUIRE_RAGE").as_deref() != Ok("1"),
                "CALDICOTT_REQUIRE_RAGE=1 but CALDICOTT_TEST_RAGE is not set"
            );
            eprintln!(
                "SKIPPED: set CALDICOTT_TEST_RAGE to the rage binary (cargo xtask test does)"
            );
            None
        }
    }
}

/// (patient id, NHS number, practice ODS code) of every synthetic patient.
fn patients(ndjson: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(ndjson).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["resourceType"] != "Patient" {
            continue;
        }
        let nhs = v["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned();
        let ods = v["generalPractitioner"][0]["identifier"]["value"]
            .as_str()
            .or_else(|| v["managingOrganization"]["identifier"]["value"].as_str())
            .unwrap()
            .to_owned();
        out.push((v["id"].as_str().unwrap().to_owned(), nhs, ods));
    }
    out
}

fn open_vault(data: &Path) -> std::sync::Arc<caldicott_vault::Vault> {
    use std::sync::Arc;
    let kek = Arc::new(caldicott_vault::LocalKek::from_file(&data.join("master.key")).unwrap());
    let backend =
        caldicott_vault::open_backend(&data.join("vault.db").display().to_string(), false).unwrap();
    Arc::new(caldicott_vault::Vault::open(backend, kek).unwrap())
}

/// The agreement's pseudonym key, as the release used it.
fn agreement_key(data: &Path, id: &str) -> caldicott_deid::PseudonymKey {
    let book = caldicott_share::Book::new(open_vault(data));
    let id = caldicott_share::AgreementId::parse(id).unwrap();
    caldicott_deid::PseudonymKey::from_bytes(&book.pseudonym_key(&id).unwrap()[..]).unwrap()
}

/// Every audit event in the deployment's ledger.
fn ledger_events(data: &Path) -> Vec<caldicott_audit::AuditEvent> {
    let vault = open_vault(data);
    let ledger = caldicott_vault::Ledger::open(vault, "ignored: the key exists").unwrap();
    let head = ledger.head().unwrap();
    ledger
        .leaves(head.epoch, 0, head.size)
        .unwrap()
        .iter()
        .map(|l| caldicott_audit::AuditEvent::from_leaf(&l.data).unwrap())
        .collect()
}

fn decrypt(rage: &Path, identity: &Path, file: &Path) -> Vec<u8> {
    let out = Command::new(rage)
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rage -d {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const PROFILE: &str = r#"
metric = "loss"
suppression_limit = 0.1

[privacy]
model = "k-anonymity"
k = 3

[[attribute]]
name = "nhs_number"
kind = "identifier"

[[attribute]]
name = "pid"
kind = "pseudonym"

[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = { csv = "sex.csv" }

[[attribute]]
name = "birth_date"
kind = "quasi-identifier"
hierarchy = { date = "yyyy-mm-dd" }

[[attribute]]
name = "postcode"
kind = "quasi-identifier"
hierarchy = "postcode"

[[attribute]]
name = "conditions"
kind = "sensitive"
"#;

fn terms(age_key: &str) -> String {
    format!(
        r#"
title = "Long-term conditions study"
purpose = "research"
frequency = "once"
expires = 2099-12-31
deid_profile_file = "profile.toml"

[recipient]
name = "University of Leeds"
age_key = "{age_key}"

[legal_basis]
kind = "section251"
reference = "CAG 21/CAG/0001"

[dataset]

[[dataset.column]]
name = "nhs_number"
path = "Patient.identifier.where(system = 'https://fhir.nhs.uk/Id/nhs-number').value"

[[dataset.column]]
name = "pid"
path = "Patient.identifier.where(system = 'https://fhir.nhs.uk/Id/nhs-number').value"

[[dataset.column]]
name = "sex"
path = "Patient.gender"

[[dataset.column]]
name = "birth_date"
path = "Patient.birthDate"

[[dataset.column]]
name = "postcode"
path = "Patient.address.postalCode"

[[dataset.column]]
name = "conditions"
from = "Condition"
path = "Condition.code.coding.code"
take = "all"
"#
    )
}

#[test]
fn agreement_to_decrypted_release() {
    let Some(rage) = rage() else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let ndjson = t.path().join("p.ndjson");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args(["synth", "--patients", "400", "--seed", "21", "--out"])
        .arg(&ndjson));
    ok(caldicott()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&ndjson));

    // The practice with most patients releases.
    let all = patients(&ndjson);
    let mut by_practice: BTreeMap<&str, Vec<&(String, String, String)>> = BTreeMap::new();
    for p in &all {
        by_practice.entry(p.2.as_str()).or_default().push(p);
    }
    let (ods, mine) = by_practice.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let ods = ods.to_string();
    assert!(mine.len() >= 40, "{} patients at {ods}", mine.len());
    let d = |c: &mut Command| {
        c.arg("--data").arg(&data);
    };
    let mut c = caldicott();
    c.args(["org", "add", "--ods", &ods, "--name", "Test practice"]);
    d(&mut c);
    ok(&mut c);
    for (name, role) in [
        ("rita", "researcher"),
        ("gina", "caldicott-guardian"),
        ("gary", "gp"),
    ] {
        let mut c = caldicott();
        c.args(["user", "add", "--org", &ods, "--role", role, name]);
        d(&mut c);
        ok(&mut c);
    }

    // Seven of the practice's patients opted out nationally, three more by Type 1.
    let national: Vec<&str> = mine.iter().take(7).map(|p| p.1.as_str()).collect();
    let type1: Vec<&str> = mine.iter().skip(7).take(3).map(|p| p.1.as_str()).collect();
    std::fs::write(t.path().join("national.txt"), national.join("\n")).unwrap();
    std::fs::write(t.path().join("type1.txt"), type1.join("\n")).unwrap();
    let mut c = caldicott();
    c.args(["optout", "import"])
        .arg(t.path().join("national.txt"));
    d(&mut c);
    ok(&mut c);
    let mut c = caldicott();
    c.args(["optout", "import", "--type1"])
        .arg(t.path().join("type1.txt"));
    d(&mut c);
    ok(&mut c);

    // The recipient's key pair, made by rage-keygen.
    let identity = t.path().join("recipient.key");
    let keygen = rage.with_file_name("rage-keygen");
    let out = Command::new(&keygen)
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_text = std::fs::read_to_string(&identity).unwrap();
    let age_key = key_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .trim()
        .to_owned();

    let share = t.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("profile.toml"), PROFILE).unwrap();
    std::fs::write(
        share.join("sex.csv"),
        "male;*\nfemale;*\nother;*\nunknown;*\n",
    )
    .unwrap();
    std::fs::write(share.join("terms.toml"), terms(&age_key)).unwrap();

    // Proposed by the researcher.
    let mut c = caldicott();
    c.args(["share", "agreement", "propose", "--by", "rita", "--file"])
        .arg(share.join("terms.toml"));
    d(&mut c);
    let id = ok(&mut c).trim().to_owned();
    assert!(id.starts_with("DSA-"), "{id}");

    let release = |by: &str, out: &Path| {
        let mut c = caldicott();
        c.args(["share", "release", "--agreement", &id, "--by", by, "--out"])
            .arg(out)
            .arg("--hierarchies")
            .arg(&share);
        d(&mut c);
        c
    };
    // Not approved yet: no release, and nothing written.
    let e = fails(&mut release("rita", &t.path().join("early")));
    assert!(e.contains("not approved"), "{e}");
    assert!(!t.path().join("early").exists());

    // Two people: the researcher cannot approve; a GP cannot; the guardian can.
    for who in ["rita", "gary"] {
        let mut c = caldicott();
        c.args(["share", "agreement", "approve", "--id", &id, "--by", who]);
        d(&mut c);
        let e = fails(&mut c);
        assert!(e.contains("only a Caldicott guardian"), "{e}");
    }
    let mut c = caldicott();
    c.args(["share", "agreement", "approve", "--id", &id, "--by", "gina"]);
    d(&mut c);
    ok(&mut c);

    let out_dir = t.path().join("release1");
    ok(&mut release("rita", &out_dir));

    // The manifest verifies against the deployment's release key.
    let mut c = caldicott();
    c.args(["share", "key"]);
    d(&mut c);
    let vkey = ok(&mut c).trim().to_owned();
    ok(caldicott()
        .args(["share", "verify", "--key", &vkey, "--dir"])
        .arg(&out_dir));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    let cohort = &manifest["cohort"];
    assert_eq!(cohort["patients_selected"], mine.len() as u64, "{manifest}");
    assert_eq!(cohort["patients_removed_opt_out"], 10, "{manifest}");

    // The recipient decrypts every file with rage; nothing in them is an NHS number.
    let every_nhs: BTreeSet<&str> = all.iter().map(|p| p.1.as_str()).collect();
    let mut csv_text = String::new();
    for f in manifest["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let plain = decrypt(&rage, &identity, &out_dir.join(name));
        let text = String::from_utf8_lossy(&plain);
        for n in &every_nhs {
            assert!(!text.contains(n), "{name} holds an NHS number");
        }
        if name.ends_with(".csv.age") {
            csv_text = text.into_owned();
        }
        if name.ends_with(".ndjson.age") {
            let lines = String::from_utf8(plain).unwrap();
            let n = lines.lines().count() as u64;
            assert_eq!(n, mine.len() as u64 - 10, "one resource per released row");
            for l in lines.lines() {
                let v: Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["resourceType"], "Basic");
            }
        }
    }
    let mut rows = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "nhs_number",
            "pid",
            "sex",
            "birth_date",
            "postcode",
            "conditions"
        ]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len(),
        mine.len() - 10,
        "the opted-out patients are absent"
    );
    // k = 3 holds on the released quasi-identifiers (suppressed rows are all `*`).
    let mut classes: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in &rows {
        assert_eq!(&r[0], "*", "the NHS number column is removed");
        *classes
            .entry((r[2].to_owned(), r[3].to_owned(), r[4].to_owned()))
            .or_default() += 1;
    }
    // Pseudonyms under the agreement's key: every released patient has theirs, the
    // opted-out ones are absent, and none collides.
    let key = agreement_key(&data, &id);
    let released: BTreeSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(released.len(), rows.len());
    for (i, p) in mine.iter().enumerate() {
        let pid = key.pseudonym(&p.1, 16);
        assert_eq!(released.contains(pid.as_str()), i >= 10, "patient {i}");
    }
    let suppressed = classes
        .remove(&("*".to_owned(), "*".to_owned(), "*".to_owned()))
        .unwrap_or(0);
    assert!(suppressed * 10 <= rows.len(), "at most 10% suppressed");
    assert!(classes.len() > 1, "something is left to study");
    for (class, n) in &classes {
        assert!(*n >= 3, "class {class:?} has {n} rows");
    }

    // Released once: the frequency refuses a second release.
    let e = fails(&mut release("rita", &t.path().join("release2")));
    assert!(e.contains("allows one release"), "{e}");

    // The release is in the agreement's history and in the ledger, which verifies.
    let mut c = caldicott();
    c.args(["share", "agreement", "show", "--id", &id]);
    d(&mut c);
    let shown: Value = serde_json::from_str(&ok(&mut c)).unwrap();
    assert_eq!(shown["releases"].as_array().unwrap().len(), 1);
    assert_eq!(shown["releases"][0]["opted_out"], 10);
    let mut c = caldicott();
    c.args(["ledger", "verify"]);
    d(&mut c);
    ok(&mut c);
    let events = ledger_events(&data);
    let actions: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.id.as_deref() == Some(id.as_str()))
        .map(|e| (e.action.as_str(), e.user.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("agreement-propose", "rita"),
            ("agreement-approve", "gina"),
            ("share-release", "rita")
        ]
    );
    let released = events.iter().find(|e| e.action == "share-release").unwrap();
    assert_eq!(released.purpose, "research");
    assert!(
        released.reason.contains("10 patients removed for opt-outs"),
        "{}",
        released.reason
    );

    // An agreement past its expiry day cannot release, approved or not.
    std::fs::write(
        share.join("expired.toml"),
        terms(&age_key).replace("expires = 2099-12-31", "expires = 2020-01-31"),
    )
    .unwrap();
    let mut c = caldicott();
    c.args(["share", "agreement", "propose", "--by", "rita", "--file"])
        .arg(share.join("expired.toml"));
    d(&mut c);
    let old = ok(&mut c).trim().to_owned();
    let mut c = caldicott();
    c.args([
        "share",
        "agreement",
        "approve",
        "--id",
        &old,
        "--by",
        "gina",
    ]);
    d(&mut c);
    ok(&mut c);
    let mut c = caldicott();
    c.args([
        "share",
        "release",
        "--agreement",
        &old,
        "--by",
        "rita",
        "--out",
    ])
    .arg(t.path().join("expired-release"))
    .arg("--hierarchies")
    .arg(&share);
    d(&mut c);
    let e = fails(&mut c);
    assert!(e.contains("expired on 2020-01-31"), "{e}");
    assert!(!t.path().join("expired-release").exists());

    // Revoked: refused, whatever the frequency.
    let mut c = caldicott();
    c.args([
        "share",
        "agreement",
        "revoke",
        "--id",
        &id,
        "--by",
        "gina",
        "--reason",
        "study closed",
    ]);
    d(&mut c);
    ok(&mut c);
    let e = fails(&mut release("gina", &t.path().join("release3")));
    assert!(e.contains("revoked"), "{e}");
    assert!(!t.path().join("release3").exists());
}

/// `share aggregate`: small counts suppressed, their complements too, the rest rounded;
/// a malformed table names the cell and writes nothing.
#[test]
fn aggregate_counts_are_protected() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("counts.csv");
    std::fs::write(
        &input,
        "practice,diabetes,asthma,copd\nA81001,120,3,40\nA81002,87,56,12\nA81003,64,31,9\n",
    )
    .unwrap();
    let out = t.path().join("out.csv");
    ok(caldicott()
        .args(["share", "aggregate", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["practice", "diabetes", "asthma", "copd", "Total"]);
    // The 3 is suppressed, and so is at least one more cell in its row and in its column.
    assert_eq!(rows[1][2], "[REDACTED]", "{text}");
    let in_row = rows[1][1..4].iter().filter(|v| **v == "[REDACTED]").count();
    let in_col = rows[1..4].iter().filter(|r| r[2] == "[REDACTED]").count();
    assert!(in_row >= 2 || rows[1][4] == "[REDACTED]", "{text}");
    assert!(in_col >= 2, "{text}");
    // Every published count is a multiple of 5.
    for r in &rows[1..] {
        for v in &r[1..] {
            if *v != "[REDACTED]" {
                assert_eq!(v.parse::<u64>().unwrap() % 5, 0, "{text}");
            }
        }
    }
    let bad = t.path().join("bad.csv");
    std::fs::write(&bad, "practice,diabetes\nA81001,12x\n").unwrap();
    let e = fails(
        caldicott()
            .args(["share", "aggregate", "--input"])
            .arg(&bad)
            .arg("--out")
            .arg(t.path().join("bad-out.csv")),
    );
    assert!(e.contains("data row 1, column `diabetes`"), "{e}");
    assert!(!e.contains("12x"), "the value is not echoed: {e}");
    assert!(!t.path().join("bad-out.csv").exists());
}
