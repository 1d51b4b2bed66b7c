#![doc = include_str!("../README.md")]

mod ipam;
mod subnet;

#[cfg(any(test, feature = "mocks"))]
pub use ipam::MockAddressManager;
pub use ipam::{AddressManager, Ipam, IpamError, NetworkAllocation, PoolConfig};
pub use subnet::{Subnet, SubnetError};
