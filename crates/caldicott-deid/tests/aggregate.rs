//! Aggregate output protection: the invariants of `caldicott_deid::aggregate`, checked
//! against an independent brute-force attacker on small tables, and the CSV edge.

use std::path::PathBuf;

use caldicott_deid::aggregate::{
    AggregateRules, Cell, CountTable, Status, extend, protect, round_to,
};
use caldicott_deid::io::{REDACTED, protect_counts_csv};
use proptest::prelude::*;

/// The attacker: knows every published cell exactly (rounding ignored, which only helps
/// them), knows every count is a non-negative integer at most `bound`, and solves for the
/// suppressed cells. Returns, for each suppressed cell of the extended table (except those in
/// `skip`), whether some filling consistent with everything published gives it a value other
/// than its true one. Independent of the engine's cycle reasoning: it only adds up rows and
/// columns of candidate fillings.
///
/// First every filling within ±1 of the truth on each suppressed interior cell is tried (all
/// 3^m of them, cheap for m ≤ 9); a cell no such filling changes is then searched
/// exhaustively: for each other value it could take, a depth-first search over the interior
/// cells looks for a filling consistent with the published cells plus that value.
fn attacker_alternatives(
    ext: &[Vec<u64>],
    status: &[Vec<Status>],
    bound: u64,
    skip: &[(usize, usize)],
) -> Vec<((usize, usize), bool)> {
    let rows = ext.len() - 1;
    let cols = ext[0].len() - 1;
    let suppressed = |i: usize, j: usize| status[i][j].is_suppressed();
    let free: Vec<(usize, usize)> = (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .filter(|&(i, j)| suppressed(i, j))
        .collect();
    let mut changed = vec![vec![false; cols + 1]; rows + 1];
    let m = u32::try_from(free.len()).unwrap();
    'fillings: for code in 0..3u64.pow(m) {
        let mut d = vec![vec![0i64; cols]; rows];
        let mut c = code;
        for &(i, j) in &free {
            d[i][j] = (c % 3) as i64 - 1;
            c /= 3;
            if ext[i][j] as i64 + d[i][j] < 0 {
                continue 'fillings;
            }
        }
        let row_d: Vec<i64> = d.iter().map(|r| r.iter().sum()).collect();
        let col_d: Vec<i64> = (0..cols)
            .map(|j| (0..rows).map(|i| d[i][j]).sum())
            .collect();
        let grand_d: i64 = row_d.iter().sum();
        let consistent = (0..rows).all(|i| suppressed(i, cols) || row_d[i] == 0)
            && (0..cols).all(|j| suppressed(rows, j) || col_d[j] == 0)
            && (suppressed(rows, cols) || grand_d == 0);
        if !consistent {
            continue;
        }
        for &(i, j) in &free {
            changed[i][j] |= d[i][j] != 0;
        }
        for i in 0..rows {
            changed[i][cols] |= row_d[i] != 0;
        }
        for j in 0..cols {
            changed[rows][j] |= col_d[j] != 0;
        }
        changed[rows][cols] |= grand_d != 0;
    }
    let mut out = Vec::new();
    for ti in 0..=rows {
        for tj in 0..=cols {
            if !suppressed(ti, tj) || skip.contains(&(ti, tj)) {
                continue;
            }
            if changed[ti][tj] {
                out.push(((ti, tj), true));
                continue;
            }
            // A total can be at most its number of interior cells times the bound.
            let cells = match (ti == rows, tj == cols) {
                (false, false) => 1,
                (false, true) => cols,
                (true, false) => rows,
                (true, true) => rows * cols,
            } as u64;
            let truth = ext[ti][tj];
            let mut values: Vec<u64> = (0..=bound * cells).filter(|&v| v != truth).collect();
            values.sort_by_key(|&v| v.abs_diff(truth));
            let mut budget = 50_000_000u64;
            let found = values.into_iter().any(|t| {
                let known = |i: usize, j: usize| {
                    if (i, j) == (ti, tj) {
                        Some(t)
                    } else {
                        (!status[i][j].is_suppressed()).then_some(ext[i][j])
                    }
                };
                let mut x = vec![vec![0u64; cols]; rows];
                feasible(0, ext, &known, bound, &mut x, &mut budget)
            });
            assert!(budget > 0, "search budget exhausted at ({ti},{tj})");
            out.push(((ti, tj), found));
        }
    }
    out
}

