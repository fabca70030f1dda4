//! Free-text scrubbing: finds direct identifiers in a free-text field (NHS numbers, emails,
//! UK phone numbers, UK postcodes, dates, street addresses, names) and replaces each with a
//! typed placeholder such as `[NHS-NUMBER]`.
//!
//! Why hand-written scanners and not a regex engine: each detector needs a check a pattern
//! cannot express (the NHS number's modulus-11 check digit, calendar validity of a date, digit
//! counts across arbitrary grouping of a phone number), and one linear pass per detector over
//! the bytes is fast and easy to reason about. All detectors report byte spans; overlapping or
//! touching spans are merged and the merged span gets the placeholder of its most specific
//! category, so text found by any detector is removed even when detectors disagree.
//!
//! The detectors err on the side of removing too much: a ten-digit group that passes the NHS
//! check digit is removed even if it was meant as something else. What they can miss is listed
//! in `docs/transforms.md` ("Known limits").

use std::borrow::Cow;
use std::collections::HashSet;

use caldicott_core::NhsNumber;

/// What a span of free text was recognised as. The order is the priority used when spans of
/// different kinds overlap (earlier wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Ten digits (any grouping by spaces, hyphens or dots) with a valid NHS check digit.
    NhsNumber,
    /// `local@domain.tld`.
    Email,
    /// A UK phone number: `0` then 9 or 10 more digits, or `+44` then 9 or 10 digits.
    Phone,
    /// A full UK postcode (outward and inward code).
    Postcode,
    /// A date: numeric (`12/03/2024`, `12-3-24`, `2024-03-12`, `12.03.2024`) or with a month
    /// name (`12 March 2024`, `12th Mar`, `March 12, 2024`, `March 2024`).
    Date,
    /// A street address: a house number, capitalised words and a street suffix (`12 High
    /// Street`), with a following `, Town` if present.
    Address,
    /// A name: a word from the policy's name list or the row's name columns, or capitalised
    /// words after a title (`Mr`, `Mrs`, `Dr`, ...). Before [`Category::Identifier`], so that
    /// a name column's whole value found in the text reads `[NAME]`.
    Name,
    /// The whole value of one of the row's identifier or pseudonymised columns.
    Identifier,
}

impl Category {
    /// The placeholder written in place of the text.
    pub fn placeholder(self) -> &'static str {
        match self {
            Category::NhsNumber => "[NHS-NUMBER]",
            Category::Email => "[EMAIL]",
            Category::Phone => "[PHONE]",
            Category::Postcode => "[POSTCODE]",
            Category::Date => "[DATE]",
            Category::Address => "[ADDRESS]",
            Category::Identifier => "[IDENTIFIER]",
            Category::Name => "[NAME]",
        }
    }
}

/// A recognised span: bytes `start..end` of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it was recognised as.
    pub category: Category,
}

/// The identifying values of the row a free-text field belongs to.
#[derive(Debug, Clone, Default)]
pub struct RowContext<'a> {
    /// Values of the row's name columns: each of their words is removed from the text.
    pub names: Vec<&'a str>,
    /// Values of the row's identifier and pseudonymised columns: each is removed where it
    /// appears whole (case-insensitively, on word boundaries).
    pub identifiers: Vec<&'a str>,
}

/// A free-text scrubber with a fixed list of names (from the policy).
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Lower-cased name words, each at least [`MIN_NAME_CHARS`] characters.
    names: HashSet<String>,
}

/// Name words shorter than this are not matched (an initial would remove every `a` or `I`).
pub const MIN_NAME_CHARS: usize = 2;

/// Identifier values shorter than this (in bytes) are not matched whole.
pub const MIN_IDENTIFIER_BYTES: usize = 2;

