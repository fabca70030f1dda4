//! Optimal full-domain generalisation: ARX's Flash algorithm (Kohlmayer, Prasser, Eckert,
//! Kemper, Kuhn: "Flash: efficient, stable and optimal k-anonymity", 2012) and an exhaustive
//! search to check it against.
//!
//! **Flash.** Nodes are visited level by level (level = sum of the levels), each level's
//! unclassified nodes in the order of ARX's `FLASHStrategy` (level, then mean relative
//! generalisation, then most distinct values kept). From each, a path is built greedily upwards
//! through unclassified successors (same order) and searched by bisection: a checked node that
//! is anonymous tags itself and all its successors anonymous, one that is not tags itself and
//! all its predecessors non-anonymous (predictive tagging: anonymity is monotonic), and the
//! successors of non-anonymous nodes go to a priority queue (same order) that seeds further
//! paths. Every node ends up tagged, and a node is only tagged anonymous without a check when
//! it lies above a checked anonymous node: so every *minimal* anonymous node is checked.
//!
//! **Optimality.** Each checked anonymous node's metric is evaluated and the best kept (ties
//! broken by lower level sum, then lexicographically smaller levels). A node whose lower bound
//! (see [`crate::metric`]) is already worse than the best is pruned with everything above it,
//! as ARX does. With a 0% suppression limit (or ARX's monotonic entropy) the metric is
//! monotonic, so a node above an anonymous node is never better than it and the best checked
//! node is the optimum. Otherwise a second pass visits every node tagged anonymous but not
//! checked, in level order, carrying the best lower bound known from below, and evaluates
//! those that could still beat the best. The property test `tests/flash_vs_exhaustive.rs`
//! checks all of this against the exhaustive search and a naive oracle.
//!
//! **Models that are not monotonic.** With suppression, entropy ℓ-diversity and t-closeness
//! are not monotonic (see [`crate::privacy`]; ARX's `isMonotonicWithSuppression` is false for
//! both): a node above an anonymous one may need more records suppressed than allowed. Then
//! the tags follow the model's monotonic part (k, distinct ℓ, risk thresholds), which every
//! node satisfying the whole model satisfies: a node that fails it fails the whole model, and
//! tagging its predecessors is sound. A checked node is a candidate only when the whole model
//! holds, and the second pass above checks *every* node tagged by the monotonic part (unless
//! its utility bound shows it cannot win), so no candidate goes unchecked. This is ARX's
//! approach too (Flash tags with the k-anonymity property when the full model is not
//! monotonic). The property test `tests/flash_vs_exhaustive.rs` covers these models.
//!
//! **Checking a node.** Two exact shortcuts come first (`k` is the smallest class any
//! criterion allows, [`Criteria::min_class_size`]): if one quasi-identifier alone, a record's
//! class (a witness, counted exactly from the records sharing its rarest value, see
//! `src/witness.rs`), or a pair of quasi-identifiers puts more records in classes or values
//! rarer than `k` than may be suppressed, the node is not anonymous (no grouping needed; see
//! `src/precheck.rs`); and grouping stops once there are more classes than an anonymous node
//! can have (`N / k` plus the records that may be suppressed). The small classes of each
//! grouped node that is not anonymous become witnesses for the nodes after it. Otherwise the
//! node's classes are rolled up from the cached classes of a checked node below it (the one
//! with fewest classes), or from the bottom node's classes (the distinct rows), never from the
//! rows again (ARX's snapshots do the same job). `nodes_checked` counts checks, `nodes_grouped` groupings.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::encode::Encoded;
use crate::fx::FxHashMap;
use crate::groupify::{Classes, group};
use crate::lattice::Lattice;
use crate::metric;
use crate::policy::UtilityMetric;
use crate::precheck::{Precheck, PrecheckStats};
use crate::privacy::{Criteria, Part};

const ANON: u8 = 1;
const NOT_ANON: u8 = 2;
const PRUNED: u8 = 4;
const CHECKED: u8 = 8;

/// Cached classes kept for roll-ups: at most this many nodes ...
const CACHE_ENTRIES: usize = 32;
/// ... and this many bytes.
const CACHE_BYTES: usize = 96 << 20;

/// The search's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config<'a> {
    pub model: &'a Criteria,
    pub metric: UtilityMetric,
    /// Records that may be suppressed (`floor(limit * N)`).
    pub max_suppressed: u64,
}

