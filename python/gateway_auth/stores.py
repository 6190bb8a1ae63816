"""Where token sessions live: the plugin's ``store`` import.

Three backends, the same as the Rust host's (``host/src/store``), on the same layouts
so a Python and a Rust process can share one store:

- :class:`MemoryStore`: one process, gone on exit;
- :class:`SqliteStore`: a file shared by every process on one machine that opens it
  (table ``gateway_auth_kv``, WAL mode, compare-and-swap in an immediate transaction);
- :class:`RedisStore`: a Redis server shared by gateways on many machines (keys under
  ``gateway-auth:``, compare-and-swap as one server-side Lua script).

:func:`open_store` picks one by URL. Any object with the :class:`Store` methods works
too. A backend signals a failure by raising (any exception): the plugin receives the
text as its store error and answers :class:`~gateway_auth.errors.StoreError` where it
needed the store; a failing store never traps the plugin. Values are opaque bytes
(the plugin's serialized sessions) that hold tokens: keep the file private and the
server's access controlled.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any, Dict, Optional, Protocol, runtime_checkable

from .errors import StoreBackendError

__all__ = ["Store", "MemoryStore", "SqliteStore", "RedisStore", "open_store"]


@runtime_checkable
class Store(Protocol):
    """A key/value store with an atomic compare-and-swap, safe to call from several
    threads. Raise (anything) on failure; the message must not contain values."""

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key``, or ``None``."""
        ...

    def compare_and_swap(self, key: str, expected: Optional[bytes], value: Optional[bytes]) -> bool:
        """Writes ``value`` (``None`` deletes) only if the current value equals
        ``expected`` (``None``: absent); whether it wrote."""
        ...


