"""gateway-auth: a TLS client-configuration cache, sans-IO TLS sessions and OAuth 2.0
client flows for API gateways, run as a WebAssembly component by wasmtime.

::

    from gateway_auth import Plugin, Client, ClientSecretBasic, ClientCredentials, TrustSpec

    plugin = Plugin(allow=["auth.example.com:443"])
    client = Client("gw", ClientSecretBasic(secret), trust=TrustSpec(ca_pem),
                    token_endpoint="https://auth.example.com/token")
    plugin.open_session("gw", client, ClientCredentials())
    token = plugin.access_token("gw")   # cached, refreshed ahead of expiry

:class:`Plugin` is one instance (thread-safe), :class:`PluginPool` several,
:class:`AsyncPlugin` the asyncio API (network calls off the event loop, sans-IO TLS
sessions on it). Failures are :class:`~gateway_auth.errors.GatewayAuthError`
subclasses; values are the dataclasses of :mod:`gateway_auth.types`; stores are in
:mod:`gateway_auth.stores`.

Security notes: the plugin reaches only what the egress policy (``allow``) permits,
checked again after name resolution; it never follows redirects; no secret appears in
an error, a log line or a ``repr``.
"""

from .errors import (
    GatewayAuthError, OAuthError, ConfigError, ProtocolError, HttpStatusError,
    InvalidResponseError, OAuthTlsError, TransportError, TransportTimeout,
    AuthorizationRequiredError, BackoffError, StoreError, TlsError, NoCertificatesError,
    MalformedPemError, BadCertificateError, CertificateWithoutKeyError,
    KeyWithoutCertificateError, BadKeyError, KeyMismatchError, TooLargeError,
    UnknownProfileError, BadServerNameError, PeerCertificateError, PeerAlertError,
    TlsProtocolError, TlsClosedError, NetworkError, EgressDenied, NetworkTimeout,
    PluginTrapped, CallTimeout, InstanceReplaced, InputTooLarge, StoreBackendError, HostError,
    network_error,
)
from .types import (
    TrustSpec, Settings, EvictionPolicy, Profile, CacheStats, TlsState, TlsOutput, TlsInfo, JwtAlgorithm,
    SigningKey, AssertionSigner, ClientAuth, NoClientAuth, ClientSecretBasic,
    ClientSecretPost, PrivateKeyJwt, TlsClientAuth, Client, Grant, SessionGrant,
    DpopBinding, PerSessionDpopKey, FixedDpopKey,
    ClientCredentials, Password, AuthorizationCode, RefreshToken, TokenExchange, JwtBearer,
    DeviceCode, AuthorizationCodeFlow, DeviceFlow, SignedJwtBearer, Token, Authorization,
    DeviceAuthorization, SessionPhase, SessionLease, SessionState, ResourceAuthorization,
    RegistrationRequest, RegistrationSource, Registration, NetErrorKind, NetError,
    TransportStats,
    TokenRequestCount, DurationHistogram, PhaseCount, ProfileExpiry, PluginMetrics,
)
from . import errors, types
from .aio import AsyncPlugin
from .egress import Egress
from .plugin import Plugin, TlsSession
from .pool import PluginPool
from .stores import MemoryStore, RedisStore, SqliteStore, Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AsyncPlugin", "Egress", "Plugin", "PluginPool", "TlsSession",
    "MemoryStore", "RedisStore", "SqliteStore", "Store", "open_store",
    "errors", "types",
    "GatewayAuthError",
    "OAuthError",
    "ConfigError",
    "ProtocolError",
    "HttpStatusError",
    "InvalidResponseError",
    "OAuthTlsError",
    "TransportError",
    "TransportTimeout",
    "AuthorizationRequiredError",
    "BackoffError",
    "StoreError",
    "TlsError",
    "NoCertificatesError",
    "MalformedPemError",
    "BadCertificateError",
    "CertificateWithoutKeyError",
    "KeyWithoutCertificateError",
    "BadKeyError",
    "KeyMismatchError",
    "TooLargeError",
    "UnknownProfileError",
    "BadServerNameError",
    "PeerCertificateError",
    "PeerAlertError",
    "TlsProtocolError",
    "TlsClosedError",
    "NetworkError",
    "EgressDenied",
    "NetworkTimeout",
    "PluginTrapped",
    "CallTimeout",
    "InstanceReplaced",
    "InputTooLarge",
    "StoreBackendError",
    "HostError",
    "network_error",
    "TrustSpec",
    "Settings",
    "EvictionPolicy",
    "Profile",
    "CacheStats",
    "TlsState",
    "TlsOutput",
    "TlsInfo",
    "JwtAlgorithm",
    "SigningKey",
    "AssertionSigner",
    "ClientAuth",
    "NoClientAuth",
    "ClientSecretBasic",
    "ClientSecretPost",
    "PrivateKeyJwt",
    "DpopBinding",
    "PerSessionDpopKey",
    "FixedDpopKey",
    "TlsClientAuth",
    "Client",
    "Grant",
    "SessionGrant",
    "ClientCredentials",
    "Password",
    "AuthorizationCode",
    "RefreshToken",
    "TokenExchange",
    "JwtBearer",
    "DeviceCode",
    "AuthorizationCodeFlow",
    "DeviceFlow",
    "SignedJwtBearer",
    "Token",
    "Authorization",
    "DeviceAuthorization",
    "SessionPhase",
    "SessionLease",
    "SessionState",
    "ResourceAuthorization",
    "RegistrationRequest",
    "RegistrationSource",
    "Registration",
    "NetErrorKind",
    "NetError",
    "TransportStats",
    "TokenRequestCount",
    "DurationHistogram",
    "PhaseCount",
    "ProfileExpiry",
    "PluginMetrics",
]
