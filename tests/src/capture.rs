//! A packet capture on one interface inside a namespace: what arrived
//! there, whatever the IP stack did with it afterwards.
//!
//! An `AF_PACKET` socket with `ETH_P_ALL` sees every frame the interface
//! receives (also those for another MAC, which the stack then ignores) and
//! every frame it sends. Each frame is recorded with its direction.
//!
//! VLAN tags: on receive the kernel moves the *outermost* tag out of the
//! frame into metadata before any tap sees it, so [`Captured::data`] starts
//! with the next header (for a double-tagged frame, the inner tag). The tag
//! comes back through `PACKET_AUXDATA` as [`Captured::vlan`] (TPID and TCI),
//! and [`Captured::wire`] puts it back in place. Tags further in stay in the
//! data. A priority tag (VID 0) is reported like any other tag.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::Netns;

/// A VLAN tag the kernel took off a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: u16,
    /// Tag control information: PCP (3 bits), DEI, VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// The VLAN id (0: a priority tag).
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
}

/// One recorded frame.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The frame as the socket read it (outermost VLAN tag removed).
    pub data: Vec<u8>,
    /// `sll_pkttype`: `PACKET_HOST` (0), `BROADCAST` (1), `MULTICAST` (2),
    /// `OTHERHOST` (3) or `OUTGOING` (4).
    pub pkttype: u8,
    /// The outermost VLAN tag, when the frame carried one.
    pub vlan: Option<VlanTag>,
}

/// The source, destination and payload of an IP packet in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol (IPv4) or next header (IPv6; extension headers are not
    /// followed).
    pub protocol: u8,
    /// Whether this is an IPv4 fragment other than the first (its payload
    /// has no L4 header).
    pub later_fragment: bool,
    /// What follows the IP header.
    pub payload: &'a [u8],
}

impl Captured {
    /// Whether the interface received the frame (anything but
    /// `PACKET_OUTGOING`).
    pub fn incoming(&self) -> bool {
        self.pkttype != libc::PACKET_OUTGOING
    }

    /// The frame as it was on the wire: with the outermost VLAN tag put
    /// back after the MAC addresses.
    pub fn wire(&self) -> Vec<u8> {
        match self.vlan {
            Some(tag) if self.data.len() >= 12 => {
                let mut f = self.data[..12].to_vec();
                f.extend_from_slice(&tag.tpid.to_be_bytes());
                f.extend_from_slice(&tag.tci.to_be_bytes());
                f.extend_from_slice(&self.data[12..]);
                f
            }
            _ => self.data.clone(),
        }
    }

    /// Whether the frame's data contains `marker` anywhere.
    pub fn contains(&self, marker: &[u8]) -> bool {
        has(&self.data, marker)
    }

    /// The source MAC address.
    pub fn src_mac(&self) -> Option<[u8; 6]> {
        self.data.get(6..12)?.try_into().ok()
    }

    /// The destination MAC address.
    pub fn dst_mac(&self) -> Option<[u8; 6]> {
        self.data.get(..6)?.try_into().ok()
    }

    /// The ethertype after any VLAN tags still in the data, and where the
    /// payload starts.
    pub fn ethertype(&self) -> Option<(u16, usize)> {
        let mut at = 12;
        loop {
            let ty = u16::from_be_bytes(self.data.get(at..at + 2)?.try_into().ok()?);
            if ty == 0x8100 || ty == 0x88a8 {
                at += 4;
            } else {
                return Some((ty, at + 2));
            }
        }
    }

    /// The IP packet in the frame, if it carries one.
    pub fn ip(&self) -> Option<IpPacket<'_>> {
        let (ty, at) = self.ethertype()?;
        let p = self.data.get(at..)?;
        match ty {
            0x0800 => {
                let ihl = usize::from(*p.first()? & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
                let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]);
                let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
                let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
                Some(IpPacket {
                    src: IpAddr::V4(Ipv4Addr::from(src)),
                    dst: IpAddr::V4(Ipv4Addr::from(dst)),
                    protocol: *p.get(9)?,
                    later_fragment: frag & 0x1fff != 0,
                    payload: p.get(ihl..total.min(p.len()))?,
                })
            }
            0x86dd => {
                let len = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
                let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
                let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
                Some(IpPacket {
                    src: IpAddr::V6(Ipv6Addr::from(src)),
                    dst: IpAddr::V6(Ipv6Addr::from(dst)),
                    protocol: *p.get(6)?,
                    later_fragment: false,
                    payload: p.get(40..(40 + len).min(p.len()))?,
                })
            }
            _ => None,
        }
    }
}

