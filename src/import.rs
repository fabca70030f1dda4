//! `caldicott import`: loads NDJSON files of FHIR resources into the vault in batches.
//!
//! Each resource is validated as FHIR R4 (structure, element names, cardinality, primitive
//! formats) and the UK Core identifier rules, then filed under its organisation (an Organization under its own ODS code,
//! a Patient under its managing organisation or GP, anything else under its patient's
//! organisation, and the deployment's organisation when none is known) and indexed by its
//! identifiers and patient reference. Re-running an interrupted import is safe: records
//! already stored with the same bytes are skipped, changed ones become new versions.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use caldicott_core::OdsCode;
use caldicott_vault::{Expect, IndexTerm, Vault, VaultError, Write};

use crate::progress;

/// Resources per transaction.
pub const BATCH: usize = 5_000;
/// Longest accepted line (one resource).
const MAX_LINE: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub by_type: BTreeMap<String, u64>,
    pub without_organisation: u64,
    pub seconds: f64,
}

impl ImportSummary {
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.unchanged
    }
}

/// Remembers which organisation owns each Organization and Patient seen so far.
struct Owners {
    default_org: OdsCode,
    organisations: HashMap<String, OdsCode>,
    patients: HashMap<String, OdsCode>,
}

pub fn import_files(
    vault: &Vault,
    default_org: &OdsCode,
    files: &[impl AsRef<Path>],
) -> anyhow::Result<ImportSummary> {
    let start = Instant::now();
    let mut owners = Owners {
        default_org: default_org.clone(),
        organisations: HashMap::new(),
        patients: HashMap::new(),
    };
    let mut summary = ImportSummary::default();
    for file in files {
        import_file(vault, &mut owners, file.as_ref(), &mut summary)?;
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn import_file(
    vault: &Vault,
    owners: &mut Owners,
    path: &Path,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = progress::bytes(len);
    pb.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut batch: Vec<Write> = Vec::with_capacity(BATCH);
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
                "{} line {line_no}: longer than {} bytes",
                path.display(),
                MAX_LINE
            );
        }
        let text = trim(&line);
        if text.is_empty() {
            continue;
        }
        let w = to_write(owners, text, summary)
            .with_context(|| format!("{} line {line_no}", path.display()))?;
        batch.push(w);
        if batch.len() == BATCH {
            flush(vault, &mut batch, summary)?;
        }
    }
    flush(vault, &mut batch, summary)?;
    pb.finish_and_clear();
    Ok(())
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

fn to_write(
    owners: &mut Owners,
    json: &[u8],
    summary: &mut ImportSummary,
) -> anyhow::Result<Write> {
    let f = caldicott_fhir::facts(json)?;
    let org = match f.resource_type.as_str() {
        "Organization" => f.own_ods.clone(),
        "Patient" => f.organisation_ods.clone().or_else(|| {
            f.organisation_ref
                .as_ref()
                .and_then(|r| owners.organisations.get(r).cloned())
        }),
        _ => f
            .patient_ref
            .as_ref()
            .and_then(|r| owners.patients.get(r).cloned()),
    };
    let org = org.unwrap_or_else(|| {
        summary.without_organisation += 1;
        owners.default_org.clone()
    });
    let key = format!("{}/{}", f.resource_type, f.id);
    match f.resource_type.as_str() {
        "Organization" => {
            owners.organisations.insert(key, org.clone());
        }
        "Patient" => {
            owners.patients.insert(key, org.clone());
        }
        _ => {}
    }
    Ok(Write {
        org,
        rtype: f.resource_type,
        id: f.id,
        expect: Expect::Absent,
        body: json.to_vec(),
        terms: index_terms(f.terms),
    })
}

/// The one conversion from a resource's search terms to the vault's index terms.
fn index_terms(terms: Vec<(String, String)>) -> Vec<IndexTerm> {
    terms
        .into_iter()
        .map(|(n, v)| IndexTerm::new(n, v))
        .collect()
}

/// The vault's indexer for FHIR resources: the same terms the importer indexes a resource
/// under (used when a data-key rotation re-hashes the index).
pub fn fhir_index_terms(_: &caldicott_core::ResourceType, body: &[u8]) -> Vec<IndexTerm> {
    caldicott_fhir::facts(body)
        .map(|f| index_terms(f.terms))
        .unwrap_or_default()
}

fn flush(vault: &Vault, batch: &mut Vec<Write>, summary: &mut ImportSummary) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    match vault.put_batch(batch) {
        Ok(_) => {
            summary.created += batch.len() as u64;
            for w in batch.iter() {
                *summary.by_type.entry(w.rtype.to_string()).or_default() += 1;
            }
        }
        // Some records exist already (a resumed import): go one by one.
        Err(VaultError::Conflict { .. } | VaultError::DuplicateInBatch { .. }) => {
            for w in batch.iter() {
                upsert_one(vault, w, summary)?;
                *summary.by_type.entry(w.rtype.to_string()).or_default() += 1;
            }
        }
        Err(e) => return Err(e.into()),
    }
    batch.clear();
    Ok(())
}

fn upsert_one(vault: &Vault, w: &Write, summary: &mut ImportSummary) -> anyhow::Result<()> {
    match vault.get(&w.org, &w.rtype, &w.id)? {
        Some(r) if !r.deleted && r.body == w.body => summary.unchanged += 1,
        Some(r) => {
            vault.put(&Write {
                expect: Expect::Version(r.version),
                ..w.clone()
            })?;
            summary.updated += 1;
        }
        None => {
            vault.put(w)?;
            summary.created += 1;
        }
    }
    Ok(())
}
