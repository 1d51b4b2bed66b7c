//! The filters a node must pass to take a task, in the order they run.

use swarm_core::constraint::{Attribute, Constraint};
use swarm_core::model::{PlacementPreference, Platform, Protocol, PublishMode, Resources, Task};

use crate::cluster::Cluster;
use crate::plug::{Builtin, Filters};

/// What a batch of tasks asks of a node, parsed once per batch.
pub(crate) struct Requirements<'a> {
    /// A task of the batch, standing for all of them.
    pub task: &'a Task,
    /// The filters to run.
    pub filters: &'a Filters,
    /// The service the tasks belong to.
    pub service: &'a str,
    /// Constraints, all of which must hold.
    pub constraints: Vec<Constraint>,
    /// Spread descriptors, outermost first.
    pub spread: Vec<Attribute>,
    /// Platforms the tasks support; empty means any.
    pub platforms: &'a [Platform],
    /// CPU and memory reserved by each task.
    pub reservations: Resources,
    /// Generic resources reserved by each task, by kind.
    pub generic: &'a std::collections::BTreeMap<String, u64>,
    /// Host-mode published ports of each task, without duplicates.
    pub host_ports: Vec<(Protocol, u32)>,
    /// At most this many tasks of the service per node; 0 is unlimited.
    pub max_per_node: u64,
}

impl<'a> Requirements<'a> {
    /// The requirements of `task` under `filters`, or why its spec cannot
    /// be placed.
    pub fn of(task: &'a Task, filters: &'a Filters) -> Result<Self, String> {
        let placement = &task.spec.placement;
        let constraints =
            Constraint::parse_all(&placement.constraints).map_err(|e| e.to_string())?;
        let spread = placement
            .preferences
            .iter()
            .map(|p| {
                let PlacementPreference::Spread { descriptor } = p;
                descriptor
                    .parse::<Attribute>()
                    .map_err(|e| format!("invalid spread preference: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut host_ports = Vec::new();
        for p in &task.endpoint.ports {
            let port = (p.protocol, p.published_port);
            if p.publish_mode == PublishMode::Host
                && p.published_port != 0
                && !host_ports.contains(&port)
            {
                host_ports.push(port);
            }
        }
        Ok(Self {
            task,
            filters,
            service: task.service_id.as_str(),
            constraints,
            spread,
            platforms: &placement.platforms,
            reservations: task.spec.resources.reservations,
            generic: &task.spec.resources.generic,
            host_ports,
            max_per_node: placement.max_replicas_per_node,
        })
    }
}

/// Why a node cannot take a task: the first filter it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The node's state is not `ready`.
    NotReady,
    /// The node is drained.
    Drained,
    /// The node is paused.
    Paused,
    /// Not enough unreserved CPU, memory or generic resources.
    Resources,
    /// The constraint at this index of the requirements does not hold.
    Constraint(usize),
    /// The node's platform is not one of the supported ones.
    Platform,
    /// The host-mode port at this index of the requirements is taken.
    Port(usize),
    /// The node has `max_replicas_per_node` tasks of the service.
    MaxReplicas,
    /// The app's filter at this step of the chain turned it away.
    Custom(usize),
}

impl Cluster<'_> {
    /// Runs every filter on the node at `p` for a task of `req` that has
    /// `service_tasks` tasks there, in order, and says which failed first.
    #[inline]
    pub fn check(
        &self,
        p: usize,
        req: &Requirements<'_>,
        service_tasks: u32,
    ) -> Result<(), Rejection> {
        if req.filters.stock {
            for b in Builtin::ALL {
                self.check_builtin(b, p, req, service_tasks)?;
            }
            Ok(())
        } else {
            self.check_steps(p, req, service_tasks)
        }
    }

    /// Runs the built-in filter `b` on the node at `p`.
    #[inline(always)]
    pub fn check_builtin(
        &self,
        b: Builtin,
        p: usize,
        req: &Requirements<'_>,
        service_tasks: u32,
    ) -> Result<(), Rejection> {
        match b {
            Builtin::Ready => self.readiness(p),
            Builtin::Resources => {
                if self.available(p).fits(&req.reservations) && self.generic_fits(p, req) {
                    Ok(())
                } else {
                    Err(Rejection::Resources)
                }
            }
            Builtin::Constraints => match req
                .constraints
                .iter()
                .position(|c| !c.matches(&self.node(p).node))
            {
                Some(c) => Err(Rejection::Constraint(c)),
                None => Ok(()),
            },
            Builtin::Platforms => {
                if req.platforms.is_empty()
                    || req
                        .platforms
                        .iter()
                        .any(|w| platform_matches(w, &self.node(p).node.description.platform))
                {
                    Ok(())
                } else {
                    Err(Rejection::Platform)
                }
            }
            Builtin::HostPorts => match req.host_ports.iter().position(|&(proto, port)| {
                self.node(p).host_ports.contains(&(proto, port))
                    || self.port_taken(p, (proto, port))
            }) {
                Some(k) => Err(Rejection::Port(k)),
                None => Ok(()),
            },
            Builtin::MaxReplicas => {
                if req.max_per_node != 0 && u64::from(service_tasks) >= req.max_per_node {
                    Err(Rejection::MaxReplicas)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Whether a node's platform is `wanted`. An empty field of `wanted`
/// matches anything; OS and architecture compare without case, and the
/// architecture knows the aliases `x86_64` (`amd64`) and `aarch64` (`arm64`).
pub(crate) fn platform_matches(wanted: &Platform, node: &Platform) -> bool {
    let os = wanted.os.is_empty() || wanted.os.eq_ignore_ascii_case(&node.os);
    let arch = wanted.architecture.is_empty()
        || canonical_arch(&wanted.architecture)
            .eq_ignore_ascii_case(canonical_arch(&node.architecture));
    os && arch
}

/// Go's name for an architecture known under another name.
fn canonical_arch(arch: &str) -> &str {
    if arch.eq_ignore_ascii_case("x86_64") || arch.eq_ignore_ascii_case("x86-64") {
        "amd64"
    } else if arch.eq_ignore_ascii_case("aarch64") {
        "arm64"
    } else {
        arch
    }
}
