//! `caldicott mail`: offline screening (`scan`) and training the classifier (`train`).
//!
//! The engine is `caldicott-mail`; this module only finds files, reads them under the
//! configured size limit, runs the scanner on all cores and prints. No network check runs
//! here: there is no resolver yet.

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
        #[arg(long, required = true)]
        ham: Vec<PathBuf>,
        /// Directory (or file) of spam; repeatable.
        #[arg(long, required = true)]
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
        } => train(&ham, &spam, &out, config.as_deref(), min_count),
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
