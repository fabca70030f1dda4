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
//! | a later epoch | [`Verdict::NewEpoch`] (see below) |
//! | a signature that does not verify | [`WitnessError::BadSignature`] |
//! | no signature by the log's key | [`WitnessError::WrongKey`] |
//! | not a signed note or not a checkpoint | [`WitnessError::Malformed`] |
//! | another origin than the trusted checkpoint's | [`WitnessError::WrongOrigin`] |
//! | smaller size, or an earlier epoch | [`WitnessError::Rollback`] |
//! | same size, different root | [`WitnessError::Fork`] |
//! | larger size, proof fails | [`WitnessError::Inconsistent`] |
//!
//! The last three carry both signed notes ([`Conflict`]) so the caller can show them and
//! keep them: two checkpoints signed by the log's key that no consistency proof can join
//! are the evidence that it rewrote or forked its history (a rollback may also be a stale
//! replica; it is reported all the same, since an honest log never goes back).
//!
//! **Epochs.** The vault's ledger is never edited; retention *seals* it: a final checkpoint
//! closes the current epoch and a new tree starts, whose first leaf names the sealed
//! checkpoint. Checkpoints of epoch `n ≥ 2` carry the extension line `epoch <n>` (none is
//! epoch 1). Trees of different epochs are not prefixes of each other, so a checkpoint of
//! a later epoch is [`Verdict::NewEpoch`]: accepted, but its continuity with the sealed
//! epoch is *not* proven here (that needs the sealed epoch's final checkpoint and the new
//! epoch's first leaf); callers should say so, and keep the old checkpoint as evidence. An
//! earlier epoch than the trusted one is a rollback.
//!
//! Pure: no I/O, no clock; the caller fetches and stores the notes.

use std::fmt;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{EMPTY_ROOT, Hash};
use crate::note::{NoteError, VerifierKey};
use crate::proof::{ProofError, verify_consistency};

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
    /// trusted one, and this continuity is not proven (see the module documentation).
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
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Which::Trusted => "the trusted checkpoint",
            Which::New => "the new checkpoint",
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
    /// ([`WitnessError::Rollback`], [`WitnessError::Fork`], [`WitnessError::Inconsistent`]).
    #[must_use]
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            WitnessError::Rollback { evidence, .. }
            | WitnessError::Fork { evidence, .. }
            | WitnessError::Inconsistent { evidence, .. } => Some(evidence),
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::SignerKey;
    use crate::proof::consistency_proof;
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
