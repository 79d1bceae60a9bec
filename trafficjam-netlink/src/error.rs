//! Errors of the socket side, worded for the person running trafficjam.

use std::fmt;
use std::io;
use std::path::PathBuf;

use trafficjam_core::wire::ObjectRef;

const EPERM: i32 = libc::EPERM;
const ENOENT: i32 = libc::ENOENT;

/// What the user has to do when the kernel says "operation not permitted".
const NEED_CAP: &str = "trafficjam needs CAP_NET_ADMIN: run it as root, or grant the capability \
(`docker run --cap-add NET_ADMIN`, `setcap cap_net_admin+ep trafficjam`)";

/// Everything that can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be created or used.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The network namespace could not be entered.
    #[error("cannot enter network namespace {path}: {source}")]
    Namespace {
        /// The namespace path given by the user.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A new network namespace could not be created.
    #[error("cannot create a network namespace: {0} (this needs CAP_SYS_ADMIN as well as CAP_NET_ADMIN: run as root on the host, or in a container started with --privileged)")]
    NamespaceCreate(#[source] io::Error),
    /// The kernel or the system refused for lack of privilege.
    #[error("{context}: operation not permitted; {NEED_CAP}")]
    PermissionDenied {
        /// What was being done.
        context: String,
    },
    /// The kernel answered a request with an error.
    #[error("the kernel refused {request}: {}", describe(*errno, message.as_deref()))]
    Kernel {
        /// What was asked.
        request: String,
        /// The errno the kernel returned (positive).
        errno: i32,
        /// The kernel's extended-ack message, when it gave one.
        message: Option<String>,
    },
    /// A batch was refused; nothing of it was applied.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The ruleset changed while it was being dumped: dump again.
    #[error("the ruleset changed while it was being read; try again")]
    DumpInterrupted,
    /// The kernel's answer could not be parsed.
    #[error("malformed answer from the kernel: {0}")]
    Malformed(String),
    /// The kernel did not answer in time.
    #[error("the kernel did not answer within {0} ms")]
    Timeout(u128),
}

impl NetlinkError {
    /// True when the failure is a missing privilege (EPERM).
    pub fn is_permission_denied(&self) -> bool {
        match self {
            NetlinkError::PermissionDenied { .. } => true,
            NetlinkError::Transaction(t) => t.failures.iter().any(|f| f.errno == EPERM),
            _ => false,
        }
    }

    /// True when a batch built with a generation id was refused because the
    /// ruleset changed since it was read (`ERESTART`): read again, retry.
    pub fn is_generation_changed(&self) -> bool {
        matches!(self, NetlinkError::Transaction(t) if t.failures.iter().any(|f| f.errno == libc::ERESTART))
    }

    /// True when the kernel said the object does not exist (ENOENT).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetlinkError::Kernel { errno: ENOENT, .. })
    }

    /// An I/O error from a socket call, with EPERM made explicit.
    pub(crate) fn io(context: &str, e: io::Error) -> NetlinkError {
        if e.raw_os_error() == Some(EPERM) {
            NetlinkError::PermissionDenied {
                context: context.to_string(),
            }
        } else {
            NetlinkError::Socket(io::Error::new(e.kind(), format!("{context}: {e}")))
        }
    }

    /// The error for an NLMSG_ERROR answer to a request.
    pub(crate) fn kernel(request: &str, errno: i32, message: Option<String>) -> NetlinkError {
        if errno == EPERM {
            NetlinkError::PermissionDenied {
                context: format!("the kernel refused {request}"),
            }
        } else {
            NetlinkError::Kernel {
                request: request.to_string(),
                errno,
                message,
            }
        }
    }
}

/// One message of a batch the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The object the message was about (or [`ObjectRef::Batch`] when the
    /// kernel blamed a sequence number that is not in the batch).
    pub object: ObjectRef,
    /// The errno (positive).
    pub errno: i32,
    /// The kernel's extended-ack message, when it gave one.
    pub message: Option<String>,
}

/// A refused batch. The kernel applies batches all or nothing, so nothing
/// of it took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionError {
    /// Every message the kernel reported an error for, in order.
    pub failures: Vec<Failure>,
}

impl std::error::Error for TransactionError {}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failures.iter().any(|x| x.errno == EPERM) {
            return write!(
                f,
                "the kernel refused the change: operation not permitted; {NEED_CAP}"
            );
        }
        let parts: Vec<String> = self
            .failures
            .iter()
            .map(|x| format!("{}: {}", x.object, describe(x.errno, x.message.as_deref())))
            .collect();
        write!(
            f,
            "the kernel refused the change (nothing was applied): {}",
            parts.join("; ")
        )
    }
}

/// "File exists (EEXIST): <extended ack>"
fn describe(errno: i32, message: Option<&str>) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let name = errno_name(errno)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    match message {
        Some(m) if !m.is_empty() => format!("{text}{name}: {m}"),
        _ => format!("{text}{name}"),
    }
}

fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::EBUSY => "EBUSY",
        libc::ENOMEM => "ENOMEM",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::E2BIG => "E2BIG",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENOBUFS => "ENOBUFS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_names_the_capability() {
        let e = NetlinkError::kernel("a dump", EPERM, None);
        assert!(e.is_permission_denied());
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let t = TransactionError {
            failures: vec![Failure {
                object: ObjectRef::Batch,
                errno: EPERM,
                message: None,
            }],
        };
        assert!(t.to_string().contains("CAP_NET_ADMIN"), "{t}");
        let io = NetlinkError::io("creating the socket", io::Error::from_raw_os_error(EPERM));
        assert!(io.to_string().contains("CAP_NET_ADMIN"), "{io}");
    }

    #[test]
    fn refused_object_is_named_with_errno_and_ext_ack() {
        let t = TransactionError {
            failures: vec![Failure {
                object: ObjectRef::Set {
                    family: trafficjam_core::model::Family::Inet,
                    table: "trafficjam-x".into(),
                    name: "subnets4".into(),
                },
                errno: libc::EEXIST,
                message: Some("set exists".into()),
            }],
        };
        let s = t.to_string();
        assert!(s.contains("set inet trafficjam-x subnets4"), "{s}");
        assert!(s.contains("EEXIST"), "{s}");
        assert!(s.contains("set exists"), "{s}");
    }
}
