//! ODS (Organisation Data Service) organisation codes, e.g. `A81001` for a GP practice or
//! `RR8` for an NHS trust.

use std::fmt;

/// Why a string is not an ODS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OdsCodeError {
    /// ODS organisation codes are 3 to 10 letters and digits.
    #[error("an ODS code is 3 to 10 letters and digits (for example A81001 or RR8)")]
    Format,
}

/// A well-formed ODS organisation code, normalised to upper case.
///
/// Invariant: 3–10 ASCII characters, each `A-Z` or `0-9`. The code's existence in the ODS
/// directory is not checked (Caldicott runs without the network).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct OdsCode(String);

impl OdsCode {
    /// Parses and upper-cases an ODS code.
    pub fn parse(input: &str) -> Result<Self, OdsCodeError> {
        let s = input.trim();
        if !(3..=10).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(OdsCodeError::Format);
        }
        Ok(Self(s.to_ascii_uppercase()))
    }

    /// The code as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for OdsCode {
    type Err = OdsCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for OdsCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OdsCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(OdsCode::parse("a81001").unwrap().as_str(), "A81001");
        assert_eq!(OdsCode::parse("RR8").unwrap().as_str(), "RR8");
        assert_eq!(OdsCode::parse("8HE13").unwrap().as_str(), "8HE13");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "AB",
            "A81001XXXXX",
            "A8-001",
            "A8 001",
            "Ä81001",
            "A81001\0",
        ] {
            assert_eq!(OdsCode::parse(bad), Err(OdsCodeError::Format), "{bad:?}");
        }
    }
}
