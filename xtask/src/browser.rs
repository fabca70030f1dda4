//! The browser step of `cargo xtask test`: Debian's Chromium and its chromedriver (installed
//! with apt-get when missing) and axe-core (installed with `npm ci` from the committed
//! `xtask/axe/package-lock.json` into `target/tools/axe`), exported to the test run as
//! `CALDICOTT_TEST_CHROMIUM`, `CALDICOTT_TEST_CHROMEDRIVER`, `CALDICOTT_TEST_AXE` and
//! `CALDICOTT_REQUIRE_BROWSER=1`.
//!
//! Why here: the console's browser tests (`tests/console_browser.rs`) drive a real headless
//! Chromium and run axe-core in every page; without these the tests skip, and in CI a
//! skipped browser test would hide a broken console. The versions are pinned: Chromium by
//! Debian's package (one version per release), axe-core exactly by the lock file, so a
//! new axe rule cannot fail the build by surprise.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::{capture, fmt_duration, repo_root, run};

/// Where Debian's `chromium` and `chromium-driver` packages put the two programs.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Makes Chromium, chromedriver and axe-core ready; returns the variables for the tests.
pub fn setup() -> Result<Vec<(&'static str, OsString)>> {
    ensure_chromium()?;
    let axe = ensure_axe()?;
    Ok(vec![
        ("CALDICOTT_TEST_CHROMIUM", CHROMIUM.into()),
        ("CALDICOTT_TEST_CHROMEDRIVER", CHROMEDRIVER.into()),
        ("CALDICOTT_TEST_AXE", axe.into()),
        ("CALDICOTT_REQUIRE_BROWSER", "1".into()),
    ])
}

fn ensure_chromium() -> Result<()> {
    if !(Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file()) {
        eprintln!("{CHROMIUM} or {CHROMEDRIVER} is missing: installing Debian's chromium");
        let start = Instant::now();
        // The package lists may be empty on a fresh image: refresh them once, then install.
        let install = apt_get(&["update"]).and_then(|()| {
            apt_get(&[
                "install",
                "-y",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
            ])
        });
        install.context(
            "cannot install Chromium for the browser tests: run as root (or with password-less \
             sudo) on Debian, or install it yourself: \
             `apt-get install -y --no-install-recommends chromium chromium-driver`",
        )?;
        eprintln!("installed chromium in {}", fmt_duration(start.elapsed()));
        ensure!(
            Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file(),
            "apt-get installed chromium and chromium-driver, but {CHROMIUM} or {CHROMEDRIVER} is still missing"
        );
    }
    // Both come from one Debian source package, so their versions match; show them.
    let driver = capture(Command::new(CHROMEDRIVER).arg("--version"))
        .with_context(|| format!("{CHROMEDRIVER} --version failed"))?;
    eprintln!("{CHROMEDRIVER}: {driver}");
    Ok(())
}

/// `apt-get <args>`, non-interactive, as root or through password-less sudo.
pub(crate) fn apt_get(args: &[&str]) -> Result<()> {
    let root = capture(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0");
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "--preserve-env=DEBIAN_FRONTEND", "apt-get"]);
        sudo
    };
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    run(&mut cmd)
}

/// Installs axe-core from `xtask/axe` into `target/tools/axe` unless the locked version is
/// already there; returns the absolute path of `axe.min.js`.
fn ensure_axe() -> Result<std::path::PathBuf> {
    let source = repo_root().join("xtask/axe");
    let dir = repo_root().join("target/tools/axe");
    let lock_text = fs::read_to_string(source.join("package-lock.json"))
        .context("cannot read xtask/axe/package-lock.json")?;
    let lock: serde_json::Value =
        serde_json::from_str(&lock_text).context("xtask/axe/package-lock.json is not JSON")?;
    let Some(version) = lock["packages"]["node_modules/axe-core"]["version"].as_str() else {
        bail!("xtask/axe/package-lock.json locks no version of axe-core");
    };
    let package = dir.join("node_modules/axe-core");
    let axe = package.join("axe.min.js");
    let installed = fs::read_to_string(package.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|p| p["version"] == version)
        && fs::read_to_string(dir.join("package-lock.json")).is_ok_and(|t| t == lock_text)
        && axe.is_file();
    if installed {
        eprintln!("target/tools/axe: axe-core {version} already installed");
    } else {
        let start = Instant::now();
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for file in ["package.json", "package-lock.json"] {
            fs::copy(source.join(file), dir.join(file))
                .with_context(|| format!("cannot copy xtask/axe/{file} to {}", dir.display()))?;
        }
        // `npm ci` installs exactly the lock file and checks each package's integrity hash.
        run(Command::new("npm")
            .arg("ci")
            .args(["--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            .stdin(Stdio::null()))
        .context("cannot install axe-core with npm ci (is Node.js installed and the npm registry reachable?)")?;
        ensure!(
            axe.is_file(),
            "npm ci succeeded but {} is missing",
            axe.display()
        );
        eprintln!(
            "installed axe-core {version} in {}",
            fmt_duration(start.elapsed())
        );
    }
    Ok(axe)
}
