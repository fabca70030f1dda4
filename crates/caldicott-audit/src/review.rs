//! The Caldicott guardian's review queries over audit events, pure.
//!
//! Why: access control permits what a role may do; it cannot tell whether a permitted access
//! was appropriate. The guardian reviews the accesses most likely not to be: emergency
//! (break-glass) access, access outside working hours, staff looking at people who share
//! their family name or their address, and a user suddenly looking at many more patients than
//! they usually do. Each query is a function of events (and of the profiles and thresholds
//! the caller passes), so the same ledger always gives the same findings, and each finding
//! names the ledger entries (epoch and index) to look at.
//!
//! Findings never contain a patient's or a staff member's name, address or postcode (those
//! are given by the caller to compare, and used only for that): only user names, patient
//! pseudonyms, times, counts and what the event recorded.
//!
//! Choices:
//! - Break-glass: every event flagged `break_glass` (permitted or refused) and every
//!   break-glass declaration, one finding each: each one is reviewed.
//! - After hours: access events concerning at least one patient, permitted or refused,
//!   outside [`WorkingHours`] in UK local time (default Monday to Friday 08:00 to 18:30;
//!   weekends and the caller's non-working days count as out of hours).
//! - Relatives: permitted accesses where the staff member's family name equals the
//!   patient's ([`normalise_family_name`]: case, accents, hyphens, spaces and apostrophes
//!   ignored) or the postcode and first address line both match ([`normalise_address`]).
//! - Unusual volume: for each user and each UTC hour, the number of distinct patients in
//!   their permitted access events, against the mean + `factor` × standard deviation
//!   (population) of their own counts in the hours they were active in the previous
//!   `baseline_days`; an alert needs at least `min_patients` and a count strictly above that
//!   threshold. A user with no active hour in the window has no baseline and is not alerted
//!   (so a constant rate never alerts, even at its start); only their own events count, so
//!   other users' activity can never change their alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::{AuditEvent, EventKind, Outcome, uktime};

/// A ledger position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LedgerPos {
    pub epoch: u32,
    pub index: u64,
}

/// Which review query found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    BreakGlass,
    AfterHours,
    Relative,
    UnusualVolume,
}

impl FindingKind {
    /// A short heading for people.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::BreakGlass => "Emergency access (break-glass)",
            FindingKind::AfterHours => "Access outside working hours",
            FindingKind::Relative => "Possible relative or neighbour",
            FindingKind::UnusualVolume => "Unusual number of patients",
        }
    }
}

/// The numbers behind an unusual-volume finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeAlert {
    /// Start of the UTC hour, microseconds since the Unix epoch.
    pub hour_start_us: i64,
    /// Distinct patients accessed in that hour.
    pub patients: u64,
    /// Mean distinct patients per active hour in the baseline window.
    pub baseline_mean: f64,
    /// Their (population) standard deviation.
    pub baseline_sd: f64,
    /// `baseline_mean + factor × baseline_sd`.
    pub threshold: f64,
    /// Active hours in the baseline window.
    pub baseline_hours: u64,
}

/// One thing for the guardian to look at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The ledger entries concerned (one, or every entry of an hour for volume).
    pub entries: Vec<LedgerPos>,
    pub user: String,
    /// When: the event's time, or the start of the hour for volume.
    pub at_us: i64,
    /// What was found, in words (no names, addresses or NHS numbers).
    pub detail: String,
    /// For [`FindingKind::UnusualVolume`]: the numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeAlert>,
}

/// The guardian's review: findings in time order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReviewReport {
    pub findings: Vec<Finding>,
}

/// Working hours in UK local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    /// Working weekdays, Monday first.
    pub days: [bool; 7],
    /// Start of the working day, minutes after local midnight (inclusive).
    pub start_minute: u16,
    /// End of the working day, minutes after local midnight (exclusive). A start at or after
    /// the end makes every minute out of hours.
    pub end_minute: u16,
    /// UK local dates `(year, month, day)` that are not working days although their weekday
    /// is: bank holidays, which the caller supplies (they are set by proclamation, not rule).
    pub days_off: BTreeSet<(i64, u8, u8)>,
}

impl Default for WorkingHours {
    /// Monday to Friday, 08:00 to 18:30.
    fn default() -> Self {
        WorkingHours {
            days: [true, true, true, true, true, false, false],
            start_minute: 8 * 60,
            end_minute: 18 * 60 + 30,
            days_off: BTreeSet::new(),
        }
    }
}

