//! Outbound protection: data-loss prevention on the submission port and the routes (with
//! their TLS requirement) to partner domains.
//!
//! **Holding.** Mail submitted by an authenticated client is checked by [`crate::dlp`] (valid
//! NHS numbers, names with dates of birth, clinical terms with identifiers). When it carries
//! any and at least one recipient's domain is not secure — not in `secure_domains`, not a
//! listed partner, not one of the organisation's own `local_domains` (each with its
//! subdomains) — the message gets the symbol [`OUTBOUND_PID_INSECURE`] whose floor is
//! `quarantine`: it is held whole for the privacy officer (`caldicott mail quarantine`), the
//! client is answered `250` like any accepted message, and nothing goes to any recipient,
//! the secure ones included (a split would deliver half a conversation the officer may want
//! to stop). The sender is told nothing by mail; the officer decides (docs/mail.md).
//!
//! The decision ([`assess`]) is a pure function of the policy, the envelope and the findings;
//! [`OutboundScreen`] wraps the gateway's [`Screen`] to apply it, running the DLP scan on
//! tokio's blocking pool.
//!
//! **Routes.** [`Route`]s send a partner's recipients to the partner's own next hop, and,
//! with `tls = "pinned"` (or `require_tls`), only over STARTTLS with a certificate verified
//! against the configured roots: a next hop without STARTTLS or with an unverifiable
//! certificate is a temporary failure (retried on the schedule, then bounced at
//! `max_queue_age`), never a plain-text fallback. With `tls = "dane"`, `"mta-sts"` or
//! `"dane-or-mta-sts"` the partner's MX hosts are found and verified through the DNS by
//! [`crate::tls_policy`], with the same rule: verified TLS or a temporary failure.

use std::sync::Arc;

use crate::check::Envelope;
use crate::config::{ConfigError, GatewayConfig, MailConfig, PartnerTls};
use crate::dlp::{Finding, FindingKind};
use crate::scanner::Scanner;
use crate::smtp::{BoxFuture, GatewayError, Screen};
use crate::verdict::{Report, Symbol, Verdict};

/// The symbol of a held outbound message. Its reason names the kinds and counts found and
/// the insecure recipient domains, never a value found.
pub const OUTBOUND_PID_INSECURE: &str = "OUTBOUND_PID_INSECURE";

