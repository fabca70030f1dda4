//! `xtask`: Caldicott's task runner, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml` for `cargo run --package xtask --`).
//!
//! What it is:
//! - the ONE way to run every check and test, on a developer's machine and in CI
//!   (`.ci/run` calls exactly `cargo xtask test`): formatting, clippy, the supply-chain
//!   checks of cargo-deny, a throwaway PostgreSQL cluster, the test suites and the doctests,
//!   each step announced, timed and summarised, stopping at the first failure;
//! - `cargo xtask bench <name>`: a benchmark run against the same kind of throwaway PostgreSQL;
//!   a bench that compares against a Python package first gets a venv of its own from pinned
//!   requirements (`bench anonymise`: anjana, in the venv `pyenv-bench` of the tools cache; see
//!   `python.rs` and `tools_dir`);
//! - `cargo xtask bench fhir`: load on the FHIR API of a release `caldicott serve` started on a
//!   throwaway data directory (`bench_fhir.rs`);
//! - `cargo xtask bench mail [--accuracy]`: mail screening beside rspamd and SpamAssassin
//!   from Debian's packages, on the SpamAssassin corpus (`bench_mail.rs`);
//! - `cargo xtask pg`: a throwaway PostgreSQL for poking at by hand, deleted on Ctrl-C;
//! - `cargo xtask deny`: only the supply-chain step of `test`;
//! - `cargo xtask codegen`: regenerates `caldicott-fhir`'s FHIR R4 tables (`codegen.rs`).
//!
//! What it is not:
//! - not part of the product: nothing ships it and no product crate depends on it;
//! - not a build system: it only calls cargo, rustfmt, clippy, cargo-deny, cargo-nextest and
//!   the PostgreSQL server binaries, in a fixed order, and reports what happened;
//! - not a home for test logic: tests live in their own crates and read what this program
//!   exports (`CALDICOTT_TEST_POSTGRES_URL`, `CALDICOTT_REQUIRE_POSTGRES`,
//!   `CALDICOTT_TEST_PG_BIN`; for the console's browser tests `CALDICOTT_TEST_CHROMEDRIVER`,
//!   `CALDICOTT_TEST_CHROMIUM`, `CALDICOTT_TEST_AXE`, `CALDICOTT_REQUIRE_BROWSER`, see
//!   `browser.rs`; for the mail virus-scanning tests `CALDICOTT_TEST_CLAMD`,
//!   `CALDICOTT_REQUIRE_CLAMD`, see `clamav.rs`), so `cargo test` alone still works (those
//!   tests then skip);
//! - not a way to run a real database: every cluster it starts is temporary, trusts any local
//!   connection without a password, must only ever hold synthetic test data, and is stopped
//!   and deleted when the command ends (also on failure, Ctrl-C, SIGTERM or SIGHUP; only
//!   SIGKILL can leave one behind, in a `caldicott-pg-*` directory under /tmp).
//!
//! It is Linux-only (Debian is the reference) and deliberately small and dependency-light
//! (anyhow, clap, ctrlc, serde_json, tempfile; `bench fhir`'s HTTP client adds tokio, hyper,
//! rustls and rand, all already in the product's dependency tree), and depends on no product
//! crate, so that it builds quickly on a fresh machine and still runs when they do not build.

use std::ffi::{OsStr, OsString};
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};

mod bench_fhir;
mod bench_mail;
mod browser;
mod clamav;
mod codegen;
mod python;

/// A benchmark that `cargo xtask bench <name>` can run.
struct Bench {
    /// The name given on the command line.
    name: &'static str,
    /// The package that owns the bench target.
    package: &'static str,
    /// The `[[bench]]` target names in that package, run in this order by one `cargo bench`.
    targets: &'static [&'static str],
    /// Whether to start a throwaway PostgreSQL for it.
    postgres: bool,
    /// A requirements file and the venv (both relative to the repository root) to make ready
    /// first: the bench then gets the venv's interpreter as `CALDICOTT_BENCH_PYTHON`.
    python: Option<(&'static str, &'static str)>,
}

/// Every benchmark `cargo xtask bench` knows. Adding one is one entry here.
const BENCHES: &[Bench] = &[
    Bench {
        name: "vault",
        package: "caldicott-vault",
        targets: &["vault"],
        postgres: true,
        python: None,
    },
    Bench {
        name: "ledger",
        package: "caldicott-ledger",
        targets: &["ledger"],
        postgres: false,
        python: None,
    },
    Bench {
        name: "ledger-store",
        package: "caldicott-vault",
        targets: &["ledger"],
        postgres: true,
        python: None,
    },
    Bench {
        name: "anonymise",
        package: "caldicott-deid",
        // Adult and 1M synthetic rows, then the side-by-side run against anjana (PyPI).
        targets: &["anonymise", "versus_anjana"],
        postgres: false,
        python: Some(("tests/python/bench-requirements.txt", "pyenv-bench")),
    },
];

/// The cargo-deny release line that `deny.toml` is written for; installed when missing.
const CARGO_DENY_VERSION: &str = "^0.20";

