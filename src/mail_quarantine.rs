//! `caldicott mail quarantine`: the privacy officer's view of the mail gateway's quarantine,
//! which the gateway keeps sealed in the vault (`caldicott_mail::quarantine`).
//!
//! `list` and `show` (headers and symbols) read entries; `show --raw`, `release`, `delete`
//! and `mark-not-spam` touch message content or its fate, so they name the person acting
//! (`--by`, a caldicott-guardian or sysadmin in the access directory) and each is appended
//! to the audit ledger as an `admin` event carrying the message id, never its content.
//! `digest` prints a summary or, with `--send`, queues it as mail through the gateway.

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
    /// Deletes a held message for good.
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

struct Opened {
    dir: crate::datadir::DataDir,
    vault: Arc<caldicott_vault::Vault>,
    q: VaultQuarantine,
}

fn open(data: &Path, database: Option<String>) -> anyhow::Result<Opened> {
    let dir = crate::load(data, database)?;
    let vault = Arc::new(dir.open_vault()?);
    Ok(Opened {
        q: VaultQuarantine::new(Arc::clone(&vault)),
        dir,
        vault,
    })
}

/// The acting user: known, enabled, and a caldicott-guardian or sysadmin.
fn actor(o: &Opened, name: &str, doing: &str) -> anyhow::Result<caldicott_access::User> {
    let directory = caldicott_access::Directory::new(Arc::clone(&o.vault));
    let u = crate::admin::enabled_user(&directory, name)?;
    if !ROLES.contains(&u.role.as_str()) {
        bail!(
            "--by: user {name} has the role {}; {doing} quarantined mail needs {}",
            u.role,
            ROLES.join(" or ")
        );
    }
    Ok(u)
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
        } => {
            let o = open(&data, database)?;
            let u = actor(&o, &by, "deleting")?;
            o.q.entry(&id)?;
            audit(&o, &u, "mail-delete", &id, &reason)?;
            o.q.delete(&id)?;
            say!("deleted {id}");
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
            let entries = o.q.list()?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let due = quarantine::held_longer_than(&entries, now, retention);
            if dry_run {
                for e in &due {
                    say!(
                        "would delete {} (held since {})",
                        e.id,
                        quarantine::format_time(e.received_at)
                    );
                }
                say!(
                    "{} message(s) held longer than {older_than} (dry run: none deleted)",
                    due.len()
                );
                return Ok(());
            }
            let reason = format!("retention: held longer than {older_than}");
            for e in &due {
                audit(&o, &u, "mail-purge", &e.id, &reason)?;
                o.q.delete(&e.id)?;
            }
            say!(
                "purged {} message(s) held longer than {older_than}",
                due.len()
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
            let digest = Digest::build(&o.q.list()?, now - secs.as_secs() as i64);
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
                let qid =
                    quarantine::queue_digest(&gw.queue_dir, &from, &to, &gw.hostname, &digest)?;
                say!(
                    "digest of {} held message(s) queued for {to} as {qid}",
                    digest.held
                );
            } else if json {
                say!("{}", serde_json::to_string_pretty(&digest)?);
            } else {
                say!("{}", digest.to_text().trim_end());
            }
            Ok(())
        }
    }
}

/// The messages marked not spam, for `caldicott mail train --quarantine-feedback`.
pub fn ham(data: &Path) -> anyhow::Result<Vec<zeroize::Zeroizing<Vec<u8>>>> {
    let o = open(data, std::env::var("CALDICOTT_DATABASE").ok())?;
    Ok(o.q.ham()?.into_iter().map(|(_, m)| m).collect())
}
