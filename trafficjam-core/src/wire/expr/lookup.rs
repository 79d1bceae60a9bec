//! `lookup`: match when a register's value is an element of a named set.

use netlink_packet_netfilter::nftables::{Expressions, Lookup};

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

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const SET: u16 = 1;
    const SREG: u16 = 2;
    const DREG: u16 = 3;
    const FLAGS: u16 = 5;
    let (mut set, mut sreg, mut flags) = (None, None, 0);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            SET => set = Some(string(value, "lookup set")?),
            SREG => sreg = Some(Register::from_number(be_u32(value, "lookup register")?)),
            FLAGS => flags = be_u32(value, "lookup flags")?,
            // A map lookup (destination register) is not ours.
            DREG => {
                return Ok(Expr::Unknown {
                    name: "lookup".to_string(),
                })
            }
            _ => {}
        }
    }
    Ok(Expr::Lookup {
        set: set.ok_or(DecodeError::Missing("lookup set"))?,
        sreg: sreg.ok_or(DecodeError::Missing("lookup register"))?,
        invert: flags & F_INV != 0,
    })
}
