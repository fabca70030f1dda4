//! The privacy criteria, prepared for one table and evaluated on equivalence classes.
//!
//! A [`PrivacyModel`] (the policy's `[privacy]`) is a conjunction of criteria, as in ARX. This
//! module resolves it against the data ([`Criteria::new`]: which columns are sensitive, their
//! distribution in the whole input, the ground-distance hierarchies, the sampling fraction) and
//! decides, per class, whether it may be published ([`Criteria::class_ok`], a pure predicate of
//! the class's size and its histograms of sensitive values), and per transformation which
//! classes are suppressed (`Criteria::verdict`).
//!
//! **Definitions** (a class of `n` records; `c_v` of them hold sensitive value `v`,
//! `p_v = c_v / n`; `q_v` is the share of `v` in the whole input, suppressed records included,
//! as ARX takes it):
//! - k-anonymity: `n >= k`.
//! - distinct ℓ-diversity: at least ℓ values `v` with `c_v > 0`.
//! - entropy ℓ-diversity: `-sum p_v ln p_v >= ln ℓ` (computed as `ln n - sum c_v ln c_v / n`).
//! - t-closeness, equal distance: `EMD = 1/2 sum |p_v - q_v| <= t`.
//! - t-closeness, hierarchical distance (Li, Li, Venkatasubramanian 2007, section 4.2): with
//!   `extra(leaf v) = p_v - q_v` and, for an inner node `N`, `extra(N)` the sum over its
//!   children, `pos(N)`/`neg(N)` the sums of the positive/negative children's extras (absolute),
//!   `EMD = sum over inner nodes N of level(N) / H * min(pos(N), neg(N))`, `H` the hierarchy's
//!   height. The hierarchy must end in one root (e.g. `*`).
//! - prosecutor risk (the attacker knows the target is in the release): `1 / n` per record;
//!   a threshold `p` means `n >= ceil(1 / p)` (ARX implements it as k-anonymity likewise).
//! - journalist risk (the attacker does not know whether the target is in the release, which
//!   is a sample of a population): a record's risk is `E[1 / F]`, `F` its class's size in the
//!   population. Given the sampling fraction `π` (`sampling_fraction`, or `records /
//!   population`), we estimate it with the Benedetti–Franconi model that sdcMicro and μ-Argus
//!   use for individual risk: `F - n ~ NegativeBinomial(n, π)`, so
//!   `E[1/F] = π/(1-π) * ∫_0^∞ e^{-(n-1) w} σ(ln((1-π)/π) - w) dw` (σ the logistic function),
//!   which is `π ln(1/π) / (1-π)` for `n = 1`, tends to `π / n` for large `n`, and is `1 / n`
//!   for `π = 1`. It decreases in `n`, so a threshold is again a smallest class size.
//! - average risk: `published classes / published records` (the mean prosecutor risk, also the
//!   marketer risk). It is a property of the whole release, not of a class: when it is above the
//!   threshold, classes are suppressed smallest first (ties by their generalised values) until
//!   it is not, as ARX's `RiskBasedCriterion.enforce` does; among sets of classes to suppress,
//!   the smallest-first prefix reaching the threshold suppresses the fewest records.
//!
//! Comparisons allow `1e-9` of rounding (entropy and EMD are sums of floating-point terms): a
//! class exactly at the bound passes whatever order the terms were added in.
//!
//! **Monotonicity** (Flash's predictive tagging needs "the transformation satisfies the model
//! within the suppression limit" to be monotonic in the lattice). ARX records two flags per
//! criterion (`PrivacyCriterion.isMonotonicWithGeneralization` / `isMonotonicWithSuppression`):
//!
//! | criterion | with generalisation | with suppression | ARX |
//! |---|---|---|---|
//! | k-anonymity, prosecutor, journalist (class size) | yes | yes | `KAnonymity` (true, true) |
//! | distinct ℓ-diversity | yes | yes | `DistinctLDiversity`: `super(attribute, l, true, true)` |
//! | entropy ℓ-diversity | yes | **no** | `EntropyLDiversity`: `super(attribute, l, false, true)` |
//! | t-closeness (both distances) | yes | **no** | ARX marks `TCloseness` not monotonic at all (`super(attribute, false)`) |
//! | average risk | yes | yes | `AverageReidentificationRisk`: `super(true, true, threshold)` |
//!
//! Why: merging classes keeps distinct values and sizes, and entropy and EMD are concave and
//! convex in the distribution (the merged class's distribution is a weighted mean of its
//! parts'), so a merge of passing classes passes: with no suppression every criterion is
//! monotonic (for t-closeness this is Li, Li and Venkatasubramanian's "generalization
//! property"; we rely on it where ARX is conservative, and the exhaustive comparison test
//! checks it). With suppression, a refused class merged into a passing one is rescued by
//! k/distinct-ℓ/size thresholds, but can make an entropy or EMD class fail, so more records
//! are suppressed above: not monotonic. Average risk: suppressing a set of classes that works
//! below still works above (a merged class is suppressed only if both parts were). When the
//! model is not monotonic, the search tags with the monotonic part (everything but entropy
//! ℓ-diversity and t-closeness), which is implied by the whole, and checks the whole model on
//! every node the monotonic part accepts (see [`crate::search`]).

