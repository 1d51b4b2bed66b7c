//! `/_ping`, `/version` and `/info`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Backend;
use crate::error::ok;
use crate::version::ApiVersion;
use crate::wire::{Component, Product, VersionInfo};

/// `GET|HEAD /_ping`: `OK`, with the `Swarm` header (which decides whether
/// the CLI shows its swarm commands) and no caching.
pub async fn ping(State(backend): State<Arc<dyn Backend>>, method: Method) -> Response {
    let swarm = backend.swarm().await;
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert("Pragma", HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&swarm.ping_state()) {
        headers.insert("Swarm", v);
    }
    response
}

/// `GET /version`.
pub async fn version(State(backend): State<Arc<dyn Backend>>) -> impl IntoResponse {
    let host = backend.host();
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let compiler = "rustc".to_owned();
    let details = [
        ("ApiVersion", ApiVersion::MAX.to_string()),
        ("MinAPIVersion", ApiVersion::MIN.to_string()),
        ("GitCommit", String::new()),
        ("GoVersion", compiler.clone()),
        ("Os", "linux".to_owned()),
        ("Arch", host.go_arch().to_owned()),
        ("KernelVersion", host.kernel_version.clone()),
        ("Experimental", "false".to_owned()),
        ("BuildTime", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    ok(VersionInfo {
        platform: Product {
            name: format!("swarm {version}"),
        },
        components: vec![Component {
            name: "Engine".into(),
            version: version.clone(),
            details,
        }],
        version,
        api_version: ApiVersion::MAX.to_string(),
        min_api_version: ApiVersion::MIN.to_string(),
        git_commit: String::new(),
        go_version: compiler,
        os: "linux".into(),
        arch: host.go_arch().to_owned(),
        kernel_version: host.kernel_version,
    })
}

/// `GET /info`: the machine, and the `Swarm` section. Containers and images
/// belong to a container engine, which this daemon is not: they are 0, and
/// the lists the CLI reads are empty (never missing, as it decodes every
/// field into Go types).
pub async fn info(State(backend): State<Arc<dyn Backend>>) -> impl IntoResponse {
    let host = backend.host();
    let mut swarm = backend.swarm().await;
    // `docker info`'s Manager Addresses; read here, not in `swarm()`,
    // which every `/_ping` calls.
    if swarm.remote_managers.is_none() {
        let managers = backend.managers().await;
        if !managers.is_empty() {
            swarm.remote_managers = Some(
                managers
                    .into_iter()
                    .map(|(node_id, m)| crate::wire::Peer {
                        node_id,
                        addr: m.addr,
                    })
                    .collect(),
            );
        }
    }
    let now = crate::time::rfc3339(std::time::SystemTime::now());
    ok(json!({
        "ID": swarm.node_id,
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": "",
        "DriverStatus": [],
        "Plugins": {"Volume": [], "Network": ["overlay"], "Authorization": null, "Log": []},
        "MemoryLimit": false,
        "SwapLimit": false,
        "CpuCfsPeriod": false,
        "CpuCfsQuota": false,
        "CPUShares": false,
        "CPUSet": false,
        "PidsLimit": false,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": now,
        "LoggingDriver": "",
        "CgroupDriver": "",
        "NEventsListener": 0,
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": host.architecture,
        "IndexServerAddress": "",
        "RegistryConfig": null,
        "NCPU": host.ncpu,
        "MemTotal": host.mem_total,
        "GenericResources": null,
        "DockerRootDir": "",
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": host.name,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {},
        "DefaultRuntime": "",
        "Swarm": swarm,
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": [],
        "CDISpecDirs": [],
        "Warnings": null,
    }))
}
