//! Named sets: what their keys are made of, and their elements.
//!
//! A key is one field (a set of addresses, of interface names) or a
//! concatenation of fields (`iifname . ether saddr`): one lookup then
//! matches several packet fields at once, so a per-port binding of 1,000
//! containers is one rule and 1,000 elements, not 1,000 rules.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::map::{MapVerdict, SetData};

/// A MAC address.
pub type Mac = [u8; 6];

/// A MAC address as a number, ordered as its bytes are: what sorting and
/// searching hundreds of MACs compare (as bytes, each comparison was a call
/// to memcmp).
pub fn mac_key(m: Mac) -> u64 {
    m.iter().fold(0, |k, b| k << 8 | u64::from(*b))
}

/// A MAC address written `02:42:ac:11:00:02` (case-insensitive).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// One field of a set key, named after the packet field it holds.
///
/// The first three are declared by type (nft `type ipv4_addr`); the rest
/// by the expression that fills them (nft `typeof iifname . ip saddr`),
/// which is how they are declared inside a concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `ipv4_addr`
    Ipv4Addr,
    /// `ipv6_addr`
    Ipv6Addr,
    /// `ifname`
    Ifname,
    /// `iifname`: the port a frame came in on.
    Iifname,
    /// `oifname`: the port a frame leaves by.
    Oifname,
    /// `ether saddr`
    EtherSaddr,
    /// `ip saddr`
    IpSaddr,
    /// `ip daddr`
    IpDaddr,
    /// `ip6 saddr`
    Ip6Saddr,
    /// `ip6 daddr`
    Ip6Daddr,
    /// `arp saddr ether`: the sender hardware address of an ARP packet.
    ArpSha,
    /// `arp saddr ip`: the sender protocol address of an ARP packet.
    ArpSpa,
    /// `arp daddr ip`: the target protocol address of an ARP packet.
    ArpTpa,
    /// `tcp sport`
    TcpSport,
    /// `tcp dport`
    TcpDport,
    /// `udp sport`
    UdpSport,
    /// `udp dport`
    UdpDport,
    /// `icmp id`: the identifier of an echo request or reply.
    IcmpId,
    /// `icmpv6 id`
    Icmpv6Id,
    /// `@th,64,128`: the target address of an IPv6 neighbour solicitation
    /// or advertisement (nft 1.0.6 has no name for it).
    NdTarget,
    /// `meta l4proto`: the transport protocol.
    L4Proto,
    /// `th dport`: the destination port, whatever the transport.
    ThDport,
}

/// What a field's bytes mean, for storing and printing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An interface name, NUL-padded to 16 bytes.
    Ifname,
    /// A MAC address.
    Ether,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A 16-bit number in network byte order (port, echo identifier).
    U16,
    /// One byte (a protocol number).
    U8,
}

impl Field {
    /// What the field's bytes mean.
    pub fn kind(self) -> Kind {
        use Field::*;
        match self {
            Ifname | Iifname | Oifname => Kind::Ifname,
            EtherSaddr | ArpSha => Kind::Ether,
            Ipv4Addr | IpSaddr | IpDaddr | ArpSpa | ArpTpa => Kind::Ipv4,
            Ipv6Addr | Ip6Saddr | Ip6Daddr | NdTarget => Kind::Ipv6,
            TcpSport | TcpDport | UdpSport | UdpDport | IcmpId | Icmpv6Id | ThDport => Kind::U16,
            L4Proto => Kind::U8,
        }
    }

    /// The field's length in bytes (before register padding).
    pub fn width(self) -> usize {
        match self.kind() {
            Kind::Ifname | Kind::Ipv6 => 16,
            Kind::Ether => 6,
            Kind::Ipv4 => 4,
            Kind::U16 => 2,
            Kind::U8 => 1,
        }
    }

    /// The field's length in a key: each field of a concatenation starts
    /// on a 32-bit register boundary.
    pub fn padded_width(self) -> usize {
        self.width().div_ceil(4) * 4
    }

