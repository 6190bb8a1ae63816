#!/usr/bin/env python3
"""A Python host for the gateway-auth WebAssembly component, over wasmtime-py.

It loads the same ``.wasm`` as the Rust host, supplies the two imports of the
``gateway:auth`` world -- ``transport`` (TCP streams under an egress allow-list) and
``store`` (an in-memory compare-and-swap map) -- plus WASI p2, and calls the exports
``tls-cache`` and ``oauth`` through wasmtime's dynamic component API.

Usage::

    pip install -r examples/python/requirements.txt
    GATEWAY_AUTH_CLIENT_SECRET=... python3 examples/python/gateway_auth_host.py \\
        gateway_auth.wasm --ca ca.pem --token-endpoint https://auth.example.com/token \\
        --client-id gw --allow auth.example.com:443

How WIT values look in Python (wasmtime.component): a record is a ``Record`` whose
attributes carry the WIT field names (kebab-case, so set with ``setattr``); a variant
whose cases Python cannot tell apart by type is ``Variant(tag, payload)``; ``option<T>``
is ``None`` or the value; ``result`` is the bare ok or err value when their Python types
differ (as they do everywhere in this world); ``list<u8>`` is ``bytes``; a host
resource is a ``ResourceHost`` carrying an integer "rep" that indexes our own table.
"""

import argparse
import concurrent.futures
import ipaddress
import os
import socket
import sys
import threading
import time

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, ResourceHost, ResourceType, Variant

import fast_bytes
from egress import Egress

MAX_READ = 64 * 1024  # the most bytes one `read` returns, as in the Rust host
CONNECTION = 1  # our type id for the `connection` resource; any host-chosen integer
# getaddrinfo takes no timeout: lookups run here, and one past the deadline is abandoned.
RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


def interface(name):
    """The component-model name of one interface of the gateway:auth package."""
    return f"gateway:auth/{name}@0.1.0"


def record(**fields):
    """A WIT record: Python keyword `client_id` becomes WIT field `client-id`."""
    value = Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


class Transport:
    """`gateway:auth/transport`: the plugin speaks TLS itself, we only move bytes."""

    def __init__(self, egress):
        self.egress = egress
        self.sockets = {}  # rep -> socket; the guest holds only the rep
        self.next_rep = 1

    def connect(self, _store, host, port, timeout_ms):
        opened = open_socket(self.egress, host, port, max(timeout_ms, 1) / 1000)
        if isinstance(opened, Variant):
            return opened
        rep, self.next_rep = self.next_rep, self.next_rep + 1
        self.sockets[rep] = opened
        return ResourceHost.own(rep, CONNECTION)

    def write(self, store, conn, data: bytes, timeout_ms: int):
        """Sends all of `data` within `timeout_ms`, or the `net-error` why not.

        The time limit is for the whole write: a peer that takes a little at a time
        cannot stretch it, because every send waits only for what is left.
        """
        sock = self.sockets.get(conn.to_host(store).rep)
        if sock is None:
            return Variant("closed")
        try:
            send_all(sock, data, time.monotonic() + timeout_ms / 1000)
        except OSError as e:
            return net_error(e)
        return None  # result<_, net-error>: None is `ok`

    def read(self, store, conn, max_bytes: int, timeout_ms: int):
        """At most `max_bytes`, waiting at most `timeout_ms` for the first; b"" = the
        peer closed."""
        sock = self.sockets.get(conn.to_host(store).rep)
        if sock is None:
            return Variant("closed")
        try:
            sock.settimeout(timeout_ms / 1000)  # 0: take only what is there already
            return sock.recv(min(max(max_bytes, 1), MAX_READ))
        except OSError as e:
            return net_error(e)

    def drop(self, _store, rep):
        """The guest dropped its `connection`: close the socket."""
        sock = self.sockets.pop(rep, None)
        if sock is not None:
            sock.close()


