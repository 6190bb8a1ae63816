"""The plugin's values, mirroring the records, variants and enums of the WIT contract
(``wit/*.wit``, package ``gateway:auth@0.1.0``).

Field names are the WIT names in snake case (``client-id`` is ``client_id``). Every
timestamp (``expires_at``, ``not_after``, ``retry_at``) is whole **seconds since the Unix
epoch** (UTC), as in the WIT ``timestamp`` type; the ``*_datetime`` properties give the
same instant as an aware :class:`datetime.datetime`.

Variants are small class hierarchies: one class per case (``ClientSecretBasic`` is the
``client-secret-basic`` case of ``client-auth``). The grants that a one-off
:meth:`~gateway_auth.Plugin.request_token` and a session
(:meth:`~gateway_auth.Plugin.open_session`) both accept (``ClientCredentials``,
``Password``, ``TokenExchange``, ``JwtBearer``, ``RefreshToken``) are one class each,
usable as either.

Secrets (client secrets, passwords, tokens, codes, assertions, private keys) are left
out of every ``repr``.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Optional, Tuple


def _utc(seconds: Optional[int]) -> Optional[_dt.datetime]:
    """A WIT timestamp as an aware UTC datetime."""
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)


# ---- tls-cache ----


@dataclass(frozen=True)
class TrustSpec:
    """The trust material for one upstream (WIT ``trust-spec``).

    ``ca_bundle`` is PEM text with one or more CA certificates (empty only with
    ``web_roots``); ``client_certificate`` (chain, PEM) and ``client_key`` (PKCS#8,
    PKCS#1 or SEC1 PEM) together enable mutual TLS.
    """

    ca_bundle: str = ""
    client_certificate: Optional[str] = None
    client_key: Optional[str] = field(default=None, repr=False)
    web_roots: bool = False

    @classmethod
    def from_files(
        cls,
        ca: Optional[str] = None,
        certificate: Optional[str] = None,
        key: Optional[str] = None,
        web_roots: bool = False,
    ) -> "TrustSpec":
        """A spec read from PEM files (any of them may be left out)."""

        def read(path: Optional[str]) -> Optional[str]:
            if path is None:
                return None
            with open(path, encoding="utf-8") as f:
                return f.read()

        return cls(read(ca) or "", read(certificate), read(key), web_roots)


class EvictionPolicy(str, enum.Enum):
    """Which entry a full cache gives up (WIT ``eviction-policy``): the least recently
    used, or LRU behind the TinyLFU admission filter (resists scans and round-robins
    over more upstreams than the capacity)."""

    LRU = "lru"
    TINY_LFU = "tiny-lfu"


@dataclass(frozen=True)
class Settings:
    """Cache bounds (WIT ``settings``): at most ``capacity`` entries (at least 1), each
    usable for ``ttl_seconds`` after it was built (``None``: until evicted), evicted
    under ``policy``."""

    capacity: int
    ttl_seconds: Optional[int] = None
    policy: EvictionPolicy = EvictionPolicy.LRU


@dataclass(frozen=True)
class Profile:
    """A prepared configuration (WIT ``profile``): its ``id`` (hex SHA-256 of the
    canonical material), trust anchor count, whether it presents a client
    certificate, the earliest ``not_after`` (seconds since the epoch) and whether the
    answer came from the cache."""

    id: str
    anchors: int
    mutual_tls: bool
    not_after: Optional[int]
    cached: bool

    @property
    def not_after_datetime(self) -> Optional[_dt.datetime]:
        """``not_after`` as an aware UTC datetime."""
        return _utc(self.not_after)


@dataclass(frozen=True)
class CacheStats:
    """The cache's counters (WIT ``cache-stats``)."""

    hits: int
    misses: int
    evictions: int
    expirations: int
    rejected: int
    size: int
    capacity: int


class TlsState(str, enum.Enum):
    """Where an upstream TLS session is (WIT ``tls-state``)."""

    HANDSHAKING = "handshaking"
    """The handshake is under way; plaintext given now is sent when it ends."""
    OPEN = "open"
    """Application data moves both ways."""
    PEER_CLOSED = "peer-closed"
    """The peer sent close_notify: nothing more arrives; this side may still send."""
    CLOSED = "closed"
    """This side closed the session, or it failed: nothing more moves."""


@dataclass(frozen=True)
class TlsOutput:
    """What one :meth:`TlsSession.advance <gateway_auth.TlsSession.advance>` produced:
    ciphertext to write to the socket, plaintext that arrived, the state after it."""

    outgoing: bytes
    plaintext: bytes
    state: TlsState


@dataclass(frozen=True)
class TlsInfo:
    """What a session negotiated (``None`` until the handshake says): ALPN protocol,
    TLS version (``TLSv1_3``), cipher suite, whether it resumed an earlier session."""

    alpn: Optional[str]
    version: Optional[str]
    cipher_suite: Optional[str]
    resumed: bool


# ---- oauth: clients ----


class JwtAlgorithm(str, enum.Enum):
    """The algorithm of a client's JWT signing key (WIT ``jwt-algorithm``)."""

    RS256 = "rs256"
    ES256 = "es256"


@dataclass(frozen=True)
class SigningKey:
    """A private key the client signs JWT assertions with (RFC 7523)."""

    algorithm: JwtAlgorithm
    private_key_pem: str = field(repr=False)
    key_id: Optional[str] = None


@dataclass(frozen=True)
class AssertionSigner:
    """What a :class:`SignedJwtBearer` session signs a fresh assertion with for every
    token request: the key and the ``iss``, ``sub`` and (optional) ``aud`` claims."""

    signing_key: SigningKey
    issuer: str
    subject: str
    audience: Optional[str] = None
    lifetime_seconds: Optional[int] = None


class ClientAuth:
    """How the client authenticates at the token endpoint (WIT ``client-auth``): one of
    :class:`NoClientAuth`, :class:`ClientSecretBasic`, :class:`ClientSecretPost`,
    :class:`PrivateKeyJwt`, :class:`TlsClientAuth`."""

    __slots__ = ()


@dataclass(frozen=True)
class NoClientAuth(ClientAuth):
    """A public client: ``client_id`` in the body, no secret."""


@dataclass(frozen=True)
class ClientSecretBasic(ClientAuth):
    """HTTP Basic with the client id and this secret (RFC 6749 §2.3.1)."""

    secret: str = field(repr=False)


@dataclass(frozen=True)
class ClientSecretPost(ClientAuth):
    """The client id and this secret in the request body."""

    secret: str = field(repr=False)


@dataclass(frozen=True)
class PrivateKeyJwt(ClientAuth):
    """A JWT assertion signed with this key (RFC 7523 §2.2)."""

    key: SigningKey


@dataclass(frozen=True)
class TlsClientAuth(ClientAuth):
    """The client certificate of the client's ``trust`` (RFC 8705 §2)."""


class DpopBinding:
    """How a client's tokens are bound to a key (DPoP, RFC 9449; WIT ``dpop-binding``):
    :class:`PerSessionDpopKey` or :class:`FixedDpopKey`."""

    __slots__ = ()


@dataclass(frozen=True)
class PerSessionDpopKey(DpopBinding):
    """A P-256 key per session, made in the plugin and kept in the store with the
    session's tokens, so every replica signs with the same one."""


@dataclass(frozen=True)
class FixedDpopKey(DpopBinding):
    """This key (ES256 or RS256, as its algorithm says) for every request of the client,
    one-off token requests included."""

    key: SigningKey


@dataclass(frozen=True)
class Client:
    """One OAuth client at one authorization server (WIT ``client``).

    Endpoints not given are discovered from ``issuer`` (RFC 8414, then OpenID
    Connect). ``timeout_ms`` is the deadline of one call, retries included (default
    10000 ms); it plus the 2 s lease margin must stay below the plugin's call timeout.
    """

    client_id: str
    auth: ClientAuth = field(default_factory=NoClientAuth)
    trust: TrustSpec = field(default_factory=TrustSpec)
    issuer: Optional[str] = None
    token_endpoint: Optional[str] = None
    authorization_endpoint: Optional[str] = None
    device_authorization_endpoint: Optional[str] = None
    revocation_endpoint: Optional[str] = None
    redirect_uri: Optional[str] = None
    scopes: Tuple[str, ...] = ()
    audience: Optional[str] = None
    resources: Tuple[str, ...] = ()
    timeout_ms: Optional[int] = None
    refresh_skew_seconds: Optional[int] = None
    refresh_jitter_seconds: Optional[int] = None
    failure_hold_off_seconds: Optional[int] = None
    authorization_params: Tuple[Tuple[str, str], ...] = ()
    dpop: Optional[DpopBinding] = None

    @property
    def effective_timeout_ms(self) -> int:
        """``timeout_ms``, or the plugin's default of 10000 ms."""
        return 10_000 if self.timeout_ms is None else self.timeout_ms


# ---- oauth: grants ----


class Grant:
    """A grant for one :meth:`~gateway_auth.Plugin.request_token` (WIT ``grant``)."""

    __slots__ = ()


class SessionGrant:
    """How a session obtains its first token (WIT ``session-grant``)."""

    __slots__ = ()


@dataclass(frozen=True)
class ClientCredentials(Grant, SessionGrant):
    """RFC 6749 §4.4; a session re-acquires without a person."""


@dataclass(frozen=True)
class Password(Grant, SessionGrant):
    """Resource owner password credentials (RFC 6749 §4.3)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class AuthorizationCode(Grant):
    """Redeems an authorization code (RFC 6749 §4.1.3) with its PKCE verifier."""

    code: str = field(repr=False)
    code_verifier: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class RefreshToken(Grant, SessionGrant):
    """RFC 6749 §6 with this refresh token; as a session grant, the session starts from it."""

    refresh_token: str = field(repr=False)


@dataclass(frozen=True)
class TokenExchange(Grant, SessionGrant):
    """RFC 8693 token exchange; a session re-acquires with the same subject."""

    subject_token: str = field(repr=False)
    subject_token_type: str = "urn:ietf:params:oauth:token-type:access_token"
    actor_token: Optional[str] = field(default=None, repr=False)
    actor_token_type: Optional[str] = None
    requested_token_type: Optional[str] = None


@dataclass(frozen=True)
class JwtBearer(Grant, SessionGrant):
    """RFC 7523 §2.1 with this signed assertion; a session re-sends it until its ``exp``."""

    assertion: str = field(repr=False)


@dataclass(frozen=True)
class DeviceCode(Grant):
    """RFC 8628 §3.4 with this device code (one request; sessions poll instead)."""

    device_code: str = field(repr=False)


@dataclass(frozen=True)
class AuthorizationCodeFlow(SessionGrant):
    """A session authorized by a person: :meth:`~gateway_auth.Plugin.begin_authorization`,
    then :meth:`~gateway_auth.Plugin.complete_authorization` (PKCE S256)."""


@dataclass(frozen=True)
class DeviceFlow(SessionGrant):
    """A session authorized on another device (RFC 8628):
    :meth:`~gateway_auth.Plugin.begin_device_authorization`, then polling."""


@dataclass(frozen=True)
class SignedJwtBearer(SessionGrant):
    """JWT bearer with an assertion signed afresh for every request (service accounts)."""

    signer: AssertionSigner


# ---- oauth: results ----


@dataclass(frozen=True)
class Token:
    """An access token (WIT ``token``). ``expires_at`` is seconds since the epoch, or
    ``None`` when the server did not say; ``refresh_token`` is returned by
    :meth:`~gateway_auth.Plugin.request_token` only (sessions keep theirs)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: Optional[int]
    scopes: Tuple[str, ...] = ()
    refresh_token: Optional[str] = field(default=None, repr=False)
    id_token: Optional[str] = field(default=None, repr=False)
    issued_token_type: Optional[str] = None

    @property
    def expires_at_datetime(self) -> Optional[_dt.datetime]:
        """``expires_at`` as an aware UTC datetime."""
        return _utc(self.expires_at)

    @property
    def authorization_header(self) -> str:
        """The ``Authorization`` header value, e.g. ``Bearer abc``."""
        return f"{self.token_type} {self.access_token}"


@dataclass(frozen=True)
class Authorization:
    """Where to send the user for the authorization-code grant: the URL, its
    single-use ``state`` and when it expires (seconds since the epoch)."""

    url: str
    state: str
    expires_at: int

    @property
    def expires_at_datetime(self) -> _dt.datetime:
        """``expires_at`` as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.expires_at, tz=_dt.timezone.utc)


@dataclass(frozen=True)
class DeviceAuthorization:
    """What to show the user for the device grant (RFC 8628 §3.2)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: Optional[str]
    expires_at: int
    interval_seconds: int

    @property
    def expires_at_datetime(self) -> _dt.datetime:
        """``expires_at`` as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.expires_at, tz=_dt.timezone.utc)


class SessionPhase(str, enum.Enum):
    """Where a session is in its life (WIT ``session-phase``)."""

    EMPTY = "empty"
    VALID = "valid"
    AUTHORIZING = "authorizing"
    BACKOFF = "backoff"
    AUTHORIZATION_REQUIRED = "authorization-required"
    FAILED = "failed"


@dataclass(frozen=True)
class SessionLease:
    """An instance's claim to renew a session, until ``expires_at``."""

    holder: str
    expires_at: int


@dataclass(frozen=True)
class SessionState:
    """A session's state, without secrets (WIT ``session-state``)."""

    phase: SessionPhase
    expires_at: Optional[int]
    has_refresh_token: bool
    retry_at: Optional[int]
    failures: int
    refusals: int
    scopes: Tuple[str, ...]
    lease: Optional[SessionLease]

    @property
    def expires_at_datetime(self) -> Optional[_dt.datetime]:
        """``expires_at`` as an aware UTC datetime."""
        return _utc(self.expires_at)


# ---- oauth: protected resources (MCP) ----


@dataclass(frozen=True)
class ResourceAuthorization:
    """What a protected resource's challenge and metadata say about authorizing for it
    (RFC 9728, then its authorization server's RFC 8414 or OpenID metadata, in the
    order MCP gives): enough to make the :class:`Client` of a session (WIT
    ``resource-authorization``).

    Send ``resource`` as the client's ``resources`` (RFC 8707) so every request carries
    it; ``issuer`` is the first ``https`` authorization server the resource lists;
    ``scopes`` are the challenge's ``scope``, else the resource's ``scopes_supported``.
    ``error`` is the challenge's (``invalid_token``, ``insufficient_scope``, ...).
    """

    resource: str
    issuer: str
    scopes: Tuple[str, ...]
    authorization_endpoint: Optional[str]
    token_endpoint: Optional[str]
    registration_endpoint: Optional[str]
    pushed_authorization_request_endpoint: Optional[str]
    pushed_authorization_required: bool
    client_id_metadata_document_supported: bool
    dpop_algorithms: Tuple[str, ...]
    dpop_required: bool
    error: Optional[str]


@dataclass(frozen=True)
class RegistrationRequest:
    """A dynamic client registration to make (RFC 7591 §2), or to reuse when one was
    made already for the same ``issuer`` and ``redirect_uris`` (WIT
    ``registration-request``): with them it is kept in the store, so every replica
    uses one registration.

    ``registration_endpoint`` is discovered from ``issuer`` when absent;
    ``grant_types`` empty means ``authorization_code`` and ``refresh_token``;
    ``token_endpoint_auth_method`` is ``none`` by default (a public client), or
    ``client_secret_basic`` / ``client_secret_post``. With
    ``client_id_metadata_document`` (an https URL) and a server that takes one, that
    URL is the client id and nothing is sent. ``timeout_ms`` bounds the call, waiting
    for another replica's registration included (default 10000 ms).
    """

    issuer: str
    redirect_uris: Tuple[str, ...] = ()
    trust: TrustSpec = field(default_factory=TrustSpec)
    registration_endpoint: Optional[str] = None
    grant_types: Tuple[str, ...] = ()
    token_endpoint_auth_method: Optional[str] = None
    client_name: Optional[str] = None
    scopes: Tuple[str, ...] = ()
    client_id_metadata_document: Optional[str] = None
    timeout_ms: Optional[int] = None


class RegistrationSource(str, enum.Enum):
    """Where a :class:`Registration` came from (WIT ``registration-source``)."""

    REGISTERED = "registered"
    """This call registered the client."""
    STORED = "stored"
    """An earlier registration, of this or another replica, from the store."""
    METADATA_DOCUMENT = "metadata-document"
    """The client ID metadata document URL, which needs no registration."""


@dataclass(frozen=True)
class Registration:
    """A client identity at an authorization server (WIT ``registration``): the
    ``client_id`` to use, the ``client_secret`` of a confidential registration (left
    out of ``repr``) and when it expires (seconds since the epoch; ``None``: never),
    the authentication method the server registered, and where it came from."""

    client_id: str
    client_secret: Optional[str] = field(repr=False)
    client_secret_expires_at: Optional[int]
    token_endpoint_auth_method: str
    source: RegistrationSource

    @property
    def client_secret_expires_at_datetime(self) -> Optional[_dt.datetime]:
        """``client_secret_expires_at`` as an aware UTC datetime."""
        return _utc(self.client_secret_expires_at)


# ---- shared ----


class NetErrorKind(str, enum.Enum):
    """Why an outbound byte stream failed (the cases of WIT ``net-error``)."""

    DENIED = "denied"
    RESOLVE = "resolve"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    RESET = "reset"
    CLOSED = "closed"
    OTHER = "other"


@dataclass(frozen=True)
class NetError:
    """A WIT ``net-error``: its kind and, for most kinds, a description."""

    kind: NetErrorKind
    message: Optional[str] = None

    def __str__(self) -> str:
        return self.kind.value if self.message is None else f"{self.kind.value}: {self.message}"


@dataclass(frozen=True)
class TransportStats:
    """What one instance's connections have moved since it started (a replaced
    instance starts from zero)."""

    connections: int
    bytes_sent: int
    bytes_received: int


# ---- metrics ----


@dataclass(frozen=True)
class TokenRequestCount:
    """How many token requests of one grant had one outcome."""

    grant: str
    outcome: str
    count: int


@dataclass(frozen=True)
class DurationHistogram:
    """How long one grant's token requests took (cumulative buckets, milliseconds)."""

    grant: str
    bounds_ms: Tuple[int, ...]
    cumulative: Tuple[int, ...]
    sum_ms: int
    count: int


@dataclass(frozen=True)
class PhaseCount:
    """How many open sessions are in one phase."""

    phase: SessionPhase
    sessions: int


@dataclass(frozen=True)
class ProfileExpiry:
    """When one cached profile's material expires (seconds since the epoch)."""

    id: str
    not_after: int


@dataclass(frozen=True)
class PluginMetrics:
    """Everything an instance counts (WIT ``plugin-metrics``)."""

    cache: CacheStats
    handshakes_full: int
    handshakes_resumed: int
    token_requests: Tuple[TokenRequestCount, ...]
    token_request_durations: Tuple[DurationHistogram, ...]
    sessions: Tuple[PhaseCount, ...]
    profiles: Tuple[ProfileExpiry, ...]
