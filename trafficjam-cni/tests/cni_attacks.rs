//! A compromised container (CAP_NET_RAW) attacking its neighbours on a
//! bridge set up by the real CNI chain (Debian's `bridge`, `host-local`
//! and `portmap`, then `trafficjam`), for `ingressPolicy` `isolated` and
//! `proxy-only`, dual-stack.
//!
//! Three containers on one bridge: the one whose identity is stolen and
//! who is attacked directly (proxy-only: the whitelisted proxy; isolated:
//! `c1`), the attacker (a backend / `c2`) and the victim (the other
//! backend / `c3`). Every attack runs twice on a fresh bed: first with the
//! same network list *without* the trafficjam plugin (the positive
//! control: the attack must work there, else "blocked" proves nothing),
//! then with it (the attack must not work). Each is read on the receiving
//! side: the victim's listener, a capture on its interface, its neighbour
//! table or routes, the host bridge's forwarding database, a SYN-ACK the
//! target sent. The legitimate flows are then checked on the protected bed.
//!
//! The plugin is the binary cargo builds for this test; set
//! `TRAFFICJAM_CNI_PLUGIN` to run another build (e.g. the static musl
//! release binary).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use trafficjam_testbed::attack::{self, ethertype, proto, ArpOp, Mac, PrefixInfo};
use trafficjam_testbed::capture::Capture;
use trafficjam_testbed::cni::{result_addrs, Runtime};
use trafficjam_testbed::frame::mac_of;
use trafficjam_testbed::listener::{TCP_PORT, UDP_PORT};
use trafficjam_testbed::matrix::{self, Flow};
use trafficjam_testbed::observe::{self, format_mac};
use trafficjam_testbed::{require_root, Listener, Netns, Proto};

const PLUGIN: &str = env!("CARGO_BIN_EXE_trafficjam-cni");

/// How long the control may take to show an effect (it returns as soon as
/// it does).
const CONTROL_WAIT: Duration = Duration::from_secs(3);
/// How long the protected bed is watched for an effect.
const PROTECTED_WAIT: Duration = Duration::from_millis(600);
/// A preparation step (never the thing under test).
const PREPARE: Duration = Duration::from_secs(2);
/// Probes of the legitimate flows.
const PROBE: Duration = Duration::from_millis(700);

/// A machine outside, routed through the runtime's host.
const OUTSIDE4: &str = "203.0.113.2";
const OUTSIDE6: &str = "2001:db8:113::2";
const UPLINK4: &str = "203.0.113.1";
const UPLINK6: &str = "2001:db8:113::1";

/// A UDP port nobody listens on.
const DISCARD: u16 = 9;

fn plugin() -> PathBuf {
    let p = std::env::var_os("TRAFFICJAM_CNI_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PLUGIN));
    assert!(
        p.is_file(),
        "the trafficjam CNI plugin {} does not exist",
        p.display()
    );
    p
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Isolated,
    ProxyOnly,
}

impl Mode {
    fn policy(self) -> &'static str {
        match self {
            Mode::Isolated => "isolated",
            Mode::ProxyOnly => "proxy-only",
        }
    }

    /// The containers: the one whose identity is stolen (and who is
    /// attacked directly), the attacker, the victim.
    fn labels(self) -> [&'static str; 3] {
        match self {
            Mode::Isolated => ["c1", "c2", "c3"],
            Mode::ProxyOnly => ["proxy", "backend1", "backend2"],
        }
    }

    /// The bed's number: its subnets and bridge name.
    fn number(self, protected: bool, br_netfilter: bool) -> u8 {
        let n = match (self, protected) {
            (Mode::Isolated, false) => 1,
            (Mode::Isolated, true) => 2,
            (Mode::ProxyOnly, false) => 3,
            (Mode::ProxyOnly, true) => 4,
        };
        if br_netfilter {
            n
        } else {
            n + 4
        }
    }
}

/// One container of the bed.
struct Member {
    label: &'static str,
    listener: Listener,
    ns: Netns,
    mac: Mac,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    /// The host side of its veth (its bridge port).
    port: String,
}

