//! Access history: who looked at a patient's record, when, why and under which role
//! (`/patients/{id}/access`), and the same as a printable page in plain language for the
//! patient (`/patients/{id}/access/print`).
//!
//! What it is: the API's patient access report (`caldicott_api::auditlog::patient_report`,
//! the entries the tamper-evident ledger holds under the patient's audit pseudonym, proven
//! against a checkpoint published now) shown as a table. Who may see it is what the API's
//! `Patient/{id}/$access-report` allows (`auditlog::may_read_audit`: the Caldicott guardian
//! and the system administrator); every look, and every refusal, is itself recorded as an
//! `AuditRead` event, as the API records it, before the page is sent.
//!
//! What it is not: the API's self-contained HTML report (`caldicott_audit::report::to_html`
//! carries an inline stylesheet, which the console's Content-Security-Policy forbids); the
//! printable page is the console's own template, styled by its stylesheet's print rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use caldicott_api::ApiError;
use caldicott_api::audit::{AuditEvent, EventKind, Outcome};
use caldicott_api::auditlog;
use caldicott_api::guard::Guard;
use caldicott_audit::report::{ReportEntry, ReportHeader};
use caldicott_audit::words;
use caldicott_core::{ResourceId, ResourceType};
use serde_json::Value;

use crate::patients;
use crate::web::{self, Layout, Viewer};
use crate::{ConsoleState, tri};

/// Most entries one report lists (the API's limit).
const MAX_ENTRIES: usize = 10_000;

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/patients/{id}/access", get(access_page))
        .route("/patients/{id}/access/print", get(print_page))
        .route("/patients/{id}/access/report.pdf", get(pdf_download))
}

