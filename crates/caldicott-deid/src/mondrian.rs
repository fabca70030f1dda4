//! Local recoding: top-down multidimensional partitioning after Mondrian (LeFevre, DeWitt,
//! Ramakrishnan, "Mondrian multidimensional k-anonymity", ICDE 2006), made hierarchy-aware.
//!
//! Why: full-domain generalisation ([`crate::search`]) gives every record of a column the same
//! level, so one rare combination can force a whole column up a level. On large or diverse data
//! that costs much more information than needed. Local recoding gives each *class* its own
//! generalisation, at the price of a release in which one original value may appear under
//! different labels (`37` in one row, `30-39` in another).
//!
//! **State.** A partition is a set of records and, per quasi-identifier, a node of that
//! attribute's hierarchy (a level and a label id) that generalises every record's value. Every
//! published value is such a node, so it is spelled as in the hierarchy, like the full-domain
//! output. The first partition holds every record at the top of every hierarchy (above it, at a
//! virtual root, when a CSV hierarchy's top level has several labels: that first cut is forced,
//! as full-domain generalisation at the top would make it, and parts that fail the model there
//! are suppressed).
//!
//! **Split.** A partition is split on one quasi-identifier `j` by specialising its node one
//! level: each record goes to the child of the node above its value. Attributes are tried
//! widest first: the node covering the largest share of its hierarchy's domain
//! (`leaves(node) / domain`, the per-record cost in ARX's Loss metric, i.e. Mondrian's
//! "widest normalised range" for hierarchies), ties by column order. The first attribute whose
//! children allow a split is used:
//! - *strict* ([`SplitRule::Strict`], Mondrian's rule): every child present must satisfy the
//!   privacy model, and there must be at least two;
//! - *relaxed* ([`SplitRule::Relaxed`], the default): children that satisfy the model become
//!   partitions; the others are grouped into one remainder that keeps the parent node. If that
//!   remainder does not satisfy the model, separated children are moved into it, smallest first
//!   (ties by hierarchy order), until it does. The split counts when at least two parts remain.
//!   A strict split is a relaxed split with an empty remainder, so the relaxed rule finds every
//!   split the strict one does, and more.
//!
//! When all of a partition's records fall under one child, the node is specialised to that
//! child without splitting (the class is unchanged; Mondrian's tight bounding box). A partition
//! no attribute can split is released as one class.
//!
//! **Guarantees.** Every published class satisfies the model ([`partition_ok`] holds for it by
//! construction); every published value is a hierarchy node that generalises the record's own
//! value; two published partitions never share all their labels (at their last common split
//! they took different nodes of that attribute, disjoint or parent/child with disjoint
//! records), so the classes of the release are exactly the partitions; and the result is
//! *locally minimal* for the rule used: no final partition has an attribute whose one-level
//! specialisation would be a valid split. The result does not depend on the number of threads.
//!
//! **Not guaranteed.** Optimality (the partitioning is greedy; another order of splits may lose
//! less); a single level per column (analyses must handle overlapping labels); protection
//! beyond the model's per-class predicate (as with any k-anonymity, an attacker who knows a
//! target's exact values may rule classes out). The suppression limit is used only for records
//! that fail the model even at the top of the hierarchies, and for classes suppressed to meet
//! an average-risk threshold; the partitioning never suppresses records to gain detail.
//!
//! **Speed.** Records are copied once into one flat `u32` array (the quasi-identifiers' level-0
//! codes, the codes of the sensitive attributes the model constrains, and the row number) and
//! partitions are contiguous ranges of it,
//! split in place (an American-flag counting sort), so the passes are sequential and no
//! partition allocates rows. Large partitions are processed first on one thread until there are
//! enough pieces, then the pieces are divided into contiguous, equally large groups, one per
//! core (`std::thread::scope`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::anonymise::Anonymiser;
use crate::encode::Encoded;
use crate::error::DeidError;
use crate::groupify::{Classes, Hist};
use crate::metric;
use crate::policy::UtilityMetric;
use crate::privacy::Criteria;
use crate::report::{
    ClassSizeCount, LevelRecords, LocalRecoding, QiLevel, Report, Search, Utility,
};

/// Which partitions local recoding may split (see `docs/local-recoding.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitRule {
    /// Mondrian's rule: every child must satisfy the privacy model.
    Strict,
    /// Children too small to publish are grouped into a remainder that keeps the parent's label.
    Relaxed,
}

impl SplitRule {
    fn name(self) -> &'static str {
        match self {
            SplitRule::Strict => "strict",
            SplitRule::Relaxed => "relaxed",
        }
    }
}

/// The split test: whether a candidate class may be published, given its size and, per
/// sensitive attribute the model constrains (in [`Criteria::sensitive_attributes`] order), its
/// histogram of values as `(code, records)` pairs. The one place the privacy model is
/// consulted: [`Criteria::class_ok`], the same per-class predicate full-domain generalisation
/// uses (k, ℓ-diversity, t-closeness, prosecutor and journalist thresholds). The average-risk
/// threshold is a property of the whole release, enforced after partitioning.
pub(crate) fn partition_ok(criteria: &Criteria, size: u64, histograms: &[&[(u32, u32)]]) -> bool {
    criteria.class_ok(size, histograms)
}

/// Appends the run-length histogram of sorted `codes` to `out` (after what `out` holds, which
/// may end in another class's entry with the same code).
fn histogram_of_sorted(codes: &[u32], out: &mut Vec<(u32, u32)>) {
    let start = out.len();
    for &c in codes {
        let fresh = out.len() == start;
        match out.last_mut() {
            Some((last, n)) if !fresh && *last == c => *n += 1,
            _ => out.push((c, 1)),
        }
    }
}

/// A node of a hierarchy: a level and the id of a label at that level (a level-0 id is the
/// table's code of the value). `level == height + 1` is the virtual root above a top level with
/// several labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    level: u8,
    id: u32,
}

