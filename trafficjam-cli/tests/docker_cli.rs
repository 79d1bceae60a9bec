//! Docker mode of the CLI and the daemon on the host: bad input is refused
//! with a clear message and a non-zero exit; the daemon waits for a network
//! that does not exist yet and keeps retrying while Docker is unreachable.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use trafficjam_testbed::cli::{has_inet_table as has_table, refused, Daemon};
use trafficjam_testbed::docker::{images, unique, Container, Network, TableGuard, BUSYBOX_IMAGE};
use trafficjam_testbed::require_root;

fn trafficjam(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trafficjam"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run trafficjam")
}

#[test]
fn bad_docker_input_is_refused() {
    require_root();
    images().expect("Docker with the test images");
    let net = Network::create("tjcli", &["172.29.77.0/24"]).unwrap();
    refused(
        &trafficjam(
            &[
                "apply",
                "--network",
                "tj-no-such-network",
                "--whitelist-filter",
                "name=x",
            ],
            &[],
        ),
        2,
        "does not exist",
    );
    refused(
        &trafficjam(
            &[
                "apply",
                "--network",
                &net.name,
                "--whitelist-filter",
                "bogus=1",
            ],
            &[],
        ),
        2,
        "Docker rejected the whitelist filter",
    );
    refused(
        &trafficjam(
            &[
                "apply",
                "--network",
                &net.name,
                "--whitelist-filter",
                "traefik",
            ],
            &[],
        ),
        2,
        "key=value",
    );
    refused(
        &trafficjam(
            &[
                "apply",
                "--network",
                &net.name,
                "--whitelist-filter",
                "name=x",
            ],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        ),
        1,
        "cannot reach Docker",
    );
    // Both modes at once is a usage error.
    refused(
        &trafficjam(
            &["apply", "--network", &net.name, "--subnet", "10.0.0.0/8"],
            &[],
        ),
        2,
        "cannot be used with",
    );
    assert!(
        !has_table(&format!("trafficjam-{}", net.name)),
        "a refused apply changed the kernel"
    );
}

