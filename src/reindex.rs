//! Keeps the protected index in step with the code: when what a resource is indexed by
//! changes (`caldicott_api::store::INDEX_SCHEME`), every current record is re-indexed before
//! the database is used, so that no search misses a record indexed the old way.

use caldicott_core::{OdsCode, ResourceType};
use caldicott_vault::Vault;

/// Where the database records the index scheme its terms were made with.
const META_KEY: &str = "fhir.index_scheme";
/// Records re-indexed per transaction.
const STEP: usize = 1_000;

/// Re-indexes everything if the database's index scheme is not this build's; returns the
/// number of records re-indexed.
pub fn ensure_current(vault: &Vault) -> anyhow::Result<u64> {
    let want = caldicott_api::store::INDEX_SCHEME.as_bytes();
    if vault.backend().meta(META_KEY)?.as_deref() == Some(want) {
        return Ok(0);
    }
    let mut done = 0u64;
    for org in vault.organisations() {
        let org = OdsCode::parse(&org)?;
        for t in caldicott_fhir::definitions::RESOURCE_TYPES {
            let rtype = ResourceType::new(t)?;
            let mut after = None;
            while let Some((last, n)) = vault.reindex_step(
                &org,
                &rtype,
                after.as_ref(),
                STEP,
                &caldicott_api::store::indexer,
            )? {
                done += n as u64;
                after = Some(last);
            }
        }
    }
    if done > 0 {
        tracing::info!(
            records = done,
            "re-indexed records for the current search index scheme"
        );
    }
    vault.backend().set_meta(META_KEY, want)?;
    Ok(done)
}
