use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn net(s: &str) -> Subnet {
    s.parse().unwrap()
}

fn id(s: &str) -> Id {
    s.into()
}

#[test]
fn networks_get_the_first_free_block_and_addresses_go_out_lowest_first() {
    let mut ipam = Ipam::new(PoolConfig::default(), []);
    let a = ipam.create_network(id("a"), None, None).unwrap();
    assert_eq!(a.subnet, net("10.0.0.0/24"));
    assert_eq!(a.gateway, Ipv4Addr::new(10, 0, 0, 1));
    let b = ipam.create_network(id("b"), None, None).unwrap();
    assert_eq!(b.subnet, net("10.0.1.0/24"));
    let first = ipam.allocate(&id("a")).unwrap();
    let second = ipam.allocate(&id("a")).unwrap();
    assert_eq!(
        (first, second),
        (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3))
    );
    ipam.release(&id("a"), first).unwrap();
    assert_eq!(
        ipam.allocate(&id("a")).unwrap(),
        first,
        "a released address comes back first"
    );
    assert_eq!(ipam.in_use(&id("a")), 2);
}

#[test]
fn blocks_skip_the_node_s_routes_and_other_networks() {
    let mut ipam = Ipam::new(
        PoolConfig::default(),
        [net("10.0.0.0/16"), net("10.1.0.0/24")],
    );
    ipam.create_network(id("user"), Some(net("10.1.1.0/24")), None)
        .unwrap();
    let a = ipam.create_network(id("a"), None, None).unwrap();
    assert_eq!(a.subnet, net("10.1.2.0/24"));
    // A block larger than the pool's step is jumped over whole.
    let mut ipam = Ipam::new(
        PoolConfig::new(net("172.16.0.0/12"), 20),
        [net("172.16.0.0/13")],
    );
    assert_eq!(
        ipam.create_network(id("a"), None, None).unwrap().subnet,
        net("172.24.0.0/20")
    );
}

#[test]
fn user_subnets_are_checked_with_reasons() {
    let mut ipam = Ipam::new(PoolConfig::default(), [net("192.168.1.0/24")]);
    ipam.create_network(id("appnet"), None, None).unwrap();
    let err = ipam
        .create_network(id("x"), Some(net("10.0.0.0/16")), None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.0.0.0/16 overlaps network appnet (10.0.0.0/24): choose another subnet"
    );
    let err = ipam
        .create_network(id("x"), Some(net("192.168.0.0/16")), None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("overlaps this node's route 192.168.1.0/24"),
        "{err}"
    );
    let err = ipam
        .create_network(
            id("x"),
            Some(net("10.5.0.0/24")),
            Some(Ipv4Addr::new(10, 6, 0, 1)),
        )
        .unwrap_err();
    assert!(matches!(err, IpamError::GatewayOutside { .. }), "{err}");
    for bad_gateway in [Ipv4Addr::new(10, 5, 0, 0), Ipv4Addr::new(10, 5, 0, 255)] {
        assert!(
            ipam.create_network(id("x"), Some(net("10.5.0.0/24")), Some(bad_gateway))
                .is_err()
        );
    }
    assert!(matches!(
        ipam.create_network(id("x"), Some(net("10.5.0.0/31")), None),
        Err(IpamError::TooSmall(_))
    ));
    assert!(matches!(
        ipam.create_network(id("appnet"), None, None),
        Err(IpamError::NetworkExists(_))
    ));
    // Nothing changed.
    assert_eq!(ipam.network(&id("x")), None);
    let g = ipam
        .create_network(
            id("x"),
            Some(net("10.5.0.0/24")),
            Some(Ipv4Addr::new(10, 5, 0, 254)),
        )
        .unwrap();
    assert_eq!(g.gateway, Ipv4Addr::new(10, 5, 0, 254));
    assert_eq!(ipam.allocate(&id("x")).unwrap(), Ipv4Addr::new(10, 5, 0, 1));
}

#[test]
fn exhaustion_is_an_error_that_says_so() {
    let mut ipam = Ipam::new(PoolConfig::new(net("10.9.0.0/23"), 24), []);
    ipam.create_network(id("a"), None, None).unwrap();
    ipam.create_network(id("b"), None, None).unwrap();
    let err = ipam
        .create_network(id("c"), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pools (10.9.0.0/23 in /24s) are exhausted"),
        "{err}"
    );

    // A subnet of the user's own need not be in the pools.
    ipam.create_network(id("tiny"), Some(net("10.10.0.0/30")), None)
        .unwrap();
    assert_eq!(
        ipam.allocate(&id("tiny")).unwrap(),
        Ipv4Addr::new(10, 10, 0, 2)
    );
    let err = ipam.allocate(&id("tiny")).unwrap_err().to_string();
    assert!(
        err.contains("network tiny (10.10.0.0/30) has no free address left"),
        "{err}"
    );
}

