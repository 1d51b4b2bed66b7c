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

/// `docker swarm init --advertise-addr 127.0.0.1 --listen-addr LISTEN` on
/// `name`'s daemon, which must succeed: its output.
fn swarm_init(d: &Daemons, name: &str, listen: &str) -> String {
    let args = [
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        listen,
    ];
    let (ok, out) = docker(d, name, &args);
    assert!(ok, "docker {args:?}: {out}");
    out
}

/// Daemons of this test, if the machine has a docker CLI to drive them.
fn daemons() -> Option<Daemons> {
    has_docker_cli().then(|| {
        Daemons::new(
            Path::new(SWARMD),
            Path::new(SWARMCTL),
            &["--heartbeat-period", "250ms"],
        )
    })
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
    let Some(mut d) = daemons() else {
        return;
    };
    // Bare daemons, in no swarm until docker says.
    let m1 = d.bare("m1");
    let m2 = d.bare("m2");
    d.bare("w1");
    let (ok, out) = docker(&d, "m1", &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert!(ok && out.trim() == "inactive", "{out}");
    let (ok, out) = docker(&d, "m1", &["node", "ls"]);
    assert!(
        !ok && out.contains(
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\""
        ),
        "{out}"
    );
    let out = swarm_init(&d, "m1", &m1);
    assert!(
        out.contains("Swarm initialized: current node (")
            && out.contains("docker swarm join --token SWMTKN-1-"),
        "{out}"
    );
    let (ok, out) = docker(&d, "m1", &["swarm", "init", "--listen-addr", &m1]);
    assert!(
        !ok && out.contains("This node is already part of a swarm."),
        "{out}"
    );
    let token = |role: &str| {
        let (ok, out) = docker(&d, "m1", &["swarm", "join-token", role]);
        assert!(ok, "{out}");
        let token = out
            .split_whitespace()
            .find(|w| w.starts_with("SWMTKN-1-"))
            .unwrap_or_else(|| panic!("no token in {out}"))
            .to_owned();
        assert!(
            out.contains(&format!("docker swarm join --token {token} {m1}")),
            "{out}"
        );
        token
    };
    let (worker, manager) = (token("worker"), token("manager"));
    let (ok, out) = docker(&d, "w1", &["swarm", "join", "--token", &worker, &m1]);
    assert!(
        ok && out.contains("This node joined a swarm as a worker."),
        "{out}"
    );
    let (ok, out) = docker(
        &d,
        "m2",
        &[
            "swarm",
            "join",
            "--token",
            &manager,
            "--listen-addr",
            &m2,
            "--advertise-addr",
            "127.0.0.1",
            &m1,
        ],
    );
    assert!(
        ok && out.contains("This node joined a swarm as a manager."),
        "{out}"
    );
    d.wait("three ready nodes", Duration::from_secs(60), || {
        let (_, out) = docker(&d, "m1", &["node", "ls", "--format", "{{.Status}}"]);
        out.lines().filter(|l| *l == "Ready").count() == 3
    });
    let ok_out = |args: &[&str]| {
        let (ok, out) = docker(&d, "m1", args);
        assert!(ok, "docker {args:?}: {out}");
        out
    };

    // `docker info`: managers and a worker told apart.
    let format = "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}}";
    assert_eq!(
        ok_out(&["info", "--format", format]).trim(),
        "active true 3 2"
    );
    let (ok, out) = docker(&d, "w1", &["info", "--format", format]);
    assert!(ok && out.trim() == "active false 0 0", "{out}");
    let info = ok_out(&["info"]);
    let self_id = ok_out(&["node", "inspect", "--format", "{{.ID}}", "self"]);
    assert!(
        info.contains(" Swarm: active")
            && info.contains(&format!("  NodeID: {}", self_id.trim()))
            && info.contains("  Is Manager: true")
            && info.contains("  Data Path Port: 4789")
            && (info.contains(&format!("  Manager Addresses:\n   {m1}\n   {m2}\n"))
                || info.contains(&format!("  Manager Addresses:\n   {m2}\n   {m1}\n"))),
        "{info}"
    );
    assert_eq!(
        ok_out(&["version", "--format", "{{.Server.APIVersion}}"]).trim(),
        "1.49"
    );

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
    let (ok, out) = docker(&d, "m2", &["node", "ls"]);
    let m2_row = out.lines().find(|l| l.contains(" m2 ")).unwrap_or_default();
    assert!(
        ok && m2_row.contains(" * ") && m2_row.contains("Reachable"),
        "{out}"
    );
    assert!(ok_out(&["node", "demote", "m2"]).contains("Manager m2 demoted in the swarm."));
    d.wait("m2 a worker", Duration::from_secs(30), || {
        docker(
            &d,
            "m2",
            &["info", "--format", "{{.Swarm.ControlAvailable}}"],
        )
        .1
        .trim()
            == "false"
    });
    // The demoted node writes its node object as it takes up its role;
    // unlike Docker's, a promotion read before that is not out of
    // sequence: only a change of the spec would make it so.
    let out = ok_out(&["node", "promote", "m2"]);
    assert!(
        out.contains("Node m2 promoted to a manager in the swarm."),
        "{out}"
    );
    d.wait("m2 a manager again", Duration::from_secs(30), || {
        docker(&d, "m2", &["node", "ls", "-q"]).0
    });
    ok_out(&["node", "update", "--availability", "drain", "w1"]);
    assert!(
        ok_out(&["node", "ls"])
            .lines()
            .any(|l| l.contains(" w1 ") && l.contains("Drain"))
    );
    ok_out(&["node", "update", "--availability", "active", "w1"]);
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
    // The allocator gives the VIP just after the create (as swarmkit's):
    // `--detach` may return before it.
    let mut vips = serde_json::Value::Null;
    d.wait("the service's VIP", Duration::from_secs(20), || {
        let out = ok_out(&[
            "service",
            "inspect",
            "--format",
            "{{json .Endpoint.VirtualIPs}}",
            "api",
        ]);
        vips = serde_json::from_str(out.trim()).unwrap();
        !vips.is_null()
    });
    assert_eq!(vips[0]["NetworkID"], net_id.as_str(), "{vips}");
    assert!(vips[0]["Addr"].as_str().unwrap().ends_with("/24"), "{vips}");

    // Logs, from the node that runs the task, with docker's prefixes.
    ok_out(&[
        "service",
        "create",
        "--detach",
        "--name",
        "talk",
        "sh",
        "-c",
        "echo hello from talk; echo oops >&2; exec sleep 1000",
    ]);
    d.wait("the task's logs", Duration::from_secs(30), || {
        let (ok, out) = docker(&d, "m1", &["service", "logs", "talk"]);
        ok && out
            .lines()
            .any(|l| l.starts_with("talk.1.") && l.ends_with("| hello from talk"))
            && out
                .lines()
                .any(|l| l.starts_with("talk.1.") && l.ends_with("| oops"))
    });
    let task = ok_out(&["service", "ps", "-q", "talk"]);
    let stamped = ok_out(&["service", "logs", "--timestamps", task.trim()]);
    assert!(
        stamped
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z talk.1.")),
        "{stamped}"
    );
    ok_out(&["service", "rm", "talk"]);

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
    // The spec keeps what the process runtime cannot honour, and the
    // task says why.
    assert!(ok, "{out}");
    assert_eq!(
        ok_out(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.ReadOnly}}",
            "ro"
        ])
        .trim(),
        "true"
    );
    d.wait(
        "the read-only task rejected",
        Duration::from_secs(30),
        || {
            let (_, out) = docker(
                &d,
                "m1",
                &[
                    "service",
                    "ps",
                    "--no-trunc",
                    "--format",
                    "{{.CurrentState}} {{.Error}}",
                    "ro",
                ],
            );
            out.lines().any(|l| {
                l.starts_with("Rejected")
                    && l.contains("the process runtime cannot honour --read-only")
            })
        },
    );
    ok_out(&["service", "rm", "ro"]);

    // Removal leaves nothing.
    ok_out(&["service", "rm", "api", "web"]);
    d.wait("the network free", Duration::from_secs(30), || {
        docker(&d, "m1", &["network", "rm", "overnet"]).0
    });
    ok_out(&["secret", "rm", "db-pass"]);
    ok_out(&["config", "rm", "app-conf"]);
    assert_eq!(ok_out(&["service", "ls", "-q"]).trim(), "");
    assert!(!ok_out(&["network", "ls"]).contains("overnet"));

    // Leaving: a manager is warned, a worker leaves, is removed, and its
    // daemon can start a swarm of its own and leave it again.
    let (ok, out) = docker(&d, "m1", &["swarm", "leave"]);
    assert!(
        !ok && out.contains(
            "You are attempting to leave the swarm on a node that is participating as a manager."
        ),
        "{out}"
    );
    let (ok, out) = docker(&d, "w1", &["swarm", "leave"]);
    assert!(ok && out.contains("Node left the swarm."), "{out}");
    let (ok, out) = docker(&d, "w1", &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert!(ok && out.trim() == "inactive", "{out}");
    let (ok, out) = docker(&d, "w1", &["swarm", "leave"]);
    assert!(
        !ok && out.contains("This node is not part of a swarm"),
        "{out}"
    );
    ok_out(&["node", "rm", "--force", "w1"]);
    assert!(!ok_out(&["node", "ls"]).contains(" w1 "));
    let w1 = format!("127.0.0.1:{}", swarm_examples::daemons::free_port());
    for _ in 0..2 {
        let (ok, out) = docker(
            &d,
            "w1",
            &[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--listen-addr",
                &w1,
            ],
        );
        assert!(ok, "{out}");
        let (ok, out) = docker(&d, "w1", &["node", "ls", "-q"]);
        assert!(ok && out.lines().count() == 1, "{out}");
        let (_, me) = docker(&d, "w1", &["info", "--format", "{{.Swarm.NodeID}}"]);
        let (ok, out) = docker(&d, "w1", &["node", "demote", me.trim()]);
        assert!(!ok && out.contains("last manager"), "{out}");
        let (ok, out) = docker(&d, "w1", &["swarm", "leave", "--force"]);
        assert!(ok && out.contains("Node left the swarm."), "{out}");
    }
}

