//! Spec validation: bad input becomes a [`SpecError`] naming what is wrong
//! and how to fix it, before anything reaches the store.

use std::time::Duration;

use crate::SpecError;
use crate::constraint::{Attribute, Constraint};
use crate::model::{
    ConfigSpec, MAX_REPLICAS, Mount, MountKind, NetworkSpec, PlacementPreference, PortConfig,
    Protocol, PublishMode, RESERVED_LABEL_PREFIX, SecretSpec, ServiceMode, ServiceSpec, TaskSpec,
    UpdateConfig,
};

/// The largest secret or config, as Docker: 500 KiB.
pub const MAX_DATA_BYTES: usize = 500 * 1024;

/// Checks an object name: a DNS label of 1 to 63 characters.
pub fn name(name: &str, field: &str, errors: &mut SpecError) {
    // As swarm's: a DNS label where `_` may stand as `-` does, for the
    // `<stack>_<service>` names of stacks.
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    let ok = name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && edge(name.bytes().next())
        && edge(name.bytes().last());
    if !ok {
        errors.push(
            field,
            format!(
                "invalid name {name:?}: use 1 to 63 letters, digits, '-' and '_', starting and ending with a letter or digit"
            ),
        );
    }
}

/// Checks a published port.
pub fn port(p: &PortConfig, field: &str, errors: &mut SpecError) {
    if p.target_port == 0 || p.target_port > 65535 {
        errors.push(
            field,
            format!(
                "invalid target port {}: expected a port from 1 to 65535",
                p.target_port
            ),
        );
    }
    if p.published_port > 65535 {
        errors.push(
            field,
            format!(
                "invalid published port {}: expected a port from 1 to 65535, or 0 to let the cluster choose",
                p.published_port
            ),
        );
    }
    if p.proxy_protocol && (p.protocol != Protocol::Tcp || p.publish_mode != PublishMode::Ingress) {
        errors.push(
            field,
            format!(
                "port {}: the PROXY protocol applies to TCP ports published through the routing mesh: drop proxy=v2, or publish it over TCP in ingress mode",
                p.target_port
            ),
        );
    }
}

/// Checks a mount: an absolute target; a bind needs an absolute source, a
/// volume's name is a plain name, and a tmpfs has no source.
pub fn mount(m: &Mount, errors: &mut SpecError) {
    let field = "task.mounts";
    if !m.target.starts_with('/') || m.target.split('/').any(|c| c == "..") {
        errors.push(
            field,
            format!(
                "invalid {} mount target {:?}: give an absolute path without '..', e.g. target=/data",
                m.kind, m.target
            ),
        );
    }
    match (m.kind, m.source.as_deref()) {
        (MountKind::Bind, Some(src)) if src.starts_with('/') => {}
        (MountKind::Bind, src) => errors.push(
            field,
            format!(
                "invalid bind mount source {:?}: give the node's absolute path, e.g. source=/srv/data",
                src.unwrap_or_default()
            ),
        ),
        (MountKind::Volume, Some(src))
            if src.is_empty()
                || !src
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
        {
            errors.push(
                field,
                format!("invalid volume name {src:?}: use letters, digits, '_', '.' and '-', or leave source out for an anonymous volume"),
            );
        }
        (MountKind::Tmpfs, Some(src)) => errors.push(
            field,
            format!("a tmpfs mount has no source, but {src:?} was given: drop source="),
        ),
        _ => {}
    }
}

