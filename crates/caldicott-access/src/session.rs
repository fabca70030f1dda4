//! Browser sessions: an opaque session id for a cookie, with a CSRF token bound to it.
//!
//! A person who signs in from a browser (password and authenticator code, as for a token)
//! gets a **session**: a random 256-bit id, which the HTTP layer puts in an `HttpOnly`
//! cookie so that page scripts never see it, and a random 256-bit **CSRF token**, which the
//! page keeps and sends in a header with every request that changes something. Only the
//! SHA-256 of each is stored (the id's as the key of the sealed `session` entry, the CSRF
//! token's inside it), so a copy of the database holds no usable session.
//!
//! A session ends at the first of:
//! - **idle timeout** ([`SESSION_IDLE_US`], 15 minutes) without a request. Activity is
//!   written to the directory at most once per [`SESSION_REFRESH_US`] (a minute) rather
//!   than on every request, so a session ends between 14 and 15 minutes after its last
//!   request;
//! - **absolute timeout** ([`SESSION_ABSOLUTE_US`], 8 hours, a working shift) after
//!   sign-in, however active;
//! - **logout** ([`Directory::end_session`]);
//! - the user being **disabled**, their **password changed** or their **authenticator
//!   reset**: each moves the user's `credentials_epoch` on, and a session from an earlier
//!   epoch is refused. Through this process that is at once; through another (the command
//!   line, another server) within [`crate::AUTH_CACHE_TTL_US`] (10 s), the same cache
//!   design as tokens: a verified session is trusted that long without reading the
//!   directory again.
//!
//! Times are passed in (`now_us`, microseconds since the Unix epoch) and the timeouts are a
//! [`SessionPolicy`] of the [`Directory`], so tests need no clock and no sleeping.

use std::sync::atomic::Ordering;

use caldicott_policy::{Purpose, Role, Scopes};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::directory::{Authenticated, Directory, SESSION, random_secret, token_key};
use crate::error::{AccessError, AuthError};

/// Every session id starts with this, so that a leaked one is recognisable.
pub const SESSION_PREFIX: &str = "cds_";
/// A session unused for this long ends: 15 minutes (microseconds).
pub const SESSION_IDLE_US: i64 = 15 * 60 * 1_000_000;
/// A session ends this long after sign-in, however active: 8 hours (microseconds).
pub const SESSION_ABSOLUTE_US: i64 = 8 * 3600 * 1_000_000;
/// Activity is written to the directory at most this often: 1 minute (microseconds).
pub const SESSION_REFRESH_US: i64 = 60 * 1_000_000;
/// What a session may do: the same SMART scopes as a token from sign-in.
pub const SESSION_SCOPES: &str = "user/*.read user/*.write";

/// Ended sessions are deleted this long after they ended (until then a request with one is
/// told that it expired rather than that it is unknown): 1 day.
const PURGE_AFTER_US: i64 = 24 * 3600 * 1_000_000;
/// The purge of ended sessions runs at most this often, at a sign-in: 1 hour.
const PURGE_EVERY_US: i64 = 3600 * 1_000_000;
const CACHE_MAX: usize = 100_000;

/// The timeouts of sessions (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Idle timeout ([`SESSION_IDLE_US`]).
    pub idle_us: i64,
    /// Absolute timeout ([`SESSION_ABSOLUTE_US`]).
    pub absolute_us: i64,
    /// Least time between two writes of a session's activity ([`SESSION_REFRESH_US`]);
    /// keep it well below `idle_us`.
    pub refresh_us: i64,
    /// How long a verified session is trusted without reading the directory again
    /// ([`crate::AUTH_CACHE_TTL_US`]).
    pub recheck_us: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_us: SESSION_IDLE_US,
            absolute_us: SESSION_ABSOLUTE_US,
            refresh_us: SESSION_REFRESH_US,
            recheck_us: crate::AUTH_CACHE_TTL_US,
        }
    }
}

/// A session as stored (sealed, under the SHA-256 of its id).
#[derive(Clone, Serialize, Deserialize)]
struct SessionRecord {
    user: String,
    /// SMART scopes, space-separated.
    scopes: String,
    /// The purpose of use's command-line name.
    purpose: String,
    /// Hex SHA-256 of the CSRF token.
    csrf: String,
    /// The user's credentials epoch at sign-in.
    epoch: u64,
    started_at: i64,
    /// The last request, as written (at most once per refresh interval).
    last_seen_at: i64,
    /// The absolute end.
    expires_at: i64,
}

