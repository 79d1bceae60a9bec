//! Driving the `trafficjam` binary from tests: a daemon child process that
//! is stopped on drop, assertions on refused commands, and a read-only look
//! at the host's tables.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};

/// A `trafficjam run` (or any long-running) child process, killed on drop;
/// its stderr is collected.
pub struct Daemon(Child);

impl Daemon {
    /// Start `bin ARGS` with extra environment variables.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(bin: &str, args: &[S], env: &[(&str, &str)]) -> Daemon {
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        Daemon(child)
    }

    /// Kill it at once, as a crash would (no chance to clean up).
    pub fn crash(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM, wait, and return its exit code and what it logged.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let code = self.0.wait().ok().and_then(|s| s.code());
        let mut log = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut log);
        }
        (code, log)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Assert that a command failed with `code` and said `needle` on stderr.
pub fn refused(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// Whether the host's ruleset has table `inet NAME` (a read-only look).
pub fn has_inet_table(name: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