impl Scrubber {
    /// A scrubber that also removes every word of these names (case-insensitively).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut set = HashSet::new();
        for n in names {
            for (_, w) in words(n.as_ref()) {
                if w.chars().count() >= MIN_NAME_CHARS {
                    set.insert(w.to_lowercase());
                }
            }
        }
        Self { names: set }
    }

    /// The spans of `text` to remove, merged and sorted.
    pub fn spans(&self, text: &str, row: &RowContext<'_>) -> Vec<Span> {
        let mut spans = Vec::new();
        nhs_numbers(text, &mut spans);
        emails(text, &mut spans);
        phones(text, &mut spans);
        postcodes(text, &mut spans);
        dates(text, &mut spans);
        addresses(text, &mut spans);
        for value in &row.identifiers {
            whole_values(text, value, &mut spans);
        }
        let mut row_names: HashSet<String> = HashSet::new();
        for n in &row.names {
            for (_, w) in words(n) {
                if w.chars().count() >= MIN_NAME_CHARS {
                    row_names.insert(w.to_lowercase());
                }
            }
        }
        names(text, &self.names, &row_names, &mut spans);
        titled_names(text, &mut spans);
        merge(spans)
    }

    /// The text with every recognised span replaced by its placeholder. Borrows the input
    /// when nothing was found.
    pub fn scrub<'t>(&self, text: &'t str, row: &RowContext<'_>) -> Cow<'t, str> {
        let spans = self.spans(text, row);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in spans {
            out.push_str(&text[at..s.start]);
            out.push_str(s.category.placeholder());
            at = s.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// Scrubs `text` with no name list and no row context (pattern detectors and titled names).
pub fn scrub(text: &str) -> Cow<'_, str> {
    Scrubber::default().scrub(text, &RowContext::default())
}

/// Sorts spans and merges overlapping or touching ones; a merged span takes the highest
/// priority category among its parts.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if s.start >= s.end {
            continue;
        }
        match out.last_mut() {
            Some(last) if s.start <= last.end => {
                last.end = last.end.max(s.end);
                last.category = last.category.min(s.category);
            }
            _ => out.push(s),
        }
    }
    out
}

/// The char before byte `at`, if any.
fn char_before(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

/// The char at byte `at`, if any.
fn char_at(text: &str, at: usize) -> Option<char> {
    text[at..].chars().next()
}

/// Whether `start..end` is delimited by non-alphanumeric characters (or the text's ends).
fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    !char_before(text, start).is_some_and(char::is_alphanumeric)
        && !char_at(text, end).is_some_and(char::is_alphanumeric)
}

/// Words: maximal runs of alphanumeric characters, with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some(&(_, c)) = chars.peek() {
            if c.is_alphanumeric() {
                break;
            }
            chars.next();
        }
        let (start, _) = *chars.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        Some((start, &text[start..end]))
    })
}

/// A group of digits: bytes `start..end`.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

impl Group {
    fn len(self) -> usize {
        self.end - self.start
    }
}

/// Splits the text into runs of digit groups, where groups of one run are separated by at
/// most `max_sep` bytes from `seps`. Returns each run's groups.
fn digit_runs(text: &str, seps: &[u8], max_sep: usize) -> Vec<Vec<Group>> {
    let b = text.as_bytes();
    let mut runs = Vec::new();
    let mut run: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let group = Group { start, end: i };
        let joined = run.last().is_some_and(|prev| {
            let gap = &b[prev.end..start];
            gap.len() <= max_sep && gap.iter().all(|c| seps.contains(c))
        });
        if !joined && !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
        run.push(group);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// NHS numbers: any consecutive digit groups of one run (separated by up to three spaces,
/// hyphens or dots) holding exactly ten digits that pass the check digit.
fn nhs_numbers(text: &str, spans: &mut Vec<Span>) {
    let b = text.as_bytes();
    for run in digit_runs(text, b" -.\t", 3) {
        for first in 0..run.len() {
            let mut digits = [0u8; 10];
            let mut n = 0;
            for (last, g) in run.iter().enumerate().skip(first) {
                if n + g.len() > 10 {
                    break;
                }
                digits[n..n + g.len()].copy_from_slice(&b[g.start..g.end]);
                n += g.len();
                if n == 10 {
                    let valid = std::str::from_utf8(&digits)
                        .ok()
                        .is_some_and(|d| NhsNumber::parse(d).is_ok());
                    if valid {
                        spans.push(Span {
                            start: run[first].start,
                            end: run[last].end,
                            category: Category::NhsNumber,
                        });
                    }
                    break;
                }
            }
        }
    }
}

/// UK phone numbers: a run starting `0` (first group at least 3 digits, or `(0...)`) whose
/// leading groups hold 10 or 11 digits, or `+44` (optionally then `(0)`) followed by groups
/// holding 9 or 10 digits. The start must not follow a letter or digit.
fn phones(text: &str, spans: &mut Vec<Span>) {
    let b = text.as_bytes();
    for run in digit_runs(text, b" -.()\t", 3) {
        for first in 0..run.len() {
            let g = run[first];
            let after_paren = g.start > 0 && b[g.start - 1] == b'(';
            let (start, mut count, next, target) =
                if g.start > 0 && b[g.start - 1] == b'+' && b[g.start..g.end].starts_with(b"44") {
                    let mut next = first + 1;
                    // `+44 (0)20 ...`: the `(0)` is the trunk prefix written for national callers.
                    if g.len() == 2
                        && next < run.len()
                        && run[next].len() == 1
                        && b[run[next].start] == b'0'
                        && b[run[next].start - 1] == b'('
                    {
                        next += 1;
                    }
                    (g.start - 1, g.len() - 2, next, [9, 10])
                } else if b[g.start] == b'0' && (g.len() >= 3 || after_paren) {
                    let start = if after_paren { g.start - 1 } else { g.start };
                    (start, g.len(), first + 1, [10, 11])
                } else {
                    continue;
                };
            if char_before(text, start).is_some_and(char::is_alphanumeric) {
                continue;
            }
            let mut best = target.contains(&count).then_some(g.end);
            let mut k = next;
            while k < run.len() && count < target[1] {
                count += run[k].len();
                if target.contains(&count) {
                    best = Some(run[k].end);
                }
                k += 1;
            }
            if let Some(end) = best {
                spans.push(Span {
                    start,
                    end,
                    category: Category::Phone,
                });
            }
        }
    }
}

fn is_email_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-'".contains(&c)
}

