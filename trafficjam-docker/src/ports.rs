//! The ports of a managed bridge, kept between events: read whole once
//! (and at every poll), then changed one port at a time from rtnetlink's
//! link notifications and from the peers of ports no container is bound
//! to yet. An event about one container among hundreds reads that one
//! veth, not every interface of the host.

use std::collections::BTreeMap;

use trafficjam_core::links::{Link, LinkChange};
use trafficjam_netlink::{BridgePort, NetlinkError, RouteSocket};

/// Whether a link notification may concern the bridges whose indexes are
/// `bridges`: about one of them or a port of one, or a deletion (a port's
/// peer leaving says so without the bridge; each cache knows its own).
pub fn concerns(change: &LinkChange, bridges: &std::collections::HashSet<u32>) -> bool {
    change.deleted
        || bridges.contains(&change.link.index)
        || change.link.master.is_some_and(|m| bridges.contains(&m))
}

/// A bridge's ports by interface index.
#[derive(Debug, Clone, Default)]
pub struct PortCache {
    /// The bridge's name.
    pub bridge: String,
    /// Its interface index; `None` when the bridge does not exist (yet).
    pub index: Option<u32>,
    ports: BTreeMap<u32, (Link, BridgePort)>,
    /// The same ports, as handed out (kept, not built on every call), in
    /// the order of their indexes.
    list: Vec<BridgePort>,
    /// The index of each port of `list`, at the same place: a port's place
    /// is found by binary search, not by counting the ports before it.
    list_indexes: Vec<u32>,
    /// Their indexes by name.
    by_name: std::collections::HashMap<String, u32>,
}

impl PortCache {
    /// Read every port of `bridge` now.
    pub fn read(route: &mut RouteSocket, bridge: &str) -> Result<PortCache, NetlinkError> {
        let links = route.links()?;
        Ok(PortCache::of_links(route, &links, bridge))
    }

    /// The ports of `bridge` among `links` (the namespace's interfaces, read
    /// once for several bridges), each port's peer read now.
    pub fn of_links(route: &mut RouteSocket, links: &[Link], bridge: &str) -> PortCache {
        let mut cache = PortCache {
            bridge: bridge.to_string(),
            ..Default::default()
        };
        let Some(br) = links.iter().find(|l| l.name == bridge) else {
            return cache;
        };
        cache.index = Some(br.index);
        for port in links.iter().filter(|l| l.master == Some(br.index)) {
            cache
                .ports
                .insert(port.index, (port.clone(), route.port(port, false)));
        }
        cache.relist();
        cache
    }

    /// The ports, as [`RouteSocket::bridge_ports`] gives them but without
    /// the peers' addresses (Docker reports them).
    pub fn ports(&self) -> &[BridgePort] {
        &self.list
    }

    /// Build the list and the names again from the ports (after a whole
    /// read).
    fn relist(&mut self) {
        self.list = self.ports.values().map(|(_, p)| p.clone()).collect();
        self.list_indexes = self.ports.keys().copied().collect();
        self.by_name = self
            .ports
            .iter()
            .map(|(i, (_, p))| (p.name.clone(), *i))
            .collect();
    }

    /// Record port `index` as it is now, in the list and the names too:
    /// one veth among hundreds changes several times while it is set up,
    /// and each change copies that port, not all of them.
    fn put(&mut self, index: u32, link: Link, port: BridgePort) {
        match self.list_indexes.binary_search(&index) {
            Ok(pos) => {
                if let Some(slot) = self.list.get_mut(pos) {
                    if slot.name != port.name && self.by_name.get(&slot.name) == Some(&index) {
                        self.by_name.remove(&slot.name);
                    }
                    *slot = port.clone();
                }
            }
            Err(pos) => {
                self.list.insert(pos.min(self.list.len()), port.clone());
                self.list_indexes.insert(pos, index);
            }
        }
        self.by_name.insert(port.name.clone(), index);
        self.ports.insert(index, (link, port));
    }

