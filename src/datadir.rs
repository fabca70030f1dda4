//! The data directory: where a deployment keeps its configuration, master key, TLS files
//! and (on the embedded default) its database.
//!
//! ```text
//! DATA_DIR/            mode 0700
//!   caldicott.toml     configuration (0600)
//!   master.key         the master key (0600), unless CALDICOTT_MASTER_KEY is set
//!   vault.db           SQLite database (+ -wal, -shm), unless the database is PostgreSQL
//!   tls/cert.pem       TLS certificate (self-signed by init; replace with a real one)
//!   tls/key.pem        TLS private key (0600)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use caldicott_vault::{KeyProvider, LocalKek, Vault, VaultError};

use crate::config::Config;

/// The environment variable that can hold the master key instead of the key file.
pub const MASTER_KEY_ENV: &str = "CALDICOTT_MASTER_KEY";
pub const MASTER_KEY_FILE: &str = "master.key";
/// A new master key during rotation, before it replaces `master.key`.
pub const NEW_MASTER_KEY_FILE: &str = "master.key.new";

/// Where the master key comes from.
pub enum KeySource {
    File(PathBuf),
    Env,
}

/// An opened data directory.
pub struct DataDir {
    pub path: PathBuf,
    pub config: Config,
}

impl DataDir {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            config: Config::load(path)?,
        })
    }

    pub fn key_source(&self) -> KeySource {
        if std::env::var_os(MASTER_KEY_ENV).is_some() {
            KeySource::Env
        } else {
            KeySource::File(self.path.join(MASTER_KEY_FILE))
        }
    }

    pub fn load_master_key(&self) -> anyhow::Result<Arc<LocalKek>> {
        Ok(Arc::new(match self.key_source() {
            KeySource::Env => {
                let v = std::env::var(MASTER_KEY_ENV)
                    .context("CALDICOTT_MASTER_KEY is not valid UTF-8")?;
                LocalKek::from_env_value(MASTER_KEY_ENV, &v)?
            }
            KeySource::File(p) => LocalKek::from_file(&p)?,
        }))
    }

    pub fn database_location(&self) -> String {
        self.config.database_location(&self.path)
    }

    /// Opens the vault, finishing an interrupted master-key rotation if one is found.
    pub fn open_vault(&self) -> anyhow::Result<Vault> {
        let kek = self.load_master_key()?;
        let backend = caldicott_vault::open_backend(&self.database_location(), false)?;
        match Vault::open(backend, kek) {
            Ok(v) => Ok(v),
            Err(VaultError::WrongMasterKey { .. })
                if self.path.join(NEW_MASTER_KEY_FILE).exists() =>
            {
                self.finish_interrupted_rotation()
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A rotation wrote `master.key.new` and committed the rewrapped keys, but stopped
    /// before renaming the file: the new key is the right one, so complete the rename.
    fn finish_interrupted_rotation(&self) -> anyhow::Result<Vault> {
        let new_path = self.path.join(NEW_MASTER_KEY_FILE);
        let kek: Arc<dyn KeyProvider> = Arc::new(LocalKek::from_file(&new_path)?);
        let backend = caldicott_vault::open_backend(&self.database_location(), false)?;
        let v = Vault::open(backend, kek)?;
        tracing::warn!("completing an interrupted master key rotation");
        replace_key_file(&new_path, &self.path.join(MASTER_KEY_FILE))?;
        Ok(v)
    }
}

/// Atomically replaces `to` with `from` and makes the rename durable.
pub fn replace_key_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    if let Some(d) = to.parent().and_then(|d| std::fs::File::open(d).ok()) {
        d.sync_all().context("cannot sync the data directory")?;
    }
    Ok(())
}
