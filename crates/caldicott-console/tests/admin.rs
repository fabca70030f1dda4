//! Administration: users (add with a one-time password shown once, disable, enable, reset
//! the authenticator), API client tokens, the opt-out lists; the role check; bad input.

mod common;

use caldicott_api::audit::EventKind;
use caldicott_core::NhsNumber;
use caldicott_policy::Role;
use common::{App, Browser, ORG, OTHER_ORG};

/// The `admin` events recorded with `action`, as `(user, id)`.
fn admin_events(app: &App, action: &str) -> Vec<(String, Option<String>)> {
    app.events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Admin && e.action == action)
        .map(|e| (e.user, e.id))
        .collect()
}

fn secret_in(page: &common::Reply, id: &str) -> String {
    let needle = format!("id=\"{id}\">");
    let at = page.body.find(&needle).expect("secret shown") + needle.len();
    let end = page.body[at..].find('<').unwrap();
    page.body[at..at + end].to_owned()
}

#[tokio::test]
async fn a_sysadmin_adds_a_user_who_can_then_sign_in() {
    let app = App::new();
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    let form = admin
        .get(&app, "/administration/users/new")
        .await
        .expect(200);
    assert!(form.body.contains("<option value=\"gp\">GP</option>"));
    let r = admin
        .submit(
            &app,
            "/administration/users",
            &[
                ("name", "a.patel"),
                ("role", "gp"),
                ("practitioner", "Practitioner/77"),
            ],
        )
        .await
        .expect(200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let password = secret_in(&r, "one-time-password");
    assert!(password.len() >= 12, "{password}");
    // Not shown again anywhere.
    let list = admin.get(&app, "/administration").await.expect(200);
    assert!(list.body.contains("a.patel"));
    assert!(!list.body.contains(&password));
    let u = app.directory.user("a.patel").unwrap().unwrap();
    assert_eq!((u.org.as_str(), u.role.as_str()), (ORG, "gp"));
    assert_eq!(u.practitioner.as_deref(), Some("Practitioner/77"));
    assert_eq!(
        admin_events(&app, "user-add"),
        vec![("admin".to_owned(), Some("a.patel".to_owned()))]
    );
    // The password is the real one: the new user signs in with it.
    let mut patel = Browser::new();
    patel
        .sign_in_first_time(&app, "a.patel", &password, "direct-care")
        .await;
    // The list shows them enrolled now, with a sign-in time.
    let list = admin.get(&app, "/administration").await.expect(200);
    assert_eq!(list.text_of_id("mfa-a.patel").as_deref(), Some("Enrolled"));
    // A second user of the same name: an inline error.
    let r = admin
        .submit(
            &app,
            "/administration/users",
            &[("name", "a.patel"), ("role", "gp")],
        )
        .await
        .expect(422);
    assert!(r.body.contains("already exists"));
}

#[tokio::test]
async fn disabling_ends_the_session_and_reset_mfa_forgets_the_authenticator() {
    let app = App::new();
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    let mut carer = app.signed_in("carer", ORG, Role::CareWorker).await;
    carer.get(&app, "/").await.expect(200);

    let r = admin
        .post(&app, "/administration/users/carer/disable", &[])
        .await
        .expect(303);
    assert!(
        r.location().starts_with("/administration?"),
        "{}",
        r.location()
    );
    let list = admin.get(&app, r.location()).await.expect(200);
    assert_eq!(list.text_of_id("status-carer").as_deref(), Some("Disabled"));
    assert!(list.text_of_id("notice").is_some());
    // Their session stops working at once.
    let r = carer.get(&app, "/").await.expect(303);
    assert!(r.location().starts_with("/signin"));
    assert!(app.directory.user("carer").unwrap().unwrap().disabled);
    assert_eq!(
        admin_events(&app, "user-disable"),
        vec![("admin".to_owned(), Some("carer".to_owned()))]
    );

    admin
        .post(&app, "/administration/users/carer/enable", &[])
        .await
        .expect(303);
    assert!(!app.directory.user("carer").unwrap().unwrap().disabled);
    assert_eq!(admin_events(&app, "user-enable").len(), 1);

    // Reset MFA: the authenticator is forgotten and the session ends.
    let mut gp = app.signed_in("gp", ORG, Role::Gp).await;
    gp.get(&app, "/").await.expect(200);
    assert!(
        app.directory
            .user("gp")
            .unwrap()
            .unwrap()
            .totp_secret
            .is_some()
    );
    admin
        .post(&app, "/administration/users/gp/reset-mfa", &[])
        .await
        .expect(303);
    assert!(
        app.directory
            .user("gp")
            .unwrap()
            .unwrap()
            .totp_secret
            .is_none()
    );
    gp.get(&app, "/").await.expect(303);
    assert_eq!(
        admin_events(&app, "user-reset-mfa"),
        vec![("admin".to_owned(), Some("gp".to_owned()))]
    );

    // Without the form's CSRF token: refused, nothing changed.
    let r = admin
        .post(
            &app,
            "/administration/users/carer/disable",
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(!app.directory.user("carer").unwrap().unwrap().disabled);
}

#[tokio::test]
async fn only_the_own_organisations_users() {
    let app = App::new();
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    app.add_user("elsewhere", OTHER_ORG, Role::Gp, None);
    let list = admin.get(&app, "/administration").await.expect(200);
    assert!(!list.body.contains("elsewhere"));
    admin
        .post(&app, "/administration/users/elsewhere/disable", &[])
        .await
        .expect(404);
    admin
        .post(&app, "/administration/users/nobody/disable", &[])
        .await
        .expect(404);
    admin
        .post(&app, "/administration/users/admin/explode", &[])
        .await
        .expect(404);
    assert!(!app.directory.user("elsewhere").unwrap().unwrap().disabled);
    assert!(admin_events(&app, "user-disable").is_empty());
}

#[tokio::test]
async fn other_roles_get_403() {
    let app = App::new();
    for (name, role) in [
        ("gp", Role::Gp),
        ("guardian", Role::CaldicottGuardian),
        ("carer", Role::CareWorker),
    ] {
        let mut b = app.signed_in(name, ORG, role).await;
        for path in [
            "/administration",
            "/administration/users/new",
            "/administration/tokens",
            "/administration/opt-outs",
        ] {
            b.get(&app, path).await.expect(403);
        }
        b.post(
            &app,
            "/administration/users",
            &[("name", "sneaky"), ("role", "sysadmin")],
        )
        .await
        .expect(403);
        b.post(&app, "/administration/users/gp/disable", &[])
            .await
            .expect(403);
        let home = b.get(&app, "/").await.expect(200);
        assert!(!home.body.contains("href=\"/administration\""));
    }
    assert!(app.directory.user("sneaky").unwrap().is_none());
    assert!(!app.directory.user("gp").unwrap().unwrap().disabled);
}

#[tokio::test]
async fn bad_input_is_refused_inline_never_500() {
    let app = App::new();
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    let long = "a".repeat(300);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("name", "ann smith"), ("role", "gp")], "name"),
        (vec![("name", &long), ("role", "gp")], "name"),
        (vec![("name", ""), ("role", "gp")], "name"),
        (
            vec![("name", "<script>alert(1)</script>"), ("role", "gp")],
            "name",
        ),
        (vec![("name", "ann"), ("role", "wizard")], "role"),
        (vec![("name", "ann"), ("role", "")], "role"),
        (
            vec![
                ("name", "ann"),
                ("role", "gp"),
                ("practitioner", "Patient/1"),
            ],
            "practitioner",
        ),
        (
            vec![
                ("name", "ann"),
                ("role", "gp"),
                ("practitioner", "Practitioner/1\u{7}"),
            ],
            "practitioner",
        ),
    ];
    for (fields, field) in cases {
        let r = admin.submit(&app, "/administration/users", &fields).await;
        assert_eq!(r.status, 422, "{fields:?}: {}", r.body);
        assert!(
            r.body.contains(&format!("id=\"{field}-error\"")),
            "{fields:?}: no inline error for {field}"
        );
        assert!(r.body.contains("There is a problem"));
        assert!(!r.body.contains("<script>alert"), "not escaped");
    }
    assert!(app.directory.user("ann").unwrap().is_none());

    app.add_user("engine", ORG, Role::System, None);
    let scopes = "system/Patient.read";
    for (ttl, scopes, field) in [
        ("0", scopes, "ttl_hours"),
        ("240", scopes, "ttl_hours"),
        ("25", scopes, "ttl_hours"),
        ("ten", scopes, "ttl_hours"),
        ("8", "not a scope", "scopes"),
        ("8", "user/Patient.read", "scopes"),
    ] {
        let r = admin
            .submit(
                &app,
                "/administration/tokens",
                &[
                    ("user", "engine"),
                    ("scopes", scopes),
                    ("purpose", "direct-care"),
                    ("ttl_hours", ttl),
                ],
            )
            .await;
        assert_eq!(r.status, 422, "ttl {ttl} scopes {scopes}: {}", r.body);
        assert!(
            r.body.contains(&format!("id=\"{field}-error\"")),
            "{}",
            r.body
        );
    }
    assert!(admin_events(&app, "token-issue").is_empty());
}

