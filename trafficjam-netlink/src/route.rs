//! The bridge ports of containers, over rtnetlink: which host-side veth a
//! container's interface is plugged into, found by the MAC address of the
//! veth's peer in the container's namespace (read with
//! `IFLA_TARGET_NETNSID`, without entering that namespace). Addresses a
//! container configures are its own; the peer's MAC is what the runtime
//! set, so a backend forging frames cannot move it.

use std::path::Path;

use trafficjam_core::links::{dump_request, get_in_namespace_request, parse_link};

use crate::netns::in_namespace;
use crate::{NetfilterSocket, NetlinkError};

/// `NETLINK_ROUTE`
const NETLINK_ROUTE: isize = 0;

/// A port of a bridge and the MAC address of what is plugged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    /// The port's name (the host side of a veth).
    pub name: String,
    /// The MAC address of the veth's other end, when it could be read.
    pub peer_mac: Option<[u8; 6]>,
}

/// An rtnetlink socket.
#[derive(Debug)]
pub struct RouteSocket(pub(crate) NetfilterSocket);

impl RouteSocket {
    /// Open one in the network namespace at `netns`, or the current one.
    pub fn open_in(netns: Option<&Path>) -> Result<RouteSocket, NetlinkError> {
        let open = || NetfilterSocket::open_protocol(NETLINK_ROUTE);
        Ok(RouteSocket(match netns {
            None => open()?,
            Some(p) => in_namespace(p, open)?,
        }))
    }

    /// The ports of the bridge called `bridge`, with their peers' MACs.
    /// An unknown bridge has no ports.
    pub fn bridge_ports(&mut self, bridge: &str) -> Result<Vec<BridgePort>, NetlinkError> {
        let links: Vec<_> = self
            .0
            .request(&dump_request())?
            .iter()
            .filter_map(|m| parse_link(m))
            .collect();
        let Some(br) = links.iter().find(|l| l.name == bridge) else {
            return Ok(Vec::new());
        };
        let mut ports = Vec::new();
        for port in links.iter().filter(|l| l.master == Some(br.index)) {
            let peer_mac = match (port.link_netnsid, port.link) {
                (Some(nsid), Some(peer)) => self
                    .0
                    .request(&get_in_namespace_request(nsid, peer))
                    .ok()
                    .and_then(|answer| answer.iter().find_map(|m| parse_link(m)))
                    .and_then(|l| l.mac),
                _ => None,
            };
            ports.push(BridgePort {
                name: port.name.clone(),
                peer_mac,
            });
        }
        Ok(ports)
    }
}