use crate::encode::{Generaliser, QiColumn, encode_column};
use crate::error::DeidError;
use crate::groupify::Classes;
use crate::hierarchy::HierarchySpec;
use crate::policy::{GroundDistance, LVariant, PrivacyModel};
use crate::table::Table;
use crate::{AttributeKind, Hierarchies, Policy};

/// Whether class `c` is suppressed under `flags` (empty: none is).
#[inline]
pub(crate) fn suppressed(flags: &[bool], c: usize) -> bool {
    flags.get(c).copied().unwrap_or(false)
}

/// Rounding allowed in entropy and EMD comparisons.
const EPSILON: f64 = 1e-9;

/// The smallest class whose prosecutor risk `1 / n` is at most `risk`.
pub(crate) fn min_size_for_risk(risk: f64) -> u64 {
    let n = (1.0 / risk).ceil();
    // 1/n may round above `risk` when 1/risk is a whole number computed inexactly.
    let mut n = if n.is_finite() {
        n.max(1.0) as u64
    } else {
        u64::MAX
    };
    while n > 1 && 1.0 / ((n - 1) as f64) <= risk {
        n -= 1;
    }
    while n < u64::MAX && 1.0 / (n as f64) > risk {
        n += 1;
    }
    n
}

/// The logistic function, without overflow.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Journalist risk of a record in a sample class of `n` records, when the sample is a fraction
/// `pi` of the population: `E[1/F]` with `F - n ~ NegativeBinomial(n, pi)` (Benedetti and
/// Franconi; see the module documentation for the integral).
pub fn journalist_risk(n: u64, pi: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    if pi >= 1.0 - 1e-12 {
        return 1.0 / n as f64;
    }
    let odds = pi / (1.0 - pi);
    let u0 = ((1.0 - pi) / pi).ln();
    if n == 1 {
        return odds * (1.0 / pi).ln();
    }
    // r = odds / (n-1) * ∫_0^∞ e^{-v} σ(u0 - v/(n-1)) dv, by Simpson's rule on [0, 40]
    // (e^-40 of the integrand's mass is left out; both factors vary on a scale of at least 1
    // in v, so 8192 steps give about 1e-11 relative error).
    let m = (n - 1) as f64;
    let steps = 8192usize;
    let upper = 40.0;
    let h = upper / steps as f64;
    let f = |v: f64| (-v).exp() * sigmoid(u0 - v / m);
    let mut sum = f(0.0) + f(upper);
    for i in 1..steps {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * f(i as f64 * h);
    }
    odds / m * sum * h / 3.0
}

