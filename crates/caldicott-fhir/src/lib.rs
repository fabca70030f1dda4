//! FHIR R4 knowledge that the rest of Caldicott needs, kept apart from storage and HTTP.
//!
//! Today this crate answers one question for the importer: given the JSON of a resource,
//! what are its type and id, which organisation and patient does it belong to, and which
//! terms should the vault index it under ([`facts`]). It checks the UK Core rules that
//! matter for safety on the way: an NHS number identifier must pass its check digit, an ODS
//! code must be well formed.
//!
//! It is not (yet) a validator of the whole R4 structure, a search engine or the REST API:
//! those arrive with the FHIR API issue, generated from the official definitions. It does
//! no I/O.

#![forbid(unsafe_code)]

use caldicott_core::{
    NHS_NUMBER_SYSTEM, NhsNumber, ODS_ORGANISATION_SYSTEM, OdsCode, ResourceId, ResourceType,
};
use serde_json::Value;

/// Why a resource was refused. Messages name the element at fault, never its value
/// (which may be a patient identifier).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactsError {
    /// Not JSON, or not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// `resourceType` missing or malformed.
    #[error("resourceType is missing or not a FHIR resource type name")]
    ResourceType,
    /// `id` missing or malformed.
    #[error("id is missing or not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")]
    Id,
    /// An NHS number identifier fails validation.
    #[error("{element}: NHS number identifier is not valid: {reason}")]
    NhsNumber { element: String, reason: String },
    /// An ODS code identifier is malformed.
    #[error("{element}: ODS organisation code is not well formed")]
    OdsCode { element: String },
}

/// What the importer needs to know about one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFacts {
    pub resource_type: ResourceType,
    pub id: ResourceId,
    /// For an Organization: its own ODS code.
    pub own_ods: Option<OdsCode>,
    /// For a Patient: the ODS code of its managing organisation or GP, when given inline.
    pub organisation_ods: Option<OdsCode>,
    /// For a Patient: the `Organization/<id>` it references (managing org, then GP).
    pub organisation_ref: Option<String>,
    /// For any other resource: the `Patient/<id>` it concerns (`subject` or `patient`).
    pub patient_ref: Option<String>,
    /// Search terms: `(parameter, value)`, e.g. `("identifier", "system|value")`.
    pub terms: Vec<(String, String)>,
}

/// Extracts the facts of one resource from its JSON text.
pub fn facts(json: &[u8]) -> Result<ResourceFacts, FactsError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| FactsError::NotJson(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| FactsError::NotJson("expected an object".into()))?;
    let resource_type = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(|s| ResourceType::new(s).ok())
        .ok_or(FactsError::ResourceType)?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| ResourceId::new(s).ok())
        .ok_or(FactsError::Id)?;
    let mut f = ResourceFacts {
        resource_type,
        id,
        own_ods: None,
        organisation_ods: None,
        organisation_ref: None,
        patient_ref: None,
        terms: Vec::new(),
    };
    if let Some(ids) = obj.get("identifier").and_then(Value::as_array) {
        for (i, ident) in ids.iter().enumerate() {
            let element = format!("{}.identifier[{i}]", f.resource_type);
            let system = ident.get("system").and_then(Value::as_str).unwrap_or("");
            let Some(value) = ident.get("value").and_then(Value::as_str) else {
                continue;
            };
            let value = match system {
                NHS_NUMBER_SYSTEM => NhsNumber::parse(value)
                    .map_err(|e| FactsError::NhsNumber {
                        element,
                        reason: e.to_string(),
                    })?
                    .as_str()
                    .to_owned(),
                ODS_ORGANISATION_SYSTEM => {
                    let ods = OdsCode::parse(value).map_err(|_| FactsError::OdsCode { element })?;
                    if f.resource_type.as_str() == "Organization" {
                        f.own_ods = Some(ods.clone());
                    }
                    ods.as_str().to_owned()
                }
                _ => value.to_owned(),
            };
            if !system.is_empty() {
                f.terms
                    .push(("identifier".into(), format!("{system}|{value}")));
            }
            f.terms.push(("identifier".into(), value));
        }
    }
    if f.resource_type.as_str() == "Patient" {
        let refs = obj.get("managingOrganization").into_iter().chain(
            obj.get("generalPractitioner")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for (n, r) in refs.enumerate() {
            let element = format!("Patient.organisation reference {n}");
            let ods_ident = r.get("identifier").filter(|i| {
                i.get("system").and_then(Value::as_str) == Some(ODS_ORGANISATION_SYSTEM)
            });
            if let (None, Some(ident)) = (&f.organisation_ods, ods_ident) {
                let code = ident.get("value").and_then(Value::as_str).unwrap_or("");
                f.organisation_ods =
                    Some(OdsCode::parse(code).map_err(|_| FactsError::OdsCode { element })?);
            }
            if f.organisation_ref.is_none() {
                f.organisation_ref = r
                    .get("reference")
                    .and_then(Value::as_str)
                    .filter(|s| s.starts_with("Organization/"))
                    .map(str::to_owned);
            }
        }
    } else {
        f.patient_ref = ["subject", "patient"]
            .iter()
            .filter_map(|k| obj.get(*k)?.get("reference")?.as_str())
            .find(|s| s.starts_with("Patient/"))
            .map(str::to_owned);
        if let Some(p) = &f.patient_ref {
            f.terms.push(("patient".into(), p.clone()));
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_facts() {
        let j = br#"{"resourceType":"Patient","id":"p1",
            "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"943 476 5919"}],
            "managingOrganization":{"reference":"Organization/o1",
               "identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"a81001"}}}"#;
        let f = facts(j).unwrap();
        assert_eq!(f.resource_type.as_str(), "Patient");
        assert_eq!(f.organisation_ods.unwrap().as_str(), "A81001");
        assert_eq!(f.organisation_ref.as_deref(), Some("Organization/o1"));
        assert!(f.terms.contains(&(
            "identifier".into(),
            format!("{NHS_NUMBER_SYSTEM}|9434765919")
        )));
    }

    #[test]
    fn bad_nhs_number_is_refused_without_echoing_it() {
        let j = br#"{"resourceType":"Patient","id":"p1",
            "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765918"}]}"#;
        let e = facts(j).unwrap_err();
        assert!(e.to_string().starts_with("Patient.identifier[0]"), "{e}");
        assert!(!e.to_string().contains("9434765918"));
    }

    #[test]
    fn observation_links_to_patient() {
        let f = facts(
            br#"{"resourceType":"Observation","id":"o","subject":{"reference":"Patient/p1"}}"#,
        )
        .unwrap();
        assert_eq!(f.patient_ref.as_deref(), Some("Patient/p1"));
        assert_eq!(f.terms, [("patient".to_string(), "Patient/p1".to_string())]);
    }

    #[test]
    fn malformed_input() {
        assert!(matches!(facts(b"[1]"), Err(FactsError::NotJson(_))));
        assert!(matches!(facts(b"{"), Err(FactsError::NotJson(_))));
        assert_eq!(facts(br#"{"id":"x"}"#), Err(FactsError::ResourceType));
        assert_eq!(
            facts(br#"{"resourceType":"Patient","id":"a/b"}"#),
            Err(FactsError::Id)
        );
        assert_eq!(facts(br#"{"resourceType":"Patient"}"#), Err(FactsError::Id));
    }
}
