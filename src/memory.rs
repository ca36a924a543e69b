//! Process-wide memory settings shared by the `meshctl` binary and the benchmark floor
//! (`examples/parse_only`), so both run on the same allocator set-up.

/// Turns transparent huge pages off for this process.
///
/// mimalloc (the global allocator) advises the kernel to back its arenas with 2 MiB pages
/// (`MADV_HUGEPAGE`). For a command that lives a few milliseconds to a few hundred, each first touch
/// of such a page makes the kernel zero all 2 MiB of it: on a one-file `meshctl validate` that was
/// half of the run (3.9 ms instead of 6.7 ms with it off). Long-running commands (`serve`, `proxy`)
/// hold a few tens of megabytes, where huge pages gain little and cost memory. Best effort: a kernel
/// without the setting leaves things as they were.
pub fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it only sets a flag on this process.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}
