//! The blocked-connection log's transport: nfnetlink_log (NFLOG).
//! Requests that bind an NFLOG group, and the parser of the packets the
//! kernel then sends (constants from `linux/netfilter/nfnetlink_log.h`).
//! Bounds-checked and fuzzed like every decoder of kernel bytes.

use std::net::IpAddr;

use crate::wire::nla::{string, Attrs, Message};

/// `NFNL_SUBSYS_ULOG`
const SUBSYS: u16 = 4;
/// `NFULNL_MSG_PACKET`
const MSG_PACKET: u8 = 0;
/// `NFULNL_MSG_CONFIG`
const MSG_CONFIG: u16 = 1;
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_PAYLOAD: u16 = 9;
/// `ETH_P_ARP`
const ARP: u16 = 0x0806;
const NFULA_PREFIX: u16 = 10;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const CMD_BIND: u8 = 1;
const COPY_PACKET: u8 = 2;
/// Enough of each packet for the IP and transport headers.
const COPY_RANGE: u32 = 96;

fn config(group: u16, attr: &[u8]) -> Vec<u8> {
    let len = 20 + attr.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((SUBSYS << 8) | MSG_CONFIG).to_ne_bytes());
    m.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[0, 0]); // nfgenmsg: AF_UNSPEC, version 0
    m.extend_from_slice(&group.to_be_bytes()); // res_id: the group
    m.extend_from_slice(attr);
    m
}

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

/// The requests that bind `group` to the socket and ask for packet copies
/// (headers only), delivered one by one, in order.
pub fn bind_requests(group: u16) -> Vec<Vec<u8>> {
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[COPY_PACKET, 0]);
    // Deliver each packet at once: the kernel otherwise batches them and
    // flushes once a second, and a person watching wants the line now.
    vec![
        config(group, &nla(NFULA_CFG_CMD, &[CMD_BIND])),
        config(group, &nla(NFULA_CFG_MODE, &mode)),
        config(group, &nla(NFULA_CFG_QTHRESH, &1u32.to_be_bytes())),
        config(group, &nla(NFULA_CFG_TIMEOUT, &1u32.to_be_bytes())),
    ]
}

/// The transport protocol of a logged packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, with the destination port.
    Tcp(u16),
    /// UDP, with the destination port.
    Udp(u16),
    /// ICMP or ICMPv6.
    Icmp,
    /// An ARP request (who has the destination? tell the source).
    Arp,
    /// Anything else, by protocol number.
    Other(u8),
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(p) => write!(f, "tcp/{p}"),
            Transport::Udp(p) => write!(f, "udp/{p}"),
            Transport::Icmp => f.write_str("icmp"),
            Transport::Arp => f.write_str("arp who-has"),
            Transport::Other(n) => write!(f, "proto {n}"),
        }
    }
}

/// One packet the rules dropped and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The log prefix (says which instance dropped it).
    pub prefix: String,
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// Protocol and destination port.
    pub transport: Transport,
}

/// A logged packet from one NFLOG message; `None` for anything else or
/// anything malformed.
pub fn parse_blocked(bytes: &[u8]) -> Option<Blocked> {
    let m = Message::parse(bytes).ok()?;
    if u16::from(m.subsys) != SUBSYS || m.kind != MSG_PACKET {
        return None;
    }
    let (mut prefix, mut payload, mut ethertype) = (String::new(), None, None);
    for a in Attrs::new(m.attrs) {
        let (kind, v) = a.ok()?;
        match kind {
            NFULA_PREFIX => prefix = string(v, "prefix").ok()?,
            NFULA_PAYLOAD => payload = Some(v),
            // struct nfulnl_msg_packet_hdr: hw_protocol (BE), hook, pad.
            NFULA_PACKET_HDR => ethertype = v.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])),
            _ => {}
        }
    }
    let payload = payload?;
    if ethertype == Some(ARP) {
        // Ethernet/IPv4 ARP: sender address at 14, target at 24.
        let spa: [u8; 4] = payload.get(14..18)?.try_into().ok()?;
        let tpa: [u8; 4] = payload.get(24..28)?.try_into().ok()?;
        return Some(Blocked {
            prefix,
            source: spa.into(),
            destination: tpa.into(),
            transport: Transport::Arp,
        });
    }
    let (source, destination, proto, l4) = ip_header(payload)?;
    let port = |l4: &[u8]| l4.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let transport = match proto {
        6 => Transport::Tcp(port(l4)?),
        17 => Transport::Udp(port(l4)?),
        1 | 58 => Transport::Icmp,
        n => Transport::Other(n),
    };
    Some(Blocked {
        prefix,
        source,
        destination,
        transport,
    })
}

/// (source, destination, protocol, transport header) of an IP packet.
fn ip_header(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some((src.into(), dst.into(), *p.get(9)?, p.get(ihl..)?))
        }
        6 => {
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            // Extension headers are not followed: such packets are
            // reported by their next-header number.
            Some((src.into(), dst.into(), *p.get(6)?, p.get(40..)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_tcp_packet_parses() {
        let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&[10, 77, 1, 11, 10, 77, 1, 12]);
        ip.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x90]); // 40000 -> 8080
        ip.extend_from_slice(&[0; 16]);
        let attrs = [nla(NFULA_PREFIX, b"tj: \0"), nla(NFULA_PAYLOAD, &ip)].concat();
        let mut m = config(0, &attrs);
        m[4..6].copy_from_slice(&(SUBSYS << 8).to_ne_bytes());
        let b = parse_blocked(&m).unwrap();
        assert_eq!(b.prefix, "tj: ");
        assert_eq!(b.source, "10.77.1.11".parse::<IpAddr>().unwrap());
        assert_eq!(b.transport, Transport::Tcp(8080));
        assert_eq!(b.transport.to_string(), "tcp/8080");
        assert_eq!(parse_blocked(&m[..24]), None);
    }

    #[test]
    fn logged_arp_request_parses() {
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 11, 10, 77, 1, 11]);
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 77, 1, 12]);
        let hdr = [0x08, 0x06, 2, 0];
        let attrs = [
            nla(NFULA_PACKET_HDR, &hdr),
            nla(NFULA_PREFIX, b"tj: \0"),
            nla(NFULA_PAYLOAD, &arp),
        ]
        .concat();
        let mut m = config(0, &attrs);
        m[4..6].copy_from_slice(&(SUBSYS << 8).to_ne_bytes());
        let b = parse_blocked(&m).unwrap();
        assert_eq!(b.source, "10.77.1.11".parse::<IpAddr>().unwrap());
        assert_eq!(b.destination, "10.77.1.12".parse::<IpAddr>().unwrap());
        assert_eq!(b.transport.to_string(), "arp who-has");
        let mut short = config(
            0,
            &[nla(NFULA_PACKET_HDR, &hdr), nla(NFULA_PAYLOAD, &arp[..20])].concat(),
        );
        short[4..6].copy_from_slice(&(SUBSYS << 8).to_ne_bytes());
        assert_eq!(parse_blocked(&short), None, "a truncated ARP header");
    }
}
