//! The exact semantics of FHIR R4 search (<https://hl7.org/fhir/R4/search.html>), applied
//! to the values extracted from one decrypted candidate.
//!
//! [`matches()`] decides one [`ParamQuery`] against the values of its parameter on one
//! resource (no values: the resource lacks the element). The alternatives of a parameter
//! are ORed: the resource matches when any alternative matches any of its values.
//!
//! Choices where the specification leaves room, or where Caldicott departs from common
//! practice:
//! - **Strings** are compared after [`normalise`]: Unicode compatibility decomposition
//!   (NFKD), combining marks removed, lower-cased, runs of white space collapsed to one
//!   space and trimmed. Default is "starts with", `:contains` is "contains", and `:exact` is
//!   equality of the NFC forms (so composed and decomposed accents are equal, but case and
//!   accents count).
//! - **Tokens** compare codes and systems case-sensitively, as written. `:text` matches
//!   when the normalised query starts the normalised text (CodeableConcept.text,
//!   Coding.display, Identifier.type.text) or one of its words. `:not` matches the resources
//!   with no matching token, those with no value at all included.
//! - **Dates**: both sides are ranges (the resource's from its precision or Period), and the
//!   prefixes follow the R4 prefix table literally: `eq` the search range contains the
//!   resource range; `ne` it does not; `gt` the resource range ends after the search range;
//!   `lt` it starts before it; `ge`/`le` are `gt`/`lt` or `eq`; `sa` the resource range
//!   starts at or after the search range's end; `eb` it ends at or before its start. `ap`
//!   matches a resource range that overlaps the window [`super::query::parse`] computed
//!   (10% of the distance to now either side, at least one day).
//! - **Numbers and quantities**: the resource's value is taken as a point (its own
//!   precision is not used); the search value's precision gives its range for `eq`/`ne`
//!   (`100` is `[99.5, 100.5)`, `100.00` is `[99.995, 100.005)`, `1e2` is one significant
//!   figure so `[50, 150)`, as R5 corrects R4's example); `gt`/`lt`/`ge`/`le` compare with
//!   the exact value ("greater than exactly 100" in R4's table); `sa` is at or above the top
//!   of the range, `eb` below its bottom; `ap` is within 10% of the value, or within its
//!   precision range. Decimals are compared exactly ([`ExactDecimal`]).
//! - **Quantity units** are never converted (no UCUM arithmetic): `|system|code` needs that
//!   system and code, `||code` the code or the unit text, and no unit matches any unit.
//! - **References** are compared by type and id when both sides name them
//!   ([`reference_key`]): `Patient/123`, `Patient/123/_history/2` and any absolute
//!   `http(s)` URL ending `Patient/123` are all the same reference, since this layer does not
//!   know the server's base URL. A bare id matches any type among the parameter's targets
//!   (or the type modifier's). Anything else (`urn:uuid:`, canonicals) is compared as the
//!   exact string.
//! - **URIs** are compared exactly; `:below`/`:above` compare whole path segments.

use std::cmp::{Ordering, Reverse};

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::query::{
    ExactDecimal, Modifier, ParamQuery, Prefix, QueryValue, RefQuery, TokenSystem,
    reference_type_id,
};
use super::{DateRange, RefValue, SearchValue};

/// Whether a resource whose values for `p`'s parameter are `values` matches `p`.
pub fn matches(p: &ParamQuery, values: &[SearchValue]) -> bool {
    match &p.modifier {
        Some(Modifier::Missing(missing)) => return values.is_empty() == *missing,
        Some(Modifier::Identifier) => return false,
        Some(Modifier::Not) => {
            return !values
                .iter()
                .any(|v| p.values.iter().any(|q| value_matches(p, q, v)));
        }
        _ => {}
    }
    p.values
        .iter()
        .any(|q| values.iter().any(|v| value_matches(p, q, v)))
}

