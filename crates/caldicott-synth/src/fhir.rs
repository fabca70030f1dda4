//! The FHIR R4 JSON shapes the generator writes, as borrowed `serde` structs.
//!
//! Structs rather than `serde_json::Value` for three reasons: field order is fixed by the
//! declaration (so output stays byte-identical even if another crate in the build turns on
//! serde_json's `preserve_order`), `resourceType` comes first, and nothing is copied into an
//! intermediate tree. Element names and cardinalities follow the R4 (4.0.1) resource
//! definitions; arrays are written as fixed-size arrays or slices.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::date::{Date, DateTime};

pub(crate) const PATIENT_PROFILE: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient";
pub(crate) const ORGANIZATION_PROFILE: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization";
pub(crate) const ENCOUNTER_PROFILE: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter";
pub(crate) const CONDITION_PROFILE: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Condition";
pub(crate) const MEDICATION_STATEMENT_PROFILE: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-MedicationStatement";
pub(crate) const NHS_NUMBER_VERIFICATION_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
pub(crate) const NHS_NUMBER_VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
pub(crate) const ORGANIZATION_TYPE_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/organization-type";
pub(crate) const OBSERVATION_CATEGORY_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/observation-category";
pub(crate) const CONDITION_CLINICAL_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/condition-clinical";
pub(crate) const CONDITION_VERIFICATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/condition-ver-status";
pub(crate) const CONDITION_CATEGORY_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/condition-category";