    /// nft's datatype number for the field (`TYPE_*` of nft's datatype.h).
    pub fn datatype(self) -> u32 {
        use Field::*;
        match self {
            Ipv4Addr | IpSaddr | IpDaddr | ArpSpa | ArpTpa => 7,
            Ipv6Addr | Ip6Saddr | Ip6Daddr => 8,
            EtherSaddr | ArpSha => 9,
            TcpSport | TcpDport | UdpSport | UdpDport | ThDport => 13,
            L4Proto => 12,
            Ifname | Iifname | Oifname => 41,
            // `integer`: nft has no better type for these.
            IcmpId | Icmpv6Id | NdTarget => 4,
        }
    }

    /// How nft names the field in a `typeof` declaration, or the type in a
    /// `type` declaration.
    pub fn nft(self) -> &'static str {
        use Field::*;
        match self {
            Ipv4Addr => "ipv4_addr",
            Ipv6Addr => "ipv6_addr",
            Ifname => "ifname",
            Iifname => "iifname",
            Oifname => "oifname",
            EtherSaddr => "ether saddr",
            IpSaddr => "ip saddr",
            IpDaddr => "ip daddr",
            Ip6Saddr => "ip6 saddr",
            Ip6Daddr => "ip6 daddr",
            ArpSha => "arp saddr ether",
            ArpSpa => "arp saddr ip",
            ArpTpa => "arp daddr ip",
            TcpSport => "tcp sport",
            TcpDport => "tcp dport",
            UdpSport => "udp sport",
            UdpDport => "udp dport",
            IcmpId => "icmp id",
            Icmpv6Id => "icmpv6 id",
            NdTarget => "@th,64,128",
            L4Proto => "meta l4proto",
            ThDport => "th dport",
        }
    }

    /// True for the fields declared by type rather than by expression.
    pub fn is_type(self) -> bool {
        matches!(self, Field::Ipv4Addr | Field::Ipv6Addr | Field::Ifname)
    }
}

/// The key of a set: one field, or a concatenation of several.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetKey(Vec<Field>);

impl SetKey {
    /// A set of IPv4 addresses (`type ipv4_addr`).
    pub fn ipv4() -> SetKey {
        SetKey(vec![Field::Ipv4Addr])
    }

    /// A set of IPv6 addresses (`type ipv6_addr`).
    pub fn ipv6() -> SetKey {
        SetKey(vec![Field::Ipv6Addr])
    }

    /// A set of interface names (`type ifname`).
    pub fn ifname() -> SetKey {
        SetKey(vec![Field::Ifname])
    }

    /// A key of these fields, in order (`typeof a . b . c`).
    pub fn concat(fields: impl IntoIterator<Item = Field>) -> SetKey {
        SetKey(fields.into_iter().collect())
    }

    /// The fields of the key.
    pub fn fields(&self) -> &[Field] {
        &self.0
    }

    /// True for a concatenation of two or more fields.
    pub fn is_concat(&self) -> bool {
        self.0.len() > 1
    }

    /// The key's datatype as nft stores it: each field's type in 6 bits,
    /// the first field in the highest bits.
    pub fn datatype(&self) -> u32 {
        self.0.iter().fold(0u32, |acc, f| (acc << 6) | f.datatype())
    }

    /// The key's length in bytes, every field padded to 32 bits.
    pub fn len(&self) -> usize {
        self.0.iter().map(|f| f.padded_width()).sum()
    }

