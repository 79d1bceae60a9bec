//! `ct`: load conntrack data. Not typed by netlink-packet-netfilter, so the
//! attributes are encoded here (`enum nft_ct_attributes`).

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::Expressions;

use crate::model::{CtKey, Expr, Register};
use crate::wire::nla::{be_u32, Attrs};
use crate::wire::DecodeError;

const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;

pub(super) fn encode(key: CtKey, dreg: Register) -> Expressions {
    Expressions::Other {
        expression_type: "ct".to_string(),
        // Key before register, as nft sends them.
        attributes: vec![
            DefaultNla::new(NFTA_CT_KEY, key.number().to_be_bytes().to_vec()),
            DefaultNla::new(NFTA_CT_DREG, dreg.number().to_be_bytes().to_vec()),
        ],
    }
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    let (mut key, mut dreg) = (None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            NFTA_CT_DREG => dreg = Some(Register::from_number(be_u32(value, "ct register")?)),
            NFTA_CT_KEY => key = Some(CtKey::from_number(be_u32(value, "ct key")?)),
            // A direction, or a source register (ct set), is not ours.
            _ => return Ok(unknown()),
        }
    }
    Ok(Expr::Ct {
        key: key.ok_or(DecodeError::Missing("ct key"))?,
        dreg: dreg.ok_or(DecodeError::Missing("ct register"))?,
    })
}

fn unknown() -> Expr {
    Expr::Unknown {
        name: "ct".to_string(),
    }
}
