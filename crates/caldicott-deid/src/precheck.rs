//! Necessary conditions for a transformation to be anonymous, checked before grouping it.
//!
//! Every criterion refuses a class smaller than `k` ([`crate::Criteria::min_class_size`]),
//! and the classes of a transformation over a subset of the quasi-identifiers are unions of
//! its classes over all of them (its classes are the classes of a node *above* it: the same
//! levels on the subset, the top level elsewhere). So a record whose subset values, at the
//! node's levels, are shared by fewer than `k` records is in a class smaller than `k`, and is
//! suppressed. If such records are more than may be suppressed, the node is not anonymous,
//! under any combination of criteria and any suppression limit: no grouping needed.
//!
//! Two kinds of subsets are tried: each quasi-identifier alone (its per-level frequencies are
//! known from the encoding, so this costs nothing), then pairs of them. A pair's frequencies
//! at a pair of levels (a *projection*) are computed once, by grouping the bottom node's
//! classes, or the finest projection of the same pair already computed below, on the two
//! columns alone, and remembered: one projection serves many nodes. On the benchmarks'
//! million-row table (a full postcode and a date of birth make every row unique), pairs refuse
//! 61 of the 341 nodes Flash checks, from 24 projections, where one quasi-identifier alone
//! refuses 28; a pair refusal saves a grouping of a million rows. A pair is tried only when it
//! has enough possible cells (more than `N / 4k`) for many of them to be rarer than `k`, and
//! new projections are computed only while they pay, so a table where pairs refuse nothing loses little.
//!
//! Between the two, one record's class is counted exactly ([`crate::witness`]): cheaper than a
//! projection, and it catches rare combinations of any number of columns. With it first, on
//! the same table, pairs refuse only a few nodes (from about 6 projections); they are kept as
//! the cheaper check for tables whose rare records witnesses miss.

use crate::encode::Encoded;
use crate::fx::FxHashMap;
use crate::groupify::{Classes, group};
use crate::witness::Witnesses;

/// Projections kept as roll-up sources: at most this many bytes of them.
const KEPT_BYTES: usize = 32 << 20;

/// A pair's frequencies at one pair of levels.
struct Projection {
    pair: usize,
    levels: [u8; 2],
    /// `ids[2 * c..2 * c + 2]`: the pair's ids of class `c`.
    ids: Vec<u32>,
    counts: Vec<u32>,
}

impl Projection {
    fn bytes(&self) -> usize {
        self.ids.len() * 4 + self.counts.len() * 4
    }
}

/// Counters of the prechecks (for the report's diagnostics and the benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PrecheckStats {
    /// Nodes refused by one quasi-identifier's frequencies.
    pub single: u64,
    /// Nodes refused by a pair's.
    pub pair: u64,
    /// Nodes refused by a witness's class (see [`crate::witness`]).
    pub witness: u64,
    /// Projections computed.
    pub projections: u64,
}

/// The prechecks of one search.
pub(crate) struct Precheck<'a> {
    enc: &'a Encoded,
    base: &'a Classes,
    /// Classes smaller than this are refused by every criterion.
    k: u64,
    /// Records that may be suppressed.
    budget: u64,
    /// The most classes an anonymous node (or a projection of one) can have.
    max_classes: usize,
    /// `single[j][l]`: records in values of quasi-identifier `j` at level `l` rarer than `k`.
    single: Vec<Vec<u64>>,
    /// The pairs of quasi-identifiers, `(j1, j2)` with `j1 < j2`.
    pairs: Vec<(usize, usize)>,
    /// Records in pair values rarer than `k`, by (pair, levels).
    mass: FxHashMap<(usize, [u8; 2]), u64>,
    kept: Vec<Projection>,
    witnesses: Witnesses<'a>,
    /// Whether to try witnesses (off only in tests of the other conditions).
    use_witnesses: bool,
    pub stats: PrecheckStats,
}

