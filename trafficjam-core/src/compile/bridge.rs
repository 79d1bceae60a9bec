//! The bridge layer: default-deny between the container ports of the
//! managed bridges, and port security, in the `bridge` family.
//!
//! It sees every frame a container sends, whatever br_netfilter does, and
//! it knows which port a frame came in on and leaves by — which the IP
//! hooks do not (they see the bridge). So containers are told apart by
//! port, never by the addresses they claim:
//!
//! - `prerouting` (before the bridge learns the source MAC): a frame from a
//!   container port must carry the port's MAC; IPv4, ARP and IPv6 must claim
//!   only the port's addresses (ARP and neighbour advertisements included);
//!   router advertisements and redirects are dropped; any other ethertype,
//!   and any VLAN tag, is dropped.
//! - `forward` (between two ports): a whitelisted port may send anything; the
//!   flows it opens are remembered, so their replies pass; a backend reaches
//!   a whitelisted port with those replies and neighbour resolution only, and
//!   another backend not at all.
//!
//! Containers reaching the host are the `inet` table's business (its input
//! chain sees them arrive on the bridge, whatever their address).

use crate::model::{
    BaseChain, Chain, CmpOp, Element, Expr, Family, Field, Hook, Ifname, MapVerdict, MetaKey,
    PayloadBase, Register, Rule, Set, SetKey, Table, Value, Verdict,
};
use crate::policy::{Port, Role};
use crate::{Policy, Tracking, TABLE_COMMENT};

use super::exprs::{
    cmp, drop, established, ether_type, icmp_type, icmpv6_types, ifname_in, l4proto, lookup,
    meta_is_not, rule, tcp_flags_any, tcp_flags_none, update, Ip, TCP, UDP,
};
use super::names;

/// How long the bridge layer remembers a flow a whitelisted port opened.
///
/// A TCP flow's timeout is set by the packets that say where it is: a SYN
/// from the whitelisted side starts it with [`OPENING_SECS`], a segment with
/// PSH (data) from either side moves it to [`TCP_SECS`], a FIN or RST from
/// either side to [`CLOSING_SECS`]; bare ACKs leave it alone. So one set
/// entry per connection is written a handful of times in its life, not on
/// every packet, and a closed connection is forgotten after half a minute
/// even though a bare ACK follows the last FIN.
///
/// [`OPENING_SECS`]: timeouts::OPENING_SECS
/// [`TCP_SECS`]: timeouts::TCP_SECS
/// [`CLOSING_SECS`]: timeouts::CLOSING_SECS
pub mod timeouts {
    /// A TCP connection whose SYN was sent and that has carried no data yet
    /// (conntrack's `syn_sent`).
    pub const OPENING_SECS: u64 = 120;
    /// A TCP connection that carried data (conntrack keeps established ones
    /// for days; an idle websocket must survive a night).
    pub const TCP_SECS: u64 = 86_400;
    /// A TCP connection after a FIN or RST from either side (conntrack's
    /// `last_ack`). Closed connections are most of what the sets hold: at
    /// `time_wait`'s two minutes, a proxy opening some 2,200 connections a
    /// second kept them full.
    pub const CLOSING_SECS: u64 = 30;
    /// A UDP flow (conntrack's `udp_timeout_stream`).
    pub const UDP_SECS: u64 = 120;
    /// An echo request awaiting its reply.
    pub const PING_SECS: u64 = 30;
    /// At most this many flows per set (conntrack's usual maximum); when a
    /// set is full, a new TCP or UDP flow is dropped (`flows-full`) until
    /// room is made, the flows it holds pass on.
    pub const FLOWS: u32 = 262_144;
}

/// The priority of the port-security chain: before conntrack (-200), so a
/// forged frame never creates a connection, and before br_netfilter (0).
pub const PREROUTING_PRIORITY: i32 = -300;

