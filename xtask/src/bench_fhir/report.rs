//! The figures of a run, set beside issue 3's targets and the peers' published per-core
//! figures, as a Markdown table.

use std::fmt::Write as _;

use super::Scenario;
use super::deploy::Imported;
use super::load::Tally;

/// More failed requests than this share fails the bench.
pub const MAX_ERROR_SHARE: f64 = 0.01;

/// One scenario's measured window.
pub struct Measured {
    pub scenario: Scenario,
    pub seconds: f64,
    pub tally: Tally,
    /// Resources written by one successful request, for scenarios that write.
    pub resources_per_request: Option<usize>,
    /// The server's CPU time (user + system, all threads) over the measured window, when it
    /// could be read.
    pub server_cpu: Option<std::time::Duration>,
}

/// Latency percentiles of the successful requests, in milliseconds.
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Measured {
    /// Sorts the latencies (call once, before reading percentiles).
    pub fn new(
        scenario: Scenario,
        seconds: f64,
        mut tally: Tally,
        resources_per_request: Option<usize>,
        server_cpu: Option<std::time::Duration>,
    ) -> Self {
        tally.latencies_us.sort_unstable();
        Self {
            scenario,
            seconds,
            tally,
            resources_per_request,
            server_cpu,
        }
    }

    /// The server's CPU time per request answered in the window, in microseconds: steadier
    /// than the rate on a noisy machine, since it does not count time the server waited
    /// for a CPU the load generator or another process held.
    pub fn server_cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.total() > 0).then(|| cpu.as_secs_f64() * 1e6 / self.total() as f64)
    }

    pub fn total(&self) -> u64 {
        self.tally.ok() + self.tally.failed()
    }

    /// Successful requests per second.
    pub fn requests_per_s(&self) -> f64 {
        self.tally.ok() as f64 / self.seconds
    }

    pub fn resources_per_s(&self) -> Option<f64> {
        self.resources_per_request
            .map(|n| n as f64 * self.requests_per_s())
    }

    pub fn error_share(&self) -> f64 {
        if self.total() == 0 {
            1.0
        } else {
            self.tally.failed() as f64 / self.total() as f64
        }
    }

    /// Whether the figures measure the API rather than its errors.
    pub fn is_valid(&self) -> bool {
        self.tally.ok() > 0 && self.error_share() <= MAX_ERROR_SHARE
    }

    pub fn latency(&self) -> Option<Latency> {
        let l = &self.tally.latencies_us;
        let at = |q: f64| {
            // Nearest rank.
            let rank = (q * l.len() as f64).ceil() as usize;
            f64::from(l[rank.clamp(1, l.len()) - 1]) / 1000.0
        };
        (!l.is_empty()).then(|| Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        })
    }

    /// One line for the progress output, and the failures below it.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: {} requests/s",
            self.scenario.name(),
            thousands(self.requests_per_s())
        );
        if let Some(r) = self.resources_per_s() {
            let _ = write!(out, ", {} resources/s", thousands(r));
        }
        if let Some(us) = self.server_cpu_us_per_request() {
            let _ = write!(out, "; server CPU {us:.0} µs per request");
        }
        if let Some(l) = self.latency() {
            let _ = write!(
                out,
                "; latency ms p50 {} p90 {} p99 {} max {}",
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            );
        }
        let _ = write!(
            out,
            "; {} ok, {} failed in {:.1} s; {} connections opened",
            thousands(self.tally.ok() as f64),
            thousands(self.tally.failed() as f64),
            self.seconds,
            self.tally.connections
        );
        if self.tally.ok() == 0 {
            let _ = write!(
                out,
                "\n!!! {}: NO REQUEST SUCCEEDED ({} failed): these figures measure errors, not the API",
                self.scenario.name(),
                thousands(self.tally.failed() as f64)
            );
        } else if !self.is_valid() {
            let _ = write!(
                out,
                "\n!!! {}: {:.1}% of requests FAILED (more than {}%)",
                self.scenario.name(),
                100.0 * self.error_share(),
                100.0 * MAX_ERROR_SHARE
            );
        }
        for (kind, n) in &self.tally.failures {
            let _ = write!(out, "\n    {n} × {kind}");
        }
        for sample in &self.tally.samples {
            let _ = write!(out, "\n    e.g. {sample}");
        }
        out
    }
}

