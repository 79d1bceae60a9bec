//! Attack scenarios: each is one attack a compromised backend (backend1,
//! with CAP_NET_RAW; in the late-port scenarios, a container attached after the
//! rules) makes against backend2, the proxy or the host, and
//! what it takes to tell whether it worked, read **on the receiving side**:
//! a listener's arrivals, a capture on the victim's interface, the
//! victim's neighbour table, routes or addresses, the host bridge's
//! forwarding database, a SYN-ACK the victim sent.
//!
//! The same scenario runs twice in the kernel tests: on a bed without any
//! firewall (the positive control, `tests/attack_controls.rs`: every
//! scenario must succeed there), and on a fresh bed where trafficjam was
//! applied before the first packet (`trafficjam-cli/tests/kernel_attacks.rs`:
//! none may succeed). There is one copy of each attack, here.
//!
//! A scenario waits only until its effect shows, at most [`Stage::wait`];
//! without an effect it waits that long, so a protected run uses a short
//! window and the control a long one.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::attack::{self, ethertype, proto, ArpOp, Mac, PrefixInfo};
use crate::capture::{Capture, Captured};
use crate::frame::mac_of;
use crate::listener::{TCP_PORT, UDP_PORT};
use crate::observe::{self, format_mac, UdpSink};
use crate::{addr, ip, probe, Listeners, Netns, Testbed};

/// How long a preparation step (learning a neighbour with a real
/// connection) may take; it is never the thing under test.
const PREPARE: Duration = Duration::from_secs(2);

/// The UDP port of the IPv4-only sinks (see [`UdpSink`]) for 224.0.0.1.
const SINK_PORT: u16 = 8091;

/// What [`Stage::on_arm`] runs.
type ArmHook = Box<dyn Fn(&Testbed) + Send + Sync>;

/// A fresh bed with listeners in every namespace and the facts the
/// attacks need (MAC addresses), and the time every observation may take.
pub struct Stage {
    /// The namespaces.
    pub bed: Testbed,
    /// TCP/UDP listeners on ports 8080/8081 in every namespace but `stub`.
    pub listeners: Listeners,
    /// backend1's MAC (the attacker).
    pub b1: Mac,
    /// backend2's MAC.
    pub b2: Mac,
    /// The proxy's MAC on br-m.
    pub proxy: Mac,
    /// br-m's MAC.
    pub host: Mac,
    /// How long to wait for an effect.
    pub wait: Duration,
    on_arm: Option<ArmHook>,
    armed: AtomicBool,
    armed_at: Mutex<Option<Instant>>,
}

impl Stage {
    /// Build a fresh bed and start its listeners; nothing is sent.
    pub fn build(wait: Duration) -> io::Result<Stage> {
        let bed = Testbed::build()?;
        let listeners = bed.listen()?;
        Ok(Stage {
            b1: mac_of(&bed.backend1, "eth0")?,
            b2: mac_of(&bed.backend2, "eth0")?,
            proxy: mac_of(&bed.proxy, "eth0")?,
            host: mac_of(&bed.host, "br-m")?,
            bed,
            listeners,
            wait,
            on_arm: None,
            armed: AtomicBool::new(false),
            armed_at: Mutex::new(None),
        })
    }

    /// Run `f` once, just before the first attack frame leaves (after any
    /// preparation): e.g. to snapshot the firewall's counters, so that
    /// what rises afterwards is the attack's doing.
    pub fn on_arm(&mut self, f: impl Fn(&Testbed) + Send + Sync + 'static) {
        self.on_arm = Some(Box::new(f));
    }

    /// The attack starts now (the hook of [`Stage::on_arm`] runs the first
    /// time only).
    pub fn arm(&self) {
        if !self.armed.swap(true, Ordering::SeqCst) {
            if let Some(f) = &self.on_arm {
                f(&self.bed);
            }
            *self.armed_at.lock().unwrap() = Some(Instant::now());
        }
    }

    /// Whether [`Stage::arm`] was called.
    pub fn was_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Send `frames` from the attacker, backend1's `eth0`.
    pub fn attack(&self, frames: &[Vec<u8>]) {
        self.arm();
        attack::send(&self.bed.backend1, "eth0", frames).expect("send forged frames");
    }

    /// Poll `f` for up to [`Stage::wait`] (every 5 ms for the first
    /// 100 ms, when effects show, then every 25 ms: many checks start a
    /// process); how long it took to hold, if it did. Errors inside `f`
    /// count as "not yet".
    pub fn until(&self, f: impl FnMut() -> bool) -> Option<Duration> {
        poll_until(self.wait, f)
    }

    /// The namespace of `v`.
    pub fn ns(&self, v: Victim) -> &Netns {
        match v {
            Victim::Backend2 => &self.bed.backend2,
            Victim::Proxy => &self.bed.proxy,
            Victim::Host => &self.bed.host,
        }
    }

    /// The MAC of `v` on br-m.
    pub fn mac(&self, v: Victim) -> Mac {
        match v {
            Victim::Backend2 => self.b2,
            Victim::Proxy => self.proxy,
            Victim::Host => self.host,
        }
    }

    /// The link-local address of `v` on br-m, read from the kernel (the
    /// bridge's was made from its MAC before any port changed it).
    pub fn link_local(&self, v: Victim) -> Ipv6Addr {
        observe::link_local(self.ns(v), v.ifname()).expect("link-local address")
    }

    /// backend1's link-local address.
    pub fn b1_ll(&self) -> Ipv6Addr {
        attack::eui64_link_local(self.b1)
    }
}

/// Who is attacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The other backend.
    Backend2,
    /// The whitelisted proxy: a backend may reach it only with replies.
    Proxy,
    /// The host itself (gateway, bridge link-local address).
    Host,
}

impl Victim {
    /// The label of its namespace in [`Testbed::all`] and [`Listeners`].
    pub fn label(self) -> &'static str {
        match self {
            Victim::Backend2 => "backend2",
            Victim::Proxy => "proxy",
            Victim::Host => "host",
        }
    }

    /// Its interface on the managed network.
    pub fn ifname(self) -> &'static str {
        match self {
            Victim::Host => "br-m",
            _ => "eth0",
        }
    }

    /// Its IPv4 address on br-m.
    pub fn v4(self) -> IpAddr {
        ip(match self {
            Victim::Backend2 => addr::B2_4,
            Victim::Proxy => addr::PROXY4,
            Victim::Host => addr::GW4,
        })
    }

    /// Its IPv6 address on br-m.
    pub fn v6(self) -> IpAddr {
        ip(match self {
            Victim::Backend2 => addr::B2_6,
            Victim::Proxy => addr::PROXY6,
            Victim::Host => addr::GW6,
        })
    }
}

/// What a scenario saw on the receiving side.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Whether the attack had its effect.
    pub succeeded: bool,
    /// What arrived or changed (or that nothing did), for humans.
    pub evidence: String,
    /// How long the effect took to show after the attack.
    pub after: Option<Duration>,
    /// Set when an effect showed but not quite the one claimed (a frame
    /// arrived altered, say): a breach all the same, but a positive
    /// control with a caveat proves less than it claims.
    pub caveat: Option<String>,
}

impl Observation {
    fn new(after: Option<Duration>, evidence: String) -> Observation {
        Observation {
            succeeded: after.is_some(),
            evidence,
            after,
            caveat: None,
        }
    }
}

type Run = Box<dyn Fn(&Stage) -> Observation + Send + Sync>;

