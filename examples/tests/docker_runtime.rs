//! `swarmd --runtime docker` end to end, on this machine's Docker engine,
//! driven by `swarmctl` as a user would: a replicated web service with a
//! published port answers HTTP from each of its containers, a container
//! killed behind the daemon's back is replaced, a restarted daemon adopts
//! its containers, `service logs -t` shows stdout and stderr with
//! timestamps, and `service rm` leaves no container behind.
//!
//! Without an engine it says SKIPPED and passes, unless
//! `SWARM_REQUIRE_DOCKER` is set (CI sets it where an engine runs).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use swarm_examples::daemons::{Daemons, free_port};
use swarm_runtime_docker::testing::{NodeContainers, engine, ok_body, test_image};

const LIMIT: Duration = Duration::from_secs(60);

/// The node's containers, as `docker ps` lists them.
struct Containers(String);

impl Containers {
    /// `docker ps` ids of the node's containers (`all`: stopped ones too),
    /// with `filter` added.
    fn ids(&self, all: bool, filter: &str) -> BTreeSet<String> {
        let mut cmd = Command::new("docker");
        cmd.args(["ps", "-q", "--no-trunc", "--filter"])
            .arg(format!("label=swarm.node.id={}", self.0));
        if all {
            cmd.arg("-a");
        }
        if !filter.is_empty() {
            cmd.args(["--filter", filter]);
        }
        let out = cmd.output().expect("docker ps");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l[..12].to_owned())
            .collect()
    }
}

/// The body of `GET path` on the node's `port`, if it answers 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).ok()?;
    ok_body(&reply)
}

/// The containers that answered `rounds` requests: each serves its own
/// `/etc/hostname`, which docker sets to the container's short id.
fn answering(port: u16, rounds: usize) -> BTreeSet<String> {
    (0..rounds)
        .filter_map(|_| get(port, "/etc/hostname"))
        .collect()
}

/// A manager of `swarmd --runtime docker`, started for `test`, with the
/// test image, the node's containers, and their removal when the test
/// ends; `None` (the test skips) without an engine.
struct Setup {
    d: Daemons,
    image: &'static str,
    containers: Containers,
    _cleanup: NodeContainers,
}

fn setup(test: &str, args: &[&str]) -> Option<Setup> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let docker = rt.block_on(engine(test))?;
    let image = rt.block_on(test_image(&docker));
    let mut flags = vec!["--runtime", "docker"];
    flags.extend_from_slice(args);
    let mut d = Daemons::new(
        Path::new(env!("CARGO_BIN_EXE_swarmd")),
        Path::new(env!("CARGO_BIN_EXE_swarmctl")),
        &flags,
    );
    d.init("m1");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.data("m1").join("node.json")).unwrap()).unwrap();
    let node = state["node_id"].as_str().unwrap().to_owned();
    Some(Setup {
        d,
        image,
        containers: Containers(node.clone()),
        // Whatever a failed run left goes when the test ends.
        _cleanup: NodeContainers(node),
    })
}

#[test]
fn docker_runtime_end_to_end() {
    let Some(Setup {
        mut d,
        image,
        containers,
        _cleanup,
    }) = setup("docker_runtime_end_to_end", &[])
    else {
        return;
    };
    d.wait("the node to be ready", LIMIT, || {
        d.nodes("m1").get("m1").is_some_and(|(s, _)| s == "ready")
    });

    // `service create` waits until 3/3 run.
    let port = free_port();
    let published = format!("{port}:80");
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "3",
            "-p",
            &published,
            image,
            "swarm-testd",
            "http",
            "80",
        ],
    );
    assert!(out.contains("web: 3/3 running"), "{out}");
    let running = containers.ids(false, "label=swarm.service.name=web");
    assert_eq!(running.len(), 3, "one container per replica: {running:?}");
    d.wait(
        "all three containers to answer HTTP on the published port",
        LIMIT,
        || answering(port, 9) == running,
    );

    // A container killed behind the daemon's back is replaced.
    let victim = running.iter().next().unwrap().clone();
    let killed = Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    d.wait("a replacement container", LIMIT, || {
        let now = containers.ids(false, "label=swarm.service.name=web");
        now.len() == 3 && !now.contains(&victim)
    });
    let tasks = d.json("m1", &["service", "ps", "web", "--format", "json"]);
    let failed: Vec<_> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"]["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "the killed task is failed: {tasks:#}");
    assert_eq!(failed[0]["status"]["runtime_id"], victim.as_str());
    // The replacement's container exists before its task reports running.
    d.wait("three running tasks again", LIMIT, || {
        d.running("m1", "web").len() == 3
    });
    let running = containers.ids(false, "label=swarm.service.name=web");
    d.wait(
        "the replacement to answer and the killed one to be gone",
        LIMIT,
        || answering(port, 9) == running,
    );

    // A daemon that dies and comes back adopts its containers: the same
    // three run on, and no duplicate starts.
    d.kill9("m1");
    d.restart("m1");
    d.wait("the node to be ready again", LIMIT, || {
        d.nodes("m1").get("m1").is_some_and(|(s, _)| s == "ready")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        containers.ids(false, "label=swarm.service.name=web"),
        running
    );
    assert_eq!(d.running("m1", "web").len(), 3);
    d.wait("the adopted containers to answer again", LIMIT, || {
        answering(port, 9) == running
    });
    assert_eq!(
        containers.ids(false, "label=swarm.service.name=web"),
        running,
        "still the same three, and no duplicate"
    );

    // Logs come from the engine, stdout and stderr apart, with docker's
    // timestamps.
    d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "talk",
            image,
            "sh",
            "-c",
            "echo out; echo err >&2; exec sleep 1000",
        ],
    );
    let mut printed = (String::new(), String::new());
    d.wait("the task's lines in service logs", LIMIT, || {
        let out = d.ctl_at("m1", &["service", "logs", "-t", "talk"]);
        printed = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        printed.0.contains("| out") && printed.1.contains("| err")
    });
    let (stdout, stderr) = &printed;
    assert!(
        !stdout.contains("| err") && !stderr.contains("| out"),
        "{printed:?}"
    );
    let stamp = stdout.split(' ').next().unwrap();
    assert!(
        stamp.starts_with("20") && stamp.contains('T') && stamp.ends_with('Z'),
        "a timestamp leads the line: {stdout}"
    );
    d.ctl_ok("m1", &["service", "rm", "talk"]);

    // `service rm` leaves no container behind, running or not.
    d.ctl_ok("m1", &["service", "rm", "web"]);
    d.wait(
        "every container of the service to be removed",
        LIMIT,
        || containers.ids(true, "").is_empty(),
    );
    d.wait("the published port to close", LIMIT, || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

#[test]
fn swarmd_says_so_when_docker_does_not_answer_and_makes_no_node() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_swarmd"))
        .args([
            "init",
            "--runtime",
            "docker",
            "--listen-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the Docker daemon (is it running, and is DOCKER_HOST right?)"),
        "{err}"
    );
    assert!(!data.join("node.json").exists(), "no node is made");
}

