//! The conformance suite every `Runtime` passes.
//!
//! Each check is a private async fn that makes its own tasks (fresh ids),
//! removes them when it is done, and panics with a message naming the
//! promise of the [`Runtime`] contract that was broken. The checks run
//! concurrently, which also exercises the promise that every method is safe
//! to call concurrently for different tasks. Scripts use POSIX `sh` and
//! commands busybox has (`echo`, `cat`, `sleep`, `trap`, `exit`, `test`,
//! `pwd`), with whole-second sleeps, so that a container runtime can run
//! them in a busybox image.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;

use crate::Id;
use crate::model::{FileReference, HealthCheck, Meta, Service, ServiceSpec, Task, TaskSpec};
use crate::runtime::{
    ExitStatus, FileKind, Health, LogLine, LogOptions, LogSource, LogStream, Runtime, RuntimeError,
    RuntimeState, RuntimeStatus, TaskFile,
};

/// Task specs for the runtime under test. Each runtime spells a shell
/// command its own way: the process runtime runs `/bin/sh -c SCRIPT`, the
/// docker runtime runs `sh -c SCRIPT` in a local busybox image.
pub trait RuntimeFixtures: Send + Sync {
    /// A task that runs `script` with a POSIX shell. The runtime must set
    /// `SWARM_SECRETS_DIR` and `SWARM_CONFIGS_DIR` in its environment to the
    /// directories holding the task's secret and config files.
    fn shell(&self, script: &str) -> TaskSpec;

    /// A task that can never be prepared (a program or image that does not
    /// exist).
    fn missing(&self) -> TaskSpec;
}

/// Runs every check of the suite against `runtime`; panics on the first
/// failure with a message naming the broken promise.
///
/// The checks:
/// - `info` reports a hostname, a platform and non-zero resources;
/// - the lifecycle: `prepare` is idempotent, `start` runs the task and is a
///   no-op on a running task, `stop` ends it, `inspect` follows along;
/// - exit codes reach `wait`, which answers the same however often it is
///   called, at once once the task has exited;
/// - logs keep each stream's lines in order with their source and a
///   timestamp, honour `tail`, and a follow stream gets every line, history
///   and live, and ends when the task exits;
/// - `stop` returns quickly for a task that exits on SIGTERM, and kills a
///   task that ignores it (children included) after the grace period;
/// - the task sees its environment, working directory, secrets and configs;
/// - health checks make a task healthy or unhealthy;
/// - a task that cannot run fails `prepare` with
///   [`RuntimeError::InvalidSpec`];
/// - `list` and `remove` agree, and `remove` stops a running task;
/// - calls on unknown tasks fail with [`RuntimeError::NotFound`], except
///   `remove`, which is a no-op.
///
/// The whole suite takes a few seconds.
pub async fn runtime_suite<R: Runtime>(runtime: &R, fixtures: &dyn RuntimeFixtures) {
    let r = runtime;
    let f = fixtures;
    tokio::join!(
        info_describes_the_node(r),
        lifecycle(r, f),
        exit_codes_reach_wait(r, f),
        logs_keep_order_source_and_tail(r, f),
        follow_gets_every_line_and_ends_on_exit(r, f),
        stop_returns_when_the_task_exits_on_sigterm(r, f),
        stop_kills_a_task_that_ignores_sigterm(r, f),
        task_sees_its_env_and_workdir(r, f),
        task_sees_its_secrets_and_configs(r, f),
        passing_health_check_makes_the_task_healthy(r, f),
        failing_health_check_makes_the_task_unhealthy(r, f),
        missing_program_is_an_invalid_spec(r, f),
        list_and_remove_agree(r, f),
        unknown_tasks_are_not_found(r),
    );
}

/// The longest any single runtime call may take in the suite.
const CALL: Duration = Duration::from_secs(10);

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("runtime suite: {what} did not finish within {limit:?}"),
    }
}

/// Awaits a runtime call, panicking if it hangs or fails.
async fn ok<T>(what: &str, fut: impl Future<Output = Result<T, RuntimeError>>) -> T {
    match within(CALL, what, fut).await {
        Ok(v) => v,
        Err(e) => panic!("runtime suite: {what} failed: {e}"),
    }
}

