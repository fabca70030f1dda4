//! Protection of aggregate outputs (tables of counts) before they leave: small-number
//! suppression, secondary (complementary) suppression so that no suppressed cell can be
//! recovered from the totals, and rounding, as OpenSAFELY's output rules ask; plus rates
//! computed from the protected counts. Pure: no I/O (the CSV edge is
//! [`crate::io::protect_counts_csv`]).
//!
//! # The table
//!
//! An `r × c` table of counts is extended with its totals to an `(r+1) × (c+1)` table: row
//! totals in the last column, column totals in the last row, the grand total in the corner.
//! Every cell of the extended table, totals included, is protected by the same rules.
//!
//! # Rules (see `docs/transforms.md` for the citation and the reasoning)
//!
//! 1. **Primary suppression**: a count `1..=threshold` (default 7: OpenSAFELY redacts counts
//!    of 7 or fewer) is suppressed. 0 is published unless `suppress_zeros`.
//! 2. **Secondary suppression**, the invariant: *every suppressed cell lies on a cycle of
//!    suppressed cells whose other cells are all non-zero*. A cycle alternates between moving
//!    along a row and along a column of the extended table (a row or a column: `cells` and
//!    their total). Adding `+1, -1, +1, ...` around such a cycle (with the sign flipped on
//!    totals) keeps every row and column sum, and every cell non-negative, so an attacker who
//!    knows every published cell exactly still has at least two fillings, with different
//!    values for that cell. Conversely, a suppressed cell on no cycle of suppressed cells is a
//!    bridge of that graph and is determined by linear equations. The rule "every row or
//!    column with a suppressed cell has at least two" is implied (a cycle enters and leaves
//!    each line it touches) but is weaker: two cycles joined by one cell satisfy it yet
//!    reveal that cell.
//! 3. **Rounding**: every published count (cells and totals alike, each from its own true
//!    value) is rounded to the nearest multiple of `rounding` (default 5; with an odd base
//!    there are no ties; with an even base ties go up). Published cells therefore need not add
//!    up to the published totals.
//!
//! Secondary suppression is greedy: while some suppressed cell is not on such a cycle, the
//! cheapest path (by the sum of the counts newly suppressed, already suppressed cells free)
//! between its row and its column through non-zero cells is found with Dijkstra's algorithm
//! and suppressed. A non-zero cell always has such a path (through its row total, the grand
//! total and its column total), so every non-zero suppressed cell ends up protected. A
//! suppressed zero (only with `suppress_zeros`) whose row or column is entirely zero cannot
//! be protected; it is listed in [`Protected::exposed_zeros`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::error::DeidError;

/// The output-checking rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateRules {
    /// Counts from 1 to this are suppressed (OpenSAFELY: 7).
    pub threshold: u64,
    /// Published counts are rounded to the nearest multiple of this (OpenSAFELY: 5); 0 or 1
    /// means no rounding.
    pub rounding: u64,
    /// Whether zeros are suppressed too (by default they are published).
    pub suppress_zeros: bool,
}

impl Default for AggregateRules {
    fn default() -> Self {
        Self {
            threshold: 7,
            rounding: 5,
            suppress_zeros: false,
        }
    }
}

/// A published cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cell {
    /// The count, rounded.
    Published(u64),
    /// Not published.
    Suppressed,
}

impl Cell {
    /// The published value, if any.
    pub fn value(self) -> Option<u64> {
        match self {
            Cell::Published(v) => Some(v),
            Cell::Suppressed => None,
        }
    }
}

/// Why a cell is (not) published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Published (rounded).
    Published,
    /// A small count (or a zero, when zeros are suppressed).
    Primary,
    /// Suppressed so that a primary cell cannot be recovered from the totals.
    Secondary,
}

impl Status {
    /// Whether the cell is suppressed.
    pub fn is_suppressed(self) -> bool {
        self != Status::Published
    }
}

/// A table of counts with its labels (without totals: they are computed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountTable {
    /// One label per row.
    pub row_labels: Vec<String>,
    /// One label per column.
    pub column_labels: Vec<String>,
    /// `counts[row][column]`.
    pub counts: Vec<Vec<u64>>,
}

