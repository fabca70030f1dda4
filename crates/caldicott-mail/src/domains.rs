//! Domain names as phishers bend them: punycode, confusable characters (UTS #39 skeletons),
//! small edit distances, punctuation, and protected names embedded in other domains.

use std::net::{Ipv4Addr, Ipv6Addr};

use unicode_security::MixedScript;

/// How a domain relates to a protected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Imitation {
    /// Carries the protected name inside another domain (`nhs.uk.verify-login.com`).
    Embeds,
    /// Within a small edit distance, or the same letters punctuated or under another TLD
    /// (`nhs-net.co`, `nhsnet.com`, `nhs.com`).
    Lookalike,
    /// Looks identical once confusable characters are mapped (`nһs.net` with Cyrillic `һ`).
    Confusable,
}

impl Imitation {
    pub fn describe(self) -> &'static str {
        match self {
            Imitation::Embeds => "contains",
            Imitation::Lookalike => "looks like",
            Imitation::Confusable => "is written with look-alike characters as",
        }
    }
}

#[derive(Debug, Clone)]
struct Protected {
    domain: String,
    skeleton: String,
    squashed: String,
    /// The first label (`nhs` of `nhs.net`): the same name under another suffix imitates it.
    name: String,
    max_distance: usize,
}

/// Compares domains with a set of protected ones.
#[derive(Debug, Clone)]
pub struct DomainMatcher {
    protected: Vec<Protected>,
}

impl DomainMatcher {
    pub fn new<'a>(domains: impl IntoIterator<Item = &'a str>) -> Self {
        let mut protected: Vec<Protected> = Vec::new();
        for d in domains {
            let domain = normalise_host(d);
            if domain.is_empty() || protected.iter().any(|p| p.domain == domain) {
                continue;
            }
            let skeleton = skeleton_lower(&domain);
            let squashed = squash(&skeleton);
            let name = squash(skeleton.split('.').next().unwrap_or_default());
            let max_distance = if squashed.chars().count() <= 6 { 1 } else { 2 };
            protected.push(Protected {
                domain,
                skeleton,
                squashed,
                name,
                max_distance,
            });
        }
        Self { protected }
    }

    /// True when `host` is a protected domain or one of its subdomains.
    pub fn is_genuine(&self, host: &str) -> bool {
        let h = normalise_host(host);
        self.protected.iter().any(|p| is_within(&h, &p.domain))
    }

    /// The strongest imitation of a protected domain by `host`, with the domain imitated;
    /// `None` for genuine and unrelated hosts.
    pub fn imitation(&self, host: &str) -> Option<(Imitation, &str)> {
        let ascii = normalise_host(host);
        let unicode = to_unicode(&ascii);
        if ascii.is_empty()
            || self
                .protected
                .iter()
                .any(|p| is_within(&ascii, &p.domain) || is_within(&unicode, &p.domain))
        {
            return None;
        }
        let skel = skeleton_lower(&unicode);
        let reg = registrable(&skel);
        let base = strip_suffix_labels(&reg).unwrap_or("");
        let sq_reg = squash(&reg);
        let sq_base = squash(base);
        let tokens: Vec<&str> = skel
            .split(['.', '-', '_'])
            .filter(|t| !t.is_empty())
            .collect();
        let mut best: Option<(Imitation, &str)> = None;
        for p in &self.protected {
            let found = if is_within(&skel, &p.skeleton) {
                // Same skeleton, different characters.
                Some(Imitation::Confusable)
            } else if self.lookalike(p, &sq_base, &sq_reg) {
                Some(Imitation::Lookalike)
            } else if embeds(&tokens, &p.squashed) {
                Some(Imitation::Embeds)
            } else {
                None
            };
            if let Some(found) = found
                && best.is_none_or(|(b, _)| found > b)
            {
                best = Some((found, p.domain.as_str()));
            }
        }
        best
    }

    fn lookalike(&self, p: &Protected, sq_base: &str, sq_reg: &str) -> bool {
        !sq_base.is_empty()
            && (sq_base == p.squashed
                || sq_reg == p.squashed
                || (p.name.len() >= 3 && sq_base == p.name)
                || levenshtein(sq_base, &p.squashed, p.max_distance) <= p.max_distance
                || levenshtein(sq_reg, &p.squashed, p.max_distance) <= p.max_distance)
    }
}

