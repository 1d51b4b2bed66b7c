//! How a task maps onto a container: its name, labels, configuration and
//! the archive of its secret and config files.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigIsolationEnum, HostConfigLogConfig,
    Mount as DockerMount, MountType, PortBinding, ResourcesUlimits,
};
use swarm_core::Id;
use swarm_core::model::{HealthCheck, Mount, MountKind, PortConfig, Protocol, PublishMode, Task};
use swarm_core::runtime::{FileKind, RuntimeError, TaskFile};

/// The label holding the task id; every container of the runtime has it.
pub const LABEL_TASK_ID: &str = "swarm.task.id";
/// The label holding the task's name (`web.3`).
pub const LABEL_TASK_NAME: &str = "swarm.task.name";
/// The label holding the service id.
pub const LABEL_SERVICE_ID: &str = "swarm.service.id";
/// The label holding the service name.
pub const LABEL_SERVICE_NAME: &str = "swarm.service.name";
/// The label holding the id of the node the task was given to.
pub const LABEL_NODE_ID: &str = "swarm.node.id";
/// The label listing the container's ingress ports, `published:target`
/// each, comma-separated (TCP).
pub const LABEL_INGRESS: &str = "swarm.ingress";

/// The label of a sandbox container (one that holds a task's network
/// namespace), holding its task's id.
pub const LABEL_SANDBOX: &str = "swarm.sandbox";

/// The label prefix the runtime keeps for itself.
pub const RESERVED_PREFIX: &str = swarm_core::model::RESERVED_LABEL_PREFIX;

/// Where secrets appear inside a container.
pub const SECRETS_DIR: &str = "/run/secrets";

/// The container's name, as docker swarm spells it: `service.slot.taskid`.
pub(crate) fn container_name(task: &Task) -> String {
    format!("{}.{}", task.name(), task.meta.id)
}

/// The name of the container holding the task's network namespace.
pub(crate) fn sandbox_name(task: &Task) -> String {
    format!("{}.sandbox", container_name(task))
}

