//! The stock `docker` CLI against the API on a unix socket, with fixed
//! backends: a daemon in no swarm, and a manager of an active one. Raw
//! requests check what the CLI does not show (version bounds, errors).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use swarm_engine::wire::{ClusterInfo, Host, LocalNodeState, Peer, SwarmInfo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

struct Fixed(SwarmInfo);

#[async_trait::async_trait]
impl swarm_engine::Backend for Fixed {
    async fn swarm(&self) -> SwarmInfo {
        self.0.clone()
    }
    fn host(&self) -> Host {
        Host {
            name: "h1".into(),
            ncpu: 2,
            mem_total: 1 << 30,
            kernel_version: "6.1.0".into(),
            operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "x86_64".into(),
        }
    }
}

/// The `docker` CLI, if the machine has one.
fn docker_cli() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("docker"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("SWARM_REQUIRE_DOCKER").is_none(),
            "SWARM_REQUIRE_DOCKER is set but no docker CLI is on PATH"
        );
        eprintln!("SKIPPED: no docker CLI on PATH");
    }
    found
}

/// Serves `swarm` on a socket in `dir`; its path.
fn serve(dir: &Path, swarm: SwarmInfo, stop: &CancellationToken) -> PathBuf {
    let path = dir.join("engine.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(swarm_engine::serve(
        listener,
        Arc::new(Fixed(swarm)),
        stop.clone(),
    ));
    path
}

