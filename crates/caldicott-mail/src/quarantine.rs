//! The mail quarantine, sealed in Caldicott's vault.
//!
//! Held messages carry patient data (outbound holds) and phishing payloads (inbound holds):
//! they are stored only sealed, as two entries of the vault's directory, each encrypted
//! (AES-256-GCM under the directory's data key, bound to its kind and key):
//!
//! - `mail-quarantine/<id>`: the [`Entry`] (JSON): id, received time, direction, envelope,
//!   verdict, score, symbols with their reasons, size, sender and subject;
//! - `mail-quarantine-message/<id>`: the message as the gateway received it, with its added
//!   header fields.
//!
//! Listing reads the small entries only. The message is written first and deleted last, so
//! an entry always has its message; a crash between leaves at worst a message without an
//! entry, which [`VaultQuarantine::orphans`] finds. Directory entries fit messages up to
//! the gateway's size limit: a value is one sealed blob in one row (SQLite and PostgreSQL
//! both take it; docs/mail.md gives the measured cost of a 25 MiB one).
//!
//! A release writes the message into the gateway's on-disk queue under the same id
//! ([`requeue`]), durably, and only then removes it from the quarantine: a crash between
//! leaves it in both, and releasing it again rewrites the same queue file (no duplicate
//! unless the first copy was already delivered). The running gateway picks released files
//! up by rescanning its queue (see [`crate::relay`]).
//!
//! `mark-not-spam` also keeps a sealed copy under `mail-ham-feedback/<id>`, and `delete` of
//! an inbound message (unless told it was deleted for another reason) one under
//! `mail-spam-feedback/<id>`; `caldicott mail train --quarantine-feedback` reads them as ham
//! and spam. The copies are purged with the held mail after the retention period
//! ([`VaultQuarantine::feedback_older_than`]), counted from when each was kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caldicott_vault::{Vault, VaultError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::check::Envelope;
use crate::queue::{QueuedEnvelope, write_durably};
use crate::smtp::Quarantine;
use crate::verdict::{Report, Verdict};

/// Directory kind of the entries (metadata).
pub const ENTRY_KIND: &str = "mail-quarantine";
/// Directory kind of the held messages.
pub const MESSAGE_KIND: &str = "mail-quarantine-message";
/// Directory kind of messages marked not spam, for training.
pub const HAM_KIND: &str = "mail-ham-feedback";
/// Directory kind of inbound messages deleted as spam, for training.
pub const SPAM_KIND: &str = "mail-spam-feedback";

/// Why a quarantine operation failed. Messages name the id, never message content.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("no quarantined message with id {0}")]
    NotFound(String),
    #[error("{0:?} is not a quarantine id (hexadecimal, as `quarantine list` shows)")]
    BadId(String),
    #[error("the quarantine entry {id} is unreadable: {why}")]
    Corrupt { id: String, why: String },
    #[error("the quarantine's vault: {0}")]
    Vault(#[from] VaultError),
    #[error("the mail queue {path}: {source}")]
    Queue {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which way the message was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received on the inbound (MX) port.
    Inbound,
    /// Submitted by an authenticated client.
    Outbound,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

/// One symbol as held: name, score and the reason a person reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldSymbol {
    pub name: String,
    pub score: f64,
    pub reason: String,
}

/// What is known about one held message (stored sealed; no body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Format version (1).
    pub v: u32,
    pub id: String,
    /// Unix seconds.
    pub received_at: i64,
    pub direction: Direction,
    pub client_ip: Option<String>,
    pub helo: Option<String>,
    /// Envelope sender (empty for the null sender).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub authenticated: bool,
    pub verdict: Verdict,
    pub score: f64,
    pub symbols: Vec<HeldSymbol>,
    /// Bytes of the held message.
    pub size: usize,
    /// The `From:` address and `Subject:` as parsed (for lists and the digest).
    pub from: Option<String>,
    pub subject: Option<String>,
}

