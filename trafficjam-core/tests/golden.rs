//! Golden tests: the bytes trafficjam encodes equal, message by message,
//! what nft 1.0.6 sends for the same rule text (fixtures/*.hex, captured by
//! fixtures/capture.sh, each annotated with the nft command and nft's own
//! expression listing). Sequence numbers, port ids and the ACK flag are
//! masked (see support/golden.rs).

#[path = "support/golden.rs"]
mod support;

use ipnet::IpNet;
use support::{assert_messages_eq, batch, inner_messages};
use trafficjam_core::model::{Chain, Element, Expr, Family, Rule, Set, SetKey, Table, Value};
use trafficjam_core::wire::{encode, Batch};
use trafficjam_core::{text, InstanceId, Policy, Port, Role, Tracking};

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

/// A compiled rule with its set names replaced by the fixture's, and
/// without its comment (the fixtures of single rules predate comments;
/// `whole_ruleset_with_ports` covers them).
fn rule(chain: &str, index: usize, sets: &[(&str, &str)]) -> Rule {
    let mut r = compiled().chain(chain).unwrap().rules[index].clone();
    r.comment = None;
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

/// Number `table`'s sets 1, 2… in this batch, as nft does from its cache
/// for sets an earlier command created (it sends their ids along).
fn known_sets(b: &mut Batch, table: &Table) {
    for s in &table.sets {
        b.new_set_id(table.family, &table.name, &s.name);
    }
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
        ("set_ipv4", "w4", SetKey::ipv4(), false),
        ("set_ipv6", "w6", SetKey::ipv6(), false),
        ("set_ipv4_interval", "s4", SetKey::ipv4(), true),
        ("set_ipv6_interval", "s6", SetKey::ipv6(), true),
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
            SetKey::ipv4(),
            false,
            &["10.0.0.1/32", "10.0.0.2/32"][..],
        ),
        (
            "elements_ipv6",
            "w6",
            SetKey::ipv6(),
            false,
            &["fd00::1/128"][..],
        ),
        (
            "elements_ipv4_interval",
            "s4",
            SetKey::ipv4(),
            true,
            &["10.77.1.0/24"][..],
        ),
        (
            "elements_ipv4_interval_two",
            "s4",
            SetKey::ipv4(),
            true,
            &["10.77.1.0/24", "192.168.0.0/16"][..],
        ),
        (
            "elements_ipv6_interval",
            "s6",
            SetKey::ipv6(),
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
        SetKey::ipv4(),
        false,
        nets(&["10.0.0.1/32", "10.0.0.2/32"]),
    );
    check("delete_elements_ipv4", |b| {
        encode::delete_elements(
            b,
            &t,
            &s,
            &[Element::one(Value::Net("10.0.0.2/32".parse().unwrap()))],
        )
    });
}

#[test]
fn rules() {
    // The sets the fixtures' setup created, in that order: nft refers to
    // them by name and by their position (the ids our encoder gives too).
    let mut t = empty_table(None);
    t.sets = vec![
        Set::new("w4", SetKey::ipv4(), false, []),
        Set::new("s4", SetKey::ipv4(), true, []),
    ];
    let mut t6 = empty_table(None);
    t6.sets = vec![Set::new("s6", SetKey::ipv6(), true, [])];
    let (fwd, input) = (chain("forward"), chain("input"));
    // compiled forward chain: 0/1 ICMP errors from containers, 2 ct state,
    // 3 icmpv6 nd, 4 ip whitelist->subnets, 5 ip6 whitelist->subnets,
    // 6-11 the allowed exceptions, 12 ip subnets->subnets drop, 13 ip6
    // drop; input (no bridge known): 0/1 ICMP errors, 2 ct state, 3 nd,
    // 4 open host services, 5 ip subnets drop.
    let mut t4 = empty_table(None);
    t4.sets = vec![Set::new("s4", SetKey::ipv4(), true, [])];
    let cases = [
        ("rule_ct_state", &t, &fwd, rule("forward", 2, &[])),
        ("rule_icmpv6_nd", &t, &fwd, rule("forward", 3, &[])),
        (
            "rule_ip_saddr_daddr_sets",
            &t,
            &fwd,
            rule("forward", 4, &[("whitelist4", "w4"), ("subnets4", "s4")]),
        ),
        (
            "rule_ip6_saddr_daddr_counter_drop",
            &t6,
            &fwd,
            rule("forward", 13, &[("subnets6", "s6")]),
        ),
        (
            "rule_ip_saddr_counter_drop",
            &t4,
            &input,
            rule("input", 5, &[("subnets4", "s4")]),
        ),
    ];
    for (fixture, table, c, r) in cases {
        check(fixture, |b| {
            known_sets(b, table);
            encode::add_rule(b, table, c, 0, &r)
        });
    }
}

