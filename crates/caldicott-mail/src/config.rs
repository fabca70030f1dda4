//! The screening configuration (`mail.toml`): thresholds, limits, protected domains, and
//! per-symbol overrides. Every field has a default, so an empty file is a valid configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::symbols;
use crate::verdict::Verdict;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("mail configuration is not valid")]
    Toml(#[from] toml::de::Error),
    #[error("mail configuration: {0}")]
    Invalid(String),
}

/// The whole screening configuration.
///
/// ```toml
/// [thresholds]
/// tag = 5.0
/// quarantine = 10.0
/// reject = 20.0
///
/// [phishing]
/// organisation_domains = ["sunnyvale-care.co.uk"]
/// organisation_names = ["Sunnyvale Care"]
///
/// [symbols.ATTACH_MACRO_OFFICE]
/// min_verdict = "tag"   # this site receives macro spreadsheets from its payroll bureau
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub thresholds: Thresholds,
    pub limits: Limits,
    pub phishing: PhishingConfig,
    pub bayes: BayesConfig,
    /// Per-symbol overrides of the default weight and floor, by symbol name.
    pub symbols: BTreeMap<String, SymbolOverride>,
    /// The SMTP gateway (`caldicott mail serve`); absent for offline scans.
    pub gateway: Option<GatewayConfig>,
    /// The DNS resolver for sender authentication and `check-dns`; absent: no network checks.
    pub dns: Option<crate::dns::DnsConfig>,
    /// Sender authentication (SPF, DKIM, DMARC, ARC) and outbound DKIM signing.
    pub auth: crate::auth::AuthConfig,
    /// Virus scanning by ClamAV's daemon; absent: no virus scan (see `crate::clamav`).
    pub clamav: Option<crate::clamav::ClamavConfig>,
}

/// Total scores at which a message is tagged, quarantined or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Default 5.0 (SpamAssassin's customary `required_score`).
    pub tag: f64,
    /// Default 10.0.
    pub quarantine: f64,
    /// Default 20.0.
    pub reject: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            tag: 5.0,
            quarantine: 10.0,
            reject: 20.0,
        }
    }
}

impl Thresholds {
    /// The verdict a total score reaches on its own.
    pub fn verdict(&self, score: f64) -> Verdict {
        if score >= self.reject {
            Verdict::Reject
        } else if score >= self.quarantine {
            Verdict::Quarantine
        } else if score >= self.tag {
            Verdict::Tag
        } else {
            Verdict::Accept
        }
    }
}

/// Bounds on the work one message may cause. Past a bound the engine stops looking and emits
/// a symbol saying so (never a panic, never unbounded memory).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message accepted, in bytes (default 32 MiB). Larger ones are rejected unparsed.
    pub max_message_bytes: usize,
    /// Most header fields in the message and in any part (default 500).
    pub max_headers: usize,
    /// Most MIME parts screened (default 250).
    pub max_parts: usize,
    /// Deepest MIME nesting (multiparts and attached messages, default 20).
    pub max_depth: usize,
    /// Deepest archive nesting inspected (a zip in a zip in a zip …, default 4).
    pub max_archive_depth: usize,
    /// Most members inspected per archive (default 1,000).
    pub max_archive_entries: usize,
    /// Most bytes decompressed from one attachment's archives in total (default 64 MiB).
    pub max_archive_bytes: usize,
    /// Most bytes of one archive member read for inspection (default 16 MiB).
    pub max_member_bytes: usize,
    /// Most bytes of decoded text given to the text rules and the classifier (default 512 KiB).
    pub max_text_bytes: usize,
    /// Most links examined (default 500).
    pub max_links: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 << 20,
            max_headers: 500,
            max_parts: 250,
            max_depth: 20,
            max_archive_depth: 4,
            max_archive_entries: 1000,
            max_archive_bytes: 64 << 20,
            max_member_bytes: 16 << 20,
            max_text_bytes: 512 << 10,
            max_links: 500,
        }
    }
}

