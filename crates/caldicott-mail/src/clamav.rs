//! Optional virus scanning by ClamAV's daemon, `clamd`, when `[clamav]` is configured.
//!
//! **What.** A small client for clamd's `INSTREAM` protocol (the message is sent as
//! 4-byte big-endian length-prefixed chunks ending with a zero-length chunk; clamd answers
//! `stream: OK`, `stream: <signature> FOUND` or `<text> ERROR`), `PING` and `VERSION` for a
//! health check at start, and [`ClamavCheck`], the check that sends every message, whole and
//! raw, to clamd (clamd itself decodes MIME and opens archives, nested ones included) and
//! turns the answer into symbols: `CLAMAV_VIRUS` for a signature, `CLAMAV_HEURISTIC` for
//! clamd's heuristic and PUA detections, `CLAMAV_TOO_LARGE` for a message over the size clamd
//! accepts, and one of `CLAMAV_TEMPFAIL`, `CLAMAV_UNAVAILABLE` or `CLAMAV_UNSCANNED` when clamd
//! cannot be asked, by `on_error`.
//!
//! **Why here, and why blocking.** The other checks are pure; this one does I/O. It is still a
//! [`Check`] so that `caldicott mail scan` and the gateway give the same verdict from the same
//! configuration. Every socket operation is bounded by `timeout` (one deadline for the whole
//! exchange) and the reply by [`MAX_REPLY_BYTES`], so a stuck or hostile clamd costs at most
//! that. The gateway screens on tokio's blocking pool ([`crate::smtp::ScannerScreen`]), so a
//! slow clamd never holds up the SMTP sessions themselves.
//!
//! **Errors are not verdicts.** A clamd that is down, times out or answers an error did not say
//! the message is clean. The default, `on_error = "tempfail"`, makes the gateway answer
//! `451 4.7.1` so the sending server retries later (nothing is passed unscanned and nothing is
//! held needlessly); `"quarantine"` holds the message for a person; `"accept"` passes it
//! unscanned (the symbol still says so).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::check::{Check, Symbols};
use crate::config::ConfigError;
use crate::mail::Mail;
use crate::symbols::{
    CLAMAV_HEURISTIC, CLAMAV_TEMPFAIL, CLAMAV_TOO_LARGE, CLAMAV_UNAVAILABLE, CLAMAV_UNSCANNED,
    CLAMAV_VIRUS,
};

/// The longest reply read from clamd. Real replies are a line (`stream: <name> FOUND`, names
/// are under 200 bytes); anything longer is not clamd speaking.
pub const MAX_REPLY_BYTES: usize = 4096;

/// Chunk size for `INSTREAM` (clamd reads chunks of any size up to its `StreamMaxLength`).
const CHUNK: usize = 64 * 1024;

/// The longest signature name kept in a reason.
const MAX_NAME_CHARS: usize = 200;

/// What to do with a message when clamd cannot scan it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The gateway answers `451 4.7.1` (the sender retries); an offline scan reports
    /// `CLAMAV_TEMPFAIL`, which holds the message (floor quarantine).
    #[default]
    Tempfail,
    /// Held in quarantine (`CLAMAV_UNAVAILABLE`).
    Quarantine,
    /// Passed on unscanned (`CLAMAV_UNSCANNED`, no floor).
    Accept,
}

impl OnError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Tempfail => "tempfail",
            OnError::Quarantine => "quarantine",
            OnError::Accept => "accept",
        }
    }
}

/// `[clamav]` in `mail.toml`: where clamd listens and how far to trust it.
///
/// ```toml
/// [clamav]
/// socket = "/run/clamav/clamd.ctl"   # clamd's LocalSocket; or address = "127.0.0.1:3310"
/// timeout = "30s"                    # the whole exchange: connect, send, clamd's answer
/// max_bytes = 26214400               # larger messages are not sent (CLAMAV_TOO_LARGE)
/// on_error = "tempfail"              # or "quarantine" or "accept"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClamavConfig {
    /// clamd's Unix socket (its `LocalSocket`). Give this or `address`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// clamd's TCP address, `host:port` (its `TCPAddr`/`TCPSocket`). Give this or `socket`.
    #[serde(default)]
    pub address: Option<String>,
    /// Longest time for one scan, connection included (default `30s`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Largest message sent to clamd, in bytes (default 25 MiB, Debian's `StreamMaxLength`).
    /// Keep it at most clamd's `StreamMaxLength`: clamd refuses longer streams.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// What to do when clamd is down, times out or answers an error (default `tempfail`).
    #[serde(default)]
    pub on_error: OnError,
}

