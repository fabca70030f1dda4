//! The FHIR API conformance suite: every interaction and search type, driven through the
//! real HTTP server, on SQLite and on PostgreSQL (skipped, visibly, when no test
//! PostgreSQL is configured; `cargo xtask test` always provides one).

mod common;

use caldicott_api::audit::Outcome;
use common::{Db, Server, enc};
use serde_json::{Value, json};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";

fn patient(nhs: &str, family: &str, given: &str, birth: &str, gender: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": NHS, "value": nhs }],
        "name": [{ "family": family, "given": [given] }],
        "gender": gender,
        "birthDate": birth,
        "managingOrganization": { "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001" } }
    })
}

fn observation(patient_ref: &str, code: &str, value: &str, when: &str) -> String {
    // Written as text so the number keeps its exact form.
    format!(
        r#"{{"resourceType":"Observation","status":"final","code":{{"coding":[{{"system":"{LOINC}","code":"{code}"}}]}},"subject":{{"reference":"{patient_ref}"}},"effectiveDateTime":"{when}","valueQuantity":{{"value":{value},"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}}}"#
    )
}

fn create(s: &Server, v: &Value) -> Value {
    s.post_json(&format!("/fhir/{}", v["resourceType"].as_str().unwrap()), v)
        .expect(201)
        .json()
}

fn create_raw(s: &Server, rtype: &str, text: &str) -> Value {
    s.request(
        "POST",
        &format!("/fhir/{rtype}"),
        &[("Content-Type", "application/fhir+json")],
        text.as_bytes(),
    )
    .expect(201)
    .json()
}

