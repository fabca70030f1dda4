//! A throwaway deployment for the bench: a temporary directory holding a data directory made
//! by `caldicott init`, the synthetic NDJSON file, and the log of a `caldicott serve` child.
//!
//! The server is stopped (SIGTERM, then SIGKILL after 10 s) and the directory deleted when the
//! [`Deployment`] is dropped, also on an error; on Ctrl-C, SIGTERM or SIGHUP, xtask's signal
//! handler does the same through [`on_signal`].

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use std::{env, thread};

use anyhow::{Context, Result, bail, ensure};

use super::super::{describe_status, one_line, show};

/// How long `serve` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// `caldicott serve` prints this, then the URL, once it listens.
const SERVING_AT: &str = "Caldicott is serving at ";

/// Settings a developer's environment may hold that would point the throwaway deployment at
/// something else (another database, key, certificate or address).
const FOREIGN_ENV: &[&str] = &[
    "CALDICOTT_DATABASE",
    "CALDICOTT_MASTER_KEY",
    "CALDICOTT_LISTEN",
    "CALDICOTT_TLS_CERT",
    "CALDICOTT_TLS_KEY",
];

/// What to undo when the bench ends, whoever gets there first: the `Deployment`'s `Drop` or
/// the signal handler. Whoever takes it holds the lock until done.
static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

struct Cleanup {
    server: Option<Child>,
    /// The temporary directory, unless `--keep`.
    dir: Option<PathBuf>,
}

fn lock_cleanup() -> MutexGuard<'static, Option<Cleanup>> {
    CLEANUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops the server and deletes the directory; called by xtask's signal handler.
pub fn on_signal() {
    run_cleanup();
}

fn run_cleanup() {
    let Some(cleanup) = lock_cleanup().take() else {
        return;
    };
    if let Some(child) = cleanup.server {
        match stop(child) {
            Ok(stopped) => eprintln!("caldicott serve {}", stopped.how),
            Err(err) => eprintln!(
                "xtask: warning: stopping caldicott serve: {}",
                one_line(&err)
            ),
        }
    }
    if let Some(dir) = cleanup.dir {
        match fs::remove_dir_all(&dir) {
            Ok(()) => eprintln!("deleted {}", dir.display()),
            Err(err) => eprintln!("xtask: warning: cannot delete {}: {err}", dir.display()),
        }
    }
}

/// How the server ended.
pub struct Stopped {
    /// It exited with status 0 on SIGTERM.
    pub clean: bool,
    pub how: String,
}

impl Stopped {
    fn new(clean: bool, how: String) -> Self {
        Self { clean, how }
    }
}

