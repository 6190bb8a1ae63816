"""A token endpoint served by Python's ssl module (OpenSSL), demanding a client
certificate: an implementation of TLS other than the plugin's own for the end-to-end
tests. It prints its port, answers every POST with a bearer token that names the
client certificate's subject, and exits when its standard input closes.

    python3 openssl_token_server.py CERT KEY CLIENT_CA
"""

import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        peer = self.connection.getpeercert()
        subject = dict(part[0] for part in peer["subject"]) if peer else {}
        body = json.dumps({
            "access_token": "openssl-" + subject.get("commonName", "anonymous").replace(" ", "-"),
            "token_type": "Bearer",
            "expires_in": 3600,
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class NoDelayServer(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        sock, address = super().get_request()
        # Head and body go out as separate writes: without this, Nagle and delayed
        # ACKs stall each answer.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address


def main(cert, key, client_ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_ca)
    server = NoDelayServer(("127.0.0.1", 0), TokenHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main(*sys.argv[1:4])