impl CountTable {
    /// A table, checked: one label per row and column, every row as wide as the labels, and
    /// the grand total fits in 64 bits.
    pub fn new(
        row_labels: Vec<String>,
        column_labels: Vec<String>,
        counts: Vec<Vec<u64>>,
    ) -> Result<Self, DeidError> {
        let bad = |m: String| Err(DeidError::Aggregate(m));
        if counts.len() != row_labels.len() {
            return bad(format!(
                "{} row labels for {} rows of counts",
                row_labels.len(),
                counts.len()
            ));
        }
        if column_labels.is_empty() || row_labels.is_empty() {
            return bad("the table needs at least one row and one column of counts".into());
        }
        for (i, row) in counts.iter().enumerate() {
            if row.len() != column_labels.len() {
                return bad(format!(
                    "row {} (`{}`) has {} counts but there are {} column labels",
                    i + 1,
                    row_labels[i],
                    row.len(),
                    column_labels.len()
                ));
            }
        }
        let mut grand = 0u64;
        for row in &counts {
            for &v in row {
                grand = grand.checked_add(v).ok_or_else(|| {
                    DeidError::Aggregate("the grand total does not fit in 64 bits".into())
                })?;
            }
        }
        Ok(Self {
            row_labels,
            column_labels,
            counts,
        })
    }

    /// The extended table: counts with row totals (last column), column totals (last row)
    /// and the grand total (corner).
    pub fn extended(&self) -> Vec<Vec<u64>> {
        extend(&self.counts)
    }
}

/// Extends counts with their totals (see [`CountTable::extended`]). Totals saturate (a
/// [`CountTable`] has checked they fit).
pub fn extend(counts: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let cols = counts.first().map_or(0, Vec::len);
    let mut ext: Vec<Vec<u64>> = counts
        .iter()
        .map(|row| {
            let mut r = row.clone();
            r.push(row.iter().fold(0u64, |a, &v| a.saturating_add(v)));
            r
        })
        .collect();
    let totals: Vec<u64> = (0..=cols)
        .map(|j| ext.iter().fold(0u64, |a, r| a.saturating_add(r[j])))
        .collect();
    ext.push(totals);
    ext
}

/// A protected table: what may be published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protected {
    /// Row labels (the totals row is not labelled here).
    pub row_labels: Vec<String>,
    /// Column labels (the totals column is not labelled here).
    pub column_labels: Vec<String>,
    /// The extended table as published: `(rows + 1) × (columns + 1)`, totals last.
    pub cells: Vec<Vec<Cell>>,
    /// Why each cell is (not) published, same shape.
    pub status: Vec<Vec<Status>>,
    /// Suppressed zeros that no secondary suppression can protect (only with
    /// `suppress_zeros`): their whole row or column is zero, so the totals reveal them.
    pub exposed_zeros: Vec<(usize, usize)>,
    /// The rules applied.
    pub rules: AggregateRules,
}

impl Protected {
    /// Number of cells suppressed for being small.
    pub fn primary(&self) -> usize {
        self.count(Status::Primary)
    }

    /// Number of cells suppressed to protect others.
    pub fn secondary(&self) -> usize {
        self.count(Status::Secondary)
    }

    fn count(&self, s: Status) -> usize {
        self.status.iter().flatten().filter(|&&x| x == s).count()
    }

    /// Rates `numerator / denominator` cell by cell (totals included), from the protected
    /// counts of two tables of the same shape: `None` where either count is suppressed or the
    /// denominator is 0 (a rate from a redacted count is redacted too).
    pub fn rates(&self, denominators: &Protected) -> Result<Vec<Vec<Option<f64>>>, DeidError> {
        if self.cells.len() != denominators.cells.len()
            || self.cells.first().map(Vec::len) != denominators.cells.first().map(Vec::len)
        {
            return Err(DeidError::Aggregate(
                "numerator and denominator tables differ in shape".into(),
            ));
        }
        Ok(self
            .cells
            .iter()
            .zip(&denominators.cells)
            .map(|(n, d)| n.iter().zip(d).map(|(&n, &d)| rate(n, d)).collect())
            .collect())
    }