/// What the table says about the run besides the rows.
pub struct RunInfo {
    pub command: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub client_threads: usize,
    pub database: &'static str,
    pub code: Option<String>,
    pub patients: usize,
    pub seed: u64,
    pub resources: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub bundle_size: usize,
}

/// The whole report, Markdown.
pub fn markdown(info: &RunInfo, import: &Imported, runs: &[Measured]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## FHIR API load (cargo xtask bench fhir)\n");
    let _ = writeln!(out, "- Command: `{}`", info.command);
    let _ = writeln!(
        out,
        "- Machine: {} CPUs (nproc), {}. The load generator ({} client thread{}) runs on the \
         same CPUs as the server: \"per core\" divides by all {} and so understates the server alone.",
        info.cpus,
        info.cpu_model,
        info.client_threads,
        if info.client_threads == 1 { "" } else { "s" },
        info.cpus
    );
    let _ = writeln!(out, "- Database: {}", info.database);
    if let Some(code) = &info.code {
        let _ = writeln!(out, "- Code: `{code}`");
    }
    let _ = writeln!(
        out,
        "- Data: {} synthetic patients (seed {}), {} resources; {} connections (HTTP/1.1 over \
         TLS, keep-alive); {} s measured per scenario after {} s of warm-up; transaction \
         Bundles of {} resources. Requests/s count successful requests only; latencies are \
         theirs.\n",
        thousands(info.patients as f64),
        info.seed,
        thousands(info.resources as f64),
        info.concurrency,
        info.seconds,
        info.warmup,
        info.bundle_size
    );
    out.push_str(
        "| scenario | requests/s | resources/s | per core | p50 ms | p90 ms | p99 ms | max ms \
         | failed | target (issue 3) | met? | peers, per core |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n");
    out.push_str(&import_row(info, import));
    for run in runs {
        out.push_str(&scenario_row(info, run));
    }
    let failed: Vec<&Measured> = runs.iter().filter(|r| r.tally.failed() > 0).collect();
    if !failed.is_empty() {
        out.push_str("\nFailures:\n");
        for run in failed {
            let _ = writeln!(out, "- {}:", run.scenario.name());
            for (kind, n) in &run.tally.failures {
                let _ = writeln!(out, "  - {n} × {kind}");
            }
            for sample in &run.tally.samples {
                let _ = writeln!(out, "  - e.g. `{}`", sample.replace('`', "'"));
            }
        }
    }
    out
}

fn import_row(info: &RunInfo, import: &Imported) -> String {
    let rate = import.resources as f64 / import.seconds;
    let per_core = rate / info.cpus as f64;
    let met = if rate >= 10_000.0 { "met" } else { "NOT met" };
    let own = import
        .reported_rate
        .map(|r| format!(" ({} by its own clock)", thousands(r)))
        .unwrap_or_default();
    format!(
        "| import: `caldicott import` of the file, one process, {} resources in {:.1} s{own} \
         | | {} | {} resources/s | | | | | 0 | ≥ 10,000 resources/s | {met} | {} |\n",
        thousands(import.resources as f64),
        import.seconds,
        thousands(rate),
        thousands(per_core),
        Scenario::IMPORT_PEERS
    )
}

fn scenario_row(info: &RunInfo, run: &Measured) -> String {
    let s = run.scenario;
    let requests = run.requests_per_s();
    let resources = run.resources_per_s();
    let per_core = match resources {
        Some(r) => format!("{} resources/s", thousands(r / info.cpus as f64)),
        None => format!("{} req/s", thousands(requests / info.cpus as f64)),
    };
    let latency = run.latency().map_or_else(
        || "| | | | ".to_owned(),
        |l| {
            format!(
                "| {} | {} | {} | {} ",
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            )
        },
    );
    let failed = if run.tally.failed() == 0 {
        "0".to_owned()
    } else {
        format!(
            "**{} ({:.1}%)**",
            thousands(run.tally.failed() as f64),
            100.0 * run.error_share()
        )
    };
    let goal = s.goal();
    let met = if !run.is_valid() {
        "**invalid: failures**"
    } else {
        match &goal {
            None => "—",
            Some(g) if g.is_met(requests, resources, run.latency()) => "met",
            Some(_) => "NOT met",
        }
    };
    format!(
        "| {}: {} | {} | {} | {per_core} {latency}| {failed} | {} | {met} | {} |\n",
        s.name(),
        s.describe(),
        thousands(requests),
        resources.map(thousands).unwrap_or_default(),
        goal.as_ref().map_or("—", |g| g.text),
        s.peers()
    )
}

