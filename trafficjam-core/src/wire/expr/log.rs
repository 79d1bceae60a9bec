//! `log` to an NFLOG group (`enum nft_log_attributes`), encoded here:
//! netlink-packet-netfilter does not type it.

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::Expressions;

use crate::model::Expr;
use crate::wire::nla::{string, Attrs};
use crate::wire::DecodeError;

const GROUP: u16 = 1;
const PREFIX: u16 = 2;

pub(super) fn encode(group: u16, prefix: &str) -> Expressions {
    let mut p = prefix.as_bytes().to_vec();
    p.push(0);
    // Prefix before group, as nft sends them.
    Expressions::Other {
        expression_type: "log".to_string(),
        attributes: vec![
            DefaultNla::new(PREFIX, p),
            DefaultNla::new(GROUP, group.to_be_bytes().to_vec()),
        ],
    }
}

pub(super) fn decode(data: &[u8]) -> Result<Expr, DecodeError> {
    let (mut group, mut prefix) = (None, String::new());
    for attr in Attrs::new(data) {
        let (kind, value) = attr?;
        match kind {
            GROUP => {
                let b: [u8; 2] = value
                    .try_into()
                    .map_err(|_| DecodeError::Malformed("log group"))?;
                group = Some(u16::from_be_bytes(b));
            }
            PREFIX => prefix = string(value, "log prefix")?,
            _ => {}
        }
    }
    // A log to the kernel log (no group) is not ours.
    match group {
        Some(group) => Ok(Expr::Log { group, prefix }),
        None => Ok(Expr::Unknown {
            name: "log".to_string(),
        }),
    }
}
