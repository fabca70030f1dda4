//! The Caldicott guardian's pages: the break-glass review queue, the unusual-access
//! reports from the audit ledger, and the organisation's data-sharing agreements with
//! their release history.
//!
//! | request | what |
//! |---|---|
//! | `GET /guardian` | overview: counts and links |
//! | `GET /guardian/break-glass` | declarations awaiting review (with a review form each), then those reviewed |
//! | `GET /guardian/break-glass/{id}` | one declaration and its review form |
//! | `POST /guardian/break-glass/{id}` | `decision` = `accept` or `escalate`, `note` (required, ≤ 1000) |
//! | `GET /guardian/unusual?days=N` | the review queries over the last N days (1–90, default 7) |
//! | `GET /guardian/agreements` | the organisation's data-sharing agreements |
//! | `GET /guardian/agreements/{id}` | versions, terms and releases of one |
//! | `POST /guardian/agreements/{id}/approve` | approve the newest version |
//! | `POST /guardian/agreements/{id}/revoke` | revoke, with `reason` |
//!
//! Only the `caldicott-guardian` role may use these pages (a sysadmin may not: reviewing
//! clinicians' emergency access and approving releases is the guardian's duty alone).
//!
//! What it is not: a second set of rules. A review is
//! `caldicott_access::Directory::review_break_glass` (the same call as `caldicott
//! breakglass review`; "accept" records the access as appropriate, "escalate" as not, and
//! raises a `caldicott::alert` log line for follow-up); the review queries are
//! `caldicott_audit::review`'s, fed from the ledger as `caldicott audit review` feeds them
//! (and the read is recorded as the same `audit-read` event); agreements go through
//! `caldicott_share::Book` whose `agreement` module holds every rule (two people, roles,
//! organisation), the list is the API's `caldicott_api::agreements::summary`, and each
//! change is recorded as the API records it (`admin` events `agreement-approve` and
//! `agreement-revoke` with the agreement's id; refusals as denials).
//!
//! A review is recorded as a `break-glass` event `review` naming the declaration (its id is
//! the declaring user and the time); the guardian's note stays with the declaration in the
//! sealed directory, not in the ledger, because it may name the patient, as the
//! clinician's reason does.
//!
//! The "possible relative or neighbour" query needs the staff's family names and addresses,
//! which the access directory does not hold: the page says so and points to `caldicott
//! audit review --staff`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use caldicott_access::AccessError;
use caldicott_access::breakglass::Declaration;
use caldicott_api::audit::{AuditEvent, EventKind, Outcome, security_event};
use caldicott_audit::review::{self, FindingKind, ReviewReport, VolumeParams, WorkingHours};
use caldicott_policy::Role;
use caldicott_share::agreement::{self as rules, Agreement, State as AgreementState};
use caldicott_share::{Actor, AgreementId, Book, Day, ReleaseRecord, ShareError};
use caldicott_vault::Ledger;

use crate::web::{self, Errors, FieldError, Layout, Viewer};
use crate::{ConsoleState, tri};

/// Who may use these pages.
const GUARDIAN: &[Role] = &[Role::CaldicottGuardian];

/// The longest review note and revocation reason.
pub const MAX_NOTE_CHARS: usize = 1000;

/// The default and largest period of the unusual-access report, in days.
pub const DEFAULT_DAYS: u32 = 7;
pub const MAX_DAYS: u32 = 90;

/// At most this many ledger entries of one user are read to list what a declaration
/// opened.
const MAX_ENTRIES_PER_DECLARATION: usize = 2000;

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/guardian", get(overview))
        .route("/guardian/break-glass", get(queue_page))
        .route(
            "/guardian/break-glass/{id}",
            get(declaration_page).post(review_post),
        )
        .route("/guardian/unusual", get(unusual_page))
        .route("/guardian/agreements", get(agreements_page))
        .route("/guardian/agreements/{id}", get(agreement_page))
        .route(
            "/guardian/agreements/{id}/approve",
            axum::routing::post(approve_post),
        )
        .route(
            "/guardian/agreements/{id}/revoke",
            axum::routing::post(revoke_post),
        )
}

// ---------------------------------------------------------------------------------------
// Shared pieces

fn not_found(viewer: &Viewer, what: &str) -> Response {
    web::error_page(
        Some(viewer),
        StatusCode::NOT_FOUND,
        "Page not found",
        &format!("There is no such {what} in your organisation."),
    )
}

