//! `cargo xtask bench ledger-store`: the audit ledger as stored in the vault, on SQLite
//! (and appends on PostgreSQL when `cargo xtask` started one), printed as a table.
//!
//! 1. Appends of realistic audit events (~420-byte canonical leaves, two lookup keys
//!    each) in batches of 1,000 and 10,000 leaves, and one-event appends from 16 threads
//!    through the group commit.
//! 2. The log filled to `--entries` (default 10,000,000) leaves.
//! 3. Inclusion and consistency proofs for random indices and sizes of the full log,
//!    from the database (cold, then with the upper-level node cache warm), 1 and 2
//!    threads; a sample of them verified.
//! 4. A full `verify` of the log: every leaf decoded as a canonical audit event and
//!    hashed, every stored node and every checkpoint checked.
//!
//! Options (after `--`): `--quick` (1,000,000 entries), `--entries N`, `--proofs N`,
//! `--dir PATH` (where the SQLite file goes; default the system's temporary directory;
//! 10 million entries take about 7 GB).

use std::sync::Arc;
use std::time::Instant;

use caldicott_audit::AuditEvent;
use caldicott_ledger::{verify_consistency, verify_inclusion};
use caldicott_vault::{Backend, Ledger, LedgerLeaf, LocalKek, SqliteBackend, Vault};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

mod common;

