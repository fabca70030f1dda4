//! The I/O edge: reading the input CSV, the policy and the hierarchy files, and writing the
//! output and the report atomically. Everything between is [`Anonymiser`], which does no I/O.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::aggregate::{AggregateRules, Cell, CountTable, Protected, protect};
use crate::anonymise::{Anonymiser, Hierarchies};
use crate::error::DeidError;
use crate::hierarchy::{Hierarchy, HierarchySpec};
use crate::policy::{AttributeKind, Policy};
use crate::report::Report;
use crate::table::Table;
use crate::transform::{PseudonymKey, Transformer};

/// How the input CSV was written; the output is written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvFormat {
    /// Field separator.
    pub delimiter: u8,
    /// Whether lines end in `\r\n` (else `\n`).
    pub crlf: bool,
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DeidError + 'a {
    move |source| DeidError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Policy {
    /// Reads and validates a policy file (TOML). Relative hierarchy paths in it are later
    /// resolved against the file's directory unless a hierarchies directory is given.
    pub fn from_toml_file(path: &Path) -> Result<Policy, DeidError> {
        let text = std::fs::read_to_string(path).map_err(io_error("reading policy", path))?;
        let mut policy: Policy = toml::from_str(&text).map_err(|e| DeidError::PolicySyntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        policy.validate()?;
        policy.base_dir = path.parent().map(Path::to_path_buf);
        Ok(policy)
    }
}

/// Picks the separator that splits the header line into the most fields (`,` on a tie or when
/// none splits it), ignoring separators inside double quotes.
fn sniff_delimiter(header: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut quoted = false;
    for b in header.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(slot) = counts.iter_mut().find(|(d, _)| *d == b) {
            slot.1 += 1;
        }
    }
    counts
        .iter()
        .fold(
            (b',', 0),
            |best, &(d, n)| if n > best.1 { (d, n) } else { best },
        )
        .0
}

/// Reads a CSV file with a header line into a table. The separator is `delimiter`, or sniffed
/// from the header. Columns named in `drop` are not kept: their values are read as empty (they
/// are identifiers, never needed and better not held). A record with a different number of
/// fields than the header fails with [`DeidError::RaggedRow`] naming its line.
pub fn read_csv(
    path: &Path,
    delimiter: Option<u8>,
    drop: &[&str],
) -> Result<(Table, CsvFormat), DeidError> {
    let file = File::open(path).map_err(io_error("reading", path))?;
    let mut first = Vec::new();
    BufReader::new(file)
        .read_until(b'\n', &mut first)
        .map_err(io_error("reading", path))?;
    if first.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DeidError::MissingHeader {
            path: path.to_path_buf(),
        });
    }
    let first_text = String::from_utf8_lossy(&first);
    let format = CsvFormat {
        delimiter: delimiter.unwrap_or_else(|| sniff_delimiter(&first_text)),
        crlf: first.ends_with(b"\r\n"),
    };

    let mut reader = csv::ReaderBuilder::new()
        .delimiter(format.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv_error(path, e))?;
    let mut record = csv::StringRecord::new();
    if !reader
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        return Err(DeidError::MissingHeader {
            path: path.to_path_buf(),
        });
    }
    let header: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                h.trim_start_matches('\u{feff}').to_string()
            } else {
                h.to_string()
            }
        })
        .collect();
    let dropped: Vec<bool> = header.iter().map(|h| drop.contains(&h.as_str())).collect();
    let mut table = Table::new(header)?;
    let width = table.num_columns();
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| csv_error(path, e))?;
        if !more {
            break;
        }
        if record.len() != width {
            return Err(DeidError::RaggedRow {
                path: path.to_path_buf(),
                line: record.position().map_or(0, csv::Position::line),
                expected: width,
                found: record.len(),
            });
        }
        table.push_fields(
            record
                .iter()
                .zip(&dropped)
                .map(|(v, &d)| if d { "" } else { v }),
        )?;
    }
    table.finish();
    Ok((table, format))
}

