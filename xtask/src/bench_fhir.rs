//! `cargo xtask bench fhir`: load on the FHIR R4 REST API of a running release server.
//!
//! What it measures: how many requests per second one `caldicott serve` answers, and how fast,
//! for reads by id, compartment searches, single creates and transaction Bundles, on a data
//! set of synthetic patients; and how fast `caldicott import` loads that data set. The figures
//! are printed as a Markdown table beside issue 3's targets and the per-core figures that
//! peers (Blaze, Aidbox, HAPI) publish.
//!
//! How:
//! 1. `cargo build --release --locked --bin caldicott`; in a temporary directory, `caldicott
//!    init` (SQLite, or `--database URL`/`--postgres` for PostgreSQL), `caldicott synth
//!    --patients P`, and `caldicott import` of that file, timed from outside (resources are
//!    the file's lines);
//! 2. `caldicott serve` with TLS on a port of 127.0.0.1 the kernel picks, until `/healthz`
//!    answers 200 to a client that trusts only the certificate `init` wrote;
//! 3. per scenario, C workers, each with its own HTTP/1.1 keep-alive connection (hyper 1 over
//!    tokio-rustls) and its own fixed-seed random choices, send a request as soon as the last
//!    answer is in (a closed loop) for a warm-up and then the measured seconds. A request
//!    counts when it was sent inside the measured window (it is waited for if it ends after);
//!    it succeeds on a 2xx status whose body holds what a right answer must (the id read,
//!    search entries, a transaction-response), and only successes count towards requests/s
//!    and latency percentiles. The server's CPU time (user + system, all threads, from
//!    `/proc/PID/stat`) over the window, divided by the requests answered, is reported too:
//!    on a noisy machine it moves less than the rate, since time the server spent waiting
//!    for a CPU does not count;
//! 4. the server is stopped with SIGTERM (SIGKILL after 10 s) and the directory deleted, also
//!    on errors and Ctrl-C.
//!
//! The bench fails (non-zero exit) if more than 1% of any scenario's requests failed, so it
//! cannot quietly measure 404s. The load generator runs on the same machine as the server and
//! takes part of its CPUs; per-core figures divide by all of them.

mod deploy;
mod load;
mod report;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{env, fs};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use hyper::header::{HeaderName, HeaderValue};

use self::deploy::{Deployment, Imported};
use self::load::{Target, Window};
use self::report::{Goal, MAX_ERROR_SHARE, Measured, RunInfo};
use self::workload::{NhsNumbers, RequestSource, Shared, Workload};
use super::{PgCluster, Steps, capture, cargo, repo_root, run};

pub use self::deploy::on_signal;

/// How long the server may take to answer `/healthz` after it printed its address.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub struct FhirArgs {
    /// Synthetic patients to generate and import [default: 2000; 500 with --quick].
    #[arg(long)]
    patients: Option<usize>,
    /// Seconds to measure each scenario, after the warm-up [default: 10; 3 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// A short run: 3 s per scenario and 500 patients (--seconds and --patients still win).
    #[arg(long)]
    quick: bool,
    /// Connections, one per worker, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of warm-up before each scenario's measurement (same connections, not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Resources per transaction Bundle: one new Patient and B-1 Observations about it.
    #[arg(long, default_value_t = 100, value_name = "B")]
    bundle_size: usize,
    /// Scenarios to run, in order (repeat the flag or separate with commas)
    /// [default: read, read-mixed, search, create, transaction].
    #[arg(long = "scenario", value_delimiter = ',', value_name = "NAME")]
    scenarios: Vec<Scenario>,
    /// PostgreSQL URL of an empty database, passed to `caldicott init --database`
    /// [default: SQLite in the temporary data directory].
    #[arg(long, value_name = "URL", conflicts_with = "postgres")]
    database: Option<String>,
    /// Start a throwaway PostgreSQL (as `cargo xtask pg` does) and run on it.
    #[arg(long)]
    postgres: bool,
    /// Seed of the synthetic data and of the load generator's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// An extra header on every FHIR request, e.g. credentials once the API asks for them
    /// (repeatable; its value is not printed).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Threads of the load generator's async runtime [default: 1, leaving the other CPUs to
    /// the server].
    #[arg(long, value_name = "N")]
    client_threads: Option<usize>,
    /// Keep the temporary directory (data directory, NDJSON file, server log) afterwards.
    #[arg(long)]
    keep: bool,
    /// Use the release binary already in the target directory instead of building it (e.g.
    /// while another crate is mid-edit).
    #[arg(long)]
    no_build: bool,
    /// Compare builds side by side instead of measuring this tree: `NAME=PATH` of a release
    /// binary (repeat; the first is the reference). Each round deploys every binary afresh
    /// (same data, same seed) and measures the scenarios, in an order that rotates from round
    /// to round; the table gives each round's requests/s, the medians and each binary's
    /// difference from the first. SQLite only.
    #[arg(long = "compare", value_name = "NAME=PATH", conflicts_with_all = ["database", "postgres"])]
    pub compare: Vec<String>,
    /// Rounds of `--compare` [default: 3].
    #[arg(long, default_value_t = 3, requires = "compare")]
    pub rounds: usize,
}

