//! Password policy, after the NCSC's password guidance and NIST SP 800-63B §3.1.1.2.
//!
//! What it asks of a password:
//! - **Length** 12 to 128 characters (Unicode scalar values; spaces count). Length is what
//!   makes a password hard to guess; 128 is generous for passphrases and bounds hashing.
//! - **No composition rules**: no demands for digits, symbols or mixed case, which make
//!   passwords harder to remember and no harder to guess. Any printable character may be
//!   used, spaces too; only control characters are refused.
//! - **Not a commonly used password**, compared case-insensitively against the
//!   49,233 most common passwords of a 10-million-password breach corpus (see
//!   `assets/NOTICE`), nor one of them with only digits, symbols or spaces added at the
//!   start or end (`Monkey2024!`), or with look-alike substitutions (`P@ssw0rd`), nor a
//!   repeated or sequential pattern (`abcabcabcabc`, `123456789012`).
//! - **Not containing the user's own name** (case-insensitively: the whole user name, and
//!   each part of four or more letters or digits of it, ignoring an e-mail domain), nor
//!   the service's name.
//!
//! Errors say what is wrong and never echo the password. There is no expiry rule here:
//! the NCSC advises against forced periodic changes.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most characters a password may have.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Names of this service that a password may not contain.
const SERVICE_NAMES: &[&str] = &["caldicott"];

/// The common-password list: lower-case ASCII, one a line, most common first.
const COMMON_PASSWORDS_TEXT: &str = include_str!("../assets/common-passwords.txt");

/// Entries of the list shorter than this are not looked for inside a longer password
/// (`2024` or `abc` with other characters around them is not a common password).
const MIN_EMBEDDED_ENTRY_CHARS: usize = 4;
/// Longest entry in the list, in characters (checked by a test).
const MAX_ENTRY_CHARS: usize = 20;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS_TEXT.lines().collect());

/// Why a password was refused. The messages are written for the person choosing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("the password is too short: use at least {min} characters")]
    TooShort {
        /// Fewest characters allowed.
        min: usize,
    },
    /// Too long.
    #[error("the password is too long: use at most {max} characters")]
    TooLong {
        /// Most characters allowed.
        max: usize,
    },
    /// Contains a control character (such as a line break or tab).
    #[error("the password contains a control character such as a tab or line break")]
    ControlCharacter,
    /// Contains the user's name.
    #[error("the password contains your user name")]
    ContainsUserName,
    /// Contains the service's name.
    #[error("the password contains the name of this service")]
    ContainsServiceName,
    /// Is one of the commonly used passwords.
    #[error("the password is in a list of commonly used passwords")]
    Common,
    /// Is a commonly used password with small changes.
    #[error(
        "the password is a commonly used password with small changes \
         (look-alike characters, or digits or symbols added at the start or end)"
    )]
    CommonVariant,
    /// Is a repeated or sequential pattern.
    #[error("the password is a repeated or sequential pattern of characters")]
    Pattern,
}

/// Checks a new password for `user_name` against the policy (see the module doc).
///
/// Call it when a password is set or changed, before hashing; not at login.
pub fn check_password(password: &str, user_name: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_CHARS,
        });
    }
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::ControlCharacter);
    }
    let lower = password.to_lowercase();
    if contains_user_name(&lower, user_name) {
        return Err(PasswordError::ContainsUserName);
    }
    if SERVICE_NAMES.iter().any(|name| lower.contains(name)) {
        return Err(PasswordError::ContainsServiceName);
    }
    if COMMON_PASSWORDS.contains(lower.as_str()) {
        return Err(PasswordError::Common);
    }
    if is_common_variant(&lower) {
        return Err(PasswordError::CommonVariant);
    }
    if is_pattern(&lower) {
        return Err(PasswordError::Pattern);
    }
    Ok(())
}

/// Whether `password` is in the common-password list, ignoring case.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// How many passwords the embedded common-password list holds.
pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// `lower` contains the user name, or a part of it of four or more characters.
fn contains_user_name(lower: &str, user_name: &str) -> bool {
    let name = user_name.trim().to_lowercase();
    // jane.smith@nhs.net: the domain is the organisation's, not the person's.
    let local = match name.rsplit_once('@') {
        Some((local, _domain)) if !local.is_empty() => local,
        _ => name.as_str(),
    };
    if local.chars().count() >= 3 && lower.contains(local) {
        return true;
    }
    local
        .split(|c: char| !c.is_alphanumeric())
        .filter(|part| part.chars().count() >= 4)
        .any(|part| lower.contains(part))
}

