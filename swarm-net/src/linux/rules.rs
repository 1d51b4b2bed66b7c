//! What the node programs, computed from the view alone (pure): interface
//! names and MAC addresses, the overlay's static neighbours, and the
//! nftables rulesets of the load balancer (VIPs in each task's namespace,
//! the routing mesh and host-mode ports on the node).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use swarm_core::Id;
use swarm_core::model::{EndpointMode, PortConfig, Protocol, PublishMode};
use swarm_core::network::{NetworkView, ViewNetwork};

/// The MAC address of an overlay address: `02:42` and the address's four
/// bytes, as Docker's overlay does, so that every node knows every MAC
/// without asking.
#[must_use]
pub fn mac_of(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The bridge of an overlay on a node.
#[must_use]
pub fn bridge_name(vni: u32) -> String {
    format!("swb{vni}")
}

/// The VXLAN device of an overlay on a node.
#[must_use]
pub fn vxlan_name(vni: u32) -> String {
    format!("swv{vni}")
}

/// The host end of a task's veth pair on its `index`th network (at most
/// 15 bytes, as the kernel wants).
#[must_use]
pub fn veth_name(task: &Id, index: usize) -> String {
    let short: String = task.as_str().chars().take(9).collect();
    format!("sw{short}{index:x}")
}

/// The namespace of a task.
#[must_use]
pub fn netns_name(task: &Id) -> String {
    format!("swarm-{}", task.as_str())
}

/// A remote address on an overlay: which MAC it has and which node's
/// underlay address its frames go to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// The overlay address.
    pub ip: Ipv4Addr,
    /// Its node's underlay address.
    pub dst: IpAddr,
}

/// The remote addresses of `network` that `node` must reach: every
/// unfinished task on another node, and the other nodes' own addresses
/// (ingress).
#[must_use]
pub fn peers(view: &NetworkView, node: &Id, network: &ViewNetwork) -> BTreeSet<Peer> {
    let mut out = BTreeSet::new();
    for e in view.endpoints.iter().filter(|e| &e.node_id != node) {
        let Some(dst) = view.node_addr(&e.node_id) else {
            continue;
        };
        for a in e.networks.iter().filter(|a| a.network_id == network.id) {
            out.insert(Peer { ip: a.addr, dst });
        }
    }
    for (other, ip) in network.node_addrs.iter().filter(|(n, _)| n != node) {
        if let Some(dst) = view.node_addr(other) {
            out.insert(Peer { ip: *ip, dst });
        }
    }
    out
}

/// The name of the nftables table swarm owns, in the node's namespace and
/// in each task's.
pub const TABLE: &str = "swarm";

/// How connections to a VIP or a published port are spread: the seam of
/// load balancing. Pure: it writes rulesets from the view, and the driver
/// loads them. [`NftBalancer`] is the kernel's round robin.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Balancer: Send + Sync + 'static {
    /// The ruleset of a task's namespace: connections to the VIPs of the
    /// services it shares a network with go to their serving tasks.
    fn task_rules(&self, view: &NetworkView, task_networks: &[Id]) -> String;

    /// The ruleset of the node's namespace: the routing mesh (ingress
    /// ports, to serving tasks anywhere) and the host-mode ports of the
    /// node's own tasks. `ingress_addr`: the node's own address on the
    /// ingress network, the mesh's source address.
    fn node_rules(&self, view: &NetworkView, node: &Id, ingress_addr: Option<Ipv4Addr>) -> String;
}

/// Balancing by nftables DNAT with `numgen inc`: each new connection goes
/// to the next backend, round robin; established connections keep theirs
/// (conntrack), so a backend that leaves the rotation drains without
/// losing a connection. No idle timeout beyond conntrack's (5 days for
/// established TCP).
#[derive(Debug, Clone, Copy, Default)]
pub struct NftBalancer;

/// `dnat to ...` over `backends`: one, or round robin over several.
fn dnat_to(backends: &[Ipv4Addr], port: Option<u32>) -> String {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    match backends {
        [one] => format!("dnat to {one}{port}"),
        many => {
            let map: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{i} : {b}"))
                .collect();
            format!(
                "dnat to numgen inc mod {} map {{ {} }}{port}",
                many.len(),
                map.join(", ")
            )
        }
    }
}

/// The routing mesh's PROXY protocol ports (served in user space, not by
/// nftables): published port -> serving tasks' ingress addresses.
#[must_use]
pub fn proxy_ports(
    view: &NetworkView,
) -> std::collections::HashMap<u16, Vec<std::net::SocketAddr>> {
    let mut out = std::collections::HashMap::new();
    let Some(ingress) = view.networks.iter().find(|n| n.ingress) else {
        return out;
    };
    for s in &view.services {
        for p in s
            .ports
            .iter()
            .filter(|p| p.proxy_protocol && p.is_ingress())
        {
            let (Ok(published), Ok(target)) = (
                u16::try_from(p.published_port),
                u16::try_from(p.target_port),
            ) else {
                continue;
            };
            let backends: Vec<std::net::SocketAddr> = view
                .endpoints_of(&s.id)
                .filter(|e| e.serving)
                .filter_map(|e| e.networks.iter().find(|a| a.network_id == ingress.id))
                .map(|a| std::net::SocketAddr::from((a.addr, target)))
                .collect();
            if published != 0 {
                out.insert(published, backends);
            }
        }
    }
    out
}

