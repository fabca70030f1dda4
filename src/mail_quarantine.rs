//! `caldicott mail quarantine`: the privacy officer's view of the mail gateway's quarantine,
//! which the gateway keeps sealed in the vault (`caldicott_mail::quarantine`).
//!
//! `list` and `show` (headers and symbols) read entries; `show --raw`, `release`, `delete`
//! and `mark-not-spam` touch message content or its fate, so they name the person acting
//! (`--by`, a caldicott-guardian or sysadmin in the access directory) and each is appended
//! to the audit ledger as an `admin` event carrying the message id, never its content.
//! `digest` prints a summary or, with `--send`, queues it as mail through the gateway.
//! `delete` of inbound mail keeps a sealed copy as spam for `mail train
//! --quarantine-feedback` (unless `--no-feedback`).
//!
//! [`purge`] and [`send_digest`] are what the commands run and what the gateway's daily
//! scheduler ([`schedule`], `[gateway.quarantine]`) runs: one code path for both.

pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use caldicott_mail::quarantine::{self, Digest, Direction, Entry, VaultQuarantine};
use clap::Subcommand;

/// Roles that may act on quarantined mail.
const ROLES: [&str; 2] = ["caldicott-guardian", "sysadmin"];

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// Lists held messages with the reasons for each (oldest first).
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// One JSON object per message per line (the whole entry).
        #[arg(long)]
        json: bool,
    },
    /// Shows one held message: envelope, headers and symbols with reasons; the whole message
    /// only with `--raw` (which needs `--by` and is audited).
    Show {
        id: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// Print the message as received (recorded in the audit ledger).
        #[arg(long, requires = "by")]
        raw: bool,
        /// The entry as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Who is reading (a caldicott-guardian or sysadmin); needed with --raw.
        #[arg(long)]
        by: Option<String>,
    },
    /// Releases a held message into the gateway's queue for delivery (inbound to the
    /// mailbox, outbound on to its recipients) and removes it from the quarantine.
    Release {
        id: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The gateway's configuration (for its queue directory).
        #[arg(long)]
        config: PathBuf,
        /// Who releases it (a caldicott-guardian or sysadmin).
        #[arg(long)]
        by: String,
        /// Why, for the audit ledger.
        #[arg(long, default_value = "released from mail quarantine")]
        reason: String,
    },
    /// Deletes a held message for good. An inbound message is kept (sealed) as spam for
    /// `caldicott mail train --quarantine-feedback` unless `--no-feedback`.
    Delete {
        id: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// Who deletes it (a caldicott-guardian or sysadmin).
        #[arg(long)]
        by: String,
        /// Why, for the audit ledger.
        #[arg(long, default_value = "deleted from mail quarantine")]
        reason: String,
        /// Deleted for another reason than being spam: keep no copy for training.
        #[arg(long)]
        no_feedback: bool,
    },
    /// Deletes every message held for longer than the retention period (each deletion
    /// recorded in the audit ledger); run it daily from cron or a systemd timer.
    Purge {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The retention period: a duration such as `30d` (what the organisation's records
        /// policy says; held mail is evidence while it is investigated, then clutter).
        #[arg(long)]
        older_than: String,
        /// Who purges (a caldicott-guardian or sysadmin).
        #[arg(long)]
        by: String,
        /// List what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Releases an inbound message and keeps a sealed copy as ham, so that
    /// `caldicott mail train --quarantine-feedback DATA` learns from it.
    MarkNotSpam {
        id: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        by: String,
    },
    /// A summary of what was held: counts by reason and one line per message. Printed, or
    /// with `--send` queued through the gateway as mail to `--to`.
    Digest {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// How far back (a duration: `24h`, `7d`; default one day).
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long)]
        json: bool,
        /// Queue the digest as an email (needs --to and --config).
        #[arg(long, requires_all = ["to", "config"])]
        send: bool,
        /// The privacy officer's address.
        #[arg(long)]
        to: Option<String>,
        /// The sender (default `postmaster@<gateway hostname>`).
        #[arg(long)]
        from: Option<String>,
        /// The gateway's configuration (queue directory, hostname).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// An opened data directory with its quarantine.
pub struct Opened {
    dir: crate::datadir::DataDir,
    vault: Arc<caldicott_vault::Vault>,
    q: VaultQuarantine,
}

impl Opened {
    /// The quarantine of an already opened vault (the gateway's).
    pub fn new(dir: crate::datadir::DataDir, vault: Arc<caldicott_vault::Vault>) -> Self {
        Self {
            q: VaultQuarantine::new(Arc::clone(&vault)),
            dir,
            vault,
        }
    }
}

fn open(data: &Path, database: Option<String>) -> anyhow::Result<Opened> {
    let dir = crate::load(data, database)?;
    let vault = Arc::new(dir.open_vault()?);
    Ok(Opened::new(dir, vault))
}

/// The acting user: known, enabled, and a caldicott-guardian or sysadmin.
fn actor(o: &Opened, name: &str, doing: &str) -> anyhow::Result<caldicott_access::User> {
    check_actor(o, name, doing, "--by")
}

/// [`actor`]'s rules, with errors naming where the user was given (`--by`, or the
/// configuration key `gateway.quarantine.purge_as`).
pub fn check_actor(
    o: &Opened,
    name: &str,
    doing: &str,
    key: &str,
) -> anyhow::Result<caldicott_access::User> {
    let directory = caldicott_access::Directory::new(Arc::clone(&o.vault));
    let u = directory
        .user(name)?
        .with_context(|| format!("{key}: no user {name} in the access directory"))?;
    if u.disabled {
        bail!("{key}: user {name} is disabled");
    }
    if !ROLES.contains(&u.role.as_str()) {
        bail!(
            "{key}: user {name} has the role {}; {doing} quarantined mail needs {}",
            u.role,
            ROLES.join(" or ")
        );
    }
    Ok(u)
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Held messages.
    pub messages: usize,
    /// Training copies (ham and spam feedback).
    pub feedback: usize,
}

/// The retention purge: deletes every message held for longer than `retention` at `now`
/// (Unix seconds), and every training copy kept that long, each recorded in the audit
/// ledger (`mail-purge`, `mail-purge-feedback`) before it goes. `label` is the period as
/// written (`30d`), for the reason. The `purge` command and the gateway's scheduler.
pub fn purge(
    o: &Opened,
    by: &caldicott_access::User,
    retention: std::time::Duration,
    label: &str,
    now: i64,
) -> anyhow::Result<Purged> {
    let entries = o.q.list()?;
    let due = quarantine::held_longer_than(&entries, now, retention);
    let reason = format!("retention: held longer than {label}");
    for e in &due {
        audit(o, by, "mail-purge", &e.id, &reason)?;
        o.q.delete(&e.id)?;
    }
    let feedback = o.q.feedback_older_than(now, retention)?;
    let reason = format!("retention: training copy kept longer than {label}");
    for (kind, id) in &feedback {
        audit(o, by, "mail-purge-feedback", id, &reason)?;
        o.q.delete_feedback(kind, id)?;
    }
    Ok(Purged {
        messages: due.len(),
        feedback: feedback.len(),
    })
}

/// Builds the digest of what was held since `since` (Unix seconds) and queues it through
/// the gateway's queue from `from` to `to` (both checked addresses); the queue id and the
/// number of messages it lists. The `digest --send` command and the gateway's scheduler.
pub fn send_digest(
    o: &Opened,
    gw: &caldicott_mail::config::GatewayConfig,
    from: &str,
    to: &str,
    since: i64,
) -> anyhow::Result<(String, usize)> {
    let digest = Digest::build(&o.q.list()?, since);
    let qid = quarantine::queue_digest(&gw.queue_dir, from, to, &gw.hostname, &digest)?;
    Ok((qid, digest.held))
}

/// Appends an `admin` event naming the message id (never its content).
fn audit(
    o: &Opened,
    by: &caldicott_access::User,
    action: &str,
    id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    crate::ledger_local::record_admin(
        &o.dir,
        &o.vault,
        &crate::ledger_local::AdminAction {
            by,
            action,
            rtype: "MailMessage",
            id,
            purpose: "mail-quarantine",
            reason,
        },
    )
}

fn gateway_config(path: &Path) -> anyhow::Result<caldicott_mail::config::GatewayConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = caldicott_mail::MailConfig::from_toml_str(&text)
        .with_context(|| format!("{}", path.display()))?;
    config
        .gateway
        .with_context(|| format!("{} has no [gateway] section", path.display()))
}

