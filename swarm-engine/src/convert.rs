//! Between the SDK's model (swarm-core) and Docker's JSON shapes
//! ([`crate::wire`]).
//!
//! A spec read from Docker's JSON keeps what Docker's JSON cannot say
//! (start and progress deadlines, canaries, the PROXY protocol) from the
//! spec it replaces, so that an update through the `docker` CLI changes
//! only what the CLI changed. A field the model cannot carry is refused
//! with a 400 that names it: nothing a client sends is silently dropped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use base64::Engine as _;

use swarm_core::model::{
    self, Availability, EndpointMode, FailureAction, FileReference, HealthCheck, Mount, MountKind,
    NetworkAttachment, NodeRole, NodeState, PlacementPreference, PortConfig, Protocol, PublishMode,
    ResourceRequirements, Resources, RestartCondition, RestartPolicy, ServiceMode, TaskState,
    UpdateOrder,
};
use swarm_core::store::State;

use crate::ApiError;
use crate::wire::{self, Time, Version, node, service as ws, task as wt};

fn time(t: std::time::SystemTime) -> Time {
    t.into()
}

fn version(v: u64) -> Version {
    Version { index: v }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn duration(field: &str, n: i64) -> Result<Duration, ApiError> {
    u64::try_from(n).map(Duration::from_nanos).map_err(|_| {
        ApiError::bad_request(format!(
            "{field}: {n} is negative: give a duration of 0 or more nanoseconds"
        ))
    })
}

fn unsupported(field: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{field} is not supported by this swarm yet: leave it out of the spec"
    ))
}

// ---- services ---------------------------------------------------------

/// A service spec read from Docker's JSON, keeping what Docker's JSON
/// cannot say from `base` (the spec it replaces, if any).
///
/// # Errors
/// A 400 naming the field that is wrong or that the model cannot carry.
pub fn service_spec(
    spec: ws::ServiceSpec,
    base: Option<&model::ServiceSpec>,
) -> Result<model::ServiceSpec, ApiError> {
    let mode = match (&spec.mode.replicated, &spec.mode.global) {
        _ if spec.mode.replicated_job.is_some() || spec.mode.global_job.is_some() => {
            return Err(ApiError::bad_request(
                "Mode: jobs (replicated-job, global-job) are not supported by this swarm yet: use replicated or global",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Mode: a service is either Replicated or Global, not both",
            ));
        }
        (Some(r), None) => ServiceMode::Replicated {
            replicas: r.replicas.unwrap_or(1),
        },
        (None, Some(_)) => ServiceMode::Global,
        (None, None) => ServiceMode::Replicated { replicas: 1 },
    };
    let mut networks = spec.task_template.networks.clone();
    if networks.is_empty() {
        networks.clone_from(&spec.networks);
    } else if !spec.networks.is_empty() {
        return Err(ApiError::bad_request(
            "Networks: give the networks in TaskTemplate.Networks only (the top-level Networks is Docker's deprecated place)",
        ));
    }
    let defaults = model::UpdateConfig::default();
    let update = update_config(
        "UpdateConfig",
        spec.update_config,
        base.map_or(&defaults, |b| &b.update),
    )?;
    let rollback = update_config(
        "RollbackConfig",
        spec.rollback_config,
        base.map_or(&defaults, |b| &b.rollback),
    )?;
    let endpoint = endpoint_spec(spec.endpoint_spec.unwrap_or_default(), base)?;
    let mut task = task_spec(spec.task_template, base.map(|b| &b.task))?;
    task.networks = networks
        .into_iter()
        .map(|n| {
            if n.target.is_empty() {
                return Err(ApiError::bad_request(
                    "TaskTemplate.Networks: an attachment has no Target: give the network's name or id",
                ));
            }
            Ok(NetworkAttachment {
                target: n.target,
                aliases: n.aliases,
                driver_opts: n.driver_opts,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(model::ServiceSpec {
        name: spec.name,
        labels: spec.labels,
        mode,
        task,
        update,
        rollback,
        endpoint,
    })
}

fn update_config(
    field: &str,
    config: Option<ws::UpdateConfig>,
    base: &model::UpdateConfig,
) -> Result<model::UpdateConfig, ApiError> {
    let Some(c) = config else {
        return Ok(*base);
    };
    let failure_action = match c.failure_action.as_str() {
        "" | "pause" => FailureAction::Pause,
        "continue" => FailureAction::Continue,
        "rollback" => FailureAction::Rollback,
        other => {
            return Err(ApiError::bad_request(format!(
                "{field}.FailureAction: unknown action {other:?}: use pause, continue or rollback"
            )));
        }
    };
    let order = match c.order.as_str() {
        "" | "stop-first" => UpdateOrder::StopFirst,
        "start-first" => UpdateOrder::StartFirst,
        other => {
            return Err(ApiError::bad_request(format!(
                "{field}.Order: unknown order {other:?}: use stop-first or start-first"
            )));
        }
    };
    Ok(model::UpdateConfig {
        parallelism: c.parallelism,
        delay: duration(&format!("{field}.Delay"), c.delay)?,
        failure_action,
        monitor: if c.monitor == 0 {
            model::UpdateConfig::default().monitor
        } else {
            duration(&format!("{field}.Monitor"), c.monitor)?
        },
        max_failure_ratio: c.max_failure_ratio,
        order,
        ..*base
    })
}

fn endpoint_spec(
    e: ws::EndpointSpec,
    base: Option<&model::ServiceSpec>,
) -> Result<model::EndpointSpec, ApiError> {
    let mode = match e.mode.as_str() {
        "" | "vip" => EndpointMode::Vip,
        "dnsrr" => EndpointMode::Dnsrr,
        other => {
            return Err(ApiError::bad_request(format!(
                "EndpointSpec.Mode: unknown mode {other:?}: use vip or dnsrr"
            )));
        }
    };
    let ports = e
        .ports
        .into_iter()
        .map(|p| {
            if !p.name.is_empty() {
                return Err(unsupported("EndpointSpec.Ports.Name"));
            }
            let protocol = match p.protocol.as_str() {
                "" | "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "EndpointSpec.Ports.Protocol: {other:?} is not served: use tcp or udp"
                    )));
                }
            };
            let publish_mode = match p.publish_mode.as_str() {
                "" | "ingress" => PublishMode::Ingress,
                "host" => PublishMode::Host,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "EndpointSpec.Ports.PublishMode: unknown mode {other:?}: use ingress or host"
                    )));
                }
            };
            let mut port = PortConfig {
                protocol,
                target_port: p.target_port,
                published_port: p.published_port,
                publish_mode,
                proxy_protocol: false,
            };
            // Docker's JSON has no PROXY protocol: keep the one this port had.
            port.proxy_protocol = base.is_some_and(|b| {
                b.endpoint.ports.iter().any(|old| {
                    old.proxy_protocol
                        && PortConfig {
                            proxy_protocol: false,
                            ..old.clone()
                        } == port
                })
            });
            Ok(port)
        })
        .collect::<Result<_, _>>()?;
    Ok(model::EndpointSpec { mode, ports })
}

