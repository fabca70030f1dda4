//! Fuzzes the mail scanner on arbitrary bytes as a whole message (MIME parsing, attachment
//! inspection, phishing, rules, classifier features): no panic, no check failing inside the
//! scanner (`SCAN_INTERNAL_ERROR`), a finite score. Body: `common/mail.rs`.
//!
//! ```text
//! mkdir -p fuzz/corpus/mail_mime
//! cargo +nightly fuzz run mail_mime fuzz/corpus/mail_mime fuzz/seeds/mail_mime -- \
//!     -max_len=65536 -max_total_time=300 -rss_limit_mb=2048 -timeout=10
//! ```

#![no_main]

#[path = "common/mail.rs"]
mod mail;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mail::mail_mime(data));
