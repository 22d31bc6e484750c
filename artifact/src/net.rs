//! Network selector values: address blocks, port ranges and transports,
//! parsed with precise errors, matched and covered.
//!
//! Text in, typed values out, like [`crate::patterns`]: each `parse` takes
//! one condition value and returns a value or one [`PatternError`] whose
//! `at` is a byte range within that value.
//!
//! - [`Cidr`] (`destinationAddress`): `10.0.0.0/8`, `192.0.2.7` (a /32),
//!   `fd00::/8`, `::1` (a /128). An IPv4-mapped IPv6 block
//!   (`::ffff:10.0.0.0/104`) *is* the IPv4 block (`10.0.0.0/8`): the kernel
//!   sends a dual-stack socket's IPv4 traffic with a mapped address, and a
//!   policy must not be evaded by writing the same peer the other way. So
//!   every address is normalised by std's [`IpAddr::to_canonical`] before
//!   it is matched,
//!   and every block before it is kept.
//! - [`PortRange`] (`destinationPort`): `443`, `8000-8999`, `0-65535`.
//! - [`Transport`] (`transport`): `tcp`, `udp`.
//!
//! Decisions:
//! - Host bits set under the prefix (`10.0.0.1/8`) are an error, not
//!   silently cleared: the author meant a host or a block, and d4cc cannot
//!   tell which.
//! - `covers` is exact for these values: a block covers another when it
//!   contains it; a range covers another when it contains it.

use crate::patterns::PatternError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// A block of addresses: an address with the host bits clear and a prefix
/// length (at most 32 for IPv4, 128 for IPv6). Never an IPv4-mapped IPv6
/// block: [`Cidr::parse`] makes those IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// The `::ffff:0:0/96` prefix of IPv4-mapped IPv6 addresses.
const MAPPED_PREFIX: u8 = 96;

impl Cidr {
    /// The block `addr/prefix`, normalised; `None` when the prefix is too
    /// long for the family or host bits are set.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= MAPPED_PREFIX => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - MAPPED_PREFIX),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        if prefix > max_prefix(addr) || masked(addr, prefix) != addr {
            return None;
        }
        Some(Cidr { addr, prefix })
    }

    /// Parses `a.b.c.d[/n]` or an IPv6 address `[/n]`.
    pub fn parse(text: &str) -> Result<Cidr, PatternError> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            error(
                0..addr_text.len(),
                format!("`{addr_text}` is not an IPv4 or IPv6 address"),
                "write an address such as `10.0.0.0/8`, `192.0.2.7` or `fd00::/8`; host names are not resolved",
            )
        })?;
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                let at = addr_text.len() + 1..text.len();
                let digits = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
                match p.parse::<u8>() {
                    Ok(n) if digits && n <= max => n,
                    _ => {
                        return Err(error(
                            at,
                            format!("`/{p}` is not a prefix length of an {} address", family(addr)),
                            format!("an {} prefix is a number from 0 to {max}", family(addr)),
                        ))
                    }
                }
            }
        };
        Cidr::new(addr, prefix).ok_or_else(|| {
            let network = masked(addr, prefix);
            error(
                0..addr_text.len(),
                format!("`{text}` has bits set past its /{prefix} prefix"),
                format!("write the block `{network}/{prefix}`, or the host `{addr}` alone"),
            )
        })
    }

    /// The first address of the block (IPv4 for mapped blocks).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, counted in the family of [`Cidr::addr`].
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the block holds `addr` (normalised by
    /// [`IpAddr::to_canonical`]: an IPv4-mapped address is its IPv4 one).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        same_family(self.addr, addr) && masked(addr, self.prefix) == self.addr
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// Whether the block is every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_whole_family(&self) -> bool {
        self.prefix == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An inclusive range of ports; `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// `lo..=hi`; `None` when `lo > hi`.
    pub fn new(lo: u16, hi: u16) -> Option<PortRange> {
        (lo <= hi).then_some(PortRange { lo, hi })
    }

    /// Parses `443` or `8000-8999`.
    pub fn parse(text: &str) -> Result<PortRange, PatternError> {
        if text.starts_with('-') {
            return Err(error(
                0..text.len(),
                format!("`{text}` is not a port: ports are not negative"),
                "a port is a number from 0 to 65535",
            ));
        }
        if let Some(lo) = text.strip_suffix('-') {
            return Err(error(
                lo.len()..text.len(),
                format!("the range `{text}` has no last port"),
                format!("write `{lo}-65535` for every port from {lo} on"),
            ));
        }
        let port = |part: &str, at: Range<usize>| -> Result<u16, PatternError> {
            let digits = !part.is_empty() && part.len() <= 5 && part.bytes().all(|b| b.is_ascii_digit());
            match part.parse::<u16>() {
                Ok(n) if digits => Ok(n),
                _ => Err(error(
                    at,
                    format!("`{part}` is not a port number"),
                    "a port is a number from 0 to 65535; a range is written `8000-8999`; service names are not resolved",
                )),
            }
        };
        match text.split_once('-') {
            None => port(text, 0..text.len()).map(|p| PortRange { lo: p, hi: p }),
            Some((lo, hi)) => {
                let a = port(lo, 0..lo.len())?;
                let b = port(hi, lo.len() + 1..text.len())?;
                PortRange::new(a, b).ok_or_else(|| {
                    error(
                        0..text.len(),
                        format!("the range `{text}` ends before it starts"),
                        format!("write `{b}-{a}`"),
                    )
                })
            }
        }
    }

    /// The first port.
    pub fn lo(&self) -> u16 {
        self.lo
    }

    /// The last port.
    pub fn hi(&self) -> u16 {
        self.hi
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// Whether every port of `other` is in `self`.
    pub fn covers(&self, other: &PortRange) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }

    /// Whether it is every port.
    pub fn is_every_port(&self) -> bool {
        self.lo == 0 && self.hi == u16::MAX
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// The transport protocol of a socket. Raw, packet, SCTP and other
/// sockets are outside d4c's network selectors (see `docs/network.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP (`SOCK_STREAM` over `AF_INET`/`AF_INET6`).
    Tcp,
    /// UDP (`SOCK_DGRAM` over `AF_INET`/`AF_INET6`).
    Udp,
}

