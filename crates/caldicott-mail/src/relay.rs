//! Relaying queued messages to the next hop: a small SMTP client, and the delivery worker
//! that retries on a schedule and bounces what cannot be delivered.
//!
//! Partner routes with a DANE or MTA-STS policy are handed to [`crate::tls_policy`], which
//! picks and verifies the MX hosts and then uses this client over verified STARTTLS.
//!
//! The client speaks plain ESMTP (EHLO, falling back to HELO; `BODY=8BITMIME` and `SMTPUTF8`
//! when the message needs them and the next hop offers them). Each recipient gets its own
//! outcome: a `2xx` delivers it, a `4xx` or a network failure leaves it queued for the next
//! attempt, a `5xx` fails it for good (a DSN goes to the sender).
//!
//! The worker keeps only ids and due times in memory; everything else is read from the queue
//! for each attempt, so a restart resumes exactly where the files say.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::dsn::{self, Failed};
use crate::queue::{self, Queue, QueuedEnvelope};

/// How long to wait for a connection or a reply from the next hop.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the reply to the end of the message.
const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);

/// The outcome for one recipient of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later (the reply or the network error).
    Temporary(String),
    /// Never going to work (the `5xx` reply).
    Permanent(String),
}

/// A reply from the next hop: code and the text of its lines.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    fn outcome(&self) -> Outcome {
        let s = format!("{} {}", self.code, self.text);
        match self.code {
            200..=399 => Outcome::Delivered,
            500..=599 => Outcome::Permanent(s),
            _ => Outcome::Temporary(s),
        }
    }
}

async fn read_reply<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<Reply, String> {
    let mut text = Vec::new();
    let mut lines = 0;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(timeout, r.read_line(&mut line))
            .await
            .map_err(|_| "timed out waiting for the next hop".to_string())?
            .map_err(|e| format!("reading from the next hop: {e}"))?;
        if n == 0 {
            return Err("the next hop closed the connection".into());
        }
        lines += 1;
        if line.len() > 2048 || lines > 100 {
            return Err("the next hop's reply is too long".into());
        }
        let l = line.trim_end_matches(['\r', '\n']);
        let code = l
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| "the next hop's reply is not SMTP".to_string())?;
        text.push(l.get(4..).unwrap_or("").to_owned());
        if l.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply {
                code,
                text: text.join(" "),
            });
        }
    }
}

/// One SMTP conversation over any stream.
struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn command(&mut self, line: &str) -> Result<Reply, String> {
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| format!("writing to the next hop: {e}"))?;
        read_reply(&mut self.io, REPLY_TIMEOUT).await
    }
}

/// Dot-stuffs a message and ends it with `CRLF . CRLF`.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// TLS towards the next hop: STARTTLS is required (no fallback to plain text), and the
/// certificate is verified against the configured roots for `name`.
#[derive(Clone)]
pub struct NextHopTls {
    pub connector: tokio_rustls::TlsConnector,
    pub name: rustls::pki_types::ServerName<'static>,
}

/// Sends one message to `next_hop` for `recipients`; returns an outcome per recipient.
pub async fn send(
    next_hop: &str,
    helo: &str,
    tls: Option<&NextHopTls>,
    env: &QueuedEnvelope,
    recipients: &[String],
    message: &[u8],
) -> Vec<(String, Outcome)> {
    match session(next_hop, helo, tls, env, recipients, message).await {
        Ok(r) => r,
        Err(o) => all(recipients, o),
    }
}

pub(crate) fn all(recipients: &[String], o: Outcome) -> Vec<(String, Outcome)> {
    recipients.iter().map(|r| (r.clone(), o.clone())).collect()
}

