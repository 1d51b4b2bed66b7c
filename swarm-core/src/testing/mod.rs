//! Conformance suites and fakes, for implementations of the traits and for
//! behaviour tests. Enabled by the `testing` feature.
//!
//! - [`store_suite`] checks a [`Store`](crate::store::Store).
//! - [`runtime_suite`] checks a [`Runtime`](crate::runtime::Runtime), with
//!   task specs written for it by a [`RuntimeFixtures`].
//! - [`scheduler_suite`] checks a [`Scheduler`](crate::sched::Scheduler).
//! - [`FakeRuntime`] is a runtime in memory whose tasks fail, exit or hang
//!   on demand, for behaviour tests of agents and nodes.
//! - [`fixtures`] makes nodes, services and tasks in a line each.

mod fake_runtime;
pub mod fixtures;
mod runtime_suite;
mod scheduler_suite;
mod store_suite;

pub use fake_runtime::{FakeRuntime, Fault};
pub use runtime_suite::{RuntimeFixtures, runtime_suite};
pub use scheduler_suite::scheduler_suite;
pub use store_suite::store_suite;