fn is_email_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// Emails: `local@domain.tld` with a dotted domain and an alphabetic top-level label.
fn emails(text: &str, spans: &mut Vec<Span>) {
    let b = text.as_bytes();
    for (at, _) in text.match_indices('@') {
        let mut start = at;
        while start > 0 && is_email_local(b[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < b.len() && is_email_domain(b[end]) {
            end += 1;
        }
        while end > at + 1 && (b[end - 1] == b'.' || b[end - 1] == b'-') {
            end -= 1;
        }
        let domain = &text[at + 1..end];
        let tld_ok = domain.rsplit_once('.').is_some_and(|(head, tld)| {
            !head.is_empty() && tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic())
        });
        if start < at && tld_ok {
            spans.push(Span {
                start,
                end,
                category: Category::Email,
            });
        }
    }
}

/// Full UK postcodes, any case, with or without the space: outward `A9`, `A99`, `AA9`,
/// `AA99`, `A9A`, `AA9A` (or `GIR`), inward `9AA`.
fn postcodes(text: &str, spans: &mut Vec<Span>) {
    let b = text.as_bytes();
    let alpha = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphabetic);
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let alnum = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphanumeric);
    for start in 0..b.len() {
        if !alpha(start) || !text.is_char_boundary(start) {
            continue;
        }
        if char_before(text, start).is_some_and(char::is_alphanumeric) {
            continue;
        }
        // Outward code candidates, longest first.
        let mut outward_ends = Vec::new();
        if b.len() >= start + 3 && b[start..start + 3].eq_ignore_ascii_case(b"GIR") {
            outward_ends.push(start + 3);
        }
        let letters = if alpha(start + 1) { 2 } else { 1 };
        let d = start + letters;
        if digit(d) {
            if alnum(d + 1) {
                outward_ends.push(d + 2);
            }
            outward_ends.push(d + 1);
        }
        for oe in outward_ends {
            let mut i = oe;
            if b.get(i) == Some(&b' ') {
                i += 1;
            }
            if digit(i)
                && alpha(i + 1)
                && alpha(i + 2)
                && !alnum(i + 3)
                && !char_at(text, i + 3).is_some_and(char::is_alphanumeric)
            {
                spans.push(Span {
                    start,
                    end: i + 3,
                    category: Category::Postcode,
                });
                break;
            }
        }
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Whether a word names a month: its full name, or its first three letters (`sept` too).
fn is_month(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    w == "sept"
        || MONTHS
            .iter()
            .any(|m| *m == w || (w.len() == 3 && m.starts_with(&w)))
}

/// A day of the month, `1`..`31`, optionally with `st`, `nd`, `rd` or `th`.
fn is_day(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    let digits = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|s| lower.strip_suffix(s))
        .unwrap_or(&lower);
    (1..=2).contains(&digits.len())
        && digits.bytes().all(|c| c.is_ascii_digit())
        && digits.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
}