class MemoryStore:
    """A dict behind a lock: one process, shared by the plugins given it."""

    def __init__(self) -> None:
        self._values: Dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key``, or ``None``."""
        with self._lock:
            return self._values.get(key)

    def compare_and_swap(self, key: str, expected: Optional[bytes], value: Optional[bytes]) -> bool:
        """Atomic compare-and-swap (see :class:`Store`)."""
        with self._lock:
            if self._values.get(key) != expected:
                return False
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = bytes(value)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


_BUSY_TIMEOUT = 5.0  # seconds a statement waits for another connection's lock


class SqliteStore:
    """Values in table ``gateway_auth_kv`` of a SQLite file, the Rust host's schema:
    every process (Python or Rust) that opens the file shares the sessions.

    A new file is created readable by its owner only (it holds tokens). Each thread
    gets its own connection; compare-and-swap takes the write lock before reading
    (``BEGIN IMMEDIATE``), so no other process changes the row in between.
    """

    def __init__(self, path: "os.PathLike[str] | str") -> None:
        self.path = os.fspath(path)
        self._local = threading.local()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as e:
            raise StoreBackendError(f"{self.path}: {e}") from None
        conn = self._connection()
        self._retry_while_busy(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchall())

        def create() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS gateway_auth_kv ("
                             " key   TEXT PRIMARY KEY NOT NULL,"
                             " value BLOB NOT NULL)")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._retry_while_busy(create)

    def _connection(self) -> sqlite3.Connection:
        conn: Optional[sqlite3.Connection] = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.Error as e:
                raise StoreBackendError(f"{self.path}: {e}") from None
            self._local.conn = conn
        return conn

    def _retry_while_busy(self, step: Any) -> None:
        # Processes opening a new file together race to convert it to WAL and create
        # the table; SQLite answers some of those races with "database is locked" at
        # once, without its busy handler.
        deadline = time.monotonic() + _BUSY_TIMEOUT
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise StoreBackendError(f"{self.path}: {e}") from None
                time.sleep(0.005)

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key``, or ``None``."""
        try:
            row = self._connection().execute(
                "SELECT value FROM gateway_auth_kv WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as e:
            raise StoreBackendError(f"{self.path}: {e}") from None
        return None if row is None else bytes(row[0])

    def compare_and_swap(self, key: str, expected: Optional[bytes], value: Optional[bytes]) -> bool:
        """Atomic compare-and-swap (see :class:`Store`), across processes."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value FROM gateway_auth_kv WHERE key = ?",
                                   (key,)).fetchone()
                current = None if row is None else bytes(row[0])
                if current != (None if expected is None else bytes(expected)):
                    conn.execute("ROLLBACK")
                    return False
                if value is None:
                    conn.execute("DELETE FROM gateway_auth_kv WHERE key = ?", (key,))
                else:
                    conn.execute("INSERT INTO gateway_auth_kv (key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                 (key, bytes(value)))
                conn.execute("COMMIT")
                return True
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreBackendError(f"{self.path}: {e}") from None

    def close(self) -> None:
        """Closes this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


DEFAULT_REDIS_PREFIX = "gateway-auth:"
"""The key prefix unless another is given, as in the Rust host."""

REDIS_TIMEOUT = 2.0
"""Seconds connecting, and each command, may take (as in the Rust host)."""

# KEYS[1]: the key. ARGV: whether a value is expected ("1"/"0"), the expected value,
# whether to write ("1") or delete ("0"), the value. Returns 1 when it wrote. The very
# script of host/src/store/redis.rs, so both hosts swap alike.
COMPARE_AND_SWAP = r"""
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
"""


def _without_password(url: str) -> str:
    """``url`` with any credentials replaced, for messages."""
    scheme, sep, _ = url.partition("://")
    at = url.rfind("@")
    if sep and at >= 0:
        return f"{scheme}://[credentials]@{url[at + 1:]}"
    return url


class RedisStore:
    """Sessions in a Redis database, shared with the Rust host's ``RedisStore``: the
    same keys (``prefix`` + session key) and the same compare-and-swap script.

    Needs the ``redis`` package (``pip install gateway-auth[redis]``). Nothing is
    connected until the first call; a server that is down is a store error then, and
    a restarted one is picked up by the next call.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        try:
            import redis
        except ImportError:
            raise StoreBackendError(
                "RedisStore needs the redis package: pip install gateway-auth[redis]") from None
        self.address = _without_password(url)
        self.prefix = prefix
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        except (ValueError, redis.RedisError) as e:
            raise StoreBackendError(f"redis URL {self.address}: {e}") from None
        self._script: Any = self._client.register_script(COMPARE_AND_SWAP)
        self._errors: Any = redis.RedisError

    def _failed(self, e: Exception) -> StoreBackendError:
        return StoreBackendError(f"redis at {self.address}: {e}")

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key``, or ``None``."""
        try:
            value: Any = self._client.get(self.prefix + key)
        except self._errors as e:
            raise self._failed(e) from None
        return None if value is None else bytes(value)

    def compare_and_swap(self, key: str, expected: Optional[bytes], value: Optional[bytes]) -> bool:
        """Atomic compare-and-swap (see :class:`Store`), on the server."""
        def flag(present: bool) -> str:
            return "1" if present else "0"

        try:
            wrote = self._script(keys=[self.prefix + key], args=[
                flag(expected is not None), expected or b"",
                flag(value is not None), value or b""])
        except self._errors as e:
            raise self._failed(e) from None
        return int(wrote) == 1

    def close(self) -> None:
        """Closes the connection pool."""
        self._client.close()


def open_store(url: str) -> Store:
    """The store ``url`` names, as the Rust host's ``open_store``: ``memory:``,
    ``sqlite:PATH`` (created if missing) or ``redis://HOST:PORT/DB`` (keys under
    ``gateway-auth:`` unless the URL ends in ``?prefix=P``)."""
    if url == "memory:":
        return MemoryStore()
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        if not path:
            raise StoreBackendError("sqlite: needs a path, e.g. sqlite:tokens.db")
        return SqliteStore(path)
    if url.startswith("redis://") or url.startswith("rediss://"):
        base, sep, prefix = url.partition("?prefix=")
        return RedisStore(base, prefix if sep else DEFAULT_REDIS_PREFIX)
    raise StoreBackendError(
        f"unknown store {url!r}: use memory:, sqlite:PATH or redis://HOST:PORT/DB")
