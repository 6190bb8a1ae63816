//! A SQLite [`TokenStore`]: durable, and shared between processes that open one file.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::{StoreError, TokenStore};

/// Values in one table of a SQLite database file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `path`. A new file is made readable
    /// by its owner only: it holds tokens.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let failed = |e: &dyn std::fmt::Display| StoreError(format!("{}: {e}", path.display()));
        create_private(path).map_err(|e| failed(&e))?;
        Self::init(Connection::open(path).map_err(|e| failed(&e))?)
    }

    /// A private in-memory database, for tests and one-off runs.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(sql)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        // Other processes may hold the write lock briefly; wait rather than fail.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        // Processes opening a new file together race to convert it to WAL and to create
        // the table. SQLite answers some of those races with "database is locked" at
        // once, without its busy handler (a lock upgrade that could deadlock), so they
        // are tried again for as long as the busy timeout.
        retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        retry_while_busy(|| {
            // IMMEDIATE: the write lock first, so the check and the creation see one
            // version of the schema.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS gateway_auth_kv (
                     key   TEXT PRIMARY KEY NOT NULL,
                     value BLOB NOT NULL
                 );",
            )?;
            tx.commit()
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }
}

impl TokenStore for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = super::lock(&self.conn)?;
        read(&conn, key).map_err(sql)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut conn = super::lock(&self.conn)?;
        // IMMEDIATE takes the write lock before reading, so no other process can
        // change the row between the comparison and the write.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let current = read(&tx, key).map_err(sql)?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        match value {
            Some(v) => tx.execute(
                "INSERT INTO gateway_auth_kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, v],
            ),
            None => tx.execute("DELETE FROM gateway_auth_kv WHERE key = ?1", params![key]),
        }
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(true)
    }
}

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `step` until it is not refused with "database is busy/locked", for at most
/// [`BUSY_TIMEOUT`].
fn retry_while_busy(mut step: impl FnMut() -> rusqlite::Result<()>) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other.map_err(sql),
        }
    }
}

/// The value under `key`, read on a connection or inside a transaction.
fn read(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT value FROM gateway_auth_kv WHERE key = ?1",
        params![key],
        |row| row.get(0),
    )
    .optional()
}

/// Creates an empty file only its owner can read, before SQLite writes a token to it
/// (setting the mode afterwards would leave a window where it is readable). A file that
/// exists already is left as it is: another process starting at the same moment may
/// have just created it, and `create_new` is what decides between them.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}
