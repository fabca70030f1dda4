//! `caldicott org|user|token`: the directory of organisations, users and API tokens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use caldicott_access::Directory;
use caldicott_core::OdsCode;
use caldicott_policy::{Purpose, Role, Scopes};
use clap::Subcommand;

use crate::datadir::DataDir;

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Adds an organisation (a GP practice, care home or trust) by ODS code.
    Add {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// ODS code, e.g. A81001.
        #[arg(long)]
        ods: String,
        #[arg(long)]
        name: String,
    },
    /// Lists the organisations.
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Adds a user to an organisation and prints their one-time password.
    Add {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The organisation's ODS code.
        #[arg(long)]
        org: String,
        /// care-worker, registered-nurse, gp, receptionist, caldicott-guardian, sysadmin,
        /// researcher or system.
        #[arg(long)]
        role: String,
        /// The user's Practitioner resource (`Practitioner/<id>`), for care-team access.
        #[arg(long)]
        practitioner: Option<String>,
        /// The user name (lower case, digits, `.`, `-`, `_`).
        name: String,
    },
    /// Lists the users.
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
    /// Disables a user: their tokens stop working at once.
    Disable {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        name: String,
    },
    /// Enables a disabled user again.
    Enable {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        name: String,
    },
    /// Forgets a user's TOTP enrolment; they enrol again at next sign-in.
    ResetMfa {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum BreakglassCommand {
    /// Lists break-glass declarations, oldest first.
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// Only those awaiting review.
        #[arg(long)]
        unreviewed: bool,
    },
    /// Records the Caldicott guardian's review of a declaration.
    Review {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The declaration's id, as `list` shows it.
        #[arg(long)]
        id: String,
        /// The reviewing guardian's user name.
        #[arg(long)]
        by: String,
        /// `appropriate` or `inappropriate`.
        #[arg(long)]
        outcome: String,
        #[arg(long, default_value = "")]
        note: String,
    },
}

impl BreakglassCommand {
    pub fn data_dir(&self) -> &Path {
        match self {
            BreakglassCommand::List { data, .. } | BreakglassCommand::Review { data, .. } => data,
        }
    }
}

