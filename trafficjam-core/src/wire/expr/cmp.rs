//! `cmp`: compare a register with a constant.

use netlink_packet_netfilter::nftables::{Cmp, DataAttribute, Expressions, Operator};

use super::{data_value, to_nl};
use crate::model::{CmpOp, Expr, Register};
use crate::wire::nla::{be_u32, Attrs};
use crate::wire::DecodeError;

pub(super) fn encode(sreg: Register, op: CmpOp, data: &[u8]) -> Expressions {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(to_nl(sreg)),
        Cmp::Op(Operator::from(op.number())),
        Cmp::Data(DataAttribute::Value(data.to_vec())),
    ])
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const SREG: u16 = 1;
    const OP: u16 = 2;
    const DATA: u16 = 3;
    let (mut sreg, mut op, mut value_) = (None, None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            SREG => sreg = Some(Register::from_number(be_u32(value, "cmp register")?)),
            OP => op = CmpOp::from_number(be_u32(value, "cmp operator")?),
            DATA => value_ = Some(data_value(value)?),
            _ => {}
        }
    }
    Ok(Expr::Cmp {
        sreg: sreg.ok_or(DecodeError::Missing("cmp register"))?,
        op: op.ok_or(DecodeError::Missing("cmp operator"))?,
        data: value_.ok_or(DecodeError::Missing("cmp data"))?,
    })
}
