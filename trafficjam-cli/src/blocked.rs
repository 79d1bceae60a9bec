//! The blocked-connection log: the rules send dropped new connections to
//! the instance's NFLOG group; this reads them and says who tried to reach
//! whom, with container names (from Docker, or `--name` in static mode).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use trafficjam_core::nflog::{bind_requests, parse_blocked, Blocked};
use trafficjam_netlink::{NetfilterSocket, NetlinkError};

/// Bind each NFLOG group and forward every logged packet to the channel.
/// Fails at once if a group cannot be bound (another process has it).
pub fn listen(
    netns: Option<PathBuf>,
    groups: &[u16],
) -> Result<UnboundedReceiver<Blocked>, NetlinkError> {
    let (tx, rx) = unbounded_channel();
    for &group in groups {
        let mut socket = NetfilterSocket::open_in(netns.as_deref())?;
        for request in bind_requests(group) {
            socket.request(&request)?;
        }
        let tx = tx.clone();
        std::thread::spawn(move || loop {
            match socket.recv_messages(None) {
                Ok(messages) => {
                    for b in messages.iter().filter_map(|m| parse_blocked(m)) {
                        if tx.send(b).is_err() {
                            return;
                        }
                    }
                }
                // ENOBUFS under a flood: some lines are lost, not the rules.
                Err(_) => continue,
            }
        });
    }
    Ok(rx)
}

/// `blocked web1 (172.23.0.3) → db (172.23.0.4) tcp/5432`
pub fn line(b: &Blocked, names: &BTreeMap<IpAddr, String>) -> String {
    let who = |ip: &IpAddr| match names.get(ip) {
        Some(n) => format!("{n} ({ip})"),
        None => ip.to_string(),
    };
    format!(
        "blocked {} → {} {}",
        who(&b.source),
        who(&b.destination),
        b.transport
    )
}
