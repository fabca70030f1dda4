//! A search URL's parameters, parsed and checked against the R4 definitions.
//!
//! [`parse`] takes the URL-decoded `(key, value)` pairs of a search in URL order and
//! returns a [`Query`]: the filtering parameters ([`ParamQuery`], each typed by its
//! definition) and the result parameters ([`Control`]). The rules, from the R4 search page
//! (<https://hl7.org/fhir/R4/search.html>):
//!
//! - a key is `code` or `code:modifier`; a repeated key is ANDed (two [`ParamQuery`]s);
//! - a value is a comma-separated list of alternatives (ORed); `\,` is a literal comma,
//!   `\|` a literal bar and `\$` a literal dollar, `\\` a backslash;
//! - a value that is entirely empty is ignored (the parameter is dropped), as R5 makes
//!   explicit; an empty alternative inside a list (`a,,b`) is an error;
//! - prefixes (`eq ne gt lt ge le sa eb ap`) are only read on date, number and quantity
//!   parameters;
//! - chained parameters (`subject.name`), reverse chaining (`_has`), composite and special
//!   parameters, and the parameters whose semantics the specification leaves to the server
//!   (`_text`, `_content`, `_query`, `_list`, `_filter`) are refused as
//!   [`QueryError::Unsupported`], so that a client never gets results filtered by less than
//!   it asked for.
//!
//! Errors name the parameter at fault and never echo a value (a value may be an NHS
//! number); a key that does not look like a parameter name is not echoed either. Nothing
//! here panics, whatever the input: lengths and counts are capped by [`MAX_VALUE_LEN`],
//! [`MAX_PARAMS`] and [`MAX_OR_VALUES`].
//!
//! Dates are read by hand (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm[:ss[.f+]]`
//! with `Z`, `±hh:mm` or no zone, which means UTC) into the half-open microsecond range
//! their precision implies: proleptic Gregorian arithmetic, years 0001–9999. Decimals are
//! read exactly into [`ExactDecimal`] (mantissa × 10^exponent, as written), never through
//! `f64`.

use std::cmp::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::DateRange;
use crate::definitions::{self, SearchParamDef, SearchParamType};

/// The largest page a search may ask for; a larger `_count` is lowered to it.
pub const MAX_COUNT: usize = 1000;
/// The most `(key, value)` pairs a search may have (result parameters included).
pub const MAX_PARAMS: usize = 100;
/// The most comma-separated alternatives one value may have.
pub const MAX_OR_VALUES: usize = 100;
/// The longest value, in bytes (before splitting on commas).
pub const MAX_VALUE_LEN: usize = 1024;

/// Microseconds in a day.
pub(crate) use super::calendar::DAY_US;

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The filters, in URL order; all must hold (AND).
    pub params: Vec<ParamQuery>,
    /// The result parameters (`_count`, `_sort`, `_include`, ...).
    pub control: Control,
}

/// One occurrence of one search parameter: `birthdate=ge1980,lt1950` or `name:exact=Eve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamQuery {
    /// The parameter's code as in the definition (`birthdate`).
    pub code: String,
    pub def: &'static SearchParamDef,
    pub modifier: Option<Modifier>,
    /// The alternatives; a resource matches when any of them does (OR). Empty for
    /// [`Modifier::Missing`], whose value is in the modifier.
    pub values: Vec<QueryValue>,
}

/// A search modifier (`:exact`, `:missing`, `:Patient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modifier {
    /// `:missing=true` (the resource has no value) or `:missing=false` (it has one); any
    /// parameter type.
    Missing(bool),
    /// String: whole value, case- and accent-sensitive.
    Exact,
    /// String: the value anywhere in the string, case- and accent-insensitive.
    Contains,
    /// Token: a text search on the display/text of the coding or identifier type. Its
    /// values are [`QueryValue::String`].
    Text,
    /// Token: the resources that have no matching token (including those with none).
    Not,
    /// Uri: the resource's URI is the value or one of its parent paths.
    Above,
    /// Uri: the resource's URI is the value or lies below it (path segments).
    Below,
    /// Reference: `subject:Patient=123`, the referenced type (one of the parameter's
    /// targets).
    Type(String),
    /// Reference: `:identifier`, matching on `Reference.identifier`. Recognised but
    /// refused by [`parse`] as [`QueryError::Unsupported`]: the values extracted from a
    /// resource ([`super::RefValue`]) do not carry the reference's identifier, so it could
    /// only ever match nothing. [`super::matching::matches`] treats it as matching nothing.
    Identifier,
}

/// The system part of a token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system, or none.
    Any,
    /// `|code`: tokens that have no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// A date, number or quantity comparison prefix; `eq` when none is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Prefix {
    #[default]
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// Starts after.
    Sa,
    /// Ends before.
    Eb,
    /// Approximately.
    Ap,
}

impl Prefix {
    fn parse(s: &str) -> Option<Prefix> {
        Some(match s {
            "eq" => Prefix::Eq,
            "ne" => Prefix::Ne,
            "gt" => Prefix::Gt,
            "lt" => Prefix::Lt,
            "ge" => Prefix::Ge,
            "le" => Prefix::Le,
            "sa" => Prefix::Sa,
            "eb" => Prefix::Eb,
            "ap" => Prefix::Ap,
            _ => return None,
        })
    }
}

/// The value of a reference parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefQuery {
    /// `Patient/123`, `123`, or an absolute URL ending `.../Patient/123`
    /// (`/_history/n` is dropped: any version matches). `rtype` is `None` for a bare id
    /// without a type modifier (any of the parameter's targets). `text` is the value as
    /// written, also compared exactly with references the index cannot split.
    Id {
        rtype: Option<String>,
        id: String,
        text: String,
    },
    /// Anything else (`urn:uuid:...`, `urn:oid:...`, a canonical URL that does not end in
    /// a type and id): compared as an exact string.
    Url(String),
}