/// What counts as impersonation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhishingConfig {
    /// Domains whose look-alikes are phishing (default `nhs.net`, `nhs.uk`, `gov.uk`,
    /// `cqc.org.uk`). Subdomains of a protected domain are genuine.
    pub protected_domains: Vec<String>,
    /// The organisation's own domains: protected too.
    pub organisation_domains: Vec<String>,
    /// Names of the organisation that a display name may impersonate.
    pub organisation_names: Vec<String>,
}

impl Default for PhishingConfig {
    fn default() -> Self {
        Self {
            protected_domains: ["nhs.net", "nhs.uk", "gov.uk", "cqc.org.uk"]
                .map(String::from)
                .to_vec(),
            organisation_domains: Vec::new(),
            organisation_names: Vec::new(),
        }
    }
}

/// The statistical classifier's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BayesConfig {
    /// Use the model when one is given (default true).
    pub enabled: bool,
    /// A model trained on fewer ham or fewer spam messages than this is not used (default 50).
    pub min_trained: u32,
}

impl Default for BayesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_trained: 50,
        }
    }
}

/// A site's change to one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolOverride {
    /// Replaces the default weight.
    pub weight: Option<f64>,
    /// Replaces the default floor (`"accept"` removes it).
    pub min_verdict: Option<Verdict>,
}

impl MailConfig {
    /// Parses and validates a TOML configuration.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: MailConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the thresholds are ordered and finite, the limits non-zero, and every
    /// overridden symbol exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.thresholds;
        let finite = [t.tag, t.quarantine, t.reject]
            .iter()
            .all(|v| v.is_finite());
        if !finite || t.tag > t.quarantine || t.quarantine > t.reject {
            return Err(ConfigError::Invalid(
                "thresholds must be finite with tag <= quarantine <= reject".into(),
            ));
        }
        let l = &self.limits;
        if [
            l.max_message_bytes,
            l.max_headers,
            l.max_parts,
            l.max_depth,
            l.max_archive_entries,
            l.max_archive_bytes,
            l.max_member_bytes,
            l.max_text_bytes,
        ]
        .contains(&0)
        {
            return Err(ConfigError::Invalid(
                "limits must be greater than zero".into(),
            ));
        }
        if let Some(g) = &self.gateway {
            g.validate()?;
        }
        if let Some(d) = &self.dns {
            d.validate()?;
        }
        self.auth.validate()?;
        if let Some(c) = &self.clamav {
            c.validate()?;
        }
        for (name, o) in &self.symbols {
            if symbols::lookup(name).is_none() {
                return Err(ConfigError::Invalid(format!("unknown symbol {name}")));
            }
            if o.weight.is_some_and(|w| !w.is_finite()) {
                return Err(ConfigError::Invalid(format!(
                    "weight of {name} is not finite"
                )));
            }
        }
        Ok(())
    }
}

