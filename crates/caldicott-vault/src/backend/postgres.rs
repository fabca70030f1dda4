//! The PostgreSQL backend, for when one machine is outgrown.
//!
//! Portability: the SQL here keeps to what PostgreSQL 13+ and the Postgres-compatible
//! distributed engines accept: `BIGINT` everywhere (CockroachDB's `INTEGER` is 64-bit
//! anyway), no advisory locks (CockroachDB has none; migrations are serialised by the
//! `schema_migrations` primary key inside one transaction instead), `INSERT ... ON
//! CONFLICT`, `UPDATE ... FROM`, `DELETE ... USING` and multi-argument `UNNEST` for
//! batches. Only PostgreSQL itself is tested here (no other engine is installable on
//! the build machines); see ARCHITECTURE.md.
//!
//! Durability: PostgreSQL's default `synchronous_commit = on` makes a commit durable
//! when it returns; Caldicott does not change it.
//!
//! Batches are written with one statement per table (arrays bound as parameters and
//! expanded with `UNNEST`), so a batch of 1,000 records costs a handful of round trips.

use std::str::FromStr;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use std::collections::HashMap;

use ::postgres::{Client, Config, NoTls, Row, Statement};

use super::*;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
     CREATE TABLE data_keys (
        org TEXT NOT NULL, version BIGINT NOT NULL, kek_id TEXT NOT NULL,
        wrapped BYTEA NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL,
        PRIMARY KEY (org, version));
     CREATE TABLE records (
        org TEXT NOT NULL, rtype TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL,
        deleted BOOLEAN NOT NULL, dek_version BIGINT NOT NULL, ciphertext BYTEA NOT NULL,
        written_at BIGINT NOT NULL,
        PRIMARY KEY (org, rtype, id, version));
     CREATE INDEX records_by_key ON records (org, dek_version);
     CREATE TABLE heads (
        org TEXT NOT NULL, rtype TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL,
        deleted BOOLEAN NOT NULL,
        PRIMARY KEY (org, rtype, id));
     CREATE TABLE index_entries (
        org TEXT NOT NULL, rtype TEXT NOT NULL, term BYTEA NOT NULL, id TEXT NOT NULL,
        PRIMARY KEY (org, rtype, term, id));
     CREATE INDEX index_entries_by_record ON index_entries (org, rtype, id);
     CREATE TABLE users (
        name TEXT PRIMARY KEY, org TEXT NOT NULL, role TEXT NOT NULL,
        password_phc TEXT NOT NULL, created_at BIGINT NOT NULL, disabled BOOLEAN NOT NULL);",
    ),
    (
        2,
        // A (type, id) names one record in the whole deployment (a FHIR server has one id
        // space), and history is listed by time.
        "CREATE UNIQUE INDEX heads_by_id ON heads (rtype, id);
         CREATE INDEX records_by_time ON records (written_at);",
    ),
    (
        3,
        // The sealed directory: users, organisations, tokens and other small records of
        // the deployment, each encrypted by the vault.
        "CREATE TABLE directory (
            kind TEXT NOT NULL, key TEXT NOT NULL, version BIGINT NOT NULL,
            dek_version BIGINT NOT NULL, value BYTEA NOT NULL, updated_at BIGINT NOT NULL,
            PRIMARY KEY (kind, key));",
    ),
    (
        4,
        // Users live in the sealed directory now (`caldicott-access`).
        "DROP TABLE users;",
    ),
    (
        5,
        // The audit ledger (see `backend::ledger`).
        "CREATE TABLE ledger_epochs (
            epoch BIGINT PRIMARY KEY, size BIGINT NOT NULL, sealed_note TEXT);
         INSERT INTO ledger_epochs (epoch, size) VALUES (1, 0);
         CREATE TABLE ledger_leaves (
            epoch BIGINT NOT NULL, idx BIGINT NOT NULL, at_us BIGINT NOT NULL,
            hash BYTEA NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (epoch, idx));
         CREATE TABLE ledger_nodes (
            epoch BIGINT NOT NULL, level SMALLINT NOT NULL, idx BIGINT NOT NULL,
            hash BYTEA NOT NULL, PRIMARY KEY (epoch, level, idx));
         CREATE TABLE ledger_tiles (
            epoch BIGINT NOT NULL, tile BIGINT NOT NULL, hashes BYTEA NOT NULL,
            PRIMARY KEY (epoch, tile));
         CREATE TABLE ledger_checkpoints (
            epoch BIGINT NOT NULL, size BIGINT NOT NULL, note TEXT NOT NULL,
            published_at BIGINT NOT NULL, PRIMARY KEY (epoch, size));
         CREATE TABLE ledger_keys (
            key BIGINT NOT NULL, epoch BIGINT NOT NULL, idx BIGINT NOT NULL,
            PRIMARY KEY (key, epoch, idx));",
    ),
];

const MAX_CONNECTIONS: usize = 8;

/// The PostgreSQL backend: a small pool of synchronous connections.
pub struct PostgresBackend {
    config: Config,
    location: String,
    idle: Mutex<(Vec<Pooled>, usize)>,
    freed: Condvar,
    /// The audit ledger's frontier as of this process's last append (checked against the
    /// stored size, under the epoch row's lock, in each append).
    frontier: Mutex<Option<(u32, ledger::Tail)>>,
}

/// A connection and the statements prepared on it (a prepared statement saves a round
/// trip per query).
struct Pooled {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A pooled connection, returned to the pool on drop unless it broke.
struct Conn<'a> {
    pool: &'a PostgresBackend,
    client: Option<Pooled>,
}

impl Conn<'_> {
    /// The statement for `sql`, prepared once per connection.
    fn stmt(&mut self, sql: &str) -> Result<Statement, ::postgres::Error> {
        let p = self
            .client
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"));
        if let Some(s) = p.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = p.client.prepare(sql)?;
        p.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self
            .client
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
            .client
    }
}
impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self
            .client
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
            .client
    }
}
impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut g = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        match self.client.take() {
            Some(c) if !c.client.is_closed() => g.0.push(c),
            _ => g.1 -= 1,
        }
        self.pool.freed.notify_one();
    }
}