    /// Forget port `index`; returns whether it was known.
    fn remove(&mut self, index: u32) -> bool {
        let Some((_, port)) = self.ports.remove(&index) else {
            return false;
        };
        if let Ok(pos) = self.list_indexes.binary_search(&index) {
            self.list_indexes.remove(pos);
            if pos < self.list.len() {
                self.list.remove(pos);
            }
        }
        if self.by_name.get(&port.name) == Some(&index) {
            self.by_name.remove(&port.name);
        }
        true
    }

    /// An interface changed (from the link notifications): a port plugged
    /// in, changed or unplugged, or a port's peer moved away. Returns
    /// whether the ports changed, and `None` when the change is about the
    /// bridge itself (read it whole).
    ///
    /// An interface's own notification describes it as a read would, so
    /// it is taken as the port's state; only the peer (in the container's
    /// namespace, where nothing is notified to us) is read, and not even
    /// that for a port `settled` says is bound and that did not change: a
    /// veth sends a dozen notifications while it is set up and torn down,
    /// and each read waits on the lock the runtime holds meanwhile. The
    /// bridge's notifications about a port (which lack the peer's
    /// namespace, and some say "deleted" of a port that stays) only make
    /// a port read that is new, or said to be taken off.
    pub fn link_changed(
        &mut self,
        route: &mut RouteSocket,
        change: &LinkChange,
        settled: impl Fn(&str) -> bool,
    ) -> Option<bool> {
        let link = &change.link;
        if Some(link.index) == self.index || (self.index.is_none() && link.name == self.bridge) {
            return None;
        }
        let known = self.ports.get(&link.index);
        let mut look_at: Vec<u32> = Vec::new();
        let mut changed = false;
        if change.from_bridge {
            // A port taken off the bridge is told this way only (its own
            // notification, without a master, is not passed on to us).
            let read = match (known.is_some(), change.deleted) {
                (true, true) => true,
                (false, false) => link.master == self.index,
                _ => false,
            };
            if read {
                look_at.push(link.index);
            }
        } else if change.deleted {
            changed |= self.remove(link.index);
            // A port's peer leaving this namespace: the runtime moved it
            // into the container, where it gets its MAC next. (Nothing
            // says so about the port itself.)
            look_at.extend(
                self.ports
                    .iter()
                    .filter(|(_, (l, _))| l.link == Some(link.index) && l.link_netnsid.is_none())
                    .map(|(i, _)| *i),
            );
        } else if self.index.is_some() && link.master == self.index {
            let same = known.is_some_and(|(l, p)| l == link && settled(&p.name));
            if !same {
                changed |= self.take_port(route, link.clone());
            }
        } else if known.is_some() {
            changed |= self.remove(link.index);
        }
        for index in look_at {
            changed |= self.read_port(route, index);
        }
        Some(changed)
    }

    /// Record `now` (a port of this bridge, as it is) with its peer read
    /// now. Returns whether it changed.
    fn take_port(&mut self, route: &mut RouteSocket, now: Link) -> bool {
        let index = now.index;
        let port = route.port(&now, false);
        let changed = self
            .ports
            .get(&index)
            .is_none_or(|(l, old)| *old != port || *l != now);
        if changed {
            self.put(index, now, port);
        }
        changed
    }

    /// Read port `index` as it is now: kept, replaced, or dropped when it
    /// is gone or no longer on the bridge. Returns whether it changed.
    fn read_port(&mut self, route: &mut RouteSocket, index: u32) -> bool {
        match route.link(index) {
            Ok(Some(now)) if self.index.is_some() && now.master == self.index => {
                self.take_port(route, now)
            }
            Ok(_) => self.remove(index),
            // Unreadable now: keep what is known; the next poll reads all.
            Err(_) => false,
        }
    }

