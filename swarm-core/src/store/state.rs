//! The in-memory image of the store, shared by every `Store`
//! implementation: the tables, their indexes and the one function that
//! applies a batch.

use std::sync::Arc;
use std::time::SystemTime;

use super::{Change, Event, StoreError};
use crate::Id;
use crate::model::{Cluster, Config, Kind, Meta, Network, Node, Object, Secret, Service, Task};

type Hasher = foldhash::fast::RandomState;
type Map<K, V> = imbl::GenericHashMap<K, V, Hasher, imbl::shared_ptr::DefaultSharedPtr>;
type Table<T> = Map<Id, Arc<T>>;
type IdSet = imbl::GenericHashSet<Id, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// A consistent, immutable view of every object at one commit index.
///
/// Cloning is O(1): tables are persistent maps that share structure, so a
/// snapshot costs nothing to take and the store keeps writing beside it.
#[derive(Debug, Clone, Default)]
pub struct State {
    index: u64,
    nodes: Table<Node>,
    services: Table<Service>,
    tasks: Table<Task>,
    networks: Table<Network>,
    secrets: Table<Secret>,
    configs: Table<Config>,
    cluster: Option<Arc<Cluster>>,
    names: Map<(Kind, String), Id>,
    tasks_by_service: Map<Id, IdSet>,
    tasks_by_node: Map<Id, IdSet>,
}

impl State {
    /// The index of the last commit this state contains.
    #[must_use]
    pub fn index(&self) -> u64 {
        self.index
    }