fn is_year(word: &str) -> bool {
    word.len() == 4 && word.bytes().all(|c| c.is_ascii_digit())
}

fn is_short_year(word: &str) -> bool {
    (word.len() == 2 || word.len() == 4) && word.bytes().all(|c| c.is_ascii_digit())
}

/// Dates, numeric and with month names.
fn dates(text: &str, spans: &mut Vec<Span>) {
    // Numeric: three digit groups joined by the same one of `/`, `-`, `.`.
    let b = text.as_bytes();
    for run in digit_runs(text, b"/-.", 1) {
        for w in run.windows(3) {
            let (g1, g2, g3) = (w[0], w[1], w[2]);
            let s1 = b[g1.end];
            if b[g2.end] != s1 {
                continue;
            }
            let num = |g: Group| text[g.start..g.end].parse::<u32>().unwrap_or(u32::MAX);
            let dmy = (1..=2).contains(&g1.len())
                && (1..=2).contains(&g2.len())
                && (g3.len() == 2 || g3.len() == 4)
                && (1..=31).contains(&num(g1))
                && (1..=12).contains(&num(g2));
            let ymd = g1.len() == 4
                && (1..=2).contains(&g2.len())
                && (1..=2).contains(&g3.len())
                && (1..=12).contains(&num(g2))
                && (1..=31).contains(&num(g3));
            // US-style m/d/y too: removing it is safe even if it was meant otherwise.
            let mdy = (1..=2).contains(&g1.len())
                && (1..=2).contains(&g2.len())
                && (g3.len() == 2 || g3.len() == 4)
                && (1..=12).contains(&num(g1))
                && (1..=31).contains(&num(g2));
            if dmy || ymd || mdy {
                spans.push(Span {
                    start: g1.start,
                    end: g3.end,
                    category: Category::Date,
                });
            }
        }
    }
    // With month names.
    let ws: Vec<(usize, &str)> = words(text).collect();
    let end_of = |k: usize| ws[k].0 + ws[k].1.len();
    for (k, &(_, w)) in ws.iter().enumerate() {
        if !is_month(w) {
            continue;
        }
        let mut first = k;
        let mut last = k;
        let mut has_day = false;
        let mut has_year = false;
        // `12 March`, `12th of March`.
        if k >= 1 && is_day(ws[k - 1].1) {
            first = k - 1;
            has_day = true;
        } else if k >= 2 && ws[k - 1].1.eq_ignore_ascii_case("of") && is_day(ws[k - 2].1) {
            first = k - 2;
            has_day = true;
        }
        // `March 12`, `March 12, 2024`, `March 2024`, `12 March 2024`.
        if k + 1 < ws.len() {
            if is_year(ws[k + 1].1) || (has_day && is_short_year(ws[k + 1].1)) {
                last = k + 1;
                has_year = true;
            } else if !has_day && is_day(ws[k + 1].1) {
                last = k + 1;
                has_day = true;
                if k + 2 < ws.len() && is_year(ws[k + 2].1) {
                    last = k + 2;
                    has_year = true;
                }
            }
        }
        // `may` alone is a verb; a month name alone is not a date.
        if has_day || has_year {
            spans.push(Span {
                start: ws[first].0,
                end: end_of(last),
                category: Category::Date,
            });
        }
    }
}

const STREET_SUFFIXES: [&str; 37] = [
    "street", "st", "road", "rd", "lane", "ln", "avenue", "ave", "close", "cl", "drive", "dr",
    "way", "court", "ct", "crescent", "cres", "place", "pl", "terrace", "tce", "gardens", "gdns",
    "grove", "square", "sq", "walk", "mews", "row", "hill", "parade", "park", "view", "rise",
    "green", "wharf", "yard",
];

