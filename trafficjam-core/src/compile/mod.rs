//! From a [`Policy`] to the nftables objects that enforce it.
//!
//! Two tables per instance:
//!
//! - `bridge trafficjam-<instance>` ([`bridge`]): the container ports, what
//!   each may send, and default-deny between them. This is where
//!   containers are told apart, by port.
//! - `inet trafficjam-<instance>`: what the IP layer sees — containers
//!   reaching the host (they arrive on the bridge), and traffic the host
//!   routes between containers (a published port reached through the
//!   gateway), judged by addresses the bridge layer has already bound to
//!   their ports.
//!
//! Addresses, ports and MACs live in sets, never in rules: a network of
//! 1,000 containers is the same few dozen rules as one of 3, and a
//! container starting is one set update.

pub(crate) mod bridge;
pub(crate) mod exprs;
pub(crate) mod ingress;
pub(crate) mod update;

use std::net::IpAddr;

use ipnet::IpNet;

pub(crate) use bridge::ifname;
pub use bridge::{conntrack_probe_table, eui64_link_local, timeouts, PREROUTING_PRIORITY};
pub use ingress::{ingress_table, INGRESS_CHAIN, INGRESS_PORTS, INGRESS_PRIORITY};
pub use update::{PortUpdate, SetChange, MAX_UPDATED_PORTS};

use crate::model::{
    BaseChain, Bitwise, Chain, CmpOp, Element, Expr, Family, Field, Hook, MetaKey, PayloadBase,
    Register, Rule, Set, SetKey, Table, Value, Verdict,
};
use crate::{Policy, TABLE_COMMENT};
use exprs::{
    ct_bits, drop, established, icmpv6_types, ifname_in, l4proto, lookup, rule, Ip, CT_RELATED,
};

/// Names of the objects inside an instance's tables.
pub mod names {
    /// Managed IPv4 subnets (interval set).
    pub const SUBNETS4: &str = "subnets4";
    /// Managed IPv6 subnets (interval set).
    pub const SUBNETS6: &str = "subnets6";
    /// Whitelisted IPv4 addresses.
    pub const WHITELIST4: &str = "whitelist4";
    /// Whitelisted IPv6 addresses.
    pub const WHITELIST6: &str = "whitelist6";
    /// The managed bridges (`inet` table).
    pub const BRIDGES: &str = "bridges";
    /// Base chain on the forward hook: traffic between containers.
    pub const FORWARD: &str = "forward";
    /// Base chain on the input hook: container to host.
    pub const INPUT: &str = "input";
    /// Every container port (`bridge` table).
    pub const PORTS: &str = "ports";
    /// The ports of whitelisted containers.
    pub const PROXIES: &str = "proxies";
    /// Ports leading out of the host (`bridge` table).
    pub const UPLINKS: &str = "uplinks";
    /// `iifname . ether saddr`: each port's MAC.
    pub const MACS: &str = "macs";
    /// `iifname . ip saddr`: each port's IPv4 addresses.
    pub const ADDRS4: &str = "addrs4";
    /// `iifname . ip6 saddr`: each port's IPv6 addresses, link-local too.
    pub const ADDRS6: &str = "addrs6";
    /// `iifname . @th,64,128`: the same, as neighbour-discovery targets.
    pub const ND_TARGETS6: &str = "nd_targets6";
    /// `iifname . ether saddr . ip saddr`: each port's MAC with each of its
    /// IPv4 addresses, so a legitimate IPv4 frame is vouched for by one
    /// lookup.
    pub const BOUND4: &str = "bound4";
    /// `iifname . ether saddr . ip6 saddr`: the same for IPv6.
    pub const BOUND6: &str = "bound6";
    /// Base chain on the bridge family's prerouting hook: port security.
    pub const PREROUTING: &str = "prerouting";
    /// Base chain on the bridge family's forward hook: between ports.
    pub const BRIDGE_FORWARD: &str = "forward";
    /// Regular chain recording the flows openers start (flow sets).
    pub const RECORD: &str = "record";
    /// Regular chain judging what any other port sends (flow sets): the
    /// replies it may send, then what it may open.
    pub const FROM_PORT: &str = "from_port";
    /// Verdict map `iifname : verdict` of the bridge table: what the
    /// forward chain does with a frame by the port it came in on.
    pub const ROLES: &str = "roles";
    /// `iifname . oifname`: allowed flows to any service (`bridge` table).
    pub const ALLOW_PAIRS: &str = "allow_pairs";
    /// `iifname . oifname . meta l4proto . th dport`: allowed flows to
    /// listed services.
    pub const ALLOW_SERVICES: &str = "allow_services";
    /// `iifname . oifname`: both ends of every allowed flow, either way
    /// (their neighbour resolution).
    pub const NEIGHBOURS: &str = "neighbours";
    /// `meta l4proto . th dport`: services of whitelisted containers open
    /// to every container.
    pub const PROXY_SERVICES: &str = "proxy_services";
    /// `meta l4proto . th dport`: services of the host open to containers
    /// (`inet` table).
    pub const HOST_SERVICES: &str = "host_services";
    /// Services no container may send to (`meta l4proto . th dport`).
    pub const BLOCKED_OUTBOUND: &str = "blocked_outbound";
    /// `ip saddr . ip daddr`: allowed flows by address (`inet` table).
    pub const ALLOW4: &str = "allow4";
    /// `ip6 saddr . ip6 daddr`.
    pub const ALLOW6: &str = "allow6";
    /// `ip saddr . ip daddr . meta l4proto . th dport`.
    pub const ALLOW_SERVICES4: &str = "allow_services4";
    /// `ip6 saddr . ip6 daddr . meta l4proto . th dport`.
    pub const ALLOW_SERVICES6: &str = "allow_services6";
}

