//! Coded clinical content: SNOMED CT, LOINC and UCUM codes with their displays.
//!
//! The SNOMED CT codes were checked against published UK code lists and the UK Core examples
//! when this crate was written; none is invented. Displays are SNOMED CT descriptions of the
//! concept (dm+d names for medicines). LOINC and UCUM codes are the ones the FHIR vital-signs
//! profiles name.

pub(crate) const SNOMED: &str = "http://snomed.info/sct";
pub(crate) const LOINC: &str = "http://loinc.org";
pub(crate) const UCUM: &str = "http://unitsofmeasure.org";

/// A long-term condition the generator can record.
#[derive(Debug)]
pub(crate) struct ConditionDef {
    pub(crate) code: &'static str,
    pub(crate) display: &'static str,
    /// Youngest age, in whole years, at which it is generated.
    pub(crate) min_age: u32,
    /// Relative weight among the conditions a patient is eligible for, for adults under 65
    /// and for people aged 65 and over (children use the first).
    pub(crate) weight: [u32; 2],
    /// Index into [`MEDICATIONS`] of the usual treatment, if any.
    pub(crate) medication: Option<usize>,
}

pub(crate) const HYPERTENSION: usize = 0;
pub(crate) const DEMENTIA: usize = 3;
pub(crate) const ATRIAL_FIBRILLATION: usize = 5;

pub(crate) const CONDITIONS: &[ConditionDef] = &[
    ConditionDef {
        code: "38341003",
        display: "Hypertensive disorder, systemic arterial",
        min_age: 30,
        weight: [30, 45],
        medication: Some(0),
    },
    ConditionDef {
        code: "44054006",
        display: "Diabetes mellitus type 2",
        min_age: 30,
        weight: [15, 20],
        medication: Some(1),
    },
    ConditionDef {
        code: "195967001",
        display: "Asthma",
        min_age: 3,
        weight: [25, 8],
        medication: Some(2),
    },
    ConditionDef {
        code: "52448006",
        display: "Dementia",
        min_age: 65,
        weight: [0, 15],
        medication: Some(3),
    },
    ConditionDef {
        code: "13645005",
        display: "Chronic obstructive lung disease",
        min_age: 40,
        weight: [4, 12],
        medication: Some(2),
    },
    ConditionDef {
        code: "49436004",
        display: "Atrial fibrillation",
        min_age: 50,
        weight: [3, 14],
        medication: Some(5),
    },
    ConditionDef {
        code: "40930008",
        display: "Hypothyroidism",
        min_age: 20,
        weight: [8, 10],
        medication: Some(4),
    },
    ConditionDef {
        code: "396275006",
        display: "Osteoarthritis",
        min_age: 45,
        weight: [8, 18],
        medication: None,
    },
    ConditionDef {
        code: "35489007",
        display: "Depressive disorder",
        min_age: 12,
        weight: [16, 8],
        medication: None,
    },
];

/// A medicine, coded with the SNOMED CT clinical drug concept for the medicine and strength
/// (system `http://snomed.info/sct`) and displayed with its dm+d name. dm+d has been moving
/// some VMPs (virtual medicinal products) to new UK-extension ids, so a system that validates
/// against the current dm+d release may need to map these.
#[derive(Debug)]
pub(crate) struct MedicationDef {
    pub(crate) code: &'static str,
    pub(crate) display: &'static str,
    pub(crate) dosage: &'static str,
}

pub(crate) const MEDICATIONS: &[MedicationDef] = &[
    MedicationDef {
        code: "319283006",
        display: "Amlodipine 5mg tablets",
        dosage: "One tablet once a day",
    },
    MedicationDef {
        code: "325278007",
        display: "Metformin 500mg tablets",
        dosage: "One tablet twice a day with food",
    },
    MedicationDef {
        code: "320176004",
        display: "Salbutamol 100micrograms/dose inhaler CFC free",
        dosage: "Two puffs up to four times a day when required",
    },
    MedicationDef {
        code: "323365007",
        display: "Donepezil 10mg tablets",
        dosage: "One tablet at night",
    },
    MedicationDef {
        code: "374295007",
        display: "Levothyroxine sodium 50microgram tablets",
        dosage: "One tablet in the morning before breakfast",
    },
    MedicationDef {
        code: "319733000",
        display: "Warfarin 1mg tablets",
        dosage: "As directed by the anticoagulant clinic",
    },
];

/// The kind of a GP encounter, with its FHIR class (v3 ActCode) and SNOMED CT type.
#[derive(Debug)]
pub(crate) struct EncounterKind {
    pub(crate) class_code: &'static str,
    pub(crate) class_display: &'static str,
    pub(crate) type_code: &'static str,
    pub(crate) type_display: &'static str,
    /// Whether vital signs can be measured (not over the telephone).
    pub(crate) in_person: bool,
}

pub(crate) const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

pub(crate) const SURGERY: EncounterKind = EncounterKind {
    class_code: "AMB",
    class_display: "ambulatory",
    type_code: "308335008",
    type_display: "Patient encounter procedure",
    in_person: true,
};
pub(crate) const TELEPHONE: EncounterKind = EncounterKind {
    class_code: "VR",
    class_display: "virtual",
    type_code: "185317003",
    type_display: "Telephone encounter",
    in_person: false,
};
pub(crate) const HOME_VISIT: EncounterKind = EncounterKind {
    class_code: "HH",
    class_display: "home health",
    type_code: "439708006",
    type_display: "Home visit",
    in_person: true,
};

/// A vital sign with its LOINC code, UCUM unit and UK Core profile.
#[derive(Debug)]
pub(crate) struct VitalSign {
    pub(crate) loinc: &'static str,
    pub(crate) display: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) ucum: &'static str,
    pub(crate) profile: &'static str,
}

pub(crate) const HEART_RATE: VitalSign = VitalSign {
    loinc: "8867-4",
    display: "Heart rate",
    unit: "beats/minute",
    ucum: "/min",
    profile: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation-VitalSigns-HeartRate",
};
/// Systolic pressure on its own: UK Core's blood-pressure profile wants the 85354-9 panel,
/// so a lone systolic reading claims only the general Observation profile.
pub(crate) const SYSTOLIC: VitalSign = VitalSign {
    loinc: "8480-6",
    display: "Systolic blood pressure",
    unit: "mmHg",
    ucum: "mm[Hg]",
    profile: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation",
};
pub(crate) const BODY_WEIGHT: VitalSign = VitalSign {
    loinc: "29463-7",
    display: "Body weight",
    unit: "kg",
    ucum: "kg",
    profile: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation-VitalSigns-BodyWeight",
};
pub(crate) const BODY_TEMPERATURE: VitalSign = VitalSign {
    loinc: "8310-5",
    display: "Body temperature",
    unit: "degree Celsius",
    ucum: "Cel",
    profile: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation-VitalSigns-BodyTemperature",
};
