//! What a compromised backend tries in `check`'s lab: backend1, holding
//! CAP_NET_RAW as every container does, against backend2, the proxy and
//! the host. Each attack is run in a lab without rules (it must work, or
//! the lab proves nothing) and in a lab with the policy (it must not).
//! What counts is what arrives: the victim's listener, or the victim's
//! neighbour table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use trafficjam_netlink::lab::frames::{self, Mac};

use super::lab::{Lab, Node, UDP_PORT};

/// How long an attack's effect is waited for.
const WAIT: Duration = Duration::from_millis(400);

/// One attack: what it is, and how to try it on a lab; `Ok(true)` when it
/// worked.
pub struct Attack {
    /// What it tries, for the report.
    pub name: &'static str,
    run: fn(&Scene) -> Result<bool, String>,
}

/// Every attack `check` tries.
pub const ATTACKS: [Attack; 8] = [
    Attack {
        name: "forged source (the proxy's address) → backend2",
        run: |s| s.datagram(s.b1_mac, s.backend2, s.proxy.v4, false),
    },
    Attack {
        name: "forged source and MAC (the proxy's) → backend2",
        run: |s| s.datagram(s.proxy_mac, s.backend2, s.proxy.v4, false),
    },
    Attack {
        name: "VLAN-tagged frame (priority tag) → backend2",
        run: |s| s.datagram(s.b1_mac, s.backend2, s.backend1.v4, true),
    },
    Attack {
        name: "UDP to backend2's link-local address",
        run: |s| s.link_local(s.backend2, s.b2_ll),
    },
    Attack {
        name: "UDP to the host's link-local address",
        run: |s| s.link_local(s.host, s.host_ll),
    },
    Attack {
        name: "UDP to 255.255.255.255 (backend2, the proxy)",
        run: |s| s.broadcast(),
    },
    Attack {
        name: "UDP request to the proxy as IPv4 fragments",
        run: |s| s.fragments(),
    },
    Attack {
        name: "gratuitous ARP for the proxy's address → backend2's table",
        run: |s| s.poison(),
    },
];

/// The lab, with what the attacks need to know of it.
pub struct Scene<'a> {
    lab: &'a Lab,
    host: &'a Node,
    proxy: &'a Node,
    backend1: &'a Node,
    backend2: &'a Node,
    host_ll: Ipv6Addr,
    b2_ll: Ipv6Addr,
    proxy_mac: Mac,
    b1_mac: Mac,
    b2_mac: Mac,
}

