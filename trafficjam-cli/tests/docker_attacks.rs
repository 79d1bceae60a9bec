//! The attack suite on Docker (issue 10): the image run as users run it,
//! on an IPv6-enabled network of this machine's Docker Engine. backend1 is
//! the compromised container: it writes forged frames with an `AF_PACKET`
//! socket from inside its network namespace (what CAP_NET_RAW, which
//! Docker gives every container, allows), or opens ordinary sockets there.
//!
//! Each attack runs twice on the same scene, and is read **on the
//! receiving side** both times (listeners in backend2, in the proxy and in
//! the host on the Docker bridge; captures on the victim's interface; the
//! victim's neighbour table and routes; the host bridge's forwarding
//! database):
//!
//! 1. without trafficjam: it must work (positive control), within half of
//!    the window the protected run waits;
//! 2. with the trafficjam image running as the README says (host network,
//!    NET_ADMIN, the Docker socket, `NETWORK` and `WHITELIST_FILTER`): it
//!    must not work, the drop counter of the expected kind (`status
//!    --json`, `instances[].drops_by_kind`, read from just before the
//!    attack's first frame to just after the observation) must rise, and
//!    the proxy must still reach both backends over TCP, IPv4 and IPv6.
//!
//! br_netfilter: `net.bridge.bridge-nf-call-ip{,6}tables` of a Docker
//! host is the host's own sysctl (Docker's containers are on the host's
//! bridge, not in a namespace of the test's), and a test must not change
//! the host. So this file tests with the host's current setting only, and
//! prints it; `kernel_attacks.rs` covers both settings on its own beds.
//!
//! Three scenes (one network each, with its own trafficjam container) run
//! side by side, one per #[test]; every container, network and trafficjam
//! rule of a scene is removed when it is dropped, also on panic. Root and
//! Docker are required: the tests fail, never skip, without them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, UdpSocket,
};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6,
};
use serde_json::Value;

use trafficjam_testbed::attack::{self, ethertype, ArpOp, Mac};
use trafficjam_testbed::capture::Capture;
use trafficjam_testbed::docker::{
    docker, images, repo_root, run_trafficjam, unique, Container, Network, BUSYBOX_IMAGE,
};
use trafficjam_testbed::frame::mac_of;
use trafficjam_testbed::observe::{self, format_mac};
use trafficjam_testbed::probe::tcp_connect;
use trafficjam_testbed::{require_root, Listener, Netns};

/// The TCP port of every listener (backend1's testbed listener included).
const TCP_PORT: u16 = 8080;
/// The UDP port of every listener (dual-stack, echoes what it gets).
const UDP_PORT: u16 = 8081;
/// The UDP port of the `AF_INET` sockets: Linux delivers IPv4 multicast
/// without a group membership to `AF_INET` sockets only.
const SINK4_PORT: u16 = 8091;

/// How long a positive control may take (it returns as soon as it works).
const CONTROL_WAIT: Duration = Duration::from_secs(2);
/// How long a protected run waits for an effect that must not come. A
/// control slower than half of it fails: the window would prove little.
const WINDOW: Duration = Duration::from_millis(800);
/// A preparation step (learning a neighbour), never the thing under test.
const PREPARE: Duration = Duration::from_secs(3);
/// Timeout of each probe of the legitimate flows.
const PROBE: Duration = Duration::from_secs(1);

/// Drop counters (packets) by kind.
type Counters = BTreeMap<String, u64>;

/// The static release binary, the one the image holds: `status --json`
/// and the final `clear` are run with it on the host (same kernel tables
/// as the container sees, without a `docker exec` per reading).
fn host_binary() -> PathBuf {
    repo_root().join("target/x86_64-unknown-linux-musl/release/trafficjam")
}

fn has(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(out)
                .chars()
                .take(400)
                .collect::<String>()
        )
    })
}

// ---------------------------------------------------------------------------
// Listeners that record what arrived, with the payload (attacks carry a
// marker of their own), optionally bound to one device (the host's, on
// the Docker bridge only, so several scenes never share a socket).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// An accepted connection on the dual-stack TCP socket.
    Tcp,
    /// A datagram on the dual-stack UDP socket.
    Udp,
    /// A datagram on the `AF_INET` UDP socket.
    Udp4,
}

#[derive(Debug, Clone)]
struct Arrival {
    via: Via,
    from: SocketAddr,
    payload: Vec<u8>,
}

struct Sink {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Arrival>>>,
    threads: Vec<JoinHandle<()>>,
}

fn bind_socket(
    family: AddressFamily,
    ty: SockType,
    port: u16,
    device: Option<&str>,
) -> io::Result<OwnedFd> {
    let fd = socket(family, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if let Some(d) = device {
        setsockopt(&fd, sockopt::BindToDevice, &OsString::from(d))?;
    }
    if family == AddressFamily::Inet6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
        let a = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
        bind(fd.as_raw_fd(), &a)?;
    } else {
        let a = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        bind(fd.as_raw_fd(), &a)?;
    }
    if ty == SockType::Stream {
        listen(&fd, Backlog::new(128).map_err(io::Error::from)?)?;
    }
    Ok(fd)
}

fn readable(fd: impl AsFd) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0)
}

fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

