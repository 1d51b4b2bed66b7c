//! `swarmctl`: the swarm CLI, with docker's command names and flags. It
//! talks to a manager's control API over mutual TLS with the client
//! certificate a manager writes into `<data-dir>/client`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use swarm_api::tls::Credentials;
use swarm_api::{ControlReply, ControlRequest, ManagerInfo, RemoteControl};
use swarm_core::model::{
    Availability, ConfigSpec, NetworkSpec, Node, NodeRole, NodeState, Object, PlacementPreference,
    SecretSpec, Service, ServiceMode, ServiceSpec, Task, TaskState,
};
use swarm_core::store::State;
use swarm_examples::service_flags::{self, SpecFlags, UpdateFlags};
use swarm_examples::{inspect, table};

#[derive(Parser)]
#[command(name = "swarmctl", about = "Control a swarm cluster", version)]
struct Cli {
    /// The manager to talk to, HOST:PORT.
    #[arg(
        short = 'H',
        long,
        env = "SWARM_HOST",
        default_value = "127.0.0.1:2377",
        global = true
    )]
    host: String,
    /// The directory with the client certificate (ca.pem, cert.pem,
    /// key.pem): a manager writes one into `<data-dir>/client`.
    #[arg(
        long,
        env = "SWARM_CERT_PATH",
        default_value = "/var/lib/swarm/client",
        global = true
    )]
    tls_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Command {
    /// Manage the swarm.
    #[command(subcommand)]
    Swarm(SwarmCmd),
    /// Manage nodes.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Manage services.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Manage secrets.
    #[command(subcommand)]
    Secret(DataCmd),
    /// Manage configs.
    #[command(subcommand)]
    Config(DataCmd),
    /// Manage overlay networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage stacks: services, networks, secrets and configs from a
    /// compose file.
    #[command(subcommand)]
    Stack(StackCmd),
    /// Stream the swarm's events, as `docker events` prints them.
    Events {
        /// Only the events that match: type=service|node|task|network|secret|config,
        /// name=NAME (or id), event=create|update|remove, service=NAME, node=NAME, ...
        /// Repeated keys are alternatives; different keys must all match.
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Replay the events since then: Unix seconds, an RFC 3339 time, or a
        /// duration ago (10m).
        #[arg(long)]
        since: Option<String>,
        /// Stop streaming then (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// `json` prints each event as a JSON object.
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
enum StackCmd {
    /// Deploy a new stack or update an existing one from a compose file
    /// (format 3.x), as `docker stack deploy` does.
    Deploy {
        /// The compose file; `-` reads it from stdin.
        #[arg(short = 'c', long = "compose-file")]
        compose_file: PathBuf,
        /// Remove the stack's services that the file no longer has.
        #[arg(long)]
        prune: bool,
        /// The stack's name.
        name: String,
    },
    /// List stacks.
    Ls,
    /// List a stack's services.
    Services {
        /// The stack's name.
        name: String,
    },
    /// List a stack's tasks.
    Ps {
        /// The stack's name.
        name: String,
    },
    /// Remove stacks: their services, then their secrets, configs and
    /// networks.
    Rm {
        /// The stacks' names.
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Create an overlay network.
    Create {
        /// The driver: overlay, the only one a swarm network has.
        #[arg(short, long, default_value = "overlay")]
        driver: String,
        /// Subnet in CIDR form, e.g. 10.1.0.0/24 (default: one from the
        /// cluster's address pool).
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address inside the subnet (default: its first address).
        #[arg(long)]
        gateway: Option<String>,
        /// Let standalone workloads attach, not only services.
        #[arg(long)]
        attachable: bool,
        /// No route out of the overlay.
        #[arg(long)]
        internal: bool,
        /// Make it the routing mesh's network (the cluster has one).
        #[arg(long)]
        ingress: bool,
        /// Labels, KEY=VALUE.
        #[arg(long)]
        label: Vec<String>,
        /// The network's name.
        name: String,
    },
    /// List networks.
    Ls {
        /// `json` for machine-readable output.
        #[arg(long)]
        format: Option<String>,
    },
    /// Show networks, as docker does.
    Inspect {
        networks: Vec<String>,
        /// A docker template, e.g. '{{json .IPAM.Config}}'.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove networks that no service uses.
    Rm { networks: Vec<String> },
}

#[derive(Subcommand)]
enum SwarmCmd {
    /// Show (or rotate) the join token of a role.
    JoinToken {
        /// `worker` or `manager`.
        role: String,
        /// Replace the token: the old one stops admitting nodes.
        #[arg(long)]
        rotate: bool,
        /// Print the token only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Change the cluster's settings.
    Update {
        /// Turn autolock on or off: `--autolock=true|false`.
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        autolock: Option<bool>,
    },
    /// Show (or rotate) the unlock key of an autolocked swarm.
    UnlockKey {
        /// Replace the key: managers take the new one within a second.
        #[arg(long)]
        rotate: bool,
        /// Print the key only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Unlock a locked manager (the key is read from stdin).
    Unlock,
}

#[derive(Subcommand)]
enum NodeCmd {
    /// List the nodes.
    Ls {
        /// `json` for machine-readable output.
        #[arg(long)]
        format: Option<String>,
    },
    /// The tasks on a node.
    Ps { node: String },
    /// Show a node.
    Inspect {
        node: String,
        /// Human-readable.
        #[arg(long)]
        pretty: bool,
    },
    /// Change a node's availability or labels.
    Update {
        node: String,
        /// active, pause or drain.
        #[arg(long)]
        availability: Option<String>,
        /// Add or change a label, KEY=VALUE.
        #[arg(long = "label-add")]
        label_add: Vec<String>,
        /// Remove a label.
        #[arg(long = "label-rm")]
        label_rm: Vec<String>,
    },
    /// Make nodes managers.
    Promote { nodes: Vec<String> },
    /// Make managers workers.
    Demote { nodes: Vec<String> },
    /// Remove nodes.
    Rm {
        nodes: Vec<String>,
        /// Even if they are up.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ServiceCmd {
    /// Create a service. With the process runtime, IMAGE is the program.
    Create(Box<CreateArgs>),
    /// List services.
    Ls {
        /// `json` for machine-readable output.
        #[arg(long)]
        format: Option<String>,
    },
    /// A service's tasks.
    Ps {
        service: String,
        /// `json` for machine-readable output.
        #[arg(long)]
        format: Option<String>,
    },
    /// Show a service, as docker does.
    Inspect {
        service: String,
        /// Human-readable.
        #[arg(long)]
        pretty: bool,
        /// A docker template, e.g. '{{json .Endpoint.VirtualIPs}}'.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Set replicas: NAME=N ...
    Scale {
        pairs: Vec<String>,
        /// Return at once, without waiting to converge.
        #[arg(short, long)]
        detach: bool,
    },
    /// Update a service: docker's flags, and swarm's canaries and
    /// deadlines. Without --detach, shows the rollout until it ends.
    Update(Box<UpdateArgs>),
    /// Roll a service back to its previous spec (or to a chosen revision).
    Rollback {
        service: String,
        /// The revision to go back to (see `service history`).
        #[arg(long = "to-revision")]
        to_revision: Option<u64>,
        /// Return at once, without waiting for the rollback.
        #[arg(short, long)]
        detach: bool,
        /// Print nothing but errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Promote the canaries of a service's update: the rollout goes on.
    Promote {
        service: String,
        /// Return at once, without waiting for the rollout.
        #[arg(short, long)]
        detach: bool,
    },
    /// The specs a service had, with their revisions.
    History { service: String },
    /// Remove services.
    Rm { services: Vec<String> },
    /// A service's logs, from every task.
    Logs {
        service: String,
        /// Keep streaming new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines of each task.
        #[arg(long)]
        tail: Option<usize>,
        /// Show each line's timestamp.
        #[arg(short, long)]
        timestamps: bool,
    },
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The service name.
    #[arg(long)]
    name: Option<String>,
    /// Number of tasks.
    #[arg(long)]
    replicas: Option<u64>,
    /// `replicated` or `global`.
    #[arg(long, default_value = "replicated")]
    mode: String,
    /// Placement constraints, e.g. node.labels.type==web.
    #[arg(long)]
    constraint: Vec<String>,
    /// Placement preferences, e.g. spread=node.labels.zone.
    #[arg(long = "placement-pref")]
    placement_pref: Vec<String>,
    /// Published ports: PUBLISHED:TARGET[/udp] (routing mesh), or
    /// published=P,target=T,mode=host.
    #[arg(short, long)]
    publish: Vec<String>,
    /// Mounts: type=bind|volume|tmpfs,source=S,target=T[,readonly].
    #[arg(long)]
    mount: Vec<String>,
    /// Environment variables, KEY=VALUE.
    #[arg(short, long)]
    env: Vec<String>,
    /// Service labels, KEY=VALUE.
    #[arg(short, long)]
    label: Vec<String>,
    /// Container labels, KEY=VALUE.
    #[arg(long = "container-label")]
    container_label: Vec<String>,
    /// Secrets to give the tasks: NAME, or
    /// source=NAME,target=FILE,uid=0,gid=0,mode=0400.
    #[arg(long)]
    secret: Vec<String>,
    /// Configs to give the tasks, with the same fields.
    #[arg(long)]
    config: Vec<String>,
    #[command(flatten)]
    spec: SpecFlags,
    #[command(flatten)]
    container: service_flags::ContainerFlags,
    /// Networks to attach to: NAME, or name=NAME,alias=ALIAS (repeatable).
    #[arg(long)]
    network: Vec<String>,
    /// How the service's name resolves: vip (one virtual IP balanced over
    /// the tasks) or dnsrr (the tasks' own addresses).
    #[arg(long = "endpoint-mode", default_value = "vip")]
    endpoint_mode: String,
    /// Return at once, without waiting to converge.
    #[arg(short, long)]
    detach: bool,
    /// The image (with the process runtime: the program).
    image: String,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// The service to update.
    service: String,
    #[command(flatten)]
    update: UpdateFlags,
    #[command(flatten)]
    spec: SpecFlags,
    /// vip or dnsrr.
    #[arg(long = "endpoint-mode")]
    endpoint_mode: Option<String>,
    /// Roll back to the previous spec (as `service rollback`).
    #[arg(long)]
    rollback: bool,
    /// Return at once, without waiting for the rollout.
    #[arg(short, long)]
    detach: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum DataCmd {
    /// Create one from a file (`-` for stdin).
    Create { name: String, file: PathBuf },
    /// List them (never their data).
    Ls,
    /// Show them as docker does (never a secret's data).
    Inspect { names: Vec<String> },
    /// Remove them.
    Rm { names: Vec<String> },
}

struct Ctl {
    remote: RemoteControl,
    creds: Credentials,
    host: String,
}

impl Ctl {
    fn connect(cli: &Cli) -> anyhow::Result<Self> {
        let creds = Credentials::load(&cli.tls_dir).map_err(|e| {
            anyhow!(
                "{e}.\nswarmctl needs a client certificate: pass --tls-dir (or set SWARM_CERT_PATH) \
                 to a manager's <data-dir>/client"
            )
        })?;
        let endpoint = creds.endpoint(&cli.host).map_err(|e| anyhow!(e))?;
        Ok(Self {
            remote: RemoteControl::with_channel(endpoint.connect_lazy()),
            creds,
            host: cli.host.clone(),
        })
    }

    async fn call(&self, req: ControlRequest) -> anyhow::Result<ControlReply> {
        Ok(self.remote.call(req).await?)
    }

    async fn nodes(&self) -> anyhow::Result<Vec<Arc<Node>>> {
        Ok(self.remote.nodes().await?)
    }

    async fn state(&self) -> anyhow::Result<State> {
        self.state_of(|_| true).await
    }

    /// [`Ctl::state`] with only the services `keep` keeps (and their
    /// tasks).
    async fn state_of(&self, keep: impl Fn(&Service) -> bool) -> anyhow::Result<State> {
        let mut objects: Vec<Object> = Vec::new();
        objects.extend(self.nodes().await?.into_iter().map(Object::Node));
        let mut services = self.remote.services().await?;
        services.retain(|s| keep(s));
        for s in &services {
            for t in self.remote.service_tasks(&s.meta.id).await? {
                objects.push(Object::Task(t));
            }
        }
        objects.extend(services.into_iter().map(Object::Service));
        // A read-only view for the tables, at the newest version seen.
        let index = objects.iter().map(|o| o.meta().version).max().unwrap_or(0);
        Ok(State::restore(index, objects)?)
    }
}

fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn node_role(s: &str) -> anyhow::Result<NodeRole> {
    match s {
        "worker" => Ok(NodeRole::Worker),
        "manager" => Ok(NodeRole::Manager),
        other => bail!("unknown role {other:?}: say worker or manager"),
    }
}

fn key_value(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| anyhow!("{what} {s:?} is not KEY=VALUE"))
}

fn spec_of(a: CreateArgs) -> anyhow::Result<(ServiceSpec, bool)> {
    let name = a.name.unwrap_or_else(|| {
        let id = swarm_core::Id::generate();
        format!("svc-{}", &id.short()[..6.min(id.short().len())])
    });
    let mut command = vec![a.image];
    command.extend(a.args);
    let mut spec = ServiceSpec::replicated(name, 1, command);
    spec.mode = match (a.mode.as_str(), a.replicas) {
        ("global", None) => ServiceMode::Global,
        ("global", Some(_)) => bail!("--replicas cannot be used with --mode global"),
        ("replicated", r) => ServiceMode::Replicated {
            replicas: r.unwrap_or(1),
        },
        (other, _) => bail!("unknown mode {other:?}: use replicated or global"),
    };
    spec.task.env = a.env;
    spec.task.placement.constraints = a.constraint;
    for p in a.placement_pref {
        let (kind, descriptor) = key_value(&p, "--placement-pref")?;
        if kind != "spread" {
            bail!("unknown placement preference {kind:?}: use spread=node.labels.KEY");
        }
        spec.task
            .placement
            .preferences
            .push(PlacementPreference::Spread { descriptor });
    }
    for p in a.publish {
        spec.endpoint.ports.push(p.parse()?);
    }
    for m in a.mount {
        spec.task.mounts.push(m.parse()?);
    }
    a.spec.apply(&mut spec)?;
    a.container.apply(&mut spec.task)?;
    for kv in a.label {
        let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
        spec.labels.insert(k.to_owned(), v.to_owned());
    }
    for kv in a.container_label {
        let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
        spec.task.labels.insert(k.to_owned(), v.to_owned());
    }
    for n in a.network {
        spec.task
            .networks
            .push(service_flags::network_attachment(&n)?);
    }
    spec.endpoint.mode = a.endpoint_mode.parse()?;
    for s in a.secret {
        spec.task.secrets.push(s.parse()?);
    }
    for c in a.config {
        spec.task.configs.push(c.parse()?);
    }
    Ok((spec, a.detach))
}

/// `service update`: reads the service, applies the flags, and writes it
/// at the version read (a service changed meanwhile is read again).
async fn update(ctl: &Ctl, a: UpdateArgs) -> anyhow::Result<()> {
    if a.rollback {
        let s = ctl.remote.rollback_service(&a.service, None).await?;
        if !a.quiet {
            println!("{}", a.service);
        }
        if !a.detach {
            watch_rollout(ctl, &s, true, a.quiet).await?;
        }
        return Ok(());
    }
    let mut tries = 0;
    let updated = loop {
        let current = ctl.remote.service(&a.service).await?;
        let mut spec = current.spec.clone();
        a.update.apply(&mut spec)?;
        a.spec.apply(&mut spec)?;
        if let Some(m) = &a.endpoint_mode {
            spec.endpoint.mode = m.parse()?;
        }
        match ctl
            .remote
            .update_service(&current.meta.id, spec, Some(current.meta.version))
            .await
        {
            Ok(s) => break s,
            Err(swarm_core::control::ControlError::Refused(m))
                if m.starts_with("update out of sequence") && tries < 5 =>
            {
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if !a.quiet {
        println!("{}", a.service);
    }
    if a.detach {
        return Ok(());
    }
    let rolls = updated
        .update_status
        .as_ref()
        .is_some_and(|u| u.state.is_rolling() && u.completed_at.is_none());
    if rolls {
        watch_rollout(ctl, &updated, false, a.quiet).await
    } else {
        converge(ctl, &updated.spec.name).await
    }
}

/// Shows a rollout as docker does, a line per change, until it completes,
/// pauses or rolls back; the last two are errors.
async fn watch_rollout(
    ctl: &Ctl,
    started: &Service,
    rollback: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let name = started.spec.name.clone();
    let mut shown: Vec<String> = Vec::new();
    let mut message = String::new();
    loop {
        let service = ctl.remote.service(&started.meta.id).await?;
        let tasks = ctl.remote.service_tasks(&started.meta.id).await?;
        if let Some(u) = &service.update_status
            && u.message != message
        {
            message.clone_from(&u.message);
            if !quiet && u.state.is_rolling() {
                let what = if u.state.is_rollback() {
                    "rollback"
                } else {
                    "update"
                };
                println!("{what}: {message}");
            }
        }
        let p = service_flags::progress(&service, &tasks, rollback);
        if !quiet {
            for line in &p.lines {
                if !shown.contains(line) {
                    println!("{line}");
                }
            }
        }
        shown = p.lines;
        match p.done {
            Some(Ok(line)) => {
                if !quiet {
                    println!("{line}");
                }
                return Ok(());
            }
            Some(Err(e)) => bail!("{e}: see `swarmctl service ps {name}`"),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the service runs what it wants, showing progress.
async fn converge(ctl: &Ctl, name: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let service = match ctl
            .call(ControlRequest::InspectService(name.into()))
            .await?
        {
            ControlReply::Service(s) => s,
            other => bail!("the manager answered out of turn: {other:?}"),
        };
        if let Some(e) = &service.endpoint.error {
            bail!("service {name} cannot start: {e}");
        }
        let tasks = ctl.remote.service_tasks(name).await?;
        let wanted: Vec<&Arc<Task>> = tasks
            .iter()
            .filter(|t| t.desired_state == TaskState::Running)
            .collect();
        let want = match service.spec.mode {
            ServiceMode::Replicated { replicas } => usize::try_from(replicas).unwrap_or(usize::MAX),
            ServiceMode::Global => wanted.len(),
        };
        let running = wanted
            .iter()
            .filter(|t| t.status.state == TaskState::Running)
            .count();
        let stuck = wanted
            .iter()
            .filter(|t| t.status.state <= TaskState::Pending)
            .find_map(|t| t.status.err.as_deref());
        let line = match stuck {
            Some(e) => format!("{name}: {running}/{want} running; waiting: {e}"),
            None => format!("{name}: {running}/{want} running"),
        };
        if line != last {
            println!("{line}");
            last = line;
        }
        // Tasks being shut down do not count: one on a lost node may
        // never report its end.
        if running == want && wanted.len() == want {
            println!("verify: Service {name} converged");
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "{name} has not converged after 2 minutes ({running}/{want} running): see `swarmctl service ps {name}`"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn node_table(nodes: &[Arc<Node>], managers: &[ManagerInfo]) -> String {
    let mut rows = Vec::new();
    let mut list: Vec<_> = nodes.iter().collect();
    list.sort_by(|a, b| a.display_name().cmp(b.display_name()));
    for n in list {
        let status = match n.status.state {
            NodeState::Ready => "Ready",
            NodeState::Down => "Down",
            NodeState::Disconnected => "Disconnected",
            NodeState::Unknown => "Unknown",
        };
        let availability = match n.spec.availability {
            Availability::Active => "Active",
            Availability::Pause => "Pause",
            Availability::Drain => "Drain",
        };
        let manager = managers
            .iter()
            .find(|m| m.node_id == n.meta.id)
            .map_or("", |m| {
                if m.leader {
                    "Leader"
                } else if m.reachable {
                    "Reachable"
                } else {
                    "Unreachable"
                }
            });
        rows.push(vec![
            n.meta.id.as_str().to_owned(),
            n.display_name().to_owned(),
            status.to_owned(),
            availability.to_owned(),
            manager.to_owned(),
        ]);
    }
    table::render(
        &["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"],
        &rows,
    )
}

async fn node_cmd(ctl: &Ctl, cmd: NodeCmd) -> anyhow::Result<()> {
    match cmd {
        NodeCmd::Ls { format } => {
            let nodes = ctl.nodes().await?;
            let managers = match ctl.call(ControlRequest::Managers).await? {
                ControlReply::Managers(m) => m,
                _ => Vec::new(),
            };
            if format.as_deref() == Some("json") {
                return json(&serde_json::json!({ "nodes": nodes, "managers": managers }));
            }
            print!("{}", node_table(&nodes, &managers));
        }
        NodeCmd::Ps { node } => {
            let state = ctl.state().await?;
            let n = ctl.call(ControlRequest::InspectNode(node.clone())).await?;
            let ControlReply::Node(n) = n else {
                bail!("no such node: {node}")
            };
            for s in state.services() {
                let text = table::tasks(&state, &s.spec.name);
                let mut lines = text.lines();
                let header = lines.next().unwrap_or_default();
                let mine: Vec<&str> = lines.filter(|l| l.contains(n.display_name())).collect();
                if !mine.is_empty() {
                    println!("{header}");
                    for l in mine {
                        println!("{l}");
                    }
                }
            }
        }
        NodeCmd::Inspect { node, pretty } => {
            let ControlReply::Node(n) = ctl.call(ControlRequest::InspectNode(node)).await? else {
                bail!("the manager answered out of turn")
            };
            if pretty {
                println!("ID:\t\t{}", n.meta.id);
                println!("Hostname:\t{}", n.display_name());
                println!("Role:\t\t{:?}", n.spec.role);
                println!("Availability:\t{:?}", n.spec.availability);
                println!("Status:\t\t{:?} {}", n.status.state, n.status.message);
                println!("Address:\t{}", n.status.addr);
                for (k, v) in &n.spec.labels {
                    println!("Label:\t\t{k}={v}");
                }
            } else {
                json(&n)?;
            }
        }
        NodeCmd::Update {
            node,
            availability,
            label_add,
            label_rm,
        } => {
            let ControlReply::Node(n) = ctl.call(ControlRequest::InspectNode(node.clone())).await?
            else {
                bail!("the manager answered out of turn")
            };
            let mut spec = n.spec.clone();
            if let Some(a) = availability {
                spec.availability = match a.as_str() {
                    "active" => Availability::Active,
                    "pause" => Availability::Pause,
                    "drain" => Availability::Drain,
                    other => bail!("unknown availability {other:?}: use active, pause or drain"),
                };
            }
            for l in label_add {
                let (k, v) = key_value(&l, "--label-add")?;
                spec.labels.insert(k, v);
            }
            for k in label_rm {
                if spec.labels.remove(&k).is_none() {
                    bail!("node {node} has no label {k:?}");
                }
            }
            ctl.call(ControlRequest::UpdateNode {
                node: node.clone(),
                spec,
            })
            .await?;
            println!("{node}");
        }
        NodeCmd::Promote { nodes } | NodeCmd::Demote { nodes } if nodes.is_empty() => {
            bail!("name at least one node")
        }
        NodeCmd::Promote { nodes } => set_role(ctl, nodes, NodeRole::Manager).await?,
        NodeCmd::Demote { nodes } => set_role(ctl, nodes, NodeRole::Worker).await?,
        NodeCmd::Rm { nodes, force } => {
            for node in nodes {
                ctl.call(ControlRequest::RemoveNode {
                    node: node.clone(),
                    force,
                })
                .await?;
                println!("{node}");
            }
        }
    }
    Ok(())
}

async fn set_role(ctl: &Ctl, nodes: Vec<String>, role: NodeRole) -> anyhow::Result<()> {
    for node in nodes {
        let ControlReply::Node(n) = ctl.call(ControlRequest::InspectNode(node.clone())).await?
        else {
            bail!("the manager answered out of turn")
        };
        let mut spec = n.spec.clone();
        spec.role = role;
        ctl.call(ControlRequest::UpdateNode {
            node: node.clone(),
            spec,
        })
        .await?;
        println!(
            "Node {node} {} in the swarm.",
            match role {
                NodeRole::Manager => "promoted to a manager",
                NodeRole::Worker => "demoted",
            }
        );
    }
    Ok(())
}

async fn network_cmd(ctl: &Ctl, cmd: NetworkCmd) -> anyhow::Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            attachable,
            internal,
            ingress,
            label,
            name,
        } => {
            let mut spec = NetworkSpec::overlay(name);
            spec.driver = driver;
            spec.subnet = subnet
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| anyhow!("--subnet: {e}"))?;
            spec.gateway = gateway
                .map(|g| {
                    g.parse().map_err(|_| {
                        anyhow!("--gateway {g:?} is not an IPv4 address, e.g. 10.1.0.1")
                    })
                })
                .transpose()?;
            spec.attachable = attachable;
            spec.internal = internal;
            spec.ingress = ingress;
            for l in label {
                let (k, v) = key_value(&l, "--label")?;
                spec.labels.insert(k, v);
            }
            match ctl.call(ControlRequest::CreateNetwork(spec)).await? {
                ControlReply::Network(n) => println!("{}", n.meta.id),
                other => bail!("the manager answered out of turn: {other:?}"),
            }
        }
        NetworkCmd::Ls { format } => {
            let ControlReply::Networks(list) = ctl.call(ControlRequest::ListNetworks).await? else {
                bail!("the manager answered out of turn")
            };
            if format.as_deref() == Some("json") {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|n| {
                    let driver = if n.spec.driver.is_empty() {
                        "overlay"
                    } else {
                        &n.spec.driver
                    };
                    vec![
                        n.meta.id.short().to_owned(),
                        n.spec.name.clone(),
                        driver.to_owned(),
                        "swarm".to_owned(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
            );
        }
        NetworkCmd::Inspect { networks, format } => {
            if networks.is_empty() {
                bail!("name at least one network");
            }
            let mut views = Vec::new();
            for n in networks {
                let ControlReply::Network(n) = ctl.call(ControlRequest::InspectNetwork(n)).await?
                else {
                    bail!("the manager answered out of turn")
                };
                views.push(inspect::network(&n));
            }
            match format {
                Some(f) => {
                    for v in &views {
                        println!("{}", inspect::format(&f, v).map_err(|e| anyhow!(e))?);
                    }
                }
                None => json(&views)?,
            }
        }
        NetworkCmd::Rm { networks } => {
            if networks.is_empty() {
                bail!("name at least one network");
            }
            let mut failed = false;
            for n in networks {
                match ctl.call(ControlRequest::RemoveNetwork(n.clone())).await {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some networks were not removed");
            }
        }
    }
    Ok(())
}

async fn service_cmd(ctl: &Ctl, cmd: ServiceCmd) -> anyhow::Result<()> {
    match cmd {
        ServiceCmd::Create(args) => {
            let (spec, detach) = spec_of(*args)?;
            let s = ctl.remote.create_service(spec).await?;
            println!("{}", s.meta.id);
            if !detach {
                converge(ctl, &s.spec.name).await?;
            }
        }
        ServiceCmd::Ls { format } => {
            if format.as_deref() == Some("json") {
                return json(&ctl.remote.services().await?);
            }
            print!("{}", table::services(&ctl.state().await?));
        }
        ServiceCmd::Ps { service, format } => {
            if format.as_deref() == Some("json") {
                return json(&ctl.remote.service_tasks(&service).await?);
            }
            // Refuse an unknown service with the manager's sentence.
            ctl.call(ControlRequest::InspectService(service.clone()))
                .await?;
            print!("{}", table::tasks(&ctl.state().await?, &service));
        }
        ServiceCmd::Inspect {
            service,
            pretty,
            format,
        } => {
            let ControlReply::Service(s) =
                ctl.call(ControlRequest::InspectService(service)).await?
            else {
                bail!("the manager answered out of turn")
            };
            let view = inspect::service(&s);
            match format {
                _ if pretty => pretty_service(&s),
                Some(f) => println!("{}", inspect::format(&f, &view).map_err(|e| anyhow!(e))?),
                None => json(&[view])?,
            }
        }
        ServiceCmd::Scale { pairs, detach } => {
            if pairs.is_empty() {
                bail!("name at least one NAME=REPLICAS");
            }
            let mut names = Vec::new();
            for p in pairs {
                let (name, n) = key_value(&p, "scale")?;
                let n: u64 = n
                    .parse()
                    .map_err(|_| anyhow!("{p:?}: {n:?} is not a number of replicas"))?;
                ctl.remote.scale(&name, n).await?;
                println!("{name} scaled to {n}");
                names.push(name);
            }
            if !detach {
                for name in names {
                    converge(ctl, &name).await?;
                }
            }
        }
        ServiceCmd::Logs {
            service,
            follow,
            tail,
            timestamps,
        } => logs(ctl, service, follow, tail, timestamps).await?,
        ServiceCmd::Update(args) => update(ctl, *args).await?,
        ServiceCmd::Rollback {
            service,
            to_revision,
            detach,
            quiet,
        } => {
            let s = ctl.remote.rollback_service(&service, to_revision).await?;
            if !quiet {
                println!("{service}");
            }
            if !detach {
                watch_rollout(ctl, &s, true, quiet).await?;
            }
        }
        ServiceCmd::Promote { service, detach } => {
            let s = ctl.remote.promote_service(&service).await?;
            println!("{service}");
            if !detach {
                watch_rollout(ctl, &s, false, false).await?;
            }
        }
        ServiceCmd::History { service } => {
            let ControlReply::Service(s) =
                ctl.call(ControlRequest::InspectService(service)).await?
            else {
                bail!("the manager answered out of turn")
            };
            print!("{}", table::history(&s));
        }
        ServiceCmd::Rm { services } => {
            for s in services {
                ctl.remote.remove_service(&s).await?;
                println!("{s}");
            }
        }
    }
    Ok(())
}

/// Prints a service's logs, stdout lines on stdout and stderr lines on
/// stderr, as docker does; a follower names the leader, which is asked
/// instead.
async fn logs(
    ctl: &Ctl,
    service: String,
    follow: bool,
    tail: Option<usize>,
    timestamps: bool,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use swarm_api::logs::{LogItem, ServiceLogsRequest};
    let request = ServiceLogsRequest {
        service,
        follow,
        tail,
    };
    let mut stream = swarm_examples::logs::service_logs(&ctl.creds, &ctl.host, request).await?;
    while let Some(item) = stream.next().await {
        match item {
            LogItem::Line {
                task, node, line, ..
            } => {
                let stamp = if timestamps {
                    format!("{} ", swarm_examples::table::rfc3339(line.timestamp))
                } else {
                    String::new()
                };
                let text = format!("{stamp}{task}@{node}    | {}", line.line);
                match line.source {
                    swarm_core::runtime::LogSource::Stdout => println!("{text}"),
                    swarm_core::runtime::LogSource::Stderr => eprintln!("{text}"),
                }
            }
            LogItem::Warning(w) => eprintln!("warning: {w}"),
        }
    }
    Ok(())
}

fn pretty_service(s: &Service) {
    println!("ID:\t\t{}", s.meta.id);
    println!("Name:\t\t{}", s.spec.name);
    match s.spec.mode {
        ServiceMode::Replicated { replicas } => {
            println!("Mode:\t\tReplicated\n Replicas:\t{replicas}");
        }
        ServiceMode::Global => println!("Mode:\t\tGlobal"),
    }
    if let Some(u) = &s.update_status {
        println!("UpdateStatus:");
        println!(" State:\t\t{}", u.state);
        println!(" Started:\t{}", table::rfc3339(u.started_at));
        if let Some(c) = u.completed_at {
            println!(" Completed:\t{}", table::rfc3339(c));
        }
        println!(" Message:\t{}", u.message);
    }
    let go = swarm_core::manager::orchestrator::update::go_duration;
    for (title, c) in [
        ("UpdateConfig", &s.spec.update),
        ("RollbackConfig", &s.spec.rollback),
    ] {
        println!("{title}:");
        println!(" Parallelism:\t{}", c.parallelism);
        if !c.delay.is_zero() {
            println!(" Delay:\t\t{}", go(c.delay));
        }
        println!(
            " On failure:\t{}",
            format!("{:?}", c.failure_action).to_lowercase()
        );
        println!(" Monitoring Period: {}", go(c.monitor));
        println!(" Max failure ratio: {}", c.max_failure_ratio);
        println!(
            " Update order:      {}",
            match c.order {
                swarm_core::model::UpdateOrder::StopFirst => "stop-first",
                swarm_core::model::UpdateOrder::StartFirst => "start-first",
            }
        );
        println!(" Start deadline:    {}", go(c.start_deadline));
        println!(" Progress deadline: {}", go(c.progress_deadline));
        if c.canary > 0 {
            println!(
                " Canaries:\t{}{}",
                c.canary,
                if c.auto_promote {
                    " (promoted after the monitoring period)"
                } else {
                    ""
                }
            );
        }
    }
    println!("Revision:\t{}", s.revision());
    println!("Image:\t\t{}", s.spec.task.image);
    if !s.spec.task.args.is_empty() {
        println!("Args:\t\t{}", s.spec.task.args.join(" "));
    }
    for c in &s.spec.task.placement.constraints {
        println!("Constraint:\t{c}");
    }
    for p in &s.spec.endpoint.ports {
        println!("Port:\t\t{}:{}", p.published_port, p.target_port);
    }
}

async fn data_cmd(ctl: &Ctl, cmd: DataCmd, secret: bool) -> anyhow::Result<()> {
    match cmd {
        DataCmd::Create { name, file } => {
            let data = if file.as_os_str() == "-" {
                use std::io::Read as _;
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf)?;
                buf
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let req = if secret {
                ControlRequest::CreateSecret(SecretSpec {
                    name,
                    data,
                    labels: BTreeMap::new(),
                })
            } else {
                ControlRequest::CreateConfig(ConfigSpec {
                    name,
                    data,
                    labels: BTreeMap::new(),
                })
            };
            match ctl.call(req).await? {
                ControlReply::Secret(s) => println!("{}", s.meta.id),
                ControlReply::Config(c) => println!("{}", c.meta.id),
                other => bail!("the manager answered out of turn: {other:?}"),
            }
        }
        DataCmd::Ls => {
            let rows: Vec<Vec<String>> = match ctl
                .call(if secret {
                    ControlRequest::ListSecrets
                } else {
                    ControlRequest::ListConfigs
                })
                .await?
            {
                ControlReply::Secrets(list) => list
                    .iter()
                    .map(|s| vec![s.meta.id.as_str().to_owned(), s.spec.name.clone()])
                    .collect(),
                ControlReply::Configs(list) => list
                    .iter()
                    .map(|c| vec![c.meta.id.as_str().to_owned(), c.spec.name.clone()])
                    .collect(),
                other => bail!("the manager answered out of turn: {other:?}"),
            };
            print!("{}", table::render(&["ID", "NAME"], &rows));
        }
        DataCmd::Inspect { names } => {
            let reply = ctl
                .call(if secret {
                    ControlRequest::ListSecrets
                } else {
                    ControlRequest::ListConfigs
                })
                .await?;
            let view =
                |meta: &swarm_core::model::Meta, name: &str, labels: &BTreeMap<String, String>| {
                    let v = serde_json::json!({
                        "ID": meta.id.as_str(),
                        "Version": { "Index": meta.version },
                        "CreatedAt": table::rfc3339(meta.created_at),
                        "UpdatedAt": table::rfc3339(meta.updated_at),
                        "Spec": { "Name": name, "Labels": labels },
                    });
                    (meta.id.to_string(), name.to_owned(), v)
                };
            let all: Vec<(String, String, serde_json::Value)> = match reply {
                ControlReply::Secrets(list) => list
                    .iter()
                    .map(|s| view(&s.meta, &s.spec.name, &s.spec.labels))
                    .collect(),
                ControlReply::Configs(list) => list
                    .iter()
                    .map(|c| view(&c.meta, &c.spec.name, &c.spec.labels))
                    .collect(),
                other => bail!("the manager answered out of turn: {other:?}"),
            };
            let mut out = Vec::new();
            for n in &names {
                match all.iter().find(|(id, name, _)| name == n || id == n) {
                    Some((_, _, v)) => out.push(v.clone()),
                    None => bail!("no such {}: {n}", if secret { "secret" } else { "config" }),
                }
            }
            json(&out)?;
        }
        DataCmd::Rm { names } => {
            for n in names {
                ctl.call(if secret {
                    ControlRequest::RemoveSecret(n.clone())
                } else {
                    ControlRequest::RemoveConfig(n.clone())
                })
                .await?;
                println!("{n}");
            }
        }
    }
    Ok(())
}

async fn events_cmd(
    ctl: &Ctl,
    filter: &[String],
    since: Option<String>,
    until: Option<String>,
    format: Option<String>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use swarm_examples::events::{Format, line, parse_time};
    let format = Format::parse(format.as_deref())?;
    let filter = swarm_core::events::EventFilter::parse(filter)?;
    let now = std::time::SystemTime::now();
    let since = since.map(|v| parse_time("since", &v, now)).transpose()?;
    let until = until.map(|v| parse_time("until", &v, now)).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && u < s
    {
        bail!("--until is before --since: nothing could be shown");
    }
    let mut events = ctl
        .remote
        .events(swarm_api::EventsRequest {
            since,
            until,
            filter,
        })
        .await?;
    let mut out = std::io::stdout().lock();
    while let Some(m) = futures::StreamExt::next(&mut events).await {
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(out, "{}", line(&m, format))
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
    // The stream ends at --until; before it, the manager ended it.
    // (Leeway for the manager's clock, which times the end.)
    if until.is_none_or(|u| std::time::SystemTime::now() + Duration::from_secs(5) < u) {
        bail!(
            "the manager ended the event stream (it stopped, lost its store, or this client fell \
             too far behind): run again, with --since, to go on"
        );
    }
    Ok(())
}

async fn main_inner(cli: Cli) -> anyhow::Result<()> {
    let ctl = Ctl::connect(&cli)?;
    match cli.command {
        Command::Swarm(SwarmCmd::JoinToken {
            role,
            rotate,
            quiet,
        }) => {
            let r = node_role(&role)?;
            let ControlReply::Token(token) = ctl
                .call(ControlRequest::JoinToken { role: r, rotate })
                .await?
            else {
                bail!("the manager answered out of turn")
            };
            if quiet {
                println!("{token}");
            } else {
                if rotate {
                    println!("Successfully rotated {role} join token.\n");
                }
                println!(
                    "To add a {role} to this swarm, run the following command:\n\n    \
                     swarmd join --token {token} {}\n",
                    cli.host
                );
            }
        }
        Command::Swarm(SwarmCmd::Update { autolock }) => {
            let Some(on) = autolock else {
                bail!("nothing to update: give e.g. --autolock=true");
            };
            let ControlReply::Token(key) = ctl.call(ControlRequest::SetAutolock(on)).await? else {
                bail!("the manager answered out of turn")
            };
            println!("Swarm updated.");
            if on {
                println!("{}", swarm_examples::unlock_key_text(&key));
            }
        }
        Command::Swarm(SwarmCmd::UnlockKey { rotate, quiet }) => {
            let ControlReply::Token(key) = ctl.call(ControlRequest::UnlockKey { rotate }).await?
            else {
                bail!("the manager answered out of turn")
            };
            if quiet {
                println!("{key}");
            } else {
                if rotate {
                    println!("Successfully rotated manager unlock key.\n");
                }
                println!("{}", swarm_examples::unlock_key_text(&key));
            }
        }
        Command::Swarm(SwarmCmd::Unlock) => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("Please enter unlock key: ");
            }
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            ctl.call(ControlRequest::Unlock(key.trim().to_owned()))
                .await?;
        }
        Command::Node(cmd) => node_cmd(&ctl, cmd).await?,
        Command::Service(cmd) => service_cmd(&ctl, cmd).await?,
        Command::Secret(cmd) => data_cmd(&ctl, cmd, true).await?,
        Command::Config(cmd) => data_cmd(&ctl, cmd, false).await?,
        Command::Network(cmd) => network_cmd(&ctl, cmd).await?,
        Command::Stack(cmd) => stack_cmd(&ctl, cmd).await?,
        Command::Events {
            filter,
            since,
            until,
            format,
        } => events_cmd(&ctl, &filter, since, until, format).await?,
    }
    Ok(())
}

fn in_stack(labels: &BTreeMap<String, String>, stack: &str) -> bool {
    labels.get(swarm_stack::NAMESPACE_LABEL).map(String::as_str) == Some(stack)
}

/// What the cluster has, for a stack's plan.
async fn current(ctl: &Ctl) -> anyhow::Result<swarm_stack::Current> {
    let mut current = swarm_stack::Current::default();
    for s in ctl.remote.services().await? {
        current.services.insert(s.spec.name.clone(), s.spec.clone());
    }
    let ControlReply::Networks(networks) = ctl.call(ControlRequest::ListNetworks).await? else {
        bail!("the manager answered out of turn")
    };
    current.networks = networks.iter().map(|n| n.spec.name.clone()).collect();
    let ControlReply::Secrets(secrets) = ctl.call(ControlRequest::ListSecrets).await? else {
        bail!("the manager answered out of turn")
    };
    current.secrets = secrets.iter().map(|s| s.spec.name.clone()).collect();
    let ControlReply::Configs(configs) = ctl.call(ControlRequest::ListConfigs).await? else {
        bail!("the manager answered out of turn")
    };
    current.configs = configs.iter().map(|c| c.spec.name.clone()).collect();
    Ok(current)
}

async fn stack_cmd(ctl: &Ctl, cmd: StackCmd) -> anyhow::Result<()> {
    use swarm_stack::{Action, Stack};
    match cmd {
        StackCmd::Deploy {
            compose_file,
            prune,
            name,
        } => {
            let (text, dir) = if compose_file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                (text, std::env::current_dir()?)
            } else {
                let text = std::fs::read_to_string(&compose_file)
                    .with_context(|| format!("--compose-file {}", compose_file.display()))?;
                // Absolute, so that relative bind mounts are too.
                let dir = compose_file
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(std::env::current_dir, std::path::absolute)?;
                (text, dir)
            };
            let stack = Stack::from_compose(&name, &text, &dir, &|v| std::env::var(v).ok())?;
            for w in &stack.warnings {
                eprintln!("{w}");
            }
            let plan = stack.plan(&current(ctl).await?, prune)?;
            for action in plan {
                match action {
                    Action::CreateNetwork(spec) => {
                        println!("Creating network {}", spec.name);
                        ctl.call(ControlRequest::CreateNetwork(spec)).await?;
                    }
                    Action::CreateSecret(spec) => {
                        println!("Creating secret {}", spec.name);
                        ctl.remote.create_secret(spec).await?;
                    }
                    Action::CreateConfig(spec) => {
                        println!("Creating config {}", spec.name);
                        ctl.call(ControlRequest::CreateConfig(spec)).await?;
                    }
                    // Silent, as docker's: the manager refuses new data.
                    Action::UpdateSecret(spec) => {
                        let name = spec.name.clone();
                        ctl.call(ControlRequest::UpdateSecret {
                            secret: name.clone(),
                            spec,
                        })
                        .await
                        .with_context(|| format!("failed to update secret {name}"))?;
                    }
                    Action::UpdateConfig(spec) => {
                        let name = spec.name.clone();
                        ctl.call(ControlRequest::UpdateConfig {
                            config: name.clone(),
                            spec,
                        })
                        .await
                        .with_context(|| format!("failed to update config {name}"))?;
                    }
                    Action::CreateService(spec) => {
                        println!("Creating service {}", spec.name);
                        ctl.remote.create_service(spec).await?;
                    }
                    Action::UpdateService(spec) => {
                        let now = ctl.remote.service(&spec.name).await?;
                        println!("Updating service {} (id: {})", spec.name, now.meta.id);
                        ctl.remote
                            .update_service(&spec.name, spec.clone(), Some(now.meta.version))
                            .await?;
                    }
                    Action::RemoveService(service) => {
                        println!("Removing service {service}");
                        ctl.remote.remove_service(&service).await?;
                    }
                }
            }
        }
        StackCmd::Ls => {
            let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
            for s in ctl.remote.services().await? {
                if let Some(n) = s.spec.labels.get(swarm_stack::NAMESPACE_LABEL) {
                    *stacks.entry(n.clone()).or_default() += 1;
                }
            }
            let rows: Vec<Vec<String>> = stacks
                .into_iter()
                .map(|(name, n)| vec![name, n.to_string()])
                .collect();
            print!("{}", table::render(&["NAME", "SERVICES"], &rows));
        }
        StackCmd::Services { name } => {
            let state = ctl.state_of(|s| in_stack(&s.spec.labels, &name)).await?;
            if state.services().next().is_none() {
                bail!("Nothing found in stack: {name}");
            }
            print!("{}", table::services(&state));
        }
        StackCmd::Ps { name } => {
            let state = ctl.state_of(|s| in_stack(&s.spec.labels, &name)).await?;
            if state.services().next().is_none() {
                bail!("Nothing found in stack: {name}");
            }
            print!("{}", table::all_tasks(&state));
        }
        StackCmd::Rm { names } => {
            for name in names {
                stack_rm(ctl, &name).await?;
            }
        }
    }
    Ok(())
}

/// Removes a stack's services, then its secrets, configs and networks
/// (whose removal waits for the services' tasks to stop).
async fn stack_rm(ctl: &Ctl, name: &str) -> anyhow::Result<()> {
    let mut found = false;
    for s in ctl.remote.services().await? {
        if in_stack(&s.spec.labels, name) {
            found = true;
            println!("Removing service {}", s.spec.name);
            ctl.remote.remove_service(&s.spec.name).await?;
        }
    }
    if let ControlReply::Secrets(list) = ctl.call(ControlRequest::ListSecrets).await? {
        for s in list.iter().filter(|s| in_stack(&s.spec.labels, name)) {
            found = true;
            println!("Removing secret {}", s.spec.name);
            ctl.call(ControlRequest::RemoveSecret(s.spec.name.clone()))
                .await?;
        }
    }
    if let ControlReply::Configs(list) = ctl.call(ControlRequest::ListConfigs).await? {
        for c in list.iter().filter(|c| in_stack(&c.spec.labels, name)) {
            found = true;
            println!("Removing config {}", c.spec.name);
            ctl.call(ControlRequest::RemoveConfig(c.spec.name.clone()))
                .await?;
        }
    }
    if let ControlReply::Networks(list) = ctl.call(ControlRequest::ListNetworks).await? {
        for n in list.iter().filter(|n| in_stack(&n.spec.labels, name)) {
            found = true;
            println!("Removing network {}", n.spec.name);
            ctl.call(ControlRequest::RemoveNetwork(n.spec.name.clone()))
                .await?;
        }
    }
    if !found {
        println!("Nothing found in stack: {name}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_inner(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
