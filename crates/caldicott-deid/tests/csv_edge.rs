//! The CSV edge: what is written, and that bad input fails precisely and writes nothing.

use std::path::{Path, PathBuf};

use caldicott_deid::{DeidError, Policy, SuppressedRows, anonymise_csv};

const POLICY: &str = r#"
metric = "loss"
suppression_limit = 0.0

[privacy]
model = "k-anonymity"
k = 2

[[attribute]]
name = "nhs_number"
kind = "identifier"

[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = { intervals = [5, 10, 20] }

[[attribute]]
name = "postcode"
kind = "quasi-identifier"
hierarchy = "postcode"

[[attribute]]
name = "dob"
kind = "quasi-identifier"
hierarchy = { date = "yyyy-mm-dd" }

[[attribute]]
name = "job"
kind = "quasi-identifier"
hierarchy = { csv = "job.csv" }

[[attribute]]
name = "diagnosis"
kind = "sensitive"
"#;

const JOBS: &str = "nurse;clinical;*\ndoctor;clinical;*\nporter;support;*\nclerk;support;*\n";

const INPUT: &str = "nhs_number,age,postcode,dob,job,diagnosis
9990000018,34,LS1 4AP,1990-03-15,nurse,asthma
9990000026,36,LS1 4BB,1988-07-01,doctor,diabetes
9990000034,41,LS2 9JT,1983-01-20,porter,asthma
9990000042,43,LS2 9AA,1981-11-30,clerk,\"copd, mild\"
9990000050,38,LS1 4ZZ,1986-05-05,nurse,none
9990000069,44,LS2 9QQ,1980-02-29,clerk,asthma
";

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new(input: &str, policy: &str, jobs: &str) -> (Self, Policy) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("in.csv"), input).unwrap();
        std::fs::write(tmp.path().join("job.csv"), jobs).unwrap();
        std::fs::write(tmp.path().join("policy.toml"), policy).unwrap();
        let policy = Policy::from_toml_file(&tmp.path().join("policy.toml")).unwrap();
        (Self { tmp }, policy)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn run(&self, policy: &Policy) -> Result<caldicott_deid::Report, DeidError> {
        anonymise_csv(
            &self.path("in.csv"),
            policy,
            None,
            &self.path("out.csv"),
            &self.path("report.json"),
        )
    }
    /// Nothing but the inputs (and a pre-existing output, if any) in the directory.
    fn assert_nothing_written(&self, preexisting: &[&str]) {
        let mut names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = ["in.csv", "job.csv", "policy.toml"]
            .iter()
            .chain(preexisting)
            .map(|s| s.to_string())
            .collect();
        expected.sort();
        assert_eq!(names, expected);
    }
}

#[test]
fn builtin_and_csv_hierarchies_end_to_end() {
    let (dir, policy) = Dir::new(INPUT, POLICY, JOBS);
    let report = dir.run(&policy).unwrap();
    assert!(report.min_class_size >= 2);
    assert_eq!(report.identifiers_removed, ["nhs_number"]);
    let out = std::fs::read_to_string(dir.path("out.csv")).unwrap();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("nhs_number,age,postcode,dob,job,diagnosis")
    );
    assert!(!out.contains('\r'), "LF input gives LF output");
    let rows: Vec<Vec<String>> = out
        .lines()
        .skip(1)
        .map(|l| {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(l.as_bytes())
                .records()
                .next()
                .unwrap()
                .unwrap()
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 6);
    for row in &rows {
        assert_eq!(row[0], "*", "identifier removed");
        assert!(!out.contains("999000"), "no NHS number in the output");
    }
    // Sensitive values untouched, quoting kept where needed.
    assert_eq!(rows[3][5], "copd, mild");
    assert!(out.contains("\"copd, mild\""));
    // The generalised values are spelled as the hierarchies spell them.
    let t = &report.transformation;
    assert_eq!(
        t.iter().map(|x| x.attribute.as_str()).collect::<Vec<_>>(),
        ["age", "postcode", "dob", "job"]
    );
    let age_labels = ["34", "30-34", "30-39", "20-39", "*"];
    let pc_labels = ["LS1 4AP", "LS1 4", "LS1", "LS", "*"];
    let dob_labels = ["1990-03-15", "1990-03", "1990", "*"];
    let job_labels = ["nurse", "clinical", "*"];
    assert_eq!(rows[0][1], age_labels[t[0].level as usize]);
    assert_eq!(rows[0][2], pc_labels[t[1].level as usize]);
    assert_eq!(rows[0][3], dob_labels[t[2].level as usize]);
    assert_eq!(rows[0][4], job_labels[t[3].level as usize]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("report.json")).unwrap()).unwrap();
    assert_eq!(json["utility"]["metric"], "loss");
    assert_eq!(json["records"], 6);
}

