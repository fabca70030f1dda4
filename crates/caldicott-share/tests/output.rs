//! The release outputs end to end: a few thousand awkward rows (quotes, commas, line
//! breaks, non-ASCII, empty values) and FHIR lines are written, encrypted to a fresh age
//! identity, then decrypted (with the `age` crate and with the real `rage` CLI) and read
//! back (with the `csv` and `parquet` crates, and with Python's csv module and pyarrow);
//! the signed manifest verifies, and tampering with any byte of any file is named.
//!
//! The `rage` check needs `CALDICOTT_TEST_RAGE` (the CLI; `cargo xtask test` installs it
//! into the tools cache, `~/.cache/caldicott-tools`, and also sets `CALDICOTT_REQUIRE_RAGE=1`), the pyarrow check
//! `CALDICOTT_TEST_PYTHON` (`CALDICOTT_REQUIRE_PYTHON=1` likewise); without them those
//! checks print a visible SKIPPED line and pass, unless required.

use std::fs;
use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use caldicott_share::output::{
    CohortCounts, FileFormat, Limits, OutputError, RecipientError, RecipientKey, ReleaseInfo,
    ReleaseSummary, ReleaseWriter, SignerKey, VerifyError, generate_signing_key, verify_manifest,
    write_release,
};
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::record::RowAccessor as _;
use proptest::prelude::*;

const NAME: &str = "cohort";
const HEADER: [&str; 6] = ["pseudo_id", "age_band", "sex", "region", "note", "empty"];

/// Awkward values, cycled through the rows.
const AWKWARD: [&str; 12] = [
    "plain",
    "with, comma",
    "with \"quotes\"",
    "line\nbreak",
    "crlf\r\nbreak",
    "lone\rcr",
    "  spaced  ",
    "Zoë Ångström",
    "東京都",
    "emoji 🩺",
    "=1+1",
    "",
];

/// Row `i`: a unique pseudonym (to check the manifest never holds a value), then values.
fn row(i: usize) -> Vec<String> {
    vec![
        format!("pid-{i:06}"),
        format!("{}-{}", (i % 20) * 5, (i % 20) * 5 + 4),
        ["F", "M", "U"][i % 3].to_owned(),
        AWKWARD[(i * 7) % AWKWARD.len()].to_owned(),
        format!("{} #{i}", AWKWARD[i % AWKWARD.len()]),
        String::new(),
    ]
}

fn fhir_line(i: usize) -> String {
    serde_json::json!({
        "resourceType": "Observation",
        "id": format!("obs-{i}"),
        "status": "final",
        "valueString": AWKWARD[i % AWKWARD.len()],
    })
    .to_string()
}

fn info() -> ReleaseInfo {
    ReleaseInfo {
        release_id: "rel-2026-11-29.1".to_owned(),
        agreement_id: "dsa-0042".to_owned(),
        agreement_version: 3,
        created_at: time::macros::datetime!(2026-11-29 12:00:00 +01:00),
        cohort: CohortCounts {
            patients_selected: 3600,
            patients_removed_opt_out: 100,
        },
        privacy_report: serde_json::json!({"k_anonymity": {"k": 5, "achieved": 7}, "suppressed_records": 12}),
    }
}

struct Fixture {
    identity: age::x25519::Identity,
    recipient: RecipientKey,
    signer: SignerKey,
}

fn fixture() -> Fixture {
    let identity = age::x25519::Identity::generate();
    let recipient = RecipientKey::parse(&identity.to_public().to_string()).unwrap();
    let signer = generate_signing_key("releases.caldicott.test").unwrap();
    Fixture {
        identity,
        recipient,
        signer,
    }
}

const ROWS: usize = 3500;
const FHIR: usize = 1200;
/// Small row groups, so a few thousand rows make several.
const LIMITS: Limits = Limits {
    row_group_rows: 1000,
    row_group_bytes: 64 << 20,
};

