//! A SQLite [`TokenStore`]: durable, and shared between processes that open one file.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

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
        if !path.exists() {
            create_private(path).map_err(|e| failed(&e))?;
        }
        Self::init(Connection::open(path).map_err(|e| failed(&e))?)
    }

    /// A private in-memory database, for tests and one-off runs.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(sql)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        // Other processes may hold the write lock briefly; wait rather than fail.
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS gateway_auth_kv (
                 key   TEXT PRIMARY KEY NOT NULL,
                 value BLOB NOT NULL
             );",
        )
        .map_err(sql)?;
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
/// (setting the mode afterwards would leave a window where it is readable).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}
