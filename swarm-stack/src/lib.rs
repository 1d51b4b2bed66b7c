//! Compose files (format 3.x) read into swarm stacks, as `docker stack
//! deploy` reads them, and the plan that brings a cluster to a stack.
//!
//! - [`Stack::from_compose`] reads the file: `${VAR}` interpolation from
//!   the environment given, every form the format allows for a field
//!   ([`compose`]), names prefixed with the stack's (`app_web`), Docker's
//!   labels (`com.docker.stack.namespace`, `com.docker.stack.image`), the
//!   service's short name as its alias on each network, a `default`
//!   network for services that name none. The options `docker stack
//!   deploy` ignores are ignored with its warning; any other unknown key
//!   is refused with its place in the file.
//! - [`Stack::plan`] compares it with what the cluster has ([`Current`])
//!   and answers the [`Action`]s to take, in order: networks, secrets and
//!   configs first, then services (created, or updated where their spec
//!   changed), and with `prune` the stack's services the file no longer
//!   has. Nothing is written by this crate: the caller runs the actions
//!   (`swarmctl stack deploy`) through its control API.
//!
//! ```
//! use swarm_stack::{Action, Current, Stack};
//!
//! let file = "
//! services:
//!   web:
//!     image: nginx:${TAG:-1.27}
//!     deploy: {replicas: 3}
//!     ports: ['8080:80']
//! ";
//! let stack = Stack::from_compose("app", file, std::path::Path::new("."), &|_| None).unwrap();
//! assert_eq!(stack.services[0].name, "app_web");
//! assert_eq!(stack.services[0].task.image, "nginx:1.27");
//! let plan = stack.plan(&Current::default(), false).unwrap();
//! assert!(matches!(&plan[0], Action::CreateNetwork(n) if n.name == "app_default"));
//! assert!(matches!(&plan[1], Action::CreateService(s) if s.name == "app_web"));
//! ```

pub mod compose;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use compose::{
    ComposeFile, External, FileDef, FileRefDef, ListOrMap, NetworkDef, PortDef, Scalar, ServiceDef,
    ServiceNetworks, StringOrList, UpdateDef, VolumeDef,
};
use swarm_core::model::{
    ConfigSpec, DnsConfig, EndpointMode, FailureAction, FileReference, HealthCheck, LogDriver,
    Mount, MountKind, NetworkAttachment, NetworkSpec, PlacementPreference, PortConfig, Protocol,
    PublishMode, RestartCondition, SecretSpec, ServiceMode, ServiceSpec, Ulimit, UpdateConfig,
    UpdateOrder,
};

/// The label that names a stack's objects' stack.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// The label that keeps a stack service's image as the file wrote it.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

/// The service options `docker stack deploy` ignores, with a warning.
const IGNORED: &[&str] = &[
    "build",
    "cgroup_parent",
    "cgroupns_mode",
    "container_name",
    "depends_on",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// What is wrong with a compose file, or with deploying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// The file is not valid YAML, or a field has the wrong shape.
    #[error("the compose file cannot be read: {0}")]
    Syntax(String),
    /// A field's value is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// An `external` network, secret or config is not in the cluster.
    #[error(
        "{kind} {name:?} is declared as external, but could not be found: create it before the stack is deployed"
    )]
    MissingExternal {
        /// `network`, `secret` or `config`.
        kind: &'static str,
        /// Its name in the cluster.
        name: String,
    },
}

fn invalid(at: &str, why: impl std::fmt::Display) -> StackError {
    StackError::Invalid(format!("{at}: {why}"))
}

/// A stack read from a compose file: the specs to deploy, with their
/// names in the cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stack {
    /// The stack's name.
    pub name: String,
    /// The networks it makes.
    pub networks: Vec<NetworkSpec>,
    /// The secrets it makes.
    pub secrets: Vec<SecretSpec>,
    /// The configs it makes.
    pub configs: Vec<ConfigSpec>,
    /// Its services.
    pub services: Vec<ServiceSpec>,
    /// The networks, secrets and configs it uses but does not make.
    pub external: ExternalObjects,
    /// What was ignored or guessed, for the user.
    pub warnings: Vec<String>,
}

/// Objects a stack expects to find in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExternalObjects {
    /// Network names.
    pub networks: BTreeSet<String>,
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// Config names.
    pub configs: BTreeSet<String>,
}

/// What the cluster has, as [`Stack::plan`] needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    /// Every service's spec, by name.
    pub services: BTreeMap<String, ServiceSpec>,
    /// Every network's name.
    pub networks: BTreeSet<String>,
    /// Every secret's name.
    pub secrets: BTreeSet<String>,
    /// Every config's name.
    pub configs: BTreeSet<String>,
}

