//! A small, forgiving HTML scanner: visible text, hidden text, links with their text, images,
//! forms and scripts. It is not a DOM parser: it walks tags once, in linear time, and never
//! fails on broken markup, which is what mail HTML usually is.

/// What the screening checks need from an HTML document.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HtmlInfo {
    /// The text a reader sees (entities decoded, whitespace collapsed).
    pub text: String,
    /// Characters of text inside elements styled invisible.
    pub hidden_chars: usize,
    /// `<a href>` links with the text shown for them.
    pub links: Vec<HtmlLink>,
    pub images: usize,
    pub forms: usize,
    pub password_inputs: usize,
    /// Bytes of `<script>` content.
    pub script_bytes: usize,
    /// Tag names seen (lowercase, at most 64 distinct), for the classifier.
    pub tags: Vec<String>,
}

/// One link: where it goes and what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlLink {
    pub href: String,
    pub text: String,
}

const MAX_TAG_NAMES: usize = 64;
const MAX_LINK_TEXT: usize = 200;

/// Scans at most `max_bytes` of `html` and at most `max_links` links.
pub fn scan(html: &str, max_bytes: usize, max_links: usize) -> HtmlInfo {
    let html = truncate(html, max_bytes);
    let b = html.as_bytes();
    let mut info = HtmlInfo::default();
    let mut i = 0;
    let mut link: Option<HtmlLink> = None;
    // Elements styled invisible that are still open: (tag name, nesting of that name).
    let mut hidden: Vec<(String, usize)> = Vec::new();
    while i < b.len() {
        if b[i] != b'<' {
            let end = memchr(b'<', &b[i..]).map_or(b.len(), |p| i + p);
            let text = decode_entities(&html[i..end]);
            if hidden.is_empty() {
                push_collapsed(&mut info.text, &text);
                if let Some(l) = link.as_mut()
                    && l.text.len() < MAX_LINK_TEXT
                {
                    push_collapsed(&mut l.text, &text);
                }
            } else {
                info.hidden_chars += text.chars().filter(|c| !c.is_whitespace()).count();
            }
            i = end;
            continue;
        }
        // Comments, doctype, processing instructions.
        if b[i..].starts_with(b"<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |p| p + 3);
            continue;
        }
        if matches!(b.get(i + 1), Some(b'!' | b'?')) {
            i = memchr(b'>', &b[i..]).map_or(b.len(), |p| i + p + 1);
            continue;
        }
        let closing = b.get(i + 1) == Some(&b'/');
        let name_start = i + 1 + usize::from(closing);
        let mut j = name_start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b':' || b[j] == b'-') {
            j += 1;
        }
        if j == name_start {
            // A lone `<`: text.
            if hidden.is_empty() {
                info.text.push('<');
            }
            i += 1;
            continue;
        }
        let name = html[name_start..j].to_ascii_lowercase();
        let (attrs, end) = parse_attributes(html, j);
        i = end;
        if info.tags.len() < MAX_TAG_NAMES && !info.tags.contains(&name) {
            info.tags.push(name.clone());
        }
        if closing {
            if name == "a"
                && let Some(l) = link.take()
                && info.links.len() < max_links
            {
                info.links.push(l);
            }
            if let Some(top) = hidden.last_mut()
                && top.0 == name
            {
                if top.1 == 0 {
                    hidden.pop();
                } else {
                    top.1 -= 1;
                }
            }
            if is_block(&name) {
                push_collapsed(&mut info.text, " ");
            }
            continue;
        }
        if let Some(top) = hidden.last_mut()
            && top.0 == name
        {
            top.1 += 1;
        }
        let attr = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        match name.as_str() {
            "script" | "style" | "title" => {
                let close = format!("</{name}");
                let stop = find_ci(b, i, close.as_bytes()).unwrap_or(b.len());
                if name == "script" {
                    info.script_bytes += stop - i;
                }
                i = memchr(b'>', &b[stop..]).map_or(b.len(), |p| stop + p + 1);
                continue;
            }
            "a" => {
                if let Some(l) = link.take()
                    && info.links.len() < max_links
                {
                    info.links.push(l);
                }
                if let Some(href) = attr("href") {
                    link = Some(HtmlLink {
                        href: href.trim().to_string(),
                        text: String::new(),
                    });
                }
            }
            "img" => info.images += 1,
            "form" => info.forms += 1,
            "input" if attr("type").is_some_and(|t| t.eq_ignore_ascii_case("password")) => {
                info.password_inputs += 1;
            }
            _ => {}
        }
        if is_block(&name) {
            push_collapsed(&mut info.text, " ");
        }
        let void = matches!(
            name.as_str(),
            "br" | "img" | "input" | "hr" | "meta" | "link" | "area" | "base" | "col" | "wbr"
        );
        if !void && attrs.iter().any(|(k, v)| is_hidden_style(k, v)) {
            hidden.push((name, 0));
        }
    }
    if let Some(l) = link
        && info.links.len() < max_links
    {
        info.links.push(l);
    }
    let t = info.text.trim().len();
    info.text.truncate(t);
    info
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "tr"
            | "td"
            | "th"
            | "li"
            | "ul"
            | "ol"
            | "table"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "hr"
            | "center"
    )
}

