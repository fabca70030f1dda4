//! The home page (`GET /`): the organisation's security posture at a glance, and the
//! viewer's own reminders.
//!
//! What it is: a set of cards, each shown only to the roles it concerns and each linking
//! to the page that acts on it. Everyone sees their own card (authenticator, break-glass
//! in force). The Caldicott guardian and the system administrator also see the posture of
//! *their own* organisation: MFA coverage, dormant accounts, break-glass declarations
//! awaiting review, unusual-access findings over the last seven days, the audit ledger's
//! last checkpoint, data releases due or agreements expiring within 30 days, and the mail
//! quarantine's size.
//!
//! What it is not: a place where anything is changed, or a second copy of a rule. The
//! counts come from the owners' own functions: the directory's users and break-glass
//! queue, `caldicott_audit::review` over the ledger's events (as `caldicott audit review`
//! reads them), `caldicott_share::agreement::may_release` for when a release may next be
//! made, and the mail crate's vault quarantine. No patient data is read, so the page
//! records no audit event.
//!
//! Cost: unusual-access findings need the ledger's events; reading a whole ledger on every
//! page load would not scale, so only the entries of the last seven days are read
//! (backwards from the end, `crate::ledger_read`), and at most [`MAX_ALERT_ENTRIES`] of them;
//! the card says so when that bound cut the period short. The count is kept for a minute
//! per ledger and organisation ([`ALERT_CACHE_US`]) and the card says when it was made.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use caldicott_access::User;
use caldicott_audit::AuditEvent;
use caldicott_audit::review::{self, VolumeParams, WorkingHours};
use caldicott_policy::Role;
use caldicott_share::agreement::{self, Agreement, ReleaseRecord, State as AgreementState};
use caldicott_share::{Book, Day};

use crate::web::{self, Layout};
use crate::{ConsoleState, tri};

/// An account with no sign-in for this many days is dormant.
pub const DORMANT_DAYS: i64 = 90;
/// Unusual-access findings are counted over this many days.
pub const ALERT_DAYS: i64 = 7;
/// Releases due and agreements expiring are shown this many days ahead.
pub const RELEASE_HORIZON_DAYS: i64 = 30;
/// The most ledger entries one home page reads for unusual-access findings: reading and
/// reviewing an entry costs about 3.5 µs (measured: 20,000 entries, 70 ms), so the page
/// stays under 100 ms even when it counts afresh.
pub const MAX_ALERT_ENTRIES: u64 = 20_000;

const DAY_US: i64 = 86_400_000_000;

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/", get(home))
}

// ---------------------------------------------------------------------------------------
// The figures, pure

/// Whether a user is a person (machine clients, role `system`, hold no authenticator).
fn is_person(u: &User) -> bool {
    u.role != Role::System.name()
}

/// People with an authenticator among the enabled people of an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaCoverage {
    pub enrolled: usize,
    pub people: usize,
}

impl MfaCoverage {
    /// The share enrolled, in whole percent (rounded half up); `None` with nobody.
    pub fn percent(&self) -> Option<usize> {
        (self.people > 0).then(|| (self.enrolled * 200 + self.people) / (self.people * 2))
    }
}

/// MFA coverage of `org`: enabled people (system users excluded) with a confirmed
/// authenticator.
pub fn mfa_coverage(users: &[User], org: &str) -> MfaCoverage {
    let people: Vec<&User> = users
        .iter()
        .filter(|u| u.org == org && !u.disabled && is_person(u))
        .collect();
    MfaCoverage {
        enrolled: people.iter().filter(|u| u.totp_secret.is_some()).count(),
        people: people.len(),
    }
}

/// The enabled people of `org` with no sign-in for [`DORMANT_DAYS`] at `now_us`: their
/// last sign-in is older, or they never signed in and were created before then.
pub fn dormant<'a>(users: &'a [User], org: &str, now_us: i64) -> Vec<&'a User> {
    let cutoff = now_us.saturating_sub(DORMANT_DAYS * DAY_US);
    users
        .iter()
        .filter(|u| u.org == org && !u.disabled && is_person(u))
        .filter(|u| u.last_sign_in_at.unwrap_or(u.created_at) < cutoff)
        .collect()
}

