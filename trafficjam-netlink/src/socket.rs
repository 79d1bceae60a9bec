//! The netfilter netlink socket: send batches, make requests, read answers.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};
use trafficjam_core::wire::{ObjectRef, Transaction};

use crate::error::{Failure, NetlinkError, TransactionError};
use crate::netns::in_namespace;
use crate::reply::{self, Reply};

/// Socket buffers large enough for a batch with tens of thousands of set
/// elements and its acknowledgements.
const BUFFER_BYTES: usize = 8 << 20;
/// How long to wait for the kernel. It processes a batch synchronously
/// while `sendmsg` runs, so this is only a safety net.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The kernel never sends a netlink datagram larger than a page-sized
/// dump chunk (at most 64 KiB), so this holds any answer whole.
const RECV_BYTES: usize = 64 * 1024;

/// A `NETLINK_NETFILTER` socket, bound to the network namespace it was
/// opened in.
pub struct NetfilterSocket {
    pub(crate) socket: Socket,
    seq: u32,
    /// Reused for every read: answers come one datagram per message.
    buf: Vec<u8>,
    /// Requests sent so far (see [`requests`](Self::requests)).
    requests: u64,
}

impl std::fmt::Debug for NetfilterSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetfilterSocket")
            .field("seq", &self.seq)
            .finish()
    }
}

impl NetfilterSocket {
    /// Open a socket in the current network namespace.
    pub fn open() -> Result<NetfilterSocket, NetlinkError> {
        NetfilterSocket::open_protocol(NETLINK_NETFILTER)
    }

