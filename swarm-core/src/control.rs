//! The control API: the one place where user requests enter the store.
//! Every request is validated first; a bad one changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{
    Config, ConfigSpec, DYNAMIC_PORTS, Kind, Meta, Network, NetworkSpec, Node, NodeRole, NodeSpec,
    NodeState, Object, Protocol, PublishMode, Secret, SecretSpec, Service, ServiceMode,
    ServiceSpec, Subnet, Task, UnlockKey, UpdateState, UpdateStatus,
};
use crate::store::{Change, ErrorKind, State, Store, StoreError};
use crate::{Id, SpecError};

/// Why a control request failed. Serialisable, so that a remote client
/// gets the same error as a local caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ControlError {
    /// The spec is invalid; nothing was written.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// No such object.
    #[error("{kind} {name} not found")]
    NotFound {
        /// Its kind.
        kind: Kind,
        /// The name or id asked for.
        name: String,
    },
    /// The request cannot be done as asked; the message says why and what
    /// to do instead.
    #[error("{0}")]
    Refused(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One manager, as the raft membership sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManagerInfo {
    /// Its node id.
    pub node_id: Id,
    /// Its address.
    pub addr: String,
    /// It leads.
    pub leader: bool,
    /// The leader hears from it (a voter that is not reachable counts
    /// against the quorum).
    pub reachable: bool,
}

/// The managers' membership, as the node daemon knows it: lets the
/// control API answer `node ls`'s MANAGER STATUS, and refuse a demotion
/// that would lose the quorum.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ManagerRoster: Send + Sync + 'static {
    /// Every manager.
    async fn managers(&self) -> Result<Vec<ManagerInfo>, ControlError>;
}

/// The control API over a store.
#[derive(Clone)]
pub struct Control<S> {
    store: S,
    routes: Arc<[Subnet]>,
    roster: Option<Arc<dyn ManagerRoster>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Control<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("store", &self.store)
            .field("routes", &self.routes)
            .field("roster", &self.roster.is_some())
            .finish()
    }
}

const RETRIES: usize = 16;

