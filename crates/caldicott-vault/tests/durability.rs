//! Acknowledged writes survive `kill -9`, on both backends.
//!
//! The test re-runs this test binary as a child process (only the `writer_process` test,
//! with an environment variable telling it to act as the writer). The child writes records
//! one after another (single records and small batches), printing `ack <id>` only after
//! the vault's `put` has returned. The parent kills it with SIGKILL mid-stream, reopens the
//! database and checks that every acknowledged record is there, byte for byte, and that
//! the batch in flight was applied whole or not at all.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use caldicott_core::{OdsCode, ResourceId, ResourceType};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{Expect, KeyProvider, LocalKek, Vault, Write};

const CHILD_ENV: &str = "CALDICOTT_DURABILITY_CHILD";

fn body(id: &str) -> Vec<u8> {
    format!(
        "{{\"resourceType\":\"Observation\",\"id\":\"{id}\",\"pad\":\"{}\"}}",
        "x".repeat(900)
    )
    .into_bytes()
}

fn write(id: &str) -> Write {
    Write {
        org: OdsCode::parse("A81001").unwrap(),
        rtype: ResourceType::new("Observation").unwrap(),
        id: ResourceId::new(id).unwrap(),
        expect: Expect::Absent,
        body: body(id),
        terms: vec![],
    }
}

/// The child: writes until killed. Does nothing in a normal test run.
#[test]
fn writer_process() {
    let Ok(location) = std::env::var(CHILD_ENV) else {
        return;
    };
    let key = std::env::var("CALDICOTT_MASTER_KEY").unwrap();
    let kek: Arc<dyn KeyProvider> =
        Arc::new(LocalKek::from_env_value("CALDICOTT_MASTER_KEY", &key).unwrap());
    let vault = Vault::open(
        caldicott_vault::open_backend(&location, false).unwrap(),
        kek,
    )
    .unwrap();
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        if i % 5 == 4 {
            // A batch of ten, acknowledged together.
            let ids: Vec<String> = (0..10).map(|j| format!("b{i}-{j}")).collect();
            vault
                .put_batch(&ids.iter().map(|id| write(id)).collect::<Vec<_>>())
                .unwrap();
            for id in ids {
                writeln!(out, "ack {id}").unwrap();
            }
        } else {
            let id = format!("s{i}");
            vault.put(&write(&id)).unwrap();
            writeln!(out, "ack {id}").unwrap();
        }
        out.flush().unwrap();
    }
}

fn kill_during_writes(location: &str, kill_after: usize) {
    let (kek, text) = LocalKek::generate().unwrap();
    let kek: Arc<dyn KeyProvider> = Arc::new(kek);
    let backend = caldicott_vault::open_backend(location, true).unwrap();
    backend.migrate().unwrap();
    Vault::open(backend, Arc::clone(&kek)).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, location)
        .env("CALDICOTT_MASTER_KEY", text.as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < kill_after {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(id) = l.strip_prefix("ack ") {
                    acked.push(id.to_owned());
                }
            }
            _ => panic!("the writer stopped after {} acknowledgements", acked.len()),
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too: they were printed after commit.
    for l in lines.map_while(Result::ok) {
        if let Some(id) = l.strip_prefix("ack ") {
            acked.push(id.to_owned());
        }
    }

    let vault = Vault::open(caldicott_vault::open_backend(location, false).unwrap(), kek).unwrap();
    let org = OdsCode::parse("A81001").unwrap();
    let rt = ResourceType::new("Observation").unwrap();
    let ids: Vec<ResourceId> = acked
        .iter()
        .map(|id| ResourceId::new(id).unwrap())
        .collect();
    for (id, rec) in ids.iter().zip(vault.get_many(&org, &rt, &ids).unwrap()) {
        let rec = rec.unwrap_or_else(|| panic!("acknowledged write {id} was lost"));
        assert_eq!(rec.body, body(id.as_str()));
    }
    // Batches are all or nothing: every batch present has all ten records.
    let total = vault.count(&org, &rt).unwrap();
    let mut batches = std::collections::BTreeMap::<String, usize>::new();
    let mut singles = 0u64;
    for i in 0.. {
        let s = ResourceId::new(&format!("s{i}")).unwrap();
        let b: Vec<ResourceId> = (0..10)
            .map(|j| ResourceId::new(&format!("b{i}-{j}")).unwrap())
            .collect();
        let found_s = vault.get(&org, &rt, &s).unwrap().is_some();
        let found_b = vault
            .get_many(&org, &rt, &b)
            .unwrap()
            .iter()
            .filter(|r| r.is_some())
            .count();
        if !found_s && found_b == 0 && i as u64 > total {
            break;
        }
        singles += u64::from(found_s);
        if found_b > 0 {
            batches.insert(format!("b{i}"), found_b);
        }
    }
    assert!(
        batches.values().all(|n| *n == 10),
        "a partial batch survived: {batches:?}"
    );
    assert_eq!(total, singles + 10 * batches.len() as u64);
    eprintln!(
        "{location}: {} acknowledged, {total} stored after kill -9",
        acked.len()
    );
}

#[test]
fn sqlite_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    kill_during_writes(&dir.path().join("vault.db").display().to_string(), 300);
}

#[test]
fn postgres_keeps_every_acknowledged_write() {
    if let Some(schema) = PgSchema::create() {
        kill_during_writes(&schema.url, 300);
    }
}
