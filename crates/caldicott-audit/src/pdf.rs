//! The patient access report as a PDF: the same entries as [`crate::report::to_html`], for
//! a patient who asked by letter and gets one by post or email.
//!
//! Why a small writer of our own: the report is plain text in a fixed layout (headings,
//! paragraphs, one block per entry, the checkpoint), which needs only the PDF 1.4 core: the
//! standard 14 fonts (Helvetica, Helvetica-Bold, Courier: every reader has them, nothing is
//! embedded), `WinAnsiEncoding`, text operators, and a cross-reference table. A PDF library
//! would bring fonts, images and a dependency tree for none of that. Text outside
//! Windows-1252 is written as `?` (the names and words here are English; a ledger string
//! that is not still prints legibly). Pure: the bytes are a function of the entries.
//!
//! What it is not: tagged PDF (PDF/UA). The HTML page is the accessible form; this is the
//! printable one.

use std::fmt::Write as _;

use crate::report::{ReportEntry, ReportHeader, newest_first, origin, purpose_plain, what_plain};
use crate::{Outcome, uktime, words};

/// A4 in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;

/// One line of laid-out text.
struct Line {
    font: Font,
    size: f32,
    text: String,
    /// Space before the line, in points, beyond its own height.
    gap: f32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
            Font::Mono => "F3",
        }
    }

    /// Characters per line at `size` in the text width: Courier exactly (0.6 em), the
    /// Helvetica faces by a conservative average width (0.55 em) so lines never overrun.
    fn chars_per_line(self, size: f32) -> usize {
        let em = match self {
            Font::Mono => 0.6,
            Font::Regular | Font::Bold => 0.55,
        };
        let width = PAGE_W - 2.0 * MARGIN;
        (width / (em * size)).floor().max(10.0) as usize
    }
}

/// Lays out the report as lines.
struct Doc {
    lines: Vec<Line>,
}

impl Doc {
    fn push(&mut self, font: Font, size: f32, gap: f32, text: &str) {
        let width = font.chars_per_line(size);
        let mut first = true;
        for para_line in text.lines() {
            for piece in wrap(para_line, width) {
                self.lines.push(Line {
                    font,
                    size,
                    text: piece,
                    gap: if first { gap } else { 0.0 },
                });
                first = false;
            }
        }
    }

    fn heading(&mut self, text: &str) {
        self.push(Font::Bold, 13.0, 12.0, text);
    }

