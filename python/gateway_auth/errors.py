"""The package's exceptions: one small hierarchy, each class carrying its fields.

::

    GatewayAuthError
    ├── OAuthError                  an oauth call failed (one class per WIT oauth-error case)
    │   ├── ConfigError                 refused before any request
    │   ├── ProtocolError               RFC 6749 §5.2 error body: status, error, description, uri, retry_after
    │   ├── HttpStatusError             non-2xx without a standard body: status, snippet, retry_after
    │   ├── InvalidResponseError        a 2xx that is no usable token
    │   ├── OAuthTlsError               the TLS handshake or trust material failed
    │   ├── TransportError              the connection failed: net (a NetError)
    │   │   └── TransportTimeout            ... by its deadline (also a TimeoutError)
    │   ├── AuthorizationRequiredError  a person must authorize again
    │   ├── BackoffError                backing off: retry_at, failures, last_error
    │   └── StoreError                  the shared store could not be used
    ├── TlsError                    trust material refused, or an upstream session failed
    │   ├── NoCertificatesError, MalformedPemError, BadCertificateError,
    │   │   CertificateWithoutKeyError, KeyWithoutCertificateError, BadKeyError,
    │   │   KeyMismatchError, TooLargeError (limit), UnknownProfileError,
    │   │   BadServerNameError, PeerCertificateError, PeerAlertError,
    │   │   TlsProtocolError, TlsClosedError
    ├── NetworkError                a host-side connection failed: net (a NetError)
    │   ├── EgressDenied                refused by the egress policy
    │   └── NetworkTimeout              resolution and connect ran past their deadline
    ├── PluginTrapped               the instance trapped and was replaced by a fresh one
    │   └── CallTimeout                 the call ran past its deadline (also a TimeoutError)
    ├── InstanceReplaced            a TLS session of an instance that has since been replaced
    ├── InputTooLarge               an input too large to pass to the plugin (also a ValueError)
    ├── StoreBackendError           a store backend failed (what the plugin sees as its store error)
    └── HostError                   the component could not be loaded or instantiated

No message carries a secret: the plugin redacts what servers echo, and the host's own
texts never include tokens, passwords or store values.
"""

from __future__ import annotations

from typing import Optional

from .types import NetError, NetErrorKind


class GatewayAuthError(Exception):
    """Every failure this package raises."""


# ---- oauth-error ----


class OAuthError(GatewayAuthError):
    """An OAuth operation failed; the subclass is the WIT ``oauth-error`` case."""

    retry_after: Optional[int] = None
    """``Retry-After`` in seconds from now, when the server sent one."""


class ConfigError(OAuthError):
    """Rejected before any request: missing endpoint, bad URL, unknown session, a grant
    that does not fit the call, a client whose deadline does not fit the call timeout.
    The text says what to fix."""


class ProtocolError(OAuthError):
    """The server answered with an RFC 6749 §5.2 error body."""

    def __init__(
        self,
        status: int,
        error: str,
        description: Optional[str] = None,
        uri: Optional[str] = None,
        retry_after: Optional[int] = None,
    ) -> None:
        self.status = status
        """The HTTP status (a 2xx when the server put an ``error`` in a success body)."""
        self.error = error
        """The ``error`` code, e.g. ``invalid_grant``."""
        self.description = description
        """``error_description``, if sent."""
        self.uri = uri
        """``error_uri``, if sent."""
        self.retry_after = retry_after
        text = f"{error} (HTTP {status})"
        if description:
            text += f": {description}"
        super().__init__(text)


class HttpStatusError(OAuthError):
    """A non-2xx answer without a standard error body (redirects included: never followed)."""

    def __init__(self, status: int, snippet: str, retry_after: Optional[int] = None) -> None:
        self.status = status
        """The HTTP status."""
        self.snippet = snippet
        """At most 256 characters of the body, secrets removed."""
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}")


class InvalidResponseError(OAuthError):
    """A 2xx answer that is not a usable token (or device authorization)."""


class OAuthTlsError(OAuthError):
    """The TLS handshake with an OAuth endpoint, or the client's trust material, failed."""


class TransportError(OAuthError):
    """The connection to an OAuth endpoint failed."""

    def __init__(self, net: NetError) -> None:
        self.net = net
        """What failed, as the transport reported it."""
        super().__init__(f"transport: {net}")


class TransportTimeout(TransportError, TimeoutError):
    """The connection to an OAuth endpoint did not finish within the call's deadline."""


class AuthorizationRequiredError(OAuthError):
    """A person must authorize again: the refresh token was refused (``invalid_grant``)
    or there is nothing to refresh with."""