fn unavailable(viewer: &Viewer, what: &str) -> Response {
    web::error_page(
        Some(viewer),
        StatusCode::SERVICE_UNAVAILABLE,
        "Sorry, the service is unavailable",
        &format!("{what} cannot be read just now. Try again in a few minutes."),
    )
}

/// An event by the viewer, as `security_event` builds them for the API.
fn event_by(
    viewer: &Viewer,
    kind: EventKind,
    action: &str,
    outcome: Outcome,
    reason: &str,
    now: i64,
) -> AuditEvent {
    let u = viewer.user();
    let mut e = security_event(
        kind,
        action,
        &u.name,
        &u.org,
        &u.role,
        &viewer.origin,
        outcome,
        reason,
        now,
    );
    e.purpose = viewer.session.auth.purpose.to_string();
    e
}

// ---------------------------------------------------------------------------------------
// Overview

#[derive(askama::Template)]
#[template(path = "guardian/overview.html")]
struct OverviewPage {
    layout: Layout,
    awaiting_review: usize,
    active_now: usize,
    proposed: usize,
    approved: usize,
    ledger: bool,
}

async fn overview(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let st = Arc::clone(&state);
    let org = viewer.org().to_owned();
    let counts = tri!(
        web::blocking(move || {
            let now = st.now();
            let queue = st.directory.break_glass_queue(true).map_err(|_| "queue")?;
            let mine: Vec<&Declaration> = queue.iter().filter(|d| d.org == org).collect();
            let awaiting = mine.len();
            let active = mine
                .iter()
                .filter(|d| d.started_at <= now && now < d.expires_at)
                .count();
            let all = Book::new(Arc::clone(&st.vault))
                .list()
                .map_err(|_| "agreements")?;
            let mut proposed = 0;
            let mut approved = 0;
            for v in all
                .iter()
                .filter(|v| v.first().is_some_and(|a| a.org == org))
            {
                match agreement_status(v, Day::today()) {
                    Status::Proposed => proposed += 1,
                    Status::Approved => approved += 1,
                    _ => {}
                }
            }
            Ok::<_, &str>((awaiting, active, proposed, approved))
        })
        .await
    );
    let Ok((awaiting_review, active_now, proposed, approved)) = counts else {
        return unavailable(&viewer, "The break-glass queue or the agreements");
    };
    web::render(
        StatusCode::OK,
        &OverviewPage {
            layout: Layout::new(&viewer, "Caldicott guardian", "guardian"),
            awaiting_review,
            active_now,
            proposed,
            approved,
            ledger: state.ledger.is_some(),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Break-glass review

/// A record opened under a declaration, as the ledger names it.
struct Opened {
    label: String,
    /// `/patients/{id}` for a Patient resource; other resources are named only.
    href: Option<String>,
}

struct ReviewRow {
    by: String,
    at: String,
    outcome: &'static str,
    note: String,
}

struct DeclRow {
    /// The declaration's id (its URL segment).
    id: String,
    /// A short form id unique in the page (`d1`, `d2`, ...).
    n: String,
    user: String,
    started: String,
    expires: String,
    active: bool,
    reason: String,
    /// `None` when the ledger is not available.
    opened: Option<Vec<Opened>>,
    review: Option<ReviewRow>,
}

fn decl_row(d: &Declaration, n: usize, now: i64, opened: Option<Vec<Opened>>) -> DeclRow {
    DeclRow {
        id: d.id.clone(),
        n: format!("d{n}"),
        user: d.user.clone(),
        started: web::date_time(d.started_at),
        expires: web::date_time(d.expires_at),
        active: d.started_at <= now && now < d.expires_at,
        reason: d.reason.clone(),
        opened,
        review: d.review.as_ref().map(|r| ReviewRow {
            by: r.by.clone(),
            at: web::date_time(r.at),
            outcome: if r.appropriate {
                "Accepted"
            } else {
                "Escalated"
            },
            note: r.note.clone(),
        }),
    }
}

/// The records the declaring user opened under the declaration (break-glass flagged,
/// permitted accesses between its start and expiry), newest first, from the ledger's
/// per-user index.
fn opened_under(ledger: &Ledger, d: &Declaration) -> Result<Vec<Opened>, String> {
    let key = format!("u:{}", d.user);
    let positions = ledger
        .find(&key, None, MAX_ENTRIES_PER_DECLARATION)
        .map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (epoch, idx) in positions {
        let leaves = ledger
            .leaves(epoch, idx, idx + 1)
            .map_err(|e| e.to_string())?;
        let Some(leaf) = leaves.first() else { continue };
        if leaf.at_us < d.started_at {
            // Newest first: everything further is older than the declaration.
            break;
        }
        if leaf.at_us >= d.expires_at {
            continue;
        }
        let Ok(e) = AuditEvent::from_leaf(&leaf.data) else {
            continue;
        };
        if e.user != d.user || !e.break_glass || e.outcome != Outcome::Permit {
            continue;
        }
        let (Some(rtype), Some(id)) = (e.rtype.as_deref(), e.id.as_deref()) else {
            continue;
        };
        if seen.insert((rtype.to_owned(), id.to_owned())) {
            out.push(Opened {
                label: format!("{rtype}/{id}"),
                href: (rtype == "Patient").then(|| format!("/patients/{id}")),
            });
        }
    }
    Ok(out)
}

#[derive(askama::Template)]
#[template(path = "guardian/break_glass.html")]
struct QueuePage {
    layout: Layout,
    pending: Vec<DeclRow>,
    reviewed: Vec<DeclRow>,
    notice: Option<&'static str>,
    max_note: usize,
}

#[derive(askama::Template)]
#[template(path = "guardian/review.html")]
struct ReviewPage {
    layout: Layout,
    errors: Errors,
    d: DeclRow,
    decision: String,
    note: String,
    max_note: usize,
}

/// The organisation's declarations (and what each opened, for those awaiting review).
async fn load_queue(
    state: &Arc<ConsoleState>,
    viewer: &Viewer,
) -> Result<(Vec<DeclRow>, Vec<DeclRow>), Response> {
    let st = Arc::clone(state);
    let org = viewer.org().to_owned();
    let rows = web::blocking(move || {
        let now = st.now();
        let all = st.directory.break_glass_queue(false)?;
        let mut pending = Vec::new();
        let mut reviewed = Vec::new();
        for (n, d) in all.iter().filter(|d| d.org == org).enumerate() {
            if d.review.is_some() {
                reviewed.push(decl_row(d, n + 1, now, None));
            } else {
                let opened = st.ledger.as_ref().and_then(|l| opened_under(l, d).ok());
                pending.push(decl_row(d, n + 1, now, opened));
            }
        }
        // Newest reviews first: the guardian looks back at what was just done.
        reviewed.reverse();
        Ok::<_, AccessError>((pending, reviewed))
    })
    .await?;
    rows.map_err(|_| unavailable(viewer, "The break-glass queue"))
}

async fn queue_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let (pending, reviewed) = tri!(load_queue(&state, &viewer).await);
    let notice = match query.as_deref() {
        Some("reviewed=accept") => Some("Review recorded: the access was accepted."),
        Some("reviewed=escalate") => {
            Some("Review recorded: the access was escalated for follow-up.")
        }
        _ => None,
    };
    web::render(
        StatusCode::OK,
        &QueuePage {
            layout: Layout::new(&viewer, "Break-glass review", "guardian"),
            pending,
            reviewed,
            notice,
            max_note: MAX_NOTE_CHARS,
        },
    )
}

/// A declaration id as `declare_break_glass` makes them: 20 digits, `-`, a user name.
fn plausible_declaration_id(id: &str) -> bool {
    id.len() <= 160
        && id.len() > 21
        && id.as_bytes()[..20].iter().all(u8::is_ascii_digit)
        && id.as_bytes()[20] == b'-'
        && !id.chars().any(char::is_control)
}

/// One declaration of the viewer's organisation.
async fn one_declaration(
    state: &Arc<ConsoleState>,
    viewer: &Viewer,
    id: String,
) -> Result<DeclRow, Response> {
    if !plausible_declaration_id(&id) {
        return Err(not_found(viewer, "break-glass declaration"));
    }
    let st = Arc::clone(state);
    let org = viewer.org().to_owned();
    let found = web::blocking(move || {
        let now = st.now();
        let all = st.directory.break_glass_queue(false)?;
        Ok::<_, AccessError>(
            all.iter()
                .filter(|d| d.org == org)
                .enumerate()
                .find(|(_, d)| d.id == id)
                .map(|(n, d)| {
                    let opened = st.ledger.as_ref().and_then(|l| opened_under(l, d).ok());
                    decl_row(d, n + 1, now, opened)
                }),
        )
    })
    .await?;
    match found {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(not_found(viewer, "break-glass declaration")),
        Err(_) => Err(unavailable(viewer, "The break-glass queue")),
    }
}

async fn declaration_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let d = tri!(one_declaration(&state, &viewer, id).await);
    web::render(
        StatusCode::OK,
        &ReviewPage {
            layout: Layout::new(&viewer, "Review a break-glass declaration", "guardian"),
            errors: Errors::default(),
            d,
            decision: String::new(),
            note: String::new(),
            max_note: MAX_NOTE_CHARS,
        },
    )
}

/// What a review form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The access was justified.
    Accept,
    /// It was not, or needs following up.
    Escalate,
}