/// The container's security settings, `None` when they ask for nothing.
fn privileges(p: ws::Privileges) -> Result<Option<model::Privileges>, ApiError> {
    const AT: &str = "TaskTemplate.ContainerSpec.Privileges";
    let ws::CredentialSpec {
        config,
        file,
        registry,
    } = p.credential_spec.unwrap_or_default();
    let credential_spec = match (config.is_empty(), file.is_empty(), registry.is_empty()) {
        (true, true, true) => None,
        (false, true, true) => Some(model::CredentialSpec::Config(config)),
        (true, false, true) => Some(model::CredentialSpec::File(file)),
        (true, true, false) => Some(model::CredentialSpec::Registry(registry)),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{AT}.CredentialSpec: give one of Config, File and Registry"
            )));
        }
    };
    let selinux = p
        .selinux_context
        .filter(|l| *l != ws::SeLinuxContext::default())
        .map(|l| model::SeLinuxContext {
            disable: l.disable,
            user: l.user,
            role: l.role,
            r#type: l.r#type,
            level: l.level,
        });
    let ws::SeccompOpts { mode, profile } = p.seccomp.unwrap_or_default();
    let seccomp = {
        match (mode.as_str(), profile.is_empty()) {
            ("", true) => None,
            ("default", true) => Some(model::Seccomp::Default),
            ("unconfined", true) => Some(model::Seccomp::Unconfined),
            ("custom" | "", false) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(profile.as_bytes())
                    .map_err(|e| {
                        ApiError::bad_request(format!("{AT}.Seccomp.Profile: not base64: {e}"))
                    })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request(format!(
                        "{AT}.Seccomp.Profile: not a JSON profile (not UTF-8)"
                    ))
                })?;
                Some(model::Seccomp::Custom(text))
            }
            ("custom", true) => {
                return Err(ApiError::bad_request(format!(
                    "{AT}.Seccomp: mode custom needs its Profile"
                )));
            }
            (m @ ("default" | "unconfined"), false) => {
                return Err(ApiError::bad_request(format!(
                    "{AT}.Seccomp: a Profile goes with mode custom, not {m}"
                )));
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "{AT}.Seccomp.Mode: unknown mode {other:?}: use default, unconfined or custom"
                )));
            }
        }
    };
    let apparmor = match p.app_armor.unwrap_or_default().mode.as_str() {
        "" => None,
        "default" => Some(model::AppArmor::Default),
        "disabled" => Some(model::AppArmor::Disabled),
        other => {
            return Err(ApiError::bad_request(format!(
                "{AT}.AppArmor.Mode: unknown mode {other:?}: use default or disabled"
            )));
        }
    };
    let out = model::Privileges {
        no_new_privileges: p.no_new_privileges,
        seccomp,
        apparmor,
        selinux,
        credential_spec,
    };
    Ok((out != model::Privileges::default()).then_some(out))
}

/// The container's security settings as the Engine API writes them.
fn wire_privileges(p: &model::Privileges) -> ws::Privileges {
    ws::Privileges {
        credential_spec: p.credential_spec.as_ref().map(|c| match c {
            model::CredentialSpec::Config(v) => ws::CredentialSpec {
                config: v.clone(),
                ..ws::CredentialSpec::default()
            },
            model::CredentialSpec::File(v) => ws::CredentialSpec {
                file: v.clone(),
                ..ws::CredentialSpec::default()
            },
            model::CredentialSpec::Registry(v) => ws::CredentialSpec {
                registry: v.clone(),
                ..ws::CredentialSpec::default()
            },
        }),
        selinux_context: p.selinux.as_ref().map(|l| ws::SeLinuxContext {
            disable: l.disable,
            user: l.user.clone(),
            role: l.role.clone(),
            r#type: l.r#type.clone(),
            level: l.level.clone(),
        }),
        seccomp: p.seccomp.as_ref().map(|s| match s {
            model::Seccomp::Default => ws::SeccompOpts {
                mode: "default".into(),
                profile: String::new(),
            },
            model::Seccomp::Unconfined => ws::SeccompOpts {
                mode: "unconfined".into(),
                profile: String::new(),
            },
            model::Seccomp::Custom(profile) => ws::SeccompOpts {
                mode: "custom".into(),
                profile: base64::engine::general_purpose::STANDARD.encode(profile.as_bytes()),
            },
        }),
        app_armor: p.apparmor.map(|a| ws::AppArmorOpts {
            mode: match a {
                model::AppArmor::Default => "default".into(),
                model::AppArmor::Disabled => "disabled".into(),
            },
        }),
        no_new_privileges: p.no_new_privileges,
    }
}

