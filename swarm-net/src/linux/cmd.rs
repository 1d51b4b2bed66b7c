//! Running `ip` and `nft`: the kernel's own tools, fed whole batches on
//! stdin so that one change is one process.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use swarm_core::network::NetworkError;

/// Runs `program args`, feeding `input` on stdin; fails with its stderr.
pub async fn run(program: &str, args: &[&str], input: &str) -> Result<String, NetworkError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            NetworkError::Unsupported(format!(
                "cannot run {program}: {e}; install iproute2 and nftables to give tasks networks"
            ))
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_owned();
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetworkError::Failed(format!("{program}: {e}")))?;
    let _ = feed.await;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetworkError::Failed(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `ip -batch -` with `lines`, in namespace `netns` if given, going
/// on past errors when `force` (for idempotent cleanups).
pub async fn ip_batch(
    netns: Option<&str>,
    lines: &[String],
    force: bool,
) -> Result<(), NetworkError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    if force {
        args.push("-force");
    }
    args.extend(["-batch", "-"]);
    let mut input = lines.join("\n");
    input.push('\n');
    run("ip", &args, &input).await.map(|_| ())
}

/// Loads `ruleset` with `nft -f -`, in namespace `netns` if given.
pub async fn nft(netns: Option<&str>, ruleset: &str) -> Result<(), NetworkError> {
    match netns {
        Some(ns) => run("ip", &["netns", "exec", ns, "nft", "-f", "-"], ruleset).await,
        None => run("nft", &["-f", "-"], ruleset).await,
    }
    .map(|_| ())
}

/// Runs `bridge -force -batch -` with `lines` (forwarding entries); an
/// entry that is already gone is no error.
pub async fn bridge_batch(lines: &[String]) -> Result<(), NetworkError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = lines.join("\n");
    input.push('\n');
    run("bridge", &["-force", "-batch", "-"], &input)
        .await
        .map(|_| ())
}