impl Decision {
    /// The form's value.
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "accept" => Some(Decision::Accept),
            "escalate" => Some(Decision::Escalate),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Escalate => "escalate",
        }
    }
}

async fn review_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let d = tri!(one_declaration(&state, &viewer, id).await);
    let mut errors = Errors::default();
    let decision = Decision::parse(form.get("decision"));
    if decision.is_none() {
        errors.push(FieldError::new(
            "decision",
            "Select whether you accept or escalate this access",
        ));
    }
    let note = match form.required("note", "A note", MAX_NOTE_CHARS) {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    let rerender = |viewer: &Viewer, d: DeclRow, errors: Errors, status: StatusCode| {
        web::render(
            status,
            &ReviewPage {
                layout: Layout::new(viewer, "Review a break-glass declaration", "guardian"),
                errors,
                d,
                decision: form.get("decision").chars().take(16).collect(),
                note: form.get("note").chars().take(MAX_NOTE_CHARS + 10).collect(),
                max_note: MAX_NOTE_CHARS,
            },
        )
    };
    let Some(decision) = decision.filter(|_| errors.is_empty()) else {
        return rerender(&viewer, d, errors, StatusCode::UNPROCESSABLE_ENTITY);
    };
    if d.review.is_some() {
        let mut errors = Errors::default();
        errors.push(FieldError::new(
            "decision",
            "This declaration has been reviewed already",
        ));
        return rerender(&viewer, d, errors, StatusCode::CONFLICT);
    }
    let st = Arc::clone(&state);
    let decl_id = d.id.clone();
    let by = viewer.user().name.clone();
    let now = state.now();
    let event = {
        let mut e = event_by(
            &viewer,
            EventKind::BreakGlass,
            "review",
            Outcome::Permit,
            match decision {
                Decision::Accept => "break-glass access reviewed: accepted as appropriate",
                Decision::Escalate => "break-glass access reviewed: escalated as not appropriate",
            },
            now,
        );
        e.rtype = Some("BreakGlass".to_owned());
        e.id = Some(decl_id.clone());
        e
    };
    let result = tri!(
        web::blocking(move || {
            let reviewed = st.directory.review_break_glass(
                &decl_id,
                &by,
                decision == Decision::Accept,
                &note,
                now,
            )?;
            Ok::<_, AccessError>(reviewed)
        })
        .await
    );
    match result {
        Ok(reviewed) => {
            tri!(web::record(&state, Some(&viewer), vec![event]));
            if decision == Decision::Escalate {
                tracing::warn!(
                    target: "caldicott::alert",
                    declaration = %reviewed.id,
                    user = %reviewed.user,
                    guardian = %viewer.user().name,
                    "break-glass access escalated by the Caldicott guardian"
                );
            }
            web::redirect(&format!(
                "/guardian/break-glass?reviewed={}",
                decision.word()
            ))
        }
        Err(AccessError::Policy(_)) => {
            // Reviewed by someone else between the page and the form.
            let mut errors = Errors::default();
            errors.push(FieldError::new(
                "decision",
                "This declaration has been reviewed already",
            ));
            rerender(&viewer, d, errors, StatusCode::CONFLICT)
        }
        Err(_) => unavailable(&viewer, "The break-glass queue"),
    }
}

