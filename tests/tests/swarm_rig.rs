//! The swarm rig itself: three engines form a swarm, an overlay carries TCP
//! between tasks on different nodes, every node with a task has the
//! overlay's namespace, a fourth node joins later, an engine can be stopped
//! and started again, and nothing of the rig is left afterwards, also when
//! the test using it panics.
//!
//! Needs root and Docker (the test images are built in the machine's
//! engine); fails, never skips, when an engine cannot start.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trafficjam_testbed::docker::{unique, BUSYBOX_IMAGE};
use trafficjam_testbed::swarm::{Node, Swarm};
use trafficjam_testbed::{require_root, wait_until};

/// The running task container of `service` on `node`, if any.
fn task(node: &Node, service: &str) -> Option<String> {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let out = node
        .docker(&["ps", "-q", "--filter", &label, "--filter", "status=running"])
        .ok()?;
    out.lines().next().map(str::to_string)
}

/// `container`'s address on `network`.
fn address(node: &Node, container: &str, network: &str) -> String {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    node.docker(&["inspect", "--format", &f, container])
        .expect("task address")
}

/// The statuses `docker node ls` shows on the manager, by host name.
fn node_statuses(swarm: &Swarm) -> Vec<(String, String)> {
    let out = swarm
        .manager()
        .docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
        .expect("docker node ls");
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, s)| (h.to_string(), s.to_string()))
        .collect();
    v.sort();
    v
}

