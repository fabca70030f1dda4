//! The HL7 FHIR R4 REST API of Caldicott, mounted at `/fhir` by `caldicott serve`.
//!
//! What it is: the interactions of the FHIR RESTful API over the encrypted vault: read,
//! vread, create, update (with `If-Match`), conditional create/update/delete, JSON Patch,
//! delete, history (instance, type, system), search with paging, sorting, `_include` and
//! `_revinclude`, `_summary` and `_elements`, batch and transaction Bundles, `Patient/$everything`, Bulk Data
//! `$export`, and `metadata`. Every error is an `OperationOutcome` with the status the
//! specification gives. Resources are stored as the client wrote them (key order and
//! number text kept) with the server's `id` and `meta.versionId`/`lastUpdated` set.
//!
//! How it is layered: [`http`] reads requests and writes responses; [`store`] holds the
//! rules of each interaction over the vault (synchronous, run on the blocking pool);
//! [`search`] runs a search (index candidates, exact matching after decryption, paging);
//! [`bundle`] processes batches and transactions. The FHIR knowledge itself (definitions,
//! validation, search semantics) lives in `caldicott-fhir`, storage and encryption in
//! `caldicott-vault`.
//!
//! What it is not (yet): access control (every caller sees every organisation's data;
//! the access-control layer decides that) or audit logging; XML; FHIRPath Patch;
//! chained and composite search parameters.

#![forbid(unsafe_code)]

pub mod admin;
pub mod agreements;
pub mod audit;
pub mod auditlog;
pub mod auth;
pub mod bundle;
pub mod capability;
pub mod error;
pub mod everything;
pub mod export;
pub mod guard;
pub mod http;
pub mod json;
pub mod ledger;
pub mod response;
pub mod search;
pub mod store;
pub mod subset;

pub use error::ApiError;
pub use export::Exports;
pub use http::{ApiConfig, FhirApi, router};
pub use store::Store;