/// One alternative of a parameter's value, typed by the parameter's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryValue {
    /// `code`, `|code`, `system|code`, `system|`. `code` is `None` only for `system|` and
    /// `|`.
    Token {
        system: TokenSystem,
        code: Option<String>,
    },
    /// A string parameter's value, or a token's `:text` value.
    String(String),
    /// A date with its prefix. For [`Prefix::Ap`] the range is already the approximate
    /// window (the written range widened on both sides by 10% of its distance from the
    /// time of parsing, at least one day), which a resource's range must overlap.
    Date {
        prefix: Prefix,
        range: DateRange,
    },
    Reference(RefQuery),
    /// `[prefix]value`, `[prefix]value|system|code` or `[prefix]value||code` (system
    /// `None`: the code is compared with the quantity's code or its unit).
    Quantity {
        prefix: Prefix,
        value: ExactDecimal,
        system: Option<String>,
        code: Option<String>,
    },
    Number {
        prefix: Prefix,
        value: ExactDecimal,
    },
    Uri(String),
}

/// The result parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Control {
    /// `_count`, lowered to [`MAX_COUNT`]; `0` asks for the total only.
    pub count: Option<usize>,
    /// `_offset`: how many matches to skip (Caldicott's own paging parameter, written into
    /// the `next`/`previous` links).
    pub offset: usize,
    /// `_sort=-date,name`: the keys in order.
    pub sort: Vec<SortKey>,
    pub summary: Option<Summary>,
    pub total: Option<Total>,
    /// `_include=Observation:subject[:Patient]`.
    pub include: Vec<Include>,
    /// `_revinclude=Observation:subject[:Patient]`.
    pub revinclude: Vec<Include>,
    /// `_elements=identifier,name`: the top-level elements to return.
    pub elements: Vec<String>,
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub code: String,
    pub def: &'static SearchParamDef,
    /// Written with a leading `-`.
    pub descending: bool,
}

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    Count,
    True,
    False,
    Text,
    Data,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

/// One `_include` or `_revinclude`: the resources that `source`'s reference parameter
/// `def` points to (include) or that point to the matches by it (revinclude).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The resource type holding the reference (`Observation` in `Observation:subject`).
    pub source: String,
    /// The reference parameter.
    pub def: &'static SearchParamDef,
    /// The optional third part: only references to this type.
    pub target: Option<String>,
    /// `_include:iterate` (or R3's `:recurse`): applied to included resources as well.
    pub iterate: bool,
}

/// Why a search was refused. Messages name the parameter and never echo its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The resource type is not an R4 resource type.
    #[error("unknown resource type")]
    UnknownResourceType,
    /// No such search parameter on this resource type.
    #[error("unknown search parameter '{code}'")]
    UnknownParameter { code: String },
    /// A modifier that does not apply to this parameter.
    #[error("search parameter '{code}': modifier ':{modifier}' is not valid here")]
    BadModifier { code: String, modifier: String },
    /// A value that cannot be read, or a limit exceeded.
    #[error("search parameter '{code}': {reason}")]
    BadValue { code: String, reason: String },
    /// A feature of FHIR search that Caldicott does not implement.
    #[error("search parameter '{code}': not supported: {reason}")]
    Unsupported { code: String, reason: String },
}

/// A name from the URL, fit to appear in an error: a parameter-like name (letters, digits,
/// `_ - . :`, at most 64 bytes, starting with a letter or `_`) as it is, anything else
/// replaced, so that a value pasted where a key belongs is never echoed.
fn safe_name(s: &str) -> String {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'));
    if ok {
        s.to_owned()
    } else {
        "(unreadable name)".to_owned()
    }
}

fn bad(code: &str, reason: &str) -> QueryError {
    QueryError::BadValue {
        code: safe_name(code),
        reason: reason.to_owned(),
    }
}

fn unsupported(code: &str, reason: &str) -> QueryError {
    QueryError::Unsupported {
        code: safe_name(code),
        reason: reason.to_owned(),
    }
}

fn bad_modifier(code: &str, modifier: &str) -> QueryError {
    QueryError::BadModifier {
        code: safe_name(code),
        modifier: safe_name(modifier),
    }
}

/// Parses a search on `resource_type`. `pairs` are the URL-decoded query pairs in order.
pub fn parse(resource_type: &str, pairs: &[(String, String)]) -> Result<Query, QueryError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    parse_at(resource_type, pairs, now)
}

/// [`parse`] with the current time given (microseconds since the Unix epoch), which only
/// the `ap` prefix on dates uses.
pub fn parse_at(
    resource_type: &str,
    pairs: &[(String, String)],
    now_us: i64,
) -> Result<Query, QueryError> {
    if !definitions::is_resource_type(resource_type) {
        return Err(QueryError::UnknownResourceType);
    }
    if let Some((key, _)) = pairs.get(MAX_PARAMS) {
        return Err(bad(
            key.split(':').next().unwrap_or(""),
            "too many search parameters (at most 100)",
        ));
    }
    let mut q = Query {
        params: Vec::new(),
        control: Control::default(),
    };
    let mut seen = Vec::<&str>::new();
    for (key, value) in pairs {
        let (code, modifier) = match key.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (key.as_str(), None),
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(bad(code, "value too long (at most 1024 bytes)"));
        }
        if key.len() > MAX_VALUE_LEN {
            return Err(bad("", "parameter name too long"));
        }
        match code {
            "_format" | "_pretty" => continue,
            "_count" | "_offset" | "_sort" | "_summary" | "_total" | "_elements" => {
                if let Some(m) = modifier {
                    return Err(bad_modifier(code, m));
                }
                if value.is_empty() {
                    continue;
                }
                if code != "_elements" {
                    if seen.contains(&code) {
                        return Err(bad(code, "given more than once"));
                    }
                    seen.push(code);
                }
                control_param(resource_type, code, value, &mut q.control)?;
                continue;
            }
            "_include" | "_revinclude" => {
                let iterate = match modifier {
                    None => false,
                    Some("iterate" | "recurse") => true,
                    Some(m) => return Err(bad_modifier(code, m)),
                };
                if value.is_empty() {
                    continue;
                }
                let inc = include(resource_type, code, value, iterate)?;
                if code == "_include" {
                    q.control.include.push(inc);
                } else {
                    q.control.revinclude.push(inc);
                }
                continue;
            }
            "_has" => return Err(unsupported(code, "reverse chaining (_has)")),
            "_contained" | "_containedType" | "_filter" | "_list" | "_text" | "_content"
            | "_query" => {
                return Err(unsupported(code, "this parameter is not implemented"));
            }
            _ => {}
        }
        if key.contains('.') {
            return Err(unsupported(
                code.split('.').next().unwrap_or(""),
                "chained parameters",
            ));
        }
        let def = definitions::search_param(resource_type, code).ok_or_else(|| {
            QueryError::UnknownParameter {
                code: safe_name(code),
            }
        })?;
        if let Some(p) = param(def, modifier, value, now_us)? {
            q.params.push(p);
        }
    }
    Ok(q)
}

