//! The control API: the one place where user requests enter the store.
//! Every request is validated first; a bad one changes nothing.

use std::sync::Arc;

use crate::model::{
    Config, ConfigSpec, Kind, Meta, Node, NodeSpec, NodeState, Secret, SecretSpec, Service,
    ServiceMode, ServiceSpec, Task,
};
use crate::store::{Change, ErrorKind, State, Store, StoreError};
use crate::{Id, SpecError};

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
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

/// The control API over a store.
#[derive(Debug, Clone)]
pub struct Control<S> {
    store: S,
}

const RETRIES: usize = 16;

impl<S: Store> Control<S> {
    /// The API over `store`.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store behind the API.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a service after validating its spec and checking that the
    /// secrets and configs it references exist.
    pub async fn create_service(&self, spec: ServiceSpec) -> Result<Arc<Service>, ControlError> {
        spec.validate()?;
        let state = self.store.state().await?;
        check_references(&state, &spec)?;
        let service = Service {
            meta: Meta::new(Id::generate()),
            spec,
            previous_spec: None,
        };
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
    /// retrying if the service changed meanwhile.
    pub async fn update_service(
        &self,
        name_or_id: &str,
        f: impl Fn(&mut ServiceSpec) -> Result<(), ControlError>,
    ) -> Result<Arc<Service>, ControlError> {
        for _ in 0..RETRIES {
            let state = self.store.state().await?;
            let current = find_service(&state, name_or_id)?;
            let mut spec = current.spec.clone();
            f(&mut spec)?;
            spec.validate()?;
            check_references(&state, &spec)?;
            if spec == current.spec {
                return Ok(current.clone());
            }
            let mut service = (**current).clone();
            service.previous_spec = Some(std::mem::replace(&mut service.spec, spec));
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
        for _ in 0..RETRIES {
            let state = self.store.state().await?;
            let mut node = (**find_node(&state, name_or_id)?).clone();
            f(&mut node.spec);
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

    /// Removes a node from the cluster. A node that is not down needs
    /// `force`, as with `docker node rm`.
    pub async fn remove_node(&self, name_or_id: &str, force: bool) -> Result<(), ControlError> {
        let state = self.store.state().await?;
        let node = find_node(&state, name_or_id)?;
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

    /// Removes a secret no service uses.
    pub async fn remove_secret(&self, name: &str) -> Result<(), ControlError> {
        let state = self.store.state().await?;
        let s = state
            .secret_by_name(name)
            .or_else(|| state.secret(name))
            .ok_or_else(|| ControlError::NotFound {
                kind: Kind::Secret,
                name: name.into(),
            })?;
        if let Some(user) = state
            .services()
            .find(|svc| svc.spec.task.secrets.iter().any(|r| r.name == s.spec.name))
        {
            return Err(ControlError::Refused(format!(
                "secret {} is in use by service {}: remove it from the service first",
                s.spec.name, user.spec.name
            )));
        }
        self.store
            .apply(vec![Change::Delete {
                kind: Kind::Secret,
                id: s.meta.id.clone(),
                version: None,
            }])
            .await?;
        Ok(())
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
        let state = self.store.state().await?;
        let c = state
            .config_by_name(name)
            .or_else(|| state.config(name))
            .ok_or_else(|| ControlError::NotFound {
                kind: Kind::Config,
                name: name.into(),
            })?;
        if let Some(user) = state
            .services()
            .find(|svc| svc.spec.task.configs.iter().any(|r| r.name == c.spec.name))
        {
            return Err(ControlError::Refused(format!(
                "config {} is in use by service {}: remove it from the service first",
                c.spec.name, user.spec.name
            )));
        }
        self.store
            .apply(vec![Change::Delete {
                kind: Kind::Config,
                id: c.meta.id.clone(),
                version: None,
            }])
            .await?;
        Ok(())
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
    Ok(errors.into_result()?)
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
