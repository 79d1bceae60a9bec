//! The exceptions with Docker (issue 12), the image run as the README
//! says: allow labels on the destination container, `ALLOW_TO_PROXY` and
//! `ALLOW_HOST_PORT`. On one IPv6-enabled network of the test's own:
//!
//! - `proxy`: whitelisted (label `tj.test=<unique>`);
//! - `client`: label `tj.role=worker`;
//! - `db`: `trafficjam.allow-from=name=<client>`,
//!   `trafficjam.allow-ports=8080/tcp`: client may open TCP 8080, nothing
//!   else, nobody else;
//! - `worker`: `trafficjam.allow-from=tj.role=worker` (any port);
//! - `broken`: an allow-from that parses and an allow-ports that does not:
//!   the labels are reported and ignored, the container stays closed.
//!
//! Every flow is probed twice: without trafficjam (the positive control:
//! every one arrives) and with it (exactly the exceptions arrive). Each is
//! read where it arrives: the listeners in the containers and on the host
//! record who connected, so a blocked flow is one that never reached its
//! listener, not only one whose sender saw an error.
//!
//! Then the containers change as compose changes them: `db` recreated
//! without its labels (the kernel's allowed sets drop it within
//! milliseconds, the same address is closed to client from its first
//! packet), and recreated with them again (opened within milliseconds).
//!
//! Root and Docker are required: the test fails, never skips, without
//! them. Every container, network and table is the test's and removed on
//! drop, also on failure.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use trafficjam_testbed::docker::{
    docker, images, run_trafficjam, unique, Container, Network, TableGuard, BUSYBOX_IMAGE,
};
use trafficjam_testbed::probe::{tcp_connect, tcp_connect_port, Proto};
use trafficjam_testbed::{
    assert_matrix, ip, matrix, require_root, wait_until, Flow, Listener, Netns,
};

const TIMEOUT: Duration = Duration::from_millis(600);
/// The listeners' UDP port (tests/src/listener.rs; TCP is 8080).
const UDP: u16 = 8081;

