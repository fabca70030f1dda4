//! Column transformations applied when a release is written: keyed pseudonyms, per-patient
//! date shifting, top/bottom coding and free-text scrubbing ([`crate::scrub`]).
//!
//! They are attribute kinds of the [`Policy`](crate::Policy) (`kind = "pseudonym"`,
//! `"date-shift"`, `"top-bottom-coded"`, `"free-text"`) with their parameters in the
//! attribute's `transform` table. They are not quasi-identifiers: the search never generalises
//! them, and the released value is the transformed one. [`Transformer::new`] computes and
//! checks everything that can fail (a value that is not a number or a date, a missing key,
//! a pseudonym collision) before a single row is written, so writing cannot fail half-way.
//!
//! The pseudonym and the date offset are HMAC-SHA-256 under one secret key per data-sharing
//! agreement ([`PseudonymKey`]); see `docs/transforms.md` for the construction and what it
//! does and does not protect against.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use caldicott_core::NhsNumber;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::DeidError;
use crate::hierarchy::DateFormat;
use crate::policy::{Attribute, AttributeKind, Policy};
use crate::scrub::{RowContext, Scrubber};
use crate::table::Table;

/// The shortest key accepted: 256 bits, HMAC-SHA-256's full strength.
pub const MIN_KEY_BYTES: usize = 32;
/// Pseudonym length (base32 characters) when the policy gives none: 80 bits.
pub const DEFAULT_PSEUDONYM_LENGTH: usize = 16;
/// Shortest pseudonym accepted (80 bits): see `docs/transforms.md` for the collision bound.
pub const MIN_PSEUDONYM_LENGTH: usize = 16;
/// Longest pseudonym (255 of the HMAC's 256 bits).
pub const MAX_PSEUDONYM_LENGTH: usize = 51;
/// Largest date shift accepted, in days (ten years).
pub const MAX_SHIFT_DAYS: u32 = 3650;

/// Domain separation: the pseudonym and the date offset of one value are independent
/// functions of the key (neither reveals the other). Each label ends in a NUL and contains no
/// other, so no message of one kind is a message of the other.
const PSEUDONYM_LABEL: &[u8] = b"caldicott-deid pseudonym v1\0";
const DATE_SHIFT_LABEL: &[u8] = b"caldicott-deid date-shift v1\0";

/// RFC 4648 base32 alphabet, lower-case.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The secret of one data-sharing agreement, keying pseudonyms and date offsets.
///
/// The raw bytes live only inside aws-lc's HMAC context (which cleanses it when dropped);
/// the copies made while parsing are zeroised. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct PseudonymKey {
    key: hmac::Key,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

