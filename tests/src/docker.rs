//! Docker fixtures for the tests: images built locally (there is no
//! registry), and networks, containers and host addresses of the test's
//! own, removed when dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::Netns;

/// The busybox image: a static busybox from Debian's busybox-static.
pub const BUSYBOX_IMAGE: &str = "tj-busybox:test";
/// The trafficjam image, built from the repository's Dockerfile.
pub const TRAFFICJAM_IMAGE: &str = "trafficjam:test";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Run `docker ARGS`; fail with its stderr on a non-zero exit.
pub fn docker(args: &[&str]) -> io::Result<String> {
    let out = docker_output(args)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run `docker ARGS` and return its output whatever the exit status.
pub fn docker_output(args: &[&str]) -> io::Result<Output> {
    Command::new("docker").args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run docker: {e} (is Docker installed?)"),
        )
    })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Build both test images once per process. Fails, never skips, when a
/// requirement is missing, saying how to provide it.
pub fn images() -> io::Result<()> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_images().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

fn build_images() -> io::Result<()> {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .map_err(|e| io::Error::other(format!("Docker is not reachable: {e}")))?;
    // busybox: a FROM-scratch image holding Debian's static busybox.
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err(io::Error::other(
            "/bin/busybox is missing: apt-get install busybox-static (scripts/test.sh does)",
        ));
    }
    // The busybox image only ever holds Debian's busybox: reuse it rather
    // than import a copy per run (each would leave the last one dangling).
    if docker(&["image", "inspect", "-f", "{{.Id}}", BUSYBOX_IMAGE]).is_err() {
        import_busybox(busybox)?;
    }
    build_trafficjam_image()
}

fn import_busybox(busybox: &Path) -> io::Result<()> {
    let dir = std::env::temp_dir().join(unique("tj-busybox"));
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::copy(busybox, dir.join("bin/busybox"))?;
    for applet in ["sh", "sleep", "nc", "ping", "ip", "cat", "echo"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
    }
    let tar = Command::new("tar")
        .args(["-C", dir.to_str().unwrap_or("."), "-c", "."])
        .output()?;
    let mut import = Command::new("docker")
        .args([
            "import",
            "-c",
            "CMD [\"/bin/sleep\",\"3600\"]",
            "-",
            BUSYBOX_IMAGE,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    {
        use std::io::Write;
        import
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("docker import stdin"))?
            .write_all(&tar.stdout)?;
    }
    let status = import.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        return Err(io::Error::other(
            "docker import of the busybox image failed",
        ));
    }
    Ok(())
}

/// trafficjam: the Dockerfile, around the static release binary. The image
/// it replaces (built by an earlier run) is removed, not left dangling.
fn build_trafficjam_image() -> io::Result<()> {
    let binary = repo_root().join("target/x86_64-unknown-linux-musl/release/trafficjam");
    if !binary.exists() {
        return Err(io::Error::other(format!(
            "{} is missing: cargo build --release --target x86_64-unknown-linux-musl -p trafficjam-cli (scripts/test.sh does)",
            binary.display()
        )));
    }
    let root = repo_root();
    let before = docker(&["image", "inspect", "-f", "{{.Id}}", TRAFFICJAM_IMAGE]).ok();
    docker(&[
        "build",
        "-q",
        "-t",
        TRAFFICJAM_IMAGE,
        root.to_str().unwrap_or("."),
    ])?;
    let after = docker(&["image", "inspect", "-f", "{{.Id}}", TRAFFICJAM_IMAGE]).ok();
    if let Some(old) = before.filter(|b| Some(b) != after.as_ref()) {
        let _ = docker(&["image", "rm", old.trim()]);
    }
    Ok(())
}

/// A Docker network of the test's own.
pub struct Network {
    /// Its name.
    pub name: String,
}

impl Network {
    /// Take ownership of a network the test created itself by other means
    /// (it is removed on drop like any other).
    pub fn adopt(name: &str) -> Network {
        Network {
            name: name.to_string(),
        }
    }

