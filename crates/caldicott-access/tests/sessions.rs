//! Browser sessions and the client credentials grant, with the clock passed in: timeouts,
//! activity written at most once a minute, revocation by logout, disabling, password change
//! and authenticator reset, and what is stored.

use std::net::IpAddr;
use std::sync::Arc;

use caldicott_access::session::{SESSION_ABSOLUTE_US, SESSION_IDLE_US, SESSION_REFRESH_US};
use caldicott_access::signin::{self, SignIn, SignInError};
use caldicott_access::{AUTH_CACHE_TTL_US, AccessError, AuthError, Directory};
use caldicott_core::OdsCode;
use caldicott_identity::{Totp, TotpSecret};
use caldicott_policy::{Purpose, Role};
use caldicott_vault::testing::PgSchema;
use caldicott_vault::{Backend, LocalKek, PostgresBackend, SqliteBackend, Vault};

const MIN: i64 = 60_000_000;
const SEC: i64 = 1_000_000;

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

    /// The stored sessions: (key, version, raw sealed value).
    fn sessions(&self) -> Vec<(String, u64, Vec<u8>)> {
        self.backend()
            .dir_list("session", None, 10_000)
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.version, r.value))
            .collect()
    }
}

/// A directory, and a second one over the same database (as another process would have).
fn directories(db: &Db) -> (Directory, Directory) {
    let b = db.backend();
    b.migrate().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    let vault = Arc::new(
        Vault::open(b, Arc::clone(&kek) as Arc<dyn caldicott_vault::KeyProvider>).unwrap(),
    );
    let other = Arc::new(Vault::open(db.backend(), kek).unwrap());
    let d = Directory::new(vault);
    d.add_org(&OdsCode::parse("A81001").unwrap(), "Castle Practice")
        .unwrap();
    (d, Directory::new(other))
}

fn ip() -> IpAddr {
    "192.0.2.7".parse().unwrap()
}

/// Adds `name` as a GP who has changed their password and enrolled an authenticator;
/// returns the password and the authenticator.
fn enrolled(d: &Directory, name: &str, t0: i64) -> (String, Totp) {
    let (_, otp) = d
        .add_user(name, &OdsCode::parse("A81001").unwrap(), Role::Gp, None)
        .unwrap();
    let throttle = signin::new_throttle();
    let s = SignIn::new(d, &throttle);
    let strong = "correct horse battery staple 42".to_owned();
    s.change_password(name, &otp, &strong, ip(), t0).unwrap();
    let e = s.enrol(name, &strong, ip(), t0).unwrap();
    let totp = Totp::new(TotpSecret::from_base32(&e.secret_base32).unwrap());
    s.confirm(name, &strong, &totp.code_at(secs(t0)), ip(), t0)
        .unwrap();
    (strong, totp)
}

fn secs(us: i64) -> u64 {
    (us / SEC) as u64
}

