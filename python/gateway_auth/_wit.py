"""Conversions between the package's types and wasmtime-py's component values: the
only module besides ``_instance`` that knows how wasmtime-py represents WIT values.

wasmtime-py 50: a record is a ``Record`` whose attributes carry the kebab-case WIT
field names; a variant whose cases Python cannot tell apart by type is
``Variant(tag, payload)``; ``option<T>`` is ``None`` or the value; ``result`` is the bare
ok or err value when their Python types differ (as everywhere in this world); an
enum is its case name; ``list<u8>`` is ``bytes``; a tuple is a ``tuple``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, TypeVar, Union

from wasmtime.component import Record, Variant

from . import errors
from . import types as t

T = TypeVar("T")


def record(**fields: Any) -> Record:
    """A WIT record: keyword ``client_id`` becomes field ``client-id``."""
    value = Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


# ---- to the plugin ----


def trust_spec(spec: t.TrustSpec) -> Record:
    """A ``trust-spec`` record."""
    if not isinstance(spec, t.TrustSpec):
        raise TypeError(f"expected a TrustSpec, not {type(spec).__name__}")
    return record(ca_bundle=spec.ca_bundle, client_certificate=spec.client_certificate,
                  client_key=spec.client_key, web_roots=bool(spec.web_roots))


def settings(value: t.Settings) -> Record:
    """A ``settings`` record."""
    return record(capacity=int(value.capacity), ttl_seconds=value.ttl_seconds,
                  policy=t.EvictionPolicy(value.policy).value)


def signing_key(key: t.SigningKey) -> Record:
    """A ``signing-key`` record."""
    return record(algorithm=t.JwtAlgorithm(key.algorithm).value,
                  private_key_pem=key.private_key_pem, key_id=key.key_id)


def client_auth(auth: t.ClientAuth) -> Variant:
    """A ``client-auth`` variant."""
    if isinstance(auth, t.NoClientAuth):
        return Variant("none")
    if isinstance(auth, t.ClientSecretBasic):
        return Variant("client-secret-basic", auth.secret)
    if isinstance(auth, t.ClientSecretPost):
        return Variant("client-secret-post", auth.secret)
    if isinstance(auth, t.PrivateKeyJwt):
        return Variant("private-key-jwt", signing_key(auth.key))
    if isinstance(auth, t.TlsClientAuth):
        return Variant("tls-client-auth")
    raise TypeError(f"expected a ClientAuth case, not {type(auth).__name__}")


def client(value: t.Client) -> Record:
    """A ``client`` record."""
    if not isinstance(value, t.Client):
        raise TypeError(f"expected a Client, not {type(value).__name__}")
    return record(
        client_id=value.client_id,
        auth=client_auth(value.auth),
        issuer=value.issuer,
        token_endpoint=value.token_endpoint,
        authorization_endpoint=value.authorization_endpoint,
        device_authorization_endpoint=value.device_authorization_endpoint,
        revocation_endpoint=value.revocation_endpoint,
        redirect_uri=value.redirect_uri,
        scopes=list(value.scopes),
        audience=value.audience,
        resources=list(value.resources),
        trust=trust_spec(value.trust),
        timeout_ms=value.timeout_ms,
        refresh_skew_seconds=value.refresh_skew_seconds,
        refresh_jitter_seconds=value.refresh_jitter_seconds,
        failure_hold_off_seconds=value.failure_hold_off_seconds,
        authorization_params=[(str(k), str(v)) for k, v in value.authorization_params],
        # wasmtime-py tells a variant's cases apart by their Python types when they
        # differ: `dpop-binding` is None (per-session) or a record (fixed), and so the
        # option around it must be tagged, or `none` and `per-session` would both be None.
        dpop=(Variant("none") if value.dpop is None
              else Variant("some", dpop_binding(value.dpop))),
    )


def dpop_binding(binding: t.DpopBinding) -> Optional[Record]:
    """A ``dpop-binding`` variant, untagged: None for ``per-session``, the signing key's
    record for ``fixed``."""
    if isinstance(binding, t.PerSessionDpopKey):
        return None
    if isinstance(binding, t.FixedDpopKey):
        return signing_key(binding.key)
    raise TypeError(f"expected a DpopBinding case, not {type(binding).__name__}")


def _password(g: t.Password) -> Record:
    return record(username=g.username, password=g.password)


def _token_exchange(g: t.TokenExchange) -> Record:
    return record(subject_token=g.subject_token, subject_token_type=g.subject_token_type,
                  actor_token=g.actor_token, actor_token_type=g.actor_token_type,
                  requested_token_type=g.requested_token_type)


def grant(g: t.Grant) -> Variant:
    """A ``grant`` variant (for ``request-token``)."""
    if isinstance(g, t.ClientCredentials):
        return Variant("client-credentials")
    if isinstance(g, t.Password):
        return Variant("password", _password(g))
    if isinstance(g, t.AuthorizationCode):
        return Variant("authorization-code", record(code=g.code, code_verifier=g.code_verifier))
    if isinstance(g, t.RefreshToken):
        return Variant("refresh-token", g.refresh_token)
    if isinstance(g, t.TokenExchange):
        return Variant("token-exchange", _token_exchange(g))
    if isinstance(g, t.JwtBearer):
        return Variant("jwt-bearer", g.assertion)
    if isinstance(g, t.DeviceCode):
        return Variant("device-code", g.device_code)
    raise TypeError(f"expected a Grant (ClientCredentials, Password, AuthorizationCode, "
                    f"RefreshToken, TokenExchange, JwtBearer, DeviceCode), not {type(g).__name__}")


def session_grant(g: t.SessionGrant) -> Variant:
    """A ``session-grant`` variant (for ``open-session``)."""
    if isinstance(g, t.ClientCredentials):
        return Variant("client-credentials")
    if isinstance(g, t.Password):
        return Variant("password", _password(g))
    if isinstance(g, t.AuthorizationCodeFlow):
        return Variant("authorization-code")
    if isinstance(g, t.DeviceFlow):
        return Variant("device-code")
    if isinstance(g, t.TokenExchange):
        return Variant("token-exchange", _token_exchange(g))
    if isinstance(g, t.JwtBearer):
        return Variant("jwt-bearer", g.assertion)
    if isinstance(g, t.SignedJwtBearer):
        s = g.signer
        return Variant("signed-jwt-bearer", record(
            signing_key=signing_key(s.signing_key), issuer=s.issuer, subject=s.subject,
            audience=s.audience, lifetime_seconds=s.lifetime_seconds))
    if isinstance(g, t.RefreshToken):
        return Variant("refresh-token", g.refresh_token)
    raise TypeError(f"expected a SessionGrant (ClientCredentials, Password, "
                    f"AuthorizationCodeFlow, DeviceFlow, TokenExchange, JwtBearer, "
                    f"SignedJwtBearer, RefreshToken), not {type(g).__name__}")


def registration_request(value: t.RegistrationRequest) -> Record:
    """A ``registration-request`` record."""
    if not isinstance(value, t.RegistrationRequest):
        raise TypeError(f"expected a RegistrationRequest, not {type(value).__name__}")
    return record(
        issuer=value.issuer,
        registration_endpoint=value.registration_endpoint,
        redirect_uris=list(value.redirect_uris),
        grant_types=list(value.grant_types),
        token_endpoint_auth_method=value.token_endpoint_auth_method,
        client_name=value.client_name,
        scopes=list(value.scopes),
        client_id_metadata_document=value.client_id_metadata_document,
        trust=trust_spec(value.trust),
        timeout_ms=value.timeout_ms,
    )


def header_lines(value: Union[str, Iterable[str]]) -> List[str]:
    """The ``WWW-Authenticate`` field lines of a response as a ``list<string>``: one
    string is one line (a bare string is not taken as its characters)."""
    if isinstance(value, str):
        return [value]
    lines = list(value)
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(f"expected WWW-Authenticate field lines as strings, not "
                            f"{type(line).__name__}")
    return lines


# ---- from the plugin ----


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _lift_as(hint: Any, value: Any) -> Any:
    """A component value as the type ``hint`` names."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _lift_as(inner[0], value)
    if origin in (tuple, typing.Tuple):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_lift_as(args[0], v) for v in value)
        return tuple(_lift_as(a, v) for a, v in zip(args, value))
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return hint(value)
        if dataclasses.is_dataclass(hint):
            return lift(hint, value)
        if hint is bytes:
            return bytes(value)
    return value


