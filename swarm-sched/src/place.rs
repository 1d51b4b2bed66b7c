//! One scheduling pass: batches, eligible nodes, placements, decisions.

use std::sync::Arc;

use swarm_core::Id;
use swarm_core::model::Task;
use swarm_core::sched::{Decision, NodeInfo};

use crate::SchedulerConfig;
use crate::batch::{self, Batch};
use crate::cluster::Cluster;
use crate::filter::Requirements;
use crate::heap::Heap;
use crate::memo::Memo;
use crate::order::{LoadOrder, ServiceNodes};
use crate::plug::{Filters, Ranking};
use crate::reason::Tally;
use crate::spread::{Columns, Tree};

/// What became of a task, by position.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Undecided,
    /// Assigned to the node at this position (in id order).
    Node(u32),
    /// Unplaceable, for the reason at this index.
    Unplaceable(u32),
}

/// What one call accumulates.
struct Pass<'a> {
    config: &'a SchedulerConfig,
    filters: &'a Filters,
    ranking: &'a Ranking,
    cluster: Cluster<'a>,
    /// Spread attribute values, once a batch needs them.
    columns: Columns,
    /// Ready nodes by load, once a batch needs them.
    order: Option<LoadOrder>,
    /// Nodes by the services they have tasks of, once a batch needs them.
    service_nodes: Option<ServiceNodes<'a>>,
    /// Per position, the number of the last batch that ranked the node on
    /// its own.
    seen: Vec<u32>,
    /// The number of the current batch.
    batch_number: u32,
    outcomes: Vec<Outcome>,
    reasons: Vec<String>,
}

/// Decides every task of `tasks`, in their order, bringing `memo` up to
/// `nodes`.
pub(crate) fn schedule(
    config: &SchedulerConfig,
    filters: &Filters,
    ranking: &Ranking,
    memo: &mut Memo,
    nodes: &[NodeInfo],
    tasks: &[Arc<Task>],
) -> Vec<Decision> {
    if tasks.is_empty() {
        return Vec::new();
    }
    let services = batch::group(tasks);
    let mut pass = Pass {
        config,
        filters,
        ranking,
        cluster: Cluster::new(nodes, memo),
        columns: Columns::default(),
        order: None,
        service_nodes: None,
        seen: Vec::new(),
        batch_number: 0,
        outcomes: vec![Outcome::Undecided; tasks.len()],
        reasons: Vec::new(),
    };
    for service in &services {
        pass.cluster.next_service();
        for batch in &service.batches {
            pass.place_batch(batch);
        }
    }
    let Pass {
        cluster,
        outcomes,
        reasons,
        ..
    } = pass;
    // Node ids by position, gathered once rather than per decision when
    // the tasks outnumber the nodes; otherwise each decision reads its own
    // node's id, and a small call does not read every node.
    let node_ids: Vec<&Id> = if tasks.len() > cluster.len() {
        (0..cluster.len())
            .map(|p| &cluster.node(p).node.meta.id)
            .collect()
    } else {
        Vec::new()
    };
    let node_id = |p: u32| match node_ids.get(p as usize) {
        Some(id) => (*id).clone(),
        None => cluster.node(p as usize).node.meta.id.clone(),
    };
    tasks
        .iter()
        .zip(outcomes)
        .map(|(task, outcome)| {
            let task = task.meta.id.clone();
            match outcome {
                Outcome::Node(p) => Decision::Assign {
                    task,
                    node: node_id(p),
                },
                Outcome::Unplaceable(r) => Decision::Unplaceable {
                    task,
                    reason: reasons[r as usize].clone(),
                },
                Outcome::Undecided => unreachable!("every batch decides each of its tasks"),
            }
        })
        .collect()
}

