//! Images made without a registry: `docker import` of a root filesystem
//! built from programs this machine has, with the libraries `ldd` names
//! for them. The sandbox image is made so ([`sandbox_image`]), and so is
//! the test image of the `testing` feature.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;

/// The repository of the image that holds tasks' network namespaces
/// when no other is configured; its tag is a digest of its files.
pub const SANDBOX_IMAGE_REPO: &str = "swarm/sandbox";

/// Where the machine keeps `program`.
pub(crate) fn find(program: &str) -> Result<PathBuf, String> {
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

/// A tarball of a root filesystem: each `(name, path)` program at
/// `/bin/NAME`, their libraries at the paths `ldd` names, `/etc/passwd`
/// and `/etc/group` with root and nobody, and empty `/tmp`, `/root` and
/// `/run`.
pub(crate) fn rootfs(programs: &[(String, PathBuf)]) -> Result<Vec<u8>, String> {
    let mut libs = BTreeSet::new();
    for (_, path) in programs {
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
    for (name, path) in programs {
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

/// A short, stable digest of an image's tarball (FNV-1a, 64 bits).
pub(crate) fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Makes `repo:<digest of rootfs>` from `rootfs` with the Dockerfile
/// `changes` (`CMD [...]`, `ENV ...`), unless the engine has it, and
/// returns its name.
pub(crate) async fn import(
    docker: &Docker,
    repo: &str,
    rootfs: Vec<u8>,
    changes: &[&str],
) -> Result<String, String> {
    let tag = digest(&rootfs);
    let name = format!("{repo}:{tag}");
    if docker.inspect_image(&name).await.is_ok() {
        return Ok(name);
    }
    let mut import = docker.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag),
            changes: changes.iter().map(|c| (*c).to_owned()).collect(),
            ..CreateImageOptions::default()
        }),
        Some(bollard::body_full(rootfs.into())),
        None,
    );
    while let Some(step) = import.next().await {
        match step {
            Ok(info) => {
                if let Some(m) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("docker import of {name} failed: {m}"));
                }
            }
            Err(e) => return Err(format!("docker import of {name} failed: {e}")),
        }
    }
    Ok(name)
}

/// The default sandbox image, `swarm/sandbox:<digest>`: this machine's
/// `sleep` (run as `sleep infinity`) and its libraries, made on first
/// use. It only has to keep a process alive in the namespace.
pub(crate) async fn sandbox_image(docker: &Docker) -> Result<String, String> {
    let rootfs = tokio::task::spawn_blocking(|| rootfs(&[("sleep".to_owned(), find("sleep")?)]))
        .await
        .map_err(|e| format!("building the sandbox image panicked: {e}"))??;
    import(
        docker,
        SANDBOX_IMAGE_REPO,
        rootfs,
        &["CMD [\"/bin/sleep\", \"infinity\"]", "ENV PATH=/bin"],
    )
    .await
}