    fn para(&mut self, text: &str) {
        self.push(Font::Regular, 10.0, 6.0, text);
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (a word longer than a
/// line is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        while word.chars().count() > width {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
        }
        let needed = if line.is_empty() { 0 } else { 1 } + word.chars().count();
        if line.chars().count() + needed > width && !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// The report as a PDF document.
#[must_use]
pub fn to_pdf(header: &ReportHeader, entries: &[ReportEntry]) -> Vec<u8> {
    let sorted = newest_first(entries);
    let mut d = Doc { lines: Vec::new() };
    d.push(Font::Bold, 18.0, 0.0, "Who has looked at your record");
    d.para(&format!("Record of: {}", header.patient_display));
    d.push(
        Font::Regular,
        10.0,
        0.0,
        &format!(
            "Report made: {}",
            uktime::uk_local(header.generated_at_us).long()
        ),
    );
    d.para(
        "Every time someone reads, searches, changes or copies your health record, or tries to, \
         it is written in an audit log. Entries in the log cannot be changed or removed without \
         it showing. This report lists the entries about you, newest first.",
    );
    let refused = sorted
        .iter()
        .filter(|e| e.event.outcome == Outcome::Deny)
        .count();
    let emergency = sorted.iter().filter(|e| e.event.break_glass).count();
    let mut summary = match sorted.len() {
        0 => "There are no entries about your record.".to_owned(),
        1 => "There is 1 entry about your record.".to_owned(),
        n => format!("There are {n} entries about your record."),
    };
    if emergency > 0 {
        let _ = write!(
            summary,
            " {emergency} of them: emergency access (break-glass)."
        );
    }
    if refused > 0 {
        let _ = write!(summary, " {refused} of them: refused.");
    }
    d.para(&summary);
    if !sorted.is_empty() {
        d.heading("What was done");
    }
    for e in &sorted {
        let ev = &e.event;
        let local = uktime::uk_local(ev.at_us);
        d.push(
            Font::Bold,
            10.0,
            8.0,
            &format!("{}, {} {}", local.long_date(), local.clock(), local.zone()),
        );
        let person = if ev.user.is_empty() {
            "Not recorded".to_owned()
        } else {
            ev.user.clone()
        };
        let role = words::roles_or_codes(&ev.role);
        let org = match (header.organisation_names.get(&ev.org), ev.org.is_empty()) {
            (_, true) => "Not recorded".to_owned(),
            (Some(name), false) => format!("{name} ({})", ev.org),
            (None, false) => ev.org.clone(),
        };
        let role = if role.is_empty() {
            "Not recorded".to_owned()
        } else {
            role
        };
        let mut lines = vec![
            format!("Person: {person}, {role}, {org}"),
            format!("What they did: {}", what_plain(ev)),
            format!("Why: {}", purpose_plain(&ev.purpose)),
        ];
        if ev.break_glass {
            lines.push("Emergency access (break-glass): reviewed by the Caldicott guardian".into());
        }
        match ev.outcome {
            Outcome::Deny => {
                let mut s = "Refused: nothing was shown or changed.".to_owned();
                if !ev.reason.is_empty() {
                    let _ = write!(s, " Reason recorded: {}", ev.reason);
                }
                lines.push(s);
            }
            Outcome::Permit => lines.push("Allowed".into()),
        }
        lines.push(format!(
            "Log entry {}-{} (leaf hash {})",
            e.epoch, e.index, e.leaf_hash_b64
        ));
        for l in lines {
            d.push(Font::Regular, 10.0, 0.0, &l);
        }
    }
    d.heading("How to check this report");
    d.para(&format!(
        "Each entry above is in the audit log \"{}\". The log is a Merkle tree: the signed \
         checkpoint below fixes its whole content, and each entry's inclusion proof (in the \
         FHIR form of this report) shows that the entry is in it. Anyone can check the \
         signature with the verifier key.",
        origin(header)
    ));
    d.push(Font::Bold, 10.0, 6.0, "Signed checkpoint");
    d.push(Font::Mono, 8.0, 2.0, &header.checkpoint_text);
    d.push(Font::Bold, 10.0, 6.0, "Verifier key");
    d.push(Font::Mono, 8.0, 2.0, &header.verifier_key);
    render(&d.lines)
}

/// Text in a PDF string: Windows-1252 bytes, with `\`, `(` and `)` escaped.
fn pdf_string(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'(');
    for c in text.chars() {
        let b = match c {
            '\\' | '(' | ')' => {
                out.push(b'\\');
                c as u8
            }
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '\u{2018}' | '\u{2019}' => b'\'',
            '\u{201c}' | '\u{201d}' => b'"',
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{2022}' => 0x95,
            '\t' => b' ',
            _ => b'?',
        };
        out.push(b);
    }
    out.push(b')');
    out
}

/// Pages of lines, then the PDF objects and the cross-reference table.
fn render(lines: &[Line]) -> Vec<u8> {
    // Page contents.
    let mut pages: Vec<Vec<u8>> = Vec::new();
    let mut content: Vec<u8> = Vec::new();
    let mut y = PAGE_H - MARGIN;
    let mut page_no = 1;
    let footer = |content: &mut Vec<u8>, n: usize| {
        content.extend_from_slice(
            format!(
                "BT /F1 8 Tf {MARGIN} {} Td {} Tj ET\n",
                MARGIN / 2.0,
                String::from_utf8_lossy(&pdf_string(&format!(
                    "Who has looked at your record - page {n}"
                )))
            )
            .as_bytes(),
        );
    };
    for line in lines {
        let height = line.size * 1.3;
        if y - line.gap - height < MARGIN {
            footer(&mut content, page_no);
            pages.push(std::mem::take(&mut content));
            page_no += 1;
            y = PAGE_H - MARGIN;
        } else {
            y -= line.gap;
        }
        y -= height;
        content.extend_from_slice(
            format!(
                "BT /{} {} Tf {MARGIN} {y:.1} Td ",
                line.font.resource(),
                line.size
            )
            .as_bytes(),
        );
        content.extend_from_slice(&pdf_string(&line.text));
        content.extend_from_slice(b" Tj ET\n");
    }
    footer(&mut content, page_no);
    pages.push(content);

    // Objects: 1 catalog, 2 pages, 3-5 fonts, then a page and its contents for each page.
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let first_page = 6;
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", first_page + 2 * i))
        .collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        )
        .into_bytes(),
    );
    for base in ["Helvetica", "Helvetica-Bold", "Courier"] {
        objects.push(
            format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>"
            )
            .into_bytes(),
        );
    }
    for (i, body) in pages.iter().enumerate() {
        let contents = first_page + 2 * i + 1;
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> \
                 /Contents {contents} 0 R >>"
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", body.len()).into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }

    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "a bb ccc dddd eeeee ffffff ggggggggggggggggggggggg h";
        let lines = wrap(text, 8);
        assert!(lines.iter().all(|l| l.chars().count() <= 8), "{lines:?}");
        let joined: String = lines.concat();
        assert_eq!(joined.replace(' ', ""), text.replace(' ', ""));
        assert_eq!(wrap("", 8), vec![String::new()]);
    }

    #[test]
    fn strings_are_escaped_and_encoded() {
        assert_eq!(pdf_string("a(b)c\\"), b"(a\\(b\\)c\\\\)".to_vec());
        assert_eq!(
            pdf_string("caf\u{e9} \u{2013} \u{4e2d}"),
            b"(caf\xe9 \x96 ?)".to_vec()
        );
    }

    #[test]
    fn the_cross_reference_table_points_at_each_object() {
        let lines: Vec<Line> = (0..200)
            .map(|i| Line {
                font: Font::Regular,
                size: 10.0,
                text: format!("line {i}"),
                gap: 0.0,
            })
            .collect();
        let pdf = render(&lines);
        // Byte-wise: the file is not UTF-8 (its binary comment, Windows-1252 text).
        let find = |needle: &[u8], from: usize| {
            pdf[from..]
                .windows(needle.len())
                .position(|w| w == needle)
                .map(|p| p + from)
        };
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        assert!(
            find(b"/Count 4", 0).is_some(),
            "200 lines make four A4 pages"
        );
        let at = find(b"startxref\n", 0).unwrap_or(0) + "startxref\n".len();
        let digits: String = pdf[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        let xref: usize = digits.parse().unwrap_or(0);
        assert!(pdf[xref..].starts_with(b"xref\n"));
        let table = String::from_utf8_lossy(&pdf[xref..]).into_owned();
        for (i, entry) in table.lines().skip(3).take(13).enumerate() {
            let offset: usize = entry[..10].parse().unwrap_or(0);
            assert!(
                pdf[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {} is not at {offset}",
                i + 1
            );
        }
    }
}