/// Priority of trafficjam's `inet` base chains and of the bridge `forward`
/// chain: just before the standard `filter` priority, so drops are counted
/// here before other tables see the packet. (A drop is final in any base
/// chain, so ordering is not what makes the policy hold.)
pub const CHAIN_PRIORITY: i32 = -10;

/// Every table trafficjam wants in the kernel for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The tables, each owned entirely by trafficjam.
    pub tables: Vec<Table>,
}

/// ICMPv6 neighbour solicitation and advertisement.
const ND: (u8, u8) = (135, 136);

impl Policy {
    /// The ruleset that enforces this policy.
    pub fn ruleset(&self) -> Ruleset {
        let mut tables = vec![self.inet_table(), self.bridge_table()];
        if let Some(rate) = self.log_blocked() {
            let log = Log {
                rate,
                group: self.instance().log_group(),
                prefix: self.instance().log_prefix(),
            };
            for table in &mut tables {
                for chain in &mut table.chains {
                    chain.rules = log.around(&chain.rules, table.family);
                }
            }
        }
        Ruleset { tables }
    }

    /// The address sets of the `inet` table.
    fn address_sets(&self) -> Vec<Set> {
        let v4 = |n: &&IpNet| matches!(n, IpNet::V4(_));
        let subnets4 = self.subnets().iter().filter(v4).copied();
        let subnets6 = self.subnets().iter().filter(|n| !v4(n)).copied();
        let [white4, white6] = self.whitelist_sets();
        vec![
            Set::new(names::SUBNETS4, SetKey::ipv4(), true, subnets4),
            Set::new(names::SUBNETS6, SetKey::ipv6(), true, subnets6),
            white4,
            white6,
            Set::of_ifnames(names::BRIDGES, self.bridges().iter().cloned()),
        ]
        .into_iter()
        .chain(self.allowed_by_address())
        .chain([
            bridge::services_set(names::PROXY_SERVICES, self.proxy_services()),
            bridge::services_set(names::HOST_SERVICES, self.host_services()),
        ])
        .collect()
    }

    /// The whitelisted addresses, IPv4 and IPv6, as the `inet` table's
    /// sets hold them (a [`PortUpdate`](crate::PortUpdate) changes their
    /// elements).
    pub(crate) fn whitelist_sets(&self) -> [Set; 2] {
        let host = |ip: &IpAddr| IpNet::from(*ip);
        let white4 = self.whitelist().iter().filter(|ip| ip.is_ipv4()).map(host);
        let white6 = self.whitelist().iter().filter(|ip| ip.is_ipv6()).map(host);
        [
            Set::new(names::WHITELIST4, SetKey::ipv4(), false, white4),
            Set::new(names::WHITELIST6, SetKey::ipv6(), false, white6),
        ]
    }

