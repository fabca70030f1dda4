//! Utility metrics, as ARX defines them (ARX 3.x, `org.deidentifier.arx.metric.v2`, with the
//! default generalisation/suppression factor 0.5, which weighs both by 1).
//!
//! Notation: `N` records; a transformation puts them in equivalence classes `E`; a class is
//! *suppressed* when the privacy model refuses it (`|E| < k`, a class that is not ℓ-diverse,
//! ...; see [`crate::privacy`] for which classes a model suppresses), and only
//! transformations whose suppressed records fit the suppression limit are evaluated. For
//! quasi-identifier `j` at level `l`, `g(v)` is the label of original value `v`, `f(v)` the
//! number of records with value `v`, and `F(g)` the number of records whose value generalises to
//! `g`. Lower is better for all three metrics.
//!
//! **Non-uniform entropy** (`MetricMDNUNMEntropy`, ARX's `createEntropyMetric()`, aggregated by
//! sum), in bits:
//!
//! ```text
//! NUE = sum_j sum_v f(v) * log2(F(g(v)) / f(v))                      [every record]
//!     + sum_j sum_g' c_j(g') * log2(S / c_j(g'))                      [suppressed records]
//! ```
//!
//! The first line is the entropy of generalisation over *all* records, suppressed ones included
//! (`MetricMDNUEntropyPrecomputed`). The second is ARX's extra cost of suppression: `S` is the
//! number of suppressed records and `c_j(g')` how many of them carry generalised label `g'` in
//! quasi-identifier `j` (the labels they had before being starred). With 0% suppression the
//! second line is 0 and NUE depends only on the levels.
//!
//! **Monotonic non-uniform entropy** (`MetricMDNUEntropy`, `createEntropyMetric(true)`): the
//! first line alone, so suppressed records cost what they would published.
//!
//! **Loss** (`MetricMDNMLoss`, Iyengar's LM, aggregated by geometric mean as ARX's
//! `createLossMetric()`): with `D_j` the size of the hierarchy's domain (its rows; for a built-in
//! hierarchy the distinct values in the data) and `leaves(g)` the domain values under `g`,
//!
//! ```text
//! raw_j  = sum over published records of leaves(g) / D_j   +   1 per suppressed record
//! loss_j = (raw_j - N / D_j) / (N - N / D_j)       (0 when D_j = 1), in 0..1
//! Loss   = (prod_j (1 + loss_j))^(1/q) - 1
//! ```
//!
//! **Discernibility** (`MetricSDNMDiscernability`, Bayardo & Agrawal):
//!
//! ```text
//! DM = sum over published classes |E|^2  +  sum over suppressed classes N * |E|
//! ```
//!
//! Monotonicity: without suppressed records each metric never decreases when a transformation
//! is generalised further, so with a 0% limit the optimum is a minimal anonymous transformation
//! (Flash then needs nothing more). With suppression none is monotonic, and the search uses a
//! lower bound that is: the metric with suppressed records counted as if published (the first
//! line of NUE; Loss with `leaves(g) / D_j` for every record; `sum |E|^2` for DM). A
//! transformation's metric is at least its bound, and a bound never decreases upwards.
//!
//! Exactness: class sizes and the Loss numerators are summed as integers and the NUE terms in a
//! fixed order, so a transformation's value does not depend on the order its classes were
//! found in: the search and the exhaustive check compare bit-identical numbers.

use crate::encode::Encoded;
use crate::groupify::Classes;
use crate::policy::UtilityMetric;
use crate::privacy::suppressed;

/// All three metrics of one transformation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Utility {
    pub loss: f64,
    pub loss_per_qi: Vec<f64>,
    pub discernibility: f64,
    pub non_uniform_entropy: f64,
}

/// The metric of a transformation whose classes flagged in `suppressed` are suppressed.
pub(crate) fn value(
    metric: UtilityMetric,
    enc: &Encoded,
    classes: &Classes,
    suppressed: &[bool],
) -> f64 {
    match metric {
        UtilityMetric::NonUniformEntropy => nue(enc, classes, suppressed),
        UtilityMetric::MonotonicNonUniformEntropy => nue_generalisation(enc, &classes.levels) + 0.0,
        UtilityMetric::Loss => loss(enc, classes, suppressed).0,
        UtilityMetric::Discernibility => discernibility(enc, classes, suppressed),
    }
}

/// All metrics of a transformation whose classes flagged in `suppressed` are suppressed.
pub(crate) fn utility(enc: &Encoded, classes: &Classes, suppressed: &[bool]) -> Utility {
    let (loss, loss_per_qi) = loss(enc, classes, suppressed);
    Utility {
        loss,
        loss_per_qi,
        discernibility: discernibility(enc, classes, suppressed),
        non_uniform_entropy: nue(enc, classes, suppressed),
    }
}