impl Entry {
    /// The entry for a message the gateway holds now.
    pub fn new(
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        report: &Report,
        received_at: i64,
    ) -> Self {
        let parsed = mail_parser::MessageParser::new().parse_headers(message);
        let from = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| clip(a, 254));
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .map(|s| clip(s, 200));
        Self {
            v: 1,
            id: id.to_owned(),
            received_at,
            direction: if envelope.authenticated {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            client_ip: envelope.client_ip.map(|i| i.to_string()),
            helo: envelope.helo.clone(),
            mail_from: envelope.mail_from.clone().unwrap_or_default(),
            rcpt_to: envelope.rcpt_to.clone(),
            authenticated: envelope.authenticated,
            verdict: report.verdict,
            score: report.score,
            symbols: report
                .symbols
                .iter()
                .map(|s| HeldSymbol {
                    name: s.name.to_owned(),
                    score: s.score,
                    reason: s.reason.clone(),
                })
                .collect(),
            size: message.len(),
            from,
            subject,
        }
    }

    /// The symbols' names, strongest first, for one-line lists.
    pub fn reasons(&self) -> Vec<&str> {
        let mut s: Vec<&HeldSymbol> = self.symbols.iter().collect();
        s.sort_by(|a, b| b.score.total_cmp(&a.score));
        s.iter().map(|s| s.name.as_str()).collect()
    }
}

/// At most `n` characters, control characters replaced (they would garble a terminal).
fn clip(s: &str, n: usize) -> String {
    s.chars()
        .take(n)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Quarantine ids are the gateway's queue ids: hexadecimal.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_id(id: &str) -> Result<(), QuarantineError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(QuarantineError::BadId(id.chars().take(80).collect()))
    }
}

/// A message marked not spam: its id and bytes.
pub type HamMessage = (String, Zeroizing<Vec<u8>>);

/// The quarantine in the vault's directory.
#[derive(Clone)]
pub struct VaultQuarantine {
    vault: Arc<Vault>,
}

impl std::fmt::Debug for VaultQuarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultQuarantine").finish_non_exhaustive()
    }
}

const PAGE: usize = 500;

impl VaultQuarantine {
    pub fn new(vault: Arc<Vault>) -> Self {
        Self { vault }
    }

    /// Stores a held message: the message, then its entry.
    pub fn put(&self, entry: &Entry, message: &[u8]) -> Result<(), QuarantineError> {
        check_id(&entry.id)?;
        let json = serde_json::to_vec(entry).map_err(|e| QuarantineError::Corrupt {
            id: entry.id.clone(),
            why: e.to_string(),
        })?;
        self.vault.dir_put(MESSAGE_KIND, &entry.id, message, None)?;
        self.vault.dir_put(ENTRY_KIND, &entry.id, &json, None)?;
        Ok(())
    }