/// Whether the interior cells from `k` on (row-major) can be filled with values in
/// `0..=bound` so that every known cell of the extended table holds.
fn feasible(
    k: usize,
    ext: &[Vec<u64>],
    known: &dyn Fn(usize, usize) -> Option<u64>,
    bound: u64,
    x: &mut Vec<Vec<u64>>,
    budget: &mut u64,
) -> bool {
    let rows = ext.len() - 1;
    let cols = ext[0].len() - 1;
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    if k == rows * cols {
        let grand: u64 = x.iter().flatten().sum();
        return known(rows, cols).is_none_or(|v| v == grand);
    }
    let (i, j) = (k / cols, k % cols);
    let candidates: Vec<u64> = match known(i, j) {
        Some(v) => vec![v],
        None => {
            let mut c: Vec<u64> = (0..=bound).collect();
            c.sort_by_key(|&v| v.abs_diff(ext[i][j]));
            c
        }
    };
    for v in candidates {
        x[i][j] = v;
        let row_partial: u64 = x[i][..=j].iter().sum();
        if known(i, cols).is_some_and(|t| row_partial > t || (j == cols - 1 && row_partial != t)) {
            continue;
        }
        let col_partial: u64 = (0..=i).map(|r| x[r][j]).sum();
        if known(rows, j).is_some_and(|t| col_partial > t || (i == rows - 1 && col_partial != t)) {
            continue;
        }
        if feasible(k + 1, ext, known, bound, x, budget) {
            return true;
        }
    }
    x[i][j] = 0;
    false
}

fn labels(n: usize, p: &str) -> Vec<String> {
    (0..n).map(|i| format!("{p}{i}")).collect()
}

fn small_table() -> impl Strategy<Value = Vec<Vec<u64>>> {
    (1usize..=3, 1usize..=3).prop_flat_map(|(r, c)| {
        // Mostly small counts, so that primary suppression happens often.
        let count = prop_oneof![3 => 0u64..=9, 1 => 0u64..=30];
        proptest::collection::vec(proptest::collection::vec(count, c), r)
    })
}