/// The stock docker CLI against swarmd's Engine API socket (DOCKER_HOST
/// pointing at swarmd, not at the engine): (success, stdout and stderr).
fn swarm_docker(d: &Daemons, args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .arg("-H")
        .arg(format!(
            "unix://{}",
            d.data("m1").join("swarmd.sock").display()
        ))
        .args(args)
        .env("DOCKER_CONFIG", d.data("m1").join("docker-config"))
        .env_remove("DOCKER_API_VERSION")
        .output()
        .expect("the docker CLI runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The docker CLI drives services of containers on `--runtime docker`:
/// create (docker's progress, until converged) with a published port
/// that answers from each container, an update that replaces them,
/// rollback, scale, ps, logs and rm, which leaves no container behind.
#[test]
fn the_docker_cli_drives_container_services() {
    let Some(Setup {
        d,
        image,
        containers,
        _cleanup,
    }) = setup(
        "the_docker_cli_drives_container_services",
        &["--heartbeat-period", "250ms"],
    )
    else {
        return;
    };
    let ok = |args: &[&str]| {
        let (ok, out) = swarm_docker(&d, args);
        assert!(ok, "docker {args:?}: {out}");
        out
    };

    let port = free_port();
    let published = format!("{port}:80");
    let out = ok(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        "-p",
        &published,
        image,
        "swarm-testd",
        "http",
        "80",
    ]);
    assert!(
        out.contains("verify: Service ") && out.contains(" converged"),
        "{out}"
    );
    let first = containers.ids(false, "label=swarm.service.name=web");
    assert_eq!(first.len(), 2, "{first:?}");
    d.wait(
        "both containers to answer on the published port",
        LIMIT,
        || answering(port, 8) == first,
    );
    let out = ok(&[
        "service",
        "ps",
        "web",
        "--format",
        "{{.Name}} {{.Node}} {{.CurrentState}}",
    ]);
    assert_eq!(
        out.lines().filter(|l| l.contains("m1 Running")).count(),
        2,
        "{out}"
    );

    // An update replaces both containers; rollback replaces them again.
    let out = ok(&[
        "service",
        "update",
        "--env-add",
        "V=2",
        "--update-parallelism",
        "2",
        "web",
    ]);
    assert!(
        out.contains("verify: Service ") && out.contains(" converged"),
        "{out}"
    );
    // The old containers go once stopped (their grace period is 1 s).
    let mut second = BTreeSet::new();
    d.wait("the old containers to go", LIMIT, || {
        second = containers.ids(false, "label=swarm.service.name=web");
        second.len() == 2
    });
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    let out = ok(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    ]);
    assert_eq!(out.trim(), r#"["V=2"]"#);
    let out = ok(&["service", "rollback", "web"]);
    assert!(
        out.contains("rollback: manually requested rollback"),
        "{out}"
    );
    d.wait("the rolled-back containers to answer", LIMIT, || {
        let now = containers.ids(false, "label=swarm.service.name=web");
        now.len() == 2 && now.is_disjoint(&second) && answering(port, 8) == now
    });
    let out = ok(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    ]);
    assert_eq!(out.trim(), "null");

    ok(&["service", "scale", "web=3"]);
    d.wait("a third container", LIMIT, || {
        containers.ids(false, "label=swarm.service.name=web").len() == 3
    });

    // The engine's logs, through docker service logs.
    ok(&[
        "service",
        "create",
        "--name",
        "talk",
        "--detach",
        "--ulimit",
        "nofile=1024:2048",
        "--limit-pids",
        "64",
        "--oom-score-adj",
        "300",
        image,
        "sh",
        "-c",
        "echo hello-from-a-container; exec sleep 1000",
    ]);
    d.wait("the container's line in docker service logs", LIMIT, || {
        swarm_docker(&d, &["service", "logs", "talk"])
            .1
            .contains("| hello-from-a-container")
    });
    // The limits reach the engine's container.
    let talk = containers.ids(false, "label=swarm.service.name=talk");
    let inspect = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .HostConfig.Ulimits}} {{.HostConfig.PidsLimit}} {{.HostConfig.OomScoreAdj}}",
        ])
        .arg(talk.iter().next().expect("talk's container"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        r#"[{"Name":"nofile","Hard":2048,"Soft":1024}] 64 300"#
    );

    ok(&["service", "rm", "web", "talk"]);
    d.wait("every container removed", LIMIT, || {
        containers.ids(true, "").is_empty()
    });
}
