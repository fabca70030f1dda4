//! `caldicott ledger`: verify the audit ledger (locally, or a remote log's growth), witness a
//! remote log, print the local log's key, seal an epoch. The local commands are
//! `crate::ledger_local`'s.
//!
//! The remote tools speak to the transparency endpoints of `caldicott_api::ledger`: they
//! fetch `/ledger/checkpoint`, check its signature with the log's verifier key, ask
//! `/ledger/proof/consistency` between the checkpoint they trust and the new one, and let
//! `caldicott_ledger::witness` decide. A rollback, a fork (two roots for one size) or a
//! failing consistency proof is shown with both signed checkpoints.
//!
//! - `verify --url URL --checkpoint FILE`: FILE is the checkpoint you trust. Missing, it is
//!   created with the log's current checkpoint (trust on first use); present, the log must
//!   have grown consistently from it, and FILE is then advanced to the new checkpoint.
//! - `witness --url URL --state DIR`: polls every `--interval` seconds (or `--once`), keeps
//!   every checkpoint it saw in `DIR/checkpoints/<size>-<root hex prefix>.note` and the
//!   latest trusted one in `DIR/latest.note` (each written to a temporary file, synced and
//!   renamed). On misbehaviour it writes `DIR/alarm-<unix seconds>/` (`trusted.note`,
//!   `conflicting.note`, `reason.txt`), prints an `ALARM` line and both notes on stderr and
//!   exits non-zero; other failures (network, a bad signature) are reported and retried, or
//!   end a `--once` run with an error.
//!
//! **Epochs.** A checkpoint of a later epoch (the log sealed for retention, see
//! `caldicott_ledger::witness`) is trusted only once its link to the trusted checkpoint is
//! proven from what the log serves publicly: `/ledger/epochs` gives every sealed epoch's
//! seal (its final signed checkpoint) and each later epoch's first entry (the `admin`
//! `ledger-seal` event); `/ledger/proof/consistency?…&epoch=a` shows the trusted tree to be
//! a prefix of its epoch's seal; `/ledger/proof/inclusion?index=0&…&epoch=k` puts each first
//! entry in its epoch's tree. `caldicott_ledger::witness::verify_epoch_link` decides; this
//! module reads the first entries (`seal_record`). A link that fails (a seal not signed by
//! the log's key or not consistent with what was trusted, a first entry naming another
//! size or root, or not included) is misbehaviour like a fork: the alarm shows the trusted
//! and new checkpoints and the seals served (`seal-<epoch>.note` in the alarm directory). A
//! link that cannot be checked yet (the new epoch still empty, a sealed epoch no longer
//! stored, a first entry not published) is an error, retried by the witness; nothing
//! trusted moves. An earlier epoch is a rollback.
//!
//! The HTTP client is a small HTTP/1.1 one over rustls (aws-lc-rs): `https://` URLs are
//! checked against `--ca FILE` (PEM; the server's certificate or its CA) or else the system's
//! CA bundle; `http://` is allowed only to loopback hosts (127.0.0.1, ::1, localhost). Every
//! request is bounded: 10 s to connect, 30 s in all, 1 MiB of response.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use caldicott_ledger::witness::{
    self, EpochLink, SealRecord, SignedCheckpoint, Verdict, Which, WitnessError,
};
use caldicott_ledger::{Hash, VerifierKey};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Verifies the audit ledger: the local data directory's whole log (--data), or that a
    /// remote log grew consistently from a checkpoint you trust (--url with --checkpoint).
    Verify {
        /// The data directory whose ledger to verify.
        #[arg(long, conflicts_with_all = ["url", "checkpoint", "key", "key_file", "ca"])]
        data: Option<PathBuf>,
        /// Base URL of a Caldicott server (https://, or http:// to a loopback host).
        #[arg(long, requires = "checkpoint")]
        url: Option<String>,
        /// The signed checkpoint you trust; created on first use, advanced after each
        /// successful verification.
        #[arg(long, requires = "url")]
        checkpoint: Option<PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Prints the verifier key of the data directory's ledger (give it to witnesses).
    Key {
        #[arg(long)]
        data: PathBuf,
    },
    /// Seals the data directory's ledger: a final checkpoint of the current epoch, and a new
    /// epoch whose first entry records it (retention then applies to whole sealed epochs).
    Seal {
        #[arg(long)]
        data: PathBuf,
    },
    /// Watches a remote ledger: checks every new checkpoint against the last one and raises
    /// an alarm, with the evidence, if the log ever rewrites or forks its history.
    Witness {
        /// Base URL of a Caldicott server (https://, or http:// to a loopback host).
        #[arg(long)]
        url: String,
        /// The witness's state directory (checkpoints seen, alarms).
        #[arg(long)]
        state: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Seconds between polls.
        #[arg(long, default_value_t = 10)]
        interval: u64,
        /// Poll once and exit.
        #[arg(long)]
        once: bool,
    },
}

