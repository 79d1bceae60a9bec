//! A bounds-checked reader for netlink messages and attributes.
//!
//! Decoding uses this instead of netlink-packet-netfilter's parsers: those
//! index into nested attributes without checking their length and panic on
//! a truncated one (found by fuzzing `TableDump`), and bytes from the
//! kernel must never crash trafficjam.

use super::DecodeError;

/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits of an attribute type.
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);
/// Netlink header (16) plus nfgenmsg (4).
const HEADERS: usize = 20;

/// One netlink message carrying an nf_tables payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    /// `NFNL_SUBSYS_*` (high byte of `nlmsg_type`).
    pub subsys: u8,
    /// `NFT_MSG_*` (low byte of `nlmsg_type`).
    pub kind: u8,
    /// `nfgen_family`.
    pub family: u8,
    /// The attributes after the nfgenmsg header.
    pub attrs: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parse one message; trailing bytes beyond `nlmsg_len` are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let header: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::Malformed("message shorter than its header"))?;
        let len = u32::from_ne_bytes(header) as usize;
        if len < HEADERS || len > bytes.len() {
            return Err(DecodeError::Malformed("message length out of bounds"));
        }
        let ty = u16::from_ne_bytes([bytes[4], bytes[5]]);
        Ok(Message {
            subsys: (ty >> 8) as u8,
            kind: ty as u8,
            family: bytes[16],
            attrs: &bytes[HEADERS..len],
        })
    }
}

/// Iterates over the attributes in a buffer as `(type, value)`, stopping
/// with an error at the first attribute whose length does not fit.
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.rest[0], self.rest[1]]));
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(DecodeError::Malformed(
                "attribute length out of bounds",
            )));
        }
        let value = &self.rest[4..len];
        let aligned = (len + 3) & !3;
        self.rest = self.rest.get(aligned..).unwrap_or(&[]);
        Some(Ok((kind, value)))
    }
}

/// A big-endian u32 attribute value.
pub(crate) fn be_u32(value: &[u8], what: &'static str) -> Result<u32, DecodeError> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_be_bytes)
        .map_err(|_| DecodeError::Malformed(what))
}

/// A big-endian u64 attribute value.
pub(crate) fn be_u64(value: &[u8], what: &'static str) -> Result<u64, DecodeError> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| DecodeError::Malformed(what))
}

/// A NUL-terminated string attribute value.
pub(crate) fn string(value: &[u8], what: &'static str) -> Result<String, DecodeError> {
    let text = value.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8(text.to_vec()).map_err(|_| DecodeError::Malformed(what))
}
