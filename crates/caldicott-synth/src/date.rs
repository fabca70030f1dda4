//! Proleptic Gregorian dates as day numbers, and their FHIR `date` / `dateTime` forms.
//!
//! Days are counted from 1970-01-01 (day 0). The conversions are Howard Hinnant's
//! `days_from_civil` / `civil_from_days` algorithms, exact for every date used here. Values
//! serialise straight into the JSON output through `Display`, without a heap string.

use std::fmt;

/// The fixed "today" of every data set: 2026-01-01. Never the clock, so output is
/// reproducible.
pub(crate) const REFERENCE_DAY: i32 = days_from_civil(2026, 1, 1);
/// Clinical history is generated from this day (five years before the reference date).
pub(crate) const HISTORY_START_DAY: i32 = days_from_civil(2021, 1, 1);

/// Days since 1970-01-01 of a calendar date.
pub(crate) const fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe as i32 - 719_468
}

/// The calendar date (year, month, day) of a day number.
pub(crate) const fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day of the week, 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
pub(crate) const fn weekday(day: i32) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

/// A FHIR `date`, e.g. `1948-07-05`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Date(pub(crate) i32);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A FHIR `dateTime` to the minute, in UTC, e.g. `2024-03-05T09:10:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DateTime {
    pub(crate) day: i32,
    /// Minutes after midnight UTC.
    pub(crate) minute: u32,
}

impl DateTime {
    /// The instant `minutes` later (staying on the same day, which holds for the short
    /// daytime appointments generated here).
    pub(crate) fn plus_minutes(self, minutes: u32) -> Self {
        let minute = self.minute + minutes;
        Self {
            day: self.day + (minute / 1440) as i32,
            minute: minute % 1440,
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}T{:02}:{:02}:00Z",
            Date(self.day),
            self.minute / 60,
            self.minute % 60
        )
    }
}

impl serde::Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(REFERENCE_DAY, 20_454);
        assert_eq!(Date(REFERENCE_DAY).to_string(), "2026-01-01");
        assert_eq!(Date(HISTORY_START_DAY).to_string(), "2021-01-01");
        assert_eq!(Date(days_from_civil(1924, 2, 29)).to_string(), "1924-02-29");
        assert_eq!(Date(-1).to_string(), "1969-12-31");
        // 2026-01-01 is a Thursday; 2021-01-01 was a Friday.
        assert_eq!(weekday(REFERENCE_DAY), 3);
        assert_eq!(weekday(HISTORY_START_DAY), 4);
    }

    #[test]
    fn round_trips_across_a_century_and_a_half() {
        for day in days_from_civil(1900, 1, 1)..days_from_civil(2050, 1, 1) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn date_time_format() {
        let t = DateTime {
            day: days_from_civil(2024, 3, 5),
            minute: 9 * 60 + 10,
        };
        assert_eq!(t.to_string(), "2024-03-05T09:10:00Z");
        assert_eq!(t.plus_minutes(15).to_string(), "2024-03-05T09:25:00Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-03-05T09:10:00Z\""
        );
    }
}
