//! The frontier of a log (a compact range starting at leaf 0): the roots of the complete
//! subtrees that make up `[0, n)`, one per set bit of `n`. Appending is O(log n) worst case
//! and O(1) amortised; the root of the current size costs at most 63 node hashes.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::tree::NodeId;

/// Errors of [`Frontier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrontierError {
    /// The log already holds 2^64 − 1 leaves.
    #[error("the log is full: it holds 2^64 - 1 leaves")]
    Full,
    /// [`Frontier::from_parts`] got the wrong number of subtree roots for the size.
    #[error("a frontier of size {size} has {want} subtree roots, got {got}")]
    WrongNodeCount {
        /// The size given.
        size: u64,
        /// Roots given.
        got: usize,
        /// `size.count_ones()`.
        want: usize,
    },
}

/// The incremental state of a log of `size` leaves: enough to append and to compute the
/// root, nothing more (no proofs: those need a [`crate::HashSource`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the complete subtrees covering `[0, size)`, largest (leftmost) first.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty log.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            size: 0,
            nodes: Vec::new(),
        }
    }

    /// Rebuilds a frontier from its size and its subtree roots (largest first), as read back
    /// from storage: the roots are the hashes of the nodes [`Frontier::node_ids`] names.
    ///
    /// # Errors
    /// [`FrontierError::WrongNodeCount`] unless there is one root per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, FrontierError> {
        let want = size.count_ones() as usize;
        if nodes.len() != want {
            return Err(FrontierError::WrongNodeCount {
                size,
                got: nodes.len(),
                want,
            });
        }
        Ok(Self { size, nodes })
    }

    /// The complete nodes whose hashes make up the frontier of a log of `size` leaves,
    /// largest (leftmost) first.
    #[must_use]
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size >> level & 1 == 1 {
                out.push(NodeId::new(level, start >> level));
                start += 1 << level;
            }
        }
        out
    }

    /// Number of leaves appended.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    #[must_use]
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash.
    ///
    /// # Errors
    /// [`FrontierError::Full`] when the log holds 2^64 − 1 leaves.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<(), FrontierError> {
        self.append_with(leaf_hash, |_, _| {})
    }

    /// Appends a leaf hash and reports every node this completes, leaf first:
    /// `(0, size)`, then each ancestor that is now complete. Together the reports of all
    /// appends are exactly the complete nodes of the tree, each once, which is what a
    /// [`crate::HashSource`] must store to answer proofs in O(log n) reads.
    ///
    /// # Errors
    /// [`FrontierError::Full`] when the log holds 2^64 − 1 leaves; nothing is reported.
    pub fn append_with(
        &mut self,
        leaf_hash: Hash,
        mut completed: impl FnMut(NodeId, &Hash),
    ) -> Result<(), FrontierError> {
        if self.size == u64::MAX {
            return Err(FrontierError::Full);
        }
        let mut hash = leaf_hash;
        let mut index = self.size;
        let mut level = 0u8;
        completed(NodeId::new(level, index), &hash);
        // A right child completes its parent; the left child is the last root.
        while index & 1 == 1 {
            let left = self
                .nodes
                .pop()
                .expect("one subtree root per set bit of the size");
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            completed(NodeId::new(level, index), &hash);
        }
        self.nodes.push(hash);
        self.size += 1;
        Ok(())
    }

    /// The root of the log at its current size (RFC 9162 MTH), [`EMPTY_ROOT`] when empty.
    #[must_use]
    pub fn root(&self) -> Hash {
        fold_right(&self.nodes)
    }
}

/// `H(n0, H(n1, ... H(n_{k-2}, n_{k-1})))`: the hash of a range from the roots of its
/// complete subtrees, largest first. [`EMPTY_ROOT`] for none.
pub(crate) fn fold_right(nodes: &[Hash]) -> Hash {
    let Some((last, rest)) = nodes.split_last() else {
        return EMPTY_ROOT;
    };
    rest.iter()
        .rev()
        .fold(*last, |acc, left| node_hash(left, &acc))
}

impl std::fmt::Debug for Frontier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontier")
            .field("size", &self.size)
            .field("root", &self.root())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::mth;

    #[test]
    fn roots_match_the_recursive_definition() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), EMPTY_ROOT);
        for (i, leaf) in leaves.iter().enumerate() {
            f.append(*leaf).unwrap();
            assert_eq!(f.root(), mth(&leaves[..=i]), "size {}", i + 1);
            assert_eq!(f.nodes().len(), (i + 1).count_ones() as usize);
        }
    }

    #[test]
    fn reports_each_complete_node_once() {
        let mut f = Frontier::new();
        let mut seen = Vec::new();
        for i in 0u64..16 {
            f.append_with(leaf_hash(&i.to_be_bytes()), |id, _| seen.push(id))
                .unwrap();
        }
        assert_eq!(seen.len(), 31);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 31);
        assert!(seen.iter().all(|id| id.is_complete_in(16)));
        assert_eq!(
            Frontier::node_ids(13),
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
    }

    #[test]
    fn a_full_log_refuses_more() {
        let nodes = vec![leaf_hash(b"x"); 64];
        let mut f = Frontier::from_parts(u64::MAX, nodes).unwrap();
        assert_eq!(f.append(leaf_hash(b"y")), Err(FrontierError::Full));
        assert_eq!(f.size(), u64::MAX);
        let _ = f.root();
        assert_eq!(
            Frontier::from_parts(3, vec![EMPTY_ROOT]),
            Err(FrontierError::WrongNodeCount {
                size: 3,
                got: 1,
                want: 2
            })
        );
        // The last possible append, and one that carries through 63 levels.
        let mut f = Frontier::from_parts(u64::MAX - 1, vec![leaf_hash(b"x"); 63]).unwrap();
        f.append(leaf_hash(b"z")).unwrap();
        assert_eq!(f.size(), u64::MAX);
        let mut f = Frontier::from_parts((1 << 63) - 1, vec![leaf_hash(b"x"); 63]).unwrap();
        let mut top = None;
        f.append_with(leaf_hash(b"z"), |id, _| top = Some(id))
            .unwrap();
        assert_eq!(top, Some(NodeId::new(63, 0)));
        assert_eq!(f.nodes().len(), 1);
    }
}
