//! The Caldicott guardian's pages through the console: the break-glass review queue (a
//! clinician declares through the API, the guardian reviews in the console), the
//! unusual-access report from the audit ledger, and data-sharing agreements proposed as the
//! command line proposes them, approved and revoked in the console under the sharing rules.

mod common;

use axum::body::Body;
use axum::http::Request;
use caldicott_api::audit::{EventKind, Outcome};
use caldicott_policy::{Purpose, Role};
use caldicott_share::agreement::{State as AgreementState, Terms};
use caldicott_share::{Actor, AgreementId, Book};
use common::{App, HOST, ORG, OTHER_ORG};
use serde_json::json;

/// `POST /fhir/$break-glass` with a bearer token, as a clinician's app declares.
async fn declare(app: &App, token: &str, reason: &str) -> u16 {
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueString": reason}, {"name": "minutes", "valueInteger": 30}]});
    let req = Request::builder()
        .method("POST")
        .uri("/fhir/$break-glass")
        .header("host", HOST)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/fhir+json")
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(req).await.status
}

async fn fhir_get(app: &App, token: &str, path: &str) -> u16 {
    let req = Request::builder()
        .method("GET")
        .uri(path)
        .header("host", HOST)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.send(req).await.status
}

/// Text as the templates escape it.
fn escaped(s: &str) -> String {
    s.replace('<', "&#60;").replace('>', "&#62;")
}

const REASON: &str = "Unconscious in the lounge, no records <b>available</b>";

