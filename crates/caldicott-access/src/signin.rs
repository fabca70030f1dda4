//! Signing in: a person's password, then their authenticator code, gives a bearer token.
//!
//! TOTP multi-factor authentication is mandatory for every person (not for `system`
//! clients, which are issued tokens by an administrator): a user who has not enrolled can
//! only enrol, and a user holding the one-time password from `user add` can only change it.
//! Every password check goes through the login throttle (per account and per client
//! address), so guessing is slow; failures say as little as possible.

use std::net::IpAddr;

use caldicott_identity::{
    DEFAULT_ISSUER, DEFAULT_RECOVERY_CODES, LoginThrottle, RecoveryCodes, StoredRecoveryCodes,
    ThrottleConfig, Totp, TotpSecret,
};
use caldicott_policy::{Purpose, Role, Scopes};
use zeroize::Zeroizing;

use crate::directory::{Directory, User};
use crate::error::AccessError;

/// How long a token from sign-in lasts: 8 hours (a working shift).
pub const SIGN_IN_TTL_SECS: u64 = 8 * 3600;

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

    /// Checks a password through the throttle; the user on success.
    fn password(
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
        if user.role == Role::System.to_string() {
            // Machine clients do not sign in; they are issued tokens.
            return Err(SignInError::Credentials);
        }
        Ok(user)
    }

    /// Replaces the password (the one-time one, or any), after checking the old one and
    /// the password policy.
    pub fn change_password(
        &self,
        name: &str,
        old: &str,
        new: &str,
        client: IpAddr,
        now_us: i64,
    ) -> Result<(), SignInError> {
        self.password(name, old, client, now_us)?;
        caldicott_identity::check_password(new, name)
            .map_err(|e| SignInError::Rejected(e.to_string()))?;
        let phc = caldicott_identity::hash_password(new).map_err(|_| SignInError::Unavailable)?;
        self.directory.update_user_with(name, |u| {
            u.password_phc = phc.clone();
            u.must_change_password = false;
        })?;
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
        let scopes: Scopes = "user/*.read user/*.write"
            .parse()
            .map_err(|_| SignInError::Unavailable)?;
        Ok(self
            .directory
            .issue_token(name, &scopes, purpose, SIGN_IN_TTL_SECS)?)
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
