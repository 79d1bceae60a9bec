//! `payload`: load bytes of a packet header into a register.

use netlink_packet_netfilter::nftables::{Expressions, Payload};

use super::to_nl;
use crate::model::{Expr, PayloadBase, Register};
use crate::wire::nla::{be_u32, Attrs};
use crate::wire::DecodeError;

pub(super) fn encode(base: PayloadBase, offset: u32, len: u32, dreg: Register) -> Expressions {
    // Attribute order as nft sends it: dreg, base, offset, len.
    Expressions::Payload(vec![
        Payload::DestinationRegister(to_nl(dreg)),
        Payload::Base(base.number()),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const DREG: u16 = 1;
    const BASE: u16 = 2;
    const OFFSET: u16 = 3;
    const LEN: u16 = 4;
    let (mut base, mut offset, mut len, mut dreg) = (None, None, None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            DREG => dreg = Some(Register::from_number(be_u32(value, "payload register")?)),
            BASE => base = Some(be_u32(value, "payload base")?),
            OFFSET => offset = Some(be_u32(value, "payload offset")?),
            LEN => len = Some(be_u32(value, "payload length")?),
            // A payload *write* (source register, checksum) is not ours.
            _ => return Ok(unknown()),
        }
    }
    let base = base.ok_or(DecodeError::Missing("payload base"))?;
    Ok(Expr::Payload {
        base: PayloadBase::from_number(base).ok_or(DecodeError::Malformed("payload base"))?,
        offset: offset.ok_or(DecodeError::Missing("payload offset"))?,
        len: len.ok_or(DecodeError::Missing("payload length"))?,
        dreg: dreg.ok_or(DecodeError::Missing("payload register"))?,
    })
}

/// A payload *write* (checksum attributes, source register): not something
/// trafficjam builds.
fn unknown() -> Expr {
    Expr::Unknown {
        name: "payload".to_string(),
    }
}