/// `docker stack deploy` of a compose file (the CLI translates it): two
/// services, a network, a secret and a config, all labelled with the
/// stack; `stack rm` leaves nothing. `docker events` sees it as it
/// happens, and `--since` replays it.
#[test]
fn docker_stack_deploy_and_docker_events() {
    let Some(mut d) = daemons() else {
        return;
    };
    let m1 = d.bare("m1");
    swarm_init(&d, "m1", &m1);
    let ok_out = |args: &[&str]| {
        let (ok, out) = docker(&d, "m1", args);
        assert!(ok, "docker {args:?}: {out}");
        out
    };

    // docker swarm update, unlock-key and join-token --rotate.
    let (ok, out) = docker(&d, "m1", &["swarm", "unlock-key"]);
    assert!(!ok && out.contains("no unlock key is set"), "{out}");
    let out = ok_out(&["swarm", "update", "--autolock=true"]);
    assert!(
        out.contains("Swarm updated.") && out.contains("SWMKEY-1-"),
        "{out}"
    );
    let key = ok_out(&["swarm", "unlock-key", "-q"]);
    assert!(
        key.trim().starts_with("SWMKEY-1-") && out.contains(key.trim()),
        "{out}"
    );
    let out = ok_out(&["swarm", "unlock-key", "--rotate", "-q"]);
    assert!(
        out.trim().starts_with("SWMKEY-1-") && out.trim() != key.trim(),
        "{out}"
    );
    let token = ok_out(&["swarm", "join-token", "-q", "worker"]);
    let rotated = ok_out(&["swarm", "join-token", "--rotate", "-q", "worker"]);
    assert!(
        rotated.trim().starts_with("SWMTKN-1-") && rotated != token,
        "{rotated}"
    );
    ok_out(&[
        "swarm",
        "update",
        "--task-history-limit",
        "3",
        "--autolock=false",
    ]);
    let spec = ok_out(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}} {{.Swarm.Cluster.Spec.EncryptionConfig.AutoLockManagers}}",
    ]);
    assert_eq!(spec.trim(), "3 false");
    let (ok, out) = docker(
        &d,
        "m1",
        &["swarm", "update", "--dispatcher-heartbeat", "10s"],
    );
    assert!(
        !ok && out.contains("Spec.Dispatcher cannot be changed"),
        "{out}"
    );

    // Events, live: a child CLI streams them while the stack is made.
    let events = d.data("m1").join("events.txt");
    let mut follow = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!(
            "unix://{}",
            d.data("m1").join("swarmd.sock").display()
        ))
        .args([
            "events",
            "--filter",
            "type=service",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .env("DOCKER_CONFIG", d.data("m1").join("docker-config"))
        .stdout(std::fs::File::create(&events).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let dir = d.data("m1");
    std::fs::write(dir.join("pw.txt"), "hunter2").unwrap();
    std::fs::write(dir.join("app.conf"), "level=debug\n").unwrap();
    let compose = dir.join("compose.yml");
    std::fs::write(
        &compose,
        "version: \"3.8\"\n\
         services:\n\
         \x20 web:\n\
         \x20   image: sleep\n\
         \x20   command: [\"1000\"]\n\
         \x20   deploy:\n\
         \x20     replicas: 2\n\
         \x20   networks: [front]\n\
         \x20   secrets: [pw]\n\
         \x20   configs: [conf]\n\
         \x20 db:\n\
         \x20   image: sleep\n\
         \x20   command: [\"2000\"]\n\
         \x20   networks: [front]\n\
         networks:\n\
         \x20 front:\n\
         \x20   driver: overlay\n\
         secrets:\n\
         \x20 pw:\n\
         \x20   file: ./pw.txt\n\
         configs:\n\
         \x20 conf:\n\
         \x20   file: ./app.conf\n",
    )
    .unwrap();
    let out = ok_out(&["stack", "deploy", "-c", compose.to_str().unwrap(), "app"]);
    for made in [
        "Creating network app_front",
        "Creating secret app_pw",
        "Creating config app_conf",
        "Creating service app_web",
        "Creating service app_db",
    ] {
        assert!(out.contains(made), "{out}");
    }
    let ls = ok_out(&["stack", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("app ") && l.trim_end().ends_with('2')),
        "{ls}"
    );
    d.wait("the stack's tasks running", Duration::from_secs(60), || {
        let (_, ps) = docker(
            &d,
            "m1",
            &[
                "stack",
                "ps",
                "app",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Name}} {{.CurrentState}}",
            ],
        );
        ps.lines().filter(|l| l.contains(" Running ")).count() == 3
    });
    let services = ok_out(&["stack", "services", "app"]);
    assert!(
        services.contains("app_web")
            && services.contains("2/2")
            && services.contains("app_db")
            && services.contains("1/1"),
        "{services}"
    );
    let secret = ok_out(&[
        "service",
        "inspect",
        "--format",
        "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}}:{{.File.Name}}{{end}}",
        "app_web",
    ]);
    assert_eq!(secret.trim(), "app_pw:pw");
    let aliases = ok_out(&[
        "service",
        "inspect",
        "--format",
        "{{range .Spec.TaskTemplate.Networks}}{{.Aliases}}{{end}}",
        "app_db",
    ]);
    assert_eq!(aliases.trim(), "[db]");

    let out = ok_out(&["stack", "rm", "app"]);
    assert!(
        out.contains("Removing service app_web") && out.contains("Removing network app_front"),
        "{out}"
    );
    d.wait("nothing left of the stack", Duration::from_secs(30), || {
        docker(&d, "m1", &["service", "ls", "-q"])
            .1
            .trim()
            .is_empty()
            && docker(&d, "m1", &["secret", "ls", "-q"])
                .1
                .trim()
                .is_empty()
            && docker(&d, "m1", &["config", "ls", "-q"])
                .1
                .trim()
                .is_empty()
            && !docker(&d, "m1", &["network", "ls"]).1.contains("app_front")
    });

    // The live stream saw both services made and removed, in order.
    d.wait("the events", Duration::from_secs(10), || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .count()
            >= 4
    });
    let _ = follow.kill();
    let _ = follow.wait();
    let seen = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("no {line:?} in {seen}"))
    };
    assert!(
        at("service create app_web") < at("service remove app_web"),
        "{seen}"
    );
    assert!(
        at("service create app_db") < at("service remove app_db"),
        "{seen}"
    );
    assert!(lines.iter().all(|l| l.starts_with("service ")), "{seen}");

    // --since replays them; --until ends the stream.
    let replay = ok_out(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "type=service",
        "--filter",
        "event=create",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    let mut names: Vec<&str> = replay.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["app_db", "app_web"], "{replay}");
}