/// One quasi-identifier's hierarchy as a tree navigable downwards.
struct Tree<'a> {
    /// `map[l][code]`: the level-`l` id above a value (from the encoding).
    map: &'a [Vec<u32>],
    /// `leaves[l][id]`: domain values under a node (from the encoding).
    leaves: &'a [Vec<u64>],
    domain: u64,
    height: u8,
    /// `rank[l][id]`: the position of a level-`l` node among its parent's children.
    rank: Vec<Vec<u32>>,
    /// `first[l][p]..first[l][p + 1]`: the children of level-`l` node `p` in `kids[l]`
    /// (`l` in `1..=height + 1`; index 0 unused).
    first: Vec<Vec<u32>>,
    /// Children, grouped by parent, ascending ids within a parent.
    kids: Vec<Vec<u32>>,
    /// Where partitions start: the single top label, or the virtual root.
    start: Node,
}

impl<'a> Tree<'a> {
    fn new(enc: &'a Encoded, j: usize) -> Self {
        let qi = &enc.qis[j];
        let h = qi.height;
        let levels = usize::from(h) + 1;
        let mut rank = Vec::with_capacity(levels);
        let mut first = vec![Vec::new(); levels + 1];
        let mut kids = vec![Vec::new(); levels + 1];
        for m in 0..levels {
            let card = qi.cardinality(m as u8);
            let parents = if m < usize::from(h) {
                qi.cardinality(m as u8 + 1)
            } else {
                1
            };
            let parent_of = |id: usize| -> usize {
                if m < usize::from(h) {
                    qi.up_map(m as u8, m as u8 + 1)[id] as usize
                } else {
                    0
                }
            };
            // Counting sort of the level-m ids by parent.
            let mut start = vec![0u32; parents + 1];
            for id in 0..card {
                start[parent_of(id) + 1] += 1;
            }
            for p in 0..parents {
                start[p + 1] += start[p];
            }
            let mut next = start.clone();
            let mut k = vec![0u32; card];
            let mut r = vec![0u32; card];
            for (id, rank) in r.iter_mut().enumerate() {
                let p = parent_of(id);
                let pos = next[p];
                next[p] += 1;
                k[pos as usize] = id as u32;
                *rank = pos - start[p];
            }
            rank.push(r);
            first[m + 1] = start;
            kids[m + 1] = k;
        }
        let start = if qi.cardinality(h) == 1 {
            Node { level: h, id: 0 }
        } else {
            Node {
                level: h + 1,
                id: 0,
            }
        };
        Self {
            map: &qi.map,
            leaves: &qi.leaves,
            domain: qi.domain,
            height: h,
            rank,
            first,
            kids,
            start,
        }
    }

    /// The rank, among the children of a level-`level` node, of the child above `code`.
    #[inline]
    fn child_rank(&self, level: u8, code: u32) -> u32 {
        let m = usize::from(level) - 1;
        self.rank[m][self.map[m][code as usize] as usize]
    }

    /// The child of `parent` with rank `rank`.
    fn child(&self, parent: Node, rank: u32) -> Node {
        let l = usize::from(parent.level);
        Node {
            level: parent.level - 1,
            id: self.kids[l][(self.first[l][parent.id as usize] + rank) as usize],
        }
    }

    fn fan_out(&self) -> usize {
        (1..self.first.len())
            .flat_map(|l| self.first[l].windows(2).map(|w| (w[1] - w[0]) as usize))
            .max()
            .unwrap_or(0)
    }

    fn is_virtual(&self, node: Node) -> bool {
        node.level > self.height
    }
}

/// Everything the workers share (read-only).
struct Ctx<'a> {
    trees: Vec<Tree<'a>>,
    criteria: &'a Criteria,
    rule: SplitRule,
    /// Quasi-identifiers per record.
    q: usize,
    /// Sensitive attributes the model constrains, per record. A record is `q + sens + 1`
    /// words: quasi-identifier codes, sensitive codes, then the row number.
    sens: usize,
}

impl Ctx<'_> {
    fn stride(&self) -> usize {
        self.q + self.sens + 1
    }

    /// Compares the normalised widths (shares of their hierarchies' domains) of node `a` of
    /// attribute `ja` and node `b` of `jb`, exactly, by cross-multiplication.
    fn wider(&self, ja: usize, a: Node, jb: usize, b: Node) -> Ordering {
        let (ta, tb) = (&self.trees[ja], &self.trees[jb]);
        let wa = u128::from(ta.leaves[usize::from(a.level)][a.id as usize]) * u128::from(tb.domain);
        let wb = u128::from(tb.leaves[usize::from(b.level)][b.id as usize]) * u128::from(ta.domain);
        wa.cmp(&wb)
    }
}

/// A range of records (indices into the worker's slice) still to be refined.
#[derive(Debug, Clone, Copy)]
struct Task {
    start: usize,
    end: usize,
    /// Whether the range is known to satisfy the model (false only after a forced cut).
    verified: bool,
}

/// A released (or suppressed) partition.
#[derive(Debug, Clone, Copy)]
struct Final {
    /// First record, in the whole work array.
    start: usize,
    len: usize,
    suppressed: bool,
}

/// Counters of what the partitioning did.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    /// Histogram passes (one attribute's children counted over one partition).
    tries: u64,
    /// Splits in which every child became a partition.
    strict_splits: u64,
    /// Splits with a remainder kept at the parent node.
    relaxed_splits: u64,
    /// Specialisations without a split (all records under one child).
    descents: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.tries += o.tries;
        self.strict_splits += o.strict_splits;
        self.relaxed_splits += o.relaxed_splits;
        self.descents += o.descents;
    }
}

/// What a worker produced: final partitions and their nodes (`q` per final).
#[derive(Default)]
struct Output {
    finals: Vec<Final>,
    nodes: Vec<Node>,
    stats: Stats,
}

/// One thread's state: a stack of tasks (their nodes kept `q` per task in `stack_nodes`) and
/// scratch buffers reused across partitions.
struct Worker<'c, 'a> {
    ctx: &'c Ctx<'a>,
    /// Absolute index of the first record of this worker's slice.
    base: usize,
    stack: Vec<Task>,
    stack_nodes: Vec<Node>,
    /// Per child rank: records (zero between uses).
    hist: Vec<u32>,
    /// Per child rank: part number + 1 during a permutation (zero between uses).
    part_of: Vec<u32>,
    touched: Vec<u32>,
    /// Children present in the current partition: (rank, records), by rank.
    children: Vec<(u32, u64)>,
    /// Per sensitive attribute, the children's histograms: child `c`'s (by position in
    /// `children`) are `child_hists[s][child_offsets[s][c]..child_offsets[s][c + 1]]`.
    child_hists: Vec<Vec<(u32, u32)>>,
    child_offsets: Vec<Vec<u32>>,
    pairs: Vec<(u32, u32)>,
    merged: Vec<Vec<(u32, u32)>>,
    codes: Vec<u32>,
    failed: Vec<bool>,
    order: Vec<usize>,
    cur: Vec<Node>,
    scratch_nodes: Vec<Node>,
    /// The parts of the split being made.
    parts: Vec<Part>,
    out: Output,
}

