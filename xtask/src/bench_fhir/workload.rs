//! What the load generator asks for: ids and search terms read from the synthetic NDJSON
//! file that was imported, fresh NHS numbers for new patients, and the FHIR requests of each
//! scenario with what a correct answer must contain.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail, ensure};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::Scenario;

/// The FHIR R4 JSON media type, sent as `Accept` and, with a body, `Content-Type`.
pub const FHIR_JSON: &str = "application/fhir+json";

const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// Vital signs written by the `create` and `transaction` scenarios: LOINC code, display,
/// UCUM unit and code, and a plausible range.
const VITAL_SIGNS: &[(&str, &str, &str, &str, f64, f64)] = &[
    ("8867-4", "Heart rate", "beats/minute", "/min", 50.0, 110.0),
    (
        "9279-1",
        "Respiratory rate",
        "breaths/minute",
        "/min",
        10.0,
        24.0,
    ),
    ("8310-5", "Body temperature", "degrees C", "Cel", 35.5, 38.5),
    ("29463-7", "Body weight", "kg", "kg", 45.0, 110.0),
    ("8302-2", "Body height", "cm", "cm", 150.0, 195.0),
];

const GIVEN_NAMES: &[&str] = &["Alex", "Sam", "Jo", "Robin", "Charlie", "Morgan"];

/// What the synthetic file holds that the scenarios need.
pub struct Workload {
    /// Lines (resources) in the file.
    pub resources: usize,
    pub patients: Vec<String>,
    pub observations: Vec<String>,
    /// Distinct (patient id, code system, code) of the file's Observations.
    pub searches: Vec<SearchTerm>,
    pub practices: Vec<Practice>,
    /// NHS numbers already used by the file's patients.
    pub nhs_numbers: HashSet<String>,
    /// Each patient's practice (ODS code of its managing organisation).
    patient_practice: std::collections::HashMap<String, String>,
    /// Each observation's patient.
    observation_patient: Vec<(String, String)>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchTerm {
    pub patient: String,
    pub system: String,
    pub code: String,
}

/// A GP practice (Organization) of the file, for new patients to be registered with.
pub struct Practice {
    pub id: String,
    pub ods: String,
}

impl Workload {
    /// Reads the NDJSON file written by `caldicott synth`.
    pub fn from_ndjson(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut w = Workload {
            resources: 0,
            patients: Vec::new(),
            observations: Vec::new(),
            searches: Vec::new(),
            practices: Vec::new(),
            nhs_numbers: HashSet::new(),
            patient_practice: std::collections::HashMap::new(),
            observation_patient: Vec::new(),
        };
        let mut searches = BTreeSet::new();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let resource: Value = serde_json::from_str(&line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
            w.resources += 1;
            w.add(&resource, &mut searches);
        }
        w.searches = searches.into_iter().collect();
        ensure!(
            !w.patients.is_empty(),
            "{} holds no Patient resources",
            path.display()
        );
        Ok(w)
    }