/// A leaf of the stream these benchmarks append: 50,000 patients, 977 users.
fn event(i: u64) -> LedgerLeaf {
    common::event(i, 50_000, 977, "Observation")
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn open_sqlite(path: &std::path::Path) -> Arc<Ledger> {
    let b = SqliteBackend::open(path, true).expect("open SQLite");
    b.migrate().expect("migrate");
    let kek = Arc::new(LocalKek::generate().expect("key").0);
    let vault = Arc::new(Vault::open(Box::new(b), kek).expect("vault"));
    Ledger::open(vault, "bench.caldicott.invalid/audit").expect("ledger")
}

fn rate(n: u64, secs: f64) -> String {
    format!("{:>12.0}/s", n as f64 / secs)
}

fn append_rates(name: &str, ledger: &Arc<Ledger>, start: u64) -> u64 {
    let mut next = start;
    for batch in [1_000u64, 10_000] {
        let total = 200_000u64;
        let leaves: Vec<Vec<LedgerLeaf>> = (0..total / batch)
            .map(|b| (0..batch).map(|j| event(next + b * batch + j)).collect())
            .collect();
        let t = Instant::now();
        for chunk in leaves {
            ledger.append(chunk).expect("append");
        }
        let s = t.elapsed().as_secs_f64();
        next += total;
        println!(
            "| {name} | appends, batches of {batch:>6} | {total} | {} |",
            rate(total, s)
        );
    }
    // One event per call from 16 threads: the group commit batches them.
    let threads = 16u64;
    let per = 2_000u64;
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let l = Arc::clone(ledger);
            std::thread::spawn(move || {
                for j in 0..per {
                    l.append(vec![event(next + k * per + j)]).expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "| {name} | one-event appends, {threads} threads (group commit) | {} | {} |",
        threads * per,
        rate(threads * per, s)
    );
    next + threads * per
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let entries: u64 = arg("--entries")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1_000_000 } else { 10_000_000 });
    let proofs: u64 = arg("--proofs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = match arg("--dir") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let ledger = open_sqlite(&tmp.path().join("ledger.db"));

    println!("| backend | operation | entries | rate |");
    println!("|---|---|---:|---:|");
    let mut size = append_rates("SQLite", &ledger, 0);
    if let Some(url) = std::env::var("CALDICOTT_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let b = caldicott_vault::PostgresBackend::connect(&url).expect("PostgreSQL");
        let schema = format!("bench_ledger_{}", std::process::id());
        {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            c.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("schema");
        }
        drop(b);
        let sep = if url.contains('?') { '&' } else { '?' };
        let surl = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let b = caldicott_vault::PostgresBackend::connect(&surl).expect("PostgreSQL");
        b.migrate().expect("migrate");
        let kek = Arc::new(LocalKek::generate().expect("key").0);
        let vault = Arc::new(Vault::open(Box::new(b), kek).expect("vault"));
        let pg = Ledger::open(vault, "bench.caldicott.invalid/audit").expect("ledger");
        append_rates("PostgreSQL", &pg, 0);
        drop(pg);
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    }

    // Fill to the target size.
    let t = Instant::now();
    let before = size;
    let mut next_report = (size / 1_000_000 + 1) * 1_000_000;
    let mut next_checkpoint = (size / 2_500_000 + 1) * 2_500_000;
    while size < entries {
        // Batches of 20,000, cut at the checkpoint sizes.
        let n = (entries - size).min(20_000).min(next_checkpoint - size);
        ledger
            .append((size..size + n).map(event).collect())
            .expect("append");
        size += n;
        if size >= next_report {
            eprintln!("filled {size} in {:.0} s", t.elapsed().as_secs_f64());
            next_report += 1_000_000;
        }
        if size == next_checkpoint || size == entries {
            ledger.publish().expect("checkpoint");
            next_checkpoint += 2_500_000;
        }
    }
    let fill = t.elapsed().as_secs_f64();
    if size > before {
        println!(
            "| SQLite | fill to {size} (batches of 20,000, checkpoints every 2.5M) | {} | {} |",
            size - before,
            rate(size - before, fill)
        );
    }
    let (cp_size, _) = ledger.publish().expect("checkpoint").expect("a checkpoint");
    assert_eq!(cp_size, size);
    let root = ledger.root(1, size).expect("root");

    // Proofs.
    for (label, warm) in [("cold cache", false), ("warm cache", true)] {
        let l = if warm {
            Arc::clone(&ledger)
        } else {
            fresh_cache(&ledger)
        };
        for threads in [1u64, 2] {
            let per = proofs / threads;
            let t = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let l = Arc::clone(&l);
                    std::thread::spawn(move || {
                        let mut rng = Rng(k + 1);
                        for _ in 0..per {
                            let i = rng.next() % size;
                            std::hint::black_box(l.inclusion(1, i, size).expect("proof"));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "| SQLite | inclusion proofs, {size}-entry log, {threads} thread(s), {label} | {} | {} |",
                per * threads,
                rate(per * threads, s)
            );
            let t = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let l = Arc::clone(&l);
                    std::thread::spawn(move || {
                        let mut rng = Rng(k + 100);
                        for _ in 0..per {
                            let from = 1 + rng.next() % size;
                            std::hint::black_box(l.consistency(1, from, size).expect("proof"));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "| SQLite | consistency proofs to {size}, {threads} thread(s), {label} | {} | {} |",
                per * threads,
                rate(per * threads, s)
            );
        }
    }
    // A sample of proofs checked against the root.
    let mut rng = Rng(7);
    for _ in 0..1000 {
        let i = rng.next() % size;
        let leaf = ledger.leaves(1, i, i + 1).expect("leaf");
        let p = ledger.inclusion(1, i, size).expect("proof");
        verify_inclusion(
            &caldicott_ledger::leaf_hash(&leaf[0].data),
            i,
            size,
            &p,
            &root,
        )
        .expect("inclusion proof verifies");
        let from = 1 + rng.next() % size;
        let p = ledger.consistency(1, from, size).expect("proof");
        verify_consistency(from, size, &ledger.root(1, from).expect("root"), &root, &p)
            .expect("consistency proof verifies");
    }

    // Full verification.
    let t = Instant::now();
    let check = |leaf: &[u8]| {
        AuditEvent::from_leaf(leaf)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let report = ledger
        .verify(&check, &|_| {})
        .expect("read")
        .expect("the log is intact");
    let s = t.elapsed().as_secs_f64();
    println!(
        "| SQLite | full verify ({} entries, {} checkpoints) | {} | {} ({s:.1} s) |",
        report.entries,
        report.checkpoints,
        report.entries,
        rate(report.entries, s)
    );
    let db = std::fs::metadata(tmp.path().join("ledger.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "\nSQLite file: {:.2} GB for {size} entries",
        db as f64 / 1e9
    );
}

/// The same vault through a new ledger object: an empty node cache.
fn fresh_cache(ledger: &Arc<Ledger>) -> Arc<Ledger> {
    Ledger::open(Arc::clone(ledger.vault()), "bench.caldicott.invalid/audit").expect("ledger")
}
