//! `service create` and `service update` flags, as docker spells them, and
//! the rollout progress that `service update` shows while it waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use swarm_core::model::{
    DnsConfig, FailureAction, FileReference, HealthCheck, LogDriver, NetworkAttachment, Service,
    ServiceMode, ServiceSpec, Task, TaskSpec, TaskState, Ulimit, UpdateConfig, UpdateOrder,
    UpdateState,
};

/// Reads a duration as Go's `time.ParseDuration` does: `300ms`, `10s`,
/// `1m30s`, `1.5h`, `0` (as compose files write them).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    swarm_stack::text::duration(s)
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// `64M`, `1G`, `512k`, or bytes (units of 1024, as compose's).
pub fn bytes(s: &str) -> anyhow::Result<u64> {
    swarm_stack::text::bytes(s).map_err(|e| anyhow!(e))
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn nano_cpus(c: f64) -> u64 {
    (c * 1e9) as u64
}

fn failure_action(s: &str, rollback: bool) -> anyhow::Result<FailureAction> {
    Ok(match s {
        "pause" => FailureAction::Pause,
        "continue" => FailureAction::Continue,
        "rollback" if !rollback => FailureAction::Rollback,
        other if rollback => {
            bail!("invalid --rollback-failure-action {other:?}: use pause or continue")
        }
        other => {
            bail!("invalid --update-failure-action {other:?}: use pause, continue or rollback")
        }
    })
}

fn order(s: &str, flag: &str) -> anyhow::Result<UpdateOrder> {
    Ok(match s {
        "stop-first" => UpdateOrder::StopFirst,
        "start-first" => UpdateOrder::StartFirst,
        other => bail!("invalid {flag} {other:?}: use stop-first or start-first"),
    })
}

/// A health check of `test` with docker's defaults: every 30 s, 30 s to
/// answer, unhealthy after 3 failures.
fn docker_check(test: Vec<String>) -> HealthCheck {
    HealthCheck {
        test,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(30),
        retries: 3,
        start_period: Duration::ZERO,
    }
}

/// `gpu=1`: a kind and how many of it a task reserves.
fn generic_reservation(s: &str) -> Result<(String, u64), String> {
    let (kind, n) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid generic resource {s:?}: write KIND=N, e.g. gpu=1"))?;
    swarm_core::model::check_generic_kind(kind)?;
    let n = n.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
        format!(
            "invalid generic resource {s:?}: reserve a whole number of at least 1, e.g. {kind}=1"
        )
    })?;
    Ok((kind.to_owned(), n))
}