pub fn breakglass(c: BreakglassCommand) -> anyhow::Result<()> {
    match c {
        BreakglassCommand::List {
            data,
            database,
            unreviewed,
        } => {
            for d in directory(&data, database)?.break_glass_queue(unreviewed)? {
                let review = match &d.review {
                    None => "awaiting review".to_owned(),
                    Some(r) => format!(
                        "reviewed by {}: {}",
                        r.by,
                        if r.appropriate {
                            "appropriate"
                        } else {
                            "inappropriate"
                        }
                    ),
                };
                say!(
                    "{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.user,
                    d.org,
                    caldicott_api::store::instant(d.started_at),
                    review
                );
                say!("\treason: {}", d.reason);
            }
        }
        BreakglassCommand::Review {
            data,
            database,
            id,
            by,
            outcome,
            note,
        } => {
            let d = directory(&data, database)?;
            let appropriate = match outcome.as_str() {
                "appropriate" => true,
                "inappropriate" => false,
                _ => anyhow::bail!("--outcome must be appropriate or inappropriate"),
            };
            match d.user(&by)? {
                Some(u) if u.role == caldicott_policy::Role::CaldicottGuardian.to_string() => {}
                Some(_) => anyhow::bail!("{by} is not a Caldicott guardian"),
                None => anyhow::bail!("user {by} is not known"),
            }
            d.review_break_glass(&id, &by, appropriate, &note, caldicott_vault::now_micros())?;
            say!("recorded {by}'s review of {id}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum OptoutCommand {
    /// Loads an opt-out list (one NHS number per line), replacing the previous one of its
    /// kind. Only keyed hashes of the numbers are stored.
    Import {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        /// The list is of Type 1 opt-outs (recorded at the GP practice) rather than the
        /// National Data Opt-out.
        #[arg(long)]
        type1: bool,
        file: PathBuf,
    },
}

impl OptoutCommand {
    pub fn data_dir(&self) -> &Path {
        match self {
            OptoutCommand::Import { data, .. } => data,
        }
    }
}

pub fn optout(c: OptoutCommand) -> anyhow::Result<()> {
    let OptoutCommand::Import {
        data,
        database,
        type1,
        file,
    } = c;
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let mut numbers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The error names the line, never the number.
        let n = caldicott_core::NhsNumber::parse(line).map_err(|e| {
            anyhow::anyhow!(
                "{} line {}: not a valid NHS number ({e})",
                file.display(),
                i + 1
            )
        })?;
        numbers.push(n);
    }
    let dir = crate::load(&data, database)?;
    let vault = dir.open_vault()?;
    let kind = if type1 {
        caldicott_access::optout::OptOutKind::Type1
    } else {
        caldicott_access::optout::OptOutKind::National
    };
    let n = caldicott_access::optout::replace(&vault, kind, &numbers)?;
    say!(
        "loaded {n} {} opt-outs (replacing the previous list)",
        if type1 { "Type 1" } else { "National Data" }
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issues an API token and prints only the token on standard output.
    Issue {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
        #[arg(long)]
        user: String,
        /// SMART scopes, space-separated: `user/*.read`, `user/Observation.write`,
        /// `system/*.read`...
        #[arg(long)]
        scope: String,
        /// direct-care, research, planning, audit or emergency.
        #[arg(long)]
        purpose: String,
        /// Lifetime: `30s`, `15m`, `8h`, `30d` (at most 90 days).
        #[arg(long, default_value = "8h")]
        ttl: String,
    },
    /// Revokes a token (read from standard input, so it never appears in a process list).
    Revoke {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, env = "CALDICOTT_DATABASE")]
        database: Option<String>,
    },
}

impl OrgCommand {
    pub fn data_dir(&self) -> &Path {
        match self {
            OrgCommand::Add { data, .. } | OrgCommand::List { data, .. } => data,
        }
    }
}

impl UserCommand {
    pub fn data_dir(&self) -> &Path {
        match self {
            UserCommand::Add { data, .. }
            | UserCommand::List { data, .. }
            | UserCommand::Disable { data, .. }
            | UserCommand::Enable { data, .. }
            | UserCommand::ResetMfa { data, .. } => data,
        }
    }
}

impl TokenCommand {
    pub fn data_dir(&self) -> &Path {
        match self {
            TokenCommand::Issue { data, .. } | TokenCommand::Revoke { data, .. } => data,
        }
    }
}

fn directory(data: &Path, database: Option<String>) -> anyhow::Result<Directory> {
    let dir = crate::load(data, database)?;
    open(&dir)
}

/// The directory of an opened data directory.
/// The user a command acts as (`--by`): known to the directory and not disabled.
pub fn enabled_user(directory: &Directory, name: &str) -> anyhow::Result<caldicott_access::User> {
    let u = directory
        .user(name)?
        .with_context(|| format!("--by: no user {name} in the access directory"))?;
    if u.disabled {
        anyhow::bail!("--by: user {name} is disabled");
    }
    Ok(u)
}

pub fn open(dir: &DataDir) -> anyhow::Result<Directory> {
    Ok(Directory::new(Arc::new(dir.open_vault()?)))
}

pub fn org(c: OrgCommand) -> anyhow::Result<()> {
    match c {
        OrgCommand::Add {
            data,
            database,
            ods,
            name,
        } => {
            let d = directory(&data, database)?;
            let ods = OdsCode::parse(&ods).with_context(|| format!("--ods {ods:?}"))?;
            let o = d.add_org(&ods, &name)?;
            say!("added organisation {} ({})", o.ods, o.name);
        }
        OrgCommand::List { data, database } => {
            for o in directory(&data, database)?.orgs()? {
                say!("{}\t{}", o.ods, o.name);
            }
        }
    }
    Ok(())
}

pub fn user(c: UserCommand) -> anyhow::Result<()> {
    match c {
        UserCommand::Add {
            data,
            database,
            org,
            role,
            practitioner,
            name,
        } => {
            let d = directory(&data, database)?;
            let org = OdsCode::parse(&org).with_context(|| format!("--org {org:?}"))?;
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            if let Some(p) = &practitioner
                && !p.starts_with("Practitioner/")
            {
                anyhow::bail!("--practitioner must be a reference such as Practitioner/123");
            }
            let (u, password) = d.add_user(&name, &org, role, practitioner)?;
            say!("added user {} ({}, {})", u.name, u.role, u.org);
            say!(
                "one-time password (shown once; change it at first sign-in): {}",
                password.as_str()
            );
        }
        UserCommand::List { data, database } => {
            for u in directory(&data, database)?.users()? {
                say!(
                    "{}\t{}\t{}\t{}\tmfa: {}",
                    u.name,
                    u.org,
                    u.role,
                    if u.disabled { "disabled" } else { "enabled" },
                    if u.totp_secret.is_some() {
                        "enrolled"
                    } else {
                        "not enrolled"
                    }
                );
            }
        }
        UserCommand::Disable {
            data,
            database,
            name,
        } => {
            directory(&data, database)?.set_disabled(&name, true)?;
            say!("disabled {name}: their tokens no longer work");
        }
        UserCommand::Enable {
            data,
            database,
            name,
        } => {
            directory(&data, database)?.set_disabled(&name, false)?;
            say!("enabled {name}");
        }
        UserCommand::ResetMfa {
            data,
            database,
            name,
        } => {
            directory(&data, database)?.reset_mfa(&name)?;
            say!("{name} will enrol a new authenticator at next sign-in");
        }
    }
    Ok(())
}

pub fn token(c: TokenCommand) -> anyhow::Result<()> {
    match c {
        TokenCommand::Issue {
            data,
            database,
            user,
            scope,
            purpose,
            ttl,
        } => {
            let d = directory(&data, database)?;
            let scopes: Scopes = scope.parse().map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            let purpose: Purpose = purpose
                .parse()
                .map_err(|e| anyhow::anyhow!("--purpose: {e}"))?;
            let ttl = parse_duration(&ttl)?;
            let token = d.issue_token(&user, &scopes, purpose, ttl)?;
            // Only the token on stdout, for scripts.
            println!("{}", token.as_str());
        }
        TokenCommand::Revoke { data, database } => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the token from standard input")?;
            let revoked = directory(&data, database)?.revoke_token(line.trim())?;
            if revoked {
                say!("token revoked");
            } else {
                anyhow::bail!("no such token");
            }
        }
    }
    Ok(())
}

/// `30s`, `15m`, `8h`, `30d` → seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("--ttl {s:?}: expected a number and a unit, such as 8h"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("--ttl {s:?}: the unit must be s, m, h or d"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("--ttl {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("8h").unwrap(), 28_800);
        assert_eq!(parse_duration("30d").unwrap(), 2_592_000);
        for bad in ["", "8", "h", "8 h", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
