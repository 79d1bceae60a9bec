//! The rtnetlink requests a lab needs: create a bridge or a veth pair,
//! bring a link up, add an address. Constants from `linux/rtnetlink.h`,
//! `linux/if_link.h`, `linux/veth.h` and `linux/if_addr.h`; rtnetlink
//! attributes are host-endian.

use std::net::IpAddr;

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
/// Skip duplicate address detection: a tentative IPv6 address cannot be
/// used for a second or more, and lab addresses are unique by design.
const IFA_F_NODAD: u32 = 0x02;
const IFF_UP: u32 = 0x1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// An attribute: length, type, value, padded to 4 bytes.
fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + value.len() + 3);
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

fn name(kind: u16, s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    attr(kind, &v)
}

/// `struct ifinfomsg` with an index and the flags to change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut m = vec![0u8; 4];
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&change.to_ne_bytes());
    m
}

fn message(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(body);
    m
}

const CREATE: u16 = NLM_F_CREATE | NLM_F_EXCL;

/// `ip link add NAME type bridge`
pub fn new_bridge(ifname: &str) -> Vec<u8> {
    let info = attr(IFLA_INFO_KIND, b"bridge\0");
    let body = [
        ifinfomsg(0, 0, 0),
        name(IFLA_IFNAME, ifname),
        attr(IFLA_LINKINFO, &info),
    ]
    .concat();
    message(RTM_NEWLINK, CREATE, &body)
}

/// `ip link add NAME master MASTER type veth peer name PEER netns FD`:
/// one end here, plugged into bridge `master`, the other in the namespace
/// open as `peer_netns_fd`.
pub fn new_veth(ifname: &str, master: u32, peer: &str, peer_netns_fd: i32) -> Vec<u8> {
    let peer_info = [
        ifinfomsg(0, 0, 0),
        name(IFLA_IFNAME, peer),
        attr(IFLA_NET_NS_FD, &peer_netns_fd.to_ne_bytes()),
    ]
    .concat();
    let data = attr(VETH_INFO_PEER, &peer_info);
    let info = [attr(IFLA_INFO_KIND, b"veth\0"), attr(IFLA_INFO_DATA, &data)].concat();
    let body = [
        ifinfomsg(0, 0, 0),
        name(IFLA_IFNAME, ifname),
        attr(IFLA_MASTER, &master.to_ne_bytes()),
        attr(IFLA_LINKINFO, &info),
    ]
    .concat();
    message(RTM_NEWLINK, CREATE, &body)
}

/// `ip link set dev INDEX up`
pub fn set_up(index: u32) -> Vec<u8> {
    message(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP, IFF_UP))
}

/// `ip address add ADDR/PREFIX dev INDEX nodad`
pub fn new_address(index: u32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, bytes) = match addr {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    };
    // struct ifaddrmsg: family, prefixlen, flags, scope, index.
    let mut body = vec![family, prefix, 0, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend(attr(IFA_LOCAL, &bytes));
    body.extend(attr(IFA_ADDRESS, &bytes));
    body.extend(attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes()));
    message(RTM_NEWADDR, CREATE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip -d link add br0 type bridge` as iproute2 sends it, less the
    /// attributes iproute2 adds on its own: header, ifinfomsg, IFLA_IFNAME,
    /// IFLA_LINKINFO { IFLA_INFO_KIND "bridge" }.
    #[test]
    fn bridge_request_layout() {
        let m = new_bridge("br0");
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(&m[4..6], &RTM_NEWLINK.to_ne_bytes());
        assert_eq!(
            u16::from_ne_bytes([m[6], m[7]]),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
        );
        let attrs = &m[32..];
        assert_eq!(&attrs[..8], &[8, 0, 3, 0, b'b', b'r', b'0', 0]);
        assert_eq!(&attrs[8..12], &[16, 0, 18, 0]);
        assert_eq!(
            &attrs[12..],
            &[11, 0, 1, 0, b'b', b'r', b'i', b'd', b'g', b'e', 0, 0]
        );
    }

    #[test]
    fn address_request_has_nodad_and_both_addresses() {
        let m = new_address(7, "2001:db8::2".parse().unwrap(), 64);
        assert_eq!(&m[16..20], &[AF_INET6, 64, 0, 0]);
        assert_eq!(&m[20..24], &7u32.to_ne_bytes());
        assert_eq!(m.len(), 24 + 20 + 20 + 8);
        assert_eq!(&m[m.len() - 4..], &IFA_F_NODAD.to_ne_bytes());
    }

    #[test]
    fn veth_peer_is_nested_with_its_namespace() {
        let m = new_veth("tj-a", 3, "eth0", 9);
        let hay = &m[32..];
        let fd_attr = attr(IFLA_NET_NS_FD, &9i32.to_ne_bytes());
        assert!(hay.windows(fd_attr.len()).any(|w| w == fd_attr.as_slice()));
        let master = attr(IFLA_MASTER, &3u32.to_ne_bytes());
        assert!(hay.windows(master.len()).any(|w| w == master.as_slice()));
    }
}
