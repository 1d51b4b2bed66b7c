//! Why a task cannot be placed, for humans.

use std::fmt::Write;

use crate::cluster::Cluster;
use crate::filter::{Rejection, Requirements};

/// How many nodes each filter turned away, counting each node once, under
/// the first filter it failed.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    nodes: usize,
    not_ready: usize,
    drained: usize,
    paused: usize,
    resources: usize,
    /// Per constraint of the requirements.
    constraints: Vec<usize>,
    platform: usize,
    /// Per host-mode port of the requirements.
    ports: Vec<usize>,
    max_replicas: usize,
    /// Per step of the filter chain, for the app's filters.
    custom: Vec<usize>,
}

impl Tally {
    /// Runs the filters on every node of `cluster` as it is now (the first
    /// filter, readiness, is counted once per call by the cluster).
    pub fn of(cluster: &Cluster<'_>, req: &Requirements<'_>) -> Self {
        let unready = cluster.unready();
        let mut t = Tally {
            nodes: cluster.len(),
            not_ready: unready.not_ready,
            drained: unready.drained,
            paused: unready.paused,
            constraints: vec![0; req.constraints.len()],
            ports: vec![0; req.host_ports.len()],
            custom: vec![0; req.filters.steps.len()],
            ..Tally::default()
        };
        for &p in cluster.ready() {
            let p = p as usize;
            let Err(why) = cluster.check(p, req, cluster.service_tasks(p, req.service)) else {
                continue;
            };
            match why {
                Rejection::NotReady | Rejection::Drained | Rejection::Paused => {
                    unreachable!("only ready nodes are checked")
                }
                Rejection::Resources => t.resources += 1,
                Rejection::Constraint(c) => t.constraints[c] += 1,
                Rejection::Platform => t.platform += 1,
                Rejection::Port(p) => t.ports[p] += 1,
                Rejection::MaxReplicas => t.max_replicas += 1,
                Rejection::Custom(k) => t.custom[k] += 1,
            }
        }
        t
    }

    /// The reason: `no suitable node (constraint node.labels.type==web not
    /// satisfied on 3 nodes; 1 node drained)`, naming each filter that
    /// turned nodes away, in filter order.
    pub fn reason(&self, req: &Requirements<'_>) -> String {
        if self.nodes == 0 {
            return "no suitable node (no nodes in the cluster)".to_owned();
        }
        let mut parts: Vec<String> = Vec::new();
        let mut part = |n: usize, text: &dyn Fn(&str) -> String| {
            if n > 0 {
                parts.push(text(&nodes(n)));
            }
        };
        part(self.not_ready, &|n| format!("{n} not ready"));
        part(self.drained, &|n| format!("{n} drained"));
        part(self.paused, &|n| format!("{n} paused"));
        part(self.resources, &|n| {
            format!("insufficient resources on {n}")
        });
        for (c, &count) in req.constraints.iter().zip(&self.constraints) {
            part(count, &|n| format!("constraint {c} not satisfied on {n}"));
        }
        part(self.platform, &|n| format!("unsupported platform on {n}"));
        for ((proto, port), &count) in req.host_ports.iter().zip(&self.ports) {
            part(count, &|n| {
                format!("host-mode port {port}/{proto} in use on {n}")
            });
        }
        part(self.max_replicas, &|n| {
            format!(
                "max replicas per node ({}) reached on {n}",
                req.max_per_node
            )
        });
        for (step, &count) in req.filters.steps.iter().zip(&self.custom) {
            if let (crate::plug::Step::Custom(f), true) = (step, count > 0) {
                parts.push(f.explain(req.task, &nodes(count)));
            }
        }
        let mut out = String::from("no suitable node (");
        for (k, p) in parts.iter().enumerate() {
            if k > 0 {
                out.push_str("; ");
            }
            out.push_str(p);
        }
        if parts.is_empty() {
            // Every node passed every filter: cannot happen when the caller
            // asks after running out of nodes, but say something true.
            let _ = write!(out, "{} considered", nodes(self.nodes));
        }
        out.push(')');
        out
    }
}

/// `1 node`, `2 nodes`.
fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_owned()
    } else {
        format!("{n} nodes")
    }
}
