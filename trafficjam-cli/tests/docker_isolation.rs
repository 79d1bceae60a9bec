//! trafficjam as users run it: the FROM-scratch image on the host network
//! with NET_ADMIN and the Docker socket, configured by the old tool's
//! environment variables, against this machine's Docker Engine. The old
//! tool's acceptance matrix, the reaction to new and departing proxies, a
//! rebuild of Docker's own rules, ALLOW_HOST_TRAFFIC, and SIGUSR1 clearing.
//!
//! Images are built locally (tests/src/docker.rs); every network, container
//! and host address is the test's own and removed on drop.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use trafficjam_testbed::cli::has_inet_table as has_table;
use trafficjam_testbed::docker::{
    docker, images, run_trafficjam, unique, Container, HostAddress, Network, TableGuard,
    BUSYBOX_IMAGE,
};
use trafficjam_testbed::probe::{tcp_connect, Proto};
use trafficjam_testbed::{
    assert_matrix, ip, matrix, require_root, wait_until, Flow, Listener, Netns,
};

const TIMEOUT: Duration = Duration::from_millis(600);

/// Fields drop in declaration order: the table guard after every
/// trafficjam container is gone, containers before their networks.
struct Scene {
    proxy: Container,
    b1: Container,
    b2: Container,
    other: Container,
    public: Network,
    _private: Network,
    label: String,
    port1: u16,
    port2: u16,
    host: HostAddress,
    addrs: Addrs,
}

#[derive(Clone)]
struct Addrs {
    proxy4: String,
    proxy6: String,
    proxy_private: String,
    b1_4: String,
    b1_6: String,
    b2_4: String,
    b2_6: String,
    other: String,
    gw4: String,
}

impl Scene {
    fn build() -> Scene {
        require_root();
        images().expect("build the test images");
        let n = std::process::id() % 200;
        let public = Network::create(
            "tjpub",
            &[&format!("172.31.{n}.0/24"), &format!("fd31:{n:x}::/64")],
        )
        .expect("create the public network");
        let private = Network::create("tjpriv", &[&format!("172.30.{n}.0/24")])
            .expect("create the private network");
        let label = unique("proxy");
        let port1 = 20000 + (std::process::id() % 20000) as u16 * 2;
        let port2 = port1 + 1;
        let proxy = Container::run(
            "tjproxy",
            &[
                "--network",
                &public.name,
                "--label",
                &format!("tj.test={label}"),
            ],
            BUSYBOX_IMAGE,
            &[],
        )
        .expect("start the proxy");
        docker(&["network", "connect", &private.name, &proxy.name]).expect("connect proxy");
        let p1 = format!("{port1}:8080");
        let p2 = format!("{port2}:8080");
        let b1 = Container::run(
            "tjb1",
            &["--network", &public.name, "-p", &p1],
            BUSYBOX_IMAGE,
            &[],
        )
        .expect("start backend 1");
        let b2 = Container::run(
            "tjb2",
            &["--network", &public.name, "-p", &p2],
            BUSYBOX_IMAGE,
            &[],
        )
        .expect("start backend 2");
        let other = Container::run("tjother", &["--network", &private.name], BUSYBOX_IMAGE, &[])
            .expect("start the private container");
        let host = HostAddress::add(&format!("198.51.100.{}", 10 + n % 200)).expect("host address");
        let (proxy4, proxy6) = proxy.addrs(&public.name).unwrap();
        let (b1_4, b1_6) = b1.addrs(&public.name).unwrap();
        let (b2_4, b2_6) = b2.addrs(&public.name).unwrap();
        let addrs = Addrs {
            proxy4,
            proxy6: proxy6.expect("proxy IPv6"),
            proxy_private: proxy.addrs(&private.name).unwrap().0,
            b1_4,
            b1_6: b1_6.expect("backend IPv6"),
            b2_4,
            b2_6: b2_6.expect("backend IPv6"),
            other: other.addrs(&private.name).unwrap().0,
            gw4: b1.gateway(&public.name).unwrap(),
        };
        Scene {
            public,
            _private: private,
            proxy,
            b1,
            b2,
            other,
            label,
            port1,
            port2,
            host,
            addrs,
        }
    }