/// A task of a throwaway service, with `spec` and a fresh id.
fn task(spec: TaskSpec) -> Task {
    let service = Service {
        meta: Meta::new(Id::generate()),
        spec: ServiceSpec::replicated("suite", 1, Vec::new()),
        previous_spec: None,
    };
    let mut task = Task::new(&service, 1, Some(Id::from("suite-node")), Vec::new());
    task.spec = Arc::new(spec);
    task
}

/// Prepares and starts a task running `script`; returns its id.
async fn run(runtime: &impl Runtime, spec: TaskSpec, files: &[TaskFile]) -> Id {
    let task = task(spec);
    let id = task.meta.id.clone();
    ok("prepare", runtime.prepare(&task, files)).await;
    ok("start", runtime.start(&id)).await;
    id
}

/// Waits for the task to exit, with a timeout.
async fn wait(runtime: &impl Runtime, id: &Id) -> ExitStatus {
    ok("wait", runtime.wait(id)).await
}

/// Removes the task at the end of a check.
async fn cleanup(runtime: &impl Runtime, id: &Id) {
    ok("remove", runtime.remove(id)).await;
}

/// Every log line of the task so far (no follow).
async fn history(runtime: &impl Runtime, id: &Id, tail: Option<usize>) -> Vec<LogLine> {
    let stream = ok(
        "logs without follow",
        runtime.logs(
            id,
            LogOptions {
                follow: false,
                tail,
            },
        ),
    )
    .await;
    within(
        CALL,
        "a log stream without follow (it must end after the history)",
        stream.collect(),
    )
    .await
}

/// The text of the lines from `source`, in order.
fn texts(lines: &[LogLine], source: LogSource) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.source == source)
        .map(|l| l.line.as_str())
        .collect()
}