fn default_timeout() -> String {
    "30s".into()
}
fn default_max_bytes() -> usize {
    25 << 20
}

/// clamd's own limit on a stream is a 32-bit length (`StreamMaxLength` at most 4 GB).
const MAX_MAX_BYTES: usize = u32::MAX as usize;

fn invalid(key: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("clamav.{key}: {why}"))
}

impl ClamavConfig {
    /// Checks every field, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.endpoint()?;
        self.timeout()?;
        if self.max_bytes == 0 || self.max_bytes > MAX_MAX_BYTES {
            return Err(invalid(
                "max_bytes",
                format!("must be between 1 and {MAX_MAX_BYTES} (clamd's largest stream)"),
            ));
        }
        Ok(())
    }

    /// Where clamd listens.
    pub fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        match (&self.socket, &self.address) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid(
                "clamav: give socket or address, not both".into(),
            )),
            (None, None) => Err(ConfigError::Invalid(
                "clamav: give socket (clamd's LocalSocket) or address (host:port of its TCPSocket)"
                    .into(),
            )),
            (Some(p), None) if p.as_os_str().is_empty() => {
                Err(invalid("socket", "must not be empty"))
            }
            (Some(p), None) => Ok(Endpoint::Unix(p.clone())),
            (None, Some(a)) => {
                let ok = a.rsplit_once(':').is_some_and(|(h, port)| {
                    !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if ok {
                    Ok(Endpoint::Tcp(a.clone()))
                } else {
                    Err(invalid("address", format!("{a:?} is not host:port")))
                }
            }
        }
    }

    /// The scan timeout, parsed.
    pub fn timeout(&self) -> Result<Duration, ConfigError> {
        match crate::config::parse_duration(&self.timeout) {
            Some(d) if !d.is_zero() => Ok(d),
            Some(_) => Err(invalid("timeout", "must be greater than zero")),
            None => Err(invalid(
                "timeout",
                format!(
                    "{:?} is not a duration such as 500ms, 30s, 5m, 1h or 2d",
                    self.timeout
                ),
            )),
        }
    }

    /// A client for this configuration.
    pub fn client(&self) -> Result<Client, ConfigError> {
        self.validate()?;
        Ok(Client {
            endpoint: self.endpoint()?,
            timeout: self.timeout()?,
            max_bytes: self.max_bytes,
        })
    }
}

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => f.write_str(a),
        }
    }
}

/// Why clamd gave no answer about a message.
#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect to clamd at {endpoint}: {source}")]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: std::io::Error,
    },
    #[error("clamd at {endpoint} did not answer within {timeout:?}")]
    Timeout {
        endpoint: Endpoint,
        timeout: Duration,
    },
    #[error("talking to clamd at {endpoint}: {source}")]
    Io {
        endpoint: Endpoint,
        #[source]
        source: std::io::Error,
    },
    #[error("clamd at {endpoint} answered an error: {reply}")]
    Clamd { endpoint: Endpoint, reply: String },
    #[error("clamd at {endpoint} answered something unexpected: {reply}")]
    Protocol { endpoint: Endpoint, reply: String },
}

/// What clamd said about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `stream: OK`.
    Clean,
    /// `stream: <name> FOUND`: the signature's name (printable ASCII, at most 200 characters).
    Found(String),
    /// `INSTREAM size limit exceeded. ERROR`: more than clamd's `StreamMaxLength`.
    SizeLimit,
    /// `<text> ERROR`: clamd could not scan (the text, sanitised).
    Error(String),
    /// Anything else (the text, sanitised).
    Unexpected(String),
}

/// Printable ASCII only, at most `max` characters: what clamd says goes into reasons and logs.
fn sanitise(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect()
}

/// Parses one reply to `INSTREAM` (the bytes up to the first NUL or newline). Pure, so it is
/// tested on its own, hostile replies included.
pub fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("stream:") {
        let rest = rest.trim();
        if rest == "OK" {
            return Reply::Clean;
        }
        if let Some(name) = rest.strip_suffix(" FOUND") {
            let name = name.trim();
            if !name.is_empty() {
                return Reply::Found(sanitise(name, MAX_NAME_CHARS));
            }
        }
    }
    if let Some(what) = text.strip_suffix("ERROR") {
        if what.contains("size limit exceeded") {
            return Reply::SizeLimit;
        }
        let what = what.trim().trim_start_matches("stream:").trim();
        return Reply::Error(sanitise(what, 200));
    }
    Reply::Unexpected(sanitise(text, 200))
}

