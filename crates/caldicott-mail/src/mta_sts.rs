//! SMTP MTA Strict Transport Security (RFC 8461): the `_mta-sts` TXT record, the policy file
//! and its parser, MX pattern matching, the HTTPS fetch and a per-domain cache.
//!
//! The parsing and matching are pure functions ([`parse_txt`], [`parse_policy`],
//! [`mx_matches`]); [`Fetcher`] does the I/O. The policy is fetched from
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` with WebPKI validation against the
//! configured roots (RFC 8461 §3.3), over HTTP/1.0 so the answer is never chunked; only a
//! `200` with `text/plain` is a policy: redirects are refused, as the RFC requires, and so is
//! anything larger than [`MAX_POLICY_BYTES`] or slower than [`FETCH_TIMEOUT`].
//!
//! **Cache.** Policies are kept in memory per domain until their `max_age` runs out
//! (capped at a year, RFC 8461 §3.2); a restart forgets them, which costs one fetch per
//! partner. Each delivery still reads the TXT record: a new `id` means a new policy is
//! fetched, a failed fetch keeps the cached policy while it is valid (§5.1), and so does a
//! vanished TXT record.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest policy file accepted (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// How long a whole policy fetch may take (connect, TLS, request, answer).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest `max_age` honoured: one year (RFC 8461 §3.2).
pub const MAX_AGE_CAP: u64 = 31_557_600;

/// A policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Lower-case patterns: `mail.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    /// Seconds, capped at [`MAX_AGE_CAP`].
    pub max_age: u64,
}

impl Policy {
    /// True when `host` matches one of the policy's `mx` patterns.
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(p, host))
    }
}

/// Why a TXT record or a policy was refused, or a fetch failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StsError {
    #[error("no _mta-sts TXT record with v=STSv1")]
    NoRecord,
    #[error("more than one _mta-sts TXT record with v=STSv1 (RFC 8461 §3.1: none is used)")]
    ManyRecords,
    #[error("the _mta-sts TXT record is malformed: {0}")]
    BadRecord(String),
    #[error("the policy file is malformed: line {line}: {why}")]
    BadPolicy { line: usize, why: String },
    #[error("the policy file is malformed: {0}")]
    Incomplete(String),
    #[error("fetching the policy: {0}")]
    Fetch(String),
}

/// The `id` of the single `v=STSv1` TXT record among `records` (each one record's strings
/// joined). Records not starting with `v=STSv1` are someone else's and ignored.
pub fn parse_txt(records: &[String]) -> Result<String, StsError> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| {
            r.trim_start()
                .strip_prefix("v=STSv1")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([';', ' ', '\t']))
        })
        .collect();
    let record = match ours.as_slice() {
        [] => return Err(StsError::NoRecord),
        [one] => one,
        _ => return Err(StsError::ManyRecords),
    };
    let mut id = None;
    for (i, field) in record.split(';').enumerate() {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| StsError::BadRecord(format!("field {:?} has no '='", field)))?;
        match (i, k) {
            (0, "v") => {}
            (_, "id") => {
                if id.is_some() {
                    return Err(StsError::BadRecord("id appears twice".into()));
                }
                if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(StsError::BadRecord(format!(
                        "id {v:?} is not 1 to 32 letters and digits"
                    )));
                }
                id = Some(v.to_owned());
            }
            // Other extension fields are allowed and ignored (§3.1).
            _ => {}
        }
    }
    id.ok_or_else(|| StsError::BadRecord("no id field".into()))
}