/// What the load generator asks the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Scenario {
    /// `GET /fhir/Patient/{id}` of imported patients.
    Read,
    /// `GET /fhir/Patient/{id}` or `GET /fhir/Observation/{id}`, half each.
    ReadMixed,
    /// `GET /fhir/Observation?patient=Patient/{id}&code={system}|{code}` with terms that
    /// occur in the imported data.
    Search,
    /// `POST /fhir/Observation` of one new Observation about an imported patient.
    Create,
    /// `POST /fhir` of a transaction Bundle: a new Patient and Observations about it.
    Transaction,
    /// `GET /healthz`: checks the harness itself, before the FHIR API exists.
    #[value(hide = true)]
    Healthz,
}

impl Scenario {
    const DEFAULT: &[Scenario] = &[
        Scenario::Read,
        Scenario::ReadMixed,
        Scenario::Search,
        Scenario::Create,
        Scenario::Transaction,
    ];

    const IMPORT_PEERS: &str = "Blaze ~630 resources/s (import)";

    fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::ReadMixed => "read-mixed",
            Scenario::Search => "search",
            Scenario::Create => "create",
            Scenario::Transaction => "transaction",
            Scenario::Healthz => "healthz",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::Read => "`GET Patient/{id}`",
            Scenario::ReadMixed => "`GET Patient/{id}` or `Observation/{id}`",
            Scenario::Search => "`GET Observation?patient=…&code=…`",
            Scenario::Create => "`POST Observation`",
            Scenario::Transaction => "`POST /fhir` transaction Bundle",
            Scenario::Healthz => "`GET /healthz` (harness check, no FHIR)",
        }
    }

    fn goal(self) -> Option<Goal> {
        let reads = Goal {
            text: "≥ 10,000 req/s, p99 < 10 ms",
            min_requests_per_s: Some(10_000.0),
            min_resources_per_s: None,
            max_p99_ms: Some(10.0),
        };
        match self {
            Scenario::Read => Some(reads),
            Scenario::ReadMixed => Some(Goal {
                text: "≥ 10,000 req/s, p99 < 10 ms (as read)",
                ..reads
            }),
            Scenario::Search => Some(Goal {
                text: "≥ 3,000 req/s",
                min_requests_per_s: Some(3_000.0),
                min_resources_per_s: None,
                max_p99_ms: None,
            }),
            Scenario::Transaction => Some(Goal {
                text: "≥ 3,000 resources/s",
                min_requests_per_s: None,
                min_resources_per_s: Some(3_000.0),
                max_p99_ms: None,
            }),
            Scenario::Create | Scenario::Healthz => None,
        }
    }

    fn peers(self) -> &'static str {
        match self {
            Scenario::Read | Scenario::ReadMixed => {
                "Blaze ~4,000 single-patient reads/s (48,868 req/s on 12 cores)"
            }
            Scenario::Create => "Aidbox ~650 CRUD req/s per vCPU; HAPI ~380",
            Scenario::Transaction => Self::IMPORT_PEERS,
            Scenario::Search | Scenario::Healthz => "—",
        }
    }

    /// Resources one successful request writes.
    fn resources_per_request(self, bundle_size: usize) -> Option<usize> {
        match self {
            Scenario::Create => Some(1),
            Scenario::Transaction => Some(bundle_size),
            _ => None,
        }
    }
}

