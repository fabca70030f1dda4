//! The ClamAV step of `cargo xtask test`: Debian's `clamd` (package `clamav-daemon`, installed
//! with apt-get when missing), exported to the test run as `CALDICOTT_TEST_CLAMD` (the binary)
//! and `CALDICOTT_REQUIRE_CLAMD=1`.
//!
//! Why here: `caldicott-mail`'s virus-scanning tests (`crates/caldicott-mail/tests/clamav.rs`)
//! talk to a real clamd; without one they skip, and in CI a skipped test would hide a broken
//! client. The tests start their own clamd (foreground, own `clamd.conf`, socket and
//! signature directory in a temporary directory, no `User`), so the system service Debian's
//! package installs (and `clamav-freshclam`) is neither needed nor used: where systemd runs
//! and starts it, it listens on its own socket and does not matter.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::{capture, fmt_duration};

/// Where Debian's `clamav-daemon` package puts the daemon.
const CLAMD: &str = "/usr/sbin/clamd";

/// Makes clamd ready; returns the variables for the tests.
pub fn setup() -> Result<Vec<(&'static str, OsString)>> {
    if !Path::new(CLAMD).is_file() {
        eprintln!("{CLAMD} is missing: installing Debian's clamav-daemon");
        let start = Instant::now();
        let install = crate::browser::apt_get(&["update"]).and_then(|()| {
            crate::browser::apt_get(&["install", "-y", "--no-install-recommends", "clamav-daemon"])
        });
        install.context(
            "cannot install clamd for the virus-scanning tests: run as root (or with \
             password-less sudo) on Debian, or install it yourself: \
             `apt-get install -y --no-install-recommends clamav-daemon`",
        )?;
        eprintln!(
            "installed clamav-daemon in {}",
            fmt_duration(start.elapsed())
        );
        ensure!(
            Path::new(CLAMD).is_file(),
            "apt-get installed clamav-daemon, but {CLAMD} is still missing"
        );
    }
    let version = capture(Command::new(CLAMD).arg("--version"))
        .with_context(|| format!("{CLAMD} --version failed"))?;
    eprintln!("{CLAMD}: {version}");
    Ok(vec![
        ("CALDICOTT_TEST_CLAMD", CLAMD.into()),
        ("CALDICOTT_REQUIRE_CLAMD", "1".into()),
    ])
}