    fn keys(&self, kind: &str) -> Result<Vec<caldicott_vault::DirEntry>, QuarantineError> {
        let mut out: Vec<caldicott_vault::DirEntry> = Vec::new();
        loop {
            let after = out.last().map(|e| e.key.clone());
            let page = self.vault.dir_list(kind, after.as_deref(), PAGE)?;
            let n = page.len();
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    fn parse(id: &str, bytes: &[u8]) -> Result<Entry, QuarantineError> {
        serde_json::from_slice(bytes).map_err(|e| QuarantineError::Corrupt {
            id: id.to_owned(),
            why: e.to_string(),
        })
    }

    /// Every held message's entry, oldest first (ids begin with the arrival time).
    pub fn list(&self) -> Result<Vec<Entry>, QuarantineError> {
        self.keys(ENTRY_KIND)?
            .iter()
            .map(|e| Self::parse(&e.key, &e.value))
            .collect()
    }

    /// One entry.
    pub fn entry(&self, id: &str) -> Result<Entry, QuarantineError> {
        check_id(id)?;
        let e = self
            .vault
            .dir_get(ENTRY_KIND, id)?
            .ok_or_else(|| QuarantineError::NotFound(id.to_owned()))?;
        Self::parse(id, &e.value)
    }

    /// One held message, as received (with the gateway's fields).
    pub fn message(&self, id: &str) -> Result<Zeroizing<Vec<u8>>, QuarantineError> {
        check_id(id)?;
        Ok(self
            .vault
            .dir_get(MESSAGE_KIND, id)?
            .ok_or_else(|| QuarantineError::NotFound(id.to_owned()))?
            .value)
    }

    /// Removes a held message (entry first); its entry as it was.
    pub fn delete(&self, id: &str) -> Result<Entry, QuarantineError> {
        let entry = self.entry(id)?;
        self.vault.dir_delete(ENTRY_KIND, id)?;
        self.vault.dir_delete(MESSAGE_KIND, id)?;
        Ok(entry)
    }

    /// Messages without an entry (left by a crash between the two writes or deletes).
    pub fn orphans(&self) -> Result<Vec<String>, QuarantineError> {
        let entries: std::collections::BTreeSet<String> =
            self.keys(ENTRY_KIND)?.into_iter().map(|e| e.key).collect();
        Ok(self
            .keys(MESSAGE_KIND)?
            .into_iter()
            .map(|e| e.key)
            .filter(|k| !entries.contains(k))
            .collect())
    }

    /// Keeps a copy of a message as ham for training (replacing one kept under that id).
    pub fn add_ham(&self, id: &str, message: &[u8]) -> Result<(), QuarantineError> {
        check_id(id)?;
        let expect = self.vault.dir_get(HAM_KIND, id)?.map(|e| e.version);
        self.vault.dir_put(HAM_KIND, id, message, expect)?;
        Ok(())
    }

    /// The messages marked not spam, decrypted, by id.
    pub fn ham(&self) -> Result<Vec<HamMessage>, QuarantineError> {
        Ok(self
            .keys(HAM_KIND)?
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect())
    }

    /// Keeps a copy of a deleted inbound message as spam for training (replacing one kept
    /// under that id).
    pub fn add_spam(&self, id: &str, message: &[u8]) -> Result<(), QuarantineError> {
        check_id(id)?;
        let expect = self.vault.dir_get(SPAM_KIND, id)?.map(|e| e.version);
        self.vault.dir_put(SPAM_KIND, id, message, expect)?;
        Ok(())
    }

    /// The messages deleted as spam, decrypted, by id.
    pub fn spam(&self) -> Result<Vec<HamMessage>, QuarantineError> {
        Ok(self
            .keys(SPAM_KIND)?
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect())
    }

    /// The training copies (ham and spam) kept for longer than `retention` at `now` (Unix
    /// seconds), counted from when each was kept: `(kind, id)`, what a purge removes.
    pub fn feedback_older_than(
        &self,
        now: i64,
        retention: std::time::Duration,
    ) -> Result<Vec<(&'static str, String)>, QuarantineError> {
        let limit = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for kind in [HAM_KIND, SPAM_KIND] {
            for e in self.keys(kind)? {
                let kept = e.updated_at.div_euclid(1_000_000);
                if now.saturating_sub(kept) > limit {
                    out.push((kind, e.key));
                }
            }
        }
        Ok(out)
    }

    /// Removes one training copy (`kind` is [`HAM_KIND`] or [`SPAM_KIND`]); whether it was
    /// there.
    pub fn delete_feedback(&self, kind: &str, id: &str) -> Result<bool, QuarantineError> {
        check_id(id)?;
        if kind != HAM_KIND && kind != SPAM_KIND {
            return Err(QuarantineError::BadId(kind.chars().take(80).collect()));
        }
        Ok(self.vault.dir_delete(kind, id)?)
    }
}

impl Quarantine for VaultQuarantine {
    fn store(
        &self,
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        report: &Report,
    ) -> std::io::Result<()> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let entry = Entry::new(id, envelope, message, report, now);
        self.put(&entry, message).map_err(std::io::Error::other)
    }
}

/// The held messages that have been held for longer than `retention` at `now` (seconds
/// since the epoch), oldest first: what a retention period removes. A message received
/// "in the future" (a clock that moved back) is never due.
pub fn held_longer_than(
    entries: &[Entry],
    now: i64,
    retention: std::time::Duration,
) -> Vec<&Entry> {
    let limit = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let mut due: Vec<&Entry> = entries
        .iter()
        .filter(|e| now.saturating_sub(e.received_at) > limit)
        .collect();
    due.sort_by_key(|e| e.received_at);
    due
}

/// The message as a release sends it: the gateway's verdict fields removed (they said
/// "quarantine", and on outbound mail they would tell the recipient why it was held).
pub fn released_bytes(message: &[u8]) -> Vec<u8> {
    crate::smtp::headers::strip_forged(message)
}

/// Writes a released message into the gateway's queue directory under its quarantine id,
/// durably, as the gateway itself queues (a JSON line, then the message). The arrival time
/// is the release time, so `max_queue_age` counts from the release. Creates the queue's
/// directories if the gateway never ran. Returns the queue file's path.
pub fn requeue(
    queue_dir: &Path,
    entry: &Entry,
    message: &[u8],
) -> Result<PathBuf, QuarantineError> {
    check_id(&entry.id)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| QuarantineError::Queue { path, source }
    };
    for sub in ["msg", "tmp"] {
        let p = queue_dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let message = released_bytes(message);
    let env = QueuedEnvelope {
        v: 1,
        id: entry.id.clone(),
        mail_from: entry.mail_from.clone(),
        rcpt_to: entry.rcpt_to.clone(),
        received_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        smtputf8: !entry.mail_from.is_ascii() || entry.rcpt_to.iter().any(|r| !r.is_ascii()),
        body_8bit: !message.is_ascii(),
    };
    let json = serde_json::to_vec(&env).map_err(|e| QuarantineError::Corrupt {
        id: entry.id.clone(),
        why: e.to_string(),
    })?;
    // A name of its own in tmp/: the gateway names its temporary files by bare id.
    let tmp = queue_dir.join("tmp").join(format!("{}.release", entry.id));
    let dest = queue_dir.join("msg").join(&entry.id);
    write_durably(&tmp, &dest, &[&json, b"\n", &message]).map_err(io(&dest))?;
    Ok(dest)
}

/// A summary of the quarantine: counts by reason and one line per held message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// Unix seconds: messages held since then are counted.
    pub since: i64,
    pub held: usize,
    pub inbound: usize,
    pub outbound: usize,
    /// Symbol name → messages it fired on.
    pub by_reason: BTreeMap<String, usize>,
    pub messages: Vec<DigestLine>,
}

