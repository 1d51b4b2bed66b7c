#![doc = include_str!("../README.md")]

mod allocator;
pub mod dns;
mod ipam;
pub mod linux;
mod routes;
#[cfg(test)]
mod testview;

pub use allocator::{NetworkAllocator, Plan, network_allocator, plan, restore};
#[cfg(any(test, feature = "mocks"))]
pub use ipam::MockAddressManager;
pub use ipam::{AddressManager, Ipam, IpamError, NetworkAllocation, PoolConfig};
pub use linux::{LinuxConfig, LinuxDriver};
pub use routes::{host_routes, parse_routes};
pub use swarm_core::model::{Subnet, SubnetError};
