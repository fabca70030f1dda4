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
//! Tagged, for screen readers (NHS bodies must publish accessible documents, and a patient
//! may get this file by email): the catalog is marked (`/MarkInfo`), says its language
//! (`/Lang (en-GB)`) and asks viewers to show the title (`/DisplayDocTitle`), which is in
//! `/Info` and in an XMP metadata stream (`dc:title`). A structure tree gives the reading
//! order and roles: `Document` holding `H1` (the title), `P`s, `H2` "What was done", an `L`
//! with one `LI`/`LBody` per entry (a `P` per line of it), `H2` "How to check this report"
//! and `H3`s over the checkpoint and the key. Every text line is marked content
//! (`/P <</MCID n>> BDC … EMC`) tied to its element through the parent tree and the page's
//! `/StructParents`; the page footer is an `/Artifact` (pagination). Content streams are
//! written in reading order, so plain text extraction reads the same as the tags.
//!
//! What it is not: PDF/UA-1 (ISO 14289-1) conformant, and it does not claim to be (no
//! `pdfuaid` in the XMP). PDF/UA requires every font to be embedded (7.21.4.1), and the
//! standard 14 fonts are not; embedding one would need a font file we may ship (made by us
//! or under a licence that allows it) and a TrueType writer, which this small writer
//! avoids. The tags, language and title still give screen readers the roles and reading
//! order. Wrapped lines of one paragraph are separate marked-content runs in one `P`, each
//! keeping the space it broke at, so joined they read as the paragraph.

use std::fmt::Write as _;

use crate::report::{ReportEntry, ReportHeader, newest_first, origin, purpose_plain, what_plain};
use crate::{Outcome, uktime, words};

/// A4 in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;

/// The document's title: the `H1`, `/Info /Title` and the XMP `dc:title`.
const TITLE: &str = "Who has looked at your record";

/// One line of laid-out text.
struct Line {
    font: Font,
    size: f32,
    text: String,
    /// Space before the line, in points, beyond its own height.
    gap: f32,
    /// The structure element the line's text belongs to (an index into [`Doc::elems`]);
    /// `None` for a blank line, which is only space.
    elem: Option<usize>,
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

/// Standard structure types (ISO 32000-1, 14.8.4) used here, so no role map is needed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Document,
    H1,
    H2,
    H3,
    P,
    L,
    LI,
    LBody,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Document => "Document",
            Role::H1 => "H1",
            Role::H2 => "H2",
            Role::H3 => "H3",
            Role::P => "P",
            Role::L => "L",
            Role::LI => "LI",
            Role::LBody => "LBody",
        }
    }
}

/// A kid of a structure element: another element, or a marked-content sequence on a page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kid {
    Elem(usize),
    Content { page: usize, mcid: usize },
}

/// A structure element. Containers hold elements; leaves (headings, paragraphs) hold
/// content, added when their lines are placed on pages.
struct Elem {
    role: Role,
    parent: Option<usize>,
    kids: Vec<Kid>,
}

/// The report laid out as lines, and its logical structure. Element 0 is the `Document`.
struct Doc {
    lines: Vec<Line>,
    elems: Vec<Elem>,
}

/// The `Document` element.
const ROOT: usize = 0;

impl Doc {
    fn new() -> Doc {
        Doc {
            lines: Vec::new(),
            elems: vec![Elem {
                role: Role::Document,
                parent: None,
                kids: Vec::new(),
            }],
        }
    }

    /// A new element of `role` as the last kid of `parent`.
    fn open(&mut self, parent: usize, role: Role) -> usize {
        let id = self.elems.len();
        self.elems.push(Elem {
            role,
            parent: Some(parent),
            kids: Vec::new(),
        });
        if let Some(p) = self.elems.get_mut(parent) {
            p.kids.push(Kid::Elem(id));
        }
        id
    }

