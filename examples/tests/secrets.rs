//! Secrets end to end, on real daemons (loopback, process runtime): a task
//! reads exactly its secret's bytes, a task of another service on the same
//! node cannot, and no file under any manager's data directory (raft log
//! and snapshots included) holds them; bad input is refused and changes
//! nothing. With autolock, a restarted manager serves nothing until it is
//! given the unlock key; a rotated key unlocks it and the old one does
//! not. With three managers, those that joined the locked cluster seal
//! their keys too, a restarted follower is locked while the others serve,
//! and a rotation reaches every manager.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use swarm_examples::daemons::Daemons;

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

/// The files under `dir` that hold `needle`.
fn holders(dir: &Path, needle: &[u8]) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
        .map(|p| p.display().to_string())
        .collect()
}

fn files_under(dir: &Path, name: &str) -> usize {
    files(dir)
        .iter()
        .filter(|p| p.file_name().is_some_and(|f| f == name))
        .count()
}

fn task_of(d: &Daemons, service: &str) -> Value {
    let tasks = d.json("m1", &["service", "ps", service, "--format", "json"]);
    tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"]["state"] == "running")
        .cloned()
        .unwrap_or_else(|| panic!("{service} runs no task"))
}

#[test]
fn a_secret_reaches_its_task_only_and_never_a_manager_s_disk() {
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms", "--snapshot-interval", "20"],
    );
    d.init("m1");
    let managers = d.ctl_ok("m1", &["swarm", "join-token", "-q", "manager"]);
    let workers = d.ctl_ok("m1", &["swarm", "join-token", "-q", "worker"]);
    d.join("m2", managers.trim(), "m1");
    d.join("m3", managers.trim(), "m1");
    d.join("w1", workers.trim(), "m1");
    d.wait("four ready nodes", Duration::from_secs(60), || {
        let n = d.nodes("m1");
        n.len() == 4 && n.values().all(|(s, _)| s == "ready")
    });

    // Bytes no file would hold by chance, with no newline at the end.
    let secret = format!("s3cret-{}-bytes", swarm_core::Id::generate());
    let file = d.data("secret.bin");
    std::fs::write(&file, &secret).unwrap();
    let id = d.ctl_ok(
        "m1",
        &["secret", "create", "db-pass", file.to_str().unwrap()],
    );
    assert!(!id.trim().is_empty());
    let inspect = d.ctl_ok("m1", &["secret", "inspect", "db-pass"]);
    assert!(
        inspect.contains("\"Name\": \"db-pass\"") && !inspect.contains(&secret),
        "inspect never shows the data: {inspect}"
    );

    // The reader compares its file with the original, byte for byte.
    let marker = d.marker();
    let check = format!(
        "cmp -s \"$SWARM_SECRETS_DIR/db-pass\" {} && echo SAME || echo DIFFERENT; exec sleep {marker}",
        file.display()
    );
    let user: &[&str] = if is_root() { &["--user", "65534"] } else { &[] };
    let mut create = vec![
        "service",
        "create",
        "--name",
        "reader",
        "--secret",
        "source=db-pass,mode=0400",
        "--constraint",
        "node.hostname==w1",
    ];
    create.extend_from_slice(user);
    create.extend(["sh", "-c", &check]);
    d.ctl_ok("m1", &create);
    d.wait("the reader's verdict", Duration::from_secs(20), || {
        d.ctl_ok("m1", &["service", "logs", "reader"])
            .contains("SAME")
    });
    let reader = task_of(&d, "reader");
    let dir = format!(
        "/dev/shm/swarm-files/{}/secrets",
        reader["meta"]["id"].as_str().unwrap()
    );

    // A task of another service on the same node, as another user, cannot
    // read it.
    if is_root() {
        let snoop = format!("cat {dir}/db-pass && echo READ || echo DENIED; exec sleep {marker}");
        d.ctl_ok(
            "m1",
            &[
                "service",
                "create",
                "--name",
                "snoop",
                "--constraint",
                "node.hostname==w1",
                "--user",
                "1",
                "sh",
                "-c",
                &snoop,
            ],
        );
        d.wait("the snoop's verdict", Duration::from_secs(20), || {
            let logs = d.ctl_ok("m1", &["service", "logs", "snoop"]);
            logs.contains("DENIED") || logs.contains("READ")
        });
        let logs = d.ctl_ok("m1", &["service", "logs", "snoop"]);
        assert!(logs.contains("DENIED") && !logs.contains(&secret), "{logs}");
    } else {
        eprintln!("not root: every task runs as this user, so the other-user check is skipped");
    }

    // Enough writes for snapshots on every manager.
    for i in 0..8 {
        d.ctl_ok(
            "m1",
            &["service", "scale", "-d", &format!("reader={}", 1 + i % 2)],
        );
    }
    d.wait(
        "a snapshot on every manager",
        Duration::from_secs(30),
        || {
            ["m1", "m2", "m3"]
                .iter()
                .all(|m| files_under(&d.data(m), "snapshot.bin") > 0)
        },
    );
    for m in ["m1", "m2", "m3"] {
        let found = holders(&d.data(m), secret.as_bytes());
        assert!(
            found.is_empty(),
            "{m}'s data directory holds the secret: {found:?}"
        );
    }

    // Bad input: nothing changes.
    let big = d.data("big.bin");
    std::fs::write(&big, vec![b'x'; 500 * 1024 + 1]).unwrap();
    let out = d.ctl_at("m1", &["secret", "create", "huge", big.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && text.contains("500 KiB"), "{text}");
    let out = d.ctl_at("m1", &["secret", "rm", "db-pass"]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && text.contains("secret db-pass is in use by service reader"),
        "{text}"
    );
    let ls = d.ctl_ok("m1", &["secret", "ls"]);
    assert!(ls.contains("db-pass") && !ls.contains("huge"), "{ls}");

    // The task's files go with it.
    d.ctl_ok("m1", &["service", "rm", "reader"]);
    d.wait("the reader's files gone", Duration::from_secs(20), || {
        !Path::new(&dir).exists()
    });
    d.ctl_ok("m1", &["secret", "rm", "db-pass"]);
}