impl Sink {
    /// TCP on `[::]:8080`, UDP on `[::]:8081` (echoing) and `0.0.0.0:8091`
    /// inside `ns`, bound to `device` if given.
    fn start(ns: &Netns, device: Option<&str>) -> Sink {
        let dev = device.map(str::to_string);
        let (tcp, udp, udp4) = ns
            .run(move || -> io::Result<(TcpListener, UdpSocket, UdpSocket)> {
                let d = dev.as_deref();
                let tcp = bind_socket(AddressFamily::Inet6, SockType::Stream, TCP_PORT, d)?;
                let udp = bind_socket(AddressFamily::Inet6, SockType::Datagram, UDP_PORT, d)?;
                let udp4 = bind_socket(AddressFamily::Inet, SockType::Datagram, SINK4_PORT, d)?;
                Ok((tcp.into(), udp.into(), udp4.into()))
            })
            .expect("enter the namespace")
            .unwrap_or_else(|e| panic!("listeners in {}: {e}", ns.name()));
        let stop = Arc::new(AtomicBool::new(false));
        let got: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let mut threads = Vec::new();
        {
            let (stop, got) = (stop.clone(), got.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if readable(&tcp) {
                        if let Ok((conn, from)) = tcp.accept() {
                            got.lock().unwrap().push(Arrival {
                                via: Via::Tcp,
                                from: unmap(from),
                                payload: Vec::new(),
                            });
                            drop(conn);
                        }
                    }
                }
            }));
        }
        for (sock, via) in [(udp, Via::Udp), (udp4, Via::Udp4)] {
            let (stop, got) = (stop.clone(), got.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&sock) {
                        continue;
                    }
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        got.lock().unwrap().push(Arrival {
                            via,
                            from: unmap(from),
                            payload: buf[..n].to_vec(),
                        });
                        // Echo: a request that arrives is answered.
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        Sink { stop, got, threads }
    }

    fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// The first arrival from index `since` on that satisfies `pred`.
    fn find(&self, since: usize, pred: impl Fn(&Arrival) -> bool) -> Option<Arrival> {
        self.got.lock().unwrap()[since..]
            .iter()
            .find(|a| pred(a))
            .cloned()
    }

    fn since(&self, since: usize) -> Vec<String> {
        self.got.lock().unwrap()[since..]
            .iter()
            .map(|a| format!("{:?} from {}", a.via, a.from))
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The scene

/// Removes the instance's rules when dropped (after its trafficjam
/// container is gone: stopping trafficjam leaves its rules in place).
struct RulesGuard(String);

impl Drop for RulesGuard {
    fn drop(&mut self) {
        let _ = Command::new(host_binary())
            .args(["clear", "--instance", &self.0])
            .output();
        for family in ["inet", "bridge"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &format!("trafficjam-{}", self.0)])
                .output();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Backend2,
    Proxy,
    Host,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Backend2 => "backend2",
            Who::Proxy => "proxy",
            Who::Host => "host",
        }
    }
}

struct Addrs {
    proxy4: IpAddr,
    proxy6: IpAddr,
    b1_4: IpAddr,
    b1_6: IpAddr,
    b2_4: IpAddr,
    b2_6: IpAddr,
    gw4: IpAddr,
    gw6: IpAddr,
    b1_ll: Ipv6Addr,
    b2_ll: Ipv6Addr,
    proxy_ll: Ipv6Addr,
    host_ll: Ipv6Addr,
    b1_mac: Mac,
    b2_mac: Mac,
    proxy_mac: Mac,
    host_mac: Mac,
    /// The host side of the proxy's and backend1's veth (bridge ports).
    proxy_port: String,
    b1_port: String,
}

/// Fields drop in declaration order: trafficjam, then its rules, then the
/// listeners, the containers, the network.
struct Scene {
    tj: Option<Container>,
    rules: Option<RulesGuard>,
    b2_sink: Sink,
    proxy_sink: Sink,
    host_sink: Sink,
    _b1_listener: Listener,
    b1_ns: Netns,
    b2_ns: Netns,
    proxy_ns: Netns,
    host_ns: Netns,
    _proxy: Container,
    _b1: Container,
    _b2: Container,
    net: Network,
    label: String,
    bridge: String,
    a: Addrs,
}

fn inspect(c: &Container, net: &str, field: &str) -> String {
    let f = format!(
        "{{{{with index .NetworkSettings.Networks \"{net}\"}}}}{{{{.{field}}}}}{{{{end}}}}"
    );
    docker(&["inspect", "--format", &f, &c.name]).expect("docker inspect")
}

fn ip_of(s: &str) -> IpAddr {
    s.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{s:?} is not an address: {e}"))
}

/// The host-side name of the veth whose container end is `eth0` in `ns`.
fn host_port(ns: &Netns) -> String {
    let out = ns
        .iproute2("ip", &["-j", "link", "show", "dev", "eth0"])
        .expect("ip link");
    let index = json(&out.stdout)[0]["link_index"]
        .as_u64()
        .expect("eth0's peer index");
    let out = Command::new("ip")
        .args(["-j", "link", "show"])
        .output()
        .expect("ip link");
    json(&out.stdout)
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["ifindex"].as_u64() == Some(index))
        .and_then(|l| l["ifname"].as_str())
        .expect("the host side of the veth")
        .to_string()
}

/// The link-local address of `ifname` in `ns` once it is usable (not
/// tentative: a fresh interface runs duplicate address detection first).
fn usable_link_local(ns: &Netns, ifname: &str) -> Ipv6Addr {
    let mut found = None;
    let ok = wait_until(Duration::from_secs(5), || {
        found = observe::addresses(ns, ifname)
            .unwrap_or_default()
            .into_iter()
            .find_map(|a| match a.ip {
                IpAddr::V6(v6)
                    if a.scope == "link" && !a.flags.iter().any(|f| f == "tentative") =>
                {
                    Some(v6)
                }
                _ => None,
            });
        found.is_some()
    });
    assert!(
        ok,
        "{ifname} in {} has no usable link-local address: {:?}",
        ns.name(),
        observe::addresses(ns, ifname)
    );
    found.unwrap()
}

