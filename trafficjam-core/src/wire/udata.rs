//! The user-data TLVs nft stores on tables, sets and rules (libnftnl's
//! `udata`): one byte type, one byte length, value. The kernel keeps them
//! opaque; nft reads them back to print comments, byte order, and the
//! expressions a `typeof` set was declared with.

use crate::model::{Field, SetData, SetKey};

/// `NFTNL_UDATA_TABLE_COMMENT`
const TABLE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_SET_KEYBYTEORDER`
const SET_KEYBYTEORDER: u8 = 0;
/// nft's `BYTEORDER_HOST_ENDIAN`: interface names are host data.
const BYTEORDER_HOST_ENDIAN: u32 = 1;
/// nft's `BYTEORDER_BIG_ENDIAN`: addresses are stored in network order.
const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// The user data of a table carrying `comment` (NUL-terminated, as nft
/// writes it). Comments longer than a TLV can hold are cut.
pub(crate) fn table_comment(comment: &str) -> Vec<u8> {
    let mut value = comment.as_bytes().to_vec();
    value.truncate(usize::from(u8::MAX) - 1);
    value.push(0);
    tlv(TABLE_COMMENT, &value)
}

/// The user data nft attaches to a set: the byte order of its keys.
pub(crate) fn set_key_byteorder(big_endian: bool) -> Vec<u8> {
    let order = if big_endian {
        BYTEORDER_BIG_ENDIAN
    } else {
        BYTEORDER_HOST_ENDIAN
    };
    // nft stores the byte order as a host-endian u32.
    tlv(SET_KEYBYTEORDER, &order.to_ne_bytes())
}

/// `NFTNL_UDATA_RULE_COMMENT`
const RULE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_SET_KEY_TYPEOF`
const SET_KEY_TYPEOF: u8 = 3;
/// nft's `BYTEORDER_INVALID`: a concatenation has no single byte order.
const BYTEORDER_NONE: u32 = 0;

/// The user data of a rule carrying `comment` (NUL-terminated).
pub(crate) fn rule_comment(comment: &str) -> Vec<u8> {
    table_comment(comment)
}

/// The comment in a rule's user data, if there is one.
pub(crate) fn parse_rule_comment(data: &[u8]) -> Option<String> {
    let value = find(data, RULE_COMMENT)?;
    let text = value.split(|b| *b == 0).next()?;
    String::from_utf8(text.to_vec()).ok()
}

/// `NFTNL_UDATA_SET_DATABYTEORDER`
const SET_DATABYTEORDER: u8 = 1;
/// `NFTNL_UDATA_SET_DATA_INTERVAL`
const SET_DATA_INTERVAL: u8 = 6;

/// The user data of a set with this key (and, for a map, this data), as
/// nft 1.0.6 writes it: the key byte order, a map's data byte order (none,
/// for verdicts), for a concatenation the `typeof` expressions (so that
/// `nft list` prints the set as trafficjam declared it), and whether a
/// map's data are intervals (never).
pub(crate) fn set_key(key: &SetKey, data: Option<SetData>) -> Vec<u8> {
    let by_type = matches!(key.fields(), [f] if f.is_type());
    let mut out = match key.fields() {
        [f] if by_type => set_key_byteorder(*f != Field::Ifname),
        _ => tlv(SET_KEYBYTEORDER, &BYTEORDER_NONE.to_ne_bytes()),
    };
    if data.is_some() {
        out.extend(tlv(SET_DATABYTEORDER, &BYTEORDER_NONE.to_ne_bytes()));
    }
    if !by_type {
        out.extend(tlv(SET_KEY_TYPEOF, &typeof_concat(key.fields())));
    }
    if data.is_some() {
        out.extend(tlv(SET_DATA_INTERVAL, &0u32.to_ne_bytes()));
    }
    out
}

/// nft 1.0.6 records at most this many parts of a concatenation; a longer
/// key is listed by its type (`type ifname . ipv4_addr . …`) instead.
const TYPEOF_PARTS: usize = 4;

