//! Builders for test messages and attachment fixtures. Everything is generated here: no
//! binary fixture is committed.

#![allow(dead_code)]

pub mod sink;

use std::io::{Cursor, Write};

use caldicott_mail::{MailConfig, Report, Scanner};

pub fn scanner() -> Scanner {
    Scanner::new(MailConfig::default(), None).expect("default config is valid")
}

pub fn scan(raw: &[u8]) -> Report {
    scanner().scan(raw)
}

/// Standard base64 with 76-character lines.
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 * 2 + 4);
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A plain message with ordinary headers.
pub fn plain(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: office@sunnyvale-care.co.uk\r\nSubject: {subject}\r\n\
         Date: Mon, 06 Jan 2025 09:30:00 +0000\r\nMessage-ID: <t1@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// An HTML message.
pub fn html(from: &str, subject: &str, html: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: office@sunnyvale-care.co.uk\r\nSubject: {subject}\r\n\
         Date: Mon, 06 Jan 2025 09:30:00 +0000\r\nMessage-ID: <t2@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the HTML part.\r\n\
         --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b1--\r\n"
    )
    .into_bytes()
}

/// A message from a colleague with one attachment, base64-encoded.
pub fn with_attachment(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: Jo Bloggs <jo.bloggs@nhs.net>\r\nTo: office@sunnyvale-care.co.uk\r\n\
         Subject: Documents for Tuesday\r\nDate: Mon, 06 Jan 2025 09:30:00 +0000\r\n\
         Message-ID: <t3@nhs.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n\
         --mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the file attached.\r\n\
         --mix\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--mix--\r\n",
        b64(data)
    )
    .into_bytes()
}

/// A minimal Windows PE: MZ header pointing at a PE signature.
pub fn pe() -> Vec<u8> {
    let mut b = vec![0u8; 0x200];
    b[..2].copy_from_slice(b"MZ");
    b[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
    b
}

pub fn elf() -> Vec<u8> {
    let mut b = b"\x7FELF\x02\x01\x01".to_vec();
    b.resize(64, 0);
    b
}

/// A zip of (name, data) members, deflated.
pub fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).expect("start member");
        w.write_all(data).expect("write member");
    }
    w.finish().expect("finish zip").into_inner()
}

/// An OLE compound file with the given storages and streams (paths like `/Macros/VBA/dir`).
pub fn ole(storages: &[&str], streams: &[(&str, &[u8])]) -> Vec<u8> {
    let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("create cfb");
    for s in storages {
        c.create_storage(s).expect("storage");
    }
    for (p, data) in streams {
        let mut s = c.create_stream(p).expect("stream");
        s.write_all(data).expect("write stream");
    }
    c.flush().expect("flush");
    c.into_inner().into_inner()
}

/// A legacy Word document with a VBA project (as Word stores it: `Macros/VBA`).
pub fn doc_with_macros() -> Vec<u8> {
    ole(
        &["/Macros", "/Macros/VBA"],
        &[
            ("/WordDocument", b"\xEC\xA5 word body"),
            ("/Macros/VBA/dir", b"\x01\x00 compressed dir"),
            (
                "/Macros/VBA/ThisDocument",
                b"Attribute VB_Name = \"ThisDocument\"",
            ),
            ("/Macros/PROJECT", b"ID=\"{00000000}\""),
        ],
    )
}

/// An OOXML (.docm-style) zip with `word/vbaProject.bin`.
pub fn docm() -> Vec<u8> {
    let vba = ole(
        &["/VBA"],
        &[("/VBA/dir", b"\x01"), ("/_VBA_PROJECT", b"\xCC\x61")],
    );
    zip(&[
        ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types/>"),
        ("word/document.xml", b"<w:document/>"),
        ("word/vbaProject.bin", &vba),
    ])
}

/// A clean OOXML document.
pub fn docx() -> Vec<u8> {
    zip(&[
        ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types/>"),
        ("word/document.xml", b"<w:document>minutes</w:document>"),
    ])
}

/// A real password-protected zip (traditional PKWARE "ZipCrypto" encryption, stored), built
/// by hand because the zip crate only writes AES encryption with its crypto feature.
pub fn encrypted_zip(name: &str, data: &[u8], password: &[u8]) -> Vec<u8> {
    let crc = crc32(data);
    let mut keys = [0x1234_5678u32, 0x2345_6789, 0x3456_7890];
    for &p in password {
        update_keys(&mut keys, p);
    }
    let mut header = [0x5Au8; 12];
    header[11] = (crc >> 24) as u8;
    let mut enc = Vec::with_capacity(12 + data.len());
    for &p in header.iter().chain(data) {
        let t = (keys[2] | 2) & 0xFFFF;
        let k = ((t * (t ^ 1)) >> 8) as u8;
        enc.push(p ^ k);
        update_keys(&mut keys, p);
    }
    let mut out = Vec::new();
    let local = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&1u16.to_le_bytes()); // flags: encrypted
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(enc.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    };
    local(&mut out);
    out.extend_from_slice(&enc);
    let cd_start = out.len();
    out.extend_from_slice(b"PK\x01\x02");
    out.extend_from_slice(&20u16.to_le_bytes()); // made by
    out.extend_from_slice(&20u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0x21, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(enc.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attrs
    out.extend_from_slice(&0u32.to_le_bytes()); // external attrs
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let cd_len = out.len() - cd_start;
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(cd_len as u32).to_le_bytes());
    out.extend_from_slice(&(cd_start as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn update_keys(keys: &mut [u32; 3], p: u8) {
    keys[0] = crc32_byte(keys[0], p);
    keys[1] = keys[1]
        .wrapping_add(keys[0] & 0xFF)
        .wrapping_mul(134_775_813)
        .wrapping_add(1);
    keys[2] = crc32_byte(keys[2], (keys[1] >> 24) as u8);
}

fn crc32_byte(crc: u32, b: u8) -> u32 {
    let mut c = crc ^ u32::from(b);
    for _ in 0..8 {
        c = if c & 1 != 0 {
            (c >> 1) ^ 0xEDB8_8320
        } else {
            c >> 1
        };
    }
    c
}

pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| crc32_byte(c, b))
}

/// gzip of `data` (via flate2, which the zip crate already brings).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip finish")
}

/// A ustar archive of (name, data) members.
pub fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
