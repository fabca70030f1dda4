//! FHIR R4 search over audit events, pure: parameters parsed into an [`AuditQuery`] and
//! matched against events.
//!
//! Why it is strict: an audit search that silently ignored a parameter it did not
//! understand would return more than was asked, to a person reading other people's access
//! to patients. So every parameter is known or refused ([`QueryError::UnknownParameter`]),
//! every value is checked, and errors name the parameter but never echo its value (a value
//! may be an NHS number or a name typed into the wrong box).
//!
//! Supported, with R4's `AuditEvent` search parameter names where R4 has one:
//!
//! | parameter | value | meaning |
//! |---|---|---|
//! | `patient` | `Patient/{id}` or `{id}`, comma = OR | the caller maps each id to its audit pseudonym; an id with none matches nothing |
//! | `agent`, `agent-name`, `agent:identifier` | user name (`agent:identifier` also `system\|name`), comma = OR | exact user name |
//! | `date` | `[eq\|ge\|gt\|le\|lt]` + `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or a dateTime with a zone; repeat for AND | `recorded` within the range |
//! | `action` | `C`, `R`, `U`, `D`, `E`, comma = OR | the FHIR action code |
//! | `subtype` | token (`read`, `http://hl7.org/fhir/restful-interaction\|read`), comma = OR | any subtype coding |
//! | `type` | token (`rest`, `110114`, a Caldicott kind name), comma = OR | the event's type |
//! | `outcome` | `0` or `4`, comma = OR | permitted or refused |
//! | `break-glass` | `true` or `false` | Caldicott's own: access under break-glass |
//! | `_count` | a non-negative integer | page size, for the caller |
//! | `_sort` | `date` or `-date` | order, for the caller |
//!
//! Choices: a date without a time (`2025-07-01`, `2025-07`, `2025`) means the UK local day,
//! month or year (Europe/London, see [`crate::uktime`]), because the people who search the
//! audit trail live by UK clocks; a dateTime must carry its zone, as R4 requires. The `ne`,
//! `sa`, `eb` and `ap` prefixes are refused rather than approximated: the query is one
//! half-open interval. Each parameter other than `date` may be given once (R4 would AND
//! repeats; for multi-valued fields such as patients that cannot be folded into one list,
//! and refusing is clearer than a different meaning). `outcome` `8` and `12` are refused:
//! Caldicott records only `0` and `4`.

use std::collections::BTreeSet;

use crate::{AuditEvent, EventKind, Outcome, fhir, uktime};

/// In which order the caller should return matches (`_sort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// `_sort=date`.
    OldestFirst,
    /// `_sort=-date`, and the default: an audit trail is read from the latest.
    NewestFirst,
}

/// A parsed audit search. `None` means "any"; `Some(empty list)` matches nothing (every
/// patient named is unknown, say), which is not the same as no criterion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Patient pseudonyms: an event concerning any of them matches.
    pub patients: Option<Vec<String>>,
    /// User names: an event by any of them matches.
    pub agents: Option<Vec<String>>,
    /// Earliest `at_us`, inclusive.
    pub from_us: Option<i64>,
    /// Latest `at_us`, exclusive.
    pub to_us: Option<i64>,
    /// FHIR action codes (`C R U D E`).
    pub actions: Option<Vec<char>>,
    /// Subtype tokens, `code` or `system|code`.
    pub subtypes: Option<Vec<String>>,
    /// Event kinds (from `type`).
    pub kinds: Option<Vec<EventKind>>,
    pub outcome: Option<Outcome>,
    pub break_glass: Option<bool>,
    /// `_count`, for the caller's paging.
    pub count: Option<u32>,
    /// `_sort`, for the caller's ordering.
    pub sort: Option<SortOrder>,
}

/// A search the parser refuses. Parameter names are quoted (clipped to 64 characters and
/// with anything unusual replaced by `?`); values never are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown search parameter `{0}`")]
    UnknownParameter(String),
    #[error("search parameter `{0}` may be given only once")]
    Repeated(String),
    #[error("invalid value for search parameter `{0}`")]
    InvalidValue(String),
    #[error(
        "search parameter `{param}` does not support the `{prefix}` prefix (use eq, ge, gt, le or lt)"
    )]
    UnsupportedPrefix { param: String, prefix: &'static str },
}

