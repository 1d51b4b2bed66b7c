//! Grouping the tasks of one call into batches placed together.

use std::collections::HashMap;
use std::sync::Arc;

use swarm_core::model::Task;

/// Tasks of one service whose placement requirements are identical.
pub(crate) struct Batch<'a> {
    /// A task of the batch, standing for all of them.
    pub first: &'a Task,
    /// Positions of the batch's tasks in the caller's slice, in order.
    pub tasks: Vec<u32>,
}

/// The batches of one service, which share the per-node counts of the
/// service's tasks.
pub(crate) struct ServiceBatches<'a> {
    /// The service's batches, in order of first appearance.
    pub batches: Vec<Batch<'a>>,
}

/// Whether two tasks are placed alike: same service, and the same
/// placement, reservations and published ports (other fields, such as the
/// image, do not matter to the scheduler).
fn placed_alike(a: &Task, b: &Task) -> bool {
    let (sa, sb) = (a.service_id.as_str(), b.service_id.as_str());
    (std::ptr::eq(sa, sb) || sa == sb)
        && (Arc::ptr_eq(&a.spec, &b.spec)
            || (a.spec.placement == b.spec.placement
                && a.spec.resources.reservations == b.spec.resources.reservations
                && a.spec.resources.generic == b.spec.resources.generic))
        && (Arc::ptr_eq(&a.endpoint, &b.endpoint) || a.endpoint.ports == b.endpoint.ports)
}

/// Groups `tasks` by service, then by placement requirements. Services come
/// in order of first appearance, and so do batches within a service.
pub(crate) fn group(tasks: &[Arc<Task>]) -> Vec<ServiceBatches<'_>> {
    let mut services: Vec<ServiceBatches<'_>> = Vec::new();
    let mut by_service: HashMap<&str, usize> = HashMap::new();
    // Tasks usually come in runs of one service: try the last batch first.
    let mut last: Option<(usize, usize)> = None;
    for (pos, task) in tasks.iter().enumerate() {
        let pos = u32::try_from(pos).expect("fewer than 2^32 tasks per call");

        if let Some((s, b)) = last {
            let batch = &mut services[s].batches[b];
            if placed_alike(batch.first, task) {
                batch.tasks.push(pos);
                continue;
            }
        }
        let s = *by_service
            .entry(task.service_id.as_str())
            .or_insert_with(|| {
                services.push(ServiceBatches {
                    batches: Vec::new(),
                });
                services.len() - 1
            });
        let batches = &mut services[s].batches;
        let b = match batches.iter().position(|b| placed_alike(b.first, task)) {
            Some(b) => b,
            None => {
                batches.push(Batch {
                    first: task,
                    tasks: Vec::new(),
                });
                batches.len() - 1
            }
        };
        batches[b].tasks.push(pos);
        last = Some((s, b));
    }
    services
}
