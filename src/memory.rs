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

/// The global allocator of `meshctl` and of the benchmark floor: mimalloc, asked for a plain block
/// whenever a plain block is aligned enough.
///
/// Every mimalloc block of 16 bytes or more is 16-byte aligned, and smaller blocks are aligned to 8,
/// so a layout whose alignment is at most 16 and at most its size needs nothing more (the rule the
/// standard library's `System` allocator applies to `malloc`). The `mimalloc` crate asks for an
/// aligned block every time instead, which takes mimalloc's slower general path for any block over
/// 1 KiB and a few extra checks for the others: about 400 instructions of a routed proxy request
/// (`bench/route-instructions.sh`).
pub struct Allocator;

/// The alignment of every mimalloc block of this size or more (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

fn plain(align: usize, size: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it; a plain block is returned only for a
// layout it is aligned enough for (see above), otherwise mimalloc's aligned functions are used.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions take any size and a power-of-two alignment, which a
        // `Layout` guarantees.
        unsafe {
            if plain(layout.align(), layout.size()) {
                libmimalloc_sys::mi_malloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                libmimalloc_sys::mi_zalloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; a plain block grows into a plain block only when that
        // is aligned enough, and any other block goes through the aligned function.
        unsafe {
            if plain(layout.align(), layout.size()) && plain(layout.align(), new_size) {
                libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::*;

    #[test]
    fn blocks_are_aligned_as_their_layouts_ask_whatever_the_size() {
        let a = Allocator;
        let mut live = Vec::new();
        for size in (1..=4200)
            .step_by(7)
            .chain([16, 24, 48, 1024, 1040, 1248, 4096, 65536, 1 << 20])
        {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: a non-zero size; each block is freed below with its layout.
                unsafe {
                    let p = if size % 3 == 0 {
                        a.alloc_zeroed(layout)
                    } else {
                        a.alloc(layout)
                    };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "{size} bytes aligned to {align}");
                    if size % 3 == 0 {
                        assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 0));
                    }
                    p.write_bytes(0xa5, size);
                    let grown = a.realloc(p, layout, size * 2 + 5);
                    assert_eq!(grown as usize % align, 0, "{size} bytes grown, aligned to {align}");
                    assert!(std::slice::from_raw_parts(grown, size).iter().all(|b| *b == 0xa5));
                    // Kept a while, so that later blocks come from pages in use, not only fresh ones.
                    live.push((grown, Layout::from_size_align_unchecked(size * 2 + 5, align)));
                }
            }
            if live.len() > 200 {
                for (p, layout) in live.drain(..100) {
                    // SAFETY: allocated above with this layout.
                    unsafe { a.dealloc(p, layout) };
                }
            }
        }
        for (p, layout) in live {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layout) };
        }
    }
}
