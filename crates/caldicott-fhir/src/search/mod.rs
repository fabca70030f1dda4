//! FHIR search without a database: what a resource can be found by, what a search URL asks
//! for, whether a resource matches, and which protected index terms narrow the candidates.
//!
//! The pieces, in the order a request uses them:
//! - [`fhirpath`]: the subset of FHIRPath that the R4 search-parameter expressions use,
//!   evaluated over `serde_json::Value` with the FHIR type of every node tracked from the
//!   generated definitions;
//! - [`extract`]: for one resource, the values of each of its search parameters
//!   ([`Extracted`]), computed once at write time and again when filtering;
//! - [`query`]: a search URL's parameters parsed and checked against the definitions
//!   ([`query::Query`]); every error names the parameter at fault;
//! - [`matching`]: the exact semantics of the specification (prefixes, modifiers, precision
//!   ranges), applied to the decrypted candidates;
//! - [`terms`]: the index terms a resource is stored under, and the terms a query can look
//!   up. Terms are only ever a superset filter: the vault stores keyed hashes of them, so
//!   they cannot be ranges; dates are bucketed, strings indexed by short prefixes, and the
//!   exact answer comes from [`matching`].
//!
//! The invariant that ties them together (property-tested in `terms`): if a resource
//! matches a query parameter, then the resource's index terms and the parameter's lookup
//! terms intersect. No false negatives from the index, ever.
//!
//! What this is not: a full FHIRPath engine (only what search expressions need), nor the
//! HTTP layer (paging links, bundles, `_include` resolution live in `caldicott-api`).

mod calendar;
pub mod extract;
pub mod fhirpath;
pub mod matching;
pub mod query;
pub mod terms;
mod value;

pub use value::{DateRange, Decimal, Extracted, RefValue, SearchValue};