// ---------------------------------------------------------------------------------------
// Unusual access

struct FindingRow {
    kind: &'static str,
    at: String,
    user: String,
    detail: String,
    entries: String,
}

struct KindCount {
    title: &'static str,
    count: usize,
}

#[derive(askama::Template)]
#[template(path = "guardian/unusual.html")]
struct UnusualPage {
    layout: Layout,
    errors: Errors,
    days: String,
    /// `None` when the period was not valid (nothing was read).
    report: Option<Vec<FindingRow>>,
    counts: Vec<KindCount>,
    max_days: u32,
}

/// The `days` filter: a whole number from 1 to [`MAX_DAYS`]; absent or empty is the
/// default.
pub fn parse_days(raw: Option<&str>) -> Result<u32, FieldError> {
    let v = raw.unwrap_or("").trim();
    if v.is_empty() {
        return Ok(DEFAULT_DAYS);
    }
    match v.parse::<u32>() {
        Ok(d) if (1..=MAX_DAYS).contains(&d) => Ok(d),
        _ => Err(FieldError::new(
            "days",
            format!("Enter a whole number of days from 1 to {MAX_DAYS}"),
        )),
    }
}

async fn unusual_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let Some(ledger) = state.ledger.clone() else {
        return web::error_page(
            Some(&viewer),
            StatusCode::SERVICE_UNAVAILABLE,
            "The audit ledger is not available",
            "The unusual-access reports are read from the audit ledger, which this server has not opened. Ask your system administrator.",
        );
    };
    let raw_days = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "days")
            .map(|(_, v)| v.into_owned())
    });
    let layout = Layout::new(&viewer, "Unusual access", "guardian");
    let days = match parse_days(raw_days.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            let mut errors = Errors::default();
            errors.push(e);
            return web::render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &UnusualPage {
                    layout,
                    errors,
                    days: raw_days.unwrap_or_default().chars().take(8).collect(),
                    report: None,
                    counts: Vec::new(),
                    max_days: MAX_DAYS,
                },
            );
        }
    };
    let org = viewer.org().to_owned();
    let since = state.now() - i64::from(days) * 86_400_000_000;
    let report = tri!(
        web::blocking(move || {
            // Every entry of the period (no bound: the guardian asked for these days).
            let (mut events, _) = crate::ledger_read::events_since(&ledger, since, u64::MAX)?;
            events.retain(|(_, _, ev)| ev.org == org);
            let refs = || events.iter().map(|(e, i, ev)| (*e, *i, ev));
            let mut findings = review::break_glass_uses(refs());
            findings.extend(review::after_hours(refs(), &WorkingHours::default()));
            findings.extend(review::unusual_volume(refs(), &VolumeParams::default()));
            Ok::<_, String>(ReviewReport::new(findings))
        })
        .await
    );
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the audit ledger could not be read for the review");
            return unavailable(&viewer, "The audit ledger");
        }
    };
    // Recorded as `caldicott audit review` records it, before the report is shown.
    let mut event = event_by(
        &viewer,
        EventKind::AuditRead,
        "review",
        Outcome::Permit,
        &format!("review of the last {days} days"),
        state.now(),
    );
    event.purpose = "audit".into();
    tri!(web::record(&state, Some(&viewer), vec![event]));
    let counts = [
        FindingKind::BreakGlass,
        FindingKind::AfterHours,
        FindingKind::UnusualVolume,
    ]
    .into_iter()
    .map(|k| KindCount {
        title: k.title(),
        count: report.of_kind(k).count(),
    })
    .collect();
    let rows = report
        .findings
        .iter()
        .map(|f| FindingRow {
            kind: f.kind.title(),
            at: web::date_time(f.at_us),
            user: if f.user.is_empty() {
                "(no user recorded)".to_owned()
            } else {
                f.user.clone()
            },
            detail: f.detail.clone(),
            entries: {
                let mut s: Vec<String> = f
                    .entries
                    .iter()
                    .take(5)
                    .map(|p| format!("{}-{}", p.epoch, p.index))
                    .collect();
                if f.entries.len() > 5 {
                    s.push(format!("and {} more", f.entries.len() - 5));
                }
                s.join(", ")
            },
        })
        .collect();
    web::render(
        StatusCode::OK,
        &UnusualPage {
            layout,
            errors: Errors::default(),
            days: days.to_string(),
            report: Some(rows),
            counts,
            max_days: MAX_DAYS,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Data-sharing agreements

/// Where an agreement stands, as the guardian reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Proposed,
    Approved,
    Revoked,
    /// Approved, and past its expiry day.
    Expired,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Proposed => "Proposed",
            Status::Approved => "Approved",
            Status::Revoked => "Revoked",
            Status::Expired => "Expired",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Status::Proposed => "nhsuk-tag--yellow",
            Status::Approved => "nhsuk-tag--green",
            Status::Revoked => "nhsuk-tag--red",
            Status::Expired => "nhsuk-tag--grey",
        }
    }
}

