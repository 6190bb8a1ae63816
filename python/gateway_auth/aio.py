"""The asyncio API: OAuth calls off the event loop, sans-IO TLS sessions on it.

An :class:`AsyncPlugin` holds two kinds of instance, as the Rust host's upstream
streams do (``Upstreams::oauth()``): a pool of ``oauth_instances`` instances whose
calls (token requests, sessions: anything that may touch the network) run on worker
threads (while one waits on a slow token endpoint, the others serve the other
sessions), and one loop-side instance, :attr:`AsyncPlugin.tls`, whose TLS-cache and
sans-IO session calls run on the event loop itself (they never block: no I/O). A slow
token request therefore holds an oauth instance and a worker thread, never the loop.
All instances follow one desired state (cache settings, sessions) and share the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import socket
import threading
from typing import Any, Callable, Iterable, Optional, TypeVar

from .metrics import metrics_text, sum_metrics
from .plugin import HeaderLines, Plugin, TlsSession
from .pool import PluginPool
from .stores import MemoryStore, Store
from .types import (Authorization, CacheStats, Client, DeviceAuthorization, Grant,
                    PluginMetrics, Profile, Registration, RegistrationRequest,
                    ResourceAuthorization, SessionGrant, SessionState, Settings, Token,
                    TrustSpec)

__all__ = ["AsyncPlugin"]

R = TypeVar("R")


class AsyncPlugin:
    """The plugin for asyncio programs; takes the keyword options of
    :class:`~gateway_auth.Plugin` plus ``oauth_instances`` (default 2: how many
    OAuth calls run at once; with one, a session's slow renewal would hold back the
    cached tokens of every other session until it ends).

    - OAuth methods are coroutines with :class:`~gateway_auth.Plugin`'s names
      (``await plugin.access_token("gw")``), run on worker threads (a pool made on
      first use, never at import) on their own instances.
    - TLS-cache methods (:meth:`prepare`, :meth:`connect`, :meth:`configure`,
      :meth:`invalidate`, :meth:`stats`) are plain methods on the loop-side instance
      :attr:`tls`, as are the :class:`~gateway_auth.TlsSession` methods: sans-IO,
      they never block the loop.
    """

    def __init__(self, *, oauth_instances: int = 2, store: Optional[Store] = None,
                 cache: Optional[Settings] = None, **options: Any) -> None:
        shared = MemoryStore() if store is None else store
        # The loop-side instance holds no OAuth session, so nothing it does (a replay
        # after a trap included) reads the store on the loop.
        self.tls: Plugin = Plugin(store=shared, cache=cache, **options)
        """The loop-side instance: TLS cache and sessions, called on the loop."""
        self._oauth = PluginPool(oauth_instances, store=shared, cache=cache, **options)
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._executor_lock = threading.Lock()

    @property
    def oauth(self) -> PluginPool:
        """The instances OAuth calls run on (blocking methods: call them from threads)."""
        return self._oauth

    @property
    def store(self) -> Store:
        """The store every instance shares."""
        return self.tls.store

    async def _off_loop(self, call: Callable[..., R], *args: Any) -> R:
        with self._executor_lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._oauth.size, thread_name_prefix="gateway-auth-oauth")
            executor = self._executor
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(call, *args))

    # ---- tls-cache (on the loop) ----

    def configure(self, settings: Settings) -> None:
        """Sets the cache capacity and TTL of every instance (the loop-side one now,
        the oauth ones before their next call, without waiting for them)."""
        self.tls.configure(settings)
        self._oauth.declare_cache(settings)

    def prepare(self, spec: TrustSpec) -> Profile:
        """Prepares ``spec`` in the loop-side instance's cache (see :meth:`Plugin.prepare`)."""
        return self.tls.prepare(spec)

    def lookup(self, profile_id: str) -> Profile:
        """A prepared profile by id in the loop-side instance's cache (see
        :meth:`Plugin.lookup`)."""
        return self.tls.lookup(profile_id)

    def connect(self, profile_id: str, server_name: str, alpn: Iterable[str] = ()) -> TlsSession:
        """A sans-IO TLS session in the loop-side instance (see :meth:`Plugin.connect`)."""
        return self.tls.connect(profile_id, server_name, alpn)

    def invalidate(self, profile_id: str) -> bool:
        """Drops a profile from the loop-side instance's cache."""
        return self.tls.invalidate(profile_id)

    def stats(self) -> CacheStats:
        """The loop-side instance's cache figures (upstream profiles)."""
        return self.tls.stats()

    def open_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        """:meth:`Plugin.open_socket` under this plugin's egress policy. **Blocking**
        (resolution and connect): run it on a worker thread, e.g. with
        ``loop.run_in_executor``."""
        return self.tls.open_socket(host, port, timeout)

    async def clear(self) -> None:
        """Clears every instance's cache, as a certificate reload should (the oauth
        instances once their calls in progress end)."""
        self.tls.clear()
        await self._off_loop(self._oauth.clear)

    # ---- oauth (off the loop) ----

    async def discover_resource(self, resource_url: str, www_authenticate: HeaderLines,
                                trust: TrustSpec) -> ResourceAuthorization:
        """See :meth:`Plugin.discover_resource`."""
        return await self._off_loop(self._oauth.discover_resource, resource_url,
                                    www_authenticate, trust)

    async def register_client(self, request: RegistrationRequest) -> Registration:
        """See :meth:`Plugin.register_client`."""
        return await self._off_loop(self._oauth.register_client, request)

    async def request_token(self, client: Client, grant: Grant) -> Token:
        """See :meth:`Plugin.request_token`."""
        return await self._off_loop(self._oauth.request_token, client, grant)

    async def open_session(self, key: str, client: Client, grant: SessionGrant) -> None:
        """See :meth:`Plugin.open_session`."""
        await self._off_loop(self._oauth.open_session, key, client, grant)

    async def access_token(self, key: str) -> Token:
        """See :meth:`Plugin.access_token`."""
        return await self._off_loop(self._oauth.access_token, key)

    async def renew_token(self, key: str, rejected: Token) -> Token:
        """See :meth:`Plugin.renew_token`."""
        return await self._off_loop(self._oauth.renew_token, key, rejected)

    async def begin_authorization(self, key: str) -> Authorization:
        """See :meth:`Plugin.begin_authorization`."""
        return await self._off_loop(self._oauth.begin_authorization, key)

    async def dpop_proof(self, key: str, method: str, url: str,
                         nonce: Optional[str] = None) -> str:
        """See :meth:`Plugin.dpop_proof`."""
        return await self._off_loop(self._oauth.dpop_proof, key, method, url, nonce)

    async def begin_step_up(self, key: str, www_authenticate: HeaderLines) -> Authorization:
        """See :meth:`Plugin.begin_step_up`."""
        return await self._off_loop(self._oauth.begin_step_up, key, www_authenticate)

    async def complete_authorization(self, key: str, state: str, code: str,
                                     iss: Optional[str] = None) -> Token:
        """See :meth:`Plugin.complete_authorization`."""
        return await self._off_loop(self._oauth.complete_authorization, key, state, code, iss)

    async def begin_device_authorization(self, key: str) -> DeviceAuthorization:
        """See :meth:`Plugin.begin_device_authorization`."""
        return await self._off_loop(self._oauth.begin_device_authorization, key)

    async def poll_device_authorization(self, key: str) -> Optional[Token]:
        """See :meth:`Plugin.poll_device_authorization`."""
        return await self._off_loop(self._oauth.poll_device_authorization, key)

    async def session_status(self, key: str) -> Optional[SessionState]:
        """See :meth:`Plugin.session_status`."""
        return await self._off_loop(self._oauth.session_status, key)

    async def revoke(self, key: str) -> None:
        """See :meth:`Plugin.revoke`."""
        await self._off_loop(self._oauth.revoke, key)

    async def close_session(self, key: str) -> None:
        """See :meth:`PluginPool.close_session`."""
        await self._off_loop(self._oauth.close_session, key)

    # ---- metrics ----

    async def metrics(self) -> PluginMetrics:
        """Every instance's figures added up."""
        oauth = await self._off_loop(self._oauth.metrics)
        return sum_metrics([self.tls.metrics(), oauth])

    async def metrics_text(self) -> str:
        """:meth:`metrics` as Prometheus text exposition."""
        return metrics_text(await self.metrics())

    # ---- lifetime ----

    async def aclose(self) -> None:
        """Closes every instance and the worker threads."""
        self.tls.close()
        await self._off_loop(self._oauth.close)
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def __aenter__(self) -> "AsyncPlugin":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
