//! The gateway's daily quarantine housekeeping (`[gateway.quarantine]`): at `digest_at`, UK
//! local time (Europe/London), `caldicott mail serve` queues the digest for the privacy
//! officer and purges what was held longer than `retain`, so that a care home with no one
//! to write cron jobs still gets both.
//!
//! The work is the commands' own ([`super::send_digest`], [`super::purge`]); this module only
//! decides when. [`next_run`] is the pure decision: the run for a UK calendar day is due at
//! `digest_at` on that day's wall clock (BST or GMT, through `caldicott_audit::uktime`, no
//! tz database), and a day already run is never run again. A gateway that was down at the
//! due time runs at once when it starts (catch-up), and the digest then covers everything
//! since the last run.
//!
//! Restarts: the last run is recorded in the vault's directory (`mail-quarantine-schedule/
//! daily`: the UK day and the time), durably, *before* the work starts. So a restart never
//! runs a day twice; a crash in the middle of a run leaves that day's work part done, and
//! the next day's purge picks up what was left (a purge is by age, so nothing is lost). A
//! failed run is logged and retried the next day, not in a loop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use caldicott_audit::uktime;
use caldicott_mail::config::{GatewayConfig, QuarantineSchedule, parse_time_of_day};
use serde::{Deserialize, Serialize};

use super::Opened;

/// Directory kind and key of the record of the last run.
const RECORD_KIND: &str = "mail-quarantine-schedule";
const RECORD_KEY: &str = "daily";
/// The longest single sleep: the clock is looked at again at least this often, so a
/// suspended machine or a clock that was set catches up within a minute.
const MAX_SLEEP_SECS: i64 = 60;
/// How far back a catch-up digest reaches at most.
const MAX_DIGEST_SECS: i64 = 7 * 86_400;

/// The UK calendar day (days since 1970-01-01) at `now` (Unix seconds).
pub fn uk_day(now: i64) -> i64 {
    let l = uktime::uk_local(now.saturating_mul(uktime::US_PER_SECOND));
    uktime::days_from_civil(l.year, l.month, l.day)
}

/// The instant (Unix seconds) at which UK clocks read `secs_of_day` after midnight on
/// `day`. In the hour skipped in March the time does not exist: the answer is one hour
/// later on the clock (the same UTC instant as GMT would give); in the hour repeated in
/// October, the first of the two.
pub fn uk_instant(day: i64, secs_of_day: u32) -> i64 {
    let naive = day
        .saturating_mul(86_400)
        .saturating_add(i64::from(secs_of_day));
    for candidate in [naive.saturating_sub(3600), naive] {
        let l = uktime::uk_local(candidate.saturating_mul(uktime::US_PER_SECOND));
        let secs = u32::from(l.hour) * 3600 + u32::from(l.minute) * 60 + u32::from(l.second);
        if uktime::days_from_civil(l.year, l.month, l.day) == day && secs == secs_of_day {
            return candidate;
        }
    }
    naive
}

/// When the next run is due: `(day, at)`, the UK day it is for and the instant (Unix
/// seconds) it is due; due now or in the past means run at once. `last_day` is the UK day
/// of the last run, if any: a day already run is not run again, so after a run (or a
/// restart the same day) the next is tomorrow's.
pub fn next_run(now: i64, secs_of_day: u32, last_day: Option<i64>) -> (i64, i64) {
    let today = uk_day(now);
    let day = match last_day {
        Some(d) if d >= today => today + 1,
        _ => today,
    };
    (day, uk_instant(day, secs_of_day))
}

/// The record of the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The UK day it was for (days since 1970-01-01).
    pub day: i64,
    /// When it started (Unix seconds).
    pub ran_at: i64,
}

/// Time as the scheduler sees it: the system clock in the gateway, a fake one in tests.
pub trait Clock: Send + 'static {
    /// Unix seconds.
    fn now(&self) -> i64;
    fn sleep(&self, d: Duration);
}

/// The system clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Where the last run is remembered.
pub trait Record {
    fn load(&self) -> anyhow::Result<Option<LastRun>>;
    fn save(&self, run: &LastRun) -> anyhow::Result<()>;
}

