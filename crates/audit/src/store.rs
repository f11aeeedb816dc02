//! The embedded SQLite store: schema, the append transaction, and reads.
//!
//! One file, `audit.db` in the data dir, in WAL mode. Writers append under SQLite's write lock
//! (`BEGIN IMMEDIATE`), reading the chain head inside the transaction, so the gateway's writer
//! and a CLI acting on the same data dir extend one chain without forking it. Readers use their
//! own connections and never block the writer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::canonical::{GENESIS, chain_hash, hex};
use crate::event::Event;

/// File name of the audit database inside the data dir.
pub const DB_FILE: &str = "audit.db";

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("audit store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A stored value is not what the schema promises.
    #[error("audit store: {0}")]
    Corrupt(String),
    /// An injected fault (tests only; see `MODELGATE_AUDIT_FAULTS`).
    #[error("injected fault: {0}")]
    Injected(String),
}

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    time_ms INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT,
    subject TEXT,
    action TEXT,
    model TEXT,
    writer_id TEXT NOT NULL,
    canonical BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_request ON events(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_time ON events(time_ms);
CREATE TABLE IF NOT EXISTS content(
    id INTEGER PRIMARY KEY,
    request_id TEXT,
    direction TEXT NOT NULL,
    codec TEXT NOT NULL,
    key_id TEXT,
    salt BLOB NOT NULL,
    size INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    data BLOB NOT NULL,
    timing TEXT
);
CREATE TABLE IF NOT EXISTS checkpoints(
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS writers(
    writer_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_seq INTEGER NOT NULL,
    started_time TEXT NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0,
    recovered INTEGER NOT NULL DEFAULT 0
);
";

/// The chain's head: the last event's position and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Last `seq` (0 for an empty log).
    pub seq: u64,
    /// Its hash ([`GENESIS`] for an empty log).
    pub hash: [u8; 32],
}

/// What an append achieved.
#[derive(Clone, Copy, Debug)]
pub struct Appended {
    /// The new head.
    pub head: Head,
    /// Time spent in COMMIT: writing the WAL and its fsync.
    pub commit: Duration,
}

/// A stored checkpoint: its body bytes and raw signature.
pub type StoredCheckpoint = (Vec<u8>, Vec<u8>);

/// One content row to insert with an event.
#[derive(Debug)]
pub struct ContentRow<'a> {
    /// The exchange.
    pub request_id: Option<&'a str>,
    /// `input` or `output`.
    pub direction: &'static str,
    /// `lz4` (size-prefixed block) or `none`.
    pub codec: &'static str,
    /// Per-body random salt mixed into the digest.
    pub salt: &'a [u8],
    /// Uncompressed length.
    pub size: u64,
    /// Whether recording stopped at the size cap.
    pub truncated: bool,
    /// The stored (compressed) bytes.
    pub data: &'a [u8],
    /// Chunk timing, JSON `[[offset, ms], ...]`.
    pub timing: Option<&'a str>,
}

/// A connection to the store, for a writer or a reader.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite { path: path.to_path_buf(), source }
}

