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
    let config = d.data(name).join("docker-config");
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!(
            "unix://{}",
            d.data(name).join("swarmd.sock").display()
        ))
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
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

#[test]
fn docker_info_tells_a_manager_from_a_worker() {
    if !has_docker_cli() {
        return;
    }
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms"],
    );
    d.init("m1");
    let token = d.ctl_ok("m1", &["swarm", "join-token", "-q", "worker"]);
    d.join("w1", token.trim(), "m1");
    d.wait("two ready nodes", Duration::from_secs(60), || {
        let n = d.nodes("m1");
        n.len() == 2 && n.values().all(|(s, _)| s == "ready")
    });
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
}
