//! What the backends share for the audit ledger's storage: the rows, and the one pure step
//! that turns a batch of leaves into the Merkle nodes to insert.
//!
//! Tables (schema 5, both backends):
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `ledger_epochs` | log epoch | `epoch`, `size` (leaves appended), `sealed_note` (the final signed checkpoint, once sealed) |
//! | `ledger_leaves` | leaf | `epoch`, `idx`, `at_us`, `hash` (its leaf hash: level 0 of the tree), `data` (the canonical event bytes) |
//! | `ledger_tiles` | complete aligned block of 16 leaves | `epoch`, `tile` (block number), `hashes` (the 16 leaf hashes, concatenated: what a proof's lowest levels are hashed from) |
//! | `ledger_nodes` | complete interior Merkle node | `epoch`, `level` (≥ 1), `idx`, `hash` |
//! | `ledger_checkpoints` | signed checkpoint | `epoch`, `size`, `note`, `published_at` |
//! | `ledger_keys` | (lookup key, leaf) | `key` (the first 8 bytes of SHA-256 of `p:<patient pseudonym>` or `u:<user>`, as a signed integer: a small index, fast to append to; a lookup may return a rare false match, which callers filter by decoding the leaf), `epoch`, `idx` |
//!
//! Appends are sequenced by the current epoch's row: SQLite's single writer, PostgreSQL's
//! `SELECT … FOR UPDATE` on it, so several `caldicott serve` processes on one database
//! still build one log. An append happens in the transaction of the change it records.

use caldicott_ledger::{Frontier, Hash, NodeId, leaf_hash};

use super::BackendError;

/// One leaf to append: the canonical bytes, when it happened, and the keys it can be found
/// by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerLeaf {
    pub data: Vec<u8>,
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
    pub keys: Vec<String>,
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub epoch: u32,
    /// Index of the first leaf appended.
    pub first: u64,
    /// The log's size after the append.
    pub size: u64,
}

/// One epoch of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRow {
    pub epoch: u32,
    pub size: u64,
    /// The final signed checkpoint, once the epoch is sealed.
    pub sealed_note: Option<String>,
}

/// A stored leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLeaf {
    pub idx: u64,
    pub at_us: i64,
    pub data: Vec<u8>,
}

/// The nodes one append adds, with the frontier after it.
pub(crate) struct AppendPlan {
    /// The leaves' hashes, in order (level 0, stored with the leaves).
    pub leaf_hashes: Vec<Hash>,
    /// Every node completed, level 0 included.
    pub nodes: Vec<(NodeId, Hash)>,
    pub frontier: Frontier,
}

/// Appends `leaves` to `frontier`, collecting every node they complete.
pub(crate) fn plan_append(
    mut frontier: Frontier,
    leaves: &[LedgerLeaf],
) -> Result<AppendPlan, BackendError> {
    let mut nodes = Vec::with_capacity(leaves.len() * 2);
    let mut leaf_hashes = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        let h = leaf_hash(&leaf.data);
        leaf_hashes.push(h);
        frontier
            .append_with(h, |id, h| nodes.push((id, *h)))
            .map_err(|e| BackendError::Db {
                during: "appending to the audit ledger",
                reason: e.to_string(),
            })?;
    }
    Ok(AppendPlan {
        leaf_hashes,
        nodes,
        frontier,
    })
}

/// Leaves per tile (see `ledger_tiles`).
pub(crate) const TILE: u64 = 16;

/// The tiles an append of `new` leaf hashes after `size` existing leaves completes, as
/// `(tile number, first leaf of the tile)`; `prefix` holds the hashes of the existing
/// leaves of the first, partial tile (`size % TILE` of them).
pub(crate) fn completed_tiles(size: u64, prefix: &[Hash], new: &[Hash]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut current: Vec<u8> = prefix.iter().flat_map(|h| h.as_bytes().to_vec()).collect();
    let mut at = size;
    for h in new {
        current.extend_from_slice(h.as_bytes());
        at += 1;
        if at.is_multiple_of(TILE) {
            out.push((at / TILE - 1, std::mem::take(&mut current)));
        }
    }
    out
}

/// The frontier of a log of `size` leaves from its stored frontier nodes (in
/// [`Frontier::node_ids`] order); a missing node means the stored log is damaged.
pub(crate) fn frontier_from(
    size: u64,
    nodes: Vec<Option<Vec<u8>>>,
) -> Result<Frontier, BackendError> {
    let damaged = |reason: String| BackendError::Db {
        during: "reading the audit ledger's frontier",
        reason,
    };
    let hashes = nodes
        .into_iter()
        .map(|n| {
            n.ok_or_else(|| damaged(format!("a frontier node of the {size}-leaf log is missing")))
                .and_then(|b| Hash::from_slice(&b).map_err(|e| damaged(e.to_string())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Frontier::from_parts(size, hashes).map_err(|e| damaged(e.to_string()))
}

/// The stored form of a lookup key: the first 8 bytes of its SHA-256.
pub(crate) fn key_hash(key: &str) -> i64 {
    let h = caldicott_ledger::sha256(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_be_bytes(b)
}

/// Converts a stored size or index (a signed 64-bit column) back; negative means damage.
pub(crate) fn unsigned(v: i64, what: &'static str) -> Result<u64, BackendError> {
    u64::try_from(v).map_err(|_| BackendError::Db {
        during: what,
        reason: format!("negative value {v} in the audit ledger"),
    })
}