#[tokio::test]
async fn a_guardian_reviews_a_break_glass_declaration() {
    let app = App::with_ledger();
    // A patient of another organisation, with whom the GP has no care relationship.
    app.add_user("dr.river", OTHER_ORG, Role::Gp, None);
    let writer = app.token("dr.river", "user/*.write user/*.read", Purpose::DirectCare);
    let patient = app
        .create(
            &writer,
            &json!({
                "resourceType": "Patient",
                "identifier": [{ "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919" }],
                "name": [{ "family": "Ambrose", "given": ["Edith"] }],
                "gender": "female",
                "birthDate": "1931-02-03",
                "managingOrganization": { "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": OTHER_ORG } }
            }),
        )
        .await;
    app.add_user("dr.who", ORG, Role::Gp, None);
    let gp = app.token("dr.who", "user/*.read", Purpose::DirectCare);
    assert_eq!(declare(&app, &gp, REASON).await, 200);
    let read = fhir_get(&app, &gp, &format!("/fhir/Patient/{patient}")).await;
    assert_eq!(read, 200, "break-glass opens the record");
    assert!(
        app.events()
            .iter()
            .any(|e| e.user == "dr.who" && e.break_glass && e.outcome == Outcome::Permit),
        "the access is flagged"
    );

    let mut guardian = app.signed_in("grace", ORG, Role::CaldicottGuardian).await;
    let overview = guardian.get(&app, "/guardian").await.expect(200);
    assert_eq!(
        overview.text_of_id("count-awaiting-review").as_deref(),
        Some("1")
    );
    let queue = guardian
        .get(&app, "/guardian/break-glass")
        .await
        .expect(200);
    assert!(queue.body.contains("id=\"pending\""), "{}", queue.body);
    assert!(queue.body.contains("dr.who"));
    // The clinician's words are shown escaped.
    assert!(queue.body.contains(&escaped("no records <b>available</b>")));
    assert!(!queue.body.contains("<b>available"));
    // What was opened under it, from the ledger: the record's resource id, never in a title.
    assert!(
        queue
            .body
            .contains(&format!("href=\"/patients/{patient}\"")),
        "{}",
        queue.body
    );
    assert!(!queue.body.contains("id=\"reviewed\""));
    let id = app.directory.break_glass_queue(true).unwrap()[0].id.clone();
    let path = format!("/guardian/break-glass/{id}");
    assert!(queue.body.contains(&format!("action=\"{path}\"")));

    // No note: an inline error, nothing recorded.
    let r = guardian
        .post(&app, &path, &[("decision", "accept"), ("note", "  ")])
        .await
        .expect(422);
    assert!(r.body.contains("nhsuk-error-summary"));
    assert!(r.body.contains("id=\"note-error\""));
    assert!(r.body.contains("href=\"#note\""));
    // Checked: the decision is remembered.
    assert!(r.body.contains("value=\"accept\" checked"));
    // No decision, and an overlong note.
    let long = "x".repeat(1001);
    let r = guardian
        .post(&app, &path, &[("decision", "maybe"), ("note", &long)])
        .await
        .expect(422);
    assert!(r.body.contains("id=\"decision-error\""));
    assert!(r.body.contains("1000 characters or fewer"));
    assert!(app.directory.break_glass_queue(true).unwrap().len() == 1);
    assert!(
        !app.events()
            .iter()
            .any(|e| e.kind == EventKind::BreakGlass && e.action == "review")
    );

    // Accepted with a note.
    let note = "Checked with the duty manager: emergency admission";
    let r = guardian
        .post(&app, &path, &[("decision", "accept"), ("note", note)])
        .await
        .expect(303);
    assert_eq!(r.location(), "/guardian/break-glass?reviewed=accept");
    let queue = guardian.get(&app, r.location()).await.expect(200);
    assert!(queue.body.contains("id=\"notice\""));
    assert!(queue.body.contains("id=\"nothing-pending\""));
    assert!(queue.body.contains("id=\"reviewed\""));
    assert!(queue.body.contains("Accepted"));
    assert!(queue.body.contains(note));
    let all = app.directory.break_glass_queue(false).unwrap();
    let review = all[0].review.as_ref().expect("reviewed");
    assert_eq!(review.by, "grace");
    assert!(review.appropriate);
    assert_eq!(review.note, note);
    let events = app.events();
    let e = events
        .iter()
        .find(|e| e.kind == EventKind::BreakGlass && e.action == "review")
        .expect("the review is audited");
    assert_eq!(e.user, "grace");
    assert_eq!(e.org, ORG);
    assert_eq!(e.id.as_deref(), Some(id.as_str()));
    assert_eq!(e.outcome, Outcome::Permit);
    assert!(!e.reason.contains(note), "the note stays out of the ledger");

    // A second review of the same declaration is refused.
    let r = guardian
        .post(&app, &path, &[("decision", "escalate"), ("note", "again")])
        .await
        .expect(409);
    assert!(r.body.contains("reviewed already"));

    // A later declaration, escalated from its own review page.
    assert_eq!(declare(&app, &gp, "second emergency").await, 200);
    let second = app.directory.break_glass_queue(true).unwrap()[0].id.clone();
    let second_path = format!("/guardian/break-glass/{second}");
    let page = guardian.get(&app, &second_path).await.expect(200);
    assert!(page.body.contains("id=\"record-review\""));
    let r = guardian
        .submit(
            &app,
            &second_path,
            &[
                ("decision", "escalate"),
                ("note", "No emergency on the rota"),
            ],
        )
        .await
        .expect(303);
    assert_eq!(r.location(), "/guardian/break-glass?reviewed=escalate");
    let all = app.directory.break_glass_queue(false).unwrap();
    let escalated = all.iter().find(|d| d.id == second).unwrap();
    assert!(!escalated.review.as_ref().unwrap().appropriate);
    let queue = guardian.get(&app, r.location()).await.expect(200);
    assert!(queue.body.contains("Escalated"));

    // Another organisation's guardian sees none of it.
    let mut other = app
        .signed_in("gus", OTHER_ORG, Role::CaldicottGuardian)
        .await;
    let q = other.get(&app, "/guardian/break-glass").await.expect(200);
    assert!(!q.body.contains("dr.who"));
    other.get(&app, &path).await.expect(404);
    other
        .post(&app, &path, &[("decision", "accept"), ("note", "n")])
        .await
        .expect(404);
}

#[tokio::test]
async fn other_roles_cannot_use_the_guardian_pages() {
    let app = App::new();
    let mut gp = app.signed_in("dr.patel", ORG, Role::Gp).await;
    let mut admin = app.signed_in("sam", ORG, Role::Sysadmin).await;
    for path in [
        "/guardian",
        "/guardian/break-glass",
        "/guardian/unusual",
        "/guardian/agreements",
        "/guardian/agreements/DSA-x",
    ] {
        let r = gp.get(&app, path).await.expect(403);
        assert!(r.body.contains("You cannot use this page"));
        admin.get(&app, path).await.expect(403);
    }
    let home = gp.get(&app, "/").await.expect(200);
    assert!(!home.body.contains("id=\"nav-guardian\""));
    gp.post(
        &app,
        "/guardian/break-glass/00000000000000000001-x",
        &[("decision", "accept"), ("note", "n")],
    )
    .await
    .expect(403);
    gp.post(&app, "/guardian/agreements/DSA-x/approve", &[])
        .await
        .expect(403);
    // Not signed in: to the sign-in page.
    let mut anon = common::Browser::new();
    let r = anon.get(&app, "/guardian").await.expect(303);
    assert!(r.location().starts_with("/signin"));
}

