//! The store's changes as events, in the shape `docker events` prints
//! them: one [`Message`] per created, updated or removed object, with the
//! object's name and, for an update, the `.old`/`.new` pairs of what
//! changed. The Engine API's `/events` and the control API's event stream
//! (`swarmctl events`) both serve [`stream`].
//!
//! Docker's swarm event types are `service`, `node`, `network`, `secret`
//! and `config`; this SDK adds `task`, whose events a stream carries only
//! when a filter asks for them (`type=task`): a task changes state several
//! times on its way to running, and `docker events` never showed them.
//!
//! ```
//! use swarm_core::events::{self, EventFilter, EventType};
//! use swarm_core::model::{Meta, Object, Secret, SecretSpec};
//! use swarm_core::store::Event;
//! use swarm_core::Id;
//!
//! let spec = SecretSpec { name: "pw".into(), ..Default::default() };
//! let secret = Secret { meta: Meta::new(Id::from("s1")), spec };
//! let event = Event::Created(Object::Secret(std::sync::Arc::new(secret)));
//! let m = events::message(&event, std::time::SystemTime::now()).unwrap();
//! assert_eq!((m.kind, m.action.as_str()), (EventType::Secret, "create"));
//! assert_eq!(m.actor.attributes["name"], "pw");
//!
//! let only_services = EventFilter::parse(["type=service"]).unwrap();
//! assert!(!only_services.matches(&m));
//! assert!(EventFilter::default().matches(&m));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::model::{Object, ServiceMode};
use crate::store::{Event, Store, StoreError};

/// What kind of object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A service.
    Service,
    /// A node.
    Node,
    /// A task (only when asked for).
    Task,
    /// A network.
    Network,
    /// A secret.
    Secret,
    /// A config.
    Config,
}

impl EventType {
    /// Every type, in Docker's order, then `task`.
    pub const ALL: [Self; 6] = [
        Self::Service,
        Self::Node,
        Self::Network,
        Self::Secret,
        Self::Config,
        Self::Task,
    ];

    /// Its name, as `--filter type=` takes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Node => "node",
            Self::Task => "task",
            Self::Network => "network",
            Self::Secret => "secret",
            Self::Config => "config",
        }
    }

    /// The type named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It was created.
    Create,
    /// It was changed.
    Update,
    /// It was removed.
    Remove,
}

impl Action {
    /// Its name, as Docker writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Remove => "remove",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event, as Docker's `events.Message` writes it in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What the object is.
    #[serde(rename = "Type")]
    pub kind: EventType,
    /// What happened to it.
    #[serde(rename = "Action")]
    pub action: Action,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `swarm`.
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Message {
    /// When it happened.
    #[must_use]
    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.time_nano.max(0).unsigned_abs())
    }

    /// The object's name (its id if it has none).
    #[must_use]
    pub fn name(&self) -> &str {
        self.actor
            .attributes
            .get("name")
            .map_or(self.actor.id.as_str(), String::as_str)
    }
}

