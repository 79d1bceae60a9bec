//! Rendering tables as `nft` syntax, for people (`plan`, `status`).
//!
//! The output is valid input for `nft -f`. A rule is read the way the
//! kernel runs it: loads into registers, then the comparison, lookup or
//! set update that consumes them, so a concatenation (`iifname . ip saddr
//! @addrs4`) prints as one match, and a rule decoded from the kernel prints
//! the same way as the rule trafficjam built. Dependencies nft would hide
//! (`ether type ip` before `ip saddr`) are printed: nft reads them too.
//! What cannot be expressed prints as a `# unrecognised …` marker, so a
//! foreign change to a rule is visible instead of disguised.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{
    Chain, CmpOp, CtKey, DynsetOp, Element, Expr, Field, MetaKey, PayloadBase, Rule, Set, SetData,
    Table, Value,
};

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
    let fields = s.key.fields();
    let declared = if fields.iter().all(|f| f.is_type()) {
        format!("type {}", join(fields.iter().map(|f| f.nft())))
    } else {
        format!("typeof {}", join(fields.iter().map(|f| f.nft())))
    };
    let mut out = match s.data {
        Some(SetData::Verdict) => format!("\tmap {} {{\n\t\t{declared} : verdict\n", s.name),
        None => format!("\tset {} {{\n\t\t{declared}\n", s.name),
    };
    if let Some(d) = s.dynamic {
        let _ = writeln!(out, "\t\tsize {}\n\t\tflags dynamic,timeout", d.size);
    }
    if s.interval {
        out.push_str("\t\tflags interval\n");
    }
    if !s.elements.is_empty() {
        let elems: Vec<String> = s.elements.iter().map(|e| element(fields, e)).collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(", "));
    }
    out.push_str("\t}\n");
    out
}

/// An element as nft reads it for these fields: a raw field (`@th,…`) is
/// an integer to nft, so its address is written in hex.
fn element(fields: &[Field], e: &Element) -> String {
    let parts = e
        .key_values()
        .iter()
        .zip(fields)
        .map(|(v, f)| match (v, f) {
            (Value::Net(n), Field::NdTarget) => match n.addr() {
                IpAddr::V6(a) => format!("0x{}", hex(&a.octets())),
                IpAddr::V4(a) => format!("0x{}", hex(&a.octets())),
            },
            (v, _) => v.to_string(),
        });
    match e.verdict() {
        Some(v) => format!("{} : {v}", join(parts)),
        None => join(parts),
    }
}

fn join(parts: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let parts: Vec<String> = parts.into_iter().map(|p| p.as_ref().to_string()).collect();
    parts.join(" . ")
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

/// What a loaded register holds, for naming it and printing its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ethertype,
    NfProto,
    L4Proto,
    Ifname,
    Mac,
    Addr,
    Number,
    TcpFlags,
    CtState,
    CtStatus,
    Raw,
}

/// A value waiting in a register: its text and what it means.
#[derive(Debug, Clone)]
struct Operand {
    offset: usize,
    len: usize,
    text: String,
    kind: Kind,
    mask: Option<Vec<u8>>,
}

/// The protocols earlier matches of the rule established, which name the
/// header fields later loads read.
#[derive(Debug, Default, Clone, Copy)]
struct Context {
    network: Option<u16>,
    transport: Option<u8>,
}

/// Render one rule's expressions as nft rule text.
pub fn rule(r: &Rule) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut regs: Vec<Operand> = Vec::new();
    let mut ctx = Context::default();
    let mut exprs = r.exprs.iter().peekable();
    while let Some(e) = exprs.next() {
        // `X >= a` then `X <= b` on the same register: nft's range `X a-b`.
        if let (
            Expr::Cmp {
                sreg,
                op: CmpOp::Gte,
                data: lo,
            },
            Some(Expr::Cmp {
                sreg: sreg2,
                op: CmpOp::Lte,
                data: hi,
            }),
        ) = (e, exprs.peek())
        {
            if sreg == sreg2 {
                if let Some(operand) = sreg.offset().and_then(|at| take(&mut regs, at)) {
                    words.push(format!(
                        "{} {}-{}",
                        operand.text,
                        value(operand.kind, lo),
                        value(operand.kind, hi)
                    ));
                    exprs.next();
                    continue;
                }
            }
        }
        match render(e, &mut regs, &mut ctx) {
            Ok(Some(w)) => words.push(w),
            Ok(None) => {}
            Err(()) => words.push(raw(e)),
        }
    }
    if let Some(c) = &r.comment {
        words.push(format!("comment {}", quote(c)));
    }
    words.join(" ")
}

