//! What one durable write costs this machine, the floor under any group commit of audit
//! events: `cargo run --release -p caldicott-vault --example sync_cost -- 2500` (bytes per
//! write; default 2,500, about six audit leaves, the batch the FHIR benchmark's 32
//! connections make).
//!
//! Four ways to make `bytes` durable, 2,000 times each, in a temporary directory (the
//! system's, so on the disk the benchmarks' vaults use):
//! - `append + fdatasync`: a file that grows, as a plain journal would;
//! - `overwrite + fdatasync`: a file written once to its full length, then overwritten in
//!   place, as SQLite reuses its WAL after a restart (no size change to journal);
//! - `SQLite commit, synchronous=FULL`: one row of that many bytes per transaction, in WAL
//!   mode, as the audit committer commits (a WAL `fsync` per commit);
//! - `SQLite commit, synchronous=NORMAL`: the same without the `fsync` (durable against a
//!   crash of the process, not of the machine), for what SQLite's own work costs.
//!
//! For each it prints the CPU time per write (this thread's, from
//! `/proc/thread-self/schedstat`; kernel work done elsewhere, such as the file system's
//! journal thread, is not in it) and the wall time. Linux only.

use std::io::Write;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;

const WRITES: u64 = 2_000;

/// Runs `write` [`WRITES`] times and prints its CPU and wall time per call.
fn measure(name: &str, mut write: impl FnMut(u64)) {
    let t = Instant::now();
    let c0 = common::thread_cpu_ns();
    for i in 0..WRITES {
        write(i);
    }
    let cpu = (common::thread_cpu_ns() - c0) as f64 / 1e3 / WRITES as f64;
    let wall = t.elapsed().as_secs_f64() * 1e6 / WRITES as f64;
    println!("| {name} | {cpu:.1} µs | {wall:.1} µs |");
}

fn main() {
    let bytes: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("bytes per write"))
        .unwrap_or(2_500);
    let tmp = tempfile::tempdir().expect("tempdir");
    // Not all zeros, so nothing along the way can shortcut it.
    let data: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    println!(
        "{bytes} bytes per write, {WRITES} writes each, in {}",
        tmp.path().display()
    );
    println!();
    println!("| durable write | CPU per write | wall per write |");
    println!("|---|---:|---:|");

    let mut appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(tmp.path().join("appended"))
        .expect("create");
    measure("append + fdatasync", |_| {
        appended.write_all(&data).expect("write");
        appended.sync_data().expect("fdatasync");
    });

    let overwritten = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(tmp.path().join("overwritten"))
        .expect("create");
    {
        use std::os::unix::fs::FileExt;
        let full = vec![0u8; bytes * WRITES as usize];
        overwritten.write_all_at(&full, 0).expect("fill");
        overwritten.sync_all().expect("fsync");
        measure("overwrite + fdatasync", |i| {
            overwritten
                .write_all_at(&data, i * bytes as u64)
                .expect("write");
            overwritten.sync_data().expect("fdatasync");
        });
    }

    for sync in ["FULL", "NORMAL"] {
        let c = rusqlite::Connection::open(tmp.path().join(format!("{sync}.db"))).expect("open");
        c.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};
             CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
        ))
        .expect("schema");
        let mut st = c
            .prepare("INSERT INTO t (data) VALUES (?1)")
            .expect("prepare");
        measure(&format!("SQLite commit, synchronous={sync}"), |_| {
            // Outside a transaction each INSERT is one, committed at once.
            st.execute([&data]).expect("insert");
        });
    }
}
