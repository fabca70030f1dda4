//! The Patients and Access history pages through the real console, API, policy and audit
//! trail: finding a patient by NHS number and by name with date of birth, the record view
//! for each role, the 404 page and break-glass, and "who looked at this record" from the
//! ledger.

mod common;

use caldicott_api::audit::{EventKind, Outcome};
use caldicott_core::NhsNumber;
use caldicott_policy::{Purpose, Role};
use common::{App, Browser, ORG, OTHER_ORG, Reply};
use serde_json::{Value, json};

/// A valid NHS number in the test range.
fn nhs() -> NhsNumber {
    (999_000_001..)
        .find_map(NhsNumber::from_nine_digits)
        .expect("a test NHS number")
}

struct Loaded {
    id: String,
    nhs: NhsNumber,
}

/// A patient registered at X26 (managing organisation by ODS code) with one of each kind of
/// record, loaded through the API by a GP of X26.
async fn load_patient(app: &App, family: &str) -> Loaded {
    app.add_user("loader", ORG, Role::Gp, None);
    let token = app.token("loader", "user/*.write user/*.read", Purpose::DirectCare);
    let nhs = nhs();
    let id = app
        .create(
            &token,
            &json!({
                "resourceType": "Patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs.as_str()}],
                "name": [{"use": "official", "family": family, "given": ["Ada"]}],
                "gender": "female",
                "birthDate": "1950-03-27",
                "managingOrganization": {"identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ORG}}
            }),
        )
        .await;
    let subject = json!({"reference": format!("Patient/{id}")});
    let records: Vec<Value> = vec![
        json!({"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"text": "Type 2 diabetes mellitus"}, "subject": subject, "onsetDateTime": "2019-04-01"}),
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"text": "Metformin 500mg tablets"}, "subject": subject,
            "authoredOn": "2024-01-10", "dosageInstruction": [{"text": "One tablet twice a day"}]}),
        json!({"resourceType": "AllergyIntolerance", "patient": subject, "code": {"text": "Penicillin"},
            "criticality": "high", "reaction": [{"manifestation": [{"text": "Itchy rash"}]}],
            "recordedDate": "2010-05-05"}),
        json!({"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "type": [{"text": "Annual diabetes review"}], "subject": subject,
            "period": {"start": "2024-06-01T09:00:00Z"}}),
        json!({"resourceType": "DocumentReference", "status": "current", "description": "Hospital discharge letter",
            "subject": subject, "date": "2024-06-02T10:00:00Z",
            "content": [{"attachment": {"contentType": "text/plain", "title": "Discharge letter"}}]}),
    ];
    for r in &records {
        app.create(&token, r).await;
    }
    for (date, kg) in [
        ("2024-03-01", 71.5),
        ("2024-04-01", 70.25),
        ("2024-05-01", 69.0),
    ] {
        app.create(
            &token,
            &json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
                "subject": subject, "effectiveDateTime": date,
                "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}),
        )
        .await;
    }
    Loaded { id, nhs }
}

/// The text of `<title>`.
fn title(r: &Reply) -> &str {
    let at = r.body.find("<title>").map_or(0, |a| a + "<title>".len());
    let end = r.body[at..].find("</title>").map_or(at, |e| at + e);
    &r.body[at..end]
}

/// Neither the NHS number (spaced or not), nor the name, nor the date of birth is in the
/// title or a redirect's `Location`.
fn assert_no_patient_data_in_url_or_title(r: &Reply, p: &Loaded, family: &str) {
    for place in [title(r), r.location()] {
        for secret in [
            p.nhs.as_str().to_owned(),
            p.nhs.to_string(),
            family.to_owned(),
            "1950".to_owned(),
        ] {
            assert!(
                !place.contains(&secret),
                "patient data in a title or URL: {place:?}"
            );
        }
    }
}

async fn search_nhs(b: &mut Browser, app: &App, nhs: &str) -> Reply {
    b.post(
        app,
        "/patients/search",
        &[("by", "nhs"), ("nhs_number", nhs)],
    )
    .await
}

async fn search_name(b: &mut Browser, app: &App, family: &str, d: &str, m: &str, y: &str) -> Reply {
    b.post(
        app,
        "/patients/search",
        &[
            ("by", "name"),
            ("family", family),
            ("birth_day", d),
            ("birth_month", m),
            ("birth_year", y),
        ],
    )
    .await
}