impl PseudonymKey {
    /// A key from raw bytes: at least [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DeidError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(DeidError::Key(format!(
                "the pseudonym key has {} bytes; at least {MIN_KEY_BYTES} (256 bits) are needed",
                bytes.len()
            )));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// A key from its text form: hexadecimal, at least 64 digits, surrounding whitespace
    /// ignored. `origin` names where it came from in errors (never the key itself).
    pub fn from_hex(text: &str, origin: &str) -> Result<Self, DeidError> {
        let t = text.trim().as_bytes();
        if !t.len().is_multiple_of(2) || !t.iter().all(u8::is_ascii_hexdigit) {
            return Err(DeidError::Key(format!(
                "{origin}: the pseudonym key must be hexadecimal digits (an even number of them)"
            )));
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        };
        let raw = Zeroizing::new(
            t.chunks(2)
                .map(|p| nibble(p[0]) << 4 | nibble(p[1]))
                .collect::<Vec<u8>>(),
        );
        Self::from_bytes(&raw).map_err(|e| DeidError::Key(format!("{origin}: {e}")))
    }

    /// Reads a key from a file holding its hex form. On Unix the file must not be readable
    /// or writable by group or others (mode 0600 or stricter).
    pub fn from_file(path: &Path) -> Result<Self, DeidError> {
        let meta = std::fs::metadata(path).map_err(|source| DeidError::Io {
            action: "reading pseudonym key",
            path: path.to_path_buf(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(DeidError::Key(format!(
                    "key file {}: mode {mode:o} lets others read it; make it 0600",
                    path.display()
                )));
            }
        }
        let _ = meta;
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| DeidError::Io {
            action: "reading pseudonym key",
            path: path.to_path_buf(),
            source,
        })?);
        let origin = format!("key file {}", path.display());
        let text = std::str::from_utf8(&text)
            .map_err(|_| DeidError::Key(format!("{origin}: not UTF-8 text")))?;
        Self::from_hex(text, &origin)
    }

    /// Reads a key from an environment variable holding its hex form.
    pub fn from_env(name: &str) -> Result<Self, DeidError> {
        let value = Zeroizing::new(std::env::var(name).map_err(|_| {
            DeidError::Key(format!(
                "environment variable {name} (named by the policy as the pseudonym key) is not set or not UTF-8"
            ))
        })?);
        Self::from_hex(&value, &format!("environment variable {name}"))
    }

    /// A fresh random 256-bit key in its hex text form (for a new agreement).
    pub fn generate_hex() -> Result<Zeroizing<String>, DeidError> {
        let mut raw = Zeroizing::new([0u8; MIN_KEY_BYTES]);
        aws_lc_rs::rand::fill(raw.as_mut_slice())
            .map_err(|_| DeidError::Key("the system random generator failed".into()))?;
        let mut hex = Zeroizing::new(String::with_capacity(2 * MIN_KEY_BYTES));
        for b in raw.iter() {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        Ok(hex)
    }

    fn mac(&self, label: &[u8], value: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(label);
        ctx.update(value.as_bytes());
        ctx.sign()
    }

    /// The pseudonym of a value: `length` base32 characters (5 bits each) of
    /// HMAC-SHA-256(key, label ‖ normalised value). See [`normalise`].
    pub fn pseudonym(&self, value: &str, length: usize) -> String {
        let normalised = normalise(value);
        let tag = self.mac(PSEUDONYM_LABEL, &normalised);
        base32(tag.as_ref(), length.min(MAX_PSEUDONYM_LENGTH))
    }

    /// The date offset of a patient, in days: uniform over `-max..=-1` and `1..=max` (never
    /// 0, so no date is released unshifted), from HMAC-SHA-256(key, label ‖ normalised id).
    pub fn date_offset(&self, patient: &str, max_days: u32) -> i32 {
        let max = u64::from(max_days.clamp(1, MAX_SHIFT_DAYS));
        let tag = self.mac(DATE_SHIFT_LABEL, &normalise(patient));
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        // Modulo bias: at most 2 * 3650 / 2^64, negligible.
        let r = u64::from_be_bytes(first) % (2 * max);
        let offset = if r < max {
            -(r as i64 + 1)
        } else {
            (r - max) as i64 + 1
        };
        offset as i32
    }
}

/// How a value is normalised before keyed hashing, so that spellings of one identifier link:
/// surrounding whitespace is trimmed, and a value that is an NHS number written with spaces
/// or hyphens (`943 476 5919`, `943-476-5919`) becomes its ten digits.
pub fn normalise(value: &str) -> Cow<'_, str> {
    let t = value.trim();
    if t.len() <= 14 && t.bytes().any(|c| c == b' ' || c == b'-') {
        let digits: String = t.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if NhsNumber::parse(&digits).is_ok() {
            return Cow::Owned(digits);
        }
    }
    Cow::Borrowed(t)
}

fn base32(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            if out.len() == chars {
                return out;
            }
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    out
}

/// Where the CLI finds the agreement's key. The key itself is never written in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeySource {
    /// An environment variable holding the key in hex.
    Env(String),
    /// A file (mode 0600) holding the key in hex; relative to the policy file's directory.
    File(PathBuf),
}

