//! The audit trail end to end, on SQLite and PostgreSQL: every kind of request records
//! exactly the expected events in the ledger, in the order they happened; a write and its
//! events are one transaction; the ledger's proofs, AuditEvent search and the patient
//! access report work over HTTP; and the trail verifies.

mod common;

use caldicott_api::audit::{AuditEvent, EventKind, Outcome};
use caldicott_policy::Role;
use common::{Db, Server, enc};
use serde_json::{Value, json};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// What the test compares of each event.
fn brief(e: &AuditEvent) -> String {
    format!(
        "{} {} {} {} {}{}",
        e.kind.name(),
        e.user,
        e.action,
        e.rtype.as_deref().unwrap_or("-"),
        if e.outcome == Outcome::Permit {
            "permit"
        } else {
            "deny"
        },
        if e.break_glass { " break-glass" } else { "" }
    )
}

fn new_events(s: &Server, seen: &mut usize) -> Vec<AuditEvent> {
    let all = s.events();
    let out = all[*seen..].to_vec();
    *seen = all.len();
    out
}

fn expect(s: &Server, seen: &mut usize, want: &[&str]) {
    let got: Vec<String> = new_events(s, seen).iter().map(brief).collect();
    assert_eq!(got, want, "audit events");
}

fn every_kind_of_request_records_exactly_its_events(s: &Server) {
    let mut seen = 0;
    // Create.
    let p = s
        .post_json(
            "/fhir/Patient",
            &json!({"resourceType": "Patient",
                "identifier": [{"system": NHS, "value": "9434765919"}],
                "name": [{"family": "Smith", "given": ["Ann"]}],
                "managingOrganization": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}}),
        )
        .expect(201)
        .json();
    let id = p["id"].as_str().unwrap().to_owned();
    expect(s, &mut seen, &["access gp create Patient permit"]);
    let obs = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "weight"}, "subject": {"reference": format!("Patient/{id}")}});
    s.post_json("/fhir/Observation", &obs).expect(201);
    s.post_json("/fhir/Observation", &obs).expect(201);
    expect(
        s,
        &mut seen,
        &[
            "access gp create Observation permit",
            "access gp create Observation permit",
        ],
    );
    // Read.
    s.get(&format!("/fhir/Patient/{id}")).expect(200);
    expect(s, &mut seen, &["access gp read Patient permit"]);
    // Search: one event per patient, whatever the number of their resources returned,
    // with the parameter names and never their values.
    s.get(&format!("/fhir/Observation?patient={id}&_count=10"))
        .expect(200);
    let ev = new_events(s, &mut seen);
    assert_eq!(
        ev.iter().map(brief).collect::<Vec<_>>(),
        ["access gp search Observation permit"]
    );
    assert_eq!(ev[0].query, ["_count", "patient"]);
    assert_eq!(ev[0].patients.len(), 1);
    assert!(
        !ev[0]
            .to_leaf()
            .windows(id.len())
            .any(|w| w == id.as_bytes())
    );
    // A search that finds nothing is still recorded.
    s.get(&format!(
        "/fhir/Patient?identifier={}",
        enc(&format!("{NHS}|9000000009"))
    ))
    .expect(200);
    let ev = new_events(s, &mut seen);
    assert_eq!(
        ev.iter().map(brief).collect::<Vec<_>>(),
        ["access gp search Patient permit"]
    );
    assert_eq!(ev[0].query, ["identifier"]);
    // Update: the record as it is (read) and as it will be (update).
    let mut p2 = p.clone();
    p2["name"][0]["given"] = json!(["Anne"]);
    s.put_json(&format!("/fhir/Patient/{id}"), &p2, &[])
        .expect(200);
    expect(
        s,
        &mut seen,
        &[
            "access gp read Patient permit",
            "access gp update Patient permit",
        ],
    );
    // History.
    s.get(&format!("/fhir/Patient/{id}/_history")).expect(200);
    let got: Vec<String> = new_events(s, &mut seen).iter().map(brief).collect();
    assert!(
        !got.is_empty() && got.iter().all(|g| g == "access gp history Patient permit"),
        "{got:?}"
    );
    // Refused: a GP of another organisation reads (denied, 404) and tries to write (403).
    let other = common::user_token(&s.directory, "gp-b", "B82002", Role::Gp, "user/*.*", None);
    s.request_as(
        Some(&other),
        "GET",
        &format!("/fhir/Patient/{id}"),
        &[],
        b"",
    )
    .expect(404);
    expect(s, &mut seen, &["access gp-b read Patient deny"]);
    // Break-glass: declared, then the read is permitted and flagged.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueString": "collapsed in clinic"}, {"name": "minutes", "valueInteger": 10}]});
    s.request_as(
        Some(&other),
        "POST",
        "/fhir/$break-glass",
        &[("Content-Type", "application/fhir+json")],
        params.to_string().as_bytes(),
    )
    .expect(200);
    let ev = new_events(s, &mut seen);
    assert_eq!(
        ev.iter().map(brief).collect::<Vec<_>>(),
        ["break-glass gp-b declare - permit"]
    );
    assert!(
        !ev[0].reason.contains("collapsed"),
        "the clinician's words stay out"
    );
    s.request_as(
        Some(&other),
        "GET",
        &format!("/fhir/Patient/{id}"),
        &[],
        b"",
    )
    .expect(200);
    expect(
        s,
        &mut seen,
        &["access gp-b read Patient permit break-glass"],
    );
    // Delete.
    let found = s
        .get(&format!("/fhir/Observation?patient={id}"))
        .expect(200)
        .json();
    new_events(s, &mut seen);
    let oid = found["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.request("DELETE", &format!("/fhir/Observation/{oid}"), &[], b"")
        .expect(200);
    expect(
        s,
        &mut seen,
        &[
            "access gp read Observation permit",
            "access gp delete Observation permit",
        ],
    );
    // A transaction: its events are written with it.
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": obs},
        {"request": {"method": "POST", "url": "Observation"}, "resource": obs}]});
    s.post_json("/fhir", &tx).expect(200);
    expect(
        s,
        &mut seen,
        &[
            "access gp create Observation permit",
            "access gp create Observation permit",
        ],
    );
    // A refused write records the refusal, and writes nothing.
    let desk = common::user_token(
        &s.directory,
        "desk",
        "A81001",
        Role::Receptionist,
        "user/*.*",
        None,
    );
    s.request_as(
        Some(&desk),
        "POST",
        "/fhir/Observation",
        &[("Content-Type", "application/fhir+json")],
        obs.to_string().as_bytes(),
    )
    .expect(403);
    expect(s, &mut seen, &["access desk create Observation deny"]);
    // Reading the audit trail is itself recorded, and needs the guardian.
    let cg = common::user_token(
        &s.directory,
        "cg",
        "A81001",
        Role::CaldicottGuardian,
        "user/*.read",
        None,
    );
    let bundle = s
        .request_as(
            Some(&cg),
            "GET",
            &format!("/fhir/AuditEvent?patient={id}&_count=100"),
            &[],
            b"",
        )
        .expect(200)
        .json();
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert!(resources.len() >= 10, "{}", resources.len());
    assert!(resources.iter().all(|r| r["resourceType"] == "AuditEvent"));
    assert!(
        resources
            .iter()
            .any(|r| r["agent"][0]["who"]["identifier"]["value"] == "gp-b")
    );
    s.request_as(Some(&cg), "DELETE", "/fhir/AuditEvent/1-0", &[], b"")
        .expect(405);
    s.request_as(Some(&desk), "GET", "/fhir/AuditEvent", &[], b"")
        .expect(403);
    let got: Vec<String> = new_events(s, &mut seen).iter().map(brief).collect();
    assert_eq!(
        got,
        [
            "audit-read cg search AuditEvent - permit",
            "audit-read cg search AuditEvent - permit",
            "audit-read desk search AuditEvent - deny",
        ]
    );
    // The patient access report: every access to this patient, with proofs that verify.
    let report = s
        .request_as(
            Some(&cg),
            "GET",
            &format!("/fhir/Patient/{id}/$access-report"),
            &[],
            b"",
        )
        .expect(200)
        .json();
    assert_eq!(report["resourceType"], "Bundle");
    let html = s
        .request_as(
            Some(&cg),
            "GET",
            &format!("/fhir/Patient/{id}/$access-report"),
            &[("Accept", "text/html")],
            b"",
        )
        .expect(200);
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let text = String::from_utf8_lossy(&html.body).to_string();
    assert!(
        text.contains("break-glass") || text.contains("Emergency"),
        "break-glass shown"
    );
    // The whole trail verifies.
    s.ledger.publish().unwrap();
    let check = |leaf: &[u8]| {
        AuditEvent::from_leaf(leaf)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    s.ledger.verify(&check, &|_| {}).unwrap().unwrap();
}