/// Parses a policy file strictly: `key: value` lines (LF or CRLF); `version: STSv1`,
/// `mode` and `max_age` exactly once each, `mx` at least once unless the mode is `none`;
/// unknown keys are ignored as §3.2 requires.
pub fn parse_policy(text: &str) -> Result<Policy, StsError> {
    let mut version = false;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        let bad = |why: String| StsError::BadPolicy { line: line_no, why };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad("not a \"key: value\" line".into()))?;
        let (k, v) = (k.trim(), v.trim_matches([' ', '\t']));
        match k {
            "version" => {
                if version {
                    return Err(bad("version appears twice".into()));
                }
                if v != "STSv1" {
                    return Err(bad(format!("version {v:?} is not STSv1")));
                }
                version = true;
            }
            "mode" => {
                if mode.is_some() {
                    return Err(bad("mode appears twice".into()));
                }
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(bad(format!("mode {v:?} is not enforce, testing or none"))),
                });
            }
            "max_age" => {
                if max_age.is_some() {
                    return Err(bad("max_age appears twice".into()));
                }
                if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("max_age {v:?} is not a number of seconds")));
                }
                let secs: u64 = v.parse().map_err(|_| bad("max_age out of range".into()))?;
                max_age = Some(secs.min(MAX_AGE_CAP));
            }
            "mx" => {
                let p = v.trim_end_matches('.').to_ascii_lowercase();
                let host = p.strip_prefix("*.").unwrap_or(&p);
                if !crate::outbound::is_domain(host) || host.contains('*') {
                    return Err(bad(format!("mx {v:?} is not a host name or *.domain")));
                }
                mx.push(p);
            }
            _ => {}
        }
    }
    if !version {
        return Err(StsError::Incomplete("no version: STSv1 line".into()));
    }
    let mode = mode.ok_or_else(|| StsError::Incomplete("no mode line".into()))?;
    let max_age = max_age.ok_or_else(|| StsError::Incomplete("no max_age line".into()))?;
    if mx.is_empty() && mode != Mode::None {
        return Err(StsError::Incomplete("no mx line".into()));
    }
    Ok(Policy { mode, mx, max_age })
}

/// RFC 8461 §4.1: `mail.example.com` matches itself only; `*.example.com` matches exactly
/// one more label to the left (`mx1.example.com`, not `example.com`, not `a.b.example.com`).
/// Case and a trailing dot do not matter.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(suffix) => h
            .strip_suffix(suffix)
            .and_then(|l| l.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => p == h,
    }
}

/// The status line and headers of an HTTP answer, then the body: a policy, or why not.
pub fn parse_http(raw: &[u8]) -> Result<&[u8], StsError> {
    let fetch = |s: String| StsError::Fetch(s);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fetch("the answer is not HTTP (no end of headers)".into()))?;
    let head = std::str::from_utf8(&raw[..end])
        .map_err(|_| fetch("the HTTP headers are not text".into()))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code: u16 = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| status.starts_with("HTTP/1."))
        .ok_or_else(|| fetch(format!("not an HTTP status line: {status:?}")))?;
    if (300..400).contains(&code) {
        return Err(fetch(format!(
            "HTTP {code}: redirects are refused (RFC 8461 §3.3)"
        )));
    }
    if code != 200 {
        return Err(fetch(format!("HTTP {code}")));
    }
    let mut content_type = None;
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(v.to_ascii_lowercase()),
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" if !v.eq_ignore_ascii_case("identity") => {
                return Err(fetch(format!("unexpected transfer-encoding {v:?}")));
            }
            _ => {}
        }
    }
    let ct = content_type.unwrap_or_default();
    if ct.split(';').next().map(str::trim) != Some("text/plain") {
        return Err(fetch(format!(
            "the policy's media type is {ct:?}, not text/plain"
        )));
    }
    if let Some(n) = length
        && n != body.len()
    {
        return Err(fetch(format!(
            "the body has {} bytes, Content-Length said {n}",
            body.len()
        )));
    }
    Ok(body)
}

#[derive(Debug, Clone)]
struct Cached {
    id: String,
    policy: Policy,
    expires: Instant,
}

/// Fetches and caches policies. `roots` validate the policy host's certificate.
pub struct Fetcher {
    client: Arc<rustls::ClientConfig>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

/// What the policy lookup found for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A policy (fresh, or cached and still valid).
    Found(Policy),
    /// None could be had; the reason.
    Missing(String),
}