impl WorkingHours {
    /// Why a local time is out of hours, or `None` when it is within them.
    #[must_use]
    pub fn outside(&self, local: &uktime::LocalTime) -> Option<&'static str> {
        let weekday = usize::from(local.weekday.number_days_from_monday());
        if !self.days.get(weekday).copied().unwrap_or(false) {
            return Some(if matches!(weekday, 5 | 6) {
                "at the weekend"
            } else {
                "on a non-working day"
            });
        }
        if self
            .days_off
            .contains(&(local.year, local.month, local.day))
        {
            return Some("on a non-working day");
        }
        let minute = local.minute_of_day();
        if minute < self.start_minute {
            return Some("before working hours");
        }
        if minute >= self.end_minute {
            return Some("after working hours");
        }
        None
    }
}

/// What the guardian knows of a member of staff, to compare with patients.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StaffProfile {
    pub family_name: String,
    pub postcode: Option<String>,
    pub address_line: Option<String>,
}

/// What the caller looks up of a patient, to compare with staff.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PatientProfile {
    pub family_name: String,
    pub postcode: Option<String>,
    pub address_line: Option<String>,
}

/// Names and addresses stay out of logs.
impl std::fmt::Debug for StaffProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaffProfile { .. }")
    }
}

/// Names and addresses stay out of logs.
impl std::fmt::Debug for PatientProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientProfile { .. }")
    }
}

/// The unusual-volume rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeParams {
    /// How far back the baseline looks, in days.
    pub baseline_days: u32,
    /// The fewest distinct patients in an hour that can alert.
    pub min_patients: u32,
    /// How many standard deviations above the mean alert.
    pub factor: f64,
}

impl Default for VolumeParams {
    /// 28 days, 20 patients, 3 standard deviations.
    fn default() -> Self {
        VolumeParams {
            baseline_days: 28,
            min_patients: 20,
            factor: 3.0,
        }
    }
}

fn pos(epoch: u32, index: u64) -> LedgerPos {
    LedgerPos { epoch, index }
}

/// "read Observation", "search", "declare".
fn what(event: &AuditEvent) -> String {
    match event.rtype.as_deref() {
        Some(t) if !t.is_empty() => format!("{} {t}", event.action),
        _ => event.action.clone(),
    }
}

fn patients_phrase(n: usize) -> String {
    if n == 1 {
        "1 patient".to_owned()
    } else {
        format!("{n} patients")
    }
}

/// (a) Every break-glass access and declaration.
pub fn break_glass_uses<'a>(
    events: impl IntoIterator<Item = (u32, u64, &'a AuditEvent)>,
) -> Vec<Finding> {
    events
        .into_iter()
        .filter(|(_, _, e)| {
            e.break_glass || (e.kind == EventKind::BreakGlass && e.action == "declare")
        })
        .map(|(epoch, index, e)| {
            let mut detail = if e.kind == EventKind::BreakGlass {
                "declared emergency access".to_owned()
            } else {
                format!(
                    "{} under emergency access, {}",
                    what(e),
                    patients_phrase(e.patients.len())
                )
            };
            if e.outcome == Outcome::Deny {
                detail.push_str(" (refused)");
            }
            if !e.purpose.is_empty() {
                let _ = write!(detail, "; purpose {}", e.purpose);
            }
            if !e.reason.is_empty() {
                let _ = write!(detail, "; reason: {}", e.reason);
            }
            Finding {
                kind: FindingKind::BreakGlass,
                entries: vec![pos(epoch, index)],
                user: e.user.clone(),
                at_us: e.at_us,
                detail,
                volume: None,
            }
        })
        .collect()
}

/// (b) Access to patients outside working hours (UK local time).
pub fn after_hours<'a>(
    events: impl IntoIterator<Item = (u32, u64, &'a AuditEvent)>,
    working: &WorkingHours,
) -> Vec<Finding> {
    events
        .into_iter()
        .filter(|(_, _, e)| e.kind == EventKind::Access && !e.patients.is_empty())
        .filter_map(|(epoch, index, e)| {
            let local = uktime::uk_local(e.at_us);
            let why = working.outside(&local)?;
            let mut detail = format!(
                "{} {why} ({}), {}",
                what(e),
                local.long(),
                patients_phrase(e.patients.len())
            );
            if e.outcome == Outcome::Deny {
                detail.push_str(" (refused)");
            }
            Some(Finding {
                kind: FindingKind::AfterHours,
                entries: vec![pos(epoch, index)],
                user: e.user.clone(),
                at_us: e.at_us,
                detail,
                volume: None,
            })
        })
        .collect()
}

