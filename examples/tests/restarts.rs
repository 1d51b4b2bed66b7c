//! A node's `swarmd` stopped (SIGTERM) or killed (`kill -9`) and started
//! again on the same data directory: no slot ever runs twice, no task
//! process is left without an owner, and the node comes back with the
//! settings it was given at init.

use std::path::Path;
use std::time::Duration;

use swarm_examples::daemons::Daemons;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");
const LIMIT: Duration = Duration::from_secs(60);

/// The processes of the machine whose command line is exactly `sleep
/// ARG`, from the process table.
fn sleeping(arg: &str) -> usize {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            // `sleep` may be named by its path.
            let text = String::from_utf8_lossy(cmdline);
            text.rsplit('/').next().is_some_and(|tail| tail == want) || text == want
        })
        .count()
}

/// Waits until `service` runs `replicas` tasks by the store and exactly as
/// many `sleep ARG` processes by the process table, checking on the way
/// that the process table never holds more.
fn converged(d: &Daemons, service: &str, arg: &str, replicas: usize) {
    d.wait(
        &format!("{replicas} running tasks of {service}, and as many processes"),
        LIMIT,
        || {
            let processes = sleeping(arg);
            assert!(
                processes <= replicas,
                "{processes} processes of {service} run, for {replicas} slots\n{}",
                d.logs()
            );
            d.running("m1", service).len() == replicas && processes == replicas
        },
    );
}

#[test]
fn a_restarted_node_runs_each_slot_once() {
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms"],
    );
    d.init("m1");
    let arg = format!("{}1", d.marker());
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "nap",
            "--replicas",
            "3",
            "sleep",
            &arg,
        ],
    );
    assert!(out.contains("3/3 running"), "{out}");
    assert_eq!(sleeping(&arg), 3);

    // SIGTERM, then start again.
    d.stop("m1");
    d.restart("m1");
    converged(&d, "nap", &arg, 3);

    // kill -9, then start again, five times.
    for round in 0..5 {
        d.kill9("m1");
        assert_eq!(
            sleeping(&arg),
            3,
            "round {round}: the tasks outlive the daemon"
        );
        d.restart("m1");
        converged(&d, "nap", &arg, 3);
    }
}

#[test]
fn a_resumed_node_keeps_its_hostname_and_address() {
    let mut d = Daemons::new(Path::new(SWARMD), Path::new(SWARMCTL), &[]);
    // Daemons gives init `--hostname m2 --listen-addr 127.0.0.1:PORT`.
    d.init("m2");
    let arg = format!("{}2", d.marker());
    d.ctl_ok(
        "m2",
        &["service", "create", "--name", "kept", "sleep", &arg],
    );
    let nodes = d.nodes("m2");
    assert_eq!(nodes.keys().collect::<Vec<_>>(), ["m2"], "{nodes:?}");

    d.stop("m2");
    // No flag but the data directory.
    d.resume_bare("m2");
    d.wait(
        "the resumed node on its own address, named m2, ready",
        LIMIT,
        || {
            d.nodes("m2")
                .get("m2")
                .is_some_and(|(state, _)| state == "ready")
        },
    );
    assert_eq!(d.nodes("m2").len(), 1, "the same node, not a new one");
    d.wait("the service running on the resumed node", LIMIT, || {
        d.running("m2", "kept").values().all(|host| host == "m2")
            && d.running("m2", "kept").len() == 1
            && sleeping(&arg) == 1
    });

    // A flag given on resume wins, and is kept beside the others.
    d.stop("m2");
    d.resume_with("m2", &["--heartbeat-period", "300ms"]);
    d.wait(
        "the node resumed with a new heartbeat period",
        LIMIT,
        || {
            d.nodes("m2")
                .get("m2")
                .is_some_and(|(state, _)| state == "ready")
        },
    );
    d.stop("m2");
    let out = d.run_swarmd("m2", &["leave"]);
    assert!(
        !out.status.success(),
        "the only manager may not leave: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.data("m2").join("settings.json")).unwrap())
            .unwrap();
    assert_eq!(kept["heartbeat_period_ms"], 300, "the flag given on resume");
    assert_eq!(kept["hostname"], "m2", "kept from init");
    assert_eq!(kept["listen_addr"], d.addr("m2"));
}