    /// True for a key without fields (never built; a decoded oddity).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An interface name as the kernel compares it: at most 15 bytes,
/// NUL-padded to 16. Held inline (a policy of hundreds of ports is
/// compiled on every Docker event: its elements are copied, never
/// allocated one by one); ordered as the names are.
#[derive(Clone, Copy, Eq, Default)]
pub struct Ifname([u8; 16]);

// Sorting and diffing sets of hundreds of names compares them millions of
// times: as one 128-bit number (`Ifname::key`), not through a call to
// memcmp.
impl PartialEq for Ifname {
    fn eq(&self, other: &Ifname) -> bool {
        self.key() == other.key()
    }
}

impl std::hash::Hash for Ifname {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialOrd for Ifname {
    fn partial_cmp(&self, other: &Ifname) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ifname {
    fn cmp(&self, other: &Ifname) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Ifname {
    /// The name as a number, big-endian: ordered as the names' bytes are.
    fn key(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The name, or `None` when it cannot be an interface's (longer than
    /// 15 bytes, or holding a NUL).
    pub fn new(name: &str) -> Option<Ifname> {
        let bytes = name.as_bytes();
        if bytes.len() > 15 || bytes.contains(&0) {
            return None;
        }
        let mut out = [0; 16];
        out[..bytes.len()].copy_from_slice(bytes);
        Some(Ifname(out))
    }

    /// The name from a key field's bytes (cut at the first NUL); `None`
    /// when they are not a name.
    fn from_bytes(bytes: &[u8]) -> Option<Ifname> {
        let name = bytes.split(|b| *b == 0).next().unwrap_or_default();
        Ifname::new(std::str::from_utf8(name).ok()?)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(16);
        // Made only from a `&str` of whole characters: always UTF-8.
        std::str::from_utf8(&self.0[..len]).unwrap_or_default()
    }
}

impl fmt::Debug for Ifname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Ifname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value of one field of an element. Values of different kinds order
/// as the variants are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value {
    /// An interface name.
    Ifname(Ifname),
    /// A MAC address.
    Ether(Mac),
    /// An address; in an interval set, a prefix.
    Net(IpNet),
    /// A port or echo identifier.
    U16(u16),
    /// A protocol number.
    U8(u8),
    /// The verdict of a verdict map's element: never part of a key, always
    /// the element's last value.
    Verdict(MapVerdict),
}

// Hand-written for speed (sets of hundreds of elements are sorted and
// diffed on every Docker event): each kind compared as integers. The order
// is the one deriving would give: by kind, then by value (a prefix by
// family, address, then length).
impl Ord for Value {
    fn cmp(&self, other: &Value) -> std::cmp::Ordering {
        fn net(n: &IpNet) -> (u8, u128, u8) {
            match n {
                IpNet::V4(n) => (0, u128::from(u32::from(n.addr())), n.prefix_len()),
                IpNet::V6(n) => (1, u128::from(n.addr()), n.prefix_len()),
            }
        }
        match (self, other) {
            (Value::Ifname(a), Value::Ifname(b)) => a.cmp(b),
            (Value::Ether(a), Value::Ether(b)) => mac_key(*a).cmp(&mac_key(*b)),
            (Value::Net(a), Value::Net(b)) => net(a).cmp(&net(b)),
            (Value::U16(a), Value::U16(b)) => a.cmp(b),
            (Value::U8(a), Value::U8(b)) => a.cmp(b),
            (Value::Verdict(a), Value::Verdict(b)) => a.cmp(b),
            _ => self.kind_rank().cmp(&other.kind_rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Value {
    /// The place of the value's kind in the order of kinds.
    fn kind_rank(&self) -> u8 {
        match self {
            Value::Ifname(_) => 0,
            Value::Ether(_) => 1,
            Value::Net(_) => 2,
            Value::U16(_) => 3,
            Value::U8(_) => 4,
            Value::Verdict(_) => 5,
        }
    }

    /// An address as a value (a host prefix).
    pub fn addr(ip: IpAddr) -> Value {
        Value::Net(IpNet::from(ip))
    }

    /// The value's bytes as a key field of `kind`, padded to 32 bits, or
    /// `None` when the value is not of that kind.
    pub fn to_key(&self, kind: Kind) -> Option<Vec<u8>> {
        let mut bytes = match (self, kind) {
            (Value::Ifname(n), Kind::Ifname) => n.0.to_vec(),
            (Value::Ether(m), Kind::Ether) => m.to_vec(),
            (Value::Net(IpNet::V4(n)), Kind::Ipv4) => n.addr().octets().to_vec(),
            (Value::Net(IpNet::V6(n)), Kind::Ipv6) => n.addr().octets().to_vec(),
            (Value::U16(v), Kind::U16) => v.to_be_bytes().to_vec(),
            (Value::U8(v), Kind::U8) => vec![*v],
            _ => return None,
        };
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        Some(bytes)
    }

    /// The value of a key field of `kind` from its (unpadded) bytes.
    pub fn from_key(kind: Kind, bytes: &[u8]) -> Option<Value> {
        Some(match kind {
            Kind::Ifname => Value::Ifname(Ifname::from_bytes(bytes)?),
            Kind::Ether => Value::Ether(bytes.get(..6)?.try_into().ok()?),
            Kind::Ipv4 => Value::addr(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(bytes.get(..4)?).ok()?,
            ))),
            Kind::Ipv6 => Value::addr(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(bytes.get(..16)?).ok()?,
            ))),
            Kind::U16 => Value::U16(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?)),
            Kind::U8 => Value::U8(*bytes.first()?),
        })
    }
}

impl fmt::Display for Value {
    /// nft's spelling: names quoted, MACs with colons, host prefixes as
    /// bare addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ifname(n) => write!(f, "\"{}\"", n.as_str().replace('"', "'")),
            Value::Ether(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            Value::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Value::Net(n) => write!(f, "{n}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::U8(6) => f.write_str("tcp"),
            Value::U8(17) => f.write_str("udp"),
            Value::U8(v) => write!(f, "{v}"),
            Value::Verdict(v) => write!(f, "{v}"),
        }
    }
}

/// The most fields an element has: nft (1.0.6) handles no longer
/// concatenations, and trafficjam makes none.
pub const MAX_FIELDS: usize = 5;

/// One element: a value per field of the set's key.
///
/// Held inline, without allocating: a daemon compiles thousands of them
/// on every Docker event, then sorts and compares them.
#[derive(Clone, Copy)]
pub struct Element {
    len: u8,
    values: [Value; MAX_FIELDS],
}

impl Element {
    /// An element of a one-field set.
    pub fn one(value: Value) -> Element {
        Element::of([value])
    }

