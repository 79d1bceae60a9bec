//! Frames a compromised container could write onto its link (it has
//! CAP_NET_RAW), for the lab's attacks: forged UDP, VLAN-tagged frames,
//! IPv4 fragments, gratuitous ARP — and the raw socket that sends them
//! from inside a lab namespace.

use std::net::Ipv4Addr;

use super::Namespace;
use crate::NetlinkError;

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: Mac = [0xff; 6];

/// The ones' complement of the ones' complement sum of `data` (RFC 1071),
/// seeded with `sum` (a pseudo-header's).
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |lo| u32::from(*lo));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header for `len` bytes of protocol `proto`, with the fragment
/// field given (offset in 8-byte units, and the more-fragments flag).
fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize, frag: u16) -> Vec<u8> {
    let total = u16::try_from(20 + len).unwrap_or(u16::MAX);
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&0x7a7au16.to_be_bytes()); // identification
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport` with its checksum.
fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut u = Vec::with_capacity(usize::from(len));
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut pseudo = 0u32;
    for pair in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
        pseudo += (u32::from(pair[0]) << 8) | u32::from(pair[1]);
    }
    pseudo += 17 + u32::from(len);
    let c = checksum(&u, pseudo);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An Ethernet frame carrying a UDP datagram over IPv4, sources as given
/// (forged or not).
#[allow(clippy::too_many_arguments)]
pub fn udp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp = udp_v4(src, dst, sport, dport, payload);
    let mut ip = ipv4_header(src, dst, 17, udp.len(), 0x4000);
    ip.extend(udp);
    ethernet(dst_mac, src_mac, 0x0800, &ip)
}

/// The same datagram as two IPv4 fragments whose first carries only the
/// first 8 bytes of UDP (the header, nothing of the payload): a receiver
/// reassembles it; a stateless filter sees a header-only first fragment
/// and a second one with no header at all.
#[allow(clippy::too_many_arguments)]
pub fn udp4_fragments(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    let udp = udp_v4(src, dst, sport, dport, payload);
    let (first, rest) = udp.split_at(8);
    const MORE: u16 = 0x2000;
    let mut a = ipv4_header(src, dst, 17, first.len(), MORE);
    a.extend_from_slice(first);
    let mut b = ipv4_header(src, dst, 17, rest.len(), 1);
    b.extend_from_slice(rest);
    [a, b]
        .iter()
        .map(|ip| ethernet(dst_mac, src_mac, 0x0800, ip))
        .collect()
}

/// `frame` with an 802.1Q tag of VLAN `vid` inserted after its MAC
/// addresses (VLAN 0 is a priority tag: receivers treat the frame as
/// untagged).
pub fn vlan_tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame.get(..12).unwrap_or(frame).to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(frame.get(12..).unwrap_or_default());
    f
}

/// A gratuitous ARP request: "`ip` is at `mac`", broadcast — what an
/// attacker sends to take over another's address in its neighbours'
/// tables.
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ip.octets());
    ethernet(BROADCAST, mac, 0x0806, &arp)
}

impl Namespace {
    /// Write `frames` onto interface `ifname` of this namespace, below the
    /// IP stack (an `AF_PACKET` raw socket), as a container holding
    /// CAP_NET_RAW can.
    pub fn send_frames(&self, ifname: &str, frames: Vec<Vec<u8>>) -> Result<(), NetlinkError> {
        let ifname = std::ffi::CString::new(ifname)
            .map_err(|_| NetlinkError::Malformed("an interface name with a NUL".into()))?;
        self.run(move || -> std::io::Result<()> {
            // SAFETY: plain libc calls on a socket this block owns and
            // closes; `addr` is a zeroed, then filled, sockaddr_ll and
            // every buffer outlives its call.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = libc::if_nametoindex(ifname.as_ptr()) as i32;
                addr.sll_halen = 6;
                let mut result = Ok(());
                for f in &frames {
                    let sent = libc::sendto(
                        fd,
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    );
                    if sent < 0 {
                        result = Err(std::io::Error::last_os_error());
                        break;
                    }
                }
                libc::close(fd);
                result
            }
        })?
        .map_err(|e| NetlinkError::io("sending a raw frame", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let f = udp4(
            [2; 6],
            [4; 6],
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            b"x",
        );
        // The IPv4 header sums to 0xffff with its checksum in.
        assert_eq!(checksum(&f[14..34], 0), 0);
        let frags = udp4_fragments(
            [2; 6],
            [4; 6],
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            b"abc",
        );
        assert_eq!(frags.len(), 2);
        assert_eq!(frags[0].len(), 14 + 20 + 8);
        assert_eq!(&frags[1][14 + 6..14 + 8], &[0, 1], "offset 8 bytes, last");
        let tagged = vlan_tagged(&f, 0);
        assert_eq!(&tagged[12..16], &[0x81, 0, 0, 0]);
        assert_eq!(tagged.len(), f.len() + 4);
        let arp = gratuitous_arp([2; 6], [10, 0, 0, 9].into());
        assert_eq!(&arp[12..14], &[8, 6]);
        assert_eq!(
            &arp[28..32],
            &arp[38..42],
            "sender address = target address"
        );
    }
}