/// The status of an agreement from its versions: the API's summary (`proposed`,
/// `approved`, `revoked`), and `expired` once the approved version's expiry day is past.
pub fn agreement_status(versions: &[Agreement], today: Day) -> Status {
    let summary = caldicott_api::agreements::summary(versions);
    match summary["state"].as_str() {
        Some("revoked") => Status::Revoked,
        Some("approved") => {
            let expired = versions
                .iter()
                .filter(|a| matches!(a.state, AgreementState::Approved { .. }))
                .max_by_key(|a| a.version)
                .is_some_and(|a| today > a.terms.expires);
            if expired {
                Status::Expired
            } else {
                Status::Approved
            }
        }
        _ => Status::Proposed,
    }
}

/// When the next release may be made, in words: `caldicott_share::agreement::may_release`
/// decides, the page only says its answer.
fn next_release(versions: &[Agreement], releases: &[ReleaseRecord], today: Day) -> String {
    match rules::may_release(versions, releases, today) {
        Ok(a) => format!("A release may be made now, under version {}", a.version),
        Err(ShareError::Refused(why)) => why,
        Err(e) => e.to_string(),
    }
}

struct AgreementRow {
    id: String,
    title: String,
    recipient: String,
    purpose: String,
    version: String,
    status: &'static str,
    tag: &'static str,
    expires: String,
    next_release: String,
    releases: usize,
}