/// ARP over Ethernet for IPv4: hardware type 1, protocol 0x0800, address
/// lengths 6 and 4 — the only layout whose fields the rules can read.
const ARP_ETHER_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];
/// `ETH_P_ARP`
const ARP: u16 = 0x0806;
/// ICMP redirect.
const ICMP_REDIRECT: u8 = 5;
/// ICMPv6 router advertisement, neighbour solicitation and advertisement,
/// redirect.
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
/// TCP FIN and RST.
const FIN_RST: u8 = 0x01 | 0x04;
/// TCP SYN.
const SYN: u8 = 0x02;
/// TCP PSH: the segment carries data the sender pushed.
const PSH: u8 = 0x08;

/// The verdicts of the `roles` map: what the forward chain does with a
/// frame from a whitelisted port, and from any other port of the network.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roles {
    proxy: MapVerdict,
    other: MapVerdict,
}

impl Roles {
    /// The roles of a table tracking flows this way: with flow sets, a
    /// whitelisted port's frames are recorded and any other port's are
    /// judged in `from_port`; with conntrack, the former are accepted and
    /// the latter go on through the forward chain.
    pub(crate) fn of(tracking: Tracking) -> Roles {
        match tracking {
            Tracking::FlowSets => Roles {
                proxy: MapVerdict::goto(names::RECORD),
                other: MapVerdict::goto(names::FROM_PORT),
            },
            Tracking::Conntrack => Roles {
                proxy: MapVerdict::Accept,
                other: MapVerdict::Continue,
            },
        }
    }

    /// The `roles` element of port `name`.
    pub(crate) fn element(self, name: &str, proxy: bool) -> Element {
        let verdict = if proxy { self.proxy } else { self.other };
        // A key of one value and its verdict always fit an element; were
        // it not so, a keyless element would be left out when encoding.
        Element::mapped(&[ifname(name)], verdict).unwrap_or_else(|| Element::of([ifname(name)]))
    }
}

impl Policy {
    /// The bridge-family table of the policy.
    pub(crate) fn bridge_table(&self) -> Table {
        let roles = Roles::of(self.tracking());
        let mut sets = port_sets(self.ports(), Some(roles));
        // Remote ports open connections as whitelisted ports do, and
        // backends reach them as they reach a whitelisted port.
        // Unidentified ports are ports with no MAC and no address: every
        // frame they send fails the first check of port security.
        let remote = self.remote_ports();
        let unidentified = self.unidentified();
        let names_of = |ports: &[String]| -> Vec<Element> {
            ports.iter().map(|n| Element::one(ifname(n))).collect()
        };
        add_to(&mut sets, names::PROXIES, names_of(remote));
        add_to(&mut sets, names::PORTS, names_of(unidentified));
        add_to(
            &mut sets,
            names::ROLES,
            remote
                .iter()
                .map(|n| roles.element(n, true))
                .chain(unidentified.iter().map(|n| roles.element(n, false)))
                .collect(),
        );
        sets.push(Set::of_ifnames(
            names::UPLINKS,
            self.uplinks().iter().cloned(),
        ));
        sets.extend(self.allowed_sets());
        let (forward, regular) = match self.tracking() {
            Tracking::FlowSets => {
                for ip in Ip::BOTH {
                    sets.extend(flow_sets(ip));
                }
                let (forward, from_port) = forward_with_flow_sets();
                let regular = vec![
                    Chain {
                        name: names::FROM_PORT.to_string(),
                        base: None,
                        rules: from_port,
                    },
                    Chain {
                        name: names::RECORD.to_string(),
                        base: None,
                        rules: record_chain(),
                    },
                ];
                (forward, regular)
            }
            Tracking::Conntrack => (forward_with_conntrack(), Vec::new()),
        };
        Table {
            family: Family::Bridge,
            name: self.instance().table_name(),
            comment: Some(TABLE_COMMENT.to_string()),
            sets,
            chains: vec![
                Chain {
                    name: names::PREROUTING.to_string(),
                    base: Some(BaseChain {
                        hook: Hook::Prerouting,
                        priority: PREROUTING_PRIORITY,
                        policy: Verdict::Accept,
                    }),
                    rules: port_security(),
                },
                super::base_chain(names::BRIDGE_FORWARD, Hook::Forward, forward),
            ]
            .into_iter()
            .chain(regular)
            .collect(),
        }
    }

