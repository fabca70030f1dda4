//! Resource types grouped into the categories the minimum-necessary table speaks of.

use std::fmt;

/// A group of FHIR resource types that roles are granted together (Caldicott principle 3:
/// the minimum necessary). [`Category::of`] classifies all 146 R4 types; the few left
/// unclassified are denied to everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Who and where care is given: Organization, OrganizationAffiliation, Practitioner,
    /// PractitionerRole, Location, HealthcareService, Endpoint. Never patient data.
    Directory,
    /// Shared knowledge, never about a patient: terminology (CodeSystem, ValueSet, …),
    /// conformance (StructureDefinition, CapabilityStatement, …), medicines and substances
    /// (Medication, MedicinalProduct…, Substance…), definitions (Questionnaire,
    /// PlanDefinition, …).
    Reference,
    /// Who the patient is: Patient, RelatedPerson, Person.
    Demographics,
    /// The administration of care: Appointment, AppointmentResponse, Encounter,
    /// EpisodeOfCare, CareTeam, Schedule, Slot, Account, Coverage, CoverageEligibility*,
    /// Enrollment*.
    Administrative,
    /// The clinical items a care worker records: Observation, CarePlan, Goal,
    /// MedicationAdministration (the medicines administration record of a care home).
    CareRecord,
    /// The clinical summary a care worker reads but does not write: AllergyIntolerance,
    /// Condition, MedicationRequest, MedicationStatement, Immunization.
    CareSummary,
    /// The rest of the clinical record (DiagnosticReport, DocumentReference, Procedure,
    /// Communication, ServiceRequest, Binary, Bundle, claims, …).
    Clinical,
    /// The patient's recorded wishes: Consent.
    Consent,
    /// Who did what: AuditEvent, Provenance.
    Audit,
}

impl Category {
    /// Every category, in the order of the documented tables.
    pub const ALL: &'static [Category] = &[
        Category::Directory,
        Category::Reference,
        Category::Demographics,
        Category::Administrative,
        Category::CareRecord,
        Category::CareSummary,
        Category::Clinical,
        Category::Consent,
        Category::Audit,
    ];

    /// The number of categories.
    pub const COUNT: usize = Category::ALL.len();

    /// The category of a FHIR R4 resource type; `None` for an unknown type or one of the
    /// types deliberately left unclassified (see [`classification`]).
    pub fn of(rtype: &str) -> Option<Category> {
        lookup(rtype).and_then(|i| CLASSIFICATION[i].1)
    }

    /// Whether resources of this category are about patients (they are in, or hold, a
    /// patient's record). Directory and reference data are not.
    pub const fn is_patient_data(self) -> bool {
        !matches!(self, Category::Directory | Category::Reference)
    }

    /// The name used in the documentation and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Category::Directory => "directory",
            Category::Reference => "reference",
            Category::Demographics => "demographics",
            Category::Administrative => "administrative",
            Category::CareRecord => "care-record",
            Category::CareSummary => "care-summary",
            Category::Clinical => "clinical",
            Category::Consent => "consent",
            Category::Audit => "audit",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every FHIR R4 (4.0.1) resource type, sorted, with its category (`None`: unclassified,
/// denied to everyone: operation messages such as `Parameters` and `OperationOutcome`,
/// messaging and subscriptions, testing, contracts and payments, which Caldicott does not
/// serve).
pub fn classification() -> &'static [(&'static str, Option<Category>)] {
    CLASSIFICATION
}

/// Whether `rtype` is a FHIR R4 resource type (classified or not).
pub fn is_resource_type(rtype: &str) -> bool {
    lookup(rtype).is_some()
}

/// The static copy of a resource type's name, for values that keep it.
pub(crate) fn intern(rtype: &str) -> Option<&'static str> {
    lookup(rtype).map(|i| CLASSIFICATION[i].0)
}

fn lookup(rtype: &str) -> Option<usize> {
    CLASSIFICATION
        .binary_search_by(|(name, _)| (*name).cmp(rtype))
        .ok()
}