/// The SMTP gateway: where it listens, where it relays, its limits, queue and quarantine.
///
/// ```toml
/// [gateway]
/// hostname = "mx.sunnyvale-care.co.uk"
/// inbound = "0.0.0.0:25"
/// submission = "0.0.0.0:587"
/// next_hop = "10.0.0.5:25"
/// local_domains = ["sunnyvale-care.co.uk"]
/// queue_dir = "/var/lib/caldicott/mail/queue"
/// quarantine_dir = "/var/lib/caldicott/mail/quarantine"
/// retry_schedule = ["1m", "5m", "15m", "1h"]
/// max_queue_age = "5d"
///
/// [gateway.tls]
/// cert = "/etc/caldicott/mail/cert.pem"
/// key = "/etc/caldicott/mail/key.pem"
///
/// [[gateway.users]]
/// name = "scanner-ward4"
/// password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The name the gateway greets with and writes into `Received:` (default `localhost`).
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Address of the inbound (MX) listener, e.g. `0.0.0.0:25` (port 0: any free port).
    pub inbound: String,
    /// Address of the submission listener (AUTH required, only after STARTTLS), if any.
    #[serde(default)]
    pub submission: Option<String>,
    /// Where every accepted message is relayed, `host:port`.
    pub next_hop: String,
    /// Relay to the next hop only over STARTTLS, verifying its certificate (default false:
    /// plain SMTP, for a next hop on the same host or a protected internal network).
    #[serde(default)]
    pub next_hop_starttls: bool,
    /// PEM file of the certificate authorities (or the self-signed certificate) trusted for
    /// the next hop; required with `next_hop_starttls`.
    #[serde(default)]
    pub next_hop_ca: Option<std::path::PathBuf>,
    /// The name the next hop's certificate must carry (default: the host of `next_hop`).
    #[serde(default)]
    pub next_hop_tls_name: Option<String>,
    /// Domains the inbound port accepts mail for; mail to other domains is refused there
    /// (`550 5.7.1`), so the gateway is no open relay. Authenticated submission may send
    /// anywhere.
    #[serde(default)]
    pub local_domains: Vec<String>,
    /// The durable queue's directory (created if missing).
    pub queue_dir: std::path::PathBuf,
    /// A plain directory for quarantined messages (created if missing): unencrypted, for
    /// tests and trials only. Give `data` instead in production.
    #[serde(default)]
    pub quarantine_dir: std::path::PathBuf,
    /// The Caldicott data directory (`caldicott init`) whose vault keeps the quarantine,
    /// sealed; it wins over `quarantine_dir`. See `crate::quarantine`.
    #[serde(default)]
    pub data: Option<std::path::PathBuf>,
    /// Recipient domains (and their subdomains) that may receive patient-identifiable data
    /// from the submission port, e.g. `nhs.net` and listed partners. Submitted mail carrying
    /// such data to any other domain is held in quarantine (see `crate::outbound`).
    #[serde(default)]
    pub secure_domains: Vec<String>,
    /// Partner domains with their own route and TLS requirement (`[[gateway.partners]]`).
    #[serde(default)]
    pub partners: Vec<PartnerDomain>,
    /// PEM roots for MTA-STS partners: the policy host's and the MX hosts' certificates are
    /// verified against them (default: the system's trust store). Tests name a test CA.
    #[serde(default)]
    pub mta_sts_ca: Option<std::path::PathBuf>,
    /// The waits between delivery attempts; the last one repeats until `max_queue_age`.
    #[serde(default = "default_retry_schedule")]
    pub retry_schedule: Vec<String>,
    /// How long a message may wait for delivery before it is bounced (default `5d`).
    #[serde(default = "default_max_queue_age")]
    pub max_queue_age: String,
    /// Deliveries running at once (default 4).
    #[serde(default = "default_delivery_concurrency")]
    pub delivery_concurrency: usize,
    /// Certificate and key for STARTTLS; without them STARTTLS is not offered (and the
    /// submission port cannot authenticate anyone).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub limits: GatewayLimits,
    /// Accounts that may submit mail on the submission port.
    #[serde(default)]
    pub users: Vec<SubmissionUser>,
    /// The quarantine's daily digest and retention purge, run by the gateway itself
    /// (`[gateway.quarantine]`; needs `data`).
    #[serde(default)]
    pub quarantine: Option<QuarantineSchedule>,
}

