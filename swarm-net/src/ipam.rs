//! Address management: subnets for networks, addresses for services'
//! virtual IPs and for tasks. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use swarm_core::Id;

use swarm_core::model::Subnet;

/// Where networks without a subnet of their own get one: each pool is cut
/// into blocks of `mask` bits, used in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pools, as (pool, block prefix length).
    pub pools: Vec<(Subnet, u8)>,
}

impl Default for PoolConfig {
    /// Docker's: `10.0.0.0/8` in `/24`s.
    fn default() -> Self {
        Self {
            pools: vec![(Subnet::containing(Ipv4Addr::new(10, 0, 0, 0), 8), 24)],
        }
    }
}

impl PoolConfig {
    /// One pool, `pool` in blocks of `mask` bits (`--default-addr-pool`,
    /// `--default-addr-pool-mask-length`).
    #[must_use]
    pub fn new(pool: Subnet, mask: u8) -> Self {
        Self {
            pools: vec![(pool, mask)],
        }
    }

    /// Checks that every block fits its pool and holds hosts.
    pub fn validate(&self) -> Result<(), IpamError> {
        if self.pools.is_empty() {
            return Err(IpamError::InvalidPool(
                "no address pool: give at least one, e.g. --default-addr-pool 10.0.0.0/8".into(),
            ));
        }
        for (pool, mask) in &self.pools {
            if *mask < pool.prefix() || *mask > 30 {
                return Err(IpamError::InvalidPool(format!(
                    "the mask length {mask} does not fit the pool {pool}: use a length from {} to 30",
                    pool.prefix()
                )));
            }
        }
        Ok(())
    }
}

/// A network's subnet and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkAllocation {
    /// The subnet.
    pub subnet: Subnet,
    /// The gateway: never handed out.
    pub gateway: Ipv4Addr,
}

/// What went wrong; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The pool settings are wrong.
    #[error("invalid address pool: {0}")]
    InvalidPool(String),
    /// A subnet overlaps another network's or a route of the node.
    #[error("subnet {subnet} overlaps {with}: choose another subnet")]
    Overlap {
        /// The subnet asked for.
        subnet: Subnet,
        /// What it overlaps: `network appnet (10.1.0.0/24)` or `this node's route 10.0.0.0/16`.
        with: String,
    },
    /// Subnets are too small to hold hosts.
    #[error("subnet {0} holds no host addresses: use a prefix length of at most 30")]
    TooSmall(Subnet),
    /// The gateway is not a host address of the subnet.
    #[error(
        "gateway {gateway} is not a host address of subnet {subnet}: give one inside it, or none"
    )]
    GatewayOutside {
        /// The gateway asked for.
        gateway: Ipv4Addr,
        /// The subnet.
        subnet: Subnet,
    },
    /// Every block of the pools is taken.
    #[error(
        "the address pools ({pools}) are exhausted: remove unused networks, or start the cluster with a larger --default-addr-pool"
    )]
    PoolsExhausted {
        /// The pools, for the message.
        pools: String,
    },
    /// The network exists already.
    #[error("network {0} already has addresses")]
    NetworkExists(Id),
    /// The network is not known.
    #[error("network {0} has no addresses: create it first")]
    UnknownNetwork(Id),
    /// The network still has addresses in use.
    #[error("network {network} still has {addresses} addresses in use: release them first")]
    NetworkInUse {
        /// The network.
        network: Id,
        /// How many.
        addresses: usize,
    },
    /// Every host address of the network is taken.
    #[error(
        "network {network} ({subnet}) has no free address left ({hosts} in use): remove tasks or services from it, or use a network with a larger subnet"
    )]
    AddressesExhausted {
        /// The network.
        network: Id,
        /// Its subnet.
        subnet: Subnet,
        /// Its host addresses.
        hosts: u64,
    },
    /// The address is not a host address of the network.
    #[error("address {addr} is not a usable address of network {network} ({subnet})")]
    NotInNetwork {
        /// The address.
        addr: Ipv4Addr,
        /// The network.
        network: Id,
        /// Its subnet.
        subnet: Subnet,
    },
    /// The address is handed out already.
    #[error("address {addr} of network {network} is in use already")]
    InUse {
        /// The address.
        addr: Ipv4Addr,
        /// The network.
        network: Id,
    },
    /// The address was not handed out.
    #[error("address {addr} of network {network} is not in use")]
    NotInUse {
        /// The address.
        addr: Ipv4Addr,
        /// The network.
        network: Id,
    },
}