/// One attack and how its effect is read.
pub struct Scenario {
    /// What it is, e.g. `vlan 802.1Q x2 -> backend2`.
    pub name: String,
    /// Who is attacked.
    pub victim: Victim,
    run: Run,
}

impl Scenario {
    fn new(
        name: impl Into<String>,
        victim: Victim,
        run: impl Fn(&Stage) -> Observation + Send + Sync + 'static,
    ) -> Scenario {
        Scenario {
            name: name.into(),
            victim,
            run: Box::new(run),
        }
    }

    /// Prepare, attack, observe.
    pub fn run(&self, stage: &Stage) -> Observation {
        (self.run)(stage)
    }
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Run `f` over `items` on `workers` threads; results in input order.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { return };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

// ---------------------------------------------------------------------------
// Observation helpers

/// Frames from backend1 that should show up in a capture on the victim's
/// interface; the attack worked if one containing `marker` is received.
fn frames_arrive(s: &Stage, v: Victim, frames: Vec<Vec<u8>>, marker: &'static [u8]) -> Observation {
    let cap = Capture::start(s.ns(v), v.ifname()).expect("capture");
    s.attack(&frames);
    let after = s.until(|| cap.contains(marker));
    let got = cap.incoming_with(marker);
    let name = String::from_utf8_lossy(marker);
    if got.is_empty() {
        return Observation::new(
            None,
            format!(
                "capture on {}:{}: no frame with {name:?} ({} frames received in all)",
                v.label(),
                v.ifname(),
                cap.incoming().len()
            ),
        );
    }
    let first: &Captured = &got[0];
    let intact = frames.iter().any(|f| *f == first.wire());
    let mut o = Observation::new(
        after,
        format!(
            "capture on {}:{}: {} frame(s) with {name:?}, outer tag {:?}, {} bytes{}",
            v.label(),
            v.ifname(),
            got.len(),
            first.vlan.map(|t| (format!("{:#06x}", t.tpid), t.vid())),
            first.wire().len(),
            if intact { ", as sent" } else { ", ALTERED" }
        ),
    );
    if !intact {
        o.caveat = Some("the frame arrived altered".into());
    }
    o
}

/// Datagrams from `src` at the victim's listener (UDP 8081, or the IPv4
/// sink on [`SINK_PORT`] for IPv4 multicast): the attack worked if one
/// more arrived than before.
fn datagram_arrives(s: &Stage, v: Victim, src: IpAddr, frames: Vec<Vec<u8>>) -> Observation {
    let before = s.listeners.arrivals(v.label()).count_from(src);
    s.attack(&frames);
    let after = s.until(|| s.listeners.arrivals(v.label()).count_from(src) > before);
    let got = s.listeners.arrivals(v.label());
    Observation::new(
        after,
        format!(
            "{}'s listener: {} datagram(s)/connection(s) from {src} (all arrivals: tcp {:?} udp {:?})",
            v.label(),
            got.count_from(src) - before,
            got.tcp,
            got.udp
        ),
    )
}

/// UDP from backend1 (its own MAC, `src`) to `dst` at `dst_mac`, inside
/// `vids` VLAN tags if any, observed at the victim.
fn udp(
    s: &Stage,
    v: Victim,
    src: IpAddr,
    dst: IpAddr,
    dst_mac: Mac,
    vids: &[u16],
    src_mac: Option<Mac>,
) -> Observation {
    let multicast4 = matches!(dst, IpAddr::V4(d) if d.is_multicast());
    let port = if multicast4 { SINK_PORT } else { UDP_PORT };
    let mut f = attack::udp_to(
        src_mac.unwrap_or(s.b1),
        dst_mac,
        src,
        dst,
        attack::fresh_port(),
        port,
        b"tj-udp",
    );
    if !vids.is_empty() {
        f = attack::vlan_tagged(f, vids);
    }
    if multicast4 {
        let sink =
            UdpSink::start(s.ns(v), (Ipv4Addr::UNSPECIFIED, SINK_PORT).into()).expect("UDP sink");
        s.attack(&[f]);
        let start = Instant::now();
        let from = sink.wait_for(b"tj-udp", s.wait).expect("UDP sink");
        let after = (from.map(|a| a.ip()) == Some(src)).then(|| start.elapsed());
        return Observation::new(
            after,
            format!(
                "{}'s IPv4 sink on {SINK_PORT}: {}",
                v.label(),
                from.map_or("nothing".into(), |a| format!("a datagram from {a}"))
            ),
        );
    }
    datagram_arrives(s, v, src, vec![f])
}

/// Wait until `ns` has `ip` on `ifname` at `mac`; panic otherwise (a
/// preparation that failed is not a result).
fn expect_neighbour(ns: &Netns, ifname: &str, ip: IpAddr, mac: Mac, what: &str) {
    let ok = observe::wait_until(PREPARE, || {
        observe::neighbour_mac(ns, ifname, ip).ok().flatten() == Some(mac)
    });
    assert!(
        ok,
        "preparation ({what}): {} has no {ip} at {}: {:?}",
        ns.name(),
        format_mac(mac),
        observe::neighbours(ns, ifname)
    );
}

/// A real TCP handshake from `from` to `to`, so that both learn each
/// other's MAC (allowed traffic with or without trafficjam); panic if it
/// fails.
fn connect(from: &Netns, to: &str) {
    assert!(
        probe::tcp_connect(from, ip(to), PREPARE),
        "preparation: {} cannot connect to {to}",
        from.name()
    );
}

/// Make the victim learn `target` at its real MAC with allowed traffic,
/// so that poisoning has an entry to override.
fn learn(s: &Stage, v: Victim, target: &str, real: Mac) {
    match (v, target) {
        // backend2 learns the proxy from the proxy's resolution of it.
        (Victim::Backend2, addr::PROXY4 | addr::PROXY6) => {
            let to = if target == addr::PROXY4 {
                addr::B2_4
            } else {
                addr::B2_6
            };
            connect(&s.bed.proxy, to);
        }
        // The proxy learns its gateway on its way out.
        (Victim::Proxy, addr::GW4) => connect(&s.bed.proxy, addr::OUTSIDE4),
        (Victim::Proxy, addr::GW6) => connect(&s.bed.proxy, addr::OUTSIDE6),
        (Victim::Proxy, _) => connect(&s.bed.proxy, target),
        (Victim::Host, _) => connect(&s.bed.host, target),
        other => panic!("no way to learn {other:?}"),
    }
    expect_neighbour(s.ns(v), v.ifname(), ip(target), real, "learn the real MAC");
}

/// The victim's neighbour entry for `target` moves to (or is created at)
/// backend1's MAC.
fn poisoned(s: &Stage, v: Victim, target: IpAddr, frames: Vec<Vec<u8>>) -> Observation {
    let (ns, ifname) = (s.ns(v), v.ifname());
    let entry = || {
        observe::neighbours(ns, ifname)
            .ok()
            .and_then(|n| n.into_iter().find(|n| n.ip == target))
    };
    let before = entry();
    s.attack(&frames);
    let after = s.until(|| entry().and_then(|n| n.mac) == Some(s.b1));
    let show = |n: Option<observe::Neighbour>| {
        n.map_or("none".into(), |n| {
            format!("{} {:?}", n.mac.map_or("-".into(), format_mac), n.state)
        })
    };
    Observation::new(
        after,
        format!(
            "{}'s entry for {target}: before {}, after {} (attacker {})",
            v.label(),
            show(before),
            show(entry()),
            format_mac(s.b1)
        ),
    )
}

/// Forged SYN(s) from port `port`; the victim's capture shows whether
/// its TCP answered.
fn syn_answered(s: &Stage, v: Victim, dst: IpAddr, port: u16, frames: Vec<Vec<u8>>) -> Observation {
    let cap = Capture::start(s.ns(v), v.ifname()).expect("capture");
    s.attack(&frames);
    let after = s.until(|| observe::syn_acked(&cap, dst, port));
    let tcp = observe::tcp_lines(&cap);
    Observation::new(
        after,
        format!(
            "{} SYN-ACK from {dst} to port {port}; TCP on {}:{}: {tcp:?}",
            if after.is_some() { "a" } else { "no" },
            v.label(),
            v.ifname()
        ),
    )
}

/// The L4 part of a frame [`attack::udp_to`] built (no tags).
fn l4_of(frame: &[u8]) -> Vec<u8> {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ethertype::IPV4 => frame[14 + 20..].to_vec(),
        _ => frame[14 + 40..].to_vec(),
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn v4_of(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        _ => panic!("{a} is not IPv4"),
    }
}

fn v6_of(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        _ => panic!("{a} is not IPv6"),
    }
}

