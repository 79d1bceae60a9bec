//! Watching the kernel's nf_tables change notifications, so that when
//! anyone deletes or alters trafficjam's tables (`nft delete table`,
//! `nft flush ruleset`, a firewall reload) the daemon restores them at once.
//!
//! The socket is blocking and lives on its own thread; each notification
//! about one of our tables becomes a message on a tokio channel. Changes to
//! other tables are ignored: trafficjam never fights other tools.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use trafficjam_core::links::LinkChange;
use trafficjam_core::wire::request::notification_table;
use trafficjam_netlink::NetfilterSocket;

use crate::log::Log;

/// `NFNLGRP_NFTABLES`: the multicast group of ruleset changes.
const NFNLGRP_NFTABLES: u32 = 7;

/// A change to one of our tables was seen at this instant.
pub type Touched = Instant;

/// Start watching; the receiver yields an instant per notification that
/// concerns a table in `ours` (or when notifications were lost, since then
/// anything may have changed). Changes made by the socket with port id
/// `own` (the daemon's own transactions) are not reported.
pub fn watch(
    netns: Option<PathBuf>,
    ours: HashSet<String>,
    own: u32,
    log: Log,
) -> Result<UnboundedReceiver<Touched>, trafficjam_netlink::NetlinkError> {
    let mut socket = NetfilterSocket::open_in(netns.as_deref())?;
    socket.join_group(NFNLGRP_NFTABLES)?;
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || loop {
        match socket.recv_messages(None) {
            Ok(messages) => {
                let by_us = |m: &[u8]| {
                    m.get(12..16)
                        .is_some_and(|p| u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) == own)
                };
                let hit = messages.iter().any(|m| {
                    !by_us(m) && notification_table(m).is_some_and(|(_, name)| ours.contains(&name))
                });
                if hit && tx.send(Instant::now()).is_err() {
                    return;
                }
            }
            Err(e) => {
                // ENOBUFS: notifications were dropped under a burst. We
                // cannot know what changed, so check.
                log.debug(&format!("ruleset notifications: {e}"));
                if tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// Start watching the bridges whose indexes are in `bridges` (kept up to
/// date by the daemon) for ports coming and going: the receiver yields an
/// [`LinkNews`] per change to a port of one of them, or a bridge itself, so
/// the new port is enrolled (quarantined until identified) within
/// milliseconds instead of at the next poll.
pub fn links(
    netns: Option<PathBuf>,
    bridges: std::sync::Arc<std::sync::Mutex<HashSet<u32>>>,
    log: Log,
) -> Result<UnboundedReceiver<LinkNews>, trafficjam_netlink::NetlinkError> {
    let mut socket = trafficjam_netlink::RouteSocket::open_in(netns.as_deref())?;
    socket.watch_links()?;
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || loop {
        let news = match socket.link_changes(None) {
            Ok(changes) => {
                let ours = bridges.lock().map(|b| b.clone()).unwrap_or_default();
                let changes: Vec<LinkChange> = changes
                    .into_iter()
                    .filter(|c| trafficjam_docker::ports::concerns(c, &ours))
                    .collect();
                LinkNews {
                    changes,
                    lost: false,
                }
            }
            Err(e) => {
                log.debug(&format!("link notifications: {e}"));
                LinkNews {
                    changes: Vec::new(),
                    lost: true,
                }
            }
        };
        if (news.lost || !news.changes.is_empty()) && tx.send(news).is_err() {
            return;
        }
    });
    Ok(rx)
}

/// Interfaces that changed on or around a managed bridge.
#[derive(Debug)]
pub struct LinkNews {
    /// What each notification said.
    pub changes: Vec<LinkChange>,
    /// Notifications were lost (ENOBUFS): anything may have changed.
    pub lost: bool,
}
