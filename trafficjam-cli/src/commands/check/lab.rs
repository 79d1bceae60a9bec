//! The throwaway lab `check` tests on: a "host" namespace with a bridge,
//! and a proxy and two backends, each in its own namespace on a veth
//! plugged into that bridge — a Docker network in miniature. Held only by
//! file descriptors: dropped (or killed), it is gone with everything in it.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ipnet::IpNet;
use trafficjam_netlink::lab::Namespace;
use trafficjam_netlink::NetlinkError;

use super::matrix::{Family, Outcome, Proto, Role, Row, COLUMNS};

/// The bridge, named like nothing Docker or a CNI runtime creates.
pub const BRIDGE: &str = "tjcheck0";
/// Documentation ranges: they exist only inside the lab's namespaces.
pub const SUBNET4: &str = "192.0.2.0/24";
/// See [`SUBNET4`].
pub const SUBNET6: &str = "2001:db8:7a::/64";
const TCP_PORT: u16 = 7070;
/// The UDP port every lab node listens on.
pub const UDP_PORT: u16 = 7071;
/// How long a probe waits for an answer before calling it blocked. On the
/// same bridge a reply takes well under a millisecond.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// One participant: its namespace, role and addresses.
pub struct Node {
    /// "proxy", "backend1", …
    pub name: &'static str,
    /// What the policy makes of it.
    pub role: Role,
    /// Its IPv4 address in the lab.
    pub v4: Ipv4Addr,
    /// Its IPv6 address in the lab.
    pub v6: Ipv6Addr,
    ns: Namespace,
}

impl Node {
    fn addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4.into(),
            Family::V6 => self.v6.into(),
        }
    }
}

/// A datagram a lab listener received: on which node, and its first
/// bytes.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The receiving node's name.
    pub node: &'static str,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// The lab, with listeners running in every namespace.
pub struct Lab {
    /// The host namespace (holds the bridge and, later, the rules).
    pub host: Node,
    /// Proxy first, then the backends.
    pub containers: Vec<Node>,
    /// Every datagram the listeners received (the attacks look for theirs).
    pub arrivals: Arc<std::sync::Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    echoes: Vec<JoinHandle<()>>,
    /// Kept open: TCP handshakes complete in the kernel's backlog.
    _listeners: Vec<TcpListener>,
}

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x7a, 0, 0, 0, 0, last)
}

impl Lab {
    /// The subnets of the lab's bridge.
    pub fn subnets() -> Vec<IpNet> {
        [SUBNET4, SUBNET6]
            .iter()
            .map(|s| s.parse().expect("constant CIDR"))
            .collect()
    }

    /// The bridge port of the proxy, for the spoofing protection.
    pub fn proxy_port() -> String {
        port_name("proxy")
    }

    /// Create the namespaces, the bridge, the veths and the addresses,
    /// and start a TCP listener and a UDP echo in every namespace.
    pub fn build() -> Result<Lab, NetlinkError> {
        let host = Node {
            name: "host",
            role: Role::Host,
            v4: v4(1),
            v6: v6(1),
            ns: Namespace::create()?,
        };
        quiet(&host.ns)?;
        let mut rs = host.ns.route_socket()?;
        let lo = rs.index_of("lo")?;
        rs.set_up(lo)?;
        let bridge = rs.add_bridge(BRIDGE)?;
        rs.add_address(bridge, host.v4.into(), 24)?;
        rs.add_address(bridge, host.v6.into(), 64)?;
        rs.set_up(bridge)?;
        let mut containers = Vec::new();
        for (i, (name, role)) in [
            ("proxy", Role::Proxy),
            ("backend1", Role::Backend),
            ("backend2", Role::Backend),
        ]
        .into_iter()
        .enumerate()
        {
            let node = Node {
                name,
                role,
                v4: v4(2 + i as u8),
                v6: v6(2 + i as u16),
                ns: Namespace::create()?,
            };
            quiet(&node.ns)?;
            let port = rs.add_veth(&port_name(name), bridge, "eth0", &node.ns)?;
            rs.set_up(port)?;
            let mut inside = node.ns.route_socket()?;
            let (lo, eth0) = (inside.index_of("lo")?, inside.index_of("eth0")?);
            inside.set_up(lo)?;
            inside.add_address(eth0, node.v4.into(), 24)?;
            inside.add_address(eth0, node.v6.into(), 64)?;
            inside.set_up(eth0)?;
            containers.push(node);
        }
        let mut lab = Lab {
            host,
            containers,
            arrivals: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            echoes: Vec::new(),
            _listeners: Vec::new(),
        };
        lab.listen()?;
        Ok(lab)
    }

