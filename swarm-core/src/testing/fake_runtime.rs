//! A [`Runtime`] in memory, with faults on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::Id;
use crate::model::{NodeDescription, Platform, Resources, Task};
use crate::runtime::{
    Enforcement, ExitStatus, LogLine, LogOptions, LogSource, LogStream, Runtime, RuntimeError,
    RuntimeInfo, RuntimeState, RuntimeStatus, TaskFile,
};

/// What can go wrong with a task, on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `prepare` fails with this error (`InvalidSpec` makes the agent
    /// reject the task; `Unavailable` is retried a few times).
    FailPrepare(RuntimeError),
    /// `start` fails with this error.
    FailStart(RuntimeError),
    /// The task exits with `code` this long after it started (on tokio's
    /// clock, so a paused clock drives it).
    ExitAfter {
        /// How long it runs.
        after: Duration,
        /// Its exit code.
        code: i32,
    },
    /// `stop` never returns, and the task runs on: a task that ignores
    /// its stop signal on a runtime that does not kill it.
    HangingStop,
}

type Matcher = Arc<dyn Fn(&Task) -> bool + Send + Sync>;

/// Makes a running task exit with `status`; says whether it ran.
fn end(state: &watch::Sender<RuntimeState>, status: ExitStatus) -> bool {
    state.send_if_modified(|s| {
        let running = *s == RuntimeState::Running;
        if running {
            *s = RuntimeState::Exited(status);
        }
        running
    })
}

struct FakeTask {
    task: Task,
    files: Vec<TaskFile>,
    state: watch::Sender<RuntimeState>,
    started_at: Option<SystemTime>,
    faults: Vec<Fault>,
    logs: Vec<LogLine>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<Id, FakeTask>,
    faults: Vec<(Matcher, Fault)>,
    info: RuntimeInfo,
}

/// A runtime that runs nothing: tasks are records that go through the
/// runtime's states as the agent drives them, exit when told to
/// ([`FakeRuntime::exit`]) or when a [`Fault`] says, and fail or hang on
/// demand. Cheap to clone: clones share their tasks.
///
/// ```
/// use std::time::Duration;
/// use swarm_core::runtime::{Runtime, RuntimeError, RuntimeState};
/// use swarm_core::testing::{FakeRuntime, Fault};
/// use swarm_core::testing::fixtures::{assigned_task, service};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let runtime = FakeRuntime::new("node-1");
/// runtime.inject(|t| t.slot == 2, Fault::FailStart(RuntimeError::Unavailable("no".into())));
/// let svc = service("web", 2, |_| {});
/// let (one, two) = (assigned_task(&svc, 1, "node-1"), assigned_task(&svc, 2, "node-1"));
/// for t in [&one, &two] {
///     runtime.prepare(t, &[]).await.unwrap();
/// }
/// runtime.start(&one.meta.id).await.unwrap();
/// assert!(runtime.start(&two.meta.id).await.is_err());
/// runtime.exit(&one.meta.id, 3);
/// assert_eq!(runtime.wait(&one.meta.id).await.unwrap().code, 3);
/// # }
/// ```
#[derive(Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRuntime")
            .field("tasks", &self.lock().tasks.len())
            .finish_non_exhaustive()
    }
}

impl FakeRuntime {
    /// A runtime describing a node named `hostname`, with 4 CPUs and 8 GiB.
    #[must_use]
    pub fn new(hostname: &str) -> Self {
        Self::with_description(NodeDescription {
            data_addr: None,
            hostname: hostname.into(),
            platform: Platform::current(),
            resources: Resources::new(4.0, 8 << 30),
            ..Default::default()
        })
    }