/// The optimum found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub node: u32,
    pub value: f64,
}

/// Counters of one search.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Nodes checked (the bottom included).
    pub checked: u64,
    /// Nodes whose equivalence classes were computed.
    pub grouped: u64,
    /// What the prechecks refused and computed.
    pub precheck: PrecheckStats,
    /// Wall time of the search.
    pub elapsed: Duration,
}

/// Rolls `src` up to `levels`.
pub(crate) fn rollup(
    enc: &Encoded,
    src: &Classes,
    levels: &[u8],
    want_mapping: bool,
) -> (Classes, Option<Vec<u32>>) {
    rollup_limited(enc, src, levels, want_mapping, usize::MAX).expect("no class limit")
}

/// Rolls `src` up to `levels`, giving up when there are more than `max_classes` classes.
pub(crate) fn rollup_limited(
    enc: &Encoded,
    src: &Classes,
    levels: &[u8],
    want_mapping: bool,
    max_classes: usize,
) -> Option<(Classes, Option<Vec<u32>>)> {
    let maps: Vec<&[u32]> = enc
        .qis
        .iter()
        .enumerate()
        .map(|(j, qi)| qi.up_map(src.levels[j], levels[j]))
        .collect();
    let cards: Vec<u32> = enc
        .qis
        .iter()
        .zip(levels)
        .map(|(qi, &l)| qi.cardinality(l) as u32)
        .collect();
    let identity: Vec<bool> = src.levels.iter().zip(levels).map(|(a, b)| a == b).collect();
    let with_hists = !src.hists.is_empty();
    let (keys, counts, mapping) = group(
        &src.keys,
        Some(&src.counts),
        enc.q(),
        &maps,
        &identity,
        &cards,
        want_mapping || with_hists,
        max_classes,
    )?;
    let hists = match (&mapping, with_hists) {
        (Some(m), true) => src.hists.iter().map(|h| h.merge(m, counts.len())).collect(),
        _ => Vec::new(),
    };
    Some((
        Classes {
            levels: levels.to_vec(),
            keys,
            counts,
            hists,
        },
        if want_mapping { mapping } else { None },
    ))
}

impl Config<'_> {
    /// The most classes an anonymous transformation of `records` can have: every class
    /// within the model has at least `k` records, and each refused one at least one suppressed
    /// record. Grouping stops past this: the node is then not anonymous.
    pub(crate) fn max_classes(&self, records: u64) -> usize {
        let k = self.model.min_class_size().max(1);
        usize::try_from(records / k + self.max_suppressed).unwrap_or(usize::MAX)
    }
}

/// Computes nodes' classes from the best cached node below them.
struct Evaluator<'a> {
    enc: &'a Encoded,
    base: &'a Arc<Classes>,
    cache: Vec<Arc<Classes>>,
    checked: u64,
}

impl<'a> Evaluator<'a> {
    fn new(enc: &'a Encoded, base: &'a Arc<Classes>) -> Self {
        Self {
            enc,
            base,
            cache: Vec::new(),
            checked: 0,
        }
    }

    /// The classes `levels` would be rolled up from: the cached node below with fewest classes,
    /// else the bottom node.
    fn source(&self, levels: &[u8]) -> &Arc<Classes> {
        let mut src = self.base;
        for c in &self.cache {
            if Lattice::leq(&c.levels, levels) && c.len() < src.len() {
                src = c;
            }
        }
        src
    }

    /// The classes of `levels`, or `None` if there are more than `max_classes`.
    fn classes(&mut self, levels: &[u8], max_classes: usize) -> Option<Arc<Classes>> {
        self.checked += 1;
        let src = self.source(levels);
        if src.levels == levels {
            return (src.len() <= max_classes).then(|| Arc::clone(src));
        }
        let (classes, _) = rollup_limited(self.enc, src, levels, false, max_classes)?;
        let classes = Arc::new(classes);
        self.cache.push(Arc::clone(&classes));
        let mut bytes: usize = self.cache.iter().map(|c| c.heap_bytes()).sum();
        // Over the byte budget, drop the largest (the most expensive to keep, and the least
        // useful as a source); over the count, the oldest.
        while bytes > CACHE_BYTES && self.cache.len() > 1 {
            let largest = (0..self.cache.len())
                .max_by_key(|&i| self.cache[i].heap_bytes())
                .unwrap_or(0);
            bytes -= self.cache[largest].heap_bytes();
            self.cache.remove(largest);
        }
        while self.cache.len() > CACHE_ENTRIES {
            self.cache.remove(0);
        }
        Some(classes)
    }
}