fn write(f: &Fixture, dir: &Path) -> ReleaseSummary {
    write_release(
        dir,
        NAME,
        &f.recipient,
        &HEADER,
        (0..ROWS).map(|i| Ok::<_, std::io::Error>(row(i))),
        (0..FHIR).map(|i| Ok::<_, std::io::Error>(fhir_line(i))),
        &info(),
        &f.signer,
        LIMITS,
    )
    .unwrap()
}

fn decrypt(path: &Path, identity: &age::x25519::Identity) -> Vec<u8> {
    let file = BufReader::new(fs::File::open(path).unwrap());
    let decryptor = age::Decryptor::new_buffered(file).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn expected_rows() -> Vec<Vec<String>> {
    (0..ROWS).map(row).collect()
}

fn csv_rows(plain: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(plain)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn parquet_rows(path: &Path) -> (Vec<String>, usize, Vec<Vec<String>>) {
    let reader = SerializedFileReader::new(fs::File::open(path).unwrap()).unwrap();
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let columns: Vec<String> = schema
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    for c in schema.columns() {
        assert_eq!(c.physical_type(), parquet::basic::Type::BYTE_ARRAY);
        assert_eq!(
            c.logical_type_ref(),
            Some(&parquet::basic::LogicalType::String)
        );
    }
    let groups = meta.num_row_groups();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (0..columns.len())
                .map(|i| r.get_string(i).unwrap().clone())
                .collect()
        })
        .collect();
    (columns, groups, rows)
}

fn sha256_hex(bytes: &[u8]) -> String {
    caldicott_ledger::sha256(bytes).to_string()
}

#[test]
fn a_release_decrypts_reads_back_and_verifies() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("release");
    let summary = write(&f, &dir);

    // Exactly the five files: no temporary file is left behind.
    assert_eq!(
        listing(&dir),
        [
            "cohort.csv.age",
            "cohort.ndjson.age",
            "cohort.parquet.age",
            "manifest.json",
            "manifest.json.sig"
        ]
    );
    assert_eq!(summary.parquet_row_groups, 4);

    // Every file decrypts to its plaintext; counts, sizes and hashes are the files'.
    for file in &summary.files {
        let path = dir.join(&file.entry.name);
        let cipher = fs::read(&path).unwrap();
        assert_eq!(file.entry.bytes, cipher.len() as u64);
        assert_eq!(file.entry.sha256, sha256_hex(&cipher));
        assert!(cipher.starts_with(b"age-encryption.org/v1\n"));
        let plain = decrypt(&path, &f.identity);
        assert_eq!(file.plaintext_bytes, plain.len() as u64);
        assert_eq!(file.plaintext_sha256, sha256_hex(&plain));
    }

    // CSV: RFC 4180, header first, every value back as written.
    let csv_plain = decrypt(&dir.join("cohort.csv.age"), &f.identity);
    assert!(csv_plain.starts_with(b"pseudo_id,age_band,sex,region,note,empty\r\n"));
    assert!(csv_plain.ends_with(b"\r\n"));
    let mut rows = csv_rows(&csv_plain);
    assert_eq!(rows.remove(0), HEADER);
    assert_eq!(rows, expected_rows());
    assert_eq!(summary.files[0].entry.format, FileFormat::Csv);
    assert_eq!(summary.files[0].entry.rows, ROWS as u64);

    // Parquet: UTF-8 string columns, several row groups, the same rows.
    let parquet_plain = decrypt(&dir.join("cohort.parquet.age"), &f.identity);
    let plain_path = t.path().join("cohort.parquet");
    fs::write(&plain_path, &parquet_plain).unwrap();
    let (columns, groups, rows) = parquet_rows(&plain_path);
    assert_eq!(columns, HEADER);
    assert_eq!(groups, 4);
    assert_eq!(rows, expected_rows());
    assert_eq!(summary.files[1].entry.rows, ROWS as u64);

    // NDJSON: the lines as given, each ending in a newline.
    let ndjson = String::from_utf8(decrypt(&dir.join("cohort.ndjson.age"), &f.identity)).unwrap();
    let expected: String = (0..FHIR).map(|i| fhir_line(i) + "\n").collect();
    assert_eq!(ndjson, expected);
    assert_eq!(summary.files[2].entry.rows, FHIR as u64);

    // The manifest verifies and is what the writer reported.
    let verified = verify_manifest(&dir, &f.signer.verifier_key()).unwrap();
    assert_eq!(verified.manifest, summary.manifest);
    assert_eq!(verified.signed_by, ["releases.caldicott.test"]);
    assert_eq!(
        verified.manifest_sha256,
        sha256_hex(&fs::read(dir.join("manifest.json")).unwrap())
    );

    // Its schema, and no value from any row or resource in it (nor in the signature).
    let text = fs::read_to_string(dir.join("manifest.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "format",
            "release_id",
            "agreement",
            "created_at",
            "recipient",
            "files",
            "cohort",
            "privacy_report"
        ]
    );
    assert_eq!(json["format"], "caldicott-release-manifest/1");
    assert_eq!(json["created_at"], "2026-11-29T11:00:00Z");
    assert_eq!(json["recipient"], f.identity.to_public().to_string());
    assert_eq!(json["agreement"]["version"], 3);
    assert_eq!(json["cohort"]["patients_removed_opt_out"], 100);
    assert_eq!(json["privacy_report"]["k_anonymity"]["k"], 5);
    let sig = fs::read_to_string(dir.join("manifest.json.sig")).unwrap();
    for published in [&text, &sig] {
        for marker in ["pid-", "obs-", "Zoë", "東京", "quotes"] {
            assert!(!published.contains(marker), "{marker} published");
        }
        for file in &summary.files {
            assert!(!published.contains(&file.plaintext_sha256));
        }
    }
    // The note's last line is in sha256sum format.
    assert!(sig.contains(&format!("\n{}  manifest.json\n", verified.manifest_sha256)));
}

