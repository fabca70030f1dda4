//! `Patient/[id]/$everything`: the patient and every resource in the patient's
//! compartment (R4 Patient CompartmentDefinition), as a searchset Bundle.

use std::collections::HashSet;

use caldicott_core::{ResourceId, ResourceType};
use caldicott_fhir::definitions;

use crate::error::ApiError;
use crate::guard::Guard;
use crate::response::BundleWriter;
use crate::search;
use crate::store::Store;

/// Most compartment resources returned in one `$everything` response.
pub const MAX_EVERYTHING: usize = 10_000;

pub fn patient_everything(
    store: &Store,
    base: &str,
    id: &ResourceId,
    guard: &Guard,
) -> Result<Vec<u8>, ApiError> {
    let patient_type = ResourceType::new("Patient").map_err(|_| ApiError::internal("type"))?;
    let patient = store.read(&patient_type, id, guard)?;
    let reference = format!("Patient/{id}");
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for t in definitions::RESOURCE_TYPES {
        let params = definitions::patient_compartment_params(t);
        if params.is_empty() || *t == "Patient" {
            continue;
        }
        let rtype = ResourceType::new(t).map_err(|_| ApiError::internal("type"))?;
        for p in params {
            let criteria = format!("{p}={reference}");
            for r in search::matching_visible(store, &rtype, &criteria, MAX_EVERYTHING, guard)? {
                if seen.insert((r.rtype.to_string(), r.id.to_string())) {
                    records.push(r);
                }
            }
        }
        if records.len() > MAX_EVERYTHING {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                crate::error::IssueType::TooLong,
                format!(
                    "this patient's record holds more than {MAX_EVERYTHING} resources; use Patient/$export"
                ),
            ));
        }
    }
    let mut b = BundleWriter::new(
        "searchset",
        Some(records.len() + 1),
        &[("self", format!("{base}/Patient/{id}/$everything"))],
    );
    b.search_entry(base, &patient, "match");
    for r in &records {
        b.search_entry(base, r, "match");
    }
    Ok(b.finish())
}