/// A lower bound for the metric of `levels` and of every transformation above it, computed
/// without grouping; `None` for discernibility (which needs the classes).
pub(crate) fn bound_from_levels(
    metric: UtilityMetric,
    enc: &Encoded,
    levels: &[u8],
) -> Option<f64> {
    match metric {
        UtilityMetric::NonUniformEntropy | UtilityMetric::MonotonicNonUniformEntropy => {
            Some(nue_generalisation(enc, levels))
        }
        UtilityMetric::Loss => {
            let per: Vec<f64> = enc
                .qis
                .iter()
                .zip(levels)
                .map(|(qi, &l)| normalise_loss(qi.share_sum[l as usize], enc.records, qi.domain))
                .collect();
            Some(geometric(&per))
        }
        UtilityMetric::Discernibility => None,
    }
}

/// A lower bound for the metric of `classes`' transformation and of every transformation above
/// it: the metric with no record suppressed.
pub(crate) fn bound_from_classes(metric: UtilityMetric, enc: &Encoded, classes: &Classes) -> f64 {
    match metric {
        UtilityMetric::Discernibility => {
            let dm: u128 = classes
                .counts
                .iter()
                .map(|&c| u128::from(c) * u128::from(c))
                .sum();
            dm as f64
        }
        _ => bound_from_levels(metric, enc, &classes.levels).unwrap_or(0.0),
    }
}

fn nue_generalisation(enc: &Encoded, levels: &[u8]) -> f64 {
    let mut bits = 0.0f64;
    for (qi, &l) in enc.qis.iter().zip(levels) {
        bits += qi.nue[l as usize];
    }
    bits
}

fn nue(enc: &Encoded, classes: &Classes, flags: &[bool]) -> f64 {
    let mut bits = nue_generalisation(enc, &classes.levels);
    if flags.is_empty() {
        return bits + 0.0;
    }
    let total: u64 = classes
        .counts
        .iter()
        .zip(flags)
        .filter(|(_, f)| **f)
        .map(|(&n, _)| u64::from(n))
        .sum();
    if total == 0 {
        return bits + 0.0;
    }
    let s = total as f64;
    for (j, qi) in enc.qis.iter().enumerate() {
        let mut c = vec![0u64; qi.cardinality(classes.levels[j])];
        for (k, &n) in classes.counts.iter().enumerate() {
            if suppressed(flags, k) {
                c[classes.key(k)[j] as usize] += u64::from(n);
            }
        }
        for &n in &c {
            if n > 0 {
                bits += n as f64 * (s / n as f64).log2();
            }
        }
    }
    bits + 0.0
}

pub(crate) fn normalise_loss(share_sum: u128, records: u64, domain: u64) -> f64 {
    // (raw - N/D) / (N - N/D) with raw = share_sum / D, i.e. (share_sum - N) / (N (D - 1)).
    if domain <= 1 || records == 0 {
        return 0.0;
    }
    let n = u128::from(records);
    let num = share_sum.saturating_sub(n);
    let den = n * u128::from(domain - 1);
    num as f64 / den as f64
}

pub(crate) fn geometric(per: &[f64]) -> f64 {
    if per.is_empty() {
        return 0.0;
    }
    let exp = 1.0 / per.len() as f64;
    let mut product = 1.0f64;
    for &v in per {
        product *= (v + 1.0).powf(exp);
    }
    (product - 1.0).max(0.0) + 0.0
}

fn loss(enc: &Encoded, classes: &Classes, flags: &[bool]) -> (f64, Vec<f64>) {
    let per: Vec<f64> = enc
        .qis
        .iter()
        .enumerate()
        .map(|(j, qi)| {
            let leaves = &qi.leaves[classes.levels[j] as usize];
            let mut share_sum: u128 = 0;
            for (k, &n) in classes.counts.iter().enumerate() {
                let per_record = if !suppressed(flags, k) {
                    leaves[classes.key(k)[j] as usize]
                } else {
                    qi.domain
                };
                share_sum += u128::from(n) * u128::from(per_record);
            }
            normalise_loss(share_sum, enc.records, qi.domain)
        })
        .collect();
    (geometric(&per), per)
}

fn discernibility(enc: &Encoded, classes: &Classes, flags: &[bool]) -> f64 {
    let n = u128::from(enc.records);
    let dm: u128 = classes
        .counts
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            let c = u128::from(c);
            if !suppressed(flags, k) { c * c } else { n * c }
        })
        .sum();
    dm as f64
}