#[test]
fn row_groups_are_bounded_by_bytes_as_well_as_rows() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("release");
    // Each row is 6 values: at least 6 × 32 bytes of handles plus the text; 4 KiB holds
    // fewer than 21 rows.
    let summary = write_release(
        &dir,
        NAME,
        &f.recipient,
        &HEADER,
        (0..500).map(|i| Ok::<_, std::io::Error>(row(i))),
        std::iter::empty::<Result<String, std::io::Error>>(),
        &info(),
        &f.signer,
        Limits {
            row_group_rows: 1_000_000,
            row_group_bytes: 4096,
        },
    )
    .unwrap();
    assert!(
        summary.parquet_row_groups >= 500 / 21,
        "{}",
        summary.parquet_row_groups
    );
    let plain = t.path().join("cohort.parquet");
    fs::write(
        &plain,
        decrypt(&dir.join("cohort.parquet.age"), &f.identity),
    )
    .unwrap();
    let (_, groups, rows) = parquet_rows(&plain);
    assert_eq!(groups as u64, summary.parquet_row_groups);
    assert_eq!(rows, (0..500).map(row).collect::<Vec<_>>());
}

/// Writes a release once; each case gets a fresh copy to damage.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

#[test]
fn tampering_with_any_file_is_named() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let good = t.path().join("good");
    let summary = write(&f, &good);
    let key = f.signer.verifier_key();
    let case = |n: &str| {
        let dir = t.path().join(n);
        copy_dir(&good, &dir);
        dir
    };

    for file in &summary.files {
        let name = &file.entry.name;
        // One bit in the middle: the size holds, the hash does not.
        let dir = case(&format!("flip-{name}"));
        flip_byte(&dir.join(name), file.entry.bytes as usize / 2);
        match verify_manifest(&dir, &key) {
            Err(VerifyError::Hash { file, .. }) => assert_eq!(&file, name),
            other => panic!("{name}: {other:?}"),
        }
        // And age refuses to decrypt it.
        let reader = BufReader::new(fs::File::open(dir.join(name)).unwrap());
        let decrypted = age::Decryptor::new_buffered(reader)
            .unwrap()
            .decrypt(std::iter::once(&f.identity as &dyn age::Identity))
            .map(|mut r| r.read_to_end(&mut Vec::new()));
        assert!(
            !matches!(decrypted, Ok(Ok(_))),
            "{name} decrypted after tampering"
        );

        // Truncated: named by its size.
        let dir = case(&format!("cut-{name}"));
        let path = dir.join(name);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        match verify_manifest(&dir, &key) {
            Err(VerifyError::Size {
                file,
                expected,
                actual,
            }) => {
                assert_eq!(&file, name);
                assert_eq!(actual + 1, expected);
            }
            other => panic!("{name}: {other:?}"),
        }

        // Missing.
        let dir = case(&format!("gone-{name}"));
        fs::remove_file(dir.join(name)).unwrap();
        match verify_manifest(&dir, &key) {
            Err(VerifyError::Missing { file }) => assert_eq!(&file, name),
            other => panic!("{name}: {other:?}"),
        }
    }

    // The manifest: any changed byte breaks its hash against the signed note.
    for at in [0, 40, 400] {
        let dir = case(&format!("manifest-{at}"));
        flip_byte(&dir.join("manifest.json"), at);
        let err = verify_manifest(&dir, &key).unwrap_err();
        assert!(matches!(err, VerifyError::ManifestHash { .. }), "{err:?}");
        assert!(err.to_string().starts_with("manifest.json: "), "{err}");
    }

    // The signature: a changed byte in the signature or in the signed text.
    let sig = fs::read_to_string(good.join("manifest.json.sig")).unwrap();
    let sig_at = sig.rfind(' ').unwrap() + 10;
    for at in [sig_at, 5] {
        let dir = case(&format!("sig-{at}"));
        flip_byte(&dir.join("manifest.json.sig"), at);
        let err = verify_manifest(&dir, &key).unwrap_err();
        assert!(matches!(err, VerifyError::Signature(_)), "{err:?}");
        assert!(err.to_string().starts_with("manifest.json.sig: "), "{err}");
    }

    // Another key: the signature is not from a known key.
    let other = generate_signing_key("releases.caldicott.test").unwrap();
    let err = verify_manifest(&good, &other.verifier_key()).unwrap_err();
    assert!(matches!(err, VerifyError::Signature(_)), "{err:?}");

    // A manifest and signature taken from another release do not vouch for these files.
    let t2 = tempfile::tempdir().unwrap();
    let second = t2.path().join("second");
    write(&f, &second);
    let dir = case("swapped");
    fs::copy(second.join("cohort.csv.age"), dir.join("cohort.csv.age")).unwrap();
    match verify_manifest(&dir, &key) {
        // Same plaintext, fresh age keys: different ciphertext (usually the same size).
        Err(VerifyError::Hash { file, .. } | VerifyError::Size { file, .. }) => {
            assert_eq!(file, "cohort.csv.age");
        }
        other => panic!("{other:?}"),
    }

    // The untouched copy still verifies.
    verify_manifest(&good, &key).unwrap();
}

