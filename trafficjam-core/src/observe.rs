//! What a table found in the kernel enforces, in policy terms.
//!
//! `status` reads trafficjam's tables back from the kernel; this module
//! turns such a table into the policy it enforces and checks that the
//! table is exactly what that policy would install, so tampering (a rule
//! deleted, a chain flushed) shows up as `intact: false`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::compile::names;
use crate::model::{Expr, Family, Table};
use crate::wire::without_state;
use crate::{InstanceId, Policy};

/// Drop counters of one chain, summed over its counting rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ChainCounters {
    /// Table family and chain, e.g. `inet forward`.
    pub chain: String,
    /// Packets dropped.
    pub packets: u64,
    /// Bytes dropped.
    pub bytes: u64,
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
    /// Bridge ports the whitelisted addresses are bound to (anti-spoofing).
    pub whitelist_ports: Vec<String>,
    /// Packets per second of the blocked-connection log, when it is on.
    pub log_blocked_per_second: Option<u32>,
    /// Enforcement points, as `family hook` (e.g. `inet forward`).
    pub layers: Vec<String>,
    /// Drop counters per chain.
    pub drops: Vec<ChainCounters>,
    /// True when the table is exactly what the policy would install.
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

    /// One instance's tables: the policy comes from the `inet` table (the
    /// one with the host rules), or from any table of the instance.
    fn from_group(group: &[&Table]) -> Option<Enforced> {
        let main = group
            .iter()
            .find(|t| t.family == Family::Inet)
            .or_else(|| group.first())?;
        let instance = InstanceId::from_table_name(&main.name)?;
        let elements = |name: &str| {
            main.set(name)
                .map(|s| s.elements.clone())
                .unwrap_or_default()
        };
        let mut subnets = elements(names::SUBNETS4);
        subnets.extend(elements(names::SUBNETS6));
        let whitelist: Vec<IpAddr> = [names::WHITELIST4, names::WHITELIST6]
            .iter()
            .flat_map(|n| elements(n))
            .map(|n| n.addr())
            .collect();
        let allow_host_traffic = main.family == Family::Inet && main.chain(names::INPUT).is_none();
        let log_rate = group
            .iter()
            .flat_map(|t| t.chains.iter())
            .flat_map(|c| c.rules.iter())
            .flat_map(|r| r.exprs.iter())
            .find_map(|e| match e {
                Expr::Limit { rate, .. } => u32::try_from(*rate).ok(),
                _ => None,
            });
        let whitelist_ports: Vec<String> = group
            .iter()
            .filter_map(|t| t.set(names::WHITELIST_PORTS))
            .flat_map(|s| s.ifnames.iter().cloned())
            .collect();
        let mut layers = Vec::new();
        let mut drops = Vec::new();
        for table in group {
            for c in &table.chains {
                if let Some(b) = &c.base {
                    let stateless = if table.family == Family::Bridge {
                        " (stateless)"
                    } else {
                        ""
                    };
                    layers.push(format!("{} {}{stateless}", table.family, b.hook));
                }
                let (packets, bytes) =
                    c.rules
                        .iter()
                        .flat_map(|r| r.exprs.iter())
                        .fold((0u64, 0u64), |(p, b), e| match e {
                            Expr::Counter { packets, bytes } => {
                                (p.saturating_add(*packets), b.saturating_add(*bytes))
                            }
                            _ => (p, b),
                        });
                drops.push(ChainCounters {
                    chain: format!("{} {}", table.family, c.name),
                    packets,
                    bytes,
                });
            }
        }
        let intact = Policy::new(
            instance.clone(),
            subnets.clone(),
            whitelist.clone(),
            allow_host_traffic,
        )
        .and_then(|p| p.with_whitelist_ports(whitelist_ports.clone()))
        .map(|p| match log_rate {
            Some(r) => p.with_log_blocked(r),
            None => p,
        })
        .ok()
        .map(|p| p.ruleset().tables)
        .is_some_and(|want| {
            want.len() == group.len()
                && want
                    .iter()
                    .all(|w| group.iter().any(|t| without_state(t) == *w))
        });
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
            whitelist_ports,
            log_blocked_per_second: log_rate,
            layers,
            drops,
            intact,
        })
    }
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
    fn bridge_isolation_tables_are_not_read_as_a_policy() {
        let bridge = Bridge {
            name: "cni1".into(),
            ingress: IngressPolicy::ProxyOnly,
            allow_host_traffic: false,
            subnets: vec!["10.88.1.0/24".parse().unwrap()],
            whitelist: vec!["10.88.1.2".parse().unwrap()],
            ports: vec![],
            whitelist_ports: vec![],
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
