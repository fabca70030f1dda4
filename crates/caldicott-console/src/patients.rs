//! The Patients pages: finding a patient (`/patients`), the record view
//! (`/patients/{id}`), and break-glass when there is no care relationship
//! (`/patients/{id}/break-glass`).
//!
//! What it is: the console's view of the same records the FHIR API serves, read the way the
//! API reads them (a `Patient` read, then searches of the patient's compartment, each
//! resource decided by a `caldicott_api::guard::Guard` for the signed-in person), so the
//! same policy decides what is shown and the same audit trail records it. Searches are POST
//! forms: an NHS number, a name or a date of birth never appears in a URL; a record's URL
//! carries only its FHIR resource id, and no page title names a patient. A record that
//! does not exist and one the viewer may not see give the same 404 page; for clinicians it
//! offers break-glass, declared exactly as the API's `$break-glass` declares it.
//!
//! What it is not: an editor (nothing here writes clinical data), nor a way around the
//! role × category table: a section the role may not see is not searched at all and says so.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use caldicott_api::ApiError;
use caldicott_api::audit::{EventKind, Outcome};
use caldicott_api::guard::{Caller, Guard};
use caldicott_api::search::{self, Handling};
use caldicott_core::{NHS_NUMBER_SYSTEM, NhsNumber, ResourceId, ResourceType};
use caldicott_policy::{Action, Category, Reason, Role};
use serde_json::Value;

use crate::web::{self, Errors, FieldError, Form, Layout, Viewer};
use crate::{ConsoleState, tri};

/// Roles that may use the Patients pages at all (the policy still decides each record).
pub const PATIENT_ROLES: &[Role] = &[
    Role::CareWorker,
    Role::RegisteredNurse,
    Role::Gp,
    Role::Receptionist,
    Role::CaldicottGuardian,
];

/// Roles that may break the glass (the policy's role profiles; the API's `$break-glass`).
pub const CLINICAL_ROLES: &[Role] = &[Role::Gp, Role::RegisteredNurse, Role::CareWorker];

/// How long a console break-glass declaration lasts (the API's default).
pub const BREAK_GLASS_MINUTES: u32 = 60;

/// The shortest and longest reason a break-glass declaration may give.
const REASON_MIN: usize = 10;
const REASON_MAX: usize = 500;

/// Most patients one search shows.
const MAX_RESULTS: usize = 50;

/// Most resources of one type the record view reads.
const MAX_PER_TYPE: usize = 500;

/// Most observations of one code shown (the newest).
const MAX_PER_CODE: usize = 20;

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/patients", get(search_page))
        .route(
            "/patients/search",
            get(|| async { web::redirect("/patients") }).post(search_post),
        )
        .route("/patients/{id}", get(record_page))
        .route("/patients/{id}/break-glass", post(break_glass_post))
}

// ---------------------------------------------------------------------------------------
// Search

/// One patient found.
pub struct ResultRow {
    pub id: String,
    pub name: String,
    pub nhs_number: String,
    pub birth_date: String,
}

#[derive(askama::Template)]
#[template(path = "patients/search.html")]
struct SearchPage {
    layout: Layout,
    errors: Errors,
    nhs_number: String,
    family: String,
    day: String,
    month: String,
    year: String,
    /// `None` before a search; the rows found (possibly none) after one.
    results: Option<Vec<ResultRow>>,
    /// More patients matched than are shown.
    more: bool,
}

impl SearchPage {
    fn new(viewer: &Viewer) -> Self {
        SearchPage {
            layout: Layout::new(viewer, "Find a patient", "patients"),
            errors: Errors::default(),
            nhs_number: String::new(),
            family: String::new(),
            day: String::new(),
            month: String::new(),
            year: String::new(),
            results: None,
            more: false,
        }
    }
}

async fn search_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), PATIENT_ROLES).await);
    web::render(StatusCode::OK, &SearchPage::new(&viewer))
}

/// A validated search: the FHIR search parameters to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientQuery {
    Nhs(NhsNumber),
    NameAndBirth { family: String, birth_date: String },
}

impl PatientQuery {
    /// The search's parameters, as a FHIR client would send them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            PatientQuery::Nhs(n) => vec![(
                "identifier".into(),
                format!("{NHS_NUMBER_SYSTEM}|{}", n.as_str()),
            )],
            PatientQuery::NameAndBirth { family, birth_date } => vec![
                ("family".into(), fhir_string_escape(family)),
                ("birthdate".into(), birth_date.clone()),
            ],
        }
    }
}

/// Escapes a FHIR search string value: `,` `$` `|` and `\` are syntax in search values,
/// so a name containing one is searched for literally rather than split.
pub fn fhir_string_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '$' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The NHS number field: 10 digits (spaces allowed) with a valid check digit.
pub fn parse_nhs_field(raw: &str) -> Result<NhsNumber, FieldError> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(FieldError::new("nhs_number", "Enter an NHS number"));
    }
    NhsNumber::parse(&compact)
        .map_err(|_| FieldError::new("nhs_number", "Enter a valid 10-digit NHS number"))
}