    /// Each cell as a rate of its row total (the row total's own rate is 1 when published).
    pub fn row_rates(&self) -> Vec<Vec<Option<f64>>> {
        self.cells
            .iter()
            .map(|row| {
                let total = row.last().copied().unwrap_or(Cell::Suppressed);
                row.iter().map(|&c| rate(c, total)).collect()
            })
            .collect()
    }
}

/// A rate from protected counts: `None` when either is suppressed or the denominator is 0.
pub fn rate(numerator: Cell, denominator: Cell) -> Option<f64> {
    match (numerator, denominator) {
        (Cell::Published(n), Cell::Published(d)) if d > 0 => Some(n as f64 / d as f64),
        _ => None,
    }
}

/// Rounds to the nearest multiple of `base` (ties up; none occur for an odd base); `base`
/// 0 or 1 leaves the value unchanged.
pub fn round_to(value: u64, base: u64) -> u64 {
    if base <= 1 {
        return value;
    }
    let down = value - value % base;
    if value % base >= base.div_ceil(2) {
        down.saturating_add(base)
    } else {
        down
    }
}

/// Protects a table under the rules.
pub fn protect(table: &CountTable, rules: &AggregateRules) -> Protected {
    let ext = table.extended();
    let (status, exposed_zeros) = suppression_pattern(&ext, rules);
    let cells = ext
        .iter()
        .zip(&status)
        .map(|(row, st)| {
            row.iter()
                .zip(st)
                .map(|(&v, s)| {
                    if s.is_suppressed() {
                        Cell::Suppressed
                    } else {
                        Cell::Published(round_to(v, rules.rounding))
                    }
                })
                .collect()
        })
        .collect();
    Protected {
        row_labels: table.row_labels.clone(),
        column_labels: table.column_labels.clone(),
        cells,
        status,
        exposed_zeros,
        rules: *rules,
    }
}

/// The suppression pattern of an extended table (see the module documentation): primary
/// suppression, then secondary until every suppressed cell is on a cycle of suppressed cells
/// that are non-zero apart from itself. Returns the pattern and the suppressed zeros that
/// cannot be protected.
pub fn suppression_pattern(
    ext: &[Vec<u64>],
    rules: &AggregateRules,
) -> (Vec<Vec<Status>>, Vec<(usize, usize)>) {
    let mut status: Vec<Vec<Status>> = ext
        .iter()
        .map(|row| {
            row.iter()
                .map(|&v| {
                    let small = v >= 1 && v <= rules.threshold;
                    if small || (v == 0 && rules.suppress_zeros) {
                        Status::Primary
                    } else {
                        Status::Published
                    }
                })
                .collect()
        })
        .collect();
    let rows = ext.len();
    let cols = ext.first().map_or(0, Vec::len);
    let mut exposed = Vec::new();
    // One pass in a fixed order suffices: protecting a cell never unprotects another (it only
    // adds suppressed cells, i.e. edges, to the graph).
    for i in 0..rows {
        for j in 0..cols {
            if !status[i][j].is_suppressed() || is_protected(ext, &status, i, j) {
                continue;
            }
            match cheapest_path(ext, &status, i, j) {
                Some(path) => {
                    for (a, b) in path {
                        if !status[a][b].is_suppressed() {
                            status[a][b] = Status::Secondary;
                        }
                    }
                }
                None => exposed.push((i, j)),
            }
        }
    }
    (status, exposed)
}