impl Pass<'_> {
    /// Places the tasks of one batch, one by one, on the best-ranked node
    /// that passes the filters; the tasks left when no node does get the
    /// reason why.
    fn place_batch(&mut self, batch: &Batch<'_>) {
        let spreading = self.ranking.is_spread();
        match Requirements::of(batch.first, self.filters) {
            Ok(req) if req.spread.is_empty() && spreading => self.place_by_load(batch, &req),
            Ok(req) if req.spread.is_empty() => self.place_ranked(batch, &req),
            Ok(req) => self.place_spread(batch, &req),
            Err(why) => give_up(&mut self.outcomes, &mut self.reasons, batch, 0, why),
        }
    }

    /// With a ranking other than the stock one: every eligible node in one
    /// heap by its rank, ranked again after each task it takes.
    fn place_ranked(&mut self, batch: &Batch<'_>, req: &Requirements<'_>) {
        let max_failures = self.config.max_failures;
        let ranking = self.ranking;
        let cluster = &self.cluster;
        let eligible: Vec<_> = cluster
            .ready()
            .iter()
            .filter_map(|&p| {
                let p = p as usize;
                cluster
                    .check(p, req, cluster.service_tasks(p, req.service))
                    .ok()?;
                Some(cluster.ranked_key(p, req, max_failures, ranking))
            })
            .collect();
        let mut heap = Heap::from_vec(eligible);
        let layout = self.cluster.layout;
        for (k, &t) in batch.tasks.iter().enumerate() {
            let Some(key) = heap.peek() else {
                let reason = Tally::of(&self.cluster, req).reason(req);
                return give_up(&mut self.outcomes, &mut self.reasons, batch, k, reason);
            };
            let p = layout.position(key) as usize;
            if self.cluster.settle(p, req) {
                heap.replace_top(self.cluster.ranked_key(p, req, max_failures, ranking));
            } else {
                heap.pop();
            }
            self.outcomes[t as usize] = Outcome::Node(p as u32);
        }
    }

    /// Without spread preferences: one heap of nodes, holding at first the
    /// eligible nodes that have tasks or failures of the service, and
    /// drawing the others from the load order as they come to rank first
    /// (see [`crate::order`]).
    fn place_by_load(&mut self, batch: &Batch<'_>, req: &Requirements<'_>) {
        let Pass {
            config,
            cluster,
            order,
            service_nodes,
            seen,
            batch_number,
            outcomes,
            reasons,
            ..
        } = self;
        let order = match order {
            Some(order) => {
                order.update(cluster);
                order
            }
            None => order.insert(LoadOrder::new(cluster)),
        };
        let service_nodes = service_nodes.get_or_insert_with(|| ServiceNodes::new(cluster));
        if seen.is_empty() {
            *seen = vec![0; cluster.len()];
        }
        *batch_number += 1;
        let stamp = *batch_number;

        // The nodes that rank on their own: those with tasks or failures of
        // the service, before or in this call.
        let mut own = Vec::new();
        for &p in service_nodes
            .of(req.service)
            .iter()
            .chain(cluster.touched())
        {
            let p = p as usize;
            if seen[p] == stamp {
                continue;
            }
            seen[p] = stamp;
            let service_tasks = cluster.service_tasks(p, req.service);
            if cluster.check(p, req, service_tasks).is_ok() {
                own.push(cluster.key(p, req, service_tasks, config.max_failures));
            }
        }
        let mut heap = Heap::from_vec(own);
        let layout = cluster.layout;
        let mut others = order.iter();
        let mut next_other = None;
        for (k, &t) in batch.tasks.iter().enumerate() {
            // Draw from the load order while its next eligible node ranks
            // before every node in the heap.
            loop {
                if next_other.is_none() {
                    next_other = others.by_ref().find_map(|(total, p)| {
                        let p = p as usize;
                        (seen[p] != stamp && cluster.check(p, req, 0).is_ok())
                            .then(|| layout.key(false, 0, total, p as u32))
                    });
                }
                match next_other {
                    Some(other) if heap.peek().is_none_or(|top| other < top) => {
                        heap.push(other);
                        next_other = None;
                    }
                    _ => break,
                }
            }
            let Some(key) = heap.peek() else {
                let reason = Tally::of(cluster, req).reason(req);
                return give_up(outcomes, reasons, batch, k, reason);
            };
            let p = layout.position(key);
            if cluster.settle(p as usize, req) {
                heap.replace_top(layout.bump(key));
            } else {
                heap.pop();
            }
            outcomes[t as usize] = Outcome::Node(p);
        }
    }

    /// With spread preferences: every eligible node in a [`Tree`].
    fn place_spread(&mut self, batch: &Batch<'_>, req: &Requirements<'_>) {
        for attribute in &req.spread {
            self.columns.load(attribute, &self.cluster);
        }
        let levels: Vec<_> = req.spread.iter().map(|a| self.columns.get(a)).collect();
        let cluster = &self.cluster;
        let max_failures = self.config.max_failures;
        let ranking = self.ranking;
        let spreading = ranking.is_spread();
        let eligible = cluster.ready().iter().filter_map(|&p| {
            let p = p as usize;
            let service_tasks = cluster.service_tasks(p, req.service);
            cluster.check(p, req, service_tasks).ok()?;
            let key = if spreading {
                cluster.key(p, req, service_tasks, max_failures)
            } else {
                cluster.ranked_key(p, req, max_failures, ranking)
            };
            Some((p, key, service_tasks))
        });
        let mut tree = Tree::build(&levels, eligible);
        let layout = cluster.layout;
        for (k, &t) in batch.tasks.iter().enumerate() {
            let cluster = &mut self.cluster;
            let mut chosen = 0;
            let picked = tree.pick(|key| {
                chosen = layout.position(key);
                let p = chosen as usize;
                if !cluster.settle(p, req) {
                    return None;
                }
                Some(if spreading {
                    layout.bump(key)
                } else {
                    cluster.ranked_key(p, req, max_failures, ranking)
                })
            });
            if picked.is_none() {
                let reason = Tally::of(&self.cluster, req).reason(req);
                return give_up(&mut self.outcomes, &mut self.reasons, batch, k, reason);
            }
            self.outcomes[t as usize] = Outcome::Node(chosen);
        }
    }
}

/// Marks the tasks of `batch` from the `from`th on unplaceable.
fn give_up(
    outcomes: &mut [Outcome],
    reasons: &mut Vec<String>,
    batch: &Batch<'_>,
    from: usize,
    reason: String,
) {
    let r = Outcome::Unplaceable(reasons.len() as u32);
    reasons.push(reason);
    for &t in &batch.tasks[from..] {
        outcomes[t as usize] = r;
    }
}