def lift(cls: Type[T], value: Any) -> T:
    """A ``Record`` as the dataclass ``cls`` (fields by their kebab-case names)."""
    hints = _hints(typing.cast(type, cls))
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kwargs[f.name] = _lift_as(hints[f.name], getattr(value, f.name.replace("_", "-")))
    return cls(**kwargs)


def net_error(value: Variant) -> t.NetError:
    """A ``net-error`` variant as a :class:`~gateway_auth.types.NetError`."""
    payload = value.payload
    return t.NetError(t.NetErrorKind(value.tag), None if payload is None else str(payload))


def oauth_error(value: Variant) -> errors.OAuthError:
    """An ``oauth-error`` variant as its exception."""
    tag: str = value.tag
    p: Any = value.payload
    if tag == "config":
        return errors.ConfigError(p)
    if tag == "protocol":
        return errors.ProtocolError(p.status, p.error, p.description, p.uri,
                                    getattr(p, "retry-after"))
    if tag == "http-status":
        return errors.HttpStatusError(p.status, p.snippet, getattr(p, "retry-after"))
    if tag == "invalid-response":
        return errors.InvalidResponseError(p)
    if tag == "tls":
        return errors.OAuthTlsError(p)
    if tag == "transport":
        net = net_error(p)
        if net.kind is t.NetErrorKind.TIMEOUT:
            return errors.TransportTimeout(net)
        return errors.TransportError(net)
    if tag == "authorization-required":
        return errors.AuthorizationRequiredError(p)
    if tag == "backoff":
        return errors.BackoffError(getattr(p, "retry-at"), p.failures, getattr(p, "last-error"))
    if tag == "store":
        return errors.StoreError(p)
    return errors.OAuthError(f"{tag}: {p}")


