//! `DATA_DIR/approvals.db`: approval requests and grants, in SQLite (WAL, `synchronous=FULL`,
//! mode 0600). Every state change is one transaction, committed (fsync'd) before it is reported.
//!
//! The engine writes through one connection (from `spawn_blocking`, never on a runtime worker)
//! and reads through another; WAL means reads never wait for a commit's fsync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use audit::Actor;
use audit::canonical::{hex, unhex32};
use config::{ApprovalMode, GrantKind};
use protocols::Action;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::error::ApprovalError;
use crate::model::{Decision, GrantRec, GrantView, Record, Required, State, Terms, View, ms, now_ms};

/// File name of the approvals database inside the data dir.
pub const DB_FILE: &str = "approvals.db";

/// How many requests `list(false)` shows at most (newest first).
pub const LIST_ALL_LIMIT: usize = 1000;

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS approvals(
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    subject TEXT NOT NULL,
    requester TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT,
    upstream TEXT,
    digest TEXT NOT NULL,
    required TEXT NOT NULL,
    grant_kind TEXT NOT NULL,
    window_ttl_ms INTEGER NOT NULL,
    pending_ttl_ms INTEGER NOT NULL,
    mode TEXT NOT NULL,
    hold_timeout_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    excerpt TEXT,
    approvals TEXT NOT NULL,
    denial TEXT,
    decided_ms INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_state ON approvals(state, created_ms);
CREATE TABLE IF NOT EXISTS grants(
    id TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT,
    digest TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER,
    used_by TEXT,
    revoked_ms INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS grants_approval ON grants(approval_id);
CREATE INDEX IF NOT EXISTS grants_active ON grants(expires_ms) WHERE used_ms IS NULL AND revoked_ms IS NULL;
PRAGMA user_version = 1;
";

const APPROVAL_COLS: &str = "id, state, subject, requester, action, model, upstream, digest, required, grant_kind, \
     window_ttl_ms, pending_ttl_ms, mode, hold_timeout_ms, created_ms, expires_ms, request_id, excerpt, approvals, \
     denial, decided_ms";

const GRANT_COLS: &str = "id, approval_id, kind, subject, action, model, digest, created_ms, expires_ms, used_ms, \
     used_by, revoked_ms, revoked_by, revoke_reason";

/// The two connections to `approvals.db`.
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Db {
    /// Opens (creating when needed, mode 0600) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Db>, ApprovalError> {
        std::fs::create_dir_all(dir).map_err(|e| ApprovalError::Store(format!("{}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        create_private(&path)?;
        let err = |e: rusqlite::Error| ApprovalError::Store(format!("{}: {e}", path.display()));
        let writer = Connection::open(&path).map_err(err)?;
        writer.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        writer.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // FULL in WAL mode: every commit fsyncs the WAL before it returns.
        writer.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        writer.execute_batch(SCHEMA_SQL).map_err(err)?;
        // A second connection for reads only, so a read never waits behind a commit's fsync.
        let reader = Connection::open(&path).map_err(err)?;
        reader.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        Ok(Arc::new(Db { path, writer: Mutex::new(writer), reader: Mutex::new(reader) }))
    }

    /// Opens an existing store read-only (the CLI on a data dir); `None` when there is none.
    pub fn open_reader(dir: &Path) -> Result<Option<Connection>, ApprovalError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let err = |e: rusqlite::Error| ApprovalError::Store(format!("{}: {e}", path.display()));
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        Ok(Some(conn))
    }

    /// Runs `f` in one write transaction (blocking: call from `spawn_blocking`).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, ApprovalError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let out = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Runs `f` on the read connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, ApprovalError> {
        f(&lock(&self.reader)).map_err(|e| self.err(e))
    }

    fn err(&self, e: rusqlite::Error) -> ApprovalError {
        ApprovalError::Store(format!("{}: {e}", self.path.display()))
    }
}

/// Creates the file with mode 0600 before SQLite does (SQLite gives its `-wal` and `-shm` files
/// the database file's mode), and tightens an existing one.
fn create_private(path: &Path) -> Result<(), ApprovalError> {
    let err = |e: std::io::Error| ApprovalError::Store(format!("{}: {e}", path.display()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        o.open(path).map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    {
        o.open(path).map_err(err)?;
    }
    Ok(())
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Plain data into a String cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, what.to_string().into())
}

fn from_json<T: serde::de::DeserializeOwned>(col: usize, s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e)))
}

fn action_of(col: usize, s: &str) -> rusqlite::Result<Action> {
    Action::from_name(s).ok_or_else(|| bad(col, "unknown action"))
}

