//! The bodies of the fuzz targets over `caldicott-fhir`, shared by the targets
//! (`fuzz/fuzz_targets/*.rs`, nightly) and by the stable replay of the seeds and of fixed
//! crashes (`crates/caldicott-fhir/tests/fuzz_regressions.rs`), so that both run the same
//! checks. Uses only `caldicott_fhir` and `serde_json`.

#![allow(dead_code)]

use std::sync::LazyLock;

use caldicott_fhir::definitions::SearchParamType;
use caldicott_fhir::search::fhirpath;
use caldicott_fhir::search::query::{ParamQuery, QueryValue, RefQuery, TokenSystem};
use caldicott_fhir::search::{
    DateRange, Decimal, Extracted, RefValue, SearchValue, matching, query, terms,
};
use serde_json::Value;

/// `validate`: any bytes through the validator and, when they are a JSON object, through
/// everything that reads a stored resource.
pub fn validate(data: &[u8]) {
    let _ = caldicott_fhir::validate::validate(data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if !value.is_object() {
        return;
    }
    let _ = caldicott_fhir::facts(data);
    let _ = caldicott_fhir::search::extract::patients(&value);
    if let Ok(extracted) = caldicott_fhir::search::extract::extract(&value) {
        let _ = terms::index_terms(&extracted);
    }
}

/// The resource type a `search_query` input's first byte picks.
pub fn search_type(first: u8) -> &'static str {
    TYPES[usize::from(first) % TYPES.len()]
}

const TYPES: [&str; 32] = [
    "Practitioner",          // @
    "AllergyIntolerance",    // A
    "Bundle",                // B
    "Condition",             // C
    "DiagnosticReport",      // D
    "Encounter",             // E
    "FamilyMemberHistory",   // F
    "Group",                 // G
    "HealthcareService",     // H
    "Immunization",          // I
    "ImagingStudy",          // J
    "CarePlan",              // K
    "Location",              // L
    "MedicationRequest",     // M
    "NutritionOrder",        // N
    "Observation",           // O
    "Patient",               // P
    "QuestionnaireResponse", // Q
    "RelatedPerson",         // R
    "ServiceRequest",        // S
    "Task",                  // T
    "Consent",               // U
    "ValueSet",              // V
    "CodeSystem",            // W
    "DocumentReference",     // X
    "Procedure",             // Y
    "Organization",          // Z
    "Appointment",           // [
    "Composition",           // \
    "Coverage",              // ]
    "Specimen",              // ^
    "NotAResourceType",      // _
];

const DAY: i64 = 86_400_000_000;
/// 2020-01-01T00:00:00Z in microseconds.
const Y2020: i64 = 1_577_836_800_000_000;

fn fixed_values() -> Vec<SearchValue> {
    let dec = |s: &str| Decimal(s.to_owned());
    let s = |x: &str| Some(x.to_owned());
    vec![
        SearchValue::Token {
            system: s("http://loinc.org"),
            code: "8867-4".into(),
            text: s("Heart rate"),
        },
        SearchValue::Token {
            system: s("https://fhir.nhs.uk/Id/nhs-number"),
            code: "9434765919".into(),
            text: None,
        },
        SearchValue::Token {
            system: None,
            code: String::new(),
            text: s("Évelyn  O'Brien"),
        },
        SearchValue::Token {
            system: None,
            code: "true".into(),
            text: None,
        },
        SearchValue::String("Smith".into()),
        SearchValue::String("  Évelyn ﬁnch ".into()),
        SearchValue::String(String::new()),
        SearchValue::String("x".repeat(100)),
        SearchValue::Date(DateRange {
            start: Y2020,
            end: Y2020 + DAY,
        }),
        SearchValue::Date(DateRange {
            start: Y2020,
            end: DateRange::OPEN_END,
        }),
        SearchValue::Date(DateRange {
            start: DateRange::OPEN_START,
            end: Y2020,
        }),
        SearchValue::Date(DateRange {
            start: DateRange::OPEN_START,
            end: DateRange::OPEN_END,
        }),
        SearchValue::Date(DateRange {
            start: Y2020 + DAY,
            end: Y2020,
        }),
        SearchValue::Date(DateRange {
            start: -62_135_596_800_000_000,
            end: 253_402_300_800_000_000,
        }),
        SearchValue::Reference(RefValue {
            rtype: s("Patient"),
            id: s("p1"),
            reference: "Patient/p1".into(),
        }),
        SearchValue::Reference(RefValue {
            rtype: None,
            id: None,
            reference: "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0".into(),
        }),
        SearchValue::Reference(RefValue {
            rtype: s("Organization"),
            id: None,
            reference: String::new(),
        }),
        SearchValue::Reference(RefValue {
            rtype: None,
            id: None,
            reference: "https://example.org/fhir/Practitioner/pr-1/_history/2".into(),
        }),
        SearchValue::Quantity {
            value: dec("72.50"),
            system: s("http://unitsofmeasure.org"),
            code: s("/min"),
            unit: s("beats/minute"),
        },
        SearchValue::Quantity {
            value: dec("-1e-400"),
            system: None,
            code: None,
            unit: None,
        },
        SearchValue::Quantity {
            value: dec("1E+99999"),
            system: None,
            code: s("kg"),
            unit: None,
        },
        SearchValue::Number(dec("0")),
        SearchValue::Number(dec("100.00")),
        SearchValue::Number(dec("123456789012345678901234567890123456789")),
        SearchValue::Number(dec("not a number")),
        SearchValue::Uri("http://hl7.org/fhir/ValueSet/example".into()),
        SearchValue::Uri("http://hl7.org/fhir/".into()),
        SearchValue::Uri(String::new()),
    ]
}

