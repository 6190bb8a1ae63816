"""The Python host's `transport` import: every read and write keeps to the timeout the
plugin passes (what is left of its call's deadline), over real sockets on 127.0.0.1."""

import pathlib
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from wasmtime.component import Variant  # noqa: E402

from egress import Egress  # noqa: E402
from gateway_auth_host import Transport  # noqa: E402

MARGIN = 0.5  # seconds a call may overrun its timeout on a busy machine
REP = 7


class Handle:
    """Stands in for the `connection` borrow wasmtime-py passes: `to_host().rep`."""

    rep = REP

    def to_host(self, _store):
        return self


class TransportTimeouts(unittest.TestCase):
    def setUp(self):
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        self.client = socket.create_connection(listener.getsockname())
        self.peer, _ = listener.accept()
        self.addCleanup(self.peer.close)
        # Small buffers, so a few MiB fill them and a write has to wait for the peer.
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        self.peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.transport = Transport(Egress(["127.0.0.1"]))
        self.transport.sockets[REP] = self.client
        self.addCleanup(self.transport.drop, None, REP)

    def timed(self, call, *args):
        started = time.monotonic()
        result = call(None, Handle(), *args)
        return result, time.monotonic() - started

    def assertTimeout(self, result):
        self.assertIsInstance(result, Variant)
        self.assertEqual(result.tag, "timeout")

    def test_a_read_from_a_silent_peer_ends_with_timeout_by_its_timeout(self):
        result, took = self.timed(self.transport.read, 1024, 300)
        self.assertTimeout(result)
        self.assertLess(took, 0.3 + MARGIN)

    def test_a_read_returns_what_arrives_within_its_timeout(self):
        threading.Timer(0.1, self.peer.sendall, [b"hello"]).start()
        result, _ = self.timed(self.transport.read, 1024, 10_000)
        self.assertEqual(result, b"hello")

    def test_a_read_with_no_time_left_takes_only_what_is_there(self):
        self.peer.sendall(b"x")
        time.sleep(0.1)
        self.assertEqual(self.timed(self.transport.read, 1024, 0)[0], b"x")
        self.assertTimeout(self.timed(self.transport.read, 1024, 0)[0])

    def test_a_read_after_the_peer_closed_is_empty(self):
        self.peer.close()
        self.assertEqual(self.timed(self.transport.read, 1024, 1000)[0], b"")

    def test_a_write_the_peer_takes_in_time_arrives_whole(self):
        data = bytes(range(256)) * 4096  # 1 MiB
        received = bytearray()

        def drain():
            while len(received) < len(data):
                chunk = self.peer.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        result, _ = self.timed(self.transport.write, data, 10_000)
        reader.join(10)
        self.assertIsNone(result)
        self.assertEqual(bytes(received), data)

    def test_a_write_to_a_peer_that_never_reads_ends_with_timeout_by_its_timeout(self):
        result, took = self.timed(self.transport.write, bytes(32 << 20), 300)
        self.assertTimeout(result)
        self.assertLess(took, 0.3 + MARGIN)

    def test_a_peer_that_reads_a_little_at_a_time_cannot_stretch_a_write(self):
        # Every send makes progress, so only a limit on the whole write ends it.
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                try:
                    self.peer.recv(16 * 1024)
                except OSError:
                    return
                time.sleep(0.01)

        reader = threading.Thread(target=trickle)
        reader.start()
        self.addCleanup(reader.join, 5)
        self.addCleanup(stop.set)
        result, took = self.timed(self.transport.write, bytes(64 << 20), 500)
        self.assertTimeout(result)
        self.assertLess(took, 0.5 + MARGIN)

    def test_a_write_with_no_time_left_is_a_timeout(self):
        self.assertTimeout(self.timed(self.transport.write, b"late", 0)[0])


if __name__ == "__main__":
    unittest.main()
