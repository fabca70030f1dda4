//! The privacy models: hand-computed values of each criterion, the policy rules and their
//! errors, the report's figures and HTML, and a property: on random small tables and random
//! policies combining every model, each release satisfies its model, as judged by a naive
//! checker written here that recomputes the classes from the *output rows* (not from the
//! engine's internals).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use caldicott_deid::{
    Anonymiser, Criteria, DeidError, Hierarchies, Hierarchy, Policy, Table, anonymise_table,
    journalist_risk,
};
use proptest::prelude::*;

fn policy(privacy: &str, attributes: &str) -> Result<Policy, DeidError> {
    Policy::from_toml_str(&format!(
        "metric = \"loss\"\nsuppression_limit = 0.0\nsuppressed_rows = \"remove\"\n[privacy]\n{privacy}\n{attributes}"
    ))
}

const ATTRS: &str = r#"
[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = { intervals = [10, 20] }
[[attribute]]
name = "disease"
kind = "sensitive"
[[attribute]]
name = "salary"
kind = "insensitive"
"#;

fn table(rows: &[(&str, &str)]) -> Table {
    Table::from_rows(
        vec!["age".into(), "disease".into(), "salary".into()],
        rows.iter()
            .map(|(a, d)| vec![a.to_string(), d.to_string(), "1".into()]),
    )
    .unwrap()
}

/// Nine diseases, one record each, with a disease hierarchy of height 3 modelled on Li, Li
/// and Venkatasubramanian's example (t-closeness, ICDE 2007).
const DISEASES: [[&str; 4]; 9] = [
    ["gastric ulcer", "stomach", "digestive", "*"],
    ["gastritis", "stomach", "digestive", "*"],
    ["stomach cancer", "stomach", "digestive", "*"],
    ["colitis", "colon", "digestive", "*"],
    ["colon cancer", "colon", "digestive", "*"],
    ["flu", "respiratory infection", "respiratory", "*"],
    ["pneumonia", "respiratory infection", "respiratory", "*"],
    ["bronchitis", "respiratory infection", "respiratory", "*"],
    ["pulmonary edema", "vascular lung", "respiratory", "*"],
];

fn disease_hierarchy() -> Hierarchy {
    Hierarchy::from_rows(
        "disease",
        DISEASES
            .iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect(),
    )
    .unwrap()
}

/// Criteria over the 9-disease table, with the class histogram for `members` (disease
/// indexes): codes are the table's dictionary codes, i.e. the row order here.
fn disease_criteria(privacy: &str) -> (Criteria, Table) {
    let rows: Vec<(String, &str)> = DISEASES
        .iter()
        .enumerate()
        .map(|(i, d)| ((30 + i).to_string(), d[0]))
        .collect();
    let t = Table::from_rows(
        vec!["age".into(), "disease".into(), "salary".into()],
        rows.iter()
            .map(|(a, d)| vec![a.clone(), d.to_string(), "1".into()]),
    )
    .unwrap();
    let p = policy(privacy, ATTRS).unwrap();
    let mut h = Hierarchies::new();
    h.insert("disease".into(), disease_hierarchy());
    (Criteria::new(&p, &t, &h).unwrap(), t)
}

fn hist(members: &[u32]) -> Vec<(u32, u32)> {
    members.iter().map(|&m| (m, 1)).collect()
}

#[test]
fn equal_distance_emd_by_hand() {
    // Overall: 9 values once each. A class of 3 distinct values: 1/2 (3 (1/3 - 1/9) + 6/9)
    // = 2/3 (the paper's {3k, 4k, 5k} under the equal distance).
    let (c, _) = disease_criteria("[[privacy.t-closeness]]\nattribute = \"disease\"\nt = 0.666");
    assert!(!c.class_ok(3, &[&hist(&[0, 1, 2])]));
    let (c, _) = disease_criteria("[[privacy.t-closeness]]\nattribute = \"disease\"\nt = 0.667");
    assert!(c.class_ok(3, &[&hist(&[0, 1, 2])]));
    // The whole table is at distance 0, so t = 0 accepts it.
    let (c, _) = disease_criteria("[[privacy.t-closeness]]\nattribute = \"disease\"\nt = 0.0");
    assert!(c.class_ok(9, &[&hist(&[8, 0, 1, 2, 3, 4, 5, 6, 7])]));
}

/// The hierarchical EMD, by hand (cost(N) = level(N)/H * min(pos, neg), H = 3):
/// - {gastric ulcer, gastritis, stomach cancer}: leaves +2/9 (stomach) and -1/9 (others).
///   Level 1: every node one-signed, 0. Level 2 (2/3): digestive has stomach +6/9, colon
///   -2/9: 2/9; respiratory all negative. Level 3 (1): digestive +4/9, respiratory -4/9:
///   4/9. EMD = 2/3 * 2/9 + 4/9 = 16/27.
/// - {gastric ulcer, stomach cancer, pneumonia}: level 1 (1/3): stomach has +2/9, +2/9, -1/9:
///   1/9; respiratory infection +2/9, -1/9, -1/9: 2/9. Level 2 (2/3): digestive has stomach
///   +3/9, colon -2/9: 2/9; respiratory has infection 0, vascular -1/9: 0. Level 3: digestive
///   +1/9, respiratory -1/9: 1/9. EMD = 1/3 * 3/9 + 2/3 * 2/9 + 1/9 = 10/27.
#[test]
fn hierarchical_emd_by_hand() {
    let rule = |t: f64| {
        format!(
            "[[privacy.t-closeness]]\nattribute = \"disease\"\nt = {t:?}\ndistance = {{ hierarchy = {{ csv = \"diseases.csv\" }} }}"
        )
    };
    for (members, emd) in [
        (vec![0u32, 1, 2], 16.0 / 27.0),
        (vec![0, 2, 6], 10.0 / 27.0),
    ] {
        let (below, _) = disease_criteria(&rule(emd - 1e-6));
        let (above, _) = disease_criteria(&rule(emd + 1e-6));
        assert!(!below.class_ok(3, &[&hist(&members)]), "{members:?}");
        assert!(above.class_ok(3, &[&hist(&members)]), "{members:?}");
    }
    // A class spread like the whole table is at distance 0.
    let (c, _) = disease_criteria(&rule(0.0));
    assert!(c.class_ok(9, &[&hist(&[0, 1, 2, 3, 4, 5, 6, 7, 8])]));
}

#[test]
fn one_level_hierarchy_is_the_equal_distance() {
    // With a hierarchy of height 1 (every value -> *), the hierarchical EMD is min(pos, neg)
    // at the root = half the L1 distance: the equal distance.
    let rows = [("30", "a"), ("31", "a"), ("32", "b"), ("33", "c")];
    let t = table(&rows);
    let mut h = Hierarchies::new();
    h.insert(
        "disease".into(),
        Hierarchy::from_rows(
            "disease",
            ["a", "b", "c"]
                .iter()
                .map(|v| vec![v.to_string(), "*".into()])
                .collect(),
        )
        .unwrap(),
    );
    // Class {a, a}: 1/2 (|1 - 1/2| + 1/4 + 1/4) = 1/2.
    for (distance, t_value, ok) in [
        ("\"equal\"", 0.5, true),
        ("\"equal\"", 0.49, false),
        ("{ hierarchy = { csv = \"x.csv\" } }", 0.5, true),
        ("{ hierarchy = { csv = \"x.csv\" } }", 0.49, false),
    ] {
        let p = policy(
            &format!(
                "[[privacy.t-closeness]]\nattribute = \"disease\"\nt = {t_value}\ndistance = {distance}"
            ),
            ATTRS,
        )
        .unwrap();
        let c = Criteria::new(&p, &t, &h).unwrap();
        assert_eq!(c.class_ok(2, &[&[(0, 2)]]), ok, "{distance} {t_value}");
    }
}

#[test]
fn l_diversity_by_hand() {
    let rows = [
        ("30", "a"),
        ("31", "a"),
        ("32", "b"),
        ("33", "c"),
        ("34", "c"),
    ];
    let t = table(&rows);
    let h = Hierarchies::new();
    let criteria = |privacy: &str| Criteria::new(&policy(privacy, ATTRS).unwrap(), &t, &h).unwrap();
    let distinct3 =
        criteria("[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"distinct\"\nl = 3");
    // ℓ implies a smallest class of ℓ records.
    assert_eq!(distinct3.min_class_size(), 3);
    assert!(distinct3.class_ok(3, &[&[(0, 1), (1, 1), (2, 1)]]));
    assert!(!distinct3.class_ok(4, &[&[(0, 2), (2, 2)]]));
    // Entropy: {a, a, b, b} has entropy ln 2 exactly: 2-diverse, not 2.01-diverse.
    let e2 =
        criteria("[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"entropy\"\nl = 2");
    assert!(e2.class_ok(4, &[&[(0, 2), (1, 2)]]));
    let e201 = criteria(
        "[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"entropy\"\nl = 2.01",
    );
    assert!(!e201.class_ok(4, &[&[(0, 2), (1, 2)]]));
    // {a, a, a, b}: entropy = ln 4 - (3 ln 3)/4 = 0.5623 < ln 2: distinct-2 but not entropy-2.
    assert!(!e2.class_ok(4, &[&[(0, 3), (1, 1)]]));
    let d2 =
        criteria("[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"distinct\"\nl = 2");
    assert!(d2.class_ok(4, &[&[(0, 3), (1, 1)]]));
    // exp(entropy) = 1.755: entropy-1.75 passes, entropy-1.76 does not.
    let e175 = criteria(
        "[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"entropy\"\nl = 1.75",
    );
    assert!(e175.class_ok(4, &[&[(0, 3), (1, 1)]]));
    let e176 = criteria(
        "[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"entropy\"\nl = 1.76",
    );
    assert!(!e176.class_ok(4, &[&[(0, 3), (1, 1)]]));
}

#[test]
fn risk_thresholds_by_hand() {
    let rows: Vec<(String, &str)> = (0..100).map(|i| ((i % 50).to_string(), "a")).collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, d)| (a.as_str(), *d)).collect();
    let t = table(&rows);
    let h = Hierarchies::new();
    let criteria = |privacy: &str| Criteria::new(&policy(privacy, ATTRS).unwrap(), &t, &h).unwrap();
    // Prosecutor 0.2: classes of at least 5.
    let c = criteria("[privacy.risk]\nprosecutor = 0.2");
    assert_eq!(c.min_class_size(), 5);
    assert!(c.class_ok(5, &[]) && !c.class_ok(4, &[]));
    // Journalist with the whole population: the prosecutor risk.
    let c = criteria("[privacy.risk]\njournalist = 0.25\nsampling_fraction = 1.0");
    assert_eq!(c.min_class_size(), 4);
    // A 10% sample: one record's risk is 0.1 ln 10 / 0.9 = 0.2558; two records' 0.1496...
    assert!((journalist_risk(1, 0.1) - 0.1 * 10f64.ln() / 0.9).abs() < 1e-15);
    let c = criteria("[privacy.risk]\njournalist = 0.2\nsampling_fraction = 0.1");
    assert_eq!(c.min_class_size(), 2);
    // ... population = 1000 for these 100 records is the same fraction.
    let c = criteria("[privacy.risk]\njournalist = 0.2\npopulation = 1000");
    assert_eq!(c.sampling_fraction(), Some(0.1));
    assert_eq!(c.min_class_size(), 2);
    // Average risk is a property of the whole release.
    let c = criteria("[privacy.risk]\naverage = 0.1");
    assert!(c.average_risk_ok(10, 100) && !c.average_risk_ok(11, 100));
    assert!(c.class_ok(1, &[]));
}