    /// The allowed flows by address, for what the IP layer sees (routed,
    /// or bridged through br_netfilter): every address of one end to every
    /// address of the other, per family. Port security binds the
    /// addresses to their ports.
    fn allowed_by_address(&self) -> Vec<Set> {
        let addrs = |port: &str| -> Vec<IpAddr> {
            self.ports()
                .iter()
                .find(|p| p.name == port)
                .map(|p| {
                    let mut a = p.addrs.clone();
                    a.push(bridge::eui64_link_local(p.mac).into());
                    a
                })
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        for ip in Ip::BOTH {
            let same = |a: &IpAddr| a.is_ipv4() == (ip == Ip::V4);
            let mut pairs = Vec::new();
            let mut services = Vec::new();
            for a in self.allowed() {
                for from in addrs(&a.from).into_iter().filter(same) {
                    for to in addrs(&a.to).into_iter().filter(same) {
                        let (f, t) = (Value::addr(from), Value::addr(to));
                        if a.services.is_empty() {
                            pairs.push(Element::of([f, t]));
                        }
                        for s in &a.services {
                            services.push(Element::of([
                                f,
                                t,
                                Value::U8(s.proto),
                                Value::U16(s.port),
                            ]));
                        }
                    }
                }
            }
            let (pairs_name, services_name) = match ip {
                Ip::V4 => (names::ALLOW4, names::ALLOW_SERVICES4),
                Ip::V6 => (names::ALLOW6, names::ALLOW_SERVICES6),
            };
            out.push(Set::of(
                pairs_name,
                SetKey::concat([ip.saddr(), ip.daddr()]),
                pairs,
            ));
            out.push(Set::of(
                services_name,
                SetKey::concat([ip.saddr(), ip.daddr(), Field::L4Proto, Field::ThDport]),
                services,
            ));
        }
        out
    }

    fn inet_table(&self) -> Table {
        let mut chains = Vec::new();
        if self.ip_forward() {
            chains.push(forward_chain());
        }
        if !self.allow_host_traffic() {
            chains.push(input_chain(!self.bridges().is_empty()));
        }
        let mut sets = self.address_sets();
        if !self.blocked_outbound().is_empty() {
            sets.push(bridge::services_set(
                names::BLOCKED_OUTBOUND,
                self.blocked_outbound(),
            ));
            block_outbound(&mut chains);
        }
        Table {
            family: Family::Inet,
            name: self.instance().table_name(),
            comment: Some(TABLE_COMMENT.to_string()),
            sets,
            chains,
        }
    }
}

/// `iifname @bridges meta l4proto . th dport @blocked_outbound drop`
/// first in every chain (an input chain of its own where host traffic is
/// allowed): before conntrack's verdicts, so no exchange makes it pass.
/// (Without a forward chain there is no routing out to block.)
fn block_outbound(chains: &mut Vec<Chain>) {
    let blocked = drop(
        [
            ifname_in(MetaKey::IifName, names::BRIDGES, false),
            lookup(
                &[Field::L4Proto, Field::ThDport],
                names::BLOCKED_OUTBOUND,
                false,
            ),
        ],
        "blocked-outbound",
    );
    if chains.iter().all(|c| c.name != names::INPUT) {
        chains.push(base_chain(names::INPUT, Hook::Input, Vec::new()));
    }
    for chain in chains {
        chain.rules.insert(0, blocked.clone());
    }
}

/// The blocked-connection log: NFLOG group, prefix and rate.
struct Log {
    rate: u32,
    group: u16,
    prefix: String,
}

impl Log {
    /// Before every dropping rule, the same matches with a rate limit and
    /// a `log` to NFLOG: every blocked attempt is reported, a flood is not.
    /// Only frames sent to one destination are logged: multicast and
    /// broadcast (a container's multicast listener reports, say) are
    /// dropped as silently as they are sent, and cannot use up the rate.
    /// Except ARP requests between containers: with ARP blocked between
    /// backends, a backend's attempt to reach another ends there, so that
    /// is the attempt to report.
    fn around(&self, rules: &[Rule], family: Family) -> Vec<Rule> {
        let mut out = Vec::with_capacity(rules.len() * 2);
        for r in rules {
            if r.exprs.last() == Some(&Expr::Verdict(Verdict::Drop)) {
                out.push(self.rule(unicast_frame(), r));
                if family == Family::Bridge && r.comment.as_deref() == Some("lateral") {
                    out.push(self.rule(arp_request(), r));
                }
            }
            out.push(r.clone());
        }
        out
    }

