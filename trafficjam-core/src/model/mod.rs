//! A typed model of the nftables objects trafficjam installs.
//!
//! The same types describe the *desired* state (built from a
//! [`Policy`](crate::Policy)) and the *actual* state (decoded from a kernel
//! dump), so the two can be compared with `==`. Kernel-assigned values such
//! as handles are kept out of the comparable fields on purpose.

mod expr;

pub use expr::{Bitwise, CmpOp, CtKey, Expr, MetaKey, PayloadBase, Register, Verdict};

use std::fmt;

use ipnet::IpNet;

/// The address family of a table, as the kernel's `NFPROTO_*` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Family {
    /// `inet`: IPv4 and IPv6 in one table (`NFPROTO_INET`).
    Inet,
    /// `ip`: IPv4 only (`NFPROTO_IPV4`).
    Ip,
    /// `ip6`: IPv6 only (`NFPROTO_IPV6`).
    Ip6,
    /// `bridge`: layer 2, before or without br_netfilter (`NFPROTO_BRIDGE`).
    Bridge,
}

impl Family {
    /// The `NFPROTO_*` number carried in the nfgenmsg header.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Bridge => 7,
            Family::Ip6 => 10,
        }
    }

    /// The family for an `NFPROTO_*` number, if trafficjam knows it.
    pub fn from_nfproto(value: u8) -> Option<Family> {
        match value {
            1 => Some(Family::Inet),
            2 => Some(Family::Ip),
            7 => Some(Family::Bridge),
            10 => Some(Family::Ip6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Bridge => "bridge",
        })
    }
}

/// A table with everything in it. trafficjam owns whole tables, so a table
/// is the unit of installation, comparison and removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Address family of the table.
    pub family: Family,
    /// Table name, unique per family.
    pub name: String,
    /// Comment stored in the table's user data (shown by `nft list`).
    pub comment: Option<String>,
    /// Named sets, in creation order.
    pub sets: Vec<Set>,
    /// Chains, in creation order, each with its rules.
    pub chains: Vec<Chain>,
}

impl Table {
    /// The set with this name, if the table has one.
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The chain with this name, if the table has one.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The same table with every set emptied: what stays when only set
    /// elements change, which is the cheap (element-only) update path.
    pub fn skeleton(&self) -> Table {
        let mut t = self.clone();
        for s in &mut t.sets {
            s.elements.clear();
        }
        t
    }
}

/// The netfilter hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Hook {
    /// `NF_INET_PRE_ROUTING`
    Prerouting,
    /// `NF_INET_LOCAL_IN`
    Input,
    /// `NF_INET_FORWARD`
    Forward,
    /// `NF_INET_LOCAL_OUT`
    Output,
    /// `NF_INET_POST_ROUTING`
    Postrouting,
}

impl Hook {
    /// The `NF_INET_*` hook number.
    pub fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }

    /// The hook for an `NF_INET_*` number.
    pub fn from_number(n: u32) -> Option<Hook> {
        Some(match n {
            0 => Hook::Prerouting,
            1 => Hook::Input,
            2 => Hook::Forward,
            3 => Hook::Output,
            4 => Hook::Postrouting,
            _ => return None,
        })
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        })
    }
}

/// What makes a chain a base chain: where it hooks in and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// The hook the chain is attached to.
    pub hook: Hook,
    /// Priority; lower runs first (`filter` is 0).
    pub priority: i32,
    /// Verdict for packets that reach the end of the chain.
    pub policy: Verdict,
}

/// A chain and its rules, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Chain name, unique in its table.
    pub name: String,
    /// `Some` for a base chain of type `filter`; `None` for a regular chain.
    pub base: Option<BaseChain>,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
}

/// A rule: expressions evaluated left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The expressions of the rule.
    pub exprs: Vec<Expr>,
}

/// The key type of a set of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKey {
    /// `ipv4_addr` (4 bytes).
    Ipv4,
    /// `ipv6_addr` (16 bytes).
    Ipv6,
    /// `ifname`: an interface name, NUL-padded to 16 bytes.
    Ifname,
}

impl SetKey {
    /// The nft datatype number stored as the set's key type.
    pub fn datatype(self) -> u32 {
        match self {
            SetKey::Ipv4 => 7,
            SetKey::Ipv6 => 8,
            SetKey::Ifname => 41,
        }
    }

    /// Whether nft stores the keys in network byte order (addresses) or
    /// as host data (interface names): kept in the set's user data.
    pub fn big_endian(self) -> bool {
        !matches!(self, SetKey::Ifname)
    }

    /// The key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SetKey::Ipv4 => 4,
            SetKey::Ipv6 | SetKey::Ifname => 16,
        }
    }

    /// The set key for an nft datatype number.
    pub fn from_datatype(n: u32) -> Option<SetKey> {
        match n {
            7 => Some(SetKey::Ipv4),
            8 => Some(SetKey::Ipv6),
            41 => Some(SetKey::Ifname),
            _ => None,
        }
    }

    /// The nft name of the datatype.
    pub fn name(self) -> &'static str {
        match self {
            SetKey::Ipv4 => "ipv4_addr",
            SetKey::Ipv6 => "ipv6_addr",
            SetKey::Ifname => "ifname",
        }
    }
}

/// A named set of addresses or prefixes.
///
/// Elements are kept sorted and deduplicated so that two sets with the same
/// content compare equal whatever order the kernel returned them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Set name, unique in its table.
    pub name: String,
    /// Type of the keys.
    pub key: SetKey,
    /// `flags interval`: elements are prefixes, not single addresses.
    pub interval: bool,
    /// The elements of an address set. In a non-interval set every
    /// element is a host prefix.
    pub elements: Vec<IpNet>,
    /// The elements of an `ifname` set, sorted.
    pub ifnames: Vec<String>,
}

impl Set {
    /// A set with the given elements, normalised (sorted, deduplicated,
    /// host bits cleared).
    pub fn new(
        name: &str,
        key: SetKey,
        interval: bool,
        elements: impl IntoIterator<Item = IpNet>,
    ) -> Set {
        let mut elements: Vec<IpNet> = elements.into_iter().map(|n| n.trunc()).collect();
        if interval {
            // The kernel stores intervals, not prefixes: overlapping or
            // adjacent prefixes come back merged, so merge them here too.
            elements = IpNet::aggregate(&elements);
        }
        elements.sort();
        elements.dedup();
        Set {
            name: name.to_string(),
            key,
            interval,
            elements,
            ifnames: Vec::new(),
        }
    }

    /// A set of interface names (bridge ports), sorted and deduplicated.
    pub fn of_ifnames(name: &str, ifnames: impl IntoIterator<Item = String>) -> Set {
        let mut ifnames: Vec<String> = ifnames.into_iter().collect();
        ifnames.sort();
        ifnames.dedup();
        Set {
            name: name.to_string(),
            key: SetKey::Ifname,
            interval: false,
            elements: Vec::new(),
            ifnames,
        }
    }
}