fn assert_empty(dir: &Path) {
    assert_eq!(listing(dir), Vec::<String>::new(), "files left behind");
}

#[test]
fn a_failing_stream_leaves_no_file() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();

    // The row stream fails at row 1500 (after a row group was written out).
    let dir = t.path().join("rows");
    let rows = (0..ROWS).map(|i| {
        if i == 1499 {
            Err(std::io::Error::other("vault read failed"))
        } else {
            Ok(row(i))
        }
    });
    let err = write_release(
        &dir,
        NAME,
        &f.recipient,
        &HEADER,
        rows,
        std::iter::empty::<Result<String, std::io::Error>>(),
        &info(),
        &f.signer,
        LIMITS,
    )
    .unwrap_err();
    match &err {
        OutputError::Source { stream, item, .. } => assert_eq!((*stream, *item), ("rows", 1500)),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "the rows stream failed at item 1500");
    assert_empty(&dir);

    // The FHIR stream fails after every row was written.
    let dir = t.path().join("fhir");
    let err = write_release(
        &dir,
        NAME,
        &f.recipient,
        &HEADER,
        (0..ROWS).map(|i| Ok::<_, std::io::Error>(row(i))),
        (0..10).map(|i| {
            if i == 9 {
                Err(std::io::Error::other("deid failed"))
            } else {
                Ok(fhir_line(i))
            }
        }),
        &info(),
        &f.signer,
        LIMITS,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            OutputError::Source {
                stream: "fhir",
                item: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_empty(&dir);

    // A short row midway: named, abandons the release, later calls refuse.
    let dir = t.path().join("short");
    let mut w = ReleaseWriter::create(&dir, NAME, &f.recipient, &HEADER, LIMITS).unwrap();
    for i in 0..1200 {
        w.write_row(&row(i)).unwrap();
    }
    assert!(listing(&dir).iter().all(|n| n.starts_with('.')));
    let err = w.write_row(&["only", "three", "values"]).unwrap_err();
    assert_eq!(err.to_string(), "row 1201: 3 values for 6 columns");
    assert!(matches!(w.write_row(&row(0)), Err(OutputError::Abandoned)));
    assert_empty(&dir);
    assert!(matches!(
        w.finish(&info(), &f.signer),
        Err(OutputError::Abandoned)
    ));
    assert_empty(&dir);

    // A broken NDJSON line.
    let dir = t.path().join("ndjson");
    let mut w = ReleaseWriter::create(&dir, NAME, &f.recipient, &HEADER, LIMITS).unwrap();
    w.write_fhir_line(&fhir_line(1)).unwrap();
    let err = w
        .write_fhir_line("{\"resourceType\":\n\"Patient\"}")
        .unwrap_err();
    assert!(
        matches!(err, OutputError::NdjsonLine { line: 2, .. }),
        "{err:?}"
    );
    drop(w);
    assert_empty(&dir);

    // Refused release information at the very end: still nothing left.
    let dir = t.path().join("info");
    let mut w = ReleaseWriter::create(&dir, NAME, &f.recipient, &HEADER, LIMITS).unwrap();
    w.write_row(&row(1)).unwrap();
    let mut bad = info();
    bad.release_id = "rel\nrelease other".to_owned();
    let err = w.finish(&bad, &f.signer).unwrap_err();
    assert_eq!(
        err.to_string(),
        "release info field release_id: may only hold ASCII letters, digits, '.', '_', ':' and '-'"
    );
    assert_empty(&dir);

    // Dropping a writer midway: nothing left.
    let dir = t.path().join("dropped");
    let mut w = ReleaseWriter::create(&dir, NAME, &f.recipient, &HEADER, LIMITS).unwrap();
    for i in 0..2500 {
        w.write_row(&row(i)).unwrap();
    }
    drop(w);
    assert_empty(&dir);
}

#[test]
fn an_existing_release_is_never_overwritten() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("release");
    write(&f, &dir);
    let before: Vec<Vec<u8>> = listing(&dir)
        .iter()
        .map(|n| fs::read(dir.join(n)).unwrap())
        .collect();

    let err = ReleaseWriter::create(&dir, NAME, &f.recipient, &HEADER, LIMITS)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cohort.csv.age already exists in the output directory: a release is never overwritten"
    );
    // Another name in the same directory: the manifest would be replaced.
    let err = ReleaseWriter::create(&dir, "other", &f.recipient, &HEADER, LIMITS)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, OutputError::AlreadyExists { file } if file == "manifest.json"),
        "{err:?}"
    );
    let after: Vec<Vec<u8>> = listing(&dir)
        .iter()
        .map(|n| fs::read(dir.join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    verify_manifest(&dir, &f.signer.verifier_key()).unwrap();

    // A file that appears while the release is written is not replaced either, and the
    // files already renamed are taken back.
    let dir = t.path().join("race");
    let mut w = ReleaseWriter::create(&dir, NAME, &f.recipient, &HEADER, LIMITS).unwrap();
    w.write_row(&row(0)).unwrap();
    fs::write(dir.join("manifest.json"), b"someone else's").unwrap();
    let err = w.finish(&info(), &f.signer).unwrap_err();
    assert!(
        matches!(&err, OutputError::AlreadyExists { file } if file == "manifest.json"),
        "{err:?}"
    );
    assert_eq!(listing(&dir), ["manifest.json"]);
    assert_eq!(
        fs::read(dir.join("manifest.json")).unwrap(),
        b"someone else's"
    );
}

#[test]
fn recipient_and_names_are_refused_precisely() {
    let id = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret as _;
    let secret = id.to_string();
    let err = RecipientKey::parse(secret.expose_secret()).unwrap_err();
    assert_eq!(err, RecipientError::SecretKey);
    assert!(!err.to_string().contains(&secret.expose_secret()[16..]));
    let public = id.to_public().to_string();
    assert_eq!(
        RecipientKey::parse(&public[..public.len() - 2]),
        Err(RecipientError::InvalidBech32)
    );
    assert_eq!(RecipientKey::parse(""), Err(RecipientError::Empty));
    // 32 zero bytes: age itself would panic encrypting to it.
    let zero =
        bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("age").unwrap(), &[0u8; 32]).unwrap();
    assert!(zero.starts_with("age1qqqqqqqq"));
    assert_eq!(
        RecipientKey::parse(&zero),
        Err(RecipientError::LowOrderPoint)
    );

    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    for name in ["../escape", ".hidden", "a/b", ""] {
        let err = ReleaseWriter::create(t.path(), name, &f.recipient, &HEADER, LIMITS)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, OutputError::InvalidName), "{name:?}: {err:?}");
    }
    let err = ReleaseWriter::create(t.path(), NAME, &f.recipient, &["a", "a"], LIMITS)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "header column 2: the name repeats an earlier column"
    );
    assert_empty(t.path());
}

