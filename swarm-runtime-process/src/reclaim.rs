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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};

use crate::process::signal_group;
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

/// The runtimes alive in this process, by token: a runtime dropped
/// without stopping its tasks leaves them to the next one, even in the
/// same process.
static LIVE: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u64>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A runtime's identity in the records: this process and a token of its
/// own. Registered while it lives.
#[derive(Debug)]
pub(crate) struct Owner {
    pub(crate) token: u64,
}

impl Owner {
    /// A new owner, registered as alive.
    pub(crate) fn register() -> Self {
        let token = rand_token();
        live().insert(token);
        Self { token }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        live().remove(&self.token);
    }
}

fn rand_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per process and per call.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// This boot's id: start times count from boot, so a record of another
/// boot names no process of this one.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The record of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) boot: String,
    pub(crate) owner: ProcessMark,
    pub(crate) token: u64,
    pub(crate) leader: Option<ProcessMark>,
}

impl Record {
    fn encode(&self) -> String {
        let mut s = format!(
            "{} {} {} {}",
            self.boot, self.owner.pid, self.owner.started, self.token
        );
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
        let (boot, owner, token, leader) = match n.as_slice() {
            [b, p, s, t] => (b, mark(p, s)?, t, None),
            [b, p, s, t, lp, ls] => (b, mark(p, s)?, t, Some(mark(lp, ls)?)),
            _ => return None,
        };
        Some(Self {
            boot: (*boot).to_owned(),
            owner,
            token: token.parse().ok()?,
            leader,
        })
    }

    /// Whether the runtime that wrote it still runs.
    fn owner_alive(&self, boot: &str) -> bool {
        if self.boot != boot || !self.owner.alive() {
            return false;
        }
        ProcessMark::me() != Some(self.owner) || live().contains(&self.token)
    }
}

/// Where the record of the task with directory `task_dir` lives: beside
/// it, `<task id>.owner` (task ids may hold dots).
pub(crate) fn record_path(task_dir: &Path) -> PathBuf {
    let mut name = task_dir.file_name().unwrap_or_default().to_owned();
    name.push(".owner");
    task_dir.with_file_name(name)
}

/// Writes the record of the task with directory `task_dir`: owned by
/// `owner`, led by `leader` once started. A record without a leader does
/// not replace one of the same owner with a leader (a late `prepare` of a
/// task that has started).
pub(crate) fn write(
    task_dir: &Path,
    owner: &Owner,
    leader: Option<ProcessMark>,
) -> std::io::Result<()> {
    let Some(me) = ProcessMark::me() else {
        return Err(std::io::Error::other("cannot read /proc/self/stat"));
    };
    let path = record_path(task_dir);
    if leader.is_none()
        && let Ok(text) = std::fs::read_to_string(&path)
        && let Some(old) = Record::decode(&text)
        && old.owner == me
        && old.token == owner.token
        && old.leader.is_some()
    {
        return Ok(());
    }
    let record = Record {
        boot: boot_id(),
        owner: me,
        token: owner.token,
        leader,
    };
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, record.encode())?;
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

/// Whether the task's process group `leader` (led by, or left by, that
/// process) still exists and is the task's: its leader runs, or the
/// leader is gone but its group lives on (Linux gives no process a pid
/// that is still a group's id, so no other process can hold it).
fn group_alive(leader: ProcessMark) -> bool {
    if leader.alive() {
        return true;
    }
    let pid_free = ProcessMark::of(leader.pid).is_none();
    pid_free && killpg(Pid::from_raw(leader.pid), None).is_ok()
}