/// The flags `service create` and `service update` share: each one given
/// sets its field, and the others leave the spec as it is.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct SpecFlags {
    /// Command run to check health (`sh -c`).
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between health checks (ms|s|m|h).
    #[arg(long = "health-interval", value_parser = duration)]
    pub health_interval: Option<Duration>,
    /// Time a health check may take.
    #[arg(long = "health-timeout", value_parser = duration)]
    pub health_timeout: Option<Duration>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Start period during which failures do not count.
    #[arg(long = "health-start-period", value_parser = duration)]
    pub health_start_period: Option<Duration>,
    /// Disable any health check, the image's included.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Time to wait before force-killing a task.
    #[arg(long = "stop-grace-period", value_parser = duration)]
    pub stop_grace_period: Option<Duration>,
    /// Restart when: none, on-failure or any.
    #[arg(long = "restart-condition")]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts.
    #[arg(long = "restart-delay", value_parser = duration)]
    pub restart_delay: Option<Duration>,
    /// Maximum number of restarts before giving up.
    #[arg(long = "restart-max-attempts")]
    pub restart_max_attempts: Option<u32>,
    /// Window used to evaluate the restart policy.
    #[arg(long = "restart-window", value_parser = duration)]
    pub restart_window: Option<Duration>,
    /// CPUs reserved, e.g. 0.5.
    #[arg(long = "reserve-cpu")]
    pub reserve_cpu: Option<f64>,
    /// Memory reserved, e.g. 64M.
    #[arg(long = "reserve-memory")]
    pub reserve_memory: Option<String>,
    /// A generic resource each task reserves, KIND=N (`gpu=1`); repeat for
    /// each kind. Tasks go to nodes that advertise that many unassigned,
    /// and are told which they got in DOCKER_RESOURCE_<KIND>.
    #[arg(long = "generic-resource", value_parser = generic_reservation)]
    pub generic_resource: Vec<(String, u64)>,
    /// CPU limit.
    #[arg(long = "limit-cpu")]
    pub limit_cpu: Option<f64>,
    /// Memory limit.
    #[arg(long = "limit-memory")]
    pub limit_memory: Option<String>,
    /// At most this many tasks per node (0: no limit).
    #[arg(long = "replicas-max-per-node")]
    pub replicas_max_per_node: Option<u64>,
    /// Working directory inside the task.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// User to run as (name or uid).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Tasks updated at once (0: all at once).
    #[arg(long = "update-parallelism")]
    pub update_parallelism: Option<u64>,
    /// Delay between updates.
    #[arg(long = "update-delay", value_parser = duration)]
    pub update_delay: Option<Duration>,
    /// On update failure: pause, continue or rollback.
    #[arg(long = "update-failure-action")]
    pub update_failure_action: Option<String>,
    /// Time to watch each updated task for failure.
    #[arg(long = "update-monitor", value_parser = duration)]
    pub update_monitor: Option<Duration>,
    /// Failure rate to tolerate during an update (0 to 1).
    #[arg(long = "update-max-failure-ratio")]
    pub update_max_failure_ratio: Option<f32>,
    /// stop-first or start-first.
    #[arg(long = "update-order")]
    pub update_order: Option<String>,
    /// A new task not running this long after it was made fails the
    /// update (0: never; swarm's own).
    #[arg(long = "update-start-deadline", value_parser = duration)]
    pub update_start_deadline: Option<Duration>,
    /// An update in which no new task became running for this long fails
    /// (0: never; swarm's own).
    #[arg(long = "update-progress-deadline", value_parser = duration)]
    pub update_progress_deadline: Option<Duration>,
    /// Run this many new tasks beside the old ones first, and wait for
    /// `service promote` (swarm's own).
    #[arg(long = "update-canary")]
    pub update_canary: Option<u64>,
    /// Promote the canaries once they ran healthy for the monitor period.
    #[arg(long = "update-auto-promote", num_args = 0..=1, default_missing_value = "true")]
    pub update_auto_promote: Option<bool>,
    /// Tasks rolled back at once (0: all at once).
    #[arg(long = "rollback-parallelism")]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks.
    #[arg(long = "rollback-delay", value_parser = duration)]
    pub rollback_delay: Option<Duration>,
    /// On rollback failure: pause or continue.
    #[arg(long = "rollback-failure-action")]
    pub rollback_failure_action: Option<String>,
    /// Time to watch each rolled-back task for failure.
    #[arg(long = "rollback-monitor", value_parser = duration)]
    pub rollback_monitor: Option<Duration>,
    /// Failure rate to tolerate during a rollback.
    #[arg(long = "rollback-max-failure-ratio")]
    pub rollback_max_failure_ratio: Option<f32>,
    /// stop-first or start-first.
    #[arg(long = "rollback-order")]
    pub rollback_order: Option<String>,
    /// As --update-start-deadline, for rollbacks.
    #[arg(long = "rollback-start-deadline", value_parser = duration)]
    pub rollback_start_deadline: Option<Duration>,
    /// As --update-progress-deadline, for rollbacks.
    #[arg(long = "rollback-progress-deadline", value_parser = duration)]
    pub rollback_progress_deadline: Option<Duration>,
}

