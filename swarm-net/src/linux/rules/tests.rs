use super::*;
use crate::testview::view;

#[test]
fn names_fit_the_kernel_and_macs_follow_addresses() {
    assert_eq!(mac_of("10.0.1.5".parse().unwrap()), "02:42:0a:00:01:05");
    let id = Id::generate();
    assert!(veth_name(&id, 3).len() <= 15);
    assert!(bridge_name(16_777_215).len() <= 15 && vxlan_name(16_777_215).len() <= 15);
}

#[test]
fn peers_are_the_other_nodes_tasks_and_ingress_addresses() {
    let v = view();
    let app = v.network(&"app".into()).unwrap();
    let p: Vec<String> = peers(&v, &"n1".into(), app)
        .iter()
        .map(|p| format!("{}>{}", p.ip, p.dst))
        .collect();
    // w2, the draining w3 (its open connections still need it) and d2.
    assert_eq!(
        p,
        [
            "10.0.1.4>192.168.77.2",
            "10.0.1.5>192.168.77.2",
            "10.0.1.11>192.168.77.2"
        ]
    );
    let ing = v.network(&"ing".into()).unwrap();
    let p = peers(&v, &"n1".into(), ing);
    assert!(
        p.iter().any(|p| p.ip.to_string() == "10.0.0.251"),
        "n2's own address"
    );
    assert!(
        !p.iter().any(|p| p.ip.to_string() == "10.0.0.250"),
        "not n1's"
    );
}

#[test]
fn a_task_s_rules_balance_the_vips_of_its_networks_over_serving_tasks() {
    let rules = NftBalancer.task_rules(&view(), &["app".into()]);
    assert!(
        rules.contains(
            "ip daddr 10.0.1.2 dnat to numgen inc mod 2 map { 0 : 10.0.1.3, 1 : 10.0.1.4 }"
        ),
        "{rules}"
    );
    assert!(
        !rules.contains("10.0.1.5"),
        "a draining task takes no new connection"
    );
    assert!(
        !rules.contains("10.0.2.2"),
        "other networks' VIPs are not this task's"
    );
    assert!(
        rules.starts_with("table ip swarm {}\ndelete table ip swarm\n"),
        "replaced atomically"
    );
}

#[test]
fn the_node_s_rules_publish_ingress_ports_to_serving_tasks_anywhere() {
    let rules = NftBalancer.node_rules(&view(), &"n1".into(), Some("10.0.0.250".parse().unwrap()));
    assert!(
        rules.contains("fib daddr type local tcp dport 8080 dnat to numgen inc mod 2 map { 0 : 10.0.0.3, 1 : 10.0.0.4 }:80"),
        "{rules}"
    );
    assert!(
        rules.contains("oifname \"swb4096\" ct status dnat snat to 10.0.0.250"),
        "{rules}"
    );
    assert!(
        rules.contains("iifname \"swb4097\" oifname != \"swb4097\""),
        "{rules}"
    );
    // Without its own ingress address the node publishes nothing.
    let none = NftBalancer.node_rules(&view(), &"n1".into(), None);
    assert!(!none.contains("dport 8080"), "{none}");
}
