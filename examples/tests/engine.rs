//! The stock `docker` CLI against `swarmd`'s Docker Engine API socket
//! (loopback, process runtime): a manager and a worker of one swarm.

use std::path::Path;
use std::time::Duration;

use swarm_examples::daemons::Daemons;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

/// `docker -H unix://<name's data dir>/swarmd.sock ARGS`: (success, stdout
/// and stderr).
fn docker(d: &Daemons, name: &str, args: &[&str]) -> (bool, String) {
    docker_stdin(d, name, args, b"")
}

/// [`docker`] with `input` on stdin.
fn docker_stdin(d: &Daemons, name: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!(
            "unix://{}",
            d.data(name).join("swarmd.sock").display()
        ))
        .args(args)
        .env("DOCKER_CONFIG", d.data(name).join("docker-config"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_API_VERSION")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the docker CLI runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn has_docker_cli() -> bool {
    let found = std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SWARM_REQUIRE_DOCKER").is_none(),
            "SWARM_REQUIRE_DOCKER is set but there is no docker CLI"
        );
        eprintln!("SKIPPED: no docker CLI");
    }
    found
}

/// The seeds' commands, verbatim, through the stock CLI: `info` on a
/// manager and a worker, nodes, services (with docker's progress, until
/// converged), networks, secrets, configs, and docker's errors.
#[test]
fn the_docker_cli_drives_a_swarm_of_swarmd() {
    if !has_docker_cli() {
        return;
    }
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms"],
    );
    d.init("m1");
    let (ok, out) = docker(&d, "m1", &["swarm", "join-token", "worker"]);
    assert!(ok, "{out}");
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("SWMTKN-1-"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned();
    assert!(
        out.contains(&format!(
            "docker swarm join --token {token} {}",
            d.addr("m1")
        )),
        "{out}"
    );
    d.join("w1", &token, "m1");
    d.wait("two ready nodes", Duration::from_secs(60), || {
        let n = d.nodes("m1");
        n.len() == 2 && n.values().all(|(s, _)| s == "ready")
    });
    // `docker info`: a manager and a worker told apart.
    let format = "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}}";
    let node_id = |name: &str| {
        let text = std::fs::read_to_string(d.data(name).join("node.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["node_id"].as_str().unwrap().to_owned()
    };

    let (ok, out) = docker(&d, "m1", &["info", "--format", format]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "active true 2 1");
    let (ok, out) = docker(&d, "m1", &["info"]);
    assert!(ok && !out.contains("ERROR"), "{out}");
    assert!(
        out.contains(" Swarm: active")
            && out.contains(&format!("  NodeID: {}", node_id("m1")))
            && out.contains("  Is Manager: true")
            && out.contains("  Data Path Port: 4789"),
        "{out}"
    );

    let (ok, out) = docker(&d, "w1", &["info", "--format", format]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "active false 0 0");
    let (ok, out) = docker(&d, "w1", &["info", "--format", "{{.Swarm.NodeID}}"]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), node_id("w1"));

    let (ok, out) = docker(&d, "m1", &["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "1.49");

    let ok_out = |args: &[&str]| {
        let (ok, out) = docker(&d, "m1", args);
        assert!(ok, "docker {args:?}: {out}");
        out
    };

    // Nodes: the leader marked, and this daemon's node starred.
    let ls = ok_out(&["node", "ls"]);
    let header = ls.lines().next().unwrap();
    assert!(
        header.starts_with("ID ")
            && header.contains("HOSTNAME")
            && header.contains("MANAGER STATUS"),
        "{ls}"
    );
    let m1 = ls.lines().find(|l| l.contains(" m1 ")).unwrap();
    assert!(
        m1.contains(" * ") && m1.contains("Leader") && m1.contains("Ready"),
        "{ls}"
    );
    let w1 = ls.lines().find(|l| l.contains(" w1 ")).unwrap();
    assert!(
        !w1.contains('*') && !w1.contains("Leader") && w1.contains("Active"),
        "{ls}"
    );
    ok_out(&["node", "update", "--label-add", "zone=a", "w1"]);
    assert_eq!(
        ok_out(&["node", "inspect", "--format", "{{.Spec.Labels.zone}}", "w1"]).trim(),
        "a"
    );
    let pretty = ok_out(&["node", "inspect", "--pretty", "m1"]);
    assert!(
        pretty.contains("Hostname:") && pretty.contains("Leader:\t\tYes"),
        "{pretty}"
    );

    // Services: create waits for convergence, with docker's progress.
    let out = ok_out(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        "/bin/sleep",
        "1000",
    ]);
    assert!(
        out.contains("overall progress: 3 out of 3 tasks")
            && out.contains("verify: Service ")
            && out.contains(" converged"),
        "{out}"
    );
    let ls = ok_out(&["service", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.contains(" web ") && l.contains("replicated") && l.contains("3/3")),
        "{ls}"
    );
    let ps = ok_out(&["service", "ps", "web"]);
    let header = ps.lines().next().unwrap();
    for column in [
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
        "PORTS",
    ] {
        assert!(header.contains(column), "{ps}");
    }
    let running = ps
        .lines()
        .filter(|l| l.contains(" Running ") && l.contains("/bin/sleep"))
        .count();
    assert_eq!(running, 3, "{ps}");
    ok_out(&["service", "scale", "web=5"]);
    assert!(ok_out(&["service", "ls"]).contains("5/5"));
    ok_out(&["service", "update", "--replicas", "3", "web"]);
    assert!(ok_out(&["service", "ls"]).contains("3/3"));
    let out = ok_out(&[
        "service",
        "update",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "--args",
        "2000",
        "web",
    ]);
    assert!(out.contains("converged"), "{out}");
    let args = |d: &Daemons| {
        let (_, out) = docker(
            d,
            "m1",
            &[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.Args}} {{.Spec.UpdateConfig.Parallelism}}",
                "web",
            ],
        );
        out.trim().to_owned()
    };
    assert_eq!(args(&d), r#"["2000"] 2"#);
    let out = ok_out(&["service", "rollback", "web"]);
    assert!(out.contains("rollback"), "{out}");
    assert_eq!(args(&d), r#"["1000"] 1"#);

    // A network, and a service on it with a secret and a config.
    let net_id = ok_out(&["network", "create", "--driver", "overlay", "overnet"])
        .trim()
        .to_owned();
    let ls = ok_out(&["network", "ls"]);
    assert!(
        ls.lines()
            .any(|l| net_id.starts_with(l.split_whitespace().next().unwrap())
                && l.contains("overnet")
                && l.contains("overlay")
                && l.contains("swarm")),
        "{ls}"
    );
    let subnet = ok_out(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "overnet",
    ]);
    assert!(subnet.trim().ends_with("/24"), "{subnet}");
    let (ok, out) = docker_stdin(&d, "m1", &["secret", "create", "db-pass", "-"], b"hunter2");
    assert!(ok, "{out}");
    let (ok, out) = docker_stdin(
        &d,
        "m1",
        &["config", "create", "app-conf", "-"],
        b"level=debug\n",
    );
    assert!(ok, "{out}");
    assert!(ok_out(&["secret", "ls"]).contains("db-pass"));
    let conf = ok_out(&["config", "inspect", "--pretty", "app-conf"]);
    assert!(conf.contains("level=debug"), "{conf}");
    ok_out(&[
        "service",
        "create",
        "--detach",
        "--name",
        "api",
        "--network",
        "overnet",
        "--secret",
        "db-pass",
        "--config",
        "app-conf",
        "/bin/sleep",
        "1000",
    ]);
    let vips = ok_out(&[
        "service",
        "inspect",
        "--format",
        "{{json .Endpoint.VirtualIPs}}",
        "api",
    ]);
    let vips: serde_json::Value = serde_json::from_str(vips.trim()).unwrap();
    assert_eq!(vips[0]["NetworkID"], net_id.as_str(), "{vips}");
    assert!(vips[0]["Addr"].as_str().unwrap().ends_with("/24"), "{vips}");

    // Docker's errors: shape and exit code.
    let (ok, out) = docker(
        &d,
        "m1",
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "web",
            "/bin/sleep",
            "1",
        ],
    );
    assert!(
        !ok && out.contains("Error response from daemon: service web already exists"),
        "{out}"
    );
    let (ok, out) = docker(&d, "m1", &["node", "inspect", "nosuch"]);
    assert!(!ok && out.contains("node nosuch not found"), "{out}");
    let (ok, out) = docker(&d, "m1", &["node", "demote", "m1"]);
    assert!(!ok && out.contains("last manager"), "{out}");
    let (ok, out) = docker(&d, "m1", &["network", "rm", "overnet"]);
    assert!(!ok && out.contains("in use"), "{out}");
    let (ok, out) = docker(&d, "w1", &["service", "ls"]);
    assert!(!ok && out.contains("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state."), "{out}");
    let (ok, out) = docker(
        &d,
        "m1",
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "ro",
            "--read-only",
            "/bin/sleep",
            "1",
        ],
    );
    assert!(!ok && out.contains("ReadOnly"), "{out}");

    // Removal leaves nothing.
    ok_out(&["service", "rm", "api", "web"]);
    d.wait("the network free", Duration::from_secs(30), || {
        docker(&d, "m1", &["network", "rm", "overnet"]).0
    });
    ok_out(&["secret", "rm", "db-pass"]);
    ok_out(&["config", "rm", "app-conf"]);
    assert_eq!(ok_out(&["service", "ls", "-q"]).trim(), "");
    assert!(!ok_out(&["network", "ls"]).contains("overnet"));
}