/// One step of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this network.
    CreateNetwork(NetworkSpec),
    /// Create this secret.
    CreateSecret(SecretSpec),
    /// Create this config.
    CreateConfig(ConfigSpec),
    /// Update the secret of this name to this spec, as `docker stack
    /// deploy` does: its labels may change, and the manager refuses new
    /// data (a secret cannot change: the file's new data needs a new name).
    UpdateSecret(SecretSpec),
    /// Update the config of this name, as [`Action::UpdateSecret`].
    UpdateConfig(ConfigSpec),
    /// Create this service.
    CreateService(ServiceSpec),
    /// Replace the spec of the service of this name.
    UpdateService(ServiceSpec),
    /// Remove the stack's service of this name (`--prune`).
    RemoveService(String),
}

impl Stack {
    /// Reads the compose file `text` as stack `name`; relative paths
    /// (secrets' and configs' files, `env_file`, bind mounts) are read
    /// from `dir`, and `${VAR}` takes its value from `env`.
    ///
    /// # Errors
    /// A name, syntax or value the format does not allow, or a file that
    /// cannot be read; each names its place and how to write it.
    pub fn from_compose(
        name: &str,
        text: &str,
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, StackError> {
        check_stack_name(name)?;
        let mut stack = Self {
            name: name.to_owned(),
            ..Self::default()
        };
        // Compose files are YAML 1.1 where it matters: `mode: 0440` is
        // octal, as Docker's parser reads it.
        let mut options = serde_saphyr::Options::default();
        options.legacy_octal_numbers = true;
        let syntax = |e: serde_saphyr::Error| StackError::Syntax(e.to_string());
        // Variables are replaced inside the values, once the YAML is read,
        // as compose does: a comment is not interpolated, and a value
        // cannot bring structure (a newline, a `: `) into the file. A first
        // reading finds the variables the values use.
        let values: Values =
            serde_saphyr::from_str_with_options(text, options.clone()).map_err(syntax)?;
        let mut properties = std::collections::HashMap::new();
        for v in &values.0 {
            for name in text::variable_names(v) {
                if let Some(value) = env(&name) {
                    properties.insert(name, value);
                }
            }
            for name in text::unset_reads(v, env) {
                let w = text::unset_warning(&name);
                if !stack.warnings.contains(&w) {
                    stack.warnings.push(w);
                }
            }
        }
        options.property_syntax = serde_saphyr::PropertySyntax::DockerCompose;
        let file: ComposeFile =
            serde_saphyr::from_str_with_options(text, options.with_properties(properties))
                .map_err(|e| match e.without_snippet() {
                    serde_saphyr::Error::PropertyRequiredButUnset {
                        name,
                        message,
                        location,
                    }
                    | serde_saphyr::Error::PropertyRequiredButEmpty {
                        name,
                        message,
                        location,
                    } => StackError::Invalid(format!(
                        "line {} column {}: {name} must be set{}",
                        location.line(),
                        location.column(),
                        if message.is_empty() {
                            String::new()
                        } else {
                            format!(": {message}")
                        }
                    )),
                    _ => syntax(e),
                })?;
        if let Some(v) = &file.version {
            let v = v.to_string();
            if !v.starts_with('3') {
                return Err(invalid(
                    "version",
                    format!(
                        "compose file format {v} is not supported: write version \"3.8\" (or leave it out)"
                    ),
                ));
            }
        }
        if let Some(key) = file.other.keys().find(|k| !k.starts_with("x-")) {
            return Err(invalid(
                key,
                "unknown top-level key: expected version, services, networks, volumes, secrets, configs or x-*",
            ));
        }
        if file.services.is_empty() {
            return Err(invalid("services", "the file has no services"));
        }
        let reader = Reader {
            stack: name,
            dir,
            env,
            file: &file,
        };
        let networks = reader.networks(&mut stack)?;
        reader.files(&mut stack)?;
        for (short, def) in &file.services {
            let spec = reader.service(short, def, &networks, &mut stack.warnings)?;
            stack.services.push(spec);
        }
        Ok(stack)
    }

    /// The actions that bring `current` to this stack; with `prune`, the
    /// stack's services that the file no longer has are removed.
    ///
    /// # Errors
    /// An external object the cluster lacks.
    pub fn plan(&self, current: &Current, prune: bool) -> Result<Vec<Action>, StackError> {
        let missing = |kind, name: &String| StackError::MissingExternal {
            kind,
            name: name.clone(),
        };
        for n in &self.external.networks {
            if !current.networks.contains(n) {
                return Err(missing("network", n));
            }
        }
        for s in &self.external.secrets {
            if !current.secrets.contains(s) {
                return Err(missing("secret", s));
            }
        }
        for c in &self.external.configs {
            if !current.configs.contains(c) {
                return Err(missing("config", c));
            }
        }
        let mut actions = Vec::new();
        for n in &self.networks {
            if !current.networks.contains(&n.name) {
                actions.push(Action::CreateNetwork(n.clone()));
            }
        }
        for s in &self.secrets {
            actions.push(if current.secrets.contains(&s.name) {
                Action::UpdateSecret(s.clone())
            } else {
                Action::CreateSecret(s.clone())
            });
        }
        for c in &self.configs {
            actions.push(if current.configs.contains(&c.name) {
                Action::UpdateConfig(c.clone())
            } else {
                Action::CreateConfig(c.clone())
            });
        }
        for s in &self.services {
            match current.services.get(&s.name) {
                None => actions.push(Action::CreateService(s.clone())),
                Some(now) if now == s => {}
                Some(_) => actions.push(Action::UpdateService(s.clone())),
            }
        }
        if prune {
            let mine: BTreeSet<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
            for (name, spec) in &current.services {
                let in_stack = spec.labels.get(NAMESPACE_LABEL) == Some(&self.name);
                if in_stack && !mine.contains(name.as_str()) {
                    actions.push(Action::RemoveService(name.clone()));
                }
            }
        }
        Ok(actions)
    }
}

/// Every string value of a YAML document, keys left out: where compose
/// looks for `${VAR}`.
struct Values(Vec<String>);

impl<'de> serde::Deserialize<'de> for Values {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Collect<'a>(&'a mut Vec<String>);
        impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Collect<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_str<E>(self, v: &str) -> Result<(), E> {
                self.0.push(v.to_owned());
                Ok(())
            }
            fn visit_bool<E>(self, _: bool) -> Result<(), E> {
                Ok(())
            }
            fn visit_i64<E>(self, _: i64) -> Result<(), E> {
                Ok(())
            }
            fn visit_u64<E>(self, _: u64) -> Result<(), E> {
                Ok(())
            }
            fn visit_i128<E>(self, _: i128) -> Result<(), E> {
                Ok(())
            }
            fn visit_u128<E>(self, _: u128) -> Result<(), E> {
                Ok(())
            }
            fn visit_f64<E>(self, _: f64) -> Result<(), E> {
                Ok(())
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
                Ok(())
            }
            fn visit_unit<E>(self) -> Result<(), E> {
                Ok(())
            }
            fn visit_none<E>(self) -> Result<(), E> {
                Ok(())
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
                while a.next_element_seed(Collect(&mut *self.0))?.is_some() {}
                Ok(())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
                while a.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    a.next_value_seed(Collect(&mut *self.0))?;
                }
                Ok(())
            }
        }
        let mut all = Vec::new();
        d.deserialize_any(Collect(&mut all))?;
        Ok(Self(all))
    }
}