    /// Catch up with notifications that may have been lost: one dump of
    /// the interfaces, and the peers read only of the ports that are new
    /// or changed since. Returns whether the ports changed.
    pub fn resync(&mut self, route: &mut RouteSocket) -> Result<bool, NetlinkError> {
        let links = route.links()?;
        let index = links
            .iter()
            .find(|l| l.name == self.bridge)
            .map(|b| b.index);
        let mut changed = index != self.index;
        self.index = index;
        let mut seen = std::collections::BTreeSet::new();
        for port in links
            .iter()
            .filter(|l| index.is_some() && l.master == index)
        {
            seen.insert(port.index);
            if self.ports.get(&port.index).is_some_and(|(l, _)| l == port) {
                continue;
            }
            let peer = route.port(port, false);
            self.ports.insert(port.index, (port.clone(), peer));
            changed = true;
        }
        let before = self.ports.len();
        self.ports.retain(|i, _| seen.contains(i));
        changed |= self.ports.len() != before;
        if changed {
            self.relist();
        }
        Ok(changed)
    }

    /// Whether any of the ports called `names` has its peer in another
    /// namespace (a container's) already.
    pub fn any_peer_moved(&self, names: &[String]) -> bool {
        names.iter().any(|n| {
            self.by_name
                .get(n)
                .and_then(|i| self.ports.get(i))
                .is_some_and(|(l, _)| l.link_netnsid.is_some())
        })
    }

    /// Read again the peers of the ports called `unbound` (no container
    /// was found on them) whose peer is in another namespace already: the
    /// runtime sets a container's MAC just after moving its interface
    /// there. Returns whether any changed.
    pub fn refresh(&mut self, route: &mut RouteSocket, unbound: &[String]) -> bool {
        let mut changed = false;
        let indexes: Vec<u32> = unbound
            .iter()
            .filter_map(|n| self.by_name.get(n).copied())
            .collect();
        for i in indexes {
            let Some((link, port)) = self.ports.get_mut(&i) else {
                continue;
            };
            if link.link_netnsid.is_none() {
                continue;
            }
            // The link itself may have changed too (its peer moved to the
            // container's namespace: a new link-netnsid).
            let Ok(Some(now)) = route.link(link.index) else {
                continue;
            };
            let fresh = route.port(&now, false);
            if fresh != *port {
                self.put(i, now, fresh);
                changed = true;
            } else {
                *link = now;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(index: u32, name: &str) -> (Link, BridgePort) {
        let link = Link {
            index,
            name: name.to_string(),
            master: Some(1),
            ..Default::default()
        };
        let port = BridgePort {
            name: name.to_string(),
            peer_mac: Some([2, 0, 0, 0, 0, index as u8]),
            peer_addrs: Vec::new(),
            has_peer: true,
            kind: Some("veth".into()),
        };
        (link, port)
    }

    /// The list and the names a whole relist would build.
    fn views(c: &PortCache) -> (Vec<String>, Vec<(String, u32)>) {
        let mut names: Vec<(String, u32)> =
            c.by_name.iter().map(|(n, i)| (n.clone(), *i)).collect();
        names.sort();
        let list = c.ports().iter().map(|p| p.name.clone()).collect();
        (list, names)
    }

    #[test]
    fn changes_one_port_at_a_time_keep_the_views_a_relist_builds() {
        let mut c = PortCache::default();
        for (i, n) in [(7, "veth7"), (3, "veth3"), (9, "veth9"), (5, "veth5")] {
            let (l, p) = port(i, n);
            c.put(i, l, p);
        }
        // Renamed in place, removed, removed twice, added back.
        let (l, p) = port(9, "eth9");
        c.put(9, l, p);
        assert!(c.remove(3));
        assert!(!c.remove(3));
        let (l, p) = port(4, "veth4");
        c.put(4, l, p);
        let kept = views(&c);
        assert_eq!(kept.0, ["veth4", "veth5", "veth7", "eth9"]);
        assert_eq!(c.list_indexes, [4, 5, 7, 9]);
        c.relist();
        assert_eq!(views(&c), kept);
        assert_eq!(c.list_indexes, [4, 5, 7, 9]);
    }
}