impl<'a> Scene<'a> {
    /// Read the MACs of the lab's interfaces.
    pub fn new(lab: &'a Lab) -> Result<Scene<'a>, String> {
        let mac = |node: &Node, ifname: &str| -> Result<Mac, String> {
            let mut rs = lab.ns(node).route_socket().map_err(|e| e.to_string())?;
            let index = rs.index_of(ifname).map_err(|e| e.to_string())?;
            rs.mac_of(index)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{ifname} of {} has no MAC", node.name))
        };
        // The address the kernel gave the interface (a bridge's MAC, and
        // with it the EUI-64 address, may change after it came up).
        let link_local = |node: &Node, ifname: &str| -> Result<Ipv6Addr, String> {
            let mut rs = lab.ns(node).route_socket().map_err(|e| e.to_string())?;
            let index = rs.index_of(ifname).map_err(|e| e.to_string())?;
            rs.addresses_of(index)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find_map(|a| match a {
                    IpAddr::V6(v6) if v6.segments()[0] == 0xfe80 => Some(v6),
                    _ => None,
                })
                .ok_or_else(|| format!("{ifname} of {} has no link-local address", node.name))
        };
        let [proxy, backend1, backend2] = [0, 1, 2].map(|i| &lab.containers[i]);
        Ok(Scene {
            lab,
            host: &lab.host,
            proxy,
            backend1,
            backend2,
            host_ll: link_local(&lab.host, super::lab::BRIDGE)?,
            b2_ll: link_local(backend2, "eth0")?,
            proxy_mac: mac(proxy, "eth0")?,
            b1_mac: mac(backend1, "eth0")?,
            b2_mac: mac(backend2, "eth0")?,
        })
    }

    /// Try `attack`; true if it worked.
    pub fn try_attack(&self, attack: &Attack) -> Result<bool, String> {
        (attack.run)(self)
    }

    /// Wait for a datagram carrying `marker` at `node`.
    fn arrived(&self, node: &Node, marker: &[u8]) -> bool {
        let until = Instant::now() + WAIT;
        loop {
            let seen = self.lab.arrivals.lock().is_ok_and(|a| {
                a.iter()
                    .any(|x| x.node == node.name && x.payload.starts_with(marker))
            });
            if seen || Instant::now() >= until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn send(&self, frames: Vec<Vec<u8>>) -> Result<(), String> {
        self.lab
            .ns(self.backend1)
            .send_frames("eth0", frames)
            .map_err(|e| e.to_string())
    }

    /// A raw UDP frame from backend1 to `to`, with the source MAC and
    /// address given, tagged or not.
    fn datagram(
        &self,
        src_mac: Mac,
        to: &Node,
        src: Ipv4Addr,
        tagged: bool,
    ) -> Result<bool, String> {
        let marker = marker("forged");
        let dst_mac = if to.name == self.proxy.name {
            self.proxy_mac
        } else {
            self.b2_mac
        };
        let mut f = frames::udp4(src_mac, dst_mac, src, to.v4, 40_001, UDP_PORT, &marker);
        if tagged {
            f = frames::vlan_tagged(&f, 0);
        }
        self.send(vec![f.clone(), f])?;
        Ok(self.arrived(to, &marker))
    }

    /// A plain datagram from backend1's socket to `to`'s link-local
    /// address `dst`, scoped to backend1's eth0.
    fn link_local(&self, to: &Node, dst: Ipv6Addr) -> Result<bool, String> {
        let marker = marker("link-local");
        let ns = self.lab.ns(self.backend1);
        let scope = ns
            .route_socket()
            .and_then(|mut r| r.index_of("eth0"))
            .map_err(|e| e.to_string())?;
        let m = marker.clone();
        ns.run(move || -> std::io::Result<()> {
            let s = UdpSocket::bind("[::]:0")?;
            let to = SocketAddr::V6(SocketAddrV6::new(dst, UDP_PORT, 0, scope));
            for _ in 0..2 {
                let _ = s.send_to(&m, to);
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(self.arrived(to, &marker))
    }

    /// The limited broadcast address, from backend1's socket: anyone else
    /// on the bridge receiving it is the attack working.
    fn broadcast(&self) -> Result<bool, String> {
        let marker = marker("broadcast");
        let m = marker.clone();
        self.lab
            .ns(self.backend1)
            .run(move || -> std::io::Result<()> {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.set_broadcast(true)?;
                // 255.255.255.255 has no route of its own: name the link.
                nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::BindToDevice,
                    &std::ffi::OsString::from("eth0"),
                )?;
                for _ in 0..2 {
                    let _ = s.send_to(&m, (Ipv4Addr::BROADCAST, UDP_PORT));
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(self.arrived(self.backend2, &marker) || self.arrived(self.proxy, &marker))
    }

    /// A datagram to the proxy split so the first fragment carries only
    /// the UDP header: the proxy reassembles it.
    fn fragments(&self) -> Result<bool, String> {
        let marker = marker("fragments");
        let f = frames::udp4_fragments(
            self.b1_mac,
            self.proxy_mac,
            self.backend1.v4,
            self.proxy.v4,
            40_002,
            UDP_PORT,
            &marker,
        );
        // Twice, as the other attacks send theirs: one fragment lost on a
        // busy host (a full backlog drops frames of every namespace) must
        // not make the control fail; a second pair completes either.
        self.send([f.clone(), f].concat())?;
        Ok(self.arrived(self.proxy, &marker))
    }

    /// backend2 learns the proxy's MAC (it resolves the proxy, which is
    /// allowed), then backend1 claims the proxy's address: the attack
    /// worked if backend2 now sends the proxy's traffic to backend1.
    fn poison(&self) -> Result<bool, String> {
        let proxy = SocketAddr::new(IpAddr::V4(self.proxy.v4), UDP_PORT);
        self.lab
            .ns(self.backend2)
            .run(move || -> std::io::Result<()> {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.send_to(b"hello", proxy)?;
                Ok(())
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let entry = || -> Result<Option<Mac>, String> {
            let n = self
                .lab
                .ns(self.backend2)
                .route_socket()
                .and_then(|mut r| r.neighbours())
                .map_err(|e| e.to_string())?;
            Ok(n.into_iter()
                .find(|e| e.addr == IpAddr::V4(self.proxy.v4))
                .and_then(|e| e.mac))
        };
        let until = Instant::now() + WAIT;
        while entry()? != Some(self.proxy_mac) {
            if Instant::now() >= until {
                return Err("backend2 never learnt the proxy's MAC address".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let garp = frames::gratuitous_arp(self.b1_mac, self.proxy.v4);
        self.send(vec![garp.clone(), garp])?;
        let until = Instant::now() + WAIT;
        loop {
            if entry()? == Some(self.b1_mac) {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A payload no other probe sends: `tj-check <what> <pid> <nanos>`.
fn marker(what: &str) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("tj-check {what} {} {nanos}", std::process::id()).into_bytes()
}
