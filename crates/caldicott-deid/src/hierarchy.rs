//! Generalisation hierarchies: ARX's CSV format and built-in ones (integer bands, dates,
//! UK postcodes).
//!
//! A hierarchy gives every original value of a quasi-identifier a chain of labels, one per
//! level: level 0 is the value itself and each further level is coarser, usually ending in `*`.
//! The labels at each level must form a tree: a label at level `l` has exactly one parent at
//! level `l + 1`. The search relies on that (it rolls equivalence classes up from one level to
//! the next), so it is checked, not assumed.
//!
//! ARX CSV format (`adult_hierarchy_age.csv`): one row per original value, `;`-separated,
//! column 0 the value, each further column one level up:
//!
//! ```text
//! 39;35-39;30-39;20-39;*
//! ```

use std::collections::hash_map::Entry;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{DeidError, Inconsistency};
use crate::fx::FxHashMap;

/// Where a quasi-identifier's hierarchy comes from, as written in a policy.
///
/// ```toml
/// hierarchy = { csv = "adult_hierarchy_age.csv" }  # ARX CSV file
/// hierarchy = { intervals = [5, 10, 20] }          # 37 -> 35-39 -> 30-39 -> 20-39 -> *
/// hierarchy = { date = "yyyy-mm-dd" }              # 2024-03-15 -> 2024-03 -> 2024 -> *
/// hierarchy = { date = "dd/mm/yyyy" }              # 15/03/2024 -> 03/2024 -> 2024 -> *
/// hierarchy = "postcode"                           # LS1 4AP -> LS1 4 -> LS1 -> LS -> *
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HierarchySpec {
    /// An ARX CSV hierarchy file. A relative path is resolved against the hierarchies
    /// directory given to [`anonymise_csv`](crate::anonymise_csv), else against the policy
    /// file's directory.
    Csv(PathBuf),
    /// Integer bands of these widths, from 0 (a value `v` falls in `[w*floor(v/w), w*floor(v/w)+w-1]`,
    /// spelled `lo-hi`), then `*`. Each width must be a multiple of the one before, so that the
    /// bands nest.
    Intervals(Vec<i64>),
    /// Dates generalised to month, then year, then `*`.
    Date(DateFormat),
    /// UK postcodes generalised to sector, district, area, then `*`.
    Postcode,
}

/// How dates are spelled in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DateFormat {
    /// ISO 8601 `YYYY-MM-DD`; months spelled `YYYY-MM`.
    #[serde(rename = "yyyy-mm-dd")]
    Iso,
    /// UK `DD/MM/YYYY`; months spelled `MM/YYYY`.
    #[serde(rename = "dd/mm/yyyy")]
    Uk,
}

impl HierarchySpec {
    /// Checks the parts of a built-in hierarchy that do not depend on data.
    pub(crate) fn validate(&self, column: &str) -> Result<(), DeidError> {
        if let HierarchySpec::Intervals(widths) = self {
            if widths.is_empty() {
                return Err(DeidError::InvalidPolicy(format!(
                    "hierarchy for `{column}`: `intervals` needs at least one band width"
                )));
            }
            let mut previous = 1i64;
            for (i, &w) in widths.iter().enumerate() {
                if w <= 0 {
                    return Err(DeidError::InvalidPolicy(format!(
                        "hierarchy for `{column}`: band width {w} (level {}) must be positive",
                        i + 1
                    )));
                }
                if w % previous != 0 || (i > 0 && w == previous) {
                    return Err(DeidError::InvalidPolicy(format!(
                        "hierarchy for `{column}`: band width {w} (level {}) is not a larger multiple of {previous} (level {}): \
                         the bands would not nest, so a band would generalise to two different parents",
                        i + 1,
                        i
                    )));
                }
                previous = w;
            }
        }
        Ok(())
    }

    /// Number of levels (including level 0) of a built-in hierarchy; `None` for CSV.
    pub(crate) fn builtin_levels(&self) -> Option<usize> {
        match self {
            HierarchySpec::Csv(_) => None,
            HierarchySpec::Intervals(w) => Some(w.len() + 2),
            HierarchySpec::Date(_) => Some(4),
            HierarchySpec::Postcode => Some(5),
        }
    }

