//! Integer encoding of the quasi-identifiers.
//!
//! Each quasi-identifier's values are numbered densely per level (level 0: the table's own
//! dictionary codes), and for every level a map original-id → generalised-id is precomputed,
//! plus, for every pair of levels `a <= b`, a map level-`a`-id → level-`b`-id used to roll
//! equivalence classes up. Evaluating a transformation is then integer work only.

use crate::error::DeidError;
use crate::fx::FxHashMap;
use crate::hierarchy::{Hierarchy, HierarchySpec};
use crate::table::Table;

/// Where a quasi-identifier's labels come from.
pub(crate) enum Generaliser<'a> {
    /// A materialised (CSV) hierarchy.
    Table(&'a Hierarchy),
    /// A built-in rule.
    Builtin(&'a HierarchySpec),
}

/// One encoded quasi-identifier.
#[derive(Debug, Clone)]
pub(crate) struct QiColumn {
    /// Its name.
    pub name: String,
    /// Its position in the table.
    pub table_column: usize,
    /// Highest level (levels are `0..=height`).
    pub height: u8,
    /// `map[l][code]`: the level-`l` id of the value with dictionary code `code`.
    pub map: Vec<Vec<u32>>,
    /// `labels[l][id]`: the label spelled as in the hierarchy, for levels 1 and up; level 0
    /// labels are the table's own values (`labels[0]` is empty, see [`QiColumn::cardinality`]).
    pub labels: Vec<Vec<String>>,
    /// Number of distinct values (level-0 ids).
    pub distinct: usize,
    /// `freq[l][id]`: records whose value generalises to `id` at level `l`.
    pub freq: Vec<Vec<u64>>,
    /// `up[a][b - a][id_a]`: the level-`b` id of the level-`a` id (`b >= a`).
    pub up: Vec<Vec<Vec<u32>>>,
    /// `leaves[l][id]`: original values of the hierarchy's domain under `id` (ARX's domain share
    /// numerator).
    pub leaves: Vec<Vec<u64>>,
    /// Size of the hierarchy's domain: its rows (CSV) or the distinct values in the data
    /// (built-in).
    pub domain: u64,
    /// `nue[l]`: the non-uniform entropy of this column at level `l`, over all records, in bits:
    /// `sum over original values v of f(v) * log2(F_l(v) / f(v))`.
    pub nue: Vec<f64>,
    /// `share_sum[l]`: `sum over records of leaves_l(value)`, exact (Loss without suppression,
    /// times `domain`).
    pub share_sum: Vec<u128>,
}

impl QiColumn {
    /// Number of distinct ids at a level.
    pub fn cardinality(&self, level: u8) -> usize {
        if level == 0 {
            self.distinct
        } else {
            self.labels[level as usize].len()
        }
    }

    /// Records in values whose frequency at `level` is below `k`: all of them are in classes
    /// smaller than `k` under any transformation with this level.
    pub fn mass_below(&self, level: u8, k: u64) -> u64 {
        self.freq[level as usize].iter().filter(|&&f| f < k).sum()
    }

    /// The roll-up map from level `a` to level `b >= a`.
    pub fn up_map(&self, a: u8, b: u8) -> &[u32] {
        &self.up[a as usize][(b - a) as usize]
    }
}

/// The encoded problem: quasi-identifiers and record count.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub qis: Vec<QiColumn>,
    pub records: u64,
}

impl Encoded {
    /// Encodes the quasi-identifier columns of `table`, each with its generaliser. Fails on the
    /// first value without a place in its hierarchy, naming row, column and (for CSV
    /// hierarchies) the value.
    pub fn new(table: &Table, columns: &[(usize, Generaliser<'_>)]) -> Result<Self, DeidError> {
        let qis = columns
            .iter()
            .map(|(c, g)| encode_column(table, *c, g))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            qis,
            records: table.num_rows() as u64,
        })
    }

    /// Number of quasi-identifiers.
    pub fn q(&self) -> usize {
        self.qis.len()
    }
}

