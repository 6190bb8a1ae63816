"""The egress check against the cases the Rust host is tested with
(testdata/egress_addresses.txt): the same verdict on every special-purpose address."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from gateway_auth.egress import Address, Egress, is_public

CASES = Path(__file__).resolve().parents[2] / "testdata" / "egress_addresses.txt"


def cases() -> Iterator[Tuple[Address, bool, str]]:
    """(address, expected public?, line) for each case line."""
    for line in CASES.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        address, verdict = line.split()[:2]
        assert verdict in ("public", "special"), line
        yield ipaddress.ip_address(address), verdict == "public", line


ALL = list(cases())


def test_the_table_has_every_kind_of_case() -> None:
    assert len(ALL) > 50
    assert any(public for _, public, _ in ALL) and any(not public for _, public, _ in ALL)
    assert any(ip.version == 6 for ip, _, _ in ALL)


@pytest.mark.parametrize("ip,public,line", ALL, ids=[line for _, _, line in ALL])
def test_every_address_gets_the_rust_hosts_verdict(ip: Address, public: bool, line: str) -> None:
    assert is_public(ip) is public, line


def test_a_wildcard_name_rule_does_not_open_nat64_into_the_private_network() -> None:
    egress = Egress(["*"])
    assert not egress.check_address(ipaddress.ip_address("64:ff9b::a00:1"), 443)
    assert egress.check_address(ipaddress.ip_address("93.184.216.34"), 443)
    assert egress.allows("anything.example", 443)


def test_a_rule_naming_a_special_address_allows_it_on_its_port_only() -> None:
    egress = Egress(["127.0.0.1:8443", "[::1]:443"])
    assert egress.check_address(ipaddress.ip_address("127.0.0.1"), 8443)
    assert not egress.check_address(ipaddress.ip_address("127.0.0.1"), 443)
    assert egress.allows("127.0.0.1", 8443) and not egress.allows("127.0.0.1", 443)
    assert egress.allows("[::1]", 443) and egress.check_address(ipaddress.ip_address("::1"), 443)


def test_names_are_matched_without_case_or_a_trailing_dot() -> None:
    egress = Egress(["Auth.Example.com"])
    assert egress.allows("auth.example.com.", 443)
    assert not egress.allows("evil.example.com", 443)
    assert not Egress().allows("auth.example.com", 443)
