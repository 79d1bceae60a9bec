//! # trafficjam-core
//!
//! The pure rule engine of trafficjam: it turns an isolation [`Policy`]
//! into nftables objects, encodes them as one NFNETLINK batch, decodes the
//! kernel's dump of a table back into the same objects, and renders them as
//! `nft` text. It does no I/O, runs no async runtime and has no `unsafe`:
//! bring your own netlink socket, or use `trafficjam-netlink`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod model;
pub mod wire;