impl ServiceSpec {
    /// Checks the whole spec; every problem found is reported at once.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errors = SpecError::default();
        name(&self.name, "name", &mut errors);
        if let ServiceMode::Replicated { replicas } = self.mode
            && replicas > MAX_REPLICAS
        {
            errors.push(
                "mode.replicated.replicas",
                format!("invalid replica count {replicas}: expected a whole number from 0 to {MAX_REPLICAS}"),
            );
        }
        self.task.check(&mut errors);
        update_config(&self.update, "update", &mut errors);
        update_config(&self.rollback, "rollback", &mut errors);
        if self.endpoint.mode == crate::model::EndpointMode::Dnsrr
            && let Some(p) = self.endpoint.ports.iter().find(|p| p.is_ingress())
        {
            errors.push(
                "endpoint.mode",
                format!(
                    "port {}:{} is published through the routing mesh, which needs a virtual IP: use --endpoint-mode vip, or publish it with mode=host",
                    p.published_port, p.target_port
                ),
            );
        }
        let mut nets = std::collections::HashSet::new();
        for n in &self.task.networks {
            if n.target.trim().is_empty() {
                errors.push(
                    "task.networks",
                    "a network is given without a name: name it",
                );
            } else if !nets.insert(n.target.as_str()) {
                errors.push(
                    "task.networks",
                    format!(
                        "network {} is given twice: attach to each network once",
                        n.target
                    ),
                );
            }
            for a in &n.aliases {
                name(a, "task.networks.aliases", &mut errors);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.endpoint.ports {
            port(p, "endpoint.ports", &mut errors);
            if p.published_port != 0 && !seen.insert((p.published_port, p.protocol)) {
                errors.push(
                    "endpoint.ports",
                    format!(
                        "published port {}/{} is given twice: publish each port once",
                        p.published_port, p.protocol
                    ),
                );
            }
        }
        errors.into_result()
    }
}

impl TaskSpec {
    /// Checks the task template.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errors = SpecError::default();
        self.check(&mut errors);
        errors.into_result()
    }

    fn check(&self, errors: &mut SpecError) {
        if self.image.trim().is_empty() {
            errors.push("task.image", "no image or command given: name the image (or, with the process runtime, the program) to run");
        }
        for e in &self.env {
            if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                errors.push(
                    "task.env",
                    format!("invalid environment entry {e:?}: expected KEY=VALUE"),
                );
            }
        }
        for k in self.labels.keys() {
            if k.starts_with(RESERVED_LABEL_PREFIX) {
                errors.push(
                    "task.labels",
                    format!("label {k:?} uses the prefix {RESERVED_LABEL_PREFIX:?}, which the runtimes keep for their own labels: rename it"),
                );
            }
        }
        if let Some(w) = &self.workdir
            && !w.starts_with('/')
        {
            errors.push(
                "task.workdir",
                format!("invalid working directory {w:?}: it must be an absolute path"),
            );
        }
        for line in &self.hosts {
            let mut words = line.split_whitespace();
            let ip_ok = words
                .next()
                .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok());
            if !ip_ok || words.next().is_none() {
                errors.push(
                    "task.hosts",
                    format!("invalid hosts entry {line:?}: expected \"IP NAME [ALIAS...]\", e.g. \"10.0.0.5 db\""),
                );
            }
        }
        if self
            .stop_signal
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            errors.push(
                "task.stop_signal",
                "the stop signal is empty: name one such as SIGINT, or leave it out",
            );
        }
        if self
            .log_driver
            .as_ref()
            .is_some_and(|l| l.name.trim().is_empty())
        {
            errors.push(
                "task.log_driver",
                "the log driver has no name: name one such as json-file or local",
            );
        }
        for u in &self.ulimits {
            if u.name.trim().is_empty() || u.name.contains(char::is_whitespace) {
                errors.push(
                    "task.ulimits",
                    format!(
                        "invalid ulimit name {:?}: use a resource such as nofile or nproc",
                        u.name
                    ),
                );
            } else if u.soft < -1 || u.hard < -1 || (u.hard >= 0 && (u.soft < 0 || u.soft > u.hard))
            {
                errors.push(
                    "task.ulimits",
                    format!(
                        "invalid ulimit {}={}:{}: the soft limit must not exceed the hard one (-1 is unlimited)",
                        u.name, u.soft, u.hard
                    ),
                );
            }
        }
        for (kind, n) in &self.resources.generic {
            if let Err(e) = crate::model::check_generic_kind(kind) {
                errors.push("task.resources.generic", e);
            } else if *n == 0 {
                errors.push(
                    "task.resources.generic",
                    format!("{kind}=0 reserves nothing: reserve at least 1, or leave {kind} out"),
                );
            }
        }
        if !(-1000..=1000).contains(&self.oom_score_adj) {
            errors.push(
                "task.oom_score_adj",
                format!(
                    "invalid OOM score adjustment {}: give -1000 to 1000",
                    self.oom_score_adj
                ),
            );
        }
        if let Some(k) = self
            .sysctls
            .keys()
            .find(|k| k.trim().is_empty() || k.contains(char::is_whitespace))
        {
            errors.push(
                "task.sysctls",
                format!("invalid sysctl name {k:?}: use a name such as net.core.somaxconn"),
            );
        }
        if let Some(h) = &self.healthcheck {
            if h.test.is_empty() {
                errors.push("task.healthcheck.test", "the health check has no command: give the command to run, e.g. [\"curl\", \"-f\", \"localhost\"]");
            }
            let too_short = |d: Duration| !d.is_zero() && d < Duration::from_millis(1);
            if too_short(h.interval) || too_short(h.timeout) {
                errors.push(
                    "task.healthcheck",
                    "health check interval and timeout must be at least 1ms (or 0, for the default)",
                );
            }
        }
        let r = &self.resources;
        for (what, limit, reserve) in [
            ("CPU", r.limits.nano_cpus, r.reservations.nano_cpus),
            ("memory", r.limits.memory_bytes, r.reservations.memory_bytes),
        ] {
            if limit != 0 && reserve > limit {
                errors.push("task.resources", format!("the {what} reservation ({reserve}) is above its limit ({limit}): lower the reservation or raise the limit"));
            }
        }
        for c in &self.placement.constraints {
            if let Err(e) = c.parse::<Constraint>() {
                errors.extend(e);
            }
        }
        for p in &self.placement.preferences {
            let PlacementPreference::Spread { descriptor } = p;
            if let Err(e) = descriptor.parse::<Attribute>() {
                errors.push(
                    "placement.preferences",
                    format!("invalid spread preference: {e}"),
                );
            }
        }
        let mut targets = std::collections::HashSet::new();
        for m in &self.mounts {
            mount(m, errors);
            if !targets.insert(m.target.trim_end_matches('/')) {
                errors.push(
                    "task.mounts",
                    format!(
                        "mount target {:?} is used twice: each mount needs its own target",
                        m.target
                    ),
                );
            }
        }
        for (kind, refs) in [("secret", &self.secrets), ("config", &self.configs)] {
            let mut targets = std::collections::HashSet::new();
            for f in refs {
                name(&f.name, &format!("task.{kind}s"), errors);
                if f.target.is_empty() || f.target.contains("..") {
                    errors.push(
                        format!("task.{kind}s"),
                        format!(
                            "invalid {kind} target {:?}: give a file name without '..'",
                            f.target
                        ),
                    );
                } else if !targets.insert(&f.target) {
                    errors.push(
                        format!("task.{kind}s"),
                        format!(
                            "{kind} target {:?} is used twice: each file needs its own target",
                            f.target
                        ),
                    );
                }
            }
        }
    }
}

