//! The resource classification against the generated FHIR R4 tables of `caldicott-fhir`: the
//! same 146 types, and every type of the Patient compartment in a patient-data category (so
//! no patient data can hide in a category that directory or reference roles may read).

use caldicott_fhir::definitions::{RESOURCE_TYPES, patient_compartment_params};
use caldicott_policy::{Category, classification, is_resource_type};

#[test]
fn same_types_as_the_r4_definitions() {
    let ours: Vec<&str> = classification().iter().map(|(t, _)| *t).collect();
    assert_eq!(ours, RESOURCE_TYPES);
}

#[test]
fn patient_compartment_types_are_patient_data() {
    let mut in_compartment = 0;
    for &(rtype, category) in classification() {
        if !patient_compartment_params(rtype).is_empty() {
            in_compartment += 1;
            let category = category.unwrap_or_else(|| panic!("{rtype} is unclassified"));
            assert!(category.is_patient_data(), "{rtype} is {category}");
        }
    }
    assert_eq!(in_compartment, 66);
    // Patient itself is its own compartment.
    assert_eq!(Category::of("Patient"), Some(Category::Demographics));
}

#[test]
fn directory_and_reference_are_outside_the_compartment() {
    for &(rtype, category) in classification() {
        if matches!(category, Some(Category::Directory | Category::Reference)) {
            assert!(patient_compartment_params(rtype).is_empty(), "{rtype}");
        }
    }
    for t in [
        "Organization",
        "OrganizationAffiliation",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
    ] {
        assert_eq!(Category::of(t), Some(Category::Directory), "{t}");
    }
}

#[test]
fn brief_examples_are_in_their_categories() {
    use Category::*;
    let cases: &[(&str, Category)] = &[
        ("Patient", Demographics),
        ("RelatedPerson", Demographics),
        ("Appointment", Administrative),
        ("Encounter", Administrative),
        ("EpisodeOfCare", Administrative),
        ("CareTeam", Administrative),
        ("Schedule", Administrative),
        ("Slot", Administrative),
        ("Observation", CareRecord),
        ("CarePlan", CareRecord),
        ("Condition", CareSummary),
        ("AllergyIntolerance", CareSummary),
        ("MedicationRequest", CareSummary),
        ("MedicationStatement", CareSummary),
        ("Immunization", CareSummary),
        ("Procedure", Clinical),
        ("DiagnosticReport", Clinical),
        ("DocumentReference", Clinical),
        ("Consent", Consent),
        ("Provenance", Audit),
        ("AuditEvent", Audit),
    ];
    for (t, c) in cases {
        assert_eq!(Category::of(t), Some(*c), "{t}");
    }
    assert!(!is_resource_type("Foo"));
}
