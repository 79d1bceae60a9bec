//! Reading several dumps as one consistent picture.

use crate::{NetfilterSocket, NetlinkError};

/// How often a dump is retried while the ruleset keeps changing.
const ATTEMPTS: usize = 10;

/// Run `dump` (which may issue several requests) between two generation-id
/// queries, and run it again while the generation changed in between or a
/// dump was interrupted: the result then describes one generation of the
/// ruleset. `getgen` is an encoded `NFT_MSG_GETGEN` request and
/// `parse_genid` extracts the id from its answer.
pub fn consistent<T>(
    sock: &mut NetfilterSocket,
    getgen: &[u8],
    parse_genid: impl Fn(&[u8]) -> Option<u32>,
    mut dump: impl FnMut(&mut NetfilterSocket) -> Result<T, NetlinkError>,
) -> Result<T, NetlinkError> {
    let genid = |sock: &mut NetfilterSocket| -> Result<u32, NetlinkError> {
        let answer = sock.request(getgen)?;
        answer
            .iter()
            .find_map(|m| parse_genid(m))
            .ok_or_else(|| NetlinkError::Malformed("no generation id in the answer".into()))
    };
    let mut last = NetlinkError::DumpInterrupted;
    for _ in 0..ATTEMPTS {
        let before = genid(sock)?;
        match dump(sock) {
            Ok(value) if genid(sock)? == before => return Ok(value),
            Ok(_) => last = NetlinkError::DumpInterrupted,
            Err(NetlinkError::DumpInterrupted) => last = NetlinkError::DumpInterrupted,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}
