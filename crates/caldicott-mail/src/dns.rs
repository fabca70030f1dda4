//! The DNS resolver used by sender authentication ([`crate::auth`]) and `check-dns`
//! ([`crate::checkdns`]).
//!
//! Network checks are off unless `[dns]` names at least one nameserver: an offline `mail scan`
//! must stay offline and deterministic, and a site that has not chosen a resolver should not
//! silently use whatever `/etc/resolv.conf` says. Each nameserver is asked over UDP, falling
//! back to TCP for truncated answers (`"127.0.0.1:5353"`, or an address alone for port 53).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[dns]`: the resolver sender authentication and `check-dns` ask.
///
/// ```toml
/// [dns]
/// nameservers = ["127.0.0.1:53", "10.0.0.2"]
/// timeout = "5s"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `IP` or `IP:port` (IPv6 as `[::1]:53`); asked in order.
    pub nameservers: Vec<String>,
    /// How long to wait for one answer (default `5s`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

fn default_timeout() -> String {
    "5s".into()
}

impl DnsConfig {
    /// A configuration asking the given servers.
    pub fn new(nameservers: Vec<String>) -> Self {
        Self {
            nameservers,
            timeout: default_timeout(),
        }
    }

    /// Checks every address parses and the timeout is a duration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nameservers.is_empty() {
            return Err(ConfigError::Invalid(
                "dns.nameservers: name at least one server (or leave [dns] out: no network checks)"
                    .into(),
            ));
        }
        for (i, s) in self.nameservers.iter().enumerate() {
            parse_server(s).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "dns.nameservers[{i}]: {s:?} is not an IP address or IP:port"
                ))
            })?;
        }
        self.timeout_duration()?;
        Ok(())
    }

    pub(crate) fn timeout_duration(&self) -> Result<Duration, ConfigError> {
        parse_duration(&self.timeout).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "dns.timeout: {:?} is not a duration such as 5s or 500ms",
                self.timeout
            ))
        })
    }

    /// The resolver, wrapped in the authenticator that SPF, DKIM, DMARC and ARC use.
    pub fn authenticator(&self) -> Result<MessageAuthenticator, ConfigError> {
        self.validate()?;
        let servers = self
            .nameservers
            .iter()
            .filter_map(|s| parse_server(s))
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = self.timeout_duration()?;
        opts.attempts = 2;
        // Short-lived cache: the gateway sees the same senders repeatedly, and records are
        // re-read within a minute when a site fixes its DNS.
        opts.positive_max_ttl = Some(Duration::from_secs(300));
        opts.negative_max_ttl = Some(Duration::from_secs(60));
        MessageAuthenticator::new(ResolverConfig::from_name_servers(servers), opts)
            .map_err(|e| ConfigError::Invalid(format!("dns: cannot build the resolver: {e}")))
    }
}

/// `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353`.
pub(crate) fn parse_server(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    s.trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// `500ms`, `5s`, `2m`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_durations_parse() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("10.0.0.2"),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(parse_server("[::1]:53"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_server("dns.example"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5"), None);
        let bad = DnsConfig::new(vec!["nope".into()]);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("dns.nameservers[0]")
        );
        assert!(DnsConfig::new(vec![]).validate().is_err());
    }
}