fn task_spec(t: ws::TaskSpec, base: Option<&model::TaskSpec>) -> Result<model::TaskSpec, ApiError> {
    if t.plugin_spec.is_some() {
        return Err(unsupported("TaskTemplate.PluginSpec"));
    }
    if t.network_attachment_spec.is_some() {
        return Err(unsupported("TaskTemplate.NetworkAttachmentSpec"));
    }
    if !matches!(t.runtime.as_str(), "" | "container") {
        return Err(ApiError::bad_request(format!(
            "TaskTemplate.Runtime: {:?} is not served: use container",
            t.runtime
        )));
    }
    let Some(c) = t.container_spec else {
        return Err(ApiError::bad_request(
            "TaskTemplate.ContainerSpec is missing: give at least its Image",
        ));
    };
    let privileges = c.privileges.map(privileges).transpose()?.flatten();
    let isolation = match c.isolation.as_str() {
        "" => None,
        "default" | "process" | "hyperv" => Some(c.isolation.clone()),
        other => {
            return Err(ApiError::bad_request(format!(
                "TaskTemplate.ContainerSpec.Isolation: unknown isolation {other:?}: use default, process or hyperv"
            )));
        }
    };
    let pids = t
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .map_or(0, |l| l.pids);
    let pids_limit = u64::try_from(pids).map_err(|_| {
        ApiError::bad_request(format!(
            "TaskTemplate.Resources.Limits.Pids: {pids} is negative: give 0 (no limit) or more"
        ))
    })?;
    let resources = match t.resources {
        None => ResourceRequirements::default(),
        Some(r) => {
            let limits = r.limits.unwrap_or_default();
            let reservations = r.reservations.unwrap_or_default();
            let generic = reserved_generic(&reservations.generic_resources)?;
            let amount = |field: &str, n: i64| {
                u64::try_from(n).map_err(|_| {
                    ApiError::bad_request(format!(
                        "TaskTemplate.Resources.{field}: {n} is negative"
                    ))
                })
            };
            ResourceRequirements {
                limits: Resources {
                    nano_cpus: amount("Limits.NanoCPUs", limits.nano_cpus)?,
                    memory_bytes: amount("Limits.MemoryBytes", limits.memory_bytes)?,
                },
                reservations: Resources {
                    nano_cpus: amount("Reservations.NanoCPUs", reservations.nano_cpus)?,
                    memory_bytes: amount("Reservations.MemoryBytes", reservations.memory_bytes)?,
                },
                generic,
            }
        }
    };
    let restart = match t.restart_policy {
        None => RestartPolicy::default(),
        Some(r) => RestartPolicy {
            condition: match r.condition.as_str() {
                "" | "any" => RestartCondition::Any,
                "on-failure" => RestartCondition::OnFailure,
                "none" => RestartCondition::None,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "TaskTemplate.RestartPolicy.Condition: unknown condition {other:?}: use none, on-failure or any"
                    )));
                }
            },
            delay: match r.delay {
                Some(d) => duration("TaskTemplate.RestartPolicy.Delay", d)?,
                None => RestartPolicy::default().delay,
            },
            max_attempts: u32::try_from(r.max_attempts.unwrap_or(0)).map_err(|_| {
                ApiError::bad_request("TaskTemplate.RestartPolicy.MaxAttempts: too large")
            })?,
            window: duration("TaskTemplate.RestartPolicy.Window", r.window.unwrap_or(0))?,
        },
    };
    let placement = t.placement.unwrap_or_default();
    let preferences = placement
        .preferences
        .into_iter()
        .map(|p| match p.spread {
            Some(s) if !s.spread_descriptor.is_empty() => Ok(PlacementPreference::Spread {
                descriptor: s.spread_descriptor,
            }),
            _ => Err(ApiError::bad_request(
                "TaskTemplate.Placement.Preferences: each needs Spread.SpreadDescriptor, e.g. node.labels.zone",
            )),
        })
        .collect::<Result<_, _>>()?;
    let healthcheck = c.healthcheck.map(health_check).transpose()?;
    let mounts = c.mounts.into_iter().map(mount).collect::<Result<_, _>>()?;
    let secrets = c
        .secrets
        .into_iter()
        .map(|s| file_reference("Secrets", s.secret_name, s.file))
        .collect::<Result<_, _>>()?;
    let configs = c
        .configs
        .into_iter()
        .map(|r| {
            if r.runtime.is_some() {
                return Err(unsupported("TaskTemplate.ContainerSpec.Configs.Runtime"));
            }
            file_reference("Configs", r.config_name, r.file)
        })
        .collect::<Result<_, _>>()?;
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    Ok(model::TaskSpec {
        privileges,
        isolation,
        image: c.image,
        command: c.command,
        args: c.args,
        env: c.env,
        workdir: nonempty(c.dir),
        user: nonempty(c.user),
        hostname: nonempty(c.hostname),
        labels: c.labels,
        stop_grace_period: match c.stop_grace_period {
            Some(n) => duration("TaskTemplate.ContainerSpec.StopGracePeriod", n)?,
            None => base.map_or(Duration::from_secs(10), |b| b.stop_grace_period),
        },
        healthcheck,
        resources,
        restart,
        placement: model::Placement {
            constraints: placement.constraints,
            preferences,
            max_replicas_per_node: placement.max_replicas,
            platforms: placement
                .platforms
                .into_iter()
                .map(|p| model::Platform {
                    os: p.os,
                    architecture: p.architecture,
                })
                .collect(),
        },
        networks: Vec::new(),
        secrets,
        configs,
        mounts,
        force_update: t.force_update,
        groups: c.groups,
        init: c.init,
        stop_signal: nonempty(c.stop_signal),
        tty: c.tty,
        open_stdin: c.open_stdin,
        read_only: c.read_only,
        hosts: c.hosts,
        dns: c.dns_config.map(|d| model::DnsConfig {
            nameservers: d.nameservers,
            search: d.search,
            options: d.options,
        }),
        sysctls: c.sysctls,
        cap_add: c.capability_add,
        cap_drop: c.capability_drop,
        ulimits: c
            .ulimits
            .into_iter()
            .map(|u| model::Ulimit {
                name: u.name,
                hard: u.hard,
                soft: u.soft,
            })
            .collect(),
        oom_score_adj: c.oom_score_adj,
        pids_limit,
        log_driver: t
            .log_driver
            .filter(|l| !l.name.is_empty() || !l.options.is_empty())
            .map(|l| model::LogDriver {
                name: l.name,
                options: l.options,
            }),
    })
}