impl Scene {
    /// Network `k` of this process: 172.28.N.0/24 and fd28:N::/64.
    fn build(k: u32) -> Scene {
        require_root();
        images().expect("build the test images");
        let n = (std::process::id() % 60) * 4 + k;
        let net = Network::create(
            "tjatk",
            &[&format!("172.28.{n}.0/24"), &format!("fd28:{n:x}::/64")],
        )
        .expect("create the dual-stack network");
        let label = unique("proxy");
        let run = |prefix: &str, extra: &[&str]| {
            let mut args = vec!["--network", net.name.as_str()];
            args.extend_from_slice(extra);
            Container::run(prefix, &args, BUSYBOX_IMAGE, &[]).expect("start a container")
        };
        let proxy = run("tjaproxy", &["--label", &format!("tj.test={label}")]);
        let b1 = run("tjab1", &[]);
        let b2 = run("tjab2", &[]);
        let id = docker(&["network", "inspect", "-f", "{{.Id}}", &net.name]).expect("network id");
        let bridge = format!("br-{}", &id[..12]);
        let host_ns = Netns::attach(
            &unique("tjahost"),
            format!("/proc/{}/ns/net", std::process::id()),
        );
        let (b1_ns, b2_ns, proxy_ns) = (
            b1.netns().unwrap(),
            b2.netns().unwrap(),
            proxy.netns().unwrap(),
        );
        let addr = |c: &Container, field: &str| ip_of(&inspect(c, &net.name, field));
        let a = Addrs {
            proxy4: addr(&proxy, "IPAddress"),
            proxy6: addr(&proxy, "GlobalIPv6Address"),
            b1_4: addr(&b1, "IPAddress"),
            b1_6: addr(&b1, "GlobalIPv6Address"),
            b2_4: addr(&b2, "IPAddress"),
            b2_6: addr(&b2, "GlobalIPv6Address"),
            gw4: addr(&b1, "Gateway"),
            gw6: addr(&b1, "IPv6Gateway"),
            b1_ll: usable_link_local(&b1_ns, "eth0"),
            b2_ll: usable_link_local(&b2_ns, "eth0"),
            proxy_ll: usable_link_local(&proxy_ns, "eth0"),
            host_ll: usable_link_local(&host_ns, &bridge),
            b1_mac: mac_of(&b1_ns, "eth0").unwrap(),
            b2_mac: mac_of(&b2_ns, "eth0").unwrap(),
            proxy_mac: mac_of(&proxy_ns, "eth0").unwrap(),
            host_mac: mac_of(&host_ns, &bridge).unwrap(),
            proxy_port: host_port(&proxy_ns),
            b1_port: host_port(&b1_ns),
        };
        Scene {
            tj: None,
            rules: None,
            b2_sink: Sink::start(&b2_ns, None),
            proxy_sink: Sink::start(&proxy_ns, None),
            host_sink: Sink::start(&host_ns, Some(&bridge)),
            _b1_listener: Listener::start(&b1_ns).expect("backend1's listener"),
            b1_ns,
            b2_ns,
            proxy_ns,
            host_ns,
            _proxy: proxy,
            _b1: b1,
            _b2: b2,
            net,
            label,
            bridge,
            a,
        }
    }

    fn ns(&self, w: Who) -> &Netns {
        match w {
            Who::Backend2 => &self.b2_ns,
            Who::Proxy => &self.proxy_ns,
            Who::Host => &self.host_ns,
        }
    }

    fn ifname(&self, w: Who) -> &str {
        match w {
            Who::Host => &self.bridge,
            _ => "eth0",
        }
    }

    fn sink(&self, w: Who) -> &Sink {
        match w {
            Who::Backend2 => &self.b2_sink,
            Who::Proxy => &self.proxy_sink,
            Who::Host => &self.host_sink,
        }
    }

    fn mac(&self, w: Who) -> Mac {
        match w {
            Who::Backend2 => self.a.b2_mac,
            Who::Proxy => self.a.proxy_mac,
            Who::Host => self.a.host_mac,
        }
    }

    fn ll(&self, w: Who) -> Ipv6Addr {
        match w {
            Who::Backend2 => self.a.b2_ll,
            Who::Proxy => self.a.proxy_ll,
            Who::Host => self.a.host_ll,
        }
    }

    fn v4(&self, w: Who) -> IpAddr {
        match w {
            Who::Backend2 => self.a.b2_4,
            Who::Proxy => self.a.proxy4,
            Who::Host => self.a.gw4,
        }
    }

    fn v6(&self, w: Who) -> IpAddr {
        match w {
            Who::Backend2 => self.a.b2_6,
            Who::Proxy => self.a.proxy6,
            Who::Host => self.a.gw6,
        }
    }

    /// The trafficjam image as the README runs it; returns once its
    /// rules are in and name the proxy and every port of the network.
    fn start_trafficjam(&mut self) -> Duration {
        let env = [
            format!("NETWORK={}", self.net.name),
            format!("WHITELIST_FILTER=label=tj.test={}", self.label),
        ];
        let started = Instant::now();
        self.rules = Some(RulesGuard(self.net.name.clone()));
        let tj = run_trafficjam(&env, &[]).expect("start trafficjam");
        self.tj = Some(tj);
        let proxy4 = self.a.proxy4.to_string();
        let mut last = Value::Null;
        let ready = wait_until(Duration::from_secs(20), || {
            let Some(i) = self.instance() else {
                return false;
            };
            let whitelisted = i["whitelist"]
                .as_array()
                .is_some_and(|w| w.iter().any(|a| a.as_str() == Some(proxy4.as_str())));
            let ports = i["ports"].as_array().map_or(0, Vec::len);
            let unidentified = i["unidentified"].as_array().map_or(0, Vec::len);
            last = i;
            whitelisted && ports == 3 && unidentified == 0
        });
        assert!(
            ready,
            "trafficjam never enforced the network; status: {last}\nlogs: {}",
            self.tj.as_ref().unwrap().logs()
        );
        started.elapsed()
    }

    fn status(&self) -> Value {
        let out = Command::new(host_binary())
            .args(["status", "--json"])
            .output()
            .expect("run trafficjam status");
        assert!(out.status.success(), "trafficjam status --json: {out:?}");
        json(&out.stdout)
    }

    /// This scene's instance in `status --json` (named after the network).
    fn instance(&self) -> Option<Value> {
        self.status()["instances"]
            .as_array()?
            .iter()
            .find(|i| i["instance"].as_str() == Some(self.net.name.as_str()))
            .cloned()
    }