/// Sends SIGTERM and waits up to [`STOP_TIMEOUT`], then kills.
fn stop(mut child: Child) -> Result<Stopped> {
    if let Some(status) = child.try_wait()? {
        let how = format!("had already stopped: it {}", describe_status(status));
        return Ok(Stopped::new(false, how));
    }
    let pid = child.id().to_string();
    let termed = Command::new("kill")
        .args(["-TERM", &pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if termed {
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(if status.success() {
                    Stopped::new(true, "stopped cleanly on SIGTERM".to_owned())
                } else {
                    let how = format!("stopped on SIGTERM but {}", describe_status(status));
                    Stopped::new(false, how)
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    child.kill().context("cannot kill caldicott serve")?;
    child.wait().context("cannot reap caldicott serve")?;
    let how = if termed {
        format!(
            "did not stop within {} s of SIGTERM: killed",
            STOP_TIMEOUT.as_secs()
        )
    } else {
        "could not be sent SIGTERM: killed".to_owned()
    };
    Ok(Stopped::new(false, how))
}

/// The temporary directory and what runs in it.
pub struct Deployment {
    bin: PathBuf,
    root: PathBuf,
    pub data: PathBuf,
}

/// What `caldicott import` did, timed from outside.
pub struct Imported {
    pub resources: usize,
    pub seconds: f64,
    /// The rate `caldicott import` printed itself (its own clock), when it did.
    pub reported_rate: Option<f64>,
}

impl Deployment {
    /// Makes the temporary directory; `keep` leaves it behind at the end.
    pub fn create(bin: PathBuf, keep: bool) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("caldicott-bench-fhir-")
            .tempdir()
            .context("cannot create a temporary directory")?
            .keep();
        *lock_cleanup() = Some(Cleanup {
            server: None,
            dir: (!keep).then(|| root.clone()),
        });
        eprintln!(
            "working in {}{}",
            root.display(),
            if keep { " (kept: --keep)" } else { "" }
        );
        Ok(Self {
            data: root.join("data"),
            bin,
            root,
        })
    }

    /// `caldicott` with the environment cleared of settings meant for other deployments.
    fn caldicott(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        for var in FOREIGN_ENV {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `caldicott init` (its output, which holds the administrator's password, is not shown).
    pub fn init(&self, database: Option<&str>) -> Result<()> {
        let mut cmd = self.caldicott();
        cmd.arg("init").arg("--data").arg(&self.data);
        if let Some(url) = database {
            cmd.arg("--database").arg(url);
        }
        let shown = format!(
            "caldicott init --data {}{}",
            self.data.display(),
            if database.is_some() {
                " --database <url>"
            } else {
                ""
            }
        );
        eprintln!("$ {shown}");
        let out = cmd
            .output()
            .with_context(|| format!("cannot start `{shown}`"))?;
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            bail!("`{shown}` {}", describe_status(out.status));
        }
        Ok(())
    }

    /// `caldicott synth`: the NDJSON file of `patients` synthetic patients.
    pub fn synth(&self, patients: usize, seed: u64) -> Result<PathBuf> {
        let file = self.root.join("patients.ndjson");
        let mut cmd = self.caldicott();
        cmd.args(["synth", "--patients", &patients.to_string()])
            .args(["--seed", &seed.to_string(), "--out"])
            .arg(&file);
        run_captured(&mut cmd)?;
        Ok(file)
    }

    /// `caldicott import` of `file` (holding `resources` lines), timed.
    pub fn import(&self, file: &Path, resources: usize) -> Result<Imported> {
        let mut cmd = self.caldicott();
        cmd.arg("import").arg("--data").arg(&self.data).arg(file);
        let start = Instant::now();
        let stdout = run_captured(&mut cmd)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(Imported {
            resources,
            seconds,
            reported_rate: reported_rate(&stdout),
        })
    }

    /// Starts `caldicott serve` with TLS on a port of 127.0.0.1 the kernel picks, and returns
    /// its address once it has printed it. Its log goes to `server.log` in the directory.
    /// A GP user at practice `ods` and a direct-care token for them (the token only).
    pub fn gp_token(&self, ods: &str) -> Result<String> {
        run_captured(
            self.caldicott()
                .args([
                    "org",
                    "add",
                    "--ods",
                    ods,
                    "--name",
                    "Load test practice",
                    "--data",
                ])
                .arg(&self.data),
        )?;
        run_captured(
            self.caldicott()
                .args([
                    "user", "add", "--org", ods, "--role", "gp", "loadtest", "--data",
                ])
                .arg(&self.data),
        )?;
        let out = run_captured(
            self.caldicott()
                .args([
                    "token",
                    "issue",
                    "--user",
                    "loadtest",
                    "--scope",
                    "user/*.*",
                    "--purpose",
                    "direct-care",
                    "--ttl",
                    "8h",
                    "--data",
                ])
                .arg(&self.data),
        )?;
        Ok(out.trim().to_owned())
    }

    pub fn serve(&self) -> Result<SocketAddr> {
        let log_path = self.root.join("server.log");
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut cmd = self.caldicott();
        cmd.arg("serve")
            .arg("--data")
            .arg(&self.data)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log);
        eprintln!("$ {} (log: {})", show(&cmd), log_path.display());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{}`", show(&cmd)))?;
        let stdout = child
            .stdout
            .take()
            .context("no pipe from caldicott serve")?;
        if let Some(cleanup) = lock_cleanup().as_mut() {
            cleanup.server = Some(child);
        } else {
            // Only after a signal: stop what we just started.
            let _ = stop(child);
            bail!("interrupted");
        }
        let url = match wait_for_url(stdout) {
            Ok(url) => url,
            Err(err) => {
                self.print_log_tail();
                return Err(err);
            }
        };
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .with_context(|| format!("no port in the address `{url}` that serve printed"))?;
        eprintln!("caldicott serve listens at {url}");
        Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// An error if the server has exited (printing its log).
    pub fn server_running(&self) -> Result<()> {
        let exited = match lock_cleanup().as_mut().and_then(|c| c.server.as_mut()) {
            Some(child) => child.try_wait()?,
            None => bail!("caldicott serve is not running"),
        };
        if let Some(status) = exited {
            self.print_log_tail();
            bail!(
                "caldicott serve {} (its log is above)",
                describe_status(status)
            );
        }
        Ok(())
    }

    /// The running server's process id.
    pub fn server_pid(&self) -> Option<u32> {
        lock_cleanup()
            .as_ref()
            .and_then(|c| c.server.as_ref())
            .map(Child::id)
    }

    /// Stops the server now and says how it went.
    pub fn stop_server(&self) -> Result<Stopped> {
        let child = lock_cleanup().as_mut().and_then(|c| c.server.take());
        match child {
            Some(child) => stop(child),
            None => Ok(Stopped::new(false, "was not running".to_owned())),
        }
    }

    pub fn cert_pem(&self) -> PathBuf {
        self.data.join("tls").join("cert.pem")
    }

    pub fn print_log_tail(&self) {
        let log = self.root.join("server.log");
        if let Ok(text) = fs::read_to_string(&log) {
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of {} ---", log.display());
            for line in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("{line}");
            }
            eprintln!("---");
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        run_cleanup();
    }
}

/// Reads the server's stdout until it prints its URL (within [`START_TIMEOUT`]), then keeps
/// draining it on a thread so the server never blocks on a full pipe.
fn wait_for_url(stdout: impl std::io::Read + Send + 'static) -> Result<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut sent = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if !sent && let Some(url) = line.trim().strip_prefix(SERVING_AT) {
                sent = tx.send(url.to_owned()).is_ok();
            }
        }
    });
    rx.recv_timeout(START_TIMEOUT).map_err(|err| match err {
        mpsc::RecvTimeoutError::Timeout => anyhow::anyhow!(
            "caldicott serve printed no address within {} s",
            START_TIMEOUT.as_secs()
        ),
        mpsc::RecvTimeoutError::Disconnected => {
            anyhow::anyhow!("caldicott serve exited before serving")
        }
    })
}

/// Runs `cmd`, showing its standard error as it comes; returns its standard output.
fn run_captured(cmd: &mut Command) -> Result<String> {
    let shown = show(cmd);
    eprintln!("$ {shown}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{stdout}");
    ensure!(
        out.status.success(),
        "`{shown}` {}",
        describe_status(out.status)
    );
    Ok(stdout)
}

/// The rate in `imported N resources in X s (R/s): ...`.
fn reported_rate(stdout: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.starts_with("imported "))?;
    let (_, rest) = line.split_once('(')?;
    rest.split_once("/s")?.0.parse().ok()
}

/// The directory cargo builds into: `CARGO_TARGET_DIR`, else `target/` in the repository.
pub fn target_dir(repo_root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_root.join(dir),
        None => repo_root.join("target"),
    }
}

/// A process's CPU time so far, user and system, all its threads (live and ended), from
/// `/proc/PID/stat`; `None` when it cannot be read (the process is gone, or not Linux).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `fields[0]` is field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second()? as f64,
    ))
}

/// `getconf CLK_TCK` (the unit of `/proc/PID/stat`'s times; 100 on Linux in practice).
fn clock_ticks_per_second() -> Option<u64> {
    static TICKS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok()?;
        String::from_utf8(out.stdout)
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|&t| t > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_import_rate() {
        let out = "imported 96253 resources in 2.7 s (35089/s): 96253 created, 0 updated, 0 unchanged\n  Patient 10000\n";
        assert_eq!(reported_rate(out), Some(35089.0));
        assert_eq!(reported_rate("nothing"), None);
    }
}
