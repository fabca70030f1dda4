//! Signing in and out of the console through its pages, and the browser protections
//! around every form: CSRF tokens, same-origin, session fixation, security headers.

mod common;

use caldicott_api::audit::EventKind;
use caldicott_policy::Role;
use common::{App, Browser, ORG, STRONG};

#[tokio::test]
async fn first_sign_in_enrols_then_signs_in_and_out() {
    let app = App::new();
    let mut b = app
        .signed_in("nurse.jones", ORG, Role::RegisteredNurse)
        .await;
    let home = b.get(&app, "/").await.expect(200);
    assert!(home.body.contains("nurse.jones"), "{}", home.body);
    assert!(home.body.contains("id=\"sign-out\""));
    assert!(home.body.contains("id=\"nav-patients\""));
    assert!(
        !home.body.contains("id=\"nav-admin\""),
        "a nurse sees no admin link"
    );
    assert_eq!(
        b.recovery_codes.len(),
        10,
        "recovery codes are shown once at enrolment"
    );
    let kinds: Vec<EventKind> = app.events().iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::Credentials));
    assert!(kinds.contains(&EventKind::Login));

    // Sign out: the session ends on the server, not only in the browser.
    let old = b.session_id().unwrap().to_owned();
    let r = b.post(&app, "/signout", &[]).await.expect(303);
    assert_eq!(r.location(), "/signin?signed-out=1");
    assert!(b.session_id().is_none());
    let mut replay = Browser::new();
    replay
        .cookies
        .push(("__Host-caldicott-session".into(), old));
    let r = replay.get(&app, "/").await.expect(303);
    assert!(r.location().starts_with("/signin"));

    // Signing in again asks for the code (the next time step: a code works once).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = b
        .submit(
            &app,
            "/signin",
            &[("user", "nurse.jones"), ("password", STRONG)],
        )
        .await
        .expect(303);
    assert_eq!(r.location(), "/signin/code");
    let secret = b.totp_secret.clone();
    let mut wrong = b
        .submit(
            &app,
            "/signin/code",
            &[("code", "000000"), ("purpose", "direct-care")],
        )
        .await;
    if wrong.status == 303 {
        // 000000 happened to be the current code: vanishingly rare, but not an error.
        wrong = b.get(&app, "/").await;
        assert_eq!(wrong.status, 200);
        return;
    }
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("nhsuk-error-summary"));
    assert!(wrong.body.contains("id=\"code-error\""));
    assert!(secret.is_some());
}

#[tokio::test]
async fn wrong_password_is_an_inline_error_and_audited() {
    let app = App::new();
    app.add_user("dr.patel", ORG, Role::Gp, None);
    let mut b = Browser::new();
    let r = b
        .submit(
            &app,
            "/signin",
            &[("user", "dr.patel"), ("password", "not the password")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(
        r.body
            .contains("The user name, password or code is not right")
    );
    assert!(r.body.contains("role=\"alert\""));
    assert!(
        !r.body.contains("not the password"),
        "the password is never echoed"
    );
    assert!(
        r.body.contains("value=\"dr.patel\""),
        "the user name is kept"
    );
    let failed: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::LoginFailed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].user, "dr.patel");
}

