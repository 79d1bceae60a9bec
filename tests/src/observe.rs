//! The receiving side's state, read after an attack: neighbour tables,
//! routes, addresses, the bridge's forwarding database, and whether a
//! forged SYN was answered.
//!
//! Everything is read with `ip -j` / `bridge -j` inside the namespace, the
//! same view an operator would get.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::attack::Mac;
use crate::capture::Capture;
use crate::Netns;

/// Run `program ARGS` inside `ns` and parse its JSON output (an empty
/// output is an empty list).
fn json(ns: &Netns, program: &str, args: &[&str]) -> io::Result<Vec<Value>> {
    let out = ns.iproute2(program, args)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{program} {}` in {} failed: {}",
            args.join(" "),
            ns.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(&text).map_err(io::Error::other)? {
        Value::Array(items) => Ok(items),
        other => Err(io::Error::other(format!("not a JSON list: {other}"))),
    }
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Format a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// One neighbour table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its link-layer address (none while INCOMPLETE or FAILED).
    pub mac: Option<Mac>,
    /// The NUD states, e.g. `["REACHABLE"]`, `["STALE"]`.
    pub state: Vec<String>,
    /// Whether it is flagged as a router (IPv6).
    pub router: bool,
}

/// The neighbour table of `ifname` in `ns` (both families), from
/// `ip -j neigh show dev IF`.
pub fn neighbours(ns: &Netns, ifname: &str) -> io::Result<Vec<Neighbour>> {
    let items = json(ns, "ip", &["-j", "neigh", "show", "dev", ifname])?;
    Ok(neighbours_of(&items))
}

fn neighbours_of(items: &[Value]) -> Vec<Neighbour> {
    items
        .iter()
        .filter_map(|n| {
            Some(Neighbour {
                ip: str_of(n, "dst")?.parse().ok()?,
                mac: str_of(n, "lladdr").and_then(parse_mac),
                state: n
                    .get("state")
                    .and_then(Value::as_array)
                    .map(|s| {
                        s.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                router: n.get("router").is_some(),
            })
        })
        .collect()
}

/// The link-layer address `ns` has for `ip` on `ifname`, if any.
pub fn neighbour_mac(ns: &Netns, ifname: &str, ip: IpAddr) -> io::Result<Option<Mac>> {
    Ok(neighbours(ns, ifname)?
        .into_iter()
        .find(|n| n.ip == ip)
        .and_then(|n| n.mac))
}

/// One route (one next hop of a multipath route is one `Route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The next hop, if not on-link.
    pub gateway: Option<IpAddr>,
    /// The output interface.
    pub dev: Option<String>,
    /// Who installed it: `ra` for router advertisements, `redirect`,
    /// `kernel`, `boot`...; absent for `boot` in some iproute2 versions.
    pub protocol: Option<String>,
    /// Flags and cache notes, e.g. `redirected` for a redirect exception.
    pub notes: Vec<String>,
}

fn routes_of(items: &[Value]) -> Vec<Route> {
    let mut routes = Vec::new();
    for r in items {
        let protocol = str_of(r, "protocol").map(str::to_string);
        let mut notes = Vec::new();
        for key in ["flags", "cache"] {
            if let Some(list) = r.get(key).and_then(Value::as_array) {
                notes.extend(list.iter().filter_map(|x| x.as_str().map(str::to_string)));
            }
        }
        let hops: Vec<&Value> = match r.get("nexthops").and_then(Value::as_array) {
            Some(hops) => hops.iter().collect(),
            None => vec![r],
        };
        for h in hops {
            routes.push(Route {
                gateway: str_of(h, "gateway").and_then(|g| g.parse().ok()),
                dev: str_of(h, "dev")
                    .or_else(|| str_of(r, "dev"))
                    .map(str::to_string),
                protocol: protocol.clone(),
                notes: notes.clone(),
            });
        }
    }
    routes
}

