//! Rollouts end to end: `swarmctl service update`, `rollback` and
//! `promote` against real `swarmd` daemons.
//!
//! On loopback (process runtime, every machine): a failing health check
//! pauses an update or rolls it back on its own; rollback goes back one
//! revision or to a chosen one; canaries wait for a promotion, and a
//! rollback removes them; an update whose tasks cannot start fails at its
//! deadline with the reason; bad input is refused and changes nothing.
//! With containers, where Docker answers: an update completes, a failing
//! one pauses and a rollback restores it, canaries wait for a promotion,
//! and an image that cannot be had pauses the update with the reason.
//!
//! On three hosts of network namespaces (root; SKIPPED elsewhere): a
//! 6-replica HTTP service is updated two at a time while a client sends
//! requests through the routing mesh, stop-first then start-first, and
//! loses none; with processes, and with containers where Docker answers.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm_examples::daemons::Daemons;
use swarm_examples::netns::{Hosts, skip_reason};

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

/// One test at a time: each watches deadlines, and two clusters on two
/// cores would stretch them.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A manager and two workers on loopback.
fn cluster() -> Daemons {
    cluster_with(&[])
}

/// A manager and two workers on loopback, each daemon with `args` too.
fn cluster_with(args: &[&str]) -> Daemons {
    let mut all = vec!["--heartbeat-period", "250ms"];
    all.extend_from_slice(args);
    let mut d = Daemons::new(Path::new(SWARMD), Path::new(SWARMCTL), &all);
    d.init("m1");
    let token = d.ctl_ok("m1", &["swarm", "join-token", "-q", "worker"]);
    d.join("w1", token.trim(), "m1");
    d.join("w2", token.trim(), "m1");
    d.wait("three ready nodes", Duration::from_secs(60), || {
        let n = d.nodes("m1");
        n.len() == 3 && n.values().all(|(s, _)| s == "ready")
    });
    d
}

/// `swarmctl service inspect NAME`, parsed.
fn inspect(d: &Daemons, name: &str) -> Value {
    d.json("m1", &["service", "inspect", name])[0].clone()
}

/// The tasks of `name` running and wanted running.
fn running(d: &Daemons, name: &str) -> Vec<Value> {
    let tasks = d.json("m1", &["service", "ps", name, "--format", "json"]);
    tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"]["state"] == "running" && t["desired_state"] == "running")
        .cloned()
        .collect()
}

