//! Health checks: a command run beside the task, every interval.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use swarm_core::model::HealthCheck;
use swarm_core::runtime::Health;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::launch::Launch;
use crate::process::Outcome;

/// The program and arguments of a health check's `test`, Docker's way:
/// `["CMD", prog, args...]` and `[prog, args...]` run the program,
/// `["CMD-SHELL", script...]` runs `/bin/sh -c "script..."`, and `["NONE"]`
/// or an empty test runs nothing.
pub(crate) fn check_command(test: &[String]) -> Option<(String, Vec<String>)> {
    let (first, rest) = test.split_first()?;
    match first.as_str() {
        "NONE" => None,
        "CMD-SHELL" => Some(("/bin/sh".to_owned(), vec!["-c".to_owned(), rest.join(" ")])),
        "CMD" => {
            let (program, args) = rest.split_first()?;
            Some((program.clone(), args.to_vec()))
        }
        _ => Some((first.clone(), rest.to_vec())),
    }
}

/// Runs `check` every interval, with the task's environment, directory and
/// user, until the task exits; reports each verdict through `report`.
///
/// The first check runs one interval after the start. A pass makes the
/// task healthy; `retries` failures in a row (at least one) make it
/// unhealthy; failures within `start_period` of the start do not count. A
/// check that outlives its timeout is killed, with its children, and
/// counts as failed.
pub(crate) async fn monitor(
    check: HealthCheck,
    launch: Arc<Launch>,
    mut exit: watch::Receiver<Outcome>,
    report: impl Fn(Health) + Send,
) {
    let Some((program, args)) = check_command(&check.test) else {
        return;
    };
    let started = Instant::now();
    let retries = check.retries.max(1);
    let mut failures = 0;
    loop {
        let passed = tokio::select! {
            _ = exit.wait_for(|o| *o != Outcome::Pending) => return,
            passed = async {
                tokio::time::sleep(check.interval_or_default()).await;
                run_once(&launch, &program, &args, check.timeout_or_default()).await
            } => passed,
        };
        if passed {
            failures = 0;
            report(Health::Healthy);
        } else if started.elapsed() >= check.start_period {
            failures += 1;
            if failures >= retries {
                report(Health::Unhealthy);
            }
        }
    }
}

/// Runs the check once: whether it exited 0 within `timeout`.
async fn run_once(launch: &Launch, program: &str, args: &[String], timeout: Duration) -> bool {
    let mut cmd = launch.command_of(program, args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::debug!(program, error = %e, "health check failed to start");
            return false;
        }
    };
    // Whatever the check leaves behind, or a check cut short when the task
    // exits, is killed with its process group.
    let _group = child
        .id()
        .map(|pid| KillGroupOnDrop(Pid::from_raw(pid as i32)));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(e)) => {
            tracing::debug!(program, error = %e, "failed to wait for a health check");
            false
        }
        Err(_) => false,
    }
}

/// Sends SIGKILL to a process group when dropped.
struct KillGroupOnDrop(Pid);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        // ESRCH: the group is gone already.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn test_forms_follow_docker() {
        assert_eq!(
            check_command(&strings(&["curl", "-f", "localhost"])),
            Some(("curl".into(), strings(&["-f", "localhost"])))
        );
        assert_eq!(
            check_command(&strings(&["CMD", "true"])),
            Some(("true".into(), Vec::new()))
        );
        assert_eq!(
            check_command(&strings(&["CMD-SHELL", "exit", "1"])),
            Some(("/bin/sh".into(), strings(&["-c", "exit 1"])))
        );
        assert_eq!(check_command(&strings(&["NONE"])), None);
        assert_eq!(check_command(&strings(&["CMD"])), None);
        assert_eq!(check_command(&[]), None);
    }
}
