//! Building blocks of rules: the expressions nft generates for a match,
//! in nft's order, so the bytes compare equal with what nft sends.

use crate::model::{
    Bitwise, CmpOp, CtKey, DynsetOp, Expr, Field, MetaKey, PayloadBase, Register, Rule, Verdict,
};

/// An IP version, for header offsets and protocol numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4,
    V6,
}

impl Ip {
    pub const BOTH: [Ip; 2] = [Ip::V4, Ip::V6];

    /// The ethertype, as `meta protocol` and `ether type` load it.
    pub fn ethertype(self) -> u16 {
        match self {
            Ip::V4 => 0x0800,
            Ip::V6 => 0x86dd,
        }
    }
    /// The ICMP protocol number of this IP version.
    pub fn icmp(self) -> u8 {
        match self {
            Ip::V4 => 1,
            Ip::V6 => 58,
        }
    }
    pub fn echo_request(self) -> u8 {
        match self {
            Ip::V4 => 8,
            Ip::V6 => 128,
        }
    }
    pub fn echo_reply(self) -> u8 {
        match self {
            Ip::V4 => 0,
            Ip::V6 => 129,
        }
    }
    pub fn nfproto(self) -> u8 {
        match self {
            Ip::V4 => 2,
            Ip::V6 => 10,
        }
    }
    pub fn saddr(self) -> Field {
        match self {
            Ip::V4 => Field::IpSaddr,
            Ip::V6 => Field::Ip6Saddr,
        }
    }
    pub fn daddr(self) -> Field {
        match self {
            Ip::V4 => Field::IpDaddr,
            Ip::V6 => Field::Ip6Daddr,
        }
    }
    pub fn echo_id(self) -> Field {
        match self {
            Ip::V4 => Field::IcmpId,
            Ip::V6 => Field::Icmpv6Id,
        }
    }
    /// `4` or `6`, for set names.
    pub fn digit(self) -> char {
        match self {
            Ip::V4 => '4',
            Ip::V6 => '6',
        }
    }
}

pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;

/// The expression loading `field` of the packet into `dreg`.
pub(crate) fn load(field: Field, dreg: Register) -> Expr {
    let meta = |key| Expr::Meta { key, dreg };
    let payload = |base, offset, len| Expr::Payload {
        base,
        offset,
        len,
        dreg,
    };
    use PayloadBase::{Link, Network, Transport};
    match field {
        Field::Iifname | Field::Ifname => meta(MetaKey::IifName),
        Field::Oifname => meta(MetaKey::OifName),
        Field::EtherSaddr => payload(Link, 6, 6),
        Field::IpSaddr | Field::Ipv4Addr => payload(Network, 12, 4),
        Field::IpDaddr => payload(Network, 16, 4),
        Field::Ip6Saddr | Field::Ipv6Addr => payload(Network, 8, 16),
        Field::Ip6Daddr => payload(Network, 24, 16),
        Field::ArpSha => payload(Network, 8, 6),
        Field::ArpSpa => payload(Network, 14, 4),
        Field::ArpTpa => payload(Network, 24, 4),
        Field::TcpSport | Field::UdpSport => payload(Transport, 0, 2),
        Field::TcpDport | Field::UdpDport => payload(Transport, 2, 2),
        Field::IcmpId | Field::Icmpv6Id => payload(Transport, 4, 2),
        Field::NdTarget => payload(Transport, 8, 16),
        Field::L4Proto => meta(MetaKey::L4Proto),
        Field::ThDport => payload(Transport, 2, 2),
    }
}

/// The loads of a concatenation into consecutive registers from `NFT_REG_1`,
/// each part on a 32-bit boundary, numbered as nft numbers them.
pub(crate) fn concat(fields: &[Field]) -> Vec<Expr> {
    let mut offset = 0;
    fields
        .iter()
        .map(|f| {
            let e = load(*f, Register::at_offset(offset));
            offset += f.padded_width();
            e
        })
        .collect()
}

/// `a . b . c @set` (or `!= @set`).
pub(crate) fn lookup(fields: &[Field], set: &str, invert: bool) -> Vec<Expr> {
    let mut exprs = concat(fields);
    exprs.push(Expr::Lookup {
        set: set.to_string(),
        sreg: Register::R1,
        invert,
    });
    exprs
}

/// `update @set { a . b . c timeout T }`.
pub(crate) fn update(fields: &[Field], set: &str, timeout_secs: u64) -> Vec<Expr> {
    let mut exprs = concat(fields);
    exprs.push(Expr::Dynset {
        set: set.to_string(),
        op: DynsetOp::Update,
        sreg: Register::R1,
        timeout_ms: Some(timeout_secs * 1000),
    });
    exprs
}

pub(crate) fn cmp(op: CmpOp, data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: Register::R1,
        op,
        data,
    }
}

/// `ether type ip|ip6|arp`: the link header's ethertype. Unlike `meta
/// protocol` it sees a VLAN tag (the kernel rebuilds it from the frame's
/// metadata), so a tagged frame never matches an untagged type.
pub(crate) fn ether_type(ethertype: u16) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: PayloadBase::Link,
            offset: 12,
            len: 2,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, ethertype.to_be_bytes().to_vec()),
    ]
}