fn check_against_attacker(
    counts: &[Vec<u64>],
    rules: &AggregateRules,
) -> Result<(), TestCaseError> {
    let t = CountTable::new(
        labels(counts.len(), "r"),
        labels(counts[0].len(), "c"),
        counts.to_vec(),
    )
    .unwrap();
    let p = protect(&t, rules);
    let ext = extend(counts);
    // Primary suppression is exactly the small counts (and zeros when asked).
    for (i, row) in ext.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let small = (1..=rules.threshold).contains(&v) || (v == 0 && rules.suppress_zeros);
            prop_assert_eq!(
                p.status[i][j] == Status::Primary,
                small,
                "cell ({},{})",
                i,
                j
            );
            match p.cells[i][j] {
                Cell::Published(shown) => {
                    prop_assert_eq!(shown, round_to(v, rules.rounding));
                    prop_assert!(v == 0 || v > rules.threshold);
                }
                Cell::Suppressed => prop_assert!(p.status[i][j].is_suppressed()),
            }
        }
    }
    // Exposed zeros are zeros whose whole row or column is zero.
    for &(i, j) in &p.exposed_zeros {
        let cols = ext[0].len() - 1;
        let rows = ext.len() - 1;
        prop_assert_eq!(ext[i][j], 0);
        prop_assert!(ext[i][cols] == 0 || ext[rows][j] == 0);
    }
    // The attacker finds a second value for every other suppressed cell.
    let bound = ext[..ext.len() - 1]
        .iter()
        .flat_map(|r| r[..r.len() - 1].iter())
        .max()
        .copied()
        .unwrap_or(0)
        + 2;
    for ((i, j), alternative) in attacker_alternatives(&ext, &p.status, bound, &p.exposed_zeros) {
        prop_assert!(
            alternative,
            "suppressed cell ({}, {}) is determined; table {:?}, status {:?}",
            i,
            j,
            ext,
            p.status
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// No suppressed cell can be recovered from the published cells and totals, even by an
    /// attacker who knows the published cells exactly.
    #[test]
    fn no_suppressed_cell_is_determined(counts in small_table()) {
        check_against_attacker(&counts, &AggregateRules::default())?;
    }

    /// The same with zeros suppressed too.
    #[test]
    fn no_suppressed_cell_is_determined_with_zeros_suppressed(counts in small_table()) {
        let rules = AggregateRules { suppress_zeros: true, ..AggregateRules::default() };
        check_against_attacker(&counts, &rules)?;
    }

    /// On larger tables (too large for the attacker): the line rule implied by the cycle
    /// invariant holds: a row or column (totals included) never has exactly one suppressed
    /// cell, and a table of counts above the threshold is published whole.
    #[test]
    fn every_line_has_zero_or_at_least_two_suppressed(
        counts in (1usize..=8, 1usize..=8).prop_flat_map(|(r, c)| {
            proptest::collection::vec(proptest::collection::vec(0u64..=60, c), r)
        })
    ) {
        let t = CountTable::new(labels(counts.len(), "r"), labels(counts[0].len(), "c"), counts.clone()).unwrap();
        let p = protect(&t, &AggregateRules::default());
        let rows = p.status.len();
        let cols = p.status[0].len();
        for i in 0..rows {
            let n = (0..cols).filter(|&j| p.status[i][j].is_suppressed()).count();
            prop_assert!(n != 1, "row {} has one suppressed cell", i);
        }
        for j in 0..cols {
            let n = (0..rows).filter(|&i| p.status[i][j].is_suppressed()).count();
            prop_assert!(n != 1, "column {} has one suppressed cell", j);
        }
        if counts.iter().flatten().all(|&v| v == 0 || v > 7) {
            prop_assert_eq!(p.primary() + p.secondary(), 0);
        }
    }
}

/// The attacker is not toothless: a pattern with a lone suppressed cell in a row, and one
/// with a bridge between two cycles, are both broken.
#[test]
fn the_attacker_breaks_weak_patterns() {
    use Status::{Primary as S, Published as P};
    // 2 x 2 interior; only (0,0) suppressed: its row total gives it away.
    let ext = extend(&[vec![3, 20], vec![30, 40]]);
    let status = vec![vec![S, P, P], vec![P, P, P], vec![P, P, P]];
    let verdict = attacker_alternatives(&ext, &status, 50, &[]);
    assert_eq!(verdict, vec![((0, 0), false)]);

    // Two cycles joined by the bridge (1,2) in a 4 x 4 interior: every line has two or
    // more suppressed cells, yet (1,2) is determined (its column's other suppressed cells
    // (2,2), (3,2) are tied to their rows' cycle, which sums to zero change).
    let counts = vec![
        vec![9, 9, 20, 20],
        vec![9, 9, 9, 20],
        vec![20, 20, 9, 9],
        vec![20, 20, 9, 9],
    ];
    let ext = extend(&counts);
    let sup = [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 3),
        (3, 2),
        (3, 3),
    ];
    let status: Vec<Vec<Status>> = (0..5)
        .map(|i| {
            (0..5)
                .map(|j| if sup.contains(&(i, j)) { S } else { P })
                .collect()
        })
        .collect();
    let verdict = attacker_alternatives(&ext, &status, 11, &[]);
    let determined: Vec<(usize, usize)> = verdict
        .iter()
        .filter(|(_, alt)| !alt)
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(determined, vec![(1, 2)]);
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn csv_round_trip() {
    let dir = tempdir();
    let input = dir.path().join("counts.csv");
    std::fs::write(
        &input,
        "region,flu,covid,rsv\nNorth,3,20,40\nSouth,30,25,50\nEast,12,60,90\n",
    )
    .unwrap();
    let out: PathBuf = dir.path().join("out.csv");
    let p = protect_counts_csv(&input, &out, &AggregateRules::default()).unwrap();
    assert_eq!((p.primary(), p.secondary()), (1, 3));
    let text = std::fs::read_to_string(&out).unwrap();
    let r = REDACTED;
    assert_eq!(
        text,
        format!(
            "region,flu,covid,rsv,Total\n\
             North,{r},{r},40,65\n\
             South,{r},{r},50,105\n\
             East,10,60,90,160\n\
             Total,45,105,180,330\n"
        )
    );
}

#[test]
fn csv_errors_name_the_cell_and_write_nothing() {
    let dir = tempdir();
    let input = dir.path().join("counts.csv");
    let out = dir.path().join("out.csv");
    std::fs::write(&input, "region,a,b\nNorth,3,x\n").unwrap();
    let e = protect_counts_csv(&input, &out, &AggregateRules::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("data row 1, column `b`"), "{e}");
    assert!(!out.exists());
    std::fs::write(&input, "region\nNorth\n").unwrap();
    let e = protect_counts_csv(&input, &out, &AggregateRules::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one column of counts"), "{e}");
    std::fs::write(&input, "region,a\nNorth,-1\n").unwrap();
    assert!(protect_counts_csv(&input, &out, &AggregateRules::default()).is_err());
    assert!(!out.exists());
}