fn render(e: &Expr, regs: &mut Vec<Operand>, ctx: &mut Context) -> Result<Option<String>, ()> {
    match e {
        Expr::Meta { key, dreg } => {
            let (text, kind) = match key {
                MetaKey::IifName => ("iifname", Kind::Ifname),
                MetaKey::OifName => ("oifname", Kind::Ifname),
                MetaKey::Protocol => ("meta protocol", Kind::Ethertype),
                MetaKey::NfProto => ("meta nfproto", Kind::NfProto),
                MetaKey::L4Proto => ("meta l4proto", Kind::L4Proto),
                MetaKey::Other(_) => return Err(()),
            };
            let len = if kind == Kind::Ifname { 16 } else { 4 };
            load(regs, dreg.offset().ok_or(())?, len, text.to_string(), kind);
            Ok(None)
        }
        Expr::Ct { key, dreg } => {
            let (text, kind) = match key {
                CtKey::State => ("ct state", Kind::CtState),
                CtKey::Status => ("ct status", Kind::CtStatus),
                CtKey::Other(_) => return Err(()),
            };
            load(regs, dreg.offset().ok_or(())?, 4, text.to_string(), kind);
            Ok(None)
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            let (text, kind) = payload_name(*base, *offset, *len, *ctx);
            load(regs, dreg.offset().ok_or(())?, *len as usize, text, kind);
            Ok(None)
        }
        Expr::Bitwise(b) => {
            if b.sreg != b.dreg || b.xor.iter().any(|x| *x != 0) {
                return Err(());
            }
            let at = b.sreg.offset().ok_or(())?;
            let op = regs.iter_mut().find(|o| o.offset == at).ok_or(())?;
            op.mask = Some(b.mask.clone());
            Ok(None)
        }
        Expr::Cmp { sreg, op, data } => {
            let operand = take(regs, sreg.offset().ok_or(())?).ok_or(())?;
            note_protocol(&operand, *op, data, ctx);
            Ok(Some(comparison(&operand, *op, data)))
        }
        Expr::Lookup { set, sreg, invert } => {
            let key = take_concat(regs, sreg.offset().ok_or(())?)?;
            let op = if *invert { "!= " } else { "" };
            Ok(Some(format!("{key} {op}@{set}")))
        }
        Expr::VerdictMap { set, sreg } => {
            let key = take_concat(regs, sreg.offset().ok_or(())?)?;
            Ok(Some(format!("{key} vmap @{set}")))
        }
        Expr::Dynset {
            set,
            op,
            sreg,
            timeout_ms,
        } => {
            let key = take_concat(regs, sreg.offset().ok_or(())?)?;
            let verb = match op {
                DynsetOp::Add => "add",
                DynsetOp::Update => "update",
                DynsetOp::Delete => "delete",
            };
            let timeout =
                timeout_ms.map_or(String::new(), |ms| format!(" timeout {}", duration(ms)));
            Ok(Some(format!("{verb} @{set} {{ {key}{timeout} }}")))
        }
        Expr::Counter { packets, bytes } => {
            Ok(Some(format!("counter packets {packets} bytes {bytes}")))
        }
        Expr::Limit { rate, unit, burst } => {
            let per = match unit {
                1 => "second",
                60 => "minute",
                3600 => "hour",
                _ => "day",
            };
            Ok(Some(format!(
                "limit rate {rate}/{per} burst {burst} packets"
            )))
        }
        Expr::Log { group, prefix } => {
            Ok(Some(format!("log prefix {} group {group}", quote(prefix))))
        }
        Expr::Verdict(v) => Ok(Some(v.to_string())),
        Expr::Unknown { .. } => Err(()),
    }
}

fn load(regs: &mut Vec<Operand>, offset: usize, len: usize, text: String, kind: Kind) {
    regs.retain(|o| o.offset != offset);
    regs.push(Operand {
        offset,
        len,
        text,
        kind,
        mask: None,
    });
}

fn take(regs: &mut Vec<Operand>, offset: usize) -> Option<Operand> {
    let i = regs.iter().position(|o| o.offset == offset)?;
    Some(regs.remove(i))
}

