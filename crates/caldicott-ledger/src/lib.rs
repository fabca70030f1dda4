//! The pure core of Caldicott's tamper-evident audit ledger.
//!
//! What it is:
//!
//! - **RFC 9162 (RFC 6962) Merkle tree hashing**: leaf hash SHA-256(0x00 ‖ data), node hash
//!   SHA-256(0x01 ‖ left ‖ right), empty root SHA-256(""), as [`leaf_hash`], [`node_hash`],
//!   [`EMPTY_ROOT`]; [`mth`] is the recursive definition, [`Frontier`] the incremental
//!   root (O(log n) per append).
//! - **Proofs**: inclusion and consistency proofs (RFC 9162 §2.1.3, §2.1.4) and their
//!   subtree variants (for C2SP tlog-witness), generated from any [`HashSource`] (complete
//!   subtree hashes, O(log n) reads per proof, batched into one
//!   [`HashSource::node_hashes`] call) and verified by the RFC's algorithms. [`MemoryTree`]
//!   is an in-memory source; a plain `[Hash]` slice of leaf hashes is another.
//! - **Signed notes and checkpoints**: C2SP signed notes with Ed25519 keys in the
//!   golang.org/x/mod/sumdb/note key formats ([`note`]), and tlog checkpoints
//!   ([`Checkpoint`]).
//!
//! What it is not: no storage, no I/O, no HTTP, no clock, and no audit event schema. It does
//! not decide what a leaf contains (the caller hashes its own canonical bytes with
//! [`leaf_hash`]), does not store nodes (the vault implements [`HashSource`] and saves the
//! nodes [`Frontier::append_with`] reports), and does not serve tiles, witness APIs or
//! cosignatures (C2SP tlog-tiles, tlog-witness, tlog-cosignature).
//!
//! SHA-256 and Ed25519 are aws-lc-rs's, the provider the vault and rustls already use.
//! Every tree size and leaf index is a `u64` up to 2^64 − 1; no size, index or proof makes
//! the tree, proof or verification functions overflow or panic. Hashes are always 32 bytes:
//! [`struct@Hash`] parsers refuse any other length.
//!
//! ```
//! use caldicott_ledger::{Checkpoint, MemoryTree, SignerKey, consistency_proof,
//!     inclusion_proof, leaf_hash, verify_consistency, verify_inclusion};
//!
//! let mut log = MemoryTree::new();
//! for event in [b"a".as_slice(), b"b", b"c", b"d", b"e"] {
//!     log.append(leaf_hash(event)).unwrap();
//! }
//! let root = log.root();
//!
//! // Leaf 2 is in the tree of 5 leaves; the tree of 3 leaves is a prefix of it.
//! let proof = inclusion_proof(&log, 2, 5).unwrap();
//! verify_inclusion(&leaf_hash(b"c"), 2, 5, &proof, &root).unwrap();
//! let old_root = log.root_at(3).unwrap();
//! let proof = consistency_proof(&log, 3, 5).unwrap();
//! verify_consistency(3, 5, &old_root, &root, &proof).unwrap();
//!
//! // A signed checkpoint of the tree head.
//! let key = SignerKey::generate("audit.example.nhs.uk/log").unwrap();
//! let note = Checkpoint::new("audit.example.nhs.uk/log", 5, root).unwrap().sign(&[&key]).unwrap();
//! let (checkpoint, _) = Checkpoint::open(note.as_bytes(), &[key.verifier_key()]).unwrap();
//! assert_eq!(checkpoint.root(), &root);
//! ```

#![forbid(unsafe_code)]

mod checkpoint;
mod frontier;
mod hash;
pub mod note;
mod proof;
mod source;
mod tree;
pub mod witness;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use frontier::{Frontier, FrontierError};
pub use hash::{EMPTY_ROOT, HASH_LEN, Hash, HashParseError, leaf_hash, node_hash, sha256};
pub use note::{KeyError, Note, NoteError, SignerKey, VerifiedNote, VerifierKey};
pub use proof::{
    GenerateError, ProofError, ProofPlan, consistency_proof, execute, inclusion_proof,
    root_from_inclusion_proof, subtree_consistency_proof, subtree_inclusion_proof, subtree_root,
    tree_root, verify_consistency, verify_inclusion, verify_subtree_consistency,
    verify_subtree_inclusion,
};
pub use source::{HashSource, MemoryTree, MissingNode};
pub use tree::{NodeId, is_valid_subtree, mth};
pub use witness::{
    Conflict, EpochLink, SealRecord, SignedCheckpoint, Verdict, Which, WitnessError,
};
