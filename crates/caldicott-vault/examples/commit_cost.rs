//! The cost of one small audit-ledger commit on SQLite, the kind the audit committer makes
//! for a handful of reads: `cargo run --release -p caldicott-vault --example commit_cost -- 8`
//! (the number of leaves per commit; default 8).
//!
//! It fills a log to 200,000 realistic leaves (2,000 patients, 7 users), then times 3,000
//! commits of that many leaves through `Backend::write` on this thread, and prints the CPU
//! time per commit (this thread's, from `/proc/thread-self/schedstat`, so other load on
//! the machine counts less than in a wall-clock figure) and the wall time. Run it under
//! `strace -f -e trace=pwrite64,fsync` to count the WAL pages each commit writes.
//! Linux only.

use std::sync::Arc;

use caldicott_vault::{Backend, Ledger, LedgerLeaf, LocalKek, SqliteBackend, Vault};

#[path = "../benches/common/mod.rs"]
mod common;

/// A leaf like the FHIR benchmark's: 2,000 patients read by 7 users.
fn event(i: u64) -> LedgerLeaf {
    common::event(i, 2_000, 7, "Patient")
}

fn main() {
    let batch: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("leaves per commit"))
        .unwrap_or(8);
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = SqliteBackend::open(&tmp.path().join("ledger.db"), true).expect("open");
    b.migrate().expect("migrate");
    let kek = Arc::new(LocalKek::generate().expect("key").0);
    let vault = Arc::new(Vault::open(Box::new(b), kek).expect("vault"));
    let ledger = Ledger::open(vault, "bench.caldicott.invalid/audit").expect("ledger");
    let mut next = 0u64;
    for _ in 0..20 {
        ledger
            .append((next..next + 10_000).map(event).collect())
            .expect("fill");
        next += 10_000;
    }
    let commits = 3_000u64;
    let leaves: Vec<Vec<LedgerLeaf>> = (0..commits)
        .map(|c| (0..batch).map(|j| event(next + c * batch + j)).collect())
        .collect();
    let t = std::time::Instant::now();
    let c0 = common::thread_cpu_ns();
    for l in &leaves {
        ledger.vault().backend().write(&[], l).expect("commit");
    }
    let cpu = (common::thread_cpu_ns() - c0) as f64 / 1e3;
    let wall = t.elapsed().as_secs_f64() * 1e6;
    let n = commits as f64;
    println!(
        "{batch} leaves per commit: {:.1} µs CPU per commit ({:.2} per leaf), {:.1} µs wall per commit",
        cpu / n,
        cpu / (n * batch as f64),
        wall / n
    );
}
