//! What a witness and a remote verifier decide when a log shows them a new checkpoint.
//!
//! Both keep the last signed checkpoint they trust (none the first time), fetch the log's
//! latest signed checkpoint, and ask the log for a consistency proof between the two tree
//! sizes ([`consistency_needed`] says which, if any). [`decide`] then says whether the log
//! advanced honestly ([`Verdict`]) or what is wrong ([`WitnessError`]):
//!
//! | what was seen | answer |
//! |---|---|
//! | no trusted checkpoint yet | [`Verdict::First`] (trust on first use) |
//! | same size, same root | [`Verdict::Same`] |
//! | larger size, proof verifies | [`Verdict::Advance`] |
//! | a later epoch | [`Verdict::NewEpoch`], then [`verify_epoch_link`] (see below) |
//! | a signature that does not verify | [`WitnessError::BadSignature`] |
//! | no signature by the log's key | [`WitnessError::WrongKey`] |
//! | not a signed note or not a checkpoint | [`WitnessError::Malformed`] |
//! | another origin than the trusted checkpoint's | [`WitnessError::WrongOrigin`] |
//! | smaller size, or an earlier epoch | [`WitnessError::Rollback`] |
//! | same size, different root | [`WitnessError::Fork`] |
//! | larger size, proof fails | [`WitnessError::Inconsistent`] |
//! | a later epoch whose link fails | [`WitnessError::BrokenLink`] |
//!
//! The last four carry both signed notes ([`Conflict`]) so the caller can show them and
//! keep them: two checkpoints signed by the log's key that no consistency proof can join
//! are the evidence that it rewrote or forked its history (a rollback may also be a stale
//! replica; it is reported all the same, since an honest log never goes back).
//!
//! **Epochs.** The vault's ledger is never edited; retention *seals* it: a final checkpoint
//! closes the current epoch and a new tree starts, whose first leaf names the sealed
//! checkpoint. Checkpoints of epoch `n ≥ 2` carry the extension line `epoch <n>` (none is
//! epoch 1). Trees of different epochs are not prefixes of each other, so [`decide`] answers
//! a checkpoint of a later epoch with [`Verdict::NewEpoch`], which means "check the link":
//! [`verify_epoch_link`] then proves the continuity from what the log serves
//! ([`EpochLink`]): the trusted tree is a prefix of its epoch's seal, every seal is signed
//! by the log's key, and each later epoch's first leaf records exactly the seal before it
//! and is included in that epoch's tree. Any failure is [`WitnessError::BrokenLink`], with
//! the evidence. An earlier epoch than the trusted one is a rollback.
//!
//! Pure: no I/O, no clock; the caller fetches and stores the notes.

use std::fmt;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{EMPTY_ROOT, Hash, leaf_hash};
use crate::note::{NoteError, VerifierKey};
use crate::proof::{ProofError, verify_consistency, verify_inclusion};

/// The outcome of [`decide`] when the new checkpoint may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// There was no trusted checkpoint: the new one is trusted on first use.
    First {
        /// Its tree size.
        size: u64,
    },
    /// The new checkpoint has the trusted one's size and root.
    Same {
        /// The tree size.
        size: u64,
    },
    /// The log grew, and the tree of `from` leaves is a prefix of the tree of `to` leaves.
    Advance {
        /// The trusted size.
        from: u64,
        /// The new size.
        to: u64,
    },
    /// The log was sealed and a later epoch began: the new tree is not an extension of the
    /// trusted one. From [`decide`] this means the link is still to be checked with
    /// [`verify_epoch_link`]; from [`verify_epoch_link`], that it was.
    NewEpoch {
        /// The trusted checkpoint's epoch.
        from_epoch: u64,
        /// The trusted checkpoint's size.
        from_size: u64,
        /// The new checkpoint's epoch.
        to_epoch: u64,
        /// The new checkpoint's size.
        to_size: u64,
    },
}

/// Which of the two checkpoints a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The checkpoint trusted before (kept by the caller).
    Trusted,
    /// The checkpoint the log just served.
    New,
    /// A sealed epoch's final checkpoint, served to link epochs ([`verify_epoch_link`]).
    Seal,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Which::Trusted => "the trusted checkpoint",
            Which::New => "the new checkpoint",
            Which::Seal => "the seal",
        })
    }
}

/// Two signed checkpoints of one log that cannot both be honest: the evidence.
#[derive(Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The signed note trusted before.
    pub old_note: String,
    /// The signed note that contradicts it.
    pub new_note: String,
}

impl fmt::Debug for Conflict {
    /// Both notes, as text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Conflict {{ old_note: {:?}, new_note: {:?} }}",
            self.old_note, self.new_note
        )
    }
}

