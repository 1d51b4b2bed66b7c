//! The object model: what the store holds.
//!
//! Every stored object has a [`Meta`] (id, version, timestamps) and a user
//! supplied spec. Objects are plain data with serde; behaviour lives in the
//! control loops.

mod cluster;
mod node;
mod resources;
mod service;
mod subnet;
mod task;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use cluster::{
    Cluster, ClusterSpec, Config, ConfigSpec, FIRST_VNI, INGRESS_NETWORK, JoinTokens, Network,
    NetworkAddresses, NetworkSpec, RootCaMaterial, Secret, SecretSpec, UnlockKey,
};
pub use node::{
    Availability, Node, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Platform,
};
pub use resources::{
    GenericResource, ResourceRequirements, Resources, check_generic_kind, check_node_generic,
    claim_generic, generic_env, generic_free,
};
pub use service::{
    AppArmor, CredentialSpec, DYNAMIC_PORTS, DnsConfig, Endpoint, EndpointMode, EndpointSpec,
    FailureAction, FileReference, HealthCheck, LogDriver, MAX_REPLICAS, Mount, MountKind,
    NetworkAttachment, Placement, PlacementPreference, PortConfig, Privileges, Protocol,
    PublishMode, RESERVED_LABEL_PREFIX, RestartCondition, RestartPolicy, SPEC_HISTORY,
    SeLinuxContext, Seccomp, Service, ServiceMode, ServiceSpec, SpecRevision, TaskSpec, Ulimit,
    UpdateConfig, UpdateOrder, UpdateState, UpdateStatus, VirtualIp,
};
pub use subnet::{Subnet, SubnetError};
pub use task::{Task, TaskNetwork, TaskState, TaskStatus};

use crate::Id;

/// A store version: the index of the commit that last wrote the object.
pub type Version = u64;

/// Bookkeeping common to every stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The object's identifier, unique within its kind.
    pub id: Id,
    /// The index of the commit that last wrote this object; `0` before the
    /// first write. An update must carry the version it read.
    pub version: Version,
    /// When the object was created.
    pub created_at: SystemTime,
    /// When the object was last written.
    pub updated_at: SystemTime,
    /// The index of the commit that last changed the object's spec (its
    /// creation, or a write with another spec); `version` moves on with
    /// every status write as well. An update made from a spec read at
    /// version `v` is in sequence while `spec_version <= v`.
    #[serde(default)]
    pub spec_version: Version,
}

impl Meta {
    /// Metadata for a new object with the given id.
    #[must_use]
    pub fn new(id: Id) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            version: 0,
            created_at: now,
            updated_at: now,
            spec_version: 0,
        }
    }

    /// Whether the spec read at version `read` is still the object's:
    /// no write since has changed it (status writes may have come).
    #[must_use]
    pub fn spec_unchanged_since(&self, read: Version) -> bool {
        if self.spec_version == 0 {
            // Written before spec versions were kept: the version alone.
            return read == self.version;
        }
        self.spec_version <= read && read <= self.version
    }
}

/// The kinds of stored objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A [`Node`].
    Node,
    /// A [`Service`].
    Service,
    /// A [`Task`].
    Task,
    /// A [`Network`].
    Network,
    /// A [`Secret`].
    Secret,
    /// A [`Config`].
    Config,
    /// The [`Cluster`] object.
    Cluster,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Node => "node",
            Self::Service => "service",
            Self::Task => "task",
            Self::Network => "network",
            Self::Secret => "secret",
            Self::Config => "config",
            Self::Cluster => "cluster",
        })
    }
}

/// Any stored object, shared cheaply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "object", rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Object {
    Node(Arc<Node>),
    Service(Arc<Service>),
    Task(Arc<Task>),
    Network(Arc<Network>),
    Secret(Arc<Secret>),
    Config(Arc<Config>),
    Cluster(Arc<Cluster>),
}