/// An IPv4 address of this machine off loopback, if it has one.
fn global_ipv4() -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_owned)
}

/// `docker ARGS` against `DOCKER_HOST=tcp://host`, with TLS from `certs`
/// (`DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH`) when given.
/// `GET path` over TLS to `host`, checking its certificate against `ca`,
/// with the client certificate in `client` if given: the status line and
/// the body.
fn tls_get(host: &str, path: &str, ca: &Path, client: Option<&Path>) -> (String, String) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::io::{Read as _, Write as _};
    use swarm_engine::tls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let ip: std::net::IpAddr = host.rsplit_once(':').unwrap().0.parse().unwrap();
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), ServerName::from(ip)).unwrap();
    let mut tcp = std::net::TcpStream::connect(host).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    let _ = tls.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn docker_tcp(d: &Daemons, host: &str, certs: Option<&Path>, args: &[&str]) -> (bool, String) {
    docker_tcp_stdin(d, host, certs, args, b"")
}

/// [`docker_tcp`] with `input` on stdin.
fn docker_tcp_stdin(
    d: &Daemons,
    host: &str,
    certs: Option<&Path>,
    args: &[&str],
    input: &[u8],
) -> (bool, String) {
    use std::io::Write as _;
    let mut cmd = std::process::Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", format!("tcp://{host}"))
        .env("DOCKER_CONFIG", d.data("tcp").join("docker-config"))
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(dir) = certs {
        cmd.env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", dir);
    }
    let mut child = cmd.spawn().expect("the docker CLI runs");
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

/// `swarmd --engine-addr` off loopback: the stock CLI with
/// `DOCKER_TLS_VERIFY=1` and a manager's client certificate drives the
/// swarm over TCP; without TLS, or with a worker's certificate, it is
/// turned away with a reason. An autolocked manager restarts locked until
/// `docker swarm unlock`. After `swarm leave`, no TLS is served.
#[test]
fn docker_over_tcp_with_mutual_tls_from_the_cluster_ca() {
    let Some(mut d) = daemons() else {
        return;
    };
    let Some(ip) = global_ipv4() else {
        eprintln!("SKIPPED: this machine has no address off loopback");
        return;
    };
    let host = format!("{ip}:{}", swarm_examples::daemons::free_port());
    let m1 = d.bare_with("m1", &["--engine-addr", &format!("tcp://{host}")]);
    d.bare("w1");
    // In no swarm, there is no certificate yet: the connection is closed.
    let client = d.data("m1").join("client");
    let (ok, out) = docker_tcp(&d, &host, None, &["info"]);
    assert!(!ok && out.contains("error during connect"), "{out}");
    swarm_init(&d, "m1", &m1);
    let (ok, token) = docker(&d, "m1", &["swarm", "join-token", "-q", "worker"]);
    assert!(ok, "{token}");
    let (ok, out) = docker(&d, "w1", &["swarm", "join", "--token", token.trim(), &m1]);
    assert!(ok, "{out}");

    // The certificate is made within a second of the init.
    let start = std::time::Instant::now();
    let out = loop {
        let (ok, out) = docker_tcp(&d, &host, Some(&client), &["node", "ls"]);
        if ok || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        out.contains("Leader") && out.contains("m1") && out.contains("w1"),
        "{out}"
    );
    let (ok, out) = docker_tcp(
        &d,
        &host,
        Some(&client),
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ],
    );
    assert!(ok && out.trim() == "active true", "{out}");

    // Plain HTTP to the TLS port: docker's own hint.
    let (ok, out) = docker_tcp(&d, &host, None, &["node", "ls"]);
    assert!(
        !ok && out.contains("Are you trying to connect to a TLS-enabled daemon without TLS?"),
        "{out}"
    );
    // A worker's node certificate is of the cluster CA, but may not drive
    // the swarm.
    let worker_certs = d.data("w1").join("certificates");
    let (ok, out) = docker_tcp(&d, &host, Some(&worker_certs), &["node", "ls"]);
    assert!(
        !ok && out.contains("may not drive the swarm: use a manager's client certificate"),
        "{out}"
    );
    // A browser without a certificate may GET the visualizer, read-only,
    // and nothing else; with the cluster's client certificate the page
    // is read-write.
    let ca = client.join("ca.pem");
    let (status, page) = tls_get(&host, "/ui", &ca, None);
    assert!(
        status.contains("200") && page.contains("<title>swarm</title>"),
        "{status}"
    );
    let (status, state) = tls_get(&host, "/ui/api/state", &ca, None);
    assert!(
        status.contains("200") && state.contains("\"access\":\"public\""),
        "{status} {state}"
    );
    for path in ["/services", "/uix", "/metrics", "/v1.49/ui"] {
        let (status, body) = tls_get(&host, path, &ca, None);
        assert!(
            status.contains("403") && body.contains("needs a client certificate"),
            "{path}: {status} {body}"
        );
    }
    let (status, state) = tls_get(&host, "/ui/api/state", &ca, Some(&client));
    assert!(
        status.contains("200") && state.contains("\"access\":\"read-write\""),
        "{status} {state}"
    );
    let (status, metrics) = tls_get(&host, "/metrics", &ca, Some(&client));
    assert!(
        status.contains("200") && metrics.contains("swarm_nodes{"),
        "{status}"
    );
    // Kept for after the leave, which removes the client directory.
    let kept = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(client.join(f), kept.path().join(f)).unwrap();
    }
    let (ok, out) = docker_tcp(
        &d,
        &host,
        Some(&client),
        &["version", "--format", "{{.Server.Os}}"],
    );
    assert!(ok && out.trim() == "linux", "{out}");

    // An autolocked manager restarts locked: docker info says so, and
    // `docker swarm unlock` takes the key from stdin.
    let (ok, out) = docker(&d, "m1", &["swarm", "update", "--autolock=true"]);
    assert!(ok, "{out}");
    let (ok, key) = docker(&d, "m1", &["swarm", "unlock-key", "-q"]);
    assert!(ok && key.trim().starts_with("SWMKEY-1-"), "{key}");
    let (ok, out) = docker(&d, "m1", &["swarm", "unlock"]);
    assert!(!ok && out.contains("swarm is not locked"), "{out}");
    d.stop("m1");
    d.resume_with("m1", &["--engine-addr", &format!("tcp://{host}")]);
    let start = std::time::Instant::now();
    let state = loop {
        let (_, out) = docker(&d, "m1", &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if out.trim() == "locked" || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state.trim(), "locked");
    let (ok, out) = docker(&d, "m1", &["node", "ls"]);
    assert!(
        !ok && out.contains("Swarm is encrypted and needs to be unlocked before it can be used."),
        "{out}"
    );
    let wrong = format!("SWMKEY-1-{}\n", "A".repeat(43));
    let (ok, out) = docker_stdin(&d, "m1", &["swarm", "unlock"], wrong.as_bytes());
    assert!(
        !ok && out.contains("swarm could not be unlocked: invalid key provided"),
        "{out}"
    );
    let (ok, out) = docker_stdin(&d, "m1", &["swarm", "unlock"], b"SWMKEY-1-short\n");
    assert!(!ok && out.contains("invalid unlock key"), "{out}");
    // The restarted manager serves TLS with the certificate it kept, so
    // the unlock may come over TCP too.
    let (ok, out) = docker_tcp(
        &d,
        &host,
        Some(&client),
        &["info", "--format", "{{.Swarm.LocalNodeState}}"],
    );
    assert!(ok && out.trim() == "locked", "{out}");
    let (ok, out) = docker_tcp_stdin(
        &d,
        &host,
        Some(&client),
        &["swarm", "unlock"],
        key.as_bytes(),
    );
    assert!(ok, "{out}");
    let (ok, out) = docker(&d, "m1", &["node", "ls"]);
    assert!(ok && out.contains("Leader"), "{out}");
    let (ok, out) = docker(&d, "m1", &["swarm", "update", "--autolock=false"]);
    assert!(ok, "{out}");

    // Out of the swarm, the daemon holds no certificate any more.
    let (ok, out) = docker(&d, "w1", &["swarm", "leave"]);
    assert!(ok, "{out}");
    let (ok, out) = docker(&d, "m1", &["swarm", "leave", "--force"]);
    assert!(ok, "{out}");
    let start = std::time::Instant::now();
    let out = loop {
        let (ok, out) = docker_tcp(&d, &host, Some(kept.path()), &["info"]);
        if !ok || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Closed at once: EOF or a reset, as the timing goes.
    assert!(out.contains("error during connect"), "{out}");
    assert!(
        !d.data("m1").join("engine-tls").exists(),
        "the kept certificate goes with the swarm"
    );
}

/// The spec of a service as the API shows it, with the ids that differ by
/// nature (networks', secrets', configs') left out, and stack `a`'s name
/// written as `b`'s.
fn spec_of(d: &Daemons, service: &str) -> serde_json::Value {
    let (ok, out) = docker(
        d,
        "m1",
        &["service", "inspect", service, "--format", "{{json .Spec}}"],
    );
    assert!(ok, "{out}");
    let text = out.trim().replace("\"a_", "\"b_").replace("\"a\"", "\"b\"");
    let mut spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    for n in spec["TaskTemplate"]["Networks"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        n.as_object_mut().unwrap().remove("Target");
    }
    for kind in ["Secrets", "Configs"] {
        for r in spec["TaskTemplate"]["ContainerSpec"][kind]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            r.as_object_mut()
                .unwrap()
                .remove(&format!("{}ID", &kind[..kind.len() - 1]));
        }
    }
    spec
}