impl<'a> Precheck<'a> {
    pub fn new(enc: &'a Encoded, base: &'a Classes, k: u64, budget: u64) -> Self {
        let q = enc.q();
        Self {
            enc,
            base,
            k,
            budget,
            max_classes: usize::try_from(enc.records / k.max(1) + budget).unwrap_or(usize::MAX),
            single: enc
                .qis
                .iter()
                .map(|qi| (0..=qi.height).map(|l| qi.mass_below(l, k)).collect())
                .collect(),
            pairs: (0..q)
                .flat_map(|a| (a + 1..q).map(move |b| (a, b)))
                .collect(),
            mass: FxHashMap::default(),
            kept: Vec::new(),
            witnesses: Witnesses::new(enc, base, k, budget),
            use_witnesses: true,
            stats: PrecheckStats::default(),
        }
    }

    /// Whether the node with these levels is certainly not anonymous: more records are in
    /// classes smaller than `k` than may be suppressed. `allowance`: how many bottom-node
    /// classes the witnesses may look at (see [`Witnesses::refuses`]).
    pub fn refuses(&mut self, levels: &[u8], allowance: usize) -> bool {
        if self.k <= 1 {
            return false;
        }
        if levels
            .iter()
            .enumerate()
            .any(|(j, &l)| self.single[j][l as usize] > self.budget)
        {
            self.stats.single += 1;
            return true;
        }
        if self.use_witnesses && self.witnesses.refuses(levels, allowance) {
            self.stats.witness += 1;
            return true;
        }
        // Pairs with more possible cells first: the likeliest to have rare combinations. A
        // pair whose cells hold on average many times `k` records is not tried (it would cost
        // a grouping and seldom refuse anything; leaving a condition out is always sound).
        let records = self.enc.records;
        let mut order: Vec<(u64, usize)> = self
            .pairs
            .iter()
            .enumerate()
            .filter_map(|(p, &(a, b))| {
                let ca = self.enc.qis[a].cardinality(levels[a]) as u64;
                let cb = self.enc.qis[b].cardinality(levels[b]) as u64;
                let cells = ca.saturating_mul(cb);
                (ca > 1 && cb > 1 && cells.saturating_mul(self.k).saturating_mul(4) >= records)
                    .then_some((cells, p))
            })
            .collect();
        order.sort_unstable_by(|x, y| y.cmp(x));
        for (_, p) in order {
            let (a, b) = self.pairs[p];
            if self
                .pair_mass(p, [levels[a], levels[b]])
                .is_some_and(|m| m > self.budget)
            {
                self.stats.pair += 1;
                return true;
            }
        }
        false
    }

    /// Learns from a grouped node that was not anonymous: its small classes become witnesses.
    pub fn learn(&mut self, classes: &Classes) {
        self.witnesses.learn(classes);
    }

    /// Records in values of pair `p` at `levels` rarer than `k`; `None` when not yet known
    /// and no longer worth computing. A projection from the bottom node costs about one
    /// grouping, so new ones are computed only while they pay: at most `GRACE` more than
    /// twice the nodes pairs have refused. On data where pairs refuse nothing, that bounds the
    /// cost to a few groupings.
    fn pair_mass(&mut self, p: usize, levels: [u8; 2]) -> Option<u64> {
        const GRACE: u64 = 8;
        if let Some(&m) = self.mass.get(&(p, levels)) {
            return Some(m);
        }
        if self.stats.projections >= GRACE + 2 * self.stats.pair {
            return None;
        }
        // More classes than `max_classes` prove the mass above the budget (as for a node:
        // classes of at least `k` records are at most `N / k`, and each smaller one holds at
        // least one of the `mass` records), so the grouping may stop there.
        let mass = match self.project(p, levels) {
            Some(projection) => {
                let k = self.k;
                let mass = projection
                    .counts
                    .iter()
                    .map(|&c| u64::from(c))
                    .filter(|&c| c < k)
                    .sum();
                self.keep(projection);
                mass
            }
            None => u64::MAX,
        };
        self.mass.insert((p, levels), mass);
        Some(mass)
    }

