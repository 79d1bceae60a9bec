//! A real runtime as the client: Podman (Debian's, CNI backend) runs
//! containers from a locally imported busybox image on a network whose
//! chain ends in trafficjam. Podman runs inside a namespace the test owns
//! (so its bridges, iptables and nftables rules live there), with its own
//! storage and configuration in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use trafficjam_testbed::probe::tcp_connect;
use trafficjam_testbed::{require_root, Listener, Netns};

const PLUGIN: &str = env!("CARGO_BIN_EXE_trafficjam-cni");

/// Podman confined to a namespace and a scratch directory; everything it
/// made is removed on drop.
struct Podman {
    ns: Netns,
    dir: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        require_root();
        assert!(
            Command::new("podman")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "podman is missing: apt-get install podman (scripts/test.sh does)"
        );
        let ns = Netns::new("tjpod").unwrap();
        let dir = std::env::temp_dir().join(format!("tjpod-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        for p in ["bridge", "host-local", "portmap", "loopback"] {
            std::os::unix::fs::symlink(Path::new("/usr/lib/cni").join(p), bin.join(p)).unwrap();
        }
        std::os::unix::fs::symlink(PLUGIN, bin.join("trafficjam")).unwrap();
        // cgroupfs and a file event log: no systemd needed; ulimits within
        // what this machine's hard limits allow.
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{bin}\"]\nnetwork_config_dir = \"{cni}\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             [containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=512:512\"]\n",
            bin = bin.display(),
            cni = dir.join("cni").display()
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        let p = Podman { ns, dir };
        p.import_busybox();
        p
    }

    fn podman(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path().display()))
            .arg("podman")
            .args(["--root", &self.path("root"), "--runroot", &self.path("run")])
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .output()
            .expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn import_busybox(&self) {
        let root = self.dir.join("image");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (busybox-static)");
        std::os::unix::fs::symlink("busybox", root.join("bin/sleep")).unwrap();
        let tar = self.dir.join("image.tar");
        let out = Command::new("tar")
            .args([
                "-C",
                &root.display().to_string(),
                "-cf",
                &tar.display().to_string(),
                ".",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        self.ok(&[
            "import",
            &tar.display().to_string(),
            "localhost/tjbox:latest",
        ]);
    }

    /// A network: bridge `bridge`, subnet `subnet`, then trafficjam.
    fn network(&self, name: &str, bridge: &str, subnet: &str, policy: &str) {
        let list = json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
                 "ipam": {"type": "host-local", "dataDir": self.path("ipam"),
                          "ranges": [[{"subnet": subnet}]]}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "trafficjam", "ingressPolicy": policy, "dataDir": self.path("trafficjam")}
            ]
        });
        std::fs::write(
            self.dir.join("cni").join(format!("{name}.conflist")),
            list.to_string(),
        )
        .unwrap();
    }

    /// Start a container on `network`; its namespace and address.
    fn run(&self, name: &str, network: &str) -> (Netns, std::net::IpAddr) {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "localhost/tjbox",
            "sleep",
            "600",
        ]);
        let pid = self.ok(&["inspect", name, "--format", "{{.State.Pid}}"]);
        let ip = self.ok(&[
            "inspect",
            name,
            "--format",
            &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        ]);
        (
            Netns::attach(name, format!("/proc/{pid}/ns/net")),
            ip.parse().unwrap(),
        )
    }

    fn tables(&self) -> String {
        String::from_utf8_lossy(&self.ns.exec("nft", &["list", "tables"]).unwrap().stdout)
            .into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        let _ = self.podman(&["rmi", "-af"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn podman_runs_containers_through_trafficjam() {
    let p = Podman::new();
    p.network("tjopen", "tjpodopen0", "10.96.1.0/24", "same-bridge");
    p.network("tjiso", "tjpodiso0", "10.96.2.0/24", "isolated");
    let (o1, _) = p.run("tjo1", "tjopen");
    let (o2, o2_ip) = p.run("tjo2", "tjopen");
    let (i1, _) = p.run("tji1", "tjiso");
    let (i2, i2_ip) = p.run("tji2", "tjiso");
    let _listeners = [&o2, &i2].map(|ns| Listener::start(ns).unwrap());
    let t = Duration::from_millis(700);
    // Positive control: same bridge, same-bridge policy.
    assert!(
        tcp_connect(&o1, o2_ip, t),
        "tjo1 -> tjo2 on a same-bridge network"
    );
    assert!(
        !tcp_connect(&i1, i2_ip, t),
        "tji1 -> tji2 on an isolated network"
    );
    assert!(!tcp_connect(&o1, i2_ip, t), "tjo1 -> tji2 across bridges");
    assert!(!tcp_connect(&i1, o2_ip, t), "tji1 -> tjo2 across bridges");
    let tables = p.tables();
    assert!(
        tables.contains("inet trafficjam-cni") && tables.contains("bridge trafficjam-cni"),
        "{tables}"
    );

    // Removing the containers runs DEL: the isolated bridge's ports go
    // with its last container (the other bridge's stay port-secured),
    // everything with the last of all.
    drop((i1, i2, o1, o2));
    p.ok(&["rm", "-f", "-t", "0", "tji1", "tji2"]);
    let tables = p.tables();
    assert!(tables.contains("inet trafficjam-cni"), "{tables}");
    let isolated =
        p.ns.exec(
            "nft",
            &["list", "set", "bridge", "trafficjam-cni", "isolated_ports"],
        )
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&isolated.stdout).contains("elements"),
        "{}",
        String::from_utf8_lossy(&isolated.stdout)
    );
    p.ok(&["rm", "-f", "-t", "0", "tjo1", "tjo2"]);
    let tables = p.tables();
    assert!(!tables.contains("trafficjam"), "{tables}");
}
