//! The values of a resource's search parameters, and the patients whose compartment it is in.
//!
//! [`extract`] evaluates the compiled expression of every search parameter of the resource's
//! type (see [`fhirpath::compiled_params`]) and turns each selected node into
//! [`SearchValue`]s according to the node's FHIR type and the parameter's kind. A node
//! whose type does not fit the kind (a `SampledData` under a quantity parameter) gives
//! nothing. Composite and special parameters, and those without an expression (`_text`,
//! `_content`, ...), are not extracted.
//!
//! # Conversions
//!
//! - **token**: a primitive (`code`, `string`, `id`, `uri`, `boolean` as `true`/`false`, a
//!   number as written) gives its text as the code, with no system. A `Coding` gives its
//!   system, code and display (as the text). A `CodeableConcept` gives one token per coding,
//!   whose text is the coding's display or else `CodeableConcept.text`; when the concept has
//!   a `text` that none of those tokens carries (no codings, or codings with their own
//!   displays), it also gives a *text-only* token: empty code, no system, that text — so
//!   `:text` finds it and no code search does. An `Identifier` gives its system and value,
//!   with `type.text` as the text (text-only when it has no value). A `ContactPoint` gives
//!   its value, with no system (its `system` is `phone`/`email`, not a code system).
//! - **string**: a primitive string as written; a `HumanName` each of family, given,
//!   prefix, suffix and text; an `Address` each line, city, district, state, postalCode,
//!   country and text.
//! - **date**: a `date`, `dateTime` or `instant` is the interval its precision implies
//!   ([`date_range`]); a `Period` runs from its start's start to its end's end, open where
//!   absent; a `Timing` spans its `event`s and its `repeat.boundsPeriod` (the "outer limits"
//!   the specification asks for). Unparseable dates give nothing (the validator refuses them
//!   before storage).
//! - **reference**: a `Reference` gives the type and id of a `Type/id` reference (relative,
//!   or an absolute URL ending so; a `_history` version is dropped), the type of a
//!   contained resource for `#id`, or else its `type` element, with the reference text as
//!   written (empty for a logical reference by identifier only; a reference with neither
//!   gives nothing). A `canonical` or `uri` gives its text with no type or id. An inline
//!   resource (`Bundle.entry[0].resource` for `Bundle?composition`) gives `Type/id` when it
//!   has an id.
//! - **quantity**: a `Quantity` or any of its profiles and specialisations (`Age`,
//!   `Duration`, `Distance`, `Count`, `SimpleQuantity`, `MoneyQuantity`) gives value, system,
//!   code and unit; a `Money` its value with the currency as the code and
//!   `urn:iso:std:iso:4217` as the system; a `Range` gives its `low` and its `high` as two
//!   quantities (an approximation: a search for a value strictly inside the range finds
//!   only what matches an end); `SampledData` gives nothing. A quantity without a numeric
//!   value gives nothing.
//! - **number**: an `integer`, `decimal`, `positiveInt` or `unsignedInt`; a `Range` (the
//!   probability of a `RiskAssessment`) the values of its `low` and `high`, as for quantities.
//!
//! What gives nothing although an expression can select it: the `string` and `Age`/`Range`
//! forms of a date parameter's choice element (`Procedure.performedString`,
//! `Immunization.occurrenceString`, `CarePlan...scheduledString`: no dates to search by),
//! a `SampledData` under a quantity parameter, and `Consent.sourceAttachment` under
//! `source-reference`. A test checks that every other type any R4 expression can give has
//! a conversion.
//! - **uri**: a `uri`, `url`, `canonical`, `oid` or `uuid`.
//!
//! Numbers keep their text only as far as `serde_json` does: with its `arbitrary_precision`
//! feature (which the workspace enables) `72.50` stays `72.50`; without it the text is that
//! of the parsed `f64` (`72.5`). [`Decimal`] holds `Number::to_string()`.

use serde_json::Value;

use super::fhirpath::{self, CompiledParam, Expr, FhirPathError, Node};
use super::{DateRange, Decimal, Extracted, RefValue, SearchValue};
use crate::definitions::{self, SearchParamType};

/// Why the search values of a resource cannot be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// `resourceType` is missing or not an R4 resource type.
    #[error("resourceType is missing or not an R4 resource type")]
    ResourceType,
    /// [`extract_params`] was asked for a code the resource type does not have.
    #[error("{resource_type} has no search parameter {code}")]
    UnknownParam {
        resource_type: &'static str,
        code: String,
    },
    /// [`extract_params`] was asked for a composite or special parameter, or one without an
    /// expression.
    #[error(
        "search parameter {code} has no values to extract (composite, special or without expression)"
    )]
    NotExtractable { code: &'static str },
    /// A parameter's expression failed to compile or to evaluate.
    #[error("search parameter {code}: {error}")]
    FhirPath {
        code: &'static str,
        #[source]
        error: FhirPathError,
    },
}

/// The values of every search parameter of the resource's type that has values (kinds
/// number, date, string, token, reference, quantity and uri, with an expression): its own,
/// then the common ones (`_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source`),
/// in [`definitions::search_params`] order, one [`Extracted`] per parameter, with empty
/// `values` when the resource has none.
pub fn extract(resource: &Value) -> Result<Vec<Extracted>, ExtractError> {
    let root = fhirpath::resource_node(resource).ok_or(ExtractError::ResourceType)?;
    let params = fhirpath::compiled_params(root.fhir_type);
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        if let Some(expr) = extractable(p) {
            out.push(extract_one(p, expr?, resource, root)?);
        }
    }
    Ok(out)
}

/// The values of just the parameters `codes`, in that order (for sorting and `_include`).
/// Fails on a code the type does not have, or one that has no values to extract.
pub fn extract_params(resource: &Value, codes: &[&str]) -> Result<Vec<Extracted>, ExtractError> {
    let root = fhirpath::resource_node(resource).ok_or(ExtractError::ResourceType)?;
    let mut out = Vec::with_capacity(codes.len());
    for code in codes {
        let p = fhirpath::compiled_param(root.fhir_type, code).ok_or_else(|| {
            ExtractError::UnknownParam {
                resource_type: root.fhir_type,
                code: (*code).to_owned(),
            }
        })?;
        let expr = extractable(p).ok_or(ExtractError::NotExtractable { code: p.def.code })?;
        out.push(extract_one(p, expr?, resource, root)?);
    }
    Ok(out)
}

/// The compiled expression of a parameter with values to extract.
fn extractable(p: &CompiledParam) -> Option<Result<&Expr, ExtractError>> {
    if matches!(
        p.def.kind,
        SearchParamType::Composite | SearchParamType::Special
    ) {
        return None;
    }
    let expr = p.expr.as_ref()?;
    Some(expr.as_ref().map_err(|error| ExtractError::FhirPath {
        code: p.def.code,
        error: error.clone(),
    }))
}

