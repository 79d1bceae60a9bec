//! Policy validation: bad input is refused with a typed error.

use std::net::IpAddr;

use ipnet::IpNet;
use trafficjam_core::{InstanceId, Policy, PolicyError};

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}
fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn valid_dual_stack_policy_is_normalised() {
    let p = Policy::new(
        InstanceId::default(),
        nets(&["fd77:1::5/64", "10.77.1.9/24", "10.77.1.0/24"]),
        ips(&["10.77.1.10", "::ffff:10.77.1.11", "fd77:1::10"]),
        false,
    )
    .unwrap();
    assert_eq!(
        p.subnets(),
        nets(&["10.77.1.0/24", "fd77:1::/64"]).as_slice()
    );
    assert_eq!(
        p.whitelist(),
        ips(&["10.77.1.10", "10.77.1.11", "fd77:1::10"]).as_slice()
    );
}

#[test]
fn empty_subnet_list_is_refused() {
    let e = Policy::new(InstanceId::default(), vec![], vec![], false).unwrap_err();
    assert_eq!(e, PolicyError::NoSubnet);
}

#[test]
fn host_route_subnet_is_refused() {
    for s in ["10.0.0.1/32", "fd00::1/128"] {
        let e = Policy::new(InstanceId::default(), nets(&[s]), vec![], false).unwrap_err();
        assert!(matches!(e, PolicyError::HostRouteSubnet(..)), "{s}: {e}");
    }
}

#[test]
fn whitelist_outside_subnets_is_refused() {
    let e = Policy::new(
        InstanceId::default(),
        nets(&["10.77.1.0/24"]),
        ips(&["10.77.2.10"]),
        false,
    )
    .unwrap_err();
    assert!(matches!(e, PolicyError::WhitelistOutsideSubnets(..)));
    assert!(e.to_string().contains("10.77.2.10"));
    assert!(e.to_string().contains("10.77.1.0/24"));
}

#[test]
fn instance_ids_are_validated() {
    for bad in [
        "",
        "-x",
        "has space",
        "semi;colon",
        "ünïcode",
        &"x".repeat(33),
    ] {
        assert!(InstanceId::new(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["default", "a", "proxy_net-2", &"x".repeat(32)] {
        let id = InstanceId::new(good).unwrap();
        assert_eq!(InstanceId::from_table_name(&id.table_name()), Some(id));
    }
    assert_eq!(InstanceId::from_table_name("filter"), None);
}

fn port(name: &str, mac: [u8; 6], addrs: &[&str]) -> trafficjam_core::Port {
    trafficjam_core::Port {
        name: name.into(),
        role: trafficjam_core::Role::Backend,
        mac,
        addrs: ips(addrs),
    }
}

fn bare() -> Policy {
    Policy::new(InstanceId::default(), nets(&["10.0.0.0/24"]), [], false).unwrap()
}

#[test]
fn ports_claiming_the_same_address_or_mac_are_refused() {
    let e = bare()
        .with_ports([
            port("va", [2, 0, 0, 0, 0, 1], &["10.0.0.2"]),
            port("vb", [2, 0, 0, 0, 0, 2], &["10.0.0.2"]),
        ])
        .unwrap_err();
    assert!(matches!(e, PolicyError::SharedAddress(..)), "{e}");
    assert!(e.to_string().contains("10.0.0.2"), "{e}");
    let e = bare()
        .with_ports([
            port("va", [2, 0, 0, 0, 0, 1], &[]),
            port("vb", [2, 0, 0, 0, 0, 1], &[]),
        ])
        .unwrap_err();
    assert!(e.to_string().contains("02:00:00:00:00:01"), "{e}");
    let e = bare()
        .with_ports([
            port("va", [2, 0, 0, 0, 0, 1], &["fd00::2"]),
            port("vb", [2, 0, 0, 0, 0, 2], &["fd00::2"]),
        ])
        .unwrap_err();
    assert!(e.to_string().contains("fd00::2"), "{e}");
    // A MAC, an IPv4 and an IPv6 address of equal value are not one claim.
    bare()
        .with_ports([
            port("va", [0x02, 0, 0x0a, 0, 0, 1], &["10.0.0.1"]),
            port("vb", [2, 0, 0, 0, 0, 2], &["::a00:1", "::200:a00:1"]),
            port("vc", [2, 0, 0, 0, 0, 3], &["::2:a00:1"]),
        ])
        .expect("no address shared");
}

#[test]
fn bad_ports_are_refused() {
    let cases = [
        port("", [2, 0, 0, 0, 0, 1], &[]),
        port("a-name-that-is-too-long", [2, 0, 0, 0, 0, 1], &[]),
        port("va", [1, 0, 0, 0, 0, 1], &[]),
        port("va", [0; 6], &[]),
    ];
    for p in cases {
        assert!(bare().with_ports([p.clone()]).is_err(), "{p:?}");
    }
    let e = bare()
        .with_ports([
            port("va", [2, 0, 0, 0, 0, 1], &[]),
            port("va", [2, 0, 0, 0, 0, 2], &[]),
        ])
        .unwrap_err();
    assert!(matches!(e, PolicyError::DuplicatePort(..)), "{e}");
    assert!(bare().with_bridges(["br/0".to_string()]).is_err());
}

#[test]
fn proxy_ports_whitelist_their_addresses_in_the_subnets() {
    let mut proxy = port("vp", [2, 0, 0, 0, 0, 9], &["10.0.0.9", "192.0.2.9"]);
    proxy.role = trafficjam_core::Role::Proxy;
    let p = bare()
        .with_ports([proxy, port("vb", [2, 0, 0, 0, 0, 3], &["10.0.0.3"])])
        .unwrap();
    assert_eq!(p.whitelist(), ips(&["10.0.0.9"]));
    assert_eq!(p.ports()[0].name, "vb");
}
