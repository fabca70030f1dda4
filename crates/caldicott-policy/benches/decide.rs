//! `decide` per request (criterion; run in release):
//!
//! ```text
//! cargo bench -p caldicott-policy --bench decide
//! ```

use std::hint::black_box;

use caldicott_policy::*;
use criterion::{Criterion, criterion_group, criterion_main};

const OWN: &str = "A81001";
const OTHER: &str = "B82002";
const NOW: i64 = 1_750_000_000_000_000;

fn request(role: Role, rtype: &str, registered: bool) -> Request {
    Request {
        subject: Subject {
            user: "usr_bench".into(),
            org: OWN.into(),
            roles: vec![role],
            purpose: Purpose::DirectCare,
            scopes: "user/*.read user/Observation.write".parse().unwrap(),
            break_glass: None,
        },
        action: Action::Read,
        target: Target {
            rtype: rtype.into(),
            owner_org: OWN.into(),
            patients: vec!["Patient/p1".into()],
        },
        facts: Facts {
            patients: vec![PatientFacts {
                registered_at_subject_org: registered,
                ..Default::default()
            }],
        },
        now_us: NOW,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");

    let gp = request(Role::Gp, "Observation", true);
    g.bench_function("gp-read-permit", |b| b.iter(|| decide(black_box(&gp))));

    let cw = request(Role::CareWorker, "DiagnosticReport", true);
    g.bench_function("care-worker-clinical-deny", |b| {
        b.iter(|| decide(black_box(&cw)))
    });

    let mut glass = request(Role::RegisteredNurse, "Observation", false);
    glass.subject.roles.insert(0, Role::Receptionist);
    glass.target.owner_org = OTHER.into();
    glass.subject.break_glass = Some(BreakGlass {
        reason: "collapsed in clinic".into(),
        started_at_us: NOW - 1,
        expires_at_us: NOW + 1_000_000,
    });
    g.bench_function("two-roles-break-glass-permit", |b| {
        b.iter(|| decide(black_box(&glass)))
    });

    let mut system = request(Role::System, "Observation", false);
    system.subject.scopes = "system/*.read".parse().unwrap();
    system.action = Action::Search;
    system.target.patients = (0..3).map(|i| format!("Patient/p{i}")).collect();
    system.facts.patients = (0..3)
        .map(|_| PatientFacts {
            consents: vec![
                ConsentRule::deny(Some(OTHER), None),
                ConsentRule::permit(None, Some(Purpose::DirectCare)),
            ],
            ..Default::default()
        })
        .collect();
    g.bench_function("system-search-3-patients", |b| {
        b.iter(|| decide(black_box(&system)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
