//! What a table found in the kernel enforces, in policy terms.
//!
//! `status` reads trafficjam's tables back from the kernel; this module
//! turns such a table into the policy it enforces and checks that the
//! table is exactly what that policy would install, so tampering (a rule
//! deleted, a chain flushed) shows up as `intact: false`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::compile::{eui64_link_local, names};
use crate::model::{Expr, Family, Mac, Table, Value};
use crate::wire::without_state;
use crate::{Allowed, InstanceId, Policy, Port, Role, Service, Tracking};

/// Drop counters of one chain, or of one kind of traffic, summed over the
/// counting rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ChainCounters {
    /// Table family and chain (`inet forward`), or the kind of traffic the
    /// rules stopped (`spoofed-mac`, `lateral`, `to-host`…).
    pub chain: String,
    /// Packets dropped.
    pub packets: u64,
    /// Bytes dropped.
    pub bytes: u64,
}

/// A container port as the kernel's sets describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PortView {
    /// The port's interface name.
    pub name: String,
    /// `proxy` or `backend`.
    pub role: &'static str,
    /// The one source MAC the port accepts.
    pub mac: String,
    /// The source addresses the port accepts (its IPv6 link-local address
    /// included).
    pub addrs: Vec<IpAddr>,
}

/// An allowed flow as the kernel's sets describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AllowedView {
    /// The port that may open connections.
    pub from: String,
    /// The port they may go to.
    pub to: String,
    /// `5432/tcp`…; empty for any.
    pub services: Vec<String>,
}

/// The policy a kernel table enforces, and whether the table is intact.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Enforced {
    /// Instance owning the table.
    pub instance: String,
    /// `family name` of each of the instance's tables.
    pub table: String,
    /// Managed subnets.
    pub subnets: Vec<IpNet>,
    /// Whitelisted addresses.
    pub whitelist: Vec<IpAddr>,
    /// Whether containers may reach the host.
    pub allow_host_traffic: bool,
    /// The managed bridges.
    pub bridges: Vec<String>,
    /// The container ports, with what each may send as.
    pub ports: Vec<PortView>,
    /// Ports whose container is not identified yet: nothing they send
    /// passes.
    pub unidentified: Vec<String>,
    /// Bridge ports leading out of the host, left alone.
    pub uplinks: Vec<String>,
    /// Flows allowed between containers: from port, to port, services
    /// (none: any).
    pub allowed: Vec<AllowedView>,
    /// Services of the whitelisted containers open to every container.
    pub proxy_services: Vec<String>,
    /// Services of the host open to containers.
    pub host_services: Vec<String>,
    /// How replies are told from new connections between ports:
    /// `flow-sets` or `conntrack`; `None` without a bridge table.
    pub tracking: Option<&'static str>,
    /// Packets per second of the blocked-connection log, when it is on.
    pub log_blocked_per_second: Option<u32>,
    /// Bridge ports leading to the network's containers on other hosts (a
    /// Swarm overlay's VXLAN device).
    pub remote_ports: Vec<String>,
    /// Whether the IP layer judges forwarded traffic (not in an overlay's
    /// namespace).
    pub ip_forward: bool,
    /// Services no container may send to (a Swarm's data-path port).
    pub blocked_outbound: Vec<String>,
    /// Published ports whose routing-mesh traffic this node drops (the
    /// table in `ingress_sbox`).
    pub blocked_ingress: Vec<String>,
    /// Enforcement points, as `family hook` (e.g. `bridge prerouting`).
    pub layers: Vec<String>,
    /// Drop counters per chain.
    pub drops: Vec<ChainCounters>,
    /// Drop counters per kind of traffic stopped.
    pub drops_by_kind: Vec<ChainCounters>,
    /// True when the tables are exactly what the policy would install.
    pub intact: bool,
}