/// A 128-bit id written as a lowercase RFC 4122 version-4 style UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Uuid {
    pub(crate) hi: u64,
    pub(crate) lo: u64,
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            self.hi >> 32,
            (self.hi >> 16) & 0xffff,
            self.hi & 0xffff,
            self.lo >> 48,
            self.lo & 0xffff_ffff_ffff
        )
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A relative literal reference, `Type/id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ref {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id)
    }
}

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A UK postcode such as `LS1 4AP`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Postcode {
    pub(crate) area: &'static str,
    pub(crate) district: u8,
    pub(crate) sector: u8,
    pub(crate) unit: [u8; 2],
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} {}{}{}",
            self.area,
            self.district,
            self.sector,
            char::from(self.unit[0]),
            char::from(self.unit[1])
        )
    }
}

impl Serialize for Postcode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Telephone numbers from the ranges Ofcom keeps for drama: mobiles `07700 900000`–`900999`
/// and the fictional landline area `01632 960000`–`960999`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phone {
    Mobile(u16),
    Landline(u16),
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mobile(n) => write!(f, "07700 900{n:03}"),
            Self::Landline(n) => write!(f, "01632 960{n:03}"),
        }
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One line of an address.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AddressLine {
    /// `12 Church Road`
    House {
        number: u16,
        street: &'static str,
        suffix: &'static str,
    },
    /// `Flat 3`
    Flat(u16),
    /// `The Willows Care Home`
    Named(&'static str, &'static str),
}

impl fmt::Display for AddressLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::House {
                number,
                street,
                suffix,
            } => write!(f, "{number} {street} {suffix}"),
            Self::Flat(n) => write!(f, "Flat {n}"),
            Self::Named(name, kind) => write!(f, "{name} {kind}"),
        }
    }
}

impl Serialize for AddressLine {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Two `&str` parts written as one JSON string with a space between (a practice name such
/// as `Riverside Surgery`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Joined(pub(crate) &'static str, pub(crate) &'static str);

impl fmt::Display for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

impl Serialize for Joined {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A JSON number: a whole number, or a decimal given as an integer count of 10^-scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(u32),
    /// `Decimal(725, 1)` is written `72.5`.
    Decimal(u32, u8),
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Int(v) => s.serialize_u32(v),
            // IEEE division is correctly rounded, so `v / 10^scale` is the double nearest
            // the decimal, and serde_json's shortest round-trip formatting (ryu) writes that
            // decimal back exactly: 725 / 10.0 is written `72.5`, 3805 / 100.0 `38.05`.
            Self::Decimal(v, scale) => {
                let divisor = match scale {
                    0 => 1.0,
                    1 => 10.0,
                    _ => 100.0,
                };
                s.serialize_f64(f64::from(v) / divisor)
            }
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Meta {
    pub(crate) profile: [&'static str; 1],
}

#[derive(Serialize)]
pub(crate) struct Coding<'a> {
    pub(crate) system: &'a str,
    pub(crate) code: &'a str,
    pub(crate) display: &'a str,
}

#[derive(Serialize)]
pub(crate) struct CodeableConcept<'a> {
    pub(crate) coding: [Coding<'a>; 1],
}

impl<'a> CodeableConcept<'a> {
    pub(crate) fn new(system: &'a str, code: &'a str, display: &'a str) -> Self {
        Self {
            coding: [Coding {
                system,
                code,
                display,
            }],
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Reference {
    pub(crate) reference: Ref,
}

#[derive(Serialize)]
pub(crate) struct Identifier<'a> {
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub(crate) use_: Option<&'static str>,
    pub(crate) system: &'static str,
    pub(crate) value: &'a str,
}

/// A reference to an organisation by both id and ODS code.
#[derive(Serialize)]
pub(crate) struct OrganizationReference<'a> {
    pub(crate) reference: Ref,
    #[serde(rename = "type")]
    pub(crate) type_: &'static str,
    pub(crate) identifier: Identifier<'a>,
    pub(crate) display: Joined,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Extension<'a> {
    pub(crate) url: &'static str,
    pub(crate) value_codeable_concept: CodeableConcept<'a>,
}

#[derive(Serialize)]
pub(crate) struct NhsNumberIdentifier<'a> {
    pub(crate) extension: [Extension<'a>; 1],
    pub(crate) system: &'static str,
    pub(crate) value: &'a str,
}

#[derive(Serialize)]
pub(crate) struct HumanName<'a> {
    #[serde(rename = "use")]
    pub(crate) use_: &'static str,
    pub(crate) family: &'a str,
    pub(crate) given: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<[&'a str; 1]>,
}

#[derive(Serialize)]
pub(crate) struct ContactPoint {
    pub(crate) system: &'static str,
    pub(crate) value: Phone,
    #[serde(rename = "use")]
    pub(crate) use_: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Address<'a> {
    #[serde(rename = "use")]
    pub(crate) use_: &'static str,
    pub(crate) line: &'a [AddressLine],
    pub(crate) city: &'static str,
    pub(crate) postal_code: Postcode,
    pub(crate) country: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Patient<'a> {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
    pub(crate) meta: Meta,
    pub(crate) identifier: [NhsNumberIdentifier<'a>; 1],
    pub(crate) name: [HumanName<'a>; 1],
    pub(crate) telecom: [ContactPoint; 1],
    pub(crate) gender: &'static str,
    pub(crate) birth_date: Date,
    pub(crate) address: [Address<'a>; 1],
    pub(crate) general_practitioner: [OrganizationReference<'a>; 1],
    pub(crate) managing_organization: OrganizationReference<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Organization<'a> {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
    pub(crate) meta: Meta,
    pub(crate) identifier: [Identifier<'a>; 1],
    pub(crate) active: bool,
    #[serde(rename = "type")]
    pub(crate) type_: [CodeableConcept<'a>; 1],
    pub(crate) name: Joined,
    pub(crate) telecom: [ContactPoint; 1],
    pub(crate) address: [Address<'a>; 1],
}

#[derive(Serialize)]
pub(crate) struct Period {
    pub(crate) start: DateTime,
    pub(crate) end: DateTime,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Encounter<'a> {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
    pub(crate) meta: Meta,
    pub(crate) status: &'static str,
    pub(crate) class: Coding<'a>,
    #[serde(rename = "type")]
    pub(crate) type_: [CodeableConcept<'a>; 1],
    pub(crate) subject: Reference,
    pub(crate) period: Period,
    pub(crate) service_provider: Reference,
}

#[derive(Serialize)]
pub(crate) struct Quantity {
    pub(crate) value: Num,
    pub(crate) unit: &'static str,
    pub(crate) system: &'static str,
    pub(crate) code: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Observation<'a> {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
    pub(crate) meta: Meta,
    pub(crate) status: &'static str,
    pub(crate) category: [CodeableConcept<'a>; 1],
    pub(crate) code: CodeableConcept<'a>,
    pub(crate) subject: Reference,
    pub(crate) encounter: Reference,
    pub(crate) effective_date_time: DateTime,
    pub(crate) performer: [Reference; 1],
    pub(crate) value_quantity: Quantity,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition<'a> {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
    pub(crate) meta: Meta,
    pub(crate) clinical_status: CodeableConcept<'a>,
    pub(crate) verification_status: CodeableConcept<'a>,
    pub(crate) category: [CodeableConcept<'a>; 1],
    pub(crate) code: CodeableConcept<'a>,
    pub(crate) subject: Reference,
    pub(crate) encounter: Reference,
    pub(crate) onset_date_time: Date,
    pub(crate) recorded_date: Date,
}

#[derive(Serialize)]
pub(crate) struct PeriodStart {
    pub(crate) start: Date,
}

#[derive(Serialize)]
pub(crate) struct Dosage {
    pub(crate) text: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MedicationStatement<'a> {
    pub(crate) resource_type: &'static str,
    pub(crate) id: Uuid,
    pub(crate) meta: Meta,
    pub(crate) status: &'static str,
    pub(crate) medication_codeable_concept: CodeableConcept<'a>,
    pub(crate) subject: Reference,
    pub(crate) context: Reference,
    pub(crate) effective_period: PeriodStart,
    pub(crate) date_asserted: DateTime,
    pub(crate) reason_reference: [Reference; 1],
    pub(crate) dosage: [Dosage; 1],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_exactly() {
        let cases = [
            (Num::Int(72), "72"),
            (Num::Decimal(725, 1), "72.5"),
            (Num::Decimal(368, 1), "36.8"),
            (Num::Decimal(800, 1), "80.0"),
            (Num::Decimal(3805, 2), "38.05"),
            (Num::Decimal(435, 2), "4.35"),
            (Num::Decimal(1001, 2), "10.01"),
        ];
        for (n, want) in cases {
            assert_eq!(serde_json::to_string(&n).unwrap(), want);
        }
    }

    #[test]
    fn every_one_and_two_place_decimal_round_trips_textually() {
        for v in 0..20_000u32 {
            for scale in [1u8, 2] {
                let text = serde_json::to_string(&Num::Decimal(v, scale)).unwrap();
                let (int, frac) = text.split_once('.').unwrap();
                let digits = format!("{int}{frac:0<width$}", width = usize::from(scale));
                assert_eq!(digits.parse::<u32>().unwrap(), v, "{text}");
                assert!(frac.len() <= usize::from(scale), "{text}");
            }
        }
    }

    #[test]
    fn uuid_and_reference_format() {
        let id = Uuid {
            hi: 0x0123_4567_89ab_4def,
            lo: 0x8123_4567_89ab_cdef,
        };
        assert_eq!(id.to_string(), "01234567-89ab-4def-8123-456789abcdef");
        let r = Ref {
            resource_type: "Patient",
            id,
        };
        assert_eq!(
            serde_json::to_string(&Reference { reference: r }).unwrap(),
            r#"{"reference":"Patient/01234567-89ab-4def-8123-456789abcdef"}"#
        );
    }

    #[test]
    fn small_values_format() {
        let pc = Postcode {
            area: "LS",
            district: 1,
            sector: 4,
            unit: *b"AP",
        };
        assert_eq!(pc.to_string(), "LS1 4AP");
        assert_eq!(Phone::Mobile(7).to_string(), "07700 900007");
        assert_eq!(Phone::Landline(123).to_string(), "01632 960123");
        let line = AddressLine::House {
            number: 12,
            street: "Queen's",
            suffix: "Road",
        };
        assert_eq!(serde_json::to_string(&line).unwrap(), "\"12 Queen's Road\"");
    }
}
