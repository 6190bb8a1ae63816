//! An in-memory [`TokenStore`].

use std::collections::HashMap;
use std::sync::Mutex;

use super::{StoreError, TokenStore};

/// Keeps values in a map; shared by every plugin instance holding the same `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let values = super::lock(&self.values)?;
        Ok(values.get(key).cloned())
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut values = super::lock(&self.values)?;
        if values.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        match value {
            Some(v) => values.insert(key.to_string(), v.to_vec()),
            None => values.remove(key),
        };
        Ok(true)
    }
}
