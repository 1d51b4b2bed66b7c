//! Hosts made of network namespaces, for tests and benchmarks that need a
//! real network between nodes: a switch namespace with a bridge, and
//! hosts `h1`, `h2`, ... each with `eth0` at `192.168.77.<i>/24` on it,
//! each running `swarmd` (Linux data plane; process runtime unless told
//! otherwise). Everything is removed on drop, containers included; with
//! `SWARM_KEEP_LOGS=1`, the daemons' logs are kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Hosts on a switch, each a namespace with `swarmd` in it.
pub struct Hosts {
    prefix: String,
    dir: tempfile::TempDir,
    /// Each daemon, with its host.
    daemons: Vec<(usize, Child)>,
    count: usize,
    swarmd: PathBuf,
    swarmctl: PathBuf,
}

/// Runs a command, returning what it did.
pub fn sh(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

/// Runs a command that must succeed.
///
/// # Panics
/// If it fails.
pub fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    /// The namespace of host `i` (from 1).
    #[must_use]
    pub fn ns(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// The underlay address of host `i`.
    #[must_use]
    pub fn addr(i: usize) -> String {
        format!("192.168.77.{i}")
    }

    /// Makes `count` hosts whose daemons are `swarmd`, driven with
    /// `swarmctl`.
    ///
    /// # Panics
    /// If a namespace or link cannot be made.
    #[must_use]
    pub fn make(count: usize, swarmd: &std::path::Path, swarmctl: &std::path::Path) -> Self {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("swt{}x{n}", std::process::id() % 100_000);
        let sw = format!("{prefix}sw");
        must(&["ip", "netns", "add", &sw]);
        must(&["ip", "-n", &sw, "link", "add", "sw0", "type", "bridge"]);
        must(&["ip", "-n", &sw, "link", "set", "sw0", "up"]);
        let hosts = Self {
            prefix,
            dir: tempfile::tempdir().unwrap(),
            daemons: Vec::new(),
            count,
            swarmd: swarmd.to_owned(),
            swarmctl: swarmctl.to_owned(),
        };
        for i in 1..=count {
            let ns = hosts.ns(i);
            let port = format!("p{i}");
            must(&["ip", "netns", "add", &ns]);
            must(&[
                "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            must(&["ip", "-n", &sw, "link", "set", &port, "master", "sw0", "up"]);
            // `ip netns exec` shows the host this resolv.conf: its DNS
            // upstream is its own loopback, where a test may serve one.
            let etc = std::path::Path::new("/etc/netns").join(&ns);
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
            let cidr = format!("{}/24", Self::addr(i));
            must(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// Host `i`'s data directory.
    #[must_use]
    pub fn data(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("h{i}"))
    }

    /// Starts `swarmd ARGS` on host `i`, listening on its address.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn swarmd(&mut self, i: usize, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("h{i}.log"))).unwrap();
        let listen = format!("{}:2377", Self::addr(i));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(i)])
            .arg(&self.swarmd)
            .args(args)
            .arg("--data-dir")
            .arg(self.data(i))
            .args(["--listen-addr", &listen, "--hostname", &format!("h{i}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemons.push((i, child));
    }

    /// Kills host `i`'s daemon (SIGKILL): its tasks go on without it.
    pub fn kill(&mut self, i: usize) {
        for (_, d) in self.daemons.iter_mut().filter(|(h, _)| *h == i) {
            let _ = d.kill();
            let _ = d.wait();
        }
        self.daemons.retain(|(h, _)| *h != i);
    }

    /// Runs `cmd` inside host `i`'s namespace.
    ///
    /// # Panics
    /// If it cannot be run.
    #[must_use]
    pub fn on(&self, i: usize, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(i)])
            .args(cmd)
            .output()
            .unwrap()
    }

    /// `swarmctl ARGS` against host 1's manager; its output.
    ///
    /// # Panics
    /// If it fails (with the daemons' logs).
    pub fn ctl(&self, args: &[&str]) -> String {
        let tls = self.data(1).join("client");
        let ctl = self.swarmctl.to_str().unwrap().to_owned();
        let mut cmd = vec![ctl.as_str(), "-H", "192.168.77.1:2377", "--tls-dir"];
        let tls = tls.to_str().unwrap().to_owned();
        cmd.push(&tls);
        cmd.extend(args);
        let out = self.on(1, &cmd);
        assert!(
            out.status.success(),
            "swarmctl {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of each daemon's log.
    #[must_use]
    pub fn logs(&self) -> String {
        (1..=self.count)
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("h{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(400).collect();
                format!(
                    "--- h{i}\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// The running tasks of `service`: id -> (host name, pid).
    ///
    /// # Panics
    /// If `swarmctl` fails.
    #[must_use]
    pub fn tasks(&self, service: &str) -> BTreeMap<String, (String, u32)> {
        let tasks: serde_json::Value =
            serde_json::from_str(&self.ctl(&["service", "ps", service, "--format", "json"]))
                .unwrap();
        let nodes: serde_json::Value =
            serde_json::from_str(&self.ctl(&["node", "ls", "--format", "json"])).unwrap();
        let host_of = |id: &str| {
            nodes["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["meta"]["id"] == id)
                .map(|n| n["description"]["hostname"].as_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"]["state"] == "running" && t["desired_state"] == "running")
            .map(|t| {
                let handle = t["status"]["runtime_id"].as_str().unwrap();
                // A process's pid, or a container's id (then its process's).
                let pid = handle.parse().unwrap_or_else(|_| {
                    let out = sh(&["docker", "inspect", "-f", "{{.State.Pid}}", handle]);
                    String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("no process for task handle {handle}"))
                });
                (
                    t["meta"]["id"].as_str().unwrap().to_owned(),
                    (host_of(t["node_id"].as_str().unwrap()), pid),
                )
            })
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, d) in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        // As `Daemons`: `SWARM_KEEP_LOGS=1` keeps the daemons' logs.
        if std::env::var_os("SWARM_KEEP_LOGS").is_some()
            && let Ok(keep) = tempfile::Builder::new().prefix("swarm-logs-").tempdir()
        {
            for i in 1..=self.count {
                let log = format!("h{i}.log");
                let _ = std::fs::copy(self.dir.path().join(&log), keep.path().join(&log));
            }
            eprintln!("logs kept in {}", keep.keep().display());
        }
        // The daemons' tasks outlive them (as swarmd's do): end every
        // process whose environment names one of these nodes, then the
        // tasks' namespaces, which the data plane lists by the
        // resolv.conf it keeps for each.
        let nodes: Vec<String> = (1..=self.count)
            .filter_map(|i| std::fs::read_to_string(self.data(i).join("node.json")).ok())
            .filter_map(|text| {
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                Some(format!("SWARM_NODE_ID={}", v["node_id"].as_str()?))
            })
            .collect();
        crate::daemons::remove_containers(
            &(1..=self.count).map(|i| self.data(i)).collect::<Vec<_>>(),
        );
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(env) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            let ours = env
                .split(|b| *b == 0)
                .any(|kv| nodes.iter().any(|n| kv == n.as_bytes()));
            if ours {
                let _ = sh(&["kill", "-9", &entry.file_name().to_string_lossy()]);
            }
        }
        for i in 1..=self.count {
            let dir = self.data(i).join("net");
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(task) = name.strip_suffix(".resolv.conf") else {
                    continue;
                };
                let ns = format!("swarm-{task}");
                let pids = sh(&["ip", "netns", "pids", &ns]);
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    let _ = sh(&["kill", "-9", pid]);
                }
                let _ = sh(&["ip", "netns", "del", &ns]);
            }
        }
        for i in 1..=self.count {
            let _ = sh(&["ip", "netns", "del", &self.ns(i)]);
            let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(self.ns(i)));
        }
        let _ = sh(&["ip", "netns", "del", &format!("{}sw", self.prefix)]);
    }
}

/// A command running `script` with bash in process `pid`'s network
/// namespace, seeing the task's own `/etc/resolv.conf`: a task's view of
/// the network, with the host's programs (so it works for a container,
/// whose files hold no bash, as for a process).
///
/// # Panics
/// If the task's `resolv.conf` cannot be read (it has exited).
#[must_use]
pub fn task_shell(pid: u32, script: &str) -> Command {
    // The task's resolv.conf, as its mount namespace shows it, bound over
    // the host's in a mount namespace of the command's own.
    let resolv = std::fs::read(format!("/proc/{pid}/root/etc/resolv.conf"))
        .unwrap_or_else(|e| panic!("the resolv.conf of task process {pid}: {e}"));
    let copy = std::env::temp_dir().join(format!("swarm-task-{pid}.resolv.conf"));
    std::fs::write(&copy, resolv).unwrap();
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-n", "unshare", "-m", "bash", "-c"])
        .arg(format!(
            "mount --bind {} /etc/resolv.conf && exec bash -c \"$0\"",
            copy.display()
        ))
        .arg(script);
    cmd
}

/// Runs `script` as [`task_shell`] does; what it did.
///
/// # Panics
/// If nsenter cannot be run.
#[must_use]
pub fn in_task(pid: u32, script: &str) -> Output {
    task_shell(pid, script).output().unwrap()
}

/// The IPv4 address of interface `dev` inside process `pid`'s namespace
/// (`eth0`: a task's first network).
///
/// # Panics
/// If nsenter cannot be run.
#[must_use]
pub fn task_addr(pid: u32, dev: &str) -> String {
    let out = in_task(
        pid,
        &format!("ip -4 -o addr show {dev} | awk '{{print $4}}' | cut -d/ -f1"),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Why these hosts cannot be made here, if they cannot.
#[must_use]
pub fn skip_reason() -> Option<String> {
    if !nix_is_root() {
        return Some("not root: network namespaces need CAP_SYS_ADMIN".into());
    }
    for tool in ["ip", "nft", "nsenter", "bash"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Waits until `ok`, at most `limit`.
///
/// # Panics
/// After `limit`, naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Hosts {
    /// `count` hosts in one cluster: host 1 inits it, the others join as
    /// workers; returns once every node is ready.
    ///
    /// # Panics
    /// If the cluster does not form within 30 s.
    #[must_use]
    pub fn cluster(count: usize, swarmd: &std::path::Path, swarmctl: &std::path::Path) -> Self {
        Self::cluster_with(count, swarmd, swarmctl, |_| &[])
    }

    /// [`Hosts::cluster`], with `args(i)` given to host `i`'s daemon
    /// (`--runtime docker`, say).
    ///
    /// # Panics
    /// If the cluster does not form within 30 s.
    #[must_use]
    pub fn cluster_with(
        count: usize,
        swarmd: &std::path::Path,
        swarmctl: &std::path::Path,
        args: impl Fn(usize) -> &'static [&'static str],
    ) -> Self {
        let mut h = Self::make(count, swarmd, swarmctl);
        let mut init = vec!["init"];
        init.extend_from_slice(args(1));
        h.swarmd(1, &init);
        wait_for("the first manager serves", Duration::from_secs(20), || {
            h.data(1).join("client/cert.pem").exists()
        });
        std::thread::sleep(Duration::from_millis(500));
        let token = h.ctl(&["swarm", "join-token", "-q", "worker"]);
        let token = token.trim().to_owned();
        let args_of = args;
        for i in 2..=count {
            let mut args = vec!["join", "--token", &token, "192.168.77.1:2377"];
            args.extend_from_slice(args_of(i));
            h.swarmd(i, &args);
        }
        wait_for("every node ready", Duration::from_secs(30), || {
            h.ctl(&["node", "ls"]).matches("Ready").count() == count
        });
        h
    }
}