fn extract_one(
    p: &CompiledParam,
    expr: &Expr,
    resource: &Value,
    root: Node<'_>,
) -> Result<Extracted, ExtractError> {
    let nodes =
        fhirpath::evaluate_at(expr, root, root).map_err(|error| ExtractError::FhirPath {
            code: p.def.code,
            error,
        })?;
    let mut values = Vec::new();
    for node in &nodes {
        convert(node, p.def.kind, resource, &mut values);
    }
    Ok(Extracted {
        code: p.def.code,
        kind: p.def.kind,
        values,
    })
}

/// The `Patient/<id>` references that put this resource in a patient's compartment: the
/// references to a Patient in the parameters the R4 Patient CompartmentDefinition names for
/// its type, and for a Patient its own id. Sorted, without duplicates; empty for a type
/// outside the compartment (Organization) or input that is not a resource.
///
/// Only relative references (`Patient/1`, `Patient/1/_history/2`) count: an absolute URL
/// may name a patient on another server that shares a local id, and putting a record in
/// the wrong patient's compartment would disclose it. Contained, `urn:` and
/// identifier-only references name no stored patient.
pub fn patients(resource: &Value) -> Vec<String> {
    let Some(root) = fhirpath::resource_node(resource) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if root.fhir_type == "Patient"
        && let Some(id) = resource
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| fhirpath::is_fhir_id(id))
    {
        out.push(format!("Patient/{id}"));
    }
    for code in definitions::patient_compartment_params(root.fhir_type) {
        let Some(Some(Ok(expr))) =
            fhirpath::compiled_param(root.fhir_type, code).map(|p| p.expr.as_ref())
        else {
            continue;
        };
        let Ok(nodes) = fhirpath::evaluate_at(expr, root, root) else {
            continue;
        };
        for node in nodes {
            if node.fhir_type != "Reference" {
                continue;
            }
            let Some(text) = node.value.get("reference").and_then(Value::as_str) else {
                continue;
            };
            if text.contains("://") {
                continue;
            }
            if let Some(("Patient", id)) = fhirpath::parse_reference(text) {
                out.push(format!("Patient/{id}"));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------------------
// Conversions.

/// How a node of a FHIR type becomes values of a parameter kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    PrimitiveToken,
    Coding,
    CodeableConcept,
    Identifier,
    ContactPoint,
    PrimitiveString,
    HumanName,
    Address,
    DateText,
    Period,
    Timing,
    Reference,
    ReferenceText,
    InlineResource,
    Quantity,
    Money,
    Range,
    Number,
    NumberRange,
    Uri,
}

/// FHIR primitive type names start with a lower-case letter, complex ones with a capital.
fn is_primitive(ty: &str) -> bool {
    ty.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_uri(ty: &str) -> bool {
    matches!(ty, "uri" | "url" | "canonical" | "oid" | "uuid")
}

fn is_stringy(ty: &str) -> bool {
    matches!(ty, "string" | "markdown" | "code" | "id") || is_uri(ty)
}

/// The conversion for a node of type `ty` under a parameter of kind `kind`; `None` when the
/// type does not fit the kind.
fn conversion(kind: SearchParamType, ty: &str) -> Option<Conv> {
    use SearchParamType as K;
    Some(match (kind, ty) {
        (K::Token, "Coding") => Conv::Coding,
        (K::Token, "CodeableConcept") => Conv::CodeableConcept,
        (K::Token, "Identifier") => Conv::Identifier,
        (K::Token, "ContactPoint") => Conv::ContactPoint,
        (K::Token, t) if is_primitive(t) => Conv::PrimitiveToken,
        (K::String, "HumanName") => Conv::HumanName,
        (K::String, "Address") => Conv::Address,
        (K::String, t) if is_stringy(t) => Conv::PrimitiveString,
        (K::Date, "date" | "dateTime" | "instant") => Conv::DateText,
        (K::Date, "Period") => Conv::Period,
        (K::Date, "Timing") => Conv::Timing,
        (K::Reference, "Reference") => Conv::Reference,
        (K::Reference, t) if is_uri(t) => Conv::ReferenceText,
        (K::Reference, t) if definitions::resource(t).is_some() => Conv::InlineResource,
        (K::Quantity, "Money") => Conv::Money,
        (K::Quantity, "Range") => Conv::Range,
        (K::Quantity, t) if fhirpath::is_a(t, "Quantity") => Conv::Quantity,
        (K::Number, "integer" | "decimal" | "positiveInt" | "unsignedInt") => Conv::Number,
        (K::Number, "Range") => Conv::NumberRange,
        (K::Uri, t) if is_uri(t) => Conv::Uri,
        _ => return None,
    })
}

fn convert(node: &Node<'_>, kind: SearchParamType, resource: &Value, out: &mut Vec<SearchValue>) {
    let Some(conv) = conversion(kind, node.fhir_type) else {
        return;
    };
    let v = node.value;
    match conv {
        Conv::PrimitiveToken => {
            if let Some(code) = primitive_text(v) {
                out.push(token(None, code, None));
            }
        }
        Conv::Coding => coding(v, None, out),
        Conv::CodeableConcept => {
            let text = text_of(v, "text");
            let before = out.len();
            for c in items(v.get("coding")) {
                coding(c, text, out);
            }
            if let Some(text) = text {
                let carried = out.get(before..).is_some_and(|new| {
                    new.iter()
                        .any(|t| matches!(t, SearchValue::Token { text: Some(x), .. } if x == text))
                });
                if !carried {
                    out.push(token(None, String::new(), Some(text)));
                }
            }
        }
        Conv::Identifier => {
            let value = text_of(v, "value");
            let type_text = v.get("type").and_then(|t| text_of(t, "text"));
            if value.is_some() || type_text.is_some() {
                out.push(token(
                    text_of(v, "system"),
                    value.unwrap_or_default().to_owned(),
                    type_text,
                ));
            }
        }
        Conv::ContactPoint => {
            if let Some(value) = text_of(v, "value") {
                out.push(token(None, value.to_owned(), None));
            }
        }
        Conv::PrimitiveString => {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                out.push(SearchValue::String(s.to_owned()));
            }
        }
        Conv::HumanName => strings(v, &["family", "given", "prefix", "suffix", "text"], out),
        Conv::Address => strings(
            v,
            &[
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
                "text",
            ],
            out,
        ),
        Conv::DateText => {
            if let Some(r) = v.as_str().and_then(date_range) {
                out.push(SearchValue::Date(r));
            }
        }
        Conv::Period => {
            if let Some(r) = period(v) {
                out.push(SearchValue::Date(r));
            }
        }
        Conv::Timing => {
            let events = items(v.get("event")).filter_map(|e| e.as_str().and_then(date_range));
            let bounds = v
                .get("repeat")
                .and_then(|r| r.get("boundsPeriod"))
                .and_then(period);
            let span = events.chain(bounds).reduce(|a, b| DateRange {
                start: a.start.min(b.start),
                end: a.end.max(b.end),
            });
            if let Some(r) = span {
                out.push(SearchValue::Date(r));
            }
        }
        Conv::Reference => {
            if let Some(r) = reference(v, resource) {
                out.push(SearchValue::Reference(r));
            }
        }
        Conv::ReferenceText => {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                out.push(SearchValue::Reference(RefValue {
                    rtype: None,
                    id: None,
                    reference: s.to_owned(),
                }));
            }
        }
        Conv::InlineResource => {
            if !node.is_unresolved()
                && let Some(id) = text_of(v, "id").filter(|id| fhirpath::is_fhir_id(id))
            {
                out.push(SearchValue::Reference(RefValue {
                    rtype: Some(node.fhir_type.to_owned()),
                    id: Some(id.to_owned()),
                    reference: format!("{}/{id}", node.fhir_type),
                }));
            }
        }
        Conv::Quantity => quantity(v, out),
        Conv::Money => {
            if let Some(Value::Number(n)) = v.get("value") {
                let currency = text_of(v, "currency");
                out.push(SearchValue::Quantity {
                    value: Decimal(n.to_string()),
                    system: currency.map(|_| "urn:iso:std:iso:4217".to_owned()),
                    code: currency.map(str::to_owned),
                    unit: None,
                });
            }
        }
        Conv::Range => {
            for end in ["low", "high"] {
                if let Some(q) = v.get(end) {
                    quantity(q, out);
                }
            }
        }
        Conv::Number => {
            if let Value::Number(n) = v {
                out.push(SearchValue::Number(Decimal(n.to_string())));
            }
        }
        Conv::NumberRange => {
            for end in ["low", "high"] {
                if let Some(Value::Number(n)) = v.get(end).and_then(|q| q.get("value")) {
                    out.push(SearchValue::Number(Decimal(n.to_string())));
                }
            }
        }
        Conv::Uri => {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                out.push(SearchValue::Uri(s.to_owned()));
            }
        }
    }
}

