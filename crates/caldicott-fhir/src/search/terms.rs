//! The protected index: which `(name, value)` terms a resource is stored under, and which
//! terms a search parameter looks up.
//!
//! The vault keeps each term as a keyed hash, one database row per term, and answers a
//! lookup with the ids holding ANY of the terms given for one parameter (the API intersects
//! across parameters). Terms therefore only narrow the candidates: [`super::matching`] has
//! the last word. The invariant, property-tested below: **if a resource matches a parameter,
//! then [`lookup_terms`] is `None` (cannot narrow: the API scans) or it shares a term with
//! [`index_terms`]**. The name of every term is the parameter's code; the value is
//! namespaced by a short prefix so that kinds never collide.
//!
//! ## The scheme
//!
//! | kind | stored per value | looked up |
//! |---|---|---|
//! | token | `c:{code}` (one row; the system is left to matching) | `c:{code}` for `code`, `\|code`, `system\|code`; `system\|`, `:not`, `:text` cannot narrow |
//! | string | the [`normalise`]d value `v` of n chars: `p:{v[..3]}`, and `f:{v}` (n = 1 or 4–64) or `x:{v[..64]}` (n > 64); at most 2 rows | default: `p:{q[..3]}` (a query of 1 or 2 chars cannot narrow); `:exact`: the same term its value would be stored under; `:contains` cannot narrow |
//! | reference | `r:{Type}/{id}` when the reference names them ([`reference_key`]); `u:{reference}` when its text does not (urn:uuid, canonicals) | `r:{Type}/{id}` (a bare id: one per target type), plus `u:{text}`; a bare id on a parameter without targets cannot narrow |
//! | uri | `u:{uri}` | `u:{uri}`; `:above`: every parent path; `:below` cannot narrow |
//! | quantity | `q:\|{code}`, `q:\|{unit}` (those present, deduplicated; the system is left to matching) | `q:\|{code}`; a quantity without unit cannot narrow |
//! | number | nothing | cannot narrow |
//! | date | see below | see below |
//!
//! **Dates.** The buckets cover UTC 1900-01-01 to 2100-01-01 (the "window"). A resource's
//! range is *wide* when it is open, reaches outside the window or touches more than 12
//! calendar years: it is stored as the single term `wide`, which every date lookup
//! includes. Otherwise it is *short* when it touches at most 2 calendar months — stored as
//! `y:{YYYY}` for each year and `m:{YYYY-MM}` for each month it touches (2 rows for a date,
//! a dateTime or an instant) — or *long*, stored as `yl:{YYYY}` for each year it touches
//! (1 row for a year-precision date). A lookup first turns the prefix into the interval
//! every matching range must overlap (`eq` and `ap`: the search range; `gt` and `sa`: from
//! its end on; `ge`: from its start on; `lt` and `eb`: before its start; `le`: before its
//! end; `ne` cannot narrow), clips it to the window, and asks for `wide`, `yl:` for each
//! year of the interval, and `m:` for each month if it touches at most 24 months, else
//! `y:` for each year. So `birthdate=1980-05-12` asks for 3 terms, and an open interval at
//! most 401 (`_lastUpdated=gt2024-01-01` asks for 153).
//!
//! **Limits.** A lookup of more than [`MAX_LOOKUP_TERMS`] terms (an OR list of several open
//! dates, `:above` on a very deep URI) cannot narrow. `:missing` cannot narrow. `_id` is not
//! indexed (it is the record's key: the API reads the ids directly) and its lookup is
//! `None`. `:identifier` on a reference matches nothing, so its lookup is `Some(vec![])`.
//!
//! Rows for typical resources (counted in `typical_row_counts` below): a Patient with an
//! NHS number, one name (family and two given names, which `name`, `family`, `given` and
//! `phonetic` each index), gender, birth date, one address (line, city, postcode, country,
//! under `address` and its `address-*` parameters), a phone number, a GP and `_lastUpdated`
//! is 39 rows, 30 of them string terms; an Observation (LOINC code, category, status,
//! subject and patient, encounter, effective date, a UCUM quantity with a unit text,
//! `_lastUpdated`) is 13.

use std::collections::BTreeSet;

use super::matching::{normalise, proper, reference_key};
use super::query::{
    DAY_US, Modifier, ParamQuery, Prefix, QueryValue, RefQuery, TokenSystem, civil_from_days,
    days_from_civil, reference_type_id,
};
use super::{DateRange, Extracted, SearchValue};

/// The most terms one lookup may ask for; beyond it the parameter cannot narrow.
pub const MAX_LOOKUP_TERMS: usize = 512;
/// Strings longer than this many characters (normalised) are stored truncated.
pub const FULL_CHARS: usize = 64;
/// The first year of the date buckets; ranges reaching before it are `wide`.
pub const WINDOW_START_YEAR: i64 = 1900;
/// The year after the last of the date buckets; ranges reaching into it are `wide`.
pub const WINDOW_END_YEAR: i64 = 2100;
/// Ranges touching more calendar years than this are `wide`.
pub const MAX_YEARS: i64 = 12;
/// Ranges touching at most this many calendar months are stored by month.
pub const SHORT_MONTHS: i64 = 2;
/// Lookups touching at most this many months ask for months, beyond it for years.
pub const LOOKUP_MONTHS: i64 = 24;