/// True when some run of consecutive tokens spells `target`.
fn embeds(tokens: &[&str], target: &str) -> bool {
    (0..tokens.len()).any(|i| {
        let mut acc = String::new();
        for t in &tokens[i..] {
            acc.push_str(t);
            if acc == target {
                return true;
            }
            if acc.len() >= target.len() || !target.starts_with(acc.as_str()) {
                break;
            }
        }
        false
    })
}

/// `host` equals `domain` or is a subdomain of it.
fn is_within(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

/// Lowercase, without surrounding dots, brackets or spaces.
pub fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_matches(|c: char| c == '.' || c == '[' || c == ']' || c == '<' || c == '>')
        .to_lowercase()
}

/// Letters only: dots, hyphens and underscores removed.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '.' | '-' | '_'))
        .collect()
}

/// The UTS #39 skeleton, lowercased before and after so case never hides a match.
pub fn skeleton_lower(s: &str) -> String {
    let lower = s.to_lowercase();
    if lower
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-')
    {
        // Fast path: of plain lowercase letters only `m` has a prototype (`rn`), and doing it
        // here keeps the common case allocation-light.
        return lower.replace('m', "rn");
    }
    unicode_security::skeleton(&lower)
        .collect::<String>()
        .to_lowercase()
}

/// True when a label mixes scripts (Latin with Cyrillic, Greek, …): never seen in honest names.
pub fn is_mixed_script(host: &str) -> bool {
    host.split('.')
        .any(|l| !l.is_ascii() && !l.is_single_script())
}

/// The host with every `xn--` label decoded (labels that fail to decode are kept).
pub fn to_unicode(host: &str) -> String {
    if !host.contains("xn--") {
        return host.to_string();
    }
    host.split('.')
        .map(|l| {
            l.strip_prefix("xn--")
                .and_then(punycode_decode)
                .unwrap_or_else(|| l.to_string())
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Decodes a punycode label (RFC 3492) without its `xn--` prefix.
pub fn punycode_decode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    if input.len() > 63 || !input.is_ascii() {
        return None;
    }
    let (basic, extended) = match input.rfind('-') {
        Some(p) => (&input[..p], &input[p + 1..]),
        None => ("", input),
    };
    let mut output: Vec<char> = basic.chars().collect();
    let mut n: u32 = 128;
    let mut i: u32 = 0;
    let mut bias: u32 = 72;
    let mut digits = extended.bytes().peekable();
    while digits.peek().is_some() {
        let old_i = i;
        let mut w: u32 = 1;
        let mut k = BASE;
        loop {
            let d = match digits.next()? {
                c @ b'a'..=b'z' => u32::from(c - b'a'),
                c @ b'A'..=b'Z' => u32::from(c - b'A'),
                c @ b'0'..=b'9' => u32::from(c - b'0') + 26,
                _ => return None,
            };
            i = i.checked_add(d.checked_mul(w)?)?;
            let t = if k <= bias {
                TMIN
            } else if k >= bias + TMAX {
                TMAX
            } else {
                k - bias
            };
            if d < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = u32::try_from(output.len()).ok()? + 1;
        // adapt()
        let mut delta = if old_i == 0 {
            (i - old_i) / 700
        } else {
            (i - old_i) / 2
        };
        delta += delta / len;
        let mut kk = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            kk += BASE;
        }
        bias = kk + (((BASE - TMIN + 1) * delta) / (delta + 38));
        n = n.checked_add(i / len)?;
        i %= len;
        let c = char::from_u32(n)?;
        output.insert(i as usize, c);
        i += 1;
    }
    Some(output.into_iter().collect())
}

/// Labels that, under a two-letter country code, form a public suffix (`co.uk`, `gov.au`).
const SECOND_LEVEL: &[&str] = &[
    "ac", "co", "com", "edu", "go", "gob", "gouv", "gov", "govt", "ltd", "me", "mil", "mod", "ne",
    "net", "nhs", "nic", "or", "org", "plc", "police", "sch",
];

/// The labels before the public suffix, when the host has any.
fn strip_suffix_labels(reg: &str) -> Option<&str> {
    let labels: Vec<&str> = reg.split('.').collect();
    let suffix = suffix_len(&labels);
    if labels.len() > suffix {
        let cut: usize = labels[labels.len() - suffix..]
            .iter()
            .map(|l| l.len() + 1)
            .sum();
        Some(&reg[..reg.len() - cut])
    } else {
        None
    }
}

fn suffix_len(labels: &[&str]) -> usize {
    match labels {
        [.., second, tld] if tld.len() == 2 && tld.is_ascii() && SECOND_LEVEL.contains(second) => 2,
        _ => 1,
    }
}

/// An approximation of the registrable domain: one label above the public suffix, where the
/// suffix is the TLD or, under a two-letter country code, a common second level
/// (`nhs.uk`, `co.uk`, `gov.au`). Not the Public Suffix List, which this slice does without.
pub fn registrable(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    let keep = (suffix_len(&labels) + 1).min(labels.len());
    labels[labels.len() - keep..].join(".")
}

/// True for hosts that are IP addresses in any of the forms browsers accept: dotted quad,
/// one decimal or hex number, dotted parts in octal or hex, or a bracketed IPv6 address.
pub fn is_ip_host(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    if h.parse::<Ipv4Addr>().is_ok() || h.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = h.split('.').collect();
    !h.is_empty()
        && parts.len() <= 4
        && parts.iter().all(|p| {
            let p = p.to_ascii_lowercase();
            if let Some(hex) = p.strip_prefix("0x") {
                !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
            } else {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
            }
        })
}

/// The host of an absolute `http`, `https` or `ftp` URL, or of a `www.` reference;
/// percent-escapes decoded, lowercase.
pub fn url_host(url: &str) -> Option<String> {
    let u = url.trim();
    let lower_prefix = u.chars().take(4).collect::<String>().to_ascii_lowercase();
    let rest = if let Some(p) = u.find("://") {
        let scheme = u[..p].to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "ftp") {
            return None;
        }
        &u[p + 3..]
    } else if lower_prefix.starts_with("www.") {
        u
    } else {
        u.strip_prefix("//")?
    };
    // Authority ends at the first of / ? # \ (browsers treat \ as /).
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    // userinfo@host: the host is after the last @ (`https://nhs.net@evil.example/`).
    let hostport = authority.rsplit('@').next().unwrap_or_default();
    let host = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport, |e| &hostport[..=e])
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    let host = percent_decode(host);
    let host = normalise_host(&host);
    if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    Some(host)
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A domain shown in link text, when the text is nothing but a URL or a host name
/// (`https://www.nhs.uk/login`, `www.nhs.uk`, `nhs.net`).
pub fn domain_in_text(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches(['.', ',', ')', ']']);
    if t.is_empty() || t.len() > 200 || t.contains(char::is_whitespace) {
        return None;
    }
    if let Some(h) = url_host(t) {
        return looks_like_domain(&h).then_some(h);
    }
    let host = normalise_host(t.split(['/', '?', '#']).next().unwrap_or_default());
    if host.contains('@') {
        return None;
    }
    plausible_domain(&host).then_some(host)
}

/// Generic top-level domains common enough that `word.tld` in text is likely a domain.
const COMMON_TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "app", "online", "site",
    "xyz", "top", "club", "shop", "live", "email", "link", "click", "help", "support", "secure",
    "login", "services", "cloud", "wales", "scot", "london",
];

