#!/usr/bin/env python3
"""The seed's MCP gateway, its two broken pieces replaced by the plugin.

The gateway (httpx + asyncio) had an SSL-context cache that wiped itself at 100
entries (so 101 gateways with their own CAs missed on nearly every request) and an
OAuth manager whose flows each handled errors their own way. Here both are the plugin:

- ``get_cached_ssl_context`` + ``httpx.AsyncClient(verify=ctx)`` becomes one
  :class:`~gateway_auth.httpx.AsyncPluginTransport` for every gateway: each upstream's
  CA (and client certificate) is prepared once in the plugin's cache, least recently
  used out one at a time, and reconnections resume their TLS session;
- the OAuth manager's token calls become a plugin session per gateway, and
  :class:`~gateway_auth.httpx.PluginAuth` puts its token on the request (renewing once
  when the upstream answers 401 ``invalid_token``). Every failure is one
  :class:`~gateway_auth.errors.OAuthError` subclass, whatever the flow.

Run it against the development server::

    target/debug/gateway-auth dev-server --ca-out /tmp/dev-ca.pem     # prints its issuer
    GATEWAY_AUTH_CLIENT_SECRET='p0st&secret=a+b' target/python/bin/python \\
        python/examples/seed_gateway.py --issuer https://127.0.0.1:PORT --ca /tmp/dev-ca.pem

It treats the server's metadata document as the MCP server the gateway fronts (same
CA), fetches it through the plugin with the session's token, twice, and prints what
happened. Secrets come from the environment and are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import httpx

from gateway_auth import AsyncPlugin, Client, ClientCredentials, ClientSecretPost, OAuthError, TrustSpec
from gateway_auth.httpx import AsyncPluginTransport, PluginAuth


@dataclasses.dataclass(frozen=True)
class Gateway:
    """One federated gateway as the seed stores it (the fields that matter here)."""

    id: str
    url: str
    ca_certificate: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    token_url: str
    client_cert: Optional[str] = None
    client_key: Optional[str] = dataclasses.field(default=None, repr=False)


def origin(url: str) -> Tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 443


# ---- 1. the SSL-context cache ----
#
# Before (mcpgateway/utils/ssl_context_cache.py), per request:
#
#     ctx = get_cached_ssl_context(gw.ca_certificate, gw.client_cert, gw.client_key)
#     async with httpx.AsyncClient(verify=ctx) as client:       # ~17-27 ms per miss,
#         r = await client.get(gw.url)                          # and _cache.clear() at 100
#
# After, once for all gateways:

def upstream_transport(plugin: AsyncPlugin, gateways: List[Gateway]) -> AsyncPluginTransport:
    """One transport for every gateway, each trusted with its own CA."""
    specs: Dict[Tuple[str, int], TrustSpec] = {
        origin(gw.url): TrustSpec(gw.ca_certificate, gw.client_cert, gw.client_key) for gw in gateways}
    return AsyncPluginTransport(plugin, lambda host, port: specs.get((host, port)))


# ---- 2. the OAuth manager ----
#
# Before (mcpgateway/services/oauth_manager.py), one of several flows:
#
#     response = await client.post(token_url, data={"grant_type": "client_credentials", ...})
#     if response.status_code == 200: ...            # refresh_token checked this way,
#     response.raise_for_status()                    # the other flows this way
#
# After: a session per gateway; the plugin caches the token, renews it ahead of
# expiry, and classifies every failure the same way.

async def open_sessions(plugin: AsyncPlugin, gateways: List[Gateway]) -> None:
    """Opens one client-credentials session per gateway (nothing is requested yet)."""
    for gw in gateways:
        client = Client(gw.client_id, ClientSecretPost(gw.client_secret),
                        trust=TrustSpec(gw.ca_certificate), token_endpoint=gw.token_url)
        await plugin.open_session(gw.id, client, ClientCredentials())


async def run(gateways: List[Gateway]) -> int:
    hosts = sorted({origin(gw.url)[0] for gw in gateways} | {origin(gw.token_url)[0] for gw in gateways})
    async with AsyncPlugin(allow=hosts) as plugin:
        await open_sessions(plugin, gateways)
        async with httpx.AsyncClient(transport=upstream_transport(plugin, gateways)) as http:
            for gw in gateways:
                for attempt in (1, 2):
                    try:
                        r = await http.get(gw.url, auth=PluginAuth(plugin, gw.id))
                    except OAuthError as e:  # one exception tree for every flow
                        print(f"{gw.id}: no token: {type(e).__name__}: {e}", file=sys.stderr)
                        return 1
                    tls = r.extensions["network_stream"].get_extra_info("tls_info")
                    print(f"{gw.id} GET #{attempt}: HTTP {r.status_code}, {len(r.content)} bytes, "
                          f"{tls.version} {tls.cipher_suite}, resumed={tls.resumed}")
                token = await plugin.access_token(gw.id)  # the cached one
                print(f"{gw.id}: token type {token.token_type}, expires_at {token.expires_at}")
        stats = plugin.stats()
        print(f"tls cache: hits={stats.hits} misses={stats.misses} evictions={stats.evictions} "
              f"size={stats.size}/{stats.capacity}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issuer", required=True, help="the authorization server, e.g. https://127.0.0.1:PORT")
    parser.add_argument("--ca", required=True, help="PEM file with its CA (dev-server --ca-out)")
    parser.add_argument("--client-id", default="post-client")
    parser.add_argument("--secret-env", default="GATEWAY_AUTH_CLIENT_SECRET",
                        help="environment variable holding the client secret")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        parser.error(f"set {args.secret_env} to the client secret")
    with open(args.ca, encoding="utf-8") as f:
        ca = f.read()
    issuer = args.issuer.rstrip("/")
    gateways = [Gateway("mcp-1", f"{issuer}/.well-known/openid-configuration", ca,
                        args.client_id, secret, f"{issuer}/token")]
    return asyncio.run(run(gateways))


if __name__ == "__main__":
    sys.exit(main())
