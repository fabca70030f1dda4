//! The Python helpers of the gateway tests: the interpreter from `CALDICOTT_TEST_PYTHON`
//! (tests print SKIPPED and pass without it, unless `CALDICOTT_REQUIRE_PYTHON=1`) and the
//! `aiosmtpd` next hop (`tests/python/smtp_sink.py`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn python() -> Option<PathBuf> {
    match std::env::var_os("CALDICOTT_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            assert!(
                std::env::var("CALDICOTT_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "CALDICOTT_REQUIRE_PYTHON=1 but CALDICOTT_TEST_PYTHON is not set"
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: the SMTP sink needs CALDICOTT_TEST_PYTHON (cargo xtask test sets it)"
            );
            None
        }
    }
}

/// A script in the repository's `tests/python`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

/// A Python helper (DNS server, sink, HTTPS host...) that prints `PORT <n>` when ready;
/// killed on drop.
pub struct Proc {
    child: Child,
    pub port: u16,
}

impl Proc {
    pub fn start(python: &Path, args: &[&std::ffi::OsStr]) -> Proc {
        let mut child = Command::new(python)
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a Python helper");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("the helper's stdout is piped"))
            .read_line(&mut line)
            .expect("read the helper's first line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("helper {args:?} said {line:?}"))
            .parse()
            .expect("a port number");
        Proc { child, port }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The aiosmtpd next hop, killed on drop.
pub struct Sink {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Sink {
    pub fn start(python: &Path, dir: &Path, port: u16, extra: &[&str]) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(dir)
            .args(["--port", &port.to_string()])
            .args(extra)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start smtp_sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("sink said {line:?}"))
            .parse()
            .unwrap();
        Sink {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    /// The stored messages (sorted), waiting up to `secs` for at least `n`.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<(Vec<u8>, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn messages(&self) -> Vec<(Vec<u8>, serde_json::Value)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|j| {
                let meta = serde_json::from_slice(&std::fs::read(j).unwrap()).unwrap();
                (std::fs::read(j.with_extension("eml")).unwrap(), meta)
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