/// A rule sending connections to this node's `port` to `backends`.
fn publish(rules: &mut String, proto: &str, port: &PortConfig, backends: &[Ipv4Addr]) {
    if port.proxy_protocol {
        return; // served by the node's PROXY protocol listener
    }
    if backends.is_empty() || port.published_port == 0 {
        return;
    }
    let _ = writeln!(
        rules,
        "    fib daddr type local {proto} dport {} {}",
        port.published_port,
        dnat_to(backends, Some(port.target_port))
    );
}

/// A ruleset that replaces the table atomically: declaring it first makes
/// the delete succeed when it did not exist.
fn replace_table(body: &str) -> String {
    format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n{body}}}\n")
}

impl Balancer for NftBalancer {
    fn task_rules(&self, view: &NetworkView, task_networks: &[Id]) -> String {
        let mut nat = String::new();
        let mut dead: Vec<Ipv4Addr> = Vec::new();
        for s in view.services.iter().filter(|s| s.mode == EndpointMode::Vip) {
            for (net, vip) in s.vips.iter().filter(|(n, _)| task_networks.contains(n)) {
                let backends: Vec<Ipv4Addr> = view
                    .endpoints_of(&s.id)
                    .filter(|e| e.serving)
                    .filter_map(|e| e.networks.iter().find(|a| &a.network_id == net))
                    .map(|a| a.addr)
                    .collect();
                if backends.is_empty() {
                    dead.push(*vip);
                } else {
                    let _ = writeln!(nat, "    ip daddr {vip} {}", dnat_to(&backends, None));
                }
            }
        }
        let mut body = format!(
            "  chain vip {{\n    type nat hook output priority -100; policy accept;\n{nat}  }}\n"
        );
        if !dead.is_empty() {
            let set: Vec<String> = dead.iter().map(ToString::to_string).collect();
            let set = set.join(", ");
            let _ = write!(
                body,
                "  chain novip {{\n    type filter hook output priority 0; policy accept;\n    ip protocol tcp ip daddr {{ {set} }} reject with tcp reset\n    ip daddr {{ {set} }} reject\n  }}\n"
            );
        }
        replace_table(&body)
    }

    fn node_rules(&self, view: &NetworkView, node: &Id, ingress_addr: Option<Ipv4Addr>) -> String {
        let ingress = view.networks.iter().find(|n| n.ingress);
        let mut dnat = String::new();
        for s in &view.services {
            for p in &s.ports {
                let proto = match p.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                };
                match p.publish_mode {
                    PublishMode::Ingress => {
                        let (Some(ingress), Some(_)) = (ingress, ingress_addr) else {
                            continue;
                        };
                        let backends: Vec<Ipv4Addr> = view
                            .endpoints_of(&s.id)
                            .filter(|e| e.serving)
                            .filter_map(|e| e.networks.iter().find(|a| a.network_id == ingress.id))
                            .map(|a| a.addr)
                            .collect();
                        publish(&mut dnat, proto, p, &backends);
                    }
                    PublishMode::Host => {
                        // Only this node's tasks: the port is theirs here.
                        let local: Vec<Ipv4Addr> = view
                            .endpoints_of(&s.id)
                            .filter(|e| &e.node_id == node && e.serving)
                            .filter_map(|e| e.networks.first())
                            .map(|a| a.addr)
                            .collect();
                        publish(&mut dnat, proto, p, &local);
                    }
                }
            }
        }
        let mut body = format!(
            "  chain mesh_in {{\n    type nat hook prerouting priority -100; policy accept;\n{dnat}  }}\n  chain mesh_out {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}\n"
        );
        if let (Some(ingress), Some(addr)) = (ingress, ingress_addr) {
            let _ = write!(
                body,
                "  chain mesh_src {{\n    type nat hook postrouting priority 100; policy accept;\n    oifname \"{}\" ct status dnat snat to {addr}\n  }}\n",
                bridge_name(ingress.vni)
            );
        }
        // Overlays do not route into each other through the node.
        let bridges: Vec<String> = view
            .networks
            .iter()
            .map(|n| format!("\"{}\"", bridge_name(n.vni)))
            .collect();
        if bridges.len() > 1 {
            let set = bridges.join(", ");
            let mut rules = String::new();
            for b in &bridges {
                let _ = writeln!(
                    rules,
                    "    iifname {b} oifname != {b} oifname {{ {set} }} drop"
                );
            }
            let _ = write!(
                body,
                "  chain isolate {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n"
            );
        }
        replace_table(&body)
    }
}

#[cfg(test)]
mod tests;
