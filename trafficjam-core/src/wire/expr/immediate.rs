//! `immediate` into the verdict register: the rule's verdict.

use netlink_packet_netfilter::nftables::{
    DataAttribute, Expressions, Immediate, Register as NlRegister, Verdict as NlVerdict,
    VerdictAttribute,
};

use crate::model::{Expr, Verdict};
use crate::wire::attr::list;
use crate::wire::nla::{be_u32, string, Attrs};
use crate::wire::DecodeError;

/// `NF_DROP` and `NF_ACCEPT` from `linux/netfilter.h`; the negative codes
/// (jump, return…) are typed by netlink-packet-netfilter.
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

pub(crate) fn verdict_attrs(v: &Verdict) -> Vec<VerdictAttribute> {
    let code = |c| VerdictAttribute::Code(c);
    match v {
        Verdict::Accept => vec![code(NlVerdict::Other(NF_ACCEPT))],
        Verdict::Drop => vec![code(NlVerdict::Other(NF_DROP))],
        Verdict::Continue => vec![code(NlVerdict::Continue)],
        Verdict::Return => vec![code(NlVerdict::Return)],
        Verdict::Jump(c) => vec![code(NlVerdict::Jump), VerdictAttribute::Chain(c.clone())],
        Verdict::Goto(c) => vec![code(NlVerdict::Goto), VerdictAttribute::Chain(c.clone())],
    }
}

pub(super) fn encode(v: &Verdict) -> Expressions {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(NlRegister::Verdict),
        Immediate::Data(DataAttribute::Verdict(verdict_attrs(v))),
    ])
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const DATA: u16 = 2;
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        if kind != DATA {
            continue;
        }
        for inner in Attrs::new(value) {
            let (kind, value) = inner?;
            if kind == list::DATA_VERDICT {
                return Ok(Expr::Verdict(verdict(value)?));
            }
        }
    }
    // An immediate loading data into a register is not ours.
    Ok(Expr::Unknown {
        name: "immediate".to_string(),
    })
}

/// A verdict from the nested `NFTA_DATA_VERDICT` attributes.
pub(crate) fn verdict(data: &[u8]) -> Result<Verdict, DecodeError> {
    let (mut code, mut chain) = (None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            list::VERDICT_CODE => code = Some(be_u32(value, "verdict code")?),
            list::VERDICT_CHAIN => chain = Some(string(value, "verdict chain")?),
            _ => {}
        }
    }
    let target = || chain.clone().ok_or(DecodeError::Missing("verdict chain"));
    Ok(
        match NlVerdict::from(code.ok_or(DecodeError::Missing("verdict code"))?) {
            NlVerdict::Other(NF_ACCEPT) => Verdict::Accept,
            NlVerdict::Other(NF_DROP) => Verdict::Drop,
            NlVerdict::Continue => Verdict::Continue,
            NlVerdict::Return => Verdict::Return,
            NlVerdict::Jump => Verdict::Jump(target()?),
            NlVerdict::Goto => Verdict::Goto(target()?),
            _ => return Err(DecodeError::Malformed("verdict code")),
        },
    )
}
