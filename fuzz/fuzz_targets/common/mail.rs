//! The bodies of the `caldicott-mail` fuzz targets (`mail_mime`, `smtp_parse`), shared with
//! the stable replay test `crates/caldicott-mail/tests/fuzz_regressions.rs`.
//!
//! - [`mail_mime`]: any bytes as a whole message through the [`Scanner`] (MIME parsing,
//!   attachment inspection, phishing, rules, features). The scanner catches a panic inside a
//!   check and turns it into `SCAN_INTERNAL_ERROR`; that symbol is a finding here, as is a
//!   panic (libFuzzer aborts on any panic, caught or not).
//! - [`smtp_parse`]: the first byte picks the chunking, the rest is an SMTP session's bytes:
//!   every line through `smtp::parse::parse` (an accepted address is well-formed), and the
//!   whole through the DATA decoder fed at once and in chunks, which must agree (where the
//!   message ends, its bytes, every flag).

#![allow(dead_code)]

use std::sync::OnceLock;

use caldicott_mail::smtp::data::DataDecoder;
use caldicott_mail::smtp::parse::{self, Command, MAX_ADDRESS};
use caldicott_mail::{MailConfig, Scanner};

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        let mut config = MailConfig::default();
        // Small limits so that size handling is reached by small inputs too.
        config.limits.max_message_bytes = 64 * 1024;
        Scanner::new(config, None).expect("the default configuration is valid")
    })
}

pub fn mail_mime(data: &[u8]) {
    let report = scanner().scan(data);
    assert!(
        !report.has("SCAN_INTERNAL_ERROR"),
        "a check failed inside the scanner: {:?}",
        report.symbols
    );
    assert!(report.score.is_finite(), "score {}", report.score);
    // The classifier's features of the same bytes: no panic, deterministic.
    assert_eq!(scanner().features(data), scanner().features(data));
}

fn check_address(a: &str, null_ok: bool) {
    assert!(a.len() <= MAX_ADDRESS, "address over the limit: {a:?}");
    if a.is_empty() {
        assert!(null_ok, "empty recipient accepted");
        return;
    }
    assert!(a.contains('@'), "address without @: {a:?}");
    assert!(
        !a.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>\"\\".contains(c)),
        "address with forbidden characters: {a:?}"
    );
}

pub fn smtp_parse(data: &[u8]) {
    let Some((&chunking, rest)) = data.split_first() else {
        return;
    };
    // Command lines: each LF-terminated piece, as the reader hands them over.
    for line in rest.split_inclusive(|&b| b == b'\n') {
        match parse::parse(line) {
            Ok(Command::Mail { from, .. }) => check_address(&from, true),
            Ok(Command::Rcpt(to)) => check_address(&to, false),
            Ok(Command::Helo(h) | Command::Ehlo(h)) => {
                assert!(!h.is_empty() && !h.contains(' ') && h.len() <= 255, "{h:?}")
            }
            Ok(_) => {}
            Err(r) => assert!((400..600).contains(&r.code), "reply code {}", r.code),
        }
    }
    // DATA: all at once against chunks of 1..=16 bytes (sizes from the first byte).
    let (limit, max_line) = (256 + usize::from(chunking) * 4, 998);
    let mut whole = DataDecoder::new(limit, max_line);
    let end_whole = whole.feed(rest);
    let mut parts = DataDecoder::new(limit, max_line);
    let step = usize::from(chunking % 16) + 1;
    let mut offset = 0;
    let mut end_parts = None;
    for chunk in rest.chunks(step) {
        if let Some(n) = parts.feed(chunk) {
            end_parts = Some(offset + n);
            break;
        }
        offset += chunk.len();
    }
    assert_eq!(end_whole, end_parts, "end of data depends on chunking");
    assert_eq!(whole.message, parts.message, "message depends on chunking");
    assert_eq!(
        (
            whole.seen,
            whole.bare_lf,
            whole.bare_cr,
            whole.nul,
            whole.long_line,
            whole.eight_bit
        ),
        (
            parts.seen,
            parts.bare_lf,
            parts.bare_cr,
            parts.nul,
            parts.long_line,
            parts.eight_bit
        ),
        "flags depend on chunking"
    );
    assert!(whole.message.len() <= limit, "kept past the limit");
    if let Some(n) = end_whole {
        // The end is `CRLF . CRLF` (or `. CRLF` at the very start).
        assert!(rest[..n].ends_with(b".\r\n"), "ended without .CRLF");
        assert!(
            n == 3 || rest[..n].ends_with(b"\r\n.\r\n"),
            "ended mid-line"
        );
    }
}