impl<'c, 'a> Worker<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>, base: usize) -> Self {
        let fan = ctx.trees.iter().map(Tree::fan_out).max().unwrap_or(0);
        Self {
            ctx,
            base,
            stack: Vec::new(),
            stack_nodes: Vec::new(),
            hist: vec![0; fan],
            part_of: vec![0; fan],
            touched: Vec::new(),
            children: Vec::new(),
            child_hists: vec![Vec::new(); ctx.sens],
            child_offsets: vec![Vec::new(); ctx.sens],
            pairs: Vec::new(),
            merged: vec![Vec::new(); ctx.sens],
            codes: Vec::new(),
            failed: vec![false; ctx.q],
            order: Vec::with_capacity(ctx.q),
            cur: Vec::with_capacity(ctx.q),
            scratch_nodes: Vec::with_capacity(ctx.q),
            parts: Vec::new(),
            out: Output::default(),
        }
    }

    fn push(&mut self, task: Task, nodes: &[Node]) {
        self.stack.push(task);
        self.stack_nodes.extend_from_slice(nodes);
    }

    /// Refines every task on the stack to the end.
    fn run(&mut self, work: &mut [u32]) {
        while self.pop_and_process(work) {}
    }

    fn pop_and_process(&mut self, work: &mut [u32]) -> bool {
        let Some(task) = self.stack.pop() else {
            return false;
        };
        let q = self.ctx.q;
        let at = self.stack_nodes.len() - q;
        let mut cur = std::mem::take(&mut self.cur);
        cur.clear();
        cur.extend_from_slice(&self.stack_nodes[at..]);
        self.stack_nodes.truncate(at);
        self.process(work, task, &mut cur);
        self.cur = cur;
        true
    }

    fn emit(&mut self, task: Task, nodes: &[Node], suppressed: bool) {
        self.out.finals.push(Final {
            start: self.base + task.start,
            len: task.end - task.start,
            suppressed,
        });
        self.out.nodes.extend_from_slice(nodes);
    }

    /// Counts the children of attribute `j`'s node over the task's records into
    /// `self.children` (by rank), with their sensitive histograms when the model needs them.
    fn children(&mut self, work: &[u32], task: Task, j: usize, node: Node) {
        let ctx = self.ctx;
        let s = ctx.stride();
        let tree = &ctx.trees[j];
        self.out.stats.tries += 1;
        let records = &work[task.start * s..task.end * s];
        for rec in records.chunks_exact(s) {
            let r = tree.child_rank(node.level, rec[j]) as usize;
            if self.hist[r] == 0 {
                self.touched.push(r as u32);
            }
            self.hist[r] += 1;
        }
        self.touched.sort_unstable();
        self.children.clear();
        for &r in &self.touched {
            let n = std::mem::take(&mut self.hist[r as usize]);
            self.children.push((r, u64::from(n)));
        }
        self.touched.clear();
        if ctx.sens == 0 {
            return;
        }
        // Each record's child position, through `part_of` (reset below).
        for (c, &(r, _)) in self.children.iter().enumerate() {
            self.part_of[r as usize] = c as u32;
        }
        for si in 0..ctx.sens {
            self.pairs.clear();
            for rec in records.chunks_exact(s) {
                let c = self.part_of[tree.child_rank(node.level, rec[j]) as usize];
                self.pairs.push((c, rec[ctx.q + si]));
            }
            self.pairs.sort_unstable();
            let entries = &mut self.child_hists[si];
            let offsets = &mut self.child_offsets[si];
            entries.clear();
            offsets.clear();
            let mut i = 0;
            for c in 0..self.children.len() as u32 {
                offsets.push(entries.len() as u32);
                let start = entries.len();
                while i < self.pairs.len() && self.pairs[i].0 == c {
                    let code = self.pairs[i].1;
                    let fresh = entries.len() == start;
                    match entries.last_mut() {
                        Some((last, n)) if !fresh && *last == code => *n += 1,
                        _ => entries.push((code, 1)),
                    }
                    i += 1;
                }
            }
            offsets.push(entries.len() as u32);
        }
        for &(r, _) in &self.children {
            self.part_of[r as usize] = 0;
        }
    }

    /// Child `c`'s histogram of sensitive attribute `s`.
    fn child_hist(&self, s: usize, c: usize) -> &[(u32, u32)] {
        let o = &self.child_offsets[s];
        &self.child_hists[s][o[c] as usize..o[c + 1] as usize]
    }

    /// Whether the union of the children `members` (positions in `children`), `size` records
    /// in all, may be published.
    fn group_ok(&mut self, members: &[usize], size: u64) -> bool {
        let ctx = self.ctx;
        if ctx.sens == 0 {
            return partition_ok(ctx.criteria, size, &[]);
        }
        if let [c] = members {
            let hs: Vec<&[(u32, u32)]> = (0..ctx.sens).map(|s| self.child_hist(s, *c)).collect();
            return partition_ok(ctx.criteria, size, &hs);
        }
        let mut merged = std::mem::take(&mut self.merged);
        for (s, m) in merged.iter_mut().enumerate() {
            m.clear();
            for &c in members {
                m.extend_from_slice(self.child_hist(s, c));
            }
            m.sort_unstable_by_key(|e| e.0);
            let mut w = 0;
            for i in 0..m.len() {
                if w > 0 && m[w - 1].0 == m[i].0 {
                    m[w - 1].1 += m[i].1;
                } else {
                    m[w] = m[i];
                    w += 1;
                }
            }
            m.truncate(w);
        }
        let ok = {
            let hs: Vec<&[(u32, u32)]> = merged.iter().map(Vec::as_slice).collect();
            partition_ok(ctx.criteria, size, &hs)
        };
        self.merged = merged;
        ok
    }

    /// Whether the task's records as one class may be published.
    fn task_ok(&mut self, work: &[u32], task: Task) -> bool {
        let ctx = self.ctx;
        let size = (task.end - task.start) as u64;
        if ctx.sens == 0 {
            return partition_ok(ctx.criteria, size, &[]);
        }
        let s = ctx.stride();
        let records = &work[task.start * s..task.end * s];
        let mut hists: Vec<Vec<(u32, u32)>> = Vec::with_capacity(ctx.sens);
        for si in 0..ctx.sens {
            self.codes.clear();
            self.codes
                .extend(records.chunks_exact(s).map(|rec| rec[ctx.q + si]));
            self.codes.sort_unstable();
            let mut h = Vec::new();
            histogram_of_sorted(&self.codes, &mut h);
            hists.push(h);
        }
        let hs: Vec<&[(u32, u32)]> = hists.iter().map(Vec::as_slice).collect();
        partition_ok(ctx.criteria, size, &hs)
    }

    /// Decides a split of the counted children (`forced`: every child becomes a part, whatever
    /// the model says). Fills `self.parts` (separated children in rank order, then the
    /// remainder, if any) and `part_of` (part + 1 per rank); false when no split is allowed.
    fn plan(&mut self, forced: bool) -> bool {
        self.parts.clear();
        let n = self.children.len();
        if n < 2 {
            return false;
        }
        let mut separate = vec![false; n];
        for (c, sep) in separate.iter_mut().enumerate() {
            *sep = forced || self.group_ok(&[c], self.children[c].1);
        }
        let mut remainder: Vec<usize> = (0..n).filter(|&c| !separate[c]).collect();
        let mut remainder_size: u64 = remainder.iter().map(|&c| self.children[c].1).sum();
        if !remainder.is_empty() {
            if self.ctx.rule == SplitRule::Strict {
                return false;
            }
            let members = remainder.clone();
            if !self.group_ok(&members, remainder_size) {
                // Fold separated children in, smallest first (ties by rank), until the
                // remainder may be published.
                let mut by_size: Vec<usize> = (0..n).filter(|&c| separate[c]).collect();
                by_size.sort_by_key(|&c| (self.children[c].1, self.children[c].0));
                let mut ok = false;
                for c in by_size {
                    separate[c] = false;
                    remainder.push(c);
                    remainder_size += self.children[c].1;
                    let members = remainder.clone();
                    if self.group_ok(&members, remainder_size) {
                        ok = true;
                        break;
                    }
                }
                if !ok {
                    return false;
                }
            }
        }
        let separated = separate.iter().filter(|&&s| s).count();
        let with_remainder = !remainder.is_empty();
        if separated == 0 || separated + usize::from(with_remainder) < 2 {
            return false;
        }
        let total = (separated + usize::from(with_remainder)) as u32;
        for (c, &sep) in separate.iter().enumerate() {
            let (r, size) = self.children[c];
            if sep {
                self.parts.push(Part {
                    size,
                    child: Some(r),
                });
                self.part_of[r as usize] = self.parts.len() as u32;
            } else {
                self.part_of[r as usize] = total;
            }
        }
        if with_remainder {
            self.parts.push(Part {
                size: remainder_size,
                child: None,
            });
        }
        true
    }

    /// Splits the task's records in place by part (`part_of`, planned by [`Worker::plan`]) on
    /// attribute `j`, then pushes the parts.
    fn split(&mut self, work: &mut [u32], task: Task, nodes: &[Node], j: usize, forced: bool) {
        let s = self.ctx.stride();
        let tree = &self.ctx.trees[j];
        let parent = nodes[j];
        let n_parts = self.parts.len();
        let mut bounds = Vec::with_capacity(n_parts + 1);
        let mut at = task.start;
        bounds.push(at);
        for p in &self.parts {
            at += p.size as usize;
            bounds.push(at);
        }
        debug_assert_eq!(at, task.end);
        // American-flag sort: `next[b]` is the first slot of part `b` not yet known to hold a
        // record of part `b`.
        let mut next: Vec<usize> = bounds[..n_parts].to_vec();
        let part_of = &self.part_of;
        let part = |rec: &[u32]| -> usize {
            part_of[tree.child_rank(parent.level, rec[j]) as usize] as usize - 1
        };
        for b in 0..n_parts {
            let end = bounds[b + 1];
            while next[b] < end {
                let i = next[b];
                let t = part(&work[i * s..i * s + s]);
                if t == b {
                    next[b] += 1;
                } else {
                    // Move the record to its part's next slot and look at what comes back.
                    let d = next[t];
                    next[t] += 1;
                    let (lo, hi) = work.split_at_mut(d.max(i) * s);
                    let lo_at = d.min(i) * s;
                    lo[lo_at..lo_at + s].swap_with_slice(&mut hi[..s]);
                }
            }
        }
        for &(r, _) in &self.children {
            self.part_of[r as usize] = 0;
        }
        let remainder = self.parts.last().is_some_and(|p| p.child.is_none());
        if !forced {
            if remainder {
                self.out.stats.relaxed_splits += 1;
            } else {
                self.out.stats.strict_splits += 1;
            }
        }
        // Push in reverse so that the first part is refined first.
        let mut child_nodes = std::mem::take(&mut self.scratch_nodes);
        child_nodes.clear();
        child_nodes.extend_from_slice(nodes);
        for b in (0..n_parts).rev() {
            child_nodes[j] = match self.parts[b].child {
                Some(rank) => tree.child(parent, rank),
                None => parent,
            };
            self.push(
                Task {
                    start: bounds[b],
                    end: bounds[b + 1],
                    verified: !forced,
                },
                &child_nodes,
            );
        }
        self.scratch_nodes = child_nodes;
    }

    /// Refines one partition: splits it once (pushing the parts) or releases it.
    fn process(&mut self, work: &mut [u32], task: Task, nodes: &mut [Node]) {
        let ctx = self.ctx;
        let q = ctx.q;
        // A virtual root (a top level with several labels) is cut first, whatever the model.
        if let Some(j) = (0..q).find(|&j| ctx.trees[j].is_virtual(nodes[j])) {
            self.children(work, task, j, nodes[j]);
            if self.children.len() == 1 {
                nodes[j] = ctx.trees[j].child(nodes[j], self.children[0].0);
                self.push(task, nodes);
            } else {
                self.plan(true);
                self.split(work, task, nodes, j, true);
            }
            return;
        }
        if !task.verified && !self.task_ok(work, task) {
            self.emit(task, nodes, true);
            return;
        }
        self.failed.iter_mut().for_each(|f| *f = false);
        'specialise: loop {
            let mut order = std::mem::take(&mut self.order);
            order.clear();
            order.extend((0..q).filter(|&j| nodes[j].level > 0 && !self.failed[j]));
            // Widest first, ties by column order.
            order.sort_by(|&a, &b| ctx.wider(b, nodes[b], a, nodes[a]).then(a.cmp(&b)));
            for &j in &order {
                self.children(work, task, j, nodes[j]);
                if self.children.len() == 1 {
                    // Every record under one child: specialise without splitting.
                    nodes[j] = ctx.trees[j].child(nodes[j], self.children[0].0);
                    self.out.stats.descents += 1;
                    self.order = order;
                    continue 'specialise;
                }
                if self.plan(false) {
                    self.split(work, task, nodes, j, false);
                    self.order = order;
                    return;
                }
                // The record set does not change while nodes are specialised, so this
                // attribute stays unsplittable for this partition.
                self.failed[j] = true;
            }
            self.order = order;
            break;
        }
        self.emit(task, nodes, false);
    }
}