    /// A runtime describing the node as `description`.
    #[must_use]
    pub fn with_description(description: NodeDescription) -> Self {
        let inner = Inner {
            info: RuntimeInfo {
                description,
                enforcement: Enforcement::default(),
            },
            ..Inner::default()
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `fault` to every task prepared from now on that `matches`.
    pub fn inject(&self, matches: impl Fn(&Task) -> bool + Send + Sync + 'static, fault: Fault) {
        self.lock().faults.push((Arc::new(matches), fault));
    }

    /// Gives `fault` to every task prepared from now on.
    pub fn inject_all(&self, fault: Fault) {
        self.inject(|_| true, fault);
    }

    /// Forgets every fault injected so far (tasks keep theirs).
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The ids of the tasks that run now.
    #[must_use]
    pub fn running(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self
            .lock()
            .tasks
            .iter()
            .filter(|(_, t)| *t.state.borrow() == RuntimeState::Running)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The tasks it holds (prepared and not removed), as they were given.
    #[must_use]
    pub fn tasks(&self) -> Vec<Task> {
        self.lock().tasks.values().map(|t| t.task.clone()).collect()
    }

    /// The files `prepare` was given for task `id`.
    #[must_use]
    pub fn files(&self, id: &Id) -> Option<Vec<TaskFile>> {
        self.lock().tasks.get(id).map(|t| t.files.clone())
    }

    /// Makes running task `id` exit with `code` now; `false` if it does
    /// not run.
    pub fn exit(&self, id: &Id, code: i32) -> bool {
        let inner = self.lock();
        let Some(t) = inner.tasks.get(id) else {
            return false;
        };
        end(&t.state, ExitStatus { code, signal: None })
    }

    /// Adds a line to task `id`'s output.
    pub fn log(&self, id: &Id, source: LogSource, line: &str) {
        if let Some(t) = self.lock().tasks.get_mut(id) {
            t.logs.push(LogLine {
                timestamp: SystemTime::now(),
                source,
                line: line.into(),
            });
        }
    }

    fn faults_of(&self, id: &Id) -> Result<Vec<Fault>, RuntimeError> {
        self.lock()
            .tasks
            .get(id)
            .map(|t| t.faults.clone())
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }

    fn state_of(&self, id: &Id) -> Result<watch::Receiver<RuntimeState>, RuntimeError> {
        self.lock()
            .tasks
            .get(id)
            .map(|t| t.state.subscribe())
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn info(&self) -> Result<RuntimeInfo, RuntimeError> {
        Ok(self.lock().info.clone())
    }

    async fn prepare(&self, task: &Task, files: &[TaskFile]) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        if inner.tasks.contains_key(&task.meta.id) {
            return Ok(());
        }
        let faults: Vec<Fault> = inner
            .faults
            .iter()
            .filter(|(m, _)| m(task))
            .map(|(_, f)| f.clone())
            .collect();
        if let Some(Fault::FailPrepare(e)) =
            faults.iter().find(|f| matches!(f, Fault::FailPrepare(_)))
        {
            return Err(e.clone());
        }
        inner.tasks.insert(
            task.meta.id.clone(),
            FakeTask {
                task: task.clone(),
                files: files.to_vec(),
                state: watch::Sender::new(RuntimeState::Created),
                started_at: None,
                faults,
                logs: Vec::new(),
            },
        );
        Ok(())
    }

    async fn start(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let faults = self.faults_of(task_id)?;
        if let Some(Fault::FailStart(e)) = faults.iter().find(|f| matches!(f, Fault::FailStart(_)))
        {
            return Err(e.clone());
        }
        let state = {
            let mut inner = self.lock();
            let t = inner
                .tasks
                .get_mut(task_id)
                .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
            match *t.state.borrow() {
                RuntimeState::Created => {}
                RuntimeState::Running => return Ok(()),
                RuntimeState::Exited(_) => {
                    return Err(RuntimeError::InvalidState(format!(
                        "task {task_id} has exited and runs only once"
                    )));
                }
            }
            t.started_at = Some(SystemTime::now());
            t.state.send_replace(RuntimeState::Running);
            t.state.clone()
        };
        for fault in faults {
            if let Fault::ExitAfter { after, code } = fault {
                let state = state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    end(&state, ExitStatus { code, signal: None });
                });
            }
        }
        Ok(())
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitStatus, RuntimeError> {
        let mut state = self.state_of(task_id)?;
        let ended = state
            .wait_for(|s| matches!(s, RuntimeState::Exited(_)))
            .await
            .map(|s| *s);
        match ended {
            Ok(RuntimeState::Exited(status)) => Ok(status),
            // The task was removed while waited for.
            _ => Err(RuntimeError::NotFound(task_id.clone())),
        }
    }

    async fn stop(&self, task_id: &Id, _grace: Duration) -> Result<(), RuntimeError> {
        if self.faults_of(task_id)?.contains(&Fault::HangingStop) {
            return std::future::pending().await;
        }
        let inner = self.lock();
        if let Some(t) = inner.tasks.get(task_id) {
            // As a task killed by SIGTERM.
            end(
                &t.state,
                ExitStatus {
                    code: 143,
                    signal: Some(15),
                },
            );
        }
        Ok(())
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        self.lock().tasks.remove(task_id);
        Ok(())
    }

    async fn inspect(&self, task_id: &Id) -> Result<RuntimeStatus, RuntimeError> {
        let inner = self.lock();
        let t = inner
            .tasks
            .get(task_id)
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let state = *t.state.borrow();
        Ok(RuntimeStatus {
            state,
            health: None,
            runtime_id: t.started_at.map(|_| format!("fake-{task_id}")),
            started_at: t.started_at,
        })
    }

    async fn logs(&self, task_id: &Id, options: LogOptions) -> Result<LogStream, RuntimeError> {
        let inner = self.lock();
        let t = inner
            .tasks
            .get(task_id)
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let skip = options.tail.map_or(0, |n| t.logs.len().saturating_sub(n));
        let lines: Vec<LogLine> = t.logs[skip..].to_vec();
        Ok(Box::pin(futures::stream::iter(lines)))
    }

    async fn list(&self) -> Result<Vec<Id>, RuntimeError> {
        Ok(self.lock().tasks.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::{assigned_task, service};
    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn faults_hit_the_tasks_they_match() {
        let runtime = FakeRuntime::new("n1");
        runtime.inject(
            |t| t.slot == 1,
            Fault::FailPrepare(RuntimeError::InvalidSpec("bad image".into())),
        );
        runtime.inject(
            |t| t.slot == 2,
            Fault::ExitAfter {
                after: Duration::from_secs(30),
                code: 7,
            },
        );
        runtime.inject(|t| t.slot == 3, Fault::HangingStop);
        let svc = service("s", 3, |_| {});
        let t: Vec<Task> = (1..=3)
            .map(|slot| assigned_task(&svc, slot, "n1"))
            .collect();
        assert_eq!(
            runtime.prepare(&t[0], &[]).await,
            Err(RuntimeError::InvalidSpec("bad image".into()))
        );
        for task in &t[1..] {
            runtime.prepare(task, &[]).await.unwrap();
            runtime.start(&task.meta.id).await.unwrap();
        }
        assert_eq!(runtime.running().len(), 2);

        // Exits on the (paused) clock.
        let began = tokio::time::Instant::now();
        let status = runtime.wait(&t[1].meta.id).await.unwrap();
        assert_eq!(status.code, 7);
        assert_eq!(began.elapsed(), Duration::from_secs(30));

        // A hanging stop never returns, and the task runs on.
        let stop = tokio::time::timeout(
            Duration::from_secs(60),
            runtime.stop(&t[2].meta.id, Duration::from_secs(1)),
        )
        .await;
        assert!(stop.is_err(), "the stop hangs");
        assert_eq!(runtime.running(), [t[2].meta.id.clone()]);
        runtime.remove(&t[2].meta.id).await.unwrap();
        assert!(runtime.running().is_empty());
    }

    #[tokio::test]
    async fn tasks_go_through_the_runtime_s_states() {
        let runtime = FakeRuntime::new("n1");
        let svc = service("s", 1, |_| {});
        let task = assigned_task(&svc, 1, "n1");
        let id = &task.meta.id;
        assert!(matches!(
            runtime.start(id).await,
            Err(RuntimeError::NotFound(_))
        ));
        runtime.prepare(&task, &[]).await.unwrap();
        assert_eq!(
            runtime.inspect(id).await.unwrap().state,
            RuntimeState::Created
        );
        runtime.start(id).await.unwrap();
        runtime.log(id, LogSource::Stdout, "hello");
        assert_eq!(
            runtime.inspect(id).await.unwrap().state,
            RuntimeState::Running
        );
        runtime.stop(id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(runtime.wait(id).await.unwrap().signal, Some(15));
        assert!(runtime.start(id).await.is_err(), "a task runs once");
        let lines: Vec<String> = runtime
            .logs(id, LogOptions::default())
            .await
            .unwrap()
            .map(|l| l.line)
            .collect()
            .await;
        assert_eq!(lines, ["hello"]);
        assert_eq!(runtime.list().await.unwrap(), std::slice::from_ref(id));
        runtime.remove(id).await.unwrap();
        assert!(runtime.list().await.unwrap().is_empty());
        assert_eq!(runtime.info().await.unwrap().description.hostname, "n1");
    }
}