/// `swarmctl swarm unlock` against `via`, with `key` on its stdin.
fn unlock(d: &Daemons, via: &str, key: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(SWARMCTL)
        .args(["-H", d.addr(via), "--tls-dir"])
        .arg(d.client_dir())
        .args(["swarm", "unlock"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{key}").unwrap();
    child.wait_with_output().unwrap()
}

fn data_key(d: &Daemons, name: &str) -> String {
    let path = files(&d.data(name))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|f| f == "data.key"))
        .expect("a data key");
    std::fs::read_to_string(path).unwrap()
}

fn serves(d: &Daemons) -> Result<String, String> {
    serves_via(d, "m1")
}

fn serves_via(d: &Daemons, via: &str) -> Result<String, String> {
    let out = d.ctl_at(via, &["node", "ls"]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A manager made with `--autolock`, and its unlock key.
fn autolocked() -> (Daemons, String) {
    let mut d = Daemons::new(
        Path::new(SWARMD),
        Path::new(SWARMCTL),
        &["--heartbeat-period", "250ms"],
    );
    d.init_with("m1", &["--autolock"]);
    let key = d
        .ctl_ok("m1", &["swarm", "unlock-key", "-q"])
        .trim()
        .to_owned();
    let shown = d.ctl_ok("m1", &["swarm", "unlock-key"]);
    assert!(
        shown.contains(&format!(
            "run the `swarmctl swarm unlock`\ncommand and provide the following key:\n\n    {key}\n"
        )),
        "{shown}"
    );
    (d, key)
}

#[test]
fn an_autolocked_manager_serves_nothing_until_unlocked_with_its_current_key() {
    let (mut d, key1) = autolocked();
    assert!(key1.starts_with("SWMKEY-1-") && key1.len() == 52, "{key1}");
    d.wait("the data key sealed", Duration::from_secs(10), || {
        data_key(&d, "m1").contains(" sealed ")
    });

    // Restarted, it is locked: it serves nothing.
    d.stop("m1");
    d.restart("m1");
    d.wait(
        "the locked manager listening",
        Duration::from_secs(20),
        || serves(&d).is_err_and(|e| e.contains("this manager is locked")),
    );
    assert!(
        d.ctl_at("m1", &["service", "ls"]).status.code() != Some(0),
        "no service list from a locked manager"
    );
    // Wrong keys are refused, and it stays locked.
    let out = unlock(&d, "m1", "SWMKEY-1-nonsense");
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("invalid unlock key: expected SWMKEY-1-"),
        "{out:?}"
    );
    let other = swarm_core::model::UnlockKey::generate().to_string();
    let out = unlock(&d, "m1", &other);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("invalid unlock key: it does not open"),
        "{out:?}"
    );
    assert!(serves(&d).is_err());
    // The right key unlocks it.
    let out = unlock(&d, "m1", &key1);
    assert!(out.status.success(), "{out:?}");
    d.wait(
        "the unlocked manager serving",
        Duration::from_secs(20),
        || serves(&d).is_ok(),
    );

    // A rotated key: the new one unlocks, the old one no longer does.
    let before = data_key(&d, "m1");
    let key2 = d
        .ctl_ok("m1", &["swarm", "unlock-key", "--rotate", "-q"])
        .trim()
        .to_owned();
    assert_ne!(key1, key2);
    d.wait("the data key sealed anew", Duration::from_secs(10), || {
        data_key(&d, "m1") != before
    });
    d.stop("m1");
    d.restart("m1");
    d.wait("locked again", Duration::from_secs(20), || {
        serves(&d).is_err_and(|e| e.contains("this manager is locked"))
    });
    let out = unlock(&d, "m1", &key1);
    assert!(
        !out.status.success(),
        "the old key must not unlock: {out:?}"
    );
    let out = unlock(&d, "m1", &key2);
    assert!(out.status.success(), "{out:?}");
    d.wait("serving", Duration::from_secs(20), || serves(&d).is_ok());

    // Autolock off: a restart needs no key.
    let out = d.ctl_ok("m1", &["swarm", "update", "--autolock=false"]);
    assert!(out.contains("Swarm updated."), "{out}");
    d.wait("the data key plain", Duration::from_secs(10), || {
        data_key(&d, "m1").contains(" plain ")
    });
    let out = d.ctl_at("m1", &["swarm", "unlock-key"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no unlock key is set"),
        "{out:?}"
    );
    d.stop("m1");
    d.restart("m1");
    d.wait("serving without a key", Duration::from_secs(20), || {
        serves(&d).is_ok()
    });
}

#[test]
fn every_manager_of_an_autolocked_cluster_locks_and_follows_a_rotation() {
    let (mut d, key1) = autolocked();
    let token = d.ctl_ok("m1", &["swarm", "join-token", "-q", "manager"]);
    d.join("m2", token.trim(), "m1");
    d.join("m3", token.trim(), "m1");
    d.wait("three managers ready", Duration::from_secs(60), || {
        let n = d.nodes("m1");
        n.len() == 3 && n.values().all(|(s, _)| s == "ready")
    });
    // Those that joined a locked cluster seal their data keys too.
    d.wait("every data key sealed", Duration::from_secs(20), || {
        ["m1", "m2", "m3"]
            .iter()
            .all(|m| data_key(&d, m).contains(" sealed "))
    });

    // A restarted follower is locked; the other two go on serving.
    let follower = if d.leader("m1").as_deref() == Some("m2") {
        "m3"
    } else {
        "m2"
    };
    d.stop(follower);
    d.restart(follower);
    d.wait("the follower locked", Duration::from_secs(20), || {
        serves_via(&d, follower).is_err_and(|e| e.contains("this manager is locked"))
    });
    let marker = d.marker();
    d.ctl_ok(
        "m1",
        &["service", "create", "--name", "web", "sleep", &marker],
    );
    assert!(serves_via(&d, follower).is_err(), "still locked");
    let out = unlock(&d, follower, &key1);
    assert!(out.status.success(), "{out:?}");
    d.wait(
        "the follower serving what was written while it was locked",
        Duration::from_secs(20),
        || {
            d.ctl_at(follower, &["service", "ls"]).status.success()
                && d.ctl_ok(follower, &["service", "ls"]).contains("web")
        },
    );

    // A rotation reaches every manager: each seals its data key anew.
    let before: Vec<String> = ["m1", "m2", "m3"].iter().map(|m| data_key(&d, m)).collect();
    let key2 = d
        .ctl_ok("m1", &["swarm", "unlock-key", "--rotate", "-q"])
        .trim()
        .to_owned();
    d.wait(
        "every data key sealed anew",
        Duration::from_secs(20),
        || {
            ["m1", "m2", "m3"]
                .iter()
                .zip(&before)
                .all(|(m, b)| data_key(&d, m) != *b)
        },
    );
    d.stop("m3");
    d.restart("m3");
    d.wait("m3 locked", Duration::from_secs(20), || {
        serves_via(&d, "m3").is_err_and(|e| e.contains("this manager is locked"))
    });
    assert!(!unlock(&d, "m3", &key1).status.success(), "the old key");
    let out = unlock(&d, "m3", &key2);
    assert!(out.status.success(), "{out:?}");
    d.wait("m3 serving", Duration::from_secs(20), || {
        serves_via(&d, "m3").is_ok()
    });
}