/// How to trust a remote log and its server.
#[derive(Args)]
pub struct RemoteArgs {
    /// The log's verifier key (`<name>+<key id>+<base64>`, as `caldicott ledger key` prints).
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// A file holding the log's verifier key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// PEM certificate(s) to trust for an https:// URL: the server's certificate or its CA
    /// (default: the system's CA bundle).
    #[arg(long)]
    ca: Option<PathBuf>,
}

impl RemoteArgs {
    fn given(&self) -> bool {
        self.key.is_some() || self.key_file.is_some() || self.ca.is_some()
    }

    fn verifier_key(&self) -> anyhow::Result<VerifierKey> {
        let (text, source) = match (&self.key, &self.key_file) {
            (Some(k), None) => (k.clone(), "--key".to_owned()),
            (None, Some(f)) => {
                let bytes = read_bounded(f, 4096)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("{}: the key file is not UTF-8 text", f.display()))?;
                (text.trim().to_owned(), f.display().to_string())
            }
            (Some(_), Some(_)) => bail!("give the log's key with --key or --key-file, not both"),
            (None, None) => bail!(
                "give the log's verifier key with --key VKEY or --key-file FILE \
                 (`caldicott ledger key --data DIR` prints it on the server)"
            ),
        };
        VerifierKey::parse(&text).map_err(|e| anyhow!("{source}: not a verifier key: {e}"))
    }
}

pub fn run(command: LedgerCommand) -> anyhow::Result<()> {
    match command {
        LedgerCommand::Verify {
            data: Some(data),
            url: None,
            checkpoint: None,
            remote,
        } => {
            if remote.given() {
                bail!("--key, --key-file and --ca are for --url; --data verifies the local ledger");
            }
            say!("{}", crate::ledger_local::verify_data(&data)?);
            Ok(())
        }
        LedgerCommand::Verify {
            data: None,
            url: Some(url),
            checkpoint: Some(checkpoint),
            remote,
        } => {
            let key = remote.verifier_key()?;
            say!(
                "{}",
                verify_remote(&url, &checkpoint, &key, remote.ca.as_deref())?
            );
            Ok(())
        }
        LedgerCommand::Verify { .. } => bail!(
            "give either --data DIR (the local ledger) or --url URL with --checkpoint FILE (a remote one)"
        ),
        LedgerCommand::Key { data } => {
            say!("{}", crate::ledger_local::key(&data)?);
            Ok(())
        }
        LedgerCommand::Seal { data } => {
            say!("{}", crate::ledger_local::seal(&data)?);
            Ok(())
        }
        LedgerCommand::Witness {
            url,
            state,
            remote,
            interval,
            once,
        } => {
            let key = remote.verifier_key()?;
            witness(&url, &state, &key, remote.ca.as_deref(), interval, once)
        }
    }
}

/// Checks that the log at `url` grew consistently from the checkpoint in `checkpoint_file`
/// (trusting and saving the log's current one when the file does not exist), advances the
/// file, and returns the report.
///
/// # Errors
/// An unreadable or malformed checkpoint file, the server unreachable or answering badly, a
/// checkpoint not signed by `key`, and any misbehaviour (shown with both checkpoints).
pub fn verify_remote(
    url: &str,
    checkpoint_file: &Path,
    key: &VerifierKey,
    ca: Option<&Path>,
) -> anyhow::Result<String> {
    let client = Client::new(url, ca)?;
    let trusted = match read_note(checkpoint_file)? {
        Some(bytes) => Some(
            SignedCheckpoint::open(&bytes, key, Which::Trusted)
                .map_err(|e| anyhow!("{}: {e}", checkpoint_file.display()))?,
        ),
        None => None,
    };
    let (new, verdict) = match check(&client, key, trusted.as_ref()) {
        Ok(r) => r,
        Err(Check::Failed(e)) => return Err(e),
        Err(Check::Misbehaved(e)) => {
            let c = e.conflict();
            bail!(
                "{e}\n--- the checkpoint you trust ({}) ---\n{}--- the checkpoint {} serves ---\n{}{}",
                checkpoint_file.display(),
                c.map_or("", |c| c.old_note.as_str()),
                client.display,
                c.map_or("", |c| c.new_note.as_str()),
                seals_text(&e),
            );
        }
    };
    let root = new.checkpoint().root().to_hex();
    let file = checkpoint_file.display();
    Ok(match verdict {
        Verdict::First { size } => {
            write_atomic(checkpoint_file, new.note().as_bytes())?;
            format!(
                "trusted on first use: the log has {}; root {root}; saved to {file}",
                entries(size)
            )
        }
        Verdict::Same { size } => {
            format!(
                "consistent: the log still has {}; root {root}",
                entries(size)
            )
        }
        Verdict::Advance { from, to } => {
            write_atomic(checkpoint_file, new.note().as_bytes())?;
            format!(
                "consistent: the log grew from {from} to {}; root {root}; {file} now holds the new checkpoint",
                entries(to)
            )
        }
        verdict @ Verdict::NewEpoch { .. } => {
            write_atomic(checkpoint_file, new.note().as_bytes())?;
            format!(
                "{}; root {root}; {file} now holds the new checkpoint",
                new_epoch(&verdict)
            )
        }
    })
}

