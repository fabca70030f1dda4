//! The SMTP gateway (`caldicott mail serve`): receives mail over ESMTP, screens it, stores it
//! durably and relays it to the next hop.
//!
//! - [`Gateway::bind`] opens the inbound (MX) listener and, optionally, the submission
//!   listener (AUTH PLAIN/LOGIN, only after STARTTLS, users with Argon2id hashes);
//!   [`Gateway::run`] serves them and runs the delivery worker ([`crate::relay`]).
//! - Each message is screened by a [`Screen`] (the standard one runs the [`Scanner`];
//!   [`crate::auth::AuthScreen`], put outermost with [`Gateway::wrap_screen`], adds SPF,
//!   DKIM, DMARC and ARC and the header fields they produce). The verdict decides: `reject` → `550`
//!   at the end of DATA; `quarantine` → kept by a [`Quarantine`] and answered `250`; `tag`
//!   and `accept` → headers added, written to the [`Queue`] (fsynced) and only then `250`.
//! - Limits (size, recipients, connections in total and per address, commands, messages and
//!   failed logins per address per minute, line length, timeouts) each have a defined reply;
//!   see docs/mail.md.

// Public only for the fuzz target `smtp_parse` and its replay test; not an API.
#[doc(hidden)]
pub mod data;
pub mod headers;
pub mod parse;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use crate::check::Envelope;
use crate::config::{ConfigError, GatewayConfig, GatewayLimits};
use crate::queue::{Queue, QueueError, write_durably};
use crate::relay::{self, DeliveryConfig};
use crate::scanner::Scanner;
use crate::symbols::SCAN_INTERNAL_ERROR;
use crate::verdict::{Report, Symbol, Verdict};

pub use data::DataDecoder;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS ({path}): {why}")]
    Tls { path: PathBuf, why: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("quarantine directory {path}: {source}")]
    Quarantine {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A boxed future, so [`Screen`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Screens one received message. Async, and given the whole envelope (client address, HELO,
/// sender, recipients, authentication), so checks that need the network can be added here
/// without the server changing.
pub trait Screen: Send + Sync {
    fn screen<'a>(&'a self, envelope: &'a Envelope, message: Arc<Vec<u8>>)
    -> BoxFuture<'a, Report>;

    /// Screens and says what to add to the message: the session calls this one. The default
    /// adds nothing; [`crate::auth::AuthScreen`] adds `Authentication-Results:` (inbound)
    /// or `DKIM-Signature:` (submission).
    fn screen_with_additions<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: Arc<Vec<u8>>,
    ) -> BoxFuture<'a, (Report, Additions)> {
        Box::pin(async move { (self.screen(envelope, message).await, Additions::default()) })
    }
}

/// Header fields a [`Screen`] adds to a message it does not reject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Additions {
    /// Complete fields, each CRLF-terminated, put at the top of the message.
    pub fields: String,
    /// `Authentication-Results:` fields with this authserv-id are removed from what the
    /// client sent (only the gateway may speak for itself, RFC 8601 §5).
    pub remove_auth_results_of: Option<String>,
}

impl Additions {
    /// The message with the fields removed and added.
    pub fn apply(&self, message: Vec<u8>) -> Vec<u8> {
        let message = match &self.remove_auth_results_of {
            Some(id) => crate::auth::strip_auth_results(&message, id),
            None => message,
        };
        if self.fields.is_empty() {
            return message;
        }
        let mut out = Vec::with_capacity(self.fields.len() + message.len());
        out.extend_from_slice(self.fields.as_bytes());
        out.extend_from_slice(&message);
        out
    }
}

/// The standard screen: the [`Scanner`], on tokio's blocking pool (scanning is CPU work).
pub struct ScannerScreen(pub Arc<Scanner>);

impl Screen for ScannerScreen {
    fn screen<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: Arc<Vec<u8>>,
    ) -> BoxFuture<'a, Report> {
        let scanner = self.0.clone();
        let env = envelope.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || scanner.scan_with(&message, Some(&env))).await
            {
                Ok(r) => r,
                // The scanner catches its own panics; should the task still fail, the message
                // is held for a person rather than passed unscreened.
                Err(_) => Report {
                    verdict: Verdict::Quarantine,
                    score: 0.0,
                    symbols: vec![Symbol {
                        name: SCAN_INTERNAL_ERROR,
                        score: 0.0,
                        reason: "screening task failed".into(),
                        min_verdict: Verdict::Quarantine,
                    }],
                },
            }
        })
    }
}

