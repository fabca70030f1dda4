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
//! [privacy]                        # every criterion given must hold (see PrivacyModel)
//! k = 5
//! [[privacy.l-diversity]]
//! attribute = "diagnosis"
//! variant = "entropy"              # or "distinct"
//! l = 3
//! [[privacy.t-closeness]]
//! attribute = "diagnosis"
//! t = 0.2
//! distance = "equal"               # or { hierarchy = { csv = "diagnosis.csv" } }
//! [privacy.risk]
//! average = 0.05
//! prosecutor = 0.2
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
//! kind = "sensitive"               # kept as is; ℓ-diversity / t-closeness may constrain it
//!
//! [[attribute]]
//! name = "episode_count"
//! kind = "insensitive"             # kept as is
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::DeidError;
use crate::hierarchy::HierarchySpec;
use crate::transform::TransformOptions;

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
    /// Full-domain generalisation (the optimum, the default) or local recoding.
    #[serde(default)]
    pub algorithm: Recoding,
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
    /// The parameters of a transformed kind (pseudonym, date-shift, top-bottom-coded,
    /// free-text); refused for the others. See [`TransformOptions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<TransformOptions>,
}

/// The role of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttributeKind {
    /// Directly identifying (NHS number, name): removed, written as `*`.
    Identifier,
    /// Identifying in combination (age, sex, postcode): generalised by its hierarchy.
    QuasiIdentifier,
    /// The information to protect (a diagnosis): kept; ℓ-diversity and t-closeness may
    /// constrain its distribution per class.
    Sensitive,
    /// Neither: kept as is.
    Insensitive,
    /// Replaced by its keyed pseudonym (HMAC-SHA-256 under the agreement key): the same value
    /// links within one key, never across two. See [`crate::transform`].
    Pseudonym,
    /// A date shifted by an offset that is the same for every date of one patient (derived
    /// from the key and the patient column), within `±max_days`.
    DateShift,
    /// A number with values at or beyond thresholds written `<=bottom` / `>=top`.
    TopBottomCoded,
    /// Free text with NHS numbers, names, addresses, postcodes, phone numbers, emails and
    /// dates replaced by placeholders such as `[NHS-NUMBER]`. See [`crate::scrub`].
    FreeText,
}

/// The privacy model: every criterion given must hold for the release (as in ARX, criteria
/// combine by conjunction). See `docs/anonymise.md` for the TOML form, the definitions and which
/// criteria are monotonic.
///
/// ```toml
/// [privacy]
/// k = 5                              # k-anonymity (default 1: none)
/// [[privacy.l-diversity]]
/// attribute = "diagnosis"            # must be declared `kind = "sensitive"`
/// variant = "entropy"                # or "distinct"
/// l = 3
/// [[privacy.t-closeness]]
/// attribute = "diagnosis"
/// t = 0.2
/// distance = "equal"                 # or { hierarchy = { csv = "diagnosis.csv" } }
/// [privacy.risk]
/// average = 0.05                     # mean re-identification risk of published records
/// prosecutor = 0.2                   # highest risk of any record: 1 / class size
/// journalist = 0.1                   # highest estimated risk against the population ...
/// sampling_fraction = 0.01           # ... given as a sampling fraction, or `population = N`
/// ```
///
/// The older form `model = "k-anonymity"` with `k` is still read (it means the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyModel {
    /// The older spelling `model = "k-anonymity"`; kept when read so a policy round-trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelName>,
    /// k-anonymity: every published record shares its quasi-identifiers with at least `k - 1`
    /// others. 1 (the default) imposes nothing.
    #[serde(default = "one")]
    pub k: u64,
    /// ℓ-diversity requirements, one per sensitive attribute (or several).
    #[serde(default, rename = "l-diversity", skip_serializing_if = "Vec::is_empty")]
    pub l_diversity: Vec<LDiversity>,
    /// t-closeness requirements.
    #[serde(default, rename = "t-closeness", skip_serializing_if = "Vec::is_empty")]
    pub t_closeness: Vec<TCloseness>,
    /// Re-identification risk thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskThresholds>,
}

fn one() -> u64 {
    1
}

/// The older `model = "..."` key; only k-anonymity was ever offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelName {
    /// `model = "k-anonymity"`.
    KAnonymity,
}

/// ℓ-diversity of one sensitive attribute (Machanavajjhala, Kifer, Gehrke, Venkitasubramaniam:
/// "ℓ-diversity: privacy beyond k-anonymity", TKDD 2007).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LDiversity {
    /// The sensitive attribute.
    pub attribute: String,
    /// Which ℓ-diversity.
    pub variant: LVariant,
    /// ℓ, at least 1 (a whole number for the distinct variant).
    pub l: f64,
}

