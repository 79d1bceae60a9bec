//! Isolation between container bridges, for runtimes that configure their
//! networks through CNI (containerd, nerdctl, Podman): the rules behind
//! `trafficjam-cni`'s three `ingressPolicy` values.
//!
//! Every mode isolates the managed bridges from each other (Docker's
//! "isolation stages"): a container on one managed bridge cannot open a
//! connection to a container on another. On top of that:
//!
//! | mode | inside one bridge |
//! |---|---|
//! | [`IngressPolicy::SameBridge`] | everything allowed |
//! | [`IngressPolicy::Isolated`] | no container-to-container traffic |
//! | [`IngressPolicy::ProxyOnly`] | the trafficjam [`Policy`]: only whitelisted containers open connections |
//!
//! Connections DNAT-ed by the host (ports published by `portmap`) stay
//! allowed across bridges: a published port is public anyway, so reaching
//! it through the host's address is not lateral movement. Inside an
//! isolated bridge they are not (that would be container to container on
//! the bridge); inside a proxy-only bridge the [`Policy`] decides, as for
//! Docker: backends do not reach each other's published ports. Without
//! `allow_host_traffic` containers cannot open connections to the host.
//!
//! The whole state of all managed bridges compiles to one [`Ruleset`]: the
//! shared tables `inet`/`bridge` [`ISOLATION_TABLE`] and, per proxy-only
//! bridge, the tables of its [`Policy`]. A change is one transaction that
//! makes the kernel hold exactly that ruleset.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::compile::bridge::{port_security, port_sets, PREROUTING_PRIORITY};
use crate::compile::exprs::{ct_any, established};
use crate::compile::{base_chain, neighbour_discovery};
use crate::model::{
    BaseChain, Chain, CmpOp, CtKey, Element, Expr, Family, Field, Hook, MetaKey, Register, Rule,
    Set, SetKey, Table, Value, Verdict,
};
use crate::{InstanceId, Policy, PolicyError, Port, Ruleset, TABLE_COMMENT, TABLE_PREFIX};

/// The shared tables of bridge isolation (one per family).
pub const ISOLATION_TABLE: &str = "trafficjam-cni";

/// Names inside the shared tables.
pub mod names {
    /// Every managed bridge (`ifname` set).
    pub const BRIDGES: &str = "bridges";
    /// Bridges whose containers may not open connections to the host.
    pub const NO_HOST: &str = "nohost";
    /// Host-side ports of the containers on isolated bridges.
    pub const ISOLATED_PORTS: &str = "isolated_ports";
    /// `iifname . meta l4proto . th dport`: host services open to the
    /// containers of a bridge.
    pub const HOST_SERVICES: &str = "host_services";
}

/// What is allowed between containers of the same bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum IngressPolicy {
    /// Everything (only other bridges are kept out).
    #[default]
    SameBridge,
    /// Nothing.
    Isolated,
    /// Only connections opened by whitelisted containers.
    ProxyOnly,
}

impl IngressPolicy {
    /// The configuration spelling: `same-bridge`, `isolated`, `proxy-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            IngressPolicy::SameBridge => "same-bridge",
            IngressPolicy::Isolated => "isolated",
            IngressPolicy::ProxyOnly => "proxy-only",
        }
    }

    /// Parse the configuration spelling.
    pub fn parse(s: &str) -> Option<IngressPolicy> {
        [
            IngressPolicy::SameBridge,
            IngressPolicy::Isolated,
            IngressPolicy::ProxyOnly,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// The exceptions declared for a bridge: flows between its containers
/// (proxy-only bridges), services of its whitelisted containers open to
/// all (proxy-only), services of the host open to its containers (every
/// mode).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exceptions {
    /// Flows allowed between two of its containers' ports.
    pub allowed: Vec<crate::Allowed>,
    /// Services of the whitelisted containers every container may reach.
    pub proxy_services: Vec<crate::Service>,
    /// Services of the host its containers may reach.
    pub host_services: Vec<crate::Service>,
}

/// One managed bridge and what is known of its containers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bridge {
    /// The bridge's interface name.
    pub name: String,
    /// What is allowed inside it.
    pub ingress: IngressPolicy,
    /// Whether its containers may open connections to the host.
    pub allow_host_traffic: bool,
    /// The subnets its containers' addresses are in.
    pub subnets: Vec<IpNet>,
    /// Addresses of whitelisted containers (used by `ProxyOnly`).
    pub whitelist: Vec<IpAddr>,
    /// The containers' host-side ports where known: each sends only with
    /// its own MAC and addresses (port security, in every mode); an
    /// isolated bridge drops everything between them; a proxy-only bridge
    /// tells whitelisted containers ([`crate::Role::Proxy`]) by port.
    pub ports: Vec<Port>,
    /// What is opened again.
    pub exceptions: Exceptions,
}