/// A verified session: who, what they may do, and until when.
#[derive(Clone)]
pub struct Session {
    /// The user as they are now, and what the session grants.
    pub auth: Authenticated,
    /// Sign-in time (microseconds since the epoch).
    pub started_at: i64,
    /// The absolute end (microseconds since the epoch).
    pub expires_at: i64,
    /// When the session ends if no further request comes (microseconds since the epoch).
    pub idle_expires_at: i64,
    /// Hex SHA-256 of the CSRF token.
    csrf: String,
}

impl std::fmt::Debug for Session {
    /// Leaves out the CSRF token's hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("auth", &self.auth)
            .field("started_at", &self.started_at)
            .field("expires_at", &self.expires_at)
            .field("idle_expires_at", &self.idle_expires_at)
            .finish()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time, as
    /// hashes).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        if presented.is_empty() || presented.len() > 128 {
            return false;
        }
        aws_lc_rs::constant_time::verify_slices_are_equal(
            token_key(presented).as_bytes(),
            self.csrf.as_bytes(),
        )
        .is_ok()
    }

    /// The earlier of the idle and the absolute end.
    pub fn ends_at(&self) -> i64 {
        self.expires_at.min(self.idle_expires_at)
    }
}

/// A session just started: its id (for the cookie) and CSRF token (for the page), both
/// shown once and never stored in clear.
pub struct NewSession {
    pub id: Zeroizing<String>,
    pub csrf_token: Zeroizing<String>,
    pub session: Session,
}

impl std::fmt::Debug for NewSession {
    /// Leaves out the id and the CSRF token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// A verified session in the cache, with what decides whether it may be used again
/// without reading the directory.
#[derive(Clone)]
pub(crate) struct CachedSession {
    session: Session,
    /// The activity time as written in the directory.
    last_seen_at: i64,
    /// When the directory was last read for it.
    verified_at: i64,
}

impl Directory {
    /// Starts a browser session for `user`, who has just proved who they are (the caller's
    /// job: see `SignIn::start_session`), for `purpose`, at `now_us`. People only: a
    /// `system` client uses the client credentials grant.
    pub fn start_session(
        &self,
        user: &str,
        purpose: Purpose,
        now_us: i64,
    ) -> Result<NewSession, AccessError> {
        self.purge_now_and_then(now_us);
        let Some(u) = self.user(user)? else {
            return Err(AccessError::UnknownUser(user.to_owned()));
        };
        if u.disabled {
            return Err(AccessError::UserDisabled(user.to_owned()));
        }
        let role = u.role()?;
        if role == Role::System {
            return Err(AccessError::Policy(
                "a system client has no browser session; it uses the client credentials grant"
                    .into(),
            ));
        }
        let scopes: Scopes = SESSION_SCOPES
            .parse()
            .map_err(|_| AccessError::Damaged("session scopes".into()))?;
        let id = random_secret(SESSION_PREFIX)?;
        let csrf_token = random_secret("")?;
        let p = self.session_policy;
        let record = SessionRecord {
            user: user.to_owned(),
            scopes: SESSION_SCOPES.to_owned(),
            purpose: purpose.to_string(),
            csrf: token_key(&csrf_token),
            epoch: u.credentials_epoch,
            started_at: now_us,
            last_seen_at: now_us,
            expires_at: now_us.saturating_add(p.absolute_us),
        };
        self.put_entry(SESSION, &token_key(&id), &record, None)?;
        // Remembered for the dormant-account check; the credentials epoch is untouched.
        let u = self.update_user_with(user, |u| u.last_sign_in_at = Some(now_us))?;
        let break_glass = self
            .active_break_glass(user, now_us)?
            .map(|d| d.break_glass());
        let session = Session {
            auth: Authenticated {
                user: u,
                role,
                scopes,
                purpose,
                expires_at: record.expires_at,
                break_glass,
            },
            started_at: now_us,
            expires_at: record.expires_at,
            idle_expires_at: now_us.saturating_add(p.idle_us),
            csrf: record.csrf,
        };
        Ok(NewSession {
            id,
            csrf_token,
            session,
        })
    }

    /// Verifies a session id at `now_us`: known, within both timeouts, its user enabled
    /// and their credentials unchanged since sign-in. Counts as activity (written at most
    /// once per refresh interval).
    pub fn authenticate_session(&self, id: &str, now_us: i64) -> Result<Session, AuthError> {
        if !id.starts_with(SESSION_PREFIX) || id.len() > 128 {
            return Err(AuthError::SessionInvalid);
        }
        let key = token_key(id);
        let p = self.session_policy;
        if let Some(c) = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && now_us.saturating_sub(c.verified_at) < p.recheck_us
            && now_us.saturating_sub(c.last_seen_at) < p.refresh_us.min(p.idle_us)
            && now_us >= c.verified_at
            && now_us < c.session.expires_at
        {
            return Ok(c.session.clone());
        }
        let verified = self.verify_session(&key, now_us);
        let mut cache = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match verified {
            Ok(c) => {
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                let session = c.session.clone();
                cache.insert(key, c);
                Ok(session)
            }
            Err(e) => {
                cache.remove(&key);
                Err(e)
            }
        }
    }