impl Transport {
    /// Both, in table order.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Udp];

    /// The name written in policies and in ECS `network.transport`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }

    /// Parses `tcp` or `udp` (exact case).
    pub fn parse(text: &str) -> Result<Transport, PatternError> {
        Transport::ALL.into_iter().find(|t| t.name() == text).ok_or_else(|| {
            error(
                0..text.len(),
                format!("`{text}` is not a transport d4c decides"),
                "the transports are `tcp` and `udp`",
            )
        })
    }
}

fn error(at: Range<usize>, message: String, help: impl Into<String>) -> PatternError {
    PatternError { at, message, help: Some(help.into()) }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// `addr` with the bits past `prefix` cleared (`prefix` at most the family's).
fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain_their_addresses() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        assert_eq!(Cidr::parse("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(Cidr::parse("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().is_whole_family());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
    }

    #[test]
    fn an_ipv4_mapped_block_is_the_ipv4_block() {
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, Cidr::parse("10.0.0.0/8").unwrap());
        // And a mapped peer address is the IPv4 peer.
        assert!(Cidr::parse("10.0.0.0/8").unwrap().contains(ip("::ffff:10.1.2.3")));
        assert!(!Cidr::parse("::/0").unwrap().contains(ip("::ffff:10.1.2.3")));
        // A block wider than the mapped prefix stays IPv6.
        assert_eq!(Cidr::parse("::fffe:0:0/95").unwrap().addr(), ip("::fffe:0:0"));
        // ... and holds no IPv4-mapped address: those are IPv4 addresses.
        assert!(!Cidr::parse("::fffe:0:0/95").unwrap().contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn bad_blocks_say_where() {
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert_eq!(e.at, 0..8);
        assert!(e.help.unwrap().contains("10.0.0.0/8"));
        let e = Cidr::parse("10.0.0.0/33").unwrap_err();
        assert_eq!(e.at, 9..11);
        let e = Cidr::parse("example.com").unwrap_err();
        assert!(e.message.contains("not an IPv4 or IPv6 address"));
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
    }

    #[test]
    fn blocks_cover_the_blocks_inside_them() {
        let a = Cidr::parse("10.0.0.0/8").unwrap();
        let b = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(a.covers(&b));
        assert!(!b.covers(&a));
        assert!(!a.covers(&Cidr::parse("::/0").unwrap()));
    }

    #[test]
    fn ports_and_ranges() {
        let r = PortRange::parse("8000-8999").unwrap();
        assert!(r.contains(8000) && r.contains(8999) && !r.contains(9000));
        assert_eq!(PortRange::parse("443").unwrap().to_string(), "443");
        assert!(PortRange::parse("0-65535").unwrap().is_every_port());
        assert_eq!(PortRange::parse("9-1").unwrap_err().at, 0..3);
        assert_eq!(PortRange::parse("80-http").unwrap_err().at, 3..7);
        assert!(PortRange::parse("65536").is_err());
        assert!(PortRange::parse("+80").is_err());
        assert!(PortRange::parse("-1").unwrap_err().message.contains("not negative"));
        assert_eq!(PortRange::parse("1-").unwrap_err().at, 1..2);
        assert!(PortRange::parse("-").is_err());
        assert_eq!(PortRange::parse("01").unwrap().to_string(), "1");
        assert!(r.covers(&PortRange::parse("8080").unwrap()));
    }

    #[test]
    fn transports() {
        assert_eq!(Transport::parse("udp").unwrap(), Transport::Udp);
        assert!(Transport::parse("icmp").unwrap_err().message.contains("icmp"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Addresses near each other, so that blocks and addresses meet:
        /// IPv4 in 10.0.0.0/16, IPv6 in fd00::/112, and IPv4-mapped IPv6
        /// forms of the IPv4 ones.
        fn address() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                any::<u16>().prop_map(|low| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | u32::from(low)))),
                any::<u16>().prop_map(|low| IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(low)))),
                any::<u16>().prop_map(|low| IpAddr::V6(Ipv4Addr::from(0x0a00_0000 | u32::from(low)).to_ipv6_mapped())),
            ]
        }

        fn block() -> impl Strategy<Value = Cidr> {
            (address(), 0u8..=128).prop_map(|(addr, prefix)| {
                let prefix = prefix.min(match addr {
                    IpAddr::V4(_) => 32,
                    IpAddr::V6(_) => 128,
                });
                let addr = masked(addr, prefix);
                Cidr::new(addr, prefix).unwrap_or_else(|| Cidr::new(addr, 128).unwrap_or(Cidr { addr, prefix: 0 }))
            })
        }

        proptest! {
            /// `covers` is sound: a block that covers another holds every
            /// address the other holds (`D4C0031` relies on it).
            #[test]
            fn a_covering_block_holds_every_address_of_the_covered(a in block(), b in block(), x in address()) {
                if a.covers(&b) && b.contains(x) {
                    prop_assert!(a.contains(x));
                }
            }

            /// A block's text reads back as the same block.
            #[test]
            fn a_block_reads_back_from_its_text(b in block()) {
                prop_assert_eq!(Cidr::parse(&b.to_string()), Ok(b));
            }

            /// An IPv4-mapped address is matched as its IPv4 address by
            /// every block: the mapped form evades nothing.
            #[test]
            fn a_mapped_address_is_matched_as_its_ipv4_address(b in block(), low in any::<u16>()) {
                let v4 = Ipv4Addr::from(0x0a00_0000 | u32::from(low));
                prop_assert_eq!(b.contains(IpAddr::V4(v4)), b.contains(IpAddr::V6(v4.to_ipv6_mapped())));
            }

            /// A range that covers another holds each of its ports.
            #[test]
            fn a_covering_range_holds_every_port_of_the_covered(a in (any::<u16>(), any::<u16>()), b in (any::<u16>(), any::<u16>()), p in any::<u16>()) {
                let a = PortRange::new(a.0.min(a.1), a.0.max(a.1)).unwrap_or(PortRange { lo: 0, hi: 0 });
                let b = PortRange::new(b.0.min(b.1), b.0.max(b.1)).unwrap_or(PortRange { lo: 0, hi: 0 });
                if a.covers(&b) && b.contains(p) {
                    prop_assert!(a.contains(p));
                }
                prop_assert_eq!(PortRange::parse(&a.to_string()), Ok(a));
            }
        }
    }
}
