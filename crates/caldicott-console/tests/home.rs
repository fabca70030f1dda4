//! The home page: the posture figures for a known set-up, computed by the page from the
//! real directory, ledger, agreement book and quarantine; which roles see which cards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use caldicott_access::User;
use caldicott_api::ApiConfig;
use caldicott_api::audit::{AuditSink, EventKind, Origin, Outcome, security_event};
use caldicott_console::ConsoleState;
use caldicott_policy::Role;
use caldicott_vault::Ledger;
use common::{App, ORG, OTHER_ORG};
use serde_json::json;

const DAY_US: i64 = 86_400_000_000;

/// Rewrites a user's directory entry through the vault, as the directory stores it: the
/// only way to give a fixture a past creation or sign-in time (the directory stamps both
/// with the real clock).
fn backdate(app: &App, name: &str, f: impl Fn(&mut User)) {
    let e = app
        .vault
        .dir_get("user", name)
        .unwrap()
        .expect("user entry");
    let mut u: User = serde_json::from_slice(&e.value).unwrap();
    f(&mut u);
    app.vault
        .dir_put(
            "user",
            name,
            &serde_json::to_vec(&u).unwrap(),
            Some(e.version),
        )
        .unwrap();
}

/// The app with a real audit ledger behind the console, on a clock the test moves on
/// (`skip` microseconds ahead of the real one).
fn with_ledger(app: &mut App, skip: Arc<AtomicI64>) -> Arc<Ledger> {
    let ledger = Ledger::open(Arc::clone(&app.vault), "caldicott.test/ledger").unwrap();
    let config = ApiConfig {
        public_base: None,
        scheme: "https",
        max_body_bytes: 1 << 20,
    };
    let mut console = ConsoleState::new(
        Arc::clone(&app.vault),
        Arc::clone(&app.store),
        Arc::clone(&app.directory),
        Arc::clone(&app.audit) as Arc<dyn AuditSink>,
        Some(Arc::clone(&ledger)),
        &config,
    );
    console.clock = Arc::new(move || caldicott_vault::now_micros() + skip.load(Ordering::SeqCst));
    app.router = caldicott_console::router(Arc::new(console));
    ledger
}

fn text(page: &common::Reply, id: &str) -> String {
    page.text_of_id(id)
        .unwrap_or_else(|| panic!("no #{id} in {}", page.body))
}

#[tokio::test]
async fn posture_figures_for_a_known_set_up() {
    let app = App::new();
    // People of X26: the administrator and a GP (both enrolled by signing in), a carer
    // never signed in. Not counted: a system client, a disabled person, another org's GP.
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    let _gp = app.signed_in("gp", ORG, Role::Gp).await;
    app.add_user("carer", ORG, Role::CareWorker, None);
    app.add_user("engine", ORG, Role::System, None);
    app.add_user("gone", ORG, Role::Gp, None);
    app.directory.set_disabled("gone", true).unwrap();
    let _other = app.signed_in("other", OTHER_ORG, Role::Gp).await;
    app.add_user("other-carer", OTHER_ORG, Role::CareWorker, None);

    let page = admin.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "mfa-enrolled"), "2");
    assert_eq!(text(&page, "mfa-people"), "3");
    assert_eq!(text(&page, "mfa-percent"), "67%");
    // Nobody is dormant yet: the carer was added just now.
    assert_eq!(text(&page, "dormant-count"), "0");

    // The carer was added 100 days ago and never signed in; the GP last signed in 91 days
    // ago; another org's carer is as old but not counted.
    let now = caldicott_vault::now_micros();
    backdate(&app, "carer", |u| u.created_at = now - 100 * DAY_US);
    backdate(&app, "gp", |u| u.last_sign_in_at = Some(now - 91 * DAY_US));
    backdate(&app, "other-carer", |u| u.created_at = now - 100 * DAY_US);
    backdate(&app, "gone", |u| u.created_at = now - 100 * DAY_US);
    let page = admin.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "dormant-count"), "2");
    assert!(page.body.contains("<td>carer</td>") && page.body.contains("<td>gp</td>"));
    assert!(!page.body.contains("other-carer") && !page.body.contains("<td>gone</td>"));

    // A fourth person, not enrolled: 2 of 4.
    app.add_user("newbie", ORG, Role::Receptionist, None);
    let page = admin.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "mfa-percent"), "50%");
    assert_eq!(text(&page, "mfa-people"), "4");
    assert_eq!(text(&page, "dormant-count"), "2");

    // No ledger configured: said so, not a number.
    assert!(text(&page, "alerts-count").contains("ledger not available"));
    // The administrator's links act on the cards.
    assert!(page.body.contains("id=\"link-mfa\""));
    assert!(page.body.contains("href=\"/mail\" id=\"link-quarantine\""));
    assert!(!page.body.contains("id=\"link-break-glass\""));
}