/// `swarmctl stack deploy` reads the compose file itself and makes what
/// `docker stack deploy` (which reads it in the CLI) makes; a second
/// deploy changes nothing, a changed file updates only what changed,
/// `--prune` removes what the file lost, and each tool's `stack` commands
/// see the other's stacks.
#[test]
fn swarmctl_stack_deploy_makes_what_docker_stack_deploy_makes() {
    let Some(mut d) = daemons() else {
        return;
    };
    d.init("m1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
    std::fs::write(dir.path().join("conf.txt"), "level=info").unwrap();
    let compose = |replicas: u32, with_db: bool| {
        let marker = d.marker();
        let db = if with_db {
            format!("  db:\n    image: sleep\n    command: \"{marker}\"\n")
        } else {
            String::new()
        };
        format!(
            "version: \"3.8\"
services:
  web:
    image: sleep
    command: [\"{marker}\"]
    environment: {{MODE: prod}}
    labels: [tier=front]
    networks: [front]
    secrets: [pw]
    configs:
      - source: conf
        target: /etc/app.conf
    stop_grace_period: 5s
    deploy:
      replicas: {replicas}
      labels: {{team: a}}
      update_config: {{parallelism: 2, delay: 1s}}
      restart_policy: {{condition: on-failure}}
{db}networks:
  front:
secrets:
  pw: {{file: ./pw.txt}}
configs:
  conf: {{file: ./conf.txt}}
"
        )
    };
    let file = dir.path().join("compose.yml");
    std::fs::write(&file, compose(2, true)).unwrap();
    let path = file.to_str().unwrap();
    let out = d.ctl_ok("m1", &["stack", "deploy", "-c", path, "a"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "Creating config a_conf",
            "Creating network a_default",
            "Creating network a_front",
            "Creating secret a_pw",
            "Creating service a_db",
            "Creating service a_web"
        ],
        "{out}"
    );
    let (ok, out) = docker(&d, "m1", &["stack", "deploy", "-c", path, "b"]);
    assert!(ok, "{out}");
    // Again: docker sends every secret and config back, data included.
    let (ok, out) = docker(&d, "m1", &["stack", "deploy", "-c", path, "b"]);
    assert!(ok && out.contains("Updating service b_web"), "{out}");
    for service in ["web", "db"] {
        let ours = spec_of(&d, &format!("a_{service}"));
        let docker_s = spec_of(&d, &format!("b_{service}"));
        assert_eq!(ours, docker_s, "{service}: swarmctl's spec, then docker's");
    }

    // Again: nothing changes. Then only web's replicas, and db is pruned.
    let out = d.ctl_ok("m1", &["stack", "deploy", "-c", path, "a"]);
    assert_eq!(out, "", "a second deploy of the same file changes nothing");
    std::fs::write(&file, compose(3, false)).unwrap();
    let out = d.ctl_ok("m1", &["stack", "deploy", "-c", path, "a"]);
    assert!(out.starts_with("Updating service a_web (id: "), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = d.ctl_ok("m1", &["stack", "deploy", "--prune", "-c", path, "a"]);
    assert_eq!(out, "Removing service a_db\n");
    d.wait("a_web's 3 tasks", Duration::from_secs(30), || {
        d.running("m1", "a_web").len() == 3
    });

    // A secret's new data is refused, by both tools, and nothing changes.
    std::fs::write(dir.path().join("pw.txt"), "changed").unwrap();
    let out = d.ctl_at("m1", &["stack", "deploy", "-c", path, "a"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("failed to update secret a_pw: only updates to Labels are allowed"),
        "{text}"
    );
    let (ok, out) = docker(&d, "m1", &["stack", "deploy", "-c", path, "b"]);
    assert!(
        !ok && out.contains("only updates to Labels are allowed"),
        "{out}"
    );
    std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
    assert_eq!(d.running("m1", "a_web").len(), 3);

    // Each tool sees the other's stacks.
    let out = d.ctl_ok("m1", &["stack", "ls"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [["NAME", "SERVICES"], ["a", "1"], ["b", "2"]],
        "{out}"
    );
    let (ok, out) = docker(&d, "m1", &["stack", "services", "a"]);
    assert!(ok && out.contains("a_web") && out.contains("3/3"), "{out}");
    let out = d.ctl_ok("m1", &["stack", "ps", "b"]);
    assert!(out.contains("b_web.1") && out.contains("b_db.1"), "{out}");

    // Errors name what is wrong.
    std::fs::write(
        &file,
        "services:\n  web:\n    image: sleep\n    replicas: 2\n",
    )
    .unwrap();
    let out = d.ctl_at("m1", &["stack", "deploy", "-c", path, "a"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("services.web.replicas: unknown option"),
        "{text}"
    );

    // Removed by either tool, nothing is left.
    let out = d.ctl_ok("m1", &["stack", "rm", "a"]);
    assert!(
        out.contains("Removing service a_web")
            && out.contains("Removing secret a_pw")
            && out.contains("Removing network a_front"),
        "{out}"
    );
    let (ok, out) = docker(&d, "m1", &["stack", "rm", "b"]);
    assert!(ok, "{out}");
    d.wait("the stacks' networks gone", Duration::from_secs(60), || {
        let (_, out) = docker(&d, "m1", &["network", "ls", "--format", "{{.Name}}"]);
        !out.contains("a_") && !out.contains("b_")
    });
    let (_, out) = docker(&d, "m1", &["service", "ls", "-q"]);
    assert_eq!(out.trim(), "");
    let (_, out) = docker(&d, "m1", &["secret", "ls", "-q"]);
    assert_eq!(out.trim(), "");
}

/// `swarmd --node-generic-resource` advertises GPUs as dockerd's flag
/// does; `docker service create --generic-resource gpu=1` places each
/// task where one is free, tells it which in `DOCKER_RESOURCE_GPU`, and
/// leaves a task that finds none pending with the reason.
#[test]
fn generic_resources_go_to_the_tasks_that_reserve_them() {
    let Some(mut d) = daemons() else {
        return;
    };
    let m1 = d.bare_with(
        "m1",
        &[
            "--node-generic-resource",
            "gpu=GPU-a",
            "--node-generic-resource",
            "gpu=GPU-b",
            "--node-generic-resource",
            "ssd=3",
        ],
    );
    swarm_init(&d, "m1", &m1);
    let (ok, out) = docker(
        &d,
        "m1",
        &[
            "node",
            "inspect",
            "self",
            "--format",
            "{{json .Description.Resources.GenericResources}}",
        ],
    );
    let offered: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert!(ok, "{out}");
    assert_eq!(
        offered,
        serde_json::json!([
            {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-a"}},
            {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-b"}},
            {"DiscreteResourceSpec": {"Kind": "ssd", "Value": 3}}
        ])
    );

    let script = format!(
        "echo gpu=$DOCKER_RESOURCE_GPU ssd=$DOCKER_RESOURCE_SSD; exec sleep {}",
        d.marker()
    );
    let (ok, out) = docker(
        &d,
        "m1",
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "train",
            "--replicas",
            "3",
            "--generic-resource",
            "gpu=1",
            "--generic-resource",
            "ssd=1",
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(ok, "{out}");
    let (_, out) = docker(
        &d,
        "m1",
        &[
            "service",
            "inspect",
            "train",
            "--format",
            "{{json .Spec.TaskTemplate.Resources.Reservations.GenericResources}}",
        ],
    );
    let reserved: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(
        reserved,
        serde_json::json!([
            {"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}},
            {"DiscreteResourceSpec": {"Kind": "ssd", "Value": 1}}
        ])
    );
    // Two GPUs: two tasks run, each with its own, and the third waits.
    d.wait("two tasks with a GPU each", Duration::from_secs(30), || {
        let (_, out) = docker(&d, "m1", &["service", "logs", "train"]);
        out.contains("gpu=GPU-a ssd=1") && out.contains("gpu=GPU-b ssd=1")
    });
    let (ok, out) = docker(
        &d,
        "m1",
        &[
            "service",
            "ps",
            "train",
            "--no-trunc",
            "--format",
            "{{.CurrentState}}|{{.Error}}",
        ],
    );
    assert!(ok, "{out}");
    let pending: Vec<&str> = out.lines().filter(|l| l.starts_with("Pending")).collect();
    assert_eq!(pending.len(), 1, "{out}");
    assert!(
        pending[0].contains("no suitable node (insufficient resources on 1 node)"),
        "{out}"
    );

    // The wire refuses what a service cannot reserve, naming the field.
    let (ok, out) = docker(
        &d,
        "m1",
        &["service", "create", "--generic-resource", "gpu=0", "sh"],
    );
    assert!(
        !ok && out.contains("Reservations.GenericResources"),
        "{out}"
    );
    let (ok, out) = docker(
        &d,
        "m1",
        &["service", "update", "--detach", "--replicas", "2", "train"],
    );
    assert!(ok, "{out}");
    d.wait(
        "the service settled on its two GPUs",
        Duration::from_secs(30),
        || {
            let (_, out) = docker(&d, "m1", &["service", "ls", "--format", "{{.Replicas}}"]);
            out.trim() == "2/2"
        },
    );
}