    /// An element of these values (at most [`MAX_FIELDS`], checked when
    /// compiling).
    pub fn of<const N: usize>(values: [Value; N]) -> Element {
        const { assert!(N <= MAX_FIELDS, "more fields than a key holds") };
        let mut e = Element {
            len: N as u8,
            values: [Value::U8(0); MAX_FIELDS],
        };
        e.values[..N].copy_from_slice(&values);
        e
    }

    /// An element of these values; `None` when there are more than
    /// [`MAX_FIELDS`].
    pub fn new(values: &[Value]) -> Option<Element> {
        let mut e = Element {
            len: u8::try_from(values.len()).ok()?,
            values: [Value::U8(0); MAX_FIELDS],
        };
        e.values.get_mut(..values.len())?.copy_from_slice(values);
        Some(e)
    }

    /// The values, one per field of the key.
    pub fn values(&self) -> &[Value] {
        &self.values[..usize::from(self.len).min(MAX_FIELDS)]
    }

    /// The element as a key of `key`, or `None` when its values do not
    /// fit the key's fields.
    pub fn to_key(&self, key: &SetKey) -> Option<Vec<u8>> {
        if self.key_values().len() != key.fields().len() {
            return None;
        }
        let mut out = Vec::with_capacity(key.len());
        for (v, f) in self.key_values().iter().zip(key.fields()) {
            out.extend(v.to_key(f.kind())?);
        }
        Some(out)
    }

    /// The element a key of `key` holds, or `None` when the bytes do not
    /// fit the key.
    pub fn from_key(key: &SetKey, bytes: &[u8]) -> Option<Element> {
        if bytes.len() != key.len() {
            return None;
        }
        let mut values = Vec::with_capacity(key.fields().len());
        let mut rest = bytes;
        for f in key.fields() {
            let (field, tail) = rest.split_at_checked(f.padded_width())?;
            values.push(Value::from_key(f.kind(), field)?);
            rest = tail;
        }
        Element::new(&values)
    }

    /// The element of a verdict map: the key's values, then the verdict.
    pub fn mapped(key: &[Value], verdict: MapVerdict) -> Option<Element> {
        let mut values = key.to_vec();
        values.push(Value::Verdict(verdict));
        Element::new(&values)
    }