    /// Groups the finest kept projection of pair `p` below `levels` (or the bottom node) on
    /// the pair at `levels`; `None` past `max_classes` classes.
    fn project(&mut self, p: usize, levels: [u8; 2]) -> Option<Projection> {
        self.stats.projections += 1;
        let (a, b) = self.pairs[p];
        let (qa, qb) = (&self.enc.qis[a], &self.enc.qis[b]);
        let cards = [
            qa.cardinality(levels[0]) as u32,
            qb.cardinality(levels[1]) as u32,
        ];
        let source = self
            .kept
            .iter()
            .filter(|s| s.pair == p && s.levels[0] <= levels[0] && s.levels[1] <= levels[1])
            .min_by_key(|s| s.counts.len());
        let (ids, counts) = match source {
            Some(s) if s.counts.len() < self.base.len() => {
                let maps = [
                    qa.up_map(s.levels[0], levels[0]),
                    qb.up_map(s.levels[1], levels[1]),
                ];
                let identity = [s.levels[0] == levels[0], s.levels[1] == levels[1]];
                let (ids, counts, _) = group(
                    &s.ids,
                    Some(&s.counts),
                    2,
                    &maps,
                    &identity,
                    &cards,
                    false,
                    self.max_classes,
                )?;
                (ids, counts)
            }
            _ => {
                // From the bottom node: the other columns take part with one value each
                // (cardinality 1 contributes nothing to the key), read as they are.
                let q = self.enc.q();
                let mut maps: Vec<&[u32]> = vec![&[]; q];
                let mut identity = vec![true; q];
                let mut all_cards = vec![1u32; q];
                maps[a] = qa.up_map(0, levels[0]);
                maps[b] = qb.up_map(0, levels[1]);
                identity[a] = levels[0] == 0;
                identity[b] = levels[1] == 0;
                all_cards[a] = cards[0];
                all_cards[b] = cards[1];
                let (keys, counts, _) = group(
                    &self.base.keys,
                    Some(&self.base.counts),
                    q,
                    &maps,
                    &identity,
                    &all_cards,
                    false,
                    self.max_classes,
                )?;
                let ids = keys
                    .chunks_exact(q)
                    .flat_map(|row| [row[a], row[b]])
                    .collect();
                (ids, counts)
            }
        };
        Some(Projection {
            pair: p,
            levels,
            ids,
            counts,
        })
    }

    /// Keeps a projection as a roll-up source, within the byte budget (the largest go first:
    /// they save the least over the bottom node).
    fn keep(&mut self, projection: Projection) {
        if projection.bytes() > KEPT_BYTES / 4 {
            return;
        }
        self.kept.push(projection);
        let mut bytes: usize = self.kept.iter().map(Projection::bytes).sum();
        while bytes > KEPT_BYTES {
            let Some(largest) = (0..self.kept.len()).max_by_key(|&i| self.kept[i].bytes()) else {
                break;
            };
            bytes -= self.kept[largest].bytes();
            self.kept.swap_remove(largest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{
        Attribute, AttributeKind, LDiversity, LVariant, PrivacyModel, Recoding, SuppressedRows,
        UtilityMetric,
    };
    use crate::{Anonymiser, Hierarchies, Hierarchy, HierarchySpec, Policy, Table};
    use proptest::prelude::*;

    /// A table of `q` quasi-identifiers over `d` values each (value `v` under group `v % g` at
    /// level 1, `*` at level 2) and one sensitive column, from `cells`.
    fn case(
        q: usize,
        d: &[u8],
        cells: &[u8],
        k: u64,
        l: Option<u8>,
        limit: f64,
    ) -> (Table, Policy, Hierarchies) {
        let mut header: Vec<String> = (0..q).map(|j| format!("q{j}")).collect();
        header.push("s".into());
        let rows: Vec<Vec<String>> = cells
            .chunks_exact(q + 1)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(j, &x)| match d.get(j) {
                        Some(&dj) if j < q => format!("v{}", x % dj),
                        _ => format!("s{}", x % 3),
                    })
                    .collect()
            })
            .collect();
        let table = Table::from_rows(header, rows).unwrap();
        let mut hierarchies = Hierarchies::new();
        let mut attributes = Vec::new();
        for (j, &dj) in d.iter().enumerate().take(q) {
            let groups = (dj / 2).max(1);
            let rows = (0..dj)
                .map(|v| vec![format!("v{v}"), format!("g{}", v % groups), "*".into()])
                .collect();
            hierarchies.insert(format!("q{j}"), Hierarchy::from_rows("q", rows).unwrap());
            attributes.push(Attribute {
                name: format!("q{j}"),
                kind: AttributeKind::QuasiIdentifier,
                hierarchy: Some(HierarchySpec::Csv("in-memory".into())),
                transform: None,
            });
        }
        attributes.push(Attribute {
            name: "s".into(),
            kind: AttributeKind::Sensitive,
            hierarchy: None,
            transform: None,
        });
        let mut privacy = PrivacyModel::k_anonymity(k);
        if let Some(l) = l {
            privacy.l_diversity.push(LDiversity {
                attribute: "s".into(),
                variant: LVariant::Distinct,
                l: f64::from(l),
            });
        }
        let policy = Policy {
            privacy,
            suppression_limit: limit,
            metric: UtilityMetric::NonUniformEntropy,
            suppressed_rows: SuppressedRows::Star,
            algorithm: Recoding::Optimal,
            delimiter: None,
            attributes,
            base_dir: None,
        };
        (table, policy, hierarchies)
    }