#[tokio::test]
async fn tokens_for_api_clients_are_shown_once_and_revoked_by_pasting() {
    let app = App::new();
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    app.add_user("engine", ORG, Role::System, None);
    app.add_user("their-engine", OTHER_ORG, Role::System, None);
    let page = admin.get(&app, "/administration/tokens").await.expect(200);
    assert!(page.body.contains("<option value=\"engine\""));
    assert!(!page.body.contains("their-engine"));

    // Another organisation's client cannot be chosen.
    admin
        .submit(
            &app,
            "/administration/tokens",
            &[
                ("user", "their-engine"),
                ("scopes", "system/Patient.read"),
                ("purpose", "direct-care"),
                ("ttl_hours", "8"),
            ],
        )
        .await
        .expect(422);

    let r = admin
        .submit(
            &app,
            "/administration/tokens",
            &[
                ("user", "engine"),
                ("scopes", "system/Patient.read"),
                ("purpose", "direct-care"),
                ("ttl_hours", "24"),
            ],
        )
        .await
        .expect(200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = secret_in(&r, "issued-token");
    let now = caldicott_vault::now_micros();
    let who = app.directory.authenticate(&token, now).unwrap();
    assert_eq!(who.user.name, "engine");
    assert!(who.expires_at <= now + 24 * 3_600_000_000 + 1_000_000);
    assert_eq!(
        admin_events(&app, "token-issue"),
        vec![("admin".to_owned(), Some("engine".to_owned()))]
    );
    let again = admin.get(&app, "/administration/tokens").await.expect(200);
    assert!(!again.body.contains(&token));

    let r = admin
        .post(&app, "/administration/tokens/revoke", &[("token", &token)])
        .await
        .expect(303);
    assert_eq!(r.location(), "/administration/tokens?revoked=1");
    assert!(app.directory.authenticate(&token, now).is_err());
    assert_eq!(admin_events(&app, "token-revoke").len(), 1);
    // A second time: no such token, inline.
    let r = admin
        .post(&app, "/administration/tokens/revoke", &[("token", &token)])
        .await
        .expect(422);
    assert!(r.body.contains("id=\"token-error\""));
    admin
        .post(&app, "/administration/tokens/revoke", &[("token", "hello")])
        .await
        .expect(422);
    // Another organisation's live token is not revoked from here.
    let theirs = app.token(
        "their-engine",
        "system/Patient.read",
        caldicott_policy::Purpose::DirectCare,
    );
    admin
        .post(&app, "/administration/tokens/revoke", &[("token", &theirs)])
        .await
        .expect(422);
    assert!(app.directory.authenticate(&theirs, now).is_ok());
}

#[tokio::test]
async fn opt_out_lists_show_their_size_and_load_time() {
    let app = App::new();
    let mut admin = app.signed_in("admin", ORG, Role::Sysadmin).await;
    let page = admin
        .get(&app, "/administration/opt-outs")
        .await
        .expect(200);
    assert_eq!(
        page.text_of_id("optout-national-entries").as_deref(),
        Some("0")
    );
    assert!(
        page.text_of_id("optout-national-replaced")
            .unwrap()
            .starts_with("Not known")
    );
    let numbers: Vec<NhsNumber> = ["9434765919", "9434765870", "9434765919"]
        .iter()
        .filter_map(|n| NhsNumber::parse(n).ok())
        .collect();
    assert_eq!(numbers.len(), 3, "test numbers must be valid");
    caldicott_access::optout::replace(
        &app.vault,
        caldicott_access::optout::OptOutKind::National,
        &numbers,
    )
    .unwrap();
    let page = admin
        .get(&app, "/administration/opt-outs")
        .await
        .expect(200);
    assert_eq!(
        page.text_of_id("optout-national-entries").as_deref(),
        Some("2")
    );
    let when = page.text_of_id("optout-national-replaced").unwrap();
    assert!(!when.starts_with("Not known"), "{when}");
    assert_eq!(
        page.text_of_id("optout-type1-entries").as_deref(),
        Some("0")
    );
    assert!(
        page.text_of_id("optout-type1-replaced")
            .unwrap()
            .starts_with("Not known")
    );
    // An empty load is a load: it is recorded with its time.
    caldicott_access::optout::replace(&app.vault, caldicott_access::optout::OptOutKind::Type1, &[])
        .unwrap();
    let page = admin
        .get(&app, "/administration/opt-outs")
        .await
        .expect(200);
    assert_eq!(
        page.text_of_id("optout-type1-entries").as_deref(),
        Some("0")
    );
    let when = page.text_of_id("optout-type1-replaced").unwrap();
    assert!(!when.starts_with("Not known"), "{when}");
}