impl Store {
    /// Opens (creating when needed) the store in `dir` for appending.
    pub fn open_writer(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(sql(&path))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql(&path))?;
        // 8 KiB pages for a new store: appends of ~1 KiB events write fewer, fuller pages than
        // with 4 KiB (BENCHMARKS 4.3). An existing store keeps its page size.
        conn.pragma_update(None, "page_size", 8_192).map_err(sql(&path))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql(&path))?;
        // FULL in WAL mode: every commit fsyncs the WAL before it returns.
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql(&path))?;
        // Appends touch the tail pages of a few B-trees; a larger cache keeps those pages from
        // being read over and over.
        conn.pragma_update(None, "cache_size", -32_768).map_err(sql(&path))?;
        // A checkpoint runs inside the commit that crosses this many WAL pages and holds up every
        // record behind it: 1,024 pages of WAL (8 MiB with 8 KiB pages, 4 MiB on older stores
        // with 4 KiB) keep that stall to a few milliseconds.
        // 64 MiB cost the same CPU but made `balanced`'s p99 4x longer (BENCHMARKS 4.1).
        conn.pragma_update(None, "wal_autocheckpoint", 1_024).map_err(sql(&path))?;
        conn.execute_batch(SCHEMA_SQL).map_err(sql(&path))?;
        restrict_mode(&path);
        Ok(Store { conn, path })
    }

    /// Opens an existing store read-only.
    pub fn open_reader(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(sql(&path))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql(&path))?;
        Ok(Store { conn, path })
    }

    /// The raw connection (reads, verification, tests).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql(&self.path)
    }

    /// A meta value, creating it with `init` when absent.
    pub fn meta_or_init(&self, key: &str, init: impl FnOnce() -> String) -> Result<String, StoreError> {
        if let Some(v) = self.meta(key)? {
            return Ok(v);
        }
        let v = init();
        self.conn
            .execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)", params![key, v])
            .map_err(self.err())?;
        Ok(self.meta(key)?.unwrap_or(v))
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(self.err())
    }

    /// The current head (read outside any write transaction: a snapshot).
    pub fn head(&self) -> Result<Head, StoreError> {
        read_head(&self.conn).map_err(self.err())
    }

    /// Appends events in one transaction: each gets `seq`, `prev_hash`, `hash` from the head
    /// found under the write lock, with `fill` called first to complete it (content rows,
    /// recorded time). Returns the new head and the commit's duration. Nothing is appended on error.
    pub fn append<'e>(
        &mut self,
        events: impl IntoIterator<Item = &'e mut Event>,
        mut fill: impl FnMut(&mut Event, &mut ContentWriter<'_>) -> Result<(), StoreError>,
        fault: Option<&str>,
    ) -> Result<Appended, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql(&path))?;
        let mut head = read_head(&tx).map_err(sql(&path))?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO events(seq, hash, prev_hash, time_ms, event_type, outcome, request_id, subject, action, model, writer_id, canonical)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(sql(&path))?;
            let mut content = ContentWriter {
                stmt: tx
                    .prepare_cached(
                        "INSERT INTO content(request_id, direction, codec, key_id, salt, size, truncated, data, timing)
                         VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(sql(&path))?,
                conn: &tx,
                path: &path,
            };
            for e in events {
                fill(e, &mut content)?;
                e.seq = head.seq + 1;
                e.prev_hash = hex(&head.hash);
                e.hash = None;
                let bytes = e.canonical_bytes();
                let hash = chain_hash(&head.hash, &bytes);
                let cols = IndexColumns::of(e);
                ins.execute(params![
                    e.seq as i64,
                    &hash[..],
                    &head.hash[..],
                    cols.time_ms,
                    e.event_type,
                    e.outcome.as_str(),
                    e.request_id,
                    cols.subject,
                    e.action,
                    cols.model,
                    e.writer_id,
                    bytes,
                ])
                .map_err(sql(&path))?;
                e.hash = Some(hex(&hash));
                head = Head { seq: e.seq, hash };
            }
        }
        if let Some(f) = fault {
            // The transaction is rolled back on drop, as a failed COMMIT would leave it.
            return Err(StoreError::Injected(f.to_string()));
        }
        let t = std::time::Instant::now();
        tx.commit().map_err(sql(&path))?;
        Ok(Appended { head, commit: t.elapsed() })
    }

    /// Stores a signed checkpoint.
    pub fn insert_checkpoint(&self, seq: u64, body: &[u8], signature: &[u8]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO checkpoints(seq, body, signature) VALUES (?1, ?2, ?3)",
                params![seq as i64, body, signature],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The newest checkpoint: its body and signature.
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.conn
            .query_row("SELECT body, signature FROM checkpoints ORDER BY id DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(self.err())
    }

    /// Registers a writer process.
    pub fn register_writer(&self, writer_id: &str, kind: &str, started_seq: u64, time: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO writers(writer_id, kind, pid, started_seq, started_time) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![writer_id, kind, std::process::id(), started_seq as i64, time],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Marks a writer as stopped cleanly.
    pub fn mark_stopped(&self, writer_id: &str) -> Result<(), StoreError> {
        self.conn.execute("UPDATE writers SET stopped = 1 WHERE writer_id = ?1", [writer_id]).map_err(self.err())?;
        Ok(())
    }

    /// Gateway writers that neither stopped cleanly nor were recovered yet, with their first seq.
    pub fn crashed_writers(&self, except: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT writer_id, started_seq FROM writers
                 WHERE kind = 'gateway' AND stopped = 0 AND recovered = 0 AND writer_id != ?1 ORDER BY started_seq",
            )
            .map_err(self.err())?;
        let rows =
            st.query_map([except], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Marks a crashed writer as reported by `gateway.recovered`.
    pub fn mark_recovered(&self, writer_id: &str) -> Result<(), StoreError> {
        self.conn.execute("UPDATE writers SET recovered = 1 WHERE writer_id = ?1", [writer_id]).map_err(self.err())?;
        Ok(())
    }

    /// Exchanges a writer started and never completed: `(request_id, event_type, action)`.
    pub fn open_exchanges(
        &self,
        writer_id: &str,
        from_seq: u64,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT r.request_id, r.event_type, r.action FROM events r
                 WHERE r.seq > ?2 AND r.writer_id = ?1 AND r.event_type LIKE '%.request' AND r.request_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM events c WHERE c.request_id = r.request_id AND c.event_type LIKE '%.completion')
                 ORDER BY r.seq",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![writer_id, from_seq as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Simulates a full disk (tests): SQLite refuses to grow the database past its current size.
    pub fn set_full(&self, full: bool) -> Result<(), StoreError> {
        let pages: i64 = if full {
            self.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(self.err())?
        } else {
            4_294_967_294
        };
        self.conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(())).map_err(self.err())?;
        Ok(())
    }
}

/// Inserts content rows inside an append transaction.
pub struct ContentWriter<'a> {
    stmt: rusqlite::CachedStatement<'a>,
    conn: &'a Connection,
    path: &'a Path,
}

