//! The web visualizer in headless Chromium, on a real cluster of one
//! manager and two workers: the board shows the nodes and the tasks,
//! follows a killed task's replacement and a drain live, without a
//! reload. Set SWARM_SCREENSHOT=FILE.png to keep a picture of the page.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm_examples::browser::{Chromium, Page};
use swarm_examples::daemons::{Daemons, free_port};

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

/// The cards on the board: task id → the node column it is in.
const CARDS: &str = "JSON.stringify([...document.querySelectorAll('.task-card')].map(c => \
     [c.dataset.taskId, c.closest('.node-column').dataset.hostname || '', c.dataset.state]))";

async fn cards(page: &mut Page) -> Vec<(String, String, String)> {
    let v = page.eval(CARDS).await.unwrap();
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

/// Polls the page until `ok` holds of its cards, or panics after `limit`.
async fn until(
    page: &mut Page,
    what: &str,
    limit: Duration,
    ok: impl Fn(&[(String, String, String)]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let now = cards(page).await;
        if ok(&now) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; cards {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_the_swarm_live() {
    let Some(chromium) = Chromium::find() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed (CI installs Debian's chromium package)"
        );
        eprintln!("chromium is not installed: the visualizer's browser test is skipped");
        return;
    };
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms"],
    );
    let engine = format!("127.0.0.1:{}", free_port());
    d.init_with("m1", &["--engine-addr", &engine]);
    let token = d.ctl_ok("m1", &["swarm", "join-token", "-q", "worker"]);
    d.join("w1", token.trim(), "m1");
    d.join("w2", token.trim(), "m1");
    d.wait("three ready nodes", Duration::from_secs(60), || {
        let nodes = d.nodes("m1");
        nodes.len() == 3 && nodes.values().all(|(s, _)| s == "ready")
    });
    let marker = d.marker();
    d.ctl_ok(
        "m1",
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "6",
            "--restart-delay",
            "0s",
            "sleep",
            &marker,
        ],
    );

    let browser = Chromium::launch(&chromium, 1400, 800).unwrap();
    let mut page = browser.open(&format!("http://{engine}/ui")).await.unwrap();
    // Three node columns, six running cards.
    until(
        &mut page,
        "six running cards",
        Duration::from_secs(20),
        |c| c.len() == 6 && c.iter().all(|(_, _, s)| s == "running"),
    )
    .await;
    let columns = page
        .eval("JSON.stringify([...document.querySelectorAll('.node-column')].map(c => c.dataset.hostname))")
        .await
        .unwrap();
    let mut columns: Vec<String> = serde_json::from_str(columns.as_str().unwrap()).unwrap();
    columns.sort();
    assert_eq!(columns, ["m1", "w1", "w2"]);
    let leader = page
        .eval("document.querySelector('.node-column[data-hostname=\"m1\"] .leader') !== null")
        .await
        .unwrap();
    assert_eq!(leader, Value::Bool(true), "the leader is marked");
    let summary = page
        .eval("document.getElementById('summary').textContent")
        .await
        .unwrap();
    assert!(
        summary.as_str().unwrap().contains("6/6 tasks running"),
        "{summary}"
    );
    // Opened by a loopback name: the specs are shown, nothing is changed.
    let access = page
        .eval("document.getElementById('access').textContent")
        .await
        .unwrap();
    assert_eq!(access, "read-only");
    // The page is never loaded again: this stays.
    page.eval("window.stayed = 'yes'").await.unwrap();

    // kill -9 of one task's process: a new card comes, within 2 s.
    let before: BTreeSet<String> = cards(&mut page).await.into_iter().map(|c| c.0).collect();
    let pids = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout)
        .lines()
        .next()
        .expect("a task's process")
        .to_owned();
    let killed = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    until(
        &mut page,
        "the replacement's card",
        Duration::from_secs(2) - killed.elapsed(),
        |c| c.iter().any(|(id, _, _)| !before.contains(id)),
    )
    .await;
    let took = killed.elapsed();
    eprintln!("the replacement's card came {took:?} after kill -9");

    // Drain w1: its cards move to m1 and w2.
    until(
        &mut page,
        "six running again",
        Duration::from_secs(20),
        |c| c.len() == 6 && c.iter().all(|(_, _, s)| s == "running"),
    )
    .await;
    d.ctl_ok("m1", &["node", "update", "--availability", "drain", "w1"]);
    until(
        &mut page,
        "w1's cards on the others",
        Duration::from_secs(20),
        |c| c.len() == 6 && c.iter().all(|(_, node, s)| node != "w1" && s == "running"),
    )
    .await;
    let drained = page
        .eval("document.querySelector('.node-column[data-hostname=\"w1\"]').className")
        .await
        .unwrap();
    assert!(drained.as_str().unwrap().contains("drain"), "{drained}");
    if let Some(path) = std::env::var_os("SWARM_SCREENSHOT") {
        std::fs::write(&path, page.screenshot().await.unwrap()).unwrap();
    }
    assert_eq!(
        page.eval("window.stayed").await.unwrap(),
        "yes",
        "the page was reloaded"
    );

    // A click on the service shows its spec and its task history.
    page.eval("document.querySelector('.task-card').click()")
        .await
        .unwrap();
    let panel = page
        .eval("document.getElementById('panel').hidden ? '' : document.getElementById('panel-body').textContent")
        .await
        .unwrap();
    let panel = panel.as_str().unwrap();
    assert!(
        panel.contains("web") && panel.contains("spec") && panel.contains("shutdown"),
        "{panel}"
    );
    // The service filter hides other services' cards; a label filter that
    // no node has hides every column.
    page.eval("document.getElementById('label-filter').value = 'zone=nowhere'; document.getElementById('label-filter').dispatchEvent(new Event('input'))")
        .await
        .unwrap();
    let columns = page
        .eval("document.querySelectorAll('.node-column').length")
        .await
        .unwrap();
    assert_eq!(columns, 0);
}