/// A TCP listener on the host, on every address, recording who connected.
struct HostListener {
    port: u16,
    arrivals: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostListener {
    fn start(port: u16) -> HostListener {
        let l = TcpListener::bind(("::", port)).expect("host listener");
        l.set_nonblocking(true).unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (arrivals.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((_, from)) => {
                        let src = match from.ip() {
                            IpAddr::V6(v6) => {
                                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
                            }
                            v4 => v4,
                        };
                        a.lock().unwrap().push(src);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        HostListener {
            port,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A container of the scene and what it is to the test.
struct Member {
    label: &'static str,
    c: Container,
    v4: String,
    v6: String,
}

/// Fields drop in declaration order: trafficjam first, then the
/// containers, then the network; the table guard last.
struct Scene {
    tj: Option<Container>,
    members: Vec<Member>,
    net: Network,
    proxy_label: String,
    gw4: String,
    gw6: String,
    host_port: u16,
    _table: TableGuard,
}

fn run_member(label: &'static str, net: &Network, extra: &[String]) -> Member {
    let mut args = vec!["--network".to_string(), net.name.clone()];
    args.extend(extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = Container::run(&format!("tj{label}"), &args, BUSYBOX_IMAGE, &[])
        .unwrap_or_else(|e| panic!("start {label}: {e}"));
    let (v4, v6) = c.addrs(&net.name).unwrap();
    Member {
        label,
        c,
        v4,
        v6: v6.expect("an IPv6 address"),
    }
}

impl Scene {
    fn build() -> Scene {
        require_root();
        images().expect("build the test images");
        let n = std::process::id() % 200;
        let net = Network::create(
            "tjallow",
            &[&format!("172.27.{n}.0/24"), &format!("fd27:{n:x}::/64")],
        )
        .expect("create the network");
        let proxy_label = unique("proxy");
        let l = |s: &str| vec!["--label".to_string(), s.to_string()];
        let proxy = run_member("proxy", &net, &l(&format!("tj.test={proxy_label}")));
        let client = run_member("client", &net, &l("tj.role=worker"));
        let mut db_labels = l(&format!("trafficjam.allow-from=name={}", client.c.name));
        db_labels.extend(l("trafficjam.allow-ports=8080/tcp"));
        let db = run_member("db", &net, &db_labels);
        let worker = run_member("worker", &net, &l("trafficjam.allow-from=tj.role=worker"));
        let mut broken = l("trafficjam.allow-from=tj.role=worker");
        broken.extend(l("trafficjam.allow-ports=5432/sctp"));
        let broken = run_member("broken", &net, &broken);
        let gateway = |field: &str| {
            let f = format!(
                "{{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.{field}}}}}{{{{end}}}}",
                net.name
            );
            docker(&["inspect", "--format", &f, &client.c.name]).unwrap()
        };
        let (gw4, gw6) = (gateway("Gateway"), gateway("IPv6Gateway"));
        assert!(!gw6.is_empty(), "the network has no IPv6 gateway");
        let host_port = 30000 + (std::process::id() % 10000) as u16 * 2;
        let table = TableGuard::inet(&format!("trafficjam-{}", net.name));
        Scene {
            tj: None,
            members: vec![proxy, client, db, worker, broken],
            net,
            proxy_label,
            gw4,
            gw6,
            host_port,
            _table: table,
        }
    }

    fn member(&self, label: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.label == label)
            .unwrap_or_else(|| panic!("no member {label}"))
    }

    fn policy_args(&self) -> Vec<String> {
        vec![
            "--network".into(),
            self.net.name.clone(),
            "--whitelist-filter".into(),
            format!("label=tj.test={}", self.proxy_label),
            "--allow-to-proxy".into(),
            format!("{UDP}/udp"),
            "--allow-host-port".into(),
            format!("{}/tcp", self.host_port),
        ]
    }

    /// The image as the README runs it, exceptions in the environment.
    fn start_trafficjam(&mut self) {
        let env = [
            format!("NETWORK={}", self.net.name),
            format!("WHITELIST_FILTER=label=tj.test={}", self.proxy_label),
            format!("ALLOW_TO_PROXY={UDP}/udp"),
            format!("ALLOW_HOST_PORT={}/tcp", self.host_port),
        ];
        self.tj = Some(run_trafficjam(&env, &[]).expect("start trafficjam"));
    }

    /// Every flow of the scene and whether it is open with trafficjam on.
    fn flows(&self, enforced: bool) -> Vec<Flow> {
        let mut out = Vec::new();
        let mut add = |from: &'static str, to: &Member, what: &str, proto: Proto, open: bool| {
            for a in [&to.v4, &to.v6] {
                out.push(Flow {
                    label: format!("{from} -> {} ({what})", to.label),
                    from,
                    to: ip(a),
                    proto,
                    allowed: open || !enforced,
                });
            }
        };
        let (proxy, client, db, worker, broken) = (
            self.member("proxy"),
            self.member("client"),
            self.member("db"),
            self.member("worker"),
            self.member("broken"),
        );
        for to in [client, db, worker, broken] {
            add("proxy", to, "proxy", Proto::Tcp, true);
            add("proxy", to, "proxy", Proto::Udp, true);
        }
        add("client", db, "allowed 8080/tcp", Proto::Tcp, true);
        add("client", db, "only 8080/tcp", Proto::Udp, false);
        add("db", client, "not the other way", Proto::Tcp, false);
        add("worker", db, "not named", Proto::Tcp, false);
        add("client", worker, "allowed any port", Proto::Tcp, true);
        add("client", worker, "allowed any port", Proto::Udp, true);
        add("db", worker, "no tj.role label", Proto::Tcp, false);
        add("worker", client, "not the other way", Proto::Tcp, false);
        add("worker", client, "not the other way", Proto::Udp, false);
        add("client", broken, "bad labels ignored", Proto::Tcp, false);
        add("worker", broken, "bad labels ignored", Proto::Udp, false);
        add("broken", client, "bad labels ignored", Proto::Tcp, false);
        for from in ["client", "db", "broken"] {
            add(from, proxy, "ALLOW_TO_PROXY 8081/udp", Proto::Udp, true);
            add(from, proxy, "not 8080/tcp", Proto::Tcp, false);
        }
        for (from, port, open) in [
            ("client", self.host_port, true),
            ("broken", self.host_port, true),
            ("client", self.host_port + 1, false),
            ("db", self.host_port + 1, false),
        ] {
            for gw in [&self.gw4, &self.gw6] {
                out.push(Flow {
                    label: format!("{from} -> host tcp/{port}"),
                    from,
                    to: ip(gw),
                    proto: Proto::TcpPort(port),
                    allowed: open || !enforced,
                });
            }
        }
        out
    }
}

/// The scene's namespaces and listeners.
struct Probes {
    ns: Vec<(&'static str, Netns)>,
    listeners: Vec<(&'static str, Listener)>,
    host: Vec<HostListener>,
}

impl Probes {
    fn start(s: &Scene) -> Probes {
        let ns: Vec<_> = s
            .members
            .iter()
            .map(|m| (m.label, m.c.netns().unwrap()))
            .collect();
        let listeners = ns
            .iter()
            .map(|(l, n)| (*l, Listener::start(n).expect("listener")))
            .collect();
        let host = [s.host_port, s.host_port + 1]
            .into_iter()
            .map(HostListener::start)
            .collect();
        Probes {
            ns,
            listeners,
            host,
        }
    }

    fn ns(&self, label: &str) -> &Netns {
        &self.ns.iter().find(|(l, _)| *l == label).expect("label").1
    }

    fn reset(&self) {
        self.listeners.iter().for_each(|(_, l)| l.reset());
        self.host
            .iter()
            .for_each(|h| h.arrivals.lock().unwrap().clear());
    }

    /// How many of `flow`'s connections or datagrams reached their
    /// listener, counted there.
    fn arrived(&self, s: &Scene, flow: &Flow) -> usize {
        let from = s.member(flow.from);
        let sources = [ip(&from.v4), ip(&from.v6)];
        let count = |list: &[IpAddr]| list.iter().filter(|a| sources.contains(a)).count();
        if let Proto::TcpPort(port) = flow.proto {
            let h = self
                .host
                .iter()
                .find(|h| h.port == port)
                .expect("host port");
            return count(&h.arrivals.lock().unwrap());
        }
        let to = s
            .members
            .iter()
            .find(|m| ip(&m.v4) == flow.to || ip(&m.v6) == flow.to)
            .expect("destination");
        let l = &self
            .listeners
            .iter()
            .find(|(l, _)| *l == to.label)
            .unwrap()
            .1;
        let a = l.arrivals();
        match flow.proto {
            Proto::Udp => count(&a.udp),
            _ => count(&a.tcp),
        }
    }

    /// The matrix, from the senders and then at the listeners: an open
    /// flow arrived, a closed one did not. No two flows share a source
    /// address, a listener and a protocol, so the count at the listener
    /// is the flow's own.
    fn check(&self, s: &Scene, title: &str, flows: &[Flow]) {
        self.reset();
        let outcomes = matrix::run(flows, |l| self.ns(l), TIMEOUT);
        // A completed handshake waits in the backlog until the listener's
        // thread accepts it: give them the time to count everything.
        std::thread::sleep(Duration::from_millis(300));
        let mut wrong = Vec::new();
        for f in flows {
            let arrived = self.arrived(s, f);
            if (arrived > 0) != f.allowed {
                wrong.push(format!(
                    "{} {} {}: {arrived} arrival(s) at the listener, expected {}",
                    f.label,
                    f.to,
                    f.proto,
                    if f.allowed { "some" } else { "none" }
                ));
            }
        }
        assert_matrix(title, &outcomes);
        assert!(
            wrong.is_empty(),
            "{title}: counted at the listeners:\n{}",
            wrong.join("\n")
        );
    }
}

fn status_json() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .args(["status", "--json"])
        .output()
        .expect("run trafficjam status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json")
}

/// The allowed flows the kernel holds for `instance`, as (from, to)
/// interface names.
fn allowed_in_kernel(instance: &str) -> Vec<(String, String)> {
    let doc = status_json();
    let Some(i) = doc["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["instance"] == instance))
    else {
        return Vec::new();
    };
    i["allowed"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["from"].as_str().unwrap_or_default().to_string(),
                        x["to"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The bridge port (host-side veth) of a container, by its MAC.
fn port_of(s: &Scene, m: &Member) -> String {
    let f = format!(
        "{{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.MacAddress}}}}{{{{end}}}}",
        s.net.name
    );
    let mac = docker(&["inspect", "--format", &f, &m.c.name]).unwrap();
    let doc = status_json();
    let instance = s.net.name.clone();
    doc["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["instance"] == instance.as_str()))
        .and_then(|i| i["ports"].as_array())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p["mac"].as_str() == Some(mac.as_str()))
                .and_then(|p| p["name"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| panic!("no port with {}'s MAC {mac}", m.c.name))
}

#[test]
fn docker_allow_labels_proxy_and_host_ports() {
    let mut s = Scene::build();
    let instance = s.net.name.clone();
    let probes = Probes::start(&s);
    // The bridge's IPv6 address is usable once the host's duplicate
    // address detection is done (a second or so after the network is
    // created): a precondition, not what is tested.
    wait_until(
        "the host's IPv6 gateway address",
        Duration::from_secs(5),
        || tcp_connect_port(probes.ns("client"), ip(&s.gw6), s.host_port, TIMEOUT),
    );
    probes.check(&s, "no trafficjam: every flow arrives", &s.flows(false));

    s.start_trafficjam();
    wait_until(
        "the policy with its allowed flows",
        Duration::from_secs(20),
        || allowed_in_kernel(&instance).len() == 2,
    );
    probes.check(&s, "trafficjam: exactly the exceptions", &s.flows(true));

    let tj = s.tj.as_ref().unwrap();
    let (client, db, worker, broken) = (
        &s.member("client").c.name,
        &s.member("db").c.name,
        &s.member("worker").c.name,
        &s.member("broken").c.name,
    );
    // Bad labels: reported with the container's name, and ignored.
    let logs = tj.logs();
    assert!(
        logs.contains(&format!(
            "ignoring the allow labels of {broken}: trafficjam.allow-ports"
        )),
        "{logs}"
    );
    // status and plan name the flows by container.
    let out = Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        format!("allowed:       {client} (veth"),
        format!("→ {db} (veth"),
        format!("→ {worker} (veth"),
        "open on the proxy to every container: 8081/udp".to_string(),
        format!("open on the host to containers: {}/tcp", s.host_port),
    ] {
        assert!(text.contains(&want), "status lacks {want:?}:\n{text}");
    }
    assert!(!text.contains("WARNING"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .arg("plan")
        .args(s.policy_args())
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        format!("#   allowed {client} → {db} (8080/tcp)"),
        format!("#   allowed {client} → {worker} (any port)"),
        format!("#   ignored allow labels of {broken}: trafficjam.allow-ports"),
    ] {
        assert!(plan.contains(&want), "plan lacks {want:?}:\n{plan}");
    }
    let allow_lines = plan
        .lines()
        .filter(|l| l.starts_with("#   allowed"))
        .count();
    assert_eq!(allow_lines, 2, "{plan}");

    recreate_db(&mut s, probes);
    println!("trafficjam logs:\n{}", s.tj.as_ref().unwrap().logs());
}

/// `db` recreated without its labels, on the same addresses: the kernel
/// drops its allowed flow at once and client is closed out from the first
/// packet; recreated with the labels again: opened at once.
fn recreate_db(s: &mut Scene, probes: Probes) {
    let instance = s.net.name.clone();
    let db_port = port_of(s, s.member("db"));
    let client = s.member("client").c.name.clone();
    let db_index = s.members.iter().position(|m| m.label == "db").unwrap();
    let (v4, v6) = (
        s.members[db_index].v4.clone(),
        s.members[db_index].v6.clone(),
    );
    let name = s.members[db_index].c.name.clone();
    drop(probes);

    let start = Instant::now();
    docker(&["rm", "-f", &name]).unwrap();
    let removed = start.elapsed();
    let closed = wait_until(
        "db's allowed flow gone from the kernel",
        Duration::from_secs(5),
        || {
            !allowed_in_kernel(&instance)
                .iter()
                .any(|(_, to)| *to == db_port)
        },
    );
    println!(
        "db removed: `docker rm -f` took {removed:?}; its allowed flow left the kernel {closed:?} later"
    );
    assert!(closed < Duration::from_millis(200), "took {closed:?}");

    let same_addrs = |labels: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--network",
            &s.net.name,
            "--ip",
            &v4,
            "--ip6",
            &v6,
            "--name",
            &name,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        for l in labels {
            a.extend(["--label".to_string(), l.to_string()]);
        }
        a.extend(["-d".to_string(), BUSYBOX_IMAGE.to_string()]);
        a
    };
    let run = |args: Vec<String>| {
        let mut full = vec!["run".to_string()];
        full.extend(args);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        docker(&full).expect("recreate db");
    };
    // Same name and addresses, no labels: closed to client.
    run(same_addrs(&[]));
    let (db_ns, client_ns, proxy_ns) = (
        s.members[db_index].c.netns().unwrap(),
        s.member("client").c.netns().unwrap(),
        s.member("proxy").c.netns().unwrap(),
    );
    let listener = Listener::start(&db_ns).unwrap();
    for a in [&v4, &v6] {
        let to = ip(a);
        assert!(
            !tcp_connect(&client_ns, to, TIMEOUT),
            "client reached the recreated db ({to}) without its label"
        );
        // Positive control: the listener is up, the proxy reaches it.
        assert!(tcp_connect(&proxy_ns, to, TIMEOUT), "proxy -> db {to}");
    }
    let client_addrs = [ip(&s.member("client").v4), ip(&s.member("client").v6)];
    let got = listener.arrivals();
    assert_eq!(
        client_addrs
            .iter()
            .map(|a| got.count_from(*a))
            .sum::<usize>(),
        0,
        "client's connections reached the unlabelled db: {got:?}"
    );
    assert!(allowed_in_kernel(&instance)
        .iter()
        .all(|(_, to)| *to != db_port));
    drop(listener);
    docker(&["rm", "-f", &name]).unwrap();

    // Recreated with the labels: client may connect again, at once.
    let from = format!("trafficjam.allow-from=name={client}");
    let start = Instant::now();
    run(same_addrs(&[&from, "trafficjam.allow-ports=8080/tcp"]));
    let started = start.elapsed();
    let db_ns = s.members[db_index].c.netns().unwrap();
    let listener = Listener::start(&db_ns).unwrap();
    let opened = wait_until("client -> relabelled db", Duration::from_secs(5), || {
        tcp_connect(&client_ns, ip(&v4), Duration::from_millis(50))
    });
    println!("db recreated with its labels: `docker run` took {started:?}; client connected {opened:?} later");
    assert!(opened < Duration::from_millis(500), "took {opened:?}");
    assert!(
        tcp_connect(&client_ns, ip(&v6), TIMEOUT),
        "client -> db over IPv6"
    );
    // Still only 8080/tcp.
    let udp = matrix::run(
        &[Flow {
            label: "client -> db udp".into(),
            from: "client",
            to: ip(&v4),
            proto: Proto::Udp,
            allowed: false,
        }],
        |_| &client_ns,
        TIMEOUT,
    );
    assert_matrix("relabelled db: still only 8080/tcp", &udp);
    assert_eq!(listener.arrivals().udp.len(), 0);
    let kernel: BTreeMap<String, String> = allowed_in_kernel(&instance)
        .into_iter()
        .map(|(f, t)| (t, f))
        .collect();
    assert_eq!(kernel.len(), 2, "{kernel:?}");
}