#[derive(askama::Template)]
#[template(path = "guardian/agreements.html")]
struct AgreementsPage {
    layout: Layout,
    rows: Vec<AgreementRow>,
}

async fn agreements_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let st = Arc::clone(&state);
    let org = viewer.org().to_owned();
    let rows = tri!(
        web::blocking(move || {
            let book = Book::new(Arc::clone(&st.vault));
            let today = Day::today();
            let mut rows = Vec::new();
            for versions in book
                .list()?
                .iter()
                .filter(|v| v.first().is_some_and(|a| a.org == org))
            {
                let s = caldicott_api::agreements::summary(versions);
                let Some(id) = versions.first().map(|a| a.id.clone()) else {
                    continue;
                };
                let releases = book.releases(&id)?;
                let status = agreement_status(versions, today);
                let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
                rows.push(AgreementRow {
                    id: id.to_string(),
                    title: text("title"),
                    recipient: text("recipient"),
                    purpose: text("purpose"),
                    version: s["version"].to_string(),
                    status: status.label(),
                    tag: status.tag(),
                    expires: text("expires"),
                    next_release: next_release(versions, &releases, today),
                    releases: releases.len(),
                });
            }
            Ok::<_, ShareError>(rows)
        })
        .await
    );
    let Ok(rows) = rows else {
        return unavailable(&viewer, "The data-sharing agreements");
    };
    web::render(
        StatusCode::OK,
        &AgreementsPage {
            layout: Layout::new(&viewer, "Data-sharing agreements", "guardian"),
            rows,
        },
    )
}

struct VersionRow {
    version: u32,
    title: String,
    proposed_by: String,
    proposed_at: String,
    state: String,
}

struct ReleaseRow {
    id: String,
    version: u32,
    on: String,
    by: String,
    rows: u64,
    opted_out: u64,
    manifest: String,
}

struct Detail {
    id: String,
    title: String,
    recipient: String,
    recipient_ods: String,
    purpose: String,
    legal_basis: String,
    frequency: String,
    expires: String,
    columns: Vec<String>,
    status: &'static str,
    tag: &'static str,
    next_release: String,
    newest: u32,
    can_approve: bool,
    can_revoke: bool,
    proposed_by: String,
    versions: Vec<VersionRow>,
    releases: Vec<ReleaseRow>,
}

#[derive(askama::Template)]
#[template(path = "guardian/agreement.html")]
struct AgreementPage {
    layout: Layout,
    errors: Errors,
    a: Detail,
    reason: String,
    notice: Option<&'static str>,
    max_reason: usize,
}

