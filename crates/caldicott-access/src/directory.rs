//! Organisations, users and tokens as sealed directory entries.

use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use caldicott_core::{OdsCode, VersionId};
use caldicott_policy::{Purpose, Role, Scopes};
use caldicott_vault::Vault;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{AccessError, AuthError};

const ORG: &str = "organisation";
const USER: &str = "user";
const TOKEN: &str = "token";
pub(crate) const SESSION: &str = "session";

/// Every token starts with this, so that a leaked one is recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "cdt_";
/// The longest a token may live: 90 days.
pub const MAX_TOKEN_TTL_SECS: u64 = 90 * 24 * 3600;

/// An organisation of the deployment, by ODS code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    pub ods: String,
    pub name: String,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

/// A user account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// The ODS code of the user's organisation.
    pub org: String,
    /// The role's command-line name (`gp`, `care-worker`, ...).
    pub role: String,
    /// Argon2id PHC string of the password.
    pub password_phc: String,
    /// Whether the one-time password from `user add` must be changed at first sign-in.
    pub must_change_password: bool,
    pub disabled: bool,
    /// The `Practitioner/<id>` this user is in the FHIR record (for care-team
    /// relationships), if any.
    #[serde(default)]
    pub practitioner: Option<String>,
    /// The base32 TOTP secret once enrolled (sealed with the entry).
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// A secret being enrolled, until a code from it is confirmed.
    #[serde(default)]
    pub totp_pending: Option<String>,
    /// The last TOTP time step accepted (a code is never accepted twice).
    #[serde(default)]
    pub totp_last_step: Option<u64>,
    /// Hashes of the unused recovery codes.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
    pub created_at: i64,
    /// Moves on whenever the user's credentials change (password, MFA reset) or the
    /// account is disabled. Browser sessions, and tokens from sign-in or the client
    /// credentials grant, remember the epoch they were made in and stop working when it
    /// moves on: a changed password or a reset authenticator ends every session.
    #[serde(default)]
    pub credentials_epoch: u64,
    /// When the person last signed in (a browser session or a token from sign-in), in
    /// microseconds since the epoch: dormant accounts are found by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in_at: Option<i64>,
}

impl std::fmt::Debug for User {
    /// Leaves out the password hash and the TOTP secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("mfa_enrolled", &self.totp_secret.is_some())
            .finish()
    }
}

impl User {
    /// The user's role, parsed.
    pub fn role(&self) -> Result<Role, AccessError> {
        self.role
            .parse()
            .map_err(|_| AccessError::Damaged(format!("user {} has an unknown role", self.name)))
    }
}

/// An issued token, as stored (under the SHA-256 of the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user: String,
    /// SMART scopes, space-separated.
    pub scopes: String,
    /// The purpose of use's command-line name.
    pub purpose: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The user's [`User::credentials_epoch`] when the token was issued by sign-in or the
    /// client credentials grant: the token stops working when the epoch moves on. `None`
    /// for tokens an administrator issued (`caldicott token issue`), which live until they
    /// expire or are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// A request's verified identity: the user as they are now, and what the token grants.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub role: Role,
    pub scopes: Scopes,
    pub purpose: Purpose,
    pub expires_at: i64,
    /// The user's break-glass declaration in force, if any.
    pub break_glass: Option<caldicott_policy::BreakGlass>,
}

/// How long a verified token is trusted without reading the directory again: 10 s. A
/// user disabled or a token revoked through this process stops working at once; through
/// another process (the command line, another server) within this time.
pub const AUTH_CACHE_TTL_US: i64 = 10_000_000;
const AUTH_CACHE_MAX: usize = 100_000;

/// The directory over one vault.
pub struct Directory {
    pub(crate) vault: Arc<Vault>,
    /// Verified tokens by the hash of the token, with when they were verified.
    verified: std::sync::Mutex<std::collections::HashMap<String, (Authenticated, i64)>>,
    /// Verified browser sessions by the hash of the session id.
    pub(crate) sessions:
        std::sync::Mutex<std::collections::HashMap<String, crate::session::CachedSession>>,
    pub(crate) session_policy: crate::session::SessionPolicy,
    /// When expired sessions were last purged (microseconds since the epoch).
    pub(crate) last_purge: std::sync::atomic::AtomicI64,
}