/// What is left of rig `name` (directory `dir`): processes, namespaces,
/// mounts, cgroups, the directory.
fn leftovers(name: &str, dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let dir_s = dir.to_string_lossy().into_owned();
    let cg = format!("/{name}-");
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let proc = PathBuf::from("/proc").join(pid.to_string());
        let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with(['Z', 'X']))
        {
            continue;
        }
        let cmdline = std::fs::read(proc.join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let cgroups = std::fs::read_to_string(proc.join("cgroup")).unwrap_or_default();
        if cmdline.contains(&dir_s) || cgroups.lines().any(|l| l.contains(&cg)) {
            left.push(format!("process {pid}: {cmdline}"));
        }
    }
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    for l in String::from_utf8_lossy(&netns.stdout).lines() {
        if l.starts_with(&format!("{name}-")) {
            left.push(format!("namespace {l}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for l in mounts.lines() {
        if l.split(' ').nth(4).is_some_and(|p| p.starts_with(&dir_s)) {
            left.push(format!("mount {l}"));
        }
    }
    let findmnt = std::process::Command::new("findmnt")
        .args(["-rn", "-o", "TARGET"])
        .output()
        .expect("findmnt");
    for l in String::from_utf8_lossy(&findmnt.stdout).lines() {
        if l.starts_with(&dir_s) {
            left.push(format!("findmnt {l}"));
        }
    }
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroups")
        .flatten()
    {
        for c in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
            if c.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
            {
                left.push(format!("cgroup {}", c.path().display()));
            }
        }
    }
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left
}

#[test]
fn three_nodes_carry_an_overlay_and_a_fourth_joins() {
    require_root();
    let started = Instant::now();
    let swarm = Swarm::start("tjsw", 3).expect("start a 3-node swarm");
    eprintln!("3-node swarm ready in {:?}", started.elapsed());
    let (name, dir) = (swarm.name().to_string(), swarm.dir().to_path_buf());
    let pids: Vec<u32> = swarm.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 3, "three engines run");

    // Every node a swarm member of its own name, with its own address.
    let hostnames: Vec<String> = swarm
        .nodes()
        .iter()
        .map(|n| n.hostname().to_string())
        .collect();
    let want: Vec<(String, String)> = hostnames
        .iter()
        .map(|h| (h.clone(), "Ready".to_string()))
        .collect();
    assert_eq!(node_statuses(&swarm), want);
    for n in swarm.nodes() {
        assert_eq!(
            n.docker(&["info", "--format", "{{.Swarm.NodeAddr}}"])
                .expect("info"),
            n.address()
        );
        assert!(n.netns_path().exists(), "{}", n.netns_path().display());
        // The images were loaded.
        n.docker(&["image", "inspect", BUSYBOX_IMAGE])
            .expect("busybox image on the node");
    }

    // An attachable overlay and a global service listening on it.
    let manager = swarm.manager();
    let net = unique("tjov");
    manager
        .docker(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--subnet",
            "10.215.7.0/24",
            &net,
        ])
        .expect("overlay");
    let service = unique("tjweb");
    manager
        .docker(&[
            "service",
            "create",
            "-d",
            "--name",
            &service,
            "--mode",
            "global",
            "--network",
            &net,
            "--endpoint-mode",
            "dnsrr",
            "--stop-grace-period",
            "1s",
            "--no-resolve-image",
            BUSYBOX_IMAGE,
            "nc",
            "-ll",
            "-p",
            "8080",
            "-e",
            "echo",
            "hi",
        ])
        .expect("service");
    let t = wait_until("a task on each node", Duration::from_secs(60), || {
        swarm.nodes().iter().all(|n| task(n, &service).is_some())
    });
    eprintln!("tasks running on 3 nodes after {t:?}");

    // Task on node 1 to task on node 2, over the overlay, by task address.
    let (n1, n2) = (swarm.node(1), swarm.node(2));
    let c1 = task(&n1, &service).expect("task on node 1");
    let c2 = task(&n2, &service).expect("task on node 2");
    let a2 = address(&n2, &c2, &net);
    assert!(a2.starts_with("10.215.7."), "task address {a2}");
    let mut last = String::new();
    let t = wait_until(
        "TCP from node 1's task to node 2's",
        Duration::from_secs(30),
        || match n1.docker(&["exec", &c1, "nc", "-w", "2", &a2, "8080"]) {
            Ok(out) if out == "hi" => true,
            Ok(out) => {
                last = out;
                false
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        },
    );
    eprintln!("overlay TCP 1 -> 2 after {t:?} (last: {last:?})");

    // Each node with a task has the overlay's namespace under
    // <exec-root>/netns: `<n>-<network id prefix>`, with br0 and vxlan0.
    let id = manager
        .docker(&["network", "inspect", "--format", "{{.Id}}", &net])
        .expect("network id");
    for n in swarm.nodes() {
        let names = n.sandboxes().expect("netns dir");
        let ns = n
            .overlay_netns_name(&net)
            .expect("overlay namespace lookup")
            .unwrap_or_else(|| panic!("{}: no overlay namespace among {names:?}", n.hostname()));
        let (_, prefix) = ns.split_once('-').expect("<n>-<id>");
        assert!(id.starts_with(prefix), "{ns} vs network id {id}");
        let links = n
            .overlay_netns(&net)
            .expect("overlay namespace")
            .exec("ip", &["-d", "link"])
            .expect("ip -d link");
        let links = String::from_utf8_lossy(&links.stdout);
        assert!(links.contains(": br0:"), "{links}");
        assert!(links.contains("vxlan id"), "{links}");
        assert!(links.contains("dstport 4789"), "{links}");
        eprintln!("{}: {names:?}", n.hostname());
    }

    // A fourth node joins, gets the global service's task.
    let started = Instant::now();
    let n3 = swarm.add_node().expect("add a node");
    eprintln!("4th node joined in {:?}", started.elapsed());
    assert_eq!(swarm.len(), 4);
    let statuses = node_statuses(&swarm);
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    assert!(statuses.iter().all(|(_, s)| s == "Ready"), "{statuses:?}");
    wait_until("a task on node 3", Duration::from_secs(60), || {
        task(&n3, &service).is_some()
    });

    // An engine stopped shows Down, started again rejoins.
    let started = Instant::now();
    n2.stop_engine().expect("stop node 2");
    assert!(n2.pid().is_none());
    wait_until("node 2 Down", Duration::from_secs(60), || {
        node_statuses(&swarm)
            .iter()
            .any(|(h, s)| h == n2.hostname() && s == "Down")
    });
    n2.start_engine().expect("start node 2");
    swarm
        .wait_ready(4, Duration::from_secs(60))
        .expect("node 2 back");
    eprintln!("node 2 stopped and back in {:?}", started.elapsed());

    drop((n1, n2, n3, manager));
    let started = Instant::now();
    drop(swarm);
    eprintln!("removed in {:?}", started.elapsed());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "dockerd {pid} still runs"
        );
    }
    assert_eq!(leftovers(&name, &dir), Vec::<String>::new());
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    require_root();
    let mut rig = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let swarm = Swarm::start("tjswp", 1).expect("start a 1-node swarm");
        rig = Some((swarm.name().to_string(), swarm.dir().to_path_buf()));
        let node = swarm.node(0);
        node.docker(&["run", "-d", "--name", "left", BUSYBOX_IMAGE, "sleep", "600"])
            .expect("a container");
        panic!("the test fails with a container running");
    }));
    assert!(result.is_err());
    let (name, dir) = rig.expect("the rig was started");
    assert_eq!(leftovers(&name, &dir), Vec::<String>::new());
}