// ---------------------------------------------------------------------------
// The scenarios

/// Every scenario, in a stable order.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(layer2());
    v.extend(group_and_link_local());
    v.extend(forged_sources());
    v.extend(neighbour_poisoning());
    v.extend(fdb_theft());
    v.extend(routers());
    v.extend(dad());
    v.extend(syns_and_fragments());
    v.extend(routed());
    v.extend(icmp_errors());
    v.extend(late_port());
    v
}

/// [`all`], or only the scenarios whose name contains the value of
/// `TRAFFICJAM_SCENARIO` when it is set (to rerun one while debugging).
pub fn selected() -> Vec<Scenario> {
    match std::env::var("TRAFFICJAM_SCENARIO") {
        Ok(part) if !part.is_empty() => {
            let v: Vec<Scenario> = all()
                .into_iter()
                .filter(|s| s.name.contains(&part))
                .collect();
            assert!(!v.is_empty(), "no scenario name contains {part:?}");
            eprintln!("TRAFFICJAM_SCENARIO={part:?}: {} scenario(s) only", v.len());
            v
        }
        _ => all(),
    }
}

/// VLAN tags of every depth and kind, other ethertypes, malformed ARP.
fn layer2() -> Vec<Scenario> {
    let mut out = Vec::new();
    // Tagged frames of the local experimental ethertype.
    type Tags = fn(Vec<u8>) -> Vec<u8>;
    let tagged: [(&str, Tags, &'static [u8]); 5] = [
        (
            "802.1Q x1 (VID 100)",
            |f| attack::vlan_tagged(f, &[100]),
            b"tj-vlan-1",
        ),
        (
            "802.1Q x2 (100, 200)",
            |f| attack::vlan_tagged(f, &[100, 200]),
            b"tj-vlan-2",
        ),
        (
            "802.1Q x3 (1, 2, 3)",
            |f| attack::vlan_tagged(f, &[1, 2, 3]),
            b"tj-vlan-3",
        ),
        (
            "802.1ad outer (10) + 802.1Q (20)",
            |f| attack::qinq_tagged(f, 10, &[20]),
            b"tj-vlan-q",
        ),
        (
            "VID 0 (priority tag)",
            |f| attack::vlan_tagged(f, &[0]),
            b"tj-vlan-0",
        ),
    ];
    for victim in [Victim::Backend2, Victim::Proxy] {
        for (what, tag, marker) in tagged {
            out.push(Scenario::new(
                format!("vlan {what}, 0x88b5 inside -> {}", victim.label()),
                victim,
                move |s| {
                    let inner = attack::ethertype_frame(
                        s.b1,
                        s.mac(victim),
                        ethertype::LOCAL_EXPERIMENTAL,
                        marker,
                    );
                    frames_arrive(s, victim, vec![tag(inner)], marker)
                },
            ));
        }
        // A Linux receiver strips priority tags: IP inside them reaches
        // services.
        let prio: [(&str, bool, &'static [u16]); 3] = [
            ("VID 0, IPv4 UDP", false, &[0]),
            ("VID 0 in VID 0, IPv4 UDP", false, &[0, 0]),
            ("VID 0, IPv6 UDP", true, &[0]),
        ];
        for (what, six, vids) in prio {
            out.push(Scenario::new(
                format!("vlan {what} -> {}", victim.label()),
                victim,
                move |s| {
                    let (src, dst) = if six {
                        (ip(addr::B1_6), victim.v6())
                    } else {
                        (ip(addr::B1_4), victim.v4())
                    };
                    udp(s, victim, src, dst, s.mac(victim), vids, None)
                },
            ));
        }
    }
    // Other ethertypes.
    type Build = fn(&Stage, Mac) -> Vec<u8>;
    let others: [(&str, Build, &'static [u8]); 5] = [
        (
            "ethertype 0x88b5",
            |s, to| attack::ethertype_frame(s.b1, to, ethertype::LOCAL_EXPERIMENTAL, b"tj-88b5"),
            b"tj-88b5",
        ),
        (
            "Wake-on-LAN 0x0842 (broadcast)",
            |s, to| attack::wake_on_lan(s.b1, to, b"tj-wol"),
            b"tj-wol",
        ),
        (
            "LLDP 0x88cc (unicast)",
            |s, to| attack::lldp(s.b1, to, b"tj-lldp"),
            b"tj-lldp",
        ),
        (
            "802.3/LLC (SNAP SAPs)",
            |s, to| attack::llc_frame(s.b1, to, 0xaa, 0xaa, 0x03, b"tj-llc"),
            b"tj-llc",
        ),
        (
            "802.3/LLC to the STP group 01:80:c2:00:00:00",
            |s, _| attack::llc_frame(s.b1, attack::STP_GROUP, 0x42, 0x42, 0x03, b"tj-stp"),
            b"tj-stp",
        ),
    ];
    for victim in [Victim::Backend2, Victim::Proxy] {
        for (what, build, marker) in others {
            out.push(Scenario::new(
                format!("{what} -> {}", victim.label()),
                victim,
                move |s| frames_arrive(s, victim, vec![build(s, s.mac(victim))], marker),
            ));
        }
    }
    out.push(Scenario::new(
        "ethertype 0x88b5 broadcast -> host (br-m)",
        Victim::Host,
        |s| {
            let f = attack::ethertype_frame(
                s.b1,
                attack::BROADCAST,
                ethertype::LOCAL_EXPERIMENTAL,
                b"tj-88b5-host",
            );
            frames_arrive(s, Victim::Host, vec![f], b"tj-88b5-host")
        },
    ));
    // ARP whose header is not Ethernet/IPv4 (hardware address length 8):
    // a parser that trusts the fixed offsets reads the wrong fields.
    for victim in [Victim::Proxy, Victim::Host] {
        out.push(Scenario::new(
            format!("malformed ARP (hlen 8) -> {}", victim.label()),
            victim,
            move |s| {
                let mut p = vec![0, 1, 0x08, 0x00, 8, 4, 0, 1];
                p.extend_from_slice(&s.b1);
                p.extend_from_slice(&[0, 0]);
                p.extend_from_slice(&v4(addr::B1_4).octets());
                p.extend_from_slice(&[0; 8]);
                p.extend_from_slice(&v4_of(victim.v4()).octets());
                p.extend_from_slice(b"tj-arp-hlen8");
                let f = attack::ethertype_frame(s.b1, s.mac(victim), ethertype::ARP, &p);
                frames_arrive(s, victim, vec![f], b"tj-arp-hlen8")
            },
        ));
    }
    out
}

/// UDP to broadcast, multicast and link-local addresses, and TCP to the
/// link-local address, at each victim.
fn group_and_link_local() -> Vec<Scenario> {
    let mut out = Vec::new();
    for victim in [Victim::Backend2, Victim::Proxy, Victim::Host] {
        let l = victim.label();
        out.push(Scenario::new(
            format!("UDP to 255.255.255.255 -> {l}"),
            victim,
            move |s| {
                let dst = IpAddr::V4(Ipv4Addr::BROADCAST);
                udp(s, victim, ip(addr::B1_4), dst, attack::BROADCAST, &[], None)
            },
        ));
        out.push(Scenario::new(
            format!("UDP to 10.77.1.255 (subnet broadcast) -> {l}"),
            victim,
            move |s| {
                let dst = ip("10.77.1.255");
                udp(s, victim, ip(addr::B1_4), dst, attack::BROADCAST, &[], None)
            },
        ));
        out.push(Scenario::new(
            format!("UDP to 224.0.0.1 -> {l}"),
            victim,
            move |s| {
                let dst = ip("224.0.0.1");
                let mac = attack::multicast_mac(dst).unwrap();
                udp(s, victim, ip(addr::B1_4), dst, mac, &[], None)
            },
        ));
        out.push(Scenario::new(
            format!("UDP to ff02::1 -> {l}"),
            victim,
            move |s| {
                let dst = ip("ff02::1");
                let mac = attack::multicast_mac(dst).unwrap();
                udp(s, victim, s.b1_ll().into(), dst, mac, &[], None)
            },
        ));
        out.push(Scenario::new(
            format!("UDP to its fe80:: address -> {l}"),
            victim,
            move |s| {
                let dst = s.link_local(victim).into();
                udp(s, victim, s.b1_ll().into(), dst, s.mac(victim), &[], None)
            },
        ));
        out.push(Scenario::new(
            format!("TCP handshake with its fe80:: address -> {l}"),
            victim,
            move |s| {
                let to = s.link_local(victim);
                let from = IpAddr::V6(s.b1_ll());
                s.arm();
                let shake =
                    attack::tcp_connect_scoped(&s.bed.backend1, "eth0", to, TCP_PORT, s.wait)
                        .expect("connect");
                let after = s.until(|| s.listeners.arrivals(l).tcp.contains(&from));
                Observation::new(
                    after,
                    format!(
                        "handshake with [{to}%eth0]:{TCP_PORT} {}; {l}'s listener accepted {:?}",
                        if shake { "completed" } else { "failed" },
                        s.listeners.arrivals(l).tcp
                    ),
                )
            },
        ));
    }
    out
}

/// Sources outside the subnets, the proxy's address, the proxy's MAC,
/// another backend's address.
fn forged_sources() -> Vec<Scenario> {
    let mut out = Vec::new();
    let outside: [(&str, &str); 2] = [("192.0.2.66", addr::B2_4), ("2001:db8:66::66", addr::B2_6)];
    for victim in [Victim::Backend2, Victim::Proxy] {
        for (src, _) in outside {
            out.push(Scenario::new(
                format!("UDP from forged outside source {src} -> {}", victim.label()),
                victim,
                move |s| {
                    let dst = if src.contains(':') {
                        victim.v6()
                    } else {
                        victim.v4()
                    };
                    udp(s, victim, ip(src), dst, s.mac(victim), &[], None)
                },
            ));
        }
    }
    for src in ["198.51.100.66", "2001:db8:100::66"] {
        out.push(Scenario::new(
            format!("TCP SYN from forged outside source {src} -> backend2 (SYN-ACK)"),
            Victim::Backend2,
            move |s| {
                let dst = if src.contains(':') {
                    ip(addr::B2_6)
                } else {
                    ip(addr::B2_4)
                };
                let port = attack::fresh_port();
                let f = attack::tcp_syn(s.b1, s.b2, ip(src), dst, port, TCP_PORT);
                syn_answered(s, Victim::Backend2, dst, port, vec![f])
            },
        ));
    }
    for (src, dst) in [(addr::PROXY4, addr::B2_4), (addr::PROXY6, addr::B2_6)] {
        out.push(Scenario::new(
            format!("UDP from forged proxy address {src} -> backend2"),
            Victim::Backend2,
            move |s| udp(s, Victim::Backend2, ip(src), ip(dst), s.b2, &[], None),
        ));
        out.push(Scenario::new(
            format!("UDP from forged proxy address {src} and MAC -> backend2"),
            Victim::Backend2,
            move |s| {
                udp(
                    s,
                    Victim::Backend2,
                    ip(src),
                    ip(dst),
                    s.b2,
                    &[],
                    Some(s.proxy),
                )
            },
        ));
        out.push(Scenario::new(
            format!("TCP SYN from forged proxy address {src} -> backend2 (SYN-ACK)"),
            Victim::Backend2,
            move |s| {
                let port = attack::fresh_port();
                let f = attack::tcp_syn(s.b1, s.b2, ip(src), ip(dst), port, TCP_PORT);
                syn_answered(s, Victim::Backend2, ip(dst), port, vec![f])
            },
        ));
    }
    for (own, dst) in [(addr::B1_4, addr::B2_4), (addr::B1_6, addr::B2_6)] {
        out.push(Scenario::new(
            format!("UDP from its own address {own} with the proxy's MAC -> backend2"),
            Victim::Backend2,
            move |s| {
                udp(
                    s,
                    Victim::Backend2,
                    ip(own),
                    ip(dst),
                    s.b2,
                    &[],
                    Some(s.proxy),
                )
            },
        ));
    }
    for (src, dst) in [(addr::B2_4, addr::PROXY4), (addr::B2_6, addr::PROXY6)] {
        out.push(Scenario::new(
            format!("UDP from forged backend2 address {src} -> proxy"),
            Victim::Proxy,
            move |s| udp(s, Victim::Proxy, ip(src), ip(dst), s.proxy, &[], None),
        ));
    }
    out
}

/// ARP and neighbour-discovery poisoning of the host, the proxy and
/// backend2.
fn neighbour_poisoning() -> Vec<Scenario> {
    let mut out = Vec::new();
    // Gratuitous ARP for the proxy's address: overrides a known entry.
    for (victim, op) in [
        (Victim::Host, ArpOp::Request),
        (Victim::Host, ArpOp::Reply),
        (Victim::Backend2, ArpOp::Request),
        (Victim::Backend2, ArpOp::Reply),
    ] {
        out.push(Scenario::new(
            format!(
                "gratuitous ARP {op:?} for the proxy -> {}'s entry",
                victim.label()
            ),
            victim,
            move |s| {
                learn(s, victim, addr::PROXY4, s.proxy);
                let f = attack::gratuitous_arp(s.b1, v4(addr::PROXY4), op);
                poisoned(s, victim, ip(addr::PROXY4), vec![f])
            },
        ));
    }
    // Gratuitous ARP for the gateway: the proxy's way out via backend1.
    out.push(Scenario::new(
        "gratuitous ARP Request for the gateway -> proxy's entry",
        Victim::Proxy,
        |s| {
            learn(s, Victim::Proxy, addr::GW4, s.host);
            let f = attack::gratuitous_arp(s.b1, v4(addr::GW4), ArpOp::Request);
            poisoned(s, Victim::Proxy, ip(addr::GW4), vec![f])
        },
    ));
    // An ARP request addressed to the victim "from" another's address
    // plants an entry even in a cold cache (and overrides a warm one).
    let targeted: [(Victim, &str, bool); 3] = [
        (Victim::Host, addr::PROXY4, false),
        (Victim::Proxy, addr::B2_4, true),
        (Victim::Backend2, addr::PROXY4, false),
    ];
    for (victim, spa, warm) in targeted {
        out.push(Scenario::new(
            format!(
                "ARP request from forged {spa} to {} -> its entry ({} cache)",
                victim.label(),
                if warm { "warm" } else { "cold" }
            ),
            victim,
            move |s| {
                if warm {
                    learn(s, victim, spa, s.b2);
                }
                let f = attack::arp(
                    s.b1,
                    s.mac(victim),
                    ArpOp::Request,
                    s.b1,
                    v4(spa),
                    [0; 6],
                    v4_of(victim.v4()),
                );
                poisoned(s, victim, ip(spa), vec![f])
            },
        ));
    }
    // The cold plant at backend2, and then its datagram for the proxy
    // goes to backend1: interception.
    out.push(Scenario::new(
        "ARP request from forged proxy address -> backend2 sends the proxy's traffic to backend1",
        Victim::Backend2,
        |s| {
            let cap = Capture::start(&s.bed.backend1, "eth0").expect("capture");
            let spa = v4(addr::PROXY4);
            let f = attack::arp(
                s.b1,
                s.b2,
                ArpOp::Request,
                s.b1,
                spa,
                [0; 6],
                v4(addr::B2_4),
            );
            let plant = poisoned(s, Victim::Backend2, spa.into(), vec![f]);
            s.bed
                .backend2
                .run(move || {
                    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                    let _ = sock.send_to(b"tj-intercepted-v4", (spa, UDP_PORT));
                })
                .unwrap();
            let after = s.until(|| {
                cap.count_matching(|f| {
                    f.incoming() && f.dst_mac() == Some(s.b1) && f.contains(b"tj-intercepted-v4")
                }) > 0
            });
            let caught = Observation::new(
                after,
                format!(
                    "backend1 {} backend2's datagram for the proxy",
                    if after.is_some() {
                        "received"
                    } else {
                        "did not receive"
                    }
                ),
            );
            Observation::new(
                plant.after.or(caught.after),
                format!("{}; {}", plant.evidence, caught.evidence),
            )
        },
    ));
    // Unsolicited NA (O flag, all nodes) from backend1's own link-local
    // address: passes any source-address check, claims another target.
    let na: [(Victim, &str, bool); 4] = [
        (Victim::Host, addr::PROXY6, false),
        (Victim::Backend2, addr::PROXY6, false),
        (Victim::Proxy, addr::GW6, false),
        (Victim::Proxy, addr::B2_6, true),
    ];
    for (victim, target, unicast) in na {
        out.push(Scenario::new(
            format!(
                "{} NA for {target} -> {}'s entry",
                if unicast {
                    "solicited-looking unicast"
                } else {
                    "unsolicited"
                },
                victim.label()
            ),
            victim,
            move |s| {
                let real = match target {
                    addr::GW6 => s.host,
                    addr::B2_6 => s.b2,
                    _ => s.proxy,
                };
                learn(s, victim, target, real);
                let t = v6(target);
                let f = if unicast {
                    attack::neighbor_advert(
                        s.b1,
                        s.mac(victim),
                        s.b1_ll(),
                        v6_of(victim.v6()),
                        t,
                        Some(s.b1),
                        attack::NaFlags {
                            solicited: true,
                            override_entry: true,
                            ..Default::default()
                        },
                    )
                } else {
                    attack::unsolicited_na(s.b1, s.b1_ll(), t)
                };
                poisoned(s, victim, t.into(), vec![f])
            },
        ));
    }
    // A neighbour solicitation "from" another's address with backend1's
    // MAC as source link-layer address plants the entry (cold cache).
    for (victim, src) in [
        (Victim::Backend2, addr::PROXY6),
        (Victim::Proxy, addr::B2_6),
    ] {
        out.push(Scenario::new(
            format!(
                "NS from forged {src} -> {}'s entry (cold cache)",
                victim.label()
            ),
            victim,
            move |s| {
                let target = v6_of(victim.v6());
                let (group, group_mac) = attack::solicited_node(target);
                let f =
                    attack::neighbor_solicit(s.b1, group_mac, v6(src), group, target, Some(s.b1));
                poisoned(s, victim, ip(src), vec![f])
            },
        ));
    }
    out
}

/// Stealing another port's MAC: the bridge learns it on backend1's port
/// and forwards that port's traffic there.
fn fdb_theft() -> Vec<Scenario> {
    let mut out = Vec::new();
    // (whose MAC is stolen, who then sends to its owner)
    let cases: [(&str, Victim); 2] = [("proxy", Victim::Host), ("backend2", Victim::Proxy)];
    for (whose, sender) in cases {
        out.push(Scenario::new(
            format!(
                "frames with {whose}'s source MAC -> host fdb moves it to vb1, {}'s traffic for {whose} reaches backend1",
                sender.label()
            ),
            if whose == "proxy" { Victim::Proxy } else { Victim::Backend2 },
            move |s| {
                let h = &s.bed.host;
                let (mac, port, dst) = if whose == "proxy" {
                    (s.proxy, "vproxy", v4(addr::PROXY4))
                } else {
                    (s.b2, "vb2", v4(addr::B2_4))
                };
                // The bridge learns the real port, and the sender the
                // real MAC, from allowed traffic.
                if whose == "proxy" {
                    connect(&s.bed.host, addr::PROXY4);
                } else {
                    connect(&s.bed.proxy, addr::B2_4);
                }
                assert!(
                    observe::wait_until(PREPARE, || observe::fdb_port(h, "br-m", mac)
                        .ok()
                        .flatten()
                        .as_deref()
                        == Some(port)),
                    "preparation: {whose}'s MAC not learned on {port}: {:?}",
                    observe::fdb(h, "br-m")
                );
                let hello = attack::ethertype_frame(
                    mac,
                    attack::BROADCAST,
                    ethertype::LOCAL_EXPERIMENTAL,
                    b"tj-forged-mac",
                );
                // Again on every poll: the real owner's last packets of
                // the preparation may still teach the bridge its port.
                let forged = [hello];
                let where_ = || observe::fdb_port(h, "br-m", mac).ok().flatten();
                let moved = s.until(|| {
                    s.attack(&forged);
                    where_().as_deref() == Some("vb1")
                });
                s.attack(&forged);
                let at_b1 = Capture::start(&s.bed.backend1, "eth0").expect("capture");
                let victim = if whose == "proxy" { Victim::Proxy } else { Victim::Backend2 };
                let at_victim = Capture::start(s.ns(victim), "eth0").expect("capture");
                s.ns(sender)
                    .run(move || {
                        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                        for _ in 0..3 {
                            let _ = sock.send_to(b"tj-for-the-victim", (dst, UDP_PORT));
                        }
                    })
                    .unwrap();
                let stolen = s.until(|| {
                    at_b1.count_matching(|f| {
                        f.incoming() && f.dst_mac() == Some(mac) && f.contains(b"tj-for-the-victim")
                    }) > 0
                });
                let evidence = format!(
                    "host fdb has {} on {:?}; backend1 {} {}'s datagram for {whose}; {whose} {} it",
                    format_mac(mac),
                    where_(),
                    if stolen.is_some() { "received" } else { "did not receive" },
                    sender.label(),
                    if at_victim.contains(b"tj-for-the-victim") { "received" } else { "did not receive" },
                );
                Observation::new(moved.or(stolen), evidence)
            },
        ));
    }
    out
}

/// Rogue router advertisements and redirects.
fn routers() -> Vec<Scenario> {
    let mut out = Vec::new();
    for victim in [Victim::Backend2, Victim::Proxy] {
        out.push(Scenario::new(
            format!("rogue RA (lifetime 1800, SLAAC prefix) -> {}'s default routes", victim.label()),
            victim,
            move |s| {
                let ns = s.ns(victim);
                ns.sysctl("net.ipv6.conf.eth0.forwarding", "0").unwrap();
                ns.sysctl("net.ipv6.conf.eth0.accept_ra", "2").unwrap();
                let b1_ll = s.b1_ll();
                let routes = || observe::default_routes_v6(ns).unwrap_or_default();
                let before = routes();
                let prefix = PrefixInfo {
                    prefix: v6("2001:db8:bad::"),
                    len: 64,
                    on_link: true,
                    autonomous: true,
                    valid: 600,
                    preferred: 300,
                };
                let all_nodes = attack::multicast_mac(ip("ff02::1")).unwrap();
                s.attack(&[attack::router_advert(s.b1, all_nodes, b1_ll, 1800, Some(prefix))]);
                let rogue = |r: &observe::Route| r.gateway == Some(b1_ll.into());
                let after = s.until(|| routes().iter().any(rogue));
                let slaac = observe::addresses(ns, "eth0")
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| matches!(a.ip, IpAddr::V6(x) if x.segments()[..3] == [0x2001, 0xdb8, 0xbad]))
                    .map(|a| a.ip)
                    .collect::<Vec<_>>();
                let show = |r: Vec<observe::Route>| {
                    r.iter()
                        .map(|r| format!("via {:?} {:?}", r.gateway, r.protocol))
                        .collect::<Vec<_>>()
                };
                Observation::new(
                    after,
                    format!(
                        "{}'s IPv6 default routes before {:?}, after {:?}; addresses in the rogue prefix {slaac:?}",
                        victim.label(),
                        show(before),
                        show(routes())
                    ),
                )
            },
        ));
        out.push(Scenario::new(
            format!(
                "ICMP redirect (spoofed gateway) -> {}'s route to the outside",
                victim.label()
            ),
            victim,
            move |s| {
                let ns = s.ns(victim);
                // A plain host: forwarding off (and so redirects on).
                ns.sysctl("net.ipv4.ip_forward", "0").unwrap();
                let outside = ip(addr::OUTSIDE4);
                let before = observe::route_get(ns, outside).unwrap();
                assert_eq!(
                    before.gateway,
                    Some(ip(addr::GW4)),
                    "preparation: {before:?}"
                );
                let (b1, me) = (v4(addr::B1_4), v4_of(victim.v4()));
                s.attack(&[
                    attack::arp(s.b1, s.mac(victim), ArpOp::Request, s.b1, b1, [0; 6], me),
                    attack::icmp4_redirect(
                        s.b1,
                        s.mac(victim),
                        v4(addr::GW4),
                        me,
                        b1,
                        v4(addr::OUTSIDE4),
                    ),
                ]);
                let now = || observe::route_get(ns, outside).ok().and_then(|r| r.gateway);
                let after = s.until(|| now() == Some(b1.into()));
                Observation::new(
                    after,
                    format!(
                        "{}'s route to {outside}: before via {:?}, after via {:?}",
                        victim.label(),
                        before.gateway,
                        now()
                    ),
                )
            },
        ));
        out.push(Scenario::new(
            format!(
                "ICMPv6 redirect (spoofed link-local gateway) -> {}'s route to the outside",
                victim.label()
            ),
            victim,
            move |s| {
                let ns = s.ns(victim);
                let host_ll = s.link_local(Victim::Host);
                let b1_ll = s.b1_ll();
                // The common link-local default gateway (a redirect is
                // taken only from the current next hop's link-local).
                ns.ip(&[
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
                let before = observe::route_get(ns, outside).unwrap();
                assert_eq!(
                    before.gateway,
                    Some(host_ll.into()),
                    "preparation: {before:?}"
                );
                s.attack(&[attack::icmpv6_redirect(
                    s.b1,
                    s.mac(victim),
                    host_ll,
                    v6_of(victim.v6()),
                    b1_ll,
                    v6(addr::OUTSIDE6),
                    Some(s.b1),
                )]);
                let now = || observe::route_get(ns, outside).ok().and_then(|r| r.gateway);
                let after = s.until(|| now() == Some(b1_ll.into()));
                Observation::new(
                    after,
                    format!(
                        "{}'s route to {outside}: before via {:?}, after via {:?}",
                        victim.label(),
                        before.gateway,
                        now()
                    ),
                )
            },
        ));
    }
    out
}

/// Duplicate address detection denied: a new (tentative) address of the
/// victim is made to fail, by a DAD probe of its own or by a defending NA.
fn dad() -> Vec<Scenario> {
    let mut out = Vec::new();
    for (victim, by_na) in [
        (Victim::Proxy, false),
        (Victim::Proxy, true),
        (Victim::Backend2, false),
    ] {
        out.push(Scenario::new(
            format!(
                "DAD denial by {} -> {}'s new address fd77:1::99",
                if by_na {
                    "a defending NA"
                } else {
                    "a DAD probe (NS from ::)"
                },
                victim.label()
            ),
            victim,
            move |s| {
                let ns = s.ns(victim);
                ns.sysctl("net.ipv6.conf.eth0.accept_dad", "1").unwrap();
                let new = v6("fd77:1::99");
                ns.ip(&["addr", "add", "fd77:1::99/64", "dev", "eth0"])
                    .unwrap();
                let flags = || {
                    observe::addresses(ns, "eth0")
                        .unwrap_or_default()
                        .into_iter()
                        .find(|a| a.ip == IpAddr::V6(new))
                        .map(|a| a.flags)
                        .unwrap_or_default()
                };
                let before = flags();
                assert!(
                    before.iter().any(|f| f == "tentative"),
                    "preparation: the new address is not tentative: {before:?}"
                );
                // Again on every poll: the victim joins the solicited-node
                // group from its DAD work, which may lag a moment.
                let frame = if by_na {
                    attack::unsolicited_na(s.b1, s.b1_ll(), new)
                } else {
                    attack::dad_probe(s.b1, new)
                };
                let after = s.until(|| {
                    s.attack(std::slice::from_ref(&frame));
                    flags().iter().any(|f| f == "dadfailed")
                });
                let evidence = format!(
                    "{}'s fd77:1::99: flags before {before:?}, after {:?}",
                    victim.label(),
                    flags()
                );
                // The address is the scenario's, not the container's: gone
                // again, so the victim's own traffic keeps the addresses its
                // port is bound to (a bound port drops any other source).
                ns.ip(&["addr", "del", "fd77:1::99/64", "dev", "eth0"])
                    .unwrap();
                Observation::new(after, evidence)
            },
        ));
    }
    out
}

/// Connection attempts, whole and in fragments: TCP SYNs (answered with
/// SYN-ACK by the victim) and UDP requests (taken by its listener, which
/// answers).
fn syns_and_fragments() -> Vec<Scenario> {
    let mut out = Vec::new();
    #[derive(Clone, Copy)]
    enum Cut {
        Whole,
        /// IPv4 "tiny fragment": 8 bytes of L4 in the first fragment.
        Tiny4,
        /// IPv6: this many bytes of L4 in the first fragment.
        Frag6(usize),
    }
    let syns: [(&str, bool, Cut); 4] = [
        ("TCP SYN over IPv4", false, Cut::Whole),
        ("TCP SYN over IPv6", true, Cut::Whole),
        (
            "TCP SYN as tiny IPv4 fragments (flags in the 2nd)",
            false,
            Cut::Tiny4,
        ),
        (
            "TCP SYN as IPv6 fragments (24 bytes first)",
            true,
            Cut::Frag6(24),
        ),
    ];
    for victim in [Victim::Backend2, Victim::Proxy] {
        for (what, six, cut) in syns {
            out.push(Scenario::new(
                format!("{what} -> {} (SYN-ACK)", victim.label()),
                victim,
                move |s| {
                    let (src, dst) = if six {
                        (ip(addr::B1_6), victim.v6())
                    } else {
                        (ip(addr::B1_4), victim.v4())
                    };
                    let port = attack::fresh_port();
                    let to = s.mac(victim);
                    let frames = match cut {
                        Cut::Whole => vec![attack::tcp_syn(s.b1, to, src, dst, port, TCP_PORT)],
                        Cut::Tiny4 => attack::ipv4_fragments_tcp_syn(
                            s.b1,
                            to,
                            v4_of(src),
                            v4_of(dst),
                            port,
                            TCP_PORT,
                        ),
                        Cut::Frag6(first) => attack::ipv6_fragments_tcp_syn(
                            s.b1,
                            to,
                            v6_of(src),
                            v6_of(dst),
                            port,
                            TCP_PORT,
                            first,
                        ),
                    };
                    syn_answered(s, victim, dst, port, frames)
                },
            ));
        }
        let udps: [(&str, bool, Cut); 4] = [
            ("UDP request over IPv4", false, Cut::Whole),
            ("UDP request over IPv6", true, Cut::Whole),
            (
                "UDP request as IPv4 fragments (8 bytes first)",
                false,
                Cut::Tiny4,
            ),
            (
                "UDP request as IPv6 fragments (8 bytes first)",
                true,
                Cut::Frag6(8),
            ),
        ];
        for (what, six, cut) in udps {
            out.push(Scenario::new(
                format!("{what} -> {} (listener, echo back)", victim.label()),
                victim,
                move |s| {
                    let (src, dst) = if six {
                        (ip(addr::B1_6), victim.v6())
                    } else {
                        (ip(addr::B1_4), victim.v4())
                    };
                    let to = s.mac(victim);
                    let sport = attack::fresh_port();
                    let payload = b"tj-udp-request-with-a-longer-payload";
                    let whole = attack::udp_to(s.b1, to, src, dst, sport, UDP_PORT, payload);
                    let frames = match cut {
                        Cut::Whole => vec![whole],
                        Cut::Tiny4 => attack::ipv4_fragments(
                            s.b1,
                            to,
                            v4_of(src),
                            v4_of(dst),
                            proto::UDP,
                            &l4_of(&whole),
                            8,
                        ),
                        Cut::Frag6(first) => attack::ipv6_fragments(
                            s.b1,
                            to,
                            v6_of(src),
                            v6_of(dst),
                            proto::UDP,
                            &l4_of(&whole),
                            first,
                        ),
                    };
                    let echo = Capture::start(&s.bed.backend1, "eth0").expect("capture");
                    let mut o = datagram_arrives(s, victim, src, frames);
                    let answered = o.succeeded
                        && echo.wait_for(s.wait, |f| {
                            f.incoming()
                                && f.ip().is_some_and(|p| {
                                    p.src == dst
                                        && p.protocol == proto::UDP
                                        && p.payload.get(2..4) == Some(&sport.to_be_bytes())
                                })
                        });
                    o.evidence.push_str(if answered {
                        "; the echo came back to backend1"
                    } else {
                        "; no echo at backend1"
                    });
                    o
                },
            ));
        }
    }
    out
}

/// Connection attempts sent to the gateway's MAC, so that the host
/// routes them back onto br-m: they never cross the bridge from port to
/// port, the host's IP forwarding carries them.
fn routed() -> Vec<Scenario> {
    let mut out = Vec::new();
    for victim in [Victim::Backend2, Victim::Proxy] {
        for six in [false, true] {
            let fam = if six { "IPv6" } else { "IPv4" };
            out.push(Scenario::new(
                format!(
                    "UDP request over {fam} routed via the gateway's MAC -> {}",
                    victim.label()
                ),
                victim,
                move |s| {
                    let (src, dst) = if six {
                        (ip(addr::B1_6), victim.v6())
                    } else {
                        (ip(addr::B1_4), victim.v4())
                    };
                    udp(s, victim, src, dst, s.host, &[], None)
                },
            ));
            out.push(Scenario::new(
                format!(
                    "TCP SYN over {fam} routed via the gateway's MAC -> {} (SYN-ACK)",
                    victim.label()
                ),
                victim,
                move |s| {
                    let (src, dst) = if six {
                        (ip(addr::B1_6), victim.v6())
                    } else {
                        (ip(addr::B1_4), victim.v4())
                    };
                    let port = attack::fresh_port();
                    let f = attack::tcp_syn(s.b1, s.host, src, dst, port, TCP_PORT);
                    syn_answered(s, victim, dst, port, vec![f])
                },
            ));
        }
    }
    out
}

/// A connected UDP socket in `ns` to `to` (a bed listener, which echoes),
/// with one round trip done: the flow is known to conntrack wherever the
/// host tracks it.
fn udp_flow(ns: &Netns, to: std::net::SocketAddr) -> UdpSocket {
    let sock = ns
        .run(move || -> io::Result<UdpSocket> {
            let any: std::net::SocketAddr = if to.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let sock = UdpSocket::bind(any)?;
            sock.connect(to)?;
            sock.set_read_timeout(Some(PREPARE))?;
            sock.send(b"tj-flow")?;
            let mut buf = [0u8; 64];
            sock.recv(&mut buf)?;
            Ok(sock)
        })
        .expect("enter the namespace")
        .unwrap_or_else(|e| {
            panic!(
                "preparation: no UDP round trip from {} to {to}: {e}",
                ns.name()
            )
        });
    assert!(sock.take_error().unwrap().is_none());
    sock
}

/// An ICMP "port unreachable" (ICMPv6 "destination unreachable, port
/// unreachable") from `src` to `dst`, quoting the datagram `quoted_src`
/// → `quoted_dst` (UDP): what a router or the far end sends when the
/// datagram could not be delivered.
fn port_unreachable(
    src_mac: Mac,
    dst_mac: Mac,
    src: IpAddr,
    dst: IpAddr,
    quoted_src: std::net::SocketAddr,
    quoted_dst: std::net::SocketAddr,
) -> Vec<u8> {
    let original = attack::udp_to(
        [0; 6],
        [0; 6],
        quoted_src.ip(),
        quoted_dst.ip(),
        quoted_src.port(),
        quoted_dst.port(),
        b"tj-flow",
    );
    // The IP header and the first 8 bytes of UDP, as routers quote.
    let (ty, code, protocol, quote) = if src.is_ipv4() {
        (3, 3, proto::ICMP, 20 + 8)
    } else {
        (1, 4, proto::ICMPV6, 40 + 8)
    };
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&original[14..14 + quote]);
    attack::ip_frame(src_mac, dst_mac, src, dst, protocol, m, 64)
}

/// ICMP errors from backend1's own address (no spoofing) about flows of
/// others, which conntrack calls RELATED to those flows: a connected UDP
/// socket that takes one reports "connection refused" and the flow is
/// broken. A real attacker sweeps the source ports; here it is told the
/// port.
fn icmp_errors() -> Vec<Scenario> {
    let mut out = Vec::new();
    // (victim, whose flow to what, routed via the gateway's MAC)
    let cases: [(Victim, &str, &str, bool); 7] = [
        (Victim::Proxy, "backend2", addr::B2_4, true),
        (Victim::Proxy, "backend2", addr::B2_6, true),
        (Victim::Proxy, "backend2", addr::B2_4, false),
        (Victim::Proxy, "the outside", addr::OUTSIDE4, true),
        (Victim::Proxy, "the outside", addr::OUTSIDE6, true),
        (Victim::Host, "the proxy", addr::PROXY4, true),
        (Victim::Host, "the proxy", addr::PROXY6, true),
    ];
    for (victim, peer_name, peer, routed) in cases {
        let six = peer.contains(':');
        out.push(Scenario::new(
            format!(
                "ICMP{} port unreachable from backend1 about {}'s UDP flow to {peer_name} ({peer}){} -> {}",
                if six { "v6" } else { "" },
                victim.label(),
                match (victim, routed) {
                    (Victim::Host, _) => ", to the gateway",
                    (_, true) => ", routed via the gateway's MAC",
                    (_, false) => ", bridged",
                },
                victim.label()
            ),
            victim,
            move |s| {
                let to = std::net::SocketAddr::new(ip(peer), UDP_PORT);
                let sock = udp_flow(s.ns(victim), to);
                let local = sock.local_addr().unwrap();
                let b1 = if six { ip(addr::B1_6) } else { ip(addr::B1_4) };
                let dst_mac = if routed { s.host } else { s.mac(victim) };
                let f = port_unreachable(s.b1, dst_mac, b1, local.ip(), local, to);
                // Seen on the victim's interface (for the host: on br-m
                // before its IP layer and firewall, so only evidence).
                let cap = Capture::start(s.ns(victim), victim.ifname()).expect("capture");
                s.attack(&[f]);
                let err = Mutex::new(None);
                let after = s.until(|| match sock.take_error() {
                    Ok(Some(e)) => {
                        *err.lock().unwrap() = Some(e.to_string());
                        true
                    }
                    _ => false,
                });
                let seen = cap.count_matching(|f| {
                    f.incoming()
                        && f.ip().is_some_and(|p| {
                            p.src == b1 && (p.protocol == proto::ICMP || p.protocol == proto::ICMPV6)
                        })
                });
                Observation::new(
                    after,
                    format!(
                        "{}'s UDP socket {local} -> {to}: {}; ICMP error frames from backend1 on {}:{}: {seen}",
                        victim.label(),
                        err.lock()
                            .unwrap()
                            .clone()
                            .map_or("no error".into(), |e| format!("error \"{e}\"")),
                        victim.label(),
                        victim.ifname()
                    ),
                )
            },
        ));
    }
    out
}

/// The attacker is a container attached to br-m after the bed was built
/// (and, in a protected run, after `trafficjam apply`): a port the
/// firewall's sets do not know yet, as every container started since the
/// last update is.
fn late_port() -> Vec<Scenario> {
    let mut out = Vec::new();
    for victim in [Victim::Host, Victim::Proxy] {
        out.push(Scenario::new(
            format!(
                "gratuitous ARP for {} from a port attached after the rules -> {}'s entry, and its traffic for it reaches the attacker",
                if victim == Victim::Host { "the proxy" } else { "backend2" },
                victim.label()
            ),
            victim,
            move |s| {
                let (target, real) = if victim == Victim::Host {
                    (addr::PROXY4, s.proxy)
                } else {
                    (addr::B2_4, s.b2)
                };
                let late = Netns::new("tjlate").expect("namespace");
                s.bed
                    .host
                    .ip_batch(&[
                        format!("link add vlate type veth peer name eth0 netns {}", late.name()),
                        "link set vlate master br-m up".into(),
                    ])
                    .expect("attach a port");
                late.ip_batch(&["addr add 10.77.1.13/24 dev eth0".into(), "link set eth0 up".into()])
                    .expect("configure it");
                let mac = mac_of(&late, "eth0").expect("its MAC");
                // The bridge forwards on the new port once it has seen its
                // carrier (a link-watch event, which can lag by a second).
                let forwarding = || {
                    s.bed
                        .host
                        .iproute2("bridge", &["-j", "link", "show", "dev", "vlate"])
                        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"forwarding\""))
                };
                assert!(
                    observe::wait_until(Duration::from_secs(5), forwarding),
                    "preparation: the new port vlate never forwards"
                );
                // Only now: a new port may change the bridge's MAC (the
                // lowest of its ports'), which flushes the host's
                // neighbour table.
                learn(s, victim, target, real);
                let cap = Capture::start(&late, "eth0").expect("capture");
                s.arm();
                let garp = attack::gratuitous_arp(mac, v4(target), ArpOp::Request);
                let (ns, ifname) = (s.ns(victim), victim.ifname());
                let entry = || observe::neighbour_mac(ns, ifname, ip(target)).ok().flatten();
                // Again on every poll: the new port forwards only once the
                // bridge has seen its carrier, which may take a moment.
                let after = s.until(|| {
                    attack::send(&late, "eth0", std::slice::from_ref(&garp)).expect("send");
                    entry() == Some(mac)
                });
                let dst = v4(target);
                ns.run(move || {
                    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                    let _ = sock.send_to(b"tj-for-the-late-port", (dst, UDP_PORT));
                })
                .unwrap();
                let stolen = s.until(|| cap.contains(b"tj-for-the-late-port"));
                Observation::new(
                    after.or(stolen),
                    format!(
                        "{}'s entry for {target}: {} (real {}, attacker {}); the attacker {} {}'s datagram for {target}",
                        victim.label(),
                        entry().map_or("none".into(), format_mac),
                        format_mac(real),
                        format_mac(mac),
                        if stolen.is_some() { "received" } else { "did not receive" },
                        victim.label()
                    ),
                )
            },
        ));
    }
    out
}

/// Poll `f` for up to `wait` (every 5 ms for the first 100 ms, when
/// effects show, then every 25 ms: many checks start a process); how long
/// it took to hold, if it did.
pub fn poll_until(wait: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        let spent = start.elapsed();
        if spent >= wait {
            return None;
        }
        let pause = if spent < Duration::from_millis(100) {
            5
        } else {
            25
        };
        std::thread::sleep(Duration::from_millis(pause).min(wait - spent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate scenario names");
        assert!(before > 50, "{before}");
    }

    #[test]
    fn parallel_keeps_order() {
        let v: Vec<u32> = (0..50).collect();
        assert_eq!(
            parallel(&v, 7, |x| x * 2),
            (0..50).map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}
