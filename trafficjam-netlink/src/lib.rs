//! # trafficjam-netlink
//!
//! The socket side of trafficjam, and the only code that owns sockets:
//! send an NFNETLINK batch built by `trafficjam-core` and map each kernel
//! error to the object that caused it ([`NetfilterSocket::send`]), read
//! dumps ([`NetfilterSocket::request`], [`consistent`]), and do it inside
//! any network namespace ([`NetfilterSocket::open_in`]).
#![warn(missing_docs)]

mod conntrack;
mod consistent;
mod cuts;
mod error;
mod firewall;
pub mod lab;
mod netns;
mod reply;
mod route;
mod socket;
mod table;

pub use conntrack::cut_connections;
pub use consistent::consistent;
pub use error::{Failure, NetlinkError, TransactionError};
pub use firewall::{Changes, Firewall};
pub use route::{BridgePort, RouteSocket};
pub use socket::NetfilterSocket;
pub use table::{generation, list_tables, read_for_update, read_table};

/// Entry points for the fuzzer: the parser of the kernel's answers.
#[doc(hidden)]
pub mod fuzzing {
    /// Parse a datagram of answers; must never panic.
    pub fn parse_replies(buf: &[u8]) -> usize {
        crate::reply::parse(buf).map_or(0, |r| r.len())
    }
}
