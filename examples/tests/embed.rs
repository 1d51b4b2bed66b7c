//! `swarm-embed`: an app embedding a real manager with its own scheduler
//! and control loop, with `swarmd` processes as workers.

use std::process::Command;

#[test]
fn an_embedded_manager_runs_the_app_s_scheduler_and_loop() {
    let out = Command::new(env!("CARGO_BIN_EXE_swarm-embed"))
        .args(["--workers", "2", "--swarmd", env!("CARGO_BIN_EXE_swarmd")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swarm-embed failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 workers joined"), "{stdout}");
    // The app's loop scaled the service to the workers, and the app's
    // filter kept the manager free.
    assert!(
        stdout.contains("web: 2 replicas (the app's loop)"),
        "{stdout}"
    );
    assert!(!stdout.contains("\"manager\""), "{stdout}");
    assert!(stdout.trim_end().ends_with("done"), "{stdout}");
}
