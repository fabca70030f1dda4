//! Verified TLS to partner domains by DNS: DANE (RFC 7672) and MTA-STS (RFC 8461).
//!
//! A partner with `tls = "dane"`, `"mta-sts"` or `"dane-or-mta-sts"` gets its mail delivered
//! to its own MX hosts (looked up through `[dns]`, or the partner's `next_hop` when one is
//! configured, whose host is then checked the same way), in preference order, each over
//! STARTTLS verified by one rule:
//!
//! - **DANE** — the MX answer and the `_25._tcp.<mx>` TLSA answer both carry the resolver's
//!   AD flag and at least one TLSA record is usable ([`crate::dane`]): the certificate must
//!   match one. A TLSA lookup that fails (SERVFAIL, timeout) rules the host out: it may be
//!   an attack on the lookup (RFC 7672 §2.2).
//! - **MTA-STS** — the domain publishes a policy ([`crate::mta_sts`]): in `enforce` mode
//!   only MX hosts matching its `mx` patterns, with a certificate valid for the MX name under
//!   the WebPKI roots (`gateway.mta_sts_ca`, default the system store); in `testing` mode
//!   the same checks are made and a failure is logged, but the mail still goes (over TLS:
//!   a partner with a policy never gets plain text). Mode `none` or no policy: no host.
//!
//! With `dane-or-mta-sts` a host with usable TLSA records is held to DANE (a mismatch is a
//! failure, never a fallback); one without (insecure zone, no records) is held to MTA-STS.
//! When no host can be used, every recipient gets a `4xx` naming the domain, each MX and
//! the rule that ruled it out: the queue retries and, at `max_queue_age`, bounces. The
//! decisions are logged with the domain and host, never with anything of the message.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::{GatewayConfig, PartnerTls};
use crate::dane::{self, Tlsa};
use crate::dns::DnsConfig;
use crate::dnsq::{Answer, Resolver};
use crate::mta_sts::{self, Fetcher, Lookup};
use crate::outbound::Route;
use crate::queue::QueuedEnvelope;
use crate::relay::{NextHopTls, Outcome};
use crate::smtp::GatewayError;

/// The SMTP port MX hosts listen on.
const SMTP_PORT: u16 = 25;

