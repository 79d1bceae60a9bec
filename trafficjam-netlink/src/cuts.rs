//! Which tracked connections a change cuts, and when.
//!
//! An address that leaves a whitelist loses the connections it opened into
//! the managed subnets: whoever holds the address next must not ride on
//! them. Cutting means walking the kernel's whole conntrack table (some
//! milliseconds on any host, and every entry copied to us on a busy one),
//! so a daemon, where proxies come and go, may defer the cut of an address
//! that nobody holds any more ([`Firewall::defer_cuts`]): it is made before
//! a transaction gives the address to a port or to the whitelist again
//! (with every other address waiting: one walk cuts them all), and
//! otherwise when the daemon asks ([`Firewall::cut_pending`]). An address
//! a port still holds (a proxy that became a backend) is cut at once.
//!
//! [`Firewall::defer_cuts`]: crate::Firewall::defer_cuts
//! [`Firewall::cut_pending`]: crate::Firewall::cut_pending

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use trafficjam_core::model::{Element, Table, Value};
use trafficjam_core::names;

use crate::{cut_connections, NetfilterSocket, NetlinkError};

/// Whitelisted addresses that left, and the subnets whose connections they
/// lose.
#[derive(Debug, Clone, Default)]
pub(crate) struct Revoked {
    pub addrs: Vec<IpAddr>,
    pub subnets: Vec<IpNet>,
}

impl Revoked {
    /// Cut the connections these addresses opened into the subnets, in
    /// one walk of the conntrack table; how many were cut.
    fn cut(self, socket: &mut NetfilterSocket) -> Result<usize, NetlinkError> {
        let Revoked { addrs, subnets } = self;
        cut_connections(socket, |c| {
            addrs.contains(&c.source) && subnets.iter().any(|s| s.contains(&c.destination))
        })
    }

    /// `self` and `other` together (an address or subnet once).
    fn merge(&mut self, other: Revoked) {
        for a in other.addrs {
            if !self.addrs.contains(&a) {
                self.addrs.push(a);
            }
        }
        for s in other.subnets {
            if !self.subnets.contains(&s) {
                self.subnets.push(s);
            }
        }
    }

    /// The part of `self` whose addresses `held` says someone holds,
    /// taken out of `self` (with every subnet: a subnet too many only
    /// looks at more connections).
    fn take_held(&mut self, held: impl Fn(&IpAddr) -> bool) -> Revoked {
        let (taken, kept) = std::mem::take(&mut self.addrs).into_iter().partition(held);
        self.addrs = kept;
        Revoked {
            addrs: taken,
            subnets: self.subnets.clone(),
        }
    }
}

/// The cuts a firewall has put off, and how many walks of the conntrack
/// table its cuts took.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// What waits; `None` while every cut is made at once.
    pending: Option<Revoked>,
    walks: u64,
}

impl Deferred {
    /// From now on, put off the cuts of addresses nobody holds.
    pub fn enable(&mut self) {
        self.pending.get_or_insert_with(Revoked::default);
    }

    /// How many addresses wait for their cut.
    pub fn len(&self) -> usize {
        self.pending.as_ref().map_or(0, |r| r.addrs.len())
    }

    /// What to cut now of `revoked`, which a transaction just took off the
    /// whitelists, leaving `held` with a port or whitelisted; the rest is
    /// put off when deferring.
    pub fn after(&mut self, mut revoked: Revoked, held: impl Fn(&IpAddr) -> bool) -> Revoked {
        let Some(pending) = self.pending.as_mut() else {
            return revoked;
        };
        let now = revoked.take_held(held);
        pending.merge(revoked);
        now
    }

    /// What must be cut before a transaction that gives the addresses
    /// `claimed` says to a port or to the whitelist: when it gives any
    /// address put off, everything put off (one walk of the table cuts
    /// them all; Docker hands a released address to the next container,
    /// so after a burst of proxies leaving the next few would each walk).
    pub fn claimed(&mut self, claimed: impl Fn(&IpAddr) -> bool) -> Revoked {
        match self.pending.as_mut() {
            Some(pending) if pending.addrs.iter().any(claimed) => std::mem::take(pending),
            _ => Revoked::default(),
        }
    }

