//! Docker-like tables of services, tasks, nodes and the rest.

use std::fmt::Write as _;
use std::time::SystemTime;

use swarm_core::model::{Service, ServiceMode, ServiceSpec};
use swarm_core::store::State;

/// Rows aligned as docker's tab writer aligns them: each column as wide as
/// its widest cell plus 3 spaces, and at least 10; the last unpadded.
#[must_use]
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = (widths[i] + 3).max(10);
                let _ = write!(line, "{cell:<width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    match secs {
        0 => "less than a second ago".into(),
        1 => "1 second ago".into(),
        s if s < 120 => format!("{s} seconds ago"),
        s => format!("{} minutes ago", s / 60),
    }
}

/// `t` as docker prints log timestamps: RFC 3339 in UTC, with up to
/// nanoseconds (`2026-11-24T07:34:20.123456789Z`).
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// `service ls`: ID, NAME, MODE, REPLICAS, IMAGE.
#[must_use]
pub fn services(state: &State) -> String {
    let mut rows = Vec::new();
    let mut list: Vec<_> = state.services().collect();
    list.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for s in list {
        let (running, want) = state.replicas(s);
        let mode = match s.spec.mode {
            ServiceMode::Replicated { .. } => "replicated",
            ServiceMode::Global => "global",
        };
        rows.push(vec![
            s.meta.id.short().to_owned(),
            s.spec.name.clone(),
            mode.to_owned(),
            format!("{running}/{want}"),
            s.spec.task.image.clone(),
        ]);
    }
    render(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE"], &rows)
}

const TASK_HEADER: [&str; 7] = [
    "ID",
    "NAME",
    "IMAGE",
    "NODE",
    "DESIRED STATE",
    "CURRENT STATE",
    "ERROR",
];

/// `service ps`: ID, NAME, IMAGE, NODE, DESIRED STATE, CURRENT STATE, ERROR.
#[must_use]
pub fn tasks(state: &State, service: &str) -> String {
    let mut rows = Vec::new();
    if let Some(s) = state
        .service_by_name(service)
        .or_else(|| state.service(service))
    {
        task_rows(state, s, &mut rows);
    }
    render(&TASK_HEADER, &rows)
}

/// `stack ps`: the tasks of every service in `state` (a stack's), in
/// `service ps`'s columns, by service name.
#[must_use]
pub fn all_tasks(state: &State) -> String {
    let mut rows = Vec::new();
    let mut list: Vec<_> = state.services().collect();
    list.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for s in list {
        task_rows(state, s, &mut rows);
    }
    render(&TASK_HEADER, &rows)
}

fn task_rows(state: &State, s: &Service, rows: &mut Vec<Vec<String>>) {
    let mut list: Vec<_> = state.tasks_of_service(&s.meta.id).collect();
    list.sort_by(|a, b| {
        (a.slot, std::cmp::Reverse(a.meta.created_at))
            .cmp(&(b.slot, std::cmp::Reverse(b.meta.created_at)))
    });
    let mut last_slot = None;
    for t in list {
        let name = if last_slot == Some(t.slot) && t.slot > 0 {
            format!(" \\_ {}", t.name())
        } else {
            t.name()
        };
        last_slot = Some(t.slot);
        let node = t
            .node_id
            .as_ref()
            .map(|n| {
                state
                    .node(n)
                    .map_or_else(|| n.short().to_owned(), |n| n.display_name().to_owned())
            })
            .unwrap_or_default();
        let current = format!(
            "{} {}",
            capitalise(t.status.state.as_str()),
            ago(t.status.timestamp)
        );
        rows.push(vec![
            t.meta.id.short().to_owned(),
            name,
            t.spec.image.clone(),
            node,
            capitalise(t.desired_state.as_str()),
            current,
            t.status.err.clone().unwrap_or_default(),
        ]);
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `service history`: the service's revisions, oldest first, each with
/// what changed from the one before.
#[must_use]
pub fn history(s: &Service) -> String {
    let mut out = Vec::new();
    let mut before: Option<&ServiceSpec> = None;
    let rows = s
        .history
        .iter()
        .map(|h| (h.revision, &h.spec, Some(h.replaced_at)))
        .chain(std::iter::once((s.revision(), &s.spec, None)));
    for (revision, spec, replaced) in rows {
        let when = replaced.map_or_else(|| "(current)".to_owned(), ago);
        out.push(vec![
            revision.to_string(),
            spec.task.image.clone(),
            when,
            before.map_or_else(|| "-".to_owned(), |b| change(b, spec)),
        ]);
        before = Some(spec);
    }
    render(&["REVISION", "IMAGE", "REPLACED", "CHANGE"], &out)
}

/// What differs between two specs, in a few words.
fn change(a: &ServiceSpec, b: &ServiceSpec) -> String {
    let mut what = Vec::new();
    if a.task.image != b.task.image {
        what.push(format!("image {}", b.task.image));
    }
    if a.mode != b.mode {
        what.push(match b.mode {
            swarm_core::model::ServiceMode::Replicated { replicas } => {
                format!("replicas {replicas}")
            }
            swarm_core::model::ServiceMode::Global => "global".into(),
        });
    }
    if a.task.args != b.task.args || a.task.command != b.task.command {
        what.push("args".into());
    }
    if a.task.env != b.task.env {
        what.push("env".into());
    }
    if a.task.force_update != b.task.force_update {
        what.push("forced".into());
    }
    if a.endpoint != b.endpoint {
        what.push("ports".into());
    }
    if a.task.secrets != b.task.secrets || a.task.configs != b.task.configs {
        what.push("secrets/configs".into());
    }
    if a.update != b.update || a.rollback != b.rollback {
        what.push("rollout settings".into());
    }
    if what.is_empty() {
        what.push(if a.task != b.task {
            "task settings".into()
        } else {
            "labels".into()
        });
    }
    what.join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_as_docker_aligns_them() {
        let rows = [
            vec![
                "a".into(),
                "swarm-test/tools:5b93c518c7d175e0".into(),
                "w2".into(),
            ],
            vec!["b".into(), "x".into(), String::new()],
        ];
        assert_eq!(
            render(&["ID", "IMAGE", "NODE"], &rows),
            "ID        IMAGE                               NODE\na         swarm-test/tools:5b93c518c7d175e0   w2\nb         x\n"
        );
    }

    #[test]
    fn timestamps_print_as_docker_prints_them() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(1_795_501_297, 5)),
            "2026-11-24T06:21:37.000000005Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
