//! Creating a socket inside another network namespace.
//!
//! A socket belongs to the namespace it was created in, for its whole life.
//! So a short-lived thread enters the namespace, creates the socket, and
//! ends; the calling thread never changes namespace.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::NetlinkError;

/// Run `make` on a thread inside the network namespace at `path`.
pub(crate) fn in_namespace<T: Send + 'static>(
    path: &Path,
    make: impl FnOnce() -> Result<T, NetlinkError> + Send + 'static,
) -> Result<T, NetlinkError> {
    let ns_error = |source| NetlinkError::Namespace {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(ns_error)?;
    let handle = std::thread::spawn(move || -> Result<T, NetlinkError> {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
            let e = std::io::Error::from(errno);
            NetlinkError::io("entering the network namespace", e)
        })?;
        make()
    });
    match handle.join() {
        Ok(result) => result.map_err(|e| match e {
            NetlinkError::Socket(source) => ns_error(source),
            e => e,
        }),
        Err(_) => Err(ns_error(std::io::Error::other(
            "the thread creating the socket panicked",
        ))),
    }
}