#[tokio::test]
async fn hostile_and_oversized_fields_are_refused_with_inline_errors() {
    let app = App::new();
    let mut b = Browser::new();
    let long = "a".repeat(300);
    let r = b
        .submit(&app, "/signin", &[("user", &long), ("password", "x")])
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"user-error\""));
    let script = "<script>alert(1)</script>";
    let r = b
        .submit(&app, "/signin", &[("user", script), ("password", "x")])
        .await;
    assert!(r.status < 500);
    assert!(!r.body.contains(script), "markup is escaped");
    assert!(
        r.body.contains("&#60;script&#62;") || r.body.contains("&lt;script&gt;"),
        "the value comes back escaped: {}",
        r.body
    );
    let r = b
        .submit(&app, "/signin", &[("user", "a\u{0}b"), ("password", "x")])
        .await;
    assert_eq!(r.status, 422);
    // A body over the limit is refused as such.
    let big = "x".repeat(20_000);
    let r = b
        .submit(&app, "/signin", &[("user", "u"), ("password", &big)])
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_this_sites_origin() {
    let app = App::new();
    let mut b = app
        .signed_in("guardian.g", ORG, Role::CaldicottGuardian)
        .await;
    // No token: refused, still signed in.
    let r = b.post_raw(&app, "/signout", &[], Some(common::SITE)).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("expired or did not come from this site"));
    b.get(&app, "/").await.expect(200);
    // The right token from another origin: refused.
    let csrf = caldicott_console::web::csrf_token(b.session_id().unwrap());
    let r = b
        .post_raw(
            &app,
            "/signout",
            &[("csrf".into(), csrf.clone())],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(r.status, 403);
    // Another session's token: refused.
    let other = caldicott_console::web::csrf_token("some-other-session");
    let r = b
        .post_raw(
            &app,
            "/signout",
            &[("csrf".into(), other)],
            Some(common::SITE),
        )
        .await;
    assert_eq!(r.status, 403);
    // The sign-in form needs its own token too.
    let mut fresh = Browser::new();
    let r = fresh
        .post_raw(
            &app,
            "/signin",
            &[
                ("user".into(), "guardian.g".into()),
                ("password".into(), STRONG.into()),
            ],
            Some(common::SITE),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_planted_session_id_is_never_the_one_signed_in() {
    let app = App::new();
    let mut attacker = app.signed_in("care.a", ORG, Role::CareWorker).await;
    let planted = attacker.session_id().unwrap().to_owned();
    // The victim's browser carries the attacker's session id, then the victim signs in.
    let one_time = app.add_user("care.v", ORG, Role::CareWorker, None);
    let mut victim = Browser::new();
    victim
        .cookies
        .push(("__Host-caldicott-session".into(), planted.clone()));
    victim
        .sign_in_first_time(&app, "care.v", &one_time, "direct-care")
        .await;
    let now = victim.session_id().unwrap().to_owned();
    assert_ne!(now, planted, "sign-in must issue a new session id");
    // And the planted one was ended.
    let r = attacker.get(&app, "/").await;
    assert_eq!(r.status, 303);
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_no_patient_data_in_titles() {
    let app = App::new();
    let mut b = app.signed_in("dr.who", ORG, Role::Gp).await;
    for path in ["/", "/signin", "/account/password"] {
        let r = b.get(&app, path).await;
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert!(!r.body.contains("<script"), "{path}: no script at all");
        assert!(!r.body.contains("style="), "{path}: no inline style");
    }
    // Without a session every page sends you to sign in.
    let mut anon = Browser::new();
    let r = anon.get(&app, "/").await.expect(303);
    assert_eq!(r.location(), "/signin");
}

#[tokio::test]
async fn changing_the_password_ends_the_session() {
    let app = App::new();
    let mut b = app.signed_in("rec.r", ORG, Role::Receptionist).await;
    let r = b
        .submit(
            &app,
            "/account/password",
            &[
                ("current_password", "wrong"),
                ("new_password", "another long passphrase 77"),
                ("confirm_password", "another long passphrase 77"),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("id=\"current_password-error\""));
    let r = b
        .submit(
            &app,
            "/account/password",
            &[
                ("current_password", STRONG),
                ("new_password", "another long passphrase 77"),
                ("confirm_password", "another long passphrase 78"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("The passwords do not match"));
    let r = b
        .submit(
            &app,
            "/account/password",
            &[
                ("current_password", STRONG),
                ("new_password", "another long passphrase 77"),
                ("confirm_password", "another long passphrase 77"),
            ],
        )
        .await
        .expect(303);
    assert_eq!(r.location(), "/signin?changed=1");
    let r = b.get(&app, "/").await;
    assert_eq!(r.status, 303);
}

#[tokio::test]
async fn a_refused_new_password_can_be_corrected() {
    let app = App::new();
    let one_time = app.add_user("care.c", ORG, Role::CareWorker, None);
    let mut b = Browser::new();
    b.submit(
        &app,
        "/signin",
        &[("user", "care.c"), ("password", &one_time)],
    )
    .await
    .expect(303);
    let r = b
        .submit(
            &app,
            "/signin/new-password",
            &[
                ("new_password", STRONG),
                ("confirm_password", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"confirm_password-error\""));
    // The form as re-rendered carries a token that works.
    let csrf = r.input_value("csrf").unwrap();
    let r = b
        .post(
            &app,
            "/signin/new-password",
            &[
                ("new_password", STRONG),
                ("confirm_password", STRONG),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), "/signin/enrol");
}

#[tokio::test]
async fn pages_say_when_the_session_ends_and_warn_near_the_end() {
    let app = App::new();
    let mut b = app.signed_in("nurse.n", ORG, Role::RegisteredNurse).await;
    let home = b.get(&app, "/").await.expect(200);
    assert!(home.body.contains("id=\"session-expiry\""));
    assert!(home.body.contains("if you do nothing"));
    assert!(
        !home.body.contains("id=\"session-warning\""),
        "8 hours left: no warning"
    );

    // A deployment whose sessions last 20 minutes in all: every page warns.
    let policy = caldicott_access::session::SessionPolicy {
        absolute_us: 20 * 60 * 1_000_000,
        ..Default::default()
    };
    let short = App::with_session_policy(policy);
    let mut b = short.signed_in("nurse.s", ORG, Role::RegisteredNurse).await;
    let home = b.get(&short, "/").await.expect(200);
    assert!(
        home.body.contains("id=\"session-warning\""),
        "{}",
        home.body
    );
    assert!(home.body.contains("Your session is ending"));
}

#[tokio::test]
async fn the_purposes_offered_are_those_the_role_may_act_for() {
    let app = App::new();
    let one_time = app.add_user("guardian.p", ORG, Role::CaldicottGuardian, None);
    let mut b = Browser::new();
    b.submit(
        &app,
        "/signin",
        &[("user", "guardian.p"), ("password", &one_time)],
    )
    .await
    .expect(303);
    b.submit(
        &app,
        "/signin/new-password",
        &[("new_password", STRONG), ("confirm_password", STRONG)],
    )
    .await
    .expect(303);
    let page = b.get(&app, "/signin/enrol").await.expect(200);
    assert!(
        page.body.contains("<option value=\"audit\" selected>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("value=\"direct-care\""),
        "a guardian reviews; it does not treat"
    );
    b.totp_secret = page.text_of_id("totp-secret");
    let csrf = page.input_value("csrf").unwrap();
    let code = b.code();
    // A purpose the role may not act for is refused next to the field, the code unused.
    let r = b
        .post(
            &app,
            "/signin/enrol",
            &[("code", &code), ("purpose", "direct-care"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"purpose-error\""));
    let r = b
        .post(
            &app,
            "/signin/enrol",
            &[("code", &code), ("purpose", "audit"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let home = b.get(&app, "/").await.expect(200);
    assert!(home.body.contains("Purpose: audit"), "{}", home.body);
}
