//! NFNETLINK wire format: objects to batch bytes and kernel dumps back to
//! objects.

mod batch;

pub use batch::{Batch, BatchEntry, ObjectRef, Transaction};
