//! The heap of wren's musl binaries (the release `wren-oci` and shim):
//! talc on anonymous memory claimed with `mmap` and never given back, and,
//! for a daemon, musl's own malloc from the moment it says so.
//!
//! musl's own malloc maps and unmaps 4 KiB groups as they fill and empty:
//! ~60 `munmap`s per `wren-oci run`, each a TLB flush, ~0.3 ms in a VM;
//! and a JSON decode of a spec with a seccomp profile (thousands of small
//! blocks) ran 0.1–0.2 ms slower in a container init than on talc. Short
//! processes (wren-oci, the shim's `start`, every container init) therefore
//! use talc: freed blocks are reused, so a longer one (`wren-oci events`)
//! stays bounded by its peak. A daemon's idle memory is its figure of
//! merit, and talc never returns what a busy moment touched, so the shim
//! daemon calls [`use_system_malloc`] first thing: new blocks then come
//! from musl's malloc, which hands freed memory back; blocks talc gave out
//! before are still freed to talc (each block goes back to the allocator
//! whose memory it lies in).
//!
//! Binaries declare it: `#[global_allocator] static HEAP: Heap = Heap::new();`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use talc::{OomHandler, Span, Talc, Talck};

/// Memory is claimed in pieces of at least this size.
const PIECE: usize = 1 << 20;
/// At most this many pieces (64 MiB and more: far beyond any wren process).
const MAX_PIECES: usize = 64;

/// Where talc's pieces are: base and end of each, `CLAIMED` of them set.
/// Written only under talc's lock (in the OOM handler), read by any free.
static PIECES: [(AtomicUsize, AtomicUsize); MAX_PIECES] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; MAX_PIECES];
static CLAIMED: AtomicUsize = AtomicUsize::new(0);
/// Set by [`use_system_malloc`]: new blocks come from musl's malloc.
static SYSTEM_FOR_NEW: AtomicBool = AtomicBool::new(false);

/// From now on, new blocks come from the libc's malloc (which returns freed
/// memory to the kernel); for a long-lived daemon.
pub fn use_system_malloc() {
    SYSTEM_FOR_NEW.store(true, Ordering::Release);
}

/// Whether `p` lies in memory talc claimed.
fn in_talc(p: *mut u8) -> bool {
    let p = p as usize;
    let n = CLAIMED.load(Ordering::Acquire).min(MAX_PIECES);
    PIECES[..n]
        .iter()
        .any(|(base, end)| (base.load(Ordering::Relaxed)..end.load(Ordering::Relaxed)).contains(&p))
}

/// Claims another piece from the kernel when talc's heap is full.
pub struct MmapOnOom;

impl OomHandler for MmapOnOom {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let slot = CLAIMED.load(Ordering::Relaxed);
        if slot >= MAX_PIECES {
            return Err(());
        }
        // Room for the block, its alignment and talc's own bookkeeping.
        let size = layout
            .size()
            .checked_add(layout.align() + 4096)
            .ok_or(())?
            .max(PIECE)
            .next_multiple_of(4096);
        // SAFETY: a new private anonymous mapping; no existing memory is
        // touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(());
        }
        // Recorded before talc hands out any of it (we hold talc's lock:
        // no other claim runs meanwhile).
        PIECES[slot].0.store(base as usize, Ordering::Relaxed);
        PIECES[slot]
            .1
            .store(base as usize + size, Ordering::Relaxed);
        CLAIMED.store(slot + 1, Ordering::Release);
        // SAFETY: the span is the mapping just made, readable and writable,
        // used by nothing else and never unmapped.
        unsafe { talc.claim(Span::from_base_size(base.cast(), size)) }.map(|_| ())
    }
}

/// The global allocator: talc, or musl's malloc for new blocks once
/// [`use_system_malloc`] was called.
pub struct Heap {
    talc: Talck<spin::Mutex<()>, MmapOnOom>,
}

impl Heap {
    pub const fn new() -> Heap {
        Heap {
            talc: Talc::new(MmapOnOom).lock(),
        }
    }
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

// SAFETY: every block is allocated by exactly one of talc and System and
// freed (or resized) by the same one: `in_talc` tells them apart by
// address, as talc's pieces are recorded before any block in them exists
// and are never unmapped; a resize across the two copies and frees.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if SYSTEM_FOR_NEW.load(Ordering::Relaxed) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { self.talc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if SYSTEM_FOR_NEW.load(Ordering::Relaxed) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { self.talc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_talc(ptr) {
            // SAFETY: the block lies in talc's memory, so talc allocated it.
            unsafe { self.talc.dealloc(ptr, layout) }
        } else {
            // SAFETY: not talc's, so System allocated it.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let from_talc = in_talc(ptr);
        let to_system = SYSTEM_FOR_NEW.load(Ordering::Relaxed);
        match (from_talc, to_system) {
            // SAFETY: resized by the allocator that made it.
            (true, false) => unsafe { self.talc.realloc(ptr, layout, new_size) },
            // SAFETY: resized by the allocator that made it.
            (false, true) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: the caller guarantees new_size, with the old
                // alignment, is a valid layout.
                let new = unsafe {
                    self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()))
                };
                if !new.is_null() {
                    // SAFETY: both blocks are live, distinct and at least
                    // min(old, new) bytes long.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}