    /// The allowed flows between ports, as the bridge layer looks them up.
    fn allowed_sets(&self) -> Vec<Set> {
        let pairs = self
            .allowed()
            .iter()
            .filter(|a| a.services.is_empty())
            .map(|a| Element::of([ifname(&a.from), ifname(&a.to)]));
        let services = self.allowed().iter().flat_map(|a| {
            a.services.iter().map(|s| {
                Element::of([
                    ifname(&a.from),
                    ifname(&a.to),
                    Value::U8(s.proto),
                    Value::U16(s.port),
                ])
            })
        });
        let both_ways = self.allowed().iter().flat_map(|a| {
            [
                Element::of([ifname(&a.from), ifname(&a.to)]),
                Element::of([ifname(&a.to), ifname(&a.from)]),
            ]
        });
        vec![
            Set::of(
                names::ALLOW_PAIRS,
                SetKey::concat([Field::Iifname, Field::Oifname]),
                pairs,
            ),
            Set::of(
                names::ALLOW_SERVICES,
                SetKey::concat([
                    Field::Iifname,
                    Field::Oifname,
                    Field::L4Proto,
                    Field::ThDport,
                ]),
                services,
            ),
            Set::of(
                names::NEIGHBOURS,
                SetKey::concat([Field::Iifname, Field::Oifname]),
                both_ways,
            ),
            services_set(names::PROXY_SERVICES, self.proxy_services()),
        ]
    }
}

/// Add `extra` to set `name` of `sets`, kept sorted and deduplicated as
/// compiled sets are. (Sets of hundreds of ports are built on every Docker
/// event: nothing is sorted again when there is nothing to add.)
fn add_to(sets: &mut [Set], name: &str, extra: Vec<Element>) {
    if extra.is_empty() {
        return;
    }
    if let Some(set) = sets.iter_mut().find(|s| s.name == name) {
        set.elements.extend(extra);
        set.elements.sort();
        set.elements.dedup();
    }
}

/// An interface name as a set value. Names are checked when the policy is
/// made; one that could not be an interface's would become the empty name,
/// which no interface has (it matches nothing).
pub(crate) fn ifname(name: &str) -> Value {
    Value::Ifname(Ifname::new(name).unwrap_or_default())
}

/// A set of `meta l4proto . th dport`.
pub(crate) fn services_set(name: &str, services: &[crate::Service]) -> Set {
    Set::of(
        name,
        SetKey::concat([Field::L4Proto, Field::ThDport]),
        services
            .iter()
            .map(|s| Element::of([Value::U8(s.proto), Value::U16(s.port)])),
    )
}

/// What each port is and may send as.
/// With `roles`, the `roles` map too (a table whose forward chain
/// dispatches by port); without, that map is left out.
pub(crate) fn port_sets(ports: &[Port], roles: Option<Roles>) -> Vec<Set> {
    // Built on every event for hundreds of ports: each port's values are
    // made once (inline copies, nothing allocated per element), and each
    // set is filled in one pass (ports come sorted by name, so the sets
    // nearly are).
    // (Sized up front: grown by doubling, the sets were copied a dozen
    // times each.)
    let mut sets: [Vec<Element>; PORT_SETS.len()] =
        std::array::from_fn(|_| Vec::with_capacity(ports.len()));
    for p in ports {
        port_elements(p, roles, |set, e| sets[set].push(e));
    }
    PORT_SETS
        .iter()
        .zip(port_set_keys())
        .zip(sets)
        .filter_map(|((name, key), elements)| match *name {
            names::ROLES => roles.map(|_| Set::verdict_map(name, key, elements)),
            _ => Some(Set::of(name, key, elements)),
        })
        .collect()
}

