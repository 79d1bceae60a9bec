//! Rendering tables as `nft` syntax, for people (`plan`, `status`).
//!
//! The output is valid input for `nft -f`. Rules are recognised from their
//! expressions, so a rule decoded from the kernel prints the same way as
//! the rule trafficjam built; expressions that match no known pattern are
//! printed raw as a comment-free `# …` line so a foreign change is visible.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{Chain, CmpOp, CtKey, Expr, MetaKey, PayloadBase, Rule, Set, Table};

/// Render a table the way `nft list table` would.
pub fn table(t: &Table) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table {} {} {{", t.family, t.name);
    if let Some(c) = &t.comment {
        let _ = writeln!(out, "\tcomment {}", quote(c));
    }
    for s in &t.sets {
        out.push_str(&set(s));
    }
    for c in &t.chains {
        out.push_str(&chain(c));
    }
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "'"))
}

fn set(s: &Set) -> String {
    let mut out = format!("\tset {} {{\n\t\ttype {}\n", s.name, s.key.name());
    if s.interval {
        out.push_str("\t\tflags interval\n");
    }
    if !s.ifnames.is_empty() {
        let names: Vec<String> = s.ifnames.iter().map(|n| quote(n)).collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", names.join(", "));
    }
    if !s.elements.is_empty() {
        let elems: Vec<String> = s
            .elements
            .iter()
            .map(|n| {
                if s.interval {
                    n.to_string()
                } else {
                    n.addr().to_string()
                }
            })
            .collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(", "));
    }
    out.push_str("\t}\n");
    out
}

fn chain(c: &Chain) -> String {
    let mut out = format!("\tchain {} {{\n", c.name);
    if let Some(b) = &c.base {
        let _ = writeln!(
            out,
            "\t\ttype filter hook {} priority {}; policy {};",
            b.hook, b.priority, b.policy
        );
    }
    for r in &c.rules {
        let _ = writeln!(out, "\t\t{}", rule(r));
    }
    out.push_str("\t}\n");
    out
}

/// Render one rule's expressions as nft rule text.
pub fn rule(r: &Rule) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut e = r.exprs.as_slice();
    while !e.is_empty() {
        let (text, used) = recognise(e);
        if let Some(t) = text {
            words.push(t);
        }
        e = &e[used.max(1)..];
    }
    words.join(" ")
}