/// Flash's order: level, mean relative generalisation, then more distinct values kept; node
/// number last, for determinism.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StrategyKey {
    level: u32,
    generalisation: f64,
    lost_distinct: f64,
    node: u32,
}

impl Eq for StrategyKey {}

impl Ord for StrategyKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.level
            .cmp(&other.level)
            .then(self.generalisation.total_cmp(&other.generalisation))
            .then(self.lost_distinct.total_cmp(&other.lost_distinct))
            .then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for StrategyKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Whether (value, tie) of `a` is strictly better than of `b`.
fn better(lattice: &Lattice, a_value: f64, a: u32, b_value: f64, b: u32) -> bool {
    match (a_value + 0.0).total_cmp(&(b_value + 0.0)) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => lattice.tie_key(a) < lattice.tie_key(b),
    }
}

struct Flash<'a> {
    lattice: &'a Lattice,
    enc: &'a Encoded,
    config: Config<'a>,
    /// Whether the model and the metric are both monotonic here (no second pass needed).
    monotonic: bool,
    /// Whether the privacy model alone is: if not, tags follow its monotonic part and the
    /// whole model is checked on each node separately.
    model_monotonic: bool,
    tags: Vec<u8>,
    eval: Evaluator<'a>,
    best: Option<Found>,
    /// Exact lower bounds of checked nodes (second pass only).
    checked_bound: FxHashMap<u32, f64>,
    /// Necessary conditions checked before grouping (see [`crate::precheck`]).
    precheck: Precheck<'a>,
    checked: u64,
    stack: Vec<u32>,
}

impl<'a> Flash<'a> {
    fn key(&self, node: u32) -> StrategyKey {
        let q = self.lattice.q().max(1) as f64;
        let mut generalisation = 0.0;
        let mut kept = 0.0;
        for (j, qi) in self.enc.qis.iter().enumerate() {
            let l = self.lattice.level(node, j);
            if qi.height > 0 {
                generalisation += f64::from(l) / f64::from(qi.height);
            }
            kept += qi.cardinality(l) as f64 / qi.cardinality(0).max(1) as f64;
        }
        StrategyKey {
            level: self.lattice.level_sum(node),
            generalisation: generalisation / q,
            lost_distinct: 1.0 - kept / q,
            node,
        }
    }

