//! `limit`: a packet-rate limit (`enum nft_limit_attributes`), encoded
//! here: netlink-packet-netfilter does not type it.

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::Expressions;

use crate::model::Expr;
use crate::wire::nla::{be_u32, be_u64, Attrs};
use crate::wire::DecodeError;

const RATE: u16 = 1;
const UNIT: u16 = 2;
const BURST: u16 = 3;
const TYPE: u16 = 4;
const FLAGS: u16 = 5;
/// `NFT_LIMIT_PKTS`
const TYPE_PKTS: u32 = 0;

pub(super) fn encode(rate: u64, unit: u64, burst: u32) -> Expressions {
    Expressions::Other {
        expression_type: "limit".to_string(),
        attributes: vec![
            DefaultNla::new(RATE, rate.to_be_bytes().to_vec()),
            DefaultNla::new(UNIT, unit.to_be_bytes().to_vec()),
            DefaultNla::new(BURST, burst.to_be_bytes().to_vec()),
            DefaultNla::new(TYPE, TYPE_PKTS.to_be_bytes().to_vec()),
            DefaultNla::new(FLAGS, 0u32.to_be_bytes().to_vec()),
        ],
    }
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    let (mut rate, mut unit, mut burst) = (None, None, 0);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            RATE => rate = Some(be_u64(value, "limit rate")?),
            UNIT => unit = Some(be_u64(value, "limit unit")?),
            BURST => burst = be_u32(value, "limit burst")?,
            // A byte limit or an inverted one is not ours.
            TYPE | FLAGS if be_u32(value, "limit type")? != 0 => {
                return Ok(Expr::Unknown {
                    name: "limit".to_string(),
                })
            }
            _ => {}
        }
    }
    Ok(Expr::Limit {
        rate: rate.ok_or(DecodeError::Missing("limit rate"))?,
        unit: unit.ok_or(DecodeError::Missing("limit unit"))?,
        burst,
    })
}
