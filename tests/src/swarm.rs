//! A multi-node Docker Swarm on one machine: every node is a `dockerd` of
//! its own, in network, mount and UTS namespaces of its own, wired by veths
//! to a bridge in a "fabric" namespace of the rig's.
//!
//! ```text
//!                 fabric namespace <rig>-fab: bridge br0
//!        ┌──────────────┬─────────┴────┬──────────────┐
//!      n0 (veth)      n1             n2             n3 …
//!        │              │              │              │
//!   <rig>-n0 eth0   <rig>-n1 eth0  <rig>-n2 eth0  (add_node)
//!   10.213.0.10     10.213.0.11    10.213.0.12    10.213.0.13
//!   manager         worker         worker         worker
//! ```
//!
//! Nothing is added to the namespace the tests run in: the underlay lives
//! in the rig's namespaces only (so parallel rigs may, and do, use the same
//! addresses), and each engine's mounts live in its own mount namespace,
//! which is a slave of the machine's (nothing propagates back). Inside it
//! `/sys` is the node's own sysfs (the cgroup mounts carried over) and
//! `/run` a tmpfs of its own, so the engine also listens on the node's
//! `/var/run/docker.sock` (what a container on the node bind-mounts) and
//! containerd's shim sockets do not land in the machine's `/run`.
//!
//! The engines start empty and nothing can be pulled: the test images
//! ([`crate::docker::images`]) are saved from the machine's engine once per
//! rig and loaded into every node. Services must be created with
//! `--no-resolve-image`. The kernel may lack IPVS: VIPs and the ingress
//! routing mesh then do not work; task addresses, `--endpoint-mode dnsrr`
//! and host-mode ports do.
//!
//! Everything (engines and all their processes, containers included,
//! namespaces, cgroups, directories) is removed when the [`Swarm`] is
//! dropped, also when the test panics. A rig whose process was killed
//! outright (SIGKILL, no drop) is removed by the next [`Swarm::start`] of
//! any process. The machine's own engine, networks and rulesets are never
//! touched (it is only asked for `docker save`).
//!
//! Two traps when looking into a node from the tests:
//! - the namespaces in `<exec-root>/netns` are bind mounts of the node's
//!   mount namespace: reach them through [`Node::netns_dir`] /
//!   [`Node::sandbox`] / [`Node::overlay_netns`] (`/proc/<dockerd
//!   pid>/root/…`), not by the bare path;
//! - `nsenter --net=…` alone keeps the caller's `/sys`: `/sys/class/net`
//!   then shows the machine's interfaces, not the namespace's. Use `ip`
//!   (netlink) or [`Netns::run`].

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::docker::{unique, BUSYBOX_IMAGE, TRAFFICJAM_IMAGE};
use crate::Netns;

/// The underlay subnet, inside the rig's namespaces only.
pub const UNDERLAY: &str = "10.213.0.0/24";
/// Swarm's default address pool (`--default-addr-pool`), unused on the
/// machine: `ingress` and overlays created without `--subnet` get a /24
/// from it.
pub const ADDR_POOL: &str = "10.214.0.0/16";
/// A range for overlays the tests create with an explicit `--subnet`
/// (outside [`ADDR_POOL`], unused on the machine): `10.215.N.0/24`.
pub const TEST_SUBNETS: &str = "10.215.0.0/16";

/// How long an engine may take to answer after it was started.
const ENGINE_START: Duration = Duration::from_secs(90);
/// How long a graceful stop (SIGTERM) may take before SIGKILL.
const ENGINE_STOP: Duration = Duration::from_secs(60);
/// How long nodes may take to be `Ready` on the manager.
const NODES_READY: Duration = Duration::from_secs(60);

/// The address of node `index` on the underlay.
fn node_address(index: usize) -> String {
    assert!(index < 200, "a rig holds at most 200 nodes");
    format!("10.213.0.{}", 10 + index)
}

/// A Docker Swarm of `dockerd`s, node 0 its (only) manager.
pub struct Swarm {
    name: String,
    dir: PathBuf,
    /// The fabric namespace (deleted when dropped, after the nodes).
    fabric: Netns,
    images: PathBuf,
    nodes: Mutex<Vec<Arc<Node>>>,
    /// The worker join token, once the swarm is initialised.
    token: Mutex<Option<String>>,
    /// Held while a node is added (one index per node).
    adding: Mutex<()>,
}

