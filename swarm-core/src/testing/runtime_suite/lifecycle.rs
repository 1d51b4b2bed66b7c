//! Lifecycle checks: info, start, stop, wait, remove, list, unknown ids.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::Id;
use crate::runtime::{ExitStatus, LogOptions, Runtime, RuntimeError, RuntimeState};

use super::{
    CALL, LOOP, RuntimeFixtures, cleanup, ok, run, task, until_line, wait, wait_ready, within,
};

pub(super) async fn info_describes_the_node(runtime: &impl Runtime) {
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

pub(super) async fn lifecycle(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
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

pub(super) async fn exit_codes_reach_wait(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
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

pub(super) async fn stop_returns_when_the_task_exits_on_sigterm(
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

pub(super) async fn stop_kills_a_task_that_ignores_sigterm(
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

pub(super) async fn missing_program_is_an_invalid_spec(
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

pub(super) async fn list_and_remove_agree(runtime: &impl Runtime, fixtures: &dyn RuntimeFixtures) {
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

pub(super) async fn unknown_tasks_are_not_found(runtime: &impl Runtime) {
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