/// The outcome of scanning one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    Clean,
    /// A signature matched; its name.
    Found(String),
    /// Not scanned: `bytes` is more than `limit` (ours, `clamav.max_bytes`, or clamd's
    /// `StreamMaxLength` when `by_clamd`).
    TooLarge {
        bytes: usize,
        limit: Option<usize>,
        by_clamd: bool,
    },
}

/// A connection to clamd, Unix or TCP.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Unix(s) => s,
            Conn::Tcp(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A clamd client. Cheap to clone; each request opens its own connection (clamd closes it
/// after one command), so one client serves any number of threads.
#[derive(Debug, Clone)]
pub struct Client {
    pub endpoint: Endpoint,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// One exchange with clamd, bounded by one deadline.
struct Exchange<'c> {
    client: &'c Client,
    deadline: Instant,
    conn: Conn,
}

impl Client {
    fn timed_out(&self) -> ClamdError {
        ClamdError::Timeout {
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
        }
    }

    fn io(&self, e: std::io::Error) -> ClamdError {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            self.timed_out()
        } else {
            ClamdError::Io {
                endpoint: self.endpoint.clone(),
                source: e,
            }
        }
    }

    fn connect(&self) -> Result<Exchange<'_>, ClamdError> {
        let deadline = Instant::now() + self.timeout;
        let connect_err = |source| ClamdError::Connect {
            endpoint: self.endpoint.clone(),
            source,
        };
        let conn = match &self.endpoint {
            // A local socket connects at once or fails at once.
            Endpoint::Unix(p) => Conn::Unix(UnixStream::connect(p).map_err(connect_err)?),
            Endpoint::Tcp(a) => {
                let addrs: Vec<_> = a.to_socket_addrs().map_err(connect_err)?.collect();
                let mut last = None;
                let mut conn = None;
                for addr in addrs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(self.timed_out());
                    }
                    match TcpStream::connect_timeout(&addr, left) {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            conn = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                match conn {
                    Some(s) => Conn::Tcp(s),
                    None => {
                        return Err(connect_err(last.unwrap_or_else(|| {
                            std::io::Error::new(ErrorKind::NotFound, "the name has no address")
                        })));
                    }
                }
            }
        };
        Ok(Exchange {
            client: self,
            deadline,
            conn,
        })
    }

    /// `zPING`: true when clamd answers `PONG`.
    pub fn ping(&self) -> Result<(), ClamdError> {
        let mut x = self.connect()?;
        x.write(b"zPING\0")?;
        let reply = x.read_reply()?;
        let text = String::from_utf8_lossy(&reply);
        if text.trim_end_matches(['\0', '\n']).trim() == "PONG" {
            Ok(())
        } else {
            Err(ClamdError::Protocol {
                endpoint: self.endpoint.clone(),
                reply: sanitise(&text, 200),
            })
        }
    }

    /// `zVERSION`: clamd's version line (`ClamAV 1.4.6/27000/<date>`; without an official
    /// database only `ClamAV 1.4.6`).
    pub fn version(&self) -> Result<String, ClamdError> {
        let mut x = self.connect()?;
        x.write(b"zVERSION\0")?;
        let reply = x.read_reply()?;
        let text = String::from_utf8_lossy(&reply);
        let text = sanitise(text.trim_end_matches(['\0', '\n']).trim(), 200);
        if text.starts_with("ClamAV ") {
            Ok(text)
        } else {
            Err(ClamdError::Protocol {
                endpoint: self.endpoint.clone(),
                reply: text,
            })
        }
    }

    /// Scans one whole message with `zINSTREAM`.
    pub fn scan(&self, data: &[u8]) -> Result<Scan, ClamdError> {
        if data.len() > self.max_bytes {
            return Ok(Scan::TooLarge {
                bytes: data.len(),
                limit: Some(self.max_bytes),
                by_clamd: false,
            });
        }
        let mut x = self.connect()?;
        let sent = x.send_stream(data);
        // clamd closes the connection as soon as a stream passes its StreamMaxLength, after
        // saying so: a failed write still has a reply worth reading.
        let reply = match (sent, x.read_reply()) {
            (_, Ok(r)) if !r.is_empty() => r,
            (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
            (Ok(()), Ok(_)) => {
                return Err(ClamdError::Protocol {
                    endpoint: self.endpoint.clone(),
                    reply: "the connection closed without a reply".into(),
                });
            }
        };
        match parse_reply(&reply) {
            Reply::Clean => Ok(Scan::Clean),
            Reply::Found(name) => Ok(Scan::Found(name)),
            Reply::SizeLimit => Ok(Scan::TooLarge {
                bytes: data.len(),
                limit: None,
                by_clamd: true,
            }),
            Reply::Error(reply) => Err(ClamdError::Clamd {
                endpoint: self.endpoint.clone(),
                reply,
            }),
            Reply::Unexpected(reply) => Err(ClamdError::Protocol {
                endpoint: self.endpoint.clone(),
                reply,
            }),
        }
    }
}

impl Exchange<'_> {
    /// Sets the socket timeouts to what is left of the deadline.
    fn arm(&mut self) -> Result<(), ClamdError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.client.timed_out());
        }
        self.conn.set_timeouts(left).map_err(|e| self.client.io(e))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ClamdError> {
        self.arm()?;
        self.conn
            .stream()
            .write_all(bytes)
            .map_err(|e| self.client.io(e))
    }

    fn send_stream(&mut self, data: &[u8]) -> Result<(), ClamdError> {
        self.write(b"zINSTREAM\0")?;
        let mut frame = Vec::with_capacity(CHUNK + 4);
        for chunk in data.chunks(CHUNK) {
            frame.clear();
            // A chunk is at most CHUNK bytes, far below u32::MAX.
            frame.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            frame.extend_from_slice(chunk);
            self.write(&frame)?;
        }
        self.write(&0u32.to_be_bytes())?;
        self.conn.stream().flush().map_err(|e| self.client.io(e))
    }

    /// Reads up to the first NUL (the end of a `z` reply) or the end of the connection, at most
    /// [`MAX_REPLY_BYTES`].
    fn read_reply(&mut self) -> Result<Vec<u8>, ClamdError> {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            self.arm()?;
            let n = match self.conn.stream().read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A reset after a complete reply changes nothing.
                Err(_) if out.contains(&0) => return Ok(out),
                Err(e) => return Err(self.client.io(e)),
            };
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.contains(&0) {
                return Ok(out);
            }
            if out.len() > MAX_REPLY_BYTES {
                return Err(ClamdError::Protocol {
                    endpoint: self.client.endpoint.clone(),
                    reply: format!("a reply longer than {MAX_REPLY_BYTES} bytes"),
                });
            }
        }
    }
}

