//! From a [`Policy`] to the nftables objects that enforce it.
//!
//! One `inet` table per instance, so IPv4 and IPv6 share one set of chains
//! and one transaction. Addresses live in sets, never in rules: a policy
//! with 10,000 whitelisted addresses is still a handful of rules, and a
//! whitelist change is a set-element update rather than a rule rewrite.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    BaseChain, Bitwise, Chain, CmpOp, CtKey, Expr, Family, Hook, MetaKey, PayloadBase, Register,
    Rule, Set, SetKey, Table, Verdict,
};
use crate::{Policy, TABLE_COMMENT};

/// Names of the objects inside an instance's table.
pub mod names {
    /// Managed IPv4 subnets (interval set).
    pub const SUBNETS4: &str = "subnets4";
    /// Managed IPv6 subnets (interval set).
    pub const SUBNETS6: &str = "subnets6";
    /// Whitelisted IPv4 addresses.
    pub const WHITELIST4: &str = "whitelist4";
    /// Whitelisted IPv6 addresses.
    pub const WHITELIST6: &str = "whitelist6";
    /// Base chain on the forward hook: container to container.
    pub const FORWARD: &str = "forward";
    /// Base chain on the input hook: container to host.
    pub const INPUT: &str = "input";
    /// Bridge ports the whitelisted addresses are bound to.
    pub const WHITELIST_PORTS: &str = "whitelist_ports";
    /// Base chain on the bridge family's forward hook: frames bridged
    /// between containers, whether or not br_netfilter passes them to the
    /// IP layer.
    pub const BRIDGE_FORWARD: &str = "forward";
}

/// Priority of trafficjam's base chains: just before the standard `filter`
/// priority, so drops are counted here before other tables see the packet.
/// (A drop is final in any base chain, so ordering is not what makes the
/// policy hold.)
pub const CHAIN_PRIORITY: i32 = -10;

/// Every table trafficjam wants in the kernel for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The tables, each owned entirely by trafficjam.
    pub tables: Vec<Table>,
}

/// An IP version, for choosing header offsets and set names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ip {
    V4,
    V6,
}

impl Ip {
    /// The ethertype, as `meta protocol` loads it (network byte order).
    fn ethertype(self) -> [u8; 2] {
        match self {
            Ip::V4 => 0x0800u16.to_be_bytes(),
            Ip::V6 => 0x86ddu16.to_be_bytes(),
        }
    }
    /// The ICMP protocol number of this IP version.
    fn icmp(self) -> u8 {
        match self {
            Ip::V4 => 1,
            Ip::V6 => 58,
        }
    }
    /// The ICMP echo-request type of this IP version.
    fn echo_request(self) -> u8 {
        match self {
            Ip::V4 => 8,
            Ip::V6 => 128,
        }
    }
    fn nfproto(self) -> u8 {
        match self {
            Ip::V4 => 2,
            Ip::V6 => 10,
        }
    }
    fn subnets(self) -> &'static str {
        match self {
            Ip::V4 => names::SUBNETS4,
            Ip::V6 => names::SUBNETS6,
        }
    }
    fn whitelist(self) -> &'static str {
        match self {
            Ip::V4 => names::WHITELIST4,
            Ip::V6 => names::WHITELIST6,
        }
    }
    /// (offset, length) of the source address in the network header; the
    /// destination follows it directly.
    fn saddr(self) -> (u32, u32) {
        match self {
            Ip::V4 => (12, 4),
            Ip::V6 => (8, 16),
        }
    }
}

impl Policy {
    /// The ruleset that enforces this policy.
    pub fn ruleset(&self) -> Ruleset {
        let mut tables = vec![self.inet_table(), self.bridge_table()];
        if let Some(rate) = self.log_blocked() {
            let (group, prefix) = (self.instance().log_group(), self.instance().log_prefix());
            for chain in tables.iter_mut().flat_map(|t| t.chains.iter_mut()) {
                chain.rules = with_logging(&chain.rules, rate, group, &prefix);
            }
        }
        Ruleset { tables }
    }