/// Nodes of the bipartite graph: rows `0..rows`, then columns `rows..rows + cols`. A cell
/// `(i, j)` is the edge between row `i` and column `j`.
///
/// Whether suppressed cell `(i, j)` lies on a cycle of suppressed cells that are non-zero
/// apart from itself: whether row `i` and column `j` are connected by suppressed non-zero
/// cells other than `(i, j)`.
pub fn is_protected(ext: &[Vec<u64>], status: &[Vec<Status>], i: usize, j: usize) -> bool {
    let rows = ext.len();
    let cols = ext.first().map_or(0, Vec::len);
    let mut seen = vec![false; rows + cols];
    let mut stack = vec![i];
    seen[i] = true;
    while let Some(node) = stack.pop() {
        if node == rows + j {
            return true;
        }
        let neighbours: Vec<usize> = if node < rows {
            (0..cols)
                .filter(|&c| {
                    (node, c) != (i, j) && status[node][c].is_suppressed() && ext[node][c] > 0
                })
                .map(|c| rows + c)
                .collect()
        } else {
            let c = node - rows;
            (0..rows)
                .filter(|&r| (r, c) != (i, j) && status[r][c].is_suppressed() && ext[r][c] > 0)
                .collect()
        };
        for n in neighbours {
            if !seen[n] {
                seen[n] = true;
                stack.push(n);
            }
        }
    }
    false
}