#[tokio::test]
async fn a_gp_finds_their_patient_and_sees_the_whole_record() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut gp = app.signed_in("dr.ash", ORG, Role::Gp).await;

    let page = gp.get(&app, "/patients").await.expect(200);
    assert!(page.body.contains("id=\"nhs_number\""));
    assert!(page.body.contains("action=\"/patients/search\""));
    assert_no_patient_data_in_url_or_title(&page, &p, "Ashworth");

    // By NHS number, written with spaces as people write it.
    let r = search_nhs(&mut gp, &app, &p.nhs.to_string())
        .await
        .expect(200);
    assert_no_patient_data_in_url_or_title(&r, &p, "Ashworth");
    assert!(r.body.contains("Ada Ashworth"), "{}", r.body);
    assert!(
        r.body.contains(&p.nhs.to_string()),
        "NHS number shown 3-3-4"
    );
    assert!(r.body.contains("27 March 1950"));
    assert!(r.body.contains(&format!("href=\"/patients/{}\"", p.id)));
    let searches: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.action == "search" && e.rtype.as_deref() == Some("Patient"))
        .collect();
    assert!(
        searches
            .iter()
            .any(|e| e.query == vec!["identifier".to_owned()]
                && e.outcome == Outcome::Permit
                && e.user == "dr.ash"),
        "the search is recorded by parameter name, never value: {searches:?}"
    );

    // By family name and date of birth (case-insensitive prefix, as FHIR's string search).
    let r = search_name(&mut gp, &app, "ashworth", "27", "3", "1950")
        .await
        .expect(200);
    assert!(
        r.body.contains(&format!("href=\"/patients/{}\"", p.id)),
        "{}",
        r.body
    );
    // The single YYYY-MM-DD field works too.
    let r = gp
        .post(
            &app,
            "/patients/search",
            &[
                ("by", "name"),
                ("family", "Ashworth"),
                ("birth_date", "1950-03-27"),
            ],
        )
        .await
        .expect(200);
    assert!(r.body.contains(&format!("href=\"/patients/{}\"", p.id)));
    // Another date of birth: nobody.
    let r = search_name(&mut gp, &app, "Ashworth", "28", "3", "1950")
        .await
        .expect(200);
    assert!(r.body.contains("No patients found"));

    // The record.
    let r = gp
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(200);
    assert_eq!(title(&r), "Patient record – Caldicott");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    for text in [
        "Ada Ashworth",
        "Type 2 diabetes mellitus",
        "Metformin 500mg tablets",
        "One tablet twice a day",
        "Penicillin",
        "Itchy rash",
        "Body weight",
        "69.0 kg",
        "71.5 kg",
        "Annual diabetes review",
        "Hospital discharge letter",
        "legitimate relationship",
        "Castle Care Home (X26)",
        "(71.5 kg) to 1 May 2024 (69 kg)",
    ] {
        assert!(r.body.contains(text), "{text} missing from the record");
    }
    assert!(!r.body.contains("Not available to your role"));
    assert!(!r.body.contains("break-glass-banner"));
    // The chart: an SVG image with a text alternative, no inline style or script.
    assert!(r.body.contains("src=\"data:image/svg+xml;base64,"));
    assert!(r.body.contains("alt=\"Chart of Body weight: 3 values"));
    assert!(!r.body.contains("style="));
    assert!(!r.body.contains("<script"));
    // A GP may not read the audit trail: no link to it.
    assert!(!r.body.contains("access-history-link"));
    // Every read went through the guard and was recorded.
    let reads: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.user == "dr.ash" && e.kind == EventKind::Access)
        .collect();
    assert!(reads.iter().any(|e| e.action == "read"
        && e.rtype.as_deref() == Some("Patient")
        && e.outcome == Outcome::Permit
        && !e.break_glass));
    for t in ["Condition", "Observation", "DocumentReference"] {
        assert!(
            reads
                .iter()
                .any(|e| e.action == "search" && e.rtype.as_deref() == Some(t)),
            "no audit event for the {t} section"
        );
    }
    assert_eq!(
        reads
            .iter()
            .filter(|e| e.action == "read" && e.rtype.as_deref() == Some("Patient"))
            .count(),
        1,
        "the record view's Patient read is recorded once"
    );
}

