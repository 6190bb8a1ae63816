//! The egress policy: which destinations the plugin may open connections to.
//!
//! A destination is allowed when a rule matches its name (or IP literal) and port, and
//! every address it is actually dialled on is public, or allowed by an address rule.
//! The address check runs after name resolution, so a public-looking name that resolves
//! to 169.254.169.254 or 10.0.0.1 cannot smuggle a request into the private network.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use special::{is_public, within_v4, within_v6};

mod special;

/// A parsed allow-list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// Every public name (`*`): addresses must still be public.
    AnyName,
    /// One name, lowercase.
    Name(String),
    /// `*.example.com`: any name below the suffix (not the suffix itself).
    Suffix(String),
    /// An address block: allows IP literals and resolved addresses inside it, private
    /// ones included.
    Network(IpAddr, u8),
}

/// Why a rule did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

impl EgressPolicy {
    /// A policy that allows nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Parses rules such as `auth.example.com`, `auth.example.com:443`,
    /// `*.example.com`, `*:443`, `127.0.0.1`, `10.0.0.0/8:8443`, `[::1]:8443`.
    /// A rule without a port allows every port.
    pub fn parse<I, S>(rules: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let rules = rules
            .into_iter()
            .map(|r| Rule::from_str(r.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether `host` (a name or IP literal, as the plugin asked) may be dialled on
    /// `port` at all. Checked before resolution: a refused name is never looked up.
    pub fn check_name(&self, host: &str, port: u16) -> Result<(), String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let literal = IpAddr::from_str(host.trim_start_matches('[').trim_end_matches(']')).ok();
        let allowed = self.rules.iter().any(|rule| {
            rule.port.is_none_or(|p| p == port)
                && match (&rule.host, literal) {
                    (HostPattern::Network(..), Some(ip)) => rule.host.contains(ip),
                    (HostPattern::Network(..), None) => false,
                    (HostPattern::AnyName, _) => true,
                    (HostPattern::Name(name), None) => *name == host,
                    (HostPattern::Suffix(suffix), None) => {
                        host.len() > suffix.len() + 1
                            && host.ends_with(suffix.as_str())
                            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    }
                    (_, Some(_)) => false,
                }
        });
        if allowed {
            Ok(())
        } else {
            Err(format!("{host}:{port} is not in the egress allow-list"))
        }
    }

    /// Whether a resolved address may be dialled on `port`: public addresses pass;
    /// private, loopback, link-local and other special-purpose ones (IPv6 forms of
    /// them included) need an address rule.
    pub fn check_address(&self, ip: IpAddr, port: u16) -> Result<(), String> {
        if is_public(ip) {
            return Ok(());
        }
        let allowed = self
            .rules
            .iter()
            .any(|rule| rule.port.is_none_or(|p| p == port) && rule.host.contains(ip));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{ip} is a private, loopback, link-local or other special-purpose address \
                 and no rule allows it"
            ))
        }
    }
}