    fn drops(&self) -> Counters {
        let i = self.instance().expect("this scene's trafficjam instance");
        i["drops_by_kind"]
            .as_array()
            .unwrap_or_else(|| panic!("no drops_by_kind in {i}"))
            .iter()
            .map(|d| {
                (
                    d["chain"].as_str().expect("kind").to_string(),
                    d["packets"].as_u64().expect("packets"),
                )
            })
            .collect()
    }

    /// The counters once they hold still for 150 ms (at most 1.5 s): a
    /// victim's retransmissions of an earlier attack's answer, or a
    /// backend's pending neighbour solicitations, are not counted as
    /// this attack's drops.
    fn quiet_drops(&self) -> Counters {
        let start = Instant::now();
        let mut last = self.drops();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = self.drops();
            if now == last || start.elapsed() > Duration::from_millis(1500) {
                return now;
            }
            last = now;
        }
    }

    /// The proxy to both backends, TCP, IPv4 and IPv6: what must keep
    /// working whatever a backend does. The failures.
    fn legitimate_broken(&self) -> Vec<String> {
        [
            ("backend1", self.a.b1_4),
            ("backend1", self.a.b1_6),
            ("backend2", self.a.b2_4),
            ("backend2", self.a.b2_6),
        ]
        .into_iter()
        .filter(|(_, to)| !tcp_connect(&self.proxy_ns, *to, PROBE))
        .map(|(who, to)| format!("proxy -> {who} tcp {to}"))
        .collect()
    }

    /// A datagram from the proxy to the gateway: a frame with its own
    /// source MAC, so the bridge (re)learns its port after a control
    /// stole it.
    fn proxy_speaks(&self) {
        let gw = self.a.gw4;
        let _ = self.proxy_ns.run(move || {
            if let Ok(s) = UdpSocket::bind("0.0.0.0:0") {
                let _ = s.send_to(b"tj-hello", (gw, 9));
            }
        });
    }

    /// Forget what a control may have left behind in the containers'
    /// and the host's neighbour tables (poisoned entries), so the protected
    /// run starts clean and resolves anew under trafficjam.
    fn flush_neighbours(&self) {
        for ns in [&self.b1_ns, &self.b2_ns, &self.proxy_ns] {
            let _ = ns.iproute2("ip", &["neigh", "flush", "dev", "eth0"]);
        }
        let _ = Command::new("ip")
            .args(["neigh", "flush", "dev", &self.bridge])
            .output();
    }
}

// ---------------------------------------------------------------------------
// One run of an attack

#[derive(Debug, Clone)]
struct Obs {
    worked: bool,
    after: Option<Duration>,
    evidence: String,
}

impl Obs {
    fn new(after: Option<Duration>, evidence: String) -> Obs {
        Obs {
            worked: after.is_some(),
            after,
            evidence,
        }
    }
}

struct Run<'a> {
    s: &'a Scene,
    wait: Duration,
    marker: Vec<u8>,
    protected: bool,
    at_arm: Mutex<Option<Counters>>,
    armed: AtomicBool,
}

impl Run<'_> {
    /// The attack starts now: the counters are read (protected runs).
    fn arm(&self) {
        if !self.armed.swap(true, Ordering::SeqCst) && self.protected {
            *self.at_arm.lock().unwrap() = Some(self.s.quiet_drops());
        }
    }

    /// Frames from backend1's `eth0`.
    fn send(&self, frames: &[Vec<u8>]) {
        self.arm();
        attack::send(&self.s.b1_ns, "eth0", frames).expect("send forged frames");
    }

    /// Poll `f` for up to the run's wait; how long it took to hold.
    fn until(&self, f: impl FnMut() -> bool) -> Option<Duration> {
        trafficjam_testbed::scenario::poll_until(self.wait, f)
    }

    fn udp(&self, src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, port: u16) -> Vec<u8> {
        attack::udp_to(
            src_mac,
            dst_mac,
            src,
            dst,
            attack::fresh_port(),
            port,
            &self.marker,
        )
    }
}

type Body = Box<dyn Fn(&Run) -> Obs + Send + Sync>;

struct Attack {
    name: String,
    /// The drop counter kinds of which one must rise with trafficjam.
    kinds: &'static [&'static str],
    body: Body,
}

fn attack(
    name: impl Into<String>,
    kinds: &'static [&'static str],
    body: impl Fn(&Run) -> Obs + Send + Sync + 'static,
) -> Attack {
    Attack {
        name: name.into(),
        kinds,
        body: Box::new(body),
    }
}

// ---------------------------------------------------------------------------
// Observations on the receiving side

/// A datagram with the run's marker at the victim's listener `via`.
fn arrives(r: &Run, w: Who, via: Via, frames: Vec<Vec<u8>>) -> Obs {
    let sink = r.s.sink(w);
    let start = sink.len();
    r.send(&frames);
    let m = r.marker.clone();
    let hit = |a: &Arrival| a.via == via && has(&a.payload, &m);
    let after = r.until(|| sink.find(start, hit).is_some());
    let evidence = match sink.find(start, hit) {
        Some(a) => format!("{}'s {via:?} listener got it from {}", w.label(), a.from),
        None => format!(
            "{}'s {via:?} listener: nothing with the marker (arrivals meanwhile: {:?})",
            w.label(),
            sink.since(start)
        ),
    };
    Obs::new(after, evidence)
}

/// A frame with the run's marker received on the victim's interface.
fn captured(r: &Run, w: Who, frames: Vec<Vec<u8>>) -> Obs {
    let cap = Capture::start(r.s.ns(w), r.s.ifname(w)).expect("capture");
    r.send(&frames);
    let after = r.until(|| cap.contains(&r.marker));
    let got = cap.incoming_with(&r.marker);
    let evidence = match got.first() {
        Some(f) => format!(
            "capture on {}: {} frame(s) with the marker, outer tag {:?}",
            w.label(),
            got.len(),
            f.vlan.map(|t| (format!("{:#06x}", t.tpid), t.vid()))
        ),
        None => format!(
            "capture on {}: no frame with the marker ({} received in all)",
            w.label(),
            cap.incoming().len()
        ),
    };
    Obs::new(after, evidence)
}

