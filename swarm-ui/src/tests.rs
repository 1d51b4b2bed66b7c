use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt as _;
use swarm_core::control::Control;
use swarm_core::model::{Availability, Object};
use swarm_core::store::{Change, MemoryStore, Store};
use swarm_core::testing::fixtures::{NodeFixture, assigned_task, service};
use tower::ServiceExt as _;

use super::*;

struct Manager(Control<Arc<dyn Store>>);

#[async_trait::async_trait]
impl Source for Manager {
    async fn control(&self) -> Option<Control<Arc<dyn Store>>> {
        Some(self.0.clone())
    }
    async fn leader(&self) -> Option<String> {
        Some("n1".into())
    }
}

async fn swarm() -> (Arc<dyn Store>, Router) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let web = service("web", 1, |_| {});
    let task = assigned_task(&web, 1, "n1");
    store
        .apply(vec![
            Change::Create(NodeFixture::new("n1").manager().build().into()),
            Change::Create(NodeFixture::new("n2").label("zone", "b").build().into()),
            Change::Create(web.into()),
            Change::Create(task.into()),
        ])
        .await
        .unwrap();
    let app = router(Arc::new(Manager(Control::new(store.clone()))));
    (store, app)
}

async fn body(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn the_page_reaches_nothing_but_its_origin() {
    let (_, app) = swarm().await;
    let r = app.clone().oneshot(get("/ui")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let policy = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    let html = body(r).await;
    // Every asset is a path of this server.
    for line in html
        .lines()
        .filter(|l| l.contains("src=") || l.contains("href="))
    {
        assert!(!line.contains("//"), "an outside reference: {line}");
    }
    for asset in ["/ui/app.js", "/ui/style.css"] {
        let r = app.clone().oneshot(get(asset)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let text = body(r).await;
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset}"
        );
    }
}

#[tokio::test]
async fn the_state_has_the_board() {
    let (_, app) = swarm().await;
    let r = app.oneshot(get("/ui/api/state")).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(v["leader"], "n1");
    assert_eq!(v["access"], "public");
    assert_eq!(
        v["services"][0]["spec"],
        serde_json::Value::Null,
        "no spec in public"
    );
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(v["services"][0]["name"], "web");
    assert_eq!(v["tasks"][0]["name"], "web.1");
    assert_eq!(v["tasks"][0]["node_id"], "n1");
    assert_eq!(v["tasks"][0]["active"], true);
}

#[tokio::test]
async fn events_send_the_state_then_what_changed() {
    let (store, app) = swarm().await;
    let r = app.oneshot(get("/ui/api/events")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut frames = r.into_body().into_data_stream();
    let mut text = String::new();
    let mut next_event = async || loop {
        if let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if !event.starts_with(':') {
                return event;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), frames.next())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    };
    let first = next_event().await;
    assert!(first.starts_with("event: state\n"), "{first}");
    // What a commit changed comes as one delta.
    let state = store.state().await.unwrap();
    let mut task = (**state.tasks().next().unwrap()).clone();
    task.status.state = swarm_core::model::TaskState::Running;
    store
        .apply(vec![
            Change::Update(Object::from(task)),
            Change::Delete {
                kind: swarm_core::model::Kind::Node,
                id: "n2".into(),
                version: None,
            },
        ])
        .await
        .unwrap();
    let delta = next_event().await;
    assert!(delta.starts_with("event: delta\n"), "{delta}");
    let data = delta
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["tasks"][0]["state"], "running", "{v}");
    assert_eq!(v["removed"], serde_json::json!(["n2"]), "{v}");
}

fn post(path: &str, json: &str, header: bool) -> Request<Body> {
    let mut r = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if header {
        r = r.header("x-swarm-ui", "1");
    }
    r.body(Body::from(json.to_owned())).unwrap()
}

#[tokio::test]
async fn changes_need_read_write_access_and_the_pages_header() {
    let (store, app) = swarm().await;
    let drain = "/ui/api/nodes/n2/availability";
    let r = app
        .clone()
        .oneshot(post(drain, r#"{"availability":"drain"}"#, true))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(body(r).await.contains("read-only"));
    let reader = app.clone().layer(Extension(Access::ReadOnly));
    let r = reader.oneshot(get("/ui/api/state")).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
    assert_eq!(v["services"][0]["spec"]["name"], "web", "{v}");
    let r = app.clone().oneshot(get("/ui/nothing")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let writer = app.layer(Extension(Access::ReadWrite));
    let r = writer
        .clone()
        .oneshot(post(drain, r#"{"availability":"drain"}"#, false))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = writer
        .clone()
        .oneshot(post(drain, r#"{"availability":"sideways"}"#, true))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("active, pause or drain"));
    let state = store.state().await.unwrap();
    assert_eq!(
        state.node("n2").unwrap().spec.availability,
        Availability::Active
    );

    let r = writer
        .clone()
        .oneshot(post(drain, r#"{"availability":"drain"}"#, true))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = writer
        .oneshot(post(
            "/ui/api/services/web/scale",
            r#"{"replicas":3}"#,
            true,
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let state = store.state().await.unwrap();
    assert_eq!(
        state.node("n2").unwrap().spec.availability,
        Availability::Drain
    );
    assert_eq!(
        state.service_by_name("web").unwrap().spec.mode,
        swarm_core::model::ServiceMode::Replicated { replicas: 3 }
    );
}
