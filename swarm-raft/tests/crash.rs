//! `kill -9` of a real process at arbitrary moments (log appends, snapshot
//! writes, purges) loses no acknowledged write: after each kill, the
//! member restarts from its data directory with every write it
//! acknowledged, at the same version.
//!
//! The process is this test binary itself, started again to run only
//! `child`, with `SWARM_RAFT_CRASH_CHILD=write:DIR` or `check:DIR`:
//! - `write` starts (or resumes) a one-member cluster in DIR and creates
//!   secrets `w<n>` one batch at a time, printing `ack <name> <index>`
//!   after each acknowledged write, until it is killed. Snapshots are taken
//!   every 25 entries, so a kill lands in log appends, snapshot writes and
//!   purges alike.
//! - `check` resumes DIR, waits until it leads, prints `has <name>
//!   <version>` for every secret, then `done`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "SWARM_RAFT_CRASH_CHILD";

/// This test binary, set to run only the child in `mode`.
fn child_command(mode: &str, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CHILD, format!("{mode}:{}", dir.display()));
    c
}

#[test]
fn child() {
    let Ok(what) = std::env::var(CHILD) else {
        return;
    };
    let (mode, dir) = what.split_once(':').expect("mode:dir");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_child(mode.to_owned(), PathBuf::from(dir)));
}

async fn run_child(mode: String, dir: PathBuf) {
    use std::io::Write;
    use swarm_core::model::{Meta, Object, Secret, SecretSpec};
    use swarm_core::store::{Change, Store};
    use swarm_raft::{RaftConfig, RaftStore};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // The address changes between runs: the member's own entry in the
    // membership is not needed to reach itself.
    let config = RaftConfig::new(1, addr, dir)
        .snapshot_threshold(25)
        .logs_kept_after_snapshot(5);
    let store = RaftStore::open(config).await.expect("open");
    tokio::spawn(swarm_raft::serve(
        store.clone(),
        listener,
        std::future::pending(),
    ));
    store.initialize().await.expect("initialize");
    store
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let mut out = std::io::stdout().lock();
    // libtest has printed "test child ... " without a newline.
    writeln!(out).unwrap();
    match mode.as_str() {
        "write" => {
            // Resumes after the last write: a restarted member applies its
            // log again once it leads, so read through the leader.
            let start = store.state_linearizable().await.unwrap().secrets().count();
            for n in start.. {
                let name = format!("w{n}");
                let secret = Secret {
                    meta: Meta::new(name.as_str().into()),
                    spec: SecretSpec {
                        name: name.clone(),
                        data: vec![b'x'; 100 + n % 900],
                        ..Default::default()
                    },
                };
                let index = store
                    .apply(vec![Change::Create(Object::from(secret))])
                    .await
                    .expect("write");
                writeln!(out, "ack {name} {index}").unwrap();
                out.flush().unwrap();
            }
        }
        "check" => {
            // Everything in the log is committed once this member leads.
            let state = store.state_linearizable().await.expect("read");
            for s in state.secrets() {
                writeln!(out, "has {} {}", s.spec.name, s.meta.version).unwrap();
            }
            writeln!(out, "done").unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
}

/// Runs the writer until it has acknowledged `after` more writes plus a
/// random few milliseconds, then kills it with SIGKILL. Returns its acks.
fn write_then_kill(dir: &Path, after: usize, extra: Duration) -> HashMap<String, u64> {
    let mut child = child_command("write", dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acks = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut kill_at = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the writer stalled after {} acks",
            acks.len()
        );
        if let Some(t) = kill_at
            && Instant::now() >= t
        {
            break;
        }
        let line = match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the writer exited by itself after {} acks", acks.len())
            }
        };
        if let Some(line) = line {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("ack") {
                let name = parts.next().unwrap().to_owned();
                let index: u64 = parts.next().unwrap().parse().unwrap();
                acks.insert(name, index);
                if acks.len() == after {
                    kill_at = Some(Instant::now() + extra);
                }
            }
        }
    }
    // SIGKILL: no chance to flush or close anything.
    child.kill().unwrap();
    child.wait().unwrap();
    // Acks the process printed before it died count too.
    reader.join().unwrap();
    while let Ok(line) = rx.try_recv() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some("ack") {
            let name = parts.next().unwrap().to_owned();
            acks.insert(name, parts.next().unwrap().parse().unwrap());
        }
    }
    acks
}

fn check(dir: &Path) -> HashMap<String, u64> {
    let out = child_command("check", dir)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\ndone\n"), "the check run failed: {text}");
    text.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            (p.next() == Some("has")).then(|| {
                (
                    p.next().unwrap().to_owned(),
                    p.next().unwrap().parse().unwrap(),
                )
            })
        })
        .collect()
}

#[test]
fn kill_9_at_any_moment_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<String, u64> = HashMap::new();
    // Kills at different moments after a burst of writes.
    if std::env::var(CHILD).is_ok() {
        return;
    }
    for (round, extra_ms) in [0u64, 3, 7, 1, 13, 5, 2, 11, 17, 9, 19, 23]
        .into_iter()
        .enumerate()
    {
        let acks = write_then_kill(dir.path(), 40, Duration::from_millis(extra_ms));
        acked.extend(acks);
        let held = check(dir.path());
        for (name, index) in &acked {
            let got = held
                .get(name)
                .unwrap_or_else(|| panic!("round {round}: acknowledged write {name} was lost"));
            assert_eq!(got, index, "round {round}: {name} changed version");
        }
    }
    assert!(acked.len() >= 480, "{} writes acknowledged", acked.len());
}
