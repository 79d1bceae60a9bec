//! Docker Swarm: a three-node swarm of the test rig (a `dockerd` per node,
//! each in namespaces of its own), trafficjam on every node as users run
//! it — a global service of the FROM-scratch image with host networking,
//! the Docker socket and the Engine's netns directory mounted `rslave` —
//! and an attachable overlay with a proxy task on node 0 and backends on
//! every node.
//!
//! Every "blocked" below was first shown to work without trafficjam (the
//! positive controls), and is checked where it would arrive (listeners in
//! the task containers' namespaces).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trafficjam_testbed::docker::{images, unique, BUSYBOX_IMAGE, TRAFFICJAM_IMAGE};
use trafficjam_testbed::frame::udp_frame;
use trafficjam_testbed::listener::UDP_PORT;
use trafficjam_testbed::swarm::{Node, Swarm};
use trafficjam_testbed::{assert_matrix, matrix, require_root, Flow, Listener, Netns, Proto};

const TIMEOUT: Duration = Duration::from_millis(800);

/// A task of a one-replica service pinned to a node, and what the test
/// needs of it.
struct Task {
    service: String,
    node: Arc<Node>,
    ns: Netns,
    addr: IpAddr,
}

/// `docker service create` on the manager: `name`, `options`, then the
/// image and its command.
fn create_service(swarm: &Swarm, name: &str, options: &[String], image_and_cmd: &[&str]) {
    let mut args = vec![
        "service",
        "create",
        "--quiet",
        "--detach",
        "--no-resolve-image",
    ];
    args.extend(["--name", name]);
    args.extend(options.iter().map(String::as_str));
    args.extend(image_and_cmd);
    swarm
        .manager()
        .docker(&args)
        .unwrap_or_else(|e| panic!("create the service {name}: {e}"));
}

/// `docker network create` of an attachable overlay called `name` with
/// the given subnets, on the manager.
fn create_overlay(swarm: &Swarm, name: &str, subnets: &[&str]) {
    let mut args = vec!["network", "create", "--driver", "overlay", "--attachable"];
    for s in subnets {
        args.extend(["--subnet", s]);
    }
    args.push(name);
    swarm.manager().docker(&args).expect("create the overlay");
}

/// The options of a one-task service pinned to `node`, on `network`
/// (task addresses, no VIP: this kernel has no IPVS), with container
/// labels, never restarted.
fn pinned(node: &Node, network: &str, labels: &[&str]) -> Vec<String> {
    let mut options: Vec<String> = [
        "--network",
        network,
        "--endpoint-mode",
        "dnsrr",
        "--restart-condition",
        "none",
        "--constraint",
        &format!("node.hostname=={}", node.hostname()),
    ]
    .map(String::from)
    .to_vec();
    for l in labels {
        options.extend(["--container-label".to_string(), l.to_string()]);
    }
    options
}

