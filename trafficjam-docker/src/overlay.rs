//! Where a Swarm node keeps an overlay's namespace, and telling when it was
//! recreated.
//!
//! The Engine bind-mounts each overlay's namespace at
//! `<exec-root>/netns/<epoch>-<network id>` (the name cut to 12
//! characters; the epoch grows when the namespace is made again), next to
//! `lb_<id>` (the service load balancer) and `ingress_sbox` (the routing
//! mesh). The namespace exists while the node has an endpoint on the
//! network, and is recreated when the node leaves and rejoins it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The Engine's default `--exec-root`.
pub const DEFAULT_EXEC_ROOT: &str = "/var/run/docker";
/// The routing mesh's namespace, under `<exec-root>/netns`.
pub const INGRESS_SANDBOX: &str = "ingress_sbox";

/// One namespace, as it is now: where it is mounted and which namespace
/// that is (the kernel's identity of it, which changes when the Engine
/// recreates it under the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The bind mount.
    pub path: PathBuf,
    /// The namespace's device and inode (nsfs).
    pub identity: (u64, u64),
}

/// The namespace mounted at `path`, if a network namespace is mounted
/// there (the file exists before the Engine mounts it, and stays a
/// moment after it unmounts).
pub fn namespace_at(path: &Path) -> Option<Namespace> {
    let meta = std::fs::metadata(path).ok()?;
    let nsfs = std::fs::metadata("/proc/self/ns/net").ok()?.dev();
    (meta.dev() == nsfs).then(|| Namespace {
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
    })
}

/// The namespace of the overlay `network_id` on this node: of the entries
/// `<epoch>-<id prefix>` in `<exec_root>/netns`, the one with the highest
/// epoch that is mounted. `Ok(None)` when the node has no endpoint on the
/// network (or the directory does not exist: no Swarm here, or it is not
/// mounted into this container).
pub fn overlay_namespace(exec_root: &Path, network_id: &str) -> io::Result<Option<Namespace>> {
    let dir = exec_root.join("netns");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<(u64, Namespace)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(epoch) = name.to_str().and_then(|n| epoch_of(n, network_id)) else {
            continue;
        };
        if best.as_ref().is_some_and(|(e, _)| *e >= epoch) {
            continue;
        }
        if let Some(ns) = namespace_at(&entry.path()) {
            best = Some((epoch, ns));
        }
    }
    Ok(best.map(|(_, ns)| ns))
}

/// The routing mesh's namespace on this node, if it is mounted.
pub fn ingress_namespace(exec_root: &Path) -> Option<Namespace> {
    namespace_at(&exec_root.join("netns").join(INGRESS_SANDBOX))
}

/// Whether `name` (an entry of `<exec-root>/netns`) is a namespace
/// trafficjam may write to: an overlay's or `ingress_sbox`, not one of the
/// containers' sandboxes or load balancers.
pub fn is_enforced_namespace(name: &str) -> bool {
    name == INGRESS_SANDBOX || overlay_name(name).is_some()
}

/// `name`'s epoch if it is `<epoch>-<prefix of network_id>`.
fn epoch_of(name: &str, network_id: &str) -> Option<u64> {
    let (epoch, prefix) = overlay_name(name)?;
    network_id.starts_with(prefix).then_some(epoch)
}

/// An overlay's namespace name split into its epoch and network id prefix.
fn overlay_name(name: &str) -> Option<(u64, &str)> {
    let (epoch, prefix) = name.split_once('-')?;
    let epoch: u64 = epoch.parse().ok()?;
    // The Engine cuts the whole name to 12 characters: at least a few
    // characters of the id are always there.
    (prefix.len() >= 4).then_some((epoch, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_an_overlay_namespace() {
        let id = "k2m9x7q1ab3cd4ef5gh6";
        assert_eq!(epoch_of("1-k2m9x7q1ab", id), Some(1));
        assert_eq!(epoch_of("12-k2m9x7q1a", id), Some(12));
        assert_eq!(epoch_of("1-zzzzzzzzzz", id), None);
        assert_eq!(epoch_of("lb_k2m9x7q1a", id), None);
        assert_eq!(epoch_of("ingress_sbox", id), None);
        assert_eq!(epoch_of("x-k2m9x7q1ab", id), None);
        assert_eq!(epoch_of("1-k2", id), None);
        assert!(is_enforced_namespace("3-k2m9x7q1a"));
        assert!(is_enforced_namespace(INGRESS_SANDBOX));
        assert!(!is_enforced_namespace("1140fe91e4f8"));
        assert!(!is_enforced_namespace("lb_k2m9x7q1a"));
    }

    #[test]
    fn a_plain_file_is_no_namespace() {
        assert!(namespace_at(Path::new("/proc/self/ns/net")).is_some());
        assert!(namespace_at(Path::new("/etc/hostname")).is_none());
        assert!(namespace_at(Path::new("/nonexistent")).is_none());
    }
}