impl Enforced {
    /// Read the policies back from trafficjam's tables: one [`Enforced`]
    /// per instance, whatever the number of its tables (families). Tables
    /// not named like trafficjam's are ignored.
    pub fn from_tables(tables: &[Table]) -> Vec<Enforced> {
        // The shared tables of bridge isolation are not a Policy's.
        let mut names: Vec<&str> = tables
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| *n != crate::isolation::ISOLATION_TABLE)
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| {
                let group: Vec<&Table> = tables.iter().filter(|t| t.name == name).collect();
                Enforced::from_group(&group)
            })
            .collect()
    }

    /// One instance's tables: addresses from the `inet` table, ports from
    /// the `bridge` table.
    fn from_group(group: &[&Table]) -> Option<Enforced> {
        let inet = group.iter().find(|t| t.family == Family::Inet);
        let bridge = group.iter().find(|t| t.family == Family::Bridge);
        let main = inet.or(bridge)?;
        let instance = InstanceId::from_table_name(&main.name)?;
        let nets = |name: &str| main.set(name).map(|s| s.nets()).unwrap_or_default();
        let mut subnets = nets(names::SUBNETS4);
        subnets.extend(nets(names::SUBNETS6));
        let whitelist: Vec<IpAddr> = [names::WHITELIST4, names::WHITELIST6]
            .iter()
            .flat_map(|n| nets(n))
            .map(|n| n.addr())
            .collect();
        let bridges = main
            .set(names::BRIDGES)
            .map(|s| s.ifnames())
            .unwrap_or_default();
        let allow_host_traffic = inet.is_some_and(|t| t.chain(names::INPUT).is_none());
        let log_rate = group
            .iter()
            .flat_map(|t| t.chains.iter())
            .flat_map(|c| c.rules.iter())
            .flat_map(|r| r.exprs.iter())
            .find_map(|e| match e {
                Expr::Limit { rate, .. } => u32::try_from(*rate).ok(),
                _ => None,
            });
        let ports = bridge.map(|t| ports_of(t)).unwrap_or_default();
        let unidentified: Vec<String> = bridge
            .and_then(|t| t.set(names::PORTS))
            .map(|s| s.ifnames())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !ports.iter().any(|p| p.name == *n))
            .collect();
        let uplinks = bridge
            .and_then(|t| t.set(names::UPLINKS))
            .map(|s| s.ifnames())
            .unwrap_or_default();
        let tracking = bridge.map(|t| {
            if t.set("tcp4").is_some() {
                Tracking::FlowSets
            } else {
                Tracking::Conntrack
            }
        });
        let allowed = bridge.map(|t| allowed_of(t)).unwrap_or_default();
        let services = |name: &str| -> Vec<Service> {
            main.set(name)
                .map(|s| s.elements.iter().filter_map(service_of).collect())
                .unwrap_or_default()
        };
        let (proxy_services, host_services) = (
            services(names::PROXY_SERVICES),
            services(names::HOST_SERVICES),
        );
        let (layers, drops, drops_by_kind) = counters(group, tracking);
        let remote_ports: Vec<String> = bridge
            .and_then(|t| t.set(names::PROXIES))
            .map(|s| s.ifnames())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !ports.iter().any(|p| p.name == *n))
            .collect();
        let ip_forward = inet.is_some_and(|t| t.chain(names::FORWARD).is_some());
        let blocked_outbound = services(names::BLOCKED_OUTBOUND);
        let blocked_ingress = services(crate::INGRESS_PORTS);
        let ingress = main.chain(crate::INGRESS_CHAIN).is_some();
        let intact_ingress = || {
            let want = crate::ingress_table(&instance, &blocked_ingress);
            group.len() == 1 && without_state(group[0]) == want
        };
        let intact = if ingress {
            intact_ingress()
        } else {
            Policy::new(
                instance.clone(),
                subnets.clone(),
                whitelist.clone(),
                allow_host_traffic,
            )
            .and_then(|p| p.with_bridges(bridges.clone()))
            .and_then(|p| p.with_ports(ports.clone()))
            .and_then(|p| p.with_uplinks(uplinks.clone()))
            .and_then(|p| p.with_unidentified(unidentified.clone()))
            .and_then(|p| p.with_allowed(allowed.clone()))
            .map(|p| {
                p.with_proxy_services(proxy_services.clone())
                    .with_host_services(host_services.clone())
            })
            .and_then(|p| p.with_remote_ports(remote_ports.clone()))
            .map(|p| p.with_tracking(tracking.unwrap_or_default()))
            .map(|p| match log_rate {
                Some(r) => p.with_log_blocked(r),
                None => p,
            })
            .map(|p| {
                if ip_forward {
                    p
                } else {
                    p.without_ip_forward()
                }
            })
            .map(|p| p.with_blocked_outbound(blocked_outbound.clone()))
            .ok()
            .map(|p| p.ruleset().tables)
            .is_some_and(|want| {
                want.len() == group.len()
                    && want
                        .iter()
                        .all(|w| group.iter().any(|t| without_state(t) == *w))
            })
        };
        Some(Enforced {
            instance: instance.to_string(),
            table: group
                .iter()
                .map(|t| format!("{} {}", t.family, t.name))
                .collect::<Vec<_>>()
                .join(", "),
            subnets,
            whitelist,
            allow_host_traffic,
            bridges,
            ports: ports.iter().map(view).collect(),
            unidentified,
            uplinks,
            allowed: allowed
                .iter()
                .map(|a| AllowedView {
                    from: a.from.clone(),
                    to: a.to.clone(),
                    services: a.services.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            proxy_services: proxy_services.iter().map(|s| s.to_string()).collect(),
            host_services: host_services.iter().map(|s| s.to_string()).collect(),
            tracking: tracking.map(|t| match t {
                Tracking::FlowSets => "flow-sets",
                Tracking::Conntrack => "conntrack",
            }),
            log_blocked_per_second: log_rate,
            remote_ports,
            ip_forward,
            blocked_outbound: blocked_outbound.iter().map(|s| s.to_string()).collect(),
            blocked_ingress: blocked_ingress.iter().map(|s| s.to_string()).collect(),
            layers,
            drops,
            drops_by_kind,
            intact,
        })
    }
}

