//! Properties of the Merkle core on random trees and random `u64` sizes.

use std::convert::Infallible;

use caldicott_ledger::{
    Frontier, Hash, HashSource, MemoryTree, ProofError, consistency_proof, inclusion_proof,
    leaf_hash, mth, node_hash, root_from_inclusion_proof, subtree_consistency_proof,
    subtree_inclusion_proof, subtree_root, tree_root, verify_consistency, verify_inclusion,
    verify_subtree_consistency, verify_subtree_inclusion,
};
use proptest::prelude::*;

/// `n` distinct leaves (the index is part of each leaf's data) with random contents.
fn leaves(n: usize, salt: &[u8]) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            let mut d = (i as u64).to_be_bytes().to_vec();
            d.extend_from_slice(salt);
            leaf_hash(&d)
        })
        .collect()
}

fn tree(hashes: &[Hash]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for h in hashes {
        t.append(*h).unwrap();
    }
    t
}

/// A copy of `proof` with one bit of one hash flipped.
fn flip(proof: &[Hash], which: usize, bit: u8) -> Vec<Hash> {
    let mut p = proof.to_vec();
    let i = which % p.len();
    let mut b = p[i].to_bytes();
    b[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
    p[i] = Hash::new(b);
    p
}

/// A log of 2^64 − 1 identical leaves: every complete node of a level has the same hash,
/// so any node of any size is known without storing anything.
struct Uniform {
    levels: [Hash; 64],
}

impl Uniform {
    fn new() -> Self {
        let mut levels = [leaf_hash(b"uniform"); 64];
        for l in 1..64 {
            levels[l] = node_hash(&levels[l - 1], &levels[l - 1]);
        }
        Self { levels }
    }
}

impl HashSource for Uniform {
    type Error = Infallible;

    fn leaf_count(&self) -> u64 {
        u64::MAX
    }

    fn node_hash(&self, level: u8, _index: u64) -> Result<Hash, Infallible> {
        Ok(self.levels[usize::from(level)])
    }
}

/// Sizes spread over the whole `u64` range, with the edges.
fn any_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1u64 << 63),
        Just((1u64 << 63) + 1),
        (0u32..64).prop_flat_map(|bits| (1u64 << bits)..=(1u64 << bits).saturating_mul(2)),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn incremental_root_is_the_recursive_mth(
        data in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..80),
    ) {
        let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let mut f = Frontier::new();
        prop_assert_eq!(f.root(), mth(&[]));
        let mut t = MemoryTree::new();
        for (i, h) in hashes.iter().enumerate() {
            f.append(*h).unwrap();
            t.append(*h).unwrap();
            prop_assert_eq!(f.root(), mth(&hashes[..=i]));
        }
        prop_assert_eq!(t.root(), f.root());
        prop_assert_eq!(tree_root(&hashes[..], hashes.len() as u64).unwrap(), f.root());
        // A frontier rebuilt from its parts carries on identically.
        let mut g = Frontier::from_parts(f.size(), f.nodes().to_vec()).unwrap();
        g.append(leaf_hash(b"next")).unwrap();
        f.append(leaf_hash(b"next")).unwrap();
        prop_assert_eq!(g.root(), f.root());
    }

    #[test]
    fn inclusion_proofs_verify_and_only_for_their_leaf(
        n in 1usize..300,
        salt in prop::collection::vec(any::<u8>(), 0..8),
        pick in any::<prop::sample::Index>(),
        other in any::<prop::sample::Index>(),
        older in any::<prop::sample::Index>(),
        which in any::<usize>(),
        bit in any::<u8>(),
    ) {
        let hashes = leaves(n, &salt);
        let t = tree(&hashes);
        let (i, size) = (pick.index(n) as u64, n as u64);
        let root = mth(&hashes);
        let proof = inclusion_proof(&t, i, size).unwrap();
        prop_assert_eq!(&proof, &inclusion_proof(&hashes[..], i, size).unwrap());
        prop_assert!(verify_inclusion(&hashes[i as usize], i, size, &proof, &root).is_ok());

        // Another leaf's hash, or the same hash at another index, does not verify.
        let j = other.index(n) as u64;
        if j != i {
            prop_assert!(verify_inclusion(&hashes[j as usize], i, size, &proof, &root).is_err());
            prop_assert!(verify_inclusion(&hashes[i as usize], j, size, &proof, &root).is_err());
        }
        prop_assert!(verify_inclusion(&leaf_hash(b"not a leaf"), i, size, &proof, &root).is_err());
        if !proof.is_empty() {
            let bad = flip(&proof, which, bit);
            prop_assert_eq!(
                verify_inclusion(&hashes[i as usize], i, size, &bad, &root),
                Err(ProofError::RootMismatch)
            );
        }

        // The same leaf in an earlier tree, from the same stored nodes.
        let m = i + 1 + older.index(n - i as usize) as u64;
        let old_root = t.root_at(m).unwrap();
        let p = inclusion_proof(&t, i, m).unwrap();
        prop_assert!(verify_inclusion(&hashes[i as usize], i, m, &p, &old_root).is_ok());
        if m != size {
            prop_assert!(verify_inclusion(&hashes[i as usize], i, size, &p, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_between_any_sizes(
        n in 1usize..300,
        salt in prop::collection::vec(any::<u8>(), 0..8),
        pick in any::<prop::sample::Index>(),
        which in any::<usize>(),
        bit in any::<u8>(),
    ) {
        let hashes = leaves(n, &salt);
        let t = tree(&hashes);
        let size = n as u64;
        let m = 1 + pick.index(n) as u64;
        let (old, new) = (t.root_at(m).unwrap(), t.root());
        let proof = consistency_proof(&t, m, size).unwrap();
        prop_assert_eq!(&proof, &consistency_proof(&hashes[..], m, size).unwrap());
        prop_assert!(verify_consistency(m, size, &old, &new, &proof).is_ok());
        prop_assert!(verify_subtree_consistency(0, m, size, &proof, &old, &new).is_ok());
        if m != size {
            let bad = flip(&proof, which, bit);
            prop_assert!(verify_consistency(m, size, &old, &new, &bad).is_err());
            prop_assert!(verify_subtree_consistency(0, m, size, &bad, &old, &new).is_err());
            prop_assert!(verify_consistency(m, size, &new, &new, &proof).is_err());
            prop_assert!(verify_consistency(m, size, &old, &old, &proof).is_err());
            let other = leaves(n, b"other");
            let other_old = mth(&other[..m as usize]);
            prop_assert!(verify_consistency(m, size, &other_old, &new, &proof).is_err());
            if m > 1 {
                prop_assert!(verify_consistency(m - 1, size, &old, &new, &proof).is_err());
            }
        }
    }

    #[test]
    fn subtree_proofs_verify(
        n in 1usize..300,
        level in 0u32..9,
        block in any::<prop::sample::Index>(),
        width in any::<prop::sample::Index>(),
        extra in any::<prop::sample::Index>(),
        which in any::<usize>(),
        bit in any::<u8>(),
    ) {
        let hashes = leaves(n, b"subtree");
        let t = tree(&hashes);
        // A random valid, non-empty subtree [start, end) inside the tree.
        let span = 1u64 << level;
        let blocks = (n as u64).div_ceil(span);
        let start = block.index(blocks as usize) as u64 * span;
        let max_width = span.min(n as u64 - start);
        let end = start + 1 + width.index(max_width as usize) as u64;
        let size = end + extra.index(n - end as usize + 1) as u64;
        let sub = mth(&hashes[start as usize..end as usize]);
        prop_assert_eq!(subtree_root(&t, start, end).unwrap(), sub);
        let root = t.root_at(size).unwrap();

        let proof = subtree_consistency_proof(&t, start, end, size).unwrap();
        prop_assert!(verify_subtree_consistency(start, end, size, &proof, &sub, &root).is_ok());
        if !proof.is_empty() {
            let bad = flip(&proof, which, bit);
            prop_assert!(verify_subtree_consistency(start, end, size, &bad, &sub, &root).is_err());
        }
        prop_assert!(
            verify_subtree_consistency(start, end, size, &proof, &leaf_hash(b"x"), &root).is_err()
        );

        let i = start + which as u64 % (end - start);
        let p = subtree_inclusion_proof(&t, i, start, end).unwrap();
        prop_assert!(verify_subtree_inclusion(&hashes[i as usize], i, start, end, &p, &sub).is_ok());
        prop_assert!(verify_subtree_inclusion(&leaf_hash(b"x"), i, start, end, &p, &sub).is_err());
    }

    #[test]
    fn huge_sizes_neither_overflow_nor_panic(
        size in any_size(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let src = Uniform::new();
        if size > 0 {
            let index = a % size;
            let root = tree_root(&src, size).unwrap();
            let proof = inclusion_proof(&src, index, size).unwrap();
            prop_assert!(proof.len() <= 64);
            prop_assert!(verify_inclusion(&src.levels[0], index, size, &proof, &root).is_ok());
            let m = 1 + b % size;
            let c = consistency_proof(&src, m, size).unwrap();
            prop_assert!(c.len() <= 128);
            let old = tree_root(&src, m).unwrap();
            prop_assert!(verify_consistency(m, size, &old, &root, &c).is_ok());
        }
        // Inclusion past the end is refused, not wrapped.
        prop_assert!(
            matches!(inclusion_proof(&src, size, size), Err(e) if e.to_string().contains("outside"))
        );
    }

    #[test]
    fn arbitrary_verifier_inputs_never_panic(
        index in any_size(),
        size in any_size(),
        start in any_size(),
        end in any_size(),
        proof in prop::collection::vec(any::<[u8; 32]>(), 0..140),
    ) {
        let proof: Vec<Hash> = proof.into_iter().map(Hash::new).collect();
        let h = leaf_hash(b"x");
        let _ = root_from_inclusion_proof(&h, index, size, &proof);
        let _ = verify_inclusion(&h, index, size, &proof, &h);
        let _ = verify_consistency(index, size, &h, &h, &proof);
        let _ = verify_consistency(index.min(size), size, &h, &h, &proof);
        let _ = verify_subtree_inclusion(&h, index, start, end, &proof, &h);
        let _ = verify_subtree_consistency(start, end, size, &proof, &h, &h);
        let _ = verify_subtree_consistency(start, end.max(start), size.max(end), &proof, &h, &h);
        let src = Uniform::new();
        let _ = subtree_consistency_proof(&src, start, end, size);
        let _ = subtree_inclusion_proof(&src, index, start, end);
        let _ = subtree_root(&src, start, end);
    }
}