#[tokio::test]
async fn another_organisations_care_worker_breaks_the_glass() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut cw = app
        .signed_in("carer.bell", OTHER_ORG, Role::CareWorker)
        .await;

    // Not found by either search, and nothing says the patient exists elsewhere.
    let r = search_nhs(&mut cw, &app, p.nhs.as_str()).await.expect(200);
    assert!(r.body.contains("No patients found"));
    assert!(!r.body.contains("Ashworth"));
    let r = search_name(&mut cw, &app, "Ashworth", "27", "3", "1950")
        .await
        .expect(200);
    assert!(r.body.contains("No patients found"));

    // The record: the same 404 as a record that does not exist, with the break-glass form.
    let r = cw
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(404);
    assert!(r.body.contains("We cannot show this record"));
    assert!(!r.body.contains("Ashworth"));
    assert!(
        r.body
            .contains(&format!("action=\"/patients/{}/break-glass\"", p.id))
    );
    let missing = cw.get(&app, "/patients/no-such-patient").await.expect(404);
    assert!(missing.body.contains("We cannot show this record"));
    assert!(
        app.events()
            .iter()
            .any(|e| e.user == "carer.bell" && e.action == "read" && e.outcome == Outcome::Deny)
    );

    // A reason too short is refused inline.
    let r = cw
        .post(
            &app,
            &format!("/patients/{}/break-glass", p.id),
            &[("reason", "urgent")],
        )
        .await
        .expect(422);
    assert!(r.body.contains("id=\"reason-error\""));
    assert!(r.body.contains("10 characters or more"));
    // Without the CSRF token: refused.
    let r = cw
        .post(
            &app,
            &format!("/patients/{}/break-glass", p.id),
            &[
                ("reason", "Collapsed at the day centre"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);

    let r = cw
        .post(
            &app,
            &format!("/patients/{}/break-glass", p.id),
            &[("reason", "Collapsed at the day centre, needs allergy list")],
        )
        .await
        .expect(303);
    assert_eq!(r.location(), format!("/patients/{}", p.id));
    assert_no_patient_data_in_url_or_title(&r, &p, "Ashworth");
    let declared: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::BreakGlass && e.user == "carer.bell")
        .collect();
    assert_eq!(declared.len(), 1);
    assert_eq!(declared[0].action, "declare");
    assert_eq!(declared[0].outcome, Outcome::Permit);
    assert!(
        !declared[0].reason.contains("Collapsed"),
        "the clinician's words stay out of the ledger"
    );
    assert_eq!(
        app.directory.break_glass_queue(true).unwrap().len(),
        1,
        "queued for the guardian's review"
    );

    // The next page sees the declaration at once.
    let r = cw
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(200);
    assert!(r.body.contains(
        "Break-glass access: every view is recorded and will be reviewed by the Caldicott guardian"
    ));
    assert!(r.body.contains("Ada Ashworth"));
    assert!(
        r.body.contains("Penicillin"),
        "a care worker reads allergies"
    );
    // A care worker's row of the table has no clinical documents.
    assert!(r.body.contains("id=\"documents-not-available\""));
    assert!(!r.body.contains("Hospital discharge letter"));
    assert!(app.events().iter().any(|e| e.user == "carer.bell"
        && e.action == "read"
        && e.rtype.as_deref() == Some("Patient")
        && e.outcome == Outcome::Permit
        && e.break_glass));
}

#[tokio::test]
async fn non_clinicians_cannot_break_the_glass() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut rec = app
        .signed_in("desk.cole", OTHER_ORG, Role::Receptionist)
        .await;
    let r = rec
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(404);
    assert!(
        !r.body.contains("break-glass-submit"),
        "no form for a receptionist"
    );
    rec.post(
        &app,
        &format!("/patients/{}/break-glass", p.id),
        &[("reason", "I would like to see this record please")],
    )
    .await
    .expect(403);
    assert!(app.events().iter().any(|e| e.kind == EventKind::BreakGlass
        && e.user == "desk.cole"
        && e.outcome == Outcome::Deny));
    assert!(app.directory.break_glass_queue(false).unwrap().is_empty());
}

#[tokio::test]
async fn a_receptionist_sees_demographics_but_not_problems() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut rec = app.signed_in("desk.ames", ORG, Role::Receptionist).await;
    let r = search_nhs(&mut rec, &app, p.nhs.as_str()).await.expect(200);
    assert!(r.body.contains(&format!("href=\"/patients/{}\"", p.id)));
    let r = rec
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(200);
    assert!(r.body.contains("Ada Ashworth"));
    assert!(r.body.contains("27 March 1950"));
    assert!(
        r.body.contains("Annual diabetes review"),
        "encounters are administrative"
    );
    for section in [
        "problems",
        "medications",
        "allergies",
        "observations",
        "documents",
    ] {
        assert!(
            r.body.contains(&format!("id=\"{section}-not-available\"")),
            "{section} should say it is not available"
        );
    }
    for hidden in [
        "Type 2 diabetes",
        "Metformin",
        "Penicillin",
        "Body weight",
        "discharge",
    ] {
        assert!(!r.body.contains(hidden), "a receptionist saw {hidden}");
    }
    // The sections the role may not see were not even searched.
    assert!(
        !app.events()
            .iter()
            .any(|e| e.user == "desk.ames" && e.rtype.as_deref() == Some("Condition"))
    );
}

