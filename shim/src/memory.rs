//! Keeping an idle shim's private memory small: the figure users compare us
//! on is PSS per idle container, and almost all of it is the few pages each
//! shim dirties for itself (heap, the main stack, the publisher thread).
//!
//! Runs in the shim daemon, on the loop thread.

/// One malloc arena for every thread (the publisher thread would otherwise
/// get its own 64 MiB arena, of which it touches a few pages), and freed
/// memory handed back promptly. Call before any thread exists.
pub fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt with documented parameters, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024);
    }
}

/// Below the current stack pointer this much is kept: the frames of the
/// calls made from here (the `madvise` wrapper, a signal handler) live there
/// and must not be dropped under them.
const STACK_KEEP: usize = 4 * 1024;

/// Hands back what the calls that allocate most left behind (a Create
/// parses the whole spec and runs deep): freed heap pages, and the pages of
/// the main thread's stack below the current frame, which a Create dirtied
/// (~70 KiB) and nothing uses again until the next deep call — which simply
/// faults in fresh zero pages. Must be called on the main thread, from a
/// shallow frame (the daemon loop).
pub fn trim() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        if log::log_enabled!(log::Level::Debug) {
            // SAFETY: mallinfo2 has no preconditions.
            let info = unsafe { libc::mallinfo2() };
            log::debug!(
                "trim: heap {} KiB in use, {} KiB free",
                info.uordblks / 1024,
                info.fordblks / 1024
            );
        }
    }
    if let Some((low, high)) = main_stack() {
        let released = release_stack_below_here(low, high);
        log::debug!("trim: released {} KiB of stack", released / 1024);
    }
}

/// Drops the pages of the current thread's stack mapping `[low, high)` that
/// lie more than [`STACK_KEEP`] below the current frame. Returns how many
/// bytes it released (0 if this frame is not inside `[low, high)`).
#[inline(never)]
fn release_stack_below_here(low: usize, high: usize) -> usize {
    let here = 0u8;
    let sp = std::hint::black_box(std::ptr::addr_of!(here)) as usize;
    if !(low..high).contains(&sp) {
        return 0;
    }
    let page = page_size();
    let end = sp.saturating_sub(STACK_KEEP) & !(page - 1);
    if end <= low {
        return 0;
    }
    // SAFETY: [low, end) is part of this thread's own stack mapping and lies
    // at least STACK_KEEP below the current frame: no live frame or value is
    // there (the stack grows down, and everything below the stack pointer is
    // dead). MADV_DONTNEED only drops the pages; the mapping stays, and a
    // later deeper call gets zero-filled pages it then initialises itself.
    let ret = unsafe { libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED) };
    if ret != 0 {
        log::debug!(
            "madvise(DONTNEED) of the unused stack: {}",
            std::io::Error::last_os_error()
        );
        return 0;
    }
    end - low
}

fn page_size() -> usize {
    // SAFETY: sysconf with a valid name.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// The `[stack]` mapping of /proc/self/maps (the main thread's stack, as
/// grown so far).
fn main_stack() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    parse_stack(&maps)
}

fn parse_stack(maps: &str) -> Option<(usize, usize)> {
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let range = line.split_whitespace().next()?;
    let (lo, hi) = range.split_once('-')?;
    Some((
        usize::from_str_radix(lo, 16).ok()?,
        usize::from_str_radix(hi, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stack_mapping() {
        let maps = "55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]\n\
                    7ffc1a2e0000-7ffc1a301000 rw-p 00000000 00:00 0                          [stack]\n";
        assert_eq!(parse_stack(maps), Some((0x7ffc1a2e0000, 0x7ffc1a301000)));
        assert_eq!(parse_stack("nothing here\n"), None);
    }

    /// The stack of the calling (non-main) thread, exactly.
    fn thread_stack() -> (usize, usize) {
        // SAFETY: pthread_getattr_np fills the attr we pass; we destroy it.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
            let mut addr = std::ptr::null_mut();
            let mut size = 0;
            assert_eq!(libc::pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
            libc::pthread_attr_destroy(&mut attr);
            (addr as usize, addr as usize + size)
        }
    }

    fn resident(addr: usize) -> bool {
        let page = page_size();
        let mut vec = 0u8;
        // SAFETY: mincore of one page of our own stack mapping into one byte.
        let ret = unsafe { libc::mincore((addr & !(page - 1)) as *mut _, page, &mut vec) };
        assert_eq!(ret, 0, "mincore");
        vec & 1 == 1
    }

    #[test]
    fn releases_the_dirty_stack_below_the_frame_and_keeps_the_frames() {
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                // Dirty ~128 KiB deep, remembering an address down there.
                #[inline(never)]
                fn deep(n: u32, lowest: &mut usize) -> u64 {
                    let buf = std::hint::black_box([n as u8; 4096]);
                    *lowest = (*lowest).min(buf.as_ptr() as usize);
                    if n == 0 {
                        return 1;
                    }
                    deep(n - 1, lowest) + u64::from(buf[7])
                }
                let (low, high) = thread_stack();
                let mut lowest = usize::MAX;
                let before = deep(32, &mut lowest);
                assert!(resident(lowest), "the deep page was dirtied");
                let keep = std::hint::black_box([7u8; 64]);
                let released = release_stack_below_here(low, high);
                assert!(released >= 64 * 1024, "released only {released} bytes");
                assert!(!resident(lowest), "the deep page is gone");
                assert_eq!(keep, [7u8; 64], "the live frame is intact");
                // Deep calls work again (on fresh zero pages).
                let mut again = usize::MAX;
                assert_eq!(deep(32, &mut again), before);
                // A frame outside the given range releases nothing.
                assert_eq!(release_stack_below_here(high, high + 4096), 0);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
