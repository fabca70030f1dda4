//! `caldicott share`: data-sharing agreements and releases on the command line.
//!
//! - `share agreement propose|amend|approve|revoke|list|show`: the agreement's life, each
//!   change made by a named user of the directory (`--by`), checked by the rules in
//!   `caldicott_share::agreement` and recorded in the audit ledger as an `admin` event.
//! - `share release`: the pipeline. It checks the agreement may release today, selects the
//!   cohort through the FHIR store, removes opted-out patients when the agreement's basis
//!   requires it (counting them, never naming them), flattens each patient to a row,
//!   de-identifies the table with the agreement's profile and pseudonym key, writes the
//!   files encrypted to the recipient with a signed manifest, and records the release in
//!   the ledger and in the agreement's release history.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use caldicott_access::Directory;
use caldicott_api::Store;
use caldicott_core::{NhsNumber, OdsCode, ResourceId, ResourceType};
use caldicott_fhir::search::fhirpath;
use caldicott_share::agreement::{ReleaseRecord, Terms};
use caldicott_share::output::{CohortCounts, Limits, RecipientKey, ReleaseInfo, ReleaseWriter};
use caldicott_share::{Actor, AgreementId, Book, Day, Flattener};
use caldicott_vault::Vault;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum ShareCommand {
    /// Data-sharing agreements: propose, amend, approve, revoke, list, show.
    Agreement {
        #[command(subcommand)]
        command: AgreementCommand,
    },
    /// Makes a release under an approved agreement.
    Release {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The agreement's id (DSA-...).
        #[arg(long)]
        agreement: String,
        /// The user making the release (a Caldicott guardian, sysadmin or researcher of the
        /// agreement's organisation).
        #[arg(long)]
        by: String,
        /// The directory to write the release into (created; must not hold a release).
        #[arg(long)]
        out: PathBuf,
        /// Where the profile's CSV hierarchies are.
        #[arg(long)]
        hierarchies: Option<PathBuf>,
    },
    /// Protects a table of counts before it leaves: counts 1-7 suppressed, complementary
    /// suppression against the totals, rounding to 5 (OpenSAFELY's rules).
    Aggregate(crate::aggregate_cmd::AggregateArgs),
    /// Prints the key that verifies this deployment's release manifests (signed-note
    /// `vkey` form), for recipients.
    Key {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
    /// Verifies a release directory: the manifest's signature and every file's size and
    /// hash (what a recipient runs before decrypting).
    Verify {
        /// The release directory.
        #[arg(long)]
        dir: PathBuf,
        /// The releasing deployment's verifier key (from `share key`).
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
pub enum AgreementCommand {
    /// Proposes an agreement from a terms file (TOML); prints its id.
    Propose {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        by: String,
        /// The terms (TOML; see docs/sharing.md).
        #[arg(long)]
        file: PathBuf,
    },
    /// Proposes new terms for an agreement: a new version, to be approved again.
    Amend {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Approves the newest version (the organisation's Caldicott guardian, not the proposer).
    Approve {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        id: String,
        #[arg(long)]
        by: String,
    },
    /// Revokes an agreement: no further release under any version.
    Revoke {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
    /// Lists the agreements (one line each, or JSON).
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Shows every version of one agreement, and its releases, as JSON.
    Show {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        id: String,
    },
}

impl ShareCommand {
    pub fn data_dir(&self) -> Option<&Path> {
        Some(match self {
            ShareCommand::Verify { .. } | ShareCommand::Aggregate(_) => return None,
            ShareCommand::Release { data, .. } | ShareCommand::Key { data, .. } => data,
            ShareCommand::Agreement { command } => match command {
                AgreementCommand::Propose { data, .. }
                | AgreementCommand::Amend { data, .. }
                | AgreementCommand::Approve { data, .. }
                | AgreementCommand::Revoke { data, .. }
                | AgreementCommand::List { data, .. }
                | AgreementCommand::Show { data, .. } => data,
            },
        })
    }
}

/// What every share command opens.
struct Opened {
    dir: crate::datadir::DataDir,
    vault: Arc<Vault>,
    directory: Directory,
    book: Book,
}

fn open(data: &Path, database: Option<String>) -> anyhow::Result<Opened> {
    let dir = crate::load(data, database)?;
    let vault = Arc::new(dir.open_vault()?);
    Ok(Opened {
        directory: Directory::new(Arc::clone(&vault)),
        book: Book::new(Arc::clone(&vault)),
        vault,
        dir,
    })
}

/// The named user, who must exist and be enabled.
fn user(directory: &Directory, name: &str) -> anyhow::Result<caldicott_access::User> {
    crate::admin::enabled_user(directory, name)
}

fn actor(u: &caldicott_access::User) -> Actor<'_> {
    Actor {
        user: &u.name,
        org: &u.org,
        role: &u.role,
    }
}

/// Reads a terms file. `deid_profile_file = "PATH"` (relative to the terms file) may stand
/// for an inline `deid_profile`.
pub fn read_terms(path: &Path) -> anyhow::Result<Terms> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    if let Some(file) = table.remove("deid_profile_file") {
        let Some(file) = file.as_str() else {
            bail!("{}: deid_profile_file must be a path", path.display());
        };
        let p = path.parent().unwrap_or(Path::new(".")).join(file);
        let profile = std::fs::read_to_string(&p).with_context(|| {
            format!("cannot read the de-identification profile {}", p.display())
        })?;
        if table.contains_key("deid_profile") {
            bail!(
                "{}: give deid_profile or deid_profile_file, not both",
                path.display()
            );
        }
        table.insert("deid_profile".into(), toml::Value::String(profile));
    }
    let terms: Terms = table
        .try_into()
        .with_context(|| format!("{} does not describe an agreement", path.display()))?;
    terms
        .validate()
        .with_context(|| format!("{}", path.display()))?;
    Ok(terms)
}

/// Records an agreement change in the ledger.
fn audit(
    opened: &Opened,
    by: &caldicott_access::User,
    action: &str,
    id: &AgreementId,
    purpose: &str,
    reason: &str,
) -> anyhow::Result<()> {
    crate::ledger_local::record_admin(
        &opened.dir,
        &opened.vault,
        &crate::ledger_local::AdminAction {
            by,
            action,
            rtype: "DataSharingAgreement",
            id: id.as_str(),
            purpose,
            reason,
        },
    )
}

pub fn run(cmd: ShareCommand) -> anyhow::Result<()> {
    match cmd {
        ShareCommand::Agreement { command } => agreement(command),
        ShareCommand::Release {
            data,
            database,
            agreement,
            by,
            out,
            hierarchies,
        } => {
            let opened = open(&data, database)?;
            let id = AgreementId::parse(&agreement)?;
            release(&opened, &id, &by, &out, hierarchies.as_deref())
        }
        ShareCommand::Aggregate(args) => args.run(),
        ShareCommand::Key { data, database } => {
            let opened = open(&data, database)?;
            println!("{}", signing_key(&opened)?.verifier_key());
            Ok(())
        }
        ShareCommand::Verify { dir, key } => {
            let key = caldicott_share::output::VerifierKey::parse(key.trim())
                .context("--key is not a verifier key (name+id+key)")?;
            let v = caldicott_share::output::verify_manifest(&dir, &key)?;
            eprintln!(
                "{}: release {} under {} version {}, {} files verified",
                dir.display(),
                v.manifest.release_id,
                v.manifest.agreement.id,
                v.manifest.agreement.version,
                v.manifest.files.len()
            );
            Ok(())
        }
    }
}

fn agreement(cmd: AgreementCommand) -> anyhow::Result<()> {
    let now = caldicott_vault::now_micros();
    match cmd {
        AgreementCommand::Propose {
            data,
            database,
            by,
            file,
        } => {
            let terms = read_terms(&file)?;
            let o = open(&data, database)?;
            let u = user(&o.directory, &by)?;
            let purpose = terms.purpose.as_str();
            let a = o.book.propose(&actor(&u), terms, now)?;
            audit(
                &o,
                &u,
                "agreement-propose",
                &a.id,
                purpose,
                "version 1 proposed",
            )?;
            println!("{}", a.id);
        }
        AgreementCommand::Amend {
            data,
            database,
            id,
            by,
            file,
        } => {
            let terms = read_terms(&file)?;
            let o = open(&data, database)?;
            let u = user(&o.directory, &by)?;
            let id = AgreementId::parse(&id)?;
            let purpose = terms.purpose.as_str();
            let a = o.book.amend(&id, &actor(&u), terms, now)?;
            let why = format!("version {} proposed", a.version);
            audit(&o, &u, "agreement-amend", &a.id, purpose, &why)?;
            eprintln!("{} version {} proposed; it needs approval", a.id, a.version);
        }
        AgreementCommand::Approve {
            data,
            database,
            id,
            by,
        } => {
            let o = open(&data, database)?;
            let u = user(&o.directory, &by)?;
            let id = AgreementId::parse(&id)?;
            let a = o.book.approve(&id, &actor(&u), now)?;
            let why = format!("version {} approved", a.version);
            audit(
                &o,
                &u,
                "agreement-approve",
                &a.id,
                a.terms.purpose.as_str(),
                &why,
            )?;
            eprintln!("{} version {} approved", a.id, a.version);
        }
        AgreementCommand::Revoke {
            data,
            database,
            id,
            by,
            reason,
        } => {
            let o = open(&data, database)?;
            let u = user(&o.directory, &by)?;
            let id = AgreementId::parse(&id)?;
            let a = o.book.revoke(&id, &actor(&u), &reason, now)?;
            audit(
                &o,
                &u,
                "agreement-revoke",
                &a.id,
                a.terms.purpose.as_str(),
                "revoked",
            )?;
            eprintln!("{} revoked", a.id);
        }
        AgreementCommand::List {
            data,
            database,
            json,
        } => {
            let o = open(&data, database)?;
            let all = o.book.list()?;
            // The same summary as `GET /admin/agreements` gives.
            let summaries: Vec<Value> = all
                .iter()
                .map(|v| caldicott_api::agreements::summary(v))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else {
                for s in &summaries {
                    let state = match (s["state"].as_str(), s["approved_version"].as_u64()) {
                        (Some("approved"), Some(v)) if Some(v) != s["version"].as_u64() => {
                            format!("approved v{v}; v{} proposed", s["version"])
                        }
                        (state, _) => state.unwrap_or_default().to_owned(),
                    };
                    println!(
                        "{}\tv{}\t{}\t{}\t{}\texpires {}\t{}",
                        s["id"].as_str().unwrap_or_default(),
                        s["version"],
                        state,
                        s["purpose"].as_str().unwrap_or_default(),
                        s["recipient"].as_str().unwrap_or_default(),
                        s["expires"].as_str().unwrap_or_default(),
                        s["title"].as_str().unwrap_or_default(),
                    );
                }
            }
        }
        AgreementCommand::Show { data, database, id } => {
            let o = open(&data, database)?;
            let id = AgreementId::parse(&id)?;
            let versions = o.book.versions(&id)?;
            let releases = o.book.releases(&id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "versions": versions,
                    "releases": releases,
                }))?
            );
        }
    }
    Ok(())
}

/// Roles that may run a release.
const RELEASERS: &[&str] = &["caldicott-guardian", "sysadmin", "researcher"];

/// Patients read from the store per page.
const PAGE: usize = 500;

/// Counts of the selection, numbers only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Selection {
    /// Patients the cohort selected.
    pub selected: u64,
    /// Of those, removed for an opt-out.
    pub opted_out: u64,
    /// Of those, removed because they have no NHS number to check against the opt-out
    /// lists (when opt-outs apply).
    pub unverifiable: u64,
}

