"""Servers on 127.0.0.1 for the benchmarks and the tests: HTTPS upstreams with their own
CAs (Python's `ssl` module, certificates made with `cryptography`) and the development
authorization server (`gateway-auth dev-server`).

Nothing here is part of the package: it is what `bench/compare.py` and the pytest suite
measure against. Every server binds 127.0.0.1 on a port the kernel picks.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import functools
import hashlib
import http.server
import ipaddress
import os
import pathlib
import re
import socket
import ssl
import subprocess
import sys
import threading
from typing import Any, Callable, Iterator, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Pem:
    """A certificate and its private key, as PEM text."""

    cert: str
    key: str


@dataclasses.dataclass(frozen=True)
class Authority:
    """A CA made for one test or benchmark run, able to issue leaf certificates."""

    name: str
    pem: Pem
    _key: ec.EllipticCurvePrivateKey
    _cert: x509.Certificate

    @classmethod
    def create(cls, name: str) -> "Authority":
        """A fresh self-signed P-256 CA called `name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(name, Pem(_cert_pem(cert), _key_pem(key)), key, cert)

    def issue(self, common_name: str, *, client: bool = False,
              names: tuple[str, ...] = (HOST, "localhost")) -> Pem:
        """A leaf certificate for a server at `names` (IP addresses or DNS names), or,
        with `client`, a client certificate for mutual TLS."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                       else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False)
        )
        if not client:
            alt: list[x509.GeneralName] = []
            for name in names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Pem(_cert_pem(cert), _key_pem(key))


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def server_context(leaf: Pem, directory: pathlib.Path, *,
                   client_ca: Optional[str] = None) -> ssl.SSLContext:
    """A TLS server context presenting `leaf`; with `client_ca` (PEM), it requires a
    client certificate issued by it."""
    directory.mkdir(parents=True, exist_ok=True)
    chain = directory / "server.pem"
    chain.write_text(leaf.cert + leaf.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    context.set_alpn_protocols(["http/1.1"])
    # The client's cipher preference decides, as with most servers: the plugin asks for
    # ChaCha20-Poly1305 first (WebAssembly has no AES instructions), OpenSSL for AES-GCM.
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca)
    return context


@functools.lru_cache(maxsize=4)
def body_of(size: int) -> bytes:
    """The ``size``-byte body ``GET /bytes/<size>`` answers: byte i is i % 251."""
    block = bytes(range(251))
    return (block * (size // 251 + 1))[:size]


class _Handler(http.server.BaseHTTPRequestHandler):
    """The upstream's endpoints:

    - ``GET /hello``: a short text naming the upstream;
    - ``GET /bytes/N``: N bytes (see `body_of`);
    - ``POST /sha256``: the length and hex SHA-256 of the request body;
    - ``GET /whoami``: the common name of the client certificate (mutual TLS);
    - ``GET /private``: what ``Upstream.authorize`` answers for the Authorization
      header; ``POST /private`` the same, with the body's SHA-256 after a 200's text.
    """

    protocol_version = "HTTP/1.1"  # keep-alive
    server: "_Server"

    def setup(self) -> None:
        # The TLS handshake runs here, on the connection's own thread: one that fails
        # ends only that connection, before any request is read.
        self.request.settimeout(30)
        self.request.do_handshake()
        self.server.upstream._handshake()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: request lines may carry tokens in other setups

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain",
                headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (the http.server convention)
        upstream = self.server.upstream
        upstream._request()
        if self.path == "/hello":
            self._answer(200, f"hello from {upstream.name}".encode())
        elif (m := re.fullmatch(r"/bytes/(\d+)", self.path)) is not None:
            self._answer(200, body_of(int(m.group(1))), "application/octet-stream")
        elif self.path == "/whoami":
            cert = self.request.getpeercert()
            subject = dict(x[0] for x in cert["subject"]) if cert else {}
            self._answer(200, subject.get("commonName", "anonymous").encode())
        elif self.path == "/private":
            status, headers, body = upstream.authorize(self.headers.get("authorization"))
            self._answer(status, body, headers=headers)
        else:
            self._answer(404, b"not found")

    def do_POST(self) -> None:  # noqa: N802
        upstream = self.server.upstream
        upstream._request()
        length = int(self.headers.get("content-length", "0"))
        digest = hashlib.sha256()
        left = length
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        if self.path == "/sha256":
            self._answer(200, f"{length - left} {digest.hexdigest()}".encode())
        elif self.path == "/private":
            status, headers, answer = upstream.authorize(self.headers.get("authorization"))
            if status == 200:
                answer += f" {digest.hexdigest()}".encode()
            self._answer(status, answer, headers=headers)
        else:
            self._answer(404, b"not found")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    upstream: "Upstream"

    def get_request(self) -> tuple[socket.socket, object]:
        conn, address = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self.upstream.context.wrap_socket(conn, server_side=True,
                                                do_handshake_on_connect=False)
        return tls, address

    def shutdown_request(self, request: Any) -> None:
        # close_notify first, as a well-behaved TLS server does (Python's ssl sends
        # none on close), unless the upstream was made to close without it.
        if self.upstream.close_notify and isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(1.0)
                request = request.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        self.upstream._failure()  # a refused handshake, a client gone: counted, quiet


Authorize = Callable[[Optional[str]], "tuple[int, tuple[tuple[str, str], ...], bytes]"]


class Upstream:
    """An HTTPS server on 127.0.0.1 with a CA of its own (``ca_pem``), serving on
    threads until ``close``. Counts the requests it answered, the TLS handshakes that ended well
    (one per connection) and the connections that failed."""

    def __init__(self, name: str, directory: pathlib.Path, *, mutual_tls: bool = False,
                 authority: Optional[Authority] = None, close_notify: bool = True) -> None:
        """A server called ``name`` keeping its files under ``directory``; with
        ``mutual_tls`` it requires a client certificate (``client``, issued by a CA of
        its own); without ``close_notify`` it closes connections the way Python's
        ``ssl`` does by default, without the alert."""
        self.name = name
        self.close_notify = close_notify
        self.authority = authority or Authority.create(f"{name} CA")
        self.ca_pem = self.authority.pem.cert
        leaf = self.authority.issue(name)
        self.client: Optional[Pem] = None
        client_ca = None
        if mutual_tls:
            client_authority = Authority.create(f"{name} client CA")
            self.client = client_authority.issue(f"{name} client", client=True)
            client_ca = client_authority.pem.cert
        self.context = server_context(leaf, directory / name, client_ca=client_ca)
        self.requests = 0
        self.handshakes = 0
        self.failures = 0
        self._lock = threading.Lock()
        self.authorize: Authorize = lambda _header: (200, (), b"ok")
        self._server = _Server((HOST, 0), _Handler)
        self._server.upstream = self
        self.port: int = self._server.server_address[1]
        self.origin = f"https://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"upstream {name}")
        self._thread.start()

    def url(self, path: str = "/hello") -> str:
        """The https URL of `path` on this upstream."""
        return self.origin + path

    def _request(self) -> None:
        with self._lock:
            self.requests += 1

    def _handshake(self) -> None:
        with self._lock:
            self.handshakes += 1

    def _failure(self) -> None:
        with self._lock:
            self.failures += 1

    def close(self) -> None:
        """Stops serving and closes the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "Upstream":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Fleet:
    """`count` upstreams, each with its own CA (the seed's gateways)."""

    def __init__(self, count: int, directory: pathlib.Path) -> None:
        self.upstreams = [Upstream(f"upstream-{i:03d}", directory) for i in range(count)]

    def close(self) -> None:
        """Stops every upstream (all at once: each takes a poll interval)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(Upstream.close, self.upstreams))

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self.upstreams)

    def __len__(self) -> int:
        return len(self.upstreams)

    def __getitem__(self, index: int) -> Upstream:
        return self.upstreams[index]

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def binary() -> pathlib.Path:
    """The ``gateway-auth`` command: in ``GATEWAY_AUTH_BIN_DIR`` (as for the tests'
    conftest), else target/debug."""
    directory = pathlib.Path(os.environ.get("GATEWAY_AUTH_BIN_DIR", REPO / "target" / "debug"))
    path = directory / "gateway-auth"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: build it with `cargo build -p gateway-auth --bins`")
    return path


class DevServer:
    """`gateway-auth dev-server` as a child process: its token endpoint and CA.

    The bundled clients' ids and secrets are the `defaults` of devserver/src/lib.rs.
    """

    BASIC_CLIENT_ID = "basic-client"
    BASIC_CLIENT_SECRET = "s3c:r%t pa ss"
    POST_CLIENT_ID = "post-client"
    POST_CLIENT_SECRET = "p0st&secret=a+b"

    def __init__(self, directory: pathlib.Path, *extra: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ca = directory / "devserver-ca.pem"
        self._process = subprocess.Popen(
            [str(binary()), "dev-server", "--ca-out", str(ca), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self._process.stdout is not None
        self.token_endpoint = ""
        self.issuer = ""
        for line in self._process.stdout:
            if (m := re.match(r"\s*issuer:\s*(\S+)", line)) is not None:
                self.issuer = m.group(1)
            if (m := re.match(r"\s*token endpoint:\s*(\S+)", line)) is not None:
                self.token_endpoint = m.group(1)
            if line.startswith("press Ctrl-C"):
                break
        if not self.token_endpoint:
            self.close()
            raise RuntimeError("the development server printed no token endpoint")
        self.ca_pem = ca.read_text()
        self.ca_path = ca

    def close(self) -> None:
        """Stops the server."""
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> "DevServer":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _stop_child(process: "subprocess.Popen[str]", grace: float) -> None:
    """Closes a server child's standard input (it exits then), killing it after
    ``grace`` seconds."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


class UpstreamProcess:
    """An :class:`Upstream` in a child process, so its threads do not compete with a
    measured client for the GIL. Same ``name``, ``ca_pem``, ``port``, ``origin`` and
    ``url``; it stops when closed (or when this process ends)."""

    def __init__(self, name: str, directory: pathlib.Path) -> None:
        self.name = name
        self._process = subprocess.Popen(
            [sys.executable, __file__, "upstream", str(directory), name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the upstream process did not start: {line!r}")
        self.port = int(line)
        self.ca_pem = (directory / name / "ca.pem").read_text()
        self.origin = f"https://{HOST}:{self.port}"

    def url(self, path: str = "/hello") -> str:
        """The https URL of ``path`` on this upstream."""
        return self.origin + path

    def close(self) -> None:
        """Stops the child (it exits when its standard input closes)."""
        _stop_child(self._process, 5)

    def __enter__(self) -> "UpstreamProcess":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class RemoteUpstream:
    """An upstream served by a :class:`FleetProcess`: what a client needs of it."""

    name: str
    port: int
    ca_pem: str

    @property
    def origin(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{HOST}:{self.port}"

    def url(self, path: str = "/hello") -> str:
        """The https URL of ``path`` on this upstream."""
        return self.origin + path


class FleetProcess:
    """A :class:`Fleet` of ``count`` upstreams, each with its own CA, in a child
    process (see :class:`UpstreamProcess`)."""

    def __init__(self, count: int, directory: pathlib.Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "fleet", str(directory), str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        ports = self._process.stdout.readline().split()
        if len(ports) != count:
            self.close()
            raise RuntimeError("the fleet process did not start")
        names = [f"upstream-{i:03d}" for i in range(count)]
        self.upstreams = [RemoteUpstream(name, int(port), (directory / name / "ca.pem").read_text())
                          for name, port in zip(names, ports)]

    def close(self) -> None:
        """Stops the child (it exits when its standard input closes)."""
        _stop_child(self._process, 10)

    def __enter__(self) -> "FleetProcess":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _serve(directory: pathlib.Path, name: str) -> None:
    """The child of :class:`UpstreamProcess`: serves until standard input closes."""
    with Upstream(name, directory) as upstream:
        (directory / name / "ca.pem").write_text(upstream.ca_pem)
        print(upstream.port, flush=True)
        sys.stdin.read()


def _serve_fleet(directory: pathlib.Path, count: int) -> None:
    """The child of :class:`FleetProcess`: serves until standard input closes."""
    with Fleet(count, directory) as fleet:
        for upstream in fleet:
            (directory / upstream.name / "ca.pem").write_text(upstream.ca_pem)
        print(" ".join(str(u.port) for u in fleet), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "upstream":
        _serve(pathlib.Path(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "fleet":
        _serve_fleet(pathlib.Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: servers.py upstream DIRECTORY NAME | fleet DIRECTORY COUNT")
