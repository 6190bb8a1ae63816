"""The Python host's egress check against the cases the Rust host is tested with."""

import ipaddress
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from egress import Egress, is_public  # noqa: E402

CASES = pathlib.Path(__file__).parents[2] / "testdata" / "egress_addresses.txt"


def cases():
    """(address, expected public?, line) for each case line."""
    for line in CASES.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        address, verdict = line.split()[:2]
        assert verdict in ("public", "special"), line
        yield ipaddress.ip_address(address), verdict == "public", line


class SpecialPurposeAddresses(unittest.TestCase):
    def test_every_case_gets_the_rust_hosts_verdict(self):
        checked = 0
        for ip, expected, line in cases():
            with self.subTest(line=line):
                self.assertEqual(is_public(ip), expected)
            checked += 1
        self.assertGreater(checked, 50)

    def test_a_wildcard_name_rule_does_not_open_nat64_into_the_private_network(self):
        egress = Egress(["*"])
        self.assertFalse(egress.check_address(ipaddress.ip_address("64:ff9b::a00:1"), 443))
        self.assertTrue(egress.check_address(ipaddress.ip_address("93.184.216.34"), 443))

    def test_a_rule_naming_a_special_address_allows_it(self):
        egress = Egress(["127.0.0.1:8443"])
        self.assertTrue(egress.check_address(ipaddress.ip_address("127.0.0.1"), 8443))
        self.assertFalse(egress.check_address(ipaddress.ip_address("127.0.0.1"), 443))


if __name__ == "__main__":
    unittest.main()
