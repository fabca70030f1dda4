//! Outbound data-loss prevention helper: finds patient identifiers in text.
//!
//! Three kinds: valid NHS numbers (by check digit), names with labelled dates of birth, and
//! clinical terms on the same line as an identifier (a titled name, a valid NHS number or a
//! labelled hospital or patient number). The gateway's submission port holds mail with any
//! of them to a recipient outside the secure domains ([`crate::outbound`]).
//!
//! Findings are counts by kind, never the values found, so they can be logged, shown to the
//! sender and kept in the audit trail without spreading what they protect.

use std::sync::LazyLock;

use caldicott_core::NhsNumber;
use regex::Regex;
use serde::Serialize;

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Ten digits (or 3-3-4 groups separated by single spaces or hyphens) whose modulus-11
    /// check digit is right.
    NhsNumber,
    /// A date labelled as a date of birth (`DOB`, `D.O.B.`, `date of birth`, `born`) with a
    /// person's name on the same line.
    NameWithDateOfBirth,
    /// A clinical term (a diagnosis, condition or treatment from a fixed list) on the same
    /// line as an identifier: a titled name (`Mrs Jones`), a valid NHS number, or a labelled
    /// hospital or patient number (`MRN: K123456`).
    ClinicalTermWithIdentifier,
}

/// How many of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub count: usize,
}

// The patterns are fixed literals: compiling them cannot fail.
static NHS_GROUPED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{3})([ -])(\d{3})([ -])(\d{4})").unwrap_or_else(|_| unreachable!())
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+\d{4})\b",
    )
    .unwrap_or_else(|_| unreachable!())
});
static DOB_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\bd\.?\s?o\.?\s?b\b\.?|\bdate\s+of\s+birth\b|\bbirth\s*date\b|\bborn\b)")
        .unwrap_or_else(|_| unreachable!())
});
static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Master)\.?\s+[A-Z][A-Za-z'\-]+|[A-Z][a-z'\-]+(?:\s+[A-Z][a-z'\-]+){1,2})\b",
    )
    .unwrap_or_else(|_| unreachable!())
});

static CLINICAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:diagnos[ie]s|diagnosed|dementia|alzheimer'?s|diabet(?:es|ic)|cancer|carcinoma|tumou?r|chemotherapy|radiotherapy|hiv|aids|hepatitis|schizophreni[ac]|bipolar|psychosis|depression|self[- ]harm|overdose|suicid(?:e|al)|epilepsy|stroke|copd|asthma|dialysis|pregnan(?:t|cy)|termination|miscarriage|sexually transmitted|chlamydia|syphilis|gonorrh?oea|tuberculosis|sectioned|mental health act|safeguarding|palliative|end of life|dnacpr|dnar|pressure (?:ulcer|sore)|fracture|sepsis|covid(?:-19)?|medication|prescribed|insulin|warfarin|methadone|morphine)\b",
    )
    .unwrap_or_else(|_| unreachable!())
});
static TITLED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Master)\.?\s+[A-Z][A-Za-z'\-]+")
        .unwrap_or_else(|_| unreachable!())
});
static LABELLED_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:mrn|hospital\s+(?:no|number|id)|patient\s+(?:no|number|id)|unit\s+(?:no|number)|case\s+(?:no|number))\b\.?\s*[:#]?\s*[A-Z]{0,3}\d{4,}",
    )
    .unwrap_or_else(|_| unreachable!())
});

/// Capitalised words that are not names (labels and phrases around dates of birth).
const NOT_NAMES: &[&str] = &[
    "Date",
    "Birth",
    "Of",
    "Born",
    "Name",
    "Patient",
    "Dear",
    "Re",
    "Subject",
    "From",
    "To",
    "Sent",
    "The",
    "This",
    "Address",
    "Hospital",
    "Number",
    "Nhs",
    "NHS",
    "Ref",
    "Reference",
    "Please",
    "Thanks",
    "Thank",
    "Regards",
    "Kind",
    "Best",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
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
    "Resident",
    "Client",
    "Service",
    "User",
    "Care",
    "Home",
    "Record",
];

/// Counts patient identifiers in `text`. Kinds with no finding are left out.
pub fn scan_text(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let nhs = count_nhs_numbers(text);
    if nhs > 0 {
        out.push(Finding {
            kind: FindingKind::NhsNumber,
            count: nhs,
        });
    }
    let dob = count_names_with_dob(text);
    if dob > 0 {
        out.push(Finding {
            kind: FindingKind::NameWithDateOfBirth,
            count: dob,
        });
    }
    let clinical = count_clinical_with_identifier(text);
    if clinical > 0 {
        out.push(Finding {
            kind: FindingKind::ClinicalTermWithIdentifier,
            count: clinical,
        });
    }
    out
}

