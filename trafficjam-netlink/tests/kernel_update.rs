//! A port update that takes a proxy away, against a real kernel with real
//! connections: the kernel ends up holding both tables as compiled whole,
//! and the connections the proxy opened are cut at once — as when the
//! whole ruleset is applied — while another proxy's stay.

use std::net::{IpAddr, TcpStream};

use trafficjam_core::model::{parse_mac, Expr, Family, Table};
use trafficjam_core::{InstanceId, Policy, Port, Role};
use trafficjam_netlink::{cut_connections, read_table, Firewall, NetfilterSocket};
use trafficjam_testbed::probe::open_echo;
use trafficjam_testbed::{addr, ip, Netns, Testbed};

/// The MAC of `eth0` in `ns`.
fn mac(ns: &Netns) -> [u8; 6] {
    let out = ns.exec("cat", &["/sys/class/net/eth0/address"]).unwrap();
    parse_mac(String::from_utf8_lossy(&out.stdout).trim()).expect("a MAC")
}

/// The managed bridge of the bed with its three containers; those in
/// `proxies` whitelisted.
fn policy(bed: &Testbed, proxies: &[&str]) -> Policy {
    let port = |name: &str, ns: &Netns, v4: &str, v6: &str| Port {
        name: name.to_string(),
        role: if proxies.contains(&name) {
            Role::Proxy
        } else {
            Role::Backend
        },
        mac: mac(ns),
        addrs: vec![ip(v4), ip(v6)],
    };
    Policy::new(
        InstanceId::new("upd").unwrap(),
        [
            addr::MANAGED4.parse().unwrap(),
            addr::MANAGED6.parse().unwrap(),
        ],
        [],
        false,
    )
    .unwrap()
    .with_bridges(["br-m".to_string()])
    .unwrap()
    .with_ports([
        port("vproxy", &bed.proxy, addr::PROXY4, addr::PROXY6),
        port("vb1", &bed.backend1, addr::B1_4, addr::B1_6),
        port("vb2", &bed.backend2, addr::B2_4, addr::B2_6),
    ])
    .unwrap()
}

/// `table` with every counter at zero, as compiled.
fn without_counts(mut table: Table) -> Table {
    for rule in table.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
        for e in &mut rule.exprs {
            if let Expr::Counter { packets, bytes } = e {
                (*packets, *bytes) = (0, 0);
            }
        }
    }
    table
}

/// How many tracked connections `from` opened to backend2.
fn tracked(sock: &mut NetfilterSocket, from: &[&str]) -> usize {
    let from: Vec<IpAddr> = from.iter().map(|a| ip(a)).collect();
    let to = [ip(addr::B2_4), ip(addr::B2_6)];
    let n = std::cell::Cell::new(0);
    // Nothing is cut: every entry is only counted.
    cut_connections(sock, |c| {
        if from.contains(&c.source) && to.contains(&c.destination) {
            n.set(n.get() + 1);
        }
        false
    })
    .unwrap();
    n.get()
}

#[test]
fn a_proxy_leaving_by_update_loses_its_connections() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    let mut fw = Firewall::open_in(Some(&bed.host.path())).unwrap();
    let tracking = fw.bridge_tracking();
    let both = policy(&bed, &["vproxy", "vb1"]).with_tracking(tracking);
    let one = policy(&bed, &["vb1"]).with_tracking(tracking);
    fw.apply(both.ruleset()).unwrap();
    // Both proxies open connections to backend2, in both families: the
    // kernel tracks them (the positive control of the cut).
    let _conns: Vec<TcpStream> = [
        (&bed.proxy, addr::B2_4),
        (&bed.proxy, addr::B2_6),
        (&bed.backend1, addr::B2_4),
        (&bed.backend1, addr::B2_6),
    ]
    .into_iter()
    .map(|(ns, to)| open_echo(ns, ip(to)))
    .collect();
    let mut sock = NetfilterSocket::open_in(Some(&bed.host.path())).unwrap();
    let proxy = [addr::PROXY4, addr::PROXY6];
    let b1 = [addr::B1_4, addr::B1_6];
    assert_eq!(tracked(&mut sock, &proxy), 2, "the proxy's connections");
    assert_eq!(tracked(&mut sock, &b1), 2, "backend1's connections");
    // The proxy becomes a backend: sent as elements, its whitelisted
    // addresses among them.
    let update = both.port_update(&one).expect("a port update");
    let mut revoked = update.revoked();
    revoked.sort();
    assert_eq!(revoked, [ip(addr::PROXY4), ip(addr::PROXY6)]);
    let reads = fw.reads();
    let changes = fw.update(&update).unwrap().expect("sent as an update");
    assert_eq!(fw.reads(), reads, "an update read the kernel");
    let families: Vec<Family> = changes.iter().map(|(t, _)| t.family).collect();
    assert_eq!(families, [Family::Inet, Family::Bridge]);
    // The kernel holds what compiling the new policy whole gives (but
    // for its counters: the namespaces' own chatter, router and neighbour
    // solicitations, is counted as it is dropped).
    for want in one.ruleset().tables {
        let have = read_table(&mut sock, want.family, &want.name)
            .unwrap()
            .map(without_counts);
        assert_eq!(have.as_ref(), Some(&want), "{:?} table", want.family);
    }
    // Its connections are gone at once; the other proxy's stay.
    assert_eq!(tracked(&mut sock, &proxy), 0, "the proxy kept connections");
    assert_eq!(tracked(&mut sock, &b1), 2, "backend1 lost its connections");
}
