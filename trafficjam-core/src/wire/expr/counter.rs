//! `counter`: packets and bytes that reached this point of the rule.
//! Encoded here (`enum nft_counter_attributes`).

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::Expressions;

use crate::model::Expr;
use crate::wire::nla::{be_u64, Attrs};
use crate::wire::DecodeError;

const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

pub(super) fn encode(packets: u64, bytes: u64) -> Expressions {
    // A new counter starts at zero: like nft, send no values for it.
    let attributes = if packets == 0 && bytes == 0 {
        vec![]
    } else {
        vec![
            DefaultNla::new(NFTA_COUNTER_BYTES, bytes.to_be_bytes().to_vec()),
            DefaultNla::new(NFTA_COUNTER_PACKETS, packets.to_be_bytes().to_vec()),
        ]
    };
    Expressions::Other {
        expression_type: "counter".to_string(),
        attributes,
    }
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    let (mut packets, mut bytes) = (0, 0);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            NFTA_COUNTER_BYTES => bytes = be_u64(value, "counter bytes")?,
            NFTA_COUNTER_PACKETS => packets = be_u64(value, "counter packets")?,
            // NFTA_COUNTER_PAD and future attributes carry no state we use.
            _ => {}
        }
    }
    Ok(Expr::Counter { packets, bytes })
}