    fn sorted(&self, nodes: impl Iterator<Item = u32>) -> Vec<u32> {
        let mut keyed: Vec<StrategyKey> = nodes.map(|n| self.key(n)).collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|k| k.node).collect()
    }

    /// Tags `node` and everything above (`up`) or below it with `flag`.
    fn tag_closure(&mut self, node: u32, flag: u8, up: bool) {
        self.stack.clear();
        self.stack.push(node);
        while let Some(n) = self.stack.pop() {
            if self.tags[n as usize] & flag != 0 {
                continue;
            }
            self.tags[n as usize] |= flag;
            if up {
                self.stack.extend(self.lattice.successors(n));
            } else {
                self.stack.extend(self.lattice.predecessors(n));
            }
        }
    }

    fn worse_than_best(&self, bound: f64, node: u32) -> bool {
        match &self.best {
            Some(best) => better(self.lattice, best.value, best.node, bound, node),
            None => false,
        }
    }

    /// Whether `node` needs no check: classified, or pruned by its utility bound.
    fn skip(&mut self, node: u32) -> bool {
        if self.tags[node as usize] & (ANON | NOT_ANON | PRUNED) != 0 {
            return true;
        }
        if self.best.is_some() {
            let levels = self.lattice.levels(node);
            if let Some(bound) = metric::bound_from_levels(self.config.metric, self.enc, &levels)
                && self.worse_than_best(bound, node)
            {
                self.tag_closure(node, PRUNED, true);
                return true;
            }
        }
        false
    }

    fn consider(&mut self, node: u32, value: f64) {
        let improves = match &self.best {
            None => true,
            Some(best) => better(self.lattice, value, node, best.value, best.node),
        };
        if improves {
            self.best = Some(Found { node, value });
        }
    }

    /// Checks a node: groups it, tags it (and its closure), evaluates it when anonymous.
    ///
    /// First the necessary conditions of [`crate::precheck`]: if one quasi-identifier alone,
    /// the classes of witnesses or a pair of quasi-identifiers put more records into classes
    /// smaller than `k` than may be suppressed, the node is not anonymous, and is tagged so
    /// exactly as if grouped. A grouped node that is not anonymous lends its small classes
    /// to the witnesses.
    fn check(&mut self, node: u32) -> bool {
        self.checked += 1;
        self.tags[node as usize] |= CHECKED;
        let levels = self.lattice.levels(node);
        // Witnesses may look at half as many classes as grouping would read (a look costs about
        // as much as a source class in a grouping: a few reads from memory).
        let allowance = self.eval.source(&levels).len() / 2;
        if self.precheck.refuses(&levels, allowance) {
            self.tag_closure(node, NOT_ANON, false);
            return false;
        }
        let max_classes = self.config.max_classes(self.enc.records);
        let Some(classes) = self.eval.classes(&levels, max_classes) else {
            self.tag_closure(node, NOT_ANON, false);
            return false;
        };
        if !self.monotonic {
            let bound = metric::bound_from_classes(self.config.metric, self.enc, &classes);
            self.checked_bound.insert(node, bound);
        }
        // Tags follow the monotonic part of the model (all of it when it is monotonic); a
        // node is a candidate only if the whole model holds.
        let part = if self.model_monotonic {
            Part::Full
        } else {
            Part::Monotonic
        };
        let verdict = self.config.model.verdict(&classes, part);
        let anonymous = verdict.records <= self.config.max_suppressed;
        if anonymous {
            let full = if self.model_monotonic {
                Some(verdict)
            } else {
                let full = self.config.model.verdict(&classes, Part::Full);
                (full.records <= self.config.max_suppressed).then_some(full)
            };
            if let Some(full) = full {
                let value = metric::value(self.config.metric, self.enc, &classes, &full.flags);
                self.consider(node, value);
            }
            self.tag_closure(node, ANON, true);
        } else {
            self.precheck.learn(&classes);
            self.tag_closure(node, NOT_ANON, false);
        }
        anonymous
    }

    fn find_path(&mut self, head: u32) -> Vec<u32> {
        let mut path = vec![head];
        let mut current = head;
        loop {
            let successors = self.sorted(self.lattice.successors(current));
            let mut next = None;
            for s in successors {
                if !self.skip(s) {
                    next = Some(s);
                    break;
                }
            }
            match next {
                Some(s) => {
                    path.push(s);
                    current = s;
                }
                None => return path,
            }
        }
    }

    fn check_path(&mut self, path: &[u32], queue: &mut BinaryHeap<Reverse<StrategyKey>>) {
        let (mut low, mut high) = (0isize, path.len() as isize - 1);
        while low <= high {
            let mid = (low + high) / 2;
            let node = path[mid as usize];
            if !self.skip(node) {
                if self.check(node) {
                    high = mid - 1;
                } else {
                    let successors: Vec<u32> = self.lattice.successors(node).collect();
                    for up in successors {
                        if !self.skip(up) {
                            queue.push(Reverse(self.key(up)));
                        }
                    }
                    low = mid + 1;
                }
            } else if self.tags[node as usize] & NOT_ANON != 0 {
                low = mid + 1;
            } else {
                high = mid - 1;
            }
        }
    }

    fn binary_search(&mut self, start: u32) {
        let mut queue = BinaryHeap::new();
        queue.push(Reverse(self.key(start)));
        while let Some(Reverse(head)) = queue.pop() {
            if !self.skip(head.node) {
                let path = self.find_path(head.node);
                self.check_path(&path, &mut queue);
            }
        }
    }

    fn run(&mut self) {
        let bottom = self.lattice.bottom();
        self.check(bottom);
        let mut by_level: Vec<Vec<u32>> =
            vec![Vec::new(); self.lattice.max_level_sum() as usize + 1];
        for n in 0..self.lattice.size() {
            by_level[self.lattice.level_sum(n) as usize].push(n);
        }
        for level in &by_level {
            let open: Vec<u32> = level
                .iter()
                .copied()
                .filter(|&n| self.tags[n as usize] & (ANON | NOT_ANON | PRUNED) == 0)
                .collect();
            for node in self.sorted(open.into_iter()) {
                if !self.skip(node) {
                    self.binary_search(node);
                }
            }
        }
        if !self.monotonic {
            self.second_pass(&by_level);
        }
    }

    /// Non-monotonic metrics: evaluate the anonymous nodes Flash tagged without checking,
    /// unless a lower bound carried up from below shows they cannot win.
    fn second_pass(&mut self, by_level: &[Vec<u32>]) {
        let mut bound = vec![0.0f64; self.lattice.size() as usize];
        for level in by_level {
            for &node in level {
                let levels = self.lattice.levels(node);
                let mut b =
                    metric::bound_from_levels(self.config.metric, self.enc, &levels).unwrap_or(0.0);
                for p in self.lattice.predecessors(node) {
                    b = b.max(bound[p as usize]);
                }
                if let Some(&exact) = self.checked_bound.get(&node) {
                    b = b.max(exact);
                }
                let tags = self.tags[node as usize];
                if tags & ANON != 0
                    && tags & (CHECKED | PRUNED) == 0
                    && !self.worse_than_best(b, node)
                {
                    let anonymous = self.check(node);
                    debug_assert!(anonymous, "a node above an anonymous node is anonymous");
                    if let Some(&exact) = self.checked_bound.get(&node) {
                        b = b.max(exact);
                    }
                }
                bound[node as usize] = b;
            }
        }
    }
}

