//! Golden tests: the bytes trafficjam encodes equal, message by message,
//! what nft 1.0.6 sends for the same rule text (fixtures/*.hex, captured by
//! fixtures/capture.sh, each annotated with the nft command and nft's own
//! expression listing). Sequence numbers, port ids and the ACK flag are
//! masked (see support/golden.rs).

#[path = "support/golden.rs"]
mod support;

use ipnet::IpNet;
use support::{assert_messages_eq, batch, inner_messages};
use trafficjam_core::model::{Chain, Expr, Family, Rule, Set, SetKey, Table};
use trafficjam_core::wire::{encode, Batch};
use trafficjam_core::{InstanceId, Policy};

fn empty_table(comment: Option<&str>) -> Table {
    Table {
        family: Family::Inet,
        name: "t".into(),
        comment: comment.map(str::to_string),
        sets: vec![],
        chains: vec![],
    }
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// The chains trafficjam compiles, for their rules and base-chain specs.
fn compiled() -> Table {
    Policy::new(
        InstanceId::default(),
        nets(&["10.77.1.0/24", "fd77:1::/64"]),
        ["10.77.1.10".parse().unwrap()],
        false,
    )
    .unwrap()
    .ruleset()
    .tables
    .remove(0)
}

fn chain(name: &str) -> Chain {
    let mut c = compiled().chain(name).unwrap().clone();
    c.rules.clear();
    c
}

/// A compiled rule with its set names replaced by the fixture's.
fn rule(chain: &str, index: usize, sets: &[(&str, &str)]) -> Rule {
    let mut r = compiled().chain(chain).unwrap().rules[index].clone();
    for e in &mut r.exprs {
        if let Expr::Lookup { set, .. } = e {
            if let Some((_, to)) = sets.iter().find(|(from, _)| from == set) {
                *set = to.to_string();
            }
        }
    }
    r
}

fn ours(build: impl FnOnce(&mut Batch)) -> Vec<Vec<u8>> {
    let mut b = Batch::new(1);
    build(&mut b);
    inner_messages(b.finish().bytes())
}

fn check(fixture: &str, build: impl FnOnce(&mut Batch)) {
    assert_messages_eq(&ours(build), &batch(fixture), fixture);
}

#[test]
fn new_table() {
    check("table", |b| {
        encode::create_table_only(b, &empty_table(None))
    });
}

#[test]
fn table_with_comment() {
    check("table_comment", |b| {
        encode::create_table_only(b, &empty_table(Some("managed by trafficjam")))
    });
}

#[test]
fn delete_table() {
    check("delete_table", |b| {
        encode::delete_table(b, Family::Inet, "t")
    });
}

#[test]
fn base_chains() {
    let t = empty_table(None);
    check("base_chain_forward", |b| {
        encode::create_chain(b, &t, &chain("forward"))
    });
    check("base_chain_input", |b| {
        encode::create_chain(b, &t, &chain("input"))
    });
}

#[test]
fn sets() {
    let t = empty_table(None);
    for (fixture, name, key, interval) in [
        ("set_ipv4", "w4", SetKey::Ipv4, false),
        ("set_ipv6", "w6", SetKey::Ipv6, false),
        ("set_ipv4_interval", "s4", SetKey::Ipv4, true),
        ("set_ipv6_interval", "s6", SetKey::Ipv6, true),
    ] {
        let s = Set::new(name, key, interval, []);
        // nft numbers the sets of a transaction from 1.
        check(fixture, |b| encode::create_set(b, &t, &s, 1));
    }
}

#[test]
fn elements() {
    let t = empty_table(None);
    for (fixture, name, key, interval, elems) in [
        (
            "elements_ipv4",
            "w4",
            SetKey::Ipv4,
            false,
            &["10.0.0.1/32", "10.0.0.2/32"][..],
        ),
        (
            "elements_ipv6",
            "w6",
            SetKey::Ipv6,
            false,
            &["fd00::1/128"][..],
        ),
        (
            "elements_ipv4_interval",
            "s4",
            SetKey::Ipv4,
            true,
            &["10.77.1.0/24"][..],
        ),
        (
            "elements_ipv4_interval_two",
            "s4",
            SetKey::Ipv4,
            true,
            &["10.77.1.0/24", "192.168.0.0/16"][..],
        ),
        (
            "elements_ipv6_interval",
            "s6",
            SetKey::Ipv6,
            true,
            &["fd77:1::/64"][..],
        ),
    ] {
        let s = Set::new(name, key, interval, nets(elems));
        // nft refers to the set by name and by the id from its cache (1).
        check(fixture, |b| {
            encode::add_elements(b, &t, &s, &s.elements, Some(1))
        });
    }
    let s = Set::new(
        "w4",
        SetKey::Ipv4,
        false,
        nets(&["10.0.0.1/32", "10.0.0.2/32"]),
    );
    check("delete_elements_ipv4", |b| {
        encode::delete_elements(b, &t, &s, &nets(&["10.0.0.2/32"]))
    });
}

#[test]
fn rules() {
    // The sets the fixtures' setup created, in that order: nft refers to
    // them by name and by their position (the ids our encoder gives too).
    let mut t = empty_table(None);
    t.sets = vec![
        Set::new("w4", SetKey::Ipv4, false, []),
        Set::new("s4", SetKey::Ipv4, true, []),
    ];
    let mut t6 = empty_table(None);
    t6.sets = vec![Set::new("s6", SetKey::Ipv6, true, [])];
    let (fwd, input) = (chain("forward"), chain("input"));
    // compiled forward chain: 0 ct state, 1 icmpv6 nd, 2 ip whitelist->subnets,
    // 3 ip6 whitelist->subnets, 4 ip subnets->subnets drop, 5 ip6 drop.
    let mut t4 = empty_table(None);
    t4.sets = vec![Set::new("s4", SetKey::Ipv4, true, [])];
    let cases = [
        ("rule_ct_state", &t, &fwd, rule("forward", 0, &[])),
        ("rule_icmpv6_nd", &t, &fwd, rule("forward", 1, &[])),
        (
            "rule_ip_saddr_daddr_sets",
            &t,
            &fwd,
            rule("forward", 2, &[("whitelist4", "w4"), ("subnets4", "s4")]),
        ),
        (
            "rule_ip6_saddr_daddr_counter_drop",
            &t6,
            &fwd,
            rule("forward", 5, &[("subnets6", "s6")]),
        ),
        (
            "rule_ip_saddr_counter_drop",
            &t4,
            &input,
            rule("input", 2, &[("subnets4", "s4")]),
        ),
    ];
    for (fixture, table, c, r) in cases {
        check(fixture, |b| encode::add_rule(b, table, c, 0, &r));
    }
}

#[test]
fn whole_small_ruleset() {
    let mut t = empty_table(Some("managed by trafficjam"));
    t.sets = vec![
        Set::new("s4", SetKey::Ipv4, true, nets(&["10.77.1.0/24"])),
        Set::new("w4", SetKey::Ipv4, false, nets(&["10.77.1.10/32"])),
    ];
    let mut fwd = chain("forward");
    fwd.rules = vec![
        rule("forward", 0, &[]),
        rule("forward", 2, &[("whitelist4", "w4"), ("subnets4", "s4")]),
        rule("forward", 4, &[("subnets4", "s4")]),
    ];
    t.chains = vec![fwd];
    check("ruleset_small", |b| encode::create_table(b, &t));
}

/// The compiled bridge-layer chain (rules: 0 ND, 1/2 whitelist into the
/// subnets, 3 v4 SYN to the whitelist, 4 v4 echo request to it, 5 v4 to it,
/// 6-8 the same for v6, 9/10 subnet to subnet).
fn bridge_rule(index: usize) -> Rule {
    let t = &compiled_bridge();
    let mut r = t.chains[0].rules[index].clone();
    for e in &mut r.exprs {
        if let Expr::Lookup { set, .. } = e {
            *set = match set.as_str() {
                "whitelist4" => "w4".into(),
                "subnets4" => "s4".into(),
                other => other.to_string(),
            };
        }
    }
    r
}

fn compiled_bridge() -> Table {
    Policy::new(
        InstanceId::default(),
        nets(&["10.77.1.0/24"]),
        ["10.77.1.10".parse().unwrap()],
        false,
    )
    .unwrap()
    .ruleset()
    .tables
    .into_iter()
    .find(|t| t.family == Family::Bridge)
    .unwrap()
}

#[test]
fn bridge_layer_rules() {
    let mut t = empty_table(None);
    t.family = Family::Bridge;
    t.sets = vec![
        Set::new("w4", SetKey::Ipv4, false, []),
        Set::new("s4", SetKey::Ipv4, true, []),
    ];
    let mut c = compiled_bridge().chains[0].clone();
    c.rules.clear();
    for (fixture, index) in [
        ("bridge_rule_ip_saddr_daddr_sets", 1),
        ("bridge_rule_tcp_syn_drop", 3),
        ("bridge_rule_icmp_echo_drop", 4),
    ] {
        let r = bridge_rule(index);
        check(fixture, |b| encode::add_rule(b, &t, &c, 0, &r));
    }
}

#[test]
fn ifname_sets_and_anti_spoofing() {
    let mut t = empty_table(None);
    t.family = Family::Bridge;
    let p = Set::of_ifnames("p", []);
    check("set_ifname", |b| encode::create_set(b, &t, &p, 1));
    let p = Set::of_ifnames("p", ["vproxy".to_string(), "veth0123abc".to_string()]);
    check("elements_ifname", |b| {
        encode::add_elements(b, &t, &p, &[], Some(1))
    });
    // The anti-spoofing rule, with the fixture's set names.
    let compiled = Policy::new(
        InstanceId::default(),
        nets(&["10.77.1.0/24"]),
        ["10.77.1.10".parse().unwrap()],
        false,
    )
    .unwrap()
    .with_whitelist_ports(["vproxy".to_string()])
    .unwrap()
    .ruleset()
    .tables
    .into_iter()
    .find(|t| t.family == Family::Bridge)
    .unwrap();
    let mut r = compiled.chains[0].rules[1].clone();
    for e in &mut r.exprs {
        if let Expr::Lookup { set, .. } = e {
            *set = match set.as_str() {
                "whitelist4" => "w4".into(),
                "whitelist_ports" => "p".into(),
                other => other.to_string(),
            };
        }
    }
    t.sets = vec![
        Set::new("w4", SetKey::Ipv4, false, []),
        Set::of_ifnames("p", []),
    ];
    let mut c = compiled.chains[0].clone();
    c.rules.clear();
    check("bridge_rule_antispoof", |b| {
        encode::add_rule(b, &t, &c, 0, &r)
    });
}

#[test]
fn limit_and_log_to_nflog() {
    let mut t = empty_table(None);
    t.sets = vec![Set::new("s4", SetKey::Ipv4, true, [])];
    let mut r = rule("forward", 4, &[("subnets4", "s4")]);
    r.exprs
        .retain(|e| !matches!(e, Expr::Counter { .. } | Expr::Verdict(_)));
    r.exprs.push(Expr::Limit {
        rate: 10,
        unit: 1,
        burst: 5,
    });
    r.exprs.push(Expr::Log {
        group: 3417,
        prefix: "tj default: ".into(),
    });
    check("rule_log_blocked", |b| {
        encode::add_rule(b, &t, &chain("forward"), 0, &r)
    });
}

/// The shared tables of bridge isolation (trafficjam-cni) for bridge
/// `cni1`, isolated, with one container port.
fn isolation_tables() -> Vec<Table> {
    use trafficjam_core::isolation::{Bridge, BridgeIsolation, IngressPolicy};
    BridgeIsolation::new([Bridge {
        name: "cni1".into(),
        ingress: IngressPolicy::Isolated,
        allow_host_traffic: false,
        subnets: nets(&["10.88.1.0/24"]),
        whitelist: vec![],
        ports: vec!["veth1".into()],
        whitelist_ports: vec![],
    }])
    .unwrap()
    .ruleset()
    .tables
}

/// `rule` of a compiled chain with every set lookup renamed to `to`.
fn renamed(mut r: Rule, to: &str) -> Rule {
    for e in &mut r.exprs {
        if let Expr::Lookup { set, .. } = e {
            *set = to.to_string();
        }
    }
    r
}

#[test]
fn bridge_isolation_rules() {
    let tables = isolation_tables();
    let inet = &tables[0];
    let fwd = inet.chain("forward").unwrap();
    let input = inet.chain("input").unwrap();
    let mut c = fwd.clone();
    c.rules.clear();
    let mut ci = input.clone();
    ci.rules.clear();
    let t = empty_table(None);
    let mut tb = empty_table(None);
    tb.sets = vec![Set::of_ifnames("b", [])];
    // forward: 0 ct state, 1 same bridge, 2 ct status dnat, 3 cross-bridge.
    check("rule_same_bridge_drop", |b| {
        encode::add_rule(b, &t, &c, 0, &fwd.rules[1])
    });
    check("rule_ct_status_dnat", |b| {
        encode::add_rule(b, &t, &c, 0, &fwd.rules[2])
    });
    check("rule_cross_bridge_drop", |b| {
        encode::add_rule(b, &tb, &c, 0, &renamed(fwd.rules[3].clone(), "b"))
    });
    // input: 0 ct state, 1 ND, 2 from a no-host bridge.
    check("rule_iifname_set_drop", |b| {
        encode::add_rule(b, &tb, &ci, 0, &renamed(input.rules[2].clone(), "b"))
    });
    // bridge: 0 IPv4, 1 IPv6 between isolated ports.
    let bridge = &tables[1];
    assert_eq!(bridge.family, Family::Bridge);
    let mut cb = bridge.chains[0].clone();
    let r = renamed(cb.rules[1].clone(), "p");
    cb.rules.clear();
    let mut tp = empty_table(None);
    tp.family = Family::Bridge;
    tp.sets = vec![Set::of_ifnames("p", [])];
    check("bridge_rule_isolated_ports_drop", |b| {
        encode::add_rule(b, &tp, &cb, 0, &r)
    });
}
