use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use swarm_core::control::Control;
use swarm_core::manager::{run_allocator, run_orchestrator};
use swarm_core::model::{
    Cluster, ClusterSpec, EndpointMode, Meta, NetworkAttachment, NetworkSpec, ServiceSpec, Task,
    TaskState,
};
use swarm_core::store::{MemoryStore, Store};
use tokio_util::sync::CancellationToken;

use super::*;

fn on(name: &str) -> NetworkAttachment {
    NetworkAttachment {
        target: name.into(),
        ..NetworkAttachment::default()
    }
}

fn web(replicas: u64, networks: &[&str]) -> ServiceSpec {
    let mut s = ServiceSpec::replicated("web", replicas, vec!["sleep".into(), "60".into()]);
    s.task.networks = networks.iter().map(|n| on(n)).collect();
    s
}

/// A store with the cluster object and an ingress network, as `init` makes.
type Mem = Arc<MemoryStore>;

/// A store with the cluster object of `spec`.
async fn cluster_of(spec: ClusterSpec) -> (Mem, Control<Mem>) {
    let store = Arc::new(MemoryStore::new());
    let cluster = Cluster {
        meta: Meta::new("cluster".into()),
        spec,
        root_ca: None,
        join_tokens: None,
        unlock_key: None,
    };
    store
        .apply(vec![Change::Create(Object::Cluster(Arc::new(cluster)))])
        .await
        .unwrap();
    let control = Control::new(store.clone());
    (store, control)
}

async fn cluster() -> (Mem, Control<Mem>) {
    let (store, control) = cluster_of(ClusterSpec::default()).await;
    let mut ingress = NetworkSpec::overlay("ingress");
    ingress.ingress = true;
    control.create_network(ingress).await.unwrap();
    (store, control)
}

/// Runs the allocator over the store until it has nothing left to do.
async fn settle(store: &Mem) -> State {
    for _ in 0..10 {
        let state = store.state().await.unwrap();
        let mut ipam = restore(&state, &[]);
        let changes = plan(&state, &mut ipam).changes();
        if changes.is_empty() {
            return state;
        }
        store.apply(changes).await.unwrap();
    }
    panic!("the allocator never settled");
}

fn new_tasks(state: &State, service: &Service, n: u64) -> Vec<Change> {
    assert!(
        state.service(&service.meta.id).is_some(),
        "the service is stored"
    );
    (1..=n)
        .map(|slot| Change::Create(Task::new(service, slot, None, Vec::new()).into()))
        .collect()
}

/// The service's VIPs as `state` has them.
fn vips(state: &State, service: &Service) -> Vec<VirtualIp> {
    state
        .service(&service.meta.id)
        .unwrap()
        .endpoint
        .virtual_ips
        .clone()
}

fn addresses(state: &State) -> Vec<(Id, Ipv4Addr)> {
    let vips = state.services().flat_map(|s| {
        s.endpoint
            .virtual_ips
            .iter()
            .map(|v| (v.network_id.clone(), v.addr))
    });
    let tasks = state
        .tasks()
        .filter(|t| !t.status.state.is_terminal())
        .flat_map(|t| t.networks.iter().map(|a| (a.network_id.clone(), a.addr)));
    vips.chain(tasks).collect()
}

#[tokio::test]
async fn networks_get_subnets_and_vnis_in_order() {
    let (store, control) = cluster().await;
    control
        .create_network(NetworkSpec::overlay("appnet"))
        .await
        .unwrap();
    let state = settle(&store).await;
    let ingress = state.networks().find(|n| n.spec.ingress).unwrap();
    let appnet = state.networks().find(|n| n.spec.name == "appnet").unwrap();
    let (a, b) = (ingress.addresses.unwrap(), appnet.addresses.unwrap());
    assert_eq!(a.subnet.to_string(), "10.0.0.0/24");
    assert_eq!(a.gateway, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!((a.vni, b.vni), (FIRST_VNI, FIRST_VNI + 1));
    assert_eq!(b.subnet.to_string(), "10.0.1.0/24");
}

#[tokio::test]
async fn a_service_gets_its_vips_before_its_tasks_get_addresses() {
    let (store, control) = cluster().await;
    control
        .create_network(NetworkSpec::overlay("appnet"))
        .await
        .unwrap();
    settle(&store).await;
    let mut spec = web(3, &["appnet"]);
    spec.endpoint.ports = vec!["8080:80".parse().unwrap()];
    let svc = control.create_service(spec).await.unwrap();
    let state = store.state().await.unwrap();
    store.apply(new_tasks(&state, &svc, 3)).await.unwrap();

    // One run: the VIPs come first, so no task is addressed before its
    // service has its VIPs.
    let state = store.state().await.unwrap();
    let mut ipam = restore(&state, &[]);
    let first = plan(&state, &mut ipam);
    assert_eq!(first.services.len(), 1);
    let planned = &first.services[0];
    assert_eq!(
        planned.endpoint.virtual_ips.len(),
        2,
        "a VIP on appnet and one on ingress (the port is published)"
    );
    let state = settle(&store).await;
    let svc = state.service(&svc.meta.id).unwrap();
    for t in state.tasks() {
        assert_eq!(t.networks.len(), 2, "{t:?}");
        for a in &t.networks {
            assert!(svc.vip(&a.network_id).is_some());
            assert_ne!(Some(a.addr), svc.vip(&a.network_id));
        }
    }
    let all = addresses(&state);
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), unique.len(), "an address given twice: {all:?}");
    assert_eq!(all.len(), 2 + 3 * 2);
}

