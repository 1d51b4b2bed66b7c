//! The conformance suite every `Runtime` passes.
//!
//! Each check, an async fn in a submodule by theme, makes its own tasks (fresh ids),
//! removes them when it is done, and panics with a message naming the
//! promise of the [`Runtime`] contract that was broken. The checks run
//! concurrently, which also exercises the promise that every method is safe
//! to call concurrently for different tasks. Scripts use POSIX `sh` and
//! a few common commands (`echo`, `cat`, `sleep`, `trap`, `exit`, `test`,
//! `pwd`), with whole-second sleeps, so that a container runtime can run
//! them in a minimal image (swarm-runtime-docker's test image holds the
//! machine's own shell and coreutils).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

mod environment;
mod lifecycle;
mod logs;

use environment::{
    failing_health_check_makes_the_task_unhealthy, passing_health_check_makes_the_task_healthy,
    task_sees_its_env_and_workdir, task_sees_its_secrets_and_configs,
};
use lifecycle::{
    exit_codes_reach_wait, info_describes_the_node, lifecycle, list_and_remove_agree,
    missing_program_is_an_invalid_spec, stop_kills_a_task_that_ignores_sigterm,
    stop_returns_when_the_task_exits_on_sigterm, unknown_tasks_are_not_found,
};
use logs::{follow_gets_every_line_and_ends_on_exit, logs_keep_order_source_and_tail};

use crate::Id;
use crate::model::{Meta, Service, ServiceSpec, Task, TaskSpec};
use crate::runtime::{
    ExitStatus, LogLine, LogOptions, LogSource, LogStream, Runtime, RuntimeError, RuntimeStatus,
    TaskFile,
};

/// Task specs for the runtime under test. Each runtime spells a shell
/// command its own way: the process runtime runs `/bin/sh -c SCRIPT`, the
/// docker runtime runs `sh -c SCRIPT` in a local test image.
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
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
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