fn env_of(task: &Value) -> Vec<String> {
    task["spec"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

fn ids(tasks: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = tasks
        .iter()
        .map(|t| t["meta"]["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// A 4-replica service of `sleep` with a passing health check; `extra`
/// are more flags, and the image last for containers.
fn create_web(d: &Daemons, extra: &[&str]) {
    let marker = d.marker();
    let mut args = vec![
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "4",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "--update-monitor",
        "1s",
        "--restart-delay",
        "1s",
        "--env",
        "V=1",
    ];
    args.extend_from_slice(extra);
    args.extend(["sleep", &marker]);
    let out = d.ctl_ok("m1", &args);
    assert!(out.contains("4/4 running"), "{out}");
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_failing_update_pauses_and_a_rollback_restores_the_old_spec() {
    let _s = serial();
    let d = cluster();
    create_web(&d, &[]);
    let before = ids(&running(&d, "web"));

    // The new spec fails its health check: the update pauses after its
    // first task, naming it, and `service update` says so and fails.
    let start = Instant::now();
    let out = d.ctl_at(
        "m1",
        &[
            "service",
            "update",
            "--health-cmd",
            "false",
            "--health-retries",
            "1",
            "--env-add",
            "V=2",
            "web",
        ],
    );
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "service update paused: update paused due to failure or early termination of task web."
        ) && text.contains("unhealthy (health check failed)"),
        "{text}"
    );
    assert!(
        text.contains("overall progress: 0 out of 4 tasks"),
        "{text}"
    );
    assert!(start.elapsed() < Duration::from_secs(30), "{text}");
    let status = &inspect(&d, "web")["UpdateStatus"];
    assert_eq!(status["State"], "paused", "{status}");
    // Three old tasks were never touched.
    let old: Vec<String> = ids(&running(&d, "web"))
        .into_iter()
        .filter(|id| before.contains(id))
        .collect();
    assert_eq!(
        old.len(),
        3,
        "{}",
        d.ctl_ok("m1", &["service", "ps", "web"])
    );

    // `service rollback` puts the old spec back: four healthy tasks of V=1.
    let out = d.ctl_ok("m1", &["service", "rollback", "web"]);
    assert!(
        out.contains("rollback: manually requested rollback")
            && out.contains("overall progress: rolling back update: 4 out of 4 tasks")
            && out.contains("verify: Service web converged"),
        "{out}"
    );
    let now = running(&d, "web");
    assert_eq!(now.len(), 4);
    assert!(now.iter().all(|t| env_of(t) == ["V=1"]), "{now:?}");
    assert!(
        ids(&now).iter().filter(|id| before.contains(id)).count() >= 3,
        "the old tasks stayed"
    );
    assert_eq!(
        inspect(&d, "web")["UpdateStatus"]["State"],
        "rollback_completed"
    );
}

#[test]
fn a_failing_update_rolls_back_on_its_own() {
    let _s = serial();
    let d = cluster();
    create_web(&d, &[]);
    let out = d.ctl_at(
        "m1",
        &[
            "service",
            "update",
            "--health-cmd",
            "false",
            "--health-retries",
            "1",
            "--update-parallelism",
            "2",
            "--update-failure-action",
            "rollback",
            "--env-add",
            "V=2",
            "web",
        ],
    );
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "rollback: update rolled back due to failure or early termination of task web."
        ) && text.contains("service rolled back: rollback completed"),
        "{text}"
    );
    let s = inspect(&d, "web");
    assert_eq!(s["UpdateStatus"]["State"], "rollback_completed");
    assert_eq!(s["Spec"]["task"]["env"], serde_json::json!(["V=1"]));
    let now = running(&d, "web");
    assert_eq!(now.len(), 4);
    assert!(now.iter().all(|t| env_of(t) == ["V=1"]), "{now:?}");
}

#[test]
fn rollback_goes_back_one_revision_or_to_a_chosen_one() {
    let _s = serial();
    let d = cluster();
    create_web(&d, &[]);
    for v in ["2", "3"] {
        let out = d.ctl_ok(
            "m1",
            &[
                "service",
                "update",
                "--update-parallelism",
                "0",
                "--env-add",
                &format!("V={v}"),
                "web",
            ],
        );
        assert!(
            out.contains("overall progress: 4 out of 4 tasks")
                && out.contains("verify: Service web converged"),
            "{out}"
        );
    }
    assert!(running(&d, "web").iter().all(|t| env_of(t) == ["V=3"]));
    let history = d.ctl_ok("m1", &["service", "history", "web"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "{history}");
    assert!(lines[0].starts_with("REVISION"), "{history}");
    assert!(
        lines[3].starts_with('3') && lines[3].contains("(current)") && lines[3].contains("env"),
        "{history}"
    );

    // Back one: V=2.
    d.ctl_ok("m1", &["service", "rollback", "web"]);
    assert!(running(&d, "web").iter().all(|t| env_of(t) == ["V=2"]));
    // To revision 1: V=1.
    d.ctl_ok("m1", &["service", "rollback", "--to-revision", "1", "web"]);
    let now = running(&d, "web");
    assert_eq!(now.len(), 4);
    assert!(now.iter().all(|t| env_of(t) == ["V=1"]), "{now:?}");

    // A scale through update, and back through rollback.
    let out = d.ctl_ok("m1", &["service", "update", "--replicas", "2", "web"]);
    assert!(out.contains("2/2 running"), "{out}");
    assert_eq!(running(&d, "web").len(), 2);
    d.ctl_ok("m1", &["service", "rollback", "-d", "web"]);
    d.wait("4 tasks again", Duration::from_secs(30), || {
        running(&d, "web").len() == 4
    });
}

#[test]
fn canaries_wait_for_promotion_and_a_rollback_removes_them() {
    let _s = serial();
    let d = cluster();
    create_web(&d, &[]);
    let old = ids(&running(&d, "web"));
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "update",
            "--update-canary",
            "2",
            "--env-add",
            "V=2",
            "web",
        ],
    );
    assert!(
        out.contains(
            "2 canaries running beside the old tasks: promote with `swarmctl service promote web`"
        ),
        "{out}"
    );
    let now = running(&d, "web");
    assert_eq!(now.len(), 6, "4 old tasks and 2 canaries");
    assert_eq!(now.iter().filter(|t| env_of(t) == ["V=2"]).count(), 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running(&d, "web").len(), 6, "the canaries wait");

    // Promote: the rollout completes.
    let out = d.ctl_ok("m1", &["service", "promote", "web"]);
    assert!(out.contains("verify: Service web converged"), "{out}");
    let now = running(&d, "web");
    assert_eq!(now.len(), 4);
    assert!(now.iter().all(|t| env_of(t) == ["V=2"]), "{now:?}");
    assert!(ids(&now).iter().all(|id| !old.contains(id)));

    // Canaries again, then a rollback: they go, and nothing else moves.
    let before = ids(&now);
    d.ctl_ok(
        "m1",
        &[
            "service",
            "update",
            "--update-canary",
            "1",
            "--env-add",
            "V=3",
            "web",
        ],
    );
    assert_eq!(running(&d, "web").len(), 5);
    let out = d.ctl_ok("m1", &["service", "rollback", "web"]);
    assert!(out.contains("verify: Service web converged"), "{out}");
    d.wait("the canary gone", Duration::from_secs(20), || {
        ids(&running(&d, "web")) == before
    });
}

#[test]
fn an_update_that_cannot_start_fails_at_its_deadline_with_the_reason() {
    let _s = serial();
    let d = cluster();
    create_web(&d, &[]);
    // A program that does not exist: its tasks are rejected, and the
    // update pauses on the first with the runtime's reason.
    let start = Instant::now();
    let out = d.ctl_at(
        "m1",
        &[
            "service",
            "update",
            "--image",
            "/nonexistent/program",
            "web",
        ],
    );
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "service update paused: update paused due to failure or early termination of task web."
        ) && text.contains("/nonexistent/program"),
        "{text}"
    );
    assert!(start.elapsed() < Duration::from_secs(20), "{text}");
    d.ctl_ok("m1", &["service", "rollback", "web"]);

    // A constraint no node meets: the new task stays pending, and the
    // start deadline fails the update instead of waiting for ever.
    let start = Instant::now();
    let out = d.ctl_at(
        "m1",
        &[
            "service",
            "update",
            "--constraint-add",
            "node.labels.zone==nowhere",
            "--update-start-deadline",
            "3s",
            "web",
        ],
    );
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("not running 3s after it was made (still pending")
            && text.contains("constraint"),
        "{text}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "{took:?}: {text}"
    );
    assert_eq!(running(&d, "web").len(), 3, "stop-first: one slot tried");
}