fn param(
    def: &'static SearchParamDef,
    modifier: Option<&str>,
    value: &str,
    now_us: i64,
) -> Result<Option<ParamQuery>, QueryError> {
    let code = def.code;
    match def.kind {
        SearchParamType::Composite => {
            return Err(unsupported(code, "composite parameters"));
        }
        SearchParamType::Special => return Err(unsupported(code, "special parameters")),
        _ => {}
    }
    if def.expression.is_none() {
        return Err(unsupported(code, "this parameter is not implemented"));
    }
    let modifier = match modifier {
        None => None,
        Some(m) => Some(parse_modifier(def, m)?),
    };
    if value.is_empty() {
        return Ok(None);
    }
    let mut p = ParamQuery {
        code: code.to_owned(),
        def,
        modifier,
        values: Vec::new(),
    };
    if let Some(Modifier::Missing(_)) = p.modifier {
        let b = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(code, ":missing takes true or false")),
        };
        p.modifier = Some(Modifier::Missing(b));
        return Ok(Some(p));
    }
    let parts = split_unescaped(value, ',');
    if parts.len() > MAX_OR_VALUES {
        return Err(bad(code, "too many alternatives (at most 100)"));
    }
    for part in parts {
        if part.is_empty() {
            return Err(bad(code, "empty alternative in a comma-separated list"));
        }
        let v = match def.kind {
            SearchParamType::Token => {
                if p.modifier == Some(Modifier::Text) {
                    QueryValue::String(unescape(part))
                } else {
                    token_value(code, part)?
                }
            }
            SearchParamType::String => QueryValue::String(unescape(part)),
            SearchParamType::Uri => QueryValue::Uri(unescape(part)),
            SearchParamType::Date => {
                let (prefix, rest) = split_prefix(part);
                let range = parse_date(rest).ok_or_else(|| {
                    bad(code, "not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)")
                })?;
                let range = if prefix == Prefix::Ap {
                    approximate(range, now_us)
                } else {
                    range
                };
                QueryValue::Date { prefix, range }
            }
            SearchParamType::Number => {
                let (prefix, rest) = split_prefix(part);
                let value =
                    ExactDecimal::parse(rest).ok_or_else(|| bad(code, "not a decimal number"))?;
                QueryValue::Number { prefix, value }
            }
            SearchParamType::Quantity => quantity_value(code, part)?,
            SearchParamType::Reference => {
                let ty = match &p.modifier {
                    Some(Modifier::Type(t)) => Some(t.as_str()),
                    _ => None,
                };
                QueryValue::Reference(reference_value(code, ty, unescape(part))?)
            }
            SearchParamType::Composite | SearchParamType::Special => {
                return Err(unsupported(code, "this parameter type"));
            }
        };
        p.values.push(v);
    }
    Ok(Some(p))
}

fn parse_modifier(def: &SearchParamDef, m: &str) -> Result<Modifier, QueryError> {
    use SearchParamType as T;
    let code = def.code;
    Ok(match (def.kind, m) {
        (_, "missing") => Modifier::Missing(true),
        (T::String, "exact") => Modifier::Exact,
        (T::String, "contains") => Modifier::Contains,
        (T::Token, "text") => Modifier::Text,
        (T::Token, "not") => Modifier::Not,
        (T::Uri, "above") => Modifier::Above,
        (T::Uri, "below") => Modifier::Below,
        (T::Token | T::Reference, "above" | "below") => {
            return Err(unsupported(code, "subsumption (:above, :below)"));
        }
        (T::Token, "in" | "not-in") => {
            return Err(unsupported(code, "value set modifiers (:in, :not-in)"));
        }
        (T::Token, "of-type") => return Err(unsupported(code, ":of-type")),
        (T::Reference, "identifier") => {
            return Err(unsupported(
                code,
                ":identifier (references are indexed by type and id, not by identifier)",
            ));
        }
        (T::Reference, t) if definitions::is_resource_type(t) => {
            if !def.targets.is_empty() && !def.targets.contains(&t) {
                return Err(bad_modifier(code, m));
            }
            Modifier::Type(t.to_owned())
        }
        _ => return Err(bad_modifier(code, m)),
    })
}

fn token_value(code: &str, part: &str) -> Result<QueryValue, QueryError> {
    let pieces = split_unescaped(part, '|');
    Ok(match pieces.as_slice() {
        [c] => QueryValue::Token {
            system: TokenSystem::Any,
            code: Some(unescape(c)),
        },
        [s, c] => QueryValue::Token {
            system: if s.is_empty() {
                TokenSystem::None
            } else {
                TokenSystem::Is(unescape(s))
            },
            code: if c.is_empty() {
                None
            } else {
                Some(unescape(c))
            },
        },
        _ => return Err(bad(code, "a token is code, system|code, |code or system|")),
    })
}

fn quantity_value(code: &str, part: &str) -> Result<QueryValue, QueryError> {
    let (prefix, rest) = split_prefix(part);
    let pieces = split_unescaped(rest, '|');
    let (num, system, unit) = match pieces.as_slice() {
        [n] => (*n, None, None),
        [n, s, c] => (
            *n,
            Some(unescape(s)).filter(|s| !s.is_empty()),
            Some(unescape(c)).filter(|c| !c.is_empty()),
        ),
        _ => {
            return Err(bad(
                code,
                "a quantity is number, number|system|code or number||code",
            ));
        }
    };
    let value = ExactDecimal::parse(num)
        .ok_or_else(|| bad(code, "the quantity is not a decimal number"))?;
    Ok(QueryValue::Quantity {
        prefix,
        value,
        system,
        code: unit,
    })
}