/// Why a [`BridgeIsolation`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsolationError {
    /// A bridge name is not a valid interface name.
    #[error("invalid bridge name {0:?}: {1}")]
    InvalidBridge(String, &'static str),
    /// The same bridge is listed twice.
    #[error("bridge {0} is listed twice")]
    Duplicate(String),
    /// Two bridge names give the same table name.
    #[error("bridges {0} and {1} would share the table of instance {2}; rename one")]
    SameInstance(String, String, String),
    /// The policy of a proxy-only bridge is invalid.
    #[error("bridge {0}: {1}")]
    Policy(String, PolicyError),
}

/// The isolation of every managed bridge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgeIsolation {
    bridges: Vec<Bridge>,
}

impl BridgeIsolation {
    /// Validate the bridges (sorted by name, so the rules do not depend on
    /// the order they were given in).
    pub fn new(
        bridges: impl IntoIterator<Item = Bridge>,
    ) -> Result<BridgeIsolation, IsolationError> {
        let mut bridges: Vec<Bridge> = bridges.into_iter().collect();
        bridges.sort_by(|a, b| a.name.cmp(&b.name));
        let mut instances = std::collections::BTreeMap::new();
        for (i, b) in bridges.iter().enumerate() {
            check_ifname(&b.name)
                .map_err(|why| IsolationError::InvalidBridge(b.name.clone(), why))?;
            if i > 0 && bridges[i - 1].name == b.name {
                return Err(IsolationError::Duplicate(b.name.clone()));
            }
            let id = instance_of(&b.name);
            if let Some(other) = instances.insert(id.clone(), b.name.clone()) {
                return Err(IsolationError::SameInstance(
                    other,
                    b.name.clone(),
                    id.to_string(),
                ));
            }
        }
        let out = BridgeIsolation { bridges };
        // Surface invalid proxy-only policies now, not at apply time.
        for b in &out.bridges {
            out.proxy_policy(b)?;
        }
        Ok(out)
    }

    /// The managed bridges, sorted by name.
    pub fn bridges(&self) -> &[Bridge] {
        &self.bridges
    }

    /// True for every table a [`BridgeIsolation`] ruleset may contain:
    /// tables it finds in the kernel that are not in the current ruleset
    /// are left over from bridges no longer managed, and go.
    pub fn owns(name: &str) -> bool {
        name == ISOLATION_TABLE
            || name
                .strip_prefix(ISOLATION_TABLE)
                .is_some_and(|rest| rest.starts_with('-'))
    }

    /// Every table that enforces the isolation; empty when no bridge is
    /// managed (then nothing should be left in the kernel).
    pub fn ruleset(&self) -> Ruleset {
        if self.bridges.is_empty() {
            return Ruleset { tables: Vec::new() };
        }
        let mut tables = vec![self.inet_table()];
        if let Some(t) = self.bridge_table() {
            tables.push(t);
        }
        for b in &self.bridges {
            if let Ok(Some(policy)) = self.proxy_policy(b) {
                tables.extend(policy.ruleset().tables);
            }
        }
        Ruleset { tables }
    }