/// A date of birth from day, month and year fields, as `YYYY-MM-DD`; not in the future
/// (`today` is `(year, month, day)`), and not before 1880.
pub fn parse_birth_date(
    day: &str,
    month: &str,
    year: &str,
    today: (i32, u8, u8),
) -> Result<String, FieldError> {
    let (day, month, year) = (day.trim(), month.trim(), year.trim());
    if day.is_empty() && month.is_empty() && year.is_empty() {
        return Err(FieldError::new("birth_date", "Enter a date of birth"));
    }
    let num = |s: &str, max_len: usize| -> Option<u32> {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let invalid = || {
        FieldError::new(
            "birth_date",
            "Date of birth must be a real date, for example 27 3 1950",
        )
    };
    let (Some(d), Some(m), Some(y)) = (num(day, 2), num(month, 2), num(year, 4)) else {
        return Err(invalid());
    };
    if year.len() != 4 {
        return Err(FieldError::new(
            "birth_date",
            "Year of birth must be 4 digits, for example 1950",
        ));
    }
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(invalid)?;
    let date = time::Date::from_calendar_date(
        i32::try_from(y).map_err(|_| invalid())?,
        month,
        u8::try_from(d).map_err(|_| invalid())?,
    )
    .map_err(|_| invalid())?;
    let (ty, tm, td) = today;
    if (date.year(), u8::from(date.month()), date.day()) > (ty, tm, td) {
        return Err(FieldError::new(
            "birth_date",
            "Date of birth must be today or in the past",
        ));
    }
    if date.year() < 1880 {
        return Err(FieldError::new(
            "birth_date",
            "Date of birth must be after 1880",
        ));
    }
    Ok(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// Today's date in the UK.
fn uk_today(now_us: i64) -> (i32, u8, u8) {
    let t = caldicott_audit::uktime::uk_local(now_us);
    (i32::try_from(t.year).unwrap_or(i32::MAX), t.month, t.day)
}

async fn search_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), PATIENT_ROLES).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let mut page = SearchPage::new(&viewer);
    let query = match read_query(&form, &mut page, state.now()) {
        Some(q) => q,
        None => return web::render(StatusCode::UNPROCESSABLE_ENTITY, &page),
    };
    let st = Arc::clone(&state);
    let caller = viewer.caller();
    let origin = viewer.origin.clone();
    let (found, events) = tri!(
        web::blocking(move || {
            let guard = Guard::new(&st.store, &st.directory, st.audit.as_ref(), &caller, origin);
            let pairs = query.pairs();
            guard.searching("Patient", pairs.iter().map(|(k, _)| k.clone()).collect());
            let found = run_search(&st.store, &pairs, &guard);
            (found, guard.take_pending())
        })
        .await
    );
    tri!(web::record(&state, Some(&viewer), events));
    match found {
        Ok((rows, more)) => {
            page.results = Some(rows);
            page.more = more;
            web::render(StatusCode::OK, &page)
        }
        // The search refused what was typed (the API's 400): a field error, never a 500.
        Err(e) if e.status.is_client_error() => {
            let field = if page.nhs_number.is_empty() {
                "family"
            } else {
                "nhs_number"
            };
            page.errors.push(FieldError::new(
                field,
                "These details cannot be searched for. Check them and try again",
            ));
            web::render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => api_error_page(&viewer, &e),
    }
}

/// Reads and validates the search form into `page` (its values and errors); the query
/// when it is valid.
fn read_query(form: &Form, page: &mut SearchPage, now_us: i64) -> Option<PatientQuery> {
    match form.get("by") {
        "nhs" => {
            page.nhs_number = form.get("nhs_number").chars().take(64).collect();
            let raw = match form.text("nhs_number", "NHS number", 64) {
                Ok(v) => v,
                Err(e) => {
                    page.errors.push(e);
                    return None;
                }
            };
            match parse_nhs_field(&raw) {
                Ok(n) => Some(PatientQuery::Nhs(n)),
                Err(e) => {
                    page.errors.push(e);
                    None
                }
            }
        }
        "name" => {
            page.family = form.get("family").chars().take(100).collect();
            let single = form.get("birth_date").trim();
            if let Some((y, rest)) = single.split_once('-')
                && let Some((m, d)) = rest.split_once('-')
            {
                page.year = y.chars().take(4).collect();
                page.month = m.chars().take(2).collect();
                page.day = d.chars().take(2).collect();
            } else {
                page.day = form.get("birth_day").chars().take(2).collect();
                page.month = form.get("birth_month").chars().take(2).collect();
                page.year = form.get("birth_year").chars().take(4).collect();
            }
            let family = form.required("family", "Family name", 100);
            if let Err(e) = &family {
                page.errors.push(e.clone());
            }
            let birth = if single.is_empty() || page.year.len() == 4 {
                parse_birth_date(&page.day, &page.month, &page.year, uk_today(now_us))
            } else {
                Err(FieldError::new(
                    "birth_date",
                    "Date of birth must be a real date, for example 27 3 1950",
                ))
            };
            if let Err(e) = &birth {
                page.errors.push(e.clone());
            }
            match (family, birth) {
                (Ok(family), Ok(birth_date)) => {
                    Some(PatientQuery::NameAndBirth { family, birth_date })
                }
                _ => None,
            }
        }
        _ => {
            page.errors.push(FieldError::new(
                "nhs_number",
                "Search by NHS number, or by family name and date of birth",
            ));
            None
        }
    }
}

/// Runs the patient search through the API's search under the guard: only patients the
/// policy lets the viewer see are found.
fn run_search(
    store: &caldicott_api::Store,
    pairs: &[(String, String)],
    guard: &Guard,
) -> Result<(Vec<ResultRow>, bool), ApiError> {
    let ptype = ResourceType::new("Patient").map_err(|_| ApiError::internal("type"))?;
    let mut pairs = pairs.to_vec();
    pairs.push(("_count".into(), MAX_RESULTS.to_string()));
    let page = search::search(store, &ptype, &pairs, Handling::Strict, guard)?;
    let rows = page
        .matches
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|v| ResultRow {
            id: v["id"].as_str().unwrap_or_default().to_owned(),
            name: name_of(&v),
            nhs_number: nhs_of(&v).unwrap_or_else(|| "Not recorded".into()),
            birth_date: v["birthDate"]
                .as_str()
                .map_or_else(|| "Not recorded".into(), display_date),
        })
        .collect();
    Ok((rows, page.total > page.matches.len()))
}