/// Where quarantined messages go: [`crate::quarantine::VaultQuarantine`] (sealed in the
/// vault) in production, [`FsQuarantine`] for tests. `store` blocks; it must be durable when it
/// returns, as the client is then told `250`.
pub trait Quarantine: Send + Sync {
    fn store(
        &self,
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        report: &Report,
    ) -> std::io::Result<()>;
}

/// A plain, unencrypted directory (for tests and trials; production uses the vault):
/// `<id>.eml` (the message with the gateway's headers) and `<id>.json`
/// (envelope and report), each written to a temporary name, fsynced and renamed.
#[derive(Debug, Clone)]
pub struct FsQuarantine {
    dir: PathBuf,
}

impl FsQuarantine {
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join(".tmp"))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }
}

impl Quarantine for FsQuarantine {
    fn store(
        &self,
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        report: &Report,
    ) -> std::io::Result<()> {
        let meta = serde_json::json!({
            "id": id,
            "client_ip": envelope.client_ip.map(|i| i.to_string()),
            "helo": envelope.helo,
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_to,
            "authenticated": envelope.authenticated,
            "report": report,
        });
        let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(".tmp");
        // The message first: a `.json` always has its `.eml`.
        write_durably(
            &tmp.join(format!("{id}.eml")),
            &self.dir.join(format!("{id}.eml")),
            &[message],
        )?;
        write_durably(
            &tmp.join(format!("{id}.json")),
            &self.dir.join(format!("{id}.json")),
            &[&json],
        )
    }
}

/// Per-address counters: open connections, and commands, messages and failed logins in the
/// current minute.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    by_ip: Mutex<HashMap<IpAddr, Counters>>,
}

#[derive(Debug)]
struct Counters {
    window: Instant,
    connections: usize,
    commands: u32,
    messages: u32,
    auth_failures: u32,
}

#[derive(Clone, Copy)]
pub(crate) enum Counted {
    Command,
    Message,
    AuthFailure,
}

impl Throttle {
    fn with<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Counters) -> T) -> T {
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, c| c.connections > 0 || c.window.elapsed() < Duration::from_secs(60));
        }
        let c = map.entry(ip).or_insert_with(|| Counters {
            window: Instant::now(),
            connections: 0,
            commands: 0,
            messages: 0,
            auth_failures: 0,
        });
        if c.window.elapsed() >= Duration::from_secs(60) {
            c.window = Instant::now();
            c.commands = 0;
            c.messages = 0;
            c.auth_failures = 0;
        }
        f(c)
    }

    fn connect(&self, ip: IpAddr, max: usize) -> bool {
        self.with(ip, |c| {
            if c.connections >= max {
                false
            } else {
                c.connections += 1;
                true
            }
        })
    }

    fn disconnect(&self, ip: IpAddr) {
        self.with(ip, |c| c.connections = c.connections.saturating_sub(1));
    }

    /// Counts one event; false when the minute's allowance was already used.
    pub(crate) fn count(&self, ip: IpAddr, what: Counted, max: u32) -> bool {
        self.with(ip, |c| {
            let n = match what {
                Counted::Command => &mut c.commands,
                Counted::Message => &mut c.messages,
                Counted::AuthFailure => &mut c.auth_failures,
            };
            *n = n.saturating_add(1);
            *n <= max
        })
    }

    /// True when the address has used up its failed logins for the minute.
    pub(crate) fn auth_blocked(&self, ip: IpAddr, max: u32) -> bool {
        self.with(ip, |c| c.auth_failures >= max)
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    Inbound,
    Submission,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub hostname: String,
    pub limits: GatewayLimits,
    pub data_timeout: Duration,
    pub idle_timeout: Duration,
    pub local_domains: Vec<String>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// User name → Argon2id PHC string.
    pub users: HashMap<String, String>,
    /// User name → the addresses the account may send as.
    pub send_as: HashMap<String, crate::sendas::SendAs>,
    /// A hash of a random password, checked for unknown users so that they take as long.
    pub dummy_hash: String,
    pub screen: Arc<dyn Screen>,
    pub quarantine: Arc<dyn Quarantine>,
    pub queue: Arc<Queue>,
    pub new_ids: mpsc::UnboundedSender<String>,
    pub throttle: Throttle,
    pub connections: Arc<Semaphore>,
}

