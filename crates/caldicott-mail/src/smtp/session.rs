//! One SMTP connection: reading lines under limits, the command state machine, STARTTLS,
//! AUTH, DATA, and handing the message to screening and the queue.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::data::DataDecoder;
use super::headers::{self, Trace};
use super::parse::{self, Command};
use super::{Counted, Port, Shared};
use crate::check::Envelope;
use crate::queue::{self, QueuedEnvelope};
use crate::verdict::Verdict;

/// Errors in a row after which a client is disconnected (garbage streams, scanners).
const MAX_ERRORS: u32 = 10;
/// Failed logins after which a connection is closed.
const MAX_AUTH_FAILURES_PER_CONNECTION: u32 = 3;

/// Tells a client it cannot be served now, and closes.
pub(super) async fn refuse(mut tcp: TcpStream, reply: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tcp.write_all(format!("{reply}\r\n").as_bytes()),
    )
    .await;
    let _ = tcp.shutdown().await;
}

enum ReadErr {
    Eof,
    Timeout,
    TooLong,
}

/// A stream with the bytes read ahead of the current line.
struct Conn<S> {
    io: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    async fn fill(&mut self, timeout: Duration) -> Result<(), ReadErr> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 << 10 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 << 10];
        match tokio::time::timeout(timeout, self.io.read(&mut chunk)).await {
            Err(_) => Err(ReadErr::Timeout),
            Ok(Err(_)) | Ok(Ok(0)) => Err(ReadErr::Eof),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// The next line, LF included; a line longer than `max` is discarded up to its LF and
    /// reported as too long (a client streaming far more without a LF is disconnected).
    async fn read_line(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, ReadErr> {
        let mut discarded = 0usize;
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let end = self.pos + i + 1;
                let line = self.buf[self.pos..end].to_vec();
                self.pos = end;
                if discarded > 0 || line.len() > max {
                    return Err(ReadErr::TooLong);
                }
                return Ok(line);
            }
            if self.buffered() > max {
                discarded += self.buffered();
                self.pos = self.buf.len();
                if discarded > max.saturating_mul(16) {
                    return Err(ReadErr::Eof);
                }
            }
            self.fill(timeout).await?;
        }
    }

    async fn reply(&mut self, text: &str) -> bool {
        let mut out = String::with_capacity(text.len() + 2);
        out.push_str(text);
        out.push_str("\r\n");
        let w = async {
            self.io.write_all(out.as_bytes()).await?;
            self.io.flush().await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(60), w).await,
            Ok(Ok(()))
        )
    }
}

struct Transaction {
    from: String,
    rcpts: Vec<String>,
    body_8bit: bool,
    smtputf8: bool,
}

/// What a session knows.
struct Session<'a> {
    shared: &'a Shared,
    ip: IpAddr,
    port: Port,
    tls: bool,
    helo: Option<String>,
    user: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    auth_failures: u32,
}

enum End {
    Close,
    StartTls,
}

/// Serves one connection to the end.
pub(super) async fn handle(tcp: TcpStream, ip: IpAddr, port: Port, shared: &Shared) {
    let mut s = Session {
        shared,
        ip,
        port,
        tls: false,
        helo: None,
        user: None,
        tx: None,
        errors: 0,
        auth_failures: 0,
    };
    let mut conn = Conn::new(tcp);
    if !conn
        .reply(&format!("220 {} ESMTP Caldicott", shared.hostname))
        .await
    {
        return;
    }
    match s.run(&mut conn).await {
        End::Close => {
            let _ = conn.io.shutdown().await;
        }
        End::StartTls => {
            let Some(acceptor) = shared.tls.clone() else {
                return;
            };
            let Ok(Ok(tls)) =
                tokio::time::timeout(shared.idle_timeout, acceptor.accept(conn.io)).await
            else {
                return;
            };
            // RFC 3207: forget everything learnt before TLS.
            s.tls = true;
            s.helo = None;
            s.tx = None;
            let mut conn = Conn::new(tls);
            let _ = s.run(&mut conn).await;
            let _ = conn.io.shutdown().await;
        }
    }
}