impl Fetcher {
    pub fn new(client: Arc<rustls::ClientConfig>) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, domain: &str) -> Option<Cached> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(domain)
            .filter(|c| c.expires > Instant::now())
            .cloned()
    }

    /// The policy for `domain`, given its TXT answer (`txt`: each record's strings joined,
    /// or the lookup error) and a way to reach `mta-sts.<domain>` (`addrs`).
    pub async fn policy(
        &self,
        domain: &str,
        txt: Result<Vec<String>, String>,
        addrs: impl AsyncFnOnce() -> Result<Vec<SocketAddr>, String>,
    ) -> Lookup {
        let cached = self.cached(domain);
        let id = match txt.map_err(StsError::Fetch).and_then(|r| parse_txt(&r)) {
            Ok(id) => id,
            Err(e) => {
                return match cached {
                    Some(c) => Lookup::Found(c.policy),
                    None => Lookup::Missing(format!("_mta-sts.{domain}: {e}")),
                };
            }
        };
        if let Some(c) = &cached
            && c.id == id
        {
            return Lookup::Found(c.policy.clone());
        }
        let fetched = match addrs().await {
            Ok(a) => self.fetch(domain, &a).await,
            Err(e) => Err(StsError::Fetch(e)),
        };
        match fetched {
            Ok(policy) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(
                        domain.to_owned(),
                        Cached {
                            id,
                            policy: policy.clone(),
                            expires: Instant::now() + Duration::from_secs(policy.max_age),
                        },
                    );
                }
                Lookup::Found(policy)
            }
            Err(e) => match cached {
                Some(c) => {
                    tracing::warn!(domain, error = %e, "MTA-STS policy refresh failed; using the cached policy");
                    Lookup::Found(c.policy)
                }
                None => Lookup::Missing(format!(
                    "https://mta-sts.{domain}/.well-known/mta-sts.txt: {e}"
                )),
            },
        }
    }

    /// Fetches and parses the policy of `domain` from the first address that answers.
    pub async fn fetch(&self, domain: &str, addrs: &[SocketAddr]) -> Result<Policy, StsError> {
        let host = format!("mta-sts.{domain}");
        let mut last = StsError::Fetch(format!("{host} has no address"));
        for addr in addrs {
            match tokio::time::timeout(FETCH_TIMEOUT, self.get(&host, *addr)).await {
                Ok(Ok(raw)) => return parse_http(&raw).and_then(text).and_then(parse_policy),
                Ok(Err(e)) => last = e,
                Err(_) => last = StsError::Fetch(format!("{host} ({addr}) timed out")),
            }
        }
        Err(last)
    }

    async fn get(&self, host: &str, addr: SocketAddr) -> Result<Vec<u8>, StsError> {
        let fetch = |s: String| StsError::Fetch(s);
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| fetch(format!("{host} is not a DNS name")))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| fetch(format!("connecting to {host} ({addr}): {e}")))?;
        let mut tls = tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| fetch(format!("TLS with {host}: {e}")))?;
        // HTTP/1.0: no chunked encoding, the server closes after the body.
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\n\
             User-Agent: caldicott-mail\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| fetch(format!("writing to {host}: {e}")))?;
        // Headers get 8 KiB on top of the body's limit.
        let limit = MAX_POLICY_BYTES + 8 * 1024;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match tls.read(&mut buf).await {
                Ok(n) => n,
                // Many servers close without close_notify; the length check below catches a
                // cut body when Content-Length was sent.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(fetch(format!("reading from {host}: {e}"))),
            };
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if raw.len() > limit {
                return Err(fetch(format!(
                    "the policy is larger than {MAX_POLICY_BYTES} bytes"
                )));
            }
        }
        Ok(raw)
    }
}