    /// A socket of another netlink protocol with the same request and
    /// answer handling (see [`RouteSocket`](crate::RouteSocket)).
    pub(crate) fn open_protocol(protocol: isize) -> Result<NetfilterSocket, NetlinkError> {
        let mut socket = Socket::new(protocol)
            .map_err(|e| NetlinkError::io("creating the netfilter netlink socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| NetlinkError::io("binding the netlink socket", e))?;
        // Extended acks carry the kernel's explanation of an error; capped
        // acks echo only the header of a refused message, not a whole
        // message of a thousand set elements.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        // FORCE needs CAP_NET_ADMIN, which we need anyway; fall back to the
        // capped variant so a missing capability surfaces on first use with
        // the kernel's own EPERM.
        if setsockopt(&socket, sockopt::SndBufForce, &BUFFER_BYTES).is_err() {
            let _ = setsockopt(&socket, sockopt::SndBuf, &BUFFER_BYTES);
        }
        if setsockopt(&socket, sockopt::RcvBufForce, &BUFFER_BYTES).is_err() {
            let _ = setsockopt(&socket, sockopt::RcvBuf, &BUFFER_BYTES);
        }
        let seq = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        Ok(NetfilterSocket {
            socket,
            seq,
            buf: Vec::with_capacity(RECV_BYTES),
            requests: 0,
        })
    }

    /// Open a socket inside the network namespace at `netns` (such as
    /// `/run/netns/NAME` or `/proc/PID/ns/net`), or in the current one.
    pub fn open_in(netns: Option<&Path>) -> Result<NetfilterSocket, NetlinkError> {
        match netns {
            None => NetfilterSocket::open(),
            Some(path) => in_namespace(path, NetfilterSocket::open),
        }
    }

    /// The socket's netlink port id: the kernel's notifications of the
    /// changes this socket made carry it (as `nlmsg_pid`), so a watcher
    /// can tell them from everyone else's.
    pub fn portid(&self) -> u32 {
        let mut addr = netlink_sys::SocketAddr::new(0, 0);
        match self.socket.get_address(&mut addr) {
            Ok(()) => addr.port_number(),
            Err(_) => 0,
        }
    }

    /// Reserve `count` sequence numbers and return the first.
    pub fn next_seq(&mut self, count: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(count.max(1));
        first
    }

    /// Send a whole batch with one `sendmsg` and wait for the kernel's
    /// answer to every message in it. On failure the error names each
    /// refused object; nothing of the batch was applied.
    pub fn send(&mut self, tx: &Transaction) -> Result<(), NetlinkError> {
        if tx.is_empty() {
            return Ok(());
        }
        self.socket
            .send(tx.bytes(), 0)
            .map_err(|e| NetlinkError::io("sending the batch", e))?;
        let mut pending: BTreeMap<u32, ()> = tx.entries().iter().map(|e| (e.seq, ())).collect();
        let mut failures = Vec::new();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while !pending.is_empty() {
            // After an error the kernel aborts the batch and may not answer
            // the remaining messages: stop once the socket is drained.
            let wait = if failures.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let Some(datagram) = self.recv(wait)? else {
                if failures.is_empty() {
                    return Err(NetlinkError::Timeout(ANSWER_TIMEOUT.as_millis()));
                }
                break;
            };
            for r in reply::parse(&datagram).map_err(NetlinkError::Malformed)? {
                if let Reply::Ack {
                    seq,
                    errno,
                    message,
                } = r
                {
                    pending.remove(&seq);
                    if errno != 0 {
                        let object = tx.object(seq).cloned().unwrap_or(ObjectRef::Batch);
                        failures.push(Failure {
                            object,
                            errno,
                            message,
                        });
                    }
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(TransactionError { failures }.into())
        }
    }

    /// Send one request (a complete netlink message; its sequence number is
    /// replaced) and return every data message of the answer, until the
    /// end of the dump or the acknowledgement.
    pub fn request(&mut self, request: &[u8]) -> Result<Vec<Vec<u8>>, NetlinkError> {
        self.request_as(request, &describe_request(request))
    }

    /// How many requests ([`request`](Self::request)) this socket sent, for
    /// a daemon's metrics: each asks the kernel for work, and some wait on
    /// a lock another program holds.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// [`request`](Self::request), with `what` naming it in errors.
    pub(crate) fn request_as(
        &mut self,
        request: &[u8],
        what: &str,
    ) -> Result<Vec<Vec<u8>>, NetlinkError> {
        const NLM_F_DUMP: u16 = 0x300;
        const NLM_F_ACK: u16 = 0x4;
        if request.len() < 16 {
            return Err(NetlinkError::Malformed(
                "request shorter than a header".into(),
            ));
        }
        let seq = self.next_seq(1);
        self.requests += 1;
        let mut msg = request.to_vec();
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
        let flags = u16::from_ne_bytes([msg[6], msg[7]]);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        if !dump {
            // Ask for an ACK so a request with no data answer still ends.
            msg[6..8].copy_from_slice(&(flags | NLM_F_ACK).to_ne_bytes());
        }
        self.socket
            .send(&msg, 0)
            .map_err(|e| NetlinkError::io(&format!("sending {what}"), e))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let datagram = self
                .recv(wait)?
                .ok_or(NetlinkError::Timeout(ANSWER_TIMEOUT.as_millis()))?;
            for r in reply::parse(&datagram).map_err(NetlinkError::Malformed)? {
                match r {
                    Reply::Data {
                        seq: s,
                        interrupted: i,
                        bytes,
                    } if s == seq => {
                        interrupted |= i;
                        // A non-dump answer is followed by its ACK.
                        out.push(bytes.to_vec());
                    }
                    Reply::Done { seq: s } if s == seq => {
                        return finish(out, interrupted);
                    }
                    Reply::Ack {
                        seq: s,
                        errno,
                        message,
                    } if s == seq => {
                        if errno != 0 {
                            return Err(NetlinkError::kernel(what, errno, message));
                        }
                        return finish(out, interrupted);
                    }
                    // Answers to earlier requests (e.g. after a timeout).
                    _ => {}
                }
            }
        }
    }

    /// Join a multicast group, e.g. `NFNLGRP_NFTABLES` (7) to be told of
    /// every ruleset change.
    pub fn join_group(&mut self, group: u32) -> Result<(), NetlinkError> {
        self.socket
            .add_membership(group)
            .map_err(|e| NetlinkError::io("joining the netlink group", e))
    }

    /// Wait up to `timeout` (forever with `None`) for messages and return
    /// each whole message of the datagram received, or none on timeout.
    pub fn recv_messages(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>, NetlinkError> {
        let datagram = match timeout {
            Some(t) => self.recv(t)?,
            None => Some(self.recv_blocking()?),
        };
        let Some(datagram) = datagram else {
            return Ok(Vec::new());
        };
        let replies = reply::parse(&datagram).map_err(NetlinkError::Malformed)?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Data { bytes, .. } => Some(bytes.to_vec()),
                _ => None,
            })
            .collect())
    }

    /// One datagram, waiting at most `timeout`. Tries a non-blocking read
    /// first and polls only when nothing is queued: the kernel answers a
    /// batch while `sendmsg` runs, so the answers are usually already there.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, NetlinkError> {
        if let Some(d) = self.try_recv()? {
            return Ok(Some(d));
        }
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(ms))
            .map_err(|e| NetlinkError::io("waiting for the kernel", e.into()))?;
        if ready == 0 {
            return Ok(None);
        }
        self.try_recv()
    }

    fn recv_blocking(&mut self) -> Result<Vec<u8>, NetlinkError> {
        loop {
            if let Some(d) = self.recv(Duration::from_secs(3600))? {
                return Ok(d);
            }
        }
    }

    /// Read one queued datagram without blocking, `None` if none is queued.
    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, NetlinkError> {
        self.buf.clear();
        match self
            .socket
            .recv(&mut self.buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
        {
            Ok(n) if n > RECV_BYTES => Err(NetlinkError::Malformed(format!(
                "a {n}-byte answer did not fit the {RECV_BYTES}-byte buffer"
            ))),
            Ok(_) => Ok(Some(self.buf.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(NetlinkError::io("reading the kernel's answer", e)),
        }
    }
}

fn finish(out: Vec<Vec<u8>>, interrupted: bool) -> Result<Vec<Vec<u8>>, NetlinkError> {
    if interrupted {
        Err(NetlinkError::DumpInterrupted)
    } else {
        Ok(out)
    }
}

/// "the dump of nf_tables message 1" — for error messages.
fn describe_request(msg: &[u8]) -> String {
    let ty = msg
        .get(4..6)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
    let kind = match ty & 0xff {
        1 => "the table list",
        4 => "the chain list",
        7 => "the rule list",
        10 => "the set list",
        13 => "the set elements",
        16 => "the ruleset generation",
        _ => "a netfilter request",
    };
    format!("reading {kind}")
}