/// The ports a bridge table's sets describe, as the [`Policy`] gave them
/// (the link-local address the compiler adds for each MAC left out).
fn ports_of(t: &Table) -> Vec<Port> {
    let set = |name: &str| t.set(name).map(|s| s.elements.clone()).unwrap_or_default();
    let proxies = t
        .set(names::PROXIES)
        .map(|s| s.ifnames())
        .unwrap_or_default();
    let mut macs: BTreeMap<String, Mac> = BTreeMap::new();
    for e in set(names::MACS) {
        if let [Value::Ifname(n), Value::Ether(m)] = e.values() {
            macs.insert(n.to_string(), *m);
        }
    }
    let mut addrs: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for e in set(names::ADDRS4).into_iter().chain(set(names::ADDRS6)) {
        if let [Value::Ifname(n), Value::Net(a)] = e.values() {
            addrs.entry(n.to_string()).or_default().push(a.addr());
        }
    }
    let names = t.set(names::PORTS).map(|s| s.ifnames()).unwrap_or_default();
    names
        .into_iter()
        .filter_map(|name| {
            let mac = *macs.get(&name)?;
            let link_local = IpAddr::V6(eui64_link_local(mac));
            let mut a = addrs.remove(&name).unwrap_or_default();
            a.retain(|x| *x != link_local);
            Some(Port {
                role: if proxies.contains(&name) {
                    Role::Proxy
                } else {
                    Role::Backend
                },
                name,
                mac,
                addrs: a,
            })
        })
        .collect()
}