    fn rule(&self, mut exprs: Vec<Expr>, dropping: &Rule) -> Rule {
        exprs.extend(
            dropping
                .exprs
                .iter()
                .filter(|e| !matches!(e, Expr::Counter { .. } | Expr::Verdict(_)))
                .cloned(),
        );
        exprs.push(Expr::Limit {
            rate: u64::from(self.rate),
            unit: 1,
            burst: self.rate,
        });
        exprs.push(Expr::Log {
            group: self.group,
            prefix: self.prefix.clone(),
        });
        Rule::new(exprs)
    }
}

/// `ether type arp @nh,48,16 0x0001 oifname . arp daddr ip @addrs4`: an
/// ARP request, in the copy going to the port that holds the address it
/// asks for (a broadcast is flooded to every port; the other copies are
/// dropped too, but were not aimed at their port).
fn arp_request() -> Vec<Expr> {
    let mut e = exprs::ether_type(0x0806);
    e.push(Expr::Payload {
        base: PayloadBase::Network,
        offset: 6,
        len: 2,
        dreg: Register::R1,
    });
    e.push(exprs::cmp(CmpOp::Eq, vec![0, 1]));
    e.extend(lookup(
        &[crate::model::Field::Oifname, crate::model::Field::ArpTpa],
        names::ADDRS4,
        false,
    ));
    e
}

/// `@ll,0,8 & 0x01 == 0x00`: the destination MAC's group bit is clear.
fn unicast_frame() -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: PayloadBase::Link,
            offset: 0,
            len: 1,
            dreg: Register::R1,
        },
        Expr::Bitwise(Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            len: 1,
            mask: vec![1],
            xor: vec![0],
        }),
        exprs::cmp(CmpOp::Eq, vec![0]),
    ]
}

pub(crate) fn base_chain(name: &str, hook: Hook, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.to_string(),
        base: Some(BaseChain {
            hook,
            priority: CHAIN_PRIORITY,
            policy: Verdict::Accept,
        }),
        rules,
    }
}

/// Forwarded by the IP layer between addresses of the network: routed by
/// the host (a neighbour's published port through the gateway) or, with
/// br_netfilter, bridged (the bridge table has judged those by port
/// already). Whitelisted addresses may open connections into the subnets,
/// nobody else in the subnets may.
fn forward_chain() -> Chain {
    let mut rules = icmp_errors_from_containers();
    rules.extend([established(), neighbour_discovery()]);
    for ip in Ip::BOTH {
        rules.push(rule(
            [from_set(ip, whitelist(ip)), to_set(ip, subnets(ip))],
            false,
            Verdict::Accept,
        ));
    }
    // The exceptions the user declared: allowed pairs, to any service or to
    // listed ones, and the whitelisted containers' open services.
    for ip in Ip::BOTH {
        let (pairs, services) = match ip {
            Ip::V4 => (names::ALLOW4, names::ALLOW_SERVICES4),
            Ip::V6 => (names::ALLOW6, names::ALLOW_SERVICES6),
        };
        let mut pair = nfproto(ip);
        pair.extend(lookup(&[ip.saddr(), ip.daddr()], pairs, false));
        rules.push(rule([pair], false, Verdict::Accept));
        let mut service = nfproto(ip);
        service.extend(lookup(
            &[ip.saddr(), ip.daddr(), Field::L4Proto, Field::ThDport],
            services,
            false,
        ));
        rules.push(rule([service], false, Verdict::Accept));
        let mut to_proxy = from_set(ip, whitelist(ip));
        // `ip daddr @whitelist`: the same lookup on the destination.
        to_proxy.truncate(2);
        to_proxy.extend(lookup(&[ip.daddr()], whitelist(ip), false));
        to_proxy.extend(lookup(
            &[Field::L4Proto, Field::ThDport],
            names::PROXY_SERVICES,
            false,
        ));
        rules.push(rule([to_proxy], false, Verdict::Accept));
    }
    for ip in Ip::BOTH {
        rules.push(drop(
            [from_set(ip, subnets(ip)), to_set(ip, subnets(ip))],
            "lateral",
        ));
    }
    base_chain(names::FORWARD, Hook::Forward, rules)
}