/// One part of a planned split.
#[derive(Debug, Clone, Copy)]
struct Part {
    /// Records in the part.
    size: u64,
    /// The child's rank, or `None` for the remainder (which keeps the parent node).
    child: Option<u32>,
}

/// Tables of at most this many records are partitioned on one thread, and the first phase of a
/// parallel run stops splitting partitions this small (each is then one thread's work).
const PARALLEL_MIN: usize = 1 << 16;

/// The partitioning: the records in their final order (`stride` words each, see [`Ctx`]) and
/// the final partitions, in record order, with their nodes (`q` per partition).
struct Partitioned {
    work: Vec<u32>,
    /// Words per record in `work` (the row number is the last).
    stride: usize,
    finals: Vec<Final>,
    nodes: Vec<Node>,
    stats: Stats,
}

/// Partitions the table's records (see the module documentation), on up to `threads` threads.
fn partition(a: &Anonymiser<'_>, rule: SplitRule, threads: usize) -> Partitioned {
    let enc = &a.enc;
    let q = enc.q();
    let sensitive = a.criteria.sensitive_attributes();
    let ctx = Ctx {
        trees: (0..q).map(|j| Tree::new(enc, j)).collect(),
        criteria: &a.criteria,
        rule,
        q,
        sens: sensitive.len(),
    };
    let s = ctx.stride();
    let n = a.table.num_rows();
    let codes: Vec<&[u32]> = enc
        .qis
        .iter()
        .map(|qi| qi.table_column)
        .chain(sensitive.iter().map(|&(_, c)| c))
        .map(|c| a.table.column(c).codes.as_slice())
        .collect();
    let mut work = Vec::with_capacity(n * s);
    for i in 0..n {
        work.extend(codes.iter().map(|c| c[i]));
        work.push(i as u32);
    }
    let start: Vec<Node> = ctx.trees.iter().map(|t| t.start).collect();

    let mut main = Worker::new(&ctx, 0);
    main.push(
        Task {
            start: 0,
            end: n,
            verified: false,
        },
        &start,
    );
    let threads = threads.max(1);
    let mut outputs = Vec::new();
    if threads > 1 && n > PARALLEL_MIN {
        // Phase 1, one thread: split the largest partitions until there are enough pieces to
        // share out evenly.
        let enough = n / (4 * threads);
        loop {
            let largest = main
                .stack
                .iter()
                .enumerate()
                .max_by_key(|(i, t)| (t.end - t.start, std::cmp::Reverse(*i)))
                .map(|(i, t)| (i, t.end - t.start));
            let Some((i, len)) = largest else { break };
            if len <= enough.max(PARALLEL_MIN) || main.stack.len() >= 64 * threads {
                break;
            }
            let last = main.stack.len() - 1;
            main.stack.swap(i, last);
            for t in 0..q {
                main.stack_nodes.swap(i * q + t, last * q + t);
            }
            main.pop_and_process(&mut work);
        }
        // Phase 2: the pending partitions, in record order, cut into contiguous groups of about
        // equal size, one group per thread.
        let mut pending: Vec<(Task, Vec<Node>)> = main
            .stack
            .drain(..)
            .enumerate()
            .map(|(i, t)| (t, main.stack_nodes[i * q..(i + 1) * q].to_vec()))
            .collect();
        main.stack_nodes.clear();
        pending.sort_by_key(|(t, _)| t.start);
        let total: usize = pending.iter().map(|(t, _)| t.end - t.start).sum();
        let mut groups: Vec<Vec<(Task, Vec<Node>)>> = vec![Vec::new()];
        let mut acc = 0usize;
        for item in pending {
            let g = groups.len();
            if acc * threads >= g * total && g < threads && !groups[g - 1].is_empty() {
                groups.push(Vec::new());
            }
            acc += item.0.end - item.0.start;
            if let Some(last) = groups.last_mut() {
                last.push(item);
            }
        }
        // Slice g runs from its first task to the next group's first task.
        let mut cuts: Vec<usize> = groups
            .iter()
            .map(|g| g.first().map_or(n, |(t, _)| t.start))
            .collect();
        cuts[0] = 0;
        cuts.push(n);
        let mut slices = Vec::with_capacity(groups.len());
        let mut rest: &mut [u32] = &mut work;
        for g in 0..groups.len() {
            let (head, tail) = rest.split_at_mut((cuts[g + 1] - cuts[g]) * s);
            slices.push(head);
            rest = tail;
        }
        outputs = (0..groups.len()).map(|_| Output::default()).collect();
        let ctx = &ctx;
        std::thread::scope(|scope| {
            for (((group, slice), out), &base) in groups
                .into_iter()
                .zip(slices)
                .zip(outputs.iter_mut())
                .zip(&cuts)
            {
                scope.spawn(move || {
                    let mut w = Worker::new(ctx, base);
                    for (t, nodes) in group {
                        w.push(
                            Task {
                                start: t.start - base,
                                end: t.end - base,
                                verified: t.verified,
                            },
                            &nodes,
                        );
                    }
                    w.run(slice);
                    *out = w.out;
                });
            }
        });
    } else {
        main.run(&mut work);
    }
    outputs.push(std::mem::take(&mut main.out));

    // Gather every worker's partitions, in record order.
    let mut stats = Stats::default();
    let mut all: Vec<(Final, usize, usize)> = Vec::new();
    for (o, out) in outputs.iter().enumerate() {
        stats.add(&out.stats);
        all.extend(out.finals.iter().enumerate().map(|(i, f)| (*f, o, i)));
    }
    all.sort_by_key(|(f, _, _)| f.start);
    let mut finals = Vec::with_capacity(all.len());
    let mut nodes = Vec::with_capacity(all.len() * q);
    for (f, o, i) in all {
        finals.push(f);
        nodes.extend_from_slice(&outputs[o].nodes[i * q..(i + 1) * q]);
    }
    Partitioned {
        work,
        stride: s,
        finals,
        nodes,
        stats,
    }
}

