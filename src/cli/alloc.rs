//! Allocator settings for the whole process, made once at start-up.
//!
//! The forward pass allocates its per-layer buffers (a layer's q/k/v,
//! FFN activations and outputs: megabytes each at prompt length) and frees
//! them a few milliseconds later. glibc's defaults hand such blocks back to
//! the kernel on free (`mmap`/`munmap` above a sliding threshold, and
//! `madvise` trimming of its per-thread heaps), so every layer paid fresh
//! page faults and zeroing: 12–14% of a SmolLM2 prompt's time went to the
//! kernel at 2 threads. Keeping freed memory in the process removes that;
//! peak memory is unchanged (the same buffers are reused), only the
//! resident size stays at the peak until exit.

/// Make glibc keep freed blocks for reuse: blocks up to 32 MiB (its
/// largest `mmap` threshold) come from the heap, and the heaps are not
/// trimmed. Elsewhere (musl, macOS, Windows) this does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's M_MMAP_THRESHOLD can be at most 4 MiB × sizeof(long).
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: `mallopt` only changes allocator parameters; it is called
        // before any other thread exists, and a rejected value (return 0)
        // leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