impl KeySource {
    /// Loads the key. A relative file is resolved against `base` when given.
    pub fn load(&self, base: Option<&Path>) -> Result<PseudonymKey, DeidError> {
        match self {
            KeySource::Env(name) => PseudonymKey::from_env(name),
            KeySource::File(path) => match base {
                Some(dir) if path.is_relative() => PseudonymKey::from_file(&dir.join(path)),
                _ => PseudonymKey::from_file(path),
            },
        }
    }
}

/// The parameters of a transformed attribute: the `transform` table of its policy entry.
/// Which fields apply depends on the kind (see `docs/transforms.md`).
///
/// ```toml
/// [[attribute]]
/// name = "nhs_number"
/// kind = "pseudonym"
/// transform = { key = { env = "CALDICOTT_AGREEMENT_KEY" }, length = 16 }
///
/// [[attribute]]
/// name = "admitted"
/// kind = "date-shift"
/// transform = { patient = "nhs_number", max_days = 30, format = "yyyy-mm-dd" }
///
/// [[attribute]]
/// name = "age"
/// kind = "top-bottom-coded"
/// transform = { bottom = 16, top = 90 }
///
/// [[attribute]]
/// name = "notes"
/// kind = "free-text"
/// transform = { names = ["Smith"], name_columns = ["name"] }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformOptions {
    /// Pseudonym, date-shift: where the CLI reads the agreement key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySource>,
    /// Pseudonym: length in base32 characters (default 16 = 80 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// Date-shift: the column identifying the patient (its value keys the offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Date-shift: offsets are drawn from `-max_days..=-1` and `1..=max_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<u32>,
    /// Date-shift: how the dates are spelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DateFormat>,
    /// Top/bottom coding: values at or below are written `<=bottom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottom: Option<f64>,
    /// Top/bottom coding: values at or above are written `>=top`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<f64>,
    /// Free text: names whose every word is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Free text: columns whose words (in the same row) are removed as names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_columns: Vec<String>,
}

// Thresholds are checked finite by validation, so equality is reflexive.
impl Eq for TransformOptions {}

impl AttributeKind {
    /// Whether the column's released value is computed by a transformation.
    pub fn is_transformed(self) -> bool {
        matches!(
            self,
            AttributeKind::Pseudonym
                | AttributeKind::DateShift
                | AttributeKind::TopBottomCoded
                | AttributeKind::FreeText
        )
    }

    /// Whether the transformation needs the agreement key.
    pub fn is_keyed(self) -> bool {
        matches!(self, AttributeKind::Pseudonym | AttributeKind::DateShift)
    }
}