/// Values a resource could have that the query's alternatives are about.
fn derived_values(p: &ParamQuery) -> Vec<SearchValue> {
    let mut out = Vec::new();
    for v in &p.values {
        match v {
            QueryValue::Token { system, code } => out.push(SearchValue::Token {
                system: match system {
                    TokenSystem::Is(s) => Some(s.clone()),
                    TokenSystem::Any | TokenSystem::None => None,
                },
                code: code.clone().unwrap_or_else(|| "x".into()),
                text: None,
            }),
            QueryValue::String(q) => {
                out.push(SearchValue::String(q.clone()));
                out.push(SearchValue::String(format!("{q} and more")));
                out.push(SearchValue::Token {
                    system: None,
                    code: String::new(),
                    text: Some(format!("the {q}")),
                });
            }
            QueryValue::Date { range, .. } => {
                out.push(SearchValue::Date(*range));
                out.push(SearchValue::Date(DateRange {
                    start: range.start,
                    end: DateRange::OPEN_END,
                }));
                out.push(SearchValue::Date(DateRange {
                    start: DateRange::OPEN_START,
                    end: range.end,
                }));
            }
            QueryValue::Reference(RefQuery::Id { rtype, id, text }) => {
                out.push(SearchValue::Reference(RefValue {
                    rtype: rtype.clone(),
                    id: Some(id.clone()),
                    reference: text.clone(),
                }));
                out.push(SearchValue::Reference(RefValue {
                    rtype: rtype.clone(),
                    id: Some(id.clone()),
                    reference: String::new(),
                }));
                out.push(SearchValue::Uri(text.clone()));
            }
            QueryValue::Reference(RefQuery::Url(u)) => {
                out.push(SearchValue::Reference(RefValue {
                    rtype: None,
                    id: None,
                    reference: u.clone(),
                }));
                out.push(SearchValue::Uri(u.clone()));
            }
            QueryValue::Uri(u) => {
                out.push(SearchValue::Uri(u.clone()));
                out.push(SearchValue::Uri(format!("{u}/child")));
            }
            QueryValue::Quantity { system, code, .. } => {
                out.push(SearchValue::Quantity {
                    value: Decimal("1".into()),
                    system: system.clone(),
                    code: code.clone(),
                    unit: code.clone(),
                });
            }
            QueryValue::Number { .. } => {}
        }
    }
    out
}

