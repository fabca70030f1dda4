//! Our engine side by side with anjana (IFCA's Python anonymisation framework, PyPI) on ARX's
//! Adult benchmark, and a 1,000,000-row release from file to file (harness = false; run in
//! release; `cargo xtask bench anonymise` runs it after `benches/anonymise.rs` and makes the
//! Python venv it needs):
//!
//! ```text
//! cargo bench -p caldicott-deid --bench versus_anjana                  # both parts
//! cargo bench -p caldicott-deid --bench versus_anjana -- anjana [--anjana-runs N]
//! cargo bench -p caldicott-deid --bench versus_anjana -- file [--file-rows N] [--file-dir DIR]
//! ```
//!
//! - **anjana**: ../shared/data/adult with examples/anonymise/adult-k5.toml (9 quasi-identifiers,
//!   ARX's hierarchies, k = 5, 0% suppression, non-uniform entropy). Our Flash search is timed
//!   101 times with the data prepared (loading excluded, as ARX reports it) and 21 times from
//!   the files (CSV, hierarchies, encoding, search). Then tests/python/anjana_bench.py, with
//!   the interpreter in `CALDICOTT_BENCH_PYTHON` (the venv pyenv-bench in ~/.cache/caldicott-tools, pinned by
//!   tests/python/bench-requirements.txt), times anjana's `k_anonymity` on the same files, k
//!   and suppression limit, both ways, and computes one set of loss figures with one piece of
//!   Python for both released tables. This bench also finds the full-domain transformation
//!   anjana's table is (checking every row against the hierarchies) and evaluates it with our
//!   metric code, so each loss figure is computed twice, independently. Without the variable
//!   the anjana half is skipped with a message.
//! - **file**: end to end as the CLI does it: 1,000,000 generated rows (an identifier, 8
//!   quasi-identifiers, a sensitive column; generated into a temporary CSV with a TOML policy
//!   and CSV hierarchies, not timed) are read, searched with Flash and written by
//!   [`anonymise_csv`] in a child process (this program run again), whose wall time and peak
//!   resident memory (VmHWM) are those of the release alone. A second child then does the
//!   same steps one by one (read, encode, search, write) to show where the time goes.
//!
//! Each part prints whether the issue's target is met.

use std::io::BufWriter;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use caldicott_deid::{
    Algorithm, Anonymiser, HierarchySpec, Policy, Table, UtilityMetric, anonymise_csv,
    load_hierarchies, read_csv,
};
use serde_json::Value;

