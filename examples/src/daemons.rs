//! `swarmd` processes on loopback, for tests and benchmarks: each gets a
//! data directory in one temporary directory, a log file beside it and
//! (if it may manage) a loopback address; `swarmctl` drives them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free loopback port (bound, then released).
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemons of one test or benchmark, killed when it ends.
pub struct Daemons {
    dir: tempfile::TempDir,
    procs: HashMap<String, Child>,
    addrs: HashMap<String, String>,
    swarmd: PathBuf,
    swarmctl: PathBuf,
    args: Vec<String>,
    marker: String,
}

/// A marker no other `Daemons` of this or a concurrent test process
/// holds: the process id and a count of the process's `Daemons`.
fn next_marker() -> String {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100;
    // Always eight digits: no marker is a part of another.
    (10_000_000 + (std::process::id() % 100_000) * 100 + n).to_string()
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
        let dirs: Vec<PathBuf> = self.procs.keys().map(|n| self.data(n)).collect();
        remove_containers(&dirs);
        if std::env::var_os("SWARM_KEEP_LOGS").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("a temp dir"));
            eprintln!("logs kept in {}", kept.keep().display());
        }
    }
}

impl Daemons {
    /// Daemons of the `swarmd` binary, driven by the `swarmctl` binary;
    /// each daemon gets `args` too (e.g. a heartbeat period).
    #[must_use]
    pub fn new(swarmd: &Path, swarmctl: &Path, args: &[&str]) -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            procs: HashMap::new(),
            addrs: HashMap::new(),
            swarmd: swarmd.into(),
            swarmctl: swarmctl.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            marker: next_marker(),
        }
    }

    /// The argument of every task's `sleep`: long, and unique to these
    /// daemons (the tests of one binary run side by side), so that their
    /// tasks, and no other test's, can be found and stopped.
    #[must_use]
    pub fn marker(&self) -> String {
        self.marker.clone()
    }

    /// The data directory of `name`.
    #[must_use]
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        self.spawn_with(name, args, true);
    }

    /// Starts `swarmd ARGS --data-dir <name's>`, with (`flags`) the
    /// node's hostname, listen address and the daemons' own arguments.
    fn spawn_with(&mut self, name: &str, args: &[&str], flags: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new(&self.swarmd);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data(name))
            .stdout(Stdio::null())
            .stderr(log);
        if flags {
            // Daemons of one host share its network namespace: only one
            // could own its overlay interfaces, so none does.
            cmd.args(["--hostname", name, "--data-plane", "host"])
                .args(&self.args);
            if let Some(addr) = self.addrs.get(name) {
                cmd.args(["--listen-addr", addr]);
            }
        }
        let child = cmd.spawn().unwrap();
        self.procs.insert(name.into(), child);
    }

    /// `swarmd init` as `name`.
    /// Waits until the new manager has written its client certificate,
    /// and keeps a copy as the one [`Daemons::client_dir`] names (the
    /// manager may leave later).
    pub fn init(&mut self, name: &str) {
        self.init_with(name, &[]);
    }

    /// [`Daemons::init`] with more `init` flags (`--autolock`).
    pub fn init_with(&mut self, name: &str, flags: &[&str]) {
        self.addrs
            .insert(name.into(), format!("127.0.0.1:{}", free_port()));
        let mut args = vec!["init"];
        args.extend_from_slice(flags);
        self.spawn(name, &args);
        let from = self.data(name).join("client");
        self.wait("the first manager", Duration::from_secs(30), || {
            from.join("key.pem").exists()
        });
        let to = self.client_dir();
        std::fs::create_dir_all(&to).expect("a client directory");
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::copy(from.join(f), to.join(f)).expect("the client certificate");
        }
    }

    /// The client certificate swarmctl uses.
    #[must_use]
    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// Joins `name`; every node gets a listen address, so that a worker
    /// can be promoted.
    pub fn join(&mut self, name: &str, token: &str, via: &str) {
        self.addrs
            .insert(name.into(), format!("127.0.0.1:{}", free_port()));
        let via = self.addrs[via].clone();
        self.spawn(name, &["join", "--token", token, &via]);
    }

    /// Starts `name` in no swarm, as dockerd starts: its Engine API
    /// serves, for `docker swarm init|join`. Answers the address it is to
    /// listen at as a manager (`docker swarm init --listen-addr`).
    pub fn bare(&mut self, name: &str) -> String {
        self.bare_with(name, &[])
    }

    /// [`Daemons::bare`] with more of swarmd's flags (`--engine-addr`).
    pub fn bare_with(&mut self, name: &str, args: &[&str]) -> String {
        let addr = format!("127.0.0.1:{}", free_port());
        self.addrs.insert(name.into(), addr.clone());
        self.spawn(name, args);
        let socket = self.data(name).join("swarmd.sock");
        self.wait("the Engine API socket", Duration::from_secs(30), || {
            socket.exists()
        });
        addr
    }

    /// Starts `name` again from its data directory.
    pub fn restart(&mut self, name: &str) {
        self.spawn(name, &[]);
    }

    /// Starts `name` again with no flag but its data directory: it must
    /// take up the settings it kept.
    pub fn resume_bare(&mut self, name: &str) {
        self.resume_with(name, &[]);
    }

    /// Starts `name` again with `args` and its data directory, and no
    /// other flag.
    pub fn resume_with(&mut self, name: &str, args: &[&str]) {
        self.spawn_with(name, args, false);
    }

    /// Stops `name` as an operator would (SIGTERM), and waits for it.
    pub fn stop(&mut self, name: &str) {
        let mut c = self.procs.remove(name).expect("a running daemon");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = Instant::now();
        let mut stopped = false;
        while !stopped && start.elapsed() < Duration::from_secs(10) {
            stopped = c.try_wait().ok().flatten().is_some();
            std::thread::sleep(Duration::from_millis(50));
        }
        if !stopped {
            let _ = c.kill();
        }
        let _ = c.wait();
        assert!(
            stopped,
            "{name} did not stop within 10 s of SIGTERM\n{}",
            self.logs()
        );
    }

    /// Runs `swarmd ARGS --data-dir <name's>` to completion.
    #[must_use]
    pub fn run_swarmd(&self, name: &str, args: &[&str]) -> Output {
        Command::new(&self.swarmd)
            .args(args)
            .arg("--data-dir")
            .arg(self.data(name))
            .output()
            .expect("swarmd runs")
    }

    /// `kill -9` of `name`.
    pub fn kill9(&mut self, name: &str) {
        let mut c = self.procs.remove(name).unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Runs swarmctl against manager `via`, with the client certificate of
    /// the first manager.
    #[must_use]
    pub fn ctl_at(&self, via: &str, args: &[&str]) -> Output {
        Command::new(&self.swarmctl)
            .args(["-H", &self.addrs[via]])
            .arg("--tls-dir")
            .arg(self.client_dir())
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts swarmctl against manager `via` as [`Daemons::ctl_at`] does,
    /// without waiting (a stream, such as `events`); its output is piped.
    #[must_use]
    pub fn ctl_spawn(&self, via: &str, args: &[&str]) -> Child {
        Command::new(&self.swarmctl)
            .args(["-H", &self.addrs[via]])
            .arg("--tls-dir")
            .arg(self.client_dir())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// [`Daemons::ctl_at`], which must succeed; its output.
    pub fn ctl_ok(&self, via: &str, args: &[&str]) -> String {
        let out = self.ctl_at(via, args);
        assert!(
            out.status.success(),
            "swarmctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// [`Daemons::ctl_ok`] of a command with JSON output, parsed.
    pub fn json(&self, via: &str, args: &[&str]) -> Value {
        serde_json::from_str(&self.ctl_ok(via, args)).unwrap()
    }

    /// The last lines of every daemon's log.
    #[must_use]
    pub fn logs(&self) -> String {
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

    /// Waits up to `limit` for `cond`; panics with the daemons' logs if
    /// it never holds.
    pub fn wait(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}\n{}", self.logs());
    }

    /// Hostname → (state, `leader` | `manager` | `worker`) from `node ls`
    /// through manager `via` (empty if it does not answer).
    #[must_use]
    pub fn nodes(&self, via: &str) -> BTreeMap<String, (String, String)> {
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

    /// Running tasks of `service` through manager `via`: task id →
    /// hostname.
    #[must_use]
    pub fn running(&self, via: &str, service: &str) -> BTreeMap<String, String> {
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

    /// The leader's hostname, as manager `via` sees it.
    #[must_use]
    pub fn leader(&self, via: &str) -> Option<String> {
        self.nodes(via)
            .into_iter()
            .find(|(_, (_, role))| role == "leader")
            .map(|(h, _)| h)
    }

    /// The address of manager `name`.
    #[must_use]
    pub fn addr(&self, name: &str) -> &str {
        &self.addrs[name]
    }

    /// A control API client of manager `via`, with the first manager's
    /// client certificate.
    pub fn control(&self, via: &str) -> anyhow::Result<swarm_api::RemoteControl> {
        let creds = swarm_api::tls::Credentials::load(&self.client_dir())?;
        let endpoint = creds
            .endpoint(&self.addrs[via])
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(swarm_api::RemoteControl::with_channel(
            endpoint.connect_lazy(),
        ))
    }
}

/// Removes the containers (tasks and their sandboxes, which carry their
/// node's id as a label) of the nodes whose data directories are `dirs`,
/// where a `docker` CLI is installed.
pub fn remove_containers(dirs: &[PathBuf]) {
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("node.json")) else {
            continue;
        };
        let Some(id) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["node_id"].as_str().map(str::to_owned))
        else {
            continue;
        };
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "command -v docker >/dev/null && docker ps -aq --filter label=swarm.node.id={id} | xargs -r docker rm -f >/dev/null 2>&1"
                ),
            ])
            .status();
    }
}