/// What the home page says about one data-sharing agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseDue {
    pub id: String,
    pub title: String,
    /// The first day within the horizon on which a release may be made, by the share
    /// crate's own rule; `None` if there is none.
    pub next_release: Option<Day>,
    pub expires: Day,
    /// Whether it expires within the horizon.
    pub expiring: bool,
}

/// Whether an agreement (all its versions) has a release due, or expires, within
/// `horizon_days` of `today`; `None` when neither (or it is revoked, not yet approved or
/// already expired).
pub fn release_due(
    versions: &[Agreement],
    releases: &[ReleaseRecord],
    today: Day,
    horizon_days: i64,
) -> Option<ReleaseDue> {
    if versions
        .iter()
        .any(|a| matches!(a.state, AgreementState::Revoked { .. }))
    {
        return None;
    }
    let current = versions
        .iter()
        .filter(|a| matches!(a.state, AgreementState::Approved { .. }))
        .max_by_key(|a| a.version)?;
    let expires = current.terms.expires;
    if expires < today {
        return None;
    }
    let horizon = today
        .0
        .checked_add(time::Duration::days(horizon_days))
        .map_or(today, Day);
    let mut next_release = None;
    let mut d = today.0;
    while Day(d) <= horizon {
        if agreement::may_release(versions, releases, Day(d)).is_ok() {
            next_release = Some(Day(d));
            break;
        }
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    let expiring = expires <= horizon;
    (next_release.is_some() || expiring).then(|| ReleaseDue {
        id: current.id.to_string(),
        title: current.terms.title.clone(),
        next_release,
        expires,
        expiring,
    })
}

/// Unusual-access findings of one organisation's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertCount {
    /// Findings by kind's title, in the review's order, only kinds with findings.
    pub by_kind: Vec<(&'static str, usize)>,
    pub total: usize,
}

/// The review's findings (break-glass use, access after hours, unusual volume) over
/// `events` of `org` since `since_us`. Relatives need staff profiles the console does not
/// hold, so they are left to `caldicott audit review --staff`.
pub fn count_alerts(events: &[(u32, u64, AuditEvent)], org: &str, since_us: i64) -> AlertCount {
    let refs = || {
        events
            .iter()
            .filter(|(_, _, e)| e.org == org)
            .map(|(epoch, i, e)| (*epoch, *i, e))
    };
    let mut findings = review::break_glass_uses(refs());
    findings.extend(review::after_hours(refs(), &WorkingHours::default()));
    findings.extend(review::unusual_volume(refs(), &VolumeParams::default()));
    let findings: Vec<_> = findings
        .into_iter()
        .filter(|f| f.at_us >= since_us)
        .collect();
    let mut by_kind: Vec<(&'static str, usize)> = Vec::new();
    let mut kinds: Vec<_> = findings.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        by_kind.push((k.title(), findings.iter().filter(|f| f.kind == k).count()));
    }
    AlertCount {
        total: findings.len(),
        by_kind,
    }
}

// ---------------------------------------------------------------------------------------
// Reading the ledger

/// How long an organisation's unusual-access count is reused: reading a week of the
/// ledger costs about 1.5 µs an entry, too much for every page load of a busy ledger.
pub const ALERT_CACHE_US: i64 = 60_000_000;

/// Unusual-access counts by (ledger verifier key, organisation): when computed, the count
/// and whether the entry bound cut the period short.
type AlertCache = std::collections::HashMap<(String, String), (i64, AlertCount, bool)>;

static ALERT_CACHE: std::sync::Mutex<Option<AlertCache>> = std::sync::Mutex::new(None);

/// The organisation's unusual-access findings of the last [`ALERT_DAYS`], computed at most
/// once every [`ALERT_CACHE_US`] per ledger and organisation.
fn cached_alerts(
    ledger: &caldicott_vault::Ledger,
    org: &str,
    now: i64,
) -> Result<(AlertCount, bool, i64), String> {
    let key = (ledger.verifier_key().to_string(), org.to_owned());
    {
        let cache = ALERT_CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, count, cut)) = cache.as_ref().and_then(|c| c.get(&key))
            && now >= *at
            && now - *at < ALERT_CACHE_US
        {
            return Ok((count.clone(), *cut, *at));
        }
    }
    let since = now.saturating_sub(ALERT_DAYS * DAY_US);
    let (events, cut) = crate::ledger_read::events_since(ledger, since, MAX_ALERT_ENTRIES)?;
    let count = count_alerts(&events, org, since);
    let mut cache = ALERT_CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let map = cache.get_or_insert_with(Default::default);
    map.retain(|_, (at, ..)| now - *at < ALERT_CACHE_US);
    map.insert(key, (now, count.clone(), cut));
    Ok((count, cut, now))
}

