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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;

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

/// The `swarm-testd` program: `$SWARM_TESTD`, else beside the running test
/// (`target/debug/deps/t-…` has it in `target/debug/`).
pub fn testd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(TESTD_ENV) {
        return Ok(PathBuf::from(p));
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
    let rootfs = tokio::task::spawn_blocking(|| testd().and_then(|t| rootfs(&t)))
        .await
        .expect("building the test image's root filesystem panicked")
        .unwrap_or_else(|e| panic!("cannot build the test image: {e}"));
    let tag = digest(&rootfs);
    let name = format!("{TEST_IMAGE_REPO}:{tag}");
    if docker.inspect_image(&name).await.is_ok() {
        return name;
    }
    let mut import = docker.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(TEST_IMAGE_REPO.into()),
            tag: Some(tag),
            changes: vec!["CMD [\"/bin/sh\"]".into(), "ENV PATH=/bin".into()],
            ..CreateImageOptions::default()
        }),
        Some(bollard::body_full(rootfs.into())),
        None,
    );
    while let Some(step) = import.next().await {
        match step {
            Ok(info) => {
                if let Some(m) = info.error_detail.and_then(|d| d.message) {
                    panic!("docker import of {name} failed: {m}");
                }
            }
            Err(e) => panic!("docker import of {name} failed: {e}"),
        }
    }
    name
}

/// A short, stable digest of the image's tarball (FNV-1a, 64 bits).
fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Where the machine keeps `program`.
fn find(program: &str) -> Result<PathBuf, String> {
    ["/bin", "/usr/bin", "/sbin", "/usr/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("this machine has no {program} in /bin or /usr/bin"))
}

/// The shared libraries `ldd` names for `program` (none for a static
/// one): what an image needs beside it.
pub fn libraries(program: &Path) -> Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| format!("cannot run ldd {}: {e}", program.display()))?;
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
    // "/lib64/ld-linux-x86-64.so.2 (0x…)"; a static program has none.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            line.split("=>")
                .last()
                .and_then(|s| s.split_whitespace().next())
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect())
}

/// A tarball of the test image's root filesystem: the programs at
/// `/bin/NAME`, `swarm-testd` beside them, and their libraries at the
/// paths `ldd` names.
fn rootfs(testd: &Path) -> Result<Vec<u8>, String> {
    let mut programs = vec![("swarm-testd".to_owned(), testd.to_owned())];
    for name in TEST_IMAGE_PROGRAMS {
        programs.push(((*name).to_owned(), find(name)?));
    }
    let mut libs = BTreeSet::new();
    for (_, path) in &programs {
        libs.extend(libraries(path)?);
    }
    let io = |e: std::io::Error| format!("cannot write the image tarball: {e}");
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs: BTreeSet<PathBuf> = ["bin", "etc", "tmp", "root", "run"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for lib in &libs {
        let relative = lib.strip_prefix("/").unwrap_or(lib);
        dirs.extend(
            relative
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_owned),
        );
    }
    for dir in &dirs {
        let mode = match dir.to_str() {
            Some("tmp") => 0o1777,
            Some("root") => 0o700,
            _ => 0o755,
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
    }
    let mut files: Vec<(PathBuf, u32, Vec<u8>)> = Vec::new();
    for (name, path) in &programs {
        files.push((Path::new("bin").join(name), 0o755, read(path)?));
    }
    for lib in &libs {
        files.push((
            lib.strip_prefix("/").unwrap_or(lib).to_owned(),
            0o755,
            read(lib)?,
        ));
    }
    files.push((
        "etc/passwd".into(),
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            .to_vec(),
    ));
    files.push((
        "etc/group".into(),
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
    ));
    for (path, mode, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data.as_slice()).map_err(io)?;
    }
    tar.into_inner().map_err(io)
}
