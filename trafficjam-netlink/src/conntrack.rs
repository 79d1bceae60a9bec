//! Cutting tracked connections (ctnetlink).

use trafficjam_core::conntrack::{delete_request, dump_request, parse_connection, Connection};

use crate::{NetfilterSocket, NetlinkError};

/// Delete every tracked connection for which `cut` is true; returns how
/// many were deleted. An entry that expired in the meantime is not an
/// error.
pub fn cut_connections(
    sock: &mut NetfilterSocket,
    cut: impl Fn(&Connection) -> bool,
) -> Result<usize, NetlinkError> {
    let mut doomed = Vec::new();
    for reply in sock.request(&dump_request())? {
        if let Some(c) = parse_connection(&reply) {
            if cut(&c) {
                doomed.push(c);
            }
        }
    }
    let mut deleted = 0;
    for c in &doomed {
        match sock.request(&delete_request(c)) {
            Ok(_) => deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
