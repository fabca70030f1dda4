//! Fuzzes the FHIR R4 JSON validator and everything that reads a stored resource: the
//! importer's facts, the search values of every parameter, the patient compartment and
//! the index terms. Any bytes at all: none of it may panic, overflow the stack or run away.
//!
//! Run from the repository root (nightly), with the hand-made seeds and the dictionary:
//!
//! ```text
//! mkdir -p fuzz/corpus/validate
//! cargo +nightly fuzz run validate fuzz/corpus/validate fuzz/seeds/validate -- \
//!     -dict=fuzz/fhir_json.dict -max_total_time=300 -rss_limit_mb=2048 -timeout=10
//! ```
//!
//! A crash found is written under `fuzz/artifacts/validate/`; once fixed, copy it to
//! `fuzz/regressions/validate/`, which `cargo test -p caldicott-fhir --test fuzz_regressions`
//! replays on stable.

#![no_main]

#[path = "common/fhir.rs"]
mod fhir;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fhir::validate(data));
