"""Several plugin instances for a multi-threaded gateway (the Rust host's
``host/src/pool.rs``).

A :class:`Plugin` serves one call at a time. A :class:`PluginPool` holds several and
runs each call on a free one, keeping them alike: all follow one desired state (cache
settings, open and closed sessions), and each is brought up to date when it is handed
out, whether the change was made through the pool or through one of its instances.
Sessions' tokens live in the shared store, so an instance opening a session another
already uses sends no request. Each instance keeps its own TLS cache.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, List, Optional, TypeVar

from ._desired import Desired
from .metrics import metrics_text, sum_metrics
from .plugin import HeaderLines, Plugin, TlsSession
from .stores import MemoryStore, Store
from .types import (Authorization, CacheStats, Client, DeviceAuthorization, Grant,
                    PluginMetrics, Profile, Registration, RegistrationRequest,
                    ResourceAuthorization, SessionGrant, SessionState, Settings, Token,
                    TrustSpec)

__all__ = ["PluginPool"]

R = TypeVar("R")


class PluginPool:
    """``size`` :class:`Plugin` instances (at least one) with the same options (the
    keyword arguments of :class:`Plugin`), sharing one store and one desired state.

    Every method of :class:`Plugin` is here too and runs on a free instance, waiting
    for one when all are busy. A :class:`TlsSession` from :meth:`connect` lives in the
    instance that made it and is driven through that instance's lock.
    """

    def __init__(self, size: int = 2, *, store: Optional[Store] = None,
                 cache: Optional[Settings] = None, _desired: Optional[Desired] = None,
                 **options: Any) -> None:
        self.size = max(1, int(size))
        self._desired = Desired() if _desired is None else _desired
        shared_store = MemoryStore() if store is None else store
        self._all: List[Plugin] = [Plugin(store=shared_store, _desired=self._desired, **options)
                                   for _ in range(self.size)]
        self._idle: List[Plugin] = list(self._all)
        self._cond = threading.Condition()
        self._seen: dict[int, PluginMetrics] = {}
        if cache is not None:  # every instance is idle: each applies them now
            self._desired.declare_cache(cache)
            for plugin in self._all:
                plugin._sync()

    @property
    def store(self) -> Store:
        """The store every instance shares."""
        return self._all[0].store

    @contextlib.contextmanager
    def get(self) -> Iterator[Plugin]:
        """A free instance for the ``with`` block, brought up to date with the pool's
        cache settings and sessions; it goes back afterwards."""
        with self._cond:
            while not self._idle:
                self._cond.wait()
            plugin = self._idle.pop()
        try:
            plugin._sync()
            yield plugin
        finally:
            with self._cond:
                self._idle.append(plugin)
                self._cond.notify_all()

    def _on_one(self, call: Callable[[Plugin], R]) -> R:
        with self.get() as plugin:
            return call(plugin)

    @contextlib.contextmanager
    def _all_idle(self) -> Iterator[List[Plugin]]:
        """Every instance, once none is in use (none is handed out meanwhile)."""
        with self._cond:
            while len(self._idle) < self.size:
                self._cond.wait()
            taken, self._idle = self._idle, []
        try:
            yield taken
        finally:
            with self._cond:
                self._idle.extend(taken)
                self._cond.notify_all()

    # ---- tls-cache ----

    def configure(self, settings: Settings) -> None:
        """Sets every instance's cache capacity and TTL (each as it is next handed out)."""
        self._on_one(lambda p: p.configure(settings))

    def declare_cache(self, settings: Settings) -> None:
        """Records cache settings for every instance without waiting for one: each
        applies them before its next call (for callers that must not block)."""
        self._desired.declare_cache(settings)

    def prepare(self, spec: TrustSpec) -> Profile:
        """Prepares ``spec`` on a free instance (each instance has its own cache)."""
        return self._on_one(lambda p: p.prepare(spec))

    def connect(self, profile_id: str, server_name: str, alpn: Any = ()) -> TlsSession:
        """A TLS session on a free instance (see :meth:`Plugin.connect`)."""
        return self._on_one(lambda p: p.connect(profile_id, server_name, alpn))

    def clear(self) -> None:
        """Clears every instance's cache, waiting until none is in use."""
        with self._all_idle() as plugins:
            for plugin in plugins:
                plugin.clear()

    def stats(self) -> CacheStats:
        """The cache figures of every instance added up."""
        return self.metrics().cache

    # ---- oauth ----

    def discover_resource(self, resource_url: str, www_authenticate: HeaderLines,
                          trust: TrustSpec) -> ResourceAuthorization:
        """See :meth:`Plugin.discover_resource` (each instance caches the documents it
        read)."""
        return self._on_one(lambda p: p.discover_resource(resource_url, www_authenticate, trust))

    def register_client(self, request: RegistrationRequest) -> Registration:
        """See :meth:`Plugin.register_client`."""
        return self._on_one(lambda p: p.register_client(request))

    def request_token(self, client: Client, grant: Grant) -> Token:
        """See :meth:`Plugin.request_token`."""
        return self._on_one(lambda p: p.request_token(client, grant))

    def open_session(self, key: str, client: Client, grant: SessionGrant) -> None:
        """Opens session ``key`` on every instance (each as it is next handed out); the
        first opening is now, so a bad client or grant is reported here."""
        self._on_one(lambda p: p.open_session(key, client, grant))

    def access_token(self, key: str) -> Token:
        """See :meth:`Plugin.access_token`."""
        return self._on_one(lambda p: p.access_token(key))

    def renew_token(self, key: str, rejected: Token) -> Token:
        """See :meth:`Plugin.renew_token`."""
        return self._on_one(lambda p: p.renew_token(key, rejected))

    def begin_authorization(self, key: str) -> Authorization:
        """See :meth:`Plugin.begin_authorization`."""
        return self._on_one(lambda p: p.begin_authorization(key))

    def dpop_proof(self, key: str, method: str, url: str, nonce: Optional[str] = None) -> str:
        """See :meth:`Plugin.dpop_proof`."""
        return self._on_one(lambda p: p.dpop_proof(key, method, url, nonce))

    def begin_step_up(self, key: str, www_authenticate: HeaderLines) -> Authorization:
        """See :meth:`Plugin.begin_step_up`."""
        return self._on_one(lambda p: p.begin_step_up(key, www_authenticate))

    def complete_authorization(self, key: str, state: str, code: str,
                               iss: Optional[str] = None) -> Token:
        """See :meth:`Plugin.complete_authorization`."""
        return self._on_one(lambda p: p.complete_authorization(key, state, code, iss))

    def begin_device_authorization(self, key: str) -> DeviceAuthorization:
        """See :meth:`Plugin.begin_device_authorization`."""
        return self._on_one(lambda p: p.begin_device_authorization(key))

    def poll_device_authorization(self, key: str) -> Optional[Token]:
        """See :meth:`Plugin.poll_device_authorization`."""
        return self._on_one(lambda p: p.poll_device_authorization(key))

    def session_status(self, key: str) -> Optional[SessionState]:
        """See :meth:`Plugin.session_status`."""
        return self._on_one(lambda p: p.session_status(key))

    def revoke(self, key: str) -> None:
        """See :meth:`Plugin.revoke`."""
        self._on_one(lambda p: p.revoke(key))

    def close_session(self, key: str) -> None:
        """Closes ``key`` on every instance and deletes it from the store. Waits until
        no instance is in use, so none serves the session after this returns (do not
        call it inside :meth:`get`)."""
        with self._all_idle() as plugins:
            first, others = plugins[0], plugins[1:]
            first.close_session(key)
            for plugin in others:
                plugin._sync_closes()

    # ---- metrics ----

    def metrics(self) -> PluginMetrics:
        """What the instances counted, added up (see :func:`~gateway_auth.metrics.sum_metrics`):
        idle instances are read now; one in use counts with its figures of the
        previous read, so no total goes down."""
        with self._cond:
            idle = list(self._idle)
            self._idle = [p for p in self._idle if p not in idle]
        try:
            for plugin in idle:
                try:
                    self._seen[id(plugin)] = plugin.metrics()
                except Exception:  # an unreadable instance keeps its previous figures
                    pass
        finally:
            with self._cond:
                self._idle.extend(idle)
                self._cond.notify_all()
        return sum_metrics(list(self._seen.values()))

    def metrics_text(self) -> str:
        """:meth:`metrics` as Prometheus text exposition."""
        return metrics_text(self.metrics())

    def close(self) -> None:
        """Closes every instance (waiting until none is in use)."""
        with self._all_idle() as plugins:
            for plugin in plugins:
                plugin.close()

    def __enter__(self) -> "PluginPool":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
