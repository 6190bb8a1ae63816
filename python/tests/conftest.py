"""Fixtures: the development authorization server (the ``gateway-auth dev-server``
command), Python TLS servers with their own test CAs, a real ``redis-server``, all on
127.0.0.1. A missing binary fails the test with what to run; nothing is skipped."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest

import gateway_auth as ga

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("GATEWAY_AUTH_BIN_DIR", REPO / "target" / "debug"))

# The development server's bundled clients and credentials (devserver/src/lib.rs `defaults`).
BASIC_CLIENT_ID = "basic-client"
BASIC_CLIENT_SECRET = "s3c:r%t pa ss"
POST_CLIENT_ID = "post-client"
POST_CLIENT_SECRET = "p0st&secret=a+b"
PUBLIC_CLIENT_ID = "public-client"
JWT_RS256_CLIENT_ID = "jwt-rs256-client"
JWT_ES256_CLIENT_ID = "jwt-es256-client"
MTLS_CLIENT_ID = "mtls-client"
USERNAME = "alice"
PASSWORD = "wonder land&=%"
REDIRECT_URI = "https://gateway.example/callback"
JWT_BEARER_ISSUER = "https://assertions.gateway.example"

LOOPBACK = ["127.0.0.1"]


def binary(name: str) -> Path:
    """A Rust binary of the workspace; fails (never skips) when it is not built."""
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it with `cargo build -p gateway-auth --bins` "
                    f"(./run test does)")
    return path


# ---- the development authorization server ----


class DevServer:
    """A running ``gateway-auth dev-server --control``."""

    def __init__(self, workdir: Path, *flags: str) -> None:
        self.workdir = workdir
        self.material = workdir / "material"
        ca = workdir / "dev-ca.pem"
        self.process = subprocess.Popen(
            [str(binary("gateway-auth")), "dev-server", "--ca-out", str(ca), "--material-out",
             str(self.material), "--control", *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.issuer = ""
        self.token_endpoint = ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip().startswith("issuer:"):
                self.issuer = line.split()[-1]
            elif line.strip().startswith("token endpoint:"):
                self.token_endpoint = line.split()[-1]
            elif line.startswith("press Ctrl-C"):
                break
        if not self.issuer:
            self.stop()
            pytest.fail(f"the development server did not start: {self.process.stderr.read() if self.process.stderr else ''}")
        self.ca_pem = ca.read_text()
        self.port = urllib.parse.urlsplit(self.issuer).port
        self._lock = threading.Lock()

    @property
    def trust(self) -> ga.TrustSpec:
        """Trust in the server's CA."""
        return ga.TrustSpec(self.ca_pem)

    def read(self, name: str) -> str:
        """A key material file the server wrote (``mtls-client.crt``, ...)."""
        return (self.material / name).read_text()

    def command(self, line: str) -> str:
        """One control command's answer."""
        with self._lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return self.process.stdout.readline().strip()

    def count(self, what: str) -> int:
        """``token-requests``, ``reuse-detections`` or ``most-presentations``."""
        return int(self.command(what))

    def client(self, client_id: str = BASIC_CLIENT_ID, auth: Optional[ga.ClientAuth] = None,
               trust: Optional[ga.TrustSpec] = None, **fields: Any) -> ga.Client:
        """A client of this server with every endpoint named."""
        if auth is None:
            auth = ga.ClientSecretBasic(BASIC_CLIENT_SECRET)
        fields.setdefault("token_endpoint", self.token_endpoint)
        fields.setdefault("authorization_endpoint", self.issuer + "/authorize")
        fields.setdefault("device_authorization_endpoint", self.issuer + "/device_authorization")
        fields.setdefault("revocation_endpoint", self.issuer + "/revoke")
        fields.setdefault("redirect_uri", REDIRECT_URI)
        return ga.Client(client_id, auth, trust=trust or self.trust, **fields)

    def authorize(self, url: str) -> Tuple[str, str]:
        """The user consents at the authorization URL: (code, state) of the redirect."""
        parts = urllib.parse.urlsplit(url)
        context = ssl.create_default_context(cadata=self.ca_pem)
        # The development CA has no authority key identifier, which Python 3.13's
        # strict default refuses; the plugin (rustls) does not need one.
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context,
                                           timeout=10)
        conn.request("GET", f"{parts.path}?{parts.query}")
        answer = conn.getresponse()
        location = answer.getheader("location") or ""
        conn.close()
        assert answer.status == 302, f"the authorization was refused: {answer.status}"
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        return query["code"], query["state"]

    def stop(self) -> None:
        """Stops the server (the process this fixture started)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def start_dev_server(tmp_path: Path) -> Iterator[Callable[..., DevServer]]:
    """Starts development servers with the given ``dev-server`` flags."""
    started: List[DevServer] = []

    def start(*flags: str) -> DevServer:
        workdir = tmp_path / f"dev-server-{len(started)}"
        workdir.mkdir()
        server = DevServer(workdir, *flags)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dev_server(start_dev_server: Callable[..., DevServer]) -> DevServer:
    """A development server with default settings."""
    return start_dev_server()


# ---- plugins ----


@pytest.fixture(scope="session")
def _warm() -> None:
    """Compiles the component once per test run."""
    ga.Plugin().close()


@pytest.fixture
def plugin(_warm: None) -> Iterator[ga.Plugin]:
    """A plugin that may reach 127.0.0.1."""
    p = ga.Plugin(allow=LOOPBACK)
    yield p
    p.close()


# ---- test CAs and TLS servers ----


class CertAuthority:
    """A certificate authority made for one test, with leaf certificates for 127.0.0.1."""

    def __init__(self, name: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ec, self._ser, self._oid = (
            x509, hashes, ec, serialization, NameOID)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, name: str = "127.0.0.1", client: bool = False) -> Tuple[str, str]:
        """A leaf certificate (for ``name``, an IP address or DNS name) and its key, PEM."""
        x509, ser = self._x509, self._ser
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            san: Any = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            san = x509.DNSName(name)
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else \
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, self._hashes.SHA256()))
        key_pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                    ser.NoEncryption()).decode()
        return cert.public_bytes(ser.Encoding.PEM).decode(), key_pem


Responder = Callable[[bytes], bytes]


def http_ok(body: bytes) -> Responder:
    """Answers every request with 200 and ``body``, then closes."""
    def respond(_request: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % len(body)) + body
    return respond


class TlsServer:
    """An HTTPS server on 127.0.0.1 (Python's ``ssl``) with a certificate from ``ca``;
    with ``client_ca`` it requires a client certificate from that CA. Each connection
    reads one request head and gets ``respond(head)``."""

    def __init__(self, ca: CertAuthority, respond: Responder, client_ca: Optional[CertAuthority] = None) -> None:
        cert, key = ca.issue("127.0.0.1")
        self._setup(cert, key, respond, client_ca)

    def _setup(self, cert: str, key: str, respond: Responder,
               client_ca: Optional[CertAuthority]) -> None:
        self._dir = tempfile.mkdtemp(prefix="gateway-auth-tls-")
        certfile, keyfile = Path(self._dir) / "cert.pem", Path(self._dir) / "key.pem"
        certfile.write_text(cert)
        keyfile.write_text(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile, keyfile)
        self.context.set_alpn_protocols(["http/1.1"])
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cadata=client_ca.pem)
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self.requests: List[bytes] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                self.handshakes += 1
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                self.requests.append(head)
                tls.sendall(self.respond(head))
                try:
                    tls.unwrap()
                except (OSError, ssl.SSLError):
                    pass
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        """Stops accepting."""
        self._stop = True
        self.listener.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _serve_https(cert: str, key: str, body: bytes, ports: "Any") -> None:
    """The body of :class:`HttpsProcess`'s child process."""
    server = TlsServer.__new__(TlsServer)
    TlsServer._setup(server, cert, key, http_ok(body), None)
    ports.put(server.port)
    threading.Event().wait()


class HttpsProcess:
    """A :class:`TlsServer` answering ``body`` in a process of its own, so that its
    work never competes with the test's event loop for the interpreter lock (as a
    gateway's upstreams do not)."""

    def __init__(self, ca: CertAuthority, body: bytes) -> None:
        import multiprocessing
        cert, key = ca.issue("127.0.0.1")
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.process = context.Process(target=_serve_https, args=(cert, key, body, ports),
                                       daemon=True)
        self.process.start()
        self.port: int = ports.get(timeout=30)

    def close(self) -> None:
        """Stops the child process."""
        self.process.terminate()
        self.process.join(10)


class Sessions:
    """Every TLS session a plugin hands out, to check none is left in the instance."""

    def __init__(self, plugin: Any) -> None:
        self.made: List[Any] = []
        connect = plugin.connect

        def counting(*args: Any, **kwargs: Any) -> Any:
            session = connect(*args, **kwargs)
            self.made.append(session)
            return session

        plugin.connect = counting

    @property
    def live(self) -> int:
        """Sessions not freed."""
        return sum(not s.freed for s in self.made)


class SilentServer:
    """Accepts TCP connections and never says a word (a hung server)."""

    def __init__(self) -> None:
        # Room for many connects at once before the accepting thread takes them.
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.accepted: List[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        """Closes the listener and every accepted connection."""
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server on 127.0.0.1 that accepts and never answers."""
    server = SilentServer()
    yield server
    server.close()


def drive(session: ga.TlsSession, sock: socket.socket, request: bytes) -> bytes:
    """Handshakes ``session`` over ``sock``, sends ``request`` and returns every byte
    of the answer until the server's close_notify (or its hang-up)."""
    out = session.advance(b"", request)
    sock.sendall(out.outgoing)
    answer = bytearray(out.plaintext)
    while out.state not in (ga.TlsState.PEER_CLOSED, ga.TlsState.CLOSED):
        incoming = sock.recv(65536)
        if not incoming:
            break
        out = session.advance(incoming, b"")
        answer += out.plaintext
        if out.outgoing:
            sock.sendall(out.outgoing)
    return bytes(answer)


# ---- Redis ----


class RedisServer:
    """A ``redis-server`` on a free port of 127.0.0.1 with its own data directory."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed: ./run test installs it "
                        "(Debian package redis-server)")
        self.dir = tempfile.mkdtemp(prefix="gateway-auth-redis-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail("redis-server did not answer within 10 s")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stops the server this fixture started."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server``."""
    server = RedisServer()
    yield server
    server.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``predicate`` held within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()