#[tokio::test]
async fn bad_search_input_is_refused_inline_and_escaped() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut gp = app.signed_in("dr.ash", ORG, Role::Gp).await;

    // A wrong check digit.
    let digits = p.nhs.as_str();
    let last = digits.as_bytes()[9] - b'0';
    let wrong = format!("{}{}", &digits[..9], (last + 1) % 10);
    let r = search_nhs(&mut gp, &app, &wrong).await.expect(422);
    assert!(r.body.contains("Enter a valid 10-digit NHS number"));
    assert!(r.body.contains("id=\"nhs_number-error\""));
    assert!(
        r.body.contains("href=\"#nhs_number\""),
        "the summary links to the field"
    );
    assert!(!title(&r).contains(&wrong));
    for bad in ["12345", "abcdefghij", "9434765919 9434765919"] {
        search_nhs(&mut gp, &app, bad).await.expect(422);
    }

    // Script in the family name: searched for literally, shown escaped.
    let script = "<script>alert(1)</script>";
    let r = search_name(&mut gp, &app, script, "27", "3", "1950")
        .await
        .expect(200);
    assert!(r.body.contains("No patients found"));
    assert!(!r.body.contains(script));
    assert!(
        r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || r.body.contains("&#60;script")
    );
    // And in a form that fails validation.
    let r = search_name(&mut gp, &app, script, "31", "2", "1950")
        .await
        .expect(422);
    assert!(!r.body.contains(script));
    assert!(r.body.contains("Date of birth must be a real date"));
    // Missing fields, an overlong name, a date in the future, an unknown form.
    let r = search_name(&mut gp, &app, "", "", "", "").await.expect(422);
    assert!(r.body.contains("Enter family name"));
    assert!(r.body.contains("Enter a date of birth"));
    search_name(&mut gp, &app, &"a".repeat(101), "1", "1", "1950")
        .await
        .expect(422);
    search_name(&mut gp, &app, "Ashworth", "1", "1", "2999")
        .await
        .expect(422);
    gp.post(&app, "/patients/search", &[("by", "other")])
        .await
        .expect(422);
    // A comma is part of the name, not FHIR's "or".
    let r = search_name(&mut gp, &app, "Nobody,Ashworth", "27", "3", "1950")
        .await
        .expect(200);
    assert!(r.body.contains("No patients found"));
    // FHIR search syntax in a name is searched for literally: never a 500.
    for odd in [
        "\\",
        "$",
        "|",
        "a\\,b",
        "%00",
        "O'Brien",
        "Zoë",
        "a:missing",
        "_id",
        "*",
    ] {
        let r = search_name(&mut gp, &app, odd, "27", "3", "1950").await;
        assert!(r.status == 200 || r.status == 422, "{odd}: {}", r.status);
        if r.status == 200 {
            assert!(r.body.contains("No patients found"), "{odd}");
        }
    }
    // Searches are POSTs: a GET of the search address goes back to the form.
    let r = gp.get(&app, "/patients/search").await.expect(303);
    assert_eq!(r.location(), "/patients");
}

#[tokio::test]
async fn roles_without_patient_access_cannot_use_the_pages() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut admin = app
        .signed_in_as("root.ann", ORG, Role::Sysadmin, None, "direct-care")
        .await;
    admin.get(&app, "/patients").await.expect(403);
    admin
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(403);
    let r = Browser::new().get(&app, "/patients").await.expect(303);
    assert!(r.location().starts_with("/signin"));
}

