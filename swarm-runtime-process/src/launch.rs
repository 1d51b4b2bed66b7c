//! Turning a task into something to execute: program, arguments,
//! environment, user, and the private directory with its files.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use nix::unistd::{Gid, Group, Uid, User};
use swarm_core::model::Task;
use swarm_core::network::Sandbox;
use swarm_core::runtime::{FileKind, RuntimeError, TaskFile};

use crate::ProcessRuntimeConfig;

/// The `PATH` used to find programs when neither the runtime nor the task
/// sets one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Everything needed to run a task's program, or its health check, the same
/// way every time.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The resolved program.
    pub(crate) program: PathBuf,
    /// `argv[0]`: the program as the spec names it.
    pub(crate) arg0: String,
    /// `command` then `args`.
    pub(crate) args: Vec<String>,
    /// The whole environment.
    pub(crate) env: Vec<(String, String)>,
    /// The working directory, if the spec sets one.
    pub(crate) workdir: Option<PathBuf>,
    /// The uid and gid to switch to, when they differ from the runtime's.
    pub(crate) switch_to: Option<(u32, u32)>,
    /// The task's private directory.
    pub(crate) dir: PathBuf,
    /// Where its secret and config files are (on a tmpfs), removed when it
    /// ends.
    pub(crate) files: PathBuf,
    /// The task's network namespace and `resolv.conf`, when it has one.
    pub(crate) netns: Option<Arc<NetnsEntry>>,
    /// The signal that asks it to stop (`SIGTERM` unless the spec names
    /// another).
    pub(crate) stop_signal: nix::sys::signal::Signal,
    /// Set Linux's `no_new_privs` before the exec (`Privileges.NoNewPrivileges`):
    /// setuid programs and file capabilities give it nothing.
    pub(crate) no_new_privs: bool,
}

/// A stop signal as Docker takes it: `SIGINT`, `INT` or `2`.
pub(crate) fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal, String> {
    use nix::sys::signal::Signal;
    let s = s.trim();
    let found = match s.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) => {
            let upper = s.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            name.parse::<Signal>().ok()
        }
    };
    found.ok_or_else(|| {
        format!("unknown stop signal {s:?}: name one such as SIGINT, SIGQUIT or SIGTERM")
    })
}

/// What a child needs to enter its task's network namespace, converted
/// before the fork (the child may only make system calls). It holds the
/// namespace's path, not an open file: an open file would keep the
/// namespace (and its interfaces, with the task's address) alive after the
/// node's driver removed it.
#[derive(Debug)]
pub(crate) struct NetnsEntry {
    netns: CString,
    resolv_conf: Option<CString>,
}

impl NetnsEntry {
    fn open(sandbox: &Sandbox) -> Result<Self, RuntimeError> {
        if !sandbox.netns.exists() {
            return Err(RuntimeError::Unavailable(format!(
                "the task's network namespace {} does not exist",
                sandbox.netns.display()
            )));
        }
        let netns = CString::new(sandbox.netns.as_os_str().as_bytes())
            .map_err(|_| invalid("the network namespace path holds a NUL byte"))?;
        let resolv_conf = sandbox
            .resolv_conf
            .as_ref()
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .transpose()
            .map_err(|_| invalid("the resolv.conf path holds a NUL byte"))?;
        Ok(Self { netns, resolv_conf })
    }