class BackoffError(OAuthError):
    """The session is backing off after transient failures: nothing is sent until
    ``retry_at`` (seconds since the epoch)."""

    def __init__(self, retry_at: int, failures: int, last_error: str) -> None:
        self.retry_at = retry_at
        """When the next request will be sent, in seconds since the epoch."""
        self.failures = failures
        """Consecutive transient failures so far."""
        self.last_error = last_error
        """The last failure, described."""
        super().__init__(f"backing off after {failures} failure(s) until {retry_at}: {last_error}")


class StoreError(OAuthError):
    """The shared store could not be used where the call needed it (to take the
    renewal lease, or redeem a code once), or the lease holder did not publish its
    result in time. A held token is served instead while it lives."""


# ---- tls-error ----


class TlsError(GatewayAuthError):
    """The plugin refused trust material, or an upstream TLS session failed; the
    subclass is the WIT ``tls-error`` case."""


class NoCertificatesError(TlsError):
    """The bundle holds no certificate, and web roots are not trusted either."""


class MalformedPemError(TlsError):
    """The text is not PEM, or a section is truncated or its base64 broken."""


class BadCertificateError(TlsError):
    """A certificate is not a parsable X.509 certificate."""


class CertificateWithoutKeyError(TlsError):
    """A client certificate was given without its key."""


class KeyWithoutCertificateError(TlsError):
    """A client key was given without its certificate."""


class BadKeyError(TlsError):
    """The client key is not a usable private key."""


class KeyMismatchError(TlsError):
    """The client key does not belong to the client certificate."""


class TooLargeError(TlsError):
    """An input is larger than the limit, in bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """The limit, in bytes."""
        super().__init__(f"an input is larger than the {limit} byte limit")


class UnknownProfileError(TlsError):
    """``connect`` named a profile the cache does not hold: prepare the spec again."""


class BadServerNameError(TlsError):
    """The server name is neither a DNS name nor an IP address."""


class PeerCertificateError(TlsError):
    """The server's certificate was refused (unknown issuer, wrong name, expired)."""


class PeerAlertError(TlsError):
    """The peer ended the session with a fatal alert (e.g. refusing the client certificate)."""


class TlsProtocolError(TlsError):
    """The peer sent bytes that are not TLS, or broke the protocol."""


class TlsClosedError(TlsError):
    """The session is closed (by ``close``, or after an error): nothing more moves."""


# ---- host ----


class NetworkError(GatewayAuthError):
    """A connection the host opens (for the plugin, or for an upstream stream) could
    not be opened or used."""

    def __init__(self, net: NetError) -> None:
        self.net = net
        """What failed."""
        super().__init__(str(net))


class EgressDenied(NetworkError):
    """The egress policy refused the destination; no packet was sent."""


class NetworkTimeout(NetworkError, TimeoutError):
    """Resolution and connection attempts did not finish within their deadline."""


def network_error(net: NetError) -> NetworkError:
    """The :class:`NetworkError` subclass for ``net``."""
    if net.kind is NetErrorKind.DENIED:
        return EgressDenied(net)
    if net.kind is NetErrorKind.TIMEOUT:
        return NetworkTimeout(net)
    return NetworkError(net)


class PluginTrapped(GatewayAuthError):
    """The plugin trapped (a bug, or its memory exhausted). The instance was replaced
    by a fresh one, which got the cache settings and open sessions back: the next call
    works. TLS sessions of the old instance raise :class:`InstanceReplaced`."""


class CallTimeout(PluginTrapped, TimeoutError):
    """The call ran past the plugin's call timeout and was interrupted; the instance
    was replaced (as for :class:`PluginTrapped`)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        """The call timeout, in seconds."""
        super().__init__(
            f"the plugin call ran past its {timeout:g} s deadline; the instance was replaced")


class InstanceReplaced(GatewayAuthError):
    """The TLS session belonged to an instance that has since been replaced (after a
    trap or a missed deadline): open a new one."""

    def __init__(self) -> None:
        super().__init__(
            "the plugin instance this TLS session lived in was replaced; open a new session")


class InputTooLarge(GatewayAuthError, ValueError):
    """An input (a PEM text, a byte string, a token) is larger than the host passes to
    the plugin; nothing was sent. The plugin's own limits are lower (1 MiB for trust
    material and TLS data, refused as :class:`TooLargeError`): this bound only keeps a
    huge value from exhausting the instance's memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """The bound, in bytes."""
        super().__init__(f"an input is larger than the {limit} bytes the host passes to the plugin")


class StoreBackendError(GatewayAuthError):
    """A store backend (SQLite, Redis) failed. The plugin receives the text as its
    ``store`` import's error and answers with :class:`StoreError` where it needed the
    store; the text never carries a stored value."""


class HostError(GatewayAuthError):
    """The component could not be loaded or instantiated (or the installed wasmtime is
    not the version this package was written for)."""
