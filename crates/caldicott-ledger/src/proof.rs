//! Inclusion and consistency proofs: generation from a [`HashSource`] and verification
//! (RFC 9162 §2.1.3 and §2.1.4), plus the subtree variants that C2SP tlog-witness and
//! tlog-mirror use (subtrees as in the Merkle Tree Certificates draft).
//!
//! Generation is split in two so that storage can answer with one query: a [`ProofPlan`]
//! names the complete nodes a proof needs (pure arithmetic), the source reads them, and
//! [`ProofPlan::assemble`] folds them into the proof's hashes. The `*_proof` functions do all
//! three.
//!
//! All sizes and indices are `u64` and may be anything up to 2^64 − 1: no input makes these
//! functions overflow or panic.

use crate::frontier::fold_right;
use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::source::HashSource;
use crate::tree::{NodeId, is_valid_subtree};

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A leaf index is not inside the tree or subtree.
    #[error("leaf index {index} is outside the tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size (for a subtree, its number of leaves).
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesReversed {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// Consistency with the empty tree is meaningless (RFC 9162 §2.1.4: `0 < m`).
    #[error("a consistency proof from the empty tree is meaningless")]
    EmptyOldTree,
    /// `[start, end)` is not a subtree (see [`is_valid_subtree`]).
    #[error("[{start}, {end}) is not a valid subtree")]
    InvalidSubtree {
        /// First leaf.
        start: u64,
        /// One past the last leaf.
        end: u64,
    },
    /// A subtree ends beyond the tree it is to be consistent with.
    #[error("subtree end {end} is beyond the tree size {size}")]
    SubtreeBeyondTree {
        /// One past the subtree's last leaf.
        end: u64,
        /// The tree size.
        size: u64,
    },
    /// A proof was asked for a tree larger than the log.
    #[error("tree size {size} is beyond the log's {leaf_count} leaves")]
    SizeBeyondLog {
        /// The size asked.
        size: u64,
        /// Leaves in the log.
        leaf_count: u64,
    },
    /// The proof does not have the number of hashes its parameters imply.
    #[error("the proof has {got} hashes; these parameters need {want}")]
    WrongProofLength {
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        want: usize,
    },
    /// The root computed from the proof is not the expected root.
    #[error("the root computed from the proof does not match the expected root")]
    RootMismatch,
    /// The consistency proof does not reproduce the old root (or subtree hash).
    #[error("the consistency proof does not match the old root")]
    OldRootMismatch,
    /// The empty subtree's hash must be the empty root.
    #[error("the hash of an empty subtree must be the empty root")]
    EmptySubtreeHash,
    /// [`ProofPlan::assemble`] was given a different number of hashes than nodes planned.
    #[error("the source returned {got} hashes for {want} nodes")]
    NodeCount {
        /// Hashes returned.
        got: usize,
        /// Nodes asked.
        want: usize,
    },
}

/// Why a proof could not be generated from a [`HashSource`].
#[derive(Debug, thiserror::Error)]
pub enum GenerateError<E> {
    /// The parameters are invalid, or beyond the log.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The source failed to read a node.
    #[error("reading node hashes failed")]
    Source(#[source] E),
}

/// The complete nodes a proof (or a root) is made of, and how they fold into its hashes.
///
/// Each proof hash is either one complete node or the hash of a right-border range made of
/// several complete nodes (largest first), folded right to left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProofPlan {
    nodes: Vec<NodeId>,
    /// For each proof hash, how many consecutive `nodes` make it.
    groups: Vec<u8>,
}