    fn add(&mut self, r: &Value, searches: &mut BTreeSet<SearchTerm>) {
        let Some(id) = r["id"].as_str() else { return };
        match r["resourceType"].as_str() {
            Some("Patient") => {
                self.patients.push(id.to_owned());
                if let Some(ods) = r["managingOrganization"]["identifier"]["value"].as_str() {
                    self.patient_practice.insert(id.to_owned(), ods.to_owned());
                }
                let nhs = r["identifier"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| {
                        (i["system"] == NHS_NUMBER_SYSTEM).then(|| i["value"].as_str())?
                    });
                self.nhs_numbers.extend(nhs.map(str::to_owned));
            }
            Some("Observation") => {
                self.observations.push(id.to_owned());
                let patient = r["subject"]["reference"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("Patient/"));
                if let Some(p) = patient {
                    self.observation_patient.push((id.to_owned(), p.to_owned()));
                }
                let coding = &r["code"]["coding"][0];
                if let (Some(patient), Some(system), Some(code)) =
                    (patient, coding["system"].as_str(), coding["code"].as_str())
                {
                    searches.insert(SearchTerm {
                        patient: patient.to_owned(),
                        system: system.to_owned(),
                        code: code.to_owned(),
                    });
                }
            }
            Some("Organization") => {
                let ods = r["identifier"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|i| i["system"] == ODS_SYSTEM)
                    .and_then(|i| i["value"].as_str());
                if let Some(ods) = ods {
                    self.practices.push(Practice {
                        id: id.to_owned(),
                        ods: ods.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Keeps only the patients (and their observations and searches) of the practice with
    /// the most patients, and returns its ODS code: the server decides every request by
    /// the caller's relationship with the patient, and the load runs as one of that
    /// practice's GPs, so that every request it makes is one a real GP could make.
    pub fn keep_largest_practice(&mut self) -> Option<String> {
        let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for ods in self.patient_practice.values() {
            *counts.entry(ods.as_str()).or_default() += 1;
        }
        let ods = counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))?
            .0
            .to_owned();
        let mine: HashSet<&String> = self
            .patient_practice
            .iter()
            .filter(|(_, o)| **o == ods)
            .map(|(p, _)| p)
            .collect();
        let keep_obs: HashSet<&String> = self
            .observation_patient
            .iter()
            .filter(|(_, p)| mine.contains(p))
            .map(|(o, _)| o)
            .collect();
        let patients: Vec<String> = self
            .patients
            .iter()
            .filter(|p| mine.contains(p))
            .cloned()
            .collect();
        let observations: Vec<String> = self
            .observations
            .iter()
            .filter(|o| keep_obs.contains(o))
            .cloned()
            .collect();
        self.searches.retain(|t| mine.contains(&t.patient));
        self.practices.retain(|p| p.ods == ods);
        self.patients = patients;
        self.observations = observations;
        Some(ods)
    }

    /// Refuses a scenario the file has no data for (rather than measuring 404s).
    pub fn check_supports(&self, scenario: Scenario) -> Result<()> {
        let missing = match scenario {
            Scenario::ReadMixed | Scenario::Create if self.observations.is_empty() => {
                "Observations"
            }
            Scenario::Search if self.searches.is_empty() => "Observations with a subject and code",
            _ => return Ok(()),
        };
        bail!(
            "scenario {}: the synthetic file holds no {missing}",
            scenario.name()
        )
    }
}

/// Hands out NHS numbers from the 999 test range that no patient of the file has, each once.
pub struct NhsNumbers {
    next: AtomicU32,
    taken: HashSet<String>,
}

impl NhsNumbers {
    pub fn new(taken: HashSet<String>) -> Self {
        Self {
            next: AtomicU32::new(999_000_000),
            taken,
        }
    }

    pub fn take(&self) -> Result<String> {
        loop {
            let nine = self.next.fetch_add(1, Ordering::Relaxed);
            ensure!(
                nine <= 999_999_999,
                "the 999 test range of NHS numbers is used up"
            );
            if let Some(n) = nhs_number(nine)
                && !self.taken.contains(&n)
            {
                return Ok(n);
            }
        }
    }
}

/// The NHS number with these first nine digits (modulus 11, weights 10 down to 2), or `None`
/// when they have no check digit.
pub fn nhs_number(first_nine: u32) -> Option<String> {
    let digits = format!("{first_nine:09}");
    if digits.len() != 9 {
        return None;
    }
    let sum: u32 = digits
        .bytes()
        .zip((2..=10u32).rev())
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return None,
        c => c,
    };
    Some(format!("{digits}{check}"))
}

/// One request and how to tell that its answer is right.
pub struct Planned {
    pub request: Request<Full<Bytes>>,
    /// What a correct answer's body holds, beyond a 2xx status.
    pub expect: Option<Expect>,
}

/// Text that a correct answer's body contains.
pub struct Expect {
    pub needle: String,
    /// What the text stands for, in error reports: failures of one kind add up under it.
    pub what: &'static str,
}

impl Expect {
    fn new(needle: impl Into<String>, what: &'static str) -> Option<Self> {
        Some(Self {
            needle: needle.into(),
            what,
        })
    }
}

/// Makes the requests of one worker: its own fixed-seed random choices over shared data.
pub struct RequestSource {
    scenario: Scenario,
    workload: Arc<Workload>,
    nhs: Arc<NhsNumbers>,
    rng: StdRng,
    bundle_size: usize,
    host: HeaderValue,
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

/// What every worker of a run shares.
pub struct Shared {
    pub workload: Arc<Workload>,
    pub nhs: Arc<NhsNumbers>,
    pub bundle_size: usize,
    pub host: HeaderValue,
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl RequestSource {
    pub fn new(shared: &Shared, scenario: Scenario, seed: u64) -> Self {
        Self {
            scenario,
            workload: Arc::clone(&shared.workload),
            nhs: Arc::clone(&shared.nhs),
            rng: StdRng::seed_from_u64(seed),
            bundle_size: shared.bundle_size,
            host: shared.host.clone(),
            headers: Arc::clone(&shared.headers),
        }
    }

    pub fn next(&mut self) -> Result<Planned> {
        match self.scenario {
            Scenario::Healthz => Ok(Planned {
                request: self.get("/healthz")?,
                expect: Expect::new("\"ok\"", "\"ok\""),
            }),
            Scenario::Read => {
                let id = self.pick(|w| &w.patients).to_owned();
                self.read("Patient", id)
            }
            Scenario::ReadMixed => {
                let (rtype, id) = if self.rng.random_bool(0.5) {
                    ("Patient", self.pick(|w| &w.patients))
                } else {
                    ("Observation", self.pick(|w| &w.observations))
                };
                let id = id.to_owned();
                self.read(rtype, id)
            }
            Scenario::Search => self.search(),
            Scenario::Create => self.create(),
            Scenario::Transaction => self.transaction(),
        }
    }

    /// A random element of one of the workload's lists.
    fn pick<T>(&mut self, list: impl FnOnce(&Workload) -> &Vec<T>) -> &T {
        let list = list(&self.workload);
        &list[self.rng.random_range(0..list.len())]
    }

    /// `GET [base]/[type]/[id]`; the answer must hold the id.
    fn read(&mut self, rtype: &str, id: String) -> Result<Planned> {
        Ok(Planned {
            request: self.get(&format!("/fhir/{rtype}/{id}"))?,
            expect: Expect::new(id, "the requested id"),
        })
    }

    /// `GET [base]/Observation?patient=Patient/[id]&code=[system]|[code]`, with a term that
    /// occurs in the imported data: the searchset Bundle must have entries.
    fn search(&mut self) -> Result<Planned> {
        let workload = Arc::clone(&self.workload);
        let term = &workload.searches[self.rng.random_range(0..workload.searches.len())];
        let query = format!(
            "patient={}&code={}",
            query_encode(&format!("Patient/{}", term.patient)),
            query_encode(&format!("{}|{}", term.system, term.code)),
        );
        Ok(Planned {
            request: self.get(&format!("/fhir/Observation?{query}"))?,
            expect: Expect::new("\"entry\"", "entries"),
        })
    }

    /// `POST [base]/Observation` of one new Observation about an imported patient.
    fn create(&mut self) -> Result<Planned> {
        let patient = format!("Patient/{}", self.pick(|w| &w.patients));
        let observation = self.observation(&patient);
        let body = serde_json::to_vec(&observation).context("cannot encode an Observation")?;
        Ok(Planned {
            request: self.post("/fhir/Observation", body)?,
            expect: None,
        })
    }

    /// `POST [base]` of a transaction Bundle: one new Patient and `bundle_size - 1`
    /// Observations referring to it by its `urn:uuid:` fullUrl.
    fn transaction(&mut self) -> Result<Planned> {
        let patient_url = format!("urn:uuid:{}", uuid_v4(&mut self.rng));
        let mut entries = Vec::with_capacity(self.bundle_size);
        let patient = self.patient()?;
        entries.push(entry(&patient_url, patient, "Patient"));
        for _ in 1..self.bundle_size {
            let url = format!("urn:uuid:{}", uuid_v4(&mut self.rng));
            let observation = self.observation(&patient_url);
            entries.push(entry(&url, observation, "Observation"));
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let body = serde_json::to_vec(&bundle).context("cannot encode a Bundle")?;
        Ok(Planned {
            request: self.post("/fhir", body)?,
            expect: Expect::new("transaction-response", "a transaction-response Bundle"),
        })
    }

    /// A new Patient with an unused test-range NHS number, registered with a practice of
    /// the file when it has any.
    fn patient(&mut self) -> Result<Value> {
        let nhs = self.nhs.take()?;
        let given = GIVEN_NAMES[self.rng.random_range(0..GIVEN_NAMES.len())];
        let mut patient = json!({
            "resourceType": "Patient",
            "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
            "name": [{"use": "official", "family": "Loadtest", "given": [given]}],
            "gender": if self.rng.random_bool(0.5) { "female" } else { "male" },
            "birthDate": format!(
                "{}-{:02}-{:02}",
                self.rng.random_range(1930..2020),
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28)
            ),
        });
        if !self.workload.practices.is_empty() {
            let practice = self.pick(|w| &w.practices);
            let reference = json!({
                "reference": format!("Organization/{}", practice.id),
                "type": "Organization",
                "identifier": {"system": ODS_SYSTEM, "value": practice.ods},
            });
            patient["generalPractitioner"] = json!([reference.clone()]);
            patient["managingOrganization"] = reference;
        }
        Ok(patient)
    }

    /// A final vital-signs Observation about `subject` (a reference or a `urn:uuid:`).
    fn observation(&mut self, subject: &str) -> Value {
        let (code, display, unit, ucum, low, high) =
            VITAL_SIGNS[self.rng.random_range(0..VITAL_SIGNS.len())];
        let value = (self.rng.random_range(low..high) * 10.0).round() / 10.0;
        json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
                "display": "Vital Signs",
            }]}],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": {"reference": subject},
            "effectiveDateTime": format!(
                "2025-{:02}-{:02}T{:02}:{:02}:00Z",
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28),
                self.rng.random_range(0..24),
                self.rng.random_range(0..60)
            ),
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum},
        })
    }

    fn get(&self, path: &str) -> Result<Request<Full<Bytes>>> {
        let accept = if self.scenario == Scenario::Healthz {
            "application/json"
        } else {
            FHIR_JSON
        };
        self.request(Method::GET, path, accept, None)
    }

    fn post(&self, path: &str, body: Vec<u8>) -> Result<Request<Full<Bytes>>> {
        self.request(Method::POST, path, FHIR_JSON, Some(body))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(ACCEPT, accept);
        if body.is_some() {
            b = b.header(CONTENT_TYPE, FHIR_JSON);
        }
        for (name, value) in self.headers.iter() {
            b = b.header(name, value);
        }
        b.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .with_context(|| format!("cannot build a request for {path}"))
    }
}

