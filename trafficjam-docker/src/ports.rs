//! The ports of a managed bridge, kept between events: read whole once
//! (and at every poll), then changed one port at a time from rtnetlink's
//! link notifications and from the peers of ports no container is bound
//! to yet. An event about one container among hundreds reads that one
//! veth, not every interface of the host.

use std::collections::BTreeMap;

use trafficjam_core::links::Link;
use trafficjam_netlink::{BridgePort, NetlinkError, RouteSocket};

/// A bridge's ports by interface index.
#[derive(Debug, Clone, Default)]
pub struct PortCache {
    /// The bridge's name.
    pub bridge: String,
    /// Its interface index; `None` when the bridge does not exist (yet).
    pub index: Option<u32>,
    ports: BTreeMap<u32, (Link, BridgePort)>,
    /// The same ports, as handed out (kept, not built on every call).
    list: Vec<BridgePort>,
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

    fn relist(&mut self) {
        self.list = self.ports.values().map(|(_, p)| p.clone()).collect();
        self.by_name = self
            .ports
            .iter()
            .map(|(i, (_, p))| (p.name.clone(), *i))
            .collect();
    }

    /// An interface changed (from the link notifications): a port plugged
    /// in, changed or unplugged, or a port's peer moved away. Returns
    /// whether the ports changed, and `None` when the change is about the
    /// bridge itself (read it whole).
    ///
    /// The notification only says which interface to look at: the
    /// bridge's own notifications (a port's state, its forwarding entries)
    /// lack the peer's namespace, and some say "deleted" of a port that
    /// stays. The interface is read as it is now.
    pub fn link_changed(
        &mut self,
        route: &mut RouteSocket,
        deleted: bool,
        link: &Link,
    ) -> Option<bool> {
        if Some(link.index) == self.index || (self.index.is_none() && link.name == self.bridge) {
            return None;
        }
        let mut look_at: Vec<u32> = Vec::new();
        if self.ports.contains_key(&link.index) || (!deleted && link.master == self.index) {
            look_at.push(link.index);
        }
        if deleted {
            // A port's peer leaving this namespace: the runtime moved it
            // into the container, where it gets its MAC next. (Nothing
            // says so about the port itself.)
            look_at.extend(
                self.ports
                    .iter()
                    .filter(|(_, (l, _))| l.link == Some(link.index) && l.link_netnsid.is_none())
                    .map(|(i, _)| *i),
            );
        }
        let mut changed = false;
        for index in look_at {
            changed |= self.read_port(route, index);
        }
        if changed {
            self.relist();
        }
        Some(changed)
    }

    /// Read port `index` as it is now: kept, replaced, or dropped when it
    /// is gone or no longer on the bridge. Returns whether it changed.
    fn read_port(&mut self, route: &mut RouteSocket, index: u32) -> bool {
        match route.link(index) {
            Ok(Some(now)) if self.index.is_some() && now.master == self.index => {
                let port = route.port(&now, false);
                let changed = self
                    .ports
                    .get(&index)
                    .is_none_or(|(l, old)| *old != port || *l != now);
                self.ports.insert(index, (now, port));
                changed
            }
            Ok(_) => self.ports.remove(&index).is_some(),
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
                *port = fresh;
                changed = true;
            }
            *link = now;
        }
        if changed {
            self.relist();
        }
        changed
    }
}
