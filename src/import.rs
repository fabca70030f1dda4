//! `caldicott import`: loads FHIR resources into the vault in batches: NDJSON files (one
//! resource per line), and Bundles (`transaction`, `batch`, `collection`, ...), whether a
//! whole `.json` file or one line of an NDJSON file.
//!
//! Every resource goes through the same preparation as the REST API (`Store::prepare`):
//! strict JSON, structural R4 validation, the UK Core identifier rules, `meta.versionId`
//! and `meta.lastUpdated`, the owning organisation (an Organization under its own ODS code,
//! a Patient under its managing organisation or GP, anything else under its patient's
//! organisation, else the deployment's), and the search index terms, so what is imported
//! is found by the API's searches.
//!
//! Re-running an interrupted import is safe: a resource keeps its id (Bundle entries
//! without one take the UUID of their `urn:uuid:` fullUrl), records already stored with
//! the same content are skipped, changed ones become new versions. A transaction Bundle is
//! written in one database transaction.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use caldicott_api::Store;
use caldicott_core::{OdsCode, ResourceId, ResourceType, VersionId};
use caldicott_vault::{Expect, Vault, VaultError, Write, now_micros};
use serde_json::Value;

use crate::progress;

/// Resources per transaction.
pub const BATCH: usize = 5_000;
/// Longest accepted line (one resource or Bundle).
const MAX_LINE: usize = 64 << 20;
/// Largest file read whole as one JSON document (a Bundle).
const MAX_DOCUMENT: u64 = 512 << 20;

#[derive(Debug, Default)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub by_type: BTreeMap<String, u64>,
    pub without_organisation: u64,
    pub bundles: u64,
    pub seconds: f64,
}

impl ImportSummary {
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.unchanged
    }
}

struct Importer<'a> {
    store: &'a Store,
    /// `Type/id` → organisation of the Organizations and Patients seen so far, so that
    /// what follows them in the same import finds its owner before it is stored.
    owners: HashMap<String, OdsCode>,
    batch: Vec<Write>,
    /// Prepared batches go to the writer thread: preparing the next batch (parsing,
    /// validating, indexing) overlaps with writing this one.
    to_writer: std::sync::mpsc::SyncSender<Vec<Write>>,
    summary: ImportSummary,
}

/// What the writer thread counts.
#[derive(Default)]
struct Written {
    created: u64,
    updated: u64,
    unchanged: u64,
    by_type: BTreeMap<String, u64>,
}

pub fn import_files(
    vault: std::sync::Arc<Vault>,
    default_org: &OdsCode,
    files: &[impl AsRef<Path>],
) -> anyhow::Result<ImportSummary> {
    let start = Instant::now();
    let store = Store::new(vault, default_org.clone());
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Write>>(1);
    let (read, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> anyhow::Result<Written> {
            let mut w = Written::default();
            for batch in rx {
                write_batch(&store, &batch, &mut w)?;
            }
            Ok(w)
        });
        let mut imp = Importer {
            store: &store,
            owners: HashMap::new(),
            batch: Vec::with_capacity(BATCH),
            to_writer: tx,
            summary: ImportSummary::default(),
        };
        let read = files
            .iter()
            .try_for_each(|f| imp.file(f.as_ref()))
            .and_then(|()| imp.flush())
            .map(|()| imp.summary);
        // Closing the channel ends the writer; its error, if any, explains a failed send.
        drop(imp.to_writer);
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (read, written)
    });
    let written = written?;
    let mut summary = read?;
    summary.created = written.created;
    summary.updated = written.updated;
    summary.unchanged = written.unchanged;
    summary.by_type = written.by_type;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