/// Hashes a submission password as an Argon2id PHC string (the crate's default parameters:
/// 19 MiB, 2 passes, 1 lane — OWASP's minimum), for `[[gateway.users]] password_hash`.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A bound, ready gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    inbound: TcpListener,
    submission: Option<TcpListener>,
    delivery: Arc<DeliveryConfig>,
    incoming: mpsc::UnboundedReceiver<String>,
    /// The configuration, for [`Gateway::with_dns`].
    partners: GatewayConfig,
}

fn load_tls(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, GatewayError> {
    let bad = |path: &Path, why: String| GatewayError::Tls {
        path: path.to_owned(),
        why,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| bad(cert, e.to_string()))?;
    let key_pem = std::fs::read(key).map_err(|e| bad(key, e.to_string()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate in the file".into()));
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| bad(key, e.to_string()))?
        .ok_or_else(|| bad(key, "no private key in the file".into()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(key, e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn load_next_hop_tls(config: &GatewayConfig) -> Result<Option<relay::NextHopTls>, GatewayError> {
    if !config.next_hop_starttls {
        return Ok(None);
    }
    let Some(ca) = &config.next_hop_ca else {
        return Ok(None);
    };
    let host = config
        .next_hop_tls_name
        .clone()
        .or_else(|| {
            config
                .next_hop
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
        })
        .unwrap_or_default();
    crate::outbound::pinned_tls("next_hop_tls_name", ca, &host).map(Some)
}

async fn bind(key: &'static str, addr: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind {
            key,
            addr: addr.to_owned(),
            source,
        })
}

impl Gateway {
    /// Validates the configuration, opens the queue and quarantine, loads the TLS files and
    /// binds the listeners.
    pub async fn bind(
        config: &GatewayConfig,
        screen: Arc<dyn Screen>,
        quarantine: Arc<dyn Quarantine>,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        // Submitted mail always passes the outbound data-loss check, whatever screen is given.
        let screen: Arc<dyn Screen> =
            Arc::new(crate::outbound::OutboundScreen::new(screen, config)?);
        let tls = match &config.tls {
            Some(t) => Some(load_tls(&t.cert, &t.key)?),
            None => None,
        };
        let queue = {
            let dir = config.queue_dir.clone();
            tokio::task::spawn_blocking(move || Queue::open(&dir))
                .await
                .map_err(|e| {
                    GatewayError::Queue(QueueError::Io {
                        path: config.queue_dir.clone(),
                        source: std::io::Error::other(e),
                    })
                })??
        };
        let dummy_hash = hash_password(&rand::random::<[u8; 16]>()).unwrap_or_default();
        let (new_ids, incoming) = mpsc::unbounded_channel();
        let inbound = bind("gateway.inbound", &config.inbound).await?;
        let submission = match &config.submission {
            Some(a) => Some(bind("gateway.submission", a).await?),
            None => None,
        };
        let shared = Arc::new(Shared {
            hostname: config.hostname.clone(),
            limits: config.limits.clone(),
            data_timeout: config.data_timeout()?,
            idle_timeout: config.idle_timeout()?,
            local_domains: config
                .local_domains
                .iter()
                .map(|d| d.to_lowercase())
                .collect(),
            tls,
            users: config
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone()))
                .collect(),
            send_as: config
                .users
                .iter()
                .map(|u| {
                    (
                        u.name.clone(),
                        crate::sendas::SendAs::new(&u.name, &u.send_as),
                    )
                })
                .collect(),
            dummy_hash,
            screen,
            quarantine,
            queue: Arc::new(queue),
            new_ids,
            throttle: Throttle::default(),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        });
        let default_tls = load_next_hop_tls(config)?;
        let delivery = Arc::new(DeliveryConfig {
            hostname: config.hostname.clone(),
            next_hop: config.next_hop.clone(),
            retry_schedule: config.retry_delays()?,
            max_age: config.max_age()?,
            concurrency: config.delivery_concurrency,
            tls: default_tls.clone(),
            routes: crate::outbound::partner_routes(config, default_tls.as_ref())?,
            // Without a resolver until `with_dns` gives one (`crate::tls_policy`).
            partner_tls: crate::tls_policy::Engine::for_gateway(config, None)?,
        });
        let partners = config.clone();
        Ok(Self {
            shared,
            inbound,
            submission,
            delivery,
            incoming,
            partners,
        })
    }

    /// Gives the partner TLS policies (DANE, MTA-STS: `crate::tls_policy`) the `[dns]`
    /// resolver they look MX, TLSA and policy records up with. Without it, mail to such
    /// partners waits in the queue with a `4xx` saying so.
    pub fn with_dns(mut self, dns: Option<&crate::dns::DnsConfig>) -> Result<Self, GatewayError> {
        let engine = crate::tls_policy::Engine::for_gateway(&self.partners, dns)?;
        if engine.is_some() && dns.is_none() {
            tracing::warn!(
                "no [dns] resolver: mail to partners with tls = \"dane\" or \"mta-sts\" will wait in the queue"
            );
        }
        match Arc::get_mut(&mut self.delivery) {
            Some(d) => d.partner_tls = engine,
            None => tracing::error!("with_dns after the gateway started: ignored"),
        }
        Ok(self)
    }

    /// Wraps the whole screen, outbound check included, in another: the outermost screen's
    /// [`Screen::screen_with_additions`] is what adds header fields, so sender authentication
    /// ([`crate::auth::AuthScreen`]) goes here rather than into `bind`'s `screen`.
    pub fn wrap_screen(mut self, wrap: impl FnOnce(Arc<dyn Screen>) -> Arc<dyn Screen>) -> Self {
        // `bind` made the only reference; `run` clones it later.
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.screen = wrap(shared.screen.clone()),
            None => tracing::error!("wrap_screen after the gateway started: ignored"),
        }
        self
    }

    /// The inbound listener's address (useful with port 0).
    pub fn inbound_addr(&self) -> std::io::Result<SocketAddr> {
        self.inbound.local_addr()
    }

    /// The submission listener's address, if there is one.
    pub fn submission_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.submission.as_ref().map(|l| l.local_addr())
    }

    /// Serves until the task is dropped or the runtime shuts down. Nothing needs flushing on
    /// the way out: every acknowledged message is already on disk.
    pub async fn run(self) {
        let Gateway {
            shared,
            inbound,
            submission,
            delivery,
            incoming,
            ..
        } = self;
        let worker = tokio::spawn(relay::run_delivery(
            shared.queue.clone(),
            delivery,
            shared.new_ids.clone(),
            incoming,
        ));
        let inb = tokio::spawn(accept_loop(inbound, Port::Inbound, shared.clone()));
        let sub =
            submission.map(|l| tokio::spawn(accept_loop(l, Port::Submission, shared.clone())));
        let _ = inb.await;
        if let Some(s) = sub {
            let _ = s.await;
        }
        let _ = worker.await;
    }
}

/// One open connection of an address, counted while it lives.
struct Slot<'a>(&'a Throttle, IpAddr);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.disconnect(self.1);
    }
}

async fn accept_loop(listener: TcpListener, port: Port, shared: Arc<Shared>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accepting an SMTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let ip = peer.ip();
            let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                session::refuse(tcp, "421 4.7.0 Too many connections, try again later").await;
                return;
            };
            if !shared
                .throttle
                .connect(ip, shared.limits.max_connections_per_ip)
            {
                session::refuse(
                    tcp,
                    "421 4.7.0 Too many connections from your address, try again later",
                )
                .await;
                return;
            }
            // Released however the session ends (a panic included).
            let _slot = Slot(&shared.throttle, ip);
            session::handle(tcp, ip, port, &shared).await;
            drop(permit);
        });
    }
}