/// The gateway's daily quarantine housekeeping (`[gateway.quarantine]`): a digest mailed to
/// the privacy officer and a retention purge, each day at `digest_at` UK local time
/// (Europe/London), so that a care home needs no cron job. Either or both may be set.
///
/// ```toml
/// [gateway.quarantine]
/// digest_to = "privacy.officer@sunnyvale-care.co.uk"
/// digest_from = "postmaster@mx.sunnyvale-care.co.uk"  # default postmaster@<hostname>
/// digest_at = "07:30"            # HH:MM (or HH:MM:SS), UK local time; default 07:30
/// retain = "30d"                 # held mail and training copies older than this are purged
/// purge_as = "jsmith"            # the caldicott-guardian or sysadmin the purge runs as
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineSchedule {
    /// Where the daily digest goes; without it no digest is sent.
    #[serde(default)]
    pub digest_to: Option<String>,
    /// The digest's sender (default `postmaster@<gateway hostname>`).
    #[serde(default)]
    pub digest_from: Option<String>,
    /// The time of day of the daily run (digest, then purge), UK local time.
    #[serde(default = "default_digest_at")]
    pub digest_at: String,
    /// The retention period; without it nothing is purged.
    #[serde(default)]
    pub retain: Option<String>,
    /// The user of the access directory on whose authority the purge runs (required with
    /// `retain`).
    #[serde(default)]
    pub purge_as: Option<String>,
}

fn default_digest_at() -> String {
    "07:30".into()
}

/// Parses a time of day `HH:MM` or `HH:MM:SS` (24-hour clock) into seconds after midnight.
pub fn parse_time_of_day(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
    let (h, m, s) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
    (h < 24 && m < 60 && s < 60).then_some(h * 3600 + m * 60 + s)
}

fn is_address(a: &str) -> bool {
    a.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !a.contains(['<', '>', ' ', '\r', '\n', ','])
}

impl QuarantineSchedule {
    /// Checks every key, naming the first bad one (`gateway.quarantine.<key>`).
    pub fn validate(&self, has_data: bool) -> Result<(), ConfigError> {
        let key = |k: &str| format!("quarantine.{k}");
        if !has_data {
            return Err(invalid(
                "quarantine",
                "needs gateway.data (the vault whose quarantine it digests and purges)",
            ));
        }
        match (&self.retain, &self.purge_as) {
            (Some(r), Some(u)) => {
                duration(&key("retain"), r)?;
                if u.trim().is_empty() {
                    return Err(invalid(&key("purge_as"), "must name a user"));
                }
            }
            (Some(_), None) => {
                return Err(invalid(
                    &key("purge_as"),
                    "is required with retain: the caldicott-guardian or sysadmin on whose \
                     authority held mail is purged",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(&key("retain"), "is required with purge_as"));
            }
            (None, None) => {}
        }
        if self.digest_to.is_none() && self.retain.is_none() {
            return Err(invalid(
                "quarantine",
                "give digest_to (a daily digest), retain (a daily purge) or both",
            ));
        }
        for (k, v) in [
            ("digest_to", &self.digest_to),
            ("digest_from", &self.digest_from),
        ] {
            if let Some(a) = v
                && !is_address(a)
            {
                return Err(invalid(&key(k), format!("{a:?} is not an email address")));
            }
        }
        if self.digest_from.is_some() && self.digest_to.is_none() {
            return Err(invalid(&key("digest_from"), "needs digest_to"));
        }
        if parse_time_of_day(&self.digest_at).is_none() {
            return Err(invalid(
                &key("digest_at"),
                format!(
                    "{:?} is not a time of day such as 07:30 (HH:MM, 24-hour, UK local time)",
                    self.digest_at
                ),
            ));
        }
        Ok(())
    }

    /// The retention period, if a purge is configured (after [`Self::validate`]).
    pub fn retention(&self) -> Option<std::time::Duration> {
        self.retain.as_deref().and_then(parse_duration)
    }
}

fn default_hostname() -> String {
    "localhost".into()
}
fn default_retry_schedule() -> Vec<String> {
    ["1m", "5m", "15m", "1h", "4h"].map(String::from).to_vec()
}
fn default_max_queue_age() -> String {
    "5d".into()
}
fn default_delivery_concurrency() -> usize {
    4
}

/// A partner organisation's mail domain: where its mail goes and whether it must go over
/// verified TLS (`crate::tls_policy`, docs/mail.md "Partner TLS policies").
///
/// ```toml
/// [[gateway.partners]]
/// domain = "stmarys-hospice.org.uk"
/// tls = "pinned"                     # STARTTLS verified against `ca`, or no delivery
/// next_hop = "mx.stmarys-hospice.org.uk:25"   # default: the gateway's next_hop
/// ca = "/etc/caldicott/mail/stmarys-ca.pem"   # roots trusted for it (required with "pinned")
/// tls_name = "mx.stmarys-hospice.org.uk"      # default: the host of next_hop
///
/// [[gateway.partners]]
/// domain = "nhs.net"
/// tls = "dane-or-mta-sts"            # the partner's MX hosts, DANE first, else MTA-STS
/// ```
///
/// `require_tls = true` without `tls` means `tls = "pinned"` (the older spelling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerDomain {
    pub domain: String,
    #[serde(default)]
    pub require_tls: bool,
    /// How the partner's TLS is verified; see [`PartnerTls`].
    #[serde(default)]
    pub tls: Option<PartnerTls>,
    /// With "pinned" (or none): where its mail goes (default: the gateway's next_hop). With
    /// "dane"/"mta-sts": replaces the MX lookup; its host is then the one checked.
    #[serde(default)]
    pub next_hop: Option<String>,
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    #[serde(default)]
    pub tls_name: Option<String>,
}

