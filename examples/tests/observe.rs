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
    // The streams are open once a write made before them is not shown.
    std::thread::sleep(Duration::from_millis(500));

    let marker = d.marker();
    let mut seen = Vec::new();
    let mut next = |what: &str| {
        let e = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no event for {what}; seen {seen:?}"));
        assert_eq!(e["Type"], "service", "{e}");
        assert_eq!(e["Actor"]["Attributes"]["name"], "web", "{e}");
        seen.push(summary(&e));
        summary(&e)
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
    let _ = live.kill();
    let _ = tasks.kill();

    // --since replays the same events, in the same order, and --until ends
    // the stream.
    let replay = |more: &[&str]| {
        let mut args = vec!["events", "--since", &since, "--until", "0s"];
        args.extend_from_slice(more);
        d.ctl_ok("m1", &args)
    };
    let out = replay(&["-f", "type=service", "--format", "json"]);
    let replayed: Vec<(String, String)> = out
        .lines()
        .map(|l| summary(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(replayed, live_seen, "{out}");

    // Docker's line format.
    let text = replay(&["-f", "event=create"]);
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