/// nft's serialisation of a concatenation expression (`EXPR_CONCAT`):
/// its type, then one nest per part holding the part's expression type
/// and that expression's own attributes.
fn typeof_concat(fields: &[Field]) -> Vec<u8> {
    const EXPR_CONCAT: u32 = 13;
    let mut parts = Vec::new();
    for (i, f) in fields.iter().take(TYPEOF_PARTS).enumerate() {
        let (etype, attrs) = typeof_field(*f);
        let mut part = u32_tlv(0, etype);
        part.extend(tlv(1, &attrs));
        parts.extend(tlv(u8::try_from(i).unwrap_or(u8::MAX), &part));
    }
    let mut out = u32_tlv(0, EXPR_CONCAT);
    out.extend(tlv(1, &parts));
    out
}

/// nft's expression type and attributes for one field: `EXPR_META` (9)
/// with its key, or `EXPR_PAYLOAD` (7) with nft's protocol description and
/// header template numbers (and the length in bits of `integer` fields).
fn typeof_field(f: Field) -> (u32, Vec<u8>) {
    const META: u32 = 9;
    const PAYLOAD: u32 = 7;
    let payload = |desc: u32, template: u32| {
        let mut a = u32_tlv(0, desc);
        a.extend(u32_tlv(1, template));
        if f.datatype() == 4 {
            a.extend(u32_tlv(4, 8 * f.width() as u32));
        }
        (PAYLOAD, a)
    };
    match f {
        Field::Iifname => (META, u32_tlv(0, 6)),
        Field::L4Proto => (META, u32_tlv(0, 16)),
        Field::ThDport => payload(11, 2),
        Field::Oifname | Field::Ifname => (META, u32_tlv(0, 7)),
        Field::EtherSaddr => payload(17, 2),
        Field::IpSaddr | Field::Ipv4Addr => payload(12, 11),
        Field::IpDaddr => payload(12, 12),
        Field::Ip6Saddr | Field::Ipv6Addr => payload(13, 8),
        Field::Ip6Daddr => payload(13, 9),
        Field::ArpSha => payload(15, 6),
        Field::ArpSpa => payload(15, 7),
        Field::ArpTpa => payload(15, 9),
        Field::TcpSport => payload(8, 1),
        Field::TcpDport => payload(8, 2),
        Field::UdpSport => payload(6, 1),
        Field::UdpDport => payload(6, 2),
        Field::IcmpId => payload(4, 4),
        Field::Icmpv6Id => payload(14, 6),
        // A raw payload: no description, then base (transport = 3),
        // offset and length in bits.
        Field::NdTarget => {
            let mut a = u32_tlv(0, 0);
            a.extend(u32_tlv(1, 0));
            a.extend(u32_tlv(2, 3));
            a.extend(u32_tlv(3, 64));
            a.extend(u32_tlv(4, 128));
            (PAYLOAD, a)
        }
    }
}

/// The key of a set from its datatype and user data: the `typeof`
/// expressions of a concatenation, or the one type of a plain set.
pub(crate) fn parse_set_key(datatype: u32, data: &[u8]) -> Option<SetKey> {
    if let Some(expr) = find(data, SET_KEY_TYPEOF) {
        let mut fields = parse_typeof_concat(expr)?;
        // Parts past the fourth are not recorded (see TYPEOF_PARTS); the
        // only such key trafficjam builds ends in a port pair.
        let parts = std::iter::successors(Some(datatype), |d| Some(d >> 6))
            .take_while(|d| *d != 0)
            .count();
        while fields.len() < parts {
            let next = match fields.last()? {
                Field::TcpSport => Field::TcpDport,
                Field::UdpSport => Field::UdpDport,
                _ => return None,
            };
            fields.push(next);
        }
        let key = SetKey::concat(fields);
        return (key.datatype() == datatype).then_some(key);
    }
    match datatype {
        7 => Some(SetKey::ipv4()),
        8 => Some(SetKey::ipv6()),
        41 => Some(SetKey::ifname()),
        _ => None,
    }
}

fn parse_typeof_concat(expr: &[u8]) -> Option<Vec<Field>> {
    const EXPR_CONCAT: u32 = 13;
    if find_u32(expr, 0)? != EXPR_CONCAT {
        return None;
    }
    let mut parts = find(expr, 1)?;
    let mut fields = Vec::new();
    while let [_, len, rest @ ..] = parts {
        let len = usize::from(*len);
        let part = rest.get(..len)?;
        fields.push(parse_typeof_field(find_u32(part, 0)?, find(part, 1)?)?);
        parts = &rest[len..];
    }
    (!fields.is_empty()).then_some(fields)
}