/// `lower` is a list entry with only non-letters added at either end, or with look-alike
/// characters, or both; or a list entry repeated.
fn is_common_variant(lower: &str) -> bool {
    // Byte offsets of each character, and one past the end.
    let bounds: Vec<usize> = lower
        .char_indices()
        .map(|(i, _)| i)
        .chain([lower.len()])
        .collect();
    let n = bounds.len() - 1;
    let is_letter = |k: usize| {
        lower[bounds[k]..]
            .chars()
            .next()
            .is_some_and(char::is_alphabetic)
    };
    // Every letter must be inside the entry: it starts at or before the first letter and
    // ends at or after the last.
    let first_letter = (0..n).find(|&k| is_letter(k)).unwrap_or(n);
    let last_letter_end = (0..n).rev().find(|&k| is_letter(k)).map_or(0, |k| k + 1);
    for start in 0..=first_letter.min(n) {
        let min_end = last_letter_end.max(start + MIN_EMBEDDED_ENTRY_CHARS);
        let max_end = n.min(start + MAX_ENTRY_CHARS);
        for end in min_end..=max_end {
            let core = &lower[bounds[start]..bounds[end]];
            let padded = start > 0 || end < n;
            if padded && COMMON_PASSWORDS.contains(core) {
                return true;
            }
            if core.chars().any(char::is_alphabetic)
                && deleet(core)
                    .iter()
                    .any(|d| COMMON_PASSWORDS.contains(d.as_str()))
            {
                return true;
            }
        }
    }
    // A list entry said twice or more ("monkeymonkey"), with or without padding.
    let core =
        &lower[bounds[first_letter.min(n)]..bounds[last_letter_end.max(first_letter).min(n)]];
    [lower, core].into_iter().any(|s| {
        repeated_unit(s).is_some_and(|unit| {
            COMMON_PASSWORDS.contains(unit)
                || deleet(unit)
                    .iter()
                    .any(|d| COMMON_PASSWORDS.contains(d.as_str()))
                || is_common_variant(unit)
        })
    })
}

/// `text` with look-alike characters replaced by the letters they stand for; `1`, `!` and
/// `|` may stand for `i` or `l`, so two versions. Empty if nothing was replaced.
fn deleet(text: &str) -> Vec<String> {
    let substitute = |c: char, one: char| match c {
        '@' | '4' => 'a',
        '3' => 'e',
        '0' => 'o',
        '$' | '5' => 's',
        '7' | '+' => 't',
        '1' | '!' | '|' => one,
        other => other,
    };
    let as_i: String = text.chars().map(|c| substitute(c, 'i')).collect();
    if as_i == text {
        return Vec::new();
    }
    let as_l: String = text.chars().map(|c| substitute(c, 'l')).collect();
    if as_l == as_i {
        vec![as_i]
    } else {
        vec![as_i, as_l]
    }
}

/// The shortest unit that `text` is two or more copies of.
fn repeated_unit(text: &str) -> Option<&str> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    (1..=n / 2)
        .filter(|&p| n.is_multiple_of(p))
        .find(|&p| (p..n).all(|k| chars[k] == chars[k - p]))
        .map(|p| {
            let end = text.char_indices().nth(p).map_or(text.len(), |(i, _)| i);
            &text[..end]
        })
}

/// Rows and columns of a UK/US keyboard, for keyboard walks.
const KEYBOARD_WALKS: &[&str] = &[
    "`1234567890-=",
    "qwertyuiop[]",
    "asdfghjkl;'#",
    "1234567890qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/",
    "qazwsxedcrfvtgbyhnujmikolp",
];