fn pg_err(during: &'static str) -> impl Fn(::postgres::Error) -> BackendError {
    move |e| BackendError::Db {
        during,
        reason: describe(&e),
    }
}

/// The server's message, or the client's, without echoing parameters.
fn describe(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user@host:port/db`), failing fast if unreachable.
    pub fn connect(url: &str) -> Result<Self, BackendError> {
        let mut config = Config::from_str(url).map_err(|e| BackendError::Open {
            location: "the PostgreSQL URL".into(),
            reason: e.to_string(),
        })?;
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("caldicott");
        let location = describe_config(&config);
        let b = Self {
            config,
            location,
            idle: Mutex::new((Vec::new(), 0)),
            freed: Condvar::new(),
            frontier: Mutex::new(None),
        };
        // Connect once now so a wrong URL is reported at start-up.
        drop(b.conn()?);
        Ok(b)
    }

    fn conn(&self) -> Result<Conn<'_>, BackendError> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = g.0.pop() {
                return Ok(Conn {
                    pool: self,
                    client: Some(c),
                });
            }
            if g.1 < MAX_CONNECTIONS {
                g.1 += 1;
                drop(g);
                return match self.config.connect(NoTls) {
                    Ok(mut client) => Ok(Conn {
                        pool: self,
                        client: Some(Pooled {
                            client: {
                                // Batched statements bind arrays, and PostgreSQL's generic
                                // plans for them scan a whole organisation; plan each
                                // execution instead. Best effort: engines without this
                                // setting plan per execution anyway.
                                let _ =
                                    client.batch_execute("SET plan_cache_mode = force_custom_plan");
                                client
                            },
                            statements: HashMap::new(),
                        }),
                    }),
                    Err(e) => {
                        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                        g.1 -= 1;
                        Err(BackendError::Open {
                            location: self.location.clone(),
                            reason: describe(&e),
                        })
                    }
                };
            }
            g = self.freed.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn describe_config(c: &Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            ::postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            ::postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

fn to_record(r: &Row) -> RawRecord {
    RawRecord {
        org: r.get(0),
        rtype: r.get(1),
        id: r.get(2),
        version: r.get::<_, i64>(3) as u64,
        deleted: r.get(4),
        dek_version: r.get::<_, i64>(5) as u32,
        ciphertext: r.get(6),
        written_at: r.get(7),
    }
}

const INSERT_TERMS: &str = "INSERT INTO index_entries (org, rtype, term, id)
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BYTEA[], $4::TEXT[]) ON CONFLICT DO NOTHING";
const DELETE_TERMS: &str = "DELETE FROM index_entries e
     USING UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS u(org, rtype, id)
     WHERE e.org = u.org AND e.rtype = u.rtype AND e.id = u.id";
const INSERT_HEADS: &str = "INSERT INTO heads (org, rtype, id, version, deleted)
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BOOLEAN[])
     ON CONFLICT DO NOTHING RETURNING org, rtype, id";
const UPDATE_HEADS: &str = "UPDATE heads h SET version = u.nv, deleted = u.del
     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BOOLEAN[], $6::BIGINT[])
          AS u(org, rtype, id, nv, del, ov)
     WHERE h.org = u.org AND h.rtype = u.rtype AND h.id = u.id AND h.version = u.ov
     RETURNING h.org, h.rtype, h.id";
const INSERT_RECORDS: &str =
    "INSERT INTO records (org, rtype, id, version, deleted, dek_version, ciphertext, written_at)
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BOOLEAN[],
                          $6::BIGINT[], $7::BYTEA[], $8::BIGINT[])";
// Two index lookups per id, whatever the planner believes about the tables: the LATERAL
// subquery with OFFSET 0 is not flattened, so each id is looked up by its full key in
// `heads` and then in `records` (without it, a fresh table got a scan of the
// organisation, and an analysed one a hash join over all of `records`).
const SELECT_HEADS: &str =
    "SELECT r.org, r.rtype, r.id, r.version, r.deleted, r.dek_version, r.ciphertext, r.written_at
     FROM UNNEST($3::TEXT[]) AS u(id)
     CROSS JOIN LATERAL (
         SELECT r.* FROM heads h JOIN records r
           ON r.org = h.org AND r.rtype = h.rtype AND r.id = h.id AND r.version = h.version
         WHERE h.org = $1 AND h.rtype = $2 AND h.id = u.id OFFSET 0) AS r";
const SELECT_HEAD: &str =
    "SELECT r.org, r.rtype, r.id, r.version, r.deleted, r.dek_version, r.ciphertext, r.written_at
     FROM heads h JOIN records r
       ON r.org = h.org AND r.rtype = h.rtype AND r.id = h.id AND r.version = h.version
     WHERE h.org = $1 AND h.rtype = $2 AND h.id = $3";
const SEARCH: &str = "SELECT DISTINCT id FROM index_entries
     WHERE org = $1 AND rtype = $2 AND term = ANY($3) ORDER BY id";

const LOCATE: &str = "SELECT id, org FROM heads WHERE rtype = $1 AND id = ANY($2::TEXT[])";
const SCAN: &str =
    "SELECT r.org, r.rtype, r.id, r.version, r.deleted, r.dek_version, r.ciphertext, r.written_at
     FROM heads h JOIN records r
       ON r.org = h.org AND r.rtype = h.rtype AND r.id = h.id AND r.version = h.version
     WHERE h.org = $1 AND h.rtype = $2 AND h.id > $3 AND NOT h.deleted
     ORDER BY h.id LIMIT $4";
// `COLLATE "C"` keeps id order the same as SQLite's byte order whatever the database's
// collation.
const CHANGES: &str =
    "SELECT r.org, r.rtype, r.id, r.version, r.deleted, r.dek_version, r.ciphertext, r.written_at
     FROM records r
     WHERE r.written_at >= $1 AND r.written_at < $2 AND r.org = $3
       AND ($4::TEXT IS NULL OR r.rtype = $4)
     ORDER BY r.written_at DESC, r.rtype COLLATE \"C\" DESC, r.id COLLATE \"C\" DESC, r.version DESC
     LIMIT $5";

const RECORD_COLUMNS: &str =
    "r.org, r.rtype, r.id, r.version, r.deleted, r.dek_version, r.ciphertext, r.written_at";

fn current_schema(c: &mut impl ::postgres::GenericClient) -> Result<i64, ::postgres::Error> {
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(c.query_one(
        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
        &[],
    )?
    .get(0))
}

/// Inserts index terms for rows given as (org, rtype, id, terms).
fn insert_terms<'a>(
    tx: &mut ::postgres::Transaction<'_>,
    stmt: &Statement,
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a [TermHash])>,
) -> Result<(), ::postgres::Error> {
    let (mut o, mut t, mut h, mut i) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (org, rtype, id, terms) in rows {
        for term in terms {
            o.push(org);
            t.push(rtype);
            h.push(&term[..]);
            i.push(id);
        }
    }
    if !o.is_empty() {
        tx.execute(stmt, &[&o, &t, &h, &i])?;
    }
    Ok(())
}
fn delete_terms<'a>(
    tx: &mut ::postgres::Transaction<'_>,
    stmt: &Statement,
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<(), ::postgres::Error> {
    let (mut o, mut t, mut i) = (Vec::new(), Vec::new(), Vec::new());
    for (org, rtype, id) in rows {
        o.push(org);
        t.push(rtype);
        i.push(id);
    }
    if !o.is_empty() {
        tx.execute(stmt, &[&o, &t, &i])?;
    }
    Ok(())
}

/// Replaces the index terms of record heads: deletes their old terms, inserts the new.
fn replace_head_terms<'a>(
    tx: &mut ::postgres::Transaction<'_>,
    (delete, insert): (&Statement, &Statement),
    heads: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a [TermHash])> + Clone,
) -> Result<(), ::postgres::Error> {
    delete_terms(tx, delete, heads.clone().map(|(o, t, i, _)| (o, t, i)))?;
    insert_terms(tx, insert, heads)
}

fn dir_row(r: &Row) -> DirRow {
    DirRow {
        kind: r.get(0),
        key: r.get(1),
        version: r.get::<_, i64>(2) as u64,
        dek_version: r.get::<_, i64>(3) as u32,
        value: r.get(4),
        updated_at: r.get(5),
    }
}

impl Backend for PostgresBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn migrate(&self) -> Result<Vec<i64>, BackendError> {
        let mut c = self.conn()?;
        let m = pg_err("migration");
        let mut tx = c.transaction().map_err(&m)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .map_err(&m)?;
        let current = current_schema(&mut tx).map_err(&m)?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > latest {
            return Err(BackendError::SchemaVersion {
                found: current,
                expected: latest,
                hint: "the database was written by a newer caldicott; upgrade this one",
            });
        }
        let mut applied = Vec::new();
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).map_err(&m)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[v, &now_micros()],
            )
            .map_err(&m)?;
            applied.push(*v);
        }
        tx.commit().map_err(&m)?;
        Ok(applied)
    }

    fn check_schema(&self) -> Result<(), BackendError> {
        let mut c = self.conn()?;
        let current = current_schema(&mut *c).map_err(pg_err("schema check"))?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current != latest {
            return Err(BackendError::SchemaVersion {
                found: current,
                expected: latest,
                hint: if current < latest {
                    "run `caldicott db migrate`"
                } else {
                    "the database was written by a newer caldicott; upgrade this one"
                },
            });
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let rows = self
            .conn()?
            .query("SELECT value FROM meta WHERE key = $1", &[&key])
            .map_err(pg_err("reading metadata"))?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        self.conn()?
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .map(|_| ())
            .map_err(pg_err("writing metadata"))
    }

    fn data_keys(&self) -> Result<Vec<DataKeyRow>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT org, version, kek_id, wrapped, state, created_at FROM data_keys ORDER BY org, version",
                &[],
            )
            .map_err(pg_err("reading data keys"))?;
        Ok(rows
            .iter()
            .map(|r| DataKeyRow {
                org: r.get(0),
                version: r.get::<_, i64>(1) as u32,
                kek_id: r.get(2),
                wrapped: r.get(3),
                state: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }

    fn add_data_key(&self, row: &DataKeyRow) -> Result<(), BackendError> {
        let mut c = self.conn()?;
        let m = pg_err("adding a data key");
        let mut tx = c.transaction().map_err(&m)?;
        tx.execute(
            "UPDATE data_keys SET state = 'retired' WHERE org = $1 AND state = 'active'",
            &[&row.org],
        )
        .map_err(&m)?;
        tx.execute(
            "INSERT INTO data_keys (org, version, kek_id, wrapped, state, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&row.org, &i64::from(row.version), &row.kek_id, &row.wrapped, &row.state, &row.created_at],
        )
        .map_err(&m)?;
        tx.commit().map_err(&m)
    }

    fn rewrap_data_keys(&self, rows: &[DataKeyRow]) -> Result<(), BackendError> {
        let mut c = self.conn()?;
        let m = pg_err("rewrapping data keys");
        let mut tx = c.transaction().map_err(&m)?;
        for r in rows {
            let n = tx
                .execute(
                    "UPDATE data_keys SET kek_id = $3, wrapped = $4 WHERE org = $1 AND version = $2",
                    &[&r.org, &i64::from(r.version), &r.kek_id, &r.wrapped],
                )
                .map_err(&m)?;
            if n != 1 {
                return Err(BackendError::Db {
                    during: "rewrapping data keys",
                    reason: format!("data key {} v{} vanished during rotation", r.org, r.version),
                });
            }
        }
        tx.commit().map_err(&m)
    }

    fn drop_data_key(&self, org: &str, version: u32) -> Result<bool, BackendError> {
        let mut c = self.conn()?;
        let m = pg_err("dropping a data key");
        let mut tx = c.transaction().map_err(&m)?;
        let v = i64::from(version);
        let used: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM records WHERE org = $1 AND dek_version = $2)",
                &[&org, &v],
            )
            .map_err(&m)?
            .get(0);
        if used {
            return Ok(false);
        }
        let n = tx
            .execute(
                "DELETE FROM data_keys WHERE org = $1 AND version = $2 AND state = 'retired'",
                &[&org, &v],
            )
            .map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(n == 1)
    }

    fn write(
        &self,
        rows: &[RowWrite<'_>],
        leaves: &[LedgerLeaf],
    ) -> Result<Option<Appended>, BackendError> {
        if rows.is_empty() && leaves.is_empty() {
            return Ok(None);
        }
        let mut c = self.conn()?;
        let m = pg_err("writing records");
        let st_insert_heads = c.stmt(INSERT_HEADS).map_err(&m)?;
        let st_update_heads = c.stmt(UPDATE_HEADS).map_err(&m)?;
        let st_insert_records = c.stmt(INSERT_RECORDS).map_err(&m)?;
        let st_delete_terms = c.stmt(DELETE_TERMS).map_err(&m)?;
        let st_insert_terms = c.stmt(INSERT_TERMS).map_err(&m)?;
        let mut tx = c.transaction().map_err(&m)?;
        let conflict = |w: &RowWrite<'_>| BackendError::Conflict {
            rtype: w.record.rtype.to_owned(),
            id: w.record.id.to_owned(),
        };
        if !rows.is_empty() {
            let (absent, versioned): (Vec<&RowWrite<'_>>, Vec<&RowWrite<'_>>) =
                rows.iter().partition(|w| w.expect == RowExpect::Absent);
            if !absent.is_empty() {
                let org: Vec<&str> = absent.iter().map(|w| w.record.org).collect();
                let rt: Vec<&str> = absent.iter().map(|w| w.record.rtype).collect();
                let id: Vec<&str> = absent.iter().map(|w| w.record.id).collect();
                let v: Vec<i64> = absent.iter().map(|w| w.record.version as i64).collect();
                let del: Vec<bool> = absent.iter().map(|w| w.record.deleted).collect();
                let inserted = tx
                    .query(&st_insert_heads, &[&org, &rt, &id, &v, &del])
                    .map_err(&m)?;
                if inserted.len() != absent.len() {
                    let done: std::collections::HashSet<(String, String, String)> = inserted
                        .iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect();
                    let first = absent
                        .iter()
                        .find(|w| {
                            !done.contains(&(
                                w.record.org.to_owned(),
                                w.record.rtype.to_owned(),
                                w.record.id.to_owned(),
                            ))
                        })
                        .unwrap_or(&absent[0]);
                    return Err(conflict(first));
                }
            }
            if !versioned.is_empty() {
                let org: Vec<&str> = versioned.iter().map(|w| w.record.org).collect();
                let rt: Vec<&str> = versioned.iter().map(|w| w.record.rtype).collect();
                let id: Vec<&str> = versioned.iter().map(|w| w.record.id).collect();
                let nv: Vec<i64> = versioned.iter().map(|w| w.record.version as i64).collect();
                let del: Vec<bool> = versioned.iter().map(|w| w.record.deleted).collect();
                let ov: Vec<i64> = versioned
                    .iter()
                    .map(|w| match w.expect {
                        RowExpect::Version(v) => v as i64,
                        RowExpect::Absent => 0,
                    })
                    .collect();
                let updated = tx
                    .query(&st_update_heads, &[&org, &rt, &id, &nv, &del, &ov])
                    .map_err(&m)?;
                if updated.len() != versioned.len() {
                    let done: std::collections::HashSet<(String, String, String)> = updated
                        .iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect();
                    let first = versioned
                        .iter()
                        .find(|w| {
                            !done.contains(&(
                                w.record.org.to_owned(),
                                w.record.rtype.to_owned(),
                                w.record.id.to_owned(),
                            ))
                        })
                        .unwrap_or(&versioned[0]);
                    return Err(conflict(first));
                }
                delete_terms(
                    &mut tx,
                    &st_delete_terms,
                    versioned
                        .iter()
                        .map(|w| (w.record.org, w.record.rtype, w.record.id)),
                )
                .map_err(&m)?;
            }
            let org: Vec<&str> = rows.iter().map(|w| w.record.org).collect();
            let rt: Vec<&str> = rows.iter().map(|w| w.record.rtype).collect();
            let id: Vec<&str> = rows.iter().map(|w| w.record.id).collect();
            let v: Vec<i64> = rows.iter().map(|w| w.record.version as i64).collect();
            let del: Vec<bool> = rows.iter().map(|w| w.record.deleted).collect();
            let dek: Vec<i64> = rows
                .iter()
                .map(|w| i64::from(w.record.dek_version))
                .collect();
            let ct: Vec<&[u8]> = rows
                .iter()
                .map(|w| w.record.ciphertext.as_slice())
                .collect();
            let at: Vec<i64> = rows.iter().map(|w| w.record.written_at).collect();
            tx.execute(
                &st_insert_records,
                &[&org, &rt, &id, &v, &del, &dek, &ct, &at],
            )
            .map_err(&m)?;
            insert_terms(
                &mut tx,
                &st_insert_terms,
                rows.iter().map(|w| {
                    (
                        w.record.org,
                        w.record.rtype,
                        w.record.id,
                        w.terms.as_slice(),
                    )
                }),
            )
            .map_err(&m)?;
        }
        if leaves.is_empty() {
            tx.commit().map_err(&m)?;
            return Ok(None);
        }
        if rows.is_empty() {
            // Events that record no change (reads): committed without waiting for the WAL
            // flush, which PostgreSQL does within 3 × wal_writer_delay; only a crash of
            // the database server in that window could lose them. Writes of records, and
            // the events in their transaction, wait as usual.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .map_err(&m)?;
        }
        let mut cache = self.frontier.lock().unwrap_or_else(|p| p.into_inner());
        let (appended, frontier) = append_leaves(&mut tx, cache.take(), leaves)?;
        tx.commit().map_err(&m)?;
        *cache = Some((appended.epoch, frontier));
        Ok(Some(appended))
    }

    fn heads(
        &self,
        org: &str,
        rtype: &str,
        ids: &[&str],
    ) -> Result<Vec<Option<RawRecord>>, BackendError> {
        let m = pg_err("reading records");
        let mut c = self.conn()?;
        let rows = if let [id] = ids {
            let st = c.stmt(SELECT_HEAD).map_err(&m)?;
            c.query(&st, &[&org, &rtype, id]).map_err(&m)?
        } else {
            let st = c.stmt(SELECT_HEADS).map_err(&m)?;
            c.query(&st, &[&org, &rtype, &ids]).map_err(&m)?
        };
        let mut found: std::collections::HashMap<String, RawRecord> = rows
            .iter()
            .map(|r| (r.get::<_, String>(2), to_record(r)))
            .collect();
        Ok(ids.iter().map(|id| found.remove(*id)).collect())
    }

    fn version(
        &self,
        org: &str,
        rtype: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<RawRecord>, BackendError> {
        let rows = self
            .conn()?
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records r WHERE r.org = $1 AND r.rtype = $2 AND r.id = $3 AND r.version = $4"
                ),
                &[&org, &rtype, &id, &(version as i64)],
            )
            .map_err(pg_err("reading a record version"))?;
        Ok(rows.first().map(to_record))
    }

    fn history(&self, org: &str, rtype: &str, id: &str) -> Result<Vec<RawRecord>, BackendError> {
        let rows = self
            .conn()?
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records r WHERE r.org = $1 AND r.rtype = $2 AND r.id = $3 ORDER BY r.version DESC"
                ),
                &[&org, &rtype, &id],
            )
            .map_err(pg_err("reading record history"))?;
        Ok(rows.iter().map(to_record).collect())
    }

    fn search(
        &self,
        org: &str,
        rtype: &str,
        terms: &[TermHash],
    ) -> Result<Vec<String>, BackendError> {
        let t: Vec<&[u8]> = terms.iter().map(|t| &t[..]).collect();
        let m = pg_err("searching the index");
        let mut c = self.conn()?;
        let st = c.stmt(SEARCH).map_err(&m)?;
        let rows = c.query(&st, &[&org, &rtype, &t]).map_err(&m)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn count(&self, org: &str, rtype: &str) -> Result<u64, BackendError> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT count(*) FROM heads WHERE org = $1 AND rtype = $2 AND NOT deleted",
                &[&org, &rtype],
            )
            .map_err(pg_err("counting records"))?
            .get(0);
        Ok(n as u64)
    }

    fn locate(&self, rtype: &str, ids: &[&str]) -> Result<Vec<Option<String>>, BackendError> {
        let m = pg_err("locating records");
        let mut c = self.conn()?;
        let st = c.stmt(LOCATE).map_err(&m)?;
        let rows = c.query(&st, &[&rtype, &ids]).map_err(&m)?;
        let found: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(ids.iter().map(|id| found.get(*id).cloned()).collect())
    }

    fn scan(
        &self,
        org: &str,
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError> {
        let m = pg_err("scanning records");
        let mut c = self.conn()?;
        let st = c.stmt(SCAN).map_err(&m)?;
        let rows = c
            .query(&st, &[&org, &rtype, &after.unwrap_or(""), &(limit as i64)])
            .map_err(&m)?;
        Ok(rows.iter().map(to_record).collect())
    }

    fn changes(
        &self,
        org: &str,
        rtype: Option<&str>,
        since: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError> {
        let m = pg_err("listing changes");
        let mut c = self.conn()?;
        let st = c.stmt(CHANGES).map_err(&m)?;
        let rows = c
            .query(&st, &[&since, &before, &org, &rtype, &(limit as i64)])
            .map_err(&m)?;
        Ok(rows.iter().map(to_record).collect())
    }

    fn stale_records(
        &self,
        org: &str,
        dek_version: u32,
        limit: usize,
    ) -> Result<Vec<RawRecord>, BackendError> {
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {RECORD_COLUMNS} FROM records r WHERE r.org = $1 AND r.dek_version < $2 LIMIT $3"),
                &[&org, &i64::from(dek_version), &(limit as i64)],
            )
            .map_err(pg_err("finding records to re-encrypt"))?;
        Ok(rows.iter().map(to_record).collect())
    }

    fn records_per_key(&self) -> Result<Vec<(String, u32, u64)>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT org, dek_version, count(*) FROM records GROUP BY org, dek_version ORDER BY org, dek_version",
                &[],
            )
            .map_err(pg_err("counting records per key"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get::<_, i64>(1) as u32,
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect())
    }

    fn apply_reencrypted(&self, rows: &[Reencrypted]) -> Result<(), BackendError> {
        let mut c = self.conn()?;
        let m = pg_err("re-encrypting records");
        let st_delete_terms = c.stmt(DELETE_TERMS).map_err(&m)?;
        let st_insert_terms = c.stmt(INSERT_TERMS).map_err(&m)?;
        let mut tx = c.transaction().map_err(&m)?;
        let mut heads = Vec::new();
        for r in rows {
            let n = tx
                .execute(
                    "UPDATE records SET ciphertext = $6, dek_version = $5
                     WHERE org = $1 AND rtype = $2 AND id = $3 AND version = $4 AND dek_version = $7",
                    &[
                        &r.org,
                        &r.rtype,
                        &r.id,
                        &(r.version as i64),
                        &i64::from(r.new_dek),
                        &r.ciphertext,
                        &i64::from(r.old_dek),
                    ],
                )
                .map_err(&m)?;
            if n == 0 {
                continue;
            }
            let is_head: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM heads WHERE org = $1 AND rtype = $2 AND id = $3 AND version = $4)",
                    &[&r.org, &r.rtype, &r.id, &(r.version as i64)],
                )
                .map_err(&m)?
                .get(0);
            if is_head {
                heads.push(r);
            }
        }
        replace_head_terms(
            &mut tx,
            (&st_delete_terms, &st_insert_terms),
            heads.iter().map(|r| {
                (
                    r.org.as_str(),
                    r.rtype.as_str(),
                    r.id.as_str(),
                    r.terms.as_slice(),
                )
            }),
        )
        .map_err(&m)?;
        tx.commit().map_err(&m)
    }

    fn replace_terms(&self, rows: &[TermsOf]) -> Result<(), BackendError> {
        let mut c = self.conn()?;
        let m = pg_err("re-indexing records");
        let st_delete_terms = c.stmt(DELETE_TERMS).map_err(&m)?;
        let st_insert_terms = c.stmt(INSERT_TERMS).map_err(&m)?;
        let mut tx = c.transaction().map_err(&m)?;
        let mut heads = Vec::new();
        for r in rows {
            let is_head: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM heads WHERE org = $1 AND rtype = $2 AND id = $3 AND version = $4 AND NOT deleted)",
                    &[&r.org, &r.rtype, &r.id, &(r.version as i64)],
                )
                .map_err(&m)?
                .get(0);
            if is_head {
                heads.push(r);
            }
        }
        replace_head_terms(
            &mut tx,
            (&st_delete_terms, &st_insert_terms),
            heads.iter().map(|r| {
                (
                    r.org.as_str(),
                    r.rtype.as_str(),
                    r.id.as_str(),
                    r.terms.as_slice(),
                )
            }),
        )
        .map_err(&m)?;
        tx.commit().map_err(&m)
    }

    fn dir_get(&self, kind: &str, key: &str) -> Result<Option<DirRow>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT kind, key, version, dek_version, value, updated_at FROM directory WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )
            .map_err(pg_err("reading the directory"))?;
        Ok(rows.first().map(dir_row))
    }

    fn dir_put(&self, row: &DirRow, expect: Option<u64>) -> Result<(), BackendError> {
        let m = pg_err("writing the directory");
        let mut c = self.conn()?;
        let n = match expect {
            None => c.execute(
                "INSERT INTO directory (kind, key, version, dek_version, value, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&row.kind, &row.key, &(row.version as i64), &i64::from(row.dek_version), &row.value, &row.updated_at],
            ),
            Some(v) => c.execute(
                "UPDATE directory SET version = $3, dek_version = $4, value = $5, updated_at = $6 WHERE kind = $1 AND key = $2 AND version = $7",
                &[&row.kind, &row.key, &(row.version as i64), &i64::from(row.dek_version), &row.value, &row.updated_at, &(v as i64)],
            ),
        }
        .map_err(&m)?;
        if n != 1 {
            return Err(BackendError::Conflict {
                rtype: row.kind.clone(),
                id: row.key.clone(),
            });
        }
        Ok(())
    }

    fn dir_delete(&self, kind: &str, key: &str) -> Result<bool, BackendError> {
        let n = self
            .conn()?
            .execute(
                "DELETE FROM directory WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )
            .map_err(pg_err("deleting from the directory"))?;
        Ok(n == 1)
    }

    fn dir_replace_kind(&self, kind: &str, rows: &[DirRow]) -> Result<(), BackendError> {
        let m = pg_err("replacing directory entries");
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(&m)?;
        tx.execute("DELETE FROM directory WHERE kind = $1", &[&kind])
            .map_err(&m)?;
        for chunk in rows.chunks(10_000) {
            let keys: Vec<&str> = chunk.iter().map(|r| r.key.as_str()).collect();
            let versions: Vec<i64> = chunk.iter().map(|r| r.version as i64).collect();
            let deks: Vec<i64> = chunk.iter().map(|r| i64::from(r.dek_version)).collect();
            let values: Vec<&[u8]> = chunk.iter().map(|r| r.value.as_slice()).collect();
            let times: Vec<i64> = chunk.iter().map(|r| r.updated_at).collect();
            tx.execute(
                "INSERT INTO directory (kind, key, version, dek_version, value, updated_at)
                 SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BYTEA[], $6::BIGINT[])
                 ON CONFLICT DO NOTHING",
                &[&kind, &keys, &versions, &deks, &values, &times],
            )
            .map_err(&m)?;
        }
        tx.commit().map_err(&m)
    }

    fn dir_list(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DirRow>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT kind, key, version, dek_version, value, updated_at FROM directory
                 WHERE kind = $1 AND key COLLATE \"C\" > $2 ORDER BY key COLLATE \"C\" LIMIT $3",
                &[&kind, &after.unwrap_or(""), &(limit as i64)],
            )
            .map_err(pg_err("listing the directory"))?;
        Ok(rows.iter().map(dir_row).collect())
    }

    fn ledger_epochs(&self) -> Result<Vec<EpochRow>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT epoch, size, sealed_note FROM ledger_epochs ORDER BY epoch",
                &[],
            )
            .map_err(pg_err("reading the audit ledger's epochs"))?;
        rows.iter()
            .map(|r| {
                Ok(EpochRow {
                    epoch: epoch_of(r.get(0))?,
                    size: ledger::unsigned(r.get(1), "reading the audit ledger's epochs")?,
                    sealed_note: r.get(2),
                })
            })
            .collect()
    }

    fn ledger_leaves(
        &self,
        epoch: u32,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredLeaf>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT idx, at_us, data FROM ledger_leaves WHERE epoch = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                &[&i64::from(epoch), &clamp(start), &clamp(end)],
            )
            .map_err(pg_err("reading audit ledger leaves"))?;
        rows.iter()
            .map(|r| {
                Ok(StoredLeaf {
                    idx: ledger::unsigned(r.get(0), "reading audit ledger leaves")?,
                    at_us: r.get(1),
                    data: r.get(2),
                })
            })
            .collect()
    }

    fn ledger_leaves_beyond(&self, epoch: u32, size: u64) -> Result<u64, BackendError> {
        let row = self
            .conn()?
            .query_one(
                "SELECT count(*) FROM ledger_leaves WHERE epoch = $1 AND idx >= $2",
                &[&i64::from(epoch), &clamp(size)],
            )
            .map_err(pg_err("counting audit ledger leaves"))?;
        ledger::unsigned(row.get(0), "counting audit ledger leaves")
    }

    fn ledger_nodes(
        &self,
        epoch: u32,
        ids: &[caldicott_ledger::NodeId],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let mut c = self.conn()?;
        read_nodes(&mut *c, epoch, ids).map_err(pg_err("reading audit ledger nodes"))
    }

    fn ledger_node_range(
        &self,
        epoch: u32,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, BackendError> {
        let rows = self
            .conn()?
            .query(
                if level == 0 {
                    "SELECT idx, hash FROM ledger_leaves WHERE epoch = $1 AND $2::SMALLINT = 0 AND idx >= $3 AND idx < $4 ORDER BY idx"
                } else {
                    "SELECT idx, hash FROM ledger_nodes WHERE epoch = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx"
                },
                &[&i64::from(epoch), &i16::from(level), &clamp(start), &clamp(end)],
            )
            .map_err(pg_err("reading audit ledger nodes"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    ledger::unsigned(r.get(0), "reading audit ledger nodes")?,
                    r.get(1),
                ))
            })
            .collect()
    }

    fn ledger_tiles(
        &self,
        epoch: u32,
        tiles: &[u64],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let ids: Vec<i64> = tiles.iter().map(|t| clamp(*t)).collect();
        let rows = self
            .conn()?
            .query(
                "SELECT tile, hashes FROM ledger_tiles WHERE epoch = $1 AND tile = ANY($2)",
                &[&i64::from(epoch), &ids],
            )
            .map_err(pg_err("reading audit ledger tiles"))?;
        let mut found: HashMap<i64, Vec<u8>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(ids.iter().map(|t| found.remove(t)).collect())
    }

    fn ledger_put_checkpoint(&self, epoch: u32, size: u64, note: &str) -> Result<(), BackendError> {
        self.conn()?
            .execute(
                "INSERT INTO ledger_checkpoints (epoch, size, note, published_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&i64::from(epoch), &clamp(size), &note, &now_micros()],
            )
            .map(|_| ())
            .map_err(pg_err("storing an audit ledger checkpoint"))
    }

    fn ledger_checkpoints(
        &self,
        epoch: u32,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, String)>, BackendError> {
        let rows = self
            .conn()?
            .query(
                "SELECT size, note FROM ledger_checkpoints WHERE epoch = $1 AND size >= $2 AND size <= $3 ORDER BY size",
                &[&i64::from(epoch), &clamp(from), &clamp(to)],
            )
            .map_err(pg_err("reading audit ledger checkpoints"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    ledger::unsigned(r.get(0), "reading audit ledger checkpoints")?,
                    r.get(1),
                ))
            })
            .collect()
    }

    fn ledger_latest_checkpoint(&self, epoch: u32) -> Result<Option<(u64, String)>, BackendError> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT size, note FROM ledger_checkpoints WHERE epoch = $1 ORDER BY size DESC LIMIT 1",
                &[&i64::from(epoch)],
            )
            .map_err(pg_err("reading audit ledger checkpoints"))?;
        row.map(|r| {
            Ok((
                ledger::unsigned(r.get(0), "reading audit ledger checkpoints")?,
                r.get(1),
            ))
        })
        .transpose()
    }

    fn ledger_find(
        &self,
        key: &str,
        before: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<(u32, u64)>, BackendError> {
        let (be, bi) = before.map_or((i64::MAX, i64::MAX), |(e, i)| (i64::from(e), clamp(i)));
        let rows = self
            .conn()?
            .query(
                "SELECT epoch, idx FROM ledger_keys WHERE key = $1 AND (epoch, idx) < ($2, $3)
                 ORDER BY epoch DESC, idx DESC LIMIT $4",
                &[&ledger::key_hash(key), &be, &bi, &(limit as i64)],
            )
            .map_err(pg_err("searching the audit ledger"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    epoch_of(r.get(0))?,
                    ledger::unsigned(r.get(1), "searching the audit ledger")?,
                ))
            })
            .collect()
    }

    fn ledger_seal(
        &self,
        epoch: u32,
        size: u64,
        final_note: &str,
        first: Option<&LedgerLeaf>,
    ) -> Result<u32, BackendError> {
        let m = pg_err("sealing an audit ledger epoch");
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(&m)?;
        let row = tx
            .query_one(
                "SELECT epoch, size FROM ledger_epochs ORDER BY epoch DESC LIMIT 1 FOR UPDATE",
                &[],
            )
            .map_err(&m)?;
        let (current, stored): (i64, i64) = (row.get(0), row.get(1));
        if current != i64::from(epoch) || stored != clamp(size) {
            return Err(BackendError::Conflict {
                rtype: "ledger".into(),
                id: format!("epoch {epoch}"),
            });
        }
        tx.execute(
            "UPDATE ledger_epochs SET sealed_note = $2 WHERE epoch = $1",
            &[&i64::from(epoch), &final_note],
        )
        .map_err(&m)?;
        tx.execute(
            "INSERT INTO ledger_checkpoints (epoch, size, note, published_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&i64::from(epoch), &clamp(size), &final_note, &now_micros()],
        )
        .map_err(&m)?;
        let next = epoch + 1;
        tx.execute(
            "INSERT INTO ledger_epochs (epoch, size) VALUES ($1, 0)",
            &[&i64::from(next)],
        )
        .map_err(&m)?;
        if let Some(first) = first {
            append_leaves(&mut tx, None, std::slice::from_ref(first))?;
        }
        tx.commit().map_err(&m)?;
        *self.frontier.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(next)
    }
}

/// A `u64` size or index as the signed column it is stored in (sizes never reach 2^63).
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn epoch_of(v: i64) -> Result<u32, BackendError> {
    u32::try_from(v).map_err(|_| BackendError::Db {
        during: "reading the audit ledger",
        reason: format!("epoch number {v} out of range"),
    })
}

/// Node hashes by id, in the order asked, in one query.
fn read_nodes(
    c: &mut impl ::postgres::GenericClient,
    epoch: u32,
    ids: &[caldicott_ledger::NodeId],
) -> Result<Vec<Option<Vec<u8>>>, ::postgres::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
    let idxs: Vec<i64> = ids.iter().map(|id| clamp(id.index)).collect();
    let rows = c.query(
        "SELECT n.level, n.idx, n.hash FROM UNNEST($2::SMALLINT[], $3::BIGINT[]) AS q(level, idx)
         JOIN ledger_nodes n ON n.epoch = $1 AND n.level = q.level AND n.idx = q.idx
         UNION ALL
         SELECT 0::SMALLINT, l.idx, l.hash FROM UNNEST($2::SMALLINT[], $3::BIGINT[]) AS q(level, idx)
         JOIN ledger_leaves l ON l.epoch = $1 AND q.level = 0 AND l.idx = q.idx",
        &[&i64::from(epoch), &levels, &idxs],
    )?;
    let mut found: HashMap<(i16, i64), Vec<u8>> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    Ok(levels
        .iter()
        .zip(&idxs)
        .map(|(l, i)| found.remove(&(*l, *i)))
        .collect())
}

/// Appends leaves to the current epoch inside the caller's transaction, holding the epoch
/// row's lock so that appenders in every process are sequenced.
/// The end of epoch `epoch` of `size` leaves, read back: its stored frontier nodes and the
/// leaf hashes of its last, partial tile.
fn read_tail(
    tx: &mut ::postgres::Transaction<'_>,
    epoch: u32,
    size: u64,
) -> Result<ledger::Tail, BackendError> {
    let m = pg_err("reading the end of the audit ledger");
    let stored = read_nodes(tx, epoch, &ledger::Tail::stored_ids(size)).map_err(&m)?;
    let partial = size % ledger::TILE;
    let mut hashes = Vec::new();
    if partial > 0 {
        for r in tx
            .query(
                "SELECT hash FROM ledger_leaves WHERE epoch = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                &[&i64::from(epoch), &clamp(size - partial), &clamp(size)],
            )
            .map_err(&m)?
        {
            let b: Vec<u8> = r.get(0);
            hashes.push(caldicott_ledger::Hash::from_slice(&b).map_err(|err| BackendError::Db {
                during: "reading the end of the audit ledger",
                reason: err.to_string(),
            })?);
        }
    }
    ledger::Tail::from_parts(size, stored, hashes)
}

fn append_leaves(
    tx: &mut ::postgres::Transaction<'_>,
    cached: Option<(u32, ledger::Tail)>,
    leaves: &[LedgerLeaf],
) -> Result<(Appended, ledger::Tail), BackendError> {
    let m = pg_err("appending to the audit ledger");
    let row = tx
        .query_one(
            "SELECT epoch, size FROM ledger_epochs ORDER BY epoch DESC LIMIT 1 FOR UPDATE",
            &[],
        )
        .map_err(&m)?;
    let epoch = epoch_of(row.get(0))?;
    let size = ledger::unsigned(row.get(1), "appending to the audit ledger")?;
    let tail = match cached {
        Some((e, t)) if e == epoch && t.frontier.size() == size => t,
        _ => read_tail(tx, epoch, size)?,
    };
    let plan = ledger::plan_append(tail, leaves)?;
    let e = i64::from(epoch);
    let idx: Vec<i64> = (0..leaves.len()).map(|i| clamp(size + i as u64)).collect();
    let at: Vec<i64> = leaves.iter().map(|l| l.at_us).collect();
    let data: Vec<&[u8]> = leaves.iter().map(|l| l.data.as_slice()).collect();
    let lh: Vec<&[u8]> = plan.leaf_hashes.iter().map(|h| &h.as_bytes()[..]).collect();
    tx.execute(
        "INSERT INTO ledger_leaves (epoch, idx, at_us, hash, data)
         SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BYTEA[], $5::BYTEA[])",
        &[&e, &idx, &at, &lh, &data],
    )
    .map_err(&m)?;
    // Leaf hashes (level 0) live with the leaves; interior nodes from `STORED_LEVEL` up in
    // their own table.
    let interior = &plan.nodes;
    let levels: Vec<i16> = interior.iter().map(|(id, _)| i16::from(id.level)).collect();
    let nidx: Vec<i64> = interior.iter().map(|(id, _)| clamp(id.index)).collect();
    let hashes: Vec<&[u8]> = interior.iter().map(|(_, h)| &h.as_bytes()[..]).collect();
    tx.execute(
        "INSERT INTO ledger_nodes (epoch, level, idx, hash)
         SELECT $1, * FROM UNNEST($2::SMALLINT[], $3::BIGINT[], $4::BYTEA[])",
        &[&e, &levels, &nidx, &hashes],
    )
    .map_err(&m)?;
    let tiles = &plan.tiles;
    if !tiles.is_empty() {
        let tno: Vec<i64> = tiles.iter().map(|(t, _)| clamp(*t)).collect();
        let th: Vec<&[u8]> = tiles.iter().map(|(_, h)| h.as_slice()).collect();
        tx.execute(
            "INSERT INTO ledger_tiles (epoch, tile, hashes)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[])",
            &[&e, &tno, &th],
        )
        .map_err(&m)?;
    }
    let mut keys: Vec<i64> = Vec::new();
    let mut kidx: Vec<i64> = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        for k in &leaf.keys {
            keys.push(ledger::key_hash(k));
            kidx.push(idx[i]);
        }
    }
    if !keys.is_empty() {
        tx.execute(
            "INSERT INTO ledger_keys (key, epoch, idx)
             SELECT q.key, $1, q.idx FROM UNNEST($2::BIGINT[], $3::BIGINT[]) AS q(key, idx)
             ON CONFLICT DO NOTHING",
            &[&e, &keys, &kidx],
        )
        .map_err(&m)?;
    }
    let new_size = plan.tail.frontier.size();
    tx.execute(
        "UPDATE ledger_epochs SET size = $2 WHERE epoch = $1",
        &[&e, &clamp(new_size)],
    )
    .map_err(&m)?;
    Ok((
        Appended {
            epoch,
            first: size,
            size: new_size,
        },
        plan.tail,
    ))
}
