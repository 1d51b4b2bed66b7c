//! End to end with real `swarmd` processes on loopback: 3 managers and 2
//! workers on the process runtime, driven by `swarmctl` as a user would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use swarm_examples::daemons::Daemons;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

#[test]
fn a_cluster_of_daemons_runs_heals_and_survives_its_leader() {
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms"],
    );
    d.init("m1");
    let worker_token = d.ctl_ok("m1", &["swarm", "join-token", "-q", "worker"]);
    let manager_token = d.ctl_ok("m1", &["swarm", "join-token", "-q", "manager"]);
    let (worker_token, manager_token) = (worker_token.trim(), manager_token.trim());
    assert!(worker_token.starts_with("SWMTKN-1-") && manager_token.starts_with("SWMTKN-1-"));
    assert_ne!(worker_token, manager_token);
    d.join("m2", manager_token, "m1");
    d.join("m3", manager_token, "m1");
    d.join("w1", worker_token, "m1");
    d.join("w2", worker_token, "m1");

    // node ls: five ready nodes, one leader, two more managers.
    d.wait("five ready nodes", Duration::from_secs(60), || {
        let nodes = d.nodes("m1");
        nodes.len() == 5
            && nodes.values().all(|(s, _)| s == "ready")
            && nodes.values().filter(|(_, r)| r == "leader").count() == 1
            && nodes.values().filter(|(_, r)| r == "manager").count() == 2
    });
    let table = d.ctl_ok("m1", &["node", "ls"]);
    assert!(
        table.contains("Leader") && table.contains("Reachable"),
        "{table}"
    );

    // service create waits until 5 processes run, spread over the nodes.
    let marker = d.marker();
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "5",
            "sleep",
            &marker,
        ],
    );
    assert!(out.contains("5/5 running"), "{out}");
    let running = d.running("m1", "web");
    assert_eq!(running.len(), 5);
    let hosts: std::collections::BTreeSet<_> = running.values().collect();
    assert_eq!(hosts.len(), 5, "one task per node: {running:?}");
    let ps = d.ctl_ok("m1", &["service", "ps", "web"]);
    for col in [
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
    ] {
        assert!(ps.contains(col), "{ps}");
    }

    // Logs of every task, asked of a manager that may not lead.
    let talk = format!("echo talking on $(cat /proc/sys/kernel/hostname); exec sleep {marker}");
    d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "talk",
            "--replicas",
            "2",
            "sh",
            "-c",
            &talk,
        ],
    );
    d.wait("the logs of both tasks", Duration::from_secs(20), || {
        let logs = d.ctl_ok("m2", &["service", "logs", "talk"]);
        ["talk.1@", "talk.2@"].iter().all(|t| logs.contains(t))
            && logs.matches("| talking on").count() == 2
    });
    // Following: the lines come, and the stream stays open until the
    // client leaves.
    let mut follow = std::process::Command::new(SWARMCTL)
        .args(["-H", d.addr("m1"), "--tls-dir"])
        .arg(d.client_dir())
        .args(["service", "logs", "-f", "talk"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(follow.try_wait().unwrap().is_none(), "-f keeps streaming");
    follow.kill().unwrap();
    let out = follow.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("| talking on")
            .count(),
        2
    );
    d.ctl_ok("m1", &["service", "rm", "talk"]);

    // scale, then a label and a constraint.
    let out = d.ctl_ok("m1", &["service", "scale", "web=7"]);
    assert!(out.contains("7/7 running"), "{out}");
    d.ctl_ok("m1", &["node", "update", "--label-add", "type=web", "w1"]);
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "front",
            "--replicas",
            "2",
            "--constraint",
            "node.labels.type==web",
            "sleep",
            &marker,
        ],
    );
    assert!(out.contains("2/2 running"), "{out}");
    assert!(d.running("m1", "front").values().all(|h| h == "w1"));

    // promote w2 and demote it again: its tasks keep running throughout.
    let on_w2: BTreeMap<_, _> = d
        .running("m1", "web")
        .into_iter()
        .filter(|(_, h)| h == "w2")
        .collect();
    assert!(!on_w2.is_empty());
    let out = d.ctl_ok("m1", &["node", "promote", "w2"]);
    assert!(out.contains("promoted"), "{out}");
    d.wait("w2 a manager", Duration::from_secs(30), || {
        d.nodes("m1")
            .get("w2")
            .is_some_and(|(s, r)| s == "ready" && r == "manager")
    });
    // As a manager it answers the control API itself.
    d.wait("w2 serving", Duration::from_secs(30), || {
        d.ctl_at("w2", &["node", "ls"]).status.success()
    });
    let refused = d.ctl_at("m1", &["node", "rm", "m2"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("demote"));
    d.ctl_ok("m1", &["node", "demote", "w2"]);
    d.wait("w2 a worker again", Duration::from_secs(30), || {
        d.nodes("m1")
            .get("w2")
            .is_some_and(|(s, r)| s == "ready" && r == "worker")
    });
    let running = d.running("m1", "web");
    for task in on_w2.keys() {
        assert_eq!(
            running.get(task).map(String::as_str),
            Some("w2"),
            "{task} kept running"
        );
    }

    // drain w2: its tasks move away.
    d.ctl_ok("m1", &["node", "update", "--availability", "drain", "w2"]);
    d.wait("w2 drained", Duration::from_secs(30), || {
        let r = d.running("m1", "web");
        r.len() == 7 && r.values().all(|h| h != "w2")
    });
    d.ctl_ok("m1", &["node", "update", "--availability", "active", "w2"]);

    // kill -9 the leader: the others take commands, and tasks keep running.
    let leader = d.leader("m1").unwrap();
    let other = ["m1", "m2", "m3"]
        .into_iter()
        .find(|m| *m != leader)
        .unwrap();
    let before: BTreeMap<_, _> = d
        .running(other, "web")
        .into_iter()
        .filter(|(_, h)| *h != leader)
        .collect();
    d.kill9(&leader);
    d.wait("a new leader", Duration::from_secs(30), || {
        d.leader(other).is_some_and(|l| l != leader)
    });
    let out = d.ctl_ok(
        other,
        &[
            "service",
            "create",
            "--name",
            "after",
            "--replicas",
            "2",
            "sleep",
            &marker,
        ],
    );
    assert!(out.contains("2/2 running"), "{out}");
    d.wait("web back at 7", Duration::from_secs(30), || {
        d.running(other, "web").len() == 7
    });
    let after = d.running(other, "web");
    for (task, host) in &before {
        assert_eq!(
            after.get(task),
            Some(host),
            "task {task} on {host} kept running through the election"
        );
    }
    // With one manager down, demoting another would leave no quorum.
    let now_leading = d.leader(other).unwrap();
    let live_follower = ["m1", "m2", "m3"]
        .into_iter()
        .find(|m| *m != leader && *m != now_leading)
        .unwrap();
    let refused = d.ctl_at(other, &["node", "demote", live_follower]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("quorum"), "{why}");
    let nodes = d.nodes(other);
    for w in ["w1", "w2"] {
        assert_eq!(nodes[w].0, "ready", "{w} reconnected: {nodes:?}");
    }

    // kill -9 a worker: its tasks come back on the others.
    let w1_id = d.json(other, &["node", "inspect", "w1"])["meta"]["id"].clone();
    d.kill9("w1");
    d.wait("w1 down and web healed", Duration::from_secs(30), || {
        let r = d.running(other, "web");
        d.nodes(other)["w1"].0 == "down" && r.len() == 7 && r.values().all(|h| h != "w1")
    });

    // restart it: it rejoins with its identity.
    d.restart("w1");
    d.wait("w1 back", Duration::from_secs(30), || {
        d.nodes(other).get("w1").is_some_and(|(s, _)| s == "ready")
    });
    assert_eq!(
        d.json(other, &["node", "inspect", "w1"])["meta"]["id"],
        w1_id
    );
    assert_eq!(d.nodes(other).len(), 5, "no new node record");

    // The old leader comes back as a follower.
    d.restart(&leader);
    d.wait("three reachable managers", Duration::from_secs(30), || {
        let v = d.json(other, &["node", "ls", "--format", "json"]);
        v["managers"]
            .as_array()
            .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["reachable"] == true))
    });

    // Leaving: a worker, then a manager that does not lead, each stopped
    // first. The manager leaves the raft group; both forget the cluster.
    let managers_before = d.json(other, &["node", "ls", "--format", "json"])["managers"]
        .as_array()
        .unwrap()
        .len();
    let now_leading = d.leader(other).unwrap();
    let follower = ["m1", "m2", "m3"]
        .into_iter()
        .find(|m| *m != now_leading && *m != other)
        .unwrap();
    for name in ["w2", follower] {
        d.stop(name);
        let out = d.run_swarmd(name, &["leave"]);
        assert!(
            out.status.success(),
            "{name} left: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!d.data(name).join("node.json").exists());
    }
    let managers_after = d.json(other, &["node", "ls", "--format", "json"])["managers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(managers_after, managers_before - 1);

    // service rm stops the tasks.
    d.ctl_ok(other, &["service", "rm", "web", "front", "after"]);
    d.wait("no services", Duration::from_secs(30), || {
        d.ctl_ok(other, &["service", "ls"]).lines().count() == 1
    });
}