fn sessions_end_on_timeouts_and_revocation(db: Db) {
    let (d, other) = directories(&db);
    let t0 = caldicott_vault::now_micros();
    let (password, totp) = enrolled(&d, "ann", t0);
    let throttle = signin::new_throttle();
    let s = SignIn::new(&d, &throttle);

    // A session needs the password and a fresh authenticator code, like a token.
    let t1 = t0 + MIN;
    assert_eq!(
        s.start_session("ann", &password, "000000", Purpose::DirectCare, ip(), t1)
            .unwrap_err(),
        SignInError::Credentials
    );
    let new = s
        .start_session(
            "ann",
            &password,
            &totp.code_at(secs(t1)),
            Purpose::DirectCare,
            ip(),
            t1,
        )
        .unwrap();
    assert!(
        new.id.starts_with("cds_") && new.id.len() == 47,
        "{}",
        *new.id
    );
    assert_eq!(new.csrf_token.len(), 43);
    assert_eq!(new.session.expires_at, t1 + SESSION_ABSOLUTE_US);
    assert_eq!(new.session.idle_expires_at, t1 + SESSION_IDLE_US);
    assert_eq!(new.session.auth.user.name, "ann");

    // Verified, with its CSRF token (and nothing else) matching.
    let who = d.authenticate_session(&new.id, t1 + SEC).unwrap();
    assert_eq!(
        (who.auth.user.name.as_str(), who.auth.role, who.auth.purpose),
        ("ann", Role::Gp, Purpose::DirectCare)
    );
    assert!(who.csrf_matches(&new.csrf_token));
    assert!(!who.csrf_matches(""));
    assert!(!who.csrf_matches(&new.id));
    assert!(!who.csrf_matches(&new.csrf_token[1..]));
    assert!(!format!("{who:?}").contains(new.csrf_token.as_str()));
    for bad in ["", "cds_", "cds_nope", "cdt_x", &"cds_a".repeat(40)] {
        assert_eq!(
            d.authenticate_session(bad, t1).unwrap_err(),
            AuthError::SessionInvalid,
            "{bad}"
        );
    }

    // Neither the id nor the CSRF token is stored in clear; one entry, under a hash.
    let stored = db.sessions();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.len(), 64);
    for secret in [
        new.id.as_str(),
        &new.id[4..],
        new.csrf_token.as_str(),
        "ann",
    ] {
        assert!(
            !stored[0]
                .2
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{secret} is stored in clear"
        );
    }

    // Activity is written at most once a minute: many requests, one write.
    let version = |db: &Db| db.sessions()[0].1;
    assert_eq!(version(&db), 1);
    for i in 2..50 {
        d.authenticate_session(&new.id, t1 + i * SEC).unwrap();
        other.authenticate_session(&new.id, t1 + i * SEC).unwrap();
    }
    assert_eq!(version(&db), 1, "no write within the first minute");
    d.authenticate_session(&new.id, t1 + SESSION_REFRESH_US)
        .unwrap();
    assert_eq!(version(&db), 2, "one write after a minute");
    d.authenticate_session(&new.id, t1 + SESSION_REFRESH_US + 30 * SEC)
        .unwrap();
    assert_eq!(version(&db), 2);

    // Idle timeout: 14 minutes apart is fine, 15 minutes after the last written activity
    // is not, in this process and in another.
    let mut t = t1 + SESSION_REFRESH_US;
    for _ in 0..3 {
        t += 14 * MIN;
        let who = d.authenticate_session(&new.id, t).unwrap();
        assert_eq!(who.idle_expires_at, t + SESSION_IDLE_US);
    }
    assert_eq!(
        other
            .authenticate_session(&new.id, t + SESSION_IDLE_US)
            .unwrap_err(),
        AuthError::SessionExpired
    );
    assert_eq!(
        d.authenticate_session(&new.id, t + SESSION_IDLE_US)
            .unwrap_err(),
        AuthError::SessionExpired
    );
    assert_eq!(
        AuthError::SessionExpired.to_string(),
        "session expired: sign in again"
    );

    // Absolute timeout: a request every ten minutes keeps a session only for 8 hours.
    let t2 = t1 + 2 * MIN;
    let busy = d.start_session("ann", Purpose::DirectCare, t2).unwrap();
    let mut t = t2;
    while t + 10 * MIN < t2 + SESSION_ABSOLUTE_US {
        t += 10 * MIN;
        d.authenticate_session(&busy.id, t).unwrap();
    }
    assert_eq!(
        d.authenticate_session(&busy.id, t2 + SESSION_ABSOLUTE_US)
            .unwrap_err(),
        AuthError::SessionExpired
    );

    // Logout ends it at once, here; in another process at its next directory read.
    let a = d.start_session("ann", Purpose::DirectCare, t2).unwrap();
    d.authenticate_session(&a.id, t2 + SEC).unwrap();
    other.authenticate_session(&a.id, t2 + SEC).unwrap();
    assert!(d.end_session(&a.id).unwrap());
    assert!(!d.end_session(&a.id).unwrap());
    assert_eq!(
        d.authenticate_session(&a.id, t2 + 2 * SEC).unwrap_err(),
        AuthError::SessionInvalid
    );
    assert_eq!(
        other
            .authenticate_session(&a.id, t2 + SEC + AUTH_CACHE_TTL_US)
            .unwrap_err(),
        AuthError::SessionInvalid
    );

    // Disabling the user, through another process: trusted from the cache for at most
    // the cache's lifetime, then refused; and not restored by re-enabling.
    let b = d.start_session("ann", Purpose::DirectCare, t2).unwrap();
    let t3 = t2 + SEC;
    d.authenticate_session(&b.id, t3).unwrap();
    other.set_disabled("ann", true).unwrap();
    d.authenticate_session(&b.id, t3 + AUTH_CACHE_TTL_US / 2)
        .unwrap();
    assert_eq!(
        d.authenticate_session(&b.id, t3 + AUTH_CACHE_TTL_US)
            .unwrap_err(),
        AuthError::Disabled
    );
    const { assert!(AUTH_CACHE_TTL_US <= 60 * SEC) };
    other.set_disabled("ann", false).unwrap();
    assert_eq!(
        d.authenticate_session(&b.id, t3 + 2 * AUTH_CACHE_TTL_US)
            .unwrap_err(),
        AuthError::SessionInvalid
    );

    // Through this process, disabling is immediate.
    let c = d.start_session("ann", Purpose::DirectCare, t3).unwrap();
    d.authenticate_session(&c.id, t3 + SEC).unwrap();
    d.set_disabled("ann", true).unwrap();
    assert_eq!(
        d.authenticate_session(&c.id, t3 + 2 * SEC).unwrap_err(),
        AuthError::Disabled
    );
    assert!(matches!(
        d.start_session("ann", Purpose::DirectCare, t3),
        Err(AccessError::UserDisabled(_))
    ));
    d.set_disabled("ann", false).unwrap();

    // A reset authenticator ends the sessions.
    let e = d.start_session("ann", Purpose::Research, t3).unwrap();
    assert_eq!(
        d.authenticate_session(&e.id, t3 + SEC)
            .unwrap()
            .auth
            .purpose,
        Purpose::Research
    );
    d.reset_mfa("ann").unwrap();
    assert_eq!(
        d.authenticate_session(&e.id, t3 + 2 * SEC).unwrap_err(),
        AuthError::SessionInvalid
    );

    // System clients have no browser session.
    d.add_user(
        "bot",
        &OdsCode::parse("A81001").unwrap(),
        Role::System,
        None,
    )
    .unwrap();
    assert!(matches!(
        d.start_session("bot", Purpose::DirectCare, t3),
        Err(AccessError::Policy(_))
    ));
}