/// A partner's verified-TLS policy. Each is all-or-nothing: when it cannot be met the
/// message waits in the queue (a `4xx`), never goes in plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartnerTls {
    /// STARTTLS to `next_hop`, verified against the roots in `ca` for `tls_name`.
    Pinned,
    /// The domain's MX hosts, each verified by DNSSEC-authenticated TLSA records
    /// (RFC 7672); needs `[dns]` naming a local validating resolver.
    Dane,
    /// The domain's MX hosts as its MTA-STS policy allows (RFC 8461), certificates verified
    /// against `gateway.mta_sts_ca` (default: the system's trust store).
    MtaSts,
    /// DANE for each MX host with usable TLSA records, MTA-STS for the others.
    DaneOrMtaSts,
}

impl PartnerTls {
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerTls::Pinned => "pinned",
            PartnerTls::Dane => "dane",
            PartnerTls::MtaSts => "mta-sts",
            PartnerTls::DaneOrMtaSts => "dane-or-mta-sts",
        }
    }

    /// True when the policy looks partners up in the DNS (needs `[dns]`).
    pub fn uses_dns(self) -> bool {
        self != PartnerTls::Pinned
    }
}

impl PartnerDomain {
    /// The partner's effective policy: `tls`, else "pinned" with `require_tls`, else none.
    pub fn tls_policy(&self) -> Option<PartnerTls> {
        self.tls.or(self.require_tls.then_some(PartnerTls::Pinned))
    }
}

/// PEM files of the gateway's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// One submission account. The password is stored only as an Argon2id PHC string
/// (`caldicott mail hash-password` makes one).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionUser {
    pub name: String,
    pub password_hash: String,
    /// The addresses the account may send as, in `MAIL FROM:` and in the message's
    /// `From:` header: whole addresses (`manager@care.example`) or whole domains
    /// (`@care.example`). Empty: only the account's name, when that is an address
    /// (`crate::sendas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_as: Vec<String>,
}