    fn instance(&self) -> String {
        format!("trafficjam-{}", self.public.name)
    }

    /// The trafficjam image, run as the README says.
    fn trafficjam(&self, allow_host: bool) -> Container {
        self.trafficjam_with(allow_host, &[])
    }

    /// The image with arguments for `trafficjam` (the default is `run`).
    fn trafficjam_with(&self, allow_host: bool, cmd: &[&str]) -> Container {
        let mut env = vec![
            format!("NETWORK={}", self.public.name),
            format!("WHITELIST_FILTER=label=tj.test={}", self.label),
            "TZ=America/Los_Angeles".into(),
        ];
        if allow_host {
            env.push("ALLOW_HOST_TRAFFIC=true".into());
        }
        run_trafficjam(&env, cmd).expect("start trafficjam")
    }

    fn flows(&self, enforced: bool, allow_host: bool) -> Vec<Flow> {
        let a = &self.addrs;
        let blocked = !enforced;
        let host = !enforced || allow_host;
        let mut flows = Vec::new();
        let mut add =
            |from: &'static str, to: &str, label: &str, protos: &[Proto], allowed: bool| {
                for p in protos {
                    flows.push(Flow {
                        label: format!("{from} -> {label}"),
                        from,
                        to: ip(to),
                        proto: *p,
                        allowed,
                    });
                }
            };
        let all = [Proto::Tcp, Proto::Udp, Proto::Icmp];
        add("proxy", &a.b1_4, "backend1", &all, true);
        add("proxy", &a.b1_6, "backend1", &all, true);
        add("proxy", &a.b2_4, "backend2", &all, true);
        add("proxy", &a.b2_6, "backend2", &all, true);
        add("backend1", &a.b2_4, "backend2", &all, blocked);
        add("backend1", &a.b2_6, "backend2", &all, blocked);
        add("backend2", &a.b1_4, "backend1", &all, blocked);
        add("backend2", &a.b1_6, "backend1", &all, blocked);
        add("backend1", &a.proxy4, "proxy", &all, blocked);
        add("backend1", &a.proxy6, "proxy", &all, blocked);
        let published = [Proto::TcpPort(self.port2)];
        add(
            "backend1",
            &a.gw4,
            "host gateway, backend2's published port",
            &published,
            host,
        );
        add(
            "backend1",
            &self.host.addr,
            "another host address, published port",
            &published,
            host,
        );
        let published = [Proto::TcpPort(self.port1)];
        add(
            "backend2",
            &a.gw4,
            "host gateway, backend1's published port",
            &published,
            host,
        );
        add(
            "other",
            &a.proxy_private,
            "proxy (private network)",
            &all,
            true,
        );
        add("proxy", &a.other, "other (private network)", &all, true);
        flows
    }
}

/// Namespaces and listeners of the scene's containers (re-made after a
/// container restarts: it gets a new namespace).
struct Probes {
    ns: Vec<(&'static str, Netns)>,
    listeners: Vec<Listener>,
}

impl Probes {
    fn start(s: &Scene) -> Probes {
        let ns = vec![
            ("proxy", s.proxy.netns().unwrap()),
            ("backend1", s.b1.netns().unwrap()),
            ("backend2", s.b2.netns().unwrap()),
            ("other", s.other.netns().unwrap()),
        ];
        let listeners = ns
            .iter()
            .map(|(_, n)| Listener::start(n).expect("listener"))
            .collect();
        Probes { ns, listeners }
    }

    /// Sources of the UDP datagrams that reached the container `label`.
    fn udp_arrivals(&self, label: &str) -> Vec<IpAddr> {
        let i = self
            .ns
            .iter()
            .position(|(l, _)| *l == label)
            .expect("label");
        self.listeners[i].arrivals().udp
    }

    fn reset(&self) {
        self.listeners.iter().for_each(Listener::reset);
    }

    fn ns(&self, label: &str) -> &Netns {
        &self.ns.iter().find(|(l, _)| *l == label).expect("label").1
    }

