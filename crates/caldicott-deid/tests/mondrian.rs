//! Local recoding (`algorithm = "local-recoding"`), checked from the outside: on random tables
//! and random hierarchies, everything is verified naively from the output rows and the input
//! rows, with strings only (no encoding, no knowledge of the partitioning):
//! - every published class (rows with the same quasi-identifier labels) has at least k rows;
//! - every published value is a label of its hierarchy and lies on the chain of the row's own
//!   input value (an ancestor-or-self);
//! - local minimality: no published class has a quasi-identifier whose one-level
//!   specialisation would be a split the rule allows (strict: every child at least k; relaxed:
//!   the documented remainder rule), nor one whose records all lie under one child;
//! - the output is the same on every run and on any number of threads;
//! - the report's class counts and sizes agree with the output.
//!
//! And on Adult (../shared/data/adult; skipped visibly without it): 5-anonymous local
//! recoding loses less information than the optimal full-domain generalisation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use caldicott_deid::{
    Anonymiser, Attribute, AttributeKind, DeidError, Hierarchies, Hierarchy, HierarchySpec, Policy,
    PrivacyModel, Recoding, Report, SplitRule, SuppressedRows, Table, UtilityMetric,
    load_hierarchies, read_csv,
};
use proptest::prelude::*;

/// splitmix64: a tiny deterministic generator for the shapes proptest's seed picks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random tree hierarchy over `d` values with `height` levels above them; labels name their
/// level, so a label's level can be read back from the label. The top level may have several
/// labels (then local recoding must make a forced first cut).
fn random_hierarchy(rng: &mut Rng, j: usize, d: usize, height: usize) -> Vec<Vec<String>> {
    let mut groups = d;
    let mut parents: Vec<Vec<usize>> = Vec::new();
    for _ in 0..height {
        let next = if groups <= 1 {
            1
        } else {
            1 + rng.below(groups)
        };
        parents.push((0..groups).map(|_| rng.below(next)).collect());
        groups = next;
    }
    (0..d)
        .map(|v| {
            let mut row = vec![format!("q{j}v{v}")];
            let mut g = v;
            for (level, p) in parents.iter().enumerate() {
                g = p[g];
                row.push(format!("q{j}l{}g{g}", level + 1));
            }
            row
        })
        .collect()
}

struct Case {
    table: Table,
    policy: Policy,
    hierarchies: Hierarchies,
    /// Per quasi-identifier: value -> chain of labels (level 0 first).
    chains: Vec<HashMap<String, Vec<String>>>,
    k: u64,
}

fn case(seed: u64, algorithm: Recoding, star: bool) -> Case {
    let mut rng = Rng(seed);
    let q = 1 + rng.below(4);
    let rows = 1 + rng.below(400);
    let k = 1 + rng.below(6) as u64;
    let mut header = Vec::new();
    let mut attributes = Vec::new();
    let mut hierarchies = Hierarchies::new();
    let mut chains = Vec::new();
    let mut values = Vec::new();
    for j in 0..q {
        let d = 1 + rng.below(12);
        let height = 1 + rng.below(3);
        let h = random_hierarchy(&mut rng, j, d, height);
        let name = format!("qi{j}");
        header.push(name.clone());
        chains.push(h.iter().map(|r| (r[0].clone(), r.clone())).collect());
        values.push(h.iter().map(|r| r[0].clone()).collect::<Vec<_>>());
        hierarchies.insert(name.clone(), Hierarchy::from_rows(&name, h).unwrap());
        attributes.push(Attribute {
            name,
            kind: AttributeKind::QuasiIdentifier,
            hierarchy: Some(HierarchySpec::Csv(format!("qi{j}.csv").into())),
            transform: None,
        });
    }
    header.push("note".into());
    attributes.push(Attribute {
        name: "note".into(),
        kind: AttributeKind::Insensitive,
        hierarchy: None,
        transform: None,
    });
    // Skewed value choice so that some values are rare.
    let data: Vec<Vec<String>> = (0..rows)
        .map(|i| {
            let mut row: Vec<String> = values
                .iter()
                .map(|vals| {
                    let a = rng.below(vals.len());
                    let b = rng.below(vals.len());
                    vals[a.min(b)].clone()
                })
                .collect();
            row.push(format!("n{i}"));
            row
        })
        .collect();
    let table = Table::from_rows(header, data).unwrap();
    let policy = Policy {
        privacy: PrivacyModel::k_anonymity(k),
        suppression_limit: 1.0,
        metric: UtilityMetric::Loss,
        suppressed_rows: if star {
            SuppressedRows::Star
        } else {
            SuppressedRows::Remove
        },
        algorithm,
        delimiter: None,
        attributes,
        base_dir: None,
    };
    Case {
        table,
        policy,
        hierarchies,
        chains,
        k,
    }
}