impl Member {
    /// The link-local address its port is bound to (modified EUI-64).
    fn ll(&self) -> Ipv6Addr {
        attack::eui64_link_local(self.mac)
    }
}

/// A runtime host with one bridge, three containers and a machine
/// outside; everything goes with the namespaces on drop (also on panic).
struct Bed {
    mode: Mode,
    protected: bool,
    br_netfilter: bool,
    members: Vec<Member>,
    _outside_listener: Listener,
    _outside: Netns,
    rt: Runtime,
    bridge: String,
    gw4: Ipv4Addr,
    gw6: Ipv6Addr,
    gw_mac: Mac,
    wait: Duration,
}

/// The network list: the chain of cni_chain.rs, ending with trafficjam
/// only when `protected`.
fn network(rt: &Runtime, mode: Mode, protected: bool, n: u8) -> Value {
    let mut plugins = vec![
        json!({
            "type": "bridge",
            "bridge": format!("tjatk{n}"),
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": rt.scratch("ipam").to_str().unwrap(),
                "ranges": [
                    [{"subnet": format!("10.93.{n}.0/24")}],
                    [{"subnet": format!("fd93:{n}::/64")}]
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
            }
        }),
        json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
    ];
    if protected {
        plugins.push(json!({
            "type": "trafficjam",
            "ingressPolicy": mode.policy(),
            "allowHostTraffic": false,
            "dataDir": rt.scratch("trafficjam").to_str().unwrap(),
        }));
    }
    json!({
        "cniVersion": "1.0.0",
        "name": format!("tjatk{n}"),
        "plugins": plugins,
    })
}

/// The host-side interface of the attachment (not the bridge).
fn host_port(result: &Value, bridge: &str) -> String {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["sandbox"].as_str().unwrap_or("").is_empty())
        .filter_map(|i| i["name"].as_str())
        .find(|n| *n != bridge)
        .unwrap_or_else(|| panic!("no host-side veth in the result: {result}"))
        .to_string()
}