/// A short unit repeated (`abcabcabcabc`, `xxxxxxxxxxxx`), a run of consecutive
/// characters up or down (`abcdefghijkl`, `123456789012`, digits wrapping 9 to 0), or a
/// walk along a keyboard's rows or columns (`qwertyuiopasdf`, `1qaz2wsx3edc4rfv`).
fn is_pattern(lower: &str) -> bool {
    if repeated_unit(lower).is_some_and(|unit| unit.chars().count() <= 4) {
        return true;
    }
    let reversed: String = lower.chars().rev().collect();
    if KEYBOARD_WALKS
        .iter()
        .any(|walk| walk.contains(lower) || walk.contains(reversed.as_str()))
    {
        return true;
    }
    let chars: Vec<char> = lower.chars().collect();
    if chars.len() < 2 {
        return false;
    }
    let step = |a: char, b: char| -> Option<i8> {
        let (a, b) = (u32::from(a), u32::from(b));
        let up = |x: u32, y: u32| y == x + 1 || (x == u32::from('9') && y == u32::from('0'));
        if up(a, b) {
            Some(1)
        } else if up(b, a) {
            Some(-1)
        } else {
            None
        }
    };
    let Some(direction) = step(chars[0], chars[1]) else {
        return false;
    };
    chars
        .windows(2)
        .all(|w| step(w[0], w[1]) == Some(direction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_loaded_lower_case_and_bounded() {
        assert_eq!(common_password_count(), 49_233);
        assert_eq!(
            COMMON_PASSWORDS_TEXT.lines().count(),
            49_233,
            "no duplicates"
        );
        for entry in COMMON_PASSWORDS_TEXT.lines() {
            assert!(!entry.is_empty());
            assert!(entry.len() <= MAX_ENTRY_CHARS, "{entry}");
            assert_eq!(entry, entry.to_lowercase());
            assert!(entry.is_ascii() && !entry.contains(char::is_whitespace));
        }
        assert_eq!(COMMON_PASSWORDS_TEXT.lines().next(), Some("123456"));
        assert!(is_common_password("PASSWORD"));
        assert!(is_common_password("Qwertyuiop"));
        assert!(!is_common_password("thistle-harbour-magnet"));
    }

    #[test]
    fn length_bounds() {
        assert_eq!(
            check_password("short pass1", "jane"),
            Err(PasswordError::TooShort { min: 12 })
        );
        assert_eq!(
            check_password("", "jane"),
            Err(PasswordError::TooShort { min: 12 })
        );
        // Characters, not bytes: 11 two-byte characters are still too short.
        assert_eq!(
            check_password(&"é".repeat(11), "jane"),
            Err(PasswordError::TooShort { min: 12 })
        );
        assert_eq!(check_password("thistle harb", "jane"), Ok(()));
        let long = "thistle harbour magnet ".repeat(6);
        assert_eq!(long.chars().count(), 138);
        assert_eq!(
            check_password(&long, "jane"),
            Err(PasswordError::TooLong { max: 128 })
        );
        assert_eq!(check_password(&long[..128], "jane"), Ok(()));
    }

    #[test]
    fn no_composition_rules() {
        // All lower case, no digits, no symbols: fine if long and uncommon.
        for ok in [
            "thistle harbour magnet",
            "correcthorsebatterystaple",
            "purple elephant sandwich",
            "ΚΑΛΗΜΕΡΑ κόσμε πολύ",
            "x7#Kp9!mQ2zR",
            "8372#Tq9!mZ2",
        ] {
            assert_eq!(check_password(ok, "jane.smith@nhs.net"), Ok(()), "{ok}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            check_password("thistle harbour\nmagnet", "jane"),
            Err(PasswordError::ControlCharacter)
        );
        assert_eq!(
            check_password("thistle\tharbour magnet", "jane"),
            Err(PasswordError::ControlCharacter)
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case() {
        for common in [
            "123456789012",
            "qwertyuiopasdfgh",
            "1qaz2wsx3edc",
            "QAZWSXEDCRFV",
        ] {
            let result = check_password(common, "jane");
            assert!(
                matches!(
                    result,
                    Err(PasswordError::Common
                        | PasswordError::CommonVariant
                        | PasswordError::Pattern)
                ),
                "{common}: {result:?}"
            );
        }
        assert_eq!(
            check_password("1Qaz2Wsx3Edc", "jane"),
            Err(PasswordError::Common)
        );
        assert_eq!(
            check_password("LeaveMeAlone", "jane"),
            Err(PasswordError::Common)
        );
    }

    #[test]
    fn simple_variations_of_common_passwords_are_refused() {
        for variant in [
            "Password2024!",
            "monkey123456",
            "!!!dragon!!!",
            "2024-letmein-2024",
            "P@ssw0rd1234",
            "p4$$w0rd2024",
            "L0vely2024!!",
            "monkeymonkey",
            "Summer2024Summer2024",
            "Welcome12345",
            "h0spital1234",
        ] {
            let result = check_password(variant, "jane");
            assert!(
                matches!(
                    result,
                    Err(PasswordError::CommonVariant | PasswordError::Common)
                ),
                "{variant}: {result:?}"
            );
        }
    }

    #[test]
    fn patterns_are_refused() {
        for pattern in [
            "aaaaaaaaaaaa",
            "abcabcabcabc",
            "ab12ab12ab12",
            "abcdefghijklm",
            "zyxwvutsrqpo",
            "345678901234",
            "987654321098",
        ] {
            let result = check_password(pattern, "jane");
            assert!(result.is_err(), "{pattern}: {result:?}");
        }
        assert_eq!(
            check_password("xqzxqzxqzxqz", "jane"),
            Err(PasswordError::Pattern)
        );
        assert_eq!(
            check_password("mnopqrstuvwx", "jane"),
            Err(PasswordError::Pattern)
        );
        assert_eq!(
            check_password("qwertyuiopasdfgh", "jane"),
            Err(PasswordError::Pattern)
        );
        assert_eq!(
            check_password("5tgb6yhn7ujm8ik,", "jane"),
            Err(PasswordError::Pattern)
        );
        assert_eq!(
            check_password("lkjhgfdsapoiu", "jane"),
            Err(PasswordError::Pattern)
        );
    }

    #[test]
    fn the_users_name_is_refused() {
        assert_eq!(
            check_password("JaneSmith is great", "janesmith"),
            Err(PasswordError::ContainsUserName)
        );
        assert_eq!(
            check_password("my name is SMITH ok", "jane.smith@nhs.net"),
            Err(PasswordError::ContainsUserName)
        );
        assert_eq!(
            check_password("jane.smith rules ok", "Jane.Smith@nhs.net"),
            Err(PasswordError::ContainsUserName)
        );
        // Parts of three letters are not looked for, nor the e-mail domain.
        assert_eq!(
            check_password("thistle harbour jan", "jan.oakes@nhs.net"),
            Ok(())
        );
        assert_eq!(
            check_password("nhs thistle harbour", "jane.smith@nhs.net"),
            Ok(())
        );
        // A user name of three characters is looked for whole.
        assert_eq!(
            check_password("thistle bob harbour", "bob"),
            Err(PasswordError::ContainsUserName)
        );
        // An empty or very short user name refuses nothing.
        assert_eq!(check_password("thistle harbour magnet", ""), Ok(()));
        assert_eq!(check_password("thistle harbour magnet", "t"), Ok(()));
    }

    #[test]
    fn the_service_name_is_refused() {
        assert_eq!(
            check_password("MyCaldicottLogin", "jane"),
            Err(PasswordError::ContainsServiceName)
        );
    }

    #[test]
    fn errors_never_echo_the_password() {
        for (password, user) in [
            ("Password2024!", "jane"),
            ("tiny1", "jane"),
            ("jane is my name", "jane"),
            ("aaaaaaaaaaaa", "jane"),
            ("caldicott rocks", "jane"),
        ] {
            let error = check_password(password, user).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(
                !text.to_lowercase().contains(&password.to_lowercase()),
                "{text}"
            );
        }
    }

    #[test]
    fn deleet_offers_both_readings_of_one() {
        assert_eq!(deleet("p@ssw0rd"), ["password"]);
        assert_eq!(deleet("1ove1y"), ["ioveiy", "lovely"]);
        assert!(deleet("plain").is_empty());
    }

    #[test]
    fn repeated_units() {
        assert_eq!(repeated_unit("abab"), Some("ab"));
        assert_eq!(repeated_unit("ééé"), Some("é"));
        assert_eq!(repeated_unit("abcab"), None);
        assert_eq!(repeated_unit("a"), None);
        assert_eq!(repeated_unit(""), None);
    }
}