/// A time as Docker's `since`/`until` carry it: Unix seconds with an
/// optional fraction of up to nine digits (`1700000000`,
/// `1700000000.123456789`); none for anything else.
#[must_use]
pub fn unix_time(text: &str) -> Option<SystemTime> {
    let (secs, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || frac.len() > 9 || !digits(frac) {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(UNIX_EPOCH + Duration::new(secs.parse().ok()?, nanos))
}

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `name`, and what changed (`replicas.old`, `replicas.new`, ...).
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The event of `e` at `at`; none for the cluster object, which Docker
/// reports as no event.
///
/// Updates carry the `.old`/`.new` pairs Docker's do: for services
/// `replicas`, `image` and `updatestate`; for nodes `role`,
/// `availability` and `state`; and for tasks `state`, `desiredstate` and
/// `node.id`. A task's attributes also name its `service`.
#[must_use]
pub fn message(e: &Event, at: SystemTime) -> Option<Message> {
    let (action, object) = match e {
        Event::Created(o) => (Action::Create, o),
        Event::Updated { new, .. } => (Action::Update, new),
        Event::Deleted(o) => (Action::Remove, o),
    };
    let (kind, name) = match object {
        Object::Service(s) => (EventType::Service, s.spec.name.clone()),
        Object::Node(n) => (EventType::Node, n.display_name().to_owned()),
        Object::Task(t) => (EventType::Task, t.name()),
        Object::Network(n) => (EventType::Network, n.spec.name.clone()),
        Object::Secret(s) => (EventType::Secret, s.spec.name.clone()),
        Object::Config(c) => (EventType::Config, c.spec.name.clone()),
        Object::Cluster(_) => return None,
    };
    let mut attributes = BTreeMap::from([("name".to_owned(), name)]);
    if let Object::Task(t) = object {
        attributes.insert("service".to_owned(), t.service_name.to_string());
        attributes.insert("service.id".to_owned(), t.service_id.as_str().to_owned());
    }
    if let Event::Updated { old, new } = e {
        changes(old, new, &mut attributes);
    }
    let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let time_nano = i64::try_from(nanos).unwrap_or(i64::MAX);
    Some(Message {
        kind,
        action,
        actor: Actor {
            id: object.id().as_str().to_owned(),
            attributes,
        },
        scope: "swarm".to_owned(),
        time: time_nano / 1_000_000_000,
        time_nano,
    })
}

/// The `.old`/`.new` pairs of an update.
fn changes(old: &Object, new: &Object, attributes: &mut BTreeMap<String, String>) {
    let mut changed = |key: &str, a: String, b: String| {
        if a != b {
            attributes.insert(format!("{key}.old"), a);
            attributes.insert(format!("{key}.new"), b);
        }
    };
    match (old, new) {
        (Object::Service(a), Object::Service(b)) => {
            let replicas = |m: ServiceMode| match m {
                ServiceMode::Replicated { replicas } => replicas.to_string(),
                ServiceMode::Global => String::new(),
            };
            changed("replicas", replicas(a.spec.mode), replicas(b.spec.mode));
            changed(
                "image",
                a.spec.task.image.clone(),
                b.spec.task.image.clone(),
            );
            let state = |s: &crate::model::Service| {
                s.update_status
                    .as_ref()
                    .map(|u| u.state.as_str().to_owned())
                    .unwrap_or_default()
            };
            changed("updatestate", state(a), state(b));
        }
        (Object::Node(a), Object::Node(b)) => {
            changed("role", a.spec.role.to_string(), b.spec.role.to_string());
            changed(
                "availability",
                a.spec.availability.to_string(),
                b.spec.availability.to_string(),
            );
            changed(
                "state",
                a.status.state.to_string(),
                b.status.state.to_string(),
            );
        }
        (Object::Task(a), Object::Task(b)) => {
            changed(
                "state",
                a.status.state.as_str().to_owned(),
                b.status.state.as_str().to_owned(),
            );
            changed(
                "desiredstate",
                a.desired_state.as_str().to_owned(),
                b.desired_state.as_str().to_owned(),
            );
            let node = |t: &crate::model::Task| {
                t.node_id
                    .as_ref()
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default()
            };
            changed("node.id", node(a), node(b));
        }
        _ => {}
    }
}

/// Which events a stream carries, as `docker events --filter` says: each
/// key's values are alternatives, and every key must match.
///
/// Keys: `type` (`service`, `node`, `task`, `network`, `secret`,
/// `config`), `event` (`create`, `update`, `remove`), `name` (the
/// object's name, id or id prefix, of any type), `scope` (only `swarm`
/// matches), `label` (no swarm event carries labels, so it matches none),
/// and one per type (`service=web`, by name, id or id prefix: only that
/// service's events, and its tasks'). Task events come only when
/// `type=task` or `task=…` asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter(BTreeMap<String, BTreeSet<String>>);

/// The keys an [`EventFilter`] takes.
pub const FILTER_KEYS: &[&str] = &[
    "type", "event", "name", "scope", "label", "service", "node", "task", "network", "secret",
    "config",
];

/// A filter that names no valid key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

impl EventFilter {
    /// Reads `key=value` pairs (`type=service`, `name=web`).
    ///
    /// # Errors
    /// A pair without `=`, an unknown key, or a type or event Docker does
    /// not have, each named with what is taken.
    pub fn parse<I, S>(pairs: I) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filter = Self::default();
        for pair in pairs {
            let pair = pair.as_ref();
            let Some((key, value)) = pair.split_once('=') else {
                return Err(FilterError(format!(
                    "bad format of filter {pair:?}: expected KEY=VALUE, e.g. type=service"
                )));
            };
            filter.add(key.trim(), value.trim())?;
        }
        Ok(filter)
    }

    /// Adds one `key=value`.
    ///
    /// # Errors
    /// As [`EventFilter::parse`].
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), FilterError> {
        if !FILTER_KEYS.contains(&key) {
            return Err(FilterError(format!(
                "invalid filter '{key}': take one of {}",
                FILTER_KEYS.join(", ")
            )));
        }
        if key == "type" && EventType::parse(value).is_none() {
            return Err(FilterError(format!(
                "invalid event type {value:?}: take one of service, node, task, network, secret, config"
            )));
        }
        if key == "event" && !["create", "update", "remove"].contains(&value) {
            return Err(FilterError(format!(
                "invalid event {value:?}: swarm objects have create, update and remove"
            )));
        }
        self.0
            .entry(key.to_owned())
            .or_default()
            .insert(value.to_owned());
        Ok(())
    }

    /// Checks a filter that came from elsewhere (the wire) as
    /// [`EventFilter::add`] checks each pair.
    ///
    /// # Errors
    /// As [`EventFilter::parse`].
    pub fn check(&self) -> Result<(), FilterError> {
        let mut again = Self::default();
        for (key, values) in &self.0 {
            for v in values {
                again.add(key, v)?;
            }
        }
        Ok(())
    }

    /// Whether `m` passes.
    #[must_use]
    pub fn matches(&self, m: &Message) -> bool {
        let any = |key: &str, f: &dyn Fn(&str) -> bool| {
            self.0.get(key).is_none_or(|vs| vs.iter().any(|v| f(v)))
        };
        let names = |v: &str| v == m.actor.id || v == m.name() || m.actor.id.starts_with(v);
        let asked_for_tasks =
            self.0.get("type").is_some_and(|t| t.contains("task")) || self.0.contains_key("task");
        (m.kind != EventType::Task || asked_for_tasks)
            && any("type", &|v| v == m.kind.as_str())
            && any("event", &|v| v == m.action.as_str())
            && any("scope", &|v| v == m.scope)
            && !self.0.contains_key("label")
            && any("name", &names)
            && EventType::ALL.iter().all(|t| {
                let key = t.as_str();
                // A task is its service's too (`service=web`).
                let attr = |k: &str| m.actor.attributes.get(k).map_or("", String::as_str);
                let of_service = *t == EventType::Service
                    && m.kind == EventType::Task
                    && any(key, &|v| {
                        v == attr("service") || (!v.is_empty() && attr("service.id").starts_with(v))
                    });
                !self.0.contains_key(key) || (m.kind == *t && any(key, &names)) || of_service
            })
    }
}