/// The allowed flows a bridge table's sets describe.
fn allowed_of(t: &Table) -> Vec<Allowed> {
    let mut by_pair: BTreeMap<(String, String), Vec<Service>> = BTreeMap::new();
    let elements = |name: &str| t.set(name).map(|s| s.elements.clone()).unwrap_or_default();
    for e in elements(names::ALLOW_PAIRS) {
        if let [Value::Ifname(a), Value::Ifname(b)] = e.values() {
            by_pair.entry((a.to_string(), b.to_string())).or_default();
        }
    }
    for e in elements(names::ALLOW_SERVICES) {
        if let [Value::Ifname(a), Value::Ifname(b), proto, port] = e.values() {
            if let Some(s) = service_of(&crate::model::Element::of([*proto, *port])) {
                by_pair
                    .entry((a.to_string(), b.to_string()))
                    .or_default()
                    .push(s);
            }
        }
    }
    by_pair
        .into_iter()
        .map(|((from, to), services)| Allowed { from, to, services })
        .collect()
}

fn service_of(e: &crate::model::Element) -> Option<Service> {
    match e.values() {
        [Value::U8(proto), Value::U16(port)] => Some(Service {
            proto: *proto,
            port: *port,
        }),
        _ => None,
    }
}

fn view(p: &Port) -> PortView {
    let mut addrs = p.addrs.clone();
    addrs.push(IpAddr::V6(eui64_link_local(p.mac)));
    PortView {
        name: p.name.clone(),
        role: p.role.as_str(),
        mac: Value::Ether(p.mac).to_string(),
        addrs,
    }
}

/// Layers, drop counters per chain, and per kind (the comment each
/// dropping rule carries).
fn counters(
    group: &[&Table],
    tracking: Option<Tracking>,
) -> (Vec<String>, Vec<ChainCounters>, Vec<ChainCounters>) {
    let mut layers = Vec::new();
    let mut drops = Vec::new();
    let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for table in group {
        for c in &table.chains {
            if let Some(b) = &c.base {
                let how = match (table.family, c.name.as_str(), tracking) {
                    (Family::Bridge, names::BRIDGE_FORWARD, Some(Tracking::FlowSets)) => {
                        " (flow sets)"
                    }
                    (Family::Bridge, names::BRIDGE_FORWARD, Some(Tracking::Conntrack)) => {
                        " (conntrack)"
                    }
                    _ => "",
                };
                layers.push(format!("{} {}{how}", table.family, b.hook));
            }
            let (mut packets, mut bytes) = (0u64, 0u64);
            // Chains without a dropping rule (the flow recorder) are not
            // where anything is dropped: not listed.
            let mut counted = false;
            for r in &c.rules {
                for e in &r.exprs {
                    if let Expr::Counter {
                        packets: p,
                        bytes: b,
                    } = e
                    {
                        counted = true;
                        packets = packets.saturating_add(*p);
                        bytes = bytes.saturating_add(*b);
                        let kind = kinds
                            .entry(r.comment.clone().unwrap_or_else(|| "other".into()))
                            .or_default();
                        kind.0 = kind.0.saturating_add(*p);
                        kind.1 = kind.1.saturating_add(*b);
                    }
                }
            }
            if counted {
                // `from_port` is the forward chain's body for frames from
                // ports (dispatched there by the roles map): its drops are
                // the forward hook's, as users and metrics know them.
                let name = match (table.family, c.name.as_str()) {
                    (Family::Bridge, names::FROM_PORT) => names::BRIDGE_FORWARD,
                    (_, name) => name,
                };
                let chain = format!("{} {name}", table.family);
                match drops
                    .iter_mut()
                    .find(|d: &&mut ChainCounters| d.chain == chain)
                {
                    Some(d) => {
                        d.packets = d.packets.saturating_add(packets);
                        d.bytes = d.bytes.saturating_add(bytes);
                    }
                    None => drops.push(ChainCounters {
                        chain,
                        packets,
                        bytes,
                    }),
                }
            }
        }
    }
    let by_kind = kinds
        .into_iter()
        .map(|(chain, (packets, bytes))| ChainCounters {
            chain,
            packets,
            bytes,
        })
        .collect();
    (layers, drops, by_kind)
}