/// The variants of ℓ-diversity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LVariant {
    /// Every class holds at least ℓ distinct values.
    Distinct,
    /// Every class's Shannon entropy (natural log) of the values is at least `ln ℓ`.
    Entropy,
}

/// t-closeness of one sensitive attribute (Li, Li, Venkatasubramanian: "t-closeness: privacy
/// beyond k-anonymity and ℓ-diversity", ICDE 2007): the Earth Mover's Distance between each
/// class's distribution of the attribute and its distribution in the whole input is at most t.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TCloseness {
    /// The sensitive attribute.
    pub attribute: String,
    /// The largest distance allowed, 0.0..=1.0.
    pub t: f64,
    /// The ground distance between two values.
    #[serde(default)]
    pub distance: GroundDistance,
}

/// The ground distance of t-closeness's EMD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroundDistance {
    /// Every two different values are at distance 1 (EMD = half the L1 distance).
    #[default]
    Equal,
    /// Values are leaves of a hierarchy (the same forms quasi-identifiers use); two values are
    /// at distance `level of their lowest common ancestor / height`.
    Hierarchy(HierarchySpec),
}

/// Re-identification risk thresholds (each a probability, 0.0 < x <= 1.0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskThresholds {
    /// Mean prosecutor risk over the published records: classes / published records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    /// Highest prosecutor risk of any published record: 1 / its class size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prosecutor: Option<f64>,
    /// Highest journalist risk of any published record: the expected value of 1 / its
    /// population class size, estimated from the sampling fraction (see `docs/anonymise.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journalist: Option<f64>,
    /// The population the input was drawn from, in records (sampling fraction = records /
    /// population).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u64>,
    /// The fraction of the population the input holds, 0.0 < f <= 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_fraction: Option<f64>,
}

impl PrivacyModel {
    /// k-anonymity alone.
    pub fn k_anonymity(k: u64) -> Self {
        Self {
            model: None,
            k,
            l_diversity: Vec::new(),
            t_closeness: Vec::new(),
            risk: None,
        }
    }

    /// The smallest published equivalence class any transformation may have, from the criteria
    /// that imply one without looking at the data: `k`, `ceil(1 / prosecutor)` and, for
    /// ℓ-diversity, `ceil(ℓ)` (a class with fewer records cannot hold ℓ distinct values, nor
    /// reach entropy `ln ℓ`). The journalist threshold implies one too, but it depends on the
    /// sampling fraction: [`crate::Criteria::min_class_size`] includes it.
    pub fn min_class_size(&self) -> u64 {
        let mut k = self.k.max(1);
        if let Some(p) = self.risk.as_ref().and_then(|r| r.prosecutor)
            && p > 0.0
        {
            k = k.max(crate::privacy::min_size_for_risk(p));
        }
        for l in &self.l_diversity {
            if l.l.is_finite() && l.l >= 1.0 {
                k = k.max(l.l.ceil() as u64);
            }
        }
        k
    }

    /// Whether a class of `size` records passes the size-only criteria (k, prosecutor,
    /// ℓ's implied size). The full per-class predicate, with the sensitive values, is
    /// [`crate::Criteria::class_ok`].
    pub fn class_ok(&self, size: u64) -> bool {
        size >= self.min_class_size()
    }

    /// Whether "this transformation satisfies the model within the suppression limit" is
    /// monotonic in the lattice, so that Flash's predictive tagging is sound for it (see
    /// [`crate::privacy`] for each criterion, after ARX's `isMonotonicWithSuppression` and
    /// `isMonotonicWithGeneralization`). `with_suppression`: whether any record may be
    /// suppressed.
    pub fn is_monotonic(&self, with_suppression: bool) -> bool {
        !with_suppression
            || (self
                .l_diversity
                .iter()
                .all(|l| l.variant == LVariant::Distinct)
                && self.t_closeness.is_empty())
    }

