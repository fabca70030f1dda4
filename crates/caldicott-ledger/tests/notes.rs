//! Signed notes and checkpoints against `../shared/data/merkle/signed_note_vectors.json`
//! (C2SP signed-note and tlog-checkpoint examples, golang.org/x/mod sumdb/note tests,
//! transparency-dev/formats tests), the malformed notes of Go's tests, and ed25519-dalek as
//! an independent Ed25519 implementation.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use caldicott_ledger::note::{self, MAX_SIGNATURES, key_id};
use caldicott_ledger::{
    Checkpoint, CheckpointError, KeyError, Note, NoteError, SignerKey, VerifierKey, leaf_hash,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::Value;

const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn vkey(s: &str) -> VerifierKey {
    VerifierKey::parse(s).unwrap()
}

/// Key id straight from the definition, and the one written in the key string.
fn check_key_id(key: &VerifierKey, key_string: &str) {
    let mut typed = vec![0x01];
    typed.extend_from_slice(key.public_key());
    assert_eq!(key.key_id(), key_id(key.name(), &typed));
    let written = key_string.split('+').nth(1).unwrap();
    assert_eq!(format!("{:08x}", key.key_id()), written);
    assert_eq!(key.to_string(), key_string);
}

/// Verifies every signature of `msg` by `key` with ed25519-dalek.
fn dalek_verifies(msg: &str, key: &VerifierKey) -> bool {
    let note = Note::parse(msg.as_bytes()).unwrap();
    let vk = VerifyingKey::from_bytes(key.public_key()).unwrap();
    note.signatures()
        .iter()
        .filter(|s| s.name() == key.name() && s.key_id() == key.key_id())
        .all(|s| {
            Signature::from_slice(s.signature())
                .is_ok_and(|sig| vk.verify_strict(note.text().as_bytes(), &sig).is_ok())
        })
}

#[test]
fn shared_signed_note_vectors() {
    let Some(data) = common::merkle_data() else {
        return;
    };
    let raw = std::fs::read(data.join("signed_note_vectors.json")).unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let (mut keys, mut verdicts, mut signed, mut checkpoints) = (0, 0, 0, 0);

    let vectors = v["vectors"].as_array().unwrap();
    let peter_note = vectors
        .iter()
        .find(|x| x["id"] == "go-sumdb-note-PeterNeumann")
        .unwrap()["note"]
        .as_str()
        .unwrap()
        .to_owned();
    for x in vectors {
        let id = x["id"].as_str().unwrap();
        let vk_str = x["vkey"].as_str().unwrap();
        let key = vkey(vk_str);
        check_key_id(&key, vk_str);
        keys += 1;

        let msg = match x["note"].as_str() {
            Some(n) => n.to_owned(),
            None => {
                // The corrupted note: "ABCD" inserted at byte 60 of the signature line.
                assert!(x["note_construction"].is_string(), "{id}");
                let (text, sig) = peter_note.split_at(peter_note.rfind("\n\n").unwrap() + 2);
                format!("{text}{}ABCD{}", &sig[..60], &sig[60..])
            }
        };
        let want = x["expect_valid"].as_bool().unwrap();
        let got = note::open(msg.as_bytes(), std::slice::from_ref(&key));
        assert_eq!(got.is_ok(), want, "{id}: {got:?}");
        if !want {
            assert_eq!(
                got.unwrap_err(),
                NoteError::InvalidSignature {
                    name: "PeterNeumann".into(),
                    key_id: 0xc74f_20a3
                },
                "{id}"
            );
        } else {
            assert!(dalek_verifies(&msg, &key), "{id}: ed25519-dalek disagrees");
            assert_eq!(got.unwrap().verified().len(), 1);
        }
        verdicts += 1;

        if let Some(skey) = x["skey"].as_str() {
            let signer = SignerKey::parse(skey).unwrap();
            assert_eq!(signer.verifier_key(), key, "{id}");
            assert_eq!(signer.to_key_string().as_str(), skey);
            let text = x["text"].as_str().unwrap();
            assert_eq!(
                note::sign(text, &[&signer]).unwrap(),
                msg,
                "{id}: byte-exact"
            );
            signed += 1;
        }

        if let Some(c) = x.get("checkpoint") {
            let (cp, verified) =
                Checkpoint::open(msg.as_bytes(), std::slice::from_ref(&key)).unwrap();
            assert_eq!(cp.origin(), c["origin"].as_str().unwrap());
            assert_eq!(cp.size(), c["size"].as_u64().unwrap());
            assert_eq!(cp.root().to_base64(), c["root_b64"].as_str().unwrap());
            assert_eq!(cp.to_text(), verified.text(), "checkpoint text round trip");
            checkpoints += 1;
        }
    }

    for kp in v["keypairs"].as_array().unwrap() {
        let vk_str = kp["vkey"].as_str().unwrap();
        let key = vkey(vk_str);
        check_key_id(&key, vk_str);
        let signer = SignerKey::parse(kp["skey"].as_str().unwrap()).unwrap();
        assert_eq!(signer.verifier_key(), key);
        // ed25519-dalek derives the same public key from the seed and signs identically.
        let seed: [u8; 32] = STANDARD
            .decode(kp["skey"].as_str().unwrap().splitn(5, '+').nth(4).unwrap())
            .unwrap()[1..]
            .try_into()
            .unwrap();
        let dalek = SigningKey::from_bytes(&seed);
        assert_eq!(dalek.verifying_key().as_bytes(), key.public_key());
        let text = format!("{}\n42\n{}\n", key.name(), leaf_hash(b"x").to_base64());
        assert_eq!(
            signer.sign(text.as_bytes()).to_vec(),
            dalek.sign(text.as_bytes()).to_bytes().to_vec()
        );
        let msg = note::sign(&text, &[&signer]).unwrap();
        assert!(dalek_verifies(&msg, &key));
        keys += 1;
        signed += 1;
    }

    // Format-only examples: no public key, so parse only.
    for x in v["format_only_examples"].as_array().unwrap() {
        if let Some(msg) = x["note"].as_str() {
            let n = Note::parse(msg.as_bytes()).unwrap();
            let cp = Checkpoint::parse(n.text()).unwrap();
            assert_eq!(cp.origin(), "example.com/behind-the-sofa");
            assert_eq!(cp.size(), 20_852_163);
            assert_eq!(n.signatures()[0].key_id(), 0x033d_e0ae);
            assert_eq!(n.signatures()[0].signature().len(), 64);
            assert_eq!(n.encode().unwrap(), msg);
            checkpoints += 1;
        }
        if let Some(line) = x["cosig_line"].as_str() {
            // A tlog-cosignature line (type 0x04): an unknown key to an Ed25519 verifier.
            let log = SignerKey::from_seed("example.com/log", &[7; 32]).unwrap();
            let mut msg = Checkpoint::new("example.com/log", 1, leaf_hash(b""))
                .unwrap()
                .sign(&[&log])
                .unwrap();
            msg.push_str(line);
            msg.push('\n');
            let (_, verified) = Checkpoint::open(msg.as_bytes(), &[log.verifier_key()]).unwrap();
            assert_eq!(verified.unverified().len(), 1);
            let cosig = &verified.unverified()[0];
            assert_eq!(cosig.name(), "witness.example.com/w1");
            assert_eq!(cosig.signature().len(), 8 + 64);
            assert_eq!(
                u64::from_be_bytes(cosig.signature()[..8].try_into().unwrap()),
                1_679_315_147
            );
        }
    }
    common::say(&format!(
        "signed-note vectors: {keys} key ids, {verdicts} verification verdicts, {signed} \
         byte-exact or dalek-checked signings, {checkpoints} checkpoints"
    ));
}

#[test]
fn go_open_cases() {
    let peter = vkey(PETER_VKEY);
    let enoch = vkey(ENOCH_VKEY);
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");

    let n = note::open(both.as_bytes(), std::slice::from_ref(&peter)).unwrap();
    assert_eq!(n.text(), TEXT);
    assert_eq!(n.verified().len(), 1);
    assert_eq!(n.verified()[0].name(), "PeterNeumann");
    assert_eq!(n.unverified().len(), 1);
    assert_eq!(n.unverified()[0].name(), "EnochRoot");

    let n = note::open(both.as_bytes(), &[peter.clone(), enoch.clone()]).unwrap();
    assert_eq!(n.verified().len(), 2);
    assert!(n.unverified().is_empty());

    assert_eq!(
        note::open(both.as_bytes(), &[]),
        Err(NoteError::NoKnownSignature { unknown: 2 })
    );

    // The same known key listed twice is not ambiguous; two different keys would be.
    let enoch_msg = format!("{TEXT}\n{ENOCH_SIG}");
    note::open(
        enoch_msg.as_bytes(),
        &[enoch.clone(), peter.clone(), enoch.clone()],
    )
    .unwrap();

    let many = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
    assert_eq!(
        note::open(many.as_bytes(), std::slice::from_ref(&peter)),
        Err(NoteError::TooManySignatures)
    );
    let max = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES));
    note::open(max.as_bytes(), std::slice::from_ref(&peter)).unwrap();

    // Duplicated verified and unverified signatures.
    let enoch_abcd = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
    let dup = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{enoch_abcd}");
    let n = note::open(dup.as_bytes(), std::slice::from_ref(&peter)).unwrap();
    assert_eq!(n.verified().len(), 1);
    assert_eq!(n.unverified().len(), 2);

    // A known key's bad signature sinks the note even beside a good one.
    let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let mixed = format!("{TEXT}\n{ENOCH_SIG}{bad}");
    assert_eq!(
        note::open(mixed.as_bytes(), &[peter.clone(), enoch.clone()]),
        Err(NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f_20a3
        })
    );

    // Same name, other id; same id, other name: unknown keys, ignored.
    let other_id = PETER_SIG.replace("x08g", "xxxx");
    let other_name = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
    for sig in [other_id, other_name] {
        let msg = format!("{TEXT}\n{sig}{PETER_SIG}");
        let n = note::open(msg.as_bytes(), std::slice::from_ref(&peter)).unwrap();
        assert_eq!(n.unverified().len(), 1);
    }

    // Two different known keys with the same name and 32-bit id: find a collision by
    // the birthday bound (about 80,000 keys), then offer both as known keys.
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u64..)
        .find_map(|i| {
            let mut pk = [0u8; 32];
            pk[..8].copy_from_slice(&i.to_le_bytes());
            let k = VerifierKey::new("collide", pk).unwrap();
            seen.insert(k.key_id(), k.clone()).map(|prev| (prev, k))
        })
        .unwrap();
    assert_eq!(a.key_id(), b.key_id());
    let mut raw = a.key_id().to_be_bytes().to_vec();
    raw.extend_from_slice(&[0; 64]);
    let msg = format!("{TEXT}\n\u{2014} collide {}\n", STANDARD.encode(raw));
    assert_eq!(
        note::open(msg.as_bytes(), &[a.clone(), b]),
        Err(NoteError::AmbiguousKey {
            name: "collide".into(),
            key_id: a.key_id()
        })
    );
    // One of them alone: an invalid signature from a known key.
    assert!(matches!(
        note::open(msg.as_bytes(), &[a]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn malformed_notes_get_precise_errors() {
    let peter = vkey(PETER_VKEY);
    let open = |msg: &[u8]| note::open(msg, std::slice::from_ref(&peter));
    let sig_no_nl = PETER_SIG.strip_suffix('\n').unwrap();
    let cases: Vec<(Vec<u8>, NoteError)> = vec![
        (TEXT.into(), NoteError::NoSignatureBlock),
        (format!("{TEXT}\n").into(), NoteError::NoSignatures),
        (format!("{TEXT}\n{sig_no_nl}").into(), NoteError::NoFinalNewline),
        (
            format!("\u{1}{TEXT}\n{PETER_SIG}").into(),
            NoteError::ControlCharacter { offset: 0, code: 1 },
        ),
        (
            format!("{TEXT}\r\n{PETER_SIG}").into(),
            NoteError::ControlCharacter {
                offset: TEXT.len(),
                code: 13,
            },
        ),
        (
            format!("a\tb\n\n{PETER_SIG}").into(),
            NoteError::ControlCharacter { offset: 1, code: 9 },
        ),
        (
            [b"\xff".as_slice(), format!("{TEXT}\n{PETER_SIG}").as_bytes()].concat(),
            NoteError::NotUtf8 { offset: 0 },
        ),
        (
            format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").into(),
            NoteError::MalformedSignature {
                line: 1,
                reason: "the signature is not standard padded base64",
            },
        ),
        (
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n").into(),
            NoteError::MalformedSignature {
                line: 2,
                reason: "it does not start with an em dash (U+2014) and a space",
            },
        ),
        (
            format!("{TEXT}\n{}", PETER_SIG.replace('\u{2014}', "-")).into(),
            NoteError::MalformedSignature {
                line: 1,
                reason: "it does not start with an em dash (U+2014) and a space",
            },
        ),
        (
            format!("{TEXT}\n\u{2014} PeterNeumann\n").into(),
            NoteError::MalformedSignature {
                line: 1,
                reason: "no space between the key name and the signature",
            },
        ),
        (
            format!("{TEXT}\n\u{2014} a+b AAAAAAA=\n").into(),
            NoteError::MalformedSignature {
                line: 1,
                reason: "invalid key name",
            },
        ),
        (
            format!("{TEXT}\n\u{2014} PeterNeumann AAAA\n").into(),
            NoteError::MalformedSignature {
                line: 1,
                reason: "the signature is shorter than a key id and one byte",
            },
        ),
        (
            format!("{TEXT}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n").into(),
            NoteError::MalformedSignature {
                line: 1,
                reason: "the signature is not standard padded base64",
            },
        ),
    ];
    for (msg, want) in cases {
        assert_eq!(open(&msg), Err(want), "{:?}", String::from_utf8_lossy(&msg));
    }
    // A signature of the wrong length from a known key is an invalid signature.
    let short = format!(
        "{TEXT}\n\u{2014} PeterNeumann {}\n",
        STANDARD.encode([0xc7, 0x4f, 0x20, 0xa3, 1, 2, 3])
    );
    assert!(matches!(
        open(short.as_bytes()),
        Err(NoteError::InvalidSignature { .. })
    ));
    assert_eq!(note::sign("no newline", &[]), Err(NoteError::NoSigners));
    let s = SignerKey::parse(PETER_SKEY).unwrap();
    assert_eq!(
        note::sign("no newline", &[&s]),
        Err(NoteError::NoFinalNewline)
    );
    assert_eq!(
        note::sign("tab\there\n", &[&s]),
        Err(NoteError::ControlCharacter { offset: 3, code: 9 })
    );
    // Notes may contain blank lines: the last blank line separates the signatures.
    let text = "one\n\ntwo\n\n";
    let msg = note::sign(text, &[&s]).unwrap();
    assert_eq!(
        note::open(msg.as_bytes(), &[s.verifier_key()])
            .unwrap()
            .text(),
        text
    );
}

#[test]
fn go_key_string_manglings_are_refused() {
    for (good, parse) in [
        (
            PETER_VKEY,
            (|k: &str| VerifierKey::parse(k).is_ok()) as fn(&str) -> bool,
        ),
        (PETER_SKEY, |k: &str| SignerKey::parse(k).is_ok()),
    ] {
        assert!(parse(good));
        let b = good.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let s = std::str::from_utf8(&b[i..j]).unwrap();
                    assert!(!parse(s), "substring {s:?} accepted");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let s = std::str::from_utf8(&m).unwrap();
            assert!(!parse(s), "mangled {s:?} accepted");
        }
    }
    // Wrong-length key and unknown algorithm, with adjusted key ids (from Go's tests). The
    // first also has non-zero trailing bits ("EY=="), which Go tolerates and we refuse as
    // non-canonical base64 before looking at the length.
    assert_eq!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(KeyError::MalformedKeyData)
    );
    assert_eq!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEA=="
        ),
        Err(KeyError::WrongKeyLength(36))
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::UnsupportedAlgorithm(0x65))
    );
}