/// True when a table listed by the kernel is one trafficjam owns: named
/// with the trafficjam prefix *and* carrying trafficjam's comment.
pub fn is_trafficjam_table(name: &str, comment: Option<&str>) -> bool {
    InstanceId::from_table_name(name).is_some() && comment == Some(crate::TABLE_COMMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::{Bridge, BridgeIsolation, IngressPolicy};

    #[test]
    fn swarm_tables_read_back_intact() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let overlay = Policy::new(
            InstanceId::new("web").unwrap(),
            [net("10.0.1.0/24")],
            ["10.0.1.4".parse().unwrap()],
            false,
        )
        .unwrap()
        .with_bridges(["br0".to_string()])
        .unwrap()
        .with_ports([Port {
            name: "veth1".into(),
            role: Role::Proxy,
            mac: [2, 0, 0, 0, 0, 4],
            addrs: vec!["10.0.1.4".parse().unwrap()],
        }])
        .unwrap()
        .with_remote_ports(["vxlan0".to_string()])
        .unwrap()
        .without_ip_forward();
        let e = &Enforced::from_tables(&overlay.ruleset().tables)[0];
        assert!(e.intact, "{e:?}");
        assert_eq!(e.remote_ports, ["vxlan0"]);
        assert_eq!(e.ports.len(), 1);
        assert!(!e.ip_forward);

        let gw = Policy::new(
            InstanceId::new("gwbridge").unwrap(),
            [net("172.18.0.0/16")],
            [],
            false,
        )
        .unwrap()
        .with_bridges(["docker_gwbridge".to_string()])
        .unwrap()
        .with_blocked_outbound([Service::udp(4789)]);
        let e = &Enforced::from_tables(&gw.ruleset().tables)[0];
        assert!(e.intact, "{e:?}");
        assert_eq!(e.blocked_outbound, ["4789/udp"]);
        assert!(e.ip_forward);

        let table = crate::ingress_table(&InstanceId::new("ingress").unwrap(), &[Service::tcp(80)]);
        let e = &Enforced::from_tables(std::slice::from_ref(&table))[0];
        assert!(e.intact, "{e:?}");
        assert_eq!(e.blocked_ingress, ["80/tcp"]);
        let mut changed = table.clone();
        changed.chains[0].rules.clear();
        assert!(!Enforced::from_tables(&[changed])[0].intact);
    }

    #[test]
    fn drops_of_from_port_are_the_bridge_forward_chains() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let policy = Policy::new(
            InstanceId::new("web").unwrap(),
            [net("10.0.1.0/24")],
            [],
            false,
        )
        .unwrap();
        let mut tables = policy.ruleset().tables;
        // Counters as the kernel would report them: one in from_port, one
        // in record.
        let mut count = |chain: &str, n: u64| {
            let bridge = tables
                .iter_mut()
                .find(|t| t.family == Family::Bridge)
                .unwrap();
            let c = bridge.chains.iter_mut().find(|c| c.name == chain).unwrap();
            for r in &mut c.rules {
                for e in &mut r.exprs {
                    if let Expr::Counter { packets, .. } = e {
                        *packets = n;
                        return;
                    }
                }
            }
            panic!("no counter in {chain}");
        };
        count(names::FROM_PORT, 7);
        count(names::RECORD, 2);
        let e = &Enforced::from_tables(&tables)[0];
        let chain = |name: &str| e.drops.iter().find(|d| d.chain == name).map(|d| d.packets);
        assert_eq!(chain("bridge forward"), Some(7), "{:?}", e.drops);
        assert_eq!(chain("bridge record"), Some(2), "{:?}", e.drops);
        assert_eq!(chain("bridge from_port"), None, "{:?}", e.drops);
    }

    #[test]
    fn ports_and_exceptions_read_back_intact() {
        let port = |name: &str, role, last: u8| Port {
            name: name.into(),
            role,
            mac: [2, 0, 0, 0, 0, last],
            addrs: vec![format!("10.1.0.{last}").parse().unwrap()],
        };
        let p = Policy::new(
            InstanceId::new("x").unwrap(),
            ["10.1.0.0/24".parse().unwrap()],
            [],
            false,
        )
        .unwrap()
        .with_bridges(["br-x".to_string()])
        .unwrap()
        .with_ports([
            port("vp", Role::Proxy, 2),
            port("va", Role::Backend, 3),
            port("vd", Role::Backend, 4),
        ])
        .unwrap()
        .with_unidentified(["vnew".to_string()])
        .unwrap()
        .with_allowed([Allowed {
            from: "va".into(),
            to: "vd".into(),
            services: vec![Service::tcp(5432)],
        }])
        .unwrap()
        .with_host_services([Service::udp(53)]);
        let found = Enforced::from_tables(&p.ruleset().tables);
        let e = &found[0];
        assert!(e.intact);
        assert_eq!(e.ports.len(), 3);
        assert_eq!(e.unidentified, ["vnew"]);
        assert_eq!(e.allowed[0].services, ["5432/tcp"]);
        assert_eq!(e.host_services, ["53/udp"]);
        // A change the policy would not make shows.
        let mut tables = p.ruleset().tables;
        tables[1]
            .sets
            .iter_mut()
            .find(|s| s.name == "macs")
            .unwrap()
            .elements
            .pop();
        assert!(!Enforced::from_tables(&tables)[0].intact);
    }

    /// A port given with the link-local address its MAC implies (as read
    /// from the interface) reads back intact, and that address is allowed
    /// like the others.
    #[test]
    fn implied_link_local_addresses_read_back_intact() {
        let port = |name: &str, last: u8| {
            let mac = [2, 0, 0, 0, 0, last];
            Port {
                name: name.into(),
                role: Role::Backend,
                mac,
                addrs: vec![
                    format!("fd00::{last}").parse().unwrap(),
                    IpAddr::V6(crate::compile::eui64_link_local(mac)),
                ],
            }
        };
        let p = Policy::new(
            InstanceId::new("x").unwrap(),
            ["fd00::/64".parse().unwrap()],
            [],
            false,
        )
        .unwrap()
        .with_bridges(["br-x".to_string()])
        .unwrap()
        .with_ports([port("va", 3), port("vd", 4)])
        .unwrap()
        .with_allowed([Allowed {
            from: "va".into(),
            to: "vd".into(),
            services: vec![Service::tcp(5432)],
        }])
        .unwrap();
        let tables = p.ruleset().tables;
        let allow6 = tables[0].set("allow_services6").unwrap();
        assert_eq!(allow6.elements.len(), 4, "{allow6:?}");
        let found = Enforced::from_tables(&tables);
        assert!(found[0].intact);
        assert_eq!(found[0].ports[0].addrs.len(), 2);
    }

    #[test]
    fn bridge_isolation_tables_are_not_read_as_a_policy() {
        let bridge = Bridge {
            name: "cni1".into(),
            ingress: IngressPolicy::ProxyOnly,
            allow_host_traffic: false,
            subnets: vec!["10.88.1.0/24".parse().unwrap()],
            whitelist: vec!["10.88.1.2".parse().unwrap()],
            ports: vec![],
            exceptions: Default::default(),
        };
        let tables = BridgeIsolation::new([bridge]).unwrap().ruleset().tables;
        let found = Enforced::from_tables(&tables);
        // Only the proxy-only bridge's own policy, and it reads back intact.
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].instance, "cni-cni1");
        assert!(found[0].intact);
        assert_eq!(found[0].whitelist, ["10.88.1.2".parse::<IpAddr>().unwrap()]);
    }
}