    /// Every node of the lattice, as levels.
    fn nodes(heights: &[u8]) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        for &h in heights {
            all = all
                .into_iter()
                .flat_map(|p| {
                    (0..=h).map(move |l| {
                        let mut n = p.clone();
                        n.push(l);
                        n
                    })
                })
                .collect();
        }
        all
    }

    /// Checks every node: refused ⇒ really not anonymous. Returns how many nodes pairs or
    /// witnesses refused.
    fn check_sound(table: &Table, policy: &Policy, h: &Hierarchies) -> u64 {
        let Ok(a) = Anonymiser::new(table, policy, h) else {
            return 0; // ℓ above the distinct values: nothing to search
        };
        let budget = (policy.suppression_limit * table.num_rows() as f64).floor() as u64;
        let mut pre = Precheck::new(
            &a.enc,
            a.base_classes(),
            a.criteria.min_class_size(),
            budget,
        );
        for levels in nodes(&a.heights()) {
            if pre.refuses(&levels, usize::MAX) {
                let e = a.evaluate(&levels);
                assert!(
                    !e.anonymous && e.violating > budget,
                    "refused an anonymous node {levels:?} ({e:?})"
                );
            } else {
                // As the search does after grouping a node: its small classes become
                // witnesses for the nodes after it.
                pre.learn(&crate::search::rollup(&a.enc, a.base_classes(), &levels, false).0);
            }
        }
        pre.stats.pair + pre.stats.witness
    }

    #[test]
    fn a_rare_pair_refuses_what_no_single_column_does() {
        // Two columns of two values, 10 rows each, but the combination (v0, v1) only once:
        // every value is frequent, the pair is not, and with k = 2 and nothing suppressed the
        // bottom node and those keeping both columns are refused by the pair.
        let mut cells = Vec::new();
        for i in 0..21u8 {
            let (a, b) = match i {
                0 => (0, 1),
                1..=10 => (0, 0),
                11..=15 => (1, 0),
                _ => (1, 1),
            };
            cells.extend([a, b, i]);
        }
        let (table, policy, h) = case(2, &[2, 2], &cells, 2, None, 0.0);
        let a = Anonymiser::new(&table, &policy, &h).unwrap();
        let mut pre = Precheck::new(&a.enc, a.base_classes(), 2, 0);
        pre.use_witnesses = false;
        assert!(pre.refuses(&[0, 0], usize::MAX));
        assert_eq!(pre.stats.pair, 1);
        assert_eq!(pre.stats.single, 0);
        assert!(!a.evaluate(&[0, 0]).anonymous);
        // Generalising either column (to one value here) makes it anonymous.
        assert!(!pre.refuses(&[2, 0], usize::MAX));
        assert!(a.evaluate(&[2, 0]).anonymous);
        assert!(check_sound(&table, &policy, &h) >= 1);
    }

    /// Like [`case`] with `k`-anonymity and nothing suppressed, but each column's hierarchy
    /// has four levels (value `v`, then `g(v % m)`, then `h(v % m % 2)`, then `*`), with the
    /// values' codes not in hierarchy order: the witnesses' index sorts them.
    fn deep_case(q: usize, d: &[u8], cells: &[u8]) -> (Table, Policy, Hierarchies) {
        let (table, policy, _) = case(q, d, cells, 2, None, 0.0);
        let mut hierarchies = Hierarchies::new();
        for (j, &dj) in d.iter().enumerate().take(q) {
            let m = (dj / 2).max(2);
            let rows = (0..dj)
                .map(|v| {
                    vec![
                        format!("v{v}"),
                        format!("g{}", v % m),
                        format!("h{}", v % m % 2),
                        "*".into(),
                    ]
                })
                .collect();
            hierarchies.insert(format!("q{j}"), Hierarchy::from_rows("q", rows).unwrap());
        }
        (table, policy, hierarchies)
    }

    #[test]
    fn a_witness_refuses_what_no_pair_does() {
        // Three columns of two values: every combination 4 times, except (v1, v1, v1) once.
        // Every value and every pair of values is frequent (at least 5), only the triple is
        // rare: with k = 2 and nothing suppressed, the bottom node is not anonymous, and
        // only a witness (one of the bottom node's small classes, learnt from grouping it)
        // shows it.
        let mut cells = Vec::new();
        for combo in 0..8u8 {
            let times = if combo == 7 { 1 } else { 4 };
            for t in 0..times {
                cells.extend([combo & 1, (combo >> 1) & 1, (combo >> 2) & 1, t]);
            }
        }
        let (table, policy, h) = case(3, &[2, 2, 2], &cells, 2, None, 0.0);
        let a = Anonymiser::new(&table, &policy, &h).unwrap();
        assert!(!a.evaluate(&[0, 0, 0]).anonymous);
        let mut pre = Precheck::new(&a.enc, a.base_classes(), 2, 0);
        pre.learn(a.base_classes());
        assert!(pre.refuses(&[0, 0, 0], usize::MAX));
        assert_eq!(
            (pre.stats.witness, pre.stats.pair, pre.stats.single),
            (1, 0, 0)
        );
        // Generalising any column makes it anonymous, and no witness says otherwise.
        for levels in [[2, 0, 0], [0, 2, 0], [0, 0, 2]] {
            assert!(a.evaluate(&levels).anonymous);
            assert!(!pre.refuses(&levels, usize::MAX));
        }
        // With one record that may be suppressed, the one small class is allowed.
        let mut lenient = Precheck::new(&a.enc, a.base_classes(), 2, 1);
        lenient.learn(a.base_classes());
        assert!(!lenient.refuses(&[0, 0, 0], usize::MAX));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// A witness's class is counted exactly, at every node and for every class, and the
        /// member found for a class lies in it: refusing on a count below `k` is then exactly
        /// what grouping would conclude.
        #[test]
        fn witnesses_count_every_class_exactly(
            q in 1usize..4,
            d in prop::collection::vec(2u8..9, 3),
            cells in prop::collection::vec(any::<u8>(), 4..200),
            deep in any::<bool>(),
        ) {
            let (table, policy, h) = if deep {
                deep_case(q, &d, &cells)
            } else {
                case(q, &d, &cells, 2, None, 0.0)
            };
            prop_assume!(table.num_rows() > 0);
            let a = Anonymiser::new(&table, &policy, &h).unwrap();
            let base = a.base_classes();
            let mut witnesses = Witnesses::new(&a.enc, base, 2, 0);
            for levels in nodes(&a.heights()) {
                let classes = crate::search::rollup(&a.enc, base, &levels, false).0;
                for c in 0..classes.len() {
                    let key = classes.key(c);
                    prop_assert_eq!(
                        witnesses.count(&levels, key, u64::MAX),
                        u64::from(classes.counts[c])
                    );
                    let member = witnesses.find_member(&levels, key).unwrap() as usize;
                    let row = base.key(member);
                    for (j, qi) in a.enc.qis.iter().enumerate() {
                        prop_assert_eq!(qi.map[levels[j] as usize][row[j] as usize], key[j]);
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// On random tables, with k-anonymity or distinct ℓ-diversity (whose smallest class is
        /// ℓ) and any suppression limit, a node the prechecks refuse is never anonymous.
        #[test]
        fn refused_nodes_are_not_anonymous(
            q in 2usize..5,
            d in prop::collection::vec(2u8..7, 4),
            cells in prop::collection::vec(any::<u8>(), 5..300),
            k in 1u64..6,
            l in prop::option::of(1u8..4),
            limit in prop::sample::select(vec![0.0, 0.05, 0.1, 0.3]),
        ) {
            let (table, policy, h) = case(q, &d, &cells, k, l, limit);
            if table.num_rows() > 0 {
                check_sound(&table, &policy, &h);
            }
        }
    }
}
