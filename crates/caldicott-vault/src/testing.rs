//! Test support (feature `testing`): throwaway PostgreSQL schemas.
//!
//! `cargo xtask test` starts a PostgreSQL cluster and sets `CALDICOTT_TEST_POSTGRES_URL`
//! and `CALDICOTT_REQUIRE_POSTGRES=1`. Without the URL, Postgres tests print a visible
//! SKIPPED line and return, unless Postgres is required, when they fail.

use std::sync::atomic::{AtomicU32, Ordering};

use ::postgres::{Client, NoTls};

/// The test cluster's URL, or `None` (after printing why) when tests should skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("CALDICOTT_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("CALDICOTT_REQUIRE_POSTGRES").is_none(),
                "CALDICOTT_REQUIRE_POSTGRES is set but CALDICOTT_TEST_POSTGRES_URL is not"
            );
            eprintln!(
                "SKIPPED: PostgreSQL test (set CALDICOTT_TEST_POSTGRES_URL, or run `cargo xtask test`)"
            );
            None
        }
    }
}

/// A fresh schema in the test database, dropped when this value is dropped.
pub struct PgSchema {
    base_url: String,
    name: String,
    /// A URL whose connections use the schema.
    pub url: String,
}

impl PgSchema {
    /// Creates a uniquely named schema, or `None` when PostgreSQL tests are skipped.
    pub fn create() -> Option<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let base_url = postgres_url()?;
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut c = Client::connect(&base_url, NoTls).expect("connect to the test PostgreSQL");
        c.batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create schema");
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{sep}options=-c%20search_path%3D{name}");
        Some(Self {
            base_url,
            name,
            url,
        })
    }

    /// Runs SQL in the schema (for tests that tamper with stored rows).
    pub fn exec(&self, sql: &str) {
        let mut c = Client::connect(&self.url, NoTls).expect("connect to the test PostgreSQL");
        c.batch_execute(sql).expect("test SQL");
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.base_url, NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
