//! Where agreements, their keys and their releases are kept: sealed entries of the vault's
//! directory (encrypted like every other directory entry), one per agreement version.
//!
//! | kind | key | value |
//! |---|---|---|
//! | `share-agreement` | `DSA-…/000001` | an [`Agreement`] version (JSON) |
//! | `share-key` | `DSA-…` | the agreement's 32-byte pseudonym key |
//! | `share-release` | `DSA-…/000001` | a [`ReleaseRecord`] |
//!
//! Each change is a compare-and-set on the entry's version, so two people acting at once
//! cannot both win: the second gets [`ShareError::Conflict`].

use std::sync::Arc;

use caldicott_core::VersionId;
use caldicott_vault::Vault;
use zeroize::Zeroizing;

use crate::agreement::{Actor, Agreement, AgreementId, ReleaseRecord, State, Terms};
use crate::error::ShareError;

const AGREEMENT: &str = "share-agreement";
const KEY: &str = "share-key";
const RELEASE: &str = "share-release";

/// Bytes of an agreement's pseudonym key (HMAC-SHA-256 key).
pub const PSEUDONYM_KEY_LEN: usize = 32;

/// The agreements of a deployment.
pub struct Book {
    vault: Arc<Vault>,
}

impl Book {
    pub fn new(vault: Arc<Vault>) -> Self {
        Book { vault }
    }

    /// Stores a new proposal and makes the agreement's pseudonym key.
    pub fn propose(
        &self,
        actor: &Actor<'_>,
        terms: Terms,
        now_us: i64,
    ) -> Result<Agreement, ShareError> {
        let a = Agreement::propose(actor, terms, now_us)?;
        let mut key = Zeroizing::new([0u8; PSEUDONYM_KEY_LEN]);
        rand::fill(&mut key[..]);
        self.vault.dir_put(KEY, a.id.as_str(), &key[..], None)?;
        self.put(&a, None)?;
        Ok(a)
    }

    /// Stores a new version with amended terms.
    pub fn amend(
        &self,
        id: &AgreementId,
        actor: &Actor<'_>,
        terms: Terms,
        now_us: i64,
    ) -> Result<Agreement, ShareError> {
        let (_, newest) = self.newest(id)?;
        let next = newest.amend(actor, terms, now_us)?;
        self.put(&next, None)?;
        Ok(next)
    }

    /// Approves the newest version.
    pub fn approve(
        &self,
        id: &AgreementId,
        actor: &Actor<'_>,
        now_us: i64,
    ) -> Result<Agreement, ShareError> {
        let (v, newest) = self.newest(id)?;
        let next = newest.approve(actor, now_us)?;
        self.put(&next, Some(v))?;
        Ok(next)
    }

    /// Revokes the agreement (recorded on its newest version; every version stops).
    pub fn revoke(
        &self,
        id: &AgreementId,
        actor: &Actor<'_>,
        reason: &str,
        now_us: i64,
    ) -> Result<Agreement, ShareError> {
        let (v, newest) = self.newest(id)?;
        let next = newest.revoke(actor, reason, now_us)?;
        self.put(&next, Some(v))?;
        Ok(next)
    }

    /// Every version of one agreement, oldest first.
    pub fn versions(&self, id: &AgreementId) -> Result<Vec<Agreement>, ShareError> {
        let found: Vec<Agreement> = self
            .entries::<Agreement>(AGREEMENT, Some(id))?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        if found.is_empty() {
            return Err(ShareError::NotFound(id.to_string()));
        }
        Ok(found)
    }

    /// Every agreement's versions, by id.
    pub fn list(&self) -> Result<Vec<Vec<Agreement>>, ShareError> {
        let mut out: Vec<Vec<Agreement>> = Vec::new();
        for (_, a) in self.entries::<Agreement>(AGREEMENT, None)? {
            match out.last_mut() {
                Some(last) if last[0].id == a.id => last.push(a),
                _ => out.push(vec![a]),
            }
        }
        Ok(out)
    }

