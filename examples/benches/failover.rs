//! Failover of a cluster of real `swarmd` processes on loopback (3
//! managers, 2 workers, process runtime, default settings):
//!
//! - from `kill -9` of a worker to all of its tasks running elsewhere;
//! - from `kill -9` of the leader to the next accepted `service create`.
//!
//! `cargo bench -p swarm-examples --bench failover -- --rounds 5`

use std::path::Path;
use std::time::{Duration, Instant};

use swarm_core::model::{ServiceSpec, TaskState};
use swarm_examples::daemons::Daemons;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");
const MANAGERS: [&str; 3] = ["m1", "m2", "m3"];
const WORKERS: [&str; 2] = ["w1", "w2"];

fn summary(name: &str, mut xs: Vec<Duration>, target: Duration) {
    xs.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{name}: median {}, min {}, max {} over {} rounds (target {}): {:?}",
        ms(xs[xs.len() / 2]),
        ms(xs[0]),
        ms(xs[xs.len() - 1]),
        xs.len(),
        ms(target),
        xs.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
}

/// Everything runs: every node ready, one leader.
fn settle(d: &Daemons, via: &str) {
    d.wait("the cluster to settle", Duration::from_secs(60), || {
        let nodes = d.nodes(via);
        nodes.len() == 5
            && nodes.values().all(|(s, _)| s == "ready")
            && nodes.values().filter(|(_, r)| r == "leader").count() == 1
    });
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(5), |s| s.parse())?;
    let rt = tokio::runtime::Runtime::new()?;
    // Channels are made (lazily) inside the runtime.
    let _in_runtime = rt.enter();
    let mut d = Daemons::new(Path::new(SWARMD), Path::new(SWARMCTL), &[]);
    d.init("m1");
    let token = |role: &str| {
        d.ctl_ok("m1", &["swarm", "join-token", "-q", role])
            .trim()
            .to_owned()
    };
    let (mt, wt) = (token("manager"), token("worker"));
    d.join("m2", &mt, "m1");
    d.join("m3", &mt, "m1");
    d.join("w1", &wt, "m1");
    d.join("w2", &wt, "m1");
    settle(&d, "m1");
    let marker = d.marker();

    // A worker dies: its tasks must run elsewhere.
    let mut worker_times = Vec::new();
    for round in 0..rounds {
        let victim = WORKERS[round % 2];
        // One task per node: the victim holds exactly one.
        let service = format!("w{round}");
        d.ctl_ok(
            "m1",
            &[
                "service",
                "create",
                "--name",
                &service,
                "--replicas",
                "5",
                "sleep",
                &marker,
            ],
        );
        let control = d.control("m1")?;
        let victim_id = d
            .json("m1", &["node", "inspect", victim])
            .pointer("/meta/id")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let started = Instant::now();
        d.kill9(victim);
        let elapsed = rt.block_on(async {
            loop {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "{victim}'s tasks were not replaced within 60 s\n{}",
                    d.logs()
                );
                if let Ok(tasks) = control.service_tasks(&service).await {
                    let running: Vec<_> = tasks
                        .iter()
                        .filter(|t| {
                            t.desired_state == TaskState::Running
                                && t.status.state == TaskState::Running
                        })
                        .collect();
                    if running.len() == 5
                        && running
                            .iter()
                            .all(|t| t.node_id.as_deref() != Some(victim_id.as_str()))
                    {
                        return Ok(started.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })?;
        worker_times.push(elapsed);
        d.restart(victim);
        settle(&d, "m1");
    }

    // The leader dies: the next service create must be accepted.
    let mut leader_times = Vec::new();
    for round in 0..rounds {
        let leader = d.leader("m1").or_else(|| d.leader("m2")).unwrap();
        let others: Vec<&str> = MANAGERS.into_iter().filter(|m| *m != leader).collect();
        let clients = others
            .iter()
            .map(|m| d.control(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Connected before the kill, as a running client would be.
        rt.block_on(async {
            for c in &clients {
                let _ = c.nodes().await;
            }
        });
        let started = Instant::now();
        d.kill9(&leader);
        let elapsed = rt.block_on(async {
            let mut k = 0usize;
            loop {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "no manager accepted a write within 60 s of the leader's death\n{}",
                    d.logs()
                );
                let spec = ServiceSpec::replicated(
                    format!("l{round}"),
                    1,
                    vec!["sleep".into(), marker.clone()],
                );
                match clients[k % clients.len()].create_service(spec).await {
                    Ok(_) => return Ok(started.elapsed()),
                    Err(e) if std::env::var_os("FAILOVER_TRACE").is_some() => {
                        eprintln!(
                            "{:?} via {}: {e}",
                            started.elapsed(),
                            others[k % clients.len()]
                        );
                    }
                    Err(_) => {}
                }
                k += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })?;
        leader_times.push(elapsed);
        d.restart(&leader);
        settle(&d, others[0]);
        // Each round measures a steady cluster: the restarted manager has
        // caught up (a member whose log is behind cannot win an election,
        // and its failed attempts delay the others'), and its raft peers
        // are out of their reconnect backoff.
        std::thread::sleep(Duration::from_secs(3));
    }
    summary(
        "worker kill -9 -> its tasks running elsewhere",
        worker_times,
        Duration::from_secs(2),
    );
    summary(
        "leader kill -9 -> next service create accepted",
        leader_times,
        Duration::from_millis(1500),
    );
    Ok(())
}