    fn proxy_policy(&self, b: &Bridge) -> Result<Option<Policy>, IsolationError> {
        if b.ingress != IngressPolicy::ProxyOnly {
            return Ok(None);
        }
        let err = |e| IsolationError::Policy(b.name.clone(), e);
        let policy = Policy::new(
            instance_of(&b.name),
            b.subnets.iter().copied(),
            b.whitelist.iter().copied(),
            b.allow_host_traffic,
        )
        .map_err(err)?
        .with_bridges([b.name.clone()])
        .map_err(err)?
        .with_ports(b.ports.iter().cloned())
        .map_err(err)?
        .with_allowed(b.exceptions.allowed.iter().cloned())
        .map_err(err)?
        .with_proxy_services(b.exceptions.proxy_services.iter().copied())
        .with_host_services(b.exceptions.host_services.iter().copied());
        Ok(Some(policy))
    }

    fn names_where(&self, keep: impl Fn(&Bridge) -> bool) -> Vec<String> {
        self.bridges
            .iter()
            .filter(|b| keep(b))
            .map(|b| b.name.clone())
            .collect()
    }

    fn inet_table(&self) -> Table {
        let mut forward = vec![established()];
        for b in self
            .bridges
            .iter()
            .filter(|b| b.ingress == IngressPolicy::Isolated)
        {
            // Inside an isolated bridge: bridged and passed to the IP layer
            // by br_netfilter, or hairpinned through a port a neighbour
            // publishes (before the DNAT exception: that is container to
            // container on the bridge too, whichever way it is routed).
            let mut exprs = ifname_is(MetaKey::IifName, CmpOp::Eq, &b.name);
            exprs.extend(ifname_is(MetaKey::OifName, CmpOp::Eq, &b.name));
            forward.push(counted_drop(exprs).commented("isolated"));
        }
        forward.push(dnat());
        for b in &self.bridges {
            // Leaving this bridge for another managed one.
            let mut exprs = ifname_is(MetaKey::IifName, CmpOp::Eq, &b.name);
            exprs.extend(ifname_is(MetaKey::OifName, CmpOp::Neq, &b.name));
            exprs.extend(ifname_in(MetaKey::OifName, names::BRIDGES));
            forward.push(counted_drop(exprs).commented("cross-bridge"));
        }
        let input = vec![
            established(),
            neighbour_discovery(),
            {
                let mut e = crate::compile::exprs::lookup(
                    &[Field::Iifname, Field::L4Proto, Field::ThDport],
                    names::HOST_SERVICES,
                    false,
                );
                e.push(Expr::Verdict(Verdict::Accept));
                Rule::new(e)
            },
            counted_drop(ifname_in(MetaKey::IifName, names::NO_HOST)).commented("to-host"),
        ];
        let host_services = self
            .bridges
            .iter()
            .filter(|b| b.ingress != IngressPolicy::ProxyOnly)
            .flat_map(|b| {
                b.exceptions.host_services.iter().map(|s| {
                    Element::of([
                        crate::compile::ifname(&b.name),
                        Value::U8(s.proto),
                        Value::U16(s.port),
                    ])
                })
            });
        Table {
            family: Family::Inet,
            name: ISOLATION_TABLE.to_string(),
            comment: Some(TABLE_COMMENT.to_string()),
            sets: vec![
                Set::of_ifnames(names::BRIDGES, self.names_where(|_| true)),
                Set::of_ifnames(names::NO_HOST, self.names_where(|b| !b.allow_host_traffic)),
                Set::of(
                    names::HOST_SERVICES,
                    SetKey::concat([Field::Iifname, Field::L4Proto, Field::ThDport]),
                    host_services,
                ),
            ],
            chains: vec![
                base_chain(crate::names::FORWARD, Hook::Forward, forward),
                base_chain(crate::names::INPUT, Hook::Input, input),
            ],
        }
    }

