//! `caldicott`: the one binary of a Caldicott deployment.
//!
//! This file parses the command line and wires the crates together; it holds no business
//! rules. Each subcommand is a small function that opens what it needs, does one job and
//! prints the outcome. Errors are printed as one line on stderr with a non-zero exit code.

#![forbid(unsafe_code)]

/// Prints a line to stdout, ignoring a closed pipe (`caldicott ... | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod admin;
mod aggregate_cmd;
mod audit_cmd;
mod config;
mod datadir;
mod import;
mod ledger_local;
mod ledger_remote;
mod mail;
mod mail_quarantine;
mod progress;
mod reindex;
mod serve;
mod share_cmd;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use caldicott_core::OdsCode;
use caldicott_vault::{KeyProvider, LocalKek, Vault};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::datadir::{DataDir, KeySource, MASTER_KEY_FILE, NEW_MASTER_KEY_FILE};

#[derive(Parser)]
#[command(
    name = "caldicott",
    version,
    about = "Secures patient data for health and social care."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a data directory: master key, TLS certificate, database and first administrator.
    Init {
        /// The data directory to create.
        #[arg(long)]
        data: PathBuf,
        /// PostgreSQL URL (postgres://user@host/db); default: SQLite inside the data directory.
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// ODS code of the organisation running this deployment.
        #[arg(long, default_value = "LOCAL")]
        ods: String,
        /// Name of the first administrator.
        #[arg(long, default_value = "admin")]
        admin: String,
        /// Address `serve` listens on.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Serves HTTPS (health and metrics now; the FHIR API and console as they arrive).
    Serve {
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on, e.g. 127.0.0.1:8443 (default from the configuration).
        #[arg(long)]
        listen: Option<String>,
        /// Serve plain HTTP instead of HTTPS: only allowed on a loopback address.
        #[arg(long)]
        plain_http: bool,
        /// PostgreSQL URL, overriding the configuration.
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
    /// A fresh temporary deployment with synthetic patients, served on localhost.
    Demo {
        /// Number of synthetic patients to load.
        #[arg(long, default_value_t = 200)]
        patients: usize,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
    },
    /// Writes synthetic UK patients (NHS numbers in the 999 test range) as FHIR R4 NDJSON.
    Synth {
        #[arg(long)]
        patients: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Loads NDJSON files of FHIR resources into the vault (safe to re-run after interruption).
    Import {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// De-identifies a CSV file: optimal full-domain generalisation to a privacy model
    /// (k-anonymity, ℓ-diversity, t-closeness, risk thresholds), with a JSON report and
    /// optionally an HTML one. Never leaves a partial output file.
    Anonymise {
        /// The CSV file to de-identify.
        #[arg(long)]
        input: PathBuf,
        /// The policy (TOML): identifiers, quasi-identifiers and hierarchies, privacy model.
        #[arg(long)]
        config: PathBuf,
        /// Where the policy's hierarchy CSV files are (default: beside the policy).
        #[arg(long)]
        hierarchies: Option<PathBuf>,
        /// The de-identified CSV to write.
        #[arg(long)]
        out: PathBuf,
        /// The JSON report to write.
        #[arg(long)]
        report: PathBuf,
        /// Also write the report as a self-contained HTML page (no scripts).
        #[arg(long, value_name = "FILE")]
        report_html: Option<PathBuf>,
    },
    /// Organisations of the deployment.
    Org {
        #[command(subcommand)]
        command: admin::OrgCommand,
    },
    /// Users.
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Break-glass declarations and their review by the Caldicott guardian.
    Breakglass {
        #[command(subcommand)]
        command: admin::BreakglassCommand,
    },
    /// National Data Opt-out and Type 1 opt-out lists.
    Optout {
        #[command(subcommand)]
        command: admin::OptoutCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Mail screening: offline scans and classifier training.
    Mail {
        #[command(subcommand)]
        command: mail::MailCommand,
    },
    /// The audit ledger: verify it, witness it, print its key.
    Ledger {
        #[command(subcommand)]
        cmd: ledger_remote::LedgerCommand,
    },
    /// The Caldicott guardian's reports from the audit ledger.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Safe sharing: data-sharing agreements and de-identified, encrypted releases.
    Share {
        #[command(subcommand)]
        command: share_cmd::ShareCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotates the master key (rewrapping every data key, data untouched), or with
    /// --data-keys starts new data keys and re-encrypts the records under them.
    Rotate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// Rotate the data keys instead of the master key.
        #[arg(long)]
        data_keys: bool,
        /// With --data-keys: only this organisation.
        #[arg(long)]
        org: Option<String>,
        /// With --data-keys: only start the new keys; `serve` (or `keys reencrypt`) moves the records.
        #[arg(long)]
        no_reencrypt: bool,
        /// With the master key in CALDICOTT_MASTER_KEY: where to write the new key (0600).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Continues re-encryption after a data-key rotation, with progress.
    Reencrypt {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
    /// Shows each organisation's data keys and how many records each protects.
    Status {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Applies pending schema migrations.
    Migrate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.command.data_dir());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the chain of causes; never a backtrace or a secret.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// The data directory a command works on, if any.
    fn data_dir(&self) -> Option<&Path> {
        match self {
            Command::Serve { data, .. } | Command::Import { data, .. } => Some(data),
            Command::Keys {
                command:
                    KeysCommand::Rotate { data, .. }
                    | KeysCommand::Reencrypt { data, .. }
                    | KeysCommand::Status { data, .. },
            } => Some(data),
            Command::Db {
                command: DbCommand::Migrate { data, .. },
            } => Some(data),
            Command::Org { command } => Some(command.data_dir()),
            Command::User { command } => Some(command.data_dir()),
            Command::Token { command } => Some(command.data_dir()),
            Command::Optout { command } => Some(command.data_dir()),
            Command::Breakglass { command } => Some(command.data_dir()),
            Command::Audit { command } => Some(command.data_dir()),
            Command::Share { command } => command.data_dir(),
            Command::Init { .. }
            | Command::Demo { .. }
            | Command::Synth { .. }
            | Command::Anonymise { .. }
            | Command::Mail { .. }
            | Command::Ledger { .. } => None,
        }
    }
}

/// Logs go to stderr, as text or JSON, filtered by level: from the data directory's
/// configuration when there is one, with `CALDICOTT_LOG` and `CALDICOTT_LOG_FORMAT`
/// overriding it.
fn init_logging(data: Option<&Path>) {
    use tracing_subscriber::EnvFilter;
    let mut log = config::Log::default();
    if let Some(c) = data.and_then(|d| Config::load(d).ok()) {
        log = c.log;
    } else {
        if let Ok(v) = std::env::var("CALDICOTT_LOG") {
            log.level = v;
        }
        if let Ok(v) = std::env::var("CALDICOTT_LOG_FORMAT") {
            log.format = v;
        }
    }
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = log.format == "json";
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn load(data: &Path, database: Option<String>) -> anyhow::Result<DataDir> {
    let mut dir = DataDir::load(data)?;
    if let Some(db) = database {
        dir.config.database = db;
    }
    Ok(dir)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data,
            database,
            ods,
            admin,
            listen,
        } => {
            let out = init(&data, database.as_deref(), &ods, &admin, listen.as_deref())?;
            print_init(&data, &out);
            Ok(())
        }
        Command::Serve {
            data,
            listen,
            plain_http,
            database,
        } => {
            let dir = load(&data, database)?;
            let tls = !plain_http;
            serve::serve(&dir, serve::ServeOptions { listen, plain_http }, |addr| {
                serve::announce(addr, tls, &data)
            })
        }
        Command::Demo { patients, listen } => demo(patients, &listen),
        Command::Synth {
            patients,
            seed,
            out,
        } => synth(patients, seed, &out),
        Command::Import {
            data,
            database,
            files,
        } => {
            let dir = load(&data, database)?;
            let vault = std::sync::Arc::new(dir.open_vault()?);
            reindex::ensure_current(&vault)?;
            let org = OdsCode::parse(&dir.config.organisation)?;
            let s = import::import_files(vault, &org, &files)?;
            print_import(&s);
            Ok(())
        }
        Command::Anonymise {
            input,
            config,
            hierarchies,
            out,
            report,
            report_html,
        } => {
            let policy = caldicott_deid::Policy::from_toml_file(&config)?;
            let r = caldicott_deid::anonymise_csv_html(
                &input,
                &policy,
                hierarchies.as_deref(),
                &out,
                &report,
                report_html.as_deref(),
            )?;
            let levels: Vec<String> = r
                .transformation
                .iter()
                .map(|q| format!("{}={}/{}", q.attribute, q.level, q.max_level))
                .collect();
            say!(
                "wrote {} rows to {} ({} suppressed); smallest class {}; transformation {}",
                r.rows_written,
                out.display(),
                r.records_suppressed,
                r.min_class_size,
                levels.join(" ")
            );
            say!(
                "searched {} of {} transformations in {:.1} ms; report in {}",
                r.search.nodes_checked,
                r.search.lattice_nodes,
                r.search.search_ms,
                report.display()
            );
            Ok(())
        }
        Command::Keys { command } => keys(command),
        Command::Mail { command } => mail::run(command),
        Command::Ledger { cmd } => ledger_remote::run(cmd),
        Command::Audit { command } => audit_cmd::run(command),
        Command::Share { command } => share_cmd::run(command),
        Command::Org { command } => admin::org(command),
        Command::User { command } => admin::user(command),
        Command::Token { command } => admin::token(command),
        Command::Optout { command } => admin::optout(command),
        Command::Breakglass { command } => admin::breakglass(command),
        Command::Db {
            command: DbCommand::Migrate { data, database },
        } => {
            let dir = load(&data, database)?;
            let backend = caldicott_vault::open_backend(&dir.database_location(), false)?;
            let applied = backend.migrate()?;
            if applied.is_empty() {
                say!("database {} is up to date", backend.location());
            } else {
                say!("applied migrations {applied:?} to {}", backend.location());
            }
            Ok(())
        }
    }
}

/// A GP user of the practice with the most patients in the demo file, and a token for
/// them: the demo's patients belong to their practices, and the API shows a user only the
/// patients they have a relationship with.
/// Adds the demo's GP at its largest practice; returns their one-time password (for the web
/// console) and a bearer token (for the API).
fn demo_gp(
    vault: &Arc<Vault>,
    file: &Path,
) -> anyhow::Result<(zeroize::Zeroizing<String>, zeroize::Zeroizing<String>)> {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(file)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["resourceType"] == "Patient"
            && let Some(ods) = v["managingOrganization"]["identifier"]["value"].as_str()
        {
            *counts.entry(ods.to_owned()).or_default() += 1;
        }
    }
    let ods = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(o, _)| o)
        .context("the demo data registers no patient with a practice")?;
    let ods = OdsCode::parse(&ods)?;
    let directory = caldicott_access::Directory::new(Arc::clone(vault));
    directory.add_org(&ods, "Demo practice")?;
    let (_, password) = directory.add_user("demo-gp", &ods, caldicott_policy::Role::Gp, None)?;
    let token = directory.issue_token(
        "demo-gp",
        &"user/*.*".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        caldicott_policy::Purpose::DirectCare,
        8 * 3600,
    )?;
    Ok((password, token))
}

/// What `init` made, for printing.
struct InitOutcome {
    admin: String,
    password: zeroize::Zeroizing<String>,
    key_file: Option<PathBuf>,
    database: String,
}

fn init(
    data: &Path,
    database: Option<&str>,
    ods: &str,
    admin: &str,
    listen: Option<&str>,
) -> anyhow::Result<InitOutcome> {
    let org = OdsCode::parse(ods).with_context(|| format!("--ods {ods:?}"))?;
    if data.join(config::CONFIG_FILE).exists() {
        bail!("{} is already a Caldicott data directory", data.display());
    }
    create_private_dir(data)?;
    let config = Config::new(org.as_str(), database, listen);
    let dir = DataDir {
        path: data.to_owned(),
        config: config.clone(),
    };
    let (kek, key_file): (Arc<dyn KeyProvider>, Option<PathBuf>) = match dir.key_source() {
        KeySource::Env => (dir.load_master_key()?, None),
        KeySource::File(path) => {
            let (kek, text) = LocalKek::generate()?;
            caldicott_vault::keys::write_key_file(&path, &text)?;
            (Arc::new(kek), Some(path))
        }
    };
    create_private_dir(&data.join("tls"))?;
    caldicott_server::generate_self_signed(
        &config.resolve(data, &config.tls.cert),
        &config.resolve(data, &config.tls.key),
        &["localhost".into(), "127.0.0.1".into(), "::1".into()],
    )?;
    let location = dir.database_location();
    let backend = caldicott_vault::open_backend(&location, true)?;
    backend.migrate()?;
    if backend.meta("deployment.organisation")?.is_some() {
        bail!(
            "the database at {} already holds a deployment; refusing to initialise over it",
            backend.location()
        );
    }
    backend.set_meta("deployment.organisation", org.as_str().as_bytes())?;
    let database_shown = backend.location();
    let vault = Arc::new(Vault::open(backend, kek)?);
    let directory = caldicott_access::Directory::new(Arc::clone(&vault));
    directory.add_org(&org, &format!("Organisation {org}"))?;
    let (_, password) = directory.add_user(admin, &org, caldicott_policy::Role::Sysadmin, None)?;
    // The audit ledger's signing key, sealed in the vault's directory.
    let ledger = caldicott_vault::Ledger::open(
        Arc::clone(&vault),
        &ledger_local::origin_of(config.public_url.as_deref(), &config.organisation),
    )?;
    ledger.publish()?;
    config.write_new(data)?;
    Ok(InitOutcome {
        admin: admin.to_owned(),
        password,
        key_file,
        database: database_shown,
    })
}

fn print_init(data: &Path, out: &InitOutcome) {
    say!("Initialised Caldicott data directory {}", data.display());
    say!("  database:   {}", out.database);
    match &out.key_file {
        Some(k) => say!(
            "  master key: {} (back it up offline: without it the data cannot be read)",
            k.display()
        ),
        None => say!("  master key: from CALDICOTT_MASTER_KEY"),
    }
    say!("First administrator (shown once, change it at first sign-in):");
    say!("  user:     {}", out.admin);
    say!("  password: {}", out.password.as_str());
}

fn create_private_dir(p: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(p)
        .with_context(|| format!("cannot create directory {}", p.display()))
}

fn synth(patients: usize, seed: u64, out: &Path) -> anyhow::Result<()> {
    let tmp = out.with_extension("ndjson.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let pb = progress::bar(patients as u64, "patients");
    let cfg = caldicott_synth::SynthConfig { patients, seed };
    let result = caldicott_synth::write_ndjson(&cfg, &file, |n| pb.set_position(n as u64));
    pb.finish_and_clear();
    let summary = match result.and_then(|s| file.sync_all().map(|_| s).map_err(Into::into)) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    say!(
        "wrote {} resources for {} synthetic patients (seed {seed}) to {}",
        summary.resources,
        summary.patients,
        out.display()
    );
    for (t, n) in &summary.by_type {
        say!("  {t:<20} {n}");
    }
    Ok(())
}

fn print_import(s: &import::ImportSummary) {
    say!(
        "imported {} resources in {:.1} s ({:.0}/s): {} created, {} updated, {} unchanged",
        s.total(),
        s.seconds,
        s.total() as f64 / s.seconds.max(1e-9),
        s.created,
        s.updated,
        s.unchanged
    );
    for (t, n) in &s.by_type {
        say!("  {t:<20} {n}");
    }
    if s.without_organisation > 0 {
        say!(
            "  {} resources had no known organisation and were filed under the deployment's",
            s.without_organisation
        );
    }
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate {
            data,
            database,
            data_keys: true,
            org,
            no_reencrypt,
            ..
        } => {
            let dir = load(&data, database)?;
            let vault = dir.open_vault()?;
            let orgs: Vec<String> = match org {
                Some(o) => vec![OdsCode::parse(&o)?.to_string()],
                None => vault.organisations(),
            };
            for o in &orgs {
                let v = vault.rotate_data_key(&OdsCode::parse(o)?)?;
                say!("organisation {o}: new data key v{v} is active");
            }
            if no_reencrypt {
                say!(
                    "records will be re-encrypted in the background by `caldicott serve`, or now by `caldicott keys reencrypt`"
                );
                Ok(())
            } else {
                reencrypt(&vault)
            }
        }
        KeysCommand::Rotate {
            data,
            database,
            new_key_file,
            ..
        } => {
            let dir = load(&data, database)?;
            rotate_master_key(&dir, new_key_file)
        }
        KeysCommand::Reencrypt { data, database } => {
            let dir = load(&data, database)?;
            reencrypt(&dir.open_vault()?)
        }
        KeysCommand::Status { data, database } => {
            let dir = load(&data, database)?;
            let vault = dir.open_vault()?;
            say!("master key id: {}", dir.load_master_key()?.kek_id());
            say!(
                "{:<12} {:>10} {:>14} {:>14}",
                "organisation",
                "active key",
                "records",
                "to re-encrypt"
            );
            for s in vault.key_status()? {
                let total: u64 = s.records_per_key.values().sum();
                say!(
                    "{:<12} {:>10} {:>14} {:>14}",
                    s.org,
                    format!("v{}", s.active_version),
                    total,
                    s.stale()
                );
            }
            Ok(())
        }
    }
}

fn rotate_master_key(dir: &DataDir, new_key_file: Option<PathBuf>) -> anyhow::Result<()> {
    let mut vault = dir.open_vault()?;
    let (new_kek, text) = LocalKek::generate()?;
    let new_kek = Arc::new(new_kek);
    match dir.key_source() {
        KeySource::File(current) => {
            // Write the new key first, so that whatever happens the key that wraps the data
            // keys is on disk: if we stop after the database commit, the next start finds
            // master.key.new and completes the rename.
            let staged = dir.path.join(NEW_MASTER_KEY_FILE);
            if staged.exists() {
                std::fs::remove_file(&staged)
                    .with_context(|| format!("cannot remove stale {}", staged.display()))?;
            }
            caldicott_vault::keys::write_key_file(&staged, &text)?;
            let n = vault.rotate_master_key(new_kek.clone())?;
            datadir::replace_key_file(&staged, &current)?;
            say!(
                "rewrapped {n} data keys under the new master key {}",
                new_kek.kek_id()
            );
            say!(
                "{} now holds the new key; destroy every copy of the old one",
                dir.path.join(MASTER_KEY_FILE).display()
            );
        }
        KeySource::Env => {
            let out = new_key_file.context(
                "the master key comes from CALDICOTT_MASTER_KEY: give --new-key-file PATH to receive the new key",
            )?;
            caldicott_vault::keys::write_key_file(&out, &text)?;
            let n = vault.rotate_master_key(new_kek.clone())?;
            say!(
                "rewrapped {n} data keys under the new master key {}",
                new_kek.kek_id()
            );
            say!(
                "the new key is in {}: put it in CALDICOTT_MASTER_KEY before the next start",
                out.display()
            );
        }
    }
    Ok(())
}

fn reencrypt(vault: &Vault) -> anyhow::Result<()> {
    for s in vault.key_status()? {
        let org = OdsCode::parse(&s.org)?;
        let pb = progress::bar(s.stale(), &format!("records of {}", s.org));
        let mut done = 0u64;
        loop {
            let n = vault.reencrypt_step(&org, 1_000, &caldicott_api::store::indexer)?;
            if n == 0 {
                break;
            }
            done += n as u64;
            pb.set_position(done);
        }
        pb.finish_and_clear();
        say!(
            "organisation {}: re-encrypted {done} record versions under data key v{}",
            s.org,
            s.active_version
        );
    }
    Ok(())
}

fn demo(patients: usize, listen: &str) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("caldicott-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let data = tmp.path().join("data");
    // The demo keeps its master key in the data directory, whatever the environment says.
    if std::env::var_os(datadir::MASTER_KEY_ENV).is_some() {
        bail!("unset CALDICOTT_MASTER_KEY to run the demo (it makes its own throwaway key)");
    }
    let out = init(&data, None, "LOCAL", "admin", Some(listen))?;
    say!(
        "Demo data directory: {} (deleted when the demo stops)",
        data.display()
    );
    let file = tmp.path().join("patients.ndjson");
    synth(patients, 1, &file)?;
    let dir = DataDir::load(&data)?;
    let vault = std::sync::Arc::new(dir.open_vault()?);
    reindex::ensure_current(&vault)?;
    let s = import::import_files(Arc::clone(&vault), &OdsCode::parse("LOCAL")?, &[&file])?;
    print_import(&s);
    let (gp_password, token) = demo_gp(&vault, &file)?;
    say!("");
    say!("Open the web console at https://localhost:PORT/ (the port is printed below; the");
    say!("certificate is self-signed) and sign in with a one-time password: you will choose");
    say!("a new password and set up an authenticator app (TOTP), as every user must.");
    say!(
        "  administrator: `{}`, one-time password {}",
        out.admin,
        out.password.as_str()
    );
    say!(
        "  GP of the largest practice: `demo-gp`, one-time password {}",
        gp_password.as_str()
    );
    say!("A GP of the demo's largest practice may read its patients through the FHIR API, e.g.:");
    say!(
        "  curl -k -H 'Authorization: Bearer {}' 'https://localhost:PORT/fhir/Patient?_count=5'",
        token.as_str()
    );
    let listen_addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?}"))?;
    let listen = if std::net::TcpListener::bind(listen_addr).is_ok() {
        listen.to_owned()
    } else {
        say!("{listen} is in use; choosing a free port instead");
        format!("{}:0", listen_addr.ip())
    };
    serve::serve(
        &dir,
        serve::ServeOptions {
            listen: Some(listen),
            plain_http: false,
        },
        |addr| serve::announce(addr, true, &data),
    )
}
