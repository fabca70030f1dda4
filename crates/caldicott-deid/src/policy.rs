//! The de-identification policy: what each column is, the privacy model, how much may be
//! suppressed and which utility metric chooses among safe transformations.
//!
//! A policy file (TOML):
//!
//! ```toml
//! metric = "non-uniform-entropy"   # or "loss", "discernibility"
//! suppression_limit = 0.0          # fraction of records that may be suppressed, 0.0..=1.0
//! suppressed_rows = "star"         # or "remove" (default "star", as ARX)
//! # delimiter = ";"                # optional; by default sniffed from the input's header
//!
//! [privacy]
//! model = "k-anonymity"
//! k = 5
//!
//! [[attribute]]
//! name = "nhs_number"
//! kind = "identifier"              # removed: written as `*`
//!
//! [[attribute]]
//! name = "age"
//! kind = "quasi-identifier"
//! hierarchy = { intervals = [5, 10, 20] }
//!
//! [[attribute]]
//! name = "diagnosis"
//! kind = "sensitive"               # kept as is (the slot for l-diversity / t-closeness)
//!
//! [[attribute]]
//! name = "episode_count"
//! kind = "insensitive"             # kept as is
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::DeidError;
use crate::hierarchy::HierarchySpec;

/// A de-identification policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The privacy model every published record must satisfy.
    pub privacy: PrivacyModel,
    /// Fraction (0.0..=1.0) of the records that may be suppressed to meet the model.
    #[serde(default)]
    pub suppression_limit: f64,
    /// The utility metric whose optimum is chosen.
    pub metric: UtilityMetric,
    /// What happens to suppressed rows in the output.
    #[serde(default)]
    pub suppressed_rows: SuppressedRows,
    /// The input's field separator; sniffed from the header when absent.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// One entry per column of the input.
    #[serde(rename = "attribute")]
    pub attributes: Vec<Attribute>,
    /// Directory that relative hierarchy paths are resolved against when no hierarchies
    /// directory is given: the policy file's directory when loaded from a file.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// A column and its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// The column's name in the input's header.
    pub name: String,
    /// Its role.
    pub kind: AttributeKind,
    /// Its generalisation hierarchy; required for quasi-identifiers, refused for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy: Option<HierarchySpec>,
}

/// The role of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttributeKind {
    /// Directly identifying (NHS number, name): removed, written as `*`.
    Identifier,
    /// Identifying in combination (age, sex, postcode): generalised by its hierarchy.
    QuasiIdentifier,
    /// The information to protect (a diagnosis): kept; ℓ-diversity and t-closeness will
    /// constrain its distribution per class.
    Sensitive,
    /// Neither: kept as is.
    Insensitive,
}

/// The privacy model. One variant today; ℓ-diversity and t-closeness slot in as further
/// variants: each is a predicate on an equivalence class (its size, and for those two the
/// distribution of a sensitive attribute within it), and the search needs only
/// [`PrivacyModel::is_monotonic`] to know whether Flash's predictive tagging is sound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum PrivacyModel {
    /// Every published record shares its quasi-identifiers with at least `k - 1` others.
    KAnonymity {
        /// The minimum class size, at least 1.
        k: u64,
    },
}

impl PrivacyModel {
    /// The minimum size of a published equivalence class.
    pub fn min_class_size(&self) -> u64 {
        match self {
            PrivacyModel::KAnonymity { k } => *k,
        }
    }

    /// Whether a class of `size` records may be published.
    pub fn class_ok(&self, size: u64) -> bool {
        size >= self.min_class_size()
    }

    /// Whether "this transformation satisfies the model (within the suppression limit)" is
    /// monotonic in the lattice: true for k-anonymity with or without suppression (merging
    /// classes never shrinks one). Flash's predictive tagging is sound only when it is.
    pub fn is_monotonic(&self) -> bool {
        match self {
            PrivacyModel::KAnonymity { .. } => true,
        }
    }

    /// A short human description, e.g. `5-anonymity`.
    pub fn describe(&self) -> String {
        match self {
            PrivacyModel::KAnonymity { k } => format!("{k}-anonymity"),
        }
    }
}

/// The utility (information loss) metric. Lower is better for all three; see
/// [`crate::metric`] for the exact formulas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum UtilityMetric {
    /// ARX's Loss (Iyengar), per attribute normalised to 0..1, aggregated by geometric mean.
    Loss,
    /// Discernibility (Bayardo & Agrawal): sum of squared class sizes, `N` per suppressed record.
    Discernibility,
    /// Non-uniform entropy (de Waal & Willenborg; ARX's default), in bits.
    NonUniformEntropy,
    /// ARX's monotonic variant of non-uniform entropy (`createEntropyMetric(true)`): suppressed
    /// records cost what they would cost published, so the metric depends on the levels only.
    MonotonicNonUniformEntropy,
}

