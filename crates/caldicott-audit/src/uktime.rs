//! UK local time (Europe/London) from UTC microseconds, without a time-zone database.
//!
//! Why it exists: the patient's report and the guardian's after-hours review speak UK local
//! time, and this crate is pure: no tz files, no clock, the same answer on every machine.
//! The rule is the one in force since 1996 and kept in UK law after 2020: British Summer Time
//! (UTC+1) from 01:00 UTC on the last Sunday of March until 01:00 UTC on the last Sunday of
//! October, Greenwich Mean Time (UTC) otherwise. It is applied to every year; no audit event
//! predates Caldicott, so the UK's older rules never matter.
//!
//! Every function is total: any `i64` of microseconds gives an answer (years far outside
//! 1–9999 included) and nothing here can overflow or panic.

use time::Weekday;

/// Microseconds in a second.
pub const US_PER_SECOND: i64 = 1_000_000;
/// Microseconds in a minute.
pub const US_PER_MINUTE: i64 = 60 * US_PER_SECOND;
/// Microseconds in an hour.
pub const US_PER_HOUR: i64 = 60 * US_PER_MINUTE;
/// Microseconds in a (UTC) day.
pub const US_PER_DAY: i64 = 24 * US_PER_HOUR;

const SECONDS_PER_DAY: i64 = 86_400;

/// A moment as a wall clock in one zone reads it: the calendar date, the time of day to the
/// microsecond, the weekday, and whether summer time applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Proleptic Gregorian year (may be outside 1–9999 for absurd inputs).
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
    /// 0–999 999.
    pub micro: u32,
    pub weekday: Weekday,
    /// British Summer Time (UTC+1) applied; always `false` for [`utc`].
    pub bst: bool,
}

impl LocalTime {
    /// Minutes since local midnight (0–1439): what working hours are compared with.
    #[must_use]
    pub fn minute_of_day(&self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }

    /// The zone's abbreviation, as people in the UK read it: `BST` or `GMT`.
    #[must_use]
    pub fn zone(&self) -> &'static str {
        if self.bst { "BST" } else { "GMT" }
    }

    /// The date in the GOV.UK and NHS style: `Saturday 29 November 2025`.
    #[must_use]
    pub fn long_date(&self) -> String {
        format!(
            "{} {} {} {}",
            weekday_name(self.weekday),
            self.day,
            month_name(self.month),
            self.year
        )
    }

    /// The time of day in the GOV.UK and NHS style: `7:06am`, `12:30pm`, `midday`,
    /// `midnight` (to the minute: seconds do not help a reader).
    #[must_use]
    pub fn clock(&self) -> String {
        match (self.hour, self.minute) {
            (0, 0) => "midnight".to_owned(),
            (12, 0) => "midday".to_owned(),
            (h, m) => {
                let suffix = if h < 12 { "am" } else { "pm" };
                let h12 = match h % 12 {
                    0 => 12,
                    other => other,
                };
                format!("{h12}:{m:02}{suffix}")
            }
        }
    }

    /// Date, time and zone in one line: `Saturday 29 November 2025, 7:06am GMT`.
    #[must_use]
    pub fn long(&self) -> String {
        format!("{}, {} {}", self.long_date(), self.clock(), self.zone())
    }
}

/// The English name of a weekday.
#[must_use]
pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// The English name of a month (1–12); `"?"` outside that range.
#[must_use]
pub fn month_name(m: u8) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    m.checked_sub(1)
        .and_then(|i| NAMES.get(usize::from(i)))
        .copied()
        .unwrap_or("?")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). The
/// caller keeps the year within ±10^12 (every use here is far inside that).
#[must_use]
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let m = i64::from(month);
    let d = i64::from(day);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction; the fallbacks are unreachable.
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// The weekday of a day number (1970-01-01 was a Thursday).
#[must_use]
pub fn weekday_from_days(days: i64) -> Weekday {
    match (days + 3).rem_euclid(7) {
        0 => Weekday::Monday,
        1 => Weekday::Tuesday,
        2 => Weekday::Wednesday,
        3 => Weekday::Thursday,
        4 => Weekday::Friday,
        5 => Weekday::Saturday,
        _ => Weekday::Sunday,
    }
}

/// Whether `year` is a Gregorian leap year.
#[must_use]
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The number of days in a month, 0 for a month outside 1–12.
#[must_use]
pub fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Day number of the last Sunday of a month.
fn last_sunday(year: i64, month: u8) -> i64 {
    let last = days_from_civil(year, month, days_in_month(year, month));
    let from_monday = i64::from(weekday_from_days(last).number_days_from_monday());
    last - (from_monday + 1) % 7
}

