//! End to end with real `swarmd` processes on loopback: 3 managers and 2
//! workers on the process runtime, driven by `swarmctl` as a user would.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemons of one test, killed when it ends.
struct Daemons {
    dir: tempfile::TempDir,
    procs: HashMap<String, Child>,
    addrs: HashMap<String, String>,
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in self.procs.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Tasks of killed daemons outlive them, as containers outlive a
        // crashed dockerd: stop those of this test.
        let _ = Command::new("pkill").args(["-f", &self.marker()]).status();
    }
}

impl Daemons {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            procs: HashMap::new(),
            addrs: HashMap::new(),
        }
    }

    /// The argument of every task's `sleep`: long, and unique to this
    /// test process, so that its tasks can be found and stopped.
    fn marker(&self) -> String {
        (900_000 + std::process::id() % 100_000).to_string()
    }

    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let mut cmd = Command::new(SWARMD);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data(name))
            .args(["--hostname", name, "--heartbeat-period", "250ms"])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(addr) = self.addrs.get(name) {
            cmd.args(["--listen-addr", addr]);
        }
        let child = cmd.spawn().unwrap();
        self.procs.insert(name.into(), child);
    }

    fn init(&mut self, name: &str) {
        self.addrs
            .insert(name.into(), format!("127.0.0.1:{}", free_port()));
        self.spawn(name, &["init"]);
    }

    /// Joins `name`; every node gets a listen address, so that a worker
    /// can be promoted.
    fn join(&mut self, name: &str, token: &str, via: &str) {
        self.addrs
            .insert(name.into(), format!("127.0.0.1:{}", free_port()));
        let via = self.addrs[via].clone();
        self.spawn(name, &["join", "--token", token, &via]);
    }

    fn restart(&mut self, name: &str) {
        self.spawn(name, &[]);
    }

    fn kill9(&mut self, name: &str) {
        let mut c = self.procs.remove(name).unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Runs swarmctl against manager `via` with the client certificate of
    /// manager `certs`.
    fn ctl_at(&self, via: &str, args: &[&str]) -> Output {
        Command::new(SWARMCTL)
            .args(["-H", &self.addrs[via]])
            .arg("--tls-dir")
            .arg(self.data("m1").join("client"))
            .args(args)
            .output()
            .unwrap()
    }

    fn ctl_ok(&self, via: &str, args: &[&str]) -> String {
        let out = self.ctl_at(via, args);
        assert!(
            out.status.success(),
            "swarmctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, via: &str, args: &[&str]) -> Value {
        serde_json::from_str(&self.ctl_ok(via, args)).unwrap()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("--- {}\n", p.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Waits for `cond` on the output of `node ls --format json` /
    /// `service ps` through manager `via`.
    fn wait(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}\n{}", self.logs());
    }

    /// Hostname → (state, role-as-manager-status) from `node ls`.
    fn nodes(&self, via: &str) -> BTreeMap<String, (String, String)> {
        let out = self.ctl_at(via, &["node", "ls", "--format", "json"]);
        if !out.status.success() {
            return BTreeMap::new();
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let managers = v["managers"].as_array().cloned().unwrap_or_default();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let id = n["meta"]["id"].as_str().unwrap();
                let m = managers.iter().find(|m| m["node_id"] == id);
                let status = match m {
                    Some(m) if m["leader"] == true => "leader",
                    Some(_) => "manager",
                    None => "worker",
                };
                (
                    n["description"]["hostname"].as_str().unwrap().to_owned(),
                    (
                        n["status"]["state"].as_str().unwrap().to_owned(),
                        status.to_owned(),
                    ),
                )
            })
            .collect()
    }

    /// Running tasks of `service`: task id → hostname.
    fn running(&self, via: &str, service: &str) -> BTreeMap<String, String> {
        let out = self.ctl_at(via, &["service", "ps", service, "--format", "json"]);
        if !out.status.success() {
            return BTreeMap::new();
        }
        let nodes: HashMap<String, String> = {
            let v = self.json(via, &["node", "ls", "--format", "json"]);
            v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    (
                        n["meta"]["id"].as_str().unwrap().to_owned(),
                        n["description"]["hostname"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let tasks: Value = serde_json::from_slice(&out.stdout).unwrap();
        tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["desired_state"] == "running" && t["status"]["state"] == "running")
            .map(|t| {
                let node = t["node_id"].as_str().unwrap_or_default();
                (
                    t["meta"]["id"].as_str().unwrap().to_owned(),
                    nodes.get(node).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }
}

fn leader_of(d: &Daemons, via: &str) -> Option<String> {
    d.nodes(via)
        .into_iter()
        .find(|(_, (_, role))| role == "leader")
        .map(|(h, _)| h)
}

#[test]
fn a_cluster_of_daemons_runs_heals_and_survives_its_leader() {
    let mut d = Daemons::new();
    d.init("m1");
    let client = d.data("m1").join("client").join("key.pem");
    d.wait("the first manager", Duration::from_secs(30), || {
        client.exists()
    });
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
    let leader = leader_of(&d, "m1").unwrap();
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
        leader_of(&d, other).is_some_and(|l| l != leader)
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

    // service rm stops the tasks.
    d.ctl_ok(other, &["service", "rm", "web", "front", "after"]);
    d.wait("no services", Duration::from_secs(30), || {
        d.ctl_ok(other, &["service", "ls"]).lines().count() == 1
    });
}