fn one_line(e: &Entry) -> String {
    format!(
        "{}  {}  {:<8}  {:>7} B  from {}  to {}  subject {:?}\n    {}",
        e.id,
        quarantine::format_time(e.received_at),
        e.direction.to_string(),
        e.size,
        e.from.as_deref().unwrap_or(&e.mail_from),
        e.rcpt_to.join(", "),
        e.subject.as_deref().unwrap_or(""),
        e.symbols
            .iter()
            .filter(|s| s.score != 0.0 || s.name.starts_with("OUTBOUND_"))
            .map(|s| format!("{} ({:+.2}): {}", s.name, s.score, s.reason))
            .collect::<Vec<_>>()
            .join("\n    ")
    )
}

/// The header section of a message (up to the empty line).
fn headers(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| message.windows(2).position(|w| w == b"\n\n").map(|i| i + 1))
        .unwrap_or(message.len());
    &message[..end]
}

pub fn run(cmd: QuarantineCommand) -> anyhow::Result<()> {
    match cmd {
        QuarantineCommand::List {
            data,
            database,
            json,
        } => {
            let o = open(&data, database)?;
            let entries = o.q.list()?;
            for e in &entries {
                if json {
                    say!("{}", serde_json::to_string(e)?);
                } else {
                    say!("{}", one_line(e));
                }
            }
            if !json {
                say!("{} message(s) held", entries.len());
            }
            Ok(())
        }
        QuarantineCommand::Show {
            id,
            data,
            database,
            raw,
            json,
            by,
        } => {
            let o = open(&data, database)?;
            let entry = o.q.entry(&id)?;
            if raw {
                let by = by.context("--raw needs --by")?;
                let u = actor(&o, &by, "reading")?;
                let message = o.q.message(&id)?;
                audit(&o, &u, "mail-show-raw", &id, "read a quarantined message")?;
                use std::io::Write as _;
                std::io::stdout().write_all(&message)?;
                return Ok(());
            }
            if json {
                say!("{}", serde_json::to_string_pretty(&entry)?);
                return Ok(());
            }
            let message = o.q.message(&id)?;
            say!(
                "id:         {}\nreceived:   {}\ndirection:  {}\nclient:     {} (HELO {})\n\
                 mail from:  <{}>\nrcpt to:    {}\nverdict:    {} (score {:.2})\nsize:       {} bytes\n\
                 symbols:",
                entry.id,
                quarantine::format_time(entry.received_at),
                entry.direction,
                entry.client_ip.as_deref().unwrap_or("-"),
                entry.helo.as_deref().unwrap_or("-"),
                entry.mail_from,
                entry.rcpt_to.join(", "),
                entry.verdict,
                entry.score,
                entry.size
            );
            for s in &entry.symbols {
                say!("  {} ({:+.2}): {}", s.name, s.score, s.reason);
            }
            say!("headers:");
            say!("{}", String::from_utf8_lossy(headers(&message)).trim_end());
            say!("(body not shown; --raw --by USER prints the whole message)");
            Ok(())
        }
        QuarantineCommand::Release {
            id,
            data,
            database,
            config,
            by,
            reason,
        } => {
            let gw = gateway_config(&config)?;
            let o = open(&data, database)?;
            let u = actor(&o, &by, "releasing")?;
            let entry = o.q.entry(&id)?;
            let message = o.q.message(&id)?;
            // Recorded before anything happens: no release goes unaudited. Should the
            // queueing fail after this, the message stays held and a second release
            // (recorded again) rewrites the same queue file.
            audit(&o, &u, "mail-release", &id, &reason)?;
            let path = quarantine::requeue(&gw.queue_dir, &entry, &message)?;
            o.q.delete(&id)?;
            say!(
                "released {id} ({} to {}) into the queue: {}",
                entry.direction,
                entry.rcpt_to.join(", "),
                path.display()
            );
            Ok(())
        }
        QuarantineCommand::Delete {
            id,
            data,
            database,
            by,
            reason,
            no_feedback,
        } => {
            let o = open(&data, database)?;
            let u = actor(&o, &by, "deleting")?;
            let entry = o.q.entry(&id)?;
            // Outbound holds are the organisation's own mail held for its content: never spam.
            let feedback = !no_feedback && entry.direction == Direction::Inbound;
            let reason = if feedback {
                format!("{reason}; kept as spam for training")
            } else {
                reason
            };
            audit(&o, &u, "mail-delete", &id, &reason)?;
            if feedback {
                let message = o.q.message(&id)?;
                o.q.add_spam(&id, &quarantine::released_bytes(&message))?;
            }
            o.q.delete(&id)?;
            if feedback {
                say!(
                    "deleted {id} and kept it as spam for `caldicott mail train --quarantine-feedback`"
                );
            } else {
                say!("deleted {id}");
            }
            Ok(())
        }
        QuarantineCommand::Purge {
            data,
            database,
            older_than,
            by,
            dry_run,
        } => {
            let retention =
                caldicott_mail::config::parse_duration(&older_than).with_context(|| {
                    format!("--older-than {older_than:?} is not a duration such as 30d")
                })?;
            if retention.is_zero() {
                bail!("--older-than must be longer than nothing");
            }
            let o = open(&data, database)?;
            let u = actor(&o, &by, "purging")?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if dry_run {
                let entries = o.q.list()?;
                let due = quarantine::held_longer_than(&entries, now, retention);
                for e in &due {
                    say!(
                        "would delete {} (held since {})",
                        e.id,
                        quarantine::format_time(e.received_at)
                    );
                }
                let feedback = o.q.feedback_older_than(now, retention)?;
                for (kind, id) in &feedback {
                    say!("would delete the training copy {kind}/{id}");
                }
                say!(
                    "{} message(s) held and {} training cop(ies) kept longer than {older_than} \
                     (dry run: none deleted)",
                    due.len(),
                    feedback.len()
                );
                return Ok(());
            }
            let p = purge(&o, &u, retention, &older_than, now)?;
            say!(
                "purged {} message(s) held and {} training cop(ies) kept longer than {older_than}",
                p.messages,
                p.feedback
            );
            Ok(())
        }
        QuarantineCommand::MarkNotSpam {
            id,
            data,
            database,
            config,
            by,
        } => {
            let gw = gateway_config(&config)?;
            let o = open(&data, database)?;
            let u = actor(&o, &by, "releasing")?;
            let entry = o.q.entry(&id)?;
            if entry.direction == Direction::Outbound {
                bail!(
                    "{id} is outbound mail held for its content, not spam; use `release` to send it on"
                );
            }
            let message = o.q.message(&id)?;
            audit(
                &o,
                &u,
                "mail-mark-not-spam",
                &id,
                "released and kept as ham for training",
            )?;
            o.q.add_ham(&id, &quarantine::released_bytes(&message))?;
            let path = quarantine::requeue(&gw.queue_dir, &entry, &message)?;
            o.q.delete(&id)?;
            say!(
                "released {id} into the queue ({}) and kept it as ham for `caldicott mail train --quarantine-feedback`",
                path.display()
            );
            Ok(())
        }
        QuarantineCommand::Digest {
            data,
            database,
            since,
            json,
            send,
            to,
            from,
            config,
        } => {
            let secs = caldicott_mail::config::parse_duration(&since).with_context(|| {
                format!("--since {since:?} is not a duration such as 24h or 7d")
            })?;
            let o = open(&data, database)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let since = now - secs.as_secs() as i64;
            if send {
                let (Some(to), Some(config)) = (to, config) else {
                    bail!("--send needs --to and --config");
                };
                if !to.contains('@') || to.contains(['<', '>', ' ', '\r', '\n']) {
                    bail!("--to {to:?} is not an email address");
                }
                let gw = gateway_config(&config)?;
                let from = from.unwrap_or_else(|| format!("postmaster@{}", gw.hostname));
                if !from.contains('@') || from.contains(['<', '>', ' ', '\r', '\n']) {
                    bail!("--from {from:?} is not an email address");
                }
                let (qid, held) = send_digest(&o, &gw, &from, &to, since)?;
                say!("digest of {held} held message(s) queued for {to} as {qid}");
                return Ok(());
            }
            let digest = Digest::build(&o.q.list()?, since);
            if json {
                say!("{}", serde_json::to_string_pretty(&digest)?);
            } else {
                say!("{}", digest.to_text().trim_end());
            }
            Ok(())
        }
    }
}

/// Training messages decided in the quarantine.
pub struct Feedback {
    /// Marked not spam (`mark-not-spam`).
    pub ham: Vec<zeroize::Zeroizing<Vec<u8>>>,
    /// Deleted as spam (`delete` of inbound mail without `--no-feedback`).
    pub spam: Vec<zeroize::Zeroizing<Vec<u8>>>,
}

/// The quarantine's decisions, for `caldicott mail train --quarantine-feedback`.
pub fn feedback(data: &Path) -> anyhow::Result<Feedback> {
    let o = open(data, std::env::var("CALDICOTT_DATABASE").ok())?;
    Ok(Feedback {
        ham: o.q.ham()?.into_iter().map(|(_, m)| m).collect(),
        spam: o.q.spam()?.into_iter().map(|(_, m)| m).collect(),
    })
}