    /// A node by id.
    #[must_use]
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.get(id)
    }
    /// Whether the cluster holds node `id` as a manager (its spec's role:
    /// a node's certificate may still say manager after a demotion).
    #[must_use]
    pub fn is_manager(&self, id: &str) -> bool {
        self.node(id)
            .is_some_and(|n| n.spec.role == crate::model::NodeRole::Manager)
    }
    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> + '_ {
        self.nodes.values()
    }
    /// A service by id.
    #[must_use]
    pub fn service(&self, id: &str) -> Option<&Arc<Service>> {
        self.services.get(id)
    }
    /// A service by name.
    #[must_use]
    pub fn service_by_name(&self, name: &str) -> Option<&Arc<Service>> {
        self.by_name(Kind::Service, name)
            .and_then(|id| self.services.get(id))
    }
    /// Every service.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> + '_ {
        self.services.values()
    }
    /// A task by id.
    #[must_use]
    pub fn task(&self, id: &str) -> Option<&Arc<Task>> {
        self.tasks.get(id)
    }
    /// Every task.
    pub fn tasks(&self) -> impl Iterator<Item = &Arc<Task>> + '_ {
        self.tasks.values()
    }
    /// The number of tasks.
    #[must_use]
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }
    /// The tasks of a service (including those of a deleted service).
    pub fn tasks_of_service<'a>(
        &'a self,
        service_id: &str,
    ) -> impl Iterator<Item = &'a Arc<Task>> + 'a {
        self.tasks_by_service
            .get(service_id)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.tasks.get(id))
    }
    /// A service's replicas as `service ls` counts them: its tasks running
    /// and wanted running, and how many it wants (for a global service,
    /// its tasks wanted running).
    #[must_use]
    pub fn replicas(&self, service: &crate::model::Service) -> (u64, u64) {
        use crate::model::{ServiceMode, TaskState};
        let (mut running, mut wanted) = (0, 0);
        for t in self.tasks_of_service(&service.meta.id) {
            if t.desired_state == TaskState::Running {
                wanted += 1;
                if t.status.state == TaskState::Running {
                    running += 1;
                }
            }
        }
        let desired = match service.spec.mode {
            ServiceMode::Replicated { replicas } => replicas,
            ServiceMode::Global => wanted,
        };
        (running, desired)
    }
    /// The tasks assigned to a node.
    pub fn tasks_on_node<'a>(&'a self, node_id: &str) -> impl Iterator<Item = &'a Arc<Task>> + 'a {
        self.tasks_by_node
            .get(node_id)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.tasks.get(id))
    }
    /// The ids of services that have tasks, including deleted services.
    pub fn services_with_tasks(&self) -> impl Iterator<Item = &Id> + '_ {
        self.tasks_by_service.keys()
    }
    /// A network by id.
    #[must_use]
    pub fn network(&self, id: &str) -> Option<&Arc<Network>> {
        self.networks.get(id)
    }
    /// Every network.
    pub fn networks(&self) -> impl Iterator<Item = &Arc<Network>> + '_ {
        self.networks.values()
    }
    /// A secret by id.
    #[must_use]
    pub fn secret(&self, id: &str) -> Option<&Arc<Secret>> {
        self.secrets.get(id)
    }
    /// A secret by name.
    #[must_use]
    pub fn secret_by_name(&self, name: &str) -> Option<&Arc<Secret>> {
        self.by_name(Kind::Secret, name)
            .and_then(|id| self.secrets.get(id))
    }
    /// Every secret.
    pub fn secrets(&self) -> impl Iterator<Item = &Arc<Secret>> + '_ {
        self.secrets.values()
    }
    /// A config by id.
    #[must_use]
    pub fn config(&self, id: &str) -> Option<&Arc<Config>> {
        self.configs.get(id)
    }
    /// A config by name.
    #[must_use]
    pub fn config_by_name(&self, name: &str) -> Option<&Arc<Config>> {
        self.by_name(Kind::Config, name)
            .and_then(|id| self.configs.get(id))
    }
    /// Every config.
    pub fn configs(&self) -> impl Iterator<Item = &Arc<Config>> + '_ {
        self.configs.values()
    }
    /// The cluster object, once created.
    #[must_use]
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }
    /// The id of the object of `kind` named `name`, for kinds with unique
    /// names.
    #[must_use]
    pub fn by_name(&self, kind: Kind, name: &str) -> Option<&Id> {
        self.names.get(&(kind, name.to_owned()))
    }

    /// Any object by kind and id.
    #[must_use]
    pub fn get(&self, kind: Kind, id: &str) -> Option<Object> {
        match kind {
            Kind::Node => self.nodes.get(id).cloned().map(Object::Node),
            Kind::Service => self.services.get(id).cloned().map(Object::Service),
            Kind::Task => self.tasks.get(id).cloned().map(Object::Task),
            Kind::Network => self.networks.get(id).cloned().map(Object::Network),
            Kind::Secret => self.secrets.get(id).cloned().map(Object::Secret),
            Kind::Config => self.configs.get(id).cloned().map(Object::Config),
            Kind::Cluster => self
                .cluster
                .clone()
                .filter(|c| c.meta.id.as_str() == id)
                .map(Object::Cluster),
        }
    }

    /// Every object, table by table (the cluster object last). With
    /// [`State::restore`], this is how a replicated store writes and reads
    /// its snapshots.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.nodes
            .values()
            .cloned()
            .map(Object::Node)
            .chain(self.services.values().cloned().map(Object::Service))
            .chain(self.networks.values().cloned().map(Object::Network))
            .chain(self.secrets.values().cloned().map(Object::Secret))
            .chain(self.configs.values().cloned().map(Object::Config))
            .chain(self.tasks.values().cloned().map(Object::Task))
            .chain(self.cluster.clone().map(Object::Cluster))
    }

    /// Rebuilds a state at commit `index` from its objects, as they are
    /// (versions and timestamps kept), with every index recomputed.
    ///
    /// Fails with [`StoreError::InvalidArgument`] if two objects share an id
    /// or a unique name, or if an object's version is above `index`: such a
    /// set cannot come from a real state.
    pub fn restore(
        index: u64,
        objects: impl IntoIterator<Item = Object>,
    ) -> Result<Self, StoreError> {
        let mut state = Self {
            index,
            ..Self::default()
        };
        for obj in objects {
            let kind = obj.kind();
            if obj.meta().version > index {
                return Err(StoreError::InvalidArgument(format!(
                    "{kind} {} has version {} above the snapshot index {index}",
                    obj.id(),
                    obj.meta().version
                )));
            }
            if state.get(kind, obj.id()).is_some()
                || (kind == Kind::Cluster && state.cluster.is_some())
            {
                return Err(StoreError::InvalidArgument(format!(
                    "{kind} {} appears twice in the snapshot",
                    obj.id()
                )));
            }
            state
                .check_name_free(&obj, None)
                .map_err(|e| StoreError::InvalidArgument(format!("snapshot: {e}")))?;
            state.insert(&obj);
        }
        Ok(state)
    }

    /// Applies a batch as commit `index`: all changes, or none and an error.
    /// `self` is unchanged on error. Returns the events of the commit.
    ///
    /// `now` stamps `created_at`/`updated_at`: it is part of the commit (a
    /// replicated store stamps it once, on the leader), so that every
    /// replica applying the same commit reaches the same state.
    ///
    /// This is the single definition of the store's write rules; every
    /// [`super::Store`] implementation applies batches through it.
    pub fn apply(
        &mut self,
        changes: Vec<Change>,
        index: u64,
        now: SystemTime,
    ) -> Result<Vec<Event>, StoreError> {
        if index <= self.index {
            return Err(StoreError::InvalidArgument(format!(
                "commit index {index} is not above the current index {}",
                self.index
            )));
        }
        // Mutate in place (persistent maps copy only what a live snapshot
        // still shares) and undo the batch's own events on error.
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            match self.apply_one(change, index, now) {
                Ok(e) => events.push(e),
                Err(err) => {
                    self.undo(events);
                    return Err(err);
                }
            }
        }
        self.index = index;
        Ok(events)
    }

    fn undo(&mut self, events: Vec<Event>) {
        for e in events.into_iter().rev() {
            match e {
                Event::Created(o) => self.remove(&o),
                Event::Updated { old, new } => self.replace(&new, &old),
                Event::Deleted(o) => self.insert(&o),
            }
        }
    }

    fn apply_one(
        &mut self,
        change: Change,
        index: u64,
        now: SystemTime,
    ) -> Result<Event, StoreError> {
        match change {
            Change::Create(obj) => {
                let kind = obj.kind();
                if obj.id().as_str().is_empty() {
                    return Err(StoreError::InvalidArgument(format!(
                        "a {kind} needs a non-empty id"
                    )));
                }
                if self.get(kind, obj.id()).is_some()
                    || (kind == Kind::Cluster && self.cluster.is_some())
                {
                    return Err(StoreError::AlreadyExists {
                        kind,
                        name: obj.id().to_string(),
                    });
                }
                self.check_name_free(&obj, None)?;
                self.check_ports_free(&obj, None)?;
                let meta = Meta {
                    id: obj.id().clone(),
                    version: index,
                    created_at: now,
                    updated_at: now,
                    spec_version: index,
                };
                let obj = obj.with_meta(meta);
                self.insert(&obj);
                Ok(Event::Created(obj))
            }
            Change::Update(Object::Task(task)) => self.update_task(task, index, now),
            Change::Update(obj) => {
                let kind = obj.kind();
                let old = self
                    .get(kind, obj.id())
                    .ok_or_else(|| StoreError::NotFound {
                        kind,
                        id: obj.id().to_string(),
                    })?;
                let stored = old.meta().version;
                if obj.meta().version != stored {
                    return Err(StoreError::Conflict {
                        kind,
                        id: obj.id().clone(),
                        expected: obj.meta().version,
                        actual: stored,
                    });
                }
                self.check_name_free(&obj, Some(&old))?;
                self.check_ports_free(&obj, Some(&old))?;
                let meta = Meta {
                    id: obj.id().clone(),
                    version: index,
                    created_at: old.meta().created_at,
                    updated_at: now,
                    spec_version: if obj.same_spec(&old) {
                        old.meta().spec_version
                    } else {
                        index
                    },
                };
                let obj = obj.with_meta(meta);
                self.replace(&old, &obj);
                Ok(Event::Updated { old, new: obj })
            }
            Change::Delete { kind, id, version } => {
                let old = self.get(kind, &id).ok_or_else(|| StoreError::NotFound {
                    kind,
                    id: id.to_string(),
                })?;
                if let Some(v) = version
                    && v != old.meta().version
                {
                    return Err(StoreError::Conflict {
                        kind,
                        id,
                        expected: v,
                        actual: old.meta().version,
                    });
                }
                self.remove(&old);
                Ok(Event::Deleted(old))
            }
        }
    }

    fn insert(&mut self, obj: &Object) {
        if let Some(name) = obj.unique_name() {
            self.names
                .insert((obj.kind(), name.to_owned()), obj.id().clone());
        }
        match obj {
            Object::Node(o) => {
                self.nodes.insert(o.meta.id.clone(), o.clone());
            }
            Object::Service(o) => {
                self.services.insert(o.meta.id.clone(), o.clone());
            }
            Object::Task(t) => {
                self.tasks_by_service
                    .entry(t.service_id.clone())
                    .or_default()
                    .insert(t.meta.id.clone());
                if let Some(n) = &t.node_id {
                    self.tasks_by_node
                        .entry(n.clone())
                        .or_default()
                        .insert(t.meta.id.clone());
                }
                self.tasks.insert(t.meta.id.clone(), t.clone());
            }
            Object::Network(o) => {
                self.networks.insert(o.meta.id.clone(), o.clone());
            }
            Object::Secret(o) => {
                self.secrets.insert(o.meta.id.clone(), o.clone());
            }
            Object::Config(o) => {
                self.configs.insert(o.meta.id.clone(), o.clone());
            }
            Object::Cluster(o) => self.cluster = Some(o.clone()),
        }
    }

    /// Fails if `obj`'s unique name is taken by another object of its kind
    /// (`old` is the object's current version, whose name it may keep).
    fn check_name_free(&self, obj: &Object, old: Option<&Object>) -> Result<(), StoreError> {
        match obj.unique_name() {
            Some(name)
                if old.and_then(Object::unique_name) != Some(name)
                    && self.by_name(obj.kind(), name).is_some() =>
            {
                Err(StoreError::AlreadyExists {
                    kind: obj.kind(),
                    name: name.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Fails if a service newly publishes a port that clashes with another
    /// service's (see [`PortConfig::clashes_with`]): in the one write
    /// rule, so that two writes at once cannot both take a mesh port.
    ///
    /// [`PortConfig::clashes_with`]: crate::model::PortConfig::clashes_with
    fn check_ports_free(&self, obj: &Object, old: Option<&Object>) -> Result<(), StoreError> {
        let Object::Service(new) = obj else {
            return Ok(());
        };
        let before = match old {
            Some(Object::Service(o)) => Some(&o.spec.endpoint),
            _ => None,
        };
        for p in new.spec.endpoint.new_ports(before) {
            if let Some(other) = self.services.values().find(|s| {
                s.meta.id != new.meta.id && s.spec.endpoint.ports.iter().any(|o| p.clashes_with(o))
            }) {
                return Err(StoreError::InvalidArgument(p.taken_by(&other.spec.name)));
            }
        }
        Ok(())
    }

    /// Replaces `old` by `new` (same kind and id), touching only the
    /// indexes whose keys changed.
    fn replace(&mut self, old: &Object, new: &Object) {
        match (old, new) {
            (Object::Task(o), Object::Task(n)) => {
                self.reindex_task(o, n);
                self.tasks.insert(n.meta.id.clone(), n.clone());
            }
            _ => {
                if old.unique_name() != new.unique_name()
                    && let Some(name) = old.unique_name()
                {
                    self.names.remove(&(old.kind(), name.to_owned()));
                }
                self.insert(new);
            }
        }
    }

    /// The hot path of every control loop: one lookup finds the task,
    /// checks its version and swaps the new one in.
    fn update_task(
        &mut self,
        mut task: Arc<Task>,
        index: u64,
        now: SystemTime,
    ) -> Result<Event, StoreError> {
        let Some(slot) = self.tasks.get_mut(&task.meta.id) else {
            return Err(StoreError::NotFound {
                kind: Kind::Task,
                id: task.meta.id.to_string(),
            });
        };
        if slot.meta.version != task.meta.version {
            return Err(StoreError::Conflict {
                kind: Kind::Task,
                id: task.meta.id.clone(),
                expected: task.meta.version,
                actual: slot.meta.version,
            });
        }
        let spec_version = if task.spec == slot.spec {
            slot.meta.spec_version
        } else {
            index
        };
        let meta = &mut Arc::make_mut(&mut task).meta;
        meta.version = index;
        meta.updated_at = now;
        meta.created_at = slot.meta.created_at;
        meta.spec_version = spec_version;
        let old = std::mem::replace(slot, task.clone());
        self.reindex_task(&old, &task);
        Ok(Event::Updated {
            old: Object::Task(old),
            new: Object::Task(task),
        })
    }

    fn reindex_task(&mut self, o: &Task, n: &Task) {
        let id = &n.meta.id;
        if o.service_id != n.service_id {
            unindex(&mut self.tasks_by_service, &o.service_id, id);
            self.tasks_by_service
                .entry(n.service_id.clone())
                .or_default()
                .insert(id.clone());
        }
        if o.node_id != n.node_id {
            if let Some(node) = &o.node_id {
                unindex(&mut self.tasks_by_node, node, id);
            }
            if let Some(node) = &n.node_id {
                self.tasks_by_node
                    .entry(node.clone())
                    .or_default()
                    .insert(id.clone());
            }
        }
    }

    fn remove(&mut self, obj: &Object) {
        if let Some(name) = obj.unique_name() {
            self.names.remove(&(obj.kind(), name.to_owned()));
        }
        let id = obj.id();
        match obj {
            Object::Node(_) => {
                self.nodes.remove(id);
            }
            Object::Service(_) => {
                self.services.remove(id);
            }
            Object::Task(t) => {
                unindex(&mut self.tasks_by_service, &t.service_id, id);
                if let Some(n) = &t.node_id {
                    unindex(&mut self.tasks_by_node, n, id);
                }
                self.tasks.remove(id);
            }
            Object::Network(_) => {
                self.networks.remove(id);
            }
            Object::Secret(_) => {
                self.secrets.remove(id);
            }
            Object::Config(_) => {
                self.configs.remove(id);
            }
            Object::Cluster(_) => self.cluster = None,
        }
    }
}

fn unindex(index: &mut Map<Id, IdSet>, key: &Id, id: &Id) {
    if let Some(set) = index.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Secret, SecretSpec, ServiceSpec};

    fn secret(id: &str, name: &str) -> Object {
        Secret {
            meta: Meta::new(id.into()),
            spec: SecretSpec {
                name: name.into(),
                data: b"x".to_vec(),
                ..Default::default()
            },
        }
        .into()
    }

    #[test]
    fn restore_rebuilds_every_index_from_the_objects() {
        let service = Service {
            meta: Meta::new("svc".into()),
            spec: ServiceSpec::replicated("web", 1, vec!["sleep".into()]),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut task = Task::new(&service, 1, Some("n1".into()), vec![]);
        task.meta.id = "t1".into();
        let mut state = State::default();
        state
            .apply(
                vec![
                    Change::Create(service.into()),
                    Change::Create(task.into()),
                    Change::Create(secret("s1", "pw")),
                ],
                7,
                SystemTime::UNIX_EPOCH,
            )
            .unwrap();
        let copy = State::restore(state.index(), state.objects()).unwrap();
        assert_eq!(copy.index(), 7);
        assert_eq!(copy.service_by_name("web").unwrap().meta.version, 7);
        assert_eq!(copy.secret_by_name("pw").unwrap().meta.id.as_str(), "s1");
        assert_eq!(copy.tasks_of_service("svc").count(), 1);
        assert_eq!(copy.tasks_on_node("n1").count(), 1);
        assert_eq!(copy.objects().count(), state.objects().count());
    }

    #[test]
    fn restore_refuses_what_no_state_could_hold() {
        let twice = State::restore(1, [secret("a", "pw"), secret("b", "pw")]);
        assert_eq!(
            twice.unwrap_err().kind(),
            crate::store::ErrorKind::InvalidArgument
        );
        let mut future = secret("a", "pw");
        if let Object::Secret(s) = &mut future {
            Arc::make_mut(s).meta.version = 9;
        }
        let e = State::restore(1, [future]).unwrap_err();
        assert!(e.to_string().contains("above the snapshot index"), "{e}");
    }
}