/// Encodes one column with its generaliser (also used for t-closeness's ground-distance
/// hierarchy over a sensitive column).
pub(crate) fn encode_column(
    table: &Table,
    table_column: usize,
    generaliser: &Generaliser<'_>,
) -> Result<QiColumn, DeidError> {
    let name = table.header()[table_column].clone();
    let column = table.column(table_column);
    let levels = match generaliser {
        Generaliser::Table(h) => h.levels(),
        Generaliser::Builtin(spec) => spec.builtin_levels().unwrap_or(1),
    };
    if levels > usize::from(u8::MAX) {
        return Err(DeidError::HierarchyMalformed {
            column: name,
            message: format!("{levels} levels; at most 255 are supported"),
        });
    }
    let values = &column.values;
    let mut map: Vec<Vec<u32>> = vec![Vec::with_capacity(values.len()); levels];
    let mut labels: Vec<Vec<String>> = vec![Vec::new(); levels];
    let mut ids: Vec<FxHashMap<String, u32>> = vec![FxHashMap::default(); levels];

    for (code, value) in values.iter().enumerate() {
        let owned;
        let chain: &[String] = match generaliser {
            Generaliser::Table(h) => {
                h.chain(value)
                    .ok_or_else(|| DeidError::ValueNotInHierarchy {
                        column: name.clone(),
                        row: column.first_row_of(code as u32) + 1,
                        value: value.to_string(),
                    })?
            }
            Generaliser::Builtin(spec) => {
                owned = spec
                    .builtin_chain(value)
                    .map_err(|rule| DeidError::InvalidValue {
                        column: name.clone(),
                        row: column.first_row_of(code as u32) + 1,
                        rule,
                    })?;
                &owned
            }
        };
        // Level 0: the value itself, whose id is its dictionary code.
        map[0].push(code as u32);
        for (l, label) in chain.iter().enumerate().skip(1) {
            let id = match ids[l].get(label.as_str()) {
                Some(&id) => id,
                None => {
                    let id = labels[l].len() as u32;
                    labels[l].push(label.clone());
                    ids[l].insert(label.clone(), id);
                    id
                }
            };
            map[l].push(id);
        }
    }
    drop(ids);
    let distinct = values.len();
    let cardinality = |l: usize| if l == 0 { distinct } else { labels[l].len() };

    let freq_codes = column.frequencies();
    // freq[l][id]: records whose value generalises to `id` at level `l`.
    let freq: Vec<Vec<u64>> = (0..levels)
        .map(|l| {
            let mut f = vec![0u64; cardinality(l)];
            for (code, &n) in freq_codes.iter().enumerate() {
                f[map[l][code] as usize] += n;
            }
            f
        })
        .collect();

    // Domain shares (ARX's DomainShareMaterialized): leaves of the hierarchy under each label.
    let (leaves, domain) = match generaliser {
        Generaliser::Table(h) => {
            // Each hierarchy row is one leaf; add it under its label at every level, if that
            // label occurs in the data.
            let mut leaves: Vec<Vec<u64>> =
                (0..levels).map(|l| vec![0u64; cardinality(l)]).collect();
            let mut by_label: Vec<FxHashMap<&str, u32>> = vec![FxHashMap::default(); levels];
            for (l, labels_l) in labels.iter().enumerate().skip(1) {
                by_label[l] = labels_l
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.as_str(), i as u32))
                    .collect();
            }
            by_label[0] = values
                .iter()
                .enumerate()
                .map(|(i, s)| (s, i as u32))
                .collect();
            for row in h.rows() {
                for (l, label) in row.iter().enumerate() {
                    if let Some(&id) = by_label[l].get(label.as_str()) {
                        leaves[l][id as usize] += 1;
                    }
                }
            }
            (leaves, h.len() as u64)
        }
        Generaliser::Builtin(_) => {
            let leaves: Vec<Vec<u64>> = (0..levels)
                .map(|l| {
                    let mut n = vec![0u64; cardinality(l)];
                    for &id in &map[l] {
                        n[id as usize] += 1;
                    }
                    n
                })
                .collect();
            (leaves, values.len() as u64)
        }
    };

    // Roll-up maps between levels. The hierarchy is a tree, so any value under a level-a id
    // gives the same level-b id; take the first.
    let up: Vec<Vec<Vec<u32>>> = (0..levels)
        .map(|a| {
            let mut representative = vec![u32::MAX; cardinality(a)];
            for (code, &id) in map[a].iter().enumerate() {
                if representative[id as usize] == u32::MAX {
                    representative[id as usize] = code as u32;
                }
            }
            (a..levels)
                .map(|b| {
                    representative
                        .iter()
                        .map(|&code| map[b][code as usize])
                        .collect()
                })
                .collect()
        })
        .collect();

    let nue = (0..levels)
        .map(|l| {
            let mut bits = 0.0f64;
            for (code, &f) in freq_codes.iter().enumerate() {
                if f > 0 {
                    let g = freq[l][map[l][code] as usize];
                    bits += f as f64 * (g as f64 / f as f64).log2();
                }
            }
            bits
        })
        .collect();

    let share_sum = (0..levels)
        .map(|l| {
            freq_codes
                .iter()
                .enumerate()
                .map(|(code, &f)| u128::from(f) * u128::from(leaves[l][map[l][code] as usize]))
                .sum()
        })
        .collect();

    Ok(QiColumn {
        name,
        table_column,
        height: (levels - 1) as u8,
        map,
        labels,
        distinct,
        freq,
        up,
        leaves,
        domain,
        nue,
        share_sum,
    })
}