/// The level of a label in its hierarchy (labels name their level).
fn level_of(label: &str) -> usize {
    match label.split_once('l') {
        Some((_, rest)) if label.contains('g') => rest.split('g').next().unwrap().parse().unwrap(),
        _ => 0,
    }
}

/// Runs local recoding; returns the output rows (including the `note` column) and the report.
fn run(c: &Case, threads: usize) -> (Vec<Vec<String>>, Report) {
    let a = Anonymiser::new(&c.table, &c.policy, &c.hierarchies).unwrap();
    let rule = match c.policy.algorithm {
        Recoding::LocalRecodingStrict => SplitRule::Strict,
        _ => SplitRule::Relaxed,
    };
    let release = a.local_recoding_on(rule, threads).unwrap();
    let mut rows = Vec::new();
    release
        .for_each_row(|r| {
            rows.push(r.iter().map(|s| s.to_string()).collect());
            Ok::<(), DeidError>(())
        })
        .unwrap();
    (rows, release.into_report())
}

/// Whether the children (record counts) of a label allow a split under `rule`, by the rule
/// as documented, written independently of the engine.
fn splittable(children: &[usize], k: usize, rule: SplitRule) -> bool {
    if children.len() < 2 {
        return false;
    }
    let big: Vec<usize> = children.iter().copied().filter(|&n| n >= k).collect();
    let small: usize = children.iter().filter(|&&n| n < k).sum();
    match rule {
        SplitRule::Strict => big.len() == children.len(),
        SplitRule::Relaxed => {
            if small == 0 {
                return big.len() >= 2;
            }
            // Fold the smallest separated children into the remainder until it reaches k.
            let mut big = big;
            big.sort_unstable();
            let mut rem = small;
            let mut i = 0;
            while rem < k && i < big.len() {
                rem += big[i];
                i += 1;
            }
            rem >= k && i < big.len()
        }
    }
}