#[test]
fn suppressed_rows_are_starred_or_removed() {
    // One 40-something among 30-somethings: with 20% suppression and k = 2 the optimum keeps
    // 10-year age bands and sex, and suppresses the outlier (DM 2² + 2² + 5·1 = 13).
    let input = "id,age,sex,note\n1,31,F,a\n2,33,F,b\n3,35,M,c\n4,37,M,d\n5,48,F,e\n";
    let policy = r#"
metric = "discernibility"
suppression_limit = 0.2
[privacy]
model = "k-anonymity"
k = 2
[[attribute]]
name = "id"
kind = "identifier"
[[attribute]]
name = "age"
kind = "quasi-identifier"
hierarchy = { intervals = [10, 20] }
[[attribute]]
name = "sex"
kind = "quasi-identifier"
hierarchy = { csv = "job.csv" }
[[attribute]]
name = "note"
kind = "insensitive"
"#;
    let (dir, mut policy) = Dir::new(input, policy, "F;*\nM;*\n");
    let report = dir.run(&policy).unwrap();
    assert_eq!(report.records_suppressed, 1);
    assert_eq!(report.rows_written, 5);
    let out = std::fs::read_to_string(dir.path("out.csv")).unwrap();
    assert_eq!(
        out,
        "id,age,sex,note\n*,30-39,F,a\n*,30-39,F,b\n*,30-39,M,c\n*,30-39,M,d\n*,*,*,e\n"
    );
    assert_eq!(report.utility.discernibility, 13.0);
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].contains("smaller than 2"),
        "{:?}",
        report.warnings
    );

    policy.suppressed_rows = SuppressedRows::Remove;
    let report = dir.run(&policy).unwrap();
    assert_eq!(report.rows_written, 4);
    assert!(report.warnings.is_empty());
    let out = std::fs::read_to_string(dir.path("out.csv")).unwrap();
    assert_eq!(
        out,
        "id,age,sex,note\n*,30-39,F,a\n*,30-39,F,b\n*,30-39,M,c\n*,30-39,M,d\n"
    );
}

#[test]
fn ragged_row_names_its_line_and_writes_nothing() {
    let input = INPUT.replace(
        "9990000034,41,LS2 9JT,1983-01-20,porter,asthma",
        "9990000034,41,LS2 9JT,porter,asthma",
    );
    let (dir, policy) = Dir::new(&input, POLICY, JOBS);
    let err = dir.run(&policy).unwrap_err();
    assert!(
        matches!(
            err,
            DeidError::RaggedRow {
                line: 4,
                expected: 6,
                found: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("line 4 has 5 fields but the header has 6"),
        "{err}"
    );
    dir.assert_nothing_written(&[]);
}

#[test]
fn value_missing_from_hierarchy_names_row_column_value() {
    let input = INPUT.replace(",clerk,\"copd", ",surgeon,\"copd");
    let (dir, policy) = Dir::new(&input, POLICY, JOBS);
    let err = dir.run(&policy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "data row 4, column `job`: value `surgeon` is not in the column's hierarchy: every value of a quasi-identifier must have a row in its hierarchy"
    );
    dir.assert_nothing_written(&[]);
}

#[test]
fn invalid_builtin_value_names_row_not_value() {
    let input = INPUT.replace("LS2 9QQ", "NOT A PC");
    let (dir, policy) = Dir::new(&input, POLICY, JOBS);
    let err = dir.run(&policy).unwrap_err().to_string();
    assert!(
        err.starts_with("data row 6, column `postcode`: the value is not a UK postcode"),
        "{err}"
    );
    assert!(!err.contains("NOT A PC"), "{err}");
    let input = INPUT.replace("1981-11-30", "1981-11-31");
    let (dir, policy) = Dir::new(&input, POLICY, JOBS);
    let err = dir.run(&policy).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "data row 4, column `dob`: the value is spelled YYYY-MM-DD but is not a calendar date"
        ),
        "{err}"
    );
    dir.assert_nothing_written(&[]);
}

