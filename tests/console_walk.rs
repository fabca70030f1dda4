//! A walk through the whole web console in a real headless Chromium (issue 8), one server
//! for four roles of one practice: each person signs in for the first time with the
//! one-time password `caldicott user add` printed, chooses a password, enrols a TOTP
//! authenticator, and walks the pages of their role, with what the role can and cannot see
//! asserted on each page and axe-core run on every page (no serious or critical violation
//! allowed).
//!
//! - GP: home (patients in the navigation; guardian, mail and administration not), find a
//!   patient by NHS number and by name and date of birth, the record with its clinical
//!   sections, bad input (an invalid NHS number, markup in a field, shown as text), another
//!   practice's patient ("We cannot show this record") and a break-glass declaration on it,
//!   the guardian's and administrator's pages refused, and the change-password page with
//!   mismatched new passwords refused inline (the password is not changed: still signed in).
//! - Receptionist: the record's personal details, but not its clinical sections.
//! - Caldicott guardian: the posture cards, the break-glass queue (the GP's declaration,
//!   accepted with a note, then listed as reviewed), unusual access, the data-sharing
//!   agreement a researcher proposed with `caldicott share agreement propose` (listed, its
//!   page, approved with the page's form), the record's access history (listing the GP's
//!   view) and its printable page, the mail quarantine (first not set up; then a phishing
//!   message held the way `caldicott mail serve` holds it, listed with its reasons and
//!   deleted), and administration refused.
//! - System administrator: users, adding a user (one-time password shown once), tokens (a
//!   token issued to the `system` client made with `caldicott user add`, shown once and
//!   never in the URL, accepted by the FHIR API, then revoked by pasting it and refused by
//!   the API), opt-out lists; patients and the guardian's pages refused.
//!
//! Without `CALDICOTT_TEST_CHROMEDRIVER` the test prints "skipping: no browser" and passes
//! (see `tests/common/browser.rs`). With `CALDICOTT_SCREENSHOTS=1` it rewrites the main
//! pages' screenshots in `docs/screenshots/`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use caldicott_identity::{Totp, TotpSecret};
use caldicott_mail::quarantine::{QuarantineError, VaultQuarantine};
use caldicott_mail::smtp::Quarantine as _;
use caldicott_mail::{Envelope, MailConfig, Scanner};
use common::browser::Browser;
use common::*;
use serde_json::Value;

/// The password every walker chooses at first sign-in: long, not common, free of the names.
const NEW_PASSWORD: &str = "copper meadow slowly 83 herons";

const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// Text typed into fields to check that the console shows markup as text.
const MARKUP: &str = "<script>alert('walk')</script>";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `docs/screenshots/<name>.png` when `CALDICOTT_SCREENSHOTS=1` (the browser's window is
/// 1280×900), so that an ordinary run does not rewrite committed files.
fn screenshot(browser: &Browser, name: &str) {
    if std::env::var("CALDICOTT_SCREENSHOTS").as_deref() == Ok("1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/screenshots")
            .join(format!("{name}.png"));
        browser.screenshot_png(&path);
    }
}

/// A synthetic patient as the walk needs it.
#[derive(Debug, Clone)]
struct Patient {
    id: String,
    nhs: String,
    family: String,
    /// `YYYY-MM-DD`.
    birth_date: String,
}

/// The synthetic data: the practice with most patients, another practice with patients,
/// a patient of the first (one with problems recorded, when there is one) and one of the
/// second.
struct Cohort {
    ods: String,
    other_ods: String,
    patient: Patient,
    other_patient: Patient,
}

