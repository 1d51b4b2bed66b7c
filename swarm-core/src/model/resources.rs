//! CPU and memory amounts, and generic resources (GPUs, SSDs, anything a
//! node advertises by kind).

use std::collections::BTreeMap;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirements {
    /// Reserved for the task: the scheduler only places it on a node with
    /// this much left unreserved.
    #[serde(default)]
    pub reservations: Resources,
    /// Upper bounds; zero means unlimited.
    #[serde(default)]
    pub limits: Resources,
    /// Generic resources reserved for the task, as counts by kind
    /// (`--generic-resource gpu=1`): the scheduler places it on a node
    /// that advertises that many unassigned, and gives it which (the
    /// task's `assigned_generic_resources`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generic: BTreeMap<String, u64>,
}

/// A resource a node advertises beyond CPU and memory (`swarmd
/// --node-generic-resource`, or dockerd's own).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenericResource {
    /// One resource with an identity, such as a GPU's UUID
    /// (`gpu=GPU-9f2c`): a task is given it whole, and told its value.
    Named {
        /// What it is (`gpu`).
        kind: String,
        /// Which one.
        value: String,
    },
    /// An amount of interchangeable units (`ssd=3`).
    Discrete {
        /// What it is (`ssd`).
        kind: String,
        /// How many.
        value: u64,
    },
}

impl GenericResource {
    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> &str {
        match self {
            Self::Named { kind, .. } | Self::Discrete { kind, .. } => kind,
        }
    }

    /// Reads `KIND=VALUE` as Docker's `--node-generic-resource` does: a
    /// whole number is a discrete amount, anything else one named
    /// resource.
    ///
    /// # Errors
    /// No `=`, an empty kind or value, or a kind that is not a simple name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some((kind, value)) = s.split_once('=') else {
            return Err(format!(
                "invalid generic resource {s:?}: write KIND=VALUE, e.g. gpu=GPU-9f2c (one named resource) or ssd=3 (an amount)"
            ));
        };
        check_generic_kind(kind)?;
        if value.is_empty() {
            return Err(format!(
                "generic resource {kind} has no value: write {kind}=VALUE"
            ));
        }
        Ok(match value.parse::<u64>() {
            Ok(n) => Self::Discrete {
                kind: kind.to_owned(),
                value: n,
            },
            Err(_) => Self::Named {
                kind: kind.to_owned(),
                value: value.to_owned(),
            },
        })
    }
}

impl std::fmt::Display for GenericResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named { kind, value } => write!(f, "{kind}={value}"),
            Self::Discrete { kind, value } => write!(f, "{kind}={value}"),
        }
    }
}

/// Checks a generic resource's kind: letters, digits, `_`, `-` and `.`,
/// as it becomes part of an environment variable's name.
///
/// # Errors
/// An empty kind or another character, with the rule.
pub fn check_generic_kind(kind: &str) -> Result<(), String> {
    if kind.is_empty()
        || !kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "invalid generic resource kind {kind:?}: use letters, digits, '_', '-' and '.' (e.g. gpu)"
        ));
    }
    Ok(())
}

/// What of `kind` a node `offers` is not `taken`: its named values (each
/// once, in order of their names) and its discrete units.
fn free_of<'a>(
    offers: &'a [GenericResource],
    taken: &[GenericResource],
    kind: &str,
) -> (Vec<&'a String>, u64) {
    let mut named: Vec<&String> = offers
        .iter()
        .filter_map(|r| match r {
            GenericResource::Named { kind: k, value } if k == kind => Some(value),
            _ => None,
        })
        .filter(|v| {
            !taken.iter().any(
                |t| matches!(t, GenericResource::Named { kind: k, value } if k == kind && value == *v),
            )
        })
        .collect();
    named.sort();
    named.dedup();
    let discrete = |list: &[GenericResource]| {
        list.iter()
            .filter_map(|r| match r {
                GenericResource::Discrete { kind: k, value } if k == kind => Some(*value),
                _ => None,
            })
            .fold(0u64, u64::saturating_add)
    };
    (named, discrete(offers).saturating_sub(discrete(taken)))
}

/// How many units of `kind` a node `offers` that are not `taken`: what
/// [`claim_generic`] can give (a named value offered twice counts once).
#[must_use]
pub fn generic_free(offers: &[GenericResource], taken: &[GenericResource], kind: &str) -> u64 {
    let (named, units) = free_of(offers, taken, kind);
    (named.len() as u64).saturating_add(units)
}

/// Takes `wanted` (counts by kind) from what a node `offers`, less what
/// is `taken` already: named resources first (in order of their names),
/// then units of a discrete amount for the rest.
///
/// # Errors
/// A kind the node has too few of, naming how many are free.
pub fn claim_generic(
    offers: &[GenericResource],
    taken: &[GenericResource],
    wanted: &BTreeMap<String, u64>,
) -> Result<Vec<GenericResource>, String> {
    let mut out = Vec::new();
    for (kind, &n) in wanted {
        if n == 0 {
            continue;
        }
        let (named, units) = free_of(offers, taken, kind);
        let free = (named.len() as u64).saturating_add(units);
        if free < n {
            return Err(format!(
                "insufficient generic resource {kind}: the task reserves {n}, the node has {free} free"
            ));
        }
        let from_named = named.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        out.extend(
            named
                .into_iter()
                .take(from_named)
                .map(|v| GenericResource::Named {
                    kind: kind.clone(),
                    value: v.clone(),
                }),
        );
        let rest = n - from_named as u64;
        if rest > 0 {
            out.push(GenericResource::Discrete {
                kind: kind.clone(),
                value: rest,
            });
        }
    }
    Ok(out)
}