/// [`AuditQuery::parse`] failed: the search itself, or the caller's patient lookup.
#[derive(Debug, thiserror::Error)]
pub enum ParseError<E> {
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The lookup's own error, kept as the source; its text is not repeated here because it
    /// may carry the id.
    #[error("a patient in the search could not be resolved")]
    Resolve(#[source] E),
}

/// A parameter name fit to quote in an error.
fn quoted(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Splits `s` at every `sep` not escaped by a backslash, refusing an escape R4 does not
/// define (`\\`, `\,`, `\|`, `\$` only). The parts keep their escapes.
fn split_unescaped(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, '\\' | ',' | '|' | '$')) => {}
                _ => return None,
            }
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// Removes R4's search escapes (already validated by [`split_unescaped`]).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The comma-separated values of a parameter, unescaped; each must be non-empty.
fn or_values(name: &str, value: &str) -> Result<Vec<String>, QueryError> {
    let invalid = || QueryError::InvalidValue(quoted(name));
    let parts = split_unescaped(value, ',').ok_or_else(invalid)?;
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid());
    }
    Ok(parts.into_iter().map(unescape).collect())
}

/// A token value: `(Some(system), code)` for `system|code`, `(None, code)` for `code`.
/// An explicit empty system (`|code`) is `Some("")`.
fn tokens(name: &str, value: &str) -> Result<Vec<(Option<String>, String)>, QueryError> {
    let invalid = || QueryError::InvalidValue(quoted(name));
    let parts = split_unescaped(value, ',').ok_or_else(invalid)?;
    parts
        .into_iter()
        .map(|part| {
            let halves = split_unescaped(part, '|').ok_or_else(invalid)?;
            let (system, code) = match halves.as_slice() {
                [code] => (None, unescape(code)),
                [system, code] => (Some(unescape(system)), unescape(code)),
                _ => return Err(invalid()),
            };
            if code.is_empty() {
                return Err(invalid());
            }
            Ok((system, code))
        })
        .collect()
}

/// The date prefixes of R4 search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

