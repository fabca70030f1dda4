//! Refusing a transformation from one record's class: a *witness*.
//!
//! A transformation is not anonymous when more records sit in classes smaller than `k` than
//! may be suppressed (every criterion refuses such a class, see [`crate::precheck`]). To show
//! that, one needs no grouping of all the records: the class of one record (a bottom-node
//! class, the witness) at the node's levels can be counted exactly by looking only at the
//! records sharing its rarest generalised value. If that class is smaller than `k` (and, when
//! records may be suppressed, such classes hold more records than may be), the node is refused,
//! exactly as grouping would have refused it. The count is exact, so this is sound whatever
//! the witness: choosing witnesses well only decides how often it succeeds.
//!
//! Witnesses come from where small classes were seen: classes smaller than `k` of nodes the
//! search grouped and found not anonymous (nodes near each other in the lattice share rare
//! records), witnesses that refused a node before (tried first), and records drawn at random
//! (a node with far more classes than an anonymous one can have puts most records in small
//! classes, so a random record is usually one). The tries for one node look at no more than
//! half as many classes as its grouping would read, so a node no witness refuses (every
//! anonymous one) costs at most that much more. On the benchmarks' million-row table
//! (`benches/versus_anjana.rs`) witnesses refuse 265 of the 341 nodes Flash checks, most of
//! them nodes it used to group only to find them not anonymous: 45 groupings instead of 252
//! (187 of those of a million rows, 17–50 ms each), for a few microseconds to a few
//! milliseconds per node. While they seldom refuse (fewer than one node in four after the
//! first 16), each node's allowance shrinks to a sixteenth, so models that refuse for other
//! reasons (ℓ-diversity, t-closeness) lose little.
//!
//! Counting a class needs the bottom-node classes holding one generalised value: per
//! quasi-identifier and level, they are sorted by that level's id (a counting sort; from the
//! index of a finer level when there is one, moving its runs whole), the first time that
//! column and level hold a witness's rarest value.

use crate::encode::Encoded;
use crate::groupify::Classes;

/// Witnesses kept (most recently useful first).
const POOL: usize = 128;
/// Kept witnesses tried per node.
const POOL_TRIES: usize = 128;
/// Records drawn at random per node, after the kept witnesses.
const RANDOM_TRIES: usize = 32;
/// Witnesses taken from each grouped node that was not anonymous.
const HARVEST: usize = 8;
/// Nodes tried before witnesses must refuse one in four to keep their full allowance.
const GRACE: u64 = 16;

/// The bottom node's classes grouped by one column's id at one level.
struct LevelIndex {
    /// Bottom-node classes, those with id 0 first, then id 1, …
    order: Vec<u32>,
    /// `start[id]..start[id + 1]`: where in `order` the classes with `id` are.
    start: Vec<u32>,
}