#[test]
fn rules_name_what_is_wrong() {
    let err =
        |privacy: &str, attributes: &str| policy(privacy, attributes).unwrap_err().to_string();
    // Not declared sensitive.
    let e = err(
        "[[privacy.l-diversity]]\nattribute = \"salary\"\nvariant = \"distinct\"\nl = 2",
        ATTRS,
    );
    assert!(
        e.contains("privacy.l-diversity[1] (attribute `salary`)") && e.contains("sensitive"),
        "{e}"
    );
    let e = err(
        "[[privacy.t-closeness]]\nattribute = \"nowhere\"\nt = 0.2",
        ATTRS,
    );
    assert!(
        e.contains("privacy.t-closeness[1] (attribute `nowhere`)")
            && e.contains("not in the policy"),
        "{e}"
    );
    // t out of range.
    let e = err(
        "[[privacy.t-closeness]]\nattribute = \"disease\"\nt = 1.5",
        ATTRS,
    );
    assert!(
        e.contains("t is 1.5") && e.contains("between 0.0 and 1.0"),
        "{e}"
    );
    let e = err(
        "[[privacy.t-closeness]]\nattribute = \"disease\"\nt = -0.1",
        ATTRS,
    );
    assert!(e.contains("t is -0.1"), "{e}");
    // ℓ below 1, fractional distinct ℓ.
    let e = err(
        "[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"entropy\"\nl = 0.5",
        ATTRS,
    );
    assert!(e.contains("at least 1"), "{e}");
    let e = err(
        "[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"distinct\"\nl = 2.5",
        ATTRS,
    );
    assert!(e.contains("whole number"), "{e}");
    // Risks.
    let e = err("[privacy.risk]\naverage = 0.0", ATTRS);
    assert!(e.contains("privacy.risk.average"), "{e}");
    let e = err("[privacy.risk]\njournalist = 0.1", ATTRS);
    assert!(
        e.contains("privacy.risk.journalist") && e.contains("population"),
        "{e}"
    );
    let e = err(
        "[privacy.risk]\njournalist = 0.1\npopulation = 10\nsampling_fraction = 0.5",
        ATTRS,
    );
    assert!(e.contains("not both"), "{e}");
    let e = err("k = 0", ATTRS);
    assert!(e.contains("privacy.k"), "{e}");
    // Unknown keys are refused.
    let e = err("[privacy.risk]\nmarketer = 0.1", ATTRS);
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn unsatisfiable_l_is_named() {
    let t = table(&[("30", "a"), ("31", "b"), ("32", "a")]);
    let p = policy(
        "[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"distinct\"\nl = 3",
        ATTRS,
    )
    .unwrap();
    let e = Anonymiser::new(&t, &p, &Hierarchies::new()).err().unwrap();
    assert!(matches!(e, DeidError::ModelUnsatisfiable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("privacy.l-diversity[1] (attribute `disease`)")
            && msg.contains("only 2 distinct values"),
        "{msg}"
    );
    let p = policy("[privacy.risk]\njournalist = 0.1\npopulation = 2", ATTRS).unwrap();
    let e = Anonymiser::new(&t, &p, &Hierarchies::new()).err().unwrap();
    assert!(e.to_string().contains("privacy.risk.population"), "{e}");
}

#[test]
fn older_model_key_still_reads() {
    let p = policy("model = \"k-anonymity\"\nk = 3", ATTRS).unwrap();
    assert_eq!(p.privacy.k, 3);
    assert_eq!(p.privacy.min_class_size(), 3);
    assert!(policy("model = \"l-diversity\"\nk = 3", ATTRS).is_err());
}

#[test]
fn report_has_the_achieved_figures_and_safe_html() {
    // Ages 30..39 (band 30-39) and 40..49; diseases spread so that the 10-year bands are
    // 2-diverse.
    let mut rows = Vec::new();
    for i in 0..20 {
        let d = ["flu", "asthma", "gout"][i % 3];
        rows.push(((30 + i).to_string(), d));
    }
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, d)| (a.as_str(), *d)).collect();
    let t = Table::from_rows(
        vec!["<i>age</i>".into(), "disease".into(), "salary".into()],
        rows.iter()
            .map(|(a, d)| vec![a.to_string(), d.to_string(), "1".into()]),
    )
    .unwrap();
    let attrs = ATTRS.replace("name = \"age\"", "name = \"<i>age</i>\"");
    let p = policy(
        "k = 2\n[[privacy.l-diversity]]\nattribute = \"disease\"\nvariant = \"entropy\"\nl = 2\n\
         [[privacy.t-closeness]]\nattribute = \"disease\"\nt = 0.3\n[privacy.risk]\naverage = 0.5\nprosecutor = 0.5\njournalist = 0.5\nsampling_fraction = 0.5",
        &attrs,
    )
    .unwrap();
    let (out, report) = anonymise_table(&t, &p, &Hierarchies::new()).unwrap();
    assert_eq!(out.num_rows() as u64, report.rows_written);
    let l = &report.privacy.l_diversity[0];
    assert_eq!(
        (l.attribute.as_str(), l.variant.as_str(), l.required),
        ("disease", "entropy", 2.0)
    );
    let achieved_l = l.achieved.unwrap();
    assert!(achieved_l >= 2.0 - 1e-9, "{achieved_l}");
    let tc = &report.privacy.t_closeness[0];
    assert!(tc.achieved.unwrap() <= 0.3 + 1e-9);
    let j = report.risk.journalist.as_ref().unwrap();
    assert_eq!(j.sampling_fraction, 0.5);
    assert!(j.max_risk <= 0.5 && j.max_risk < report.risk.max_risk);
    assert!(report.risk.average_risk <= 0.5);
    // Nothing above the thresholds the model enforces.
    for r in &report.risk.records_at_risk {
        if r.threshold >= 0.5 {
            assert_eq!(r.prosecutor, 0.0);
            assert_eq!(r.journalist, Some(0.0));
        }
    }
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["privacy"]["l_diversity"][0]["achieved"].is_number());
    assert!(json["risk"]["journalist"]["max_risk"].is_number());

    let html = report.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(!html.contains("<i>age"), "a column name is escaped");
    assert!(html.contains("&lt;i&gt;age&lt;/i&gt;"));
    assert!(html.contains("Class sizes") && html.contains("Journalist risk, highest"));
    assert!(html.contains("entropy ℓ-diversity"));
}

