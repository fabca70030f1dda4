//! Column transformations: keyed pseudonyms, per-patient date shifts, top/bottom coding and
//! free-text scrubbing, by property and through the CSV edge with a policy using every kind.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use caldicott_core::NhsNumber;
use caldicott_deid::{
    DeidError, Policy, PseudonymKey, Table, Transformer, anonymise_csv, anonymise_csv_with_key,
    anonymise_table_with_key,
};
use proptest::prelude::*;

fn key(seed: u8) -> PseudonymKey {
    PseudonymKey::from_bytes(&[seed; 32]).unwrap()
}

/// A policy with no quasi-identifier: k = 1 holds trivially, so only the transforms act.
fn policy(attributes: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "metric = \"loss\"\n[privacy]\nk = 1\n{attributes}"
    ))
    .unwrap()
}

const FREE_TEXT_POLICY: &str = r#"
[[attribute]]
name = "name"
kind = "identifier"

[[attribute]]
name = "nhs"
kind = "identifier"

[[attribute]]
name = "mrn"
kind = "pseudonym"

[[attribute]]
name = "notes"
kind = "free-text"
transform = { name_columns = ["name"], names = ["Ravensworth"] }
"#;

/// Words of the placeholders, which a generated name must not be.
const PLACEHOLDER_WORDS: [&str; 9] = [
    "nhs",
    "number",
    "name",
    "email",
    "phone",
    "postcode",
    "date",
    "address",
    "identifier",
];

const VOCABULARY: [&str; 16] = [
    "patient", "seen", "in", "clinic", "today", "reports", "pain", "and", "was", "given", "the",
    "advice", "review", "weeks", "stable", "for",
];

fn name_word() -> impl Strategy<Value = String> {
    "[a-z]{3,9}"
        .prop_filter("not a placeholder word", |w| {
            !PLACEHOLDER_WORDS.contains(&w.as_str())
        })
        .prop_map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
}

fn nhs_number() -> impl Strategy<Value = NhsNumber> {
    (1u32..999_999_999).prop_filter_map("no check digit", NhsNumber::from_nine_digits)
}

/// How a token of the note is written.
#[derive(Debug, Clone)]
enum Token {
    Word(usize),
    Number(u16),
    Name(usize, u8),
    Nhs(u8),
    Mrn(u8),
}

fn spell_nhs(n: &NhsNumber, style: u8) -> String {
    let d = n.as_str();
    match style % 4 {
        0 => d.to_string(),
        1 => format!("{} {} {}", &d[..3], &d[3..6], &d[6..]),
        2 => format!("{}-{}-{}", &d[..3], &d[3..6], &d[6..]),
        _ => format!("({d})"),
    }
}

fn spell_case(w: &str, style: u8) -> String {
    match style % 3 {
        0 => w.to_string(),
        1 => w.to_uppercase(),
        _ => w.to_lowercase(),
    }
}

