//! Seeing the swarm: `swarmctl events` on a real daemon (live, in order,
//! and replayed with `--since`), and its JSON logs.

use std::io::BufRead as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use swarm_examples::daemons::Daemons;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

/// The JSON lines a child prints, as they come.
fn lines(child: &mut std::process::Child) -> mpsc::Receiver<Value> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    rx
}

/// `(action, replicas.new)` of service events.
fn summary(e: &Value) -> (String, String) {
    let attr = |k: &str| {
        e["Actor"]["Attributes"][k]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    (
        e["Action"].as_str().unwrap().to_owned(),
        attr("replicas.new"),
    )
}

#[test]
fn events_stream_as_they_happen_and_replay_since() {
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &[
            "--heartbeat-period",
            "250ms",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
    );
    d.init("m1");
    d.wait("a ready node", Duration::from_secs(30), || {
        d.nodes("m1").values().any(|(s, _)| s == "ready")
    });
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let since = format!("{}.{:09}", t0.as_secs(), t0.subsec_nanos());
    let mut live = d.ctl_spawn(
        "m1",
        &["events", "--filter", "type=service", "--format", "json"],
    );
    let rx = lines(&mut live);
    let mut tasks = d.ctl_spawn(
        "m1",
        &[
            "events",
            "-f",
            "type=task",
            "-f",
            "service=web",
            "--format",
            "json",
        ],
    );
    let task_rx = lines(&mut tasks);
    // The service stream is open once it shows a probe's creation.
    let probe = d.marker();
    let started = std::time::Instant::now();
    let mut open = false;
    while !open && started.elapsed() < Duration::from_secs(20) {
        let name = format!("probe-{}", started.elapsed().as_millis());
        d.ctl_ok(
            "m1",
            &[
                "service", "create", "--detach", "--name", &name, "sleep", &probe,
            ],
        );
        open = rx.recv_timeout(Duration::from_secs(2)).is_ok();
    }
    assert!(open, "the event stream never opened");

    let marker = d.marker();
    let mut seen = Vec::new();
    let mut next = |what: &str| loop {
        let e = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no event for {what}; seen {seen:?}"));
        assert_eq!(e["Type"], "service", "{e}");
        if e["Actor"]["Attributes"]["name"] != "web" {
            continue; // the probes' own
        }
        seen.push(summary(&e));
        return summary(&e);
    };
    d.ctl_ok(
        "m1",
        &[
            "service", "create", "--detach", "--name", "web", "sleep", &marker,
        ],
    );
    assert_eq!(next("create").0, "create");
    d.ctl_ok("m1", &["service", "scale", "--detach", "web=2"]);
    // The allocator's own writes come as updates too; the scale says 2.
    while next("the scale") != ("update".to_owned(), "2".to_owned()) {}
    d.ctl_ok("m1", &["service", "rm", "web"]);
    while next("the removal").0 != "remove" {}
    let live_seen = seen.clone();

    // Task events came only on the stream that asked for them.
    let task = task_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(task["Type"], "task", "{task}");
    assert_eq!(task["Actor"]["Attributes"]["service"], "web", "{task}");
    for mut child in [live, tasks] {
        let _ = child.kill();
        let _ = child.wait();
    }

    // --since replays the same events, in the same order, and --until ends
    // the stream.
    let replay = |more: &[&str]| {
        let mut args = vec!["events", "--since", &since, "--until", "0s"];
        args.extend_from_slice(more);
        d.ctl_ok("m1", &args)
    };
    let out = replay(&["-f", "type=service", "-f", "name=web", "--format", "json"]);
    let replayed: Vec<(String, String)> = out
        .lines()
        .map(|l| summary(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(replayed, live_seen, "{out}");

    // Docker's line format.
    let text = replay(&["-f", "event=create", "-f", "service=web"]);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains(" service create ") && first.ends_with("(name=web)"),
        "{text}"
    );

    // The daemon's log is JSON lines, each with the node's id once it has
    // one, and the task runtime's lines with the task's.
    let node_id = d.json("m1", &["node", "inspect", "m1"])["meta"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = std::fs::read_to_string(d.data("m1").with_extension("log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["msg"].is_string() && l["time"].is_string())
    );
    let started = lines
        .iter()
        .find(|l| l["msg"] == "started" && l["task_id"].is_string())
        .unwrap_or_else(|| panic!("no task's start in the log:\n{log}"));
    assert_eq!(started["node_id"], node_id.as_str(), "{started}");

    // A bad filter is named.
    let bad = d.ctl_at("m1", &["events", "-f", "type=container"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("invalid event type \"container\""), "{err}");
}

/// `GET path` of a plain HTTP server: the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

struct Scrape {
    text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    fn of(addr: &str) -> Self {
        let text = http_get(addr, "/metrics");
        let samples = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"))
            .samples;
        Self { text, samples }
    }

    /// The value of `name` with `labels` (counters, gauges).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }
}

/// `service ls`'s REPLICAS of `name`: (running, desired).
fn replicas(d: &Daemons, name: &str) -> (f64, f64) {
    let table = d.ctl_ok("m1", &["service", "ls"]);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{table}"));
    let (r, w) = row
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split_once('/')
        .unwrap();
    (r.parse().unwrap(), w.parse().unwrap())
}

#[test]
fn metrics_match_service_ls_and_count_as_tasks_start() {
    let port = swarm_examples::daemons::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms", "--metrics-addr", &addr],
    );
    d.init("m1");
    let marker = d.marker();
    d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "2",
            "sleep",
            &marker,
        ],
    );
    let gauges = |m: &Scrape| {
        let web = [("service", "web")];
        (
            m.value("swarm_service_replicas_running", &web).unwrap(),
            m.value("swarm_service_replicas_desired", &web).unwrap(),
        )
    };
    let before = Scrape::of(&addr);
    assert_eq!(gauges(&before), replicas(&d, "web"), "{}", before.text);
    assert_eq!(gauges(&before), (2.0, 2.0));
    let started = |m: &Scrape| {
        m.value("swarm_task_state_changes_total", &[("state", "running")])
            .unwrap_or(0.0)
    };
    assert!(started(&before) >= 2.0, "{}", before.text);

    d.ctl_ok("m1", &["service", "scale", "web=4"]);
    let after = Scrape::of(&addr);
    assert_eq!(gauges(&after), replicas(&d, "web"), "{}", after.text);
    assert_eq!(gauges(&after), (4.0, 4.0));
    assert!(started(&after) >= started(&before) + 2.0, "{}", after.text);
    let assigned = |m: &Scrape| {
        m.value("swarm_scheduler_decisions_total", &[("decision", "assign")])
            .unwrap_or(0.0)
    };
    assert!(assigned(&after) >= 4.0 && assigned(&after) > assigned(&before));
    let m = &after;
    assert_eq!(
        m.value(
            "swarm_nodes",
            &[
                ("role", "manager"),
                ("status", "ready"),
                ("availability", "active")
            ]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.value("swarm_tasks", &[("service", "web"), ("state", "running")]),
        Some(4.0)
    );
    assert_eq!(m.value("swarm_raft_is_leader", &[]), Some(1.0));
    assert!(m.value("swarm_raft_term", &[]).unwrap() >= 1.0);
    assert!(m.value("swarm_raft_applied_index", &[]).unwrap() > 0.0);
    assert!(m.value("swarm_raft_leader_changes_total", &[]).unwrap() >= 1.0);
    assert!(m.value("swarm_dispatcher_sessions", &[]).unwrap() >= 1.0);
    assert!(m.value("swarm_dispatcher_heartbeats_total", &[]).unwrap() >= 1.0);
    assert!(
        m.value("swarm_control_loop_runs_total", &[("loop", "scheduler")])
            .unwrap()
            >= 1.0,
        "{}",
        m.text
    );
    for histogram in [
        "swarm_raft_commit_duration_seconds_bucket",
        "swarm_scheduler_duration_seconds_bucket",
        "swarm_control_loop_duration_seconds_bucket",
    ] {
        assert!(m.text.contains(histogram), "no {histogram}:\n{}", m.text);
    }
    assert!(m.value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert_eq!(
        m.value(
            "swarm_service_update_tasks",
            &[("service", "web"), ("template", "outdated")]
        ),
        Some(0.0)
    );

    // Prometheus's own linter, where it is installed (CI installs it).
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match promtool {
        Ok(mut child) => {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(m.text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool is not installed: its check is skipped");
        }
        Err(e) => panic!("promtool: {e} (CI installs Debian's prometheus package)"),
    }
}