    fn listen(&mut self) -> Result<(), NetlinkError> {
        let nodes = std::iter::once(&self.host).chain(&self.containers);
        for node in nodes {
            let (tcp, udp) = node
                .ns
                .run(|| {
                    // One dual-stack socket each: [::] also accepts IPv4.
                    let tcp = TcpListener::bind((Ipv6Addr::UNSPECIFIED, TCP_PORT))?;
                    let udp = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, UDP_PORT))?;
                    udp.set_read_timeout(Some(Duration::from_millis(50)))?;
                    Ok::<_, std::io::Error>((tcp, udp))
                })?
                .map_err(|e| {
                    NetlinkError::Socket(std::io::Error::other(format!("lab listener: {e}")))
                })?;
            self._listeners.push(tcp);
            let stop = self.stop.clone();
            let (arrivals, name) = (self.arrivals.clone(), node.name);
            self.echoes.push(std::thread::spawn(move || {
                echo(&udp, &stop, |payload| {
                    if let Ok(mut a) = arrivals.lock() {
                        a.push(Arrival {
                            node: name,
                            payload: payload.to_vec(),
                        });
                    }
                })
            }));
        }
        Ok(())
    }

    /// Probe every pair of `pairs` in every column, all at once (blocked
    /// probes each wait [`PROBE_TIMEOUT`], so in parallel the whole matrix
    /// takes about that long).
    pub fn probe(&self, pairs: &[(usize, usize)]) -> Vec<Row> {
        let nodes: Vec<&Node> = std::iter::once(&self.host)
            .chain(&self.containers)
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<Vec<_>> = pairs
                .iter()
                .map(|&(f, t)| {
                    let (from, to) = (nodes[f], nodes[t]);
                    COLUMNS
                        .iter()
                        .map(|&(proto, family)| {
                            let dst = SocketAddr::new(to.addr(family), port(proto));
                            scope.spawn(move || {
                                from.ns
                                    .run(move || probe(proto, dst))
                                    .unwrap_or_else(|e| Outcome::Failed(e.to_string()))
                            })
                        })
                        .collect()
                })
                .collect();
            pairs
                .iter()
                .zip(handles)
                .map(|(&(f, t), hs)| Row {
                    from: nodes[f].name.to_string(),
                    from_role: nodes[f].role,
                    to: nodes[t].name.to_string(),
                    to_role: nodes[t].role,
                    outcomes: hs
                        .into_iter()
                        .map(|h| h.join().unwrap_or(Outcome::Failed("probe panicked".into())))
                        .collect(),
                })
                .collect()
        })
    }

    /// The node's namespace.
    pub fn ns<'n>(&self, node: &'n Node) -> &'n Namespace {
        &node.ns
    }

    /// The namespace path of the lab's host, where the rules go.
    pub fn host_path(&self) -> std::path::PathBuf {
        self.host.ns.path()
    }

    /// Whether br_netfilter passes the lab's bridged traffic to the IP
    /// hooks (read inside the lab's host namespace).
    pub fn br_netfilter(&self) -> Option<bool> {
        crate::commands::status::br_netfilter(Some(&self.host_path()))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.echoes.drain(..) {
            let _ = h.join();
        }
    }
}

/// Indices into [host, proxy, backend1, backend2] of the pairs `check`
/// tests: everything the policy table speaks of.
pub const PAIRS: [(usize, usize); 9] = [
    (1, 2),
    (1, 3),
    (2, 3),
    (3, 2),
    (2, 1),
    (3, 1),
    (2, 0),
    (3, 0),
    (1, 0),
];

/// No duplicate address detection (a link-local address is usable at
/// once, not tentative for a second) and no router solicitations (nothing
/// is sent before the first probe) in a lab namespace.
fn quiet(ns: &Namespace) -> Result<(), NetlinkError> {
    ns.run(|| -> std::io::Result<()> {
        for conf in ["all", "default"] {
            for (key, value) in [("accept_dad", "0"), ("router_solicitations", "0")] {
                std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/{key}"), value)?;
            }
        }
        Ok(())
    })?
    .map_err(|e| {
        NetlinkError::Socket(std::io::Error::other(format!(
            "configuring a lab namespace: {e}"
        )))
    })
}

fn port_name(node: &str) -> String {
    format!("tjc-{node}")
}

fn port(proto: Proto) -> u16 {
    match proto {
        Proto::Tcp => TCP_PORT,
        Proto::Udp => UDP_PORT,
    }
}

fn echo(udp: &UdpSocket, stop: &AtomicBool, record: impl Fn(&[u8])) {
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = udp.recv_from(&mut buf) {
            record(&buf[..n]);
            let _ = udp.send_to(&buf[..n], peer);
        }
    }
}

/// One connection attempt from the calling thread's namespace.
fn probe(proto: Proto, dst: SocketAddr) -> Outcome {
    let blocked_or = |e: std::io::Error| match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::Blocked,
        _ => Outcome::Failed(e.to_string()),
    };
    match proto {
        Proto::Tcp => match TcpStream::connect_timeout(&dst, PROBE_TIMEOUT) {
            Ok(_) => Outcome::Reached,
            Err(e) => blocked_or(e),
        },
        Proto::Udp => {
            let run = || -> std::io::Result<bool> {
                let local: SocketAddr = match dst {
                    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let s = UdpSocket::bind(local)?;
                s.connect(dst)?;
                s.set_read_timeout(Some(PROBE_TIMEOUT))?;
                let nonce = std::process::id().to_ne_bytes();
                s.send(&nonce)?;
                let mut buf = [0u8; 16];
                let n = s.recv(&mut buf)?;
                Ok(buf[..n] == nonce)
            };
            match run() {
                Ok(true) => Outcome::Reached,
                Ok(false) => Outcome::Failed("a different datagram came back".into()),
                Err(e) => blocked_or(e),
            }
        }
    }
}
