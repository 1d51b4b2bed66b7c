//! The conformance suite every `Store` passes.

use std::time::Duration;

use futures::StreamExt;

use crate::Id;
use crate::model::{
    Kind, Meta, Node, NodeDescription, NodeSpec, NodeStatus, Object, Secret, SecretSpec, Service,
    ServiceSpec, Task, TaskState,
};
use crate::store::{Change, ErrorKind, Event, Store, WatchStream};

/// Runs every check of the suite against stores made by `make` (each check
/// gets a fresh, empty store); panics on the first failure, naming the
/// broken promise.
pub async fn store_suite<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    creates_and_reads(&make().await).await;
    rejects_duplicate_ids_and_names(&make().await).await;
    updates_need_the_current_version(&make().await).await;
    batches_are_atomic(&make().await).await;
    deletes(&make().await).await;
    indexes_tasks_by_service_and_node(&make().await).await;
    snapshots_do_not_change(&make().await).await;
    watch_streams_commits_in_order(&make().await).await;
    watch_replays_from_an_index(&make().await).await;
    subscribe_has_no_gap(&make().await).await;
    empty_batches_are_no_ops(&make().await).await;
}

fn service(id: &str, name: &str) -> Service {
    Service {
        meta: Meta::new(id.into()),
        spec: ServiceSpec::replicated(name, 1, vec!["sleep".into(), "1".into()]),
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    }
}

fn node(id: &str) -> Node {
    Node {
        meta: Meta::new(id.into()),
        spec: NodeSpec::default(),
        description: NodeDescription {
            data_addr: None,
            hostname: id.into(),
            ..Default::default()
        },
        status: NodeStatus::default(),
    }
}

fn task(id: &str, service: &Service, node: Option<&str>) -> Task {
    let mut t = Task::new(service, 1, node.map(Id::from), vec![]);
    t.meta.id = id.into();
    t
}

async fn next(stream: &mut WatchStream) -> std::sync::Arc<crate::store::Commit> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("watch: a commit should arrive within 5 s")
        .expect("watch: the stream should not end")
        .expect("watch: the stream should not fail")
}

async fn creates_and_reads<S: Store>(store: &S) {
    let i1 = store
        .apply(vec![Change::Create(service("s1", "web").into())])
        .await
        .unwrap();
    let i2 = store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    assert!(i2 > i1, "commit indexes must increase ({i1} then {i2})");
    let state = store.state().await.unwrap();
    assert!(
        state.index() >= i2,
        "a read must see every acknowledged write"
    );
    let s = state
        .service("s1")
        .expect("created service must be readable");
    assert_eq!(
        s.meta.version, i1,
        "an object's version is the index of the commit that wrote it"
    );
    assert_eq!(
        state.service_by_name("web").map(|s| s.meta.id.clone()),
        Some(Id::from("s1"))
    );
    assert_eq!(state.node("n1").unwrap().meta.version, i2);
    assert!(state.get(Kind::Service, "s1").is_some());
    assert!(state.get(Kind::Task, "s1").is_none(), "ids are per kind");
}

async fn rejects_duplicate_ids_and_names<S: Store>(store: &S) {
    store
        .apply(vec![Change::Create(service("s1", "web").into())])
        .await
        .unwrap();
    let e = store
        .apply(vec![Change::Create(service("s1", "other").into())])
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::AlreadyExists,
        "a taken id must be refused: {e}"
    );
    let e = store
        .apply(vec![Change::Create(service("s2", "web").into())])
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::AlreadyExists,
        "a taken name must be refused: {e}"
    );
    assert!(
        e.to_string().contains("web"),
        "the error names the name: {e}"
    );
    // Names are per kind: a secret may share a service's name.
    let secret = Secret {
        meta: Meta::new("x1".into()),
        spec: SecretSpec {
            name: "web".into(),
            ..Default::default()
        },
    };
    store
        .apply(vec![Change::Create(secret.into())])
        .await
        .unwrap();
    // A renamed service frees its old name.
    let state = store.state().await.unwrap();
    let mut s = (**state.service("s1").unwrap()).clone();
    s.spec.name = "web2".into();
    store.apply(vec![Change::Update(s.into())]).await.unwrap();
    store
        .apply(vec![Change::Create(service("s3", "web").into())])
        .await
        .unwrap();
}