    /// A short human description, e.g. `5-anonymity, entropy-3-diversity of diagnosis`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.k > 1
            || (self.l_diversity.is_empty() && self.t_closeness.is_empty() && self.risk.is_none())
        {
            parts.push(format!("{}-anonymity", self.k));
        }
        for l in &self.l_diversity {
            let variant = match l.variant {
                LVariant::Distinct => "distinct",
                LVariant::Entropy => "entropy",
            };
            parts.push(format!("{variant}-{}-diversity of `{}`", l.l, l.attribute));
        }
        for t in &self.t_closeness {
            let distance = match t.distance {
                GroundDistance::Equal => "equal",
                GroundDistance::Hierarchy(_) => "hierarchical",
            };
            parts.push(format!(
                "{}-closeness ({distance} distance) of `{}`",
                t.t, t.attribute
            ));
        }
        if let Some(r) = &self.risk {
            for (name, v) in [
                ("average", r.average),
                ("prosecutor", r.prosecutor),
                ("journalist", r.journalist),
            ] {
                if let Some(v) = v {
                    parts.push(format!("{name} risk at most {v}"));
                }
            }
        }
        parts.join(", ")
    }

    /// Checks the rules of the model that do not need the data, naming the rule broken.
    pub(crate) fn validate(&self, attributes: &[Attribute]) -> Result<(), DeidError> {
        let rule = |rule: String, message: String| Err(DeidError::PrivacyRule { rule, message });
        if self.k == 0 {
            return rule(
                "privacy.k".into(),
                "k-anonymity needs k of at least 1".into(),
            );
        }
        let sensitive = |name: &str, rule_name: &str| -> Result<(), DeidError> {
            match attributes.iter().find(|a| a.name == name) {
                Some(a) if a.kind == AttributeKind::Sensitive => Ok(()),
                Some(a) => Err(DeidError::PrivacyRule {
                    rule: rule_name.to_string(),
                    message: format!(
                        "attribute `{name}` is {:?}, but a model can only constrain an attribute declared `kind = \"sensitive\"`",
                        a.kind
                    ),
                }),
                None => Err(DeidError::PrivacyRule {
                    rule: rule_name.to_string(),
                    message: format!(
                        "attribute `{name}` is not in the policy: declare it with `kind = \"sensitive\"`"
                    ),
                }),
            }
        };
        for (i, l) in self.l_diversity.iter().enumerate() {
            let name = format!(
                "privacy.l-diversity[{}] (attribute `{}`)",
                i + 1,
                l.attribute
            );
            sensitive(&l.attribute, &name)?;
            if !l.l.is_finite() || l.l < 1.0 {
                return rule(name, format!("l is {}, but it must be at least 1", l.l));
            }
            if l.variant == LVariant::Distinct && l.l.fract() != 0.0 {
                return rule(
                    name,
                    format!(
                        "l is {}, but distinct ℓ-diversity counts values: it must be a whole number",
                        l.l
                    ),
                );
            }
        }
        for (i, t) in self.t_closeness.iter().enumerate() {
            let name = format!(
                "privacy.t-closeness[{}] (attribute `{}`)",
                i + 1,
                t.attribute
            );
            sensitive(&t.attribute, &name)?;
            if !(0.0..=1.0).contains(&t.t) {
                return rule(
                    name,
                    format!(
                        "t is {}, but an Earth Mover's Distance lies between 0.0 and 1.0",
                        t.t
                    ),
                );
            }
            if let GroundDistance::Hierarchy(h) = &t.distance {
                h.validate(&t.attribute)?;
            }
        }
        if let Some(r) = &self.risk {
            for (key, v) in [
                ("average", r.average),
                ("prosecutor", r.prosecutor),
                ("journalist", r.journalist),
                ("sampling_fraction", r.sampling_fraction),
            ] {
                if let Some(v) = v
                    && !(v > 0.0 && v <= 1.0)
                {
                    return rule(
                        format!("privacy.risk.{key}"),
                        format!("{v} is not a probability above 0.0 and at most 1.0"),
                    );
                }
            }
            if r.population == Some(0) {
                return rule(
                    "privacy.risk.population".into(),
                    "the population must hold at least one record".into(),
                );
            }
            if r.population.is_some() && r.sampling_fraction.is_some() {
                return rule(
                    "privacy.risk".into(),
                    "give either `population` or `sampling_fraction`, not both: each determines the other".into(),
                );
            }
            if r.journalist.is_some() && r.population.is_none() && r.sampling_fraction.is_none() {
                return rule(
                    "privacy.risk.journalist".into(),
                    "journalist risk is measured against the population the data was drawn from: give `population = N` (records) or `sampling_fraction = f`".into(),
                );
            }
        }
        Ok(())
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

/// How the table is generalised: `algorithm = "optimal"` (the default), `"local-recoding"` or
/// `"local-recoding-strict"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recoding {
    /// Optimal full-domain generalisation: one level per quasi-identifier for every record,
    /// the best under the utility metric (ARX's Flash).
    #[default]
    Optimal,
    /// Local recoding: each class gets its own labels, found by top-down partitioning over the
    /// hierarchies (Mondrian-style, relaxed split rule; see `docs/local-recoding.md`). The
    /// utility metric is reported, not optimised.
    LocalRecoding,
    /// Local recoding with strict Mondrian's split rule (every part of a split satisfies the
    /// model on its own).
    LocalRecodingStrict,
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
            crate::transform::validate_attribute(a, &self.attributes)?;
        }
        self.privacy.validate(&self.attributes)
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
        assert_eq!(p.privacy.k, 3);
        assert_eq!(p.privacy.model, Some(ModelName::KAnonymity));
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