fn token(system: Option<&str>, code: String, text: Option<&str>) -> SearchValue {
    SearchValue::Token {
        system: system.map(str::to_owned),
        code,
        text: text.map(str::to_owned),
    }
}

/// A non-empty string element.
fn text_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str().filter(|s| !s.is_empty())
}

/// The items of an element that may be an array or a single value.
fn items(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    let (array, single) = match v {
        Some(Value::Array(a)) => (a.as_slice(), None),
        Some(v) => (&[][..], Some(v)),
        None => (&[][..], None),
    };
    array.iter().chain(single)
}

/// The text of a primitive as a token: a string as written, a boolean as `true`/`false`, a
/// number as written.
fn primitive_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn coding(c: &Value, fallback_text: Option<&str>, out: &mut Vec<SearchValue>) {
    let code = text_of(c, "code");
    let text = text_of(c, "display").or(fallback_text);
    if code.is_some() || text.is_some() {
        out.push(token(
            text_of(c, "system"),
            code.unwrap_or_default().to_owned(),
            text,
        ));
    }
}

fn strings(v: &Value, keys: &[&str], out: &mut Vec<SearchValue>) {
    for key in keys {
        for s in items(v.get(*key)) {
            if let Some(s) = s.as_str().filter(|s| !s.is_empty()) {
                out.push(SearchValue::String(s.to_owned()));
            }
        }
    }
}

fn quantity(q: &Value, out: &mut Vec<SearchValue>) {
    if let Some(Value::Number(n)) = q.get("value") {
        out.push(SearchValue::Quantity {
            value: Decimal(n.to_string()),
            system: text_of(q, "system").map(str::to_owned),
            code: text_of(q, "code").map(str::to_owned),
            unit: text_of(q, "unit").map(str::to_owned),
        });
    }
}

/// A Period as a range: start's start to end's end, open where absent. `None` when it has
/// neither, when a bound does not parse, or when it ends before it starts.
fn period(v: &Value) -> Option<DateRange> {
    let start = v.get("start");
    let end = v.get("end");
    if start.is_none() && end.is_none() {
        return None;
    }
    let start = match start {
        Some(s) => date_range(s.as_str()?)?.start,
        None => DateRange::OPEN_START,
    };
    let end = match end {
        Some(e) => date_range(e.as_str()?)?.end,
        None => DateRange::OPEN_END,
    };
    (start < end).then_some(DateRange { start, end })
}

fn reference(v: &Value, resource: &Value) -> Option<RefValue> {
    let declared = text_of(v, "type").filter(|t| definitions::is_resource_type(t));
    match text_of(v, "reference") {
        Some(text) => {
            let (rtype, id) = if let Some(local) = text.strip_prefix('#') {
                let contained = items(resource.get("contained"))
                    .find(|c| text_of(c, "id") == Some(local))
                    .and_then(|c| text_of(c, "resourceType"))
                    .filter(|t| definitions::is_resource_type(t));
                (contained.or(declared), None)
            } else {
                match fhirpath::parse_reference(text) {
                    Some((t, id)) => (Some(t), Some(id)),
                    None => (declared, None),
                }
            };
            Some(RefValue {
                rtype: rtype.map(str::to_owned),
                id: id.map(str::to_owned),
                reference: text.to_owned(),
            })
        }
        None if v.get("identifier").is_some() => Some(RefValue {
            rtype: declared.map(str::to_owned),
            id: None,
            reference: String::new(),
        }),
        None => None,
    }
}

// ---------------------------------------------------------------------------------------
// Dates.

