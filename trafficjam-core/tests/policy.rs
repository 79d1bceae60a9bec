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