/// A container's IPv4 address on `network`.
fn address_on(node: &Node, container: &str, network: &str) -> IpAddr {
    node.docker(&[
        "inspect",
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
    .expect("its address")
    .parse()
    .expect("an IPv4 address on the overlay")
}

/// Create a service of one busybox task on `node`, on `network`, with
/// container labels; wait for its container to run.
fn task(swarm: &Swarm, node: &Arc<Node>, prefix: &str, network: &str, labels: &[&str]) -> Task {
    let service = unique(prefix);
    let options = pinned(node, network, labels);
    create_service(swarm, &service, &options, &[BUSYBOX_IMAGE, "sleep", "3600"]);
    let container = running_container(node, &service, Duration::from_secs(60));
    Task {
        ns: node.container_netns(&container).expect("its namespace"),
        addr: address_on(node, &container, network),
        service,
        node: node.clone(),
    }
}

/// What `node` knows of the tasks of `service` (running or not) and what
/// each logged: the diagnosis of a test that waited for them in vain.
fn tasks_and_logs(node: &Node, service: &str) -> String {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let ps = node
        .docker(&["ps", "-a", "--no-trunc", "--filter", &filter])
        .unwrap_or_else(|e| format!("docker ps: {e}"));
    let mut out = format!("tasks of {service} on {}:\n{ps}", node.hostname());
    let ids = node
        .docker(&["ps", "-aq", "--no-trunc", "--filter", &filter])
        .unwrap_or_default();
    for id in ids.lines() {
        let logs = node
            .docker_output(&["logs", id])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_else(|e| format!("docker logs: {e}"));
        out += &format!("\n--- logs of {id}:\n{logs}");
    }
    out
}

/// The running container of `service` on `node`.
fn running_container(node: &Node, service: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = node
            .docker(&[
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                &format!("label=com.docker.swarm.service.name={service}"),
                "--filter",
                "status=running",
            ])
            .unwrap_or_default();
        if let Some(id) = out.lines().next() {
            return id.to_string();
        }
        assert!(
            start.elapsed() < limit,
            "no running task of {service} on {} after {limit:?}",
            node.hostname()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// When each running container of the node started (Docker's StartedAt).
fn started_at(node: &Node) -> Vec<(String, String)> {
    let ids = node.docker(&["ps", "-q", "--no-trunc"]).unwrap_or_default();
    ids.lines()
        .map(|id| {
            let at = node
                .docker(&["inspect", "--format", "{{.State.StartedAt}}", id])
                .unwrap_or_default();
            (id.to_string(), at)
        })
        .collect()
}

/// The trafficjam global service, as the README's stack file runs it.
fn trafficjam_service(swarm: &Swarm, name: &str, network: &str, env: &[&str], constraint: &str) {
    let mut options: Vec<String> = [
        "--mode",
        "global",
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "SYS_ADMIN",
        "--mount",
        "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock",
        "--mount",
        "type=bind,src=/var/run/docker/netns,dst=/var/run/docker/netns,bind-propagation=rslave",
        "--env",
        &format!("NETWORK={network}"),
        "--env",
        "WHITELIST_FILTER=label=role=proxy",
        "--env",
        "DEBUG=1",
    ]
    .map(String::from)
    .to_vec();
    for e in env {
        options.extend(["--env".to_string(), e.to_string()]);
    }
    if !constraint.is_empty() {
        options.extend(["--constraint".to_string(), constraint.to_string()]);
    }
    create_service(swarm, name, &options, &[TRAFFICJAM_IMAGE]);
}

/// Wait until trafficjam enforces `network` in `node`'s namespace of it
/// (its bridge table is there).
fn wait_enforced(node: &Node, network: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(ns) = node.overlay_netns(network) {
            if let Ok(out) = ns.exec("nft", &["list", "tables", "bridge"]) {
                if String::from_utf8_lossy(&out.stdout).contains("trafficjam-") {
                    return;
                }
            }
        }
        assert!(
            start.elapsed() < limit,
            "trafficjam does not enforce {network} on {} after {limit:?}",
            node.hostname()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn flows(tasks: &[(&'static str, &Task)], enforced: bool) -> Vec<Flow> {
    let mut out = Vec::new();
    for (from, f) in tasks {
        for (to, t) in tasks {
            if from == to {
                continue;
            }
            let allowed = !enforced || from.starts_with("proxy");
            for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                out.push(Flow {
                    label: format!(
                        "{from} ({}) -> {to} ({})",
                        f.node.hostname(),
                        t.node.hostname()
                    ),
                    from,
                    to: t.addr,
                    proto,
                    allowed,
                });
            }
        }
    }
    out
}

/// Send from `from` (a task's namespace) a VXLAN datagram to `target`
/// (a node's underlay address) carrying a frame to `victim` with a forged
/// source: what a backend would inject into another node's overlay.
fn inject_vxlan(from: &Netns, target: &str, vni: u32, victim: &Task, victim_mac: [u8; 6]) {
    let forged: IpAddr = FORGED.parse().unwrap();
    let inner = udp_frame(
        [0x02, 0x42, 0x0a, 0xd7, 0x01, 0xc8],
        victim_mac,
        forged,
        victim.addr,
        UDP_PORT,
        b"vxlan-injected",
    );
    let mut datagram = vec![0x08, 0, 0, 0];
    datagram.extend_from_slice(&vni.to_be_bytes()[1..]);
    datagram.push(0);
    datagram.extend(inner);
    let target = format!("{target}:4789");
    from.run(move || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..3 {
            let _ = sock.send_to(&datagram, &target);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .unwrap();
}

/// A forged source inside the overlay's subnet no task has.
const FORGED: &str = "10.215.1.200";

/// How a TCP connection from `ns` to `to` ends: `Ok(true)` connected,
/// `Ok(false)` refused (an answer), `Err` no answer (dropped).
fn connect_outcome(ns: &Netns, to: std::net::SocketAddr) -> Result<bool, String> {
    ns.run(
        move || match std::net::TcpStream::connect_timeout(&to, Duration::from_millis(700)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(false),
            Err(e) => Err(e.to_string()),
        },
    )
    .unwrap()
}

/// The packets the ingress table in `ns` dropped.
fn ingress_drops(ns: &Netns) -> u64 {
    let out = ns.exec(
        "nft",
        &["list", "chain", "inet", "trafficjam-ingress", "ingress"],
    );
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    text.split("counter packets ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// An address of `ns`'s interface `ifname`.
fn address_of(ns: &Netns, ifname: &str) -> IpAddr {
    let out = ns
        .exec("ip", &["-4", "-o", "addr", "show", "dev", ifname])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 address on {ifname}: {text}"))
}

/// `StartedAt` of a container, in seconds since the epoch.
fn started_secs(node: &Node, container: &str) -> f64 {
    let at = node
        .docker(&["inspect", "--format", "{{.State.StartedAt}}", container])
        .unwrap();
    secs_of(&at)
}

/// An RFC 3339 time (Docker's, trafficjam's log lines) in seconds since
/// the epoch.
fn secs_of(at: &str) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-d", at, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a time: {at}"))
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn swarm_overlay_isolated_on_every_node() {
    require_root();
    images().expect("build the test images");
    let t0 = Instant::now();
    let swarm = Swarm::start("tjsw", 3).expect("a three-node swarm");
    println!("swarm of 3 ready in {:?}", t0.elapsed());
    let (n0, n1, n2) = (swarm.node(0), swarm.node(1), swarm.node(2));
    let m = swarm.manager();
    // Node 1 is where the routing mesh is blocked.
    m.docker(&[
        "node",
        "update",
        "--label-add",
        "ingress=closed",
        n1.hostname(),
    ])
    .unwrap();
    let network = unique("tjov");
    create_overlay(&swarm, &network, &["10.215.1.0/24"]);
    let vni: u32 = m
        .docker(&[
            "network",
            "inspect",
            "--format",
            "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
            &network,
        ])
        .unwrap()
        .parse()
        .expect("the overlay's VXLAN id");

    let proxy = task(&swarm, &n0, "proxy", &network, &["role=proxy"]);
    let b0 = task(&swarm, &n0, "b0", &network, &["role=backend"]);
    let b0b = task(&swarm, &n0, "b0b", &network, &["role=backend"]);
    let b1 = task(&swarm, &n1, "b1", &network, &["role=backend"]);
    let b2 = task(&swarm, &n2, "b2", &network, &["role=backend"]);
    let named: Vec<(&'static str, &Task)> = vec![
        ("proxy", &proxy),
        ("b0", &b0),
        ("b0b", &b0b),
        ("b1", &b1),
        ("b2", &b2),
    ];
    let listeners: Vec<Listener> = named
        .iter()
        .map(|(_, t)| Listener::start(&t.ns).expect("listener"))
        .collect();
    let ns_of = |label: &str| -> &Netns {
        &named
            .iter()
            .find(|(l, _)| *l == label)
            .expect("a task")
            .1
            .ns
    };
    let mac = |t: &Task| -> [u8; 6] {
        trafficjam_testbed::frame::mac_of(&t.ns, "eth0").expect("the task's MAC")
    };
    let b0_mac = mac(&b0);
    let b1_mac = mac(&b1);
    let lb = |n: &Node| -> Netns {
        let id = n
            .docker(&["network", "inspect", "--format", "{{.Id}}", &network])
            .unwrap();
        n.sandbox(&format!("lb_{}", &id[..9]))
            .expect("the node's load balancer")
    };
    let (lb0, lb1) = (lb(&n0), lb(&n1));
    let forged: IpAddr = FORGED.parse().unwrap();
    // ingress_sbox of each node: its leg on docker_gwbridge (what the host
    // reaches) and on the ingress overlay (what other nodes reach).
    let sbox = |n: &Node| n.sandbox("ingress_sbox").expect("ingress_sbox");
    let (sbox0, sbox1, sbox2) = (sbox(&n0), sbox(&n1), sbox(&n2));
    let mesh = |ns: &Netns, ifname: &str| std::net::SocketAddr::new(address_of(ns, ifname), 8080);

    // Positive controls: without trafficjam everything reaches everything,
    // through the load balancers too; a backend's VXLAN datagram lands a
    // forged frame in another node's overlay (and its own node's); the
    // routing mesh answers (refuses: no IPVS here) on every node, from
    // the host and from other nodes.
    let outcomes = matrix::run(&flows(&named, false), ns_of, TIMEOUT);
    assert_matrix("overlay, without trafficjam", &outcomes);
    // The nodes themselves, through docker_gwbridge (every task's second
    // leg): its gateway and another address of the node.
    let _host_listeners = [
        Listener::start(n0.netns()).unwrap(),
        Listener::start(n1.netns()).unwrap(),
    ];
    let gateway: IpAddr = address_of(n1.netns(), "docker_gwbridge");
    let host_flows = |enforced: bool| -> Vec<Flow> {
        let mut out = Vec::new();
        for (from, to) in [
            ("b1", gateway),
            ("b1", n1.address().parse().unwrap()),
            ("proxy", address_of(n0.netns(), "docker_gwbridge")),
            ("b0", n0.address().parse().unwrap()),
        ] {
            for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                out.push(Flow {
                    label: format!("{from} -> its node ({to})"),
                    from,
                    to,
                    proto,
                    allowed: !enforced,
                });
            }
        }
        out
    };
    let outcomes = matrix::run(&host_flows(false), ns_of, TIMEOUT);
    assert_matrix("tasks to their node, without trafficjam", &outcomes);
    assert!(trafficjam_testbed::probe::tcp_connect(
        &lb1, b0.addr, TIMEOUT
    ));
    inject_vxlan(&b1.ns, n0.address(), vni, &b0, b0_mac);
    inject_vxlan(&b0.ns, n1.address(), vni, &b1, b1_mac);
    wait_for_udp(
        &listeners[1],
        forged,
        "the injected frame reaches b0 without trafficjam",
    );
    wait_for_udp(
        &listeners[3],
        forged,
        "the injected frame reaches b1 without trafficjam",
    );
    inject_vxlan(&b0.ns, n0.address(), vni, &b0b, mac(&b0b));
    wait_for_udp(
        &listeners[2],
        forged,
        "a frame injected through its own node reaches b0b without trafficjam",
    );
    // Port security holds inside the overlay: a backend's frame claiming
    // the proxy's address reaches a backend on another node without
    // trafficjam...
    let spoof = |from: &Task, to: &Task, to_mac: [u8; 6]| {
        let frame = udp_frame(mac(from), to_mac, proxy.addr, to.addr, UDP_PORT, b"spoofed");
        trafficjam_testbed::frame::send_frame(&from.ns, "eth0", frame).unwrap();
    };
    spoof(&b1, &b0, b0_mac);
    wait_for_udp(
        &listeners[1],
        proxy.addr,
        "b1's frame forged as the proxy reaches b0 without trafficjam",
    );
    for (n, s) in [(&n1, &sbox1), (&n2, &sbox2)] {
        assert_eq!(
            connect_outcome(n.netns(), mesh(s, "eth1")),
            Ok(false),
            "{}",
            n.hostname()
        );
    }
    assert_eq!(connect_outcome(&sbox0, mesh(&sbox1, "eth0")), Ok(false));
    assert_eq!(connect_outcome(&sbox0, mesh(&sbox2, "eth0")), Ok(false));

    // trafficjam on every node: the README's stack, as two global services
    // (the routing mesh blocked on the nodes labelled for it).
    let before: Vec<Vec<(String, String)>> = [&n0, &n1, &n2].map(|n| started_at(n)).to_vec();
    let agents = unique("tj");
    trafficjam_service(
        &swarm,
        &agents,
        &network,
        &[],
        "node.labels.ingress!=closed",
    );
    trafficjam_service(
        &swarm,
        &format!("{agents}-edge"),
        &network,
        &["BLOCK_INGRESS=8080/tcp"],
        "node.labels.ingress==closed",
    );
    let start = Instant::now();
    for n in [&n0, &n1, &n2] {
        wait_enforced(n, &network, Duration::from_secs(60));
    }
    println!(
        "enforced on 3 nodes {:?} after the services were created",
        start.elapsed()
    );
    trafficjam_testbed::wait_until(
        "the ingress block on node 1",
        Duration::from_secs(30),
        || {
            sbox1
                .exec("nft", &["list", "tables"])
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("trafficjam-ingress"))
                .unwrap_or(false)
        },
    );

    for l in &listeners {
        l.reset();
    }
    let outcomes = matrix::run(&flows(&named, true), ns_of, TIMEOUT);
    assert_matrix("overlay, trafficjam on every node", &outcomes);
    let outcomes = matrix::run(&host_flows(true), ns_of, TIMEOUT);
    assert_matrix("tasks to their node, trafficjam on every node", &outcomes);
    // Checked where it would arrive: no backend's connection or datagram
    // reached another task.
    let backends: Vec<IpAddr> = named[1..].iter().map(|(_, t)| t.addr).collect();
    for ((label, _), l) in named.iter().zip(&listeners) {
        let a = l.arrivals();
        for from in a.tcp.iter().chain(&a.udp) {
            assert!(
                !backends.contains(from),
                "{label} received from backend {from}: {a:?}"
            );
        }
    }
    // The load-balancer path: a node's load-balancer address reaches
    // backends on its node and on others.
    assert!(
        trafficjam_testbed::probe::tcp_connect(&lb0, b0.addr, TIMEOUT),
        "lb of node 0 -> b0"
    );
    assert!(
        trafficjam_testbed::probe::tcp_connect(&lb1, b0.addr, TIMEOUT),
        "lb of node 1 -> b0 on node 0"
    );
    assert!(
        trafficjam_testbed::probe::tcp_connect(&lb0, b2.addr, TIMEOUT),
        "lb of node 0 -> b2 on node 2"
    );
    // VXLAN injection fails, to another node and to the backend's own.
    for l in &listeners {
        l.reset();
    }
    inject_vxlan(&b1.ns, n0.address(), vni, &b0, b0_mac);
    inject_vxlan(&b0.ns, n1.address(), vni, &b1, b1_mac);
    inject_vxlan(&b0.ns, n0.address(), vni, &b0b, mac(&b0b));
    // ...and not with it.
    spoof(&b1, &b0, b0_mac);
    std::thread::sleep(Duration::from_millis(300));
    for l in &listeners {
        assert!(
            !l.arrivals().udp.contains(&forged),
            "an injected frame arrived: {:?}",
            l.arrivals()
        );
    }
    assert!(
        !listeners[1].arrivals().udp.contains(&proxy.addr),
        "b1's frame forged as the proxy reached b0: {:?}",
        listeners[1].arrivals()
    );
    // Ingress: dropped (and counted) on node 1, from the host and from
    // another node; still answered on node 2.
    assert!(
        connect_outcome(n1.netns(), mesh(&sbox1, "eth1")).is_err(),
        "node 1 from its host"
    );
    assert!(
        connect_outcome(&sbox0, mesh(&sbox1, "eth0")).is_err(),
        "node 1 from node 0"
    );
    assert!(
        ingress_drops(&sbox1) >= 2,
        "counted: {}",
        ingress_drops(&sbox1)
    );
    assert_eq!(
        connect_outcome(n2.netns(), mesh(&sbox2, "eth1")),
        Ok(false),
        "node 2 from its host"
    );
    assert_eq!(
        connect_outcome(&sbox0, mesh(&sbox2, "eth0")),
        Ok(false),
        "node 2 from node 0"
    );

    // A second proxy task, on node 2, connects at once: its first attempt
    // gets through.
    let p2 = unique("proxy2");
    let connect_at_once = format!(
        "if nc -w 1 {} 8080 </dev/null; then echo first-ok; else echo first-failed; fi; sleep 3600",
        b0.addr
    );
    create_service(
        &swarm,
        &p2,
        &pinned(&n2, &network, &["role=proxy"]),
        &[BUSYBOX_IMAGE, "sh", "-c", &connect_at_once],
    );
    let c = running_container(&n2, &p2, Duration::from_secs(60));
    let p2_addr = address_on(&n2, &c, &network);
    trafficjam_testbed::wait_until(
        "proxy2's first connection at b0",
        Duration::from_secs(10),
        || listeners[1].arrivals().tcp.contains(&p2_addr),
    );
    let reached = now_secs();
    let logs = n2.docker(&["logs", &c]).unwrap();
    assert!(
        logs.contains("first-ok"),
        "the second proxy's first connection failed: {logs}"
    );
    let after = (reached - started_secs(&n2, &c)) * 1000.0;
    println!("second proxy: first connection at b0 (another node) seen {after:.0} ms after the container started");
    // A first SYN dropped would be sent again only after a second.
    assert!(
        after < 900.0,
        "the second proxy's first SYN was lost: {after:.0} ms"
    );

    // No task was restarted to change a rule.
    for (n, before) in [&n0, &n1, &n2].iter().zip(&before) {
        let now = started_at(n);
        for (id, at) in before {
            assert!(
                now.contains(&(id.clone(), at.clone())),
                "{id} on {} restarted (started {at} before, now {now:?})",
                n.hostname()
            );
        }
    }

    // Stopping one node's agent leaves its rules.
    let agent2 = running_container(&n2, &agents, Duration::from_secs(5));
    n2.docker(&["stop", "-t", "1", &agent2]).unwrap();
    let blocked = matrix::run(
        &flows(&named, true)
            .into_iter()
            .filter(|f| f.from == "b2")
            .collect::<Vec<_>>(),
        ns_of,
        TIMEOUT,
    );
    assert_matrix("node 2's agent stopped", &blocked);

    // `status` says which namespace each instance enforces.
    let agent0 = running_container(&n0, &agents, Duration::from_secs(5));
    let status = n0
        .docker(&["exec", &agent0, "/trafficjam", "status"])
        .unwrap();
    assert!(
        status.contains("in namespace /var/run/docker/netns/1-")
            && status.contains("remote:        vxlan0")
            && status.contains("instance gwbridge"),
        "{status}"
    );

    // A fourth node joins: the global service starts its own agent there,
    // which follows the overlay's namespace as the node's first task
    // creates it, as it goes with the last one, and as it comes back.
    let n3 = swarm.add_node().expect("a fourth node");
    running_container(&n3, &agents, Duration::from_secs(60));
    // When the agent enforced the namespace for the `nth` time (its log
    // line, in milliseconds) against when the task's process started.
    let enforced_after_start = |b: &Task, nth: usize| -> f64 {
        let c = running_container(&n3, &b.service, Duration::from_secs(5));
        wait_enforced(&n3, &network, Duration::from_secs(10));
        let agent = running_container(&n3, &agents, Duration::from_secs(5));
        let out = n3.docker_output(&["logs", &agent]).unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        // The first transaction after it entered the namespace for the
        // `nth` time.
        let line = log
            .split("enforcing in namespace")
            .nth(nth + 1)
            .and_then(|after| {
                after
                    .lines()
                    .find(|l| l.contains("(namespace ") && l.contains(": table bridge"))
            })
            .unwrap_or_else(|| panic!("no enforcing line {nth} in {log}"));
        let at = line.split(' ').next().unwrap();
        (secs_of(at) - started_secs(&n3, &c)) * 1000.0
    };
    let b3 = task(&swarm, &n3, "b3", &network, &["role=backend"]);
    println!(
        "node 3: overlay namespace created by its first task, enforced {:+.0} ms from the task's start",
        enforced_after_start(&b3, 0)
    );
    m.docker(&["service", "rm", &b3.service]).unwrap();
    trafficjam_testbed::wait_until(
        "node 3's overlay namespace to go",
        Duration::from_secs(30),
        || n3.overlay_netns_name(&network).ok().flatten().is_none(),
    );
    let b3 = task(&swarm, &n3, "b3", &network, &["role=backend"]);
    println!(
        "node 3: overlay namespace recreated, enforced {:+.0} ms from the task's start",
        enforced_after_start(&b3, 1)
    );
    let agent3 = running_container(&n3, &agents, Duration::from_secs(5));
    let log3 = n3.docker(&["logs", &agent3]).unwrap_or_default()
        + &String::from_utf8_lossy(&n3.docker_output(&["logs", &agent3]).unwrap().stderr);
    assert!(log3.contains("its namespace is gone"), "{log3}");
    assert!(
        log3.matches("enforcing in namespace").count() >= 2,
        "{log3}"
    );
    let _l3 = Listener::start(&b3.ns).unwrap();
    let with_b3: Vec<(&'static str, &Task)> = vec![("proxy", &proxy), ("b0", &b0), ("b3", &b3)];
    let ns3 = |label: &str| -> &Netns {
        &with_b3
            .iter()
            .find(|(l, _)| *l == label)
            .expect("a task")
            .1
            .ns
    };
    let outcomes = matrix::run(&flows(&with_b3, true), ns3, TIMEOUT);
    assert_matrix("a fourth node, enforced by its own agent", &outcomes);

    // ingress_sbox recreated (node 1's engine restarted): blocked again.
    n1.stop_engine().unwrap();
    n1.start_engine().unwrap();
    let start = Instant::now();
    let sbox1 = loop {
        if let Ok(s) = n1.sandbox("ingress_sbox") {
            let has = s
                .exec("nft", &["list", "tables"])
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("trafficjam-ingress"))
                .unwrap_or(false);
            if has {
                break s;
            }
        }
        if start.elapsed() > Duration::from_secs(90) {
            panic!(
                "no ingress block after node 1's engine restarted\n{}",
                tasks_and_logs(&n1, &format!("{agents}-edge"))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "ingress block back {:?} after node 1's engine was started again",
        start.elapsed()
    );
    assert!(
        connect_outcome(n1.netns(), mesh(&sbox1, "eth1")).is_err(),
        "node 1 after ingress_sbox was recreated"
    );
}

fn wait_for_udp(l: &Listener, from: IpAddr, what: &str) {
    trafficjam_testbed::wait_until(what, Duration::from_secs(3), || {
        l.arrivals().udp.contains(&from)
    });
}

/// An overlay of two subnets has a bridge (and a VXLAN device) per subnet
/// in each node's namespace: the containers of either are isolated.
#[test]
fn every_subnet_of_an_overlay_is_isolated() {
    require_root();
    images().expect("build the test images");
    let swarm = Swarm::start("tjsw2", 1).expect("a one-node swarm");
    let m = swarm.manager();
    let network = unique("tjov2");
    create_overlay(&swarm, &network, &["10.215.3.0/24", "10.215.4.0/24"]);
    let run = |name: &str, ip: &str, role: &str| -> Task {
        m.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &network,
            "--ip",
            ip,
            "--label",
            &format!("role={role}"),
            BUSYBOX_IMAGE,
            "sleep",
            "3600",
        ])
        .expect("run a container on the overlay");
        Task {
            service: name.to_string(),
            node: m.clone(),
            ns: m.container_netns(name).expect("its namespace"),
            addr: ip.parse().unwrap(),
        }
    };
    let a1 = run("a1", "10.215.3.11", "backend");
    let a2 = run("a2", "10.215.3.12", "backend");
    let proxy = run("proxy", "10.215.4.10", "proxy");
    let b1 = run("b1", "10.215.4.11", "backend");
    let b2 = run("b2", "10.215.4.12", "backend");
    let named: Vec<(&'static str, &Task)> = vec![("proxy", &proxy), ("b1", &b1), ("b2", &b2)];
    let other: Vec<(&'static str, &Task)> = vec![("a1", &a1), ("a2", &a2)];
    let _listeners: Vec<Listener> = named
        .iter()
        .chain(&other)
        .map(|(_, t)| Listener::start(&t.ns).expect("listener"))
        .collect();
    let all: Vec<(&'static str, &Task)> = named.iter().chain(&other).copied().collect();
    let ns_of = |label: &str| -> &Netns {
        &all.iter()
            .find(|(l, _)| *l == label)
            .expect("a container")
            .1
            .ns
    };
    let bridges = m
        .overlay_netns(&network)
        .unwrap()
        .exec("ip", &["-o", "link", "show", "type", "bridge"])
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&bridges.stdout).lines().count(),
        2,
        "a bridge per subnet"
    );
    let matrix_of = |enforced: bool| {
        let mut f = flows(&named, enforced);
        f.extend(flows(&other, enforced));
        f
    };
    assert_matrix(
        "two subnets, without trafficjam",
        &matrix::run(&matrix_of(false), ns_of, TIMEOUT),
    );
    m.docker(&[
        "run",
        "-d",
        "--name",
        "trafficjam",
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "SYS_ADMIN",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "--mount",
        "type=bind,src=/var/run/docker/netns,dst=/var/run/docker/netns,bind-propagation=rslave",
        "-e",
        &format!("NETWORK={network}"),
        "-e",
        "WHITELIST_FILTER=label=role=proxy",
        TRAFFICJAM_IMAGE,
    ])
    .expect("run trafficjam on the node");
    wait_enforced(&m, &network, Duration::from_secs(30));
    assert_matrix(
        "two subnets, trafficjam",
        &matrix::run(&matrix_of(true), ns_of, TIMEOUT),
    );
    // Both bridges' ports are bound.
    trafficjam_testbed::wait_until("every port bound", Duration::from_secs(10), || {
        let status = m
            .docker(&["exec", "trafficjam", "/trafficjam", "status"])
            .unwrap_or_default();
        status.matches("  port ").count() >= 6
    });
}