/// Hands out subnets to networks and addresses within them.
///
/// # Contract
/// - An address is handed out at most once until it is released; a
///   released address can be handed out again.
/// - Network, gateway and broadcast addresses are never handed out.
/// - Subnets of networks never overlap each other or the routes the
///   manager was given.
/// - A failed call changes nothing.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AddressManager: Send {
    /// Gives `network` a subnet: `subnet` if given (and free), else the
    /// first free block of the pools; and a gateway: `gateway` if given,
    /// else the first host address.
    fn create_network(
        &mut self,
        network: Id,
        subnet: Option<Subnet>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<NetworkAllocation, IpamError>;

    /// Takes `network`'s subnet back; its addresses must all be released.
    fn remove_network(&mut self, network: &Id) -> Result<(), IpamError>;

    /// Hands out the lowest free address of `network`.
    fn allocate(&mut self, network: &Id) -> Result<Ipv4Addr, IpamError>;

    /// Hands out `addr` of `network` (a static address, or one the store
    /// recorded).
    fn allocate_exact(&mut self, network: &Id, addr: Ipv4Addr) -> Result<(), IpamError>;

    /// Takes `addr` of `network` back.
    fn release(&mut self, network: &Id, addr: Ipv4Addr) -> Result<(), IpamError>;

    /// The subnet and gateway of `network`.
    fn network(&self, network: &Id) -> Option<NetworkAllocation>;

    /// How many addresses of `network` are handed out.
    fn in_use(&self, network: &Id) -> usize;
}

/// One network's addresses: a bitmap over its host addresses.
#[derive(Debug, Clone)]
struct Addresses {
    alloc: NetworkAllocation,
    /// Bit `i` set: host address `first + 1 + i` is taken (the gateway's
    /// bit is set from the start).
    bits: Vec<u64>,
    /// No word before this one has a free bit.
    lowest_free_word: usize,
    in_use: usize,
}

impl Addresses {
    fn new(alloc: NetworkAllocation) -> Self {
        let hosts = Self::hosts_of(&alloc.subnet);
        let mut a = Self {
            alloc,
            bits: vec![0; hosts.div_ceil(64) as usize],
            lowest_free_word: 0,
            in_use: 0,
        };
        let gateway = a
            .index(alloc.gateway)
            .expect("the gateway is a host address");
        a.set(gateway, true);
        a
    }

    fn hosts_of(subnet: &Subnet) -> u64 {
        subnet.size().saturating_sub(2)
    }

    fn hosts(&self) -> u64 {
        Self::hosts_of(&self.alloc.subnet)
    }

    /// The bit of a host address, if `addr` is one.
    fn index(&self, addr: Ipv4Addr) -> Option<usize> {
        let n = u32::from(addr);
        let s = &self.alloc.subnet;
        (n > s.first() && n < s.last()).then(|| (n - s.first() - 1) as usize)
    }

    fn get(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, on: bool) {
        let word = &mut self.bits[i / 64];
        if on {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
            self.lowest_free_word = self.lowest_free_word.min(i / 64);
        }
    }

    fn lowest_free(&mut self) -> Option<usize> {
        let hosts = self.hosts() as usize;
        while let Some(&word) = self.bits.get(self.lowest_free_word) {
            if word != u64::MAX {
                let i = self.lowest_free_word * 64 + (!word).trailing_zeros() as usize;
                return (i < hosts).then_some(i);
            }
            self.lowest_free_word += 1;
        }
        None
    }

    fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.alloc.subnet.first() + 1 + i as u32)
    }
}

/// The address manager: subnets from pools, addresses from bitmaps.
#[derive(Debug, Clone)]
pub struct Ipam {
    config: PoolConfig,
    routes: Vec<Subnet>,
    networks: BTreeMap<Id, Addresses>,
}

impl Ipam {
    /// An empty manager handing out blocks of `config`'s pools, never
    /// overlapping `routes` (the node's own networks).
    ///
    /// # Panics
    /// If `config` is not valid ([`PoolConfig::validate`]).
    #[must_use]
    pub fn new(config: PoolConfig, routes: impl IntoIterator<Item = Subnet>) -> Self {
        config.validate().expect("a valid pool configuration");
        Self {
            config,
            routes: routes.into_iter().collect(),
            networks: BTreeMap::new(),
        }
    }

    /// A manager holding what the store recorded: each network's subnet
    /// and gateway, and the addresses in use. Records that contradict each
    /// other (overlapping subnets, an address twice) are an error.
    pub fn restore(
        config: PoolConfig,
        routes: impl IntoIterator<Item = Subnet>,
        networks: impl IntoIterator<Item = (Id, NetworkAllocation, Vec<Ipv4Addr>)>,
    ) -> Result<Self, IpamError> {
        config.validate()?;
        let mut ipam = Self::new(config, routes);
        for (id, alloc, addrs) in networks {
            ipam.adopt(id.clone(), alloc)?;
            for a in addrs {
                ipam.allocate_exact(&id, a)?;
            }
        }
        Ok(ipam)
    }

    /// Takes in a network the store recorded, with its subnet and gateway.
    /// Its subnet must not overlap another network's; the node's routes
    /// are not checked again (they were when it was made, and a route that
    /// appeared since must not undo it).
    pub fn adopt(&mut self, network: Id, alloc: NetworkAllocation) -> Result<(), IpamError> {
        let routes = std::mem::take(&mut self.routes);
        let made = self.create_network(network, Some(alloc.subnet), Some(alloc.gateway));
        self.routes = routes;
        made.map(|_| ())
    }

    /// What `subnet` overlaps, if anything.
    fn overlap(&self, subnet: &Subnet) -> Option<String> {
        if let Some((id, a)) = self
            .networks
            .iter()
            .find(|(_, a)| a.alloc.subnet.overlaps(subnet))
        {
            return Some(format!("network {id} ({})", a.alloc.subnet));
        }
        self.routes
            .iter()
            .find(|r| r.overlaps(subnet))
            .map(|r| format!("this node's route {r}"))
    }