/// Checks one attribute's `transform` table against its kind (called by
/// [`Policy::validate`]). `all` is every attribute of the policy (for column references and
/// the one-key-per-policy rule).
pub(crate) fn validate_attribute(a: &Attribute, all: &[Attribute]) -> Result<(), DeidError> {
    let invalid = |m: String| {
        Err(DeidError::InvalidPolicy(format!(
            "attribute `{}`: {m}",
            a.name
        )))
    };
    let Some(t) = &a.transform else {
        return match a.kind {
            AttributeKind::DateShift => invalid(
                "a date-shift needs `transform = { patient = \"...\", max_days = N, format = \"yyyy-mm-dd\" }`".into(),
            ),
            AttributeKind::TopBottomCoded => invalid(
                "top/bottom coding needs `transform = { bottom = N, top = M }` (one or both)".into(),
            ),
            _ => Ok(()),
        };
    };
    if !a.kind.is_transformed() {
        return invalid(format!(
            "it is {:?} but has a `transform` table: only pseudonym, date-shift, top-bottom-coded and free-text attributes are transformed",
            a.kind
        ));
    }
    let allowed: &[&str] = match a.kind {
        AttributeKind::Pseudonym => &["key", "length"],
        AttributeKind::DateShift => &["key", "patient", "max_days", "format"],
        AttributeKind::TopBottomCoded => &["bottom", "top"],
        _ => &["names", "name_columns"],
    };
    let given = [
        ("key", t.key.is_some()),
        ("length", t.length.is_some()),
        ("patient", t.patient.is_some()),
        ("max_days", t.max_days.is_some()),
        ("format", t.format.is_some()),
        ("bottom", t.bottom.is_some()),
        ("top", t.top.is_some()),
        ("names", !t.names.is_empty()),
        ("name_columns", !t.name_columns.is_empty()),
    ];
    if let Some((field, _)) = given.iter().find(|(f, g)| *g && !allowed.contains(f)) {
        return invalid(format!(
            "`{field}` does not apply to kind {:?} (it takes {})",
            a.kind,
            allowed.join(", ")
        ));
    }
    let column = |name: &str| all.iter().find(|b| b.name == name);
    match a.kind {
        AttributeKind::Pseudonym => {
            if let Some(len) = t.length
                && !(MIN_PSEUDONYM_LENGTH..=MAX_PSEUDONYM_LENGTH).contains(&len)
            {
                return invalid(format!(
                    "pseudonym length {len} must be between {MIN_PSEUDONYM_LENGTH} and {MAX_PSEUDONYM_LENGTH} base32 characters"
                ));
            }
        }
        AttributeKind::DateShift => {
            let Some(patient) = &t.patient else {
                return invalid(
                    "a date-shift needs `patient`, the column identifying the patient".into(),
                );
            };
            match column(patient) {
                None => {
                    return invalid(format!(
                        "its patient column `{patient}` is not an attribute of the policy"
                    ));
                }
                Some(p)
                    if p.kind == AttributeKind::FreeText || p.kind == AttributeKind::DateShift =>
                {
                    return invalid(format!(
                        "its patient column `{patient}` is {:?}: name the column that identifies the patient (an identifier or pseudonym)",
                        p.kind
                    ));
                }
                Some(_) => {}
            }
            match t.max_days {
                Some(d) if (1..=MAX_SHIFT_DAYS).contains(&d) => {}
                _ => {
                    return invalid(format!(
                        "a date-shift needs `max_days` between 1 and {MAX_SHIFT_DAYS}"
                    ));
                }
            }
            if t.format.is_none() {
                return invalid(
                    "a date-shift needs `format`: \"yyyy-mm-dd\" or \"dd/mm/yyyy\"".into(),
                );
            }
        }
        AttributeKind::TopBottomCoded => {
            if t.bottom.is_none() && t.top.is_none() {
                return invalid("top/bottom coding needs `bottom`, `top` or both".into());
            }
            if t.bottom.is_some_and(|v| !v.is_finite()) || t.top.is_some_and(|v| !v.is_finite()) {
                return invalid("top/bottom coding thresholds must be finite numbers".into());
            }
            if let (Some(b), Some(top)) = (t.bottom, t.top)
                && b >= top
            {
                return invalid(format!("bottom ({b}) must be below top ({top})"));
            }
        }
        _ => {
            for c in &t.name_columns {
                if column(c).is_none() {
                    return invalid(format!(
                        "its name column `{c}` is not an attribute of the policy"
                    ));
                }
            }
        }
    }
    // One key per policy: every keyed attribute that names a source names the same one.
    if a.kind.is_keyed()
        && let Some(source) = &t.key
        && let Some(other) = all.iter().find(|b| {
            b.kind.is_keyed()
                && b.transform
                    .as_ref()
                    .and_then(|bt| bt.key.as_ref())
                    .is_some_and(|k| k != source)
        })
    {
        return invalid(format!(
            "its key source differs from that of `{}`: a policy uses one agreement key",
            other.name
        ));
    }
    Ok(())
}

impl Policy {
    /// The key source named by the policy's keyed attributes, if any.
    pub fn key_source(&self) -> Option<&KeySource> {
        self.attributes
            .iter()
            .filter(|a| a.kind.is_keyed())
            .find_map(|a| a.transform.as_ref().and_then(|t| t.key.as_ref()))
    }

    /// Whether some attribute needs the agreement key.
    pub fn needs_key(&self) -> bool {
        self.attributes.iter().any(|a| a.kind.is_keyed())
    }

