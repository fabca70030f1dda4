//! Structural validation of a FHIR R4 resource in JSON against the base specification's
//! definitions ([`crate::definitions`]).
//!
//! What it checks: the text is a JSON object whose `resourceType` is a concrete R4 resource
//! type; every property is an element of its resource or datatype (unknown elements are
//! refused, at every depth, in contained and bundled resources too); a choice element
//! appears as one of its types (`valueQuantity`) and only once; required elements are
//! present; an element that repeats is a non-empty array and one that does not is not an
//! array; primitives have the right JSON type (boolean, integer, decimal, string) and
//! format (`id`, `code`, `uri`, `oid`, `uuid`, `date`, `dateTime`, `instant`, `time`,
//! `base64Binary`, the integer ranges); `_element` siblings that carry a primitive's id and
//! extensions are accepted where that primitive may be, and checked as `Element`; objects
//! and arrays are not empty.
//!
//! What it does not check: invariants (FHIRPath constraints such as `ele-1` beyond empty
//! objects), terminology bindings, profiles (UK Core or any other), reference targets,
//! extensions' own definitions, the XHTML of a narrative, or duplicate JSON keys (the
//! parser keeps the last). It never rewrites the input: callers store the bytes they were
//! given.
//!
//! Issues name the element at fault (`Patient.birthDate`, `Patient.name[1].given[0]`),
//! never its value, which may identify a patient.

use std::fmt;

use serde_json::{Map, Value};

use crate::definitions::{self, ElementDef, TypeDef, TypeKind};

/// One thing wrong with a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where: `Patient.birthDate`, `Bundle.entry[0].resource.name[1]`; the resource type
    /// alone for the resource as a whole; empty when the input is not a JSON object at all.
    pub path: String,
    /// What, without the value.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Checks the structure of one R4 resource in JSON. `Ok` when nothing is wrong; otherwise
/// every issue found, in document order.
pub fn validate(json: &[u8]) -> Result<(), Vec<Issue>> {
    let value: Value = serde_json::from_slice(json).map_err(|e| {
        vec![Issue {
            path: String::new(),
            message: format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        }]
    })?;
    validate_value(&value)
}

/// [`validate`] for a resource already parsed.
pub fn validate_value(value: &Value) -> Result<(), Vec<Issue>> {
    let mut v = Validator { issues: Vec::new() };
    v.resource(value, "");
    if v.issues.is_empty() {
        Ok(())
    } else {
        Err(v.issues)
    }
}