    /// `docker network create` with these subnets (IPv6 enabled when one
    /// is IPv6).
    pub fn create(prefix: &str, subnets: &[&str]) -> io::Result<Network> {
        let name = unique(prefix);
        let mut args = vec!["network", "create"];
        if subnets.iter().any(|s| s.contains(':')) {
            args.push("--ipv6");
        }
        for s in subnets {
            args.extend(["--subnet", s]);
        }
        args.push(&name);
        docker(&args)?;
        Ok(Network { name })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The network is the test's own, so are the endpoints still on it
        // (a container dropped later, after a failure): detach them first.
        if let Ok(ids) = docker(&[
            "network",
            "inspect",
            &self.name,
            "--format",
            "{{range $id, $c := .Containers}}{{$id}} {{end}}",
        ]) {
            for id in ids.split_whitespace() {
                let _ = docker_output(&["network", "disconnect", "-f", &self.name, id]);
            }
        }
        let _ = docker_output(&["network", "rm", &self.name]);
    }
}

/// A container of the test's own, removed (forcibly) on drop.
pub struct Container {
    /// Its name.
    pub name: String,
}

impl Container {
    /// `docker run -d --name <unique> ARGS…`; `args` go before the image.
    pub fn run(prefix: &str, args: &[&str], image: &str, cmd: &[&str]) -> io::Result<Container> {
        let name = unique(prefix);
        let mut full = vec!["run", "-d", "--name", &name];
        full.extend_from_slice(args);
        full.push(image);
        full.extend_from_slice(cmd);
        docker(&full)?;
        Ok(Container { name })
    }

    /// Its network namespace, to run listeners and probes in.
    pub fn netns(&self) -> io::Result<Netns> {
        let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &self.name])?;
        Ok(Netns::attach(&self.name, format!("/proc/{pid}/ns/net")))
    }

    /// Its address on `network`, IPv4 then IPv6 (if any).
    pub fn addrs(&self, network: &str) -> io::Result<(String, Option<String>)> {
        let f = format!(
            "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}{{{{.IPAddress}}}} {{{{.GlobalIPv6Address}}}}{{{{end}}}}"
        );
        let out = docker(&["inspect", "--format", &f, &self.name])?;
        let mut it = out.split_whitespace();
        let v4 = it
            .next()
            .ok_or_else(|| io::Error::other(format!("{} has no address on {network}", self.name)))?
            .to_string();
        Ok((v4, it.next().map(str::to_string)))
    }

    /// Its IPv4 gateway on `network` (an address of the host).
    pub fn gateway(&self, network: &str) -> io::Result<String> {
        let f = format!(
            "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}{{{{.Gateway}}}}{{{{end}}}}"
        );
        docker(&["inspect", "--format", &f, &self.name])
    }

    /// Its logs (stdout and stderr).
    pub fn logs(&self) -> String {
        Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }
}

/// The trafficjam image run as the README says: on the host network, with
/// NET_ADMIN and the Docker socket, configured by `env` (`KEY=VALUE`), with
/// `cmd` as its arguments (none: `run`).
pub fn run_trafficjam(env: &[String], cmd: &[&str]) -> io::Result<Container> {
    let mut args = vec![
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
    ];
    for e in env {
        args.extend(["-e", e]);
    }
    Container::run("tj", &args, TRAFFICJAM_IMAGE, cmd)
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.name]);
    }
}

/// An extra address of the host, on a veth pair of the test's own, so
/// "another address of the host" can be probed without touching the
/// host's real interfaces.
pub struct HostAddress {
    link: String,
    /// The address (a /32 from a documentation range).
    pub addr: String,
}

impl HostAddress {
    /// Create the veth pair and put `addr`/32 on the host side.
    pub fn add(addr: &str) -> io::Result<HostAddress> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let link = format!("tjx{}{n}", std::process::id() % 100_000);
        let peer = format!("{link}p");
        crate::run(
            "ip",
            &["link", "add", &link, "type", "veth", "peer", "name", &peer],
        )?;
        let h = HostAddress {
            link,
            addr: addr.to_string(),
        };
        crate::run(
            "ip",
            &["addr", "add", &format!("{addr}/32"), "dev", &h.link],
        )?;
        crate::run("ip", &["link", "set", &h.link, "up"])?;
        crate::run("ip", &["link", "set", &peer, "up"])?;
        Ok(h)
    }
}

impl Drop for HostAddress {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// Removes a trafficjam instance's tables of the test's (`inet NAME` and
/// `bridge NAME`) from the host's ruleset when dropped, if a failure left
/// them there. Only those tables are touched.
pub struct TableGuard(String);

impl TableGuard {
    /// Guard `inet NAME`.
    pub fn inet(name: &str) -> TableGuard {
        TableGuard(name.to_string())
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        for family in ["inet", "bridge"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.0])
                .output();
        }
    }
}