/// The events of `store` that pass `filter`, each stamped with its
/// commit's time: first, if `since` or `until` is given, those of the
/// journal's past from `since` on (as far back as the journal goes), then
/// the live ones as they are committed, until `until` (none: for ever).
///
/// The stream ends early if this watcher falls so far behind the store
/// that the journal dropped what it had not read.
///
/// # Errors
/// If the store cannot be read or watched.
pub async fn stream<S: Store + ?Sized>(
    store: &S,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    filter: EventFilter,
) -> Result<BoxStream<'static, Message>, StoreError> {
    let replayed_up_to = store.state().await?.index();
    // As Docker's, either bound replays what the journal holds.
    let (commits, from) = if since.is_some() || until.is_some() {
        let mut from = 0;
        let mut tries = 0;
        loop {
            match store.watch(Some(from)).await {
                // `oldest` is the first commit kept: watch from just before
                // (again, if the journal dropped more meanwhile).
                Err(StoreError::Compacted { oldest, .. }) if tries < 5 => {
                    from = oldest.saturating_sub(1);
                    tries += 1;
                }
                other => break (other?, from),
            }
        }
    } else {
        (store.watch(None).await?, replayed_up_to)
    };
    // `until` ends the stream once the past is replayed: its events are
    // all in the journal already, so they are never cut short.
    let deadline = until.map(|u| {
        let left = u
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::Instant::now() + left
    });
    let start = Replay {
        commits,
        caught_up: from >= replayed_up_to,
    };
    let filter = std::sync::Arc::new(filter);
    let batches = futures::stream::unfold(start, move |mut r| {
        let filter = filter.clone();
        async move {
            let next = match deadline {
                Some(d) if r.caught_up => tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(d) => return None,
                    c = r.commits.next() => c,
                },
                _ => r.commits.next().await,
            };
            // An error (the watcher fell behind) ends the stream.
            let commit = next?.ok()?;
            r.caught_up |= commit.index >= replayed_up_to;
            let passing: Vec<Message> = commit
                .events
                .iter()
                .filter_map(|e| message(e, commit.at))
                .filter(|m| {
                    let at = m.at();
                    since.is_none_or(|s| at >= s)
                        && until.is_none_or(|u| at <= u)
                        && filter.matches(m)
                })
                .collect();
            Some((futures::stream::iter(passing), r))
        }
    });
    Ok(batches.flatten().boxed())
}

