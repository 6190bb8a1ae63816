//! The `store` import: durable key/value storage for token sessions.
//!
//! Three backends: [`MemoryStore`] (one process, gone on exit), [`SqliteStore`] (a
//! file, shared by every instance and process on one machine that opens it) and
//! [`RedisStore`] (a server, shared by gateways on many machines); [`open_store`] picks
//! one by URL. Values are opaque bytes (the plugin's serialized sessions); they hold
//! tokens, so keep the file private and the server's access controlled.

use std::sync::Arc;

mod memory;
mod redis;
mod sqlite;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// Opens the store `url` names: `memory:`, `sqlite:PATH` (created if missing), or
/// `redis://HOST:PORT/DB` (keys under `gateway-auth:` unless the URL ends in
/// `?prefix=P`). Redis over TLS (`rediss://`) is refused: this build has no TLS client
/// for Redis.
pub fn open_store(url: &str) -> Result<Arc<dyn TokenStore>, StoreError> {
    if url == "memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        if path.is_empty() {
            return Err(StoreError(
                "sqlite: needs a path, e.g. sqlite:tokens.db".into(),
            ));
        }
        return Ok(Arc::new(SqliteStore::open(path)?));
    }
    if url.starts_with("rediss://") {
        return Err(StoreError(
            "rediss:// (Redis over TLS) is not supported: use redis:// on a trusted network or through a TLS tunnel".into(),
        ));
    }
    if url.starts_with("redis://") {
        let (url, prefix) = match url.split_once("?prefix=") {
            Some((url, prefix)) => (url, prefix),
            None => (url, self::redis::DEFAULT_PREFIX),
        };
        return Ok(Arc::new(RedisStore::open(url, prefix)?));
    }
    Err(StoreError(format!(
        "unknown store {url:?}: use memory:, sqlite:PATH or redis://HOST:PORT/DB"
    )))
}

/// A key/value store with an atomic compare-and-swap.
pub trait TokenStore: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes `value` (`None` deletes) only if the current value equals `expected`
    /// (`None` = absent). Returns whether it wrote.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
}

/// Locks a backend's state; a panic elsewhere while it was held is a store failure.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StoreError> {
    mutex.lock().map_err(|_| StoreError("lock poisoned".into()))
}

/// A store failure, described without the values involved.
#[derive(Debug, thiserror::Error)]
#[error("token store: {0}")]
pub struct StoreError(pub String);

#[cfg(test)]
mod tests;