/// Flash. Returns the optimum (if any node is anonymous) and the counters.
pub(crate) fn flash(
    lattice: &Lattice,
    enc: &Encoded,
    base: &Arc<Classes>,
    config: Config<'_>,
) -> (Option<Found>, Stats) {
    let start = Instant::now();
    let model_monotonic = config.model.is_monotonic(config.max_suppressed > 0);
    let mut f = Flash {
        lattice,
        enc,
        config,
        monotonic: model_monotonic
            && (config.max_suppressed == 0 || config.metric.is_monotonic_with_suppression()),
        model_monotonic,
        tags: vec![0u8; lattice.size() as usize],
        eval: Evaluator::new(enc, base),
        best: None,
        checked_bound: FxHashMap::default(),
        precheck: Precheck::new(
            enc,
            base,
            config.model.min_class_size(),
            config.max_suppressed,
        ),
        checked: 0,
        stack: Vec::new(),
    };
    f.run();
    let stats = Stats {
        checked: f.checked,
        grouped: f.eval.checked,
        precheck: f.precheck.stats,
        elapsed: start.elapsed(),
    };
    (f.best, stats)
}

/// Evaluates every node (rolling each up from a neighbour below) and returns the optimum.
pub(crate) fn exhaustive(
    lattice: &Lattice,
    enc: &Encoded,
    base: &Arc<Classes>,
    config: Config<'_>,
) -> (Option<Found>, Stats) {
    let start = Instant::now();
    let mut best: Option<Found> = None;
    let mut checked = 0u64;
    let mut levels = vec![0u8; lattice.q()];
    descend(
        lattice,
        enc,
        config,
        base,
        0,
        &mut levels,
        &mut best,
        &mut checked,
    );
    (
        best,
        Stats {
            checked,
            grouped: checked,
            precheck: PrecheckStats::default(),
            elapsed: start.elapsed(),
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn descend(
    lattice: &Lattice,
    enc: &Encoded,
    config: Config<'_>,
    classes: &Classes,
    depth: usize,
    levels: &mut Vec<u8>,
    best: &mut Option<Found>,
    checked: &mut u64,
) {
    if depth == lattice.q() {
        *checked += 1;
        let verdict = config.model.verdict(classes, Part::Full);
        if verdict.records <= config.max_suppressed {
            let value = metric::value(config.metric, enc, classes, &verdict.flags);
            let node = lattice.node(levels);
            let improves = match best {
                None => true,
                Some(b) => better(lattice, value, node, b.value, b.node),
            };
            if improves {
                *best = Some(Found { node, value });
            }
        }
        return;
    }
    let mut current: Option<Classes> = None;
    for l in 0..=lattice.heights()[depth] {
        levels[depth] = l;
        if l > 0 {
            let src = current.as_ref().unwrap_or(classes);
            current = Some(rollup(enc, src, levels, false).0);
        }
        let here = current.as_ref().unwrap_or(classes);
        descend(lattice, enc, config, here, depth + 1, levels, best, checked);
    }
    levels[depth] = 0;
}
