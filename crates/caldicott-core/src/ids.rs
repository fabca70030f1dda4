//! FHIR resource types, logical ids and version ids as validated values.

use std::fmt;
use std::num::NonZeroU64;

/// Why a string is not a resource type, id or version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// FHIR resource type names are an upper-case letter followed by letters.
    #[error("a resource type is a letter A-Z followed by up to 63 letters")]
    ResourceType,
    /// FHIR ids are 1–64 characters from `A-Z a-z 0-9 - .` (R4 `id` datatype).
    #[error("a resource id is 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'")]
    ResourceId,
    /// Versions count from 1.
    #[error("a version id is a whole number from 1")]
    Version,
}

/// The name of a FHIR resource type, such as `Patient`.
///
/// Invariant: `[A-Z][A-Za-z]{0,63}`. Whether R4 defines the type is the FHIR layer's
/// business; the vault only needs a safe, bounded name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ResourceType(String);

impl ResourceType {
    /// Validates a resource type name.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        if b.is_empty()
            || b.len() > 64
            || !b[0].is_ascii_uppercase()
            || !b.iter().all(u8::is_ascii_alphabetic)
        {
            return Err(IdError::ResourceType);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A FHIR logical id.
///
/// Invariant: 1–64 characters from `[A-Za-z0-9\-.]`, so it is safe in URLs, file names and
/// log lines. Ids are assigned by Caldicott as random UUIDs, never derived from identifiers.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ResourceId(String);

impl ResourceId {
    /// Validates a logical id.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
        if !ok {
            return Err(IdError::ResourceId);
        }
        Ok(Self(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record version: 1 for the first write, incremented by every update and delete.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VersionId(NonZeroU64);

impl VersionId {
    /// The first version of a record.
    pub const FIRST: Self = Self(NonZeroU64::MIN);

    /// A version from its number; `None` for zero.
    pub fn new(n: u64) -> Option<Self> {
        NonZeroU64::new(n).map(Self)
    }

    /// Parses a decimal version number as found in FHIR `meta.versionId` or `If-Match`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        s.parse::<u64>()
            .ok()
            .and_then(Self::new)
            .ok_or(IdError::Version)
    }

    /// The version number.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The version after this one.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_as_str!(ResourceType, ResourceId);

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types() {
        assert!(ResourceType::new("Patient").is_ok());
        for bad in [
            "",
            "patient",
            "Patient1",
            "Pat ient",
            "Patient;DROP",
            &"A".repeat(65),
        ] {
            assert!(ResourceType::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resource_ids() {
        assert!(ResourceId::new("0b1c-2d.3").is_ok());
        assert!(ResourceId::new(&"a".repeat(64)).is_ok());
        for bad in ["", "a/b", "a b", "é", "a'b", &"a".repeat(65)] {
            assert!(ResourceId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(VersionId::parse("3").unwrap().get(), 3);
        assert_eq!(VersionId::FIRST.next().get(), 2);
        for bad in ["0", "-1", "", "x", "18446744073709551616"] {
            assert!(VersionId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