def open_socket(egress, host, port, timeout):
    """A TCP socket to `host`:`port` under `egress`, or the `net-error` why not.

    The name is checked, then every resolved address; resolution and every connect
    attempt share one deadline, as in the Rust host. The socket gets TCP_NODELAY (the
    plugin writes whole TLS flights; Nagle would hold them back ~40 ms); every later
    read and write sets its own timeout.
    """
    if not egress.allows(host, port):
        return Variant("denied", f"{host}:{port} is not in the egress allow-list")
    deadline = time.monotonic() + timeout
    lookup = RESOLVER.submit(socket.getaddrinfo, host.strip("[]"), port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return Variant("timeout")
    except (socket.gaierror, UnicodeError) as e:
        return Variant("resolve", f"{host}: {e}")
    refusal, failure = None, None
    for family, kind, proto, _, address in infos:
        if not egress.check_address(ipaddress.ip_address(address[0]), port):
            refusal = f"{host}: {address[0]} is a private, loopback, link-local or other special-purpose address"
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return Variant("timeout")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            sock.close()
            failure = e
            continue
        return sock
    if isinstance(failure, TimeoutError):
        return Variant("timeout")
    if failure is not None:
        return Variant("connect", f"{host}:{port}: {failure}")
    if refusal is not None:
        return Variant("denied", refusal)
    return Variant("resolve", f"{host}: no addresses")


def send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    """Sends all of `data` by `deadline` (time.monotonic), else raises TimeoutError.

    Each send waits at most for the time left, so the deadline bounds the whole write
    however slowly the peer takes it.
    """
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the write did not finish in time")
        sock.settimeout(left)
        sent = sock.send(view)
        view = view[sent:]


def net_error(e):
    """Maps a socket failure onto the `net-error` variant."""
    if isinstance(e, (TimeoutError, BlockingIOError)):  # BlockingIOError: no time was left
        return Variant("timeout")
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return Variant("reset", str(e))
    return Variant("other", str(e))


class MemoryStore:
    """`gateway:auth/store` as a dict. The lock makes compare-and-swap atomic when one
    store is shared by plugins on several threads."""

    def __init__(self):
        self.values = {}
        self.lock = threading.Lock()

    def get(self, _store, key):
        # result<stored, string>: a `stored` record is `ok`, a string is the store's
        # error (a dict never fails).
        with self.lock:
            return record(value=self.values.get(key))

    def compare_and_swap(self, _store, key, expected, value):
        with self.lock:
            if self.values.get(key) != expected:
                return False  # another writer got there first
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value
            return True


class Plugin:
    """One instance of the component, with its own wasmtime store."""

    def __init__(self, wasm_path, allow, store=None, bulk_bytes=True, memory_limit: int = 64 << 20):
        """Instantiates the component at `wasm_path` with egress rules `allow`, token
        store `store` (default: a fresh `MemoryStore`) and each linear memory bounded by
        `memory_limit` bytes (64 MiB, as in the Rust host)."""
        # wasmtime-py converts byte lists a byte at a time (~1 MiB/s); see fast_bytes.
        if bulk_bytes:
            fast_bytes.install()
        engine = Engine()
        component = Component.from_file(engine, wasm_path)
        self.transport = Transport(Egress(allow))
        self.kv = store or MemoryStore()
        linker = Linker(engine)
        linker.add_wasip2()
        with linker.root() as root:
            with root.add_instance(interface("transport")) as t:
                t.add_resource("connection", ResourceType.host(CONNECTION), self.transport.drop)
                t.add_func("connect", self.transport.connect)
                t.add_func("[method]connection.write", self.transport.write)
                t.add_func("[method]connection.read", self.transport.read)
            with root.add_instance(interface("store")) as s:
                s.add_func("get", self.kv.get)
                s.add_func("compare-and-swap", self.kv.compare_and_swap)
        self.store = Store(engine)
        self.store.set_limits(memory_size=memory_limit)
        wasi = WasiConfig()
        wasi.inherit_stderr()  # the plugin's own log lines, which never carry secrets
        self.store.set_wasi(wasi)
        self.instance = linker.instantiate(self.store, component)

    def call(self, iface, name, *args):
        """Calls export `name` of interface `iface` and returns its (lifted) result."""
        parent = self.instance.get_export_index(self.store, interface(iface))
        index = self.instance.get_export_index(self.store, name, parent)
        func = self.instance.get_func(self.store, index)
        result = func(self.store, *args)
        func.post_return(self.store)
        return result


    def metrics_text(self):
        """The instance's figures (the `metrics` export) as Prometheus text exposition,
        line for line what the Rust host's `Plugin::metrics_text` renders."""
        return render_metrics(self.call("metrics", "snapshot"))


def _seconds(ms):
    """Milliseconds as seconds in the shortest exact decimal, as the Rust host writes
    them (`0.005`, `2.5`, `10`): never Python's float repr."""
    whole, fraction = divmod(ms, 1000)
    return str(whole) if fraction == 0 else f"{whole}.{fraction:03d}".rstrip("0")


def _escape(value):
    """A label value escaped as the format requires: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# Every session phase, in the order (and snake-case spelling) the Rust host lists them.
SESSION_PHASES = ["empty", "valid", "authorizing", "backoff", "authorization_required", "failed"]


def render_metrics(m):
    """A `plugin-metrics` record as Prometheus text exposition (format 0.0.4)."""
    out = []

    def family(name, kind, text):
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    def sample(name, labels, value):
        if labels:
            inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels)
            name = f"{name}{{{inner}}}"
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
        sample(expiry, [("profile", p.id)], getattr(p, "not-after"))
    handshakes = "gateway_auth_tls_upstream_handshakes_total"
    family(handshakes, "counter",
           "Upstream TLS handshakes finished, by kind: full, or resumed from an earlier session.")
    sample(handshakes, [("kind", "full")], getattr(m, "handshakes-full"))
    sample(handshakes, [("kind", "resumed")], getattr(m, "handshakes-resumed"))
    requests = "gateway_auth_oauth_token_requests_total"
    family(requests, "counter",
           "Token requests sent, retries included, by grant and outcome "
           "(ok or the oauth-error case).")
    for r in getattr(m, "token-requests"):
        sample(requests, [("grant", r.grant), ("outcome", r.outcome)], r.count)
    durations = "gateway_auth_oauth_token_request_duration_seconds"
    family(durations, "histogram",
           "How long token requests took, from sending to the classified answer, by grant.")
    for d in getattr(m, "token-request-durations"):
        for bound, n in zip(getattr(d, "bounds-ms"), d.cumulative):
            sample(f"{durations}_bucket", [("grant", d.grant), ("le", _seconds(bound))], n)
        sample(f"{durations}_bucket", [("grant", d.grant), ("le", "+Inf")], d.count)
        sample(f"{durations}_sum", [("grant", d.grant)], _seconds(getattr(d, "sum-ms")))
        sample(f"{durations}_count", [("grant", d.grant)], d.count)
    sessions = "gateway_auth_oauth_sessions"
    family(sessions, "gauge", "Open sessions by phase.")
    held = {str(c.phase).replace("-", "_"): c.sessions for c in m.sessions}
    for phase in SESSION_PHASES:
        sample(sessions, [("phase", phase)], held.get(phase, 0))
    return "\n".join(out) + "\n"


def trust_spec(ca_pem):
    return record(ca_bundle=ca_pem, client_certificate=None, client_key=None, web_roots=False)


def describe(value):
    """A WIT error value as text, e.g. `transport(denied("..."))`."""
    if isinstance(value, Variant):
        return value.tag if value.payload is None else f"{value.tag}({describe(value.payload)})"
    if isinstance(value, Record):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in vars(value).items()) + "}"
    return repr(value)


def fail(message):
    """Reports a failure on stderr after what was printed so far; returns the exit code."""
    sys.stdout.flush()
    print(message, file=sys.stderr)
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wasm", help="the component, e.g. gateway_auth_guest.wasm")
    parser.add_argument("--ca", required=True, help="PEM file with the token endpoint's CA")
    parser.add_argument("--token-endpoint", required=True, help="https URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret-env", default="GATEWAY_AUTH_CLIENT_SECRET",
                        help="environment variable holding the client secret")
    parser.add_argument("--allow", action="append", default=[], metavar="RULE",
                        help="egress rule, `host` or `host:port`; repeatable")
    parser.add_argument("--metrics", action="store_true",
                        help="print the plugin's metrics (Prometheus text) at the end")
    parser.add_argument("--timeout-ms", type=int, default=None,
                        help="the deadline of the token request, retries included (default 10000)")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.client_secret_env)
    if not secret:
        return fail(f"error: set {args.client_secret_env} to the client secret")
    with open(args.ca, encoding="utf-8") as f:
        trust = trust_spec(f.read())

    plugin = Plugin(args.wasm, args.allow)
    for attempt in ("prepare", "prepare again"):
        profile = plugin.call("tls-cache", "prepare", trust)
        if isinstance(profile, Variant):  # result<profile, tls-error>: the err case
            return fail(f"{attempt}: tls error: {describe(profile)}")
        print(f"{attempt}: profile {profile.id} with {profile.anchors} trust anchor(s), "
              f"cached={profile.cached}")

    client = record(
        client_id=args.client_id, auth=Variant("client-secret-basic", secret),
        issuer=None, token_endpoint=args.token_endpoint, authorization_endpoint=None,
        device_authorization_endpoint=None, revocation_endpoint=None, redirect_uri=None,
        scopes=[], audience=None, resources=[], trust=trust, timeout_ms=args.timeout_ms,
        refresh_skew_seconds=None, refresh_jitter_seconds=None, failure_hold_off_seconds=None,
        authorization_params=[])
    started = time.monotonic()
    token = plugin.call("oauth", "request-token", client, Variant("client-credentials"))
    if isinstance(token, Variant):  # result<token, oauth-error>: the err case
        return fail(f"token: oauth error: {describe(token)} "
                    f"(after {time.monotonic() - started:.3f} s)")
    # Never the token itself: only what it is and how long.
    print(f"token: type {getattr(token, 'token-type')}, "
          f"length {len(getattr(token, 'access-token'))}")

    stats = plugin.call("tls-cache", "stats")
    print("stats: " + ", ".join(f"{k}={v}" for k, v in vars(stats).items()))
    if args.metrics:
        print(plugin.metrics_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