    /// The address sets, the same in every table (sets belong to a table).
    fn sets(&self) -> Vec<Set> {
        let v4 = |n: &&IpNet| matches!(n, IpNet::V4(_));
        let subnets4 = self.subnets().iter().filter(v4).copied();
        let subnets6 = self.subnets().iter().filter(|n| !v4(n)).copied();
        let host = |ip: &IpAddr| IpNet::from(*ip);
        let white4 = self.whitelist().iter().filter(|ip| ip.is_ipv4()).map(host);
        let white6 = self.whitelist().iter().filter(|ip| ip.is_ipv6()).map(host);
        vec![
            Set::new(names::SUBNETS4, SetKey::Ipv4, true, subnets4),
            Set::new(names::SUBNETS6, SetKey::Ipv6, true, subnets6),
            Set::new(names::WHITELIST4, SetKey::Ipv4, false, white4),
            Set::new(names::WHITELIST6, SetKey::Ipv6, false, white6),
        ]
    }

    /// The bridge layer: enforced on frames bridged between containers even
    /// when bridged traffic does not pass the IP hooks (no br_netfilter, or
    /// `bridge-nf-call-iptables=0`). Conntrack for the bridge family
    /// (nf_conntrack_bridge) is not available on every kernel, so this layer
    /// is stateless; see [`bridge_chain`] for exactly what it lets through.
    fn bridge_table(&self) -> Table {
        let mut sets = self.sets();
        let mut chain = bridge_chain();
        if !self.whitelist_ports().is_empty() {
            sets.push(Set::of_ifnames(
                names::WHITELIST_PORTS,
                self.whitelist_ports().iter().cloned(),
            ));
            // Right after neighbour discovery: before any accept.
            let spoofed = [Ip::V4, Ip::V6].map(anti_spoof);
            chain.rules.splice(1..1, spoofed);
        }
        Table {
            family: Family::Bridge,
            name: self.instance().table_name(),
            comment: Some(TABLE_COMMENT.to_string()),
            sets,
            chains: vec![chain],
        }
    }

    fn inet_table(&self) -> Table {
        let mut chains = vec![forward_chain()];
        if !self.allow_host_traffic() {
            chains.push(input_chain());
        }
        Table {
            family: Family::Inet,
            name: self.instance().table_name(),
            comment: Some(TABLE_COMMENT.to_string()),
            sets: self.sets(),
            chains,
        }
    }
}