/// Checks what a node advertises as SwarmKit does: a kind is either named
/// resources or one amount, never both, and an amount is at least 1.
///
/// # Errors
/// The first kind that breaks the rule, with how to write it.
pub fn check_node_generic(list: &[GenericResource]) -> Result<(), String> {
    let mut seen: BTreeMap<&str, &GenericResource> = BTreeMap::new();
    for r in list {
        check_generic_kind(r.kind())?;
        if let GenericResource::Discrete { kind, value: 0 } = r {
            return Err(format!(
                "generic resource {kind}=0 offers nothing: give an amount of at least 1, or leave it out"
            ));
        }
        if let Some(before) = seen.insert(r.kind(), r) {
            let named = |r: &GenericResource| matches!(r, GenericResource::Named { .. });
            match (named(before), named(r)) {
                (true, true) => {}
                (false, false) => {
                    return Err(format!(
                        "generic resource {} is given twice as an amount ({before} and {r}): give it once, with the total",
                        r.kind()
                    ));
                }
                _ => {
                    return Err(format!(
                        "generic resource {} is given both as named resources and as an amount ({before}, {r}): \
                         use names for resources with an identity (gpu=GPU-9f2c), or one amount (ssd=3)",
                        r.kind()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The environment a task is told its generic resources in, as Docker
/// does: `DOCKER_RESOURCE_GPU=GPU-1,GPU-2` for named ones (the kind in
/// capitals), `DOCKER_RESOURCE_SSD=2` for an amount.
#[must_use]
pub fn generic_env(assigned: &[GenericResource]) -> Vec<String> {
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in assigned {
        // SwarmKit's name: the kind in capitals, nothing else changed
        // (`NVIDIA-GPU` is `DOCKER_RESOURCE_NVIDIA-GPU`, which the NVIDIA
        // container runtime reads).
        let name = format!("DOCKER_RESOURCE_{}", r.kind().to_ascii_uppercase());
        let value = match r {
            GenericResource::Named { value, .. } => value.clone(),
            GenericResource::Discrete { value, .. } => value.to_string(),
        };
        by_kind.entry(name).or_default().push(value);
    }
    by_kind
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.join(",")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(kind: &str, value: &str) -> GenericResource {
        GenericResource::Named {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn generic_resources_are_read_claimed_and_told_as_docker_does() {
        assert_eq!(
            GenericResource::parse("gpu=GPU-1").unwrap(),
            named("gpu", "GPU-1")
        );
        assert_eq!(
            GenericResource::parse("ssd=3").unwrap(),
            GenericResource::Discrete {
                kind: "ssd".into(),
                value: 3
            }
        );
        for bad in ["gpu", "=1", "gpu=", "g pu=1"] {
            assert!(GenericResource::parse(bad).is_err(), "{bad}");
        }
        let offers = [
            named("gpu", "b"),
            named("gpu", "a"),
            named("gpu", "c"),
            GenericResource::parse("ssd=3").unwrap(),
        ];
        let want = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
        };
        let first = claim_generic(&offers, &[], &want(&[("gpu", 2), ("ssd", 2)])).unwrap();
        assert_eq!(
            first,
            [
                named("gpu", "a"),
                named("gpu", "b"),
                GenericResource::parse("ssd=2").unwrap()
            ]
        );
        assert_eq!(
            generic_env(&first),
            ["DOCKER_RESOURCE_GPU=a,b", "DOCKER_RESOURCE_SSD=2"]
        );
        // What is taken is not given again.
        let second = claim_generic(&offers, &first, &want(&[("gpu", 1), ("ssd", 1)])).unwrap();
        assert_eq!(
            second,
            [named("gpu", "c"), GenericResource::parse("ssd=1").unwrap()]
        );
        let e = claim_generic(&offers, &first, &want(&[("gpu", 2)])).unwrap_err();
        assert_eq!(
            e,
            "insufficient generic resource gpu: the task reserves 2, the node has 1 free"
        );
        assert!(claim_generic(&offers, &[], &want(&[("fpga", 1)])).is_err());
        assert_eq!(generic_free(&offers, &[], "gpu"), 3);
        assert_eq!(generic_free(&offers, &first, "gpu"), 1);
        assert_eq!(generic_free(&offers, &first, "ssd"), 1);
        // A value offered twice is one resource, counted and claimed so.
        let twice = [named("gpu", "a"), named("gpu", "a")];
        assert_eq!(generic_free(&twice, &[], "gpu"), 1);
        assert!(claim_generic(&twice, &[], &want(&[("gpu", 2)])).is_err());
        assert_eq!(
            generic_env(&[named("NVIDIA-GPU", "GPU-1")]),
            ["DOCKER_RESOURCE_NVIDIA-GPU=GPU-1"]
        );
        // What a node may advertise.
        assert!(check_node_generic(&offers).is_ok());
        let parse = |l: &[&str]| -> Vec<GenericResource> {
            l.iter()
                .map(|s| GenericResource::parse(s).unwrap())
                .collect()
        };
        for (bad, why) in [
            (
                &["gpu=GPU-a", "gpu=2"][..],
                "both as named resources and as an amount",
            ),
            (&["ssd=2", "ssd=3"][..], "given twice as an amount"),
            (&["ssd=0"][..], "offers nothing"),
        ] {
            let e = check_node_generic(&parse(bad)).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
