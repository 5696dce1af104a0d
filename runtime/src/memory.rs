//! Keeping the memory that freed activations leave behind in the process, for the next layer and the next
//! call, as an inference session's arena does.
//!
//! The CPU kernels return each activation in a fresh `Vec`, which candle's tensor then owns until the tensor
//! is dropped; nothing between the two lets a buffer be handed back to the runtime for reuse. What happens to
//! it is the C allocator's choice, and glibc's defaults cost a network a lot: an allocation of 128 KiB or more
//! (a channel block of almost any activation) is served by `mmap` and unmapped again when freed (the threshold
//! then grows with the largest block freed, but the top of the heap is still given back to the system once
//! twice that much of it is free). Each layer's output then arrives as untouched pages, one page fault per
//! 4 KiB on its first write: 13% of ResNet-50's time at batch 1 on one core was in the kernel, mostly those
//! faults and the unmapping (bench/RESULTS.md, *Issue 13, session 6: each change on its own*).
//!
//! [`retain_freed_memory`] raises both thresholds once for the process (`mallopt`), so freed activations
//! stay in the heap and the next ones reuse their pages. It changes nothing else about the allocator; the
//! peak resident memory of a run stays what it was (the largest set of live tensors), and the process keeps
//! that much after the run instead of returning it. A [`Plan`](crate::plan::Plan) calls it on its first CPU
//! inference unless its [`Optimizations`](crate::fused::Optimizations) turn `retain_memory` off; other
//! allocators (a `#[global_allocator]` such as mimalloc, musl's) are left alone, and do not need it.

/// Asks glibc's allocator to keep freed memory of up to 32 MiB per block in the heap (`M_MMAP_THRESHOLD`,
/// the largest it accepts) and to give the heap's top back to the system only past 1 GiB (`M_TRIM_THRESHOLD`).
/// Once per process; on other C libraries, or with a Rust global allocator that is not the system's, it does
/// nothing that matters.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc's <malloc.h>.
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            // SAFETY: `mallopt` takes any parameter and value, returning 0 for those it rejects (then the
            // default stays), and is safe to call from any thread at any time.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}
