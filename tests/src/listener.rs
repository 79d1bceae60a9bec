//! TCP and UDP listeners inside a namespace that record what arrived.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn6,
};

use crate::Netns;

/// The TCP port every listener uses.
pub const TCP_PORT: u16 = 8080;
/// The UDP port every listener uses.
pub const UDP_PORT: u16 = 8081;
/// A TCP port where connections stay open and every byte is echoed back
/// (for tests of established connections).
pub const ECHO_PORT: u16 = 8082;

/// Sources of the connections and datagrams that arrived.
#[derive(Debug, Default, Clone)]
pub struct Arrivals {
    /// Source addresses of accepted TCP connections.
    pub tcp: Vec<IpAddr>,
    /// Source addresses of UDP datagrams.
    pub udp: Vec<IpAddr>,
}

impl Arrivals {
    /// How many TCP connections and UDP datagrams came from `source`.
    pub fn count_from(&self, source: IpAddr) -> usize {
        self.tcp
            .iter()
            .chain(&self.udp)
            .filter(|a| **a == source)
            .count()
    }

    /// Whether nothing arrived at all.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }
}

/// A plain accept-and-close TCP listener and a UDP echo server on
/// `[::]` (dual-stack) inside a namespace. Stopped and joined on drop.
pub struct Listener {
    stop: Arc<AtomicBool>,
    arrivals: Arc<Mutex<Arrivals>>,
    threads: Vec<JoinHandle<()>>,
}

fn unmap(a: SocketAddr) -> IpAddr {
    match a.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn readable(fd: impl AsFd) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0)
}

impl Listener {
    /// Start listening inside `ns`.
    pub fn start(ns: &Netns) -> io::Result<Listener> {
        let (tcp, udp, echo) =
            ns.run(|| -> io::Result<(TcpListener, UdpSocket, TcpListener)> {
                let tcp = TcpListener::from(bind_dual_stack(SockType::Stream, TCP_PORT)?);
                let udp = UdpSocket::from(bind_dual_stack(SockType::Datagram, UDP_PORT)?);
                let echo = TcpListener::from(bind_dual_stack(SockType::Stream, ECHO_PORT)?);
                Ok((tcp, udp, echo))
            })??;
        let stop = Arc::new(AtomicBool::new(false));
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let mut threads = Vec::new();
        {
            let (stop, arrivals) = (stop.clone(), arrivals.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&tcp) {
                        continue;
                    }
                    if let Ok((conn, from)) = tcp.accept() {
                        arrivals.lock().unwrap().tcp.push(unmap(from));
                        drop(conn);
                    }
                }
            }));
        }
        {
            let (stop, arrivals) = (stop.clone(), arrivals.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&udp) {
                        continue;
                    }
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        arrivals.lock().unwrap().udp.push(unmap(from));
                        let _ = udp.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&echo) {
                        continue;
                    }
                    if let Ok((mut conn, _)) = echo.accept() {
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            use std::io::{Read, Write};
                            let _ =
                                conn.set_read_timeout(Some(std::time::Duration::from_millis(100)));
                            let mut buf = [0u8; 512];
                            while !stop.load(Ordering::Relaxed) {
                                match conn.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        if conn.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e)
                                        if e.kind() == io::ErrorKind::WouldBlock
                                            || e.kind() == io::ErrorKind::TimedOut => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                }
            }));
        }
        Ok(Listener {
            stop,
            arrivals,
            threads,
        })
    }

    /// What arrived so far.
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.lock().unwrap().clone()
    }

    /// Tell its threads to stop without waiting for them (drop joins):
    /// several listeners then stop in the time of one.
    pub(crate) fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Forget what arrived so far.
    pub fn reset(&self) {
        *self.arrivals.lock().unwrap() = Arrivals::default();
    }
}

/// A socket on `[::]:port` that also takes IPv4 (IPv4-mapped addresses),
/// whatever `net.ipv6.bindv6only` says; stream sockets listen with a large
/// backlog so a burst of parallel handshakes is never dropped.
fn bind_dual_stack(ty: SockType, port: u16) -> io::Result<OwnedFd> {
    let fd = socket(AddressFamily::Inet6, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    let addr = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    bind(fd.as_raw_fd(), &addr)?;
    if ty == SockType::Stream {
        listen(&fd, Backlog::new(1024).map_err(io::Error::from)?)?;
    }
    Ok(fd)
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