impl SpecFlags {
    /// Sets the fields these flags name on `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) -> anyhow::Result<()> {
        let t = &mut spec.task;
        if self.no_healthcheck {
            if self.health_cmd.is_some() {
                bail!("--no-healthcheck conflicts with --health-cmd: give one of them");
            }
            t.healthcheck = Some(docker_check(vec!["NONE".into()]));
        }
        let health_given = self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some();
        if let Some(cmd) = &self.health_cmd {
            let h = t
                .healthcheck
                .get_or_insert_with(|| docker_check(Vec::new()));
            h.test = vec!["CMD-SHELL".into(), cmd.clone()];
        } else if health_given && t.healthcheck.as_ref().is_none_or(HealthCheck::is_disabled) {
            bail!(
                "--health-interval, --health-timeout, --health-retries and --health-start-period need a health check: add --health-cmd"
            );
        }
        if let Some(h) = &mut t.healthcheck {
            if let Some(d) = self.health_interval {
                h.interval = d;
            }
            if let Some(d) = self.health_timeout {
                h.timeout = d;
            }
            if let Some(n) = self.health_retries {
                h.retries = n;
            }
            if let Some(d) = self.health_start_period {
                h.start_period = d;
            }
        }
        if let Some(d) = self.stop_grace_period {
            t.stop_grace_period = d;
        }
        if let Some(c) = &self.restart_condition {
            t.restart.condition = c.parse()?;
        }
        if let Some(d) = self.restart_delay {
            t.restart.delay = d;
        }
        if let Some(n) = self.restart_max_attempts {
            t.restart.max_attempts = n;
        }
        if let Some(d) = self.restart_window {
            t.restart.window = d;
        }
        let r = &mut t.resources;
        if let Some(c) = self.reserve_cpu {
            r.reservations.nano_cpus = nano_cpus(c);
        }
        if let Some(m) = &self.reserve_memory {
            r.reservations.memory_bytes = bytes(m)?;
        }
        if !self.generic_resource.is_empty() {
            r.generic.clear();
            for (kind, n) in &self.generic_resource {
                if r.generic.insert(kind.clone(), *n).is_some() {
                    bail!(
                        "--generic-resource {kind} is given twice: give each kind once, with its total"
                    );
                }
            }
        }
        if let Some(c) = self.limit_cpu {
            r.limits.nano_cpus = nano_cpus(c);
        }
        if let Some(m) = &self.limit_memory {
            r.limits.memory_bytes = bytes(m)?;
        }
        if let Some(n) = self.replicas_max_per_node {
            t.placement.max_replicas_per_node = n;
        }
        if let Some(w) = &self.workdir {
            t.workdir = Some(w.clone());
        }
        if let Some(u) = &self.user {
            t.user = Some(u.clone());
        }
        let u = RolloutFlags {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            failure_action: self.update_failure_action.as_deref(),
            monitor: self.update_monitor,
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order.as_deref(),
            start_deadline: self.update_start_deadline,
            progress_deadline: self.update_progress_deadline,
        };
        u.apply(&mut spec.update, false)?;
        if let Some(n) = self.update_canary {
            spec.update.canary = n;
        }
        if let Some(b) = self.update_auto_promote {
            spec.update.auto_promote = b;
        }
        let r = RolloutFlags {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay,
            failure_action: self.rollback_failure_action.as_deref(),
            monitor: self.rollback_monitor,
            max_failure_ratio: self.rollback_max_failure_ratio,
            order: self.rollback_order.as_deref(),
            start_deadline: self.rollback_start_deadline,
            progress_deadline: self.rollback_progress_deadline,
        };
        r.apply(&mut spec.rollback, true)
    }
}

struct RolloutFlags<'a> {
    parallelism: Option<u64>,
    delay: Option<Duration>,
    failure_action: Option<&'a str>,
    monitor: Option<Duration>,
    max_failure_ratio: Option<f32>,
    order: Option<&'a str>,
    start_deadline: Option<Duration>,
    progress_deadline: Option<Duration>,
}

impl RolloutFlags<'_> {
    fn apply(&self, c: &mut UpdateConfig, rollback: bool) -> anyhow::Result<()> {
        let prefix = if rollback { "--rollback" } else { "--update" };
        if let Some(n) = self.parallelism {
            c.parallelism = n;
        }
        if let Some(d) = self.delay {
            c.delay = d;
        }
        if let Some(a) = self.failure_action {
            c.failure_action = failure_action(a, rollback)?;
        }
        if let Some(d) = self.monitor {
            c.monitor = d;
        }
        if let Some(r) = self.max_failure_ratio {
            c.max_failure_ratio = r;
        }
        if let Some(o) = self.order {
            c.order = order(o, &format!("{prefix}-order"))?;
        }
        if let Some(d) = self.start_deadline {
            c.start_deadline = d;
        }
        if let Some(d) = self.progress_deadline {
            c.progress_deadline = d;
        }
        Ok(())
    }
}

