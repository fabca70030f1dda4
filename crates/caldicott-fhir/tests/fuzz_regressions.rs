//! Replays, on stable and without libFuzzer, the inputs of the fuzz targets in `fuzz/`:
//! the hand-made seeds (`fuzz/seeds/<target>/`) and every crash the fuzzers found and that
//! was fixed (`fuzz/regressions/<target>/`), through the same target bodies
//! (`fuzz/fuzz_targets/common/fhir.rs`). A fixed crash stays fixed.
//!
//! To add one: minimise it (`cargo +nightly fuzz tmin <target> <artifact>`), fix the cause,
//! and copy the minimised file into `fuzz/regressions/<target>/`.

#[path = "../../../fuzz/fuzz_targets/common/fhir.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

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
            .filter(|p| p.is_file())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && !name.ends_with(".md")
            })
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).expect("readable input");
            out.push((p, bytes));
        }
    }
    out
}

/// Runs `body` on every input of `target`, and fails naming each input that panics.
fn replay(target: &str, body: impl Fn(&[u8])) {
    let all = inputs(target);
    assert!(
        !all.is_empty(),
        "no seeds found for {target} under {}",
        fuzz_dir().display()
    );
    let failed: Vec<String> = all
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| body(bytes))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs panic: {failed:#?}"
    );
}

/// What `form_urlencoded::parse(..).into_owned()` gives (the fuzz target's decoder, which
/// this crate does not depend on): `&`-separated pairs, empty ones skipped, split at the
/// first `=`, `+` as a space, `%XX` decoded, then UTF-8 read lossily.
fn form_pairs(input: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).expect("two hex digits"));
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&p[..i]), decode(&p[i + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

#[test]
fn validate_inputs_do_not_panic() {
    replay("validate", harness::validate);
}

#[test]
fn search_query_inputs_do_not_panic() {
    replay("search_query", |data| {
        let Some((&first, rest)) = data.split_first() else {
            return;
        };
        let text = String::from_utf8_lossy(rest);
        harness::search_query(harness::search_type(first), &form_pairs(text.as_bytes()));
    });
}

#[test]
fn fhirpath_inputs_do_not_panic() {
    replay("fhirpath", harness::fhirpath);
}

#[test]
fn form_pairs_decodes_like_form_urlencoded() {
    assert_eq!(
        form_pairs(b"a=1&&b=%C3%A9+x&c&d=%zz%4&e==f"),
        [
            ("a".into(), "1".into()),
            ("b".into(), "é x".into()),
            ("c".into(), String::new()),
            ("d".into(), "%zz%4".into()),
            ("e".into(), "=f".into()),
        ]
    );
}