/// Stops every task in `state_dir` whose owning runtime no longer runs
/// (SIGTERM to its process group, SIGKILL after `grace`), and deletes
/// their records and directories. Tasks of runtimes that still run (in
/// this process or another) are left alone, and so are records that
/// cannot be read. Blocking.
pub(crate) fn reclaim(state_dir: &Path, grace: Duration) -> Reclaimed {
    let mut done = Reclaimed::default();
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return done;
    };
    let boot = boot_id();
    let mut orphans = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(task) = name.strip_suffix(".owner") else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let dir = state_dir.join(task);
        match Record::decode(&text) {
            Some(r) if r.owner_alive(&boot) => {}
            // A leader of another boot is no process of this one.
            Some(r) if r.boot == boot => {
                orphans.push((path, dir, r.leader.filter(|l| group_alive(*l))))
            }
            // Another boot's, or not a record of ours: nothing runs.
            _ => orphans.push((path, dir, None)),
        }
    }
    let groups: Vec<ProcessMark> = orphans.iter().filter_map(|(_, _, l)| *l).collect();
    for g in &groups {
        tracing::warn!(
            pgid = g.pid,
            "stopping a task left running by an earlier runtime"
        );
        signal_group(Pid::from_raw(g.pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while groups.iter().any(|g| group_alive(*g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for g in groups.iter().filter(|g| group_alive(**g)) {
        signal_group(Pid::from_raw(g.pid), Signal::SIGKILL);
    }
    done.stopped = groups.len();
    for (record, dir, _) in orphans {
        crate::remove_dir(&dir);
        let _ = std::fs::remove_file(&record);
        done.cleared += 1;
    }
    done
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
        for leader in [None, Some(later)] {
            let r = Record {
                boot: boot_id(),
                owner: me,
                token: 7,
                leader,
            };
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        assert_eq!(Record::decode("12"), None);
        assert_eq!(Record::decode("b 1 x 3"), None);
        assert_eq!(
            record_path(Path::new("/s/x.a")),
            PathBuf::from("/s/x.a.owner"),
            "ids with dots keep their own record"
        );
    }

    #[test]
    fn owners_are_alive_while_they_run_this_boot_and_are_registered() {
        let boot = boot_id();
        let me = ProcessMark::me().unwrap();
        let owner = Owner::register();
        let record = |boot: &str, token| Record {
            boot: boot.into(),
            owner: me,
            token,
            leader: None,
        };
        assert!(record(&boot, owner.token).owner_alive(&boot));
        assert!(!record("another-boot", owner.token).owner_alive(&boot));
        let token = owner.token;
        drop(owner);
        assert!(
            !record(&boot, token).owner_alive(&boot),
            "a dropped runtime of this process owns nothing"
        );
    }

    #[test]
    fn tasks_of_a_dead_runtime_are_stopped_and_a_live_one_s_are_not() {
        use std::os::unix::process::CommandExt;
        let dir =
            std::env::temp_dir().join(format!("swarm-reclaim-{}", swarm_core::Id::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let spawn = |script: &str| {
            let child = std::process::Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .spawn()
                .unwrap();
            let pid = i32::try_from(child.id()).unwrap();
            (child, ProcessMark::of(pid).unwrap())
        };
        let boot = boot_id();
        // A runtime that died: a process that has exited.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_mark = ProcessMark::of(i32::try_from(gone.id()).unwrap()).unwrap();
        gone.wait().unwrap();
        let (mut orphan, orphan_mark) = spawn("exec sleep 600");
        // A group whose leader exited, leaving a child that ignores SIGTERM.
        let child_file = dir.join("left-child");
        let (mut left, left_mark) = spawn(&format!(
            "trap '' TERM; sleep 600 & echo $! > {}; exit 0",
            child_file.display()
        ));
        left.wait().unwrap();
        let left_child: i32 = std::fs::read_to_string(&child_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let owner = Owner::register();
        let (mut kept, kept_mark) = spawn("exec sleep 600");
        let write = |name: &str, owner: ProcessMark, token, leader| {
            let r = Record {
                boot: boot.clone(),
                owner,
                token,
                leader: Some(leader),
            };
            std::fs::write(record_path(&dir.join(name)), r.encode()).unwrap();
        };
        std::fs::create_dir_all(dir.join("orphan.1")).unwrap();
        write("orphan.1", gone_mark, 1, orphan_mark);
        write("left", gone_mark, 1, left_mark);
        write("kept", ProcessMark::me().unwrap(), owner.token, kept_mark);
        // Not a record: left alone, but cleared.
        std::fs::write(dir.join("junk.owner"), "not a record").unwrap();

        let done = reclaim(&dir, Duration::from_millis(500));
        assert_eq!(
            done,
            Reclaimed {
                stopped: 2,
                cleared: 3
            }
        );
        let status = orphan.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15), "stopped with SIGTERM");
        assert!(!dir.join("orphan.1").exists() && !record_path(&dir.join("orphan.1")).exists());
        // The group's last process was killed: soon gone, or a zombie
        // waiting for whoever reaps orphans here.
        let state = || {
            let stat =
                std::fs::read_to_string(format!("/proc/{left_child}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        };
        let dead = Instant::now() + Duration::from_secs(10);
        while !matches!(state().as_deref(), None | Some("Z" | "X")) && Instant::now() < dead {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            matches!(state().as_deref(), None | Some("Z" | "X")),
            "the leaderless group was killed: {:?}",
            state()
        );
        assert!(kept_mark.alive(), "a live runtime's task runs on");
        assert!(record_path(&dir.join("kept")).exists());
        kept.kill().unwrap();
        kept.wait().unwrap();
        drop(owner);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
