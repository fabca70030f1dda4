//! Shared helpers for the integration tests.

use std::io::Write as _;
use std::path::PathBuf;

/// `../shared/data/merkle` beside the repository, or `None` (after printing a visible
/// `SKIPPED` line) when it is absent, as in a user's clone.
pub fn merkle_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/merkle");
    if dir.is_dir() {
        Some(dir)
    } else {
        say("SKIPPED: ../shared/data/merkle not found");
        None
    }
}

/// Writes a line straight to stderr: libtest captures `println!`/`eprintln!` of passing
/// tests, but not direct writes, so the line is seen in a normal `cargo test` run.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
