//! The dataset specification of an agreement, and flattening a patient's FHIR resources to
//! one row of it.
//!
//! A dataset is one row per patient of the releasing organisation, optionally limited to a
//! cohort (patients with at least one resource matching a FHIR search, e.g. a diabetes
//! diagnosis) and a period (only resources dated within it count). Each column is a
//! FHIRPath expression, evaluated on the Patient or on the patient's resources of one type,
//! and reduced to one value: the first, all (joined with `;`), how many, or whether any.
//!
//! ```toml
//! cohort = "Condition?code=http://snomed.info/sct|44054006"
//! period = { from = 2020-01-01, to = 2025-12-31 }
//!
//! [[column]]
//! name = "nhs_number"
//! path = "Patient.identifier.where(system = 'https://fhir.nhs.uk/Id/nhs-number').value"
//!
//! [[column]]
//! name = "hba1c_tests"
//! from = "Observation"
//! path = "Observation.where(code.coding.code = '1019431000000105')"
//! take = "count"
//! ```
//!
//! Flattening is pure ([`Flattener::row`] takes the patient's resources as JSON), so it can
//! be tested without a store. Values are taken from primitive elements only: a column whose
//! expression selects a complex element (a whole `CodeableConcept`) is an error naming it,
//! rather than a JSON blob nobody can de-identify.

use caldicott_fhir::search::fhirpath::{self, Expr};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::Date;

use crate::day::Day;

use crate::error::ShareError;

/// Columns per dataset, at most (a release is minimal by design).
pub const MAX_COLUMNS: usize = 64;

/// Which data an agreement releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A FHIR search (`Type?params`) whose matches' patients form the cohort; every patient
    /// of the organisation when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<String>,
    /// Only resources dated within this period count, for the cohort and for columns `from`
    /// a resource type (the Patient itself is not dated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(rename = "column")]
    pub columns: Vec<Column>,
}

/// A closed range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub from: Day,
    pub to: Day,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// The column's name in the released table (and in the de-identification profile).
    pub name: String,
    /// The resource type the expression runs on: `Patient` (default) or a type of the
    /// patient's compartment.
    #[serde(default = "patient")]
    pub from: String,
    /// A FHIRPath expression selecting primitive values.
    pub path: String,
    /// How the values of all the patient's resources reduce to one cell.
    #[serde(default)]
    pub take: Take,
}

fn patient() -> String {
    "Patient".into()
}

/// How a column's values reduce to one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Take {
    /// The first value (empty when none).
    #[default]
    First,
    /// Every distinct value, sorted, joined with `;`.
    All,
    /// How many values.
    Count,
    /// `true` or `false`: whether there is any value.
    Exists,
}

impl DatasetSpec {
    /// Checks names, types and expressions.
    pub fn validate(&self) -> Result<(), ShareError> {
        Flattener::new(self).map(|_| ())
    }

    /// The resource types (besides Patient) that columns read.
    pub fn compartment_types(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self
            .columns
            .iter()
            .map(|c| c.from.as_str())
            .filter(|t| *t != "Patient")
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// The cohort search split into its type and query.
    pub fn cohort_search(&self) -> Result<Option<(&str, &str)>, ShareError> {
        let Some(c) = &self.cohort else {
            return Ok(None);
        };
        let (t, q) = c.split_once('?').ok_or_else(|| {
            ShareError::Invalid("the cohort is a FHIR search: `Type?param=value`".into())
        })?;
        if !caldicott_fhir::definitions::is_resource_type(t) || t == "Patient" {
            return Err(ShareError::Invalid(format!(
                "the cohort searches `{t}`, which is not a resource type of a patient's compartment"
            )));
        }
        if !in_compartment(t) {
            return Err(ShareError::Invalid(format!(
                "the cohort searches `{t}`, which is not in the Patient compartment"
            )));
        }
        Ok(Some((t, q)))
    }
}

fn in_compartment(rtype: &str) -> bool {
    !caldicott_fhir::definitions::patient_compartment_params(rtype).is_empty()
}

/// A dataset compiled for flattening.
pub struct Flattener<'s> {
    spec: &'s DatasetSpec,
    exprs: Vec<Expr>,
    /// Per column, the expression giving its resources' dates when a period applies.
    dates: Vec<Option<Vec<Expr>>>,
}