#[tokio::test]
async fn unusual_access_needs_the_ledger() {
    let app = App::new();
    let mut g = app.signed_in("grace", ORG, Role::CaldicottGuardian).await;
    let r = g.get(&app, "/guardian/unusual").await.expect(503);
    assert!(r.body.contains("The audit ledger is not available"));
}

#[tokio::test]
async fn unusual_access_reports_break_glass_use_from_the_ledger() {
    let app = App::with_ledger();
    app.add_user("dr.who", ORG, Role::Gp, None);
    let gp = app.token("dr.who", "user/*.read", Purpose::DirectCare);
    assert_eq!(declare(&app, &gp, "emergency").await, 200);
    let mut g = app.signed_in("grace", ORG, Role::CaldicottGuardian).await;

    // Bad periods: inline errors, nothing read.
    for bad in ["0", "91", "seven", "%3Cscript%3E"] {
        let r = g
            .get(&app, &format!("/guardian/unusual?days={bad}"))
            .await
            .expect(422);
        assert!(r.body.contains("id=\"days-error\""), "{bad}");
        assert!(!r.body.contains("<script>"));
    }
    assert!(!app.events().iter().any(|e| e.kind == EventKind::AuditRead));

    let r = g.get(&app, "/guardian/unusual?days=30").await.expect(200);
    assert!(r.body.contains("id=\"finding-counts\""), "{}", r.body);
    assert!(r.body.contains("id=\"findings\""), "{}", r.body);
    assert!(r.body.contains("Emergency access (break-glass)"));
    assert!(r.body.contains("dr.who"));
    let events = app.events();
    let read = events
        .iter()
        .find(|e| e.kind == EventKind::AuditRead && e.action == "review")
        .expect("the read is audited");
    assert_eq!(read.user, "grace");
    assert_eq!(read.purpose, "audit");
    assert!(read.reason.contains("30 days"));

    // Another organisation's guardian does not see this organisation's findings.
    let mut other = app
        .signed_in("gus", OTHER_ORG, Role::CaldicottGuardian)
        .await;
    let r = other.get(&app, "/guardian/unusual").await.expect(200);
    assert!(r.body.contains("id=\"no-findings\""), "{}", r.body);
    assert!(!r.body.contains("dr.who"));
}

fn terms() -> Terms {
    serde_json::from_value(json!({
        "title": "Diabetes outcomes",
        "recipient": {
            "name": "University of Leeds",
            "age_key": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
        },
        "purpose": "research",
        "legal_basis": { "kind": "section251", "reference": "CAG 21/CAG/0001" },
        "dataset": {
            "column": [
                { "name": "sex", "path": "Patient.gender" },
                { "name": "birth_date", "path": "Patient.birthDate" }
            ]
        },
        "deid_profile": "metric = \"loss\"\n[privacy]\nmodel = \"k-anonymity\"\nk = 5\n[[attribute]]\nname = \"sex\"\nkind = \"insensitive\"\n[[attribute]]\nname = \"birth_date\"\nkind = \"quasi-identifier\"\nhierarchy = { date = \"yyyy-mm-dd\" }\n",
        "frequency": "monthly",
        "expires": "2099-12-31"
    }))
    .unwrap()
}

fn state_of(app: &App, id: &str) -> AgreementState {
    let book = Book::new(app.vault.clone());
    let versions = book.versions(&AgreementId::parse(id).unwrap()).unwrap();
    versions
        .into_iter()
        .max_by_key(|a| a.version)
        .unwrap()
        .state
}