pub(crate) async fn session(
    next_hop: &str,
    helo: &str,
    tls: Option<&NextHopTls>,
    env: &QueuedEnvelope,
    recipients: &[String],
    message: &[u8],
) -> Result<Vec<(String, Outcome)>, Outcome> {
    let stream = match tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(next_hop)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Outcome::Temporary(format!(
                "connecting to the next hop: {e}"
            )));
        }
        Err(_) => {
            return Err(Outcome::Temporary(
                "connecting to the next hop timed out".into(),
            ));
        }
    };
    let _ = stream.set_nodelay(true);
    let mut c = Client {
        io: BufReader::new(stream),
    };
    ok(read_reply(&mut c.io, REPLY_TIMEOUT).await)?;
    let extensions = c.ehlo(helo).await?;
    let Some(tls) = tls else {
        return Ok(transaction(&mut c, &extensions, env, recipients, message).await);
    };
    if !extensions.contains("STARTTLS") {
        return Err(Outcome::Temporary(
            "4.7.0 the next hop does not offer STARTTLS (required)".into(),
        ));
    }
    ok(c.command("STARTTLS").await)?;
    if !c.io.buffer().is_empty() {
        return Err(Outcome::Temporary(
            "the next hop sent data before the TLS handshake".into(),
        ));
    }
    let tcp = c.io.into_inner();
    let stream = tokio::time::timeout(REPLY_TIMEOUT, tls.connector.connect(tls.name.clone(), tcp))
        .await
        .map_err(|_| Outcome::Temporary("TLS handshake with the next hop timed out".into()))?
        .map_err(|e| Outcome::Temporary(format!("TLS with the next hop: {e}")))?;
    let mut c = Client {
        io: BufReader::new(stream),
    };
    let extensions = c.ehlo(helo).await?;
    Ok(transaction(&mut c, &extensions, env, recipients, message).await)
}

/// A reply that must be positive; otherwise the outcome for every recipient.
fn ok(r: Result<Reply, String>) -> Result<Reply, Outcome> {
    let r = r.map_err(Outcome::Temporary)?;
    match r.outcome() {
        Outcome::Delivered => Ok(r),
        o => Err(o),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// EHLO (HELO if refused); the extension keywords offered.
    async fn ehlo(&mut self, helo: &str) -> Result<HashSet<String>, Outcome> {
        let ehlo = self
            .command(&format!("EHLO {helo}"))
            .await
            .map_err(Outcome::Temporary)?;
        if ehlo.code == 250 {
            return Ok(ehlo
                .text
                .split(' ')
                .map(|w| w.to_ascii_uppercase())
                .collect());
        }
        ok(self.command(&format!("HELO {helo}")).await)?;
        Ok(HashSet::new())
    }
}

/// MAIL, RCPT, DATA after the greeting and EHLO.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
    extensions: &HashSet<String>,
    env: &QueuedEnvelope,
    recipients: &[String],
    message: &[u8],
) -> Vec<(String, Outcome)> {
    macro_rules! step {
        ($e:expr) => {
            match $e {
                Ok(r) => r,
                Err(e) => return all(recipients, Outcome::Temporary(e)),
            }
        };
    }
    macro_rules! expect_ok {
        ($r:expr) => {{
            let r = $r;
            match r.outcome() {
                Outcome::Delivered => r,
                o => return all(recipients, o),
            }
        }};
    }
    let mut mail = format!("MAIL FROM:<{}>", env.mail_from);
    if env.body_8bit && extensions.contains("8BITMIME") {
        mail.push_str(" BODY=8BITMIME");
    }
    if env.smtputf8 {
        if !extensions.contains("SMTPUTF8") {
            return all(
                recipients,
                Outcome::Permanent("553 5.6.7 the next hop does not support SMTPUTF8".into()),
            );
        }
        mail.push_str(" SMTPUTF8");
    }
    expect_ok!(step!(c.command(&mail).await));
    let mut results = Vec::new();
    let mut accepted = Vec::new();
    for r in recipients {
        let reply = step!(c.command(&format!("RCPT TO:<{r}>")).await);
        match reply.outcome() {
            Outcome::Delivered => accepted.push(r.clone()),
            o => results.push((r.clone(), o)),
        }
    }
    if accepted.is_empty() {
        let _ = c.command("QUIT").await;
        return results;
    }
    let data = step!(c.command("DATA").await);
    let final_outcome = if data.code != 354 {
        data.outcome()
    } else {
        let body = dot_stuff(message);
        match c.io.get_mut().write_all(&body).await {
            Err(e) => Outcome::Temporary(format!("writing to the next hop: {e}")),
            Ok(()) => match read_reply(&mut c.io, DATA_END_TIMEOUT).await {
                Ok(r) => r.outcome(),
                Err(e) => Outcome::Temporary(e),
            },
        }
    };
    if !matches!(final_outcome, Outcome::Temporary(_)) {
        let _ = c.command("QUIT").await;
    }
    results.extend(accepted.into_iter().map(|r| (r, final_outcome.clone())));
    results
}