impl<'s> Flattener<'s> {
    /// Compiles every column's expression.
    pub fn new(spec: &'s DatasetSpec) -> Result<Self, ShareError> {
        let bad = |m: String| Err(ShareError::Invalid(m));
        if spec.columns.is_empty() {
            return bad("the dataset has no columns".into());
        }
        if spec.columns.len() > MAX_COLUMNS {
            return bad(format!(
                "the dataset has {} columns; at most {MAX_COLUMNS}",
                spec.columns.len()
            ));
        }
        if let Some(p) = spec.period
            && p.from > p.to
        {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                p.from, p.to
            ));
        }
        spec.cohort_search()?;
        let mut exprs = Vec::new();
        let mut dates = Vec::new();
        for (i, c) in spec.columns.iter().enumerate() {
            let name_ok = !c.name.is_empty()
                && c.name.len() <= 64
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return bad(format!(
                    "column {} has name {:?}: use 1 to 64 letters, digits, `_` or `-`",
                    i + 1,
                    c.name
                ));
            }
            if spec.columns[..i].iter().any(|d| d.name == c.name) {
                return bad(format!("column `{}` is listed twice", c.name));
            }
            if c.from != "Patient" && !in_compartment(&c.from) {
                return bad(format!(
                    "column `{}` reads `{}`, which is not a resource type of a patient's compartment",
                    c.name, c.from
                ));
            }
            let e = fhirpath::compile(&c.path)
                .map_err(|e| ShareError::Invalid(format!("column `{}`: {e}", c.name)))?;
            exprs.push(e);
            dates.push(if c.from != "Patient" && spec.period.is_some() {
                Some(date_expr(&c.from).ok_or_else(|| {
                    ShareError::Invalid(format!(
                        "column `{}` reads `{}`, which has no date to limit to the period",
                        c.name, c.from
                    ))
                })?)
            } else {
                None
            });
        }
        Ok(Flattener { spec, exprs, dates })
    }

    /// The header of the table.
    pub fn header(&self) -> Vec<String> {
        self.spec.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// One patient's row: `patient` is the Patient, `related` the patient's compartment
    /// resources of the types [`DatasetSpec::compartment_types`] names.
    pub fn row(&self, patient: &Value, related: &[Value]) -> Result<Vec<String>, ShareError> {
        let mut out = Vec::with_capacity(self.exprs.len());
        for ((c, e), d) in self.spec.columns.iter().zip(&self.exprs).zip(&self.dates) {
            let mut values: Vec<String> = Vec::new();
            let sources: Vec<&Value> = if c.from == "Patient" {
                vec![patient]
            } else {
                related
                    .iter()
                    .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(&c.from))
                    .filter(|r| match (d, self.spec.period) {
                        (Some(d), Some(p)) => dated_within(d, r, p),
                        _ => true,
                    })
                    .collect()
            };
            for r in sources {
                let nodes = fhirpath::evaluate(e, r)
                    .map_err(|err| ShareError::Invalid(format!("column `{}`: {err}", c.name)))?;
                for n in nodes {
                    values.push(primitive(n.value).ok_or_else(|| {
                        ShareError::Invalid(format!(
                            "column `{}` selects a {} element, not a primitive value: end the path at a primitive (e.g. `.code`, `.value`)",
                            c.name, n.fhir_type
                        ))
                    })?);
                }
            }
            out.push(match c.take {
                Take::First => values.into_iter().next().unwrap_or_default(),
                Take::All => {
                    values.sort();
                    values.dedup();
                    values.join(";")
                }
                Take::Count => values.len().to_string(),
                Take::Exists => (!values.is_empty()).to_string(),
            });
        }
        Ok(out)
    }

    /// Whether a cohort resource counts: dated within the period (or no period).
    pub fn in_period(&self, resource: &Value) -> bool {
        let Some(p) = self.spec.period else {
            return true;
        };
        let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
            return false;
        };
        match date_expr(rt) {
            Some(d) => dated_within(&d, resource, p),
            None => false,
        }
    }
}

/// The dates of a resource type, in order of preference: its `date` search parameter's
/// expression (Observation's effective time, Encounter's period...), else its clinical
/// dates (a Condition's onset, then when it was recorded).
fn date_expr(rtype: &str) -> Option<Vec<Expr>> {
    let candidates: &[&str] = match rtype {
        "Condition" => &["Condition.onset", "Condition.recordedDate"],
        "AllergyIntolerance" => &[
            "AllergyIntolerance.onset",
            "AllergyIntolerance.recordedDate",
        ],
        "MedicationRequest" => &["MedicationRequest.authoredOn"],
        "Immunization" => &["Immunization.occurrence"],
        _ => &[],
    };
    if let Some(Some(Ok(e))) = fhirpath::compiled_param(rtype, "date").map(|p| p.expr.as_ref()) {
        return Some(vec![e.clone()]);
    }
    let exprs: Vec<Expr> = candidates
        .iter()
        .filter_map(|c| fhirpath::compile(c).ok())
        .collect();
    (!exprs.is_empty()).then_some(exprs)
}

/// Whether the resource's date (the first of `exprs` that gives one) falls in the period:
/// the day of a date, dateTime or instant, or of a Period's start.
fn dated_within(exprs: &[Expr], r: &Value, p: Period) -> bool {
    let Some(nodes) = exprs
        .iter()
        .filter_map(|e| fhirpath::evaluate(e, r).ok())
        .find(|n| !n.is_empty())
    else {
        return false;
    };
    nodes.iter().any(|n| {
        let v = match n.value {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("start").and_then(Value::as_str),
            _ => None,
        };
        v.and_then(parse_day)
            .is_some_and(|d| p.from.0 <= d && d <= p.to.0)
    })
}

/// The day of a FHIR date/dateTime; a year or year-month counts as its first day.
fn parse_day(s: &str) -> Option<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match s.len() {
        4 => Date::parse(&format!("{s}-01-01"), fmt).ok(),
        7 => Date::parse(&format!("{s}-01"), fmt).ok(),
        n if n >= 10 => Date::parse(s.get(..10)?, fmt).ok(),
        _ => None,
    }
}