/// The smallest class size whose journalist risk is at most `threshold`, or `records + 1`
/// when no class of the input's size is (the risk decreases with the class size).
fn min_size_for_journalist(threshold: f64, pi: f64, records: u64) -> u64 {
    let (mut lo, mut hi) = (1u64, records.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if journalist_risk(mid, pi) <= threshold {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// A sensitive attribute some criterion constrains.
#[derive(Debug, Clone)]
pub(crate) struct SensitiveColumn {
    /// Its name.
    pub name: String,
    /// Its position in the table.
    pub table_column: usize,
    /// Records per value (dictionary code) in the whole input.
    pub freq: Vec<u64>,
}

#[derive(Debug, Clone)]
struct LRule {
    sensitive: usize,
    variant: LVariant,
    l: f64,
    ln_l: f64,
}

#[derive(Debug, Clone)]
struct TRule {
    sensitive: usize,
    t: f64,
    /// The hierarchy for the hierarchical ground distance (encoded like a quasi-identifier).
    tree: Option<QiColumn>,
}

/// Which criteria a verdict applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Every criterion.
    Full,
    /// The criteria that are monotonic with suppression (all but entropy ℓ-diversity and
    /// t-closeness): implied by the full model.
    Monotonic,
}

/// Which classes of a transformation are suppressed, and how many records that is.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// Per class: suppressed; empty when none is (see [`suppressed`]).
    pub flags: Vec<bool>,
    /// Records suppressed.
    pub records: u64,
}

/// A privacy model resolved against one table: ready to judge equivalence classes.
#[derive(Debug, Clone)]
pub struct Criteria {
    model: PrivacyModel,
    records: u64,
    min_size: u64,
    sensitive: Vec<SensitiveColumn>,
    l: Vec<LRule>,
    t: Vec<TRule>,
    average: Option<f64>,
    sampling_fraction: Option<f64>,
}

impl Criteria {
    /// Resolves `policy.privacy` against `table`. `hierarchies` holds the CSV hierarchies by
    /// attribute name (those of t-closeness's hierarchical distance among them). Fails with
    /// [`DeidError::ModelUnsatisfiable`] when a rule cannot be met by any release of this
    /// data (ℓ above the number of distinct values, a population smaller than the input), and
    /// [`DeidError::PrivacyRule`] when a ground-distance hierarchy is unusable.
    pub fn new(
        policy: &Policy,
        table: &Table,
        hierarchies: &Hierarchies,
    ) -> Result<Self, DeidError> {
        let model = &policy.privacy;
        model.validate(&policy.attributes)?;
        let records = table.num_rows() as u64;
        let mut sensitive: Vec<SensitiveColumn> = Vec::new();
        let mut index_of = |name: &str| -> Result<usize, DeidError> {
            if let Some(i) = sensitive.iter().position(|s| s.name == name) {
                return Ok(i);
            }
            let column = table
                .column_index(name)
                .ok_or_else(|| DeidError::UnknownColumn {
                    column: name.to_string(),
                })?;
            debug_assert!(
                policy
                    .attribute(name)
                    .is_some_and(|a| a.kind == AttributeKind::Sensitive)
            );
            sensitive.push(SensitiveColumn {
                name: name.to_string(),
                table_column: column,
                freq: table.column(column).frequencies(),
            });
            Ok(sensitive.len() - 1)
        };
        let mut l_rules = Vec::new();
        for l in &model.l_diversity {
            let s = index_of(&l.attribute)?;
            l_rules.push(LRule {
                sensitive: s,
                variant: l.variant,
                l: l.l,
                ln_l: l.l.ln(),
            });
        }
        let mut t_rules = Vec::new();
        for (i, t) in model.t_closeness.iter().enumerate() {
            let s = index_of(&t.attribute)?;
            let tree = match &t.distance {
                GroundDistance::Equal => None,
                GroundDistance::Hierarchy(spec) => {
                    Some(ground_tree(i, &t.attribute, spec, table, hierarchies)?)
                }
            };
            t_rules.push(TRule {
                sensitive: s,
                t: t.t,
                tree,
            });
        }
        for (i, l) in model.l_diversity.iter().enumerate() {
            let s = &sensitive[l_rules[i].sensitive];
            let distinct = s.freq.iter().filter(|&&f| f > 0).count();
            if l.l > distinct as f64 {
                return Err(DeidError::ModelUnsatisfiable {
                    rule: format!(
                        "privacy.l-diversity[{}] (attribute `{}`)",
                        i + 1,
                        l.attribute
                    ),
                    reason: format!(
                        "l is {}, but the input holds only {distinct} distinct values of `{}`, so no class can hold {} of them",
                        l.l, l.attribute, l.l
                    ),
                });
            }
        }
        let risk = model.risk.clone().unwrap_or_default();
        let sampling_fraction = match (risk.population, risk.sampling_fraction) {
            (Some(population), _) => {
                if population < records {
                    return Err(DeidError::ModelUnsatisfiable {
                        rule: "privacy.risk.population".into(),
                        reason: format!(
                            "the population ({population}) is smaller than the input ({records} records), which is a sample of it"
                        ),
                    });
                }
                Some(records as f64 / population as f64)
            }
            (None, f) => f,
        };
        let mut min_size = model.min_class_size();
        if let (Some(threshold), Some(pi)) = (risk.journalist, sampling_fraction) {
            min_size = min_size.max(min_size_for_journalist(threshold, pi, records));
        }
        Ok(Self {
            model: model.clone(),
            records,
            min_size,
            sensitive,
            l: l_rules,
            t: t_rules,
            average: risk.average,
            sampling_fraction,
        })
    }

    /// The model these criteria come from.
    pub fn model(&self) -> &PrivacyModel {
        &self.model
    }

    /// The smallest class any criterion allows: k, the prosecutor and journalist thresholds,
    /// and ℓ (a class needs ℓ records to hold ℓ values).
    pub fn min_class_size(&self) -> u64 {
        self.min_size
    }

    /// The sampling fraction journalist risk is measured with, if the policy gives one.
    pub fn sampling_fraction(&self) -> Option<f64> {
        self.sampling_fraction
    }

    /// The sensitive attributes that criteria constrain, in the order [`Criteria::class_ok`]
    /// takes their histograms: (name, position in the table).
    pub fn sensitive_attributes(&self) -> Vec<(&str, usize)> {
        self.sensitive
            .iter()
            .map(|s| (s.name.as_str(), s.table_column))
            .collect()
    }

    /// Whether the model is monotonic for this search (see the module documentation).
    pub fn is_monotonic(&self, with_suppression: bool) -> bool {
        self.model.is_monotonic(with_suppression)
    }

    pub(crate) fn sensitive_columns(&self) -> &[SensitiveColumn] {
        &self.sensitive
    }

    /// Whether one equivalence class may be published: the pure per-class predicate.
    ///
    /// `size` is the class's number of records; `histograms[i]` is its histogram of the
    /// `i`-th of [`Criteria::sensitive_attributes`], as `(code, count)` pairs where `code` is
    /// the value's dictionary code in the table (its position among the column's distinct
    /// values in order of first appearance, as [`Table`] numbers them) and `count > 0` the
    /// records holding it; each code at most once, in any order; the counts sum to `size`.
    /// Average risk is not a per-class property: see [`Criteria::average_risk_ok`].
    pub fn class_ok(&self, size: u64, histograms: &[&[(u32, u32)]]) -> bool {
        self.class_passes(
            size,
            |s| histograms.get(s).copied().unwrap_or(&[]),
            Part::Full,
        )
    }

    /// Whether a release of `classes` published classes holding `records` records meets the
    /// average-risk threshold (true when there is none, or nothing is published).
    pub fn average_risk_ok(&self, classes: u64, records: u64) -> bool {
        match self.average {
            Some(threshold) if records > 0 => classes as f64 <= threshold * records as f64,
            _ => true,
        }
    }

    fn class_passes<'h>(
        &self,
        size: u64,
        hist: impl Fn(usize) -> &'h [(u32, u32)],
        part: Part,
    ) -> bool {
        if size < self.min_size {
            return false;
        }
        for rule in &self.l {
            let h = hist(rule.sensitive);
            match rule.variant {
                LVariant::Distinct => {
                    if (h.len() as f64) < rule.l {
                        return false;
                    }
                }
                LVariant::Entropy => {
                    if part == Part::Full && entropy(size, h) < rule.ln_l - EPSILON {
                        return false;
                    }
                }
            }
        }
        if part == Part::Full {
            for rule in &self.t {
                let h = hist(rule.sensitive);
                if self.emd(rule, size, h) > rule.t + EPSILON {
                    return false;
                }
            }
        }
        true
    }

    fn emd(&self, rule: &TRule, size: u64, h: &[(u32, u32)]) -> f64 {
        let freq = &self.sensitive[rule.sensitive].freq;
        match &rule.tree {
            None => emd_equal(freq, self.records, size, h),
            Some(tree) => emd_hierarchical(tree, self.records, size, h),
        }
    }

    /// Which classes of a transformation are suppressed under the full model or its
    /// monotonic part: those the per-class predicate refuses, then, if the average risk of the
    /// rest is above its threshold, the smallest of the rest until it is not.
    pub(crate) fn verdict(&self, classes: &Classes, part: Part) -> Verdict {
        let n = classes.len();
        // Allocated at the first suppressed class: most transformations the search meets
        // either suppress nothing or are refused, and k-anonymity alone should not pay for
        // flags it does not need.
        let mut flags: Vec<bool> = Vec::new();
        let mut records = 0u64;
        let mut published_classes = 0u64;
        for c in 0..n {
            let size = u64::from(classes.counts[c]);
            // A class without histograms (none were built) has no sensitive values to show:
            // it fails any ℓ-diversity or t-closeness rule rather than panicking.
            let hist = |s: usize| classes.hists.get(s).map_or(&[][..], |h| h.class(c));
            if !self.class_passes(size, hist, part) {
                if flags.is_empty() {
                    flags = vec![false; n];
                }
                flags[c] = true;
                records += size;
            } else {
                published_classes += 1;
            }
        }
        if let Some(threshold) = self.average {
            if flags.is_empty() {
                flags = vec![false; n];
            }
            let mut published = self.records - records;
            if published > 0 && published_classes as f64 > threshold * published as f64 {
                let mut order: Vec<usize> = (0..n).filter(|&c| !flags[c]).collect();
                order.sort_unstable_by(|&a, &b| {
                    classes.counts[a]
                        .cmp(&classes.counts[b])
                        .then_with(|| classes.key(a).cmp(classes.key(b)))
                });
                for c in order {
                    let size = u64::from(classes.counts[c]);
                    flags[c] = true;
                    records += size;
                    published -= size;
                    published_classes -= 1;
                    if published == 0 || published_classes as f64 <= threshold * published as f64 {
                        break;
                    }
                }
            }
        }
        Verdict { flags, records }
    }

    /// The achieved figures of the published classes of a release.
    pub(crate) fn achieved(&self, classes: &Classes, flags: &[bool]) -> Achieved {
        let published = |c: &usize| !suppressed(flags, *c);
        let l = self
            .l
            .iter()
            .map(|rule| {
                (0..classes.len())
                    .filter(published)
                    .map(|c| {
                        let h = classes
                            .hists
                            .get(rule.sensitive)
                            .map_or(&[][..], |h| h.class(c));
                        match rule.variant {
                            LVariant::Distinct => h.len() as f64,
                            LVariant::Entropy => entropy(u64::from(classes.counts[c]), h).exp(),
                        }
                    })
                    .min_by(f64::total_cmp)
            })
            .collect();
        let t = self
            .t
            .iter()
            .map(|rule| {
                (0..classes.len())
                    .filter(published)
                    .map(|c| {
                        self.emd(
                            rule,
                            u64::from(classes.counts[c]),
                            classes
                                .hists
                                .get(rule.sensitive)
                                .map_or(&[][..], |h| h.class(c)),
                        )
                    })
                    .max_by(f64::total_cmp)
            })
            .collect();
        Achieved { l, t }
    }
}