/// Why a new checkpoint is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// A signature by the log's key does not verify.
    #[error("{which} has an invalid signature by the log's key {key}")]
    BadSignature {
        /// Which note.
        which: Which,
        /// The key, as `<name>+<key id>`.
        key: String,
    },
    /// The note has no signature by the log's key.
    #[error("{which} is not signed by the log's key {key} ({unknown} signature(s) by other keys)")]
    WrongKey {
        /// Which note.
        which: Which,
        /// The key, as `<name>+<key id>`.
        key: String,
        /// Signatures by keys the caller does not know.
        unknown: usize,
    },
    /// Not a signed note, or its text is not a checkpoint.
    #[error("{which} is malformed: {reason}")]
    Malformed {
        /// Which note.
        which: Which,
        /// What is wrong.
        reason: String,
    },
    /// The new checkpoint is of another log than the trusted one.
    #[error("the log's origin changed from {trusted:?} to {new:?}")]
    WrongOrigin {
        /// The trusted checkpoint's origin.
        trusted: String,
        /// The new checkpoint's origin.
        new: String,
    },
    /// The log signed a smaller tree than it signed before, or a tree of an earlier epoch.
    #[error(
        "rollback: the log signed a tree of {old_size} entries{} before, and now one of {new_size}{}",
        epoch_phrase(*old_epoch, *new_epoch),
        epoch_phrase(*new_epoch, *old_epoch)
    )]
    Rollback {
        /// The trusted size.
        old_size: u64,
        /// The new size.
        new_size: u64,
        /// The trusted epoch.
        old_epoch: u64,
        /// The new epoch (the trusted one, or an earlier one).
        new_epoch: u64,
        /// Both notes.
        evidence: Conflict,
    },
    /// The log signed two different trees of the same size.
    #[error(
        "fork: the log signed two different trees of {size} entries (roots {old_root} and {new_root})"
    )]
    Fork {
        /// The tree size.
        size: u64,
        /// The trusted root.
        old_root: Hash,
        /// The new root.
        new_root: Hash,
        /// Both notes.
        evidence: Conflict,
    },
    /// The consistency proof does not show the old tree to be a prefix of the new one.
    #[error(
        "inconsistent: the log's tree of {from} entries is not shown to be a prefix of its tree of {to} entries ({error})"
    )]
    Inconsistent {
        /// The trusted size.
        from: u64,
        /// The new size.
        to: u64,
        /// Why the proof failed.
        error: ProofError,
        /// Both notes.
        evidence: Conflict,
    },
    /// A later epoch's checkpoint that the log's seals and first entries do not join to the
    /// trusted checkpoint: a seal not signed by the log's key, not consistent with the
    /// trusted tree, or not named by the next epoch's first entry.
    #[error("broken epoch link from epoch {from_epoch} to epoch {to_epoch}: {reason}")]
    BrokenLink {
        /// The trusted checkpoint's epoch.
        from_epoch: u64,
        /// The new checkpoint's epoch.
        to_epoch: u64,
        /// What does not hold, naming the epoch, sizes and roots.
        reason: String,
        /// The seals the log served (signed notes, oldest first), as evidence.
        seals: Vec<String>,
        /// The trusted and the new checkpoint.
        evidence: Conflict,
    },
}

/// " in epoch N" when the two epochs differ.
fn epoch_phrase(epoch: u64, other: u64) -> String {
    if epoch == other {
        String::new()
    } else {
        format!(" in epoch {epoch}")
    }
}

/// Extension lines starting with this name the checkpoint's epoch.
const EPOCH_PREFIX: &str = "epoch ";

/// The epoch a checkpoint names (`epoch <n>`, `n ≥ 2`, canonical decimal; none is 1).
fn epoch_of(c: &Checkpoint) -> Result<u64, String> {
    let mut epochs = c
        .extensions()
        .iter()
        .filter_map(|e| e.strip_prefix(EPOCH_PREFIX));
    let Some(text) = epochs.next() else {
        return Ok(1);
    };
    if epochs.next().is_some() {
        return Err("the checkpoint names its epoch twice".to_owned());
    }
    match text.parse::<u64>() {
        Ok(n) if n >= 2 && n.to_string() == text => Ok(n),
        _ => Err("the checkpoint's epoch line is not `epoch <n>` with n ≥ 2".to_owned()),
    }
}

impl WitnessError {
    /// The two conflicting notes, when the error is evidence of misbehaviour
    /// ([`WitnessError::Rollback`], [`WitnessError::Fork`], [`WitnessError::Inconsistent`],
    /// [`WitnessError::BrokenLink`]).
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            WitnessError::Rollback { evidence, .. }
            | WitnessError::Fork { evidence, .. }
            | WitnessError::Inconsistent { evidence, .. }
            | WitnessError::BrokenLink { evidence, .. } => Some(evidence),
            _ => None,
        }
    }
}

/// A checkpoint whose note carries a valid signature by the log's key: the note as signed
/// (exactly the bytes given) and the checkpoint it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    note: String,
    checkpoint: Checkpoint,
    epoch: u64,
}

impl SignedCheckpoint {
    /// Verifies `note` against the log's key and parses its checkpoint. A checkpoint of the
    /// empty tree must carry the empty root; an `epoch` extension line must be well formed.
    ///
    /// # Errors
    /// [`WitnessError::BadSignature`], [`WitnessError::WrongKey`] or
    /// [`WitnessError::Malformed`], about `which`.
    pub fn open(note: &[u8], key: &VerifierKey, which: Which) -> Result<Self, WitnessError> {
        let key_name = format!("{}+{:08x}", key.name(), key.key_id());
        let (checkpoint, _) =
            Checkpoint::open(note, std::slice::from_ref(key)).map_err(|e| match e {
                CheckpointError::Note(NoteError::InvalidSignature { .. }) => {
                    WitnessError::BadSignature {
                        which,
                        key: key_name.clone(),
                    }
                }
                CheckpointError::Note(NoteError::NoKnownSignature { unknown }) => {
                    WitnessError::WrongKey {
                        which,
                        key: key_name.clone(),
                        unknown,
                    }
                }
                other => WitnessError::Malformed {
                    which,
                    reason: other.to_string(),
                },
            })?;
        if checkpoint.size() == 0 && *checkpoint.root() != EMPTY_ROOT {
            return Err(WitnessError::Malformed {
                which,
                reason: "a checkpoint of the empty tree must carry the empty root".to_owned(),
            });
        }
        let epoch =
            epoch_of(&checkpoint).map_err(|reason| WitnessError::Malformed { which, reason })?;
        // `Checkpoint::open` accepted the bytes as a UTF-8 note.
        let note = String::from_utf8_lossy(note).into_owned();
        Ok(Self {
            note,
            checkpoint,
            epoch,
        })
    }