/// Watches the log at `url`: see the module documentation.
///
/// # Errors
/// Misbehaviour (after writing the alarm), an unusable state directory, and with `once`
/// any failure to fetch or check the log.
pub fn witness(
    url: &str,
    state_dir: &Path,
    key: &VerifierKey,
    ca: Option<&Path>,
    interval: u64,
    once: bool,
) -> anyhow::Result<()> {
    if interval == 0 && !once {
        bail!("--interval must be at least 1 second");
    }
    let client = Client::new(url, ca)?;
    let checkpoints = state_dir.join("checkpoints");
    fs::create_dir_all(&checkpoints)
        .with_context(|| format!("creating {}", checkpoints.display()))?;
    let latest = state_dir.join("latest.note");
    loop {
        // The state is read each time: latest.note is the truth, whoever wrote it.
        let trusted = match read_note(&latest)? {
            Some(bytes) => Some(
                SignedCheckpoint::open(&bytes, key, Which::Trusted)
                    .map_err(|e| anyhow!("{}: {e}", latest.display()))?,
            ),
            None => None,
        };
        match check(&client, key, trusted.as_ref()) {
            Ok((new, verdict)) => {
                keep(&checkpoints, &new)?;
                let root = new.checkpoint().root().to_hex();
                match verdict {
                    Verdict::First { size } => {
                        write_atomic(&latest, new.note().as_bytes())?;
                        say!(
                            "trusted on first use: the log has {}; root {root}",
                            entries(size)
                        );
                    }
                    Verdict::Same { size } => {
                        say!(
                            "consistent: the log still has {}; root {root}",
                            entries(size)
                        );
                    }
                    Verdict::Advance { from, to } => {
                        write_atomic(&latest, new.note().as_bytes())?;
                        say!(
                            "consistent: the log grew from {from} to {}; root {root}",
                            entries(to)
                        );
                    }
                    verdict @ Verdict::NewEpoch { .. } => {
                        write_atomic(&latest, new.note().as_bytes())?;
                        say!("{}; root {root}", new_epoch(&verdict));
                    }
                }
            }
            Err(Check::Misbehaved(e)) => return Err(alarm(state_dir, &client, key, &e)),
            Err(Check::Failed(e)) if once => return Err(e),
            Err(Check::Failed(e)) => {
                let _ = writeln!(
                    io::stderr(),
                    "warning: {e:#} (trying again in {interval} s)"
                );
            }
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(interval));
    }
}

/// A verified new epoch, in words.
fn new_epoch(verdict: &Verdict) -> String {
    let Verdict::NewEpoch {
        from_epoch,
        from_size,
        to_epoch,
        to_size,
    } = verdict
    else {
        return String::new();
    };
    let through = match to_epoch.saturating_sub(*from_epoch) {
        0 | 1 => String::new(),
        n => format!(", through {n} seals"),
    };
    format!(
        "new epoch {to_epoch}, link to sealed epoch {} verified (from epoch {from_epoch} \
         trusted at {}{through}); epoch {to_epoch} now has {}",
        to_epoch.saturating_sub(1),
        entries(*from_size),
        entries(*to_size)
    )
}

/// The seals a broken epoch link was shown with, as text to print after both checkpoints.
fn seals_text(e: &WitnessError) -> String {
    let WitnessError::BrokenLink {
        from_epoch, seals, ..
    } = e
    else {
        return String::new();
    };
    (*from_epoch..)
        .zip(seals)
        .map(|(k, note)| format!("--- the seal of epoch {k} it serves ---\n{note}"))
        .collect()
}

/// "1 entry", "12 entries".
fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

/// Why a check did not end in a verdict.
enum Check {
    /// The log signed two checkpoints that cannot both be honest.
    Misbehaved(WitnessError),
    /// Anything else: the network, the server, a note refused.
    Failed(anyhow::Error),
}

/// Fetches the log's signed checkpoint and, when needed, the consistency proof from
/// `trusted`, and decides.
fn check(
    client: &Client,
    key: &VerifierKey,
    trusted: Option<&SignedCheckpoint>,
) -> Result<(SignedCheckpoint, Verdict), Check> {
    let failed = Check::Failed;
    let note = client.get("/ledger/checkpoint").map_err(failed)?;
    let new = SignedCheckpoint::open(&note, key, Which::New)
        .map_err(|e| failed(anyhow!("{}/ledger/checkpoint: {e}", client.display)))?;
    let proof = match witness::consistency_needed(trusted, &new) {
        Some((from, to)) => consistency_proof(client, from, to, new.epoch()).map_err(failed)?,
        None => Vec::new(),
    };
    let verdict = match witness::decide_signed(trusted, &new, &proof) {
        Ok(verdict) => verdict,
        Err(e) if e.conflict().is_some() => return Err(Check::Misbehaved(e)),
        Err(e) => return Err(failed(anyhow!("{}: {e}", client.display))),
    };
    match (verdict, trusted) {
        (Verdict::NewEpoch { .. }, Some(trusted)) => {
            let verdict = check_link(client, key, trusted, &new)?;
            Ok((new, verdict))
        }
        (verdict, _) => Ok((new, verdict)),
    }
}

