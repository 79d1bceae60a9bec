//! `meta`: load packet metadata (family, transport protocol, interface).

use netlink_packet_netfilter::nftables::{Expressions, Meta, MetaKey as NlMetaKey};

use super::to_nl;
use crate::model::{Expr, MetaKey, Register};
use crate::wire::nla::{be_u32, Attrs};
use crate::wire::DecodeError;

pub(super) fn encode(key: MetaKey, dreg: Register) -> Expressions {
    // Key before register, as nft sends them.
    Expressions::Meta(vec![
        Meta::Key(NlMetaKey::from(key.number())),
        Meta::DestinationRegister(to_nl(dreg)),
    ])
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    const DREG: u16 = 1;
    const KEY: u16 = 2;
    let (mut key, mut dreg) = (None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            DREG => dreg = Some(Register::from_number(be_u32(value, "meta register")?)),
            KEY => key = Some(MetaKey::from_number(be_u32(value, "meta key")?)),
            // A meta *set* (source register) is not something we build.
            _ => {
                return Ok(Expr::Unknown {
                    name: "meta".to_string(),
                })
            }
        }
    }
    Ok(Expr::Meta {
        key: key.ok_or(DecodeError::Missing("meta key"))?,
        dreg: dreg.ok_or(DecodeError::Missing("meta register"))?,
    })
}
