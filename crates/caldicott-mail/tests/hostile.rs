//! Malformed and hostile input: every case gets a defined verdict, never a panic.

mod common;

use std::time::Instant;

use caldicott_mail::symbols::*;
use caldicott_mail::{MailConfig, Report, Scanner, Verdict};
use common::*;
use proptest::prelude::*;

#[track_caller]
fn sane(r: &Report) {
    assert!(!r.has(SCAN_INTERNAL_ERROR), "a check panicked: {r:#?}");
    assert!(r.score.is_finite(), "{r:#?}");
}

#[test]
fn empty_and_garbage() {
    for raw in [
        &b""[..],
        b"\r\n\r\n",
        b"\xFF\xFE\x00\x00garbage\x80\x81",
        b"no header here, just words",
        b":\r\n:\r\n\r\n",
    ] {
        let r = scan(raw);
        sane(&r);
        assert!(
            r.verdict >= Verdict::Quarantine && r.has(MIME_UNPARSEABLE),
            "{raw:?}: {r:#?}"
        );
    }
}

#[test]
fn eight_bit_garbage_and_nuls() {
    let mut raw = b"From: \xE9\xE8\xFF <a@example.com>\r\nSubject: \xC3\x28 bad utf-8\r\nDate: Mon, 06 Jan 2025 09:30:00 +0000\r\nMessage-ID: <x@example.com>\r\n\r\n".to_vec();
    raw.extend((0..=255u8).cycle().take(10_000));
    let r = scan(&raw);
    sane(&r);
    assert!(r.has(HEADER_8BIT) && r.has(MESSAGE_HAS_NUL), "{r:#?}");
}

#[test]
fn malformed_mime() {
    let cases: [&[u8]; 6] = [
        // Multipart without a boundary, and with one never used or never closed.
        b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n",
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno parts at all\r\n",
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nunclosed",
        // Broken base64 and quoted-printable, unknown charset and encoding.
        b"From: a@example.com\r\nContent-Type: text/plain; charset=x-nonsense\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!****====\r\n",
        b"From: a@example.com\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=0=\r\n",
        b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n--q--",
    ];
    for raw in cases {
        sane(&scan(raw));
    }
}