/// The ledger's last checkpoint.
pub struct LedgerStatus {
    pub size: u64,
    /// When the newest entry it covers was written.
    pub covers_until: Option<String>,
    pub entries: u64,
    /// The last intact verification: when, and how many entries it covered.
    pub verified: Option<(String, u64)>,
    /// Where the last verification found a problem, if the last one failed, and when.
    pub failed: Option<(String, String)>,
}

fn ledger_status(ledger: &caldicott_vault::Ledger) -> Result<Option<LedgerStatus>, String> {
    let head = ledger.head().map_err(|e| e.to_string())?;
    let Some((size, _note)) = ledger.latest_checkpoint().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let covers_until = if size > 0 {
        ledger
            .leaves(head.epoch, size - 1, size)
            .map_err(|e| e.to_string())?
            .first()
            .map(|l| web::date_time(l.at_us))
    } else {
        None
    };
    let (last, last_intact) = ledger.verifications().map_err(|e| e.to_string())?;
    Ok(Some(LedgerStatus {
        size,
        covers_until,
        entries: head.size,
        verified: last_intact.map(|v| (web::date_time(v.at_us), v.entries)),
        failed: last.and_then(|v| v.failed_at.map(|at| (web::date_time(v.at_us), at))),
    }))
}

// ---------------------------------------------------------------------------------------
// The page

/// The viewer's own card.
struct Own {
    mfa_enrolled: bool,
    recovery_codes: usize,
    /// The viewer's break-glass declaration in force: until when (the reason is theirs).
    break_glass_until: Option<String>,
    break_glass_reason: String,
}

/// What the guardian and the administrator see.
struct Posture {
    mfa: MfaCoverage,
    mfa_percent: String,
    dormant: Vec<(String, String, String)>,
    break_glass_waiting: usize,
    /// `Err(why)` when the ledger cannot be read (or is not configured).
    alerts: Result<AlertCount, String>,
    alerts_cut_short: bool,
    /// When the count was made (`HH:MM`): it is reused for up to a minute.
    alerts_at: String,
    ledger: Result<Option<LedgerStatus>, String>,
    releases: Result<Vec<ReleaseDue>, String>,
    quarantine: Result<usize, String>,
}

#[derive(askama::Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    org_name: String,
    own: Own,
    posture: Option<Posture>,
    clinician: bool,
    /// Which links the viewer can follow.
    can_admin: bool,
    can_guardian: bool,
    can_mail: bool,
    alert_days: i64,
    dormant_days: i64,
    horizon_days: i64,
}

fn posture(state: &ConsoleState, org: &str, now: i64) -> Result<Posture, Response> {
    let users = state.directory.users().map_err(|e| {
        tracing::error!(error = %e, "home: the directory cannot be read");
        web::unavailable()
    })?;
    let mfa = mfa_coverage(&users, org);
    let dormant = dormant(&users, org, now)
        .into_iter()
        .map(|u| {
            (
                u.name.clone(),
                u.role()
                    .map_or_else(|_| u.role.clone(), |r| web::role_label(r).to_owned()),
                u.last_sign_in_at
                    .map_or_else(|| "Never".to_owned(), web::date_time),
            )
        })
        .collect();
    let break_glass_waiting = state
        .directory
        .break_glass_queue(true)
        .map_err(|e| {
            tracing::error!(error = %e, "home: the break-glass queue cannot be read");
            web::unavailable()
        })?
        .iter()
        .filter(|d| d.org == org)
        .count();
    let mut alerts_at = String::new();
    let (alerts, alerts_cut_short, ledger) = match &state.ledger {
        None => (
            Err("ledger not available".to_owned()),
            false,
            Err("ledger not available".to_owned()),
        ),
        Some(l) => match cached_alerts(l, org, now) {
            Ok((count, cut, at)) => {
                alerts_at = web::clock_time(at);
                (Ok(count), cut, ledger_status(l))
            }
            Err(e) => {
                tracing::error!(error = %e, "home: the audit ledger cannot be read");
                let why = "the audit ledger cannot be read".to_owned();
                (Err(why.clone()), false, Err(why))
            }
        },
    };
    let releases = org_releases(&state.vault, org, Day::today()).map_err(|e| {
        tracing::error!(error = %e, "home: the agreements cannot be read");
        "the data-sharing agreements cannot be read".to_owned()
    });
    let quarantine = caldicott_mail::quarantine::VaultQuarantine::new(Arc::clone(&state.vault))
        .list()
        .map(|l| l.len())
        .map_err(|e| {
            tracing::error!(error = %e, "home: the mail quarantine cannot be read");
            "the mail quarantine cannot be read".to_owned()
        });
    Ok(Posture {
        mfa_percent: mfa
            .percent()
            .map_or_else(|| "–".to_owned(), |p| format!("{p}%")),
        mfa,
        dormant,
        break_glass_waiting,
        alerts,
        alerts_cut_short,
        alerts_at,
        ledger,
        releases,
        quarantine,
    })
}

