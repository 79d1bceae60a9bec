//! Throwaway network labs: anonymous network namespaces held only by a
//! file descriptor, and the rtnetlink calls that wire them together
//! (bridges, veth pairs, addresses). `trafficjam check` builds one to
//! prove enforcement on the running kernel.
//!
//! Nothing is named in `/run/netns` and nothing lives in the caller's
//! namespace: when the last descriptor closes — on drop, or because the
//! process died — the kernel destroys the namespaces and every interface
//! and nftables table in them. Interrupting a lab cannot leave a trace.

pub mod frames;
mod message;

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use trafficjam_core::links::{
    dump_neighbours_request, dump_request, parse_link, parse_neighbour, Neighbour,
};

use crate::{NetlinkError, RouteSocket};

/// An anonymous network namespace, alive as long as this value.
#[derive(Debug)]
pub struct Namespace {
    file: File,
}

impl Namespace {
    /// Create a new, empty network namespace (only a loopback, down).
    /// Needs CAP_SYS_ADMIN; configuring it needs CAP_NET_ADMIN.
    pub fn create() -> Result<Namespace, NetlinkError> {
        let made = std::thread::spawn(|| -> Result<File, NetlinkError> {
            // unshare moves only this thread, which ends right after.
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| NetlinkError::NamespaceCreate(e.into()))?;
            File::open("/proc/thread-self/ns/net")
                .map_err(|e| NetlinkError::io("opening the new network namespace", e))
        })
        .join()
        .map_err(|_| NetlinkError::Socket(std::io::Error::other("namespace thread panicked")))?;
        Ok(Namespace { file: made? })
    }

    /// A path that opens this namespace (`/proc/self/fd/N`), for
    /// [`NetfilterSocket::open_in`](crate::NetfilterSocket::open_in) and
    /// [`RouteSocket::open_in`].
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// Run `f` on a thread inside this namespace: sockets it creates stay
    /// in the namespace for their whole life, wherever they are used.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetlinkError> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| NetlinkError::io("duplicating a namespace descriptor", e))?;
        std::thread::spawn(move || -> Result<T, NetlinkError> {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| NetlinkError::io("entering a network namespace", e.into()))?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetlinkError::Socket(std::io::Error::other("namespace thread panicked")))?
    }

    /// An rtnetlink socket inside this namespace.
    pub fn route_socket(&self) -> Result<RouteSocket, NetlinkError> {
        RouteSocket::open_in(Some(&self.path()))
    }
}

impl RouteSocket {
    /// The index of interface `name`.
    pub fn index_of(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.0
            .request(&dump_request())?
            .iter()
            .filter_map(|m| parse_link(m))
            .find(|l| l.name == name)
            .map(|l| l.index)
            .ok_or_else(|| NetlinkError::Kernel {
                request: format!("looking up interface {name}"),
                errno: libc::ENODEV,
                message: None,
            })
    }

    /// The neighbour tables (ARP and NDP entries) of the namespace.
    pub fn neighbours(&mut self) -> Result<Vec<Neighbour>, NetlinkError> {
        Ok(self
            .0
            .request(&dump_neighbours_request())?
            .iter()
            .filter_map(|m| parse_neighbour(m))
            .collect())
    }

    /// The MAC address of the interface with index `index`.
    pub fn mac_of(&mut self, index: u32) -> Result<Option<[u8; 6]>, NetlinkError> {
        Ok(self
            .0
            .request(&dump_request())?
            .iter()
            .filter_map(|m| parse_link(m))
            .find(|l| l.index == index)
            .and_then(|l| l.mac))
    }

    /// Create bridge `name` and return its index.
    pub fn add_bridge(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.create(&message::new_bridge(name), &format!("bridge {name}"))?;
        self.index_of(name)
    }

    /// Create veth `name` plugged into the bridge with index `master`, its
    /// peer `peer` inside `peer_ns`; returns the index of `name`.
    pub fn add_veth(
        &mut self,
        name: &str,
        master: u32,
        peer: &str,
        peer_ns: &Namespace,
    ) -> Result<u32, NetlinkError> {
        let m = message::new_veth(name, master, peer, peer_ns.file.as_raw_fd());
        self.create(&m, &format!("veth pair {name}/{peer}"))?;
        self.index_of(name)
    }

    /// Bring the interface with index `index` up.
    pub fn set_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        let what = format!("setting interface #{index} up");
        self.create(&message::set_up(index), &what)
    }

    /// Add `addr/prefix` to the interface with index `index`, usable at
    /// once (no DAD).
    pub fn add_address(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let what = format!("address {addr}/{prefix} on interface #{index}");
        self.create(&message::new_address(index, addr, prefix), &what)
    }

    fn create(&mut self, msg: &[u8], what: &str) -> Result<(), NetlinkError> {
        self.0
            .request_as(msg, &format!("creating {what}"))
            .map(drop)
    }
}