/// The sets that say what each port is and may send as, in the order of
/// the table; [`port_elements`] gives each element with the index of its
/// set in this list.
pub(crate) const PORT_SETS: [&str; 9] = [
    names::PORTS,
    names::PROXIES,
    names::MACS,
    names::ADDRS4,
    names::ADDRS6,
    names::ND_TARGETS6,
    names::BOUND4,
    names::BOUND6,
    names::ROLES,
];
/// The index of `ports` (every container port's name) in [`PORT_SETS`].
pub(crate) const PORTS_SET: usize = 0;
/// The index of the `roles` map in [`PORT_SETS`].
pub(crate) const ROLES_SET: usize = 8;

/// The keys of [`PORT_SETS`], in the same order.
fn port_set_keys() -> [SetKey; PORT_SETS.len()] {
    let key = |f: Field| SetKey::concat([Field::Iifname, f]);
    let bound = |f: Field| SetKey::concat([Field::Iifname, Field::EtherSaddr, f]);
    [
        SetKey::ifname(),
        SetKey::ifname(),
        key(Field::EtherSaddr),
        key(Field::IpSaddr),
        key(Field::Ip6Saddr),
        key(Field::NdTarget),
        bound(Field::IpSaddr),
        bound(Field::Ip6Saddr),
        SetKey::ifname(),
    ]
}

/// The elements port `p` gives the sets of [`PORT_SETS`], each with the
/// index of its set. Every element begins with the port's name, so no two
/// ports give the same one: what a port gives is exactly what removing it
/// takes away (see [`Policy::port_update`]).
pub(crate) fn port_elements(p: &Port, roles: Option<Roles>, mut put: impl FnMut(usize, Element)) {
    let name = ifname(&p.name);
    let mac = Value::Ether(p.mac);
    put(PORTS_SET, Element::of([name]));
    if p.role == Role::Proxy {
        put(1, Element::of([name]));
    }
    if let Some(roles) = roles {
        put(ROLES_SET, roles.element(&p.name, p.role == Role::Proxy));
    }
    put(2, Element::of([name, mac]));
    let link_local = std::net::IpAddr::from(eui64_link_local(p.mac));
    let v6 = p.addrs.iter().filter(|a| a.is_ipv6()).chain([&link_local]);
    for a in p.addrs.iter().filter(|a| a.is_ipv4()) {
        put(3, Element::of([name, Value::addr(*a)]));
        put(6, Element::of([name, mac, Value::addr(*a)]));
    }
    for a in v6 {
        put(4, Element::of([name, Value::addr(*a)]));
        // The same addresses, keyed as the target of a neighbour
        // advertisement (nft types the raw field apart from `ip6
        // saddr`).
        put(5, Element::of([name, Value::addr(*a)]));
        put(7, Element::of([name, mac, Value::addr(*a)]));
    }
}

/// A bridge-family table with one `ct state` rule in a regular chain: the
/// kernel accepts it only if it has conntrack for bridged frames
/// (nf_conntrack_bridge). Created and deleted in one batch, it tells
/// [`Tracking::Conntrack`] is available without leaving anything behind.
pub fn conntrack_probe_table(name: &str) -> Table {
    Table {
        family: Family::Bridge,
        name: name.to_string(),
        comment: None,
        sets: Vec::new(),
        chains: vec![Chain {
            name: "probe".to_string(),
            base: None,
            rules: vec![established()],
        }],
    }
}

/// The IPv6 link-local address Linux gives an interface with this MAC by
/// default (modified EUI-64): a container's `fe80::` source is bound to its
/// port without anyone having to report it.
pub fn eui64_link_local(mac: crate::model::Mac) -> std::net::Ipv6Addr {
    let mut b = [0u8; 16];
    b[0] = 0xfe;
    b[1] = 0x80;
    b[8] = mac[0] ^ 0x02;
    b[9] = mac[1];
    b[10] = mac[2];
    b[11] = 0xff;
    b[12] = 0xfe;
    b[13] = mac[3];
    b[14] = mac[4];
    b[15] = mac[5];
    b.into()
}