/// One held message in a digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestLine {
    pub id: String,
    pub received_at: i64,
    pub direction: Direction,
    pub sender: String,
    pub subject: String,
    pub reasons: Vec<String>,
}

impl Digest {
    /// The digest of the entries received at or after `since` (pure).
    pub fn build(entries: &[Entry], since: i64) -> Self {
        let mut d = Digest {
            since,
            held: 0,
            inbound: 0,
            outbound: 0,
            by_reason: BTreeMap::new(),
            messages: Vec::new(),
        };
        for e in entries.iter().filter(|e| e.received_at >= since) {
            d.held += 1;
            match e.direction {
                Direction::Inbound => d.inbound += 1,
                Direction::Outbound => d.outbound += 1,
            }
            for s in &e.symbols {
                // Symbols that only lowered the score are no reason for a hold.
                if s.score > 0.0 || s.name == crate::outbound::OUTBOUND_PID_INSECURE {
                    *d.by_reason.entry(s.name.clone()).or_default() += 1;
                }
            }
            d.messages.push(DigestLine {
                id: e.id.clone(),
                received_at: e.received_at,
                direction: e.direction,
                sender: e.from.clone().unwrap_or_else(|| e.mail_from.clone()),
                subject: e.subject.clone().unwrap_or_default(),
                reasons: e.reasons().into_iter().take(5).map(str::to_owned).collect(),
            });
        }
        d
    }

    /// The digest as plain text (lines under 998 bytes, as mail needs).
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "Caldicott mail quarantine: {} message(s) held since {} ({} inbound, {} outbound).\n",
            self.held,
            format_time(self.since),
            self.inbound,
            self.outbound
        );
        if !self.by_reason.is_empty() {
            t.push_str("\nBy reason:\n");
            let mut by: Vec<(&String, &usize)> = self.by_reason.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (name, n) in by {
                t.push_str(&format!("  {n:>5}  {name}\n"));
            }
        }
        if !self.messages.is_empty() {
            t.push_str("\nHeld messages:\n");
            for m in &self.messages {
                t.push_str(&format!(
                    "  {}  {}  {:<8}  from {}  subject {:?}\n      {}\n",
                    m.id,
                    format_time(m.received_at),
                    m.direction.to_string(),
                    clip(&m.sender, 120),
                    clip(&m.subject, 120),
                    m.reasons.join(", ")
                ));
            }
            t.push_str(
                "\nRelease or delete with `caldicott mail quarantine release|delete ID --by USER`.\n",
            );
        }
        t
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
}

/// The digest as an RFC 5322 message (plain text, UTF-8, 8bit), built by hand: a handful
/// of fields whose values are our own or checked addresses.
pub fn digest_message(from: &str, to: &str, hostname: &str, digest: &Digest, now: i64) -> Vec<u8> {
    let date = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default();
    let body = digest.to_text().replace('\n', "\r\n");
    format!(
        "Date: {date}\r\nFrom: {from}\r\nTo: {to}\r\nSubject: Caldicott mail quarantine digest: {} held\r\n\
         Message-ID: <digest.{now}.{:08x}@{hostname}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        digest.held,
        rand::random::<u32>()
    )
    .into_bytes()
}

