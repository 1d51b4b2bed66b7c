//! The docker runtime against the runtime conformance suite, on the real
//! engine of this machine, and what is particular to containers: images,
//! mounts, resources, ownership, ingress.
//!
//! Without an engine each test says SKIPPED and passes, unless
//! `SWARM_REQUIRE_DOCKER` is set (CI sets it where an engine runs).

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use futures::StreamExt;
use swarm_core::Id;
use swarm_core::model::{EndpointSpec, Meta, Service, ServiceSpec, Task, TaskSpec};
use swarm_core::runtime::{Health, LogOptions, Runtime, RuntimeError, RuntimeState};
use swarm_core::testing::{RuntimeFixtures, runtime_suite};
use swarm_runtime_docker::testing::{NodeContainers, engine, ok_body, test_image};
use swarm_runtime_docker::{DockerRuntime, DockerRuntimeConfig, LABEL_NODE_ID, LABEL_TASK_ID};
use tokio::time::timeout;

struct Tools(&'static str);

impl RuntimeFixtures for Tools {
    fn shell(&self, script: &str) -> TaskSpec {
        TaskSpec {
            image: self.0.into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            stop_grace_period: Duration::from_secs(10),
            ..TaskSpec::default()
        }
    }

    fn missing(&self) -> TaskSpec {
        TaskSpec {
            image: "swarm-test/no-such-image:404".into(),
            ..TaskSpec::default()
        }
    }
}

/// A runtime scoped to a node of its own, whose containers are removed
/// when dropped, and the image its tests run.
struct Fixture {
    runtime: DockerRuntime,
    docker: Docker,
    node: Id,
    image: &'static str,
    /// Whatever a failed test left goes with the fixture.
    _cleanup: NodeContainers,
}

impl Fixture {
    async fn new(test: &str) -> Option<Self> {
        let docker = engine(test).await?;
        let image = test_image(&docker).await;
        let node = Id::from(format!("test-{}-{}", std::process::id(), Id::generate()).as_str());
        let mut config = DockerRuntimeConfig::default()
            .with_node_id(node.clone())
            .with_ingress_refresh(Duration::from_millis(200));
        // A pull that no registry answers fails fast here; elsewhere it
        // must not outlast the tests' own limits.
        config.pull_timeout = Duration::from_secs(10);
        let runtime = DockerRuntime::with_client(docker.clone(), config)
            .await
            .unwrap();
        Some(Self {
            runtime,
            docker,
            _cleanup: NodeContainers(node.to_string()),
            node,
            image,
        })
    }

    fn task(&self, spec: TaskSpec) -> Task {
        let service = Service {
            meta: Meta::new(Id::generate()),
            spec: ServiceSpec::replicated("web", 1, Vec::new()),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut task = Task::new(&service, 1, Some(self.node.clone()), Vec::new());
        task.spec = Arc::new(spec);
        task
    }

    fn shell(&self, script: &str) -> TaskSpec {
        Tools(self.image).shell(script)
    }

    async fn run(&self, task: &Task) {
        timeout(LIMIT, self.runtime.prepare(task, &[]))
            .await
            .expect("prepare hung")
            .unwrap();
        timeout(LIMIT, self.runtime.start(&task.meta.id))
            .await
            .expect("start hung")
            .unwrap();
    }

    /// The task's output once it exited.
    async fn output(&self, id: &Id) -> Vec<String> {
        timeout(LIMIT, self.runtime.wait(id))
            .await
            .expect("wait hung")
            .unwrap();
        let logs = self.runtime.logs(id, LogOptions::default()).await.unwrap();
        timeout(LIMIT, logs.map(|l| l.line).collect())
            .await
            .expect("logs hung")
    }

    async fn rejected(&self, task: &Task) -> String {
        match timeout(LIMIT, self.runtime.prepare(task, &[]))
            .await
            .expect("prepare hung")
        {
            Err(RuntimeError::InvalidSpec(msg)) => msg,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }
}

const LIMIT: Duration = Duration::from_secs(20);

/// A file's size, 0 if it is missing.
fn walk_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_runtime_suite() {
    let Some(f) = Fixture::new("passes_the_runtime_suite").await else {
        return;
    };
    timeout(
        Duration::from_secs(120),
        runtime_suite(&f.runtime, &Tools(f.image)),
    )
    .await
    .expect("the runtime suite hung");
    assert!(
        f.runtime.list().await.unwrap().is_empty(),
        "the suite removes its tasks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_carry_the_task_and_are_adopted_by_a_new_runtime() {
    let Some(f) = Fixture::new("adoption").await else {
        return;
    };
    let task = f.task(f.shell("echo ready; while true; do sleep 1 & wait $!; done"));
    f.run(&task).await;
    let id = &task.meta.id;
    let status = f.runtime.inspect(id).await.unwrap();
    let inspected = f
        .docker
        .inspect_container(
            status.runtime_id.as_deref().unwrap(),
            None::<InspectContainerOptions>,
        )
        .await
        .unwrap();
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(labels[LABEL_TASK_ID], id.as_str());
    assert_eq!(labels["swarm.service.id"], task.service_id.as_str());
    assert_eq!(labels["swarm.service.name"], "web");
    assert_eq!(labels[LABEL_NODE_ID], f.node.as_str());
    assert_eq!(inspected.name.unwrap(), format!("/web.1.{id}"));

    // A new runtime for the same node (an agent that restarted) finds the
    // container by its labels, and takes it up where it is.
    let config = DockerRuntimeConfig::default().with_node_id(f.node.clone());
    let again = DockerRuntime::with_client(f.docker.clone(), config)
        .await
        .unwrap();
    assert_eq!(again.list().await.unwrap(), std::slice::from_ref(id));
    assert_eq!(
        again.inspect(id).await.unwrap().state,
        RuntimeState::Running
    );
    timeout(LIMIT, again.prepare(&task, &[]))
        .await
        .unwrap()
        .expect("prepare of an adopted task is a no-op");
    assert_eq!(
        again.inspect(id).await.unwrap().runtime_id,
        status.runtime_id,
        "no duplicate"
    );
    timeout(LIMIT, again.stop(id, Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        again.inspect(id).await.unwrap().state,
        RuntimeState::Exited(_)
    ));

    // Another node's runtime on the same engine does not see it.
    let other = DockerRuntimeConfig::default().with_node_id("someone-else".into());
    let other = DockerRuntime::with_client(f.docker.clone(), other)
        .await
        .unwrap();
    assert!(!other.list().await.unwrap().contains(id));

    again.remove(id).await.unwrap();
    assert!(f.runtime.list().await.unwrap().is_empty());
    assert!(matches!(
        f.runtime.inspect(id).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_the_engine_cannot_run_are_rejected_with_reasons() {
    let Some(f) = Fixture::new("rejections").await else {
        return;
    };
    let missing = f.task(TaskSpec {
        image: "busybox:latest-but-not-here".into(),
        ..TaskSpec::default()
    });
    let msg = f.rejected(&missing).await;
    assert!(
        msg.starts_with("image busybox:latest-but-not-here not found locally"),
        "{msg}"
    );

    let no_pull = DockerRuntime::with_client(
        f.docker.clone(),
        DockerRuntimeConfig::default()
            .with_pull(false)
            .with_ingress(false),
    )
    .await
    .unwrap();
    let untagged = f.task(TaskSpec {
        image: "swarm-test/absent".into(),
        ..TaskSpec::default()
    });
    match no_pull.prepare(&untagged, &[]).await {
        Err(RuntimeError::InvalidSpec(msg)) => assert_eq!(
            msg,
            "image swarm-test/absent:latest not found locally, and this node does not pull images: load it with `docker load` or `docker import`"
        ),
        other => panic!("{other:?}"),
    }

    let mut bad_mount = f.shell("true");
    bad_mount.mounts.push(
        "type=bind,source=/nonexistent/swarm-test,target=/data"
            .parse()
            .unwrap(),
    );
    let task = f.task(bad_mount);
    let msg = match timeout(LIMIT, f.runtime.prepare(&task, &[])).await.unwrap() {
        Err(RuntimeError::InvalidSpec(msg)) => msg,
        Ok(()) => match f.runtime.start(&task.meta.id).await {
            Err(RuntimeError::InvalidSpec(msg)) => msg,
            other => panic!("a bind mount of a missing path must not start: {other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("/nonexistent/swarm-test"), "{msg}");
    f.runtime.remove(&task.meta.id).await.unwrap();

    let mut no_program = f.shell("true");
    no_program.args = vec!["/no/such/program".into()];
    let task = f.task(no_program);
    timeout(LIMIT, f.runtime.prepare(&task, &[]))
        .await
        .unwrap()
        .unwrap();
    match f.runtime.start(&task.meta.id).await {
        Err(RuntimeError::InvalidSpec(msg)) => {
            assert!(
                msg.starts_with("docker cannot start the container: "),
                "{msg}"
            );
            assert!(msg.contains("/no/such/program"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    f.runtime.remove(&task.meta.id).await.unwrap();

    // A stranger's container holds the name.
    let task = f.task(f.shell("true"));
    let name = format!("web.1.{}", task.meta.id);
    let made = std::process::Command::new("docker")
        .args(["create", "--name", &name, f.image, "true"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let msg = f.rejected(&task).await;
    assert!(
        msg.contains(&format!(
            "a container named {name} already exists and is not this task's"
        )),
        "{msg}"
    );
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &name])
        .output();
    assert!(
        f.runtime.list().await.unwrap().is_empty(),
        "nothing is kept of a rejected task"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_on_a_tmpfs_with_their_owner_and_never_in_the_writable_layer() {
    use swarm_core::runtime::{FileKind, TaskFile};
    let Some(f) = Fixture::new("secrets").await else {
        return;
    };
    let secret = TaskFile {
        kind: FileKind::Secret,
        name: "db-pass".into(),
        target: "db_pass".into(),
        mode: 0o440,
        uid: 33,
        gid: 44,
        data: b"s3cr3t-bytes".to_vec(),
    };
    let config = TaskFile {
        kind: FileKind::Config,
        name: "app".into(),
        target: "/etc/app.conf".into(),
        mode: 0o444,
        uid: 0,
        gid: 0,
        data: b"port=80".to_vec(),
    };
    let task = f.task(f.shell(
        "cat /run/secrets/db_pass; echo; cat /etc/app.conf; echo; \
         set -- $(ls -ln /run/secrets/db_pass); echo $1 $3 $4; \
         grep -c ' /run/secrets/db_pass tmpfs ' /proc/mounts; sleep 2",
    ));
    timeout(LIMIT, f.runtime.prepare(&task, &[secret, config]))
        .await
        .expect("prepare hung")
        .unwrap();
    timeout(LIMIT, f.runtime.start(&task.meta.id))
        .await
        .expect("start hung")
        .unwrap();
    // While it runs, the container's writable layer holds neither file.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label={LABEL_TASK_ID}={}", task.meta.id),
        ])
        .output()
        .unwrap();
    let name = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(!name.is_empty(), "the task's container runs");
    // (`docker diff` lists the mount points, empty files; the bytes are
    // what must not be there.)
    let upper = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", &name])
        .output()
        .unwrap();
    let upper = String::from_utf8_lossy(&upper.stdout).trim().to_owned();
    if std::path::Path::new(&upper).is_dir() {
        let grep = std::process::Command::new("grep")
            .args(["-rl", "s3cr3t-bytes", &upper])
            .output()
            .unwrap();
        assert!(
            grep.stdout.is_empty(),
            "the secret's bytes are in the writable layer: {}",
            String::from_utf8_lossy(&grep.stdout)
        );
        let leaked = walk_size(
            std::path::Path::new(&upper)
                .join("run/secrets/db_pass")
                .as_path(),
        );
        assert_eq!(leaked, 0, "the layer holds a mount point, not the file");
    } else {
        eprintln!("no overlay upper directory to look into ({upper:?}): layer check skipped");
    }
    let out = f.output(&task.meta.id).await;
    assert_eq!(
        out,
        ["s3cr3t-bytes", "port=80", "-r--r----- 33 44", "1"],
        "the secret's bytes, mode and owner, on a tmpfs; the config at its path"
    );
    // The task is over: its files left the node.
    let dir = std::path::Path::new("/dev/shm/swarm-files").join(task.meta.id.as_str());
    assert!(!dir.exists(), "{} outlived the task", dir.display());
    f.runtime.remove(&task.meta.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_users_and_limits_reach_the_container() {
    let Some(f) = Fixture::new("mounts").await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("swarm-docker-bind-{}", Id::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "from the node").unwrap();
    let volume = format!("swarm-test-{}", Id::generate());
    let mut spec = f.shell(
        "cat /data/hello.txt; echo; touch /data/x 2>/dev/null || echo read-only; \
         echo kept > /vol/f; cat /vol/f; grep -c ' /scratch tmpfs ' /proc/mounts; id -u; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    );
    spec.mounts = vec![
        format!("type=bind,source={},target=/data,readonly", dir.display())
            .parse()
            .unwrap(),
        format!("type=volume,source={volume},target=/vol")
            .parse()
            .unwrap(),
        "type=tmpfs,target=/scratch".parse().unwrap(),
    ];
    spec.user = Some("65534".into());
    spec.resources.limits.memory_bytes = 64 << 20;
    let task = f.task(spec);
    // The volume is made by root; let the task's user write to it.
    let _ = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &format!("{volume}:/vol"),
            f.image,
            "chmod",
            "777",
            "/vol",
        ])
        .output()
        .unwrap();
    f.run(&task).await;
    let out = f.output(&task.meta.id).await;
    assert_eq!(
        out,
        [
            "from the node",
            "read-only",
            "kept",
            "1",
            "65534",
            &(64u64 << 20).to_string()
        ],
        "bind (read-only), volume, tmpfs, user and memory limit"
    );
    f.runtime.remove(&task.meta.id).await.unwrap();
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", &volume])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_ports_answer_on_the_node_from_each_container_in_turn() {
    let Some(f) = Fixture::new("ingress").await else {
        return;
    };
    let port = free_port();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut task = f.task(f.shell("hostname > /tmp/index.html; swarm-testd http 80 /tmp"));
        task.endpoint = Arc::new(EndpointSpec {
            ports: vec![format!("{port}:80").parse().unwrap()],
            ..EndpointSpec::default()
        });
        f.run(&task).await;
        tasks.push(task);
    }
    let served = timeout(LIMIT, async {
        loop {
            let ports = f.runtime.ingress_ports();
            if ports.get(&port).is_some_and(|b| b.len() == 2) {
                return ports;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the ingress port never had both containers");
    assert_eq!(served.len(), 1);
    // Each server may take a moment to listen after its container runs.
    let answers = timeout(LIMIT, async {
        let mut answers = std::collections::BTreeSet::new();
        while answers.len() < 2 {
            match try_get(port).await {
                Some(body) => {
                    answers.insert(body);
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        answers
    })
    .await
    .expect("both containers answer, in turn");
    assert_eq!(answers.len(), 2, "{answers:?}");

    for t in &tasks {
        f.runtime.remove(&t.meta.id).await.unwrap();
    }
    timeout(LIMIT, async {
        while !f.runtime.ingress_ports().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("no ingress port is listed once no container backs it");
    timeout(LIMIT, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the port is closed once no container backs it");
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_bind_on_the_node() {
    let Some(f) = Fixture::new("host ports").await else {
        return;
    };
    let port = free_port();
    let mut task = f.task(f.shell("echo host > /tmp/index.html; swarm-testd http 80 /tmp"));
    task.endpoint = Arc::new(EndpointSpec {
        ports: vec![
            format!("mode=host,published={port},target=80")
                .parse()
                .unwrap(),
        ],
        ..EndpointSpec::default()
    });
    f.run(&task).await;
    let body = timeout(LIMIT, async {
        // The engine's proxy takes connections before the server listens.
        loop {
            if let Some(body) = try_get(port).await {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the host port never answered");
    assert_eq!(body, "host");
    assert!(
        f.runtime.ingress_ports().is_empty(),
        "host ports are the engine's, not the mesh's"
    );
    f.runtime.remove(&task.meta.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_s_own_health_check_is_the_task_s_health() {
    let Some(f) = Fixture::new("image health check").await else {
        return;
    };
    let image = "swarm-test/tools-checked:1";
    let dockerfile = format!(
        "FROM {}\nHEALTHCHECK --interval=200ms --timeout=2s --retries=1 --start-period=60s CMD test -e /tmp/healthy\n",
        f.image
    );
    let mut build = std::process::Command::new("docker")
        .args(["build", "-q", "-t", image, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut build.stdin.take().unwrap(), dockerfile.as_bytes()).unwrap();
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "docker build of {image}: {built:?}");

    // The spec has no health check; the image's applies.
    let mut spec =
        f.shell("echo ready; sleep 2; touch /tmp/healthy; while true; do sleep 1 & wait $!; done");
    spec.image = image.into();
    let task = f.task(spec);
    f.run(&task).await;
    let first = f.runtime.inspect(&task.meta.id).await.unwrap();
    assert_eq!(first.health, Some(Health::Starting), "{first:?}");
    timeout(LIMIT, async {
        while f.runtime.inspect(&task.meta.id).await.unwrap().health != Some(Health::Healthy) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the image's health check never passed");
    f.runtime.remove(&task.meta.id).await.unwrap();
}

#[tokio::test]
async fn an_engine_that_does_not_answer_is_unavailable() {
    // A socket file nobody listens on.
    let path = std::env::temp_dir().join(format!("swarm-no-docker-{}.sock", Id::generate()));
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let docker =
        Docker::connect_with_unix(path.to_str().unwrap(), 5, bollard::API_DEFAULT_VERSION).unwrap();
    match DockerRuntime::with_client(docker, DockerRuntimeConfig::default()).await {
        Err(RuntimeError::Unavailable(msg)) => assert!(
            msg.starts_with(
                "cannot reach the Docker daemon (is it running, and is DOCKER_HOST right?)"
            ),
            "{msg}"
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let _ = std::fs::remove_file(&path);
}

/// The body of `GET /` on the node's `port`, if it answers 200.
async fn try_get(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = timeout(LIMIT, tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .ok()?
        .ok()?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
    let mut reply = String::new();
    timeout(LIMIT, conn.read_to_string(&mut reply))
        .await
        .ok()?
        .ok()?;
    ok_body(&reply)
}
