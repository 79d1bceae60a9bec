//! Network interfaces over rtnetlink, as much as trafficjam needs to find
//! the bridge ports of containers: which ports a bridge has, and the MAC
//! address and IP addresses of each port's veth peer inside the
//! container's namespace (asked with `IFLA_TARGET_NETNSID` and
//! `IFA_TARGET_NETNSID`, so no namespace is entered); and which interface
//! holds an address (the bridge of a subnet).
//!
//! Constants from `linux/rtnetlink.h` and `linux/if_link.h`. Parsing is
//! bounds-checked and fuzzed.

use crate::wire::nla::{string, Attrs};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_TARGET_NETNSID: u16 = 10;
/// nlmsghdr (16) + ifaddrmsg (8).
const ADDR_HEADERS: usize = 24;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_TARGET_NETNSID: u16 = 46;
/// nlmsghdr (16) + ifinfomsg (16).
const HEADERS: usize = 32;

/// One interface, as an rtnetlink answer describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, for Ethernet-like links.
    pub mac: Option<[u8; 6]>,
    /// Index of the bridge (or bond) it is a port of.
    pub master: Option<u32>,
    /// Index of its peer (a veth's other end), in `link_netnsid`'s
    /// namespace when that is set.
    pub link: Option<u32>,
    /// The namespace id (in ours) where the peer lives.
    pub link_netnsid: Option<i32>,
    /// The driver (`veth`, `bridge`, `vxlan`…), when the kernel says.
    pub kind: Option<String>,
}

fn request(flags: u16, index: i32, attrs: &[u8]) -> Vec<u8> {
    let len = HEADERS + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    // ifinfomsg: family, pad, type, index, flags, change.
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(attrs);
    m
}

/// Dump every interface of the namespace.
pub fn dump_request() -> Vec<u8> {
    request(NLM_F_DUMP, 0, &[])
}

/// Ask for interface `index` of this namespace.
pub fn get_request(index: u32) -> Vec<u8> {
    request(0, i32::try_from(index).unwrap_or(0), &[])
}

/// Ask for interface `index` of the namespace with id `netnsid` (as our
/// namespace numbers it, e.g. a veth's `link_netnsid`).
pub fn get_in_namespace_request(netnsid: i32, index: u32) -> Vec<u8> {
    let mut attr = Vec::with_capacity(8);
    attr.extend_from_slice(&8u16.to_ne_bytes());
    attr.extend_from_slice(&IFLA_TARGET_NETNSID.to_ne_bytes());
    attr.extend_from_slice(&netnsid.to_ne_bytes());
    request(0, i32::try_from(index).unwrap_or(0), &attr)
}

/// The interface an `RTM_NEWLINK` answer describes; `None` otherwise or
/// when malformed.
pub fn parse_link(bytes: &[u8]) -> Option<Link> {
    match link_message(bytes)? {
        (false, link) => Some(link),
        (true, _) => None,
    }
}

/// `AF_BRIDGE`: the family of the notifications a bridge sends about its
/// ports.
const AF_BRIDGE: u8 = 7;

/// One link notification (`RTM_NEWLINK` or `RTM_DELLINK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    /// The interface, as the notification describes it.
    pub link: Link,
    /// Whether the notification says it was deleted.
    pub deleted: bool,
    /// Sent by the bridge about one of its ports (`AF_BRIDGE`: a port's
    /// forwarding state, its VLANs), not by the interface itself. Such a
    /// notification lacks the peer's namespace, and its "deleted" may be
    /// of the port's bridge data alone; every change to the interface
    /// itself (enslaved, released, its peer moved, carrier, deleted) comes
    /// with a notification of its own (`AF_UNSPEC`) that describes it as
    /// a read would.
    pub from_bridge: bool,
}

/// What a link notification says; `None` for anything else or when
/// malformed.
pub fn parse_link_change(bytes: &[u8]) -> Option<LinkChange> {
    let (deleted, link) = link_message(bytes)?;
    Some(LinkChange {
        link,
        deleted,
        from_bridge: *bytes.get(16)? == AF_BRIDGE,
    })
}