/// The instants (Unix seconds) at which BST starts and ends in `year`.
fn bst_bounds_seconds(year: i64) -> (i64, i64) {
    let start = last_sunday(year, 3) * SECONDS_PER_DAY + 3600;
    let end = last_sunday(year, 10) * SECONDS_PER_DAY + 3600;
    (start, end)
}

/// Whether British Summer Time applies at `at_us` (microseconds since the Unix epoch, UTC).
#[must_use]
pub fn is_bst(at_us: i64) -> bool {
    let seconds = at_us.div_euclid(US_PER_SECOND);
    let (year, _, _) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
    let (start, end) = bst_bounds_seconds(year);
    (start..end).contains(&seconds)
}

fn breakdown(seconds: i64, micro: u32, bst: bool) -> LocalTime {
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let secs_of_day = seconds.rem_euclid(SECONDS_PER_DAY); // [0, 86399]
    let (year, month, day) = civil_from_days(days);
    LocalTime {
        year,
        month,
        day,
        hour: u8::try_from(secs_of_day / 3600).unwrap_or(0),
        minute: u8::try_from(secs_of_day % 3600 / 60).unwrap_or(0),
        second: u8::try_from(secs_of_day % 60).unwrap_or(0),
        micro,
        weekday: weekday_from_days(days),
        bst,
    }
}

fn split(at_us: i64) -> (i64, u32) {
    let seconds = at_us.div_euclid(US_PER_SECOND);
    let micro = u32::try_from(at_us.rem_euclid(US_PER_SECOND)).unwrap_or(0);
    (seconds, micro)
}

/// The wall clock in the UK at `at_us`.
#[must_use]
pub fn uk_local(at_us: i64) -> LocalTime {
    let (seconds, micro) = split(at_us);
    let bst = is_bst(at_us);
    // |seconds| < 2^63 / 10^6, so adding an hour cannot overflow.
    breakdown(seconds + if bst { 3600 } else { 0 }, micro, bst)
}

/// The UTC calendar and clock at `at_us`.
#[must_use]
pub fn utc(at_us: i64) -> LocalTime {
    let (seconds, micro) = split(at_us);
    breakdown(seconds, micro, false)
}

/// The instant (UTC microseconds) of UK local midnight starting day number `days`.
///
/// Midnight is never skipped or repeated in the UK (the clocks change at 01:00 UTC), so this
/// is always one instant. `None` only if it cannot be represented in an `i64`.
#[must_use]
pub fn uk_midnight_of_days(days: i64) -> Option<i64> {
    let utc_midnight = days.checked_mul(US_PER_DAY)?;
    // In BST local midnight is 23:00 UTC the day before; BST is in force then exactly when
    // it is in force at local midnight.
    let bst_candidate = utc_midnight.checked_sub(US_PER_HOUR)?;
    Some(if is_bst(bst_candidate) {
        bst_candidate
    } else {
        utc_midnight
    })
}