/// `service update`'s own flags: additions and removals, docker's.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct UpdateFlags {
    /// The new image (with the process runtime: the program).
    #[arg(long)]
    pub image: Option<String>,
    /// The new arguments, as one shell-like string.
    #[arg(long, allow_hyphen_values = true)]
    pub args: Option<String>,
    /// The new number of tasks.
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Add or set environment variables (KEY=VALUE).
    #[arg(long = "env-add")]
    pub env_add: Vec<String>,
    /// Remove environment variables (KEY).
    #[arg(long = "env-rm")]
    pub env_rm: Vec<String>,
    /// Add or set service labels (KEY=VALUE).
    #[arg(long = "label-add")]
    pub label_add: Vec<String>,
    /// Remove service labels (KEY).
    #[arg(long = "label-rm")]
    pub label_rm: Vec<String>,
    /// Add or set container labels (KEY=VALUE).
    #[arg(long = "container-label-add")]
    pub container_label_add: Vec<String>,
    /// Remove container labels (KEY).
    #[arg(long = "container-label-rm")]
    pub container_label_rm: Vec<String>,
    /// Add placement constraints.
    #[arg(long = "constraint-add")]
    pub constraint_add: Vec<String>,
    /// Remove placement constraints (as written).
    #[arg(long = "constraint-rm")]
    pub constraint_rm: Vec<String>,
    /// Publish ports (PUBLISHED:TARGET[/udp], or the long form).
    #[arg(long = "publish-add")]
    pub publish_add: Vec<String>,
    /// Remove published ports by target port (TARGET[/udp]).
    #[arg(long = "publish-rm")]
    pub publish_rm: Vec<String>,
    /// Attach to networks (NAME, or name=NAME,alias=ALIAS).
    #[arg(long = "network-add")]
    pub network_add: Vec<String>,
    /// Detach from networks.
    #[arg(long = "network-rm")]
    pub network_rm: Vec<String>,
    /// Give the tasks secrets: NAME[,target=,uid=,gid=,mode=].
    #[arg(long = "secret-add")]
    pub secret_add: Vec<String>,
    /// Take secrets away (NAME).
    #[arg(long = "secret-rm")]
    pub secret_rm: Vec<String>,
    /// Give the tasks configs: NAME[,target=,uid=,gid=,mode=].
    #[arg(long = "config-add")]
    pub config_add: Vec<String>,
    /// Take configs away (NAME).
    #[arg(long = "config-rm")]
    pub config_rm: Vec<String>,
    /// Add mounts (type=...,source=...,target=...).
    #[arg(long = "mount-add")]
    pub mount_add: Vec<String>,
    /// Remove mounts by target path.
    #[arg(long = "mount-rm")]
    pub mount_rm: Vec<String>,
    /// Replace every task even if nothing changed.
    #[arg(long)]
    pub force: bool,
}

/// `service create`'s container settings, as docker spells them.
#[derive(clap::Args, Debug, Default)]
pub struct ContainerFlags {
    /// The tasks' hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Extra host names, HOST:IP (repeatable). Docker's `service create`
    /// spells it `--host`, which is swarmctl's `-H/--host` (the manager).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Name servers (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domains (repeatable).
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Resolver options, e.g. ndots:2 (repeatable).
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// More groups for the user (repeatable).
    #[arg(long)]
    pub group: Vec<String>,
    /// Kernel capabilities to add (repeatable).
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Kernel capabilities to drop (repeatable).
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Kernel parameters, KEY=VALUE (repeatable).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Resource limits, NAME=SOFT[:HARD], e.g. nofile=1024:2048.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Run an init process in the container that reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Give the task a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// The signal that stops the task (default: SIGTERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// The container's log driver.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options, KEY=VALUE (repeatable).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// At most this many processes in a task (0: no limit).
    #[arg(long = "limit-pids")]
    pub limit_pids: Option<u64>,
    /// The OOM killer's preference, -1000 to 1000.
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
}

impl ContainerFlags {
    /// Sets the fields these flags name on `task`; the spec's validation
    /// checks their values.
    pub fn apply(&self, task: &mut TaskSpec) -> anyhow::Result<()> {
        task.hostname.clone_from(&self.hostname);
        for h in &self.add_host {
            let (name, ip) = h
                .rsplit_once(':')
                .filter(|(n, ip)| !n.is_empty() && ip.parse::<std::net::IpAddr>().is_ok())
                .ok_or_else(|| anyhow!("--add-host {h:?}: expected HOST:IP, e.g. db:10.0.0.5"))?;
            task.hosts.push(format!("{ip} {name}"));
        }
        if !(self.dns.is_empty() && self.dns_search.is_empty() && self.dns_option.is_empty()) {
            task.dns = Some(DnsConfig {
                nameservers: self.dns.clone(),
                search: self.dns_search.clone(),
                options: self.dns_option.clone(),
            });
        }
        task.groups.clone_from(&self.group);
        task.cap_add.clone_from(&self.cap_add);
        task.cap_drop.clone_from(&self.cap_drop);
        set_map(&mut task.sysctls, &self.sysctl, &[], "--sysctl")?;
        for u in &self.ulimit {
            let (name, limits) = key_value(u, "--ulimit")?;
            let number = |n: &str| {
                n.parse::<i64>().map_err(|_| {
                    anyhow!("--ulimit {u:?}: {n:?} is not a number; expected NAME=SOFT[:HARD]")
                })
            };
            let (soft, hard) = match limits.split_once(':') {
                Some((s, h)) => (number(s)?, number(h)?),
                None => (number(&limits)?, number(&limits)?),
            };
            task.ulimits.push(Ulimit { name, hard, soft });
        }
        task.init = self.init.then_some(true);
        task.tty = self.tty;
        task.read_only = self.read_only;
        task.stop_signal.clone_from(&self.stop_signal);
        if let Some(name) = &self.log_driver {
            let mut options = BTreeMap::new();
            set_map(&mut options, &self.log_opt, &[], "--log-opt")?;
            task.log_driver = Some(LogDriver {
                name: name.clone(),
                options,
            });
        } else if !self.log_opt.is_empty() {
            bail!("--log-opt needs --log-driver: name the driver the options are for");
        }
        if let Some(n) = self.limit_pids {
            task.pids_limit = n;
        }
        if let Some(n) = self.oom_score_adj {
            task.oom_score_adj = n;
        }
        Ok(())
    }
}