impl Directory {
    pub fn new(vault: Arc<Vault>) -> Self {
        Directory {
            vault,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            sessions: std::sync::Mutex::new(std::collections::HashMap::new()),
            session_policy: crate::session::SessionPolicy::default(),
            last_purge: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// The same directory with other session timeouts (tests, or a deployment that
    /// wants shorter ones).
    #[must_use]
    pub fn with_session_policy(mut self, policy: crate::session::SessionPolicy) -> Self {
        self.session_policy = policy;
        self
    }

    /// The session timeouts in force.
    pub fn session_policy(&self) -> crate::session::SessionPolicy {
        self.session_policy
    }

    /// Forgets every verified token and session, so that the next request of each reads
    /// the directory again.
    pub(crate) fn forget_verified(&self) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn get_entry<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<Option<(VersionId, T)>, AccessError> {
        let Some(e) = self.vault.dir_get(kind, key)? else {
            return Ok(None);
        };
        let v = serde_json::from_slice(&e.value)
            .map_err(|_| AccessError::Damaged(format!("{kind} {key}")))?;
        Ok(Some((e.version, v)))
    }

    pub(crate) fn put_entry<T: Serialize>(
        &self,
        kind: &str,
        key: &str,
        value: &T,
        expect: Option<VersionId>,
    ) -> Result<(), AccessError> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(value).map_err(|_| AccessError::Damaged(key.to_owned()))?,
        );
        self.vault.dir_put(kind, key, &bytes, expect)?;
        Ok(())
    }

