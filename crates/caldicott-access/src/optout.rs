//! The National Data Opt-out and Type 1 opt-out lists: which patients' data may not be used
//! beyond their direct care. Kept as keyed hashes of NHS numbers only, so the lists (which
//! name people) are never stored; a number can be checked against them, not read out.

use caldicott_core::NhsNumber;
use caldicott_vault::Vault;

use crate::error::AccessError;

/// Which opt-out a list records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutKind {
    /// The National Data Opt-out (NHS England's list for the organisation).
    National,
    /// Type 1: the patient's objection, recorded at their GP practice, to their data
    /// leaving the practice for purposes beyond their care.
    Type1,
}

impl OptOutKind {
    /// Both kinds.
    pub const ALL: [OptOutKind; 2] = [OptOutKind::National, OptOutKind::Type1];

    fn kind(self) -> &'static str {
        match self {
            OptOutKind::National => "optout-national",
            OptOutKind::Type1 => "optout-type1",
        }
    }

    /// The list's name as people say it.
    pub fn label(self) -> &'static str {
        match self {
            OptOutKind::National => "National Data Opt-out",
            OptOutKind::Type1 => "Type 1 opt-out",
        }
    }
}

/// Directory kind of each list's load record (key: the list's kind).
const LOADS: &str = "optout-load";

/// What is known of a list: how many numbers it holds and when it was last replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListStatus {
    pub kind: OptOutKind,
    pub entries: usize,
    /// When the list was last replaced (microseconds since the epoch); `None` if it never
    /// was (or only before loads were recorded, and it is empty).
    pub replaced_at: Option<i64>,
}

/// The status of a list: from the record its last load left, or, for a list loaded before
/// loads were recorded, by counting its entries (whose write time is the load's).
pub fn status(vault: &Vault, kind: OptOutKind) -> Result<ListStatus, AccessError> {
    if let Some(e) = vault.dir_get(LOADS, kind.kind())?
        && let Some((count, at)) = std::str::from_utf8(&e.value)
            .ok()
            .and_then(|t| t.split_once(' '))
            .and_then(|(c, a)| Some((c.parse().ok()?, a.parse().ok()?)))
    {
        return Ok(ListStatus {
            kind,
            entries: count,
            replaced_at: Some(at),
        });
    }
    let mut entries = 0usize;
    let mut replaced_at: Option<i64> = None;
    let mut after: Option<String> = None;
    loop {
        let page = vault.dir_list(kind.kind(), after.as_deref(), 5_000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        entries += page.len();
        for e in &page {
            replaced_at = Some(replaced_at.map_or(e.updated_at, |r| r.max(e.updated_at)));
        }
    }
    Ok(ListStatus {
        kind,
        entries,
        replaced_at,
    })
}

/// A patient's opt-outs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptOuts {
    pub national: bool,
    pub type1: bool,
}

/// Replaces the whole list of one kind (each load is a full snapshot: people can opt back
/// in). Returns how many distinct numbers it holds.
pub fn replace(
    vault: &Vault,
    kind: OptOutKind,
    numbers: &[NhsNumber],
) -> Result<usize, AccessError> {
    let mut entries = numbers
        .iter()
        .map(|n| Ok((vault.dir_keyed_hash(kind.kind(), n.as_str())?, Vec::new())))
        .collect::<Result<Vec<_>, AccessError>>()?;
    entries.sort();
    entries.dedup();
    vault.dir_replace_kind(kind.kind(), &entries)?;
    // The load's record (count and time), for the administration page; an empty load is
    // recorded too, which the entries alone could not show.
    let record = format!("{} {}", entries.len(), caldicott_vault::now_micros());
    for _ in 0..4 {
        let current = vault.dir_get(LOADS, kind.kind())?;
        match vault.dir_put(
            LOADS,
            kind.kind(),
            record.as_bytes(),
            current.map(|e| e.version),
        ) {
            Err(caldicott_vault::VaultError::Conflict { .. }) => continue,
            other => {
                other?;
                break;
            }
        }
    }
    Ok(entries.len())
}

/// Whether a patient is on either list.
pub fn check(vault: &Vault, nhs: &NhsNumber) -> Result<OptOuts, AccessError> {
    let on = |kind: OptOutKind| -> Result<bool, AccessError> {
        let key = vault.dir_keyed_hash(kind.kind(), nhs.as_str())?;
        Ok(vault.dir_get(kind.kind(), &key)?.is_some())
    };
    Ok(OptOuts {
        national: on(OptOutKind::National)?,
        type1: on(OptOutKind::Type1)?,
    })
}