// ---------------------------------------------------------------------------------------
// Reading FHIR resources for people

/// A patient's name as people write it: the official (else first) name, given names then
/// family name.
pub fn name_of(patient: &Value) -> String {
    let names = patient["name"].as_array();
    let name = names
        .and_then(|ns| ns.iter().find(|n| n["use"] == "official").or(ns.first()))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(t) = name["text"].as_str()
        && !t.trim().is_empty()
    {
        return t.trim().to_owned();
    }
    let mut parts: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(f) = name["family"].as_str() {
        parts.push(f);
    }
    let s = parts.join(" ");
    if s.trim().is_empty() {
        "Name not recorded".into()
    } else {
        s
    }
}

/// The NHS number of a Patient, 3-3-4.
pub fn nhs_of(patient: &Value) -> Option<String> {
    patient["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == NHS_NUMBER_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .and_then(|s| NhsNumber::parse(s).ok())
        .map(|n| n.to_string())
}

/// A FHIR date or dateTime as people read it in the UK: `1 March 1950`, `March 1950`,
/// `1 March 2024, 10:30am` (UK time); anything else as written.
pub fn display_date(s: &str) -> String {
    use caldicott_audit::uktime::{month_name, uk_local};
    let s = s.trim();
    let month = |m: &str| m.parse::<u8>().ok().filter(|m| (1..=12).contains(m));
    match s.len() {
        4 if s.bytes().all(|b| b.is_ascii_digit()) => s.to_owned(),
        7 => match (s.get(..4), s.get(5..7).and_then(month)) {
            (Some(y), Some(m)) => format!("{} {y}", month_name(m)),
            _ => s.to_owned(),
        },
        10 => match (
            s.get(..4),
            s.get(5..7).and_then(month),
            s.get(8..10).and_then(|d| d.parse::<u8>().ok()),
        ) {
            (Some(y), Some(m), Some(d)) => format!("{d} {} {y}", month_name(m)),
            _ => s.to_owned(),
        },
        _ => match caldicott_api::http::parse_instant(s) {
            Some(us) => {
                let t = uk_local(us);
                format!(
                    "{} {} {}, {}",
                    t.day,
                    month_name(t.month),
                    t.year,
                    t.clock()
                )
            }
            None => s.to_owned(),
        },
    }
}

/// A CodeableConcept in words: its text, else its first coding's display, else its code.
fn concept(v: &Value) -> String {
    if let Some(t) = v["text"].as_str() {
        return t.to_owned();
    }
    let codings = v["coding"].as_array();
    codings
        .and_then(|cs| cs.iter().find_map(|c| c["display"].as_str()))
        .or_else(|| codings.and_then(|cs| cs.iter().find_map(|c| c["code"].as_str())))
        .unwrap_or("Not recorded")
        .to_owned()
}

fn text_or(v: &Value, default: &str) -> String {
    v.as_str().unwrap_or(default).to_owned()
}

/// The first of several date elements present.
fn first_date<'a>(v: &'a Value, keys: &[&str]) -> &'a str {
    keys.iter()
        .find_map(|k| {
            let mut x = v;
            for part in k.split('.') {
                x = &x[part];
            }
            x.as_str()
        })
        .unwrap_or("")
}

fn status_of(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.replace('-', " "),
        None => {
            let c = concept(v);
            if c == "Not recorded" {
                c
            } else {
                c.replace('-', " ")
            }
        }
    }
}

/// A quantity or other value of an Observation in words, and its number when it has one.
fn observation_value(v: &Value) -> (String, Option<f64>, String) {
    let q = &v["valueQuantity"];
    if let Some(n) = q["value"].as_f64() {
        let unit = q["unit"]
            .as_str()
            .or_else(|| q["code"].as_str())
            .unwrap_or("")
            .to_owned();
        let shown = q["value"].to_string();
        let words = if unit.is_empty() {
            shown
        } else {
            format!("{shown} {unit}")
        };
        return (words, Some(n), unit);
    }
    if let Some(s) = v["valueString"].as_str() {
        return (s.to_owned(), None, String::new());
    }
    if v["valueCodeableConcept"].is_object() {
        return (concept(&v["valueCodeableConcept"]), None, String::new());
    }
    if let Some(b) = v["valueBoolean"].as_bool() {
        return (if b { "Yes" } else { "No" }.into(), None, String::new());
    }
    if let Some(parts) = v["component"].as_array() {
        let words: Vec<String> = parts
            .iter()
            .map(|c| format!("{}: {}", concept(&c["code"]), observation_value(c).0))
            .collect();
        if !words.is_empty() {
            return (words.join("; "), None, String::new());
        }
    }
    ("Not recorded".into(), None, String::new())
}

