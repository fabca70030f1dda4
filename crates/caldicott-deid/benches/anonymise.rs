//! De-identification benchmarks (harness = false; run in release):
//!
//! ```text
//! cargo bench -p caldicott-deid --bench anonymise                 # both
//! cargo bench -p caldicott-deid --bench anonymise -- adult        # Adult only
//! cargo bench -p caldicott-deid --bench anonymise -- synthetic [--rows N]
//! cargo bench -p caldicott-deid --bench anonymise -- --mondrian-rows N   # local recoding only
//! ```
//!
//! - **adult**: ../shared/data/adult with examples/anonymise/adult-k5.toml (9 quasi-identifiers,
//!   k = 5, 0% suppression, non-uniform entropy). Prints the load time (CSV, hierarchies,
//!   encoding, distinct rows), the Flash search time (best and median of 21 runs, loading
//!   excluded), nodes checked, and one exhaustive evaluation of all 12,960 nodes.
//! - **synthetic**: 1,000,000 generated rows (default) with an identifier, 8 quasi-identifiers
//!   (age bands, sex, full UK postcode, date of birth, ethnicity, deprivation decile, marital
//!   status, smoking) and a sensitive column, generated in memory; then end to end: encode,
//!   Flash, release, CSV written to a temporary file. Prints each phase, nodes checked and the
//!   process's peak resident memory (VmHWM).
//! - **mondrian** (`--mondrian-rows N`, or `mondrian` for 1,000,000; only when asked): local
//!   recoding (`algorithm = "local-recoding"`) of N synthetic rows made as for **synthetic**,
//!   written to a temporary CSV first (not counted), then timed end to end as the CLI runs it:
//!   read CSV, encode, partition, write CSV; partitioning alone is printed too, and the peak
//!   resident memory from the read on (VmHWM, reset after generation).

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use caldicott_deid::{
    Algorithm, Anonymiser, Attribute, AttributeKind, Hierarchies, Hierarchy, HierarchySpec, Policy,
    PrivacyModel, Recoding, SuppressedRows, Table, UtilityMetric, load_hierarchies, read_csv,
};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rows = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mondrian_rows = args
        .iter()
        .position(|a| a == "--mondrian-rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .or_else(|| args.iter().any(|a| a == "mondrian").then_some(1_000_000));
    let wants = |name: &str| {
        !args
            .iter()
            .any(|a| a == "adult" || a == "synthetic" || a == "mondrian")
            && mondrian_rows.is_none()
            || args.iter().any(|a| a == name)
    };
    if cfg!(debug_assertions) {
        println!("note: built without optimisations; run `cargo bench` for figures");
    }
    if wants("adult") {
        adult();
    }
    if wants("synthetic") {
        synthetic(rows);
    }
    if let Some(rows) = mondrian_rows {
        mondrian(rows);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn adult() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../../../shared/data/adult");
    if !dir.join("adult.csv").is_file() {
        println!("adult: SKIPPED: ../shared/data/adult not found");
        return;
    }
    let policy =
        Policy::from_toml_file(&manifest.join("../../examples/anonymise/adult-k5.toml")).unwrap();
    let t = Instant::now();
    let (table, _) = read_csv(&dir.join("adult.csv"), None, &[]).unwrap();
    let hierarchies = load_hierarchies(&policy, Some(&dir)).unwrap();
    let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
    let load = t.elapsed();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..21 {
        let s = anonymiser.search(Algorithm::Flash).unwrap();
        times.push(s.search_time);
        last = Some(s);
    }
    times.sort();
    let s = last.unwrap();
    println!(
        "adult: {} rows, {} distinct, lattice {} nodes; load {}",
        table.num_rows(),
        anonymiser.distinct_rows(),
        anonymiser.lattice_size(),
        ms(load)
    );
    println!(
        "adult: flash k=5 search best {} median {}, {} nodes checked ({} grouped, {} refused by a pair, {} by a witness, {} pair projections), levels {:?}, non-uniform entropy {:.10}",
        ms(times[0]),
        ms(times[times.len() / 2]),
        s.nodes_checked,
        s.nodes_grouped,
        s.nodes_refused_by_pair,
        s.nodes_refused_by_witness,
        s.projections,
        s.levels,
        s.value
    );
    let e = anonymiser.search(Algorithm::Exhaustive).unwrap();
    println!(
        "adult: exhaustive over {} nodes {}, same optimum: {}",
        e.nodes_checked,
        ms(e.search_time),
        e.levels == s.levels && e.value.to_bits() == s.value.to_bits()
    );

    // Occupation sensitive: k = 5, entropy and distinct 3-diversity, t-closeness (equal and
    // hierarchical), without and with 2% suppression (then not monotonic).
    for limit in [0.0, 0.02] {
        let mut policy = Policy::from_toml_file(
            &manifest.join("../../examples/anonymise/adult-ldiv-tclose.toml"),
        )
        .unwrap();
        policy.suppression_limit = limit;
        let hierarchies = load_hierarchies(&policy, Some(&dir)).unwrap();
        let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let s = anonymiser.search(Algorithm::Flash).unwrap();
            times.push(s.search_time);
            last = Some(s);
        }
        times.sort();
        let s = last.unwrap();
        println!(
            "adult: flash l/t {}% search best {} median {}, {} of {} nodes checked, levels {:?}",
            limit * 100.0,
            ms(times[0]),
            ms(times[times.len() / 2]),
            s.nodes_checked,
            s.lattice_nodes,
            s.levels
        );
    }
}

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

