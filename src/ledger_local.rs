//! The audit ledger of the local data directory: opening it (its checkpoint origin comes
//! from the configuration), printing its verifier key, verifying it end to end, and
//! sealing an epoch.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use caldicott_audit::AuditEvent;
use caldicott_vault::{Ledger, Vault};

use crate::datadir::DataDir;

/// The log's origin: the host of the public URL (or the organisation's code under
/// `caldicott.invalid`), then `/audit`. It names the log in every checkpoint.
pub fn origin(dir: &DataDir) -> String {
    origin_of(dir.config.public_url.as_deref(), &dir.config.organisation)
}

/// [`origin`] from the public URL and the organisation's code.
pub fn origin_of(public_url: Option<&str>, organisation: &str) -> String {
    let host = public_url
        .and_then(|u| u.split("://").nth(1))
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}.caldicott.invalid", organisation.to_ascii_lowercase()));
    format!("{host}/audit")
}

/// The data directory, with the database from `CALDICOTT_DATABASE` when set.
fn load(data: &Path) -> anyhow::Result<DataDir> {
    crate::load(data, std::env::var("CALDICOTT_DATABASE").ok())
}

/// `caldicott ledger seal`: closes the current epoch with a final signed checkpoint and
/// opens the next, whose first entry records the seal. Retention then applies to whole
/// sealed epochs (see docs/audit.md); the log itself is never edited.
pub fn seal(data: &Path) -> anyhow::Result<String> {
    let dir = load(data)?;
    let ledger = open(&dir, Arc::new(dir.open_vault()?))?;
    // The record is the new epoch's first entry, written in the transaction that seals:
    // `ledger verify --url` and `ledger witness` check the link between the epochs by it.
    let (epoch, note) = ledger
        .seal_with(|sealed, size, root| {
            let mut event = caldicott_api::audit::security_event(
                caldicott_audit::EventKind::Admin,
                "ledger-seal",
                "cli",
                &dir.config.organisation,
                "sysadmin",
                &caldicott_api::audit::Origin::default(),
                caldicott_audit::Outcome::Permit,
                &format!(
                    "epoch {sealed} sealed at {size} entries, root {}",
                    root.to_base64()
                ),
                caldicott_vault::now_micros(),
            );
            event.purpose = "audit".into();
            caldicott_api::audit::leaf_of(&event)
        })
        .context("cannot seal the audit ledger's epoch")?;
    ledger.publish()?;
    Ok(format!(
        "epoch {} sealed; new entries go to epoch {epoch}. Final checkpoint of the sealed epoch:\n{note}",
        epoch - 1
    ))
}

/// Opens (creating its key the first time) the ledger of an opened vault.
pub fn open(dir: &DataDir, vault: Arc<Vault>) -> anyhow::Result<Arc<Ledger>> {
    Ledger::open(vault, &origin(dir)).context("cannot open the audit ledger")
}

/// `caldicott ledger key`: the verifier key in signed-note `vkey` form.
pub fn key(data: &Path) -> anyhow::Result<String> {
    let dir = load(data)?;
    let ledger = open(&dir, Arc::new(dir.open_vault()?))?;
    Ok(ledger.verifier_key().to_string())
}

/// `caldicott ledger verify --data`: recomputes every hash from the leaves, checks every
/// checkpoint and every leaf's format, and names the first bad entry.
pub fn verify_data(data: &Path) -> anyhow::Result<String> {
    let dir = load(data)?;
    let ledger = open(&dir, Arc::new(dir.open_vault()?))?;
    let started = std::time::Instant::now();
    let report = verify_and_record(&ledger, &|n| {
        if n % 1_000_000 == 0 {
            eprintln!("verified {n} entries");
        }
    })?
    .map_err(|e| anyhow::anyhow!("the audit ledger is NOT intact: {e}"))?;
    Ok(format!(
        "the audit ledger is intact: {} entries in {} epoch(s), {} signed checkpoints verified in {:.1} s; verifier key {}",
        report.entries,
        report.epochs,
        report.checkpoints,
        started.elapsed().as_secs_f64(),
        ledger.verifier_key()
    ))
}

/// Verifies the whole ledger (every hash from the leaves, every checkpoint, every leaf
/// parsed as an audit event) and records the outcome in the vault, where the console's home
/// page reads when the ledger was last proved intact. `Err` only when it cannot be read (or
/// the outcome cannot be recorded).
pub fn verify_and_record(
    ledger: &caldicott_vault::Ledger,
    progress: &dyn Fn(u64),
) -> anyhow::Result<Result<caldicott_vault::VerifyReport, caldicott_vault::VerifyError>> {
    let check = |leaf: &[u8]| {
        AuditEvent::from_leaf(leaf)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let outcome = ledger
        .verify(&check, progress)
        .context("cannot read the audit ledger")?;
    ledger
        .record_verification(&caldicott_vault::Verification::of(
            &outcome,
            caldicott_vault::now_micros(),
        ))
        .context("cannot record the verification's outcome")?;
    Ok(outcome)
}

/// What a command-line administrative action records: who did it, to what, why.
pub struct AdminAction<'a> {
    /// The acting user, from the access directory.
    pub by: &'a caldicott_access::User,
    /// The event's action, e.g. `agreement-approve`, `mail-release`.
    pub action: &'a str,
    /// What was acted on: its kind (`DataSharingAgreement`, `MailMessage`) and id.
    pub rtype: &'a str,
    pub id: &'a str,
    /// The purpose recorded with the event.
    pub purpose: &'a str,
    /// Why, in words (never a patient's data or a message's content).
    pub reason: &'a str,
}

/// Appends an `admin` event for an action taken on the command line, before the command
/// reports success: what the command line changes is in the ledger like what the API does.
pub fn record_admin(dir: &DataDir, vault: &Arc<Vault>, a: &AdminAction<'_>) -> anyhow::Result<()> {
    let ledger = open(dir, Arc::clone(vault))?;
    let mut e = caldicott_api::audit::security_event(
        caldicott_audit::EventKind::Admin,
        a.action,
        &a.by.name,
        &a.by.org,
        &a.by.role,
        &caldicott_api::audit::Origin::default(),
        caldicott_audit::Outcome::Permit,
        a.reason,
        caldicott_vault::now_micros(),
    );
    e.rtype = Some(a.rtype.to_owned());
    e.id = Some(a.id.to_owned());
    e.purpose = a.purpose.to_owned();
    ledger
        .append(vec![caldicott_api::audit::leaf_of(&e)])
        .context("cannot record the action in the audit ledger")?;
    Ok(())
}