#[test]
fn addresses_are_handed_out_once_and_taken_back_once() {
    let mut ipam = Ipam::new(PoolConfig::default(), []);
    ipam.create_network(id("a"), Some(net("10.2.0.0/24")), None)
        .unwrap();
    let a = id("a");
    ipam.allocate_exact(&a, Ipv4Addr::new(10, 2, 0, 9)).unwrap();
    assert!(matches!(
        ipam.allocate_exact(&a, Ipv4Addr::new(10, 2, 0, 9)),
        Err(IpamError::InUse { .. })
    ));
    for reserved in [
        Ipv4Addr::new(10, 2, 0, 0),
        Ipv4Addr::new(10, 2, 0, 1),
        Ipv4Addr::new(10, 2, 0, 255),
        Ipv4Addr::new(10, 3, 0, 5),
    ] {
        assert!(matches!(
            ipam.allocate_exact(&a, reserved),
            Err(IpamError::NotInNetwork { .. })
        ));
        assert!(ipam.release(&a, reserved).is_err());
    }
    assert!(matches!(
        ipam.remove_network(&a),
        Err(IpamError::NetworkInUse { addresses: 1, .. })
    ));
    ipam.release(&a, Ipv4Addr::new(10, 2, 0, 9)).unwrap();
    assert!(matches!(
        ipam.release(&a, Ipv4Addr::new(10, 2, 0, 9)),
        Err(IpamError::NotInUse { .. })
    ));
    ipam.remove_network(&a).unwrap();
    assert!(matches!(
        ipam.allocate(&a),
        Err(IpamError::UnknownNetwork(_))
    ));
    // Its subnet is free again.
    assert_eq!(
        ipam.create_network(id("b"), None, None).unwrap().subnet,
        net("10.0.0.0/24")
    );
}

#[test]
fn a_restored_manager_goes_on_where_the_last_one_stopped() {
    let mut first = Ipam::new(PoolConfig::default(), []);
    let alloc = first.create_network(id("a"), None, None).unwrap();
    let held: Vec<Ipv4Addr> = (0..3).map(|_| first.allocate(&id("a")).unwrap()).collect();
    first.release(&id("a"), held[1]).unwrap();
    let kept = vec![held[0], held[2]];
    // A route that appeared since does not undo a recorded network.
    let mut again = Ipam::restore(
        PoolConfig::default(),
        [net("10.0.0.0/16")],
        [(id("a"), alloc, kept.clone())],
    )
    .unwrap();
    assert_eq!(again.in_use(&id("a")), 2);
    assert_eq!(again.allocate(&id("a")).unwrap(), held[1]);
    assert_eq!(
        again.create_network(id("b"), None, None).unwrap().subnet,
        net("10.1.0.0/24"),
        "new networks avoid the route"
    );
    let twice = Ipam::restore(
        PoolConfig::default(),
        [],
        [(id("a"), alloc, vec![held[0], held[0]])],
    );
    assert!(matches!(twice, Err(IpamError::InUse { .. })));
}

#[test]
fn pool_settings_are_checked() {
    assert!(PoolConfig::default().validate().is_ok());
    let err = PoolConfig::new(net("10.0.0.0/16"), 8)
        .validate()
        .unwrap_err();
    assert!(
        err.to_string().contains("use a length from 16 to 30"),
        "{err}"
    );
    assert!(PoolConfig::new(net("10.0.0.0/16"), 31).validate().is_err());
    assert!(PoolConfig { pools: vec![] }.validate().is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Create { net: u8, subnet: Option<u8> },
    Remove { net: u8 },
    Allocate { net: u8 },
    Release { net: u8, pick: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, prop::option::of(0..6u8)).prop_map(|(net, subnet)| Op::Create { net, subnet }),
        (0..4u8).prop_map(|net| Op::Remove { net }),
        (0..4u8).prop_map(|net| Op::Allocate { net }),
        (0..4u8).prop_map(|net| Op::Allocate { net }),
        (0..4u8, any::<u16>()).prop_map(|(net, pick)| Op::Release { net, pick }),
    ]
}