    /// Everything put off, taken (deferring goes on).
    pub fn take(&mut self) -> Revoked {
        self.pending
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// How many walks of the conntrack table the cuts took.
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// Cut `taken` now; when the cut fails while deferring, it is put off
    /// again, to be tried with the next.
    pub fn cut_or_keep(
        &mut self,
        taken: Revoked,
        socket: &mut NetfilterSocket,
    ) -> Result<usize, NetlinkError> {
        // Nothing to cut: no walk.
        if taken.addrs.is_empty() {
            return Ok(0);
        }
        self.walks += 1;
        let again = taken.clone();
        taken.cut(socket).inspect_err(|_| {
            if let Some(pending) = self.pending.as_mut() {
                pending.merge(again);
            }
        })
    }
}

/// The sets whose elements give an address to a port or to the whitelist.
const HOLDING: [&str; 4] = [
    names::ADDRS4,
    names::ADDRS6,
    names::WHITELIST4,
    names::WHITELIST6,
];

/// Whether a set is one of [`HOLDING`].
pub(crate) fn holds(set: &str) -> bool {
    HOLDING.contains(&set)
}

/// The addresses in `elements` (of any field).
pub(crate) fn addresses<'a>(elements: impl IntoIterator<Item = &'a Element>) -> BTreeSet<IpAddr> {
    elements
        .into_iter()
        .flat_map(|e| e.values())
        .filter_map(|v| match v {
            Value::Net(n) => Some(n.addr()),
            _ => None,
        })
        .collect()
}

/// The addresses `tables` give to a port or to the whitelist.
pub(crate) fn held_in<'a>(tables: impl IntoIterator<Item = &'a Table>) -> BTreeSet<IpAddr> {
    addresses(
        tables
            .into_iter()
            .flat_map(|t| HOLDING.iter().filter_map(|n| t.set(n)))
            .flat_map(|s| &s.elements),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn revoked(addrs: &[&str]) -> Revoked {
        Revoked {
            addrs: addrs.iter().map(|a| ip(a)).collect(),
            subnets: vec!["10.1.0.0/24".parse().unwrap()],
        }
    }

    #[test]
    fn cuts_at_once_unless_deferring() {
        let mut d = Deferred::default();
        let now = d.after(revoked(&["10.1.0.2"]), |_| false);
        assert_eq!(now.addrs, vec![ip("10.1.0.2")]);
        assert_eq!(d.len(), 0);
        assert!(d.claimed(|_| true).addrs.is_empty());
    }

    #[test]
    fn defers_what_nobody_holds_until_claimed_or_taken() {
        let mut d = Deferred::default();
        d.enable();
        // 10.1.0.3 is still a port's (a proxy become a backend): now.
        let now = d.after(revoked(&["10.1.0.2", "10.1.0.3"]), |a| *a == ip("10.1.0.3"));
        assert_eq!(now.addrs, vec![ip("10.1.0.3")]);
        d.after(revoked(&["10.1.0.4", "10.1.0.2"]), |_| false);
        assert_eq!(d.len(), 2, "each address once");
        // Nobody gets any of them: nothing to cut.
        assert!(d.claimed(|a| *a == ip("10.1.0.9")).addrs.is_empty());
        assert_eq!(d.len(), 2);
        // A port gets 10.1.0.4 again: cut before it can send, and the
        // other with it (the same walk).
        let claimed = d.claimed(|a| *a == ip("10.1.0.4"));
        assert_eq!(claimed.addrs, vec![ip("10.1.0.2"), ip("10.1.0.4")]);
        assert_eq!(
            claimed.subnets,
            vec!["10.1.0.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(d.len(), 0);
        assert!(d.take().addrs.is_empty());
        d.after(revoked(&["10.1.0.6"]), |_| false);
        assert_eq!(d.take().addrs, vec![ip("10.1.0.6")]);
        assert_eq!(d.len(), 0);
        // Still deferring after a take.
        d.after(revoked(&["10.1.0.5"]), |_| false);
        assert_eq!(d.len(), 1);
    }
}
