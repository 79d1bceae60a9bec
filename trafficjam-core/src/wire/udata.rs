//! The user-data TLVs nft stores on tables and sets (libnftnl's `udata`):
//! one byte type, one byte length, value. The kernel keeps them opaque;
//! nft reads them back to print comments and byte order.

/// `NFTNL_UDATA_TABLE_COMMENT`
const TABLE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_SET_KEYBYTEORDER`
const SET_KEYBYTEORDER: u8 = 0;
/// nft's `BYTEORDER_HOST_ENDIAN`: interface names are host data.
const BYTEORDER_HOST_ENDIAN: u32 = 1;
/// nft's `BYTEORDER_BIG_ENDIAN`: addresses are stored in network order.
const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// The user data of a table carrying `comment` (NUL-terminated, as nft
/// writes it). Comments longer than a TLV can hold are cut.
pub(crate) fn table_comment(comment: &str) -> Vec<u8> {
    let mut value = comment.as_bytes().to_vec();
    value.truncate(usize::from(u8::MAX) - 1);
    value.push(0);
    tlv(TABLE_COMMENT, &value)
}

/// The user data nft attaches to a set: the byte order of its keys.
pub(crate) fn set_key_byteorder(big_endian: bool) -> Vec<u8> {
    let order = if big_endian {
        BYTEORDER_BIG_ENDIAN
    } else {
        BYTEORDER_HOST_ENDIAN
    };
    // nft stores the byte order as a host-endian u32.
    tlv(SET_KEYBYTEORDER, &order.to_ne_bytes())
}

/// The table comment in user data, if there is one.
pub(crate) fn parse_table_comment(data: &[u8]) -> Option<String> {
    let value = find(data, TABLE_COMMENT)?;
    let text = value.split(|b| *b == 0).next()?;
    String::from_utf8(text.to_vec()).ok()
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(kind);
    out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(value);
    out
}

fn find(mut data: &[u8], kind: u8) -> Option<&[u8]> {
    while let [k, len, rest @ ..] = data {
        let len = usize::from(*len);
        let value = rest.get(..len)?;
        if *k == kind {
            return Some(value);
        }
        data = &rest[len..];
    }
    None
}
