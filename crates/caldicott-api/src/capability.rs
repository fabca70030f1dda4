//! `GET /fhir/metadata`: the CapabilityStatement, made from the same tables the server
//! runs on (the generated R4 definitions and the API's own lists), so it cannot claim
//! what the server does not do.

use caldicott_fhir::definitions::{self, SearchParamType};
use serde_json::{Value, json};

use crate::store::READ_ONLY_TYPES;

/// The resource types with their own search parameters indexed and documented as
/// first-class (every other R4 type is stored, indexed the same way, and readable).
pub const FIRST_CLASS: &[&str] = &[
    "AllergyIntolerance",
    "CareTeam",
    "Condition",
    "Consent",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "EpisodeOfCare",
    "Immunization",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
];

fn type_name(t: SearchParamType) -> Option<&'static str> {
    Some(match t {
        SearchParamType::Number => "number",
        SearchParamType::Date => "date",
        SearchParamType::String => "string",
        SearchParamType::Token => "token",
        SearchParamType::Reference => "reference",
        SearchParamType::Quantity => "quantity",
        SearchParamType::Uri => "uri",
        // Composite and special parameters are not searchable here.
        SearchParamType::Composite | SearchParamType::Special => return None,
    })
}

/// The CapabilityStatement for a server at `base`.
pub fn statement(base: &str) -> Value {
    let resources: Vec<Value> = definitions::RESOURCE_TYPES
        .iter()
        .filter(|t| **t != "Parameters")
        .map(|t| resource(t))
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-29",
        "publisher": "Caldicott",
        "kind": "instance",
        "software": { "name": "Caldicott", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Caldicott encrypted FHIR record store", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [
                { "code": "transaction" },
                { "code": "batch" },
                { "code": "history-system" }
            ],
            "operation": [
                { "name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" }
            ]
        }]
    })
}

fn resource(t: &str) -> Value {
    let read_only = READ_ONLY_TYPES.contains(&t);
    let mut interactions = vec![
        "read",
        "vread",
        "history-instance",
        "history-type",
        "search-type",
    ];
    if !read_only {
        interactions.extend(["create", "update", "patch", "delete"]);
    }
    let params: Vec<Value> = definitions::search_params(t)
        .filter(|p| p.expression.is_some())
        .filter_map(|p| type_name(p.kind).map(|k| json!({ "name": p.code, "type": k })))
        .collect();
    let mut v = json!({
        "type": t,
        "interaction": interactions.iter().map(|c| json!({ "code": c })).collect::<Vec<_>>(),
        "versioning": "versioned-update",
        "readHistory": true,
        "updateCreate": !read_only,
        "conditionalCreate": !read_only,
        "conditionalUpdate": !read_only,
        "conditionalDelete": if read_only { "not-supported" } else { "single" },
        "searchParam": params,
        "searchInclude": definitions::search_params(t)
            .filter(|p| p.kind == SearchParamType::Reference && p.expression.is_some())
            .map(|p| format!("{t}:{}", p.code))
            .collect::<Vec<_>>(),
    });
    if t == "Patient" {
        v["operation"] = json!([
            { "name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything" },
            { "name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export" }
        ]);
    }
    if t == "Group" {
        v["operation"] = json!([
            { "name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export" }
        ]);
    }
    v
}
