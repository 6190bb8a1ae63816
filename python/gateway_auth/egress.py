"""The egress allow-list, the same rules as the Rust host's (``host/src/egress``).

A destination is allowed when a rule names it (``host`` or ``host:port``, ``[::1]:443``
for IPv6); every address it resolves to must also be globally reachable, or named by a
rule. "Globally reachable" follows the IANA IPv4 and IPv6 Special-Purpose Address
Registries, and an IPv6 address that carries an IPv4 one (IPv4-mapped, IPv4-compatible,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by that IPv4 address, since a
translating network delivers it there. ``testdata/egress_addresses.txt`` holds the cases
both hosts are tested against.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Optional, Set, Tuple, Union

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# IPv4 blocks that are not globally reachable.
SPECIAL_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",        # "this network"
    "10.0.0.0/8",       # private
    "100.64.0.0/10",    # shared address space (CGNAT)
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link local
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments (exceptions below)
    "192.0.2.0/24",     # documentation
    "192.88.99.0/24",   # deprecated 6to4 relay anycast
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",   # documentation
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and the limited broadcast address
)]
# Globally reachable addresses inside those blocks: PCP and TURN anycast.
GLOBAL_V4 = {ipaddress.ip_address("192.0.0.9"), ipaddress.ip_address("192.0.0.10")}

GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# IPv6 blocks inside 2000::/3 that are not globally reachable.
SPECIAL_V6 = [ipaddress.ip_network(n) for n in (
    "2001::/23",        # IETF protocol assignments, Teredo (exceptions below)
    "2001:db8::/32",    # documentation
    "3fff::/20",        # documentation (RFC 9637)
)]
# Globally reachable blocks inside 2001::/23.
GLOBAL_V6 = [ipaddress.ip_network(n) for n in (
    "2001:1::1/128", "2001:1::2/128", "2001:1::3/128",  # anycast services
    "2001:3::/32",      # AMT
    "2001:4:112::/48",  # AS112-v6
    "2001:20::/28",     # ORCHIDv2
    "2001:30::/28",     # drone remote ID
)]
MAPPED = ipaddress.ip_network("::ffff:0:0/96")
COMPATIBLE = ipaddress.ip_network("::/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address delivers to, for the forms that carry one."""
    bits = int(ip)
    if ip in MAPPED or ip in NAT64 or (ip in COMPATIBLE and bits > 1):
        return ipaddress.IPv4Address(bits & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR:
        return ipaddress.IPv4Address((bits >> 80) & 0xFFFFFFFF)
    return None


def is_public(ip: Address) -> bool:
    """Whether ``ip`` (an ``ipaddress`` address) is a globally reachable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            return is_public(v4)
        if ip not in GLOBAL_UNICAST_V6:
            return False
        return any(ip in n for n in GLOBAL_V6) or not any(ip in n for n in SPECIAL_V6)
    return ip in GLOBAL_V4 or not any(ip in n for n in SPECIAL_V4)


class Egress:
    """Allow-list of ``host`` or ``host:port`` rules (``*`` for every public host).

    The name is checked before it is resolved, so a refused name is never looked up; every
    resolved address is checked again, so a public-looking name cannot lead into the
    private network: special-purpose addresses need a rule naming the address.
    """

    def __init__(self, rules: Iterable[str] = ()) -> None:
        """An allow-list of ``rules`` (none: every destination is refused)."""
        self.rules: Set[Tuple[str, Optional[int]]] = set()
        for text in rules:
            host, sep, port = text.strip().rpartition(":")
            if sep and port.isdigit() and (host.startswith("[") or ":" not in host):
                self.rules.add((host.strip("[]").lower(), int(port)))
            else:
                self.rules.add((text.strip().strip("[]").lower(), None))

    def allows(self, host: str, port: int) -> bool:
        """Whether a rule names ``host`` (a name or an IP literal) on ``port``; ``*``
        names every host (whose addresses must still be public)."""
        host = host.strip("[]").rstrip(".").lower()
        return any((name, p) in self.rules for name in (host, "*") for p in (None, port))

    def check_address(self, ip: Address, port: int) -> bool:
        """Whether the resolved address ``ip`` may be dialled on ``port``."""
        host = str(ip)
        return is_public(ip) or (host, None) in self.rules or (host, port) in self.rules