impl std::fmt::Debug for SubmissionUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not a secret in the strict sense, but it has no business in logs.
        f.debug_struct("SubmissionUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What one client may cost the gateway. Each limit has its SMTP reply (docs/mail.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayLimits {
    /// Largest message accepted, advertised as `SIZE` (default 25 MiB). Past it: `552 5.3.4`.
    pub max_message_bytes: usize,
    /// Most recipients per message (default 100). Past it: `452 4.5.3`.
    pub max_recipients: usize,
    /// Most connections at once (default 200). Past it: `421 4.7.0` and close.
    pub max_connections: usize,
    /// Most connections at once from one client address (default 20).
    pub max_connections_per_ip: usize,
    /// Most commands one client address may send per minute (default 600). Past it: `421`.
    pub max_commands_per_minute: u32,
    /// Most messages one client address may send per minute (default 60). Past it: `450`.
    pub max_messages_per_minute: u32,
    /// Most failed AUTH attempts per client address per minute (default 5). Past it: `454`.
    pub max_auth_failures_per_minute: u32,
    /// Longest command or message line, CRLF included (default 4096). Past it: `500 5.5.2`.
    pub max_line_bytes: usize,
    /// Longest wait for the next piece of a message during DATA (default `3m`).
    pub data_timeout: String,
    /// Longest wait for the next command (default `5m`). Past it: `421 4.4.2` and close.
    pub idle_timeout: String,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 25 << 20,
            max_recipients: 100,
            max_connections: 200,
            max_connections_per_ip: 20,
            max_commands_per_minute: 600,
            max_messages_per_minute: 60,
            max_auth_failures_per_minute: 5,
            max_line_bytes: 4096,
            data_timeout: "3m".into(),
            idle_timeout: "5m".into(),
        }
    }
}

/// Parses a duration written as a number and a unit: `500ms`, `30s`, `5m`, `1h`, `2d`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(n.checked_mul(ms)?))
}

fn invalid(key: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("gateway.{key}: {why}"))
}

fn duration(key: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    match parse_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err(invalid(key, "must be greater than zero")),
        None => Err(invalid(
            key,
            format!("{text:?} is not a duration such as 500ms, 30s, 5m, 1h or 2d"),
        )),
    }
}

fn socket_addr(key: &str, text: &str) -> Result<(), ConfigError> {
    let ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(invalid(key, format!("{text:?} is not host:port")))
    }
}

