//! Fuzzes the SMTP server's pure parsers: command lines (`smtp::parse::parse`) and the DATA
//! decoder (`smtp::data::DataDecoder`), fed at once and in chunks that must agree. The first
//! byte picks the chunk size and limit. Body: `common/mail.rs`.
//!
//! ```text
//! mkdir -p fuzz/corpus/smtp_parse
//! cargo +nightly fuzz run smtp_parse fuzz/corpus/smtp_parse fuzz/seeds/smtp_parse -- \
//!     -max_total_time=300 -rss_limit_mb=2048 -timeout=10
//! ```

#![no_main]

#[path = "common/mail.rs"]
mod mail;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mail::smtp_parse(data));
