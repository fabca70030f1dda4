//! `cargo xtask bench mail`: Caldicott's mail screening beside SpamAssassin and rspamd, both
//! from Debian's packages, on the SpamAssassin public corpus in `../shared/data/spamassassin`.
//!
//! Two runs (issue 7):
//!
//! - `cargo xtask bench mail --accuracy`: the corpus is split 70/30 by the same rule as
//!   `caldicott_mail::eval::split_of` (FNV-1a-64 of the file name modulo 100, below 70
//!   trains), copied into `target/bench-mail/split/{train,test}/{ham,spam}/`. Each engine's
//!   Bayes is trained on the train part only (ours: `caldicott mail train`; SpamAssassin:
//!   `sa-learn -L` with a private site config; rspamd: `rspamc learn_ham/learn_spam` to a
//!   private rspamd on loopback whose statistics live in a private Redis), then the test part
//!   is scored by all three (`caldicott mail scan`; `spamc` against a private `spamd -L`;
//!   `rspamc`), with every network check off. It prints, per engine, ham flagged and spam
//!   caught at the engine's default threshold and, from the scores, the ROC points at equal
//!   ham false-positive levels (spam caught when at most k test ham are flagged) and at equal
//!   spam-caught levels (ham flagged when at least 95% of spam is caught).
//! - `cargo xtask bench mail`: throughput on the whole corpus, `caldicott mail scan --threads
//!   2` against `rspamc -n N` to the same private rspamd (one normal worker per core), run
//!   alternately in rounds so that both see the same machine load, reported as a ratio, and
//!   our peak resident memory by `/usr/bin/time -f %M`.
//!
//! Missing packages (`spamassassin`, `spamc`, `rspamd`, `redis-server`, `time`) are installed
//! with apt-get when running as root. Everything the run starts (spamd, rspamd, redis) lives
//! under `target/bench-mail/` and is stopped when the run ends, also on failure.
//!
//! The ROC arithmetic is pure ([`operating_point`], [`caught_at_ham_fp`],
//! [`ham_fp_at_caught`]) and unit-tested; the rest is processes and files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;

use crate::{capture, cargo, free_port, is_root, repo_root, run, run_quiet, show, which};

/// Options of `cargo xtask bench mail`.
#[derive(Args, Debug)]
pub struct MailArgs {
    /// Accuracy beside SpamAssassin and rspamd on the train/test split (instead of
    /// throughput).
    #[arg(long)]
    pub accuracy: bool,
    /// The corpus (`ham_easy/`, `ham_hard/`, `spam/`); default `../shared/data/spamassassin`
    /// from the repository root, or `CALDICOTT_SPAMASSASSIN`.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Throughput: rounds, each one run of ours then one of rspamc.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Throughput: times the corpus is passed in one run (more gives steadier figures).
    #[arg(long, default_value_t = 2)]
    pub repeat: usize,
    /// Throughput: `caldicott mail scan --threads`.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Throughput: parallel requests of `rspamc -n` (enough to keep every worker busy).
    #[arg(long, default_value_t = 16)]
    pub rspamc_parallel: usize,
    /// Use the release binary already built instead of building it.
    #[arg(long)]
    pub no_build: bool,
}

pub fn cmd_bench_mail(args: &MailArgs) -> Result<()> {
    let corpus = corpus_dir(args.corpus.as_deref())?;
    ensure_packages()?;
    let bin = if args.no_build {
        release_binary()?
    } else {
        run(cargo().args(["build", "--release", "--locked", "--bin", "caldicott"]))?;
        release_binary()?
    };
    let work = target_dir().join("bench-mail");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let split = make_split(&corpus, &work.join("split"))?;
    eprintln!(
        "split (FNV-1a-64 of the file name mod 100 < 70 trains): train {} ham + {} spam, test {} ham + {} spam",
        split.train_ham, split.train_spam, split.test_ham, split.test_spam
    );
    if args.accuracy {
        accuracy(&bin, &work, &split)
    } else {
        throughput(args, &bin, &work, &corpus)
    }
}

// ---------------------------------------------------------------------------------------
// Packages, paths

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

fn release_binary() -> Result<PathBuf> {
    let bin = target_dir().join("release").join("caldicott");
    ensure!(
        bin.is_file(),
        "{} is not there (build it: cargo build --release --bin caldicott)",
        bin.display()
    );
    Ok(bin)
}

fn corpus_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match (given, std::env::var_os("CALDICOTT_SPAMASSASSIN")) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => repo_root().join("../shared/data/spamassassin"),
    };
    ensure!(
        dir.join("spam").is_dir(),
        "no corpus at {} (expected ham_easy/, ham_hard/, spam/; pass --corpus)",
        dir.display()
    );
    Ok(dir)
}

/// The programs each run needs, and the Debian package bringing each.
const PROGRAMS: &[(&str, &str)] = &[
    ("spamassassin", "spamassassin"),
    ("sa-learn", "spamassassin"),
    ("spamd", "spamd"),
    ("spamc", "spamc"),
    ("rspamd", "rspamd"),
    ("rspamc", "rspamd"),
    ("redis-server", "redis-server"),
];