impl ProofPlan {
    /// The nodes to read, in the order [`ProofPlan::assemble`] wants their hashes.
    #[must_use]
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Number of hashes in the resulting proof.
    #[must_use]
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether the resulting proof is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Folds the hashes of [`ProofPlan::nodes`] (in that order) into the proof.
    ///
    /// # Errors
    /// [`ProofError::NodeCount`] if `hashes` does not have one hash per node.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, ProofError> {
        if hashes.len() != self.nodes.len() {
            return Err(ProofError::NodeCount {
                got: hashes.len(),
                want: self.nodes.len(),
            });
        }
        let mut rest = hashes;
        let mut out = Vec::with_capacity(self.groups.len());
        for &n in &self.groups {
            let (group, tail) = rest.split_at(usize::from(n));
            out.push(fold_right(group));
            rest = tail;
        }
        Ok(out)
    }

    /// Plan of the inclusion proof of leaf `index` in the tree of `size` leaves
    /// (RFC 9162 §2.1.3.1: `PATH(index, D[size])`).
    ///
    /// # Errors
    /// [`ProofError::IndexOutOfRange`] unless `index < size`.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, ProofError> {
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut plan = Self::default();
        plan.push_path(0, index, size - 1, 0, size);
        Ok(plan)
    }

    /// Plan of the consistency proof between the trees of `old` and `new` leaves
    /// (RFC 9162 §2.1.4.1: `PROOF(old, D[new])`); empty when `old == new`.
    ///
    /// # Errors
    /// [`ProofError::EmptyOldTree`] for `old == 0`, [`ProofError::SizesReversed`] for
    /// `old > new`.
    pub fn consistency(old: u64, new: u64) -> Result<Self, ProofError> {
        if old > new {
            return Err(ProofError::SizesReversed { old, new });
        }
        if old == 0 {
            return Err(ProofError::EmptyOldTree);
        }
        Self::subtree_consistency(0, old, new)
    }

    /// Plan of the inclusion proof of leaf `index` in the subtree `[start, end)`: the
    /// inclusion proof of `index - start` in the tree of the subtree's leaves.
    ///
    /// # Errors
    /// [`ProofError::InvalidSubtree`], or [`ProofError::IndexOutOfRange`] unless
    /// `start <= index < end`.
    pub fn subtree_inclusion(index: u64, start: u64, end: u64) -> Result<Self, ProofError> {
        if !is_valid_subtree(start, end) {
            return Err(ProofError::InvalidSubtree { start, end });
        }
        if index < start || index >= end {
            return Err(ProofError::IndexOutOfRange {
                index,
                size: end - start,
            });
        }
        let width = end - start;
        let mut plan = Self::default();
        plan.push_path(0, index - start, width - 1, start, width);
        Ok(plan)
    }

    /// Plan of the consistency proof between the subtree `[start, end)` and the tree of
    /// `size` leaves. With `start == 0` this is the RFC 9162 consistency proof from
    /// `end` to `size`. Empty when the subtree is empty or is the whole tree.
    ///
    /// # Errors
    /// [`ProofError::InvalidSubtree`], [`ProofError::SubtreeBeyondTree`].
    pub fn subtree_consistency(start: u64, end: u64, size: u64) -> Result<Self, ProofError> {
        if !is_valid_subtree(start, end) {
            return Err(ProofError::InvalidSubtree { start, end });
        }
        if end > size {
            return Err(ProofError::SubtreeBeyondTree { end, size });
        }
        let mut plan = Self::default();
        if start == end || (start == 0 && end == size) {
            return Ok(plan);
        }
        if end == size {
            // The subtree is a node on the tree's right border: prove that node's inclusion.
            // Its level is where the paths to `start` and `end - 1` meet.
            let level = bit_len((end - 1) ^ start);
            let index = shr(end - 1, level);
            plan.push_path(level, index, index, 0, size);
        } else {
            // Start from the largest complete subtree of [start, end) that ends at `end`:
            // it is also complete in the larger tree. Unless it is the whole subtree (whose
            // hash the verifier has), the proof starts with its hash.
            let level = (end - start).trailing_zeros() as u8;
            let index = (end - 1) >> level;
            if !(end - start).is_power_of_two() {
                plan.push_node(level, index);
            }
            plan.push_path(level, index, (size - 1) >> level, 0, size);
        }
        Ok(plan)
    }

    /// Plan of the root of the tree of `size` leaves: one hash.
    #[must_use]
    pub fn tree_root(size: u64) -> Self {
        let mut plan = Self::default();
        plan.push_range(0, size);
        plan
    }

    /// Plan of the hash of the subtree `[start, end)`, `MTH(D[start:end])`: one hash.
    ///
    /// # Errors
    /// [`ProofError::InvalidSubtree`].
    pub fn subtree_root(start: u64, end: u64) -> Result<Self, ProofError> {
        if !is_valid_subtree(start, end) {
            return Err(ProofError::InvalidSubtree { start, end });
        }
        let mut plan = Self::default();
        plan.push_range(start, end);
        Ok(plan)
    }

    /// The largest tree size the plan reads from: the source must hold at least this many
    /// leaves.
    fn leaves_needed(&self) -> u128 {
        self.nodes
            .iter()
            .map(|id| id.leaf_range().1)
            .max()
            .unwrap_or(0)
    }

    fn push_node(&mut self, level: u8, index: u64) {
        self.nodes.push(NodeId::new(level, index));
        self.groups.push(1);
    }

    /// One proof hash: `MTH(D[start:end])` for a range that is a node of the tree of size
    /// `end` (a subtree), from the complete nodes of its binary decomposition.
    fn push_range(&mut self, start: u64, end: u64) {
        let mut at = start;
        let width = end - start;
        for level in (0..64u8).rev() {
            if width >> level & 1 == 1 {
                self.nodes.push(NodeId::new(level, at >> level));
                at += 1 << level;
            }
        }
        self.groups.push(width.count_ones() as u8);
    }

    /// The siblings of the path from node `(level, index)` up to the root of the tree
    /// of leaves `[base, base + width)`, bottom up. `index` and `last` (the index of the
    /// last node at `level`, `(width - 1) >> level`) are relative to `base`, which is a
    /// multiple of the tree's width rounded up to a power of two.
    fn push_path(&mut self, mut level: u8, mut index: u64, mut last: u64, base: u64, width: u64) {
        while last > 0 {
            if index & 1 == 1 {
                self.push_node(level, (base >> level) + index - 1);
            } else if index < last {
                let sibling = index + 1;
                if sibling < last {
                    self.push_node(level, (base >> level) + sibling);
                } else {
                    // The right border: [sibling·2^level, width), maybe incomplete.
                    self.push_range(base + (sibling << level), base + width);
                }
            }
            index >>= 1;
            last >>= 1;
            level += 1;
        }
    }
}