impl GatewayConfig {
    /// Checks every field, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let h = &self.hostname;
        if h.is_empty()
            || h.len() > 253
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(invalid("hostname", "must be a DNS name"));
        }
        socket_addr("inbound", &self.inbound)?;
        if let Some(s) = &self.submission {
            socket_addr("submission", s)?;
            if self.tls.is_none() {
                return Err(invalid(
                    "submission",
                    "needs [gateway.tls]: AUTH is only accepted over TLS",
                ));
            }
        }
        socket_addr("next_hop", &self.next_hop)?;
        if self.next_hop_starttls && self.next_hop_ca.is_none() {
            return Err(invalid(
                "next_hop_ca",
                "is required with next_hop_starttls (the certificate authorities to trust)",
            ));
        }
        if self.local_domains.is_empty() {
            return Err(invalid(
                "local_domains",
                "must list the domains the inbound port accepts mail for",
            ));
        }
        for d in &self.local_domains {
            if d.is_empty() || d.contains(['@', ' ', '<', '>']) {
                return Err(invalid("local_domains", format!("{d:?} is not a domain")));
            }
        }
        if self.queue_dir.as_os_str().is_empty() {
            return Err(invalid("queue_dir", "must not be empty"));
        }
        match &self.data {
            Some(d) if d.as_os_str().is_empty() => {
                return Err(invalid("data", "must not be empty"));
            }
            Some(_) => {}
            None if self.quarantine_dir.as_os_str().is_empty() => {
                return Err(invalid(
                    "data",
                    "is required (the Caldicott data directory whose vault keeps the \
                     quarantine), unless quarantine_dir names a plain directory",
                ));
            }
            None => {}
        }
        for (i, d) in self.secure_domains.iter().enumerate() {
            if !crate::outbound::is_domain(d) {
                return Err(invalid(
                    &format!("secure_domains[{i}]"),
                    format!("{d:?} is not a domain"),
                ));
            }
        }
        for (i, p) in self.partners.iter().enumerate() {
            if !crate::outbound::is_domain(&p.domain) {
                return Err(invalid(
                    &format!("partners[{i}].domain"),
                    format!("{:?} is not a domain", p.domain),
                ));
            }
            if let Some(h) = &p.next_hop {
                socket_addr(&format!("partners[{i}].next_hop"), h)?;
            }
            match p.tls_policy() {
                Some(PartnerTls::Pinned) if p.ca.is_none() => {
                    return Err(invalid(
                        &format!("partners[{i}].ca"),
                        "is required with tls = \"pinned\" (or require_tls): the certificate \
                         authorities to trust; or choose tls = \"dane\", \"mta-sts\" or \
                         \"dane-or-mta-sts\"",
                    ));
                }
                Some(t) if t.uses_dns() && (p.ca.is_some() || p.tls_name.is_some()) => {
                    return Err(invalid(
                        &format!("partners[{i}].tls"),
                        format!(
                            "{:?} checks certificates by DNS; ca and tls_name belong to \
                             \"pinned\" only",
                            t.as_str()
                        ),
                    ));
                }
                _ => {}
            }
        }
        self.retry_delays()?;
        self.max_age()?;
        if self.delivery_concurrency == 0 {
            return Err(invalid("delivery_concurrency", "must be greater than zero"));
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_recipients", l.max_recipients),
            ("limits.max_connections", l.max_connections),
            ("limits.max_connections_per_ip", l.max_connections_per_ip),
            (
                "limits.max_commands_per_minute",
                l.max_commands_per_minute as usize,
            ),
            (
                "limits.max_messages_per_minute",
                l.max_messages_per_minute as usize,
            ),
            (
                "limits.max_auth_failures_per_minute",
                l.max_auth_failures_per_minute as usize,
            ),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if l.max_line_bytes < 512 {
            return Err(invalid(
                "limits.max_line_bytes",
                "must be at least 512 (RFC 5321 command lines)",
            ));
        }
        duration("limits.data_timeout", &l.data_timeout)?;
        duration("limits.idle_timeout", &l.idle_timeout)?;
        if let Some(q) = &self.quarantine {
            q.validate(self.data.is_some())?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() || u.name.contains(['\0', '\r', '\n']) {
                return Err(invalid(&format!("users[{i}].name"), "must not be empty"));
            }
            if !names.insert(&u.name) {
                return Err(invalid(
                    &format!("users[{i}].name"),
                    format!("{:?} is listed twice", u.name),
                ));
            }
            if !u.password_hash.starts_with("$argon2id$") {
                return Err(invalid(
                    &format!("users[{i}].password_hash"),
                    "must be an Argon2id PHC string ($argon2id$…)",
                ));
            }
            for (j, e) in u.send_as.iter().enumerate() {
                if !crate::sendas::SendAs::is_valid_entry(e) {
                    return Err(invalid(
                        &format!("users[{i}].send_as[{j}]"),
                        format!("{e:?} is neither an address (name@domain) nor a domain (@domain)"),
                    ));
                }
            }
            if crate::sendas::SendAs::new(&u.name, &u.send_as).is_empty() {
                return Err(invalid(
                    &format!("users[{i}].send_as"),
                    format!(
                        "is required: {:?} is not an address, so say which addresses it may send as",
                        u.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The retry waits, parsed.
    pub fn retry_delays(&self) -> Result<Vec<std::time::Duration>, ConfigError> {
        if self.retry_schedule.is_empty() {
            return Err(invalid("retry_schedule", "must list at least one wait"));
        }
        self.retry_schedule
            .iter()
            .enumerate()
            .map(|(i, t)| duration(&format!("retry_schedule[{i}]"), t))
            .collect()
    }

    /// The longest a message stays queued, parsed.
    pub fn max_age(&self) -> Result<std::time::Duration, ConfigError> {
        duration("max_queue_age", &self.max_queue_age)
    }

    /// The DATA timeout, parsed.
    pub fn data_timeout(&self) -> Result<std::time::Duration, ConfigError> {
        duration("limits.data_timeout", &self.limits.data_timeout)
    }

    /// The idle timeout, parsed.
    pub fn idle_timeout(&self) -> Result<std::time::Duration, ConfigError> {
        duration("limits.idle_timeout", &self.limits.idle_timeout)
    }
}