struct Validator {
    issues: Vec<Issue>,
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

fn is_primitive(type_code: &str) -> bool {
    definitions::datatype(type_code).is_some_and(|t| t.kind == TypeKind::Primitive)
}

/// `dateTime` -> `DateTime`: how a choice type is spelled after the element name.
fn matches_choice_suffix(type_code: &str, suffix: &str) -> bool {
    let mut t = type_code.chars();
    let mut s = suffix.chars();
    match (t.next(), s.next()) {
        (Some(a), Some(b)) => a.to_ascii_uppercase() == b && t.as_str() == s.as_str(),
        _ => false,
    }
}

/// The child element a JSON property name stands for, and the type it was given as.
fn match_child(
    children: &[&'static ElementDef],
    name: &str,
) -> Option<(usize, &'static ElementDef, &'static str)> {
    children.iter().enumerate().find_map(|(i, el)| {
        let el_name = el.name();
        if let Some(stem) = el_name.strip_suffix("[x]") {
            let suffix = name.strip_prefix(stem)?;
            let ty = el.types.iter().find(|t| matches_choice_suffix(t, suffix))?;
            Some((i, *el, *ty))
        } else if el_name == name {
            Some((i, *el, el.types.first().copied().unwrap_or("")))
        } else {
            None
        }
    })
}

impl Validator {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A resource at `path` (empty at the top level).
    fn resource(&mut self, value: &Value, path: &str) {
        let Some(obj) = value.as_object() else {
            self.issue(path, "must be a JSON object (a resource)");
            return;
        };
        let Some(rt) = obj.get("resourceType") else {
            self.issue(join(path, "resourceType"), "missing");
            return;
        };
        let def = rt
            .as_str()
            .filter(|rt| definitions::is_resource_type(rt))
            .and_then(definitions::resource);
        let Some(def) = def else {
            self.issue(
                join(path, "resourceType"),
                "not an R4 resource type (a string such as \"Patient\")",
            );
            return;
        };
        let shown = if path.is_empty() { def.name } else { path };
        self.object(obj, def, def.name, shown, true);
    }

    /// The properties of an object whose definition is the children of `def_path` in `td`.
    fn object(
        &mut self,
        obj: &Map<String, Value>,
        td: &'static TypeDef,
        def_path: &str,
        path: &str,
        is_resource: bool,
    ) {
        if obj.is_empty() || (is_resource && obj.len() == 1) {
            self.issue(path, "must not be empty");
        }
        let children: Vec<&'static ElementDef> = td.children(def_path).collect();
        // For each child: the property names it was given as (two for a choice is an error).
        let mut seen: Vec<Vec<&str>> = vec![Vec::new(); children.len()];
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            let (is_ext, name) = match key.strip_prefix('_') {
                Some(name) => (true, name),
                None => (false, key.as_str()),
            };
            let at = join(path, key);
            let Some((i, el, ty)) = match_child(&children, name) else {
                self.issue(at, "unknown element");
                continue;
            };
            if is_ext {
                if !is_primitive(ty) {
                    self.issue(
                        at,
                        "unknown element (only primitive elements have `_` siblings)",
                    );
                    continue;
                }
                self.primitive_element(value, el, &at);
            } else {
                let has_ext = obj.contains_key(&format!("_{key}"));
                self.value(value, td, el, ty, &at, has_ext);
            }
            if !seen[i].contains(&name) {
                seen[i].push(name);
            }
        }
        for (el, names) in children.iter().zip(&seen) {
            if names.len() > 1 {
                self.issue(
                    join(path, el.name()),
                    "a choice element given as more than one type",
                );
            }
            if el.min > 0 && names.is_empty() {
                self.issue(join(path, el.name()), "required element missing");
            }
        }
    }

    /// A property's value: the array or single value its cardinality calls for.
    fn value(
        &mut self,
        value: &Value,
        td: &'static TypeDef,
        el: &'static ElementDef,
        ty: &'static str,
        path: &str,
        has_ext: bool,
    ) {
        if el.max == 0 {
            self.issue(path, "not allowed here");
            return;
        }
        if el.is_array() {
            let Some(items) = value.as_array() else {
                self.issue(path, "must be an array (the element repeats)");
                return;
            };
            if items.is_empty() {
                self.issue(path, "must not be an empty array");
            }
            if items.len() as u64 > u64::from(el.max) {
                self.issue(path, format!("at most {} allowed", el.max));
            }
            for (i, item) in items.iter().enumerate() {
                // A null stands for a repeat that has only its `_` sibling.
                if item.is_null() && has_ext && is_primitive(ty) {
                    continue;
                }
                self.single(item, td, el, ty, &format!("{path}[{i}]"));
            }
        } else if value.is_array() {
            self.issue(path, "must not be an array (at most one allowed)");
        } else {
            self.single(value, td, el, ty, path);
        }
    }

    fn single(
        &mut self,
        value: &Value,
        td: &'static TypeDef,
        el: &'static ElementDef,
        ty: &'static str,
        path: &str,
    ) {
        if let Some(target) = el.content_ref {
            match value.as_object() {
                Some(obj) => self.object(obj, td, target, path, false),
                None => self.issue(path, "must be a JSON object"),
            }
            return;
        }
        if ty == "Resource" {
            self.resource(value, path);
            return;
        }
        if td.children(el.path).next().is_some() {
            // An element defined inline (BackboneElement, or Element in a datatype).
            match value.as_object() {
                Some(obj) => self.object(obj, td, el.path, path, false),
                None => self.issue(path, "must be a JSON object"),
            }
            return;
        }
        let Some(dt) = definitions::datatype(ty) else {
            return;
        };
        if dt.kind == TypeKind::Primitive {
            if !primitive_ok(value, ty) {
                self.issue(path, format!("not a valid {ty}"));
            }
            return;
        }
        match value.as_object() {
            Some(obj) => self.object(obj, dt, dt.name, path, false),
            None => self.issue(path, format!("must be a JSON object (a {ty})")),
        }
    }

    /// The `_name` sibling of a primitive: an Element (id, extension), or an array of them
    /// (and nulls) for a repeating one.
    fn primitive_element(&mut self, value: &Value, el: &'static ElementDef, path: &str) {
        let element = definitions::datatype("Element").expect("Element is an R4 datatype");
        let one = |v: &mut Self, item: &Value, at: &str| match item.as_object() {
            Some(obj) => v.object(obj, element, "Element", at, false),
            None => v.issue(at, "must be a JSON object (id and extensions)"),
        };
        if el.is_array() {
            let Some(items) = value.as_array() else {
                self.issue(path, "must be an array (the element repeats)");
                return;
            };
            for (i, item) in items.iter().enumerate() {
                if !item.is_null() {
                    one(self, item, &format!("{path}[{i}]"));
                }
            }
        } else {
            one(self, value, path);
        }
    }
}

/// Whether a JSON value is a valid FHIR R4 primitive of type `ty`.
fn primitive_ok(value: &Value, ty: &str) -> bool {
    let int_in = |lo: i64| {
        value
            .as_i64()
            .is_some_and(|n| n >= lo && n <= i64::from(i32::MAX))
    };
    match ty {
        "boolean" => value.is_boolean(),
        "integer" => int_in(i64::from(i32::MIN)),
        "unsignedInt" => int_in(0),
        "positiveInt" => int_in(1),
        "decimal" => value.is_number(),
        _ => value.as_str().is_some_and(|s| string_ok(s, ty)),
    }
}

fn string_ok(s: &str, ty: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    match ty {
        "id" => {
            s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        "code" => {
            !s.starts_with(char::is_whitespace)
                && !s.ends_with(char::is_whitespace)
                && !s
                    .chars()
                    .zip(s.chars().skip(1))
                    .any(|(a, b)| a.is_whitespace() && b.is_whitespace())
        }
        "uri" | "url" | "canonical" => !s.contains(char::is_whitespace),
        "oid" => s.strip_prefix("urn:oid:").is_some_and(oid_ok),
        "uuid" => s.strip_prefix("urn:uuid:").is_some_and(uuid_ok),
        "date" => date_ok(s),
        "dateTime" => date_time_ok(s, false),
        "instant" => date_time_ok(s, true),
        "time" => time_ok(s),
        "base64Binary" => base64_ok(s),
        // string, markdown, xhtml: any non-empty text.
        _ => true,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

fn oid_ok(s: &str) -> bool {
    let mut arcs = s.split('.');
    matches!(arcs.next(), Some("0" | "1" | "2"))
        && s.contains('.')
        && arcs.all(|a| {
            !a.is_empty()
                && a.bytes().all(|b| b.is_ascii_digit())
                && (a == "0" || !a.starts_with('0'))
        })
}

fn uuid_ok(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, a real calendar date, year 0001 to 9999.
fn date_ok(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(year) = parts.next().and_then(|y| digits(y, 4)).filter(|y| *y > 0) else {
        return false;
    };
    let month = match parts.next() {
        None => return true,
        Some(m) => match digits(m, 2) {
            Some(m @ 1..=12) => m,
            _ => return false,
        },
    };
    let day = match parts.next() {
        None => return true,
        Some(d) => digits(d, 2),
    };
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    parts.next().is_none() && day.is_some_and(|d| (1..=days).contains(&d))
}

/// `hh:mm:ss` with optional fraction (a leap second 60 allowed).
fn time_ok(s: &str) -> bool {
    let (hms, frac) = match s.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (s, None),
    };
    let mut p = hms.split(':');
    let ok = matches!(p.next().and_then(|h| digits(h, 2)), Some(0..=23))
        && matches!(p.next().and_then(|m| digits(m, 2)), Some(0..=59))
        && matches!(p.next().and_then(|x| digits(x, 2)), Some(0..=60))
        && p.next().is_none();
    ok && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// `Z`, or `+hh:mm` / `-hh:mm` from -14:00 to +14:00.
fn zone_ok(s: &str) -> bool {
    if s == "Z" {
        return true;
    }
    let Some(rest) = s.strip_prefix(['+', '-']) else {
        return false;
    };
    let Some((h, m)) = rest.split_once(':') else {
        return false;
    };
    matches!(
        (digits(h, 2), digits(m, 2)),
        (Some(0..=13), Some(0..=59)) | (Some(14), Some(0))
    )
}

/// A dateTime: a (partial) date, or a full date, `T`, a time with seconds and a zone. An
/// instant must be the latter.
fn date_time_ok(s: &str, instant: bool) -> bool {
    let Some((date, rest)) = s.split_once('T') else {
        return !instant && date_ok(s);
    };
    let Some(zone_at) = rest.find(['Z', '+', '-']) else {
        return false;
    };
    date.len() == 10 && date_ok(date) && time_ok(&rest[..zone_at]) && zone_ok(&rest[zone_at..])
}

fn base64_ok(s: &str) -> bool {
    let mut n = 0usize;
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => n += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return false,
        }
    }
    n.is_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(json: &str) -> Vec<String> {
        match validate(json.as_bytes()) {
            Ok(()) => Vec::new(),
            Err(issues) => issues.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_valid(json: &str) {
        assert_eq!(issues(json), Vec::<String>::new(), "{json}");
    }

    #[track_caller]
    fn assert_issue(json: &str, expected: &str) {
        let found = issues(json);
        assert!(
            found.iter().any(|i| i == expected),
            "expected {expected:?}, found {found:?}"
        );
    }

    const PATIENT: &str = r##"{
        "resourceType": "Patient",
        "id": "p-1.a",
        "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678+00:00",
                 "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
        "extension": [{"url": "https://example.org/ext", "valueCodeableConcept": {"text": "x"}}],
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "active": true,
        "name": [{"use": "official", "family": "Smith", "given": ["Ann", null],
                  "_given": [null, {"extension": [{"url": "https://example.org/e", "valueString": "x"}]}]}],
        "gender": "female",
        "birthDate": "1970-02-28",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1970-02-28T10:11:12Z"}]},
        "deceasedBoolean": false,
        "multipleBirthInteger": 2,
        "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
                     "name": {"text": "Bob"}}],
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Surgery"}],
        "generalPractitioner": [{"reference": "#o1"}]
    }"##;

    #[test]
    fn a_valid_patient() {
        assert_valid(PATIENT);
    }

    #[test]
    fn a_valid_observation_and_bundle() {
        let obs = r#"{"resourceType":"Observation","status":"final",
            "code":{"coding":[{"system":"http://snomed.info/sct","code":"27113001"}]},
            "subject":{"reference":"Patient/p1"},
            "effectiveDateTime":"2024-05",
            "valueQuantity":{"value":72.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},
            "component":[{"code":{"text":"x"},"valueString":"y"}],
            "referenceRange":[{"low":{"value":1}}]}"#;
        assert_valid(obs);
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"collection","timestamp":"2024-01-01T00:00:00Z",
                "entry":[{{"fullUrl":"urn:uuid:0a1b2c3d-0000-4000-8000-00000000abcd","resource":{obs}}}]}}"#
        );
        assert_valid(&bundle);
    }

    #[test]
    fn recursive_questionnaire_items() {
        assert_valid(
            r#"{"resourceType":"Questionnaire","status":"draft",
                "item":[{"linkId":"1","type":"group",
                         "item":[{"linkId":"1.1","type":"string","text":"Name?"}]}]}"#,
        );
        assert_issue(
            r#"{"resourceType":"Questionnaire","status":"draft",
                "item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string","bogus":1}]}]}"#,
            "Questionnaire.item[0].item[0].bogus: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","item":[{"linkId":"2","type":"string"}]}]}"#,
            "Questionnaire.item[0].type: required element missing",
        );
    }

    #[test]
    fn resource_type() {
        assert_issue(r#"{"id":"x"}"#, "resourceType: missing");
        assert_issue(
            r#"{"resourceType":"Patientx"}"#,
            "resourceType: not an R4 resource type (a string such as \"Patient\")",
        );
        assert_issue(
            r#"{"resourceType":"DomainResource","id":"x"}"#,
            "resourceType: not an R4 resource type (a string such as \"Patient\")",
        );
        assert_issue("[1]", "must be a JSON object (a resource)");
        assert_eq!(issues("{").len(), 1);
        assert_issue(
            r#"{"resourceType":"Patient"}"#,
            "Patient: must not be empty",
        );
    }

    #[test]
    fn unknown_elements_at_every_depth() {
        assert_issue(
            r#"{"resourceType":"Patient","nickname":"x"}"#,
            "Patient.nickname: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Patient","name":[{"family":"x","surname":"y"}]}"#,
            "Patient.name[0].surname: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Patient","contact":[{"name":{"text":"x"},"colour":"red"}]}"#,
            "Patient.contact[0].colour: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Patient","contained":[{"resourceType":"Organization","nom":"x"}]}"#,
            "Patient.contained[0].nom: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Patient","_name":{"id":"a"}}"#,
            "Patient._name: unknown element (only primitive elements have `_` siblings)",
        );
        assert_issue(
            r#"{"resourceType":"Patient","_birthDate":{"bad":1}}"#,
            "Patient._birthDate.bad: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueFoo":"x"}"#,
            "Observation.valueFoo: unknown element",
        );
        assert_issue(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valuestring":"x"}"#,
            "Observation.valuestring: unknown element",
        );
    }

    #[test]
    fn cardinality() {
        assert_issue(
            r#"{"resourceType":"Patient","name":{"family":"x"}}"#,
            "Patient.name: must be an array (the element repeats)",
        );
        assert_issue(
            r#"{"resourceType":"Patient","gender":["female"]}"#,
            "Patient.gender: must not be an array (at most one allowed)",
        );
        assert_issue(
            r#"{"resourceType":"Patient","name":[]}"#,
            "Patient.name: must not be an empty array",
        );
        assert_issue(
            r#"{"resourceType":"Patient","name":[{}]}"#,
            "Patient.name[0]: must not be empty",
        );
        let obs = r#"{"resourceType":"Observation","subject":{"reference":"Patient/1"}}"#;
        assert_issue(obs, "Observation.status: required element missing");
        assert_issue(obs, "Observation.code: required element missing");
        assert_issue(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true}"#,
            "Observation.value[x]: a choice element given as more than one type",
        );
        // A primitive given only through its `_` sibling is present.
        assert_valid(
            r#"{"resourceType":"Observation","_status":{"extension":[{"url":"https://e.org/x","valueCode":"z"}]},"code":{"text":"x"}}"#,
        );
    }

    #[test]
    fn primitive_types_and_formats() {
        let bad = [
            (
                r#""birthDate":"1970-02-30""#,
                "Patient.birthDate: not a valid date",
            ),
            (
                r#""birthDate":"70-01-01""#,
                "Patient.birthDate: not a valid date",
            ),
            (r#""birthDate":1970"#, "Patient.birthDate: not a valid date"),
            (r#""active":"true""#, "Patient.active: not a valid boolean"),
            (
                r#""multipleBirthInteger":1.5"#,
                "Patient.multipleBirthInteger: not a valid integer",
            ),
            (
                r#""multipleBirthInteger":3000000000"#,
                "Patient.multipleBirthInteger: not a valid integer",
            ),
            (r#""id":"has space""#, "Patient.id: not a valid id"),
            (r#""id":"""#, "Patient.id: not a valid id"),
            (r#""gender":" female""#, "Patient.gender: not a valid code"),
            (
                r#""implicitRules":"a b""#,
                "Patient.implicitRules: not a valid uri",
            ),
            (
                r#""deceasedDateTime":"2020-01-01T10:00""#,
                "Patient.deceasedDateTime: not a valid dateTime",
            ),
            (
                r#""deceasedDateTime":"2020-01-01T10:00:00""#,
                "Patient.deceasedDateTime: not a valid dateTime",
            ),
            (
                r#""meta":{"lastUpdated":"2020-01-01"}"#,
                "Patient.meta.lastUpdated: not a valid instant",
            ),
            (
                r#""photo":[{"data":"a$=="}]"#,
                "Patient.photo[0].data: not a valid base64Binary",
            ),
            (
                r#""photo":[{"size":-1}]"#,
                "Patient.photo[0].size: not a valid unsignedInt",
            ),
            (
                r#""name":[{"given":["Ann",""]}]"#,
                "Patient.name[0].given[1]: not a valid string",
            ),
            (
                r#""name":[{"given":[null]}]"#,
                "Patient.name[0].given[0]: not a valid string",
            ),
        ];
        for (prop, expected) in bad {
            let json = format!(r#"{{"resourceType":"Patient",{prop}}}"#);
            assert_issue(&json, expected);
        }
        let good = [
            r#""deceasedDateTime":"2020""#,
            r#""deceasedDateTime":"2020-01-01T10:00:00.123-05:30""#,
            r#""deceasedDateTime":"2020-02-29T23:59:60Z""#,
            r#""meta":{"lastUpdated":"2020-01-01T00:00:00+14:00"}"#,
            r#""photo":[{"data":"aGVs bG8=","size":0}]"#,
            r#""identifier":[{"system":"urn:oid:2.16.840.1.113883"}]"#,
            r#""identifier":[{"system":"urn:uuid:0a1b2c3d-0000-4000-8000-00000000abcd"}]"#,
        ];
        for prop in good {
            assert_valid(&format!(r#"{{"resourceType":"Patient",{prop}}}"#));
        }
        assert_issue(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1"}}"#,
            "Observation.valueQuantity.value: not a valid decimal",
        );
        assert_issue(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":"25:00:00"}"#,
            "Observation.valueTime: not a valid time",
        );
    }

    #[test]
    fn issues_never_carry_values() {
        let json = r#"{"resourceType":"Patient","birthDate":"SECRET-1","id":"SECRET 2",
            "name":[{"family":"x","SECRET3":"y"}],"gender":"SECRET 4 "}"#;
        let found = issues(json);
        assert_eq!(found.len(), 4, "{found:?}");
        for i in found {
            assert!(!i.contains("SECRET-1") && !i.contains("SECRET 2") && !i.contains("SECRET 4"));
        }
    }
}