// ---------------------------------------------------------------------------------------
// The record view

/// One section of the record (problems, medications, …).
pub struct Section {
    pub id: &'static str,
    pub heading: &'static str,
    /// Whether the viewer's role may see this kind of record at all.
    pub allowed: bool,
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
    /// Observation groups (the observations section only).
    pub groups: Vec<ObservationGroup>,
    /// More were found than are shown.
    pub truncated: bool,
}

/// The observations of one code: a chart of the numeric values and a table of them all.
pub struct ObservationGroup {
    pub slug: String,
    pub name: String,
    /// `data:image/svg+xml;base64,…` when there are numeric values to plot.
    pub chart: Option<String>,
    pub chart_alt: String,
    /// (date, value) newest first.
    pub rows: Vec<(String, String)>,
}

/// What the record view shows.
pub struct RecordView {
    pub id: String,
    pub name: String,
    pub demographics: Vec<(&'static str, String)>,
    pub sections: Vec<Section>,
    /// Why the viewer may see it, in words, when the decision says.
    pub basis: Option<&'static str>,
    pub break_glass: bool,
}

#[derive(askama::Template)]
#[template(path = "patients/record.html")]
struct RecordPage {
    layout: Layout,
    record: RecordView,
    /// The access history link, for those who may read the audit trail.
    history: bool,
}

#[derive(askama::Template)]
#[template(path = "patients/not_found.html")]
struct NotFoundPage {
    layout: Layout,
    errors: Errors,
    id: String,
    /// Whether the viewer may break the glass (a clinician without an active declaration).
    may_break_glass: bool,
    /// The viewer's break-glass is already in force (until this UK time).
    break_glass_until: Option<String>,
    reason: String,
    minutes: u32,
}

/// What one kind of record in a section is searched by: the compartment parameter naming
/// the patient whose record it is (R4 Patient CompartmentDefinition; the other
/// compartment parameters, such as a document's author, are not this patient's record).
struct Source {
    rtype: &'static str,
    param: &'static str,
}

struct SectionDef {
    id: &'static str,
    heading: &'static str,
    columns: &'static [&'static str],
    sources: &'static [Source],
}

const SECTIONS: &[SectionDef] = &[
    SectionDef {
        id: "problems",
        heading: "Problems",
        columns: &["Problem", "Status", "Since"],
        sources: &[Source {
            rtype: "Condition",
            param: "patient",
        }],
    },
    SectionDef {
        id: "medications",
        heading: "Medications",
        columns: &["Medicine", "Dose", "Status", "Date"],
        sources: &[
            Source {
                rtype: "MedicationRequest",
                param: "subject",
            },
            Source {
                rtype: "MedicationStatement",
                param: "subject",
            },
        ],
    },
    SectionDef {
        id: "allergies",
        heading: "Allergies",
        columns: &["Allergy", "Reaction", "Criticality", "Recorded"],
        sources: &[Source {
            rtype: "AllergyIntolerance",
            param: "patient",
        }],
    },
    SectionDef {
        id: "observations",
        heading: "Recent observations",
        columns: &["Date", "Value"],
        sources: &[Source {
            rtype: "Observation",
            param: "subject",
        }],
    },
    SectionDef {
        id: "encounters",
        heading: "Encounters",
        columns: &["Date", "Type", "Status"],
        sources: &[Source {
            rtype: "Encounter",
            param: "patient",
        }],
    },
    SectionDef {
        id: "documents",
        heading: "Documents",
        columns: &["Title", "Date"],
        sources: &[Source {
            rtype: "DocumentReference",
            param: "subject",
        }],
    },
];

/// Whether `role` may search resources of `rtype` under the role × category table.
pub fn role_may_search(role: Role, rtype: &str) -> bool {
    Category::of(rtype).is_some_and(|c| caldicott_policy::allowed(role, c).contains(Action::Search))
}

/// The basis of a permitted read, in words.
fn basis_words(reason: Reason) -> Option<&'static str> {
    match reason {
        Reason::Relationship => Some(
            "You have a legitimate relationship with this patient for direct care: they are registered at your organisation, or you are on their care team.",
        ),
        Reason::Organisation => {
            Some("You may see this record as your organisation's Caldicott guardian, for audit.")
        }
        Reason::BreakGlass => {
            Some("Emergency access (break-glass): you have no care relationship with this patient.")
        }
        _ => None,
    }
}