fn ensure_packages() -> Result<()> {
    let mut missing: Vec<&str> = PROGRAMS
        .iter()
        .filter(|(p, _)| which(p).is_none() && !Path::new("/usr/sbin").join(p).is_file())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !Path::new("/usr/bin/time").is_file() {
        missing.push("time");
    }
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    ensure!(
        is_root()?,
        "missing Debian packages {missing:?}, and only root may install them (sudo apt-get install {})",
        missing.join(" ")
    );
    eprintln!("installing Debian's {}", missing.join(", "));
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()))
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    apt(&install)?;
    // The packages start their system services; this bench runs private instances only.
    for service in ["spamd", "spamassassin", "rspamd", "redis-server"] {
        let _ = Command::new("systemctl")
            .args(["stop", service])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    Ok(())
}

/// A program by name, also where `/usr/sbin` is not on PATH (spamd).
fn program(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| Path::new("/usr/sbin").join(name))
}

fn version_line(cmd: &mut Command) -> String {
    capture(cmd)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "version unknown".to_owned())
}

// ---------------------------------------------------------------------------------------
// The split

/// The split rule of `caldicott_mail::eval::split_of`, repeated here because xtask depends on
/// no product crate; `split_matches_the_engine` in the tests pins both to the same values.
pub fn trains(file_name: &str) -> bool {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in file_name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h % 100 < 70
}

struct SplitDirs {
    root: PathBuf,
    train_ham: usize,
    train_spam: usize,
    test_ham: usize,
    test_spam: usize,
}

impl SplitDirs {
    fn dir(&self, part: &str, label: &str) -> PathBuf {
        self.root.join(part).join(label)
    }
}

/// Copies the corpus into `root/{train,test}/{ham,spam}/<set>/<file>` (copies, not links:
/// rspamc and sa-learn both walk directories and not every walker follows links).
fn make_split(corpus: &Path, root: &Path) -> Result<SplitDirs> {
    if root.exists() {
        fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    let mut out = SplitDirs {
        root: root.to_path_buf(),
        train_ham: 0,
        train_spam: 0,
        test_ham: 0,
        test_spam: 0,
    };
    for (set, spam) in [("ham_easy", false), ("ham_hard", false), ("spam", true)] {
        let dir = corpus.join(set);
        if !dir.is_dir() {
            continue;
        }
        let mut names: Vec<String> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let train = trains(&name);
            let part = if train { "train" } else { "test" };
            let label = if spam { "spam" } else { "ham" };
            let dest = root.join(part).join(label).join(set);
            fs::create_dir_all(&dest)?;
            fs::copy(dir.join(&name), dest.join(&name))
                .with_context(|| format!("copying {set}/{name}"))?;
            *match (train, spam) {
                (true, false) => &mut out.train_ham,
                (true, true) => &mut out.train_spam,
                (false, false) => &mut out.test_ham,
                (false, true) => &mut out.test_spam,
            } += 1;
        }
    }
    ensure!(
        out.train_ham > 0 && out.train_spam > 0 && out.test_ham > 0 && out.test_spam > 0,
        "the corpus at {} gave an empty part",
        corpus.display()
    );
    Ok(out)
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// ROC arithmetic (pure)

/// One scored test message: its label, the engine's score, and whether the engine flags it
/// at its default threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub spam: bool,
    pub score: f64,
    pub flagged: bool,
}

/// Ham flagged and spam caught at the default threshold, as counts.
pub fn operating_point(rows: &[Scored]) -> (usize, usize) {
    let fp = rows.iter().filter(|r| !r.spam && r.flagged).count();
    let tp = rows.iter().filter(|r| r.spam && r.flagged).count();
    (fp, tp)
}

