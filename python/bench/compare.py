#!/usr/bin/env python3
"""Side-by-side figures for the Python package and its peers, in one run.

- **token**: one client-credentials token request (a fresh token each time) through
  ``Plugin.request_token`` vs Authlib's ``httpx_client.OAuth2Client.fetch_token``,
  against the same development server (``gateway-auth dev-server``), both with
  ``client_secret_post``; **token_async** the same through ``AsyncPlugin`` (the call
  runs on a worker thread) vs ``AsyncOAuth2Client``. Authlib keeps its connection
  alive between requests; the plugin opens a new (resumed) TLS connection for each;
- **get**: one keep-alive ``GET /hello`` from an HTTPS upstream on 127.0.0.1 through
  ``httpx.Client`` + :class:`gateway_auth.httpx.PluginTransport` vs ``httpx.Client``
  with its own ``ssl.SSLContext``; the same with ``httpx.AsyncClient``
  (**get_async**);
- **rotation_past_capacity** / **rotation_within_capacity**: the seed's traffic,
  requests rotating over ``--gateways`` (101) upstreams with their own CAs (or the 100
  most recent), a new connection each, through the transport (cache of 100) vs the
  seed's own ``get_cached_ssl_context`` (full wipe at 100 entries) with an
  ``httpx.Client(verify=ctx)`` per request, as the seed did;
- **bulk**: ``GET /bytes/N`` (N = ``--bulk-mib`` MiB) on a kept-alive connection, in
  MiB/s, same pair.

The servers run in processes of their own (the upstream is a Python ``ssl`` server:
bench/servers.py), so they do not compete with the measured clients for the GIL.
Rounds are interleaved (ours, then the peer, then the peer first next round) so a
machine that slows down mid-run slows both. Each figure is the median over every
sample of every round, with its p99, and the spread: the lowest and highest of the
per-round medians. ``--json`` prints the figures as JSON instead of a table.

Usage::

    target/python/bin/python python/bench/compare.py [--rounds 5] [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import pathlib
import ssl
import statistics
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable, Dict, List, Sequence

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client  # type: ignore[import-untyped]

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from servers import HOST, DevServer, FleetProcess, RemoteUpstream, UpstreamProcess  # noqa: E402

from gateway_auth import (  # noqa: E402
    AsyncPlugin,
    Client,
    ClientCredentials,
    ClientSecretPost,
    EvictionPolicy,
    Plugin,
    Settings,
    TrustSpec,
)
from gateway_auth.httpx import AsyncPluginTransport, PluginTransport  # noqa: E402

Sample = Callable[[], float]
"""One measurement: returns its figure (seconds, or MiB/s for bulk)."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summarise(rounds: List[List[float]], scale: float) -> Dict[str, Any]:
    """Median, p99 and the spread of per-round medians, each times ``scale``."""
    every = [v for r in rounds for v in r]
    medians = [statistics.median(r) * scale for r in rounds]
    return {
        "median": statistics.median(every) * scale,
        "p99": percentile(every, 0.99) * scale,
        "round_min": min(medians),
        "round_max": max(medians),
        "samples": len(every),
    }