    /// Whether a column's values are needed by a transformation of another column (so an
    /// identifier column must still be read): a date-shift's patient column, or any
    /// identifier or pseudonym when a free-text column is scrubbed with the row's values.
    pub fn column_needed_by_transforms(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| match a.kind {
            AttributeKind::DateShift => a
                .transform
                .as_ref()
                .is_some_and(|t| t.patient.as_deref() == Some(name)),
            AttributeKind::FreeText => true,
            _ => false,
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Parses a date in one of the engine's formats to its day number, or names the rule broken
/// (without the value).
pub fn parse_date(value: &str, format: DateFormat) -> Result<i64, String> {
    let b = value.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = value.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (parsed, expected) = match format {
        DateFormat::Iso => (
            (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
                .then(|| Some((digits(0..4)?, digits(5..7)?, digits(8..10)?)))
                .flatten(),
            "YYYY-MM-DD",
        ),
        DateFormat::Uk => (
            (b.len() == 10 && b[2] == b'/' && b[5] == b'/')
                .then(|| Some((digits(6..10)?, digits(3..5)?, digits(0..2)?)))
                .flatten(),
            "DD/MM/YYYY",
        ),
    };
    let Some((year, month, day)) = parsed else {
        return Err(format!("the value is not a date spelled {expected}"));
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if day == 0 || day > days_in_month {
        return Err(format!(
            "the value is spelled {expected} but is not a calendar date"
        ));
    }
    Ok(days_from_civil(year as i32, month, day))
}

/// Formats a day number in a date format, or `None` outside years 0..=9999.
pub fn format_date(days: i64, format: DateFormat) -> Option<String> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(match format {
        DateFormat::Iso => format!("{y:04}-{m:02}-{d:02}"),
        DateFormat::Uk => format!("{d:02}/{m:02}/{y:04}"),
    })
}

/// Shifts a date spelled in `format` by `days`.
pub fn shift_date(value: &str, format: DateFormat, days: i32) -> Result<String, String> {
    let d = parse_date(value, format)?;
    format_date(d + i64::from(days), format)
        .ok_or_else(|| "the shifted date falls outside years 0-9999".to_string())
}

/// Top/bottom coding of one value: at or above `top` → `>=top`, at or below `bottom` →
/// `<=bottom` (thresholds spelled as Rust prints them: `90`, `16.5`), else unchanged. An empty
/// value stays empty; anything else that is not a finite number is refused.
pub fn top_bottom_code<'v>(
    value: &'v str,
    bottom: Option<f64>,
    top: Option<f64>,
) -> Result<Cow<'v, str>, String> {
    let t = value.trim();
    if t.is_empty() {
        return Ok(Cow::Borrowed(value));
    }
    let v: f64 = t
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| "the value is not a number, which top/bottom coding needs".to_string())?;
    if let Some(top) = top
        && v >= top
    {
        return Ok(Cow::Owned(format!(">={top}")));
    }
    if let Some(bottom) = bottom
        && v <= bottom
    {
        return Ok(Cow::Owned(format!("<={bottom}")));
    }
    Ok(Cow::Borrowed(value))
}

/// What is done to one column.
enum ColumnOp {
    /// The output per value code (pseudonyms, coded values).
    PerCode(Vec<Box<str>>),
    /// Per date code the day number (None: empty), per patient code the offset.
    DateShift {
        days: Vec<Option<i64>>,
        offsets: Vec<Option<i32>>,
        patient: usize,
        format: DateFormat,
    },
    /// Free text scrubbed with the row's name and identifier columns.
    FreeText {
        scrubber: Scrubber,
        name_columns: Vec<usize>,
        identifier_columns: Vec<usize>,
    },
}

/// The transformations of a policy, prepared for one table: every value checked and every
/// pseudonym and offset computed, so that [`Transformer::value`] cannot fail.
pub struct Transformer {
    /// One entry per table column; `None` for columns not transformed.
    columns: Vec<Option<ColumnOp>>,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformer")
            .field(
                "columns",
                &self.columns.iter().filter(|c| c.is_some()).count(),
            )
            .finish()
    }
}