/// The operands in consecutive registers from `offset`: a concatenation.
fn take_concat(regs: &mut Vec<Operand>, mut offset: usize) -> Result<String, ()> {
    let mut parts = Vec::new();
    while let Some(op) = take(regs, offset) {
        offset += op.len.div_ceil(4) * 4;
        parts.push(op.text);
    }
    if parts.is_empty() {
        return Err(());
    }
    Ok(parts.join(" . "))
}

/// The nft name of a header field, given the protocols matched so far; a
/// field nft has no name for is written raw (`@th,64,128`).
fn payload_name(base: PayloadBase, offset: u32, len: u32, ctx: Context) -> (String, Kind) {
    let named = |s: &str, k| (s.to_string(), k);
    let field = match (base, ctx.network, ctx.transport, offset, len) {
        (PayloadBase::Link, _, _, 0, 6) => Some(named("ether daddr", Kind::Mac)),
        (PayloadBase::Link, _, _, 6, 6) => Some(named("ether saddr", Kind::Mac)),
        (PayloadBase::Link, _, _, 12, 2) => Some(named("ether type", Kind::Ethertype)),
        (PayloadBase::Network, Some(0x0800), _, 12, 4) => Some(named("ip saddr", Kind::Addr)),
        (PayloadBase::Network, Some(0x0800), _, 16, 4) => Some(named("ip daddr", Kind::Addr)),
        (PayloadBase::Network, Some(0x86dd), _, 8, 16) => Some(named("ip6 saddr", Kind::Addr)),
        (PayloadBase::Network, Some(0x86dd), _, 24, 16) => Some(named("ip6 daddr", Kind::Addr)),
        (PayloadBase::Network, Some(0x0806), _, 8, 6) => Some(named("arp saddr ether", Kind::Mac)),
        (PayloadBase::Network, Some(0x0806), _, 14, 4) => Some(named("arp saddr ip", Kind::Addr)),
        (PayloadBase::Network, Some(0x0806), _, 24, 4) => Some(named("arp daddr ip", Kind::Addr)),
        (PayloadBase::Transport, _, Some(6), 0, 2) => Some(named("tcp sport", Kind::Number)),
        (PayloadBase::Transport, _, Some(6), 2, 2) => Some(named("tcp dport", Kind::Number)),
        (PayloadBase::Transport, _, Some(6), 13, 1) => Some(named("tcp flags", Kind::TcpFlags)),
        (PayloadBase::Transport, _, Some(17), 0, 2) => Some(named("udp sport", Kind::Number)),
        (PayloadBase::Transport, _, Some(17), 2, 2) => Some(named("udp dport", Kind::Number)),
        (PayloadBase::Transport, _, Some(1), 0, 1) => Some(named("icmp type", Kind::Number)),
        (PayloadBase::Transport, _, Some(1), 4, 2) => Some(named("icmp id", Kind::Number)),
        (PayloadBase::Transport, _, Some(58), 0, 1) => Some(named("icmpv6 type", Kind::Number)),
        (PayloadBase::Transport, _, Some(58), 4, 2) => Some(named("icmpv6 id", Kind::Number)),
        // Without a protocol match: any transport's ports (a concatenation
        // with `meta l4proto`).
        (PayloadBase::Transport, _, None, 0, 2) => Some(named("th sport", Kind::Number)),
        (PayloadBase::Transport, _, None, 2, 2) => Some(named("th dport", Kind::Number)),
        _ => None,
    };
    field.unwrap_or_else(|| {
        let b = match base {
            PayloadBase::Link => "ll",
            PayloadBase::Network => "nh",
            PayloadBase::Transport => "th",
        };
        (format!("@{b},{},{}", offset * 8, len * 8), Kind::Raw)
    })
}

/// Remember the protocol a match establishes (`ether type ip`, `meta
/// l4proto tcp`), which names the fields loaded after it.
fn note_protocol(op: &Operand, cmp: CmpOp, data: &[u8], ctx: &mut Context) {
    if cmp != CmpOp::Eq || op.mask.is_some() {
        return;
    }
    match (op.kind, data) {
        (Kind::Ethertype, [a, b]) => ctx.network = Some(u16::from_be_bytes([*a, *b])),
        (Kind::NfProto, [2]) => ctx.network = Some(0x0800),
        (Kind::NfProto, [10]) => ctx.network = Some(0x86dd),
        (Kind::L4Proto, [p]) => ctx.transport = Some(*p),
        _ => {}
    }
}