fn check(c: &Case, rows: &[Vec<String>], report: &Report, rule: SplitRule) {
    let q = c.chains.len();
    let k = c.k as usize;
    let star = c.policy.suppressed_rows == SuppressedRows::Star;
    let n = c.table.num_rows();
    // Output rows are the input rows in order (suppressed ones starred or left out); the
    // `note` column says which input row each one is.
    let input: HashMap<String, usize> = (0..n)
        .map(|i| (c.table.value(i, q).to_string(), i))
        .collect();
    let mut classes: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    let mut suppressed = 0u64;
    let mut last = None;
    for row in rows {
        let i = input[&row[q]];
        assert!(last.is_none_or(|l| l < i), "rows out of input order");
        last = Some(i);
        let key: Vec<String> = row[..q].to_vec();
        if key.iter().all(|v| v == "*") {
            assert!(
                star,
                "a starred row is written although suppressed rows are removed"
            );
            suppressed += 1;
            continue;
        }
        for (j, label) in key.iter().enumerate() {
            let chain = &c.chains[j][c.table.value(i, j)];
            assert!(
                chain.iter().any(|l| l == label),
                "row {i} qi{j}: {label} is not an ancestor-or-self of {}",
                chain[0]
            );
        }
        classes.entry(key).or_default().push(i);
    }
    if star {
        assert_eq!(rows.len(), n);
    } else {
        suppressed = (n - rows.len()) as u64;
    }
    assert_eq!(report.records_suppressed, suppressed);
    assert_eq!(report.equivalence_classes, classes.len() as u64);
    for (key, members) in &classes {
        assert!(
            members.len() >= k,
            "class {key:?} has {} < {k}",
            members.len()
        );
        // Local minimality.
        for (j, label) in key.iter().enumerate() {
            let level = level_of(label);
            if level == 0 {
                continue;
            }
            let mut children: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in members {
                let chain = &c.chains[j][c.table.value(i, j)];
                assert_eq!(chain[level], *label);
                *children.entry(chain[level - 1].as_str()).or_default() += 1;
            }
            let counts: Vec<usize> = children.values().copied().collect();
            assert!(
                counts.len() >= 2,
                "class {key:?}: every record of qi{j} lies under one child of {label}: not specialised"
            );
            assert!(
                !splittable(&counts, k, rule),
                "class {key:?}: qi{j} could still be split ({counts:?}, k {k}, {rule:?})"
            );
        }
    }
    let sizes: u64 = report.class_sizes.iter().map(|s| s.size * s.classes).sum();
    assert_eq!(sizes, n as u64 - suppressed);
    if let Some(min) = classes.values().map(Vec::len).min() {
        assert_eq!(report.min_class_size, min as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn relaxed_local_recoding_is_k_anonymous_and_minimal(seed in any::<u64>(), star in any::<bool>()) {
        let c = case(seed, Recoding::LocalRecoding, star);
        let (rows, report) = run(&c, 1);
        check(&c, &rows, &report, SplitRule::Relaxed);
        let (again, report2) = run(&c, 3);
        prop_assert_eq!(&rows, &again);
        prop_assert_eq!(report.utility, report2.utility);
    }

    #[test]
    fn strict_local_recoding_is_k_anonymous_and_minimal(seed in any::<u64>(), star in any::<bool>()) {
        let c = case(seed, Recoding::LocalRecodingStrict, star);
        let (rows, report) = run(&c, 1);
        check(&c, &rows, &report, SplitRule::Strict);
        let (again, _) = run(&c, 2);
        prop_assert_eq!(rows, again);
    }
}

/// Records that fail the model even at the top are suppressed within the limit, else refused.
#[test]
fn suppression_limit_is_enforced() {
    let rows: Vec<[&str; 1]> = vec![["a"], ["a"], ["a"], ["b"]];
    let table = Table::from_rows(vec!["x".to_string()], rows).unwrap();
    let mut h = Hierarchies::new();
    // Two top labels: `b` can never join `a`'s class.
    h.insert(
        "x".into(),
        Hierarchy::from_rows(
            "x",
            vec![vec!["a".into(), "A".into()], vec!["b".into(), "B".into()]],
        )
        .unwrap(),
    );
    let mut policy = Policy {
        privacy: PrivacyModel::k_anonymity(3),
        suppression_limit: 0.0,
        metric: UtilityMetric::Discernibility,
        suppressed_rows: SuppressedRows::Remove,
        algorithm: Recoding::LocalRecoding,
        delimiter: None,
        attributes: vec![Attribute {
            name: "x".into(),
            kind: AttributeKind::QuasiIdentifier,
            hierarchy: Some(HierarchySpec::Csv("x.csv".into())),
            transform: None,
        }],
        base_dir: None,
    };
    let a = Anonymiser::new(&table, &policy, &h).unwrap();
    let err = a.anonymise().err().expect("unsatisfiable at 0%");
    assert!(
        matches!(
            err,
            DeidError::Unsatisfiable {
                violating: 1,
                allowed: 0,
                ..
            }
        ),
        "{err}"
    );
    policy.suppression_limit = 0.25;
    let a = Anonymiser::new(&table, &policy, &h).unwrap();
    let release = a.anonymise().unwrap();
    let out = release.to_table().unwrap();
    assert_eq!(out.num_rows(), 3);
    assert!((0..3).all(|i| out.value(i, 0) == "a"));
    let r = release.report();
    assert_eq!(r.records_suppressed, 1);
    // Discernibility: 3^2 for the published class, N = 4 for the suppressed record.
    assert_eq!(r.utility.discernibility, 9.0 + 4.0);
}

/// The CSV edge honours `algorithm = "local-recoding"` from a policy file.
#[test]
fn csv_edge_uses_the_policy_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("age,sex,diagnosis\n");
    for i in 0..200u32 {
        let age = 20 + (i * 7) % 60;
        let sex = if i % 3 == 0 { "F" } else { "M" };
        csv.push_str(&format!("{age},{sex},d{}\n", i % 5));
    }
    std::fs::write(dir.path().join("in.csv"), csv).unwrap();
    std::fs::write(dir.path().join("sex.csv"), "F;*\nM;*\n").unwrap();
    let policy_text = r#"
metric = "loss"
algorithm = "local-recoding"

[privacy]
model = "k-anonymity"
k = 4

[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = { intervals = [5, 10, 20] }

[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = { csv = "sex.csv" }

[[attribute]]
name = "diagnosis"
kind = "sensitive"
"#;
    std::fs::write(dir.path().join("p.toml"), policy_text).unwrap();
    let policy = Policy::from_toml_file(&dir.path().join("p.toml")).unwrap();
    assert_eq!(policy.algorithm, Recoding::LocalRecoding);
    let report = caldicott_deid::anonymise_csv(
        &dir.path().join("in.csv"),
        &policy,
        None,
        &dir.path().join("out.csv"),
        &dir.path().join("out.json"),
    )
    .unwrap();
    assert_eq!(report.search.algorithm, "local-recoding (relaxed)");
    let lr = report
        .local_recoding
        .as_ref()
        .expect("local recoding summary");
    assert_eq!(lr.records_per_level.len(), 2);
    let (out, _) = read_csv(&dir.path().join("out.csv"), None, &[]).unwrap();
    assert_eq!(out.num_rows(), 200);
    let mut classes: HashMap<(String, String), usize> = HashMap::new();
    let mut levels = std::collections::BTreeSet::new();
    for i in 0..out.num_rows() {
        let age = out.value(i, 0).to_string();
        levels.insert(if age == "*" {
            4
        } else {
            match age
                .split_once('-')
                .map(|(a, b)| b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap())
            {
                None => 0,
                Some(4) => 1,
                Some(9) => 2,
                Some(19) => 3,
                Some(w) => panic!("unexpected band width {w}"),
            }
        });
        *classes
            .entry((age, out.value(i, 1).to_string()))
            .or_default() += 1;
    }
    assert!(classes.values().all(|&n| n >= 4), "{classes:?}");
    assert_eq!(report.equivalence_classes, classes.len() as u64);
    // The report is written as JSON and reads back.
    let json = std::fs::read_to_string(dir.path().join("out.json")).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.local_recoding, report.local_recoding);
    assert_eq!(back.class_sizes, report.class_sizes);
    // The per-level counts match the output.
    let per: u64 = lr.records_per_level[0].records.iter().sum();
    assert_eq!(per, 200);
    for (l, &n) in lr.records_per_level[0].records.iter().enumerate() {
        assert_eq!(n > 0, levels.contains(&l), "level {l}: {n}");
    }
}

/// With ℓ-diversity in the model, the split test is the model's own per-class predicate: every
/// published class holds at least ℓ distinct sensitive values (checked naively), and is k-anonymous.
#[test]
fn l_diversity_is_enforced_per_class() {
    let mut total_classes = 0;
    for seed in 0..40u64 {
        let mut rng = Rng(seed);
        let rows = 50 + rng.below(400);
        let mut csv = String::from("age,sex,diagnosis\n");
        for _ in 0..rows {
            let age = 18 + rng.below(70);
            let sex = ["F", "M"][rng.below(2)];
            // Skewed: diagnosis d0 is common, so many small classes are not diverse.
            let d = rng.below(6).min(rng.below(6));
            csv.push_str(&format!("{age},{sex},d{d}\n"));
        }
        let (l, variant) = if seed % 2 == 0 {
            (2, "distinct")
        } else {
            (2, "entropy")
        };
        let policy = Policy::from_toml_str(&format!(
            r#"
metric = "loss"
algorithm = "local-recoding"
suppression_limit = 1.0
suppressed_rows = "remove"

[privacy]
k = 3
[[privacy.l-diversity]]
attribute = "diagnosis"
variant = "{variant}"
l = {l}

[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = {{ intervals = [5, 10, 20] }}

[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = {{ intervals = [1] }}

[[attribute]]
name = "diagnosis"
kind = "sensitive"
"#
        ))
        .unwrap();
        let csv = csv.replace(",F,", ",0,").replace(",M,", ",1,");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.csv"), csv).unwrap();
        let (table, _) = read_csv(&dir.path().join("in.csv"), None, &[]).unwrap();
        let a = Anonymiser::new(&table, &policy, &Hierarchies::new()).unwrap();
        let release = a.anonymise().unwrap();
        let out = release.to_table().unwrap();
        let mut classes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for i in 0..out.num_rows() {
            classes
                .entry((out.value(i, 0).to_string(), out.value(i, 1).to_string()))
                .or_default()
                .push(out.value(i, 2).to_string());
        }
        for (key, values) in &classes {
            assert!(values.len() >= 3, "seed {seed}: class {key:?} too small");
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for v in values {
                *counts.entry(v.as_str()).or_default() += 1;
            }
            let n = values.len() as f64;
            let entropy: f64 = counts
                .values()
                .map(|&c| {
                    let p = c as f64 / n;
                    -p * p.ln()
                })
                .sum();
            match variant {
                "distinct" => assert!(counts.len() >= l, "seed {seed}: class {key:?} {counts:?}"),
                _ => assert!(
                    entropy >= (l as f64).ln() - 1e-9,
                    "seed {seed}: class {key:?} {counts:?}"
                ),
            }
        }
        let r = release.report();
        assert_eq!(r.equivalence_classes, classes.len() as u64);
        total_classes += classes.len();
        assert_eq!(r.privacy.l_diversity.len(), 1);
        if let Some(achieved) = r.privacy.l_diversity[0].achieved {
            assert!(
                achieved >= l as f64 * (1.0 - 1e-6),
                "seed {seed}: achieved {achieved}"
            );
        }
    }
    // The partitioning did split (not everything released as one class).
    assert!(
        total_classes > 400,
        "{total_classes} classes over 40 tables"
    );
}

fn adult_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult");
    if dir.join("adult.csv").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: ../shared/data/adult not found");
        None
    }
}

/// Adult, k = 5, 0% suppression: local recoding loses less information (ARX Loss) than the
/// optimal full-domain generalisation under the same metric.
#[test]
fn adult_k5_local_recoding_beats_full_domain() {
    let Some(dir) = adult_dir() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/anonymise/adult-k5.toml");
    let mut policy = Policy::from_toml_file(&path).unwrap();
    policy.metric = UtilityMetric::Loss;
    let (table, _) = read_csv(&dir.join("adult.csv"), None, &[]).unwrap();
    let hierarchies = load_hierarchies(&policy, Some(&dir)).unwrap();
    let a = Anonymiser::new(&table, &policy, &hierarchies).unwrap();
    let full = a.release(&a.search(caldicott_deid::Algorithm::Flash).unwrap());
    let full = full.report().clone();
    // ARX's optimum under non-uniform entropy (the example policy's metric), for reference.
    let nue_policy = Policy::from_toml_file(&path).unwrap();
    let nue_a = Anonymiser::new(&table, &nue_policy, &hierarchies).unwrap();
    let nue_full = nue_a.release(&nue_a.search(caldicott_deid::Algorithm::Flash).unwrap());
    let nue_full = nue_full.report();
    println!(
        "adult k=5 full-domain optimum under NUE: levels {:?}, Loss {:.6}, discernibility {:.0}, NUE {:.1}, {} classes",
        nue_full
            .transformation
            .iter()
            .map(|t| t.level)
            .collect::<Vec<_>>(),
        nue_full.utility.loss,
        nue_full.utility.discernibility,
        nue_full.utility.non_uniform_entropy,
        nue_full.equivalence_classes
    );
    for rule in [SplitRule::Relaxed, SplitRule::Strict] {
        let local = a.local_recoding(rule).unwrap();
        let r = local.report();
        println!(
            "adult k=5 {rule:?}: local recoding Loss {:.6} (discernibility {:.0}, NUE {:.1}, {} classes, {:.1} ms) vs full-domain optimum Loss {:.6} (discernibility {:.0}, NUE {:.1}, {} classes, levels {:?})",
            r.utility.loss,
            r.utility.discernibility,
            r.utility.non_uniform_entropy,
            r.equivalence_classes,
            r.search.search_ms,
            full.utility.loss,
            full.utility.discernibility,
            full.utility.non_uniform_entropy,
            full.equivalence_classes,
            full.transformation
                .iter()
                .map(|t| t.level)
                .collect::<Vec<_>>()
        );
        assert!(r.min_class_size >= 5);
        assert_eq!(r.records_suppressed, 0);
        assert!(
            r.utility.loss < full.utility.loss,
            "{rule:?}: local {} >= full-domain {}",
            r.utility.loss,
            full.utility.loss
        );
        assert!(r.utility.discernibility < full.utility.discernibility);
        // Naive k check on the output.
        let out = local.to_table().unwrap();
        let mut classes: HashMap<Vec<String>, usize> = HashMap::new();
        for i in 0..out.num_rows() {
            *classes
                .entry(out.row(i).map(str::to_string).collect())
                .or_default() += 1;
        }
        assert!(classes.values().all(|&n| n >= 5));
        assert_eq!(classes.len() as u64, r.equivalence_classes);
    }
}