    /// In the child, between fork and exec: joins the namespace, and
    /// shows the task its own `resolv.conf` in a mount namespace of its
    /// own (so the host's stays as it is).
    fn enter(&self) -> std::io::Result<()> {
        use nix::mount::{MsFlags, mount};
        use nix::sched::{CloneFlags, setns, unshare};
        let fd = nix::fcntl::open(
            self.netns.as_c_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        setns(&fd, CloneFlags::CLONE_NEWNET)?;
        drop(fd);
        if let Some(resolv) = &self.resolv_conf {
            unshare(CloneFlags::CLONE_NEWNS)?;
            mount(
                None::<&CStr>,
                c"/",
                None::<&CStr>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&CStr>,
            )?;
            mount(
                Some(resolv.as_c_str()),
                c"/etc/resolv.conf",
                None::<&CStr>,
                MsFlags::MS_BIND,
                None::<&CStr>,
            )?;
        }
        Ok(())
    }
}

impl Launch {
    /// Resolves `task` and writes its files under `config.state_dir`.
    /// Blocking: call it off the async threads.
    pub(crate) fn prepare(
        config: &ProcessRuntimeConfig,
        task: &Task,
        files: &[TaskFile],
        sandbox: Option<&Sandbox>,
    ) -> Result<Self, RuntimeError> {
        let spec = &task.spec;
        if spec.image.trim().is_empty() {
            return Err(invalid(
                "no program given: set the task's image to the program to run",
            ));
        }
        unsupported(task, sandbox.is_some())?;
        let netns = sandbox.map(NetnsEntry::open).transpose()?.map(Arc::new);
        let workdir = spec.workdir.as_deref().map(PathBuf::from);
        if let Some(w) = &workdir
            && !w.is_dir()
        {
            return Err(invalid(format!(
                "working directory {w:?} does not exist on this node: create it or change the task's workdir"
            )));
        }
        let user = spec
            .user
            .as_deref()
            .map(resolve_user)
            .transpose()
            .map_err(invalid)?;
        let switch_to = match (&spec.user, &user) {
            (Some(name), Some(u)) => user_switch(
                name,
                u,
                Uid::effective().as_raw(),
                Gid::effective().as_raw(),
            )
            .map_err(invalid)?,
            _ => None,
        };

        let dir = config.state_dir.join(task.meta.id.as_str());
        let files_root = config.files_root();
        let files_dir = files_root.join(task.meta.id.as_str());
        let mut env: Vec<(String, String)> = Vec::new();
        for name in &config.inherited_env {
            if let Ok(value) = std::env::var(name) {
                set(&mut env, name, value);
            }
        }
        if let Some(home) = user.as_ref().and_then(|u| u.home.clone()) {
            set(&mut env, "HOME", home);
        }
        for entry in &spec.env {
            match entry.split_once('=') {
                Some((k, v)) if !k.is_empty() => set(&mut env, k, v.to_owned()),
                _ => {
                    return Err(invalid(format!(
                        "invalid environment entry {entry:?}: expected KEY=VALUE"
                    )));
                }
            }
        }
        let path = |p: &Path| p.to_string_lossy().into_owned();
        set(&mut env, "SWARM_TASK_ID", task.meta.id.to_string());
        set(&mut env, "SWARM_TASK_NAME", task.name());
        set(&mut env, "SWARM_TASK_SLOT", task.slot.to_string());
        set(&mut env, "SWARM_SERVICE_ID", task.service_id.to_string());
        set(
            &mut env,
            "SWARM_SERVICE_NAME",
            task.service_name.to_string(),
        );
        if let Some(node) = &task.node_id {
            set(&mut env, "SWARM_NODE_ID", node.to_string());
        }
        for entry in swarm_core::model::generic_env(&task.assigned_generic_resources) {
            if let Some((k, v)) = entry.split_once('=') {
                set(&mut env, k, v.to_owned());
            }
        }
        set(
            &mut env,
            "SWARM_SECRETS_DIR",
            path(&files_dir.join("secrets")),
        );
        set(
            &mut env,
            "SWARM_CONFIGS_DIR",
            path(&files_dir.join("configs")),
        );

        let search = lookup(&env, "PATH").unwrap_or(DEFAULT_PATH);
        let program = find_program(&spec.image, search, workdir.as_deref()).map_err(invalid)?;

        // `sleep:latest` runs as `sleep`.
        let arg0 = match spec.image.split_once(':') {
            Some((name, _)) if !spec.image.contains('/') && program.ends_with(name) => {
                name.to_owned()
            }
            _ => spec.image.clone(),
        };
        let stop_signal = match &spec.stop_signal {
            Some(s) => parse_signal(s).map_err(invalid)?,
            None => nix::sys::signal::Signal::SIGTERM,
        };
        let launch = Self {
            program,
            arg0,
            args: spec.command.iter().chain(&spec.args).cloned().collect(),
            env,
            workdir,
            switch_to,
            dir,
            files: files_dir,
            netns,
            stop_signal,
            no_new_privs: spec
                .privileges
                .as_ref()
                .is_some_and(|p| p.no_new_privileges),
        };
        launch.write_files(&files_root, files)?;
        Ok(launch)
    }