impl Bed {
    /// `br_netfilter`: whether bridged traffic is passed to the IP layer
    /// (`net.bridge.bridge-nf-call-ip{,6}tables` in the runtime's host).
    fn new(mode: Mode, protected: bool, br_netfilter: bool) -> Bed {
        require_root();
        let n = mode.number(protected, br_netfilter);
        let prefix = format!("tjatk{n}");
        let rt = Runtime::new(&prefix, &plugin()).expect("a CNI runtime");
        let call = if br_netfilter { "1" } else { "0" };
        rt.host
            .sysctls(&[
                ("net.bridge.bridge-nf-call-iptables", call),
                ("net.bridge.bridge-nf-call-ip6tables", call),
            ])
            .unwrap();
        let net = network(&rt, mode, protected, n);
        let bridge = format!("tjatk{n}");
        let mut members = Vec::new();
        for (i, label) in mode.labels().into_iter().enumerate() {
            let ns = Netns::new(&format!("{prefix}{label}")).unwrap();
            let whitelisted = mode == Mode::ProxyOnly && i == 0;
            let args = if whitelisted {
                "IgnoreUnknown=1;TRAFFICJAM_WHITELIST=true"
            } else {
                "IgnoreUnknown=1"
            };
            let result = rt
                .add(&net, &format!("{prefix}-{label}"), &ns, args, &json!({}))
                .unwrap_or_else(|e| panic!("ADD {label}: {e}"));
            let addrs = result_addrs(&result);
            let v4 = addrs
                .iter()
                .find_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no IPv4 address for {label}: {result}"));
            let v6 = addrs
                .iter()
                .find_map(|a| match a {
                    IpAddr::V6(a) => Some(*a),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no IPv6 address for {label}: {result}"));
            let listener = Listener::start(&ns).unwrap();
            members.push(Member {
                label,
                listener,
                mac: mac_of(&ns, "eth0").unwrap(),
                ns,
                v4,
                v6,
                port: host_port(&result, &bridge),
            });
        }
        // The outside, behind a veth of the host.
        let outside = Netns::new(&format!("{prefix}out")).unwrap();
        rt.host
            .ip_batch(&[
                format!(
                    "link add tjup0 type veth peer name eth0 netns {}",
                    outside.name()
                ),
                format!("addr add {UPLINK4}/24 dev tjup0"),
                format!("addr add {UPLINK6}/64 dev tjup0 nodad"),
                "link set tjup0 up".to_string(),
            ])
            .unwrap();
        outside
            .ip_batch(&[
                format!("addr add {OUTSIDE4}/24 dev eth0"),
                format!("addr add {OUTSIDE6}/64 dev eth0 nodad"),
                "link set eth0 up".to_string(),
                format!("route add 10.93.0.0/16 via {UPLINK4}"),
                format!("route add fd93::/16 via {UPLINK6}"),
            ])
            .unwrap();
        let outside_listener = Listener::start(&outside).unwrap();
        let tables =
            String::from_utf8_lossy(&rt.host.exec("nft", &["list", "tables"]).unwrap().stdout)
                .into_owned();
        assert_eq!(
            tables.contains("trafficjam-cni"),
            protected,
            "trafficjam tables in the runtime host (protected: {protected}):\n{tables}"
        );
        Bed {
            mode,
            protected,
            br_netfilter,
            gw4: format!("10.93.{n}.1").parse().unwrap(),
            gw6: format!("fd93:{n}::1").parse().unwrap(),
            gw_mac: mac_of(&rt.host, &bridge).unwrap(),
            members,
            _outside_listener: outside_listener,
            _outside: outside,
            rt,
            bridge,
            wait: if protected {
                PROTECTED_WAIT
            } else {
                CONTROL_WAIT
            },
        }
    }

    /// The container whose identity is stolen (proxy-only: the proxy).
    fn other(&self) -> &Member {
        &self.members[0]
    }

    fn attacker(&self) -> &Member {
        &self.members[1]
    }

    fn victim(&self) -> &Member {
        &self.members[2]
    }

    fn member(&self, label: &str) -> &Member {
        self.members.iter().find(|m| m.label == label).unwrap()
    }

    /// Send `frames` from the attacker's eth0.
    fn attack(&self, frames: &[Vec<u8>]) {
        attack::send(&self.attacker().ns, "eth0", frames).expect("send forged frames");
    }

    /// Poll `f` for up to the bed's wait; how long it took to hold.
    fn until(&self, f: impl FnMut() -> bool) -> Option<Duration> {
        trafficjam_testbed::scenario::poll_until(self.wait, f)
    }

    /// The flows that must keep working (and the host, which
    /// `allowHostTraffic: false` keeps out, as in cni_chain.rs).
    fn legitimate_flows(&self) -> Vec<Flow> {
        let mut out = Vec::new();
        let mut flow = |label: String, from: &'static str, to: IpAddr, allowed: bool| {
            for proto in [Proto::Tcp, Proto::Udp] {
                out.push(Flow {
                    label: label.clone(),
                    from,
                    to,
                    proto,
                    allowed,
                });
            }
        };
        if self.mode == Mode::ProxyOnly {
            let proxy = self.other().label;
            for b in [self.attacker(), self.victim()] {
                for to in [IpAddr::V4(b.v4), IpAddr::V6(b.v6)] {
                    flow(format!("{proxy} -> {}", b.label), proxy, to, true);
                }
            }
        }
        for m in &self.members {
            for to in [OUTSIDE4, OUTSIDE6] {
                flow(
                    format!("{} -> outside", m.label),
                    m.label,
                    to.parse().unwrap(),
                    true,
                );
            }
        }
        let a = self.attacker().label;
        for to in [IpAddr::V4(self.gw4), IpAddr::V6(self.gw6)] {
            flow(format!("{a} -> host (gateway)"), a, to, false);
        }
        out
    }

    /// The non-zero counters of the runtime host's trafficjam tables.
    fn counters(&self) -> String {
        let out = self.rt.host.exec("nft", &["list", "ruleset"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut table = String::new();
        let mut lines = Vec::new();
        for l in text.lines() {
            let t = l.trim();
            if t.starts_with("table ") {
                table = t.trim_end_matches(" {").to_string();
            }
            if table.contains("trafficjam")
                && t.contains("counter packets")
                && !t.contains("counter packets 0 ")
            {
                lines.push(format!("  {table}: {t}"));
            }
        }
        lines.join("\n")
    }
}

/// What the receiving side saw.
struct Obs {
    /// When the effect showed, if it did.
    after: Option<Duration>,
    evidence: String,
}

impl Obs {
    fn hit(&self) -> bool {
        self.after.is_some()
    }
}

type Run = Box<dyn Fn(&Bed) -> Obs>;

struct Attack {
    name: String,
    run: Run,
}

/// A UDP datagram to the listeners' port, from a fresh source port.
fn udp(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    attack::udp_to(
        src_mac,
        dst_mac,
        src,
        dst,
        attack::fresh_port(),
        UDP_PORT,
        payload,
    )
}

fn attack_of(name: String, run: impl Fn(&Bed) -> Obs + 'static) -> Attack {
    Attack {
        name,
        run: Box::new(run),
    }
}

// ---------------------------------------------------------------------------
// Observations

/// Datagrams from `src` at `to`'s listener (UDP 8081): one more than
/// before means the attack worked.
fn datagram_arrives(b: &Bed, to: &Member, src: IpAddr, frames: &[Vec<u8>]) -> Obs {
    let before = to.listener.arrivals().count_from(src);
    b.attack(frames);
    let after = b.until(|| to.listener.arrivals().count_from(src) > before);
    let got = to.listener.arrivals();
    Obs {
        after,
        evidence: format!(
            "{}'s listener: {} datagram(s) from {src} (all UDP sources {:?})",
            to.label,
            got.count_from(src) - before,
            got.udp
        ),
    }
}

/// A frame with `marker` received on `to`'s eth0.
fn frame_arrives(b: &Bed, to: &Member, frames: &[Vec<u8>], marker: &[u8]) -> Obs {
    let cap = Capture::start(&to.ns, "eth0").expect("capture");
    b.attack(frames);
    let after = b.until(|| cap.contains(marker));
    let got = cap.incoming_with(marker);
    Obs {
        after,
        evidence: format!(
            "capture on {}:eth0: {} frame(s) with {:?}{} ({} frames received in all)",
            to.label,
            got.len(),
            String::from_utf8_lossy(marker),
            got.first()
                .map(|f| format!(
                    ", outer tag {:?}",
                    f.vlan.map(|t| (format!("{:#06x}", t.tpid), t.vid()))
                ))
                .unwrap_or_default(),
            cap.incoming().len()
        ),
    }
}

/// A frame with `marker` on `to`'s eth0, or a datagram from `src` at its
/// listener: either is the attack getting through.
fn frame_or_datagram(b: &Bed, to: &Member, src: IpAddr, frames: &[Vec<u8>], marker: &[u8]) -> Obs {
    let cap = Capture::start(&to.ns, "eth0").expect("capture");
    let before = to.listener.arrivals().count_from(src);
    b.attack(frames);
    let after = b.until(|| cap.contains(marker) || to.listener.arrivals().count_from(src) > before);
    Obs {
        after,
        evidence: format!(
            "capture on {}:eth0: {} frame(s) with {:?}; listener: {} datagram(s) from {src}",
            to.label,
            cap.incoming_with(marker).len(),
            String::from_utf8_lossy(marker),
            to.listener.arrivals().count_from(src) - before
        ),
    }
}

/// `victim` already knows `target` at `real` (an entry as a past
/// exchange leaves it: STALE); the attack worked if the entry moves to
/// the attacker's MAC.
fn poisoned(b: &Bed, victim: &Member, target: IpAddr, real: Mac, frames: &[Vec<u8>]) -> Obs {
    victim
        .ns
        .ip(&[
            "neigh",
            "replace",
            &target.to_string(),
            "lladdr",
            &format_mac(real),
            "dev",
            "eth0",
            "nud",
            "stale",
        ])
        .unwrap();
    let entry = || {
        observe::neighbours(&victim.ns, "eth0")
            .ok()
            .and_then(|n| n.into_iter().find(|n| n.ip == target))
    };
    let show = |n: Option<observe::Neighbour>| {
        n.map_or("none".into(), |n| {
            format!("{} {:?}", n.mac.map_or("-".into(), format_mac), n.state)
        })
    };
    let before = entry();
    assert_eq!(
        before.as_ref().and_then(|n| n.mac),
        Some(real),
        "preparation: {}'s entry for {target}",
        victim.label
    );
    let evil = b.attacker().mac;
    b.attack(frames);
    let after = b.until(|| entry().and_then(|n| n.mac) == Some(evil));
    Obs {
        after,
        evidence: format!(
            "{}'s entry for {target}: before {}, after {} (attacker {})",
            victim.label,
            show(before),
            show(entry()),
            format_mac(evil)
        ),
    }
}

fn syn_answered(b: &Bed, to: &Member, dst: IpAddr, port: u16, frames: &[Vec<u8>]) -> Obs {
    let cap = Capture::start(&to.ns, "eth0").expect("capture");
    b.attack(frames);
    let after = b.until(|| observe::syn_acked(&cap, dst, port));
    let tcp = observe::tcp_lines(&cap);
    Obs {
        after,
        evidence: format!(
            "{} SYN-ACK from {dst}; TCP on {}:eth0: {tcp:?}",
            if after.is_some() { "a" } else { "no" },
            to.label
        ),
    }
}

// ---------------------------------------------------------------------------
// The attacks

fn attacks(mode: Mode) -> Vec<Attack> {
    let [o, _, v] = mode.labels();
    let mut out = Vec::new();

    // Forged source addresses: the other container's, at the victim.
    out.push(attack_of(
        format!("UDP from forged source {o}'s IPv4 -> {v}"),
        |b| {
            let (o, a, v) = (b.other(), b.attacker(), b.victim());
            let f = udp(a.mac, v.mac, o.v4.into(), v.v4.into(), b"tj-forged-ip4");
            datagram_arrives(b, v, o.v4.into(), &[f])
        },
    ));
    out.push(attack_of(
        format!("UDP from forged source {o}'s IPv6 -> {v}"),
        |b| {
            let (o, a, v) = (b.other(), b.attacker(), b.victim());
            let f = udp(a.mac, v.mac, o.v6.into(), v.v6.into(), b"tj-forged-ip6");
            datagram_arrives(b, v, o.v6.into(), &[f])
        },
    ));

    // VLAN tags and another ethertype.
    out.push(attack_of(
        format!("2 VLAN tags (100, 200), IPv4 UDP inside -> {v}"),
        |b| {
            let (a, v) = (b.attacker(), b.victim());
            let inner = udp(a.mac, v.mac, a.v4.into(), v.v4.into(), b"tj-vlan-2");
            let f = attack::vlan_tagged(inner, &[100, 200]);
            frame_arrives(b, v, &[f], b"tj-vlan-2")
        },
    ));
    out.push(attack_of(
        format!("VID 0 priority tag, IPv4 UDP inside -> {v}"),
        |b| {
            let (a, v) = (b.attacker(), b.victim());
            let inner = udp(a.mac, v.mac, a.v4.into(), v.v4.into(), b"tj-vlan-0");
            let f = attack::vlan_tagged(inner, &[0]);
            frame_or_datagram(b, v, a.v4.into(), &[f], b"tj-vlan-0")
        },
    ));
    out.push(attack_of(format!("ethertype 0x88b5 -> {v}"), |b| {
        let (a, v) = (b.attacker(), b.victim());
        let f = attack::ethertype_frame(a.mac, v.mac, ethertype::LOCAL_EXPERIMENTAL, b"tj-88b5");
        frame_arrives(b, v, &[f], b"tj-88b5")
    }));

    // Group and link-local destinations.
    out.push(attack_of(
        format!("UDP to 255.255.255.255 -> {v} and {o}"),
        |b| {
            let (o, a, v) = (b.other(), b.attacker(), b.victim());
            let src = IpAddr::V4(a.v4);
            let f = udp(
                a.mac,
                attack::BROADCAST,
                src,
                Ipv4Addr::BROADCAST.into(),
                b"tj-bcast",
            );
            let before = [v, o].map(|m| m.listener.arrivals().count_from(src));
            b.attack(&[f]);
            let got = || [v, o].map(|m| m.listener.arrivals().count_from(src));
            let after = b.until(|| got().iter().zip(before).any(|(g, b)| *g > b));
            let now = got();
            Obs {
                after,
                evidence: format!(
                    "listeners: {} {} datagram(s), {} {} from {src}",
                    v.label,
                    now[0] - before[0],
                    o.label,
                    now[1] - before[1]
                ),
            }
        },
    ));
    for target in [2usize, 0] {
        let label = mode.labels()[target];
        out.push(attack_of(
            format!("UDP to {label}'s fe80:: address -> {label}"),
            move |b| {
                let (a, t) = (b.attacker(), &b.members[target]);
                let dst = observe::link_local(&t.ns, "eth0").expect("link-local address");
                let f = udp(a.mac, t.mac, a.ll().into(), dst.into(), b"tj-fe80");
                datagram_arrives(b, t, a.ll().into(), &[f])
            },
        ));
    }

    // Neighbour poisoning.
    out.push(attack_of(
        format!("gratuitous ARP (request and reply) for {o}'s IPv4 -> {v}'s neighbour entry"),
        |b| {
            let (o, a, v) = (b.other(), b.attacker(), b.victim());
            let frames =
                [ArpOp::Request, ArpOp::Reply].map(|op| attack::gratuitous_arp(a.mac, o.v4, op));
            poisoned(b, v, o.v4.into(), o.mac, &frames)
        },
    ));
    out.push(attack_of(
        format!("unsolicited NA (override) for {o}'s IPv6 -> {v}'s neighbour entry"),
        |b| {
            let (o, a, v) = (b.other(), b.attacker(), b.victim());
            let f = attack::unsolicited_na(a.mac, a.ll(), o.v6);
            poisoned(b, v, o.v6.into(), o.mac, &[f])
        },
    ));

    // A rogue router.
    out.push(attack_of(
        format!("rogue RA (lifetime 1800, SLAAC prefix) -> {v}'s default routes (accept_ra=2)"),
        |b| {
            let (a, v) = (b.attacker(), b.victim());
            v.ns.sysctls(&[
                ("net.ipv6.conf.eth0.forwarding", "0"),
                ("net.ipv6.conf.eth0.accept_ra", "2"),
            ])
            .unwrap();
            let rogue_ip = IpAddr::V6(a.ll());
            let routes = || observe::default_routes_v6(&v.ns).unwrap_or_default();
            let show = |r: Vec<observe::Route>| {
                r.iter()
                    .map(|r| {
                        format!(
                            "via {}",
                            r.gateway.map_or("-".into(), |g| g.to_string())
                        )
                    })
                    .collect::<Vec<_>>()
            };
            let before = routes();
            let prefix = PrefixInfo {
                prefix: "2001:db8:bad::".parse().unwrap(),
                len: 64,
                on_link: true,
                autonomous: true,
                valid: 600,
                preferred: 300,
            };
            let all_nodes = attack::multicast_mac("ff02::1".parse().unwrap()).unwrap();
            b.attack(&[attack::router_advert(
                a.mac,
                all_nodes,
                a.ll(),
                1800,
                Some(prefix),
            )]);
            let after = b.until(|| routes().iter().any(|r| r.gateway == Some(rogue_ip)));
            let slaac: Vec<IpAddr> = observe::addresses(&v.ns, "eth0")
                .unwrap_or_default()
                .into_iter()
                .filter(|x| matches!(x.ip, IpAddr::V6(y) if y.segments()[..3] == [0x2001, 0xdb8, 0xbad]))
                .map(|x| x.ip)
                .collect();
            Obs {
                after,
                evidence: format!(
                    "{}'s IPv6 default routes before {:?}, after {:?} (attacker {rogue_ip}); addresses in the rogue prefix {slaac:?}",
                    v.label,
                    show(before),
                    show(routes())
                ),
            }
        },
    ));

    // Requests to the other container (proxy-only: a backend opening
    // a flow to the proxy), whole and as tiny IPv4 fragments.
    for tiny in [false, true] {
        let how = if tiny {
            " as tiny IPv4 fragments (8 bytes of UDP first)"
        } else {
            ""
        };
        out.push(attack_of(format!("UDP request{how} -> {o}"), move |b| {
            let (a, o) = (b.attacker(), b.other());
            let payload = b"tj-udp-request-with-a-longer-payload";
            let whole = udp(a.mac, o.mac, a.v4.into(), o.v4.into(), payload);
            let frames = if tiny {
                attack::ipv4_fragments(a.mac, o.mac, a.v4, o.v4, proto::UDP, &whole[14 + 20..], 8)
            } else {
                vec![whole]
            };
            datagram_arrives(b, o, a.v4.into(), &frames)
        }));
        let how = if tiny {
            " as tiny IPv4 fragments (flags in the 2nd)"
        } else {
            ""
        };
        out.push(attack_of(
            format!("TCP SYN{how} -> {o} (SYN-ACK?)"),
            move |b| {
                let (a, o) = (b.attacker(), b.other());
                let port = attack::fresh_port();
                let frames = if tiny {
                    attack::ipv4_fragments_tcp_syn(a.mac, o.mac, a.v4, o.v4, port, TCP_PORT)
                } else {
                    vec![attack::tcp_syn(
                        a.mac,
                        o.mac,
                        a.v4.into(),
                        o.v4.into(),
                        port,
                        TCP_PORT,
                    )]
                };
                syn_answered(b, o, o.v4.into(), port, &frames)
            },
        ));
    }

    // Last: in the control it leaves the bridge forwarding the other's
    // frames to the attacker.
    out.push(attack_of(
        format!("frames with {o}'s source MAC -> host's fdb entry for that MAC (stays on {o}'s port?)"),
        |b| {
            let (o, a) = (b.other(), b.attacker());
            let fdb = || observe::fdb_port(&b.rt.host, &b.bridge, o.mac).ok().flatten();
            // The bridge learns the real port from a frame of the owner
            // with its own addresses (an ARP request for the gateway).
            let hello = attack::arp(
                o.mac,
                attack::BROADCAST,
                ArpOp::Request,
                o.mac,
                o.v4,
                [0; 6],
                b.gw4,
            );
            attack::send(&o.ns, "eth0", &[hello]).unwrap();
            assert!(
                observe::wait_until(PREPARE, || fdb().as_deref() == Some(o.port.as_str())),
                "preparation: {}'s MAC not learned on {}: {:?}",
                o.label,
                o.port,
                observe::fdb(&b.rt.host, &b.bridge)
            );
            let before = fdb();
            // The stolen MAC with the attacker's own addresses (only the
            // MAC is forged), to the host: nobody answers the owner's MAC.
            let forged = [
                attack::udp_to(
                    o.mac,
                    b.gw_mac,
                    a.v4.into(),
                    b.gw4.into(),
                    attack::fresh_port(),
                    DISCARD,
                    b"tj-forged-mac",
                ),
                attack::ethertype_frame(
                    o.mac,
                    b.gw_mac,
                    ethertype::LOCAL_EXPERIMENTAL,
                    b"tj-forged-mac",
                ),
            ];
            let mut seen = Vec::new();
            // Again on every poll.
            let after = b.until(|| {
                b.attack(&forged);
                let now = fdb();
                if !seen.contains(&now) {
                    seen.push(now.clone());
                }
                now.as_deref() != Some(o.port.as_str())
            });
            Obs {
                after,
                evidence: format!(
                    "host fdb (bridge fdb show br {}) has {}: before on {:?}, during the attack on {:?} ({}'s port {}, attacker's {})",
                    b.bridge,
                    format_mac(o.mac),
                    before,
                    seen,
                    o.label,
                    o.port,
                    a.port
                ),
            }
        },
    ));
    out
}

// ---------------------------------------------------------------------------
// The runs

fn run_all(bed: &Bed, attacks: &[Attack]) -> Vec<Obs> {
    attacks
        .iter()
        .map(|at| {
            let o = (at.run)(bed);
            eprintln!(
                "[{}{} {}] {}: {} — {}",
                bed.mode.policy(),
                if bed.br_netfilter {
                    ""
                } else {
                    ", br_netfilter off"
                },
                if bed.protected {
                    "trafficjam"
                } else {
                    "control"
                },
                at.name,
                if o.hit() { "WORKED" } else { "no effect" },
                o.evidence
            );
            o
        })
        .collect()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{} ms", d.as_millis()))
}

fn attack_suite(mode: Mode, br_netfilter: bool) {
    let list = attacks(mode);
    let control = {
        let bed = Bed::new(mode, false, br_netfilter);
        run_all(&bed, &list)
    };
    let bed = Bed::new(mode, true, br_netfilter);
    let protected = run_all(&bed, &list);
    let flows = bed.legitimate_flows();
    let outcomes = matrix::run(&flows, |l| &bed.member(l).ns, PROBE);

    let [o, a, v] = mode.labels();
    let setup = format!(
        "{}, br_netfilter {}",
        mode.policy(),
        if br_netfilter { "on" } else { "off" }
    );
    let mut table = format!(
        "== trafficjam-cni {setup}: attacker {a} (CAP_NET_RAW), victim {v}, {o}'s identity stolen; each attack without trafficjam in the chain (control), then with it\n"
    );
    let mut failures = Vec::new();
    for ((at, c), p) in list.iter().zip(&control).zip(&protected) {
        let ok = c.hit() && !p.hit();
        table.push_str(&format!(
            "{} {}\n    control:    {:<11} {}\n    trafficjam: {:<11} {}\n",
            if ok { "✓" } else { "✗" },
            at.name,
            if c.hit() {
                format!("worked {}", ms(c.after))
            } else {
                "NO EFFECT".into()
            },
            c.evidence,
            if p.hit() {
                format!("GOT THROUGH {}", ms(p.after))
            } else {
                "blocked".into()
            },
            p.evidence
        ));
        if !c.hit() {
            failures.push(format!(
                "positive control failed (the attack does not work even without trafficjam, so its block proves nothing): {}: {}",
                at.name, c.evidence
            ));
        }
        if p.hit() {
            failures.push(format!(
                "GOT THROUGH with trafficjam: {}: {}",
                at.name, p.evidence
            ));
        }
    }
    println!("{table}");
    println!(
        "trafficjam counters after the attacks and the flows ({setup}):\n{}",
        bed.counters()
    );
    let title = format!("trafficjam-cni {setup}: legitimate flows after the attacks");
    println!("{}", matrix::render(&title, &outcomes));
    for out in outcomes.iter().filter(|o| o.reached != o.flow.allowed) {
        failures.push(format!(
            "flow {} {} {}: want {}, got {}",
            out.flow.label,
            out.flow.proto,
            out.flow.to,
            if out.flow.allowed {
                "reached"
            } else {
                "blocked"
            },
            if out.reached { "reached" } else { "blocked" }
        ));
    }
    assert!(
        failures.is_empty(),
        "{setup}: {} problem(s):\n{}\n\n{table}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn isolated_stops_a_compromised_container() {
    attack_suite(Mode::Isolated, true);
}

#[test]
fn proxy_only_stops_a_compromised_backend() {
    attack_suite(Mode::ProxyOnly, true);
}

/// Bridged traffic not passed to the IP layer: the bridge-family tables
/// alone (nothing reassembles fragments before them).
#[test]
fn isolated_stops_a_compromised_container_without_br_netfilter() {
    attack_suite(Mode::Isolated, false);
}

#[test]
fn proxy_only_stops_a_compromised_backend_without_br_netfilter() {
    attack_suite(Mode::ProxyOnly, false);
}