/// The instant (UTC microseconds) of UK local midnight starting a calendar date, or `None`
/// for a date that does not exist.
#[must_use]
pub fn uk_midnight(year: i64, month: u8, day: u8) -> Option<i64> {
    if !(-1_000_000..=1_000_000).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    uk_midnight_of_days(days_from_civil(year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(y: i64, mo: u8, d: u8, h: i64, mi: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60) * US_PER_SECOND
    }

    #[test]
    fn civil_round_trips_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(weekday_from_days(0), Weekday::Thursday);
        assert_eq!(
            weekday_from_days(days_from_civil(2025, 11, 29)),
            Weekday::Saturday
        );
        assert_eq!(
            weekday_from_days(days_from_civil(1600, 1, 1)),
            Weekday::Saturday
        );
    }

    #[test]
    fn bst_starts_and_ends_at_one_utc_on_the_last_sundays() {
        // 2025: BST from Sunday 30 March 01:00 UTC to Sunday 26 October 01:00 UTC.
        let start = us(2025, 3, 30, 1, 0);
        assert!(!is_bst(start - 1));
        assert!(is_bst(start));
        let end = us(2025, 10, 26, 1, 0);
        assert!(is_bst(end - 1));
        assert!(!is_bst(end));
        // 2024: 31 March and 27 October; 2026: 29 March and 25 October.
        assert!(is_bst(us(2024, 3, 31, 1, 0)));
        assert!(!is_bst(us(2024, 3, 31, 0, 59)));
        assert!(!is_bst(us(2024, 10, 27, 1, 0)));
        assert!(is_bst(us(2026, 3, 29, 1, 0)));
        assert!(!is_bst(us(2026, 10, 25, 1, 0)));
        assert!(is_bst(us(2026, 10, 25, 0, 59)));
        assert!(!is_bst(us(2025, 1, 15, 12, 0)));
        assert!(is_bst(us(2025, 7, 15, 12, 0)));
    }

    #[test]
    fn local_clock_around_the_changes() {
        // 00:59 UTC on 30 March 2025 is 00:59 GMT; one minute later 02:00 BST.
        let before = uk_local(us(2025, 3, 30, 0, 59));
        assert_eq!((before.hour, before.minute, before.bst), (0, 59, false));
        let after = uk_local(us(2025, 3, 30, 1, 0));
        assert_eq!((after.hour, after.minute, after.bst), (2, 0, true));
        // 00:59 UTC on 26 October 2025 is 01:59 BST; one minute later 01:00 GMT again.
        let before = uk_local(us(2025, 10, 26, 0, 59));
        assert_eq!((before.hour, before.minute, before.bst), (1, 59, true));
        let after = uk_local(us(2025, 10, 26, 1, 0));
        assert_eq!((after.hour, after.minute, after.bst), (1, 0, false));
        // 23:30 UTC in summer is the next day locally.
        let late = uk_local(us(2025, 6, 30, 23, 30));
        assert_eq!((late.month, late.day, late.hour), (7, 1, 0));
        assert_eq!(late.weekday, Weekday::Tuesday);
    }

    #[test]
    fn words() {
        let t = uk_local(us(2025, 11, 29, 7, 6));
        assert_eq!(t.long(), "Saturday 29 November 2025, 7:06am GMT");
        assert_eq!(uk_local(us(2025, 7, 1, 11, 0)).clock(), "midday");
        assert_eq!(uk_local(us(2025, 7, 1, 23, 0)).clock(), "midnight");
        assert_eq!(uk_local(us(2025, 7, 1, 12, 30)).clock(), "1:30pm");
        assert_eq!(uk_local(us(2025, 1, 1, 0, 5)).clock(), "12:05am");
        assert_eq!(uk_local(us(2025, 7, 1, 12, 30)).zone(), "BST");
        assert_eq!(month_name(0), "?");
        assert_eq!(month_name(13), "?");
    }

    #[test]
    fn uk_midnights() {
        assert_eq!(uk_midnight(2025, 1, 10), Some(us(2025, 1, 10, 0, 0)));
        assert_eq!(uk_midnight(2025, 7, 10), Some(us(2025, 7, 9, 23, 0)));
        // The days of the changes: midnight is still GMT on 30 March, BST on 26 October.
        assert_eq!(uk_midnight(2025, 3, 30), Some(us(2025, 3, 30, 0, 0)));
        assert_eq!(uk_midnight(2025, 3, 31), Some(us(2025, 3, 30, 23, 0)));
        assert_eq!(uk_midnight(2025, 10, 26), Some(us(2025, 10, 25, 23, 0)));
        assert_eq!(uk_midnight(2025, 10, 27), Some(us(2025, 10, 27, 0, 0)));
        assert_eq!(uk_midnight(2025, 2, 29), None);
        assert_eq!(uk_midnight(2024, 2, 29), Some(us(2024, 2, 29, 0, 0)));
        assert_eq!(uk_midnight(2025, 13, 1), None);
        assert_eq!(uk_midnight(2025, 4, 31), None);
    }

    #[test]
    fn extremes_do_not_panic() {
        for at in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            let t = uk_local(at);
            assert!((1..=12).contains(&t.month));
            let _ = t.long();
            let _ = utc(at);
            let _ = is_bst(at);
        }
        assert_eq!(uk_midnight_of_days(i64::MAX), None);
        assert_eq!(uk_midnight_of_days(i64::MIN), None);
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -100_000_000i64..100_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m));
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn local_is_utc_plus_zero_or_one_hour(at in any::<i64>()) {
            let local = uk_local(at);
            let shifted = utc(at.saturating_add(if local.bst { US_PER_HOUR } else { 0 }));
            if at <= i64::MAX - US_PER_HOUR {
                prop_assert_eq!(
                    (local.year, local.month, local.day, local.hour, local.minute, local.second),
                    (shifted.year, shifted.month, shifted.day, shifted.hour, shifted.minute, shifted.second)
                );
            }
        }

        #[test]
        fn local_midnight_reads_as_midnight(days in -1_000_000i64..1_000_000) {
            let at = uk_midnight_of_days(days).unwrap();
            let local = uk_local(at);
            prop_assert_eq!((local.hour, local.minute, local.second, local.micro), (0, 0, 0, 0));
            prop_assert_eq!(days_from_civil(local.year, local.month, local.day), days);
        }
    }
}