/// `prerouting`: every frame from a container port carries the port's own
/// MAC and addresses, and is IPv4, ARP or IPv6 without VLAN tag.
///
/// Ordered for the common case: an IPv4 frame that is not ICMP, or an
/// IPv6 frame that is not ICMPv6, whose port, MAC and address are one
/// element of `bound4` (`bound6`) passes after one lookup (only ports are
/// in those sets, so a frame from elsewhere goes on). Everything else goes
/// through the checks one by one, which also tell what was wrong with a
/// dropped frame; ICMP only after the redirects are dropped.
pub(crate) fn port_security() -> Vec<Rule> {
    let from_port = |set: &str, invert| ifname_in(MetaKey::IifName, set, invert);
    let v4 = || ether_type(Ip::V4.ethertype());
    let v6 = || ether_type(Ip::V6.ethertype());
    let arp = || ether_type(ARP);
    let bound4 = || {
        lookup(
            &[Field::Iifname, Field::EtherSaddr, Field::IpSaddr],
            names::BOUND4,
            false,
        )
    };
    vec![
        rule(
            [
                v4(),
                meta_is_not(MetaKey::L4Proto, vec![Ip::V4.icmp()]),
                bound4(),
            ],
            false,
            Verdict::Accept,
        ),
        rule(
            [
                v6(),
                meta_is_not(MetaKey::L4Proto, vec![Ip::V6.icmp()]),
                lookup(
                    &[Field::Iifname, Field::EtherSaddr, Field::Ip6Saddr],
                    names::BOUND6,
                    false,
                ),
            ],
            false,
            Verdict::Accept,
        ),
        rule([from_port(names::PORTS, true)], false, Verdict::Accept),
        drop([v4(), icmp_type(Ip::V4, ICMP_REDIRECT)], "router"),
        rule([v4(), bound4()], false, Verdict::Accept),
        drop(
            [lookup(
                &[Field::Iifname, Field::EtherSaddr],
                names::MACS,
                true,
            )],
            "spoofed-mac",
        ),
        // The port's MAC, so not one of its addresses.
        drop([v4()], "spoofed-ip"),
        drop([arp(), arp_header_is_not_ether_ipv4()], "malformed-arp"),
        drop(
            [
                arp(),
                lookup(&[Field::Iifname, Field::ArpSha], names::MACS, true),
            ],
            "spoofed-arp",
        ),
        drop(
            [
                arp(),
                lookup(&[Field::Iifname, Field::ArpSpa], names::ADDRS4, true),
            ],
            "spoofed-arp",
        ),
        rule([arp()], false, Verdict::Accept),
        // Duplicate address detection: a solicitation from `::` for one
        // of the port's own addresses (for another's, it could make that
        // container give up its address).
        rule(
            [
                v6(),
                unspecified_ip6_source(),
                icmp_type(Ip::V6, ND_NEIGHBOR_SOLICIT),
                lookup(
                    &[Field::Iifname, Field::NdTarget],
                    names::ND_TARGETS6,
                    false,
                ),
            ],
            false,
            Verdict::Accept,
        ),
        drop(
            [
                v6(),
                lookup(&[Field::Iifname, Field::Ip6Saddr], names::ADDRS6, true),
            ],
            "spoofed-ip",
        ),
        drop([v6(), icmp_type(Ip::V6, ND_ROUTER_ADVERT)], "router"),
        drop([v6(), icmp_type(Ip::V6, ND_REDIRECT)], "router"),
        drop(
            [
                v6(),
                icmp_type(Ip::V6, ND_NEIGHBOR_ADVERT),
                lookup(&[Field::Iifname, Field::NdTarget], names::ND_TARGETS6, true),
            ],
            "spoofed-nd",
        ),
        rule([v6()], false, Verdict::Accept),
        // Everything else: other ethertypes, 802.3 frames, VLAN tags.
        drop([], "non-ip"),
    ]
}

/// `@nh,0,48 != 0x000108000604`.
fn arp_header_is_not_ether_ipv4() -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: PayloadBase::Network,
            offset: 0,
            len: 6,
            dreg: Register::R1,
        },
        cmp(CmpOp::Neq, ARP_ETHER_IPV4.to_vec()),
    ]
}

