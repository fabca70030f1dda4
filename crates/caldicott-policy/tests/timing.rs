//! How long `decide` takes (it runs on every read). Ignored by default; run it optimised:
//!
//! ```text
//! cargo test -p caldicott-policy --release --test timing -- --ignored --nocapture
//! ```
//!
//! `cargo bench -p caldicott-policy --bench decide` measures the same scenarios with
//! criterion.

mod common;

use std::hint::black_box;
use std::time::Instant;

use caldicott_policy::*;
use common::*;

/// Typical requests: a GP's permitted read, a care worker denied a clinical type, a
/// receptionist without a relationship, a multi-role subject under break-glass at another
/// organisation, a system client's search over a resource with three patients and consents.
fn scenarios() -> Vec<(&'static str, Request)> {
    let gp = base_request();

    let mut care_worker = base_request();
    care_worker.subject.roles = vec![Role::CareWorker];
    care_worker.target.rtype = "DiagnosticReport".into();

    let mut receptionist = base_request();
    receptionist.subject.roles = vec![Role::Receptionist];
    receptionist.target.rtype = "Appointment".into();
    receptionist.facts.patients[0].registered_at_subject_org = false;

    let mut glass = base_request();
    glass.subject.roles = vec![Role::Receptionist, Role::RegisteredNurse];
    glass.subject.break_glass = Some(active_break_glass());
    glass.target.owner_org = OTHER_ORG.into();

    let mut system = base_request();
    system.subject.roles = vec![Role::System];
    system.subject.scopes = "system/*.read system/Observation.write".parse().unwrap();
    system.action = Action::Search;
    system.target.patients = (0..3).map(|i| format!("Patient/p{i}")).collect();
    system.facts.patients = (0..3)
        .map(|_| PatientFacts {
            consents: vec![
                ConsentRule::deny(Some(OTHER_ORG), None),
                ConsentRule::permit(None, Some(Purpose::DirectCare)),
            ],
            ..Default::default()
        })
        .collect();

    vec![
        ("gp read, registered (permit)", gp),
        ("care worker, clinical type (deny)", care_worker),
        ("receptionist, no relationship (deny)", receptionist),
        ("two roles, break-glass, other org (permit)", glass),
        ("system search, 3 patients with consents (permit)", system),
    ]
}

#[test]
#[ignore = "timing: run with --release -- --ignored --nocapture"]
fn decide_takes_well_under_a_microsecond() {
    const N: u32 = 2_000_000;
    let mut worst = 0.0f64;
    for (name, req) in scenarios() {
        // Warm up.
        for _ in 0..10_000 {
            black_box(decide(black_box(&req)));
        }
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..N {
                black_box(decide(black_box(&req)));
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(N));
        }
        println!("{name:<52} {best:>7.1} ns/decide");
        worst = worst.max(best);
    }
    if cfg!(debug_assertions) {
        println!("(debug build: no threshold; run with --release)");
    } else {
        assert!(
            worst < 500.0,
            "slowest scenario {worst:.1} ns, budget 500 ns"
        );
    }
}
