//! The typed values a search parameter takes on a resource.

use crate::definitions::SearchParamType;

/// A FHIR decimal as written, so precision survives (`72.50` is not `72.5` when a search
/// asks for an implicit range). Holds a validated JSON number text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(pub String);

/// A half-open range of time `[start, end)`, in microseconds since the Unix epoch (UTC).
/// A FHIR date or dateTime stands for the whole interval its precision implies
/// (`2020` is the year 2020); a Period with no end extends to [`DateRange::OPEN_END`], with
/// no start from [`DateRange::OPEN_START`]. Values without a time zone are taken as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateRange {
    pub start: i64,
    pub end: i64,
}

impl DateRange {
    pub const OPEN_START: i64 = i64::MIN;
    pub const OPEN_END: i64 = i64::MAX;
}

/// A reference as found in a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefValue {
    /// `Patient` in `Patient/123` (or in an absolute URL ending `.../Patient/123`), or the
    /// `type` element when given.
    pub rtype: Option<String>,
    /// `123` in `Patient/123`.
    pub id: Option<String>,
    /// The `reference` string exactly as written (a relative, absolute, `urn:uuid:` or
    /// `#contained` reference); empty for a logical reference by identifier only.
    pub reference: String,
}

/// One value of one search parameter on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SearchValue {
    /// From `code`, `Coding`, `CodeableConcept` (one per coding), `Identifier`,
    /// `ContactPoint` (code = value), `boolean` (`true`/`false`), `id`, `uri` used as tokens.
    Token {
        system: Option<String>,
        /// Empty for a text-only value (see [`extract`](super::extract)): a CodeableConcept
        /// whose `text` none of its codings carries, or an Identifier with only `type.text`.
        /// Such a value serves `:text` alone.
        code: String,
        /// Coding.display, CodeableConcept.text or Identifier.type.text, for `:text`.
        text: Option<String>,
    },
    /// A string as written (normalisation for matching happens in `matching`/`terms`).
    /// HumanName and Address give one value per part (family, each given, text, line,
    /// city, postalCode, ...).
    String(String),
    Date(DateRange),
    Reference(RefValue),
    Quantity {
        value: Decimal,
        system: Option<String>,
        code: Option<String>,
        unit: Option<String>,
    },
    Number(Decimal),
    Uri(String),
}

/// The values of one search parameter on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The parameter's code (`birthdate`, `subject`, `_lastUpdated`).
    pub code: &'static str,
    pub kind: SearchParamType,
    /// Empty when the resource has no value for it (what `:missing=true` finds).
    pub values: Vec<SearchValue>,
}