/// Whether `haystack` contains `needle`.
fn has(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A capture running on a background thread; stopped and joined on drop.
pub struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Captured>>>,
    thread: Option<JoinHandle<()>>,
}

/// `ETH_P_ALL` in network byte order, as `sll_protocol` wants it.
fn eth_p_all() -> u16 {
    (libc::ETH_P_ALL as u16).to_be()
}

/// An `AF_PACKET` socket receiving every frame of `ifname` (in the calling
/// thread's namespace), with `PACKET_AUXDATA` on.
fn open(ifname: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: plain libc calls on a socket we own (wrapped in OwnedFd at
    // once, so closed on every error path) with valid, correctly sized
    // arguments.
    unsafe {
        // Protocol 0: the socket receives nothing until bound below, so no
        // frame of another interface slips into its queue meanwhile.
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let index = libc::if_nametoindex(ifname.as_ptr());
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        let on: libc::c_int = 1;
        if libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = eth_p_all();
        addr.sll_ifindex = index as i32;
        if libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// Read one frame (the socket must be readable), with its direction and
/// the VLAN tag from the auxiliary data.
fn receive(fd: &OwnedFd) -> Option<Captured> {
    let mut buf = vec![0u8; 65536];
    // Room for one cmsghdr with a tpacket_auxdata, suitably aligned.
    let mut control = [0u64; 16];
    // SAFETY: recvmsg into buffers we own, with their true lengths; the
    // control messages are walked with the libc CMSG macros, which stay
    // inside `msg_controllen`, and tpacket_auxdata is read unaligned.
    unsafe {
        let mut from: libc::sockaddr_ll = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return None;
        }
        buf.truncate(n as usize);
        let mut vlan = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    vlan = Some(VlanTag {
                        tpid,
                        tci: aux.tp_vlan_tci,
                    });
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Some(Captured {
            data: buf,
            pkttype: from.sll_pkttype,
            vlan,
        })
    }
}

impl Capture {
    /// Start capturing on `ifname` inside `ns`. Frames are recorded from
    /// the moment this returns.
    pub fn start(ns: &Netns, ifname: &str) -> io::Result<Capture> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // The socket belongs to the namespace it was created in; it can be
        // read from a thread outside it.
        let fd = ns.run(move || open(&name))??;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, frames) = (stop.clone(), frames.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut fds = [PollFd::new(
                        std::os::fd::AsFd::as_fd(&fd),
                        PollFlags::POLLIN,
                    )];
                    // A short timeout: the stop flag is seen promptly.
                    if !matches!(poll(&mut fds, PollTimeout::from(20u16)), Ok(n) if n > 0) {
                        continue;
                    }
                    while let Some(f) = receive(&fd) {
                        frames.lock().unwrap().push(f);
                    }
                }
            })
        };
        Ok(Capture {
            stop,
            frames,
            thread: Some(thread),
        })
    }

    /// Every frame so far, both directions.
    pub fn frames(&self) -> Vec<Captured> {
        self.frames.lock().unwrap().clone()
    }

    /// The frames the interface received so far.
    pub fn incoming(&self) -> Vec<Captured> {
        self.frames()
            .into_iter()
            .filter(Captured::incoming)
            .collect()
    }

    /// How many frames (both directions; check [`Captured::incoming`] to
    /// tell) satisfy `pred`.
    pub fn count_matching(&self, pred: impl Fn(&Captured) -> bool) -> usize {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|f| pred(f))
            .count()
    }

    /// Whether a *received* frame contains `marker` anywhere.
    pub fn contains(&self, marker: &[u8]) -> bool {
        self.count_matching(|f| f.incoming() && has(&f.data, marker)) > 0
    }

    /// The received frames that contain `marker`.
    pub fn incoming_with(&self, marker: &[u8]) -> Vec<Captured> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.incoming() && has(&f.data, marker))
            .cloned()
            .collect()
    }

    /// Wait up to `timeout` for a frame satisfying `pred`; whether one
    /// came. Returns as soon as it does, so positive controls stay fast.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Captured) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if self.count_matching(&pred) > 0 {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Forget every frame recorded so far.
    pub fn clear(&self) {
        self.frames.lock().unwrap().clear();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