pub use super::calendar::date_range;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::all_search_params;
    use crate::search::calendar::{DAY_US, SECOND_US, days_from_civil, days_in_month};
    use serde_json::json;

    fn us(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * DAY_US
    }

    fn values<'a>(ex: &'a [Extracted], code: &str) -> &'a [SearchValue] {
        &ex.iter()
            .find(|e| e.code == code)
            .unwrap_or_else(|| panic!("no {code}"))
            .values
    }

    fn tok(system: Option<&str>, code: &str, text: Option<&str>) -> SearchValue {
        token(system, code.to_owned(), text)
    }

    /// Every type any extractable parameter's expression can give has a conversion for the
    /// parameter's kind, except the ones documented as giving nothing.
    #[test]
    fn every_parameter_type_has_a_conversion() {
        let mut missing = Vec::new();
        for p in all_search_params() {
            if matches!(
                p.kind,
                SearchParamType::Composite | SearchParamType::Special
            ) {
                continue;
            }
            let Some(expr) = p.expression else { continue };
            let base = if p.base == "Resource" || p.base == "DomainResource" {
                "Patient"
            } else {
                p.base
            };
            let e = fhirpath::compile(expr).unwrap();
            for ty in fhirpath::result_types(&e, base).unwrap() {
                let documented_skip = matches!(
                    (p.kind, ty),
                    (SearchParamType::Quantity, "SampledData")
                        | (SearchParamType::Date, "string" | "Age" | "Range")
                        | (SearchParamType::Reference, "Attachment")
                );
                if conversion(p.kind, ty).is_none() && !documented_skip {
                    missing.push(format!("{}.{} ({:?}): {ty}", p.base, p.code, p.kind));
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn compartment_parameters_give_references() {
        for t in definitions::RESOURCE_TYPES {
            for code in definitions::patient_compartment_params(t) {
                let p = definitions::search_param(t, code).unwrap();
                let e = fhirpath::compile(p.expression.unwrap()).unwrap();
                let types = fhirpath::result_types(&e, t).unwrap();
                assert!(
                    types.iter().all(|t| *t == "Reference"),
                    "{t}.{code}: {types:?}"
                );
            }
        }
    }

    #[test]
    fn dates() {
        let r = |s| date_range(s).unwrap();
        assert_eq!(
            r("2020"),
            DateRange {
                start: us(2020, 1, 1),
                end: us(2021, 1, 1)
            }
        );
        assert_eq!(r("2020").start, 1_577_836_800 * SECOND_US);
        assert_eq!(
            r("2020-02"),
            DateRange {
                start: us(2020, 2, 1),
                end: us(2020, 3, 1)
            }
        );
        assert_eq!(r("2020-12").end, us(2021, 1, 1));
        assert_eq!(r("2020-02-29").end - r("2020-02-29").start, DAY_US);
        assert_eq!(
            r("2020-03-04T10:00:00+01:00"),
            DateRange {
                start: us(2020, 3, 4) + 9 * 3_600 * SECOND_US,
                end: us(2020, 3, 4) + 9 * 3_600 * SECOND_US + SECOND_US
            }
        );
        assert_eq!(
            r("2020-03-04T10:00:00Z").start,
            r("2020-03-04T05:30:00-04:30").start
        );
        let f = r("2020-03-04T10:00:00.25Z");
        assert_eq!(f.start - r("2020-03-04T10:00:00Z").start, 250_000);
        assert_eq!(f.end - f.start, 10_000);
        let f = r("2020-03-04T10:00:00.1234567Z");
        assert_eq!(f.start - r("2020-03-04T10:00:00Z").start, 123_456);
        assert_eq!(f.end - f.start, 1);
        assert_eq!(
            r("2020-03-04T10:00:00.123456Z").end - r("2020-03-04T10:00:00.123456Z").start,
            1
        );
        assert_eq!(
            r("2020-03-04T10:00Z").end - r("2020-03-04T10:00Z").start,
            60 * SECOND_US
        );
        assert_eq!(
            r("2016-12-31T23:59:60Z").start,
            r("2016-12-31T23:59:59Z").start
        );
        assert_eq!(r("1969-12-31T23:59:59Z").start, -SECOND_US);
        assert_eq!(r("0001").start, us(1, 1, 1));
        assert!(r("9999-12-31T23:59:59.999999-14:00").end > 0);
        for bad in [
            "",
            "202",
            "20200",
            "0000",
            "2020-13",
            "2020-00",
            "2019-02-29",
            "2020-04-31",
            "2020-01-01T",
            "2020-01-01T24:00:00Z",
            "2020-01-01T10:60:00Z",
            "2020-01-01T10:00:61Z",
            "2020-01-01T10:00:00.Z",
            "2020-01-01T10:00:00+15:00",
            "2020-01-01T10:00:00+01",
            "2020-01-01T10:00:00ZZ",
            "2020-1-01",
            "２０２０",
            "2020-01-01 10:00:00Z",
            "-2020",
        ] {
            assert_eq!(date_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn patient() {
        let p = json!({
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"lastUpdated": "2024-05-06T07:08:09.123Z", "tag": [{"system": "http://t", "code": "x"}],
                     "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919",
                            "type": {"text": "NHS number"}}],
            "active": true,
            "name": [{"use": "official", "family": "Smith", "given": ["Jane", "Anne"], "prefix": ["Mrs"]}],
            "telecom": [{"system": "phone", "value": "07700 900123"}, {"system": "email", "value": "j@example.org"}],
            "gender": "female",
            "birthDate": "1980-02-03",
            "address": [{"line": ["1 High Street"], "city": "Leeds", "postalCode": "LS1 4AP", "country": "GB"}],
            "generalPractitioner": [{"reference": "Organization/gp1", "identifier": {"value": "A81001"}}],
            "managingOrganization": {"reference": "https://example.org/fhir/Organization/o1/_history/2"}
        });
        let ex = extract(&p).unwrap();
        let codes: Vec<&str> = ex.iter().map(|e| e.code).collect();
        let expected: Vec<&str> = definitions::search_params("Patient")
            .filter(|d| {
                d.expression.is_some()
                    && !matches!(
                        d.kind,
                        SearchParamType::Composite | SearchParamType::Special
                    )
            })
            .map(|d| d.code)
            .collect();
        assert_eq!(codes, expected);
        assert!(codes.contains(&"_lastUpdated") && codes.contains(&"_id"));
        assert!(!codes.contains(&"_text"));
        assert_eq!(
            values(&ex, "identifier"),
            [tok(
                Some("https://fhir.nhs.uk/Id/nhs-number"),
                "9434765919",
                Some("NHS number")
            )]
        );
        assert_eq!(
            values(&ex, "name"),
            ["Smith", "Jane", "Anne", "Mrs"].map(|s| SearchValue::String(s.into()))
        );
        assert_eq!(values(&ex, "family"), [SearchValue::String("Smith".into())]);
        assert_eq!(values(&ex, "given").len(), 2);
        assert_eq!(
            values(&ex, "birthdate"),
            [SearchValue::Date(DateRange {
                start: us(1980, 2, 3),
                end: us(1980, 2, 4)
            })]
        );
        assert_eq!(
            values(&ex, "address-postalcode"),
            [SearchValue::String("LS1 4AP".into())]
        );
        assert_eq!(values(&ex, "address").len(), 4);
        assert_eq!(values(&ex, "gender"), [tok(None, "female", None)]);
        assert_eq!(values(&ex, "active"), [tok(None, "true", None)]);
        assert_eq!(values(&ex, "deceased"), [tok(None, "false", None)]);
        assert_eq!(values(&ex, "phone"), [tok(None, "07700 900123", None)]);
        assert_eq!(values(&ex, "email"), [tok(None, "j@example.org", None)]);
        assert_eq!(values(&ex, "telecom").len(), 2);
        assert_eq!(
            values(&ex, "general-practitioner"),
            [SearchValue::Reference(RefValue {
                rtype: Some("Organization".into()),
                id: Some("gp1".into()),
                reference: "Organization/gp1".into()
            })]
        );
        assert_eq!(
            values(&ex, "organization"),
            [SearchValue::Reference(RefValue {
                rtype: Some("Organization".into()),
                id: Some("o1".into()),
                reference: "https://example.org/fhir/Organization/o1/_history/2".into()
            })]
        );
        assert_eq!(values(&ex, "_id"), [tok(None, "p1", None)]);
        let lu = date_range("2024-05-06T07:08:09.123Z").unwrap();
        assert_eq!(lu.end - lu.start, 1_000);
        assert_eq!(values(&ex, "_lastUpdated"), [SearchValue::Date(lu)]);
        assert_eq!(values(&ex, "_tag"), [tok(Some("http://t"), "x", None)]);
        assert_eq!(
            values(&ex, "_profile"),
            [SearchValue::Uri(
                "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient".into()
            )]
        );
        assert!(values(&ex, "_security").is_empty());
        assert!(values(&ex, "link").is_empty());
        assert_eq!(patients(&p), ["Patient/p1"]);
        let linked = json!({"resourceType": "Patient", "id": "p2",
            "link": [{"other": {"reference": "Patient/p1"}, "type": "replaces"},
                     {"other": {"reference": "RelatedPerson/r"}, "type": "seealso"}]});
        assert_eq!(patients(&linked), ["Patient/p1", "Patient/p2"]);
    }

    /// The text of `72.50` as `serde_json` keeps it in this build.
    fn decimal_text() -> String {
        serde_json::from_str::<Value>("72.50").unwrap().to_string()
    }

    #[test]
    fn observation() {
        let o = json!({
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs", "display": "Vital Signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
                                {"system": "http://snomed.info/sct", "code": "364075005"}],
                     "text": "Pulse"},
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2021-06-01T09:30:00+01:00",
            "performer": [{"reference": "Practitioner/d1"}, {"reference": "Patient/p1/_history/4"}],
            "valueQuantity": serde_json::from_str::<Value>(
                r#"{"value": 72.50, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}"#).unwrap()
        });
        let ex = extract(&o).unwrap();
        assert_eq!(values(&ex, "status"), [tok(None, "final", None)]);
        assert_eq!(
            values(&ex, "code"),
            [
                tok(Some("http://loinc.org"), "8867-4", Some("Heart rate")),
                tok(Some("http://snomed.info/sct"), "364075005", Some("Pulse")),
            ]
        );
        assert_eq!(
            values(&ex, "category"),
            [tok(
                Some("http://terminology.hl7.org/CodeSystem/observation-category"),
                "vital-signs",
                Some("Vital Signs")
            )]
        );
        let patient_ref = SearchValue::Reference(RefValue {
            rtype: Some("Patient".into()),
            id: Some("p1".into()),
            reference: "Patient/p1".into(),
        });
        assert_eq!(values(&ex, "subject"), std::slice::from_ref(&patient_ref));
        assert_eq!(values(&ex, "patient"), [patient_ref]);
        assert_eq!(values(&ex, "performer").len(), 2);
        let start = us(2021, 6, 1) + 8 * 3_600 * SECOND_US + 30 * 60 * SECOND_US;
        assert_eq!(
            values(&ex, "date"),
            [SearchValue::Date(DateRange {
                start,
                end: start + SECOND_US
            })]
        );
        let text = decimal_text();
        assert!(text == "72.50" || text == "72.5");
        assert_eq!(
            values(&ex, "value-quantity"),
            [SearchValue::Quantity {
                value: Decimal(text),
                system: Some("http://unitsofmeasure.org".into()),
                code: Some("/min".into()),
                unit: Some("beats/minute".into())
            }]
        );
        assert!(values(&ex, "value-concept").is_empty());
        assert!(values(&ex, "value-date").is_empty());
        assert_eq!(patients(&o), ["Patient/p1"]);

        // A period, a CodeableConcept value, and text-only concepts.
        let o2 = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Feeling tired"},
            "effectivePeriod": {"start": "2021-06-01", "end": "2021-06"},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "84229001", "display": "Fatigue"}],
                                     "text": "Tired"},
            "subject": {"reference": "Group/g1"}
        });
        let ex = extract(&o2).unwrap();
        assert_eq!(values(&ex, "code"), [tok(None, "", Some("Feeling tired"))]);
        assert_eq!(
            values(&ex, "date"),
            [SearchValue::Date(DateRange {
                start: us(2021, 6, 1),
                end: us(2021, 7, 1)
            })]
        );
        assert_eq!(
            values(&ex, "value-concept"),
            [
                tok(Some("http://snomed.info/sct"), "84229001", Some("Fatigue")),
                tok(None, "", Some("Tired")),
            ]
        );
        assert!(values(&ex, "patient").is_empty());
        assert_eq!(values(&ex, "subject").len(), 1);
        assert!(patients(&o2).is_empty());
        let open = json!({"resourceType": "Observation", "effectivePeriod": {"start": "2021"}});
        assert_eq!(
            values(&extract(&open).unwrap(), "date"),
            [SearchValue::Date(DateRange {
                start: us(2021, 1, 1),
                end: DateRange::OPEN_END
            })]
        );
        let open = json!({"resourceType": "Observation", "effectivePeriod": {"end": "2021"}});
        assert_eq!(
            values(&extract(&open).unwrap(), "date"),
            [SearchValue::Date(DateRange {
                start: DateRange::OPEN_START,
                end: us(2022, 1, 1)
            })]
        );
        let timing = json!({"resourceType": "Observation", "effectiveTiming": {
            "event": ["2021-03-01", "2021-01-05T10:00:00Z"],
            "repeat": {"boundsPeriod": {"start": "2021-02", "end": "2021-04"}}}});
        assert_eq!(
            values(&extract(&timing).unwrap(), "date"),
            [SearchValue::Date(DateRange {
                start: date_range("2021-01-05T10:00:00Z").unwrap().start,
                end: us(2021, 5, 1)
            })]
        );
        let bad = json!({"resourceType": "Observation", "effectiveDateTime": "yesterday",
            "effectivePeriod": {"start": "2021-02", "end": "2021-01"}});
        assert!(values(&extract(&bad).unwrap(), "date").is_empty());
        // Components.
        let bp = json!({"resourceType": "Observation", "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120, "unit": "mmHg"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 80}}]});
        let ex = extract(&bp).unwrap();
        assert_eq!(values(&ex, "component-code").len(), 2);
        assert_eq!(values(&ex, "component-value-quantity").len(), 2);
        assert_eq!(values(&ex, "combo-code").len(), 2);
        assert!(values(&ex, "value-quantity").is_empty());
    }

    #[test]
    fn encounter_condition_medication_statement_immunization() {
        let e = json!({
            "resourceType": "Encounter", "id": "e1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"},
            "participant": [{"individual": {"reference": "Practitioner/d1"}}],
            "period": {"start": "2022-01-10T09:00:00Z", "end": "2022-01-10T09:20:00Z"},
            "serviceProvider": {"reference": "Organization/o1"}
        });
        let ex = extract(&e).unwrap();
        assert_eq!(
            values(&ex, "date"),
            [SearchValue::Date(DateRange {
                start: date_range("2022-01-10T09:00:00Z").unwrap().start,
                end: date_range("2022-01-10T09:20:00Z").unwrap().end
            })]
        );
        assert_eq!(
            values(&ex, "class"),
            [tok(
                Some("http://terminology.hl7.org/CodeSystem/v3-ActCode"),
                "AMB",
                None
            )]
        );
        assert_eq!(values(&ex, "practitioner").len(), 1);
        assert_eq!(values(&ex, "participant").len(), 1);
        assert_eq!(patients(&e), ["Patient/p1"]);

        let c = json!({
            "resourceType": "Condition", "id": "c1",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]},
            "subject": {"reference": "Patient/p1"},
            "onsetDateTime": "2019-04",
            "abatementAge": {"value": 50, "system": "http://unitsofmeasure.org", "code": "a"},
            "recordedDate": "2019-05-01",
            "asserter": {"reference": "Patient/p1"}
        });
        let ex = extract(&c).unwrap();
        assert_eq!(
            values(&ex, "code"),
            [tok(
                Some("http://snomed.info/sct"),
                "44054006",
                Some("Diabetes mellitus type 2")
            )]
        );
        assert_eq!(values(&ex, "clinical-status").len(), 1);
        assert_eq!(
            values(&ex, "onset-date"),
            [SearchValue::Date(DateRange {
                start: us(2019, 4, 1),
                end: us(2019, 5, 1)
            })]
        );
        assert!(values(&ex, "onset-age").is_empty());
        assert_eq!(values(&ex, "abatement-age").len(), 1);
        assert_eq!(values(&ex, "recorded-date").len(), 1);
        assert_eq!(patients(&c), ["Patient/p1"]);
        let ranged = json!({"resourceType": "Condition",
            "onsetRange": {"low": {"value": 40, "code": "a"}, "high": {"value": 45, "code": "a"}},
            "onsetString": "in her forties"});
        let ex = extract(&ranged).unwrap();
        assert_eq!(values(&ex, "onset-age").len(), 2);
        assert_eq!(
            values(&ex, "onset-info"),
            [SearchValue::String("in her forties".into())]
        );

        let ms = json!({
            "resourceType": "MedicationStatement", "id": "ms1", "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "39720311000001101",
                                                      "display": "Metformin 500mg tablets"}]},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2020-01-01"},
            "informationSource": {"reference": "Practitioner/d1"}
        });
        let ex = extract(&ms).unwrap();
        assert_eq!(values(&ex, "code").len(), 1);
        assert!(values(&ex, "medication").is_empty());
        assert_eq!(
            values(&ex, "effective"),
            [SearchValue::Date(DateRange {
                start: us(2020, 1, 1),
                end: DateRange::OPEN_END
            })]
        );
        assert_eq!(values(&ex, "patient").len(), 1);
        assert_eq!(patients(&ms), ["Patient/p1"]);
        let by_ref = json!({"resourceType": "MedicationStatement", "medicationReference": {"reference": "#m"},
            "contained": [{"resourceType": "Medication", "id": "m"}]});
        let ex = extract(&by_ref).unwrap();
        assert_eq!(
            values(&ex, "medication"),
            [SearchValue::Reference(RefValue {
                rtype: Some("Medication".into()),
                id: None,
                reference: "#m".into()
            })]
        );
        assert!(values(&ex, "code").is_empty());

        let im = json!({
            "resourceType": "Immunization", "id": "i1", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://snomed.info/sct", "code": "39114911000001105"}]},
            "patient": {"reference": "Patient/p1"},
            "occurrenceDateTime": "2021-01-15T10:00:00Z",
            "lotNumber": "AB123",
            "performer": [{"actor": {"reference": "Practitioner/d1"}}],
            "protocolApplied": [{"doseNumberPositiveInt": 1, "targetDisease": [{"text": "COVID-19"}]}]
        });
        let ex = extract(&im).unwrap();
        assert_eq!(values(&ex, "vaccine-code").len(), 1);
        assert_eq!(values(&ex, "date").len(), 1);
        assert_eq!(
            values(&ex, "lot-number"),
            [SearchValue::String("AB123".into())]
        );
        assert_eq!(
            values(&ex, "target-disease"),
            [tok(None, "", Some("COVID-19"))]
        );
        assert_eq!(values(&ex, "patient").len(), 1);
        assert_eq!(patients(&im), ["Patient/p1"]);
    }

    #[test]
    fn care_team_consent_document_reference_organization() {
        let ct = json!({
            "resourceType": "CareTeam", "id": "ct1", "status": "active",
            "subject": {"reference": "Patient/p1"},
            "participant": [
                {"member": {"reference": "Practitioner/d1"}},
                {"member": {"reference": "Patient/p2"}},
                {"member": {"reference": "https://elsewhere.example/fhir/Patient/p3"}},
                {"member": {"reference": "RelatedPerson/r1"}}
            ],
            "period": {"start": "2023-01-01"}
        });
        let ex = extract(&ct).unwrap();
        assert_eq!(values(&ex, "participant").len(), 4);
        assert_eq!(values(&ex, "patient").len(), 1);
        assert_eq!(values(&ex, "date").len(), 1);
        // The absolute reference is searchable but gives no compartment.
        assert_eq!(patients(&ct), ["Patient/p1", "Patient/p2"]);

        let consent = json!({
            "resourceType": "Consent", "id": "cn1", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"},
            "dateTime": "2023-02-03T04:05:06Z",
            "organization": [{"reference": "Organization/o1"}],
            "sourceReference": {"reference": "DocumentReference/d1"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "actor": [{"reference": {"reference": "Practitioner/d1"},
                          "role": {"coding": [{"code": "PRCP"}]}}],
                          "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
                          "period": {"start": "2023-02-03", "end": "2024-02-03"}}
        });
        let ex = extract(&consent).unwrap();
        assert_eq!(values(&ex, "date").len(), 1);
        assert_eq!(values(&ex, "scope").len(), 1);
        assert_eq!(values(&ex, "actor").len(), 1);
        assert_eq!(
            values(&ex, "purpose"),
            [tok(
                Some("http://terminology.hl7.org/CodeSystem/v3-ActReason"),
                "TREAT",
                None
            )]
        );
        assert_eq!(values(&ex, "period").len(), 1);
        assert_eq!(values(&ex, "source-reference").len(), 1);
        assert_eq!(values(&ex, "consentor").len(), 0);
        assert_eq!(patients(&consent), ["Patient/p1"]);

        let doc = json!({
            "resourceType": "DocumentReference", "id": "d1", "status": "current",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"},
            "identifier": [{"system": "https://example.org/docs", "value": "DOC-1"}],
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005", "display": "Discharge summary"}]},
            "subject": {"reference": "Patient/p1"},
            "date": "2023-03-04T05:06:07Z",
            "author": [{"reference": "Practitioner/d1"}, {"reference": "Organization/o1"}],
            "description": "Discharge summary from ward 3",
            "content": [{"attachment": {"contentType": "application/pdf", "url": "https://example.org/doc.pdf",
                          "language": "en-GB"}, "format": {"system": "http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem", "code": "urn:ihe:pcc:xds-ms:2007"}}],
            "context": {"period": {"start": "2023-03-01", "end": "2023-03-04"},
                        "related": [{"reference": "Encounter/e1"}]}
        });
        let ex = extract(&doc).unwrap();
        assert_eq!(values(&ex, "identifier").len(), 2);
        assert_eq!(values(&ex, "type").len(), 1);
        assert_eq!(values(&ex, "date").len(), 1);
        assert_eq!(values(&ex, "author").len(), 2);
        assert_eq!(
            values(&ex, "description"),
            [SearchValue::String("Discharge summary from ward 3".into())]
        );
        assert_eq!(
            values(&ex, "location"),
            [SearchValue::Uri("https://example.org/doc.pdf".into())]
        );
        assert_eq!(
            values(&ex, "contenttype"),
            [tok(None, "application/pdf", None)]
        );
        assert_eq!(values(&ex, "language"), [tok(None, "en-GB", None)]);
        assert_eq!(values(&ex, "format").len(), 1);
        assert_eq!(values(&ex, "period").len(), 1);
        assert_eq!(values(&ex, "related").len(), 1);
        assert_eq!(patients(&doc), ["Patient/p1"]);

        let org = json!({"resourceType": "Organization", "id": "o1", "name": "Leeds GP",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}],
            "address": [{"postalCode": "LS1 1AA"}]});
        let ex = extract(&org).unwrap();
        assert_eq!(
            values(&ex, "name"),
            [SearchValue::String("Leeds GP".into())]
        );
        assert_eq!(values(&ex, "address-postalcode").len(), 1);
        assert!(patients(&org).is_empty());
    }

    #[test]
    fn references_of_every_form() {
        let r = |v: Value| reference(&v, &json!({}));
        assert_eq!(
            r(json!({"reference": "urn:uuid:0f1e", "type": "Patient"})),
            Some(RefValue {
                rtype: Some("Patient".into()),
                id: None,
                reference: "urn:uuid:0f1e".into()
            })
        );
        assert_eq!(
            r(json!({"identifier": {"value": "x"}, "type": "Patient"})),
            Some(RefValue {
                rtype: Some("Patient".into()),
                id: None,
                reference: String::new()
            })
        );
        assert_eq!(r(json!({"display": "Dr Who"})), None);
        assert_eq!(
            r(json!({"reference": "Nope/1"})),
            Some(RefValue {
                rtype: None,
                id: None,
                reference: "Nope/1".into()
            })
        );
        // Money and other quantities.
        let inv =
            json!({"resourceType": "Invoice", "totalNet": {"value": 10.5, "currency": "GBP"}});
        let ex = extract(&inv).unwrap();
        assert_eq!(
            values(&ex, "totalnet"),
            [SearchValue::Quantity {
                value: Decimal("10.5".into()),
                system: Some("urn:iso:std:iso:4217".into()),
                code: Some("GBP".into()),
                unit: None
            }]
        );
        let b = json!({"resourceType": "Bundle", "type": "document", "identifier": {"value": "b"},
            "entry": [{"resource": {"resourceType": "Composition", "id": "c1"}}]});
        let ex = extract(&b).unwrap();
        assert_eq!(
            values(&ex, "composition"),
            [SearchValue::Reference(RefValue {
                rtype: Some("Composition".into()),
                id: Some("c1".into()),
                reference: "Composition/c1".into()
            })]
        );
        assert_eq!(values(&ex, "type"), [tok(None, "document", None)]);
        let rs = json!({"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.25},
            {"probabilityRange": {"low": {"value": 1}, "high": {"value": 2}}}]});
        assert_eq!(
            values(&extract(&rs).unwrap(), "probability"),
            ["0.25", "1", "2"].map(|n| SearchValue::Number(Decimal(n.into())))
        );
    }

    #[test]
    fn extract_params_and_errors() {
        let p = json!({"resourceType": "Patient", "id": "p", "birthDate": "2001"});
        let ex = extract_params(&p, &["birthdate", "_id"]).unwrap();
        assert_eq!(
            ex.iter().map(|e| e.code).collect::<Vec<_>>(),
            ["birthdate", "_id"]
        );
        assert_eq!(ex[0].values.len(), 1);
        assert!(matches!(
            extract_params(&p, &["nope"]),
            Err(ExtractError::UnknownParam { .. })
        ));
        assert_eq!(
            extract_params(&p, &["_text"]),
            Err(ExtractError::NotExtractable { code: "_text" })
        );
        assert_eq!(
            extract(&json!({"resourceType": "Nope"})),
            Err(ExtractError::ResourceType)
        );
        assert_eq!(extract(&json!([1])), Err(ExtractError::ResourceType));
        assert!(patients(&json!("x")).is_empty());
        let obs = json!({"resourceType": "Observation"});
        let ex = extract_params(&obs, &["code-value-quantity"]);
        assert_eq!(
            ex,
            Err(ExtractError::NotExtractable {
                code: "code-value-quantity"
            })
        );
    }

    #[test]
    fn every_resource_type_extracts_from_a_bare_resource() {
        for t in definitions::RESOURCE_TYPES {
            let r = json!({"resourceType": t, "id": "x"});
            let ex = extract(&r).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(values(&ex, "_id").len(), 1, "{t}");
        }
    }

    #[test]
    fn synthetic_resources() {
        let g = caldicott_synth::Generator::new(42);
        let mut all = g.organizations();
        for i in 0..25 {
            all.extend(g.patient(i));
        }
        let mut with_patient = 0;
        for r in &all {
            let v: Value = serde_json::from_str(&r.json).unwrap();
            let ex = extract(&v).unwrap_or_else(|e| panic!("{}: {e}", r.resource_type));
            assert!(!ex.is_empty());
            assert_eq!(values(&ex, "_id"), [tok(None, &r.id, None)]);
            let ps = patients(&v);
            match r.resource_type {
                "Organization" => assert!(ps.is_empty()),
                _ => {
                    assert_eq!(ps.len(), 1, "{}", r.json);
                    with_patient += 1;
                }
            }
            if r.resource_type == "Patient" {
                assert_eq!(values(&ex, "identifier").len(), 1);
                assert!(!values(&ex, "birthdate").is_empty());
            }
            if r.resource_type == "Observation" {
                assert!(!values(&ex, "code").is_empty());
                assert!(!values(&ex, "date").is_empty(), "{}", r.json);
            }
        }
        assert!(with_patient > 25);
    }

    #[test]
    fn days_agree_with_the_time_crate() {
        for y in [
            1, 4, 100, 400, 1600, 1899, 1900, 1969, 1970, 2000, 2024, 2100, 9999,
        ] {
            for m in 1..=12u8 {
                let d = days_in_month(y, u32::from(m));
                for day in [1, d] {
                    let date = time::Date::from_calendar_date(
                        i32::try_from(y).unwrap(),
                        time::Month::try_from(m).unwrap(),
                        u8::try_from(day).unwrap(),
                    )
                    .unwrap();
                    assert_eq!(
                        days_from_civil(y, u32::from(m), day),
                        i64::from(date.to_julian_day()) - 2_440_588,
                        "{y}-{m}-{day}"
                    );
                }
                assert_eq!(
                    time::util::days_in_month(
                        time::Month::try_from(m).unwrap(),
                        i32::try_from(y).unwrap()
                    ),
                    u8::try_from(days_in_month(y, u32::from(m))).unwrap()
                );
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Element names of common resources, so arbitrary objects reach the expressions.
        const KEYS: &[&str] = &[
            "id",
            "meta",
            "lastUpdated",
            "tag",
            "profile",
            "code",
            "coding",
            "system",
            "value",
            "display",
            "text",
            "subject",
            "reference",
            "type",
            "identifier",
            "status",
            "category",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveTiming",
            "event",
            "start",
            "end",
            "valueQuantity",
            "valueString",
            "valueCodeableConcept",
            "valueRange",
            "low",
            "high",
            "unit",
            "component",
            "performer",
            "name",
            "family",
            "given",
            "address",
            "line",
            "postalCode",
            "telecom",
            "birthDate",
            "gender",
            "deceasedBoolean",
            "deceasedDateTime",
            "link",
            "other",
            "contained",
            "resourceType",
            "period",
            "participant",
            "member",
            "patient",
            "repeat",
            "boundsPeriod",
            "url",
            "extension",
            "item",
            "entry",
            "resource",
        ];

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                prop_oneof![
                    Just("Patient/p1".to_owned()),
                    Just("2020-01-02T03:04:05Z".to_owned()),
                    Just("2020".to_owned()),
                    Just("#c".to_owned()),
                    Just("phone".to_owned()),
                    Just("Patient".to_owned()),
                    ".*",
                ]
                .prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 64, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(
                        |kv| Value::Object(
                            kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                        )
                    ),
                ]
            })
        }

        proptest! {
            #[test]
            fn extract_never_panics(
                t in prop::sample::select(&["Patient", "Observation", "CareTeam", "Bundle",
                    "Condition", "Encounter", "Questionnaire", "Consent", "DocumentReference"][..]),
                body in prop::collection::vec((prop::sample::select(KEYS), json()), 0..10),
            ) {
                let mut obj: serde_json::Map<String, Value> =
                    body.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                obj.insert("resourceType".into(), Value::from(t));
                let v = Value::Object(obj);
                let ex = extract(&v);
                prop_assert!(ex.is_ok(), "{:?}", ex);
                let _ = patients(&v);
            }

            #[test]
            fn date_range_never_panics_and_is_ordered(s in ".{0,40}") {
                if let Some(r) = date_range(&s) {
                    prop_assert!(r.start < r.end);
                }
            }

            #[test]
            fn date_range_of_generated_datetimes(
                y in 1i64..=9999, m in 1u32..=12, d in 1u32..=28, h in 0u32..24, mi in 0u32..60,
                s in 0u32..60, frac in proptest::option::of("[0-9]{1,9}"), tz in -14i64..=14,
            ) {
                let zone = if tz == 0 { "Z".to_owned() } else { format!("{}{:02}:00", if tz < 0 { '-' } else { '+' }, tz.abs()) };
                let f = frac.as_ref().map(|f| format!(".{f}")).unwrap_or_default();
                let text = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}{f}{zone}");
                let r = date_range(&text).unwrap();
                let base = us(y, m, d) + ((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s)) * SECOND_US - tz * 3_600 * SECOND_US;
                prop_assert!(r.start >= base && r.start < base + SECOND_US);
                prop_assert!(r.end <= base + SECOND_US);
                let day = date_range(&text[..10]).unwrap();
                prop_assert_eq!(day.end - day.start, DAY_US);
            }
        }
    }

    /// `cargo test -p caldicott-fhir --release -- --ignored --nocapture extract_timing`
    #[test]
    #[ignore = "timing; run in release"]
    fn extract_timing() {
        let g = caldicott_synth::Generator::new(7);
        let resources: Vec<Value> = g
            .patient(3)
            .iter()
            .map(|r| serde_json::from_str(&r.json).unwrap())
            .collect();
        for t in [
            "Patient",
            "Observation",
            "Encounter",
            "Condition",
            "MedicationStatement",
        ] {
            let Some(r) = resources.iter().find(|r| r["resourceType"] == t) else {
                continue;
            };
            let _ = extract(r).unwrap();
            let n = 20_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(extract(std::hint::black_box(r)).unwrap());
            }
            let per = start.elapsed() / n;
            let start = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(patients(std::hint::black_box(r)));
            }
            let per_p = start.elapsed() / n;
            println!("{t}: extract {per:?}, patients {per_p:?}");
        }
    }
}