/// Container to host: whatever arrives on a managed bridge, whatever its
/// addresses (link-local, forged, multicast) — gateway, any other host
/// address and published ports alike. Replies to the host's own
/// connections and neighbour discovery with the gateway pass. Without
/// known bridges, the source addresses tell containers apart.
fn input_chain(by_bridge: bool) -> Chain {
    let mut rules = icmp_errors_from_containers();
    rules.extend([established(), neighbour_discovery()]);
    rules.push(rule(
        [lookup(
            &[Field::L4Proto, Field::ThDport],
            names::HOST_SERVICES,
            false,
        )],
        false,
        Verdict::Accept,
    ));
    if by_bridge {
        rules.push(drop(
            [ifname_in(MetaKey::IifName, names::BRIDGES, false)],
            "to-host",
        ));
    } else {
        for ip in Ip::BOTH {
            rules.push(drop([from_set(ip, subnets(ip))], "to-host"));
        }
    }
    base_chain(names::INPUT, Hook::Input, rules)
}

/// ICMP errors sent from a managed bridge that conntrack calls related:
/// dropped before `ct state established,related` accepts them. An error
/// quoting a flow is related to that flow whoever sends it (a router on
/// the path legitimately may), so a container could otherwise send the
/// proxy, or the host, "port unreachable" for their flows and break them.
/// Containers are not routers: none of their errors is needed.
/// (The protocol first: most packets are not ICMP and fail that compare
/// without a conntrack or set lookup.)
fn icmp_errors_from_containers() -> Vec<Rule> {
    Ip::BOTH
        .into_iter()
        .map(|ip| {
            drop(
                [
                    l4proto(ip.icmp()),
                    ct_bits(crate::model::CtKey::State, CT_RELATED),
                    ifname_in(MetaKey::IifName, names::BRIDGES, false),
                ],
                "icmp-error",
            )
        })
        .collect()
}

fn subnets(ip: Ip) -> &'static str {
    match ip {
        Ip::V4 => names::SUBNETS4,
        Ip::V6 => names::SUBNETS6,
    }
}

fn whitelist(ip: Ip) -> &'static str {
    match ip {
        Ip::V4 => names::WHITELIST4,
        Ip::V6 => names::WHITELIST6,
    }
}

/// `icmpv6 type 135-136 accept`: neighbour solicitation and advertisement
/// are never tracked by conntrack, and without them IPv6 between a
/// container and its neighbours or its gateway stops resolving addresses.
/// (Router advertisements and redirects from containers are not needed;
/// the bridge layer drops them.)
pub(crate) fn neighbour_discovery() -> Rule {
    let mut exprs = nfproto(Ip::V6);
    exprs.extend(icmpv6_types(ND.0, ND.1));
    exprs.push(Expr::Verdict(Verdict::Accept));
    Rule::new(exprs)
}

/// `meta nfproto ipv4|ipv6`: the dependency nft adds before matching an
/// IP header field in an `inet` table.
fn nfproto(ip: Ip) -> Vec<Expr> {
    exprs::meta_is(MetaKey::NfProto, vec![ip.nfproto()])
}

/// `ip saddr @set` (with its nfproto dependency).
fn from_set(ip: Ip, set: &str) -> Vec<Expr> {
    let mut exprs = nfproto(ip);
    exprs.extend(lookup(&[ip.saddr()], set, false));
    exprs
}

/// `ip daddr @set`, after [`from_set`] of the same family.
fn to_set(ip: Ip, set: &str) -> Vec<Expr> {
    lookup(&[ip.daddr()], set, false)
}