fn check_stack_name(name: &str) -> Result<(), StackError> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(StackError::Invalid(format!(
            "invalid stack name {name:?}: use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )))
    }
}

struct Reader<'a> {
    stack: &'a str,
    dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: &'a ComposeFile,
}

fn labels_of(list: Option<&ListOrMap>) -> BTreeMap<String, String> {
    list.map(ListOrMap::entries)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

/// The cluster name of a declared network, secret or config that is
/// `external` (`external.name`, else `name`, else its key); `None` if the
/// stack makes it.
fn external_name(e: Option<&External>, name: Option<&String>, key: &str) -> Option<String> {
    let named = match e {
        Some(External::Flag(true)) => None,
        Some(External::Named { name }) => Some(name.clone()),
        Some(External::Flag(false)) | None => return None,
    };
    Some(
        named
            .or_else(|| name.cloned())
            .unwrap_or_else(|| key.to_owned()),
    )
}

fn words(s: &StringOrList, at: &str) -> Result<Vec<String>, StackError> {
    match s {
        StringOrList::One(line) => text::shell_words(line).map_err(|e| invalid(at, e)),
        StringOrList::List(l) => Ok(l.clone()),
    }
}

fn list(s: &StringOrList) -> Vec<String> {
    match s {
        StringOrList::One(one) => vec![one.clone()],
        StringOrList::List(l) => l.clone(),
    }
}

fn dur(s: Option<&String>, at: &str) -> Result<Option<std::time::Duration>, StackError> {
    s.map(|s| text::duration(s).map_err(|e| invalid(at, e)))
        .transpose()
}

fn number(s: &Scalar, at: &str) -> Result<u32, StackError> {
    let text = s.to_string();
    text.parse()
        .map_err(|_| invalid(at, format!("{text:?} is not a whole number")))
}

impl Reader<'_> {
    fn prefixed(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }

    fn namespace(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(NAMESPACE_LABEL.to_owned(), self.stack.to_owned())])
    }

    /// The networks the file declares (and `default` if a service names
    /// none), by their name in the file: their name in the cluster.
    fn networks(&self, stack: &mut Stack) -> Result<BTreeMap<String, String>, StackError> {
        let mut names = BTreeMap::new();
        let wants_default = self.file.services.values().any(|s| s.networks.is_none());
        let mut declared: BTreeMap<String, NetworkDef> = self
            .file
            .networks
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect();
        if wants_default {
            declared.entry("default".to_owned()).or_default();
        }
        // As Docker's: a declared network no service uses is not made
        // (nor, if external, looked for).
        let mut used: BTreeSet<&str> = BTreeSet::new();
        for s in self.file.services.values() {
            match &s.networks {
                None => {
                    used.insert("default");
                }
                Some(ServiceNetworks::List(l)) => used.extend(l.iter().map(String::as_str)),
                Some(ServiceNetworks::Map(m)) => used.extend(m.keys().map(String::as_str)),
            }
        }
        for (key, def) in declared {
            if !used.contains(key.as_str()) {
                stack.warnings.push(format!(
                    "network {key} is declared but no service uses it: it is not created"
                ));
                continue;
            }
            let at = format!("networks.{key}");
            if let Some(name) = external_name(def.external.as_ref(), def.name.as_ref(), &key) {
                stack.external.networks.insert(name.clone());
                names.insert(key, name);
                continue;
            }
            let driver = def.driver.clone().unwrap_or_else(|| "overlay".into());
            if driver != "overlay" {
                return Err(invalid(
                    &format!("{at}.driver"),
                    format!("{driver:?} networks cannot span a swarm: use overlay"),
                ));
            }
            if def.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(invalid(
                    &format!("{at}.driver_opts"),
                    "driver options are not supported by this swarm's overlays: leave them out",
                ));
            }
            let mut spec =
                NetworkSpec::overlay(def.name.clone().unwrap_or_else(|| self.prefixed(&key)));
            spec.internal = def.internal.unwrap_or(false);
            spec.attachable = def.attachable.unwrap_or(false);
            spec.labels = labels_of(def.labels.as_ref());
            spec.labels.extend(self.namespace());
            for (i, c) in def
                .ipam
                .iter()
                .flat_map(|i| i.config.iter().flatten())
                .enumerate()
            {
                if i > 0 {
                    return Err(invalid(
                        &format!("{at}.ipam.config"),
                        "give one subnet per network",
                    ));
                }
                if let Some(s) = &c.subnet {
                    spec.subnet = Some(
                        s.parse()
                            .map_err(|e| invalid(&format!("{at}.ipam.config.subnet"), e))?,
                    );
                }
                if let Some(g) = &c.gateway {
                    spec.gateway = Some(
                        g.parse()
                            .map_err(|e| invalid(&format!("{at}.ipam.config.gateway"), e))?,
                    );
                }
            }
            names.insert(key, spec.name.clone());
            stack.networks.push(spec);
        }
        Ok(names)
    }

    /// The secrets and configs the file declares.
    fn files(&self, stack: &mut Stack) -> Result<(), StackError> {
        for (kind, defs) in [
            ("secrets", &self.file.secrets),
            ("configs", &self.file.configs),
        ] {
            for (key, def) in defs {
                let at = format!("{kind}.{key}");
                if let Some(name) = external_name(def.external.as_ref(), def.name.as_ref(), key) {
                    if kind == "secrets" {
                        stack.external.secrets.insert(name);
                    } else {
                        stack.external.configs.insert(name);
                    }
                    continue;
                }
                let (name, data, labels) = self.file_object(&at, key, def)?;
                if kind == "secrets" {
                    stack.secrets.push(SecretSpec { name, data, labels });
                } else {
                    stack.configs.push(ConfigSpec { name, data, labels });
                }
            }
        }
        Ok(())
    }

    /// A declared secret or config's name, data and labels (one the stack
    /// makes: not external).
    #[allow(clippy::type_complexity)]
    fn file_object(
        &self,
        at: &str,
        key: &str,
        def: &FileDef,
    ) -> Result<(String, Vec<u8>, BTreeMap<String, String>), StackError> {
        if def.driver.is_some() || def.template_driver.is_some() {
            return Err(invalid(
                at,
                "drivers and templates are not supported by this swarm: give a file",
            ));
        }
        let Some(file) = &def.file else {
            return Err(invalid(at, "give a file: (or external: true)"));
        };
        let path = self.dir.join(file);
        let data = std::fs::read(&path)
            .map_err(|e| invalid(&format!("{at}.file"), format!("{}: {e}", path.display())))?;
        let mut labels = labels_of(def.labels.as_ref());
        labels.extend(self.namespace());
        let name = def.name.clone().unwrap_or_else(|| self.prefixed(key));
        Ok((name, data, labels))
    }

    /// A secret's or config's name in the cluster, from its key.
    fn file_name(&self, kind: &str, key: &str, at: &str) -> Result<String, StackError> {
        let defs = if kind == "secrets" {
            &self.file.secrets
        } else {
            &self.file.configs
        };
        let def = defs.get(key).ok_or_else(|| {
            invalid(
                at,
                format!("{key:?} is not declared under the top-level {kind}: declare it there"),
            )
        })?;
        Ok(external_name(def.external.as_ref(), def.name.as_ref(), key)
            .unwrap_or_else(|| def.name.clone().unwrap_or_else(|| self.prefixed(key))))
    }

    fn file_refs(
        &self,
        kind: &str,
        refs: &[FileRefDef],
        at: &str,
    ) -> Result<Vec<FileReference>, StackError> {
        refs.iter()
            .map(|r| {
                let (source, target, uid, gid, mode) = match r {
                    FileRefDef::Short(s) => (s, None, None, None, None),
                    FileRefDef::Long {
                        source,
                        target,
                        uid,
                        gid,
                        mode,
                    } => (
                        source,
                        target.clone(),
                        uid.as_ref(),
                        gid.as_ref(),
                        mode.as_ref(),
                    ),
                };
                let mut reference: FileReference = self
                    .file_name(kind, source, at)?
                    .parse()
                    .map_err(|e| invalid(at, e))?;
                reference.target = target.unwrap_or_else(|| source.clone());
                if let Some(u) = uid {
                    reference.uid = number(u, &format!("{at}.uid"))?;
                }
                if let Some(g) = gid {
                    reference.gid = number(g, &format!("{at}.gid"))?;
                }
                if let Some(m) = mode {
                    reference.mode = match m {
                        Scalar::Str(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                            .map_err(|_| {
                                invalid(
                                    &format!("{at}.mode"),
                                    format!("{s:?} is not an octal mode such as 0440"),
                                )
                            })?,
                        other => number(other, &format!("{at}.mode"))?,
                    };
                }
                Ok(reference)
            })
            .collect()
    }

    fn service(
        &self,
        short: &str,
        def: &ServiceDef,
        networks: &BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) -> Result<ServiceSpec, StackError> {
        let at = format!("services.{short}");
        let mut ignored = Vec::new();
        for key in def.other.keys() {
            if IGNORED.contains(&key.as_str()) {
                ignored.push(key.as_str());
            } else if !key.starts_with("x-") {
                return Err(invalid(
                    &format!("{at}.{key}"),
                    "unknown option: see the compose file reference (format 3.x)",
                ));
            }
        }
        if !ignored.is_empty() {
            warnings.push(format!(
                "Ignoring unsupported options: {}",
                ignored.join(", ")
            ));
        }
        let image = def.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
            invalid(
                &format!("{at}.image"),
                "a stack's services run images: give one (build: is ignored by stack deploy)",
            )
        })?;
        let deploy = def.deploy.clone().unwrap_or_default();
        let mode = match (deploy.mode.as_deref(), deploy.replicas) {
            (None | Some("replicated"), r) => ServiceMode::Replicated {
                replicas: r.unwrap_or(1),
            },
            (Some("global"), None) => ServiceMode::Global,
            (Some("global"), Some(_)) => {
                return Err(invalid(
                    &format!("{at}.deploy.replicas"),
                    "a global service runs one task per node: leave replicas out",
                ));
            }
            (Some(other), _) => {
                return Err(invalid(
                    &format!("{at}.deploy.mode"),
                    format!("unknown mode {other:?}: expected replicated or global"),
                ));
            }
        };
        let mut spec = ServiceSpec::replicated(self.prefixed(short), 0, vec![tagged(&image)]);
        spec.mode = mode;
        spec.labels = labels_of(deploy.labels.as_ref());
        spec.labels.extend(self.namespace());
        spec.labels.insert(IMAGE_LABEL.to_owned(), image);
        let task = &mut spec.task;
        task.labels = labels_of(def.labels.as_ref());
        task.labels.extend(self.namespace());
        if let Some(c) = &def.entrypoint {
            task.command = words(c, &format!("{at}.entrypoint"))?;
        }
        if let Some(c) = &def.command {
            task.args = words(c, &format!("{at}.command"))?;
        }
        task.env = self.environment(def, &at)?;
        task.hostname.clone_from(&def.hostname);
        task.user = def.user.as_ref().map(ToString::to_string);
        task.workdir.clone_from(&def.working_dir);
        if let Some(g) = dur(
            def.stop_grace_period.as_ref(),
            &format!("{at}.stop_grace_period"),
        )? {
            task.stop_grace_period = g;
        }
        task.stop_signal.clone_from(&def.stop_signal);
        task.init = def.init;
        task.read_only = def.read_only.unwrap_or(false);
        task.tty = def.tty.unwrap_or(false);
        task.open_stdin = def.stdin_open.unwrap_or(false);
        task.cap_add = def.cap_add.clone().unwrap_or_default();
        task.cap_drop = def.cap_drop.clone().unwrap_or_default();
        task.sysctls = labels_of(def.sysctls.as_ref());
        task.groups = def
            .group_add
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        task.hosts = hosts(def.extra_hosts.as_ref(), &format!("{at}.extra_hosts"))?;
        if def.dns.is_some() || def.dns_search.is_some() || def.dns_opt.is_some() {
            task.dns = Some(DnsConfig {
                nameservers: def.dns.as_ref().map(list).unwrap_or_default(),
                search: def.dns_search.as_ref().map(list).unwrap_or_default(),
                options: def.dns_opt.clone().unwrap_or_default(),
            });
        }
        if let Some(l) = &def.logging {
            task.log_driver = Some(LogDriver {
                name: l.driver.clone().unwrap_or_else(|| "json-file".into()),
                options: l
                    .options
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            });
        }
        if let Some(h) = &def.healthcheck {
            let at = format!("{at}.healthcheck");
            let test = if h.disable == Some(true) {
                vec!["NONE".to_owned()]
            } else {
                match &h.test {
                    Some(StringOrList::One(s)) => vec!["CMD-SHELL".to_owned(), s.clone()],
                    Some(StringOrList::List(l)) => l.clone(),
                    None => Vec::new(),
                }
            };
            task.healthcheck = Some(HealthCheck {
                test,
                interval: dur(h.interval.as_ref(), &format!("{at}.interval"))?.unwrap_or_default(),
                timeout: dur(h.timeout.as_ref(), &format!("{at}.timeout"))?.unwrap_or_default(),
                retries: h.retries.unwrap_or(0),
                start_period: dur(h.start_period.as_ref(), &format!("{at}.start_period"))?
                    .unwrap_or_default(),
            });
        }
        if let Some(r) = &deploy.resources {
            let at = format!("{at}.deploy.resources");
            for (which, target) in [
                (&r.limits, &mut task.resources.limits),
                (&r.reservations, &mut task.resources.reservations),
            ] {
                let Some(def) = which else { continue };
                if let Some(c) = &def.cpus {
                    let cpus: f64 = c.to_string().parse().map_err(|_| {
                        invalid(
                            &format!("{at}.cpus"),
                            format!("{c} is not a number of cores such as 0.5"),
                        )
                    })?;
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    {
                        target.nano_cpus = (cpus * 1e9) as u64;
                    }
                }
                if let Some(m) = &def.memory {
                    target.memory_bytes = text::bytes(&m.to_string())
                        .map_err(|e| invalid(&format!("{at}.memory"), e))?;
                }
            }
            if let Some(p) = r.limits.as_ref().and_then(|l| l.pids) {
                task.pids_limit = p;
            }
            if r.reservations.as_ref().is_some_and(|l| l.pids.is_some()) {
                return Err(invalid(
                    &format!("{at}.reservations.pids"),
                    "processes can be limited, not reserved: move pids under limits",
                ));
            }
            if r.limits
                .as_ref()
                .is_some_and(|l| l.generic_resources.is_some())
            {
                return Err(invalid(
                    &format!("{at}.limits.generic_resources"),
                    "generic resources are reserved, not limited: move them under reservations",
                ));
            }
            let generic = r
                .reservations
                .as_ref()
                .and_then(|l| l.generic_resources.as_ref());
            for (i, g) in generic.into_iter().flatten().enumerate() {
                let at = format!("{at}.reservations.generic_resources[{i}]");
                let Some(d) = g
                    .discrete_resource_spec
                    .as_ref()
                    .filter(|_| g.named_resource_spec.is_none())
                else {
                    return Err(invalid(
                        &at,
                        "a service reserves an amount: write discrete_resource_spec: {kind: gpu, value: 1}",
                    ));
                };
                if task
                    .resources
                    .generic
                    .insert(d.kind.clone(), d.value)
                    .is_some()
                {
                    return Err(invalid(
                        &at,
                        format!(
                            "{} is reserved twice: give each kind once, with its total",
                            d.kind
                        ),
                    ));
                }
            }
        }
        task.ulimits = def
            .ulimits
            .iter()
            .flatten()
            .map(|(name, u)| {
                let (soft, hard) = match u {
                    compose::UlimitDef::Single(n) => (*n, *n),
                    compose::UlimitDef::Pair { soft, hard } => (*soft, *hard),
                };
                Ulimit {
                    name: name.clone(),
                    hard,
                    soft,
                }
            })
            .collect();
        task.oom_score_adj = def.oom_score_adj.unwrap_or(0);
        task.isolation.clone_from(&def.isolation);
        if let Some(r) = &deploy.restart_policy {
            let at = format!("{at}.deploy.restart_policy");
            if let Some(c) = &r.condition {
                task.restart.condition =
                    c.parse::<RestartCondition>().map_err(|e| invalid(&at, e))?;
            }
            if let Some(d) = dur(r.delay.as_ref(), &format!("{at}.delay"))? {
                task.restart.delay = d;
            }
            if let Some(n) = r.max_attempts {
                task.restart.max_attempts = n;
            }
            if let Some(w) = dur(r.window.as_ref(), &format!("{at}.window"))? {
                task.restart.window = w;
            }
        }
        if let Some(p) = &deploy.placement {
            task.placement.constraints = p.constraints.clone().unwrap_or_default();
            task.placement.preferences = p
                .preferences
                .iter()
                .flatten()
                .map(|p| PlacementPreference::Spread {
                    descriptor: p.spread.clone(),
                })
                .collect();
            task.placement.max_replicas_per_node = p.max_replicas_per_node.unwrap_or(0);
        }
        task.networks = match &def.networks {
            None => vec![attachment(networks, "default", short, &[], &at)?],
            Some(ServiceNetworks::List(l)) => l
                .iter()
                .map(|n| attachment(networks, n, short, &[], &at))
                .collect::<Result<_, _>>()?,
            Some(ServiceNetworks::Map(m)) => m
                .iter()
                .map(|(n, d)| {
                    let aliases = d.as_ref().map(|d| d.aliases.as_slice()).unwrap_or_default();
                    attachment(networks, n, short, aliases, &at)
                })
                .collect::<Result<_, _>>()?,
        };
        task.secrets = self.file_refs(
            "secrets",
            def.secrets.as_deref().unwrap_or_default(),
            &format!("{at}.secrets"),
        )?;
        task.configs = self.file_refs(
            "configs",
            def.configs.as_deref().unwrap_or_default(),
            &format!("{at}.configs"),
        )?;
        task.mounts = def
            .volumes
            .iter()
            .flatten()
            .map(|v| self.mount(v, &format!("{at}.volumes")))
            .collect::<Result<_, _>>()?;
        spec.endpoint.ports = def
            .ports
            .iter()
            .flatten()
            .map(|p| port(p, &format!("{at}.ports")))
            .collect::<Result<_, _>>()?;
        if let Some(m) = &deploy.endpoint_mode {
            spec.endpoint.mode = m
                .parse::<EndpointMode>()
                .map_err(|e| invalid(&format!("{at}.deploy.endpoint_mode"), e))?;
        }
        if let Some(u) = &deploy.update_config {
            spec.update = update_config(u, spec.update, &format!("{at}.deploy.update_config"))?;
        }
        if let Some(u) = &deploy.rollback_config {
            spec.rollback =
                update_config(u, spec.rollback, &format!("{at}.deploy.rollback_config"))?;
        }
        spec.validate().map_err(|e| invalid(&at, e))?;
        Ok(spec)
    }

    /// `env_file` first, then `environment` over it; a name without a
    /// value takes it from the environment, or is left out.
    fn environment(&self, def: &ServiceDef, at: &str) -> Result<Vec<String>, StackError> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for file in def.env_file.as_ref().map(list).unwrap_or_default() {
            let path = self.dir.join(&file);
            let content = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    &format!("{at}.env_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            for line in content.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match line.split_once('=') {
                    Some((k, v)) => {
                        env.insert(k.trim().to_owned(), v.to_owned());
                    }
                    None => {
                        if let Some(v) = (self.env)(line) {
                            env.insert(line.to_owned(), v);
                        }
                    }
                }
            }
        }
        for (k, v) in def
            .environment
            .as_ref()
            .map(ListOrMap::entries)
            .unwrap_or_default()
        {
            match v.or_else(|| (self.env)(&k)) {
                Some(v) => {
                    env.insert(k, v);
                }
                None => {
                    env.remove(&k);
                }
            }
        }
        Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
    }

    fn mount(&self, v: &VolumeDef, at: &str) -> Result<Mount, StackError> {
        let (kind, source, target, read_only) = match v {
            VolumeDef::Short(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [t] => (None, *t, None),
                    [s, t] => (Some(*s), *t, None),
                    [s, t, m] => (Some(*s), *t, Some(*m)),
                    _ => return Err(invalid(at, format!("{s:?}: expected SOURCE:TARGET[:ro]"))),
                };
                let read_only = match mode {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(m) => {
                        return Err(invalid(
                            at,
                            format!("{s:?}: unknown mode {m:?}: use ro or rw"),
                        ));
                    }
                };
                let kind = match source {
                    Some(s) if s.starts_with(['/', '.', '~']) => "bind",
                    _ => "volume",
                };
                (
                    kind.to_owned(),
                    source.map(str::to_owned),
                    target.to_owned(),
                    read_only,
                )
            }
            VolumeDef::Long {
                kind,
                source,
                target,
                read_only,
            } => (kind.clone(), source.clone(), target.clone(), *read_only),
        };
        let kind = match kind.as_str() {
            "bind" => MountKind::Bind,
            "volume" => MountKind::Volume,
            "tmpfs" => MountKind::Tmpfs,
            other => {
                return Err(invalid(
                    at,
                    format!("unknown volume type {other:?}: use volume, bind or tmpfs"),
                ));
            }
        };
        let source = match (kind, source) {
            (MountKind::Bind, Some(s)) if s.starts_with('.') => {
                Some(self.dir.join(s).display().to_string())
            }
            // A named volume of the file is the stack's, as Docker names it.
            (MountKind::Volume, Some(s)) if self.file.volumes.contains_key(&s) => {
                Some(self.prefixed(&s))
            }
            (_, s) => s,
        };
        Ok(Mount {
            kind,
            source,
            target,
            read_only,
        })
    }
}