#[test]
fn bad_updates_are_refused_and_change_nothing() {
    let _s = serial();
    let d = cluster();
    create_web(&d, &[]);
    let marker = d.marker();
    d.ctl_ok(
        "m1",
        &[
            "service", "create", "--name", "agent", "--mode", "global", "sleep", &marker,
        ],
    );
    let web = inspect(&d, "web");
    let agent = inspect(&d, "agent");
    let refused = [
        (
            vec!["service", "update", "--env-add", "X=1", "nope"],
            "service nope not found",
        ),
        (
            vec!["service", "rollback", "web"],
            "service web has no previous spec to roll back to",
        ),
        (
            vec!["service", "update", "--replicas", "3", "agent"],
            "--replicas applies to replicated services, and service agent is global",
        ),
        (
            vec![
                "service",
                "update",
                "--update-failure-action",
                "explode",
                "web",
            ],
            "invalid --update-failure-action \"explode\": use pause, continue or rollback",
        ),
        (
            vec![
                "service",
                "update",
                "--rollback-failure-action",
                "rollback",
                "web",
            ],
            "invalid --rollback-failure-action \"rollback\": use pause or continue",
        ),
        (
            vec!["service", "update", "--update-delay", "soon", "web"],
            "invalid duration \"soon\"",
        ),
        (
            vec!["service", "update", "--secret-add", "missing", "web"],
            "secret missing not found",
        ),
        (
            vec!["service", "promote", "web"],
            "service web has no canaries waiting for promotion",
        ),
        (
            vec!["service", "rollback", "--to-revision", "7", "agent"],
            "service agent has no revision 7",
        ),
    ];
    for (args, want) in refused {
        let out = d.ctl_at("m1", &args);
        let text = out_text(&out);
        assert!(
            !out.status.success() && text.contains(want),
            "{args:?}: {text}"
        );
    }
    assert_eq!(inspect(&d, "web"), web, "web unchanged");
    assert_eq!(inspect(&d, "agent"), agent, "agent unchanged");
}

