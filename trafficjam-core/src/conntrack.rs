//! Conntrack over ctnetlink: list the tracked connections and delete the
//! ones an address opened, so that an address leaving the whitelist loses
//! the connections it had (whoever gets the address next cannot ride on
//! them).
//!
//! Constants from `linux/netfilter/nfnetlink_conntrack.h`. Parsing is
//! bounds-checked and fuzzed like every decoder of kernel bytes.

use std::net::IpAddr;

use crate::wire::nla::{Attrs, Message};

/// `NFNL_SUBSYS_CTNETLINK`
const SUBSYS: u16 = 1;
/// `IPCTNL_MSG_CT_NEW`: what a dump answers with.
const MSG_NEW: u8 = 0;
/// `IPCTNL_MSG_CT_GET`
const MSG_GET: u16 = 1;
/// `IPCTNL_MSG_CT_DELETE`
const MSG_DELETE: u16 = 2;
/// `CTA_TUPLE_ORIG`
const CTA_TUPLE_ORIG: u16 = 1;
/// `CTA_ZONE`
const CTA_ZONE: u16 = 18;
/// `CTA_TUPLE_IP`
const CTA_TUPLE_IP: u16 = 1;
/// `CTA_IP_V4_SRC`, `CTA_IP_V4_DST`, `CTA_IP_V6_SRC`, `CTA_IP_V6_DST`
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// No family: both, in a dump.
const AF_UNSPEC: u8 = 0;
#[cfg(test)]
const AF_INET: u8 = 2;

/// One tracked connection, as much of it as deleting it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `AF_INET` or `AF_INET6`.
    family: u8,
    /// Source of the original direction: who opened it.
    pub source: IpAddr,
    /// Destination of the original direction.
    pub destination: IpAddr,
    /// The `CTA_TUPLE_ORIG` attribute as the kernel sent it, whole.
    tuple: Vec<u8>,
    /// The `CTA_ZONE` attribute, when the entry has one.
    zone: Option<Vec<u8>>,
}

fn message(ty: u16, flags: u16, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = 20 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((SUBSYS << 8) | ty).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&[0; 8]); // sequence number and port id
    m.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg
    m.extend_from_slice(attrs);
    m
}

/// Dump every tracked connection of both IP families in one request:
/// `AF_UNSPEC` filters no family. Each dump walks every bucket of the
/// kernel's table (262144 on an ordinary host: milliseconds, however few
/// connections there are), so one dump instead of one per family halves
/// what revoking a proxy costs.
pub fn dump_request() -> Vec<u8> {
    message(MSG_GET, NLM_F_DUMP, AF_UNSPEC, &[])
}

/// The request deleting `c` (by its original tuple, in its zone).
pub fn delete_request(c: &Connection) -> Vec<u8> {
    let mut attrs = c.tuple.clone();
    if let Some(zone) = &c.zone {
        attrs.extend_from_slice(zone);
    }
    message(MSG_DELETE, 0, c.family, &attrs)
}

/// A connection from one message of a conntrack dump; `None` for anything
/// else or anything malformed.
pub fn parse_connection(bytes: &[u8]) -> Option<Connection> {
    let m = Message::parse(bytes).ok()?;
    if u16::from(m.subsys) != SUBSYS || m.kind != MSG_NEW {
        return None;
    }
    let (mut tuple, mut zone, mut ends) = (None, None, None);
    let mut rest = m.attrs;
    for a in Attrs::new(m.attrs) {
        let (kind, value) = a.ok()?;
        // The whole attribute, header and padding, to send back as is.
        let whole = attr_bytes(rest, value.len())?;
        rest = rest.get(whole.len()..).unwrap_or(&[]);
        match kind {
            CTA_TUPLE_ORIG => {
                tuple = Some(whole.to_vec());
                ends = endpoints(value);
            }
            CTA_ZONE => zone = Some(whole.to_vec()),
            _ => {}
        }
    }
    let (source, destination) = ends?;
    Some(Connection {
        family: m.family,
        source,
        destination,
        tuple: tuple?,
        zone,
    })
}

/// The attribute at the start of `buf` whose value is `len` bytes,
/// including its header and alignment padding.
fn attr_bytes(buf: &[u8], len: usize) -> Option<&[u8]> {
    let aligned = (4 + len + 3) & !3;
    buf.get(..aligned.min(buf.len()))
        .filter(|b| b.len() >= 4 + len)
}

fn endpoints(tuple: &[u8]) -> Option<(IpAddr, IpAddr)> {
    for a in Attrs::new(tuple) {
        let (kind, value) = a.ok()?;
        if kind != CTA_TUPLE_IP {
            continue;
        }
        let (mut src, mut dst) = (None, None);
        for b in Attrs::new(value) {
            let (kind, v) = b.ok()?;
            match kind {
                CTA_IP_V4_SRC => src = <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
                CTA_IP_V4_DST => dst = <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
                CTA_IP_V6_SRC => src = <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
                CTA_IP_V6_DST => dst = <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
                _ => {}
            }
        }
        return Some((src?, dst?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    #[test]
    fn dump_entry_parses_and_delete_carries_its_tuple() {
        let ip = [
            nla(CTA_IP_V4_SRC, &[10, 0, 0, 1]),
            nla(CTA_IP_V4_DST, &[10, 0, 0, 2]),
        ]
        .concat();
        let tuple = nla(0x8000 | CTA_TUPLE_ORIG, &nla(0x8000 | CTA_TUPLE_IP, &ip));
        let zone = nla(CTA_ZONE, &[0, 7]);
        let mut entry = message(0, 0, AF_INET, &[tuple.clone(), zone.clone()].concat());
        entry[4..6].copy_from_slice(&((SUBSYS << 8) | u16::from(MSG_NEW)).to_ne_bytes());
        let c = parse_connection(&entry).expect("parsed");
        assert_eq!(c.source, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.destination, "10.0.0.2".parse::<IpAddr>().unwrap());
        let del = delete_request(&c);
        assert_eq!(&del[20..], &[tuple, zone].concat()[..]);
        assert_eq!(
            u16::from_ne_bytes([del[4], del[5]]),
            (SUBSYS << 8) | MSG_DELETE
        );
    }

    #[test]
    fn truncated_entries_are_none() {
        assert_eq!(parse_connection(&[1, 2, 3]), None);
        let mut m = message(0, 0, AF_INET, &[8, 0, 0x01, 0x80, 1, 2]);
        m[4..6].copy_from_slice(&(SUBSYS << 8).to_ne_bytes());
        assert_eq!(parse_connection(&m), None);
    }
}