/// Achieved ℓ (smallest over published classes; for entropy, `exp(entropy)`) and t (largest),
/// one per rule in policy order; `None` when nothing is published.
#[derive(Debug, Clone)]
pub(crate) struct Achieved {
    pub l: Vec<Option<f64>>,
    pub t: Vec<Option<f64>>,
}

/// Shannon entropy (natural log) of a class's values.
fn entropy(size: u64, h: &[(u32, u32)]) -> f64 {
    if size == 0 {
        return 0.0;
    }
    let n = size as f64;
    let mut sum = 0.0;
    for &(_, c) in h {
        let c = f64::from(c);
        sum += c * c.ln();
    }
    (n.ln() - sum / n).max(0.0)
}

/// EMD with equal ground distance: `1/2 sum_v |p_v - q_v|`; values absent from the class
/// contribute `q_v` each, summed exactly as `(N - records of the class's values) / N`.
fn emd_equal(freq: &[u64], records: u64, size: u64, h: &[(u32, u32)]) -> f64 {
    if size == 0 || records == 0 {
        return 0.0;
    }
    let n = size as f64;
    let total = records as f64;
    let mut sum = 0.0;
    let mut present: u64 = 0;
    for &(code, c) in h {
        let f = freq.get(code as usize).copied().unwrap_or(0);
        present += f;
        sum += (f64::from(c) / n - f as f64 / total).abs();
    }
    sum += records.saturating_sub(present) as f64 / total;
    sum / 2.0
}