/// The victim's TCP answered a forged SYN from `port` with SYN-ACK (seen
/// leaving its own interface).
fn syn_answered(r: &Run, w: Who, dst: IpAddr, port: u16, frames: Vec<Vec<u8>>) -> Obs {
    let cap = Capture::start(r.s.ns(w), r.s.ifname(w)).expect("capture");
    r.send(&frames);
    let after = r.until(|| observe::syn_acked(&cap, dst, port));
    Obs::new(
        after,
        format!(
            "{} SYN-ACK from {dst} to port {port} on {}'s interface",
            if after.is_some() { "a" } else { "no" },
            w.label()
        ),
    )
}

/// Make the victim know the proxy's address `target` at its real MAC,
/// with allowed traffic only (the proxy connects to backend2; the host
/// connects to the proxy), so that poisoning has an entry to override.
fn learn_proxy(r: &Run, w: Who, target: IpAddr) {
    let s = r.s;
    let (ns, ifname) = (s.ns(w), s.ifname(w));
    let _ = ns.iproute2("ip", &["neigh", "del", &target.to_string(), "dev", ifname]);
    let ok = wait_until(PREPARE, || {
        match w {
            Who::Backend2 => {
                let to = if target.is_ipv4() { s.a.b2_4 } else { s.a.b2_6 };
                tcp_connect(&s.proxy_ns, to, Duration::from_millis(300));
            }
            _ => {
                tcp_connect(&s.host_ns, target, Duration::from_millis(300));
            }
        }
        observe::neighbour_mac(ns, ifname, target).ok().flatten() == Some(s.a.proxy_mac)
    });
    assert!(
        ok,
        "preparation: {} never learned {target} at the proxy's MAC {}: {:?}",
        w.label(),
        format_mac(s.a.proxy_mac),
        observe::neighbours(ns, ifname)
    );
}

/// The victim's entry for `target` moves to backend1's MAC.
fn poisoned(r: &Run, w: Who, target: IpAddr, frames: Vec<Vec<u8>>) -> Obs {
    let s = r.s;
    let (ns, ifname) = (s.ns(w), s.ifname(w));
    let entry = || {
        observe::neighbours(ns, ifname)
            .ok()
            .and_then(|n| n.into_iter().find(|n| n.ip == target))
    };
    let before = entry();
    r.send(&frames);
    let after = r.until(|| entry().and_then(|n| n.mac) == Some(s.a.b1_mac));
    let show = |n: Option<observe::Neighbour>| {
        n.map_or("none".into(), |n| {
            format!("{} {:?}", n.mac.map_or("-".into(), format_mac), n.state)
        })
    };
    Obs::new(
        after,
        format!(
            "{}'s entry for {target}: before {}, after {} (proxy {}, attacker {})",
            w.label(),
            show(before),
            show(entry()),
            format_mac(s.a.proxy_mac),
            format_mac(s.a.b1_mac)
        ),
    )
}

// ---------------------------------------------------------------------------
// The attacks

fn all_nodes_mac() -> Mac {
    attack::multicast_mac(IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1))).unwrap()
}

/// The kind of drop expected for traffic from backend1 to `w`.
fn toward(w: Who) -> &'static [&'static str] {
    match w {
        Who::Backend2 => &["lateral"],
        Who::Proxy => &["to-proxy"],
        Who::Host => &["to-host"],
    }
}

/// Link-local, broadcast, multicast, gateway; VLAN tags, other ethertypes.
fn lateral_attacks() -> Vec<Attack> {
    let mut v = Vec::new();
    for w in [Who::Backend2, Who::Proxy, Who::Host] {
        let l = w.label();
        v.push(attack(
            format!("UDP to {l}'s fe80:: address"),
            toward(w),
            move |r| {
                let s = r.s;
                let f = r.udp(
                    s.a.b1_mac,
                    s.mac(w),
                    s.a.b1_ll.into(),
                    s.ll(w).into(),
                    UDP_PORT,
                );
                arrives(r, w, Via::Udp, vec![f])
            },
        ));
        v.push(attack(
            format!("TCP handshake with {l}'s fe80:: address (%eth0)"),
            toward(w),
            move |r| {
                let s = r.s;
                let sink = s.sink(w);
                let start = sink.len();
                let to = s.ll(w);
                r.arm();
                let shake = attack::tcp_connect_scoped(&s.b1_ns, "eth0", to, TCP_PORT, r.wait)
                    .expect("connect");
                let from = IpAddr::V6(s.a.b1_ll);
                let hit = |a: &Arrival| a.via == Via::Tcp && a.from.ip() == from;
                let after = r.until(|| sink.find(start, hit).is_some());
                Obs::new(
                    after,
                    format!(
                        "handshake with [{to}%eth0]:{TCP_PORT} {}; {l}'s listener: {:?}",
                        if shake { "completed" } else { "failed" },
                        sink.since(start)
                    ),
                )
            },
        ));
    }
    for w in [Who::Backend2, Who::Proxy, Who::Host] {
        let l = w.label();
        v.push(attack(
            format!("UDP to 255.255.255.255 -> {l}"),
            toward(w),
            move |r| {
                let s = r.s;
                let dst = IpAddr::V4(Ipv4Addr::BROADCAST);
                let f = r.udp(s.a.b1_mac, attack::BROADCAST, s.a.b1_4, dst, UDP_PORT);
                arrives(r, w, Via::Udp, vec![f])
            },
        ));
        v.push(attack(
            format!("UDP to 224.0.0.1 -> {l} (AF_INET socket)"),
            toward(w),
            move |r| {
                let s = r.s;
                let dst = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1));
                let mac = attack::multicast_mac(dst).unwrap();
                let f = r.udp(s.a.b1_mac, mac, s.a.b1_4, dst, SINK4_PORT);
                arrives(r, w, Via::Udp4, vec![f])
            },
        ));
        v.push(attack(
            format!("UDP to ff02::1 -> {l}"),
            toward(w),
            move |r| {
                let s = r.s;
                let dst = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
                let f = r.udp(s.a.b1_mac, all_nodes_mac(), s.a.b1_ll.into(), dst, UDP_PORT);
                arrives(r, w, Via::Udp, vec![f])
            },
        ));
    }
    for six in [false, true] {
        v.push(attack(
            format!(
                "UDP to the gateway ({}) -> host",
                if six { "IPv6" } else { "IPv4" }
            ),
            &["to-host"],
            move |r| {
                let s = r.s;
                let (src, dst) = if six {
                    (s.a.b1_6, s.v6(Who::Host))
                } else {
                    (s.a.b1_4, s.v4(Who::Host))
                };
                let f = r.udp(s.a.b1_mac, s.a.host_mac, src, dst, UDP_PORT);
                arrives(r, Who::Host, Via::Udp, vec![f])
            },
        ));
    }
    v.push(attack(
        "802.1Q double tag (100, 200) around UDP -> backend2 (capture)",
        &["lateral", "non-ip"],
        |r| {
            let s = r.s;
            let w = Who::Backend2;
            let f = r.udp(s.a.b1_mac, s.mac(w), s.a.b1_4, s.v4(w), UDP_PORT);
            captured(r, w, vec![attack::vlan_tagged(f, &[100, 200])])
        },
    ));
    v.push(attack(
        "802.1Q VID 0 priority tag around UDP -> backend2's listener",
        &["lateral", "non-ip"],
        |r| {
            let s = r.s;
            let w = Who::Backend2;
            let f = r.udp(s.a.b1_mac, s.mac(w), s.a.b1_4, s.v4(w), UDP_PORT);
            arrives(r, w, Via::Udp, vec![attack::vlan_tagged(f, &[0])])
        },
    ));
    v.push(attack(
        "ethertype 0x88b5 -> backend2 (capture)",
        &["non-ip", "lateral"],
        |r| {
            let s = r.s;
            let f = attack::ethertype_frame(
                s.a.b1_mac,
                s.a.b2_mac,
                ethertype::LOCAL_EXPERIMENTAL,
                &r.marker,
            );
            captured(r, Who::Backend2, vec![f])
        },
    ));
    v
}

