//! The directory on both backends: organisations, users, tokens, and authentication.

use std::sync::Arc;

use caldicott_access::{AccessError, AuthError, Directory};
use caldicott_core::OdsCode;
use caldicott_policy::{Purpose, Role};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{Backend, LocalKek, PostgresBackend, SqliteBackend, Vault};

enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

impl Db {
    fn backend(&self) -> Box<dyn Backend> {
        match self {
            Db::Sqlite(d) => {
                Box::new(SqliteBackend::open(&d.path().join("vault.db"), true).unwrap())
            }
            Db::Postgres(s) => Box::new(PostgresBackend::connect(&s.url).unwrap()),
        }
    }

    /// Every byte the database holds in its directory, for grepping.
    fn directory_bytes(&self) -> Vec<u8> {
        self.directory_bytes_of(&["organisation", "user", "token"])
    }

    fn directory_bytes_of(&self, kinds: &[&str]) -> Vec<u8> {
        let b = self.backend();
        let mut out = Vec::new();
        for kind in kinds {
            for r in b.dir_list(kind, None, 10_000).unwrap() {
                out.extend_from_slice(r.key.as_bytes());
                out.extend_from_slice(&r.value);
            }
        }
        out
    }
}

fn directory(db: &Db) -> Directory {
    let b = db.backend();
    b.migrate().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    Directory::new(Arc::new(Vault::open(b, kek).unwrap()))
}

fn ods(s: &str) -> OdsCode {
    OdsCode::parse(s).unwrap()
}

fn organisations_users_and_tokens(db: Db) {
    let d = directory(&db);
    d.add_org(&ods("A81001"), "Castle Family Practice").unwrap();
    assert!(matches!(
        d.add_org(&ods("A81001"), "Again"),
        Err(AccessError::OrganisationExists(_))
    ));
    assert!(matches!(
        d.add_org(&ods("B82002"), "  "),
        Err(AccessError::BadOrganisationName)
    ));
    assert!(matches!(
        d.add_user("ann", &ods("Z99999"), Role::Gp, None),
        Err(AccessError::UnknownOrganisation(_))
    ));
    let (ann, password) = d
        .add_user(
            "ann",
            &ods("A81001"),
            Role::Gp,
            Some("Practitioner/p1".into()),
        )
        .unwrap();
    assert!(ann.must_change_password);
    assert!(caldicott_identity::verify_password(&password, &ann.password_phc).unwrap());
    assert!(matches!(
        d.add_user("ann", &ods("A81001"), Role::Gp, None),
        Err(AccessError::UserExists(_))
    ));
    d.add_user("bot", &ods("A81001"), Role::System, None)
        .unwrap();
    assert_eq!(d.users().unwrap().len(), 2);
    assert_eq!(d.orgs().unwrap()[0].name, "Castle Family Practice");

    // Tokens: issued once, verified, scoped; people take user/ scopes, systems system/.
    let scopes = "user/*.read".parse().unwrap();
    let token = d
        .issue_token("ann", &scopes, Purpose::DirectCare, 3600)
        .unwrap();
    assert!(token.starts_with("cdt_"));
    let now = caldicott_vault::now_micros();
    let who = d.authenticate(&token, now).unwrap();
    assert_eq!(
        (who.user.name.as_str(), who.role, who.purpose),
        ("ann", Role::Gp, Purpose::DirectCare)
    );
    assert!(matches!(
        d.issue_token(
            "ann",
            &"system/*.read".parse().unwrap(),
            Purpose::DirectCare,
            60
        ),
        Err(AccessError::Policy(_))
    ));
    assert!(matches!(
        d.issue_token("bot", &scopes, Purpose::DirectCare, 60),
        Err(AccessError::Policy(_))
    ));
    assert!(matches!(
        d.issue_token("ann", &scopes, Purpose::DirectCare, 0),
        Err(AccessError::BadTtl)
    ));
    // Expired, unknown, tampered, revoked.
    assert_eq!(
        d.authenticate(&token, now + 3_601_000_000).unwrap_err(),
        AuthError::Invalid
    );
    assert_eq!(
        d.authenticate("cdt_nope", now).unwrap_err(),
        AuthError::Invalid
    );
    assert_eq!(
        d.authenticate("Bearer x", now).unwrap_err(),
        AuthError::Invalid
    );
    let other = d
        .issue_token("ann", &scopes, Purpose::Research, 3600)
        .unwrap();
    assert!(d.revoke_token(&other).unwrap());
    assert_eq!(d.authenticate(&other, now).unwrap_err(), AuthError::Invalid);
    // Disabling the user stops every token at once; enabling restores them.
    d.set_disabled("ann", true).unwrap();
    assert_eq!(
        d.authenticate(&token, now).unwrap_err(),
        AuthError::Disabled
    );
    assert!(matches!(
        d.issue_token("ann", &scopes, Purpose::DirectCare, 60),
        Err(AccessError::UserDisabled(_))
    ));
    d.set_disabled("ann", false).unwrap();
    assert!(d.authenticate(&token, now).is_ok());
    // Nothing secret is in the database in clear: not the token, the password, the
    // password hash or the practitioner reference.
    let raw = db.directory_bytes();
    for secret in [
        token.as_str(),
        password.as_str(),
        ann.password_phc.as_str(),
        "Practitioner/p1",
        "Castle",
    ] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "found {secret:?} in clear"
        );
    }
}

