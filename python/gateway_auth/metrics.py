"""The plugin's figures: adding up across replaced instances and pools, and the
Prometheus text exposition (format 0.0.4) the Rust host's ``metrics_text`` renders,
line for line."""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Sequence, Tuple

from .types import (CacheStats, DurationHistogram, PluginMetrics, ProfileExpiry, SessionPhase,
                    TokenRequestCount)

__all__ = ["metrics_text", "add_counters", "sum_metrics", "EMPTY"]

EMPTY = PluginMetrics(CacheStats(0, 0, 0, 0, 0, 0, 0), 0, 0, (), (), (), ())
"""Figures of an instance that counted nothing."""


def add_counters(total: PluginMetrics, other: PluginMetrics) -> PluginMetrics:
    """``total`` with the counters of ``other`` added; ``total``'s gauges (cache size
    and capacity, sessions, profiles) kept as they are."""
    c, o = total.cache, other.cache
    cache = dataclasses.replace(c, hits=c.hits + o.hits, misses=c.misses + o.misses,
                                evictions=c.evictions + o.evictions,
                                expirations=c.expirations + o.expirations,
                                rejected=c.rejected + o.rejected)
    requests: Dict[Tuple[str, str], int] = {}
    for r in (*total.token_requests, *other.token_requests):
        requests[(r.grant, r.outcome)] = requests.get((r.grant, r.outcome), 0) + r.count
    durations: Dict[str, DurationHistogram] = {}
    for d in (*total.token_request_durations, *other.token_request_durations):
        held = durations.get(d.grant)
        if held is None:
            durations[d.grant] = d
        elif held.bounds_ms == d.bounds_ms:
            durations[d.grant] = dataclasses.replace(
                held, cumulative=tuple(a + b for a, b in zip(held.cumulative, d.cumulative)),
                sum_ms=held.sum_ms + d.sum_ms, count=held.count + d.count)
        # histograms with other bounds cannot be added: the first one read is kept
    return dataclasses.replace(
        total, cache=cache,
        handshakes_full=total.handshakes_full + other.handshakes_full,
        handshakes_resumed=total.handshakes_resumed + other.handshakes_resumed,
        token_requests=tuple(TokenRequestCount(g, o_, n)
                             for (g, o_), n in sorted(requests.items())),
        token_request_durations=tuple(durations[g] for g in sorted(durations)))


def sum_metrics(parts: Sequence[PluginMetrics]) -> PluginMetrics:
    """The figures of several instances (a pool): counters, cache sizes and
    capacities added up, profiles listed once (earliest expiry), sessions as the
    instance holding the most of them sees them."""
    total = EMPTY
    profiles: Dict[str, int] = {}
    for part in parts:
        total = add_counters(total, part)
        total = dataclasses.replace(total, cache=dataclasses.replace(
            total.cache, size=total.cache.size + part.cache.size,
            capacity=total.cache.capacity + part.cache.capacity))
        for p in part.profiles:
            profiles[p.id] = min(profiles.get(p.id, p.not_after), p.not_after)
    sessions = max(parts, key=lambda m: sum(c.sessions for c in m.sessions)).sessions if parts else ()
    return dataclasses.replace(
        total, profiles=tuple(ProfileExpiry(i, n) for i, n in sorted(profiles.items())),
        sessions=sessions)


def _seconds(ms: int) -> str:
    """Milliseconds as seconds in the shortest exact decimal (``0.005``, ``2.5``,
    ``10``), as the Rust host writes them."""
    whole, fraction = divmod(ms, 1000)
    return str(whole) if fraction == 0 else f"{whole}.{fraction:03d}".rstrip("0")


def _escape(value: str) -> str:
    """A label value escaped: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(m: PluginMetrics) -> str:
    """``m`` as Prometheus text exposition: ``# HELP`` and ``# TYPE`` for every family,
    histograms with cumulative buckets up to ``+Inf``, every session phase listed."""
    out: List[str] = []

    def family(name: str, kind: str, text: str) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    def sample(name: str, labels: Iterable[Tuple[str, str]], value: object) -> None:
        pairs = list(labels)
        if pairs:
            name = name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"
        out.append(f"{name} {value}")

    c = m.cache
    gets = "gateway_auth_tls_cache_gets_total"
    family(gets, "counter",
           "TLS cache lookups by prepare and connect, by result (a miss built a configuration).")
    sample(gets, [("result", "hit")], c.hits)
    sample(gets, [("result", "miss")], c.misses)
    evictions = "gateway_auth_tls_cache_evictions_total"
    family(evictions, "counter",
           "TLS cache entries dropped, by cause: capacity (least recently used) or expired (TTL).")
    sample(evictions, [("cause", "capacity")], c.evictions)
    sample(evictions, [("cause", "expired")], c.expirations)
    rejected = "gateway_auth_tls_cache_rejected_total"
    family(rejected, "counter", "Trust material refused by prepare (nothing was cached).")
    sample(rejected, [], c.rejected)
    family("gateway_auth_tls_cache_size", "gauge", "TLS configurations held in the cache.")
    sample("gateway_auth_tls_cache_size", [], c.size)
    family("gateway_auth_tls_cache_capacity", "gauge",
           "The most TLS configurations the cache holds.")
    sample("gateway_auth_tls_cache_capacity", [], c.capacity)
    expiry = "gateway_auth_tls_profile_expiry_timestamp_seconds"
    family(expiry, "gauge",
           "The earliest notAfter among a cached profile's certificates, in Unix seconds.")
    for p in m.profiles:
        sample(expiry, [("profile", p.id)], p.not_after)
    handshakes = "gateway_auth_tls_upstream_handshakes_total"
    family(handshakes, "counter",
           "Upstream TLS handshakes finished, by kind: full, or resumed from an earlier session.")
    sample(handshakes, [("kind", "full")], m.handshakes_full)
    sample(handshakes, [("kind", "resumed")], m.handshakes_resumed)
    requests = "gateway_auth_oauth_token_requests_total"
    family(requests, "counter",
           "Token requests sent, retries included, by grant and outcome "
           "(ok or the oauth-error case).")
    for r in m.token_requests:
        sample(requests, [("grant", r.grant), ("outcome", r.outcome)], r.count)
    durations = "gateway_auth_oauth_token_request_duration_seconds"
    family(durations, "histogram",
           "How long token requests took, from sending to the classified answer, by grant.")
    for d in m.token_request_durations:
        for bound, n in zip(d.bounds_ms, d.cumulative):
            sample(f"{durations}_bucket", [("grant", d.grant), ("le", _seconds(bound))], n)
        sample(f"{durations}_bucket", [("grant", d.grant), ("le", "+Inf")], d.count)
        sample(f"{durations}_sum", [("grant", d.grant)], _seconds(d.sum_ms))
        sample(f"{durations}_count", [("grant", d.grant)], d.count)
    sessions = "gateway_auth_oauth_sessions"
    family(sessions, "gauge", "Open sessions by phase.")
    held = {c_.phase: c_.sessions for c_ in m.sessions}
    for phase in SessionPhase:
        sample(sessions, [("phase", phase.value.replace("-", "_"))], held.get(phase, 0))
    return "\n".join(out) + "\n"
