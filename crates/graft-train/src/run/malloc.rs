//! Keep freed memory in the process during training (glibc only).
//!
//! A training step allocates and frees tensors of hundreds of MB (the `[tokens, vocab]` logits of
//! Llama-3's 128,256-token vocabulary and their gradients). glibc serves every allocation above 32 MB
//! with a fresh `mmap` and returns it with `munmap` when freed, so each step page-faults (and zeroes)
//! all of that memory again: on the CPU backend this kernel work took longer than the arithmetic
//! (measured on tiny-demo: 14.6 s of 33 s spent in the kernel; 1.1 s of 15 s with this setting).
//! Turning mmap off for large blocks and never trimming the heap lets freed blocks be reused.
//! The cost: the process keeps its peak heap size until it exits, which a training run reaches
//! anyway.

/// Apply the setting; a no-op outside glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_MAX: c_int = -4;
        // SAFETY: mallopt only changes allocator tuning parameters; both are valid for any value.
        let ok =
            unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, c_int::MAX) == 1 };
        if !ok {
            tracing::debug!("mallopt failed; large blocks stay mmap-backed");
        }
    }
}