#[test]
fn sqlite() {
    organisations_users_and_tokens(Db::Sqlite(tempfile::tempdir().unwrap()));
}

#[test]
fn postgres() {
    let Some(s) = PgSchema::create() else { return };
    organisations_users_and_tokens(Db::Postgres(s));
}

fn opt_out_lists(db: Db) {
    use caldicott_access::optout::{self, OptOutKind, OptOuts};
    use caldicott_core::NhsNumber;
    let b = db.backend();
    b.migrate().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    let vault = Vault::open(b, kek).unwrap();
    let n = |s: &str| NhsNumber::parse(s).unwrap();
    let list = [n("9434765919"), n("9000000009"), n("9434765919")];
    assert_eq!(
        optout::replace(&vault, OptOutKind::National, &list).unwrap(),
        2
    );
    optout::replace(&vault, OptOutKind::Type1, &[n("9000000017")]).unwrap();
    assert_eq!(
        optout::check(&vault, &n("943 476 5919")).unwrap(),
        OptOuts {
            national: true,
            type1: false
        }
    );
    assert_eq!(
        optout::check(&vault, &n("9000000017")).unwrap(),
        OptOuts {
            national: false,
            type1: true
        }
    );
    // A new snapshot replaces the old: opting back in works.
    optout::replace(&vault, OptOutKind::National, &[n("9000000009")]).unwrap();
    assert!(!optout::check(&vault, &n("9434765919")).unwrap().national);
    // The numbers are not in the database.
    let raw = db.directory_bytes_of(&["optout-national", "optout-type1"]);
    for s in ["9434765919", "9000000009", "9000000017"] {
        assert!(!raw.windows(10).any(|w| w == s.as_bytes()));
    }
}

#[test]
fn opt_outs_sqlite() {
    opt_out_lists(Db::Sqlite(tempfile::tempdir().unwrap()));
}

#[test]
fn opt_outs_postgres() {
    let Some(s) = PgSchema::create() else { return };
    opt_out_lists(Db::Postgres(s));
}

fn break_glass_is_time_limited_and_queued_for_review(db: Db) {
    let d = directory(&db);
    d.add_org(&ods("A81001"), "Castle Practice").unwrap();
    d.add_user("er", &ods("A81001"), Role::Gp, None).unwrap();
    let now = caldicott_vault::now_micros();
    assert!(d.declare_break_glass("er", "  ", 30, now).is_err());
    assert!(d.declare_break_glass("er", "collapsed", 0, now).is_err());
    assert!(d.declare_break_glass("er", "collapsed", 241, now).is_err());
    let decl = d
        .declare_break_glass("er", "collapsed in clinic", 30, now)
        .unwrap();
    assert!(d.active_break_glass("er", now + 1).unwrap().is_some());
    assert!(
        d.active_break_glass("er", now + 31 * 60_000_000)
            .unwrap()
            .is_none()
    );
    // The token's holder carries it, while it lasts.
    let token = d
        .issue_token(
            "er",
            &"user/*.read".parse().unwrap(),
            Purpose::Emergency,
            3600,
        )
        .unwrap();
    assert!(
        d.authenticate(&token, now + 1)
            .unwrap()
            .break_glass
            .is_some()
    );
    // The guardian's queue.
    let queue = d.break_glass_queue(true).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].reason, "collapsed in clinic");
    d.review_break_glass(&decl.id, "guardian", true, "justified", now + 2)
        .unwrap();
    assert!(d.break_glass_queue(true).unwrap().is_empty());
    assert!(
        d.review_break_glass(&decl.id, "guardian", false, "", now + 3)
            .is_err()
    );
    // The reason is sealed: not in the database in clear.
    let raw = db.directory_bytes_of(&["break-glass", "break-glass-active"]);
    assert!(!raw.windows(9).any(|w| w == b"collapsed"));
}