#[test]
fn header_bomb_is_rejected() {
    let mut raw = String::from("From: a@example.com\r\nSubject: bomb\r\n");
    for i in 0..20_000 {
        raw.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    raw.push_str("\r\nbody\r\n");
    let start = Instant::now();
    let r = scan(raw.as_bytes());
    sane(&r);
    assert!(r.has(HEADER_COUNT_EXCEEDED), "{r:#?}");
    assert_eq!(r.verdict, Verdict::Reject);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

#[test]
fn deep_nesting_and_many_parts_are_held() {
    let mut raw = String::from(
        "From: a@example.com\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n",
    );
    for i in 1..60 {
        raw.push_str(&format!(
            "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
            i - 1
        ));
    }
    raw.push_str("--b59\r\nContent-Type: text/plain\r\n\r\nbottom\r\n");
    let r = scan(raw.as_bytes());
    sane(&r);
    assert!(
        r.has(MIME_TOO_DEEP) && r.verdict >= Verdict::Quarantine,
        "{r:#?}"
    );

    let mut raw = String::from(
        "From: a@example.com\r\nSubject: wide\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n",
    );
    for i in 0..2_000 {
        raw.push_str(&format!(
            "--w\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    raw.push_str("--w--\r\n");
    let r = scan(raw.as_bytes());
    sane(&r);
    assert!(
        r.has(MIME_TOO_MANY_PARTS) && r.verdict >= Verdict::Quarantine,
        "{r:#?}"
    );
}

/// A 50 MB message: rejected unparsed at the default 32 MiB limit, and screened to a verdict
/// when a site raises the limit.
#[test]
fn fifty_megabyte_message() {
    let zeros = vec![0u8; 37 << 20];
    let raw = with_attachment("disk.bin", "application/octet-stream", &zeros);
    assert!(raw.len() > 50_000_000, "{}", raw.len());
    let r = scan(&raw);
    sane(&r);
    assert!(
        r.has(MESSAGE_TOO_LARGE) && r.verdict == Verdict::Reject,
        "{r:#?}"
    );

    let mut config = MailConfig::default();
    config.limits.max_message_bytes = 64 << 20;
    let start = Instant::now();
    let r = Scanner::new(config, None).unwrap().scan(&raw);
    sane(&r);
    assert_eq!(r.verdict, Verdict::Accept, "{r:#?}");
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());

    // The same size as one huge text body: text work is bounded by max_text_bytes.
    let mut big = String::from(
        "From: a@example.com\r\nSubject: long\r\nDate: Mon, 06 Jan 2025 09:30:00 +0000\r\nMessage-ID: <l@example.com>\r\n\r\n",
    );
    let line = "lorem ipsum dolor sit amet click here http://example.com/a\r\n";
    while big.len() < 50_000_000 {
        big.push_str(line);
    }
    let mut config = MailConfig::default();
    config.limits.max_message_bytes = 64 << 20;
    let r = Scanner::new(config, None).unwrap().scan(big.as_bytes());
    sane(&r);
}

#[test]
fn hostile_archive_members() {
    // Random bytes behind the magic numbers of every container the engine opens.
    for magic in [
        &b"PK\x03\x04"[..],
        b"PK\x05\x06",
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        b"\x1F\x8B\x08",
        b"MZ",
    ] {
        for len in [0usize, 10, 100, 600, 5000] {
            let mut data = magic.to_vec();
            data.extend((0..len).map(|i| (i * 7919 % 251) as u8));
            sane(&scan(&with_attachment(
                "x.bin",
                "application/octet-stream",
                &data,
            )));
        }
    }
}

fn any_message() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        Just("From: a@example.com\r\n".to_string()),
        Just("Content-Type: multipart/mixed; boundary=b\r\n".to_string()),
        Just("Content-Type: text/html\r\n".to_string()),
        Just("Content-Transfer-Encoding: base64\r\n".to_string()),
        Just("Content-Disposition: attachment; filename=a.zip\r\n".to_string()),
        Just("--b\r\n".to_string()),
        Just("\r\n".to_string()),
        "[ -~]{0,40}\r\n",
    ];
    (
        proptest::collection::vec(header, 0..12),
        proptest::collection::vec(any::<u8>(), 0..2048),
        proptest::collection::vec(
            prop_oneof![
                Just(b"PK\x03\x04".to_vec()),
                Just(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec()),
                Just(b"<html><a href='http://x'>".to_vec()),
                Just(b"=?utf-8?B?AAAA?=".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..64),
            ],
            0..4,
        ),
    )
        .prop_map(|(headers, body, tail)| {
            let mut raw = headers.concat().into_bytes();
            raw.extend(body);
            for t in tail {
                raw.extend(t);
            }
            raw
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let r = scanner().scan(&raw);
        prop_assert!(!r.has(SCAN_INTERNAL_ERROR), "{:?}", r);
    }

    #[test]
    fn message_shaped_bytes_never_panic(raw in any_message()) {
        let r = scanner().scan(&raw);
        prop_assert!(!r.has(SCAN_INTERNAL_ERROR), "{:?}", r);
    }

    #[test]
    fn arbitrary_attachments_never_panic(
        magic in prop_oneof![
            Just(b"PK\x03\x04".to_vec()),
            Just(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec()),
            Just(b"\x1F\x8B".to_vec()),
            Just(b"MZ".to_vec()),
            Just(Vec::new()),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut data = magic;
        data.extend(body);
        let r = scanner().scan(&with_attachment("a.bin", "application/octet-stream", &data));
        prop_assert!(!r.has(SCAN_INTERNAL_ERROR), "{:?}", r);
    }
}

#[test]
fn a_single_word_is_not_a_message() {
    for raw in [&b"x"[..], b"hello\r\n\r\nworld", b"\xFF"] {
        let r = scan(raw);
        assert!(r.has(MIME_UNPARSEABLE), "{raw:?}: {r:#?}");
    }
}

#[test]
fn tar_with_absurd_sizes() {
    let mut t = tar(&[("a.txt", b"hello")]);
    // Claim an 8 GiB member, then a member past the end.
    t[124..136].copy_from_slice(b"77777777777\0");
    sane(&scan(&with_attachment("a.tar", "application/x-tar", &t)));
    sane(&scan(&with_attachment(
        "a.tar.gz",
        "application/gzip",
        &gzip(&t),
    )));
}