#[test]
fn sessions_sqlite() {
    sessions_end_on_timeouts_and_revocation(Db::Sqlite(tempfile::tempdir().unwrap()));
}

#[test]
fn sessions_postgres() {
    let Some(s) = PgSchema::create() else { return };
    sessions_end_on_timeouts_and_revocation(Db::Postgres(s));
}

#[test]
fn a_password_change_ends_sessions_and_signed_in_tokens_but_not_issued_ones() {
    let db = Db::Sqlite(tempfile::tempdir().unwrap());
    let (d, _) = directories(&db);
    let t0 = caldicott_vault::now_micros();
    let (password, totp) = enrolled(&d, "ann", t0);
    let throttle = signin::new_throttle();
    let s = SignIn::new(&d, &throttle);
    let t1 = t0 + MIN;
    let session = d.start_session("ann", Purpose::DirectCare, t1).unwrap();
    let signed_in = s
        .sign_in(
            "ann",
            &password,
            &totp.code_at(secs(t1)),
            Purpose::DirectCare,
            ip(),
            t1,
        )
        .unwrap();
    let issued = d
        .issue_token(
            "ann",
            &"user/*.read".parse().unwrap(),
            Purpose::DirectCare,
            3600,
        )
        .unwrap();
    let now = caldicott_vault::now_micros();
    d.authenticate(&signed_in, now).unwrap();
    d.authenticate_session(&session.id, t1 + SEC).unwrap();
    s.change_password("ann", &password, "a different long passphrase 8", ip(), t1)
        .unwrap();
    assert_eq!(
        d.authenticate_session(&session.id, t1 + 2 * SEC)
            .unwrap_err(),
        AuthError::SessionInvalid
    );
    assert_eq!(
        d.authenticate(&signed_in, now).unwrap_err(),
        AuthError::Invalid
    );
    assert!(d.authenticate(&issued, now).is_ok());
}

#[test]
fn ended_sessions_are_purged_after_a_day() {
    let db = Db::Sqlite(tempfile::tempdir().unwrap());
    let (d, _) = directories(&db);
    let t0 = caldicott_vault::now_micros();
    enrolled(&d, "ann", t0);
    let old = d.start_session("ann", Purpose::DirectCare, t0).unwrap();
    let t1 = t0 + SESSION_IDLE_US + 25 * 60 * MIN;
    let new = d.start_session("ann", Purpose::DirectCare, t1).unwrap();
    assert_eq!(db.sessions().len(), 1, "the old one was purged at sign-in");
    assert_eq!(
        d.authenticate_session(&old.id, t1).unwrap_err(),
        AuthError::SessionInvalid
    );
    d.authenticate_session(&new.id, t1).unwrap();
    assert_eq!(d.purge_sessions(t1).unwrap(), 0);
}