#[test]
fn inconsistent_hierarchy_file_is_refused() {
    let jobs = "nurse;clinical;*\ndoctor;clinical;medical\nporter;support;*\nclerk;support;*\n";
    let (dir, policy) = Dir::new(INPUT, POLICY, jobs);
    let err = dir.run(&policy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "hierarchy for `job`: `clinical` at level 1 generalises to `*` (row 1) and to `medical` (row 2) at level 2: each value must have exactly one parent, so the levels form a tree"
    );
    let jobs = "nurse;clinical;*\ndoctor;clinical\n";
    let (dir, policy) = Dir::new(INPUT, POLICY, jobs);
    let err = dir.run(&policy).unwrap_err();
    assert!(
        err.to_string()
            .contains("row 2 has 2 levels but row 1 has 3"),
        "{err}"
    );
    dir.assert_nothing_written(&[]);
}

#[test]
fn unsatisfiable_policy_is_explained_and_existing_output_kept() {
    let policy_text = POLICY.replace("k = 2", "k = 10");
    let (dir, policy) = Dir::new(INPUT, &policy_text, JOBS);
    std::fs::write(dir.path("out.csv"), "previous release\n").unwrap();
    let err = dir.run(&policy).unwrap_err();
    assert!(
        matches!(
            err,
            DeidError::Unsatisfiable {
                k: 10,
                records: 6,
                violating: 6,
                allowed: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the policy cannot be satisfied: 10-anonymity needs every published record in a class of at least 10; even generalising every quasi-identifier fully leaves 6 of 6 records in smaller classes, and the suppression limit (0) allows suppressing at most 0"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path("out.csv")).unwrap(),
        "previous release\n"
    );
    dir.assert_nothing_written(&["out.csv"]);
}

#[test]
fn columns_must_match_the_policy() {
    let (dir, policy) = Dir::new(&INPUT.replacen("diagnosis", "diag", 1), POLICY, JOBS);
    let err = dir.run(&policy).unwrap_err().to_string();
    assert_eq!(
        err,
        "the policy names column `diagnosis`, which is not in the input's header"
    );
    let (dir, policy) = Dir::new(
        &INPUT
            .replacen("diagnosis\n", "diagnosis,extra\n", 1)
            .replace('\n', ",x\n")
            .replacen(",x\n", "\n", 1),
        POLICY,
        JOBS,
    );
    let err = dir.run(&policy).unwrap_err().to_string();
    assert!(
        err.starts_with("column `extra` of the input is not classified by the policy"),
        "{err}"
    );
    let (dir, policy) = Dir::new(&INPUT.replacen("job,", "age,", 1), POLICY, JOBS);
    let err = dir.run(&policy).unwrap_err().to_string();
    assert_eq!(
        err,
        "column `age` appears twice in the header (columns 2 and 5)"
    );
    dir.assert_nothing_written(&[]);
}

#[test]
fn malformed_and_empty_input() {
    let (dir, policy) = Dir::new(INPUT, POLICY, JOBS);
    let mut bytes = INPUT.as_bytes().to_vec();
    let at = INPUT.find("porter").unwrap();
    bytes[at] = 0xff;
    std::fs::write(dir.path("in.csv"), &bytes).unwrap();
    let err = dir.run(&policy).unwrap_err();
    assert!(
        matches!(err, DeidError::MalformedCsv { line: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("malformed CSV at line 4: field 5 is not valid UTF-8"),
        "{err}"
    );

    std::fs::write(dir.path("in.csv"), "").unwrap();
    assert!(matches!(
        dir.run(&policy).unwrap_err(),
        DeidError::MissingHeader { .. }
    ));
    std::fs::write(
        dir.path("in.csv"),
        "nhs_number,age,postcode,dob,job,diagnosis\n",
    )
    .unwrap();
    assert!(matches!(
        dir.run(&policy).unwrap_err(),
        DeidError::NoRecords
    ));
    dir.assert_nothing_written(&[]);
}

#[test]
fn hierarchies_dir_overrides_policy_dir() {
    let (dir, policy) = Dir::new(INPUT, POLICY, JOBS);
    let elsewhere = tempfile::tempdir().unwrap();
    let err = anonymise_csv(
        &dir.path("in.csv"),
        &policy,
        Some(elsewhere.path()),
        &dir.path("out.csv"),
        &dir.path("report.json"),
    )
    .unwrap_err();
    assert!(
        matches!(err, DeidError::Io { ref path, .. } if path == &elsewhere.path().join("job.csv")),
        "{err:?}"
    );
    std::fs::write(elsewhere.path().join("job.csv"), JOBS).unwrap();
    anonymise_csv(
        &dir.path("in.csv"),
        &policy,
        Some(Path::new(elsewhere.path())),
        &dir.path("out.csv"),
        &dir.path("report.json"),
    )
    .unwrap();
}