    /// Creates the task's files directory with `secrets/` (mode 0700) and
    /// `configs/`, both the task's user's, and writes the files with their
    /// modes and owners.
    fn write_files(&self, root: &Path, files: &[TaskFile]) -> Result<(), RuntimeError> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            RuntimeError::Unavailable(format!("failed to {what} {}: {e}", path.display()))
        };
        // Others may pass through the root to a task's own directory, but
        // not list it.
        DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(|e| io("create", root, e))?;
        // The task's own directory (on disk, beside the state), for its
        // bookkeeping.
        if let Some(state_dir) = self.dir.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(state_dir)
                .map_err(|e| io("create", state_dir, e))?;
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| io("create", &self.dir, e))?;
        self.own(&self.dir)
            .map_err(|e| io("hand over", &self.dir, e))?;
        let secrets = self.files.join("secrets");
        let configs = self.files.join("configs");
        for (dir, mode) in [(&self.files, 0o700), (&secrets, 0o700), (&configs, 0o755)] {
            DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| io("create", dir, e))?;
            self.own(dir).map_err(|e| io("hand over", dir, e))?;
        }
        for file in files {
            let base = match file.kind {
                FileKind::Secret => &secrets,
                FileKind::Config => &configs,
            };
            let path = base.join(relative_target(&file.target).map_err(invalid)?);
            if let Some(parent) = path.parent().filter(|p| *p != base.as_path()) {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| io("create", parent, e))?;
            }
            // A read-only file from an earlier prepare cannot be opened for
            // writing: replace it.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("replace", &path, e)),
            }
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io("create", &path, e))?;
            f.write_all(&file.data).map_err(|e| io("write", &path, e))?;
            std::fs::set_permissions(&path, Permissions::from_mode(file.mode & 0o7777))
                .map_err(|e| io("set the mode of", &path, e))?;
            if file.uid != 0 || file.gid != 0 {
                std::os::unix::fs::chown(&path, Some(file.uid), Some(file.gid))
                    .map_err(|e| io("give the file its owner", &path, e))?;
            } else {
                self.own(&path).map_err(|e| io("hand over", &path, e))?;
            }
        }
        Ok(())
    }

    /// Gives `path` to the task's user, when the task runs as another user.
    fn own(&self, path: &Path) -> std::io::Result<()> {
        match self.switch_to {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }

    /// A command running the task's program in its own process group, with
    /// the task's environment, directory and user; stdin is closed.
    pub(crate) fn command(&self) -> tokio::process::Command {
        self.command_for(&self.program, &self.arg0, &self.args)
    }

    /// A command running `program` (resolved in the task's `PATH`) the way
    /// the task runs, for health checks.
    pub(crate) fn command_of(&self, program: &str, args: &[String]) -> tokio::process::Command {
        let search = lookup(&self.env, "PATH").unwrap_or(DEFAULT_PATH);
        // A program that cannot be found fails when spawned, which a health
        // check counts as a failed check.
        let resolved = find_program(program, search, self.workdir.as_deref())
            .unwrap_or_else(|_| PathBuf::from(program));
        self.command_for(&resolved, program, args)
    }

    fn command_for(&self, program: &Path, arg0: &str, args: &[String]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg0(arg0)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        if let Some((uid, gid)) = self.switch_to {
            cmd.uid(uid).gid(gid);
        }
        if let Some(ns) = self.netns.clone() {
            // SAFETY: `enter` only makes system calls (setns, unshare,
            // mount) on what was opened and converted before the fork: no
            // allocation, no lock.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || ns.enter());
            }
        }
        if self.no_new_privs {
            // SAFETY: one prctl system call, no allocation, no lock.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(|| nix::sys::prctl::set_no_new_privs().map_err(std::io::Error::from));
            }
        }
        cmd
    }
}