fn sorted_desc(rows: &[Scored], spam: bool) -> Vec<f64> {
    let mut v: Vec<f64> = rows
        .iter()
        .filter(|r| r.spam == spam)
        .map(|r| r.score)
        .collect();
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

/// Spam caught with the threshold as low as it can go while at most `max_ham` ham are
/// flagged: the threshold sits just above the `(max_ham+1)`-th highest ham score, so a spam
/// counts only when it scores strictly above that ham (ties go against the engine).
pub fn caught_at_ham_fp(rows: &[Scored], max_ham: usize) -> usize {
    let ham = sorted_desc(rows, false);
    match ham.get(max_ham) {
        None => rows.iter().filter(|r| r.spam).count(),
        Some(&bar) => rows.iter().filter(|r| r.spam && r.score > bar).count(),
    }
}

/// Ham flagged with the threshold as high as it can go while at least `min_spam` spam are
/// caught: the threshold is the `min_spam`-th highest spam score, and every ham at or above
/// it is flagged (ties go against the engine).
pub fn ham_fp_at_caught(rows: &[Scored], min_spam: usize) -> usize {
    if min_spam == 0 {
        return 0;
    }
    let spam = sorted_desc(rows, true);
    match spam.get(min_spam - 1) {
        None => rows.iter().filter(|r| !r.spam).count(),
        Some(&bar) => rows.iter().filter(|r| !r.spam && r.score >= bar).count(),
    }
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

/// The accuracy table (Markdown) for engines in order.
pub fn accuracy_table(engines: &[(String, Vec<Scored>)]) -> String {
    let mut s = String::new();
    let Some((_, first)) = engines.first() else {
        return s;
    };
    let n_ham = first.iter().filter(|r| !r.spam).count();
    let n_spam = first.len() - n_ham;
    // Ham false-positive levels to compare at: each engine's own default level, and the
    // issue's 0.5%; and the 95% of spam caught.
    let mut levels: Vec<usize> = engines
        .iter()
        .map(|(_, rows)| operating_point(rows).0)
        .collect();
    levels.push(n_ham / 200);
    levels.sort_unstable();
    levels.dedup();
    let spam95 = (n_spam * 95).div_ceil(100);
    let _ = write!(
        s,
        "| engine | ham flagged (default) | spam caught (default) |"
    );
    for &k in &levels {
        let _ = write!(s, " spam caught, ham ≤ {k} ({:.2}%) |", pct(k, n_ham));
    }
    let _ = writeln!(s, " ham flagged, spam ≥ {spam95} (95%) |");
    let _ = write!(s, "|---|---:|---:|");
    for _ in &levels {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s, "---:|");
    for (name, rows) in engines {
        let (fp, tp) = operating_point(rows);
        let _ = write!(
            s,
            "| {name} | {fp}/{n_ham} ({:.2}%) | {tp}/{n_spam} ({:.2}%) |",
            pct(fp, n_ham),
            pct(tp, n_spam)
        );
        for &k in &levels {
            let c = caught_at_ham_fp(rows, k);
            let _ = write!(s, " {c} ({:.2}%) |", pct(c, n_spam));
        }
        let h = ham_fp_at_caught(rows, spam95);
        let _ = writeln!(s, " {h} ({:.2}%) |", pct(h, n_ham));
    }
    s
}

// ---------------------------------------------------------------------------------------
// Accuracy

fn accuracy(bin: &Path, work: &Path, split: &SplitDirs) -> Result<()> {
    let started = Instant::now();
    let mut engines: Vec<(String, Vec<Scored>)> = Vec::new();

    // Ours.
    let model = work.join("site.model");
    run_quiet(
        Command::new(bin)
            .args(["mail", "train", "--ham"])
            .arg(split.dir("train", "ham"))
            .arg("--spam")
            .arg(split.dir("train", "spam"))
            .arg("--out")
            .arg(&model),
    )?;
    let ours = scan_ours(
        bin,
        &model,
        &[split.dir("test", "ham"), split.dir("test", "spam")],
        2,
    )?;
    let ours: Vec<Scored> = ours
        .into_iter()
        .map(|(path, score, flagged)| Scored {
            spam: is_spam_path(&path, split),
            score,
            flagged,
        })
        .collect();
    engines.push(("Caldicott".to_owned(), ours));

    // SpamAssassin.
    let sa_version = version_line(Command::new(program("spamassassin")).arg("--version"));
    let sa = SpamAssassin::setup(&work.join("sa"))?;
    sa.learn(&split.dir("train", "ham"), &split.dir("train", "spam"))?;
    let spamd = sa.start_spamd()?;
    let test_files: Vec<PathBuf> = files_under(&split.root.join("test"))?;
    let probe = files_under(&split.dir("train", "spam"))?;
    let sa_rows = spamd
        .check_bayes(probe.first().context("no training spam")?)
        .and_then(|()| spamd.score_all(&test_files));
    spamd.stop();
    let sa_rows = sa_rows?;
    engines.push((
        format!("SpamAssassin ({})", sa_version.trim()),
        sa_rows
            .into_iter()
            .map(|(path, score, flagged)| Scored {
                spam: is_spam_path(&path, split),
                score,
                flagged,
            })
            .collect(),
    ));

    // rspamd.
    let rs_version = version_line(Command::new(program("rspamd")).arg("--version"));
    let rspamd = Rspamd::start(&work.join("rspamd-accuracy"), 2)?;
    let rs_rows = (|| {
        rspamd.learn(&split.dir("train", "ham"), &split.dir("train", "spam"))?;
        rspamd.score_all(&test_files)
    })();
    rspamd.stop();
    engines.push((
        format!("rspamd ({})", rs_version.trim()),
        rs_rows?
            .into_iter()
            .map(|(path, score, flagged)| Scored {
                spam: is_spam_path(&path, split),
                score,
                flagged,
            })
            .collect(),
    ));

    for (name, rows) in &engines {
        ensure!(
            rows.len() == split.test_ham + split.test_spam,
            "{name} scored {} of {} test messages",
            rows.len(),
            split.test_ham + split.test_spam
        );
    }
    println!(
        "\nAccuracy on the test part ({} ham, {} spam), each engine's Bayes trained on the train part ({} ham, {} spam), network checks off ({:.0} s):\n",
        split.test_ham,
        split.test_spam,
        split.train_ham,
        split.train_spam,
        started.elapsed().as_secs_f64()
    );
    print!("{}", accuracy_table(&engines));
    println!(
        "\nDefault thresholds: Caldicott verdict tag or worse (score 5); SpamAssassin required_score 5.0; rspamd action `add header` or worse (score 6; greylist is not flagging)."
    );
    Ok(())
}

fn is_spam_path(path: &Path, split: &SplitDirs) -> bool {
    path.starts_with(split.dir("test", "spam"))
}

/// `caldicott mail scan`: (path, score, flagged) per message.
fn scan_ours(
    bin: &Path,
    model: &Path,
    dirs: &[PathBuf],
    threads: usize,
) -> Result<Vec<(PathBuf, f64, bool)>> {
    let mut cmd = Command::new(bin);
    cmd.args(["mail", "scan", "--threads", &threads.to_string(), "--model"])
        .arg(model)
        .args(dirs)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let shown = show(&cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    ensure!(out.status.success(), "`{shown}` failed");
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("scan printed {line:?}"))?;
        let path = v["path"].as_str().context("scan line without path")?;
        let score = v["score"].as_f64().context("scan line without score")?;
        let verdict = v["verdict"].as_str().context("scan line without verdict")?;
        let flagged = verdict != "accept";
        // A floor (e.g. a script attachment) flags below the tag score: rank it at the tag
        // score so that the default threshold stays one point of the curve.
        let score = if flagged { score.max(5.0) } else { score };
        rows.push((PathBuf::from(path), score, flagged));
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------
// SpamAssassin: sa-learn, spamd -L, spamc

struct SpamAssassin {
    site: PathBuf,
    dir: PathBuf,
}

impl SpamAssassin {
    /// A private site configuration: Debian's plugin loaders (`*.pre`) plus a `local.cf`
    /// turning on Bayes in `dir/bayes`, auto-learning and network tests off.
    fn setup(dir: &Path) -> Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        let site = dir.join("site");
        fs::create_dir_all(&site)?;
        for e in fs::read_dir("/etc/spamassassin").context("reading /etc/spamassassin")? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "pre") {
                fs::copy(&p, site.join(p.file_name().unwrap_or_default()))?;
            }
        }
        let local = format!(
            "# Written by cargo xtask bench mail: Bayes on, trained by hand only, no network.\n\
             use_bayes 1\n\
             bayes_auto_learn 0\n\
             bayes_path {}/bayes/bayes\n\
             bayes_file_mode 0777\n\
             skip_rbl_checks 1\n\
             use_razor2 0\n\
             use_pyzor 0\n\
             use_dcc 0\n\
             required_score 5.0\n",
            dir.display()
        );
        fs::write(site.join("local.cf"), local)?;
        fs::create_dir_all(dir.join("bayes"))?;
        fs::write(dir.join("user_prefs"), "")?;
        // spamd drops to `nobody`: it must read and update the Bayes files.
        open_up(dir)?;
        Ok(Self {
            site,
            dir: dir.to_path_buf(),
        })
    }

    fn learn(&self, ham: &Path, spam: &Path) -> Result<()> {
        for (flag, d) in [("--ham", ham), ("--spam", spam)] {
            run(Command::new(program("sa-learn"))
                .arg("-L")
                .arg(format!("--siteconfigpath={}", self.site.display()))
                .arg(format!(
                    "--prefspath={}",
                    self.dir.join("user_prefs").display()
                ))
                .arg(flag)
                .arg(d))?;
        }
        open_up(&self.dir)?;
        let magic = capture(
            Command::new(program("sa-learn"))
                .arg(format!("--siteconfigpath={}", self.site.display()))
                .arg(format!(
                    "--prefspath={}",
                    self.dir.join("user_prefs").display()
                ))
                .arg("--dump")
                .arg("magic"),
        )?;
        eprintln!("SpamAssassin Bayes:\n{magic}");
        Ok(())
    }

    fn start_spamd(&self) -> Result<Spamd> {
        let port = free_port()?;
        let log = self.dir.join("spamd.log");
        let child = Command::new(program("spamd"))
            .arg("-L")
            .arg(format!("--siteconfigpath={}", self.site.display()))
            .args(["-x", "-i", "127.0.0.1", "-A", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            .args([
                "-m",
                "2",
                "--min-children",
                "2",
                "--max-conn-per-child",
                "1000",
            ])
            .args(["-u", "nobody", "-s"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start spamd")?;
        let spamd = Spamd { child, port, log };
        wait_port(port, Duration::from_secs(120), "spamd", &spamd.log)?;
        Ok(spamd)
    }
}

/// Makes `dir` and everything in it readable and writable by every user (it holds only the
/// bench's copy of public corpus statistics).
fn open_up(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777))?;
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o666))?;
            }
        }
    }
    Ok(())
}