/// Reads `stream` until a line equal to `line` arrives; panics if the
/// stream ends first or it takes too long.
async fn until_line(stream: &mut LogStream, line: &str) {
    let found = within(CALL, &format!("waiting for the log line {line:?}"), async {
        while let Some(l) = stream.next().await {
            if l.line == line {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        found,
        "runtime suite: the follow stream ended before the task printed {line:?}"
    );
}

/// Follows the task's logs until `line` is printed (the task is ready).
async fn wait_ready(runtime: &impl Runtime, id: &Id) {
    let mut stream = ok(
        "logs with follow",
        runtime.logs(
            id,
            LogOptions {
                follow: true,
                tail: None,
            },
        ),
    )
    .await;
    until_line(&mut stream, "ready").await;
}

/// Polls `inspect` until `done` holds; panics with `what` after `limit`.
async fn inspect_until(
    runtime: &impl Runtime,
    id: &Id,
    limit: Duration,
    what: &str,
    done: impl Fn(&RuntimeStatus) -> bool,
) -> RuntimeStatus {
    within(limit, what, async {
        loop {
            let status = ok("inspect", runtime.inspect(id)).await;
            if done(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// A shell loop that runs until killed, printing `ready` first. `sleep &
/// wait` lets a shell that is PID 1 in a container run its traps at once.
const LOOP: &str = "echo ready; while true; do sleep 1 & wait $!; done";

async fn info_describes_the_node(runtime: &impl Runtime) {
    let info = ok("info", runtime.info()).await;
    let d = &info.description;
    assert!(
        !d.hostname.is_empty(),
        "runtime suite: info must report the node's hostname"
    );
    assert!(
        !d.platform.os.is_empty(),
        "runtime suite: info must report the OS"
    );
    assert!(
        !d.platform.architecture.is_empty(),
        "runtime suite: info must report the architecture"
    );
    assert!(
        d.resources.nano_cpus > 0,
        "runtime suite: info must report the node's CPUs"
    );
    assert!(
        d.resources.memory_bytes > 0,
        "runtime suite: info must report the node's memory"
    );
}

async fn lifecycle(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
    let task = task(fixtures.shell(&format!("trap 'exit 0' TERM; {LOOP}")));
    let id = task.meta.id.clone();
    ok("prepare", runtime.prepare(&task, &[])).await;
    ok(
        "prepare of a prepared task (prepare is idempotent)",
        runtime.prepare(&task, &[]),
    )
    .await;
    let status = ok("inspect of a prepared task", runtime.inspect(&id)).await;
    assert_eq!(
        status.state,
        RuntimeState::Created,
        "runtime suite: a prepared, unstarted task must be Created"
    );

    ok("start", runtime.start(&id)).await;
    let running = ok("inspect of a started task", runtime.inspect(&id)).await;
    assert_eq!(
        running.state,
        RuntimeState::Running,
        "runtime suite: a started task must be Running"
    );
    assert!(
        running.runtime_id.is_some(),
        "runtime suite: a running task must have a runtime id"
    );
    assert!(
        running.started_at.is_some(),
        "runtime suite: a running task must have a start time"
    );
    assert_eq!(
        running.health, None,
        "runtime suite: a task without a health check has no health"
    );

    ok(
        "start of a running task (start must be a no-op then)",
        runtime.start(&id),
    )
    .await;
    let again = ok("inspect", runtime.inspect(&id)).await;
    assert_eq!(
        (again.state, &again.runtime_id),
        (RuntimeState::Running, &running.runtime_id),
        "runtime suite: starting a running task must be a no-op (same state, same runtime id)"
    );

    wait_ready(runtime, &id).await;
    within(
        Duration::from_secs(5),
        "stop of a task that exits on SIGTERM (grace 2s)",
        runtime.stop(&id, Duration::from_secs(2)),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: stop failed: {e}"));
    let status = within(
        Duration::from_secs(1),
        "wait after stop returned (stop must return once the task exited)",
        runtime.wait(&id),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: wait failed: {e}"));
    let after = ok("inspect of a stopped task", runtime.inspect(&id)).await;
    assert_eq!(
        after.state,
        RuntimeState::Exited(status),
        "runtime suite: after stop, inspect must say Exited with the status wait gave"
    );
    ok(
        "stop of an exited task (stop must be a no-op then)",
        runtime.stop(&id, Duration::ZERO),
    )
    .await;
    cleanup(runtime, &id).await;
}

async fn exit_codes_reach_wait(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
    let zero = run(runtime, fixtures.shell("exit 0"), &[]).await;
    let three = run(runtime, fixtures.shell("exit 3"), &[]).await;

    let status = wait(runtime, &zero).await;
    assert_eq!(
        status.code, 0,
        "runtime suite: `exit 0` must give exit code 0"
    );
    assert!(
        status.success(),
        "runtime suite: `exit 0` must be a success"
    );

    let status = wait(runtime, &three).await;
    assert_eq!(
        status,
        ExitStatus {
            code: 3,
            signal: None
        },
        "runtime suite: `exit 3` must give exit code 3 and no signal"
    );
    assert!(
        !status.success(),
        "runtime suite: `exit 3` is not a success"
    );
    let again = within(
        Duration::from_secs(1),
        "a second wait on an exited task (it must return at once)",
        runtime.wait(&three),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: a second wait failed: {e}"));
    assert_eq!(
        again, status,
        "runtime suite: wait must give the same status every time"
    );
    let inspected = ok("inspect of an exited task", runtime.inspect(&three)).await;
    assert_eq!(
        inspected.state,
        RuntimeState::Exited(status),
        "runtime suite: inspect must report the exit status wait gave"
    );

    cleanup(runtime, &zero).await;
    cleanup(runtime, &three).await;
}

async fn logs_keep_order_source_and_tail(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
    let before = SystemTime::now() - Duration::from_secs(1);
    let id = run(
        runtime,
        fixtures.shell("echo out-1; echo err-1 >&2; echo out-2; echo out-3"),
        &[],
    )
    .await;
    wait(runtime, &id).await;
    let after = SystemTime::now() + Duration::from_secs(1);

    let all = history(runtime, &id, None).await;
    assert_eq!(
        texts(&all, LogSource::Stdout),
        ["out-1", "out-2", "out-3"],
        "runtime suite: logs must hold the task's stdout lines, in order, marked Stdout"
    );
    assert_eq!(
        texts(&all, LogSource::Stderr),
        ["err-1"],
        "runtime suite: logs must hold the task's stderr line, marked Stderr"
    );
    assert_eq!(
        all.len(),
        4,
        "runtime suite: logs must hold exactly the lines printed: {all:?}"
    );
    for source in [LogSource::Stdout, LogSource::Stderr] {
        let stamps: Vec<_> = all
            .iter()
            .filter(|l| l.source == source)
            .map(|l| l.timestamp)
            .collect();
        assert!(
            stamps.iter().all(|t| *t >= before && *t <= after),
            "runtime suite: log timestamps must be when the lines were printed: {all:?}"
        );
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "runtime suite: log timestamps must not go backwards within a stream: {all:?}"
        );
    }

    let last = history(runtime, &id, Some(1)).await;
    assert_eq!(
        last.as_slice(),
        &all[3..],
        "runtime suite: logs with tail 1 must give only the last line"
    );
    let two = history(runtime, &id, Some(2)).await;
    assert_eq!(
        two.as_slice(),
        &all[2..],
        "runtime suite: logs with tail 2 must give the last two lines"
    );
    let more = history(runtime, &id, Some(100)).await;
    assert_eq!(
        more, all,
        "runtime suite: a tail longer than the history must give all of it"
    );
    cleanup(runtime, &id).await;
}

async fn follow_gets_every_line_and_ends_on_exit(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let task = task(fixtures.shell("echo one; sleep 1; echo two; echo three >&2; echo four"));
    let id = task.meta.id.clone();
    ok("prepare", runtime.prepare(&task, &[])).await;
    ok("start", runtime.start(&id)).await;
    // Opened while the task sleeps: "one" comes from the history, the rest
    // live. No line may fall between the two.
    let stream = ok(
        "logs with follow",
        runtime.logs(
            &id,
            LogOptions {
                follow: true,
                tail: None,
            },
        ),
    )
    .await;
    let lines: Vec<LogLine> = within(
        Duration::from_secs(10),
        "a follow stream (it must end when the task exits)",
        stream.collect(),
    )
    .await;
    assert_eq!(
        texts(&lines, LogSource::Stdout),
        ["one", "two", "four"],
        "runtime suite: a follow stream must give every stdout line, from history and live, in order"
    );
    assert_eq!(
        texts(&lines, LogSource::Stderr),
        ["three"],
        "runtime suite: a follow stream must give the stderr lines too"
    );
    let status = within(
        Duration::from_secs(2),
        "wait after the follow stream ended (the task has exited)",
        runtime.wait(&id),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: wait failed: {e}"));
    assert!(
        status.success(),
        "runtime suite: the follow task must exit 0, got {status:?}"
    );

    // Following an exited task gives its history and ends.
    let stream = ok(
        "logs with follow",
        runtime.logs(
            &id,
            LogOptions {
                follow: true,
                tail: Some(1),
            },
        ),
    )
    .await;
    let tail: Vec<LogLine> = within(
        CALL,
        "a follow stream of an exited task (it must end at once)",
        stream.collect(),
    )
    .await;
    assert_eq!(
        tail.len(),
        1,
        "runtime suite: follow with tail 1 of an exited task gives one line"
    );
    cleanup(runtime, &id).await;
}

async fn stop_returns_when_the_task_exits_on_sigterm(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let id = run(
        runtime,
        fixtures.shell(&format!("trap 'exit 0' TERM; {LOOP}")),
        &[],
    )
    .await;
    wait_ready(runtime, &id).await;
    let began = Instant::now();
    within(
        Duration::from_secs(5),
        "stop of a task that exits on SIGTERM (grace 30s: stop must not wait out the grace)",
        runtime.stop(&id, Duration::from_secs(30)),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: stop failed: {e}"));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "runtime suite: stop must return as soon as the task exits"
    );
    let status = wait(runtime, &id).await;
    assert!(
        status.success(),
        "runtime suite: a task that exits 0 on SIGTERM must report success, got {status:?}"
    );
    cleanup(runtime, &id).await;
}

async fn stop_kills_a_task_that_ignores_sigterm(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    // The ignored SIGTERM is inherited by the `sleep` children: they must be
    // killed too for the task to end.
    let id = run(
        runtime,
        fixtures.shell("trap '' TERM; echo ready; while true; do sleep 1; done"),
        &[],
    )
    .await;
    wait_ready(runtime, &id).await;
    let grace = Duration::from_secs(1);
    let began = Instant::now();
    within(
        Duration::from_secs(6),
        "stop of a task that ignores SIGTERM (it must be killed after the grace period)",
        runtime.stop(&id, grace),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: stop failed: {e}"));
    let took = began.elapsed();
    assert!(
        took >= grace - Duration::from_millis(50),
        "runtime suite: stop must give the task its grace period ({grace:?}) before killing it, took {took:?}"
    );
    let status = within(
        Duration::from_secs(1),
        "wait after stop returned (stop must return once the task exited)",
        runtime.wait(&id),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: wait failed: {e}"));
    assert!(
        !status.success() && status.code != 0,
        "runtime suite: a killed task must report a failure (signal or non-zero code), got {status:?}"
    );
    cleanup(runtime, &id).await;
}

async fn task_sees_its_env_and_workdir(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
    let mut spec = fixtures.shell("echo \"foo=$FOO\"; pwd");
    spec.env.push("FOO=bar".into());
    spec.workdir = Some("/tmp".into());
    let id = run(runtime, spec, &[]).await;
    let status = wait(runtime, &id).await;
    assert!(
        status.success(),
        "runtime suite: the env task must exit 0, got {status:?}"
    );
    let lines = history(runtime, &id, None).await;
    assert_eq!(
        texts(&lines, LogSource::Stdout),
        ["foo=bar", "/tmp"],
        "runtime suite: the task must see spec.env (FOO=bar) and run in spec.workdir (/tmp)"
    );
    cleanup(runtime, &id).await;
}

async fn task_sees_its_secrets_and_configs(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
    let mut spec = fixtures.shell(
        "cat \"$SWARM_SECRETS_DIR/db_pass\"; echo; cat \"$SWARM_CONFIGS_DIR/app.conf\"; echo",
    );
    spec.secrets.push(FileReference {
        name: "db-pass".into(),
        target: "db_pass".into(),
        mode: 0o400,
    });
    spec.configs.push(FileReference {
        name: "app-conf".into(),
        target: "app.conf".into(),
        mode: 0o444,
    });
    let files = [
        TaskFile {
            kind: FileKind::Secret,
            name: "db-pass".into(),
            target: "db_pass".into(),
            mode: 0o400,
            data: b"s3cret".to_vec(),
        },
        TaskFile {
            kind: FileKind::Config,
            name: "app-conf".into(),
            target: "app.conf".into(),
            mode: 0o444,
            data: b"port=80".to_vec(),
        },
    ];
    let id = run(runtime, spec, &files).await;
    let status = wait(runtime, &id).await;
    let lines = history(runtime, &id, None).await;
    assert!(
        status.success(),
        "runtime suite: the task must read its secret and config files, got {status:?}: {lines:?}"
    );
    assert_eq!(
        texts(&lines, LogSource::Stdout),
        ["s3cret", "port=80"],
        "runtime suite: the secret must be at $SWARM_SECRETS_DIR/<target> and the config at $SWARM_CONFIGS_DIR/<target>"
    );
    cleanup(runtime, &id).await;
}

fn health_check(test: &str, retries: u32) -> HealthCheck {
    HealthCheck {
        test: vec!["sh".into(), "-c".into(), test.into()],
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        retries,
        start_period: Duration::ZERO,
    }
}

async fn passing_health_check_makes_the_task_healthy(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let mut spec = fixtures.shell(LOOP);
    // The check runs with the task's environment.
    spec.env.push("FOO=bar".into());
    spec.healthcheck = Some(health_check("test \"$FOO\" = bar", 1));
    let id = run(runtime, spec, &[]).await;
    let first = ok("inspect", runtime.inspect(&id)).await;
    assert!(
        matches!(first.health, Some(Health::Starting | Health::Healthy)),
        "runtime suite: a task with a health check must report Starting until a check ran, got {:?}",
        first.health
    );
    inspect_until(
        runtime,
        &id,
        Duration::from_secs(10),
        "a task whose health check passes becoming Healthy",
        |s| s.health == Some(Health::Healthy),
    )
    .await;
    cleanup(runtime, &id).await;
}

async fn failing_health_check_makes_the_task_unhealthy(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let mut spec = fixtures.shell(LOOP);
    spec.healthcheck = Some(health_check("exit 1", 2));
    let id = run(runtime, spec, &[]).await;
    let status = inspect_until(
        runtime,
        &id,
        Duration::from_secs(10),
        "a task whose health check fails (retries 2) becoming Unhealthy",
        |s| s.health == Some(Health::Unhealthy),
    )
    .await;
    assert_eq!(
        status.state,
        RuntimeState::Running,
        "runtime suite: an unhealthy task keeps running (the agent decides what to do)"
    );
    cleanup(runtime, &id).await;
}

async fn missing_program_is_an_invalid_spec(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let task = task(fixtures.missing());
    let result = within(
        CALL,
        "prepare of a task that cannot run",
        runtime.prepare(&task, &[]),
    )
    .await;
    match result {
        Err(RuntimeError::InvalidSpec(msg)) => assert!(
            !msg.is_empty(),
            "runtime suite: an InvalidSpec error must say what is wrong"
        ),
        other => panic!(
            "runtime suite: prepare of a task whose program or image does not exist must fail with InvalidSpec, got {other:?}"
        ),
    }
    let _ = within(CALL, "remove", runtime.remove(&task.meta.id)).await;
}

async fn list_and_remove_agree(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
    let created = task(fixtures.shell("exit 0"));
    ok("prepare", runtime.prepare(&created, &[])).await;
    let created = created.meta.id;
    let running = run(runtime, fixtures.shell(LOOP), &[]).await;

    let ids = ok("list", runtime.list()).await;
    assert!(
        ids.contains(&created) && ids.contains(&running),
        "runtime suite: list must name every prepared task, started or not"
    );

    let mut follow = ok(
        "logs with follow",
        runtime.logs(
            &running,
            LogOptions {
                follow: true,
                tail: None,
            },
        ),
    )
    .await;
    until_line(&mut follow, "ready").await;
    ok("remove of a running task", runtime.remove(&running)).await;
    within(
        Duration::from_secs(5),
        "the follow stream of a removed task ending (remove must stop a running task)",
        async { while follow.next().await.is_some() {} },
    )
    .await;
    match within(CALL, "inspect of a removed task", runtime.inspect(&running)).await {
        Err(RuntimeError::NotFound(_)) => {}
        other => panic!("runtime suite: inspect of a removed task must be NotFound, got {other:?}"),
    }
    let ids = ok("list", runtime.list()).await;
    assert!(
        !ids.contains(&running),
        "runtime suite: list must not name a removed task"
    );
    assert!(
        ids.contains(&created),
        "runtime suite: removing one task must leave the others"
    );

    ok("remove of a prepared task", runtime.remove(&created)).await;
    ok(
        "remove of a removed task (remove of an unknown task is a no-op)",
        runtime.remove(&created),
    )
    .await;
    let ids = ok("list", runtime.list()).await;
    assert!(
        !ids.contains(&created),
        "runtime suite: list must not name a removed task"
    );
}

async fn unknown_tasks_are_not_found(runtime: &impl Runtime) {
    let id = Id::generate();
    fn not_found<T: std::fmt::Debug>(what: &str, r: Result<T, RuntimeError>) {
        assert!(
            matches!(r, Err(RuntimeError::NotFound(_))),
            "runtime suite: {what} of an unknown task must fail with NotFound, got {r:?}"
        );
    }
    not_found("start", within(CALL, "start", runtime.start(&id)).await);
    not_found("wait", within(CALL, "wait", runtime.wait(&id)).await);
    not_found(
        "stop",
        within(CALL, "stop", runtime.stop(&id, Duration::ZERO)).await,
    );
    not_found(
        "inspect",
        within(CALL, "inspect", runtime.inspect(&id)).await,
    );
    not_found(
        "logs",
        within(CALL, "logs", runtime.logs(&id, LogOptions::default()))
            .await
            .map(|_| ()),
    );
    ok(
        "remove of an unknown task (remove must be a no-op then)",
        runtime.remove(&id),
    )
    .await;
}
