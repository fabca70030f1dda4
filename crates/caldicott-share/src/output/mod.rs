//! Writing a released table: CSV, Parquet and NDJSON, each encrypted to the recipient's age
//! key, with a signed manifest.
//!
//! A release is a directory of five files (the format is in `docs/release-format.md`):
//!
//! | file | what |
//! |---|---|
//! | `<name>.csv.age` | the table as RFC 4180 CSV (UTF-8, CRLF, header first), age-encrypted |
//! | `<name>.parquet.age` | the same table as Parquet (required UTF-8 string columns, Snappy, row groups of at most 65,536 rows), age-encrypted |
//! | `<name>.ndjson.age` | the de-identified FHIR resources, one JSON object per line, age-encrypted |
//! | `manifest.json` | plaintext: release and agreement ids, time, recipient key, each file's format, rows, size and SHA-256 (of the ciphertext), patient counts, the de-identification report |
//! | `manifest.json.sig` | a C2SP signed note (Ed25519) over the manifest's SHA-256 |
//!
//! Why it is built this way:
//!
//! - **Streaming, bounded memory**: rows go straight through the CSV encoder into age;
//!   Parquet buffers one row group ([`Limits`]), then writes it into its own age stream
//!   (Parquet needs only `Write`, not `Seek`). A release of any size uses a few row groups'
//!   worth of memory.
//! - **No plaintext on disk**: each encoder writes into an age stream whose ciphertext goes
//!   to a hidden temporary file (`.<file>.XXXXXX.tmp`) in the output directory; only
//!   ciphertext touches the disk.
//! - **All or nothing**: the temporary files are renamed to their names only when every
//!   file and the signed manifest are complete (never replacing an existing file); any
//!   error, a failing input stream or dropping the [`ReleaseWriter`] deletes them. A crash
//!   (power loss, SIGKILL) can leave hidden `.tmp` files of ciphertext; a release without
//!   `manifest.json.sig` is incomplete and must not be sent.
//! - **Recipient checked hard** ([`RecipientKey`]): only age X25519 keys; a pasted secret
//!   key, an SSH or plugin key, a typo (Bech32 checksum) or a low-order point are each
//!   refused with their own error, none quoting the key.
//! - **Manifest without personal data** ([`Manifest`]): numbers, identifiers, public keys
//!   and hashes of ciphertext only; no plaintext hashes (a guessable small release could be
//!   confirmed from one). The privacy report is the caller's: it must hold aggregates only.
//! - **One signature format in the project**: the manifest is signed with the audit
//!   ledger's signed-note code (`caldicott_ledger::note`), verified by
//!   [`verify_manifest`] which names the file at fault.
//!
//! ```no_run
//! use caldicott_share::output::{
//!     CohortCounts, Limits, RecipientKey, ReleaseInfo, ReleaseWriter, generate_signing_key,
//!     verify_manifest,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let recipient = RecipientKey::parse("age1…")?;
//! let signer = generate_signing_key("releases.example.nhs.uk")?;
//! let dir = std::path::Path::new("release-42");
//! let mut w = ReleaseWriter::create(dir, "cohort", &recipient, &["age_band", "sex"], Limits::default())?;
//! w.write_row(&["40-44", "F"])?;
//! w.write_fhir_line(r#"{"resourceType":"Patient","id":"p1"}"#)?;
//! let info = ReleaseInfo {
//!     release_id: "42".into(),
//!     agreement_id: "dsa-7".into(),
//!     agreement_version: 3,
//!     created_at: time::OffsetDateTime::now_utc(),
//!     cohort: CohortCounts { patients_selected: 2, patients_removed_opt_out: 1 },
//!     privacy_report: serde_json::json!({"k": 5}),
//! };
//! let summary = w.finish(&info, &signer)?;
//! let verified = verify_manifest(dir, &signer.verifier_key())?;
//! assert_eq!(verified.manifest, summary.manifest);
//! # Ok(()) }
//! ```

mod keys;
mod manifest;
mod recipient;
mod sink;
mod table;
mod writer;

pub use caldicott_ledger::{KeyError, SignerKey, VerifierKey};
pub use keys::{generate_signing_key, signing_key_from_bytes, signing_key_to_bytes};
pub use manifest::{
    AgreementRef, CohortCounts, FileFormat, InfoError, MANIFEST_FILE, MANIFEST_FORMAT,
    MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, Manifest, ManifestFile, NOTE_HEADER, ReleaseInfo,
    SIGNATURE_FILE, VerifiedManifest, VerifyError, verify_manifest,
};
pub use recipient::{PrefixText, RecipientError, RecipientKey};
pub use table::Limits;
pub use writer::{OutputError, ReleaseSummary, ReleaseWriter, WrittenFile, write_release};
