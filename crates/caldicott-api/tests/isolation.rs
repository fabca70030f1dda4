//! A property over sequences of requests: whatever two organisations' GPs do, in any
//! order (create, read, search with every result parameter, `_include`, `_revinclude`,
//! history at every level, `$everything`, conditional creates, paging), no response to one
//! of them ever contains a resource of the other organisation's patients, and a refused
//! read looks exactly like a missing one. Random sequences from fixed seeds, on SQLite
//! (the HTTP conformance suite covers PostgreSQL).

mod common;

use std::collections::HashSet;

use caldicott_policy::Role;
use common::{Db, Server, enc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

struct Actor {
    token: String,
    ods: &'static str,
    /// Ids of resources created for this organisation's patients.
    own: HashSet<String>,
    patients: Vec<String>,
}

fn patient(ods: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}], "birthDate": "1970-01-01",
        "managingOrganization": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}}})
}

fn observation(patient: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")}, "effectiveDateTime": "2024-01-01"})
}

/// Every resource id in a response body (resources and Bundle entries), and every
/// reference target.
fn ids_in(body: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    fn walk(v: &Value, out: &mut HashSet<String>) {
        match v {
            Value::Object(o) => {
                if o.contains_key("resourceType")
                    && let Some(id) = o.get("id").and_then(Value::as_str)
                {
                    out.insert(id.to_owned());
                }
                for c in o.values() {
                    walk(c, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        walk(&v, &mut out);
    }
    out
}

#[test]
fn no_sequence_of_requests_reveals_another_organisations_patients() {
    let s = Server::start(Db::sqlite());
    let mut actors = [
        Actor {
            token: s.token.clone(),
            ods: "A81001",
            own: HashSet::new(),
            patients: Vec::new(),
        },
        Actor {
            token: common::user_token(&s.directory, "gp-b", "B82002", Role::Gp, "user/*.*", None),
            ods: "B82002",
            own: HashSet::new(),
            patients: Vec::new(),
        },
    ];
    let families = ["Ash", "Ashton", "Birch", "Cedar"];
    let codes = ["29463-7", "8302-2", "8867-4"];
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..120 {
            let who = rng.random_range(0..2usize);
            let other = 1 - who;
            let (token, ods) = (actors[who].token.clone(), actors[who].ods);
            let req = |method: &str, path: &str, body: Option<&Value>| {
                let text = body.map(|b| b.to_string()).unwrap_or_default();
                let mut h = vec![];
                if body.is_some() {
                    h.push(("Content-Type", "application/fhir+json"));
                }
                s.request_as(Some(&token), method, path, &h, text.as_bytes())
            };
            let op = rng.random_range(0..10);
            let reply = match op {
                0 => {
                    let r = req(
                        "POST",
                        "/fhir/Patient",
                        Some(&patient(ods, families[rng.random_range(0..4)])),
                    );
                    if r.status == 201 {
                        let id = r.json()["id"].as_str().unwrap().to_owned();
                        actors[who].own.insert(id.clone());
                        actors[who].patients.push(id);
                    }
                    r
                }
                1 if !actors[who].patients.is_empty() => {
                    let p = actors[who].patients[rng.random_range(0..actors[who].patients.len())]
                        .clone();
                    let r = req(
                        "POST",
                        "/fhir/Observation",
                        Some(&observation(&p, codes[rng.random_range(0..3)])),
                    );
                    if r.status == 201 {
                        actors[who]
                            .own
                            .insert(r.json()["id"].as_str().unwrap().to_owned());
                    }
                    r
                }
                2 if !actors[other].own.is_empty() => {
                    // Read something of the other organisation's by id: must look missing.
                    let ids: Vec<&String> = actors[other].own.iter().collect();
                    let id = ids[rng.random_range(0..ids.len())].clone();
                    let rt = if actors[other].patients.contains(&id) {
                        "Patient"
                    } else {
                        "Observation"
                    };
                    let r = req("GET", &format!("/fhir/{rt}/{id}"), None);
                    assert_eq!(r.status, 404, "a refused read must look like a missing one");
                    r
                }
                3 => req(
                    "GET",
                    &format!(
                        "/fhir/Patient?family={}&_count=3",
                        families[rng.random_range(0..4)]
                    ),
                    None,
                ),
                4 => req(
                    "GET",
                    &format!(
                        "/fhir/Observation?code={}&_include=Observation:subject",
                        codes[rng.random_range(0..3)]
                    ),
                    None,
                ),
                5 => req(
                    "GET",
                    "/fhir/Patient?_revinclude=Observation:patient&_sort=-_lastUpdated",
                    None,
                ),
                6 => req("GET", "/fhir/_history?_count=50", None),
                7 if !actors[other].patients.is_empty() => {
                    let p = actors[other].patients[0].clone();
                    req("GET", &format!("/fhir/Patient/{p}/$everything"), None)
                }
                8 => req(
                    "GET",
                    &format!(
                        "/fhir/Observation?date=ge2020&_summary={}",
                        ["count", "true", "data"][rng.random_range(0..3)]
                    ),
                    None,
                ),
                _ => {
                    // A conditional create must not see the other organisation's match.
                    let fam = families[rng.random_range(0..4)];
                    let crit = format!("family={}", enc(fam));
                    let r = s.request_as(
                        Some(&token),
                        "POST",
                        "/fhir/Patient",
                        &[
                            ("Content-Type", "application/fhir+json"),
                            ("If-None-Exist", crit.as_str()),
                        ],
                        patient(ods, fam).to_string().as_bytes(),
                    );
                    if r.status == 201 {
                        let id = r.json()["id"].as_str().unwrap().to_owned();
                        actors[who].own.insert(id.clone());
                        actors[who].patients.push(id);
                    }
                    r
                }
            };
            let body = String::from_utf8_lossy(&reply.body).into_owned();
            let seen = ids_in(&body);
            let leaked: Vec<&String> = seen.intersection(&actors[other].own).collect();
            assert!(
                leaked.is_empty(),
                "seed {seed}, op {op}: {} saw {} of {}'s resources: {body}",
                actors[who].ods,
                leaked.len(),
                actors[other].ods
            );
            assert_ne!(reply.status, 500, "{body}");
        }
    }
    // The sequence did create data on both sides, and each side does see its own.
    for a in &actors {
        assert!(a.own.len() > 20, "{} created {}", a.ods, a.own.len());
    }
}
