//! trafficjam-cni in the real CNI chain (Debian's `bridge`, `host-local`
//! and `portmap`, run the way a runtime runs them) on two bridges with
//! several containers each and a published port: the full matrix for each
//! ingressPolicy over IPv4 and IPv6, DEL leaving no trace, CHECK catching
//! tampering, and the same testbed with the CNI `firewall` plugin's
//! `same-bridge` mode side by side.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use trafficjam_testbed::cni::{result_addrs, Runtime};
use trafficjam_testbed::matrix::{self, render, Flow};
use trafficjam_testbed::{require_root, Listener, Netns, Proto};

const PLUGIN: &str = env!("CARGO_BIN_EXE_trafficjam-cni");
/// The host's "public" addresses, where ports are published.
const PUBLIC4: &str = "198.51.100.7";
const PUBLIC6: &str = "2001:db8:7::7";
const PUBLISHED: u16 = 18080;
const TIMEOUT: Duration = Duration::from_millis(700);

/// Which isolation plugin ends the chain.
#[derive(Clone, Copy, PartialEq)]
enum Isolation<'a> {
    Trafficjam(&'a str),
    /// The CNI firewall plugin with `"ingressPolicy": "same-bridge"`.
    Firewall,
}

/// The network list of bridge `n` (tjcn1 / tjcn2).
fn network(rt: &Runtime, n: u8, iso: Isolation) -> Value {
    let last = match iso {
        Isolation::Trafficjam(policy) => json!({
            "type": "trafficjam",
            "ingressPolicy": policy,
            "allowHostTraffic": false,
            "dataDir": rt.scratch("trafficjam").to_str().unwrap(),
        }),
        Isolation::Firewall => json!({
            "type": "firewall",
            "backend": "iptables",
            "ingressPolicy": "same-bridge",
        }),
    };
    json!({
        "cniVersion": "1.0.0",
        "name": format!("tjnet{n}"),
        "plugins": [
            {
                "type": "bridge",
                "bridge": format!("tjcn{n}"),
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": rt.scratch("ipam").to_str().unwrap(),
                    "ranges": [
                        [{"subnet": format!("10.91.{n}.0/24")}],
                        [{"subnet": format!("fd91:{n}::/64")}]
                    ],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            last
        ]
    })
}

struct Container {
    name: &'static str,
    ns: Netns,
    addrs: Vec<IpAddr>,
    net: Value,
    args: String,
    runtime: Value,
    _listener: Listener,
}

/// Two bridges: a1 (the proxy), a2, a3 on tjcn1; b1 (publishing 8080 as
/// 18080 on the host) and b2 on tjcn2.
struct Bed {
    rt: Runtime,
    containers: Vec<Container>,
    _host_listener: Listener,
}

impl Bed {
    fn new(prefix: &str, iso: Isolation) -> Bed {
        require_root();
        let rt = Runtime::new(prefix, Path::new(PLUGIN)).expect("a CNI runtime");
        rt.host.ip(&["link", "set", "lo", "up"]).unwrap();
        rt.host
            .ip(&["addr", "add", &format!("{PUBLIC4}/32"), "dev", "lo"])
            .unwrap();
        rt.host
            .ip(&["addr", "add", &format!("{PUBLIC6}/128"), "dev", "lo"])
            .unwrap();
        let host_listener = Listener::start(&rt.host).unwrap();
        let mut containers = Vec::new();
        for (name, n, whitelisted, publish) in [
            ("a1", 1, true, false),
            ("a2", 1, false, false),
            ("a3", 1, false, false),
            ("b1", 2, false, true),
            ("b2", 2, false, false),
        ] {
            let ns = Netns::new(&format!("{prefix}{name}")).unwrap();
            let net = network(&rt, n, iso);
            let args = if whitelisted {
                "IgnoreUnknown=1;TRAFFICJAM_WHITELIST=true"
            } else {
                "IgnoreUnknown=1"
            };
            let runtime = if publish {
                json!({"portMappings": [
                    {"hostPort": PUBLISHED, "containerPort": 8080, "protocol": "tcp"}
                ]})
            } else {
                json!({})
            };
            let id = format!("{prefix}-{name}");
            let result = rt
                .add(&net, &id, &ns, args, &runtime)
                .unwrap_or_else(|e| panic!("ADD {name}: {e}"));
            let listener = Listener::start(&ns).unwrap();
            containers.push(Container {
                name,
                ns,
                addrs: result_addrs(&result),
                net,
                args: args.to_string(),
                runtime,
                _listener: listener,
            });
        }
        Bed {
            rt,
            containers,
            _host_listener: host_listener,
        }
    }

    fn get(&self, name: &str) -> &Container {
        self.containers.iter().find(|c| c.name == name).unwrap()
    }

    fn id(&self, c: &Container) -> String {
        format!(
            "{}-{}",
            self.rt.host.name().split('-').next().unwrap(),
            c.name
        )
    }

    /// Flows from `from` to `to` over TCP and UDP, IPv4 and IPv6.
    fn flows(&self, from: &'static str, to: &str, allowed: bool) -> Vec<Flow> {
        let mut out = Vec::new();
        for addr in &self.get(to).addrs {
            for proto in [Proto::Tcp, Proto::Udp] {
                out.push(Flow {
                    label: format!("{from} -> {to}"),
                    from,
                    to: *addr,
                    proto,
                    allowed,
                });
            }
        }
        out
    }

    /// From `from` to the host's gateway address on its own bridge.
    fn to_host(&self, from: &'static str, allowed: bool) -> Vec<Flow> {
        let n = if from.starts_with('a') { 1 } else { 2 };
        [format!("10.91.{n}.1"), format!("fd91:{n}::1")]
            .into_iter()
            .map(|a| Flow {
                label: format!("{from} -> host"),
                from,
                to: a.parse().unwrap(),
                proto: Proto::Tcp,
                allowed,
            })
            .collect()
    }

    /// From `from` to b1's port published on the host's public addresses
    /// (b2: from b1's own bridge, through the host: a hairpin).
    fn to_published(&self, from: &'static str, allowed: bool) -> Vec<Flow> {
        [PUBLIC4, PUBLIC6]
            .into_iter()
            .map(|a| Flow {
                label: format!("{from} -> host:{PUBLISHED} (b1)"),
                from,
                to: a.parse().unwrap(),
                proto: Proto::TcpPort(PUBLISHED),
                allowed,
            })
            .collect()
    }

    fn run(&self, flows: &[Flow]) -> Vec<matrix::Outcome> {
        matrix::run(flows, |name| &self.get(name).ns, TIMEOUT)
    }

    fn del_all(&self) {
        for c in &self.containers {
            self.rt
                .del(&c.net, &self.id(c), &c.ns, &c.args, &c.runtime)
                .unwrap_or_else(|e| panic!("DEL {}: {e}", c.name));
        }
    }

    fn nft_tables(&self) -> String {
        let out = self.rt.host.exec("nft", &["list", "tables"]).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The matrix every policy is tested with: inside tjcn1 (proxy and not),
/// inside tjcn2, across the bridges both ways, to the host, and to a port
/// published on the host from the other bridge.
/// `host`: whether containers reach the host (trafficjam: allowHostTraffic
/// is false in these networks); `published`: b1's published port from the
/// other bridge; `hairpin`: from b1's own bridge, through the host.
fn matrix(
    bed: &Bed,
    inside_proxy: bool,
    inside_other: bool,
    published: bool,
    hairpin: bool,
    host: bool,
) -> Vec<Flow> {
    let mut f = Vec::new();
    f.extend(bed.flows("a1", "a2", inside_proxy));
    f.extend(bed.flows("a1", "a3", inside_proxy));
    f.extend(bed.flows("a2", "a3", inside_other));
    f.extend(bed.flows("a2", "a1", inside_other));
    f.extend(bed.flows("b2", "b1", inside_other));
    f.extend(bed.flows("a2", "b1", false));
    f.extend(bed.flows("a1", "b2", false));
    f.extend(bed.flows("b1", "a2", false));
    f.extend(bed.to_host("a2", host));
    f.extend(bed.to_host("b2", host));
    f.extend(bed.to_published("a2", published));
    f.extend(bed.to_published("b2", hairpin));
    f
}

fn assert_clean_after_del(bed: &Bed) {
    bed.del_all();
    let tables = bed.nft_tables();
    assert!(
        !tables.contains("trafficjam"),
        "DEL left tables behind:\n{tables}"
    );
    let state = bed.rt.scratch("trafficjam").join("bridges");
    let left: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "DEL left state behind: {left:?}");
}

#[test]
fn same_bridge_isolates_bridges_and_keeps_published_ports() {
    let bed = Bed::new("tjsb", Isolation::Trafficjam("same-bridge"));
    let out = bed.run(&matrix(&bed, true, true, true, true, false));
    matrix::assert_matrix("trafficjam-cni same-bridge", &out);
    assert_clean_after_del(&bed);
}

#[test]
fn isolated_allows_no_container_to_container_traffic() {
    let bed = Bed::new("tjis", Isolation::Trafficjam("isolated"));
    let out = bed.run(&matrix(&bed, false, false, true, false, false));
    matrix::assert_matrix("trafficjam-cni isolated", &out);
    assert_clean_after_del(&bed);
}

/// With bridged traffic not passed to the IP layer, the bridge-family
/// table alone keeps the containers of an isolated bridge apart.
#[test]
fn isolated_holds_without_br_netfilter() {
    let bed = Bed::new("tjnb", Isolation::Trafficjam("isolated"));
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ] {
        bed.rt.host.sysctl(key, "0").unwrap();
    }
    let out = bed.run(&matrix(&bed, false, false, true, false, false));
    matrix::assert_matrix("trafficjam-cni isolated, br_netfilter off", &out);
    // The drops were counted by the bridge layer.
    let t = bed
        .rt
        .host
        .exec("nft", &["list", "table", "bridge", "trafficjam-cni"])
        .unwrap();
    let t = String::from_utf8_lossy(&t.stdout);
    assert!(
        t.lines()
            .any(|l| l.contains("counter packets") && !l.contains("packets 0 ")),
        "{t}"
    );
    assert_clean_after_del(&bed);
}

#[test]
fn proxy_only_lets_only_the_whitelisted_container_connect() {
    let bed = Bed::new("tjpo", Isolation::Trafficjam("proxy-only"));
    let out = bed.run(&matrix(&bed, true, false, true, false, false));
    matrix::assert_matrix("trafficjam-cni proxy-only", &out);
    assert_clean_after_del(&bed);
}

/// The anchor, side by side: the CNI firewall plugin's same-bridge mode on
/// the same testbed. Its known behaviour is asserted (published ports of
/// another bridge are blocked; its rules stay after the last DEL), and
/// both matrices are printed for comparison.
#[test]
fn firewall_plugin_same_bridge_side_by_side() {
    let ours = Bed::new("tjsx", Isolation::Trafficjam("same-bridge"));
    let ours_out = ours.run(&matrix(&ours, true, true, true, true, false));
    drop(ours);
    let bed = Bed::new("tjfw", Isolation::Firewall);
    // Expected of the firewall plugin: same as ours, except that the port
    // published from the other bridge is blocked (the anchor's open issue)
    // and the host is reachable (it has no host policy).
    let out = bed.run(&matrix(&bed, true, true, false, true, true));
    println!("{}", render("trafficjam-cni same-bridge", &ours_out));
    println!(
        "{}",
        render("CNI firewall plugin, ingressPolicy same-bridge", &out)
    );
    matrix::assert_matrix("firewall plugin same-bridge", &out);
    bed.del_all();
    let rules = bed.rt.host.exec("iptables-save", &[]).unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    println!(
        "iptables rules left after the last DEL:\n{}",
        rules
            .lines()
            .filter(|l| l.contains("ISOLATION"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        rules.contains("CNI-ISOLATION-STAGE-1"),
        "the firewall plugin now cleans up?\n{rules}"
    );
}