fn health_check(h: ws::HealthConfig) -> Result<HealthCheck, ApiError> {
    let field = |f: &str| format!("TaskTemplate.ContainerSpec.Healthcheck.{f}");
    if h.start_interval != 0 {
        return Err(unsupported(&field("StartInterval")));
    }
    // Zero durations stay zero: Docker's "the image's, else the default".
    Ok(HealthCheck {
        test: h.test,
        interval: duration(&field("Interval"), h.interval)?,
        timeout: duration(&field("Timeout"), h.timeout)?,
        retries: match h.retries {
            0 => 3,
            n => u32::try_from(n)
                .map_err(|_| ApiError::bad_request(format!("{}: {n}", field("Retries"))))?,
        },
        start_period: duration(&field("StartPeriod"), h.start_period)?,
    })
}

fn mount(m: ws::Mount) -> Result<Mount, ApiError> {
    let kind = match m.r#type.as_str() {
        "bind" => MountKind::Bind,
        "" | "volume" => MountKind::Volume,
        "tmpfs" => MountKind::Tmpfs,
        other => {
            return Err(ApiError::bad_request(format!(
                "TaskTemplate.ContainerSpec.Mounts.Type: {other:?} is not served: use bind, volume or tmpfs"
            )));
        }
    };
    for (f, set) in [
        ("Consistency", !m.consistency.is_empty()),
        ("BindOptions", m.bind_options.is_some()),
        ("VolumeOptions", m.volume_options.is_some()),
        ("TmpfsOptions", m.tmpfs_options.is_some()),
        ("ClusterOptions", m.cluster_options.is_some()),
    ] {
        if set {
            return Err(unsupported(&format!(
                "TaskTemplate.ContainerSpec.Mounts.{f}"
            )));
        }
    }
    Ok(Mount {
        kind,
        source: (!m.source.is_empty()).then_some(m.source),
        target: m.target,
        read_only: m.read_only,
    })
}

fn file_reference(
    field: &str,
    name: String,
    file: Option<ws::FileTarget>,
) -> Result<FileReference, ApiError> {
    let Some(file) = file else {
        return Err(ApiError::bad_request(format!(
            "TaskTemplate.ContainerSpec.{field}: {name:?} has no File: give File.Name, the file's name in the task"
        )));
    };
    let id = |what: &str, s: &str| {
        if s.is_empty() {
            return Ok(0);
        }
        s.parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!(
                "TaskTemplate.ContainerSpec.{field}.File.{what}: {s:?} is not a number"
            ))
        })
    };
    Ok(FileReference {
        target: if file.name.is_empty() {
            name.clone()
        } else {
            file.name
        },
        uid: id("UID", &file.uid)?,
        gid: id("GID", &file.gid)?,
        mode: file.mode,
        name,
    })
}

/// A service spec as Docker's JSON writes it; references to secrets,
/// configs and networks name their ids from `state`.
#[must_use]
pub fn service_spec_wire(spec: &model::ServiceSpec, state: &State) -> ws::ServiceSpec {
    let mut task_template = task_spec_wire(&spec.task, state);
    if spec.task.networks.is_empty() {
        task_template.networks = Vec::new();
    }
    ws::ServiceSpec {
        name: spec.name.clone(),
        labels: spec.labels.clone(),
        task_template,
        mode: match spec.mode {
            ServiceMode::Replicated { replicas } => ws::ServiceMode {
                replicated: Some(ws::Replicated {
                    replicas: Some(replicas),
                }),
                ..ws::ServiceMode::default()
            },
            ServiceMode::Global => ws::ServiceMode {
                global: Some(ws::Empty {}),
                ..ws::ServiceMode::default()
            },
        },
        update_config: Some(update_config_wire(&spec.update)),
        rollback_config: Some(update_config_wire(&spec.rollback)),
        networks: Vec::new(),
        endpoint_spec: Some(endpoint_spec_wire(&spec.endpoint)),
    }
}