fn xlog2x(x: u64) -> f64 {
    if x == 0 {
        0.0
    } else {
        let x = x as f64;
        x * x.log2()
    }
}

/// Loss, discernibility and non-uniform entropy (with and without the suppression term) of a
/// local recoding, by the formulas of [`crate::metric`] taken cell by cell: a record released
/// under node `g` of attribute `j` costs `leaves(g) / D_j` in Loss, and in non-uniform entropy
/// `log2(R(g) / R(v, g))`, where `R` counts the records released under `g` (with value `v`).
/// When every record of a column has the same level these are exactly the full-domain figures.
/// Suppressed records count as in [`crate::metric`], with the labels they would have had (their
/// top-level nodes).
struct LocalUtility {
    loss: f64,
    loss_per_qi: Vec<f64>,
    discernibility: f64,
    nue: f64,
    nue_generalisation: f64,
}

fn utility(enc: &Encoded, p: &Partitioned) -> LocalUtility {
    let q = enc.q();
    let s = p.stride;
    let n = enc.records;
    let suppressed: u64 = p
        .finals
        .iter()
        .filter(|f| f.suppressed)
        .map(|f| f.len as u64)
        .sum();
    let mut loss_per_qi = Vec::with_capacity(q);
    let mut nue_generalisation = 0.0f64;
    let mut nue_suppression = 0.0f64;
    for (j, qi) in enc.qis.iter().enumerate() {
        let levels = usize::from(qi.height) + 1;
        let mut share: u128 = 0;
        // r_g[l][id]: records released under node (l, id); r_v[l][code]: those with value `code`.
        let mut r_g: Vec<Vec<u64>> = vec![Vec::new(); levels];
        let mut r_v: Vec<Vec<u64>> = vec![Vec::new(); levels];
        let mut starred: BTreeMap<(u8, u32), u64> = BTreeMap::new();
        for (f, final_) in p.finals.iter().enumerate() {
            let node = p.nodes[f * q + j];
            let len = final_.len as u64;
            if final_.suppressed {
                share += u128::from(len) * u128::from(qi.domain);
                *starred.entry((node.level, node.id)).or_default() += len;
            } else {
                share += u128::from(len)
                    * u128::from(qi.leaves[usize::from(node.level)][node.id as usize]);
            }
            if node.level == 0 {
                continue; // log2(R(g) / R(v, g)) = 0 when g is the value itself
            }
            let l = usize::from(node.level);
            if r_g[l].is_empty() {
                r_g[l] = vec![0; qi.cardinality(node.level)];
                r_v[l] = vec![0; qi.distinct];
            }
            r_g[l][node.id as usize] += len;
            let rv = &mut r_v[l];
            for rec in p.work[final_.start * s..(final_.start + final_.len) * s].chunks_exact(s) {
                rv[rec[j] as usize] += 1;
            }
        }
        loss_per_qi.push(metric::normalise_loss(share, n, qi.domain));
        for l in 1..levels {
            let g: f64 = r_g[l].iter().map(|&x| xlog2x(x)).sum();
            let v: f64 = r_v[l].iter().map(|&x| xlog2x(x)).sum();
            nue_generalisation += g - v;
        }
        if suppressed > 0 {
            let total = suppressed as f64;
            for &c in starred.values() {
                nue_suppression += c as f64 * (total / c as f64).log2();
            }
        }
    }
    let published: u128 = p
        .finals
        .iter()
        .filter(|f| !f.suppressed)
        .map(|f| (f.len as u128) * (f.len as u128))
        .sum();
    let discernibility = published + u128::from(n) * u128::from(suppressed);
    LocalUtility {
        loss: metric::geometric(&loss_per_qi),
        loss_per_qi,
        discernibility: discernibility as f64,
        nue: nue_generalisation + nue_suppression + 0.0,
        nue_generalisation: nue_generalisation + 0.0,
    }
}

