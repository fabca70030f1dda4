//! An independent check of released tables: pycanon (from PyPI) measures k, ℓ and t of the
//! engine's output on Adult (`tests/python/pycanon_check.py` does the measuring and asserts).
//!
//! Three policies: `examples/anonymise/adult-k5.toml` (k = 5, all nine attributes
//! quasi-identifiers); `examples/anonymise/adult-ldiv-tclose.toml` (occupation sensitive:
//! k = 5, distinct and entropy 3-diversity, t = 0.2 under the equal distance, which is the
//! distance pycanon uses for categories); and that one with distinct 2-diversity only and 5%
//! suppression (rows removed), whose classes are small enough for k to bind. pycanon computes t against the released table's
//! distribution and the engine against the input's; with no suppression they are the same
//! table, so the two must agree to rounding, and they are compared exactly that way.
//!
//! It needs a Python with the packages of `tests/python/requirements.txt`, named by
//! `CALDICOTT_TEST_PYTHON` (`cargo xtask test` makes one and sets it, with
//! `CALDICOTT_REQUIRE_PYTHON=1`): without it the test prints a visible SKIPPED line and passes,
//! unless Python is required, when it fails. Without `../shared/data/adult` it skips likewise.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use caldicott_deid::{Policy, anonymise_csv};

fn skip(reason: &str) {
    // Straight to stderr: libtest captures println!/eprintln! of passing tests.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
}

/// The interpreter to run the check with, or `None` (after saying so) to skip.
fn python() -> Option<PathBuf> {
    match std::env::var_os("CALDICOTT_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            assert!(
                std::env::var("CALDICOTT_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "CALDICOTT_REQUIRE_PYTHON=1 but CALDICOTT_TEST_PYTHON is not set"
            );
            skip("pycanon check needs CALDICOTT_TEST_PYTHON (cargo xtask test sets it)");
            None
        }
    }
}

fn adult_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult");
    if dir.join("adult.csv").is_file() {
        Some(dir)
    } else {
        skip("pycanon check needs ../shared/data/adult");
        None
    }
}

fn example(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/anonymise")
        .join(name);
    Policy::from_toml_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs the script on a release; panics with its output unless every check holds.
fn pycanon(
    python: &Path,
    release: &Path,
    qis: &[&str],
    sensitive: Option<&str>,
    expect: &serde_json::Value,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/pycanon_check.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(release)
        .arg(";")
        .arg(qis.join(","))
        .arg(sensitive.unwrap_or("-"))
        .arg(expect.to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (CALDICOTT_TEST_PYTHON): {e}",
                python.display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the pycanon check failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(stdout.contains("pycanon: "), "{stdout}");
    stdout
}

const ADULT_QIS: [&str; 9] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
    "salary-class",
];

#[test]
fn pycanon_confirms_k_l_and_t_on_adult() {
    let Some(python) = python() else { return };
    let Some(dir) = adult_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();

    // k = 5 over all nine attributes.
    let out = tmp.path().join("adult-k5.csv");
    let report = anonymise_csv(
        &dir.join("adult.csv"),
        &example("adult-k5.toml"),
        Some(&dir),
        &out,
        &tmp.path().join("adult-k5.json"),
    )
    .unwrap();
    let said = pycanon(
        &python,
        &out,
        &ADULT_QIS,
        None,
        &serde_json::json!({"k": 5, "report_min_class": report.min_class_size}),
    );
    eprintln!("k = 5: {said}");

    // Occupation sensitive: k = 5, ℓ = 3 (distinct and entropy), t = 0.2.
    let out = tmp.path().join("adult-lt.csv");
    let report = anonymise_csv(
        &dir.join("adult.csv"),
        &example("adult-ldiv-tclose.toml"),
        Some(&dir),
        &out,
        &tmp.path().join("adult-lt.json"),
    )
    .unwrap();
    assert_eq!(report.records_suppressed, 0);
    let t_equal = report
        .privacy
        .t_closeness
        .iter()
        .find(|t| t.distance == "equal")
        .and_then(|t| t.achieved)
        .unwrap();
    let qis: Vec<&str> = ADULT_QIS
        .iter()
        .copied()
        .filter(|q| *q != "occupation")
        .collect();
    let said = pycanon(
        &python,
        &out,
        &qis,
        Some("occupation"),
        &serde_json::json!({
            "k": 5,
            "l_distinct": 3,
            "l_entropy": 3.0,
            "t": 0.2,
            "report_t": t_equal,
            "report_min_class": report.min_class_size,
        }),
    );
    eprintln!("l/t: {said}");

    // The same without t-closeness, with distinct 2-diversity only and 5% suppression
    // (suppressed rows removed): finer classes, so k is tested where it binds.
    let mut policy = example("adult-ldiv-tclose.toml");
    policy.privacy.t_closeness.clear();
    policy
        .privacy
        .l_diversity
        .retain(|l| l.variant == caldicott_deid::LVariant::Distinct);
    policy.privacy.l_diversity[0].l = 2.0;
    policy.suppression_limit = 0.05;
    policy.suppressed_rows = caldicott_deid::SuppressedRows::Remove;
    let out = tmp.path().join("adult-l2.csv");
    let report = anonymise_csv(
        &dir.join("adult.csv"),
        &policy,
        Some(&dir),
        &out,
        &tmp.path().join("adult-l2.json"),
    )
    .unwrap();
    assert!(report.min_class_size < 100, "{}", report.min_class_size);
    let said = pycanon(
        &python,
        &out,
        &qis,
        Some("occupation"),
        &serde_json::json!({
            "k": 5,
            "l_distinct": 2,
            "report_min_class": report.min_class_size,
        }),
    );
    eprintln!("distinct l = 2, 5% suppression: {said}");
}
