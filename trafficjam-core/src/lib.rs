//! # trafficjam-core
//!
//! The pure rule engine of trafficjam: it turns an isolation [`Policy`]
//! into nftables objects ([`Ruleset`]), encodes them as one NFNETLINK batch
//! ([`wire`]), decodes the kernel's dump of a table back into the same
//! objects, and renders them as `nft` text ([`text`]). It does no I/O, runs
//! no async runtime and has no `unsafe`: bring your own netlink socket, or
//! use `trafficjam-netlink`.
//!
//! ```
//! use trafficjam_core::{InstanceId, Policy};
//!
//! let policy = Policy::new(
//!     InstanceId::default(),
//!     ["172.23.0.0/16".parse().unwrap()],
//!     ["172.23.0.2".parse().unwrap()],
//!     false,
//! )
//! .unwrap();
//! let ruleset = policy.ruleset();
//! assert_eq!(ruleset.tables[0].name, "trafficjam-default");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compile;
pub mod conntrack;
pub mod isolation;
pub mod links;
pub mod model;
pub mod nflog;
mod observe;
mod policy;
pub mod text;
pub mod wire;

pub use compile::{
    conntrack_probe_table, eui64_link_local, ingress_table, names, timeouts, PortUpdate, Ruleset,
    SetChange, CHAIN_PRIORITY, INGRESS_CHAIN, INGRESS_PORTS, INGRESS_PRIORITY, MAX_UPDATED_PORTS,
    PREROUTING_PRIORITY,
};
pub use observe::{is_trafficjam_table, AllowedView, ChainCounters, Enforced, PortView};
pub use policy::{Allowed, InstanceId, Policy, PolicyError, Port, Role, Service, Tracking};

/// Every table trafficjam owns is named with this prefix and the instance id.
pub const TABLE_PREFIX: &str = "trafficjam-";

/// The comment stored in every table trafficjam owns; `clear --all` only
/// removes tables that carry both the prefix and this comment.
pub const TABLE_COMMENT: &str = "managed by trafficjam";