use Category::{
    Administrative as Adm, Audit as Aud, CareRecord as Rec, CareSummary as Sum, Clinical as Cli,
    Consent as Con, Demographics as Dem, Directory as Dir, Reference as Ref,
};

#[rustfmt::skip]
const CLASSIFICATION: &[(&str, Option<Category>)] = &[
    ("Account", Some(Adm)),
    ("ActivityDefinition", Some(Ref)),
    ("AdverseEvent", Some(Cli)),
    ("AllergyIntolerance", Some(Sum)),
    ("Appointment", Some(Adm)),
    ("AppointmentResponse", Some(Adm)),
    ("AuditEvent", Some(Aud)),
    ("Basic", Some(Cli)),
    ("Binary", Some(Cli)),
    ("BiologicallyDerivedProduct", None),
    ("BodyStructure", Some(Cli)),
    ("Bundle", Some(Cli)),
    ("CapabilityStatement", Some(Ref)),
    ("CarePlan", Some(Rec)),
    ("CareTeam", Some(Adm)),
    ("CatalogEntry", Some(Ref)),
    ("ChargeItem", Some(Cli)),
    ("ChargeItemDefinition", Some(Ref)),
    ("Claim", Some(Cli)),
    ("ClaimResponse", Some(Cli)),
    ("ClinicalImpression", Some(Cli)),
    ("CodeSystem", Some(Ref)),
    ("Communication", Some(Cli)),
    ("CommunicationRequest", Some(Cli)),
    ("CompartmentDefinition", Some(Ref)),
    ("Composition", Some(Cli)),
    ("ConceptMap", Some(Ref)),
    ("Condition", Some(Sum)),
    ("Consent", Some(Con)),
    ("Contract", None),
    ("Coverage", Some(Adm)),
    ("CoverageEligibilityRequest", Some(Adm)),
    ("CoverageEligibilityResponse", Some(Adm)),
    ("DetectedIssue", Some(Cli)),
    ("Device", Some(Cli)),
    ("DeviceDefinition", Some(Ref)),
    ("DeviceMetric", None),
    ("DeviceRequest", Some(Cli)),
    ("DeviceUseStatement", Some(Cli)),
    ("DiagnosticReport", Some(Cli)),
    ("DocumentManifest", Some(Cli)),
    ("DocumentReference", Some(Cli)),
    ("EffectEvidenceSynthesis", Some(Ref)),
    ("Encounter", Some(Adm)),
    ("Endpoint", Some(Dir)),
    ("EnrollmentRequest", Some(Adm)),
    ("EnrollmentResponse", Some(Adm)),
    ("EpisodeOfCare", Some(Adm)),
    ("EventDefinition", Some(Ref)),
    ("Evidence", Some(Ref)),
    ("EvidenceVariable", Some(Ref)),
    ("ExampleScenario", Some(Ref)),
    ("ExplanationOfBenefit", Some(Cli)),
    ("FamilyMemberHistory", Some(Cli)),
    ("Flag", Some(Cli)),
    ("Goal", Some(Rec)),
    ("GraphDefinition", Some(Ref)),
    ("Group", Some(Cli)),
    ("GuidanceResponse", Some(Cli)),
    ("HealthcareService", Some(Dir)),
    ("ImagingStudy", Some(Cli)),
    ("Immunization", Some(Sum)),
    ("ImmunizationEvaluation", Some(Cli)),
    ("ImmunizationRecommendation", Some(Cli)),
    ("ImplementationGuide", Some(Ref)),
    ("InsurancePlan", Some(Ref)),
    ("Invoice", Some(Cli)),
    ("Library", Some(Ref)),
    ("Linkage", None),
    ("List", Some(Cli)),
    ("Location", Some(Dir)),
    ("Measure", Some(Ref)),
    ("MeasureReport", Some(Cli)),
    ("Media", Some(Cli)),
    ("Medication", Some(Ref)),
    ("MedicationAdministration", Some(Rec)),
    ("MedicationDispense", Some(Cli)),
    ("MedicationKnowledge", Some(Ref)),
    ("MedicationRequest", Some(Sum)),
    ("MedicationStatement", Some(Sum)),
    ("MedicinalProduct", Some(Ref)),
    ("MedicinalProductAuthorization", Some(Ref)),
    ("MedicinalProductContraindication", Some(Ref)),
    ("MedicinalProductIndication", Some(Ref)),
    ("MedicinalProductIngredient", Some(Ref)),
    ("MedicinalProductInteraction", Some(Ref)),
    ("MedicinalProductManufactured", Some(Ref)),
    ("MedicinalProductPackaged", Some(Ref)),
    ("MedicinalProductPharmaceutical", Some(Ref)),
    ("MedicinalProductUndesirableEffect", Some(Ref)),
    ("MessageDefinition", Some(Ref)),
    ("MessageHeader", None),
    ("MolecularSequence", Some(Cli)),
    ("NamingSystem", Some(Ref)),
    ("NutritionOrder", Some(Cli)),
    ("Observation", Some(Rec)),
    ("ObservationDefinition", Some(Ref)),
    ("OperationDefinition", Some(Ref)),
    ("OperationOutcome", None),
    ("Organization", Some(Dir)),
    ("OrganizationAffiliation", Some(Dir)),
    ("Parameters", None),
    ("Patient", Some(Dem)),
    ("PaymentNotice", None),
    ("PaymentReconciliation", None),
    ("Person", Some(Dem)),
    ("PlanDefinition", Some(Ref)),
    ("Practitioner", Some(Dir)),
    ("PractitionerRole", Some(Dir)),
    ("Procedure", Some(Cli)),
    ("Provenance", Some(Aud)),
    ("Questionnaire", Some(Ref)),
    ("QuestionnaireResponse", Some(Cli)),
    ("RelatedPerson", Some(Dem)),
    ("RequestGroup", Some(Cli)),
    ("ResearchDefinition", Some(Ref)),
    ("ResearchElementDefinition", Some(Ref)),
    ("ResearchStudy", Some(Ref)),
    ("ResearchSubject", Some(Cli)),
    ("RiskAssessment", Some(Cli)),
    ("RiskEvidenceSynthesis", Some(Ref)),
    ("Schedule", Some(Adm)),
    ("SearchParameter", Some(Ref)),
    ("ServiceRequest", Some(Cli)),
    ("Slot", Some(Adm)),
    ("Specimen", Some(Cli)),
    ("SpecimenDefinition", Some(Ref)),
    ("StructureDefinition", Some(Ref)),
    ("StructureMap", Some(Ref)),
    ("Subscription", None),
    ("Substance", Some(Ref)),
    ("SubstanceNucleicAcid", Some(Ref)),
    ("SubstancePolymer", Some(Ref)),
    ("SubstanceProtein", Some(Ref)),
    ("SubstanceReferenceInformation", Some(Ref)),
    ("SubstanceSourceMaterial", Some(Ref)),
    ("SubstanceSpecification", Some(Ref)),
    ("SupplyDelivery", Some(Cli)),
    ("SupplyRequest", Some(Cli)),
    ("Task", Some(Cli)),
    ("TerminologyCapabilities", Some(Ref)),
    ("TestReport", None),
    ("TestScript", None),
    ("ValueSet", Some(Ref)),
    ("VerificationResult", None),
    ("VisionPrescription", Some(Cli)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_complete() {
        assert_eq!(CLASSIFICATION.len(), 146);
        assert!(CLASSIFICATION.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(Category::of("Observation"), Some(Category::CareRecord));
        assert_eq!(Category::of("Parameters"), None);
        assert_eq!(
            Category::of("observation"),
            None,
            "type names are case-sensitive"
        );
        assert!(is_resource_type("Parameters"));
        assert!(!is_resource_type("Patients"));
    }
}