/// What decides DANE, MTA-STS and delivery for the partners with such a policy.
pub struct Engine {
    resolver: Option<Resolver>,
    sts: Fetcher,
    /// MTA-STS `enforce`: the MX certificate must be valid for its name under the roots.
    webpki: Arc<rustls::ClientConfig>,
    /// MTA-STS `testing`: the same check, logged, not enforced.
    testing: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

/// The roots of a PEM file (`key` names the setting, for the error).
pub(crate) fn load_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, GatewayError> {
    let bad = |why: String| GatewayError::Tls {
        path: path.to_owned(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(c.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(roots)
}

impl Engine {
    /// The engine for `config`'s partners, or `None` when no partner uses DANE or MTA-STS.
    /// `dns` is the `[dns]` resolver; without one such partners' mail waits (`4xx`).
    pub fn for_gateway(
        config: &GatewayConfig,
        dns: Option<&DnsConfig>,
    ) -> Result<Option<Arc<Engine>>, GatewayError> {
        let policies: Vec<PartnerTls> = config
            .partners
            .iter()
            .filter_map(|p| p.tls_policy())
            .filter(|t| t.uses_dns())
            .collect();
        if policies.is_empty() {
            return Ok(None);
        }
        let roots = match &config.mta_sts_ca {
            Some(path) => load_roots(path)?,
            None if policies.iter().any(|t| *t != PartnerTls::Dane) => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    tracing::warn!(
                        "no system trust store found: MTA-STS partners cannot be verified; set gateway.mta_sts_ca"
                    );
                }
                roots
            }
            None => rustls::RootCertStore::empty(),
        };
        let resolver = dns.map(Resolver::new).transpose()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls_err = |e: rustls::Error| GatewayError::Tls {
            path: config.mta_sts_ca.clone().unwrap_or_default(),
            why: e.to_string(),
        };
        let roots = Arc::new(roots);
        let webpki = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(tls_err)?
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        );
        let strict =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build();
        let testing = match strict {
            Ok(strict) => Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(tls_err)?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient { strict }))
                    .with_no_client_auth(),
            ),
            // No roots at all: testing mode gets the same (failing) strict check.
            Err(_) => webpki.clone(),
        };
        Ok(Some(Arc::new(Engine {
            resolver,
            sts: Fetcher::new(webpki.clone()),
            webpki,
            testing,
        })))
    }

    /// Delivers `recipients` of a partner route with a DNS policy; an outcome per recipient.
    pub async fn deliver(
        &self,
        route: &Route,
        helo: &str,
        env: &QueuedEnvelope,
        recipients: &[String],
        message: &[u8],
    ) -> Vec<(String, Outcome)> {
        let domain = route.domain.clone().unwrap_or_default();
        let Some(policy) = route.policy else {
            return crate::relay::all(
                recipients,
                Outcome::Temporary(format!("4.3.5 {domain}: no TLS policy on this route")),
            );
        };
        let Some(resolver) = &self.resolver else {
            return crate::relay::all(
                recipients,
                Outcome::Temporary(format!(
                    "4.3.5 {domain}: tls = \"{}\" needs a [dns] resolver, none is configured",
                    policy.as_str()
                )),
            );
        };
        let override_hop = (!route.next_hop.is_empty()).then_some(route.next_hop.as_str());
        let candidates = match self.plan(resolver, &domain, policy, override_hop).await {
            Ok(c) => c,
            Err(o) => return crate::relay::all(recipients, o),
        };
        let mut reasons = candidates.failures;
        for c in candidates.hosts {
            let addrs = match addresses(resolver, &c.host, c.port).await {
                Ok(a) => a,
                Err(e) => {
                    log_failure(&domain, &c.host, c.rule, &e);
                    reasons.push(format!("{} ({}): {e}", c.host, c.rule));
                    continue;
                }
            };
            for addr in addrs {
                match crate::relay::session(
                    &addr.to_string(),
                    helo,
                    Some(&c.tls),
                    env,
                    recipients,
                    message,
                )
                .await
                {
                    Ok(results) => {
                        tracing::info!(domain, mx = %c.host, rule = c.rule, "partner reached over STARTTLS under its policy");
                        return results;
                    }
                    Err(Outcome::Temporary(e)) => {
                        log_failure(&domain, &c.host, c.rule, &e);
                        reasons.push(format!("{} [{addr}] ({}): {e}", c.host, c.rule));
                    }
                    Err(o) => return crate::relay::all(recipients, o),
                }
            }
        }
        crate::relay::all(
            recipients,
            Outcome::Temporary(format!(
                "4.7.5 {domain}: no MX host could be used with verified TLS (tls = \"{}\"): {}",
                policy.as_str(),
                if reasons.is_empty() {
                    "no MX host".to_string()
                } else {
                    reasons.join("; ")
                }
            )),
        )
    }

    /// The hosts to try, in order, each with its verified TLS; and why the others are out.
    async fn plan(
        &self,
        resolver: &Resolver,
        domain: &str,
        policy: PartnerTls,
        override_hop: Option<&str>,
    ) -> Result<Plan, Outcome> {
        let temp = |why: String| {
            Outcome::Temporary(format!(
                "4.4.3 {domain}: {why} (tls = \"{}\")",
                policy.as_str()
            ))
        };
        let (hosts, mx_secure, port) = match override_hop {
            Some(hop) => {
                let (h, p) = hop
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                    .ok_or_else(|| temp(format!("next_hop {hop:?} is not host:port")))?;
                // A configured host is as trustworthy as the configuration.
                (
                    vec![h.trim_matches(['[', ']']).to_ascii_lowercase()],
                    true,
                    p,
                )
            }
            None => {
                let a = resolver
                    .query(domain, RecordType::MX)
                    .await
                    .map_err(|e| temp(format!("MX lookup failed: {e}")))?;
                if a.rcode == ResponseCode::NXDomain {
                    return Err(temp("the domain does not exist (NXDOMAIN)".into()));
                }
                let mut mx: Vec<(u16, String)> = a
                    .data(RecordType::MX)
                    .filter_map(|d| match d {
                        RData::MX(m) => Some((m.preference, host_name(&m.exchange.to_ascii()))),
                        _ => None,
                    })
                    .collect();
                // RFC 7505: a single MX of "." says the domain takes no mail.
                if let [(_, only)] = mx.as_slice()
                    && only.is_empty()
                {
                    return Err(Outcome::Permanent(format!(
                        "556 5.1.10 {domain} publishes a null MX: it accepts no mail"
                    )));
                }
                mx.sort();
                let mut hosts: Vec<String> = mx.into_iter().map(|(_, h)| h).collect();
                hosts.retain(|h| !h.is_empty());
                hosts.dedup();
                if hosts.is_empty() {
                    // RFC 5321 §5.1: no MX records, the domain itself is the host.
                    hosts.push(domain.to_owned());
                }
                (hosts, a.authenticated, SMTP_PORT)
            }
        };
        let mut plan = Plan {
            hosts: Vec::new(),
            failures: Vec::new(),
        };
        let mut sts: Option<Lookup> = None;
        for host in hosts {
            let mut why_not_dane = None;
            if matches!(policy, PartnerTls::Dane | PartnerTls::DaneOrMtaSts) {
                match dane_for(resolver, &host, port, mx_secure).await {
                    DaneState::Usable(records) => {
                        let base = format!("_{port}._tcp.{host}");
                        match (
                            dane::client_config(base, records),
                            ServerName::try_from(host.clone()),
                        ) {
                            (Ok(cfg), Ok(name)) => plan.hosts.push(Candidate {
                                host: host.clone(),
                                port,
                                rule: "DANE",
                                tls: NextHopTls {
                                    connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
                                    name,
                                },
                            }),
                            _ => plan
                                .failures
                                .push(format!("{host} (DANE): not a usable host name")),
                        }
                        continue;
                    }
                    DaneState::Failed(e) => {
                        log_failure(domain, &host, "DANE", &e);
                        plan.failures.push(format!("{host} (DANE): {e}"));
                        continue;
                    }
                    DaneState::Unusable(why) => why_not_dane = Some(why),
                }
            }
            if policy == PartnerTls::Dane {
                let why = why_not_dane.unwrap_or_default();
                log_failure(domain, &host, "DANE", &why);
                plan.failures.push(format!("{host} (DANE): {why}"));
                continue;
            }
            if sts.is_none() {
                sts = Some(self.sts_policy(resolver, domain).await);
            }
            let prefix = why_not_dane
                .map(|w| format!("DANE not usable ({w}); "))
                .unwrap_or_default();
            let name = match ServerName::try_from(host.clone()) {
                Ok(n) => n,
                Err(_) => {
                    plan.failures
                        .push(format!("{host} (MTA-STS): not a usable host name"));
                    continue;
                }
            };
            match &sts {
                Some(Lookup::Found(p)) if p.mode == mta_sts::Mode::Enforce => {
                    if p.allows(&host) {
                        plan.hosts.push(Candidate {
                            host: host.clone(),
                            port,
                            rule: "MTA-STS enforce",
                            tls: NextHopTls {
                                connector: tokio_rustls::TlsConnector::from(self.webpki.clone()),
                                name,
                            },
                        });
                    } else {
                        let why = format!(
                            "{prefix}the MX host is not among the MTA-STS policy's mx patterns ({})",
                            p.mx.join(", ")
                        );
                        log_failure(domain, &host, "MTA-STS enforce", &why);
                        plan.failures
                            .push(format!("{host} (MTA-STS enforce): {why}"));
                    }
                }
                Some(Lookup::Found(p)) if p.mode == mta_sts::Mode::Testing => {
                    if !p.allows(&host) {
                        tracing::warn!(
                            domain,
                            mx = %host,
                            rule = "MTA-STS testing",
                            "MX host not among the policy's mx patterns; delivering anyway (testing mode)"
                        );
                    }
                    plan.hosts.push(Candidate {
                        host: host.clone(),
                        port,
                        rule: "MTA-STS testing",
                        tls: NextHopTls {
                            connector: tokio_rustls::TlsConnector::from(self.testing.clone()),
                            name,
                        },
                    });
                }
                Some(Lookup::Found(_)) => {
                    let why = format!("{prefix}the MTA-STS policy's mode is none");
                    log_failure(domain, &host, "MTA-STS", &why);
                    plan.failures.push(format!("{host} (MTA-STS): {why}"));
                }
                Some(Lookup::Missing(e)) => {
                    let why = format!("{prefix}no MTA-STS policy: {e}");
                    log_failure(domain, &host, "MTA-STS", &why);
                    plan.failures.push(format!("{host} (MTA-STS): {why}"));
                }
                None => {}
            }
        }
        Ok(plan)
    }

    async fn sts_policy(&self, resolver: &Resolver, domain: &str) -> Lookup {
        let txt = resolver
            .query(&format!("_mta-sts.{domain}"), RecordType::TXT)
            .await
            .map_err(|e| e.to_string())
            .map(|a| {
                a.data(RecordType::TXT)
                    .filter_map(|d| match d {
                        RData::TXT(t) => Some(
                            t.txt_data
                                .iter()
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            });
        let host = format!("mta-sts.{domain}");
        self.sts
            .policy(domain, txt, async || addresses(resolver, &host, 443).await)
            .await
    }
}

struct Plan {
    hosts: Vec<Candidate>,
    failures: Vec<String>,
}

struct Candidate {
    host: String,
    port: u16,
    rule: &'static str,
    tls: NextHopTls,
}

enum DaneState {
    /// Authenticated, usable records: the host is held to them.
    Usable(Vec<Tlsa>),
    /// DANE does not apply (why); another rule may.
    Unusable(String),
    /// The lookup failed: the host must not be used this time.
    Failed(String),
}

async fn dane_for(resolver: &Resolver, host: &str, port: u16, mx_secure: bool) -> DaneState {
    if !mx_secure {
        return DaneState::Unusable("the MX answer is not DNSSEC-authenticated".into());
    }
    let name = format!("_{port}._tcp.{host}");
    match resolver.query(&name, RecordType::TLSA).await {
        Err(e) => DaneState::Failed(format!("TLSA lookup failed: {e}")),
        Ok(a) => classify_tlsa(&name, &a),
    }
}

/// The DANE state of a TLSA answer (pure: the tests feed it answers).
fn classify_tlsa(name: &str, a: &Answer) -> DaneState {
    let records: Vec<Tlsa> = a
        .data(RecordType::TLSA)
        .filter_map(|d| match d {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage),
                selector: u8::from(t.selector),
                matching: u8::from(t.matching),
                data: t.cert_data.clone(),
            }),
            _ => None,
        })
        .collect();
    if !a.authenticated {
        return DaneState::Unusable(format!(
            "the {name} TLSA answer is not DNSSEC-authenticated (no AD flag)"
        ));
    }
    if records.is_empty() {
        return DaneState::Unusable(format!("no TLSA records at {name}"));
    }
    let usable: Vec<Tlsa> = records.iter().filter(|r| r.usable()).cloned().collect();
    if usable.is_empty() {
        return DaneState::Unusable(format!(
            "no usable TLSA record at {name} (published: {})",
            records
                .iter()
                .map(Tlsa::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    DaneState::Usable(usable)
}

/// The addresses of `host` (A, then AAAA) through the resolver, with `port`.
async fn addresses(resolver: &Resolver, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        match resolver.query(host, rtype).await {
            Ok(a) => out.extend(a.data(rtype).filter_map(|d| match d {
                RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
                RData::AAAA(a) => Some(SocketAddr::new(IpAddr::V6(a.0), port)),
                _ => None,
            })),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if out.is_empty() {
        return Err(if errors.is_empty() {
            format!("{host} has no address")
        } else {
            errors.join("; ")
        });
    }
    Ok(out)
}

fn host_name(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

fn log_failure(domain: &str, host: &str, rule: &str, why: &str) {
    tracing::warn!(domain, mx = %host, rule, error = %why, "partner MX host not usable with verified TLS");
}

/// MTA-STS `testing` mode: the WebPKI check is made and a failure logged, then the
/// certificate accepted (RFC 8461 §5: report, deliver). The handshake signature is still
/// verified, by the strict verifier's algorithms.
#[derive(Debug)]
struct Lenient {
    strict: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Err(e) = self.strict.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            tracing::warn!(
                mx = ?server_name,
                rule = "MTA-STS testing",
                error = %e,
                "MX certificate not valid under the WebPKI roots; delivering anyway (testing mode)"
            );
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.strict.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::TLSA;
    use hickory_proto::rr::{Name, Record};

    fn answer(authenticated: bool, records: &[(u8, u8, u8, usize)]) -> Answer {
        Answer {
            rcode: ResponseCode::NoError,
            authenticated,
            records: records
                .iter()
                .map(|&(u, s, m, n)| {
                    Record::from_rdata(
                        Name::from_ascii("_25._tcp.mx.partner.test.").unwrap(),
                        60,
                        RData::TLSA(TLSA::new(u.into(), s.into(), m.into(), vec![7; n])),
                    )
                })
                .collect(),
        }
    }

    fn partner(extra: &str) -> Result<GatewayConfig, String> {
        let c: GatewayConfig = toml::from_str(&format!(
            "inbound = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:25\"\n\
             local_domains = [\"care.example\"]\nqueue_dir = \"q\"\nquarantine_dir = \"q\"\n\
             [[partners]]\ndomain = \"nhs.net\"\n{extra}"
        ))
        .map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn partner_policies_in_the_configuration() {
        for (t, want) in [
            ("dane", PartnerTls::Dane),
            ("mta-sts", PartnerTls::MtaSts),
            ("dane-or-mta-sts", PartnerTls::DaneOrMtaSts),
        ] {
            let c = partner(&format!("tls = \"{t}\"\n")).unwrap();
            assert_eq!(c.partners[0].tls_policy(), Some(want));
            let routes = crate::outbound::partner_routes(&c, None).unwrap();
            assert_eq!(routes[0].policy, Some(want));
            // No override: the MX records decide where the mail goes.
            assert_eq!(routes[0].next_hop, "");
        }
        // The older spelling is "pinned", and still needs its roots.
        let e = partner("require_tls = true\n").unwrap_err();
        assert!(e.contains("partners[0].ca") && e.contains("pinned"), "{e}");
        let e = partner("tls = \"pinned\"\n").unwrap_err();
        assert!(e.contains("partners[0].ca"), "{e}");
        let e = partner("tls = \"dane\"\nca = \"/x.pem\"\n").unwrap_err();
        assert!(e.contains("partners[0].tls") && e.contains("pinned"), "{e}");
        assert!(partner("tls = \"strict\"\n").is_err());
        assert_eq!(partner("").unwrap().partners[0].tls_policy(), None);
    }

    #[test]
    fn tlsa_answers() {
        let n = "_25._tcp.mx.partner.test";
        assert!(matches!(
            classify_tlsa(n, &answer(true, &[(3, 1, 1, 32)])),
            DaneState::Usable(r) if r.len() == 1
        ));
        // Without AD the records are not used, however good they look.
        match classify_tlsa(n, &answer(false, &[(3, 1, 1, 32)])) {
            DaneState::Unusable(w) => assert!(w.contains("AD flag"), "{w}"),
            _ => panic!("an unauthenticated answer was used"),
        }
        match classify_tlsa(n, &answer(true, &[(1, 1, 1, 32), (3, 1, 9, 32)])) {
            DaneState::Unusable(w) => assert!(w.contains("no usable"), "{w}"),
            _ => panic!("unusable records were used"),
        }
        assert!(matches!(
            classify_tlsa(n, &answer(true, &[])),
            DaneState::Unusable(_)
        ));
        // The unusable ones are dropped, the usable kept.
        assert!(matches!(
            classify_tlsa(n, &answer(true, &[(0, 0, 1, 32), (2, 0, 2, 64)])),
            DaneState::Usable(r) if r.len() == 1 && r[0].usage == 2
        ));
    }
}