fn detail(versions: &[Agreement], releases: &[ReleaseRecord], today: Day) -> Option<Detail> {
    let newest = versions.iter().max_by_key(|a| a.version)?;
    let status = agreement_status(versions, today);
    let t = &newest.terms;
    let json_word = |v: serde_json::Value| v.as_str().unwrap_or("").to_owned();
    Some(Detail {
        id: newest.id.to_string(),
        title: t.title.clone(),
        recipient: t.recipient.name.clone(),
        recipient_ods: t.recipient.ods.clone().unwrap_or_default(),
        purpose: t.purpose.as_str().to_owned(),
        legal_basis: format!(
            "{} ({})",
            json_word(serde_json::to_value(t.legal_basis.kind).unwrap_or_default()),
            t.legal_basis.reference
        ),
        frequency: json_word(serde_json::to_value(t.frequency).unwrap_or_default()),
        expires: t.expires.to_string(),
        columns: serde_json::to_value(&t.dataset)
            .ok()
            .map_or_else(Vec::new, |d| {
                d["column"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some(format!(
                            "{} = {}",
                            c["name"].as_str()?,
                            c["path"].as_str().unwrap_or("")
                        ))
                    })
                    .collect()
            }),
        status: status.label(),
        tag: status.tag(),
        next_release: next_release(versions, releases, today),
        newest: newest.version,
        can_approve: matches!(newest.state, AgreementState::Proposed) && status != Status::Revoked,
        can_revoke: status != Status::Revoked,
        proposed_by: newest.proposed_by.clone(),
        versions: versions
            .iter()
            .map(|a| VersionRow {
                version: a.version,
                title: a.terms.title.clone(),
                proposed_by: a.proposed_by.clone(),
                proposed_at: web::date_time(a.proposed_at_us),
                state: match &a.state {
                    AgreementState::Proposed => "Proposed".to_owned(),
                    AgreementState::Approved { by, at_us } => {
                        format!("Approved by {by}, {}", web::date_time(*at_us))
                    }
                    AgreementState::Revoked { by, at_us, reason } => {
                        format!("Revoked by {by}, {}: {reason}", web::date_time(*at_us))
                    }
                },
            })
            .collect(),
        releases: releases
            .iter()
            .map(|r| ReleaseRow {
                id: r.release_id.clone(),
                version: r.version,
                on: r.on.to_string(),
                by: r.by.clone(),
                rows: r.rows,
                opted_out: r.opted_out,
                manifest: r.manifest_sha256.chars().take(16).collect(),
            })
            .collect(),
    })
}