/// The digits of the text with every non-digit removed.
fn digits_only(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn lower_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Neither the row's name (any word of it, in any case), nor the policy's listed name,
    /// nor its NHS number (however spelled), nor its pseudonymised hospital number (in any
    /// case) survives in its free text.
    #[test]
    fn no_identifier_survives_in_free_text(
        first in name_word(),
        last in name_word(),
        nhs in nhs_number(),
        mrn in "[A-Z]{2}[0-9]{5}",
        tokens in proptest::collection::vec(
            prop_oneof![
                4 => (0usize..16).prop_map(Token::Word),
                2 => (0u16..1000).prop_map(Token::Number),
                2 => (0usize..3, 0u8..3).prop_map(|(w, c)| Token::Name(w, c)),
                1 => (0u8..4).prop_map(Token::Nhs),
                1 => (0u8..3).prop_map(Token::Mrn),
            ],
            1..40,
        ),
        separators in proptest::collection::vec(prop_oneof![Just(" "), Just(", "), Just(". "), Just(" - ")], 40),
    ) {
        let names = [first.clone(), last.clone(), "Ravensworth".to_string()];
        let text: String = tokens
            .iter()
            .zip(&separators)
            .map(|(t, sep)| {
                let w = match t {
                    Token::Word(i) => VOCABULARY[*i].to_string(),
                    Token::Number(n) => n.to_string(),
                    Token::Name(i, c) => spell_case(&names[*i], *c),
                    Token::Nhs(style) => spell_nhs(&nhs, *style),
                    Token::Mrn(c) => spell_case(&mrn, *c),
                };
                format!("{w}{sep}")
            })
            .collect();
        let full_name = format!("{first} {last}");
        let table = Table::from_rows(
            vec!["name".into(), "nhs".into(), "mrn".into(), "notes".into()],
            [[full_name.as_str(), nhs.as_str(), mrn.as_str(), text.as_str()]],
        )
        .unwrap();
        let p = policy(FREE_TEXT_POLICY);
        let t = Transformer::new(&table, &p, Some(&key(9))).unwrap();
        let out = t.value(&table, 0, 3).unwrap().into_owned();
        let forbidden: HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
        for w in lower_words(&out) {
            prop_assert!(!forbidden.contains(&w), "name `{}` survives in {:?} (from {:?})", w, out, text);
        }
        prop_assert!(
            !out.to_lowercase().contains(&mrn.to_lowercase()),
            "hospital number survives in {:?} (from {:?})", out, text
        );
        prop_assert!(
            !digits_only(&out).contains(nhs.as_str()),
            "NHS number survives in {:?} (from {:?})", out, text
        );
    }

    /// A pseudonym is stable within a key, differs across keys and values, never equals
    /// its input, and has the documented length and alphabet.
    #[test]
    fn pseudonyms_stable_within_a_key_only(
        value in "[ -~]{1,30}",
        other in "[ -~]{1,30}",
        k1 in any::<u8>(),
        k2 in any::<u8>(),
        length in 16usize..=51,
    ) {
        prop_assume!(k1 != k2);
        let a = key(k1).pseudonym(&value, length);
        prop_assert_eq!(&a, &key(k1).pseudonym(&value, length));
        prop_assert_eq!(a.len(), length);
        prop_assert!(a.bytes().all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        prop_assert_ne!(&a, &key(k2).pseudonym(&value, length));
        prop_assert_ne!(a.as_str(), value.trim());
        if value.trim() != other.trim() {
            prop_assert_ne!(&a, &key(k1).pseudonym(&other, length));
        }
    }

    /// Every date of one patient moves by the same number of days, within ±max_days and
    /// never 0, checked against an independent calendar (the `time` crate).
    #[test]
    fn date_shift_constant_per_patient(
        rows in proptest::collection::vec((0usize..6, 0i64..40_000), 1..60),
        max_days in 1u32..=400,
        seed in any::<u8>(),
        uk in any::<bool>(),
    ) {
        let format = if uk { "dd/mm/yyyy" } else { "yyyy-mm-dd" };
        let base = time::Date::from_calendar_date(1930, time::Month::January, 1).unwrap();
        let spell = |d: time::Date| {
            let (y, m, day) = (d.year(), u8::from(d.month()), d.day());
            if uk { format!("{day:02}/{m:02}/{y:04}") } else { format!("{y:04}-{m:02}-{day:02}") }
        };
        let parse = |s: &str| {
            let f = if uk {
                time::macros::format_description!("[day]/[month]/[year]")
            } else {
                time::macros::format_description!("[year]-[month]-[day]")
            };
            time::Date::parse(s, f).unwrap()
        };
        let data: Vec<[String; 2]> = rows
            .iter()
            .map(|&(p, d)| [format!("P{p}"), spell(base + time::Duration::days(d))])
            .collect();
        let table = Table::from_rows(vec!["patient".into(), "seen".into()], &data).unwrap();
        let p = policy(&format!(
            "[[attribute]]\nname = \"patient\"\nkind = \"pseudonym\"\n\
             [[attribute]]\nname = \"seen\"\nkind = \"date-shift\"\n\
             transform = {{ patient = \"patient\", max_days = {max_days}, format = \"{format}\" }}\n"
        ));
        let k = key(seed);
        let t = Transformer::new(&table, &p, Some(&k)).unwrap();
        let mut offsets: HashMap<String, i64> = HashMap::new();
        for (i, [patient, date]) in data.iter().enumerate() {
            let shifted = t.value(&table, i, 1).unwrap();
            let offset = (parse(&shifted) - parse(date)).whole_days();
            prop_assert!(offset != 0 && offset.unsigned_abs() <= u64::from(max_days), "offset {}", offset);
            let first = *offsets.entry(patient.clone()).or_insert(offset);
            prop_assert_eq!(first, offset, "patient {} shifted by two offsets", patient);
            // The patient column is pseudonymised, and is not its input.
            let pseudonym = t.value(&table, i, 0).unwrap().into_owned();
            prop_assert_ne!(pseudonym, patient.clone());
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const E2E_POLICY: &str = r#"
metric = "loss"
suppression_limit = 0.0
suppressed_rows = "remove"

[privacy]
k = 2

[[attribute]]
name = "name"
kind = "identifier"

[[attribute]]
name = "nhs_number"
kind = "pseudonym"
transform = { key = { file = "agreement.key" }, length = 20 }

[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = { csv = "sex.csv" }

[[attribute]]
name = "admitted"
kind = "date-shift"
transform = { key = { file = "agreement.key" }, patient = "nhs_number", max_days = 30, format = "yyyy-mm-dd" }

[[attribute]]
name = "age"
kind = "top-bottom-coded"
transform = { bottom = 16, top = 90 }

[[attribute]]
name = "notes"
kind = "free-text"
transform = { name_columns = ["name"] }

[[attribute]]
name = "diagnosis"
kind = "sensitive"
"#;

const E2E_INPUT: &str = "\
name,nhs_number,sex,admitted,age,notes,diagnosis
Jane Smith,943 476 5919,F,2024-03-01,95,Mrs Smith (NHS 943 476 5919) seen; lives 12 High Street; call 07700 900123,J45
Jane Smith,9434765919,F,2024-03-09,95,jane reviewed at LS1 4AP on 12/03/2024,J45
Omar Khan,9990000018,M,2024-01-31,12,Omar Khan email omar.khan@example.org,E11
Li Wei,9990000026,M,2023-12-25,40,nothing identifying here,I10
";

#[cfg(unix)]
fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(not(unix))]
fn private(_: &Path) {}

fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn csv_end_to_end_with_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.csv", E2E_INPUT);
    write(d, "sex.csv", "F;*\nM;*\n");
    let key_hex = "5a".repeat(32);
    let key_file = write(d, "agreement.key", &format!("{key_hex}\n"));
    private(&key_file);
    let policy_path = write(d, "policy.toml", E2E_POLICY);
    let policy = Policy::from_toml_file(&policy_path).unwrap();
    let (out, report) = (d.join("out.csv"), d.join("report.json"));
    anonymise_csv(&input, &policy, None, &out, &report).unwrap();
    let rows = read_rows(&out);
    assert_eq!(
        rows[0],
        [
            "name",
            "nhs_number",
            "sex",
            "admitted",
            "age",
            "notes",
            "diagnosis"
        ]
    );
    assert_eq!(rows.len(), 5);
    let key = PseudonymKey::from_hex(&key_hex, "test").unwrap();
    // Identifiers never reach the output; pseudonyms link the two spellings of one number.
    for row in &rows[1..] {
        assert_eq!(row[0], "*");
        assert_eq!(row[1].len(), 20);
    }
    assert_eq!(rows[1][1], rows[2][1]);
    assert_eq!(rows[1][1], key.pseudonym("9434765919", 20));
    assert_ne!(rows[3][1], rows[4][1]);
    // One offset for Jane's two dates: 8 days apart before and after.
    let offset = key.date_offset("9434765919", 30);
    let shift = |d: &str| {
        caldicott_deid::transform::shift_date(d, caldicott_deid::DateFormat::Iso, offset).unwrap()
    };
    assert_eq!(rows[1][3], shift("2024-03-01"));
    assert_eq!(rows[2][3], shift("2024-03-09"));
    assert_eq!(
        [&rows[1][4], &rows[3][4], &rows[4][4]],
        [">=90", "<=16", "40"]
    );
    assert_eq!(
        rows[1][5],
        "Mrs [NAME] (NHS [NHS-NUMBER]) seen; lives [ADDRESS]; call [PHONE]"
    );
    assert_eq!(rows[2][5], "[NAME] reviewed at [POSTCODE] on [DATE]");
    // The whole name (an identifier column's value) and its words merge into one span.
    assert_eq!(rows[3][5], "[NAME] email [EMAIL]");
    assert_eq!(rows[4][5], "nothing identifying here");
    // No input value of an identifier or pseudonym column appears anywhere in the output.
    let text = std::fs::read_to_string(&out).unwrap();
    for secret in [
        "Jane",
        "Smith",
        "Omar",
        "Khan",
        "9434765919",
        "943 476 5919",
        "9990000018",
        "9990000026",
        "Li Wei",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }

    // The library path with the key from the caller gives the same output.
    let out2 = d.join("out2.csv");
    anonymise_csv_with_key(&input, &policy, None, &out2, &d.join("r2.json"), Some(&key)).unwrap();
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), text);

    // A different agreement key: nothing links.
    let other = PseudonymKey::from_hex(&"a5".repeat(32), "test").unwrap();
    let out3 = d.join("out3.csv");
    anonymise_csv_with_key(
        &input,
        &policy,
        None,
        &out3,
        &d.join("r3.json"),
        Some(&other),
    )
    .unwrap();
    let rows3 = read_rows(&out3);
    for (a, b) in rows[1..].iter().zip(&rows3[1..]) {
        assert_ne!(a[1], b[1]);
    }
}

#[test]
fn keys_come_from_the_named_source_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "in.csv", E2E_INPUT);
    write(d, "sex.csv", "F;*\nM;*\n");
    let policy_path = write(d, "policy.toml", E2E_POLICY);
    let policy = Policy::from_toml_file(&policy_path).unwrap();
    let (out, report) = (d.join("out.csv"), d.join("report.json"));
    // Key file missing: an error naming the file, nothing written.
    let e = anonymise_csv(&input, &policy, None, &out, &report).unwrap_err();
    assert!(e.to_string().contains("agreement.key"), "{e}");
    assert!(!out.exists());
    // World-readable key file: refused, and the key is not in the message.
    let secret = "5a".repeat(32);
    let key_file = write(d, "agreement.key", &secret);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = anonymise_csv(&input, &policy, None, &out, &report)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0600") && !e.contains(&secret), "{e}");
    }
    // No key at all through the library: the column is named.
    let e = anonymise_csv_with_key(&input, &policy, None, &out, &report, None).unwrap_err();
    assert!(
        matches!(e, DeidError::MissingKey { ref column } if column == "nhs_number"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn policy_rules_for_transforms() {
    let bad = |attrs: &str| {
        Policy::from_toml_str(&format!("metric = \"loss\"\n[privacy]\nk = 1\n{attrs}"))
            .unwrap_err()
            .to_string()
    };
    let e = bad("[[attribute]]\nname = \"d\"\nkind = \"date-shift\"\n");
    assert!(e.contains("attribute `d`: a date-shift needs"), "{e}");
    let e = bad(
        "[[attribute]]\nname = \"d\"\nkind = \"date-shift\"\ntransform = { patient = \"p\", max_days = 3, format = \"yyyy-mm-dd\" }\n",
    );
    assert!(e.contains("patient column `p` is not an attribute"), "{e}");
    let e = bad("[[attribute]]\nname = \"p\"\nkind = \"pseudonym\"\ntransform = { length = 8 }\n");
    assert!(e.contains("between 16 and 51"), "{e}");
    let e = bad(
        "[[attribute]]\nname = \"a\"\nkind = \"top-bottom-coded\"\ntransform = { bottom = 90, top = 16 }\n",
    );
    assert!(e.contains("must be below top"), "{e}");
    let e = bad(
        "[[attribute]]\nname = \"a\"\nkind = \"top-bottom-coded\"\ntransform = { length = 20 }\n",
    );
    assert!(e.contains("`length` does not apply"), "{e}");
    let e = bad("[[attribute]]\nname = \"a\"\nkind = \"sensitive\"\ntransform = { top = 3 }\n");
    assert!(e.contains("only pseudonym, date-shift"), "{e}");
    let e = bad(
        "[[attribute]]\nname = \"a\"\nkind = \"pseudonym\"\ntransform = { key = { env = \"A\" } }\n\
         [[attribute]]\nname = \"b\"\nkind = \"pseudonym\"\ntransform = { key = { env = \"B\" } }\n",
    );
    assert!(e.contains("one agreement key"), "{e}");
    // The key itself has no place in a policy.
    let e = bad(
        "[[attribute]]\nname = \"a\"\nkind = \"pseudonym\"\ntransform = { key = { hex = \"00\" } }\n",
    );
    assert!(e.contains("unknown variant"), "{e}");
}

#[test]
fn bad_values_fail_before_anything_is_written() {
    let table = Table::from_rows(
        vec!["p".into(), "age".into(), "seen".into()],
        [["A", "40", "2024-01-01"], ["B", "forty", "2024-01-02"]],
    )
    .unwrap();
    let coded = policy(
        "[[attribute]]\nname = \"p\"\nkind = \"pseudonym\"\n\
         [[attribute]]\nname = \"age\"\nkind = \"top-bottom-coded\"\ntransform = { top = 90 }\n\
         [[attribute]]\nname = \"seen\"\nkind = \"date-shift\"\ntransform = { patient = \"p\", max_days = 10, format = \"dd/mm/yyyy\" }\n",
    );
    let hierarchies = Default::default();
    let e = anonymise_table_with_key(&table, &coded, &hierarchies, Some(&key(1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data row 2, column `age`") && !e.contains("forty"),
        "{e}"
    );
    let fixed = Table::from_rows(
        vec!["p".into(), "age".into(), "seen".into()],
        [["A", "40", "2024-01-01"]],
    )
    .unwrap();
    let e = anonymise_table_with_key(&fixed, &coded, &hierarchies, Some(&key(1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column `seen`") && e.contains("DD/MM/YYYY"),
        "{e}"
    );
}

/// Without the transformer attached, a release writes `*` for transformed columns: a raw
/// value cannot leak by forgetting them.
#[test]
fn release_without_transformer_writes_stars() {
    let table = Table::from_rows(
        vec!["p".into(), "notes".into()],
        [["9434765919", "call 07700 900123"]],
    )
    .unwrap();
    let p = policy(
        "[[attribute]]\nname = \"p\"\nkind = \"pseudonym\"\n\
         [[attribute]]\nname = \"notes\"\nkind = \"free-text\"\n",
    );
    let hierarchies = Default::default();
    let anonymiser = caldicott_deid::Anonymiser::new(&table, &p, &hierarchies).unwrap();
    let solution = anonymiser.search(caldicott_deid::Algorithm::Flash).unwrap();
    let out = anonymiser.release(&solution).to_table().unwrap();
    assert_eq!(out.row(0).collect::<Vec<_>>(), ["*", "*"]);
    let out = anonymiser
        .release_with_key(&solution, Some(&key(3)))
        .unwrap()
        .to_table()
        .unwrap();
    assert_eq!(
        out.row(0).collect::<Vec<_>>(),
        [key(3).pseudonym("9434765919", 16).as_str(), "call [PHONE]"]
    );
}

/// Throughput of free-text scrubbing (run with `--release -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn scrub_throughput() {
    let note = "Mrs Jane Smith (NHS 943 476 5919) was seen in clinic on 12/03/2024 and reports \
                pain in the left knee; lives at 12 High Street, Leeds LS1 4AP; call 07700 900123 \
                or email jane.smith@example.org; review in six weeks by Dr Patel. ";
    let rows: Vec<[String; 2]> = (0..20_000)
        .map(|i| [format!("Jane Smith{i}"), format!("{note}{i}")])
        .collect();
    let table = Table::from_rows(vec!["name".into(), "notes".into()], &rows).unwrap();
    let p = policy(
        "[[attribute]]\nname = \"name\"\nkind = \"identifier\"\n\
         [[attribute]]\nname = \"notes\"\nkind = \"free-text\"\ntransform = { name_columns = [\"name\"] }\n",
    );
    let t = Transformer::new(&table, &p, None).unwrap();
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for i in 0..table.num_rows() {
        bytes += t.value(&table, i, 1).unwrap().len();
    }
    let secs = start.elapsed().as_secs_f64();
    let input: usize = rows.iter().map(|r| r[1].len()).sum();
    println!(
        "scrubbed {} notes, {:.1} MB in {:.3} s: {:.1} MB/s, {:.0} notes/s (output {} bytes)",
        rows.len(),
        input as f64 / 1e6,
        secs,
        input as f64 / 1e6 / secs,
        rows.len() as f64 / secs,
        bytes
    );
}