/// Asks clamd for `PING` and `VERSION`: its version line when it answers (for the gateway's
/// start-up log).
pub fn health_check(config: &ClamavConfig) -> Result<String, HealthError> {
    let client = config.client()?;
    client.ping()?;
    Ok(client.version()?)
}

/// Why the start-up health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Clamd(#[from] ClamdError),
}

/// True for clamd detections that are heuristics or potentially-unwanted-application
/// signatures rather than signatures of known malware: these are held for a person
/// (`CLAMAV_HEURISTIC`) instead of refused, as they misfire more often (phishing heuristics on
/// real bank mail, encrypted archives a partner sends on purpose).
pub fn is_heuristic(name: &str) -> bool {
    name.starts_with("Heuristics.") || name.starts_with("PUA.")
}

/// The check: every message to clamd, whole.
#[derive(Debug, Clone)]
pub struct ClamavCheck {
    client: Client,
    on_error: OnError,
}

impl ClamavCheck {
    pub fn new(config: &ClamavConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            client: config.client()?,
            on_error: config.on_error,
        })
    }

    /// The symbols for a scan's outcome (pure: the I/O is in [`Client::scan`]).
    pub fn judge(&self, outcome: Result<Scan, ClamdError>, out: &mut Symbols<'_>) {
        match outcome {
            Ok(Scan::Clean) => {}
            Ok(Scan::Found(name)) if is_heuristic(&name) => {
                out.add(CLAMAV_HEURISTIC, format!("clamd: {name}"));
            }
            Ok(Scan::Found(name)) => out.add(CLAMAV_VIRUS, format!("clamd: {name}")),
            Ok(Scan::TooLarge {
                bytes,
                limit: Some(limit),
                ..
            }) => out.add(
                CLAMAV_TOO_LARGE,
                format!("{bytes} bytes, more than clamav.max_bytes ({limit}): not scanned"),
            ),
            Ok(Scan::TooLarge { bytes, .. }) => out.add(
                CLAMAV_TOO_LARGE,
                format!(
                    "{bytes} bytes, more than clamd's StreamMaxLength: not scanned \
                     (set clamav.max_bytes to at most clamd's StreamMaxLength)"
                ),
            ),
            Err(e) => {
                let name = match self.on_error {
                    OnError::Tempfail => CLAMAV_TEMPFAIL,
                    OnError::Quarantine => CLAMAV_UNAVAILABLE,
                    OnError::Accept => CLAMAV_UNSCANNED,
                };
                tracing::warn!(error = %e, on_error = self.on_error.as_str(), "virus scan failed");
                out.add(name, format!("{e} (on_error = {})", self.on_error.as_str()));
            }
        }
    }
}

