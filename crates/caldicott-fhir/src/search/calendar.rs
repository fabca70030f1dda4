//! Calendar arithmetic and the one parser of FHIR `date`/`dateTime`/`instant` text into
//! the range of time its precision implies, shared by extraction (resource values) and
//! query parsing (search values), so both read a date the same way.

use super::DateRange;

pub(crate) const SECOND_US: i64 = 1_000_000;
pub(crate) const DAY_US: i64 = 86_400 * SECOND_US;

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `n` ASCII digits at `at`.
pub(crate) fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    b.get(at..at.checked_add(n)?)?
        .iter()
        .try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
}

/// A FHIR `date`, `dateTime` or `instant` as the half-open interval its precision implies,
/// in microseconds since the Unix epoch (UTC): `2020` is the year 2020, `2020-03` that month,
/// `2020-03-04` that day, `2020-03-04T10:00:00+01:00` that second, `...T10:00:00.25Z` that
/// hundredth of a second (a fraction finer than microseconds is one microsecond). No time
/// zone means UTC; a minute-precision time (`T10:00Z`, which FHIR does not allow) is read as
/// that minute; the leap second `:60` is read as `:59`. `None` when malformed or out of range
/// (year 0001 to 9999).
pub fn date_range(s: &str) -> Option<DateRange> {
    let b = s.as_bytes();
    let year = i64::from(digits(b, 0, 4)?);
    if year == 0 {
        return None;
    }
    let day_us = |y: i64, m: u32, d: u32| days_from_civil(y, m, d) * DAY_US;
    if b.len() == 4 {
        return Some(DateRange {
            start: day_us(year, 1, 1),
            end: day_us(year + 1, 1, 1),
        });
    }
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if b.len() == 7 {
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        return Some(DateRange {
            start: day_us(year, month, 1),
            end: day_us(ny, nm, 1),
        });
    }
    if b.get(7) != Some(&b'-') {
        return None;
    }
    let day = digits(b, 8, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let day_start = day_us(year, month, day);
    if b.len() == 10 {
        return Some(DateRange {
            start: day_start,
            end: day_start + DAY_US,
        });
    }
    if b.get(10) != Some(&b'T') || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut at = 16;
    let mut width = 60 * SECOND_US;
    let mut within_minute = 0;
    if b.get(at) == Some(&b':') {
        let second = digits(b, at + 1, 2)?;
        if second > 60 {
            return None;
        }
        within_minute = i64::from(second.min(59)) * SECOND_US;
        width = SECOND_US;
        at += 3;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let frac_start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            let frac = b.get(frac_start..at)?;
            if frac.is_empty() {
                return None;
            }
            let mut us = 0;
            let mut unit = SECOND_US;
            for &c in frac.iter().take(6) {
                unit /= 10;
                us += i64::from(c - b'0') * unit;
            }
            within_minute += us;
            width = unit.max(1);
        }
    }
    let zone_us = match b.get(at) {
        None => 0,
        Some(b'Z') if b.len() == at + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == at + 6 && b.get(at + 3) == Some(&b':') => {
            let zh = digits(b, at + 1, 2)?;
            let zm = digits(b, at + 4, 2)?;
            if zh > 14 || zm > 59 {
                return None;
            }
            let off = (i64::from(zh) * 60 + i64::from(zm)) * 60 * SECOND_US;
            if sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let start = day_start
        + i64::from(hour) * 3_600 * SECOND_US
        + i64::from(minute) * 60 * SECOND_US
        + within_minute
        - zone_us;
    Some(DateRange {
        start,
        end: start + width,
    })
}

/// The (year, month 1–12) of a day counted from 1970-01-01 (`civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let m = u32::try_from(m).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m)
}