/// Before every dropping rule, the same matches with a rate limit and a
/// `log` to NFLOG: every blocked attempt is reported, a flood is not.
fn with_logging(rules: &[Rule], rate: u32, group: u16, prefix: &str) -> Vec<Rule> {
    let mut out = Vec::with_capacity(rules.len() * 2);
    for r in rules {
        if r.exprs.last() == Some(&Expr::Verdict(Verdict::Drop)) {
            let mut exprs: Vec<Expr> = r
                .exprs
                .iter()
                .filter(|e| !matches!(e, Expr::Counter { .. } | Expr::Verdict(_)))
                .cloned()
                .collect();
            exprs.push(Expr::Limit {
                rate: u64::from(rate),
                unit: 1,
                burst: rate,
            });
            exprs.push(Expr::Log {
                group,
                prefix: prefix.to_string(),
            });
            out.push(Rule { exprs });
        }
        out.push(r.clone());
    }
    out
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

/// Container to container: whitelisted sources may open connections into
/// the subnets, every other source inside the subnets may not.
fn forward_chain() -> Chain {
    let mut rules = vec![established(), neighbour_discovery()];
    for ip in [Ip::V4, Ip::V6] {
        rules.push(rule(
            [from_set(ip, ip.whitelist()), to_set(ip, ip.subnets())],
            false,
            Verdict::Accept,
        ));
    }
    for ip in [Ip::V4, Ip::V6] {
        rules.push(rule(
            [from_set(ip, ip.subnets()), to_set(ip, ip.subnets())],
            true,
            Verdict::Drop,
        ));
    }
    base_chain(names::FORWARD, Hook::Forward, rules)
}

/// The bridge layer, stateless, for frames between two containers:
///
/// 1. IPv6 neighbour discovery passes;
/// 2. from a whitelisted address into the subnets: passes;
/// 3. from the subnets to a whitelisted address: a TCP SYN without ACK
///    (a new connection) and an ICMP echo request are dropped; everything
///    else passes, because without conntrack a reply cannot be told from a
///    request. This is the degraded part: a backend can send UDP datagrams
///    and non-SYN TCP segments to the proxy (it cannot open a TCP
///    connection or ping it);
/// 4. anything else between two addresses of the subnets is dropped.
///
/// With br_netfilter on, the stateful IP layer sees the same frames too and
/// drops what this layer lets through.
fn bridge_chain() -> Chain {
    let mut rules = vec![bridge_neighbour_discovery()];
    for ip in [Ip::V4, Ip::V6] {
        rules.push(bridge_rule(
            ip,
            [from_addr(ip, ip.whitelist()), to_set(ip, ip.subnets())],
            false,
            Verdict::Accept,
        ));
    }
    for ip in [Ip::V4, Ip::V6] {
        let to_proxy = || [from_addr(ip, ip.subnets()), to_set(ip, ip.whitelist())];
        let [a, b] = to_proxy();
        rules.push(bridge_rule(ip, [a, b, tcp_syn_only()], true, Verdict::Drop));
        let [a, b] = to_proxy();
        rules.push(bridge_rule(
            ip,
            [a, b, icmp_echo_request(ip)],
            true,
            Verdict::Drop,
        ));
        rules.push(bridge_rule(ip, to_proxy(), false, Verdict::Accept));
    }
    for ip in [Ip::V4, Ip::V6] {
        rules.push(bridge_rule(
            ip,
            [from_addr(ip, ip.subnets()), to_set(ip, ip.subnets())],
            true,
            Verdict::Drop,
        ));
    }
    Chain {
        name: names::BRIDGE_FORWARD.to_string(),
        base: Some(BaseChain {
            hook: Hook::Forward,
            priority: CHAIN_PRIORITY,
            policy: Verdict::Accept,
        }),
        rules,
    }
}

/// `meta iifname != @whitelist_ports ip saddr @whitelist4 counter drop`:
/// a whitelisted source address arriving on any other bridge port is
/// forged, whatever its MAC address says.
fn anti_spoof(ip: Ip) -> Rule {
    let mut exprs = vec![
        Expr::Meta {
            key: MetaKey::IifName,
            dreg: Register::R1,
        },
        Expr::Lookup {
            set: names::WHITELIST_PORTS.to_string(),
            sreg: Register::R1,
            invert: true,
        },
        Expr::Meta {
            key: MetaKey::Protocol,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, ip.ethertype().to_vec()),
    ];
    exprs.extend(from_addr(ip, ip.whitelist()));
    exprs.push(Expr::Counter {
        packets: 0,
        bytes: 0,
    });
    exprs.push(Expr::Verdict(Verdict::Drop));
    Rule { exprs }
}

/// A bridge-family rule: `meta protocol ip|ip6` first (the dependency nft
/// adds before an IP header match in a bridge table), then the matches.
fn bridge_rule<const N: usize>(
    ip: Ip,
    matches: [Vec<Expr>; N],
    counter: bool,
    verdict: Verdict,
) -> Rule {
    let mut r = rule(matches, counter, verdict);
    let mut exprs = vec![
        Expr::Meta {
            key: MetaKey::Protocol,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, ip.ethertype().to_vec()),
    ];
    exprs.append(&mut r.exprs);
    Rule { exprs }
}

/// `ip saddr @set` without a family dependency (the caller adds it).
fn from_addr(ip: Ip, set: &str) -> Vec<Expr> {
    addr_lookup(ip, ip.saddr().0, set)
}

/// `tcp flags & (syn | ack) == syn`: the first segment of a connection.
fn tcp_syn_only() -> Vec<Expr> {
    const TCP: u8 = 6;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    vec![
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, vec![TCP]),
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: 13,
            len: 1,
            dreg: Register::R1,
        },
        Expr::Bitwise(Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            len: 1,
            mask: vec![SYN | ACK],
            xor: vec![0],
        }),
        cmp(CmpOp::Eq, vec![SYN]),
    ]
}

/// `icmp type echo-request` / `icmpv6 type echo-request`.
fn icmp_echo_request(ip: Ip) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, vec![ip.icmp()]),
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: 0,
            len: 1,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, vec![ip.echo_request()]),
    ]
}

