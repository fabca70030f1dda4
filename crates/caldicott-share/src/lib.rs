//! Safe sharing with research and planning partners.
//!
//! This crate holds what a release needs and nothing of how records are stored or who may
//! ask: [`agreement`] (data-sharing agreements: versioned, proposed by one person and
//! approved by the organisation's Caldicott guardian, revocable, expiring; kept by
//! [`book`]), [`dataset`] (which data: cohort, period, columns as FHIRPath, and flattening a
//! patient to one row) and [`output`]
//! (writing a de-identified table as CSV, Parquet and NDJSON, encrypted to the recipient's
//! `age` key, with a signed manifest). Selecting the cohort from the FHIR store, removing
//! opted-out patients and recording the release in the audit ledger happen in the binary
//! (`src/share_cmd.rs`), which joins this crate to the vault, the access directory and the
//! de-identification engine (`caldicott-deid`).
//!
//! It is not a de-identification engine (that is `caldicott-deid`) and does no I/O beyond
//! the files it is asked to write.

pub mod agreement;
pub mod book;
pub mod dataset;
mod day;
mod error;
pub mod output;

pub use agreement::{Actor, Agreement, AgreementId, ReleaseRecord, Terms};
pub use book::Book;
pub use dataset::{DatasetSpec, Flattener};
pub use day::Day;
pub use error::ShareError;
