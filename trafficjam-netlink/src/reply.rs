//! Parsing the kernel's answers: acknowledgements, errors (with the
//! extended-ack text) and the end of a dump. Every byte here comes from the
//! kernel, so nothing may panic.

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_CAPPED`: the error carries only the header of the request.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`
const NLMSGERR_ATTR_MSG: u16 = 1;
const HEADER: usize = 16;

/// One message of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply<'a> {
    /// An acknowledgement (`errno == 0`) or an error for request `seq`.
    Ack {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    /// The end of a dump.
    Done { seq: u32 },
    /// A data message (a dump entry), whole, with its flags.
    Data {
        seq: u32,
        interrupted: bool,
        bytes: &'a [u8],
    },
}

/// Split a datagram into its messages. Stops at the first malformed one
/// with an error.
pub(crate) fn parse(buf: &[u8]) -> Result<Vec<Reply<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= HEADER {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < HEADER || len > rest.len() {
            return Err(format!("message length {len} out of bounds"));
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let flags = u16::from_ne_bytes([rest[6], rest[7]]);
        let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let msg = &rest[..len];
        out.push(match ty {
            NLMSG_ERROR => ack(msg, flags)?,
            NLMSG_DONE => Reply::Done { seq },
            _ => Reply::Data {
                seq,
                interrupted: flags & NLM_F_DUMP_INTR != 0,
                bytes: msg,
            },
        });
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    Ok(out)
}

/// `struct nlmsgerr { int error; struct nlmsghdr msg; }` then, with
/// `NLM_F_ACK_TLVS`, attributes. The echoed request is whole unless
/// `NLM_F_CAPPED`. The sequence number that matters is the echoed
/// request's, which is also the error message's own.
fn ack(msg: &[u8], flags: u16) -> Result<Reply<'_>, String> {
    let body = &msg[HEADER..];
    if body.len() < 4 + HEADER {
        return Err("error message too short".into());
    }
    let error = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
    let echoed = &body[4..];
    let echoed_len = u32::from_ne_bytes([echoed[0], echoed[1], echoed[2], echoed[3]]) as usize;
    let seq = u32::from_ne_bytes([echoed[8], echoed[9], echoed[10], echoed[11]]);
    let skip = if flags & NLM_F_CAPPED != 0 {
        HEADER
    } else {
        (echoed_len + 3) & !3
    };
    let message = if flags & NLM_F_ACK_TLVS != 0 {
        echoed.get(skip..).and_then(ext_ack_message)
    } else {
        None
    };
    Ok(Reply::Ack {
        seq,
        errno: error.checked_neg().unwrap_or(i32::MAX).max(0),
        message,
    })
}

fn ext_ack_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = tlvs[4..len].split(|b| *b == 0).next()?;
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend((len as u32).to_ne_bytes());
        h.extend(ty.to_ne_bytes());
        h.extend(flags.to_ne_bytes());
        h.extend(seq.to_ne_bytes());
        h.extend(0u32.to_ne_bytes());
        h
    }

    #[test]
    fn error_with_extended_ack_text() {
        let text = b"Table does not exist\0";
        let tlv_len = 4 + text.len();
        let total = 16 + 4 + 16 + ((tlv_len + 3) & !3);
        let mut m = header(total, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7);
        m.extend((-libc::ENOENT).to_ne_bytes());
        m.extend(header(40, 0x0a03, 0x0405, 7));
        m.extend((tlv_len as u16).to_ne_bytes());
        m.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
        m.extend(text);
        m.resize(total, 0);
        assert_eq!(
            parse(&m).unwrap(),
            vec![Reply::Ack {
                seq: 7,
                errno: libc::ENOENT,
                message: Some("Table does not exist".into())
            }]
        );
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut m = header(40, NLMSG_ERROR, 0, 1);
        m.extend([0u8; 2]);
        assert!(parse(&m).is_err());
        let m = header(16, NLMSG_ERROR, 0, 1);
        assert!(parse(&m).is_err());
        assert_eq!(parse(&[1, 2, 3]).unwrap(), vec![]);
    }
}