fn key_value(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| anyhow!("{what} {s:?} is not KEY=VALUE"))
}

fn key_of(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

fn set_map(
    map: &mut BTreeMap<String, String>,
    add: &[String],
    rm: &[String],
    flag: &str,
) -> anyhow::Result<()> {
    for k in rm {
        map.remove(k);
    }
    for kv in add {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k.is_empty() {
            bail!("{flag} {kv:?}: expected KEY=VALUE");
        }
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(())
}

/// Splits a string into words as a shell would, for `--args`: quotes
/// group, backslashes escape (as a compose file's `command:` is split).
pub fn shell_words(s: &str) -> anyhow::Result<Vec<String>> {
    swarm_stack::text::shell_words(s).map_err(|e| anyhow!("{e}"))
}

impl UpdateFlags {
    /// Applies the additions and removals to `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) -> anyhow::Result<()> {
        if let Some(n) = self.replicas {
            match &mut spec.mode {
                ServiceMode::Replicated { replicas } => *replicas = n,
                ServiceMode::Global => bail!(
                    "--replicas applies to replicated services, and service {} is global: it runs one task on every eligible node",
                    spec.name
                ),
            }
        }
        let t = &mut spec.task;
        if let Some(i) = &self.image {
            t.image.clone_from(i);
        }
        if let Some(a) = &self.args {
            t.args = shell_words(a).map_err(|e| anyhow!("--args: {e}"))?;
        }
        let env_rm: Vec<&str> = self.env_rm.iter().map(|k| key_of(k)).collect();
        let add_keys: Vec<&str> = self.env_add.iter().map(|kv| key_of(kv)).collect();
        t.env
            .retain(|e| !env_rm.contains(&key_of(e)) && !add_keys.contains(&key_of(e)));
        t.env.extend(self.env_add.iter().cloned());
        set_map(
            &mut spec.labels,
            &self.label_add,
            &self.label_rm,
            "--label-add",
        )?;
        set_map(
            &mut t.labels,
            &self.container_label_add,
            &self.container_label_rm,
            "--container-label-add",
        )?;
        for c in &self.constraint_rm {
            t.placement.constraints.retain(|x| x != c);
        }
        for c in &self.constraint_add {
            if !t.placement.constraints.contains(c) {
                t.placement.constraints.push(c.clone());
            }
        }
        for n in &self.network_rm {
            t.networks.retain(|a| &a.target != n);
        }
        for n in &self.network_add {
            let a = network_attachment(n)?;
            t.networks.retain(|x| x.target != a.target);
            t.networks.push(a);
        }
        for (refs, add, rm) in [
            (&mut t.secrets, &self.secret_add, &self.secret_rm),
            (&mut t.configs, &self.config_add, &self.config_rm),
        ] {
            for name in rm {
                refs.retain(|r| &r.name != name);
            }
            for s in add {
                let r: FileReference = s.parse()?;
                refs.retain(|x| x.target != r.target);
                refs.push(r);
            }
        }
        for target in &self.mount_rm {
            t.mounts.retain(|m| &m.target != target);
        }
        for m in &self.mount_add {
            let m: swarm_core::model::Mount = m.parse()?;
            t.mounts.retain(|x| x.target != m.target);
            t.mounts.push(m);
        }
        if self.force {
            t.force_update += 1;
        }
        for p in &self.publish_rm {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let target = port.rsplit(':').next().unwrap_or(port);
            let target: u32 = target.parse().map_err(|_| {
                anyhow!("--publish-rm {p:?}: expected the target port, e.g. 80 or 80/udp")
            })?;
            let before = spec.endpoint.ports.len();
            spec.endpoint
                .ports
                .retain(|x| !(x.target_port == target && x.protocol.to_string() == proto));
            if spec.endpoint.ports.len() == before {
                bail!(
                    "--publish-rm {p:?}: service {} publishes no port with target {target}/{proto}",
                    spec.name
                );
            }
        }
        for p in &self.publish_add {
            let port: swarm_core::model::PortConfig = p.parse()?;
            spec.endpoint.ports.retain(|x| {
                !(x.target_port == port.target_port
                    && x.protocol == port.protocol
                    && x.published_port == port.published_port)
            });
            spec.endpoint.ports.push(port);
        }
        Ok(())
    }
}

/// docker's `--network` value: `NAME`, or `name=NAME,alias=A,alias=B,driver-opt=K=V`.
pub fn network_attachment(s: &str) -> anyhow::Result<NetworkAttachment> {
    if !s.contains('=') {
        return Ok(NetworkAttachment {
            target: s.to_owned(),
            ..NetworkAttachment::default()
        });
    }
    let mut a = NetworkAttachment::default();
    for field in s.split(',') {
        match key_value(field, "--network")? {
            (k, v) if k == "name" || k == "target" => a.target = v,
            (k, v) if k == "alias" => a.aliases.push(v),
            (k, v) if k == "driver-opt" => {
                let (key, value) = v.split_once('=').ok_or_else(|| {
                    anyhow!(
                        "--network {s:?}: driver-opt={v} has no value: write driver-opt=KEY=VALUE"
                    )
                })?;
                a.driver_opts.insert(key.to_owned(), value.to_owned());
            }
            (k, _) => bail!(
                "--network {s:?}: unknown field {k:?}; use name=NET,alias=NAME,driver-opt=KEY=VALUE"
            ),
        }
    }
    if a.target.is_empty() {
        bail!("--network {s:?} names no network: add name=NET");
    }
    Ok(a)
}

/// What a rollout looks like to `service update` while it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// `overall progress: 2 out of 6 tasks`, then a line per slot.
    pub lines: Vec<String>,
    /// Set once the rollout ended: `Ok` with the closing line, or `Err`
    /// with why it stopped (paused, or rolled back on its own).
    pub done: Option<Result<String, String>>,
}