/// What a process cannot be given: mounts, and, on the host's network, a
/// published port other than the one it listens on (in a namespace of
/// its own, the node's load balancer translates).
fn unsupported(task: &Task, sandboxed: bool) -> Result<(), RuntimeError> {
    let asked = task.spec.container_only();
    if !asked.is_empty() {
        return Err(invalid(format!(
            "the process runtime cannot honour {}: it runs plain processes of this node; run the service on nodes with the docker runtime, or leave {} out",
            asked.join(", "),
            if asked.len() == 1 { "it" } else { "them" }
        )));
    }
    if let Some(m) = task.spec.mounts.first() {
        return Err(invalid(format!(
            "the process runtime cannot mount filesystems ({} mount at {}): run the service on nodes with the docker runtime, or drop the mount",
            m.kind, m.target
        )));
    }
    if let Some(p) = task
        .endpoint
        .ports
        .iter()
        .find(|p| p.published_port != 0 && p.published_port != p.target_port)
        && !sandboxed
    {
        return Err(invalid(format!(
            "a process cannot have its port {} published as {}: the process runtime does not translate ports, so publish the port the program listens on (-p {}:{})",
            p.target_port, p.published_port, p.target_port, p.target_port
        )));
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec(msg.into())
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value));
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Finds `program`: a name with a `/` is a path (relative to `workdir`); a
/// bare name is looked up in `search`, a `PATH`. A bare name that reads
/// as an image reference with a tag (`sleep:latest`, which the `docker`
/// CLI makes of `sleep`) is the program before the tag.
fn find_program(program: &str, search: &str, workdir: Option<&Path>) -> Result<PathBuf, String> {
    if !program.contains('/')
        && let Some((name, tag)) = program.split_once(':')
        && !name.is_empty()
        && !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && let Ok(found) = find_program(name, search, workdir)
    {
        return Ok(found);
    }
    if program.contains('/') {
        let path = match workdir {
            Some(w) if !program.starts_with('/') => w.join(program),
            _ => PathBuf::from(program),
        };
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(why) => Err(format!(
                "program {program:?} not found: {why}; give the path of an executable on this node"
            )),
        };
    }
    search
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p).is_ok())
        .ok_or_else(|| {
            format!(
                "program {program:?} not found: it is in no directory of PATH ({search}); install it on this node or give its absolute path"
            )
        })
}

fn executable(path: &Path) -> Result<(), &'static str> {
    let meta = std::fs::metadata(path).map_err(|_| "no such file")?;
    if !meta.is_file() {
        return Err("not a file");
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("the file is not executable");
    }
    Ok(())
}

/// A secret's or config's target as a path below its directory: a leading
/// `/` is dropped, `..` is refused.
fn relative_target(target: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "invalid file target {target:?}: give a file name without '..'"
                ));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("invalid file target {target:?}: give a file name"));
    }
    Ok(out)
}

/// A user a task asked to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskUser {
    uid: u32,
    gid: u32,
    home: Option<String>,
}

/// Resolves `user[:group]`, each a name or a number. A user that is not in
/// the user database must be a number; its group is then its uid unless
/// one is given.
fn resolve_user(spec: &str) -> Result<TaskUser, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup_failed = |e: nix::Error| {
        format!("cannot run as user {spec:?}: failed to read the user database: {e}")
    };
    let (uid, entry) = match user.parse::<u32>() {
        Ok(uid) => (
            uid,
            User::from_uid(Uid::from_raw(uid)).map_err(lookup_failed)?,
        ),
        Err(_) => {
            let entry = User::from_name(user).map_err(lookup_failed)?.ok_or_else(|| {
                format!("cannot run as user {spec:?}: there is no user {user:?} on this node; give a uid or a user that exists here")
            })?;
            (entry.uid.as_raw(), Some(entry))
        }
    };
    let gid = match group {
        None => entry.as_ref().map_or(uid, |e| e.gid.as_raw()),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(g)
                .map_err(lookup_failed)?
                .ok_or_else(|| {
                    format!("cannot run as user {spec:?}: there is no group {g:?} on this node")
                })?
                .gid
                .as_raw(),
        },
    };
    let home = entry
        .map(|e| e.dir.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty());
    Ok(TaskUser { uid, gid, home })
}