impl Importer<'_> {
    fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let is_document = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_document {
            if len > MAX_DOCUMENT {
                bail!(
                    "{}: a JSON document larger than {MAX_DOCUMENT} bytes; use NDJSON",
                    path.display()
                );
            }
            let mut text = Vec::with_capacity(len as usize);
            std::io::BufReader::new(file)
                .read_to_end(&mut text)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return self
                .item(&text)
                .with_context(|| format!("{}", path.display()));
        }
        let pb = progress::bytes(len);
        pb.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        let mut line_no = 0u64;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            pb.inc(n as u64);
            if line.len() > MAX_LINE {
                bail!(
                    "{} line {line_no}: longer than {MAX_LINE} bytes",
                    path.display()
                );
            }
            let text = trim(&line);
            if text.is_empty() {
                continue;
            }
            self.item(text)
                .with_context(|| format!("{} line {line_no}", path.display()))?;
        }
        pb.finish_and_clear();
        Ok(())
    }

    /// One JSON document: a resource, or a Bundle whose entries are imported.
    fn item(&mut self, json: &[u8]) -> anyhow::Result<()> {
        let v = caldicott_api::json::parse_strict(json)
            .map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
        if v.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            return self.bundle(v);
        }
        let w = self.prepare(v)?;
        self.batch.push(w);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// A Bundle's entries, with `urn:uuid:` references rewritten to the entries' ids. A
    /// transaction is written atomically, on its own.
    fn bundle(&mut self, b: Value) -> anyhow::Result<()> {
        self.summary.bundles += 1;
        let transaction = b.get("type").and_then(Value::as_str) == Some("transaction");
        let entries = b
            .get("entry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut map = HashMap::new();
        let mut resources = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let Some(mut r) = e.get("resource").cloned() else {
                continue;
            };
            let rtype = r
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let full = e.get("fullUrl").and_then(Value::as_str).unwrap_or("");
            let id = match r.get("id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => full
                    .strip_prefix("urn:uuid:")
                    .map(str::to_owned)
                    .with_context(|| {
                        format!(
                            "Bundle.entry[{i}]: a resource without an id needs a urn:uuid: fullUrl"
                        )
                    })?,
            };
            if let Value::Object(o) = &mut r {
                o.insert("id".into(), Value::String(id.clone()));
            }
            if !full.is_empty() {
                map.insert(full.to_owned(), format!("{rtype}/{id}"));
            }
            resources.push(r);
        }
        // Organizations and Patients first, so the rest find their owners.
        resources.sort_by_key(|r| match r.get("resourceType").and_then(Value::as_str) {
            Some("Organization") => 0,
            Some("Patient") => 1,
            _ => 2,
        });
        if transaction {
            self.flush()?;
        }
        for mut r in resources {
            caldicott_api::bundle::rewrite_references(&mut r, &map);
            let w = self.prepare(r)?;
            self.batch.push(w);
            if !transaction && self.batch.len() >= BATCH {
                self.flush()?;
            }
        }
        if transaction {
            self.flush()?;
        }
        Ok(())
    }

    fn prepare(&mut self, v: Value) -> anyhow::Result<Write> {
        let rtype = v
            .get("resourceType")
            .and_then(Value::as_str)
            .filter(|t| caldicott_fhir::definitions::is_resource_type(t))
            .and_then(|t| ResourceType::new(t).ok())
            .context("resourceType is missing or not an R4 resource type")?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .and_then(|i| ResourceId::new(i).ok())
            .context("id is missing or not a valid FHIR id")?;
        let p = self
            .store
            .prepare(
                &rtype,
                &id,
                v,
                VersionId::FIRST,
                now_micros(),
                None,
                &self.owners,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if p.write.org == *self.store.default_org()
            && !matches!(
                rtype.as_str(),
                "Organization" | "Practitioner" | "PractitionerRole" | "Location"
            )
        {
            self.summary.without_organisation += 1;
        }
        if matches!(rtype.as_str(), "Organization" | "Patient") {
            self.owners
                .insert(format!("{rtype}/{id}"), p.write.org.clone());
        }
        Ok(p.write)
    }

    /// Hands the current batch to the writer thread.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.to_writer
            .send(batch)
            .map_err(|_| anyhow::anyhow!("the database writer stopped"))
    }
}