fn cohort(file: &Path) -> Cohort {
    let text = std::fs::read_to_string(file).unwrap();
    let mut by_org: BTreeMap<String, Vec<Patient>> = BTreeMap::new();
    let mut problems: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["resourceType"].as_str() {
            Some("Patient") => {
                let Some(ods) = v["managingOrganization"]["identifier"]["value"].as_str() else {
                    continue;
                };
                let nhs = v["identifier"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|i| i["system"] == NHS_SYSTEM)
                    .and_then(|i| i["value"].as_str());
                let (Some(nhs), Some(family), Some(birth_date), Some(id)) = (
                    nhs,
                    v["name"][0]["family"].as_str(),
                    v["birthDate"].as_str(),
                    v["id"].as_str(),
                ) else {
                    continue;
                };
                by_org.entry(ods.to_owned()).or_default().push(Patient {
                    id: id.to_owned(),
                    nhs: nhs.to_owned(),
                    family: family.to_owned(),
                    birth_date: birth_date.to_owned(),
                });
            }
            Some("Condition") => {
                if let Some(r) = v["subject"]["reference"].as_str() {
                    let id = r.rsplit('/').next().unwrap_or(r);
                    *problems.entry(id.to_owned()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    let mut orgs: Vec<(String, Vec<Patient>)> = by_org.into_iter().collect();
    orgs.sort_by_key(|(ods, ps)| (std::cmp::Reverse(ps.len()), ods.clone()));
    assert!(
        orgs.len() >= 2,
        "the synthetic data has fewer than two practices"
    );
    let (ods, mine) = orgs[0].clone();
    let (other_ods, theirs) = orgs[1].clone();
    let patient = mine
        .iter()
        .max_by_key(|p| problems.get(&p.id).copied().unwrap_or(0))
        .cloned()
        .unwrap();
    Cohort {
        ods,
        other_ods,
        patient,
        other_patient: theirs[0].clone(),
    }
}

/// Adds `name` with `role` at `org`; returns the one-time password.
fn add_user(data: &Path, org: &str, role: &str, name: &str) -> String {
    let added = ok(caldicott()
        .args(["user", "add", "--org", org, "--role", role, name, "--data"])
        .arg(data));
    added
        .lines()
        .find_map(|l| l.strip_prefix("one-time password"))
        .and_then(|rest| rest.rsplit(": ").next())
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no one-time password in:\n{added}"))
}

/// What every console page has: one `<main id="main-content">`, exactly one `h1`, a title,
/// and never a server error. Then axe-core, with no serious or critical violation.
fn check_page(browser: &Browser, page: &str) {
    assert!(
        browser.try_find("main#main-content").is_some(),
        "the {page} page has no <main id=\"main-content\">:\n{}",
        browser.source()
    );
    assert_eq!(
        browser.find_all("h1").len(),
        1,
        "the {page} page must have exactly one h1:\n{}",
        browser.source()
    );
    let title = browser.title();
    assert!(
        !title.is_empty() && !title.contains("500") && !title.to_lowercase().contains("error 5"),
        "the {page} page's title is {title:?}"
    );
    browser.assert_accessible(page);
}

/// Opens `path` and checks it is at that path, with the page shape and axe clean.
fn visit(browser: &Browser, base: &str, path: &str, page: &str) {
    browser.goto(&format!("{base}{path}"));
    assert_eq!(
        browser.current_path(),
        path,
        "opening the {page} page ({path}) led elsewhere"
    );
    check_page(browser, page);
}

/// Opens `path` and checks the role is refused: the console's 403 page, no content.
fn refused(browser: &Browser, base: &str, path: &str, who: &str) {
    let page = format!("{path} as {who} (refused)");
    visit(browser, base, path, &page);
    let h1 = browser.text_of("h1");
    assert!(
        h1 == "You cannot use this page" || h1 == "You cannot see who has looked at this record",
        "{who} should be refused {path}, not shown {h1:?}:\n{}",
        browser.source()
    );
}

/// Which of the navigation links are shown, checked against what the role must see.
fn assert_nav(browser: &Browser, who: &str, shown: &[&str]) {
    for link in [
        "nav-home",
        "nav-patients",
        "nav-guardian",
        "nav-mail",
        "nav-admin",
    ] {
        let present = browser.try_find(&format!("#{link}")).is_some();
        assert_eq!(
            present,
            shown.contains(&link),
            "{who}: #{link} should be {}",
            if shown.contains(&link) {
                "shown"
            } else {
                "hidden"
            }
        );
    }
}

/// First sign-in of `user`: the one-time password, a new password, the authenticator's
/// enrolment (the code computed from the secret the page shows), then home. Screenshots of
/// the sign-in and enrolment pages when `shots`. `purpose` is the purpose of use chosen at
/// enrolment (the guardian's role allows only `audit`).
fn first_sign_in(
    browser: &Browser,
    base: &str,
    (user, otp): (&str, &str),
    purpose: &str,
    shots: bool,
) {
    visit(browser, base, "/signin", "sign-in");
    if shots {
        screenshot(browser, "signin");
    }
    browser.fill("input[name=user]", user);
    browser.fill("input[name=password]", otp);
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/signin/new-password", "{user}");
    check_page(browser, "new password");
    browser.fill("input[name=new_password]", NEW_PASSWORD);
    browser.fill("input[name=confirm_password]", NEW_PASSWORD);
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/signin/enrol", "{user}");
    check_page(browser, "MFA enrolment");
    if shots {
        screenshot(browser, "enrol");
    }
    let secret_text = browser.text_of("#totp-secret");
    let secret = TotpSecret::from_base32(&secret_text)
        .unwrap_or_else(|e| panic!("#totp-secret is not a base32 secret ({e:?}): {secret_text:?}"));
    let totp = Totp::new(secret);
    browser.select("select[name=purpose]", purpose);
    browser.fill("input[name=code]", &totp.code_for_step(totp.step_at(now())));
    browser.click("#continue");
    assert_eq!(
        browser.current_path(),
        "/",
        "{user}: a correct code at enrolment should lead home:\n{}",
        browser.source()
    );
    check_page(browser, &format!("home ({user})"));
    assert!(
        browser.text_of("header").contains(user),
        "the header does not name {user}"
    );
}

fn sign_out(browser: &Browser, who: &str) {
    browser.click("#sign-out");
    assert!(
        browser.current_path().starts_with("/signin"),
        "{who}: sign-out led to {}",
        browser.current_url()
    );
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The title of the agreement the walk's researcher proposes.
const AGREEMENT_TITLE: &str = "Long-term conditions study";

/// A de-identification profile for [`agreement_terms`]'s columns.
const PROFILE: &str = r#"
metric = "loss"
suppression_limit = 0.1

[privacy]
model = "k-anonymity"
k = 3

[[attribute]]
name = "pid"
kind = "pseudonym"

[[attribute]]
name = "birth_date"
kind = "quasi-identifier"
hierarchy = { date = "yyyy-mm-dd" }

[[attribute]]
name = "conditions"
kind = "sensitive"
"#;

/// Terms as `caldicott share agreement propose --file` reads them (see tests/share.rs),
/// to an age recipient key (the age specification's example key: nothing is released,
/// so no one needs its identity).
fn agreement_terms() -> String {
    format!(
        r#"
title = "{AGREEMENT_TITLE}"
purpose = "research"
frequency = "once"
expires = 2099-12-31
deid_profile_file = "profile.toml"

[recipient]
name = "University of Leeds"
age_key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

[legal_basis]
kind = "section251"
reference = "CAG 21/CAG/0001"

[dataset]

[[dataset.column]]
name = "pid"
path = "Patient.identifier.where(system = '{NHS_SYSTEM}').value"

[[dataset.column]]
name = "birth_date"
path = "Patient.birthDate"

[[dataset.column]]
name = "conditions"
from = "Condition"
path = "Condition.code.coding.code"
take = "all"
"#
    )
}

/// Proposes the walk's agreement as `by` with the command line; returns its id.
fn propose_agreement(data: &Path, dir: &Path, by: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("profile.toml"), PROFILE).unwrap();
    std::fs::write(dir.join("terms.toml"), agreement_terms()).unwrap();
    let id = ok(caldicott()
        .args(["share", "agreement", "propose", "--by", by, "--file"])
        .arg(dir.join("terms.toml"))
        .arg("--data")
        .arg(data))
    .trim()
    .to_owned();
    assert!(id.starts_with("DSA-"), "{id}");
    id
}

/// The deployment's vault, opened as `caldicott` opens it (the master key file and the
/// SQLite database of the data directory; WAL lets it be used while `serve` runs).
fn open_vault(data: &Path) -> Arc<caldicott_vault::Vault> {
    let kek = Arc::new(caldicott_vault::LocalKek::from_file(&data.join("master.key")).unwrap());
    let backend =
        caldicott_vault::open_backend(&data.join("vault.db").display().to_string(), false).unwrap();
    Arc::new(caldicott_vault::Vault::open(backend, kek).unwrap())
}

/// A marker in the held message's body: the console must never show it.
const MAIL_BODY_MARKER: &str = "M-walk-7f3a";

/// Does what `caldicott mail serve` does with `[gateway] data` set to this data directory
/// when a phishing message arrives: registers its queue directory with the console, screens
/// the message with the real scanner and holds it in the vault's quarantine under a new
/// queue id. Returns the id and the name of the reason that scored most.
fn hold_phishing(vault: &Arc<caldicott_vault::Vault>, queue_dir: &Path) -> (String, String) {
    caldicott_console::mail::register_gateway(vault, queue_dir).unwrap();
    let message = format!(
        "From: \"NHS Payroll\" <payroll@nhs-net.co>\r\nTo: walk-guardian@care.example\r\n\
         Subject: Urgent: verify your payroll account\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <walk@nhs-net.co>\r\n\r\n\
         Click here to verify within 24 hours or your salary is suspended. {MAIL_BODY_MARKER}\r\n"
    );
    let envelope = Envelope {
        client_ip: Some("198.51.100.9".parse().unwrap()),
        helo: Some("mx.nhs-net.co".into()),
        mail_from: Some("payroll@nhs-net.co".into()),
        rcpt_to: vec!["walk-guardian@care.example".into()],
        authenticated: false,
    };
    let report = Scanner::new(MailConfig::default(), None)
        .unwrap()
        .scan_with(message.as_bytes(), Some(&envelope));
    let id = caldicott_mail::queue::new_id();
    let q = VaultQuarantine::new(Arc::clone(vault));
    q.store(&id, &envelope, message.as_bytes(), &report)
        .unwrap();
    let strongest = q
        .entry(&id)
        .unwrap()
        .symbols
        .iter()
        .filter(|s| s.score > 0.0)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .expect("the scanner gave a reason to hold the message")
        .name
        .clone();
    (id, strongest)
}

/// The status of a FHIR read with `token` as bearer, over the server's TLS.
fn api_status(base: &str, data: &Path, path: &str, token: &str) -> u16 {
    https_get_as(base, &data.join("tls/cert.pem"), path, Some(token)).0
}

#[test]
fn four_roles_walk_the_console_and_see_only_what_their_role_allows() {
    let Some(browser) = Browser::start_or_skip() else {
        return;
    };
    let started = Instant::now();
    if std::env::var("CALDICOTT_SCREENSHOTS").as_deref() == Ok("1") {
        browser.goto("about:blank");
        browser.set_viewport(1280, 900);
    }
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let file = t.path().join("synth.ndjson");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args(["synth", "--patients", "30", "--seed", "1", "--out"])
        .arg(&file));
    let c = cohort(&file);
    ok(caldicott()
        .args([
            "org",
            "add",
            "--ods",
            &c.ods,
            "--name",
            "Walk Practice",
            "--data",
        ])
        .arg(&data));
    ok(caldicott()
        .args([
            "org",
            "add",
            "--ods",
            &c.other_ods,
            "--name",
            "Other Practice",
            "--data",
        ])
        .arg(&data));
    ok(caldicott().args(["import", "--data"]).arg(&data).arg(&file));
    let gp = ("walk-gp", add_user(&data, &c.ods, "gp", "walk-gp"));
    let rec = (
        "walk-reception",
        add_user(&data, &c.ods, "receptionist", "walk-reception"),
    );
    let cg = (
        "walk-guardian",
        add_user(&data, &c.ods, "caldicott-guardian", "walk-guardian"),
    );
    let admin = (
        "walk-admin",
        add_user(&data, &c.ods, "sysadmin", "walk-admin"),
    );
    // A researcher proposes a data-sharing agreement for the guardian to approve; a system
    // user is the API client the administrator issues a token to. Neither signs in here.
    add_user(&data, &c.ods, "researcher", "walk-researcher");
    add_user(&data, &c.ods, "system", "walk-client");
    let agreement = propose_agreement(&data, &t.path().join("share"), "walk-researcher");
    let server = Server::start_logged(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
        &t.path().join("server.log"),
    );
    let base = server.url.as_str();
    let p = &c.patient;
    let record_path = format!("/patients/{}", p.id);

    // ---------------------------------------------------------------- GP
    first_sign_in(&browser, base, (gp.0, &gp.1), "direct-care", true);
    assert_nav(&browser, "GP", &["nav-home", "nav-patients"]);
    browser.find("#link-patients");
    assert!(
        browser.try_find("#card-mfa").is_none(),
        "a GP must not see the organisation's posture"
    );

    // Find by NHS number: the answer to a POST, the number never in the URL.
    browser.click("#nav-patients");
    assert_eq!(browser.current_path(), "/patients");
    check_page(&browser, "patient search");
    browser.fill("#nhs_number", &p.nhs);
    browser.click("#search-nhs");
    assert_eq!(browser.current_path(), "/patients/search");
    assert!(!browser.current_url().contains(&p.nhs));
    check_page(&browser, "patient search results (NHS number)");
    let rows = browser.find_all("#results-table tbody tr");
    assert_eq!(rows.len(), 1, "{}", browser.source());
    assert!(digits(&browser.text(&rows[0])).contains(&p.nhs));
    // The answer's table, below the search forms, in the picture.
    browser.execute(
        "document.getElementById('results').scrollIntoView({block: 'end'});",
        vec![],
    );
    screenshot(&browser, "patient-search");
    browser.click(&format!("#results-table a[href='{record_path}']"));
    assert_eq!(browser.current_path(), record_path);
    check_page(&browser, "patient record (GP)");
    for s in [
        "demographics",
        "problems",
        "medications",
        "allergies",
        "observations",
        "encounters",
        "documents",
    ] {
        browser.find(&format!("h2#{s}"));
        assert!(
            browser.try_find(&format!("#{s}-not-available")).is_none(),
            "a GP of the practice should see {s}"
        );
    }
    assert!(
        browser.try_find("#problems-table").is_some(),
        "the patient chosen has problems recorded:\n{}",
        browser.source()
    );
    browser.find("#access-basis");
    assert!(browser.try_find("#break-glass-banner").is_none());
    assert!(
        browser.try_find("#access-history-link").is_none(),
        "a GP is not offered the access history"
    );
    screenshot(&browser, "patient-record");

    // Find by family name and date of birth.
    browser.goto(&format!("{base}/patients"));
    let (year, rest) = p.birth_date.split_once('-').unwrap();
    let (month, day) = rest.split_once('-').unwrap();
    browser.fill("#family", &p.family);
    browser.fill("#birth_date", day);
    browser.fill("#birth_month", month);
    browser.fill("#birth_year", year);
    browser.click("#search-name");
    check_page(&browser, "patient search results (name and date of birth)");
    assert!(
        browser
            .try_find(&format!("#results-table a[href='{record_path}']"))
            .is_some(),
        "searching by name and date of birth did not find the patient:\n{}",
        browser.source()
    );

    // Bad input: an invalid NHS number is refused next to the field.
    browser.goto(&format!("{base}/patients"));
    browser.fill("#nhs_number", "1234567890");
    browser.click("#search-nhs");
    check_page(&browser, "patient search (invalid NHS number)");
    browser.find(".nhsuk-error-summary");
    assert!(
        !browser.text_of("#nhs_number-error").trim().is_empty(),
        "the inline error is empty"
    );
    assert!(browser.try_find("#results-table").is_none());

    // Markup in a field comes back as text: no element made of it, the value intact.
    browser.goto(&format!("{base}/patients"));
    browser.fill("#family", MARKUP);
    browser.fill("#birth_date", "1");
    browser.fill("#birth_month", "2");
    browser.fill("#birth_year", "1950");
    browser.click("#search-name");
    check_page(&browser, "patient search (markup in the family name)");
    assert_eq!(
        browser.execute("return document.querySelectorAll('script').length;", vec![]),
        0,
        "a <script> element was made from the field"
    );
    let family = browser.execute("return document.getElementById('family').value;", vec![]);
    assert!(
        family.as_str() == Some(MARKUP),
        "the family name came back altered: {family}"
    );

    // Another practice's patient: looks like a missing record, with break-glass offered.
    let other_path = format!("/patients/{}", c.other_patient.id);
    visit(
        &browser,
        base,
        &other_path,
        "another practice's record (GP)",
    );
    assert_eq!(browser.text_of("h1"), "We cannot show this record");
    assert!(!browser.source().contains(&c.other_patient.family));
    // Too short a reason is refused inline.
    browser.fill("#reason", "short");
    browser.click("#break-glass-submit");
    check_page(&browser, "break-glass (reason too short)");
    browser.find("#reason-error");
    let reason = format!("Patient collapsed in reception, allergies unknown {MARKUP}");
    browser.fill("#reason", &reason);
    browser.click("#break-glass-submit");
    assert_eq!(browser.current_path(), other_path);
    check_page(&browser, "record under break-glass (GP)");
    browser.find("#break-glass-banner");
    browser.find("#patient-name");

    // The guardian's and administrator's pages are refused, whatever the link.
    refused(&browser, base, "/guardian", "GP");
    refused(&browser, base, "/guardian/break-glass", "GP");
    refused(&browser, base, "/mail", "GP");
    refused(&browser, base, "/administration", "GP");
    refused(&browser, base, &format!("{record_path}/access"), "GP");

    // Change password, from the header's link: mismatched new passwords are refused next
    // to the second field, and nothing changes (a change would end this session).
    browser.click("#change-password");
    assert_eq!(browser.current_path(), "/account/password");
    check_page(&browser, "change password");
    assert_eq!(browser.text_of("h1"), "Change your password");
    browser.fill("#current_password", NEW_PASSWORD);
    browser.fill("#new_password", "granite orchard quietly 51 plovers");
    browser.fill("#confirm_password", "granite orchard quietly 51 plover");
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/account/password");
    check_page(&browser, "change password (passwords do not match)");
    browser.find(".nhsuk-error-summary");
    assert!(
        browser
            .text_of("#confirm_password-error")
            .contains("The passwords do not match"),
        "{}",
        browser.source()
    );
    assert_eq!(
        browser
            .attr(&browser.find("#confirm_password"), "aria-describedby")
            .as_deref(),
        Some("confirm_password-error")
    );
    assert!(browser.try_find("#new_password-error").is_none());
    visit(&browser, base, "/", "home (GP, password unchanged)");
    sign_out(&browser, "GP");

    // ---------------------------------------------------------------- receptionist
    first_sign_in(&browser, base, (rec.0, &rec.1), "direct-care", false);
    assert_nav(&browser, "receptionist", &["nav-home", "nav-patients"]);
    visit(
        &browser,
        base,
        &record_path,
        "patient record (receptionist)",
    );
    browser.find("#patient-name");
    assert!(
        !browser
            .find_all("main dl.nhsuk-summary-list .nhsuk-summary-list__row")
            .is_empty(),
        "the receptionist sees no personal details"
    );
    assert!(
        digits(&browser.text_of("main")).contains(&p.nhs),
        "the receptionist should see the NHS number"
    );
    for s in ["problems", "medications", "observations"] {
        let tag = browser.text_of(&format!("#{s}-not-available"));
        assert_eq!(tag, "Not available to your role", "{s}");
        assert!(browser.try_find(&format!("#{s}-table")).is_none());
    }
    refused(&browser, base, "/guardian", "receptionist");
    refused(&browser, base, "/administration", "receptionist");
    sign_out(&browser, "receptionist");

    // ---------------------------------------------------------------- Caldicott guardian
    first_sign_in(&browser, base, (cg.0, &cg.1), "audit", false);
    assert_nav(
        &browser,
        "Caldicott guardian",
        &["nav-home", "nav-patients", "nav-guardian", "nav-mail"],
    );
    for card in [
        "#card-mfa",
        "#card-dormant",
        "#card-break-glass",
        "#card-alerts",
        "#card-ledger",
        "#card-releases",
        "#card-quarantine",
    ] {
        browser.find(card);
    }
    assert_eq!(browser.text_of("#break-glass-count"), "1");
    browser.find("#link-break-glass");
    assert!(
        browser.try_find("#link-mfa").is_none(),
        "manage users is for admins"
    );
    screenshot(&browser, "home-guardian");

    visit(&browser, base, "/guardian", "guardian overview");
    assert_eq!(browser.text_of("#count-awaiting-review"), "1");
    browser.click("#link-break-glass");
    assert_eq!(browser.current_path(), "/guardian/break-glass");
    check_page(&browser, "break-glass review queue");
    let pending = browser.text_of("#pending");
    assert!(pending.contains(gp.0), "{pending}");
    let shown_reason = browser.text_of("#pending .caldicott-reason");
    assert_eq!(shown_reason, reason, "the reason must be shown as text");
    assert_eq!(
        browser.execute("return document.querySelectorAll('script').length;", vec![]),
        0
    );
    assert!(browser.try_find("#reviewed").is_none());
    screenshot(&browser, "guardian-break-glass");
    browser.click_in_page("#pending input[type=radio][value=accept]");
    browser.fill(
        "#pending textarea[name=note]",
        "Discussed with the GP: justified.",
    );
    browser.click("#pending button[type=submit]");
    assert_eq!(
        browser.current_path(),
        "/guardian/break-glass?reviewed=accept"
    );
    check_page(&browser, "break-glass review queue (after review)");
    browser.find("#notice");
    browser.find("#nothing-pending");
    let reviewed = browser.text_of("#reviewed");
    assert!(
        reviewed.contains("Accepted") && reviewed.contains("Discussed with the GP"),
        "{reviewed}"
    );

    visit(&browser, base, "/guardian/unusual", "unusual access");
    // The researcher's agreement: listed, its page, approved by the guardian with the
    // page's form (two people: the proposer cannot approve, the guardian can).
    visit(
        &browser,
        base,
        "/guardian/agreements",
        "data-sharing agreements",
    );
    assert!(browser.try_find("#no-agreements").is_none());
    assert_eq!(
        browser.text_of(&format!("#status-{agreement}")),
        "Proposed",
        "{}",
        browser.source()
    );
    let agreement_path = format!("/guardian/agreements/{agreement}");
    browser.click(&format!("#agreements a[href='{agreement_path}']"));
    assert_eq!(browser.current_path(), agreement_path);
    check_page(&browser, "data-sharing agreement (proposed)");
    assert_eq!(browser.text_of("h1"), AGREEMENT_TITLE);
    assert_eq!(browser.text_of("#status"), "Proposed");
    assert!(
        browser
            .text_of("main")
            .contains("proposed by walk-researcher")
    );
    assert!(browser.text_of("main").contains("University of Leeds"));
    browser.click("#approve");
    assert_eq!(
        browser.current_path(),
        format!("{agreement_path}?done=approve"),
        "{}",
        browser.source()
    );
    check_page(&browser, "data-sharing agreement (approved)");
    assert_eq!(browser.text_of("#status"), "Approved");
    browser.find("#notice");
    assert!(browser.try_find("#approve").is_none(), "approved twice?");
    assert!(
        browser
            .text_of("#versions")
            .contains(&format!("Approved by {}", cg.0)),
        "{}",
        browser.text_of("#versions")
    );
    browser.find("#revoke");

    // The record's access history lists the GP's view; then the patient's printable page.
    visit(&browser, base, &record_path, "patient record (guardian)");
    browser.click("#access-history-link");
    assert_eq!(browser.current_path(), format!("{record_path}/access"));
    check_page(&browser, "access history");
    let history = browser.text_of("#history-table");
    assert!(
        history.contains(gp.0) && history.contains(rec.0),
        "the access history should list the GP's and the receptionist's views:\n{history}"
    );
    screenshot(&browser, "access-history");
    browser.click("#print-link");
    assert_eq!(
        browser.current_path(),
        format!("{record_path}/access/print")
    );
    check_page(&browser, "access history (print)");
    assert!(browser.text_of("#report-table").contains(gp.0));
    browser.find("#checkpoint");

    visit(&browser, base, "/mail", "mail quarantine (guardian)");
    browser.find("#not-set-up");
    screenshot(&browser, "mail");

    // The gateway holds a phishing message: listed with its reasons, never its body, then
    // deleted with the page's form.
    let vault = open_vault(&data);
    let (mail_id, strongest) = hold_phishing(&vault, &t.path().join("mail-queue"));
    visit(&browser, base, "/mail", "mail quarantine (a message held)");
    let row = browser.text_of(&format!("#message-{mail_id}"));
    assert!(
        row.contains("payroll@nhs-net.co")
            && row.contains("Urgent: verify your payroll account")
            && row.contains(&strongest),
        "the held message's row lacks its sender, subject or reason {strongest}:\n{row}"
    );
    assert!(
        !browser.source().contains(MAIL_BODY_MARKER),
        "the body is shown"
    );
    browser.find(&format!("#release-{mail_id}"));
    browser.click(&format!("#delete-{mail_id}"));
    assert_eq!(browser.current_path(), "/mail?done=delete");
    check_page(&browser, "mail quarantine (message deleted)");
    browser.find("#notice");
    assert!(browser.try_find(&format!("#message-{mail_id}")).is_none());
    assert_eq!(browser.text_of("#messages"), "No messages are held.");
    assert!(matches!(
        VaultQuarantine::new(Arc::clone(&vault)).entry(&mail_id),
        Err(QuarantineError::NotFound(_))
    ));
    refused(&browser, base, "/administration", "Caldicott guardian");
    refused(
        &browser,
        base,
        "/administration/users/new",
        "Caldicott guardian",
    );
    sign_out(&browser, "Caldicott guardian");

    // ---------------------------------------------------------------- system administrator
    first_sign_in(&browser, base, (admin.0, &admin.1), "direct-care", false);
    assert_nav(
        &browser,
        "system administrator",
        &["nav-home", "nav-mail", "nav-admin"],
    );
    browser.find("#card-mfa");
    browser.find("#link-mfa");
    browser.click("#nav-admin");
    assert_eq!(browser.current_path(), "/administration");
    check_page(&browser, "administration: users");
    for u in [gp.0, rec.0, cg.0, admin.0] {
        assert_eq!(browser.text_of(&format!("#mfa-{u}")), "Enrolled", "{u}");
        assert_eq!(browser.text_of(&format!("#status-{u}")), "Enabled", "{u}");
    }
    screenshot(&browser, "administration-users");
    browser.click("#admin-nav-new");
    assert_eq!(browser.current_path(), "/administration/users/new");
    check_page(&browser, "administration: add a user");
    browser.fill("#name", "walk-nurse");
    browser.select("#role", "registered-nurse");
    browser.click("#add");
    check_page(&browser, "administration: user added");
    assert_eq!(browser.text_of("#new-user"), "walk-nurse");
    let otp = browser.text_of("#one-time-password");
    assert!(otp.trim().len() >= 12, "one-time password {otp:?}");
    browser.click("#back-to-users");
    assert_eq!(browser.current_path(), "/administration");
    assert_eq!(browser.text_of("#mfa-walk-nurse"), "Not enrolled");
    assert!(
        !browser.source().contains(otp.trim()),
        "the one-time password is shown only once"
    );
    // Tokens: one issued to the system client, shown once and never in the URL, working
    // against the FHIR API; then revoked by pasting it, and refused by the API.
    visit(
        &browser,
        base,
        "/administration/tokens",
        "administration: tokens",
    );
    assert!(browser.try_find("#no-clients").is_none());
    assert!(browser.text_of("#clients").contains("walk-client"));
    browser.select("#user", "walk-client");
    browser.fill("#scopes", "system/*.read");
    browser.select("#purpose", "direct-care");
    browser.fill("#ttl_hours", "1");
    browser.click("#issue");
    assert_eq!(browser.current_path(), "/administration/tokens");
    check_page(&browser, "administration: token issued");
    assert_eq!(browser.text_of("h1"), "Token issued");
    let token = browser.text_of("#issued-token");
    assert!(token.starts_with("cdt_") && token.len() > 20, "{token:?}");
    assert!(
        !browser.current_url().contains(&token),
        "the token is in the URL"
    );
    let patient_api = format!("/fhir/Patient/{}", p.id);
    assert_eq!(api_status(base, &data, &patient_api, &token), 200);
    browser.click("#back-to-tokens");
    assert_eq!(browser.current_path(), "/administration/tokens");
    assert!(
        !browser.source().contains(&token),
        "the token is shown only once"
    );
    browser.fill("#token", &token);
    browser.click("#revoke");
    assert_eq!(browser.current_path(), "/administration/tokens?revoked=1");
    check_page(&browser, "administration: token revoked");
    browser.find("#notice");
    assert_eq!(api_status(base, &data, &patient_api, &token), 401);
    // Pasting it again: refused next to the field.
    browser.fill("#token", &token);
    browser.click("#revoke");
    check_page(&browser, "administration: token revoked already");
    assert!(
        browser.text_of("#token-error").contains("No such token"),
        "{}",
        browser.source()
    );
    visit(
        &browser,
        base,
        "/administration/opt-outs",
        "administration: opt-outs",
    );
    browser.find("#optouts");
    refused(&browser, base, "/patients", "system administrator");
    refused(&browser, base, &record_path, "system administrator");
    refused(&browser, base, "/guardian", "system administrator");
    sign_out(&browser, "system administrator");

    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr().lock(),
        format_args!(
            "console walk (4 roles) took {:.1}s\n",
            started.elapsed().as_secs_f64()
        ),
    );
}
