//! Break-glass: a clinician without a care relationship declares an emergency, with a
//! reason, and gets time-limited access, flagged on every decision and queued for the
//! organisation's Caldicott guardian to review.
//!
//! Each declaration is kept twice in the sealed directory: under the user (the one that
//! applies now, read at authentication) and under its time and user (the review queue, in
//! the order declared). The reason may name the patient, so it lives only there, sealed.

use caldicott_policy::BreakGlass;
use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::error::AccessError;

const ACTIVE: &str = "break-glass-active";
const QUEUE: &str = "break-glass";

/// The longest a declaration lasts: 4 hours.
pub const MAX_BREAK_GLASS_MINUTES: u32 = 240;

/// One declaration, with its review once the guardian has made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The key in the review queue.
    pub id: String,
    pub user: String,
    pub org: String,
    pub reason: String,
    pub started_at: i64,
    pub expires_at: i64,
    #[serde(default)]
    pub review: Option<Review>,
}

/// The guardian's review of a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub by: String,
    pub at: i64,
    /// Whether the access was justified.
    pub appropriate: bool,
    pub note: String,
}

impl Declaration {
    /// The policy's view of it.
    pub fn break_glass(&self) -> BreakGlass {
        BreakGlass {
            reason: self.reason.clone(),
            started_at_us: self.started_at,
            expires_at_us: self.expires_at,
        }
    }
}

impl Directory {
    /// Declares break-glass for `user` for `minutes`, from `now_us`.
    pub fn declare_break_glass(
        &self,
        user: &str,
        reason: &str,
        minutes: u32,
        now_us: i64,
    ) -> Result<Declaration, AccessError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(AccessError::Policy(
                "a break-glass declaration needs a reason of 1 to 1,000 characters".into(),
            ));
        }
        if minutes == 0 || minutes > MAX_BREAK_GLASS_MINUTES {
            return Err(AccessError::Policy(format!(
                "break-glass lasts 1 to {MAX_BREAK_GLASS_MINUTES} minutes"
            )));
        }
        let Some(u) = self.user(user)? else {
            return Err(AccessError::UnknownUser(user.to_owned()));
        };
        let d = Declaration {
            id: format!("{now_us:020}-{user}"),
            user: user.to_owned(),
            org: u.org.clone(),
            reason: reason.to_owned(),
            started_at: now_us,
            expires_at: now_us.saturating_add(i64::from(minutes) * 60_000_000),
            review: None,
        };
        self.put_entry(QUEUE, &d.id, &d, None)?;
        let current = self.get_entry::<Declaration>(ACTIVE, user)?.map(|(v, _)| v);
        self.put_entry(ACTIVE, user, &d, current)?;
        self.forget_verified();
        Ok(d)
    }

    /// The declaration that applies to `user` at `now_us`, if any.
    pub fn active_break_glass(
        &self,
        user: &str,
        now_us: i64,
    ) -> Result<Option<Declaration>, AccessError> {
        Ok(self
            .get_entry::<Declaration>(ACTIVE, user)?
            .map(|(_, d)| d)
            .filter(|d| d.started_at <= now_us && now_us < d.expires_at))
    }

    /// Every declaration, oldest first; with `unreviewed`, only those awaiting review.
    pub fn break_glass_queue(&self, unreviewed: bool) -> Result<Vec<Declaration>, AccessError> {
        let mut all: Vec<Declaration> = self.list_entries(QUEUE)?;
        if unreviewed {
            all.retain(|d| d.review.is_none());
        }
        Ok(all)
    }

    /// Records the guardian's review of a declaration.
    pub fn review_break_glass(
        &self,
        id: &str,
        by: &str,
        appropriate: bool,
        note: &str,
        now_us: i64,
    ) -> Result<Declaration, AccessError> {
        let Some((version, mut d)) = self.get_entry::<Declaration>(QUEUE, id)? else {
            return Err(AccessError::Policy(format!(
                "no break-glass declaration {id}"
            )));
        };
        if d.review.is_some() {
            return Err(AccessError::Policy(format!(
                "{id} has been reviewed already"
            )));
        }
        d.review = Some(Review {
            by: by.to_owned(),
            at: now_us,
            appropriate,
            note: note.trim().to_owned(),
        });
        self.put_entry(QUEUE, id, &d, Some(version))?;
        Ok(d)
    }
}
