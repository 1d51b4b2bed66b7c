//! Wiring of the swarm crates.