/// The `--compare` report: per scenario, each binary's requests/s in every round, the
/// median, and how much lower (or higher) the median is than the first binary's.
/// `rates[variant][scenario][round]`.
pub fn comparison(
    info: &RunInfo,
    variants: &[(String, std::path::PathBuf)],
    scenarios: &[Scenario],
    rates: &[Vec<Vec<f64>>],
    cpu_us: &[Vec<Vec<Option<f64>>>],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## FHIR API load, binaries compared (cargo xtask bench fhir --compare)\n"
    );
    let _ = writeln!(out, "- Command: `{}`", info.command);
    let _ = writeln!(
        out,
        "- Machine: {} CPUs (nproc), {}; the load generator shares them. Database: {}.",
        info.cpus, info.cpu_model, info.database
    );
    let _ = writeln!(
        out,
        "- Each round deployed every binary afresh ({} synthetic patients, seed {}, {} resources) \
         and measured {} s per scenario after {} s of warm-up with {} connections; the order \
         rotates from round to round. Requests/s count successful requests only.",
        info.patients, info.seed, info.resources, info.seconds, info.warmup, info.concurrency
    );
    for (name, path) in variants {
        let _ = writeln!(out, "- `{name}`: {}", path.display());
    }
    let _ = writeln!(out);
    let as_known: Vec<Vec<Vec<Option<f64>>>> = rates
        .iter()
        .map(|v| {
            v.iter()
                .map(|s| s.iter().copied().map(Some).collect())
                .collect()
        })
        .collect();
    per_round_table(&mut out, variants, scenarios, &as_known, "req/s", thousands);
    let _ = writeln!(
        out,
        "\nThe server's CPU time per request (user + system, all its threads, from \
         `/proc/PID/stat` over the measured window), in µs:\n"
    );
    per_round_table(&mut out, variants, scenarios, cpu_us, "µs", |x| {
        format!("{x:.0}")
    });
    out
}