/// Writes one batch: all at once, or, when some records exist already (a resumed
/// import), one by one.
/// The audit entry of an imported batch: who (the command line), how many of what.
fn import_leaf(batch: &[Write]) -> caldicott_vault::LedgerLeaf {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for one in batch {
        *by_type.entry(one.rtype.as_str()).or_default() += 1;
    }
    let what: Vec<String> = by_type.iter().map(|(t, n)| format!("{n} {t}")).collect();
    let org = batch.first().map_or("", |w| w.org.as_str());
    let mut event = caldicott_api::audit::security_event(
        caldicott_audit::EventKind::Admin,
        "import",
        "cli",
        org,
        "sysadmin",
        &caldicott_api::audit::Origin::default(),
        caldicott_audit::Outcome::Permit,
        &format!("imported {}", what.join(", ")),
        caldicott_vault::now_micros(),
    );
    event.rtype = by_type.keys().next().map(|t| (*t).to_owned());
    caldicott_api::audit::leaf_of(&event)
}

fn write_batch(store: &Store, batch: &[Write], w: &mut Written) -> anyhow::Result<()> {
    // The batch and its audit entry are written in one transaction.
    let leaf = [import_leaf(batch)];
    match store
        .vault()
        .commit_audited(batch, batch.len(), caldicott_vault::now_micros(), &leaf)
    {
        Ok(_) => w.created += batch.len() as u64,
        Err(VaultError::Conflict { .. } | VaultError::DuplicateInBatch { .. }) => {
            for one in batch {
                upsert_one(store, one, w)?;
            }
            store
                .vault()
                .commit_audited(&[], 0, caldicott_vault::now_micros(), &leaf)?;
        }
        Err(e) => return Err(e.into()),
    }
    for one in batch {
        *w.by_type.entry(one.rtype.to_string()).or_default() += 1;
    }
    Ok(())
}

fn upsert_one(store: &Store, one: &Write, w: &mut Written) -> anyhow::Result<()> {
    // The vault directly (not the API's store): its errors carry the storage detail an
    // operator at the command line needs.
    let vault = store.vault();
    let current = match vault.locate(&one.rtype, &one.id)? {
        Some(org) => vault.get(&org, &one.rtype, &one.id)?,
        None => None,
    };
    let Some(current) = current else {
        vault.put(one)?;
        w.created += 1;
        return Ok(());
    };
    if !current.deleted && same_content(&current.body, &one.body) {
        w.unchanged += 1;
        return Ok(());
    }
    // A new version: its meta must carry the new version number.
    let v: Value = serde_json::from_slice(&one.body)?;
    let next = current.version.next();
    let p = store
        .prepare(
            &one.rtype,
            &one.id,
            v,
            next,
            now_micros(),
            Some(current.org.clone()),
            &HashMap::new(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    vault.put(&Write {
        expect: Expect::Version(current.version),
        ..p.write
    })?;
    w.updated += 1;
    Ok(())
}

/// Whether two stored forms of a resource say the same thing, `meta.versionId` and
/// `meta.lastUpdated` aside (the server sets those).
fn same_content(a: &[u8], b: &[u8]) -> bool {
    let strip = |bytes: &[u8]| -> Option<Value> {
        let mut v: Value = serde_json::from_slice(bytes).ok()?;
        if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            if meta.is_empty() {
                v.as_object_mut()?.remove("meta");
            }
        }
        Some(v)
    };
    matches!((strip(a), strip(b)), (Some(x), Some(y)) if x == y)
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_comparison_ignores_server_meta() {
        let a = br#"{"resourceType":"Patient","id":"p","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00Z"},"gender":"male"}"#;
        let b = br#"{"resourceType":"Patient","id":"p","meta":{"versionId":"3","lastUpdated":"2025-01-01T00:00:00Z"},"gender":"male"}"#;
        let c = br#"{"resourceType":"Patient","id":"p","gender":"female"}"#;
        assert!(same_content(a, b));
        assert!(!same_content(a, c));
    }
}
