//! `cargo bench -p caldicott-ledger --bench ledger`: the Merkle core on a 10,000,000-entry
//! log, one thread, printed as a table.
//!
//! - full recomputation of the root from leaf data (hash every leaf, fold with a frontier);
//! - appending precomputed leaf hashes to a [`Frontier`] and to a [`MemoryTree`] (which also
//!   stores every complete-subtree hash, as the vault will);
//! - inclusion and consistency proofs generated from the [`MemoryTree`] (O(log n) node
//!   reads each) and verified against the roots.
//!
//! Options (after `--`): `--quick` (1,000,000 entries, fewer proofs), `--entries N`,
//! `--proofs N`.

use std::hint::black_box;
use std::time::Instant;

use caldicott_ledger::{
    Frontier, Hash, MemoryTree, ProofPlan, consistency_proof, inclusion_proof, leaf_hash,
    verify_consistency, verify_inclusion,
};

/// SplitMix64: reproducible indices without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A leaf the size of a plausible audit event (~200 bytes), distinct per index.
fn leaf_data(i: u64, buf: &mut Vec<u8>) {
    use std::io::Write as _;
    buf.clear();
    write!(
        buf,
        "{{\"seq\":{i},\"time\":\"2025-01-01T00:00:00.{:06}Z\",\"actor\":\"user-{}\",\
         \"action\":\"read\",\"resource\":\"Patient/{:016x}\",\"purpose\":\"direct-care\",\
         \"org\":\"A81001\",\"outcome\":\"permit\"}}",
        i % 1_000_000,
        i % 977,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
    .unwrap();
}

struct Row {
    what: String,
    count: u64,
    secs: f64,
    target: String,
}

fn row(what: &str, count: u64, secs: f64, target: &str) -> Row {
    Row {
        what: what.to_owned(),
        count,
        secs,
        target: target.to_owned(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("a number"))
    };
    let entries = value("--entries").unwrap_or(if quick { 1_000_000 } else { 10_000_000 });
    let proofs = value("--proofs").unwrap_or(if quick { 20_000 } else { 200_000 });
    let mut rows = Vec::new();

    // 1. Root from leaf data.
    let t = Instant::now();
    let mut f = Frontier::new();
    let mut buf = Vec::with_capacity(256);
    let mut data_bytes = 0u64;
    for i in 0..entries {
        leaf_data(i, &mut buf);
        data_bytes += buf.len() as u64;
        f.append(leaf_hash(&buf)).unwrap();
    }
    let root_from_data = f.root();
    rows.push(row(
        &format!(
            "root from leaf data ({} B/leaf avg): hash + frontier",
            data_bytes / entries.max(1)
        ),
        entries,
        t.elapsed().as_secs_f64(),
        "< 60 s for 10M",
    ));

    // Leaf hashes for the append benchmarks.
    let hashes: Vec<Hash> = (0..entries).map(|i| leaf_hash(&i.to_be_bytes())).collect();

    // 2. Frontier append.
    let t = Instant::now();
    let mut f = Frontier::new();
    for h in &hashes {
        f.append(*h).unwrap();
    }
    let frontier_root = black_box(f.root());
    rows.push(row(
        "append leaf hash: Frontier (root only)",
        entries,
        t.elapsed().as_secs_f64(),
        ">= 100,000/s",
    ));

    // 3. MemoryTree append: stores every complete node (~2 hashes per leaf).
    let t = Instant::now();
    let mut tree = MemoryTree::with_capacity(usize::try_from(entries).unwrap());
    for h in &hashes {
        tree.append(*h).unwrap();
    }
    rows.push(row(
        "append leaf hash: MemoryTree (all complete nodes)",
        entries,
        t.elapsed().as_secs_f64(),
        ">= 100,000/s",
    ));
    assert_eq!(tree.root(), frontier_root);
    drop(hashes);
    let root = tree.root();

    // 4. Inclusion proofs against the latest root.
    let mut rng = Rng(1);
    let queries: Vec<u64> = (0..proofs).map(|_| rng.below(entries)).collect();
    let reads: usize = queries
        .iter()
        .map(|&i| ProofPlan::inclusion(i, entries).unwrap().nodes().len())
        .sum();
    let t = Instant::now();
    for &i in &queries {
        let p = inclusion_proof(&tree, i, entries).unwrap();
        let leaf = tree.leaf_hashes()[usize::try_from(i).unwrap()];
        verify_inclusion(&leaf, i, entries, &p, &root).unwrap();
    }
    rows.push(row(
        &format!(
            "inclusion proof, generate + verify ({:.1} node reads avg)",
            reads as f64 / proofs as f64
        ),
        proofs,
        t.elapsed().as_secs_f64(),
        ">= 50,000/s",
    ));
    let t = Instant::now();
    for &i in &queries {
        black_box(inclusion_proof(&tree, i, entries).unwrap());
    }
    rows.push(row(
        "inclusion proof, generate only",
        proofs,
        t.elapsed().as_secs_f64(),
        "",
    ));

    // 5. Consistency proofs from a random earlier size to the latest.
    let olds: Vec<u64> = (0..proofs).map(|_| 1 + rng.below(entries)).collect();
    let old_roots: Vec<Hash> = olds.iter().map(|&m| tree.root_at(m).unwrap()).collect();
    let reads: usize = olds
        .iter()
        .map(|&m| ProofPlan::consistency(m, entries).unwrap().nodes().len())
        .sum();
    let t = Instant::now();
    for (&m, old) in olds.iter().zip(&old_roots) {
        let p = consistency_proof(&tree, m, entries).unwrap();
        verify_consistency(m, entries, old, &root, &p).unwrap();
    }
    rows.push(row(
        &format!(
            "consistency proof, generate + verify ({:.1} node reads avg)",
            reads as f64 / proofs as f64
        ),
        proofs,
        t.elapsed().as_secs_f64(),
        ">= 50,000/s",
    ));

    // 6. Roots of earlier sizes from stored nodes (what a checkpoint at any size costs).
    let t = Instant::now();
    for &m in &olds {
        black_box(tree.root_at(m).unwrap());
    }
    rows.push(row(
        "root at an earlier size (<= 64 node reads)",
        proofs,
        t.elapsed().as_secs_f64(),
        "",
    ));

    println!();
    println!(
        "caldicott-ledger, {entries} entries, root {}",
        root_from_data.to_hex()
    );
    println!(
        "{:<62} {:>12} {:>10} {:>14}  target",
        "operation", "count", "seconds", "per second"
    );
    for r in &rows {
        println!(
            "{:<62} {:>12} {:>10.3} {:>14.0}  {}",
            r.what,
            r.count,
            r.secs,
            r.count as f64 / r.secs,
            r.target
        );
    }
}
