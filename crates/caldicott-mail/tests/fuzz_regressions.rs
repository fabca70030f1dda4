//! Replays, on stable and without libFuzzer, the inputs of the mail fuzz targets in
//! `fuzz/` (`mail_mime`, `smtp_parse`): the hand-made seeds (`fuzz/seeds/<target>/`) and every
//! crash the fuzzers found and that was fixed (`fuzz/regressions/<target>/`), through the same
//! target bodies (`fuzz/fuzz_targets/common/mail.rs`), plus a proptest run of the same bodies
//! on generated input. A fixed crash stays fixed.
//!
//! To add one: minimise it (`cargo +nightly fuzz tmin <target> <artifact>`), fix the cause,
//! and copy the minimised file into `fuzz/regressions/<target>/`.

#[path = "../../../fuzz/fuzz_targets/common/mail.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The seed and regression inputs of one target, with their paths.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.expect("readable directory entry").path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).expect("readable input");
            out.push((p, bytes));
        }
    }
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "no seeds for {target} under {}",
        fuzz_dir().display()
    );
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| body(bytes))).is_err())
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} fails on: {failed:?}");
    println!("{target}: {} inputs replayed", inputs.len());
}

#[test]
fn mail_mime_seeds_and_regressions() {
    replay("mail_mime", harness::mail_mime);
}

#[test]
fn smtp_parse_seeds_and_regressions() {
    replay("smtp_parse", harness::smtp_parse);
}

/// Message-shaped bytes: header lines, a MIME boundary and parts, mixed with noise.
fn message_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"From: a@b.example\r\n".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=\"b\"\r\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
        Just(b"Content-Disposition: attachment; filename=\"x.exe\"\r\n".to_vec()),
        Just(b"\r\n--b\r\n".to_vec()),
        Just(b"\r\n--b--\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n".to_vec()),
        Just(b"<a href=\"http://1.2.3.4/\">nhs.net</a>\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat())
}

/// Session-shaped bytes: commands, CRLF, dots, bare CR/LF.
fn session_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME\r\n".to_vec()),
        Just(b"RCPT TO:<c@d.example>\r\n".to_vec()),
        Just(b"EHLO x\r\n".to_vec()),
        Just(b"AUTH PLAIN AGFAYg==\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"\r\n..\r\n".to_vec()),
        Just(b".\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mail_mime_on_generated_messages(bytes in message_like()) {
        harness::mail_mime(&bytes);
    }

    #[test]
    fn smtp_parse_on_generated_sessions(first in any::<u8>(), bytes in session_like()) {
        let mut input = vec![first];
        input.extend(bytes);
        harness::smtp_parse(&input);
    }
}
