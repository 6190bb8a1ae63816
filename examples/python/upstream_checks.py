#!/usr/bin/env python3
"""Checks of the asyncio upstream stream (upstream.py) that tests/python_host.rs runs
against servers on 127.0.0.1 it starts itself. Each subcommand prints `key: value`
lines for the test to read and exits 0 when the check ran to its end:

- ``upload``: one POST of `--size` bytes (byte i is i % 251) through the stream; the
  server tells the test what it received.
- ``silent``: a connect to a server that accepts and never answers; prints the error
  and how long the connect took.
- ``churn``: many connects that fail after their TLS session was created (the server
  closes during the handshake), are cancelled, or run out of time, on one instance
  with a small memory bound; then one stream to a working server. Prints how many
  sessions the plugin created and how many were dropped.
"""

import argparse
import asyncio
import os
import sys
import time

from wasmtime.component import ResourceAny, Variant

from gateway_auth_host import Plugin, trust_spec
from upstream import Upstream, UpstreamError

HOST = "127.0.0.1"


class SessionCount:
    """Counts the plugin's `tls-session` resources as they are created and dropped,
    from outside upstream.py: every successful `tls-cache.connect` makes one, and only
    `ResourceAny.drop` frees one (a handle Python merely forgets stays in the
    instance)."""

    def __init__(self, plugin: Plugin):
        self.created = 0
        self.dropped = 0
        call = plugin.call

        def counting_call(iface, name, *args):
            result = call(iface, name, *args)
            if (iface, name) == ("tls-cache", "connect") and not isinstance(result, Variant):
                self.created += 1
            return result

        plugin.call = counting_call
        drop = ResourceAny.drop

        def counting_drop(resource, store):
            drop(resource, store)
            self.dropped += 1  # only tls-sessions are ResourceAny in this program

        ResourceAny.drop = counting_drop

    @property
    def live(self) -> int:
        """Sessions created and not dropped."""
        return self.created - self.dropped


def open_fds() -> int:
    """File descriptors this process holds (Linux)."""
    return len(os.listdir("/proc/self/fd"))


async def upload(plugin: Plugin, spec, port: int, size: int) -> None:
    payload = (bytes(range(251)) * (size // 251 + 1))[:size]
    head = f"POST /upload HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: {size}\r\n\r\n"
    answer = await exchange(plugin, spec, port, head.encode() + payload)
    body = answer.partition(b"\r\n\r\n")[2]
    print(f"answer: {body.decode()}")


async def silent(plugin: Plugin, spec, port: int, timeout: float) -> None:
    started = time.monotonic()
    try:
        # The guard only keeps a stream that never times out from hanging the test.
        await asyncio.wait_for(Upstream(plugin, spec, timeout).connect(HOST, port), 3 * timeout + 5)
        outcome = "connected"
    except UpstreamError as e:
        outcome = f"{type(e).__name__}: {e}"
    except asyncio.TimeoutError:
        outcome = "hung: only the test's guard ended the connect"
    print(f"elapsed: {time.monotonic() - started:.3f} s")
    print(f"outcome: {outcome}")


async def churn(plugin: Plugin, spec, args, sessions: SessionCount) -> None:
    upstream = Upstream(plugin, spec, connect_timeout=5.0)
    closed = 0
    for _ in range(args.count):
        try:
            await upstream.connect(HOST, args.closing_port)
        except UpstreamError:
            closed += 1
    print(f"closed during the handshake: {closed}")

    cancelled = 0
    batch = 50
    for _ in range(args.count // batch):
        before = sessions.created
        tasks = [asyncio.create_task(upstream.connect(HOST, args.silent_port)) for _ in range(batch)]
        # Cancel only once every connect holds its session, mid-handshake.
        waited = time.monotonic()
        while sessions.created - before < batch and time.monotonic() - waited < 10:
            await asyncio.sleep(0.002)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled += sum(isinstance(r, asyncio.CancelledError) for r in results)
    print(f"cancelled mid-handshake: {cancelled}")

    impatient = Upstream(plugin, spec, connect_timeout=0.2)
    tasks = [asyncio.create_task(impatient.connect(HOST, args.silent_port)) for _ in range(batch)]
    # The guard only keeps connects that never time out from hanging the test.
    await asyncio.wait(tasks, timeout=10)
    timed_out = sum(t.done() and isinstance(t.exception(), TimeoutError) for t in tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"past the connect deadline: {timed_out}")


async def exchange(plugin: Plugin, spec, port: int, request: bytes) -> bytes:
    """Sends `request` through a fresh stream and returns all of the answer."""
    stream = await Upstream(plugin, spec).connect(HOST, port, alpn=["http/1.1"])
    try:
        await stream.write(request)
        answer = bytearray()
        while data := await stream.read():
            answer += data
    finally:
        await stream.close()
    return bytes(answer)


async def works(plugin: Plugin, spec, port: int) -> str:
    """The status line of one GET through a fresh stream."""
    answer = await exchange(plugin, spec, port, f"GET /token HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode())
    return answer.split(b"\r\n", 1)[0].decode()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check", choices=["upload", "silent", "churn"])
    parser.add_argument("wasm")
    parser.add_argument("--ca", required=True, help="PEM file with the servers' CA")
    parser.add_argument("--port", type=int, help="the server to upload to or stay silent")
    parser.add_argument("--size", type=int, default=2 << 20)
    parser.add_argument("--timeout", type=float, default=1.0, help="connect deadline, seconds")
    parser.add_argument("--closing-port", type=int)
    parser.add_argument("--silent-port", type=int)
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--memory-limit", type=int, default=64 << 20)
    args = parser.parse_args(argv)
    with open(args.ca, encoding="utf-8") as f:
        spec = trust_spec(f.read())
    plugin = Plugin(args.wasm, [HOST], memory_limit=args.memory_limit)
    if args.check == "upload":
        asyncio.run(upload(plugin, spec, args.port, args.size))
    elif args.check == "silent":
        asyncio.run(silent(plugin, spec, args.port, args.timeout))
    else:
        sessions = SessionCount(plugin)
        fds = open_fds()
        asyncio.run(churn(plugin, spec, args, sessions))
        print(f"sessions created: {sessions.created}")
        print(f"sessions live: {sessions.live}")
        print(f"file descriptors: {fds} -> {open_fds()}")
        print(f"later stream: {asyncio.run(works(plugin, spec, args.port))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