// ---------------------------------------------------------------------------------------
// Property: every release satisfies its model, checked on the output rows.

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
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Each sensitive value's group in a two-level ground-distance tree.
type Parents = HashMap<String, String>;

/// What the naive checker needs to know about the model.
#[derive(Debug, Default)]
struct Spec {
    k: u64,
    l: Vec<(usize, bool, f64)>,
    /// (sensitive index, t, parent of each value for a two-level tree value -> group -> *)
    t: Vec<(usize, f64, Option<Parents>)>,
    average: Option<f64>,
    prosecutor: Option<f64>,
    journalist: Option<(f64, f64)>,
    limit: f64,
}

/// E[1/F] by its series (the engine integrates instead).
fn journalist_series(n: u64, pi: f64) -> f64 {
    if pi >= 1.0 {
        return 1.0 / n as f64;
    }
    let mut p = pi.powi(n as i32);
    let (mut sum, mut mass, mut x) = (0.0, 0.0, 0u64);
    while mass < 1.0 - 1e-14 && x < 5_000_000 {
        sum += p / (n + x) as f64;
        mass += p;
        p *= (n + x) as f64 / (x + 1) as f64 * (1.0 - pi);
        x += 1;
    }
    sum
}

/// Distribution of a column over some rows.
fn distribution<'a>(rows: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, f64> {
    let mut d: BTreeMap<&str, f64> = BTreeMap::new();
    let mut n = 0.0;
    for v in rows {
        *d.entry(v).or_default() += 1.0;
        n += 1.0;
    }
    for v in d.values_mut() {
        *v /= n;
    }
    d
}

