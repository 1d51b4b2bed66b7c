//! Who owns a task's processes, kept on disk so that a runtime started
//! after a crash (or a stop) of the one before can find what that one left
//! running and stop it: no task ever runs twice, and none is left without
//! an owner.
//!
//! Each task has a record `<state_dir>/<task id>.owner` beside its
//! directory (in the runtime's own directory, not the task's, which the
//! task's user may write): the owning runtime's process (pid and start
//! time) and, once started, the task's process group leader (pid and start
//! time). Start times guard against reused pids: a record names a process
//! only if one with that pid started at that time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A process, told apart from a later one with the same pid by when it
/// started (clock ticks since boot, `/proc/<pid>/stat` field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessMark {
    pub(crate) pid: i32,
    pub(crate) started: u64,
}

impl ProcessMark {
    /// The process `pid`, if it runs.
    pub(crate) fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold
        // anything; the fields after the last ')' start with field 3.
        let rest = &stat[stat.rfind(')')? + 1..];
        let started = rest.split_whitespace().nth(19)?.parse().ok()?;
        Some(Self { pid, started })
    }

    /// This process.
    pub(crate) fn me() -> Option<Self> {
        Self::of(i32::try_from(std::process::id()).ok()?)
    }

    /// Whether this very process still runs.
    pub(crate) fn alive(self) -> bool {
        Self::of(self.pid) == Some(self)
    }
}

/// The record of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) owner: ProcessMark,
    pub(crate) leader: Option<ProcessMark>,
}

impl Record {
    fn encode(&self) -> String {
        let mut s = format!("{} {}", self.owner.pid, self.owner.started);
        if let Some(l) = self.leader {
            s.push_str(&format!(" {} {}", l.pid, l.started));
        }
        s.push('\n');
        s
    }

    fn decode(text: &str) -> Option<Self> {
        let n: Vec<&str> = text.split_whitespace().collect();
        let mark = |pid: &str, started: &str| {
            Some(ProcessMark {
                pid: pid.parse().ok()?,
                started: started.parse().ok()?,
            })
        };
        match n.as_slice() {
            [p, s] => Some(Self {
                owner: mark(p, s)?,
                leader: None,
            }),
            [p, s, lp, ls] => Some(Self {
                owner: mark(p, s)?,
                leader: Some(mark(lp, ls)?),
            }),
            _ => None,
        }
    }
}

/// Where the record of the task with directory `task_dir` lives.
pub(crate) fn record_path(task_dir: &Path) -> PathBuf {
    task_dir.with_extension("owner")
}

/// Writes the record of the task with directory `task_dir`: owned by this
/// process, led by `leader` once started.
pub(crate) fn write(task_dir: &Path, leader: Option<ProcessMark>) -> std::io::Result<()> {
    let Some(owner) = ProcessMark::me() else {
        return Err(std::io::Error::other("cannot read /proc/self/stat"));
    };
    let path = record_path(task_dir);
    let tmp = path.with_extension("owner.tmp");
    std::fs::write(&tmp, Record { owner, leader }.encode())?;
    std::fs::rename(&tmp, &path)
}

/// Deletes the record of the task with directory `task_dir`.
pub(crate) fn forget(task_dir: &Path) {
    match std::fs::remove_file(record_path(task_dir)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %task_dir.display(), error = %e, "failed to delete a task's record")
        }
    }
}

/// What [`reclaim`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reclaimed {
    /// Task process groups that were still running, now stopped.
    pub(crate) stopped: usize,
    /// Tasks whose records and directories were deleted.
    pub(crate) cleared: usize,
}

/// Stops every task in `state_dir` whose owning runtime no longer runs
/// (SIGTERM to its process group, SIGKILL after `grace`), and deletes
/// their records and directories. Tasks of runtimes that still run (in
/// this process or another) are left alone. Blocking.
pub(crate) fn reclaim(state_dir: &Path, grace: Duration) -> Reclaimed {
    let mut done = Reclaimed::default();
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return done;
    };
    let mut orphans = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "owner") {
            continue;
        }
        let record = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| Record::decode(&t));
        match record {
            Some(r) if r.owner.alive() => {}
            Some(r) => orphans.push((path, r.leader.filter(|l| l.alive()))),
            // Half-written by a runtime that died: its task never started.
            None => orphans.push((path, None)),
        }
    }
    let leaders: Vec<ProcessMark> = orphans.iter().filter_map(|(_, l)| *l).collect();
    for l in &leaders {
        tracing::warn!(
            pid = l.pid,
            "stopping a task process left by an earlier runtime"
        );
        signal(l.pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while leaders.iter().any(|l| l.alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for l in leaders.iter().filter(|l| l.alive()) {
        signal(l.pid, Signal::SIGKILL);
    }
    done.stopped = leaders.len();
    for (record, _) in orphans {
        let dir = record.with_extension("");
        crate::remove_dir(&dir);
        let _ = std::fs::remove_file(&record);
        done.cleared += 1;
    }
    done
}

fn signal(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid, ?signal, error = %e, "failed to signal a task's process group")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_marks_tell_processes_apart() {
        let me = ProcessMark::me().unwrap();
        assert!(me.alive());
        let later = ProcessMark {
            started: me.started + 1,
            ..me
        };
        assert!(!later.alive(), "same pid, another start: another process");
        for r in [
            Record {
                owner: me,
                leader: None,
            },
            Record {
                owner: me,
                leader: Some(later),
            },
        ] {
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        assert_eq!(Record::decode("12"), None);
        assert_eq!(Record::decode("a b"), None);
    }

    #[test]
    fn tasks_of_a_dead_runtime_are_stopped_and_a_live_one_s_are_not() {
        use std::os::unix::process::CommandExt;
        let dir =
            std::env::temp_dir().join(format!("swarm-reclaim-{}", swarm_core::Id::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let spawn = || {
            let child = std::process::Command::new("sleep")
                .arg("600")
                .process_group(0)
                .spawn()
                .unwrap();
            let pid = i32::try_from(child.id()).unwrap();
            (child, ProcessMark::of(pid).unwrap())
        };
        // A runtime that died: a process that has exited.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_mark = ProcessMark::of(i32::try_from(gone.id()).unwrap()).unwrap();
        gone.wait().unwrap();
        let (mut orphan, orphan_mark) = spawn();
        let (mut kept, kept_mark) = spawn();
        let orphan_dir = dir.join("orphan");
        std::fs::create_dir_all(&orphan_dir).unwrap();
        let record = |owner, leader| {
            Record {
                owner,
                leader: Some(leader),
            }
            .encode()
        };
        std::fs::write(record_path(&orphan_dir), record(gone_mark, orphan_mark)).unwrap();
        std::fs::write(
            record_path(&dir.join("kept")),
            record(ProcessMark::me().unwrap(), kept_mark),
        )
        .unwrap();

        let done = reclaim(&dir, Duration::from_secs(5));
        assert_eq!(
            done,
            Reclaimed {
                stopped: 1,
                cleared: 1
            }
        );
        let status = orphan.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15), "stopped with SIGTERM");
        assert!(!orphan_dir.exists() && !record_path(&orphan_dir).exists());
        assert!(kept_mark.alive(), "a live runtime's task runs on");
        assert!(record_path(&dir.join("kept")).exists());
        kept.kill().unwrap();
        kept.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