    /// The chain of labels of a value under a built-in hierarchy, or the rule it breaks.
    pub(crate) fn builtin_chain(&self, value: &str) -> Result<Vec<String>, String> {
        match self {
            HierarchySpec::Csv(_) => Err("a CSV hierarchy has no built-in rule".into()),
            HierarchySpec::Intervals(widths) => interval_chain(value, widths),
            HierarchySpec::Date(format) => date_chain(value, *format),
            HierarchySpec::Postcode => postcode_chain(value),
        }
    }
}

fn interval_chain(value: &str, widths: &[i64]) -> Result<Vec<String>, String> {
    let v: i64 = value.trim().parse().map_err(|_| {
        "the value is not a whole number, which an `intervals` hierarchy needs".to_string()
    })?;
    let mut chain = Vec::with_capacity(widths.len() + 2);
    chain.push(value.to_string());
    for &w in widths {
        let (v, w) = (i128::from(v), i128::from(w));
        let lo = v.div_euclid(w) * w;
        chain.push(format!("{lo}-{}", lo + w - 1));
    }
    chain.push("*".into());
    Ok(chain)
}

fn date_chain(value: &str, format: DateFormat) -> Result<Vec<String>, String> {
    let b = value.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = value.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let parsed = match format {
        DateFormat::Iso if b.len() == 10 && b[4] == b'-' && b[7] == b'-' => {
            digits(0..4).zip(digits(5..7)).zip(digits(8..10))
        }
        DateFormat::Uk if b.len() == 10 && b[2] == b'/' && b[5] == b'/' => {
            digits(6..10).zip(digits(3..5)).zip(digits(0..2))
        }
        _ => None,
    };
    let expected = match format {
        DateFormat::Iso => "YYYY-MM-DD",
        DateFormat::Uk => "DD/MM/YYYY",
    };
    let Some(((year, month), day)) = parsed else {
        return Err(format!("the value is not a date spelled {expected}"));
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if day == 0 || day > days {
        return Err(format!(
            "the value is spelled {expected} but is not a calendar date"
        ));
    }
    let month_label = match format {
        DateFormat::Iso => format!("{year:04}-{month:02}"),
        DateFormat::Uk => format!("{month:02}/{year:04}"),
    };
    Ok(vec![
        value.to_string(),
        month_label,
        format!("{year:04}"),
        "*".into(),
    ])
}

/// `LS1 4AP` → `LS1 4` (sector) → `LS1` (district) → `LS` (area) → `*`.
///
/// Accepted: any case, with or without the space, surrounding spaces ignored. The outward code
/// is 1–2 letters, a digit, then an optional letter or digit; the inward code a digit and two
/// letters (the Royal Mail format; `GIR 0AA` too). Higher levels are spelled upper-case with one
/// space; level 0 keeps the input's spelling.
fn postcode_chain(value: &str) -> Result<Vec<String>, String> {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let rule = || {
        "the value is not a UK postcode (outward code, then a digit and two letters, e.g. `SW1A 1AA`)"
            .to_string()
    };
    if !compact.is_ascii() || !(5..=7).contains(&compact.len()) {
        return Err(rule());
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let ib = inward.as_bytes();
    if !(ib[0].is_ascii_digit() && ib[1].is_ascii_uppercase() && ib[2].is_ascii_uppercase()) {
        return Err(rule());
    }
    let area_len = outward
        .bytes()
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    let ob = outward.as_bytes();
    let valid_outward = if outward == "GIR" {
        true
    } else {
        (1..=2).contains(&area_len)
            && ob.len() > area_len
            && ob[area_len].is_ascii_digit()
            && ob.len() <= area_len + 2
            && ob[area_len + 1..].iter().all(|c| c.is_ascii_alphanumeric())
    };
    if !valid_outward {
        return Err(rule());
    }
    let area = if outward == "GIR" {
        "GIR"
    } else {
        &outward[..area_len]
    };
    Ok(vec![
        value.to_string(),
        format!("{outward} {}", &inward[..1]),
        outward.to_string(),
        area.to_string(),
        "*".into(),
    ])
}

/// A materialised hierarchy: one row per original value, each row the value's label at every
/// level. Validated on construction: at least one row, every row the same number of levels, no
/// empty label, no value twice, and the levels form a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    rows: Vec<Vec<String>>,
    index: FxHashMap<String, usize>,
}

impl Hierarchy {
    /// A hierarchy from rows of labels (level 0 first). `column` names the quasi-identifier
    /// in errors.
    pub fn from_rows(column: &str, rows: Vec<Vec<String>>) -> Result<Self, DeidError> {
        let malformed = |message: String| DeidError::HierarchyMalformed {
            column: column.to_string(),
            message,
        };
        let Some(first) = rows.first() else {
            return Err(malformed("the hierarchy has no rows".into()));
        };
        let width = first.len();
        if width == 0 {
            return Err(malformed("row 1 has no values".into()));
        }
        let mut index: FxHashMap<String, usize> = FxHashMap::default();
        for (r, row) in rows.iter().enumerate() {
            if row.len() != width {
                return Err(DeidError::HierarchyRagged {
                    column: column.to_string(),
                    row: r + 1,
                    expected: width,
                    found: row.len(),
                });
            }
            if let Some(level) = row.iter().position(|label| label.is_empty()) {
                return Err(malformed(format!(
                    "row {}, level {level} is empty: every level needs a label",
                    r + 1
                )));
            }
            match index.entry(row[0].clone()) {
                Entry::Occupied(e) => {
                    return Err(DeidError::HierarchyDuplicate {
                        column: column.to_string(),
                        value: row[0].clone(),
                        first: e.get() + 1,
                        second: r + 1,
                    });
                }
                Entry::Vacant(e) => {
                    e.insert(r);
                }
            }
        }
        // Tree check: every label at level l has one parent at level l + 1.
        for level in 0..width - 1 {
            let mut parent: FxHashMap<&str, (&str, usize)> = FxHashMap::default();
            for (r, row) in rows.iter().enumerate() {
                let (label, up) = (row[level].as_str(), row[level + 1].as_str());
                match parent.entry(label) {
                    Entry::Occupied(e) => {
                        let (seen, seen_row) = *e.get();
                        if seen != up {
                            return Err(DeidError::HierarchyInconsistent(Box::new(
                                Inconsistency {
                                    column: column.to_string(),
                                    value: label.to_string(),
                                    level,
                                    parent_a: seen.to_string(),
                                    row_a: seen_row + 1,
                                    parent_b: up.to_string(),
                                    row_b: r + 1,
                                },
                            )));
                        }
                    }
                    Entry::Vacant(e) => {
                        e.insert((up, r));
                    }
                }
            }
        }
        Ok(Self { rows, index })
    }

    /// Parses an ARX CSV hierarchy (no header; `delimiter`-separated, usually `;`).
    pub fn from_arx_csv(column: &str, text: &str, delimiter: u8) -> Result<Self, DeidError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| DeidError::HierarchyMalformed {
                column: column.to_string(),
                message: format!("not valid CSV: {e}"),
            })?;
            // A blank line is not a row (the csv reader already skips truly empty lines).
            if record.len() == 1 && record[0].is_empty() {
                continue;
            }
            rows.push(record.iter().map(str::to_string).collect());
        }
        Self::from_rows(column, rows)
    }

    /// Number of levels, level 0 (the original values) included.
    pub fn levels(&self) -> usize {
        self.rows[0].len()
    }

    /// Number of original values (rows).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Always false: a hierarchy has at least one row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The labels of an original value, level 0 first.
    pub fn chain(&self, value: &str) -> Option<&[String]> {
        self.index.get(value).map(|&r| self.rows[r].as_slice())
    }

    /// All rows.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split(';').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn postcode_levels() {
        let chain = postcode_chain("LS1 4AP").unwrap();
        assert_eq!(chain, ["LS1 4AP", "LS1 4", "LS1", "LS", "*"]);
        assert_eq!(
            postcode_chain("sw1a2aa").unwrap(),
            ["sw1a2aa", "SW1A 2", "SW1A", "SW", "*"]
        );
        assert_eq!(
            postcode_chain("M1 1AE").unwrap(),
            ["M1 1AE", "M1 1", "M1", "M", "*"]
        );
        assert_eq!(
            postcode_chain("B33 8TH").unwrap(),
            ["B33 8TH", "B33 8", "B33", "B", "*"]
        );
        assert_eq!(postcode_chain("GIR 0AA").unwrap()[3], "GIR");
        for bad in [
            "",
            "LS1",
            "LS1 4A",
            "1S1 4AP",
            "LS1 AAP",
            "LSS1 4AP",
            "LS1 4AP X",
            "LS1\u{e9}4AP",
        ] {
            let err = postcode_chain(bad).unwrap_err();
            assert!(err.contains("not a UK postcode"), "{bad}: {err}");
            assert!(!err.contains(bad) || bad.is_empty(), "value echoed: {err}");
        }
    }

    #[test]
    fn date_levels() {
        assert_eq!(
            date_chain("2024-02-29", DateFormat::Iso).unwrap(),
            ["2024-02-29", "2024-02", "2024", "*"]
        );
        assert_eq!(
            date_chain("15/03/1987", DateFormat::Uk).unwrap(),
            ["15/03/1987", "03/1987", "1987", "*"]
        );
        assert!(date_chain("2023-02-29", DateFormat::Iso).is_err());
        assert!(date_chain("2023-13-01", DateFormat::Iso).is_err());
        assert!(date_chain("2023-1-01", DateFormat::Iso).is_err());
        assert!(date_chain("15/03/1987", DateFormat::Iso).is_err());
        assert!(date_chain("+123-01-01", DateFormat::Iso).is_err());
    }

    #[test]
    fn interval_levels() {
        let w = [5, 10, 20];
        assert_eq!(
            interval_chain("37", &w).unwrap(),
            ["37", "35-39", "30-39", "20-39", "*"]
        );
        assert_eq!(interval_chain("0", &w).unwrap()[1], "0-4");
        assert_eq!(interval_chain("-1", &w).unwrap()[1], "-5--1");
        assert!(interval_chain("3.5", &w).is_err());
        let spec = HierarchySpec::Intervals(vec![10, 15]);
        let err = spec.validate("age").unwrap_err().to_string();
        assert!(
            err.contains("`age`") && err.contains("15") && err.contains("nest"),
            "{err}"
        );
        assert!(
            HierarchySpec::Intervals(vec![5, 15])
                .validate("age")
                .is_ok()
        );
        assert!(
            HierarchySpec::Intervals(vec![5, 5])
                .validate("age")
                .is_err()
        );
        assert!(HierarchySpec::Intervals(vec![0]).validate("age").is_err());
        assert!(
            HierarchySpec::Intervals(vec![5, 10, 20])
                .validate("age")
                .is_ok()
        );
    }

    #[test]
    fn arx_csv_parses() {
        let h = Hierarchy::from_arx_csv("sex", "Male;*\nFemale;*\n", b';').unwrap();
        assert_eq!(h.levels(), 2);
        assert_eq!(h.len(), 2);
        assert_eq!(h.chain("Female").unwrap(), ["Female", "*"]);
        assert!(h.chain("Other").is_none());
    }

    #[test]
    fn ragged_hierarchy_is_named() {
        let err = Hierarchy::from_rows("age", rows("1;0-4;*\n2;0-4\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hierarchy for `age`: row 2 has 2 levels but row 1 has 3: every value must have the same number of generalisation levels"
        );
    }

    #[test]
    fn inconsistent_hierarchy_is_named() {
        let err = Hierarchy::from_rows(
            "education",
            rows("Masters;Graduate;Higher;*\nBachelors;Undergraduate;Higher;*\nDoctorate;Graduate;Research;*\n"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hierarchy for `education`: `Graduate` at level 1 generalises to `Higher` (row 1) and to `Research` (row 3) at level 2: each value must have exactly one parent, so the levels form a tree"
        );
    }

    #[test]
    fn duplicate_and_empty_are_named() {
        let err = Hierarchy::from_rows("sex", rows("Male;*\nMale;*\n")).unwrap_err();
        assert!(err.to_string().contains("rows 1 and 2"), "{err}");
        let err = Hierarchy::from_rows("sex", rows("Male;*\nFemale;\n")).unwrap_err();
        assert!(err.to_string().contains("row 2, level 1 is empty"), "{err}");
        let err = Hierarchy::from_rows("sex", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no rows"), "{err}");
    }
}