    pub(crate) fn list_entries<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
    ) -> Result<Vec<T>, AccessError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.vault.dir_list(kind, after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for e in page {
                out.push(
                    serde_json::from_slice(&e.value)
                        .map_err(|_| AccessError::Damaged(format!("{kind} {}", e.key)))?,
                );
            }
        }
        Ok(out)
    }

    /// Adds an organisation (and makes its data key).
    pub fn add_org(&self, ods: &OdsCode, name: &str) -> Result<Organisation, AccessError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(AccessError::BadOrganisationName);
        }
        let org = Organisation {
            ods: ods.to_string(),
            name: name.to_owned(),
            created_at: caldicott_vault::now_micros(),
        };
        match self.put_entry(ORG, ods.as_str(), &org, None) {
            Err(AccessError::Conflict) => Err(AccessError::OrganisationExists(ods.to_string())),
            other => other,
        }?;
        self.vault.ensure_org(ods)?;
        Ok(org)
    }

    /// One organisation.
    pub fn org(&self, ods: &str) -> Result<Option<Organisation>, AccessError> {
        Ok(self.get_entry(ORG, ods)?.map(|(_, o)| o))
    }

    /// Every organisation, by ODS code.
    pub fn orgs(&self) -> Result<Vec<Organisation>, AccessError> {
        self.list_entries(ORG)
    }

    /// Adds a user to a known organisation; returns the user and a one-time password that
    /// must be changed at first sign-in (shown once, never stored in clear).
    pub fn add_user(
        &self,
        name: &str,
        org: &OdsCode,
        role: Role,
        practitioner: Option<String>,
    ) -> Result<(User, Zeroizing<String>), AccessError> {
        check_user_name(name)?;
        if self.org(org.as_str())?.is_none() {
            return Err(AccessError::UnknownOrganisation(org.to_string()));
        }
        let password = caldicott_identity::generate_password()?;
        let user = User {
            name: name.to_owned(),
            org: org.to_string(),
            role: role.to_string(),
            password_phc: caldicott_identity::hash_password(&password)?,
            must_change_password: true,
            disabled: false,
            practitioner,
            totp_secret: None,
            totp_pending: None,
            totp_last_step: None,
            recovery_codes: Vec::new(),
            created_at: caldicott_vault::now_micros(),
            credentials_epoch: 0,
            last_sign_in_at: None,
        };
        match self.put_entry(USER, name, &user, None) {
            Err(AccessError::Conflict) => Err(AccessError::UserExists(name.to_owned())),
            other => other,
        }?;
        Ok((user, password))
    }

    /// One user.
    pub fn user(&self, name: &str) -> Result<Option<User>, AccessError> {
        Ok(self.get_entry(USER, name)?.map(|(_, u)| u))
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, AccessError> {
        self.list_entries(USER)
    }

    /// Changes a user with `f`, retrying if someone else changed the entry meanwhile.
    pub(crate) fn update_user_with(
        &self,
        name: &str,
        f: impl Fn(&mut User),
    ) -> Result<User, AccessError> {
        for _ in 0..8 {
            let Some((version, mut user)) = self.get_entry::<User>(USER, name)? else {
                return Err(AccessError::UnknownUser(name.to_owned()));
            };
            f(&mut user);
            match self.put_entry(USER, name, &user, Some(version)) {
                Ok(()) => return Ok(user),
                Err(AccessError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(AccessError::Conflict)
    }

    /// Disables or re-enables a user. A disabled user's tokens and sessions stop working
    /// at once in this process (within [`AUTH_CACHE_TTL_US`] in others): every request
    /// re-reads the user. Disabling also ends their sessions and signed-in tokens for good
    /// (it moves the [`User::credentials_epoch`] on); re-enabling restores only the tokens
    /// an administrator issued.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<User, AccessError> {
        let u = self.update_user_with(name, |u| {
            if disabled && !u.disabled {
                u.credentials_epoch = u.credentials_epoch.wrapping_add(1);
            }
            u.disabled = disabled;
        })?;
        self.forget_verified();
        Ok(u)
    }

    /// Forgets a user's TOTP enrolment: they enrol again at next sign-in. Their sessions
    /// and signed-in tokens end.
    pub fn reset_mfa(&self, name: &str) -> Result<User, AccessError> {
        let u = self.update_user_with(name, |u| {
            u.totp_secret = None;
            u.totp_pending = None;
            u.totp_last_step = None;
            u.recovery_codes.clear();
            u.credentials_epoch = u.credentials_epoch.wrapping_add(1);
        })?;
        self.forget_verified();
        Ok(u)
    }

    /// Issues a token for a user with the given scopes and purpose of use, valid for
    /// `ttl_secs`. Returns the token, shown once; only its hash is stored.
    pub fn issue_token(
        &self,
        user: &str,
        scopes: &Scopes,
        purpose: Purpose,
        ttl_secs: u64,
    ) -> Result<Zeroizing<String>, AccessError> {
        self.issue_token_as(user, scopes, purpose, ttl_secs, false)
            .map(|(token, _)| token)
    }

    /// [`Directory::issue_token`], bound to the user's current credentials epoch when
    /// `bound` (tokens from sign-in and the client credentials grant). Returns the user
    /// as read.
    pub(crate) fn issue_token_as(
        &self,
        user: &str,
        scopes: &Scopes,
        purpose: Purpose,
        ttl_secs: u64,
        bound: bool,
    ) -> Result<(Zeroizing<String>, User), AccessError> {
        if ttl_secs == 0 || ttl_secs > MAX_TOKEN_TTL_SECS {
            return Err(AccessError::BadTtl);
        }
        let Some(u) = self.user(user)? else {
            return Err(AccessError::UnknownUser(user.to_owned()));
        };
        if u.disabled {
            return Err(AccessError::UserDisabled(user.to_owned()));
        }
        let role = u.role()?;
        // Machine clients hold `system/` scopes, people `user/` scopes: refuse a token the
        // policy would refuse on every request anyway.
        let wants_system = scopes.iter().any(|s| s.to_string().starts_with("system/"));
        if wants_system != (role == Role::System) {
            return Err(AccessError::Policy(if role == Role::System {
                "a system client's token takes system/ scopes".into()
            } else {
                "a person's token takes user/ scopes".into()
            }));
        }
        if scopes.is_empty() {
            return Err(AccessError::Policy(
                "a token needs at least one scope".into(),
            ));
        }
        let token = random_secret(TOKEN_PREFIX)?;
        let now = caldicott_vault::now_micros();
        let record = TokenRecord {
            user: user.to_owned(),
            scopes: scopes.to_string(),
            purpose: purpose.to_string(),
            issued_at: now,
            expires_at: now.saturating_add((ttl_secs as i64).saturating_mul(1_000_000)),
            epoch: bound.then_some(u.credentials_epoch),
        };
        self.put_entry(TOKEN, &token_key(&token), &record, None)?;
        Ok((token, u))
    }

    /// Revokes a token; whether it existed.
    pub fn revoke_token(&self, token: &str) -> Result<bool, AccessError> {
        let gone = self.vault.dir_delete(TOKEN, &token_key(token))?;
        self.forget_verified();
        Ok(gone)
    }

    /// Verifies a bearer token at time `now_us`: it must be known, unexpired, and its
    /// user enabled and of a known role.
    pub fn authenticate(&self, token: &str, now_us: i64) -> Result<Authenticated, AuthError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(AuthError::Invalid);
        }
        let key = token_key(token);
        if let Some((a, at)) = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && now_us - at < AUTH_CACHE_TTL_US
            && now_us < a.expires_at
        {
            return Ok(a.clone());
        }
        let a = self.verify(&key, now_us)?;
        let mut m = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= AUTH_CACHE_MAX {
            m.clear();
        }
        m.insert(key, (a.clone(), now_us));
        Ok(a)
    }

    /// [`Directory::authenticate`] without the cache.
    fn verify(&self, key: &str, now_us: i64) -> Result<Authenticated, AuthError> {
        let record: TokenRecord = match self.get_entry(TOKEN, key) {
            Ok(Some((_, r))) => r,
            Ok(None) => return Err(AuthError::Invalid),
            Err(_) => return Err(AuthError::Unavailable),
        };
        if now_us >= record.expires_at {
            return Err(AuthError::Invalid);
        }
        let user = match self.user(&record.user) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(AuthError::Invalid),
            Err(_) => return Err(AuthError::Unavailable),
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        if record.epoch.is_some_and(|e| e != user.credentials_epoch) {
            // The password changed or the authenticator was reset since sign-in.
            return Err(AuthError::Invalid);
        }
        let role = user.role().map_err(|_| AuthError::Invalid)?;
        let scopes = record.scopes.parse().map_err(|_| AuthError::Invalid)?;
        let purpose = record.purpose.parse().map_err(|_| AuthError::Invalid)?;
        let break_glass = self
            .active_break_glass(&user.name, now_us)
            .map_err(|_| AuthError::Unavailable)?
            .map(|d| d.break_glass());
        Ok(Authenticated {
            user,
            role,
            scopes,
            purpose,
            expires_at: record.expires_at,
            break_glass,
        })
    }
}

/// The directory key of a token (or session id, or the stored form of a CSRF token): the
/// hex SHA-256 of the text. The secrets are 256-bit random values, so a plain hash is
/// enough: there is no dictionary to try.
pub(crate) fn token_key(token: &str) -> String {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random secret: `prefix` and 256 random bits, base64url without padding (so it
/// needs no escaping in a header, a cookie or JSON).
pub(crate) fn random_secret(prefix: &str) -> Result<Zeroizing<String>, AccessError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut raw[..])
        .map_err(|_| AccessError::Damaged("no randomness".into()))?;
    let mut out = Zeroizing::new(String::with_capacity(prefix.len() + 43));
    out.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&raw[..], &mut out);
    Ok(out)
}

fn check_user_name(name: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AccessError::BadUserName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(check_user_name("ann.smith").is_ok());
        assert!(check_user_name("gp-1").is_ok());
        for bad in ["", "Ann", ".x", "a b", "ann@nhs.net", &"a".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_keys_are_hashes() {
        let k = token_key("cdt_abc");
        assert_eq!(k.len(), 64);
        assert!(!k.contains("abc"));
    }
}
