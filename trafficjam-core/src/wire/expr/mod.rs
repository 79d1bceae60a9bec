//! Expressions on the wire: one module per kernel expression type.
//!
//! The typed attributes come from `netlink-packet-netfilter` where it has
//! them (payload, cmp, bitwise, meta, lookup, immediate); `ct`, `counter`,
//! `dynset`, `limit` and `log` are encoded here from `linux/netfilter/nf_tables.h`.

mod bitwise;
mod cmp;
mod counter;
mod ct;
mod dynset;
mod immediate;
mod limit;
mod log;
mod lookup;
mod meta;
mod payload;

use netlink_packet_netfilter::nftables::{
    ExpressionAttribute, Expressions, ListAttribute, Register as NlRegister,
};

use super::attr::list;
use super::decode::data_value;
use super::nla::{string, Attrs};
use super::DecodeError;
use crate::model::{Expr, Register};

pub(crate) use immediate::{verdict, verdict_attrs};

/// Encode one expression as the `NFTA_LIST_ELEM` nft puts in a rule.
/// `set_id` gives the transaction-local id of a set by name.
pub(crate) fn encode(
    expr: &Expr,
    set_id: impl Fn(&str) -> Option<u32>,
) -> ListAttribute<ExpressionAttribute> {
    let data = match expr {
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => payload::encode(*base, *offset, *len, *dreg),
        Expr::Cmp { sreg, op, data } => cmp::encode(*sreg, *op, data),
        Expr::Bitwise(b) => bitwise::encode(b),
        Expr::Meta { key, dreg } => meta::encode(*key, *dreg),
        Expr::Ct { key, dreg } => ct::encode(*key, *dreg),
        Expr::Lookup { set, sreg, invert } => lookup::encode(set, *sreg, *invert, set_id(set)),
        Expr::VerdictMap { set, sreg } => lookup::encode_vmap(set, *sreg, set_id(set)),
        Expr::Dynset {
            set,
            op,
            sreg,
            timeout_ms,
        } => dynset::encode(set, *op, *sreg, *timeout_ms, set_id(set)),
        Expr::Verdict(v) => immediate::encode(v),
        Expr::Counter { packets, bytes } => counter::encode(*packets, *bytes),
        Expr::Limit { rate, unit, burst } => limit::encode(*rate, *unit, *burst),
        Expr::Log { group, prefix } => log::encode(*group, prefix),
        Expr::Unknown { name } => Expressions::Other {
            expression_type: name.clone(),
            attributes: vec![],
        },
    };
    ListAttribute::from(data)
}

/// Decode one `NFTA_LIST_ELEM` of a rule's expression list.
pub(crate) fn decode(elem: &[u8]) -> Result<Expr, DecodeError> {
    let (mut name, mut data) = (None, None);
    for attr in Attrs::new(elem) {
        let (kind, value) = attr?;
        match kind {
            list::EXPR_NAME => name = Some(string(value, "expression name")?),
            list::EXPR_DATA => data = Some(value),
            _ => {}
        }
    }
    let name = name.ok_or(DecodeError::Missing("expression name"))?;
    let Some(data) = data else {
        return Ok(Expr::Unknown { name });
    };
    match name.as_str() {
        "payload" => payload::decode(data),
        "cmp" => cmp::decode(data),
        "bitwise" => bitwise::decode(data),
        "meta" => meta::decode(data),
        "lookup" => lookup::decode(data),
        "immediate" => immediate::decode(data),
        "ct" => ct::decode(data),
        "dynset" => dynset::decode(data),
        "counter" => counter::decode(data),
        "limit" => limit::decode(data),
        "log" => log::decode(data),
        _ => Ok(Expr::Unknown { name }),
    }
}

fn to_nl(reg: Register) -> NlRegister {
    NlRegister::from(reg.number())
}
