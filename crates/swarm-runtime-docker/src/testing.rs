//! Helpers for tests against a real engine (feature `testing`): reaching
//! the engine, and an image that runs without any registry.
//!
//! [`test_image`] builds `swarm-test/busybox:1` the first time, as
//! `docker import` of a root filesystem holding a static busybox (Debian's
//! `busybox-static`, or the binary `SWARM_BUSYBOX` names), its applets,
//! `/etc/passwd` and `/etc/group`.

use std::path::PathBuf;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;

/// The image [`test_image`] builds.
pub const TEST_IMAGE: &str = "swarm-test/busybox:1";

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

/// Makes sure the engine has [`TEST_IMAGE`], building it if needed; panics
/// with what to install when it cannot.
pub async fn test_image(docker: &Docker) -> &'static str {
    // The tests of one binary build it once.
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT.get_or_init(|| build(docker)).await;
    TEST_IMAGE
}

async fn build(docker: &Docker) {
    if docker.inspect_image(TEST_IMAGE).await.is_ok() {
        return;
    }
    let busybox = std::env::var_os("SWARM_BUSYBOX")
        .map_or_else(|| PathBuf::from("/bin/busybox"), PathBuf::from);
    let rootfs = tokio::task::spawn_blocking(move || rootfs(&busybox))
        .await
        .expect("building the test image's root filesystem panicked")
        .unwrap_or_else(|e| panic!("cannot build {TEST_IMAGE}: {e}"));
    let (repo, tag) = TEST_IMAGE
        .split_once(':')
        .expect("the test image has a tag");
    let mut import = docker.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
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
                    panic!("docker import of {TEST_IMAGE} failed: {m}");
                }
            }
            Err(e) => panic!("docker import of {TEST_IMAGE} failed: {e}"),
        }
    }
}

/// Whether the ELF file `bytes` asks for a dynamic loader.
fn is_dynamic(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let phoff =
        usize::try_from(u64::from_le_bytes(bytes.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let (size, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let mut dynamic = false;
    for i in 0..count {
        let at = phoff + i * size;
        const PT_INTERP: u32 = 3;
        dynamic |= u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) == PT_INTERP;
    }
    Some(dynamic)
}

/// A tarball of the test image's root filesystem.
fn rootfs(busybox: &std::path::Path) -> Result<Vec<u8>, String> {
    let install = "install Debian's busybox-static (apt-get install busybox-static), or set SWARM_BUSYBOX to a static busybox";
    let binary = std::fs::read(busybox)
        .map_err(|e| format!("cannot read {}: {e}: {install}", busybox.display()))?;
    match is_dynamic(&binary) {
        Some(false) => {}
        Some(true) => {
            return Err(format!(
                "{} is linked dynamically and would not run in an empty image: {install}",
                busybox.display()
            ));
        }
        None => {
            return Err(format!(
                "{} is not a 64-bit ELF program: {install}",
                busybox.display()
            ));
        }
    }
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("cannot run {} --list: {e}", busybox.display()))?;
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();
    let io = |e: std::io::Error| format!("cannot write the image tarball: {e}");
    let mut tar = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("run", 0o755),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
    }
    let files: [(&str, u32, &[u8]); 3] = [
        ("bin/busybox", 0o755, &binary),
        (
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n"),
    ];
    for (path, mode, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data).map_err(io)?;
    }
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(io)?;
    }
    tar.into_inner().map_err(io)
}