/// `ip6 saddr ::`.
fn unspecified_ip6_source() -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: PayloadBase::Network,
            offset: 8,
            len: 16,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, vec![0; 16]),
    ]
}

/// The dynamic sets remembering the flows whitelisted ports opened, keyed
/// by the backend's port and the flow as the whitelisted side sent it.
fn flow_sets(ip: Ip) -> Vec<Set> {
    let d = ip.digit();
    vec![
        Set::dynamic(
            &format!("tcp{d}"),
            SetKey::concat(flow(ip, TCP, true)),
            timeouts::FLOWS,
        ),
        Set::dynamic(
            &format!("udp{d}"),
            SetKey::concat(flow(ip, UDP, true)),
            timeouts::FLOWS,
        ),
        Set::dynamic(
            &format!("ping{d}"),
            SetKey::concat(ping(ip, true)),
            timeouts::FLOWS,
        ),
    ]
}

/// A TCP or UDP flow: `iifname . ip saddr . ip daddr . tcp sport . tcp
/// dport` as the port that opened it sends it (`outbound`), or the same key
/// read from a reply (`oifname . ip daddr . ip saddr . tcp dport . tcp
/// sport`).
///
/// The opener's port is in the key: a reply passes only back to the port
/// that opened the flow. A container that gets a departed proxy's address
/// is on another port, so a backend cannot reach it over that proxy's old
/// flows. The other end needs no port in the key: port security lets no
/// other port send with its address.
fn flow(ip: Ip, proto: u8, outbound: bool) -> Vec<Field> {
    let (sport, dport) = if proto == TCP {
        (Field::TcpSport, Field::TcpDport)
    } else {
        (Field::UdpSport, Field::UdpDport)
    };
    if outbound {
        vec![Field::Iifname, ip.saddr(), ip.daddr(), sport, dport]
    } else {
        vec![Field::Oifname, ip.daddr(), ip.saddr(), dport, sport]
    }
}

/// An echo exchange: `iifname . ip saddr . ip daddr . icmp id`, or the
/// same read from the reply (see [`flow`]).
fn ping(ip: Ip, outbound: bool) -> Vec<Field> {
    if outbound {
        vec![Field::Iifname, ip.saddr(), ip.daddr(), ip.echo_id()]
    } else {
        vec![Field::Oifname, ip.daddr(), ip.saddr(), ip.echo_id()]
    }
}

/// What may open connections between ports besides a whitelisted port
/// (which the `roles` map dispatches): an allowed pair (to any service of
/// the other, or to the listed ones), and anyone to a whitelisted port's
/// open services. Each is a match; what follows it (record the flow, or accept) is the caller's.
fn openers() -> [Vec<Expr>; 3] {
    [
        lookup(&[Field::Iifname, Field::Oifname], names::ALLOW_PAIRS, false),
        lookup(
            &[
                Field::Iifname,
                Field::Oifname,
                Field::L4Proto,
                Field::ThDport,
            ],
            names::ALLOW_SERVICES,
            false,
        ),
        {
            let mut e = ifname_in(MetaKey::OifName, names::PROXIES, false);
            e.extend(lookup(
                &[Field::L4Proto, Field::ThDport],
                names::PROXY_SERVICES,
                false,
            ));
            e
        },
    ]
}