struct Replay {
    commits: crate::store::WatchStream,
    caught_up: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;
    use crate::model::{Meta, Secret, SecretSpec};
    use crate::store::{Change, MemoryStore};
    use std::sync::Arc;

    fn secret(name: &str) -> Arc<Secret> {
        Arc::new(Secret {
            meta: Meta::new(Id::from(format!("id-{name}"))),
            spec: SecretSpec {
                name: name.to_owned(),
                data: b"x".to_vec(),
                ..Default::default()
            },
        })
    }

    #[test]
    fn filters_follow_docker() {
        let e = Event::Created(Object::Secret(secret("pw")));
        let m = message(&e, SystemTime::now()).unwrap();
        let passes = |pairs: &[&str]| EventFilter::parse(pairs).unwrap().matches(&m);
        assert!(passes(&[]));
        assert!(passes(&["type=secret", "type=service"]));
        assert!(!passes(&["type=service"]));
        assert!(passes(&["name=pw"]));
        assert!(passes(&["name=id-p"]));
        assert!(!passes(&["name=other"]));
        assert!(passes(&["secret=pw"]));
        assert!(!passes(&["service=pw"]));
        assert!(passes(&["event=create"]));
        assert!(!passes(&["event=remove"]));
        assert!(!passes(&["label=a=b"]));
        let bad = EventFilter::parse(["type=container"]).unwrap_err();
        assert!(bad.to_string().contains("service, node, task"), "{bad}");
        let bad = EventFilter::parse(["color=red"]).unwrap_err();
        assert!(bad.to_string().contains("invalid filter 'color'"), "{bad}");
        assert!(EventFilter::parse(["type"]).is_err());
        assert_eq!(
            unix_time("1700000000.5"),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
        );
        assert_eq!(
            unix_time("1700000000"),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        for bad in ["", "x", ".5", "1.1234567890", "-1", "1.-5"] {
            assert_eq!(unix_time(bad), None, "{bad:?}");
        }
        let wire: EventFilter = EventFilter(BTreeMap::from([(
            "type".to_owned(),
            BTreeSet::from(["image".to_owned()]),
        )]));
        assert!(wire.check().is_err());
    }

    #[tokio::test]
    async fn the_stream_replays_since_and_follows() {
        let store = MemoryStore::new();
        store
            .apply(vec![Change::Create(Object::Secret(secret("old")))])
            .await
            .unwrap();
        // The secret was made before `since`: its creation is not replayed,
        // its removal (later) is.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = SystemTime::now();
        let mut replay = stream(&store, Some(before), None, EventFilter::default())
            .await
            .unwrap();
        let mut live = stream(&store, None, None, EventFilter::default())
            .await
            .unwrap();
        store
            .apply(vec![Change::Delete {
                kind: crate::model::Kind::Secret,
                id: Id::from("id-old"),
                version: None,
            }])
            .await
            .unwrap();
        let first = replay.next().await.unwrap();
        assert_eq!((first.name(), first.action), ("old", Action::Remove));
        let only = live.next().await.unwrap();
        assert_eq!((only.name(), only.action), ("old", Action::Remove));
        // An `until` already past, alone, still replays the journal up to
        // it, then ends.
        let ended: Vec<_> = stream(&store, None, Some(before), EventFilter::default())
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0].action, Action::Create);
    }
}
