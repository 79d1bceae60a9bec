//! Network namespaces owned by a test, deleted when dropped.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace: one created with `ip netns add` and removed on
/// drop (also when the test panics), or an existing one attached by path
/// (a container's `/proc/PID/ns/net`), which is left alone.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// Set for attached namespaces: their path, and they are not ours.
    attached: Option<PathBuf>,
}

impl Netns {
    /// Create a namespace named `<prefix>-<pid>-<n>`, unique per process
    /// and call.
    pub fn new(prefix: &str) -> io::Result<Netns> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let ns = Netns {
            name,
            attached: None,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        // No duplicate address detection on any interface created here,
        // link-local addresses included: a tentative address delays the
        // first neighbour solicitation by a second or more, which would make
        // a cold-cache test flaky for reasons that have nothing to do with
        // the firewall.
        //
        // No router solicitations either: an interface coming up would
        // otherwise send one from its link-local address, and the host (a
        // router) would learn that neighbour before the test's first packet.
        //
        // MLD reports are repeated within 10 ms instead of 1 s: an interface
        // joining its groups still announces them, but the burst is over
        // before a test starts, so a drop counter read over a later window
        // counts the test's packets only.
        ns.sysctls(&[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.router_solicitations", "0"),
            ("net.ipv6.conf.default.router_solicitations", "0"),
            ("net.ipv6.conf.all.mldv2_unsolicited_report_interval", "10"),
            (
                "net.ipv6.conf.default.mldv2_unsolicited_report_interval",
                "10",
            ),
        ])?;
        Ok(ns)
    }

    /// Use an existing namespace, e.g. a container's `/proc/PID/ns/net`.
    /// It is not deleted on drop.
    pub fn attach(label: &str, path: impl Into<PathBuf>) -> Netns {
        Netns {
            name: label.to_string(),
            attached: Some(path.into()),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>` (or the attached path), what `trafficjam
    /// --netns` takes.
    pub fn path(&self) -> PathBuf {
        match &self.attached {
            Some(p) => p.clone(),
            None => Path::new("/run/netns").join(&self.name),
        }
    }

    /// Run `ip -n <ns> ARGS`, failing on a non-zero exit.
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Run a program inside the namespace (`ip netns exec`), returning its
    /// output whatever its exit status.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        match &self.attached {
            None => Command::new("ip")
                .args(["netns", "exec", &self.name, program])
                .args(args)
                .output(),
            Some(path) => Command::new("nsenter")
                .arg(format!("--net={}", path.display()))
                .arg(program)
                .args(args)
                .output(),
        }
    }

    /// Set a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.sysctls(&[(key, value)])
    }

    /// Set several sysctls inside the namespace, in order, stopping at
    /// the first that fails. Written to `/proc/sys` from a thread inside
    /// the namespace (the `net.*` tree there is the namespace's own), so
    /// no process is started.
    pub fn sysctls(&self, settings: &[(&str, &str)]) -> io::Result<()> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.run(move || -> io::Result<()> {
            for (key, value) in settings {
                let path = Path::new("/proc/sys").join(key.replace('.', "/"));
                std::fs::write(&path, &value).map_err(|e| {
                    io::Error::new(e.kind(), format!("`sysctl -w {key}={value}` failed: {e}"))
                })?;
            }
            Ok(())
        })?
    }

    /// Run `ip -n <ns> -batch -` with `commands` (one `ip` command line
    /// each, without the leading `ip`), failing at the first that fails:
    /// one process for many changes.
    pub fn ip_batch(&self, commands: &[String]) -> io::Result<()> {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot run ip: {e} (is it installed?)"))
            })?;
        let mut text = commands.join("\n");
        text.push('\n');
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())?;
        let out = child.wait_with_output()?;
        check(&format!("ip -n {} -batch:\n{text}", self.name), &out)
    }

    /// `ip`, `bridge` or another iproute2 tool with `ARGS` in the
    /// namespace, its output whatever its exit status: `PROGRAM -n <ns>`
    /// for a namespace of ours (no mount namespace to set up, unlike
    /// [`Netns::exec`]), `nsenter` for an attached one.
    pub fn iproute2(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        match &self.attached {
            None => Command::new(program)
                .args(["-n", &self.name])
                .args(args)
                .output(),
            Some(_) => self.exec(program, args),
        }
    }

    /// Run `f` on a new thread inside this namespace: sockets it creates
    /// belong to the namespace. The calling thread never changes namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        let file = File::open(self.path())?;
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // An attached namespace is someone else's (a container's, a rig's
        // that deletes its own).
        if self.attached.is_none() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .output();
        }
    }
}

/// Run a command, turning a non-zero exit into an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> io::Result<Output> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run {program}: {e} (is it installed?)"),
        )
    })?;
    check(&format!("{program} {}", args.join(" ")), &out)?;
    Ok(out)
}

fn check(what: &str, out: &Output) -> io::Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`{what}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Panic with a clear message unless running as root: the kernel tests
/// must fail, not skip, when they cannot do what they test.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates network namespaces and nftables tables: run it as root (sudo scripts/test.sh)"
    );
}