impl Check for ClamavCheck {
    fn name(&self) -> &'static str {
        "clamav"
    }

    fn check(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let outcome = self.client.scan(mail.raw);
        self.judge(outcome, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(b"stream: OK\0"), Reply::Clean);
        assert_eq!(
            parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND\0"),
            Reply::Found("Win.Test.EICAR_HDB-1".into())
        );
        assert_eq!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR\0"),
            Reply::SizeLimit
        );
        assert_eq!(
            parse_reply(b"stream: Can't allocate memory ERROR\0"),
            Reply::Error("Can't allocate memory".into())
        );
        assert_eq!(
            parse_reply(b"UNKNOWN COMMAND\n"),
            Reply::Unexpected("UNKNOWN COMMAND".into())
        );
        assert_eq!(parse_reply(b""), Reply::Unexpected(String::new()));
        // " FOUND" alone names nothing.
        assert_eq!(
            parse_reply(b"stream:  FOUND\0"),
            Reply::Unexpected("stream:  FOUND".into())
        );
        // Control characters and over-long names are not passed on to logs.
        let long = format!("stream: {}\x1b[2J FOUND\0", "A".repeat(500));
        match parse_reply(long.as_bytes()) {
            Reply::Found(n) => {
                assert_eq!(n.len(), MAX_NAME_CHARS);
                assert!(!n.contains('\x1b'));
            }
            other => panic!("{other:?}"),
        }
        // Only the first record counts.
        assert_eq!(parse_reply(b"stream: OK\0stream: X FOUND\0"), Reply::Clean);
    }

    proptest::proptest! {
        /// Whatever a peer sends, parsing ends in a reply whose text is short and printable.
        #[test]
        fn any_reply_parses_to_printable_text(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let text = match parse_reply(&bytes) {
                Reply::Clean | Reply::SizeLimit => String::new(),
                Reply::Found(t) | Reply::Error(t) | Reply::Unexpected(t) => t,
            };
            proptest::prop_assert!(text.len() <= MAX_NAME_CHARS);
            proptest::prop_assert!(text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
        }
    }

    #[test]
    fn heuristics_are_told_apart() {
        assert!(is_heuristic("Heuristics.Encrypted.Zip"));
        assert!(is_heuristic("PUA.Win.Tool.Netcat"));
        assert!(!is_heuristic("Win.Trojan.Agent-123"));
        assert!(!is_heuristic("Caldicott.Test.EICAR.UNOFFICIAL"));
    }

    fn config(text: &str) -> Result<ClamavConfig, String> {
        let c: ClamavConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn configuration_is_checked_key_by_key() {
        let c = config("socket = \"/run/clamav/clamd.ctl\"").unwrap();
        assert_eq!(c.on_error, OnError::Tempfail);
        assert_eq!(c.max_bytes, 25 << 20);
        assert_eq!(c.timeout().unwrap(), Duration::from_secs(30));
        let c = config("address = \"127.0.0.1:3310\"\non_error = \"accept\"").unwrap();
        assert_eq!(
            c.endpoint().unwrap(),
            Endpoint::Tcp("127.0.0.1:3310".into())
        );
        assert_eq!(c.on_error, OnError::Accept);
        for (text, expect) in [
            ("", "give socket"),
            ("socket = \"/s\"\naddress = \"h:1\"", "not both"),
            ("socket = \"\"", "clamav.socket"),
            ("address = \"localhost\"", "clamav.address"),
            ("address = \"h:0\"", "clamav.address"),
            ("socket = \"/s\"\ntimeout = \"soon\"", "clamav.timeout"),
            ("socket = \"/s\"\ntimeout = \"0s\"", "clamav.timeout"),
            ("socket = \"/s\"\nmax_bytes = 0", "clamav.max_bytes"),
            ("socket = \"/s\"\non_error = \"ignore\"", "on_error"),
            ("socket = \"/s\"\nport = 3310", "port"),
        ] {
            let e = config(text).unwrap_err();
            assert!(e.contains(expect), "{text:?}: {e}");
        }
    }
}