/// Where cargo-deny (0.20) expects the RustSec database under its `db-path`: the last
/// segment of `https://github.com/RustSec/advisory-db` plus a hash of that URL.
const RUSTSEC_DB_DIR_NAME: &str = "advisory-db-3157b0e258782691";

const PG_SUPERUSER: &str = "caldicott";
const PG_DATABASE: &str = "caldicott_test";
const PG_FALLBACK_SYSTEM_USER: &str = "caldicott-pg";
const ENV_URL: &str = "CALDICOTT_TEST_POSTGRES_URL";
const ENV_REQUIRE: &str = "CALDICOTT_REQUIRE_POSTGRES";
const ENV_PG_BIN: &str = "CALDICOTT_TEST_PG_BIN";
const ENV_ADVISORY_DB: &str = "CALDICOTT_ADVISORY_DB";

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Caldicott's task runner: every check and test, benchmarks, a throwaway PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every check and test: fmt, clippy, cargo-deny, then all tests and doctests with a
    /// throwaway PostgreSQL running. This is what CI runs.
    Test(TestArgs),
    /// Run a benchmark (with a throwaway PostgreSQL running when it needs one), or
    /// `bench fhir`: load on the FHIR API of a release server.
    Bench(Box<BenchArgs>),
    /// Start a throwaway PostgreSQL, print its URL and wait for Ctrl-C, then delete it.
    Pg,
    /// Run only the supply-chain checks (cargo-deny), as `test` does them.
    Deny,
    /// Regenerate the FHIR R4 tables of caldicott-fhir from the official definitions (npm).
    Codegen(codegen::CodegenArgs),
}

