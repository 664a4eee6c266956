//! Blocked address spans and how they combine.
//!
//! The kernel set has `flags interval, timeout`: its elements may not overlap, and each has
//! its own expiry. Adding 10.0.0.5 while 10.0.0.0/24 is blocked, or a /16 over blocked
//! addresses, is refused by nft ("interval overlaps"), and a naive "skip if covered" leaves
//! the narrower block expiring with the wider one. So the agent computes the set it wants:
//! every address blocked until the latest expiry anyone asked for it, as few non-overlapping
//! spans as that allows, and changes only the elements that differ.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which address family a span belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

/// Addresses `start..=end` of one family, blocked for `expires` more seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: u128,
    pub end: u128,
    pub expires: u32,
}

impl Span {
    pub fn of(net: &IpNet, expires: u32) -> Span {
        let (start, end) = bounds(net);
        Span {
            start,
            end,
            expires,
        }
    }

    /// The span's addresses as a CIDR range when it is exactly one.
    pub fn as_prefix(&self, family: Family) -> Option<IpNet> {
        let size = self.end.checked_sub(self.start)?.checked_add(1)?;
        if !size.is_power_of_two() || !self.start.is_multiple_of(size) {
            return None;
        }
        let bits = size.trailing_zeros() as u8;
        match family {
            Family::V4 => Ipv4Net::new(Ipv4Addr::from(self.start as u32), 32 - bits)
                .ok()
                .map(IpNet::V4),
            Family::V6 => Ipv6Net::new(Ipv6Addr::from(self.start), 128 - bits)
                .ok()
                .map(IpNet::V6),
        }
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        let a = to_u128(addr);
        self.start <= a && a <= self.end
    }
}

pub fn to_u128(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(*a) as u128,
        IpAddr::V6(a) => u128::from(*a),
    }
}

pub fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

pub fn bounds(net: &IpNet) -> (u128, u128) {
    (to_u128(&net.network()), to_u128(&net.broadcast()))
}

/// The spans after also blocking `new`: each address until the latest expiry of any span
/// holding it; neighbouring spans with the same expiry merge.
pub fn union(current: &[Span], new: &[Span]) -> Vec<Span> {
    // Sweep over boundaries: at each point some spans begin and some end (the point after
    // their last address). `active` counts open spans per expiry.
    let mut points: BTreeMap<u128, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
    for s in current.iter().chain(new).filter(|s| s.expires > 0) {
        points.entry(s.start).or_default().0.push(s.expires);
        // A span ending at the last address never closes; the sweep ends with it open.
        if let Some(after) = s.end.checked_add(1) {
            points.entry(after).or_default().1.push(s.expires);
        }
    }
    let mut active: BTreeMap<u32, usize> = BTreeMap::new();
    let mut out: Vec<Span> = Vec::new();
    let mut pending: Option<(u128, u32)> = None;
    let keys: Vec<u128> = points.keys().copied().collect();
    for (i, at) in keys.iter().enumerate() {
        let (starts, ends) = &points[at];
        for e in ends {
            if let Some(n) = active.get_mut(e) {
                *n -= 1;
                if *n == 0 {
                    active.remove(e);
                }
            }
        }
        for s in starts {
            *active.entry(*s).or_default() += 1;
        }
        let max = active.keys().next_back().copied();
        // Close the span in progress when the expiry changes.
        if let Some((from, exp)) = pending {
            if max != Some(exp) {
                out.push(Span {
                    start: from,
                    end: at - 1,
                    expires: exp,
                });
                pending = None;
            }
        }
        if pending.is_none() {
            if let Some(m) = max {
                pending = Some((*at, m));
            }
        }
        if i + 1 == keys.len() {
            if let Some((from, exp)) = pending.take() {
                out.push(Span {
                    start: from,
                    end: u128::MAX,
                    expires: exp,
                });
            }
        }
    }
    merge_adjacent(out)
}

/// The spans after unblocking `gone` (pairs of first and last address): every address in
/// them is removed, the rest of a span keeps its expiry.
pub fn subtract(current: &[Span], gone: &[(u128, u128)]) -> Vec<Span> {
    let mut out = Vec::new();
    for s in current {
        let mut pieces = vec![*s];
        for &(a, b) in gone {
            let mut next = Vec::new();
            for p in pieces {
                if b < p.start || a > p.end {
                    next.push(p);
                    continue;
                }
                if a > p.start {
                    next.push(Span { end: a - 1, ..p });
                }
                if b < p.end {
                    next.push(Span { start: b + 1, ..p });
                }
            }
            pieces = next;
        }
        out.extend(pieces);
    }
    out.sort();
    out
}