fn two_level(name: &str, pairs: &[(&str, &str)]) -> Hierarchy {
    Hierarchy::from_rows(
        name,
        pairs
            .iter()
            .map(|(v, g)| vec![v.to_string(), g.to_string(), "*".to_string()])
            .collect(),
    )
    .unwrap()
}

fn synthetic_policy() -> (Policy, Hierarchies) {
    let qi = |name: &str, h: HierarchySpec| Attribute {
        name: name.into(),
        kind: AttributeKind::QuasiIdentifier,
        hierarchy: Some(h),
        transform: None,
    };
    let csv = || HierarchySpec::Csv("in-memory".into());
    let policy = Policy {
        privacy: PrivacyModel::k_anonymity(5),
        suppression_limit: 0.0,
        metric: UtilityMetric::NonUniformEntropy,
        suppressed_rows: SuppressedRows::Star,
        algorithm: Recoding::Optimal,
        delimiter: None,
        attributes: vec![
            Attribute {
                name: "nhs_number".into(),
                kind: AttributeKind::Identifier,
                hierarchy: None,
                transform: None,
            },
            qi("age", HierarchySpec::Intervals(vec![5, 10, 20])),
            qi("sex", csv()),
            qi("postcode", HierarchySpec::Postcode),
            qi("dob", HierarchySpec::Date(caldicott_deid::DateFormat::Iso)),
            qi("ethnicity", csv()),
            qi("imd_decile", HierarchySpec::Intervals(vec![2, 10])),
            qi("marital", csv()),
            qi("smoking", csv()),
            Attribute {
                name: "diagnosis".into(),
                kind: AttributeKind::Sensitive,
                hierarchy: None,
                transform: None,
            },
        ],
        base_dir: None,
    };
    let mut h = Hierarchies::new();
    h.insert(
        "sex".into(),
        Hierarchy::from_rows(
            "sex",
            SEX.iter()
                .map(|s| vec![s.to_string(), "*".into()])
                .collect(),
        )
        .unwrap(),
    );
    h.insert("ethnicity".into(), two_level("ethnicity", &ETHNICITY));
    h.insert("marital".into(), two_level("marital", &MARITAL));
    h.insert(
        "smoking".into(),
        Hierarchy::from_rows(
            "smoking",
            SMOKING
                .iter()
                .map(|s| vec![s.to_string(), "*".into()])
                .collect(),
        )
        .unwrap(),
    );
    (policy, h)
}

fn synthetic_table(rows: usize) -> Table {
    let header = [
        "nhs_number",
        "age",
        "sex",
        "postcode",
        "dob",
        "ethnicity",
        "imd_decile",
        "marital",
        "smoking",
        "diagnosis",
    ]
    .map(String::from)
    .to_vec();
    let mut table = Table::new(header).unwrap();
    let mut rng = Rng(0x00c0_ffee);
    for _ in 0..rows {
        let year = 1930 + rng.below(90);
        let month = 1 + rng.below(12);
        let day = 1 + rng.below(28);
        let age = (2024 - year).to_string();
        let postcode = format!(
            "{}{} {}{}{}",
            rng.pick(&AREAS),
            1 + rng.below(20),
            rng.below(10),
            UNIT[rng.below(20) as usize] as char,
            UNIT[rng.below(20) as usize] as char
        );
        let row = [
            // The identifier is not kept, as `read_csv` does not keep identifier columns.
            String::new(),
            age,
            rng.pick(&SEX).to_string(),
            postcode,
            format!("{year:04}-{month:02}-{day:02}"),
            ETHNICITY[rng.below(17) as usize].0.to_string(),
            (1 + rng.below(10)).to_string(),
            MARITAL[rng.below(6) as usize].0.to_string(),
            rng.pick(&SMOKING).to_string(),
            rng.pick(&DIAGNOSES).to_string(),
        ];
        table.push_row(&row).unwrap();
    }
    table.finish();
    table
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn synthetic(rows: usize) {
    let total = Instant::now();
    let t = Instant::now();
    let table = synthetic_table(rows);
    let generate = t.elapsed();
    let (policy, hierarchies) = synthetic_policy();

    let t = Instant::now();
    let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
    let prepare = t.elapsed();
    let solution = anonymiser.search(Algorithm::Flash).unwrap();
    let t = Instant::now();
    let release = anonymiser.release(&solution);
    let out = tempfile::NamedTempFile::new().unwrap();
    {
        let mut w =
            csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 20, out.as_file()));
        w.write_record(release.header()).unwrap();
        release.for_each_row(|row| w.write_record(row)).unwrap();
        w.flush().unwrap();
    }
    let write = t.elapsed();
    let end_to_end = prepare + solution.search_time + write;
    let report = release.report();
    println!(
        "synthetic: {} rows x 8 quasi-identifiers, {} distinct, lattice {} nodes; generate {} (not counted)",
        rows,
        anonymiser.distinct_rows(),
        anonymiser.lattice_size(),
        ms(generate)
    );
    println!(
        "synthetic: encode+group {}, flash search {} ({} nodes checked, {} grouped, {} refused by a pair, {} by a witness, {} pair projections), release+write CSV {} ({} MB); end to end {}",
        ms(prepare),
        ms(solution.search_time),
        solution.nodes_checked,
        solution.nodes_grouped,
        solution.nodes_refused_by_pair,
        solution.nodes_refused_by_witness,
        solution.projections,
        ms(write),
        out.as_file().metadata().unwrap().len() / 1_000_000,
        ms(end_to_end)
    );
    println!(
        "synthetic: levels {:?}, min class {}, classes {}, peak RSS {:.0} MiB (whole process, generation included), wall {}",
        solution.levels,
        report.min_class_size,
        report.equivalence_classes,
        peak_rss_mib().unwrap_or(f64::NAN),
        ms(total.elapsed())
    );
}