fn update_config(u: &UpdateConfig, field: &str, errors: &mut SpecError) {
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        errors.push(
            format!("{field}.max_failure_ratio"),
            format!(
                "invalid failure ratio {}: expected a fraction from 0 to 1",
                u.max_failure_ratio
            ),
        );
    }
    if field == "rollback" {
        if u.failure_action == crate::model::FailureAction::Rollback {
            errors.push(
                "rollback.failure_action",
                "a rollback cannot roll back on failure: use pause or continue",
            );
        }
        if u.canary > 0 {
            errors.push(
                "rollback.canary",
                "canaries apply to updates only: set them on the update config",
            );
        }
    }
}

impl NetworkSpec {
    /// Checks the network spec: its name, driver, and that its subnet holds
    /// hosts and its gateway is one of them.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errors = SpecError::default();
        name(&self.name, "name", &mut errors);
        if !matches!(self.driver.as_str(), "" | "overlay") {
            errors.push(
                "driver",
                format!(
                    "unknown network driver {:?}: swarm networks use the overlay driver (--driver overlay)",
                    self.driver
                ),
            );
        }
        if let Some(s) = self.subnet
            && s.prefix() > 30
        {
            errors.push(
                "subnet",
                format!("subnet {s} holds no host addresses: use a prefix length of at most 30"),
            );
        }
        match (self.subnet, self.gateway) {
            (None, Some(g)) => errors.push(
                "gateway",
                format!("gateway {g} is given without a subnet: give --subnet too"),
            ),
            (Some(s), Some(g)) if !s.is_host(g) => errors.push(
                "gateway",
                format!("gateway {g} is not a host address of subnet {s}: give one inside it"),
            ),
            _ => {}
        }
        errors.into_result()
    }
}