/// EMD with the hierarchical ground distance (Li, Li, Venkatasubramanian 2007, section 4.2),
/// visiting only the hierarchy's nodes under the class's values: an untouched child `C` of a
/// node has `extra(C) = -q(C)`, so it only adds `q(C)` to the node's negative extra.
fn emd_hierarchical(tree: &QiColumn, records: u64, size: u64, h: &[(u32, u32)]) -> f64 {
    let height = usize::from(tree.height);
    if size == 0 || records == 0 || height == 0 {
        return 0.0;
    }
    let n = size as f64;
    let total = records as f64;
    // (id at the current level, extra, q mass of the node as a record count)
    let mut level: Vec<(u32, f64, u64)> = h
        .iter()
        .map(|&(code, c)| {
            let f = tree.freq[0].get(code as usize).copied().unwrap_or(0);
            (code, f64::from(c) / n - f as f64 / total, f)
        })
        .collect();
    level.sort_unstable_by_key(|e| e.0);
    let mut cost = 0.0;
    for l in 1..=height {
        let up = tree.up_map((l - 1) as u8, l as u8);
        // Codes outside the hierarchy's domain (a caller's mistake) are left out.
        let mut parents: Vec<(u32, f64, u64)> = level
            .iter()
            .filter_map(|&(id, e, q)| up.get(id as usize).map(|&p| (p, e, q)))
            .collect();
        // Stable: children stay in id order within a parent, so sums are reproducible.
        parents.sort_by_key(|e| e.0);
        let mut next = Vec::new();
        let mut i = 0;
        while i < parents.len() {
            let id = parents[i].0;
            let (mut pos, mut neg, mut extra, mut touched_q) = (0.0, 0.0, 0.0, 0u64);
            while i < parents.len() && parents[i].0 == id {
                let (_, e, q) = parents[i];
                if e > 0.0 {
                    pos += e;
                } else {
                    neg -= e;
                }
                extra += e;
                touched_q += q;
                i += 1;
            }
            let q_node = tree.freq[l].get(id as usize).copied().unwrap_or(0);
            let untouched = q_node.saturating_sub(touched_q) as f64 / total;
            neg += untouched;
            extra -= untouched;
            cost += l as f64 / height as f64 * pos.min(neg);
            next.push((id, extra, q_node));
        }
        level = next;
    }
    cost
}