/// The index terms of one resource, from its extracted values: `(parameter code, term)`,
/// sorted and without duplicates.
pub fn index_terms(extracted: &[Extracted]) -> Vec<(String, String)> {
    let mut out = BTreeSet::new();
    for e in extracted {
        if e.code == "_id" {
            continue;
        }
        for v in &e.values {
            for t in value_terms(v) {
                out.insert((e.code.to_owned(), t));
            }
        }
    }
    out.into_iter().collect()
}

/// The terms to look up for one parameter (a resource matching it holds at least one), or
/// `None` when the index cannot narrow it and every resource of the type is a candidate.
pub fn lookup_terms(p: &ParamQuery) -> Option<Vec<(String, String)>> {
    if p.def.code == "_id" {
        return None;
    }
    match &p.modifier {
        Some(Modifier::Identifier) => return Some(Vec::new()),
        Some(
            Modifier::Missing(_)
            | Modifier::Not
            | Modifier::Text
            | Modifier::Contains
            | Modifier::Below,
        ) => return None,
        _ => {}
    }
    let mut all = BTreeSet::new();
    for v in &p.values {
        all.extend(query_terms(p, v)?);
        if all.len() > MAX_LOOKUP_TERMS {
            return None;
        }
    }
    Some(
        all.into_iter()
            .map(|t| (p.def.code.to_owned(), t))
            .collect(),
    )
}

fn value_terms(v: &SearchValue) -> Vec<String> {
    match v {
        SearchValue::Token { code, .. } => vec![format!("c:{code}")],
        SearchValue::String(s) => string_terms(&normalise(s)),
        SearchValue::Date(r) => date_terms(proper(*r)),
        SearchValue::Reference(rv) => {
            let mut t = Vec::new();
            if let Some((ty, id)) = reference_key(rv) {
                t.push(format!("r:{ty}/{id}"));
            }
            if !rv.reference.is_empty() && reference_type_id(&rv.reference).is_none() {
                t.push(format!("u:{}", rv.reference));
            }
            t
        }
        SearchValue::Uri(u) => vec![format!("u:{u}")],
        SearchValue::Quantity {
            system, code, unit, ..
        } => {
            // The system is left to matching: `q:|{code}` finds `value|system|code` too.
            let _ = system;
            let mut t: Vec<String> = [code, unit]
                .into_iter()
                .flatten()
                .map(|c| format!("q:|{c}"))
                .collect();
            t.dedup();
            t
        }
        SearchValue::Number(_) => Vec::new(),
    }
}

fn query_terms(p: &ParamQuery, v: &QueryValue) -> Option<Vec<String>> {
    match v {
        QueryValue::Token { system, code } => match (system, code) {
            (_, Some(c)) => Some(vec![format!("c:{c}")]),
            (TokenSystem::Any | TokenSystem::None | TokenSystem::Is(_), None) => None,
        },
        QueryValue::String(q) => {
            let chars: Vec<char> = normalise(q).chars().collect();
            if p.modifier == Some(Modifier::Exact) {
                exact_string_term(&chars).map(|t| vec![t])
            } else if chars.len() < 3 {
                // Only 3-character prefixes are stored: shorter queries scan.
                None
            } else {
                Some(vec![prefix_term(&chars, 3)])
            }
        }
        QueryValue::Date { prefix, range } => date_lookup(*prefix, *range),
        QueryValue::Reference(RefQuery::Id { rtype, id, text }) => {
            let mut t = vec![format!("u:{text}")];
            match rtype {
                Some(ty) => t.push(format!("r:{ty}/{id}")),
                None if p.def.targets.is_empty() => return None,
                None => t.extend(p.def.targets.iter().map(|ty| format!("r:{ty}/{id}"))),
            }
            Some(t)
        }
        QueryValue::Reference(RefQuery::Url(u)) => {
            let mut t = vec![format!("u:{u}")];
            if let Some((ty, id)) = reference_type_id(u) {
                t.push(format!("r:{ty}/{id}"));
            }
            Some(t)
        }
        QueryValue::Uri(u) => {
            let mut t = vec![format!("u:{u}")];
            if p.modifier == Some(Modifier::Above) {
                for (i, _) in u.match_indices('/') {
                    t.push(format!("u:{}", &u[..i]));
                    t.push(format!("u:{}", &u[..=i]));
                }
            }
            Some(t)
        }
        QueryValue::Quantity { code, .. } => code.as_ref().map(|c| vec![format!("q:|{c}")]),
        QueryValue::Number { .. } => None,
    }
}

fn prefix_term(chars: &[char], n: usize) -> String {
    let mut t = String::from("p:");
    t.extend(&chars[..n.min(chars.len())]);
    t
}

/// The one term of a normalised value that an exact search for it finds.
fn exact_string_term(chars: &[char]) -> Option<String> {
    match chars.len() {
        0 => None,
        2 | 3 => Some(prefix_term(chars, 3)),
        n if n <= FULL_CHARS => Some(format!("f:{}", chars.iter().collect::<String>())),
        _ => Some(format!(
            "x:{}",
            chars[..FULL_CHARS].iter().collect::<String>()
        )),
    }
}

fn string_terms(norm: &str) -> Vec<String> {
    let chars: Vec<char> = norm.chars().collect();
    let mut t = Vec::new();
    if chars.len() >= 4 {
        t.push(prefix_term(&chars, 3));
    }
    // 1 char: `f:`; 2 or 3: the prefix term of the whole value; more: `f:` or `x:`.
    t.extend(exact_string_term(&chars));
    t
}