/// Queues the digest for `to` in the gateway's queue; returns the queue id.
pub fn queue_digest(
    queue_dir: &Path,
    from: &str,
    to: &str,
    hostname: &str,
    digest: &Digest,
) -> Result<String, QuarantineError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let message = digest_message(from, to, hostname, digest, now);
    let entry = Entry {
        v: 1,
        id: crate::queue::new_id(),
        received_at: now,
        direction: Direction::Outbound,
        client_ip: None,
        helo: None,
        mail_from: from.to_owned(),
        rcpt_to: vec![to.to_owned()],
        authenticated: true,
        verdict: Verdict::Accept,
        score: 0.0,
        symbols: Vec::new(),
        size: message.len(),
        from: Some(from.to_owned()),
        subject: None,
    };
    requeue(queue_dir, &entry, &message)?;
    Ok(entry.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_picks_what_was_held_too_long() {
        let entry = |id: &str, at: i64| {
            let envelope = Envelope {
                client_ip: None,
                helo: None,
                mail_from: Some("a@b.example".into()),
                rcpt_to: vec!["c@d.example".into()],
                authenticated: false,
            };
            let report = crate::Scanner::new(crate::MailConfig::default(), None)
                .unwrap()
                .scan(b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n");
            Entry::new(id, &envelope, b"From: a@b.example\r\n\r\nx", &report, at)
        };
        let day = 86_400;
        let now = 100 * day;
        let entries = vec![
            entry("new", now - day),
            entry("old", now - 31 * day),
            entry("older", now - 40 * day),
            entry("edge", now - 30 * day),
            entry("future", now + day),
        ];
        let due: Vec<&str> = held_longer_than(
            &entries,
            now,
            std::time::Duration::from_secs(30 * day as u64),
        )
        .iter()
        .map(|e| e.id.as_str())
        .collect();
        assert_eq!(due, vec!["older", "old"]);
    }

    fn entry(id: &str, at: i64, dir: Direction, syms: &[(&str, f64)]) -> Entry {
        Entry {
            v: 1,
            id: id.into(),
            received_at: at,
            direction: dir,
            client_ip: None,
            helo: None,
            mail_from: "s@x.org".into(),
            rcpt_to: vec!["r@y.org".into()],
            authenticated: dir == Direction::Outbound,
            verdict: Verdict::Quarantine,
            score: 9.0,
            symbols: syms
                .iter()
                .map(|(n, s)| HeldSymbol {
                    name: (*n).into(),
                    score: *s,
                    reason: "r".into(),
                })
                .collect(),
            size: 10,
            from: Some("From@x.org".into()),
            subject: Some("Hello".into()),
        }
    }

    #[test]
    fn digest_counts_reasons_since() {
        let es = [
            entry("01", 100, Direction::Inbound, &[("A", 5.0), ("HAM", -1.0)]),
            entry("02", 200, Direction::Inbound, &[("A", 5.0), ("B", 2.0)]),
            entry(
                "03",
                300,
                Direction::Outbound,
                &[(crate::outbound::OUTBOUND_PID_INSECURE, 0.0)],
            ),
        ];
        let d = Digest::build(&es, 150);
        assert_eq!((d.held, d.inbound, d.outbound), (2, 1, 1));
        assert_eq!(d.by_reason.get("A"), Some(&1));
        assert_eq!(d.by_reason.get("B"), Some(&1));
        assert_eq!(
            d.by_reason.get(crate::outbound::OUTBOUND_PID_INSECURE),
            Some(&1)
        );
        assert!(!d.by_reason.contains_key("HAM"));
        assert_eq!(d.messages[0].reasons, ["A", "B"]);
        let text = d.to_text();
        assert!(text.contains("2 message(s) held"), "{text}");
        assert!(text.lines().all(|l| l.len() < 998));
        let m = digest_message("p@h", "o@h", "h", &d, 1_700_000_000);
        let parsed = mail_parser::MessageParser::new().parse(&m).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Caldicott mail quarantine digest: 2 held")
        );
    }

    #[test]
    fn ids() {
        assert!(valid_id("0001a2b3c4d5e6f7"));
        assert!(!valid_id("../etc") && !valid_id("") && !valid_id("xyz"));
    }
}
