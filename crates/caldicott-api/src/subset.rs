//! `_summary` and `_elements`: returning part of a resource (FHIR R4 search.html#summary and
//! #elements), tagged `SUBSETTED` so that no client mistakes it for the whole record.
//!
//! `_summary=true` keeps the elements the specification marks `isSummary` (from the
//! generated definitions) and every mandatory one, at the top level and inside backbone
//! elements; `text` keeps the narrative, `id`, `meta` and the mandatory elements; `data`
//! drops the narrative; `_elements` keeps the named top-level elements. `resourceType`, `id`
//! and `meta` are always kept.

use caldicott_fhir::definitions::{self, TypeDef};
use caldicott_fhir::search::query::{Control, Summary};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The `meta.tag` a subsetted resource carries.
const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// What part of each resource to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subset {
    Summary,
    Text,
    Data,
    Elements(Vec<String>),
}

impl Subset {
    /// The subset a search's result parameters ask for, if any.
    pub fn of(control: &Control) -> Option<Subset> {
        match control.summary {
            Some(Summary::True) => return Some(Subset::Summary),
            Some(Summary::Text) => return Some(Subset::Text),
            Some(Summary::Data) => return Some(Subset::Data),
            Some(Summary::False | Summary::Count) | None => {}
        }
        (!control.elements.is_empty()).then(|| Subset::Elements(control.elements.clone()))
    }

    /// The stored resource `body` reduced to this subset.
    pub fn apply(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let Value::Object(mut obj) = serde_json::from_slice(body)
            .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))?
        else {
            return Err(ApiError::internal("a stored resource is not a JSON object"));
        };
        let rtype = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let def = definitions::resource(&rtype);
        let before = obj.len();
        let mut removed = false;
        match self {
            Subset::Data => {
                removed = obj.remove("text").is_some();
            }
            Subset::Text => {
                obj.retain(|k, _| {
                    always(k) || k == "text" || def.is_some_and(|d| mandatory(d, &rtype, k))
                });
            }
            Subset::Summary => {
                if let Some(d) = def {
                    removed = summarise(d, &rtype, &mut obj);
                }
            }
            Subset::Elements(names) => {
                obj.retain(|k, _| {
                    always(k)
                        || names.iter().any(|n| {
                            let n = n.strip_prefix(&format!("{rtype}.")).unwrap_or(n);
                            k == n || is_choice_of(def, &rtype, k, n)
                        })
                        || def.is_some_and(|d| mandatory(d, &rtype, k))
                });
            }
        }
        removed |= obj.len() != before;
        if removed {
            tag_subsetted(&mut obj);
        }
        serde_json::to_vec(&Value::Object(obj))
            .map_err(|_| ApiError::internal("cannot serialise a resource"))
    }
}

fn always(key: &str) -> bool {
    matches!(key, "resourceType" | "id" | "meta")
}

/// The element definition behind a JSON key at `parent` (`valueQuantity` → `value[x]`).
fn element<'a>(def: &'a TypeDef, parent: &str, key: &str) -> Option<&'a definitions::ElementDef> {
    let key = key.strip_prefix('_').unwrap_or(key);
    def.element(&format!("{parent}.{key}")).or_else(|| {
        def.children(parent)
            .find(|e| e.is_choice() && key.starts_with(e.name().trim_end_matches("[x]")))
    })
}

fn mandatory(def: &TypeDef, rtype: &str, key: &str) -> bool {
    element(def, rtype, key).is_some_and(|e| e.min > 0)
}

fn is_choice_of(def: Option<&TypeDef>, rtype: &str, key: &str, name: &str) -> bool {
    def.and_then(|d| d.element(&format!("{rtype}.{name}[x]")))
        .is_some_and(|_| {
            key.starts_with(name) && key[name.len()..].starts_with(|c: char| c.is_ascii_uppercase())
        })
}

/// Keeps the summary and mandatory elements of `obj` at `path`, recursing into backbone
/// elements; returns whether anything was removed.
fn summarise(def: &TypeDef, path: &str, obj: &mut Map<String, Value>) -> bool {
    let mut removed = false;
    obj.retain(|k, _| {
        let keep = always(k) || element(def, path, k).is_some_and(|e| e.summary || e.min > 0);
        removed |= !keep;
        keep
    });
    for (k, v) in obj.iter_mut() {
        let Some(e) = element(def, path, k) else {
            continue;
        };
        if !e.types.contains(&"BackboneElement") {
            continue;
        }
        let child = format!("{path}.{}", e.name());
        let items: Vec<&mut Value> = match v {
            Value::Array(a) => a.iter_mut().collect(),
            other => vec![other],
        };
        for item in items {
            if let Value::Object(o) = item {
                removed |= summarise(def, &child, o);
            }
        }
    }
    removed
}

fn tag_subsetted(obj: &mut Map<String, Value>) {
    let meta = obj
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Value::Array(tags) = tags {
            tags.push(json!({ "system": SUBSETTED_SYSTEM, "code": "SUBSETTED" }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Vec<u8> {
        json!({
            "resourceType": "Patient", "id": "p", "meta": { "versionId": "1" },
            "text": { "status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>" },
            "identifier": [{ "value": "1" }], "name": [{ "family": "Smith" }],
            "gender": "female", "birthDate": "1970",
            "maritalStatus": { "text": "married" },
            "contact": [{ "name": { "family": "Jones" }, "gender": "male" }],
            "communication": [{ "language": { "text": "en" }, "preferred": true }]
        })
        .to_string()
        .into_bytes()
    }

    fn apply(s: Subset) -> Value {
        serde_json::from_slice(&s.apply(&patient()).unwrap()).unwrap()
    }

    #[test]
    fn summary_keeps_summary_elements_only() {
        let v = apply(Subset::Summary);
        for k in ["identifier", "name", "gender", "birthDate"] {
            assert!(v.get(k).is_some(), "{k} is a summary element");
        }
        for k in ["text", "maritalStatus", "contact", "communication"] {
            assert!(v.get(k).is_none(), "{k} is not");
        }
        assert_eq!(v["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(v["meta"]["versionId"], "1");
    }

    #[test]
    fn text_data_and_elements() {
        let t = apply(Subset::Text);
        assert!(t.get("text").is_some() && t.get("name").is_none());
        let d = apply(Subset::Data);
        assert!(d.get("text").is_none() && d.get("contact").is_some());
        assert_eq!(d["meta"]["tag"][0]["code"], "SUBSETTED");
        let e = apply(Subset::Elements(vec![
            "gender".into(),
            "Patient.birthDate".into(),
        ]));
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["resourceType", "id", "meta", "gender", "birthDate"]);
    }

    #[test]
    fn choice_elements_by_their_base_name() {
        let o = json!({"resourceType": "Observation", "id": "o", "status": "final",
            "code": {"text": "x"}, "valueQuantity": {"value": 1}, "note": [{"text": "n"}]})
        .to_string();
        let v: Value = serde_json::from_slice(
            &Subset::Elements(vec!["value".into()])
                .apply(o.as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert!(v.get("valueQuantity").is_some());
        assert!(v.get("status").is_some(), "mandatory elements stay");
        assert!(v.get("note").is_none());
        let s: Value =
            serde_json::from_slice(&Subset::Summary.apply(o.as_bytes()).unwrap()).unwrap();
        assert!(s.get("valueQuantity").is_some() && s.get("note").is_none());
    }
}
