//! What a de-identification run did, for the data controller and for audit (serialised as
//! JSON next to the output).

use serde::{Deserialize, Serialize};

use crate::policy::{PrivacyModel, SuppressedRows, UtilityMetric};

/// The report of one de-identification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Data rows in the input.
    pub records: u64,
    /// Records suppressed (their quasi-identifiers starred, or the rows removed).
    pub records_suppressed: u64,
    /// What was done with suppressed rows.
    pub suppressed_rows: SuppressedRows,
    /// Rows written to the output.
    pub rows_written: u64,
    /// The privacy model.
    pub privacy_model: PrivacyModel,
    /// The suppression limit (fraction of records).
    pub suppression_limit: f64,
    /// Columns removed (written as `*`).
    pub identifiers_removed: Vec<String>,
    /// The chosen generalisation: one level per quasi-identifier, in input column order.
    pub transformation: Vec<QiLevel>,
    /// Equivalence classes among the published (not suppressed) records.
    pub equivalence_classes: u64,
    /// Smallest published class.
    pub min_class_size: u64,
    /// Largest published class.
    pub max_class_size: u64,
    /// How many published classes have each size, smallest first.
    pub class_sizes: Vec<ClassSizeCount>,
    /// Re-identification risk of the published records.
    pub risk: Risk,
    /// Information loss of the output.
    pub utility: Utility,
    /// How the transformation was found.
    pub search: Search,
    /// Things the data controller should know before releasing the output.
    pub warnings: Vec<String>,
}

/// A quasi-identifier's generalisation level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QiLevel {
    /// The column.
    pub attribute: String,
    /// The chosen level (0 = original values).
    pub level: u8,
    /// The hierarchy's highest level.
    pub max_level: u8,
}

/// Number of classes of one size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSizeCount {
    /// Records per class.
    pub size: u64,
    /// Classes of that size.
    pub classes: u64,
}

/// Re-identification risk under the prosecutor model (the attacker knows the target is in the
/// release) over the published records. Without a population table the journalist risk (the
/// attacker does not know) is bounded above by these figures, since a population class is never
/// smaller than the sample class it contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Highest risk of any record: `1 / min_class_size`.
    pub max_risk: f64,
    /// Mean risk over records: `equivalence_classes / published records` (also the marketer
    /// risk: the expected share of records re-identified by linking everything).
    pub average_risk: f64,
    /// Share of published records at the highest risk.
    pub records_at_max_risk: f64,
}

/// Information loss figures (see [`crate::metric`] for the formulas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utility {
    /// The metric that chose the transformation.
    pub metric: UtilityMetric,
    /// Its value.
    pub value: f64,
    /// ARX Loss, 0..1 (geometric mean over quasi-identifiers).
    pub loss: f64,
    /// Loss per quasi-identifier, in input column order.
    pub loss_per_attribute: Vec<f64>,
    /// Discernibility.
    pub discernibility: f64,
    /// Non-uniform entropy, bits.
    pub non_uniform_entropy: f64,
}

/// The search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// `flash` or `exhaustive`.
    pub algorithm: String,
    /// Transformations in the lattice.
    pub lattice_nodes: u64,
    /// Transformations checked (the others were classified by predictive tagging or pruned).
    pub nodes_checked: u64,
    /// Of those, transformations whose equivalence classes were computed.
    pub nodes_grouped: u64,
    /// Wall time of the search, milliseconds (data loading and output excluded).
    pub search_ms: f64,
}
