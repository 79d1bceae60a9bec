//! What a table found in the kernel enforces, in policy terms.
//!
//! `status` reads trafficjam's tables back from the kernel; this module
//! turns such a table into the policy it enforces and checks that the
//! table is exactly what that policy would install, so tampering (a rule
//! deleted, a chain flushed) shows up as `intact: false`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::compile::names;
use crate::model::{Expr, Table};
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
    /// `family name` of the table.
    pub table: String,
    /// Managed subnets.
    pub subnets: Vec<IpNet>,
    /// Whitelisted addresses.
    pub whitelist: Vec<IpAddr>,
    /// Whether containers may reach the host.
    pub allow_host_traffic: bool,
    /// Enforcement points, as `family hook` (e.g. `inet forward`).
    pub layers: Vec<String>,
    /// Drop counters per chain.
    pub drops: Vec<ChainCounters>,
    /// True when the table is exactly what the policy would install.
    pub intact: bool,
}

impl Enforced {
    /// Read the policy back from one of trafficjam's tables. `None` when the
    /// table is not named like a trafficjam table.
    pub fn from_table(table: &Table) -> Option<Enforced> {
        let instance = InstanceId::from_table_name(&table.name)?;
        let elements = |name: &str| {
            table
                .set(name)
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
        let allow_host_traffic = table.chain(names::INPUT).is_none();
        let layers = table
            .chains
            .iter()
            .filter_map(|c| {
                c.base
                    .as_ref()
                    .map(|b| format!("{} {}", table.family, b.hook))
            })
            .collect();
        let drops = table
            .chains
            .iter()
            .map(|c| {
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
                ChainCounters {
                    chain: format!("{} {}", table.family, c.name),
                    packets,
                    bytes,
                }
            })
            .collect();
        let intact = Policy::new(
            instance.clone(),
            subnets.clone(),
            whitelist.clone(),
            allow_host_traffic,
        )
        .ok()
        .map(|p| p.ruleset().tables)
        .is_some_and(|tables| {
            tables
                .iter()
                .any(|t| t.family == table.family && *t == without_state(table))
        });
        Some(Enforced {
            instance: instance.to_string(),
            table: format!("{} {}", table.family, table.name),
            subnets,
            whitelist,
            allow_host_traffic,
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
