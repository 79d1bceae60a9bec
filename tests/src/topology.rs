//! The test bed: a "host" namespace with two bridges, veth "containers",
//! an "outside" network routed through the host, and a second host address
//! that is not a bridge gateway.
//!
//! ```text
//!   outside (198.51.100.2) ── host ── stub (host owns 203.0.113.1 here)
//!                              │
//!          br-m (managed) 10.77.1.1 fd77:1::1      br-u 10.77.2.1 fd77:2::1
//!          ├─ proxy    .10  ::10  ─────────────────┤ proxy .10 ::10
//!          ├─ backend1 .11  ::11                   └─ other .20 ::20
//!          └─ backend2 .12  ::12
//! ```
//!
//! Nothing sends traffic while the bed is built: kernel tests apply their
//! rules before the first packet, because a warm neighbour cache would hide
//! a broken IPv6 neighbour-discovery exception.

use std::io;
use std::net::IpAddr;

use crate::Netns;

/// The command-line options of the bed's policy: both managed subnets,
/// the proxy whitelisted in both families.
pub const POLICY_ARGS: [&str; 8] = [
    "--subnet",
    addr::MANAGED4,
    "--subnet",
    addr::MANAGED6,
    "--whitelist-ip",
    addr::PROXY4,
    "--whitelist-ip",
    addr::PROXY6,
];

/// Addresses of the managed network.
pub mod addr {
    /// Managed subnets.
    pub const MANAGED4: &str = "10.77.1.0/24";
    /// Managed subnets (IPv6).
    pub const MANAGED6: &str = "fd77:1::/64";
    /// The host's gateway address on the managed bridge.
    pub const GW4: &str = "10.77.1.1";
    /// The host's gateway address on the managed bridge (IPv6).
    pub const GW6: &str = "fd77:1::1";
    /// The proxy on the managed bridge.
    pub const PROXY4: &str = "10.77.1.10";
    /// The proxy on the managed bridge (IPv6).
    pub const PROXY6: &str = "fd77:1::10";
    /// First backend.
    pub const B1_4: &str = "10.77.1.11";
    /// First backend (IPv6).
    pub const B1_6: &str = "fd77:1::11";
    /// Second backend.
    pub const B2_4: &str = "10.77.1.12";
    /// Second backend (IPv6).
    pub const B2_6: &str = "fd77:1::12";
    /// The proxy on the unmanaged bridge.
    pub const PROXY_U4: &str = "10.77.2.10";
    /// The proxy on the unmanaged bridge (IPv6).
    pub const PROXY_U6: &str = "fd77:2::10";
    /// The container on the unmanaged bridge.
    pub const OTHER4: &str = "10.77.2.20";
    /// The container on the unmanaged bridge (IPv6).
    pub const OTHER6: &str = "fd77:2::20";
    /// The host's gateway on the unmanaged bridge.
    pub const GW_U4: &str = "10.77.2.1";
    /// The host's gateway on the unmanaged bridge (IPv6).
    pub const GW_U6: &str = "fd77:2::1";
    /// A host address that is not a gateway.
    pub const HOST_X4: &str = "203.0.113.1";
    /// A host address that is not a gateway (IPv6).
    pub const HOST_X6: &str = "2001:db8:203::1";
    /// A machine outside, routed through the host.
    pub const OUTSIDE4: &str = "198.51.100.2";
    /// A machine outside (IPv6).
    pub const OUTSIDE6: &str = "2001:db8:100::2";
}

/// The `ip` command creating a veth pair: `host_end` in the namespace
/// running it, `peer_if` in `peer`.
fn veth(host_end: &str, peer: &Netns, peer_if: &str) -> String {
    format!(
        "link add {host_end} type veth peer name {peer_if} netns {}",
        peer.name()
    )
}

/// Parse one of the [`addr`] constants.
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid address constant")
}

/// The namespaces of the test bed; all are deleted when it is dropped.
pub struct Testbed {
    /// The host: bridges, routing, and where trafficjam runs.
    pub host: Netns,
    /// The whitelisted proxy, on both bridges.
    pub proxy: Netns,
    /// A backend on the managed bridge.
    pub backend1: Netns,
    /// Another backend on the managed bridge.
    pub backend2: Netns,
    /// A container on the unmanaged bridge only.
    pub other: Netns,
    /// A machine outside, routed through the host.
    pub outside: Netns,
    /// Holds the far end of the link carrying the host's extra address.
    pub stub: Netns,
}