/// Folds one character to its unaccented lower-case ASCII letters, for name comparison;
/// characters outside the table are lower-cased as they are.
fn fold(c: char, out: &mut String) {
    let s = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å'
        | 'Ā' | 'Ă' | 'Ą' => "a",
        'æ' | 'Æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' | 'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "c",
        'ď' | 'đ' | 'ð' | 'Ď' | 'Đ' | 'Ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' | 'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ'
        | 'Ė' | 'Ę' | 'Ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' | 'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "g",
        'ĥ' | 'ħ' | 'Ĥ' | 'Ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'Ĩ' | 'Ī'
        | 'Ĭ' | 'Į' | 'İ' => "i",
        'ĵ' | 'Ĵ' => "j",
        'ķ' | 'Ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' | 'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'Ñ' | 'Ń' | 'Ņ' | 'Ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø'
        | 'Ō' | 'Ŏ' | 'Ő' => "o",
        'œ' | 'Œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' | 'Ŕ' | 'Ŗ' | 'Ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'Ś' | 'Ŝ' | 'Ş' | 'Š' => "s",
        'ß' | 'ẞ' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'Ţ' | 'Ť' | 'Ŧ' => "t",
        'þ' | 'Þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ũ'
        | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "u",
        'ŵ' | 'ẁ' | 'ẃ' | 'ẅ' | 'Ŵ' | 'Ẁ' | 'Ẃ' | 'Ẅ' => "w",
        'ý' | 'ÿ' | 'ŷ' | 'ỳ' | 'Ý' | 'Ÿ' | 'Ŷ' | 'Ỳ' => "y",
        'ź' | 'ż' | 'ž' | 'Ź' | 'Ż' | 'Ž' => "z",
        other => {
            out.extend(other.to_lowercase());
            return;
        }
    };
    out.push_str(s);
}

/// A family name for comparison: lower case, Latin accents removed (`é` → `e`, `ß` → `ss`,
/// combining marks dropped), and hyphens, spaces and apostrophes ignored, so `O'Brien-Smith`,
/// `obrien smith` and `ÓBrien Smith` compare equal.
#[must_use]
pub fn normalise_family_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_whitespace()
            || matches!(
                c,
                '-' | '\u{2010}' | '\u{2011}' | '\u{2013}' | '\'' | '\u{2019}' | '\u{2018}'
            )
            || ('\u{0300}'..='\u{036F}').contains(&c)
        {
            continue;
        }
        fold(c, &mut out);
    }
    out
}

/// A postcode or address line for comparison: upper case, without whitespace, commas or
/// full stops (`"12, High St."` and `"12 HIGH ST"` compare equal).
#[must_use]
pub fn normalise_address(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, ',' | '.'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Which of the relative rules hold (family name, address).
fn related(staff: &StaffProfile, patient: &PatientProfile) -> (bool, bool) {
    let staff_name = normalise_family_name(&staff.family_name);
    let name = !staff_name.is_empty() && staff_name == normalise_family_name(&patient.family_name);
    let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => {
            let a = normalise_address(a);
            !a.is_empty() && a == normalise_address(b)
        }
        _ => false,
    };
    let address = same(&staff.postcode, &patient.postcode)
        && same(&staff.address_line, &patient.address_line);
    (name, address)
}

/// (c) Permitted accesses to a patient who shares the staff member's family name, or their
/// postcode and first address line. `patient_lookup` maps a pseudonym to the patient's
/// profile (`None`: unknown; never flagged); it is asked once per pseudonym.
pub fn relatives<'a>(
    events: impl IntoIterator<Item = (u32, u64, &'a AuditEvent)>,
    staff: &BTreeMap<String, StaffProfile>,
    patient_lookup: impl Fn(&str) -> Option<PatientProfile>,
) -> Vec<Finding> {
    let mut cache: BTreeMap<String, Option<PatientProfile>> = BTreeMap::new();
    let mut out = Vec::new();
    for (epoch, index, e) in events {
        if e.kind != EventKind::Access || e.outcome != Outcome::Permit {
            continue;
        }
        let Some(profile) = staff.get(&e.user) else {
            continue;
        };
        let mut reasons = Vec::new();
        for p in &e.patients {
            let patient = cache.entry(p.clone()).or_insert_with(|| patient_lookup(p));
            let Some(patient) = patient else {
                continue;
            };
            match related(profile, patient) {
                (true, true) => reasons.push(format!(
                    "patient {p} has the same family name and address as the member of staff"
                )),
                (true, false) => reasons.push(format!(
                    "patient {p} has the same family name as the member of staff"
                )),
                (false, true) => reasons.push(format!(
                    "patient {p} lives at the same address as the member of staff"
                )),
                (false, false) => {}
            }
        }
        if !reasons.is_empty() {
            out.push(Finding {
                kind: FindingKind::Relative,
                entries: vec![pos(epoch, index)],
                user: e.user.clone(),
                at_us: e.at_us,
                detail: format!("{}: {}", what(e), reasons.join("; ")),
                volume: None,
            });
        }
    }
    out
}