impl<S: Store> Control<S> {
    /// The API over `store`.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self {
            store,
            routes: Arc::from([]),
            roster: None,
        }
    }

    /// Reads the managers' raft status from `roster`: a demotion that
    /// would leave the other managers without a quorum is refused then,
    /// as Docker refuses it.
    #[must_use]
    pub fn with_roster(mut self, roster: Arc<dyn ManagerRoster>) -> Self {
        self.roster = Some(roster);
        self
    }

    /// The managers, from the roster (none without one).
    pub async fn managers(&self) -> Result<Vec<ManagerInfo>, ControlError> {
        match &self.roster {
            Some(r) => r.managers().await,
            None => Ok(Vec::new()),
        }
    }

    /// Refuses networks whose subnet overlaps one of `routes`: the
    /// networks this node reaches already (read them with swarm-net's
    /// `host_routes`). An overlay on such a subnet would hide them.
    #[must_use]
    pub fn with_routes(mut self, routes: impl IntoIterator<Item = Subnet>) -> Self {
        self.routes = routes.into_iter().collect();
        self
    }

    /// The store behind the API.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a service after validating its spec and checking that the
    /// secrets and configs it references exist.
    pub async fn create_service(
        &self,
        mut spec: ServiceSpec,
    ) -> Result<Arc<Service>, ControlError> {
        spec.validate()?;
        let state = self.store.state().await?;
        check_references(&state, &spec)?;
        publish_ports(&state, &mut spec, None)?;
        let service = Service::new(spec);
        let id = service.meta.id.clone();
        self.store
            .apply(vec![Change::Create(service.into())])
            .await?;
        self.service(&id).await
    }

    /// A service by name, id or unique id prefix.
    pub async fn service(&self, name_or_id: &str) -> Result<Arc<Service>, ControlError> {
        let state = self.store.state().await?;
        find_service(&state, name_or_id).cloned()
    }

    /// Changes a service's spec with `f`, validates it and writes it,
    /// retrying if the service changed meanwhile. The old spec goes into
    /// the service's history; a change to the task template or the
    /// published ports starts a rollout (see
    /// [`crate::manager::orchestrator::update`]).
    pub async fn update_service(
        &self,
        name_or_id: &str,
        f: impl Fn(&mut ServiceSpec) -> Result<(), ControlError>,
    ) -> Result<Arc<Service>, ControlError> {
        self.rewrite_service(name_or_id, |state, current| {
            let mut spec = current.spec.clone();
            f(&mut spec)?;
            if spec == current.spec {
                return Ok(None);
            }
            let mut service = current.clone();
            self.put_spec(state, &mut service, spec, UpdateState::Updating)?;
            Ok(Some(service))
        })
        .await
    }

    /// Replaces a service's spec with `spec`, as [`Control::update_service`]
    /// does. With `version`, the service must not have been written since
    /// that version (docker's `?version=`): otherwise the update is refused
    /// as out of sequence, and the caller reads the service again.
    pub async fn replace_service_spec(
        &self,
        name_or_id: &str,
        spec: ServiceSpec,
        version: Option<u64>,
    ) -> Result<Arc<Service>, ControlError> {
        self.rewrite_service(name_or_id, |state, current| {
            check_version(Kind::Service, &current.spec.name, &current.meta, version)?;
            if spec == current.spec {
                return Ok(None);
            }
            let mut service = current.clone();
            self.put_spec(state, &mut service, spec.clone(), UpdateState::Updating)?;
            Ok(Some(service))
        })
        .await
    }

    /// Rolls a service back: to the spec before the current one, or to
    /// revision `to` of its history (see [`Service::history`]). The
    /// restored spec becomes a new revision, so rolling back twice comes
    /// back. The rollout uses the restored spec's rollback config; the
    /// canaries of an update waiting for promotion go, and tasks already
    /// on the restored spec stay.
    pub async fn rollback_service(
        &self,
        name_or_id: &str,
        to: Option<u64>,
    ) -> Result<Arc<Service>, ControlError> {
        self.rewrite_service(name_or_id, |state, current| {
            let target = match to {
                None => current.previous_spec().ok_or_else(|| {
                    ControlError::Refused(format!(
                        "service {} has no previous spec to roll back to: it has not been updated since it was created",
                        current.spec.name
                    ))
                })?,
                Some(r) if r == current.revision() => {
                    return Err(ControlError::Refused(format!(
                        "revision {r} is the current spec of service {}: name an older revision (see service history)",
                        current.spec.name
                    )));
                }
                Some(r) => current
                    .history
                    .iter()
                    .find(|h| h.revision == r)
                    .map(|h| &h.spec)
                    .ok_or_else(|| {
                        let kept: Vec<String> =
                            current.history.iter().map(|h| h.revision.to_string()).collect();
                        ControlError::Refused(format!(
                            "service {} has no revision {r}: it keeps revisions {} (and {} is current)",
                            current.spec.name,
                            if kept.is_empty() { "none".into() } else { kept.join(", ") },
                            current.revision()
                        ))
                    })?,
            };
            let mut service = current.clone();
            let target = target.clone();
            target.validate()?;
            self.put_spec(state, &mut service, target, UpdateState::RollbackStarted)?;
            if service.update_status.as_ref().is_none_or(|u| !u.state.is_rollback()) {
                // Only the replicas or the rollout settings differ: nothing
                // rolls, but say what happened.
                service.update_status = Some(UpdateStatus {
                    completed_at: Some(std::time::SystemTime::now()),
                    ..UpdateStatus::started(UpdateState::RollbackCompleted, "rollback completed")
                });
            }
            Ok(Some(service))
        })
        .await
    }

    /// Promotes the canaries of an update waiting for it: the rollout
    /// goes on to the other slots.
    pub async fn promote_service(&self, name_or_id: &str) -> Result<Arc<Service>, ControlError> {
        self.rewrite_service(name_or_id, |_, current| {
            match &current.update_status {
                Some(u) if u.state == UpdateState::Updating && u.awaiting_promotion => {
                    let mut service = current.clone();
                    let status = service.update_status.as_mut().expect("checked above");
                    status.awaiting_promotion = false;
                    status.message = "canaries promoted".into();
                    Ok(Some(service))
                }
                other => Err(ControlError::Refused(format!(
                    "service {} has no canaries waiting for promotion ({}): promote applies to an update with --update-canary",
                    current.spec.name,
                    other.as_ref().map_or("it was never updated".to_owned(), |u| format!("its update is {}", u.state))
                ))),
            }
        })
        .await
    }

    /// Validates `spec` for `service` and makes it current; a new task
    /// template or new published ports start a rollout in `state`.
    fn put_spec(
        &self,
        state: &State,
        service: &mut Service,
        mut spec: ServiceSpec,
        rollout: UpdateState,
    ) -> Result<(), ControlError> {
        spec.validate()?;
        if std::mem::discriminant(&spec.mode) != std::mem::discriminant(&service.spec.mode) {
            return Err(ControlError::Refused(format!(
                "service {} is {}: its mode cannot change; remove it and create it again",
                service.spec.name,
                mode_name(&service.spec.mode)
            )));
        }
        if spec.name != service.spec.name {
            return Err(ControlError::Refused(format!(
                "service {} cannot be renamed to {}: create a new service instead",
                service.spec.name, spec.name
            )));
        }
        check_references(state, &spec)?;
        publish_ports(state, &mut spec, Some(&service.meta.id))?;
        let rolls = spec.task != service.spec.task || spec.endpoint != service.spec.endpoint;
        service.push_spec(spec);
        if rolls {
            let message = match rollout {
                UpdateState::RollbackStarted => "manually requested rollback",
                _ => "update in progress",
            };
            let mut status = UpdateStatus::started(rollout, message);
            let canary = service.spec.update.canary;
            if rollout == UpdateState::Updating && canary > 0 {
                status.awaiting_promotion = true;
                status.message = format!(
                    "running {canary} canar{} beside the old tasks: promote with `swarmctl service promote {}`{}",
                    if canary == 1 { "y" } else { "ies" },
                    service.spec.name,
                    if service.spec.update.auto_promote {
                        ", or wait for them to run for the monitor period"
                    } else {
                        ""
                    }
                );
            }
            service.update_status = Some(status);
        }
        Ok(())
    }

    /// Reads a service, lets `f` make its new version (`None`: no change),
    /// and writes it, retrying if it changed meanwhile.
    async fn rewrite_service(
        &self,
        name_or_id: &str,
        f: impl Fn(&State, &Service) -> Result<Option<Service>, ControlError>,
    ) -> Result<Arc<Service>, ControlError> {
        for _ in 0..RETRIES {
            let state = self.store.state().await?;
            let current = find_service(&state, name_or_id)?;
            let Some(service) = f(&state, current)? else {
                return Ok(current.clone());
            };
            let id = service.meta.id.clone();
            match self.store.apply(vec![Change::Update(service.into())]).await {
                Ok(_) => return self.service(&id).await,
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Refused(format!(
            "service {name_or_id} keeps changing; try again"
        )))
    }

    /// Sets the replica count of a replicated service.
    pub async fn scale(
        &self,
        name_or_id: &str,
        replicas: u64,
    ) -> Result<Arc<Service>, ControlError> {
        self.update_service(name_or_id, |spec| match &mut spec.mode {
            ServiceMode::Replicated { replicas: r } => {
                *r = replicas;
                Ok(())
            }
            ServiceMode::Global => Err(ControlError::Refused(format!(
                "service {} is global: scale applies to replicated services only",
                spec.name
            ))),
        })
        .await
    }

    /// Removes a service; its tasks are shut down and then reaped.
    pub async fn remove_service(&self, name_or_id: &str) -> Result<(), ControlError> {
        let state = self.store.state().await?;
        let s = find_service(&state, name_or_id)?;
        self.store
            .apply(vec![Change::Delete {
                kind: Kind::Service,
                id: s.meta.id.clone(),
                version: None,
            }])
            .await?;
        Ok(())
    }

    /// The tasks of a service, oldest first.
    pub async fn service_tasks(&self, name_or_id: &str) -> Result<Vec<Arc<Task>>, ControlError> {
        let state = self.store.state().await?;
        let s = find_service(&state, name_or_id)?;
        let mut tasks: Vec<Arc<Task>> = state.tasks_of_service(&s.meta.id).cloned().collect();
        tasks.sort_by_key(|t| (t.slot, t.meta.created_at));
        Ok(tasks)
    }

    /// A task by id or unique id prefix.
    pub async fn task(&self, id: &str) -> Result<Arc<Task>, ControlError> {
        let state = self.store.state().await?;
        find_by(Kind::Task, id, state.task(id), state.tasks(), |t| {
            &t.meta.id
        })
        .cloned()
    }

    /// A secret by id, name or unique id prefix.
    pub async fn secret(&self, name_or_id: &str) -> Result<Arc<Secret>, ControlError> {
        let state = self.store.state().await?;
        let exact = state
            .secret(name_or_id)
            .or_else(|| state.secret_by_name(name_or_id));
        find_by(Kind::Secret, name_or_id, exact, state.secrets(), |s| {
            &s.meta.id
        })
        .cloned()
    }

    /// A config by id, name or unique id prefix.
    pub async fn config(&self, name_or_id: &str) -> Result<Arc<Config>, ControlError> {
        let state = self.store.state().await?;
        let exact = state
            .config(name_or_id)
            .or_else(|| state.config_by_name(name_or_id));
        find_by(Kind::Config, name_or_id, exact, state.configs(), |c| {
            &c.meta.id
        })
        .cloned()
    }

    /// A node by id, id prefix or hostname.
    pub async fn node(&self, name_or_id: &str) -> Result<Arc<Node>, ControlError> {
        let state = self.store.state().await?;
        find_node(&state, name_or_id).cloned()
    }

    /// Changes a node's spec (availability, labels, role) with `f`.
    pub async fn update_node(
        &self,
        name_or_id: &str,
        f: impl Fn(&mut NodeSpec),
    ) -> Result<Arc<Node>, ControlError> {
        self.update_node_read_at(name_or_id, None, f).await
    }

    /// Replaces a node's spec with `spec`, made from the spec read at
    /// `version` (docker's `?version=`): refused as out of sequence if the
    /// spec has changed since, not for the node's status writes.
    pub async fn replace_node_spec(
        &self,
        name_or_id: &str,
        spec: NodeSpec,
        version: Option<u64>,
    ) -> Result<Arc<Node>, ControlError> {
        self.update_node_read_at(name_or_id, version, |s| *s = spec.clone())
            .await
    }

    async fn update_node_read_at(
        &self,
        name_or_id: &str,
        version: Option<u64>,
        f: impl Fn(&mut NodeSpec),
    ) -> Result<Arc<Node>, ControlError> {
        for _ in 0..RETRIES {
            let state = self.store.state().await?;
            let mut node = (**find_node(&state, name_or_id)?).clone();
            check_version(Kind::Node, node.display_name(), &node.meta, version)?;
            let before = node.spec.role;
            f(&mut node.spec);
            if before == NodeRole::Manager && node.spec.role == NodeRole::Worker {
                self.check_demotion(&state, &node).await?;
            }
            for key in node.spec.labels.keys() {
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(SpecError::single(
                        "labels",
                        format!("invalid label key {key:?}: use a non-empty key without spaces"),
                    )
                    .into());
                }
            }
            let id = node.meta.id.clone();
            match self.store.apply(vec![Change::Update(node.into())]).await {
                Ok(_) => return self.node(&id).await,
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Refused(format!(
            "node {name_or_id} keeps changing; try again"
        )))
    }

    /// Refuses to demote `node` when it is the last manager, or when the
    /// managers that stay would not make a quorum among themselves.
    async fn check_demotion(&self, state: &State, node: &Node) -> Result<(), ControlError> {
        let name = node.display_name();
        let managers = state
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .count();
        if managers <= 1 {
            return Err(ControlError::Refused(format!(
                "cannot demote {name}: it is the last manager, and the cluster would \
                 lose its state. Promote another node first"
            )));
        }
        let raft = self.managers().await?;
        let staying: Vec<_> = raft.iter().filter(|m| m.node_id != node.meta.id).collect();
        let reachable = staying.iter().filter(|m| m.reachable).count();
        if !staying.is_empty() && reachable < staying.len() / 2 + 1 {
            return Err(ControlError::Refused(format!(
                "cannot demote {name}: only {reachable} of the {} other managers \
                 are reachable, too few for a quorum. Bring the others back first",
                staying.len()
            )));
        }
        Ok(())
    }

    /// Removes a node from the cluster. A node that is not down needs
    /// `force`, as with `docker node rm`; a manager must be demoted first.
    pub async fn remove_node(&self, name_or_id: &str, force: bool) -> Result<(), ControlError> {
        let state = self.store.state().await?;
        let node = find_node(&state, name_or_id)?;
        if node.spec.role == NodeRole::Manager {
            return Err(ControlError::Refused(format!(
                "node {name_or_id} is a manager: demote it (`node demote {name_or_id}`) \
                 before removing it"
            )));
        }
        if node.status.state == NodeState::Ready && !force {
            return Err(ControlError::Refused(format!(
                "node {} is not down and can't be removed: stop it first, or use force",
                node.display_name()
            )));
        }
        self.store
            .apply(vec![Change::Delete {
                kind: Kind::Node,
                id: node.meta.id.clone(),
                version: None,
            }])
            .await?;
        Ok(())
    }

    /// Creates a secret.
    pub async fn create_secret(&self, spec: SecretSpec) -> Result<Arc<Secret>, ControlError> {
        spec.validate()?;
        let secret = Secret {
            meta: Meta::new(Id::generate()),
            spec,
        };
        let id = secret.meta.id.clone();
        self.store
            .apply(vec![Change::Create(secret.into())])
            .await?;
        let state = self.store.state().await?;
        state.secret(&id).cloned().ok_or(ControlError::NotFound {
            kind: Kind::Secret,
            name: id.to_string(),
        })
    }

    /// Creates a network after checking its spec, that its name is free and
    /// that its subnet overlaps no other network's and none of this node's
    /// routes.
    pub async fn create_network(
        &self,
        mut spec: NetworkSpec,
    ) -> Result<Arc<Network>, ControlError> {
        if spec.driver.is_empty() {
            spec.driver = "overlay".into();
        }
        spec.validate()?;
        let state = self.store.state().await?;
        if state.by_name(Kind::Network, &spec.name).is_some() {
            return Err(StoreError::AlreadyExists {
                kind: Kind::Network,
                name: spec.name,
            }
            .into());
        }
        if spec.ingress
            && let Some(other) = state.networks().find(|n| n.spec.ingress)
        {
            return Err(ControlError::Refused(format!(
                "network {} is the cluster's ingress network already: a cluster has one; remove it first",
                other.spec.name
            )));
        }
        if let Some(subnet) = spec.subnet {
            let taken = state
                .networks()
                .filter_map(|n| n.subnet().map(|s| (s, format!("network {}", n.spec.name))))
                .chain(
                    self.routes
                        .iter()
                        .map(|r| (*r, format!("this node's route {r}"))),
                );
            for (other, what) in taken {
                if other.overlaps(&subnet) {
                    return Err(SpecError::single(
                        "subnet",
                        format!("subnet {subnet} overlaps {what} ({other}): choose another subnet"),
                    )
                    .into());
                }
            }
        }
        let network = Network::new(spec);
        let id = network.meta.id.clone();
        self.store
            .apply(vec![Change::Create(network.into())])
            .await?;
        self.network(&id).await
    }

    /// A network by name, id or unique id prefix.
    pub async fn network(&self, name_or_id: &str) -> Result<Arc<Network>, ControlError> {
        let state = self.store.state().await?;
        find_network(&state, name_or_id).cloned()
    }

    /// Every network, by name.
    pub async fn networks(&self) -> Result<Vec<Arc<Network>>, ControlError> {
        let state = self.store.state().await?;
        let mut all: Vec<Arc<Network>> = state.networks().cloned().collect();
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(all)
    }

    /// Removes a network that no service uses, once no task holds an
    /// address on it: tasks still stopping are waited for, up to their
    /// stop grace period and 10 s more.
    pub async fn remove_network(&self, name_or_id: &str) -> Result<(), ControlError> {
        // Tasks of removed services still stopping hold the network a
        // while: the removal waits for them (within their stop grace
        // period, and 10 s more), rather than failing as Docker's does
        // right after `docker stack rm` removed the services.
        let mut deadline = None;
        loop {
            let state = self.store.state().await?;
            let net = find_network(&state, name_or_id)?;
            let id = &net.meta.id;
            let uses = |svc: &Service| {
                crate::manager::required_networks(
                    &state,
                    &svc.spec.task.networks,
                    &svc.spec.endpoint,
                )
                .is_ok_and(|need| need.iter().any(|(n, _)| &n.meta.id == id))
            };
            if let Some(user) = state.services().find(|svc| uses(svc)) {
                return Err(ControlError::Refused(format!(
                    "network {} is in use by service {}: remove the service, or take it off the network, first",
                    net.spec.name, user.spec.name
                )));
            }
            let attached: Vec<&Arc<Task>> = state
                .tasks()
                .filter(|t| {
                    !t.status.state.is_terminal() && t.networks.iter().any(|a| &a.network_id == id)
                })
                .collect();
            if attached.is_empty() {
                self.store
                    .apply(vec![Change::Delete {
                        kind: Kind::Network,
                        id: id.clone(),
                        version: None,
                    }])
                    .await?;
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            let until = *deadline.get_or_insert_with(|| {
                let grace = attached
                    .iter()
                    .map(|t| t.spec.stop_grace_period)
                    .max()
                    .unwrap_or_default();
                now + grace.min(std::time::Duration::from_secs(120))
                    + std::time::Duration::from_secs(10)
            });
            if now >= until {
                return Err(ControlError::Refused(format!(
                    "network {} still has {} task(s) attached: wait for them to stop, then try again",
                    net.spec.name,
                    attached.len()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Turns autolock on (making an unlock key, returned) or off. Every
    /// manager then wraps its data key with the unlock key (or keeps it
    /// plain again) within a second.
    pub async fn set_autolock(&self, enabled: bool) -> Result<Option<UnlockKey>, ControlError> {
        self.rewrite_cluster(|c| {
            c.spec.autolock = enabled;
            if enabled {
                c.unlock_key.get_or_insert_with(UnlockKey::generate);
            } else {
                c.unlock_key = None;
            }
            Ok(c.unlock_key.clone())
        })
        .await
    }

    /// The cluster's unlock key, replaced by a new one first with
    /// `rotate` (the old one then unlocks no manager that took the new).
    pub async fn unlock_key(&self, rotate: bool) -> Result<UnlockKey, ControlError> {
        self.rewrite_cluster(|c| {
            if !c.spec.autolock {
                return Err(ControlError::Refused(
                    "no unlock key is set: autolock is off; turn it on with `swarmctl swarm update --autolock=true`".into(),
                ));
            }
            if rotate || c.unlock_key.is_none() {
                c.unlock_key = Some(UnlockKey::generate());
            }
            Ok(c.unlock_key.clone().expect("set above"))
        })
        .await
    }

    /// Sets how many tasks each slot keeps, the running one included
    /// (`docker swarm update --task-history-limit`).
    pub async fn set_task_history_limit(&self, limit: u32) -> Result<(), ControlError> {
        self.rewrite_cluster(|c| {
            c.spec.task_history_limit = limit;
            Ok(())
        })
        .await
    }

    /// Changes the cluster object with `f`, retrying on a conflict.
    async fn rewrite_cluster<T>(
        &self,
        f: impl Fn(&mut crate::model::Cluster) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        for _ in 0..RETRIES {
            let state = self.store.state().await?;
            let Some(current) = state.cluster() else {
                return Err(ControlError::Refused(
                    "this store holds no cluster: initialise it first".into(),
                ));
            };
            let mut cluster = (**current).clone();
            let out = f(&mut cluster)?;
            if cluster == **current {
                return Ok(out);
            }
            match self.store.apply(vec![Change::Update(cluster.into())]).await {
                Ok(_) => return Ok(out),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Refused(
            "the cluster keeps changing; try again".into(),
        ))
    }

    /// Updates a secret to `spec`, where only its labels may change: its
    /// data is already in the tasks that use it, so new data is a new
    /// secret (Docker's rule too). `spec` may carry the data as it is
    /// (`docker stack deploy` sends it on every deploy) or none. With
    /// `version`, the secret's spec must not have changed since that
    /// version ("update out of sequence"). Unchanged labels write nothing.
    ///
    /// # Errors
    /// Another name or other data ([`ControlError::Refused`], with how to
    /// proceed), an unknown secret, a stale `version`.
    pub async fn update_secret(
        &self,
        name_or_id: &str,
        version: Option<u64>,
        spec: SecretSpec,
    ) -> Result<Arc<Secret>, ControlError> {
        let id = self
            .update_file(
                Kind::Secret,
                name_or_id,
                version,
                FileUpdate {
                    name: &spec.name,
                    data: &spec.data,
                    labels: spec.labels.clone(),
                },
            )
            .await?;
        self.secret(id.as_str()).await
    }

    /// Updates a config to `spec`, where only its labels may change, as
    /// [`Control::update_secret`] does a secret.
    ///
    /// # Errors
    /// As [`Control::update_secret`].
    pub async fn update_config(
        &self,
        name_or_id: &str,
        version: Option<u64>,
        spec: ConfigSpec,
    ) -> Result<Arc<Config>, ControlError> {
        let id = self
            .update_file(
                Kind::Config,
                name_or_id,
                version,
                FileUpdate {
                    name: &spec.name,
                    data: &spec.data,
                    labels: spec.labels.clone(),
                },
            )
            .await?;
        self.config(id.as_str()).await
    }

    /// Writes a secret's or config's new labels once its name and data are
    /// checked unchanged; answers its id.
    async fn update_file(
        &self,
        kind: Kind,
        name_or_id: &str,
        version: Option<u64>,
        update: FileUpdate<'_>,
    ) -> Result<Id, ControlError> {
        for _ in 0..RETRIES {
            let (meta, object) = if kind == Kind::Secret {
                let current = self.secret(name_or_id).await?;
                check_version(kind, &current.spec.name, &current.meta, version)?;
                update.check(kind, &current.spec.name, &current.spec.data)?;
                if current.spec.labels == update.labels {
                    return Ok(current.meta.id.clone());
                }
                let mut secret = (*current).clone();
                secret.spec.labels = update.labels.clone();
                secret.spec.validate()?;
                (current.meta.clone(), Object::from(secret))
            } else {
                let current = self.config(name_or_id).await?;
                check_version(kind, &current.spec.name, &current.meta, version)?;
                update.check(kind, &current.spec.name, &current.spec.data)?;
                if current.spec.labels == update.labels {
                    return Ok(current.meta.id.clone());
                }
                let mut config = (*current).clone();
                config.spec.labels = update.labels.clone();
                config.spec.validate()?;
                (current.meta.clone(), Object::from(config))
            };
            match self.store.apply(vec![Change::Update(object)]).await {
                Ok(_) => return Ok(meta.id),
                // The spec check runs again on the object as it is now.
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Refused(format!(
            "{kind} {name_or_id} keeps changing; try again"
        )))
    }

    /// Removes a secret no service uses.
    pub async fn remove_secret(&self, name: &str) -> Result<(), ControlError> {
        self.remove_file_data(Kind::Secret, name).await
    }

    /// Creates a config.
    pub async fn create_config(&self, spec: ConfigSpec) -> Result<Arc<Config>, ControlError> {
        spec.validate()?;
        let config = Config {
            meta: Meta::new(Id::generate()),
            spec,
        };
        let id = config.meta.id.clone();
        self.store
            .apply(vec![Change::Create(config.into())])
            .await?;
        let state = self.store.state().await?;
        state.config(&id).cloned().ok_or(ControlError::NotFound {
            kind: Kind::Config,
            name: id.to_string(),
        })
    }

    /// Removes a config no service uses.
    pub async fn remove_config(&self, name: &str) -> Result<(), ControlError> {
        self.remove_file_data(Kind::Config, name).await
    }

    /// Removes a secret or config (by name or id) unless a service
    /// references it.
    async fn remove_file_data(&self, kind: Kind, name_or_id: &str) -> Result<(), ControlError> {
        let state = self.store.state().await?;
        let (id, name) = match kind {
            Kind::Secret => state
                .secret_by_name(name_or_id)
                .or_else(|| state.secret(name_or_id))
                .map(|s| (s.meta.id.clone(), s.spec.name.clone())),
            _ => state
                .config_by_name(name_or_id)
                .or_else(|| state.config(name_or_id))
                .map(|c| (c.meta.id.clone(), c.spec.name.clone())),
        }
        .ok_or_else(|| ControlError::NotFound {
            kind,
            name: name_or_id.into(),
        })?;
        let uses = |svc: &Service| {
            let refs = if kind == Kind::Secret {
                &svc.spec.task.secrets
            } else {
                &svc.spec.task.configs
            };
            refs.iter().any(|r| r.name == name)
        };
        if let Some(user) = state.services().find(|svc| uses(svc)) {
            return Err(ControlError::Refused(format!(
                "{kind} {name} is in use by service {}: remove it from the service first",
                user.spec.name
            )));
        }
        self.store
            .apply(vec![Change::Delete {
                kind,
                id,
                version: None,
            }])
            .await?;
        Ok(())
    }
}

fn mode_name(mode: &ServiceMode) -> &'static str {
    match mode {
        ServiceMode::Replicated { .. } => "replicated",
        ServiceMode::Global => "global",
    }
}

fn check_references(state: &State, spec: &ServiceSpec) -> Result<(), ControlError> {
    let mut errors = SpecError::default();
    for r in &spec.task.secrets {
        if state.secret_by_name(&r.name).is_none() {
            errors.push(
                "task.secrets",
                format!("secret {} not found: create it first", r.name),
            );
        }
    }
    for r in &spec.task.configs {
        if state.config_by_name(&r.name).is_none() {
            errors.push(
                "task.configs",
                format!("config {} not found: create it first", r.name),
            );
        }
    }
    if let Err(why) = crate::manager::required_networks(state, &spec.task.networks, &spec.endpoint)
    {
        errors.push("task.networks", why);
    }
    Ok(errors.into_result()?)
}

/// Checks that `spec`'s published ports are free, and picks a port from
/// [`DYNAMIC_PORTS`] for each ingress port published as 0. An ingress port
/// answers on every node, so it may not be any other service's published
/// port; host-mode ports of different services may share a number (the
/// scheduler keeps them on different nodes). `own`: the service's id, on
/// an update.
fn publish_ports(
    state: &State,
    spec: &mut ServiceSpec,
    own: Option<&Id>,
) -> Result<(), ControlError> {
    let current = own.and_then(|id| state.service(id));
    let others: Vec<&Arc<Service>> = state
        .services()
        .filter(|s| Some(&s.meta.id) != own)
        .collect();
    let mut errors = SpecError::default();
    for p in spec.endpoint.new_ports(current.map(|c| &c.spec.endpoint)) {
        if let Some(other) = others
            .iter()
            .find(|s| s.spec.endpoint.ports.iter().any(|o| p.clashes_with(o)))
        {
            errors.push("endpoint.ports", p.taken_by(&other.spec.name));
        }
    }
    errors.into_result()?;
    let mut used: std::collections::HashSet<(Protocol, u32)> = others
        .iter()
        .flat_map(|s| s.spec.endpoint.ports.iter())
        .chain(&spec.endpoint.ports)
        .map(|p| (p.protocol, p.published_port))
        .collect();
    for p in spec
        .endpoint
        .ports
        .iter_mut()
        .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port == 0)
    {
        let port = DYNAMIC_PORTS
            .clone()
            .find(|n| !used.contains(&(p.protocol, *n)))
            .ok_or_else(|| {
                ControlError::Refused(format!(
                    "no free port left in {}-{} to publish port {}: publish it on a port of your choice",
                    DYNAMIC_PORTS.start(),
                    DYNAMIC_PORTS.end(),
                    p.target_port
                ))
            })?;
        used.insert((p.protocol, port));
        p.published_port = port;
    }
    Ok(())
}

/// A secret's or config's update as asked: only the labels may differ.
struct FileUpdate<'a> {
    name: &'a str,
    /// Empty: keep the data.
    data: &'a [u8],
    labels: BTreeMap<String, String>,
}

impl FileUpdate<'_> {
    /// Refuses another name, or data other than the current.
    fn check(&self, kind: Kind, name: &str, data: &[u8]) -> Result<(), ControlError> {
        if self.name != name || (!self.data.is_empty() && self.data != data) {
            return Err(ControlError::Refused(format!(
                "only updates to Labels are allowed: the name and data of {kind} {name} stay as they are; \
                 for new data, create a new {kind} and update the services that use this one"
            )));
        }
        Ok(())
    }
}

/// Refuses a write made from a spec read at `read` (a `?version=`) when
/// the object's spec has changed since: Docker's "update out of
/// sequence". Unlike Docker's, a write of the object's status meanwhile
/// (a node taking up its role, a rollout's progress) does not make the
/// read stale: only another spec does.
fn check_version(
    kind: Kind,
    name: &str,
    stored: &Meta,
    read: Option<u64>,
) -> Result<(), ControlError> {
    match read {
        Some(v) if !stored.spec_unchanged_since(v) => Err(ControlError::Refused(format!(
            "update out of sequence: the spec of {kind} {name} was changed since version {v} was read (it is at {}): read it again and retry",
            stored.version
        ))),
        _ => Ok(()),
    }
}

/// Finds an object by exact id, exact name, or unique id prefix.
fn find_by<'a, T>(
    kind: Kind,
    name_or_id: &str,
    exact: Option<&'a Arc<T>>,
    all: impl Iterator<Item = &'a Arc<T>>,
    id: impl Fn(&T) -> &Id,
) -> Result<&'a Arc<T>, ControlError> {
    if let Some(x) = exact {
        return Ok(x);
    }
    let mut matches = all.filter(|x| !name_or_id.is_empty() && id(x).starts_with(name_or_id));
    match (matches.next(), matches.next()) {
        (Some(x), None) => Ok(x),
        (Some(_), Some(_)) => Err(ControlError::Refused(format!(
            "{kind} {name_or_id} is ambiguous: give more of its id"
        ))),
        (None, _) => Err(ControlError::NotFound {
            kind,
            name: name_or_id.into(),
        }),
    }
}

fn find_network<'a>(state: &'a State, name_or_id: &str) -> Result<&'a Arc<Network>, ControlError> {
    let exact = state.network(name_or_id).or_else(|| {
        state
            .by_name(Kind::Network, name_or_id)
            .and_then(|id| state.network(id))
    });
    find_by(Kind::Network, name_or_id, exact, state.networks(), |n| {
        &n.meta.id
    })
}

fn find_service<'a>(state: &'a State, name_or_id: &str) -> Result<&'a Arc<Service>, ControlError> {
    let exact = state
        .service(name_or_id)
        .or_else(|| state.service_by_name(name_or_id));
    find_by(Kind::Service, name_or_id, exact, state.services(), |s| {
        &s.meta.id
    })
}