fn comparison(op: &Operand, cmp: CmpOp, data: &[u8]) -> String {
    let zero = data.iter().all(|b| *b == 0);
    match (op.kind, &op.mask) {
        (Kind::CtState, Some(m)) if cmp == CmpOp::Neq && zero => {
            format!("ct state {}", ct_states(u32_ne(m)))
        }
        (Kind::CtStatus, Some(m)) if cmp == CmpOp::Neq && zero && u32_ne(m) == 1 << 5 => {
            "ct status dnat".to_string()
        }
        (Kind::TcpFlags, Some(m)) => {
            let value = if zero {
                "0".to_string()
            } else {
                tcp_flags(data.first().copied().unwrap_or(0))
            };
            let m = m.first().copied().unwrap_or(0);
            format!(
                "tcp flags & ({}) {}{value}",
                tcp_flags(m),
                op_text(cmp, true)
            )
        }
        (_, Some(m)) => format!(
            "{} & 0x{} {}0x{}",
            op.text,
            hex(m),
            op_text(cmp, true),
            hex(data)
        ),
        (kind, None) => format!("{} {}{}", op.text, op_text(cmp, false), value(kind, data)),
    }
}

fn op_text(op: CmpOp, explicit_eq: bool) -> &'static str {
    match op {
        CmpOp::Eq if explicit_eq => "== ",
        CmpOp::Eq => "",
        CmpOp::Neq => "!= ",
        CmpOp::Lt => "< ",
        CmpOp::Lte => "<= ",
        CmpOp::Gt => "> ",
        CmpOp::Gte => ">= ",
    }
}

fn value(kind: Kind, data: &[u8]) -> String {
    match (kind, data) {
        (Kind::Ethertype, [a, b]) => match u16::from_be_bytes([*a, *b]) {
            0x0800 => "ip".to_string(),
            0x86dd => "ip6".to_string(),
            0x0806 => "arp".to_string(),
            t => format!("0x{t:04x}"),
        },
        (Kind::NfProto, [2]) => "ipv4".to_string(),
        (Kind::NfProto, [10]) => "ipv6".to_string(),
        (Kind::L4Proto, [p]) => match p {
            1 => "icmp".to_string(),
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            58 => "ipv6-icmp".to_string(),
            p => p.to_string(),
        },
        (Kind::Ifname, _) => {
            let name: Vec<u8> = data.iter().copied().take_while(|c| *c != 0).collect();
            quote(&String::from_utf8_lossy(&name))
        }
        (Kind::Mac, [a, b, c, d, e, f]) => Value::Ether([*a, *b, *c, *d, *e, *f]).to_string(),
        (Kind::Addr, _) => match data.len() {
            4 => <[u8; 4]>::try_from(data)
                .map(IpAddr::from)
                .map(|a| a.to_string()),
            16 => <[u8; 16]>::try_from(data)
                .map(IpAddr::from)
                .map(|a| a.to_string()),
            _ => Ok(format!("0x{}", hex(data))),
        }
        .unwrap_or_else(|_| format!("0x{}", hex(data))),
        (Kind::Number, [b]) => b.to_string(),
        (Kind::Number, [a, b]) => u16::from_be_bytes([*a, *b]).to_string(),
        _ => format!("0x{}", hex(data)),
    }
}

fn u32_ne(m: &[u8]) -> u32 {
    <[u8; 4]>::try_from(m).map_or(0, u32::from_ne_bytes)
}

fn tcp_flags(bits: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (0x01, "fin"),
        (0x02, "syn"),
        (0x04, "rst"),
        (0x08, "psh"),
        (0x10, "ack"),
        (0x20, "urg"),
        (0x40, "ecn"),
        (0x80, "cwr"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join(" | ")
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

/// A timeout as nft writes it: `30s`, `2m`, `1d`.
fn duration(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    for (size, unit) in UNITS {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An expression trafficjam cannot express as nft text: shown by kind so
/// the line cannot be mistaken for a rule trafficjam installed.
fn raw(e: &Expr) -> String {
    format!("# unrecognised expression: {}", e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_nft_units() {
        assert_eq!(duration(30_000), "30s");
        assert_eq!(duration(120_000), "2m");
        assert_eq!(duration(86_400_000), "1d");
        assert_eq!(duration(1500), "1500ms");
    }
}
