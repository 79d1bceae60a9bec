//! `dynset`: add or refresh a key in a set from the packet path
//! (`enum nft_dynset_attributes`). Not typed by netlink-packet-netfilter.

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::Expressions;

use crate::model::{DynsetOp, Expr, Register};
use crate::wire::nla::{be_u32, be_u64, string, Attrs};
use crate::wire::DecodeError;

const SET_NAME: u16 = 1;
const SET_ID: u16 = 2;
const OP: u16 = 3;
const SREG_KEY: u16 = 4;
const TIMEOUT: u16 = 6;
const FLAGS: u16 = 9;

/// `set_id` names a set created in the same batch, as for `lookup`.
pub(super) fn encode(
    set: &str,
    op: DynsetOp,
    sreg: Register,
    timeout_ms: Option<u64>,
    set_id: Option<u32>,
) -> Expressions {
    // nft's order: key register, operation, timeout, set name, set id.
    let mut attributes = vec![
        DefaultNla::new(SREG_KEY, sreg.number().to_be_bytes().to_vec()),
        DefaultNla::new(OP, op.number().to_be_bytes().to_vec()),
    ];
    if let Some(ms) = timeout_ms {
        attributes.push(DefaultNla::new(TIMEOUT, ms.to_be_bytes().to_vec()));
    }
    let mut name = set.as_bytes().to_vec();
    name.push(0);
    attributes.push(DefaultNla::new(SET_NAME, name));
    if let Some(id) = set_id {
        attributes.push(DefaultNla::new(SET_ID, id.to_be_bytes().to_vec()));
    }
    Expressions::Other {
        expression_type: "dynset".to_string(),
        attributes,
    }
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    let (mut set, mut op, mut sreg, mut timeout_ms) = (None, None, None, None);
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            SET_NAME => set = Some(string(value, "dynset set")?),
            OP => {
                op = Some(
                    DynsetOp::from_number(be_u32(value, "dynset operation")?)
                        .ok_or(DecodeError::Malformed("dynset operation"))?,
                )
            }
            SREG_KEY => sreg = Some(Register::from_number(be_u32(value, "dynset register")?)),
            TIMEOUT => timeout_ms = Some(be_u64(value, "dynset timeout")?),
            SET_ID => {}
            // The kernel always reports its flags; none is what we build
            // (no inverted match, no attached expressions).
            FLAGS if be_u32(value, "dynset flags")? == 0 => {}
            // A map update (data register), flags or attached expressions
            // are not something trafficjam builds.
            _ => {
                return Ok(Expr::Unknown {
                    name: "dynset".to_string(),
                })
            }
        }
    }
    Ok(Expr::Dynset {
        set: set.ok_or(DecodeError::Missing("dynset set"))?,
        op: op.ok_or(DecodeError::Missing("dynset operation"))?,
        sreg: sreg.ok_or(DecodeError::Missing("dynset register"))?,
        timeout_ms,
    })
}