fn org_releases(
    vault: &Arc<caldicott_vault::Vault>,
    org: &str,
    today: Day,
) -> Result<Vec<ReleaseDue>, caldicott_share::ShareError> {
    let book = Book::new(Arc::clone(vault));
    let mut out = Vec::new();
    for versions in book.list()? {
        let Some(first) = versions.first() else {
            continue;
        };
        if first.org != org {
            continue;
        }
        let releases = book.releases(&first.id)?;
        if let Some(d) = release_due(&versions, &releases, today, RELEASE_HORIZON_DAYS) {
            out.push(d);
        }
    }
    Ok(out)
}

async fn home(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer(&state, &headers, web::peer(&ext)).await);
    let role = viewer.role();
    let org = viewer.org().to_owned();
    let user = viewer.user().clone();
    let break_glass = viewer.session.auth.break_glass.clone();
    let sees_posture = matches!(role, Role::CaldicottGuardian | Role::Sysadmin);
    let st = Arc::clone(&state);
    let found = tri!(
        web::blocking(move || -> Result<(String, Option<Posture>), Response> {
            let now = st.now();
            let org_name = st
                .directory
                .org(&org)
                .ok()
                .flatten()
                .map_or_else(|| org.clone(), |o| o.name);
            let posture = if sees_posture {
                Some(posture(&st, &org, now)?)
            } else {
                None
            };
            Ok((org_name, posture))
        })
        .await
    );
    let (org_name, posture) = tri!(found);
    let now = state.now();
    let in_force = break_glass.filter(|b| b.started_at_us <= now && now < b.expires_at_us);
    let sections = web::sections(role);
    web::render(
        StatusCode::OK,
        &HomePage {
            layout: Layout::new(&viewer, "Home", "home"),
            org_name,
            own: Own {
                mfa_enrolled: user.totp_secret.is_some(),
                recovery_codes: user.recovery_codes.len(),
                break_glass_until: in_force.as_ref().map(|b| web::date_time(b.expires_at_us)),
                break_glass_reason: in_force.map(|b| b.reason).unwrap_or_default(),
            },
            posture,
            clinician: matches!(
                role,
                Role::CareWorker | Role::RegisteredNurse | Role::Gp | Role::Receptionist
            ),
            can_admin: role == Role::Sysadmin,
            can_guardian: sections.contains(&"guardian"),
            can_mail: sections.contains(&"mail"),
            alert_days: ALERT_DAYS,
            dormant_days: DORMANT_DAYS,
            horizon_days: RELEASE_HORIZON_DAYS,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: &str, enrolled: bool, created: i64, last: Option<i64>) -> User {
        User {
            name: name.into(),
            org: "X26".into(),
            role: role.into(),
            password_phc: String::new(),
            must_change_password: false,
            disabled: false,
            practitioner: None,
            totp_secret: enrolled.then(|| "SECRET".into()),
            totp_pending: None,
            totp_last_step: None,
            recovery_codes: Vec::new(),
            created_at: created,
            credentials_epoch: 0,
            last_sign_in_at: last,
        }
    }

    #[test]
    fn coverage_counts_enabled_people_of_the_org_only() {
        let now = 1_000 * DAY_US;
        let mut users = vec![
            user("a", "gp", true, now, None),
            user("b", "care-worker", true, now, None),
            user("c", "registered-nurse", false, now, None),
            user("svc", "system", false, now, None),
        ];
        let mut off = user("d", "gp", false, now, None);
        off.disabled = true;
        users.push(off);
        let mut other = user("e", "gp", false, now, None);
        other.org = "Y99".into();
        users.push(other);
        let c = mfa_coverage(&users, "X26");
        assert_eq!(
            c,
            MfaCoverage {
                enrolled: 2,
                people: 3
            }
        );
        assert_eq!(c.percent(), Some(67));
        assert_eq!(
            MfaCoverage {
                enrolled: 1,
                people: 8
            }
            .percent(),
            Some(13)
        );
        assert_eq!(
            MfaCoverage {
                enrolled: 0,
                people: 0
            }
            .percent(),
            None
        );
    }

    fn agreement(frequency: &str, expires: &str, approved: bool) -> Agreement {
        let terms: caldicott_share::Terms = serde_json::from_value(serde_json::json!({
            "title": "Diabetes outcomes",
            "recipient": { "name": "University of Leeds",
                "age_key": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p" },
            "purpose": "research",
            "legal_basis": { "kind": "section251", "reference": "CAG 21/CAG/0001" },
            "dataset": { "column": [ { "name": "sex", "path": "Patient.gender" } ] },
            "deid_profile": "metric = \"loss\"\n[privacy]\nmodel = \"k-anonymity\"\nk = 5\n[[attribute]]\nname = \"sex\"\nkind = \"insensitive\"\n",
            "frequency": frequency,
            "expires": expires
        }))
        .expect("terms");
        let actor = |user, role| caldicott_share::Actor {
            user,
            org: "X26",
            role,
        };
        let a = Agreement::propose(&actor("dpo", "sysadmin"), terms, 0).expect("proposal");
        if approved {
            a.approve(&actor("cg", "caldicott-guardian"), 1)
                .expect("approval")
        } else {
            a
        }
    }

    fn day(s: &str) -> Day {
        Day::parse(s).expect("day")
    }

    fn released(on: &str) -> ReleaseRecord {
        ReleaseRecord {
            release_id: "r1".into(),
            version: 1,
            on: day(on),
            by: "dpo".into(),
            rows: 10,
            manifest_sha256: String::new(),
            opted_out: 0,
        }
    }

    #[test]
    fn releases_due_follow_the_share_crates_rule() {
        let today = day("2026-11-29");
        // Monthly, released this month: the next may be made on 1 December (in 30 days).
        let monthly = [agreement("monthly", "2099-12-31", true)];
        let d = release_due(&monthly, &[released("2026-11-03")], today, 30).expect("due");
        assert_eq!(d.next_release, Some(day("2026-12-01")));
        assert!(!d.expiring);
        // Never released: due today.
        let d = release_due(&monthly, &[], today, 30).expect("due");
        assert_eq!(d.next_release, Some(today));
        // Yearly, released this year: not within 30 days, and not expiring: not shown.
        let yearly = [agreement("yearly", "2099-12-31", true)];
        assert_eq!(
            release_due(&yearly, &[released("2026-02-01")], today, 30),
            None
        );
        // Once, released: nothing due; but expiring within 30 days: shown as expiring.
        let once = [agreement("once", "2026-12-20", true)];
        let d = release_due(&once, &[released("2026-06-01")], today, 30).expect("expiring");
        assert_eq!(d.next_release, None);
        assert!(d.expiring);
        // Not approved, or already expired: not shown.
        assert_eq!(
            release_due(&[agreement("monthly", "2099-12-31", false)], &[], today, 30),
            None
        );
        assert_eq!(
            release_due(&[agreement("monthly", "2026-11-28", true)], &[], today, 30),
            None
        );
    }

    #[test]
    fn dormant_is_ninety_days_without_sign_in() {
        let now = 1_000 * DAY_US;
        let users = vec![
            user(
                "recent",
                "gp",
                true,
                now - 200 * DAY_US,
                Some(now - 89 * DAY_US),
            ),
            user(
                "old",
                "gp",
                true,
                now - 200 * DAY_US,
                Some(now - 91 * DAY_US),
            ),
            user("never-old", "gp", false, now - 91 * DAY_US, None),
            user("never-new", "gp", false, now - 10 * DAY_US, None),
            user("svc", "system", false, now - 400 * DAY_US, None),
        ];
        let names: Vec<&str> = dormant(&users, "X26", now)
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(names, vec!["old", "never-old"]);
    }
}