/// Forged sources, forged proxy, ARP/NA poisoning, MAC theft.
fn forgery_attacks() -> Vec<Attack> {
    let mut v = Vec::new();
    for six in [false, true] {
        let fam = if six { "IPv6" } else { "IPv4" };
        let w = Who::Backend2;
        v.push(attack(
            format!("UDP from a forged source outside the subnets ({fam}) -> backend2"),
            &["spoofed-ip"],
            move |r| {
                let s = r.s;
                let (src, dst) = if six {
                    (ip_of("2001:db8:66::66"), s.a.b2_6)
                } else {
                    (ip_of("192.0.2.66"), s.a.b2_4)
                };
                let f = r.udp(s.a.b1_mac, s.a.b2_mac, src, dst, UDP_PORT);
                arrives(r, w, Via::Udp, vec![f])
            },
        ));
        v.push(attack(
            format!(
                "TCP SYN from a forged source outside the subnets ({fam}) -> backend2 (SYN-ACK)"
            ),
            &["spoofed-ip"],
            move |r| {
                let s = r.s;
                let (src, dst) = if six {
                    (ip_of("2001:db8:100::66"), s.a.b2_6)
                } else {
                    (ip_of("198.51.100.66"), s.a.b2_4)
                };
                let port = attack::fresh_port();
                let f = attack::tcp_syn(s.a.b1_mac, s.a.b2_mac, src, dst, port, TCP_PORT);
                syn_answered(r, w, dst, port, vec![f])
            },
        ));
        v.push(attack(
            format!("UDP from the proxy's forged {fam} address -> backend2"),
            &["spoofed-ip"],
            move |r| {
                let s = r.s;
                let (src, dst) = if six {
                    (s.a.proxy6, s.a.b2_6)
                } else {
                    (s.a.proxy4, s.a.b2_4)
                };
                let f = r.udp(s.a.b1_mac, s.a.b2_mac, src, dst, UDP_PORT);
                arrives(r, w, Via::Udp, vec![f])
            },
        ));
        v.push(attack(
            format!("UDP from the proxy's forged {fam} address and MAC -> backend2"),
            &["spoofed-mac", "spoofed-ip"],
            move |r| {
                let s = r.s;
                let (src, dst) = if six {
                    (s.a.proxy6, s.a.b2_6)
                } else {
                    (s.a.proxy4, s.a.b2_4)
                };
                let f = r.udp(s.a.proxy_mac, s.a.b2_mac, src, dst, UDP_PORT);
                arrives(r, w, Via::Udp, vec![f])
            },
        ));
    }
    for w in [Who::Backend2, Who::Host] {
        v.push(attack(
            format!(
                "gratuitous ARP claiming the proxy's IPv4 -> {}'s neighbour entry",
                w.label()
            ),
            &["spoofed-arp"],
            move |r| {
                let s = r.s;
                learn_proxy(r, w, s.a.proxy4);
                let IpAddr::V4(p) = s.a.proxy4 else {
                    unreachable!()
                };
                let f = attack::gratuitous_arp(s.a.b1_mac, p, ArpOp::Request);
                poisoned(r, w, s.a.proxy4, vec![f])
            },
        ));
        v.push(attack(
            format!(
                "unsolicited NA claiming the proxy's IPv6 -> {}'s neighbour entry",
                w.label()
            ),
            &["spoofed-nd"],
            move |r| {
                let s = r.s;
                learn_proxy(r, w, s.a.proxy6);
                let IpAddr::V6(p) = s.a.proxy6 else {
                    unreachable!()
                };
                let f = attack::unsolicited_na(s.a.b1_mac, s.a.b1_ll, p);
                poisoned(r, w, s.a.proxy6, vec![f])
            },
        ));
    }
    v.push(attack(
        "frames with the proxy's source MAC -> host bridge fdb moves it to backend1's port",
        &["spoofed-mac"],
        |r| {
            let s = r.s;
            let where_ = || {
                observe::fdb_port(&s.host_ns, &s.bridge, s.a.proxy_mac)
                    .ok()
                    .flatten()
            };
            let learned = wait_until(PREPARE, || {
                s.proxy_speaks();
                where_().as_deref() == Some(s.a.proxy_port.as_str())
            });
            assert!(
                learned,
                "preparation: the proxy's MAC is not on its port {}: {:?}",
                s.a.proxy_port,
                observe::fdb(&s.host_ns, &s.bridge)
            );
            let f = attack::ethertype_frame(
                s.a.proxy_mac,
                attack::BROADCAST,
                ethertype::LOCAL_EXPERIMENTAL,
                &r.marker,
            );
            // Again on every poll: a frame of the proxy's own may teach
            // the bridge its real port back in between.
            let moved = r.until(|| {
                r.send(std::slice::from_ref(&f));
                where_().as_deref() == Some(s.a.b1_port.as_str())
            });
            Obs::new(
                moved,
                format!(
                    "host fdb of {} has the proxy's MAC {} on {:?} (proxy's port {}, backend1's {})",
                    s.bridge,
                    format_mac(s.a.proxy_mac),
                    where_(),
                    s.a.proxy_port,
                    s.a.b1_port
                ),
            )
        },
    ));
    v
}

