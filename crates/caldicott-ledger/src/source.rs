//! Where proofs get their hashes from: the [`HashSource`] trait and two in-memory sources.

use crate::frontier::{Frontier, FrontierError, fold_right};
use crate::hash::Hash;
use crate::tree::{NodeId, mth};

/// Read access to the complete-subtree hashes of a log: what proof generation needs.
///
/// A node `(level, index)` is the complete subtree of leaves
/// `[index·2^level, (index+1)·2^level)`; level 0 holds the leaf hashes. A log that stores
/// the hash of every complete node when it completes (as [`Frontier::append_with`] reports
/// them: about `2n` hashes for `n` leaves) answers any root, inclusion proof or consistency
/// proof, for its current size or any earlier one, with O(log n) reads: at most
/// 2·64 nodes for a proof, 64 for a root. The proof functions ask for all the nodes of one
/// proof at once through [`HashSource::node_hashes`], so a database can answer with one
/// query.
pub trait HashSource {
    /// Why a read failed (I/O, a missing row).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Number of leaves in the log. Proofs can be made for any tree size up to this.
    fn leaf_count(&self) -> u64;

    /// The hash of the complete node `(level, index)`. Only called for nodes complete in
    /// a tree of [`HashSource::leaf_count`] leaves.
    ///
    /// # Errors
    /// When the hash cannot be read.
    fn node_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;

    /// The hashes of several complete nodes, in the order asked. The default reads them one
    /// by one; a database should override it with one query.
    ///
    /// # Errors
    /// When a hash cannot be read.
    fn node_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        ids.iter()
            .map(|id| self.node_hash(id.level, id.index))
            .collect()
    }
}

/// An in-memory source was asked for a node that is not complete in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("node (level {}, index {}) is not a complete subtree of this log", .0.level, .0.index)]
pub struct MissingNode(pub NodeId);

/// Proofs straight from leaf hashes in memory: a complete node's hash is recomputed from
/// its leaves, so a proof costs O(n) hashing. Fine for tests and small trees; use
/// [`MemoryTree`] or a stored source otherwise.
impl HashSource for [Hash] {
    type Error = MissingNode;

    fn leaf_count(&self) -> u64 {
        self.len() as u64
    }

    fn node_hash(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        let id = NodeId::new(level, index);
        if !id.is_complete_in(self.leaf_count()) {
            return Err(MissingNode(id));
        }
        let (start, end) = id.leaf_range();
        // Both fit in usize: end <= self.len().
        Ok(mth(&self[start as usize..end as usize]))
    }
}

/// An in-memory log that keeps the hash of every complete node, level by level (about
/// `2n` hashes, 64 bytes per leaf): O(1) reads per node, so proofs for any size up to the
/// current one cost O(log n). A model of what the vault stores, and the benchmark's source.
#[derive(Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of node `(l, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log with room for `leaves` leaves without reallocating.
    #[must_use]
    pub fn with_capacity(leaves: usize) -> Self {
        let mut levels = Vec::new();
        let mut n = leaves;
        while n > 0 {
            levels.push(Vec::with_capacity(n));
            n /= 2;
        }
        Self {
            levels,
            frontier: Frontier::new(),
        }
    }

    /// Appends a leaf hash and stores every node it completes.
    ///
    /// # Errors
    /// [`FrontierError::Full`] when the log holds 2^64 − 1 leaves.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<(), FrontierError> {
        let levels = &mut self.levels;
        self.frontier.append_with(leaf_hash, |id, hash| {
            let level = usize::from(id.level);
            if levels.len() <= level {
                levels.push(Vec::new());
            }
            debug_assert_eq!(levels[level].len() as u64, id.index);
            levels[level].push(*hash);
        })
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root at the current size.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier at the current size.
    #[must_use]
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The leaf hashes, in order.
    #[must_use]
    pub fn leaf_hashes(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The root of the first `size` leaves (any earlier size), from at most 64 stored nodes.
    ///
    /// # Errors
    /// [`MissingNode`] when `size` is beyond the log.
    pub fn root_at(&self, size: u64) -> Result<Hash, MissingNode> {
        let ids = Frontier::node_ids(size);
        let hashes = self.node_hashes(&ids)?;
        Ok(fold_right(&hashes))
    }
}

impl HashSource for MemoryTree {
    type Error = MissingNode;

    fn leaf_count(&self) -> u64 {
        self.size()
    }

    fn node_hash(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or(MissingNode(NodeId::new(level, index)))
    }
}

impl std::fmt::Debug for MemoryTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTree")
            .field("size", &self.size())
            .field("root", &self.root())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn memory_tree_agrees_with_leaves() {
        let leaves: Vec<Hash> = (0u32..37).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut t = MemoryTree::with_capacity(10);
        for leaf in &leaves {
            t.append(*leaf).unwrap();
        }
        assert_eq!(t.leaf_hashes(), &leaves[..]);
        for level in 0u8..7 {
            for index in 0u64..40 {
                let id = NodeId::new(level, index);
                assert_eq!(
                    t.node_hash(level, index).ok(),
                    leaves.node_hash(level, index).ok(),
                    "{id:?}"
                );
                assert_eq!(t.node_hash(level, index).is_ok(), id.is_complete_in(37));
            }
        }
        for size in 0..=37 {
            assert_eq!(t.root_at(size).unwrap(), mth(&leaves[..size as usize]));
        }
        assert!(t.root_at(38).is_err());
        assert!(leaves.node_hash(63, u64::MAX).is_err());
        assert!(t.node_hash(200, 0).is_err());
    }
}
