//! Fuzzes the FHIRPath subset engine: any text is compiled
//! (`caldicott_fhir::search::fhirpath::compile`), and what compiles is type-checked
//! (`result_types`) and evaluated over a few fixed resources, from the root and from a
//! nested node. Nothing may panic, overflow the stack or run away, whatever the text.
//!
//! Run from the repository root (nightly), with the hand-made seeds and the dictionary:
//!
//! ```text
//! mkdir -p fuzz/corpus/fhirpath
//! cargo +nightly fuzz run fhirpath fuzz/corpus/fhirpath fuzz/seeds/fhirpath -- \
//!     -dict=fuzz/fhirpath.dict -max_total_time=300 -rss_limit_mb=2048 -timeout=10
//! ```
//!
//! Fixed crashes go to `fuzz/regressions/fhirpath/`, replayed on stable by
//! `cargo test -p caldicott-fhir --test fuzz_regressions`.

#![no_main]

#[path = "common/fhir.rs"]
mod fhir;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fhir::fhirpath(data));