#[tokio::test]
async fn break_glass_quarantine_and_releases_are_counted_for_the_org() {
    let app = App::new();
    let mut guardian = app
        .signed_in("guardian", ORG, Role::CaldicottGuardian)
        .await;
    app.add_user("gp1", ORG, Role::Gp, None);
    app.add_user("gp2", ORG, Role::Gp, None);
    app.add_user("gp3", OTHER_ORG, Role::Gp, None);
    let now = caldicott_vault::now_micros();
    for u in ["gp1", "gp2", "gp3"] {
        app.directory
            .declare_break_glass(u, "patient collapsed in reception", 30, now)
            .unwrap();
    }
    let page = guardian.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "break-glass-count"), "2");
    assert_eq!(text(&page, "quarantine-count"), "0");
    assert_eq!(text(&page, "releases-count"), "0");
    // The guardian's links; no administration link.
    assert!(page.body.contains("href=\"/guardian/break-glass\""));
    assert!(!page.body.contains("id=\"link-mfa\""));

    let gp1 = app.directory.break_glass_queue(true).unwrap();
    let first = gp1.iter().find(|d| d.user == "gp1").unwrap();
    app.directory
        .review_break_glass(&first.id, "guardian", true, "fine", now)
        .unwrap();
    let page = guardian.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "break-glass-count"), "1");

    // Two held messages.
    let q = caldicott_mail::quarantine::VaultQuarantine::new(Arc::clone(&app.vault));
    for id in ["0a1b", "0a1c"] {
        let entry: caldicott_mail::quarantine::Entry = serde_json::from_value(json!({
            "v": 1, "id": id, "received_at": now / 1_000_000, "direction": "inbound",
            "client_ip": null, "helo": null, "mail_from": "x@example.com",
            "rcpt_to": ["manager@example.nhs.uk"], "authenticated": false,
            "verdict": "quarantine", "score": 12.0, "symbols": [], "size": 5,
            "from": null, "subject": null
        }))
        .unwrap();
        q.put(&entry, b"hello").unwrap();
    }
    // An approved monthly agreement of this org: a release may be made today. One of the
    // other organisation is not shown; a proposal not yet approved is not due.
    let book = caldicott_share::Book::new(Arc::clone(&app.vault));
    let terms = |title: &str, expires: &str| -> caldicott_share::Terms {
        serde_json::from_value(json!({
            "title": title,
            "recipient": { "name": "University of Leeds",
                "age_key": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p" },
            "purpose": "research",
            "legal_basis": { "kind": "section251", "reference": "CAG 21/CAG/0001" },
            "dataset": { "column": [
                { "name": "sex", "path": "Patient.gender" },
                { "name": "birth_date", "path": "Patient.birthDate" } ] },
            "deid_profile": "metric = \"loss\"\n[privacy]\nmodel = \"k-anonymity\"\nk = 5\n[[attribute]]\nname = \"sex\"\nkind = \"insensitive\"\n[[attribute]]\nname = \"birth_date\"\nkind = \"quasi-identifier\"\nhierarchy = { date = \"yyyy-mm-dd\" }\n",
            "frequency": "monthly",
            "expires": expires
        }))
        .unwrap()
    };
    let proposer = |org| caldicott_share::Actor {
        user: "dpo",
        org,
        role: "sysadmin",
    };
    let approver = |org| caldicott_share::Actor {
        user: "guardian",
        org,
        role: "caldicott-guardian",
    };
    let ours = book
        .propose(
            &proposer(ORG),
            terms("Diabetes outcomes", "2099-12-31"),
            now,
        )
        .unwrap();
    book.approve(&ours.id, &approver(ORG), now).unwrap();
    let theirs = book
        .propose(&proposer(OTHER_ORG), terms("Asthma", "2099-12-31"), now)
        .unwrap();
    book.approve(&theirs.id, &approver(OTHER_ORG), now).unwrap();
    book.propose(&proposer(ORG), terms("Not yet", "2099-12-31"), now)
        .unwrap();

    let page = guardian.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "quarantine-count"), "2");
    assert_eq!(text(&page, "releases-count"), "1");
    assert!(page.body.contains("Diabetes outcomes"));
    assert!(!page.body.contains("Asthma") && !page.body.contains("Not yet"));
}