#[test]
fn client_credentials_are_for_systems_with_system_scopes() {
    let db = Db::Sqlite(tempfile::tempdir().unwrap());
    let (d, other) = directories(&db);
    let org = OdsCode::parse("A81001").unwrap();
    let (bot, secret) = d.add_user("bot", &org, Role::System, None).unwrap();
    assert!(bot.must_change_password);
    let t0 = caldicott_vault::now_micros();
    let (password, _) = enrolled(&d, "ann", t0);
    let throttle = signin::new_throttle();
    let s = SignIn::new(&d, &throttle);
    let read = "system/*.read".parse().unwrap();

    // The generated secret is used as it is: no change first, no MFA.
    let (user, token) = s
        .client_credentials("bot", &secret, &read, Purpose::DirectCare, ip(), t0)
        .unwrap();
    assert_eq!(user.name, "bot");
    assert!(token.starts_with("cdt_"));
    let now = caldicott_vault::now_micros();
    let who = d.authenticate(&token, now).unwrap();
    assert_eq!(
        (who.role, who.scopes.to_string()),
        (Role::System, "system/*.read".to_owned())
    );
    assert!(who.expires_at <= now + signin::CLIENT_TOKEN_TTL_SECS as i64 * SEC);

    // A wrong secret or an unknown client is the same refusal.
    for (id, sec) in [("bot", "wrong"), ("nobody", secret.as_str())] {
        assert_eq!(
            s.client_credentials(id, sec, &read, Purpose::DirectCare, ip(), t0)
                .unwrap_err(),
            SignInError::Credentials
        );
    }
    // A person: refused as not a client, but only with their right password.
    assert_eq!(
        s.client_credentials("ann", "wrong", &read, Purpose::DirectCare, ip(), t0)
            .unwrap_err(),
        SignInError::Credentials
    );
    assert_eq!(
        s.client_credentials("ann", &password, &read, Purpose::DirectCare, ip(), t0)
            .unwrap_err(),
        SignInError::NotAClient
    );
    // user/ scopes are a person's.
    assert!(matches!(
        s.client_credentials(
            "bot",
            &secret,
            &"user/*.read".parse().unwrap(),
            Purpose::DirectCare,
            ip(),
            t0
        ),
        Err(SignInError::Rejected(_))
    ));
    // A system does not sign in as a person, nor enrol an authenticator.
    assert_eq!(
        s.sign_in("bot", &secret, "000000", Purpose::DirectCare, ip(), t0)
            .unwrap_err(),
        SignInError::Credentials
    );
    assert_eq!(
        s.enrol("bot", &secret, ip(), t0).err(),
        Some(SignInError::Credentials)
    );

    // Rotating the secret ends the tokens got with the old one.
    let rotated = "a brand new machine secret 0123456789";
    s.change_password("bot", &secret, rotated, ip(), t0)
        .unwrap();
    assert_eq!(d.authenticate(&token, now).unwrap_err(), AuthError::Invalid);
    assert_eq!(
        s.client_credentials("bot", &secret, &read, Purpose::DirectCare, ip(), t0)
            .unwrap_err(),
        SignInError::Credentials
    );
    let (_, token) = s
        .client_credentials("bot", rotated, &read, Purpose::Research, ip(), t0)
        .unwrap();
    assert_eq!(
        other.authenticate(&token, now).unwrap().purpose,
        Purpose::Research
    );

    // Disabled: refused, and its tokens stop.
    other.set_disabled("bot", true).unwrap();
    assert_eq!(
        s.client_credentials("bot", rotated, &read, Purpose::DirectCare, ip(), t0)
            .unwrap_err(),
        SignInError::Disabled
    );
    assert_eq!(
        other.authenticate(&token, now + SEC).unwrap_err(),
        AuthError::Disabled
    );

    // Throttled like people: five wrong secrets, then even the right one waits.
    other.set_disabled("bot", false).unwrap();
    for i in 0..5 {
        assert_eq!(
            s.client_credentials("bot", "nope", &read, Purpose::DirectCare, ip(), t0 + i)
                .unwrap_err(),
            SignInError::Credentials
        );
    }
    assert!(matches!(
        s.client_credentials("bot", rotated, &read, Purpose::DirectCare, ip(), t0 + 10),
        Err(SignInError::Throttled(_))
    ));
}
