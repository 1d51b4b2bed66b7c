//! Several hosts: each node is a container of our own `swarmd` on a
//! private Docker network, reached by name. The image is built here, with
//! no registry: our binaries, the libraries they link and `sleep`, put in
//! a tarball and `docker import`ed.
//!
//! The leader is cut off with `docker network disconnect`; the others go
//! on without it, and once it is back it agrees with them.
//!
//! Without a Docker engine the test says so and passes; CI has one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    run(Command::new("docker").args(args))
}

/// The files of the image: our two binaries, what they link, and the
/// tools the tasks run, at their paths.
fn stage(dir: &Path) -> Result<(), String> {
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    let sleep = PathBuf::from("/bin/sleep");
    for bin in [Path::new(SWARMD), Path::new(SWARMCTL), &sleep] {
        files.extend(swarm_runtime_docker::testing::libraries(bin)?);
    }
    files.insert(sleep);
    for f in &files {
        let to = dir.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(f, &to).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    std::fs::copy(SWARMD, dir.join("swarmd")).map_err(|e| e.to_string())?;
    std::fs::copy(SWARMCTL, dir.join("swarmctl")).map_err(|e| e.to_string())?;
    for d in ["data", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Containers, network and image of one run, removed at the end.
struct Hosts {
    tag: String,
    net: String,
    names: Vec<String>,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = docker(&["rm", "-f", &self.container(n)]);
        }
        let _ = docker(&["network", "rm", &self.net]);
        let _ = docker(&["rmi", "-f", &self.tag]);
    }
}

impl Hosts {
    fn new() -> Result<Self, String> {
        let id = std::process::id();
        let me = Self {
            tag: format!("swarm-e2e:{id}"),
            net: format!("swarm-e2e-{id}"),
            names: Vec::new(),
        };
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        stage(dir.path())?;
        let tar = dir.path().join("..").join(format!("swarm-e2e-{id}.tar"));
        run(Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-cf")
            .arg(&tar)
            .arg("."))?;
        docker(&[
            "import",
            "--change",
            "ENV PATH=/bin",
            "--change",
            r#"ENTRYPOINT ["/swarmd", "--data-dir", "/data"]"#,
            &tar.to_string_lossy(),
            &me.tag,
        ])?;
        let _ = std::fs::remove_file(&tar);
        docker(&["network", "create", &me.net])?;
        Ok(me)
    }

    fn container(&self, name: &str) -> String {
        format!("{}-{name}", self.net)
    }

    /// Starts host `name` running `swarmd args...`.
    fn start(&mut self, name: &str, args: &[&str]) -> Result<(), String> {
        let container = self.container(name);
        let mut cmd = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &self.net,
            "--network-alias",
            name,
            "--hostname",
            name,
            &self.tag,
        ];
        cmd.extend_from_slice(args);
        let advertise = format!("{name}:2377");
        cmd.extend_from_slice(&[
            "--listen-addr",
            "0.0.0.0:2377",
            "--advertise-addr",
            &advertise,
            "--hostname",
            name,
        ]);
        docker(&cmd)?;
        self.names.push(name.into());
        Ok(())
    }

    /// `swarmctl` inside host `name`, against its own manager.
    fn ctl(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let container = self.container(name);
        let mut cmd = vec![
            "exec",
            &container,
            "/swarmctl",
            "-H",
            "127.0.0.1:2377",
            "--tls-dir",
            "/data/client",
        ];
        cmd.extend_from_slice(args);
        docker(&cmd)
    }

    fn json(&self, name: &str, args: &[&str]) -> Result<Value, String> {
        serde_json::from_str(&self.ctl(name, args)?).map_err(|e| e.to_string())
    }

    fn logs(&self) -> String {
        self.names
            .iter()
            .map(|n| {
                let out = Command::new("docker")
                    .args(["logs", "--tail", "15", &self.container(n)])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default();
                format!("--- {n}\n{out}")
            })
            .collect()
    }

    fn wait(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("timed out waiting for {what}\n{}", self.logs());
    }

    /// (hostname, state, is leader) per node, as host `via` sees them.
    fn nodes(&self, via: &str) -> Vec<(String, String, bool)> {
        let Ok(v) = self.json(via, &["node", "ls", "--format", "json"]) else {
            return Vec::new();
        };
        let leader = v["managers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["leader"] == true)
            .map(|m| m["node_id"].clone());
        v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["description"]["hostname"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    n["status"]["state"].as_str().unwrap_or("").to_owned(),
                    leader.as_ref() == Some(&n["meta"]["id"]),
                )
            })
            .collect()
    }

    /// The services and their tasks as host `via` has them: (service,
    /// task id, desired state), sorted.
    fn view(&self, via: &str) -> Result<Vec<(String, String, String)>, String> {
        let services = self.json(via, &["service", "ls", "--format", "json"])?;
        let mut out = Vec::new();
        for s in services.as_array().into_iter().flatten() {
            let name = s["spec"]["name"].as_str().unwrap_or("").to_owned();
            let tasks = self.json(via, &["service", "ps", &name, "--format", "json"])?;
            for t in tasks.as_array().into_iter().flatten() {
                out.push((
                    name.clone(),
                    t["meta"]["id"].as_str().unwrap_or("").to_owned(),
                    t["desired_state"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    fn running(&self, via: &str, service: &str) -> usize {
        self.json(via, &["service", "ps", service, "--format", "json"])
            .map(|v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|t| {
                        t["desired_state"] == "running" && t["status"]["state"] == "running"
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

#[test]
fn a_manager_cut_off_the_network_rejoins_and_agrees() {
    if let Err(e) = docker(&["info"]) {
        eprintln!("SKIPPED: no Docker engine answers here ({e})");
        return;
    }
    let mut h = Hosts::new().unwrap();
    h.start("m1", &["init"]).unwrap();
    h.wait("m1 to start", Duration::from_secs(30), || {
        h.ctl("m1", &["node", "ls"]).is_ok()
    });
    let token = |role: &str| {
        h.ctl("m1", &["swarm", "join-token", "-q", role])
            .unwrap()
            .trim()
            .to_owned()
    };
    let (mt, wt) = (token("manager"), token("worker"));
    h.start("m2", &["join", "--token", &mt, "m1:2377"]).unwrap();
    h.start("m3", &["join", "--token", &mt, "m1:2377"]).unwrap();
    h.start("w1", &["join", "--token", &wt, "m1:2377"]).unwrap();
    h.wait("four ready nodes", Duration::from_secs(60), || {
        let n = h.nodes("m1");
        n.len() == 4 && n.iter().all(|(_, s, _)| s == "ready")
    });
    let out = h
        .ctl(
            "m1",
            &[
                "service",
                "create",
                "--name",
                "web",
                "--replicas",
                "4",
                "sleep",
                "100000",
            ],
        )
        .unwrap();
    assert!(out.contains("4/4 running"), "{out}");

    // Cut the leader off.
    let leader = h
        .nodes("m1")
        .into_iter()
        .find(|(_, _, l)| *l)
        .map(|(n, _, _)| n)
        .unwrap();
    let others: Vec<String> = ["m1", "m2", "m3"]
        .iter()
        .map(|s| (*s).to_owned())
        .filter(|m| *m != leader)
        .collect();
    docker(&["network", "disconnect", &h.net, &h.container(&leader)]).unwrap();

    // The majority elects a leader and takes writes.
    h.wait(
        "a new leader among the others",
        Duration::from_secs(30),
        || {
            h.nodes(&others[0])
                .iter()
                .any(|(n, _, l)| *l && *n != leader)
        },
    );
    let out = h
        .ctl(
            &others[0],
            &[
                "service",
                "create",
                "--name",
                "during",
                "--replicas",
                "2",
                "sleep",
                "100000",
            ],
        )
        .unwrap();
    assert!(out.contains("2/2 running"), "{out}");
    h.wait(
        "web back at 4 without the cut-off host",
        Duration::from_secs(30),
        || h.running(&others[0], "web") == 4,
    );
    // The cut-off manager cannot write: it says so.
    let refused = h.ctl(
        &leader,
        &[
            "service", "create", "--detach", "--name", "alone", "sleep", "1",
        ],
    );
    let why = refused.expect_err("a manager without quorum accepted a write");
    assert!(why.contains("unavailable"), "{why}");

    // Reconnect: it catches up and agrees with the others.
    docker(&[
        "network",
        "connect",
        "--alias",
        &leader,
        &h.net,
        &h.container(&leader),
    ])
    .unwrap();
    h.wait("every manager to agree", Duration::from_secs(60), || {
        let views: Vec<_> = ["m1", "m2", "m3"].iter().map(|m| h.view(m)).collect();
        views.iter().all(Result::is_ok)
            && views.windows(2).all(|w| w[0] == w[1])
            && views[0]
                .as_ref()
                .is_ok_and(|v| v.iter().any(|(s, _, _)| s == "during"))
    });
    let view = h.view(&others[0]).unwrap();
    assert!(view.iter().all(|(s, _, _)| s != "alone"), "{view:?}");
    h.wait(
        "all four nodes ready again",
        Duration::from_secs(60),
        || {
            let n = h.nodes(&others[0]);
            n.len() == 4 && n.iter().all(|(_, s, _)| s == "ready")
        },
    );
    assert_eq!(h.running(&others[0], "web"), 4);
    assert_eq!(h.running(&others[0], "during"), 2);
}
