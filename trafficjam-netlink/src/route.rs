//! The bridge ports of containers, over rtnetlink: which host-side veth a
//! container's interface is plugged into, with the MAC address and the IP
//! addresses of the veth's peer in the container's namespace (read with
//! `IFLA_TARGET_NETNSID`/`IFA_TARGET_NETNSID`, without entering that
//! namespace). What a container's interface holds was set by its runtime
//! (a container without CAP_NET_ADMIN cannot change it); forged frames do
//! not move it.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use trafficjam_core::links::{
    dump_addresses_request, dump_request, get_in_namespace_request, get_request, parse_address,
    parse_link, Link, LinkChange,
};

use crate::netns::in_namespace;
use crate::{NetfilterSocket, NetlinkError};

/// `NETLINK_ROUTE`
const NETLINK_ROUTE: isize = 0;
/// How many times an interrupted dump is read again.
const DUMP_ATTEMPTS: usize = 10;

/// A port of a bridge and what is plugged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    /// The port's name (the host side of a veth).
    pub name: String,
    /// The MAC address of the veth's other end, when it could be read
    /// (`None` for a port that is not a veth: an uplink, a tap).
    pub peer_mac: Option<[u8; 6]>,
    /// The addresses of the veth's other end (link-local included).
    pub peer_addrs: Vec<IpAddr>,
    /// Whether the port has a peer in another namespace (a veth), whether
    /// or not the peer could be read.
    pub has_peer: bool,
    /// The port's driver (`veth`, `vxlan`, `tap`…), when the kernel says.
    pub kind: Option<String>,
}

/// An rtnetlink socket.
#[derive(Debug)]
pub struct RouteSocket(pub(crate) NetfilterSocket);

impl RouteSocket {
    /// Open one in the network namespace at `netns`, or the current one.
    pub fn open_in(netns: Option<&Path>) -> Result<RouteSocket, NetlinkError> {
        let open = || {
            let s = NetfilterSocket::open_protocol(NETLINK_ROUTE)?;
            // Without strict checking the kernel ignores IFA_TARGET_NETNSID
            // in address dumps and answers with this namespace's addresses.
            s.socket
                .set_netlink_get_strict_chk(true)
                .map_err(|e| NetlinkError::io("asking for strict rtnetlink dumps", e))?;
            Ok(s)
        };
        Ok(RouteSocket(match netns {
            None => open()?,
            Some(p) => in_namespace(p, open)?,
        }))
    }

