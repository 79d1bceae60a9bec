//! NFNETLINK wire format: objects to batch bytes, and kernel dumps back to
//! objects.
//!
//! - [`Batch`] / [`Transaction`]: one atomic batch and the map from its
//!   sequence numbers to the objects it touches.
//! - [`encode`]: tables, sets, elements, chains and rules to messages.
//! - [`request`]: dump requests and the generation id.
//! - [`TableDump`]: dump replies back into a [`Table`](crate::model::Table).
//! - [`plan`]: the smallest batch that turns the actual state into the
//!   desired one.

mod attr;
mod batch;
mod decode;
pub mod encode;
mod expr;
pub(crate) mod nla;
mod plan;
pub mod request;
mod udata;

pub use batch::{Batch, BatchEntry, ObjectRef, Transaction};
pub use decode::TableDump;
pub(crate) use plan::without_state;
pub use plan::{plan, Change};
pub use request::TableSummary;

/// Why bytes from the kernel could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The netlink framing or an attribute was invalid.
    #[error("malformed netlink message: {0}")]
    Netlink(String),
    /// An attribute had the wrong size or value.
    #[error("malformed attribute: {0}")]
    Malformed(&'static str),
    /// An attribute every such object must have was missing.
    #[error("missing attribute: {0}")]
    Missing(&'static str),
    /// The object is valid but not of a kind trafficjam creates.
    #[error("unsupported object: {0}")]
    Unsupported(&'static str),
}