/// The argument that makes this program the end-to-end child.
const CHILD: &str = "--end-to-end-child";
/// The argument that makes this program the child that times the same steps one by one.
const PHASES_CHILD: &str = "--phases-child";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let Some(i) = args.iter().position(|a| a == CHILD) {
        child(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == PHASES_CHILD) {
        phases_child(Path::new(&args[i + 1]));
        return;
    }
    let number = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let wants = |name: &str| {
        !args.iter().any(|a| a == "anjana" || a == "file") || args.iter().any(|a| a == name)
    };
    if cfg!(debug_assertions) {
        println!("note: built without optimisations; run `cargo bench` for figures");
    }
    // The machine is shared (2 cores): its load says how far to trust the absolute figures.
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if wants("anjana") {
        versus_anjana(number("--anjana-runs", 5));
    }
    if wants("file") {
        let keep = args
            .iter()
            .position(|a| a == "--file-dir")
            .and_then(|i| args.get(i + 1))
            .map(std::path::PathBuf::from);
        file_to_file(number("--file-rows", 1_000_000), keep.as_deref());
    }
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// min / p10 / median / p90 / max of durations, in milliseconds.
struct Spread {
    sorted: Vec<f64>,
}

impl Spread {
    fn new(times: &[Duration]) -> Self {
        let mut sorted: Vec<f64> = times.iter().map(|&d| ms(d)).collect();
        sorted.sort_by(f64::total_cmp);
        Spread { sorted }
    }
    fn at(&self, q: f64) -> f64 {
        self.sorted[((self.sorted.len() - 1) as f64 * q).round() as usize]
    }
    fn median(&self) -> f64 {
        self.at(0.5)
    }
    fn show(&self) -> String {
        format!(
            "median {:.2} ms (min {:.2}, p10 {:.2}, p90 {:.2}, max {:.2}; {} runs)",
            self.median(),
            self.at(0.0),
            self.at(0.1),
            self.at(0.9),
            self.at(1.0),
            self.sorted.len()
        )
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

// ---------------------------------------------------------------------------------------
// Adult, side by side with anjana

fn versus_anjana(anjana_runs: usize) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let dir = root.join("../shared/data/adult");
    let input = dir.join("adult.csv");
    if !input.is_file() {
        println!("versus anjana: SKIPPED: ../shared/data/adult not found");
        return;
    }
    let policy = Policy::from_toml_file(&root.join("examples/anonymise/adult-k5.toml")).unwrap();
    let k = policy.privacy.min_class_size();
    let suppression_percent = policy.suppression_limit * 100.0;

    // Ours, loading included: everything from the files on each run.
    let mut with_load = Vec::new();
    let mut load_only = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let (table, _) = read_csv(&input, None, &[]).unwrap();
        let hierarchies = load_hierarchies(&policy, Some(&dir)).unwrap();
        let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
        load_only.push(t.elapsed());
        let s = anonymiser.search(Algorithm::Flash).unwrap();
        std::hint::black_box(&s);
        with_load.push(t.elapsed());
    }
    // Ours, loading excluded: the search on the prepared table.
    let (table, _) = read_csv(&input, None, &[]).unwrap();
    let hierarchies = load_hierarchies(&policy, Some(&dir)).unwrap();
    let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
    let mut search = Vec::new();
    let mut solution = None;
    for _ in 0..101 {
        let s = anonymiser.search(Algorithm::Flash).unwrap();
        search.push(s.search_time);
        solution = Some(s);
    }
    let solution = solution.unwrap();
    let search = Spread::new(&search);
    let with_load = Spread::new(&with_load);
    let load_only = Spread::new(&load_only);
    let qis = anonymiser.quasi_identifiers();
    println!(
        "versus anjana: Adult, {} rows, {} quasi-identifiers, k = {k}, suppression {suppression_percent}%, lattice {} nodes",
        table.num_rows(),
        qis.len(),
        anonymiser.lattice_size()
    );
    println!(
        "  ours   (caldicott-deid Flash), loading excluded: {}",
        search.show()
    );
    println!(
        "  ours   (caldicott-deid Flash), loading included: {} [of which loading: median {:.2} ms]",
        with_load.show(),
        load_only.median()
    );
    println!(
        "  ours: levels {:?}, non-uniform entropy {:.4}, {} nodes checked",
        solution.levels, solution.value, solution.nodes_checked
    );
    println!(
        "  target < 30 ms (loading excluded): {}",
        met(search.median() < 30.0)
    );

    let Some(python) = std::env::var_os("CALDICOTT_BENCH_PYTHON") else {
        println!(
            "versus anjana: anjana SKIPPED: CALDICOTT_BENCH_PYTHON is not set (`cargo xtask bench anonymise` sets it to the venv pyenv-bench of the tools cache, made from tests/python/bench-requirements.txt)"
        );
        return;
    };

    // Our release, written as the input is spelled (`;`), for the Python side to measure.
    let work = tempfile::tempdir().unwrap();
    let ours_csv = work.path().join("ours.csv");
    let anjana_csv = work.path().join("anjana.csv");
    {
        let release = anonymiser.release(&solution);
        let file = std::fs::File::create(&ours_csv).unwrap();
        let mut w = csv::WriterBuilder::new()
            .delimiter(b';')
            .from_writer(BufWriter::new(file));
        w.write_record(release.header()).unwrap();
        release.for_each_row(|row| w.write_record(row)).unwrap();
        w.flush().unwrap();
    }

    let mut cmd = Command::new(&python);
    cmd.arg(root.join("tests/python/anjana_bench.py"))
        .arg("--input")
        .arg(&input)
        .args(["--sep", ";", "--k", &k.to_string()])
        .args(["--suppression", &suppression_percent.to_string()])
        .args(["--runs", &anjana_runs.to_string()])
        .args(["--runs-with-load", &anjana_runs.div_ceil(2).to_string()])
        .arg("--out")
        .arg(&anjana_csv)
        .arg("--ours")
        .arg(&ours_csv);
    for q in &qis {
        let Some(HierarchySpec::Csv(file)) = policy.attribute(q).and_then(|a| a.hierarchy.clone())
        else {
            panic!("{q}: the comparison needs a CSV hierarchy (anjana takes value lists)");
        };
        let mut arg = std::ffi::OsString::from(format!("{q}="));
        arg.push(dir.join(file));
        cmd.arg("--qi").arg(arg);
    }
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot start the bench Python");
    assert!(
        output.status.success(),
        "tests/python/anjana_bench.py failed: {}",
        output.status
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("anjana_bench.py JSON");

    // Which full-domain transformation anjana's table is, checked on every row.
    let (theirs, _) = read_csv(&anjana_csv, Some(b';'), &[]).unwrap();
    let their_levels = levels_of(&table, &theirs, &qis, &hierarchies);
    let ev_ours = anonymiser.evaluate(&solution.levels);
    let ev_theirs = anonymiser.evaluate(&their_levels);

    let a_excl = report["loading_excluded"]["median_ms"].as_f64().unwrap();
    let a_incl = report["loading_included"]["median_ms"].as_f64().unwrap();
    let show = |key: &str| {
        let r = &report[key];
        format!(
            "median {:.0} ms (min {:.0}, max {:.0}; {} runs)",
            r["median_ms"].as_f64().unwrap(),
            r["min_ms"].as_f64().unwrap(),
            r["max_ms"].as_f64().unwrap(),
            r["runs"]
        )
    };
    println!(
        "  anjana {} (Python {}), loading excluded: {}",
        report["anjana_version"].as_str().unwrap_or("?"),
        report["python"].as_str().unwrap_or("?"),
        show("loading_excluded")
    );
    println!("  anjana, loading included: {}", show("loading_included"));
    println!(
        "  anjana: levels {:?} (its own get_transformation: {}), {} of {} rows suppressed",
        their_levels, report["levels"], report["suppressed_rows"], report["rows"]
    );
    let ratio_excl = a_excl / search.median();
    let ratio_incl = a_incl / with_load.median();
    println!(
        "  speed: ours {ratio_excl:.0}x faster loading excluded, {ratio_incl:.0}x loading included (medians)"
    );

    let loss = &report["loss"];
    let f = |who: &str, key: &str| loss[who][key].as_f64().unwrap();
    println!(
        "  information loss, one Python function over both released tables (lower is better):"
    );
    for (key, label) in [
        ("non_uniform_entropy", "non-uniform entropy (bits)"),
        ("discernibility", "discernibility"),
        ("average_class_size_metric", "average class size / k"),
        ("classes", "equivalence classes (higher is better)"),
        ("min_class_size", "smallest class"),
        ("pycanon_k", "k by pycanon"),
    ] {
        println!(
            "    {label:<40} ours {:>16.4}  anjana {:>16.4}",
            f("ours", key),
            f("anjana", key)
        );
    }
    println!("  information loss, our metric code on each transformation (lower is better):");
    for (label, a, b) in [
        (
            "non-uniform entropy (bits)",
            ev_ours.non_uniform_entropy,
            ev_theirs.non_uniform_entropy,
        ),
        ("ARX loss (0..1)", ev_ours.loss, ev_theirs.loss),
        (
            "discernibility",
            ev_ours.discernibility,
            ev_theirs.discernibility,
        ),
    ] {
        println!("    {label:<40} ours {a:>16.4}  anjana {b:>16.4}");
    }
    println!(
        "    {:<40} ours {:?}  anjana {:?}",
        "ARX loss per attribute",
        round4(&ev_ours.loss_per_attribute),
        round4(&ev_theirs.loss_per_attribute)
    );
    // anjana's transformation is one node of the same lattice, so the optimum under any
    // metric can be no worse than it: shown by searching for each metric in turn.
    for (metric, label) in [
        (UtilityMetric::Loss, "ARX loss (0..1)"),
        (UtilityMetric::Discernibility, "discernibility"),
    ] {
        let mut other = policy.clone();
        other.metric = metric;
        let a = Anonymiser::new(&table, &other, &hierarchies).unwrap();
        let s = a.search(Algorithm::Flash).unwrap();
        println!(
            "    {label:<40} our optimum for that metric {:.4} at levels {:?} (anjana {:.4})",
            s.value,
            s.levels,
            a.evaluate(&their_levels).value
        );
    }
    // The two computations of the same figure must agree, or one of them is wrong.
    let agree = |x: f64, y: f64| (x - y).abs() <= 1e-6 * x.abs().max(1.0);
    assert!(
        agree(
            f("ours", "non_uniform_entropy"),
            ev_ours.non_uniform_entropy
        ) && agree(
            f("anjana", "non_uniform_entropy"),
            ev_theirs.non_uniform_entropy
        ) && agree(f("ours", "discernibility"), ev_ours.discernibility)
            && agree(f("anjana", "discernibility"), ev_theirs.discernibility),
        "the Python and the Rust loss figures disagree"
    );
    let k_ok = f("ours", "pycanon_k") >= k as f64 && f("anjana", "pycanon_k") >= k as f64;
    let less_loss = ev_ours.non_uniform_entropy <= ev_theirs.non_uniform_entropy;
    println!(
        "  both releases {k}-anonymous by pycanon: {}; target >= 50x anjana (loading excluded) with <= information loss (non-uniform entropy): {}",
        if k_ok { "yes" } else { "NO" },
        met(ratio_excl >= 50.0 && less_loss && k_ok)
    );
}

fn round4(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1e4).round() / 1e4).collect()
}