#[test]
fn whole_small_ruleset() {
    let mut t = empty_table(Some("managed by trafficjam"));
    t.sets = vec![
        Set::new("s4", SetKey::ipv4(), true, nets(&["10.77.1.0/24"])),
        Set::new("w4", SetKey::ipv4(), false, nets(&["10.77.1.10/32"])),
    ];
    let mut fwd = chain("forward");
    fwd.rules = vec![
        rule("forward", 2, &[]),
        rule("forward", 4, &[("whitelist4", "w4"), ("subnets4", "s4")]),
        rule("forward", 12, &[("subnets4", "s4")]),
    ];
    t.chains = vec![fwd];
    check("ruleset_small", |b| encode::create_table(b, &t));
}

/// The policy of the whole-ruleset fixtures: a bridge with a proxy and two
/// backends, dual-stack, an allowed flow between the backends and open
/// services (what `examples/policy_batch.rs` builds).
fn ports_policy(tracking: Tracking) -> Policy {
    let port = |name: &str, role, last: u8| Port {
        name: name.into(),
        role,
        mac: [0x02, 0x42, 0xac, 0x17, 0x00, last],
        addrs: vec![
            format!("172.23.0.{last}").parse().unwrap(),
            format!("fd00:23::{last}").parse().unwrap(),
        ],
    };
    Policy::new(
        InstanceId::new("example").unwrap(),
        nets(&["172.23.0.0/16", "fd00:23::/64"]),
        [],
        false,
    )
    .unwrap()
    .with_bridges(["br-example".to_string()])
    .unwrap()
    .with_ports([
        port("veth-proxy", Role::Proxy, 2),
        port("veth-app", Role::Backend, 3),
        port("veth-db", Role::Backend, 4),
    ])
    .unwrap()
    .with_allowed([trafficjam_core::Allowed {
        from: "veth-app".into(),
        to: "veth-db".into(),
        services: vec!["5432/tcp".parse().unwrap()],
    }])
    .unwrap()
    .with_proxy_services(["8443/tcp".parse().unwrap()])
    .with_host_services(["53/udp".parse().unwrap()])
    .with_tracking(tracking)
}

fn fixture_text(name: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The whole ruleset, port layer included: its text is the fixture's nft
/// input, and the bytes are what nft sends for that text (every set kind:
/// interval, ifname, concatenations, dynamic; every rule; comments).
#[test]
fn whole_ruleset_with_ports() {
    let tables = ports_policy(Tracking::FlowSets).ruleset().tables;
    let text: String = tables.iter().map(text::table).collect();
    assert_rendering("ruleset_ports.nft", &text);
    check("ruleset_ports", |b| {
        for t in &tables {
            encode::create_table(b, t);
        }
    });
}

/// The bridge table where the kernel has conntrack for bridged frames.
#[test]
fn bridge_table_with_conntrack() {
    let tables = ports_policy(Tracking::Conntrack).ruleset().tables;
    let bridge: Vec<&Table> = tables
        .iter()
        .filter(|t| t.family == Family::Bridge)
        .collect();
    let text: String = bridge.iter().map(|t| text::table(t)).collect();
    assert_rendering("ruleset_ports_conntrack.nft", &text);
    assert!(
        text.contains("ct state established,related accept"),
        "{text}"
    );
    assert!(!text.contains("update @"), "{text}");
    check("ruleset_ports_conntrack", |b| {
        for t in bridge {
            encode::create_table(b, t);
        }
    });
}

#[test]
fn ifname_sets() {
    let mut t = empty_table(None);
    t.family = Family::Bridge;
    let p = Set::of_ifnames("p", []);
    check("set_ifname", |b| encode::create_set(b, &t, &p, 1));
    let p = Set::of_ifnames("p", ["vproxy".to_string(), "veth0123abc".to_string()]);
    check("elements_ifname", |b| {
        encode::add_elements(b, &t, &p, &p.elements, Some(1))
    });
}

#[test]
fn limit_and_log_to_nflog() {
    let mut t = empty_table(None);
    t.sets = vec![Set::new("s4", SetKey::ipv4(), true, [])];
    let mut r = rule("forward", 12, &[("subnets4", "s4")]);
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
        known_sets(b, &t);
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
        ports: vec![Port {
            name: "veth1".into(),
            role: Role::Backend,
            mac: [2, 0, 0, 0, 0, 1],
            addrs: vec!["10.88.1.5".parse().unwrap()],
        }],
        exceptions: Default::default(),
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

/// A rule without its comment, for fixtures captured without one.
fn bare(mut r: Rule) -> Rule {
    r.comment = None;
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
        encode::add_rule(b, &t, &c, 0, &bare(fwd.rules[1].clone()))
    });
    check("rule_ct_status_dnat", |b| {
        encode::add_rule(b, &t, &c, 0, &fwd.rules[2])
    });
    check("rule_cross_bridge_drop", |b| {
        known_sets(b, &tb);
        encode::add_rule(b, &tb, &c, 0, &bare(renamed(fwd.rules[3].clone(), "b")))
    });
    // input: 0 ct state, 1 ND, 2 open host services, 3 from a no-host
    // bridge.
    check("rule_iifname_set_drop", |b| {
        known_sets(b, &tb);
        encode::add_rule(b, &tb, &ci, 0, &bare(renamed(input.rules[3].clone(), "b")))
    });
    // bridge: forward, 0 anything between isolated ports.
    let bridge = &tables[1];
    assert_eq!(bridge.family, Family::Bridge);
    let mut cb = bridge.chain("forward").unwrap().clone();
    let r = renamed(cb.rules[0].clone(), "p");
    cb.rules.clear();
    let mut tp = empty_table(None);
    tp.family = Family::Bridge;
    tp.sets = vec![Set::of_ifnames("p", [])];
    check("bridge_rule_isolated_ports_drop", |b| {
        known_sets(b, &tp);
        encode::add_rule(b, &tp, &cb, 0, &r)
    });
}