/// The run's settings, with defaults and `--quick` applied.
struct Settings {
    patients: usize,
    seconds: f64,
    warmup: f64,
    concurrency: usize,
    bundle_size: usize,
    scenarios: Vec<Scenario>,
    client_threads: usize,
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl Settings {
    fn from_args(args: &FhirArgs) -> Result<Self> {
        let (patients, seconds) = if args.quick {
            (500, 3.0)
        } else {
            (2_000, 10.0)
        };
        let s = Settings {
            patients: args.patients.unwrap_or(patients),
            seconds: args.seconds.unwrap_or(seconds),
            warmup: args.warmup,
            concurrency: args.concurrency,
            bundle_size: args.bundle_size,
            scenarios: if args.scenarios.is_empty() {
                Scenario::DEFAULT.to_vec()
            } else {
                args.scenarios.clone()
            },
            client_threads: args.client_threads.unwrap_or(1),
            headers: parse_headers(&args.headers)?.into(),
        };
        ensure!(s.patients > 0, "--patients must be at least 1");
        ensure!(
            s.seconds.is_finite() && s.seconds > 0.0,
            "--seconds must be positive"
        );
        ensure!(
            s.warmup.is_finite() && s.warmup >= 0.0,
            "--warmup must not be negative"
        );
        ensure!(s.concurrency > 0, "--concurrency must be at least 1");
        ensure!(s.bundle_size > 0, "--bundle-size must be at least 1");
        ensure!(s.client_threads > 0, "--client-threads must be at least 1");
        Ok(s)
    }
}

/// `Name: value` pairs from `--header`.
fn parse_headers(raw: &[String]) -> Result<Vec<(HeaderName, HeaderValue)>> {
    raw.iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header wants `Name: value`, not `{h}`"))?;
            let name = HeaderName::try_from(name.trim())
                .with_context(|| format!("--header: bad name `{}`", name.trim()))?;
            let mut value = HeaderValue::try_from(value.trim())
                .with_context(|| format!("--header {name}: bad value"))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}

pub fn cmd_bench_fhir(args: &FhirArgs) -> Result<()> {
    let settings = Settings::from_args(args)?;
    let mut steps = Steps::new();
    let result = if args.compare.is_empty() {
        bench(args, &settings, &mut steps)
    } else {
        compare(args, &settings, &mut steps)
    };
    steps.print_summary(result.is_ok());
    result
}

fn bench(args: &FhirArgs, settings: &Settings, steps: &mut Steps) -> Result<()> {
    let cluster = if args.postgres {
        Some(steps.run("postgres", "start a throwaway PostgreSQL", PgCluster::start)?)
    } else {
        None
    };
    let database = cluster
        .as_ref()
        .map(|c| c.url.clone())
        .or_else(|| args.database.clone());

    let bin = if args.no_build {
        steps.skip("build", "--no-build: using the release binary as it is");
        release_binary()?
    } else {
        steps.run(
            "build",
            "cargo build --release --locked --bin caldicott",
            || {
                run(cargo().args(["build", "--release", "--locked", "--bin", "caldicott"]))?;
                release_binary()
            },
        )?
    };
    let (info, import, runs) = deploy_and_measure(args, settings, steps, bin, database)?;
    println!("\n{}", report::markdown(&info, &import, &runs));
    if let Some(cluster) = cluster {
        cluster.stop()?;
    }
    check_failures(&import, &runs)
}

/// One deployment of `bin` (init, synth, import, serve), the scenarios measured against it,
/// and the server stopped; the data directory goes when the deployment is dropped.
fn deploy_and_measure(
    args: &FhirArgs,
    settings: &Settings,
    steps: &mut Steps,
    bin: PathBuf,
    database: Option<String>,
) -> Result<(RunInfo, Imported, Vec<Measured>)> {
    let deployment = Deployment::create(bin, args.keep)?;
    steps.run("init", "caldicott init", || {
        deployment.init(database.as_deref())
    })?;
    let file = steps.run("synth", "caldicott synth", || {
        deployment.synth(settings.patients, args.seed)
    })?;
    let mut workload = Workload::from_ndjson(&file)?;
    let practice = workload
        .keep_largest_practice()
        .context("the synthetic file registers no patient with a practice")?;
    let workload = Arc::new(workload);
    for &scenario in &settings.scenarios {
        workload.check_supports(scenario)?;
    }
    let import = steps.run("import", "caldicott import, timed", || {
        deployment.import(&file, workload.resources)
    })?;
    eprintln!(
        "import: {} resources in {:.2} s: {} resources/s",
        report::thousands(import.resources as f64),
        import.seconds,
        report::thousands(import.resources as f64 / import.seconds)
    );

    // The load runs as a GP of the chosen practice, with a direct-care token.
    let token = steps.run("token", "caldicott org add, user add, token issue", || {
        deployment.gp_token(&practice)
    })?;
    let mut headers: Vec<(HeaderName, HeaderValue)> = settings.headers.to_vec();
    headers.push((
        hyper::header::AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}"))?,
    ));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .context("cannot start the load generator's async runtime")?;
    let addr = steps.run("serve", "caldicott serve, until /healthz is 200", || {
        start_server(&deployment, &runtime)
    })?;
    let target = Arc::new(Target::new(addr, &deployment.cert_pem())?);
    let shared = Shared {
        nhs: Arc::new(NhsNumbers::new(workload.nhs_numbers.clone())),
        workload: Arc::clone(&workload),
        bundle_size: settings.bundle_size,
        host: HeaderValue::try_from(format!("localhost:{}", addr.port()))?,
        headers: headers.into(),
    };