/// One agreement of the viewer's organisation, as the page shows it.
async fn load_agreement(
    state: &Arc<ConsoleState>,
    viewer: &Viewer,
    id: &str,
) -> Result<Detail, Response> {
    let Ok(id) = AgreementId::parse(id) else {
        return Err(not_found(viewer, "data-sharing agreement"));
    };
    let st = Arc::clone(state);
    let org = viewer.org().to_owned();
    let found = web::blocking(move || {
        let book = Book::new(Arc::clone(&st.vault));
        let versions = match book.versions(&id) {
            Ok(v) => v,
            Err(ShareError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Another organisation's agreement is as good as absent (as in the API).
        if versions.first().is_none_or(|a| a.org != org) {
            return Ok(None);
        }
        let releases = book.releases(&id)?;
        Ok(detail(&versions, &releases, Day::today()))
    })
    .await?;
    match found {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(not_found(viewer, "data-sharing agreement")),
        Err(_) => Err(unavailable(viewer, "The data-sharing agreements")),
    }
}

fn agreement_view(
    viewer: &Viewer,
    status: StatusCode,
    a: Detail,
    errors: Errors,
    reason: String,
    notice: Option<&'static str>,
) -> Response {
    web::render(
        status,
        &AgreementPage {
            layout: Layout::new(viewer, "Data-sharing agreement", "guardian"),
            errors,
            a,
            reason,
            notice,
            max_reason: MAX_NOTE_CHARS,
        },
    )
}

async fn agreement_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let a = tri!(load_agreement(&state, &viewer, &id).await);
    let notice = match query.as_deref() {
        Some("done=approve") => Some("The agreement is approved."),
        Some("done=revoke") => Some("The agreement is revoked: no release can be made under it."),
        _ => None,
    };
    agreement_view(
        &viewer,
        StatusCode::OK,
        a,
        Errors::default(),
        String::new(),
        notice,
    )
}

/// What a change form asks the book to do.
enum Change {
    Approve,
    Revoke(String),
}

async fn change(
    state: Arc<ConsoleState>,
    ext: Extensions,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    approve: bool,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), GUARDIAN).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let a = tri!(load_agreement(&state, &viewer, &id).await);
    let (action, field, change) = if approve {
        ("agreement-approve", "approve", Change::Approve)
    } else {
        match form.required("reason", "The reason for revoking", MAX_NOTE_CHARS) {
            Ok(r) => ("agreement-revoke", "reason", Change::Revoke(r)),
            Err(e) => {
                let mut errors = Errors::default();
                errors.push(e);
                let typed = form
                    .get("reason")
                    .chars()
                    .take(MAX_NOTE_CHARS + 10)
                    .collect();
                return agreement_view(
                    &viewer,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    a,
                    errors,
                    typed,
                    None,
                );
            }
        }
    };
    let typed = match &change {
        Change::Revoke(r) => r.clone(),
        Change::Approve => String::new(),
    };
    let st = Arc::clone(&state);
    let user = viewer.user().clone();
    let agreement_id = a.id.clone();
    let now = state.now();
    let result = tri!(
        web::blocking(move || {
            let Ok(id) = AgreementId::parse(&agreement_id) else {
                return Err(ShareError::NotFound(agreement_id));
            };
            let book = Book::new(Arc::clone(&st.vault));
            let actor = Actor {
                user: &user.name,
                org: &user.org,
                role: &user.role,
            };
            match change {
                Change::Approve => book.approve(&id, &actor, now),
                Change::Revoke(reason) => book.revoke(&id, &actor, &reason, now),
            }
        })
        .await
    );
    let event = |outcome: Outcome, reason: &str| {
        let mut e = event_by(&viewer, EventKind::Admin, action, outcome, reason, now);
        e.id = Some(a.id.clone());
        e.rtype = Some("DataSharingAgreement".to_owned());
        e
    };
    match result {
        Ok(changed) => {
            let e = event(Outcome::Permit, &format!("version {}", changed.version));
            tri!(web::record(&state, Some(&viewer), vec![e]));
            web::redirect(&format!(
                "/guardian/agreements/{}?done={}",
                changed.id,
                if approve { "approve" } else { "revoke" }
            ))
        }
        Err(e) => {
            let status = match &e {
                ShareError::Refused(why) => {
                    let denial = event(Outcome::Deny, why);
                    tri!(web::record(&state, Some(&viewer), vec![denial]));
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ShareError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ShareError::Conflict(_) => StatusCode::CONFLICT,
                ShareError::NotFound(_) => return not_found(&viewer, "data-sharing agreement"),
                _ => {
                    tracing::error!(error = %e, "agreement store failed");
                    return unavailable(&viewer, "The data-sharing agreements");
                }
            };
            let message = match &e {
                ShareError::Refused(why) | ShareError::Invalid(why) => capitalise(why),
                e => capitalise(&e.to_string()),
            };
            let mut errors = Errors::default();
            errors.push(FieldError::new(field, message));
            agreement_view(&viewer, status, a, errors, typed, None)
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

async fn approve_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, ext, headers, id, body, true).await
}

async fn revoke_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change(state, ext, headers, id, body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_checked() {
        assert_eq!(parse_days(None).ok(), Some(DEFAULT_DAYS));
        assert_eq!(parse_days(Some(" ")).ok(), Some(DEFAULT_DAYS));
        assert_eq!(parse_days(Some("30")).ok(), Some(30));
        assert_eq!(parse_days(Some("90")).ok(), Some(90));
        for bad in ["0", "91", "-1", "7d", "<script>", "99999999999"] {
            assert!(parse_days(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions_and_ids() {
        assert_eq!(Decision::parse("accept"), Some(Decision::Accept));
        assert_eq!(Decision::parse("escalate"), Some(Decision::Escalate));
        assert_eq!(Decision::parse("Accept"), None);
        assert!(plausible_declaration_id("00001764420000000000-dr.who"));
        assert!(!plausible_declaration_id("../etc"));
        assert!(!plausible_declaration_id("0000176442000000000x-dr.who"));
    }
}