impl Testbed {
    /// Build the whole bed. Fails with the failing command's message.
    pub fn build() -> io::Result<Testbed> {
        crate::require_root();
        let bed = Testbed {
            host: Netns::new("tjhost")?,
            proxy: Netns::new("tjproxy")?,
            backend1: Netns::new("tjb1")?,
            backend2: Netns::new("tjb2")?,
            other: Netns::new("tjother")?,
            outside: Netns::new("tjout")?,
            stub: Netns::new("tjstub")?,
        };
        bed.host_setup()?;
        // Every link, address and route is one line of an `ip -batch` per
        // namespace: the host's first (bridges, veths, its ends), then
        // each container's. One process per namespace instead of one per
        // change keeps a bed at a fraction of a second.
        use addr::*;
        let mut host = bed.bridges();
        let mut peers: Vec<(&Netns, Vec<String>)> = Vec::new();
        let containers: [(&Netns, &str, &str, &str, &str, &str, bool); 5] = [
            (&bed.proxy, "eth0", "vproxy", "br-m", PROXY4, PROXY6, true),
            (
                &bed.proxy, "eth1", "vproxyu", "br-u", PROXY_U4, PROXY_U6, false,
            ),
            (&bed.backend1, "eth0", "vb1", "br-m", B1_4, B1_6, true),
            (&bed.backend2, "eth0", "vb2", "br-m", B2_4, B2_6, true),
            (&bed.other, "eth0", "vother", "br-u", OTHER4, OTHER6, true),
        ];
        for (c, ifname, host_end, bridge, v4, v6, default_route) in containers {
            host.push(veth(host_end, c, ifname));
            host.push(format!("link set {host_end} master {bridge} up"));
            let mut cmds = vec![
                format!("addr add {v4}/24 dev {ifname}"),
                format!("addr add {v6}/64 dev {ifname} nodad"),
                format!("link set {ifname} up"),
            ];
            if default_route {
                let (gw4, gw6) = if bridge == "br-m" {
                    (GW4, GW6)
                } else {
                    (GW_U4, GW_U6)
                };
                cmds.push(format!("route add default via {gw4}"));
                cmds.push(format!("route add ::/0 via {gw6}"));
            }
            match peers.iter_mut().find(|(n, _)| n.name() == c.name()) {
                Some((_, list)) => list.extend(cmds),
                None => peers.push((c, cmds)),
            }
        }
        let (outside_host, outside_peers) = bed.outside();
        host.extend(outside_host);
        peers.extend(outside_peers);
        bed.host.ip_batch(&host)?;
        for (ns, cmds) in peers {
            ns.ip_batch(&cmds)?;
        }
        Ok(bed)
    }

    fn host_setup(&self) -> io::Result<()> {
        let h = &self.host;
        h.sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ])?;
        // Bridged traffic must pass the IP hooks (br_netfilter).
        h.sysctls(&[
            ("net.bridge.bridge-nf-call-iptables", "1"),
            ("net.bridge.bridge-nf-call-ip6tables", "1"),
        ])
        .map_err(|e| {
            io::Error::other(format!(
                "{e}: br_netfilter is needed for bridged traffic to reach the IP hooks (modprobe br_netfilter)"
            ))
        })
    }

    /// The host's two bridges, with their gateway addresses, up.
    fn bridges(&self) -> Vec<String> {
        let mut cmds = Vec::new();
        for (br, v4, v6) in [
            ("br-m", "10.77.1.1/24", "fd77:1::1/64"),
            ("br-u", "10.77.2.1/24", "fd77:2::1/64"),
        ] {
            cmds.push(format!("link add {br} type bridge"));
            cmds.push(format!("addr add {v4} dev {br}"));
            cmds.push(format!("addr add {v6} dev {br} nodad"));
            cmds.push(format!("link set {br} up"));
        }
        cmds
    }

    /// The outside machine and the stub link of the host's extra address:
    /// the host's commands and each peer's.
    fn outside(&self) -> (Vec<String>, Vec<(&Netns, Vec<String>)>) {
        let host = vec![
            veth("vout", &self.outside, "eth0"),
            "addr add 198.51.100.1/24 dev vout".into(),
            "addr add 2001:db8:100::1/64 dev vout nodad".into(),
            "link set vout up".into(),
            // The host's extra address lives on a link of its own.
            veth("vx", &self.stub, "eth0"),
            "addr add 203.0.113.1/24 dev vx".into(),
            "addr add 2001:db8:203::1/64 dev vx nodad".into(),
            "link set vx up".into(),
        ];
        let outside = vec![
            "addr add 198.51.100.2/24 dev eth0".into(),
            "addr add 2001:db8:100::2/64 dev eth0 nodad".into(),
            "link set eth0 up".into(),
            "route add 10.77.0.0/16 via 198.51.100.1".into(),
            "route add fd77::/16 via 2001:db8:100::1".into(),
        ];
        let stub = vec!["link set eth0 up".into()];
        (host, vec![(&self.outside, outside), (&self.stub, stub)])
    }

    /// `/run/netns/<host>`: what `trafficjam --netns` takes.
    pub fn host_netns_path(&self) -> std::path::PathBuf {
        self.host.path()
    }

    /// The names of every namespace of the bed (to check none outlives it).
    pub fn names(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|(_, ns)| ns.name().to_string())
            .collect()
    }

    /// Every namespace of the bed, with a short label.
    pub fn all(&self) -> [(&'static str, &Netns); 7] {
        [
            ("host", &self.host),
            ("proxy", &self.proxy),
            ("backend1", &self.backend1),
            ("backend2", &self.backend2),
            ("other", &self.other),
            ("outside", &self.outside),
            ("stub", &self.stub),
        ]
    }

    /// Forget every neighbour everywhere, so the next probes start cold.
    pub fn flush_neighbours(&self) -> io::Result<()> {
        for (_, ns) in self.all() {
            ns.ip(&["neigh", "flush", "all"])?;
        }
        Ok(())
    }

    /// Run the `trafficjam` binary at `bin` with `ARGS --netns <host>`;
    /// panic with its stderr unless it succeeds; return its stdout.
    pub fn trafficjam(&self, bin: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(bin)
            .args(args)
            .arg("--netns")
            .arg(self.host_netns_path())
            .output()
            .expect("run trafficjam");
        assert!(
            out.status.success(),
            "trafficjam {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the host namespace has table `inet NAME`.
    pub fn wait_for_table(&self, name: &str, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        while !self
            .nft(&["list", "table", "inet", name])
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            assert!(start.elapsed() < limit, "table inet {name} never appeared");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// `nft ARGS` inside the host namespace.
    pub fn nft(&self, args: &[&str]) -> io::Result<std::process::Output> {
        self.host.exec("nft", args)
    }
}

/// Listeners in every namespace that receives probes.
pub struct Listeners {
    /// One listener per namespace label.
    pub by_label: Vec<(&'static str, crate::Listener)>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for (_, l) in &self.by_label {
            l.signal_stop();
        }
    }
}

impl Listeners {
    /// What arrived at the namespace with this label.
    pub fn arrivals(&self, label: &str) -> crate::Arrivals {
        self.by_label
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, li)| li.arrivals())
            .unwrap_or_default()
    }

    /// Forget every arrival.
    pub fn reset(&self) {
        for (_, l) in &self.by_label {
            l.reset();
        }
    }
}