    /// The signed note.
    #[must_use]
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The checkpoint.
    #[must_use]
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The checkpoint's epoch (1 unless an `epoch <n>` extension line says otherwise).
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The sizes `(from, to)` of the consistency proof [`decide`] needs to move from `trusted`
/// to `new`, or `None` when it needs none (first use, same size, a smaller new size,
/// another epoch, or a trusted empty tree, which every tree extends).
#[must_use]
pub fn consistency_needed(
    trusted: Option<&SignedCheckpoint>,
    new: &SignedCheckpoint,
) -> Option<(u64, u64)> {
    let trusted = trusted?;
    let (old, size) = (trusted.checkpoint.size(), new.checkpoint.size());
    (trusted.epoch == new.epoch && old > 0 && old < size).then_some((old, size))
}

/// Decides whether the signed checkpoint `new` may replace `trusted` (both signed notes,
/// verified here against the log's `key`), given the consistency proof between their sizes
/// (as [`consistency_needed`] names them; ignored when none is needed).
///
/// # Errors
/// A [`WitnessError`]: the note refused, or the misbehaviour seen with its evidence.
pub fn decide(
    key: &VerifierKey,
    trusted: Option<&[u8]>,
    new: &[u8],
    proof: &[Hash],
) -> Result<Verdict, WitnessError> {
    let trusted = trusted
        .map(|t| SignedCheckpoint::open(t, key, Which::Trusted))
        .transpose()?;
    let new = SignedCheckpoint::open(new, key, Which::New)?;
    decide_signed(trusted.as_ref(), &new, proof)
}

/// [`decide`] for checkpoints already opened with [`SignedCheckpoint::open`].
///
/// # Errors
/// [`WitnessError::WrongOrigin`], [`WitnessError::Rollback`], [`WitnessError::Fork`],
/// [`WitnessError::Inconsistent`].
pub fn decide_signed(
    trusted: Option<&SignedCheckpoint>,
    new: &SignedCheckpoint,
    proof: &[Hash],
) -> Result<Verdict, WitnessError> {
    let n = &new.checkpoint;
    let Some(trusted) = trusted else {
        return Ok(Verdict::First { size: n.size() });
    };
    let t = &trusted.checkpoint;
    if t.origin() != n.origin() {
        return Err(WitnessError::WrongOrigin {
            trusted: t.origin().to_owned(),
            new: n.origin().to_owned(),
        });
    }
    let evidence = || Conflict {
        old_note: trusted.note.clone(),
        new_note: new.note.clone(),
    };
    let (from, to) = (t.size(), n.size());
    if new.epoch > trusted.epoch {
        return Ok(Verdict::NewEpoch {
            from_epoch: trusted.epoch,
            from_size: from,
            to_epoch: new.epoch,
            to_size: to,
        });
    }
    if new.epoch < trusted.epoch || to < from {
        return Err(WitnessError::Rollback {
            old_size: from,
            new_size: to,
            old_epoch: trusted.epoch,
            new_epoch: new.epoch,
            evidence: evidence(),
        });
    }
    if to == from {
        return if t.root() == n.root() {
            Ok(Verdict::Same { size: to })
        } else {
            Err(WitnessError::Fork {
                size: to,
                old_root: *t.root(),
                new_root: *n.root(),
                evidence: evidence(),
            })
        };
    }
    if from == 0 {
        // Every tree extends the empty one (whose root `open` checked).
        return Ok(Verdict::Advance { from, to });
    }
    verify_consistency(from, to, t.root(), n.root(), proof).map_err(|error| {
        WitnessError::Inconsistent {
            from,
            to,
            error,
            evidence: evidence(),
        }
    })?;
    Ok(Verdict::Advance { from, to })
}

/// What a new epoch's first entry says about the epoch sealed before it (the caller decodes
/// its own leaf format into this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealRecord {
    /// The sealed epoch.
    pub epoch: u64,
    /// Its final size.
    pub size: u64,
    /// Its final root.
    pub root: Hash,
}

/// What the log serves to join a trusted checkpoint of epoch `a` to a checkpoint of a later
/// epoch `b` ([`verify_epoch_link`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochLink {
    /// The seals (final signed checkpoints, as signed notes) of epochs `a`, `a + 1`, …,
    /// `b − 1`, in that order.
    pub seals: Vec<Vec<u8>>,
    /// The consistency proof, within epoch `a`, from the trusted size to the size of `a`'s
    /// seal (ignored when they are equal or the trusted tree is empty).
    pub to_seal: Vec<Hash>,
    /// For epochs `a + 1`, …, `b`, in that order: the epoch's first entry (leaf bytes) and
    /// its inclusion proof (index 0) in the tree of that epoch's seal, or, for `b`, of the
    /// new checkpoint.
    pub first_entries: Vec<(Vec<u8>, Vec<Hash>)>,
}