/// Checks a release from its rows: classes are the output's distinct quasi-identifier tuples.
fn check_release(
    input: &Table,
    out: &Table,
    qis: &[usize],
    sensitive: &[usize],
    spec: &Spec,
) -> Result<(), String> {
    let n = input.num_rows();
    let suppressed = n - out.num_rows();
    let allowed = (spec.limit * n as f64).floor() as usize;
    if suppressed > allowed {
        return Err(format!("{suppressed} rows suppressed, {allowed} allowed"));
    }
    let mut classes: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for r in 0..out.num_rows() {
        classes
            .entry(qis.iter().map(|&c| out.value(r, c)).collect())
            .or_default()
            .push(r);
    }
    for (key, rows) in &classes {
        let size = rows.len() as u64;
        if size < spec.k {
            return Err(format!("class {key:?} has {size} < k = {}", spec.k));
        }
        if let Some(p) = spec.prosecutor
            && 1.0 / size as f64 > p
        {
            return Err(format!("class {key:?}: prosecutor risk 1/{size} > {p}"));
        }
        if let Some((j, pi)) = spec.journalist
            && journalist_series(size, pi) > j + 1e-12
        {
            return Err(format!("class {key:?}: journalist risk above {j}"));
        }
        for &(s, entropy, l) in &spec.l {
            let d = distribution(rows.iter().map(|&r| out.value(r, sensitive[s])));
            if entropy {
                let h: f64 = -d.values().map(|p| p * p.ln()).sum::<f64>();
                if h < l.ln() - 1e-9 {
                    return Err(format!("class {key:?}: entropy {h} < ln {l}"));
                }
            } else if (d.len() as f64) < l {
                return Err(format!("class {key:?}: {} distinct < {l}", d.len()));
            }
        }
        for (s, t, tree) in &spec.t {
            let p = distribution(rows.iter().map(|&r| out.value(r, sensitive[*s])));
            let q = distribution((0..n).map(|r| input.value(r, sensitive[*s])));
            let emd = match tree {
                None => {
                    q.iter()
                        .map(|(v, qv)| (p.get(v).unwrap_or(&0.0) - qv).abs())
                        .sum::<f64>()
                        / 2.0
                }
                Some(parent) => {
                    // Two levels (value -> group -> *), H = 2: at each group, 1/2 min(pos, neg)
                    // of its values' extras; at the root, min(pos, neg) of the groups'.
                    let mut groups: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
                    for (v, qv) in &q {
                        let e = p.get(v).unwrap_or(&0.0) - qv;
                        let g = groups.entry(parent[*v].as_str()).or_default();
                        if e > 0.0 {
                            g.0 += e
                        } else {
                            g.1 -= e
                        }
                        g.2 += e;
                    }
                    let mut cost = 0.0;
                    let (mut pos, mut neg) = (0.0, 0.0);
                    for (gp, gn, ge) in groups.values() {
                        cost += 0.5 * gp.min(*gn);
                        if *ge > 0.0 { pos += ge } else { neg -= ge }
                    }
                    cost + pos.min(neg)
                }
            };
            if emd > t + 1e-9 {
                return Err(format!("class {key:?}: EMD {emd} > t = {t}"));
            }
        }
    }
    if let Some(a) = spec.average
        && out.num_rows() > 0
        && classes.len() as f64 > a * out.num_rows() as f64
    {
        return Err(format!(
            "average risk {} / {} > {a}",
            classes.len(),
            out.num_rows()
        ));
    }
    Ok(())
}