fn value_matches(p: &ParamQuery, q: &QueryValue, v: &SearchValue) -> bool {
    match (q, v) {
        (
            QueryValue::Token { system, code },
            SearchValue::Token {
                system: s, code: c, ..
            },
        ) => token_matches(system, code.as_deref(), s.as_deref(), c),
        (QueryValue::String(t), SearchValue::Token { text, .. }) => {
            p.modifier == Some(Modifier::Text)
                && text.as_deref().is_some_and(|x| text_matches(t, x))
        }
        (QueryValue::String(q), SearchValue::String(v)) => match p.modifier {
            Some(Modifier::Exact) => q.nfc().eq(v.nfc()),
            Some(Modifier::Contains) => normalise(v).contains(&normalise(q)),
            _ => normalise(v).starts_with(&normalise(q)),
        },
        (QueryValue::Date { prefix, range }, SearchValue::Date(r)) => {
            date_matches(*prefix, *range, *r)
        }
        (QueryValue::Number { prefix, value }, SearchValue::Number(d)) => {
            ExactDecimal::parse(&d.0).is_some_and(|t| number_matches(*prefix, value, &t))
        }
        (
            QueryValue::Quantity {
                prefix,
                value,
                system,
                code,
            },
            v,
        ) => {
            let (t, units_ok) = match v {
                SearchValue::Quantity {
                    value: d,
                    system: s,
                    code: c,
                    unit,
                } => {
                    let ok = match (system, code) {
                        (Some(qs), Some(qc)) => s.as_ref() == Some(qs) && c.as_ref() == Some(qc),
                        (None, Some(qc)) => c.as_ref() == Some(qc) || unit.as_ref() == Some(qc),
                        (Some(qs), None) => s.as_ref() == Some(qs),
                        (None, None) => true,
                    };
                    (d, ok)
                }
                SearchValue::Number(d) => (d, system.is_none() && code.is_none()),
                _ => return false,
            };
            units_ok
                && ExactDecimal::parse(&t.0).is_some_and(|t| number_matches(*prefix, value, &t))
        }
        (QueryValue::Reference(rq), v) => reference_matches(p, rq, v),
        (QueryValue::Uri(q), SearchValue::Uri(v)) => match p.modifier {
            Some(Modifier::Below) => is_path_prefix(q, v),
            Some(Modifier::Above) => is_path_prefix(v, q),
            _ => q == v,
        },
        _ => false,
    }
}

fn token_matches(system: &TokenSystem, code: Option<&str>, s: Option<&str>, c: &str) -> bool {
    let system_ok = match system {
        TokenSystem::Any => true,
        TokenSystem::None => s.is_none(),
        TokenSystem::Is(x) => s == Some(x.as_str()),
    };
    system_ok && code.is_none_or(|q| q == c)
}

/// `:text`: the normalised query starts the normalised text or one of its words.
fn text_matches(q: &str, text: &str) -> bool {
    let q = normalise(q);
    let t = normalise(text);
    t.starts_with(&q)
        || t.match_indices(' ')
            .any(|(i, _)| t[i + 1..].starts_with(&q))
}