/// The scheduler's loop, until the clock reaches `until` (never, in the gateway): sleeps
/// until the next run is due, records it, then calls `work(since, now)`, where `since` is
/// the last run's start (at most a week back; a day back the first time). Errors are
/// logged, never fatal.
pub fn run_loop(
    clock: &dyn Clock,
    secs_of_day: u32,
    record: &dyn Record,
    until: i64,
    work: &mut dyn FnMut(i64, i64),
) {
    let mut last = match record.load() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "mail quarantine schedule: cannot read the last run; assuming none");
            None
        }
    };
    loop {
        let now = clock.now();
        if now >= until {
            return;
        }
        let (day, due) = next_run(now, secs_of_day, last.map(|l| l.day));
        if now < due {
            let wait = (due - now).clamp(1, MAX_SLEEP_SECS).min(until - now);
            clock.sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(1)));
            continue;
        }
        let since = last
            .map_or(now - 86_400, |l| l.ran_at)
            .max(now - MAX_DIGEST_SECS);
        let run = LastRun { day, ran_at: now };
        // Recorded first: a restart during the run does not run the day again.
        if let Err(e) = record.save(&run) {
            tracing::error!(error = %format!("{e:#}"), "mail quarantine schedule: cannot record the run; it may be repeated after a restart");
        }
        last = Some(run);
        work(since, now);
    }
}

/// The last run, in the vault's directory (sealed like every directory entry; durable when
/// the vault's commit returns).
struct VaultRecord(Arc<caldicott_vault::Vault>);

impl Record for VaultRecord {
    fn load(&self) -> anyhow::Result<Option<LastRun>> {
        match self.0.dir_get(RECORD_KIND, RECORD_KEY)? {
            Some(e) => Ok(Some(
                serde_json::from_slice(&e.value).context("the last run's record")?,
            )),
            None => Ok(None),
        }
    }
    fn save(&self, run: &LastRun) -> anyhow::Result<()> {
        let expect = self.0.dir_get(RECORD_KIND, RECORD_KEY)?.map(|e| e.version);
        self.0
            .dir_put(RECORD_KIND, RECORD_KEY, &serde_json::to_vec(run)?, expect)?;
        Ok(())
    }
}

/// The gateway's daily job, checked when the gateway starts.
pub struct Job {
    opened: Opened,
    gateway: GatewayConfig,
    secs_of_day: u32,
    digest: Option<(String, String)>,
    purge: Option<(caldicott_access::User, Duration, String)>,
}

impl Job {
    /// Checks `[gateway.quarantine]` against the access directory: `purge_as` must be an
    /// enabled caldicott-guardian or sysadmin (the errors of `--by`, naming the key).
    pub fn new(
        opened: Opened,
        gateway: &GatewayConfig,
        s: &QuarantineSchedule,
    ) -> anyhow::Result<Self> {
        s.validate(true)?;
        let secs_of_day = parse_time_of_day(&s.digest_at)
            .context("gateway.quarantine.digest_at is not a time of day")?;
        let digest = s.digest_to.as_ref().map(|to| {
            let from = s
                .digest_from
                .clone()
                .unwrap_or_else(|| format!("postmaster@{}", gateway.hostname));
            (from, to.clone())
        });
        let purge = match (&s.purge_as, s.retention(), &s.retain) {
            (Some(name), Some(d), Some(label)) => Some((
                super::check_actor(&opened, name, "purging", "gateway.quarantine.purge_as")?,
                d,
                label.clone(),
            )),
            _ => None,
        };
        Ok(Self {
            opened,
            gateway: gateway.clone(),
            secs_of_day,
            digest,
            purge,
        })
    }

    /// What it will do, for the log at start.
    pub fn describe(&self) -> String {
        let at = format!(
            "{:02}:{:02} UK time",
            self.secs_of_day / 3600,
            self.secs_of_day % 3600 / 60
        );
        match (&self.digest, &self.purge) {
            (Some((_, to)), Some((u, _, r))) => {
                format!(
                    "daily at {at}: digest to {to}, then purge after {r} as {}",
                    u.name
                )
            }
            (Some((_, to)), None) => format!("daily at {at}: digest to {to}"),
            (None, Some((u, _, r))) => format!("daily at {at}: purge after {r} as {}", u.name),
            (None, None) => "nothing scheduled".to_owned(),
        }
    }