#[tokio::test]
async fn unusual_access_and_ledger_status_come_from_the_ledger() {
    let mut app = App::new();
    let skip = Arc::new(AtomicI64::new(0));
    let ledger = with_ledger(&mut app, Arc::clone(&skip));
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    let page = admin.get(&app, "/").await.expect(200);
    assert_eq!(text(&page, "alerts-count"), "0");
    assert!(
        text(&page, "ledger-verified")
            .to_lowercase()
            .contains("not recorded")
    );

    // Three break-glass reads in this organisation, one in another, one of ours 8 days
    // ago (outside the seven days).
    let now = caldicott_vault::now_micros();
    let event = |org: &str, at: i64| {
        let mut e = security_event(
            EventKind::Access,
            "read",
            "gp1",
            org,
            "gp",
            &Origin::default(),
            Outcome::Permit,
            "break-glass",
            at,
        );
        e.break_glass = true;
        e.rtype = Some("Patient".into());
        e.patients = vec!["p-1".into()];
        caldicott_api::audit::leaf_of(&e)
    };
    // The old one goes in first (the ledger is in about time order); its time keeps it out.
    ledger.append(vec![event(ORG, now - 8 * DAY_US)]).unwrap();
    skip.fetch_add(61_000_000, Ordering::SeqCst);
    let page = admin.get(&app, "/").await.expect(200);
    let old_only = text(&page, "alerts-count");
    ledger
        .append(vec![
            event(ORG, now),
            event(ORG, now),
            event(OTHER_ORG, now),
            event(ORG, now),
        ])
        .unwrap();
    // The count is reused for a minute, then made again.
    let page = admin.get(&app, "/").await.expect(200);
    assert_eq!(
        text(&page, "alerts-count"),
        "0",
        "recounted within the minute"
    );
    skip.fetch_add(61_000_000, Ordering::SeqCst);
    let page = admin.get(&app, "/").await.expect(200);
    assert_eq!(old_only, "0", "an entry older than seven days was counted");
    // Each read is a break-glass finding (and, out of hours, an after-hours one too).
    assert!(
        page.body
            .contains("<li>Emergency access (break-glass): 3</li>"),
        "{}",
        page.body
    );
    let n: usize = text(&page, "alerts-count").parse().unwrap();
    assert!(n == 3 || n == 6, "{n}");

    // A checkpoint: its size is shown.
    let (size, _) = ledger.publish().unwrap().unwrap();
    let page = admin.get(&app, "/").await.expect(200);
    assert!(
        text(&page, "ledger-checkpoint").starts_with(&format!("{size} entries")),
        "{}",
        page.body
    );
    assert_eq!(text(&page, "ledger-entries"), size.to_string());
    assert!(text(&page, "ledger-verified").starts_with("Not yet"));

    // A full verification (as `caldicott ledger verify` and the server's daily check run
    // it) is shown with what it covered; a failed one raises the alarm on the page.
    let outcome = ledger.verify(&|_| Ok(()), &|_| {}).unwrap();
    assert!(outcome.is_ok());
    ledger
        .record_verification(&caldicott_vault::Verification::of(&outcome, now))
        .unwrap();
    let page = admin.get(&app, "/").await.expect(200);
    let verified = text(&page, "ledger-verified");
    assert!(
        verified.contains(&format!(
            "all {size} entries and every checkpoint proved intact"
        )),
        "{verified}"
    );
    assert!(!page.body.contains("id=\"ledger-failed\""));
    let failed: Result<caldicott_vault::VerifyReport, caldicott_vault::VerifyError> =
        Err(caldicott_vault::VerifyError::Entry {
            epoch: 1,
            index: 2,
            problem: "hash mismatch".into(),
        });
    ledger
        .record_verification(&caldicott_vault::Verification::of(&failed, now))
        .unwrap();
    let page = admin.get(&app, "/").await.expect(200);
    assert!(page.body.contains("id=\"ledger-failed\""), "{}", page.body);
    assert!(page.body.contains("epoch 1, entry 2"));
    assert!(
        !page.body.contains("hash mismatch"),
        "only the place is kept"
    );
    // The last intact one is still shown.
    assert!(text(&page, "ledger-verified").contains("proved intact"));
}

#[tokio::test]
async fn clinicians_see_only_their_own_card() {
    let app = App::new();
    let mut gp = app.signed_in("gp", ORG, Role::Gp).await;
    let page = gp.get(&app, "/").await.expect(200);
    assert!(page.body.contains("id=\"card-you\""));
    assert!(page.body.contains("id=\"own-no-break-glass\""));
    for card in [
        "card-mfa",
        "card-dormant",
        "card-break-glass",
        "card-alerts",
        "card-quarantine",
    ] {
        assert!(!page.body.contains(card), "a GP sees {card}");
    }
    assert_eq!(page.header("cache-control"), Some("no-store"));

    // Their break-glass in force is shown to them (a new session carries it).
    app.directory
        .declare_break_glass(
            "gp",
            "unconscious patient, no consent possible",
            30,
            caldicott_vault::now_micros(),
        )
        .unwrap();
    let page = gp.get(&app, "/").await.expect(200);
    assert!(
        page.body.contains("id=\"own-break-glass\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("unconscious patient"));

    // Signed out: to the sign-in page.
    let mut nobody = common::Browser::new();
    let r = nobody.get(&app, "/").await.expect(303);
    assert_eq!(r.location(), "/signin");
}