/// Reads a patient's record for the viewer through the guard: `Ok(None)` when it does not
/// exist or the viewer may not see it (the same to them).
pub fn load_record(
    store: &caldicott_api::Store,
    id: &ResourceId,
    role: Role,
    guard: &Guard,
) -> Result<Option<RecordView>, ApiError> {
    let ptype = ResourceType::new("Patient").map_err(|_| ApiError::internal("type"))?;
    let record = match store.read(&ptype, id, guard) {
        Ok(r) => r,
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status == StatusCode::GONE => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let patient: Value = serde_json::from_slice(&record.body)
        .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))?;
    // The read's decision again, for its basis: the guard records one event for the two
    // identical decisions of one request.
    let decision = guard.decide(
        Action::Read,
        record.rtype.as_str(),
        record.org.as_str(),
        Some(&patient),
    )?;
    let reference = format!("Patient/{id}");
    let mut sections = Vec::with_capacity(SECTIONS.len());
    for def in SECTIONS {
        let allowed = def.sources.iter().all(|s| role_may_search(role, s.rtype));
        let mut found: Vec<Value> = Vec::new();
        let mut truncated = false;
        if allowed {
            for s in def.sources {
                let t = ResourceType::new(s.rtype).map_err(|_| ApiError::internal("type"))?;
                let rs = search::matching_visible(
                    store,
                    &t,
                    &format!("{}={reference}", s.param),
                    MAX_PER_TYPE + 1,
                    guard,
                )?;
                truncated |= rs.len() > MAX_PER_TYPE;
                found.extend(
                    rs.iter()
                        .take(MAX_PER_TYPE)
                        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok()),
                );
            }
        }
        let (rows, groups) = if def.id == "observations" {
            (Vec::new(), observation_groups(&found))
        } else {
            (section_rows(def.id, &found), Vec::new())
        };
        sections.push(Section {
            id: def.id,
            heading: def.heading,
            allowed,
            columns: def.columns,
            rows,
            groups,
            truncated,
        });
    }
    Ok(Some(RecordView {
        id: id.to_string(),
        name: name_of(&patient),
        demographics: demographics(&patient, &organisation_names(guard)),
        sections,
        basis: decision
            .is_permit()
            .then(|| basis_words(decision.reason))
            .flatten(),
        break_glass: decision.reason == Reason::BreakGlass,
    }))
}

/// Organisation names by ODS code, from the directory (empty if it cannot be read: the
/// codes are shown instead).
fn organisation_names(guard: &Guard) -> std::collections::BTreeMap<String, String> {
    guard
        .directory()
        .orgs()
        .map(|os| os.into_iter().map(|o| (o.ods, o.name)).collect())
        .unwrap_or_default()
}

fn demographics(
    p: &Value,
    org_names: &std::collections::BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Name", name_of(p)),
        (
            "NHS number",
            nhs_of(p).unwrap_or_else(|| "Not recorded".into()),
        ),
        (
            "Date of birth",
            p["birthDate"]
                .as_str()
                .map_or_else(|| "Not recorded".into(), display_date),
        ),
        (
            "Gender",
            p["gender"].as_str().map_or_else(
                || "Not recorded".into(),
                |g| {
                    let mut c = g.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                },
            ),
        ),
    ];
    if let Some(a) = p["address"].as_array().and_then(|a| a.first()) {
        let mut parts: Vec<String> = a["line"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        for k in ["city", "district", "postalCode"] {
            if let Some(s) = a[k].as_str() {
                parts.push(s.to_owned());
            }
        }
        if !parts.is_empty() {
            rows.push(("Address", parts.join(", ")));
        }
    }
    if let Some(t) = p["telecom"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["system"] == "phone"))
        .and_then(|t| t["value"].as_str())
    {
        rows.push(("Telephone", t.to_owned()));
    }
    let org = |r: &Value| -> Option<String> {
        r["display"].as_str().map(str::to_owned).or_else(|| {
            let ods = r["identifier"]["value"].as_str()?;
            Some(match org_names.get(ods) {
                Some(name) => format!("{name} ({ods})"),
                None => ods.to_owned(),
            })
        })
    };
    if let Some(o) = p["managingOrganization"]
        .as_object()
        .and_then(|_| org(&p["managingOrganization"]))
        .or_else(|| {
            p["generalPractitioner"]
                .as_array()
                .and_then(|g| g.iter().find_map(org))
        })
    {
        rows.push(("Registered with", o));
    }
    rows
}

/// The rows of a section, newest first.
fn section_rows(section: &str, found: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<(String, Vec<String>)> = found
        .iter()
        .map(|v| match section {
            "problems" => {
                let d = first_date(v, &["onsetDateTime", "onsetPeriod.start", "recordedDate"]);
                (
                    d.to_owned(),
                    vec![
                        concept(&v["code"]),
                        status_of(&v["clinicalStatus"]),
                        display_or(d),
                    ],
                )
            }
            "medications" => {
                let d = first_date(
                    v,
                    &[
                        "authoredOn",
                        "effectiveDateTime",
                        "effectivePeriod.start",
                        "dateAsserted",
                    ],
                );
                let dose = v["dosageInstruction"][0]["text"]
                    .as_str()
                    .or_else(|| v["dosage"][0]["text"].as_str())
                    .unwrap_or("Not recorded")
                    .to_owned();
                let medicine = if v["medicationCodeableConcept"].is_object() {
                    concept(&v["medicationCodeableConcept"])
                } else {
                    text_or(&v["medicationReference"]["display"], "Not recorded")
                };
                (
                    d.to_owned(),
                    vec![medicine, dose, status_of(&v["status"]), display_or(d)],
                )
            }
            "allergies" => {
                let d = first_date(v, &["recordedDate", "onsetDateTime"]);
                let reaction = v["reaction"][0]["manifestation"][0].clone();
                (
                    d.to_owned(),
                    vec![
                        concept(&v["code"]),
                        if reaction.is_object() {
                            concept(&reaction)
                        } else {
                            "Not recorded".into()
                        },
                        text_or(&v["criticality"], "Not recorded").replace('-', " "),
                        display_or(d),
                    ],
                )
            }
            "encounters" => {
                let d = first_date(v, &["period.start", "period.end"]);
                let kind = if v["type"][0].is_object() {
                    concept(&v["type"][0])
                } else {
                    v["class"]["display"]
                        .as_str()
                        .or_else(|| v["class"]["code"].as_str())
                        .unwrap_or("Not recorded")
                        .to_owned()
                };
                (
                    d.to_owned(),
                    vec![display_or(d), kind, status_of(&v["status"])],
                )
            }
            _ => {
                let d = first_date(v, &["date", "context.period.start"]);
                let title = v["description"]
                    .as_str()
                    .or_else(|| v["content"][0]["attachment"]["title"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        if v["type"].is_object() {
                            concept(&v["type"])
                        } else {
                            "Untitled document".into()
                        }
                    });
                (d.to_owned(), vec![title, display_or(d)])
            }
        })
        .collect();
    // ISO dates sort as text; undated entries last.
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows.into_iter().map(|(_, r)| r).collect()
}