async fn updates_need_the_current_version<S: Store>(store: &S) {
    store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    let read = store.state().await.unwrap().node("n1").unwrap().clone();
    let mut a = (*read).clone();
    a.spec.labels.insert("zone".into(), "a".into());
    let i = store.apply(vec![Change::Update(a.into())]).await.unwrap();
    let mut b = (*read).clone();
    b.spec.labels.insert("zone".into(), "b".into());
    let e = store
        .apply(vec![Change::Update(b.into())])
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Conflict,
        "an update from a stale read must conflict: {e}"
    );
    let now = store.state().await.unwrap().node("n1").unwrap().clone();
    assert_eq!(
        now.spec.labels["zone"], "a",
        "a conflicting update must change nothing"
    );
    assert_eq!(now.meta.version, i);
    assert_eq!(
        now.meta.created_at, read.meta.created_at,
        "updates keep the creation time"
    );
    let e = store
        .apply(vec![Change::Update(node("ghost").into())])
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NotFound,
        "updating a missing object: {e}"
    );
}

async fn batches_are_atomic<S: Store>(store: &S) {
    store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    let before = store.state().await.unwrap();
    let e = store
        .apply(vec![
            Change::Create(node("n2").into()),
            Change::Create(service("s1", "web").into()),
            Change::Create(node("n1").into()),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let after = store.state().await.unwrap();
    assert!(
        after.node("n2").is_none(),
        "a failed batch must apply nothing"
    );
    assert!(
        after.service("s1").is_none(),
        "a failed batch must apply nothing"
    );
    assert_eq!(
        after.index(),
        before.index(),
        "a failed batch must not advance the index"
    );
    // Updates, renames and deletes before the failing change are undone too.
    store
        .apply(vec![Change::Create(service("s9", "api").into())])
        .await
        .unwrap();
    let before = store.state().await.unwrap();
    let mut n1 = (**before.node("n1").unwrap()).clone();
    n1.spec.labels.insert("zone".into(), "x".into());
    let mut renamed = (**before.service("s9").unwrap()).clone();
    renamed.spec.name = "api2".into();
    let e = store
        .apply(vec![
            Change::Update(n1.into()),
            Change::Update(renamed.into()),
            Change::Create(service("s10", "api").into()),
            Change::Delete {
                kind: Kind::Service,
                id: "s9".into(),
                version: None,
            },
            Change::Delete {
                kind: Kind::Node,
                id: "ghost".into(),
                version: None,
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let after = store.state().await.unwrap();
    assert!(
        after.node("n1").unwrap().spec.labels.is_empty(),
        "a failed batch must undo its updates"
    );
    assert_eq!(
        after.service_by_name("api").map(|s| s.meta.id.to_string()),
        Some("s9".into()),
        "and its renames"
    );
    assert!(after.service_by_name("api2").is_none() && after.service("s10").is_none());
    assert_eq!(after.index(), before.index());
    // A batch may touch the same object twice; the second sees the first.
    let i = store
        .apply(vec![
            Change::Create(node("n3").into()),
            Change::Delete {
                kind: Kind::Node,
                id: "n3".into(),
                version: None,
            },
        ])
        .await
        .unwrap();
    let state = store.state().await.unwrap();
    assert!(state.node("n3").is_none() && state.index() == i);
}

async fn deletes<S: Store>(store: &S) {
    let i = store
        .apply(vec![Change::Create(service("s1", "web").into())])
        .await
        .unwrap();
    let e = store
        .apply(vec![Change::Delete {
            kind: Kind::Service,
            id: "s1".into(),
            version: Some(i + 100),
        }])
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Conflict,
        "a delete with a stale version must conflict"
    );
    store
        .apply(vec![Change::Delete {
            kind: Kind::Service,
            id: "s1".into(),
            version: Some(i),
        }])
        .await
        .unwrap();
    let state = store.state().await.unwrap();
    assert!(state.service("s1").is_none());
    assert!(
        state.service_by_name("web").is_none(),
        "a deleted object frees its name"
    );
    let e = store
        .apply(vec![Change::Delete {
            kind: Kind::Service,
            id: "s1".into(),
            version: None,
        }])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

async fn indexes_tasks_by_service_and_node<S: Store>(store: &S) {
    let s1 = service("s1", "web");
    let s2 = service("s2", "db");
    store
        .apply(vec![
            Change::Create(s1.clone().into()),
            Change::Create(s2.clone().into()),
            Change::Create(task("t1", &s1, Some("n1")).into()),
            Change::Create(task("t2", &s1, None).into()),
            Change::Create(task("t3", &s2, Some("n1")).into()),
        ])
        .await
        .unwrap();
    let state = store.state().await.unwrap();
    let mut of_s1: Vec<_> = state
        .tasks_of_service("s1")
        .map(|t| t.meta.id.to_string())
        .collect();
    of_s1.sort();
    assert_eq!(of_s1, ["t1", "t2"]);
    let mut on_n1: Vec<_> = state
        .tasks_on_node("n1")
        .map(|t| t.meta.id.to_string())
        .collect();
    on_n1.sort();
    assert_eq!(on_n1, ["t1", "t3"]);
    // Moving a task between nodes moves it in the index.
    let mut t2 = (**state.task("t2").unwrap()).clone();
    t2.node_id = Some("n2".into());
    t2.status.state = TaskState::Assigned;
    store
        .apply(vec![
            Change::Update(t2.into()),
            Change::Delete {
                kind: Kind::Task,
                id: "t3".into(),
                version: None,
            },
        ])
        .await
        .unwrap();
    let state = store.state().await.unwrap();
    assert_eq!(state.tasks_on_node("n2").count(), 1);
    assert_eq!(state.tasks_on_node("n1").count(), 1);
    assert_eq!(state.tasks_of_service("s2").count(), 0);
    assert_eq!(state.task_count(), 2);
}

async fn snapshots_do_not_change<S: Store>(store: &S) {
    store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    let snap = store.state().await.unwrap();
    store
        .apply(vec![Change::Create(node("n2").into())])
        .await
        .unwrap();
    assert!(
        snap.node("n2").is_none(),
        "a snapshot must not see later commits"
    );
    assert_eq!(snap.nodes().count(), 1);
}

async fn watch_streams_commits_in_order<S: Store>(store: &S) {
    let mut w = store.watch(None).await.unwrap();
    let i1 = store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    let read = store.state().await.unwrap().node("n1").unwrap().clone();
    let mut n = (*read).clone();
    n.spec.labels.insert("a".into(), "b".into());
    let i2 = store
        .apply(vec![
            Change::Update(n.into()),
            Change::Create(node("n2").into()),
        ])
        .await
        .unwrap();
    let i3 = store
        .apply(vec![Change::Delete {
            kind: Kind::Node,
            id: "n2".into(),
            version: None,
        }])
        .await
        .unwrap();
    let c1 = next(&mut w).await;
    assert_eq!(c1.index, i1);
    assert!(matches!(&c1.events[..], [Event::Created(Object::Node(n))] if n.meta.version == i1));
    let c2 = next(&mut w).await;
    assert_eq!(c2.index, i2);
    assert_eq!(c2.events.len(), 2, "one commit carries its whole batch");
    match &c2.events[0] {
        Event::Updated {
            old: Object::Node(old),
            new: Object::Node(new),
        } => {
            assert!(old.spec.labels.is_empty() && new.spec.labels["a"] == "b");
        }
        other => panic!("expected the node update first, got {other:?}"),
    }
    let c3 = next(&mut w).await;
    assert_eq!(c3.index, i3);
    assert!(matches!(&c3.events[..], [Event::Deleted(o)] if o.id().as_str() == "n2"));
    // A second watcher sees the same thing.
    let mut w2 = store.watch(None).await.unwrap();
    let i4 = store
        .apply(vec![Change::Create(node("n4").into())])
        .await
        .unwrap();
    assert_eq!(next(&mut w).await.index, i4);
    assert_eq!(next(&mut w2).await.index, i4);
}

async fn watch_replays_from_an_index<S: Store>(store: &S) {
    let i1 = store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    let i2 = store
        .apply(vec![Change::Create(node("n2").into())])
        .await
        .unwrap();
    let mut w = store.watch(Some(i1)).await.unwrap();
    assert_eq!(
        next(&mut w).await.index,
        i2,
        "watch from an index replays the commits after it"
    );
    let i3 = store
        .apply(vec![Change::Create(node("n3").into())])
        .await
        .unwrap();
    assert_eq!(
        next(&mut w).await.index,
        i3,
        "then follows live commits without a gap"
    );
}

async fn subscribe_has_no_gap<S: Store>(store: &S) {
    store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    let (state, mut w) = store.subscribe().await.unwrap();
    assert!(state.node("n1").is_some());
    let i = store
        .apply(vec![Change::Create(node("n2").into())])
        .await
        .unwrap();
    let c = next(&mut w).await;
    assert_eq!(c.index, i);
    assert_eq!(
        c.index,
        state.index() + 1,
        "the stream starts right after the snapshot"
    );
}

async fn empty_batches_are_no_ops<S: Store>(store: &S) {
    let i = store
        .apply(vec![Change::Create(node("n1").into())])
        .await
        .unwrap();
    assert_eq!(store.apply(vec![]).await.unwrap(), i);
    assert_eq!(store.state().await.unwrap().index(), i);
}
