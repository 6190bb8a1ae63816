"""One plugin instance as a typed, thread-safe object, with the Rust host's
guarantees: a memory limit, a call deadline, and recovery from traps.

A call that traps (a bug, memory exhausted, or past its deadline) raises
:class:`~gateway_auth.errors.PluginTrapped` (:class:`~gateway_auth.errors.CallTimeout`
for the deadline), and the instance is replaced by a fresh one that gets the cache
settings and the open sessions back (their tokens are in the store, so reopening sends
nothing): the next call works. A call replaces the instance at most once; an item
whose replay traps the replacement too is left out of later replays.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from typing import Any, Iterable, List, Optional, Set, Tuple, Union

from . import _wit
from ._desired import Desired, Following
from ._instance import Instance, Runtime, Trapped, largest_input
from ._transport import Resolver
from ._transport import open_socket as _open_socket
from .egress import Egress
from .errors import (CallTimeout, ConfigError, GatewayAuthError, InputTooLarge,
                     InstanceReplaced, PluginTrapped, TlsClosedError, network_error)
from .metrics import EMPTY, add_counters, metrics_text
from .stores import MemoryStore, Store
from .types import (Authorization, CacheStats, Client, ClientCredentials,
                    DeviceAuthorization, Grant, JwtBearer, NetError, Password, PluginMetrics,
                    Profile, Registration, RegistrationRequest, ResourceAuthorization,
                    SessionGrant, SessionState, Settings, SignedJwtBearer, TlsInfo,
                    TlsOutput, TlsState, Token, TokenExchange, TransportStats, TrustSpec)

__all__ = ["Plugin", "TlsSession", "LEASE_MARGIN_MS", "DEFAULT_CALL_TIMEOUT",
           "DEFAULT_MEMORY_LIMIT"]

log = logging.getLogger("gateway_auth")

LEASE_MARGIN_MS = 2000
"""How long a renewal lease outlives its holder's call deadline (the component's
``LEASE_MARGIN_MS``): a client's ``timeout_ms`` plus this must stay below the call
timeout, or the host could interrupt a renewal while its lease still stands."""

DEFAULT_CALL_TIMEOUT = 60.0
"""The default call timeout, in seconds (as the Rust host's)."""

DEFAULT_MEMORY_LIMIT = 64 << 20
"""The default bound of the instance's linear memory, in bytes (64 MiB)."""

MAX_INPUT_BYTES = 16 << 20
"""The longest string or byte string the host passes to the plugin (at most a quarter
of the memory limit): a larger one would exhaust the instance's memory and trap it."""

Component = Union[None, str, "os.PathLike[str]", bytes]

HeaderLines = Union[str, Iterable[str]]
"""A response's ``WWW-Authenticate`` field lines: a list of them, or one line."""

# Session grants that acquire a new token without a person.


def _fits_call_timeout(client: Client, call_timeout: float) -> None:
    """Raises :class:`ConfigError` when ``client``'s deadline plus the lease margin is
    not below ``call_timeout`` (seconds), naming both and what to change."""
    client_ms = client.effective_timeout_ms
    call_ms = int(round(call_timeout * 1000))
    if client_ms + LEASE_MARGIN_MS < call_ms:
        return
    lower = (f"lower the client's timeout_ms below {call_ms - LEASE_MARGIN_MS} ms or "
             if call_ms > LEASE_MARGIN_MS else "")
    raise ConfigError(
        f"the client's timeout_ms ({client_ms} ms) plus the {LEASE_MARGIN_MS} ms lease "
        f"margin must be below the plugin's call timeout ({call_ms} ms): {lower}raise "
        f"call_timeout above {(client_ms + LEASE_MARGIN_MS) / 1000:g} s")


class TlsSession:
    """A sans-IO TLS client session inside one plugin instance (WIT ``tls-session``).

    The caller owns the socket: feed it what the socket read and the plaintext to
    send, write out what comes back. Free it with :meth:`close` (which returns the
    close_notify to write) or :meth:`free`, or use it as a context manager: until then
    it holds memory in the instance. One that is garbage-collected unfreed is freed by
    the plugin's next call. A session of an instance that was replaced (after a trap)
    raises :class:`~gateway_auth.errors.InstanceReplaced`.
    """

    __slots__ = ("_plugin", "_resource", "_generation", "_finalizer", "__weakref__")

    def __init__(self, plugin: "Plugin", resource: Any, generation: int) -> None:
        self._plugin = plugin
        self._resource: Any = resource
        self._generation = generation
        # Collected unfreed: only queued here (a collection can happen anywhere, even
        # inside a call); the plugin frees it before its next call.
        self._finalizer = weakref.finalize(self, plugin._orphans.append, (resource, generation))

    @property
    def plugin(self) -> "Plugin":
        """The plugin instance the session lives in."""
        return self._plugin

    @property
    def freed(self) -> bool:
        """Whether the session was freed (or its instance replaced)."""
        return self._resource is None or self._generation != self._plugin._generation

    def advance(self, incoming: bytes = b"", plaintext: bytes = b"") -> TlsOutput:
        """One I/O step: ``incoming`` is ciphertext read from the socket (may be
        empty), ``plaintext`` application data to send (may be empty; held until the
        handshake ends); at most 1 MiB of each. Returns the ciphertext to write, the
        plaintext that arrived and the state. Raises a
        :class:`~gateway_auth.errors.TlsError` subclass when the session fails (it is
        closed then)."""
        out = self._plugin._tls_call(self, "[method]tls-session.advance", incoming, plaintext)
        if _wit.is_error(out):
            raise _wit.tls_error(out)
        return TlsOutput(out.outgoing, out.plaintext, TlsState(out.state))

    def info(self) -> TlsInfo:
        """The negotiated ALPN protocol, TLS version, cipher suite and resumption."""
        return _wit.lift(TlsInfo, self._plugin._tls_call(self, "[method]tls-session.info"))

    def close(self) -> bytes:
        """Ends the session: the close_notify ciphertext to write before closing the
        socket. The session is freed (also when this raises)."""
        try:
            return bytes(self._plugin._tls_call(self, "[method]tls-session.close"))
        finally:
            self.free()

    def free(self) -> None:
        """Frees the session inside the instance (nothing to do if it was freed or its
        instance replaced). Idempotent."""
        self._plugin._tls_free(self)

    def __enter__(self) -> "TlsSession":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.free()


class Plugin:
    """One instance of the component: the exports as typed methods.

    Safe to call from several threads (calls take turns on one lock; use a
    :class:`~gateway_auth.PluginPool` for parallelism). Options mirror the Rust host's
    ``PluginOptions``:

    - ``allow``: egress rules (``host``, ``host:port``, ``[::1]:443``, ``*`` for every
      public host), or an :class:`~gateway_auth.egress.Egress`; default: nowhere;
    - ``store``: where sessions persist (default: a fresh :class:`MemoryStore`);
    - ``memory_limit``: the instance's linear memory bound in bytes (default 64 MiB);
    - ``call_timeout``: the longest one call may take, in seconds (default 60); a
      call past it traps and the instance is replaced. Each client's ``timeout_ms``
      plus 2 s must stay below it, or the client is refused (``ConfigError``);
    - ``cache``: TLS cache settings applied at once (and after every replacement);
    - ``component``: a component file or its bytes instead of the bundled one;
    - ``resolver``: how host names become addresses, ``(host, port) -> [ip, ...]``
      (default: the system's); whatever it returns is still checked against the
      egress policy, within the connect's deadline;
    - ``log_to_stderr``: whether the plugin's own log lines (which never carry
      secrets) go to standard error (default yes).

    Nothing is loaded at import; the first ``Plugin`` of a process compiles the
    component (cached on disk by wasmtime, so later processes start fast).
    """

    def __init__(
        self,
        *,
        allow: Union[Iterable[str], Egress] = (),
        store: Optional[Store] = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        cache: Optional[Settings] = None,
        component: Component = None,
        resolver: Optional[Resolver] = None,
        log_to_stderr: bool = True,
        _desired: Optional[Desired] = None,
    ) -> None:
        if call_timeout <= 0:
            raise ValueError("call_timeout must be positive")
        self._egress = allow if isinstance(allow, Egress) else Egress(list(allow))
        self._kv: Store = MemoryStore() if store is None else store
        self._memory_limit = int(memory_limit)
        self._max_input = min(MAX_INPUT_BYTES, self._memory_limit // 4)
        self._call_timeout = float(call_timeout)
        self._log_to_stderr = log_to_stderr
        self._resolver = resolver
        self._runtime = Runtime.get(component)
        self._component = component
        self._lock = threading.RLock()
        self._orphans: List[Tuple[Any, int]] = []
        self._instance = self._new_instance()
        self._generation = 0
        self._desired = Desired() if _desired is None else _desired
        self._following: Following = self._desired.follow()
        self._restoring = False
        self._unreplayable: Set[int] = set()
        self._carried = EMPTY
        self._last = EMPTY
        self._closed = False
        if cache is not None:
            self.configure(cache)

    def _new_instance(self) -> Instance:
        return Instance(self._runtime, self._egress, self._kv, self._memory_limit,
                        self._log_to_stderr, self._resolver)

    # ---- options ----

    @property
    def egress(self) -> Egress:
        """The egress policy of this plugin's connections."""
        return self._egress

    @property
    def store(self) -> Store:
        """Where this plugin's sessions persist."""
        return self._kv

    @property
    def call_timeout(self) -> float:
        """The longest one call may take, in seconds."""
        return self._call_timeout

    def set_call_timeout(self, timeout: float) -> None:
        """Changes the deadline of later calls. Refused (``ConfigError``, deadline
        unchanged) when an open session's client does not fit it."""
        with self._lock:
            slowest = self._following.slowest_client()
            if slowest is not None:
                _fits_call_timeout(slowest, timeout)
            self._call_timeout = float(timeout)

    @property
    def generation(self) -> int:
        """How many times the instance was replaced (after traps)."""
        return self._generation

    def open_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP socket to ``host``:``port`` under this plugin's egress policy, as the
        plugin's own connections get: resolution and every attempt within one
        ``timeout`` (seconds), TCP_NODELAY set, blocking with no timeout. Raises
        :class:`~gateway_auth.errors.NetworkError` (``EgressDenied``,
        ``NetworkTimeout``, ...). For upstream streams over :meth:`connect`."""
        opened = _open_socket(self._egress, host, port, timeout, self._resolver)
        if isinstance(opened, NetError):
            raise network_error(opened)
        return opened

    def transport_stats(self) -> TransportStats:
        """What this instance's connections have moved since it started (a replaced
        instance starts from zero)."""
        with self._lock:
            return self._instance.transport.stats()

    # ---- tls-cache ----

    def configure(self, settings: Settings) -> None:
        """Sets the cache's capacity and TTL (kept across instance replacement)."""
        with self._lock:
            self._call("tls-cache", "configure", _wit.settings(settings))
            self._following.set_cache(settings)

    def prepare(self, spec: TrustSpec) -> Profile:
        """The configuration for ``spec``, from the cache or built; raises a
        :class:`~gateway_auth.errors.TlsError` subclass for bad material."""
        out = self._call("tls-cache", "prepare", _wit.trust_spec(spec))
        return _wit.lift(Profile, _wit.unwrap_tls(out))

    def lookup(self, profile_id: str) -> Profile:
        """The profile prepared under ``profile_id``, from the cache (a hit, as
        :meth:`prepare` of its spec would be), without sending the material again;
        raises :class:`~gateway_auth.errors.UnknownProfileError` once it was evicted
        or expired (prepare the spec again)."""
        out = self._call("tls-cache", "lookup-profile", profile_id)
        return _wit.lift(Profile, _wit.unwrap_tls(out))

    def invalidate(self, profile_id: str) -> bool:
        """Drops the entry with this profile id; whether there was one."""
        return bool(self._call("tls-cache", "invalidate", profile_id))

    def clear(self) -> None:
        """Drops every entry, as a certificate reload should (counters are kept)."""
        self._call("tls-cache", "clear")

    def stats(self) -> CacheStats:
        """The cache's counters and size."""
        return _wit.lift(CacheStats, self._call("tls-cache", "stats"))

    def connect(self, profile_id: str, server_name: str, alpn: Iterable[str] = ()) -> TlsSession:
        """A sans-IO TLS client session for ``server_name`` (a DNS name or an IP
        address) with the configuration of a prepared profile, offering ``alpn``.
        Raises :class:`~gateway_auth.errors.UnknownProfileError` when the profile is
        not cached (prepare its spec again)."""
        with self._lock:
            out = self._call("tls-cache", "connect", profile_id, server_name, list(alpn))
            return TlsSession(self, _wit.unwrap_tls(out), self._generation)

    def _tls_call(self, session: TlsSession, name: str, *args: Any) -> Any:
        with self._lock:
            if session._generation != self._generation:
                raise InstanceReplaced()
            if session._resource is None:
                raise TlsClosedError("the TLS session was freed")
            return self._call("tls-cache", name, session._resource, *args)

    def _tls_free(self, session: TlsSession) -> None:
        with self._lock:
            session._finalizer.detach()
            resource, session._resource = session._resource, None
            if resource is not None and session._generation == self._generation:
                self._instance.drop_resource(resource)

    def _free_orphans(self) -> None:
        """Frees the sessions collected unfreed since the last call."""
        while self._orphans:
            resource, generation = self._orphans.pop()
            if generation == self._generation:
                self._instance.drop_resource(resource)

    # ---- oauth ----

    def discover_resource(self, resource_url: str, www_authenticate: HeaderLines,
                          trust: TrustSpec) -> ResourceAuthorization:
        """How to authorize for the protected resource at ``resource_url`` (RFC 9728):
        from the ``resource_metadata`` of its challenge (``www_authenticate``: the
        ``WWW-Authenticate`` field lines of its 401 or 403, possibly none), else its
        well-known metadata, then its authorization server's metadata, which must
        offer PKCE ``S256``. ``trust`` is the TLS trust of both servers; documents are
        cached for 15 minutes. Raises an :class:`~gateway_auth.errors.OAuthError`
        subclass."""
        out = self._call("oauth", "discover-resource", resource_url,
                         _wit.header_lines(www_authenticate), _wit.trust_spec(trust))
        return _wit.lift(ResourceAuthorization, _wit.unwrap_oauth(out))

    def register_client(self, request: RegistrationRequest) -> Registration:
        """Registers a client dynamically (RFC 7591), once per issuer and redirect URIs
        for every replica sharing the store: the first caller registers under a lease
        while the others wait for its result, kept in the store (secret included).
        With a client ID metadata document URL and a server that takes one, that URL
        is the client id and nothing is sent."""
        out = self._call("oauth", "register-client", _wit.registration_request(request))
        return _wit.lift(Registration, _wit.unwrap_oauth(out))

    def request_token(self, client: Client, grant: Grant) -> Token:
        """Requests one token, keeping no state; the refresh token, if any, is
        returned. Raises an :class:`~gateway_auth.errors.OAuthError` subclass."""
        _fits_call_timeout(client, self._call_timeout)
        out = self._call("oauth", "request-token", _wit.client(client), _wit.grant(grant))
        return _wit.lift(Token, _wit.unwrap_oauth(out))

    def open_session(self, key: str, client: Client, grant: SessionGrant) -> None:
        """Opens (or replaces) session ``key``; nothing is requested yet. Tokens the
        store holds under ``key`` for the same client are kept. The session is reopened
        in a replacement instance after a trap."""
        wit_client, wit_grant = _wit.client(client), _wit.session_grant(grant)
        with self._lock:
            _fits_call_timeout(client, self._call_timeout)
            self._forget_if_closed(key)
            _wit.unwrap_oauth(self._call("oauth", "open-session", key, wit_client, wit_grant))
            self._following.open(key, client, grant)

    def access_token(self, key: str) -> Token:
        """The session's access token: the held one while valid beyond the refresh
        skew, else refreshed or re-acquired."""
        with self._lock:
            self._catch_up(key)
            return _wit.lift(Token, _wit.unwrap_oauth(self._call("oauth", "access-token", key)))

    def renew_token(self, key: str, rejected: Token) -> Token:
        """A token other than ``rejected``, which an upstream refused although it
        looked valid (a 401 with ``invalid_token``: revoked, say).

        While the session holds ``rejected``, the plugin drops it (in the store too, so
        no replica serves it again) and renews under the lease, by refresh or, for a
        grant that needs no person, by a new request; a session with nothing to renew
        with raises :class:`AuthorizationRequired`. When the session already holds
        another token (another caller or replica renewed meanwhile), that one.
        """
        with self._lock:
            self._catch_up(key)
            out = self._call("oauth", "renew-token", key, rejected.access_token)
            return _wit.lift(Token, _wit.unwrap_oauth(out))

    def begin_authorization(self, key: str) -> Authorization:
        """Starts the authorization-code flow: the URL to send the user to."""
        with self._lock:
            self._catch_up(key)
            out = self._call("oauth", "begin-authorization", key)
            return _wit.lift(Authorization, _wit.unwrap_oauth(out))

    def dpop_proof(self, key: str, method: str, url: str, nonce: Optional[str] = None) -> str:
        """A DPoP proof (RFC 9449) for the gateway's ``method`` request to ``url`` with
        session ``key``'s access token, signed with the session's key; ``nonce`` is the
        resource server's ``DPoP-Nonce`` when it asked for one. Send it as the ``DPoP``
        header, with ``Authorization: DPoP <token>``."""
        with self._lock:
            self._catch_up(key)
            out = self._call("oauth", "dpop-proof", key, method, url, nonce)
            return str(_wit.unwrap_oauth(out))

    def begin_step_up(self, key: str, www_authenticate: HeaderLines) -> Authorization:
        """Starts a new authorization of session ``key`` for its scopes and those a
        resource's 403 ``insufficient_scope`` challenge names (``www_authenticate``:
        its ``WWW-Authenticate`` field lines), as :meth:`begin_authorization` does; the
        session keeps serving its current token until :meth:`complete_authorization`.
        Another challenge raises :class:`~gateway_auth.errors.ConfigError`."""
        lines = _wit.header_lines(www_authenticate)
        with self._lock:
            self._catch_up(key)
            out = self._call("oauth", "begin-step-up", key, lines)
            return _wit.lift(Authorization, _wit.unwrap_oauth(out))

    def complete_authorization(self, key: str, state: str, code: str,
                               iss: Optional[str] = None) -> Token:
        """Completes it with the redirect's ``state``, ``code`` and, when the server
        sent one, ``iss`` (RFC 9207)."""
        with self._lock:
            self._catch_up(key)
            out = self._call("oauth", "complete-authorization", key, state, code, iss)
            return _wit.lift(Token, _wit.unwrap_oauth(out))

    def begin_device_authorization(self, key: str) -> DeviceAuthorization:
        """Starts a device authorization (RFC 8628): what to show the user."""
        with self._lock:
            self._catch_up(key)
            out = self._call("oauth", "begin-device-authorization", key)
            return _wit.lift(DeviceAuthorization, _wit.unwrap_oauth(out))

    def poll_device_authorization(self, key: str) -> Optional[Token]:
        """Polls once: ``None`` while the user has not finished (wait
        ``interval_seconds`` between polls)."""
        with self._lock:
            self._catch_up(key)
            out = _wit.unwrap_oauth(self._call("oauth", "poll-device-authorization", key))
            return _wit.optional(Token, out)

    def session_status(self, key: str) -> Optional[SessionState]:
        """The session's state, or ``None`` when there is no session under ``key``."""
        with self._lock:
            self._catch_up(key)
            return _wit.optional(SessionState, self._call("oauth", "session-status", key))

    def revoke(self, key: str) -> None:
        """Revokes the session's tokens at the revocation endpoint and forgets them."""
        with self._lock:
            self._catch_up(key)
            _wit.unwrap_oauth(self._call("oauth", "revoke", key))

    def close_session(self, key: str) -> None:
        """Forgets the session here and in the store (and in every instance following
        the same state, before their next use)."""
        with self._lock:
            self._following.close(key)  # first: a replacement must not reopen it
            self._call("oauth", "close-session", key)

    # ---- metrics ----

    def metrics(self) -> PluginMetrics:
        """What the plugin counted. Counters never go down: those of an instance a
        trap replaced are carried over as they were last read."""
        with self._lock:
            fresh = _wit.lift(PluginMetrics, self._call("metrics", "snapshot"))
            self._last = fresh
            return add_counters(fresh, self._carried)

    def metrics_text(self) -> str:
        """:meth:`metrics` as Prometheus text exposition (format 0.0.4), line for line
        what the Rust host's ``metrics_text`` renders."""
        return metrics_text(self.metrics())

    # ---- lifetime ----

    def close(self) -> None:
        """Closes the instance's sockets and leaves the shared state; the plugin is
        not used again."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._instance.close()
                self._following.leave()

    def __enter__(self) -> "Plugin":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- plumbing ----

    def _call(self, iface: str, name: str, *args: Any) -> Any:
        """Runs one export under the deadline; a trap replaces the instance (at most
        once per call) and raises ``CallTimeout`` or ``PluginTrapped``."""
        with self._lock:
            if self._closed:
                raise GatewayAuthError("the plugin was closed")
            if self._instance.broken and not self._restoring:
                self._replace()
            if self._orphans:
                self._free_orphans()
            if largest_input(args) > self._max_input:
                raise InputTooLarge(self._max_input)
            try:
                return self._instance.call(self._call_timeout, iface, name, *args)
            except Trapped as trap:
                error: PluginTrapped = (CallTimeout(self._call_timeout) if trap.interrupted
                                        else PluginTrapped(
                                            f"the plugin trapped and the instance was replaced: {trap}"))
                if self._restoring:
                    raise error from None
                log.warning("plugin instance replaced: %s", error)
                try:
                    self._replace()
                except GatewayAuthError as again:
                    raise PluginTrapped(f"{error}; then {again}") from None
                raise error from None

    def _replace(self) -> None:
        """A fresh instance in place of one that trapped, brought up to the desired
        state (sessions' tokens are in the store, so reopening sends nothing)."""
        self._instance.close()
        self._instance = self._new_instance()
        self._generation += 1
        self._carried = add_counters(self._carried, self._last)
        self._last = EMPTY
        self._following.restart()
        self._restoring = True
        try:
            self._sync()
        except PluginTrapped:
            raise
        except GatewayAuthError as e:
            log.warning("replacement instance not fully restored: %s", e)
        finally:
            self._restoring = False

    def _sync(self) -> None:
        """Applies what changed in the desired state since this instance last looked
        (every item even if one fails; the first failure is raised)."""
        with self._lock:
            plan = self._following.plan()
            for key in plan.forget:
                self._forget(key)
            if plan.cache is not None and plan.cache[0] not in self._unreplayable:
                revision, settings = plan.cache
                self._replaying(revision, "setting the cache", self._call, "tls-cache",
                                "configure", _wit.settings(settings))
                self._following.cache_applied(revision)
            first: Optional[GatewayAuthError] = None
            for key, revision, client, grant in plan.open:
                if revision in self._unreplayable:
                    continue
                try:
                    _fits_call_timeout(client, self._call_timeout)
                    out = self._replaying(revision, f"reopening session {key!r}", self._call,
                                          "oauth", "open-session", key, _wit.client(client),
                                          _wit.session_grant(grant))
                    _wit.unwrap_oauth(out)
                    self._following.opened(key, revision)
                except PluginTrapped:
                    raise
                except GatewayAuthError as e:
                    log.warning("session %r not reopened: %s", key, e)
                    first = first or e
            if first is not None:
                raise first

    def _replaying(self, revision: int, what: str, call: Any, *args: Any) -> Any:
        """``call(*args)``; when it traps a replacement being restored, the item is
        left out of later replays and the error says so."""
        try:
            return call(*args)
        except PluginTrapped as e:
            if self._restoring:
                self._unreplayable.add(revision)
                raise PluginTrapped(f"{what} trapped the replacement instance too ({e}); it "
                                    f"is left out until it is set again") from None
            raise

    def _catch_up(self, key: str) -> None:
        """Brings session ``key`` up to date before a call uses it: closed through
        another instance since this one opened it, it is forgotten here, then opened
        again if it was opened again since."""
        if not self._forget_if_closed(key):
            return
        found = self._following.unapplied(key)
        if found is None:
            return
        revision, client, grant = found
        _fits_call_timeout(client, self._call_timeout)
        _wit.unwrap_oauth(self._call("oauth", "open-session", key, _wit.client(client),
                                     _wit.session_grant(grant)))
        self._following.opened(key, revision)

    def _forget_if_closed(self, key: str) -> bool:
        if self._following.must_forget(key):
            self._forget(key)
            return True
        return False

    def _forget(self, key: str) -> None:
        """Forgets ``key`` in this instance only (the close deleted its record)."""
        self._call("oauth", "forget-session", key)
        self._following.forgotten(key)

    def _sync_closes(self) -> None:
        with self._lock:
            for key in self._following.to_forget():
                self._forget(key)
