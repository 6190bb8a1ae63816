#!/usr/bin/env python3
"""Obtains one token with the gateway_auth package (pip install ./python), printing what
the TLS cache and the token look like, never the token itself.

Usage::

    GATEWAY_AUTH_CLIENT_SECRET=... python3 examples/python/request_token.py \\
        --ca ca.pem --token-endpoint https://auth.example.com/token \\
        --client-id gw --allow auth.example.com:443 [--metrics] [--timeout-ms N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

import gateway_auth as ga


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ca", required=True, help="PEM file with the token endpoint's CA")
    parser.add_argument("--token-endpoint", required=True, help="https URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret-env", default="GATEWAY_AUTH_CLIENT_SECRET",
                        help="environment variable holding the client secret (HTTP Basic)")
    parser.add_argument("--allow", action="append", default=[], metavar="RULE",
                        help="egress rule, `host` or `host:port`; repeatable")
    parser.add_argument("--metrics", action="store_true",
                        help="print the plugin's metrics (Prometheus text) at the end")
    parser.add_argument("--timeout-ms", type=int, default=None,
                        help="the token request's deadline, retries included (default 10000)")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.client_secret_env)
    if not secret:
        print(f"error: set {args.client_secret_env} to the client secret", file=sys.stderr)
        return 1

    plugin = ga.Plugin(allow=args.allow)
    trust = ga.TrustSpec.from_files(ca=args.ca)
    for attempt in ("prepare", "prepare again"):
        profile = plugin.prepare(trust)
        print(f"{attempt}: profile {profile.id} with {profile.anchors} trust anchor(s), "
              f"cached={profile.cached}")

    client = ga.Client(args.client_id, ga.ClientSecretBasic(secret), trust=trust,
                       token_endpoint=args.token_endpoint, timeout_ms=args.timeout_ms)
    started = time.monotonic()
    try:
        token = plugin.request_token(client, ga.ClientCredentials())
    except ga.OAuthError as e:
        sys.stdout.flush()
        print(f"token: {type(e).__name__}: {e} (after {time.monotonic() - started:.3f} s)",
              file=sys.stderr)
        return 1
    print(f"token: type {token.token_type}, length {len(token.access_token)}")
    stats = plugin.stats()
    print("stats: " + ", ".join(f"{k}={v}" for k, v in vars(stats).items()))
    if args.metrics:
        print(plugin.metrics_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