#[test]
fn apply_and_plan_read_the_network_from_docker() {
    require_root();
    images().expect("Docker with the test images");
    let net = Network::create("tjapply", &["172.29.78.0/24", "fd29:78::/64"]).unwrap();
    let label = unique("proxy");
    let proxy = Container::run(
        "tjpx",
        &[
            "--network",
            &net.name,
            "--label",
            &format!("tj.test={label}"),
        ],
        BUSYBOX_IMAGE,
        &[],
    )
    .unwrap();
    let (v4, v6) = proxy.addrs(&net.name).unwrap();
    let v6 = v6.expect("the proxy's IPv6 address");
    let filter = format!("label=tj.test={label}");
    // The old tool's environment variables work as defaults.
    let env = [
        ("NETWORK", net.name.as_str()),
        ("WHITELIST_FILTER", filter.as_str()),
    ];
    let plan = trafficjam(&["plan"], &env);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{plan:?}");
    assert!(
        text.contains("172.29.78.0/24") && text.contains("fd29:78::/64"),
        "{text}"
    );
    assert!(text.contains(&v4) && text.contains(&v6), "{text}");
    let table = format!("trafficjam-{}", net.name);
    let _guard = TableGuard::inet(&table);
    assert!(!has_table(&table), "plan touched the kernel");
    // check reports the same network from the same variables, and passes.
    let out = trafficjam(&["check"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let line = text
        .lines()
        .find(|l| l.contains(&format!("✓ network {}", net.name)))
        .unwrap_or_else(|| panic!("no network line in:\n{text}"));
    assert!(line.contains("172.29.78.0/24, fd29:78::/64"), "{line}");
    assert!(
        line.contains(&format!("whitelisted: {} ({v4}, {v6})", proxy.name)),
        "{line}"
    );
    assert!(text.contains("✓ Docker"), "{text}");
    let out = trafficjam(&["check", "--network", "tj-no-such-network"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text.contains("✗ network tj-no-such-network"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    // The live part still ran and passed: only the network failed.
    assert!(text.contains("✓ 36 of 36 probes"), "{text}");
    let out = trafficjam(&["apply"], &env);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&proxy.name),
        "apply should say who is whitelisted: {text}"
    );
    assert!(has_table(&table));
    // status names the whitelisted container, asking Docker.
    let out = trafficjam(&["status"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{} ({v4})", proxy.name)), "{text}");
    let out = trafficjam(&["status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inst = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == net.name.as_str())
        .expect("the instance");
    assert_eq!(inst["names"][&v4], proxy.name.as_str(), "{v}");
    let out = trafficjam(&["clear", "--network", &net.name], &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(!has_table(&table));
}

#[test]
fn daemon_waits_for_the_network_then_enforces_it() {
    require_root();
    images().expect("Docker with the test images");
    let name = unique("tjlater");
    let label = unique("proxy");
    let filter = format!("label=tj.test={label}");
    let _guard = TableGuard::inet(&format!("trafficjam-{name}"));
    let daemon = Daemon::spawn(
        env!("CARGO_BIN_EXE_trafficjam"),
        &["run", "--network", &name, "--whitelist-filter", &filter],
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    // The network appears, with a proxy on it.
    let out = Command::new("docker")
        .args(["network", "create", "--subnet", "172.29.79.0/24", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _net = Network::adopt(&name);
    let _proxy = Container::run(
        "tjpx",
        &["--network", &name, "--label", &format!("tj.test={label}")],
        BUSYBOX_IMAGE,
        &[],
    )
    .unwrap();
    let table = format!("trafficjam-{name}");
    let start = Instant::now();
    while !has_table(&table) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the daemon never enforced the new network"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("waiting for it to be created"), "{log}");
    assert!(log.contains("rules stay in place"), "{log}");
    assert!(has_table(&table), "SIGTERM removed the rules");
    let out = trafficjam(&["clear", "--network", &name], &[]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn daemon_keeps_retrying_while_docker_is_unreachable() {
    require_root();
    let daemon = Daemon::spawn(
        env!("CARGO_BIN_EXE_trafficjam"),
        &[
            "run",
            "--network",
            "anything",
            "--whitelist-filter",
            "name=x",
        ],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "the daemon died instead of waiting: {log}");
    assert!(log.contains("cannot reach Docker"), "{log}");
    assert!(
        log.matches("retrying in").count() >= 2,
        "no backoff retries: {log}"
    );
}

/// A TCP front for the Docker socket, like a socket proxy: lets a test use
/// `DOCKER_HOST=tcp://…` and make Docker "go away" by stopping it.
struct SocketProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketProxy {
    fn start(port: u16) -> SocketProxy {
        use std::net::TcpListener;
        use std::os::unix::net::UnixStream;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the socket proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        let unix = UnixStream::connect("/var/run/docker.sock").unwrap();
                        let (mut t1, mut u1) =
                            (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
                        let (mut t2, mut u2) = (tcp, unix);
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut t1, &mut u1);
                            let _ = u1.shutdown(std::net::Shutdown::Both);
                        });
                        let t3 = t2.try_clone().unwrap();
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut u2, &mut t2);
                            let _ = t2.shutdown(std::net::Shutdown::Both);
                        });
                        conns.push(t3);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // Docker "goes away": cut every open connection.
            for c in conns {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        });
        SocketProxy {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn docker_over_tcp_going_away_keeps_the_rules_and_reconnects() {
    require_root();
    images().expect("Docker with the test images");
    let net = Network::create("tjtcp", &["172.29.80.0/24"]).unwrap();
    let (a, b) = (unique("pa"), unique("pb"));
    // Two filters, OR-ed: each matches one proxy.
    let pa = Container::run(
        "tjpa",
        &["--network", &net.name, "--label", &format!("tj.a={a}")],
        BUSYBOX_IMAGE,
        &[],
    )
    .unwrap();
    let pb = Container::run(
        "tjpb",
        &["--network", &net.name, "--label", &format!("tj.b={b}")],
        BUSYBOX_IMAGE,
        &[],
    )
    .unwrap();
    let proxy = SocketProxy::start(0);
    let host = proxy.host();
    let (fa, fb) = (format!("label=tj.a={a}"), format!("label=tj.b={b}"));
    let _guard = TableGuard::inet(&format!("trafficjam-{}", net.name));
    let daemon = Daemon::spawn(
        env!("CARGO_BIN_EXE_trafficjam"),
        &[
            "run",
            "--network",
            &net.name,
            "--whitelist-filter",
            &fa,
            "--whitelist-filter",
            &fb,
        ],
        &[("DOCKER_HOST", host.as_str())],
    );
    let table = format!("trafficjam-{}", net.name);
    let start = Instant::now();
    while !has_table(&table) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no table over DOCKER_HOST=tcp://"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Docker goes away (the proxy stops): the rules stay.
    let port = proxy.port;
    drop(proxy);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(has_table(&table), "losing Docker removed the rules");
    // Docker comes back on the same address: the daemon reconnects.
    let _proxy = SocketProxy::start(port);
    std::thread::sleep(Duration::from_millis(2500));
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    for c in [&pa, &pb] {
        assert!(log.contains(&c.name), "{} not whitelisted: {log}", c.name);
    }
    assert!(log.contains("keeping the current rules"), "{log}");
    assert!(
        log.matches("connected to Docker").count() >= 2,
        "never reconnected: {log}"
    );
    let out = trafficjam(&["clear", "--network", &net.name], &[]);
    assert!(out.status.success(), "{out:?}");
}