fn is_capitalised(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

fn is_house_number(word: &str) -> bool {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    (1..=4).contains(&digits)
        && word.len() - digits <= 1
        && word.bytes().skip(digits).all(|c| c.is_ascii_alphabetic())
}

/// Street addresses: a house number, one to three capitalised words, a street suffix, and
/// up to two following `, Town` parts of capitalised words.
fn addresses(text: &str, spans: &mut Vec<Span>) {
    let ws: Vec<(usize, &str)> = words(text).collect();
    let end_of = |k: usize| ws[k].0 + ws[k].1.len();
    // Whether only spaces, commas or hyphens separate word k from word k + 1.
    let joined = |k: usize, allow: &[u8]| {
        text[end_of(k)..ws[k + 1].0]
            .bytes()
            .all(|c| c == b' ' || allow.contains(&c))
    };
    for (k, &(_, w)) in ws.iter().enumerate() {
        if !is_house_number(w) {
            continue;
        }
        let mut j = k + 1;
        let mut capitalised = 0;
        let mut suffix_at = None;
        while j < ws.len() && j <= k + 4 && joined(j - 1, b"-") && is_capitalised(ws[j].1) {
            if capitalised >= 1 && STREET_SUFFIXES.contains(&ws[j].1.to_lowercase().as_str()) {
                suffix_at = Some(j);
                break;
            }
            capitalised += 1;
            j += 1;
        }
        let Some(mut last) = suffix_at else {
            continue;
        };
        // `Rose Hill Road`: a suffix word can be part of the street's name.
        while last + 1 < ws.len()
            && joined(last, b"-")
            && is_capitalised(ws[last + 1].1)
            && STREET_SUFFIXES.contains(&ws[last + 1].1.to_lowercase().as_str())
        {
            last += 1;
        }
        // `, Leeds`, `, Headingley, Leeds`.
        for _ in 0..2 {
            let mut m = last + 1;
            if m >= ws.len() || !joined(last, b",") || !text[end_of(last)..ws[m].0].contains(',') {
                break;
            }
            let mut town_last = None;
            while m < ws.len() && m <= last + 3 && is_capitalised(ws[m].1) {
                town_last = Some(m);
                if m + 1 < ws.len() && joined(m, b"-") {
                    m += 1;
                } else {
                    break;
                }
            }
            match town_last {
                Some(t) => last = t,
                None => break,
            }
        }
        spans.push(Span {
            start: ws[k].0,
            end: end_of(last),
            category: Category::Address,
        });
    }
}

/// Whole values of the row's identifier columns, ASCII case-insensitively, on word
/// boundaries (byte offsets are kept because only ASCII is case-folded).
fn whole_values(text: &str, value: &str, spans: &mut Vec<Span>) {
    let value = value.trim();
    if value.len() < MIN_IDENTIFIER_BYTES {
        return;
    }
    let hay = text.to_ascii_lowercase();
    let needle = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = hay[from..].find(&needle) {
        let start = from + pos;
        let end = start + needle.len();
        if on_word_boundaries(text, start, end) {
            spans.push(Span {
                start,
                end,
                category: Category::Identifier,
            });
        }
        from = start + needle.chars().next().map_or(1, char::len_utf8);
    }
}

/// Words in the policy's name list or the row's name columns.
fn names(text: &str, list: &HashSet<String>, row: &HashSet<String>, spans: &mut Vec<Span>) {
    if list.is_empty() && row.is_empty() {
        return;
    }
    for (start, w) in words(text) {
        let lower = w.to_lowercase();
        if list.contains(&lower) || row.contains(&lower) {
            spans.push(Span {
                start,
                end: start + w.len(),
                category: Category::Name,
            });
        }
    }
}

const TITLES: [&str; 9] = ["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame"];

/// One or two capitalised words after a title (`Mr`, `Mrs`, `Ms`, `Miss`, `Mx`, `Dr`, `Prof`,
/// `Sir`, `Dame`): `Mrs Jane Smith` → `Mrs [NAME]`.
fn titled_names(text: &str, spans: &mut Vec<Span>) {
    let ws: Vec<(usize, &str)> = words(text).collect();
    for k in 0..ws.len() {
        let (_, w) = ws[k];
        if !is_capitalised(w) || !TITLES.contains(&w.to_lowercase().as_str()) {
            continue;
        }
        let mut last = None;
        let mut m = k + 1;
        while m < ws.len() && m <= k + 2 {
            let gap = &text[ws[m - 1].0 + ws[m - 1].1.len()..ws[m].0];
            let ok_gap = gap == " " || gap == ". " || gap == "-";
            if !ok_gap
                || !is_capitalised(ws[m].1)
                || TITLES.contains(&ws[m].1.to_lowercase().as_str())
            {
                break;
            }
            last = Some(m);
            m += 1;
        }
        if let Some(l) = last {
            spans.push(Span {
                start: ws[k + 1].0,
                end: ws[l].0 + ws[l].1.len(),
                category: Category::Name,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        scrub(text).into_owned()
    }

    #[test]
    fn nhs_numbers_by_check_digit() {
        assert_eq!(s("NHS no 943 476 5919."), "NHS no [NHS-NUMBER].");
        assert_eq!(s("nhs:9434765919,"), "nhs:[NHS-NUMBER],");
        assert_eq!(s("id 943-476-5919 seen"), "id [NHS-NUMBER] seen");
        // Check digit wrong (…18): not an NHS number, and not a phone (no leading 0).
        assert_eq!(s("ref 9434765918"), "ref 9434765918");
        // Glued to another group: the ten digits are still found.
        assert_eq!(s("12 943 476 5919 x"), "12 [NHS-NUMBER] x");
    }

    #[test]
    fn phones_emails_postcodes() {
        assert_eq!(s("call 0113 496 0000 now"), "call [PHONE] now");
        assert_eq!(s("mob 07700 900123"), "mob [PHONE]");
        assert_eq!(s("tel +44 (0)20 7946 0000."), "tel [PHONE].");
        assert_eq!(s("tel +44 20 7946 0000"), "tel [PHONE]");
        assert_eq!(s("tel (0113) 496 0000"), "tel [PHONE]");
        assert_eq!(s("count 0 5 10 15 20 25"), "count 0 5 10 15 20 25");
        assert_eq!(s("mail jane.smith@nhs.net."), "mail [EMAIL].");
        assert_eq!(s("at LS1 4AP and sw1a1aa"), "at [POSTCODE] and [POSTCODE]");
        assert_eq!(s("GIR 0AA"), "[POSTCODE]");
        assert_eq!(s("LS1 only"), "LS1 only");
    }

    #[test]
    fn dates_in_many_formats() {
        assert_eq!(s("dob 12/03/1961 ok"), "dob [DATE] ok");
        assert_eq!(s("on 1-3-61"), "on [DATE]");
        assert_eq!(s("on 2024-03-12."), "on [DATE].");
        assert_eq!(s("on 12.03.2024"), "on [DATE]");
        assert_eq!(s("born 12th of March 1961"), "born [DATE]");
        assert_eq!(s("seen March 12, 2024 by"), "seen [DATE] by");
        assert_eq!(s("since Sept 2019"), "since [DATE]");
        assert_eq!(s("she may come"), "she may come");
        assert_eq!(s("13/13/2024"), "13/13/2024");
    }

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            s("lives at 12 High Street, Leeds with"),
            "lives at [ADDRESS] with"
        );
        assert_eq!(s("at 3a Rose Hill Road"), "at [ADDRESS]");
        assert_eq!(s("3 tablets daily"), "3 tablets daily");
        assert_eq!(s("seen by Dr Ahmed Khan today"), "seen by Dr [NAME] today");
        let scrubber = Scrubber::new(&["Ohanlon"]);
        let row = RowContext {
            names: vec!["Jane Smith"],
            identifiers: vec!["AB-123"],
        };
        assert_eq!(
            scrubber.scrub("jane SMITH and ohanlon, ref ab-123.", &row),
            "[NAME] [NAME] and [NAME], ref [IDENTIFIER]."
        );
        // Words containing a name are left alone.
        assert_eq!(scrubber.scrub("Smithfield", &row), "Smithfield");
    }

    #[test]
    fn overlapping_spans_merge() {
        let spans = merge(vec![
            Span {
                start: 0,
                end: 5,
                category: Category::Date,
            },
            Span {
                start: 3,
                end: 8,
                category: Category::NhsNumber,
            },
            Span {
                start: 8,
                end: 9,
                category: Category::Name,
            },
            Span {
                start: 12,
                end: 14,
                category: Category::Name,
            },
        ]);
        assert_eq!(
            spans,
            vec![
                Span {
                    start: 0,
                    end: 9,
                    category: Category::NhsNumber
                },
                Span {
                    start: 12,
                    end: 14,
                    category: Category::Name
                },
            ]
        );
    }

    #[test]
    fn unicode_is_safe() {
        assert_eq!(s("Zoë 12/03/1961 café"), "Zoë [DATE] café");
        let scrubber = Scrubber::new(&["Zoë"]);
        assert_eq!(
            scrubber.scrub("ZOË came", &RowContext::default()),
            "[NAME] came"
        );
    }
}