/// Inserts a new pending request.
pub(crate) fn insert_approval(tx: &Connection, r: &Record) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO approvals({APPROVAL_COLS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
        ),
        params![
            r.id,
            r.state.as_str(),
            r.subject,
            to_json(&*r.requester),
            r.action.as_str(),
            r.model,
            r.upstream,
            hex(&r.digest),
            to_json(&r.terms.required),
            r.terms.grant.as_str(),
            i64_of(ms(r.terms.window_ttl)),
            i64_of(ms(r.terms.pending_ttl)),
            r.terms.mode.as_str(),
            i64_of(ms(r.terms.hold_timeout)),
            i64_of(r.created_ms),
            i64_of(r.expires_ms),
            r.request_id,
            r.excerpt,
            to_json(&r.approvals),
            r.denial.as_ref().map(to_json),
            r.decided_ms.map(i64_of),
        ],
    )?;
    Ok(())
}

/// Writes a request's new state and decisions, and the grant it issued (one transaction).
pub(crate) fn update_approval(tx: &Connection, r: &Record, grant: Option<&GrantRec>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE approvals SET state = ?2, approvals = ?3, denial = ?4, decided_ms = ?5 WHERE id = ?1",
        params![
            r.id,
            r.state.as_str(),
            to_json(&r.approvals),
            r.denial.as_ref().map(to_json),
            r.decided_ms.map(i64_of)
        ],
    )?;
    if let Some(g) = grant {
        insert_grant(tx, g)?;
    }
    Ok(())
}

fn insert_grant(tx: &Connection, g: &GrantRec) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO grants({GRANT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            g.id,
            g.approval_id,
            g.kind.as_str(),
            g.subject,
            g.action.as_str(),
            g.model,
            g.digest.as_ref().map(|d| hex(d)),
            i64_of(g.created_ms),
            i64_of(g.expires_ms),
            g.used_ms.map(i64_of),
            g.used_by,
            g.revoked_ms.map(i64_of),
            g.revoked_by,
            g.revoke_reason,
        ],
    )?;
    Ok(())
}

/// Marks a request grant used; false when it was already used or revoked.
pub(crate) fn use_grant(tx: &Connection, id: &str, at_ms: u64, by: &str) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE grants SET used_ms = ?2, used_by = ?3 WHERE id = ?1 AND used_ms IS NULL AND revoked_ms IS NULL",
        params![id, i64_of(at_ms), by],
    )?;
    Ok(n == 1)
}

/// Gives back a request grant whose use could not be recorded.
pub(crate) fn unuse_grant(tx: &Connection, id: &str, by: &str) -> rusqlite::Result<()> {
    tx.execute("UPDATE grants SET used_ms = NULL, used_by = NULL WHERE id = ?1 AND used_by = ?2", params![id, by])?;
    Ok(())
}

/// Marks a grant revoked; false when it already was.
pub(crate) fn revoke_grant(
    tx: &Connection,
    id: &str,
    at_ms: u64,
    by: &str,
    reason: Option<&str>,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE grants SET revoked_ms = ?2, revoked_by = ?3, revoke_reason = ?4 WHERE id = ?1 AND revoked_ms IS NULL",
        params![id, i64_of(at_ms), by, reason],
    )?;
    Ok(n == 1)
}

fn approval_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let state: String = row.get(1)?;
    let requester: String = row.get(3)?;
    let action: String = row.get(4)?;
    let digest: String = row.get(7)?;
    let required: String = row.get(8)?;
    let grant: String = row.get(9)?;
    let mode: String = row.get(12)?;
    let approvals: String = row.get(18)?;
    let denial: Option<String> = row.get(19)?;
    Ok(Record {
        id: row.get(0)?,
        state: State::from_name(&state).ok_or_else(|| bad(1, "unknown state"))?,
        subject: row.get(2)?,
        requester: Arc::new(from_json::<Actor>(3, &requester)?),
        action: action_of(4, &action)?,
        model: row.get(5)?,
        upstream: row.get(6)?,
        digest: unhex32(&digest).ok_or_else(|| bad(7, "bad digest"))?,
        terms: Terms {
            required: from_json::<Vec<Required>>(8, &required)?,
            grant: GrantKind::from_name(&grant).ok_or_else(|| bad(9, "unknown grant kind"))?,
            window_ttl: Duration::from_millis(u64_of(row.get(10)?)),
            pending_ttl: Duration::from_millis(u64_of(row.get(11)?)),
            mode: ApprovalMode::from_name(&mode).ok_or_else(|| bad(12, "unknown mode"))?,
            hold_timeout: Duration::from_millis(u64_of(row.get(13)?)),
        },
        created_ms: u64_of(row.get(14)?),
        expires_ms: u64_of(row.get(15)?),
        request_id: row.get(16)?,
        excerpt: row.get(17)?,
        approvals: from_json::<Vec<Decision>>(18, &approvals)?,
        denial: denial.as_deref().map(|d| from_json::<Decision>(19, d)).transpose()?,
        decided_ms: row.get::<_, Option<i64>>(20)?.map(u64_of),
    })
}