/// Lines where a clinical term and an identifier meet. A line, not a paragraph: a term in
/// one sentence and a name three paragraphs later are rarely about each other.
fn count_clinical_with_identifier(text: &str) -> usize {
    text.lines()
        .filter(|line| {
            CLINICAL.is_match(line)
                && (TITLED_NAME.is_match(line)
                    || LABELLED_ID.is_match(line)
                    || count_nhs_numbers(line) > 0)
        })
        .count()
}

fn count_nhs_numbers(text: &str) -> usize {
    let b = text.as_bytes();
    let mut count = 0;
    // Runs of exactly ten digits.
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i - start == 10 && bounded(b, start, i) && NhsNumber::parse(&text[start..i]).is_ok() {
            count += 1;
        }
    }
    // 3-3-4 groups with the same separator twice.
    for c in NHS_GROUPED.captures_iter(text) {
        let (Some(all), Some(s1), Some(s2)) = (c.get(0), c.get(2), c.get(4)) else {
            continue;
        };
        if s1.as_str() != s2.as_str() || !bounded(b, all.start(), all.end()) {
            continue;
        }
        let digits: String = all.as_str().chars().filter(char::is_ascii_digit).collect();
        if NhsNumber::parse(&digits).is_ok() {
            count += 1;
        }
    }
    count
}

/// Not part of a longer number or word: no letter or digit just before or after, nor a digit
/// group continuing with a separator (`020 7946 0958 123`).
fn bounded(b: &[u8], start: usize, end: usize) -> bool {
    let before_ok = start == 0
        || !(b[start - 1].is_ascii_alphanumeric()
            || (start >= 2
                && matches!(b[start - 1], b' ' | b'-')
                && b[start - 2].is_ascii_digit()));
    let after_ok = end >= b.len()
        || !(b[end].is_ascii_alphanumeric()
            || (end + 1 < b.len() && matches!(b[end], b' ' | b'-') && b[end + 1].is_ascii_digit()));
    before_ok && after_ok
}

fn count_names_with_dob(text: &str) -> usize {
    let mut count = 0;
    for line in text.lines() {
        for date in DATE.find_iter(line) {
            let before = tail(&line[..date.start()], 40);
            if !DOB_LABEL.is_match(before) {
                continue;
            }
            let context_before = tail(&line[..date.start()], 160);
            let context_after = head(&line[date.end()..], 80);
            let named = [context_before, context_after].iter().any(|ctx| {
                NAME.find_iter(ctx).any(|m| {
                    m.as_str()
                        .split_whitespace()
                        .any(|w| !NOT_NAMES.contains(&w.trim_end_matches('.')))
                        && !m
                            .as_str()
                            .split_whitespace()
                            .all(|w| NOT_NAMES.contains(&w))
                })
            });
            if named {
                count += 1;
            }
        }
    }
    count
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn head(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(t: &str) -> Vec<(FindingKind, usize)> {
        scan_text(t)
            .into_iter()
            .map(|f| (f.kind, f.count))
            .collect()
    }

    #[test]
    fn nhs_numbers() {
        // 943 476 5919 and 900 000 0009 are valid (domain notes); 943 476 5918 is not.
        assert_eq!(
            kinds("NHS no 943 476 5919, also 9000000009."),
            vec![(FindingKind::NhsNumber, 2)]
        );
        assert_eq!(kinds("943-476-5919"), vec![(FindingKind::NhsNumber, 1)]);
        assert_eq!(kinds("943 476 5918 and 0000000000"), vec![]);
        assert_eq!(
            kinds("order 19434765919 or 9434765919x or 943 476-5919"),
            vec![]
        );
        assert_eq!(kinds("call 020 943 476 5919"), vec![]);
    }

    #[test]
    fn names_with_dates_of_birth() {
        assert_eq!(
            kinds("Resident: Mrs Edith Jones, DOB: 03/04/1931"),
            vec![(FindingKind::NameWithDateOfBirth, 1)]
        );
        assert_eq!(
            kinds("John Smith (date of birth 4 March 1940)\nD.O.B. 1950-01-02 Mary Brown"),
            vec![(FindingKind::NameWithDateOfBirth, 2)]
        );
        assert_eq!(
            kinds("The meeting is on 03/04/2024 at the Town Hall"),
            vec![]
        );
        assert_eq!(kinds("Date of birth: 03/04/1931"), vec![]);
    }

    #[test]
    fn clinical_terms_with_identifiers() {
        assert_eq!(
            kinds("Mrs Patel was diagnosed with dementia last week"),
            vec![(FindingKind::ClinicalTermWithIdentifier, 1)]
        );
        assert_eq!(
            kinds("MRN: K1234567 - insulin dose changed\nHospital no 445566, sepsis"),
            vec![(FindingKind::ClinicalTermWithIdentifier, 2)]
        );
        // A term without an identifier, or an identifier without a term, is no finding.
        assert_eq!(kinds("Our dementia training is on Tuesday"), vec![]);
        assert_eq!(kinds("Mrs Patel will visit on Tuesday"), vec![]);
        assert_eq!(kinds("Invoice number 445566 for stroke-order pens"), vec![]);
    }
}
