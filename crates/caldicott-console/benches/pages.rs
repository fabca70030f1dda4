//! Server-side render time of the console's main pages with 10,000 synthetic patients
//! loaded: `cargo bench -p caldicott-console --bench pages`.
//!
//! Set-up: a SQLite vault in a temporary directory, the real directory, the FHIR store with
//! its search index and the real audit ledger (every page view is recorded in it, as in
//! `caldicott serve`). The patients come from `caldicott-synth` (the same resources as its
//! NDJSON output) and are loaded as `caldicott import` loads them: `Store::prepare` (the
//! API's validation, owner and index terms) and `Vault::commit_audited` in batches of
//! 5,000, with one audit entry per batch. People sign in through the real pages (the test
//! harness in `tests/common`).
//!
//! Measured: each page requested in process (`tower::ServiceExt::oneshot` on the router,
//! as the tests do), from the request to the last byte of the body; `PAGES_ITERATIONS`
//! (default 50) timed requests after 3 warm-up ones. Printed: median, p95 and maximum per
//! page, and the first request's time (the home page's unusual-access count is made then
//! and reused for a minute), as a Markdown table. `PAGES_PATIENTS` changes the number of
//! patients.
//!
//! A plain timing harness rather than criterion: the claim to check is a per-request
//! bound (median and p95 under 100 ms), not a comparison between runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use caldicott_api::audit::{AuditSink, LedgerSink};
use caldicott_api::{ApiConfig, Store};
use caldicott_console::ConsoleState;
use caldicott_core::{NHS_NUMBER_SYSTEM, OdsCode, ResourceId, ResourceType, VersionId};
use caldicott_policy::Role;
use caldicott_vault::{Ledger, Write, now_micros};
use common::{App, Reply};
use serde_json::Value;

const BATCH: usize = 5_000;

/// A page's name, its request, and its sorted timings (ms) with the last status.
type Row = (&'static str, &'static str, (Vec<f64>, u16, f64));

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The import's audit entry for a batch.
fn batch_leaf(org: &str, n: usize) -> caldicott_vault::LedgerLeaf {
    let event = caldicott_api::audit::security_event(
        caldicott_audit::EventKind::Admin,
        "import",
        "bench",
        org,
        "sysadmin",
        &caldicott_api::audit::Origin::default(),
        caldicott_audit::Outcome::Permit,
        &format!("imported {n} resources"),
        now_micros(),
    );
    caldicott_api::audit::leaf_of(&event)
}

/// What the load left for the pages: a practice and one of its patients.
struct Loaded {
    practice: String,
    patient_id: String,
    nhs_number: String,
    resources: usize,
    seconds: f64,
}

