//! The gateway's durable outbound queue: one file per message, on disk before the client is
//! told `250`.
//!
//! Layout under the queue directory:
//!
//! - `msg/<id>`: one line of JSON (the [`QueuedEnvelope`]), a newline, then the raw message.
//!   Written to `tmp/<id>`, fsynced, renamed into `msg/`, and `msg/` fsynced: after
//!   [`Queue::enqueue`] returns, the message survives a crash or `kill -9`. It never changes
//!   afterwards.
//! - `state/<id>`: the delivery state (attempts, next attempt, recipients still pending, last
//!   error) as JSON, replaced atomically the same way after each attempt. It is advisory: if a
//!   crash loses an update, a message is retried sooner or a recipient is delivered twice;
//!   never is a message lost.
//! - `tmp/`: half-written files; emptied at start (nothing in it was ever acknowledged).
//! - `corrupt/`: files that could not be read back, kept for a person to look at.
//!
//! All functions here block (file I/O and fsync); the server calls them on tokio's blocking
//! pool.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a queued message could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("queue file {path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("{0:?} is not a queue id")]
    BadId(String),
}

/// What the SMTP session knew about a queued message. Never changes once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEnvelope {
    /// Format version (1).
    pub v: u32,
    pub id: String,
    /// The envelope sender; empty for the null sender (bounces), which is never bounced to.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// When the gateway accepted it (Unix seconds).
    pub received_at: i64,
    /// The client asked for SMTPUTF8 (an address is not ASCII).
    #[serde(default)]
    pub smtputf8: bool,
    /// The message has 8-bit bytes (relayed with `BODY=8BITMIME`).
    #[serde(default)]
    pub body_8bit: bool,
}

/// Where a queued message stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    pub attempts: u32,
    /// Unix milliseconds of the next attempt.
    pub next_attempt_ms: i64,
    /// Recipients not yet delivered or failed.
    pub pending: Vec<String>,
    pub last_error: Option<String>,
}

/// A new queue id: time first (so a listing sorts by age), then randomness.
pub fn new_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{micros:014x}{:08x}", rand::random::<u32>())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// fsyncs a directory, so a rename or removal in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `tmp`, fsyncs it, renames it to `dest` and fsyncs `dest`'s directory.
pub(crate) fn write_durably(tmp: &Path, dest: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut f = File::create(tmp)?;
    for p in parts {
        f.write_all(p)?;
    }
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, dest)?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