    /// The values of the key: all of them, but for a map element's verdict.
    pub fn key_values(&self) -> &[Value] {
        match self.values().split_last() {
            Some((Value::Verdict(_), key)) => key,
            _ => self.values(),
        }
    }

    /// The verdict of a verdict map's element.
    pub fn verdict(&self) -> Option<MapVerdict> {
        match self.values().last() {
            Some(Value::Verdict(v)) => Some(*v),
            _ => None,
        }
    }

    /// The one address or prefix of an address set's element.
    pub fn net(&self) -> Option<IpNet> {
        match self.values() {
            [Value::Net(n)] => Some(*n),
            _ => None,
        }
    }
}

// Equality, order and hash of the values only (not of the unused room).
impl PartialEq for Element {
    fn eq(&self, other: &Element) -> bool {
        self.values() == other.values()
    }
}

impl Eq for Element {}

impl PartialOrd for Element {
    fn partial_cmp(&self, other: &Element) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Element {
    fn cmp(&self, other: &Element) -> std::cmp::Ordering {
        self.values().cmp(other.values())
    }
}

impl std::hash::Hash for Element {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.values().hash(state);
    }
}

impl fmt::Debug for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Element").field(&self.values()).finish()
    }
}

impl fmt::Display for Element {
    /// nft's spelling: `"veth1" . 10.0.0.2`, `"veth1" : goto record`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.key_values().iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{v}")?;
        }
        if let Some(v) = self.verdict() {
            write!(f, " : {v}")?;
        }
        Ok(())
    }
}

/// A set the packet path fills (`update @set { … }`): its elements are the
/// kernel's runtime state, never managed or compared by trafficjam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dynamic {
    /// The most elements the kernel keeps at once.
    pub size: u32,
}

/// A named set.
///
/// Elements are kept sorted and deduplicated so that two sets with the same
/// content compare equal whatever order the kernel returned them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Set name, unique in its table.
    pub name: String,
    /// What each element holds.
    pub key: SetKey,
    /// `flags interval`: elements are prefixes, not single addresses.
    pub interval: bool,
    /// `flags dynamic,timeout` with a size: filled by the packet path.
    pub dynamic: Option<Dynamic>,
    /// What each element carries besides its key: `Some` for a map, whose
    /// elements end with that value.
    pub data: Option<SetData>,
    /// The elements (always empty for a dynamic set).
    pub elements: Vec<Element>,
}

impl Set {
    /// A set of addresses or prefixes, normalised (sorted, deduplicated,
    /// host bits cleared; merged when `interval`, as the kernel merges).
    pub fn new(
        name: &str,
        key: SetKey,
        interval: bool,
        elements: impl IntoIterator<Item = IpNet>,
    ) -> Set {
        let mut nets: Vec<IpNet> = elements.into_iter().map(|n| n.trunc()).collect();
        if interval {
            // The kernel stores intervals, not prefixes: overlapping or
            // adjacent prefixes come back merged, so merge them here too.
            nets = IpNet::aggregate(&nets);
        }
        Set::of(
            name,
            key,
            nets.into_iter().map(|n| Element::one(Value::Net(n))),
        )
        .with_interval(interval)
    }

    /// A set of interface names (bridge ports), sorted and deduplicated.
    pub fn of_ifnames(name: &str, ifnames: impl IntoIterator<Item = String>) -> Set {
        Set::of(
            name,
            SetKey::ifname(),
            ifnames
                .into_iter()
                .filter_map(|n| Ifname::new(&n))
                .map(|n| Element::one(Value::Ifname(n))),
        )
    }

    /// A set of any key with these elements, sorted and deduplicated.
    pub fn of(name: &str, key: SetKey, elements: impl IntoIterator<Item = Element>) -> Set {
        let mut elements: Vec<Element> = elements.into_iter().collect();
        elements.sort();
        elements.dedup();
        Set {
            name: name.to_string(),
            key,
            interval: false,
            dynamic: None,
            data: None,
            elements,
        }
    }