/// Fetches what joins `trusted` to `new`, a checkpoint of a later epoch, and checks it
/// (`witness::verify_epoch_link`).
fn check_link(
    client: &Client,
    key: &VerifierKey,
    trusted: &SignedCheckpoint,
    new: &SignedCheckpoint,
) -> Result<Verdict, Check> {
    let failed = Check::Failed;
    let (a, b) = (trusted.epoch(), new.epoch());
    if new.checkpoint().size() == 0 {
        return Err(failed(anyhow!(
            "{}: epoch {b} has no entries yet, so its link to sealed epoch {} cannot be \
             checked yet; the trusted checkpoint is kept (try again later)",
            client.display,
            b.saturating_sub(1)
        )));
    }
    let listing = Epochs::fetch(client).map_err(failed)?;
    let mut link = EpochLink::default();
    let mut sizes = Vec::new();
    for k in a..b {
        let seal = listing.seal(k).map_err(failed)?;
        // The size the seal states, to ask for proofs; the seal is verified in the check.
        sizes.push(note_size(&seal).unwrap_or(0));
        link.seals.push(seal.into_bytes());
    }
    let (s, sealed_size) = (
        trusted.checkpoint().size(),
        sizes.first().copied().unwrap_or(0),
    );
    if s > 0 && s < sealed_size {
        link.to_seal = consistency_proof(client, s, sealed_size, a).map_err(failed)?;
    }
    for k in a + 1..=b {
        let leaf = listing.first_entry(k).map_err(failed)?;
        let size = match sizes.get(usize::try_from(k - a).unwrap_or(usize::MAX)) {
            Some(size) => *size,
            None => new.checkpoint().size(),
        };
        let proof = if size == 0 {
            Vec::new()
        } else {
            inclusion_proof(client, 0, size, k).map_err(failed)?
        };
        link.first_entries.push((leaf, proof));
    }
    witness::verify_epoch_link(key, trusted, new, &link, &seal_record).map_err(|e| {
        if e.conflict().is_some() {
            Check::Misbehaved(e)
        } else {
            failed(anyhow!("{}: {e}", client.display))
        }
    })
}

/// The tree size a checkpoint note states (its second line), unverified.
fn note_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

/// Reads what a new epoch's first entry records: it must be the `admin` `ledger-seal` event
/// `caldicott ledger seal` appends, whose reason is exactly
/// `epoch <M> sealed at <size> entries, root <base64>`.
///
/// # Errors
/// A message saying what the entry is instead.
pub(crate) fn seal_record(leaf: &[u8]) -> Result<SealRecord, String> {
    let event = caldicott_audit::AuditEvent::from_leaf(leaf).map_err(|e| e.to_string())?;
    if event.kind != caldicott_audit::EventKind::Admin || event.action != "ledger-seal" {
        return Err(format!(
            "it is an event of kind {} and action {:?}",
            event.kind.name(),
            event.action.chars().take(40).collect::<String>()
        ));
    }
    let malformed =
        || "its reason is not `epoch <n> sealed at <size> entries, root <base64>`".to_owned();
    let rest = event.reason.strip_prefix("epoch ").ok_or_else(malformed)?;
    let (epoch, rest) = rest.split_once(" sealed at ").ok_or_else(malformed)?;
    let (size, root) = rest.split_once(" entries, root ").ok_or_else(malformed)?;
    let number = |t: &str| {
        t.parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == t)
            .ok_or_else(malformed)
    };
    Ok(SealRecord {
        epoch: number(epoch)?,
        size: number(size)?,
        root: Hash::from_base64(root).map_err(|_| malformed())?,
    })
}

/// `/ledger/epochs`, as far as the link needs it.
struct Epochs {
    /// The URL asked, for messages.
    what: String,
    items: Vec<serde_json::Value>,
}

