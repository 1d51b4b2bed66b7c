//! IPv4 subnets: `10.1.0.0/24`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network: its address (host bits all zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: u32,
    prefix: u8,
}

/// Why a text is not a subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// Not `ADDRESS/LENGTH`.
    #[error("invalid subnet {0:?}: write an IPv4 network as ADDRESS/LENGTH, e.g. 10.1.0.0/24")]
    Malformed(String),
    /// The prefix length is above 32.
    #[error("invalid subnet {0:?}: the prefix length must be between 0 and 32")]
    Prefix(String),
    /// Bits below the prefix are set.
    #[error("invalid subnet {given:?}: it has host bits set; did you mean {meant}?")]
    HostBits {
        /// What was given.
        given: String,
        /// The network it is in.
        meant: Subnet,
    },
}

impl Subnet {
    /// The network of `addr` with `prefix` bits (host bits cleared).
    ///
    /// # Panics
    /// If `prefix` is above 32.
    #[must_use]
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Self {
        assert!(prefix <= 32, "a prefix length is at most 32");
        Self {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        }
    }

    /// Whether `ip` is a host address of the subnet: inside it, and neither
    /// its network nor its broadcast address.
    #[must_use]
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        self.contains(ip) && n != self.first() && n != self.last()
    }

    /// The network address.
    #[must_use]
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address (the network address), as a number.
    #[must_use]
    pub fn first(&self) -> u32 {
        self.addr
    }

    /// The last address (the broadcast address), as a number.
    #[must_use]
    pub fn last(&self) -> u32 {
        self.addr | !mask(self.prefix)
    }

    /// How many addresses it spans.
    #[must_use]
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Whether `ip` is in it.
    #[must_use]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.addr
    }

    /// Whether it shares an address with `other`.
    #[must_use]
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Self, SubnetError> {
        let text = s.trim();
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| SubnetError::Malformed(s.into()))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| SubnetError::Malformed(s.into()))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| SubnetError::Malformed(s.into()))?;
        if prefix > 32 {
            return Err(SubnetError::Prefix(s.into()));
        }
        let net = Self::containing(addr, prefix);
        if net.addr() != addr {
            return Err(SubnetError::HostBits {
                given: s.into(),
                meant: net,
            });
        }
        Ok(net)
    }
}

impl TryFrom<String> for Subnet {
    type Error = SubnetError;
    fn try_from(s: String) -> Result<Self, SubnetError> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses_with_reasons() {
        let s: Subnet = "10.1.0.0/24".parse().unwrap();
        assert_eq!(
            (s.addr(), s.prefix(), s.size()),
            (Ipv4Addr::new(10, 1, 0, 0), 24, 256)
        );
        assert!(s.contains(Ipv4Addr::new(10, 1, 0, 255)));
        assert!(!s.contains(Ipv4Addr::new(10, 1, 1, 0)));
        assert_eq!("0.0.0.0/0".parse::<Subnet>().unwrap().size(), 1 << 32);
        let err = "10.1.0.5/24".parse::<Subnet>().unwrap_err().to_string();
        assert!(err.contains("did you mean 10.1.0.0/24?"), "{err}");
        for bad in ["10.1.0.0", "10.1.0/24", "10.1.0.0/x", "fd00::/64", ""] {
            let err = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(err.contains("ADDRESS/LENGTH"), "{bad}: {err}");
        }
        assert!(
            "10.0.0.0/33"
                .parse::<Subnet>()
                .unwrap_err()
                .to_string()
                .contains("between 0 and 32")
        );
    }

    proptest! {
        #[test]
        fn overlap_is_sharing_an_address(a in any::<u32>(), pa in 8u8..=32, b in any::<u32>(), pb in 8u8..=32) {
            let x = Subnet::containing(a.into(), pa);
            let y = Subnet::containing(b.into(), pb);
            let shares = x.contains(y.addr()) || y.contains(x.addr());
            prop_assert_eq!(x.overlaps(&y), shares);
            prop_assert_eq!(x.to_string().parse::<Subnet>().unwrap(), x);
        }
    }
}
