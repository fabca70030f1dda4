//! Signing in: a person's password, then their authenticator code, gives a bearer token
//! ([`SignIn::sign_in`]) or a browser session ([`SignIn::start_session`]); a system
//! client's id and secret give a bearer token ([`SignIn::client_credentials`], the OAuth 2.0
//! client credentials grant).
//!
//! TOTP multi-factor authentication is mandatory for every person: a user who has not
//! enrolled can only enrol, and a user holding the one-time password from `user add` can
//! only change it. `system` clients have no authenticator and no browser session; their
//! secret is their password. The random one-time password `user add --role system` prints
//! (20 characters, about 112 bits) is a proper client secret and is used as it is: the
//! change-at-first-sign-in rule, which exists so that an administrator never knows a
//! person's password, is not applied to systems, whose secret an administrator hands over
//! by nature. A system may rotate its secret with [`SignIn::change_password`] (the
//! password policy applies), which ends the tokens it got with the old one.
//!
//! Every password check goes through the login throttle (per account and per client
//! address), so guessing is slow; failures say as little as possible. Changing a password
//! (like an administrator disabling the user or resetting their authenticator) moves the
//! user's credentials epoch on, which ends their sessions and signed-in tokens.

use std::net::IpAddr;

use caldicott_identity::{
    DEFAULT_ISSUER, DEFAULT_RECOVERY_CODES, LoginThrottle, RecoveryCodes, StoredRecoveryCodes,
    ThrottleConfig, Totp, TotpSecret,
};
use caldicott_policy::{Purpose, Role, Scopes};
use zeroize::Zeroizing;

use crate::directory::{Directory, User};
use crate::error::AccessError;
use crate::session::NewSession;

/// How long a token from sign-in lasts: 8 hours (a working shift).
pub const SIGN_IN_TTL_SECS: u64 = 8 * 3600;
/// How long a token from the client credentials grant lasts: 15 minutes. Short, as SMART
/// Backend Services recommends; the system asks again when it runs out.
pub const CLIENT_TOKEN_TTL_SECS: u64 = 15 * 60;
/// The scopes of a token from sign-in (and of a session).
pub const SIGN_IN_SCOPES: &str = "user/*.read user/*.write";

/// Why a sign-in step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Unknown user, wrong password or wrong code: deliberately the same.
    #[error("the user name, password or authenticator code is not right")]
    Credentials,
    #[error("too many failed attempts; try again in {0} seconds")]
    Throttled(u64),
    #[error("the account is disabled")]
    Disabled,
    #[error("change the one-time password first (POST /auth/password)")]
    MustChangePassword,
    #[error("enrol an authenticator first (POST /auth/mfa/enrol, then /auth/mfa/confirm)")]
    MustEnrol,
    /// A person's credentials offered to the client credentials grant.
    #[error(
        "the client credentials grant is for system clients; people sign in with /auth/login or /auth/session"
    )]
    NotAClient,
    #[error("{0}")]
    Rejected(String),
    #[error("the directory is unavailable")]
    Unavailable,
}

impl From<AccessError> for SignInError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::UnknownUser(_) => SignInError::Credentials,
            AccessError::UserDisabled(_) => SignInError::Disabled,
            AccessError::Policy(m) => SignInError::Rejected(m),
            _ => SignInError::Unavailable,
        }
    }
}

/// What enrolment gives the user to set up their authenticator, shown once.
pub struct Enrolment {
    pub secret_base32: Zeroizing<String>,
    pub uri: Zeroizing<String>,
    pub qr_svg: Zeroizing<String>,
    pub recovery_codes: Vec<String>,
}

/// The sign-in service: the directory plus the throttle (kept in memory per process).
pub struct SignIn<'a> {
    directory: &'a Directory,
    throttle: &'a std::sync::Mutex<LoginThrottle>,
}

/// A throttle with the default limits (5 failures per account, 20 per address).
pub fn new_throttle() -> std::sync::Mutex<LoginThrottle> {
    std::sync::Mutex::new(LoginThrottle::new(ThrottleConfig::default()))
}

impl<'a> SignIn<'a> {
    pub fn new(directory: &'a Directory, throttle: &'a std::sync::Mutex<LoginThrottle>) -> Self {
        SignIn {
            directory,
            throttle,
        }
    }

