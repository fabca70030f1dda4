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
    fn kind(self) -> &'static str {
        match self {
            OptOutKind::National => "optout-national",
            OptOutKind::Type1 => "optout-type1",
        }
    }
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
