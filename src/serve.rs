//! `caldicott serve` and `caldicott demo`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use caldicott_server::{HealthCheck, ServeConfig, Transport};
use caldicott_vault::Vault;

use crate::datadir::DataDir;

/// Options of `serve` that override the configuration.
pub struct ServeOptions {
    pub listen: Option<String>,
    pub plain_http: bool,
}

/// /healthz asks the database a trivial question through the vault's backend.
struct VaultHealth(Arc<Vault>);

impl HealthCheck for VaultHealth {
    fn check(&self) -> Result<(), String> {
        // The reason is shown to clients: keep it generic, never an identifier.
        self.0
            .backend()
            .meta("deployment.organisation")
            .map(|_| ())
            .map_err(|_| "database unavailable".to_string())
    }
}

/// Runs the server until Ctrl-C or SIGTERM. `on_bound` receives the address actually bound.
pub fn serve(
    dir: &DataDir,
    opts: ServeOptions,
    on_bound: impl FnOnce(SocketAddr) + Send,
) -> anyhow::Result<()> {
    let vault = Arc::new(dir.open_vault()?);
    crate::reindex::ensure_current(&vault)?;
    let listen = opts.listen.unwrap_or_else(|| dir.config.listen.clone());
    let listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an address such as 127.0.0.1:8443"))?;
    let transport = if opts.plain_http {
        Transport::PlainHttp
    } else {
        Transport::Tls {
            cert_pem: dir.config.resolve(&dir.path, &dir.config.tls.cert),
            key_pem: dir.config.resolve(&dir.path, &dir.config.tls.key),
        }
    };
    let scheme = if opts.plain_http { "http" } else { "https" };
    let mut cfg = ServeConfig::new(listen, transport);
    cfg.max_body_bytes = dir.config.max_body_bytes;
    let default_org = caldicott_core::OdsCode::parse(&dir.config.organisation)
        .with_context(|| "the configuration's organisation is not an ODS code")?;
    let ledger = crate::ledger_local::open(dir, Arc::clone(&vault))?;
    let audit: Arc<dyn caldicott_api::audit::AuditSink> =
        Arc::new(caldicott_api::audit::LedgerSink(Arc::clone(&ledger)));
    let api = caldicott_api::FhirApi {
        store: Arc::new(caldicott_api::Store::new(Arc::clone(&vault), default_org)),
        directory: Arc::new(caldicott_access::Directory::new(Arc::clone(&vault))),
        audit: Arc::clone(&audit),
        ledger: Some(Arc::clone(&ledger)),
        exports: Arc::new(
            caldicott_api::Exports::new(dir.path.join("exports"))
                .context("cannot prepare the export directory")?,
        ),
        config: caldicott_api::ApiConfig {
            public_base: dir.config.public_url.clone(),
            scheme,
            max_body_bytes: dir.config.max_body_bytes,
        },
    };
    // Sign-in, sessions and administration record to the same audit sink as the FHIR API.
    let auth = caldicott_api::auth::AuthState::new(
        Arc::clone(&api.directory),
        Arc::clone(&api.audit),
        &api.config,
    );
    let admin = caldicott_api::admin::AdminState {
        directory: Arc::clone(&api.directory),
        audit: Arc::clone(&api.audit),
    };
    let agreements = caldicott_api::agreements::AgreementsState {
        directory: Arc::clone(&api.directory),
        book: caldicott_share::Book::new(Arc::clone(&vault)),
        audit: Arc::clone(&api.audit),
    };
    let transparency = caldicott_api::auditlog::StoredLedger {
        ledger: Arc::clone(&ledger),
        directory: Arc::clone(&api.directory),
        audit: Arc::clone(&audit),
    };
    let console = caldicott_console::ConsoleState::new(
        Arc::clone(&vault),
        Arc::clone(&api.store),
        Arc::clone(&api.directory),
        Arc::clone(&api.audit),
        Some(Arc::clone(&ledger)),
        &api.config,
    );
    cfg.extra_router = Some(
        caldicott_console::router(Arc::new(console))
            .merge(caldicott_api::router(Arc::new(api)))
            .merge(caldicott_api::ledger::router(Arc::new(transparency)))
            .merge(caldicott_api::auth::router(Arc::new(auth)))
            .merge(caldicott_api::admin::router(Arc::new(admin)))
            .merge(caldicott_api::agreements::router(Arc::new(agreements))),
    );
    caldicott_server::validate(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reencrypt = spawn_reencryption(Arc::clone(&vault), Arc::clone(&stop));
    let publisher = spawn_checkpoints(Arc::clone(&ledger), Arc::clone(&stop));
    let verifier = spawn_verification(Arc::clone(&ledger), Arc::clone(&stop));
    let health: Arc<dyn HealthCheck> = Arc::new(VaultHealth(Arc::clone(&vault)));
    let result = rt.block_on(caldicott_server::serve(
        cfg,
        health,
        on_bound,
        caldicott_server::shutdown_signal(),
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reencrypt.join();
    let _ = publisher.join();
    let _ = verifier.join();
    // A last checkpoint, so what was appended before the stop is covered.
    if let Err(e) = ledger.publish() {
        tracing::warn!(error = %e, "cannot publish the final audit checkpoint");
    }
    result.map_err(Into::into)
}

/// How often the running server verifies the whole audit ledger.
const VERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How long after the start the first verification runs (so that start-up is not slowed).
const FIRST_VERIFY_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Verifies the whole audit ledger shortly after the start and then daily, and records each
/// outcome (the console's home page shows the last one). A ledger found damaged raises an
/// alert in the log.
fn spawn_verification(
    ledger: Arc<caldicott_vault::Ledger>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut wait = FIRST_VERIFY_AFTER;
        loop {
            let until = std::time::Instant::now() + wait;
            while std::time::Instant::now() < until {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            match crate::ledger_local::verify_and_record(&ledger, &|_| {}) {
                Ok(Ok(r)) => tracing::info!(
                    entries = r.entries,
                    checkpoints = r.checkpoints,
                    "the audit ledger is intact"
                ),
                Ok(Err(e)) => tracing::error!(
                    target: "caldicott::alert",
                    problem = %e,
                    "the audit ledger is NOT intact: investigate at once (caldicott ledger verify)"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot verify the audit ledger; will retry"),
            }
            wait = VERIFY_EVERY;
        }
    })
}

/// Signs a checkpoint of the audit ledger every second while it grows.
fn spawn_checkpoints(
    ledger: Arc<caldicott_vault::Ledger>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Err(e) = ledger.publish() {
                tracing::error!(error = %e, "cannot publish an audit checkpoint; will retry");
            }
            for _ in 0..10 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

/// Background re-encryption after a data-key rotation: small steps, resumable, with
/// progress in the log. Runs while the server serves.
fn spawn_reencryption(
    vault: Arc<Vault>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
        while !stopped() {
            if let Err(e) = reencrypt_pass(&vault, &stopped) {
                tracing::error!(error = %e, "background re-encryption failed; will retry");
            }
            for _ in 0..100 {
                if stopped() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

fn reencrypt_pass(vault: &Vault, stopped: &dyn Fn() -> bool) -> anyhow::Result<()> {
    for status in vault.key_status()? {
        let stale = status.stale();
        if stale == 0 && status.records_per_key.len() <= 1 {
            continue;
        }
        let org = caldicott_core::OdsCode::parse(&status.org)?;
        tracing::info!(org = %status.org, remaining = stale, "re-encrypting records under the new data key");
        let mut done = 0u64;
        while !stopped() {
            let n = vault.reencrypt_step(&org, 500, &caldicott_api::store::indexer)?;
            if n == 0 {
                tracing::info!(org = %status.org, records = done, "re-encryption finished");
                break;
            }
            done += n as u64;
            if done % 10_000 < 500 {
                tracing::info!(org = %status.org, done, remaining = stale.saturating_sub(done), "re-encryption progress");
            }
        }
    }
    Ok(())
}

/// Prints where the server listens and how to reach it.
pub fn announce(addr: SocketAddr, tls: bool, data_dir: &Path) {
    let scheme = if tls { "https" } else { "http" };
    let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    say!("Caldicott is serving at {scheme}://{host}/");
    say!("  health:  {scheme}://{host}/healthz");
    say!("  metrics: {scheme}://{host}/metrics");
    if tls {
        say!(
            "  TLS certificate: {} (self-signed by init; curl --cacert it)",
            data_dir.join("tls/cert.pem").display()
        );
    }
    say!("Press Ctrl-C to stop.");
}