struct Spamd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Spamd {
    /// Fails unless spamd's report for `probe` (a trained spam) names a `BAYES_` rule: a
    /// Bayes that spamd cannot read would silently make SpamAssassin look worse.
    fn check_bayes(&self, probe: &Path) -> Result<()> {
        let out = Command::new(program("spamc"))
            .args(["-d", "127.0.0.1", "-p", &self.port.to_string(), "-R"])
            .stdin(fs::File::open(probe)?)
            .stderr(Stdio::null())
            .output()
            .context("cannot start spamc")?;
        let report = String::from_utf8_lossy(&out.stdout);
        ensure!(
            report.contains("BAYES_"),
            "spamd does not use the trained Bayes (no BAYES_ rule for {}); see {}",
            probe.display(),
            self.log.display()
        );
        Ok(())
    }

    /// `spamc -c` per file on two client threads (spamd runs two children).
    fn score_all(&self, files: &[PathBuf]) -> Result<Vec<(PathBuf, f64, bool)>> {
        let results = parallel(files, 2, |path| {
            let input = fs::File::open(path)?;
            let out = Command::new(program("spamc"))
                .args(["-d", "127.0.0.1", "-p", &self.port.to_string(), "-c", "-x"])
                .args(["-s", "33554432"])
                .stdin(input)
                .stderr(Stdio::null())
                .output()?;
            // Exit status 1 means spam: not an error with -c.
            let text = String::from_utf8_lossy(&out.stdout);
            let (score, threshold) = text
                .trim()
                .split_once('/')
                .with_context(|| format!("spamc printed {text:?} for {}", path.display()))?;
            let score: f64 = score.parse()?;
            let threshold: f64 = threshold.parse()?;
            Ok((path.clone(), score, score >= threshold))
        });
        results.into_iter().collect()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// rspamd: a private instance on loopback, statistics in a private Redis

struct Rspamd {
    dir: PathBuf,
    rspamd: Child,
    redis: Child,
    normal: u16,
    controller: u16,
}

/// Modules that look things up over the network (DNS lists, hash and reputation services,
/// SPF/DKIM/DMARC/ARC, URL resolution) or keep per-sender history: all off, as network
/// checks are off for every engine in this comparison.
const RSPAMD_OFF: &[&str] = &[
    "rbl",
    "surbl",
    "fuzzy_check",
    "dcc",
    "spf",
    "dkim",
    "dmarc",
    "arc",
    "asn",
    "emails",
    "mx_check",
    "replies",
    "reputation",
    "neural",
    "ratelimit",
    "greylist",
    "history_redis",
    "url_redirector",
    "external_services",
    "antivirus",
    "clickhouse",
    "elastic",
    "metadata_exporter",
    "dkim_signing",
    "arc_signing",
    "p0f",
    "dynamic_conf",
    "maps_stats",
    "known_senders",
    "url_reputation",
    "rspamd_update",
    "bimi",
];

/// A resolver on loopback that answers every query at once with NXDOMAIN, so that rspamd's
/// remaining lookups (received-chain and HELO checks) fail immediately, as offline, instead
/// of waiting for a timeout that would throttle it. Runs until the bench exits.
fn start_null_dns() -> Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("binding the null resolver")?;
    let port = socket.local_addr()?.port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            if let Some(reply) = nxdomain(&buf[..len]) {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
    Ok(port)
}

/// The NXDOMAIN answer to a DNS query: its header and first question, flags set to a
/// recursive answer with RCODE 3 and no records.
pub fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    let mut i = 12;
    while *query.get(i)? != 0 {
        i += usize::from(query[i]) + 1;
    }
    let end = i + 1 + 4;
    if end > query.len() {
        return None;
    }
    let mut r = query[..end].to_vec();
    r[2] = 0x80 | (query[2] & 0x79); // QR, same opcode and RD
    r[3] = 0x80 | 3; // RA, NXDOMAIN
    r[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    Some(r)
}

impl Rspamd {
    fn start(dir: &Path, workers: usize) -> Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        for sub in ["local.d", "override.d", "db", "run", "log", "redis"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let redis_port = free_port()?;
        let redis = Command::new(program("redis-server"))
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.join("redis"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server")?;
        let normal = free_port()?;
        let controller = free_port()?;
        let proxy = free_port()?;
        let fuzzy = free_port()?;
        let local = dir.join("local.d");
        let w = |name: &str, text: String| fs::write(local.join(name), text);
        // Workers in override.d: a local.d file would merge a second bind_socket into the
        // default one instead of replacing it.
        let o = |name: &str, text: String| fs::write(dir.join("override.d").join(name), text);
        o(
            "worker-normal.inc",
            format!("bind_socket = \"127.0.0.1:{normal}\";\ncount = {workers};\n"),
        )?;
        o(
            "worker-controller.inc",
            format!(
                "bind_socket = \"127.0.0.1:{controller}\";\nsecure_ip = \"127.0.0.1\";\ncount = 1;\n"
            ),
        )?;
        o(
            "worker-proxy.inc",
            format!("bind_socket = \"127.0.0.1:{proxy}\";\ncount = 0;\nenabled = false;\n"),
        )?;
        o(
            "worker-fuzzy.inc",
            format!("bind_socket = \"127.0.0.1:{fuzzy}\";\ncount = -1;\nenabled = false;\n"),
        )?;
        w(
            "redis.conf",
            format!("servers = \"127.0.0.1:{redis_port}\";\n"),
        )?;
        w(
            "classifier-bayes.conf",
            format!(
                "backend = \"redis\";\nservers = \"127.0.0.1:{redis_port}\";\nautolearn = false;\nmin_learns = 200;\n"
            ),
        )?;
        let dns = start_null_dns()?;
        w(
            "options.inc",
            format!(
                "dns {{\n  nameserver = [\"127.0.0.1:{dns}\"];\n  timeout = 0.5s;\n  retransmits = 1;\n}}\n"
            ),
        )?;
        w(
            "logging.inc",
            format!(
                "type = \"file\";\nfilename = \"{}\";\nlevel = \"warning\";\n",
                dir.join("log/rspamd.log").display()
            ),
        )?;
        for m in RSPAMD_OFF {
            w(&format!("{m}.conf"), "enabled = false;\n".to_owned())?;
        }
        let etc = Path::new("/etc/rspamd");
        let mut cmd = Command::new(program("rspamd"));
        cmd.args(["-f", "-i", "-u", "root", "-g", "root", "-c"])
            .arg(etc.join("rspamd.conf"))
            .arg(format!("--var=LOCAL_CONFDIR={}", dir.display()))
            .arg(format!("--var=DBDIR={}", dir.join("db").display()))
            .arg(format!("--var=RUNDIR={}", dir.join("run").display()))
            .arg(format!("--var=LOGDIR={}", dir.join("log").display()))
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("log/stdout.log"))?)
            .stderr(fs::File::create(dir.join("log/stderr.log"))?);
        eprintln!("$ {}", show(&cmd));
        let child = cmd.spawn().context("cannot start rspamd")?;
        let r = Self {
            dir: dir.to_path_buf(),
            rspamd: child,
            redis,
            normal,
            controller,
        };
        let log = r.dir.join("log/rspamd.log");
        if let Err(e) = wait_port(normal, Duration::from_secs(120), "rspamd", &log)
            .and_then(|()| wait_port(controller, Duration::from_secs(60), "rspamd", &log))
        {
            r.stop();
            return Err(e);
        }
        Ok(r)
    }

    fn rspamc(&self, port: u16) -> Command {
        let mut cmd = Command::new(program("rspamc"));
        cmd.arg(format!("--connect=127.0.0.1:{port}"))
            .stdin(Stdio::null());
        cmd
    }

    fn learn(&self, ham: &Path, spam: &Path) -> Result<()> {
        for (what, d) in [("learn_ham", ham), ("learn_spam", spam)] {
            let mut cmd = self.rspamc(self.controller);
            cmd.args(["-n", "4", what]).arg(d);
            run_quiet(&mut cmd)?;
        }
        let stat = capture(self.rspamc(self.controller).arg("stat"))?;
        for line in stat
            .lines()
            .filter(|l| l.contains("BAYES") || l.contains("Statfile"))
        {
            eprintln!("rspamd: {line}");
        }
        Ok(())
    }

    /// `rspamc --json` over the files: (path, score, flagged).
    fn score_all(&self, files: &[PathBuf]) -> Result<Vec<(PathBuf, f64, bool)>> {
        let list = self.dir.join("files.txt");
        let mut f = fs::File::create(&list)?;
        for p in files {
            writeln!(f, "{}", p.display())?;
        }
        drop(f);
        let mut cmd = self.rspamc(self.normal);
        cmd.args(["-n", "8", "--json", "symbols"]).args(files);
        let shown = show(&cmd);
        let out = cmd
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("cannot start rspamc ({shown})"))?;
        ensure!(out.status.success(), "rspamc symbols failed");
        let text = String::from_utf8_lossy(&out.stdout);
        // BAYES_SPAM/BAYES_HAM fire only once the classifier has its 200 learns of each.
        // Each symbol is printed once with `"name": "BAYES_…"`.
        let bayes = text.matches("\"name\": \"BAYES_").count();
        eprintln!(
            "rspamd: a BAYES_ symbol in {bayes} of {} results",
            files.len()
        );
        ensure!(
            bayes > 0,
            "rspamd does not use the trained Bayes (no BAYES_ symbol at all)"
        );
        parse_rspamc(&text)
    }

