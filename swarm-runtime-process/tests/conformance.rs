//! The process runtime against the runtime conformance suite, and what is
//! particular to processes: process groups, users, the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nix::sys::signal::kill;
use nix::unistd::{Pid, Uid};
use swarm_core::Id;
use swarm_core::model::{EndpointSpec, HealthCheck, Meta, Service, ServiceSpec, Task, TaskSpec};
use swarm_core::runtime::{
    FileKind, Health, LogOptions, Runtime, RuntimeError, RuntimeState, TaskFile,
};
use swarm_core::testing::{RuntimeFixtures, runtime_suite};
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use tokio::time::timeout;

struct Shell;

impl RuntimeFixtures for Shell {
    fn shell(&self, script: &str) -> TaskSpec {
        TaskSpec::command(vec!["/bin/sh".into(), "-c".into(), script.into()])
    }

    fn missing(&self) -> TaskSpec {
        TaskSpec::command(vec!["/nonexistent/program".into()])
    }
}

/// A runtime with its own state directory, deleted when dropped.
struct Fixture {
    runtime: ProcessRuntime,
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("swarm-process-test-{}-{name}", std::process::id()));
        let config = ProcessRuntimeConfig::default().with_state_dir(&dir);
        Self {
            runtime: ProcessRuntime::new(config).unwrap(),
            dir,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.runtime.shutdown_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn task(spec: TaskSpec) -> Task {
    let service = Service {
        meta: Meta::new(Id::generate()),
        spec: ServiceSpec::replicated("web", 1, Vec::new()),
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    };
    let mut task = Task::new(&service, 2, Some(Id::from("node-1")), Vec::new());
    task.spec = Arc::new(spec);
    task
}

const LIMIT: Duration = Duration::from_secs(10);

async fn run(runtime: &ProcessRuntime, spec: TaskSpec, files: &[TaskFile]) -> Task {
    let task = task(spec);
    timeout(LIMIT, runtime.prepare(&task, files))
        .await
        .expect("prepare hung")
        .unwrap();
    timeout(LIMIT, runtime.start(&task.meta.id))
        .await
        .expect("start hung")
        .unwrap();
    task
}

/// The task's stdout after it exited.
async fn output(runtime: &ProcessRuntime, id: &Id) -> Vec<String> {
    timeout(LIMIT, runtime.wait(id))
        .await
        .expect("wait hung")
        .unwrap();
    let logs = runtime.logs(id, LogOptions::default()).await.unwrap();
    timeout(LIMIT, logs.map(|l| l.line).collect())
        .await
        .expect("logs hung")
}

/// The first line the task prints.
async fn first_line(runtime: &ProcessRuntime, id: &Id) -> String {
    let mut logs = runtime
        .logs(
            id,
            LogOptions {
                follow: true,
                tail: None,
            },
        )
        .await
        .unwrap();
    timeout(LIMIT, logs.next())
        .await
        .expect("no output")
        .expect("the task printed nothing")
        .line
}

/// Whether process `pid` is gone (or a zombie: dead, not yet reaped by its
/// new parent).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => kill(Pid::from_raw(pid), None).is_err(),
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn assert_gone(pid: i32, what: &str) {
    timeout(Duration::from_secs(3), async {
        while !gone(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: process {pid} is still alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_runtime_suite() {
    let fixture = Fixture::new("suite");
    timeout(
        Duration::from_secs(60),
        runtime_suite(&fixture.runtime, &Shell),
    )
    .await
    .expect("the runtime suite hung");
    assert!(
        fixture.runtime.list().await.unwrap().is_empty(),
        "the suite removes its tasks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_die_with_the_task() {
    let fixture = Fixture::new("children");
    let rt = &fixture.runtime;
    let script = "sleep 1000 & echo $!; wait";

    // Stopped: SIGTERM reaches the whole process group.
    let stopped = run(rt, Shell.shell(script), &[]).await;
    let child: i32 = first_line(rt, &stopped.meta.id).await.parse().unwrap();
    assert!(!gone(child), "the child runs while the task runs");
    timeout(LIMIT, rt.stop(&stopped.meta.id, Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert_gone(child, "a child of a stopped task").await;

    // Exited on its own: what is left of its group is killed.
    let exited = run(rt, Shell.shell("sleep 1000 & echo $!"), &[]).await;
    let child: i32 = output(rt, &exited.meta.id).await[0].parse().unwrap();
    assert_gone(child, "a child of a task that exited").await;

    // Removed while running.
    let removed = run(rt, Shell.shell(script), &[]).await;
    let child: i32 = first_line(rt, &removed.meta.id).await.parse().unwrap();
    timeout(LIMIT, rt.remove(&removed.meta.id))
        .await
        .unwrap()
        .unwrap();
    assert_gone(child, "a child of a removed task").await;
}

#[tokio::test]
async fn shutdown_all_kills_every_task_and_forgets_it() {
    let fixture = Fixture::new("shutdown");
    let rt = &fixture.runtime;
    let task = run(
        rt,
        Shell.shell("echo $$; while true; do sleep 1; done"),
        &[],
    )
    .await;
    let pid: i32 = first_line(rt, &task.meta.id).await.parse().unwrap();
    let dir = fixture.dir.join(task.meta.id.as_str());
    assert!(dir.is_dir(), "a prepared task has its directory");
    rt.shutdown_all();
    assert!(rt.list().await.unwrap().is_empty());
    assert!(!dir.exists(), "shutdown_all deletes the task directories");
    assert_gone(pid, "a task after shutdown_all").await;
}

#[tokio::test]
async fn task_environment_names_the_task_and_leaks_nothing_else() {
    let fixture = Fixture::new("env");
    let rt = &fixture.runtime;
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "cargo sets CARGO_MANIFEST_DIR for tests; the check below relies on it"
    );
    // The program's arguments are `command`, then `args`.
    let spec = TaskSpec {
        image: "sh".into(),
        command: vec![
            "-c".into(),
            "echo \"$SWARM_TASK_ID|$SWARM_SERVICE_NAME|$SWARM_TASK_SLOT|$SWARM_NODE_ID|$SWARM_TASK_NAME\"; \
             echo \"manifest=${CARGO_MANIFEST_DIR:-unset}\"; echo \"$0 $1\""
                .into(),
        ],
        args: vec!["first".into(), "second".into()],
        ..TaskSpec::default()
    };
    let task = run(rt, spec, &[]).await;
    let lines = output(rt, &task.meta.id).await;
    assert_eq!(
        lines,
        [
            format!("{}|web|2|node-1|web.2", task.meta.id),
            "manifest=unset".to_owned(),
            "first second".to_owned(),
        ]
    );
    match rt.start(&task.meta.id).await {
        Err(RuntimeError::InvalidState(msg)) => assert!(msg.contains("runs only once"), "{msg}"),
        other => panic!("starting an exited task must fail with InvalidState, got {other:?}"),
    }
}

#[tokio::test]
async fn no_new_privileges_reaches_the_process_and_generic_resources_its_environment() {
    let fixture = Fixture::new("privs");
    let rt = &fixture.runtime;
    let script = "grep NoNewPrivs /proc/self/status; echo gpu=$DOCKER_RESOURCE_GPU";
    let mut spec = Shell.shell(script);
    spec.privileges = Some(swarm_core::model::Privileges {
        no_new_privileges: true,
        seccomp: Some(swarm_core::model::Seccomp::Unconfined),
        ..Default::default()
    });
    let mut locked = task(spec);
    locked.assigned_generic_resources = vec![swarm_core::model::GenericResource::Named {
        kind: "gpu".into(),
        value: "GPU-a".into(),
    }];
    timeout(LIMIT, rt.prepare(&locked, &[]))
        .await
        .unwrap()
        .unwrap();
    timeout(LIMIT, rt.start(&locked.meta.id))
        .await
        .unwrap()
        .unwrap();
    let lines = output(rt, &locked.meta.id).await;
    let squeeze = |l: &String| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        lines.iter().map(squeeze).collect::<Vec<_>>(),
        ["NoNewPrivs: 1", "gpu=GPU-a"]
    );
    let plain = run(rt, Shell.shell(script), &[]).await;
    let lines = output(rt, &plain.meta.id).await;
    assert_eq!(squeeze(&lines[0]), "NoNewPrivs: 0", "{lines:?}");
}

#[tokio::test]
async fn specs_that_cannot_run_are_rejected_at_prepare() {
    let fixture = Fixture::new("invalid");
    let rt = &fixture.runtime;
    let rejected = |spec: TaskSpec| async move {
        match timeout(LIMIT, rt.prepare(&task(spec), &[]))
            .await
            .expect("prepare hung")
        {
            Err(RuntimeError::InvalidSpec(msg)) => msg,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    };

    let msg = rejected(TaskSpec::command(vec!["nope-no-such-program".into()])).await;
    assert!(
        msg.starts_with(
            "program \"nope-no-such-program\" not found: it is in no directory of PATH"
        ),
        "{msg}"
    );

    let mut spec = Shell.shell("true");
    spec.workdir = Some("/nonexistent/dir".into());
    let msg = rejected(spec).await;
    assert!(
        msg.contains("working directory \"/nonexistent/dir\" does not exist"),
        "{msg}"
    );

    let mut spec = Shell.shell("true");
    spec.user = Some("no-such-user-here".into());
    let msg = rejected(spec).await;
    assert!(
        msg.contains("there is no user \"no-such-user-here\" on this node"),
        "{msg}"
    );

    let mut spec = Shell.shell("true");
    spec.mounts
        .push("type=tmpfs,target=/scratch".parse().unwrap());
    let msg = rejected(spec).await;
    assert!(
        msg.contains("the process runtime cannot mount filesystems (tmpfs mount at /scratch)"),
        "{msg}"
    );

    let mut spec = Shell.shell("true");
    spec.read_only = true;
    spec.cap_add = vec!["NET_ADMIN".into()];
    let msg = rejected(spec).await;
    assert!(
        msg.starts_with("the process runtime cannot honour --read-only, --cap-add:"),
        "{msg}"
    );

    let mut spec = Shell.shell("true");
    spec.isolation = Some("hyperv".into());
    let msg = rejected(spec).await;
    assert!(
        msg.starts_with("the process runtime cannot honour --isolation:"),
        "{msg}"
    );

    let mut translated = task(Shell.shell("true"));
    translated.endpoint = Arc::new(EndpointSpec {
        ports: vec!["8080:80".parse().unwrap()],
        ..EndpointSpec::default()
    });
    match rt.prepare(&translated, &[]).await {
        Err(RuntimeError::InvalidSpec(msg)) => assert!(
            msg.contains("cannot have its port 80 published as 8080"),
            "{msg}"
        ),
        other => panic!("expected InvalidSpec for a translated port, got {other:?}"),
    }

    assert!(
        rt.list().await.unwrap().is_empty(),
        "a rejected task is not kept"
    );
}

#[tokio::test]
async fn user_field_switches_user_as_root_and_is_refused_otherwise() {
    let fixture = Fixture::new("user");
    let rt = &fixture.runtime;
    let mut spec = Shell.shell("id -u; cat \"$SWARM_SECRETS_DIR/token\"");
    let secret = TaskFile {
        kind: FileKind::Secret,
        name: "token".into(),
        target: "token".into(),
        mode: 0o400,
        uid: 0,
        gid: 0,
        data: b"t0ken\n".to_vec(),
    };
    if Uid::effective().is_root() {
        spec.user = Some("65534".into());
        let task = run(rt, spec, &[secret]).await;
        assert_eq!(
            output(rt, &task.meta.id).await,
            ["65534", "t0ken"],
            "as root, the task runs as its user and can read its own secrets"
        );
    } else {
        spec.user = Some("0".into());
        match timeout(LIMIT, rt.prepare(&task(spec), &[secret]))
            .await
            .expect("prepare hung")
        {
            Err(RuntimeError::InvalidSpec(msg)) => {
                assert!(
                    msg.contains("only root can run tasks as another user"),
                    "{msg}"
                );
            }
            other => panic!("expected InvalidSpec for another user, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn failures_within_the_start_period_do_not_count() {
    let fixture = Fixture::new("start-period");
    let rt = &fixture.runtime;
    let mut spec = Shell.shell("while true; do sleep 1; done");
    spec.healthcheck = Some(HealthCheck {
        test: vec!["CMD-SHELL".into(), "exit".into(), "1".into()],
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(1),
        retries: 1,
        start_period: Duration::from_millis(1500),
    });
    let task = run(rt, spec, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = rt.inspect(&task.meta.id).await.unwrap();
    assert_eq!(
        status.health,
        Some(Health::Starting),
        "failures in the start period do not count"
    );
    timeout(LIMIT, async {
        while rt.inspect(&task.meta.id).await.unwrap().health != Some(Health::Unhealthy) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the task never became unhealthy after its start period");
    assert_eq!(
        rt.inspect(&task.meta.id).await.unwrap().state,
        RuntimeState::Running
    );
}

#[tokio::test]
async fn a_task_is_stopped_with_its_stop_signal() {
    let fixture = Fixture::new("stop-signal");
    let rt = &fixture.runtime;
    // SIGINT runs the trap; SIGTERM would kill the shell (status 143).
    let mut spec = Shell
        .shell("trap 'echo interrupted; exit 3' INT; echo ready; while :; do sleep 0.05; done");
    spec.stop_signal = Some("SIGINT".into());
    let task = run(rt, spec, &[]).await;
    assert_eq!(first_line(rt, &task.meta.id).await, "ready");
    timeout(LIMIT, rt.stop(&task.meta.id, Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    let status = timeout(LIMIT, rt.wait(&task.meta.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code, 3, "the trap ran: {status:?}");
    assert_eq!(output(rt, &task.meta.id).await, ["ready", "interrupted"]);
}