fn csv_error(path: &Path, e: csv::Error) -> DeidError {
    let line = e.position().map_or(0, csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DeidError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        },
        kind => DeidError::MalformedCsv {
            path: path.to_path_buf(),
            line,
            message: match kind {
                csv::ErrorKind::Utf8 { err, .. } => {
                    format!("field {} is not valid UTF-8", err.field() + 1)
                }
                other => format!("{other:?}"),
            },
        },
    }
}

/// Resolves a hierarchy path: against `dir` if given, else against the policy's directory.
fn resolve(policy: &Policy, dir: Option<&Path>, file: &Path) -> PathBuf {
    match dir.or(policy.base_dir.as_deref()) {
        Some(base) => base.join(file),
        None => file.to_path_buf(),
    }
}

/// Loads the CSV hierarchies the policy names (ARX format, `;`-separated), validating each.
pub fn load_hierarchies(policy: &Policy, dir: Option<&Path>) -> Result<Hierarchies, DeidError> {
    let mut out = Hierarchies::new();
    // Quasi-identifiers' hierarchies, and those of t-closeness's hierarchical ground distance
    // (keyed by the sensitive attribute's name; a column is one or the other).
    let ground = policy
        .privacy
        .t_closeness
        .iter()
        .filter_map(|t| match &t.distance {
            crate::policy::GroundDistance::Hierarchy(h) => Some((&t.attribute, h)),
            crate::policy::GroundDistance::Equal => None,
        });
    let named = policy
        .quasi_identifiers()
        .filter_map(|a| a.hierarchy.as_ref().map(|h| (&a.name, h)))
        .chain(ground);
    for (name, spec) in named {
        if let HierarchySpec::Csv(file) = spec
            && !out.contains_key(name.as_str())
        {
            let path = resolve(policy, dir, file);
            let text =
                std::fs::read_to_string(&path).map_err(io_error("reading hierarchy", &path))?;
            out.insert(name.clone(), Hierarchy::from_arx_csv(name, &text, b';')?);
        }
    }
    Ok(out)
}