/// `docker -H unix://SOCK ARGS`: (exit success, stdout, stderr).
async fn docker(cli: &Path, sock: &Path, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::from(Command::new(cli))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A raw `GET path` on the socket: the whole answer, headers included.
async fn raw_get(sock: &Path, path: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: swarm\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn docker_version_and_info_work_on_a_daemon_in_no_swarm() {
    let Some(cli) = docker_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let sock = serve(dir.path(), SwarmInfo::default(), &stop);
    let config = dir.path().join("config");

    let (ok, out, err) = docker(
        &cli,
        &sock,
        &config,
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Os}}/{{.Server.Arch}}",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "1.49 linux/amd64");

    let (ok, out, err) = docker(&cli, &sock, &config, &["info"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains(" Swarm: inactive"), "{out}");
    assert!(
        out.contains(" Name: h1") && out.contains(" CPUs: 2"),
        "{out}"
    );
    assert!(
        !out.contains("ERROR") && !err.contains("ERROR"),
        "{out}{err}"
    );
    stop.cancel();
}

#[tokio::test]
async fn docker_info_shows_an_active_manager_s_swarm() {
    let Some(cli) = docker_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let swarm = SwarmInfo {
        node_id: "n1abc".into(),
        node_addr: "127.0.0.1".into(),
        local_node_state: LocalNodeState::Active,
        control_available: true,
        remote_managers: Some(vec![Peer {
            node_id: "n1abc".into(),
            addr: "127.0.0.1:2377".into(),
        }]),
        nodes: 3,
        managers: 1,
        cluster: Some(ClusterInfo {
            id: "c1xyz".into(),
            default_addr_pool: vec!["10.0.0.0/8".into()],
            subnet_size: 24,
            data_path_port: 4789,
            ..ClusterInfo::default()
        }),
        ..SwarmInfo::default()
    };
    let sock = serve(dir.path(), swarm, &stop);
    let config = dir.path().join("config");
    let (ok, out, err) = docker(&cli, &sock, &config, &["info"]).await;
    assert!(ok, "{out}{err}");
    for want in [
        " Swarm: active",
        "  NodeID: n1abc",
        "  Is Manager: true",
        "  ClusterID: c1xyz",
        "  Managers: 1",
        "  Nodes: 3",
        "  Data Path Port: 4789",
        "   127.0.0.1:2377",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    let (ok, out, _) = docker(
        &cli,
        &sock,
        &config,
        &[
            "info",
            "--format",
            "{{.Swarm.ControlAvailable}} {{.Swarm.Cluster.ID}}",
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(out.trim(), "true c1xyz");
    stop.cancel();
}

#[tokio::test]
async fn versions_out_of_range_and_unknown_paths_get_docker_s_errors() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let sock = serve(dir.path(), SwarmInfo::default(), &stop);

    let ping = raw_get(&sock, "/_ping").await;
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    assert!(
        ping.contains("api-version: 1.49") && ping.contains("swarm: inactive"),
        "{ping}"
    );
    assert!(ping.ends_with("OK"), "{ping}");

    let old = raw_get(&sock, "/v1.24/info").await;
    assert!(old.starts_with("HTTP/1.1 400"), "{old}");
    assert!(old.contains("content-type: application/json\r\n"), "{old}");
    assert!(
        old.contains(r#"{"message":"client version 1.24 is too old. Minimum supported API version is 1.41, please upgrade your client to a newer version"}"#),
        "{old}"
    );
    let new = raw_get(&sock, "/v1.99/info").await;
    assert!(
        new.contains("client version 1.99 is too new. Maximum supported API version is 1.49"),
        "{new}"
    );
    let unknown = raw_get(&sock, "/v1.49/nothing/here").await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    assert!(
        unknown.contains(r#"{"message":"page not found"}"#),
        "{unknown}"
    );
    let info = raw_get(&sock, "/v1.41/info?x=1").await;
    assert!(
        info.starts_with("HTTP/1.1 200") && info.contains(r#""LocalNodeState":"inactive""#),
        "{info}"
    );
    stop.cancel();
}

/// A manager whose images have registry digests (as a Docker runtime's
/// engine knows them for pulled images).
struct Pinning(swarm_core::control::Control<Arc<dyn swarm_core::store::Store>>);

const DIGEST: &str = "sha256:4f0e2bd2bb6b9a2e1e4b2f3c5a7d9e1f3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e";

#[async_trait::async_trait]
impl swarm_engine::Backend for Pinning {
    async fn swarm(&self) -> SwarmInfo {
        SwarmInfo {
            local_node_state: LocalNodeState::Active,
            control_available: true,
            ..SwarmInfo::default()
        }
    }
    fn host(&self) -> Host {
        Host::default()
    }
    async fn control(
        &self,
    ) -> Result<
        swarm_core::control::Control<Arc<dyn swarm_core::store::Store>>,
        swarm_engine::ApiError,
    > {
        Ok(self.0.clone())
    }
    async fn distribution(
        &self,
        image: &str,
    ) -> Result<swarm_engine::wire::DistributionInspect, swarm_engine::ApiError> {
        use swarm_engine::wire::{Descriptor, DistributionInspect, OciPlatform};
        if !image.starts_with("nginx") {
            return Err(swarm_engine::error::no_digest(image));
        }
        Ok(DistributionInspect {
            descriptor: Descriptor {
                media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                digest: DIGEST.into(),
                size: 1234,
            },
            platforms: vec![OciPlatform {
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: String::new(),
            }],
        })
    }
}

#[tokio::test]
async fn service_create_pins_the_image_to_the_digest_distribution_answers() {
    let Some(cli) = docker_cli() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let sock = dir.path().join("engine.sock");
    let store: Arc<dyn swarm_core::store::Store> = Arc::new(swarm_core::store::MemoryStore::new());
    tokio::spawn(swarm_engine::serve(
        tokio::net::UnixListener::bind(&sock).unwrap(),
        Arc::new(Pinning(swarm_core::control::Control::new(store))),
        stop.clone(),
    ));
    let config = dir.path().join("config");
    let (ok, out, err) = docker(
        &cli,
        &sock,
        &config,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "web",
            "nginx:1.27",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        !err.contains("could not be accessed on a registry"),
        "{err}"
    );
    let (ok, out, err) = docker(
        &cli,
        &sock,
        &config,
        &[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{json .Spec.TaskTemplate.Placement.Platforms}}",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!(r#"nginx:1.27@{DIGEST} [{{"Architecture":"amd64","OS":"linux"}}]"#)
    );
    // An image without a digest: the CLI warns and keeps the name.
    let (ok, _, err) = docker(
        &cli,
        &sock,
        &config,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "local",
            "swarm-test/tools:1",
        ],
    )
    .await;
    assert!(
        ok && err.contains("could not be accessed on a registry to record"),
        "{err}"
    );
}
