//! Configuration: `DATA_DIR/caldicott.toml`, overridden by environment variables, overridden
//! by command-line flags.
//!
//! | setting | file key | environment |
//! |---|---|---|
//! | database (`sqlite` for `DATA_DIR/vault.db`, or a `postgres://` URL) | `database` | `CALDICOTT_DATABASE` |
//! | listen address | `listen` | `CALDICOTT_LISTEN` |
//! | deployment organisation (ODS code) | `organisation` | — |
//! | TLS certificate / key (PEM paths, relative to the data directory) | `tls.cert`, `tls.key` | `CALDICOTT_TLS_CERT`, `CALDICOTT_TLS_KEY` |
//! | log format (`text` or `json`) | `log.format` | `CALDICOTT_LOG_FORMAT` |
//! | log filter (e.g. `info`, `caldicott=debug`) | `log.level` | `CALDICOTT_LOG` |
//! | maximum request body in bytes | `max_body_bytes` | `CALDICOTT_MAX_BODY_BYTES` |
//! | public base URL of the FHIR API (default: from the request's `Host`) | `public_url` | `CALDICOTT_PUBLIC_URL` |
//! | master key (instead of `DATA_DIR/master.key`) | — | `CALDICOTT_MASTER_KEY` |

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The file name of the configuration inside a data directory.
pub const CONFIG_FILE: &str = "caldicott.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite` or a PostgreSQL URL.
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The ODS code of the organisation that runs this deployment.
    pub organisation: String,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub log: Log,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The FHIR base URL clients see (`https://fhir.example.nhs.uk/fhir`), when the server
    /// sits behind a proxy; otherwise links are made from the request's `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            cert: "tls/cert.pem".into(),
            key: "tls/key.pem".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default = "default_log_format")]
    pub format: String,
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_database() -> String {
    "sqlite".into()
}
fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_max_body() -> usize {
    10 << 20
}

impl Config {
    /// A new configuration for `init`.
    pub fn new(organisation: &str, database: Option<&str>, listen: Option<&str>) -> Self {
        Self {
            database: database.map_or_else(default_database, str::to_owned),
            listen: listen.map_or_else(default_listen, str::to_owned),
            organisation: organisation.to_owned(),
            tls: Tls::default(),
            log: Log::default(),
            max_body_bytes: default_max_body(),
            public_url: None,
        }
    }

    /// Loads `DIR/caldicott.toml` and applies environment overrides.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is {} a data directory made by `caldicott init`?)",
                path.display(),
                data_dir.display()
            )
        })?;
        let mut c: Config = toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))?;
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    /// Applies `CALDICOTT_*` overrides, read through `get` (testable without the process env).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("CALDICOTT_DATABASE") {
            self.database = v;
        }
        if let Some(v) = get("CALDICOTT_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("CALDICOTT_TLS_CERT") {
            self.tls.cert = v.into();
        }
        if let Some(v) = get("CALDICOTT_TLS_KEY") {
            self.tls.key = v.into();
        }
        if let Some(v) = get("CALDICOTT_LOG_FORMAT") {
            self.log.format = v;
        }
        if let Some(v) = get("CALDICOTT_LOG") {
            self.log.level = v;
        }
        if let Some(v) = get("CALDICOTT_MAX_BODY_BYTES") {
            self.max_body_bytes = v
                .parse()
                .with_context(|| "CALDICOTT_MAX_BODY_BYTES must be a whole number of bytes")?;
        }
        if let Some(v) = get("CALDICOTT_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            bail!("public_url must be an http(s) URL such as https://fhir.example.nhs.uk/fhir");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log format must be `text` or `json`");
        }
        Ok(())
    }

    /// Writes the configuration file (mode 0600: it may hold a database URL with a password).
    pub fn write_new(&self, data_dir: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        let path = data_dir.join(CONFIG_FILE);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let body = toml::to_string_pretty(self).context("cannot serialise the configuration")?;
        write!(
            f,
            "# Caldicott configuration, written by `caldicott init`.\n\
             # Every setting can be overridden by a CALDICOTT_* environment variable (see README).\n\n{body}"
        )?;
        f.sync_all()?;
        Ok(())
    }

    /// Where the records live: the SQLite file in the data directory, or the PostgreSQL URL.
    pub fn database_location(&self, data_dir: &Path) -> String {
        if self.database == "sqlite" {
            data_dir.join("vault.db").display().to_string()
        } else {
            self.database.clone()
        }
    }

    /// A path from the file, taken relative to the data directory.
    pub fn resolve(&self, data_dir: &Path, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            data_dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        Config::new("A81001", None, None)
            .write_new(dir.path())
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        let mut c: Config = toml::from_str(&text).unwrap();
        assert_eq!(c.database, "sqlite");
        assert_eq!(
            c.database_location(dir.path()),
            dir.path().join("vault.db").display().to_string()
        );
        c.apply_env(|k| match k {
            "CALDICOTT_DATABASE" => Some("postgres://u@h/db".into()),
            "CALDICOTT_LISTEN" => Some("127.0.0.1:9000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database_location(dir.path()), "postgres://u@h/db");
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert!(
            c.apply_env(|k| (k == "CALDICOTT_LOG_FORMAT").then(|| "xml".into()))
                .is_err()
        );
        assert!(
            Config::new("A81001", None, None)
                .write_new(dir.path())
                .is_err(),
            "no overwrite"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("organisation = \"A81001\"\ndatabse = \"x\"").is_err());
    }
}