    fn stop(self) {
        for mut child in [self.rspamd, self.redis] {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

/// Reads `rspamc --json` output: one JSON object per file, in the order answered, each
/// naming its `filename`.
pub fn parse_rspamc(out: &str) -> Result<Vec<(PathBuf, f64, bool)>> {
    let mut rows = Vec::new();
    for v in serde_json::Deserializer::from_str(out).into_iter::<serde_json::Value>() {
        let v = v.context("rspamc printed something other than JSON objects")?;
        let path = v["filename"]
            .as_str()
            .context("rspamc result without filename")?;
        let score = v["score"]
            .as_f64()
            .with_context(|| format!("rspamc result without score for {path}"))?;
        // Flagged: `add header` (6) or worse; `greylist` only delays, `no action` passes.
        let action = v["action"].as_str().unwrap_or("no action");
        let flagged = matches!(action, "add header" | "rewrite subject" | "reject");
        rows.push((PathBuf::from(path), score, flagged));
    }
    Ok(rows)
}

/// Waits for a TCP port on 127.0.0.1 to accept connections.
fn wait_port(port: u16, timeout: Duration, what: &str, log: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tail = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(20).collect();
    bail!(
        "{what} did not listen on 127.0.0.1:{port} within {} s; its log ({}) ends:\n{}",
        timeout.as_secs(),
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

/// Runs `f` over `items` on `threads` threads, results in input order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Result<R>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut m) = results.lock() {
                        m.insert(i, r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_values()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Throughput

fn throughput(args: &MailArgs, bin: &Path, work: &Path, corpus: &Path) -> Result<()> {
    let mut files = Vec::new();
    for set in ["ham_easy", "ham_hard", "spam"] {
        if corpus.join(set).is_dir() {
            files.extend(files_under(&corpus.join(set))?);
        }
    }
    // The corpus `repeat` times, as one argument list for both engines.
    let mut list: Vec<PathBuf> = Vec::new();
    for _ in 0..args.repeat.max(1) {
        list.extend(files.iter().cloned());
    }
    let n = list.len();
    // Ours needs a model (as deployed): trained on the whole corpus, as rspamd's Bayes is.
    let model = work.join("whole.model");
    run_quiet(
        Command::new(bin)
            .args(["mail", "train", "--ham"])
            .arg(corpus.join("ham_easy"))
            .arg("--ham")
            .arg(corpus.join("ham_hard"))
            .arg("--spam")
            .arg(corpus.join("spam"))
            .arg("--out")
            .arg(&model),
    )?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let rspamd = Rspamd::start(&work.join("rspamd-throughput"), cores)?;
    let result = (|| {
        rspamd.learn(&corpus.join("ham_easy"), &corpus.join("spam"))?;
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut rss = Vec::new();
        for round in 1..=args.rounds.max(1) {
            let (secs, kb) = time_ours(bin, &model, &list, args.threads)?;
            let rs = time_rspamc(&rspamd, &list, args.rspamc_parallel)?;
            eprintln!(
                "round {round}: caldicott {:.0} msg/s ({secs:.2} s, peak RSS {} MB); rspamd {:.0} msg/s ({rs:.2} s)",
                n as f64 / secs,
                kb / 1024,
                n as f64 / rs
            );
            ours.push(n as f64 / secs);
            theirs.push(n as f64 / rs);
            rss.push(kb);
        }
        let rspamd_rss = rspamd_rss_kb(&rspamd);
        Ok::<_, anyhow::Error>((ours, theirs, rss, rspamd_rss))
    })();
    rspamd.stop();
    let (ours, theirs, rss, rspamd_rss) = result?;
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    println!(
        "\nThroughput on {n} messages ({} files × {}), {} rounds, {cores} cores, network checks off:\n",
        files.len(),
        args.repeat.max(1),
        ours.len()
    );
    println!("| engine | messages/s (median) | all rounds | peak RSS |");
    println!("|---|---:|---|---:|");
    let all = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| Caldicott `mail scan --threads {}` | {:.0} | {} | {} MB |",
        args.threads,
        med(&ours),
        all(&ours),
        max_rss / 1024
    );
    println!(
        "| rspamd ({cores} normal workers) via `rspamc -n {}` | {:.0} | {} | {} |",
        args.rspamc_parallel,
        med(&theirs),
        all(&theirs),
        rspamd_rss.map_or("?".to_owned(), |kb| format!(
            "{} MB (all processes)",
            kb / 1024
        ))
    );
    println!(
        "\nratio (ours / rspamd, per round): {} — median {:.1}× (target ≥ 3×: {}); our peak RSS {} MB (target < 200 MB: {})",
        ratios
            .iter()
            .map(|r| format!("{r:.1}×"))
            .collect::<Vec<_>>()
            .join(", "),
        med(&ratios),
        if med(&ratios) >= 3.0 {
            "met"
        } else {
            "NOT met"
        },
        max_rss / 1024,
        if max_rss < 200 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// One run of `caldicott mail scan` over `list` under `/usr/bin/time -f %M`: (seconds, peak
/// RSS in KiB). The list goes through a file of paths? No: the scan takes paths as
/// arguments, and the corpus is small enough to pass them all.
fn time_ours(bin: &Path, model: &Path, list: &[PathBuf], threads: usize) -> Result<(f64, u64)> {
    let rss_file = target_dir().join("bench-mail/rss.txt");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(bin)
        .args(["mail", "scan", "--threads", &threads.to_string(), "--model"])
        .arg(model)
        .args(list)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().context("cannot start /usr/bin/time")?;
    let secs = start.elapsed().as_secs_f64();
    ensure!(status.success(), "caldicott mail scan failed");
    let kb: u64 = fs::read_to_string(&rss_file)?
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .parse()
        .context("reading /usr/bin/time's %M")?;
    Ok((secs, kb))
}

/// One run of `rspamc -n N symbols` over `list`: seconds.
fn time_rspamc(rspamd: &Rspamd, list: &[PathBuf], parallel: usize) -> Result<f64> {
    let mut cmd = rspamd.rspamc(rspamd.normal);
    cmd.args(["-n", &parallel.to_string(), "symbols"])
        .args(list)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().context("cannot start rspamc")?;
    let secs = start.elapsed().as_secs_f64();
    ensure!(status.success(), "rspamc failed");
    Ok(secs)
}

/// The resident memory of rspamd's main process and its workers, summed (KiB).
fn rspamd_rss_kb(r: &Rspamd) -> Option<u64> {
    let main = r.rspamd.id();
    let mut total = 0;
    for e in fs::read_dir("/proc").ok()? {
        let Ok(e) = e else { continue };
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
        };
        let pid: u32 = e.file_name().to_string_lossy().parse().unwrap_or(0);
        let ppid: u32 = field("PPid:").and_then(|v| v.parse().ok()).unwrap_or(0);
        if pid == main || ppid == main {
            total += field("VmRSS:")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ham: &[f64], spam: &[f64], threshold: f64) -> Vec<Scored> {
        ham.iter()
            .map(|&s| (false, s))
            .chain(spam.iter().map(|&s| (true, s)))
            .map(|(spam, score)| Scored {
                spam,
                score,
                flagged: score >= threshold,
            })
            .collect()
    }

    #[test]
    fn split_matches_the_engine() {
        // The same names and sides as `caldicott_mail::eval`'s own test
        // (`split_pins_known_names`): the two copies of the rule must agree.
        assert!(trains("00001.7848dde101aa985090474a91ec93fcf0.eml"));
        assert!(!trains("00006.5ab5620d3d7c6c0db76234556a16f6c1.eml"));
        assert!(!trains("00010.445affef4c70feec58f9198cfbc22997.eml"));
        let train = (0..10_000)
            .filter(|i| trains(&format!("{i:05}.eml")))
            .count();
        assert_eq!(train, 6_973);
    }

    #[test]
    fn roc_points_at_equal_levels() {
        // Ham 1..=5, spam 3..=8; default threshold 5.
        let r = rows(
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            5.0,
        );
        assert_eq!(operating_point(&r), (1, 4));
        // No ham flagged: threshold above 5 → spam 6, 7, 8.
        assert_eq!(caught_at_ham_fp(&r, 0), 3);
        // One ham allowed: above 4 → 5, 6, 7, 8.
        assert_eq!(caught_at_ham_fp(&r, 1), 4);
        // Everything allowed: all spam.
        assert_eq!(caught_at_ham_fp(&r, 5), 6);
        // Ties go against the engine: a spam scoring the same as the bar ham is not caught.
        let t = rows(&[5.0, 5.0], &[5.0, 6.0], 5.0);
        assert_eq!(caught_at_ham_fp(&t, 1), 1);
        // All 6 spam caught → threshold 3 → ham 3, 4, 5 flagged.
        assert_eq!(ham_fp_at_caught(&r, 6), 3);
        assert_eq!(ham_fp_at_caught(&r, 3), 0);
        assert_eq!(ham_fp_at_caught(&r, 0), 0);
        assert_eq!(ham_fp_at_caught(&t, 2), 2);
    }

    #[test]
    fn table_has_a_row_per_engine_and_levels() {
        let a = rows(&[1.0, 2.0], &[3.0, 4.0], 2.0);
        let b = rows(&[1.0, 5.0], &[3.0, 4.0], 2.0);
        let t = accuracy_table(&[("A".into(), a), ("B".into(), b)]);
        assert!(t.contains("| A | 1/2 (50.00%) | 2/2 (100.00%) |"), "{t}");
        assert!(t.contains("| B | 1/2 (50.00%) | 2/2 (100.00%) |"), "{t}");
        assert!(t.contains("ham ≤ 0 (0.00%)"), "{t}");
        assert!(t.contains("ham ≤ 1 (50.00%)"), "{t}");
    }

    #[test]
    fn command_line_parses() {
        use clap::Parser as _;
        let parse = |args: &[&str]| crate::Cli::try_parse_from(["xtask"].iter().chain(args));
        let Ok(crate::Cli {
            command: crate::Cmd::Bench(b),
        }) = parse(&["bench", "mail", "--accuracy", "--no-build"])
        else {
            panic!("`bench mail --accuracy` must parse");
        };
        let Some(crate::LoadBench::Mail(m)) = b.load else {
            panic!("`bench mail` is the mail bench");
        };
        assert!(m.accuracy && m.no_build);
        assert_eq!((m.rounds, m.threads), (3, 2));
        assert!(parse(&["bench", "mail", "--nosuch"]).is_err());
    }

    #[test]
    fn answers_nxdomain() {
        // id 0x1234, RD, one question `a.b` A IN, one EDNS record after it (dropped).
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend([1, b'a', 1, b'b', 0, 0, 1, 0, 1]);
        q.extend([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        let r = nxdomain(&q).unwrap();
        assert_eq!(&r[..4], &[0x12, 0x34, 0x81, 0x83]);
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[12..], &q[12..21]);
        assert!(nxdomain(&q[..14]).is_none());
        assert!(nxdomain(&[0; 5]).is_none());
    }

    #[test]
    fn reads_rspamc_json() {
        let out = "{\n\"score\": 9.5, \"action\": \"add header\", \"filename\": \"/t/test/spam/spam/1.eml\"\n}\n{\"score\": -1.2, \"action\": \"no action\", \"filename\": \"/t/test/ham/ham_easy/2.eml\"}\n";
        let r = parse_rspamc(out).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], (PathBuf::from("/t/test/spam/spam/1.eml"), 9.5, true));
        assert_eq!(
            r[1],
            (PathBuf::from("/t/test/ham/ham_easy/2.eml"), -1.2, false)
        );
        assert!(parse_rspamc("{\"score\": 1.0}").is_err());
        assert!(parse_rspamc("not json").is_err());
    }
}