/// Encodes the ground-distance hierarchy of t-closeness rule `i` over the sensitive column.
fn ground_tree(
    i: usize,
    attribute: &str,
    spec: &HierarchySpec,
    table: &Table,
    hierarchies: &Hierarchies,
) -> Result<QiColumn, DeidError> {
    let rule = || format!("privacy.t-closeness[{}] (attribute `{attribute}`)", i + 1);
    let column = table
        .column_index(attribute)
        .ok_or_else(|| DeidError::UnknownColumn {
            column: attribute.to_string(),
        })?;
    let generaliser = match spec {
        HierarchySpec::Csv(path) => Generaliser::Table(hierarchies.get(attribute).ok_or_else(
            || DeidError::PrivacyRule {
                rule: rule(),
                message: format!(
                    "the ground distance uses CSV hierarchy {}, but no hierarchy was loaded for `{attribute}`",
                    path.display()
                ),
            },
        )?),
        other => Generaliser::Builtin(other),
    };
    let tree = encode_column(table, column, &generaliser)?;
    let roots = tree.cardinality(tree.height);
    if tree.height == 0 || roots != 1 {
        return Err(DeidError::PrivacyRule {
            rule: rule(),
            message: format!(
                "the ground-distance hierarchy must generalise every value to one root (e.g. `*`) at its top level; its top level has {roots} values"
            ),
        });
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prosecutor_sizes() {
        assert_eq!(min_size_for_risk(0.2), 5);
        assert_eq!(min_size_for_risk(0.25), 4);
        assert_eq!(min_size_for_risk(0.3), 4);
        assert_eq!(min_size_for_risk(1.0), 1);
        assert_eq!(min_size_for_risk(0.1), 10);
        assert_eq!(min_size_for_risk(1.0 / 3.0), 3);
    }

    /// E[1/F] by summing the negative binomial directly.
    fn series(n: u64, pi: f64) -> f64 {
        let mut p = pi.powi(n as i32); // P(X = 0)
        let mut sum = 0.0;
        let mut x = 0u64;
        let mut mass = 0.0;
        while mass < 1.0 - 1e-15 && x < 10_000_000 {
            sum += p / (n + x) as f64;
            mass += p;
            p *= (n + x) as f64 / (x + 1) as f64 * (1.0 - pi);
            x += 1;
        }
        sum
    }

    #[test]
    fn journalist_risk_matches_the_series_and_limits() {
        for &pi in &[0.05, 0.1, 0.3, 0.5, 0.9] {
            for n in 1..12 {
                let a = journalist_risk(n, pi);
                let b = series(n, pi);
                assert!((a - b).abs() <= 1e-9 * b, "n {n} pi {pi}: {a} vs {b}");
            }
        }
        // Closed form for one record: π ln(1/π) / (1 - π).
        let pi: f64 = 0.01;
        assert!((journalist_risk(1, pi) - pi * (1.0 / pi).ln() / (1.0 - pi)).abs() < 1e-15);
        // Whole population: the prosecutor risk.
        assert_eq!(journalist_risk(4, 1.0), 0.25);
        // Large classes: about π / n, and always below the prosecutor risk.
        let r = journalist_risk(1000, 0.01);
        assert!((r - 0.01 / 1000.0).abs() < 0.02 * r, "{r}");
        for n in 1..50 {
            assert!(journalist_risk(n + 1, 0.2) < journalist_risk(n, 0.2));
            assert!(journalist_risk(n, 0.2) < 1.0 / n as f64);
        }
        assert_eq!(min_size_for_journalist(0.05, 1.0, 100), 20);
        let m = min_size_for_journalist(0.05, 0.1, 100);
        assert!(journalist_risk(m, 0.1) <= 0.05 && journalist_risk(m - 1, 0.1) > 0.05);
        assert_eq!(min_size_for_journalist(1e-9, 0.5, 10), 11);
    }

    #[test]
    fn entropy_of_uniform_classes() {
        assert!((entropy(6, &[(0, 3), (1, 3)]) - 2f64.ln()).abs() < 1e-15);
        assert!((entropy(9, &[(0, 3), (1, 3), (2, 3)]) - 3f64.ln()).abs() < 1e-15);
        assert_eq!(entropy(4, &[(7, 4)]), 0.0);
    }

    #[test]
    fn equal_distance_emd() {
        // Overall: values 0..3 with 4, 4, 2 of 10 records. A class of 5 with only value 0:
        // 1/2 (|1 - 0.4| + 0.4 + 0.2) = 0.6.
        let freq = [4, 4, 2];
        assert!((emd_equal(&freq, 10, 5, &[(0, 5)]) - 0.6).abs() < 1e-15);
        // The whole table is at distance 0.
        assert!(emd_equal(&freq, 10, 10, &[(2, 2), (0, 4), (1, 4)]).abs() < 1e-15);
    }
}
