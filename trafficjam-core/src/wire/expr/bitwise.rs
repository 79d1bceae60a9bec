//! `bitwise`: `dreg = (sreg & mask) ^ xor`, used for `ct state` bit tests.

use netlink_packet_netfilter::nftables::{Bitwise as NlBitwise, DataAttribute, Expressions};

use super::{data_value, to_nl};
use crate::model::Register;
use crate::model::{Bitwise, Expr};
use crate::wire::nla::{be_u32, Attrs};
use crate::wire::DecodeError;

pub(super) fn encode(b: &Bitwise) -> Expressions {
    Expressions::Bitwise(vec![
        NlBitwise::SourceRegister(to_nl(b.sreg)),
        NlBitwise::DestinationRegister(to_nl(b.dreg)),
        NlBitwise::Length(b.len),
        NlBitwise::Mask(DataAttribute::Value(b.mask.clone())),
        NlBitwise::Xor(DataAttribute::Value(b.xor.clone())),
    ])
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const SREG: u16 = 1;
    const DREG: u16 = 2;
    const LEN: u16 = 3;
    const MASK: u16 = 4;
    const XOR: u16 = 5;
    const OP: u16 = 6;
    /// `NFT_BITWISE_BOOL`: the mask/xor form; shifts are not ours.
    const OP_BOOL: u32 = 0;
    let (mut sreg, mut dreg, mut len, mut mask, mut xor) = (None, None, None, None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            SREG => sreg = Some(Register::from_number(be_u32(value, "bitwise register")?)),
            DREG => dreg = Some(Register::from_number(be_u32(value, "bitwise register")?)),
            LEN => len = Some(be_u32(value, "bitwise length")?),
            MASK => mask = Some(data_value(value)?),
            XOR => xor = Some(data_value(value)?),
            OP if be_u32(value, "bitwise op")? == OP_BOOL => {}
            _ => {
                return Ok(Expr::Unknown {
                    name: "bitwise".to_string(),
                })
            }
        }
    }
    Ok(Expr::Bitwise(Bitwise {
        sreg: sreg.ok_or(DecodeError::Missing("bitwise source register"))?,
        dreg: dreg.ok_or(DecodeError::Missing("bitwise destination register"))?,
        len: len.ok_or(DecodeError::Missing("bitwise length"))?,
        mask: mask.ok_or(DecodeError::Missing("bitwise mask"))?,
        xor: xor.ok_or(DecodeError::Missing("bitwise xor"))?,
    }))
}