/// The progress of `service`'s rollout over `tasks` (all its tasks), as
/// docker prints it. `rollback` is whether the user asked for a rollback:
/// one that happens on its own is a failure of the update.
#[must_use]
pub fn progress(service: &Service, tasks: &[Arc<Task>], rollback: bool) -> Progress {
    let global = matches!(service.spec.mode, ServiceMode::Global);
    let mut slots: BTreeMap<String, Vec<&Arc<Task>>> = BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running)
    {
        let key = if global {
            t.node_id
                .as_ref()
                .map(|n| n.short().to_owned())
                .unwrap_or_default()
        } else {
            format!("{:>6}", t.slot)
        };
        slots.entry(key).or_default().push(t);
    }
    let want = match service.spec.mode {
        ServiceMode::Replicated { replicas } => usize::try_from(replicas).unwrap_or(usize::MAX),
        ServiceMode::Global => slots.len(),
    };
    let mut done_count = 0;
    let mut per_slot = Vec::new();
    for (key, ts) in &slots {
        let newest = ts
            .iter()
            .filter(|t| service.is_current(t))
            .max_by_key(|t| t.meta.created_at)
            .or_else(|| ts.iter().max_by_key(|t| t.meta.created_at))
            .expect("a slot has a task");
        let fresh = service.is_current(newest);
        let ok = fresh && newest.status.state == TaskState::Running;
        if ok && !ts.iter().any(|t| !service.is_current(t)) {
            done_count += 1;
        }
        let state = if fresh {
            newest.status.state.as_str()
        } else {
            "waiting"
        };
        let err = newest
            .status
            .err
            .as_deref()
            .filter(|_| fresh && !ok)
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let label = if global {
            key.clone()
        } else {
            format!("{}/{want}", key.trim())
        };
        per_slot.push(format!("{label}: {state}{err}"));
    }
    let status = service.update_status.as_ref();
    let rolling_back = status.is_some_and(|s| s.state.is_rollback());
    let mut lines = vec![if rolling_back {
        format!("overall progress: rolling back update: {done_count} out of {want} tasks")
    } else {
        format!("overall progress: {done_count} out of {want} tasks")
    }];
    lines.extend(per_slot);
    if done_count == want && status.is_some_and(|s| s.state.is_rolling() && !s.awaiting_promotion) {
        let monitor = if rolling_back {
            service
                .history
                .last()
                .map_or(service.spec.rollback.monitor, |h| h.spec.rollback.monitor)
        } else {
            service.spec.update.monitor
        };
        lines.push(format!(
            "verify: Waiting {} to verify that tasks are stable...",
            swarm_core::manager::orchestrator::update::go_duration(monitor)
        ));
    }
    let name = &service.spec.name;
    let done = match status.map(|s| (s.state, &s.message)) {
        Some((UpdateState::Completed, _)) => Some(Ok(format!("verify: Service {name} converged"))),
        Some((UpdateState::RollbackCompleted, _)) if rollback => {
            Some(Ok(format!("verify: Service {name} converged")))
        }
        Some((UpdateState::RollbackCompleted, m)) => Some(Err(format!("service rolled back: {m}"))),
        Some((UpdateState::Paused, m)) => Some(Err(format!("service update paused: {m}"))),
        Some((UpdateState::RollbackPaused, m)) => {
            Some(Err(format!("service rollback paused: {m}")))
        }
        Some((UpdateState::Updating, _)) if status.is_some_and(|s| s.awaiting_promotion) => {
            let canaries = slots
                .values()
                .filter(|ts| {
                    ts.iter()
                        .any(|t| service.is_current(t) && t.status.state == TaskState::Running)
                })
                .count();
            let wanted = usize::try_from(service.spec.update.canary)
                .unwrap_or(usize::MAX)
                .min(want);
            (canaries >= wanted).then(|| {
                Ok(format!(
                    "{canaries} canar{} running beside the old tasks: promote with `swarmctl service promote {name}`, or roll back with `swarmctl service rollback {name}`",
                    if canaries == 1 { "y" } else { "ies" },
                ))
            })
        }
        _ => None,
    };
    Progress { lines, done }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_core::model::{ServiceSpec, UpdateStatus};

    #[test]
    fn durations_read_as_go_reads_them() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "soon", "5 s", "1x"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn container_flags_set_docker_s_fields_and_refuse_bad_values() {
        let flags = ContainerFlags {
            hostname: Some("web-1".into()),
            add_host: vec!["db:10.0.0.5".into()],
            dns: vec!["10.0.0.53".into()],
            cap_add: vec!["NET_ADMIN".into()],
            sysctl: vec!["net.core.somaxconn=1024".into()],
            ulimit: vec!["nofile=1024:2048".into(), "nproc=512".into()],
            read_only: true,
            stop_signal: Some("SIGINT".into()),
            log_driver: Some("local".into()),
            log_opt: vec!["max-size=10m".into()],
            limit_pids: Some(64),
            oom_score_adj: Some(-100),
            ..ContainerFlags::default()
        };
        let mut t = TaskSpec::command(vec!["web".into()]);
        flags.apply(&mut t).unwrap();
        assert_eq!(t.hostname.as_deref(), Some("web-1"));
        assert_eq!(t.hosts, ["10.0.0.5 db"]);
        assert_eq!(t.dns.as_ref().unwrap().nameservers, ["10.0.0.53"]);
        assert_eq!(t.sysctls["net.core.somaxconn"], "1024");
        let limits: Vec<(&str, i64, i64)> = t
            .ulimits
            .iter()
            .map(|u| (u.name.as_str(), u.soft, u.hard))
            .collect();
        assert_eq!(limits, [("nofile", 1024, 2048), ("nproc", 512, 512)]);
        assert!(t.read_only && t.init.is_none());
        assert_eq!(t.log_driver.as_ref().unwrap().options["max-size"], "10m");
        assert_eq!((t.pids_limit, t.oom_score_adj), (64, -100));
        assert_eq!(
            t.container_only(),
            [
                "--read-only",
                "--host",
                "--dns/--dns-search/--dns-option",
                "--sysctl",
                "--cap-add",
                "--log-driver",
                "--ulimit",
                "--oom-score-adj",
                "--limit-pids"
            ]
        );
        for (bad, says) in [
            (
                ContainerFlags {
                    add_host: vec!["db".into()],
                    ..ContainerFlags::default()
                },
                "expected HOST:IP",
            ),
            (
                ContainerFlags {
                    ulimit: vec!["nofile=lots".into()],
                    ..ContainerFlags::default()
                },
                "is not a number",
            ),
            (
                ContainerFlags {
                    log_opt: vec!["a=b".into()],
                    ..ContainerFlags::default()
                },
                "--log-opt needs --log-driver",
            ),
        ] {
            let e = bad.apply(&mut TaskSpec::default()).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn args_split_as_a_shell_splits_them() {
        assert_eq!(
            shell_words(r#"http 80 "/a b" 'c d' e\ f"#).unwrap(),
            ["http", "80", "/a b", "c d", "e f"]
        );
        assert_eq!(shell_words("  ").unwrap(), Vec::<String>::new());
        assert!(shell_words("'open").is_err());
    }

    #[test]
    fn update_flags_add_and_remove_as_docker_s_do() {
        let mut spec = ServiceSpec::replicated("web", 2, vec!["srv".into()]);
        spec.task.env = vec!["A=1".into(), "B=2".into()];
        spec.endpoint.ports.push("8080:80".parse().unwrap());
        spec.task
            .placement
            .constraints
            .push("node.role==worker".into());
        let flags = UpdateFlags {
            image: Some("srv2".into()),
            replicas: Some(5),
            env_add: vec!["B=3".into(), "C=4".into()],
            env_rm: vec!["A".into()],
            label_add: vec!["tier=web".into()],
            constraint_rm: vec!["node.role==worker".into()],
            constraint_add: vec!["node.labels.zone==a".into()],
            publish_rm: vec!["80".into()],
            publish_add: vec!["9090:90".into()],
            secret_add: vec!["source=db,target=db.pw,mode=0400,uid=33".into()],
            force: true,
            ..UpdateFlags::default()
        };
        flags.apply(&mut spec).unwrap();
        assert_eq!(spec.mode, ServiceMode::Replicated { replicas: 5 });
        assert_eq!(spec.task.image, "srv2");
        assert_eq!(spec.task.env, ["B=3", "C=4"]);
        assert_eq!(spec.labels["tier"], "web");
        assert_eq!(spec.task.placement.constraints, ["node.labels.zone==a"]);
        assert_eq!(spec.endpoint.ports.len(), 1);
        assert_eq!(spec.endpoint.ports[0].target_port, 90);
        let s = &spec.task.secrets[0];
        assert_eq!(
            (s.name.as_str(), s.target.as_str(), s.mode, s.uid),
            ("db", "db.pw", 0o400, 33)
        );
        assert_eq!(spec.task.force_update, 1);

        let e = UpdateFlags {
            publish_rm: vec!["443".into()],
            ..UpdateFlags::default()
        }
        .apply(&mut spec)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--publish-rm \"443\": service web publishes no port with target 443/tcp"
        );
    }

    #[test]
    fn spec_flags_set_health_and_rollout_settings() {
        let mut spec = ServiceSpec::replicated("web", 2, vec!["srv".into()]);
        let flags = SpecFlags {
            health_cmd: Some("probe 80".into()),
            health_interval: Some(Duration::from_millis(250)),
            update_parallelism: Some(2),
            update_order: Some("start-first".into()),
            update_failure_action: Some("rollback".into()),
            update_canary: Some(1),
            rollback_monitor: Some(Duration::from_secs(3)),
            ..SpecFlags::default()
        };
        flags.apply(&mut spec).unwrap();
        let h = spec.task.healthcheck.as_ref().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "probe 80"]);
        assert_eq!(h.interval, Duration::from_millis(250));
        assert_eq!(spec.update.parallelism, 2);
        assert_eq!(spec.update.order, UpdateOrder::StartFirst);
        assert_eq!(spec.update.failure_action, FailureAction::Rollback);
        assert_eq!(spec.update.canary, 1);
        assert_eq!(spec.rollback.monitor, Duration::from_secs(3));

        let e = SpecFlags {
            health_retries: Some(2),
            ..SpecFlags::default()
        }
        .apply(&mut ServiceSpec::replicated("x", 1, vec!["y".into()]))
        .unwrap_err();
        assert!(e.to_string().contains("add --health-cmd"), "{e}");
    }

    #[test]
    fn progress_counts_slots_on_the_new_spec() {
        let mut service = Service::new(ServiceSpec::replicated("web", 3, vec!["v1".into()]));
        let old: Vec<Arc<Task>> = (1..=3)
            .map(|slot| {
                let mut t = Task::new(&service, slot, None, vec![]);
                t.status.state = TaskState::Running;
                Arc::new(t)
            })
            .collect();
        let mut spec = service.spec.clone();
        spec.task.image = "v2".into();
        service.push_spec(spec);
        service.update_status = Some(UpdateStatus::started(
            UpdateState::Updating,
            "update in progress",
        ));
        let mut new1 = Task::new(&service, 1, None, vec![]);
        new1.status.state = TaskState::Running;
        let mut tasks = old.clone();
        Arc::make_mut(&mut tasks[0]).desired_state = TaskState::Shutdown;
        tasks.push(Arc::new(new1));
        let p = progress(&service, &tasks, false);
        assert_eq!(
            p.lines,
            [
                "overall progress: 1 out of 3 tasks",
                "1/3: running",
                "2/3: waiting",
                "3/3: waiting"
            ]
        );
        assert_eq!(p.done, None);
        service.update_status.as_mut().unwrap().state = UpdateState::Paused;
        service.update_status.as_mut().unwrap().message = "update paused due to failure".into();
        assert_eq!(
            progress(&service, &tasks, false).done,
            Some(Err(
                "service update paused: update paused due to failure".into()
            ))
        );
    }
}