/// One user's hour: distinct patients and the entries.
#[derive(Default)]
struct Hour<'a> {
    patients: BTreeSet<&'a str>,
    entries: Vec<LedgerPos>,
}

/// (d) Hours in which a user accessed unusually many distinct patients for them.
pub fn unusual_volume<'a>(
    events: impl IntoIterator<Item = (u32, u64, &'a AuditEvent)>,
    params: &VolumeParams,
) -> Vec<Finding> {
    let mut by_user: BTreeMap<&'a str, BTreeMap<i64, Hour<'a>>> = BTreeMap::new();
    for (epoch, index, e) in events {
        if e.kind != EventKind::Access
            || e.outcome != Outcome::Permit
            || e.patients.is_empty()
            || e.user.is_empty()
        {
            continue;
        }
        let hour = by_user
            .entry(e.user.as_str())
            .or_default()
            .entry(e.at_us.div_euclid(uktime::US_PER_HOUR))
            .or_default();
        hour.patients.extend(e.patients.iter().map(String::as_str));
        hour.entries.push(pos(epoch, index));
    }
    let window = i64::from(params.baseline_days) * 24;
    let mut out = Vec::new();
    for (user, hours) in by_user {
        let hours: Vec<(i64, u64, Vec<LedgerPos>)> = hours
            .into_iter()
            .map(|(h, v)| (h, v.patients.len() as u64, v.entries))
            .collect();
        // The baseline of hour i is hours[lo..i]: active hours in [h - window, h).
        let mut lo = 0;
        let mut sum: u128 = 0;
        let mut sum_sq: u128 = 0;
        for i in 0..hours.len() {
            let (h, count, _) = &hours[i];
            if i > 0 {
                let prev = u128::from(hours[i - 1].1);
                sum += prev;
                sum_sq += prev * prev;
            }
            while lo < i && hours[lo].0 < h.saturating_sub(window) {
                let old = u128::from(hours[lo].1);
                sum -= old;
                sum_sq -= old * old;
                lo += 1;
            }
            let n = (i - lo) as u128;
            if n == 0 || *count < u64::from(params.min_patients) {
                continue;
            }
            // Population variance, exact in integers: (n Σx² − (Σx)²) / n².
            let mean = sum as f64 / n as f64;
            // Non-negative by Cauchy–Schwarz; saturating only against absurd sizes.
            let spread = n
                .saturating_mul(sum_sq)
                .saturating_sub(sum.saturating_mul(sum));
            let var = spread as f64 / n.saturating_mul(n) as f64;
            let sd = var.sqrt();
            let threshold = mean + params.factor * sd;
            if (*count as f64) > threshold {
                let hour_start_us = h.saturating_mul(uktime::US_PER_HOUR);
                let utc = uktime::utc(hour_start_us);
                out.push(Finding {
                    kind: FindingKind::UnusualVolume,
                    entries: hours[i].2.clone(),
                    user: user.to_owned(),
                    at_us: hour_start_us,
                    detail: format!(
                        "{} in the hour from {:02}:00 UTC ({}); usually {mean:.1} per active hour \
                         (standard deviation {sd:.1}, over {n} active hours in the previous {} days)",
                        patients_phrase(usize::try_from(*count).unwrap_or(usize::MAX)),
                        utc.hour,
                        uktime::uk_local(hour_start_us).long(),
                        params.baseline_days
                    ),
                    volume: Some(VolumeAlert {
                        hour_start_us,
                        patients: *count,
                        baseline_mean: mean,
                        baseline_sd: sd,
                        threshold,
                        baseline_hours: n as u64,
                    }),
                });
            }
        }
    }
    out
}

/// Text fit for a terminal or an e-mail: control characters (which could forge lines or
/// drive a terminal) become U+FFFD.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

impl ReviewReport {
    /// A report of these findings, in time order (then by query, then by entry).
    #[must_use]
    pub fn new(mut findings: Vec<Finding>) -> Self {
        findings.sort_by(|a, b| {
            (a.at_us, a.kind, &a.entries, &a.user).cmp(&(b.at_us, b.kind, &b.entries, &b.user))
        });
        ReviewReport { findings }
    }

