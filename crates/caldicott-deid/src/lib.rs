//! Caldicott's de-identification engine: optimal full-domain generalisation for k-anonymity,
//! as ARX does it.
//!
//! A [`Policy`] says what each column is (identifier: removed; quasi-identifier: generalised
//! by its [hierarchy](HierarchySpec); sensitive or insensitive: kept), the
//! [privacy model](PrivacyModel), the fraction of records that may be suppressed and the
//! [utility metric](UtilityMetric). The engine searches the lattice of generalisation levels
//! with ARX's Flash algorithm for the transformation that satisfies the model with the least
//! information loss (see [`mod@search`] for the algorithm and why the result is optimal,
//! [`metric`] for the exact formulas), then releases the table under it with a [`Report`].
//! With `algorithm = "local-recoding"` it partitions the records instead, giving each class its
//! own labels from the hierarchies (Mondrian-style; `docs/local-recoding.md`).
//!
//! Layers: [`Table`], [`Hierarchy`], [`Policy`] and [`Anonymiser`] are pure (no I/O), so they
//! can be tested exhaustively; [`io`] reads and writes files around them:
//!
//! ```no_run
//! use std::path::Path;
//! use caldicott_deid::{Policy, anonymise_csv};
//!
//! let policy = Policy::from_toml_file(Path::new("examples/anonymise/adult-k5.toml"))?;
//! let report = anonymise_csv(
//!     Path::new("adult.csv"),
//!     &policy,
//!     Some(Path::new("../shared/data/adult")),
//!     Path::new("adult-k5.csv"),
//!     Path::new("adult-k5.report.json"),
//! )?;
//! println!("levels {:?}, min class {}", report.transformation, report.min_class_size);
//! # Ok::<(), caldicott_deid::DeidError>(())
//! ```

pub mod aggregate;
mod anonymise;
mod encode;
mod error;
mod fx;
mod groupify;
mod hierarchy;
pub mod io;
mod lattice;
pub mod metric;
mod mondrian;
mod policy;
mod precheck;
pub mod privacy;
mod report;
pub mod scrub;
pub mod search;
mod table;
pub mod transform;
mod witness;

pub use anonymise::{
    Algorithm, Anonymiser, Evaluation, Hierarchies, Release, Solution, anonymise_table,
    anonymise_table_with_key,
};
pub use error::{DeidError, Inconsistency};
pub use hierarchy::{DateFormat, Hierarchy, HierarchySpec};
pub use io::{
    CsvFormat, anonymise_csv, anonymise_csv_html, anonymise_csv_with_key, load_hierarchies,
    read_csv,
};
pub use mondrian::SplitRule;
pub use policy::{
    Attribute, AttributeKind, GroundDistance, LDiversity, LVariant, ModelName, Policy,
    PrivacyModel, Recoding, RiskThresholds, SuppressedRows, TCloseness, UtilityMetric,
};
pub use privacy::{Criteria, journalist_risk};
pub use report::{
    ClassSizeCount, JournalistRisk, LAchieved, LevelRecords, LocalRecoding, PrivacyAchieved,
    QiLevel, RecordsAtRisk, Report, Risk, Search, TAchieved, Utility,
};
pub use table::Table;
pub use transform::{KeySource, PseudonymKey, TransformOptions, Transformer};
