//! Traffic probes run from inside a namespace.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::OnceLock;
use std::time::Duration;

use crate::listener::{TCP_PORT, UDP_PORT};
use crate::Netns;

/// The protocol a probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A TCP handshake with the accept-and-close listener.
    Tcp,
    /// A UDP datagram and its echo.
    Udp,
    /// An ICMP (or ICMPv6) echo request and reply, with `ping`.
    Icmp,
    /// A TCP handshake on another port (e.g. a port Docker publishes).
    TcpPort(u16),
}

impl std::fmt::Display for Proto {
    /// `tcp`, `udp`, `icmp` or `tcp/PORT`, honouring width and alignment.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proto::Tcp => f.pad("tcp"),
            Proto::Udp => f.pad("udp"),
            Proto::Icmp => f.pad("icmp"),
            Proto::TcpPort(p) => f.pad(&format!("tcp/{p}")),
        }
    }
}

/// Does a TCP handshake from `ns` to `to` complete within `timeout`?
pub fn tcp_connect(ns: &Netns, to: IpAddr, timeout: Duration) -> bool {
    tcp_connect_port(ns, to, TCP_PORT, timeout)
}

/// Does a TCP handshake from `ns` to `to:port` complete within `timeout`?
pub fn tcp_connect_port(ns: &Netns, to: IpAddr, port: u16, timeout: Duration) -> bool {
    ns.run(move || TcpStream::connect_timeout(&SocketAddr::new(to, port), timeout).is_ok())
        .unwrap_or(false)
}

/// A connection from inside `ns` to the echo listener at `to`, proven to
/// echo (reads then wait at most 800 ms): for tests of what happens to
/// connections already open.
pub fn open_echo(ns: &Netns, to: IpAddr) -> TcpStream {
    let to = SocketAddr::new(to, crate::listener::ECHO_PORT);
    let mut s = ns
        .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)))
        .expect("run in the namespace")
        .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(800)))
        .expect("a read timeout");
    assert!(echoes(&mut s), "a fresh connection to {to} does not echo");
    s
}

/// Does the connection echo four bytes?
pub fn echoes(s: &mut TcpStream) -> bool {
    use std::io::{Read, Write};
    let mut buf = [0u8; 4];
    s.write_all(b"ping").is_ok() && matches!(s.read(&mut buf), Ok(4))
}

/// Does a UDP datagram from `ns` to `to` come back within `timeout`?
pub fn udp_roundtrip(ns: &Netns, to: IpAddr, timeout: Duration) -> bool {
    ns.run(move || {
        let bind: SocketAddr = match to {
            IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            IpAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            return false;
        };
        let _ = sock.set_read_timeout(Some(timeout));
        if sock.send_to(b"trafficjam", (to, UDP_PORT)).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(sock.recv_from(&mut buf), Ok((10, _)))
    })
    .unwrap_or(false)
}

/// Does `ping` from `ns` get an echo reply from `to` (ICMP or ICMPv6,
/// chosen by the address) within `timeout`? Panics if `ping` is missing:
/// `ip netns exec` would otherwise report that as "unreachable".
pub fn ping(ns: &Netns, to: IpAddr, timeout: Duration) -> bool {
    require_ping();
    let wait = format!("{:.3}", timeout.as_secs_f64().max(0.001));
    let out = ns
        .exec("ping", &["-c1", "-n", "-q", "-W", &wait, &to.to_string()])
        .expect("run ping inside the namespace");
    out.status.success()
}

/// Panic with an installation hint unless `ping` is on `PATH`.
pub(crate) fn require_ping() {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    let present = *PRESENT.get_or_init(|| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ping").is_file()))
    });
    assert!(
        present,
        "ping is not installed: apt-get install iputils-ping"
    );
}

/// Run one probe.
pub fn probe(ns: &Netns, to: IpAddr, proto: Proto, timeout: Duration) -> bool {
    match proto {
        Proto::Tcp => tcp_connect(ns, to, timeout),
        Proto::Udp => udp_roundtrip(ns, to, timeout),
        Proto::Icmp => ping(ns, to, timeout),
        Proto::TcpPort(port) => tcp_connect_port(ns, to, port, timeout),
    }
}