/// Checks that `new` (epoch `b`) continues `trusted` (epoch `a < b`) through the seals and
/// first entries in `link`:
///
/// 1. every seal is signed by the log's `key`, has the log's origin and names its epoch;
/// 2. the trusted tree is a prefix of epoch `a`'s seal (a consistency proof; equal roots at
///    equal sizes);
/// 3. for every epoch `k` in `a + 1 ..= b`, its first entry, read by `read_record`, records
///    exactly the seal of epoch `k − 1` (epoch, size, root), and is included (index 0) in
///    the tree of `k`'s seal, or for `b` of `new`.
///
/// `new` must have at least one entry: an epoch that has none yet cannot show its link
/// (callers ask again later rather than call this).
///
/// # Errors
/// [`WitnessError::WrongOrigin`] when `new` is another log's; [`WitnessError::BrokenLink`],
/// with the trusted and new notes and the seals served, for anything else.
pub fn verify_epoch_link(
    key: &VerifierKey,
    trusted: &SignedCheckpoint,
    new: &SignedCheckpoint,
    link: &EpochLink,
    read_record: &dyn Fn(&[u8]) -> Result<SealRecord, String>,
) -> Result<Verdict, WitnessError> {
    let (t, n) = (&trusted.checkpoint, &new.checkpoint);
    if t.origin() != n.origin() {
        return Err(WitnessError::WrongOrigin {
            trusted: t.origin().to_owned(),
            new: n.origin().to_owned(),
        });
    }
    let (a, b) = (trusted.epoch, new.epoch);
    let broken = |reason: String| WitnessError::BrokenLink {
        from_epoch: a,
        to_epoch: b,
        reason,
        seals: link
            .seals
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        evidence: Conflict {
            old_note: trusted.note.clone(),
            new_note: new.note.clone(),
        },
    };
    let Some(span) = b.checked_sub(a).filter(|d| *d > 0) else {
        return Err(broken(format!(
            "epoch {b} is not later than the trusted epoch {a}"
        )));
    };
    if link.seals.len() as u64 != span || link.first_entries.len() as u64 != span {
        return Err(broken(format!(
            "{span} epoch(s) were sealed, but the log served {} seal(s) and {} first entries",
            link.seals.len(),
            link.first_entries.len()
        )));
    }
    // 1. The seals, epoch a first.
    let mut seals = Vec::with_capacity(link.seals.len());
    for (k, note) in (a..b).zip(&link.seals) {
        let seal = SignedCheckpoint::open(note, key, Which::Seal)
            .map_err(|e| broken(format!("epoch {k}: {e}")))?;
        if seal.checkpoint.origin() != t.origin() {
            return Err(broken(format!(
                "the seal of epoch {k} is of another log ({:?})",
                seal.checkpoint.origin()
            )));
        }
        if seal.epoch != k {
            return Err(broken(format!(
                "the seal of epoch {k} names epoch {}",
                seal.epoch
            )));
        }
        seals.push(seal);
    }
    // 2. The trusted tree is a prefix of epoch a's final tree.
    let first = seals
        .first()
        .map(|s| &s.checkpoint)
        .ok_or_else(|| broken("no seal of the trusted epoch".to_owned()))?;
    let (s, big_s) = (t.size(), first.size());
    if s > big_s {
        return Err(broken(format!(
            "the seal of epoch {a} has {big_s} entries, fewer than the {s} trusted"
        )));
    }
    if s == big_s && t.root() != first.root() {
        return Err(broken(format!(
            "the seal of epoch {a} has the trusted size {s} but another root ({} instead of {})",
            first.root(),
            t.root()
        )));
    }
    if s > 0 && s < big_s {
        verify_consistency(s, big_s, t.root(), first.root(), &link.to_seal).map_err(|e| {
            broken(format!(
                "the trusted tree of {s} entries is not shown to be a prefix of epoch {a}'s \
                 sealed tree of {big_s} entries ({e})"
            ))
        })?;
    }
    // 3. Each later epoch's first entry records the seal before it and is in its tree.
    for (i, (leaf, proof)) in link.first_entries.iter().enumerate() {
        let k = a + 1 + i as u64;
        let (prev, tree) = match (seals.get(i), seals.get(i + 1)) {
            (Some(prev), Some(own)) => (&prev.checkpoint, &own.checkpoint),
            (Some(prev), None) => (&prev.checkpoint, n),
            _ => return Err(broken(format!("no seal of epoch {}", k - 1))),
        };
        if tree.size() == 0 {
            return Err(broken(format!(
                "epoch {k} has no entries, so nothing in it records the seal of epoch {}",
                k - 1
            )));
        }
        let record = read_record(leaf).map_err(|e| {
            broken(format!(
                "the first entry of epoch {k} is not the record of a seal: {e}"
            ))
        })?;
        let want = SealRecord {
            epoch: k - 1,
            size: prev.size(),
            root: *prev.root(),
        };
        if record != want {
            return Err(broken(format!(
                "the first entry of epoch {k} records epoch {} sealed at {} entries with root {}, \
                 but the seal of epoch {} has {} entries and root {}",
                record.epoch, record.size, record.root, want.epoch, want.size, want.root
            )));
        }
        verify_inclusion(&leaf_hash(leaf), 0, tree.size(), proof, tree.root()).map_err(|e| {
            broken(format!(
                "the first entry of epoch {k} is not shown to be entry 0 of its tree of {} \
                 entries ({e})",
                tree.size()
            ))
        })?;
    }
    Ok(Verdict::NewEpoch {
        from_epoch: a,
        from_size: s,
        to_epoch: b,
        to_size: n.size(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::SignerKey;
    use crate::proof::{consistency_proof, inclusion_proof};
    use crate::source::MemoryTree;

    const ORIGIN: &str = "audit.example.nhs.uk/log";

    fn tree(leaves: &[&[u8]]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.append(leaf_hash(l)).unwrap();
        }
        t
    }

    fn note(key: &SignerKey, origin: &str, t: &MemoryTree) -> String {
        Checkpoint::new(origin, t.size(), t.root())
            .unwrap()
            .sign(&[key])
            .unwrap()
    }

    fn letters(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("event {i}").into_bytes()).collect()
    }

    fn log(leaves: &[Vec<u8>]) -> MemoryTree {
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        tree(&refs)
    }

    #[test]
    fn first_same_and_advance() {
        let key = SignerKey::generate(ORIGIN).unwrap();
        let vkey = key.verifier_key();
        let leaves = letters(7);
        let small = log(&leaves[..3]);
        let big = log(&leaves);
        let (a, b) = (note(&key, ORIGIN, &small), note(&key, ORIGIN, &big));

        assert_eq!(
            decide(&vkey, None, a.as_bytes(), &[]),
            Ok(Verdict::First { size: 3 })
        );
        assert_eq!(
            decide(&vkey, Some(a.as_bytes()), a.as_bytes(), &[]),
            Ok(Verdict::Same { size: 3 })
        );
        let opened_a = SignedCheckpoint::open(a.as_bytes(), &vkey, Which::Trusted).unwrap();
        let opened_b = SignedCheckpoint::open(b.as_bytes(), &vkey, Which::New).unwrap();
        assert_eq!(opened_a.note(), a);
        assert_eq!(opened_b.checkpoint().size(), 7);
        assert_eq!(opened_a.epoch(), 1);
        assert_eq!(consistency_needed(Some(&opened_a), &opened_b), Some((3, 7)));
        assert_eq!(consistency_needed(None, &opened_b), None);
        assert_eq!(consistency_needed(Some(&opened_b), &opened_a), None);
        assert_eq!(consistency_needed(Some(&opened_a), &opened_a), None);
        let proof = consistency_proof(&big, 3, 7).unwrap();
        assert_eq!(
            decide(&vkey, Some(a.as_bytes()), b.as_bytes(), &proof),
            Ok(Verdict::Advance { from: 3, to: 7 })
        );
        assert_eq!(
            decide_signed(Some(&opened_a), &opened_b, &proof),
            Ok(Verdict::Advance { from: 3, to: 7 })
        );
    }

    #[test]
    fn from_the_empty_tree() {
        let key = SignerKey::generate(ORIGIN).unwrap();
        let vkey = key.verifier_key();
        let empty = note(&key, ORIGIN, &MemoryTree::new());
        let big = note(&key, ORIGIN, &log(&letters(4)));
        let opened = SignedCheckpoint::open(empty.as_bytes(), &vkey, Which::Trusted).unwrap();
        let new = SignedCheckpoint::open(big.as_bytes(), &vkey, Which::New).unwrap();
        assert_eq!(consistency_needed(Some(&opened), &new), None);
        assert_eq!(
            decide(&vkey, Some(empty.as_bytes()), big.as_bytes(), &[]),
            Ok(Verdict::Advance { from: 0, to: 4 })
        );
        assert_eq!(
            decide(&vkey, Some(empty.as_bytes()), empty.as_bytes(), &[]),
            Ok(Verdict::Same { size: 0 })
        );
        // A size-0 checkpoint with another root is a false statement.
        let lie = Checkpoint::new(ORIGIN, 0, leaf_hash(b"x"))
            .unwrap()
            .sign(&[&key])
            .unwrap();
        let err = decide(&vkey, None, lie.as_bytes(), &[]).unwrap_err();
        assert!(
            matches!(
                err,
                WitnessError::Malformed {
                    which: Which::New,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn rollback_fork_and_inconsistency_carry_both_notes() {
        let key = SignerKey::generate(ORIGIN).unwrap();
        let vkey = key.verifier_key();
        let leaves = letters(8);
        let honest5 = log(&leaves[..5]);
        let honest8 = log(&leaves);
        let mut rewritten = leaves.clone();
        rewritten[2] = b"a different event".to_vec();
        let forged5 = log(&rewritten[..5]);
        let forged8 = log(&rewritten);
        let a = note(&key, ORIGIN, &honest5);

        // Rollback.
        let small = note(&key, ORIGIN, &log(&leaves[..2]));
        let err = decide(&vkey, Some(a.as_bytes()), small.as_bytes(), &[]).unwrap_err();
        let WitnessError::Rollback {
            old_size: 5,
            new_size: 2,
            old_epoch: 1,
            new_epoch: 1,
            evidence,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            (evidence.old_note.as_str(), evidence.new_note.as_str()),
            (a.as_str(), small.as_str())
        );
        assert!(
            err.to_string()
                .contains("5 entries before, and now one of 2"),
            "{err}"
        );
        assert_eq!(err.conflict(), Some(evidence));

        // Fork at the same size.
        let f = note(&key, ORIGIN, &forged5);
        let err = decide(&vkey, Some(a.as_bytes()), f.as_bytes(), &[]).unwrap_err();
        let WitnessError::Fork {
            size: 5,
            old_root,
            new_root,
            evidence,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*old_root, *new_root), (honest5.root(), forged5.root()));
        assert_eq!(evidence.new_note, f);
        assert!(err.to_string().contains(&honest5.root().to_hex()));

        // A larger rewritten tree: the rewritten log's own proof fails, and so does the
        // honest log's proof (it reaches another root).
        let g = note(&key, ORIGIN, &forged8);
        for proof in [
            consistency_proof(&forged8, 5, 8).unwrap(),
            consistency_proof(&honest8, 5, 8).unwrap(),
            Vec::new(),
            vec![leaf_hash(b"junk"); 40],
        ] {
            let err = decide(&vkey, Some(a.as_bytes()), g.as_bytes(), &proof).unwrap_err();
            let WitnessError::Inconsistent {
                from: 5,
                to: 8,
                evidence,
                ..
            } = &err
            else {
                panic!("{err:?}")
            };
            assert_eq!(evidence.old_note, a);
            assert_eq!(evidence.new_note, g);
        }
        // The honest log of 8 with a proof of another pair of sizes fails too.
        let h = note(&key, ORIGIN, &honest8);
        let wrong_sizes = consistency_proof(&honest8, 4, 8).unwrap();
        assert!(matches!(
            decide(&vkey, Some(a.as_bytes()), h.as_bytes(), &wrong_sizes),
            Err(WitnessError::Inconsistent { .. })
        ));
        assert_eq!(
            decide(
                &vkey,
                Some(a.as_bytes()),
                h.as_bytes(),
                &consistency_proof(&honest8, 5, 8).unwrap()
            ),
            Ok(Verdict::Advance { from: 5, to: 8 })
        );
    }

    #[test]
    fn refused_notes_name_which() {
        let key = SignerKey::generate(ORIGIN).unwrap();
        let other = SignerKey::generate(ORIGIN).unwrap();
        let vkey = key.verifier_key();
        let t = log(&letters(3));
        let good = note(&key, ORIGIN, &t);
        let by_other = note(&other, ORIGIN, &t);
        let other_origin = note(&key, "elsewhere.example/log", &t);

        // The other key has the same name but another id: unknown, so not signed by ours.
        let err = decide(&vkey, None, by_other.as_bytes(), &[]).unwrap_err();
        assert!(
            matches!(
                &err,
                WitnessError::WrongKey {
                    which: Which::New,
                    unknown: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(
            "the new checkpoint is not signed by the log's key audit.example.nhs.uk/log+"
        ));
        let err = decide(&vkey, Some(by_other.as_bytes()), good.as_bytes(), &[]).unwrap_err();
        assert!(matches!(
            err,
            WitnessError::WrongKey {
                which: Which::Trusted,
                ..
            }
        ));

        // A flipped signature byte.
        let mut bad = good.clone().into_bytes();
        let at = bad.len() - 10;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let err = decide(&vkey, None, &bad, &[]).unwrap_err();
        assert!(
            matches!(
                err,
                WitnessError::BadSignature {
                    which: Which::New,
                    ..
                }
            ),
            "{err:?}"
        );

        // Not a note, not UTF-8, a note that is not a checkpoint.
        for junk in [
            b"hello".as_slice(),
            b"\xff\xfe\n\n".as_slice(),
            b"".as_slice(),
        ] {
            let err = decide(&vkey, None, junk, &[]).unwrap_err();
            assert!(
                matches!(
                    err,
                    WitnessError::Malformed {
                        which: Which::New,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(err.conflict(), None);
        }
        let text_note = crate::note::sign("just text\n", &[&key]).unwrap();
        let err = decide(&vkey, None, text_note.as_bytes(), &[]).unwrap_err();
        assert!(matches!(err, WitnessError::Malformed { .. }), "{err:?}");
        let err = decide(&vkey, Some(b"junk"), good.as_bytes(), &[]).unwrap_err();
        assert!(matches!(
            err,
            WitnessError::Malformed {
                which: Which::Trusted,
                ..
            }
        ));

        // Another origin under the same key.
        let err = decide(&vkey, Some(good.as_bytes()), other_origin.as_bytes(), &[]).unwrap_err();
        assert_eq!(
            err,
            WitnessError::WrongOrigin {
                trusted: ORIGIN.to_owned(),
                new: "elsewhere.example/log".to_owned()
            }
        );
    }

    fn epoch_note(key: &SignerKey, t: &MemoryTree, epoch: Option<&str>) -> String {
        let mut c = Checkpoint::new(ORIGIN, t.size(), t.root()).unwrap();
        if let Some(e) = epoch {
            c = c.with_extension(e).unwrap();
        }
        c.sign(&[key]).unwrap()
    }

    #[test]
    fn epochs() {
        let key = SignerKey::generate(ORIGIN).unwrap();
        let vkey = key.verifier_key();
        let epoch1 = log(&letters(9));
        let epoch2 = log(&[b"sealed epoch 1 at 9 entries".to_vec()]);
        let a = epoch_note(&key, &epoch1, None);
        let b = epoch_note(&key, &epoch2, Some("epoch 2"));
        let opened_a = SignedCheckpoint::open(a.as_bytes(), &vkey, Which::Trusted).unwrap();
        let opened_b = SignedCheckpoint::open(b.as_bytes(), &vkey, Which::New).unwrap();
        assert_eq!((opened_a.epoch(), opened_b.epoch()), (1, 2));
        assert_eq!(consistency_needed(Some(&opened_a), &opened_b), None);
        assert_eq!(
            decide(&vkey, Some(a.as_bytes()), b.as_bytes(), &[]),
            Ok(Verdict::NewEpoch {
                from_epoch: 1,
                from_size: 9,
                to_epoch: 2,
                to_size: 1
            })
        );
        // Within epoch 2, the usual rules.
        let mut grown = letters(4);
        grown.insert(0, b"sealed epoch 1 at 9 entries".to_vec());
        let epoch2_grown = log(&grown);
        let c = epoch_note(&key, &epoch2_grown, Some("epoch 2"));
        let opened_c = SignedCheckpoint::open(c.as_bytes(), &vkey, Which::New).unwrap();
        assert_eq!(consistency_needed(Some(&opened_b), &opened_c), Some((1, 5)));
        let proof = consistency_proof(&epoch2_grown, 1, 5).unwrap();
        assert_eq!(
            decide(&vkey, Some(b.as_bytes()), c.as_bytes(), &proof),
            Ok(Verdict::Advance { from: 1, to: 5 })
        );
        // Back to epoch 1, even at a larger size: a rollback.
        let err = decide(&vkey, Some(c.as_bytes()), a.as_bytes(), &[]).unwrap_err();
        assert!(
            matches!(
                &err,
                WitnessError::Rollback {
                    old_size: 5,
                    new_size: 9,
                    old_epoch: 2,
                    new_epoch: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "rollback: the log signed a tree of 5 entries in epoch 2 before, and now one of 9 in epoch 1"
        );
        assert!(err.conflict().is_some());
        // Epoch lines that are not well formed.
        for bad in ["epoch 1", "epoch 02", "epoch x", "epoch -3", "epoch "] {
            let n = epoch_note(&key, &epoch2, Some(bad));
            let err = decide(&vkey, None, n.as_bytes(), &[]).unwrap_err();
            assert!(
                matches!(err, WitnessError::Malformed { .. }),
                "{bad}: {err:?}"
            );
        }
        let twice = Checkpoint::new(ORIGIN, epoch2.size(), epoch2.root())
            .unwrap()
            .with_extension("epoch 2")
            .unwrap()
            .with_extension("epoch 3")
            .unwrap()
            .sign(&[&key])
            .unwrap();
        assert!(matches!(
            decide(&vkey, None, twice.as_bytes(), &[]),
            Err(WitnessError::Malformed { .. })
        ));
        // Other extension lines are fine.
        let other = epoch_note(&key, &epoch1, Some("epochal"));
        assert_eq!(
            decide(&vkey, Some(a.as_bytes()), other.as_bytes(), &[]),
            Ok(Verdict::Same { size: 9 })
        );
    }

    /// The test's seal record: `seal <epoch> <size> <root base64>`.
    fn record_leaf(epoch: u64, size: u64, root: &Hash) -> Vec<u8> {
        format!("seal {epoch} {size} {}", root.to_base64()).into_bytes()
    }

    fn read_record(leaf: &[u8]) -> Result<SealRecord, String> {
        let text = std::str::from_utf8(leaf).map_err(|_| "not UTF-8".to_owned())?;
        let mut parts = text.split(' ');
        if parts.next() != Some("seal") {
            return Err("not a seal record".to_owned());
        }
        let mut num = || -> Result<u64, String> {
            parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| "no number".to_owned())
        };
        let (epoch, size) = (num()?, num()?);
        let root = text
            .rsplit(' ')
            .next()
            .and_then(|r| Hash::from_base64(r).ok())
            .ok_or_else(|| "no root".to_owned())?;
        Ok(SealRecord { epoch, size, root })
    }

    /// A log sealed twice: epoch 1 (9 entries), epoch 2 (its record + 3), epoch 3 (its
    /// record + 2). Returns the trees and the seals of epochs 1 and 2.
    fn sealed_twice(key: &SignerKey) -> (Vec<MemoryTree>, Vec<String>) {
        let e1 = log(&letters(9));
        let mut l2 = vec![record_leaf(1, 9, &e1.root())];
        l2.extend(letters(3));
        let e2 = log(&l2);
        let mut l3 = vec![record_leaf(2, 4, &e2.root())];
        l3.extend(letters(2));
        let e3 = log(&l3);
        let seals = vec![
            epoch_note(key, &e1, None),
            epoch_note(key, &e2, Some("epoch 2")),
        ];
        (vec![e1, e2, e3], seals)
    }

    fn first_leaf(t: &MemoryTree, record: Vec<u8>) -> (Vec<u8>, Vec<Hash>) {
        (record, inclusion_proof(t, 0, t.size()).unwrap())
    }

    #[test]
    fn epoch_links_across_one_and_two_seals() {
        let key = SignerKey::generate(ORIGIN).unwrap();
        let vkey = key.verifier_key();
        let (trees, seals) = sealed_twice(&key);
        let (e1, e2, e3) = (&trees[0], &trees[1], &trees[2]);
        let open = |n: &str| SignedCheckpoint::open(n.as_bytes(), &vkey, Which::New).unwrap();
        let rec2 = record_leaf(1, 9, &e1.root());
        let rec3 = record_leaf(2, 4, &e2.root());
        // Trusted at 5 entries of epoch 1; now epoch 2 (sealed since, so its seal is its tree).
        let trusted = open(&note(&key, ORIGIN, &log(&letters(5))));
        let new2 = open(&epoch_note(&key, e2, Some("epoch 2")));
        let one = EpochLink {
            seals: vec![seals[0].clone().into_bytes()],
            to_seal: consistency_proof(e1, 5, 9).unwrap(),
            first_entries: vec![first_leaf(e2, rec2.clone())],
        };
        assert_eq!(
            verify_epoch_link(&vkey, &trusted, &new2, &one, &read_record),
            Ok(Verdict::NewEpoch {
                from_epoch: 1,
                from_size: 5,
                to_epoch: 2,
                to_size: 4
            })
        );
        // Across two seals to epoch 3.
        let new3 = open(&epoch_note(&key, e3, Some("epoch 3")));
        let two = EpochLink {
            seals: vec![seals[0].clone().into_bytes(), seals[1].clone().into_bytes()],
            to_seal: consistency_proof(e1, 5, 9).unwrap(),
            first_entries: vec![first_leaf(e2, rec2.clone()), first_leaf(e3, rec3.clone())],
        };
        assert!(matches!(
            verify_epoch_link(&vkey, &trusted, &new3, &two, &read_record),
            Ok(Verdict::NewEpoch {
                to_epoch: 3,
                to_size: 3,
                ..
            })
        ));
        // Trusted at the sealed size: equal roots, no proof needed.
        let at_seal = open(&seals[0]);
        let mut no_proof = one.clone();
        no_proof.to_seal.clear();
        assert!(verify_epoch_link(&vkey, &at_seal, &new2, &no_proof, &read_record).is_ok());

        let reason = |link: &EpochLink, new: &SignedCheckpoint| -> String {
            let err = verify_epoch_link(&vkey, &trusted, new, link, &read_record).unwrap_err();
            let WitnessError::BrokenLink {
                reason,
                evidence,
                seals,
                ..
            } = &err
            else {
                panic!("{err:?}")
            };
            assert_eq!(evidence.old_note, trusted.note());
            assert_eq!(evidence.new_note, new.note());
            assert_eq!(seals.len(), link.seals.len());
            assert!(err.conflict().is_some());
            reason.clone()
        };
        // A seal of another history of epoch 1 (not an extension of what was trusted).
        let forged1 = log(&[letters(4), letters(5)].concat());
        let mut bad = one.clone();
        bad.seals[0] = epoch_note(&key, &forged1, None).into_bytes();
        bad.to_seal = consistency_proof(&forged1, 5, 9).unwrap();
        let r = reason(&bad, &new2);
        assert!(
            r.starts_with("the trusted tree of 5 entries is not shown to be a prefix of epoch 1's sealed tree of 9 entries"),
            "{r}"
        );
        // A seal smaller than what was trusted; a seal at the trusted size with another root.
        let mut bad = one.clone();
        bad.seals[0] = epoch_note(&key, &log(&letters(3)), None).into_bytes();
        assert_eq!(
            reason(&bad, &new2),
            "the seal of epoch 1 has 3 entries, fewer than the 5 trusted"
        );
        let mut bad = one.clone();
        bad.seals[0] = epoch_note(&key, &log(&events_of("x", 5)), None).into_bytes();
        assert!(
            reason(&bad, &new2)
                .starts_with("the seal of epoch 1 has the trusted size 5 but another root"),
        );
        // A seal with a bad signature, one by another key, one naming another epoch.
        let mut bad = one.clone();
        let at = bad.seals[0].len() - 10;
        bad.seals[0][at] = if bad.seals[0][at] == b'A' { b'B' } else { b'A' };
        let r = reason(&bad, &new2);
        assert!(
            r.starts_with("epoch 1: the seal has an invalid signature by the log's key"),
            "{r}"
        );
        let other = SignerKey::generate(ORIGIN).unwrap();
        let mut bad = one.clone();
        bad.seals[0] = epoch_note(&other, e1, None).into_bytes();
        assert!(reason(&bad, &new2).contains("is not signed by the log's key"));
        let mut bad = one.clone();
        bad.seals[0] = epoch_note(&key, e1, Some("epoch 4")).into_bytes();
        assert_eq!(reason(&bad, &new2), "the seal of epoch 1 names epoch 4");
        // A first entry naming another root, another size, another epoch, or not a record.
        for (leaf, want) in [
            (
                record_leaf(1, 9, &leaf_hash(b"elsewhere")),
                "the first entry of epoch 2 records epoch 1 sealed at 9 entries with root",
            ),
            (record_leaf(1, 8, &e1.root()), "sealed at 8 entries"),
            (record_leaf(2, 9, &e1.root()), "records epoch 2 sealed"),
            (
                b"event 0".to_vec(),
                "the first entry of epoch 2 is not the record of a seal: not a seal record",
            ),
        ] {
            // The log's tree built with that first entry, so only the record is wrong.
            let mut leaves = vec![leaf.clone()];
            leaves.extend(letters(3));
            let t = log(&leaves);
            let mut bad = one.clone();
            bad.first_entries[0] = first_leaf(&t, leaf);
            let new = open(&epoch_note(&key, &t, Some("epoch 2")));
            let r = reason(&bad, &new);
            assert!(r.contains(want), "{want}: {r}");
        }
        // The right record, but not in the new epoch's tree.
        let mut bad = one.clone();
        bad.first_entries[0].1 = inclusion_proof(e2, 1, 4).unwrap();
        let r = reason(&bad, &new2);
        assert!(
            r.starts_with(
                "the first entry of epoch 2 is not shown to be entry 0 of its tree of 4 entries"
            ),
            "{r}"
        );
        // Two seals, the second one's record in epoch 3 naming a forged epoch 2.
        let mut bad = two.clone();
        let forged3 = {
            let mut l = vec![record_leaf(2, 4, &leaf_hash(b"forged"))];
            l.extend(letters(2));
            log(&l)
        };
        bad.first_entries[1] = first_leaf(&forged3, record_leaf(2, 4, &leaf_hash(b"forged")));
        let new = open(&epoch_note(&key, &forged3, Some("epoch 3")));
        assert!(reason(&bad, &new).starts_with("the first entry of epoch 3 records epoch 2"));
        // An intermediate epoch sealed empty: nothing records the seal before it.
        let empty = MemoryTree::new();
        let mut bad = two.clone();
        bad.seals[1] = epoch_note(&key, &empty, Some("epoch 2")).into_bytes();
        assert!(reason(&bad, &new3).starts_with("epoch 2 has no entries"));
        // Too few seals for the epochs crossed.
        let r = reason(&one, &new3);
        assert_eq!(
            r,
            "2 epoch(s) were sealed, but the log served 1 seal(s) and 1 first entries"
        );
        // Another log's checkpoint.
        let elsewhere = open(
            &Checkpoint::new("elsewhere.example/log", e2.size(), e2.root())
                .unwrap()
                .with_extension("epoch 2")
                .unwrap()
                .sign(&[&key])
                .unwrap(),
        );
        assert!(matches!(
            verify_epoch_link(&vkey, &trusted, &elsewhere, &one, &read_record),
            Err(WitnessError::WrongOrigin { .. })
        ));
    }

    fn events_of(prefix: &str, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{prefix} {i}").into_bytes())
            .collect()
    }

    /// The shared vectors: a real checkpoint (sum.golang.org), notes that are not
    /// checkpoints, and a corrupted signature.
    #[test]
    fn shared_vectors() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/merkle");
        let Ok(raw) = std::fs::read(dir.join("signed_note_vectors.json")) else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: ../shared/data/merkle/signed_note_vectors.json not found"
            );
            return;
        };
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let vectors = v["vectors"].as_array().unwrap();
        let find = |id: &str| {
            vectors
                .iter()
                .find(|x| x["id"] == id)
                .unwrap_or_else(|| panic!("vector {id}"))
        };
        let sum = find("sum.golang.org-checkpoint");
        let sum_key = VerifierKey::parse(sum["vkey"].as_str().unwrap()).unwrap();
        let sum_note = sum["note"].as_str().unwrap();
        assert_eq!(
            decide(&sum_key, None, sum_note.as_bytes(), &[]),
            Ok(Verdict::First { size: 6_476_701 })
        );
        assert_eq!(
            decide(
                &sum_key,
                Some(sum_note.as_bytes()),
                sum_note.as_bytes(),
                &[]
            ),
            Ok(Verdict::Same { size: 6_476_701 })
        );

        let peter = find("go-sumdb-note-PeterNeumann");
        let peter_key = VerifierKey::parse(peter["vkey"].as_str().unwrap()).unwrap();
        let peter_note = peter["note"].as_str().unwrap();
        // A valid signed note, but not a checkpoint.
        assert!(matches!(
            decide(&peter_key, None, peter_note.as_bytes(), &[]),
            Err(WitnessError::Malformed {
                which: Which::New,
                ..
            })
        ));
        // The checkpoint under another log's key.
        assert!(matches!(
            decide(&peter_key, None, sum_note.as_bytes(), &[]),
            Err(WitnessError::WrongKey { unknown: 1, .. })
        ));
        // Go's corruption: "ABCD" inserted at offset 60 of the signature line.
        let text = peter["text"].as_str().unwrap();
        let sigline = &peter_note[text.len() + 1..];
        let corrupted = format!("{text}\n{}ABCD{}", &sigline[..60], &sigline[60..]);
        let err = decide(&peter_key, None, corrupted.as_bytes(), &[]).unwrap_err();
        assert!(
            matches!(
                err,
                WitnessError::BadSignature { .. } | WitnessError::Malformed { .. }
            ),
            "{err:?}"
        );

        // The real checkpoint with a forged root under its own key: a bad signature.
        let root = sum["checkpoint"]["root_b64"].as_str().unwrap();
        let forged = sum_note.replace(root, &leaf_hash(b"x").to_base64());
        assert!(matches!(
            decide(&sum_key, Some(sum_note.as_bytes()), forged.as_bytes(), &[]),
            Err(WitnessError::BadSignature {
                which: Which::New,
                ..
            })
        ));
    }
}
