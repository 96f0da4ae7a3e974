//! Transparent huge pages for the heap. Every training step allocates and frees tensors of
//! megabytes (matmul outputs, gemm's packing buffers, the embedding's gradient); glibc's `malloc`
//! takes fresh pages for them from the kernel, and with THP in `madvise` mode (the usual default)
//! each 4 KiB page is faulted in and zeroed on first touch: 0.5 M faults in a 125M benchmark.
//! glibc backs its memory with huge pages when asked (`glibc.malloc.hugetlb=1`, glibc ≥ 2.35),
//! but reads tunables once, at process start, so `graft` re-executes itself once with the tunable
//! added. Measured on the 2-core VM (`graft bench model --shape 125m`, best of 10, two runs each):
//! page faults 536 k → 192 k, 247 and 254 tokens/s against 231 and 248 without.
//!
//! A `GLIBC_TUNABLES` that already names `glibc.malloc.hugetlb` is left alone (set it to 0 to opt
//! out); so is a kernel without THP. Only on Linux with glibc.

/// Re-executes the current process with `glibc.malloc.hugetlb=1` added to `GLIBC_TUNABLES`,
/// unless it is there already. Returns only when it does not re-execute (or `exec` failed).
pub fn ensure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const KEY: &str = "glibc.malloc.hugetlb";
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.split(':').any(|t| t.split('=').next() == Some(KEY)) {
            return;
        }
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        if thp.map_or(true, |mode| mode.contains("[never]")) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let tunables = if current.is_empty() {
            format!("{KEY}=1")
        } else {
            format!("{current}:{KEY}=1")
        };
        // `exec` returns only on failure; the run then goes on without huge pages
        let _ = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .exec();
    }
}
