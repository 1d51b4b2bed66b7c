//! The restart supervisor's decision: whether, and when, a finished task is
//! replaced in its slot.

use std::time::{Duration, SystemTime};

use crate::model::{RestartCondition, Task, TaskState};

/// What to do about a task that finished while wanted running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// Replace it now; the replacement carries this restart history.
    Now {
        /// Restart times within the policy's window, this one last.
        history: Vec<SystemTime>,
    },
    /// Replace it once this much more time has passed (the restart delay).
    After(Duration),
    /// Leave it: the policy says no (condition, or attempts used up).
    Never,
}

/// Decides whether `task` (finished, still desired running) restarts.
///
/// - condition `none` never restarts; `on-failure` restarts unless the task
///   completed (exit 0); `any` always restarts;
/// - a restart waits `delay` after the task's last status change;
/// - at most `max_attempts` restarts (0: unlimited) within `window` (zero:
///   ever). Restart times travel from task to replacement, so the count
///   survives manager restarts and history pruning.
#[must_use]
pub fn decide(task: &Task, now: SystemTime) -> Restart {
    let policy = &task.spec.restart;
    let wanted = match policy.condition {
        RestartCondition::None => false,
        RestartCondition::OnFailure => task.status.state != TaskState::Complete,
        RestartCondition::Any => true,
    };
    if !wanted {
        return Restart::Never;
    }
    let history: Vec<SystemTime> = task
        .restarts
        .iter()
        .copied()
        .filter(|t| {
            policy.window.is_zero()
                || now
                    .duration_since(*t)
                    .map_or(true, |age| age <= policy.window)
        })
        .collect();
    if policy.max_attempts > 0 && history.len() >= policy.max_attempts as usize {
        return Restart::Never;
    }
    let due = task.status.timestamp + policy.delay;
    if let Ok(wait) = due.duration_since(now)
        && !wait.is_zero()
    {
        return Restart::After(wait);
    }
    let mut history = history;
    history.push(now);
    Restart::Now { history }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Meta, RestartPolicy, Service, ServiceSpec};
    use std::sync::Arc;

    fn task(
        state: TaskState,
        policy: RestartPolicy,
        finished: SystemTime,
        restarts: Vec<SystemTime>,
    ) -> Task {
        let mut spec = ServiceSpec::replicated("web", 1, vec!["x".into()]);
        spec.task.restart = policy;
        let service = Service {
            meta: Meta::new("s".into()),
            spec,
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut t = Task::new(&service, 1, None, restarts);
        t.status.state = state;
        t.status.timestamp = finished;
        t.spec = Arc::new(service.spec.task.clone());
        t
    }

    fn policy(condition: RestartCondition, max_attempts: u32, window: u64) -> RestartPolicy {
        RestartPolicy {
            condition,
            delay: Duration::from_secs(5),
            max_attempts,
            window: Duration::from_secs(window),
        }
    }

    #[test]
    fn conditions() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let later = t0 + Duration::from_secs(10);
        let none = policy(RestartCondition::None, 0, 0);
        let on_failure = policy(RestartCondition::OnFailure, 0, 0);
        let any = policy(RestartCondition::Any, 0, 0);
        assert_eq!(
            decide(&task(TaskState::Failed, none, t0, vec![]), later),
            Restart::Never
        );
        assert_eq!(
            decide(&task(TaskState::Complete, on_failure, t0, vec![]), later),
            Restart::Never
        );
        assert!(matches!(
            decide(&task(TaskState::Failed, on_failure, t0, vec![]), later),
            Restart::Now { .. }
        ));
        assert!(matches!(
            decide(&task(TaskState::Rejected, on_failure, t0, vec![]), later),
            Restart::Now { .. }
        ));
        assert!(matches!(
            decide(&task(TaskState::Complete, any, t0, vec![]), later),
            Restart::Now { .. }
        ));
    }

    #[test]
    fn waits_for_the_delay() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let t = task(
            TaskState::Failed,
            policy(RestartCondition::Any, 0, 0),
            t0,
            vec![],
        );
        assert_eq!(
            decide(&t, t0 + Duration::from_secs(2)),
            Restart::After(Duration::from_secs(3))
        );
        assert_eq!(
            decide(&t, t0 + Duration::from_secs(5)),
            Restart::Now {
                history: vec![t0 + Duration::from_secs(5)]
            }
        );
    }

    #[test]
    fn counts_attempts_within_the_window() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let p = policy(RestartCondition::OnFailure, 2, 60);
        let two_recent = vec![t0 - Duration::from_secs(30), t0 - Duration::from_secs(20)];
        assert_eq!(
            decide(
                &task(TaskState::Failed, p, t0, two_recent),
                t0 + Duration::from_secs(10)
            ),
            Restart::Never
        );
        // One attempt fell out of the window: one more restart is allowed.
        let one_old = vec![t0 - Duration::from_secs(100), t0 - Duration::from_secs(20)];
        match decide(
            &task(TaskState::Failed, p, t0, one_old),
            t0 + Duration::from_secs(10),
        ) {
            Restart::Now { history } => assert_eq!(history.len(), 2, "the old attempt is dropped"),
            other => panic!("expected a restart, got {other:?}"),
        }
        // Without a window every attempt counts.
        let p = policy(RestartCondition::OnFailure, 2, 0);
        let old = vec![
            t0 - Duration::from_secs(10_000),
            t0 - Duration::from_secs(9_000),
        ];
        assert_eq!(
            decide(
                &task(TaskState::Failed, p, t0, old),
                t0 + Duration::from_secs(10)
            ),
            Restart::Never
        );
    }
}
