//! Fuzzes the search-URL parser and what a request does with its result: the index terms
//! it looks up and the matching of candidates.
//!
//! Input: the first byte picks the resource type (`TYPES[byte % 32]` in `common/fhir.rs`: a
//! letter picks a type of that initial, `P` Patient, `O` Observation, `E` Encounter...; `_`
//! an unknown type); the rest, read as UTF-8 (lossily), is the URL query string
//! (`name=smith&birthdate=ge1980`), decoded by `form_urlencoded` into the pairs
//! `caldicott_fhir::search::query::parse` takes.
//! For every parameter it accepts, `terms::lookup_terms` and `matching::matches` run against
//! no values, against a fixed set of values of every kind, and against values made from the
//! query's own alternatives. Besides never panicking, the index invariant of
//! `caldicott_fhir::search::terms` is checked: when a value matches the parameter, the
//! parameter's lookup terms (if it has any) meet the value's index terms.
//!
//! Run from the repository root (nightly), with the hand-made seeds and the dictionary:
//!
//! ```text
//! mkdir -p fuzz/corpus/search_query
//! cargo +nightly fuzz run search_query fuzz/corpus/search_query fuzz/seeds/search_query -- \
//!     -dict=fuzz/search_query.dict -max_total_time=300 -rss_limit_mb=2048 -timeout=10
//! ```
//!
//! Fixed crashes go to `fuzz/regressions/search_query/`, replayed on stable by
//! `cargo test -p caldicott-fhir --test fuzz_regressions`.

#![no_main]

#[path = "common/fhir.rs"]
mod fhir;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    fhir::search_query(fhir::search_type(first), &pairs);
});
