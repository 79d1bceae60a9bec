//! The process's allocator, counting the bytes it has handed out and not
//! yet been given back: the daemon's own memory, as `trafficjam_heap_bytes`
//! shows it. RSS says little about a leak: the allocator keeps freed pages
//! for reuse, so RSS climbs to a high-water mark and stays there, while
//! live bytes return to where they were once a container has come and gone.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The allocator underneath: dlmalloc on musl, whose own allocator maps
/// and unmaps memory on nearly every allocation (see Cargo.toml); the
/// system's elsewhere.
#[cfg(target_env = "musl")]
type Inner = dlmalloc::GlobalDlmalloc;
#[cfg(not(target_env = "musl"))]
type Inner = std::alloc::System;

/// An allocator that counts live bytes, around [`Inner`].
pub struct Counting(Inner);

static LIVE: AtomicUsize = AtomicUsize::new(0);

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: Counting = Counting(dlmalloc::GlobalDlmalloc);
#[cfg(not(target_env = "musl"))]
#[global_allocator]
static ALLOCATOR: Counting = Counting(std::alloc::System);

/// Bytes allocated and not yet freed, as asked for (the allocator's own
/// bookkeeping and the pages it keeps are not in it).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

// SAFETY: every call is passed on unchanged to the inner allocator, which
// upholds GlobalAlloc's contract; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // The old block is gone and the new one is live.
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_live() {
        // Other tests allocate on other threads meanwhile: a large block
        // stands out from their noise.
        let before = live_bytes();
        let block = vec![0u8; 64 << 20];
        let during = live_bytes();
        drop(block);
        let after = live_bytes();
        assert!(during >= before + (60 << 20), "{before} -> {during}");
        assert!(after + (60 << 20) <= during, "{during} -> {after}");
    }
}