fn display_or(d: &str) -> String {
    if d.is_empty() {
        "Not recorded".into()
    } else {
        display_date(d)
    }
}

/// Observations grouped by code, each with its newest values and a chart of the numeric
/// ones.
fn observation_groups(found: &[Value]) -> Vec<ObservationGroup> {
    // (key, name, [(date, words, number, unit)])
    type Point = (String, String, Option<f64>, String);
    let mut groups: Vec<(String, String, Vec<Point>)> = Vec::new();
    for v in found {
        let coding = v["code"]["coding"][0].clone();
        let key = match (coding["system"].as_str(), coding["code"].as_str()) {
            (Some(s), Some(c)) => format!("{s}|{c}"),
            _ => concept(&v["code"]),
        };
        let date = first_date(v, &["effectiveDateTime", "effectivePeriod.start", "issued"]);
        let (words, n, unit) = observation_value(v);
        let point = (date.to_owned(), words, n, unit);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.2.push(point),
            None => groups.push((key, concept(&v["code"]), vec![point])),
        }
    }
    groups.sort_by_key(|g| g.1.to_lowercase());
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (_, name, mut points))| {
            points.sort_by(|a, b| b.0.cmp(&a.0));
            points.truncate(MAX_PER_CODE);
            let numeric: Vec<(String, f64)> = points
                .iter()
                .rev()
                .filter_map(|(d, _, n, _)| n.map(|n| (display_or(d), n)))
                .collect();
            let unit = points
                .iter()
                .find(|p| !p.3.is_empty())
                .map(|p| p.3.clone())
                .unwrap_or_default();
            let chart = (!numeric.is_empty()).then(|| {
                let svg = chart_svg(&numeric, &unit);
                format!(
                    "data:image/svg+xml;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(svg)
                )
            });
            let chart_alt = match (numeric.first(), numeric.last()) {
                (Some(first), Some(last)) => {
                    let with_unit = |n: f64| {
                        if unit.is_empty() {
                            number(n)
                        } else {
                            format!("{} {unit}", number(n))
                        }
                    };
                    format!(
                        "Chart of {name}: {} values from {} ({}) to {} ({}); the table below lists them",
                        numeric.len(),
                        first.0,
                        with_unit(first.1),
                        last.0,
                        with_unit(last.1)
                    )
                }
                _ => String::new(),
            };
            ObservationGroup {
                slug: format!("obs-{i}"),
                name,
                chart,
                chart_alt,
                rows: points
                    .into_iter()
                    .map(|(d, w, _, _)| (display_or(&d), w))
                    .collect(),
            }
        })
        .collect()
}

/// A number as people write it: no trailing zeros, at most 2 decimals.
fn number(n: f64) -> String {
    let s = format!("{n:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// Escapes text for SVG (XML) content.
fn xml_escape(s: &str) -> String {
    caldicott_audit::report::escape_html(s)
}

/// A small line chart of values in time order (oldest first), as SVG with presentation
/// attributes only (the console's CSP allows no style attributes). The labels are the
/// first and last dates and the lowest and highest values.
pub fn chart_svg(points: &[(String, f64)], unit: &str) -> String {
    use std::fmt::Write as _;
    const W: f64 = 360.0;
    const H: f64 = 140.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 30.0;
    let values: Vec<f64> = points
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if !lo.is_finite() || !hi.is_finite() {
        (0.0, 1.0)
    } else if (hi - lo).abs() < f64::EPSILON {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * (i as f64) / ((n - 1) as f64)
        }
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (hi - v) / (hi - lo);
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#425563\" stroke-width=\"1\"/>\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#425563\" stroke-width=\"1\"/>",
        H - BOTTOM,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let unit = xml_escape(unit);
    for (v, anchor_y) in [(hi, TOP + 4.0), (lo, H - BOTTOM)] {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{anchor_y}\" font-family=\"Arial, sans-serif\" font-size=\"11\" fill=\"#212b32\" text-anchor=\"end\">{}{}</text>",
            LEFT - 4.0,
            number(v),
            if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            }
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            s,
            "<text x=\"{LEFT}\" y=\"{}\" font-family=\"Arial, sans-serif\" font-size=\"11\" fill=\"#212b32\">{}</text>",
            H - 10.0,
            xml_escape(&first.0)
        );
        if n > 1 {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" font-family=\"Arial, sans-serif\" font-size=\"11\" fill=\"#212b32\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                H - 10.0,
                xml_escape(&last.0)
            );
        }
    }
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.1.is_finite())
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1)))
        .collect();
    if coords.len() > 1 {
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#005eb8\" stroke-width=\"2\"/>",
            coords.join(" ")
        );
    }
    for c in &coords {
        if let Some((cx, cy)) = c.split_once(',') {
            let _ = write!(
                s,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3.5\" fill=\"#005eb8\"/>"
            );
        }
    }
    s.push_str("</svg>");
    s
}