/// Whether the runtime, running as `uid`:`gid`, must and may switch to
/// `user`: `Ok(None)` when it already is that user, `Ok(Some)` as root,
/// an error otherwise.
fn user_switch(
    spec: &str,
    user: &TaskUser,
    uid: u32,
    gid: u32,
) -> Result<Option<(u32, u32)>, String> {
    if user.uid == uid && user.gid == gid {
        Ok(None)
    } else if uid == 0 {
        Ok(Some((user.uid, user.gid)))
    } else {
        Err(format!(
            "cannot run as user {spec:?} (uid {}, gid {}): this runtime runs as uid {uid}, gid {gid}, and only root can run tasks as another user; remove the task's user or run the agent as root",
            user.uid, user.gid
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_are_read_as_docker_reads_them() {
        use nix::sys::signal::Signal;
        for (text, signal) in [
            ("SIGINT", Signal::SIGINT),
            ("quit", Signal::SIGQUIT),
            ("15", Signal::SIGTERM),
        ] {
            assert_eq!(parse_signal(text).unwrap(), signal, "{text}");
        }
        assert!(
            parse_signal("SIGNOPE")
                .unwrap_err()
                .contains("unknown stop signal")
        );
    }

    #[test]
    fn programs_are_found_by_path_or_in_path() {
        assert_eq!(
            find_program("sh", "/nonexistent:/bin", None).unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(
            find_program("/bin/sh", "", None).unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(
            find_program("./sh", "", Some(Path::new("/bin"))).unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(
            find_program("sh:latest", "/nonexistent:/bin", None).unwrap(),
            Path::new("/bin/sh"),
            "an image reference's tag names no program"
        );
        let err = find_program("nope-not-here", "/bin", None).unwrap_err();
        assert!(
            err.starts_with(
                "program \"nope-not-here\" not found: it is in no directory of PATH (/bin)"
            ),
            "{err}"
        );
        let plain = std::env::temp_dir().join(format!("swarm-launch-test-{}", std::process::id()));
        std::fs::write(&plain, "data").unwrap();
        std::fs::set_permissions(&plain, Permissions::from_mode(0o644)).unwrap();
        let err = find_program(plain.to_str().unwrap(), "", None).unwrap_err();
        std::fs::remove_file(&plain).unwrap();
        assert!(
            err.ends_with(
                "not found: the file is not executable; give the path of an executable on this node"
            ),
            "{err}"
        );
        let err = find_program("/", "", None).unwrap_err();
        assert!(err.contains("not a file"), "{err}");
        let err = find_program("/nonexistent/x", "", None).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn targets_stay_below_their_directory() {
        assert_eq!(relative_target("db_pass").unwrap(), Path::new("db_pass"));
        assert_eq!(
            relative_target("/etc/app.conf").unwrap(),
            Path::new("etc/app.conf")
        );
        assert!(
            relative_target("../escape")
                .unwrap_err()
                .contains("without '..'")
        );
        assert!(relative_target("/").is_err());
    }

    #[test]
    fn users_resolve_by_name_or_number() {
        let root = resolve_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            resolve_user("4242").unwrap(),
            TaskUser {
                uid: 4242,
                gid: 4242,
                home: None
            }
        );
        assert_eq!(resolve_user("4242:7").unwrap().gid, 7);
        assert_eq!(resolve_user("root:0").unwrap().gid, 0);
        let err = resolve_user("no-such-user-here").unwrap_err();
        assert!(
            err.contains("there is no user \"no-such-user-here\" on this node"),
            "{err}"
        );
        let err = resolve_user("0:no-such-group-here").unwrap_err();
        assert!(
            err.contains("there is no group \"no-such-group-here\""),
            "{err}"
        );
    }

    #[test]
    fn only_root_switches_users() {
        let user = TaskUser {
            uid: 1000,
            gid: 1000,
            home: None,
        };
        assert_eq!(user_switch("u", &user, 1000, 1000), Ok(None));
        assert_eq!(user_switch("u", &user, 0, 0), Ok(Some((1000, 1000))));
        let err = user_switch("u", &user, 500, 500).unwrap_err();
        assert!(
            err.contains("only root can run tasks as another user"),
            "{err}"
        );
        assert!(
            err.starts_with("cannot run as user \"u\" (uid 1000, gid 1000)"),
            "{err}"
        );
    }
}