    fn check(&self, title: &str, flows: &[Flow]) {
        let outcomes = matrix::run(flows, |l| self.ns(l), TIMEOUT);
        assert_matrix(title, &outcomes);
    }
}

#[test]
fn docker_acceptance_matrix_reaction_and_clear() {
    let s = Scene::build();
    let _table = TableGuard::inet(&s.instance());
    let probes = Probes::start(&s);
    // Positive control: before trafficjam, every flow works.
    probes.check(
        "no trafficjam: everything reachable",
        &s.flows(false, false),
    );

    // trafficjam as users run it (with the blocked-connection log on).
    let tj = s.trafficjam_with(false, &["run", "--log-blocked"]);
    let instance = s.instance();
    let took = wait_until("trafficjam's table", Duration::from_secs(20), || {
        has_table(&instance)
    });
    println!("trafficjam image: table installed {took:?} after `docker run` returned");
    // Wait for the whitelist to be in (the first apply includes it).
    probes.check("trafficjam running", &s.flows(true, false));

    // The blocked attempts of the matrix were reported with container names.
    let b1_name = &s.b1.name;
    let b2_name = &s.b2.name;
    let wanted = format!(
        "blocked {b1_name} ({}) → {b2_name} ({}) tcp/8080",
        s.addrs.b1_4, s.addrs.b2_4
    );
    // The matrix's blocked attempts come all at once and share the log's
    // rate (10 a second, per rule), so this one may have been left out:
    // attempted again, alone, until its line shows. Each attempt must
    // still fail.
    let b2 = ip(&s.addrs.b2_4);
    wait_until(
        "the blocked-connection log line",
        Duration::from_secs(5),
        || {
            if tj.logs().contains(&wanted) {
                return true;
            }
            assert!(
                !tcp_connect(probes.ns("backend1"), b2, Duration::from_millis(200)),
                "backend1 reached backend2 under trafficjam"
            );
            false
        },
    );

    // A backend forges the proxy's addresses (IP, then IP and MAC) at the
    // other backend: trafficjam bound the proxy to its bridge port, so
    // nothing arrives.
    let forged = forge_from_b1(&probes, &s);
    assert!(
        forged.is_empty(),
        "forged proxy frames reached backend2: {forged:?}"
    );

    // A second proxy: how long until it reaches a backend?
    let ports_before = bridge_ports(&instance);
    let proxy2 = Container::run(
        "tjproxy2",
        &[
            "--network",
            &s.public.name,
            "--label",
            &format!("tj.test={}", s.label),
        ],
        BUSYBOX_IMAGE,
        &[],
    )
    .unwrap();
    let started = Instant::now();
    let ns2 = proxy2.netns().unwrap();
    let b1 = ip(&s.addrs.b1_4);
    wait_until(
        "the new proxy to reach backend1",
        Duration::from_secs(10),
        || tcp_connect(&ns2, b1, Duration::from_millis(50)),
    );
    println!(
        "reaction: a new proxy reached a backend {:?} after it started",
        started.elapsed()
    );
    // Its port, once gone, leaves the rules too (within a second of its
    // veth going: see TIDY_WITHIN).
    let new_ports: Vec<String> = bridge_ports(&instance)
        .into_iter()
        .filter(|p| !ports_before.contains(p))
        .collect();
    assert_eq!(new_ports.len(), 1, "proxy2's port: {new_ports:?}");
    drop(proxy2);
    wait_until(
        "proxy2's port to leave the rules",
        Duration::from_secs(5),
        || !bridge_ports(&instance).contains(&new_ports[0]),
    );

    // Docker rebuilds its own rules for a restarted container with a
    // published port: isolation must still hold afterwards.
    docker(&["restart", "-t", "0", &s.b2.name]).unwrap();
    drop(probes);
    let probes = Probes::start(&s);
    let b2 = Scene {
        addrs: Addrs {
            b2_4: s.b2.addrs(&s.public.name).unwrap().0,
            b2_6: s.b2.addrs(&s.public.name).unwrap().1.unwrap(),
            ..s.addrs.clone()
        },
        ..s
    };
    let s = b2;
    probes.check(
        "after Docker rebuilt its rules (backend2 restarted)",
        &s.flows(true, false),
    );

    // The proxy leaves; a backend takes its IPv4 address and probes from its
    // first instant: it must never reach another backend.
    docker(&["stop", "-t", "0", &s.proxy.name]).unwrap();
    let script = format!(
        "while :; do nc -w 1 {} 8080 </dev/null && echo REACHED; nc -w 1 {} 8080 </dev/null && echo REACHED; done",
        s.addrs.b1_4, s.addrs.b2_4
    );
    let imposter = Container::run(
        "tjimposter",
        &["--network", &s.public.name, "--ip", &s.addrs.proxy4],
        BUSYBOX_IMAGE,
        &["sh", "-c", &script],
    )
    .expect("start a backend on the proxy's old address");
    let ns_imp = imposter.netns().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut tries, mut reached) = (0, 0);
    while Instant::now() < deadline {
        for to in [&s.addrs.b1_4, &s.addrs.b2_4] {
            tries += 1;
            if tcp_connect(&ns_imp, ip(to), Duration::from_millis(100)) {
                reached += 1;
            }
        }
    }
    let logs = imposter.logs();
    println!("imposter on the proxy's old address: {reached} of {tries} probes reached a backend");
    assert_eq!(
        reached, 0,
        "a backend on the proxy's old address reached another backend"
    );
    assert!(
        !logs.contains("REACHED"),
        "the imposter's own probes got through: {logs}"
    );
    drop(imposter);
    docker(&["start", &s.proxy.name]).unwrap();
    drop(probes);
    let probes = Probes::start(&s);