impl Testbed {
    /// Start listeners in every namespace that is a probe target.
    pub fn listen(&self) -> io::Result<Listeners> {
        let mut by_label = Vec::new();
        for (label, ns) in self.all() {
            if label != "stub" {
                by_label.push((label, crate::Listener::start(ns)?));
            }
        }
        Ok(Listeners { by_label })
    }

    /// The namespace with this label.
    pub fn ns(&self, label: &str) -> &Netns {
        self.all()
            .into_iter()
            .find(|(l, _)| *l == label)
            .map(|(_, n)| n)
            .unwrap_or_else(|| panic!("no namespace labelled {label}"))
    }
}

/// What the policy table says for every flow of the bed. With
/// `enforced == false` (no rules, or after `clear`) every flow must work:
/// that is the positive control of every "blocked" expectation.
pub fn policy_flows(enforced: bool, allow_host: bool) -> Vec<crate::Flow> {
    use crate::Proto;
    use addr::*;
    let blocked = !enforced;
    let host = !enforced || allow_host;
    // (from, to-label, v4, v6, allowed)
    let table: [(&str, &str, &str, &str, bool); 13] = [
        ("proxy", "backend1", B1_4, B1_6, true),
        ("proxy", "backend2", B2_4, B2_6, true),
        ("backend1", "backend2", B2_4, B2_6, blocked),
        ("backend2", "backend1", B1_4, B1_6, blocked),
        ("backend1", "proxy", PROXY4, PROXY6, blocked),
        ("backend2", "proxy", PROXY4, PROXY6, blocked),
        ("backend1", "host gateway", GW4, GW6, host),
        ("backend2", "host other address", HOST_X4, HOST_X6, host),
        ("proxy", "host gateway", GW4, GW6, host),
        ("backend1", "outside", OUTSIDE4, OUTSIDE6, true),
        ("outside", "backend2", B2_4, B2_6, true),
        ("other", "proxy (unmanaged)", PROXY_U4, PROXY_U6, true),
        ("proxy", "other (unmanaged)", OTHER4, OTHER6, true),
    ];
    let mut flows = Vec::new();
    for (from, to, v4, v6, allowed) in table {
        for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            for a in [v4, v6] {
                flows.push(crate::Flow {
                    label: format!("{from} -> {to}"),
                    from,
                    to: ip(a),
                    proto,
                    allowed,
                });
            }
        }
    }
    // The unmanaged side reaching its gateway is never affected.
    for a in [GW_U4, GW_U6] {
        flows.push(crate::Flow {
            label: "other -> host (unmanaged gateway)".into(),
            from: "other",
            to: ip(a),
            proto: Proto::Tcp,
            allowed: true,
        });
    }
    flows
}