/// An external program for the interop check, or `None` (after saying so) to skip.
fn tool(var: &str, require: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            assert!(
                std::env::var(require).as_deref() != Ok("1"),
                "{require}=1 but {var} is not set"
            );
            // Straight to stderr: libtest captures println!/eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {what} needs {var} (cargo xtask test sets it)"
            );
            None
        }
    }
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn rage_decrypts_and_pyarrow_reads_the_release() {
    let Some(rage) = tool(
        "CALDICOTT_TEST_RAGE",
        "CALDICOTT_REQUIRE_RAGE",
        "the rage CLI check",
    ) else {
        return;
    };
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("release");
    let summary = write(&f, &dir);

    // The recipient's identity file, as rage-keygen writes it.
    let identity_file = t.path().join("identity.txt");
    {
        use age::secrecy::ExposeSecret as _;
        fs::write(
            &identity_file,
            format!(
                "# public key: {}\n{}\n",
                f.identity.to_public(),
                f.identity.to_string().expose_secret()
            ),
        )
        .unwrap();
    }
    let plain_dir = t.path().join("plain");
    fs::create_dir(&plain_dir).unwrap();
    for file in &summary.files {
        // `rage -d -i identity.txt FILE` to standard output, as the docs tell recipients.
        let plain = run_ok(
            Command::new(&rage)
                .arg("-d")
                .arg("-i")
                .arg(&identity_file)
                .arg(dir.join(&file.entry.name)),
        );
        assert_eq!(plain, decrypt(&dir.join(&file.entry.name), &f.identity));
        assert_eq!(sha256_hex(&plain), file.plaintext_sha256);
        let stem = file.entry.name.trim_end_matches(".age");
        fs::write(plain_dir.join(stem), plain).unwrap();
    }
    // rage refuses a tampered file.
    let tampered = t.path().join("tampered.csv.age");
    fs::copy(dir.join("cohort.csv.age"), &tampered).unwrap();
    flip_byte(&tampered, 300);
    let out = Command::new(&rage)
        .arg("-d")
        .arg("-i")
        .arg(&identity_file)
        .arg(&tampered)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "rage decrypted a tampered file");

    let Some(python) = tool(
        "CALDICOTT_TEST_PYTHON",
        "CALDICOTT_REQUIRE_PYTHON",
        "the pyarrow check",
    ) else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/parquet_check.py");
    let read = |kind: &str, file: &str| -> serde_json::Value {
        let out = run_ok(
            Command::new(&python)
                .arg(&script)
                .arg(kind)
                .arg(plain_dir.join(file))
                .env("PYTHONDONTWRITEBYTECODE", "1"),
        );
        serde_json::from_slice(&out).unwrap()
    };
    let expected: serde_json::Value = serde_json::to_value(expected_rows()).unwrap();

    let parquet = read("parquet", "cohort.parquet");
    assert_eq!(parquet["columns"], serde_json::json!(HEADER));
    assert_eq!(
        parquet["types"],
        serde_json::to_value(["string"; 6]).unwrap()
    );
    for t in parquet["logical_types"].as_array().unwrap() {
        assert_eq!(t, "String", "{parquet:?}");
    }
    assert_eq!(parquet["row_groups"], summary.parquet_row_groups);
    assert_eq!(parquet["rows"], expected);

    let csv = read("csv", "cohort.csv");
    assert_eq!(csv["crlf"], true);
    let mut rows = csv["rows"].as_array().unwrap().clone();
    assert_eq!(rows.remove(0), serde_json::json!(HEADER));
    assert_eq!(serde_json::Value::Array(rows), expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any strings survive CSV and Parquet (through age) unchanged, one column or several.
    #[test]
    fn any_values_round_trip(
        rows in prop::collection::vec(prop::collection::vec(any::<String>(), 1..=1), 0..20),
        wide in prop::collection::vec(prop::collection::vec("[a-z,\"\r\n é]{0,6}", 3..=3), 0..20),
    ) {
        let f = fixture();
        let t = tempfile::tempdir().unwrap();
        for (n, (header, rows)) in [(vec!["only"], rows), (vec!["a", "b", "c"], wide)]
            .into_iter()
            .enumerate()
        {
            let dir = t.path().join(n.to_string());
            let summary = write_release(
                &dir,
                NAME,
                &f.recipient,
                &header,
                rows.iter().map(Ok::<_, std::io::Error>),
                std::iter::empty::<Result<String, std::io::Error>>(),
                &info(),
                &f.signer,
                Limits { row_group_rows: 7, row_group_bytes: 1 << 20 },
            )
            .unwrap();
            prop_assert_eq!(summary.files[0].entry.rows, rows.len() as u64);
            let mut back = csv_rows(&decrypt(&dir.join("cohort.csv.age"), &f.identity));
            prop_assert_eq!(back.remove(0), header.clone());
            prop_assert_eq!(&back, &rows);
            let plain = t.path().join(format!("{n}.parquet"));
            fs::write(&plain, decrypt(&dir.join("cohort.parquet.age"), &f.identity)).unwrap();
            let (_, groups, back) = parquet_rows(&plain);
            prop_assert_eq!(groups, rows.len().div_ceil(7));
            prop_assert_eq!(&back, &rows);
        }
    }
}