fn link_message(bytes: &[u8]) -> Option<(bool, Link)> {
    let len = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let ty = u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?);
    if !matches!(ty, RTM_NEWLINK | RTM_DELLINK) || len < HEADERS || len > bytes.len() {
        return None;
    }
    let deleted = ty == RTM_DELLINK;
    let index = u32::from_ne_bytes(bytes.get(20..24)?.try_into().ok()?);
    let mut link = Link {
        index,
        ..Link::default()
    };
    for a in Attrs::new(&bytes[HEADERS..len]) {
        let (kind, v) = a.ok()?;
        match kind {
            IFLA_IFNAME => link.name = string(v, "ifname").ok()?,
            IFLA_ADDRESS => link.mac = <[u8; 6]>::try_from(v).ok(),
            IFLA_MASTER => link.master = Some(ne_u32(v)?),
            IFLA_LINK => link.link = Some(ne_u32(v)?),
            IFLA_LINK_NETNSID => link.link_netnsid = Some(ne_u32(v)? as i32),
            IFLA_LINKINFO => {
                for info in Attrs::new(v) {
                    if let (IFLA_INFO_KIND, kind) = info.ok()? {
                        link.kind = Some(string(kind, "link kind").ok()?);
                    }
                }
            }
            _ => {}
        }
    }
    Some((deleted, link))
}

/// One address of an interface, as an rtnetlink answer describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Index of the interface holding it.
    pub index: u32,
    /// The address.
    pub addr: std::net::IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// Dump the addresses of interface `index` (every interface for 0) of the
/// namespace with id `netnsid` (as ours numbers it), or of ours when
/// `None`. The kernel honours both only on a socket with strict checking
/// (`NETLINK_GET_STRICT_CHK`).
pub fn dump_addresses_request(netnsid: Option<i32>, index: u32) -> Vec<u8> {
    let attr = netnsid.map_or_else(Vec::new, |id| {
        let mut a = 8u16.to_ne_bytes().to_vec();
        a.extend_from_slice(&IFA_TARGET_NETNSID.to_ne_bytes());
        a.extend_from_slice(&id.to_ne_bytes());
        a
    });
    let len = ADDR_HEADERS + attr.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETADDR.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    // ifaddrmsg: family (any), prefix length, flags, scope, index.
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&attr);
    m
}

/// The address an `RTM_NEWADDR` answer describes; `None` otherwise or
/// when malformed. For IPv4 the local address (`IFA_LOCAL`) is the
/// interface's own; `IFA_ADDRESS` is the peer's on point-to-point links.
pub fn parse_address(bytes: &[u8]) -> Option<Address> {
    let len = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let ty = u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?);
    if ty != RTM_NEWADDR || len < ADDR_HEADERS || len > bytes.len() {
        return None;
    }
    let family = *bytes.get(16)?;
    let prefix_len = *bytes.get(17)?;
    let index = u32::from_ne_bytes(bytes.get(20..24)?.try_into().ok()?);
    let (mut address, mut local) = (None, None);
    for a in Attrs::new(&bytes[ADDR_HEADERS..len]) {
        let (kind, v) = a.ok()?;
        let ip = match (family, v.len()) {
            (2, 4) => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
            (10, 16) => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
            _ => None,
        };
        match kind {
            IFA_ADDRESS => address = ip,
            IFA_LOCAL => local = ip,
            _ => {}
        }
    }
    Some(Address {
        index,
        addr: local.or(address)?,
        prefix_len,
    })
}

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// nlmsghdr (16) + ndmsg (12).
const NEIGH_HEADERS: usize = 28;

/// One entry of a neighbour table (ARP, NDP): which MAC an address is
/// believed to be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// Index of the interface the entry is for.
    pub index: u32,
    /// The neighbour's address.
    pub addr: std::net::IpAddr,
    /// Its MAC address, when resolved.
    pub mac: Option<[u8; 6]>,
}

/// Dump the neighbour tables (IPv4 and IPv6) of the namespace.
pub fn dump_neighbours_request() -> Vec<u8> {
    let len = NEIGH_HEADERS;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    // ndmsg: family (any), pads, index, state, flags, type.
    m.extend_from_slice(&[0; 12]);
    m
}