/// The form strings are compared and indexed in: NFKD, combining marks dropped,
/// lower-cased, white space collapsed to single spaces and trimmed. `Évelyn  ` and
/// `evelyn` are equal; `ﬁ` becomes `fi`.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .filter(|c| !is_combining_mark(*c))
    {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// A range that is empty or inverted is read as the single microsecond at its start, so
/// that every range holds at least one instant.
pub(crate) fn proper(r: DateRange) -> DateRange {
    DateRange {
        start: r.start,
        end: r.end.max(r.start.saturating_add(1)),
    }
}

fn date_matches(prefix: Prefix, search: DateRange, resource: DateRange) -> bool {
    let s = proper(search);
    let r = proper(resource);
    let contained = s.start <= r.start && r.end <= s.end;
    match prefix {
        Prefix::Eq => contained,
        Prefix::Ne => !contained,
        Prefix::Gt => r.end > s.end,
        Prefix::Lt => r.start < s.start,
        Prefix::Ge => r.end > s.end || contained,
        Prefix::Le => r.start < s.start || contained,
        Prefix::Sa => r.start >= s.end,
        Prefix::Eb => r.end <= s.start,
        Prefix::Ap => r.start < s.end && s.start < r.end,
    }
}

fn number_matches(prefix: Prefix, q: &ExactDecimal, t: &ExactDecimal) -> bool {
    let (lo, hi) = q.precision_bounds();
    let in_range = t.cmp_value(&lo).is_ge() && t.cmp_value(&hi).is_lt();
    match prefix {
        Prefix::Eq => in_range,
        Prefix::Ne => !in_range,
        Prefix::Gt => t.cmp_value(q).is_gt(),
        Prefix::Lt => t.cmp_value(q).is_lt(),
        Prefix::Ge => t.cmp_value(q).is_ge(),
        Prefix::Le => t.cmp_value(q).is_le(),
        Prefix::Sa => t.cmp_value(&hi).is_ge(),
        Prefix::Eb => t.cmp_value(&lo).is_lt(),
        Prefix::Ap => {
            let (a, b) = q.approx_bounds();
            in_range || (t.cmp_value(&a).is_ge() && t.cmp_value(&b).is_le())
        }
    }
}

/// What a stored reference is compared and indexed by: its type and id, read from the
/// reference text ([`reference_type_id`]) or, when the text does not name them, from the
/// `type` element and id the extractor found. `None` for references known only by their
/// text (`urn:uuid:`, `#contained`, canonicals without a type/id ending).
pub fn reference_key(v: &RefValue) -> Option<(&str, &str)> {
    reference_type_id(&v.reference).or_else(|| Some((v.rtype.as_deref()?, v.id.as_deref()?)))
}

fn reference_matches(p: &ParamQuery, rq: &RefQuery, v: &SearchValue) -> bool {
    let targets = p.def.targets;
    match (rq, v) {
        (RefQuery::Id { rtype, id, text }, SearchValue::Reference(rv)) => {
            let by_key = reference_key(rv).is_some_and(|(t, i)| {
                i == id
                    && match rtype {
                        Some(qt) => qt == t,
                        None => targets.is_empty() || targets.contains(&t),
                    }
            });
            by_key || (!rv.reference.is_empty() && rv.reference == *text)
        }
        (RefQuery::Id { text, .. }, SearchValue::Uri(u)) => u == text,
        (RefQuery::Url(u), SearchValue::Reference(rv)) => !u.is_empty() && rv.reference == *u,
        (RefQuery::Url(u), SearchValue::Uri(x)) => u == x,
        _ => false,
    }
}

/// Whether `a` is `b` or a parent path of it (`http://x/a` of `http://x/a/b`, not of
/// `http://x/ab`).
pub(crate) fn is_path_prefix(a: &str, b: &str) -> bool {
    b.strip_prefix(a)
        .is_some_and(|rest| rest.is_empty() || a.ends_with('/') || rest.starts_with('/'))
}

/// A resource's position in a `_sort` on one parameter. Ascending `Ord` order of the
/// [`SortValue`]s is the requested order (built for that direction), with resources lacking
/// the parameter last in both directions. Ties are the caller's to break (by id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortValue(SortSlot);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortSlot {
    Ascending(Scalar),
    Descending(Reverse<Scalar>),
    Missing,
}

/// One comparable value. Values of different kinds (which one parameter should not mix)
/// order by kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scalar {
    Time(i64),
    Number(ByValue),
    Text(String),
}

/// An [`ExactDecimal`] ordered and compared by value.
#[derive(Debug, Clone, Copy)]
struct ByValue(ExactDecimal);

impl PartialEq for ByValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.cmp_value(&other.0).is_eq()
    }
}
impl Eq for ByValue {}
impl PartialOrd for ByValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByValue {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_value(&other.0)
    }
}