impl Epochs {
    fn fetch(client: &Client) -> anyhow::Result<Self> {
        let path = "/ledger/epochs";
        let body = client.get(path)?;
        let what = format!("{}{path}", client.display);
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| anyhow!("{what}: the answer is not JSON"))?;
        let Some(items) = v["epochs"].as_array() else {
            bail!("{what}: the answer has no epochs array");
        };
        Ok(Self {
            items: items.clone(),
            what,
        })
    }

    fn item(&self, epoch: u64) -> anyhow::Result<&serde_json::Value> {
        self.items
            .iter()
            .find(|i| i["epoch"].as_u64() == Some(epoch))
            .ok_or_else(|| anyhow!("{}: epoch {epoch} is not listed", self.what))
    }

    /// The seal of `epoch`, which the link needs.
    fn seal(&self, epoch: u64) -> anyhow::Result<String> {
        self.item(epoch)?["seal"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{}: epoch {epoch} is listed without a seal", self.what))
    }

    /// The first entry of `epoch`, which must be public for the link to be checked.
    fn first_entry(&self, epoch: u64) -> anyhow::Result<Vec<u8>> {
        let item = self.item(epoch)?;
        let Some(text) = item["first_entry"].as_str() else {
            let why = if item["entries"].as_str() == Some("gone") {
                "its entries are no longer stored"
            } else {
                "the log does not publish it as the record of a seal"
            };
            bail!(
                "{}: the first entry of epoch {epoch} is not given ({why}), so the link \
                 to epoch {} cannot be checked",
                self.what,
                epoch.saturating_sub(1)
            );
        };
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                anyhow!(
                    "{}: the first entry of epoch {epoch} is not base64",
                    self.what
                )
            })
    }
}

/// The consistency proof the server gives between `from` and `to` in `epoch`.
fn consistency_proof(client: &Client, from: u64, to: u64, epoch: u64) -> anyhow::Result<Vec<Hash>> {
    let path = format!("/ledger/proof/consistency?from={from}&to={to}&epoch={epoch}");
    let v = get_json(client, &path)?;
    if v["from"].as_u64() != Some(from) || v["to"].as_u64() != Some(to) {
        bail!(
            "{}{path}: the answer is for other sizes than asked",
            client.display
        );
    }
    proof_hashes(client, &path, &v, epoch)
}

/// The inclusion proof the server gives of leaf `index` in the tree of `size` in `epoch`.
fn inclusion_proof(
    client: &Client,
    index: u64,
    size: u64,
    epoch: u64,
) -> anyhow::Result<Vec<Hash>> {
    let path = format!("/ledger/proof/inclusion?index={index}&size={size}&epoch={epoch}");
    let v = get_json(client, &path)?;
    if v["index"].as_u64() != Some(index) || v["size"].as_u64() != Some(size) {
        bail!(
            "{}{path}: the answer is for another entry or size than asked",
            client.display
        );
    }
    proof_hashes(client, &path, &v, epoch)
}

fn get_json(client: &Client, path: &str) -> anyhow::Result<serde_json::Value> {
    let body = client.get(path)?;
    serde_json::from_slice(&body)
        .map_err(|_| anyhow!("{}{path}: the answer is not JSON", client.display))
}

/// The `proof` array of an answer about `epoch`.
fn proof_hashes(
    client: &Client,
    path: &str,
    v: &serde_json::Value,
    epoch: u64,
) -> anyhow::Result<Vec<Hash>> {
    let what = || format!("{}{path}", client.display);
    if v["epoch"].as_u64() != Some(epoch) {
        bail!("{}: the answer is for another epoch than asked", what());
    }
    let Some(hashes) = v["proof"].as_array() else {
        bail!("{}: the answer has no proof array", what());
    };
    hashes
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| Hash::from_base64(s).ok())
                .ok_or_else(|| anyhow!("{}: a proof hash is not 32 bytes in base64", what()))
        })
        .collect()
}

/// Saves a checkpoint seen in `dir/<size>-<root hex prefix>.note` (once).
fn keep(dir: &Path, c: &SignedCheckpoint) -> anyhow::Result<PathBuf> {
    let hex = c.checkpoint().root().to_hex();
    let name = format!(
        "{}-{}.note",
        c.checkpoint().size(),
        hex.get(..16).unwrap_or(&hex)
    );
    let path = dir.join(name);
    if !path.exists() {
        write_atomic(&path, c.note().as_bytes())?;
    }
    Ok(path)
}

/// Writes the evidence of misbehaviour to `STATE/alarm-<unix seconds>/`, prints the alarm,
/// and returns the error to exit with.
fn alarm(state: &Path, client: &Client, key: &VerifierKey, e: &WitnessError) -> anyhow::Error {
    let Some(conflict) = e.conflict() else {
        return anyhow!("{e}");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let reason = format!(
        "{e}\nlog: {}\nkey: {key}\nseen at: {now} (Unix time)\n",
        client.display
    );
    let saved = (|| -> anyhow::Result<PathBuf> {
        let mut dir = state.join(format!("alarm-{now}"));
        let mut n = 1;
        loop {
            match fs::create_dir(&dir) {
                Ok(()) => break,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && n < 100 => {
                    n += 1;
                    dir = state.join(format!("alarm-{now}-{n}"));
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("creating {}", dir.display()));
                }
            }
        }
        write_atomic(&dir.join("trusted.note"), conflict.old_note.as_bytes())?;
        write_atomic(&dir.join("conflicting.note"), conflict.new_note.as_bytes())?;
        write_atomic(&dir.join("reason.txt"), reason.as_bytes())?;
        if let WitnessError::BrokenLink {
            from_epoch, seals, ..
        } = e
        {
            for (k, note) in (*from_epoch..).zip(seals) {
                write_atomic(&dir.join(format!("seal-{k}.note")), note.as_bytes())?;
            }
        }
        Ok(dir)
    })();
    // The conflicting checkpoint is one the witness saw, too (latest.note is not moved).
    if let Ok(c) = SignedCheckpoint::open(conflict.new_note.as_bytes(), key, Which::New) {
        let _ = keep(&state.join("checkpoints"), &c);
    }
    let where_ = match &saved {
        Ok(dir) => format!("evidence in {}", dir.display()),
        Err(err) => format!("the evidence could not be saved: {err:#}"),
    };
    let _ = write!(
        io::stderr(),
        "ALARM: the log at {} misbehaved: {e} ({where_})\n\
         --- trusted checkpoint ---\n{}--- conflicting checkpoint ---\n{}{}",
        client.display,
        conflict.old_note,
        conflict.new_note,
        seals_text(e)
    );
    anyhow!("the log at {} misbehaved: {e} ({where_})", client.display)
}