    /// A dump, again when the kernel says it was interrupted by a change
    /// (containers come and go while we read): a partial list of ports
    /// must never be taken for the whole.
    fn dump(&mut self, request: &[u8]) -> Result<Vec<Vec<u8>>, NetlinkError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.0.request(request) {
                Err(NetlinkError::DumpInterrupted) if attempt < DUMP_ATTEMPTS => continue,
                r => return r,
            }
        }
    }

    /// How many requests this socket sent (reads of interfaces and
    /// addresses; each waits for the lock of every change to the host's
    /// interfaces).
    pub fn requests(&self) -> u64 {
        self.0.requests()
    }

    /// Join `RTNLGRP_LINK`: be told of every interface change (a port
    /// plugged into or out of a bridge, a veth's peer moved or set up).
    pub fn watch_links(&mut self) -> Result<(), NetlinkError> {
        const RTNLGRP_LINK: u32 = 1;
        self.0.join_group(RTNLGRP_LINK)
    }

    /// The next notifications of [`watch_links`](Self::watch_links), waiting
    /// at most `timeout` (`None`: until they come; nothing when none came
    /// in time). An error means notifications were lost (ENOBUFS): anything
    /// may have changed.
    pub fn link_changes(
        &mut self,
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<LinkChange>, NetlinkError> {
        Ok(self
            .0
            .recv_messages(timeout)?
            .iter()
            .filter_map(|m| trafficjam_core::links::parse_link_change(m))
            .collect())
    }

    /// Every interface of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        Ok(self
            .dump(&dump_request())?
            .iter()
            .filter_map(|m| parse_link(m))
            .collect())
    }

    /// The addresses of the interface with index `index` in this namespace.
    pub fn addresses_of(&mut self, index: u32) -> Result<Vec<IpAddr>, NetlinkError> {
        Ok(self
            .dump(&dump_addresses_request(None, index))?
            .iter()
            .filter_map(|m| parse_address(m))
            .filter(|a| a.index == index)
            .map(|a| a.addr)
            .collect())
    }

    /// The interfaces holding an address inside one of `subnets` (a
    /// bridge is the interface holding its gateway address), by name.
    pub fn interfaces_in(&mut self, subnets: &[IpNet]) -> Result<Vec<String>, NetlinkError> {
        let links = self.links()?;
        let mut names: Vec<String> = self
            .dump(&dump_addresses_request(None, 0))?
            .iter()
            .filter_map(|m| parse_address(m))
            .filter(|a| subnets.iter().any(|n| n.contains(&a.addr)))
            .filter_map(|a| links.iter().find(|l| l.index == a.index))
            .map(|l| l.name.clone())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The ports of the bridge called `bridge`, with their peers' MACs and
    /// addresses. An unknown bridge has no ports.
    pub fn bridge_ports(&mut self, bridge: &str) -> Result<Vec<BridgePort>, NetlinkError> {
        Ok(self.bridge(bridge)?.map(|(_, p)| p).unwrap_or_default())
    }

    /// The interface index of the bridge called `bridge`, and its ports
    /// (see [`bridge_ports`](Self::bridge_ports)); `None` when there is no
    /// such interface.
    pub fn bridge(&mut self, bridge: &str) -> Result<Option<(u32, Vec<BridgePort>)>, NetlinkError> {
        let links = self.links()?;
        let Some(br) = links.iter().find(|l| l.name == bridge) else {
            return Ok(None);
        };
        let mut ports = Vec::new();
        for port in links.iter().filter(|l| l.master == Some(br.index)) {
            let local_peer = |peer: u32| links.iter().find(|l| l.index == peer).and_then(|l| l.mac);
            ports.push(self.port_with(port, local_peer, true));
        }
        Ok(Some((br.index, ports)))
    }

    /// The interface with index `index`; `None` when there is none.
    pub fn link(&mut self, index: u32) -> Result<Option<Link>, NetlinkError> {
        match self.0.request(&get_request(index)) {
            Ok(answer) => Ok(answer.iter().find_map(|m| parse_link(m))),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What is plugged into `port` (an interface enslaved to a bridge), read
    /// now: for one port that changed, without dumping every interface.
    /// The peer's addresses only when `addresses` (a runtime that reports
    /// them, as Docker does, saves one request per port).
    pub fn port(&mut self, port: &Link, addresses: bool) -> BridgePort {
        let local = match (port.link_netnsid, port.link) {
            (None, Some(peer)) if peer != port.index => {
                self.link(peer).ok().flatten().and_then(|l| l.mac)
            }
            _ => None,
        };
        self.port_with(port, |_| local, addresses)
    }

    fn port_with(
        &mut self,
        port: &Link,
        local_peer: impl Fn(u32) -> Option<[u8; 6]>,
        addresses: bool,
    ) -> BridgePort {
        // A VXLAN device's link is its lower device (in the namespace it
        // was made in), not a peer plugged into a container.
        if port.kind.as_deref().is_some_and(|k| k != "veth") {
            return BridgePort {
                name: port.name.clone(),
                peer_mac: None,
                peer_addrs: Vec::new(),
                has_peer: false,
                kind: port.kind.clone(),
            };
        }
        let (peer_mac, peer_addrs) = match (port.link_netnsid, port.link) {
            (Some(nsid), Some(peer)) => (
                self.peer_mac(nsid, peer),
                if addresses {
                    self.peer_addrs(nsid, peer)
                } else {
                    Vec::new()
                },
            ),
            // The other end still in this namespace: a runtime setting a
            // container up has not moved it into the container yet.
            (None, Some(peer)) if peer != port.index => (local_peer(peer), Vec::new()),
            _ => (None, Vec::new()),
        };
        BridgePort {
            name: port.name.clone(),
            peer_mac,
            peer_addrs,
            has_peer: port.link_netnsid.is_some() || port.link.is_some_and(|l| l != port.index),
            kind: port.kind.clone(),
        }
    }

    fn peer_mac(&mut self, nsid: i32, peer: u32) -> Option<[u8; 6]> {
        self.0
            .request(&get_in_namespace_request(nsid, peer))
            .ok()
            .and_then(|answer| answer.iter().find_map(|m| parse_link(m)))
            .and_then(|l| l.mac)
    }

    fn peer_addrs(&mut self, nsid: i32, peer: u32) -> Vec<IpAddr> {
        let mut addrs: Vec<IpAddr> = self
            .dump(&dump_addresses_request(Some(nsid), peer))
            .unwrap_or_default()
            .iter()
            .filter_map(|m| parse_address(m))
            .filter(|a| a.index == peer)
            .map(|a| a.addr)
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }
}
