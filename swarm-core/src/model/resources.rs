//! CPU and memory amounts.

use serde::{Deserialize, Serialize};

/// An amount of CPU and memory.
///
/// CPU is counted in billionths of a core (`1_000_000_000` is one core), as
/// Docker's `NanoCPUs`; memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in billionths of a core.
    #[serde(default)]
    pub nano_cpus: u64,
    /// Memory in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
}

impl Resources {
    /// Resources of `cpus` cores and `memory_bytes` bytes.
    #[must_use]
    pub fn new(cpus: f64, memory_bytes: u64) -> Self {
        Self {
            nano_cpus: (cpus * 1e9) as u64,
            memory_bytes,
        }
    }

    /// Whether both amounts are zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.nano_cpus == 0 && self.memory_bytes == 0
    }

    /// Whether `other` fits within `self`.
    #[must_use]
    pub fn fits(&self, other: &Resources) -> bool {
        other.nano_cpus <= self.nano_cpus && other.memory_bytes <= self.memory_bytes
    }

    /// `self + other`, saturating.
    #[must_use]
    pub fn saturating_add(&self, other: &Resources) -> Resources {
        Resources {
            nano_cpus: self.nano_cpus.saturating_add(other.nano_cpus),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    /// `self - other`, saturating at zero.
    #[must_use]
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            nano_cpus: self.nano_cpus.saturating_sub(other.nano_cpus),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
        }
    }
}

/// What a task reserves on its node (used for placement) and the most it
/// may use (enforced by the runtime where it can).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirements {
    /// Reserved for the task: the scheduler only places it on a node with
    /// this much left unreserved.
    #[serde(default)]
    pub reservations: Resources,
    /// Upper bounds; zero means unlimited.
    #[serde(default)]
    pub limits: Resources,
}
