//! The manager's control loops: orchestrators, allocator, scheduler loop,
//! task reaper, and the [`Manager`] that runs them.

mod driver;
pub mod orchestrator;
