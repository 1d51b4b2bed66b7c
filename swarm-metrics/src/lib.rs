#![doc = include_str!("../README.md")]
//!
//! ## What a scrape holds
//!
//! Recorded as things happen (named in `swarm_core::metrics`, recorded by
//! swarm-core's loops and swarm-raft): scheduler decisions and latency, control-loop
//! runs and durations per loop, dispatcher sessions, heartbeats and
//! missed heartbeats, the task states workers report, raft's commit
//! latency, term, applied index and leader changes.
//!
//! Computed from the store at each scrape ([`store_gauges`]), on a
//! manager:
//!
//! | name | labels |
//! |---|---|
//! | `swarm_nodes` | `role`, `status`, `availability` |
//! | `swarm_tasks` | `service`, `state` |
//! | `swarm_service_replicas_desired`, `swarm_service_replicas_running` | `service` (as `service ls` counts) |
//! | `swarm_service_update_state` | `service`, `state` (1 for the update's state) |
//! | `swarm_service_update_tasks` | `service`, `template`: `current` or `outdated` (tasks wanted running) |
//! | `swarm_store_index` | |
//!
//! And the process's ([`process_figures`], Prometheus's standard names):
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_threads`,
//! `process_start_time_seconds`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State as Extract;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use swarm_core::model::TaskState;
use swarm_core::store::State;

/// Where the store's gauges come from: a manager's current state, or none
/// (a worker, or a manager that is locked or stopping: only the recorded
/// figures and the process's are served then).
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// The store's state now.
    async fn state(&self) -> Option<State>;
}

/// The recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// The process's Prometheus recorder and what renders a scrape.
pub struct Exporter {
    handle: PrometheusHandle,
}

/// Histogram buckets for durations, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

impl Exporter {
    /// Installs the process's recorder on first use (later calls answer
    /// the same exporter), with buckets for every `_seconds` histogram and
    /// the help texts of every swarm metric.
    ///
    /// # Errors
    /// If another `metrics` recorder is installed already.
    pub fn install() -> Result<&'static Self, InstallError> {
        if let Some(e) = EXPORTER.get() {
            return Ok(e);
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .map_err(|e| InstallError(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        // Two threads racing here: the loser's recorder is refused, and it
        // takes the winner's exporter.
        if metrics::set_global_recorder(recorder).is_err() {
            return EXPORTER.get().ok_or_else(|| {
                InstallError("another metrics recorder is installed in this process".into())
            });
        }
        describe();
        Ok(EXPORTER.get_or_init(|| Self { handle }))
    }

    /// One scrape: the recorded figures, the store's gauges of `state`
    /// (if any), and the process's.
    #[must_use]
    pub fn render(&self, state: Option<&State>) -> String {
        // Histograms' and summaries' upkeep, which render does too.
        self.handle.run_upkeep();
        let mut out = self.handle.render();
        if let Some(state) = state {
            store_gauges(state, &mut out);
        }
        process_figures(&mut out);
        out
    }
}

fn describe() {
    use swarm_core::metrics as m;
    let counters = [
        (
            m::SCHEDULER_DECISIONS,
            "Scheduling decisions made, by decision.",
        ),
        (m::LOOP_RUNS, "Control-loop runs, by loop."),
        (m::HEARTBEATS, "Heartbeats received from nodes."),
        (
            m::HEARTBEATS_MISSED,
            "Nodes marked down for missing their heartbeats.",
        ),
        (
            m::TASK_STATE_CHANGES,
            "Task states reported by workers, by state.",
        ),
        (m::RAFT_LEADER_CHANGES, "New raft leaders this member saw."),
    ];
    for (name, help) in counters {
        metrics::describe_counter!(name, metrics::Unit::Count, help);
    }
    let histograms = [
        (
            m::SCHEDULER_DURATION,
            "Time the scheduler took to place a batch of tasks.",
        ),
        (
            m::LOOP_DURATION,
            "Time each control-loop run took, by loop.",
        ),
        (
            m::RAFT_COMMIT_DURATION,
            "Time from a write's proposal on the leader to its commit.",
        ),
    ];
    for (name, help) in histograms {
        metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
    }
    let gauges = [
        (
            m::DISPATCHER_SESSIONS,
            "Workers' assignment sessions open on this manager.",
        ),
        (m::RAFT_TERM, "This raft member's current term."),
        (
            m::RAFT_APPLIED_INDEX,
            "The last raft log index applied to the store.",
        ),
        (
            m::RAFT_LAST_LOG_INDEX,
            "The last raft log index this member holds.",
        ),
        (
            m::RAFT_IS_LEADER,
            "1 while this member leads the raft group.",
        ),
    ];
    for (name, help) in gauges {
        metrics::describe_gauge!(name, help);
    }
}

/// Serves `GET /metrics` from `exporter`, with the store's gauges from
/// `source`.
pub fn router(exporter: &'static Exporter, source: Arc<dyn Source>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((exporter, source))
}

async fn scrape(
    Extract((exporter, source)): Extract<(&'static Exporter, Arc<dyn Source>)>,
) -> impl IntoResponse {
    let state = source.state().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exporter.render(state.as_ref()),
    )
}

/// A label value as the text format quotes it.
fn quoted(v: &str) -> String {
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// One gauge family: its help, its type, and its samples.
fn family(out: &mut String, name: &str, help: &str, samples: &[(Vec<(&str, &str)>, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", quoted(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

/// Appends the gauges of `state` to `out` (see the crate's docs).
pub fn store_gauges(state: &State, out: &mut String) {
    let mut nodes: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for n in state.nodes() {
        let key = (
            n.spec.role.to_string(),
            n.status.state.to_string(),
            n.spec.availability.to_string(),
        );
        *nodes.entry(key).or_default() += 1;
    }
    let samples: Vec<_> = nodes
        .iter()
        .map(|((r, s, a), n)| {
            (
                vec![
                    ("role", r.as_str()),
                    ("status", s.as_str()),
                    ("availability", a.as_str()),
                ],
                *n,
            )
        })
        .collect();
    family(
        out,
        "swarm_nodes",
        "Nodes by role, status and availability.",
        &samples,
    );

    let mut services: Vec<_> = state.services().collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let mut tasks: BTreeMap<(&str, &'static str), u64> = BTreeMap::new();
    let (mut desired, mut running, mut updates, mut templates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in &services {
        let name = s.spec.name.as_str();
        let (mut current, mut outdated) = (0, 0);
        for t in state.tasks_of_service(&s.meta.id) {
            *tasks.entry((name, t.status.state.as_str())).or_default() += 1;
            if t.desired_state == TaskState::Running {
                if s.is_current(t) {
                    current += 1;
                } else {
                    outdated += 1;
                }
            }
        }
        let (r, d) = state.replicas(s);
        desired.push((vec![("service", name)], d));
        running.push((vec![("service", name)], r));
        if let Some(u) = &s.update_status {
            updates.push((vec![("service", name), ("state", u.state.as_str())], 1));
        }
        templates.push((vec![("service", name), ("template", "current")], current));
        templates.push((vec![("service", name), ("template", "outdated")], outdated));
    }
    let samples: Vec<_> = tasks
        .iter()
        .map(|((svc, st), n)| (vec![("service", *svc), ("state", *st)], *n))
        .collect();
    family(
        out,
        "swarm_tasks",
        "Tasks in the store by service and current state.",
        &samples,
    );
    family(
        out,
        "swarm_service_replicas_desired",
        "Replicas a service wants (a global service: its tasks wanted running).",
        &desired,
    );
    family(
        out,
        "swarm_service_replicas_running",
        "A service's tasks running and wanted running.",
        &running,
    );
    family(
        out,
        "swarm_service_update_state",
        "1 for the state of a service's last update or rollback.",
        &updates,
    );
    family(
        out,
        "swarm_service_update_tasks",
        "A service's tasks wanted running, on its current template or an outdated one.",
        &templates,
    );
    family(
        out,
        "swarm_store_index",
        "The store's last committed index.",
        &[(Vec::new(), state.index())],
    );
}

/// Appends the process's CPU, memory, file and thread figures (from
/// `/proc/self`; nothing where there is no procfs).
pub fn process_figures(out: &mut String) {
    let Some(p) = read_proc() else {
        return;
    };
    let mut line = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    line(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        p.cpu_seconds,
    );
    line(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size, in bytes.",
        p.rss_bytes,
    );
    line(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size, in bytes.",
        p.vsize_bytes,
    );
    line(
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        p.open_fds,
    );
    line("process_threads", "gauge", "OS threads.", p.threads);
    line(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
        p.start_time,
    );
}

struct Proc {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    open_fds: f64,
    threads: f64,
    start_time: f64,
}

/// Linux's clock ticks per second for `/proc/*/stat` (USER_HZ, 100 on
/// every architecture Linux runs on today).
const TICKS: f64 = 100.0;

#[allow(clippy::cast_precision_loss)] // figures far below 2^53
fn read_proc() -> Option<Proc> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command may hold spaces and parentheses: fields start after the
    // last `)`, with the state, which is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let (utime, stime) = (field(14)?, field(15)?);
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count) as f64;
    Some(Proc {
        cpu_seconds: (utime + stime) / TICKS,
        rss_bytes: rss_kib * 1024.0,
        vsize_bytes: vsize,
        open_fds,
        threads,
        start_time: boot + start_ticks / TICKS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_core::store::{MemoryStore, Store};

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"))
    }

    #[tokio::test]
    async fn a_scrape_parses_and_counts_what_was_recorded() {
        let exporter = Exporter::install().unwrap();
        assert!(std::ptr::eq(exporter, Exporter::install().unwrap()));
        swarm_core::metrics::heartbeat();
        swarm_core::metrics::loop_ran("test-loop", std::time::Duration::from_millis(3));
        let store = MemoryStore::new();
        let state = store.state().await.unwrap();
        let text = exporter.render(Some(&state));
        let scrape = parse(&text);
        let value = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| s.value.clone())
        };
        assert!(
            matches!(value("swarm_dispatcher_heartbeats_total"), Some(prometheus_parse::Value::Counter(n)) if n >= 1.0),
            "{text}"
        );
        assert!(
            matches!(
                value("swarm_store_index"),
                Some(prometheus_parse::Value::Gauge(_))
            ),
            "{text}"
        );
        assert!(
            matches!(value("process_resident_memory_bytes"), Some(prometheus_parse::Value::Gauge(n)) if n > 1e6),
            "{text}"
        );
        assert!(
            text.contains(
                "swarm_control_loop_duration_seconds_bucket{loop=\"test-loop\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
