//! Which IP addresses are globally reachable, after the IANA IPv4 and IPv6
//! Special-Purpose Address Registries.
//!
//! An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64's
//! well-known prefix, 6to4) reaches that IPv4 address on networks that translate it, so
//! it is judged by the IPv4 address: `64:ff9b::a00:1` is 10.0.0.1 on a NAT64 network.
//! Of the rest of IPv6, only global unicast (`2000::/3`) outside the special blocks is
//! public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a globally reachable unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// IPv4 blocks that are not globally reachable: (network, prefix length).
const SPECIAL_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link local
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments (exceptions below)
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

/// Addresses inside [`SPECIAL_V4`] blocks that the registry marks globally reachable:
/// the port control protocol and TURN anycast addresses.
const GLOBAL_V4_EXCEPTIONS: &[[u8; 4]] = &[[192, 0, 0, 9], [192, 0, 0, 10]];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    if GLOBAL_V4_EXCEPTIONS.contains(&ip.octets()) {
        return true;
    }
    let ip = u32::from(ip);
    !SPECIAL_V4
        .iter()
        .any(|&(net, bits)| within_v4(ip, (u32::from_be_bytes(net), bits)))
}

/// IPv6 blocks inside `2000::/3` that are not globally reachable.
const SPECIAL_V6: &[(u128, u8)] = &[
    (0x2001_0000 << 96, 23), // IETF protocol assignments, Teredo (exceptions below)
    (0x2001_0db8 << 96, 32), // documentation
    (0x3fff_0000 << 96, 20), // documentation (RFC 9637)
];

/// Blocks inside `2001::/23` that the registry marks globally reachable.
const GLOBAL_V6_EXCEPTIONS: &[(u128, u8)] = &[
    ((0x2001_0001 << 96) | 1, 128), // port control protocol anycast
    ((0x2001_0001 << 96) | 2, 128), // TURN anycast
    ((0x2001_0001 << 96) | 3, 128), // DNS-SD service registration anycast
    (0x2001_0003 << 96, 32),        // AMT
    (0x2001_0004_0112 << 80, 48),   // AS112-v6
    (0x2001_0020 << 96, 28),        // ORCHIDv2
    (0x2001_0030 << 96, 28),        // drone remote ID
];

/// Whether the IPv4 address `ip` lies in the block `net`/`bits`.
pub(super) fn within_v4(ip: u32, (net, bits): (u32, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    ip & mask == net & mask
}

/// Whether the IPv6 address `ip` lies in the block `net`/`bits`.
pub(super) fn within_v6(ip: u128, (net, bits): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    ip & mask == net & mask
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let ip = u128::from(ip);
    let global_unicast = within_v6(ip, (0x2000 << 112, 3));
    if !global_unicast {
        return false;
    }
    GLOBAL_V6_EXCEPTIONS
        .iter()
        .any(|&block| within_v6(ip, block))
        || !SPECIAL_V6.iter().any(|&block| within_v6(ip, block))
}

/// The IPv4 address an IPv6 address carries, for the forms that deliver to it:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, but not `::` or `::1`),
/// NAT64's well-known prefix (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if within_v6(bits, (0xffff << 32, 96)) || within_v6(bits, (0x0064_ff9b << 96, 96)) {
        return Some(low);
    }
    if within_v6(bits, (0, 96)) && bits > 1 {
        return Some(low);
    }
    if within_v6(bits, (0x2002 << 112, 16)) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases both hosts run: `address verdict [why]`, `#` comments.
    const CASES: &str = include_str!("../../../testdata/egress_addresses.txt");

    #[test]
    fn special_purpose_addresses_are_not_public_including_embedded_ipv4() {
        let mut checked = 0;
        for line in CASES.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (address, verdict) = (words.next().unwrap(), words.next().unwrap());
            let ip: IpAddr = address.parse().unwrap_or_else(|e| panic!("{address}: {e}"));
            let expected = match verdict {
                "public" => true,
                "special" => false,
                other => panic!("{address}: unknown verdict {other}"),
            };
            assert_eq!(is_public(ip), expected, "{line}");
            checked += 1;
        }
        assert!(checked > 50, "{checked} cases");
    }
}
