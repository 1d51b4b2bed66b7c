//! How long a rolling update takes beside a create: a service of N
//! replicas (process runtime, `sleep`) on an in-process manager with 3
//! workers is created, then rolled to a new spec with parallelism P and no
//! delay, then rolled back; each timed until every task of the spec runs,
//! and until the rollout's status says completed (after its monitor
//! period, set to 0 here). Each phase runs `--rounds` times; the median
//! and the spread are printed.
//!
//! `cargo bench -p swarm-examples --bench rollout -- --tasks 100 --parallelism 10 --rounds 3`

use std::time::{Duration, Instant};

use swarm_core::model::{ServiceSpec, TaskState, UpdateState};
use swarm_core::store::State;
use swarm_examples::{fast_config, local_swarm};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether every one of `n` tasks of `web` that are wanted running runs
/// `marker` (its `sleep` argument).
fn all_on(state: &State, n: usize, marker: &str) -> bool {
    let Some(web) = state.services().find(|s| s.spec.name == "web") else {
        return false;
    };
    let running: Vec<_> = state
        .tasks_of_service(&web.meta.id)
        .filter(|t| t.desired_state == TaskState::Running && t.status.state == TaskState::Running)
        .collect();
    running.len() == n
        && running
            .iter()
            .all(|t| t.spec.args.last().is_some_and(|a| a == marker))
}

fn status(state: &State) -> Option<UpdateState> {
    state
        .services()
        .find(|s| s.spec.name == "web")
        .and_then(|s| s.update_status.as_ref().map(|u| u.state))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, xs: &mut [Duration]) {
    xs.sort();
    let median = xs[xs.len() / 2];
    println!(
        "{name:<34} median {:>8.0} ms   min {:>8.0} ms   max {:>8.0} ms",
        ms(median),
        ms(xs[0]),
        ms(xs[xs.len() - 1])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n = arg("--tasks", 100);
    let parallelism = arg("--parallelism", 10) as u64;
    let rounds = arg("--rounds", 3).max(1);
    let limit = Duration::from_secs(300);
    println!(
        "{n} replicas, parallelism {parallelism}, no delay, monitor 0, 3 workers, process runtime; {rounds} round(s)"
    );
    let mut create = Vec::new();
    let mut update_running = Vec::new();
    let mut update_done = Vec::new();
    let mut rollback_done = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir()?;
        let mut cluster = local_swarm(3, dir.path().to_owned(), fast_config()).await?;
        let base = 3_000_000 + round * 10;
        let (v1, v2) = (base.to_string(), (base + 1).to_string());
        let mut spec = ServiceSpec::replicated("web", n as u64, vec!["sleep".into(), v1.clone()]);
        spec.update.parallelism = parallelism;
        spec.update.monitor = Duration::ZERO;
        spec.rollback = spec.update;
        let began = Instant::now();
        cluster.control().create_service(spec).await?;
        cluster
            .wait_until(limit, "every task running", |s| all_on(s, n, &v1))
            .await?;
        create.push(began.elapsed());

        let began = Instant::now();
        let v = v2.clone();
        cluster
            .control()
            .update_service("web", move |s| {
                s.task.args = vec![v.clone()];
                Ok(())
            })
            .await?;
        cluster
            .wait_until(limit, "every task on the new spec", |s| all_on(s, n, &v2))
            .await?;
        update_running.push(began.elapsed());
        cluster
            .wait_until(limit, "the update completed", |s| {
                status(s) == Some(UpdateState::Completed)
            })
            .await?;
        update_done.push(began.elapsed());

        let began = Instant::now();
        cluster.control().rollback_service("web", None).await?;
        cluster
            .wait_until(limit, "the rollback completed", |s| {
                all_on(s, n, &v1) && status(s) == Some(UpdateState::RollbackCompleted)
            })
            .await?;
        rollback_done.push(began.elapsed());
        cluster.shutdown().await;
    }
    summary("create, until all running", &mut create);
    summary("update, until all on the new spec", &mut update_running);
    summary("update, until completed", &mut update_done);
    summary("rollback, until completed", &mut rollback_done);
    Ok(())
}