    /// A verdict map (`type KEY : verdict`) with these elements (each made
    /// by [`Element::mapped`]), sorted and deduplicated.
    pub fn verdict_map(
        name: &str,
        key: SetKey,
        elements: impl IntoIterator<Item = Element>,
    ) -> Set {
        Set {
            data: Some(SetData::Verdict),
            ..Set::of(name, key, elements)
        }
    }

    /// An empty set that rules fill from the packet path, holding at most
    /// `size` elements, each with the timeout its `update` gives.
    pub fn dynamic(name: &str, key: SetKey, size: u32) -> Set {
        Set {
            dynamic: Some(Dynamic { size }),
            ..Set::of(name, key, [])
        }
    }

    fn with_interval(mut self, interval: bool) -> Set {
        self.interval = interval;
        self
    }

    /// The addresses or prefixes of an address set.
    pub fn nets(&self) -> Vec<IpNet> {
        self.elements.iter().filter_map(Element::net).collect()
    }

    /// The names of an interface-name set.
    pub fn ifnames(&self) -> Vec<String> {
        self.elements
            .iter()
            .filter_map(|e| match e.values() {
                [Value::Ifname(n)] => Some(n.to_string()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        for bad in [
            "02:42",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:xx",
            "02:42:ac:11::02",
            "002:42:ac:11:00:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn concatenated_keys_match_nft() {
        // Datatypes and lengths nft 1.0.6 sends for these typeof sets.
        let macs = SetKey::concat([Field::Iifname, Field::EtherSaddr]);
        assert_eq!((macs.datatype(), macs.len()), (0xa49, 24));
        let flows = SetKey::concat([
            Field::Oifname,
            Field::IpSaddr,
            Field::IpDaddr,
            Field::TcpSport,
            Field::TcpDport,
        ]);
        assert_eq!((flows.datatype(), flows.len()), (0x291c_734d, 32));
        let pings = SetKey::concat([
            Field::Oifname,
            Field::Ip6Saddr,
            Field::Ip6Daddr,
            Field::Icmpv6Id,
        ]);
        assert_eq!((pings.datatype(), pings.len()), (0x00a4_8204, 52));
    }

    #[test]
    fn elements_round_trip_through_key_bytes() {
        let key = SetKey::concat([Field::Iifname, Field::EtherSaddr, Field::IpSaddr]);
        let e = Element::of([
            Value::Ifname(Ifname::new("vb1").unwrap()),
            Value::Ether([2, 0, 0, 0, 0, 1]),
            Value::addr("10.0.0.1".parse().unwrap()),
        ]);
        let bytes = e.to_key(&key).unwrap();
        assert_eq!(bytes.len(), 28);
        assert_eq!(&bytes[16..24], &[2, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(Element::from_key(&key, &bytes), Some(e));
        assert_eq!(e.to_string(), "\"vb1\" . 02:00:00:00:00:01 . 10.0.0.1");
        // Wrong lengths and kinds are refused, never a panic.
        assert_eq!(Element::from_key(&key, &bytes[..27]), None);
        assert_eq!(Element::one(Value::U16(1)).to_key(&key), None);
    }

    #[test]
    fn interface_names_fit_the_kernels_and_sort_as_strings() {
        assert_eq!(
            Ifname::new("veth0123456789a").unwrap().as_str(),
            "veth0123456789a"
        );
        assert_eq!(Ifname::new("veth0123456789ab"), None, "16 bytes");
        assert_eq!(Ifname::new("a\0b"), None);
        let n = |s| Ifname::new(s).unwrap();
        assert!(n("ab") < n("abc") && n("abc") < n("b"));
        // Compared as numbers, ordered as the strings are (prefixes,
        // bytes above 0x7f, the empty name, the longest).
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "b",
            "br-1",
            "br-10",
            "br-2",
            "v\u{e9}",
            "veth~",
            "z0123456789abcd",
        ];
        for a in names {
            for b in names {
                assert_eq!(n(a).cmp(&n(b)), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(n(a) == n(b), a == b);
            }
        }
        // From the kernel: cut at the NUL; 16 bytes without one, or not
        // UTF-8, are no name (never a panic).
        let key = SetKey::ifname();
        let mut bytes = *b"br-1\0\0\0\0\0\0\0\0\0\0\0\0";
        let e = Element::from_key(&key, &bytes).unwrap();
        assert_eq!(e.to_string(), "\"br-1\"");
        bytes = [b'x'; 16];
        assert_eq!(Element::from_key(&key, &bytes), None);
        bytes[0] = 0xff;
        bytes[1] = 0;
        assert_eq!(Element::from_key(&key, &bytes), None);
    }

    #[test]
    fn values_order_as_derived_order_would() {
        // The order deriving gives, for reference.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Derived {
            Ifname([u8; 16]),
            Ether(Mac),
            Net(IpNet),
            U16(u16),
            U8(u8),
            Verdict(MapVerdict),
        }
        let derived = |v: &Value| match *v {
            Value::Ifname(n) => Derived::Ifname(n.0),
            Value::Ether(m) => Derived::Ether(m),
            Value::Net(n) => Derived::Net(n),
            Value::U16(x) => Derived::U16(x),
            Value::U8(x) => Derived::U8(x),
            Value::Verdict(x) => Derived::Verdict(x),
        };
        let net = |s: &str| Value::Net(s.parse().unwrap());
        let values = [
            Value::Ifname(Ifname::new("").unwrap()),
            Value::Ifname(Ifname::new("br-1").unwrap()),
            Value::Ifname(Ifname::new("br-10").unwrap()),
            Value::Ether([0, 0, 0, 0, 0, 0xff]),
            Value::Ether([0, 0, 0, 0, 1, 0]),
            Value::Ether([0xff, 0, 0, 0, 0, 0]),
            net("10.0.0.0/8"),
            net("10.0.0.0/16"),
            net("10.0.0.1/32"),
            net("255.255.255.255/32"),
            net("::/0"),
            net("::1/128"),
            net("fe80::/10"),
            net("ff02::1/128"),
            Value::U16(0),
            Value::U16(0x100),
            Value::U16(u16::MAX),
            Value::U8(0),
            Value::U8(u8::MAX),
            Value::Verdict(MapVerdict::Accept),
            Value::Verdict(MapVerdict::goto("from_port")),
            Value::Verdict(MapVerdict::goto("record")),
        ];
        for a in &values {
            for b in &values {
                assert_eq!(a.cmp(b), derived(a).cmp(&derived(b)), "{a} against {b}");
                assert_eq!(a == b, derived(a) == derived(b), "{a} against {b}");
            }
        }
    }

    #[test]
    fn map_elements_keep_their_verdict_out_of_the_key() {
        let key = SetKey::ifname();
        let port = Value::Ifname(Ifname::new("vb1").unwrap());
        let e = Element::mapped(&[port], MapVerdict::goto("record")).unwrap();
        assert_eq!(e.key_values(), &[port]);
        assert_eq!(e.verdict(), Some(MapVerdict::goto("record")));
        assert_eq!(e.to_key(&key), Element::one(port).to_key(&key));
        assert_eq!(e.to_string(), "\"vb1\" : goto record");
        assert_eq!(Element::one(port).verdict(), None);
        // Same key, other verdict: another element (a role change is a
        // removal and an addition).
        let f = Element::mapped(&[port], MapVerdict::goto("from_port")).unwrap();
        assert!(f < e);
        let m = Set::verdict_map("roles", key, [e, f, e]);
        assert_eq!(m.elements, [f, e]);
        assert_eq!(m.data, Some(SetData::Verdict));
    }

    #[test]
    fn elements_hold_at_most_five_values_and_compare_by_them_only() {
        let v = Value::U8(7);
        assert_eq!(Element::new(&[v; 5]).map(|e| e.values().len()), Some(5));
        assert_eq!(Element::new(&[v; 6]), None);
        assert_eq!(Element::new(&[v]), Some(Element::one(v)));
        assert!(Element::one(Value::U8(0)) < Element::of([Value::U8(0), Value::U8(0)]));
        let key = SetKey::concat([Field::L4Proto; 6]);
        assert_eq!(Element::from_key(&key, &[0; 24]), None, "six fields");
    }
}