impl std::fmt::Debug for NextHopTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NextHopTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The delivery worker's settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub hostname: String,
    pub next_hop: String,
    pub retry_schedule: Vec<Duration>,
    pub max_age: Duration,
    pub concurrency: usize,
    pub tls: Option<NextHopTls>,
    /// Partner domains with their own next hop or required TLS ([`crate::outbound`]).
    pub routes: Vec<crate::outbound::Route>,
    /// Delivers the routes of partners with DANE or MTA-STS ([`crate::tls_policy`]); `None`
    /// when no partner has such a policy.
    pub partner_tls: Option<Arc<crate::tls_policy::Engine>>,
}

/// How often the worker looks for queue files it was not told about (messages released
/// from quarantine by `caldicott mail quarantine release`, another process).
const RESCAN: Duration = Duration::from_secs(2);

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Runs forever: delivers what is due, sleeping until the next due time or until the server
/// announces a newly queued id on `new_ids`.
pub async fn run_delivery(
    queue: Arc<Queue>,
    config: Arc<DeliveryConfig>,
    new_ids: mpsc::UnboundedSender<String>,
    mut incoming: mpsc::UnboundedReceiver<String>,
) {
    // Due time by id, for the messages not being attempted right now.
    let mut due: BTreeMap<String, i64> = BTreeMap::new();
    {
        let q = queue.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let ids = q.list()?;
            let mut out = Vec::new();
            for id in ids {
                match q.load(&id) {
                    Ok((env, _)) => out.push((id, q.state(&env).next_attempt_ms)),
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable queue file set aside");
                        let _ = q.set_aside(&id);
                    }
                }
            }
            Ok::<_, queue::QueueError>(out)
        })
        .await;
        match listed {
            Ok(Ok(list)) => {
                tracing::info!(messages = list.len(), "mail queue loaded");
                due.extend(list);
            }
            Ok(Err(e)) => tracing::error!(error = %e, "reading the mail queue"),
            Err(e) => tracing::error!(error = %e, "reading the mail queue"),
        }
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Option<i64>)>();
    let mut in_flight: HashSet<String> = HashSet::new();
    loop {
        let now = now_ms();
        let ready: Vec<String> = due
            .iter()
            .filter(|&(_, &t)| t <= now)
            .map(|(id, _)| id.clone())
            .take(config.concurrency.saturating_sub(in_flight.len()))
            .collect();
        for id in ready {
            due.remove(&id);
            in_flight.insert(id.clone());
            let (q, c, tx, new_ids) = (
                queue.clone(),
                config.clone(),
                done_tx.clone(),
                new_ids.clone(),
            );
            tokio::spawn(async move {
                let next = attempt(&q, &c, &id, &new_ids).await;
                let _ = tx.send((id, next));
            });
        }
        let next_due = if in_flight.len() < config.concurrency {
            due.values().min().copied()
        } else {
            None
        };
        let sleep = match next_due {
            Some(t) => Duration::from_millis((t - now_ms()).clamp(0, 3_600_000) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            id = incoming.recv() => match id {
                Some(id) => { if !in_flight.contains(&id) { due.insert(id, 0); } }
                None => return,
            },
            Some((id, next)) = done_rx.recv() => {
                in_flight.remove(&id);
                if let Some(t) = next { due.insert(id, t); }
            }
            _ = tokio::time::sleep(sleep.min(RESCAN)) => {
                let q = queue.clone();
                if let Ok(Ok(ids)) = tokio::task::spawn_blocking(move || q.list()).await {
                    for id in ids {
                        if !in_flight.contains(&id) && !due.contains_key(&id) {
                            due.insert(id, 0);
                        }
                    }
                }
            }
        }
    }
}