/// Local recoding of `rows` synthetic rows, end to end through CSV files (see the module
/// documentation).
fn mondrian(rows: usize) {
    let (mut policy, hierarchies) = synthetic_policy();
    policy.algorithm = Recoding::LocalRecoding;
    let t = Instant::now();
    let table = synthetic_table(rows);
    let input = tempfile::NamedTempFile::new().unwrap();
    {
        let mut w = csv::WriterBuilder::new()
            .from_writer(BufWriter::with_capacity(1 << 20, input.as_file()));
        w.write_record(table.header()).unwrap();
        for i in 0..table.num_rows() {
            w.write_record(table.row(i)).unwrap();
        }
        w.flush().unwrap();
    }
    drop(table);
    let generate = t.elapsed();
    // Peak RSS from here on: writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let c0 = cpu_s();
    let t = Instant::now();
    let (table, _) = read_csv(input.path(), None, &["nhs_number"]).unwrap();
    let read = t.elapsed();
    let c1 = cpu_s();
    let t = Instant::now();
    let anonymiser = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
    let prepare = t.elapsed();
    let c2 = cpu_s();
    let t = Instant::now();
    let release = anonymiser.anonymise().unwrap();
    let recode = t.elapsed();
    let c3 = cpu_s();
    let t = Instant::now();
    let out = tempfile::NamedTempFile::new().unwrap();
    {
        let mut w =
            csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 20, out.as_file()));
        w.write_record(release.header()).unwrap();
        release.for_each_row(|row| w.write_record(row)).unwrap();
        w.flush().unwrap();
    }
    let write = t.elapsed();
    let c4 = cpu_s();
    let report = release.report();
    let lr = report.local_recoding.as_ref().unwrap();
    println!(
        "mondrian: {rows} rows x 8 quasi-identifiers, k = 5, relaxed rule, {} threads; generate + write input CSV {} ({} MB, not counted)",
        lr.threads,
        ms(generate),
        input.as_file().metadata().unwrap().len() / 1_000_000
    );
    println!(
        "mondrian: read CSV {}, encode+group {}, local recoding {} (partitioning alone {:.2} ms; {} strict + {} relaxed splits, {} histogram passes), write CSV {} ({} MB); end to end {}",
        ms(read),
        ms(prepare),
        ms(recode),
        report.search.search_ms,
        lr.strict_splits,
        lr.relaxed_splits,
        lr.histogram_passes,
        ms(write),
        out.as_file().metadata().unwrap().len() / 1_000_000,
        ms(read + prepare + recode + write)
    );
    println!(
        "mondrian: {} classes, min {} max {}, suppressed {}, Loss {:.4}, discernibility {:.4e}, NUE {:.4e}; peak RSS {:.0} MiB ({})",
        report.equivalence_classes,
        report.min_class_size,
        report.max_class_size,
        report.records_suppressed,
        report.utility.loss,
        report.utility.discernibility,
        report.utility.non_uniform_entropy,
        peak_rss_mib().unwrap_or(f64::NAN),
        if reset {
            "from the read on"
        } else {
            "whole process: VmHWM could not be reset"
        }
    );
    // CPU time of the whole process (all threads) per phase: on a shared machine, wall time
    // also counts waiting for a core.
    println!(
        "mondrian: CPU seconds (user + system, all threads): read {:.1}, encode+group {:.1}, local recoding {:.1}, write {:.1}; total {:.1}",
        c1 - c0,
        c2 - c1,
        c3 - c2,
        c4 - c3,
        c4 - c0
    );
}

/// This process's CPU time so far (user + system, all threads), in seconds, from
/// /proc/self/stat (clock ticks of 1/100 s, Linux's USER_HZ); NaN elsewhere.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; field 3 is index 0 here.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}
