//! The NHS number: ten digits whose last is a modulus-11 check digit (NHS Data Dictionary).

use std::fmt;
use std::str::FromStr;

/// Why a string is not an NHS number. The messages never repeat the input, so they are
/// safe to log and to return to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    /// Not ten digits, optionally grouped 3-3-4 with single spaces.
    #[error("an NHS number is 10 digits, optionally written as 3-3-4 groups separated by spaces")]
    Format,
    /// The weighted sum gives a remainder of 1, which no valid NHS number has.
    #[error("not a valid NHS number: the check digit cannot be computed for these digits")]
    NoCheckDigit,
    /// The tenth digit is not the check digit of the first nine.
    #[error("not a valid NHS number: the check digit does not match")]
    CheckDigitMismatch,
    /// `0000000000` passes the arithmetic but is never issued.
    #[error("not a valid NHS number: all zeros is never issued")]
    AllZeros,
}

/// A validated NHS number, stored as its ten digits.
///
/// Invariant: ten ASCII digits, not all zero, and the tenth is the modulus-11 check digit of
/// the first nine (weights 10 down to 2; `11 - (sum mod 11)`, where 11 means 0 and 10 means
/// the number is invalid).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber([u8; 10]);

impl NhsNumber {
    /// Parses `9434765919` or `943 476 5919`. Surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self, NhsNumberError> {
        let s = input.trim();
        let bytes = s.as_bytes();
        let mut digits = [0u8; 10];
        match bytes.len() {
            10 => digits.copy_from_slice(bytes),
            12 if bytes[3] == b' ' && bytes[7] == b' ' => {
                digits[..3].copy_from_slice(&bytes[..3]);
                digits[3..6].copy_from_slice(&bytes[4..7]);
                digits[6..].copy_from_slice(&bytes[8..]);
            }
            _ => return Err(NhsNumberError::Format),
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(NhsNumberError::Format);
        }
        let check = check_digit(&digits[..9]).ok_or(NhsNumberError::NoCheckDigit)?;
        if digits[9] - b'0' != check {
            return Err(NhsNumberError::CheckDigitMismatch);
        }
        if digits.iter().all(|d| *d == b'0') {
            return Err(NhsNumberError::AllZeros);
        }
        Ok(Self(digits))
    }

    /// Builds a valid NHS number from its first nine digits by appending the check digit.
    /// Returns `None` when those nine digits have no check digit (remainder 1) or are all zero.
    pub fn from_nine_digits(first_nine: u32) -> Option<Self> {
        if first_nine > 999_999_999 {
            return None;
        }
        let mut digits = [b'0'; 10];
        let mut n = first_nine;
        for slot in digits[..9].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let check = check_digit(&digits[..9])?;
        digits[9] = b'0' + check;
        if first_nine == 0 {
            return None;
        }
        Some(Self(digits))
    }

    /// The ten digits, without spaces: the form used in FHIR identifiers and indexes.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// True for the `999 000 0000`–`999 999 9999` range reserved for testing, which is the
    /// only range Caldicott's synthetic data uses.
    pub fn is_test_range(&self) -> bool {
        self.0.starts_with(b"999")
    }
}

/// The modulus-11 check digit of nine ASCII digits, or `None` when there is none.
fn check_digit(first_nine: &[u8]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10u32).rev())
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

impl fmt::Display for NhsNumber {
    /// The 3-3-4 spaced form people read, e.g. `943 476 5919`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        write!(f, "{} {} {}", &s[..3], &s[3..6], &s[6..])
    }
}

impl fmt::Debug for NhsNumber {
    /// Redacted: a patient identifier must not reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

impl FromStr for NhsNumber {
    type Err = NhsNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for NhsNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for NhsNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_valid_numbers() {
        for s in ["9434765919", "943 476 5919", "9000000009", " 900 000 0009 "] {
            assert!(NhsNumber::parse(s).is_ok(), "{s}");
        }
        assert_eq!(
            NhsNumber::parse("943 476 5919").unwrap().as_str(),
            "9434765919"
        );
        assert_eq!(
            NhsNumber::parse("9434765919").unwrap().to_string(),
            "943 476 5919"
        );
    }

    #[test]
    fn rejects_bad_numbers_precisely() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::CheckDigitMismatch)
        );
        assert_eq!(
            NhsNumber::parse("0000000000"),
            Err(NhsNumberError::AllZeros)
        );
        assert_eq!(NhsNumber::parse("943476591"), Err(NhsNumberError::Format));
        assert_eq!(NhsNumber::parse("94347659190"), Err(NhsNumberError::Format));
        assert_eq!(
            NhsNumber::parse("943-476-5919"),
            Err(NhsNumberError::Format)
        );
        assert_eq!(
            NhsNumber::parse("9434 76 5919"),
            Err(NhsNumberError::Format)
        );
        assert_eq!(NhsNumber::parse("94347659１9"), Err(NhsNumberError::Format));
        assert_eq!(NhsNumber::parse("943476591a"), Err(NhsNumberError::Format));
        // 100000001: weighted sum 10 + 2 = 12, remainder 1, so 11 - 1 = 10: no check digit.
        assert_eq!(
            NhsNumber::parse("1000000010"),
            Err(NhsNumberError::NoCheckDigit)
        );
    }

    #[test]
    fn debug_is_redacted() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert!(!format!("{n:?}").contains("5919"));
    }

    #[test]
    fn serde_round_trip_validates() {
        let n: NhsNumber = serde_json::from_str("\"9434765919\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"9434765919\"");
        assert!(serde_json::from_str::<NhsNumber>("\"9434765918\"").is_err());
    }

    /// An independent, deliberately naive statement of the rule from the Data Dictionary.
    fn reference_valid(digits: &[u32; 10]) -> bool {
        let sum: u32 = (0..9).map(|i| digits[i] * (10 - i as u32)).sum();
        let check = 11 - sum % 11;
        let check = if check == 11 { 0 } else { check };
        check != 10 && check == digits[9] && digits.iter().any(|d| *d != 0)
    }

    proptest! {
        #[test]
        fn parse_agrees_with_reference(digits in proptest::array::uniform10(0u32..10)) {
            let s: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
            prop_assert_eq!(NhsNumber::parse(&s).is_ok(), reference_valid(&digits));
        }

        #[test]
        fn generated_numbers_are_valid_and_round_trip(n in 1u32..=999_999_999) {
            if let Some(num) = NhsNumber::from_nine_digits(n) {
                prop_assert_eq!(NhsNumber::parse(num.as_str()), Ok(num));
                prop_assert_eq!(NhsNumber::parse(&num.to_string()), Ok(num));
            }
        }

        #[test]
        fn any_single_digit_change_is_caught(n in 1u32..=999_999_999, pos in 0usize..10, delta in 1u8..10) {
            if let Some(num) = NhsNumber::from_nine_digits(n) {
                let mut b = num.as_str().as_bytes().to_vec();
                b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
                let s = String::from_utf8(b).unwrap();
                prop_assert!(NhsNumber::parse(&s).is_err());
            }
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = NhsNumber::parse(&s);
        }
    }
}