/// The entry an `RTM_NEWNEIGH` answer describes; `None` otherwise or when
/// malformed.
pub fn parse_neighbour(bytes: &[u8]) -> Option<Neighbour> {
    let len = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let ty = u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?);
    if ty != RTM_NEWNEIGH || len < NEIGH_HEADERS || len > bytes.len() {
        return None;
    }
    let family = *bytes.get(16)?;
    let index = u32::from_ne_bytes(bytes.get(20..24)?.try_into().ok()?);
    let (mut addr, mut mac) = (None, None);
    for a in Attrs::new(&bytes[NEIGH_HEADERS..len]) {
        let (kind, v) = a.ok()?;
        match (kind, family, v.len()) {
            (NDA_DST, 2, 4) => addr = Some(std::net::IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
            (NDA_DST, 10, 16) => addr = Some(std::net::IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
            (NDA_LLADDR, _, 6) => mac = <[u8; 6]>::try_from(v).ok(),
            _ => {}
        }
    }
    Some(Neighbour {
        index,
        addr: addr?,
        mac,
    })
}

/// rtnetlink attributes are host-endian (nf_tables' are big-endian).
fn ne_u32(v: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(v).ok().map(u32::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    #[test]
    fn veth_port_parses() {
        let attrs = [
            attr(IFLA_IFNAME, b"vproxy\0"),
            attr(IFLA_ADDRESS, &[2, 0x42, 0xac, 0x11, 0, 2]),
            attr(IFLA_MASTER, &7u32.to_ne_bytes()),
            attr(IFLA_LINK, &2u32.to_ne_bytes()),
            attr(IFLA_LINK_NETNSID, &3u32.to_ne_bytes()),
            attr(IFLA_LINKINFO | 0x8000, &attr(IFLA_INFO_KIND, b"veth\0")),
        ]
        .concat();
        let mut m = request(0, 9, &attrs);
        m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        let l = parse_link(&m).unwrap();
        assert_eq!(
            l,
            Link {
                index: 9,
                name: "vproxy".into(),
                mac: Some([2, 0x42, 0xac, 0x11, 0, 2]),
                master: Some(7),
                link: Some(2),
                link_netnsid: Some(3),
                kind: Some("veth".into()),
            }
        );
        assert_eq!(parse_link(&m[..20]), None);
        assert_eq!(parse_link(&dump_request()), None);
        let change = parse_link_change(&m).unwrap();
        assert_eq!((change.deleted, change.from_bridge), (false, false));
        assert_eq!(change.link, l);
        // The bridge's own word about its port: family AF_BRIDGE.
        m[4..6].copy_from_slice(&RTM_DELLINK.to_ne_bytes());
        m[16] = AF_BRIDGE;
        let change = parse_link_change(&m).unwrap();
        assert_eq!((change.deleted, change.from_bridge), (true, true));
        assert_eq!(parse_link_change(&m[..16]), None);
    }

    #[test]
    fn neighbours_parse() {
        let mut m = dump_neighbours_request();
        m[4..6].copy_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
        m[16] = 2;
        m[20..24].copy_from_slice(&3u32.to_ne_bytes());
        m.extend(attr(NDA_DST, &[10, 77, 1, 10]));
        m.extend(attr(NDA_LLADDR, &[2, 0, 0, 0, 0, 10]));
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            parse_neighbour(&m),
            Some(Neighbour {
                index: 3,
                addr: "10.77.1.10".parse().unwrap(),
                mac: Some([2, 0, 0, 0, 0, 10])
            })
        );
        assert_eq!(parse_neighbour(&m[..30]), None);
        m[16] = 10;
        assert_eq!(parse_neighbour(&m), None, "an IPv6 entry has 16 bytes");
    }

    #[test]
    fn addresses_parse_local_first() {
        let attrs = [
            attr(IFA_ADDRESS, &[10, 77, 1, 1]),
            attr(IFA_LOCAL, &[10, 77, 1, 11]),
        ]
        .concat();
        let mut m = dump_addresses_request(Some(3), 4);
        m.truncate(ADDR_HEADERS);
        m[4..6].copy_from_slice(&RTM_NEWADDR.to_ne_bytes());
        m[16] = 2;
        m[17] = 24;
        m[20..24].copy_from_slice(&4u32.to_ne_bytes());
        m.extend(attrs);
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            parse_address(&m),
            Some(Address {
                index: 4,
                addr: "10.77.1.11".parse().unwrap(),
                prefix_len: 24
            })
        );
        assert_eq!(parse_address(&m[..30]), None);
        m[16] = 10;
        assert_eq!(parse_address(&m), None, "an IPv6 address has 16 bytes");
    }
}