fn update_config_wire(u: &model::UpdateConfig) -> ws::UpdateConfig {
    ws::UpdateConfig {
        parallelism: u.parallelism,
        delay: nanos(u.delay),
        failure_action: match u.failure_action {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
        .into(),
        monitor: nanos(u.monitor),
        max_failure_ratio: u.max_failure_ratio,
        order: match u.order {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
        .into(),
    }
}

fn endpoint_spec_wire(e: &model::EndpointSpec) -> ws::EndpointSpec {
    ws::EndpointSpec {
        mode: e.mode.to_string(),
        ports: e.ports.iter().map(port_wire).collect(),
    }
}

fn port_wire(p: &PortConfig) -> ws::PortConfig {
    ws::PortConfig {
        name: String::new(),
        protocol: match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
        .into(),
        target_port: p.target_port,
        published_port: p.published_port,
        publish_mode: match p.publish_mode {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        }
        .into(),
    }
}

/// A task template as Docker's JSON writes it.
#[must_use]
pub fn task_spec_wire(t: &model::TaskSpec, state: &State) -> ws::TaskSpec {
    let file = |r: &FileReference| ws::FileTarget {
        name: r.target.clone(),
        uid: r.uid.to_string(),
        gid: r.gid.to_string(),
        mode: r.mode,
    };
    let network_id = |target: &str| {
        state
            .network(target)
            .or_else(|| {
                state
                    .by_name(model::Kind::Network, target)
                    .and_then(|id| state.network(id.as_str()))
            })
            .map_or_else(|| target.to_owned(), |n| n.meta.id.as_str().to_owned())
    };
    let some = |s: &Option<String>| s.clone().unwrap_or_default();
    ws::TaskSpec {
        container_spec: Some(ws::ContainerSpec {
            image: t.image.clone(),
            labels: t.labels.clone(),
            command: t.command.clone(),
            args: t.args.clone(),
            hostname: some(&t.hostname),
            env: t.env.clone(),
            dir: some(&t.workdir),
            user: some(&t.user),
            groups: t.groups.clone(),
            privileges: t.privileges.as_ref().map(wire_privileges),
            isolation: some(&t.isolation),
            init: t.init,
            stop_signal: some(&t.stop_signal),
            tty: t.tty,
            open_stdin: t.open_stdin,
            read_only: t.read_only,
            hosts: t.hosts.clone(),
            sysctls: t.sysctls.clone(),
            capability_add: t.cap_add.clone(),
            capability_drop: t.cap_drop.clone(),
            ulimits: t
                .ulimits
                .iter()
                .map(|u| ws::Ulimit {
                    name: u.name.clone(),
                    hard: u.hard,
                    soft: u.soft,
                })
                .collect(),
            oom_score_adj: t.oom_score_adj,
            mounts: t
                .mounts
                .iter()
                .map(|m| ws::Mount {
                    r#type: m.kind.to_string(),
                    source: m.source.clone().unwrap_or_default(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                    ..ws::Mount::default()
                })
                .collect(),
            stop_grace_period: Some(nanos(t.stop_grace_period)),
            healthcheck: t.healthcheck.as_ref().map(|h| ws::HealthConfig {
                test: h.test.clone(),
                interval: nanos(h.interval),
                timeout: nanos(h.timeout),
                start_period: nanos(h.start_period),
                start_interval: 0,
                retries: i64::from(h.retries),
            }),
            dns_config: t.dns.as_ref().map(|d| ws::DnsConfig {
                nameservers: d.nameservers.clone(),
                search: d.search.clone(),
                options: d.options.clone(),
            }),
            secrets: t
                .secrets
                .iter()
                .map(|r| ws::SecretReference {
                    file: Some(file(r)),
                    secret_id: state
                        .secret_by_name(&r.name)
                        .map(|s| s.meta.id.as_str().to_owned())
                        .unwrap_or_default(),
                    secret_name: r.name.clone(),
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|r| ws::ConfigReference {
                    file: Some(file(r)),
                    runtime: None,
                    config_id: state
                        .config_by_name(&r.name)
                        .map(|c| c.meta.id.as_str().to_owned())
                        .unwrap_or_default(),
                    config_name: r.name.clone(),
                })
                .collect(),
        }),
        resources: Some(ws::ResourceRequirements {
            limits: Some(ws::Limit {
                nano_cpus: clamp(t.resources.limits.nano_cpus),
                memory_bytes: clamp(t.resources.limits.memory_bytes),
                pids: clamp(t.pids_limit),
            }),
            reservations: Some(ws::Reservation {
                nano_cpus: clamp(t.resources.reservations.nano_cpus),
                memory_bytes: clamp(t.resources.reservations.memory_bytes),
                generic_resources: t
                    .resources
                    .generic
                    .iter()
                    .map(|(kind, &n)| {
                        wire_generic(&model::GenericResource::Discrete {
                            kind: kind.clone(),
                            value: n,
                        })
                    })
                    .collect(),
            }),
        }),
        restart_policy: Some(ws::RestartPolicy {
            condition: t.restart.condition.to_string(),
            delay: Some(nanos(t.restart.delay)),
            max_attempts: Some(u64::from(t.restart.max_attempts)),
            window: Some(nanos(t.restart.window)),
        }),
        placement: Some(ws::Placement {
            constraints: t.placement.constraints.clone(),
            preferences: t
                .placement
                .preferences
                .iter()
                .map(|p| match p {
                    PlacementPreference::Spread { descriptor } => ws::PlacementPreference {
                        spread: Some(ws::SpreadOver {
                            spread_descriptor: descriptor.clone(),
                        }),
                    },
                })
                .collect(),
            max_replicas: t.placement.max_replicas_per_node,
            platforms: t
                .placement
                .platforms
                .iter()
                .map(|p| node::Platform {
                    architecture: p.architecture.clone(),
                    os: p.os.clone(),
                })
                .collect(),
        }),
        networks: t
            .networks
            .iter()
            .map(|n| ws::NetworkAttachmentConfig {
                target: network_id(&n.target),
                aliases: n.aliases.clone(),
                driver_opts: n.driver_opts.clone(),
            })
            .collect(),
        force_update: t.force_update,
        log_driver: t.log_driver.as_ref().map(|l| ws::Driver {
            name: l.name.clone(),
            options: l.options.clone(),
        }),
        runtime: "container".into(),
        ..ws::TaskSpec::default()
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A service as `inspect` shows it; with `status`, its tasks counted.
#[must_use]
pub fn service(s: &model::Service, state: &State, status: bool) -> ws::Service {
    let spec = service_spec_wire(&s.spec, state);
    let virtual_ips = s
        .endpoint
        .virtual_ips
        .iter()
        .map(|v| ws::EndpointVirtualIp {
            network_id: v.network_id.as_str().to_owned(),
            addr: format!("{}/{}", v.addr, v.prefix),
        })
        .collect();
    let endpoint_spec = spec.endpoint_spec.clone().unwrap_or_default();
    ws::Service {
        id: s.meta.id.as_str().to_owned(),
        version: version(s.meta.version),
        created_at: time(s.meta.created_at),
        updated_at: time(s.meta.updated_at),
        previous_spec: s.previous_spec().map(|p| service_spec_wire(p, state)),
        endpoint: ws::Endpoint {
            ports: endpoint_spec.ports.clone(),
            spec: endpoint_spec,
            virtual_ips,
        },
        spec,
        update_status: s.update_status.as_ref().map(|u| ws::UpdateStatus {
            state: u.state.as_str().into(),
            started_at: Some(time(u.started_at)),
            completed_at: u.completed_at.map(time),
            message: u.message.clone(),
        }),
        service_status: status.then(|| service_status(s, state)),
    }
}

fn service_status(s: &model::Service, state: &State) -> ws::ServiceStatus {
    let (running, desired) = state.replicas(s);
    ws::ServiceStatus {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: 0,
    }
}

// ---- tasks ------------------------------------------------------------

/// A task as Docker's JSON writes it.
#[must_use]
pub fn task(t: &model::Task, state: &State) -> wire::Task {
    let container_status = t.status.runtime_id.as_ref().map(|id| wt::ContainerStatus {
        pid: id.parse().unwrap_or(0),
        container_id: id.clone(),
        exit_code: t.status.exit_code.map_or(0, i64::from),
    });
    let host_ports = t
        .endpoint
        .ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host && t.status.state == TaskState::Running)
        .map(port_wire)
        .collect();
    wire::Task {
        id: t.meta.id.as_str().to_owned(),
        version: version(t.meta.version),
        created_at: time(t.meta.created_at),
        updated_at: time(t.meta.updated_at),
        name: String::new(),
        labels: BTreeMap::new(),
        spec: task_spec_wire(&t.spec, state),
        service_id: t.service_id.as_str().to_owned(),
        slot: t.slot,
        node_id: t
            .node_id
            .as_ref()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        status: wt::TaskStatus {
            timestamp: Some(time(t.status.timestamp)),
            state: t.status.state.as_str().into(),
            message: t.status.message.to_string(),
            err: t.status.err.clone().unwrap_or_default(),
            container_status,
            port_status: wt::PortStatus { ports: host_ports },
        },
        desired_state: t.desired_state.as_str().into(),
        networks_attachments: t
            .networks
            .iter()
            .map(|n| wt::NetworkAttachment {
                network: state
                    .network(n.network_id.as_str())
                    .map(|net| swarm_network(net))
                    .unwrap_or_default(),
                addresses: vec![format!("{}/{}", n.addr, n.prefix)],
            })
            .collect(),
        assigned_generic_resources: t
            .assigned_generic_resources
            .iter()
            .map(wire_generic)
            .collect(),
    }
}

// ---- nodes ------------------------------------------------------------

/// A generic resource as the Engine API writes it.
fn wire_generic(r: &model::GenericResource) -> node::GenericResource {
    match r {
        model::GenericResource::Named { kind, value } => node::GenericResource {
            named_resource_spec: Some(node::NamedResourceSpec {
                kind: kind.clone(),
                value: value.clone(),
            }),
            discrete_resource_spec: None,
        },
        model::GenericResource::Discrete { kind, value } => node::GenericResource {
            named_resource_spec: None,
            discrete_resource_spec: Some(node::DiscreteResourceSpec {
                kind: kind.clone(),
                value: clamp(*value),
            }),
        },
    }
}

/// A service's generic reservations (`--generic-resource gpu=1`): amounts
/// by kind, each kind once.
fn reserved_generic(list: &[node::GenericResource]) -> Result<BTreeMap<String, u64>, ApiError> {
    const AT: &str = "TaskTemplate.Resources.Reservations.GenericResources";
    let mut out = BTreeMap::new();
    for r in list {
        let (Some(d), None) = (&r.discrete_resource_spec, &r.named_resource_spec) else {
            return Err(ApiError::bad_request(format!(
                "{AT}: a service reserves amounts of a kind (DiscreteResourceSpec), not one named \
                 resource: write --generic-resource gpu=1, and the node's named GPUs are given out"
            )));
        };
        model::check_generic_kind(&d.kind)
            .map_err(|e| ApiError::bad_request(format!("{AT}: {e}")))?;
        let n = u64::try_from(d.value)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{AT}: {} of {}: reserve at least 1",
                    d.value, d.kind
                ))
            })?;
        if out.insert(d.kind.clone(), n).is_some() {
            return Err(ApiError::bad_request(format!(
                "{AT}: {} is reserved twice: give each kind once, with its total",
                d.kind
            )));
        }
    }
    Ok(out)
}

/// A node as Docker's JSON writes it, with its manager status if
/// `managers` (by node id) has one.
#[must_use]
pub fn node(n: &model::Node, managers: &BTreeMap<String, node::ManagerStatus>) -> wire::Node {
    let manager_status = managers.get(n.meta.id.as_str()).cloned();
    wire::Node {
        id: n.meta.id.as_str().to_owned(),
        version: version(n.meta.version),
        created_at: time(n.meta.created_at),
        updated_at: time(n.meta.updated_at),
        spec: node::NodeSpec {
            name: String::new(),
            labels: n.spec.labels.clone(),
            role: n.spec.role.to_string(),
            availability: n.spec.availability.to_string(),
        },
        description: node::NodeDescription {
            hostname: n.description.hostname.clone(),
            platform: node::Platform {
                architecture: n.description.platform.architecture.clone(),
                os: n.description.platform.os.clone(),
            },
            resources: node::Resources {
                nano_cpus: clamp(n.description.resources.nano_cpus),
                memory_bytes: clamp(n.description.resources.memory_bytes),
                generic_resources: n
                    .description
                    .generic_resources
                    .iter()
                    .map(wire_generic)
                    .collect(),
            },
            engine: node::EngineDescription {
                engine_version: env!("CARGO_PKG_VERSION").into(),
                labels: n.description.engine_labels.clone(),
                plugins: vec![node::PluginDescription {
                    r#type: "Network".into(),
                    name: "overlay".into(),
                }],
            },
            tls_info: wire::TlsInfo::default(),
        },
        status: node::NodeStatus {
            state: n.status.state.to_string(),
            message: n.status.message.clone(),
            addr: n
                .status
                .addr
                .rsplit_once(':')
                .map_or_else(|| n.status.addr.clone(), |(ip, _)| ip.to_owned()),
        },
        manager_status,
    }
}

/// A node spec read from Docker's JSON (`POST /nodes/{id}/update`).
///
/// # Errors
/// A 400 for an unknown role or availability.
pub fn node_spec(
    s: node::NodeSpec,
    current: &model::NodeSpec,
) -> Result<model::NodeSpec, ApiError> {
    let role = match s.role.as_str() {
        "" => current.role,
        "worker" => NodeRole::Worker,
        "manager" => NodeRole::Manager,
        other => {
            return Err(ApiError::bad_request(format!(
                "Role: unknown role {other:?}: use worker or manager"
            )));
        }
    };
    let availability = match s.availability.as_str() {
        "" => current.availability,
        other => other
            .parse::<Availability>()
            .map_err(|e| ApiError::bad_request(format!("Availability: {e}")))?,
    };
    Ok(model::NodeSpec {
        role,
        availability,
        labels: s.labels,
    })
}

/// Docker's name of a node state.
#[must_use]
pub fn node_state(s: NodeState) -> &'static str {
    match s {
        NodeState::Unknown => "unknown",
        NodeState::Ready => "ready",
        NodeState::Down => "down",
        NodeState::Disconnected => "disconnected",
    }
}

