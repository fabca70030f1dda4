//! The release manifest (`manifest.json`), its signature (`manifest.json.sig`, a C2SP
//! signed note made with `caldicott-ledger`'s note code) and their verification.
//!
//! The manifest is plaintext, read by anyone who handles the release, so it holds no
//! personal data: identifiers of the release and agreement, the recipient's public key,
//! each file's name, format, row count, size and SHA-256 *of the ciphertext*, patient
//! counts, and the de-identification report the pipeline passes in. It deliberately holds
//! no hash of any plaintext: for a small release that hash would let someone who can guess
//! the content confirm the guess. age authenticates the plaintext, so the ciphertext hash
//! already pins it.
//!
//! The signed note's text is three lines, the last in `sha256sum` format so a recipient
//! can check the manifest with standard tools:
//!
//! ```text
//! caldicott release manifest v1
//! release <release id>
//! <sha256 of manifest.json, hex>  manifest.json
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use caldicott_ledger::note::{self, NoteError, VerifiedNote};
use caldicott_ledger::{SignerKey, VerifierKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::sink::{hex, sha256};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature's file name.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";
/// The value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "caldicott-release-manifest/1";
/// The first line of the signed note.
pub const NOTE_HEADER: &str = "caldicott release manifest v1";

/// Largest `manifest.json` [`verify_manifest`] reads.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Largest `manifest.json.sig` [`verify_manifest`] reads.
pub const MAX_SIGNATURE_BYTES: u64 = 64 << 10;

/// The format of a released file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// RFC 4180 CSV, UTF-8, CRLF line ends, a header row first.
    Csv,
    /// Apache Parquet, every column a required UTF-8 string.
    Parquet,
    /// Newline-delimited JSON: one FHIR resource per line.
    Ndjson,
}

impl FileFormat {
    /// The file name extension before `.age`.
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Ndjson => "ndjson",
        }
    }
}

/// One released file as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name in the release directory, such as `cohort.csv.age`.
    pub name: String,
    /// What the plaintext is.
    pub format: FileFormat,
    /// Always `"age"`: encrypted to the manifest's recipient.
    pub encryption: String,
    /// Data rows (CSV without the header, Parquet rows, NDJSON lines).
    pub rows: u64,
    /// Size of the encrypted file in bytes.
    pub bytes: u64,
    /// SHA-256 of the encrypted file, lower-case hex.
    pub sha256: String,
}

/// The agreement a release is made under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementRef {
    /// The agreement's identifier.
    pub id: String,
    /// The approved version the release was made under.
    pub version: u32,
}

/// Patient counts: numbers only, no identifiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortCounts {
    /// Patients the agreement's cohort definition selected.
    pub patients_selected: u64,
    /// Of those, patients removed because they opted out (national data opt-out or a
    /// local objection).
    pub patients_removed_opt_out: u64,
}

/// What the pipeline tells the writer about the release, for the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInfo {
    /// The release's identifier (1 to 128 of `A-Z a-z 0-9 . _ : -`), e.g. a UUID.
    pub release_id: String,
    /// The agreement's identifier (same characters).
    pub agreement_id: String,
    /// The agreement's approved version.
    pub agreement_version: u32,
    /// When the release was made (written in UTC, RFC 3339).
    pub created_at: OffsetDateTime,
    /// Patient counts.
    pub cohort: CohortCounts,
    /// The de-identification report (`caldicott-deid`), as JSON. It is published in
    /// plaintext: it must hold aggregate figures only, never a value from a record.
    pub privacy_report: serde_json::Value,
}

/// The manifest, as written to `manifest.json` (fields in this order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The release's identifier.
    pub release_id: String,
    /// The agreement.
    pub agreement: AgreementRef,
    /// When the release was made, RFC 3339 in UTC.
    pub created_at: String,
    /// The recipient's age public key (`age1…`) every file is encrypted to.
    pub recipient: String,
    /// The encrypted files.
    pub files: Vec<ManifestFile>,
    /// Patient counts.
    pub cohort: CohortCounts,
    /// The de-identification report.
    pub privacy_report: serde_json::Value,
}

/// Why release information was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release info field {field}: {reason}")]
pub struct InfoError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

/// Checks an identifier: 1 to 128 ASCII letters, digits, `.`, `_`, `:` or `-`.
pub(crate) fn check_id(field: &'static str, value: &str) -> Result<(), InfoError> {
    if value.is_empty() || value.len() > 128 {
        return Err(InfoError {
            field,
            reason: "must be 1 to 128 characters long",
        });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(InfoError {
            field,
            reason: "may only hold ASCII letters, digits, '.', '_', ':' and '-'",
        });
    }
    Ok(())
}