fn window() -> (i64, i64) {
    (
        days_from_civil(WINDOW_START_YEAR, 1, 1) * DAY_US,
        days_from_civil(WINDOW_END_YEAR, 1, 1) * DAY_US,
    )
}

/// (year, month index = year × 12 + month − 1) of an instant.
fn year_month(us: i64) -> (i64, i64) {
    let (y, m) = civil_from_days(us.div_euclid(DAY_US));
    (y, y * 12 + i64::from(m) - 1)
}

fn month_name(index: i64) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

fn date_terms(r: DateRange) -> Vec<String> {
    let (ws, we) = window();
    if r.start < ws || r.end > we {
        return vec!["wide".to_owned()];
    }
    let (y0, m0) = year_month(r.start);
    let (y1, m1) = year_month(r.end - 1);
    if y1 - y0 + 1 > MAX_YEARS {
        return vec!["wide".to_owned()];
    }
    if m1 - m0 < SHORT_MONTHS {
        (y0..=y1)
            .map(|y| format!("y:{y:04}"))
            .chain((m0..=m1).map(|m| format!("m:{}", month_name(m))))
            .collect()
    } else {
        (y0..=y1).map(|y| format!("yl:{y:04}")).collect()
    }
}

fn date_lookup(prefix: Prefix, search: DateRange) -> Option<Vec<String>> {
    let s = proper(search);
    let (from, to) = match prefix {
        Prefix::Eq | Prefix::Ap => (s.start, s.end),
        Prefix::Ne => return None,
        Prefix::Gt | Prefix::Sa => (s.end, DateRange::OPEN_END),
        Prefix::Ge => (s.start, DateRange::OPEN_END),
        Prefix::Lt | Prefix::Eb => (DateRange::OPEN_START, s.start),
        Prefix::Le => (DateRange::OPEN_START, s.end),
    };
    let (ws, we) = window();
    let (from, to) = (from.max(ws), to.min(we));
    let mut t = vec!["wide".to_owned()];
    if from < to {
        let (y0, m0) = year_month(from);
        let (y1, m1) = year_month(to - 1);
        t.extend((y0..=y1).map(|y| format!("yl:{y:04}")));
        if m1 - m0 < LOOKUP_MONTHS {
            t.extend((m0..=m1).map(|m| format!("m:{}", month_name(m))));
        } else {
            t.extend((y0..=y1).map(|y| format!("y:{y:04}")));
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::SearchParamType;
    use crate::search::calendar::days_in_month;
    use crate::search::matching::matches;
    use crate::search::query::{parse_at, parse_date};
    use crate::search::{Decimal, RefValue};
    use proptest::prelude::*;
    use proptest::sample::select;

    fn q(rt: &str, key: &str, value: &str, now: i64) -> Option<ParamQuery> {
        parse_at(rt, &[(key.to_owned(), value.to_owned())], now)
            .ok()?
            .params
            .pop()
    }

    fn extracted(p: &ParamQuery, values: Vec<SearchValue>) -> Vec<Extracted> {
        vec![Extracted {
            code: p.def.code,
            kind: p.def.kind,
            values,
        }]
    }

    /// The invariant: a match implies a shared term (or a lookup that cannot narrow).
    fn check(p: &ParamQuery, values: Vec<SearchValue>) -> Result<bool, TestCaseError> {
        let m = matches(p, &values);
        if m && let Some(look) = lookup_terms(p) {
            let idx = index_terms(&extracted(p, values.clone()));
            prop_assert!(
                look.iter().any(|t| idx.contains(t)),
                "matching resource missed by the index\nquery {p:?}\nvalues {values:?}\nindex {idx:?}\nlookup {look:?}"
            );
        }
        if let Some(look) = lookup_terms(p) {
            prop_assert!(look.len() <= MAX_LOOKUP_TERMS);
        }
        Ok(m)
    }

    // ---- generators ------------------------------------------------------------------

    const EDGE_YEARS: &[i64] = &[
        1, 1899, 1900, 1901, 1969, 1970, 1999, 2000, 2011, 2012, 2019, 2020, 2024, 2087, 2088,
        2089, 2098, 2099, 2100, 2101, 9999,
    ];

    fn year() -> impl Strategy<Value = i64> {
        prop_oneof![4 => select(EDGE_YEARS), 1 => 1i64..=9999]
    }

    fn date_text() -> impl Strategy<Value = String> {
        prop_oneof![3 => calendar_text(), 2 => edge_text()]
    }

    /// An instant at or next to a boundary, written at a random precision (so that the
    /// implied range starts or ends on the boundary, or just off it).
    fn edge_text() -> impl Strategy<Value = String> {
        (edge_instant(), 0u8..6).prop_filter_map("out of range", |(us, precision)| {
            format_instant(us, precision)
        })
    }

    /// An instant written as a search date of the given precision (0 = year ... 5 =
    /// microseconds), truncating: the implied range contains the instant.
    fn format_instant(us: i64, precision: u8) -> Option<String> {
        let days = us.div_euclid(DAY_US);
        let (y, m) = civil_from_days(days);
        if !(1..=9999).contains(&y) {
            return None;
        }
        let d = days - days_from_civil(y, m, 1) + 1;
        let rem = us.rem_euclid(DAY_US);
        let (h, mi, sec, f) = (
            rem / 3_600_000_000,
            rem / 60_000_000 % 60,
            rem / 1_000_000 % 60,
            rem % 1_000_000,
        );
        let day = format!("{y:04}-{m:02}-{d:02}");
        Some(match precision {
            0 => format!("{y:04}"),
            1 => format!("{y:04}-{m:02}"),
            2 => day,
            3 => format!("{day}T{h:02}:{mi:02}Z"),
            4 => format!("{day}T{h:02}:{mi:02}:{sec:02}Z"),
            _ => format!("{day}T{h:02}:{mi:02}:{sec:02}.{f:06}Z"),
        })
    }

    /// Every prefix on search dates at and around year, month and window boundaries, against
    /// resource ranges whose ends sit on or next to the search range's bounds: the boundary
    /// cases a random search finds too rarely.
    #[test]
    fn date_boundaries_exhaustive() {
        use std::collections::HashSet;
        let mut texts = BTreeSet::new();
        for y in [1899, 1900, 1901, 2019, 2020, 2099, 2100, 2101] {
            for (m, d) in [(1, 1), (12, 31), (3, 1)] {
                for off in [-DAY_US, -1, 0, 1, DAY_US] {
                    let us = days_from_civil(y, m, d) * DAY_US + off;
                    for precision in 0..6 {
                        texts.extend(format_instant(us, precision));
                    }
                }
            }
        }
        let deltas = [0, 1, -1, DAY_US, -DAY_US, 40 * DAY_US, -40 * DAY_US];
        let ends: Vec<(bool, i64)> = [false, true]
            .into_iter()
            .flat_map(|e| deltas.into_iter().map(move |d| (e, d)))
            .collect();
        let nows = [1_700_000_000_000_000, days_from_civil(2100, 1, 1) * DAY_US];
        let mut checked = 0;
        for text in &texts {
            let anchor = parse_date(text).unwrap();
            for prefix in ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"] {
                for now in nows {
                    let p = q("Observation", "date", &format!("{prefix}{text}"), now).unwrap();
                    let Some(look) = lookup_terms(&p) else {
                        continue;
                    };
                    let look: HashSet<_> = look.into_iter().collect();
                    for &(ae, ad) in &ends {
                        for &(be, bd) in &ends {
                            let at =
                                |e: bool, d: i64| if e { anchor.end } else { anchor.start } + d;
                            let r = DateRange {
                                start: at(ae, ad),
                                end: at(be, bd),
                            };
                            for r in [
                                r,
                                DateRange {
                                    end: DateRange::OPEN_END,
                                    ..r
                                },
                                DateRange {
                                    start: DateRange::OPEN_START,
                                    ..r
                                },
                            ] {
                                let v = vec![SearchValue::Date(r)];
                                if matches(&p, &v) {
                                    checked += 1;
                                    let idx = index_terms(&extracted(&p, v));
                                    assert!(
                                        idx.iter().any(|t| look.contains(t)),
                                        "missed: {prefix}{text} (now {now}) vs {r:?}: index {idx:?}"
                                    );
                                }
                            }
                        }
                    }
                    if prefix != "ap" {
                        break;
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    fn calendar_text() -> impl Strategy<Value = String> {
        (
            year(),
            prop_oneof![select(&[1u32, 2, 11, 12][..]), 1u32..=12],
            prop_oneof![3 => select(&[1u32, 2, 28, 29, 30, 31][..]), 1 => 1u32..=31],
            0u8..6,
            prop_oneof![select(&[0u32, 23][..]), 0u32..24],
            prop_oneof![select(&[0u32, 59][..]), 0u32..60],
            prop_oneof![select(&[0u32, 59][..]), 0u32..60],
            prop_oneof![
                select(&["0", "999999", "5", "1234567"][..]).prop_map(str::to_owned),
                "[0-9]{1,6}"
            ],
            select(&["", "Z", "+05:30", "-14:00", "+14:00", "-00:30"][..]),
        )
            .prop_map(|(y, m, d, precision, h, mi, s, frac, zone)| {
                let d = d.min(days_in_month(y, m));
                let day = format!("{y:04}-{m:02}-{d:02}");
                match precision {
                    0 => format!("{y:04}"),
                    1 => format!("{y:04}-{m:02}"),
                    2 => day,
                    3 => format!("{day}T{h:02}:{mi:02}{zone}"),
                    4 => format!("{day}T{h:02}:{mi:02}:{s:02}{zone}"),
                    _ => format!("{day}T{h:02}:{mi:02}:{s:02}.{frac}{zone}"),
                }
            })
    }

    /// Instants at and next to year, month and window boundaries.
    fn edge_instant() -> impl Strategy<Value = i64> {
        (
            select(EDGE_YEARS),
            select(&[1u32, 2, 3, 12][..]),
            select(&[1u32, 2][..]),
            select(&[-2 * DAY_US, -DAY_US, -1, 0, 1, DAY_US - 1][..]),
        )
            .prop_map(|(y, m, d, off)| days_from_civil(y, m, d) * DAY_US + off)
    }

    fn resource_range() -> impl Strategy<Value = DateRange> {
        let start = prop_oneof![
            date_text().prop_map(|t| parse_date(&t).map_or(0, |r| r.start)),
            edge_instant(),
            Just(DateRange::OPEN_START),
        ];
        let end = prop_oneof![
            date_text().prop_map(|t| parse_date(&t).map_or(0, |r| r.end)),
            edge_instant(),
            Just(DateRange::OPEN_END),
        ];
        prop_oneof![
            3 => date_text().prop_map(|t| parse_date(&t).unwrap()),
            2 => (start, end).prop_map(|(start, end)| DateRange { start, end }),
            2 => (edge_instant(), select(&[0, 1, DAY_US, 40 * DAY_US, 400 * DAY_US, 5000 * DAY_US][..]))
                .prop_map(|(s, len)| DateRange { start: s, end: s.saturating_add(len) }),
            1 => any::<(i64, i64)>().prop_map(|(start, end)| DateRange { start, end }),
        ]
    }

    fn prefix() -> impl Strategy<Value = &'static str> {
        select(&["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"][..])
    }

    fn now() -> impl Strategy<Value = i64> {
        prop_oneof![Just(1_700_000_000_000_000i64), edge_instant(), any::<i64>(),]
    }

    /// A resource range: independent of the query, or with each end placed relative to a
    /// bound of the query's first value (its start or end, give or take a microsecond, a
    /// day or a year).
    #[derive(Debug, Clone)]
    enum RangeSpec {
        Fixed(DateRange),
        Relative((bool, i64), (bool, i64)),
    }

    fn range_spec() -> impl Strategy<Value = RangeSpec> {
        let delta = select(&[0, 1, -1, DAY_US, -DAY_US, 366 * DAY_US, -366 * DAY_US][..]);
        let end = (any::<bool>(), delta);
        prop_oneof![
            1 => resource_range().prop_map(RangeSpec::Fixed),
            1 => (end.clone(), end).prop_map(|(a, b)| RangeSpec::Relative(a, b)),
        ]
    }

    fn date_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        (
            prop::collection::vec((prefix(), date_text()), 1..3),
            now(),
            prop::collection::vec(range_spec(), 0..3),
        )
            .prop_filter_map("unparsable", |(vals, now, specs)| {
                let value = vals
                    .iter()
                    .map(|(p, d)| format!("{p}{d}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let p = q("Observation", "date", &value, now)?;
                let anchor = parse_date(&vals[0].1)?;
                let at = |(end, delta): (bool, i64)| {
                    if end { anchor.end } else { anchor.start }.saturating_add(delta)
                };
                let values = specs
                    .into_iter()
                    .map(|s| {
                        SearchValue::Date(match s {
                            RangeSpec::Fixed(r) => r,
                            RangeSpec::Relative(a, b) => DateRange {
                                start: at(a),
                                end: at(b),
                            },
                        })
                    })
                    .collect();
                Some((p, values))
            })
    }

    const PIECES: &[&str] = &[
        "a", "b", "e", "é", "E", "É", "e\u{301}", " ", "  ", "ß", "İ", "ﬁ", "z", "ö", "-", "'",
        "Ω", "\t", "x", "Ev", "ELYN",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::collection::vec(select(PIECES), 0..7).prop_map(|v| v.concat()),
            1 => prop::collection::vec(select(PIECES), 30..50).prop_map(|v| v.concat()),
        ]
    }

    /// A query string that is often a changed prefix of one of the values.
    fn derived(values: &[String], pick: usize, cut: usize, change: u8, other: &str) -> String {
        if values.is_empty() || change == 0 {
            return other.to_owned();
        }
        let v = &values[pick % values.len()];
        let chars: Vec<char> = v.chars().collect();
        let s: String = chars[..cut % (chars.len() + 1)].iter().collect();
        match change {
            1 => s,
            2 => s.to_uppercase(),
            3 => unicode_normalization::UnicodeNormalization::nfd(s.as_str()).collect(),
            _ => v.clone(),
        }
    }

    fn string_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        (
            prop::collection::vec(text(), 0..4),
            select(&["", ":exact", ":contains"][..]),
            (any::<usize>(), any::<usize>(), 0u8..5, text()),
        )
            .prop_filter_map("empty", |(values, modifier, (pick, cut, change, other))| {
                let qs = derived(&values, pick, cut, change, &other);
                let p = q("Patient", &format!("name{modifier}"), &qs, 0)?;
                Some((p, values.into_iter().map(SearchValue::String).collect()))
            })
    }

    fn token_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        let system = select(&[None, Some("s1"), Some("http://loinc.org")][..]);
        let code = select(&["a", "A", "8867-4", "x y", "é", "a|b", "c,d"][..]);
        let text = select(
            &[
                None,
                Some("Heart rate"),
                Some("heart"),
                Some("Blood pressure"),
            ][..],
        );
        let value = (system.clone(), code.clone(), text).prop_map(|(s, c, t)| SearchValue::Token {
            system: s.map(str::to_owned),
            code: c.to_owned(),
            text: t.map(str::to_owned),
        });
        let form = (
            0u8..5,
            system,
            code,
            prop_oneof![4 => Just(""), 1 => Just(":not"), 1 => Just(":text")],
            select(&["heart", "blood", "rate", "h"][..]),
        );
        (
            prop::collection::vec(value, 0..4),
            prop::collection::vec(form, 1..3),
        )
            .prop_filter_map("mixed modifiers", |(values, forms)| {
                let modifier = forms[0].3;
                let parts: Vec<String> = forms
                    .iter()
                    .map(|(f, s, c, _, t)| {
                        let c = c.replace('|', "\\|").replace(',', "\\,");
                        let s = s.unwrap_or("s1");
                        match (modifier, f) {
                            (":text", _) => (*t).to_owned(),
                            (_, 0) => c,
                            (_, 1) => format!("|{c}"),
                            (_, 2) => format!("{s}|"),
                            _ => format!("{s}|{c}"),
                        }
                    })
                    .collect();
                let p = q(
                    "Observation",
                    &format!("code{modifier}"),
                    &parts.join(","),
                    0,
                )?;
                Some((p, values))
            })
    }

    const REFS: &[&str] = &[
        "Patient/1",
        "Patient/2",
        "Group/1",
        "Organization/1",
        "http://x.org/fhir/Patient/1",
        "https://y/Patient/1/_history/3",
        "urn:uuid:1",
        "1",
        "#1",
        "",
        "Patient/1/_history/2",
        "http://x.org/PlanDefinition/p|2",
        "Nope/1",
        "abc",
    ];

    fn ref_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        let value = prop_oneof![
            4 => select(REFS).prop_map(|r| {
                let (t, i) = reference_type_id(r).map_or((None, None), |(t, i)| (Some(t.to_owned()), Some(i.to_owned())));
                SearchValue::Reference(RefValue { rtype: t, id: i, reference: r.to_owned() })
            }),
            2 => (select(REFS), select(&[None, Some("Patient"), Some("Group")][..]), select(&[None, Some("1"), Some("2")][..]))
                .prop_map(|(r, t, i)| SearchValue::Reference(RefValue {
                    rtype: t.map(str::to_owned),
                    id: i.map(str::to_owned),
                    reference: r.to_owned(),
                })),
            1 => select(REFS).prop_map(|r| SearchValue::Uri(r.to_owned())),
        ];
        let param = select(
            &[
                ("Observation", "subject"),
                ("Provenance", "target"),
                ("RequestGroup", "instantiates-canonical"),
            ][..],
        );
        (
            prop::collection::vec(value, 0..3),
            param,
            select(&["", ":Patient", ":Group"][..]),
            prop::collection::vec(select(REFS), 1..3),
        )
            .prop_filter_map("invalid", |(values, (rt, code), modifier, qs)| {
                let qs: Vec<String> = qs.iter().map(|s| s.replace('|', "\\|")).collect();
                let p = q(rt, &format!("{code}{modifier}"), &qs.join(","), 0)?;
                Some((p, values))
            })
    }

    const DECIMALS: &[&str] = &[
        "100", "99.5", "100.5", "100.4999", "99.4999", "1e2", "100.00", "5.4", "5.35", "5.45", "0",
        "-0.0", "-5", "110", "90", "89.999", "150", "50", "1E3", "0.0001", "-100", "-110", "1.0e2",
        "99.995", "100.005",
    ];

    fn decimal() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => select(DECIMALS).prop_map(str::to_owned),
            1 => (-2000i64..2000, 0usize..4).prop_map(|(n, places)| {
                let s = format!("{:0>width$}", n.unsigned_abs(), width = places + 1);
                let (i, f) = s.split_at(s.len() - places);
                let sign = if n < 0 { "-" } else { "" };
                if places == 0 { format!("{sign}{i}") } else { format!("{sign}{i}.{f}") }
            }),
        ]
    }

    fn quantity_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        let sys = select(&[None, Some("http://unitsofmeasure.org"), Some("urn:x")][..]);
        let unit = select(&[None, Some("mg"), Some("g"), Some("milligram")][..]);
        let value = prop_oneof![
            4 => (decimal(), sys.clone(), unit.clone(), unit.clone()).prop_map(|(d, s, c, u)| SearchValue::Quantity {
                value: Decimal(d),
                system: s.map(str::to_owned),
                code: c.map(str::to_owned),
                unit: u.map(str::to_owned),
            }),
            1 => decimal().prop_map(|d| SearchValue::Number(Decimal(d))),
        ];
        let form = (prefix(), decimal(), 0u8..3, sys, unit);
        (
            prop::collection::vec(value, 0..3),
            prop::collection::vec(form, 1..3),
        )
            .prop_filter_map("invalid", |(values, forms)| {
                let parts: Vec<String> = forms
                    .iter()
                    .map(|(p, d, f, s, u)| match f {
                        0 => format!("{p}{d}"),
                        1 => format!("{p}{d}||{}", u.unwrap_or("mg")),
                        _ => format!("{p}{d}|{}|{}", s.unwrap_or("urn:x"), u.unwrap_or("mg")),
                    })
                    .collect();
                let p = q("Observation", "value-quantity", &parts.join(","), 0)?;
                Some((p, values))
            })
    }

    fn number_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        (
            prop::collection::vec(
                decimal().prop_map(|d| SearchValue::Number(Decimal(d))),
                0..3,
            ),
            prefix(),
            decimal(),
        )
            .prop_filter_map("invalid", |(values, p, d)| {
                Some((
                    q("RiskAssessment", "probability", &format!("{p}{d}"), 0)?,
                    values,
                ))
            })
    }

    const URIS: &[&str] = &[
        "http://x.org/fhir/vs",
        "http://x.org/fhir/vs/1",
        "http://x.org/fhir",
        "http://x.org/",
        "http://x.org",
        "http://x.org/fhir/vs1",
        "urn:oid:1.2",
        "/",
        "http://x.org/fhir/",
        "a/b/c/d/e/f",
    ];

    fn uri_case() -> impl Strategy<Value = (ParamQuery, Vec<SearchValue>)> {
        (
            prop::collection::vec(
                select(URIS).prop_map(|u| SearchValue::Uri(u.to_owned())),
                0..3,
            ),
            select(&["", ":above", ":below", ":missing"][..]),
            select(URIS),
        )
            .prop_filter_map("invalid", |(values, m, u)| {
                let u = if m == ":missing" { "true" } else { u };
                Some((q("ValueSet", &format!("url{m}"), u, 0)?, values))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn dates_never_missed((p, v) in date_case()) { check(&p, v)?; }

        #[test]
        fn strings_never_missed((p, v) in string_case()) { check(&p, v)?; }

        #[test]
        fn tokens_never_missed((p, v) in token_case()) { check(&p, v)?; }

        #[test]
        fn references_never_missed((p, v) in ref_case()) { check(&p, v)?; }

        #[test]
        fn quantities_never_missed((p, v) in quantity_case()) { check(&p, v)?; }

        #[test]
        fn numbers_never_missed((p, v) in number_case()) { check(&p, v)?; }

        #[test]
        fn uris_never_missed((p, v) in uri_case()) { check(&p, v)?; }
    }

    /// The generators must produce matches often enough for the property to mean
    /// something, and lookups that narrow.
    #[test]
    fn generators_cover_matches() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        fn rate<S: Strategy<Value = (ParamQuery, Vec<SearchValue>)>>(s: S) -> (usize, usize) {
            let mut runner = TestRunner::deterministic();
            let (mut matched, mut narrowed) = (0, 0);
            for _ in 0..2000 {
                let (p, v) = s.new_tree(&mut runner).unwrap().current();
                let m = matches(&p, &v);
                if m && lookup_terms(&p).is_some() {
                    narrowed += 1;
                }
                matched += usize::from(m);
            }
            (matched, narrowed)
        }
        for (name, (m, n)) in [
            ("date", rate(date_case())),
            ("string", rate(string_case())),
            ("token", rate(token_case())),
            ("reference", rate(ref_case())),
            ("quantity", rate(quantity_case())),
            ("uri", rate(uri_case())),
        ] {
            assert!(m >= 200, "{name}: only {m} matches in 2000");
            assert!(n >= 100, "{name}: only {n} narrowed matches in 2000");
        }
    }

    fn ex(code: &'static str, kind: SearchParamType, values: Vec<SearchValue>) -> Extracted {
        Extracted { code, kind, values }
    }

    fn tok(system: Option<&str>, code: &str) -> SearchValue {
        SearchValue::Token {
            system: system.map(str::to_owned),
            code: code.to_owned(),
            text: None,
        }
    }

    fn s(v: &str) -> SearchValue {
        SearchValue::String(v.to_owned())
    }

    fn d(v: &str) -> SearchValue {
        SearchValue::Date(parse_date(v).unwrap())
    }

    fn r(v: &str) -> SearchValue {
        let (t, i) = reference_type_id(v).unwrap();
        SearchValue::Reference(RefValue {
            rtype: Some(t.to_owned()),
            id: Some(i.to_owned()),
            reference: v.to_owned(),
        })
    }

    #[test]
    fn schemes() {
        use SearchParamType as T;
        let terms = |e: Extracted| -> Vec<String> {
            index_terms(&[e]).into_iter().map(|(_, t)| t).collect()
        };
        assert_eq!(
            terms(ex("gender", T::Token, vec![tok(None, "male")])),
            ["c:male"]
        );
        assert_eq!(
            terms(ex("family", T::String, vec![s("Smith")])),
            ["f:smith", "p:smi"]
        );
        assert_eq!(terms(ex("family", T::String, vec![s("Li")])), ["p:li"]);
        assert_eq!(terms(ex("family", T::String, vec![s("Lim")])), ["p:lim"]);
        assert_eq!(terms(ex("family", T::String, vec![s("Ó")])), ["f:o"]);
        assert_eq!(
            terms(ex("birthdate", T::Date, vec![d("1980-05-12")])),
            ["m:1980-05", "y:1980"]
        );
        assert_eq!(
            terms(ex("birthdate", T::Date, vec![d("1980")])),
            ["yl:1980"]
        );
        assert_eq!(
            terms(ex("birthdate", T::Date, vec![d("1880-05-12")])),
            ["wide"]
        );
        assert_eq!(
            terms(ex("date", T::Date, vec![d("2019-12-31T23:30:00-01:00")])),
            ["m:2020-01", "y:2020"]
        );
        assert_eq!(
            terms(ex("_id", T::Token, vec![tok(None, "x")])),
            Vec::<String>::new()
        );
        assert_eq!(
            terms(ex("subject", T::Reference, vec![r("Patient/1")])),
            ["r:Patient/1"]
        );
        let look = |rt: &str, k: &str, v: &str| -> Option<Vec<String>> {
            let p = q(rt, k, v, 1_700_000_000_000_000).unwrap();
            lookup_terms(&p).map(|t| t.into_iter().map(|(_, t)| t).collect())
        };
        assert_eq!(
            look("Patient", "birthdate", "1980-05-12").unwrap(),
            ["m:1980-05", "wide", "yl:1980"]
        );
        assert_eq!(
            look("Patient", "_lastUpdated", "gt2024-01-01")
                .unwrap()
                .len(),
            1 + 2 * 76
        );
        assert_eq!(
            look("Patient", "birthdate", "lt1900"),
            Some(vec!["wide".to_owned()])
        );
        assert!(look("Patient", "birthdate", "ne1980").is_none());
        assert_eq!(look("Patient", "family", "smith").unwrap(), ["p:smi"]);
        assert!(look("Patient", "family", "sm").is_none());
        assert!(look("Patient", "family", "s").is_none());
        assert!(look("Patient", "family:contains", "smith").is_none());
        assert_eq!(
            look("Patient", "family:exact", "Smith").unwrap(),
            ["f:smith"]
        );
        assert_eq!(
            look(
                "Patient",
                "identifier",
                "https://fhir.nhs.uk/Id/nhs-number|9434765919"
            )
            .unwrap(),
            ["c:9434765919"]
        );
        assert!(
            look(
                "Patient",
                "identifier",
                "https://fhir.nhs.uk/Id/nhs-number|"
            )
            .is_none()
        );
        assert!(look("Patient", "_id", "abc").is_none());
        assert!(look("Patient", "gender:missing", "true").is_none());
        assert_eq!(
            look("Observation", "subject", "1").unwrap(),
            [
                "r:Device/1",
                "r:Group/1",
                "r:Location/1",
                "r:Patient/1",
                "u:1"
            ]
        );
        assert_eq!(
            look("Observation", "patient", "Patient/1").unwrap(),
            ["r:Patient/1", "u:Patient/1"]
        );
        assert!(look("RiskAssessment", "probability", "gt0.5").is_none());
        assert_eq!(
            look(
                "Observation",
                "value-quantity",
                "gt5|http://unitsofmeasure.org|mg"
            )
            .unwrap(),
            ["q:|mg"]
        );
        assert_eq!(
            look("ValueSet", "url:above", "http://x.org/a").unwrap(),
            [
                "u:http:",
                "u:http:/",
                "u:http://",
                "u:http://x.org",
                "u:http://x.org/",
                "u:http://x.org/a"
            ]
        );
    }

    /// Rows for the typical resources quoted in the module documentation.
    #[test]
    fn typical_row_counts() {
        use SearchParamType as T;
        let nhs = Some("https://fhir.nhs.uk/Id/nhs-number");
        let updated = || d("2024-03-01T10:00:00Z");
        let patient = vec![
            ex("identifier", T::Token, vec![tok(nhs, "9434765919")]),
            ex("name", T::String, vec![s("Smith"), s("Jane"), s("Anne")]),
            ex("family", T::String, vec![s("Smith")]),
            ex("given", T::String, vec![s("Jane"), s("Anne")]),
            ex(
                "phonetic",
                T::String,
                vec![s("Smith"), s("Jane"), s("Anne")],
            ),
            ex("gender", T::Token, vec![tok(None, "female")]),
            ex("birthdate", T::Date, vec![d("1980-05-12")]),
            ex(
                "address",
                T::String,
                vec![s("1 High Street"), s("Leeds"), s("LS1 4AP"), s("UK")],
            ),
            ex("address-city", T::String, vec![s("Leeds")]),
            ex("address-postalcode", T::String, vec![s("LS1 4AP")]),
            ex("address-country", T::String, vec![s("UK")]),
            ex("phone", T::Token, vec![tok(Some("phone"), "0113 496 0000")]),
            ex(
                "telecom",
                T::Token,
                vec![tok(Some("phone"), "0113 496 0000")],
            ),
            ex(
                "general-practitioner",
                T::Reference,
                vec![r("Practitioner/g1")],
            ),
            ex("_id", T::Token, vec![tok(None, "p1")]),
            ex("_lastUpdated", T::Date, vec![updated()]),
        ];
        let n = index_terms(&patient).len();
        eprintln!("patient rows: {n}");
        assert!((36..=42).contains(&n), "{n}");
        let loinc = Some("http://loinc.org");
        let observation = vec![
            ex("code", T::Token, vec![tok(loinc, "8867-4")]),
            ex(
                "category",
                T::Token,
                vec![tok(
                    Some("http://terminology.hl7.org/CodeSystem/observation-category"),
                    "vital-signs",
                )],
            ),
            ex("status", T::Token, vec![tok(None, "final")]),
            ex("subject", T::Reference, vec![r("Patient/p1")]),
            ex("patient", T::Reference, vec![r("Patient/p1")]),
            ex("encounter", T::Reference, vec![r("Encounter/e1")]),
            ex("date", T::Date, vec![d("2024-02-29T09:30:00Z")]),
            ex(
                "value-quantity",
                T::Quantity,
                vec![SearchValue::Quantity {
                    value: Decimal("72".into()),
                    system: Some("http://unitsofmeasure.org".into()),
                    code: Some("/min".into()),
                    unit: Some("beats/minute".into()),
                }],
            ),
            ex("_id", T::Token, vec![tok(None, "o1")]),
            ex("_lastUpdated", T::Date, vec![updated()]),
        ];
        let n = index_terms(&observation).len();
        eprintln!("observation rows: {n}");
        assert!((12..=14).contains(&n), "{n}");
    }
}