/// Number of hashes on the path from node `index` to the root when the last node of its
/// level is `last`: one per level where the node has a sibling.
fn path_len(mut index: u64, mut last: u64) -> usize {
    let mut n = 0;
    while last > 0 {
        if index & 1 == 1 || index < last {
            n += 1;
        }
        index >>= 1;
        last >>= 1;
    }
    n
}

/// `x >> n`, 0 when `n >= 64`.
fn shr(x: u64, n: u8) -> u64 {
    x.checked_shr(u32::from(n)).unwrap_or(0)
}

/// Number of significant bits of `x` (0 for 0).
fn bit_len(x: u64) -> u8 {
    (u64::BITS - x.leading_zeros()) as u8
}

fn check_source<S: HashSource + ?Sized>(
    source: &S,
    size: u64,
) -> Result<(), GenerateError<S::Error>> {
    let leaf_count = source.leaf_count();
    if size > leaf_count {
        return Err(ProofError::SizeBeyondLog { size, leaf_count }.into());
    }
    Ok(())
}

/// Reads a plan's nodes from `source` and assembles them.
///
/// # Errors
/// [`ProofError::SizeBeyondLog`] if the plan needs leaves the source does not have;
/// [`GenerateError::Source`] if a read fails.
pub fn execute<S: HashSource + ?Sized>(
    source: &S,
    plan: &ProofPlan,
) -> Result<Vec<Hash>, GenerateError<S::Error>> {
    let needed = plan.leaves_needed();
    let leaf_count = source.leaf_count();
    if needed > u128::from(leaf_count) {
        return Err(ProofError::SizeBeyondLog {
            size: u64::try_from(needed).unwrap_or(u64::MAX),
            leaf_count,
        }
        .into());
    }
    let hashes = source
        .node_hashes(plan.nodes())
        .map_err(GenerateError::Source)?;
    Ok(plan.assemble(&hashes)?)
}

fn single<E>(mut hashes: Vec<Hash>) -> Result<Hash, GenerateError<E>> {
    hashes
        .pop()
        .ok_or(GenerateError::Proof(ProofError::NodeCount {
            got: 0,
            want: 1,
        }))
}