proptest! {
    /// Random create/remove/allocate/release sequences, against a model:
    /// no address twice, none leaked, released ones reused first, no two
    /// networks overlapping.
    #[test]
    fn churn_never_doubles_or_leaks(ops in prop::collection::vec(op(), 1..200)) {
        // A small pool (4 blocks of /28: 13 hosts each) so that
        // exhaustion happens too.
        let mut ipam = Ipam::new(PoolConfig::new(net("10.7.0.0/26"), 28), [net("10.7.0.16/28")]);
        let mut model: BTreeMap<Id, (NetworkAllocation, BTreeSet<Ipv4Addr>)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Create { net: n, subnet } => {
                    let key = id(&format!("n{n}"));
                    // User subnets inside and outside the pool, some overlapping.
                    let asked = subnet.map(|k| Subnet::containing(Ipv4Addr::new(10, 7, 0, k * 16), if k % 2 == 0 { 28 } else { 27 }));
                    match ipam.create_network(key.clone(), asked, None) {
                        Ok(alloc) => {
                            prop_assert!(!model.contains_key(&key));
                            for (other, (a, _)) in &model {
                                prop_assert!(!a.subnet.overlaps(&alloc.subnet), "{} overlaps {other}", alloc.subnet);
                            }
                            prop_assert!(!alloc.subnet.overlaps(&net("10.7.0.16/28")), "the route is never used");
                            model.insert(key, (alloc, BTreeSet::new()));
                        }
                        Err(IpamError::NetworkExists(_)) => prop_assert!(model.contains_key(&key)),
                        Err(IpamError::Overlap { subnet, .. }) => {
                            let clash = model.values().any(|(a, _)| a.subnet.overlaps(&subnet))
                                || subnet.overlaps(&net("10.7.0.16/28"));
                            prop_assert!(clash);
                        }
                        Err(IpamError::PoolsExhausted { .. }) => prop_assert!(model.len() >= 2),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Remove { net: n } => {
                    let key = id(&format!("n{n}"));
                    match (ipam.remove_network(&key), model.get(&key)) {
                        (Ok(()), Some((_, held))) => {
                            prop_assert!(held.is_empty());
                            model.remove(&key);
                        }
                        (Err(IpamError::NetworkInUse { addresses, .. }), Some((_, held))) => {
                            prop_assert_eq!(addresses, held.len());
                        }
                        (Err(IpamError::UnknownNetwork(_)), None) => {}
                        (r, m) => prop_assert!(false, "{r:?} with {m:?}"),
                    }
                }
                Op::Allocate { net: n } => {
                    let key = id(&format!("n{n}"));
                    match (ipam.allocate(&key), model.get_mut(&key)) {
                        (Ok(addr), Some((alloc, held))) => {
                            prop_assert!(alloc.subnet.contains(addr));
                            prop_assert!(addr != alloc.gateway);
                            prop_assert!(u32::from(addr) != alloc.subnet.first() && u32::from(addr) != alloc.subnet.last());
                            // The lowest free one.
                            let lower_free = (alloc.subnet.first() + 1..u32::from(addr))
                                .map(Ipv4Addr::from)
                                .any(|a| a != alloc.gateway && !held.contains(&a));
                            prop_assert!(!lower_free, "{addr} handed out while a lower one is free");
                            prop_assert!(held.insert(addr), "{addr} handed out twice");
                        }
                        (Err(IpamError::AddressesExhausted { hosts, .. }), Some((_, held))) => {
                            prop_assert_eq!(held.len() as u64, hosts - 1);
                        }
                        (Err(IpamError::UnknownNetwork(_)), None) => {}
                        (r, m) => prop_assert!(false, "{r:?} with {m:?}"),
                    }
                }
                Op::Release { net: n, pick } => {
                    let key = id(&format!("n{n}"));
                    if let Some((_, held)) = model.get_mut(&key)
                        && let Some(&addr) = held.iter().nth(usize::from(pick) % held.len().max(1))
                    {
                        ipam.release(&key, addr).unwrap();
                        held.remove(&addr);
                        prop_assert!(ipam.release(&key, addr).is_err(), "released twice");
                    }
                }
            }
            for (key, (_, held)) in &model {
                prop_assert_eq!(ipam.in_use(key), held.len(), "no leak in {}", key);
            }
        }
    }
}