#[test]
fn break_glass_sqlite() {
    break_glass_is_time_limited_and_queued_for_review(Db::Sqlite(tempfile::tempdir().unwrap()));
}

#[test]
fn break_glass_postgres() {
    let Some(s) = PgSchema::create() else { return };
    break_glass_is_time_limited_and_queued_for_review(Db::Postgres(s));
}

#[test]
fn sign_in_needs_a_changed_password_and_an_authenticator() {
    use caldicott_access::signin::{self, SignIn, SignInError};
    use caldicott_identity::{Totp, TotpSecret};
    let db = Db::Sqlite(tempfile::tempdir().unwrap());
    let d = directory(&db);
    d.add_org(&ods("A81001"), "Castle Practice").unwrap();
    let (_, otp) = d.add_user("ann", &ods("A81001"), Role::Gp, None).unwrap();
    let throttle = signin::new_throttle();
    let s = SignIn::new(&d, &throttle);
    let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let t0 = caldicott_vault::now_micros();
    let strong = "correct horse battery staple 42";
    // The one-time password only lets the user change it.
    assert_eq!(
        s.sign_in("ann", &otp, "000000", Purpose::DirectCare, ip, t0)
            .unwrap_err(),
        SignInError::MustChangePassword
    );
    assert!(matches!(
        s.change_password("ann", &otp, "password123456", ip, t0),
        Err(SignInError::Rejected(_))
    ));
    s.change_password("ann", &otp, strong, ip, t0).unwrap();
    // Then enrolment is required before any token.
    assert_eq!(
        s.sign_in("ann", strong, "000000", Purpose::DirectCare, ip, t0)
            .unwrap_err(),
        SignInError::MustEnrol
    );
    let e = s.enrol("ann", strong, ip, t0).unwrap();
    assert!(e.uri.starts_with("otpauth://totp/") && e.qr_svg.contains("<svg"));
    assert_eq!(e.recovery_codes.len(), 10);
    let totp = Totp::new(TotpSecret::from_base32(&e.secret_base32).unwrap());
    let code_at = |us: i64| totp.code_at((us / 1_000_000) as u64);
    assert_eq!(
        s.confirm("ann", strong, "123456", ip, t0).unwrap_err(),
        SignInError::Credentials
    );
    s.confirm("ann", strong, &code_at(t0), ip, t0).unwrap();
    // Sign in: the code of a later step works once; a replay does not.
    let t1 = t0 + 60_000_000;
    let token = s
        .sign_in("ann", strong, &code_at(t1), Purpose::DirectCare, ip, t1)
        .unwrap();
    let who = d.authenticate(&token, t1).unwrap();
    assert_eq!(
        (who.user.name.as_str(), who.purpose),
        ("ann", Purpose::DirectCare)
    );
    assert_eq!(
        s.sign_in("ann", strong, &code_at(t1), Purpose::DirectCare, ip, t1 + 1)
            .unwrap_err(),
        SignInError::Credentials
    );
    // A recovery code works once instead of the authenticator.
    let rc = e.recovery_codes[0].clone();
    s.sign_in("ann", strong, &rc, Purpose::DirectCare, ip, t1 + 2)
        .unwrap();
    assert_eq!(
        s.sign_in("ann", strong, &rc, Purpose::DirectCare, ip, t1 + 3)
            .unwrap_err(),
        SignInError::Credentials
    );
    // Guessing is throttled: after five wrong passwords, even the right one waits.
    let t2 = t1 + 120_000_000;
    for i in 0..5 {
        assert_eq!(
            s.sign_in("ann", "wrong", "000000", Purpose::DirectCare, ip, t2 + i)
                .unwrap_err(),
            SignInError::Credentials
        );
    }
    assert!(matches!(
        s.sign_in(
            "ann",
            strong,
            &code_at(t2 + 30_000_000),
            Purpose::DirectCare,
            ip,
            t2 + 10
        ),
        Err(SignInError::Throttled(_))
    ));
    // Unknown users look like wrong passwords.
    assert_eq!(
        s.sign_in(
            "nobody",
            strong,
            "000000",
            Purpose::DirectCare,
            ip,
            t2 + 900_000_000
        )
        .unwrap_err(),
        SignInError::Credentials
    );
}