/// Reads a note file (at most 1 MiB), or `None` when it does not exist.
fn read_note(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        _ => read_bounded(path, MAX_RESPONSE).map(Some),
    }
}

/// Reads a file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {}", path.display()))?;
    if out.len() > limit {
        bail!("{} is larger than {limit} bytes", path.display());
    }
    Ok(out)
}

/// Replaces `path` with `bytes`: a temporary file beside it, synced, renamed, and the
/// directory synced, so a reader sees the old file or the new one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let context = || format!("writing {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(context)?;
    tmp.write_all(bytes).with_context(context)?;
    tmp.as_file().sync_all().with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(context)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A small, bounded HTTP/1.1 GET client.

/// Most bytes of a response body.
const MAX_RESPONSE: usize = 1 << 20;
/// Most bytes of a response head.
const MAX_HEAD: usize = 16 << 10;
/// Time to open a connection (per address).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Where Linux distributions keep the system's CA bundle.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// A parsed base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    /// Host name or IP address, without brackets.
    host: String,
    port: u16,
    /// Path prefix without a trailing slash ("" for the root).
    base: String,
}

impl Endpoint {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            anyhow!("the URL must start with https:// (or http:// to a loopback host)")
        })?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => bail!("the URL must start with https:// (or http:// to a loopback host)"),
        };
        if rest.contains(['?', '#']) {
            bail!("the URL must not have a query or a fragment");
        }
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            bail!("the URL must not hold a user name or password");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| anyhow!("the URL's IPv6 address has no closing ]"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                bail!("the URL's host is not an IPv6 address");
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| anyhow!("the URL's port is malformed"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let bracketed = authority.starts_with('[');
        let valid_name = bracketed
            || (!host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
        if !valid_name {
            bail!("the URL's host is not a host name or IP address");
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => bail!("the URL's port is not a number from 1 to 65535"),
            },
        };
        let base = path.trim_end_matches('/');
        if !base.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
            bail!("the URL's path holds characters a URL cannot");
        }
        let e = Self {
            tls,
            host: host.to_owned(),
            port,
            base: base.to_owned(),
        };
        if !tls && !e.is_loopback() {
            bail!(
                "refusing plain http:// to {}: use https:// (http:// is allowed only to 127.0.0.1, ::1 or localhost)",
                e.host
            );
        }
        Ok(e)
    }

    fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `host:port` as in a Host header or a URL.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn display(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.base)
    }
}

/// GETs from one server.
struct Client {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The base URL, for messages.
    display: String,
}

impl Client {
    fn new(url: &str, ca: Option<&Path>) -> anyhow::Result<Self> {
        let endpoint = Endpoint::parse(url)?;
        let tls = if endpoint.tls {
            Some(tls_config(ca)?)
        } else {
            None
        };
        let display = endpoint.display();
        Ok(Self {
            endpoint,
            tls,
            display,
        })
    }

    /// The body of a 200 answer to `GET <base><path>`.
    fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}{path}", self.display);
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let sock = self.connect(deadline)?;
        let request = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: caldicott/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.endpoint.base,
            self.endpoint.authority(),
            env!("CARGO_PKG_VERSION")
        );
        let stream = Timed { sock, deadline };
        let raw = match &self.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|_| anyhow!("{}: not a valid TLS server name", self.endpoint.host))?;
                let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                    .with_context(|| format!("{url}: starting TLS"))?;
                exchange(rustls::StreamOwned::new(conn, stream), &request)
            }
            None => exchange(stream, &request),
        }
        .with_context(|| format!("GET {url}"))?;
        let response = parse_response(&raw).with_context(|| format!("GET {url}"))?;
        if response.status != 200 {
            let mut message = server_message(&response.body);
            if message.is_empty() && response.status == 404 {
                message = " (no ledger endpoints at this URL)".to_owned();
            }
            bail!(
                "GET {url}: the server answered {}{message}",
                response.status
            );
        }
        Ok(response.body)
    }

    fn connect(&self, deadline: Instant) -> anyhow::Result<TcpStream> {
        let e = &self.endpoint;
        let addrs: Vec<SocketAddr> = (e.host.as_str(), e.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", e.host))?
            // Plain HTTP never leaves the machine, whatever a name resolves to.
            .filter(|a| e.tls || a.ip().is_loopback())
            .collect();
        if addrs.is_empty() {
            bail!("{} does not resolve to a loopback address", e.host);
        }
        let mut last = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left.min(CONNECT_TIMEOUT)) {
                Ok(s) => return Ok(s),
                Err(err) => last = Some(err),
            }
        }
        Err(match last {
            Some(err) => anyhow!("cannot connect to {}: {err}", self.display),
            None => anyhow!("cannot connect to {}: timed out", self.display),
        })
    }
}