#[test]
fn rollouts_of_containers_pause_roll_back_and_promote() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(docker) = rt.block_on(swarm_runtime_docker::testing::engine(
        "rollouts_of_containers_pause_roll_back_and_promote",
    )) else {
        return;
    };
    let image = rt.block_on(swarm_runtime_docker::testing::test_image(&docker));
    let _s = serial();
    let d = cluster_with(&["--runtime", "docker"]);
    // `sleep` as PID 1 ignores SIGTERM: a short grace period.
    create_web(&d, &["--stop-grace-period", "1s", image]);
    let all_on = |v: &str| {
        let now = running(&d, "web");
        now.len() == 4 && now.iter().all(|t| env_of(t) == [format!("V={v}")])
    };

    // Two at a time: converged, every container on the new spec.
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "update",
            "--update-parallelism",
            "2",
            "--env-add",
            "V=2",
            "web",
        ],
    );
    assert!(
        out.contains("overall progress: 4 out of 4 tasks")
            && out.contains("verify: Service web converged"),
        "{out}"
    );
    assert!(all_on("2"), "{}", d.ctl_ok("m1", &["service", "ps", "web"]));
    let before = ids(&running(&d, "web"));

    // A failing health check pauses it on the first container; a
    // rollback restores the spec, keeping the three never touched.
    let out = d.ctl_at(
        "m1",
        &[
            "service",
            "update",
            "--health-cmd",
            "false",
            "--health-retries",
            "1",
            "--update-parallelism",
            "1",
            "--env-add",
            "V=3",
            "web",
        ],
    );
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("service update paused") && text.contains("unhealthy"),
        "{text}"
    );
    assert_eq!(inspect(&d, "web")["UpdateStatus"]["State"], "paused");
    let out = d.ctl_ok("m1", &["service", "rollback", "web"]);
    assert!(out.contains("verify: Service web converged"), "{out}");
    assert!(all_on("2"), "{}", d.ctl_ok("m1", &["service", "ps", "web"]));
    assert!(
        ids(&running(&d, "web"))
            .iter()
            .filter(|id| before.contains(id))
            .count()
            >= 3,
        "the old containers stayed: {before:?}\n{}",
        d.ctl_ok("m1", &["service", "ps", "web"])
    );

    // A canary waits beside the four; a promotion completes the rollout.
    let out = d.ctl_ok(
        "m1",
        &[
            "service",
            "update",
            "--update-canary",
            "1",
            "--env-add",
            "V=4",
            "web",
        ],
    );
    assert!(
        out.contains("1 canary running beside the old tasks"),
        "{out}"
    );
    assert_eq!(running(&d, "web").len(), 5);
    let out = d.ctl_ok("m1", &["service", "promote", "web"]);
    assert!(out.contains("verify: Service web converged"), "{out}");
    assert!(all_on("4"), "{}", d.ctl_ok("m1", &["service", "ps", "web"]));

    // An image no registry has: the update pauses with the engine's
    // reason instead of hanging, and three containers keep running.
    let start = Instant::now();
    let out = d.ctl_at(
        "m1",
        &[
            "service",
            "update",
            "--image",
            "swarm-nowhere/none:v9",
            "web",
        ],
    );
    let text = out_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("service update paused") && text.contains("swarm-nowhere/none"),
        "{text}"
    );
    assert!(start.elapsed() < Duration::from_secs(60), "{text}");
    assert_eq!(running(&d, "web").len(), 3, "stop-first: one slot tried");
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A client in host `ns`'s network namespace that sends one HTTP request
/// after another to `targets` in turn until told to stop, each on a new
/// connection: (requests, failures with what went wrong).
fn client(
    ns: String,
    targets: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut sent = 0;
        let mut failed = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let to = targets[sent % targets.len()];
            sent += 1;
            let r = (|| -> std::io::Result<String> {
                let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                c.set_read_timeout(Some(Duration::from_secs(2)))?;
                c.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut body = String::new();
                c.read_to_string(&mut body)?;
                Ok(body)
            })();
            match r {
                Ok(b) if b.starts_with("HTTP/1.0 200") || b.starts_with("HTTP/1.1 200") => {}
                Ok(b) => failed.push(format!(
                    "{:.3} {to}: {}",
                    unix_now(),
                    b.lines().next().unwrap_or("empty")
                )),
                Err(e) => failed.push(format!("{:.3} {to}: {e}", unix_now())),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, failed)
    })
}

#[test]
fn rolling_updates_lose_no_request_through_the_mesh() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    mesh_rollouts(None);
}

#[test]
fn rolling_updates_of_containers_lose_no_request_through_the_mesh() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(docker) = rt.block_on(swarm_runtime_docker::testing::engine(
        "rolling_updates_of_containers_lose_no_request_through_the_mesh",
    )) else {
        return;
    };
    let image = rt.block_on(swarm_runtime_docker::testing::test_image(&docker));
    mesh_rollouts(Some(image));
}