fn load(app: &App, patients: usize) -> Loaded {
    let started = Instant::now();
    let generator = caldicott_synth::Generator::new(20_261_129);
    let store: &Store = &app.store;
    let mut owners: HashMap<String, OdsCode> = HashMap::new();
    let mut batch: Vec<Write> = Vec::with_capacity(BATCH);
    let mut resources = 0usize;
    let flush = |batch: &mut Vec<Write>| {
        if batch.is_empty() {
            return;
        }
        let org = batch[0].org.to_string();
        store
            .vault()
            .commit_audited(
                batch,
                batch.len(),
                now_micros(),
                &[batch_leaf(&org, batch.len())],
            )
            .expect("a batch is written");
        batch.clear();
    };
    let mut prepare = |json: &str, owners: &mut HashMap<String, OdsCode>| -> Write {
        let v: Value = serde_json::from_str(json).unwrap();
        let rtype = ResourceType::new(v["resourceType"].as_str().unwrap()).unwrap();
        let id = ResourceId::new(v["id"].as_str().unwrap()).unwrap();
        let p = store
            .prepare(&rtype, &id, v, VersionId::FIRST, now_micros(), None, owners)
            .unwrap_or_else(|e| panic!("{rtype}/{id} refused: {e}"));
        if matches!(rtype.as_str(), "Organization" | "Patient") {
            owners.insert(format!("{rtype}/{id}"), p.write.org.clone());
        }
        resources += 1;
        p.write
    };
    // The practices are organisations of the directory too (their data keys).
    let mut practice = String::new();
    for r in generator.organizations() {
        let v: Value = serde_json::from_str(&r.json).unwrap();
        let ods = v["identifier"][0]["value"].as_str().unwrap().to_owned();
        let code = OdsCode::parse(&ods).unwrap();
        if app.directory.org(&ods).unwrap().is_none() {
            app.directory
                .add_org(&code, v["name"].as_str().unwrap_or("Practice"))
                .unwrap();
        }
        if practice.is_empty() {
            practice = ods;
        }
        batch.push(prepare(&r.json, &mut owners));
    }
    flush(&mut batch);
    let mut patient: Option<(String, String)> = None;
    for i in 0..patients as u64 {
        for r in generator.patient(i) {
            let w = prepare(&r.json, &mut owners);
            if patient.is_none() && r.resource_type == "Patient" && w.org.as_str() == practice {
                let v: Value = serde_json::from_str(&r.json).unwrap();
                let nhs = v["identifier"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["system"] == NHS_NUMBER_SYSTEM)
                    .and_then(|i| i["value"].as_str())
                    .unwrap()
                    .to_owned();
                patient = Some((r.id.clone(), nhs));
            }
            // Batches of 5,000 whatever their organisations, as `caldicott import` does.
            if batch.len() == BATCH {
                flush(&mut batch);
            }
            batch.push(w);
        }
    }
    flush(&mut batch);
    let (patient_id, nhs_number) = patient.expect("a patient of the first practice");
    Loaded {
        practice,
        patient_id,
        nhs_number,
        resources,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Milliseconds of each timed request (sorted), the last status, and the milliseconds of
/// the very first request (caches cold): 3 warm-up requests, then `$n` timed ones.
macro_rules! time {
    ($n:expr, $request:expr) => {{
        let t = Instant::now();
        let mut status = $request.await.status;
        let first = t.elapsed().as_secs_f64() * 1000.0;
        for _ in 0..2 {
            status = $request.await.status;
        }
        let mut ms: Vec<f64> = Vec::with_capacity($n);
        for _ in 0..$n {
            let t = Instant::now();
            let r: Reply = $request.await;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            status = r.status;
        }
        ms.sort_by(f64::total_cmp);
        (ms, status, first)
    }};
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let patients = env_usize("PAGES_PATIENTS", 10_000);
    let iterations = env_usize("PAGES_ITERATIONS", 50).max(1);
    let mut app = App::new();

    // The console over the real ledger, as `caldicott serve` runs it.
    let ledger = Ledger::open(Arc::clone(&app.vault), "caldicott.bench/ledger").unwrap();
    let config = ApiConfig {
        public_base: None,
        scheme: "https",
        max_body_bytes: 1 << 20,
    };
    let console = ConsoleState::new(
        Arc::clone(&app.vault),
        Arc::clone(&app.store),
        Arc::clone(&app.directory),
        Arc::new(LedgerSink(Arc::clone(&ledger))) as Arc<dyn AuditSink>,
        Some(Arc::clone(&ledger)),
        &config,
    );
    app.router = caldicott_console::router(Arc::new(console));

    println!("loading {patients} synthetic patients ...");
    let loaded = load(&app, patients);
    println!(
        "loaded {} resources ({patients} patients) in {:.1} s",
        loaded.resources, loaded.seconds
    );
    // A week of access to audit: `PAGES_AUDIT_EVENTS` (default 20,000) reads of the
    // patients by staff of the first practice, in the ledger as the API records them.
    let audit_events = env_usize("PAGES_AUDIT_EVENTS", 20_000);
    let started = Instant::now();
    let mut leaves = Vec::with_capacity(1_000);
    for i in 0..audit_events {
        let mut e = caldicott_api::audit::security_event(
            caldicott_audit::EventKind::Access,
            "read",
            &format!("staff{:02}", i % 40),
            &loaded.practice,
            "gp",
            &caldicott_api::audit::Origin::default(),
            caldicott_audit::Outcome::Permit,
            "relationship",
            now_micros() - ((audit_events - i) as i64) * 20_000_000,
        );
        e.rtype = Some("Patient".into());
        e.patients = vec![format!("pseudonym-{}", i % patients.max(1))];
        e.purpose = "direct-care".into();
        leaves.push(caldicott_api::audit::leaf_of(&e));
        if leaves.len() == 1_000 {
            ledger.append(std::mem::take(&mut leaves)).unwrap();
        }
    }
    if !leaves.is_empty() {
        ledger.append(leaves).unwrap();
    }
    println!(
        "appended {audit_events} access events to the ledger in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ledger.publish().unwrap();

    let org = loaded.practice.as_str();
    let mut admin = app.signed_in("admin", org, Role::Sysadmin).await;
    let mut gp = app.signed_in("dr.bench", org, Role::Gp).await;
    let mut guardian = app
        .signed_in_as("guardian", org, Role::CaldicottGuardian, None, "audit")
        .await;
    // Some staff and break-glass declarations to list.
    for i in 0..40 {
        let role = [
            Role::Gp,
            Role::CareWorker,
            Role::RegisteredNurse,
            Role::Receptionist,
        ][i % 4];
        app.add_user(&format!("staff{i:02}"), org, role, None);
    }
    for i in 0..10 {
        app.directory
            .declare_break_glass(
                &format!("staff{i:02}"),
                "collapsed in clinic",
                30,
                now_micros(),
            )
            .unwrap();
    }

    let record = format!("/patients/{}", loaded.patient_id);
    let history = format!("/patients/{}/access", loaded.patient_id);
    let nhs = loaded.nhs_number.clone();
    let app = &app;

    let mut rows: Vec<Row> = Vec::new();
    rows.push((
        "Home (sysadmin: full posture)",
        "GET /",
        time!(iterations, admin.get(app, "/")),
    ));
    rows.push(("Home (GP)", "GET /", time!(iterations, gp.get(app, "/"))));
    rows.push((
        "Patient search by NHS number (GP)",
        "POST /patients/search",
        time!(
            iterations,
            gp.post(
                app,
                "/patients/search",
                &[("by", "nhs"), ("nhs_number", &nhs)]
            )
        ),
    ));
    rows.push((
        "Patient record (GP)",
        "GET /patients/{id}",
        time!(iterations, gp.get(app, &record)),
    ));
    rows.push((
        "Access history (guardian)",
        "GET /patients/{id}/access",
        time!(iterations, guardian.get(app, &history)),
    ));
    rows.push((
        "Administration: users (sysadmin)",
        "GET /administration",
        time!(iterations, admin.get(app, "/administration")),
    ));
    rows.push((
        "Guardian: break-glass queue",
        "GET /guardian/break-glass",
        time!(iterations, guardian.get(app, "/guardian/break-glass")),
    ));
    rows.push((
        "Guardian: overview",
        "GET /guardian",
        time!(iterations, guardian.get(app, "/guardian")),
    ));

    println!();
    println!(
        "{patients} patients, {} resources; ledger {} entries at the end; {iterations} timed requests per page",
        loaded.resources,
        ledger.head().map(|h| h.size).unwrap_or(0)
    );
    println!();
    println!("| page | request | status | median ms | p95 ms | max ms | first request ms |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for (name, req, (ms, status, first)) in &rows {
        println!(
            "| {name} | `{req}` | {status} | {:.2} | {:.2} | {:.2} | {first:.2} |",
            quantile(ms, 0.5),
            quantile(ms, 0.95),
            ms.last().copied().unwrap_or(0.0)
        );
    }
}
