//! Trusted networks: single addresses, ranges (`a-b`) and CIDR blocks, IPv4 and IPv6.

use std::net::IpAddr;

/// One entry of the trusted-networks list, as an inclusive address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRange {
    first: u128,
    last: u128,
    v6: bool,
}

fn to_u128(ip: IpAddr) -> (u128, bool) {
    match ip {
        // IPv4-mapped IPv6 (::ffff:a.b.c.d) is the same host as a.b.c.d.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), false),
            None => (u128::from(v6), true),
        },
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
    }
}

impl std::str::FromStr for NetRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let ip = |t: &str| {
            t.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("`{t}` is not an IP address"))
        };
        if let Some((addr, bits)) = s.split_once('/') {
            let (base, v6) = to_u128(ip(addr)?);
            let width = if v6 { 128 } else { 32 };
            let bits: u32 = bits
                .parse()
                .ok()
                .filter(|b| *b <= width)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={width}"))?;
            let host_bits = width - bits;
            let mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            if base & mask != 0 {
                return Err(format!(
                    "`{s}`: host bits are set; did you mean {}/{bits}?",
                    from_u128(base & !mask, v6)
                ));
            }
            return Ok(NetRange {
                first: base,
                last: base | mask,
                v6,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            let ((first, v6a), (last, v6b)) = (to_u128(ip(a)?), to_u128(ip(b)?));
            if v6a != v6b {
                return Err(format!("`{s}`: both ends must be the same IP version"));
            }
            if first > last {
                return Err(format!("`{s}`: the range ends before it starts"));
            }
            return Ok(NetRange {
                first,
                last,
                v6: v6a,
            });
        }
        let (one, v6) = to_u128(ip(s)?);
        Ok(NetRange {
            first: one,
            last: one,
            v6,
        })
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

impl NetRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v, v6) = to_u128(ip);
        v6 == self.v6 && (self.first..=self.last).contains(&v)
    }
}

/// Parses every entry; the error names the first bad one.
pub fn parse_all(entries: &[String]) -> Result<Vec<NetRange>, String> {
    entries.iter().map(|e| e.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> NetRange {
        s.parse().expect(s)
    }

    #[test]
    fn cidr_range_and_single_addresses() {
        assert!(r("10.0.0.0/8").contains("10.255.1.2".parse().expect("ip")));
        assert!(!r("10.0.0.0/8").contains("11.0.0.1".parse().expect("ip")));
        assert!(r("192.168.1.10-192.168.1.20").contains("192.168.1.15".parse().expect("ip")));
        assert!(!r("192.168.1.10-192.168.1.20").contains("192.168.1.21".parse().expect("ip")));
        assert!(r("127.0.0.1").contains("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(r("2001:db8::/32").contains("2001:db8::1".parse().expect("ip")));
        assert!(!r("2001:db8::/32").contains("10.0.0.1".parse().expect("ip")));
        assert!(r("0.0.0.0/0").contains("8.8.8.8".parse().expect("ip")));
    }

    #[test]
    fn bad_entries_are_explained() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "10.0.0.9-10.0.0.1",
            "::1-10.0.0.1",
            "host.example",
            "",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<NetRange>().is_err(), "{bad} accepted");
        }
        let e = "10.0.0.1/8".parse::<NetRange>().expect_err("host bits");
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }
}