impl LevelIndex {
    /// By counting sort of the bottom node's classes (column `j` of `q`) on `map` (code →
    /// id, `card` ids).
    fn new(base: &Classes, j: usize, q: usize, map: &[u32], card: usize) -> Self {
        let n = base.len();
        let mut start = vec![0u32; card + 1];
        for c in 0..n {
            start[map[base.keys[c * q + j] as usize] as usize + 1] += 1;
        }
        for i in 0..card {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut order = vec![0u32; n];
        for c in 0..n {
            let slot = &mut next[map[base.keys[c * q + j] as usize] as usize];
            order[*slot as usize] = c as u32;
            *slot += 1;
        }
        Self { order, start }
    }

    /// From the index of a finer level, whose id `i` has id `up[i]` here (`card` ids): its
    /// runs are moved whole, so no class key is read.
    fn coarsen(&self, up: &[u32], card: usize) -> Self {
        let mut start = vec![0u32; card + 1];
        for (i, &id) in up.iter().enumerate() {
            start[id as usize + 1] += self.start[i + 1] - self.start[i];
        }
        for i in 0..card {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut order = vec![0u32; self.order.len()];
        for (i, &id) in up.iter().enumerate() {
            let run = &self.order[self.start[i] as usize..self.start[i + 1] as usize];
            let at = next[id as usize] as usize;
            order[at..at + run.len()].copy_from_slice(run);
            next[id as usize] += run.len() as u32;
        }
        Self { order, start }
    }

    fn run(&self, id: u32) -> &[u32] {
        let id = id as usize;
        match (self.start.get(id), self.start.get(id + 1)) {
            (Some(&b), Some(&e)) => self.order.get(b as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// The witnesses of one search, and the indexes to count their classes.
pub(crate) struct Witnesses<'a> {
    enc: &'a Encoded,
    base: &'a Classes,
    k: u64,
    budget: u64,
    /// `index[j][l]`: column `j` at level `l`, built when first needed.
    index: Vec<Vec<Option<LevelIndex>>>,
    /// Bottom-node classes, most recently useful first.
    pool: Vec<u32>,
    rng: u64,
    /// Per try: the witness's ids at the node's levels.
    ids: Vec<u32>,
    /// Small classes found for the current node (their ids), not to count one twice.
    found: Vec<Vec<u32>>,
    /// Nodes tried, and refused.
    tried: u64,
    refused: u64,
}

impl<'a> Witnesses<'a> {
    pub fn new(enc: &'a Encoded, base: &'a Classes, k: u64, budget: u64) -> Self {
        Self {
            enc,
            base,
            k,
            budget,
            index: enc
                .qis
                .iter()
                .map(|qi| (0..=qi.height).map(|_| None).collect())
                .collect(),
            pool: Vec::new(),
            rng: 0x0005_eed0_fc1a_55e5,
            ids: Vec::new(),
            found: Vec::new(),
            tried: 0,
            refused: 0,
        }
    }

    /// Whether some witness shows the node with these levels not anonymous, looking at no
    /// more than about `allowance` bottom-node classes (a fraction of what grouping the node
    /// would read: trying witnesses must stay cheaper than the grouping it may save).
    pub fn refuses(&mut self, levels: &[u8], allowance: usize) -> bool {
        if self.k <= 1 || self.base.len() == 0 || self.enc.q() == 0 {
            return false;
        }
        // Each small class found adds fewer than `k` records: when even every try finding
        // one could not add up to more than may be suppressed, trying is wasted.
        let most = (self.k - 1).saturating_mul((POOL_TRIES + RANDOM_TRIES) as u64);
        if most <= self.budget {
            return false;
        }
        // While witnesses seldom refuse (the model refuses for other reasons than class size,
        // or rare records are few), they may look at far less: a sixteenth.
        self.tried += 1;
        let paying = self.tried <= GRACE + 4 * self.refused;
        self.found.clear();
        let mut mass = 0u64;
        let mut left = if paying { allowance } else { allowance / 16 };
        let mut i = 0;
        while i < self.pool.len().min(POOL_TRIES) && left > 0 {
            let witness = self.pool[i];
            if self.try_witness(witness, levels, &mut mass, &mut left) {
                // Useful again soon, likely: to the front.
                self.pool[..=i].rotate_right(1);
                if mass > self.budget {
                    self.refused += 1;
                    return true;
                }
            }
            i += 1;
        }
        for _ in 0..RANDOM_TRIES {
            if left == 0 {
                break;
            }
            let witness = (self.next_random() % self.base.len() as u64) as u32;
            if self.try_witness(witness, levels, &mut mass, &mut left) {
                self.remember(witness);
                if mass > self.budget {
                    self.refused += 1;
                    return true;
                }
            }
        }
        false
    }

    /// Keeps some of the small classes of a grouped node that was not anonymous as
    /// witnesses (one bottom-node class under each).
    pub fn learn(&mut self, classes: &Classes) {
        if self.k <= 1 {
            return;
        }
        let small: Vec<usize> = (0..classes.len())
            .filter(|&c| u64::from(classes.counts[c]) < self.k)
            .collect();
        if small.is_empty() {
            return;
        }
        // Spread over the small classes rather than the first few.
        let step = small.len().div_ceil(HARVEST);
        for &c in small.iter().step_by(step.max(1)) {
            if let Some(witness) = self.find_member(&classes.levels, classes.key(c)) {
                self.remember(witness);
            }
        }
    }

    fn remember(&mut self, witness: u32) {
        if let Some(i) = self.pool.iter().position(|&w| w == witness) {
            self.pool.remove(i);
        }
        self.pool.insert(0, witness);
        self.pool.truncate(POOL);
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic, so a search does the same work every run.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Counts the witness's class at `levels`, unless that means looking at more than `left`
    /// bottom-node classes (then it is not tried); if smaller than `k` and not counted yet
    /// for this node, adds it to `mass`. Returns whether the class is smaller than `k`.
    fn try_witness(
        &mut self,
        witness: u32,
        levels: &[u8],
        mass: &mut u64,
        left: &mut usize,
    ) -> bool {
        let q = self.enc.q();
        let row = &self.base.keys[witness as usize * q..(witness as usize + 1) * q];
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        ids.extend(
            self.enc
                .qis
                .iter()
                .zip(levels)
                .zip(row)
                .map(|((qi, &l), &code)| qi.map[l as usize][code as usize]),
        );
        let (size, looked) = self.count_within(levels, &ids, self.k, *left);
        *left = left.saturating_sub(looked.max(1));
        let small = size.is_some_and(|size| size < self.k);
        if let Some(size) = size
            && small
            && !self.found.contains(&ids)
        {
            *mass += size;
            self.found.push(ids.clone());
        }
        self.ids = ids;
        small
    }

    /// The records in the class with `ids` at `levels`, counted up to `limit` (the count stops
    /// there).
    #[cfg(test)]
    pub(crate) fn count(&mut self, levels: &[u8], ids: &[u32], limit: u64) -> u64 {
        self.count_within(levels, ids, limit, usize::MAX)
            .0
            .unwrap_or(u64::MAX)
    }

    /// The records in the class with `ids` at `levels`, counted up to `limit`, and how many
    /// bottom-node classes it looked at; `None` without looking when that would be more than
    /// `max_looked`.
    fn count_within(
        &mut self,
        levels: &[u8],
        ids: &[u32],
        limit: u64,
        max_looked: usize,
    ) -> (Option<u64>, usize) {
        let Some(j) = self.scan_column(levels, ids) else {
            // Every column at one value: one class of all records.
            return (Some(self.enc.records), 0);
        };
        let run = self.run(j, levels, ids);
        if run.len() > max_looked {
            return (None, 0);
        }
        let mut total = 0u64;
        for (looked, c) in self.members(j, levels, ids, run) {
            total += u64::from(self.base.counts[c as usize]);
            if total >= limit {
                return (Some(total), looked);
            }
        }
        (Some(total), run.len())
    }

    /// A bottom-node class in the class with `ids` at `levels`.
    pub(crate) fn find_member(&mut self, levels: &[u8], ids: &[u32]) -> Option<u32> {
        match self.scan_column(levels, ids) {
            Some(j) => self
                .members(j, levels, ids, self.run(j, levels, ids))
                .next()
                .map(|(_, c)| c),
            // Every column at one value: every class is in the one class.
            None => (self.base.len() > 0).then_some(0),
        }
    }

    /// The column to scan for the class with `ids` at `levels`: the one whose value there is
    /// rarest (its index built if needed); `None` when every column has one value there.
    fn scan_column(&mut self, levels: &[u8], ids: &[u32]) -> Option<usize> {
        let (j, _) = self
            .enc
            .qis
            .iter()
            .enumerate()
            .filter(|(j, qi)| qi.cardinality(levels[*j]) > 1)
            .map(|(j, qi)| (j, qi.freq[levels[j] as usize][ids[j] as usize]))
            .min_by_key(|&(_, f)| f)?;
        let l = usize::from(levels[j]);
        if self.index[j][l].is_none() {
            let qi = &self.enc.qis[j];
            let card = qi.cardinality(levels[j]);
            // From the finest index below, if any (moving runs is cheaper than reading keys).
            let built = match (0..l).rev().find(|&f| self.index[j][f].is_some()) {
                Some(f) => self.index[j][f]
                    .as_ref()
                    .map(|finer| finer.coarsen(qi.up_map(f as u8, levels[j]), card)),
                None => None,
            };
            let built = built
                .unwrap_or_else(|| LevelIndex::new(self.base, j, self.enc.q(), &qi.map[l], card));
            self.index[j][l] = Some(built);
        }
        Some(j)
    }

    /// The bottom-node classes holding column `j`'s value in `ids` at its level in `levels`
    /// (its index built by [`Self::scan_column`]).
    fn run(&self, j: usize, levels: &[u8], ids: &[u32]) -> &'_ [u32] {
        match &self.index[j][usize::from(levels[j])] {
            Some(index) => index.run(ids[j]),
            None => &[],
        }
    }

    /// The bottom-node classes in the class with `ids` at `levels`, found in `run` (those
    /// holding column `scanned`'s value), each with how many of `run` were looked at.
    fn members<'s>(
        &'s self,
        scanned: usize,
        levels: &'s [u8],
        ids: &'s [u32],
        run: &'s [u32],
    ) -> impl Iterator<Item = (usize, u32)> + 's {
        let q = self.enc.q();
        // The other columns to compare, rarest value first: (column, map from codes, id).
        let mut checks: Vec<(u64, usize, &[u32], u32)> = self
            .enc
            .qis
            .iter()
            .enumerate()
            .filter(|&(j, qi)| j != scanned && qi.cardinality(levels[j]) > 1)
            .map(|(j, qi)| {
                let l = levels[j] as usize;
                (qi.freq[l][ids[j] as usize], j, qi.map[l].as_slice(), ids[j])
            })
            .collect();
        checks.sort_unstable_by_key(|c| c.0);
        let keys = &self.base.keys;
        run.iter()
            .enumerate()
            .filter(move |&(_, &c)| {
                let row = &keys[c as usize * q..(c as usize + 1) * q];
                checks
                    .iter()
                    .all(|&(_, j, map, id)| map[row[j] as usize] == id)
            })
            .map(|(i, &c)| (i + 1, c))
    }
}