/// The container holding `task`'s network namespace: `image`, run with
/// its own command, on no network until the node's driver gives the
/// namespace its interfaces, with the task's hostname (a container that
/// joins another's network takes its hostname).
pub(crate) fn sandbox_body(task: &Task, node: Option<&Id>, image: &str) -> ContainerCreateBody {
    let mut labels = HashMap::from([
        (LABEL_SANDBOX.to_owned(), task.meta.id.to_string()),
        (LABEL_TASK_NAME.to_owned(), task.name()),
    ]);
    if let Some(node) = node.or(task.node_id.as_ref()) {
        labels.insert(LABEL_NODE_ID.into(), node.to_string());
    }
    ContainerCreateBody {
        image: Some(image.to_owned()),
        hostname: task.spec.hostname.clone(),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            // The task's container shares the holder's /etc/hosts.
            extra_hosts: extra_hosts(&task.spec.hosts).ok().flatten(),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// Makes `body` (a task's container) join the network namespace of
/// container `holder`, with `resolv_conf` as its `/etc/resolv.conf`. Its
/// ports are the node's driver's to publish, so the engine binds none
/// (and refuses them with a joined network), and the hostname is the
/// holder's.
pub(crate) fn join_sandbox(
    body: &mut ContainerCreateBody,
    holder: &str,
    resolv_conf: Option<&std::path::Path>,
) {
    body.hostname = None;
    body.exposed_ports = None;
    if let Some(host) = &mut body.host_config {
        // The holder's: a joined container may set none of them.
        host.extra_hosts = None;
        host.dns = None;
        host.dns_search = None;
        host.dns_options = None;
    }
    if let Some(labels) = &mut body.labels {
        labels.remove(LABEL_INGRESS);
    }
    let host = body.host_config.get_or_insert_with(HostConfig::default);
    host.port_bindings = None;
    host.network_mode = Some(format!("container:{holder}"));
    let mounted = |m: &DockerMount| m.target.as_deref() == Some("/etc/resolv.conf");
    let own = host
        .mounts
        .as_ref()
        .is_some_and(|ms| ms.iter().any(mounted));
    if let Some(path) = resolv_conf.filter(|_| !own) {
        host.mounts.get_or_insert_with(Vec::new).push(DockerMount {
            target: Some("/etc/resolv.conf".into()),
            source: Some(path.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..DockerMount::default()
        });
    }
}

/// A `label` filter for `docker ps`: containers with `label`, of `node`
/// when given, and matching `extra`.
pub(crate) fn scope_filter(
    label: &str,
    node: Option<&Id>,
    extra: Option<String>,
) -> HashMap<String, Vec<String>> {
    let mut labels = vec![label.to_owned()];
    if let Some(node) = node {
        labels.push(format!("{LABEL_NODE_ID}={node}"));
    }
    labels.extend(extra);
    HashMap::from([("label".to_owned(), labels)])
}

/// The labels of the task's container: the spec's, then ours (which win).
/// The node is the runtime's own when it has one (so that it lists what
/// it made), else the task's.
pub(crate) fn labels(task: &Task, node: Option<&Id>) -> HashMap<String, String> {
    // `swarm.*` is ours: the control API refuses such labels, and a task
    // made before that rule cannot claim ports or a node through them.
    let mut labels: HashMap<String, String> = task
        .spec
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_TASK_ID.into(), task.meta.id.to_string());
    labels.insert(LABEL_TASK_NAME.into(), task.name());
    labels.insert(LABEL_SERVICE_ID.into(), task.service_id.to_string());
    labels.insert(LABEL_SERVICE_NAME.into(), task.service_name.to_string());
    if let Some(node) = node.or(task.node_id.as_ref()) {
        labels.insert(LABEL_NODE_ID.into(), node.to_string());
    }
    let ingress: Vec<String> = ingress_ports(task)
        .map(|p| format!("{}:{}", p.published_port, p.target_port))
        .collect();
    if !ingress.is_empty() {
        labels.insert(LABEL_INGRESS.into(), ingress.join(","));
    }
    labels
}

/// The task's ports published through the routing mesh on a chosen port.
pub(crate) fn ingress_ports(task: &Task) -> impl Iterator<Item = &PortConfig> {
    task.endpoint
        .ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
}

/// Parses [`LABEL_INGRESS`]: `(published, target)` pairs.
pub(crate) fn parse_ingress(label: &str) -> Vec<(u16, u16)> {
    label
        .split(',')
        .filter_map(|pair| {
            let (p, t) = pair.split_once(':')?;
            Some((p.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

fn port_key(p: &PortConfig) -> String {
    format!("{}/{}", p.target_port, p.protocol)
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Docker's health check: `CMD`, `CMD-SHELL` and `NONE` forms pass as
/// they are; a bare command is `CMD`.
fn health_config(h: &HealthCheck) -> HealthConfig {
    let test = match h.test.first().map(String::as_str) {
        Some("CMD" | "NONE") => h.test.clone(),
        Some("CMD-SHELL") => vec!["CMD-SHELL".into(), h.test[1..].join(" ")],
        _ => std::iter::once("CMD".to_owned())
            .chain(h.test.iter().cloned())
            .collect(),
    };
    HealthConfig {
        test: Some(test),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(nanos(h.start_period)),
        start_interval: None,
    }
}

fn mount(m: &Mount) -> DockerMount {
    DockerMount {
        target: Some(m.target.clone()),
        source: m.source.clone(),
        typ: Some(match m.kind {
            MountKind::Bind => MountType::BIND,
            MountKind::Volume => MountType::VOLUME,
            MountKind::Tmpfs => MountType::TMPFS,
        }),
        read_only: Some(m.read_only),
        ..DockerMount::default()
    }
}

/// The environment: the spec's, then what every task is told.
fn env(task: &Task) -> Vec<String> {
    let mut env = task.spec.env.clone();
    env.extend([
        format!("SWARM_TASK_ID={}", task.meta.id),
        format!("SWARM_TASK_NAME={}", task.name()),
        format!("SWARM_TASK_SLOT={}", task.slot),
        format!("SWARM_SERVICE_ID={}", task.service_id),
        format!("SWARM_SERVICE_NAME={}", task.service_name),
        format!("SWARM_SECRETS_DIR={SECRETS_DIR}"),
        // A config's relative target is relative to the root, as in docker.
        "SWARM_CONFIGS_DIR=/".to_owned(),
    ]);
    if let Some(node) = &task.node_id {
        env.push(format!("SWARM_NODE_ID={node}"));
    }
    env.extend(swarm_core::model::generic_env(
        &task.assigned_generic_resources,
    ));
    env
}

/// Docker's API's `/etc/hosts` lines (`IP NAME [ALIAS...]`) as the
/// engine's `NAME:IP` entries.
fn extra_hosts(hosts: &[String]) -> Result<Option<Vec<String>>, RuntimeError> {
    let mut out = Vec::new();
    for line in hosts {
        let mut words = line.split_whitespace();
        let (Some(ip), Some(first)) = (words.next(), words.next()) else {
            return Err(RuntimeError::InvalidSpec(format!(
                "invalid hosts entry {line:?}: expected \"IP NAME [ALIAS...]\", e.g. \"10.0.0.5 db\""
            )));
        };
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(RuntimeError::InvalidSpec(format!(
                "invalid hosts entry {line:?}: {ip:?} is not an IP address"
            )));
        }
        for name in std::iter::once(first).chain(words) {
            out.push(format!("{name}:{ip}"));
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The container for `task`, made by the runtime of `node`.
pub(crate) fn create_body(
    task: &Task,
    node: Option<&Id>,
) -> Result<ContainerCreateBody, RuntimeError> {
    let spec = &task.spec;
    if let Some(p) = task
        .endpoint
        .ports
        .iter()
        .find(|p| p.publish_mode == PublishMode::Ingress && p.protocol == Protocol::Udp)
    {
        return Err(RuntimeError::InvalidSpec(format!(
            "UDP port {} cannot be published through the routing mesh yet: publish it with mode=host",
            p.target_port
        )));
    }
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &task.endpoint.ports {
        exposed.push(port_key(p));
        if p.publish_mode == PublishMode::Host {
            // Published 0: the engine picks a free port.
            let host_port = (p.published_port != 0).then(|| p.published_port.to_string());
            bindings
                .entry(port_key(p))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: None,
                    host_port: Some(host_port.unwrap_or_default()),
                });
        }
    }
    let limits = spec.resources.limits;
    let reservations = spec.resources.reservations;
    let positive = |v: u64| (v > 0).then(|| i64::try_from(v).unwrap_or(i64::MAX));
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let dns = spec.dns.clone().unwrap_or_default();
    let host_config = HostConfig {
        nano_cpus: positive(limits.nano_cpus),
        memory: positive(limits.memory_bytes),
        memory_reservation: positive(reservations.memory_bytes),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: (!spec.mounts.is_empty()).then(|| spec.mounts.iter().map(mount).collect()),
        init: spec.init,
        readonly_rootfs: spec.read_only.then_some(true),
        group_add: some(&spec.groups),
        cap_add: some(&spec.cap_add),
        cap_drop: some(&spec.cap_drop),
        sysctls: (!spec.sysctls.is_empty()).then(|| {
            spec.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        extra_hosts: extra_hosts(&spec.hosts)?,
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        oom_score_adj: (spec.oom_score_adj != 0).then_some(spec.oom_score_adj),
        pids_limit: positive(spec.pids_limit),
        security_opt: spec
            .privileges
            .as_ref()
            .map(swarm_core::model::Privileges::security_opts)
            .filter(|o| !o.is_empty()),
        // A Linux engine refuses `process` and `hyperv`, and the task
        // fails with its reason.
        isolation: spec.isolation.as_deref().map(|i| match i {
            "process" => HostConfigIsolationEnum::PROCESS,
            "hyperv" => HostConfigIsolationEnum::HYPERV,
            _ => HostConfigIsolationEnum::DEFAULT,
        }),
        dns: some(&dns.nameservers),
        dns_search: some(&dns.search),
        dns_options: some(&dns.options),
        log_config: spec.log_driver.as_ref().map(|l| HostConfigLogConfig {
            typ: Some(l.name.clone()),
            config: (!l.options.is_empty()).then(|| {
                l.options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
        }),
        ..HostConfig::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(env(task)),
        user: spec.user.clone(),
        working_dir: spec.workdir.clone(),
        hostname: spec.hostname.clone(),
        labels: Some(labels(task, node)),
        healthcheck: spec.healthcheck.as_ref().map(health_config),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        // So that a `docker stop` by hand honours the grace period too.
        stop_timeout: Some(i64::try_from(spec.stop_grace_period.as_secs()).unwrap_or(i64::MAX)),
        stop_signal: spec.stop_signal.clone(),
        tty: spec.tty.then_some(true),
        open_stdin: spec.open_stdin.then_some(true),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    })
}

/// Where a secret or config file goes inside the container, relative to
/// the root.
fn file_path(file: &TaskFile) -> String {
    let path = match file.kind {
        FileKind::Secret if file.target.starts_with('/') => file.target.clone(),
        FileKind::Secret => format!("{SECRETS_DIR}/{}", file.target),
        FileKind::Config if file.target.starts_with('/') => file.target.clone(),
        FileKind::Config => format!("/{}", file.target),
    };
    path.trim_start_matches('/').to_owned()
}

/// Binds each of the task's files, written under `dir` (by
/// [`write_files`]), read-only at its place in the container.
pub(crate) fn bind_files(body: &mut ContainerCreateBody, dir: &Path, files: &[TaskFile]) {
    let host = body.host_config.get_or_insert_with(HostConfig::default);
    let mounts = host.mounts.get_or_insert_with(Vec::new);
    for file in files {
        let inside = format!("/{}", file_path(file));
        mounts.retain(|m| m.target.as_deref() != Some(inside.as_str()));
        mounts.push(DockerMount {
            target: Some(inside),
            source: Some(dir.join(host_name(file)).to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..DockerMount::default()
        });
    }
}

/// The file's name in the task's host directory: its kind and its path
/// in the container, flattened.
fn host_name(file: &TaskFile) -> String {
    let kind = match file.kind {
        FileKind::Secret => "secret",
        FileKind::Config => "config",
    };
    format!("{kind}-{}", file_path(file).replace('/', "%"))
}

/// Writes the task's files into `dir` (made 0700), each with its mode and
/// owner, for [`bind_files`]. Blocking.
pub(crate) fn write_files(root: &Path, dir: &Path, files: &[TaskFile]) -> Result<(), RuntimeError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let io = |what: &str, path: &Path, e: std::io::Error| {
        RuntimeError::Unavailable(format!("failed to {what} {}: {e}", path.display()))
    };
    for (d, mode) in [(root, 0o711), (dir, 0o700)] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(d)
            .map_err(|e| io("create", d, e))?;
    }
    for file in files {
        let path = dir.join(host_name(file));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("replace", &path, e)),
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("create", &path, e))?;
        f.write_all(&file.data).map_err(|e| io("write", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode & 0o7777))
            .map_err(|e| io("set the mode of", &path, e))?;
        use std::os::unix::fs::MetadataExt as _;
        let meta = f.metadata().map_err(|e| io("read", &path, e))?;
        if (meta.uid(), meta.gid()) != (file.uid, file.gid) {
            std::os::unix::fs::chown(&path, Some(file.uid), Some(file.gid))
                .map_err(|e| io("give its owner to", &path, e))?;
        }
    }
    Ok(())
}

/// A tar archive of the task's secret and config files, to be unpacked at
/// the container's root. It holds no directory entries, which would
/// replace the image's own (mode and owner); the engine makes missing
/// parents.
pub(crate) fn files_archive(files: &[TaskFile]) -> Result<Vec<u8>, RuntimeError> {
    let failed = |e: std::io::Error| {
        RuntimeError::Unavailable(format!("failed to pack the task's files: {e}"))
    };
    let mut tar = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(file.mode);
        header.set_uid(u64::from(file.uid));
        header.set_gid(u64::from(file.gid));
        header.set_size(file.data.len() as u64);
        tar.append_data(&mut header, file_path(file), file.data.as_slice())
            .map_err(failed)?;
    }
    tar.into_inner().map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use swarm_core::model::{EndpointSpec, Meta, Service, ServiceSpec, TaskSpec};

    use super::*;

    fn task(spec: TaskSpec, ports: &[&str]) -> Task {
        let service = Service {
            meta: Meta::new(Id::from("svc1")),
            spec: ServiceSpec::replicated("web", 1, Vec::new()),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut task = Task::new(&service, 3, Some(Id::from("node1")), Vec::new());
        task.spec = Arc::new(spec);
        task.endpoint = Arc::new(EndpointSpec {
            ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
            ..EndpointSpec::default()
        });
        task
    }

    #[test]
    fn the_spec_becomes_the_container() {
        let mut spec = TaskSpec {
            image: "busybox:1".into(),
            command: vec!["httpd".into()],
            args: vec!["-f".into(), "-p".into(), "80".into()],
            env: vec!["A=1".into()],
            workdir: Some("/www".into()),
            user: Some("65534".into()),
            hostname: Some("web".into()),
            ..TaskSpec::default()
        };
        spec.labels.insert("tier".into(), "front".into());
        spec.labels.insert(LABEL_TASK_ID.into(), "forged".into());
        spec.labels.insert(LABEL_INGRESS.into(), "22:22".into());
        spec.resources.limits.nano_cpus = 500_000_000;
        spec.resources.limits.memory_bytes = 64 << 20;
        spec.resources.reservations.memory_bytes = 32 << 20;
        spec.mounts = vec![
            "type=bind,source=/srv,target=/srv,readonly"
                .parse()
                .unwrap(),
            "type=tmpfs,target=/scratch".parse().unwrap(),
        ];
        spec.healthcheck = Some(HealthCheck {
            test: vec!["wget".into(), "-q".into(), "localhost".into()],
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            retries: 2,
            start_period: Duration::ZERO,
        });
        let mut t = task(spec, &["8080:80", "mode=host,published=9090,target=90"]);
        t.assigned_generic_resources = vec![swarm_core::model::GenericResource::Named {
            kind: "gpu".into(),
            value: "GPU-a".into(),
        }];
        let body = create_body(&t, None).unwrap();
        assert_eq!(container_name(&t), format!("web.3.{}", t.meta.id));
        assert_eq!(body.entrypoint.unwrap(), ["httpd"]);
        assert_eq!(body.cmd.unwrap(), ["-f", "-p", "80"]);
        let env = body.env.unwrap();
        assert_eq!(env[0], "A=1");
        assert!(env.contains(&"SWARM_SECRETS_DIR=/run/secrets".to_owned()));
        assert!(env.contains(&"SWARM_NODE_ID=node1".to_owned()));
        assert!(env.contains(&"DOCKER_RESOURCE_GPU=GPU-a".to_owned()));
        assert_eq!(
            (
                body.user.as_deref(),
                body.working_dir.as_deref(),
                body.hostname.as_deref()
            ),
            (Some("65534"), Some("/www"), Some("web"))
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_TASK_ID], t.meta.id.as_str(), "ours win");
        let bare = task(TaskSpec::default(), &[]);
        let mut forged = (*bare.spec).clone();
        forged.labels.insert(LABEL_INGRESS.into(), "22:22".into());
        let forged = Task {
            spec: Arc::new(forged),
            ..bare
        };
        assert!(
            !super::labels(&forged, None).contains_key(LABEL_INGRESS),
            "a spec cannot claim ports through the runtime's labels"
        );
        assert_eq!(labels["tier"], "front");
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_NODE_ID], "node1");
        assert_eq!(
            super::labels(&t, Some(&Id::from("runtime-node")))[LABEL_NODE_ID],
            "runtime-node",
            "a runtime labels its containers with its own node"
        );
        assert_eq!(labels[LABEL_INGRESS], "8080:80");
        assert_eq!(parse_ingress(&labels[LABEL_INGRESS]), [(8080, 80)]);
        let health = body.healthcheck.unwrap();
        assert_eq!(health.test.unwrap(), ["CMD", "wget", "-q", "localhost"]);
        assert_eq!(health.interval, Some(200_000_000));
        let host = body.host_config.unwrap();
        assert_eq!(
            (host.nano_cpus, host.memory, host.memory_reservation),
            (Some(500_000_000), Some(64 << 20), Some(32 << 20))
        );
        let bindings = host.port_bindings.unwrap();
        assert_eq!(bindings.len(), 1, "only host-mode ports bind on the host");
        assert_eq!(
            bindings["90/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("9090")
        );
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, ["80/tcp", "90/tcp"]);
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts[0].typ, Some(MountType::BIND));
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(mounts[1].typ, Some(MountType::TMPFS));
        assert_eq!(mounts[1].source, None);
    }

    #[test]
    fn a_sandboxed_container_joins_its_holder_and_leaves_ports_to_the_driver() {
        let spec = TaskSpec {
            image: "busybox:1".into(),
            hostname: Some("web".into()),
            ..TaskSpec::default()
        };
        let t = task(spec, &["8080:80", "mode=host,published=9090,target=90"]);
        let holder = sandbox_body(&t, Some(&Id::from("node9")), "swarm/sandbox:1");
        assert_eq!(holder.image.as_deref(), Some("swarm/sandbox:1"));
        assert_eq!(
            holder.hostname.as_deref(),
            Some("web"),
            "joined containers take it"
        );
        let labels = holder.labels.unwrap();
        assert_eq!(labels[LABEL_SANDBOX], t.meta.id.to_string());
        assert_eq!(labels[LABEL_NODE_ID], "node9");
        assert!(
            !labels.contains_key(LABEL_TASK_ID),
            "a holder is not listed as the task's container"
        );
        assert_eq!(
            holder.host_config.unwrap().network_mode.as_deref(),
            Some("none")
        );

        let mut body = create_body(&t, None).unwrap();
        let resolv = std::path::Path::new("/var/lib/swarm/net/t.resolv.conf");
        join_sandbox(&mut body, &sandbox_name(&t), Some(resolv));
        let host = body.host_config.unwrap();
        assert_eq!(
            host.network_mode,
            Some(format!("container:web.3.{}.sandbox", t.meta.id))
        );
        assert!(body.hostname.is_none() && body.exposed_ports.is_none());
        assert!(host.port_bindings.is_none(), "the driver publishes ports");
        assert!(!body.labels.unwrap().contains_key(LABEL_INGRESS));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].target.as_deref(), Some("/etc/resolv.conf"));
        assert_eq!(mounts[0].source.as_deref(), resolv.to_str());
        assert_eq!(mounts[0].read_only, Some(true));

        // A spec that mounts its own resolv.conf keeps it.
        let spec = TaskSpec {
            mounts: vec![
                "type=bind,source=/etc/mine,target=/etc/resolv.conf"
                    .parse()
                    .unwrap(),
            ],
            ..TaskSpec::default()
        };
        let t = task(spec, &[]);
        let mut body = create_body(&t, None).unwrap();
        join_sandbox(&mut body, "h", Some(resolv));
        let mounts = body.host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("/etc/mine"));
    }

    #[test]
    fn docker_s_container_settings_reach_the_engine() {
        let spec = TaskSpec {
            image: "nginx".into(),
            groups: vec!["audio".into()],
            init: Some(true),
            stop_signal: Some("SIGQUIT".into()),
            tty: true,
            read_only: true,
            hosts: vec!["10.0.0.5 db db.local".into()],
            dns: Some(swarm_core::model::DnsConfig {
                nameservers: vec!["10.0.0.53".into()],
                search: vec!["example".into()],
                options: vec!["ndots:2".into()],
            }),
            sysctls: [("net.core.somaxconn".to_owned(), "1024".to_owned())].into(),
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["MKNOD".into()],
            log_driver: Some(swarm_core::model::LogDriver {
                name: "local".into(),
                options: [("max-size".to_owned(), "10m".to_owned())].into(),
            }),
            ulimits: vec![swarm_core::model::Ulimit {
                name: "nofile".into(),
                hard: 2048,
                soft: 1024,
            }],
            oom_score_adj: -500,
            pids_limit: 100,
            privileges: Some(swarm_core::model::Privileges {
                no_new_privileges: true,
                seccomp: Some(swarm_core::model::Seccomp::Unconfined),
                apparmor: Some(swarm_core::model::AppArmor::Disabled),
                selinux: Some(swarm_core::model::SeLinuxContext {
                    r#type: "svirt_lxc_net_t".into(),
                    level: "s0:c100,c200".into(),
                    ..Default::default()
                }),
                credential_spec: None,
            }),
            isolation: Some("default".into()),
            ..TaskSpec::default()
        };
        let t = task(spec, &[]);
        let body = create_body(&t, None).unwrap();
        assert_eq!(body.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(body.tty, Some(true));
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.init, Some(true));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.group_add, Some(vec!["audio".into()]));
        assert_eq!(
            host.extra_hosts,
            Some(vec!["db:10.0.0.5".into(), "db.local:10.0.0.5".into()])
        );
        assert_eq!(host.dns, Some(vec!["10.0.0.53".into()]));
        assert_eq!(host.dns_search, Some(vec!["example".into()]));
        assert_eq!(host.dns_options, Some(vec!["ndots:2".into()]));
        assert_eq!(
            host.sysctls
                .unwrap()
                .get("net.core.somaxconn")
                .map(String::as_str),
            Some("1024")
        );
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".into()]));
        assert_eq!(host.cap_drop, Some(vec!["MKNOD".into()]));
        let ulimit = &host.ulimits.as_ref().unwrap()[0];
        assert_eq!(
            (ulimit.name.as_deref(), ulimit.soft, ulimit.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        assert_eq!(
            (host.oom_score_adj, host.pids_limit),
            (Some(-500), Some(100))
        );
        assert_eq!(
            host.security_opt.clone().unwrap(),
            [
                "no-new-privileges=true",
                "seccomp=unconfined",
                "apparmor=unconfined",
                "label=type:svirt_lxc_net_t",
                "label=level:s0:c100,c200"
            ]
        );
        assert_eq!(host.isolation, Some(HostConfigIsolationEnum::DEFAULT));
        let log = host.log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("local"));
        // Joined to a sandbox, the holder keeps the hosts and the
        // resolver, which a joined container may not set.
        let mut joined = body;
        join_sandbox(&mut joined, "holder", None);
        let host = joined.host_config.unwrap();
        assert!(host.extra_hosts.is_none() && host.dns.is_none() && host.dns_search.is_none());
        let holder = sandbox_body(&t, None, "pause");
        assert_eq!(
            holder.host_config.unwrap().extra_hosts,
            Some(vec!["db:10.0.0.5".into(), "db.local:10.0.0.5".into()])
        );
    }

    #[test]
    fn udp_through_the_mesh_is_refused() {
        let t = task(TaskSpec::default(), &["53:53/udp"]);
        match create_body(&t, None) {
            Err(RuntimeError::InvalidSpec(msg)) => assert!(msg.contains("mode=host"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shell_health_checks_keep_their_command_line() {
        let h = HealthCheck {
            test: vec!["CMD-SHELL".into(), "exit".into(), "1".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 1,
            start_period: Duration::ZERO,
        };
        assert_eq!(health_config(&h).test.unwrap(), ["CMD-SHELL", "exit 1"]);
    }

    #[test]
    fn files_land_under_run_secrets_and_their_targets() {
        let file = |kind, target: &str, mode| TaskFile {
            kind,
            name: "n".into(),
            target: target.into(),
            mode,
            uid: 0,
            gid: 0,
            data: b"data".to_vec(),
        };
        let archive = files_archive(&[
            file(FileKind::Secret, "db_pass", 0o400),
            file(FileKind::Config, "/etc/app/app.conf", 0o444),
            file(FileKind::Config, "rel.conf", 0o444),
        ])
        .unwrap();
        let mut entries = tar::Archive::new(archive.as_slice());
        let found: Vec<(String, u32)> = entries
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("run/secrets/db_pass".to_owned(), 0o400),
                ("etc/app/app.conf".to_owned(), 0o444),
                ("rel.conf".to_owned(), 0o444),
            ],
            "files only: directory entries would replace the image's"
        );
    }
}