fn grant_row(row: &Row<'_>) -> rusqlite::Result<GrantRec> {
    let kind: String = row.get(2)?;
    let action: String = row.get(4)?;
    let digest: Option<String> = row.get(6)?;
    Ok(GrantRec {
        id: row.get(0)?,
        approval_id: row.get(1)?,
        kind: GrantKind::from_name(&kind).ok_or_else(|| bad(2, "unknown grant kind"))?,
        subject: row.get(3)?,
        action: action_of(4, &action)?,
        model: row.get(5)?,
        digest: digest.as_deref().map(|d| unhex32(d).ok_or_else(|| bad(6, "bad digest"))).transpose()?,
        created_ms: u64_of(row.get(7)?),
        expires_ms: u64_of(row.get(8)?),
        used_ms: row.get::<_, Option<i64>>(9)?.map(u64_of),
        used_by: row.get(10)?,
        revoked_ms: row.get::<_, Option<i64>>(11)?.map(u64_of),
        revoked_by: row.get(12)?,
        revoke_reason: row.get(13)?,
    })
}

/// One request by id.
pub(crate) fn approval(c: &Connection, id: &str) -> rusqlite::Result<Option<Record>> {
    c.prepare_cached(&format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = ?1"))?
        .query_row([id], approval_row)
        .optional()
}

/// Every pending request (the engine's start-up load).
pub(crate) fn pending(c: &Connection) -> rusqlite::Result<Vec<Record>> {
    let mut st =
        c.prepare(&format!("SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending' ORDER BY created_ms"))?;
    st.query_map([], approval_row)?.collect()
}

/// One grant by id.
pub(crate) fn grant(c: &Connection, id: &str) -> rusqlite::Result<Option<GrantRec>> {
    c.prepare_cached(&format!("SELECT {GRANT_COLS} FROM grants WHERE id = ?1"))?.query_row([id], grant_row).optional()
}

/// The grant a request issued.
pub(crate) fn grant_of(c: &Connection, approval_id: &str) -> rusqlite::Result<Option<GrantRec>> {
    c.prepare_cached(&format!("SELECT {GRANT_COLS} FROM grants WHERE approval_id = ?1"))?
        .query_row([approval_id], grant_row)
        .optional()
}

/// Grants neither used nor revoked nor run out at `now`.
pub(crate) fn active_grants(c: &Connection, now: u64) -> rusqlite::Result<Vec<GrantRec>> {
    let mut st = c.prepare(&format!(
        "SELECT {GRANT_COLS} FROM grants WHERE used_ms IS NULL AND revoked_ms IS NULL AND expires_ms > ?1 \
         ORDER BY created_ms"
    ))?;
    st.query_map([i64_of(now)], grant_row)?.collect()
}

/// Requests as views: pending ones (oldest first), or all (newest first, at most
/// [`LIST_ALL_LIMIT`]).
pub(crate) fn views(c: &Connection, pending_only: bool) -> rusqlite::Result<Vec<View>> {
    let sql = if pending_only {
        format!("SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending' ORDER BY created_ms")
    } else {
        format!("SELECT {APPROVAL_COLS} FROM approvals ORDER BY created_ms DESC LIMIT {LIST_ALL_LIMIT}")
    };
    let mut st = c.prepare(&sql)?;
    let records: Vec<Record> = st.query_map([], approval_row)?.collect::<rusqlite::Result<_>>()?;
    records.iter().map(|r| view(c, r)).collect()
}

/// A request's view, with its grant.
pub(crate) fn view(c: &Connection, r: &Record) -> rusqlite::Result<View> {
    let g = if r.state == State::Approved { grant_of(c, &r.id)? } else { None };
    Ok(View::of(r, g.as_ref()))
}

/// Active grants as views.
pub(crate) fn grant_views(c: &Connection) -> rusqlite::Result<Vec<GrantView>> {
    let now = now_ms();
    Ok(active_grants(c, now)?.iter().map(|g| GrantView::of(g, now)).collect())
}