#[tokio::test]
async fn access_history_lists_who_looked() {
    let app = App::with_ledger();
    let p = load_patient(&app, "Ashworth").await;
    let mut gp = app.signed_in("dr.ash", ORG, Role::Gp).await;
    gp.get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(200);

    // A GP may not read the audit trail (as the API's $access-report): refused and recorded.
    gp.get(&app, &format!("/patients/{}/access", p.id))
        .await
        .expect(403);
    assert!(app.events().iter().any(|e| e.kind == EventKind::AuditRead
        && e.user == "dr.ash"
        && e.outcome == Outcome::Deny));

    let mut guardian = app
        .signed_in_as("cg.dunn", ORG, Role::CaldicottGuardian, None, "audit")
        .await;
    let rec = guardian
        .get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(200);
    assert!(rec.body.contains("id=\"access-history-link\""));
    let r = guardian
        .get(&app, &format!("/patients/{}/access", p.id))
        .await
        .expect(200);
    assert_eq!(title(&r), "Access history – Caldicott");
    assert!(r.body.contains("dr.ash"), "{}", r.body);
    assert!(r.body.contains("Read a record"));
    assert!(r.body.contains("Castle Care Home (X26)"));
    assert!(r.body.contains("Your care"));
    assert!(
        r.body
            .contains(&format!("href=\"/patients/{}/access/print\"", p.id))
    );
    assert!(
        r.body.contains("Ada Ashworth"),
        "the guardian sees whose record it is"
    );
    assert!(!title(&r).contains("Ashworth"));
    // The look itself is recorded, under the patient's pseudonym.
    assert!(app.events().iter().any(|e| e.kind == EventKind::AuditRead
        && e.user == "cg.dunn"
        && e.action == "access-report"
        && e.outcome == Outcome::Permit
        && !e.patients.is_empty()));

    let print = guardian
        .get(&app, &format!("/patients/{}/access/print", p.id))
        .await
        .expect(200);
    assert!(print.body.contains("Who has looked at your record"));
    assert!(print.body.contains("dr.ash"));
    assert!(!print.body.contains("style="));
    assert!(!print.body.contains("<style"));
    // The guardian's earlier look at the history is now in it too.
    assert!(print.body.contains("Looked at the audit trail"));

    // The same report as a PDF download: a fixed file name, no-store, and a real PDF.
    assert!(
        r.body
            .contains(&format!("href=\"/patients/{}/access/report.pdf\"", p.id))
    );
    let pdf = guardian
        .get(&app, &format!("/patients/{}/access/report.pdf", p.id))
        .await
        .expect(200);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert_eq!(
        pdf.header("content-disposition"),
        Some("attachment; filename=\"access-report.pdf\"")
    );
    assert_eq!(pdf.header("cache-control"), Some("no-store"));
    assert!(pdf.body.starts_with("%PDF-1.4"));
    assert!(
        pdf.body.contains("Person: dr.ash"),
        "the reader is in the PDF"
    );
    assert!(pdf.body.trim_end().ends_with("%%EOF"));
    // A GP may not have it either.
    gp.get(&app, &format!("/patients/{}/access/report.pdf", p.id))
        .await
        .expect(403);
}

#[tokio::test]
async fn break_glass_views_are_flagged_in_the_history() {
    let app = App::with_ledger();
    let p = load_patient(&app, "Ashworth").await;
    let mut cw = app
        .signed_in("carer.bell", OTHER_ORG, Role::CareWorker)
        .await;
    cw.post(
        &app,
        &format!("/patients/{}/break-glass", p.id),
        &[("reason", "Collapsed at the day centre, needs allergy list")],
    )
    .await
    .expect(303);
    cw.get(&app, &format!("/patients/{}", p.id))
        .await
        .expect(200);
    let mut guardian = app
        .signed_in_as("cg.dunn", ORG, Role::CaldicottGuardian, None, "audit")
        .await;
    let r = guardian
        .get(&app, &format!("/patients/{}/access", p.id))
        .await
        .expect(200);
    assert!(r.body.contains("carer.bell"));
    assert!(r.body.contains("River Surgery (Y99)"));
    assert!(r.body.contains("nhsuk-tag--yellow\">Yes"), "{}", r.body);
    let print = guardian
        .get(&app, &format!("/patients/{}/access/print", p.id))
        .await
        .expect(200);
    assert!(print.body.contains("About emergency access (break-glass)"));
}

#[tokio::test]
async fn without_a_ledger_the_history_says_so() {
    let app = App::new();
    let p = load_patient(&app, "Ashworth").await;
    let mut guardian = app
        .signed_in_as("cg.dunn", ORG, Role::CaldicottGuardian, None, "audit")
        .await;
    let r = guardian
        .get(&app, &format!("/patients/{}/access", p.id))
        .await
        .expect(503);
    assert!(r.body.contains("The audit ledger is not available"));
}
