//! IP addresses and networks as logs write them: IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as
//! dual-stack servers log clients) counts as IPv4. Networks are `ipnet`'s.

use ipnet::IpNet;
use std::net::IpAddr;

/// IPv4-mapped IPv6 as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An IP address as written in logs, in canonical form.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok().map(canonical)
}

/// Why a network was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("cidr needs a prefix length")]
    NoPrefix,
    #[error("bad network `{0}`")]
    BadNetwork(String),
    #[error("bad prefix length `{0}`")]
    BadPrefix(String),
    #[error("prefix /{0} is too long")]
    PrefixTooLong(u8),
}

/// `net/prefix`, e.g. `198.51.100.0/24`; host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_cidr(s: &str) -> Result<IpNet, CidrError> {
    let (net, prefix) = s.split_once('/').ok_or(CidrError::NoPrefix)?;
    let addr = parse_ip(net).ok_or_else(|| CidrError::BadNetwork(net.to_string()))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| CidrError::BadPrefix(prefix.to_string()))?;
    IpNet::new(addr, prefix)
        .map(|n| n.trunc())
        .map_err(|_| CidrError::PrefixTooLong(prefix))
}

/// Does `ip` fall in `net`? IPv4-mapped IPv6 addresses count as IPv4.
pub fn in_network(ip: &IpAddr, net: &IpNet) -> bool {
    net.contains(&canonical(*ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        parse_cidr(s).expect("network")
    }

    #[test]
    fn networks_handle_v6_and_mapped_v4() {
        let ip: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert!(in_network(&ip, &net("10.0.0.0/8")));
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        assert!(in_network(&ip, &net("2001:db8::/32")));
        assert!(!in_network(&ip, &net("2001:db9::/32")));
        assert!(!in_network(&ip, &net("10.0.0.0/8")), "families never mix");
        assert!(in_network(
            &"10.9.9.9".parse().expect("ip"),
            &net("10.1.2.3/8")
        ));
        assert!(in_network(
            &"1.2.3.4".parse().expect("ip"),
            &net("0.0.0.0/0")
        ));
    }

    #[test]
    fn bad_networks_are_refused() {
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nope/8").is_err());
        assert!(parse_cidr("::ffff:10.0.0.0/8").is_ok());
    }
}