/// The IPv6 default routes of `ns` (`ip -j -6 route show default`).
pub fn default_routes_v6(ns: &Netns) -> io::Result<Vec<Route>> {
    Ok(routes_of(&json(
        ns,
        "ip",
        &["-j", "-6", "route", "show", "default"],
    )?))
}

/// The route `ns` would use to reach `dst` now (`ip -j route get DST`),
/// redirect exceptions included.
pub fn route_get(ns: &Netns, dst: IpAddr) -> io::Result<Route> {
    routes_of(&json(ns, "ip", &["-j", "route", "get", &dst.to_string()])?)
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other(format!("no route to {dst}")))
}

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `global`, `link`, `host`.
    pub scope: String,
    /// Flags that are set, e.g. `tentative`, `dadfailed`, `dynamic`,
    /// `nodad`.
    pub flags: Vec<String>,
}

/// The addresses of `ifname` in `ns` (`ip -j addr show dev IF`).
pub fn addresses(ns: &Netns, ifname: &str) -> io::Result<Vec<Address>> {
    let items = json(ns, "ip", &["-j", "addr", "show", "dev", ifname])?;
    Ok(addresses_of(&items))
}

fn addresses_of(items: &[Value]) -> Vec<Address> {
    let mut out = Vec::new();
    for link in items {
        let Some(infos) = link.get("addr_info").and_then(Value::as_array) else {
            continue;
        };
        for a in infos {
            let (Some(ip), Some(len)) = (
                str_of(a, "local").and_then(|s| s.parse().ok()),
                a.get("prefixlen").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let flags = a
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(_, v)| v.as_bool() == Some(true))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            out.push(Address {
                ip,
                prefix_len: len as u8,
                scope: str_of(a, "scope").unwrap_or_default().to_string(),
                flags,
            });
        }
    }
    out
}

/// The `fe80::` address of `ifname` in `ns`.
pub fn link_local(ns: &Netns, ifname: &str) -> io::Result<Ipv6Addr> {
    addresses(ns, ifname)?
        .into_iter()
        .find_map(|a| match a.ip {
            IpAddr::V6(v6) if a.scope == "link" => Some(v6),
            _ => None,
        })
        .ok_or_else(|| io::Error::other(format!("{ifname} has no link-local address")))
}

/// One forwarding database entry of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The MAC address.
    pub mac: Mac,
    /// The bridge port it is on (e.g. `vb1`), or the bridge itself.
    pub port: String,
    /// `""` for a learned entry, `permanent`, `static`...
    pub state: String,
    /// E.g. `self` for the port's own entries.
    pub flags: Vec<String>,
}

impl FdbEntry {
    /// Whether the bridge learned it from a frame's source address (not
    /// a permanent or static entry, nor a port's own `self` entry).
    pub fn learned(&self) -> bool {
        self.state.is_empty() && !self.flags.iter().any(|f| f == "self")
    }
}

/// The forwarding database of `bridge` in `ns`
/// (`bridge -j fdb show br BRIDGE`).
pub fn fdb(ns: &Netns, bridge: &str) -> io::Result<Vec<FdbEntry>> {
    let items = json(ns, "bridge", &["-j", "fdb", "show", "br", bridge])?;
    Ok(fdb_of(&items))
}