/// A transaction entry that creates `resource` under the temporary id `full_url`.
fn entry(full_url: &str, resource: Value, rtype: &str) -> Value {
    json!({
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": rtype},
    })
}

/// A random (version 4) UUID in its usual text form.
fn uuid_v4(rng: &mut StdRng) -> String {
    let mut v: u128 = rng.random();
    v = (v & !(0xf << 76)) | (0x4 << 76); // version 4
    v = (v & !(0x3 << 62)) | (0x2 << 62); // RFC 9562 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        v >> 96,
        (v >> 80) & 0xffff,
        (v >> 64) & 0xffff,
        (v >> 48) & 0xffff,
        v & 0xffff_ffff_ffff
    )
}

/// Percent-encodes a query parameter value, leaving RFC 3986's unreserved characters and
/// the `/` and `:` that a query may hold as they are (so `|` becomes `%7C`).
fn query_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_check_digits() {
        // Valid numbers quoted in caldicott-core and ARCHITECTURE.md.
        assert_eq!(nhs_number(943_476_591).as_deref(), Some("9434765919"));
        assert_eq!(nhs_number(999_000_001).as_deref(), Some("9990000018"));
        // The first three digits weigh 9*10 + 9*9 + 9*8 = 243.
        // 999000003: 243 + 3*2 = 249, 249 % 11 = 7, check 11 - 7 = 4.
        assert_eq!(nhs_number(999_000_003).as_deref(), Some("9990000034"));
        // 999000007: 243 + 14 = 257, 257 % 11 = 4, check 7.
        assert_eq!(nhs_number(999_000_007).as_deref(), Some("9990000077"));
        // 999000006: 243 + 12 = 255, 255 % 11 = 2, check 9.
        assert_eq!(nhs_number(999_000_006).as_deref(), Some("9990000069"));
        // 999000000: 243 % 11 = 1, so 11 - 1 = 10: no check digit.
        assert_eq!(nhs_number(999_000_000), None);
    }

    #[test]
    fn fresh_numbers_skip_taken_ones() {
        let taken: HashSet<String> = ["9990000018".to_owned()].into();
        let nhs = NhsNumbers::new(taken);
        let first = nhs.take().unwrap();
        assert_ne!(first, "9990000018");
        assert!(first.starts_with("999"));
        assert_ne!(nhs.take().unwrap(), first);
    }

    #[test]
    fn uuids_are_version_4() {
        let mut rng = StdRng::seed_from_u64(7);
        let u = uuid_v4(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]));
    }

    fn source(scenario: Scenario, bundle_size: usize) -> RequestSource {
        let patient = r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}]}"#;
        let observation = r#"{"resourceType":"Observation","id":"o1","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"}}"#;
        let org = r#"{"resourceType":"Organization","id":"g1","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}]}"#;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.ndjson");
        std::fs::write(&file, format!("{org}\n{patient}\n{observation}\n")).unwrap();
        let workload = Workload::from_ndjson(&file).unwrap();
        assert_eq!(workload.resources, 3);
        assert_eq!(workload.nhs_numbers.len(), 1);
        let shared = Shared {
            nhs: Arc::new(NhsNumbers::new(workload.nhs_numbers.clone())),
            workload: Arc::new(workload),
            bundle_size,
            host: HeaderValue::from_static("localhost:1"),
            headers: Arc::new([]),
        };
        RequestSource::new(&shared, scenario, 1)
    }

    fn body_json(p: &Planned) -> Value {
        use http_body_util::BodyExt;
        let body = p.request.body().clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(async { body.collect().await.unwrap().to_bytes() });
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn reads_and_searches_use_the_file() {
        let read = source(Scenario::Read, 1).next().unwrap();
        assert_eq!(read.request.uri(), "/fhir/Patient/p1");
        assert_eq!(read.request.headers()[ACCEPT], FHIR_JSON);
        assert_eq!(read.expect.unwrap().needle, "p1");
        let search = source(Scenario::Search, 1).next().unwrap();
        assert_eq!(
            search.request.uri(),
            "/fhir/Observation?patient=Patient/p1&code=http://loinc.org%7C8867-4"
        );
    }

    #[test]
    fn transactions_create_a_patient_and_observations_about_it() {
        let planned = source(Scenario::Transaction, 4).next().unwrap();
        assert_eq!(planned.request.method(), Method::POST);
        assert_eq!(planned.request.uri(), "/fhir");
        assert_eq!(planned.request.headers()[CONTENT_TYPE], FHIR_JSON);
        let bundle = body_json(&planned);
        assert_eq!(bundle["type"], "transaction");
        let entries = bundle["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        let patient_url = entries[0]["fullUrl"].as_str().unwrap();
        assert!(patient_url.starts_with("urn:uuid:"));
        assert_eq!(entries[0]["request"]["url"], "Patient");
        let nhs = entries[0]["resource"]["identifier"][0]["value"]
            .as_str()
            .unwrap();
        assert!(nhs.starts_with("999") && nhs != "9990000018");
        assert_eq!(
            nhs_number(nhs[..9].parse().unwrap()).as_deref(),
            Some(nhs),
            "valid check digit"
        );
        assert_eq!(
            entries[0]["resource"]["managingOrganization"]["reference"],
            "Organization/g1"
        );
        for e in &entries[1..] {
            assert_eq!(e["request"]["method"], "POST");
            assert_eq!(e["resource"]["resourceType"], "Observation");
            assert_eq!(e["resource"]["subject"]["reference"], patient_url);
            assert_ne!(e["fullUrl"], patient_url);
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query_encode("http://loinc.org|8867-4"),
            "http://loinc.org%7C8867-4"
        );
        assert_eq!(query_encode("Patient/a b"), "Patient/a%20b");
    }
}