    /// The findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// The report for people: a summary line per kind, then each finding with its UK local
    /// time, user, what was found and the ledger entries to look at.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let n = self.findings.len();
        let _ = writeln!(
            t,
            "Caldicott guardian review: {n} {}",
            if n == 1 { "finding" } else { "findings" }
        );
        for kind in [
            FindingKind::BreakGlass,
            FindingKind::AfterHours,
            FindingKind::Relative,
            FindingKind::UnusualVolume,
        ] {
            let _ = writeln!(t, "  {}: {}", kind.title(), self.of_kind(kind).count());
        }
        for (i, f) in self.findings.iter().enumerate() {
            let user = if f.user.is_empty() {
                "(no user recorded)".to_owned()
            } else {
                plain(&f.user)
            };
            let _ = writeln!(
                t,
                "\n{}. {}: {}, {}",
                i + 1,
                f.kind.title(),
                uktime::uk_local(f.at_us).long(),
                user
            );
            let _ = writeln!(t, "   {}", plain(&f.detail));
            let entries: Vec<String> = f
                .entries
                .iter()
                .map(|p| format!("{}-{}", p.epoch, p.index))
                .collect();
            let label = if entries.len() == 1 {
                "Log entry"
            } else {
                "Log entries"
            };
            let _ = writeln!(t, "   {label}: {}", entries.join(", "));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;
    use proptest::prelude::*;

    /// 2025-11-24 (a Monday) at hh:mm UTC (GMT, so also UK local).
    fn monday(h: i64, m: i64) -> i64 {
        (uktime::days_from_civil(2025, 11, 24) * 86_400 + h * 3600 + m * 60) * uktime::US_PER_SECOND
    }

    fn access(user: &str, at_us: i64, patients: &[&str]) -> AuditEvent {
        let mut e = sample();
        e.user = user.into();
        e.at_us = at_us;
        e.patients = patients.iter().map(|p| (*p).to_owned()).collect();
        e
    }

    fn items(events: &[AuditEvent]) -> Vec<(u32, u64, &AuditEvent)> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (1, i as u64, e))
            .collect()
    }

    #[test]
    fn break_glass_uses_and_declarations() {
        let mut declared = access("dr.a", monday(10, 0), &[]);
        declared.kind = EventKind::BreakGlass;
        declared.action = "declare".into();
        declared.reason = "unconscious patient in A&E".into();
        let mut reviewed = declared.clone();
        reviewed.action = "review".into();
        let mut used = access("dr.a", monday(10, 5), &["p1"]);
        used.break_glass = true;
        used.purpose = "direct-care".into();
        let mut refused = used.clone();
        refused.outcome = Outcome::Deny;
        let normal = access("dr.b", monday(10, 6), &["p2"]);
        let events = [declared, reviewed, used, refused, normal];
        let f = break_glass_uses(items(&events));
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].entries, [pos(1, 0)]);
        assert_eq!(
            f[0].detail,
            "declared emergency access; purpose direct-care; reason: unconscious patient in A&E"
        );
        assert_eq!(
            f[1].detail,
            "read Observation under emergency access, 1 patient; purpose direct-care; reason: registered at the organisation"
        );
        assert!(f[2].detail.contains("(refused)"));
        assert!(f.iter().all(|x| x.kind == FindingKind::BreakGlass));
    }

    #[test]
    fn after_hours_uses_uk_local_time() {
        let wh = WorkingHours::default();
        let at = |y: i64, mo: u8, d: u8, h: i64, mi: i64| {
            (uktime::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60)
                * uktime::US_PER_SECOND
        };
        let events = [
            access("u", monday(7, 59), &["p"]),           // before 08:00
            access("u", monday(8, 0), &["p"]),            // in
            access("u", monday(18, 29), &["p"]),          // in
            access("u", monday(18, 30), &["p"]),          // after
            access("u", at(2025, 11, 29, 12, 0), &["p"]), // Saturday
            access("u", at(2025, 11, 30, 12, 0), &["p"]), // Sunday
            // Summer: 07:30 UTC is 08:30 BST, in hours; 17:45 UTC is 18:45 BST, out.
            access("u", at(2025, 7, 1, 7, 30), &["p"]),
            access("u", at(2025, 7, 1, 17, 45), &["p"]),
            // Winter Friday 23:30 UTC.
            access("u", at(2025, 11, 28, 23, 30), &["p"]),
            // No patient concerned: not reviewed here.
            access("u", at(2025, 11, 29, 12, 0), &[]),
        ];
        let f = after_hours(items(&events), &wh);
        let idx: Vec<u64> = f.iter().map(|x| x.entries[0].index).collect();
        assert_eq!(idx, [0, 3, 4, 5, 7, 8]);
        assert!(f[0].detail.contains("before working hours"));
        assert!(f[1].detail.contains("after working hours"));
        assert!(f[2].detail.contains("at the weekend"));
        assert!(f[4].detail.contains("Tuesday 1 July 2025, 6:45pm BST"));
        // A bank holiday.
        let mut wh = WorkingHours::default();
        wh.days_off.insert((2025, 11, 24));
        let f = after_hours(items(&events[1..2]), &wh);
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.contains("on a non-working day"));
        // A start at or after the end: every minute is out of hours.
        let wh = WorkingHours {
            start_minute: 600,
            end_minute: 600,
            ..WorkingHours::default()
        };
        assert_eq!(after_hours(items(&events[1..3]), &wh).len(), 2);
    }

    #[test]
    fn name_and_address_normalisation() {
        let n = normalise_family_name;
        assert_eq!(n("O'Brien-Smith"), "obriensmith");
        assert_eq!(n("obrien smith"), "obriensmith");
        assert_eq!(n("ÓBrien Smith"), "obriensmith");
        assert_eq!(n("O\u{2019}Brien"), "obrien");
        assert_eq!(n("Müller"), n("MULLER"));
        assert_eq!(n("Strauß"), "strauss");
        assert_eq!(n("Łukasz"), "lukasz");
        // Decomposed accents (e + combining acute).
        assert_eq!(n("Jose\u{301}"), "jose");
        assert_eq!(n("Ap Dafydd"), n("ap-dafydd"));
        assert_eq!(n(" - "), "");
        assert_eq!(normalise_address("sw1a 1aa"), "SW1A1AA");
        assert_eq!(normalise_address("12, High St."), "12HIGHST");
        assert_eq!(normalise_address("12 high st"), "12HIGHST");
    }

    #[test]
    fn relatives_by_name_or_address() {
        let staff = BTreeMap::from([
            (
                "nurse.obrien".to_owned(),
                StaffProfile {
                    family_name: "O'Brien".into(),
                    postcode: Some("LS1 4AP".into()),
                    address_line: Some("12 Park Row".into()),
                },
            ),
            (
                "dr.nobody".to_owned(),
                StaffProfile {
                    family_name: String::new(),
                    postcode: None,
                    address_line: None,
                },
            ),
        ]);
        let lookup = |p: &str| -> Option<PatientProfile> {
            Some(match p {
                "p-sib" => PatientProfile {
                    family_name: "OBRIEN".into(),
                    postcode: None,
                    address_line: None,
                },
                "p-flat" => PatientProfile {
                    family_name: "Khan".into(),
                    postcode: Some("ls14ap".into()),
                    address_line: Some("12, PARK ROW".into()),
                },
                "p-street" => PatientProfile {
                    family_name: "Khan".into(),
                    postcode: Some("LS1 4AP".into()),
                    address_line: Some("14 Park Row".into()),
                },
                "p-empty" => PatientProfile::default(),
                _ => return None,
            })
        };
        let mut refused = access("nurse.obrien", monday(9, 0), &["p-sib"]);
        refused.outcome = Outcome::Deny;
        let events = [
            access("nurse.obrien", monday(9, 0), &["p-sib"]),
            access("nurse.obrien", monday(9, 1), &["p-flat", "p-street"]),
            access("nurse.obrien", monday(9, 2), &["p-street", "unknown"]),
            access("dr.nobody", monday(9, 3), &["p-empty"]),
            access("not.staff", monday(9, 4), &["p-sib"]),
            refused,
        ];
        let f = relatives(items(&events), &staff, lookup);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].entries, [pos(1, 0)]);
        assert_eq!(
            f[0].detail,
            "read Observation: patient p-sib has the same family name as the member of staff"
        );
        assert_eq!(f[1].entries, [pos(1, 1)]);
        assert_eq!(
            f[1].detail,
            "read Observation: patient p-flat lives at the same address as the member of staff"
        );
        // No name, postcode or address line leaks into the findings.
        let text = ReviewReport::new(f).to_text();
        for secret in ["O'Brien", "OBRIEN", "LS1", "Park Row", "PARK", "Khan"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn relatives_asks_once_per_pseudonym() {
        let staff = BTreeMap::from([(
            "u".to_owned(),
            StaffProfile {
                family_name: "Smith".into(),
                ..StaffProfile::default()
            },
        )]);
        let calls = std::cell::Cell::new(0);
        let events: Vec<AuditEvent> = (0..10).map(|i| access("u", monday(9, i), &["p"])).collect();
        let f = relatives(items(&events), &staff, |_| {
            calls.set(calls.get() + 1);
            Some(PatientProfile {
                family_name: "SMITH".into(),
                ..PatientProfile::default()
            })
        });
        assert_eq!(f.len(), 10);
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn profiles_debug_redacts() {
        let s = StaffProfile {
            family_name: "Secretname".into(),
            postcode: Some("LS1 4AP".into()),
            address_line: None,
        };
        assert_eq!(format!("{s:?}"), "StaffProfile { .. }");
        assert_eq!(
            format!("{:?}", PatientProfile::default()),
            "PatientProfile { .. }"
        );
    }

    /// `per_hour[i]` distinct patients for `user` in hour `start_hour + i` (UTC hours since
    /// the epoch), each patient a separate event.
    fn hours_of(user: &str, start_hour: i64, per_hour: &[u32]) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        for (i, n) in per_hour.iter().enumerate() {
            for p in 0..*n {
                out.push(access(
                    user,
                    (start_hour + i as i64) * uktime::US_PER_HOUR + i64::from(p),
                    &[&format!("{user}-p{p}")],
                ));
            }
        }
        out
    }

    #[test]
    fn unusual_volume_against_the_users_own_baseline() {
        let start = 485_000; // an hour in 2025
        // Ten active hours of 5 patients, then 40: mean 5, sd 0, threshold 5, 40 >= 20.
        let mut counts = vec![5; 10];
        counts.push(40);
        let events = hours_of("dr.a", start, &counts);
        let f = unusual_volume(items(&events), &VolumeParams::default());
        assert_eq!(f.len(), 1);
        let v = f[0].volume.as_ref().unwrap();
        assert_eq!(v.patients, 40);
        assert_eq!(v.baseline_hours, 10);
        assert!((v.baseline_mean - 5.0).abs() < 1e-9);
        assert!(v.baseline_sd.abs() < 1e-9);
        assert_eq!(v.hour_start_us, (start + 10) * uktime::US_PER_HOUR);
        assert_eq!(f[0].at_us, v.hour_start_us);
        assert_eq!(f[0].entries.len(), 40);
        assert_eq!(f[0].user, "dr.a");
        assert!(f[0].detail.starts_with("40 patients in the hour from"));
        // Repeated accesses to the same patient count once.
        let mut repeated = hours_of("dr.a", start, &[5; 10]);
        for i in 0..40 {
            repeated.push(access(
                "dr.a",
                (start + 10) * uktime::US_PER_HOUR + i,
                &["same"],
            ));
        }
        assert!(unusual_volume(items(&repeated), &VolumeParams::default()).is_empty());
        // Below min_patients never alerts, however unusual.
        let events = hours_of("dr.a", start, &[1, 1, 1, 1, 19]);
        assert!(unusual_volume(items(&events), &VolumeParams::default()).is_empty());
        let low = VolumeParams {
            min_patients: 10,
            ..VolumeParams::default()
        };
        assert_eq!(unusual_volume(items(&events), &low).len(), 1);
        // A varied baseline: 10, 30 → mean 20, sd 10, threshold 50; 50 does not alert, 51
        // does (min_patients 40 keeps the 30 itself, against a baseline of one 10, quiet).
        let high = VolumeParams {
            min_patients: 40,
            ..VolumeParams::default()
        };
        let events = hours_of("dr.a", start, &[10, 30, 50]);
        assert!(unusual_volume(items(&events), &high).is_empty());
        let events = hours_of("dr.a", start, &[10, 30, 51]);
        let f = unusual_volume(items(&events), &high);
        assert_eq!(f.len(), 1);
        let v = f[0].volume.as_ref().unwrap();
        assert!((v.baseline_sd - 10.0).abs() < 1e-9);
        assert!((v.threshold - 50.0).abs() < 1e-9);
    }

    #[test]
    fn the_baseline_window_is_the_previous_days_only() {
        let start = 485_000;
        let params = VolumeParams {
            baseline_days: 1,
            ..VolumeParams::default()
        };
        // 30 patients an hour, then 25 hours of nothing, then 30 again: the window (24 h)
        // is empty, so there is no baseline and no alert.
        let mut events = hours_of("dr.a", start, &[30]);
        events.extend(hours_of("dr.a", start + 26, &[30]));
        assert!(unusual_volume(items(&events), &params).is_empty());
        // An hour of 5 exactly 24 hours before is in the window; 23 hours... also.
        let mut events = hours_of("dr.a", start, &[5]);
        events.extend(hours_of("dr.a", start + 24, &[30]));
        assert_eq!(unusual_volume(items(&events), &params).len(), 1);
        let mut events = hours_of("dr.a", start, &[5]);
        events.extend(hours_of("dr.a", start + 25, &[30]));
        assert!(unusual_volume(items(&events), &params).is_empty());
        // Refused accesses and other kinds do not count.
        let mut events = hours_of("dr.a", start, &[5]);
        let mut big = hours_of("dr.a", start + 1, &[30]);
        for e in &mut big {
            e.outcome = Outcome::Deny;
        }
        events.extend(big);
        assert!(unusual_volume(items(&events), &params).is_empty());
    }

    #[test]
    fn the_report_orders_and_reads() {
        let mut glass = access("dr.a", monday(22, 0), &["p1"]);
        glass.break_glass = true;
        let late = access("dr.b\u{1b}[2J\nforged line", monday(21, 0), &["p2"]);
        let events = [glass, late];
        let mut all = break_glass_uses(items(&events));
        all.extend(after_hours(items(&events), &WorkingHours::default()));
        let report = ReviewReport::new(all);
        assert_eq!(report.findings.len(), 3);
        assert_eq!(report.findings[0].user, "dr.b\u{1b}[2J\nforged line");
        assert_eq!(report.findings[1].kind, FindingKind::BreakGlass);
        assert_eq!(report.findings[2].kind, FindingKind::AfterHours);
        let text = report.to_text();
        assert!(text.starts_with("Caldicott guardian review: 3 findings\n"));
        assert!(text.contains("  Emergency access (break-glass): 1\n"));
        assert!(text.contains("  Access outside working hours: 2\n"));
        assert!(text.contains(
            "\n2. Emergency access (break-glass): Monday 24 November 2025, 10:00pm GMT, dr.a\n"
        ));
        assert!(text.contains("   Log entry: 1-0\n"));
        assert!(!text.contains('\u{1b}'));
        assert!(!text.contains("\nforged line"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["findings"][1]["kind"], "break-glass");
        assert_eq!(
            json["findings"][1]["entries"][0],
            serde_json::json!({ "epoch": 1, "index": 0 })
        );
        assert!(json["findings"][1].get("volume").is_none());
        assert_eq!(
            ReviewReport::default().to_text().lines().next(),
            Some("Caldicott guardian review: 0 findings")
        );
    }

    fn alerts_of(findings: &[Finding], user: &str) -> Vec<(i64, u64)> {
        findings
            .iter()
            .filter(|f| f.user == user)
            .map(|f| (f.at_us, f.volume.as_ref().map_or(0, |v| v.patients)))
            .collect()
    }

    proptest! {
        #[test]
        fn other_users_never_change_a_users_alerts(
            mine in proptest::collection::vec((0i64..200, 0u32..40), 0..40),
            theirs in proptest::collection::vec((0i64..200, 0u32..60), 0..40),
            days in 0u32..10,
            min in 0u32..30,
            factor in -1.0f64..4.0,
        ) {
            let params = VolumeParams { baseline_days: days, min_patients: min, factor };
            let mut alone = Vec::new();
            for (h, n) in &mine {
                alone.extend(hours_of("me", 480_000 + h, &[*n]));
            }
            let before = unusual_volume(items(&alone), &params);
            let mut crowded = alone.clone();
            for (h, n) in &theirs {
                crowded.extend(hours_of("other", 480_000 + h, &[*n]));
                // Even the same patients, in the same hours.
                let mut same = hours_of("other2", 480_000 + h, &[*n]);
                for e in &mut same {
                    e.patients = vec![format!("me-p{}", e.at_us % 7)];
                }
                crowded.extend(same);
            }
            let after = unusual_volume(items(&crowded), &params);
            prop_assert_eq!(alerts_of(&before, "me"), alerts_of(&after, "me"));
        }

        #[test]
        fn a_constant_rate_never_alerts(
            n in 0u32..200,
            active in proptest::collection::btree_set(0i64..2000, 0..80),
            days in 0u32..60,
            min in 0u32..50,
            factor in -10.0f64..10.0,
        ) {
            let params = VolumeParams { baseline_days: days, min_patients: min, factor };
            let mut events = Vec::new();
            for h in &active {
                events.extend(hours_of("steady", 480_000 + h, &[n]));
            }
            prop_assert!(unusual_volume(items(&events), &params).is_empty());
        }

        #[test]
        fn alerts_respect_min_patients_and_threshold(
            counts in proptest::collection::vec(0u32..60, 1..30),
            min in 0u32..40,
        ) {
            let params = VolumeParams { baseline_days: 28, min_patients: min, factor: 3.0 };
            let events = hours_of("u", 480_000, &counts);
            for f in unusual_volume(items(&events), &params) {
                let v = f.volume.unwrap();
                prop_assert!(v.patients >= u64::from(min));
                prop_assert!(v.patients as f64 > v.threshold);
                prop_assert!(v.baseline_hours >= 1);
            }
        }

        #[test]
        fn review_queries_never_panic(at in any::<i64>(), user in "\\PC{0,8}", bg in any::<bool>()) {
            let mut e = access(&user, at, &["p"]);
            e.break_glass = bg;
            let events = [e];
            let mut all = break_glass_uses(items(&events));
            all.extend(after_hours(items(&events), &WorkingHours::default()));
            all.extend(unusual_volume(items(&events), &VolumeParams::default()));
            let _ = ReviewReport::new(all).to_text();
        }
    }
}
