//! The `store` import: durable key/value storage for token sessions.
//!
//! Two backends: [`MemoryStore`] (one process, gone on exit) and [`SqliteStore`] (a
//! file, shared by every instance and process that opens it). Values are opaque bytes
//! (the plugin's serialized sessions); they hold tokens, so keep the file private.

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

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