fn find_node<'a>(state: &'a State, name_or_id: &str) -> Result<&'a Arc<Node>, ControlError> {
    let exact = state.node(name_or_id).or_else(|| {
        let mut by_host = state
            .nodes()
            .filter(|n| n.description.hostname == name_or_id);
        match (by_host.next(), by_host.next()) {
            (Some(n), None) => Some(n),
            _ => None,
        }
    });
    find_by(Kind::Node, name_or_id, exact, state.nodes(), |n| &n.meta.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileReference, SPEC_HISTORY, SecretSpec};
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn networks_refuse_bad_input_and_change_nothing() {
        let store = Arc::new(MemoryStore::new());
        let control = Control::new(store.clone()).with_routes(["192.168.7.0/24".parse().unwrap()]);
        let net = |name: &str, subnet: Option<&str>, gateway: Option<&str>| NetworkSpec {
            subnet: subnet.map(|s| s.parse().unwrap()),
            gateway: gateway.map(|g| g.parse().unwrap()),
            ..NetworkSpec::overlay(name)
        };
        control
            .create_network(net("appnet", Some("10.1.0.0/16"), None))
            .await
            .unwrap();
        let before = store.state().await.unwrap().networks().count();
        let refused = [
            (
                net("other", Some("10.1.2.0/24"), None),
                "subnet 10.1.2.0/24 overlaps network appnet (10.1.0.0/16)",
            ),
            (
                net("lan", Some("192.168.0.0/16"), None),
                "overlaps this node's route 192.168.7.0/24",
            ),
            (
                net("gw", Some("10.2.0.0/24"), Some("10.3.0.1")),
                "gateway 10.3.0.1 is not a host address of subnet 10.2.0.0/24",
            ),
            (net("nosub", None, Some("10.3.0.1")), "without a subnet"),
            (
                net("tiny", Some("10.4.0.0/31"), None),
                "holds no host addresses",
            ),
            (net("appnet", None, None), "network appnet already exists"),
            (
                NetworkSpec {
                    driver: "bridge".into(),
                    ..NetworkSpec::overlay("b")
                },
                "unknown network driver \"bridge\"",
            ),
        ];
        for (spec, why) in refused {
            let e = control.create_network(spec).await.unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(store.state().await.unwrap().networks().count(), before);

        let missing = {
            let mut s = ServiceSpec::replicated("web", 1, vec!["x".into()]);
            s.task.networks = vec![crate::model::NetworkAttachment {
                target: "nope".into(),
                ..Default::default()
            }];
            s
        };
        let e = control
            .create_service(missing.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("network nope not found"), "{e}");
        let mut dnsrr = missing.clone();
        dnsrr.task.networks[0].target = "appnet".into();
        dnsrr.endpoint.mode = crate::model::EndpointMode::Dnsrr;
        dnsrr.endpoint.ports = vec!["8080:80".parse().unwrap()];
        let e = control
            .create_service(dnsrr.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a virtual IP"), "{e}");
        assert_eq!(store.state().await.unwrap().services().count(), 0);

        dnsrr.endpoint.ports.clear();
        control.create_service(dnsrr).await.unwrap();
        let e = control
            .remove_network("appnet")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("in use by service web"), "{e}");
        control.remove_service("web").await.unwrap();
        control.remove_network("appnet").await.unwrap();
        assert_eq!(store.state().await.unwrap().networks().count(), 0);
    }

    #[tokio::test]
    async fn published_ports_are_checked_across_services_and_picked_when_zero() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        let with_ports = |name: &str, ports: &[&str]| {
            let mut spec = ServiceSpec::replicated(name, 1, vec!["x".into()]);
            spec.endpoint.ports = ports.iter().map(|p| p.parse().unwrap()).collect();
            spec
        };
        control
            .create_service(with_ports("web", &["8080:80"]))
            .await
            .unwrap();
        let e = control
            .create_service(with_ports("api", &["8080:81"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("port 8080/tcp is already published by service web"),
            "{e}"
        );
        let e = control
            .create_service(with_ports("api", &["mode=host,published=8080,target=81"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("already published by service web"), "{e}");
        // Another protocol, or host mode on both sides, is fine.
        control
            .create_service(with_ports(
                "dns",
                &["8080:53/udp", "mode=host,published=9000,target=1"],
            ))
            .await
            .unwrap();
        control
            .create_service(with_ports(
                "metrics",
                &["mode=host,published=9000,target=2"],
            ))
            .await
            .unwrap();

        let picked = control
            .create_service(with_ports("any", &["80", "81"]))
            .await
            .unwrap();
        let ports: Vec<u32> = picked
            .spec
            .endpoint
            .ports
            .iter()
            .map(|p| p.published_port)
            .collect();
        assert_eq!(
            ports,
            [30_000, 30_001],
            "picked from the dynamic range, once each"
        );
        // An update keeps them, and its own ports do not conflict with
        // themselves.
        let updated = control
            .update_service("any", |s| {
                s.task.env.push("A=1".into());
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(updated.spec.endpoint.ports, picked.spec.endpoint.ports);
        let e = control
            .update_service("web", |s| {
                s.endpoint.ports[0].published_port = 30_001;
                Ok(())
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("already published by service any"), "{e}");

        // Two creates that both passed the check at once: the store's
        // write rule lets only the first take the port.
        let raced = |name: &str| Service {
            meta: Meta::new(Id::generate()),
            spec: with_ports(name, &["7070:80"]),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let store = control.store();
        store
            .apply(vec![Change::Create(raced("first").into())])
            .await
            .unwrap();
        let e = store
            .apply(vec![Change::Create(raced("second").into())])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            e.to_string()
                .contains("port 7070/tcp is already published by service first"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn only_a_secrets_labels_change_and_unchanged_ones_write_nothing() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        let spec = SecretSpec {
            name: "db-pass".into(),
            data: b"x".to_vec(),
            ..Default::default()
        };
        let made = control.create_secret(spec.clone()).await.unwrap();
        // The same spec, data included (as stack deploy sends it): no write.
        let same = control
            .update_secret("db-pass", None, spec.clone())
            .await
            .unwrap();
        assert_eq!(same.meta.version, made.meta.version);
        let mut labelled = spec.clone();
        labelled.labels.insert("team".into(), "a".into());
        labelled.data.clear();
        let after = control
            .update_secret("db-pass", Some(made.meta.version), labelled)
            .await
            .unwrap();
        assert_eq!(after.spec.labels["team"], "a");
        assert_eq!(after.spec.data, b"x", "no data keeps the data");
        for changed in [
            SecretSpec {
                data: b"y".to_vec(),
                ..spec.clone()
            },
            SecretSpec {
                name: "other".into(),
                ..spec.clone()
            },
        ] {
            let e = control
                .update_secret("db-pass", None, changed)
                .await
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("only updates to Labels are allowed"), "{e}");
        }
        let now = control.secret("db-pass").await.unwrap();
        assert_eq!(
            (now.spec.data.as_slice(), now.meta.version),
            (&b"x"[..], after.meta.version)
        );
    }

    #[tokio::test]
    async fn a_secret_in_use_cannot_be_removed() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        let spec = SecretSpec {
            name: "db-pass".into(),
            data: b"x".to_vec(),
            ..Default::default()
        };
        control.create_secret(spec.clone()).await.unwrap();
        let e = control.create_secret(spec).await.unwrap_err().to_string();
        assert!(e.contains("secret db-pass already exists"), "{e}");
        let mut svc = ServiceSpec::replicated("db", 1, vec!["x".into()]);
        svc.task.secrets.push(FileReference {
            name: "db-pass".into(),
            target: "pass".into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
        });
        control.create_service(svc).await.unwrap();
        let e = control
            .remove_secret("db-pass")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "secret db-pass is in use by service db: remove it from the service first"
        );
        control.remove_service("db").await.unwrap();
        control.remove_secret("db-pass").await.unwrap();
        let e = control
            .remove_secret("db-pass")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(e, "secret db-pass not found");
    }

    #[tokio::test]
    async fn a_global_service_cannot_be_scaled() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        control
            .create_service(ServiceSpec::global("agent", vec!["x".into()]))
            .await
            .unwrap();
        let e = control.scale("agent", 3).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "service agent is global: scale applies to replicated services only"
        );
    }

    #[tokio::test]
    async fn a_spec_read_before_a_status_write_is_in_sequence_one_read_before_a_spec_write_is_not()
    {
        let store = Arc::new(MemoryStore::new());
        let control = Control::new(store.clone());
        let web = control
            .create_service(ServiceSpec::replicated("web", 2, vec!["v1".into()]))
            .await
            .unwrap();
        let read = web.meta.version;
        assert_eq!(web.meta.spec_version, read);
        // A status write (the endpoint's error) moves the version, not
        // the spec's.
        let mut status = (*web).clone();
        status.endpoint.error = Some("no address left".into());
        store
            .apply(vec![Change::Update(status.into())])
            .await
            .unwrap();
        let now = control.service("web").await.unwrap();
        assert!(now.meta.version > read);
        assert_eq!(now.meta.spec_version, read);
        let mut spec = web.spec.clone();
        spec.task.image = "v2".into();
        let updated = control
            .replace_service_spec("web", spec.clone(), Some(read))
            .await
            .unwrap();
        assert_eq!(updated.spec.task.image, "v2");
        assert_eq!(updated.meta.spec_version, updated.meta.version);
        // Now the spec read at `read` is stale: another spec came since.
        spec.task.image = "v3".into();
        let e = control
            .replace_service_spec("web", spec, Some(read))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("update out of sequence: the spec of service web was changed"),
            "{e}"
        );
        assert_eq!(control.service("web").await.unwrap().spec.task.image, "v2");
    }

    #[tokio::test]
    async fn updates_keep_a_history_that_rollback_walks() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        control
            .create_service(ServiceSpec::replicated("web", 2, vec!["v1".into()]))
            .await
            .unwrap();
        let e = control.rollback_service("web", None).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "service web has no previous spec to roll back to: it has not been updated since it was created"
        );
        for v in 2..=12 {
            control
                .update_service("web", |s| {
                    s.task.image = format!("v{v}");
                    Ok(())
                })
                .await
                .unwrap();
        }
        let web = control.service("web").await.unwrap();
        assert_eq!(web.revision(), 12);
        assert_eq!(web.history.len(), SPEC_HISTORY, "ten past specs kept");
        assert_eq!(web.history[0].revision, 2, "revision 1 went");
        let status = web.update_status.as_ref().unwrap();
        assert_eq!(status.state, UpdateState::Updating);

        // Back one, and back again: the same spec as before the first.
        let back = control.rollback_service("web", None).await.unwrap();
        assert_eq!(back.spec.task.image, "v11");
        assert_eq!(back.revision(), 13);
        assert_eq!(
            back.update_status.as_ref().unwrap().state,
            UpdateState::RollbackStarted
        );
        assert_eq!(
            back.update_status.as_ref().unwrap().message,
            "manually requested rollback"
        );
        let again = control.rollback_service("web", None).await.unwrap();
        assert_eq!(again.spec.task.image, "v12");

        // To a chosen revision.
        let chosen = control.rollback_service("web", Some(5)).await.unwrap();
        assert_eq!(chosen.spec.task.image, "v5");
        let e = control.rollback_service("web", Some(1)).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("service web has no revision 1: it keeps revisions 5, 6,"),
            "{e}"
        );
        let current = chosen.revision();
        let e = control
            .rollback_service("web", Some(current))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is the current spec"), "{e}");
        let e = control.rollback_service("nope", None).await.unwrap_err();
        assert_eq!(e.to_string(), "service nope not found");
    }

    #[tokio::test]
    async fn a_scale_goes_into_the_history_but_starts_no_rollout() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        control
            .create_service(ServiceSpec::replicated("web", 2, vec!["v1".into()]))
            .await
            .unwrap();
        let web = control.scale("web", 5).await.unwrap();
        assert_eq!(web.revision(), 2);
        assert!(web.update_status.is_none());
        let back = control.rollback_service("web", None).await.unwrap();
        assert_eq!(back.spec.mode, ServiceMode::Replicated { replicas: 2 });
        assert_eq!(
            back.update_status.as_ref().unwrap().state,
            UpdateState::RollbackCompleted,
            "nothing to roll: done at once"
        );
    }

    #[tokio::test]
    async fn bad_updates_change_nothing() {
        let store = Arc::new(MemoryStore::new());
        let control = Control::new(store.clone());
        control
            .create_service(ServiceSpec::global("agent", vec!["x".into()]))
            .await
            .unwrap();
        let before = control.service("agent").await.unwrap();
        let e = control
            .update_service("agent", |s| {
                s.mode = ServiceMode::Replicated { replicas: 3 };
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "service agent is global: its mode cannot change; remove it and create it again"
        );
        let e = control
            .update_service("agent", |s| {
                s.rollback.failure_action = crate::model::FailureAction::Rollback;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("a rollback cannot roll back on failure"),
            "{e}"
        );
        let e = control
            .update_service("missing", |_| Ok(()))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "service missing not found");
        let e = control.promote_service("agent").await.unwrap_err();
        assert!(
            e.to_string().starts_with(
                "service agent has no canaries waiting for promotion (it was never updated)"
            ),
            "{e}"
        );
        assert_eq!(control.service("agent").await.unwrap(), before);
    }

    #[tokio::test]
    async fn an_update_with_canaries_waits_for_promotion() {
        let control = Control::new(Arc::new(MemoryStore::new()));
        control
            .create_service(ServiceSpec::replicated("web", 4, vec!["v1".into()]))
            .await
            .unwrap();
        let web = control
            .update_service("web", |s| {
                s.task.image = "v2".into();
                s.update.canary = 1;
                Ok(())
            })
            .await
            .unwrap();
        let status = web.update_status.as_ref().unwrap();
        assert!(status.awaiting_promotion);
        assert!(
            status
                .message
                .contains("promote with `swarmctl service promote web`"),
            "{}",
            status.message
        );
        let web = control.promote_service("web").await.unwrap();
        assert!(!web.update_status.as_ref().unwrap().awaiting_promotion);
        let e = control.promote_service("web").await.unwrap_err();
        assert!(e.to_string().contains("its update is updating"), "{e}");
    }
}