def interleave(pair: Dict[str, Callable[[], List[float]]], rounds: int) -> Dict[str, List[List[float]]]:
    """Runs each side's round in turn, the first side alternating, ``rounds`` times."""
    names = list(pair)
    out: Dict[str, List[List[float]]] = {n: [] for n in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            out[name].append(pair[name]())
    return out


def timed(call: Callable[[], Any], count: int) -> List[float]:
    """``count`` latencies of ``call``, in seconds."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def run_async(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[Any]], count: int) -> List[float]:
    """``count`` latencies of the coroutine ``call`` on ``loop``, in seconds."""

    async def measure() -> List[float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)
        return samples

    return loop.run_until_complete(measure())


def bench_token(plugin: Plugin, dev: DevServer, rounds: int, count: int) -> Dict[str, Any]:
    spec = TrustSpec(dev.ca_pem)
    client = Client(DevServer.POST_CLIENT_ID, ClientSecretPost(DevServer.POST_CLIENT_SECRET),
                    trust=spec, token_endpoint=dev.token_endpoint)
    grant = ClientCredentials()
    authlib = OAuth2Client(DevServer.POST_CLIENT_ID, DevServer.POST_CLIENT_SECRET,
                           token_endpoint_auth_method="client_secret_post",
                           verify=ssl.create_default_context(cadata=dev.ca_pem))

    def ours() -> None:
        token = plugin.request_token(client, grant)
        assert token.access_token

    def peer() -> None:
        token = authlib.fetch_token(dev.token_endpoint, grant_type="client_credentials")
        assert token["access_token"]

    ours()  # warm: connections, caches
    peer()
    try:
        results = interleave({"gateway_auth": lambda: timed(ours, count),
                              "authlib": lambda: timed(peer, count)}, rounds)
    finally:
        authlib.close()
    return {name: summarise(r, 1000.0) for name, r in results.items()}


def bench_token_async(plugin: AsyncPlugin, dev: DevServer, rounds: int, count: int) -> Dict[str, Any]:
    loop = asyncio.new_event_loop()
    client = Client(DevServer.POST_CLIENT_ID, ClientSecretPost(DevServer.POST_CLIENT_SECRET),
                    trust=TrustSpec(dev.ca_pem), token_endpoint=dev.token_endpoint)
    grant = ClientCredentials()

    async def make() -> Any:
        return AsyncOAuth2Client(DevServer.POST_CLIENT_ID, DevServer.POST_CLIENT_SECRET,
                                 token_endpoint_auth_method="client_secret_post",
                                 verify=ssl.create_default_context(cadata=dev.ca_pem))

    authlib = loop.run_until_complete(make())

    async def ours() -> None:
        token = await plugin.request_token(client, grant)
        assert token.access_token

    async def peer() -> None:
        token = await authlib.fetch_token(dev.token_endpoint, grant_type="client_credentials")
        assert token["access_token"]

    try:
        loop.run_until_complete(ours())
        loop.run_until_complete(peer())
        results = interleave({"gateway_auth": lambda: run_async(loop, ours, count),
                              "authlib": lambda: run_async(loop, peer, count)}, rounds)
    finally:
        loop.run_until_complete(authlib.aclose())
        loop.close()
    return {name: summarise(r, 1000.0) for name, r in results.items()}


def bench_get(plugin: Plugin, upstream: UpstreamProcess, rounds: int, count: int,
              bulk_bytes: int, bulk_count: int) -> Dict[str, Dict[str, Any]]:
    spec = TrustSpec(upstream.ca_pem)
    ours = httpx.Client(transport=PluginTransport(plugin, {upstream.origin: spec}))
    peer = httpx.Client(verify=ssl.create_default_context(cadata=upstream.ca_pem))
    hello, bulk = upstream.url("/hello"), upstream.url(f"/bytes/{bulk_bytes}")

    def get(client: httpx.Client) -> Callable[[], None]:
        def call() -> None:
            r = client.get(hello)
            assert r.status_code == 200
        return call

    def fetch(client: httpx.Client) -> Callable[[], None]:
        def call() -> None:
            r = client.get(bulk)
            assert len(r.content) == bulk_bytes
        return call

    def rate(client: httpx.Client) -> List[float]:
        mib = bulk_bytes / (1 << 20)
        return [mib / s for s in timed(fetch(client), bulk_count)]

    try:
        for c in (ours, peer):
            get(c)()
            fetch(c)()
        latency = interleave({"gateway_auth": lambda: timed(get(ours), count),
                              "httpx_ssl": lambda: timed(get(peer), count)}, rounds)
        throughput = interleave({"gateway_auth": lambda: rate(ours),
                                 "httpx_ssl": lambda: rate(peer)}, rounds)
    finally:
        ours.close()
        peer.close()
    return {"get": {n: summarise(r, 1000.0) for n, r in latency.items()},
            "bulk": {n: summarise(r, 1.0) for n, r in throughput.items()}}


def bench_get_async(plugin: AsyncPlugin, upstream: UpstreamProcess, rounds: int, count: int) -> Dict[str, Any]:
    loop = asyncio.new_event_loop()
    spec = TrustSpec(upstream.ca_pem)
    hello = upstream.url("/hello")

    async def clients() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return (httpx.AsyncClient(transport=AsyncPluginTransport(plugin, {upstream.origin: spec})),
                httpx.AsyncClient(verify=ssl.create_default_context(cadata=upstream.ca_pem)))

    ours, peer = loop.run_until_complete(clients())

    def get(client: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            r = await client.get(hello)
            assert r.status_code == 200
        return call

    try:
        for c in (ours, peer):
            loop.run_until_complete(get(c)())
        latency = interleave({"gateway_auth": lambda: run_async(loop, get(ours), count),
                              "httpx_ssl": lambda: run_async(loop, get(peer), count)}, rounds)
    finally:
        loop.run_until_complete(ours.aclose())
        loop.run_until_complete(peer.aclose())
        loop.close()
    return {n: summarise(r, 1000.0) for n, r in latency.items()}


class SeedSslCache:
    """The seed gateway's ``get_cached_ssl_context`` as it was reported: contexts keyed
    by their CA, and the whole cache cleared when an insert finds it full (at 100)."""

    def __init__(self, size: int = 100) -> None:
        self.size = size
        self._contexts: Dict[str, ssl.SSLContext] = {}
        self.built = 0

    def get(self, ca_pem: str) -> ssl.SSLContext:
        key = hashlib.sha256(ca_pem.encode()).hexdigest()
        found = self._contexts.get(key)
        if found is not None:
            return found
        if len(self._contexts) >= self.size:
            self._contexts.clear()  # the bug: a full wipe instead of one eviction
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=ca_pem)
        self._contexts[key] = context
        self.built += 1
        return context


def bench_rotation(fleet: List[RemoteUpstream], rounds: int) -> Dict[str, Dict[str, Any]]:
    """The seed's traffic: requests rotating over the gateways, a new connection for
    each, every cache holding one gateway fewer than there are (100 for the seed's
    101); over all of them, and over the most recent ones that fit. The plugin runs
    with its default LRU cache, and past capacity also with TinyLFU admission."""
    out: Dict[str, Dict[str, Any]] = {}
    capacity = len(fleet) - 1
    specs = {u.origin: TrustSpec(u.ca_pem) for u in fleet}
    for what, upstreams in (("rotation_past_capacity", fleet), ("rotation_within_capacity", fleet[1:])):
        policies = {"gateway_auth": EvictionPolicy.LRU}
        if what == "rotation_past_capacity":
            policies["gateway_auth_tiny_lfu"] = EvictionPolicy.TINY_LFU
        plugins = {name: Plugin(allow=[HOST], cache=Settings(capacity=capacity, policy=policy))
                   for name, policy in policies.items()}
        clients = {name: httpx.Client(transport=PluginTransport(p, specs, limits=httpx.Limits(
            max_keepalive_connections=0))) for name, p in plugins.items()}
        seed = SeedSslCache(capacity)

        def ours(client: httpx.Client) -> Callable[[], List[float]]:
            def one_round() -> List[float]:
                samples = []
                for u in upstreams:
                    started = time.perf_counter()
                    assert client.get(u.url()).status_code == 200
                    samples.append(time.perf_counter() - started)
                return samples
            return one_round

        def seed_round() -> List[float]:
            samples = []
            for u in upstreams:
                started = time.perf_counter()
                with httpx.Client(verify=seed.get(u.ca_pem)) as client:  # as the seed does
                    assert client.get(u.url()).status_code == 200
                samples.append(time.perf_counter() - started)
            return samples

        sides: Dict[str, Callable[[], List[float]]] = {n: ours(c) for n, c in clients.items()}
        sides["seed_ssl_cache"] = seed_round
        try:
            for side in sides.values():
                side()  # warm: every spec prepared, every context built once
            results = interleave(sides, rounds)
        finally:
            for client in clients.values():
                client.close()
            for plugin in plugins.values():
                plugin.close()
        out[what] = {n: summarise(r, 1000.0) for n, r in results.items()}
    return out


UNITS = {"token": "ms", "token_async": "ms", "get": "ms", "get_async": "ms", "bulk": "MiB/s",
         "rotation_past_capacity": "ms", "rotation_within_capacity": "ms"}
TITLES = {
    "token": "token request (client credentials)",
    "token_async": "token request, asyncio (AsyncPlugin)",
    "get": "upstream GET, keep-alive (httpx.Client)",
    "get_async": "upstream GET, keep-alive (httpx.AsyncClient)",
    "bulk": "upstream bulk GET",
    "rotation_past_capacity": "{all} gateways in turn, cache of {fit}",
    "rotation_within_capacity": "{fit} gateways in turn, cache of {fit}",
}


def table(figures: Dict[str, Any]) -> str:
    """The figures as a text table."""
    lines = [f"{'what':<46} {'who':<21} {'median':>9} {'p99':>9} {'rounds':>19}  unit"]
    for what, sides in figures["results"].items():
        for who, s in sides.items():
            title = TITLES[what].format(all=figures["gateways"], fit=figures["gateways"] - 1)
            lines.append(f"{title:<46} {who:<21} {s['median']:>9.3f} {s['p99']:>9.3f} "
                         f"{s['round_min']:>9.3f}-{s['round_max']:<9.3f}  {UNITS[what]}")
    lines.append(f"({figures['rounds']} interleaved rounds; {figures['requests']} requests per round "
                 f"and side, {figures['bulk_requests']} bulk GETs of {figures['bulk_mib']} MiB; "
                 f"gateways in turn: a new connection per request, the seed's own SSL-context cache "
                 f"with an httpx.Client per request; 'rounds' is the lowest and highest per-round median)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gateway-auth (Python) vs Authlib and plain httpx")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="token requests and GETs per round and side")
    parser.add_argument("--bulk-mib", type=float, default=8.0, help="size of the bulk GET")
    parser.add_argument("--bulk-requests", type=int, default=5, help="bulk GETs per round and side")
    parser.add_argument("--gateways", type=int, default=101,
                        help="upstreams with their own CAs for the rotation figures, the caches "
                             "holding one fewer (0: skip them)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if min(args.rounds, args.requests, args.bulk_requests) < 1 or args.bulk_mib <= 0:
        parser.error("counts must be at least 1 and --bulk-mib positive")
    if args.gateways == 1 or args.gateways < 0:
        parser.error("--gateways must be 0 or at least 2")
    bulk_bytes = int(args.bulk_mib * (1 << 20))
    with tempfile.TemporaryDirectory(prefix="gateway-auth-bench-") as tmp:
        directory = pathlib.Path(tmp)
        with DevServer(directory) as dev, UpstreamProcess("bench-upstream", directory) as upstream:
            plugin = Plugin(allow=[HOST])
            async_plugin = AsyncPlugin(allow=[HOST])
            try:
                results = {"token": bench_token(plugin, dev, args.rounds, args.requests),
                           "token_async": bench_token_async(async_plugin, dev, args.rounds, args.requests)}
                results.update(bench_get(plugin, upstream, args.rounds, args.requests,
                                         bulk_bytes, args.bulk_requests))
                results["get_async"] = bench_get_async(async_plugin, upstream, args.rounds, args.requests)
                if args.gateways:
                    with FleetProcess(args.gateways, directory / "fleet") as fleet:
                        results.update(bench_rotation(fleet.upstreams, args.rounds))
            finally:
                plugin.close()
                close = getattr(async_plugin, "close", None)
                if close is not None:
                    outcome = close()
                    if asyncio.iscoroutine(outcome):
                        asyncio.run(outcome)
    figures = {"rounds": args.rounds, "requests": args.requests, "bulk_mib": args.bulk_mib,
               "gateways": args.gateways,
               "bulk_requests": args.bulk_requests, "units": UNITS,
               "results": {k: results[k] for k in UNITS if k in results}}
    print(json.dumps(figures, indent=2) if args.json else table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