fn random_case(seed: u64) -> (Table, Policy, Hierarchies, Spec, Vec<usize>, Vec<usize>) {
    let mut rng = Rng(seed);
    let rows = 1 + rng.below(60);
    let mut spec = Spec {
        k: 1 + rng.below(4) as u64,
        limit: rng.pick(&[0.0, 0.05, 0.2, 0.5]),
        ..Spec::default()
    };
    let mut toml = format!(
        "metric = \"{}\"\nsuppression_limit = {:?}\nsuppressed_rows = \"remove\"\n[privacy]\nk = {}\n",
        rng.pick(&["loss", "non-uniform-entropy", "discernibility"]),
        spec.limit,
        spec.k
    );
    let mut hierarchies = Hierarchies::new();
    // Sensitive values and a two-level tree over them.
    let s_domain: Vec<Vec<String>> = (0..2)
        .map(|s| (0..1 + rng.below(5)).map(|v| format!("s{s}v{v}")).collect())
        .collect();
    let s_parent: Vec<HashMap<String, String>> = s_domain
        .iter()
        .map(|vals| {
            vals.iter()
                .map(|v| (v.clone(), format!("g{}", rng.below(2))))
                .collect()
        })
        .collect();
    let mut risk = String::new();
    if rng.below(3) == 0 {
        let v = rng.pick(&[0.25, 0.4, 0.6]);
        spec.average = Some(v);
        writeln!(risk, "average = {v:?}").unwrap();
    }
    if rng.below(4) == 0 {
        let v = rng.pick(&[0.34, 0.5]);
        spec.prosecutor = Some(v);
        writeln!(risk, "prosecutor = {v:?}").unwrap();
    }
    if rng.below(4) == 0 {
        let (v, f) = (rng.pick(&[0.2, 0.4]), rng.pick(&[0.2, 0.6, 1.0]));
        spec.journalist = Some((v, f));
        writeln!(risk, "journalist = {v:?}\nsampling_fraction = {f:?}").unwrap();
    }
    if !risk.is_empty() {
        writeln!(toml, "[privacy.risk]\n{risk}").unwrap();
    }
    let mut attrs = String::new();
    let mut header = Vec::new();
    let mut qi_values: Vec<Vec<String>> = Vec::new();
    let q = 1 + rng.below(3);
    for j in 0..q {
        let d = 1 + rng.below(8);
        let width = rng.pick(&[2usize, 3]);
        let name = format!("qi{j}");
        let values: Vec<String> = (0..d).map(|v| format!("q{j}v{v}")).collect();
        let h = Hierarchy::from_rows(
            &name,
            values
                .iter()
                .enumerate()
                .map(|(v, s)| vec![s.clone(), format!("q{j}b{}", v / width), "*".into()])
                .collect(),
        )
        .unwrap();
        hierarchies.insert(name.clone(), h);
        writeln!(attrs, "[[attribute]]\nname = \"{name}\"\nkind = \"quasi-identifier\"\nhierarchy = {{ csv = \"in-memory\" }}").unwrap();
        header.push(name);
        qi_values.push(values);
    }
    let mut sensitive = Vec::new();
    for s in 0..2 {
        writeln!(
            attrs,
            "[[attribute]]\nname = \"s{s}\"\nkind = \"sensitive\""
        )
        .unwrap();
        sensitive.push(header.len());
        header.push(format!("s{s}"));
    }
    let data: Vec<Vec<String>> = (0..rows)
        .map(|_| {
            qi_values
                .iter()
                .chain(&s_domain)
                .map(|vals| {
                    let (a, b) = (rng.below(vals.len()), rng.below(vals.len()));
                    vals[a.min(b)].clone()
                })
                .collect()
        })
        .collect();
    let table = Table::from_rows(header, data).unwrap();
    let present = |s: usize| {
        let mut v: Vec<&str> = (0..table.num_rows())
            .map(|r| table.value(r, sensitive[s]))
            .collect();
        v.sort();
        v.dedup();
        v.len() as f64
    };
    for _ in 0..rng.below(3) {
        let s = rng.below(2);
        let entropy = rng.below(2) == 0;
        let l = if entropy {
            rng.pick(&[1.5, 2.0, 2.5])
        } else {
            rng.pick(&[2.0, 3.0])
        };
        if l > present(s) {
            continue;
        }
        spec.l.push((s, entropy, l));
        writeln!(
            toml,
            "[[privacy.l-diversity]]\nattribute = \"s{s}\"\nvariant = \"{}\"\nl = {l:?}",
            if entropy { "entropy" } else { "distinct" }
        )
        .unwrap();
    }
    for _ in 0..rng.below(3) {
        let s = rng.below(2);
        let t = rng.pick(&[0.1, 0.25, 0.4]);
        if rng.below(2) == 0 {
            spec.t.push((s, t, None));
            writeln!(
                toml,
                "[[privacy.t-closeness]]\nattribute = \"s{s}\"\nt = {t:?}"
            )
            .unwrap();
        } else {
            let name = format!("s{s}");
            hierarchies.insert(
                name.clone(),
                Hierarchy::from_rows(
                    &name,
                    s_domain[s]
                        .iter()
                        .map(|v| vec![v.clone(), s_parent[s][v].clone(), "*".into()])
                        .collect(),
                )
                .unwrap(),
            );
            spec.t.push((s, t, Some(s_parent[s].clone())));
            writeln!(
                toml,
                "[[privacy.t-closeness]]\nattribute = \"s{s}\"\nt = {t:?}\ndistance = {{ hierarchy = {{ csv = \"in-memory\" }} }}"
            )
            .unwrap();
        }
    }
    toml.push_str(&attrs);
    let policy = Policy::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let qis = (0..q).collect();
    (table, policy, hierarchies, spec, qis, sensitive)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_release_satisfies_its_model(seed in any::<u64>()) {
        let (table, policy, hierarchies, spec, qis, sensitive) = random_case(seed);
        match anonymise_table(&table, &policy, &hierarchies) {
            Ok((out, report)) => {
                prop_assert_eq!(out.num_rows() as u64, report.rows_written);
                prop_assert_eq!(report.records_suppressed, table.num_rows() as u64 - out.num_rows() as u64);
                if let Err(e) = check_release(&table, &out, &qis, &sensitive, &spec) {
                    prop_assert!(false, "{}\npolicy {:?}", e, policy.privacy);
                }
            }
            // Nothing satisfies the model within the limit: then not even the top node does.
            Err(DeidError::Unsatisfiable { violating, allowed, .. })
            | Err(DeidError::UnsatisfiableModel { violating, allowed, .. }) => {
                prop_assert!(violating > allowed)
            }
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }
}