fn a_write_and_its_events_are_one_transaction(s: &Server) {
    // A conflicting update (If-Match on a stale version) writes nothing, and its events
    // say so: the write decision is recorded as not carried out.
    let p = s
        .post_json(
            "/fhir/Patient",
            &json!({"resourceType": "Patient", "name": [{"family": "Test"}],
                "managingOrganization": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}}),
        )
        .expect(201)
        .json();
    let id = p["id"].as_str().unwrap();
    let before = s.events().len();
    let size_before = s.ledger.head().unwrap().size;
    // Leaves written with the record: the ledger grows in the same commit as the data.
    assert_eq!(size_before as usize, before);
    let mut stale = p.clone();
    stale["name"][0]["family"] = json!("Other");
    s.put_json(
        &format!("/fhir/Patient/{id}"),
        &stale,
        &[("If-Match", "W/\"1\"")],
    )
    .expect(200);
    s.put_json(
        &format!("/fhir/Patient/{id}"),
        &stale,
        &[("If-Match", "W/\"1\"")],
    )
    .expect(412);
    let ev: Vec<AuditEvent> = s.events()[before..].to_vec();
    assert!(ev.iter().all(|e| e.kind == EventKind::Access));
    assert_eq!(
        ev.iter()
            .filter(|e| e.action == "update" && e.outcome == Outcome::Permit)
            .count(),
        1,
        "{:?}",
        ev.iter().map(brief).collect::<Vec<_>>()
    );
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Server::start(super::Db::sqlite())); } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                let Some(db) = super::Db::postgres() else { return };
                super::$name(&super::Server::start(db));
            } )*
        }
    };
}

on_both_backends!(
    every_kind_of_request_records_exactly_its_events,
    a_write_and_its_events_are_one_transaction,
);
