//! The Python step of `cargo xtask test`: a virtual environment `pyenv` in the tools cache
//! (`tools_dir` in main.rs, normally `~/.cache/caldicott-tools`, so clean checkouts reuse it)
//! holding the pinned packages of `tests/python/requirements.txt` (fhirpy, the independent
//! FHIR client that `tests/fhirpy.rs` drives the server with).
//!
//! The venv is made with `python3 -m venv` when missing or broken, and `pip install -r` runs
//! only when some pinned package is missing or at another version, so reruns cost one
//! `pip list`. The test run then gets `CALDICOTT_TEST_PYTHON` (the venv's interpreter) and
//! `CALDICOTT_REQUIRE_PYTHON=1`, so the fhirpy check cannot skip silently. Installing needs
//! PyPI; when pip cannot reach it, the step fails and says so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use super::{capture, is_root, repo_root, run, show, tools_dir, which};

/// The interpreter the fhirpy check runs with.
pub const ENV_PYTHON: &str = "CALDICOTT_TEST_PYTHON";
/// Set to `1`: the fhirpy check fails instead of skipping when it has no interpreter.
pub const ENV_REQUIRE: &str = "CALDICOTT_REQUIRE_PYTHON";

const REQUIREMENTS: &str = "tests/python/requirements.txt";
const VENV: &str = "pyenv";

/// Makes the venv ready; returns the variables the test run needs.
pub fn setup() -> Result<Vec<(&'static str, OsString)>> {
    let python = ensure_venv(REQUIREMENTS, VENV, "the checks of tests/fhirpy.rs")?;
    Ok(vec![
        (ENV_PYTHON, python.into_os_string()),
        (ENV_REQUIRE, "1".into()),
    ])
}

/// Makes a venv named `venv` in the tools cache hold exactly the pins of
/// `requirements` (also used by `cargo xtask bench` for benchmarks that compare against a
/// Python package, each in a venv of its own so that their pins cannot clash with the
/// tests'); returns the venv's interpreter. `purpose` names what needs it, for errors.
pub fn ensure_venv(requirements: &str, venv: &str, purpose: &str) -> Result<PathBuf> {
    let requirements_file = repo_root().join(requirements);
    let pins = read_pins(&requirements_file)?;
    let venv_dir = tools_dir()?.join(venv);
    let venv = venv_dir.display();
    let python = venv_dir.join("bin/python");

    if works(&python) {
        eprintln!("{venv}: using the existing venv");
    } else {
        create_venv(&venv_dir)?;
    }
    let missing = unmet(&python, &pins)?;
    if missing.is_empty() {
        eprintln!(
            "{venv}: all {} pinned packages of {requirements} already installed",
            pins.len()
        );
    } else {
        eprintln!("{venv}: to install: {}", missing.join(", "));
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
        ])
        .arg(&requirements_file)
        .stdin(Stdio::null());
        run(&mut pip).with_context(|| {
            format!(
                "pip could not install {requirements} into {venv}: PyPI must be reachable \
                 ({purpose} needs these packages)"
            )
        })?;
        let still = unmet(&python, &pins)?;
        ensure!(
            still.is_empty(),
            "after pip install, still not as pinned in {requirements}: {}",
            still.join(", ")
        );
    }
    Ok(python)
}

/// `name==version` lines of a requirements file, by normalised name.
fn read_pins(file: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut pins = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, version)) = line.split_once("==") else {
            bail!(
                "{}:{}: `{line}` is not pinned as name==version",
                file.display(),
                n + 1
            );
        };
        pins.insert(normalise(name), version.trim().to_owned());
    }
    ensure!(!pins.is_empty(), "{} pins no package", file.display());
    Ok(pins)
}

/// A package name as PEP 503 compares them: lower case, runs of `-_.` as one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Whether the interpreter starts (a venv breaks when the Python it was made from goes).
fn works(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", "import pip"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn create_venv(venv: &Path) -> Result<()> {
    let python3 = which("python3").context(
        "python3 not found on PATH: the fhirpy check needs Python 3 with venv \
         (Debian: apt-get install python3 python3-venv)",
    )?;
    let mut make = Command::new(&python3);
    make.args(["-m", "venv", "--clear"])
        .arg(venv)
        .stdin(Stdio::null());
    if run(&mut make).is_ok() {
        return Ok(());
    }
    // Debian's python3 keeps venv (ensurepip) in a package of its own.
    ensure!(
        is_root()? && which("apt-get").is_some(),
        "`{}` failed: Python's venv module is missing (Debian: apt-get install python3-venv)",
        show(&make)
    );
    eprintln!("python3 cannot make a venv: installing Debian's `python3-venv` package");
    let minor = capture(Command::new(&python3).args([
        "-c",
        "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
    ]))?;
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()))
    };
    apt(&["update"])?;
    let versioned = format!("python{minor}-venv");
    if apt(&["install", "-y", &versioned]).is_err() {
        apt(&["install", "-y", "python3-venv"])?;
    }
    run(&mut make).context("python3 still cannot make a venv after installing python3-venv")
}

/// The pinned packages missing from the venv or at another version, as `name==version`.
fn unmet(python: &Path, pins: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let listed = capture(Command::new(python).args([
        "-m",
        "pip",
        "list",
        "--format=json",
        "--disable-pip-version-check",
    ]))
    .context("cannot list the venv's packages with pip")?;
    let listed: serde_json::Value =
        serde_json::from_str(&listed).context("`pip list --format=json` printed no JSON")?;
    let installed: BTreeMap<String, String> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                normalise(p["name"].as_str()?),
                p["version"].as_str()?.to_owned(),
            ))
        })
        .collect();
    Ok(pins
        .iter()
        .filter(|(name, version)| installed.get(*name) != Some(*version))
        .map(|(name, version)| format!("{name}=={version}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_pep_503_says() {
        assert_eq!(normalise("typing_extensions"), "typing-extensions");
        assert_eq!(normalise("Charset.Normalizer"), "charset-normalizer");
        assert_eq!(normalise("a-_.b"), "a-b");
    }

    #[test]
    fn the_requirements_pin_every_package() {
        let pins = read_pins(&repo_root().join(REQUIREMENTS)).unwrap();
        assert!(pins.contains_key("fhirpy"), "{pins:?}");
        assert!(pins.contains_key("requests"), "{pins:?}");
    }

    #[test]
    fn the_bench_requirements_pin_anjana_and_what_it_pins() {
        let pins = read_pins(&repo_root().join("tests/python/bench-requirements.txt")).unwrap();
        for name in ["anjana", "pycanon", "pandas", "numpy", "typing-extensions"] {
            assert!(pins.contains_key(name), "{name} missing: {pins:?}");
        }
    }
}
