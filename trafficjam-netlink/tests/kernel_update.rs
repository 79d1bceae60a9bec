//! A port update that takes a proxy away, against a real kernel with real
//! connections: the kernel ends up holding both tables as compiled whole,
//! and the connections the proxy opened are cut at once — as when the
//! whole ruleset is applied — while another proxy's stay. A daemon's
//! firewall puts off the cut of a proxy that left (nobody holds its
//! addresses) until a transaction gives an address back, or it asks.

use std::net::{IpAddr, TcpStream};

use trafficjam_core::model::{parse_mac, Expr, Family, Table};
use trafficjam_core::{InstanceId, Policy, Port, Role, Tracking};
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
    policy_without(bed, proxies, &[])
}

/// [`policy`] with the ports in `absent` gone (their containers left).
fn policy_without(bed: &Testbed, proxies: &[&str], absent: &[&str]) -> Policy {
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
    .with_ports(
        [
            port("vproxy", &bed.proxy, addr::PROXY4, addr::PROXY6),
            port("vb1", &bed.backend1, addr::B1_4, addr::B1_6),
            port("vb2", &bed.backend2, addr::B2_4, addr::B2_6),
        ]
        .into_iter()
        .filter(|p| !absent.contains(&p.name.as_str())),
    )
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
    // As a daemon's: the proxy's addresses stay with its port, so even
    // then they are cut at once.
    fw.defer_cuts();
    let both = policy(&bed, &["vproxy", "vb1"]).with_tracking(tracking);
    let one = policy(&bed, &["vb1"]).with_tracking(tracking);
    fw.apply(both.ruleset()).unwrap();
    // Both proxies open connections to backend2, in both families: the
    // kernel tracks them (the positive control of the cut).
    let _conns = [connect(&bed.proxy), connect(&bed.backend1)];
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
    assert_eq!(fw.pending_cuts(), 0);
}

/// Open a connection from `ns` to backend2 in each family.
fn connect(ns: &Netns) -> Vec<TcpStream> {
    [addr::B2_4, addr::B2_6]
        .into_iter()
        .map(|to| open_echo(ns, ip(to)))
        .collect()
}

#[test]
fn a_departed_proxy_is_cut_when_its_address_is_given_again_or_when_asked() {
    let bed = Testbed::build().expect("build the test bed");
    let _listeners = bed.listen().expect("listeners");
    let mut fw = Firewall::open_in(Some(&bed.host.path())).unwrap();
    let tracking = fw.bridge_tracking();
    assert_eq!(
        tracking,
        Tracking::FlowSets,
        "this test is for kernels without conntrack for bridged frames"
    );
    fw.defer_cuts();
    let mut sock = NetfilterSocket::open_in(Some(&bed.host.path())).unwrap();
    let proxy = [addr::PROXY4, addr::PROXY6];
    let b1 = [addr::B1_4, addr::B1_6];
    let at = |proxies: &[&str], absent: &[&str]| {
        policy_without(&bed, proxies, absent).with_tracking(tracking)
    };
    let mut last = at(&["vproxy", "vb1"], &[]);
    fw.apply(last.ruleset()).unwrap();
    let _first = [connect(&bed.proxy), connect(&bed.backend1)];
    assert_eq!(tracked(&mut sock, &proxy), 2, "the proxy's connections");
    assert_eq!(tracked(&mut sock, &b1), 2, "backend1's connections");
    // The next policy, sent as a port update.
    let update_to = |fw: &mut Firewall, last: &mut Policy, next: Policy| {
        let update = last.port_update(&next).expect("a port update");
        fw.update(&update).unwrap().expect("sent as an update");
        *last = next;
    };

    // The proxy's container leaves: nobody holds its addresses, the cut
    // waits and its entries are still there.
    let walks = fw.conntrack_walks();
    update_to(&mut fw, &mut last, at(&["vb1"], &["vproxy"]));
    assert_eq!(fw.pending_cuts(), 2, "the proxy's two addresses wait");
    assert_eq!(tracked(&mut sock, &proxy), 2, "cut although deferred");
    assert_eq!(fw.conntrack_walks(), walks, "walked although deferred");
    // Its port comes back (a whole apply): cut before the transaction.
    last = at(&["vproxy", "vb1"], &[]);
    fw.apply(last.ruleset()).unwrap();
    assert_eq!(
        tracked(&mut sock, &proxy),
        0,
        "the proxy's old connections outlived its address being given again"
    );
    assert_eq!(fw.pending_cuts(), 0);
    assert_eq!(tracked(&mut sock, &b1), 2, "backend1 lost its connections");

    // backend1 leaves, then a port gets its addresses back (an update).
    update_to(&mut fw, &mut last, at(&["vproxy"], &["vb1"]));
    assert_eq!(fw.pending_cuts(), 2);
    assert_eq!(tracked(&mut sock, &b1), 2, "cut although deferred");
    update_to(&mut fw, &mut last, at(&["vproxy"], &[]));
    assert_eq!(
        tracked(&mut sock, &b1),
        0,
        "backend1's old connections outlived its address being given again"
    );
    assert_eq!(fw.pending_cuts(), 0);

    // The proxy opens new connections and leaves; the daemon asks.
    let _second = connect(&bed.proxy);
    assert_eq!(tracked(&mut sock, &proxy), 2, "the proxy's new connections");
    update_to(&mut fw, &mut last, at(&[], &["vproxy"]));
    assert_eq!(tracked(&mut sock, &proxy), 2, "cut although deferred");
    assert_eq!(fw.cut_pending().unwrap(), 2);
    assert_eq!(tracked(&mut sock, &proxy), 0, "cut_pending left them");
    assert_eq!(fw.pending_cuts(), 0);
    // One walk each: given back by apply, by update, and when asked.
    assert_eq!(fw.conntrack_walks(), walks + 3);
}