#[test]
fn cosigning_and_replacing() {
    let log = SignerKey::generate("example.com/log").unwrap();
    let witness = SignerKey::generate("witness.example/w1").unwrap();
    let cp = Checkpoint::new("example.com/log", 7, leaf_hash(b"seven")).unwrap();
    let msg = cp.sign(&[&log]).unwrap();
    let mut n = Note::parse(msg.as_bytes()).unwrap();
    n.add_signature(&witness);
    n.add_signature(&witness); // replaces, does not duplicate
    assert_eq!(n.signatures().len(), 2);
    let cosigned = n.encode().unwrap();
    let (got, verified) = Checkpoint::open(
        cosigned.as_bytes(),
        &[log.verifier_key(), witness.verifier_key()],
    )
    .unwrap();
    assert_eq!(got, cp);
    assert_eq!(verified.verified().len(), 2);
    assert!(dalek_verifies(&cosigned, &witness.verifier_key()));
    // A checkpoint signed by an unknown key only.
    assert!(matches!(
        Checkpoint::open(msg.as_bytes(), &[witness.verifier_key()]),
        Err(CheckpointError::Note(NoteError::NoKnownSignature {
            unknown: 1
        }))
    ));
    // A validly signed note that is not a checkpoint.
    let not_cp = note::sign("hello\n", &[&log]).unwrap();
    assert_eq!(
        Checkpoint::open(not_cp.as_bytes(), &[log.verifier_key()]),
        Err(CheckpointError::TooFewLines)
    );
}