fn reference_value(code: &str, ty: Option<&str>, text: String) -> Result<RefQuery, QueryError> {
    if let Some((t, id)) = reference_type_id(&text) {
        if ty.is_some_and(|m| m != t) {
            return Err(bad(
                code,
                "the reference's type differs from the type modifier",
            ));
        }
        return Ok(RefQuery::Id {
            rtype: Some(t.to_owned()),
            id: id.to_owned(),
            text: text.clone(),
        });
    }
    if is_valid_id(&text) {
        return Ok(RefQuery::Id {
            rtype: ty.map(str::to_owned),
            id: text.clone(),
            text,
        });
    }
    Ok(RefQuery::Url(text))
}

fn split_prefix(s: &str) -> (Prefix, &str) {
    match s.get(..2).and_then(Prefix::parse) {
        Some(p) => (p, &s[2..]),
        None => (Prefix::Eq, s),
    }
}

/// Splits at each `sep` not escaped by a backslash; the pieces keep their escapes.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// Removes the search escapes `\,` `\|` `\$` `\\`; any other backslash stays as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, ',' | '|' | '$' | '\\')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether `s` is a FHIR logical id: 1–64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

/// The type and id a reference's text names: `Patient/123`, `Patient/123/_history/2`, or an
/// absolute `http(s)` URL ending in either; `None` for anything else (`urn:uuid:...`,
/// `#contained`, a bare id, a URL whose last segments are not a resource type and an id).
/// The version, when given, is dropped.
pub fn reference_type_id(reference: &str) -> Option<(&str, &str)> {
    if reference.contains(['?', '#']) {
        return None;
    }
    let segs: Vec<&str> = reference.split('/').collect();
    let n = segs.len();
    let versioned = n >= 4 && segs[n - 2] == "_history" && is_valid_id(segs[n - 1]);
    let (t, id) = if versioned {
        (segs[n - 4], segs[n - 3])
    } else if n >= 2 {
        (segs[n - 2], segs[n - 1])
    } else {
        return None;
    };
    let relative = n == 2 || (n == 4 && versioned);
    let absolute = reference.starts_with("http://") || reference.starts_with("https://");
    if (relative || absolute) && definitions::is_resource_type(t) && is_valid_id(id) {
        Some((t, id))
    } else {
        None
    }
}