    /// The bridge layer of the bridges that are not proxy-only (those have
    /// their policy's own): port security for every known container port,
    /// and for isolated bridges nothing at all between two container ports
    /// — any ethertype, with or without br_netfilter.
    fn bridge_table(&self) -> Option<Table> {
        let shared = || {
            self.bridges
                .iter()
                .filter(|b| b.ingress != IngressPolicy::ProxyOnly)
        };
        let ports: Vec<Port> = shared().flat_map(|b| b.ports.iter().cloned()).collect();
        let isolated: Vec<String> = shared()
            .filter(|b| b.ingress == IngressPolicy::Isolated)
            .flat_map(|b| b.ports.iter().map(|p| p.name.clone()))
            .collect();
        if ports.is_empty() {
            return None;
        }
        let mut exprs = ifname_in(MetaKey::IifName, names::ISOLATED_PORTS);
        exprs.extend(ifname_in(MetaKey::OifName, names::ISOLATED_PORTS));
        let mut sets = port_sets(&ports, None);
        sets.push(Set::of_ifnames(names::ISOLATED_PORTS, isolated));
        Some(Table {
            family: Family::Bridge,
            name: ISOLATION_TABLE.to_string(),
            comment: Some(TABLE_COMMENT.to_string()),
            sets,
            chains: vec![
                Chain {
                    name: crate::names::PREROUTING.to_string(),
                    base: Some(BaseChain {
                        hook: Hook::Prerouting,
                        priority: PREROUTING_PRIORITY,
                        policy: Verdict::Accept,
                    }),
                    rules: port_security(),
                },
                base_chain(
                    crate::names::BRIDGE_FORWARD,
                    Hook::Forward,
                    vec![counted_drop(exprs).commented("isolated")],
                ),
            ],
        })
    }
}

/// The instance owning a proxy-only bridge's tables: `cni-<bridge>`, with
/// characters an instance id cannot hold replaced by `_`.
pub fn instance_of(bridge: &str) -> InstanceId {
    let safe = InstanceId::sanitize(bridge);
    // "cni-" + at most 15 characters: always a valid id.
    InstanceId::new(&format!("cni-{safe}")).unwrap_or_default()
}

/// The table name of a proxy-only bridge's tables.
pub fn table_of(bridge: &str) -> String {
    format!("{TABLE_PREFIX}{}", instance_of(bridge))
}

fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 15 {
        return Err("longer than 15 bytes (IFNAMSIZ)");
    }
    if name
        .bytes()
        .any(|c| c == 0 || c == b'/' || c.is_ascii_whitespace())
    {
        return Err("contains NUL, '/' or whitespace");
    }
    Ok(())
}

/// `iifname "x"` / `oifname != "x"`: the name NUL-padded to IFNAMSIZ, as
/// nft compares it (an exact match, not a prefix).
fn ifname_is(key: MetaKey, op: CmpOp, name: &str) -> Vec<Expr> {
    let mut data = name.as_bytes().to_vec();
    data.resize(16, 0);
    vec![
        Expr::Meta {
            key,
            dreg: Register::R1,
        },
        Expr::Cmp {
            sreg: Register::R1,
            op,
            data,
        },
    ]
}

/// `iifname @set` / `oifname @set`.
fn ifname_in(key: MetaKey, set: &str) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key,
            dreg: Register::R1,
        },
        Expr::Lookup {
            set: set.to_string(),
            sreg: Register::R1,
            invert: false,
        },
    ]
}

fn counted_drop(mut exprs: Vec<Expr>) -> Rule {
    exprs.push(Expr::Counter {
        packets: 0,
        bytes: 0,
    });
    exprs.push(Expr::Verdict(Verdict::Drop));
    Rule::new(exprs)
}