/// The trust anchors for https://: `--ca`, or the system's CA bundle.
fn tls_config(ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?;
            for cert in certs {
                let cert =
                    cert.with_context(|| format!("reading the CA file {}", path.display()))?;
                roots.add(cert).with_context(|| {
                    format!("{}: a certificate cannot be a trust anchor", path.display())
                })?;
            }
            if roots.is_empty() {
                bail!("{} holds no PEM certificate", path.display());
            }
        }
        None => {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let bundle = from_env
                .into_iter()
                .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    anyhow!(
                        "no system CA bundle found: give the certificate to trust with --ca FILE"
                    )
                })?;
            let certs = CertificateDer::pem_file_iter(&bundle)
                .with_context(|| format!("reading the system CA bundle {}", bundle.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs.filter_map(Result::ok));
            if added == 0 {
                bail!(
                    "the system CA bundle {} holds no usable certificate: give the certificate to trust with --ca FILE",
                    bundle.display()
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A socket whose every read and write must end before a deadline.
struct Timed {
    sock: TcpStream,
    deadline: Instant,
}

impl Timed {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete answer within {} s", REQUEST_TIMEOUT.as_secs()),
            ))
        } else {
            Ok(left)
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.sock.set_write_timeout(Some(left))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// Sends the request and reads the whole answer (the server closes the connection), at
/// most `MAX_HEAD + MAX_RESPONSE` bytes.
fn exchange<S: Read + Write>(mut stream: S, request: &str) -> anyhow::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let limit = MAX_HEAD + MAX_RESPONSE;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(buf.get(..n).unwrap_or_default());
                if raw.len() > limit {
                    bail!("the answer is larger than {} KiB", limit >> 10);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A TLS peer that closes without close_notify: the length check below decides
            // whether the answer is whole.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(raw)
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

/// Parses an HTTP/1.x answer: status, `Content-Length` or chunked body.
fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let malformed = || anyhow!("the server's answer is not HTTP/1.1");
    let end = raw
        .windows(4)
        .take(MAX_HEAD)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            if raw.is_empty() {
                anyhow!("the server closed the connection without answering")
            } else {
                malformed()
            }
        })?;
    let head = std::str::from_utf8(raw.get(..end).unwrap_or_default()).map_err(|_| malformed())?;
    let rest = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(malformed());
    }
    let status: u16 = code.parse().map_err(|_| malformed())?;
    let (mut length, mut chunked) = (None::<usize>, false);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| malformed())?;
            if length.is_some_and(|l| l != n) {
                return Err(malformed());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                bail!("the server's answer uses an unsupported transfer encoding");
            }
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if n > MAX_RESPONSE {
            bail!("the answer is larger than {} KiB", MAX_RESPONSE >> 10);
        }
        rest.get(..n)
            .ok_or_else(|| anyhow!("the answer was cut short"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cut = || anyhow!("the answer was cut short");
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(cut)?;
        let line = std::str::from_utf8(rest.get(..eol).unwrap_or_default())
            .map_err(|_| anyhow!("malformed chunked answer"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| anyhow!("malformed chunked answer"))?;
        rest = rest.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_RESPONSE.saturating_sub(out.len()) {
            bail!("the answer is larger than {} KiB", MAX_RESPONSE >> 10);
        }
        out.extend_from_slice(rest.get(..size).ok_or_else(cut)?);
        if rest.get(size..size + 2) != Some(b"\r\n".as_slice()) {
            return Err(cut());
        }
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// ": <message>" from a JSON error body, printable and at most 200 characters.
fn server_message(body: &[u8]) -> String {
    let msg = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    match msg {
        Some(m) => {
            let clean: String = m.chars().filter(|c| !c.is_control()).take(200).collect();
            format!(": {clean}")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("https://audit.example.nhs.uk/base/").unwrap();
        assert_eq!(
            e,
            Endpoint {
                tls: true,
                host: "audit.example.nhs.uk".into(),
                port: 443,
                base: "/base".into()
            }
        );
        assert_eq!(e.display(), "https://audit.example.nhs.uk:443/base");
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base.as_str()),
            ("::1", 8080, "")
        );
        assert_eq!(e.authority(), "[::1]:8080");
        assert!(Endpoint::parse("http://127.0.0.1:1/").is_ok());
        assert!(Endpoint::parse("http://127.8.9.10:1/").is_ok());
        assert!(Endpoint::parse("HTTP://LocalHost:1").is_ok());
        for (url, want) in [
            ("ftp://x", "the URL must start with https://"),
            ("example.org", "the URL must start with https://"),
            (
                "http://example.org",
                "refusing plain http:// to example.org",
            ),
            ("http://10.0.0.1:80", "refusing plain http:// to 10.0.0.1"),
            ("http://[::2]:80", "refusing plain http:// to ::2"),
            ("https://u:p@h/", "must not hold a user name"),
            ("https://h/?a=1", "must not have a query"),
            ("https://h/#x", "must not have a query"),
            ("https://h:0/", "port is not a number"),
            ("https://h:99999/", "port is not a number"),
            ("https://h:x/", "port is not a number"),
            ("https://:1/", "host is not"),
            ("https://h_o/", "host is not"),
            ("https://[zz]:1/", "not an IPv6 address"),
            ("https://[::1/", "no closing ]"),
            ("https://h/a b", "path holds"),
        ] {
            let err = Endpoint::parse(url).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"abc".as_slice()));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n{\"error\":\"no\"}").unwrap();
        assert_eq!(
            (r.status, server_message(&r.body)),
            (404, ": no".to_owned())
        );
        for bad in [
            b"".as_slice(),
            b"garbage",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"SMTP 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = "\\u0007x".repeat(500);
        let msg = server_message(format!("{{\"error\":\"{long}\"}}").as_bytes());
        assert_eq!(msg.len(), 2 + 200);
        assert!(!msg.contains('\u{7}'));
    }

    fn event(kind: caldicott_audit::EventKind, action: &str, reason: &str) -> Vec<u8> {
        let e = caldicott_api::audit::security_event(
            kind,
            action,
            "cli",
            "RX1",
            "sysadmin",
            &caldicott_api::audit::Origin::default(),
            caldicott_audit::Outcome::Permit,
            reason,
            1_700_000_000_000_000,
        );
        caldicott_api::audit::leaf_of(&e).data
    }

    #[test]
    fn seal_records() {
        use caldicott_audit::EventKind::{Admin, Login};
        let root = caldicott_ledger::leaf_hash(b"root");
        let good = format!("epoch 3 sealed at 1234 entries, root {}", root.to_base64());
        assert_eq!(
            seal_record(&event(Admin, "ledger-seal", &good)),
            Ok(SealRecord {
                epoch: 3,
                size: 1234,
                root
            })
        );
        let err = seal_record(&event(Login, "ledger-seal", &good)).unwrap_err();
        assert_eq!(
            err,
            "it is an event of kind login and action \"ledger-seal\""
        );
        let err = seal_record(&event(Admin, "org-add", &good)).unwrap_err();
        assert!(err.contains("action \"org-add\""), "{err}");
        let b64 = root.to_base64();
        for reason in [
            String::new(),
            format!("epoch 3 sealed at 1234 entries, root {}", &b64[1..]),
            format!("epoch 03 sealed at 1234 entries, root {b64}"),
            format!("epoch 3 sealed at +1234 entries, root {b64}"),
            format!("epoch 3 sealed at 1234 entries, root {b64} "),
            format!("epoch 3 sealed at 1234 entries root {b64}"),
            format!("epoch x sealed at 1234 entries, root {b64}"),
            "epoch 3 sealed at 0 entries, root ".to_owned(),
        ] {
            let err = seal_record(&event(Admin, "ledger-seal", &reason)).unwrap_err();
            assert!(err.starts_with("its reason is not"), "{reason:?}: {err}");
        }
        assert!(seal_record(b"not a leaf").is_err());
        assert!(seal_record(b"").is_err());
    }

    #[test]
    fn new_epoch_words() {
        let one = Verdict::NewEpoch {
            from_epoch: 1,
            from_size: 9,
            to_epoch: 2,
            to_size: 1,
        };
        assert_eq!(
            new_epoch(&one),
            "new epoch 2, link to sealed epoch 1 verified (from epoch 1 trusted at 9 entries); \
             epoch 2 now has 1 entry"
        );
        let three = Verdict::NewEpoch {
            from_epoch: 2,
            from_size: 1,
            to_epoch: 5,
            to_size: 7,
        };
        assert_eq!(
            new_epoch(&three),
            "new epoch 5, link to sealed epoch 4 verified (from epoch 2 trusted at 1 entry, \
             through 3 seals); epoch 5 now has 7 entries"
        );
    }

    #[test]
    fn atomic_writes_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latest.note");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_note(&dir.path().join("absent")).unwrap(), None);
        fs::write(dir.path().join("big"), vec![b'a'; MAX_RESPONSE + 1]).unwrap();
        assert!(read_note(&dir.path().join("big")).is_err());
    }
}
