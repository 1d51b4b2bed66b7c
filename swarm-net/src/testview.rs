//! A small view for the pure tests: ingress and appnet, a VIP service
//! `web` with three tasks on two nodes, a dnsrr service `db` on appnet,
//! and `other` on a network of its own.

use std::net::Ipv4Addr;

use swarm_core::Id;
use swarm_core::model::{EndpointMode, TaskNetwork};
use swarm_core::network::{NetworkView, ViewEndpoint, ViewNetwork, ViewNode, ViewService};

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(id: &str, name: &str, third: u8, vni: u32, ingress: bool) -> ViewNetwork {
    ViewNetwork {
        id: id.into(),
        name: name.into(),
        subnet: format!("10.0.{third}.0/24").parse().unwrap(),
        gateway: Ipv4Addr::new(10, 0, third, 1),
        vni,
        internal: false,
        ingress,
        node_addrs: if ingress {
            vec![
                ("n1".into(), ip("10.0.0.250")),
                ("n2".into(), ip("10.0.0.251")),
            ]
        } else {
            Vec::new()
        },
    }
}

fn at(network: &str, addr: &str) -> TaskNetwork {
    TaskNetwork {
        network_id: network.into(),
        addr: ip(addr),
        prefix: 24,
        aliases: Vec::new(),
    }
}

fn endpoint(
    task: &str,
    service: &str,
    node: &str,
    serving: bool,
    nets: Vec<TaskNetwork>,
) -> ViewEndpoint {
    ViewEndpoint {
        serving,
        task_id: task.into(),
        service_id: service.into(),
        node_id: node.into(),
        networks: nets,
    }
}

pub(crate) fn view() -> NetworkView {
    let id = |s: &str| Id::from(s);
    NetworkView {
        networks: vec![
            net("ing", "ingress", 0, 4096, true),
            net("app", "appnet", 1, 4097, false),
            net("oth", "othernet", 2, 4098, false),
        ],
        nodes: vec![
            ViewNode {
                id: id("n1"),
                addr: "192.168.77.1".parse().unwrap(),
            },
            ViewNode {
                id: id("n2"),
                addr: "192.168.77.2".parse().unwrap(),
            },
        ],
        services: vec![
            ViewService {
                id: id("web"),
                name: "web".into(),
                mode: EndpointMode::Vip,
                vips: vec![(id("app"), ip("10.0.1.2")), (id("ing"), ip("10.0.0.2"))],
                networks: vec![id("app"), id("ing")],
                aliases: vec![(id("app"), "www".into())],
                ports: vec!["8080:80".parse().unwrap()],
            },
            ViewService {
                id: id("db"),
                name: "db".into(),
                mode: EndpointMode::Dnsrr,
                vips: Vec::new(),
                networks: vec![id("app")],
                aliases: Vec::new(),
                ports: Vec::new(),
            },
            ViewService {
                id: id("other"),
                name: "other".into(),
                mode: EndpointMode::Vip,
                vips: vec![(id("oth"), ip("10.0.2.2"))],
                networks: vec![id("oth")],
                aliases: Vec::new(),
                ports: Vec::new(),
            },
        ],
        endpoints: vec![
            endpoint(
                "w1",
                "web",
                "n1",
                true,
                vec![at("app", "10.0.1.3"), at("ing", "10.0.0.3")],
            ),
            endpoint(
                "w2",
                "web",
                "n2",
                true,
                vec![at("app", "10.0.1.4"), at("ing", "10.0.0.4")],
            ),
            // Told to stop: drains, serves no new connection.
            endpoint(
                "w3",
                "web",
                "n2",
                false,
                vec![at("app", "10.0.1.5"), at("ing", "10.0.0.5")],
            ),
            endpoint("d1", "db", "n1", true, vec![at("app", "10.0.1.10")]),
            endpoint("d2", "db", "n2", true, vec![at("app", "10.0.1.11")]),
        ],
        data_path_port: 4789,
    }
}