impl Object {
    /// The object's kind.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Node(_) => Kind::Node,
            Self::Service(_) => Kind::Service,
            Self::Task(_) => Kind::Task,
            Self::Network(_) => Kind::Network,
            Self::Secret(_) => Kind::Secret,
            Self::Config(_) => Kind::Config,
            Self::Cluster(_) => Kind::Cluster,
        }
    }

    /// The object's metadata.
    #[must_use]
    pub fn meta(&self) -> &Meta {
        match self {
            Self::Node(o) => &o.meta,
            Self::Service(o) => &o.meta,
            Self::Task(o) => &o.meta,
            Self::Network(o) => &o.meta,
            Self::Secret(o) => &o.meta,
            Self::Config(o) => &o.meta,
            Self::Cluster(o) => &o.meta,
        }
    }

    /// Whether `self` and `other` have the same spec (objects of two
    /// kinds have not).
    #[must_use]
    pub fn same_spec(&self, other: &Object) -> bool {
        match (self, other) {
            (Self::Node(a), Self::Node(b)) => a.spec == b.spec,
            (Self::Service(a), Self::Service(b)) => a.spec == b.spec,
            (Self::Task(a), Self::Task(b)) => a.spec == b.spec,
            (Self::Network(a), Self::Network(b)) => a.spec == b.spec,
            (Self::Secret(a), Self::Secret(b)) => a.spec == b.spec,
            (Self::Config(a), Self::Config(b)) => a.spec == b.spec,
            (Self::Cluster(a), Self::Cluster(b)) => a.spec == b.spec,
            _ => false,
        }
    }

    /// The object's id.
    #[must_use]
    pub fn id(&self) -> &Id {
        &self.meta().id
    }

    /// The user-visible name that must be unique within the kind, if the
    /// kind has one (services, networks, secrets, configs).
    #[must_use]
    pub fn unique_name(&self) -> Option<&str> {
        match self {
            Self::Service(o) => Some(&o.spec.name),
            Self::Network(o) => Some(&o.spec.name),
            Self::Secret(o) => Some(&o.spec.name),
            Self::Config(o) => Some(&o.spec.name),
            Self::Node(_) | Self::Task(_) | Self::Cluster(_) => None,
        }
    }

    /// This object with new metadata (used by stores on commit). The
    /// object is copied only if it is shared.
    #[must_use]
    pub fn with_meta(self, meta: Meta) -> Self {
        fn set<T: Clone + HasMeta>(mut o: Arc<T>, meta: Meta) -> Arc<T> {
            *Arc::make_mut(&mut o).meta_mut() = meta;
            o
        }
        match self {
            Self::Node(o) => Self::Node(set(o, meta)),
            Self::Service(o) => Self::Service(set(o, meta)),
            Self::Task(o) => Self::Task(set(o, meta)),
            Self::Network(o) => Self::Network(set(o, meta)),
            Self::Secret(o) => Self::Secret(set(o, meta)),
            Self::Config(o) => Self::Config(set(o, meta)),
            Self::Cluster(o) => Self::Cluster(set(o, meta)),
        }
    }
}

/// Access to an object's [`Meta`]; implemented by every stored type.
pub trait HasMeta {
    /// The object's metadata.
    fn meta(&self) -> &Meta;
    /// The object's metadata, mutably.
    fn meta_mut(&mut self) -> &mut Meta;
}

macro_rules! impl_object {
    ($($ty:ident),*) => {$(
        impl HasMeta for $ty {
            fn meta(&self) -> &Meta { &self.meta }
            fn meta_mut(&mut self) -> &mut Meta { &mut self.meta }
        }
        impl From<$ty> for Object {
            fn from(o: $ty) -> Self { Object::$ty(Arc::new(o)) }
        }
        impl From<Arc<$ty>> for Object {
            fn from(o: Arc<$ty>) -> Self { Object::$ty(o) }
        }
    )*};
}
impl_object!(Node, Service, Task, Network, Secret, Config, Cluster);
