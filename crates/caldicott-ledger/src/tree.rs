//! The shape of an RFC 9162 Merkle tree: node addresses, subtrees, and the recursive
//! definition of the Merkle Tree Hash (MTH).
//!
//! A tree over leaves `D[0..n)` is addressed as if it were a perfect binary tree of
//! height 64: node `(level, index)` covers the leaves `[index·2^level, (index+1)·2^level)`.
//! A node is *complete* (a perfect subtree) in a tree of size `n` when all of those leaves
//! exist. Every hash of an RFC 9162 tree of size `n`, and so every hash in a proof, is either
//! a complete node's hash or the hash of a right-border range `[index·2^level, n)`, which
//! is made from at most 64 complete nodes. Storing every complete node's hash (about `2n`
//! hashes for `n` leaves) therefore answers any root or proof in O(log n) reads: that is
//! what [`crate::HashSource`] asks of its implementations.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// The address of a node: the complete subtree of `2^level` leaves starting at leaf
/// `index << level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves: 0 for a leaf hash. At most 63.
    pub level: u8,
    /// Position among the nodes of this level, from 0 at the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    #[must_use]
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The first leaf the node covers, and one past its last, as `u128` (the end of the last
    /// node of a level can be 2^64).
    #[must_use]
    pub const fn leaf_range(&self) -> (u128, u128) {
        let start = (self.index as u128) << self.level;
        (start, start + (1u128 << self.level))
    }

    /// Whether the node is complete in a tree of `size` leaves.
    #[must_use]
    pub const fn is_complete_in(&self, size: u64) -> bool {
        self.level < 64 && self.leaf_range().1 <= size as u128
    }
}

/// Whether `[start, end)` is a subtree in the sense of RFC 9162's successors (the Merkle
/// Tree Certificates draft, used by C2SP tlog-witness and tlog-mirror): `start <= end`, and
/// `start` is 0 or a multiple of the smallest power of two `>= end - start`. Such a range
/// is a node of the tree of size `end`, so its hash `MTH(D[start:end])` can be proved
/// consistent with any larger tree. An empty range is a (trivial) subtree.
#[must_use]
pub fn is_valid_subtree(start: u64, end: u64) -> bool {
    if start > end {
        return false;
    }
    if start == 0 || start == end {
        return true;
    }
    match (end - start).checked_next_power_of_two() {
        Some(width) => start.is_multiple_of(width),
        // Wider than 2^63 leaves: only a subtree when it starts at leaf 0.
        None => false,
    }
}

/// The Merkle Tree Hash of `leaf_hashes`, by the recursive definition of RFC 9162 §2.1.1:
/// `MTH({}) = SHA-256()`, `MTH({d}) = leaf hash`, and for `n > 1`, with `k` the largest
/// power of two smaller than `n`, `MTH(D[n]) = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))`.
///
/// This is the reference the incremental structures are tested against; it needs
/// `n - 1` node hashes and O(log n) stack.
#[must_use]
pub fn mth(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => EMPTY_ROOT,
        [leaf] => *leaf,
        _ => {
            let k = split_point(leaf_hashes.len());
            node_hash(&mth(&leaf_hashes[..k]), &mth(&leaf_hashes[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_validity() {
        assert!(is_valid_subtree(0, 0));
        assert!(is_valid_subtree(0, 7));
        assert!(is_valid_subtree(5, 5));
        assert!(is_valid_subtree(4, 7));
        assert!(is_valid_subtree(8, 13));
        assert!(is_valid_subtree(8, 16));
        assert!(!is_valid_subtree(1, 3));
        assert!(!is_valid_subtree(2, 5));
        assert!(!is_valid_subtree(2, 6));
        assert!(!is_valid_subtree(1, 15));
        assert!(!is_valid_subtree(3, 2));
        assert!(!is_valid_subtree(1, (1 << 63) + 2));
        assert!(is_valid_subtree(0, u64::MAX));
        assert!(is_valid_subtree(1 << 63, u64::MAX));
        assert!(!is_valid_subtree(1, u64::MAX));
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
    }

    #[test]
    fn node_ranges() {
        let n = NodeId::new(63, 1);
        assert_eq!(n.leaf_range(), (1 << 63, 1 << 64));
        assert!(!n.is_complete_in(u64::MAX));
        assert!(NodeId::new(63, 0).is_complete_in(u64::MAX));
        assert!(NodeId::new(2, 1).is_complete_in(8));
        assert!(!NodeId::new(2, 1).is_complete_in(7));
        assert!(!NodeId::new(64, 0).is_complete_in(u64::MAX));
    }
}
