//! Every way de-identification can fail, each naming where and which rule.
//!
//! Row numbers: `line` is the 1-based line of the input file where a CSV record starts (the
//! header is line 1); `row` is the 1-based data row of a [`Table`](crate::Table) (the first row
//! after the header is row 1, so row `r` starts on line `r + 1` when no field spans lines).
//!
//! Values in messages: a value missing from a CSV hierarchy is named, because such a value is a
//! category (an occupation, a country) that the policy author must add to the hierarchy. A value
//! rejected by a built-in hierarchy (a postcode, a date, a number) is *not* echoed: those are the
//! direct personal data that ARCHITECTURE.md forbids in error messages; the row and the rule are
//! enough to find it.

use std::path::PathBuf;

/// Why de-identification could not produce an output. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeidError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The input is not well-formed CSV (bad quoting, invalid UTF-8, ...).
    #[error("{path}: malformed CSV at line {line}: {message}")]
    MalformedCsv {
        /// The input file.
        path: PathBuf,
        /// 1-based line where the bad record starts.
        line: u64,
        /// What the CSV reader reported.
        message: String,
    },

    /// A CSV record has a different number of fields than the header.
    #[error(
        "{path}: line {line} has {found} fields but the header has {expected}: every row must have one field per column"
    )]
    RaggedRow {
        /// The input file.
        path: PathBuf,
        /// 1-based line where the record starts (the header is line 1).
        line: u64,
        /// Number of columns in the header.
        expected: usize,
        /// Number of fields in this record.
        found: usize,
    },

    /// A row given to [`Table::push_row`](crate::Table::push_row) has the wrong width.
    #[error("data row {row} has {found} fields but the table has {expected} columns")]
    RowWidth {
        /// 1-based data row.
        row: usize,
        /// Number of columns.
        expected: usize,
        /// Number of fields given.
        found: usize,
    },

    /// The input has no header line.
    #[error("{path}: the input is empty: a header line naming the columns is required")]
    MissingHeader {
        /// The input file.
        path: PathBuf,
    },

    /// The input has a header but no data rows.
    #[error("the input has no data rows: there is nothing to de-identify")]
    NoRecords,

    /// Two columns of the input have the same name.
    #[error("column `{column}` appears twice in the header (columns {first} and {second})")]
    DuplicateColumn {
        /// The repeated name.
        column: String,
        /// 1-based position of its first occurrence.
        first: usize,
        /// 1-based position of its second occurrence.
        second: usize,
    },

    /// The policy file is not valid TOML or does not match the policy schema.
    #[error("policy {path}: {message}")]
    PolicySyntax {
        /// The policy file (or `<string>`).
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },

    /// The policy is well-formed but breaks a rule.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),

    /// The policy names a column that the input does not have.
    #[error("the policy names column `{column}`, which is not in the input's header")]
    UnknownColumn {
        /// The name in the policy.
        column: String,
    },

    /// The input has a column that the policy does not classify.
    #[error(
        "column `{column}` of the input is not classified by the policy: every column must be an identifier, quasi-identifier, sensitive, insensitive, pseudonym, date-shift, top-bottom-coded or free-text attribute"
    )]
    UnclassifiedColumn {
        /// The column's name.
        column: String,
    },

    /// A hierarchy row has a different number of levels than the hierarchy's first row.
    #[error(
        "hierarchy for `{column}`: row {row} has {found} levels but row 1 has {expected}: every value must have the same number of generalisation levels"
    )]
    HierarchyRagged {
        /// The quasi-identifier.
        column: String,
        /// 1-based row of the hierarchy file.
        row: usize,
        /// Levels in row 1.
        expected: usize,
        /// Levels in this row.
        found: usize,
    },

    /// A hierarchy has an empty cell or no rows.
    #[error("hierarchy for `{column}`: {message}")]
    HierarchyMalformed {
        /// The quasi-identifier.
        column: String,
        /// What is wrong, with row and level.
        message: String,
    },

    /// The same original value appears twice in a hierarchy.
    #[error(
        "hierarchy for `{column}`: value `{value}` appears in rows {first} and {second}: each original value must have exactly one row"
    )]
    HierarchyDuplicate {
        /// The quasi-identifier.
        column: String,
        /// The repeated value.
        value: String,
        /// 1-based row of its first occurrence.
        first: usize,
        /// 1-based row of its second occurrence.
        second: usize,
    },

    /// A hierarchy's levels do not form a tree.
    #[error("hierarchy for `{}`: {}", .0.column, .0)]
    HierarchyInconsistent(Box<Inconsistency>),

    /// A quasi-identifier's value is not in its CSV hierarchy.
    #[error(
        "data row {row}, column `{column}`: value `{value}` is not in the column's hierarchy: every value of a quasi-identifier must have a row in its hierarchy"
    )]
    ValueNotInHierarchy {
        /// The quasi-identifier.
        column: String,
        /// 1-based data row of its first occurrence.
        row: usize,
        /// The missing value.
        value: String,
    },

    /// A quasi-identifier's value does not fit its built-in hierarchy. The value is not echoed.
    #[error("data row {row}, column `{column}`: {rule}")]
    InvalidValue {
        /// The quasi-identifier.
        column: String,
        /// 1-based data row of its first occurrence.
        row: usize,
        /// The rule the value breaks.
        rule: String,
    },

    /// No transformation in the lattice satisfies the privacy model within the suppression limit.
    #[error(
        "the policy cannot be satisfied: {model} needs every published record in a class of at least {k}; even generalising every quasi-identifier fully leaves {violating} of {records} records in smaller classes, and the suppression limit ({limit}) allows suppressing at most {allowed}"
    )]
    Unsatisfiable {
        /// The privacy model, spelled out.
        model: String,
        /// The minimum class size it needs.
        k: u64,
        /// Records in the input.
        records: u64,
        /// Records in too-small classes at the top of the lattice.
        violating: u64,
        /// The suppression limit as given.
        limit: f64,
        /// Records that may be suppressed.
        allowed: u64,
    },

    /// No transformation satisfies a privacy model with criteria beyond class sizes
    /// (ℓ-diversity, t-closeness, average risk) within the suppression limit.
    #[error(
        "the policy cannot be satisfied: {model}; even generalising every quasi-identifier fully leaves {violating} of {records} records in classes the model refuses, and the suppression limit ({limit}) allows suppressing at most {allowed}"
    )]
    UnsatisfiableModel {
        /// The privacy model, spelled out.
        model: String,
        /// Records in the input.
        records: u64,
        /// Records in refused classes at the top of the lattice.
        violating: u64,
        /// The suppression limit as given.
        limit: f64,
        /// Records that may be suppressed.
        allowed: u64,
    },

    /// A rule of the privacy model is broken by the policy itself (a value out of range, an
    /// attribute not declared sensitive, a missing population).
    #[error("privacy model, {rule}: {message}")]
    PrivacyRule {
        /// The rule, e.g. `privacy.l-diversity[1] (attribute `diagnosis`)`.
        rule: String,
        /// What is wrong and what would be right.
        message: String,
    },

    /// A rule of the privacy model that no transformation of this data can meet (e.g. ℓ above
    /// the number of distinct sensitive values in the input).
    #[error("the policy cannot be satisfied: {rule}: {reason}")]
    ModelUnsatisfiable {
        /// The rule, as in [`DeidError::PrivacyRule`].
        rule: String,
        /// Why no release can meet it.
        reason: String,
    },

    /// The generalisation lattice is too large to search.
    #[error(
        "the generalisation lattice has {nodes} transformations, more than the {max} this engine searches: use fewer quasi-identifiers or shallower hierarchies"
    )]
    LatticeTooLarge {
        /// Its size (saturating).
        nodes: u128,
        /// The limit.
        max: u64,
    },

    /// A table of counts for aggregate protection is malformed.
    #[error("aggregate table: {0}")]
    Aggregate(String),

    /// A pseudonym or date-shift column, but no agreement key was given.
    #[error(
        "column `{column}` needs the agreement key (pseudonyms and date shifts are keyed): pass one, or name its source in the policy with `transform = {{ key = {{ env = \"...\" }} }}` or `{{ file = \"...\" }}`"
    )]
    MissingKey {
        /// The column.
        column: String,
    },

    /// The agreement key could not be read or is unusable. Never contains key material.
    #[error("pseudonym key: {0}")]
    Key(String),

    /// Two different values got the same pseudonym (a truncation collision).
    #[error(
        "column `{column}`: two different values have the same {length}-character pseudonym; use a longer `length` so that the release never links two people"
    )]
    PseudonymCollision {
        /// The column.
        column: String,
        /// The pseudonym length in characters.
        length: usize,
    },

    /// Too many rows or distinct values for the 32-bit encoding.
    #[error("the input is too large: {0}")]
    TooLarge(String),
}

/// A label with two parents in a hierarchy (see [`DeidError::HierarchyInconsistent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency {
    /// The quasi-identifier.
    pub column: String,
    /// The label with two parents.
    pub value: String,
    /// Its level (0 = original values).
    pub level: usize,
    /// The first parent seen.
    pub parent_a: String,
    /// 1-based hierarchy row of the first parent.
    pub row_a: usize,
    /// The conflicting parent.
    pub parent_b: String,
    /// 1-based hierarchy row of the conflicting parent.
    pub row_b: usize,
}

impl std::fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` at level {} generalises to `{}` (row {}) and to `{}` (row {}) at level {}: each value must have exactly one parent, so the levels form a tree",
            self.value,
            self.level,
            self.parent_a,
            self.row_a,
            self.parent_b,
            self.row_b,
            self.level + 1
        )
    }
}