/// One delivery attempt of one queued message. Returns the next due time, or `None` when the
/// message is finished (delivered, bounced, or unreadable and set aside).
async fn attempt(
    queue: &Arc<Queue>,
    config: &DeliveryConfig,
    id: &str,
    new_ids: &mpsc::UnboundedSender<String>,
) -> Option<i64> {
    let q = queue.clone();
    let idc = id.to_owned();
    let loaded = tokio::task::spawn_blocking(move || {
        q.load(&idc).map(|(env, raw)| {
            let st = q.state(&env);
            (env, raw, st)
        })
    })
    .await;
    let (env, raw, mut state) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::error!(queue_id = id, error = %e, "unreadable queue file set aside");
            let q = queue.clone();
            let idc = id.to_owned();
            let _ = tokio::task::spawn_blocking(move || q.set_aside(&idc)).await;
            return None;
        }
        Err(_) => return Some(now_ms() + 60_000),
    };
    let default_route = crate::outbound::Route {
        domain: None,
        next_hop: config.next_hop.clone(),
        tls: config.tls.clone(),
        policy: None,
    };
    let mut results = Vec::new();
    for (route, rcpts) in crate::outbound::split(&config.routes, &default_route, &state.pending) {
        if route.policy.is_some() {
            // DANE or MTA-STS: the engine finds and verifies the hosts; never plain text.
            results.extend(match &config.partner_tls {
                Some(engine) => {
                    engine
                        .deliver(route, &config.hostname, &env, &rcpts, &raw)
                        .await
                }
                None => all(
                    &rcpts,
                    Outcome::Temporary(
                        "4.3.5 partner TLS policy engine missing (gateway built without it)".into(),
                    ),
                ),
            });
            continue;
        }
        results.extend(
            send(
                &route.next_hop,
                &config.hostname,
                route.tls.as_ref(),
                &env,
                &rcpts,
                &raw,
            )
            .await,
        );
    }
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    let mut last_error = None;
    for (rcpt, outcome) in results {
        match outcome {
            Outcome::Delivered => {
                tracing::info!(queue_id = id, "delivered to the next hop");
            }
            Outcome::Temporary(e) => {
                last_error = Some(e);
                pending.push(rcpt);
            }
            Outcome::Permanent(e) => failed.push(Failed {
                recipient: rcpt,
                diagnostic: e,
            }),
        }
    }
    state.attempts += 1;
    let age_ms = now_ms() - env.received_at * 1000;
    if !pending.is_empty() && age_ms >= config.max_age.as_millis() as i64 {
        let why = last_error.clone().unwrap_or_default();
        for r in pending.drain(..) {
            failed.push(Failed {
                recipient: r,
                diagnostic: format!("4.4.7 delivery time expired; last error: {why}"),
            });
        }
    }
    if let Some(e) = &last_error {
        tracing::warn!(queue_id = id, attempts = state.attempts, error = %e, "delivery deferred");
    }
    if !failed.is_empty() {
        tracing::warn!(
            queue_id = id,
            recipients = failed.len(),
            "delivery failed for good"
        );
        if !env.mail_from.is_empty() {
            bounce(queue, config, &env, &failed, &raw, new_ids).await;
        }
    }
    let q = queue.clone();
    let idc = id.to_owned();
    if pending.is_empty() {
        let r = tokio::task::spawn_blocking(move || q.remove(&idc)).await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::error!(queue_id = id, "could not remove a finished message");
        }
        return None;
    }
    let wait = queue::retry_delay(&config.retry_schedule, state.attempts);
    let expiry = env.received_at * 1000 + config.max_age.as_millis() as i64;
    state.next_attempt_ms = (now_ms() + wait.as_millis() as i64).min(expiry.max(now_ms()));
    state.pending = pending;
    state.last_error = last_error;
    let next = state.next_attempt_ms;
    let _ = tokio::task::spawn_blocking(move || q.save_state(&idc, &state)).await;
    Some(next)
}

/// Queues a DSN to the sender (with the null sender, so it is never bounced itself).
async fn bounce(
    queue: &Arc<Queue>,
    config: &DeliveryConfig,
    env: &QueuedEnvelope,
    failed: &[Failed],
    raw: &[u8],
    new_ids: &mpsc::UnboundedSender<String>,
) {
    let id = queue::new_id();
    let received =
        OffsetDateTime::from_unix_timestamp(env.received_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let message = dsn::build(
        &config.hostname,
        &id,
        &env.mail_from,
        received,
        failed,
        raw,
        OffsetDateTime::now_utc(),
    );
    let dsn_env = QueuedEnvelope {
        v: 1,
        id: id.clone(),
        mail_from: String::new(),
        rcpt_to: vec![env.mail_from.clone()],
        received_at: OffsetDateTime::now_utc().unix_timestamp(),
        smtputf8: env.mail_from.bytes().any(|b| b >= 0x80),
        body_8bit: true,
    };
    let q = queue.clone();
    match tokio::task::spawn_blocking(move || q.enqueue(&dsn_env, &message)).await {
        Ok(Ok(())) => {
            tracing::info!(queue_id = %id, original = %env.id, "bounce queued");
            let _ = new_ids.send(id);
        }
        _ => tracing::error!(original = %env.id, "could not queue a bounce"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n..c"), b"..a\r\nb\r\n...c\r\n.\r\n");
    }
}