/// Selects the cohort and flattens it: the table to de-identify, and the counts.
pub fn select(
    store: &Store,
    vault: &Vault,
    org: &OdsCode,
    terms: &Terms,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<(caldicott_deid::Table, Selection)> {
    let flattener = Flattener::new(&terms.dataset)?;
    let rule = terms.opt_outs();
    let cohort = cohort_patients(store, terms, &flattener)?;
    let mut table = caldicott_deid::Table::new(flattener.header())?;
    let mut counts = Selection::default();
    let patient_type = ResourceType::new("Patient")?;
    let related_types: Vec<ResourceType> = terms
        .dataset
        .compartment_types()
        .into_iter()
        .map(ResourceType::new)
        .collect::<Result<_, _>>()?;
    let mut after: Option<ResourceId> = None;
    loop {
        let page = vault.scan(org, &patient_type, after.as_ref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for rec in &page {
            progress(1);
            if let Some(c) = &cohort
                && !c.contains(rec.id.as_str())
            {
                continue;
            }
            counts.selected += 1;
            let patient: Value = serde_json::from_slice(&rec.body)
                .with_context(|| format!("stored Patient/{} is not JSON", rec.id))?;
            if rule.national || rule.type1 {
                let Some(nhs) = nhs_number(&patient) else {
                    counts.unverifiable += 1;
                    continue;
                };
                let o = caldicott_access::optout::check(vault, &nhs)?;
                if (rule.national && o.national) || (rule.type1 && o.type1) {
                    counts.opted_out += 1;
                    continue;
                }
            }
            let mut related = Vec::new();
            for t in &related_types {
                let found = caldicott_api::search::matching(
                    store,
                    t,
                    &format!("patient=Patient/{}", rec.id),
                    usize::MAX,
                )
                .map_err(|e| anyhow::anyhow!("cannot read {t} of a patient: {e}"))?;
                for r in found {
                    related.push(
                        serde_json::from_slice::<Value>(&r.body)
                            .with_context(|| format!("stored {t}/{} is not JSON", r.id))?,
                    );
                }
            }
            table.push_row(&flattener.row(&patient, &related)?)?;
        }
    }
    table.finish();
    Ok((table, counts))
}

/// The patient ids of the cohort, or `None` for every patient.
fn cohort_patients(
    store: &Store,
    terms: &Terms,
    flattener: &Flattener<'_>,
) -> anyhow::Result<Option<HashSet<String>>> {
    let Some((rtype, query)) = terms.dataset.cohort_search()? else {
        return Ok(None);
    };
    let rt = ResourceType::new(rtype)?;
    let found = caldicott_api::search::matching(store, &rt, query, usize::MAX)
        .map_err(|e| anyhow::anyhow!("the cohort search failed: {e}"))?;
    let params = caldicott_fhir::definitions::patient_compartment_params(rtype);
    let mut ids = HashSet::new();
    for rec in found {
        let r: Value = serde_json::from_slice(&rec.body)
            .with_context(|| format!("stored {rtype}/{} is not JSON", rec.id))?;
        if !flattener.in_period(&r) {
            continue;
        }
        for p in params {
            let Some(Some(Ok(expr))) = fhirpath::compiled_param(rtype, p).map(|c| c.expr.as_ref())
            else {
                continue;
            };
            for n in fhirpath::evaluate(expr, &r).unwrap_or_default() {
                if let Some(id) = n
                    .value
                    .get("reference")
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix("Patient/"))
                {
                    ids.insert(id.to_owned());
                }
            }
        }
    }
    Ok(Some(ids))
}

fn nhs_number(patient: &Value) -> Option<NhsNumber> {
    patient
        .get("identifier")?
        .as_array()?
        .iter()
        .filter(|i| {
            i.get("system").and_then(Value::as_str) == Some("https://fhir.nhs.uk/Id/nhs-number")
        })
        .find_map(|i| NhsNumber::parse(i.get("value")?.as_str()?).ok())
}

fn release(
    o: &Opened,
    id: &AgreementId,
    by: &str,
    out: &Path,
    hierarchies: Option<&Path>,
) -> anyhow::Result<()> {
    let u = user(&o.directory, by)?;
    let versions = o.book.versions(id)?;
    let releases = o.book.releases(id)?;
    let current = caldicott_share::agreement::may_release(&versions, &releases, Day::today())?;
    if u.org != current.org {
        bail!("{id} belongs to another organisation");
    }
    if !RELEASERS.contains(&u.role.as_str()) {
        bail!(
            "a release is made by a Caldicott guardian, sysadmin or researcher; {} is {}",
            u.name,
            u.role
        );
    }
    let terms = &current.terms;
    let org = OdsCode::parse(&current.org)?;
    let store = Store::new(Arc::clone(&o.vault), org.clone());
    let total = o.vault.count(&org, &ResourceType::new("Patient")?)?;
    let bar = crate::progress::bar(total, "patients");
    let (table, counts) = select(&store, &o.vault, &org, terms, |n| bar.inc(n))?;
    bar.finish_and_clear();
    if counts.selected == counts.opted_out + counts.unverifiable {
        bail!("no patient is left to release after the cohort and the opt-outs");
    }
    let policy = caldicott_deid::Policy::from_toml_str(&terms.deid_profile)?;
    let hier = caldicott_deid::load_hierarchies(&policy, hierarchies)?;
    // The agreement's own key: pseudonyms link across its releases and never to another's.
    let key = caldicott_deid::PseudonymKey::from_bytes(&o.book.pseudonym_key(&current.id)?[..])?;
    let (released, report) =
        caldicott_deid::anonymise_table_with_key(&table, &policy, &hier, Some(&key))
            .context("the de-identification profile cannot be met by this data")?;

    let signer = signing_key(o)?;
    let recipient = RecipientKey::parse(&terms.recipient.age_key)?;
    let release_id = format!("REL-{:016X}", rand::random::<u64>());
    let header = released.header().to_vec();
    let mut w = ReleaseWriter::create(
        out,
        &format!("{}-v{}", current.id, current.version),
        &recipient,
        &header,
        Limits::default(),
    )?;
    let bar = crate::progress::bar(released.num_rows() as u64, "rows");
    for i in 0..released.num_rows() {
        let row: Vec<&str> = released.row(i).collect();
        w.write_row(&row)?;
        w.write_fhir_line(&row_resource(&release_id, i, &header, &row).to_string())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let info = ReleaseInfo {
        release_id: release_id.clone(),
        agreement_id: current.id.to_string(),
        agreement_version: current.version,
        created_at: time::OffsetDateTime::now_utc(),
        cohort: CohortCounts {
            patients_selected: counts.selected,
            patients_removed_opt_out: counts.opted_out,
        },
        privacy_report: serde_json::to_value(&report)?,
    };
    let summary = w.finish(&info, &signer)?;
    let manifest_sha256 = sha256_hex(&std::fs::read(summary.dir.join("manifest.json"))?);

    // Recorded in the ledger, then in the agreement's history; if either fails the release
    // is withdrawn (its files deleted) so that nothing leaves unrecorded.
    let record = ReleaseRecord {
        release_id: release_id.clone(),
        version: current.version,
        on: Day::today(),
        by: u.name.clone(),
        rows: released.num_rows() as u64,
        manifest_sha256: manifest_sha256.clone(),
        opted_out: counts.opted_out,
    };
    let why = format!(
        "release {release_id} under version {}: {} rows to {}; {} patients removed for opt-outs, {} without an NHS number; manifest sha256 {manifest_sha256}",
        current.version, record.rows, terms.recipient.name, counts.opted_out, counts.unverifiable
    );
    let recorded = audit(
        o,
        &u,
        "share-release",
        &current.id,
        terms.purpose.as_str(),
        &why,
    )
    .and_then(|()| {
        Ok(o.book
            .record_release(&current.id, releases.len(), &record)?)
    });
    if let Err(e) = recorded {
        for f in summary
            .files
            .iter()
            .map(|f| f.entry.name.as_str())
            .chain(["manifest.json", "manifest.json.sig"])
        {
            let _ = std::fs::remove_file(summary.dir.join(f));
        }
        return Err(e.context("the release could not be recorded, so it was withdrawn"));
    }
    eprintln!(
        "released {} rows under {} version {} ({} selected, {} removed for opt-outs, {} without an NHS number) into {}",
        record.rows,
        current.id,
        current.version,
        counts.selected,
        counts.opted_out,
        counts.unverifiable,
        summary.dir.display()
    );
    println!("{release_id}");
    Ok(())
}

/// One released row as FHIR: a `Basic` resource with one extension per non-empty column.
/// The released values are generalised (`40-49`, `LS1`, `*`) and no longer fit the typed
/// elements of a Patient or Condition, so they are carried as strings under a URL naming
/// their column.
pub fn row_resource(release_id: &str, index: usize, header: &[String], row: &[&str]) -> Value {
    let extension: Vec<Value> = header
        .iter()
        .zip(row)
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| {
            serde_json::json!({
                "url": format!("{COLUMN_URL}/{name}"),
                "valueString": v,
            })
        })
        .collect();
    serde_json::json!({
        "resourceType": "Basic",
        "id": format!("{}-{}", release_id.to_ascii_lowercase(), index + 1),
        "code": { "text": "de-identified release row" },
        "extension": extension,
    })
}

/// The base of the extension URLs that carry released columns.
pub const COLUMN_URL: &str = "https://caldicott.invalid/fhir/StructureDefinition/release-column";

fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

const SIGNING_KEY: (&str, &str) = ("share-signing-key", "release");

/// The deployment's release-signing key, made on first use and kept sealed in the vault's
/// directory.
fn signing_key(o: &Opened) -> anyhow::Result<caldicott_share::output::SignerKey> {
    if let Some(e) = o.vault.dir_get(SIGNING_KEY.0, SIGNING_KEY.1)? {
        return Ok(caldicott_share::output::signing_key_from_bytes(&e.value)?);
    }
    let origin = crate::ledger_local::origin(&o.dir);
    let name = origin.replace("/audit", "/releases");
    let key = caldicott_share::output::generate_signing_key(&name)?;
    let bytes = caldicott_share::output::signing_key_to_bytes(&key);
    match o.vault.dir_put(SIGNING_KEY.0, SIGNING_KEY.1, &bytes, None) {
        Ok(_) => Ok(key),
        // Made by another process meanwhile: use theirs.
        Err(caldicott_vault::VaultError::Conflict { .. }) => {
            let e = o
                .vault
                .dir_get(SIGNING_KEY.0, SIGNING_KEY.1)?
                .context("the release signing key vanished")?;
            Ok(caldicott_share::output::signing_key_from_bytes(&e.value)?)
        }
        Err(e) => Err(e.into()),
    }
}