fn digits<const N: usize>(b: &[u8]) -> Option<i64> {
    let part = b.get(..N)?;
    part.iter().try_fold(0i64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

fn in_range(v: i64, lo: i64, hi: i64) -> Option<u8> {
    (lo..=hi)
        .contains(&v)
        .then(|| u8::try_from(v).ok())
        .flatten()
}

/// The half-open range `[lo, hi)` (UTC microseconds) a date search value stands for.
fn date_range(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    let year = digits::<4>(b)?;
    if year == 0 {
        return None;
    }
    let midnight = uktime::uk_midnight_of_days;
    match b.len() {
        4 => {
            let lo = midnight(uktime::days_from_civil(year, 1, 1))?;
            let hi = midnight(uktime::days_from_civil(year + 1, 1, 1))?;
            return Some((lo, hi));
        }
        7 if b[4] == b'-' => {
            let month = in_range(digits::<2>(&b[5..])?, 1, 12)?;
            let first = uktime::days_from_civil(year, month, 1);
            let next = first + i64::from(uktime::days_in_month(year, month));
            return Some((midnight(first)?, midnight(next)?));
        }
        _ => {}
    }
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = in_range(digits::<2>(&b[5..])?, 1, 12)?;
    let day = in_range(
        digits::<2>(&b[8..])?,
        1,
        i64::from(uktime::days_in_month(year, month)),
    )?;
    let days = uktime::days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some((midnight(days)?, midnight(days + 1)?));
    }
    // YYYY-MM-DDThh:mm[:ss[.fff...]](Z|±hh:mm)
    if b[10] != b'T' || b.len() < 17 || b[13] != b':' {
        return None;
    }
    let hour = i64::from(in_range(digits::<2>(&b[11..])?, 0, 23)?);
    let minute = i64::from(in_range(digits::<2>(&b[14..])?, 0, 59)?);
    let mut rest = &b[16..];
    let mut second = 0;
    let mut micro = 0;
    let mut width = uktime::US_PER_MINUTE;
    if let Some(r) = rest.strip_prefix(b":") {
        second = i64::from(in_range(digits::<2>(r)?, 0, 59)?);
        rest = &r[2..];
        width = uktime::US_PER_SECOND;
        if let Some(r) = rest.strip_prefix(b".") {
            let n = r.iter().take_while(|d| d.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let mut scale = 100_000;
            for d in &r[..n.min(6)] {
                micro += i64::from(d - b'0') * scale;
                scale /= 10;
            }
            width = 10i64.pow(u32::try_from(6usize.saturating_sub(n)).ok()?);
            rest = &r[n..];
        }
    }
    let offset_seconds = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = in_range(digits::<2>(&[*h1, *h2])?, 0, 14)?;
            let m = in_range(digits::<2>(&[*m1, *m2])?, 0, 59)?;
            let off = i64::from(h) * 3600 + i64::from(m) * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let lo = seconds
        .checked_mul(uktime::US_PER_SECOND)?
        .checked_add(micro)?;
    Some((lo, lo.checked_add(width)?))
}

/// A `date` value: its prefix and range.
fn date_value(value: &str) -> Result<(Prefix, (i64, i64)), QueryError> {
    let invalid = || QueryError::InvalidValue("date".into());
    let b = value.as_bytes();
    let (prefix, rest) = if b.len() >= 2 && b[..2].iter().all(u8::is_ascii_lowercase) {
        let prefix = match &value[..2] {
            "eq" => Prefix::Eq,
            "ge" => Prefix::Ge,
            "gt" => Prefix::Gt,
            "le" => Prefix::Le,
            "lt" => Prefix::Lt,
            other => {
                let prefix = match other {
                    "ne" => "ne",
                    "sa" => "sa",
                    "eb" => "eb",
                    "ap" => "ap",
                    _ => return Err(invalid()),
                };
                return Err(QueryError::UnsupportedPrefix {
                    param: "date".into(),
                    prefix,
                });
            }
        };
        (prefix, &value[2..])
    } else {
        (Prefix::Eq, value)
    };
    date_range(rest)
        .map(|range| (prefix, range))
        .ok_or_else(invalid)
}

impl AuditQuery {
    /// Parses FHIR search parameters (name, value pairs, already percent-decoded).
    /// `resolve_patient` maps a Patient id to its audit pseudonym (`Ok(None)`: no such
    /// patient, which matches nothing rather than failing, so a search does not reveal
    /// which ids exist).
    ///
    /// # Errors
    /// [`ParseError::Query`] for an unknown, repeated or invalid parameter;
    /// [`ParseError::Resolve`] when `resolve_patient` fails.
    pub fn parse<E>(
        params: &[(String, String)],
        resolve_patient: impl Fn(&str) -> Result<Option<String>, E>,
    ) -> Result<AuditQuery, ParseError<E>> {
        let mut q = AuditQuery::default();
        let mut seen: BTreeSet<&'static str> = BTreeSet::new();
        for (name, value) in params {
            let name = name.as_str();
            let family: &'static str = match name {
                "patient" => "patient",
                "agent" | "agent-name" | "agent:identifier" => "agent",
                "date" => "date",
                "action" => "action",
                "subtype" => "subtype",
                "type" => "type",
                "outcome" => "outcome",
                "break-glass" => "break-glass",
                "_count" => "_count",
                "_sort" => "_sort",
                _ => return Err(QueryError::UnknownParameter(quoted(name)).into()),
            };
            if family != "date" && !seen.insert(family) {
                return Err(QueryError::Repeated(quoted(name)).into());
            }
            let invalid = || QueryError::InvalidValue(quoted(name));
            match family {
                "patient" => {
                    let mut pseudonyms = Vec::new();
                    for v in or_values(name, value)? {
                        let id = v.strip_prefix("Patient/").unwrap_or(&v);
                        if !fhir::is_fhir_id(id) {
                            return Err(invalid().into());
                        }
                        if let Some(p) = resolve_patient(id).map_err(ParseError::Resolve)?
                            && !pseudonyms.contains(&p)
                        {
                            pseudonyms.push(p);
                        }
                    }
                    q.patients = Some(pseudonyms);
                }
                "agent" => {
                    let mut users = Vec::new();
                    if name == "agent:identifier" {
                        for (system, user) in tokens(name, value)? {
                            // Users live in one system; another names nobody here.
                            if system.as_deref().is_none_or(|s| s == fhir::ID_USER) {
                                users.push(user);
                            }
                        }
                    } else {
                        users = or_values(name, value)?;
                    }
                    q.agents = Some(users);
                }
                "date" => {
                    let (prefix, (lo, hi)) = date_value(value)?;
                    let raise = |from: &mut Option<i64>, v: i64| {
                        *from = Some(from.map_or(v, |f| f.max(v)));
                    };
                    let lower = |to: &mut Option<i64>, v: i64| {
                        *to = Some(to.map_or(v, |t| t.min(v)));
                    };
                    match prefix {
                        Prefix::Eq => {
                            raise(&mut q.from_us, lo);
                            lower(&mut q.to_us, hi);
                        }
                        Prefix::Ge => raise(&mut q.from_us, lo),
                        Prefix::Gt => raise(&mut q.from_us, hi),
                        Prefix::Le => lower(&mut q.to_us, hi),
                        Prefix::Lt => lower(&mut q.to_us, lo),
                    }
                }
                "action" => {
                    let mut actions = Vec::new();
                    for v in or_values(name, value)? {
                        let c = match v.as_str() {
                            "C" => 'C',
                            "R" => 'R',
                            "U" => 'U',
                            "D" => 'D',
                            "E" => 'E',
                            _ => return Err(invalid().into()),
                        };
                        if !actions.contains(&c) {
                            actions.push(c);
                        }
                    }
                    q.actions = Some(actions);
                }
                "subtype" => {
                    q.subtypes = Some(
                        tokens(name, value)?
                            .into_iter()
                            .map(|(system, code)| match system {
                                Some(s) => format!("{s}|{code}"),
                                None => code,
                            })
                            .collect(),
                    );
                }
                "type" => {
                    let mut kinds = Vec::new();
                    for (system, code) in tokens(name, value)? {
                        let sys = system.as_deref();
                        let found: &[EventKind] = match (sys, code.as_str()) {
                            (None | Some(fhir::SYSTEM_AUDIT_EVENT_TYPE), "rest") => {
                                &[EventKind::Access]
                            }
                            (None | Some(fhir::SYSTEM_DICOM), "110114") => {
                                &[EventKind::Login, EventKind::LoginFailed]
                            }
                            (None | Some(fhir::SYSTEM_EVENT_KIND), c) => EventKind::ALL
                                .iter()
                                .position(|k| k.name() == c)
                                .and_then(|i| EventKind::ALL.get(i..=i))
                                .unwrap_or(&[]),
                            _ => &[],
                        };
                        for k in found {
                            if !kinds.contains(k) {
                                kinds.push(*k);
                            }
                        }
                    }
                    q.kinds = Some(kinds);
                }
                "outcome" => {
                    let mut permit = false;
                    let mut deny = false;
                    for v in or_values(name, value)? {
                        match v.as_str() {
                            "0" => permit = true,
                            "4" => deny = true,
                            _ => return Err(invalid().into()),
                        }
                    }
                    q.outcome = match (permit, deny) {
                        (true, false) => Some(Outcome::Permit),
                        (false, true) => Some(Outcome::Deny),
                        _ => None,
                    };
                }
                "break-glass" => {
                    q.break_glass = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid().into()),
                    });
                }
                "_count" => {
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid().into());
                    }
                    q.count = Some(value.parse().map_err(|_| invalid())?);
                }
                _ => {
                    q.sort = Some(match value.as_str() {
                        "date" => SortOrder::OldestFirst,
                        "-date" => SortOrder::NewestFirst,
                        _ => return Err(invalid().into()),
                    });
                }
            }
        }
        Ok(q)
    }

    /// The order to return matches in: `_sort`, newest first by default.
    #[must_use]
    pub fn sort_order(&self) -> SortOrder {
        self.sort.unwrap_or(SortOrder::NewestFirst)
    }

    /// Whether the event satisfies every criterion.
    #[must_use]
    pub fn matches(&self, event: &AuditEvent) -> bool {
        if let Some(ps) = &self.patients
            && !event.patients.iter().any(|p| ps.contains(p))
        {
            return false;
        }
        if let Some(users) = &self.agents
            && !users.contains(&event.user)
        {
            return false;
        }
        if self.from_us.is_some_and(|f| event.at_us < f) {
            return false;
        }
        if self.to_us.is_some_and(|t| event.at_us >= t) {
            return false;
        }
        if let Some(actions) = &self.actions
            && !fhir::action_code(event).is_some_and(|a| actions.contains(&a))
        {
            return false;
        }
        if let Some(tokens) = &self.subtypes {
            let subs = fhir::subtypes(event);
            if !tokens
                .iter()
                .any(|t| subs.iter().any(|c| c.matches_token(t)))
            {
                return false;
            }
        }
        if let Some(kinds) = &self.kinds
            && !kinds.contains(&event.kind)
        {
            return false;
        }
        if self.outcome.is_some_and(|o| o != event.outcome) {
            return false;
        }
        if self.break_glass.is_some_and(|b| b != event.break_glass) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;
    use proptest::prelude::*;
    use std::convert::Infallible;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve(id: &str) -> Result<Option<String>, Infallible> {
        Ok(match id {
            "pat-1" => Some("p1".to_owned()),
            "pat-2" => Some("p2".to_owned()),
            _ => None,
        })
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<AuditQuery, QueryError> {
        AuditQuery::parse(&params(pairs), resolve).map_err(|e| match e {
            ParseError::Query(q) => q,
            ParseError::Resolve(never) => match never {},
        })
    }

    fn us(y: i64, mo: u8, d: u8, h: i64, mi: i64, s: i64) -> i64 {
        (uktime::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
            * uktime::US_PER_SECOND
    }

    #[test]
    fn empty_search_matches_everything() {
        let q = parse(&[]).unwrap();
        assert_eq!(q, AuditQuery::default());
        assert!(q.matches(&sample()));
        assert_eq!(q.sort_order(), SortOrder::NewestFirst);
    }

    #[test]
    fn patients_resolve_through_the_caller() {
        let q = parse(&[("patient", "Patient/pat-1,pat-2,pat-2")]).unwrap();
        assert_eq!(q.patients, Some(vec!["p1".to_owned(), "p2".to_owned()]));
        assert!(q.matches(&sample()));
        let q = parse(&[("patient", "pat-2")]).unwrap();
        assert!(!q.matches(&sample()));
        // Unknown ids match nothing; they are not an error.
        let q = parse(&[("patient", "nobody")]).unwrap();
        assert_eq!(q.patients, Some(vec![]));
        assert!(!q.matches(&sample()));
        for bad in ["", "Practitioner/x", "Patient/", "a b", "pat-1,", "x\\y"] {
            assert_eq!(
                parse(&[("patient", bad)]),
                Err(QueryError::InvalidValue("patient".into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resolution_errors_are_passed_through_without_the_id() {
        #[derive(Debug, thiserror::Error)]
        #[error("directory unavailable")]
        struct Down;
        let err = AuditQuery::parse(&params(&[("patient", "9990000018")]), |_| {
            Err::<Option<String>, _>(Down)
        })
        .unwrap_err();
        assert!(matches!(err, ParseError::Resolve(Down)));
        assert!(!err.to_string().contains("9990000018"));
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some("directory unavailable".into())
        );
    }

    #[test]
    fn agents() {
        for name in ["agent", "agent-name"] {
            let q = parse(&[(name, "dr.jones,nurse\\,odd")]).unwrap();
            assert_eq!(
                q.agents,
                Some(vec!["dr.jones".to_owned(), "nurse,odd".to_owned()])
            );
            assert!(q.matches(&sample()));
        }
        let q = parse(&[(
            "agent:identifier",
            "https://caldicott.nhs.uk/Id/user|dr.jones",
        )])
        .unwrap();
        assert!(q.matches(&sample()));
        let q = parse(&[("agent:identifier", "https://elsewhere|dr.jones")]).unwrap();
        assert_eq!(q.agents, Some(vec![]));
        assert!(!q.matches(&sample()));
        let q = parse(&[("agent", "DR.JONES")]).unwrap();
        assert!(!q.matches(&sample()), "user names are exact");
        assert_eq!(
            parse(&[("agent", "a"), ("agent-name", "b")]),
            Err(QueryError::Repeated("agent-name".into()))
        );
    }

    #[test]
    fn dates_with_prefixes_and_precision() {
        // sample() is 2025-11-29T07:06:40Z (GMT, so UK local is the same).
        let at = sample().at_us;
        let yes = |v: &str| parse(&[("date", v)]).unwrap().matches(&sample());
        for v in [
            "2025",
            "2025-11",
            "2025-11-29",
            "2025-11-29T07:06Z",
            "2025-11-29T07:06:40Z",
            "2025-11-29T07:06:40.0Z",
            "2025-11-29T07:06:40.000000Z",
            "2025-11-29T08:06:40+01:00",
            "eq2025-11-29",
            "ge2025-11-29",
            "le2025-11-29",
            "gt2025-11-28",
            "lt2025-11-30",
            "ge2025-11-29T07:06:40Z",
            "lt2025-11-29T07:06:41Z",
            "gt2025-11-29T07:06:39Z",
            "le2025-11-29T07:06:40Z",
        ] {
            assert!(yes(v), "{v} should match");
        }
        for v in [
            "2024",
            "2025-10",
            "2025-11-28",
            "2025-11-29T07:05Z",
            "2025-11-29T07:06:41Z",
            "2025-11-29T07:06:40.1Z",
            "gt2025-11-29",
            "lt2025-11-29",
            "gt2025-11-29T07:06:40Z",
            "lt2025-11-29T07:06:40Z",
            "ge2025-11-30",
            "le2025-11-28",
        ] {
            assert!(!yes(v), "{v} should not match");
        }
        // Repeated dates are ANDed into one interval.
        let q = parse(&[("date", "ge2025-11-01"), ("date", "lt2025-12-01")]).unwrap();
        assert_eq!(q.from_us, Some(us(2025, 11, 1, 0, 0, 0)));
        assert_eq!(q.to_us, Some(us(2025, 12, 1, 0, 0, 0)));
        assert!(q.matches(&sample()));
        let q = parse(&[("date", "ge2025-11-01"), ("date", "ge2025-11-30")]).unwrap();
        assert!(!q.matches(&sample()));
        let mut e = sample();
        e.at_us = at + uktime::US_PER_DAY;
        assert!(!parse(&[("date", "2025-11-29")]).unwrap().matches(&e));
    }

    #[test]
    fn partial_dates_are_uk_local() {
        // 1 July 2025 in the UK runs from 23:00 UTC on 30 June to 23:00 UTC on 1 July.
        let q = parse(&[("date", "2025-07-01")]).unwrap();
        assert_eq!(q.from_us, Some(us(2025, 6, 30, 23, 0, 0)));
        assert_eq!(q.to_us, Some(us(2025, 7, 1, 23, 0, 0)));
        // July: from 23:00 UTC 30 June to 23:00 UTC 31 July.
        let q = parse(&[("date", "2025-07")]).unwrap();
        assert_eq!(q.from_us, Some(us(2025, 6, 30, 23, 0, 0)));
        assert_eq!(q.to_us, Some(us(2025, 7, 31, 23, 0, 0)));
        // A year starts and ends in GMT.
        let q = parse(&[("date", "2025")]).unwrap();
        assert_eq!(q.from_us, Some(us(2025, 1, 1, 0, 0, 0)));
        assert_eq!(q.to_us, Some(us(2026, 1, 1, 0, 0, 0)));
        // The short day in March is 23 hours long.
        let q = parse(&[("date", "2025-03-30")]).unwrap();
        assert_eq!(
            q.to_us.unwrap() - q.from_us.unwrap(),
            23 * uktime::US_PER_HOUR
        );
    }

    #[test]
    fn bad_dates_and_prefixes() {
        for bad in [
            "",
            "25",
            "2025-13",
            "2025-02-29",
            "2025-11-31",
            "0000",
            "2025-11-29T07:06",
            "2025-11-29T24:00Z",
            "2025-11-29T07:60Z",
            "2025-11-29T07:06:60Z",
            "2025-11-29T07:06:40.Z",
            "2025-11-29T07:06:40+15:00",
            "2025-11-29T07:06:40+01",
            "2025-11-29 07:06:40Z",
            "2025-11-29,2025-11-30",
            "xx2025",
            "EQ2025",
            "2025-1-01",
            "２０２５",
        ] {
            assert_eq!(
                parse(&[("date", bad)]),
                Err(QueryError::InvalidValue("date".into())),
                "{bad:?}"
            );
        }
        for prefix in ["ne", "sa", "eb", "ap"] {
            assert_eq!(
                parse(&[("date", &format!("{prefix}2025"))]),
                Err(QueryError::UnsupportedPrefix {
                    param: "date".into(),
                    prefix
                })
            );
        }
        assert!(parse(&[("date", "2024-02-29")]).is_ok());
        assert!(parse(&[("date", "2025-11-29T07:06:40.1234567Z")]).is_ok());
    }

    #[test]
    fn actions_subtypes_types_outcomes() {
        let e = sample(); // a permitted read
        let q = |pairs: &[(&str, &str)]| parse(pairs).unwrap().matches(&e);
        assert!(q(&[("action", "C,R")]));
        assert!(!q(&[("action", "E")]));
        assert_eq!(
            parse(&[("action", "X")]),
            Err(QueryError::InvalidValue("action".into()))
        );
        assert_eq!(
            parse(&[("action", "r")]),
            Err(QueryError::InvalidValue("action".into()))
        );
        assert!(q(&[("subtype", "read")]));
        assert!(q(&[(
            "subtype",
            "http://hl7.org/fhir/restful-interaction|read"
        )]));
        assert!(!q(&[(
            "subtype",
            "https://caldicott.nhs.uk/CodeSystem/audit-action|read"
        )]));
        assert!(!q(&[("subtype", "|read")]));
        assert!(q(&[("subtype", "create,read")]));
        assert!(q(&[("type", "rest")]));
        assert!(q(&[(
            "type",
            "http://terminology.hl7.org/CodeSystem/audit-event-type|rest"
        )]));
        assert!(q(&[("type", "access")]));
        assert!(!q(&[("type", "110114")]));
        assert!(!q(&[("type", "nonsense")]));
        assert_eq!(parse(&[("type", "nonsense")]).unwrap().kinds, Some(vec![]));
        assert_eq!(
            parse(&[(
                "type",
                "http://dicom.nema.org/resources/ontology/DCM|110114"
            )])
            .unwrap()
            .kinds,
            Some(vec![EventKind::Login, EventKind::LoginFailed])
        );
        assert!(q(&[("outcome", "0")]));
        assert!(!q(&[("outcome", "4")]));
        assert!(q(&[("outcome", "0,4")]));
        for bad in ["8", "12", "permit", ""] {
            assert_eq!(
                parse(&[("outcome", bad)]),
                Err(QueryError::InvalidValue("outcome".into()))
            );
        }
        assert!(q(&[("break-glass", "false")]));
        assert!(!q(&[("break-glass", "true")]));
        assert_eq!(
            parse(&[("break-glass", "yes")]),
            Err(QueryError::InvalidValue("break-glass".into()))
        );

        let mut export = sample();
        export.action = "export".into();
        let m = |v: &str| parse(&[("subtype", v)]).unwrap().matches(&export);
        assert!(m("operation"));
        assert!(m("export"));
        assert!(m("https://caldicott.nhs.uk/CodeSystem/audit-action|export"));
        assert!(!m("read"));

        let mut denied = sample();
        denied.outcome = Outcome::Deny;
        denied.break_glass = true;
        assert!(
            parse(&[("outcome", "4"), ("break-glass", "true")])
                .unwrap()
                .matches(&denied)
        );
    }

    #[test]
    fn count_and_sort() {
        let q = parse(&[("_count", "50"), ("_sort", "date")]).unwrap();
        assert_eq!(q.count, Some(50));
        assert_eq!(q.sort_order(), SortOrder::OldestFirst);
        assert_eq!(parse(&[("_count", "0")]).unwrap().count, Some(0));
        assert_eq!(
            parse(&[("_sort", "-date")]).unwrap().sort,
            Some(SortOrder::NewestFirst)
        );
        for bad in ["-1", "+5", "", "1e3", "99999999999"] {
            assert_eq!(
                parse(&[("_count", bad)]),
                Err(QueryError::InvalidValue("_count".into()))
            );
        }
        for bad in ["_lastUpdated", "date,-date", "agent", ""] {
            assert_eq!(
                parse(&[("_sort", bad)]),
                Err(QueryError::InvalidValue("_sort".into()))
            );
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused_by_name() {
        assert_eq!(
            parse(&[("entity", "x")]),
            Err(QueryError::UnknownParameter("entity".into()))
        );
        assert_eq!(
            parse(&[("date:missing", "true")]),
            Err(QueryError::UnknownParameter("date:missing".into()))
        );
        assert_eq!(
            parse(&[("_format", "json")]),
            Err(QueryError::UnknownParameter("_format".into()))
        );
        assert_eq!(
            parse(&[("action", "R"), ("action", "C")]),
            Err(QueryError::Repeated("action".into()))
        );
        let long = "x".repeat(500);
        let err = parse(&[(&format!("<script>{long}"), "1")]).unwrap_err();
        let QueryError::UnknownParameter(quoted) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(quoted.chars().count(), 64);
        assert!(quoted.starts_with("?script?"));
        assert!(!err.to_string().contains('<'));
    }

    #[test]
    fn errors_never_echo_values() {
        let secret = "9990000018<Smith>";
        for name in [
            "patient",
            "agent:identifier",
            "date",
            "action",
            "subtype",
            "type",
            "outcome",
            "break-glass",
            "_count",
            "_sort",
        ] {
            let value = format!("{secret}\\q");
            if let Err(e) = parse(&[(name, &value)]) {
                assert!(!e.to_string().contains("9990000018"), "{name}: {e}");
                assert!(!format!("{e:?}").contains("9990000018"), "{name}: {e:?}");
            }
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(split_unescaped("a,b\\,c", ','), Some(vec!["a", "b\\,c"]));
        assert_eq!(split_unescaped("a\\", ','), None);
        assert_eq!(split_unescaped("a\\x", ','), None);
        assert_eq!(unescape("b\\,c\\\\d\\|e\\$"), "b,c\\d|e$");
        assert_eq!(
            tokens("t", "s|c,d").unwrap(),
            vec![(Some("s".into()), "c".into()), (None, "d".into())]
        );
        assert!(tokens("t", "a|b|c").is_err());
        assert!(tokens("t", "s|").is_err());
        assert_eq!(
            tokens("t", "s\\|x|c").unwrap(),
            vec![(Some("s|x".into()), "c".into())]
        );
    }

    proptest! {
        #[test]
        fn eq_at_every_precision_contains_the_instant(at in -2_000_000_000_000_000i64..4_000_000_000_000_000) {
            let t = uktime::utc(at);
            let local = uktime::uk_local(at);
            let date = format!("{:04}-{:02}-{:02}", local.year, local.month, local.day);
            let values = [
                format!("{:04}", local.year),
                format!("{:04}-{:02}", local.year, local.month),
                date,
                format!("{:04}-{:02}-{:02}T{:02}:{:02}Z", t.year, t.month, t.day, t.hour, t.minute),
                format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year, t.month, t.day, t.hour, t.minute, t.second),
                format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", t.year, t.month, t.day, t.hour, t.minute, t.second, t.micro),
            ];
            let mut e = sample();
            e.at_us = at;
            for v in &values {
                let q = parse(&[("date", v)]).unwrap();
                prop_assert!(q.matches(&e), "{} should contain {}", v, at);
                // ge/le of the same value also contain it; gt/lt do not.
                let with_prefix = format!("ge{v}");
                prop_assert!(parse(&[("date", &with_prefix)]).unwrap().matches(&e));
                let with_prefix = format!("le{v}");
                prop_assert!(parse(&[("date", &with_prefix)]).unwrap().matches(&e));
                let with_prefix = format!("gt{v}");
                prop_assert!(!parse(&[("date", &with_prefix)]).unwrap().matches(&e));
                let with_prefix = format!("lt{v}");
                prop_assert!(!parse(&[("date", &with_prefix)]).unwrap().matches(&e));
            }
        }

        #[test]
        fn arbitrary_input_never_panics_or_echoes(
            name in "\\PC{0,12}|patient|date|agent|type|subtype|action|outcome|_count|_sort",
            value in "\\PC{0,24}",
        ) {
            let marker = format!("{value}§§");
            if let Err(e) = parse(&[(&name, &marker)]) {
                prop_assert!(!e.to_string().contains("§§"));
            }
        }
    }
}