async fn record_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), PATIENT_ROLES).await);
    show_record(&state, &viewer, &id).await
}

/// The record page for `id`, or the 404 page (with break-glass for clinicians).
async fn show_record(state: &Arc<ConsoleState>, viewer: &Viewer, id: &str) -> Response {
    let Ok(rid) = ResourceId::new(id) else {
        return not_found(viewer, "", Errors::default(), String::new());
    };
    let st = Arc::clone(state);
    let caller = viewer.caller();
    let origin = viewer.origin.clone();
    let role = viewer.role();
    let (found, events) = tri!(
        web::blocking(move || {
            let guard = Guard::new(&st.store, &st.directory, st.audit.as_ref(), &caller, origin);
            let found = load_record(&st.store, &rid, role, &guard);
            (found, guard.take_pending())
        })
        .await
    );
    tri!(web::record(state, Some(viewer), events));
    match found {
        Ok(Some(record)) => web::render(
            StatusCode::OK,
            &RecordPage {
                layout: Layout::new(viewer, "Patient record", "patients"),
                record,
                history: caldicott_api::auditlog::may_read_audit(&viewer.session.auth),
            },
        ),
        Ok(None) => not_found(viewer, id, Errors::default(), String::new()),
        Err(e) => api_error_page(viewer, &e),
    }
}

/// The page for a record that does not exist or that the viewer may not see: 404 either
/// way, with the break-glass form for a clinician whose break-glass is not in force.
fn not_found(viewer: &Viewer, id: &str, errors: Errors, reason: String) -> Response {
    let now = caldicott_vault::now_micros();
    let active = viewer
        .session
        .auth
        .break_glass
        .as_ref()
        .filter(|b| b.is_active(now))
        .map(|b| web::clock_time(b.expires_at_us));
    let status = if errors.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    web::render(
        status,
        &NotFoundPage {
            layout: Layout::new(viewer, "We cannot show this record", "patients"),
            errors,
            id: if ResourceId::new(id).is_ok() {
                id.to_owned()
            } else {
                String::new()
            },
            may_break_glass: viewer.is(CLINICAL_ROLES)
                && active.is_none()
                && ResourceId::new(id).is_ok(),
            break_glass_until: active,
            reason,
            minutes: BREAK_GLASS_MINUTES,
        },
    )
}

/// The page for an error of the API's store or search.
fn api_error_page(viewer: &Viewer, e: &ApiError) -> Response {
    tracing::error!(status = %e.status, "a patient page could not be read");
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        return web::error_page(
            Some(viewer),
            StatusCode::SERVICE_UNAVAILABLE,
            "Sorry, the service is unavailable",
            "The record store cannot be read just now. Try again in a few minutes.",
        );
    }
    web::error_page(
        Some(viewer),
        StatusCode::INTERNAL_SERVER_ERROR,
        "Sorry, there is a problem with the service",
        "The record could not be read. Try again later.",
    )
}

// ---------------------------------------------------------------------------------------
// Break-glass

/// The break-glass reason field: 10 to 500 characters, no control characters other than
/// line breaks.
pub fn parse_reason(raw: &str) -> Result<String, FieldError> {
    let r = raw.trim();
    let n = r.chars().count();
    if n == 0 {
        return Err(FieldError::new(
            "reason",
            "Enter why you need to see this record",
        ));
    }
    if n < REASON_MIN {
        return Err(FieldError::new(
            "reason",
            format!("The reason must be {REASON_MIN} characters or more"),
        ));
    }
    if n > REASON_MAX {
        return Err(FieldError::new(
            "reason",
            format!("The reason must be {REASON_MAX} characters or fewer"),
        ));
    }
    if r.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
        return Err(FieldError::new(
            "reason",
            "The reason must not contain control characters",
        ));
    }
    Ok(r.to_owned())
}

async fn break_glass_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer(&state, &headers, web::peer(&ext)).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let caller = viewer.caller();
    if !viewer.is(CLINICAL_ROLES) {
        // Refused and recorded as the API's `$break-glass` refuses it.
        let why = "only clinicians (gp, registered-nurse, care-worker) may break the glass";
        let events = {
            let guard = Guard::new(
                &state.store,
                &state.directory,
                state.audit.as_ref(),
                &caller,
                viewer.origin.clone(),
            );
            guard.note(
                EventKind::BreakGlass,
                "declare",
                Vec::new(),
                Outcome::Deny,
                why,
            );
            guard.take_pending()
        };
        tri!(web::record(&state, Some(&viewer), events));
        return web::error_page(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "You cannot break the glass",
            "Only GPs, registered nurses and care workers may declare emergency access.",
        );
    }
    if ResourceId::new(&id).is_err() {
        return not_found(&viewer, "", Errors::default(), String::new());
    }
    let reason = match parse_reason(form.get("reason")) {
        Ok(r) => r,
        Err(e) => {
            let mut errors = Errors::default();
            errors.push(e);
            let shown: String = form.get("reason").chars().take(REASON_MAX + 100).collect();
            return not_found(&viewer, &id, errors, shown);
        }
    };
    let st = Arc::clone(&state);
    let origin = viewer.origin.clone();
    let user = viewer.user().name.clone();
    let now = state.now();
    let (declared, events) =
        tri!(web::blocking(move || declare(&st, &caller, origin, &user, &reason, now)).await);
    tri!(web::record(&state, Some(&viewer), events));
    match declared {
        Ok(()) => web::redirect(&format!("/patients/{id}")),
        Err(msg) => {
            let mut errors = Errors::default();
            errors.push(FieldError::new("reason", msg));
            not_found(&viewer, &id, errors, String::new())
        }
    }
}