fn match_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == "match" || e["search"].is_null())
                .map(|e| e["resource"]["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn count(s: &Server, rtype: &str) -> u64 {
    s.get(&format!("/fhir/{rtype}?_summary=count"))
        .expect(200)
        .json()["total"]
        .as_u64()
        .unwrap()
}

fn read_write_version_and_delete(s: &Server) {
    let created = s
        .post_json(
            "/fhir/Patient",
            &patient("9434765919", "Smith", "Ann", "1970-04-01", "female"),
        )
        .expect(201);
    let loc = created.header("location").unwrap().to_owned();
    assert!(
        loc.contains("/fhir/Patient/") && loc.ends_with("/_history/1"),
        "{loc}"
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    assert!(created.header("last-modified").is_some());
    let p = created.json();
    let id = p["id"].as_str().unwrap().to_owned();
    assert_eq!(p["meta"]["versionId"], "1");
    // Read gives back exactly the stored bytes.
    let read = s.get(&format!("/fhir/Patient/{id}")).expect(200);
    assert_eq!(
        read.header("content-type"),
        Some("application/fhir+json; charset=utf-8")
    );
    assert_eq!(read.body, created.body);
    // Conditional read.
    s.request(
        "GET",
        &format!("/fhir/Patient/{id}"),
        &[("If-None-Match", "W/\"1\"")],
        b"",
    )
    .expect(304);
    // Update with the right version, then a stale one.
    let mut v2 = p.clone();
    v2["gender"] = json!("other");
    let up = s
        .put_json(
            &format!("/fhir/Patient/{id}"),
            &v2,
            &[("If-Match", "W/\"1\"")],
        )
        .expect(200)
        .json();
    assert_eq!(up["meta"]["versionId"], "2");
    assert_eq!(up["gender"], "other");
    s.put_json(
        &format!("/fhir/Patient/{id}"),
        &v2,
        &[("If-Match", "W/\"1\"")],
    )
    .expect(412)
    .outcome();
    // Update-as-create with a client id.
    let mut mine = patient("9000000009", "Jones", "Bob", "1980", "male");
    mine["id"] = json!("client-chosen-1");
    s.put_json("/fhir/Patient/client-chosen-1", &mine, &[])
        .expect(201);
    // vread of both versions, then delete.
    assert_eq!(
        s.get(&format!("/fhir/Patient/{id}/_history/1"))
            .expect(200)
            .json()["gender"],
        "female"
    );
    assert_eq!(
        s.get(&format!("/fhir/Patient/{id}/_history/2"))
            .expect(200)
            .json()["gender"],
        "other"
    );
    s.get(&format!("/fhir/Patient/{id}/_history/9"))
        .expect(404)
        .outcome();
    s.request("DELETE", &format!("/fhir/Patient/{id}"), &[], b"")
        .expect(200);
    s.get(&format!("/fhir/Patient/{id}")).expect(410).outcome();
    s.get(&format!("/fhir/Patient/{id}/_history/1")).expect(200);
    s.get("/fhir/Patient/never-was").expect(404).outcome();
    s.request("DELETE", "/fhir/Patient/never-was", &[], b"")
        .expect(404);
    let h = s
        .get(&format!("/fhir/Patient/{id}/_history"))
        .expect(200)
        .json();
    assert_eq!(h["type"], "history");
    let methods: Vec<&str> = h["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "POST"]);
    // Re-creating a deleted resource by PUT is a create (201), version 4.
    let mut again = p.clone();
    again.as_object_mut().unwrap().remove("meta");
    let back = s
        .put_json(&format!("/fhir/Patient/{id}"), &again, &[])
        .expect(201)
        .json();
    assert_eq!(back["meta"]["versionId"], "4");
}

fn concurrent_updates_all_land_as_versions(s: &Server) {
    let p = create(s, &patient("9434765919", "Smith", "Ann", "1970", "female"));
    let id = p["id"].as_str().unwrap().to_owned();
    std::thread::scope(|scope| {
        for t in 0..6 {
            let (p, id) = (p.clone(), id.clone());
            scope.spawn(move || {
                for i in 0..10 {
                    let mut v = p.clone();
                    v["birthDate"] = json!(format!("19{:02}", 10 + t * 10 + i));
                    // Without If-Match the last writer wins: every update is stored.
                    s.put_json(&format!("/fhir/Patient/{id}"), &v, &[])
                        .expect(200);
                }
            });
        }
    });
    let h = s
        .get(&format!("/fhir/Patient/{id}/_history?_count=100"))
        .expect(200)
        .json();
    assert_eq!(h["total"], 61);
    let latest = s.get(&format!("/fhir/Patient/{id}")).expect(200).json();
    assert_eq!(latest["meta"]["versionId"], "61");
}

fn a_huge_declared_body_is_refused_at_once(s: &Server) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        c,
        "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 104857600\r\n\r\n{{"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("OperationOutcome"), "{text}");
}

fn numbers_and_key_order_survive(s: &Server) {
    let p = create(
        s,
        &patient("9434765919", "Smith", "Ann", "1970-04-01", "female"),
    );
    let text = observation(
        &format!("Patient/{}", p["id"].as_str().unwrap()),
        "29463-7",
        "72.50",
        "2024-01-02T10:00:00Z",
    );
    let o = create_raw(s, "Observation", &text);
    let read = s
        .get(&format!("/fhir/Observation/{}", o["id"].as_str().unwrap()))
        .expect(200);
    let body = String::from_utf8(read.body).unwrap();
    assert!(body.contains(r#""value":72.50"#), "{body}");
    assert!(
        body.find("\"status\"").unwrap() < body.find("\"code\"").unwrap(),
        "key order kept"
    );
}

fn bad_input_gets_an_operation_outcome(s: &Server) {
    let ok = patient("9434765919", "Smith", "Ann", "1970", "female").to_string();
    let post =
        |ct: &str, body: &[u8]| s.request("POST", "/fhir/Patient", &[("Content-Type", ct)], body);
    post("text/plain", ok.as_bytes()).expect(415).outcome();
    post("application/fhir+json", b"{not json")
        .expect(400)
        .outcome();
    post(
        "application/fhir+json",
        br#"{"resourceType":"Patient","gender":"male","gender":"female"}"#,
    )
    .expect(400)
    .outcome();
    post(
        "application/fhir+json",
        b"{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}",
    )
    .expect(400)
    .outcome();
    let deep = format!(
        "{{\"resourceType\":\"Patient\",\"extension\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    post("application/fhir+json", deep.as_bytes())
        .expect(400)
        .outcome();
    let o = post(
        "application/fhir+json",
        br#"{"resourceType":"Observation","status":"final","code":{}}"#,
    )
    .expect(400)
    .outcome();
    assert!(
        o["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Patient"),
        "{o}"
    );
    let o = post(
        "application/fhir+json",
        br#"{"resourceType":"Patient","colour":"blue"}"#,
    )
    .expect(400)
    .outcome();
    assert!(
        o["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{o}"
    );
    let o = post(
        "application/fhir+json",
        br#"{"resourceType":"Patient","birthDate":"1970-13-45"}"#,
    )
    .expect(400)
    .outcome();
    assert!(o.to_string().contains("birthDate"), "{o}");
    // A wrong NHS number check digit: 422, naming the element, not quoting the number.
    let bad = patient("9434765918", "Smith", "Ann", "1970", "female");
    let o = s.post_json("/fhir/Patient", &bad).expect(422).outcome();
    assert!(!o.to_string().contains("9434765918"), "{o}");
    assert!(o.to_string().contains("identifier"), "{o}");
    s.get("/fhir/NoSuchType/1").expect(404).outcome();
    s.get("/fhir/Patient/has%20space").expect(400).outcome();
    s.post_json("/fhir/AuditEvent", &json!({"resourceType": "AuditEvent"}))
        .expect(405)
        .outcome();
    let big = vec![b' '; 2 << 20];
    let r = post("application/fhir+json", &big);
    assert_eq!(r.status, 413);
    r.outcome();
    let mut wrong_id = patient("9434765919", "Smith", "Ann", "1970", "female");
    wrong_id["id"] = json!("abc");
    s.put_json("/fhir/Patient/xyz", &wrong_id, &[])
        .expect(400)
        .outcome();
    s.request(
        "GET",
        "/fhir/Patient",
        &[("Accept", "application/fhir+xml")],
        b"",
    )
    .expect(406)
    .outcome();
    s.request("PATCH", "/fhir/Patient", &[], b"")
        .expect(405)
        .outcome();
    // Nothing above was stored.
    assert_eq!(count(s, "Patient"), 0);
}

/// Loads a small cohort: 4 patients, 2 observations each.
fn cohort(s: &Server) -> Vec<String> {
    let people = [
        ("9434765919", "Smith", "Ann", "1970-04-01", "female"),
        ("9000000009", "Smithson", "Bob", "1985-11-30", "male"),
        ("9000000017", "Evans", "Éve", "2001-01-15", "female"),
        ("9000000025", "Jones", "Carl", "1985", "male"),
    ];
    let mut ids = Vec::new();
    for (i, (nhs, f, g, b, sex)) in people.iter().enumerate() {
        let p = create(s, &patient(nhs, f, g, b, sex));
        let id = p["id"].as_str().unwrap().to_owned();
        create_raw(
            s,
            "Observation",
            &observation(
                &format!("Patient/{id}"),
                "29463-7",
                &format!("{}.5", 60 + i * 10),
                "2024-03-01T09:00:00Z",
            ),
        );
        create_raw(
            s,
            "Observation",
            &observation(
                &format!("Patient/{id}"),
                "8302-2",
                &format!("1{}0", 5 + i),
                "2023-06-15",
            ),
        );
        ids.push(id);
    }
    ids
}

fn search_by_every_parameter_type(s: &Server) {
    let ids = cohort(s);
    let found = |q: &str| -> Vec<String> {
        let mut v = ids_of(s, q);
        v.sort();
        v
    };
    let want = |idx: &[usize]| -> Vec<String> {
        let mut v: Vec<String> = idx.iter().map(|i| ids[*i].clone()).collect();
        v.sort();
        v
    };
    // string: prefix, case and accent insensitive; :exact; :contains
    assert_eq!(found("Patient?family=smith"), want(&[0, 1]));
    assert_eq!(found("Patient?family:exact=Smith"), want(&[0]));
    assert_eq!(found("Patient?family:contains=ONES"), want(&[3]));
    assert_eq!(found("Patient?given=eve"), want(&[2]));
    assert_eq!(found("Patient?name=car"), want(&[3]));
    // token: system|code, code alone, |code, :not
    assert_eq!(
        found(&format!(
            "Patient?identifier={}",
            enc(&format!("{NHS}|9000000017"))
        )),
        want(&[2])
    );
    assert_eq!(found("Patient?identifier=9000000017"), want(&[2]));
    assert_eq!(found("Patient?gender=male"), want(&[1, 3]));
    assert_eq!(found("Patient?gender:not=male"), want(&[0, 2]));
    assert_eq!(found("Patient?gender=male,female").len(), 4);
    // date with prefixes, at several precisions
    assert_eq!(found("Patient?birthdate=1985"), want(&[1, 3]));
    assert_eq!(found("Patient?birthdate=1985-11-30"), want(&[1]));
    assert_eq!(found("Patient?birthdate=lt1980"), want(&[0]));
    assert_eq!(found("Patient?birthdate=ge2000-01-01"), want(&[2]));
    assert_eq!(
        found("Patient?birthdate=gt1985-06-01&birthdate=lt2000"),
        want(&[1, 3])
    );
    assert_eq!(found("Patient?birthdate=sa1990"), want(&[2]));
    assert_eq!(found("Patient?birthdate=eb1971"), want(&[0]));
    assert_eq!(found("Patient?birthdate=ne1985").len(), 2);
    // _id
    assert_eq!(
        found(&format!("Patient?_id={},{}", ids[0], ids[2])),
        want(&[0, 2])
    );
    // reference and token together (the patient-compartment search)
    let obs = ids_of(
        s,
        &format!(
            "Observation?patient=Patient/{}&code={}",
            ids[1],
            enc(&format!("{LOINC}|29463-7"))
        ),
    );
    assert_eq!(obs.len(), 1);
    assert_eq!(
        ids_of(s, &format!("Observation?subject={}", ids[1])).len(),
        2
    );
    assert_eq!(
        ids_of(s, &format!("Observation?subject:Patient={}", ids[1])).len(),
        2
    );
    // quantity and date on observations
    assert_eq!(
        ids_of(s, "Observation?value-quantity=gt75").len(),
        6,
        "weights 80.5, 90.5 and every 1x0 value"
    );
    assert_eq!(
        ids_of(
            s,
            &format!(
                "Observation?value-quantity={}",
                enc("60.5|http://unitsofmeasure.org|kg")
            )
        )
        .len(),
        1
    );
    assert_eq!(
        ids_of(s, "Observation?code=29463-7&value-quantity=le70.5").len(),
        2
    );
    assert_eq!(ids_of(s, "Observation?date=2024-03").len(), 4);
    assert_eq!(ids_of(s, "Observation?date=lt2024").len(), 4);
    // uri (`_profile`, on every resource) and number (RiskAssessment.probability)
    let profiled = json!({"resourceType": "Patient", "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
        "managingOrganization": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}});
    let pp = create(s, &profiled)["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ids_of(
            s,
            &format!(
                "Patient?_profile={}",
                enc("https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient")
            )
        ),
        std::slice::from_ref(&pp)
    );
    assert_eq!(
        ids_of(
            s,
            &format!(
                "Patient?_profile:below={}",
                enc("https://fhir.hl7.org.uk/StructureDefinition")
            )
        ),
        std::slice::from_ref(&pp)
    );
    assert!(
        ids_of(
            s,
            &format!(
                "Patient?_profile={}",
                enc("https://fhir.hl7.org.uk/StructureDefinition")
            )
        )
        .is_empty()
    );
    for (i, prob) in ["0.25", "0.70"].iter().enumerate() {
        let text = format!(
            r#"{{"resourceType":"RiskAssessment","status":"final","subject":{{"reference":"Patient/{}"}},"prediction":[{{"probabilityDecimal":{prob}}}]}}"#,
            ids[i]
        );
        create_raw(s, "RiskAssessment", &text);
    }
    assert_eq!(ids_of(s, "RiskAssessment?probability=gt0.5").len(), 1);
    assert_eq!(ids_of(s, "RiskAssessment?probability=0.25").len(), 1);
    assert_eq!(ids_of(s, "RiskAssessment?probability=le0.70").len(), 2);
    // 0.3 means [0.25, 0.35) by its precision: it finds 0.25; 0.4 finds nothing.
    assert_eq!(ids_of(s, "RiskAssessment?probability=0.3").len(), 1);
    assert!(ids_of(s, "RiskAssessment?probability=0.4").is_empty());
    // :missing
    assert_eq!(ids_of(s, "Patient?address-city:missing=true").len(), 5);
    assert!(ids_of(s, "Patient?address-city:missing=false").is_empty());
    // an injection attempt is only a value that matches nothing
    assert!(ids_of(s, &format!("Patient?family={}", enc("x' OR '1'='1"))).is_empty());
    assert!(ids_of(s, &format!("Patient?_id={}", enc("1; DROP TABLE records"))).is_empty());
    // unknown parameters and bad values are refused with an outcome
    // Unknown parameters: ignored and reported (lenient, the default), refused when strict.
    let lenient = s
        .get("/fhir/Patient?colour=blue&gender=male")
        .expect(200)
        .json();
    let entries = lenient["entry"].as_array().unwrap();
    assert_eq!(lenient["total"], 2, "the known parameter still applies");
    let last = entries.last().unwrap();
    assert_eq!(last["search"]["mode"], "outcome");
    assert!(last["resource"].to_string().contains("colour"), "{last}");
    assert!(
        !lenient["link"][0]["url"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    s.request(
        "GET",
        "/fhir/Patient?colour=blue",
        &[("Prefer", "handling=strict")],
        b"",
    )
    .expect(400)
    .outcome();
    // Conditional interactions never ignore a criterion.
    s.request(
        "POST",
        "/fhir/Patient",
        &[
            ("Content-Type", "application/fhir+json"),
            ("If-None-Exist", "colour=blue"),
        ],
        patient("9434765919", "X", "Y", "1999", "male")
            .to_string()
            .as_bytes(),
    )
    .expect(400)
    .outcome();
    s.get("/fhir/Patient?birthdate=last-tuesday")
        .expect(400)
        .outcome();
    s.get("/fhir/Patient?_count=abc").expect(400).outcome();
    s.get("/fhir/Patient?family:fuzzy=x").expect(400).outcome();
}

fn ids_of(s: &Server, q: &str) -> Vec<String> {
    let r = s.get(&format!("/fhir/{q}")).expect(200).json();
    assert_eq!(r["type"], "searchset");
    match_ids(&r)
}

fn paging_sorting_counting_and_includes(s: &Server) {
    let ids = cohort(s);
    let b = s
        .get("/fhir/Patient?_count=3&_sort=birthdate")
        .expect(200)
        .json();
    assert_eq!(b["total"], 4);
    let first = match_ids(&b);
    assert_eq!(first.len(), 3);
    assert_eq!(first[0], ids[0], "oldest first");
    let next = b["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = next.split_once("/fhir").unwrap().1;
    let b2 = s.get(&format!("/fhir{path}")).expect(200).json();
    assert_eq!(match_ids(&b2), [ids[2].clone()]);
    assert!(
        b2["link"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["relation"] != "next")
    );
    let desc = match_ids(&s.get("/fhir/Patient?_sort=-birthdate").expect(200).json());
    assert_eq!(desc[0], ids[2]);
    let fam = match_ids(&s.get("/fhir/Patient?_sort=family").expect(200).json());
    assert_eq!(
        fam,
        [
            ids[2].clone(),
            ids[3].clone(),
            ids[0].clone(),
            ids[1].clone()
        ]
    );
    let c = s.get("/fhir/Observation?_summary=count").expect(200).json();
    assert_eq!(c["total"], 8);
    assert!(c.get("entry").is_none());
    // _include brings the patient of each observation; _revinclude the observations of each patient.
    let inc = s
        .get(&format!(
            "/fhir/Observation?subject=Patient/{}&_include=Observation:subject",
            ids[0]
        ))
        .expect(200)
        .json();
    let modes: Vec<&str> = inc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["search"]["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["match", "match", "include"]);
    let rev = s
        .get(&format!(
            "/fhir/Patient?_id={}&_revinclude=Observation:patient",
            ids[3]
        ))
        .expect(200)
        .json();
    assert_eq!(rev["entry"].as_array().unwrap().len(), 3);
    // _elements and _summary return part of each resource, tagged SUBSETTED.
    let sub = s
        .get("/fhir/Patient?_elements=gender&_count=1")
        .expect(200)
        .json();
    let r = &sub["entry"][0]["resource"];
    assert!(r.get("gender").is_some() && r.get("name").is_none(), "{r}");
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
    let text = s
        .get(&format!("/fhir/Patient/{}?_summary=text", ids[0]))
        .expect(200)
        .json();
    assert!(
        text.get("name").is_none() && text.get("id").is_some(),
        "{text}"
    );
    let summary = s
        .get(&format!(
            "/fhir/Observation?subject={}&_summary=true",
            ids[0]
        ))
        .expect(200)
        .json();
    let o = &summary["entry"][0]["resource"];
    assert!(
        o.get("valueQuantity").is_some() && o.get("code").is_some(),
        "{o}"
    );
    s.get("/fhir/Patient?_summary=maybe").expect(400).outcome();
    // Everything for one patient.
    let all = s
        .get(&format!("/fhir/Patient/{}/$everything", ids[1]))
        .expect(200)
        .json();
    assert_eq!(all["entry"].as_array().unwrap().len(), 3);
}

fn transactions_are_all_or_nothing(s: &Server) {
    let bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            { "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
              "resource": patient("9434765919", "Smith", "Ann", "1970", "female"),
              "request": { "method": "POST", "url": "Patient" } },
            { "fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
              "resource": { "resourceType": "Observation", "status": "final",
                "code": { "coding": [{ "system": LOINC, "code": "29463-7" }] },
                "subject": { "reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a" } },
              "request": { "method": "POST", "url": "Observation" } },
            { "resource": { "resourceType": "Condition", "id": "c1",
                "code": { "coding": [{ "system": SNOMED, "code": "44054006" }] },
                "subject": { "reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a" } },
              "request": { "method": "PUT", "url": "Condition/c1" } }
        ]
    });
    let r = s.post_json("/fhir", &bundle).expect(200).json();
    assert_eq!(r["type"], "transaction-response");
    let e = r["entry"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], "201 Created");
    let pid = e[0]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned();
    let oid = e[1]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned();
    let o = s
        .get(&format!("/fhir/Observation/{oid}"))
        .expect(200)
        .json();
    assert_eq!(o["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(
        s.get("/fhir/Condition/c1").expect(200).json()["subject"]["reference"],
        format!("Patient/{pid}")
    );
    assert_eq!(
        ids_of(s, &format!("Observation?patient={pid}")),
        std::slice::from_ref(&oid)
    );

    // A transaction whose third entry is invalid leaves nothing behind.
    let before = (count(s, "Patient"), count(s, "Observation"));
    let broken = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            { "fullUrl": "urn:uuid:1", "resource": patient("9000000009", "Jones", "Bob", "1980", "male"),
              "request": { "method": "POST", "url": "Patient" } },
            { "resource": { "resourceType": "Observation", "status": "final", "code": { "text": "x" },
                "subject": { "reference": "urn:uuid:1" } },
              "request": { "method": "POST", "url": "Observation" } },
            { "resource": patient("9434765918", "Bad", "Check", "1990", "male"),
              "request": { "method": "POST", "url": "Patient" } }
        ]
    });
    let o = s.post_json("/fhir", &broken).expect(422).outcome();
    assert!(o.to_string().contains("entry 2"), "{o}");
    assert_eq!((count(s, "Patient"), count(s, "Observation")), before);
    // A stale ifMatch fails the transaction at the database: nothing is written either.
    let stale = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            { "resource": patient("9000000009", "Jones", "Bob", "1980", "male"),
              "request": { "method": "POST", "url": "Patient" } },
            { "request": { "method": "DELETE", "url": format!("Observation/{oid}"), "ifMatch": "W/\"7\"" } }
        ]
    });
    s.post_json("/fhir", &stale).expect(412).outcome();
    assert_eq!((count(s, "Patient"), count(s, "Observation")), before);
    // Conditional create inside a transaction finds the existing patient; delete works.
    let cond = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            { "resource": patient("9434765919", "Smith", "Ann", "1970", "female"),
              "request": { "method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={NHS}|9434765919") } },
            { "request": { "method": "DELETE", "url": format!("Observation/{oid}") } },
            { "request": { "method": "GET", "url": format!("Patient/{pid}") } }
        ]
    });
    let r = s.post_json("/fhir", &cond).expect(200).json();
    assert_eq!(r["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(r["entry"][1]["response"]["status"], "204 No Content");
    assert_eq!(r["entry"][2]["resource"]["id"], pid.as_str());
    s.get(&format!("/fhir/Observation/{oid}")).expect(410);
    assert_eq!(count(s, "Patient"), before.0);
}

fn batches_report_each_entry(s: &Server) {
    let b = json!({
        "resourceType": "Bundle", "type": "batch",
        "entry": [
            { "resource": patient("9434765919", "Smith", "Ann", "1970", "female"), "request": { "method": "POST", "url": "Patient" } },
            { "resource": patient("9434765918", "Bad", "Check", "1990", "male"), "request": { "method": "POST", "url": "Patient" } },
            { "request": { "method": "GET", "url": "Patient/nope" } },
            { "request": { "method": "GET", "url": "Patient?family=smith" } }
        ]
    });
    let r = s.post_json("/fhir", &b).expect(200).json();
    assert_eq!(r["type"], "batch-response");
    let e = r["entry"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], "201 Created");
    assert!(
        e[1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("422")
    );
    assert_eq!(
        e[1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert!(
        e[2]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("404")
    );
    assert_eq!(e[3]["resource"]["total"], 1);
    s.post_json(
        "/fhir",
        &json!({"resourceType": "Bundle", "type": "collection"}),
    )
    .expect(400)
    .outcome();
}

fn conditional_interactions_and_patch(s: &Server) {
    let p = patient("9434765919", "Smith", "Ann", "1970", "female");
    let crit = format!("identifier={}", enc(&format!("{NHS}|9434765919")));
    let h = [
        ("Content-Type", "application/fhir+json"),
        ("If-None-Exist", crit.as_str()),
    ];
    let first = s
        .request("POST", "/fhir/Patient", &h, p.to_string().as_bytes())
        .expect(201)
        .json();
    let again = s
        .request("POST", "/fhir/Patient", &h, p.to_string().as_bytes())
        .expect(200)
        .json();
    assert_eq!(first["id"], again["id"]);
    let id = first["id"].as_str().unwrap().to_owned();
    // Conditional update of the one match.
    let mut changed = p.clone();
    changed["gender"] = json!("unknown");
    let up = s
        .put_json(&format!("/fhir/Patient?{crit}"), &changed, &[])
        .expect(200)
        .json();
    assert_eq!(up["id"], id.as_str());
    assert_eq!(up["meta"]["versionId"], "2");
    // JSON Patch, with and without the right version.
    let patch = json!([{ "op": "replace", "path": "/gender", "value": "female" }, { "op": "add", "path": "/active", "value": true }]);
    let ph = [
        ("Content-Type", "application/json-patch+json"),
        ("If-Match", "W/\"2\""),
    ];
    let patched = s
        .request(
            "PATCH",
            &format!("/fhir/Patient/{id}"),
            &ph,
            patch.to_string().as_bytes(),
        )
        .expect(200)
        .json();
    assert_eq!(patched["gender"], "female");
    assert_eq!(patched["active"], true);
    assert_eq!(patched["meta"]["versionId"], "3");
    s.request(
        "PATCH",
        &format!("/fhir/Patient/{id}"),
        &ph,
        patch.to_string().as_bytes(),
    )
    .expect(412)
    .outcome();
    let bad = json!([{ "op": "replace", "path": "/birthDate", "value": "not a date" }]);
    s.request(
        "PATCH",
        &format!("/fhir/Patient/{id}"),
        &[("Content-Type", "application/json-patch+json")],
        bad.to_string().as_bytes(),
    )
    .expect(400)
    .outcome();
    // Two matches: conditional create and update refuse with 412.
    create(s, &patient("9000000009", "Smith", "Zed", "1990", "male"));
    let two = [
        ("Content-Type", "application/fhir+json"),
        ("If-None-Exist", "family=smith"),
    ];
    s.request("POST", "/fhir/Patient", &two, p.to_string().as_bytes())
        .expect(412)
        .outcome();
    s.put_json("/fhir/Patient?family=smith", &p, &[])
        .expect(412)
        .outcome();
    // Conditional delete of one match.
    s.request("DELETE", &format!("/fhir/Patient?{crit}"), &[], b"")
        .expect(200);
    s.get(&format!("/fhir/Patient/{id}")).expect(410);
}

fn history_at_every_level(s: &Server) {
    let a = create(s, &patient("9434765919", "Smith", "Ann", "1970", "female"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mark = a["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    let b = create(s, &patient("9000000009", "Jones", "Bob", "1980", "male"));
    create_raw(
        s,
        "Observation",
        &observation(
            &format!("Patient/{}", b["id"].as_str().unwrap()),
            "1",
            "1",
            "2024",
        ),
    );
    let sys = s.get("/fhir/_history").expect(200).json();
    assert_eq!(sys["entry"].as_array().unwrap().len(), 3);
    assert_eq!(
        sys["entry"][0]["resource"]["resourceType"], "Observation",
        "newest first"
    );
    let typ = s.get("/fhir/Patient/_history").expect(200).json();
    assert_eq!(typ["entry"].as_array().unwrap().len(), 2);
    let since = s
        .get(&format!("/fhir/_history?_since={}", enc(&mark)))
        .expect(200)
        .json();
    assert_eq!(
        since["entry"].as_array().unwrap().len(),
        3,
        "_since is inclusive"
    );
    let later = s
        .get(&format!(
            "/fhir/Patient/_history?_since={}",
            enc(b["meta"]["lastUpdated"].as_str().unwrap())
        ))
        .expect(200)
        .json();
    assert_eq!(later["entry"].as_array().unwrap().len(), 1);
    let paged = s.get("/fhir/_history?_count=2").expect(200).json();
    assert_eq!(paged["entry"].as_array().unwrap().len(), 2);
    assert!(
        paged["link"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "next")
    );
    s.get("/fhir/_history?_since=yesterday")
        .expect(400)
        .outcome();
}

fn capability_statement_is_true(s: &Server) {
    let c = s.get("/fhir/metadata").expect(200).json();
    assert_eq!(c["resourceType"], "CapabilityStatement");
    assert_eq!(c["fhirVersion"], "4.0.1");
    let rest = &c["rest"][0];
    let patient = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    let params: Vec<&str> = patient["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"birthdate") && params.contains(&"identifier") && params.contains(&"_id")
    );
    let audit = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "AuditEvent")
        .unwrap();
    assert!(!audit["interaction"].to_string().contains("create"));
    // Every parameter it lists is accepted by search.
    for p in params {
        let r = s.get(&format!("/fhir/Patient?{p}:missing=true"));
        assert_ne!(r.status, 500, "{p}");
    }
}

fn bulk_export_round_trip(s: &Server) {
    let ids = cohort(s);
    // Bulk export is for system clients; each one sees only what it may export.
    s.request("GET", "/fhir/$export", &[("Prefer", "respond-async")], b"")
        .expect(403)
        .outcome();
    let bot = common::user_token(
        &s.directory,
        "bot",
        "A81001",
        caldicott_policy::Role::System,
        "system/*.*",
        None,
    );
    let bot = Some(bot.as_str());
    let get = |path: &str| s.request_as(bot, "GET", path, &[], b"");
    get("/fhir/$export").expect(400).outcome();
    let kick = s
        .request_as(
            bot,
            "GET",
            "/fhir/$export?_type=Patient,Observation",
            &[
                ("Prefer", "respond-async"),
                ("Accept", "application/fhir+json"),
            ],
            b"",
        )
        .expect(202);
    let status_url = kick.header("content-location").unwrap().to_owned();
    let path = format!("/fhir{}", status_url.split_once("/fhir").unwrap().1);
    let manifest = loop {
        let r = get(&path);
        if r.status == 200 {
            break r.json();
        }
        assert_eq!(r.status, 202);
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let outputs = manifest["output"].as_array().unwrap();
    let mut lines = 0;
    for o in outputs {
        let url = o["url"].as_str().unwrap();
        let file = get(&format!("/fhir{}", url.split_once("/fhir").unwrap().1)).expect(200);
        assert_eq!(file.header("content-type"), Some("application/fhir+ndjson"));
        let text = String::from_utf8(file.body).unwrap();
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["resourceType"], o["type"]);
            lines += 1;
        }
        assert_eq!(o["count"], text.lines().count());
    }
    assert_eq!(lines, 12);
    // The files on disk are not readable JSON (they are sealed).
    // Patient-level export for a Group of one.
    let g = create(
        s,
        &json!({"resourceType": "Group", "type": "person", "actual": true, "member": [{"entity": {"reference": format!("Patient/{}", ids[0])}}]}),
    );
    let kick = s
        .request_as(
            bot,
            "GET",
            &format!("/fhir/Group/{}/$export", g["id"].as_str().unwrap()),
            &[("Prefer", "respond-async")],
            b"",
        )
        .expect(202);
    let path = format!(
        "/fhir{}",
        kick.header("content-location")
            .unwrap()
            .split_once("/fhir")
            .unwrap()
            .1
    );
    let manifest = loop {
        let r = get(&path);
        if r.status == 200 {
            break r.json();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let total: u64 = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total, 4,
        "the member, their two observations and the Group (in the compartment by member)"
    );
    // Another caller cannot see the job.
    s.get(&path).expect(404);
    s.request_as(bot, "DELETE", &path, &[], b"").expect(202);
    get(&path).expect(404);
}

fn access_is_decided_on_every_path(s: &Server) {
    use caldicott_policy::Role;
    let ids = cohort(s);
    let p0 = ids[0].clone();
    // No token, a malformed one, an unknown one: 401 with a challenge. metadata is public.
    let r = s
        .request_as(None, "GET", &format!("/fhir/Patient/{p0}"), &[], b"")
        .expect(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"caldicott\"")
    );
    r.outcome();
    s.raw_request(
        "GET",
        "/fhir/Patient",
        &[("Authorization", "Basic abc")],
        b"",
    )
    .expect(401)
    .outcome();
    s.request_as(Some("cdt_forged"), "GET", "/fhir/Patient", &[], b"")
        .expect(401)
        .outcome();
    s.request_as(None, "GET", "/fhir/metadata", &[], b"")
        .expect(200);

    // Another organisation's GP sees nothing of A81001's patients, by any path, and a
    // refused record looks exactly like a missing one.
    let other = common::user_token(
        &s.directory,
        "gp2",
        "B82002",
        Role::Gp,
        "user/*.*",
        Some("Practitioner/pr2"),
    );
    let as_other = |method: &str, path: &str| s.request_as(Some(&other), method, path, &[], b"");
    let missing = as_other("GET", "/fhir/Patient/no-such-id")
        .expect(404)
        .json();
    let hidden = as_other("GET", &format!("/fhir/Patient/{p0}"))
        .expect(404)
        .json();
    assert_eq!(
        missing["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .replace("no-such-id", ""),
        hidden["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .replace(&p0, "")
    );
    assert_eq!(
        as_other("GET", "/fhir/Patient?_summary=count")
            .expect(200)
            .json()["total"],
        0
    );
    assert_eq!(
        as_other("GET", "/fhir/Observation?_summary=count")
            .expect(200)
            .json()["total"],
        0
    );
    as_other("GET", &format!("/fhir/Patient/{p0}/_history")).expect(404);
    as_other("GET", &format!("/fhir/Patient/{p0}/$everything")).expect(404);
    let h = as_other("GET", "/fhir/_history").expect(200).json();
    assert!(h.get("entry").is_none(), "{h}");
    // A care team that names them opens the patient's record to them (direct care).
    let team = json!({"resourceType": "CareTeam", "status": "active",
        "subject": {"reference": format!("Patient/{p0}")},
        "participant": [{"member": {"reference": "Practitioner/pr2"}}]});
    create(s, &team);
    as_other("GET", &format!("/fhir/Patient/{p0}")).expect(200);
    assert_eq!(
        as_other(
            "GET",
            &format!("/fhir/Observation?subject={p0}&_summary=count")
        )
        .expect(200)
        .json()["total"],
        2
    );
    // ...until the patient dissents from sharing with that organisation.
    let consent = json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{p0}")},
        "provision": {"type": "deny", "actor": [{
            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
            "reference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B82002"}}}]}});
    create(s, &consent);
    as_other("GET", &format!("/fhir/Patient/{p0}")).expect(404);
    // The practice's own GP still sees the patient.
    s.get(&format!("/fhir/Patient/{p0}")).expect(200);

    // Minimum necessary: a receptionist sees demographics, not clinical records.
    let desk = common::user_token(
        &s.directory,
        "desk",
        "A81001",
        Role::Receptionist,
        "user/*.*",
        None,
    );
    let as_desk = |path: &str| s.request_as(Some(&desk), "GET", path, &[], b"");
    as_desk(&format!("/fhir/Patient/{}", ids[1])).expect(200);
    assert_eq!(
        as_desk("/fhir/Observation?_summary=count")
            .expect(200)
            .json()["total"],
        0
    );
    let inc = as_desk(&format!(
        "/fhir/Patient?_id={}&_revinclude=Observation:patient",
        ids[1]
    ))
    .expect(200)
    .json();
    assert_eq!(
        inc["entry"].as_array().unwrap().len(),
        1,
        "no observation through _revinclude"
    );
    // Writes outside the role are refused with 403 (the caller knows what it sent).
    let obs = observation(&format!("Patient/{}", ids[1]), "1", "1", "2024");
    s.request_as(
        Some(&desk),
        "POST",
        "/fhir/Observation",
        &[("Content-Type", "application/fhir+json")],
        obs.as_bytes(),
    )
    .expect(403)
    .outcome();
    // Scopes limit too: a read-only token cannot write.
    let reader = common::user_token(
        &s.directory,
        "reader",
        "A81001",
        Role::Gp,
        "user/*.read",
        None,
    );
    s.request_as(
        Some(&reader),
        "POST",
        "/fhir/Observation",
        &[("Content-Type", "application/fhir+json")],
        obs.as_bytes(),
    )
    .expect(403);
    // Disabling a user locks them out at once.
    s.directory.set_disabled("desk", true).unwrap();
    as_desk(&format!("/fhir/Patient/{}", ids[1])).expect(401);
    // Every decision, permit and deny, reached the audit interface, with patients only
    // as keyed pseudonyms.
    let events = s.events();
    let refused = events
        .iter()
        .find(|e| {
            e.user == "gp2"
                && e.outcome == Outcome::Deny
                && e.rtype.as_deref() == Some("Patient")
                && e.id.as_deref() == Some(p0.as_str())
        })
        .expect("the refused read was recorded");
    assert_eq!(refused.org, "B82002");
    assert!(
        events
            .iter()
            .any(|e| e.user == "gp2" && e.outcome == Outcome::Permit)
    );
    assert!(events.iter().any(|e| e.user == "desk"
        && e.outcome == Outcome::Deny
        && e.rtype.as_deref() == Some("Observation")));
    for e in events.iter() {
        for p in &e.patients {
            assert!(
                p.len() == 32 && !p.contains('/') && !ids.iter().any(|i| p.contains(i.as_str()))
            );
        }
    }
}

fn break_glass_opens_access_for_a_time_and_is_flagged(s: &Server) {
    use caldicott_policy::Role;
    let ids = cohort(s);
    let er = common::user_token(&s.directory, "er-doc", "B82002", Role::Gp, "user/*.*", None);
    let read = || {
        s.request_as(
            Some(&er),
            "GET",
            &format!("/fhir/Patient/{}", ids[2]),
            &[],
            b"",
        )
    };
    read().expect(404);
    let declare = |token: &str, body: Value| {
        s.request_as(
            Some(token),
            "POST",
            "/fhir/$break-glass",
            &[("Content-Type", "application/fhir+json")],
            body.to_string().as_bytes(),
        )
    };
    let params = |reason: &str| {
        json!({"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueString": reason}, {"name": "minutes", "valueInteger": 30}]})
    };
    declare(&er, params("   ")).expect(400).outcome();
    declare(&er, params("unconscious in A&E, no records available")).expect(200);
    read().expect(200);
    {
        let events = s.events();
        assert!(
            events
                .iter()
                .any(|e| e.user == "er-doc" && e.outcome == Outcome::Permit && e.break_glass)
        );
    }
    let queue = s.directory.break_glass_queue(true).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].user, "er-doc");
    // Receptionists cannot break the glass.
    let desk = common::user_token(
        &s.directory,
        "desk2",
        "B82002",
        Role::Receptionist,
        "user/*.*",
        None,
    );
    declare(&desk, params("curious")).expect(403).outcome();
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
    read_write_version_and_delete,
    numbers_and_key_order_survive,
    concurrent_updates_all_land_as_versions,
    a_huge_declared_body_is_refused_at_once,
    bad_input_gets_an_operation_outcome,
    search_by_every_parameter_type,
    paging_sorting_counting_and_includes,
    transactions_are_all_or_nothing,
    batches_report_each_entry,
    conditional_interactions_and_patch,
    history_at_every_level,
    capability_statement_is_true,
    bulk_export_round_trip,
    access_is_decided_on_every_path,
    break_glass_opens_access_for_a_time_and_is_flagged,
);
