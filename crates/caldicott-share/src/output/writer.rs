//! The release writer: one table streamed to CSV and Parquet, FHIR NDJSON lines, each
//! encrypted to the recipient, then a signed manifest; all renamed into place at the end
//! or none.

use std::error::Error as StdError;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use caldicott_ledger::SignerKey;
use caldicott_ledger::note::NoteError;
use parquet::errors::ParquetError;

use super::manifest::{
    AgreementRef, FileFormat, InfoError, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestFile,
    ReleaseInfo, SIGNATURE_FILE, check_id, format_time, is_safe_file_name, sign_manifest,
};
use super::recipient::{RecipientError, RecipientKey};
use super::sink::{self, Pending, PlainSink, Sealed, SinkError, hex};
use super::table::{CsvTable, Limits, ParquetTable};

/// Longest release name (the file names add at most `.parquet.age`).
const MAX_NAME_LEN: usize = 100;

/// Longest column name.
const MAX_COLUMN_NAME_LEN: usize = 256;

/// Why a release could not be written. No variant holds a value from a row or a resource.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The release name cannot make safe file names.
    #[error(
        "invalid release name: it must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '.', '_' \
         or '-', not starting with '.'"
    )]
    InvalidName,
    /// The recipient key was refused.
    #[error("recipient key: {0}")]
    Recipient(#[from] RecipientError),
    /// The header is empty.
    #[error("the table header has no columns")]
    EmptyHeader,
    /// A column name is refused.
    #[error("header column {column}: {reason}")]
    InvalidColumn {
        /// 1-based column number.
        column: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The output directory already holds this file: a release is never overwritten.
    #[error("{file} already exists in the output directory: a release is never overwritten")]
    AlreadyExists {
        /// The file.
        file: String,
    },
    /// A row has the wrong number of values.
    #[error("row {row}: {found} values for {expected} columns")]
    RowLength {
        /// 1-based data row number (the header not counted).
        row: u64,
        /// Columns in the header.
        expected: usize,
        /// Values in the row.
        found: usize,
    },
    /// An NDJSON line is refused.
    #[error("FHIR NDJSON line {line}: {reason}")]
    NdjsonLine {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The caller's row or resource stream failed: the release is abandoned.
    #[error("the {stream} stream failed at item {item}")]
    Source {
        /// `"rows"` or `"fhir"`.
        stream: &'static str,
        /// 1-based number of the failing item.
        item: u64,
        /// The stream's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Reading or writing a file failed.
    #[error("{file}: {source}")]
    Io {
        /// The file (or `.` for the directory).
        file: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The CSV encoder failed (in practice, an I/O error below it).
    #[error("{file}: {source}")]
    Csv {
        /// The file.
        file: String,
        /// The error.
        #[source]
        source: csv::Error,
    },
    /// The Parquet encoder failed.
    #[error("{file}: {source}")]
    Parquet {
        /// The file.
        file: String,
        /// The error.
        #[source]
        source: ParquetError,
    },
    /// age refused to set up encryption.
    #[error("{file}: age encryption: {source}")]
    Encrypt {
        /// The file.
        file: String,
        /// The error.
        #[source]
        source: Box<age::EncryptError>,
    },
    /// The release information is refused.
    #[error(transparent)]
    Info(#[from] InfoError),
    /// The manifest could not be serialised.
    #[error("{MANIFEST_FILE}: {0}")]
    Manifest(#[source] serde_json::Error),
    /// Signing the manifest failed.
    #[error("{SIGNATURE_FILE}: {0}")]
    Sign(#[source] NoteError),
    /// An earlier call failed; this writer only abandons now.
    #[error("an earlier error abandoned this release; start again with a new writer")]
    Abandoned,
}

/// One written file, for the pipeline's own records (the audit ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The manifest entry.
    pub entry: ManifestFile,
    /// SHA-256 of the plaintext, hex. Not in the manifest (see the module docs).
    pub plaintext_sha256: String,
    /// Size of the plaintext in bytes.
    pub plaintext_bytes: u64,
}

/// What [`ReleaseWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSummary {
    /// The release directory.
    pub dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json`, hex.
    pub manifest_sha256: String,
    /// The signed note in `manifest.json.sig`.
    pub signature: String,
    /// The encrypted files, in manifest order (CSV, Parquet, NDJSON).
    pub files: Vec<WrittenFile>,
    /// Parquet row groups written.
    pub parquet_row_groups: u64,
}

/// The names of a release's files, from its name.
#[derive(Debug, Clone)]
struct Names {
    csv: String,
    parquet: String,
    ndjson: String,
}

impl Names {
    fn new(name: &str) -> Result<Self, OutputError> {
        if name.len() > MAX_NAME_LEN || !is_safe_file_name(name) {
            return Err(OutputError::InvalidName);
        }
        let of = |f: FileFormat| format!("{name}.{}.age", f.extension());
        Ok(Self {
            csv: of(FileFormat::Csv),
            parquet: of(FileFormat::Parquet),
            ndjson: of(FileFormat::Ndjson),
        })
    }

    fn all(&self) -> [&str; 5] {
        [
            &self.csv,
            &self.parquet,
            &self.ndjson,
            MANIFEST_FILE,
            SIGNATURE_FILE,
        ]
    }
}

fn check_header<S: AsRef<str>>(header: &[S]) -> Result<Vec<String>, OutputError> {
    if header.is_empty() {
        return Err(OutputError::EmptyHeader);
    }
    let mut out: Vec<String> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let name = name.as_ref();
        let bad = |reason| OutputError::InvalidColumn {
            column: i + 1,
            reason,
        };
        if name.trim().is_empty() {
            return Err(bad("the name is empty"));
        }
        if name.len() > MAX_COLUMN_NAME_LEN {
            return Err(bad("the name is longer than 256 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(bad("the name holds a control character"));
        }
        if out.iter().any(|n| n == name) {
            return Err(bad("the name repeats an earlier column"));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// Checks an NDJSON line: one JSON object, on one line.
fn check_ndjson_line(line: &str, number: u64) -> Result<(), OutputError> {
    let bad = |reason| OutputError::NdjsonLine {
        line: number,
        reason,
    };
    if line.contains(['\n', '\r']) {
        return Err(bad("holds a line break: one resource per line"));
    }
    if !line.trim_start().starts_with('{') {
        return Err(bad("is not a JSON object"));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(line)
        .map(|_| ())
        .map_err(|_| bad("is not valid JSON"))
}

/// Writes one release: call [`ReleaseWriter::write_row`] for each table row and
/// [`ReleaseWriter::write_fhir_line`] for each FHIR resource (in any interleaving), then
/// [`ReleaseWriter::finish`]. Dropping the writer, or any error, abandons the release and
/// deletes everything it wrote; after an error every call returns
/// [`OutputError::Abandoned`].
pub struct ReleaseWriter {
    dir: PathBuf,
    names: Names,
    recipient: RecipientKey,
    columns: usize,
    state: Option<Open>,
    rows: u64,
    fhir_lines: u64,
}

/// The three open encrypted streams.
struct Open {
    csv: (Pending, CsvTable),
    parquet: (Pending, ParquetTable),
    ndjson: (Pending, PlainSink),
}

impl ReleaseWriter {
    /// Starts a release named `name` (files `<name>.csv.age`, `<name>.parquet.age`,
    /// `<name>.ndjson.age`, `manifest.json`, `manifest.json.sig`) in `dir`, which is created
    /// if missing and must not already hold any of these files.
    ///
    /// # Errors
    /// [`OutputError::InvalidName`], [`OutputError::EmptyHeader`],
    /// [`OutputError::InvalidColumn`], [`OutputError::AlreadyExists`], or an I/O or
    /// encryption error naming the file.
    pub fn create<S: AsRef<str>>(
        dir: &Path,
        name: &str,
        recipient: &RecipientKey,
        header: &[S],
        limits: Limits,
    ) -> Result<Self, OutputError> {
        let names = Names::new(name)?;
        let header = check_header(header)?;
        let limits = Limits {
            row_group_rows: limits.row_group_rows.max(1),
            row_group_bytes: limits.row_group_bytes.max(1),
        };
        std::fs::create_dir_all(dir).map_err(|source| OutputError::Io {
            file: ".".to_owned(),
            source,
        })?;
        for file in names.all() {
            // symlink_metadata: a dangling link at a release name is also refused.
            if std::fs::symlink_metadata(dir.join(file)).is_ok() {
                return Err(OutputError::AlreadyExists {
                    file: file.to_owned(),
                });
            }
        }

        let open = |file: &str| {
            sink::open(dir, file, recipient).map_err(|e| match e {
                SinkError::Io(source) => OutputError::Io {
                    file: file.to_owned(),
                    source,
                },
                SinkError::Encrypt(source) => OutputError::Encrypt {
                    file: file.to_owned(),
                    source,
                },
            })
        };
        let (csv_pending, csv_sink) = open(&names.csv)?;
        let csv = CsvTable::new(csv_sink, &header).map_err(|source| OutputError::Csv {
            file: names.csv.clone(),
            source,
        })?;
        let (parquet_pending, parquet_sink) = open(&names.parquet)?;
        let parquet = ParquetTable::new(parquet_sink, &header, limits).map_err(|source| {
            OutputError::Parquet {
                file: names.parquet.clone(),
                source,
            }
        })?;
        let ndjson = open(&names.ndjson)?;
        Ok(Self {
            dir: dir.to_owned(),
            names,
            recipient: recipient.clone(),
            columns: header.len(),
            state: Some(Open {
                csv: (csv_pending, csv),
                parquet: (parquet_pending, parquet),
                ndjson,
            }),
            rows: 0,
            fhir_lines: 0,
        })
    }

    /// Rows written so far.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// FHIR lines written so far.
    #[must_use]
    pub fn fhir_lines(&self) -> u64 {
        self.fhir_lines
    }

    /// Writes one table row (as many values as header columns) to the CSV and the Parquet
    /// file.
    ///
    /// # Errors
    /// [`OutputError::RowLength`] or an I/O error; either abandons the release.
    pub fn write_row<S: AsRef<str>>(&mut self, row: &[S]) -> Result<(), OutputError> {
        let mut open = self.state.take().ok_or(OutputError::Abandoned)?;
        let number = self.rows + 1;
        if row.len() != self.columns {
            return Err(OutputError::RowLength {
                row: number,
                expected: self.columns,
                found: row.len(),
            });
        }
        open.csv
            .1
            .write_row(row)
            .map_err(|source| OutputError::Csv {
                file: self.names.csv.clone(),
                source,
            })?;
        open.parquet
            .1
            .write_row(row)
            .map_err(|source| OutputError::Parquet {
                file: self.names.parquet.clone(),
                source,
            })?;
        self.rows = number;
        self.state = Some(open);
        Ok(())
    }

    /// Writes one FHIR resource, already de-identified JSON on one line, to the NDJSON file.
    ///
    /// # Errors
    /// [`OutputError::NdjsonLine`] (a line break, not a JSON object) or an I/O error;
    /// either abandons the release.
    pub fn write_fhir_line(&mut self, line: &str) -> Result<(), OutputError> {
        let mut open = self.state.take().ok_or(OutputError::Abandoned)?;
        let number = self.fhir_lines + 1;
        check_ndjson_line(line, number)?;
        let sink = &mut open.ndjson.1;
        sink.write_all(line.as_bytes())
            .and_then(|()| sink.write_all(b"\n"))
            .map_err(|source| OutputError::Io {
                file: self.names.ndjson.clone(),
                source,
            })?;
        self.fhir_lines = number;
        self.state = Some(open);
        Ok(())
    }

    /// Ends the three encrypted files, writes and signs the manifest, and renames
    /// everything into place (data files first, the signature last).
    ///
    /// # Errors
    /// [`OutputError::Info`] for refused release information, [`OutputError::Abandoned`]
    /// after an earlier error, [`OutputError::AlreadyExists`] if a file appeared meanwhile,
    /// or an I/O, encoding or signing error. On any error nothing is left in the directory.
    pub fn finish(
        mut self,
        info: &ReleaseInfo,
        signer: &SignerKey,
    ) -> Result<ReleaseSummary, OutputError> {
        let open = self.state.take().ok_or(OutputError::Abandoned)?;
        check_id("release_id", &info.release_id)?;
        check_id("agreement_id", &info.agreement_id)?;
        let created_at = format_time(info.created_at)?;
        let names = self.names.clone();

        let Open {
            csv: (csv_pending, csv),
            parquet: (parquet_pending, parquet),
            ndjson: (ndjson_pending, ndjson),
        } = open;
        let io_err = |file: &str| {
            let file = file.to_owned();
            move |source| OutputError::Io { file, source }
        };
        let csv_sink = csv.finish().map_err(|source| OutputError::Csv {
            file: names.csv.clone(),
            source,
        })?;
        let csv_sealed = sink::seal(csv_sink).map_err(io_err(&names.csv))?;
        let (parquet_sink, parquet_row_groups) =
            parquet.finish().map_err(|source| OutputError::Parquet {
                file: names.parquet.clone(),
                source,
            })?;
        let parquet_sealed = sink::seal(parquet_sink).map_err(io_err(&names.parquet))?;
        let ndjson_sealed = sink::seal(ndjson).map_err(io_err(&names.ndjson))?;

        let files = vec![
            written(&names.csv, FileFormat::Csv, self.rows, csv_sealed),
            written(
                &names.parquet,
                FileFormat::Parquet,
                self.rows,
                parquet_sealed,
            ),
            written(
                &names.ndjson,
                FileFormat::Ndjson,
                self.fhir_lines,
                ndjson_sealed,
            ),
        ];
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            release_id: info.release_id.clone(),
            agreement: AgreementRef {
                id: info.agreement_id.clone(),
                version: info.agreement_version,
            },
            created_at,
            recipient: self.recipient.to_string(),
            files: files.iter().map(|f| f.entry.clone()).collect(),
            cohort: info.cohort,
            privacy_report: info.privacy_report.clone(),
        };
        let manifest_bytes = manifest.to_bytes().map_err(OutputError::Manifest)?;
        let signature =
            sign_manifest(&info.release_id, &manifest_bytes, signer).map_err(OutputError::Sign)?;
        let manifest_pending = write_small(&self.dir, MANIFEST_FILE, &manifest_bytes)?;
        let signature_pending = write_small(&self.dir, SIGNATURE_FILE, signature.as_bytes())?;

        sink::persist_all(
            &self.dir,
            vec![
                csv_pending,
                parquet_pending,
                ndjson_pending,
                manifest_pending,
                signature_pending,
            ],
        )
        .map_err(|(file, source)| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                OutputError::AlreadyExists { file }
            } else {
                OutputError::Io { file, source }
            }
        })?;
        Ok(ReleaseSummary {
            dir: self.dir.clone(),
            manifest_sha256: hex(&sink::sha256(&manifest_bytes)),
            manifest,
            signature,
            files,
            parquet_row_groups,
        })
    }
}

fn written(name: &str, format: FileFormat, rows: u64, sealed: Sealed) -> WrittenFile {
    WrittenFile {
        entry: ManifestFile {
            name: name.to_owned(),
            format,
            encryption: "age".to_owned(),
            rows,
            bytes: sealed.bytes,
            sha256: hex(&sealed.sha256),
        },
        plaintext_sha256: hex(&sealed.plaintext_sha256),
        plaintext_bytes: sealed.plaintext_bytes,
    }
}

/// Writes a small plaintext file to a temporary file in `dir`, synced, to be renamed.
fn write_small(dir: &Path, name: &str, bytes: &[u8]) -> Result<Pending, OutputError> {
    let err = |source| OutputError::Io {
        file: name.to_owned(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    temp.write_all(bytes).map_err(err)?;
    temp.as_file().sync_all().map_err(err)?;
    let (_, temp) = temp.into_parts();
    Ok(Pending {
        temp,
        name: name.to_owned(),
    })
}

/// Writes a whole release from two streams: `rows` (each a slice of values, such as
/// `Vec<String>` or `[&str; N]`) and `fhir_lines` (one de-identified resource per item).
/// A stream's `Err` abandons the release and is returned as [`OutputError::Source`]; no
/// file is left.
///
/// # Errors
/// As [`ReleaseWriter::create`], [`ReleaseWriter::write_row`],
/// [`ReleaseWriter::write_fhir_line`] and [`ReleaseWriter::finish`], and
/// [`OutputError::Source`].
#[allow(clippy::too_many_arguments)]
pub fn write_release<H, R, V, S, E, F, L, E2>(
    dir: &Path,
    name: &str,
    recipient: &RecipientKey,
    header: &[H],
    rows: R,
    fhir_lines: F,
    info: &ReleaseInfo,
    signer: &SignerKey,
    limits: Limits,
) -> Result<ReleaseSummary, OutputError>
where
    H: AsRef<str>,
    R: IntoIterator<Item = Result<V, E>>,
    V: AsRef<[S]>,
    S: AsRef<str>,
    E: Into<Box<dyn StdError + Send + Sync>>,
    F: IntoIterator<Item = Result<L, E2>>,
    L: AsRef<str>,
    E2: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut writer = ReleaseWriter::create(dir, name, recipient, header, limits)?;
    for row in rows {
        let row = row.map_err(|e| OutputError::Source {
            stream: "rows",
            item: writer.rows() + 1,
            source: e.into(),
        })?;
        writer.write_row(row.as_ref())?;
    }
    for line in fhir_lines {
        let line = line.map_err(|e| OutputError::Source {
            stream: "fhir",
            item: writer.fhir_lines() + 1,
            source: e.into(),
        })?;
        writer.write_fhir_line(line.as_ref())?;
    }
    writer.finish(info, signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_can_move_to_a_blocking_thread() {
        fn send<T: Send>() {}
        send::<ReleaseWriter>();
        send::<OutputError>();
    }

    #[test]
    fn headers_are_checked() {
        assert!(matches!(
            check_header::<&str>(&[]),
            Err(OutputError::EmptyHeader)
        ));
        assert!(matches!(
            check_header(&["a", "b", "a"]),
            Err(OutputError::InvalidColumn { column: 3, .. })
        ));
        assert!(matches!(
            check_header(&["a", " "]),
            Err(OutputError::InvalidColumn { column: 2, .. })
        ));
        assert!(matches!(
            check_header(&["a\tb"]),
            Err(OutputError::InvalidColumn { column: 1, .. })
        ));
        assert_eq!(check_header(&["age band", "région"]).unwrap().len(), 2);
    }

    #[test]
    fn ndjson_lines_are_checked() {
        assert!(check_ndjson_line(r#"{"resourceType":"Patient"}"#, 1).is_ok());
        for bad in ["", "[1]", "{\"a\":\n1}", "{\"a\":1", "{} {}"] {
            assert!(
                matches!(
                    check_ndjson_line(bad, 7),
                    Err(OutputError::NdjsonLine { line: 7, .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(Names::new("cohort-2026").is_ok());
        for bad in ["", "../x", ".x", "a/b", "a b"] {
            assert!(matches!(Names::new(bad), Err(OutputError::InvalidName)));
        }
        assert!(Names::new(&"a".repeat(101)).is_err());
    }
}