fn data(name_: &str, bytes: usize, kind: &str) -> Result<(), SpecError> {
    let mut errors = SpecError::default();
    name(name_, "name", &mut errors);
    if bytes > MAX_DATA_BYTES {
        errors.push(
            "data",
            format!(
                "{kind} {name_:?} is {bytes} bytes: the limit is {MAX_DATA_BYTES} bytes (500 KiB)"
            ),
        );
    }
    errors.into_result()
}

impl SecretSpec {
    /// Checks the name and the size of the data.
    pub fn validate(&self) -> Result<(), SpecError> {
        data(&self.name, self.data.len(), "secret")
    }
}

impl ConfigSpec {
    /// Checks the name and the size of the data.
    pub fn validate(&self) -> Result<(), SpecError> {
        data(&self.name, self.data.len(), "config")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortConfig, Protocol, PublishMode, RestartCondition};

    fn spec() -> ServiceSpec {
        ServiceSpec::replicated("web", 3, vec!["sleep".into(), "3600".into()])
    }

    fn message(r: Result<(), SpecError>) -> String {
        r.expect_err("spec should be rejected").to_string()
    }

    #[test]
    fn the_proxy_protocol_is_for_tcp_ports_of_the_mesh() {
        let p: PortConfig = "published=8090,target=80,proxy=v2".parse().unwrap();
        assert!(p.proxy_protocol);
        for bad in [
            "published=8090,target=80,proxy=v2,protocol=udp",
            "published=8090,target=80,proxy=v2,mode=host",
        ] {
            let e = bad.parse::<PortConfig>().unwrap_err().to_string();
            assert!(e.contains("the PROXY protocol applies to TCP ports"), "{e}");
        }
        let e = "published=8090,target=80,proxy=v1"
            .parse::<PortConfig>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("use proxy=v2"), "{e}");
    }

    #[test]
    fn a_good_spec_passes() {
        spec().validate().unwrap();
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "",
            "_web",
            "web_",
            "-web",
            "web-",
            "a b",
            "a.b",
            &"x".repeat(64),
        ] {
            let mut s = spec();
            s.name = bad.into();
            let m = message(s.validate());
            assert!(m.contains("invalid name"), "{bad:?}: {m}");
        }
        // A stack's services are `<stack>_<service>`, as swarm allows.
        for good in ["app_web", "a-b_c", "x"] {
            let mut s = spec();
            s.name = good.into();
            assert!(s.validate().is_ok(), "{good:?}");
        }
    }

    #[test]
    fn rejects_absurd_replica_counts() {
        let mut s = spec();
        s.mode = ServiceMode::Replicated {
            replicas: MAX_REPLICAS + 1,
        };
        assert!(message(s.validate()).contains("invalid replica count 1000001"));
    }

    #[test]
    fn rejects_negative_replica_counts_in_json() {
        let json =
            r#"{"name":"web","mode":{"replicated":{"replicas":-1}},"task":{"image":"sleep"}}"#;
        let err = serde_json::from_str::<ServiceSpec>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid replica count -1"), "{err}");
        assert!(err.contains("from 0 to 1000000"), "{err}");
    }

    #[test]
    fn rejects_malformed_constraints() {
        let mut s = spec();
        s.task.placement.constraints = vec!["node.labels.type=web".into()];
        let m = message(s.validate());
        assert_eq!(
            m,
            r#"invalid constraint "node.labels.type=web": expected == or !=, e.g. node.labels.type==web"#
        );
    }

    #[test]
    fn rejects_ports_out_of_range() {
        let mut s = spec();
        s.endpoint.ports = vec![PortConfig {
            proxy_protocol: false,
            protocol: Default::default(),
            target_port: 70000,
            published_port: 8080,
            publish_mode: Default::default(),
        }];
        assert!(
            message(s.validate())
                .contains("invalid target port 70000: expected a port from 1 to 65535")
        );
        let err = "8080:0".parse::<PortConfig>().unwrap_err().to_string();
        assert!(err.contains("invalid target port 0"), "{err}");
        let err = "99999:80".parse::<PortConfig>().unwrap_err().to_string();
        assert!(err.contains("invalid published port 99999"), "{err}");
        let err = "80:http".parse::<PortConfig>().unwrap_err().to_string();
        assert!(err.contains("not a number"), "{err}");
        assert_eq!(
            "8080:80".parse::<PortConfig>().unwrap().published_port,
            8080
        );
    }

    #[test]
    fn parses_both_port_forms() {
        let p: PortConfig = "8080:80".parse().unwrap();
        assert_eq!(
            (p.published_port, p.target_port, p.publish_mode),
            (8080, 80, PublishMode::Ingress),
            "the short form publishes through the routing mesh, as in docker"
        );
        let p: PortConfig = "mode=host,published=53,target=5353,protocol=udp"
            .parse()
            .unwrap();
        assert_eq!(
            (p.published_port, p.target_port, p.protocol, p.publish_mode),
            (53, 5353, Protocol::Udp, PublishMode::Host)
        );
        let err = "published=80"
            .parse::<PortConfig>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no target port: add target=PORT"), "{err}");
        let err = "target=80,mode=mesh"
            .parse::<PortConfig>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown mode \"mesh\""), "{err}");
        let err = "80/sctp".parse::<PortConfig>().unwrap_err().to_string();
        assert!(err.contains("unknown protocol \"sctp\""), "{err}");
    }

    #[test]
    fn parses_and_checks_mounts() {
        let m: Mount = "type=bind,source=/srv/data,target=/data,readonly"
            .parse()
            .unwrap();
        assert_eq!(
            m,
            Mount {
                kind: MountKind::Bind,
                source: Some("/srv/data".into()),
                target: "/data".into(),
                read_only: true,
            }
        );
        let m: Mount = "src=cache,dst=/cache".parse().unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref()),
            (MountKind::Volume, Some("cache")),
            "type defaults to volume"
        );
        let bad = |s: &str| s.parse::<Mount>().unwrap_err().to_string();
        assert!(bad("type=bind,source=data,target=/d").contains("absolute path, e.g. source="));
        assert!(bad("type=tmpfs,source=x,target=/t").contains("has no source"));
        assert!(bad("type=nfs,target=/t").contains("unknown type \"nfs\""));
        assert!(bad("type=tmpfs,target=relative").contains("give an absolute path"));
        assert!(bad("type=volume,source=a/b,target=/v").contains("invalid volume name"));
        assert!(bad("type=tmpfs,target=/t,size=1").contains("unknown field \"size\""));

        let mut s = spec();
        s.task.labels.insert("swarm.task.id".into(), "x".into());
        assert!(
            message(s.validate()).contains("label \"swarm.task.id\" uses the prefix \"swarm.\"")
        );

        let mut s = spec();
        s.task.mounts = vec![
            "type=tmpfs,target=/t".parse().unwrap(),
            "type=volume,target=/t/".parse().unwrap(),
        ];
        assert!(message(s.validate()).contains("mount target \"/t/\" is used twice"));
    }

    #[test]
    fn rejects_unknown_restart_conditions() {
        let err = "sometimes"
            .parse::<RestartCondition>()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            r#"unknown restart condition "sometimes": expected none, on-failure or any"#
        );
        let json = r#"{"image":"sleep","restart":{"condition":"sometimes"}}"#;
        let err = serde_json::from_str::<TaskSpec>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `sometimes`"), "{err}");
        assert_eq!(
            "on-failure".parse::<RestartCondition>().unwrap(),
            RestartCondition::OnFailure
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut s = spec();
        s.name = "bad name".into();
        s.task.env = vec!["NOEQUALS".into()];
        s.task.resources.limits.memory_bytes = 10;
        s.task.resources.reservations.memory_bytes = 20;
        let e = s.validate().unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        assert!(e.to_string().starts_with("3 problems: "));
    }

    #[test]
    fn rejects_oversized_secrets() {
        let s = SecretSpec {
            name: "key".into(),
            data: vec![0; MAX_DATA_BYTES + 1],
            ..Default::default()
        };
        assert!(message(s.validate()).contains("the limit is 512000 bytes"));
    }
}
