//! C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): the signed-note text that
//! commits a log's origin, tree size and root hash.
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <root hash, standard base64>
//! [extension lines, each non-empty]
//! ```

use std::fmt;

use crate::hash::{Hash, HashParseError};
use crate::note::{self, NoteError, SignerKey, VerifiedNote, VerifierKey};

/// Why a checkpoint text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text does not end with a newline.
    #[error("a checkpoint must end with a newline")]
    NoFinalNewline,
    /// Fewer than three lines (origin, size, root).
    #[error("a checkpoint needs an origin, a tree size and a root hash line")]
    TooFewLines,
    /// An empty line (the origin, the size, the root or an extension).
    #[error("checkpoint line {0} is empty")]
    EmptyLine(usize),
    /// A line holds a control character, or the origin has a newline.
    #[error("checkpoint line {0} holds a control character")]
    ControlCharacter(usize),
    /// The tree size is not canonical decimal (digits only, no leading zeros) of a `u64`.
    #[error("the tree size is not a decimal number below 2^64 without leading zeros")]
    BadSize,
    /// The root hash line is not a 32-byte hash in standard base64.
    #[error("the root hash is invalid: {0}")]
    BadRoot(#[from] HashParseError),
    /// The signed note around the checkpoint was refused.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A log checkpoint: origin, tree size, root hash and optional extension lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

fn check_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::EmptyLine(number));
    }
    if line.chars().any(|c| c < '\u{20}') {
        return Err(CheckpointError::ControlCharacter(number));
    }
    Ok(())
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    ///
    /// # Errors
    /// [`CheckpointError::EmptyLine`] for an empty origin,
    /// [`CheckpointError::ControlCharacter`] for an origin with a control character.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        check_line(origin, 1)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Adds an extension line (not recommended by the spec: monitors cannot audit them).
    ///
    /// # Errors
    /// [`CheckpointError::EmptyLine`], [`CheckpointError::ControlCharacter`].
    pub fn with_extension(mut self, line: &str) -> Result<Self, CheckpointError> {
        check_line(line, 4 + self.extensions.len())?;
        self.extensions.push(line.to_owned());
        Ok(self)
    }

    /// Parses a checkpoint body (the note text, with its final newline).
    ///
    /// # Errors
    /// A [`CheckpointError`] naming the first defect.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(CheckpointError::TooFewLines);
        }
        for (i, line) in lines.iter().enumerate() {
            check_line(line, i + 1)?;
        }
        let size_line = lines[1];
        if !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(CheckpointError::BadSize);
        }
        let size = size_line.parse().map_err(|_| CheckpointError::BadSize)?;
        let root = Hash::from_base64(lines[2])?;
        Ok(Self {
            origin: lines[0].to_owned(),
            size,
            root,
            extensions: lines[3..].iter().map(|&l| l.to_owned()).collect(),
        })
    }

    /// The note text: one line each for origin, size, root and extensions, each ending in a
    /// newline.
    #[must_use]
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// The log's origin line.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The root hash at that size.
    #[must_use]
    pub const fn root(&self) -> &Hash {
        &self.root
    }

    /// The extension lines.
    #[must_use]
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The signed checkpoint note.
    ///
    /// # Errors
    /// [`NoteError::NoSigners`].
    pub fn sign(&self, signers: &[&SignerKey]) -> Result<String, CheckpointError> {
        Ok(note::sign(&self.to_text(), signers)?)
    }

    /// Verifies a signed checkpoint against the known keys (typically the log's key; a
    /// witness's cosignature of another type counts as unknown and is ignored), then parses
    /// its text.
    ///
    /// # Errors
    /// [`CheckpointError::Note`] when the note is refused, other variants when its text is
    /// not a checkpoint.
    pub fn open(
        msg: &[u8],
        known: &[VerifierKey],
    ) -> Result<(Self, VerifiedNote), CheckpointError> {
        let verified = note::open(msg, known)?;
        let checkpoint = Self::parse(verified.text())?;
        Ok((checkpoint, verified))
    }
}

impl fmt::Display for Checkpoint {
    /// The note text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.origin)?;
        writeln!(f, "{}", self.size)?;
        writeln!(f, "{}", self.root.to_base64())?;
        for e in &self.extensions {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn round_trip() {
        let c = Checkpoint::new("example.com/log", 42, leaf_hash(b"x"))
            .unwrap()
            .with_extension("ext one")
            .unwrap();
        let text = c.to_text();
        assert_eq!(text.lines().count(), 4);
        assert_eq!(Checkpoint::parse(&text).unwrap(), c);
    }

    #[test]
    fn refusals() {
        let root = leaf_hash(b"x").to_base64();
        let ok = format!("o\n0\n{root}\n");
        assert_eq!(Checkpoint::parse(&ok).unwrap().size(), 0);
        let max = format!("o\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse(&max).unwrap().size(), u64::MAX);
        let cases = [
            (format!("o\n1\n{root}"), CheckpointError::NoFinalNewline),
            ("o\n1\n".to_owned(), CheckpointError::TooFewLines),
            (format!("\n1\n{root}\n"), CheckpointError::EmptyLine(1)),
            (format!("o\n1\n{root}\n\n"), CheckpointError::EmptyLine(4)),
            (format!("o\n01\n{root}\n"), CheckpointError::BadSize),
            (format!("o\n+1\n{root}\n"), CheckpointError::BadSize),
            (format!("o\n 1\n{root}\n"), CheckpointError::BadSize),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                CheckpointError::BadSize,
            ),
            (
                "o\n1\nZG9uJ3QgY2FyZSAx\n".to_owned(),
                CheckpointError::BadRoot(HashParseError::WrongLength(12)),
            ),
            (
                format!("o\t\n1\n{root}\n"),
                CheckpointError::ControlCharacter(1),
            ),
        ];
        for (text, err) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(err), "{text:?}");
        }
        assert!(Checkpoint::new("", 1, leaf_hash(b"")).is_err());
        assert!(Checkpoint::new("a\nb", 1, leaf_hash(b"")).is_err());
    }
}