/// True for a plausible DNS domain: labels of letters, digits and hyphens, a dot between.
pub fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The domain of an address, lower case (`None` without an `@`).
pub fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// True when `domain` is one of `list` or a subdomain of one.
pub fn within(domain: &str, list: &[String]) -> bool {
    list.iter().any(|d| {
        domain == d
            || domain
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

/// Which recipient domains may receive patient-identifiable data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Lower-case domains (each with its subdomains): `secure_domains`, the partners'
    /// domains and `local_domains`.
    pub secure: Vec<String>,
}

impl OutboundPolicy {
    pub fn from_config(config: &GatewayConfig) -> Self {
        let mut secure: Vec<String> = config
            .secure_domains
            .iter()
            .chain(config.partners.iter().map(|p| &p.domain))
            .chain(config.local_domains.iter())
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        secure.sort();
        secure.dedup();
        Self { secure }
    }

    /// The recipient domains outside the secure list (sorted, once each); an address
    /// without a domain counts as insecure (shown as `(none)`).
    pub fn insecure_domains(&self, recipients: &[String]) -> Vec<String> {
        let mut out: Vec<String> = recipients
            .iter()
            .filter_map(|r| match domain_of(r) {
                Some(d) if within(&d, &self.secure) => None,
                Some(d) => Some(d),
                None => Some("(none)".into()),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn kind_text(k: FindingKind, n: usize) -> String {
    let (one, many) = match k {
        FindingKind::NhsNumber => ("NHS number", "NHS numbers"),
        FindingKind::NameWithDateOfBirth => {
            ("name with date of birth", "names with dates of birth")
        }
        FindingKind::ClinicalTermWithIdentifier => (
            "clinical term with an identifier",
            "clinical terms with identifiers",
        ),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The outbound decision: the symbol that holds a message, or `None` to let it go. Only
/// authenticated (submitted) mail is judged; inbound mail to the organisation is not.
pub fn assess(
    policy: &OutboundPolicy,
    envelope: &Envelope,
    findings: &[Finding],
) -> Option<Symbol> {
    if !envelope.authenticated || findings.iter().all(|f| f.count == 0) {
        return None;
    }
    let insecure = policy.insecure_domains(&envelope.rcpt_to);
    if insecure.is_empty() {
        return None;
    }
    let found: Vec<String> = findings
        .iter()
        .filter(|f| f.count > 0)
        .map(|f| kind_text(f.kind, f.count))
        .collect();
    Some(Symbol {
        name: OUTBOUND_PID_INSECURE,
        score: 0.0,
        reason: format!(
            "patient-identifiable data ({}) to a domain outside the secure list ({})",
            found.join(", "),
            insecure.join(", ")
        ),
        min_verdict: Verdict::Quarantine,
    })
}

/// Applies a holding symbol to a report: added, and the verdict raised to `quarantine`
/// (a `reject` stays a `reject`).
pub fn apply(report: &mut Report, symbol: Symbol) {
    report.symbols.push(symbol);
    if report.verdict < Verdict::Quarantine {
        report.verdict = Verdict::Quarantine;
    }
}

/// A [`Screen`] that runs the inner screen, then, for submitted mail, the outbound DLP.
pub struct OutboundScreen {
    inner: Arc<dyn Screen>,
    dlp: Arc<Scanner>,
    policy: OutboundPolicy,
}

impl OutboundScreen {
    /// Wraps `inner` with the gateway configuration's policy. The DLP text extraction runs
    /// under the default screening limits with the gateway's message size.
    pub fn new(inner: Arc<dyn Screen>, config: &GatewayConfig) -> Result<Self, ConfigError> {
        let mut mc = MailConfig::default();
        mc.limits.max_message_bytes = config.limits.max_message_bytes;
        Ok(Self {
            inner,
            dlp: Arc::new(Scanner::with_checks(mc, Vec::new())?),
            policy: OutboundPolicy::from_config(config),
        })
    }
}

impl Screen for OutboundScreen {
    fn screen<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: Arc<Vec<u8>>,
    ) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            let mut report = self.inner.screen(envelope, message.clone()).await;
            if !envelope.authenticated || report.verdict == Verdict::Reject {
                return report;
            }
            let dlp = self.dlp.clone();
            let findings = match tokio::task::spawn_blocking(move || dlp.dlp(&message)).await {
                Ok(f) => f,
                Err(_) => {
                    // Should the scan fail, hold the message rather than send it unchecked.
                    apply(
                        &mut report,
                        Symbol {
                            name: OUTBOUND_PID_INSECURE,
                            score: 0.0,
                            reason: "the outbound data-loss check failed; held unchecked".into(),
                            min_verdict: Verdict::Quarantine,
                        },
                    );
                    return report;
                }
            };
            if let Some(s) = assess(&self.policy, envelope, &findings) {
                tracing::info!(
                    verdict = "quarantine",
                    symbol = OUTBOUND_PID_INSECURE,
                    "outbound mail with patient-identifiable data held"
                );
                apply(&mut report, s);
            }
            report
        })
    }
}

/// Where a group of recipients goes, and how.
#[derive(Debug, Clone)]
pub struct Route {
    /// Lower-case partner domain (with subdomains); `None` for the default route.
    pub domain: Option<String>,
    /// `host:port`; for a DNS policy (`policy` "dane"/"mta-sts") empty unless the partner
    /// overrides its MX hosts with `next_hop`.
    pub next_hop: String,
    /// Required TLS (STARTTLS, verified); `None`: the route's plain or optional behaviour.
    pub tls: Option<crate::relay::NextHopTls>,
    /// The partner's TLS policy when it is checked through the DNS
    /// ([`crate::tls_policy::Engine`] delivers such routes); `None` otherwise.
    pub policy: Option<PartnerTls>,
}

/// Splits recipients by route: partner routes first (in configuration order), then the
/// default route. Each recipient appears once; groups without recipients are left out.
pub fn split<'r>(
    routes: &'r [Route],
    default: &'r Route,
    rcpts: &[String],
) -> Vec<(&'r Route, Vec<String>)> {
    let mut groups: Vec<(&Route, Vec<String>)> = Vec::new();
    for r in rcpts {
        let d = domain_of(r).unwrap_or_default();
        let route = routes
            .iter()
            .find(|rt| {
                rt.domain
                    .as_ref()
                    .is_some_and(|pd| within(&d, std::slice::from_ref(pd)))
            })
            .unwrap_or(default);
        match groups.iter_mut().find(|(g, _)| std::ptr::eq(*g, route)) {
            Some((_, v)) => v.push(r.clone()),
            None => groups.push((route, vec![r.clone()])),
        }
    }
    groups
}

/// Verified TLS towards `host` with the roots of the PEM file `ca`; `key` names the setting
/// that gave the host, for the error. Used for the default next hop and for partners.
pub(crate) fn pinned_tls(
    key: &str,
    ca: &std::path::Path,
    host: &str,
) -> Result<crate::relay::NextHopTls, GatewayError> {
    let bad = |why: String| GatewayError::Tls {
        path: ca.to_owned(),
        why,
    };
    let roots = crate::tls_policy::load_roots(ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
        GatewayError::Config(ConfigError::Invalid(format!(
            "gateway.{key}: {host:?} is not a DNS name or IP address"
        )))
    })?;
    Ok(crate::relay::NextHopTls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        name,
    })
}

/// The partners' routes. A "pinned" partner (`tls = "pinned"` or `require_tls`) gets
/// verified STARTTLS against its `ca` for `tls_name` (default: the host of its next hop); a
/// DNS policy ("dane", "mta-sts", "dane-or-mta-sts") gets a route marked with it, its
/// `next_hop` only an override of the MX lookup; a partner without a policy keeps what the
/// default route does when it shares the default next hop (`default_tls`), else plain SMTP.
pub fn partner_routes(
    config: &GatewayConfig,
    default_tls: Option<&crate::relay::NextHopTls>,
) -> Result<Vec<Route>, GatewayError> {
    let mut out = Vec::new();
    for (i, p) in config.partners.iter().enumerate() {
        let domain = Some(p.domain.trim_end_matches('.').to_ascii_lowercase());
        let policy = p.tls_policy();
        if let Some(t) = policy.filter(|t| t.uses_dns()) {
            out.push(Route {
                domain,
                next_hop: p.next_hop.clone().unwrap_or_default(),
                tls: None,
                policy: Some(t),
            });
            continue;
        }
        let next_hop = p
            .next_hop
            .clone()
            .unwrap_or_else(|| config.next_hop.clone());
        let tls = match (&p.ca, policy) {
            (Some(ca), Some(_)) => {
                let host = p.tls_name.clone().unwrap_or_else(|| {
                    next_hop
                        .rsplit_once(':')
                        .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
                        .unwrap_or_default()
                });
                Some(pinned_tls(&format!("partners[{i}].tls_name"), ca, &host)?)
            }
            (None, Some(_)) => {
                return Err(GatewayError::Config(ConfigError::Invalid(format!(
                    "gateway.partners[{i}].ca: is required with tls = \"pinned\" (or require_tls)"
                ))));
            }
            (_, None) if next_hop == config.next_hop => default_tls.cloned(),
            (_, None) => None,
        };
        out.push(Route {
            domain,
            next_hop,
            tls,
            policy: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(auth: bool, rcpts: &[&str]) -> Envelope {
        Envelope {
            authenticated: auth,
            rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
            ..Envelope::default()
        }
    }

    fn policy() -> OutboundPolicy {
        OutboundPolicy {
            secure: vec!["nhs.net".into(), "care.example".into()],
        }
    }

    const NHS: [Finding; 1] = [Finding {
        kind: FindingKind::NhsNumber,
        count: 2,
    }];

    #[test]
    fn held_only_when_data_goes_outside() {
        let p = policy();
        let s = assess(&p, &env(true, &["a@gmail.com", "b@nhs.net"]), &NHS).unwrap();
        assert_eq!(s.min_verdict, Verdict::Quarantine);
        assert!(s.reason.contains("2 NHS numbers"), "{}", s.reason);
        assert!(s.reason.contains("gmail.com") && !s.reason.contains("nhs.net"));
        assert!(assess(&p, &env(true, &["b@nhs.net", "c@x.care.example"]), &NHS).is_none());
        assert!(assess(&p, &env(true, &["a@gmail.com"]), &[]).is_none());
        // Inbound mail is not judged here.
        assert!(assess(&p, &env(false, &["a@gmail.com"]), &NHS).is_none());
        // A look-alike is not a subdomain.
        assert!(assess(&p, &env(true, &["a@evilnhs.net"]), &NHS).is_some());
        assert!(assess(&p, &env(true, &["nodomain"]), &NHS).is_some());
    }

    #[test]
    fn domains() {
        assert!(is_domain("nhs.net") && is_domain("a-b.example"));
        assert!(!is_domain("") && !is_domain("a..b") && !is_domain("-a.b") && !is_domain("a@b"));
        assert_eq!(domain_of("X@NHS.Net.").as_deref(), Some("nhs.net"));
    }

    #[test]
    fn split_by_route() {
        let default = Route {
            domain: None,
            next_hop: "d:25".into(),
            tls: None,
            policy: None,
        };
        let routes = vec![Route {
            domain: Some("partner.example".into()),
            next_hop: "p:25".into(),
            tls: None,
            policy: None,
        }];
        let rcpts: Vec<String> = [
            "a@x.org",
            "b@partner.example",
            "c@mx.partner.example",
            "d@y.org",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = split(&routes, &default, &rcpts);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0.next_hop, "d:25");
        assert_eq!(g[0].1, ["a@x.org", "d@y.org"]);
        assert_eq!(g[1].1, ["b@partner.example", "c@mx.partner.example"]);
    }
}