// ---- networks ---------------------------------------------------------

fn ipam_configs(n: &model::Network) -> Vec<wire::network::IpamConfig> {
    let gateway = n
        .addresses
        .map(|a| a.gateway)
        .or(n.spec.gateway)
        .map(|g: Ipv4Addr| g.to_string())
        .unwrap_or_default();
    n.subnet()
        .map(|s| wire::network::IpamConfig {
            subnet: s.to_string(),
            gateway,
            ..wire::network::IpamConfig::default()
        })
        .into_iter()
        .collect()
}

fn driver_options(n: &model::Network) -> BTreeMap<String, String> {
    n.addresses
        .map(|a| {
            BTreeMap::from([(
                "com.docker.network.driver.overlay.vxlanid_list".to_owned(),
                a.vni.to_string(),
            )])
        })
        .unwrap_or_default()
}

/// A network as `docker network ls|inspect` reads it.
#[must_use]
pub fn network(n: &model::Network) -> wire::NetworkResource {
    wire::NetworkResource {
        name: n.spec.name.clone(),
        id: n.meta.id.as_str().to_owned(),
        created: time(n.meta.created_at),
        scope: "swarm".into(),
        driver: n.spec.driver.clone(),
        enable_ipv4: true,
        enable_ipv6: false,
        ipam: wire::network::Ipam {
            driver: "default".into(),
            options: None,
            config: ipam_configs(n),
        },
        internal: n.spec.internal,
        attachable: n.spec.attachable,
        ingress: n.spec.ingress,
        config_from: wire::network::ConfigReference::default(),
        config_only: false,
        containers: BTreeMap::new(),
        options: driver_options(n),
        labels: n.spec.labels.clone(),
        peers: Vec::new(),
    }
}