_TLS_ERRORS: Dict[str, Callable[[Any], errors.TlsError]] = {
    "no-certificates": lambda _: errors.NoCertificatesError(
        "the bundle holds no certificate and web roots are not trusted"),
    "malformed-pem": errors.MalformedPemError,
    "bad-certificate": errors.BadCertificateError,
    "certificate-without-key": lambda _: errors.CertificateWithoutKeyError(
        "a client certificate was given without its key"),
    "key-without-certificate": lambda _: errors.KeyWithoutCertificateError(
        "a client key was given without its certificate"),
    "bad-key": errors.BadKeyError,
    "key-mismatch": lambda _: errors.KeyMismatchError(
        "the client key does not belong to the client certificate"),
    "too-large": errors.TooLargeError,
    "unknown-profile": lambda _: errors.UnknownProfileError(
        "the profile is not cached (never prepared, evicted or expired): prepare the spec again"),
    "bad-server-name": errors.BadServerNameError,
    "peer-certificate": errors.PeerCertificateError,
    "peer-alert": errors.PeerAlertError,
    "protocol": errors.TlsProtocolError,
    "closed": lambda _: errors.TlsClosedError("the TLS session is closed"),
}


def tls_error(value: Variant) -> errors.TlsError:
    """A ``tls-error`` variant as its exception."""
    make = _TLS_ERRORS.get(value.tag)
    if make is None:
        return errors.TlsError(f"{value.tag}: {value.payload}")
    return make(value.payload)


def is_error(value: Any) -> bool:
    """Whether a ``result`` value is its err case (every err type here is a variant,
    no ok type is)."""
    return isinstance(value, Variant)


def unwrap_oauth(value: Any) -> Any:
    """The ok value of a ``result<_, oauth-error>``, or raises its exception."""
    if isinstance(value, Variant):
        raise oauth_error(value)
    return value


def unwrap_tls(value: Any) -> Any:
    """The ok value of a ``result<_, tls-error>``, or raises its exception."""
    if isinstance(value, Variant):
        raise tls_error(value)
    return value


def optional(cls: Type[T], value: Any) -> Optional[T]:
    """An ``option<record>`` as ``cls`` or ``None``."""
    return None if value is None else lift(cls, value)
