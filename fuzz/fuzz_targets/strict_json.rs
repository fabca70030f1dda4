//! Fuzzes the API's strict JSON reader (`caldicott_api::json::parse_strict`): it must never
//! panic; whatever it accepts, plain `serde_json` must read as the same value; and it must
//! survive a round trip: written out by serde_json and read again, the value is the same.
//!
//! Run from the repository root (nightly), with the hand-made seeds and the dictionary:
//!
//! ```text
//! mkdir -p fuzz/corpus/strict_json
//! cargo +nightly fuzz run strict_json fuzz/corpus/strict_json fuzz/seeds/strict_json -- \
//!     -dict=fuzz/fhir_json.dict -max_total_time=300 -rss_limit_mb=2048 -timeout=10
//! ```
//!
//! Fixed crashes go to `fuzz/regressions/strict_json/`, each with a unit test next to the
//! fix in `crates/caldicott-api/src/json.rs` (none so far).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = caldicott_api::json::parse_strict(data) else {
        return;
    };
    // Stricter than serde_json, never different: what it accepts, serde_json reads the same.
    let plain: serde_json::Value =
        serde_json::from_slice(data).expect("serde_json accepts what parse_strict accepts");
    assert_eq!(value, plain, "parse_strict and serde_json disagree");
    let text = serde_json::to_vec(&value).expect("a parsed value serialises");
    let again = caldicott_api::json::parse_strict(&text)
        .unwrap_or_else(|e| panic!("its own output is refused: {e}"));
    assert_eq!(value, again, "round trip changed the value");
    // Written out a second time, the text is stable.
    let text2 = serde_json::to_vec(&again).expect("serialises");
    assert_eq!(text, text2, "serialisation is not stable");
});
