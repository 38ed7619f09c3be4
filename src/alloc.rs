//! Giving freed memory back to the system. glibc keeps the small blocks a
//! large batch freed in its arenas, so without this a pod that ingested
//! one big batch keeps its peak for good (436 MiB held after a 300,000-note
//! batch, issue #21).

/// Returns the free memory at the top of every arena to the system.
/// Takes a few milliseconds on a large heap: call it off the async
/// threads, after work that freed much.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under
    // its own locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
