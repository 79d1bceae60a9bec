//! Loading the golden fixtures (the bytes nft sends, captured by
//! `fixtures/capture.sh`) and comparing them with our encoding.

use std::fmt::Write as _;
use std::path::PathBuf;

/// The batch messages nft sent for fixture `name` (delimiters excluded),
/// each a whole netlink message.
pub fn batch(name: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| hex(l.trim()))
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Split a batch of ours into its messages, dropping the delimiters.
pub fn inner_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        if ty != 0x10 && ty != 0x11 {
            out.push(rest[..len].to_vec());
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    out
}

/// What differs by design, masked before comparing:
/// - sequence numbers and port ids (bytes 8..16);
/// - `NLM_F_ACK` (0x4): we ask the kernel to acknowledge every message so
///   errors map to objects; nft 1.0.6 does not.
fn masked(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    m[8..16].fill(0);
    m[6] &= !0x04;
    m
}

/// Compare message by message; on mismatch print both as attribute trees.
pub fn assert_messages_eq(ours: &[Vec<u8>], theirs: &[Vec<u8>], fixture: &str) {
    let a: Vec<Vec<u8>> = ours.iter().map(|m| masked(m)).collect();
    let b: Vec<Vec<u8>> = theirs
        .iter()
        .map(|m| masked(&without_default_bitwise_op(m)))
        .collect();
    if a != b {
        let mut report = format!(
            "fixture {fixture}: {} message(s) ours, {} nft's\n",
            a.len(),
            b.len()
        );
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            if x != y {
                let _ = writeln!(
                    report,
                    "-- message {i} differs\nours:\n{}nft:\n{}",
                    tree(x),
                    tree(y)
                );
            }
        }
        panic!("{report}");
    }
}

/// A readable dump of a message: header fields, then attributes, nested
/// ones indented (attributes with the nested flag, or that parse as such).
pub fn tree(msg: &[u8]) -> String {
    let mut out = format!(
        "  len {} type {:#06x} flags {:#06x} nfgen family {} res {}\n",
        u32::from_ne_bytes(msg[..4].try_into().unwrap()),
        u16::from_ne_bytes([msg[4], msg[5]]),
        u16::from_ne_bytes([msg[6], msg[7]]),
        msg[16],
        u16::from_be_bytes([msg[18], msg[19]])
    );
    attrs(&msg[20..], 2, &mut out);
    out
}

fn attrs(mut buf: &[u8], depth: usize, out: &mut String) {
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < 4 || len > buf.len() {
            let _ = writeln!(out, "{:depth$}<malformed {buf:02x?}>", "");
            return;
        }
        let value = &buf[4..len];
        if ty & 0x8000 != 0 {
            let _ = writeln!(out, "{:depth$}[{}] nested", "", ty & 0x3fff);
            attrs(value, depth + 2, out);
        } else {
            let _ = writeln!(out, "{:depth$}[{}] {:02x?}", "", ty, value);
        }
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
}

/// nft 1.0.6 sends `NFTA_BITWISE_OP = NFT_BITWISE_BOOL` for some bitwise
/// expressions (`tcp flags & …`) and omits it for others (`ct state`); the
/// kernel reads an absent attribute as `NFT_BITWISE_BOOL`. trafficjam never
/// sends it (older kernels do not know it), so nft's explicit default is
/// removed from its bytes before comparing. Nothing else is rewritten.
fn without_default_bitwise_op(msg: &[u8]) -> Vec<u8> {
    let mut out = msg[..20].to_vec();
    out.extend(rewrite(&msg[20..], false));
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_ne_bytes());
    out
}

/// Re-serialise an attribute list, dropping `[6] = 0` (NFTA_BITWISE_OP)
/// from the data of a `bitwise` expression.
fn rewrite(mut buf: &[u8], in_bitwise_data: bool) -> Vec<u8> {
    const NESTED: u16 = 0x8000;
    let mut out = Vec::new();
    // Is this list an expression whose name is "bitwise"?
    let is_bitwise = {
        let mut b = buf;
        let mut found = false;
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let ty = u16::from_ne_bytes([b[2], b[3]]);
            if len < 4 || len > b.len() {
                break;
            }
            if ty == 1 && &b[4..len] == b"bitwise\0" {
                found = true;
            }
            b = &b[((len + 3) & !3).min(b.len())..];
        }
        found
    };
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < 4 || len > buf.len() {
            out.extend_from_slice(buf);
            break;
        }
        let value = &buf[4..len];
        let next = ((len + 3) & !3).min(buf.len());
        if in_bitwise_data && ty == 6 && value == [0, 0, 0, 0] {
            buf = &buf[next..];
            continue;
        }
        if ty & NESTED != 0 {
            let inner = rewrite(value, is_bitwise && ty & 0x3fff == 2);
            out.extend_from_slice(&((inner.len() + 4) as u16).to_ne_bytes());
            out.extend_from_slice(&ty.to_ne_bytes());
            out.extend(inner);
        } else {
            out.extend_from_slice(&buf[..len]);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            buf = &buf[next..];
            continue;
        }
        while out.len() % 4 != 0 {
            out.push(0);
        }
        buf = &buf[next..];
    }
    out
}
