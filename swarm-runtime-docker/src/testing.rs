//! Helpers for tests against a real engine (feature `testing`): reaching
//! the engine, and an image that runs without any registry.
//!
//! [`test_image`] builds `swarm-test/tools:<digest>` the first time, as
//! `docker import` of a root filesystem made of what the machine already
//! has: its shell and a few coreutils (`sleep`, `cat`, `touch`, ...), the
//! crate's own test server `swarm-testd` (an HTTP server; see
//! `src/bin/swarm-testd.rs`), the libraries `ldd` names for them,
//! `/etc/passwd` and `/etc/group`. No package needs installing and no
//! registry is asked.

use std::path::PathBuf;

use bollard::Docker;

/// The repository of the image [`test_image`] builds; its tag is a digest
/// of its files, so a changed `swarm-testd` makes a new image.
pub const TEST_IMAGE_REPO: &str = "swarm-test/tools";

/// The machine's programs the test image holds, at `/bin/NAME`: what the
/// tests' shell scripts call.
pub const TEST_IMAGE_PROGRAMS: &[&str] = &[
    "sh", "sleep", "cat", "touch", "hostname", "echo", "true", "false", "test", "env", "id", "ls",
    "mkdir", "rm", "chmod", "grep",
];

/// Set to the path of `swarm-testd` when it is not beside the test
/// program (as `cargo test` leaves it, in `target/<profile>/`).
pub const TESTD_ENV: &str = "SWARM_TESTD";

/// Set to make [`engine`] fail rather than skip when no engine answers
/// (CI sets it where an engine runs).
pub const REQUIRE_ENV: &str = "SWARM_REQUIRE_DOCKER";

/// The local engine, or `None` (after saying `SKIPPED` on stderr) when
/// none answers. Panics instead when `SWARM_REQUIRE_DOCKER` is set.
pub async fn engine(test: &str) -> Option<Docker> {
    let reached = match Docker::connect_with_defaults() {
        Ok(d) => d.ping().await.map(|_| d).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match reached {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os(REQUIRE_ENV).is_some() => {
            panic!("{test}: {REQUIRE_ENV} is set but no Docker engine answers: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: no Docker engine answers ({e})");
            None
        }
    }
}

/// Removes every container of `node` (`docker rm -f`, by the
/// `swarm.node.id` label) when dropped: what a test or bench left behind,
/// however it ended.
pub struct NodeContainers(pub String);

impl Drop for NodeContainers {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker ps -aq --filter label={}={} | xargs -r docker rm -f >/dev/null 2>&1",
                crate::LABEL_NODE_ID,
                self.0
            ))
            .status();
    }
}

/// The body of an HTTP/1.1 reply, if its status is 200 OK.
#[must_use]
pub fn ok_body(reply: &str) -> Option<String> {
    reply.starts_with("HTTP/1.1 200 OK").then(|| {
        reply
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

/// Makes sure the engine has the test image, building it if needed, and
/// returns its name; panics with what to do when it cannot.
pub async fn test_image(docker: &Docker) -> &'static str {
    // The tests of one binary build it once.
    static BUILT: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    BUILT.get_or_init(|| build(docker)).await.as_str()
}

/// The `swarm-testd` program: `$SWARM_TESTD` (made absolute), else beside the running test
/// (`target/debug/deps/t-…` has it in `target/debug/`).
pub fn testd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(TESTD_ENV) {
        // Absolute, so that a task started in a directory of its own
        // finds it too.
        let p = PathBuf::from(p);
        return Ok(std::path::absolute(&p).unwrap_or(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell the test's path: {e}"))?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("swarm-testd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "cannot find the swarm-testd program near {}: build it with `cargo build -p \
                 swarm-runtime-docker --features testing --bin swarm-testd` (`cargo test \
                 --workspace` does), or set {TESTD_ENV} to its path",
                exe.display()
            )
        })
}

async fn build(docker: &Docker) -> String {
    let rootfs = tokio::task::spawn_blocking(|| {
        let mut programs = vec![("swarm-testd".to_owned(), testd()?)];
        for name in TEST_IMAGE_PROGRAMS {
            programs.push(((*name).to_owned(), crate::image::find(name)?));
        }
        crate::image::rootfs(&programs)
    })
    .await
    .expect("building the test image's root filesystem panicked")
    .unwrap_or_else(|e| panic!("cannot build the test image: {e}"));
    crate::image::import(
        docker,
        TEST_IMAGE_REPO,
        rootfs,
        &["CMD [\"/bin/sh\"]", "ENV PATH=/bin"],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

pub use crate::image::libraries;