/// Declares break-glass as the API's `$break-glass` does: the directory's declaration
/// (the reason stays there, sealed, for the guardian's review: it may name the patient),
/// one `BreakGlass`/`declare` audit event without the reason, and an alert in the log.
fn declare(
    state: &ConsoleState,
    caller: &Caller,
    origin: caldicott_api::audit::Origin,
    user: &str,
    reason: &str,
    now: i64,
) -> (Result<(), String>, Vec<caldicott_api::audit::AuditEvent>) {
    let guard = Guard::new(
        &state.store,
        &state.directory,
        state.audit.as_ref(),
        caller,
        origin,
    );
    let result = match state
        .directory
        .declare_break_glass(user, reason, BREAK_GLASS_MINUTES, now)
    {
        Ok(d) => {
            guard.note(
                EventKind::BreakGlass,
                "declare",
                Vec::new(),
                Outcome::Permit,
                &format!("emergency access declared for {BREAK_GLASS_MINUTES} minutes"),
            );
            tracing::warn!(
                target: "caldicott::alert",
                user = %d.user,
                org = %d.org,
                declaration = %d.id,
                minutes = BREAK_GLASS_MINUTES,
                "break-glass declared: the Caldicott guardian must review it"
            );
            Ok(())
        }
        Err(caldicott_access::AccessError::Policy(m)) => Err(m),
        Err(e) => {
            tracing::error!(error = %e, "break-glass could not be declared");
            Err("Emergency access could not be declared just now. Try again.".into())
        }
    };
    (result, guard.take_pending())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_are_checked() {
        assert!(parse_nhs_field("943 476 5919").is_ok());
        assert!(parse_nhs_field("9434765919").is_ok());
        assert_eq!(
            parse_nhs_field("9434765918").err().map(|e| e.message),
            Some("Enter a valid 10-digit NHS number".into())
        );
        assert!(parse_nhs_field("").is_err());
        assert!(parse_nhs_field("94347659190").is_err());
    }

    #[test]
    fn dates_of_birth_are_real_and_past() {
        let today = (2026, 11, 29);
        assert_eq!(
            parse_birth_date("1", "3", "1950", today).ok(),
            Some("1950-03-01".into())
        );
        assert!(parse_birth_date("31", "2", "1950", today).is_err());
        assert!(parse_birth_date("30", "11", "2026", today).is_err());
        assert!(parse_birth_date("29", "11", "2026", today).is_ok());
        assert!(parse_birth_date("1", "1", "50", today).is_err());
        assert!(parse_birth_date("1", "1", "1850", today).is_err());
        assert!(parse_birth_date("x", "1", "1950", today).is_err());
        assert!(parse_birth_date("", "", "", today).is_err());
    }

    #[test]
    fn search_strings_are_escaped() {
        assert_eq!(
            fhir_string_escape("O'Neil,Smith|x$\\"),
            "O'Neil\\,Smith\\|x\\$\\\\"
        );
    }

    #[test]
    fn reasons_are_bounded() {
        assert!(parse_reason("too short").is_err());
        assert!(parse_reason("Unconscious in A&E, no GP details").is_ok());
        assert!(parse_reason(&"a".repeat(501)).is_err());
        assert!(parse_reason("ten chars\u{0}!!").is_err());
    }

    #[test]
    fn dates_read_as_people_write_them() {
        assert_eq!(display_date("1950-03-01"), "1 March 1950");
        assert_eq!(display_date("1950-03"), "March 1950");
        assert_eq!(display_date("1950"), "1950");
        assert_eq!(display_date("2024-07-01T09:30:00Z"), "1 July 2024, 10:30am");
        assert_eq!(display_date("nonsense"), "nonsense");
    }

    #[test]
    fn charts_are_svg_without_style_or_script() {
        let svg = chart_svg(
            &[("1 May 2024".into(), 70.5), ("1 June 2024".into(), 72.0)],
            "kg<script>",
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("style"));
        assert!(!svg.contains("<script"));
        assert!(svg.contains("70.5"));
        let one = chart_svg(&[("1 May 2024".into(), 5.0)], "");
        assert!(one.contains("<circle") && !one.contains("<polyline"));
    }

    #[test]
    fn the_role_table_decides_sections() {
        assert!(role_may_search(Role::Receptionist, "Patient"));
        assert!(role_may_search(Role::Receptionist, "Encounter"));
        assert!(!role_may_search(Role::Receptionist, "Condition"));
        assert!(role_may_search(Role::CareWorker, "Condition"));
        assert!(!role_may_search(Role::CareWorker, "DocumentReference"));
        assert!(role_may_search(Role::Gp, "DocumentReference"));
    }
}