    /// One day's run: the digest, then the purge; each failure logged.
    fn run(&self, since: i64, now: i64) {
        if let Some((from, to)) = &self.digest {
            match super::send_digest(&self.opened, &self.gateway, from, to, since) {
                Ok((qid, held)) => {
                    tracing::info!(queue_id = %qid, held, "mail quarantine digest queued");
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "mail quarantine digest failed; next try tomorrow");
                }
            }
        }
        if let Some((by, retention, label)) = &self.purge {
            match super::purge(&self.opened, by, *retention, label, now) {
                Ok(p) => tracing::info!(
                    messages = p.messages,
                    training_copies = p.feedback,
                    "mail quarantine purged"
                ),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "mail quarantine purge failed; next try tomorrow");
                }
            }
        }
    }

    /// Starts the scheduler on a thread of its own (the vault is synchronous); it runs
    /// until the process ends.
    pub fn spawn(self, clock: impl Clock) -> anyhow::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("mail-quarantine-schedule".into())
            .spawn(move || {
                let record = VaultRecord(Arc::clone(&self.opened.vault));
                run_loop(
                    &clock,
                    self.secs_of_day,
                    &record,
                    i64::MAX,
                    &mut |since, now| self.run(since, now),
                );
            })
            .context("starting the mail quarantine scheduler")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Unix seconds of a UTC date and time.
    fn utc(y: i64, mo: u8, d: u8, h: i64, mi: i64) -> i64 {
        uktime::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }
    fn day(y: i64, mo: u8, d: u8) -> i64 {
        uktime::days_from_civil(y, mo, d)
    }
    const AT_0730: u32 = 7 * 3600 + 30 * 60;

    #[test]
    fn the_change_days_are_the_last_sundays() {
        for (y, m, d) in [(2026, 3, 29), (2026, 10, 25), (2027, 3, 28), (2027, 10, 31)] {
            assert_eq!(
                uktime::weekday_from_days(day(y, m, d)),
                time::Weekday::Sunday
            );
        }
    }

    #[test]
    fn due_at_local_time_in_gmt_and_bst() {
        // Winter: 07:30 GMT is 07:30 UTC; summer: 07:30 BST is 06:30 UTC.
        let now = utc(2026, 1, 15, 3, 0);
        assert_eq!(
            next_run(now, AT_0730, None),
            (day(2026, 1, 15), utc(2026, 1, 15, 7, 30))
        );
        let now = utc(2026, 7, 15, 3, 0);
        assert_eq!(
            next_run(now, AT_0730, None),
            (day(2026, 7, 15), utc(2026, 7, 15, 6, 30))
        );
        // 23:30 UTC on 15 July is 00:30 BST on the 16th: the UK day is the 16th.
        let now = utc(2026, 7, 15, 23, 30);
        assert_eq!(
            next_run(now, AT_0730, Some(day(2026, 7, 15))),
            (day(2026, 7, 16), utc(2026, 7, 16, 6, 30))
        );
    }

    #[test]
    fn across_the_spring_change_the_gap_is_23_hours() {
        // Saturday 28 March 2026 (GMT) ran; Sunday 29 March is BST from 01:00 UTC.
        let sat = next_run(utc(2026, 3, 28, 6, 0), AT_0730, None);
        assert_eq!(sat, (day(2026, 3, 28), utc(2026, 3, 28, 7, 30)));
        let sun = next_run(sat.1, AT_0730, Some(sat.0));
        assert_eq!(sun, (day(2026, 3, 29), utc(2026, 3, 29, 6, 30)));
        assert_eq!(sun.1 - sat.1, 23 * 3600);
        // 01:30 does not exist on the clock that day: it runs at 02:30 BST (01:30 UTC).
        assert_eq!(
            uk_instant(day(2026, 3, 29), 3600 + 1800),
            utc(2026, 3, 29, 1, 30)
        );
    }

    #[test]
    fn across_the_autumn_change_the_gap_is_25_hours() {
        let sat = next_run(utc(2026, 10, 24, 5, 0), AT_0730, None);
        assert_eq!(sat, (day(2026, 10, 24), utc(2026, 10, 24, 6, 30)));
        let sun = next_run(sat.1 + 5, AT_0730, Some(sat.0));
        assert_eq!(sun, (day(2026, 10, 25), utc(2026, 10, 25, 7, 30)));
        assert_eq!(sun.1 - sat.1, 25 * 3600);
        // 01:30 happens twice that day: the first time (BST, 00:30 UTC).
        assert_eq!(
            uk_instant(day(2026, 10, 25), 3600 + 1800),
            utc(2026, 10, 25, 0, 30)
        );
    }

    #[test]
    fn restarts_never_run_a_day_twice_and_catch_up_a_missed_one() {
        let today = day(2026, 11, 29);
        // Started at 09:00 having already run today: tomorrow's.
        assert_eq!(
            next_run(utc(2026, 11, 29, 9, 0), AT_0730, Some(today)),
            (today + 1, utc(2026, 11, 30, 7, 30))
        );
        // Started at 09:00, last run yesterday: due already (runs at once).
        let (d, due) = next_run(utc(2026, 11, 29, 9, 0), AT_0730, Some(today - 1));
        assert_eq!(d, today);
        assert!(due <= utc(2026, 11, 29, 9, 0));
        // Started at 06:00, last run yesterday: today's, at 07:30.
        assert_eq!(
            next_run(utc(2026, 11, 29, 6, 0), AT_0730, Some(today - 1)),
            (today, utc(2026, 11, 29, 7, 30))
        );
        // A record from the future (the clock was set back): tomorrow, not days later.
        assert_eq!(
            next_run(utc(2026, 11, 29, 6, 0), AT_0730, Some(today + 5)).0,
            today + 1
        );
    }

    /// A clock that moves only when slept on.
    struct FakeClock(Arc<Mutex<i64>>);
    impl Clock for FakeClock {
        fn now(&self) -> i64 {
            *self.0.lock().unwrap()
        }
        fn sleep(&self, d: Duration) {
            *self.0.lock().unwrap() += d.as_secs() as i64;
        }
    }
    struct MemRecord(Mutex<Option<LastRun>>);
    impl Record for MemRecord {
        fn load(&self) -> anyhow::Result<Option<LastRun>> {
            Ok(*self.0.lock().unwrap())
        }
        fn save(&self, run: &LastRun) -> anyhow::Result<()> {
            *self.0.lock().unwrap() = Some(*run);
            Ok(())
        }
    }

    #[test]
    fn the_loop_runs_once_a_day_across_a_change_and_a_restart() {
        let now = Arc::new(Mutex::new(utc(2026, 10, 23, 12, 0)));
        let clock = FakeClock(Arc::clone(&now));
        let record = MemRecord(Mutex::new(Some(LastRun {
            day: day(2026, 10, 23),
            ran_at: utc(2026, 10, 23, 6, 30),
        })));
        let mut runs = Vec::new();
        run_loop(
            &clock,
            AT_0730,
            &record,
            utc(2026, 10, 26, 0, 0),
            &mut |since, at| runs.push((since, at)),
        );
        // Saturday 24th at 06:30 UTC (BST), Sunday 25th at 07:30 UTC (GMT).
        assert_eq!(
            runs,
            vec![
                (utc(2026, 10, 23, 6, 30), utc(2026, 10, 24, 6, 30)),
                (utc(2026, 10, 24, 6, 30), utc(2026, 10, 25, 7, 30)),
            ]
        );
        // A restart later on the 25th: nothing more that day.
        let mut again = Vec::new();
        *now.lock().unwrap() = utc(2026, 10, 25, 9, 0);
        run_loop(
            &clock,
            AT_0730,
            &record,
            utc(2026, 10, 25, 23, 0),
            &mut |since, at| again.push((since, at)),
        );
        assert!(again.is_empty(), "{again:?}");
    }
}
