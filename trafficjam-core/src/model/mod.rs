//! A typed model of the nftables objects trafficjam installs.
//!
//! The same types describe the *desired* state (built from a
//! [`Policy`](crate::Policy)) and the *actual* state (decoded from a kernel
//! dump), so the two can be compared with `==`. Kernel-assigned values such
//! as handles are kept out of the comparable fields on purpose.

mod expr;
mod map;
mod set;

pub use expr::{Bitwise, CmpOp, CtKey, DynsetOp, Expr, MetaKey, PayloadBase, Register, Verdict};
pub use map::{ChainName, MapVerdict, SetData, CHAIN_NAME_MAX};
pub use set::{
    mac_key, parse_mac, Dynamic, Element, Field, Ifname, Kind, Mac, Set, SetKey, Value, MAX_FIELDS,
};

use std::fmt;

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
    /// The rule's comment (`comment "…"`), kept in its user data. Dropping
    /// rules carry the kind of traffic they stop (`spoofed-mac`, `lateral`),
    /// so drop counters can be reported by kind.
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of these expressions, without comment.
    pub fn new(exprs: Vec<Expr>) -> Rule {
        Rule {
            exprs,
            comment: None,
        }
    }

    /// The same rule with a comment.
    pub fn commented(mut self, comment: &str) -> Rule {
        self.comment = Some(comment.to_string());
        self
    }
}