/// Neighbour discovery in the bridge layer: `meta protocol ip6` instead of
/// `meta nfproto ipv6`, then the same ICMPv6 type range.
fn bridge_neighbour_discovery() -> Rule {
    let mut exprs = vec![
        Expr::Meta {
            key: MetaKey::Protocol,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, Ip::V6.ethertype().to_vec()),
    ];
    exprs.extend(neighbour_discovery().exprs.into_iter().skip(2));
    Rule { exprs }
}

/// Container to host: any address of the host, gateway or not, published
/// ports included (they are reached through the host's addresses).
fn input_chain() -> Chain {
    let mut rules = vec![established(), neighbour_discovery()];
    for ip in [Ip::V4, Ip::V6] {
        rules.push(rule([from_set(ip, ip.subnets())], true, Verdict::Drop));
    }
    base_chain(names::INPUT, Hook::Input, rules)
}

/// A rule from match fragments, an optional counter and a verdict.
fn rule<const N: usize>(matches: [Vec<Expr>; N], counter: bool, verdict: Verdict) -> Rule {
    let mut exprs: Vec<Expr> = matches.into_iter().flatten().collect();
    if counter {
        exprs.push(Expr::Counter {
            packets: 0,
            bytes: 0,
        });
    }
    exprs.push(Expr::Verdict(verdict));
    Rule { exprs }
}

/// `ct state established,related accept`
pub(crate) fn established() -> Rule {
    // NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED).
    ct_any(CtKey::State, 2 | 4, Verdict::Accept)
}

/// `ct KEY & MASK != 0 VERDICT`: any of the bits set. Conntrack keys are
/// host-endian u32s, as the kernel stores them.
pub(crate) fn ct_any(key: CtKey, mask: u32, verdict: Verdict) -> Rule {
    Rule {
        exprs: vec![
            Expr::Ct {
                key,
                dreg: Register::R1,
            },
            Expr::Bitwise(Bitwise {
                sreg: Register::R1,
                dreg: Register::R1,
                len: 4,
                mask: mask.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            }),
            Expr::Cmp {
                sreg: Register::R1,
                op: CmpOp::Neq,
                data: vec![0; 4],
            },
            Expr::Verdict(verdict),
        ],
    }
}

/// `icmpv6 type 133-137 accept`: router and neighbour solicitation and
/// advertisement, and redirect. These are never tracked by conntrack, so
/// without this rule IPv6 between a container and its neighbours or its
/// gateway stops resolving addresses.
pub(crate) fn neighbour_discovery() -> Rule {
    const ICMPV6: u8 = 58;
    const ND_FIRST: u8 = 133;
    const ND_LAST: u8 = 137;
    let mut exprs = nfproto(Ip::V6);
    exprs.extend([
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, vec![ICMPV6]),
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: 0,
            len: 1,
            dreg: Register::R1,
        },
        cmp(CmpOp::Gte, vec![ND_FIRST]),
        cmp(CmpOp::Lte, vec![ND_LAST]),
        Expr::Verdict(Verdict::Accept),
    ]);
    Rule { exprs }
}

fn cmp(op: CmpOp, data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: Register::R1,
        op,
        data,
    }
}

/// `meta nfproto ipv4|ipv6`: the dependency nft adds before matching an
/// IP header field in an `inet` table.
fn nfproto(ip: Ip) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::NfProto,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, vec![ip.nfproto()]),
    ]
}

/// `ip saddr @set` (with its nfproto dependency).
fn from_set(ip: Ip, set: &str) -> Vec<Expr> {
    let mut exprs = nfproto(ip);
    exprs.extend(addr_lookup(ip, ip.saddr().0, set));
    exprs
}

/// `ip daddr @set`, for use after [`from_set`] of the same family.
fn to_set(ip: Ip, set: &str) -> Vec<Expr> {
    let (offset, len) = ip.saddr();
    addr_lookup(ip, offset + len, set)
}

fn addr_lookup(ip: Ip, offset: u32, set: &str) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len: ip.saddr().1,
            dreg: Register::R1,
        },
        Expr::Lookup {
            set: set.to_string(),
            sreg: Register::R1,
            invert: false,
        },
    ]
}
