"""The public surface: everything in ``__all__`` importable and documented, no
wasmtime type in any public signature, and no work at import time."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

from wasmtime.component import Variant

import gateway_auth as ga
from gateway_auth import _wit
from gateway_auth._wit import record


def public_callables() -> typing.Iterator[tuple[str, typing.Any]]:
    for name in ga.__all__:
        obj = getattr(ga, name)
        if inspect.isclass(obj):
            yield name, obj
            for member, value in vars(obj).items():
                if not member.startswith("_") and (inspect.isfunction(value)
                                                   or isinstance(value, property)):
                    yield f"{name}.{member}", value.fget if isinstance(value, property) else value
        elif inspect.isfunction(obj):
            yield name, obj


def test_every_public_name_is_documented() -> None:
    undocumented = [name for name, obj in public_callables() if not inspect.getdoc(obj)]
    assert undocumented == []


def test_no_public_signature_mentions_a_wasmtime_type() -> None:
    leaks = []
    for name, obj in public_callables():
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            hints = typing.get_type_hints(target)
        except Exception:  # noqa: BLE001 - a hint that does not resolve is a finding too
            leaks.append(f"{name}: unresolvable hints")
            continue
        for hint in hints.values():
            if "wasmtime" in repr(hint):
                leaks.append(f"{name}: {hint!r}")
    assert leaks == []


def test_importing_the_package_starts_no_thread_and_loads_no_component() -> None:
    probe = ("import threading, gateway_auth, gateway_auth._instance as i; "
             "print(threading.active_count(), len(i.Runtime._shared))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "0"]


WIT = Path(__file__).resolve().parents[2] / "wit"


def wit_cases(file: str, variant: str) -> list[str]:
    """The case names of ``variant`` in ``wit/<file>``."""
    text = (WIT / file).read_text()
    body = text[text.index(f"variant {variant} {{"):]
    body = body[body.index("{") + 1:body.index("\n    }")]
    return re.findall(r"^\s+([a-z][a-z0-9-]*)\s*[(,]", body, re.M)


def sample(tag: str) -> typing.Any:
    """A payload of the shape the case carries (see the .wit files)."""
    if tag == "protocol":
        return record(status=400, error="invalid_request", description=None, uri=None,
                      retry_after=None)
    if tag == "http-status":
        return record(status=503, snippet="", retry_after=3)
    if tag == "backoff":
        return record(retry_at=1, failures=2, last_error="x")
    if tag == "transport":
        return Variant("timeout")
    if tag == "too-large":
        return 1024
    if tag in ("no-certificates", "certificate-without-key", "key-without-certificate",
               "key-mismatch", "unknown-profile", "closed"):
        return None
    return "text"


def test_every_oauth_error_case_of_the_wit_has_its_own_exception() -> None:
    cases = wit_cases("oauth.wit", "oauth-error")
    assert len(cases) >= 9
    classes = {type(_wit.oauth_error(Variant(tag, sample(tag)))) for tag in cases}
    assert ga.OAuthError not in classes, "a case fell back to the base class"
    assert len(classes) == len(cases)


def test_every_tls_error_case_of_the_wit_has_its_own_exception() -> None:
    cases = wit_cases("tls-cache.wit", "tls-error")
    assert len(cases) >= 14
    classes = {type(_wit.tls_error(Variant(tag, sample(tag)))) for tag in cases}
    assert ga.TlsError not in classes, "a case fell back to the base class"
    assert len(classes) == len(cases)


def test_host_timeouts_are_timeout_errors() -> None:
    assert issubclass(ga.CallTimeout, ga.PluginTrapped) and issubclass(ga.CallTimeout, TimeoutError)
    assert issubclass(ga.TransportTimeout, TimeoutError)
    assert issubclass(ga.NetworkTimeout, TimeoutError)


def test_net_error_kinds_are_the_wit_cases() -> None:
    assert [k.value for k in ga.NetErrorKind] == wit_cases("types.wit", "net-error")


def test_enums_are_the_wit_cases() -> None:
    text = (WIT / "oauth.wit").read_text() + (WIT / "tls-cache.wit").read_text()

    def enum_cases(name: str) -> list[str]:
        body = text[text.index(f"enum {name} {{"):]
        body = body[body.index("{") + 1:body.index("}")]
        return re.findall(r"^\s+([a-z][a-z0-9-]*),", body, re.M)

    assert [s.value for s in ga.SessionPhase] == enum_cases("session-phase")
    assert [s.value for s in ga.TlsState] == enum_cases("tls-state")
    assert [a.value for a in ga.JwtAlgorithm] == enum_cases("jwt-algorithm")
    assert [s.value for s in ga.RegistrationSource] == enum_cases("registration-source")


RECORDS = {
    "trust-spec": ga.TrustSpec, "settings": ga.Settings, "profile": ga.Profile,
    "cache-stats": ga.CacheStats, "tls-output": ga.TlsOutput, "tls-info": ga.TlsInfo,
    "client": ga.Client, "signing-key": ga.SigningKey, "assertion-signer": ga.AssertionSigner,
    "password-credentials": ga.Password, "code-exchange": ga.AuthorizationCode,
    "token-exchange": ga.TokenExchange, "token": ga.Token, "authorization": ga.Authorization,
    "device-authorization": ga.DeviceAuthorization, "session-state": ga.SessionState,
    "session-lease": ga.SessionLease, "token-request-count": ga.TokenRequestCount,
    "duration-histogram": ga.DurationHistogram, "phase-count": ga.PhaseCount,
    "profile-expiry": ga.ProfileExpiry, "plugin-metrics": ga.PluginMetrics,
    "resource-authorization": ga.ResourceAuthorization,
    "registration-request": ga.RegistrationRequest, "registration": ga.Registration,
}


def test_every_dataclass_has_the_fields_of_its_wit_record() -> None:
    import dataclasses
    text = "".join(p.read_text() for p in WIT.glob("*.wit"))
    for name, cls in RECORDS.items():
        body = text[text.index(f"record {name} {{"):]
        body = body[body.index("{") + 1:body.index("}")]
        # `%resource`: a WIT keyword escaped as a field name.
        wit_fields = re.findall(r"^\s+%?([a-z][a-z0-9-]*):", body, re.M)
        ours = {f.name for f in dataclasses.fields(cls)}
        assert {f.replace("-", "_") for f in wit_fields} == ours, name