impl UtilityMetric {
    /// Whether the metric never decreases upwards in the lattice even when records are
    /// suppressed (every metric does when none are).
    pub fn is_monotonic_with_suppression(self) -> bool {
        matches!(self, UtilityMetric::MonotonicNonUniformEntropy)
    }
}

/// What happens to a suppressed row in the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuppressedRows {
    /// Kept, with every quasi-identifier written as `*` (ARX's behaviour). Sensitive and
    /// insensitive values are kept, identifiers are `*` as in every row.
    #[default]
    Star,
    /// Left out of the output.
    Remove,
}

impl Policy {
    /// Parses and validates a policy from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, DeidError> {
        let policy: Policy = toml::from_str(text).map_err(|e| DeidError::PolicySyntax {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// The attribute entry for a column.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The quasi-identifiers, in policy order.
    pub fn quasi_identifiers(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes
            .iter()
            .filter(|a| a.kind == AttributeKind::QuasiIdentifier)
    }

    /// Checks the rules that do not need the data.
    pub fn validate(&self) -> Result<(), DeidError> {
        let invalid = |m: String| Err(DeidError::InvalidPolicy(m));
        if self.privacy.min_class_size() == 0 {
            return invalid("k-anonymity needs k of at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.suppression_limit) {
            return invalid(format!(
                "suppression_limit is {}, but it is a fraction of the records: it must be between 0.0 and 1.0",
                self.suppression_limit
            ));
        }
        if let Some(d) = self.delimiter
            && (!d.is_ascii() || d == '"' || d == '\n' || d == '\r')
        {
            return invalid(format!(
                "delimiter {d:?} must be a single ASCII character other than a quote or a line break"
            ));
        }
        if self.attributes.is_empty() {
            return invalid("the policy names no attributes".into());
        }
        for (i, a) in self.attributes.iter().enumerate() {
            if let Some(prev) = self.attributes[..i].iter().position(|b| b.name == a.name) {
                return invalid(format!(
                    "attribute `{}` is listed twice (entries {} and {})",
                    a.name,
                    prev + 1,
                    i + 1
                ));
            }
            match (&a.kind, &a.hierarchy) {
                (AttributeKind::QuasiIdentifier, None) => {
                    return invalid(format!(
                        "quasi-identifier `{}` has no hierarchy: add e.g. `hierarchy = {{ csv = \"...\" }}`",
                        a.name
                    ));
                }
                (AttributeKind::QuasiIdentifier, Some(h)) => h.validate(&a.name)?,
                (kind, Some(_)) => {
                    return invalid(format!(
                        "attribute `{}` is {kind:?} but has a hierarchy: only quasi-identifiers are generalised",
                        a.name
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
metric = "loss"
suppression_limit = 0.02
suppressed_rows = "remove"
delimiter = ","

[privacy]
model = "k-anonymity"
k = 3

[[attribute]]
name = "nhs_number"
kind = "identifier"

[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = { intervals = [5, 10, 20] }

[[attribute]]
name = "postcode"
kind = "quasi-identifier"
hierarchy = "postcode"

[[attribute]]
name = "dob"
kind = "quasi-identifier"
hierarchy = { date = "dd/mm/yyyy" }

[[attribute]]
name = "occupation"
kind = "quasi-identifier"
hierarchy = { csv = "occupation.csv" }

[[attribute]]
name = "diagnosis"
kind = "sensitive"
"#;

    #[test]
    fn parses_every_hierarchy_kind() {
        let p = Policy::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(p.privacy, PrivacyModel::KAnonymity { k: 3 });
        assert_eq!(p.metric, UtilityMetric::Loss);
        assert_eq!(p.suppressed_rows, SuppressedRows::Remove);
        assert_eq!(p.delimiter, Some(','));
        assert_eq!(p.quasi_identifiers().count(), 4);
        assert_eq!(
            p.attribute("postcode").unwrap().hierarchy,
            Some(HierarchySpec::Postcode)
        );
        assert_eq!(
            p.attribute("dob").unwrap().hierarchy,
            Some(HierarchySpec::Date(crate::DateFormat::Uk))
        );
    }

    #[test]
    fn rules_are_enforced() {
        let bad = |from: &str, to: &str| {
            Policy::from_toml_str(&EXAMPLE.replace(from, to))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("k = 3", "k = 0").contains("at least 1"));
        assert!(bad("0.02", "1.5").contains("between 0.0 and 1.0"));
        assert!(
            bad("hierarchy = \"postcode\"", "")
                .contains("quasi-identifier `postcode` has no hierarchy")
        );
        assert!(
            bad(
                "kind = \"sensitive\"",
                "kind = \"sensitive\"\nhierarchy = \"postcode\""
            )
            .contains("only quasi-identifiers")
        );
        assert!(bad("name = \"dob\"", "name = \"age\"").contains("listed twice"));
        assert!(bad("k = 3", "k = 3\nl = 2").contains("policy <string>"));
        assert!(bad("metric = \"loss\"", "metric = \"height\"").contains("unknown variant"));
        assert!(bad("[5, 10, 20]", "[5, 12]").contains("nest"));
    }
}