/// The level of each quasi-identifier such that every released value is its original's label
/// at that level (the lowest such level); panics when a column is no full-domain
/// generalisation of the input.
fn levels_of(
    original: &Table,
    released: &Table,
    qis: &[&str],
    hierarchies: &caldicott_deid::Hierarchies,
) -> Vec<u8> {
    assert_eq!(
        original.num_rows(),
        released.num_rows(),
        "row counts differ"
    );
    qis.iter()
        .map(|q| {
            let h = &hierarchies[*q];
            let (co, cr) = (
                original.column_index(q).unwrap(),
                released.column_index(q).unwrap(),
            );
            (0..h.levels())
                .find(|&l| {
                    (0..original.num_rows()).all(|r| {
                        h.chain(original.value(r, co))
                            .is_some_and(|c| c[l] == released.value(r, cr))
                    })
                })
                .unwrap_or_else(|| panic!("{q}: the released column is no level of its hierarchy"))
                as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1,000,000 rows, file to file

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const AREAS: [&str; 30] = [
    "LS", "M", "B", "SW", "E", "N", "NW", "SE", "W", "EC", "WC", "BS", "CF", "G", "EH", "L", "S",
    "NE", "NG", "LE", "CB", "OX", "RG", "BN", "PL", "EX", "TR", "YO", "HU", "DN",
];
const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
const ETHNICITY: [(&str, &str); 17] = [
    ("White British", "White"),
    ("White Irish", "White"),
    ("White Gypsy or Irish Traveller", "White"),
    ("White Other", "White"),
    ("Mixed White and Black Caribbean", "Mixed"),
    ("Mixed White and Black African", "Mixed"),
    ("Mixed White and Asian", "Mixed"),
    ("Mixed Other", "Mixed"),
    ("Asian Indian", "Asian"),
    ("Asian Pakistani", "Asian"),
    ("Asian Bangladeshi", "Asian"),
    ("Asian Chinese", "Asian"),
    ("Asian Other", "Asian"),
    ("Black African", "Black"),
    ("Black Caribbean", "Black"),
    ("Black Other", "Black"),
    ("Other", "Other"),
];
const MARITAL: [(&str, &str); 6] = [
    ("single", "unpartnered"),
    ("married", "partnered"),
    ("civil partnership", "partnered"),
    ("divorced", "unpartnered"),
    ("widowed", "unpartnered"),
    ("separated", "unpartnered"),
];
const SMOKING: [&str; 4] = ["never", "former", "current", "unknown"];
const SEX: [&str; 3] = ["F", "M", "U"];
const DIAGNOSES: [&str; 8] = [
    "asthma",
    "diabetes",
    "copd",
    "hypertension",
    "ckd",
    "af",
    "depression",
    "none",
];

/// The policy of the synthetic release, as a user would write it.
const SYNTHETIC_POLICY: &str = r#"
metric = "non-uniform-entropy"
suppression_limit = 0.0

[privacy]
model = "k-anonymity"
k = 5

[[attribute]]
name = "nhs_number"
kind = "identifier"

[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = { intervals = [5, 10, 20] }

[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = { csv = "sex.csv" }

[[attribute]]
name = "postcode"
kind = "quasi-identifier"
hierarchy = "postcode"

[[attribute]]
name = "dob"
kind = "quasi-identifier"
hierarchy = { date = "yyyy-mm-dd" }

[[attribute]]
name = "ethnicity"
kind = "quasi-identifier"
hierarchy = { csv = "ethnicity.csv" }

[[attribute]]
name = "imd_decile"
kind = "quasi-identifier"
hierarchy = { intervals = [2, 10] }

[[attribute]]
name = "marital"
kind = "quasi-identifier"
hierarchy = { csv = "marital.csv" }

[[attribute]]
name = "smoking"
kind = "quasi-identifier"
hierarchy = { csv = "smoking.csv" }

[[attribute]]
name = "diagnosis"
kind = "sensitive"
"#;

/// Writes `rows` synthetic records, the policy and its CSV hierarchies into `dir`.
fn write_synthetic(dir: &Path, rows: usize) {
    std::fs::write(dir.join("policy.toml"), SYNTHETIC_POLICY).unwrap();
    let write = |name: &str, lines: Vec<String>| {
        std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
    };
    write("sex.csv", SEX.iter().map(|s| format!("{s};*")).collect());
    write(
        "smoking.csv",
        SMOKING.iter().map(|s| format!("{s};*")).collect(),
    );
    write(
        "ethnicity.csv",
        ETHNICITY
            .iter()
            .map(|(v, g)| format!("{v};{g};*"))
            .collect(),
    );
    write(
        "marital.csv",
        MARITAL.iter().map(|(v, g)| format!("{v};{g};*")).collect(),
    );

    let file = std::fs::File::create(dir.join("input.csv")).unwrap();
    let mut w = BufWriter::with_capacity(1 << 20, file);
    writeln!(
        w,
        "nhs_number,age,sex,postcode,dob,ethnicity,imd_decile,marital,smoking,diagnosis"
    )
    .unwrap();
    let mut rng = Rng(0x00c0_ffee);
    for i in 0..rows {
        let year = 1930 + rng.below(90);
        let month = 1 + rng.below(12);
        let day = 1 + rng.below(28);
        // Drawn in the order benches/anonymise.rs draws them, so both use the same rows.
        let postcode = format!(
            "{}{} {}{}{}",
            rng.pick(&AREAS),
            1 + rng.below(20),
            rng.below(10),
            UNIT[rng.below(20) as usize] as char,
            UNIT[rng.below(20) as usize] as char
        );
        let sex = rng.pick(&SEX);
        writeln!(
            w,
            // 999 numbers are the NHS's test range: never a real patient.
            "999{i:07},{},{sex},{postcode},{year:04}-{month:02}-{day:02},{},{},{},{},{}",
            2024 - year,
            ETHNICITY[rng.below(17) as usize].0,
            1 + rng.below(10),
            MARITAL[rng.below(6) as usize].0,
            rng.pick(&SMOKING),
            rng.pick(&DIAGNOSES),
        )
        .unwrap();
    }
    w.flush().unwrap();
}

/// `keep`: a directory to work in and leave behind (for profiling the children by hand),
/// instead of a temporary one.
fn file_to_file(rows: usize, keep: Option<&Path>) {
    let temp = tempfile::tempdir().unwrap();
    let dir = match keep {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            d
        }
        None => temp.path(),
    };
    let t = Instant::now();
    write_synthetic(dir, rows);
    let generate = t.elapsed();
    let input_mb = std::fs::metadata(dir.join("input.csv")).unwrap().len() as f64 / 1e6;

    let t = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(CHILD)
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run the end-to-end child");
    let wall = t.elapsed();
    assert!(out.status.success(), "the end-to-end child failed");
    let child: Value = serde_json::from_slice(&out.stdout).expect("child JSON");
    let inside_ms = child["ms"].as_f64().unwrap();
    let peak_mib = child["peak_rss_kib"].as_f64().unwrap() / 1024.0;
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let output_mb = std::fs::metadata(dir.join("output.csv")).unwrap().len() as f64 / 1e6;
    println!(
        "file to file: {rows} rows x 8 quasi-identifiers, k = 5, 0% suppression ({input_mb:.0} MB CSV in, generated in {:.1} s, not counted)",
        generate.as_secs_f64()
    );
    println!(
        "  read + Flash search + write ({output_mb:.0} MB CSV + JSON report), one process: {:.2} s inside anonymise_csv, {:.2} s process wall time; peak RSS {peak_mib:.0} MiB",
        inside_ms / 1e3,
        wall.as_secs_f64()
    );
    let phases = Command::new(std::env::current_exe().unwrap())
        .arg(PHASES_CHILD)
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run the phases child");
    assert!(phases.status.success(), "the phases child failed");
    println!(
        "  the same steps one by one in a second process, ms (not the headline): {}",
        String::from_utf8_lossy(&phases.stdout).trim()
    );
    println!(
        "  transformation {}, smallest class {}",
        report["transformation"], report["min_class_size"]
    );
    println!(
        "  target < 5 s and < 1 GiB: {}",
        met(wall.as_secs_f64() < 5.0 && peak_mib < 1024.0)
    );
}

/// The child: one release from file to file, as `caldicott anonymise` does it; prints its time
/// and the process's peak resident memory as JSON.
fn child(dir: &Path) {
    let t = Instant::now();
    let policy = Policy::from_toml_file(&dir.join("policy.toml")).unwrap();
    anonymise_csv(
        &dir.join("input.csv"),
        &policy,
        Some(dir),
        &dir.join("output.csv"),
        &dir.join("report.json"),
    )
    .unwrap();
    println!(
        "{}",
        serde_json::json!({ "ms": ms(t.elapsed()), "peak_rss_kib": peak_rss_kib() })
    );
}

/// The second child: the same steps one by one, for where the time goes (not the headline).
fn phases_child(dir: &Path) {
    let policy = Policy::from_toml_file(&dir.join("policy.toml")).unwrap();
    let t = Instant::now();
    let (table, _) = read_csv(&dir.join("input.csv"), None, &["nhs_number"]).unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let hierarchies = load_hierarchies(&policy, Some(dir)).unwrap();
    let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
    let prepare = t.elapsed();
    let solution = anonymiser.search(Algorithm::Flash).unwrap();
    let t = Instant::now();
    let release = anonymiser.release(&solution);
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(dir.join("output-again.csv")).unwrap(),
    ));
    w.write_record(release.header()).unwrap();
    release.for_each_row(|row| w.write_record(row)).unwrap();
    w.flush().unwrap();
    let write = t.elapsed();
    println!(
        "{}",
        serde_json::json!({
            "read_csv": ms(read),
            "load_hierarchies_encode_group": ms(prepare),
            "search": ms(solution.search_time),
            "nodes_checked": solution.nodes_checked,
            "nodes_grouped": solution.nodes_grouped,
            "nodes_refused_by_witness": solution.nodes_refused_by_witness,
            "release_and_write": ms(write),
        })
    );
}

fn peak_rss_kib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