/// Whether a value of this variant can be extracted for a parameter of this kind.
fn fits(kind: SearchParamType, v: &SearchValue) -> bool {
    use SearchParamType as K;
    matches!(
        (kind, v),
        (K::Token, SearchValue::Token { .. })
            | (K::String, SearchValue::String(_))
            | (K::Date, SearchValue::Date(_))
            | (
                K::Reference,
                SearchValue::Reference(_) | SearchValue::Uri(_)
            )
            | (
                K::Quantity,
                SearchValue::Quantity { .. } | SearchValue::Number(_)
            )
            | (K::Number, SearchValue::Number(_))
            | (K::Uri, SearchValue::Uri(_))
    )
}

/// `search_query`: one search, its URL-decoded pairs given.
pub fn search_query(rtype: &str, pairs: &[(String, String)]) {
    let Ok(q) = query::parse(rtype, pairs) else {
        return;
    };
    let fixed = fixed_values();
    for p in &q.params {
        let lookup = terms::lookup_terms(p);
        let _ = matching::matches(p, &[]);
        let _ = matching::matches(p, &fixed);
        let mut values = fixed.clone();
        values.extend(derived_values(p));
        for v in &values {
            if !matching::matches(p, std::slice::from_ref(v)) || !fits(p.def.kind, v) {
                continue;
            }
            let Some(lookup) = &lookup else { continue };
            let stored = terms::index_terms(&[Extracted {
                code: p.def.code,
                kind: p.def.kind,
                values: vec![v.clone()],
            }]);
            assert!(
                lookup.iter().any(|t| stored.contains(t)),
                "index invariant broken: {v:?} matches {p:?}, but its terms {stored:?} \
                 miss the lookup terms {lookup:?}"
            );
        }
        let _ = matching::sort_key(&values, false);
        let _ = matching::sort_key(&values, true);
    }
}

const RESOURCES: [&str; 3] = [
    r##"{"resourceType":"Patient","id":"p1",
        "meta":{"lastUpdated":"2024-05-01T10:00:00Z","tag":[{"system":"http://t","code":"x"}]},
        "contained":[{"resourceType":"Organization","id":"org","name":"Practice"}],
        "extension":[{"url":"http://e/ethnic","valueCoding":{"code":"A"}}],
        "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],
        "active":true,
        "name":[{"use":"official","family":"Smith","given":["Eve","Ann"]},{"text":"Evie"}],
        "telecom":[{"system":"phone","value":"01632 960000"}],
        "gender":"female","birthDate":"1980-05-12","deceasedBoolean":false,
        "address":[{"line":["1 High St"],"city":"Leeds","postalCode":"LS1 1AA"}],
        "generalPractitioner":[{"reference":"#org"},{"reference":"Practitioner/pr1"}],
        "managingOrganization":{"reference":"Organization/o1","type":"Organization"},
        "link":[{"other":{"reference":"Patient/p2"},"type":"seealso"}]}"##,
    r#"{"resourceType":"Observation","id":"o1","status":"final",
        "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"HR"},
        "subject":{"reference":"Patient/p1"},
        "effectivePeriod":{"start":"2024-01-01T09:00:00+01:00"},
        "valueQuantity":{"value":72.50,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},
        "component":[{"code":{"text":"a"},"valueString":"x"},{"code":{"text":"b"},"valueInteger":3}]}"#,
    r#"{"resourceType":"Bundle","id":"b","type":"collection",
        "entry":[{"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
                  "resource":{"resourceType":"Patient","id":"p3","name":[{"family":"Jones"}]}},
                 {"resource":{"resourceType":"Questionnaire","id":"q","status":"draft",
                  "item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string"}]}]}}]}"#,
];

static PARSED: LazyLock<Vec<Value>> = LazyLock::new(|| {
    RESOURCES
        .iter()
        .map(|r| serde_json::from_str(r).expect("fixed resource is JSON"))
        .collect()
});

/// `fhirpath`: any text compiled, and what compiles type-checked and evaluated.
pub fn fhirpath(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(expr) = fhirpath::compile(&text) else {
        return;
    };
    for ty in ["Patient", "Observation", "Bundle", "Resource"] {
        let _ = fhirpath::result_types(&expr, ty);
    }
    for resource in PARSED.iter() {
        let Ok(nodes) = fhirpath::evaluate(&expr, resource) else {
            continue;
        };
        // Again from each node found (as a composite parameter's components are).
        for node in nodes.iter().take(8) {
            let _ = fhirpath::evaluate_from(&expr, resource, *node);
        }
    }
}