/// `ct status dnat accept`: connections to a published port, DNAT-ed by
/// the host, whichever bridge the container behind it is on.
fn dnat() -> Rule {
    // IPS_DST_NAT: bit 5 of enum ip_conntrack_status.
    ct_any(CtKey::Status, 1 << 5, Verdict::Accept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(name: &str, ingress: IngressPolicy) -> Bridge {
        Bridge {
            name: name.into(),
            ingress,
            allow_host_traffic: false,
            subnets: vec!["10.88.1.0/24".parse().unwrap()],
            whitelist: vec![],
            ports: vec![port(&format!("veth-{name}"), name.len() as u8, "10.88.1.5")],
            ..Default::default()
        }
    }

    fn port(name: &str, n: u8, ip: &str) -> Port {
        Port {
            name: name.into(),
            role: crate::Role::Backend,
            mac: [2, 0, 0, 0, 0, n],
            addrs: vec![ip.parse().unwrap()],
        }
    }

    fn text(iso: &BridgeIsolation) -> String {
        iso.ruleset()
            .tables
            .iter()
            .map(crate::text::table)
            .collect()
    }

    #[test]
    fn no_bridge_no_table() {
        assert!(BridgeIsolation::default().ruleset().tables.is_empty());
    }

    #[test]
    fn every_mode_keeps_bridges_apart_and_published_ports_open() {
        let iso = BridgeIsolation::new([
            bridge("cni2", IngressPolicy::SameBridge),
            bridge("cni1", IngressPolicy::SameBridge),
        ])
        .unwrap();
        let t = text(&iso);
        assert!(t.contains("ct status dnat accept"), "{t}");
        for b in ["cni1", "cni2"] {
            let rule = format!("iifname \"{b}\" oifname != \"{b}\" oifname @bridges");
            assert!(t.contains(&rule), "{t}");
        }
        assert!(t.contains("elements = { \"cni1\", \"cni2\" }"), "{t}");
        // same-bridge only: port security, but no same-bridge drop.
        let tables = iso.ruleset().tables;
        assert_eq!(tables.len(), 2);
        assert!(tables[1]
            .set(names::ISOLATED_PORTS)
            .unwrap()
            .elements
            .is_empty());
        assert!(t.contains("spoofed-mac"), "{t}");
        assert!(!t.contains("oifname \"cni1\""), "{t}");
    }

    #[test]
    fn isolated_drops_inside_the_bridge_at_both_layers() {
        let iso = BridgeIsolation::new([bridge("cni1", IngressPolicy::Isolated)]).unwrap();
        let tables = iso.ruleset().tables;
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[1].family, Family::Bridge);
        assert_eq!(
            tables[1].set(names::ISOLATED_PORTS).unwrap().ifnames(),
            ["veth-cni1"]
        );
        let t = text(&iso);
        assert!(t.contains("iifname \"cni1\" oifname \"cni1\""), "{t}");
        // Any ethertype: the drop names no protocol.
        assert!(
            t.contains(
                "iifname @isolated_ports oifname @isolated_ports counter packets 0 bytes 0 drop"
            ),
            "{t}"
        );
    }

    #[test]
    fn proxy_only_adds_the_trafficjam_policy_of_the_bridge() {
        let mut b = bridge("cni1", IngressPolicy::ProxyOnly);
        b.whitelist = vec!["10.88.1.2".parse().unwrap()];
        let mut proxy = port("veth-proxy", 9, "10.88.1.2");
        proxy.role = crate::Role::Proxy;
        b.ports.push(proxy);
        let iso = BridgeIsolation::new([b.clone()]).unwrap();
        let names: Vec<String> = iso
            .ruleset()
            .tables
            .iter()
            .map(|t| format!("{} {}", t.family, t.name))
            .collect();
        assert_eq!(
            names,
            [
                "inet trafficjam-cni",
                "inet trafficjam-cni-cni1",
                "bridge trafficjam-cni-cni1"
            ]
        );
        assert!(names
            .iter()
            .all(|n| BridgeIsolation::owns(n.split(' ').nth(1).unwrap())));
        // A whitelisted address outside the bridge's subnets is refused.
        b.whitelist = vec!["10.99.0.2".parse().unwrap()];
        assert!(matches!(
            BridgeIsolation::new([b]),
            Err(IsolationError::Policy(..))
        ));
    }

    #[test]
    fn bad_names_and_collisions_are_refused() {
        let e =
            BridgeIsolation::new([bridge("a-very-long-bridge-name", IngressPolicy::SameBridge)]);
        assert!(matches!(e, Err(IsolationError::InvalidBridge(..))));
        let e = BridgeIsolation::new([
            bridge("br.0", IngressPolicy::SameBridge),
            bridge("br_0", IngressPolicy::SameBridge),
        ]);
        assert!(matches!(e, Err(IsolationError::SameInstance(..))));
        let e = BridgeIsolation::new([
            bridge("br0", IngressPolicy::SameBridge),
            bridge("br0", IngressPolicy::Isolated),
        ]);
        assert!(matches!(e, Err(IsolationError::Duplicate(..))));
        assert!(!BridgeIsolation::owns("trafficjam-cnix"));
        assert!(!BridgeIsolation::owns("trafficjam-default"));
    }
}