/// One table of `values[variant][scenario][round]`: each round, the median of the known
/// values (a round without one shows `—` and is left out) and the median's difference from
/// the first binary's.
fn per_round_table(
    out: &mut String,
    variants: &[(String, std::path::PathBuf)],
    scenarios: &[Scenario],
    values: &[Vec<Vec<Option<f64>>>],
    unit: &str,
    show: impl Fn(f64) -> String,
) {
    let rounds = values.first().and_then(|v| v.first()).map_or(0, Vec::len);
    let _ = write!(out, "| scenario | binary |");
    for r in 1..=rounds {
        let _ = write!(out, " round {r} |");
    }
    let first = variants.first().map_or("", |v| v.0.as_str());
    let _ = writeln!(out, " median {unit} | vs `{first}` |");
    let _ = write!(out, "|---|---|");
    for _ in 0..rounds {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out, "---:|---:|");
    for (s, scenario) in scenarios.iter().enumerate() {
        let known = |v: usize| -> Vec<f64> { values[v][s].iter().flatten().copied().collect() };
        let reference = values
            .first()
            .map(|_| known(0))
            .filter(|k| !k.is_empty())
            .map(|k| median(&k));
        for (v, (name, _)) in variants.iter().enumerate() {
            let _ = write!(out, "| {} | `{name}` |", scenario.name());
            for x in &values[v][s] {
                let cell = x.map_or_else(|| "—".to_owned(), &show);
                let _ = write!(out, " {cell} |");
            }
            let here = known(v);
            if here.is_empty() {
                let _ = writeln!(out, " — | — |");
                continue;
            }
            let m = median(&here);
            let versus = match reference {
                Some(r) if v > 0 && r > 0.0 => format!("{:+.1}%", 100.0 * (m / r - 1.0)),
                _ => "—".to_owned(),
            };
            let _ = writeln!(out, " {} | {versus} |", show(m));
        }
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A target of issue 3 for one scenario.
pub struct Goal {
    pub text: &'static str,
    pub min_requests_per_s: Option<f64>,
    pub min_resources_per_s: Option<f64>,
    pub max_p99_ms: Option<f64>,
}

impl Goal {
    fn is_met(&self, requests: f64, resources: Option<f64>, latency: Option<Latency>) -> bool {
        self.min_requests_per_s.is_none_or(|min| requests >= min)
            && self
                .min_resources_per_s
                .is_none_or(|min| resources.is_some_and(|r| r >= min))
            && self
                .max_p99_ms
                .is_none_or(|max| latency.is_some_and(|l| l.p99 < max))
    }
}

/// `12,345` (rounded to a whole number).
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Milliseconds with two decimals below 10, one below 100, none above.
fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(super::median(&[]), 0.0);
    }

    #[test]
    fn comparison_gives_medians_and_differences() {
        let info = super::RunInfo {
            command: "cargo xtask bench fhir --compare a=/a --compare b=/b".into(),
            cpus: 2,
            cpu_model: "test".into(),
            client_threads: 1,
            database: "SQLite",
            code: None,
            patients: 10,
            seed: 1,
            resources: 100,
            concurrency: 4,
            seconds: 1.0,
            warmup: 0.0,
            bundle_size: 10,
        };
        let variants = vec![("a".to_owned(), "/a".into()), ("b".to_owned(), "/b".into())];
        let rates = vec![
            vec![vec![1000.0, 1100.0, 900.0]],
            vec![vec![950.0, 1000.0, 850.0]],
        ];
        let cpu = vec![
            vec![vec![Some(100.0), Some(120.0), Some(110.0)]],
            vec![vec![Some(130.0), None, Some(140.0)]],
        ];
        let t = super::comparison(&info, &variants, &[super::Scenario::Read], &rates, &cpu);
        assert!(
            t.contains("| read | `a` | 1,000 | 1,100 | 900 | 1,000 | — |"),
            "{t}"
        );
        assert!(
            t.contains("| read | `b` | 950 | 1,000 | 850 | 950 | -5.0% |"),
            "{t}"
        );
        // CPU per request: a round that could not be read shows as a dash and is left out.
        assert!(
            t.contains("| read | `a` | 100 | 120 | 110 | 110 | — |"),
            "{t}"
        );
        assert!(
            t.contains("| read | `b` | 130 | — | 140 | 135 | +22.7% |"),
            "{t}"
        );
    }

    use super::*;

    fn measured(latencies: &[u32], failures: u64) -> Measured {
        let mut tally = Tally {
            latencies_us: latencies.to_vec(),
            ..Tally::default()
        };
        if failures > 0 {
            tally.failures.insert("404".into(), failures);
        }
        Measured::new(Scenario::Read, 2.0, tally, None, None)
    }

    #[test]
    fn server_cpu_is_per_request_answered() {
        let mut m = measured(&[1000; 400], 100);
        assert_eq!(m.server_cpu_us_per_request(), None);
        m.server_cpu = Some(std::time::Duration::from_millis(50));
        // 50 ms over 500 requests, the failed ones included.
        assert_eq!(m.server_cpu_us_per_request(), Some(100.0));
    }

    #[test]
    fn this_process_has_spent_cpu() {
        // Busy for a moment, so that at least one clock tick is counted.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let cpu = super::super::deploy::process_cpu(std::process::id()).unwrap();
        assert!(cpu > std::time::Duration::ZERO);
        assert_eq!(super::super::deploy::process_cpu(u32::MAX), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(123.4), "123");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let m = measured(&(1..=100).map(|i| i * 1000).collect::<Vec<_>>(), 0);
        let l = m.latency().unwrap();
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(m.requests_per_s(), 50.0);
        assert!(m.is_valid());
    }

    #[test]
    fn failures_invalidate() {
        assert!(!measured(&[], 10).is_valid(), "all failed");
        assert!(!measured(&[], 0).is_valid(), "nothing happened");
        assert!(measured(&[1000; 99], 1).is_valid(), "1% is tolerated");
        assert!(!measured(&[1000; 98], 2).is_valid(), "2% is not");
        assert!(measured(&[], 3).summary().contains("NO REQUEST SUCCEEDED"));
    }
}