    // ALLOW_HOST_TRAFFIC: host ports open, backends still apart.
    docker(&["stop", "-t", "2", &tj.name]).unwrap();
    assert!(
        has_table(&instance),
        "stopping trafficjam removed its rules"
    );
    let tj_host = s.trafficjam(true);
    wait_until(
        "host traffic to be allowed",
        Duration::from_secs(20),
        || tcp_connect_port_gw(&probes, &s),
    );
    probes.check("ALLOW_HOST_TRAFFIC=true", &s.flows(true, true));

    // SIGUSR1 removes the rules and stops the daemon; everything opens.
    docker(&["kill", "-s", "USR1", &tj_host.name]).unwrap();
    wait_until(
        "SIGUSR1 to clear the table",
        Duration::from_secs(10),
        || !has_table(&instance),
    );
    probes.check(
        "after SIGUSR1 clear: everything reachable",
        &s.flows(false, false),
    );
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&instance),
        "trafficjam left its table behind"
    );
    println!("trafficjam logs:\n{}{}", tj.logs(), tj_host.logs());
}

/// The container ports the bridge table of `table` names (read back with
/// nft).
fn bridge_ports(table: &str) -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "set", "bridge", table, "ports"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Forge UDP datagrams from the proxy's addresses at backend1, with
/// backend1's MAC and with the proxy's; return the sources backend2 saw.
fn forge_from_b1(p: &Probes, s: &Scene) -> Vec<IpAddr> {
    use trafficjam_testbed::frame::{mac_of, send_frame, udp_frame};
    let b1_mac = mac_of(p.ns("backend1"), "eth0").unwrap();
    let proxy_mac = mac_of(p.ns("proxy"), "eth0").unwrap();
    let b2_mac = mac_of(p.ns("backend2"), "eth0").unwrap();
    p.reset();
    for src_mac in [b1_mac, proxy_mac] {
        for (src, dst) in [
            (&s.addrs.proxy4, &s.addrs.b2_4),
            (&s.addrs.proxy6, &s.addrs.b2_6),
        ] {
            let f = udp_frame(
                src_mac,
                b2_mac,
                ip(src),
                ip(dst),
                trafficjam_testbed::listener::UDP_PORT,
                b"spoof",
            );
            send_frame(p.ns("backend1"), "eth0", f).expect("send a forged frame");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    p.udp_arrivals("backend2")
}

fn tcp_connect_port_gw(p: &Probes, s: &Scene) -> bool {
    trafficjam_testbed::probe::tcp_connect_port(
        p.ns("backend1"),
        ip(&s.addrs.gw4),
        s.port2,
        Duration::from_millis(100),
    )
}
