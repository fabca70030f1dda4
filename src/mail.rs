//! `caldicott mail`: offline screening (`scan`), training the classifier (`train`), the
//! SMTP gateway (`serve`, `hash-password`) and its quarantine (`quarantine`, in
//! `mail_quarantine.rs`).
//!
//! The engine is `caldicott-mail`; this module only finds files, reads them under the
//! configured size limit, runs the scanner on all cores and prints. `scan` never looks
//! anything up (it builds no resolver, whatever `[dns]` says) — its one conversation is with
//! a local clamd when `[clamav]` is configured; `serve` verifies senders through `[dns]`, and
//! `check-dns` queries it (or `--nameserver`).

use std::collections::BTreeMap;
use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, bail};
use caldicott_mail::{BayesModel, MailConfig, Scanner, Symbol, Trainer, Verdict};
use clap::Subcommand;
use serde::Serialize;

#[derive(Subcommand)]
pub enum MailCommand {
    /// Screens messages offline: one JSON object per message per line (path, verdict, score,
    /// symbols), in the order given (directories sorted, recursively).
    Scan {
        /// A model written by `caldicott mail train` (without one the classifier is off).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Screening configuration (TOML); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Message files (.eml) or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Trains the per-site classifier from directories of ham and spam and writes the model.
    Train {
        /// Directory (or file) of legitimate mail; repeatable.
        #[arg(long, required_unless_present = "quarantine_feedback")]
        ham: Vec<PathBuf>,
        /// Directory (or file) of spam; repeatable.
        #[arg(long, required_unless_present = "quarantine_feedback")]
        spam: Vec<PathBuf>,
        /// Where to write the model (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Screening configuration (TOML), for its limits.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Keep features seen in at least this many training messages.
        #[arg(long, default_value_t = 2)]
        min_count: u32,
        /// A Caldicott data directory: messages marked not spam in its mail quarantine
        /// (`mail quarantine mark-not-spam`) are added as ham, and inbound messages deleted
        /// from it (`mail quarantine delete` without `--no-feedback`) as spam.
        #[arg(long)]
        quarantine_feedback: Option<PathBuf>,
    },
    /// The gateway's quarantine (sealed in the vault): list, show, release, delete,
    /// mark-not-spam, digest.
    Quarantine {
        #[command(subcommand)]
        command: crate::mail_quarantine::QuarantineCommand,
    },
    /// Runs the SMTP gateway of the configuration's `[gateway]` section: receives, screens,
    /// queues (durably) and relays mail to the next hop. Runs until SIGTERM or Ctrl-C.
    Serve {
        /// Configuration (TOML) with a `[gateway]` section.
        #[arg(long)]
        config: PathBuf,
        /// A model written by `caldicott mail train` (without one the classifier is off).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Reads a password from standard input and prints its Argon2id hash, for
    /// `[[gateway.users]] password_hash`.
    HashPassword,
    /// Says which SPF, DKIM, DMARC, MTA-STS and TLS-RPT records a domain should publish,
    /// looks up what it publishes, and whether each is right, missing or wrong and why.
    /// Exit status 1 when something is missing or wrong.
    CheckDns {
        /// The mail domain, e.g. sunnyvale-care.co.uk.
        domain: String,
        /// The DKIM selector to check (`<selector>._domainkey.<domain>`).
        #[arg(long)]
        selector: Option<String>,
        /// The gateway's public host name (the MX; SPF must allow it).
        #[arg(long)]
        mx_host: Option<String>,
        /// The gateway's DKIM private key (PEM): the published key must match it.
        #[arg(long)]
        dkim_key: Option<PathBuf>,
        /// Where DMARC aggregate reports should go (default dmarc-reports@DOMAIN).
        #[arg(long)]
        rua: Option<String>,
        /// Configuration (TOML) whose `[dns]` names the resolver.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A nameserver (IP or IP:port) instead of the configuration's; repeatable.
        #[arg(long)]
        nameserver: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: MailCommand) -> anyhow::Result<()> {
    match command {
        MailCommand::Scan {
            model,
            config,
            threads,
            paths,
        } => scan(model.as_deref(), config.as_deref(), threads, &paths),
        MailCommand::Train {
            ham,
            spam,
            out,
            config,
            min_count,
            quarantine_feedback,
        } => {
            let feedback = match &quarantine_feedback {
                Some(d) => crate::mail_quarantine::feedback(d)?,
                None => crate::mail_quarantine::Feedback {
                    ham: Vec::new(),
                    spam: Vec::new(),
                },
            };
            train(&ham, &spam, &out, config.as_deref(), min_count, &feedback)
        }
        MailCommand::Quarantine { command } => crate::mail_quarantine::run(command),
        MailCommand::Serve { config, model } => serve(&config, model.as_deref()),
        MailCommand::CheckDns {
            domain,
            selector,
            mx_host,
            dkim_key,
            rua,
            config,
            nameserver,
            json,
        } => check_dns(
            caldicott_mail::checkdns::CheckOptions {
                domain,
                selector,
                mx_host,
                dkim_key_pem: dkim_key
                    .map(|p| std::fs::read(&p).with_context(|| format!("reading {}", p.display())))
                    .transpose()?,
                rua,
            },
            config.as_deref(),
            nameserver,
            json,
        ),
        MailCommand::HashPassword => {
            let mut pw = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut pw)?;
            let hash =
                caldicott_mail::smtp::hash_password(pw.trim_end_matches(['\r', '\n']).as_bytes())
                    .map_err(anyhow::Error::msg)?;
            say!("{hash}");
            Ok(())
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<MailConfig> {
    let Some(path) = path else {
        return Ok(MailConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(MailConfig::from_toml_str(&text)?)
}

fn load_model(path: &Path) -> anyhow::Result<BayesModel> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    BayesModel::from_bytes(&bytes).with_context(|| format!("loading {}", path.display()))
}

/// Files under the given paths: files as given, directories walked recursively in name order
/// (hidden entries skipped).
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            walk(&e, out)?;
        } else if e.is_file() {
            out.push(e);
        }
    }
    Ok(())
}

/// Reads at most `limit + 1` bytes: enough for the scanner to see that a message is too large
/// without holding a huge file in memory.
fn read_limited(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[derive(Serialize)]
struct Line<'a> {
    path: &'a str,
    verdict: Verdict,
    score: f64,
    symbols: &'a [Symbol],
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    path: &'a str,
    error: String,
}

fn scan(
    model: Option<&Path>,
    config: Option<&Path>,
    threads: Option<usize>,
    paths: &[PathBuf],
) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let model = model.map(load_model).transpose()?;
    let scanner = Scanner::new(config, model)?;
    let files = collect_files(paths)?;
    let limit = scanner.config().limits.max_message_bytes;
    let workers = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .clamp(1, 64);
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, Option<Verdict>, String)>(1024);
    let mut tally: BTreeMap<Verdict, usize> = BTreeMap::new();
    let mut errors = 0usize;
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (files, scanner, next) = (&files, &scanner, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let shown = path.display().to_string();
                    let (verdict, line) = match read_limited(path, limit) {
                        Ok(raw) => {
                            let r = scanner.scan(&raw);
                            let line = serde_json::to_string(&Line {
                                path: &shown,
                                verdict: r.verdict,
                                score: r.score,
                                symbols: &r.symbols,
                            });
                            (Some(r.verdict), line)
                        }
                        Err(e) => (
                            None,
                            serde_json::to_string(&ErrorLine {
                                path: &shown,
                                error: e.to_string(),
                            }),
                        ),
                    };
                    let line = line.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
                    if tx.send((i, verdict, line)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Print in input order.
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        let mut closed = false;
        for (i, verdict, line) in rx {
            match verdict {
                Some(v) => *tally.entry(v).or_default() += 1,
                None => errors += 1,
            }
            pending.insert(i, line);
            while let Some(line) = pending.remove(&want) {
                want += 1;
                if !closed && writeln!(out, "{line}").is_err() {
                    // A closed pipe (`| head`): keep draining, stop writing.
                    closed = true;
                }
            }
        }
        let _ = out.flush();
    });
    let secs = start.elapsed().as_secs_f64();
    let n = files.len();
    let counts: Vec<String> = [
        Verdict::Accept,
        Verdict::Tag,
        Verdict::Quarantine,
        Verdict::Reject,
    ]
    .iter()
    .map(|v| format!("{v} {}", tally.get(v).copied().unwrap_or(0)))
    .collect();
    let _ = writeln!(
        std::io::stderr(),
        "scanned {n} messages in {secs:.2} s ({:.0} msg/s, {workers} threads): {}",
        n as f64 / secs.max(1e-9),
        counts.join(", ")
    );
    if errors > 0 {
        bail!("{errors} of {n} files could not be read");
    }
    Ok(())
}

fn train(
    ham: &[PathBuf],
    spam: &[PathBuf],
    out: &Path,
    config: Option<&Path>,
    min_count: u32,
    feedback: &crate::mail_quarantine::Feedback,
) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let limit = config.limits.max_message_bytes;
    let scanner = Scanner::new(config, None)?;
    let mut trainer = Trainer::new();
    let mut skipped = 0usize;
    for (dirs, is_spam) in [(ham, false), (spam, true)] {
        for path in collect_files(dirs)? {
            let raw = read_limited(&path, limit)
                .with_context(|| format!("reading {}", path.display()))?;
            match scanner.features(&raw) {
                Some(f) => trainer.add(&f, is_spam),
                None => skipped += 1,
            }
        }
    }
    // The privacy officer's decisions: messages marked not spam are the mistakes the model
    // should unlearn; inbound messages deleted as spam, the ones it should learn.
    for (messages, is_spam) in [(&feedback.ham, false), (&feedback.spam, true)] {
        for raw in messages {
            match scanner.features(&raw[..raw.len().min(limit + 1)]) {
                Some(f) => trainer.add(&f, is_spam),
                None => skipped += 1,
            }
        }
    }
    if !feedback.ham.is_empty() {
        say!(
            "{} message(s) marked not spam added as ham",
            feedback.ham.len()
        );
    }
    if !feedback.spam.is_empty() {
        say!(
            "{} message(s) deleted from the quarantine added as spam",
            feedback.spam.len()
        );
    }
    let (nham, nspam) = trainer.trained();
    if nham == 0 || nspam == 0 {
        bail!("need at least one ham and one spam message (got {nham} ham, {nspam} spam)");
    }
    let model = trainer.finish(min_count);
    let bytes = model.to_bytes();
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(&bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(out)
        .with_context(|| format!("writing {}", out.display()))?;
    say!(
        "trained on {nham} ham and {nspam} spam messages ({skipped} unparseable skipped); \
         {} features; wrote {} bytes ({:.1} KiB) to {}",
        model.len(),
        bytes.len(),
        bytes.len() as f64 / 1024.0,
        out.display()
    );
    Ok(())
}

fn serve(config_path: &Path, model: Option<&Path>) -> anyhow::Result<()> {
    use caldicott_mail::smtp::{FsQuarantine, Gateway, ScannerScreen};
    use std::sync::Arc;
    let config = load_config(Some(config_path))?;
    let Some(gateway) = config.gateway.clone() else {
        bail!("{} has no [gateway] section", config_path.display());
    };
    let model = model.map(load_model).transpose()?;
    let mail_config = config.clone();
    // The virus scanner answers before mail arrives, or the log says what will happen to it.
    if let Some(c) = &config.clamav {
        match caldicott_mail::clamav::health_check(c) {
            Ok(version) => say!("ClamAV: {version}"),
            Err(e) => tracing::error!(
                error = %e,
                on_error = c.on_error.as_str(),
                "clamd does not answer: messages follow clamav.on_error until it does"
            ),
        }
    }
    let scanner = Arc::new(Scanner::new(config, model)?);
    // The daily digest and purge of `[gateway.quarantine]`, checked before mail arrives.
    let mut schedule = None;
    let quarantine: Arc<dyn caldicott_mail::smtp::Quarantine> = match &gateway.data {
        Some(data) => {
            let dir = crate::load(data, std::env::var("CALDICOTT_DATABASE").ok())?;
            let vault = Arc::new(dir.open_vault()?);
            // The web console releases quarantined mail into this gateway's queue: tell it
            // where that is (an absolute path, as the console may run elsewhere).
            let queue = std::path::absolute(&gateway.queue_dir)
                .with_context(|| format!("resolving {}", gateway.queue_dir.display()))?;
            caldicott_console::mail::register_gateway(&vault, &queue)
                .context("recording the queue directory for the web console")?;
            let q = Arc::new(caldicott_mail::quarantine::VaultQuarantine::new(
                Arc::clone(&vault),
            ));
            if let Some(s) = &gateway.quarantine {
                let opened = crate::mail_quarantine::Opened::new(dir, vault);
                schedule = Some(crate::mail_quarantine::schedule::Job::new(
                    opened, &gateway, s,
                )?);
            }
            q
        }
        None => {
            tracing::warn!(
                "gateway.quarantine_dir: quarantined mail is stored UNENCRYPTED; give gateway.data in production"
            );
            Arc::new(
                FsQuarantine::new(&gateway.quarantine_dir)
                    .with_context(|| format!("creating {}", gateway.quarantine_dir.display()))?,
            )
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let gw = Gateway::bind(&gateway, Arc::new(ScannerScreen(scanner)), quarantine)
            .await?
            // Partners with tls = "dane"/"mta-sts" look their MX hosts up through [dns].
            .with_dns(mail_config.dns.as_ref())?;
        // Sender authentication (with [dns]) and DKIM signing (with [[auth.sign]]) wrap the
        // whole screen: only the outermost screen's header fields reach the message.
        let auth = caldicott_mail::auth::AuthLayer::new(&mail_config, &gateway.hostname)?;
        if !auth.verifies() {
            tracing::warn!("no [dns] resolver: SPF, DKIM, DMARC and ARC are not checked");
        }
        let gw = gw.wrap_screen(|inner| Arc::new(auth.wrap(inner)));
        if let Some(job) = schedule {
            say!("Caldicott mail quarantine: {}", job.describe());
            job.spawn(crate::mail_quarantine::schedule::SystemClock)?;
        }
        say!("Caldicott mail gateway inbound at {}", gw.inbound_addr()?);
        if let Some(a) = gw.submission_addr() {
            say!("Caldicott mail gateway submission at {}", a?);
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Every acknowledged message is already on disk: stopping needs no flush.
        tokio::select! {
            _ = gw.run() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        say!("Caldicott mail gateway stopped");
        Ok(())
    })
}

/// `mail check-dns`: the resolver of `--nameserver` or the configuration's `[dns]`.
fn check_dns(
    opts: caldicott_mail::checkdns::CheckOptions,
    config: Option<&Path>,
    nameservers: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    let dns = if !nameservers.is_empty() {
        caldicott_mail::dns::DnsConfig::new(nameservers)
    } else {
        let Some(path) = config else {
            bail!("check-dns needs a resolver: --nameserver IP[:PORT] or --config with [dns]");
        };
        match load_config(Some(path))?.dns {
            Some(d) => d,
            None => bail!(
                "{} has no [dns] section (or give --nameserver)",
                path.display()
            ),
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(caldicott_mail::checkdns::check(&dns, &opts))?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", caldicott_mail::checkdns::render_text(&report))?;
    }
    out.flush()?;
    if !report.passes() {
        std::process::exit(1);
    }
    Ok(())
}
