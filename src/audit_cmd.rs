//! `caldicott audit`: the Caldicott guardian's reports from the audit ledger, on the
//! command line: who looked at a patient's record, and the review queries (break-glass,
//! after hours, possible relatives, unusual volumes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use caldicott_api::Store;
use caldicott_audit::review::{self, PatientProfile, StaffProfile, VolumeParams, WorkingHours};
use caldicott_audit::{AuditEvent, EventKind, Outcome};
use caldicott_core::{NhsNumber, ResourceType};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Who looked at a patient's record: every access, with who, organisation, role, when,
    /// why and whether it was break-glass, each with an inclusion proof.
    Patient {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The patient's NHS number.
        #[arg(long)]
        nhs_number: String,
        /// Write the report as an HTML page here (else the FHIR Bundle goes to stdout).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Write the report as a PDF here (for a patient who asked by letter).
        #[arg(long)]
        pdf: Option<PathBuf>,
        /// Write the FHIR Bundle here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The review queries over the ledger: break-glass use, access after hours, possible
    /// relatives or neighbours, and users reading unusually many patients.
    Review {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// Only events of the last this many days.
        #[arg(long, default_value_t = 28)]
        days: u32,
        /// Staff family names and addresses (CSV with header `user,family_name,postcode,address_line`),
        /// for the relatives query.
        #[arg(long)]
        staff: Option<PathBuf>,
        /// Write the findings as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

impl AuditCommand {
    pub fn data_dir(&self) -> &Path {
        match self {
            AuditCommand::Patient { data, .. } | AuditCommand::Review { data, .. } => data,
        }
    }
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Patient {
            data,
            database,
            nhs_number,
            html,
            pdf,
            json,
        } => patient(&data, database, &nhs_number, html, pdf, json),
        AuditCommand::Review {
            data,
            database,
            days,
            staff,
            json,
        } => review_cmd(&data, database, days, staff, json),
    }
}

fn cli_event(org: &str, action: &str, patients: Vec<String>, reason: &str) -> AuditEvent {
    let mut e = caldicott_api::audit::security_event(
        EventKind::AuditRead,
        action,
        "cli",
        org,
        "caldicott-guardian",
        &caldicott_api::audit::Origin::default(),
        Outcome::Permit,
        reason,
        caldicott_vault::now_micros(),
    );
    e.purpose = "audit".into();
    e.patients = patients;
    e
}

fn patient(
    data: &Path,
    database: Option<String>,
    nhs_number: &str,
    html: Option<PathBuf>,
    pdf: Option<PathBuf>,
    json: Option<PathBuf>,
) -> anyhow::Result<()> {
    let nhs = NhsNumber::parse(nhs_number).context("--nhs-number is not a valid NHS number")?;
    let dir = crate::load(data, database)?;
    let vault = Arc::new(dir.open_vault()?);
    let ledger = crate::ledger_local::open(&dir, Arc::clone(&vault))?;
    let org = caldicott_core::OdsCode::parse(&dir.config.organisation)?;
    let store = Store::new(Arc::clone(&vault), org);
    let directory = caldicott_access::Directory::new(Arc::clone(&vault));
    let found = caldicott_api::search::matching(
        &store,
        &ResourceType::new("Patient")?,
        &format!(
            "identifier=https://fhir.nhs.uk/Id/nhs-number|{}",
            nhs.as_str()
        ),
        2,
    )
    .map_err(|e| anyhow::anyhow!("cannot look the patient up: {e}"))?;
    let patient = match found.as_slice() {
        [p] => p,
        [] => anyhow::bail!("no patient with that NHS number is held here"),
        _ => anyhow::bail!("more than one patient record carries that NHS number"),
    };
    let patient_ref = format!("Patient/{}", patient.id);
    let pseudonym = caldicott_api::auditlog::patient_pseudonym(&store, &patient_ref)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The report is itself an access to the audit trail about this patient.
    ledger.append(vec![caldicott_api::audit::leaf_of(&cli_event(
        &dir.config.organisation,
        "access-report",
        vec![pseudonym],
        "patient access report from the command line",
    ))])?;
    let (header, entries) = caldicott_api::auditlog::patient_report(
        &store,
        &ledger,
        &directory,
        &patient_ref,
        nhs.to_string(),
        100_000,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bundle = caldicott_audit::report::to_bundle(&header, &entries);
    let text = serde_json::to_string_pretty(&bundle)?;
    if let Some(p) = &html {
        write_private(
            p,
            caldicott_audit::report::to_html(&header, &entries).as_bytes(),
        )?;
        eprintln!(
            "{} accesses; report written to {}",
            entries.len(),
            p.display()
        );
    }
    if let Some(p) = &pdf {
        write_private(p, &caldicott_audit::pdf::to_pdf(&header, &entries))?;
        eprintln!(
            "{} accesses; PDF report written to {}",
            entries.len(),
            p.display()
        );
    }
    match &json {
        Some(p) => write_private(p, text.as_bytes())?,
        None if html.is_none() && pdf.is_none() => println!("{text}"),
        None => {}
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    {
        use std::io::Write as _;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn review_cmd(
    data: &Path,
    database: Option<String>,
    days: u32,
    staff: Option<PathBuf>,
    json: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = crate::load(data, database)?;
    let vault = Arc::new(dir.open_vault()?);
    let ledger = crate::ledger_local::open(&dir, Arc::clone(&vault))?;
    let since = caldicott_vault::now_micros() - i64::from(days) * 86_400_000_000;
    // The events of the period, every epoch.
    let mut events: Vec<(u32, u64, AuditEvent)> = Vec::new();
    for e in ledger.epochs()? {
        let mut start = 0;
        while start < e.size {
            let end = (start + 10_000).min(e.size);
            for leaf in ledger.leaves(e.epoch, start, end)? {
                if leaf.at_us < since {
                    continue;
                }
                let ev = AuditEvent::from_leaf(&leaf.data)
                    .with_context(|| format!("audit entry {}-{}", e.epoch, leaf.idx))?;
                events.push((e.epoch, leaf.idx, ev));
            }
            start = end;
        }
    }
    let refs = || events.iter().map(|(e, i, ev)| (*e, *i, ev));
    let mut findings = review::break_glass_uses(refs());
    findings.extend(review::after_hours(refs(), &WorkingHours::default()));
    findings.extend(review::unusual_volume(refs(), &VolumeParams::default()));
    if let Some(path) = &staff {
        let staff = read_staff(path)?;
        let org = caldicott_core::OdsCode::parse(&dir.config.organisation)?;
        let store = Store::new(Arc::clone(&vault), org);
        let patients = patient_profiles(&store)?;
        findings.extend(review::relatives(refs(), &staff, |p| {
            patients.get(p).cloned()
        }));
    }
    let report = review::ReviewReport::new(findings);
    ledger.append(vec![caldicott_api::audit::leaf_of(&cli_event(
        &dir.config.organisation,
        "review",
        Vec::new(),
        &format!("review of the last {days} days"),
    ))])?;
    print!("{}", report.to_text());
    for f in &report.findings {
        // One alert line per finding, for whatever watches the log.
        tracing::warn!(target: "caldicott::alert", kind = ?f.kind, user = %f.user, at_us = f.at_us, "audit review finding");
    }
    if let Some(p) = &json {
        write_private(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}

fn read_staff(path: &Path) -> anyhow::Result<BTreeMap<String, StaffProfile>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [user, family, postcode, address] = cols.as_slice() else {
            anyhow::bail!(
                "{} line {}: expected 4 columns: user,family_name,postcode,address_line",
                path.display(),
                n + 1
            );
        };
        out.insert(
            (*user).to_owned(),
            StaffProfile {
                family_name: (*family).to_owned(),
                postcode: Some((*postcode).to_owned()).filter(|s| !s.is_empty()),
                address_line: Some((*address).to_owned()).filter(|s| !s.is_empty()),
            },
        );
    }
    Ok(out)
}

/// Every patient's family name and address, by audit pseudonym.
fn patient_profiles(store: &Store) -> anyhow::Result<BTreeMap<String, PatientProfile>> {
    let patient = ResourceType::new("Patient")?;
    let mut out = BTreeMap::new();
    for org in store.organisations() {
        let mut after = None;
        loop {
            let batch = store.vault().scan(&org, &patient, after.as_ref(), 1000)?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            for r in &batch {
                let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                let family = v["name"][0]["family"].as_str().unwrap_or("").to_owned();
                let postcode = v["address"][0]["postalCode"].as_str().map(str::to_owned);
                let line = v["address"][0]["line"][0].as_str().map(str::to_owned);
                let pseudonym =
                    caldicott_api::auditlog::patient_pseudonym(store, &format!("Patient/{}", r.id))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                out.insert(
                    pseudonym,
                    PatientProfile {
                        family_name: family,
                        postcode,
                        address_line: line,
                    },
                );
            }
        }
    }
    Ok(out)
}