fn control_param(
    resource_type: &str,
    code: &str,
    value: &str,
    c: &mut Control,
) -> Result<(), QueryError> {
    match code {
        "_count" => {
            let n: usize = value
                .parse()
                .map_err(|_| bad(code, "not a non-negative integer"))?;
            c.count = Some(n.min(MAX_COUNT));
        }
        "_offset" => {
            c.offset = value
                .parse()
                .map_err(|_| bad(code, "not a non-negative integer"))?;
        }
        "_summary" => {
            c.summary = Some(match value {
                "count" => Summary::Count,
                "true" => Summary::True,
                "false" => Summary::False,
                "text" => Summary::Text,
                "data" => Summary::Data,
                _ => return Err(bad(code, "one of count, true, false, text, data")),
            });
        }
        "_total" => {
            c.total = Some(match value {
                "none" => Total::None,
                "estimate" => Total::Estimate,
                "accurate" => Total::Accurate,
                _ => return Err(bad(code, "one of none, estimate, accurate")),
            });
        }
        "_sort" => {
            let keys = value.split(',').collect::<Vec<_>>();
            if keys.len() > MAX_OR_VALUES {
                return Err(bad(code, "too many sort keys"));
            }
            for k in keys {
                let (descending, name) = match k.strip_prefix('-') {
                    Some(n) => (true, n),
                    None => (false, k),
                };
                if name.is_empty() {
                    return Err(bad(code, "empty sort key"));
                }
                let def = definitions::search_param(resource_type, name).ok_or_else(|| {
                    QueryError::UnknownParameter {
                        code: safe_name(name),
                    }
                })?;
                if matches!(
                    def.kind,
                    SearchParamType::Composite | SearchParamType::Special
                ) || def.expression.is_none()
                {
                    return Err(unsupported(name, "sorting by this parameter"));
                }
                c.sort.push(SortKey {
                    code: def.code.to_owned(),
                    def,
                    descending,
                });
            }
        }
        "_elements" => {
            let names = value.split(',').collect::<Vec<_>>();
            if names.len() + c.elements.len() > MAX_OR_VALUES {
                return Err(bad(code, "too many elements"));
            }
            for n in names {
                let ok = (1..=64).contains(&n.len())
                    && n.starts_with(|c: char| c.is_ascii_alphabetic())
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
                if !ok {
                    return Err(bad(code, "not an element name"));
                }
                if !c.elements.iter().any(|e| e == n) {
                    c.elements.push(n.to_owned());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn include(
    resource_type: &str,
    code: &str,
    value: &str,
    iterate: bool,
) -> Result<Include, QueryError> {
    if value == "*" {
        return Err(unsupported(
            code,
            "_include=* (name the reference parameter)",
        ));
    }
    let parts: Vec<&str> = value.split(':').collect();
    let (source, name, target) = match parts.as_slice() {
        [s, n] => (*s, *n, None),
        [s, n, t] => (*s, *n, Some(*t)),
        _ => {
            return Err(bad(
                code,
                "expected Type:parameter or Type:parameter:TargetType",
            ));
        }
    };
    if !definitions::is_resource_type(source) {
        return Err(bad(code, "the source is not a resource type"));
    }
    let def = definitions::search_param(source, name)
        .filter(|d| d.kind == SearchParamType::Reference)
        .ok_or_else(|| bad(code, "not a reference parameter of the source type"))?;
    if let Some(t) = target
        && (!definitions::is_resource_type(t)
            || (!def.targets.is_empty() && !def.targets.contains(&t)))
    {
        return Err(bad(
            code,
            "the target type is not a target of the parameter",
        ));
    }
    if !iterate {
        if code == "_include" && source != resource_type {
            return Err(bad(
                code,
                "the source must be the searched type (or use :iterate)",
            ));
        }
        if code == "_revinclude"
            && (target.is_some_and(|t| t != resource_type)
                || (!def.targets.is_empty() && !def.targets.contains(&resource_type)))
        {
            return Err(bad(
                code,
                "the parameter does not refer to the searched type (or use :iterate)",
            ));
        }
    }
    Ok(Include {
        source: source.to_owned(),
        def,
        target: target.map(str::to_owned),
        iterate,
    })
}

// ----------------------------------------------------------------------------------------
// Dates

pub(crate) use super::calendar::{civil_from_days, days_from_civil};

/// Reads a FHIR date or dateTime as a search value into the range its precision implies:
/// `2020` is the year, `2020-03` the month, `2020-03-14T10:00Z` that minute,
/// `...T10:00:05.25+01:00` that hundredth of a second (a fraction finer than microseconds
/// is truncated to a one-microsecond range). No zone means UTC; a space where the zone's
/// sign belongs is read as `+` (a `+` that was form-decoded). `None` when malformed.
pub fn parse_date(s: &str) -> Option<DateRange> {
    super::calendar::date_range(&s.replace(' ', "+"))
}

/// The `ap` window: `range` widened on each side by 10% of its distance from `now`, and at
/// least by one day.
fn approximate(range: DateRange, now: i64) -> DateRange {
    let gap = if now < range.start {
        range.start.saturating_sub(now)
    } else if now >= range.end {
        now.saturating_sub(range.end)
    } else {
        0
    };
    let margin = (gap / 10).max(DAY_US);
    DateRange {
        start: range.start.saturating_sub(margin),
        end: range.end.saturating_add(margin),
    }
}

// ----------------------------------------------------------------------------------------
// Decimals

/// A decimal read exactly: `mantissa × 10^exponent` with the digits as written, so that
/// `100` (100 × 10⁰), `100.00` (10000 × 10⁻²) and `1e2` (1 × 10²) stay apart: the last
/// written digit gives the implicit precision. Equality ([`PartialEq`]) is of the written
/// form; compare values with [`ExactDecimal::cmp_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExactDecimal {
    pub mantissa: i128,
    pub exponent: i32,
}

impl ExactDecimal {
    /// The most significant digits accepted (leading zeros aside), leaving room in `i128`
    /// for the bounds computed from a value.
    pub const MAX_DIGITS: usize = 34;
    /// The largest absolute exponent accepted.
    pub const MAX_EXPONENT: i32 = 100_000;

    /// Reads `-?digits[.digits][(e|E)[+-]digits]`. `None` when malformed, or beyond
    /// [`Self::MAX_DIGITS`] significant digits or [`Self::MAX_EXPONENT`].
    pub fn parse(s: &str) -> Option<ExactDecimal> {
        let (neg, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (num, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num, ""),
        };
        let all_digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
        if int.is_empty()
            || !all_digits(int)
            || !all_digits(frac)
            || (num.contains('.') && frac.is_empty())
        {
            return None;
        }
        let mut e: i64 = 0;
        if let Some(x) = exp {
            let (eneg, ed) = match x.as_bytes().first() {
                Some(b'+') => (false, &x[1..]),
                Some(b'-') => (true, &x[1..]),
                _ => (false, x),
            };
            if ed.is_empty() || ed.len() > 7 || !all_digits(ed) {
                return None;
            }
            let v: i64 = ed.parse().ok()?;
            e = if eneg { -v } else { v };
        }
        let significant = int
            .bytes()
            .chain(frac.bytes())
            .skip_while(|&c| c == b'0')
            .count();
        if significant > Self::MAX_DIGITS {
            return None;
        }
        let mut m: i128 = 0;
        for c in int.bytes().chain(frac.bytes()) {
            m = m.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
        }
        let e = e - i64::try_from(frac.len()).ok()?;
        if e.abs() > i64::from(Self::MAX_EXPONENT) {
            return None;
        }
        Some(ExactDecimal {
            mantissa: if neg { -m } else { m },
            exponent: i32::try_from(e).ok()?,
        })
    }

    /// The same value with trailing zeros moved into the exponent (zero has exponent 0).
    fn normalised(self) -> (i128, i64) {
        let (mut m, mut e) = (self.mantissa, i64::from(self.exponent));
        if m == 0 {
            return (0, 0);
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        (m, e)
    }

    /// Compares the values (`100` equals `100.00` and `1e2`).
    pub fn cmp_value(&self, other: &ExactDecimal) -> Ordering {
        let (a, ea) = self.normalised();
        let (b, eb) = other.normalised();
        match a.signum().cmp(&b.signum()) {
            Ordering::Equal => {}
            o => return o,
        }
        if a == 0 {
            return Ordering::Equal;
        }
        let len = |m: i128| i64::from(m.unsigned_abs().checked_ilog10().unwrap_or(0)) + 1;
        // The position of the leading digit: the larger magnitude wins outright.
        let (ma, mb) = (len(a) + ea, len(b) + eb);
        if ma != mb {
            let o = ma.cmp(&mb);
            return if a > 0 { o } else { o.reverse() };
        }
        // Same magnitude: aligning the exponents shifts by fewer digits than either has.
        let (sa, sb) = if ea > eb {
            (shift(a, ea - eb), Some(b))
        } else {
            (Some(a), shift(b, eb - ea))
        };
        match (sa, sb) {
            (Some(x), Some(y)) => x.cmp(&y),
            // Unreachable with the digit limits; fall back to the magnitudes.
            _ => Ordering::Equal,
        }
    }

    /// The implicit range of the value as written, `[lo, hi)`: half a unit of the last
    /// written digit either side (`100` → `[99.5, 100.5)`, `100.00` →
    /// `[99.995, 100.005)`, `1e2` → `[50, 150)`).
    pub fn precision_bounds(&self) -> (ExactDecimal, ExactDecimal) {
        let m = self.mantissa.saturating_mul(10);
        let e = self.exponent - 1;
        (
            ExactDecimal {
                mantissa: m - 5,
                exponent: e,
            },
            ExactDecimal {
                mantissa: m + 5,
                exponent: e,
            },
        )
    }

    /// `[0.9 v, 1.1 v]` (ordered low, high), the `ap` band of 10%.
    pub fn approx_bounds(&self) -> (ExactDecimal, ExactDecimal) {
        let e = self.exponent - 1;
        let a = ExactDecimal {
            mantissa: self.mantissa.saturating_mul(9),
            exponent: e,
        };
        let b = ExactDecimal {
            mantissa: self.mantissa.saturating_mul(11),
            exponent: e,
        };
        if self.mantissa < 0 { (b, a) } else { (a, b) }
    }
}

fn shift(m: i128, by: i64) -> Option<i128> {
    let by = u32::try_from(by).ok()?;
    m.checked_mul(10i128.checked_pow(by)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn p(rt: &str, q: &[(&str, &str)]) -> Result<Query, QueryError> {
        parse_at(rt, &pairs(q), 1_700_000_000_000_000)
    }

    fn us(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * DAY_US
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in [-800_000, -1, 0, 1, 59, 60, 11_016, 2_932_896] {
            let (y, m) = civil_from_days(d);
            assert!(days_from_civil(y, m, 1) <= d && d < days_from_civil(y, m, 1) + 31);
        }
        assert_eq!(civil_from_days(days_from_civil(2100, 1, 1)), (2100, 1));
        assert_eq!(civil_from_days(days_from_civil(1899, 12, 31)), (1899, 12));
    }

    #[test]
    fn dates() {
        let r = parse_date("2020").unwrap();
        assert_eq!((r.start, r.end), (us(2020, 1, 1), us(2021, 1, 1)));
        let r = parse_date("2020-02").unwrap();
        assert_eq!((r.start, r.end), (us(2020, 2, 1), us(2020, 3, 1)));
        let r = parse_date("2020-12").unwrap();
        assert_eq!(r.end, us(2021, 1, 1));
        let r = parse_date("2020-02-29").unwrap();
        assert_eq!((r.start, r.end), (us(2020, 2, 29), us(2020, 3, 1)));
        assert!(parse_date("2021-02-29").is_none());
        let r = parse_date("2013-01-14T10:00").unwrap();
        assert_eq!(r.start, us(2013, 1, 14) + 10 * 3_600_000_000);
        assert_eq!(r.end - r.start, 60_000_000);
        let r = parse_date("2013-01-14T10:00:05+01:00").unwrap();
        assert_eq!(r.start, us(2013, 1, 14) + 9 * 3_600_000_000 + 5_000_000);
        assert_eq!(r.end - r.start, 1_000_000);
        let r2 = parse_date("2013-01-14T10:00:05 01:00").unwrap();
        assert_eq!(r, r2);
        let r = parse_date("2013-01-14T10:00:05.25Z").unwrap();
        assert_eq!(r.end - r.start, 10_000);
        let r = parse_date("2013-01-14T10:00:05.1234567-05:30").unwrap();
        assert_eq!(r.end - r.start, 1);
        assert_eq!(
            r.start,
            us(2013, 1, 14) + 15 * 3_600_000_000 + 30 * 60_000_000 + 5_123_456
        );
        let r = parse_date("9999-12").unwrap();
        assert_eq!(r.end, us(10_000, 1, 1));
        for bad in [
            "",
            "0000",
            "202",
            "20201",
            "2020-13",
            "2020-00",
            "2020-1",
            "2020-01-32",
            "2020-01-01T",
            "2020-01-01T24:00",
            "2020-01-01T10:60",
            "2020-01-01T10:00:61",
            "2020-01-01T10:00Z1",
            "2020-01-01T10:00+1:00",
            "2020-01-01T10:00+15:00",
            "2020-01-01T10:00:00.",
            "2020-01-01Z",
            "２０２０",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn decimals() {
        let d = |s| ExactDecimal::parse(s).unwrap();
        assert_eq!(
            d("100"),
            ExactDecimal {
                mantissa: 100,
                exponent: 0
            }
        );
        assert_eq!(
            d("100.00"),
            ExactDecimal {
                mantissa: 10_000,
                exponent: -2
            }
        );
        assert_eq!(
            d("1e2"),
            ExactDecimal {
                mantissa: 1,
                exponent: 2
            }
        );
        assert_eq!(
            d("-1.5E-3"),
            ExactDecimal {
                mantissa: -15,
                exponent: -4
            }
        );
        assert_eq!(d("100").cmp_value(&d("1e2")), Ordering::Equal);
        assert_eq!(d("100").cmp_value(&d("100.00")), Ordering::Equal);
        assert_eq!(d("99.5").cmp_value(&d("100")), Ordering::Less);
        assert_eq!(d("-99.5").cmp_value(&d("-100")), Ordering::Greater);
        assert_eq!(d("0").cmp_value(&d("-0.0")), Ordering::Equal);
        assert_eq!(d("1e5").cmp_value(&d("99999.9999")), Ordering::Greater);
        assert_eq!(d("1e-5").cmp_value(&d("0.00001000001")), Ordering::Less);
        assert_eq!(d("-1e100").cmp_value(&d("-1")), Ordering::Less);
        let (lo, hi) = d("100").precision_bounds();
        assert_eq!(lo.cmp_value(&d("99.5")), Ordering::Equal);
        assert_eq!(hi.cmp_value(&d("100.5")), Ordering::Equal);
        let (lo, hi) = d("1e2").precision_bounds();
        assert_eq!(
            (lo.cmp_value(&d("50")), hi.cmp_value(&d("150"))),
            (Ordering::Equal, Ordering::Equal)
        );
        let (lo, hi) = d("-10").approx_bounds();
        assert_eq!(
            (lo.cmp_value(&d("-11")), hi.cmp_value(&d("-9"))),
            (Ordering::Equal, Ordering::Equal)
        );
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "1e",
            "1e+",
            "a",
            "1.2.3",
            "1e99999999",
            "+1",
            " 1",
            "0x10",
        ] {
            assert!(ExactDecimal::parse(bad).is_none(), "{bad}");
        }
        assert!(ExactDecimal::parse(&"9".repeat(35)).is_none());
        let big = ExactDecimal::parse(&"9".repeat(34)).unwrap();
        let (lo, hi) = big.precision_bounds();
        assert_eq!(lo.cmp_value(&big), Ordering::Less);
        assert_eq!(hi.cmp_value(&big), Ordering::Greater);
    }

    #[test]
    fn values_and_modifiers() {
        let q = p(
            "Patient",
            &[
                ("name", "eve,ad\\,am"),
                ("name:exact", "Eve"),
                ("birthdate", "ge1980-05"),
                ("identifier", "https://fhir.nhs.uk/Id/nhs-number|9434765919"),
                ("gender", "|male"),
                ("general-practitioner:Practitioner", "p1"),
                (
                    "organization",
                    "http://x.org/fhir/Organization/o1/_history/3",
                ),
                ("active:missing", "false"),
                ("_format", "json"),
            ],
        )
        .unwrap();
        assert_eq!(q.params.len(), 8);
        assert_eq!(
            q.params[0].values,
            [
                QueryValue::String("eve".into()),
                QueryValue::String("ad,am".into())
            ]
        );
        assert_eq!(q.params[1].modifier, Some(Modifier::Exact));
        assert!(matches!(
            q.params[2].values[0],
            QueryValue::Date { prefix: Prefix::Ge, range } if range.start == us(1980, 5, 1)
        ));
        assert_eq!(
            q.params[3].values[0],
            QueryValue::Token {
                system: TokenSystem::Is("https://fhir.nhs.uk/Id/nhs-number".into()),
                code: Some("9434765919".into())
            }
        );
        assert_eq!(
            q.params[4].values[0],
            QueryValue::Token {
                system: TokenSystem::None,
                code: Some("male".into())
            }
        );
        assert_eq!(
            q.params[5].values[0],
            QueryValue::Reference(RefQuery::Id {
                rtype: Some("Practitioner".into()),
                id: "p1".into(),
                text: "p1".into()
            })
        );
        assert!(matches!(
            &q.params[6].values[0],
            QueryValue::Reference(RefQuery::Id { rtype: Some(t), id, .. }) if t == "Organization" && id == "o1"
        ));
        assert_eq!(q.control, Control::default());
        let q = p("Patient", &[("active:missing", "true"), ("name", "")]).unwrap();
        assert_eq!(q.params.len(), 1);
        assert_eq!(q.params[0].modifier, Some(Modifier::Missing(true)));
        assert!(q.params[0].values.is_empty());

        let q = p(
            "Observation",
            &[
                ("value-quantity", "ap5.4|http://unitsofmeasure.org|mg"),
                ("value-quantity", "5.4||mg"),
                ("code:text", "blood"),
                ("code:not", "a|b,c"),
                ("subject", "urn:uuid:1234"),
            ],
        )
        .unwrap();
        assert_eq!(
            q.params[0].values[0],
            QueryValue::Quantity {
                prefix: Prefix::Ap,
                value: ExactDecimal {
                    mantissa: 54,
                    exponent: -1
                },
                system: Some("http://unitsofmeasure.org".into()),
                code: Some("mg".into())
            }
        );
        assert!(matches!(
            &q.params[1].values[0],
            QueryValue::Quantity { system: None, code: Some(c), .. } if c == "mg"
        ));
        assert_eq!(q.params[2].values, [QueryValue::String("blood".into())]);
        assert_eq!(q.params[3].values.len(), 2);
        assert_eq!(
            q.params[4].values[0],
            QueryValue::Reference(RefQuery::Url("urn:uuid:1234".into()))
        );
        let q = p("ValueSet", &[("url:below", "http://x.org/fhir")]).unwrap();
        assert_eq!(q.params[0].modifier, Some(Modifier::Below));
        let q = p("RiskAssessment", &[("probability", "gt0.8")]).unwrap();
        assert!(matches!(
            q.params[0].values[0],
            QueryValue::Number {
                prefix: Prefix::Gt,
                ..
            }
        ));
    }

    #[test]
    fn approximate_dates_widen_by_a_tenth_of_the_gap() {
        let now = us(2020, 1, 1);
        let q = parse_at("Patient", &pairs(&[("birthdate", "ap2010-01-01")]), now).unwrap();
        let QueryValue::Date {
            prefix: Prefix::Ap,
            range,
        } = q.params[0].values[0]
        else {
            panic!()
        };
        let gap = now - us(2010, 1, 2);
        assert_eq!(range.start, us(2010, 1, 1) - gap / 10);
        assert_eq!(range.end, us(2010, 1, 2) + gap / 10);
        let q = parse_at("Patient", &pairs(&[("birthdate", "ap2020-01-01")]), now).unwrap();
        let QueryValue::Date { range, .. } = q.params[0].values[0] else {
            panic!()
        };
        assert_eq!((range.start, range.end), (us(2019, 12, 31), us(2020, 1, 3)));
    }

    #[test]
    fn control() {
        let q = p(
            "Observation",
            &[
                ("_count", "5000"),
                ("_offset", "40"),
                ("_sort", "-date,_lastUpdated,_id"),
                ("_summary", "count"),
                ("_total", "accurate"),
                ("_include", "Observation:subject:Patient"),
                ("_include:iterate", "Patient:general-practitioner"),
                ("_revinclude", "Provenance:target"),
                ("_elements", "status,code"),
                ("_elements", "code,subject"),
                ("_pretty", "true"),
            ],
        )
        .unwrap();
        let c = &q.control;
        assert_eq!(c.count, Some(MAX_COUNT));
        assert_eq!(c.offset, 40);
        let sort: Vec<_> = c
            .sort
            .iter()
            .map(|k| (k.code.as_str(), k.descending))
            .collect();
        assert_eq!(
            sort,
            [("date", true), ("_lastUpdated", false), ("_id", false)]
        );
        assert_eq!(c.summary, Some(Summary::Count));
        assert_eq!(c.total, Some(Total::Accurate));
        assert_eq!(c.include.len(), 2);
        assert_eq!(c.include[0].target.as_deref(), Some("Patient"));
        assert!(!c.include[0].iterate && c.include[1].iterate);
        assert_eq!(c.revinclude[0].source, "Provenance");
        assert_eq!(c.elements, ["status", "code", "subject"]);
        assert_eq!(
            p("Patient", &[("_count", "0")]).unwrap().control.count,
            Some(0)
        );
    }

    fn err(rt: &str, q: &[(&str, &str)]) -> QueryError {
        p(rt, q).unwrap_err()
    }

    #[test]
    fn errors_name_the_parameter_not_the_value() {
        let nhs = "9434765919";
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("Patient", vec![("nope", nhs)]),
            ("Patient", vec![("name:nope", nhs)]),
            ("Patient", vec![("birthdate", nhs)]),
            ("Patient", vec![("birthdate", "9434-76-59")]),
            ("Patient", vec![("identifier", "a|b|9434765919")]),
            ("Patient", vec![("name", "a,,9434765919")]),
            ("Patient", vec![("general-practitioner.name", nhs)]),
            ("Patient", vec![("_has:Observation:patient:code", nhs)]),
            ("Patient", vec![("_text", nhs)]),
            ("Patient", vec![("active:missing", nhs)]),
            ("Patient", vec![("_count", "9434765919x")]),
            ("Patient", vec![("_count", "-1")]),
            ("Patient", vec![(nhs, "x")]),
            ("Observation", vec![("value-quantity", "9434765919|x")]),
            ("Observation", vec![("code-value-quantity", nhs)]),
            ("Observation", vec![("subject:Patient", "Group/9434765919")]),
            ("Observation", vec![("subject:identifier", nhs)]),
            ("Observation", vec![("subject:Organization", nhs)]),
            ("Observation", vec![("code:in", nhs)]),
            ("Observation", vec![("_include", "*")]),
            ("Observation", vec![("_include", "Patient:organization")]),
            ("Observation", vec![("_include", "Observation:code")]),
            ("Observation", vec![("_sort", "nope")]),
            ("Observation", vec![("_sort", "code-value-quantity")]),
            ("Location", vec![("near", nhs)]),
        ];
        for (rt, q) in cases {
            let e = p(rt, &q).unwrap_err();
            let msg = e.to_string();
            assert!(!msg.contains(nhs), "{msg}");
            assert!(!msg.contains("9434"), "{msg}");
        }
        assert!(
            matches!(err("Patient", &[("nope", "x")]), QueryError::UnknownParameter { code } if code == "nope")
        );
        assert!(matches!(
            err("Patient", &[("name:nope", "x")]),
            QueryError::BadModifier { .. }
        ));
        assert!(
            matches!(err("Patient", &[("birthdate", "x")]), QueryError::BadValue { code, .. } if code == "birthdate")
        );
        assert!(matches!(
            err("Patient", &[("general-practitioner.name", "x")]),
            QueryError::Unsupported { .. }
        ));
        assert!(matches!(
            err("Patient", &[("_has:Observation:patient:code", "x")]),
            QueryError::Unsupported { .. }
        ));
        assert!(matches!(
            err("Observation", &[("code-value-quantity", "x")]),
            QueryError::Unsupported { .. }
        ));
        assert!(matches!(
            err("Observation", &[("_include", "*")]),
            QueryError::Unsupported { .. }
        ));
        assert!(matches!(
            err("Patient", &[("_count", "1"), ("_count", "2")]),
            QueryError::BadValue { .. }
        ));
        assert!(matches!(err("Nope", &[]), QueryError::UnknownResourceType));
        assert!(matches!(
            err("DomainResource", &[]),
            QueryError::UnknownResourceType
        ));
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        assert!(matches!(
            err("Patient", &[("name", &long)]),
            QueryError::BadValue { .. }
        ));
        let many = vec!["a"; MAX_OR_VALUES + 1].join(",");
        assert!(matches!(
            err("Patient", &[("name", &many)]),
            QueryError::BadValue { .. }
        ));
        let ok = vec!["a"; MAX_OR_VALUES].join(",");
        assert!(p("Patient", &[("name", &ok)]).is_ok());
        let q: Vec<_> = (0..=MAX_PARAMS).map(|_| ("name", "a")).collect();
        assert!(matches!(err("Patient", &q), QueryError::BadValue { .. }));
        assert!(p("Patient", &q[..MAX_PARAMS]).is_ok());
    }

    #[test]
    fn escapes() {
        assert_eq!(split_unescaped(r"a\,b,c\\,d", ','), [r"a\,b", r"c\\", "d"]);
        assert_eq!(unescape(r"a\,b\|c\$d\\e\nf\"), "a,b|c$d\\e\\nf\\");
        let q = p("Observation", &[("code", r"s\|1|c\,2")]).unwrap();
        assert_eq!(
            q.params[0].values,
            [QueryValue::Token {
                system: TokenSystem::Is("s|1".into()),
                code: Some("c,2".into())
            }]
        );
    }

    #[test]
    fn references() {
        assert_eq!(reference_type_id("Patient/1"), Some(("Patient", "1")));
        assert_eq!(
            reference_type_id("Patient/1/_history/2"),
            Some(("Patient", "1"))
        );
        assert_eq!(
            reference_type_id("https://a/b/Patient/1"),
            Some(("Patient", "1"))
        );
        assert_eq!(reference_type_id("a/Patient/1"), None);
        assert_eq!(reference_type_id("Nope/1"), None);
        assert_eq!(reference_type_id("urn:uuid:1"), None);
        assert_eq!(reference_type_id("#p1"), None);
        assert_eq!(reference_type_id("1"), None);
        assert_eq!(reference_type_id("Patient/"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(k in "[a-z_:.-]{0,20}|\\PC{0,10}", v in "\\PC{0,40}|[0-9eE.|,\\\\+ :TZ-]{0,30}") {
            for rt in ["Patient", "Observation"] {
                for key in [k.as_str(), "birthdate", "value-quantity", "subject", "code", "name", "_sort", "_include", "_count", "probability", "url:above"] {
                    let _ = parse_at(rt, &[(key.to_owned(), v.clone())], 0);
                }
            }
            let _ = parse_date(&v);
            let _ = ExactDecimal::parse(&v);
        }
    }
}