/// Between ports, without conntrack: the flows an opener starts are
/// written to the flow sets as they pass (the `record` chain), and any
/// other frame between two ports passes only as a reply found there, or
/// as the neighbour resolution an allowed flow needs (`from_port`).
///
/// One lookup dispatches a frame by its port (`roles`): a whitelisted
/// port's frames go to `record`, any other port's to `from_port`, where a
/// reply passes after one more (the flow's). A frame from a port that is
/// not the network's is left alone unless it goes to one of its ports.
/// Returns the forward chain's rules and `from_port`'s.
fn forward_with_flow_sets() -> (Vec<Rule>, Vec<Rule>) {
    let [_, from_uplink, to_uplink] = not_between_ports();
    let [pairs, services, to_proxy] = openers();
    let record = || Verdict::Goto(names::RECORD.to_string());
    let forward = vec![
        dispatch_by_port(),
        rule(
            [ifname_in(MetaKey::OifName, names::PORTS, true)],
            false,
            Verdict::Accept,
        ),
        rule([], false, Verdict::Goto(names::FROM_PORT.to_string())),
    ];
    let mut rules = Vec::new();
    for ip in Ip::BOTH {
        let d = ip.digit();
        let tcp = format!("tcp{d}");
        let (udp, ping_set) = (format!("udp{d}"), format!("ping{d}"));
        let et = || ether_type(ip.ethertype());
        let back_tcp = flow(ip, TCP, false);
        // A reply moves its flow's timeout only when it closes or carries
        // data (the lookup first: a backend never creates an entry).
        let reply_moves = |flags, secs| {
            rule(
                [
                    et(),
                    tcp_flags_any(flags),
                    lookup(&back_tcp, &tcp, false),
                    update(&back_tcp, &tcp, secs),
                ],
                false,
                Verdict::Accept,
            )
        };
        rules.extend([
            // Most replies move nothing (a SYN-ACK, a bare ACK): first.
            rule(
                [
                    et(),
                    tcp_flags_none(FIN_RST | PSH),
                    lookup(&back_tcp, &tcp, false),
                ],
                false,
                Verdict::Accept,
            ),
            reply_moves(FIN_RST, timeouts::CLOSING_SECS),
            reply_moves(PSH, timeouts::TCP_SECS),
            rule(
                [
                    et(),
                    l4proto(UDP),
                    lookup(&flow(ip, UDP, false), &udp, false),
                ],
                false,
                Verdict::Accept,
            ),
            rule(
                [
                    et(),
                    icmp_type(ip, ip.echo_reply()),
                    lookup(&ping(ip, false), &ping_set, false),
                ],
                false,
                Verdict::Accept,
            ),
        ]);
    }
    rules.extend([from_uplink, to_uplink]);
    for opener in [pairs, services, to_proxy] {
        rules.push(rule([opener], false, record()));
    }
    rules.extend(neighbours_of_allowed());
    rules.extend(backend_to_proxy_neighbours());
    rules.push(drop([], "to-proxy"));
    (forward, rules)
}

/// `iifname vmap @roles`: what [`Roles`] says of the port a frame came in
/// on; a frame from any other port goes on to the next rule.
fn dispatch_by_port() -> Rule {
    Rule::new(vec![
        Expr::Meta {
            key: MetaKey::IifName,
            dreg: Register::R1,
        },
        Expr::VerdictMap {
            set: names::ROLES.to_string(),
            sreg: Register::R1,
        },
    ])
}

