//! What the task sees: environment, working directory, files, health
//! checks.

use std::time::Duration;

use crate::model::{FileReference, HealthCheck};
use crate::runtime::{FileKind, Health, LogSource, Runtime, RuntimeState, TaskFile};

use super::{LOOP, RuntimeFixtures, cleanup, history, inspect_until, ok, run, texts, wait};

pub(super) async fn task_sees_its_env_and_workdir(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
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

pub(super) async fn task_sees_its_secrets_and_configs(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let mut spec = fixtures.shell(
        "cat \"$SWARM_SECRETS_DIR/db_pass\"; echo; cat \"$SWARM_CONFIGS_DIR/app.conf\"; echo",
    );
    spec.secrets.push(FileReference {
        name: "db-pass".into(),
        target: "db_pass".into(),
        mode: 0o400,
        uid: 0,
        gid: 0,
    });
    spec.configs.push(FileReference {
        name: "app-conf".into(),
        target: "app.conf".into(),
        mode: 0o444,
        uid: 0,
        gid: 0,
    });
    let files = [
        TaskFile {
            kind: FileKind::Secret,
            name: "db-pass".into(),
            target: "db_pass".into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
            data: b"s3cret".to_vec(),
        },
        TaskFile {
            kind: FileKind::Config,
            name: "app-conf".into(),
            target: "app.conf".into(),
            mode: 0o444,
            uid: 0,
            gid: 0,
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

pub(super) async fn passing_health_check_makes_the_task_healthy(
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

pub(super) async fn failing_health_check_makes_the_task_unhealthy(
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
