//! Conformance suites and fakes, for implementations of the traits and for
//! behaviour tests. Enabled by the `testing` feature.
//!
//! - [`store_suite`] checks a [`Store`](crate::store::Store).
//! - [`runtime_suite`] checks a [`Runtime`](crate::runtime::Runtime), with
//!   task specs written for it by a [`RuntimeFixtures`].

mod runtime_suite;
mod store_suite;

pub use runtime_suite::{RuntimeFixtures, runtime_suite};
pub use store_suite::store_suite;
