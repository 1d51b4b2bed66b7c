#![doc = include_str!("../README.md")]

pub mod agent;
pub mod cluster;
pub mod constraint;
pub mod control;
pub mod dispatcher;
mod error;
pub mod events;
mod id;
pub mod manager;
pub mod metrics;
pub mod model;
pub mod network;
pub mod runtime;
pub mod sched;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validate;

pub use error::{Problem, SpecError};
pub use id::Id;