/// What a node needs to know of its rig to create itself.
struct Rig<'a> {
    name: &'a str,
    dir: &'a Path,
    fabric: &'a str,
    images: &'a Path,
}

impl Swarm {
    /// Start `nodes` engines (at least 1), load the test images into each,
    /// `swarm init` on node 0 and `swarm join` the others as workers; return
    /// once the manager lists all of them `Ready`. Names begin with
    /// `unique(prefix)` (keep `prefix` short: it ends up in namespace,
    /// cgroup and host names).
    pub fn start(prefix: &str, nodes: usize) -> io::Result<Swarm> {
        if nodes == 0 {
            return Err(io::Error::other("a swarm needs at least one node"));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(io::Error::other(
                "a swarm rig starts dockerd in namespaces of its own: run as root",
            ));
        }
        reap_stale_rigs();
        crate::docker::images()?;
        let name = unique(prefix);
        let dir = std::env::temp_dir().join(&name);
        let fabric = format!("{name}-fab");
        // From here on every failure drops `swarm`, which removes what
        // exists of it.
        let swarm = Swarm {
            images: dir.join("images.tar"),
            name,
            fabric: Netns::attach(&fabric, Path::new("/run/netns").join(&fabric)),
            dir,
            nodes: Mutex::new(Vec::new()),
            token: Mutex::new(None),
            adding: Mutex::new(()),
        };
        fs::create_dir_all(&swarm.dir)?;
        let owner = owner_id(std::process::id())
            .ok_or_else(|| io::Error::other("cannot read /proc/self/stat"))?;
        // Written under another name and renamed: a concurrent reaper (a
        // rig starting on another test thread) reads either no marker or a
        // whole one, never the empty file `fs::write` creates first, which
        // it would take for a dead owner's and delete this rig's namespaces.
        let partial = swarm.dir.join(format!("{RIG_MARKER}.partial"));
        fs::write(&partial, owner)?;
        fs::rename(&partial, swarm.dir.join(RIG_MARKER))?;
        crate::run("ip", &["netns", "add", swarm.fabric.name()])?;
        swarm.create_fabric()?;
        crate::docker::docker(&[
            "save",
            "-o",
            path_str(&swarm.images)?,
            BUSYBOX_IMAGE,
            TRAFFICJAM_IMAGE,
        ])?;

        // The engines start in parallel: each takes a second or more.
        let rig = swarm.rig();
        let created: Vec<io::Result<Node>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..nodes)
                .map(|i| {
                    let rig = &rig;
                    s.spawn(move || Node::create(rig, i))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("node creation panicked")))
                })
                .collect()
        });
        let mut first_error = None;
        for node in created {
            match node {
                Ok(node) => swarm.lock_nodes().push(Arc::new(node)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        swarm.lock_nodes().sort_by_key(|n| n.index);

        let manager = swarm.manager();
        manager.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            manager.address(),
            "--listen-addr",
            &format!("{}:2377", manager.address()),
            "--default-addr-pool",
            ADDR_POOL,
            "--default-addr-pool-mask-length",
            "24",
        ])?;
        let token = manager.docker(&["swarm", "join-token", "-q", "worker"])?;
        *swarm.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());

        let workers: Vec<Arc<Node>> = swarm.nodes().into_iter().skip(1).collect();
        let joined: Vec<io::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = workers
                .iter()
                .map(|w| {
                    let (token, manager) = (&token, manager.address());
                    s.spawn(move || w.join(token, manager))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("swarm join panicked")))
                })
                .collect()
        });
        joined.into_iter().collect::<io::Result<Vec<()>>>()?;
        swarm.wait_ready(nodes, NODES_READY)?;
        Ok(swarm)
    }

    fn rig(&self) -> Rig<'_> {
        Rig {
            name: &self.name,
            dir: &self.dir,
            fabric: self.fabric.name(),
            images: &self.images,
        }
    }

    fn create_fabric(&self) -> io::Result<()> {
        let fabric = &self.fabric;
        fabric.ip(&["link", "set", "lo", "up"])?;
        fabric.ip(&["link", "add", "br0", "type", "bridge"])?;
        fabric.ip(&["link", "set", "br0", "up"])?;
        // The fabric is a plain switch: bridged frames skip the (empty)
        // IP hooks of its namespace where br_netfilter is loaded.
        for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
            let path = format!("net.bridge.{key}");
            let _ = fabric.sysctl(&path, "0");
        }
        Ok(())
    }

    fn lock_nodes(&self) -> MutexGuard<'_, Vec<Arc<Node>>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rig's unique name (`<prefix>-<pid>-<n>`), which every name of
    /// it begins with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rig's directory: node data, exec roots, logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fabric namespace, holding the bridge `br0` and one veth `n<i>`
    /// per node (capture the underlay, VXLAN included, there).
    pub fn fabric(&self) -> &Netns {
        &self.fabric
    }

    /// Node `index` (0 is the manager). Panics when there is no such node.
    /// The node is removed with the swarm, even if this handle outlives it.
    pub fn node(&self, index: usize) -> Arc<Node> {
        let nodes = self.lock_nodes();
        nodes
            .get(index)
            .cloned()
            .unwrap_or_else(|| panic!("the swarm has {} nodes, not {}", nodes.len(), index + 1))
    }

    /// The manager, node 0.
    pub fn manager(&self) -> Arc<Node> {
        self.node(0)
    }

    /// All nodes, in order.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.lock_nodes().clone()
    }

    /// How many nodes the rig has.
    pub fn len(&self) -> usize {
        self.lock_nodes().len()
    }

    /// Never: a started swarm has a manager.
    pub fn is_empty(&self) -> bool {
        self.lock_nodes().is_empty()
    }

    /// Start one more engine, load the images and join it as a worker;
    /// returns once the manager lists it `Ready`.
    pub fn add_node(&self) -> io::Result<Arc<Node>> {
        let token = self
            .token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| io::Error::other("the swarm is not initialised"))?;
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let index = self.len();
        let node = Arc::new(Node::create(&self.rig(), index)?);
        // Owned by the rig from now on, also if the join fails.
        self.lock_nodes().push(node.clone());
        node.join(&token, &node_address(0))?;
        self.wait_ready(index + 1, NODES_READY)?;
        Ok(node)
    }

    /// Wait until the manager lists `count` nodes, all `Ready`.
    pub fn wait_ready(&self, count: usize, limit: Duration) -> io::Result<()> {
        let manager = self.manager();
        let start = Instant::now();
        let mut last = String::new();
        loop {
            if let Ok(out) = manager.docker(&["node", "ls", "--format", "{{.Status}}"]) {
                let statuses: Vec<&str> = out.lines().map(str::trim).collect();
                if statuses.len() == count && statuses.iter().all(|s| *s == "Ready") {
                    return Ok(());
                }
                last = out;
            }
            if start.elapsed() > limit {
                return Err(io::Error::other(format!(
                    "{}: not {count} nodes Ready after {limit:?}; `docker node ls` said: {}",
                    self.name,
                    last.replace('\n', ", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let nodes = std::mem::take(&mut *self.lock_nodes());
        std::thread::scope(|s| {
            for node in &nodes {
                s.spawn(move || node.remove());
            }
        });
        let _ = Command::new("ip")
            .args(["netns", "del", self.fabric.name()])
            .output();
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One node: an engine in namespaces of its own.
pub struct Node {
    index: usize,
    hostname: String,
    address: String,
    dir: PathBuf,
    netns: Netns,
    /// The cgroup every process of the node (engine, containerd, shims,
    /// containers) is in, in every hierarchy: `/<hostname>`.
    cgroup: String,
    /// Where the engine's processes are put (a cgroup directory) if that
    /// could be created.
    engine_cgroup: Option<PathBuf>,
    engine: Mutex<Option<Child>>,
    removed: AtomicBool,
}

impl Node {
    fn create(rig: &Rig<'_>, index: usize) -> io::Result<Node> {
        let hostname = format!("{}-n{index}", rig.name);
        let dir = rig.dir.join(format!("n{index}"));
        for sub in ["data", "exec", "cgroup"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        crate::run("ip", &["netns", "add", &hostname])?;
        let mut node = Node {
            index,
            address: node_address(index),
            // A `Netns` runs `ip netns del <label>` when dropped: labelled
            // with its own name, this one is owned (deleted with the node).
            netns: Netns::attach(&hostname, Path::new("/run/netns").join(&hostname)),
            cgroup: hostname.clone(),
            hostname,
            dir,
            engine_cgroup: None,
            engine: Mutex::new(None),
            removed: AtomicBool::new(false),
        };
        // `node` removes itself when dropped from here on.
        node.wire(rig)?;
        node.engine_cgroup = node.create_engine_cgroup();
        node.write_config()?;
        node.start_engine()?;
        node.docker(&["load", "-q", "-i", path_str(rig.images)?])?;
        Ok(node)
    }

    /// The veth `n<i>` on the fabric's bridge, `eth0` with the node's
    /// address in the node.
    fn wire(&self, rig: &Rig<'_>) -> io::Result<()> {
        let fabric = ["-n", rig.fabric];
        let port = format!("n{}", self.index);
        let run = |args: &[&str]| crate::run("ip", &[&fabric[..], args].concat());
        run(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &self.hostname,
        ])?;
        run(&["link", "set", &port, "master", "br0", "up"])?;
        // No duplicate address detection or router solicitations: nothing
        // to wait for when an interface comes up.
        self.netns.sysctls(&[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.router_solicitations", "0"),
            ("net.ipv6.conf.default.router_solicitations", "0"),
        ])?;
        self.netns.ip(&["link", "set", "lo", "up"])?;
        self.netns.ip(&[
            "addr",
            "add",
            &format!("{}/24", self.address),
            "dev",
            "eth0",
        ])?;
        self.netns.ip(&["link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// `<hierarchy>/<cgroup>/engine`, the pids hierarchy under cgroup v1 or
    /// the unified one; none if it cannot be created (the processes are
    /// then found by their command lines and containers' cgroups alone).
    fn create_engine_cgroup(&self) -> Option<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        let hierarchy = if root.join("cgroup.controllers").exists() {
            root.to_path_buf()
        } else {
            root.join("pids")
        };
        let engine = hierarchy.join(&self.cgroup).join("engine");
        fs::create_dir_all(&engine).ok()?;
        Some(engine)
    }

    fn write_config(&self) -> io::Result<()> {
        let config = serde_json::json!({
            "storage-driver": "vfs",
            // Containers in the node's cgroup (not the machine engine's
            // `/docker`), found and removed with it.
            "cgroup-parent": format!("/{}", self.cgroup),
            "exec-opts": ["native.cgroupdriver=cgroupfs"],
            "iptables": true,
            "ip-forward": true,
            "log-driver": "json-file",
            "features": { "buildkit": false },
        });
        fs::write(self.dir.join("daemon.json"), config.to_string())
    }

    /// The script the engine starts from, inside the node's network
    /// namespace and a new mount and UTS namespace (mounts: slave of the
    /// machine's): own sysfs (keeping the cgroup mounts), own /run, shared
    /// propagation for the engine's namespace and volume mounts, the
    /// node's host name, then `exec dockerd`.
    fn engine_script(&self) -> io::Result<String> {
        let dir = path_str(&self.dir)?;
        let mut script = String::from("set -e\n");
        if let Some(cg) = &self.engine_cgroup {
            script += &format!("echo $$ > '{}/cgroup.procs'\n", path_str(cg)?);
        }
        script += &format!(
            "mount --rbind /sys/fs/cgroup '{dir}/cgroup'\n\
             mount -t sysfs sysfs /sys\n\
             mount --move '{dir}/cgroup' /sys/fs/cgroup\n\
             mount -t tmpfs -o mode=755 tmpfs /run\n\
             mount --make-rshared /\n\
             hostname '{host}'\n\
             exec dockerd --config-file '{dir}/daemon.json' --data-root '{dir}/data' \
             --exec-root /run/docker --pidfile '{dir}/docker.pid' \
             -H 'unix://{dir}/docker.sock' -H unix:///var/run/docker.sock\n",
            host = self.hostname,
        );
        Ok(script)
    }

    fn join(&self, token: &str, manager: &str) -> io::Result<()> {
        self.docker(&[
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            &self.address,
            "--listen-addr",
            &format!("{}:2377", self.address),
            &format!("{manager}:2377"),
        ])
        .map(|_| ())
    }

    fn lock_engine(&self) -> MutexGuard<'_, Option<Child>> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its index in the rig (0: the manager).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its host name, which is also its swarm node name (`docker node ls`
    /// HOSTNAME), its network namespace's and its cgroup's name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Its underlay address (the swarm advertise and data-path address).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The engine's socket as the machine sees it (inside the node it also
    /// listens on `/var/run/docker.sock`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `unix://<socket>`, for `DOCKER_HOST` or `docker -H`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Run `docker -H <node> ARGS`; fail with its stderr on a non-zero exit.
    pub fn docker(&self, args: &[&str]) -> io::Result<String> {
        let out = self.docker_output(args)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`docker {}` on {} failed: {}",
                args.join(" "),
                self.hostname,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Run `docker -H <node> ARGS` and return its output whatever the exit
    /// status.
    pub fn docker_output(&self, args: &[&str]) -> io::Result<Output> {
        Command::new("docker")
            .arg("-H")
            .arg(self.docker_host())
            .args(args)
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run docker: {e}")))
    }

    /// The node's network namespace (the underlay `eth0`,
    /// `docker_gwbridge`, the engine's iptables rules).
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// `/run/netns/<hostname>`, for `nsenter --net=`, `setns` or
    /// [`Netns::attach`].
    pub fn netns_path(&self) -> PathBuf {
        self.netns.path()
    }

    /// The engine's `--exec-root`, as the engine sees it. Its `netns/`
    /// holds the namespaces of sandboxes and overlays, bind-mounted inside
    /// the node's mount namespace only: from the machine, reach them
    /// through [`Node::netns_dir`] / [`Node::in_node`].
    pub fn exec_root(&self) -> PathBuf {
        // Not /var/run: a symlink, which /proc/PID/root would resolve in
        // the machine's root.
        PathBuf::from("/run/docker")
    }

    /// The engine's `--data-root`.
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The node's directory (config, log, data and exec roots).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The engine's process id, while it runs (a process of the machine's
    /// PID namespace, as are its containers' `State.Pid`).
    pub fn pid(&self) -> Option<u32> {
        let mut engine = self.lock_engine();
        match engine.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => engine.as_ref().map(Child::id),
            _ => None,
        }
    }

    /// `path` as the engine sees it (in its mount namespace), reachable
    /// from the machine: `/proc/<engine pid>/root/<path>`. Changes when the
    /// engine is restarted.
    pub fn in_node(&self, path: impl AsRef<Path>) -> io::Result<PathBuf> {
        let pid = self.pid().ok_or_else(|| {
            io::Error::other(format!("the engine of {} is not running", self.hostname))
        })?;
        let path = path.as_ref();
        Ok(Path::new("/proc")
            .join(pid.to_string())
            .join("root")
            .join(path.strip_prefix("/").unwrap_or(path)))
    }

    /// `<exec-root>/netns` as seen from the machine: the namespace files of
    /// the node's sandboxes (container ids' first 12 characters),
    /// overlays (`<n>-<network id>` cut to 12 characters), load balancers
    /// (`lb_<network id prefix>`) and `ingress_sbox`.
    pub fn netns_dir(&self) -> io::Result<PathBuf> {
        self.in_node(self.exec_root().join("netns"))
    }

    /// The names in [`Node::netns_dir`], sorted.
    pub fn sandboxes(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(self.netns_dir()?)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The namespace `name` of [`Node::netns_dir`], attached (valid until
    /// the engine is restarted).
    pub fn sandbox(&self, name: &str) -> io::Result<Netns> {
        let path = self.netns_dir()?.join(name);
        if !path.exists() {
            return Err(io::Error::other(format!(
                "{} has no namespace {name} (it has {:?})",
                self.hostname,
                self.sandboxes().unwrap_or_default()
            )));
        }
        Ok(Netns::attach(&format!("{}:{name}", self.hostname), path))
    }

    /// The name of overlay `network`'s namespace on this node
    /// (`<n>-<network id>` cut to 12 characters), if the node has it (it
    /// does while a task or container of the node is attached).
    pub fn overlay_netns_name(&self, network: &str) -> io::Result<Option<String>> {
        let id = self.docker(&["network", "inspect", "--format", "{{.Id}}", network])?;
        Ok(self.sandboxes()?.into_iter().find(|name| {
            name.split_once('-').is_some_and(|(n, rest)| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && !rest.is_empty()
                    && id.starts_with(rest)
            })
        }))
    }

    /// Overlay `network`'s namespace on this node (bridge `br0`, `vxlan0`
    /// and one veth per local endpoint), attached.
    pub fn overlay_netns(&self, network: &str) -> io::Result<Netns> {
        let name = self.overlay_netns_name(network)?.ok_or_else(|| {
            io::Error::other(format!(
                "{} has no namespace of overlay {network} (it has {:?})",
                self.hostname,
                self.sandboxes().unwrap_or_default()
            ))
        })?;
        self.sandbox(&name)
    }

    /// A container's network namespace (`/proc/<State.Pid>/ns/net`).
    pub fn container_netns(&self, container: &str) -> io::Result<Netns> {
        let pid = self.docker(&["inspect", "--format", "{{.State.Pid}}", container])?;
        if pid == "0" {
            return Err(io::Error::other(format!(
                "container {container} on {} is not running",
                self.hostname
            )));
        }
        // Not labelled with a bare name: a `Netns` runs `ip netns del
        // <label>` when dropped.
        Ok(Netns::attach(
            &format!("{}:{container}", self.hostname),
            format!("/proc/{pid}/ns/net"),
        ))
    }

    /// Its swarm node id.
    pub fn node_id(&self) -> io::Result<String> {
        self.docker(&["info", "--format", "{{.Swarm.NodeID}}"])
    }

    /// The engine's log (stdout and stderr of dockerd, all its runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Start the engine (if it is not running) and wait until it answers.
    /// A node that was in the swarm rejoins it by itself.
    pub fn start_engine(&self) -> io::Result<()> {
        let mut engine = self.lock_engine();
        if let Some(child) = engine.as_mut() {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))?;
        // No `ip netns exec`: it would remount /sys and hide the cgroup
        // mounts. `nsenter` and `unshare` exec, so the child is dockerd.
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path().display()))
            .args(["unshare", "-m", "-u", "--propagation", "slave"])
            .args(["sh", "-c", &self.engine_script()?])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run nsenter: {e}")))?;
        *engine = Some(child);
        let start = Instant::now();
        loop {
            if let Some(status) = engine.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(io::Error::other(format!(
                    "dockerd of {} exited ({status}) while starting:\n{}",
                    self.hostname,
                    self.log_tail(30)
                )));
            }
            if ping(&self.socket()) {
                return Ok(());
            }
            if start.elapsed() > ENGINE_START {
                return Err(io::Error::other(format!(
                    "dockerd of {} did not answer within {ENGINE_START:?}:\n{}",
                    self.hostname,
                    self.log_tail(30)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the engine gracefully (SIGTERM; SIGKILL after a minute), then
    /// kill whatever of the node's processes is left. Its containers stop
    /// with it (a task's stop grace period applies: `--stop-grace-period`).
    pub fn stop_engine(&self) -> io::Result<()> {
        let mut engine = self.lock_engine();
        if let Some(mut child) = engine.take() {
            if child.try_wait()?.is_none() {
                signal(child.id(), libc::SIGTERM);
                let start = Instant::now();
                while child.try_wait()?.is_none() {
                    if start.elapsed() > ENGINE_STOP {
                        signal(child.id(), libc::SIGKILL);
                        child.wait()?;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        drop(engine);
        self.kill_all();
        Ok(())
    }

    /// Kill every process of the node at once (the engine first): no
    /// graceful stop, what a power cut would do. The node shows `Down` on
    /// the manager a little later.
    pub fn kill_engine(&self) {
        if let Some(mut child) = self.lock_engine().take() {
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
        self.kill_all();
    }

    /// SIGKILL every process of the node until none is left.
    fn kill_all(&self) {
        kill_processes(std::slice::from_ref(&self.cgroup), &self.dir);
    }

    /// Remove everything of the node: processes, cgroups, mounts (none
    /// should be visible here), directory, namespace. Idempotent.
    fn remove(&self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.kill_engine();
        remove_cgroups(&self.cgroup);
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.hostname])
            .output();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether the engine behind `socket` answers `GET /_ping` with `OK`.
fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with("OK")
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGKILL, until none is left (10 s at most), every live process in
/// one of `cgroups` (`/<name>` or below, in any hierarchy) or whose command
/// line names a path under `dir`; not this process's children (the docker
/// CLI run by another thread), nor this process.
fn kill_processes(cgroups: &[String], dir: &Path) {
    let start = Instant::now();
    loop {
        let pids = processes(cgroups, dir);
        if pids.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return;
        }
        for pid in pids {
            signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes [`kill_processes`] kills.
fn processes(cgroups: &[String], dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let dir = format!("{}/", dir.display());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let proc = Path::new("/proc").join(pid.to_string());
            let stat = fs::read_to_string(proc.join("stat")).unwrap_or_default();
            // After the command name: state, parent pid, …
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, r)| r)
                .unwrap_or("")
                .split_whitespace();
            let state = fields.next().unwrap_or("");
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            if state.starts_with(['Z', 'X']) || ppid == Some(me) {
                return false;
            }
            let in_cgroup = fs::read_to_string(proc.join("cgroup"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.splitn(3, ':').nth(2))
                .any(|p| {
                    cgroups.iter().any(|cg| {
                        p.strip_prefix('/')
                            .and_then(|p| p.strip_prefix(cg.as_str()))
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                    })
                });
            in_cgroup
                || fs::read(proc.join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&dir))
                    .unwrap_or(false)
        })
        .collect()
}

/// The file in a rig's directory naming the process that owns it.
const RIG_MARKER: &str = "rig-owner";

/// This process, as `<pid> <start time>` (the start time tells a reused
/// pid apart).
fn owner_id(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime) is the 20th after the command name.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Remove what rigs of processes that are gone left behind (a test run
/// killed with SIGKILL cannot drop its rigs): directories in the temporary
/// directory holding a [`RIG_MARKER`] whose process no longer exists, with
/// their processes, cgroups and namespaces.
fn reap_stale_rigs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(owner) = fs::read_to_string(dir.join(RIG_MARKER)) else {
            continue;
        };
        let owner = owner.trim();
        let pid = owner
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        // Rigs of this process are alive (each drops its own), whether or
        // not their marker is whole yet.
        if pid == Some(std::process::id()) {
            continue;
        }
        let alive = pid.and_then(owner_id).is_some_and(|now| now == owner);
        if alive {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let cgroups: Vec<String> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|n| n.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.len() > 1 && n.starts_with('n') && n[1..].bytes().all(|b| b.is_ascii_digit())
            })
            .map(|n| format!("{name}-{n}"))
            .collect();
        kill_processes(&cgroups, &dir);
        for cg in &cgroups {
            remove_cgroups(cg);
        }
        let fabric = format!("{name}-fab");
        for ns in cgroups.iter().chain([&fabric]) {
            if Path::new("/run/netns").join(ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
            }
        }
        unmount_under(&dir);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Remove `<hierarchy>/<name>` and everything below it, in every cgroup
/// hierarchy (v1 controllers and the unified one), deepest first; retried
/// briefly, as a cgroup whose last process just died may still be busy.
fn remove_cgroups(name: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut tops = vec![root.join(name)];
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            // Co-mounted controllers appear as symlinks too: the real
            // directories cover them.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                tops.push(e.path().join(name));
            }
        }
    }
    for top in tops.into_iter().filter(|t| t.is_dir()) {
        for _ in 0..50 {
            if rmdir_tree(&top) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// rmdir `dir`'s subdirectories, then `dir`; whether `dir` is gone.
fn rmdir_tree(dir: &Path) -> bool {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    fs::remove_dir(dir).is_ok() || !dir.exists()
}

/// Detach every mount at or below `dir` visible here, deepest first
/// (there should be none: the engines mount in namespaces of their own).
fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_point(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.to_string_lossy().as_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A mount point of /proc/self/mountinfo, its `\NNN` octal escapes undone.
fn unescape_mount_point(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn path_str(p: &Path) -> io::Result<&str> {
    p.to_str()
        .ok_or_else(|| io::Error::other(format!("{} is not UTF-8", p.display())))
}