/// Compare a rendering with its fixture; `TRAFFICJAM_BLESS=1` writes the
/// fixture instead (then run fixtures/capture.sh for the bytes).
fn assert_rendering(name: &str, text: &str) {
    if std::env::var_os("TRAFFICJAM_BLESS").is_some() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::write(path, text).unwrap();
        return;
    }
    assert_eq!(
        text,
        fixture_text(name),
        "the rendering changed: update fixtures/{name} (TRAFFICJAM_BLESS=1) and run fixtures/capture.sh"
    );
}

/// A Swarm overlay's namespace: a backend and a load-balancer endpoint
/// (whitelisted) on `br0`, the VXLAN device as the remote port, no IP
/// forward chain.
#[test]
fn overlay_ruleset() {
    let port = |name: &str, role, last: u8| Port {
        name: name.into(),
        role,
        mac: [0x02, 0x42, 0x0a, 0x00, 0x01, last],
        addrs: vec![format!("10.0.1.{last}").parse().unwrap()],
    };
    let policy = Policy::new(
        InstanceId::new("overlay").unwrap(),
        nets(&["10.0.1.0/24"]),
        ["10.0.1.4".parse().unwrap()],
        false,
    )
    .unwrap()
    .with_bridges(["br0".to_string()])
    .unwrap()
    .with_ports([
        port("veth0", Role::Backend, 3),
        port("veth1", Role::Proxy, 4),
    ])
    .unwrap()
    .with_remote_ports(["vxlan0".to_string()])
    .unwrap()
    .without_ip_forward();
    let tables = policy.ruleset().tables;
    let text: String = tables.iter().map(text::table).collect();
    let inet = text::table(&tables[0]);
    assert!(!inet.contains("hook forward"), "{inet}");
    assert!(
        text.contains(r#"elements = { "veth1", "vxlan0" }"#),
        "the remote port is among the openers: {text}"
    );
    assert_rendering("ruleset_overlay.nft", &text);
    check("ruleset_overlay", |b| {
        for t in &tables {
            encode::create_table(b, t);
        }
    });
}

/// A Swarm node's `docker_gwbridge`: its containers reach neither each
/// other nor the host, and send nothing to the VXLAN port, anywhere.
#[test]
fn gwbridge_ruleset() {
    let policy = Policy::new(
        InstanceId::new("gwbridge").unwrap(),
        nets(&["172.18.0.0/16"]),
        [],
        false,
    )
    .unwrap()
    .with_bridges(["docker_gwbridge".to_string()])
    .unwrap()
    .with_blocked_outbound(["4789/udp".parse().unwrap()]);
    let tables = policy.ruleset().tables;
    let text: String = tables.iter().map(text::table).collect();
    assert_eq!(
        text.matches("@blocked_outbound counter packets 0 bytes 0 drop")
            .count(),
        2,
        "in forward and input: {text}"
    );
    assert_rendering("ruleset_gwbridge.nft", &text);
    check("ruleset_gwbridge", |b| {
        for t in &tables {
            encode::create_table(b, t);
        }
    });
}

/// The routing-mesh block of a node's `ingress_sbox`.
#[test]
fn ingress_ruleset() {
    let table = trafficjam_core::ingress_table(
        &InstanceId::new("ingress").unwrap(),
        &["8080/tcp".parse().unwrap(), "5353/udp".parse().unwrap()],
    );
    let text = text::table(&table);
    assert_rendering("ruleset_ingress.nft", &text);
    check("ruleset_ingress", |b| encode::create_table(b, &table));
}