/// An image reference with Docker's default tag: `nginx` is
/// `nginx:latest`, as the docker CLI sends it; a tag or digest stays.
fn tagged(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn attachment(
    networks: &BTreeMap<String, String>,
    key: &str,
    short: &str,
    aliases: &[String],
    at: &str,
) -> Result<NetworkAttachment, StackError> {
    let target = networks.get(key).ok_or_else(|| {
        invalid(
            &format!("{at}.networks"),
            format!(
                "network {key:?} is not declared under the top-level networks: declare it there"
            ),
        )
    })?;
    let mut all = vec![short.to_owned()];
    all.extend(aliases.iter().filter(|a| a.as_str() != short).cloned());
    Ok(NetworkAttachment {
        target: target.clone(),
        aliases: all,
        ..NetworkAttachment::default()
    })
}

/// `extra_hosts` (`host:ip`, `host=ip` or a map) as the spec's `IP NAME`.
fn hosts(extra: Option<&ListOrMap>, at: &str) -> Result<Vec<String>, StackError> {
    let entries = match extra {
        None => return Ok(Vec::new()),
        Some(ListOrMap::Map(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map(ToString::to_string).unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>(),
        Some(ListOrMap::List(l)) => l
            .iter()
            .map(|e| {
                e.split_once('=')
                    .or_else(|| e.split_once(':'))
                    .map(|(h, ip)| (h.to_owned(), ip.to_owned()))
                    .ok_or_else(|| invalid(at, format!("{e:?}: expected HOST:IP")))
            })
            .collect::<Result<_, _>>()?,
    };
    entries
        .into_iter()
        .map(|(host, ip)| {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| invalid(at, format!("{host}: {ip:?} is not an IP address")))?;
            Ok(format!("{ip} {host}"))
        })
        .collect()
}

fn port(p: &PortDef, at: &str) -> Result<PortConfig, StackError> {
    match p {
        PortDef::Short(Scalar::Int(n)) => format!("{n}").parse().map_err(|e| invalid(at, e)),
        PortDef::Short(Scalar::Str(s)) => {
            if s.matches(':').count() > 1 {
                return Err(invalid(
                    at,
                    format!("{s:?}: a swarm publishes ports on every address: leave the IP out"),
                ));
            }
            if s.contains('-') {
                return Err(invalid(
                    at,
                    format!("{s:?}: port ranges are not supported: list each port"),
                ));
            }
            s.parse().map_err(|e| invalid(at, e))
        }
        PortDef::Short(other) => Err(invalid(
            at,
            format!("{other}: expected PUBLISHED:TARGET, e.g. \"8080:80\""),
        )),
        PortDef::Long {
            target,
            published,
            protocol,
            mode,
        } => {
            let published = match published {
                None => 0,
                Some(p) => number(p, &format!("{at}.published"))?,
            };
            let protocol = match protocol.as_deref() {
                None | Some("tcp") => Protocol::Tcp,
                Some("udp") => Protocol::Udp,
                Some(other) => {
                    return Err(invalid(
                        &format!("{at}.protocol"),
                        format!("unknown protocol {other:?}: use tcp or udp"),
                    ));
                }
            };
            let publish_mode = match mode.as_deref() {
                None | Some("ingress") => PublishMode::Ingress,
                Some("host") => PublishMode::Host,
                Some(other) => {
                    return Err(invalid(
                        &format!("{at}.mode"),
                        format!("unknown mode {other:?}: use ingress or host"),
                    ));
                }
            };
            Ok(PortConfig {
                protocol,
                target_port: *target,
                published_port: published,
                publish_mode,
                proxy_protocol: false,
            })
        }
    }
}

fn update_config(u: &UpdateDef, mut c: UpdateConfig, at: &str) -> Result<UpdateConfig, StackError> {
    if let Some(p) = u.parallelism {
        c.parallelism = p;
    }
    if let Some(d) = dur(u.delay.as_ref(), &format!("{at}.delay"))? {
        c.delay = d;
    }
    if let Some(m) = dur(u.monitor.as_ref(), &format!("{at}.monitor"))? {
        c.monitor = m;
    }
    if let Some(a) = &u.failure_action {
        c.failure_action = match a.as_str() {
            "pause" => FailureAction::Pause,
            "continue" => FailureAction::Continue,
            "rollback" => FailureAction::Rollback,
            other => {
                return Err(invalid(
                    &format!("{at}.failure_action"),
                    format!("unknown action {other:?}: use pause, continue or rollback"),
                ));
            }
        };
    }
    if let Some(r) = &u.max_failure_ratio {
        c.max_failure_ratio = r.to_string().parse().map_err(|_| {
            invalid(
                &format!("{at}.max_failure_ratio"),
                format!("{r} is not a ratio from 0 to 1"),
            )
        })?;
    }
    if let Some(o) = &u.order {
        c.order = match o.as_str() {
            "stop-first" => UpdateOrder::StopFirst,
            "start-first" => UpdateOrder::StartFirst,
            other => {
                return Err(invalid(
                    &format!("{at}.order"),
                    format!("unknown order {other:?}: use stop-first or start-first"),
                ));
            }
        };
    }
    Ok(c)
}
