//! Blocking a Swarm's routing mesh on one node: the published ports whose
//! traffic this node must not take in.
//!
//! Routing-mesh traffic for a published port enters a node's
//! `ingress_sbox` namespace — from other nodes over the ingress overlay,
//! from this host through `docker_gwbridge` — and IPVS there sends it on
//! to a task. A table in that namespace, on the prerouting hook before
//! conntrack and before the mangle rules that mark it for IPVS, drops it
//! on arrival, counted: nothing of it reaches a task, wherever the task
//! runs.

use crate::model::{BaseChain, Chain, Family, Field, Hook, Table, Verdict};
use crate::{InstanceId, Service, TABLE_COMMENT};

use super::bridge::services_set;
use super::exprs::{drop, lookup};

/// The set of blocked `meta l4proto . th dport`.
pub const INGRESS_PORTS: &str = "ingress_ports";
/// The chain on the prerouting hook.
pub const INGRESS_CHAIN: &str = "ingress";
/// Before conntrack (-200) and mangle (-150, where Docker marks IPVS
/// traffic).
pub const INGRESS_PRIORITY: i32 = -300;

/// The `inet` table that drops routing-mesh traffic for `ports` in the
/// namespace it is written to (a node's `ingress_sbox`).
///
/// ```
/// use trafficjam_core::{ingress_table, InstanceId, Service};
/// let table = ingress_table(&InstanceId::default(), &[Service::tcp(8080)]);
/// assert_eq!(table.name, "trafficjam-default");
/// ```
pub fn ingress_table(instance: &InstanceId, ports: &[Service]) -> Table {
    Table {
        family: Family::Inet,
        name: instance.table_name(),
        comment: Some(TABLE_COMMENT.to_string()),
        sets: vec![services_set(INGRESS_PORTS, ports)],
        chains: vec![Chain {
            name: INGRESS_CHAIN.to_string(),
            base: Some(BaseChain {
                hook: Hook::Prerouting,
                priority: INGRESS_PRIORITY,
                policy: Verdict::Accept,
            }),
            rules: vec![drop(
                [lookup(
                    &[Field::L4Proto, Field::ThDport],
                    INGRESS_PORTS,
                    false,
                )],
                "ingress",
            )],
        }],
    }
}