fn swarm_network(n: &model::Network) -> wire::network::SwarmNetwork {
    wire::network::SwarmNetwork {
        id: n.meta.id.as_str().to_owned(),
        version: version(n.meta.version),
        created_at: time(n.meta.created_at),
        updated_at: time(n.meta.updated_at),
        spec: wire::network::SwarmNetworkSpec {
            name: n.spec.name.clone(),
            labels: n.spec.labels.clone(),
            driver_configuration: Some(ws::Driver {
                name: n.spec.driver.clone(),
                options: BTreeMap::new(),
            }),
            ipv6_enabled: false,
            internal: n.spec.internal,
            attachable: n.spec.attachable,
            ingress: n.spec.ingress,
            scope: "swarm".into(),
        },
        driver_state: ws::Driver {
            name: n.spec.driver.clone(),
            options: driver_options(n),
        },
        ipam_options: Some(wire::network::IpamOptions {
            driver: ws::Driver {
                name: "default".into(),
                options: BTreeMap::new(),
            },
            configs: ipam_configs(n),
        }),
    }
}

/// A network spec read from `POST /networks/create`.
///
/// # Errors
/// A 400 for what swarm networks cannot be (not overlay, IPv6, config-only,
/// several pools, a bad subnet).
pub fn network_spec(r: wire::NetworkCreateRequest) -> Result<model::NetworkSpec, ApiError> {
    if r.name.is_empty() {
        return Err(ApiError::bad_request(
            "Name: a network needs a name: docker network create --driver overlay NAME",
        ));
    }
    let driver = if r.driver.is_empty() {
        "overlay".to_owned()
    } else {
        r.driver
    };
    if driver != "overlay" {
        return Err(ApiError::bad_request(format!(
            "Driver: {driver:?} networks are not served by this swarm: use --driver overlay"
        )));
    }
    if !matches!(r.scope.as_str(), "" | "swarm") {
        return Err(ApiError::bad_request(format!(
            "Scope: {:?} is not served: overlay networks are swarm-scoped",
            r.scope
        )));
    }
    if r.enable_ipv6 == Some(true) {
        return Err(unsupported("EnableIPv6"));
    }
    if r.enable_ipv4 == Some(false) {
        return Err(ApiError::bad_request(
            "EnableIPv4: overlay networks need IPv4",
        ));
    }
    if r.config_only
        || r.config_from
            .as_ref()
            .is_some_and(|c| !c.network.is_empty())
    {
        return Err(unsupported("ConfigOnly/ConfigFrom"));
    }
    if !r.options.is_empty() {
        return Err(unsupported("Options (driver options)"));
    }
    let mut subnet = None;
    let mut gateway = None;
    if let Some(ipam) = r.ipam {
        if !matches!(ipam.driver.as_str(), "" | "default") {
            return Err(ApiError::bad_request(format!(
                "IPAM.Driver: {:?} is not served: use default",
                ipam.driver
            )));
        }
        if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(unsupported("IPAM.Options"));
        }
        match ipam.config.as_slice() {
            [] => {}
            [c] => {
                if !c.ip_range.is_empty() || !c.auxiliary_addresses.is_empty() {
                    return Err(unsupported("IPAM.Config.IPRange/AuxiliaryAddresses"));
                }
                if !c.subnet.is_empty() {
                    subnet =
                        Some(c.subnet.parse().map_err(|e| {
                            ApiError::bad_request(format!("IPAM.Config.Subnet: {e}"))
                        })?);
                }
                if !c.gateway.is_empty() {
                    gateway = Some(c.gateway.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "IPAM.Config.Gateway: {:?} is not an IPv4 address",
                            c.gateway
                        ))
                    })?);
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    "IPAM.Config: one subnet per overlay network is served",
                ));
            }
        }
    }
    Ok(model::NetworkSpec {
        name: r.name,
        driver,
        subnet,
        gateway,
        attachable: r.attachable,
        internal: r.internal,
        ingress: r.ingress,
        labels: r.labels,
    })
}