/// Recognise the pattern at the start of `e`: the text it stands for (or
/// `None` for an implicit dependency nft also hides) and how many
/// expressions it used.
fn recognise(e: &[Expr]) -> (Option<String>, usize) {
    match e {
        // `meta nfproto ipv4|ipv6` (inet) or `meta protocol ip|ip6`
        // (bridge) before an IP header or transport match: the dependency
        // nft adds and hides.
        [Expr::Meta { key, .. }, Expr::Cmp {
            op: CmpOp::Eq,
            data,
            ..
        }, next, ..]
            if matches!(
                (key, data.len()),
                (MetaKey::NfProto, 1) | (MetaKey::Protocol, 2)
            ) && matches!(
                next,
                Expr::Payload {
                    base: PayloadBase::Network,
                    ..
                } | Expr::Meta {
                    key: MetaKey::L4Proto,
                    ..
                }
            ) =>
        {
            (None, 2)
        }
        [Expr::Meta {
            key: MetaKey::L4Proto,
            ..
        }, Expr::Cmp {
            op: CmpOp::Eq,
            data: proto,
            ..
        }, Expr::Payload {
            base: PayloadBase::Transport,
            offset: 13,
            len: 1,
            ..
        }, Expr::Bitwise(b), Expr::Cmp {
            op: CmpOp::Eq,
            data: value,
            ..
        }, ..]
            if proto.as_slice() == [6]
                && b.mask.as_slice() == [0x12]
                && value.as_slice() == [0x02] =>
        {
            (Some("tcp flags & (syn | ack) == syn".to_string()), 5)
        }
        [Expr::Meta {
            key: MetaKey::L4Proto,
            ..
        }, Expr::Cmp {
            op: CmpOp::Eq,
            data: proto,
            ..
        }, Expr::Payload {
            base: PayloadBase::Transport,
            offset: 0,
            len: 1,
            ..
        }, Expr::Cmp {
            op: CmpOp::Eq,
            data: kind,
            ..
        }, ..]
            if (proto.as_slice() == [1] || proto.as_slice() == [58]) && kind.len() == 1 =>
        {
            let family = if proto[0] == 1 { "icmp" } else { "icmpv6" };
            (Some(format!("{family} type {}", kind[0])), 4)
        }
        [Expr::Meta {
            key: MetaKey::L4Proto,
            ..
        }, Expr::Cmp {
            op: CmpOp::Eq,
            data: proto,
            ..
        }, Expr::Payload {
            base: PayloadBase::Transport,
            offset: 0,
            len: 1,
            ..
        }, Expr::Cmp {
            op: CmpOp::Gte,
            data: lo,
            ..
        }, Expr::Cmp {
            op: CmpOp::Lte,
            data: hi,
            ..
        }, ..]
            if proto.as_slice() == [58] && lo.len() == 1 && hi.len() == 1 =>
        {
            (Some(format!("icmpv6 type {}-{}", lo[0], hi[0])), 5)
        }
        [Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len,
            ..
        }, rest @ ..] => match (field(*offset, *len), rest.first()) {
            (Some(f), Some(Expr::Lookup { set, invert, .. })) => {
                let op = if *invert { "!= " } else { "" };
                (Some(format!("{f} {op}@{set}")), 2)
            }
            (Some(f), Some(Expr::Cmp { op, data, .. })) => match addr(data) {
                Some(a) => (Some(format!("{f} {}{a}", cmp_op(*op))), 2),
                None => (Some(raw(&e[..2])), 2),
            },
            _ => (Some(raw(&e[..1])), 1),
        },
        [Expr::Ct {
            key: CtKey::State, ..
        }, Expr::Bitwise(b), Expr::Cmp {
            op: CmpOp::Neq,
            data,
            ..
        }, ..]
            if b.mask.len() == 4 && data.iter().all(|x| *x == 0) =>
        {
            let mask = u32::from_ne_bytes([b.mask[0], b.mask[1], b.mask[2], b.mask[3]]);
            (Some(format!("ct state {}", ct_states(mask))), 3)
        }
        [Expr::Ct {
            key: CtKey::Status, ..
        }, Expr::Bitwise(b), Expr::Cmp {
            op: CmpOp::Neq,
            data,
            ..
        }, ..]
            if b.mask == (1u32 << 5).to_ne_bytes() && data.iter().all(|x| *x == 0) =>
        {
            (Some("ct status dnat".to_string()), 3)
        }
        [Expr::Meta {
            key: key @ (MetaKey::IifName | MetaKey::OifName),
            ..
        }, next, ..] => {
            let key = if *key == MetaKey::IifName {
                "iifname"
            } else {
                "oifname"
            };
            match next {
                Expr::Lookup { set, invert, .. } => {
                    let op = if *invert { "!= " } else { "" };
                    (Some(format!("meta {key} {op}@{set}")), 2)
                }
                Expr::Cmp { op, data, .. } if data.len() == 16 => {
                    let name: Vec<u8> = data.iter().copied().take_while(|c| *c != 0).collect();
                    let name = String::from_utf8_lossy(&name);
                    (
                        Some(format!("meta {key} {}{}", cmp_op(*op), quote(&name))),
                        2,
                    )
                }
                _ => (Some(raw(&e[..1])), 1),
            }
        }
        [Expr::Meta {
            key: MetaKey::Protocol,
            ..
        }, Expr::Cmp {
            op: CmpOp::Eq,
            data,
            ..
        }, ..]
            if data.len() == 2 =>
        {
            let proto = match [data[0], data[1]] {
                [0x08, 0x00] => "ip".to_string(),
                [0x86, 0xdd] => "ip6".to_string(),
                [a, b] => format!("0x{a:02x}{b:02x}"),
            };
            (Some(format!("meta protocol {proto}")), 2)
        }
        [Expr::Counter { packets, bytes }, ..] => {
            (Some(format!("counter packets {packets} bytes {bytes}")), 1)
        }
        [Expr::Limit { rate, unit, burst }, ..] => {
            let per = match unit {
                1 => "second",
                60 => "minute",
                3600 => "hour",
                _ => "day",
            };
            (
                Some(format!("limit rate {rate}/{per} burst {burst} packets")),
                1,
            )
        }
        [Expr::Log { group, prefix }, ..] => (
            Some(format!("log prefix {} group {group}", quote(prefix))),
            1,
        ),
        [Expr::Verdict(v), ..] => (Some(v.to_string()), 1),
        _ => (Some(raw(&e[..1])), 1),
    }
}

fn field(offset: u32, len: u32) -> Option<&'static str> {
    Some(match (offset, len) {
        (12, 4) => "ip saddr",
        (16, 4) => "ip daddr",
        (8, 16) => "ip6 saddr",
        (24, 16) => "ip6 daddr",
        _ => return None,
    })
}

fn addr(data: &[u8]) -> Option<IpAddr> {
    match data.len() {
        4 => <[u8; 4]>::try_from(data).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(data).ok().map(IpAddr::from),
        _ => None,
    }
}

fn cmp_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "",
        CmpOp::Neq => "!= ",
        CmpOp::Lt => "< ",
        CmpOp::Lte => "<= ",
        CmpOp::Gt => "> ",
        CmpOp::Gte => ">= ",
    }
}

fn ct_states(mask: u32) -> String {
    const NAMES: [(u32, &str); 5] = [
        (1, "invalid"),
        (2, "established"),
        (4, "related"),
        (8, "new"),
        (64, "untracked"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join(",")
}

/// An expression trafficjam cannot express as nft text: shown by kind so
/// the line cannot be mistaken for a rule trafficjam installed.
fn raw(e: &[Expr]) -> String {
    let kinds: Vec<&str> = e.iter().map(Expr::kind).collect();
    format!("# unrecognised expression: {}", kinds.join(" "))
}