/// The sort position of a resource with `values` for the sort parameter. Ascending uses the
/// smallest value (a date range's start), descending the largest (a date range's end), per
/// R4. Strings sort by their [`normalise`]d form, tokens by code, references by their text,
/// numbers and quantities by value (units ignored). Unreadable numbers count as missing.
pub fn sort_key(values: &[SearchValue], descending: bool) -> SortValue {
    let scalars = values.iter().filter_map(|v| {
        Some(match v {
            SearchValue::Date(r) => {
                let r = proper(*r);
                Scalar::Time(if descending { r.end } else { r.start })
            }
            SearchValue::String(s) => Scalar::Text(normalise(s)),
            SearchValue::Token { code, .. } => Scalar::Text(code.clone()),
            SearchValue::Reference(r) => Scalar::Text(r.reference.clone()),
            SearchValue::Uri(u) => Scalar::Text(u.clone()),
            SearchValue::Number(d) | SearchValue::Quantity { value: d, .. } => {
                Scalar::Number(ByValue(ExactDecimal::parse(&d.0)?))
            }
        })
    });
    let pick = if descending {
        scalars.max()
    } else {
        scalars.min()
    };
    SortValue(match pick {
        None => SortSlot::Missing,
        Some(s) if descending => SortSlot::Descending(Reverse(s)),
        Some(s) => SortSlot::Ascending(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Decimal;
    use crate::search::query::{DAY_US, days_from_civil, parse_at, parse_date};

    const NOW: i64 = 1_700_000_000_000_000;

    fn q(rt: &str, key: &str, value: &str) -> ParamQuery {
        parse_at(rt, &[(key.to_owned(), value.to_owned())], NOW)
            .unwrap()
            .params
            .remove(0)
    }

    fn s(v: &str) -> SearchValue {
        SearchValue::String(v.to_owned())
    }

    fn d(v: &str) -> SearchValue {
        SearchValue::Date(parse_date(v).unwrap())
    }

    fn period(a: Option<&str>, b: Option<&str>) -> SearchValue {
        SearchValue::Date(DateRange {
            start: a.map_or(DateRange::OPEN_START, |a| parse_date(a).unwrap().start),
            end: b.map_or(DateRange::OPEN_END, |b| parse_date(b).unwrap().end),
        })
    }

    fn tok(system: Option<&str>, code: &str) -> SearchValue {
        SearchValue::Token {
            system: system.map(str::to_owned),
            code: code.to_owned(),
            text: None,
        }
    }

    fn num(v: &str) -> SearchValue {
        SearchValue::Number(Decimal(v.to_owned()))
    }

    fn qty(v: &str, system: Option<&str>, code: Option<&str>, unit: Option<&str>) -> SearchValue {
        SearchValue::Quantity {
            value: Decimal(v.to_owned()),
            system: system.map(str::to_owned),
            code: code.map(str::to_owned),
            unit: unit.map(str::to_owned),
        }
    }

    fn rf(reference: &str) -> SearchValue {
        let (rtype, id) = match reference_type_id(reference) {
            Some((t, i)) => (Some(t.to_owned()), Some(i.to_owned())),
            None => (None, None),
        };
        SearchValue::Reference(RefValue {
            rtype,
            id,
            reference: reference.to_owned(),
        })
    }

    #[test]
    fn strings() {
        let eve = q("Patient", "name", "eve");
        assert!(matches(&eve, &[s("Eve")]));
        assert!(matches(&eve, &[s("Evelyn")]));
        assert!(matches(&eve, &[s("Smith"), s("ÉVE")]));
        assert!(!matches(&eve, &[s("Severine")]));
        assert!(!matches(&eve, &[]));
        let c = q("Patient", "name:contains", "eve");
        assert!(matches(&c, &[s("Severine")]));
        let x = q("Patient", "name:exact", "Eve");
        assert!(matches(&x, &[s("Eve")]));
        assert!(!matches(&x, &[s("eve")]));
        assert!(!matches(&x, &[s("Evelyn")]));
        let x = q("Patient", "name:exact", "Zoë");
        assert!(matches(&x, &[s("Zoe\u{308}")]));
        assert!(!matches(&x, &[s("Zoe")]));
        assert!(matches(
            &q("Patient", "family", "o'  bri"),
            &[s(" O' Brien")]
        ));
        assert_eq!(normalise("  Ångström\t\nﬁ  İ "), "angstrom fi i");
        let m = q("Patient", "name:missing", "true");
        assert!(matches(&m, &[]));
        assert!(!matches(&m, &[s("x")]));
    }

    #[test]
    fn tokens() {
        let loinc = Some("http://loinc.org");
        let a = [tok(loinc, "8867-4"), tok(None, "plain")];
        assert!(matches(&q("Observation", "code", "8867-4"), &a));
        assert!(matches(
            &q("Observation", "code", "http://loinc.org|8867-4"),
            &a
        ));
        assert!(!matches(
            &q("Observation", "code", "http://snomed.info/sct|8867-4"),
            &a
        ));
        assert!(!matches(&q("Observation", "code", "|8867-4"), &a));
        assert!(matches(&q("Observation", "code", "|plain"), &a));
        assert!(matches(&q("Observation", "code", "http://loinc.org|"), &a));
        assert!(!matches(&q("Observation", "code", "8867-4x,Plain"), &a));
        assert!(matches(&q("Observation", "code", "x,plain"), &a));
        let not = q("Patient", "gender:not", "male");
        assert!(matches(&not, &[tok(None, "female")]));
        assert!(matches(&not, &[]));
        assert!(!matches(&not, &[tok(None, "male")]));
        let text = q("Observation", "code:text", "heart");
        let hr = SearchValue::Token {
            system: loinc.map(str::to_owned),
            code: "8867-4".into(),
            text: Some("Resting Heart rate".into()),
        };
        assert!(matches(&text, std::slice::from_ref(&hr)));
        assert!(!matches(&q("Observation", "code:text", "eart"), &[hr]));
        let nhs = q(
            "Patient",
            "identifier",
            "https://fhir.nhs.uk/Id/nhs-number|9434765919",
        );
        assert!(matches(
            &nhs,
            &[tok(Some("https://fhir.nhs.uk/Id/nhs-number"), "9434765919")]
        ));
        assert!(!matches(&nhs, &[tok(Some("urn:other"), "9434765919")]));
    }

    /// The examples of the R4 search page, section 3.1.1.4.2 (date).
    #[test]
    fn date_prefix_table() {
        let m = |query: &str, v: SearchValue| matches(&q("Observation", "date", query), &[v]);
        // eq2013-01-14 matches 2013-01-14T00:00 and 2013-01-14T10:00, not 2013-01-15T00:00.
        assert!(m("eq2013-01-14", d("2013-01-14T00:00:00Z")));
        assert!(m("eq2013-01-14", d("2013-01-14T10:00:00Z")));
        assert!(!m("eq2013-01-14", d("2013-01-15T00:00:00Z")));
        // ne2013-01-14: the converse.
        assert!(m("ne2013-01-14", d("2013-01-15T00:00:00Z")));
        assert!(!m("ne2013-01-14", d("2013-01-14T10:00:00Z")));
        // lt2013-01-14T10:00 includes 2013-01-14 (its range starts before 10:00).
        assert!(m("lt2013-01-14T10:00", d("2013-01-14")));
        assert!(!m("lt2013-01-14T10:00", d("2013-01-14T10:00:00Z")));
        // gt2013-01-14T10:00 includes 2013-01-14 (its range ends after 10:00).
        assert!(m("gt2013-01-14T10:00", d("2013-01-14")));
        assert!(!m("gt2013-01-14T10:00", d("2013-01-14T10:00:30Z")));
        // ge2013-03-14: from 21-Jan 2013 onwards (an open Period) matches; ended 2013-01-21
        // does not.
        assert!(m("ge2013-03-14", period(Some("2013-01-21"), None)));
        assert!(!m(
            "ge2013-03-14",
            period(Some("2012-01-01"), Some("2013-01-21"))
        ));
        assert!(m("ge2013-03-14", d("2013-03-14")));
        // le2013-03-14: from 21-Jan 2013 onwards includes times before, so it matches.
        assert!(m("le2013-03-14", period(Some("2013-01-21"), None)));
        assert!(!m("le2013-03-14", d("2013-03-15")));
        // sa / eb
        assert!(m("sa2013-03-14", d("2013-03-15")));
        assert!(!m("sa2013-03-14", d("2013-03-14T23:00:00Z")));
        assert!(!m("sa2013-03-14", period(Some("2013-01-21"), None)));
        assert!(m("eb2013-03-14", period(None, Some("2013-03-13"))));
        assert!(!m("eb2013-03-14", d("2013-03-14")));
        // A year contains its days; a day does not contain its year.
        assert!(m("2013", d("2013-07-01")));
        assert!(!m("2013-07-01", d("2013")));
        // ap: one day either side near now; 10% of the gap further back.
        let today = (NOW / DAY_US) * DAY_US;
        let day = |days: i64| {
            SearchValue::Date(DateRange {
                start: today + days * DAY_US,
                end: today + (days + 1) * DAY_US,
            })
        };
        let today_text = {
            let z = NOW / DAY_US;
            let (y, m) = crate::search::query::civil_from_days(z);
            let dd = z - days_from_civil(y, m, 1) + 1;
            format!("{y:04}-{m:02}-{dd:02}")
        };
        let ap = q("Observation", "date", &format!("ap{today_text}"));
        assert!(matches(&ap, &[day(1)]));
        assert!(matches(&ap, &[day(-1)]));
        assert!(!matches(&ap, &[day(2)]));
        let ap = q("Observation", "date", "ap2003-11-14");
        assert!(matches(&ap, &[d("2003-06-01")]));
        assert!(!matches(&ap, &[d("2001-01-01")]));
    }

    /// The examples of the R4 search page, section 3.1.1.4.1 (number) and 3.1.1.4.10
    /// (quantity).
    #[test]
    fn numbers_and_precision() {
        let m =
            |query: &str, v: &str| matches(&q("RiskAssessment", "probability", query), &[num(v)]);
        assert!(m("100", "100"));
        assert!(m("100", "99.5"));
        assert!(m("100", "100.4999"));
        assert!(!m("100", "100.5"));
        assert!(!m("100", "99.4999"));
        assert!(m("100.00", "100.004"));
        assert!(!m("100.00", "100.005"));
        assert!(!m("100.00", "99.99"));
        assert!(m("1e2", "140"));
        assert!(!m("1e2", "150"));
        assert!(m("lt100", "99.99"));
        assert!(!m("lt100", "100"));
        assert!(m("le100", "100.000"));
        assert!(m("gt100", "100.01"));
        assert!(!m("gt100", "100"));
        assert!(m("ge100", "100"));
        assert!(m("ne100", "100.5"));
        assert!(!m("ne100", "100.2"));
        assert!(m("sa100", "100.5"));
        assert!(!m("sa100", "100.4"));
        assert!(m("eb100", "99.4"));
        assert!(!m("eb100", "99.5"));
        assert!(m("ap100", "109"));
        assert!(m("ap100", "90"));
        assert!(!m("ap100", "111"));
        assert!(m("ap-100", "-110"));
        assert!(!m("100", "not a number"));
        let u =
            |query: &str, v: SearchValue| matches(&q("Observation", "value-quantity", query), &[v]);
        let ucum = Some("http://unitsofmeasure.org");
        let mg = qty("5.4", ucum, Some("mg"), Some("milligram"));
        assert!(u("5.4|http://unitsofmeasure.org|mg", mg.clone()));
        assert!(u("5.4||mg", mg.clone()));
        assert!(u("5.4||milligram", mg.clone()));
        assert!(u("5.4", mg.clone()));
        assert!(!u("5.4|http://unitsofmeasure.org|g", mg.clone()));
        assert!(!u("5.4|urn:other|mg", mg.clone()));
        assert!(
            !u("0.0054|http://unitsofmeasure.org|g", mg.clone()),
            "no unit conversion"
        );
        assert!(u("5.40||mg", qty("5.404", ucum, Some("mg"), None)));
        assert!(!u("5.40||mg", qty("5.41", ucum, Some("mg"), None)));
        assert!(u("ap5.4||mg", qty("5.9", None, None, Some("mg"))));
        assert!(u("gt5", num("6")));
        assert!(!u("gt5||mg", num("6")));
    }

    #[test]
    fn references() {
        let subject = |v: &str| q("Observation", "subject", v);
        let p1 = rf("Patient/1");
        assert!(matches(&subject("Patient/1"), std::slice::from_ref(&p1)));
        assert!(matches(&subject("1"), std::slice::from_ref(&p1)));
        assert!(matches(
            &q("Observation", "subject:Patient", "1"),
            std::slice::from_ref(&p1)
        ));
        assert!(!matches(
            &q("Observation", "subject:Group", "1"),
            std::slice::from_ref(&p1)
        ));
        assert!(matches(
            &subject("https://fhir.example.nhs.uk/R4/Patient/1"),
            std::slice::from_ref(&p1)
        ));
        assert!(matches(
            &subject("Patient/1/_history/4"),
            std::slice::from_ref(&p1)
        ));
        assert!(!matches(&subject("Patient/2"), std::slice::from_ref(&p1)));
        assert!(!matches(&subject("Group/1"), std::slice::from_ref(&p1)));
        assert!(matches(
            &subject("Patient/1"),
            &[rf("http://other/fhir/Patient/1")]
        ));
        // Bare ids only match the parameter's targets.
        let org = SearchValue::Reference(RefValue {
            rtype: Some("Organization".into()),
            id: Some("1".into()),
            reference: "Organization/1".into(),
        });
        assert!(!matches(&subject("1"), &[org]));
        let u = rf("urn:uuid:abc");
        assert!(matches(&subject("urn:uuid:abc"), std::slice::from_ref(&u)));
        assert!(!matches(&subject("urn:uuid:ab"), &[u]));
        assert!(matches(&subject("abc"), &[rf("abc")]));
        assert!(!matches(&subject("1"), &[rf("#1")]));
        let canon = q(
            "RequestGroup",
            "instantiates-canonical",
            "http://x.org/PlanDefinition/p|2",
        );
        assert!(matches(
            &canon,
            &[SearchValue::Uri("http://x.org/PlanDefinition/p|2".into())]
        ));
        assert!(!matches(
            &canon,
            &[SearchValue::Uri("http://x.org/PlanDefinition/p".into())]
        ));
    }

    #[test]
    fn uris() {
        let u = |m: &str, v: &str| {
            let p = q("ValueSet", &format!("url{m}"), "http://x.org/fhir/vs");
            matches(&p, &[SearchValue::Uri(v.into())])
        };
        assert!(u("", "http://x.org/fhir/vs"));
        assert!(!u("", "http://x.org/fhir/vs/1"));
        assert!(u(":below", "http://x.org/fhir/vs/1"));
        assert!(u(":below", "http://x.org/fhir/vs"));
        assert!(!u(":below", "http://x.org/fhir/vs1"));
        assert!(!u(":below", "http://x.org/fhir"));
        assert!(u(":above", "http://x.org/fhir"));
        assert!(u(":above", "http://x.org/"));
        assert!(!u(":above", "http://x.org/fh"));
        assert!(!u(":above", "http://x.org/fhir/vs/1"));
    }

    #[test]
    fn sorting() {
        let mut rows = [
            ("a", vec![d("2020")]),
            ("b", vec![d("2019-06-01"), d("2021-01-01")]),
            ("c", vec![]),
            ("d", vec![period(Some("2018-01-01"), None)]),
        ];
        rows.sort_by(|x, y| {
            sort_key(&x.1, false)
                .cmp(&sort_key(&y.1, false))
                .then(x.0.cmp(y.0))
        });
        assert_eq!(rows.iter().map(|r| r.0).collect::<String>(), "dbac");
        rows.sort_by(|x, y| {
            sort_key(&x.1, true)
                .cmp(&sort_key(&y.1, true))
                .then(x.0.cmp(y.0))
        });
        assert_eq!(rows.iter().map(|r| r.0).collect::<String>(), "dbac");
        let mut n = [
            ("x", vec![num("10")]),
            ("y", vec![num("9.5")]),
            ("z", vec![num("1e1")]),
            ("w", vec![]),
        ];
        n.sort_by(|x, y| {
            sort_key(&x.1, false)
                .cmp(&sort_key(&y.1, false))
                .then(x.0.cmp(y.0))
        });
        assert_eq!(n.iter().map(|r| r.0).collect::<String>(), "yxzw");
        n.sort_by(|x, y| {
            sort_key(&x.1, true)
                .cmp(&sort_key(&y.1, true))
                .then(x.0.cmp(y.0))
        });
        assert_eq!(n.iter().map(|r| r.0).collect::<String>(), "xzyw");
        let mut s = [
            ("1", vec![s("Émile")]),
            ("2", vec![s("eve")]),
            ("3", vec![s("Adam")]),
        ];
        s.sort_by_key(|x| sort_key(&x.1, false));
        assert_eq!(s.iter().map(|r| r.0).collect::<String>(), "312");
    }
}