/// A rogue router advertisement; requests and fragmented SYNs to the
/// proxy.
fn router_and_request_attacks() -> Vec<Attack> {
    let mut v = Vec::new();
    v.push(attack(
        "rogue router advertisement -> backend2's IPv6 default routes (accept_ra=2)",
        &["router"],
        |r| {
            let s = r.s;
            let ns = &s.b2_ns;
            // Docker's /proc/sys is read-only inside the container: the
            // sysctl is written from a thread in its network namespace.
            ns.sysctl("net.ipv6.conf.eth0.accept_ra", "2")
                .expect("accept_ra=2 in backend2");
            let rogue = IpAddr::V6(s.a.b1_ll);
            let drop_rogue = || {
                while ns
                    .iproute2(
                        "ip",
                        &[
                            "-6",
                            "route",
                            "del",
                            "default",
                            "via",
                            &rogue.to_string(),
                            "dev",
                            "eth0",
                        ],
                    )
                    .is_ok_and(|o| o.status.success())
                {}
            };
            drop_rogue();
            let routes = || observe::default_routes_v6(ns).unwrap_or_default();
            let show = |rs: Vec<observe::Route>| {
                rs.iter()
                    .map(|r| format!("via {:?} ({:?})", r.gateway, r.protocol))
                    .collect::<Vec<_>>()
            };
            let before = show(routes());
            r.send(&[attack::router_advert(
                s.a.b1_mac,
                all_nodes_mac(),
                s.a.b1_ll,
                1800,
                None,
            )]);
            let after = r.until(|| routes().iter().any(|rt| rt.gateway == Some(rogue)));
            let o = Obs::new(
                after,
                format!(
                    "backend2's IPv6 default routes before {before:?}, after {:?}",
                    show(routes())
                ),
            );
            drop_rogue();
            o
        },
    ));
    for six in [false, true] {
        let fam = if six { "IPv6" } else { "IPv4" };
        v.push(attack(
            format!("UDP request over {fam} -> proxy (listener; its echo back)"),
            &["to-proxy"],
            move |r| {
                let s = r.s;
                let w = Who::Proxy;
                let (src, dst) = if six {
                    (s.a.b1_6, s.a.proxy6)
                } else {
                    (s.a.b1_4, s.a.proxy4)
                };
                let echo = Capture::start(&s.b1_ns, "eth0").expect("capture");
                let f = r.udp(s.a.b1_mac, s.a.proxy_mac, src, dst, UDP_PORT);
                let mut o = arrives(r, w, Via::Udp, vec![f]);
                let m = r.marker.clone();
                let replied = o.worked
                    && echo.wait_for(r.wait, |f| {
                        f.incoming() && f.contains(&m) && f.ip().is_some_and(|p| p.src == dst)
                    });
                o.evidence.push_str(if replied {
                    "; the reply reached backend1"
                } else {
                    "; no reply at backend1"
                });
                o
            },
        ));
    }
    v.push(attack(
        "TCP SYN as tiny IPv4 fragments (flags in the 2nd) -> proxy (SYN-ACK)",
        &["to-proxy"],
        |r| {
            let s = r.s;
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (s.a.b1_4, s.a.proxy4) else {
                unreachable!()
            };
            let port = attack::fresh_port();
            let frames =
                attack::ipv4_fragments_tcp_syn(s.a.b1_mac, s.a.proxy_mac, src, dst, port, TCP_PORT);
            syn_answered(r, Who::Proxy, s.a.proxy4, port, frames)
        },
    ));
    v
}

// ---------------------------------------------------------------------------
// Running a group of attacks: all controls, then trafficjam, then all
// protected runs.

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

struct Row {
    name: String,
    kinds: &'static [&'static str],
    control: Result<Obs, String>,
    protected: Result<Obs, String>,
    rose: Vec<(String, u64)>,
    broken: Vec<String>,
}

fn run_one<'a>(
    s: &'a Scene,
    a: &Attack,
    i: usize,
    protected: bool,
) -> (Result<Obs, String>, Run<'a>) {
    let run = Run {
        s,
        wait: if protected { WINDOW } else { CONTROL_WAIT },
        marker: format!(
            "tj-docker-{}-{i:02}-{}",
            std::process::id(),
            if protected { "p" } else { "c" }
        )
        .into_bytes(),
        protected,
        at_arm: Mutex::new(None),
        armed: AtomicBool::new(false),
    };
    let o = catch_unwind(AssertUnwindSafe(|| (a.body)(&run))).map_err(panic_text);
    (o, run)
}