/// The cheapest path of non-zero cells from row `i` to column `j` avoiding cell `(i, j)`,
/// where a suppressed cell costs 0 and a published one its count (plus one, so that among
/// equal sums fewer cells are suppressed). Returns its cells.
fn cheapest_path(
    ext: &[Vec<u64>],
    status: &[Vec<Status>],
    i: usize,
    j: usize,
) -> Option<Vec<(usize, usize)>> {
    let rows = ext.len();
    let cols = ext.first().map_or(0, Vec::len);
    let n = rows + cols;
    let mut dist = vec![u128::MAX; n];
    let mut prev: Vec<Option<usize>> = vec![None; n];
    let mut heap = BinaryHeap::new();
    dist[i] = 0;
    heap.push(Reverse((0u128, i)));
    let target = rows + j;
    let cell = |a: usize, b: usize| {
        // a and b are nodes of different sides.
        if a < rows {
            (a, b - rows)
        } else {
            (b, a - rows)
        }
    };
    while let Some(Reverse((d, node))) = heap.pop() {
        if d > dist[node] {
            continue;
        }
        if node == target {
            break;
        }
        let others: Box<dyn Iterator<Item = usize>> = if node < rows {
            Box::new(rows..n)
        } else {
            Box::new(0..rows)
        };
        for other in others {
            let (r, c) = cell(node, other);
            if (r, c) == (i, j) || ext[r][c] == 0 {
                continue;
            }
            let w = if status[r][c].is_suppressed() {
                0
            } else {
                u128::from(ext[r][c]) + 1
            };
            let nd = d + w;
            if nd < dist[other] {
                dist[other] = nd;
                prev[other] = Some(node);
                heap.push(Reverse((nd, other)));
            }
        }
    }
    if dist[target] == u128::MAX {
        return None;
    }
    let mut path = Vec::new();
    let mut node = target;
    while let Some(p) = prev[node] {
        path.push(cell(p, node));
        node = p;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(counts: Vec<Vec<u64>>) -> CountTable {
        let rows = counts.len();
        let cols = counts[0].len();
        CountTable::new(
            (0..rows).map(|i| format!("r{i}")).collect(),
            (0..cols).map(|j| format!("c{j}")).collect(),
            counts,
        )
        .unwrap()
    }

    #[test]
    fn rounding_to_five() {
        let r: Vec<u64> = [0, 1, 2, 3, 7, 8, 10, 12, 13, 17, 18, 102, 103]
            .iter()
            .map(|&v| round_to(v, 5))
            .collect();
        assert_eq!(r, [0, 0, 0, 5, 5, 10, 10, 10, 15, 15, 20, 100, 105]);
        assert_eq!(round_to(15, 10), 20);
        assert_eq!(round_to(14, 10), 10);
        assert_eq!(round_to(13, 1), 13);
    }

    /// Hand-checked: a single small cell needs a partner in its row and its column, and
    /// the cheapest are the smallest counts.
    #[test]
    fn hand_checked_secondary_suppression() {
        //        c0  c1  c2 | tot
        //   r0    3  20  40 |  63
        //   r1   30  25  50 | 105
        //   r2   12  60  90 | 162
        //  tot   45 105 180 | 330
        let t = table(vec![vec![3, 20, 40], vec![30, 25, 50], vec![12, 60, 90]]);
        let p = protect(&t, &AggregateRules::default());
        use Status::*;
        assert_eq!(
            p.status,
            vec![
                vec![Primary, Secondary, Published, Published],
                vec![Secondary, Secondary, Published, Published],
                vec![Published, Published, Published, Published],
                vec![Published, Published, Published, Published],
            ]
        );
        assert_eq!(p.cells[0][3], Cell::Published(65));
        assert_eq!(p.cells[3][3], Cell::Published(330));
        assert_eq!(p.cells[2][2], Cell::Published(90));
        assert_eq!((p.primary(), p.secondary()), (1, 3));
    }

    #[test]
    fn small_totals_are_suppressed_and_protected() {
        // Everything is small: all nine cells of the extended 2x2 go.
        let t = table(vec![vec![2]]);
        let p = protect(&t, &AggregateRules::default());
        assert!(p.cells.iter().flatten().all(|c| *c == Cell::Suppressed));
        // A small row total.
        let t = table(vec![vec![2, 3], vec![40, 50]]);
        let p = protect(&t, &AggregateRules::default());
        assert!(p.status[0][2].is_suppressed());
        for i in 0..3 {
            for j in 0..3 {
                if p.status[i][j].is_suppressed() {
                    assert!(is_protected(&t.extended(), &p.status, i, j), "({i},{j})");
                }
            }
        }
    }

    #[test]
    fn bridge_is_detected() {
        // Two 4-cycles ({0,1}x{0,1} and {2,3}x{2,3}) joined by cell (1,2), a bridge: every
        // line has at least two suppressed cells, yet (1,2) is determined.
        let ext = vec![vec![9u64; 4]; 4];
        let s = |x: bool| {
            if x {
                Status::Primary
            } else {
                Status::Published
            }
        };
        let pattern = [
            [true, true, false, false],
            [true, true, true, false],
            [false, false, true, true],
            [false, false, true, true],
        ];
        let status: Vec<Vec<Status>> = pattern
            .iter()
            .map(|r| r.iter().map(|&x| s(x)).collect())
            .collect();
        assert!(is_protected(&ext, &status, 0, 0));
        assert!(is_protected(&ext, &status, 1, 1));
        assert!(
            !is_protected(&ext, &status, 1, 2),
            "a bridge between two cycles"
        );
        assert!(is_protected(&ext, &status, 3, 3));
    }

    #[test]
    fn rates_are_redacted_with_their_counts() {
        let num = protect(
            &table(vec![vec![3, 20], vec![30, 40]]),
            &AggregateRules::default(),
        );
        let den = protect(
            &table(vec![vec![100, 200], vec![300, 400]]),
            &AggregateRules::default(),
        );
        let r = num.rates(&den).unwrap();
        assert_eq!(r[0][0], None);
        // The 3 forces the other three interior cells out (a 2 x 2 table's only cheap
        // cycle); the grand totals 93 -> 95 and 1000 are published.
        assert_eq!(r[1][1], None);
        assert_eq!(r[2][2], Some(95.0 / 1000.0));
        assert_eq!(rate(Cell::Published(5), Cell::Published(0)), None);
        let rr = num.row_rates();
        assert_eq!(rr[0][0], None);
        let other = protect(&table(vec![vec![1]]), &AggregateRules::default());
        assert!(num.rates(&other).is_err());
    }

    #[test]
    fn table_shape_is_checked() {
        let e = CountTable::new(
            vec!["a".into()],
            vec!["x".into(), "y".into()],
            vec![vec![1]],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("row 1 (`a`) has 1 counts but there are 2"),
            "{e}"
        );
        let e = CountTable::new(
            vec!["a".into(), "b".into()],
            vec!["x".into()],
            vec![vec![u64::MAX], vec![1]],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("64 bits"), "{e}");
    }
}