impl Transformer {
    /// Prepares the policy's transformations for `table`. `key` is needed when the policy
    /// has a pseudonym or date-shift column. Fails on a missing key, a value that is not a
    /// number (top/bottom coding) or a date (date-shift), a date-shift row whose patient is
    /// empty, or two different values with one pseudonym (see `docs/transforms.md`).
    pub fn new(
        table: &Table,
        policy: &Policy,
        key: Option<&PseudonymKey>,
    ) -> Result<Self, DeidError> {
        // The same checks, in the same order, as `Anonymiser::new`, so either reports first.
        for a in &policy.attributes {
            if table.column_index(&a.name).is_none() {
                return Err(DeidError::UnknownColumn {
                    column: a.name.clone(),
                });
            }
        }
        let mut columns = Vec::with_capacity(table.num_columns());
        // Pseudonym → normalised input, across all pseudonym columns (one key links them).
        let mut seen: HashMap<Box<str>, Box<str>> = HashMap::new();
        for (c, name) in table.header().iter().enumerate() {
            let Some(a) = policy.attribute(name) else {
                return Err(DeidError::UnclassifiedColumn {
                    column: name.clone(),
                });
            };
            let opts = a.transform.clone().unwrap_or_default();
            let col = table.column(c);
            let need_key = || {
                key.ok_or_else(|| DeidError::MissingKey {
                    column: name.clone(),
                })
            };
            let op = match a.kind {
                AttributeKind::Pseudonym => {
                    let key = need_key()?;
                    let length = opts.length.unwrap_or(DEFAULT_PSEUDONYM_LENGTH);
                    let mut out = Vec::with_capacity(col.values.len());
                    for v in &col.values {
                        if v.trim().is_empty() {
                            out.push(Box::from(""));
                            continue;
                        }
                        let p: Box<str> = key.pseudonym(v, length).into();
                        let n: Box<str> = normalise(v).into();
                        if let Some(prev) = seen.get(&p) {
                            if *prev != n {
                                return Err(DeidError::PseudonymCollision {
                                    column: name.clone(),
                                    length,
                                });
                            }
                        } else {
                            seen.insert(p.clone(), n);
                        }
                        out.push(p);
                    }
                    Some(ColumnOp::PerCode(out))
                }
                AttributeKind::TopBottomCoded => {
                    let mut out = Vec::with_capacity(col.values.len());
                    for (code, v) in col.values.iter().enumerate() {
                        let coded = top_bottom_code(v, opts.bottom, opts.top).map_err(|rule| {
                            DeidError::InvalidValue {
                                column: name.clone(),
                                row: col.first_row_of(code as u32) + 1,
                                rule,
                            }
                        })?;
                        out.push(Box::from(coded.as_ref()));
                    }
                    Some(ColumnOp::PerCode(out))
                }
                AttributeKind::DateShift => {
                    let key = need_key()?;
                    let (Some(patient_name), Some(max_days), Some(format)) =
                        (opts.patient.as_deref(), opts.max_days, opts.format)
                    else {
                        return Err(DeidError::InvalidPolicy(format!(
                            "attribute `{name}`: a date-shift needs patient, max_days and format"
                        )));
                    };
                    let patient = table.column_index(patient_name).ok_or_else(|| {
                        DeidError::UnknownColumn {
                            column: patient_name.to_string(),
                        }
                    })?;
                    let mut days = Vec::with_capacity(col.values.len());
                    for (code, v) in col.values.iter().enumerate() {
                        if v.trim().is_empty() {
                            days.push(None);
                            continue;
                        }
                        let d = parse_date(v, format).map_err(|rule| DeidError::InvalidValue {
                            column: name.clone(),
                            row: col.first_row_of(code as u32) + 1,
                            rule,
                        })?;
                        days.push(Some(d));
                    }
                    let pcol = table.column(patient);
                    let offsets: Vec<Option<i32>> = pcol
                        .values
                        .iter()
                        .map(|p| (!p.trim().is_empty()).then(|| key.date_offset(p, max_days)))
                        .collect();
                    // Every row with a date needs a patient, and its shifted date a year.
                    for row in 0..table.num_rows() {
                        let Some(d) = days[col.codes[row] as usize] else {
                            continue;
                        };
                        let rule = match offsets[pcol.codes[row] as usize] {
                            None => Some(format!(
                                "the row has a date but its patient column `{patient_name}` is empty, so no offset can be derived"
                            )),
                            Some(o) if format_date(d + i64::from(o), format).is_none() => {
                                Some("the shifted date falls outside years 0-9999".to_string())
                            }
                            Some(_) => None,
                        };
                        if let Some(rule) = rule {
                            return Err(DeidError::InvalidValue {
                                column: name.clone(),
                                row: row + 1,
                                rule,
                            });
                        }
                    }
                    Some(ColumnOp::DateShift {
                        days,
                        offsets,
                        patient,
                        format,
                    })
                }
                AttributeKind::FreeText => {
                    let index = |n: &String| {
                        table
                            .column_index(n)
                            .ok_or_else(|| DeidError::UnknownColumn { column: n.clone() })
                    };
                    let name_columns = opts
                        .name_columns
                        .iter()
                        .map(index)
                        .collect::<Result<Vec<_>, _>>()?;
                    let identifier_columns = table
                        .header()
                        .iter()
                        .enumerate()
                        .filter(|(_, h)| {
                            policy.attribute(h).is_some_and(|b| {
                                matches!(
                                    b.kind,
                                    AttributeKind::Identifier | AttributeKind::Pseudonym
                                )
                            })
                        })
                        .map(|(i, _)| i)
                        .collect();
                    Some(ColumnOp::FreeText {
                        scrubber: Scrubber::new(&opts.names),
                        name_columns,
                        identifier_columns,
                    })
                }
                _ => None,
            };
            columns.push(op);
        }
        Ok(Self { columns })
    }