    /// `text` as a new element of `role` under `parent`, wrapped into lines. Text that is
    /// only blank lines makes no element (an empty element would read as nothing).
    fn push(&mut self, parent: usize, role: Role, font: Font, size: f32, gap: f32, text: &str) {
        let elem = if text.trim().is_empty() {
            None
        } else {
            Some(self.open(parent, role))
        };
        let width = font.chars_per_line(size);
        let mut first = true;
        for para_line in text.lines() {
            for piece in wrap(para_line, width) {
                let blank = piece.trim().is_empty();
                self.lines.push(Line {
                    font,
                    size,
                    text: piece,
                    gap: if first { gap } else { 0.0 },
                    elem: if blank { None } else { elem },
                });
                first = false;
            }
        }
    }

    fn heading(&mut self, role: Role, text: &str) {
        match role {
            Role::H3 => self.push(ROOT, role, Font::Bold, 10.0, 6.0, text),
            _ => self.push(ROOT, role, Font::Bold, 13.0, 12.0, text),
        }
    }

    fn para(&mut self, text: &str) {
        self.push(ROOT, Role::P, Font::Regular, 10.0, 6.0, text);
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (a word longer than a
/// line is cut). A line broken at a space keeps that space at its end, so the lines joined
/// are the text: a screen reader or a copy, joining a paragraph's lines, gets words apart.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut line = String::new();
    for token in text.split_inclusive(' ') {
        // A word and the space after it; the space may hang past the width.
        let mut token = token;
        loop {
            let visible = token.strip_suffix(' ').unwrap_or(token).chars().count();
            if line.chars().count() + visible <= width {
                line.push_str(token);
                break;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
                continue;
            }
            let cut = token
                .char_indices()
                .nth(width)
                .map_or(token.len(), |(at, _)| at);
            out.push(token[..cut].to_owned());
            token = &token[cut..];
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// The report as a PDF document.
#[must_use]
pub fn to_pdf(header: &ReportHeader, entries: &[ReportEntry]) -> Vec<u8> {
    let mut d = layout(header, entries);
    let pages = paginate(&mut d);
    write(&d, &pages)
}

/// The report's lines and structure, in reading order.
fn layout(header: &ReportHeader, entries: &[ReportEntry]) -> Doc {
    let sorted = newest_first(entries);
    let mut d = Doc::new();
    d.push(ROOT, Role::H1, Font::Bold, 18.0, 0.0, TITLE);
    d.para(&format!("Record of: {}", header.patient_display));
    d.push(
        ROOT,
        Role::P,
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
    // One list item per entry: a screen reader announces the list and its length, and
    // moves item by item; each line of an entry is a paragraph of the item's body.
    let list = if sorted.is_empty() {
        None
    } else {
        d.heading(Role::H2, "What was done");
        Some(d.open(ROOT, Role::L))
    };
    for e in &sorted {
        let Some(list) = list else { break };
        let item = d.open(list, Role::LI);
        let body = d.open(item, Role::LBody);
        let ev = &e.event;
        let local = uktime::uk_local(ev.at_us);
        d.push(
            body,
            Role::P,
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
            d.push(body, Role::P, Font::Regular, 10.0, 0.0, &l);
        }
    }
    d.heading(Role::H2, "How to check this report");
    d.para(&format!(
        "Each entry above is in the audit log \"{}\". The log is a Merkle tree: the signed \
         checkpoint below fixes its whole content, and each entry's inclusion proof (in the \
         FHIR form of this report) shows that the entry is in it. Anyone can check the \
         signature with the verifier key.",
        origin(header)
    ));
    d.heading(Role::H3, "Signed checkpoint");
    d.push(ROOT, Role::P, Font::Mono, 8.0, 2.0, &header.checkpoint_text);
    d.heading(Role::H3, "Verifier key");
    d.push(ROOT, Role::P, Font::Mono, 8.0, 2.0, &header.verifier_key);
    d
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

/// The pages: each page's content stream, and its part of the parent tree (the element
/// each of its MCIDs belongs to, by MCID).
struct Page {
    content: Vec<u8>,
    mcid_elems: Vec<usize>,
}

/// Places the lines on pages, marking each line's text as content of its element (and
/// adding that content to the element's kids, in reading order), and the footer as an
/// artifact.
fn paginate(d: &mut Doc) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut page = Page {
        content: Vec::new(),
        mcid_elems: Vec::new(),
    };
    let mut y = PAGE_H - MARGIN;
    // Page furniture: not part of the report's text, so an artifact a screen reader skips.
    let footer = |content: &mut Vec<u8>, n: usize| {
        content.extend_from_slice(b"/Artifact << /Type /Pagination /Subtype /Footer >> BDC\n");
        content.extend_from_slice(format!("BT /F1 8 Tf {MARGIN} {} Td ", MARGIN / 2.0).as_bytes());
        content.extend_from_slice(&pdf_string(&format!("{TITLE} - page {n}")));
        content.extend_from_slice(b" Tj ET\nEMC\n");
    };
    for line in &d.lines {
        let height = line.size * 1.3;
        if y - line.gap - height < MARGIN {
            footer(&mut page.content, pages.len() + 1);
            pages.push(std::mem::replace(
                &mut page,
                Page {
                    content: Vec::new(),
                    mcid_elems: Vec::new(),
                },
            ));
            y = PAGE_H - MARGIN;
        } else {
            y -= line.gap;
        }
        y -= height;
        let Some(elem) = line.elem.filter(|&e| e < d.elems.len()) else {
            continue;
        };
        let mcid = page.mcid_elems.len();
        page.mcid_elems.push(elem);
        let role = d.elems[elem].role;
        d.elems[elem].kids.push(Kid::Content {
            page: pages.len(),
            mcid,
        });
        page.content.extend_from_slice(
            format!(
                "/{} <</MCID {mcid}>> BDC\nBT /{} {} Tf {MARGIN} {y:.1} Td ",
                role.name(),
                line.font.resource(),
                line.size
            )
            .as_bytes(),
        );
        page.content.extend_from_slice(&pdf_string(&line.text));
        page.content.extend_from_slice(b" Tj ET\nEMC\n");
    }
    footer(&mut page.content, pages.len() + 1);
    pages.push(page);
    pages
}

/// The XMP metadata packet: the title (which viewers show, `/DisplayDocTitle`), the
/// language and the format. No `pdfuaid:part`: see the module doc.
fn xmp() -> String {
    format!(
        "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
         <x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n\
         <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
         <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\">\n\
         <dc:format>application/pdf</dc:format>\n\
         <dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">{TITLE}</rdf:li></rdf:Alt></dc:title>\n\
         <dc:language><rdf:Bag><rdf:li>en-GB</rdf:li></rdf:Bag></dc:language>\n\
         <pdf:Producer>caldicott</pdf:Producer>\n\
         </rdf:Description>\n\
         </rdf:RDF>\n\
         </x:xmpmeta>\n\
         <?xpacket end=\"r\"?>"
    )
}

/// Object numbers: 1 catalog, 2 pages, 3-5 fonts, 6 structure tree root, 7 parent tree,
/// 8 document information, 9 XMP metadata, then one per structure element, then a page and
/// its contents for each page.
const STRUCT_TREE_ROOT: usize = 6;
const FIRST_ELEM: usize = 10;

/// The PDF objects and the cross-reference table.
fn write(d: &Doc, pages: &[Page]) -> Vec<u8> {
    let elem_obj = |e: usize| FIRST_ELEM + e;
    let first_page = FIRST_ELEM + d.elems.len();
    let page_obj = |i: usize| first_page + 2 * i;
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", page_obj(i)))
        .collect();
    objects.push(
        format!(
            "<< /Type /Catalog /Pages 2 0 R /MarkInfo << /Marked true >> \
             /StructTreeRoot {STRUCT_TREE_ROOT} 0 R /Lang (en-GB) \
             /ViewerPreferences << /DisplayDocTitle true >> /Metadata 9 0 R >>"
        )
        .into_bytes(),
    );
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
    objects.push(
        format!(
            "<< /Type /StructTreeRoot /K {} 0 R /ParentTree 7 0 R /ParentTreeNextKey {} >>",
            elem_obj(ROOT),
            pages.len()
        )
        .into_bytes(),
    );
    // The parent tree: a number tree from each page's /StructParents key (its index) to
    // the array of elements its MCIDs belong to.
    let mut nums = String::new();
    for (i, page) in pages.iter().enumerate() {
        let refs: Vec<String> = page
            .mcid_elems
            .iter()
            .map(|&e| format!("{} 0 R", elem_obj(e)))
            .collect();
        let _ = write!(nums, "{i} [{}] ", refs.join(" "));
    }
    objects.push(format!("<< /Nums [{}] >>", nums.trim_end()).into_bytes());
    let mut info = b"<< /Title ".to_vec();
    info.extend_from_slice(&pdf_string(TITLE));
    info.extend_from_slice(b" /Producer (caldicott) >>");
    objects.push(info);
    let meta = xmp();
    objects.push(
        format!(
            "<< /Type /Metadata /Subtype /XML /Length {} >>\nstream\n{meta}\nendstream",
            meta.len()
        )
        .into_bytes(),
    );
    for elem in &d.elems {
        let parent = elem.parent.map_or(STRUCT_TREE_ROOT, elem_obj);
        let kids: Vec<String> = elem
            .kids
            .iter()
            .map(|k| match *k {
                Kid::Elem(e) => format!("{} 0 R", elem_obj(e)),
                Kid::Content { page, mcid } => {
                    format!("<< /Type /MCR /Pg {} 0 R /MCID {mcid} >>", page_obj(page))
                }
            })
            .collect();
        // A list's items are not numbered (the date opens each one).
        let attrs = if elem.role == Role::L {
            " /A << /O /List /ListNumbering /None >>"
        } else {
            ""
        };
        objects.push(
            format!(
                "<< /Type /StructElem /S /{} /P {parent} 0 R{attrs} /K [{}] >>",
                elem.role.name(),
                kids.join(" ")
            )
            .into_bytes(),
        );
    }
    for (i, page) in pages.iter().enumerate() {
        let contents = page_obj(i) + 1;
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> \
                 /Contents {contents} 0 R /StructParents {i} >>"
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", page.content.len()).into_bytes();
        stream.extend_from_slice(&page.content);
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
            "trailer\n<< /Size {} /Root 1 0 R /Info 8 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;
    use std::collections::BTreeMap;

    const CHECKPOINT: &str = "caldicott.example.nhs.uk/audit\n1300\nq0ZlN3GGA6bQwz6gPcNJCpWmNZT2jG7jz3V5zMm0KcY=\n\n\u{2014} caldicott.example.nhs.uk/audit Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    fn header() -> ReportHeader {
        ReportHeader {
            patient_display: "943 476 5919".into(),
            generated_at_us: 1_767_225_600_000_000,
            checkpoint_text: CHECKPOINT.into(),
            verifier_key: "caldicott.example.nhs.uk/audit+cad5a3d2+AfPAH5".into(),
            organisation_names: BTreeMap::from([(
                "A81001".to_owned(),
                "The Health Centre".to_owned(),
            )]),
        }
    }

    /// `n` entries, every third refused and every fifth break-glass, so entries differ in
    /// length and enough of them run over several pages.
    fn entries(n: u64) -> Vec<ReportEntry> {
        (0..n)
            .map(|i| {
                let mut event = sample();
                event.at_us = 1_764_400_000_000_000 - i as i64 * 3_600_000_000;
                if i % 3 == 0 {
                    event.outcome = Outcome::Deny;
                    event.reason = "denied: no legitimate relationship with the patient".into();
                }
                event.break_glass = i % 5 == 0;
                ReportEntry {
                    epoch: 1,
                    index: i,
                    event,
                    leaf_hash_b64: format!("leaf{i}hash="),
                    inclusion_proof_b64: vec!["aGFzaDE=".into()],
                    tree_size: 1300,
                }
            })
            .collect()
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    /// The MCIDs in a content stream, in order.
    fn mcids_in(content: &[u8]) -> Vec<usize> {
        let text = String::from_utf8_lossy(content);
        text.split("<</MCID ")
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(usize::MAX)
            })
            .collect()
    }

    /// The marked content in document order: a depth-first walk of the structure tree.
    fn walk(d: &Doc, e: usize, out: &mut Vec<(usize, usize, usize)>) {
        for kid in &d.elems[e].kids {
            match *kid {
                Kid::Elem(k) => walk(d, k, out),
                Kid::Content { page, mcid } => out.push((page, mcid, e)),
            }
        }
    }

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "a bb ccc dddd eeeee ffffff ggggggggggggggggggggggg h";
        let lines = wrap(text, 8);
        assert_eq!(
            lines,
            [
                "a bb ccc ",
                "dddd ",
                "eeeee ",
                "ffffff ",
                "gggggggg",
                "gggggggg",
                "ggggggg ",
                "h"
            ]
        );
        assert_eq!(lines.concat(), text);
        assert_eq!(wrap("", 8), vec![String::new()]);
    }

    proptest::proptest! {
        /// The lines joined are the text (no word or space lost, words stay apart), and
        /// no line shows more than the width (a hanging space aside).
        #[test]
        fn wrapped_lines_join_to_the_text(text in "[a-z\u{e9} ]{0,80}", width in 1usize..20) {
            let lines = wrap(&text, width);
            proptest::prop_assert_eq!(lines.concat(), text.clone());
            for l in &lines {
                let shown = l.strip_suffix(' ').unwrap_or(l).chars().count();
                proptest::prop_assert!(shown <= width, "{:?} in {:?}", l, lines);
            }
        }
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
    fn every_mcid_is_in_the_parent_tree_once_and_every_kid_exists() {
        for n in [0, 1, 3, 40] {
            let mut d = layout(&header(), &entries(n));
            let pages = paginate(&mut d);
            if n == 40 {
                assert!(pages.len() > 2, "40 entries run over pages");
            }
            // Every element's kids exist, and name it as their parent; every element but
            // the Document is the kid of exactly one element.
            let mut kid_of = vec![0; d.elems.len()];
            for (i, e) in d.elems.iter().enumerate() {
                for kid in &e.kids {
                    if let Kid::Elem(k) = *kid {
                        assert!(k < d.elems.len() && k > i, "kid {k} of {i}");
                        assert_eq!(d.elems[k].parent, Some(i));
                        kid_of[k] += 1;
                    }
                }
                // Containers hold elements, leaves hold content; none is empty.
                assert!(!e.kids.is_empty(), "element {i} ({:?}) is empty", e.role);
                let content = e
                    .kids
                    .iter()
                    .filter(|k| matches!(k, Kid::Content { .. }))
                    .count();
                assert!(content == 0 || content == e.kids.len(), "mixed kids in {i}");
            }
            assert_eq!(kid_of[0], 0);
            assert!(kid_of[1..].iter().all(|&c| c == 1), "{kid_of:?}");
            // The tree's marked content, in its order, is every page's MCIDs in content
            // order, each once, and the parent tree maps each to the element holding it.
            let mut walked = Vec::new();
            walk(&d, ROOT, &mut walked);
            let mut expected = Vec::new();
            for (p, page) in pages.iter().enumerate() {
                let in_stream = mcids_in(&page.content);
                assert_eq!(in_stream, (0..page.mcid_elems.len()).collect::<Vec<_>>());
                for (mcid, &e) in page.mcid_elems.iter().enumerate() {
                    expected.push((p, mcid, e));
                }
            }
            assert_eq!(walked, expected, "{n} entries");
            // Each page's text is all marked: an artifact footer, then tagged lines.
            for page in &pages {
                let c = &page.content;
                assert_eq!(count(c, b" BDC\n"), count(c, b"\nEMC\n"));
                assert_eq!(count(c, b" BDC\n"), count(c, b"BT "));
                assert_eq!(count(c, b"/Artifact"), 1);
                assert_eq!(count(c, b"BT "), page.mcid_elems.len() + 1);
            }
            // And in the file: each page's StructParents key is its parent tree key.
            let pdf = write(&d, &pages);
            for i in 0..pages.len() {
                assert!(find(&pdf, format!("/StructParents {i} >>").as_bytes()).is_some());
            }
            assert_eq!(count(&pdf, b"/StructParents "), pages.len());
            let next = format!("/ParentTreeNextKey {} >>", pages.len());
            assert!(find(&pdf, next.as_bytes()).is_some());
            assert!(find(&pdf, b"() Tj").is_none(), "no empty runs");
        }
    }

    #[test]
    fn roles_follow_the_reading_order() {
        let d = layout(&header(), &entries(3));
        let roles = |e: usize| -> Vec<Role> {
            d.elems[e]
                .kids
                .iter()
                .filter_map(|k| match *k {
                    Kid::Elem(k) => Some(d.elems[k].role),
                    Kid::Content { .. } => None,
                })
                .collect()
        };
        use Role::*;
        assert_eq!(
            roles(ROOT),
            [H1, P, P, P, P, H2, L, H2, P, H3, P, H3, P],
            "title, record, date, intro, summary, entries, how to check"
        );
        let list = d.elems.iter().position(|e| e.role == L).unwrap_or(0);
        assert_eq!(roles(list), [LI, LI, LI], "one item per entry");
        for item in d.elems.iter().filter(|e| e.role == LI) {
            let Some(Kid::Elem(body)) = item.kids.first().copied() else {
                panic!("an item without a body")
            };
            assert_eq!(item.kids.len(), 1);
            assert_eq!(d.elems[body].role, LBody);
            assert!(roles(body).len() >= 5 && roles(body).iter().all(|&r| r == P));
        }
        let h1 = d.lines.iter().find(|l| l.elem == Some(1));
        assert_eq!(h1.map(|l| l.text.as_str()), Some(TITLE));
        let none = layout(&header(), &[]);
        let roles: Vec<Role> = none.elems[ROOT]
            .kids
            .iter()
            .filter_map(|k| match *k {
                Kid::Elem(k) => Some(none.elems[k].role),
                Kid::Content { .. } => None,
            })
            .collect();
        assert_eq!(
            roles,
            [H1, P, P, P, P, H2, P, H3, P, H3, P],
            "no empty list"
        );
    }

    #[test]
    fn the_catalog_says_tagged_language_and_title() {
        let pdf = to_pdf(&header(), &entries(2));
        for needle in [
            &b"/MarkInfo << /Marked true >>"[..],
            b"/StructTreeRoot 6 0 R",
            b"/Lang (en-GB)",
            b"/ViewerPreferences << /DisplayDocTitle true >>",
            b"/Metadata 9 0 R",
            b"/Title (Who has looked at your record)",
            b"<rdf:li xml:lang=\"x-default\">Who has looked at your record</rdf:li>",
            b"/Info 8 0 R",
            b"/Artifact << /Type /Pagination /Subtype /Footer >> BDC",
        ] {
            assert!(
                find(&pdf, needle).is_some(),
                "{}",
                String::from_utf8_lossy(needle)
            );
        }
        assert!(find(&pdf, b"pdfuaid").is_none(), "fonts are not embedded");
        // The metadata stream's length is its bytes (the packet header has a BOM).
        let meta = xmp();
        let at = find(&pdf, b"/Subtype /XML /Length ").unwrap_or(0);
        let declared = format!("/Subtype /XML /Length {} >>\nstream\n", meta.len());
        assert!(pdf[at..].starts_with(declared.as_bytes()));
        assert!(pdf[at + declared.len()..].starts_with(meta.as_bytes()));
    }

    #[test]
    fn the_cross_reference_table_points_at_each_object() {
        let mut d = Doc::new();
        let text: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
        d.push(ROOT, Role::P, Font::Regular, 10.0, 0.0, &text.join("\n"));
        let pages = paginate(&mut d);
        let pdf = write(&d, &pages);
        // Byte-wise: the file is not UTF-8 (its binary comment, Windows-1252 text).
        let find = |needle: &[u8], from: usize| find(&pdf[from..], needle).map(|p| p + from);
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
        // 9 fixed objects, 2 elements (Document, P), 4 pages with their contents.
        let objects = FIRST_ELEM - 1 + 2 + 2 * 4;
        assert!(table.starts_with(&format!("xref\n0 {}\n", objects + 1)));
        for (i, entry) in table.lines().skip(3).take(objects).enumerate() {
            let offset: usize = entry[..10].parse().unwrap_or(0);
            assert!(
                pdf[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {} is not at {offset}",
                i + 1
            );
        }
    }
}