/// A file written next to its destination and renamed over it only when complete.
struct Pending {
    file: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Pending {
    fn new(dest: &Path) -> Result<Self, DeidError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file = tempfile::Builder::new()
            .prefix(".caldicott-deid-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io_error("creating a temporary file in", &dir))?;
        Ok(Self {
            file,
            dest: dest.to_path_buf(),
        })
    }

    fn finish_writing(&mut self) -> Result<(), DeidError> {
        self.file
            .as_file_mut()
            .sync_all()
            .map_err(io_error("writing", &self.dest))
    }

    fn commit(self) -> Result<(), DeidError> {
        let dest = self.dest;
        self.file.persist(&dest).map_err(|e| DeidError::Io {
            action: "renaming into place",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// De-identifies a CSV file under a policy.
///
/// Reads `input` (header line required; separator from the policy or sniffed), loads the CSV
/// hierarchies (relative paths against `hierarchies_dir`, else the policy file's directory),
/// de-identifies it by the policy's `algorithm` ([`Anonymiser::anonymise`]: the optimal
/// full-domain generalisation with Flash, or local recoding), and writes `out` (same columns, separator and
/// line ending as the input; see [`Release`](crate::Release) for what each column holds) and
/// `report` (JSON). Both files are written completely to temporary files in their directories
/// before either is renamed into place, so an error leaves no partial output; a file that
/// already exists at `out` or `report` is only replaced on success.
///
/// Pseudonym and date-shift columns need the agreement key: it is read from the source the
/// policy names (`transform = { key = { env = "..." } }` or `{ file = "..." }`, a relative
/// file against the policy's directory). [`anonymise_csv_with_key`] takes it from the caller.
pub fn anonymise_csv(
    input: &Path,
    policy: &Policy,
    hierarchies_dir: Option<&Path>,
    out: &Path,
    report: &Path,
) -> Result<Report, DeidError> {
    anonymise_csv_html(input, policy, hierarchies_dir, out, report, None)
}

/// [`anonymise_csv`], also writing the report as a self-contained HTML page
/// ([`Report::to_html`]) to `report_html`, atomically with the other two files.
pub fn anonymise_csv_html(
    input: &Path,
    policy: &Policy,
    hierarchies_dir: Option<&Path>,
    out: &Path,
    report: &Path,
    report_html: Option<&Path>,
) -> Result<Report, DeidError> {
    policy.validate()?;
    let key = match policy.key_source() {
        Some(source) if policy.needs_key() => Some(source.load(policy.base_dir.as_deref())?),
        _ => None,
    };
    anonymise_csv_inner(
        input,
        policy,
        hierarchies_dir,
        out,
        report,
        report_html,
        key.as_ref(),
    )
}

/// [`anonymise_csv`] with the agreement key given by the caller (the policy's key source is
/// not read).
pub fn anonymise_csv_with_key(
    input: &Path,
    policy: &Policy,
    hierarchies_dir: Option<&Path>,
    out: &Path,
    report: &Path,
    key: Option<&PseudonymKey>,
) -> Result<Report, DeidError> {
    anonymise_csv_inner(input, policy, hierarchies_dir, out, report, None, key)
}

fn anonymise_csv_inner(
    input: &Path,
    policy: &Policy,
    hierarchies_dir: Option<&Path>,
    out: &Path,
    report: &Path,
    report_html: Option<&Path>,
    key: Option<&PseudonymKey>,
) -> Result<Report, DeidError> {
    policy.validate()?;
    // Identifiers are not even held in memory, unless a transformation needs them (a
    // date-shift's patient column, or the row's identifiers to scrub from free text).
    let identifiers: Vec<&str> = policy
        .attributes
        .iter()
        .filter(|a| a.kind == AttributeKind::Identifier)
        .filter(|a| !policy.column_needed_by_transforms(&a.name))
        .map(|a| a.name.as_str())
        .collect();
    let delimiter = policy.delimiter.map(|c| c as u8);
    let (table, format) = read_csv(input, delimiter, &identifiers)?;
    let hierarchies = load_hierarchies(policy, hierarchies_dir)?;

    // Checked before the search, so a bad value or a missing key fails fast.
    let transformer = Transformer::new(&table, policy, key)?;
    let anonymiser = Anonymiser::new(&table, policy, &hierarchies)?;
    let release = anonymiser.anonymise()?.with_transformer(transformer);

    let mut pending_out = Pending::new(out)?;
    {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(format.delimiter)
            .terminator(if format.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .from_writer(BufWriter::with_capacity(
                1 << 20,
                pending_out.file.as_file_mut(),
            ));
        let write_error = |e: csv::Error| DeidError::Io {
            action: "writing",
            path: out.to_path_buf(),
            source: std::io::Error::other(e),
        };
        writer.write_record(release.header()).map_err(write_error)?;
        release.for_each_row(|row| writer.write_record(row).map_err(write_error))?;
        writer
            .into_inner()
            .map_err(|e| DeidError::Io {
                action: "writing",
                path: out.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?
            .flush()
            .map_err(io_error("writing", out))?;
    }
    pending_out.finish_writing()?;

    let mut pending_report = Pending::new(report)?;
    let json = serde_json::to_vec_pretty(release.report()).map_err(|e| DeidError::Io {
        action: "serialising report for",
        path: report.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    pending_report
        .file
        .write_all(&json)
        .and_then(|()| pending_report.file.write_all(b"\n"))
        .map_err(io_error("writing", report))?;
    pending_report.finish_writing()?;

    let pending_html = match report_html {
        Some(path) => {
            let mut pending = Pending::new(path)?;
            pending
                .file
                .write_all(release.report().to_html().as_bytes())
                .map_err(io_error("writing", path))?;
            pending.finish_writing()?;
            Some(pending)
        }
        None => None,
    };

    pending_out.commit()?;
    pending_report.commit()?;
    if let Some(pending) = pending_html {
        pending.commit()?;
    }
    Ok(release.into_report())
}

/// How a suppressed count is written in a protected CSV.
pub const REDACTED: &str = "[REDACTED]";

/// The label of the totals row and column in a protected CSV.
pub const TOTAL: &str = "Total";

/// Reads a CSV table of counts: a header whose first cell names the row labels and whose
/// other cells are the column labels; then one line per row, its label then one count per
/// column (a non-negative whole number; surrounding spaces ignored). Totals are not given:
/// they are computed.
pub fn read_counts_csv(path: &Path) -> Result<(String, CountTable), DeidError> {
    let (table, _) = read_csv(path, None, &[])?;
    let header = table.header();
    if header.len() < 2 {
        return Err(DeidError::Aggregate(format!(
            "{}: the header needs a row-label column and at least one column of counts",
            path.display()
        )));
    }
    let mut row_labels = Vec::with_capacity(table.num_rows());
    let mut counts = Vec::with_capacity(table.num_rows());
    for r in 0..table.num_rows() {
        row_labels.push(table.value(r, 0).to_string());
        let mut row = Vec::with_capacity(header.len() - 1);
        for (c, name) in header.iter().enumerate().skip(1) {
            let v = table.value(r, c).trim();
            let n: u64 = v.parse().map_err(|_| DeidError::InvalidValue {
                column: name.clone(),
                row: r + 1,
                rule: "a count must be a non-negative whole number".into(),
            })?;
            row.push(n);
        }
        counts.push(row);
    }
    let counts = CountTable::new(row_labels, header[1..].to_vec(), counts)?;
    Ok((header[0].clone(), counts))
}

/// Protects a CSV table of counts (see [`read_counts_csv`] and [`crate::aggregate`]) and
/// writes it to `out` atomically: the same header plus a `Total` column, each row with its
/// total, then a `Total` row; suppressed counts written `[REDACTED]`, the others rounded.
pub fn protect_counts_csv(
    input: &Path,
    out: &Path,
    rules: &AggregateRules,
) -> Result<Protected, DeidError> {
    let (corner, table) = read_counts_csv(input)?;
    let protected = protect(&table, rules);
    let mut pending = Pending::new(out)?;
    {
        let write_error = |e: csv::Error| DeidError::Io {
            action: "writing",
            path: out.to_path_buf(),
            source: std::io::Error::other(e),
        };
        let mut writer = csv::Writer::from_writer(BufWriter::new(pending.file.as_file_mut()));
        let mut header = vec![corner];
        header.extend(protected.column_labels.iter().cloned());
        header.push(TOTAL.into());
        writer.write_record(&header).map_err(write_error)?;
        let labels = protected
            .row_labels
            .iter()
            .map(String::as_str)
            .chain([TOTAL]);
        for (label, row) in labels.zip(&protected.cells) {
            let mut record = vec![label.to_string()];
            record.extend(row.iter().map(|c| match c {
                Cell::Published(v) => v.to_string(),
                Cell::Suppressed => REDACTED.to_string(),
            }));
            writer.write_record(&record).map_err(write_error)?;
        }
        writer
            .into_inner()
            .map_err(|e| DeidError::Io {
                action: "writing",
                path: out.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?
            .flush()
            .map_err(io_error("writing", out))?;
    }
    pending.finish_writing()?;
    pending.commit()?;
    Ok(protected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_separators() {
        assert_eq!(sniff_delimiter("a;b;c\r\n"), b';');
        assert_eq!(sniff_delimiter("a,b;c,d\n"), b',');
        assert_eq!(sniff_delimiter("a\tb\n"), b'\t');
        assert_eq!(sniff_delimiter("\"a;b\",c\n"), b',');
        assert_eq!(sniff_delimiter("single\n"), b',');
    }
}
