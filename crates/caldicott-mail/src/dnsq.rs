//! A small DNS stub client for the partner TLS policies ([`crate::tls_policy`]): MX, A/AAAA,
//! TXT and TLSA questions to the `[dns]` nameservers, with the answer's AD
//! (authenticated data) flag.
//!
//! **Why not the sender-authentication resolver.** DANE (RFC 7672) may only use records the
//! resolver has DNSSEC-validated, and hickory's resolver does not report the AD flag of the
//! answer it got. As Postfix does, Caldicott does not validate DNSSEC itself: it asks with
//! the DO bit and the AD bit set (RFC 6840 §5.7) and trusts the AD bit in the reply, which is
//! only sound when the nameserver is a validating resolver the gateway reaches over a
//! trusted path (on the same host, `127.0.0.1`): docs/mail.md says so to the operator.
//!
//! Each server is asked over UDP (EDNS payload 1232), then over TCP when the reply is
//! truncated; a timeout, a network error or SERVFAIL moves on to the next server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::config::ConfigError;
use crate::dns::DnsConfig;

/// Why a question got no usable answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("{name} is not a valid DNS name")]
    BadName { name: String },
    #[error("looking up {rtype} {name}: {why}")]
    Failed {
        name: String,
        rtype: RecordType,
        why: String,
    },
}

/// What the resolver said.
#[derive(Debug, Clone)]
pub struct Answer {
    /// NOERROR or NXDOMAIN (other codes are [`DnsError::Failed`]).
    pub rcode: ResponseCode,
    /// The AD flag: the resolver validated the whole answer (or the denial) with DNSSEC.
    pub authenticated: bool,
    /// The answer section (with any CNAMEs on the way).
    pub records: Vec<Record>,
}

impl Answer {
    /// The record data of the asked type.
    pub fn data(&self, rtype: RecordType) -> impl Iterator<Item = &RData> {
        self.records
            .iter()
            .filter(move |r| r.record_type() == rtype)
            .map(|r| &r.data)
    }
}

/// The stub client over the configured nameservers.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

/// Largest UDP answer we ask for (the DNS flag day 2020 value).
const UDP_PAYLOAD: u16 = 1232;

impl Resolver {
    pub fn new(config: &DnsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            servers: config
                .nameservers
                .iter()
                .filter_map(|s| crate::dns::parse_server(s))
                .collect(),
            timeout: config.timeout_duration()?,
        })
    }

    /// Asks `name` (a host or domain name, without trailing dot or with) for `rtype`.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
        let qname = Name::from_ascii(name)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|_| DnsError::BadName { name: name.into() })?;
        let fail = |why: String| DnsError::Failed {
            name: name.into(),
            rtype,
            why,
        };
        let mut last = String::from("no nameserver configured");
        for server in &self.servers {
            let mut msg = Message::query();
            msg.add_query(Query::query(qname.clone(), rtype));
            msg.metadata.recursion_desired = true;
            // RFC 6840 §5.7: setting AD in a query asks for the AD bit in the reply.
            msg.metadata.authentic_data = true;
            let mut edns = Edns::new();
            edns.set_dnssec_ok(true);
            edns.set_max_payload(UDP_PAYLOAD);
            msg.set_edns(edns);
            let id = msg.metadata.id;
            let wire = msg.to_vec().map_err(|e| fail(e.to_string()))?;
            let reply = match self.exchange(*server, id, &wire).await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{server}: {e}");
                    continue;
                }
            };
            let rcode = reply.metadata.response_code;
            if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
                last = format!("{server} answered {rcode}");
                continue;
            }
            return Ok(Answer {
                rcode,
                authenticated: reply.metadata.authentic_data,
                records: reply.answers,
            });
        }
        Err(fail(last))
    }

    async fn exchange(&self, server: SocketAddr, id: u16, wire: &[u8]) -> Result<Message, String> {
        let local: SocketAddr = match server.ip() {
            IpAddr::V4(_) => "0.0.0.0:0".parse().map_err(|_| "address")?,
            IpAddr::V6(_) => "[::]:0".parse().map_err(|_| "address")?,
        };
        let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
        sock.connect(server).await.map_err(|e| e.to_string())?;
        sock.send(wire).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(UDP_PAYLOAD) * 4];
        let reply = tokio::time::timeout(self.timeout, async {
            loop {
                let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
                // Ignore stray datagrams: only the reply to our id counts.
                if let Ok(m) = Message::from_vec(&buf[..n])
                    && m.metadata.id == id
                {
                    return Ok::<_, String>(m);
                }
            }
        })
        .await
        .map_err(|_| "timed out".to_string())??;
        if !reply.metadata.truncation {
            return Ok(reply);
        }
        self.tcp(server, id, wire).await
    }

    async fn tcp(&self, server: SocketAddr, id: u16, wire: &[u8]) -> Result<Message, String> {
        tokio::time::timeout(self.timeout, async {
            let mut s = TcpStream::connect(server)
                .await
                .map_err(|e| e.to_string())?;
            let len = u16::try_from(wire.len()).map_err(|_| "query too long".to_string())?;
            let mut out = len.to_be_bytes().to_vec();
            out.extend_from_slice(wire);
            s.write_all(&out).await.map_err(|e| e.to_string())?;
            let mut head = [0u8; 2];
            s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(head))];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
            if m.metadata.id != id {
                return Err("reply to another query".to_string());
            }
            Ok(m)
        })
        .await
        .map_err(|_| "timed out over TCP".to_string())?
    }
}