/// `record`: remember the flow a frame of an opener starts (or goes on
/// with), then accept it.
fn record_chain() -> Vec<Rule> {
    // First, a bare ACK (a third of what an opener sends on a short
    // connection): it changes no flow, and the rules below would all be
    // walked to accept it at the end. Not a first fragment too short to
    // hold the flags: the load fails and the rule does not match.
    let mut rules = vec![rule(
        [tcp_flags_none(FIN_RST | SYN | PSH)],
        false,
        Verdict::Accept,
    )];
    for ip in Ip::BOTH {
        let d = ip.digit();
        let tcp = format!("tcp{d}");
        let (udp, ping_set) = (format!("udp{d}"), format!("ping{d}"));
        let et = || ether_type(ip.ethertype());
        let out_tcp = flow(ip, TCP, true);
        let moves = |flags, secs| {
            rule(
                [et(), tcp_flags_any(flags), update(&out_tcp, &tcp, secs)],
                false,
                Verdict::Accept,
            )
        };
        rules.extend([
            // First match wins: a FIN or RST closes the flow whatever else
            // it carries; a SYN (re)opens it; data keeps it open. Any of
            // them also re-creates a flow the set lost (a restart, a full
            // set), so its replies pass again from the next one on.
            moves(FIN_RST, timeouts::CLOSING_SECS),
            moves(SYN, timeouts::OPENING_SECS),
            moves(PSH, timeouts::TCP_SECS),
            rule(
                [
                    et(),
                    l4proto(UDP),
                    update(&flow(ip, UDP, true), &udp, timeouts::UDP_SECS),
                ],
                false,
                Verdict::Accept,
            ),
            rule(
                [
                    et(),
                    icmp_type(ip, ip.echo_request()),
                    update(&ping(ip, true), &ping_set, timeouts::PING_SECS),
                ],
                false,
                Verdict::Accept,
            ),
        ]);
    }
    // A new flow the sets have no room for ends here, counted: passed on,
    // it would only have its replies dropped, and counted as `to-proxy`
    // as if a backend had attacked. (A SYN or datagram of a flow the sets
    // hold refreshed it above.)
    rules.push(drop([tcp_flags_any(SYN)], "flows-full"));
    rules.push(drop([l4proto(UDP)], "flows-full"));
    // Whatever else an opener sends: pings, other protocols, fragments.
    rules.push(rule([], false, Verdict::Accept));
    rules
}

/// Between ports, with conntrack in the bridge family: a whitelisted
/// port's frames are accepted by their port (`roles`), any other's go on.
fn forward_with_conntrack() -> Vec<Rule> {
    let mut rules = vec![dispatch_by_port(), established()];
    rules.extend(not_between_ports());
    for opener in openers() {
        rules.push(rule([opener], false, Verdict::Accept));
    }
    rules.extend(neighbours_of_allowed());
    rules.extend(backend_to_proxy_neighbours());
    rules.push(drop([], "to-proxy"));
    rules
}

/// ARP and neighbour solicitations and advertisements between the two
/// ends of an allowed flow, either way.
fn neighbours_of_allowed() -> [Rule; 2] {
    let pair = || lookup(&[Field::Iifname, Field::Oifname], names::NEIGHBOURS, false);
    [
        rule([ether_type(ARP), pair()], false, Verdict::Accept),
        rule(
            [
                ether_type(Ip::V6.ethertype()),
                icmpv6_types(ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT),
                pair(),
            ],
            false,
            Verdict::Accept,
        ),
    ]
}

/// Frames between two ports that are neither container ports of the
/// network (another bridge's) are not this table's business; nor is
/// traffic to or from an uplink (outside the host).
fn not_between_ports() -> [Rule; 3] {
    [
        rule(
            [
                ifname_in(MetaKey::IifName, names::PORTS, true),
                ifname_in(MetaKey::OifName, names::PORTS, true),
            ],
            false,
            Verdict::Accept,
        ),
        rule(
            [ifname_in(MetaKey::IifName, names::UPLINKS, false)],
            false,
            Verdict::Accept,
        ),
        rule(
            [ifname_in(MetaKey::OifName, names::UPLINKS, false)],
            false,
            Verdict::Accept,
        ),
    ]
}

/// After openers, replies and allowed neighbours: a backend's frame to
/// another backend (or to a port not yet known) is dropped, and to a
/// whitelisted port only ARP and neighbour solicitations and
/// advertisements pass (port security has vouched for their content).
fn backend_to_proxy_neighbours() -> Vec<Rule> {
    vec![
        drop(
            [ifname_in(MetaKey::OifName, names::PROXIES, true)],
            "lateral",
        ),
        rule([ether_type(ARP)], false, Verdict::Accept),
        rule(
            [
                ether_type(Ip::V6.ethertype()),
                icmpv6_types(ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT),
            ],
            false,
            Verdict::Accept,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_of_a_mac_is_linux_default() {
        // What the kernel gave a veth with ce:ef:08:50:a6:9d on this machine.
        assert_eq!(
            eui64_link_local([0xce, 0xef, 0x08, 0x50, 0xa6, 0x9d]).to_string(),
            "fe80::ccef:8ff:fe50:a69d"
        );
    }
}