#[derive(Args)]
struct TestArgs {
    /// Skip fmt, clippy and cargo-deny (for quick local runs).
    #[arg(long)]
    no_lint: bool,
    /// Do not start PostgreSQL; tests that need it then skip (and say so).
    #[arg(long)]
    no_postgres: bool,
    /// Passed on to `cargo nextest run` (or `cargo test`), e.g. `-- some_test_name` or
    /// `-- -p caldicott-vault` (a package selection replaces `--workspace`, also for doctests).
    #[arg(last = true)]
    extra: Vec<OsString>,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct BenchArgs {
    /// A benchmark that is not a `cargo bench` target.
    #[command(subcommand)]
    load: Option<LoadBench>,
    /// Which `cargo bench` benchmark to run.
    #[arg(required = true, value_parser = clap::builder::PossibleValuesParser::new(BENCHES.iter().map(|b| b.name)))]
    name: Option<String>,
    /// Passed on to the benchmark binary (after `cargo bench ... --`).
    #[arg(last = true)]
    extra: Vec<OsString>,
}

#[derive(Subcommand)]
enum LoadBench {
    /// Load on the FHIR R4 REST API of a release `caldicott serve`: reads, searches, creates
    /// and transactions on synthetic patients, against issue 3's targets (`bench_fhir.rs`).
    Fhir(bench_fhir::FhirArgs),
    /// Mail screening beside rspamd and SpamAssassin (Debian's packages) on the SpamAssassin
    /// corpus: throughput and memory, or with `--accuracy` the train/test comparison
    /// (`bench_mail.rs`).
    Mail(bench_mail::MailArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = ctrlc::set_handler(on_signal) {
        eprintln!(
            "xtask: warning: cannot handle Ctrl-C ({err}); an interrupted run may leave a PostgreSQL cluster behind"
        );
    }
    let result = match cli.command {
        Cmd::Test(args) => cmd_test(&args),
        Cmd::Bench(args) => cmd_bench(&args),
        Cmd::Pg => cmd_pg(),
        Cmd::Deny => cmd_deny(),
        Cmd::Codegen(args) => codegen::cmd_codegen(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask: FAILED: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// cargo xtask test

fn cmd_test(args: &TestArgs) -> Result<()> {
    let mut steps = Steps::new();
    let result = test_steps(args, &mut steps);
    steps.print_summary(result.is_ok());
    result
}

fn test_steps(args: &TestArgs, steps: &mut Steps) -> Result<()> {
    let locked = repo_root().join("Cargo.lock").is_file();
    if args.no_lint {
        steps.skip("lint", "--no-lint: fmt, clippy and cargo-deny not run");
    } else {
        steps.run("fmt", "cargo fmt --all --check", || {
            run(cargo().args(["fmt", "--all", "--check"]))
                .context("code is not formatted as rustfmt wants; run `cargo fmt --all`")
        })?;

        let mut clippy = cargo();
        clippy.args(["clippy", "--workspace", "--all-targets"]);
        if locked {
            clippy.arg("--locked");
        }
        clippy.args(["--", "-D", "warnings"]);
        let shown = show(&clippy);
        steps.run("clippy", &shown, || run(&mut clippy))?;

        supply_chain_steps(steps, locked)?;
    }

    let python_env = steps.run(
        "python",
        "venv pyenv in the tools cache with tests/python/requirements.txt",
        python::setup,
    )?;
    // The rage CLI (age's reference Rust CLI, the same version as the `age` crate) that the
    // release tests of caldicott-share decrypt with, as a recipient would. Installed once
    // into the tools cache (see `tools_dir`; about 2-3 min on 2 cores), then reused while
    // its version matches, also by later clean checkouts on the same machine.
    let rage_env = steps.run(
        "rage",
        "rage CLI =0.12.1 in the tools cache (cargo install, only when missing)",
        || -> Result<Vec<(&'static str, OsString)>> {
            const RAGE_VERSION: &str = "0.12.1";
            let root = tools_dir()?.join(format!("rage-{RAGE_VERSION}"));
            let rage = root.join("bin/rage");
            let installed = capture(Command::new(&rage).arg("--version"))
                .is_ok_and(|v| v.split_whitespace().last() == Some(RAGE_VERSION));
            if installed {
                eprintln!("{}: rage {RAGE_VERSION} already installed", rage.display());
            } else {
                let start = Instant::now();
                run(cargo()
                    .args(["install", "rage", "--version"])
                    .arg(format!("={RAGE_VERSION}"))
                    .args(["--locked", "--force", "--root"])
                    .arg(&root))
                .context("cargo install rage failed: crates.io must be reachable")?;
                eprintln!("installed rage in {}", fmt_duration(start.elapsed()));
            }
            Ok(vec![
                ("CALDICOTT_TEST_RAGE", rage.into_os_string()),
                ("CALDICOTT_REQUIRE_RAGE", "1".into()),
            ])
        },
    )?;
    // Headless Chromium, chromedriver and axe-core for the console's browser tests
    // (`browser.rs`): apt-get when Chromium is missing, `npm ci` when axe-core is.
    let browser_env = steps.run(
        "browser",
        "chromium + chromedriver (apt-get, only when missing), axe-core in target/tools/axe",
        browser::setup,
    )?;
    // Debian's clamd for the mail gateway's virus-scanning tests (`clamav.rs`): apt-get
    // when missing; the tests run private clamd processes with their own signatures.
    let clamav_env = steps.run(
        "clamav",
        "clamd from Debian's clamav-daemon (apt-get, only when missing)",
        clamav::setup,
    )?;
    let cluster = if args.no_postgres {
        steps.skip(
            "postgres",
            "--no-postgres: tests needing PostgreSQL will skip",
        );
        None
    } else {
        Some(steps.run("postgres", "start a throwaway PostgreSQL", PgCluster::start)?)
    };
    let mut env = TestEnv::new(cluster.as_ref());
    env.vars.extend(python_env);
    env.vars.extend(rage_env);
    env.vars.extend(browser_env);
    env.vars.extend(clamav_env);

    let tests = run_tests(steps, &env, &args.extra);

    if let Some(cluster) = cluster {
        let teardown = steps.run(
            "postgres teardown",
            "stop PostgreSQL and delete its directory",
            || cluster.stop(),
        );
        tests?;
        teardown
    } else {
        tests
    }
}

/// Step c: cargo-deny's licence, ban and source checks, and its advisory check when a local
/// advisory database exists.
fn supply_chain_steps(steps: &mut Steps, locked: bool) -> Result<()> {
    if !succeeds_quietly(cargo().args(["deny", "--version"])) {
        steps.run(
            "cargo-deny install",
            &format!("cargo install --locked cargo-deny --version {CARGO_DENY_VERSION}"),
            install_cargo_deny,
        )?;
    }
    steps.run("deny", "cargo deny check licenses bans sources", || {
        run(cargo_deny(locked).args(["check", "licenses", "bans", "sources"]))
    })?;

    match find_advisory_db()? {
        Some(db) => steps.run(
            "advisories",
            &format!("cargo deny --offline check advisories ({})", db.describe()),
            || check_advisories(&db, locked),
        ),
        None => {
            eprintln!();
            eprintln!("!!! SKIPPED advisories: no advisory database reachable from this machine");
            eprintln!(
                "!!! (put a git checkout of the RustSec advisory-db at ~/.cargo/advisory-db or set {ENV_ADVISORY_DB}=<dir>)"
            );
            steps.skip(
                "advisories",
                "no advisory database reachable from this machine",
            );
            Ok(())
        }
    }
}

fn cmd_deny() -> Result<()> {
    let mut steps = Steps::new();
    let locked = repo_root().join("Cargo.lock").is_file();
    let result = supply_chain_steps(&mut steps, locked);
    steps.print_summary(result.is_ok());
    result
}

fn run_tests(steps: &mut Steps, env: &TestEnv, extra: &[OsString]) -> Result<()> {
    // `--workspace` would override a `-p`/`--package` passed through after `--`; the same
    // package selection then also applies to the doctests.
    let packages = package_args(extra);
    let workspace: &[&str] = if packages.is_empty() {
        &["--workspace"]
    } else {
        &[]
    };
    let mut main = cargo();
    if succeeds_quietly(cargo().args(["nextest", "--version"])) {
        main.args(["nextest", "run"])
            .args(workspace)
            .arg("--no-fail-fast");
        if capture(cargo().args(["nextest", "run", "--help"]))
            .is_ok_and(|help| help.contains("--no-tests"))
        {
            main.arg("--no-tests=warn");
        }
    } else {
        eprintln!("\ncargo-nextest is not installed; using `cargo test`");
        main.arg("test").args(workspace).arg("--no-fail-fast");
    }
    main.args(extra);
    env.apply(&mut main);
    let shown = show(&main);
    steps.run("tests", &shown, || run(&mut main))?;

    let mut doc = cargo();
    doc.arg("test").args(workspace).args(&packages).arg("--doc");
    env.apply(&mut doc);
    let shown = show(&doc);
    steps.run("doctests", &shown, || run(&mut doc))
}

/// The package selection (`-p X`, `--package X`, `--package=X`, `-pX`) among passed-through
/// arguments, before any `--`.
fn package_args(extra: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = extra.iter().take_while(|a| *a != "--");
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "-p" || text == "--package" {
            out.push(arg.clone());
            out.extend(args.next().cloned());
        } else if text.starts_with("--package=")
            || (text.starts_with("-p") && !text.starts_with("--"))
        {
            out.push(arg.clone());
        }
    }
    out
}

/// The environment given to test and bench processes.
struct TestEnv {
    vars: Vec<(&'static str, OsString)>,
}

impl TestEnv {
    fn new(cluster: Option<&PgCluster>) -> Self {
        let vars = match cluster {
            Some(c) => vec![
                (ENV_URL, c.url.clone().into()),
                (ENV_REQUIRE, "1".into()),
                (ENV_PG_BIN, c.bin.clone().into_os_string()),
            ],
            None => {
                for var in [ENV_URL, ENV_REQUIRE, ENV_PG_BIN] {
                    if env::var_os(var).is_some() {
                        eprintln!("note: ignoring {var} from the environment (--no-postgres)");
                    }
                }
                Vec::new()
            }
        };
        Self { vars }
    }

    fn apply(&self, cmd: &mut Command) {
        for var in [ENV_URL, ENV_REQUIRE, ENV_PG_BIN] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }
}

// ---------------------------------------------------------------------------------------
// cargo xtask bench <name>

fn cmd_bench(args: &BenchArgs) -> Result<()> {
    let name = match (&args.load, &args.name) {
        (Some(LoadBench::Fhir(fhir)), _) => return bench_fhir::cmd_bench_fhir(fhir),
        (Some(LoadBench::Mail(mail)), _) => return bench_mail::cmd_bench_mail(mail),
        (None, Some(name)) => name,
        (None, None) => bail!("name a benchmark"),
    };
    let bench = BENCHES
        .iter()
        .find(|b| b.name == *name)
        .with_context(|| format!("unknown benchmark `{name}`"))?;
    // Before any cluster starts, so that a failed install leaves nothing running.
    let python = match bench.python {
        Some((requirements, venv)) => Some(python::ensure_venv(
            requirements,
            venv,
            &format!("`cargo xtask bench {name}`"),
        )?),
        None => None,
    };
    let cluster = if bench.postgres {
        Some(PgCluster::start()?)
    } else {
        None
    };
    let env = TestEnv::new(cluster.as_ref());
    let mut cmd = cargo();
    cmd.args(["bench", "-p", bench.package]);
    for target in bench.targets {
        cmd.args(["--bench", target]);
    }
    if !args.extra.is_empty() {
        cmd.arg("--").args(&args.extra);
    }
    env.apply(&mut cmd);
    if let Some(python) = python {
        cmd.env("CALDICOTT_BENCH_PYTHON", python);
    }
    let result = run(&mut cmd);
    if let Some(cluster) = cluster {
        let teardown = cluster.stop();
        result?;
        teardown
    } else {
        result
    }
}

// ---------------------------------------------------------------------------------------
// cargo xtask pg

/// Set while `cargo xtask pg` waits: Ctrl-C is then the normal way out, so exit 0.
static CTRL_C_IS_SUCCESS: AtomicBool = AtomicBool::new(false);

fn cmd_pg() -> Result<()> {
    let cluster = PgCluster::start()?;
    eprintln!(
        "\nPostgreSQL is running (data in {}):",
        cluster.dir.display()
    );
    println!("export {ENV_URL}={}", cluster.url);
    println!("export {ENV_REQUIRE}=1");
    println!("export {ENV_PG_BIN}={}", cluster.bin.display());
    eprintln!("\nPress Ctrl-C to stop it and delete its data.");
    CTRL_C_IS_SUCCESS.store(true, Ordering::SeqCst);
    loop {
        thread::sleep(Duration::from_secs(5));
        if !cluster.is_running() {
            cluster.print_log_tail();
            bail!("PostgreSQL stopped by itself (its log is above)");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Supply chain: cargo-deny

fn install_cargo_deny() -> Result<()> {
    eprintln!("`cargo deny --version` failed: installing cargo-deny (this takes a few minutes)");
    let start = Instant::now();
    run(cargo().args([
        "install",
        "--locked",
        "cargo-deny",
        "--version",
        CARGO_DENY_VERSION,
    ]))?;
    eprintln!("installed cargo-deny in {}", fmt_duration(start.elapsed()));
    ensure!(
        succeeds_quietly(cargo().args(["deny", "--version"])),
        "cargo-deny was installed but `cargo deny --version` still fails; is the cargo bin directory usable?"
    );
    Ok(())
}

fn cargo_deny(locked: bool) -> Command {
    let mut cmd = cargo();
    cmd.arg("deny");
    if locked {
        cmd.arg("--locked");
    }
    cmd
}

/// A local copy of the RustSec advisory database.
enum AdvisoryDb {
    /// cargo-deny's own clone under `$CARGO_HOME/advisory-dbs`: the default config finds it.
    DenyCache(PathBuf),
    /// Any other git checkout (cargo-audit's `~/.cargo/advisory-db`, `$CALDICOTT_ADVISORY_DB`).
    Checkout(PathBuf),
}

impl AdvisoryDb {
    fn describe(&self) -> String {
        match self {
            AdvisoryDb::DenyCache(p) | AdvisoryDb::Checkout(p) => {
                format!("database at {}", p.display())
            }
        }
    }
}

fn find_advisory_db() -> Result<Option<AdvisoryDb>> {
    let is_checkout = |p: &Path| p.join(".git").exists() && p.join("crates").is_dir();
    if let Some(dir) = env::var_os(ENV_ADVISORY_DB) {
        let dir = PathBuf::from(dir);
        ensure!(
            is_checkout(&dir),
            "{ENV_ADVISORY_DB}={} is not a git checkout of the RustSec advisory database (no .git or crates/)",
            dir.display()
        );
        return Ok(Some(AdvisoryDb::Checkout(dir)));
    }
    let home = env::var_os("HOME").map(PathBuf::from);
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
    if let Some(cargo_home) = &cargo_home {
        let cache = cargo_home.join("advisory-dbs").join(RUSTSEC_DB_DIR_NAME);
        if is_checkout(&cache) {
            return Ok(Some(AdvisoryDb::DenyCache(cache)));
        }
    }
    let audit_dirs = [cargo_home, home.map(|h| h.join(".cargo"))];
    Ok(audit_dirs
        .into_iter()
        .flatten()
        .map(|d| d.join("advisory-db"))
        .find(|d| is_checkout(d))
        .map(AdvisoryDb::Checkout))
}

fn check_advisories(db: &AdvisoryDb, locked: bool) -> Result<()> {
    match db {
        AdvisoryDb::DenyCache(_) => {
            run(cargo_deny(locked).args(["--offline", "check", "advisories"]))
        }
        AdvisoryDb::Checkout(dir) => {
            // Point cargo-deny at the checkout: a temporary db-path holding a link under the
            // name cargo-deny expects, and a copy of deny.toml that names that db-path.
            let root = tempfile::Builder::new()
                .prefix("caldicott-advisory-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let dir = fs::canonicalize(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            symlink(&dir, root.path().join(RUSTSEC_DB_DIR_NAME))
                .context("cannot link the advisory database")?;
            let config_path = repo_root().join("deny.toml");
            let config = fs::read_to_string(&config_path)
                .with_context(|| format!("cannot read {}", config_path.display()))?;
            let temp_config = root.path().join("deny.toml");
            fs::write(&temp_config, with_db_path(&config, root.path())?)
                .context("cannot write a temporary deny.toml")?;
            run(cargo_deny(locked)
                .arg("--offline")
                .arg("--config")
                .arg(&temp_config)
                .args(["check", "advisories"]))
        }
    }
}

/// `config` with `db-path = '<db_root>'` set in its `[advisories]` table.
fn with_db_path(config: &str, db_root: &Path) -> Result<String> {
    let db_root = db_root
        .to_str()
        .context("temporary directory path is not UTF-8")?;
    ensure!(
        !db_root.contains('\''),
        "temporary directory path contains a quote"
    );
    let line = format!("db-path = '{db_root}'");
    let mut out = String::with_capacity(config.len() + line.len() + 16);
    let mut done = false;
    for l in config.lines() {
        let t = l.trim_start();
        ensure!(
            !(t.starts_with("db-path") && t.contains('=')),
            "deny.toml sets db-path itself; xtask needs to set it (remove it from deny.toml)"
        );
        out.push_str(l);
        out.push('\n');
        if !done && t.trim_end() == "[advisories]" {
            out.push_str(&line);
            out.push('\n');
            done = true;
        }
    }
    if !done {
        out.push_str("\n[advisories]\n");
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// A throwaway PostgreSQL cluster

/// A running throwaway cluster. Dropping it (or [`PgCluster::stop`]) stops it and deletes
/// its directory; the Ctrl-C/SIGTERM handler does the same through [`CLEANUP`].
struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    run_as: RunAs,
    url: String,
}

/// What to undo when the process ends, whoever gets there first: the cluster's `Drop` or the
/// signal handler. Whoever takes it holds the lock until cleanup is done, so the other waits.
static CLEANUP: Mutex<Option<PgCleanup>> = Mutex::new(None);

struct PgCleanup {
    pg_ctl: PathBuf,
    dir: PathBuf,
    run_as: RunAs,
}

impl PgCluster {
    fn start() -> Result<Self> {
        let bin = pg_bin_dir()?;
        let run_as = RunAs::choose()?;
        let version =
            capture(Command::new(bin.join("postgres")).arg("--version")).unwrap_or_default();
        eprintln!(
            "using {version} from {} as {}",
            bin.display(),
            run_as.describe()
        );

        // Unix socket paths are limited to ~107 bytes, and another user must reach the
        // directory: use /tmp unless we stay ourselves and TMPDIR is short.
        let tmp = env::temp_dir();
        let base = if run_as.user.is_none() && tmp.as_os_str().len() <= 60 {
            tmp
        } else {
            PathBuf::from("/tmp")
        };
        let dir = tempfile::Builder::new()
            .prefix("caldicott-pg-")
            .tempdir_in(&base)
            .with_context(|| format!("cannot create a temporary directory in {}", base.display()))?
            .keep();
        *lock_cleanup() = Some(PgCleanup {
            pg_ctl: bin.join("pg_ctl"),
            dir: dir.clone(),
            run_as: run_as.clone(),
        });
        // From here on, dropping `cluster` (e.g. on an error below) cleans up.
        let mut cluster = PgCluster {
            bin,
            dir,
            run_as,
            url: String::new(),
        };
        cluster.init_and_start()?;
        Ok(cluster)
    }

    fn init_and_start(&mut self) -> Result<()> {
        let dir = &self.dir;
        if let Some(user) = &self.run_as.user {
            chown(dir, Some(user.uid), Some(user.gid))
                .with_context(|| format!("cannot give {} to {}", dir.display(), user.name))?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot chmod {}", dir.display()))?;

        run_quiet(
            self.run_as
                .command(self.bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    PG_SUPERUSER,
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "-D",
                ])
                .arg(dir),
        )
        .context("initdb failed")?;

        let log = dir.join("server.log");
        let dir_str = dir
            .to_str()
            .context("temporary directory path is not UTF-8")?;
        // pg_ctl hands `-o` to a shell: quote the directory unless it is plainly safe.
        let socket_dir = if dir_str
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        {
            dir_str.to_owned()
        } else {
            ensure!(
                !dir_str.contains('\''),
                "temporary directory path contains a quote"
            );
            format!("'{dir_str}'")
        };
        let mut port = 0;
        for attempt in 1..=3 {
            port = free_port()?;
            let options =
                format!("-k {socket_dir} -c listen_addresses=127.0.0.1 -p {port} -c fsync=on");
            let started = run_quiet(
                self.run_as
                    .command(self.bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(dir)
                    .arg("-l")
                    .arg(&log)
                    .args(["-o", &options, "-w", "-t", "60", "start"]),
            );
            match started {
                Ok(()) => break,
                Err(err) if attempt < 3 => {
                    eprintln!(
                        "PostgreSQL did not start on port {port} ({}); retrying",
                        one_line(&err)
                    );
                    self.print_log_tail();
                }
                Err(err) => {
                    self.print_log_tail();
                    return Err(err.context("PostgreSQL did not start (3 attempts)"));
                }
            }
        }

        let createdb = [self.bin.join("createdb"), which("createdb").unwrap_or_default()]
            .into_iter()
            .find(|p| p.is_file())
            .context("createdb not found next to initdb nor on PATH (Debian: apt-get install postgresql-client)")?;
        let port_str = port.to_string();
        run_quiet(self.run_as.command(createdb).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port_str,
            "-U",
            PG_SUPERUSER,
            PG_DATABASE,
        ]))
        .with_context(|| format!("cannot create database {PG_DATABASE}"))?;

        self.url = format!("postgres://{PG_SUPERUSER}@127.0.0.1:{port}/{PG_DATABASE}");
        eprintln!("PostgreSQL is up: {ENV_URL}={}", self.url);
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.run_as
            .command(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn print_log_tail(&self) {
        if let Ok(log) = fs::read_to_string(self.dir.join("server.log")) {
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- last lines of the PostgreSQL log ---");
            for line in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("{line}");
            }
            eprintln!("---");
        }
    }

    /// Stops the cluster and deletes its directory, reporting any trouble.
    fn stop(self) -> Result<()> {
        run_registered_cleanup()
        // `Drop` then finds nothing left to do.
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Err(err) = run_registered_cleanup() {
            eprintln!("xtask: warning: PostgreSQL cleanup: {}", one_line(&err));
        }
    }
}

fn lock_cleanup() -> std::sync::MutexGuard<'static, Option<PgCleanup>> {
    CLEANUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run_registered_cleanup() -> Result<()> {
    let mut slot = lock_cleanup();
    match slot.take() {
        Some(cleanup) => cleanup.run(), // the lock is held until this returns
        None => Ok(()),
    }
}

impl PgCleanup {
    fn run(self) -> Result<()> {
        let mut result = Ok(());
        if self.dir.join("postmaster.pid").exists() {
            let stop = |mode: &str| {
                run_quiet(
                    self.run_as
                        .command(&self.pg_ctl)
                        .arg("-D")
                        .arg(&self.dir)
                        .args(["-m", mode, "-w", "-t", "60", "stop"]),
                )
            };
            if let Err(err) = stop("fast") {
                eprintln!(
                    "pg_ctl stop -m fast failed ({}); trying -m immediate",
                    one_line(&err)
                );
                result = stop("immediate").context("cannot stop PostgreSQL");
            }
        }
        let removed = fs::remove_dir_all(&self.dir)
            .with_context(|| format!("cannot delete {}", self.dir.display()));
        if result.is_ok() && removed.is_ok() {
            eprintln!("PostgreSQL stopped; deleted {}", self.dir.display());
        }
        result.and(removed)
    }
}

/// Runs on SIGINT, SIGTERM and SIGHUP (on the handler thread ctrlc starts).
fn on_signal() {
    eprintln!("\nxtask: interrupted; cleaning up");
    bench_fhir::on_signal();
    if let Err(err) = run_registered_cleanup() {
        eprintln!("xtask: PostgreSQL cleanup: {}", one_line(&err));
    }
    let code = if CTRL_C_IS_SUCCESS.load(Ordering::SeqCst) {
        0
    } else {
        130
    };
    std::process::exit(code);
}

/// The PostgreSQL server binary directory: `initdb` on PATH (resolved through symlinks), else
/// the highest `/usr/lib/postgresql/<version>/bin`; installs Debian's package if neither.
fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = find_pg_bin_dir() {
        return Ok(dir);
    }
    ensure!(
        is_root()?,
        "PostgreSQL server binaries (initdb, pg_ctl) not found, and only root may install them here \
         (Debian: sudo apt-get install postgresql); or pass --no-postgres"
    );
    eprintln!("PostgreSQL server binaries not found: installing Debian's `postgresql` package");
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()))
    };
    apt(&["update"])?;
    apt(&["install", "-y", "postgresql"])?;
    find_pg_bin_dir()
        .context("installed the `postgresql` package but still cannot find initdb and pg_ctl")
}

fn find_pg_bin_dir() -> Option<PathBuf> {
    let is_server_dir = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(initdb) = which("initdb")
        && let Ok(real) = fs::canonicalize(initdb)
        && let Some(dir) = real.parent()
        && is_server_dir(dir)
    {
        return Some(dir.to_path_buf());
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            is_server_dir(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Who runs the PostgreSQL binaries: they refuse to run as root.
#[derive(Clone)]
struct RunAs {
    /// `None`: the current (non-root) user.
    user: Option<SystemUser>,
}

#[derive(Clone)]
struct SystemUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl RunAs {
    fn choose() -> Result<Self> {
        if !is_root()? {
            return Ok(Self { user: None });
        }
        if let Some(user) = SystemUser::lookup("postgres") {
            return Ok(Self { user: Some(user) });
        }
        if SystemUser::lookup(PG_FALLBACK_SYSTEM_USER).is_none() {
            eprintln!("no `postgres` user: creating system user `{PG_FALLBACK_SYSTEM_USER}`");
            run(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                PG_FALLBACK_SYSTEM_USER,
            ]))?;
        }
        let user = SystemUser::lookup(PG_FALLBACK_SYSTEM_USER).with_context(|| {
            format!("created user {PG_FALLBACK_SYSTEM_USER} but cannot look it up")
        })?;
        Ok(Self { user: Some(user) })
    }

    fn describe(&self) -> String {
        match &self.user {
            Some(u) => format!("user {} ({})", u.name, u.uid),
            None => "the current user".to_owned(),
        }
    }

    /// A command for `program` that runs as this user, from the root directory so that the
    /// user need not be able to read our working directory.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir("/").stdin(Stdio::null());
        if let Some(user) = &self.user {
            cmd.uid(user.uid).gid(user.gid).env_remove("HOME");
        }
        cmd
    }
}

impl SystemUser {
    fn lookup(name: &str) -> Option<Self> {
        let id = |flag: &str| {
            capture(Command::new("id").args([flag, name]))
                .ok()?
                .parse()
                .ok()
        };
        Some(Self {
            name: name.to_owned(),
            uid: id("-u")?,
            gid: id("-g")?,
        })
    }
}

fn is_root() -> Result<bool> {
    Ok(capture(Command::new("id").arg("-u")).context("cannot run `id -u`")? == "0")
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("cannot find a free TCP port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------
// Steps and their summary

struct Steps {
    started: Instant,
    records: Vec<StepRecord>,
}

struct StepRecord {
    name: String,
    outcome: Outcome,
}

enum Outcome {
    Ok(Duration),
    Failed(Duration),
    Skipped(String),
}

impl Steps {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            records: Vec::new(),
        }
    }

    /// Runs one step under a heading, times it and records the outcome; an error names the step.
    fn run<T>(&mut self, name: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("\n==> [{}] {name}: {what}", self.records.len() + 1);
        let start = Instant::now();
        let result = f();
        let took = start.elapsed();
        let (word, outcome) = match result {
            Ok(_) => ("ok", Outcome::Ok(took)),
            Err(_) => ("FAILED", Outcome::Failed(took)),
        };
        eprintln!("<== {name}: {word} in {}", fmt_duration(took));
        self.records.push(StepRecord {
            name: name.to_owned(),
            outcome,
        });
        result.with_context(|| format!("step `{name}` failed"))
    }

    fn skip(&mut self, name: &str, reason: &str) {
        eprintln!(
            "\n==> [{}] {name}: SKIPPED: {reason}",
            self.records.len() + 1
        );
        self.records.push(StepRecord {
            name: name.to_owned(),
            outcome: Outcome::Skipped(reason.to_owned()),
        });
    }

    fn print_summary(&self, ok: bool) {
        eprintln!("\n==> summary");
        for r in &self.records {
            let (word, detail) = match &r.outcome {
                Outcome::Ok(d) => ("ok", fmt_duration(*d)),
                Outcome::Failed(d) => ("FAILED", fmt_duration(*d)),
                Outcome::Skipped(why) => ("SKIPPED", why.clone()),
            };
            eprintln!("  {:<20} {word:<8} {detail}", r.name);
        }
        let total = fmt_duration(self.started.elapsed());
        eprintln!(
            "  {:<20} {:<8} {total}",
            "total",
            if ok { "ok" } else { "FAILED" }
        );
    }
}

fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

// ---------------------------------------------------------------------------------------
// Processes

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Where the test and bench tools that take minutes to make are kept: the rage CLI and the
/// Python venvs. `CALDICOTT_TOOLS_DIR` when set, else `$XDG_CACHE_HOME/caldicott-tools`, else
/// `~/.cache/caldicott-tools`. Outside `target/` on purpose: a clean checkout (CI's) then
/// reuses what an earlier run on the same machine made instead of spending 4-5 minutes
/// rebuilding it. Every user checks what it finds (rage's version, each pinned package) and
/// reinstalls what does not match, so a stale or broken cache costs time, never a wrong
/// result. Deleting the directory is always safe. (Two runs installing into it at the same
/// moment can trip over each other; the next run repairs what they left.)
fn tools_dir() -> Result<PathBuf> {
    let absolute = |name: &str| {
        env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let dir = env::var_os("CALDICOTT_TOOLS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| absolute("XDG_CACHE_HOME").map(|c| c.join("caldicott-tools")))
        .or_else(|| absolute("HOME").map(|h| h.join(".cache/caldicott-tools")))
        .unwrap_or_else(|| repo_root().join("target/tools"));
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the tools cache {}", dir.display()))?;
    Ok(dir)
}

/// `cargo`, the same one that runs us, working in the repository root.
fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}

/// Runs `cmd` with its output shown; an error if it cannot start or does not succeed.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    ensure!(status.success(), "`{shown}` {}", describe_status(status));
    Ok(())
}

/// Runs `cmd` with its output captured, and shown only if it fails.
fn run_quiet(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    eprintln!("$ {shown}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("`{shown}` {}", describe_status(out.status));
    }
    Ok(())
}

/// The trimmed standard output of `cmd`, which must succeed.
fn capture(cmd: &mut Command) -> Result<String> {
    let shown = show(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    ensure!(
        out.status.success(),
        "`{shown}` {}",
        describe_status(out.status)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn succeeds_quietly(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "failed".to_owned(),
    }
}

/// A command as a person would type it (program file name, then arguments).
fn show(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let program = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy();
    let mut out = program.into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        out.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            out.push('\'');
            out.push_str(&arg.replace('\'', r"'\''"));
            out.push('\'');
        } else {
            out.push_str(&arg);
        }
    }
    out
}

fn which(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An error and its causes on one line.
fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_takes_a_target_name_or_the_fhir_load() {
        let parse = |args: &[&str]| Cli::try_parse_from(["xtask"].iter().chain(args));
        let Ok(Cli {
            command: Cmd::Bench(b),
        }) = parse(&["bench", "vault", "--", "--rounds", "3"])
        else {
            panic!("`bench vault -- --rounds 3` must parse");
        };
        assert!(b.load.is_none());
        assert_eq!(b.name.as_deref(), Some("vault"));
        assert_eq!(b.extra, ["--rounds", "3"]);
        let Ok(Cli {
            command: Cmd::Bench(b),
        }) = parse(&["bench", "fhir", "--quick", "--scenario", "read,search"])
        else {
            panic!("`bench fhir --quick` must parse");
        };
        assert!(matches!(b.load, Some(LoadBench::Fhir(_))));
        let Ok(Cli {
            command: Cmd::Bench(b),
        }) = parse(&[
            "bench",
            "fhir",
            "--compare",
            "a=/x",
            "--compare",
            "b=/y",
            "--rounds",
            "2",
        ])
        else {
            panic!("`bench fhir --compare` must parse");
        };
        let Some(LoadBench::Fhir(f)) = b.load else {
            panic!("`bench fhir --compare` is the FHIR load");
        };
        assert_eq!(f.compare, ["a=/x", "b=/y"]);
        assert_eq!(f.rounds, 2);
        // Fresh deployments need an empty database each: SQLite only.
        assert!(parse(&["bench", "fhir", "--compare", "a=/x", "--postgres"]).is_err());
        assert!(parse(&["bench", "fhir", "--rounds", "2"]).is_err());
        assert!(parse(&["bench"]).is_err());
        assert!(parse(&["bench", "nosuch"]).is_err());
    }
}