/// One line of the history.
pub struct Entry {
    pub when: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`, for `<time datetime>`.
    pub when_utc: String,
    pub who: String,
    pub organisation: String,
    pub role: String,
    pub what: String,
    pub why: String,
    pub refused: bool,
    pub break_glass: bool,
    /// The ledger position (`epoch-index`), for asking about an entry.
    pub position: String,
}

#[derive(askama::Template)]
#[template(path = "history/access.html")]
struct AccessPage {
    layout: Layout,
    id: String,
    patient: String,
    entries: Vec<Entry>,
    generated: String,
}

#[derive(askama::Template)]
#[template(path = "history/print.html")]
struct PrintPage {
    layout: Layout,
    id: String,
    patient: String,
    entries: Vec<Entry>,
    generated: String,
    break_glass: usize,
    refused: usize,
    checkpoint: String,
    verifier_key: String,
}

async fn access_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    report(&state, &ext, &headers, &id, Shape::Page).await
}

async fn print_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    report(&state, &ext, &headers, &id, Shape::Print).await
}

async fn pdf_download(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    report(&state, &ext, &headers, &id, Shape::Pdf).await
}

/// Which form of the report a request asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Page,
    Print,
    /// `caldicott_audit::pdf`, to send to a patient who asked by letter.
    Pdf,
}

/// What the blocking part found.
struct Found {
    patient: String,
    header: ReportHeader,
    entries: Vec<ReportEntry>,
}

async fn report(
    state: &Arc<ConsoleState>,
    ext: &Extensions,
    headers: &HeaderMap,
    id: &str,
    shape: Shape,
) -> Response {
    let viewer = tri!(web::viewer(state, headers, web::peer(ext)).await);
    if !auditlog::may_read_audit(&viewer.session.auth) {
        return refuse(state, &viewer);
    }
    let Ok(rid) = ResourceId::new(id) else {
        return web::error_page(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no record at this address.",
        );
    };
    let Some(ledger) = state.ledger.clone() else {
        return web::error_page(
            Some(&viewer),
            StatusCode::SERVICE_UNAVAILABLE,
            "The audit ledger is not available",
            "This server keeps no audit ledger, so the access history cannot be shown.",
        );
    };
    let st = Arc::clone(state);
    let caller = viewer.caller();
    let origin = viewer.origin.clone();
    let role = viewer.role();
    let (found, events) = tri!(
        web::blocking(move || {
            let guard = Guard::new(&st.store, &st.directory, st.audit.as_ref(), &caller, origin);
            let found = load(&st, &ledger, &rid, role, &guard);
            (found, guard.take_pending())
        })
        .await
    );
    tri!(web::record(state, Some(&viewer), events));
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(status = %e.status, "an access history could not be read");
            return web::error_page(
                Some(&viewer),
                if e.status == StatusCode::SERVICE_UNAVAILABLE {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
                "Sorry, the access history cannot be shown",
                "The audit ledger cannot be read just now. Try again in a few minutes.",
            );
        }
    };
    if shape == Shape::Pdf {
        let bytes = caldicott_audit::pdf::to_pdf(&found.header, &found.entries);
        let mut r = (StatusCode::OK, bytes).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pdf"),
        );
        // A fixed name: nothing about the patient goes into the file name.
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"access-report.pdf\""),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(web::CSP),
        );
        return r;
    }
    let entries = entries(&found.header, &found.entries);
    let generated = web::date_time(found.header.generated_at_us);
    if shape == Shape::Print {
        web::render(
            StatusCode::OK,
            &PrintPage {
                layout: Layout::new(&viewer, "Access report", "patients"),
                id: id.to_owned(),
                patient: found.patient,
                break_glass: entries.iter().filter(|e| e.break_glass).count(),
                refused: entries.iter().filter(|e| e.refused).count(),
                entries,
                generated,
                checkpoint: found.header.checkpoint_text,
                verifier_key: found.header.verifier_key,
            },
        )
    } else {
        web::render(
            StatusCode::OK,
            &AccessPage {
                layout: Layout::new(&viewer, "Access history", "patients"),
                id: id.to_owned(),
                patient: found.patient,
                entries,
                generated,
            },
        )
    }
}

/// 403 for someone who may not read the audit trail, recorded as the API records it.
fn refuse(state: &ConsoleState, viewer: &Viewer) -> Response {
    let why = "only a Caldicott guardian or system administrator reads the audit trail";
    let caller = viewer.caller();
    let events = {
        let guard = Guard::new(
            &state.store,
            &state.directory,
            state.audit.as_ref(),
            &caller,
            viewer.origin.clone(),
        );
        guard.note_audit_read("access-report", Vec::new(), Outcome::Deny, why);
        guard.take_pending()
    };
    tri!(web::record(state, Some(viewer), events));
    web::error_page(
        Some(viewer),
        StatusCode::FORBIDDEN,
        "You cannot see who has looked at this record",
        "Only your organisation's Caldicott guardian can see a record's access history. Ask them if a patient wants to know who has looked at their record.",
    )
}

/// The report, with the reads recorded as the API's `$access-report` records them; the
/// patient named (name and NHS number) when the viewer may read the Patient.
fn load(
    state: &ConsoleState,
    ledger: &caldicott_vault::Ledger,
    id: &ResourceId,
    role: caldicott_policy::Role,
    guard: &Guard,
) -> Result<Found, ApiError> {
    let patient_ref = format!("Patient/{id}");
    guard.note_audit_read("access-report", Vec::new(), Outcome::Permit, "audit reader");
    let pseudonym = auditlog::patient_pseudonym(&state.store, &patient_ref)?;
    guard.note_audit_read(
        "access-report",
        vec![pseudonym],
        Outcome::Permit,
        "patient access report",
    );
    let mut patient = "the patient with this record".to_owned();
    if patients::role_may_search(role, "Patient") {
        let ptype = ResourceType::new("Patient").map_err(|_| ApiError::internal("type"))?;
        match state.store.read(&ptype, id, guard) {
            Ok(r) => {
                if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                    patient = match patients::nhs_of(&v) {
                        Some(n) => format!("{} (NHS number {n})", patients::name_of(&v)),
                        None => patients::name_of(&v),
                    };
                }
            }
            Err(e) if e.status.is_client_error() => {}
            Err(e) => return Err(e),
        }
    }
    let (header, entries) = auditlog::patient_report(
        &state.store,
        ledger,
        &state.directory,
        &patient_ref,
        patient.clone(),
        MAX_ENTRIES,
    )?;
    Ok(Found {
        patient,
        header,
        entries,
    })
}

/// The report's entries as lines, newest first.
pub fn entries(header: &ReportHeader, entries: &[ReportEntry]) -> Vec<Entry> {
    let mut sorted: Vec<&ReportEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse((e.event.at_us, e.epoch, e.index)));
    sorted
        .into_iter()
        .map(|e| entry(&header.organisation_names, e))
        .collect()
}

fn entry(names: &BTreeMap<String, String>, e: &ReportEntry) -> Entry {
    let ev = &e.event;
    let u = caldicott_audit::uktime::utc(ev.at_us);
    Entry {
        when: web::date_time(ev.at_us),
        when_utc: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            u.year.clamp(0, 9999),
            u.month,
            u.day,
            u.hour,
            u.minute,
            u.second
        ),
        who: if ev.user.is_empty() {
            "Not recorded".into()
        } else {
            ev.user.clone()
        },
        organisation: match (names.get(&ev.org), ev.org.is_empty()) {
            (_, true) => "Not recorded".into(),
            (Some(n), false) => format!("{n} ({})", ev.org),
            (None, false) => ev.org.clone(),
        },
        role: {
            let r = words::roles_or_codes(&ev.role);
            if r.is_empty() {
                "Not recorded".into()
            } else {
                r
            }
        },
        what: what(ev),
        why: purpose_words(&ev.purpose),
        refused: ev.outcome == Outcome::Deny,
        break_glass: ev.break_glass,
        position: format!("{}-{}", e.epoch, e.index),
    }
}

fn what(ev: &AuditEvent) -> String {
    let action = words::action(ev);
    match (&ev.kind, ev.rtype.as_deref()) {
        (EventKind::Access, Some(t)) if !t.is_empty() => {
            format!("{action}: {}", words::record_type_or_code(t))
        }
        _ => action.to_owned(),
    }
}

/// A purpose of use as a patient would say it (the words of the API's report).
pub fn purpose_words(purpose: &str) -> String {
    match purpose {
        "direct-care" => "Your care".into(),
        "emergency" => "Emergency care".into(),
        "research" => "Research".into(),
        "planning" => "Planning health and care services".into(),
        "audit" => "Checking that records are used properly".into(),
        "" => "Not recorded".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, at_us: i64, bg: bool, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            at_us,
            kind: EventKind::Access,
            action: "read".into(),
            user: user.into(),
            org: "X26".into(),
            role: "gp".into(),
            purpose: "direct-care".into(),
            rtype: Some("Patient".into()),
            id: None,
            patients: vec!["p".into()],
            query: Vec::new(),
            client: None,
            user_agent: None,
            outcome,
            reason: String::new(),
            break_glass: bg,
        }
    }

    fn report_entry(index: u64, event: AuditEvent) -> ReportEntry {
        ReportEntry {
            epoch: 0,
            index,
            event,
            leaf_hash_b64: String::new(),
            inclusion_proof_b64: Vec::new(),
            tree_size: 10,
        }
    }

    #[test]
    fn entries_read_newest_first_in_words() {
        let header = ReportHeader {
            patient_display: String::new(),
            generated_at_us: 0,
            checkpoint_text: String::new(),
            verifier_key: String::new(),
            organisation_names: [("X26".to_owned(), "Castle Care Home".to_owned())]
                .into_iter()
                .collect(),
        };
        let es = entries(
            &header,
            &[
                report_entry(1, event("dr.old", 1_000_000, false, Outcome::Permit)),
                report_entry(2, event("dr.new", 2_000_000, true, Outcome::Deny)),
            ],
        );
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].who, "dr.new");
        assert!(es[0].break_glass && es[0].refused);
        assert_eq!(es[1].who, "dr.old");
        assert_eq!(es[1].organisation, "Castle Care Home (X26)");
        assert_eq!(es[1].role, "GP");
        assert_eq!(es[1].why, "Your care");
        assert_eq!(es[1].position, "0-1");
        assert_eq!(es[1].when_utc, "1970-01-01T00:00:01Z");
    }
}
