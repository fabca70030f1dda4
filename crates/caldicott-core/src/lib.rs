//! Domain values shared by every Caldicott crate.
//!
//! This crate holds the small, validated types that the rest of the system passes around
//! instead of bare strings: an [`NhsNumber`] is always ten digits with a correct modulus-11
//! check digit, an [`OdsCode`] is always a well-formed organisation code, and a
//! [`ResourceType`], [`ResourceId`] or [`VersionId`] always satisfies the FHIR R4 rules for
//! those values. Construct them with `parse`/`new`; a value that exists is valid.
//!
//! It is *not* a place for I/O, cryptography, HTTP or SQL: it depends on nothing but
//! `serde` and `thiserror`, so the pure decision crates can use it freely.
//!
//! Identifiers of patients are sensitive. [`NhsNumber`]'s `Debug` output is redacted so a
//! stray `{:?}` in a log line cannot leak one; `Display` shows the number and must be used
//! deliberately.

#![forbid(unsafe_code)]

mod ids;
mod nhs_number;
mod ods;

pub use ids::{IdError, ResourceId, ResourceType, VersionId};
pub use nhs_number::{NhsNumber, NhsNumberError};
pub use ods::{OdsCode, OdsCodeError};

/// FHIR identifier system for NHS numbers (UK Core).
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// FHIR identifier system for ODS organisation codes (UK Core).
pub const ODS_ORGANISATION_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