impl ContentWriter<'_> {
    /// Inserts one body; returns its reference (`content:<id>`).
    pub fn insert(&mut self, row: &ContentRow<'_>) -> Result<String, StoreError> {
        self.stmt
            .execute(params![
                row.request_id,
                row.direction,
                row.codec,
                row.salt,
                row.size as i64,
                row.truncated,
                row.data,
                row.timing
            ])
            .map_err(sql(self.path))?;
        Ok(format!("content:{}", self.conn.last_insert_rowid()))
    }
}

impl std::fmt::Debug for ContentWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentWriter")
    }
}

fn read_head(conn: &Connection) -> rusqlite::Result<Head> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Head { seq: 0, hash: GENESIS },
        Some((seq, h)) => Head { seq: seq as u64, hash: h.try_into().unwrap_or(GENESIS) },
    })
}

/// The columns search filters on, derived from the event; `audit verify` checks them against
/// the hashed bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct IndexColumns {
    /// Event time as Unix milliseconds.
    pub time_ms: i64,
    /// `actor.subject`.
    pub subject: Option<String>,
    /// `gen_ai.request.model`, else `resource.id` for model resources.
    pub model: Option<String>,
}

impl IndexColumns {
    /// The index columns of an event.
    pub fn of(e: &Event) -> IndexColumns {
        let model = model_of(
            e.gen_ai.as_ref().and_then(|g| g.request_model.as_deref()),
            e.resource.as_ref().map(|r| (r.kind.as_str(), r.id.as_deref())),
        );
        IndexColumns {
            time_ms: time_ms(&e.time),
            subject: e.actor.as_ref().and_then(|a| a.subject.clone()),
            model: model.map(str::to_string),
        }
    }
}

/// An event's `time` as Unix milliseconds (0 when unreadable).
pub fn time_ms(time: &str) -> i64 {
    humantime::parse_rfc3339(time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// An event's model: `gen_ai.request.model`, else the id of a `model` resource (`(type, id)`).
pub fn model_of<'a>(request_model: Option<&'a str>, resource: Option<(&str, Option<&'a str>)>) -> Option<&'a str> {
    request_model.or_else(|| resource.filter(|(kind, _)| *kind == "model").and_then(|(_, id)| id))
}

/// Owner-only permissions on the database file (it holds prompts).
fn restrict_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}
