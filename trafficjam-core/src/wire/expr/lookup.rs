//! `lookup`: match when a register's value is an element of a named set,
//! or, into the verdict register, take the verdict a map gives it.

use netlink_packet_netfilter::nftables::{Expressions, Lookup, Register as NlRegister};

use super::to_nl;
use crate::model::{Expr, Register};
use crate::wire::nla::{be_u32, string, Attrs};
use crate::wire::DecodeError;

/// `NFT_LOOKUP_F_INV`
const F_INV: u32 = 1;

/// `set_id` is the transaction-local id of the set when it is created in
/// the same batch. The kernel resolves the set by name first, so the id only
/// matters for a set created in the same batch; nft always sends it.
pub(super) fn encode(set: &str, sreg: Register, invert: bool, set_id: Option<u32>) -> Expressions {
    // Register, name, id: nft's order.
    let mut attrs = vec![
        Lookup::SourceRegister(to_nl(sreg)),
        Lookup::Set(set.to_string()),
    ];
    if let Some(id) = set_id {
        attrs.push(Lookup::SetId(id));
    }
    if invert {
        attrs.push(Lookup::Flags(F_INV));
    }
    Expressions::Lookup(attrs)
}

/// A verdict map lookup: source register, destination (the verdict
/// register), name, id, as nft orders them.
pub(super) fn encode_vmap(set: &str, sreg: Register, set_id: Option<u32>) -> Expressions {
    let mut attrs = vec![
        Lookup::SourceRegister(to_nl(sreg)),
        Lookup::DestinationRegister(NlRegister::Verdict),
        Lookup::Set(set.to_string()),
    ];
    if let Some(id) = set_id {
        attrs.push(Lookup::SetId(id));
    }
    Expressions::Lookup(attrs)
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const SET: u16 = 1;
    const SREG: u16 = 2;
    const DREG: u16 = 3;
    const FLAGS: u16 = 5;
    let (mut set, mut sreg, mut dreg, mut flags) = (None, None, None, 0);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            SET => set = Some(string(value, "lookup set")?),
            SREG => sreg = Some(Register::from_number(be_u32(value, "lookup register")?)),
            DREG => dreg = Some(be_u32(value, "lookup destination register")?),
            FLAGS => flags = be_u32(value, "lookup flags")?,
            _ => {}
        }
    }
    let set = set.ok_or(DecodeError::Missing("lookup set"))?;
    let sreg = sreg.ok_or(DecodeError::Missing("lookup register"))?;
    match dreg {
        None => Ok(Expr::Lookup {
            set,
            sreg,
            invert: flags & F_INV != 0,
        }),
        // Into the verdict register, not inverted: a verdict map.
        Some(0) if flags == 0 => Ok(Expr::VerdictMap { set, sreg }),
        // A data map, or an inverted map lookup: not ours.
        Some(_) => Ok(Expr::Unknown {
            name: "lookup".to_string(),
        }),
    }
}