impl Session<'_> {
    fn ehlo_lines(&self, name: &str) -> String {
        let l = &self.shared.limits;
        let mut lines = vec![
            format!("{} Hello {name}", self.shared.hostname),
            "PIPELINING".to_string(),
            format!("SIZE {}", l.max_message_bytes),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.shared.tls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.port == Port::Submission && self.tls && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let n = lines.len();
        lines
            .iter()
            .enumerate()
            .map(|(i, t)| format!("250{}{t}", if i + 1 < n { '-' } else { ' ' }))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, conn: &mut Conn<S>) -> End {
        let limits = &self.shared.limits;
        loop {
            if self.errors >= MAX_ERRORS {
                conn.reply("421 4.7.0 Too many errors, closing connection")
                    .await;
                return End::Close;
            }
            let line = match conn
                .read_line(limits.max_line_bytes, self.shared.idle_timeout)
                .await
            {
                Ok(l) => l,
                Err(ReadErr::TooLong) => {
                    self.errors += 1;
                    if !conn.reply("500 5.5.2 Line too long").await {
                        return End::Close;
                    }
                    continue;
                }
                Err(ReadErr::Timeout) => {
                    conn.reply("421 4.4.2 Idle timeout, closing connection")
                        .await;
                    return End::Close;
                }
                Err(ReadErr::Eof) => return End::Close,
            };
            if !self.shared.throttle.count(
                self.ip,
                Counted::Command,
                limits.max_commands_per_minute,
            ) {
                conn.reply("421 4.7.0 Too many commands, try again later")
                    .await;
                return End::Close;
            }
            let cmd = match parse::parse(&line) {
                Ok(c) => c,
                Err(r) => {
                    self.errors += 1;
                    if !conn.reply(&format!("{} {}", r.code, r.text)).await {
                        return End::Close;
                    }
                    continue;
                }
            };
            let reply: String = match cmd {
                Command::Ehlo(name) => {
                    let r = self.ehlo_lines(&name);
                    self.helo = Some(name);
                    self.tx = None;
                    r
                }
                Command::Helo(name) => {
                    self.helo = Some(name);
                    self.tx = None;
                    format!("250 {}", self.shared.hostname)
                }
                Command::Noop => "250 2.0.0 Ok".into(),
                Command::Rset => {
                    self.tx = None;
                    "250 2.0.0 Ok".into()
                }
                Command::Vrfy => "252 2.5.0 Cannot VRFY user".into(),
                Command::Help => "214 2.0.0 See RFC 5321".into(),
                Command::Quit => {
                    conn.reply("221 2.0.0 Bye").await;
                    return End::Close;
                }
                Command::StartTls => {
                    if self.tls {
                        "503 5.5.1 TLS already active".into()
                    } else if self.shared.tls.is_none() {
                        "454 4.7.0 TLS not available".into()
                    } else if conn.buffered() > 0 {
                        // Commands pipelined after STARTTLS would be read as if sent over
                        // TLS (CVE-2011-0411 and kin).
                        conn.reply(
                            "554 5.5.0 Commands sent after STARTTLS before the TLS handshake",
                        )
                        .await;
                        return End::Close;
                    } else {
                        if !conn.reply("220 2.0.0 Ready to start TLS").await {
                            return End::Close;
                        }
                        return End::StartTls;
                    }
                }
                Command::Auth { mechanism, initial } => {
                    match self.auth(conn, &mechanism, initial).await {
                        Some(r) => r,
                        None => return End::Close,
                    }
                }
                Command::Mail {
                    from,
                    size,
                    body_8bit,
                    smtputf8,
                } => self.mail(from, size, body_8bit, smtputf8),
                Command::Rcpt(to) => self.rcpt(to),
                Command::Data => match self.data(conn).await {
                    Some(r) => r,
                    None => return End::Close,
                },
            };
            if reply.starts_with('5') {
                self.errors += 1;
            } else if reply.starts_with('2') {
                self.errors = 0;
            }
            if !conn.reply(&reply).await {
                return End::Close;
            }
        }
    }

    fn mail(&mut self, from: String, size: Option<u64>, body_8bit: bool, smtputf8: bool) -> String {
        let limits = &self.shared.limits;
        if self.helo.is_none() {
            return "503 5.5.1 Send EHLO first".into();
        }
        if self.tx.is_some() {
            return "503 5.5.1 Nested MAIL command".into();
        }
        if self.port == Port::Submission && self.user.is_none() {
            return "530 5.7.0 Authentication required".into();
        }
        if self.port == Port::Submission && !self.may_send_as(&from) {
            tracing::warn!(
                target: "caldicott::security",
                user = self.user.as_deref().unwrap_or(""),
                "submission refused: envelope sender not one the account may send as"
            );
            return "553 5.7.1 This account may not send as that sender address".into();
        }
        if size.is_some_and(|s| s > limits.max_message_bytes as u64) {
            return "552 5.3.4 Message size exceeds fixed maximum message size".into();
        }
        if !from.is_ascii() && !smtputf8 {
            return "553 5.6.7 Non-ASCII address needs SMTPUTF8".into();
        }
        if !self
            .shared
            .throttle
            .count(self.ip, Counted::Message, limits.max_messages_per_minute)
        {
            return "450 4.7.1 Too many messages from your address, try again later".into();
        }
        self.tx = Some(Transaction {
            from,
            rcpts: Vec::new(),
            body_8bit,
            smtputf8,
        });
        "250 2.1.0 Ok".into()
    }

    fn rcpt(&mut self, to: String) -> String {
        let max = self.shared.limits.max_recipients;
        let authenticated = self.user.is_some();
        let local = parse::domain_of(&to).is_some_and(|d| self.shared.local_domains.contains(&d));
        let Some(tx) = &mut self.tx else {
            return "503 5.5.1 Need MAIL command".into();
        };
        if !to.is_ascii() && !tx.smtputf8 {
            return "553 5.6.7 Non-ASCII address needs SMTPUTF8".into();
        }
        if !authenticated && !local {
            return "550 5.7.1 Relaying denied".into();
        }
        if tx.rcpts.iter().any(|r| r.eq_ignore_ascii_case(&to)) {
            return "250 2.1.5 Ok".into();
        }
        if tx.rcpts.len() >= max {
            return "452 4.5.3 Too many recipients".into();
        }
        tx.rcpts.push(to);
        "250 2.1.5 Ok".into()
    }

    /// The DATA phase to the final reply. `None` closes the connection (after a reply).
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> Option<String> {
        match &self.tx {
            None => return Some("503 5.5.1 Need MAIL command".into()),
            Some(t) if t.rcpts.is_empty() => return Some("554 5.5.1 No valid recipients".into()),
            Some(_) => {}
        }
        if conn.buffered() > 0 {
            // RFC 2920: DATA ends a pipelined group; the client must wait for 354.
            conn.reply("554 5.5.0 Message data sent before the 354 reply (improper pipelining)")
                .await;
            return None;
        }
        if !conn.reply("354 End data with <CR><LF>.<CR><LF>").await {
            return None;
        }
        let limits = &self.shared.limits;
        let mut dec = DataDecoder::new(limits.max_message_bytes, limits.max_line_bytes);
        // Past the limit the rest is drained so the client reads a 552, up to a point.
        let drain_cap = (limits.max_message_bytes as u64)
            .saturating_mul(2)
            .max(1 << 20);
        loop {
            if conn.buffered() > 0 {
                let found = dec.feed(&conn.buf[conn.pos..]);
                match found {
                    Some(n) => {
                        conn.pos += n;
                        break;
                    }
                    None => conn.pos = conn.buf.len(),
                }
            }
            if dec.seen > drain_cap {
                conn.reply("552 5.3.4 Message size exceeds fixed maximum message size")
                    .await;
                return None;
            }
            match conn.fill(self.shared.data_timeout).await {
                Ok(()) => {}
                Err(ReadErr::Timeout) => {
                    conn.reply("421 4.4.2 Timeout waiting for message data")
                        .await;
                    return None;
                }
                Err(_) => return None,
            }
        }
        let tx = self.tx.take()?;
        if dec.too_big() {
            return Some("552 5.3.4 Message size exceeds fixed maximum message size".into());
        }
        if dec.bare_lf || dec.bare_cr {
            conn.reply("554 5.6.0 Bare LF or CR in message (only CRLF ends a line)")
                .await;
            return None;
        }
        if dec.nul {
            return Some("554 5.6.0 NUL byte in message".into());
        }
        if dec.long_line {
            return Some("554 5.6.0 Line too long in message".into());
        }
        if self.port == Port::Submission
            && let Err(reply) = self.check_header_from(&dec.message)
        {
            return Some(reply);
        }
        Some(self.deliver(tx, dec.message, dec.eight_bit).await)
    }

    /// Whether the authenticated account may send as `address` (`crate::sendas`).
    fn may_send_as(&self, address: &str) -> bool {
        self.user
            .as_ref()
            .and_then(|u| self.shared.send_as.get(u))
            .is_some_and(|rule| rule.allows(address))
    }

    /// On the submission port, every address in the message's `From:` must be one the
    /// account may send as; the reply to send otherwise.
    fn check_header_from(&self, message: &[u8]) -> Result<(), String> {
        let parsed = mail_parser::MessageParser::new().parse_headers(message);
        let addresses: Vec<String> = parsed
            .as_ref()
            .and_then(|m| m.from())
            .map(|from| {
                from.iter()
                    .map(|a| a.address.as_deref().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if addresses.is_empty() {
            return Err("550 5.6.0 The message has no From: address".into());
        }
        if addresses.iter().all(|a| self.may_send_as(a)) {
            Ok(())
        } else {
            tracing::warn!(
                target: "caldicott::security",
                user = self.user.as_deref().unwrap_or(""),
                "submission refused: From: header not an address the account may send as"
            );
            Err("550 5.7.1 The From: header names an address this account may not send as".into())
        }
    }

    /// Screens an accepted message and stores it by its verdict; the final reply.
    async fn deliver(&mut self, tx: Transaction, message: Vec<u8>, eight_bit: bool) -> String {
        let shared = self.shared;
        let envelope = Envelope {
            client_ip: Some(self.ip),
            helo: self.helo.clone(),
            mail_from: Some(tx.from.clone()),
            rcpt_to: tx.rcpts.clone(),
            authenticated: self.user.is_some(),
        };
        let message = Arc::new(message);
        let (report, additions) = shared
            .screen
            .screen_with_additions(&envelope, message.clone())
            .await;
        let id = queue::new_id();
        if report.verdict == Verdict::Reject {
            let mut named: Vec<&str> = report
                .symbols
                .iter()
                .filter(|s| s.min_verdict == Verdict::Reject)
                .map(|s| s.name)
                .collect();
            if named.is_empty() {
                let mut by_score: Vec<_> = report.symbols.iter().collect();
                by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
                named = by_score.iter().take(3).map(|s| s.name).collect();
            }
            tracing::info!(verdict = "reject", score = report.score, "mail refused");
            return format!(
                "550 5.7.1 Message rejected by content screening ({})",
                named.join(", ")
            );
        }
        // A required check could not run (clamd down with `clamav.on_error = "tempfail"`):
        // the sender keeps the message and retries, rather than it passing unscanned.
        if report.has(crate::symbols::CLAMAV_TEMPFAIL) {
            tracing::warn!(
                score = report.score,
                "mail deferred: virus scanner unavailable"
            );
            return "451 4.7.1 Virus scanning is temporarily unavailable, try again later".into();
        }
        let now = time::OffsetDateTime::now_utc();
        let trace = Trace {
            helo: self.helo.as_deref().unwrap_or("unknown"),
            client_ip: self.ip,
            hostname: &shared.hostname,
            tls: self.tls,
            authenticated: self.user.is_some(),
            id: &id,
            single_recipient: (tx.rcpts.len() == 1).then(|| tx.rcpts[0].as_str()),
            date: now,
        };
        let rewritten = additions.apply(headers::rewrite(&message, &trace, &report));
        let verdict = report.verdict;
        let stored = if verdict == Verdict::Quarantine {
            let q = shared.quarantine.clone();
            let idc = id.clone();
            tokio::task::spawn_blocking(move || q.store(&idc, &envelope, &rewritten, &report))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map_err(|e| e.to_string())
        } else {
            let env = QueuedEnvelope {
                v: 1,
                id: id.clone(),
                mail_from: tx.from,
                rcpt_to: tx.rcpts,
                received_at: now.unix_timestamp(),
                smtputf8: tx.smtputf8,
                body_8bit: tx.body_8bit || eight_bit,
            };
            let q = shared.queue.clone();
            tokio::task::spawn_blocking(move || q.enqueue(&env, &rewritten))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        match stored {
            Ok(()) => {
                tracing::info!(queue_id = %id, verdict = %verdict, "mail accepted");
                if verdict != Verdict::Quarantine {
                    let _ = shared.new_ids.send(id.clone());
                }
                format!("250 2.0.0 Ok: queued as {id}")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store an incoming message");
                "451 4.3.0 Local error storing the message, try again later".into()
            }
        }
    }

    /// AUTH PLAIN or LOGIN. `None` closes the connection (after a reply).
    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        mechanism: &str,
        initial: Option<String>,
    ) -> Option<String> {
        let shared = self.shared;
        if self.port != Port::Submission {
            return Some("502 5.5.1 AUTH is only offered on the submission port".into());
        }
        if !self.tls {
            return Some(
                "538 5.7.11 Encryption required for requested authentication mechanism".into(),
            );
        }
        if self.user.is_some() || self.tx.is_some() {
            return Some("503 5.5.1 AUTH not allowed now".into());
        }
        if self.helo.is_none() {
            return Some("503 5.5.1 Send EHLO first".into());
        }
        if shared
            .throttle
            .auth_blocked(self.ip, shared.limits.max_auth_failures_per_minute)
        {
            return Some(
                "454 4.7.0 Too many failed logins from your address, try again later".into(),
            );
        }
        let (user, password) = match mechanism {
            "PLAIN" => {
                let resp = match initial {
                    Some(i) => i,
                    None => self.challenge(conn, "").await?,
                };
                let Some(raw) = decode(&resp) else {
                    return Some("501 5.5.2 Cannot decode the response".into());
                };
                let mut parts = raw.split(|&b| b == 0);
                let (Some(authz), Some(user), Some(pass), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Some("501 5.5.2 Malformed PLAIN response".into());
                };
                if !authz.is_empty() && authz != user {
                    return Some("535 5.7.8 Authentication credentials invalid".into());
                }
                (user.to_vec(), Zeroizing::new(pass.to_vec()))
            }
            "LOGIN" => {
                let u = match initial {
                    Some(i) => i,
                    None => self.challenge(conn, "VXNlcm5hbWU6").await?,
                };
                let Some(user) = decode(&u) else {
                    return Some("501 5.5.2 Cannot decode the response".into());
                };
                let p = Zeroizing::new(self.challenge(conn, "UGFzc3dvcmQ6").await?);
                let Some(pass) = decode(&p) else {
                    return Some("501 5.5.2 Cannot decode the response".into());
                };
                (user.to_vec(), Zeroizing::new(pass.to_vec()))
            }
            _ => return Some("504 5.5.4 Unrecognized authentication mechanism".into()),
        };
        if user.first() == Some(&b'*') && user.len() == 1 {
            return Some("501 5.0.0 Authentication cancelled".into());
        }
        let user = String::from_utf8_lossy(&user).into_owned();
        let hash = shared
            .users
            .get(&user)
            .cloned()
            .unwrap_or_else(|| shared.dummy_hash.clone());
        let known = shared.users.contains_key(&user);
        let ok = tokio::task::spawn_blocking(move || {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            PasswordHash::new(&hash)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(&password, &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
            && known;
        if ok {
            tracing::info!(user = %user, "submission login");
            self.user = Some(user);
            return Some("235 2.7.0 Authentication successful".into());
        }
        self.auth_failures += 1;
        shared.throttle.count(
            self.ip,
            Counted::AuthFailure,
            shared.limits.max_auth_failures_per_minute,
        );
        tracing::warn!("failed submission login");
        // Each failure on a connection waits longer before the answer.
        tokio::time::sleep(Duration::from_secs(u64::from(self.auth_failures.min(5)))).await;
        if self.auth_failures >= MAX_AUTH_FAILURES_PER_CONNECTION {
            conn.reply("421 4.7.0 Too many failed logins, closing connection")
                .await;
            return None;
        }
        Some("535 5.7.8 Authentication credentials invalid".into())
    }

    /// Sends `334 <challenge>` and reads the client's line. `None` closes the connection.
    async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
        challenge: &str,
    ) -> Option<String> {
        if !conn.reply(&format!("334 {challenge}")).await {
            return None;
        }
        let line = conn
            .read_line(self.shared.limits.max_line_bytes, self.shared.idle_timeout)
            .await
            .ok()?;
        let text = String::from_utf8(line).ok()?;
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn decode(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if s == "*" {
        return Some(Zeroizing::new(b"*".to_vec()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .map(Zeroizing::new)
}
