//! wren-oci's heap on musl: talc on anonymous memory claimed with `mmap`
//! and never given back.
//!
//! musl's own malloc maps and unmaps 4 KiB groups as they fill and empty:
//! ~60 `munmap`s per `wren-oci run`, each a TLB flush, ~0.3 ms in a VM (a
//! quarter of what musl saved over glibc). wren-oci is a short process, or
//! a long one that allocates little (`events`, a foreground `run`); freed
//! blocks are reused, so a long one stays bounded by its peak.

use std::alloc::Layout;

use talc::{OomHandler, Span, Talc, Talck};

/// Memory is claimed in pieces of at least this size.
const PIECE: usize = 1 << 20;

/// Claims another piece from the kernel when the heap is full.
pub struct MmapOnOom;

impl OomHandler for MmapOnOom {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
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
        // SAFETY: the span is the mapping just made, readable and writable,
        // used by nothing else and never unmapped.
        unsafe { talc.claim(Span::from_base_size(base.cast(), size)) }.map(|_| ())
    }
}

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, MmapOnOom> = Talc::new(MmapOnOom).lock();