fn suite(title: &str, k: u32, attacks: Vec<Attack>) {
    let start = Instant::now();
    let mut s = Scene::build(k);
    let built = start.elapsed();

    // (a) Positive controls: no trafficjam.
    let mut rows: Vec<Row> = Vec::new();
    for (i, a) in attacks.iter().enumerate() {
        let (control, _) = run_one(&s, a, i, false);
        s.proxy_speaks();
        rows.push(Row {
            name: a.name.clone(),
            kinds: a.kinds,
            control,
            protected: Err("not run".into()),
            rose: Vec::new(),
            broken: Vec::new(),
        });
    }
    let controls = start.elapsed();

    // (b) trafficjam as users run it; caches the controls poisoned are
    // emptied, so the protected runs resolve every neighbour under it.
    let took = s.start_trafficjam();
    s.flush_neighbours();
    // The image's own binary reports the same instance as the host's
    // copy that reads the counters below.
    let tj = s.tj.as_ref().expect("trafficjam container");
    let inside = docker(&["exec", &tj.name, "/trafficjam", "status", "--json"])
        .expect("docker exec trafficjam status --json");
    assert!(
        json(inside.as_bytes())["instances"]
            .as_array()
            .is_some_and(|v| v
                .iter()
                .any(|i| i["instance"].as_str() == Some(s.net.name.as_str()))),
        "`trafficjam status --json` in the container does not show {}: {inside}",
        s.net.name
    );
    let st = s.status();
    let br_netfilter = st["br_netfilter"].clone();
    let tracking = s.instance().map(|i| i["tracking"].clone());
    for (i, a) in attacks.iter().enumerate() {
        let baseline = s.drops();
        let (protected, run) = run_one(&s, a, i, true);
        let after = s.drops();
        let before = run.at_arm.lock().unwrap().take().unwrap_or(baseline);
        let row = &mut rows[i];
        row.protected = protected;
        row.rose = after
            .iter()
            .filter_map(|(k, n)| {
                let d = n.saturating_sub(before.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect();
        row.broken = s.legitimate_broken();
        s.proxy_speaks();
    }

    let mut table = format!(
        "\n{title} (network {}, bridge {}; br_netfilter {br_netfilter} (the host's own, not changed); tracking {tracking:?})\n\
         | attack | control (no trafficjam) | with trafficjam | counters that rose | expected kind |\n\
         |---|---|---|---|---|\n",
        s.net.name, s.bridge
    );
    let mut bad = Vec::new();
    for r in &rows {
        let control = match &r.control {
            Ok(o) if o.worked => format!("works ({} ms)", o.after.unwrap_or_default().as_millis()),
            Ok(_) => "NO EFFECT".into(),
            Err(_) => "PANICKED".into(),
        };
        let protected = match &r.protected {
            Ok(o) if o.worked => "GOT THROUGH",
            Ok(_) => "blocked",
            Err(_) => "PANICKED",
        };
        let rose = if r.rose.is_empty() {
            "none".to_string()
        } else {
            r.rose
                .iter()
                .map(|(k, n)| format!("{k} +{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push_str(&format!(
            "| {} | {control} | {protected} | {rose} | {} |\n",
            r.name,
            r.kinds.join(" or ")
        ));
        let what = |o: &Result<Obs, String>| match o {
            Ok(o) => o.evidence.clone(),
            Err(e) => format!("panicked: {e}"),
        };
        match &r.control {
            Ok(o) if o.worked && o.after.unwrap_or_default() > WINDOW / 2 => bad.push(format!(
                "{}: the positive control took {} ms, more than half the {} ms window: {}",
                r.name,
                o.after.unwrap_or_default().as_millis(),
                WINDOW.as_millis(),
                o.evidence
            )),
            Ok(o) if o.worked => {}
            other => bad.push(format!(
                "{}: the positive control failed: {}",
                r.name,
                what(other)
            )),
        }
        match &r.protected {
            Ok(o) if !o.worked => {
                if !r.rose.iter().any(|(k, _)| r.kinds.contains(&k.as_str())) {
                    bad.push(format!(
                        "{}: blocked, but no counter of kind {} rose (rose: {rose})",
                        r.name,
                        r.kinds.join(" or ")
                    ));
                }
            }
            Ok(o) => bad.push(format!(
                "{}: GOT THROUGH trafficjam after {} ms: {} (counters that rose: {rose})",
                r.name,
                o.after.unwrap_or_default().as_millis(),
                o.evidence
            )),
            Err(e) => bad.push(format!("{}: panicked with trafficjam: {e}", r.name)),
        }
        if !r.broken.is_empty() {
            bad.push(format!(
                "{}: legitimate flows broken after the attack: {}",
                r.name,
                r.broken.join(", ")
            ));
        }
    }
    println!("{table}");
    for r in &rows {
        for (phase, o) in [("control", &r.control), ("trafficjam", &r.protected)] {
            if let Ok(o) = o {
                println!("[{title}] {} [{phase}]: {}", r.name, o.evidence);
            }
        }
    }
    println!(
        "[{title}] {} attacks: scene built in {:.1} s, controls done at {:.1} s, trafficjam enforcing {:.1} s after `docker run`, all done in {:.1} s",
        rows.len(),
        built.as_secs_f64(),
        controls.as_secs_f64(),
        took.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    if !bad.is_empty() {
        let logs = s.tj.as_ref().map(Container::logs).unwrap_or_default();
        panic!(
            "{} problem(s) in {title}:\n{}\ntrafficjam's logs:\n{logs}",
            bad.len(),
            bad.join("\n")
        );
    }
}

#[test]
fn docker_link_local_group_and_layer2_attacks_fail() {
    suite(
        "link-local, broadcast, multicast, VLAN",
        0,
        lateral_attacks(),
    );
}

#[test]
fn docker_forgery_and_poisoning_attacks_fail() {
    suite("forgery and poisoning", 1, forgery_attacks());
}

#[test]
fn docker_router_and_request_attacks_fail() {
    suite(
        "router advertisement, requests, fragments",
        2,
        router_and_request_attacks(),
    );
}