    /// [`Directory::authenticate_session`] without the cache.
    fn verify_session(&self, key: &str, now_us: i64) -> Result<CachedSession, AuthError> {
        let p = self.session_policy;
        let (version, mut record): (_, SessionRecord) = match self.get_entry(SESSION, key) {
            Ok(Some(e)) => e,
            Ok(None) => return Err(AuthError::SessionInvalid),
            Err(_) => return Err(AuthError::Unavailable),
        };
        if now_us >= record.expires_at || now_us.saturating_sub(record.last_seen_at) >= p.idle_us {
            return Err(AuthError::SessionExpired);
        }
        let user = match self.user(&record.user) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(AuthError::SessionInvalid),
            Err(_) => return Err(AuthError::Unavailable),
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        if user.credentials_epoch != record.epoch {
            // The password changed or the authenticator was reset since sign-in.
            return Err(AuthError::SessionInvalid);
        }
        let role = user.role().map_err(|_| AuthError::SessionInvalid)?;
        let scopes = record
            .scopes
            .parse()
            .map_err(|_| AuthError::SessionInvalid)?;
        let purpose = record
            .purpose
            .parse()
            .map_err(|_| AuthError::SessionInvalid)?;
        let break_glass = self
            .active_break_glass(&user.name, now_us)
            .map_err(|_| AuthError::Unavailable)?
            .map(|d| d.break_glass());
        if now_us.saturating_sub(record.last_seen_at) >= p.refresh_us {
            record.last_seen_at = now_us;
            match self.put_entry(SESSION, key, &record, Some(version)) {
                Ok(()) => {}
                // Someone refreshed it meanwhile, or ended it: which one, the entry says.
                Err(AccessError::Conflict) => match self.get_entry::<SessionRecord>(SESSION, key) {
                    Ok(Some((_, r))) => record.last_seen_at = r.last_seen_at,
                    Ok(None) => return Err(AuthError::SessionInvalid),
                    Err(_) => return Err(AuthError::Unavailable),
                },
                Err(_) => return Err(AuthError::Unavailable),
            }
        }
        Ok(CachedSession {
            session: Session {
                auth: Authenticated {
                    user,
                    role,
                    scopes,
                    purpose,
                    expires_at: record.expires_at,
                    break_glass,
                },
                started_at: record.started_at,
                expires_at: record.expires_at,
                idle_expires_at: record.last_seen_at.saturating_add(p.idle_us),
                csrf: record.csrf,
            },
            last_seen_at: record.last_seen_at,
            verified_at: now_us,
        })
    }

    /// Ends a session (logout); whether it existed. It stops working at once in this
    /// process, and in others as soon as they next read the directory for it.
    pub fn end_session(&self, id: &str) -> Result<bool, AccessError> {
        let key = token_key(id);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let gone = self.vault.dir_delete(SESSION, &key)?;
        Ok(gone)
    }

    /// Deletes sessions that ended more than a day before `now_us`; how many.
    pub fn purge_sessions(&self, now_us: i64) -> Result<usize, AccessError> {
        let p = self.session_policy;
        let mut gone = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self.vault.dir_list(SESSION, after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for e in page {
                let ended = match serde_json::from_slice::<SessionRecord>(&e.value) {
                    Ok(r) => r.expires_at.min(r.last_seen_at.saturating_add(p.idle_us)),
                    // A damaged entry can never be used: delete it too.
                    Err(_) => i64::MIN,
                };
                if now_us.saturating_sub(ended) > PURGE_AFTER_US
                    && self.vault.dir_delete(SESSION, &e.key)?
                {
                    gone += 1;
                }
            }
        }
        Ok(gone)
    }

    /// Purges ended sessions if the last purge was over an hour ago (best effort: a
    /// failure leaves them for next time).
    fn purge_now_and_then(&self, now_us: i64) {
        let last = self.last_purge.load(Ordering::Relaxed);
        if now_us.saturating_sub(last) < PURGE_EVERY_US
            || self
                .last_purge
                .compare_exchange(last, now_us, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let _ = self.purge_sessions(now_us);
    }
}