/// `meta KEY == value` for a one-byte key (`meta l4proto tcp`) or the
/// two-byte ethertype (`meta protocol ip`).
pub(crate) fn meta_is(key: MetaKey, data: Vec<u8>) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key,
            dreg: Register::R1,
        },
        cmp(CmpOp::Eq, data),
    ]
}

/// `meta KEY != value`.
pub(crate) fn meta_is_not(key: MetaKey, data: Vec<u8>) -> Vec<Expr> {
    let mut e = meta_is(key, data);
    if let Some(Expr::Cmp { op, .. }) = e.last_mut() {
        *op = CmpOp::Neq;
    }
    e
}

/// `meta l4proto P`.
pub(crate) fn l4proto(proto: u8) -> Vec<Expr> {
    meta_is(MetaKey::L4Proto, vec![proto])
}

/// `icmp type T` / `icmpv6 type T` (with its `meta l4proto`).
pub(crate) fn icmp_type(ip: Ip, kind: u8) -> Vec<Expr> {
    let mut e = l4proto(ip.icmp());
    e.push(transport_byte(0));
    e.push(cmp(CmpOp::Eq, vec![kind]));
    e
}

/// `icmpv6 type FIRST-LAST`.
pub(crate) fn icmpv6_types(first: u8, last: u8) -> Vec<Expr> {
    let mut e = l4proto(Ip::V6.icmp());
    e.push(transport_byte(0));
    e.push(cmp(CmpOp::Gte, vec![first]));
    e.push(cmp(CmpOp::Lte, vec![last]));
    e
}

/// `tcp flags & MASK != 0`: any of these flags set.
pub(crate) fn tcp_flags_any(mask: u8) -> Vec<Expr> {
    tcp_flags_masked(mask, CmpOp::Neq)
}

/// `meta l4proto tcp tcp flags & (mask) == 0`: a TCP segment with none of
/// these flags.
pub(crate) fn tcp_flags_none(mask: u8) -> Vec<Expr> {
    tcp_flags_masked(mask, CmpOp::Eq)
}

fn tcp_flags_masked(mask: u8, op: CmpOp) -> Vec<Expr> {
    let mut e = l4proto(TCP);
    e.push(transport_byte(13));
    e.push(Expr::Bitwise(Bitwise {
        sreg: Register::R1,
        dreg: Register::R1,
        len: 1,
        mask: vec![mask],
        xor: vec![0],
    }));
    e.push(cmp(op, vec![0]));
    e
}

fn transport_byte(offset: u32) -> Expr {
    Expr::Payload {
        base: PayloadBase::Transport,
        offset,
        len: 1,
        dreg: Register::R1,
    }
}

/// `meta iifname|oifname @set` (or `!= @set`).
pub(crate) fn ifname_in(key: MetaKey, set: &str, invert: bool) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key,
            dreg: Register::R1,
        },
        Expr::Lookup {
            set: set.to_string(),
            sreg: Register::R1,
            invert,
        },
    ]
}

/// A rule from match fragments, an optional counter and a verdict.
pub(crate) fn rule<const N: usize>(
    matches: [Vec<Expr>; N],
    counter: bool,
    verdict: Verdict,
) -> Rule {
    let mut exprs: Vec<Expr> = matches.into_iter().flatten().collect();
    if counter {
        exprs.push(counter_expr());
    }
    exprs.push(Expr::Verdict(verdict));
    Rule::new(exprs)
}

/// `… counter drop comment "KIND"`: every drop says what it stopped.
pub(crate) fn drop<const N: usize>(matches: [Vec<Expr>; N], kind: &str) -> Rule {
    rule(matches, true, Verdict::Drop).commented(kind)
}

pub(crate) fn counter_expr() -> Expr {
    Expr::Counter {
        packets: 0,
        bytes: 0,
    }
}

/// `ct KEY & MASK != 0 VERDICT`: any of the bits set.
pub(crate) fn ct_any(key: CtKey, mask: u32, verdict: Verdict) -> Rule {
    let mut exprs = ct_bits(key, mask);
    exprs.push(Expr::Verdict(verdict));
    Rule::new(exprs)
}

/// `ct KEY & MASK != 0`. Conntrack keys are host-endian u32s, as the
/// kernel stores them.
pub(crate) fn ct_bits(key: CtKey, mask: u32) -> Vec<Expr> {
    vec![
        Expr::Ct {
            key,
            dreg: Register::R1,
        },
        Expr::Bitwise(Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            len: 4,
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        }),
        Expr::Cmp {
            sreg: Register::R1,
            op: CmpOp::Neq,
            data: vec![0; 4],
        },
    ]
}

/// `NF_CT_STATE_BIT(IP_CT_RELATED)`
pub(crate) const CT_RELATED: u32 = 4;

/// `ct state established,related accept`
pub(crate) fn established() -> Rule {
    // NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED).
    ct_any(CtKey::State, 2 | CT_RELATED, Verdict::Accept)
}