#[tokio::test]
async fn agreements_are_approved_by_another_guardian_and_revoked() {
    let app = App::new();
    let mut grace = app.signed_in("grace", ORG, Role::CaldicottGuardian).await;
    // Proposed as `caldicott share agreement propose` does, by grace herself.
    let proposed = Book::new(app.vault.clone())
        .propose(
            &Actor {
                user: "grace",
                org: ORG,
                role: "caldicott-guardian",
            },
            terms(),
            caldicott_vault::now_micros(),
        )
        .unwrap();
    let id = proposed.id.to_string();

    let list = grace.get(&app, "/guardian/agreements").await.expect(200);
    assert!(list.body.contains("Diabetes outcomes"));
    assert!(list.body.contains("University of Leeds"));
    assert_eq!(
        list.text_of_id(&format!("status-{id}")).as_deref(),
        Some("Proposed")
    );
    let detail_path = format!("/guardian/agreements/{id}");
    let detail = grace.get(&app, &detail_path).await.expect(200);
    assert!(detail.body.contains("id=\"approve\""));
    assert!(detail.body.contains("id=\"versions\""));
    assert!(detail.body.contains("not approved yet"), "{}", detail.body);
    assert!(detail.body.contains("id=\"no-releases\""));

    // The proposer cannot approve: an inline error, and the refusal is recorded.
    let approve = format!("{detail_path}/approve");
    let r = grace.post(&app, &approve, &[]).await.expect(422);
    assert!(r.body.contains("nhsuk-error-summary"), "{}", r.body);
    assert!(r.body.contains("id=\"approve-error\""));
    assert!(r.body.contains("cannot also approve"));
    assert_eq!(state_of(&app, &id), AgreementState::Proposed);
    assert!(app.events().iter().any(|e| e.action == "agreement-approve"
        && e.outcome == Outcome::Deny
        && e.id.as_deref() == Some(id.as_str())));

    // Another organisation's guardian cannot see or approve it.
    let mut gus = app
        .signed_in("gus", OTHER_ORG, Role::CaldicottGuardian)
        .await;
    let theirs = gus.get(&app, "/guardian/agreements").await.expect(200);
    assert!(!theirs.body.contains("Diabetes outcomes"));
    gus.get(&app, &detail_path).await.expect(404);
    gus.post(&app, &approve, &[]).await.expect(404);

    // A second guardian approves.
    let mut gwen = app.signed_in("gwen", ORG, Role::CaldicottGuardian).await;
    let r = gwen.post(&app, &approve, &[]).await.expect(303);
    assert_eq!(r.location(), format!("{detail_path}?done=approve"));
    assert!(matches!(
        state_of(&app, &id),
        AgreementState::Approved { by, .. } if by == "gwen"
    ));
    let page = gwen.get(&app, r.location()).await.expect(200);
    assert_eq!(page.text_of_id("status").as_deref(), Some("Approved"));
    assert!(page.body.contains("A release may be made now"));
    assert!(!page.body.contains("id=\"approve\""));
    let events = app.events();
    let e = events
        .iter()
        .find(|e| e.action == "agreement-approve" && e.outcome == Outcome::Permit)
        .expect("approval audited");
    assert_eq!(e.user, "gwen");
    assert_eq!(e.kind, EventKind::Admin);
    assert_eq!(e.rtype.as_deref(), Some("DataSharingAgreement"));
    assert_eq!(e.id.as_deref(), Some(id.as_str()));
    // Approving again: refused inline (no form is offered, but a stale page may post).
    let r = gwen.post(&app, &approve, &[]).await.expect(422);
    assert!(r.body.contains("already approved"));

    // Revoking needs a reason.
    let revoke = format!("{detail_path}/revoke");
    let r = grace
        .post(&app, &revoke, &[("reason", " ")])
        .await
        .expect(422);
    assert!(r.body.contains("id=\"reason-error\""));
    assert!(matches!(
        state_of(&app, &id),
        AgreementState::Approved { .. }
    ));
    let why = "The study ended early <script>";
    let r = grace
        .post(&app, &revoke, &[("reason", why)])
        .await
        .expect(303);
    let page = grace.get(&app, r.location()).await.expect(200);
    assert_eq!(page.text_of_id("status").as_deref(), Some("Revoked"));
    assert!(
        page.body
            .contains(&escaped("The study ended early <script>"))
    );
    assert!(!page.body.contains("id=\"revoke\""));
    assert!(page.body.contains("is revoked"));
    assert!(matches!(
        state_of(&app, &id),
        AgreementState::Revoked { by, reason, .. } if by == "grace" && reason == why
    ));
    assert!(app.events().iter().any(|e| e.action == "agreement-revoke"
        && e.outcome == Outcome::Permit
        && e.user == "grace"));
    let list = grace.get(&app, "/guardian/agreements").await.expect(200);
    assert_eq!(
        list.text_of_id(&format!("status-{id}")).as_deref(),
        Some("Revoked")
    );

    // An unknown or malformed id is a 404, not a 500.
    grace
        .get(&app, "/guardian/agreements/DSA-nothing")
        .await
        .expect(404);
    grace
        .get(&app, "/guardian/agreements/..%2F..%2Fetc")
        .await
        .expect(404);
}