/// The released rows of a local recoding: each row's class and each class's nodes.
pub(crate) struct LocalRows {
    /// Per input row: its class (an index into the classes below).
    row_class: Vec<u32>,
    /// `q` nodes per class.
    nodes: Vec<Node>,
    /// Per class: whether it is suppressed.
    suppressed: Vec<bool>,
}

impl LocalRows {
    /// Whether input row `row` is suppressed.
    pub(crate) fn suppressed(&self, row: usize) -> bool {
        self.suppressed[self.row_class[row] as usize]
    }

    /// The released label of quasi-identifier `j` in input row `row`, spelled as in the
    /// hierarchy (level 0: the input's own value).
    pub(crate) fn label<'s>(&'s self, a: &'s Anonymiser<'_>, row: usize, j: usize) -> &'s str {
        let q = a.enc.q();
        let node = self.nodes[self.row_class[row] as usize * q + j];
        let qi = &a.enc.qis[j];
        if node.level == 0 {
            &a.table.column(qi.table_column).values[node.id as usize]
        } else {
            &qi.labels[usize::from(node.level)][node.id as usize]
        }
    }
}

/// The number of threads to partition on: the machine's, at most 8.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Runs local recoding on a prepared table: the released rows and the report. Published
/// classes are then suppressed smallest first (ties by position) while the average-risk
/// threshold, if any, is exceeded, as full-domain generalisation does. Fails with
/// [`DeidError::Unsatisfiable`] when more records are suppressed than the limit allows.
pub(crate) fn run(
    a: &Anonymiser<'_>,
    rule: SplitRule,
    threads: usize,
) -> Result<(LocalRows, Report), DeidError> {
    let t = Instant::now();
    let mut p = partition(a, rule, threads);
    let elapsed: Duration = t.elapsed();
    let enc = &a.enc;
    let policy = a.policy;
    let criteria = &a.criteria;
    let q = enc.q();
    let s = p.stride;
    let n = enc.records;

    // Average risk is a property of the whole release.
    let mut suppressed: u64 = 0;
    let mut published_classes = 0u64;
    for f in &p.finals {
        if f.suppressed {
            suppressed += f.len as u64;
        } else {
            published_classes += 1;
        }
    }
    let mut for_average = 0u64;
    if !criteria.average_risk_ok(published_classes, n - suppressed) {
        let mut order: Vec<usize> = (0..p.finals.len())
            .filter(|&c| !p.finals[c].suppressed)
            .collect();
        order.sort_by_key(|&c| (p.finals[c].len, c));
        for c in order {
            p.finals[c].suppressed = true;
            suppressed += p.finals[c].len as u64;
            published_classes -= 1;
            for_average += 1;
            if suppressed == n || criteria.average_risk_ok(published_classes, n - suppressed) {
                break;
            }
        }
    }
    let allowed = ((policy.suppression_limit * n as f64).floor() as u64).min(n);
    if suppressed > allowed {
        return Err(DeidError::Unsatisfiable {
            model: policy.privacy.describe(),
            k: criteria.min_class_size(),
            records: n,
            violating: suppressed,
            limit: policy.suppression_limit,
            allowed,
        });
    }

    let u = utility(enc, &p);
    let mut row_class = vec![0u32; a.table.num_rows()];
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    let mut coarsest = vec![0u8; q];
    let mut per_level: Vec<Vec<u64>> = enc
        .qis
        .iter()
        .map(|qi| vec![0; usize::from(qi.height) + 1])
        .collect();
    let sens = s - q - 1;
    // The classes' sensitive histograms, for the achieved ℓ and t.
    let mut hists: Vec<Hist> = (0..sens)
        .map(|_| Hist {
            offsets: vec![0],
            entries: Vec::new(),
        })
        .collect();
    let mut codes: Vec<u32> = Vec::new();
    for (c, f) in p.finals.iter().enumerate() {
        let records = &p.work[f.start * s..(f.start + f.len) * s];
        for rec in records.chunks_exact(s) {
            row_class[rec[s - 1] as usize] = c as u32;
        }
        for (si, h) in hists.iter_mut().enumerate() {
            codes.clear();
            codes.extend(records.chunks_exact(s).map(|rec| rec[q + si]));
            codes.sort_unstable();
            histogram_of_sorted(&codes, &mut h.entries);
            h.offsets.push(h.entries.len() as u32);
        }
        if !f.suppressed {
            *sizes.entry(f.len as u64).or_default() += 1;
            for j in 0..q {
                let level = p.nodes[c * q + j].level;
                coarsest[j] = coarsest[j].max(level);
                per_level[j][usize::from(level)] += f.len as u64;
            }
        }
    }
    let flags: Vec<bool> = p.finals.iter().map(|f| f.suppressed).collect();
    // Only `counts` and `hists` are read by the achieved figures; these classes have no
    // common levels.
    let classes = Classes {
        levels: Vec::new(),
        keys: Vec::new(),
        counts: p.finals.iter().map(|f| f.len as u32).collect(),
        hists,
    };
    let privacy = a.privacy_figures(&classes, &flags);
    drop(classes);
    let published = n - suppressed;
    let n_classes: u64 = sizes.values().sum();
    let min = sizes.keys().next().copied().unwrap_or(0);
    let max = sizes.keys().next_back().copied().unwrap_or(0);
    let risk = a.risk_figures(&sizes, published, n_classes, min);
    let rows_written = match policy.suppressed_rows {
        crate::SuppressedRows::Star => n,
        crate::SuppressedRows::Remove => published,
    };
    let value = match policy.metric {
        UtilityMetric::Loss => u.loss,
        UtilityMetric::Discernibility => u.discernibility,
        UtilityMetric::NonUniformEntropy => u.nue,
        UtilityMetric::MonotonicNonUniformEntropy => u.nue_generalisation,
    };
    let report = Report {
        records: n,
        records_suppressed: suppressed,
        suppressed_rows: policy.suppressed_rows,
        rows_written,
        privacy_model: policy.privacy.clone(),
        suppression_limit: policy.suppression_limit,
        identifiers_removed: a
            .table
            .header()
            .iter()
            .zip(&a.roles)
            .filter(|(_, (k, _))| *k == crate::AttributeKind::Identifier)
            .map(|(name, _)| name.clone())
            .collect(),
        transformation: enc
            .qis
            .iter()
            .zip(&coarsest)
            .map(|(qi, &level)| QiLevel {
                attribute: qi.name.clone(),
                level,
                max_level: qi.height,
            })
            .collect(),
        equivalence_classes: n_classes,
        min_class_size: min,
        max_class_size: max,
        class_sizes: sizes
            .iter()
            .map(|(&size, &classes)| ClassSizeCount { size, classes })
            .collect(),
        risk,
        privacy,
        utility: Utility {
            metric: policy.metric,
            value,
            loss: u.loss,
            loss_per_attribute: u.loss_per_qi,
            discernibility: u.discernibility,
            non_uniform_entropy: u.nue,
        },
        search: Search {
            algorithm: format!("local-recoding ({})", rule.name()),
            lattice_nodes: 0,
            nodes_checked: 0,
            nodes_grouped: 0,
            search_ms: elapsed.as_secs_f64() * 1e3,
        },
        warnings: a.suppression_warnings(suppressed),
        local_recoding: Some(LocalRecoding {
            split_rule: rule.name().into(),
            threads: threads.max(1) as u64,
            strict_splits: p.stats.strict_splits,
            relaxed_splits: p.stats.relaxed_splits,
            specialisations: p.stats.descents,
            histogram_passes: p.stats.tries,
            suppressed_for_average_risk: for_average,
            records_per_level: enc
                .qis
                .iter()
                .zip(per_level)
                .map(|(qi, records)| LevelRecords {
                    attribute: qi.name.clone(),
                    records,
                })
                .collect(),
        }),
    };
    let rows = LocalRows {
        row_class,
        suppressed: flags,
        nodes: p.nodes,
    };
    Ok((rows, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Attribute, AttributeKind, Hierarchies, Hierarchy, HierarchySpec, Policy, PrivacyModel,
        Recoding, SuppressedRows, Table,
    };

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// `rows` rows of three quasi-identifiers: an integer 0..100 (bands 5, 20), a code under a
    /// two-level CSV hierarchy whose top has two labels, and one of 3 values under `*`.
    fn table(rows: usize, k: u64) -> (Table, Policy, Hierarchies) {
        let mut rng = Rng(rows as u64);
        let header = ["age", "code", "flag"].map(String::from).to_vec();
        let data: Vec<Vec<String>> = (0..rows)
            .map(|_| {
                let a = rng.below(100).min(rng.below(100));
                vec![
                    a.to_string(),
                    format!("c{}", rng.below(12)),
                    format!("f{}", rng.below(3)),
                ]
            })
            .collect();
        let table = Table::from_rows(header, data).unwrap();
        let mut h = Hierarchies::new();
        h.insert(
            "code".into(),
            Hierarchy::from_rows(
                "code",
                (0..12)
                    .map(|c| {
                        vec![
                            format!("c{c}"),
                            format!("g{}", c / 3),
                            format!("t{}", c / 6),
                        ]
                    })
                    .collect(),
            )
            .unwrap(),
        );
        h.insert(
            "flag".into(),
            Hierarchy::from_rows(
                "flag",
                (0..3).map(|f| vec![format!("f{f}"), "*".into()]).collect(),
            )
            .unwrap(),
        );
        let qi = |name: &str, spec: HierarchySpec| Attribute {
            name: name.into(),
            kind: AttributeKind::QuasiIdentifier,
            hierarchy: Some(spec),
            transform: None,
        };
        let policy = Policy {
            privacy: PrivacyModel::k_anonymity(k),
            suppression_limit: 1.0,
            metric: crate::UtilityMetric::NonUniformEntropy,
            suppressed_rows: SuppressedRows::Star,
            algorithm: Recoding::LocalRecoding,
            delimiter: None,
            attributes: vec![
                qi("age", HierarchySpec::Intervals(vec![5, 20])),
                qi("code", HierarchySpec::Csv("code.csv".into())),
                qi("flag", HierarchySpec::Csv("flag.csv".into())),
            ],
            base_dir: None,
        };
        (table, policy, h)
    }

    /// A full-domain transformation written as a local recoding (one partition per class, all
    /// at the same levels) has exactly the full-domain figures: the cell-by-cell formulas are
    /// the lattice formulas.
    #[test]
    fn local_metrics_equal_full_domain_metrics_on_full_domain_recodings() {
        let (table, policy, h) = table(500, 4);
        let a = Anonymiser::new(&table, &policy, &h).unwrap();
        let q = a.enc.q();
        let heights = a.heights();
        let mut checked = 0;
        for l0 in 0..=heights[0] {
            for l1 in 0..=heights[1] {
                for l2 in 0..=heights[2] {
                    let levels = [l0, l1, l2];
                    // Group the rows by their labels at these levels.
                    let mut classes: BTreeMap<Vec<u32>, Vec<u32>> = BTreeMap::new();
                    for i in 0..table.num_rows() {
                        let key = (0..q)
                            .map(|j| {
                                let qi = &a.enc.qis[j];
                                qi.map[usize::from(levels[j])]
                                    [table.column(qi.table_column).codes[i] as usize]
                            })
                            .collect();
                        classes.entry(key).or_default().push(i as u32);
                    }
                    let mut p = Partitioned {
                        work: Vec::new(),
                        stride: q + 1,
                        finals: Vec::new(),
                        nodes: Vec::new(),
                        stats: Stats::default(),
                    };
                    for (key, rows) in &classes {
                        p.finals.push(Final {
                            start: p.work.len() / (q + 1),
                            len: rows.len(),
                            suppressed: !policy.privacy.class_ok(rows.len() as u64),
                        });
                        for &i in rows {
                            for j in 0..q {
                                let qi = &a.enc.qis[j];
                                p.work.push(table.column(qi.table_column).codes[i as usize]);
                            }
                            p.work.push(i);
                        }
                        p.nodes.extend(
                            key.iter()
                                .zip(&levels)
                                .map(|(&id, &level)| Node { level, id }),
                        );
                    }
                    let u = utility(&a.enc, &p);
                    let e = a.evaluate(&levels);
                    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1.0);
                    assert!(close(u.loss, e.loss), "{levels:?}: {} {}", u.loss, e.loss);
                    for (x, y) in u.loss_per_qi.iter().zip(&e.loss_per_attribute) {
                        assert!(close(*x, *y), "{levels:?}");
                    }
                    assert_eq!(u.discernibility, e.discernibility, "{levels:?}");
                    assert!(
                        close(u.nue, e.non_uniform_entropy),
                        "{levels:?}: {} {}",
                        u.nue,
                        e.non_uniform_entropy
                    );
                    checked += usize::from(e.violating > 0);
                }
            }
        }
        assert!(
            checked > 0,
            "no transformation with suppressed records was compared"
        );
    }

    /// The partitioning is the same on any number of threads, for a table large enough to be
    /// shared out.
    #[test]
    fn threads_do_not_change_the_result() {
        let (table, policy, h) = table(PARALLEL_MIN * 2 + 17, 3);
        let a = Anonymiser::new(&table, &policy, &h).unwrap();
        let one = partition(&a, SplitRule::Relaxed, 1);
        for threads in [2, 3] {
            let many = partition(&a, SplitRule::Relaxed, threads);
            assert_eq!(one.work, many.work, "{threads} threads");
            assert_eq!(one.nodes, many.nodes);
            assert_eq!(
                one.finals
                    .iter()
                    .map(|f| (f.start, f.len, f.suppressed))
                    .collect::<Vec<_>>(),
                many.finals
                    .iter()
                    .map(|f| (f.start, f.len, f.suppressed))
                    .collect::<Vec<_>>()
            );
        }
        // The top of `code` has two labels: the first cut is forced, and every class is inside
        // one of them.
        assert!(one.finals.len() > 100);
        assert!(one.stats.strict_splits + one.stats.relaxed_splits > 100);
    }
}