#[tokio::test]
async fn dnsrr_services_get_no_vip_and_leaving_a_network_releases_it() {
    let (store, control) = cluster().await;
    control
        .create_network(NetworkSpec::overlay("appnet"))
        .await
        .unwrap();
    let mut spec = web(1, &["appnet"]);
    spec.endpoint.mode = EndpointMode::Dnsrr;
    let svc = control.create_service(spec).await.unwrap();
    let state = store.state().await.unwrap();
    store.apply(new_tasks(&state, &svc, 1)).await.unwrap();
    let state = settle(&store).await;
    assert!(vips(&state, &svc).is_empty());
    assert_eq!(state.tasks().next().unwrap().networks.len(), 1);

    control
        .update_service("web", |s| {
            s.endpoint.mode = EndpointMode::Vip;
            Ok(())
        })
        .await
        .unwrap();
    let state = settle(&store).await;
    let vip = vips(&state, &svc)[0].clone();
    control
        .update_service("web", |s| {
            s.task.networks.clear();
            Ok(())
        })
        .await
        .unwrap();
    let state = settle(&store).await;
    assert!(vips(&state, &svc).is_empty());
    let mut ipam = restore(&state, &[]);
    let before = ipam.in_use(&vip.network_id);
    // The old task still holds its address; the VIP is free again.
    assert_eq!(before, 1);
    assert_eq!(ipam.allocate(&vip.network_id).unwrap(), vip.addr);
}

#[tokio::test]
async fn an_exhausted_network_is_an_error_on_the_task_and_frees_up_on_release() {
    let (store, control) = cluster().await;
    let mut small = NetworkSpec::overlay("tiny");
    // Two host addresses: the gateway and one more.
    small.subnet = Some("10.9.0.0/30".parse().unwrap());
    control.create_network(small).await.unwrap();
    let mut spec = web(2, &["tiny"]);
    spec.endpoint.mode = EndpointMode::Dnsrr;
    let svc = control.create_service(spec).await.unwrap();
    let state = store.state().await.unwrap();
    store.apply(new_tasks(&state, &svc, 2)).await.unwrap();
    let state = settle(&store).await;
    let mut tasks: Vec<&Arc<Task>> = state.tasks().collect();
    tasks.sort_by_key(|t| t.slot);
    assert_eq!(tasks[0].networks.len(), 1);
    assert!(tasks[1].networks.is_empty());
    let err = tasks[1].status.err.as_deref().unwrap();
    assert!(
        err.contains("no address on network tiny") && err.contains("no free address left"),
        "{err}"
    );

    // The first task ends: its address goes to the second.
    let mut done = (**tasks[0]).clone();
    done.status = swarm_core::model::TaskStatus::new(TaskState::Complete, "exited");
    store
        .apply(vec![Change::Update(done.clone().into())])
        .await
        .unwrap();
    let state = settle(&store).await;
    let second = state.task(&tasks[1].meta.id).unwrap();
    assert_eq!(second.networks[0].addr, tasks[0].networks[0].addr);
    assert_eq!(second.status.err, None);
}

#[tokio::test]
async fn an_exhausted_pool_is_an_error_on_the_network() {
    let (store, control) = cluster_of(ClusterSpec {
        default_addr_pool: vec!["10.20.0.0/23".parse().unwrap()],
        subnet_size: 24,
        ..ClusterSpec::default()
    })
    .await;
    for n in ["a", "b", "c"] {
        control
            .create_network(NetworkSpec::overlay(n))
            .await
            .unwrap();
    }
    let state = settle(&store).await;
    let by = |n: &str| state.networks().find(|x| x.spec.name == n).unwrap().clone();
    assert_eq!(
        by("a").addresses.unwrap().subnet.to_string(),
        "10.20.0.0/24"
    );
    assert_eq!(
        by("b").addresses.unwrap().subnet.to_string(),
        "10.20.1.0/24"
    );
    let c = by("c");
    assert!(c.addresses.is_none());
    assert!(
        c.error.as_deref().unwrap().contains("exhausted"),
        "{:?}",
        c.error
    );
}

/// With the orchestrator and the core allocator running beside it, tasks
/// on a network reach `pending` with their addresses, and only then.
#[tokio::test]
async fn tasks_go_pending_only_once_addressed() {
    let (store, control) = cluster().await;
    control
        .create_network(NetworkSpec::overlay("appnet"))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let loops = [
        tokio::spawn(run_orchestrator(store.clone(), stop.clone())),
        tokio::spawn(run_allocator(store.clone(), stop.clone())),
    ];
    control.create_service(web(3, &["appnet"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = store.state().await.unwrap();
    assert_eq!(state.tasks().count(), 3);
    assert!(
        state.tasks().all(|t| t.status.state == TaskState::New),
        "no task may leave new without its addresses"
    );
    let net = tokio::spawn({
        let store = store.clone();
        let stop = stop.clone();
        async move {
            swarm_core::manager::control_loop::drive(
                &store,
                NetworkAllocator::new(store.clone(), Vec::new()),
                stop,
            )
            .await;
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = store.state().await.unwrap();
        if state
            .tasks()
            .all(|t| t.status.state == TaskState::Pending && t.networks.len() == 1)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks never went pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for l in loops {
        l.await.unwrap();
    }
    net.await.unwrap();
}
