//! testbed (work in progress)