    /// The releases made under an agreement, oldest first.
    pub fn releases(&self, id: &AgreementId) -> Result<Vec<ReleaseRecord>, ShareError> {
        Ok(self
            .entries::<ReleaseRecord>(RELEASE, Some(id))?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Records a release. Refused (conflict) if another release was recorded meanwhile:
    /// the frequency rule is then checked again by the caller.
    pub fn record_release(
        &self,
        id: &AgreementId,
        seq: usize,
        record: &ReleaseRecord,
    ) -> Result<(), ShareError> {
        let bytes = Zeroizing::new(
            serde_json::to_vec(record).map_err(|_| ShareError::Damaged(id.to_string()))?,
        );
        self.vault
            .dir_put(RELEASE, &format!("{id}/{:06}", seq + 1), &bytes, None)
            .map_err(|e| conflict(e, id))?;
        Ok(())
    }

    /// The agreement's pseudonym key: the same patient gets the same pseudonym in every
    /// release under this agreement, and a different one under any other.
    pub fn pseudonym_key(
        &self,
        id: &AgreementId,
    ) -> Result<Zeroizing<[u8; PSEUDONYM_KEY_LEN]>, ShareError> {
        let e = self
            .vault
            .dir_get(KEY, id.as_str())?
            .ok_or_else(|| ShareError::Damaged(format!("{id} (its pseudonym key is missing)")))?;
        let mut key = Zeroizing::new([0u8; PSEUDONYM_KEY_LEN]);
        if e.value.len() != PSEUDONYM_KEY_LEN {
            return Err(ShareError::Damaged(format!("{id} (its pseudonym key)")));
        }
        key.copy_from_slice(&e.value);
        Ok(key)
    }

    fn newest(&self, id: &AgreementId) -> Result<(VersionId, Agreement), ShareError> {
        self.entries::<Agreement>(AGREEMENT, Some(id))?
            .into_iter()
            .max_by_key(|(_, a)| a.version)
            .ok_or_else(|| ShareError::NotFound(id.to_string()))
    }

    fn put(&self, a: &Agreement, expect: Option<VersionId>) -> Result<(), ShareError> {
        if let (None, State::Approved { .. } | State::Revoked { .. }) = (expect, &a.state) {
            return Err(ShareError::Invalid("a new version starts proposed".into()));
        }
        let bytes = Zeroizing::new(
            serde_json::to_vec(a).map_err(|_| ShareError::Damaged(a.id.to_string()))?,
        );
        self.vault
            .dir_put(
                AGREEMENT,
                &format!("{}/{:06}", a.id, a.version),
                &bytes,
                expect,
            )
            .map_err(|e| conflict(e, &a.id))?;
        Ok(())
    }

    /// The entries of a kind, all or one agreement's, in key order.
    fn entries<T: for<'de> serde::Deserialize<'de>>(
        &self,
        kind: &str,
        id: Option<&AgreementId>,
    ) -> Result<Vec<(VersionId, T)>, ShareError> {
        let prefix = id.map(|i| format!("{i}/"));
        let mut after = prefix.clone();
        let mut out = Vec::new();
        'pages: loop {
            let page = self.vault.dir_list(kind, after.as_deref(), 200)?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for e in page {
                if let Some(p) = &prefix
                    && !e.key.starts_with(p.as_str())
                {
                    break 'pages;
                }
                let v = serde_json::from_slice(&e.value)
                    .map_err(|_| ShareError::Damaged(e.key.clone()))?;
                out.push((e.version, v));
            }
        }
        Ok(out)
    }
}

fn conflict(e: caldicott_vault::VaultError, id: &AgreementId) -> ShareError {
    match e {
        caldicott_vault::VaultError::Conflict { .. } => ShareError::Conflict(id.to_string()),
        e => ShareError::Vault(e),
    }
}