    let mut runs = Vec::new();
    for (index, &scenario) in settings.scenarios.iter().enumerate() {
        let what = format!(
            "{}, {} connections, {} s + {} s warm-up",
            scenario.describe(),
            settings.concurrency,
            settings.seconds,
            settings.warmup
        );
        let measured = steps.run(scenario.name(), &what, || {
            let seed = args.seed ^ ((index as u64 + 1) << 32);
            let pid = deployment.server_pid();
            let m = run_scenario(&runtime, &target, &shared, settings, scenario, seed, pid)?;
            eprintln!("{}", m.summary());
            deployment.server_running()?;
            Ok(m)
        })?;
        runs.push(measured);
    }

    let stopped = steps.run("stop", "SIGTERM caldicott serve", || {
        deployment.stop_server()
    })?;
    eprintln!("caldicott serve {}", stopped.how);
    if !stopped.clean {
        deployment.print_log_tail();
    }

    let info = run_info(args, settings, &workload, database.is_some());
    drop(deployment);
    Ok((info, import, runs))
}

/// `--compare`: rounds of fresh deployments of each named binary, interleaved, so that a
/// noisy machine's drift falls on every binary alike.
fn compare(args: &FhirArgs, settings: &Settings, steps: &mut Steps) -> Result<()> {
    let variants = args
        .compare
        .iter()
        .map(|v| {
            let (name, path) = v
                .split_once('=')
                .with_context(|| format!("--compare wants NAME=PATH, not `{v}`"))?;
            let path = PathBuf::from(path);
            ensure!(
                path.is_file(),
                "--compare {name}: {} is not a file",
                path.display()
            );
            Ok((name.to_owned(), path))
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(variants.len() >= 2, "--compare needs at least two binaries");
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    // rates[variant][scenario][round], and the server's CPU µs per request alike
    let mut rates = vec![vec![Vec::new(); settings.scenarios.len()]; variants.len()];
    let mut cpu_us = vec![vec![Vec::new(); settings.scenarios.len()]; variants.len()];
    let mut info = None;
    for round in 0..args.rounds {
        for k in 0..variants.len() {
            let v = (k + round) % variants.len();
            let (name, bin) = &variants[v];
            eprintln!("\n==> round {} of {}: {name}", round + 1, args.rounds);
            let (i, import, runs) = deploy_and_measure(args, settings, steps, bin.clone(), None)?;
            check_failures(&import, &runs)?;
            for (s, m) in runs.iter().enumerate() {
                rates[v][s].push(m.requests_per_s());
                cpu_us[v][s].push(m.server_cpu_us_per_request());
            }
            info.get_or_insert(i);
        }
    }
    let info = info.context("no round ran")?;
    println!(
        "\n{}",
        report::comparison(&info, &variants, &settings.scenarios, &rates, &cpu_us)
    );
    Ok(())
}

/// The release binary's path.
fn release_binary() -> Result<PathBuf> {
    let bin = deploy::target_dir(&repo_root())
        .join("release")
        .join("caldicott");
    ensure!(
        bin.is_file(),
        "{} is not there (build it: cargo build --release --bin caldicott)",
        bin.display()
    );
    Ok(bin)
}

/// Starts `serve` and waits until `/healthz` answers 200 over TLS.
fn start_server(deployment: &Deployment, runtime: &tokio::runtime::Runtime) -> Result<SocketAddr> {
    let addr = deployment.serve()?;
    let target = Target::new(addr, &deployment.cert_pem())?;
    let host = HeaderValue::try_from(format!("localhost:{}", addr.port()))?;
    let request = || {
        hyper::Request::get("/healthz")
            .header(hyper::header::HOST, host.clone())
            .body(http_body_util::Full::default())
            .context("cannot build the /healthz request")
    };
    runtime.block_on(load::wait_healthy(&target, request, HEALTH_TIMEOUT, || {
        deployment.server_running()
    }))?;
    Ok(addr)
}

/// Runs one scenario: warm-up, then the measured window.
fn run_scenario(
    runtime: &tokio::runtime::Runtime,
    target: &Arc<Target>,
    shared: &Shared,
    settings: &Settings,
    scenario: Scenario,
    seed: u64,
    server_pid: Option<u32>,
) -> Result<Measured> {
    let sources = (0..settings.concurrency)
        .map(|worker| RequestSource::new(shared, scenario, seed ^ worker as u64))
        .collect();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(settings.warmup);
    let end = measure_from + Duration::from_secs_f64(settings.seconds);
    let window = Window { measure_from, end };
    // The server's CPU time when the window opens, read on a thread of its own so the load
    // runs undisturbed.
    let cpu_at_start = server_pid.map(|pid| {
        std::thread::spawn(move || {
            std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
            deploy::process_cpu(pid)
        })
    });
    let tally = runtime.block_on(load::run(Arc::clone(target), sources, window))?;
    let cpu_at_end = server_pid.and_then(deploy::process_cpu);
    let cpu_at_start = cpu_at_start.and_then(|t| t.join().ok()).flatten();
    let server_cpu = match (cpu_at_start, cpu_at_end) {
        (Some(a), Some(b)) => b.checked_sub(a),
        _ => None,
    };
    // Requests sent before `end` are waited for: the window stretches to the last answer.
    let last = tally.last_finish.unwrap_or(end).max(end);
    let seconds = last.duration_since(measure_from).as_secs_f64();
    Ok(Measured::new(
        scenario,
        seconds,
        tally,
        scenario.resources_per_request(settings.bundle_size),
        server_cpu,
    ))
}

fn run_info(args: &FhirArgs, settings: &Settings, workload: &Workload, pg: bool) -> RunInfo {
    RunInfo {
        command: command_line(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model().unwrap_or_else(|| "CPU model unknown".to_owned()),
        client_threads: settings.client_threads,
        database: if pg { "PostgreSQL" } else { "SQLite" },
        code: capture(
            Command::new("git")
                .args(["describe", "--always", "--dirty"])
                .current_dir(repo_root()),
        )
        .ok(),
        patients: settings.patients,
        seed: args.seed,
        resources: workload.resources,
        concurrency: settings.concurrency,
        seconds: settings.seconds,
        warmup: settings.warmup,
        bundle_size: settings.bundle_size,
    }
}

/// `cargo xtask ...` as typed, with `--header` values and database passwords hidden.
fn command_line() -> String {
    let mut out = String::from("cargo xtask");
    let mut previous = String::new();
    for arg in env::args().skip(1) {
        let shown = match previous.as_str() {
            "--header" => redact_header(&arg),
            "--database" => redact_url(&arg),
            _ => match arg.split_once('=') {
                Some(("--header", h)) => format!("--header={}", redact_header(h)),
                Some(("--database", u)) => format!("--database={}", redact_url(u)),
                _ => arg.clone(),
            },
        };
        out.push(' ');
        if shown.contains(|c: char| c.is_whitespace() || "'\"|&;$".contains(c)) {
            out.push('\'');
            out.push_str(&shown.replace('\'', r"'\''"));
            out.push('\'');
        } else {
            out.push_str(&shown);
        }
        previous = arg;
    }
    out
}

fn redact_header(h: &str) -> String {
    match h.split_once(':') {
        Some((name, _)) => format!("{name}: …"),
        None => "…".to_owned(),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:…@host/db`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:…@{host}"),
        None => url.to_owned(),
    }
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// An error naming every scenario with more than 1% failed requests.
fn check_failures(import: &Imported, runs: &[Measured]) -> Result<()> {
    let bad: Vec<String> = runs
        .iter()
        .filter(|r| !r.is_valid())
        .map(|r| {
            format!(
                "{} ({} of {} failed)",
                r.scenario.name(),
                r.tally.failed(),
                r.total()
            )
        })
        .collect();
    if !bad.is_empty() {
        bail!(
            "more than {}% of requests failed in: {}; the figures above measure errors, not the API",
            100.0 * MAX_ERROR_SHARE,
            bad.join(", ")
        );
    }
    ensure!(import.resources > 0, "the import loaded nothing");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_shown() {
        assert_eq!(
            redact_header("Authorization: Bearer abc"),
            "Authorization: …"
        );
        assert_eq!(
            redact_url("postgres://me:pw@db:5432/x"),
            "postgres://me:…@db:5432/x"
        );
        assert_eq!(redact_url("postgres://me@db/x"), "postgres://me@db/x");
    }

    #[test]
    fn headers_parse() {
        let h = parse_headers(&["X-Test: 1 2".to_owned()]).unwrap();
        assert_eq!(h[0].0, "x-test");
        assert_eq!(h[0].1, "1 2");
        assert!(parse_headers(&["no colon".to_owned()]).is_err());
    }
}