    /// Checks a person's password through the throttle; the user on success.
    fn password(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<User, SignInError> {
        let user = self.check_password(name, password, client, now_us)?;
        if user.role == Role::System.to_string() {
            // Machine clients do not sign in as people.
            return Err(SignInError::Credentials);
        }
        Ok(user)
    }

    /// Checks a person's password through the throttle, and nothing else: the first step
    /// of a sign-in that asks for the authenticator code on a second page (the web
    /// console). The user on success, whose `must_change_password` and `totp_secret` say
    /// which step comes next. `System` clients are refused as wrong credentials.
    pub fn check_person(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<User, SignInError> {
        self.password(name, password, client, now_us)
    }

    /// Checks a password (a person's or a system's secret) through the throttle; the
    /// enabled user on success.
    fn check_password(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<User, SignInError> {
        let now = u64::try_from(now_us).unwrap_or(0);
        self.throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin_attempt(name, client, now)
            .map_err(|t| SignInError::Throttled(t.retry_after_secs()))?;
        let user = self
            .directory
            .user(name)
            .map_err(|_| SignInError::Unavailable)?;
        // Verify against a real hash even for an unknown user, so timing says nothing.
        let phc = user
            .as_ref()
            .map(|u| u.password_phc.clone())
            .unwrap_or_else(|| DUMMY_PHC.to_owned());
        let ok = caldicott_identity::verify_password(password, &phc).unwrap_or(false);
        let Some(user) = user.filter(|_| ok) else {
            return Err(SignInError::Credentials);
        };
        self.throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_success(name, client, now);
        if user.disabled {
            return Err(SignInError::Disabled);
        }
        Ok(user)
    }

    /// Replaces the password (the one-time one, or any; a system's secret too), after
    /// checking the old one and the password policy. Ends the user's sessions and
    /// signed-in tokens.
    pub fn change_password(
        &self,
        name: &str,
        old: &str,
        new: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<(), SignInError> {
        self.check_password(name, old, client, now_us)?;
        caldicott_identity::check_password(new, name)
            .map_err(|e| SignInError::Rejected(e.to_string()))?;
        let phc = caldicott_identity::hash_password(new).map_err(|_| SignInError::Unavailable)?;
        self.directory.update_user_with(name, |u| {
            u.password_phc = phc.clone();
            u.must_change_password = false;
            u.credentials_epoch = u.credentials_epoch.wrapping_add(1);
        })?;
        self.directory.forget_verified();
        Ok(())
    }

    /// Starts enrolment: a new secret (pending until confirmed) and recovery codes.
    pub fn enrol(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<Enrolment, SignInError> {
        let user = self.password(name, password, client, now_us)?;
        if user.must_change_password {
            return Err(SignInError::MustChangePassword);
        }
        if user.totp_secret.is_some() {
            return Err(SignInError::Rejected(
                "already enrolled; an administrator can reset it (caldicott user reset-mfa)".into(),
            ));
        }
        let secret = TotpSecret::generate().map_err(|_| SignInError::Unavailable)?;
        let base32 = secret.to_base32();
        let totp = Totp::new(secret);
        let uri = totp.provisioning_uri(DEFAULT_ISSUER, name);
        let qr_svg = totp
            .provisioning_qr_svg(DEFAULT_ISSUER, name)
            .map_err(|_| SignInError::Unavailable)?;
        let codes = RecoveryCodes::generate(DEFAULT_RECOVERY_CODES)
            .map_err(|_| SignInError::Unavailable)?;
        let stored = codes.to_stored().to_strings();
        let pending = base32.to_string();
        self.directory.update_user_with(name, |u| {
            u.totp_pending = Some(pending.clone());
            u.recovery_codes = stored.clone();
        })?;
        Ok(Enrolment {
            secret_base32: base32,
            uri,
            qr_svg,
            recovery_codes: codes.codes().map(str::to_owned).collect(),
        })
    }

    /// Confirms enrolment with a code from the new authenticator.
    pub fn confirm(
        &self,
        name: &str,
        password: &str,
        code: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<(), SignInError> {
        let user = self.password(name, password, client, now_us)?;
        let Some(pending) = user.totp_pending.as_deref() else {
            return Err(SignInError::Rejected(
                "start with POST /auth/mfa/enrol".into(),
            ));
        };
        let step = verify_code(pending, code, now_us, None)?;
        let secret = pending.to_owned();
        self.directory.update_user_with(name, |u| {
            u.totp_secret = Some(secret.clone());
            u.totp_pending = None;
            u.totp_last_step = Some(step);
        })?;
        Ok(())
    }

    /// Signs in with password and authenticator code (or a recovery code); returns a
    /// token for `purpose`, valid for [`SIGN_IN_TTL_SECS`].
    pub fn sign_in(
        &self,
        name: &str,
        password: &str,
        code: &str,
        purpose: Purpose,
        client: IpAddr,
        now_us: i64,
    ) -> Result<Zeroizing<String>, SignInError> {
        self.sign_in_user(name, password, code, purpose, client, now_us)
            .map(|(_, token)| token)
    }

    /// [`SignIn::sign_in`], returning the user too.
    pub fn sign_in_user(
        &self,
        name: &str,
        password: &str,
        code: &str,
        purpose: Purpose,
        client: IpAddr,
        now_us: i64,
    ) -> Result<(User, Zeroizing<String>), SignInError> {
        self.verify(name, password, code, client, now_us)?;
        let scopes: Scopes = SIGN_IN_SCOPES
            .parse()
            .map_err(|_| SignInError::Unavailable)?;
        let (token, _) =
            self.directory
                .issue_token_as(name, &scopes, purpose, SIGN_IN_TTL_SECS, true)?;
        let user = self
            .directory
            .update_user_with(name, |u| u.last_sign_in_at = Some(now_us))?;
        Ok((user, token))
    }

    /// Signs in with password and authenticator code (or a recovery code) for a browser
    /// session for `purpose` (see [`crate::session`]).
    pub fn start_session(
        &self,
        name: &str,
        password: &str,
        code: &str,
        purpose: Purpose,
        client: IpAddr,
        now_us: i64,
    ) -> Result<NewSession, SignInError> {
        self.verify(name, password, code, client, now_us)?;
        Ok(self.directory.start_session(name, purpose, now_us)?)
    }

    /// The OAuth 2.0 client credentials grant (RFC 6749 §4.4): a `system` client's id (its
    /// user name) and secret (its password) give a token with `scopes` (which must be
    /// `system/` scopes) for `purpose`, valid for [`CLIENT_TOKEN_TTL_SECS`]. A person's
    /// credentials are refused with [`SignInError::NotAClient`], but only once they are
    /// right, so that the answer never tells whether an account exists.
    pub fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        scopes: &Scopes,
        purpose: Purpose,
        client: IpAddr,
        now_us: i64,
    ) -> Result<(User, Zeroizing<String>), SignInError> {
        self.authenticate_client(client_id, secret, client, now_us)?;
        let (token, user) = self.directory.issue_token_as(
            client_id,
            scopes,
            purpose,
            CLIENT_TOKEN_TTL_SECS,
            true,
        )?;
        Ok((user, token))
    }

    /// Authenticates a system client by its id and secret (through the throttle); the
    /// client on success. A person's right credentials give [`SignInError::NotAClient`].
    pub fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<User, SignInError> {
        let user = self.check_password(client_id, secret, client, now_us)?;
        if user.role != Role::System.to_string() {
            return Err(SignInError::NotAClient);
        }
        Ok(user)
    }

    /// Checks a person's password and authenticator code (or a recovery code, used up);
    /// the user on success.
    pub fn verify(
        &self,
        name: &str,
        password: &str,
        code: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<User, SignInError> {
        let user = self.password(name, password, client, now_us)?;
        if user.must_change_password {
            return Err(SignInError::MustChangePassword);
        }
        let Some(secret) = user.totp_secret.as_deref() else {
            return Err(SignInError::MustEnrol);
        };
        match verify_code(secret, code, now_us, user.totp_last_step) {
            Ok(step) => {
                self.directory
                    .update_user_with(name, |u| u.totp_last_step = Some(step))?;
            }
            Err(e) => {
                // A recovery code works once instead of the authenticator.
                let mut stored = StoredRecoveryCodes::from_strings(&user.recovery_codes)
                    .map_err(|_| SignInError::Unavailable)?;
                if !stored.verify_and_consume(code) {
                    return Err(e);
                }
                let left = stored.to_strings();
                self.directory
                    .update_user_with(name, |u| u.recovery_codes = left.clone())?;
            }
        }
        Ok(user)
    }
}

fn verify_code(
    secret_base32: &str,
    code: &str,
    now_us: i64,
    last_step: Option<u64>,
) -> Result<u64, SignInError> {
    let secret = TotpSecret::from_base32(secret_base32).map_err(|_| SignInError::Unavailable)?;
    Totp::new(secret)
        .verify(
            code,
            u64::try_from(now_us / 1_000_000).unwrap_or(0),
            last_step,
        )
        .map_err(|_| SignInError::Credentials)
}

/// An Argon2id hash of a random string, verified against when the user does not exist.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$hM8O4PbQ8R5l2PRx8w2mH3+T6dXl7x4iYxdzB5H7V0A";
