//! What the backends share for the audit ledger's storage: the rows, and the one pure step
//! that turns a batch of leaves into the Merkle nodes to insert.
//!
//! Tables (schema 5, both backends, and SQLite's schema 6 for the lookup keys):
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `ledger_epochs` | log epoch | `epoch`, `size` (leaves appended), `sealed_note` (the final signed checkpoint, once sealed) |
//! | `ledger_leaves` | leaf | `epoch`, `idx`, `at_us`, `hash` (its leaf hash: level 0 of the tree), `data` (the canonical event bytes) |
//! | `ledger_tiles` | complete aligned block of 16 leaves | `epoch`, `tile` (block number), `hashes` (the 16 leaf hashes, concatenated: what a proof's lowest levels are hashed from) |
//! | `ledger_nodes` | complete interior Merkle node at level ≥ 4 (`STORED_LEVEL`; the levels below are hashed from the tiles) | `epoch`, `level`, `idx`, `hash` |
//! | `ledger_checkpoints` | signed checkpoint | `epoch`, `size`, `note`, `published_at` |
//! | `ledger_keys` (PostgreSQL) | (lookup key, leaf) | `key` (the first 8 bytes of SHA-256 of `p:<patient pseudonym>` or `u:<user>`, as a signed integer: a small index; a lookup may return a rare false match, which callers filter by decoding the leaf), `epoch`, `idx` |
//! | `ledger_key_log` (SQLite, schema 6) | leaf with lookup keys, not yet in a run | `epoch`, `idx`, `keys` (the keys' 8-byte hashes, big-endian, concatenated) |
//! | `ledger_key_index` (SQLite) | (run, lookup key, leaf) | `run`, `key`, `epoch`, `idx`: the keys of `KEY_RUN_LEAVES` (16,384) consecutive leaves, sorted once and written after every earlier run |
//! | `ledger_key_runs` (SQLite) | run | `run`, the first and last `(epoch, idx)` it covers |
//!
//! Appends are sequenced by the current epoch's row: SQLite's single writer, PostgreSQL's
//! `SELECT … FOR UPDATE` on it, so several `caldicott serve` processes on one database
//! still build one log. An append happens in the transaction of the change it records.

use caldicott_ledger::{Frontier, Hash, NodeId, leaf_hash, mth};

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

/// Interior nodes are stored from this level up. The levels below lie within one tile
/// (`TILE` = 2^`STORED_LEVEL` leaves), whose leaf hashes are stored together, so they are
/// hashed from it when needed: storing them would be 7 of every 8 node rows and several
/// scattered pages in each small commit. (Logs written before this may hold some; they
/// are never read.)
pub(crate) const STORED_LEVEL: u8 = 4;

/// Leaves per tile (see `ledger_tiles`).
pub(crate) const TILE: u64 = 1 << STORED_LEVEL;

/// What an appender needs of the log's end: its frontier, and the leaf hashes of its last,
/// partial tile (`size % TILE` of them). A backend keeps the one its last append left,
/// checked against the stored size in each transaction.
#[derive(Clone)]
pub(crate) struct Tail {
    pub frontier: Frontier,
    pub partial: Vec<Hash>,
}

impl Tail {
    /// The frontier nodes of a `size`-leaf log that are stored (level ≥ [`STORED_LEVEL`]),
    /// in [`Frontier::node_ids`] order.
    pub fn stored_ids(size: u64) -> Vec<NodeId> {
        Frontier::node_ids(size)
            .into_iter()
            .filter(|id| id.level >= STORED_LEVEL)
            .collect()
    }

    /// Rebuilds the tail of a `size`-leaf log from its stored frontier nodes (for
    /// [`Tail::stored_ids`]) and the leaf hashes of its partial tile; anything missing
    /// means the stored log is damaged.
    pub fn from_parts(
        size: u64,
        stored: Vec<Option<Vec<u8>>>,
        partial: Vec<Hash>,
    ) -> Result<Tail, BackendError> {
        let damaged = |reason: String| BackendError::Db {
            during: "reading the end of the audit ledger",
            reason,
        };
        let tile_start = size - size % TILE;
        if partial.len() as u64 != size % TILE {
            return Err(damaged(format!(
                "{} of the {} leaf hashes of the {size}-leaf log's last tile were found",
                partial.len(),
                size % TILE
            )));
        }
        let mut stored = stored.into_iter();
        let mut hashes = Vec::new();
        for id in Frontier::node_ids(size) {
            if id.level >= STORED_LEVEL {
                let bytes = stored.next().flatten().ok_or_else(|| {
                    damaged(format!("a frontier node of the {size}-leaf log is missing"))
                })?;
                hashes.push(Hash::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?);
            } else {
                // Below the stored levels the node lies in the partial tile.
                let first = usize::try_from((id.index << id.level) - tile_start)
                    .map_err(|e| damaged(e.to_string()))?;
                let leaves = partial
                    .get(first..first + (1usize << id.level))
                    .ok_or_else(|| damaged("the last tile is short".into()))?;
                hashes.push(mth(leaves));
            }
        }
        let frontier = Frontier::from_parts(size, hashes).map_err(|e| damaged(e.to_string()))?;
        Ok(Tail { frontier, partial })
    }
}

/// What one append writes besides its leaves, and the tail after it.
pub(crate) struct AppendPlan {
    /// The leaves' hashes, in order (level 0, stored with the leaves).
    pub leaf_hashes: Vec<Hash>,
    /// The interior nodes to store: those completed at level ≥ [`STORED_LEVEL`].
    pub nodes: Vec<(NodeId, Hash)>,
    /// The tiles completed, as `(tile number, its 16 leaf hashes concatenated)`.
    pub tiles: Vec<(u64, Vec<u8>)>,
    pub tail: Tail,
}

/// Appends `leaves` to `tail`, collecting the nodes and tiles they complete.
pub(crate) fn plan_append(tail: Tail, leaves: &[LedgerLeaf]) -> Result<AppendPlan, BackendError> {
    let Tail {
        mut frontier,
        partial,
    } = tail;
    let size = frontier.size();
    let mut nodes = Vec::with_capacity(leaves.len() / 8 + 1);
    let mut leaf_hashes = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        let h = leaf_hash(&leaf.data);
        leaf_hashes.push(h);
        frontier
            .append_with(h, |id, h| {
                if id.level >= STORED_LEVEL {
                    nodes.push((id, *h));
                }
            })
            .map_err(|e| BackendError::Db {
                during: "appending to the audit ledger",
                reason: e.to_string(),
            })?;
    }
    let tiles = completed_tiles(size, &partial, &leaf_hashes);
    let new_size = frontier.size();
    let keep = usize::try_from(new_size % TILE).unwrap_or(0);
    let partial: Vec<Hash> = if leaf_hashes.len() >= keep {
        leaf_hashes[leaf_hashes.len() - keep..].to_vec()
    } else {
        // The append did not leave the partial tile: it keeps the old leaves too.
        let mut v = partial;
        v.extend_from_slice(&leaf_hashes);
        v
    };
    Ok(AppendPlan {
        leaf_hashes,
        nodes,
        tiles,
        tail: Tail { frontier, partial },
    })
}

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