    /// Whether the column is transformed.
    pub fn is_transformed(&self, column: usize) -> bool {
        self.columns.get(column).is_some_and(Option::is_some)
    }

    /// The released value of a transformed column at a 0-based row; `None` for a column that
    /// is not transformed.
    pub fn value<'a>(
        &'a self,
        table: &'a Table,
        row: usize,
        column: usize,
    ) -> Option<Cow<'a, str>> {
        let op = self.columns.get(column)?.as_ref()?;
        let code = table.column(column).codes[row] as usize;
        Some(match op {
            ColumnOp::PerCode(out) => Cow::Borrowed(&*out[code]),
            ColumnOp::DateShift {
                days,
                offsets,
                patient,
                format,
            } => match days[code] {
                None => Cow::Borrowed(table.value(row, column)),
                Some(d) => {
                    let offset = offsets[table.column(*patient).codes[row] as usize].unwrap_or(0);
                    // Checked in `new`: every dated row has an offset and a formattable result.
                    Cow::Owned(format_date(d + i64::from(offset), *format).unwrap_or_default())
                }
            },
            ColumnOp::FreeText {
                scrubber,
                name_columns,
                identifier_columns,
            } => {
                let ctx = RowContext {
                    names: name_columns.iter().map(|&c| table.value(row, c)).collect(),
                    identifiers: identifier_columns
                        .iter()
                        .map(|&c| table.value(row, c))
                        .collect(),
                };
                scrubber.scrub(table.value(row, column), &ctx)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> PseudonymKey {
        PseudonymKey::from_bytes(&[byte; 32]).unwrap()
    }

    /// RFC 4231 test case 2 ("Jefe"): checks our use of aws-lc's HMAC-SHA-256 (key shorter
    /// than our minimum, so through the context directly).
    #[test]
    fn hmac_matches_rfc_4231() {
        let k = PseudonymKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
        };
        let tag = k.mac(b"", "what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn base32_is_rfc_4648() {
        // RFC 4648 §10: BASE32("foobar") = "MZXW6YTBOI======" (lower-cased, no padding).
        // Only whole 5-bit groups are emitted (a pseudonym is a prefix of a 256-bit tag).
        assert_eq!(base32(b"foobar", 16), "mzxw6ytbo");
        assert_eq!(base32(b"foobar", 4), "mzxw");
        assert_eq!(base32(&[0xff; 32], 51).len(), 51);
    }

    #[test]
    fn pseudonyms_link_within_a_key_only() {
        let (a, b) = (key(1), key(2));
        let p = a.pseudonym("9434765919", 16);
        assert_eq!(p.len(), 16);
        assert_eq!(p, a.pseudonym(" 943 476 5919 ", 16));
        assert_eq!(p, a.pseudonym("943-476-5919", 16));
        assert_ne!(p, b.pseudonym("9434765919", 16));
        assert_ne!(p, a.pseudonym("9434765920", 16));
        assert!(a.pseudonym("x", 26).starts_with(&a.pseudonym("x", 16)));
    }

    #[test]
    fn keys_parse_and_refuse() {
        assert!(PseudonymKey::from_hex(&"ab".repeat(32), "t").is_ok());
        let short = PseudonymKey::from_hex(&"ab".repeat(31), "t")
            .unwrap_err()
            .to_string();
        assert!(short.contains("at least 32"), "{short}");
        let secret = "zz".repeat(32);
        let bad = PseudonymKey::from_hex(&secret, "env X")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("hexadecimal") && !bad.contains(&secret),
            "{bad}"
        );
        assert_eq!(format!("{:?}", key(1)), "PseudonymKey(<secret>)");
        let hex = PseudonymKey::generate_hex().unwrap();
        assert_eq!(hex.len(), 64);
        assert!(PseudonymKey::from_hex(&hex, "t").is_ok());
    }

    #[test]
    fn date_offsets_are_in_range_and_never_zero() {
        let k = key(7);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let o = k.date_offset(&format!("patient-{i}"), 5);
            assert!((-5..=5).contains(&o) && o != 0, "{o}");
            seen.insert(o);
        }
        assert_eq!(seen.len(), 10, "every offset in ±5 except 0 occurs");
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for d in -800_000..800_000 {
            if d % 97 == 0 {
                let (y, m, day) = civil_from_days(d);
                assert_eq!(days_from_civil(y as i32, m, day), d);
            }
        }
        assert_eq!(
            shift_date("2024-02-28", DateFormat::Iso, 1).unwrap(),
            "2024-02-29"
        );
        assert_eq!(
            shift_date("01/03/2023", DateFormat::Uk, -1).unwrap(),
            "28/02/2023"
        );
        assert_eq!(
            shift_date("31/12/2023", DateFormat::Uk, 1).unwrap(),
            "01/01/2024"
        );
        assert!(shift_date("2023-02-29", DateFormat::Iso, 1).is_err());
        assert!(shift_date("0000-01-01", DateFormat::Iso, -1).is_err());
    }

    #[test]
    fn top_bottom_coding_spelling() {
        let c = |v| top_bottom_code(v, Some(16.0), Some(90.0)).map(Cow::into_owned);
        assert_eq!(c("95").unwrap(), ">=90");
        assert_eq!(c("90").unwrap(), ">=90");
        assert_eq!(c("89.9").unwrap(), "89.9");
        assert_eq!(c("16").unwrap(), "<=16");
        assert_eq!(c("3").unwrap(), "<=16");
        assert_eq!(c("").unwrap(), "");
        assert!(c("ninety").is_err());
        assert!(c("NaN").is_err());
        assert_eq!(top_bottom_code("17", Some(16.5), None).unwrap(), "17");
        assert_eq!(top_bottom_code("16", Some(16.5), None).unwrap(), "<=16.5");
    }
}