    /// The first block of the pools that overlaps nothing.
    fn free_block(&self) -> Result<Subnet, IpamError> {
        let mut taken: Vec<Subnet> = self
            .networks
            .values()
            .map(|a| a.alloc.subnet)
            .chain(self.routes.iter().copied())
            .collect();
        taken.sort_unstable();
        for &(pool, mask) in &self.config.pools {
            let step = 1u64 << (32 - u32::from(mask));
            let mut at = u64::from(pool.first());
            while at + step - 1 <= u64::from(pool.last()) {
                let block = Subnet::containing(Ipv4Addr::from(at as u32), mask);
                match taken.iter().find(|t| t.overlaps(&block)) {
                    None => return Ok(block),
                    // Jump past what is taken, to the next block boundary.
                    Some(t) => {
                        let end = u64::from(t.last()) + 1;
                        at = end.max(at + step).div_ceil(step) * step;
                    }
                }
            }
        }
        Err(IpamError::PoolsExhausted {
            pools: self
                .config
                .pools
                .iter()
                .map(|(p, m)| format!("{p} in /{m}s"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn addresses(&mut self, network: &Id) -> Result<&mut Addresses, IpamError> {
        self.networks
            .get_mut(network)
            .ok_or_else(|| IpamError::UnknownNetwork(network.clone()))
    }

    /// The network's addresses and the bit of `addr`, if `addr` is one it
    /// can hand out (a host address, not the gateway).
    fn handed_out_bit(
        &mut self,
        network: &Id,
        addr: Ipv4Addr,
    ) -> Result<(&mut Addresses, usize), IpamError> {
        let a = self.addresses(network)?;
        match a.index(addr).filter(|_| addr != a.alloc.gateway) {
            Some(i) => Ok((a, i)),
            None => Err(IpamError::NotInNetwork {
                addr,
                network: network.clone(),
                subnet: a.alloc.subnet,
            }),
        }
    }
}

impl AddressManager for Ipam {
    fn create_network(
        &mut self,
        network: Id,
        subnet: Option<Subnet>,
        gateway: Option<Ipv4Addr>,
    ) -> Result<NetworkAllocation, IpamError> {
        if self.networks.contains_key(&network) {
            return Err(IpamError::NetworkExists(network));
        }
        let subnet = match subnet {
            Some(s) => {
                if let Some(with) = self.overlap(&s) {
                    return Err(IpamError::Overlap { subnet: s, with });
                }
                s
            }
            None => self.free_block()?,
        };
        if Addresses::hosts_of(&subnet) == 0 {
            return Err(IpamError::TooSmall(subnet));
        }
        let first_host = Ipv4Addr::from(subnet.first() + 1);
        let gateway = gateway.unwrap_or(first_host);
        let n = u32::from(gateway);
        if !subnet.contains(gateway) || n == subnet.first() || n == subnet.last() {
            return Err(IpamError::GatewayOutside { gateway, subnet });
        }
        let alloc = NetworkAllocation { subnet, gateway };
        self.networks.insert(network, Addresses::new(alloc));
        Ok(alloc)
    }

    fn remove_network(&mut self, network: &Id) -> Result<(), IpamError> {
        let a = self.addresses(network)?;
        if a.in_use > 0 {
            return Err(IpamError::NetworkInUse {
                network: network.clone(),
                addresses: a.in_use,
            });
        }
        self.networks.remove(network);
        Ok(())
    }

    fn allocate(&mut self, network: &Id) -> Result<Ipv4Addr, IpamError> {
        let a = self.addresses(network)?;
        let Some(i) = a.lowest_free() else {
            return Err(IpamError::AddressesExhausted {
                network: network.clone(),
                subnet: a.alloc.subnet,
                hosts: a.hosts(),
            });
        };
        a.set(i, true);
        a.in_use += 1;
        Ok(a.addr(i))
    }

    fn allocate_exact(&mut self, network: &Id, addr: Ipv4Addr) -> Result<(), IpamError> {
        let (a, i) = self.handed_out_bit(network, addr)?;
        if a.get(i) {
            return Err(IpamError::InUse {
                addr,
                network: network.clone(),
            });
        }
        a.set(i, true);
        a.in_use += 1;
        Ok(())
    }

    fn release(&mut self, network: &Id, addr: Ipv4Addr) -> Result<(), IpamError> {
        let (a, i) = self.handed_out_bit(network, addr)?;
        if !a.get(i) {
            return Err(IpamError::NotInUse {
                addr,
                network: network.clone(),
            });
        }
        a.set(i, false);
        a.in_use -= 1;
        Ok(())
    }

    fn network(&self, network: &Id) -> Option<NetworkAllocation> {
        self.networks.get(network).map(|a| a.alloc)
    }

    fn in_use(&self, network: &Id) -> usize {
        self.networks.get(network).map_or(0, |a| a.in_use)
    }
}

#[cfg(test)]
mod tests;