/// The root of the tree of the first `size` leaves of `source`.
///
/// # Errors
/// [`ProofError::SizeBeyondLog`], or a read failure.
pub fn tree_root<S: HashSource + ?Sized>(
    source: &S,
    size: u64,
) -> Result<Hash, GenerateError<S::Error>> {
    check_source(source, size)?;
    single(execute(source, &ProofPlan::tree_root(size))?)
}

/// The hash of the subtree `[start, end)` of `source`.
///
/// # Errors
/// [`ProofError::InvalidSubtree`], [`ProofError::SizeBeyondLog`], or a read failure.
pub fn subtree_root<S: HashSource + ?Sized>(
    source: &S,
    start: u64,
    end: u64,
) -> Result<Hash, GenerateError<S::Error>> {
    let plan = ProofPlan::subtree_root(start, end)?;
    check_source(source, end)?;
    single(execute(source, &plan)?)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves of `source`.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`], [`ProofError::SizeBeyondLog`], or a read failure.
pub fn inclusion_proof<S: HashSource + ?Sized>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, GenerateError<S::Error>> {
    let plan = ProofPlan::inclusion(index, size)?;
    check_source(source, size)?;
    execute(source, &plan)
}

/// The consistency proof between the trees of the first `old` and `new` leaves of `source`.
///
/// # Errors
/// [`ProofError::EmptyOldTree`], [`ProofError::SizesReversed`],
/// [`ProofError::SizeBeyondLog`], or a read failure.
pub fn consistency_proof<S: HashSource + ?Sized>(
    source: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, GenerateError<S::Error>> {
    let plan = ProofPlan::consistency(old, new)?;
    check_source(source, new)?;
    execute(source, &plan)
}

/// The inclusion proof of leaf `index` in the subtree `[start, end)` of `source`.
///
/// # Errors
/// As [`ProofPlan::subtree_inclusion`], [`ProofError::SizeBeyondLog`], or a read failure.
pub fn subtree_inclusion_proof<S: HashSource + ?Sized>(
    source: &S,
    index: u64,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, GenerateError<S::Error>> {
    let plan = ProofPlan::subtree_inclusion(index, start, end)?;
    check_source(source, end)?;
    execute(source, &plan)
}

/// The consistency proof between the subtree `[start, end)` and the tree of the first
/// `size` leaves of `source`.
///
/// # Errors
/// As [`ProofPlan::subtree_consistency`], [`ProofError::SizeBeyondLog`], or a read failure.
pub fn subtree_consistency_proof<S: HashSource + ?Sized>(
    source: &S,
    start: u64,
    end: u64,
    size: u64,
) -> Result<Vec<Hash>, GenerateError<S::Error>> {
    let plan = ProofPlan::subtree_consistency(start, end, size)?;
    check_source(source, size)?;
    execute(source, &plan)
}

fn check_len(proof: &[Hash], want: usize) -> Result<(), ProofError> {
    if proof.len() == want {
        Ok(())
    } else {
        Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        })
    }
}

/// The root implied by an inclusion proof: RFC 9162 §2.1.3.2 steps 1–4.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`], [`ProofError::WrongProofLength`].
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    // 1. leaf_index < tree_size.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The algorithm below also rejects a proof of the wrong length (step 4a and the final
    // `sn == 0`); checking first gives the precise error.
    check_len(proof, path_len(index, size - 1))?;
    // 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    // 4. For each p in the path:
    for p in proof {
        // a. sn == 0: the proof is too long.
        if s == 0 {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want: path_len(index, size - 1),
            });
        }
        // b. p is a left sibling when fn is a right child, or when fn is on the right
        //    border (fn == sn) where it climbs to the first level at which it is one.
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        // c.
        f >>= 1;
        s >>= 1;
    }
    // 5. sn must be 0: the path reached the root.
    if s != 0 {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want: path_len(index, size - 1),
        });
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
///
/// # Errors
/// [`ProofError::RootMismatch`] for a proof that does not lead to `root`, or the errors of
/// [`root_from_inclusion_proof`].
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if computed == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree
/// of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2). Equal sizes need an empty
/// proof and equal roots.
///
/// # Errors
/// [`ProofError::SizesReversed`], [`ProofError::EmptyOldTree`],
/// [`ProofError::WrongProofLength`], [`ProofError::OldRootMismatch`],
/// [`ProofError::RootMismatch`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesReversed {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        check_len(proof, 0)?;
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // 0 < m < n from here.
    let shift = old_size.trailing_zeros();
    let perfect = old_size.is_power_of_two();
    let want = usize::from(!perfect) + path_len((old_size - 1) >> shift, (new_size - 1) >> shift);
    // 1. An empty proof fails (implied: want >= 1 when m < n).
    check_len(proof, want)?;
    // 2. If m is a power of two, the proof starts from old_root.
    let (seed, rest) = if perfect {
        (*old_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    // 3. fn = m - 1, sn = n - 1. 4. Climb while fn is a right child.
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // 5. fr = sr = first value.
    let (mut fr, mut sr) = (seed, seed);
    // 6. For each subsequent value c:
    for c in rest {
        // a.
        if s == 0 {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want,
            });
        }
        // b.
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // c.
        f >>= 1;
        s >>= 1;
    }
    // 7.
    if s != 0 {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that `leaf_hash` is leaf `index` of the subtree `[start, end)` whose hash is
/// `subtree_root`.
///
/// # Errors
/// [`ProofError::InvalidSubtree`], [`ProofError::IndexOutOfRange`], and the errors of
/// [`verify_inclusion`].
pub fn verify_subtree_inclusion(
    leaf_hash: &Hash,
    index: u64,
    start: u64,
    end: u64,
    proof: &[Hash],
    subtree_root: &Hash,
) -> Result<(), ProofError> {
    if !is_valid_subtree(start, end) {
        return Err(ProofError::InvalidSubtree { start, end });
    }
    if index < start || index >= end {
        return Err(ProofError::IndexOutOfRange {
            index,
            size: end - start,
        });
    }
    verify_inclusion(leaf_hash, index - start, end - start, proof, subtree_root)
}

/// Verifies that the subtree `[start, end)` with hash `subtree_root` is part of the tree of
/// `size` leaves with root `root`.
///
/// This generalises RFC 9162 §2.1.4.2 (which is the case `start == 0`): the walk follows
/// the path of leaf `end - 1`; a left sibling is folded into the subtree hash only when it
/// lies inside the subtree (`fn < sn`, where `fn` tracks `start`). An empty subtree is
/// consistent with any tree that contains its position (`root` is then not used), given an
/// empty proof and the empty root as its hash.
///
/// # Errors
/// [`ProofError::InvalidSubtree`], [`ProofError::SubtreeBeyondTree`],
/// [`ProofError::EmptySubtreeHash`], [`ProofError::WrongProofLength`],
/// [`ProofError::OldRootMismatch`], [`ProofError::RootMismatch`].
pub fn verify_subtree_consistency(
    start: u64,
    end: u64,
    size: u64,
    proof: &[Hash],
    subtree_root: &Hash,
    root: &Hash,
) -> Result<(), ProofError> {
    if !is_valid_subtree(start, end) {
        return Err(ProofError::InvalidSubtree { start, end });
    }
    if end > size {
        return Err(ProofError::SubtreeBeyondTree { end, size });
    }
    if start == end {
        check_len(proof, 0)?;
        return if *subtree_root == EMPTY_ROOT {
            Ok(())
        } else {
            Err(ProofError::EmptySubtreeHash)
        };
    }
    if start == 0 && end == size {
        check_len(proof, 0)?;
        return if subtree_root == root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // fn follows `start`, sn the subtree's last leaf, tn the tree's last leaf.
    let (mut f, mut s, mut t) = (start, end - 1, size - 1);
    if end == size {
        // The subtree is a node on the right border: climb to it (its inside is known),
        // then fold in the left siblings above it.
        s = shr(s, bit_len(s ^ f));
        let want = path_len(s, s);
        check_len(proof, want)?;
        let mut r = *subtree_root;
        for c in proof {
            while s & 1 == 0 {
                if s == 0 {
                    return Err(ProofError::WrongProofLength {
                        got: proof.len(),
                        want,
                    });
                }
                s >>= 1;
            }
            r = node_hash(c, &r);
            s >>= 1;
        }
        if s != 0 {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want,
            });
        }
        return if r == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // end < size. Start at the largest complete subtree of [start, end) ending at `end`.
    let width = end - start;
    let shift = width.trailing_zeros();
    let perfect = width.is_power_of_two();
    let want = usize::from(!perfect) + path_len(s >> shift, t >> shift);
    check_len(proof, want)?;
    let (seed, rest) = if perfect {
        (*subtree_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    f >>= shift;
    s >>= shift;
    t >>= shift;
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if t == 0 {
            return Err(ProofError::WrongProofLength {
                got: proof.len(),
                want,
            });
        }
        if s & 1 == 1 || s == t {
            // A left sibling. Inside the subtree (fn < sn) it is part of the subtree hash.
            if f < s {
                fr = node_hash(c, &fr);
            }
            sr = node_hash(c, &sr);
            while s & 1 == 0 && s != 0 {
                f >>= 1;
                s >>= 1;
                t >>= 1;
            }
        } else {
            // A right sibling: outside the subtree.
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
        t >>= 1;
    }
    if t != 0 {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            want,
        });
    }
    if fr != *subtree_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::mth;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// RFC 9162 §2.1.3.1 `PATH(m, D[n])`, literally.
    fn rfc_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
        if m < k {
            let mut p = rfc_path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = rfc_path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    /// RFC 9162 §2.1.4.1 `SUBPROOF(m, D[n], b)`, literally.
    fn rfc_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
        if m <= k {
            let mut p = rfc_subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = rfc_subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }

    #[test]
    fn generated_proofs_equal_the_rfc_definitions() {
        let d = leaves(40);
        for n in 1..=40u64 {
            let tree = &d[..n as usize];
            let root = mth(tree);
            for m in 0..n {
                let p = inclusion_proof(tree, m, n).unwrap();
                assert_eq!(p, rfc_path(m as usize, tree), "PATH({m}, D[{n}])");
                verify_inclusion(&tree[m as usize], m, n, &p, &root).unwrap();
            }
            for m in 1..=n {
                let p = consistency_proof(tree, m, n).unwrap();
                assert_eq!(
                    p,
                    rfc_subproof(m as usize, tree, true),
                    "PROOF({m}, D[{n}])"
                );
                let old = mth(&tree[..m as usize]);
                verify_consistency(m, n, &old, &root, &p).unwrap();
                verify_subtree_consistency(0, m, n, &p, &old, &root).unwrap();
            }
        }
    }

    #[test]
    fn errors_are_precise() {
        let d = leaves(8);
        let root = mth(&d);
        let p = inclusion_proof(&d[..], 5, 8).unwrap();
        assert_eq!(
            verify_inclusion(&d[5], 8, 8, &p, &root),
            Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            verify_inclusion(&d[5], 5, 8, &p[..2], &root),
            Err(ProofError::WrongProofLength { got: 2, want: 3 })
        );
        assert_eq!(
            verify_inclusion(&d[4], 5, 8, &p, &root),
            Err(ProofError::RootMismatch)
        );
        assert!(matches!(
            inclusion_proof(&d[..], 1, 9),
            Err(GenerateError::Proof(ProofError::SizeBeyondLog {
                size: 9,
                leaf_count: 8
            }))
        ));
        assert!(matches!(
            consistency_proof(&d[..], 0, 3),
            Err(GenerateError::Proof(ProofError::EmptyOldTree))
        ));
        assert!(matches!(
            consistency_proof(&d[..], 4, 3),
            Err(GenerateError::Proof(ProofError::SizesReversed {
                old: 4,
                new: 3
            }))
        ));
        let old = mth(&d[..3]);
        let c = consistency_proof(&d[..], 3, 8).unwrap();
        assert_eq!(
            verify_consistency(3, 8, &root, &root, &c),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 8, &old, &old, &c),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(verify_consistency(3, 8, &old, &root, &c), Ok(()));
    }

    #[test]
    fn execute_checks_node_count() {
        let plan = ProofPlan::inclusion(3, 7).unwrap();
        assert_eq!(
            plan.assemble(&[]),
            Err(ProofError::NodeCount {
                got: 0,
                want: plan.nodes().len()
            })
        );
    }
}