fn primitive(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::agreement::{BasisKind, Frequency, LegalBasis, Recipient, SharePurpose, Terms};
    use serde_json::json;

    pub(crate) const SPEC: &str = r#"
cohort = "Condition?code=http://snomed.info/sct|44054006"
period = { from = 2020-01-01, to = 2025-12-31 }

[[column]]
name = "nhs_number"
path = "Patient.identifier.where(system = 'https://fhir.nhs.uk/Id/nhs-number').value"

[[column]]
name = "sex"
path = "Patient.gender"

[[column]]
name = "birth_date"
path = "Patient.birthDate"

[[column]]
name = "diagnoses"
from = "Condition"
path = "Condition.code.coding.code"
take = "all"

[[column]]
name = "hba1c_tests"
from = "Observation"
path = "Observation.where(code.coding.code = '1019431000000105').id"
take = "count"
"#;

    pub(crate) const PROFILE: &str = r#"
metric = "loss"
suppression_limit = 0.05
[privacy]
model = "k-anonymity"
k = 2
[[attribute]]
name = "nhs_number"
kind = "identifier"
[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = { intervals = [1] }
[[attribute]]
name = "birth_date"
kind = "quasi-identifier"
hierarchy = { date = "yyyy-mm-dd" }
[[attribute]]
name = "diagnoses"
kind = "sensitive"
[[attribute]]
name = "hba1c_tests"
kind = "insensitive"
"#;

    pub(crate) fn spec() -> DatasetSpec {
        toml::from_str(SPEC).unwrap()
    }

    pub(crate) fn example_terms() -> Terms {
        Terms {
            title: "Diabetes outcomes".into(),
            recipient: Recipient {
                name: "University of Leeds".into(),
                ods: None,
                age_key: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
            },
            purpose: SharePurpose::Research,
            legal_basis: LegalBasis {
                kind: BasisKind::Section251,
                reference: "CAG 21/CAG/0001".into(),
            },
            dataset: spec(),
            deid_profile: PROFILE.replace(
                "hierarchy = { intervals = [1] }\n",
                "hierarchy = \"postcode\"\n",
            ),
            frequency: Frequency::Once,
            expires: Day(time::macros::date!(2030 - 01 - 01)),
        }
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-03-04",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]
        })
    }

    #[test]
    fn flattens_a_patient() {
        let s = spec();
        let f = Flattener::new(&s).unwrap();
        assert_eq!(
            f.header(),
            [
                "nhs_number",
                "sex",
                "birth_date",
                "diagnoses",
                "hba1c_tests"
            ]
        );
        let related = vec![
            json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
                   "recordedDate": "2021-05-01"}),
            json!({"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"},
                   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
                   "onsetDateTime": "2019-05-01T10:00:00Z"}),
            json!({"resourceType": "Observation", "id": "o1", "status": "final",
                   "code": {"coding": [{"code": "1019431000000105"}]}, "effectiveDateTime": "2024-02-02"}),
            json!({"resourceType": "Observation", "id": "o2", "status": "final",
                   "code": {"coding": [{"code": "1019431000000105"}]}, "effectiveDateTime": "2026-02-02"}),
            json!({"resourceType": "Observation", "id": "o3", "status": "final",
                   "code": {"coding": [{"code": "271649006"}]}, "effectiveDateTime": "2024-02-02"}),
        ];
        let row = f.row(&patient(), &related).unwrap();
        // c2 is before the period; o2 after it; o3 is another code.
        assert_eq!(row, ["9434765919", "female", "1950-03-04", "44054006", "1"]);
        assert!(f.in_period(&related[0]));
        assert!(!f.in_period(&related[1]));
    }

    #[test]
    fn refuses_bad_specs_precisely() {
        let bad = |from: &str, to: &str| {
            let s: DatasetSpec = toml::from_str(&SPEC.replace(from, to)).unwrap();
            s.validate().unwrap_err().to_string()
        };
        assert!(bad("name = \"sex\"", "name = \"se x\"").contains("column 2"));
        assert!(bad("name = \"sex\"", "name = \"nhs_number\"").contains("listed twice"));
        assert!(bad("from = \"Condition\"", "from = \"Organization\"").contains("compartment"));
        assert!(bad("Patient.gender", "Patient.gender +").contains("column `sex`"));
        assert!(bad("Condition?code", "Condition code").contains("Type?param"));
        assert!(bad("2020-01-01", "2026-01-01").contains("after it ends"));
        // A complex element is refused at flattening, naming the column.
        let s: DatasetSpec =
            toml::from_str(&SPEC.replace("Patient.gender", "Patient.name")).unwrap();
        let f = Flattener::new(&s).unwrap();
        let mut p = patient();
        p["name"] = json!([{"family": "Smith"}]);
        let e = f.row(&p, &[]).unwrap_err().to_string();
        assert!(e.contains("column `sex` selects a HumanName"), "{e}");
        assert!(!e.contains("Smith"));
    }
}