impl HostPattern {
    fn contains(&self, ip: IpAddr) -> bool {
        let HostPattern::Network(net, bits) = self else {
            return false;
        };
        match (net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => within_v4(ip.into(), ((*net).into(), *bits)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => within_v6(ip.into(), ((*net).into(), *bits)),
            _ => false,
        }
    }
}

impl FromStr for Rule {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, PolicyError> {
        let bad = |why: &str| PolicyError(format!("egress rule {text:?}: {why}"));
        if text.is_empty() {
            return Err(bad("empty"));
        }
        // `[v6]:port`, `v4:port`, `name:port`; a bare v6 address has several colons.
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (inside, after.strip_prefix(':'))
        } else if text.matches(':').count() == 1 {
            let (h, p) = text.split_once(':').unwrap_or((text, ""));
            (h, Some(p))
        } else {
            (text, None)
        };
        let port = match port {
            None | Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("port is not a number"))?),
        };
        let host = host.to_ascii_lowercase();
        let pattern = if host == "*" {
            HostPattern::AnyName
        } else if let Some((addr, bits)) = host.split_once('/') {
            let addr = IpAddr::from_str(addr).map_err(|_| bad("not an address block"))?;
            let bits: u8 = bits
                .parse()
                .map_err(|_| bad("prefix length is not a number"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return Err(bad("prefix length too long"));
            }
            HostPattern::Network(addr, bits)
        } else if let Ok(addr) = IpAddr::from_str(&host) {
            HostPattern::Network(addr, if addr.is_ipv4() { 32 } else { 128 })
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(bad("wildcards are only allowed as a leading `*.`"));
            }
            HostPattern::Suffix(suffix.to_string())
        } else if host.contains('*') || host.contains('/') {
            return Err(bad("wildcards are only allowed as a leading `*.`"));
        } else {
            HostPattern::Name(host.trim_end_matches('.').to_string())
        };
        Ok(Self {
            host: pattern,
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> EgressPolicy {
        EgressPolicy::parse(rules).unwrap()
    }

    #[test]
    fn names_match_exactly_or_below_a_wildcard_suffix() {
        let p = policy(&["auth.example.com:443", "*.idp.test"]);
        assert!(p.check_name("auth.example.com", 443).is_ok());
        assert!(p.check_name("AUTH.example.com.", 443).is_ok());
        assert!(p.check_name("auth.example.com", 8443).is_err());
        assert!(p.check_name("evil-auth.example.com", 443).is_err());
        assert!(p.check_name("a.idp.test", 1).is_ok());
        assert!(p.check_name("idp.test", 1).is_err());
        assert!(p.check_name("aidp.test", 1).is_err());
    }

    #[test]
    fn private_addresses_need_an_address_rule_even_behind_an_allowed_name() {
        let p = policy(&["auth.example.com"]);
        for ip in [
            "10.0.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "100.64.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(p.check_address(ip.parse().unwrap(), 443).is_err(), "{ip}");
        }
        assert!(
            p.check_address("93.184.216.34".parse().unwrap(), 443)
                .is_ok()
        );
        let p = policy(&["127.0.0.1", "10.0.0.0/8:8443"]);
        assert!(p.check_address("127.0.0.1".parse().unwrap(), 1).is_ok());
        assert!(p.check_address("10.9.9.9".parse().unwrap(), 8443).is_ok());
        assert!(p.check_address("10.9.9.9".parse().unwrap(), 443).is_err());
    }

    #[test]
    fn a_wildcard_allows_public_destinations_only() {
        let p = policy(&["*"]);
        assert!(p.check_name("auth.example.com", 443).is_ok());
        assert!(p.check_name("127.0.0.1", 443).is_ok());
        assert!(p.check_address("127.0.0.1".parse().unwrap(), 443).is_err());
        // 10.0.0.1 through a NAT64 gateway, as in an IPv6-only cluster.
        assert!(
            p.check_address("64:ff9b::a00:1".parse().unwrap(), 443)
                .is_err()
        );
        assert!(
            p.check_address("93.184.216.34".parse().unwrap(), 443)
                .is_ok()
        );
    }

    #[test]
    fn ip_literals_are_matched_by_address_rules_not_names() {
        let p = policy(&["localhost"]);
        assert!(p.check_name("127.0.0.1", 443).is_err());
        let p = policy(&["[::1]:8443", "127.0.0.1"]);
        assert!(p.check_name("::1", 8443).is_ok());
        assert!(p.check_name("127.0.0.1", 9).is_ok());
        assert!(p.check_name("127.0.0.2", 9).is_err());
    }

    #[test]
    fn a_policy_with_no_rules_allows_nothing() {
        let p = EgressPolicy::deny_all();
        assert!(p.check_name("example.com", 443).is_err());
    }

    #[test]
    fn malformed_rules_are_refused_with_the_rule_named() {
        for bad in ["", "a.com:http", "10.0.0.0/33", "auth.*.com", "[::1:443"] {
            let err = EgressPolicy::parse([bad]).unwrap_err();
            assert!(err.to_string().contains("egress rule"), "{bad}: {err}");
        }
    }
}