impl Queue {
    /// Opens (creating) the queue directory and empties its `tmp/`.
    pub fn open(dir: &Path) -> Result<Self, QueueError> {
        for sub in ["msg", "state", "tmp", "corrupt"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let tmp = dir.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, sub: &str, id: &str) -> Result<PathBuf, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::BadId(id.to_owned()));
        }
        Ok(self.dir.join(sub).join(id))
    }

    /// Stores a message durably (see the module documentation). Only after this returns may
    /// the client be told `250`.
    pub fn enqueue(&self, env: &QueuedEnvelope, message: &[u8]) -> Result<(), QueueError> {
        let dest = self.path("msg", &env.id)?;
        let tmp = self.path("tmp", &env.id)?;
        let json = serde_json::to_vec(env).map_err(|e| QueueError::Corrupt {
            path: dest.clone(),
            why: e.to_string(),
        })?;
        write_durably(&tmp, &dest, &[&json, b"\n", message]).map_err(io_err(&dest))
    }

    /// The ids of every queued message, oldest first.
    pub fn list(&self) -> Result<Vec<String>, QueueError> {
        let msg = self.dir.join("msg");
        let mut ids: Vec<String> = fs::read_dir(&msg)
            .map_err(io_err(&msg))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| valid_id(n))
            .collect();
        ids.sort();
        // State files whose message is gone (a crash between the two removals).
        let state = self.dir.join("state");
        if let Ok(rd) = fs::read_dir(&state) {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && ids.binary_search_by(|i| i.as_str().cmp(n)).is_err()
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(ids)
    }

    /// Reads a queued message back.
    pub fn load(&self, id: &str) -> Result<(QueuedEnvelope, Vec<u8>), QueueError> {
        let path = self.path("msg", id)?;
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let corrupt = |why: &str| QueueError::Corrupt {
            path: path.clone(),
            why: why.to_owned(),
        };
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no envelope line"))?;
        let env: QueuedEnvelope =
            serde_json::from_slice(&bytes[..nl]).map_err(|e| corrupt(&e.to_string()))?;
        if env.v != 1 || env.id != id {
            return Err(corrupt("envelope version or id does not match"));
        }
        Ok((env, bytes[nl + 1..].to_vec()))
    }

    /// Moves an unreadable message aside (kept for a person, out of the delivery loop).
    pub fn set_aside(&self, id: &str) -> Result<(), QueueError> {
        let from = self.path("msg", id)?;
        let to = self.path("corrupt", id)?;
        fs::rename(&from, &to).map_err(io_err(&from))?;
        let _ = fs::remove_file(self.path("state", id)?);
        sync_dir(&self.dir.join("msg")).map_err(io_err(&from))
    }

    /// The delivery state, or the initial one (all recipients pending, due now).
    pub fn state(&self, env: &QueuedEnvelope) -> DeliveryState {
        let initial = DeliveryState {
            attempts: 0,
            next_attempt_ms: 0,
            pending: env.rcpt_to.clone(),
            last_error: None,
        };
        let Ok(path) = self.path("state", &env.id) else {
            return initial;
        };
        fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(initial)
    }

    /// Replaces the delivery state atomically.
    pub fn save_state(&self, id: &str, state: &DeliveryState) -> Result<(), QueueError> {
        let dest = self.path("state", id)?;
        let tmp = self.dir.join("tmp").join(format!("{id}.state"));
        let json = serde_json::to_vec(state).map_err(|e| QueueError::Corrupt {
            path: dest.clone(),
            why: e.to_string(),
        })?;
        write_durably(&tmp, &dest, &[&json]).map_err(io_err(&dest))
    }

    /// Removes a message that is done with (delivered, or bounced).
    pub fn remove(&self, id: &str) -> Result<(), QueueError> {
        let msg = self.path("msg", id)?;
        match fs::remove_file(&msg) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&msg)(e)),
        }
        sync_dir(&self.dir.join("msg")).map_err(io_err(&msg))?;
        let _ = fs::remove_file(self.path("state", id)?);
        Ok(())
    }
}

/// The wait before attempt `attempts + 1`, given that `attempts` have failed (at least one):
/// the schedule's entries in turn, the last one repeating.
pub fn retry_delay(schedule: &[std::time::Duration], attempts: u32) -> std::time::Duration {
    let i = (attempts.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    schedule
        .get(i)
        .copied()
        .unwrap_or(std::time::Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn enqueue_load_state_remove() {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::open(t.path()).unwrap();
        let env = QueuedEnvelope {
            v: 1,
            id: new_id(),
            mail_from: "a@b.example".into(),
            rcpt_to: vec!["c@d.example".into()],
            received_at: 1,
            smtputf8: false,
            body_8bit: false,
        };
        q.enqueue(&env, b"Subject: x\r\n\r\nbody\n\r\n").unwrap();
        assert_eq!(q.list().unwrap(), vec![env.id.clone()]);
        let (e2, raw) = q.load(&env.id).unwrap();
        assert_eq!(e2, env);
        assert_eq!(raw, b"Subject: x\r\n\r\nbody\n\r\n");
        let mut s = q.state(&env);
        assert_eq!(s.pending, env.rcpt_to);
        s.attempts = 2;
        q.save_state(&env.id, &s).unwrap();
        assert_eq!(q.state(&env).attempts, 2);
        q.remove(&env.id).unwrap();
        assert!(q.list().unwrap().is_empty());
        assert!(q.load("../x").is_err());
    }

    #[test]
    fn schedule_repeats_its_last_wait() {
        let s = [Duration::from_secs(60), Duration::from_secs(300)];
        assert_eq!(retry_delay(&s, 1), s[0]);
        assert_eq!(retry_delay(&s, 2), s[1]);
        assert_eq!(retry_delay(&s, 9), s[1]);
    }
}