// ---- the cluster ------------------------------------------------------

/// The cluster object as `/swarm` and `/info` write it.
#[must_use]
pub fn cluster(c: &model::Cluster) -> wire::ClusterInfo {
    wire::ClusterInfo {
        id: c.meta.id.as_str().to_owned(),
        version: version(c.meta.version),
        created_at: time(c.meta.created_at),
        updated_at: time(c.meta.updated_at),
        spec: wire::SwarmSpec {
            name: "default".into(),
            orchestration: wire::Orchestration {
                task_history_retention_limit: Some(i64::from(c.spec.task_history_limit)),
            },
            encryption_config: wire::EncryptionConfig {
                auto_lock_managers: c.spec.autolock,
            },
            ..wire::SwarmSpec::default()
        },
        tls_info: wire::TlsInfo {
            trust_root: c
                .root_ca
                .as_ref()
                .map(|ca| ca.cert_pem.clone())
                .unwrap_or_default(),
            ..wire::TlsInfo::default()
        },
        root_rotation_in_progress: false,
        default_addr_pool: c
            .spec
            .default_addr_pool
            .iter()
            .map(ToString::to_string)
            .collect(),
        subnet_size: c.spec.subnet_size.into(),
        data_path_port: c.spec.data_path_port.into(),
    }
}