fn merge_adjacent(spans: Vec<Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if let Some(last) = out.last_mut() {
            if last.expires == s.expires && last.end.checked_add(1) == Some(s.start) {
                last.end = s.end;
                continue;
            }
        }
        out.push(s);
    }
    out
}

/// What to delete from and add to the kernel set to go from `old` to `new`.
pub fn diff(old: &[Span], new: &[Span]) -> (Vec<Span>, Vec<Span>) {
    let key = |s: &Span| (s.start, s.end, s.expires);
    let old_keys: std::collections::HashSet<_> = old.iter().map(key).collect();
    let new_keys: std::collections::HashSet<_> = new.iter().map(key).collect();
    let delete = old
        .iter()
        .filter(|s| !new_keys.contains(&key(s)))
        .copied()
        .collect();
    let add = new
        .iter()
        .filter(|s| !old_keys.contains(&key(s)))
        .copied()
        .collect();
    (delete, add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(net: &str, expires: u32) -> Span {
        let net: IpNet = if net.contains('/') {
            net.parse().unwrap()
        } else {
            IpNet::from(net.parse::<IpAddr>().unwrap())
        };
        Span::of(&net, expires)
    }

    fn show(spans: &[Span]) -> Vec<String> {
        spans
            .iter()
            .map(|s| match s.as_prefix(Family::V4) {
                Some(p) => format!("{} {}", p, s.expires),
                None => format!(
                    "{}-{} {}",
                    from_u128(Family::V4, s.start),
                    from_u128(Family::V4, s.end),
                    s.expires
                ),
            })
            .collect()
    }

    #[test]
    fn an_address_inside_a_longer_block_changes_nothing() {
        let cur = [span("10.0.0.0/24", 600)];
        let u = union(&cur, &[span("10.0.0.5", 60)]);
        assert_eq!(show(&u), ["10.0.0.0/24 600"]);
        assert_eq!(diff(&cur, &u), (vec![], vec![]));
    }

    #[test]
    fn an_address_inside_a_shorter_block_keeps_its_own_expiry() {
        let u = union(&[span("10.0.0.0/24", 60)], &[span("10.0.0.5", 600)]);
        assert_eq!(
            show(&u),
            [
                "10.0.0.0-10.0.0.4 60",
                "10.0.0.5/32 600",
                "10.0.0.6-10.0.0.255 60"
            ]
        );
    }

    #[test]
    fn a_wider_range_over_blocked_addresses_merges() {
        let cur = [span("10.0.0.5", 60), span("10.0.1.7", 60)];
        let u = union(&cur, &[span("10.0.0.0/16", 600)]);
        assert_eq!(show(&u), ["10.0.0.0/16 600"]);
        let (del, add) = diff(&cur, &u);
        assert_eq!(del.len(), 2);
        assert_eq!(show(&add), ["10.0.0.0/16 600"]);
    }

    #[test]
    fn neighbours_with_one_expiry_become_one_element() {
        let u = union(&[], &[span("10.0.0.0/25", 60), span("10.0.0.128/25", 60)]);
        assert_eq!(show(&u), ["10.0.0.0/24 60"]);
        let u = union(&[], &[span("10.0.0.1", 60), span("10.0.0.2", 60)]);
        assert_eq!(show(&u), ["10.0.0.1-10.0.0.2 60"]);
    }

    #[test]
    fn unblocking_cuts_a_hole_and_leaves_the_rest() {
        let cur = [span("10.0.0.0/30", 60), span("10.0.1.1", 90)];
        let s = subtract(&cur, &[bounds(&"10.0.0.1/32".parse().unwrap())]);
        assert_eq!(
            show(&s),
            ["10.0.0.0/32 60", "10.0.0.2/31 60", "10.0.1.1/32 90"]
        );
        let s = subtract(&cur, &[bounds(&"10.0.0.0/8".parse().unwrap())]);
        assert!(s.is_empty());
    }

    #[test]
    fn the_whole_space_and_its_last_address_are_handled() {
        let all = Span {
            start: 0,
            end: u128::MAX,
            expires: 5,
        };
        assert_eq!(union(&[all], &[]), vec![all]);
        let last = Span {
            start: u128::MAX,
            end: u128::MAX,
            expires: 5,
        };
        assert_eq!(union(&[], &[last]), vec![last]);
        assert_eq!(subtract(&[all], &[(0, u128::MAX)]), vec![]);
    }

    #[test]
    fn many_addresses_union_quickly() {
        let new: Vec<Span> = (0..20_000u32)
            .map(|i| Span {
                start: (0x0a00_0000 + i * 2) as u128,
                end: (0x0a00_0000 + i * 2) as u128,
                expires: 60,
            })
            .collect();
        let t = std::time::Instant::now();
        let u = union(&[], &new);
        assert_eq!(u.len(), 20_000);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