/// A domain with a two-letter country code or a common generic TLD (so `J.Smith` is not one).
pub fn plausible_domain(host: &str) -> bool {
    looks_like_domain(host)
        && host
            .rsplit('.')
            .next()
            .is_some_and(|t| t.len() == 2 || COMMON_TLDS.contains(&t))
}

/// Two or more labels of letters, digits and hyphens, ending in an alphabetic TLD.
pub fn looks_like_domain(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|t| t.chars().count() >= 2 && t.chars().all(char::is_alphabetic))
}

/// Levenshtein distance, giving up (returning `limit + 1`) once it must exceed `limit`.
pub fn levenshtein(a: &str, b: &str, limit: usize) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > limit {
            return limit + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()].min(limit + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nhs() -> DomainMatcher {
        DomainMatcher::new(["nhs.net", "nhs.uk", "gov.uk", "cqc.org.uk"])
    }

    #[test]
    fn punycode_vectors() {
        assert_eq!(punycode_decode("mnchen-3ya").as_deref(), Some("münchen"));
        assert_eq!(punycode_decode("ns-4wc").as_deref(), Some("nһs"));
        assert_eq!(punycode_decode("80ak6aa92e").as_deref(), Some("аррӏе"));
        assert_eq!(punycode_decode("r8jz45g").as_deref(), Some("例え"));
        assert_eq!(punycode_decode("hxargifdar").as_deref(), Some("ελληνικά"));
        assert_eq!(to_unicode("xn--ns-4wc.net"), "nһs.net");
        assert_eq!(punycode_decode("99999999999999"), None);
        assert_eq!(punycode_decode("a-!"), None);
    }

    #[test]
    fn genuine_and_unrelated() {
        let m = nhs();
        for h in [
            "nhs.net",
            "mail.nhs.net",
            "www.nhs.uk",
            "hmrc.gov.uk",
            "CQC.ORG.UK.",
        ] {
            assert!(m.is_genuine(h), "{h}");
            assert_eq!(m.imitation(h), None, "{h}");
        }
        for h in [
            "example.com",
            "lists.sourceforge.net",
            "gov.au",
            "www.gov.au",
            "nhsnetwork.org",
            "johnsnet.com",
            "bbc.co.uk",
            "sun.com",
            "ons.net",
        ] {
            assert_eq!(m.imitation(h), None, "{h}");
        }
    }

    #[test]
    fn imitations() {
        let m = nhs();
        let cases = [
            ("nhs-net.co", Imitation::Lookalike, "nhs.net"),
            ("nhsnet.com", Imitation::Lookalike, "nhs.net"),
            ("nhs.com", Imitation::Lookalike, "nhs.net"),
            ("secure.nhs-uk.org", Imitation::Lookalike, "nhs.uk"),
            ("gov-uk.com", Imitation::Lookalike, "gov.uk"),
            ("cqc-org.uk", Imitation::Lookalike, "cqc.org.uk"),
            ("nhs.uk.verify-login.com", Imitation::Embeds, "nhs.uk"),
            ("secure-nhs-net.com", Imitation::Embeds, "nhs.net"),
            ("nhs.net.evil.example", Imitation::Embeds, "nhs.net"),
            ("nһs.net", Imitation::Confusable, "nhs.net"),
            ("xn--ns-4wc.net", Imitation::Confusable, "nhs.net"),
            ("nhs.xn--nt-nlc", Imitation::Confusable, "nhs.net"),
            ("cqc.0rg.uk", Imitation::Confusable, "cqc.org.uk"),
            ("login.nһs.uk", Imitation::Confusable, "nhs.uk"),
        ];
        for (h, want, dom) in cases {
            assert_eq!(m.imitation(h), Some((want, dom)), "{h}");
        }
    }

    #[test]
    fn hosts_and_ips() {
        assert_eq!(
            url_host("https://user@NHS.net@evil.example:8080/x").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            url_host("http://%6e%68%73.net/").as_deref(),
            Some("nhs.net")
        );
        assert_eq!(url_host("www.nhs.uk/login").as_deref(), Some("www.nhs.uk"));
        assert_eq!(url_host("mailto:a@nhs.net"), None);
        assert_eq!(url_host("http://[::1]/").as_deref(), Some("::1"));
        for ip in [
            "192.168.0.1",
            "3232235521",
            "0xC0A80001",
            "0300.0250.0.1",
            "[::1]",
            "::1",
        ] {
            assert!(is_ip_host(ip), "{ip}");
        }
        for h in ["nhs.net", "1.example", "", "a.b.c.d.e"] {
            assert!(!is_ip_host(h), "{h}");
        }
        assert_eq!(
            domain_in_text(" https://www.nhs.uk/ ").as_deref(),
            Some("www.nhs.uk")
        );
        assert_eq!(domain_in_text("nhs.net").as_deref(), Some("nhs.net"));
        assert_eq!(domain_in_text("click here"), None);
        assert_eq!(domain_in_text("v1.2"), None);
        assert_eq!(registrable("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registrable("www.nhs.uk"), "www.nhs.uk");
        assert_eq!(registrable("x.y.example.com"), "example.com");
        assert!(is_mixed_script("nһs.net"));
        assert!(!is_mixed_script("münchen.de"));
    }

    #[test]
    fn skeleton_fast_path_agrees_with_uts39() {
        let ascii = "abcdefghijklmnopqrstuvwxyz.-";
        for c in ascii.chars() {
            let s = c.to_string();
            let full = unicode_security::skeleton(&s)
                .collect::<String>()
                .to_lowercase();
            assert_eq!(skeleton_lower(&s), full, "{c}");
        }
        assert_eq!(skeleton_lower("nhs.net"), "nhs.net");
        assert_eq!(skeleton_lower("NһS.NET"), "nhs.net");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("nhsnet", "nhsnet", 2), 0);
        assert_eq!(levenshtein("nhsnet", "nbsnet", 2), 1);
        assert_eq!(levenshtein("kitten", "sitting", 5), 3);
        assert_eq!(levenshtein("abcdef", "uvwxyz", 1), 2);
    }
}