fn parse_typeof_field(etype: u32, attrs: &[u8]) -> Option<Field> {
    const META: u32 = 9;
    const PAYLOAD: u32 = 7;
    match etype {
        META => match find_u32(attrs, 0)? {
            6 => Some(Field::Iifname),
            7 => Some(Field::Oifname),
            16 => Some(Field::L4Proto),
            _ => None,
        },
        PAYLOAD => [
            Field::EtherSaddr,
            Field::IpSaddr,
            Field::IpDaddr,
            Field::Ip6Saddr,
            Field::Ip6Daddr,
            Field::ArpSha,
            Field::ArpSpa,
            Field::ArpTpa,
            Field::TcpSport,
            Field::TcpDport,
            Field::UdpSport,
            Field::UdpDport,
            Field::IcmpId,
            Field::Icmpv6Id,
            Field::NdTarget,
            Field::ThDport,
        ]
        .into_iter()
        .find(|f| typeof_field(*f).1 == attrs),
        _ => None,
    }
}

fn u32_tlv(kind: u8, value: u32) -> Vec<u8> {
    tlv(kind, &value.to_ne_bytes())
}

fn find_u32(data: &[u8], kind: u8) -> Option<u32> {
    Some(u32::from_ne_bytes(find(data, kind)?.try_into().ok()?))
}

/// The table comment in user data, if there is one.
pub(crate) fn parse_table_comment(data: &[u8]) -> Option<String> {
    let value = find(data, TABLE_COMMENT)?;
    let text = value.split(|b| *b == 0).next()?;
    String::from_utf8(text.to_vec()).ok()
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(kind);
    out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(value);
    out
}

fn find(mut data: &[u8], kind: u8) -> Option<&[u8]> {
    while let [k, len, rest @ ..] = data {
        let len = usize::from(*len);
        let value = rest.get(..len)?;
        if *k == kind {
            return Some(value);
        }
        data = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn typeof_user_data_is_what_nft_writes() {
        // NFTA_SET_USERDATA nft 1.0.6 sent for
        // `add set bridge t macs { typeof iifname . ether saddr; }` and
        // `add set bridge t nd6 { typeof iifname . @th,64,128; }`.
        let macs = SetKey::concat([Field::Iifname, Field::EtherSaddr]);
        let want = hex("000400000000032e00040d0000000126000e00040900000001060004060000000114000407000000010c000411000000010402000000");
        assert_eq!(set_key(&macs, None), want);
        assert_eq!(parse_set_key(macs.datatype(), &want), Some(macs));
        let nd = SetKey::concat([Field::Iifname, Field::NdTarget]);
        let want = hex("000400000000034000040d0000000138000e00040900000001060004060000000126000407000000011e000400000000010400000000020403000000030440000000040480000000");
        assert_eq!(set_key(&nd, None), want);
        assert_eq!(parse_set_key(nd.datatype(), &want), Some(nd));
        // Five parts: nft records four (`typeof oifname . ip saddr .
        // ip daddr . tcp sport . tcp dport`).
        let tcp = SetKey::concat([
            Field::Oifname,
            Field::IpSaddr,
            Field::IpDaddr,
            Field::TcpSport,
            Field::TcpDport,
        ]);
        let want = hex("000400000000035a00040d0000000152000e00040900000001060004070000000114000407000000010c00040c00000001040b0000000214000407000000010c00040c00000001040c0000000314000407000000010c000408000000010401000000");
        assert_eq!(set_key(&tcp, None), want);
        assert_eq!(parse_set_key(tcp.datatype(), &want), Some(tcp));
    }

    #[test]
    fn odd_user_data_is_no_key_and_no_panic() {
        assert_eq!(parse_set_key(0xa49, &[3, 200, 0]), None);
        assert_eq!(parse_set_key(0xa49, &[3, 2, 0, 4]), None);
        assert_eq!(parse_set_key(99, &[]), None);
    }
}