/// Whether `name` is a safe plain file name: 1 to 200 ASCII letters, digits, `.`, `_` or
/// `-`, not starting with a dot (so never `.`, `..` or a hidden temporary file).
pub(crate) fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) fn format_time(t: OffsetDateTime) -> Result<String, InfoError> {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|_| InfoError {
            field: "created_at",
            reason: "cannot be written as RFC 3339 (a year outside 0000-9999?)",
        })
}

impl Manifest {
    /// The manifest bytes: pretty-printed JSON with a final newline.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The text of the signed note for a manifest with this id and hash.
fn note_text(release_id: &str, manifest_sha256: &[u8; 32]) -> String {
    format!(
        "{NOTE_HEADER}\nrelease {release_id}\n{}  {MANIFEST_FILE}\n",
        hex(manifest_sha256)
    )
}

/// Signs the manifest bytes: the signed note for `manifest.json.sig`.
pub(crate) fn sign_manifest(
    release_id: &str,
    manifest: &[u8],
    signer: &SignerKey,
) -> Result<String, NoteError> {
    note::sign(&note_text(release_id, &sha256(manifest)), &[signer])
}

/// A release whose signature, manifest and every file checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json`, hex.
    pub manifest_sha256: String,
    /// The names of the keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// Why a release did not verify. Each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file the release needs is absent.
    #[error("{file} is missing from the release directory")]
    Missing {
        /// The file.
        file: String,
    },
    /// A file could not be read.
    #[error("reading {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `manifest.json` or its signature is larger than this reader accepts.
    #[error("{file} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        file: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The signed note is malformed or its signature does not verify with the key.
    #[error("{SIGNATURE_FILE}: {0}")]
    Signature(#[source] NoteError),
    /// The signed text is not the three lines of a release manifest note.
    #[error("{SIGNATURE_FILE}: the signed text is not a release manifest note: {0}")]
    NoteText(&'static str),
    /// `manifest.json` is not the file that was signed.
    #[error("{MANIFEST_FILE}: SHA-256 is {actual}, the signature covers {expected}")]
    ManifestHash {
        /// The hash in the signed note.
        expected: String,
        /// The hash of the file present.
        actual: String,
    },
    /// `manifest.json` is not a manifest of this format.
    #[error("{MANIFEST_FILE}: {0}")]
    ManifestJson(String),
    /// The manifest's release id differs from the signed one.
    #[error("{MANIFEST_FILE}: release id differs from the one in the signature")]
    ReleaseIdMismatch,
    /// A listed file name is unsafe (a path, hidden, or a reserved name) or listed twice.
    #[error("{MANIFEST_FILE}: file entry {index}: {reason}")]
    BadEntry {
        /// 0-based index in `files`.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A file's size differs from the manifest's.
    #[error("{file}: {actual} bytes, the manifest says {expected}")]
    Size {
        /// The file.
        file: String,
        /// Manifest size.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A file's SHA-256 differs from the manifest's.
    #[error("{file}: SHA-256 is {actual}, the manifest says {expected}")]
    Hash {
        /// The file.
        file: String,
        /// Manifest hash.
        expected: String,
        /// Hash of the file on disk.
        actual: String,
    },
}

fn read_limited(dir: &Path, file: &'static str, limit: u64) -> Result<Vec<u8>, VerifyError> {
    let f = File::open(dir.join(file)).map_err(|e| open_error(file.to_owned(), e))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|source| VerifyError::Io {
            file: file.to_owned(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(VerifyError::TooLarge { file, limit });
    }
    Ok(buf)
}

fn open_error(file: String, source: io::Error) -> VerifyError {
    if source.kind() == io::ErrorKind::NotFound {
        VerifyError::Missing { file }
    } else {
        VerifyError::Io { file, source }
    }
}

/// Parses the note text; returns the release id and the manifest hash (hex).
fn parse_note_text(note: &VerifiedNote) -> Result<(&str, &str), VerifyError> {
    let mut lines = note.text().lines();
    if lines.next() != Some(NOTE_HEADER) {
        return Err(VerifyError::NoteText("the first line is not the header"));
    }
    let release = lines
        .next()
        .and_then(|l| l.strip_prefix("release "))
        .ok_or(VerifyError::NoteText(
            "the second line is not `release <id>`",
        ))?;
    let hash = lines
        .next()
        .and_then(|l| l.strip_suffix(&format!("  {MANIFEST_FILE}")))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or(VerifyError::NoteText(
            "the third line is not `<sha256 hex>  manifest.json`",
        ))?;
    if lines.next().is_some() {
        return Err(VerifyError::NoteText("more than three lines"));
    }
    Ok((release, hash))
}

/// Hashes a file, streaming, and returns its SHA-256 and size.
fn hash_file(dir: &Path, name: &str) -> Result<([u8; 32], u64), VerifyError> {
    let mut f = File::open(dir.join(name)).map_err(|e| open_error(name.to_owned(), e))?;
    let mut sink = super::sink::Digesting::new(io::sink());
    io::copy(&mut f, &mut sink).map_err(|source| VerifyError::Io {
        file: name.to_owned(),
        source,
    })?;
    let (_, sha, bytes) = sink.finish();
    Ok((sha, bytes))
}

/// Verifies a release directory: the signature of `manifest.json.sig` with `key`, that
/// `manifest.json` is the signed file, that it parses as a manifest of this format, and
/// every listed file's size and SHA-256. It does not decrypt anything (that needs the
/// recipient's identity).
///
/// # Errors
/// The first [`VerifyError`] found, naming the file.
pub fn verify_manifest(dir: &Path, key: &VerifierKey) -> Result<VerifiedManifest, VerifyError> {
    let sig = read_limited(dir, SIGNATURE_FILE, MAX_SIGNATURE_BYTES)?;
    let note = note::open(&sig, std::slice::from_ref(key)).map_err(VerifyError::Signature)?;
    let (release_id, expected) = parse_note_text(&note)?;

    let bytes = read_limited(dir, MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
    let actual = hex(&sha256(&bytes));
    if actual != expected {
        return Err(VerifyError::ManifestHash {
            expected: expected.to_owned(),
            actual,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| VerifyError::ManifestJson(e.to_string()))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(VerifyError::ManifestJson(format!(
            "format is not {MANIFEST_FORMAT}"
        )));
    }
    if manifest.release_id != release_id {
        return Err(VerifyError::ReleaseIdMismatch);
    }

    let mut seen: Vec<&str> = Vec::with_capacity(manifest.files.len());
    for (index, file) in manifest.files.iter().enumerate() {
        let bad = |reason| VerifyError::BadEntry { index, reason };
        if !is_safe_file_name(&file.name)
            || file.name == MANIFEST_FILE
            || file.name == SIGNATURE_FILE
        {
            return Err(bad("the name is not a plain release file name"));
        }
        if seen.contains(&file.name.as_str()) {
            return Err(bad("the file is listed twice"));
        }
        seen.push(&file.name);
        if file.encryption != "age" {
            return Err(bad("encryption is not \"age\""));
        }
        // The size first: a truncated or extended file is named as such, cheaply.
        let on_disk = std::fs::metadata(dir.join(&file.name))
            .map_err(|e| open_error(file.name.clone(), e))?
            .len();
        if on_disk != file.bytes {
            return Err(VerifyError::Size {
                file: file.name.clone(),
                expected: file.bytes,
                actual: on_disk,
            });
        }
        let (sha, bytes) = hash_file(dir, &file.name)?;
        if bytes != file.bytes {
            return Err(VerifyError::Size {
                file: file.name.clone(),
                expected: file.bytes,
                actual: bytes,
            });
        }
        let sha = hex(&sha);
        if sha != file.sha256 {
            return Err(VerifyError::Hash {
                file: file.name.clone(),
                expected: file.sha256.clone(),
                actual: sha,
            });
        }
    }
    Ok(VerifiedManifest {
        manifest,
        manifest_sha256: actual,
        signed_by: note
            .verified()
            .iter()
            .map(|s| s.name().to_owned())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_file_names() {
        assert!(check_id("release_id", "3f0c2a9e-1b7d-4c55-9a1e-0d6b1c2e3f40").is_ok());
        assert!(check_id("release_id", "").is_err());
        assert!(check_id("release_id", "a b").is_err());
        assert!(check_id("release_id", "a\nrelease b").is_err());
        assert!(check_id("release_id", &"a".repeat(129)).is_err());
        assert!(is_safe_file_name("cohort-2026.csv.age"));
        for bad in ["", ".", "..", ".hidden", "a/b", "..\\x", "a b", "é"] {
            assert!(!is_safe_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn note_text_round_trips_through_the_parser() {
        let key = SignerKey::generate("release.example").unwrap();
        let signed = sign_manifest("r-1", b"{}\n", &key).unwrap();
        let note = note::open(signed.as_bytes(), &[key.verifier_key()]).unwrap();
        let (id, hash) = parse_note_text(&note).unwrap();
        assert_eq!(id, "r-1");
        assert_eq!(hash, hex(&sha256(b"{}\n")));
    }
}