fn text(body: &[u8]) -> Result<&str, StsError> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(StsError::Fetch(format!(
            "the policy is larger than {MAX_POLICY_BYTES} bytes"
        )));
    }
    std::str::from_utf8(body).map_err(|_| StsError::Incomplete("the policy is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_records() {
        // RFC 8461 §3.1's example.
        let r = vec!["v=STSv1; id=20160831085700Z;".to_string()];
        assert_eq!(parse_txt(&r).unwrap(), "20160831085700Z");
        assert_eq!(
            parse_txt(&["v=STSv1;id=abc".into(), "v=spf1 -all".into()]).unwrap(),
            "abc"
        );
        assert_eq!(parse_txt(&["v=spf1 -all".into()]), Err(StsError::NoRecord));
        assert_eq!(
            parse_txt(&["v=STSv1; id=a".into(), "v=STSv1; id=b".into()]),
            Err(StsError::ManyRecords)
        );
        assert!(matches!(
            parse_txt(&["v=STSv1;".into()]),
            Err(StsError::BadRecord(_))
        ));
        assert!(matches!(
            parse_txt(&["v=STSv1; id=has-dash".into()]),
            Err(StsError::BadRecord(_))
        ));
        assert!(matches!(
            parse_txt(&[format!("v=STSv1; id={}", "a".repeat(33))]),
            Err(StsError::BadRecord(_))
        ));
        // v=STSv10 is not v=STSv1.
        assert_eq!(
            parse_txt(&["v=STSv10; id=a".into()]),
            Err(StsError::NoRecord)
        );
    }

    #[test]
    fn policy_files() {
        // RFC 8461 §3.2's example.
        let p = parse_policy(
            "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n\
             mx: backupmx.example.com\nmax_age: 604800\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(
            p.mx,
            ["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        // CRLF, extension keys, a year's cap.
        let p = parse_policy(
            "version: STSv1\r\nmode: testing\r\nmx: MX.Example.org.\r\nmax_age: 99999999\r\nx-ext: 1\r\n",
        )
        .unwrap();
        assert_eq!((p.mode, p.max_age), (Mode::Testing, MAX_AGE_CAP));
        assert_eq!(p.mx, ["mx.example.org"]);
        assert_eq!(
            parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n")
                .unwrap()
                .mode,
            Mode::None
        );
        for (bad, what) in [
            ("mode: enforce\nmx: a.b\nmax_age: 1\n", "version"),
            (
                "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
                "STSv1",
            ),
            (
                "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
                "mode",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "mx"),
            ("version: STSv1\nmode: enforce\nmx: a.b\n", "max_age"),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
                "max_age",
            ),
            (
                "version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 1\n",
                "twice",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n",
                "mx",
            ),
            (
                "version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n",
                "key: value",
            ),
            ("<html>Not found</html>", "key: value"),
        ] {
            let e = parse_policy(bad).unwrap_err().to_string();
            assert!(e.contains(what), "{bad:?}: {e}");
        }
    }

    #[test]
    fn mx_patterns() {
        // RFC 8461 §4.1: "*.example.com" matches "mx1.example.com" but not
        // "www.mx1.example.com" nor "example.com".
        assert!(mx_matches("*.example.com", "mx1.example.com"));
        assert!(!mx_matches("*.example.com", "www.mx1.example.com"));
        assert!(!mx_matches("*.example.com", "example.com"));
        assert!(mx_matches("mail.example.com", "MAIL.example.com."));
        assert!(!mx_matches("mail.example.com", "mail.example.com.evil"));
        assert!(!mx_matches("*.example.com", "mx1.badexample.com"));
        let p = Policy {
            mode: Mode::Enforce,
            mx: vec!["*.partner.test".into()],
            max_age: 1,
        };
        assert!(p.allows("mx.partner.test") && !p.allows("mx.other.test"));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,400}", raw in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_policy(&text);
            let _ = parse_txt(std::slice::from_ref(&text));
            let _ = parse_http(&raw);
        }

        #[test]
        fn wildcards_cover_exactly_one_label(
            label in "[a-z0-9]{1,12}",
            extra in "[a-z0-9]{1,12}",
            domain in "[a-z]{1,10}\\.[a-z]{2,6}",
        ) {
            let pattern = format!("*.{domain}");
            let one = format!("{label}.{domain}");
            let two = format!("{extra}.{label}.{domain}");
            let upper = one.to_uppercase();
            proptest::prop_assert!(mx_matches(&pattern, &one));
            proptest::prop_assert!(!mx_matches(&pattern, &two));
            proptest::prop_assert!(!mx_matches(&pattern, &domain));
            proptest::prop_assert!(mx_matches(&one, &upper));
        }
    }

    #[test]
    fn http_answers() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(parse_http(ok).unwrap(), b"body");
        let redirect = b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n";
        assert!(
            parse_http(redirect)
                .unwrap_err()
                .to_string()
                .contains("redirects are refused")
        );
        let missing = b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\n";
        assert!(parse_http(missing).unwrap_err().to_string().contains("404"));
        let html = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nx";
        assert!(
            parse_http(html)
                .unwrap_err()
                .to_string()
                .contains("text/plain")
        );
        let cut = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc";
        assert!(
            parse_http(cut)
                .unwrap_err()
                .to_string()
                .contains("Content-Length")
        );
        assert!(parse_http(b"garbage").is_err());
    }
}
