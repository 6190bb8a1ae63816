//! A [`TokenStore`] on a Redis server, for gateways on several machines.
//!
//! Compare-and-swap runs on the server as one Lua script, so it is atomic however many
//! gateways share the server. Keys carry a prefix (default [`DEFAULT_PREFIX`]) so the
//! sessions can share a database with other data. One connection is kept and opened
//! again after a failure, so a restarted server is picked up by the next call; every
//! call is bounded by [`TIMEOUT`].

use std::sync::Mutex;
use std::time::Duration;

use super::{StoreError, TokenStore};

/// The key prefix unless another is given.
pub const DEFAULT_PREFIX: &str = "gateway-auth:";

/// How long connecting, and each command, may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS[1]: the key. ARGV: whether a value is expected ("1"/"0"), the expected value,
/// whether to write ("1") or delete ("0"), the value. Returns 1 when it wrote.
const COMPARE_AND_SWAP: &str = r#"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Sessions in a Redis database.
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    /// Where the server is, for error texts (never the password).
    address: String,
    script: redis::Script,
    connection: Mutex<Option<redis::Connection>>,
}

impl RedisStore {
    /// A store on the server at `url` (`redis://HOST:PORT/DB`)
    /// with keys under `prefix`. Nothing is connected yet: a server that is down now is
    /// an error at the first call, not here. A URL that does not parse is an error.
    pub fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError(format!("redis URL {}: {e}", without_password(url))))?;
        Ok(Self {
            address: without_password(url),
            client,
            prefix: prefix.to_string(),
            script: redis::Script::new(COMPARE_AND_SWAP),
            connection: Mutex::new(None),
        })
    }

    /// Runs `f` on the connection, opening it first if need be; a failed call drops the
    /// connection so the next one starts afresh.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = super::lock(&self.connection)?;
        if slot.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(TIMEOUT))?;
                    c.set_write_timeout(Some(TIMEOUT))?;
                    Ok(c)
                })
                .map_err(|e| self.error(e))?;
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("opened above");
        f(connection).map_err(|e| {
            *slot = None;
            self.error(e)
        })
    }

    fn error(&self, e: redis::RedisError) -> StoreError {
        StoreError(format!("redis at {}: {e}", self.address))
    }
}

impl TokenStore for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{}{key}", self.prefix);
        self.with(|c| redis::cmd("GET").arg(&key).query(c))
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let key = format!("{}{key}", self.prefix);
        let flag = |present: bool| if present { "1" } else { "0" };
        let wrote: i64 = self.with(|c| {
            self.script
                .key(&key)
                .arg(flag(expected.is_some()))
                .arg(expected.unwrap_or_default())
                .arg(flag(value.is_some()))
                .arg(value.unwrap_or_default())
                .invoke(c)
        })?;
        Ok(wrote == 1)
    }
}

/// `url` with any password replaced, for messages.
fn without_password(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://[credentials]@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_messages_carry_no_password() {
        assert_eq!(
            super::without_password("redis://user:s3cret@10.0.0.1:6379/2"),
            "redis://[credentials]@10.0.0.1:6379/2"
        );
        assert_eq!(
            super::without_password("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        let err = super::RedisStore::open("redis://u:s3cret@[bad", "p")
            .err()
            .unwrap();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