fn fdb_of(items: &[Value]) -> Vec<FdbEntry> {
    items
        .iter()
        .filter_map(|e| {
            Some(FdbEntry {
                mac: parse_mac(str_of(e, "mac")?)?,
                port: str_of(e, "ifname")?.to_string(),
                state: str_of(e, "state").unwrap_or_default().to_string(),
                flags: e
                    .get("flags")
                    .and_then(Value::as_array)
                    .map(|f| {
                        f.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The port where `bridge` has learned `mac`, if it has.
pub fn fdb_port(ns: &Netns, bridge: &str, mac: Mac) -> io::Result<Option<String>> {
    Ok(fdb(ns, bridge)?
        .into_iter()
        .find(|e| e.mac == mac && e.learned())
        .map(|e| e.port))
}

/// A TCP segment seen in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeen {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    pub flags: u8,
    /// The acknowledgment number.
    pub ack: u32,
}

/// Whether `cap` recorded `from` answering a forged SYN
/// ([`crate::attack::SYN_SEQ`]) from port `port` with SYN-ACK.
pub fn syn_acked(cap: &crate::capture::Capture, from: std::net::IpAddr, port: u16) -> bool {
    cap.count_matching(|f| {
        tcp_of(f).is_some_and(|t| {
            t.src == from
                && t.dport == port
                && t.flags & 0x12 == 0x12
                && t.ack == crate::attack::SYN_SEQ.wrapping_add(1)
        })
    }) > 0
}

/// Every TCP segment `cap` recorded, as `src:port->dst:port flags 0x..`
/// (the evidence of a SYN scenario).
pub fn tcp_lines(cap: &crate::capture::Capture) -> Vec<String> {
    cap.frames()
        .iter()
        .filter_map(tcp_of)
        .map(|t| {
            format!(
                "{}:{}->{}:{} flags {:#04x}",
                t.src, t.sport, t.dst, t.dport, t.flags
            )
        })
        .collect()
}

/// The TCP header of a captured frame, if it carries one.
pub fn tcp_of(frame: &crate::capture::Captured) -> Option<TcpSeen> {
    let ip = frame.ip()?;
    if ip.protocol != crate::attack::proto::TCP || ip.later_fragment {
        return None;
    }
    let t = ip.payload;
    Some(TcpSeen {
        src: ip.src,
        dst: ip.dst,
        sport: u16::from_be_bytes([*t.first()?, *t.get(1)?]),
        dport: u16::from_be_bytes([*t.get(2)?, *t.get(3)?]),
        ack: u32::from_be_bytes(t.get(8..12)?.try_into().ok()?),
        flags: *t.get(13)?,
    })
}

/// Whether `capture` received a SYN-ACK from `from_ip` to port `to_port`
/// (the source port of the forged SYN) acknowledging
/// [`crate::attack::SYN_SEQ`]: the proof that the receiver's TCP took the
/// SYN and would have completed the handshake.
pub fn syn_ack_seen(capture: &Capture, from_ip: IpAddr, to_port: u16) -> bool {
    capture.count_matching(|f| {
        f.incoming()
            && tcp_of(f).is_some_and(|t| {
                t.src == from_ip
                    && t.dport == to_port
                    && t.flags & 0x12 == 0x12
                    && t.ack == crate::attack::SYN_SEQ.wrapping_add(1)
            })
    }) > 0
}

/// A plain UDP socket bound inside a namespace, for receivers the bed's
/// dual-stack [`crate::Listener`] is not: Linux delivers IPv4 multicast
/// without a group membership only to `AF_INET` sockets
/// (`IP_MULTICAST_ALL` is on for those alone), so a datagram to 224.0.0.1
/// reaches a `0.0.0.0` socket but not the listener's `[::]` one.
pub struct UdpSink {
    sock: UdpSocket,
}

impl UdpSink {
    /// Bind `addr` (e.g. `0.0.0.0:PORT`) inside `ns`.
    pub fn start(ns: &Netns, addr: SocketAddr) -> io::Result<UdpSink> {
        let sock = ns.run(move || UdpSocket::bind(addr))??;
        Ok(UdpSink { sock })
    }

    /// Wait up to `timeout` for a datagram whose payload contains
    /// `marker`; its source, if one came.
    pub fn wait_for(&self, marker: &[u8], timeout: Duration) -> io::Result<Option<SocketAddr>> {
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        while let Some(left) = timeout.checked_sub(start.elapsed()) {
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if buf[..n].windows(marker.len()).any(|w| w == marker) => {
                    return Ok(Some(from))
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// Poll `f` every 10 ms until it holds or `timeout` passes; whether it
/// held. Errors count as "not yet".
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Value> {
        match serde_json::from_str(text).unwrap() {
            Value::Array(items) => items,
            _ => panic!("not a list"),
        }
    }

    #[test]
    fn macs_round_trip() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x0a];
        assert_eq!(format_mac(mac), "02:42:ac:11:00:0a");
        assert_eq!(parse_mac("02:42:ac:11:00:0a"), Some(mac));
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:0a:ff"), None);
    }

    #[test]
    fn neighbours_parse() {
        // `ip -j neigh show dev eth0` (iproute2 6.1).
        let items = parse(
            r#"[{"dst":"10.77.1.10","lladdr":"02:42:ac:11:00:0a","state":["STALE"]},
                {"dst":"fe80::1","lladdr":"02:42:ac:11:00:01","router":null,"state":["REACHABLE"]},
                {"dst":"10.77.1.99","state":["FAILED"]}]"#,
        );
        let n = neighbours_of(&items);
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].ip, "10.77.1.10".parse::<IpAddr>().unwrap());
        assert_eq!(n[0].mac, parse_mac("02:42:ac:11:00:0a"));
        assert_eq!(n[0].state, vec!["STALE"]);
        assert!(n[1].router && !n[0].router);
        assert_eq!(n[2].mac, None);
    }

    #[test]
    fn routes_parse_single_and_multipath() {
        let items = parse(
            r#"[{"dst":"default","gateway":"fd77:1::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"},
                {"dst":"default","gateway":"fe80::b1","dev":"eth0","protocol":"ra","metric":1024,"flags":[],"expires":1799,"pref":"medium"},
                {"dst":"default","metric":1024,"flags":[],"nexthops":[{"gateway":"fe80::1","dev":"eth0","weight":1,"flags":[]},{"gateway":"fe80::2","dev":"eth1","weight":1,"flags":[]}]}]"#,
        );
        let r = routes_of(&items);
        assert_eq!(r.len(), 4);
        assert_eq!(r[1].protocol.as_deref(), Some("ra"));
        assert_eq!(r[1].gateway, Some("fe80::b1".parse().unwrap()));
        assert_eq!(r[3].dev.as_deref(), Some("eth1"));
        // `ip -j route get` of a redirected destination.
        let got = parse(
            r#"[{"dst":"198.51.100.2","gateway":"10.77.1.11","dev":"eth0","prefsrc":"10.77.1.12","flags":[],"uid":0,"cache":["redirected"]}]"#,
        );
        assert_eq!(routes_of(&got)[0].notes, vec!["redirected"]);
    }

    #[test]
    fn addresses_parse_flags() {
        let items = parse(
            r#"[{"ifindex":2,"ifname":"eth0","addr_info":[
                {"family":"inet","local":"10.77.1.12","prefixlen":24,"scope":"global"},
                {"family":"inet6","local":"fd77:1::99","prefixlen":64,"scope":"global","tentative":true,"dadfailed":true},
                {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","nodad":true}]}]"#,
        );
        let a = addresses_of(&items);
        assert_eq!(a.len(), 3);
        assert!(a[1].flags.contains(&"dadfailed".to_string()));
        assert!(a[1].flags.contains(&"tentative".to_string()));
        assert_eq!(a[2].scope, "link");
        assert_eq!(a[0].prefix_len, 24);
    }

    #[test]
    fn fdb_parse_learned_entries() {
        let items = parse(
            r#"[{"mac":"02:42:ac:11:00:0a","ifname":"vb1","master":"br-m","state":""},
                {"mac":"33:33:00:00:00:01","ifname":"vb1","flags":["self"],"state":"permanent"},
                {"mac":"4a:10:b2:34:6a:0b","ifname":"vb1","vlan":1,"master":"br-m","state":"permanent"}]"#,
        );
        let f = fdb_of(&items);
        assert_eq!(f.len(), 3);
        assert!(f[0].learned());
        assert!(!f[1].learned() && !f[2].learned());
        assert_eq!(f[0].port, "vb1");
    }
}