/// Six replicas of an HTTP server published on 8080, updated two at a
/// time with a 1 s delay, stop-first and then start-first, while a client
/// on h3 asks every host's mesh: no request fails, stop-first never has
/// fewer than 4 tasks running, start-first never fewer than 6.
fn mesh_rollouts(docker: Option<&'static str>) {
    let _s = serial();
    let testd = swarm_runtime_docker::testing::testd().unwrap();
    let testd = testd.to_str().unwrap().to_owned();
    let (program, runtime): (Vec<String>, &'static [&'static str]) = match docker {
        Some(image) => (
            vec![image.into(), "swarm-testd".into()],
            &["--runtime", "docker"],
        ),
        None => (vec![testd.clone()], &[]),
    };
    let probe = format!(
        "{} probe 80",
        if docker.is_some() {
            "swarm-testd"
        } else {
            &testd
        }
    );
    let h = Hosts::cluster_with(3, Path::new(SWARMD), Path::new(SWARMCTL), |_| runtime);
    let mut create: Vec<String> = [
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "6",
        "-p",
        "8080:80",
        "--health-cmd",
        &probe,
        "--health-interval",
        "250ms",
        "--update-monitor",
        "2s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    create.extend(program);
    create.extend(["http".into(), "80".into(), "/v1".into()]);
    let out = h.ctl(&create.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("6/6 running"), "{out}");
    let targets: Vec<SocketAddr> = (1..=3)
        .map(|i| format!("{}:8080", Hosts::addr(i)).parse().unwrap())
        .collect();

    for (round, order, floor) in [(2, "stop-first", 4), (3, "start-first", 6)] {
        let stop = Arc::new(AtomicBool::new(false));
        let c = client(h.ns(3), targets.clone(), stop.clone());
        // Count what runs, from the store, all along.
        let counts = Arc::new(Mutex::new(Vec::<usize>::new()));
        let watcher = {
            let (stop, counts) = (stop.clone(), counts.clone());
            let tls = h.data(1).join("client");
            let ns = h.ns(1);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let out = std::process::Command::new("ip")
                        .args([
                            "netns",
                            "exec",
                            &ns,
                            SWARMCTL,
                            "-H",
                            "192.168.77.1:2377",
                            "--tls-dir",
                        ])
                        .arg(&tls)
                        .args(["service", "ps", "web", "--format", "json"])
                        .output()
                        .unwrap();
                    if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
                        let n = v
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|t| {
                                t["status"]["state"] == "running" && t["desired_state"] == "running"
                            })
                            .count();
                        counts.lock().unwrap().push(n);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        std::thread::sleep(Duration::from_secs(1));
        // Docker's `--args` replaces the image's arguments, the program
        // included.
        let args = format!(
            "{}http 80 /v{round}",
            if docker.is_some() { "swarm-testd " } else { "" }
        );
        let out = h.ctl(&[
            "service",
            "update",
            "--update-parallelism",
            "2",
            "--update-delay",
            "1s",
            "--update-order",
            order,
            "--args",
            &args,
            "web",
        ]);
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let (sent, failed) = c.join().unwrap();
        watcher.join().unwrap();
        assert!(
            out.contains("overall progress: 6 out of 6 tasks")
                && out.contains("verify: Service web converged"),
            "{order}: {out}"
        );
        let tasks: Value =
            serde_json::from_str(&h.ctl(&["service", "ps", "web", "--format", "json"])).unwrap();
        let now: Vec<&Value> = tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"]["state"] == "running" && t["desired_state"] == "running")
            .collect();
        assert_eq!(now.len(), 6, "{order}");
        assert!(
            now.iter()
                .all(|t| t["spec"]["args"].as_array().unwrap().last().unwrap()
                    == &format!("/v{round}")),
            "{order}: every task on the new spec"
        );
        let counts = counts.lock().unwrap().clone();
        let low = counts.iter().copied().min().unwrap();
        eprintln!(
            "{order}: {sent} requests, {} failed; running tasks min {low}, max {} over {} samples",
            failed.len(),
            counts.iter().max().unwrap(),
            counts.len()
        );
        assert!(sent > 100, "{order}: the client ran ({sent} requests)");
        assert!(
            failed.is_empty(),
            "{order}: {} of {sent} failed: {failed:?}\n{}\n{}",
            failed.len(),
            h.ctl(&["service", "ps", "web", "--format", "json"]),
            h.logs()
        );
        assert!(
            low >= floor,
            "{order}: {low} tasks running at one point: {counts:?}"
        );
    }
}