fn is_hidden_style(key: &str, value: &str) -> bool {
    if key == "hidden" {
        return true;
    }
    if key != "style" {
        return false;
    }
    let v: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    v.contains("display:none")
        || v.contains("visibility:hidden")
        || v.contains("font-size:0")
        || v.contains("font-size:1px")
        || v.contains("opacity:0;")
        || v.ends_with("opacity:0")
}

/// Parses attributes from just after the tag name to the closing `>`; returns them
/// (names lowercase, values entity-decoded) and the position after the tag.
fn parse_attributes(html: &str, mut i: usize) -> (Vec<(String, String)>, usize) {
    let b = html.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (attrs, b.len());
        }
        if b[i] == b'>' {
            return (attrs, i + 1);
        }
        let ks = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = html[ks..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = memchr(q, &b[vs..]).map_or(b.len(), |p| vs + p);
                value = decode_entities(&html[vs..ve]);
                i = (ve + 1).min(b.len());
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&html[vs..i]);
            }
        }
        if key.is_empty() {
            // Stray character such as `"`: skip it.
            i += 1;
        } else if attrs.len() < 32 {
            attrs.push((key, value));
        }
    }
}

/// Decodes the common named entities and numeric references; leaves others as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|e| decode_entity(&rest[1..e]).map(|c| (c, e)));
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let n = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        return char::from_u32(n);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "shy" => '\u{ad}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        _ => return None,
    })
}

/// Appends `text` with runs of whitespace collapsed to one space.
fn push_collapsed(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_text_and_hidden() {
        let h = r#"<html><body><p>Hello &amp; welcome</p>
            <a href="http://evil.example/login">https://www.nhs.uk/</a>
            <div style="display: none">buy cheap pills now</div>
            <img src=x><form action=x><input type=password name=p></form>
            <script>var x = "<a href=nope>";</script>Bye</body></html>"#;
        let i = scan(h, 1 << 20, 10);
        assert!(i.text.starts_with("Hello & welcome"), "{}", i.text);
        assert!(i.text.ends_with("Bye"));
        assert!(!i.text.contains("pills"));
        assert_eq!(i.hidden_chars, "buycheappillsnow".len());
        assert_eq!(
            i.links,
            vec![HtmlLink {
                href: "http://evil.example/login".into(),
                text: "https://www.nhs.uk/".into()
            }]
        );
        assert_eq!((i.images, i.forms, i.password_inputs), (1, 1, 1));
        assert!(i.script_bytes > 0);
    }

    #[test]
    fn broken_markup_never_fails() {
        for h in [
            "<",
            "<a",
            "<a href=\"",
            "<<<>>>",
            "&#xFFFFFFFF;",
            "&#55296;",
            "<!--",
            "<script>",
            "<a href='x'>unterminated",
            "<div style='display:none'><div>x</div>y",
        ] {
            let _ = scan(h, 1 << 20, 10);
        }
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a&lt;b&#65;&#x42;&bogus;&"),
            "a<bAB&bogus;&"
        );
    }
}
